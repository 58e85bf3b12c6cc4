/* virtio-net's kick and interrupt protocol under real concurrency.
 *
 * The pair runs on an epoll I/O thread wired as devices.c wires it: the
 * "tap" (one end of a datagram socketpair) edge-triggered, the pair's
 * eventfd, and the transport's kick eventfds, which stand in for KVM's
 * ioeventfds. This thread is the guest driver, and it behaves as Linux's
 * virtio_net does with VIRTIO_RING_F_EVENT_IDX: it kicks only when
 * avail_event asks for it, and it sleeps only after it has published
 * used_event and looked at the used ring once more. A peer thread echoes
 * every frame it gets back into the "tap".
 *
 * So each frame goes out on tx and must come back on rx, in order and
 * intact. A kick or an interrupt lost on either side stops the echo: the
 * driver then waits STALL_MS for an interrupt that never comes, and the
 * test fails with both rings dumped instead of hanging. A frame spread
 * over merged rx buffers must be published whole, since Linux reads all
 * num_buffers of them as soon as it sees the first.
 *
 * The shapes: roomy rx buffers; an rx ring starved to a few buffers, so
 * the device keeps running dry with frames waiting in the tap (the
 * edge-triggered tap then relies on the driver's refill kick);
 * MRG_RXBUF with small buffers, so frames span up to three of them and
 * the device gives chains back and arms the ring when it has too few;
 * GUEST_TSO4, so the device gathers room for 64 KiB before each read and
 * holds what a frame did not use for the next; and two queue pairs on
 * two I/O threads, whose kicks all arrive on the first pair's loop. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "t.h"
#include "event.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(x) (1ull << (x))
#define PAIRS 2
#define RXQ(p) (2u * (p))
#define TXQ(p) (2u * (p) + 1)
#define CTRLQ (2u * PAIRS) /* with MQ */
#define QSZ 64u            /* td_up's ring size */
/* per pair: QSZ tx buffers of 2 KiB, then QSZ rx buffers of up to 2 KiB */
#define TXBUF(p) (TD_BUF + (uint64_t)(p) * 0x40000u)
#define RXBUF(p) (TXBUF(p) + QSZ * 2048u)
#define CMD (TD_BUF + PAIRS * 0x40000u) /* control command, ack after it */
/* frames in flight: fewer than the 10 datagrams a unix socket queues by
 * default (net.unix.max_dgram_qlen), so neither side ever drops one */
#define WINDOW 8u
#define STALL_MS 5000 /* a lost wake-up is for ever; a busy CI host is not */
#define RUN_NS 700000000ll /* per shape */
#define MAX_FRAMES 200000u

static struct td d;
static struct vnet *n;
static int sv[PAIRS][2];
static int stop_peer;
static unsigned peer_errors;
static const uint8_t mac[6] = { 0x52, 0x54, 0, 4, 5, 6 };

static void pair_ready(void *opaque, uint32_t events)
{
	(void)events;
	vnet_pair_run(n, (unsigned)(uintptr_t)opaque);
}

/* Pair p's far end of the wire: every frame goes back the way it came. */
static void *peer(void *arg)
{
	int fd = sv[(uintptr_t)arg][1];
	uint8_t buf[4096];
	while (!__atomic_load_n(&stop_peer, __ATOMIC_RELAXED)) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0); /* SO_RCVTIMEO bounds it */
		if (r < 0)
			continue;
		if (send(fd, buf, (size_t)r, 0) != r)
			__atomic_add_fetch(&peer_errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static uint16_t ld16(uint64_t gpa, int order)
{
	return __atomic_load_n((uint16_t *)(d.mem + gpa), order);
}

static unsigned kicks[2]; /* rx, tx: all pairs */
static void kick_maybe(unsigned qi, uint16_t old)
{
	kicks[qi % 2] += td_kick_event(&d, qi, old);
}

static uint32_t frame_len(uint32_t seq)
{
	return 60u + (seq * 97u) % 1400u; /* 60..1459 bytes past the header */
}

static uint8_t frame_byte(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 13u + i * 31u);
}

/* Header (zeroed: no offloads) and an Ethernet frame to our own MAC with
 * a local experimental ethertype; seq in the first 4 payload bytes. */
static uint32_t frame_write(uint8_t *p, uint32_t seq)
{
	uint32_t len = frame_len(seq);
	memset(p, 0, VNET_HDR_LEN);
	uint8_t *f = p + VNET_HDR_LEN;
	memcpy(f, mac, 6);
	memcpy(f + 6, (const uint8_t[6]){ 2, 0, 0, 0, 0, 1 }, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	memcpy(f + 14, &seq, 4);
	for (uint32_t i = 18; i < len; i++)
		f[i] = frame_byte(seq, i);
	return VNET_HDR_LEN + len;
}

/* A second reader of pair 0's rx used ring, spinning while an MRG_RXBUF
 * shape runs: it notes every used->idx value it sees. The driver marks
 * where each frame it took ends (its first buffer says how many follow).
 * Afterwards every value seen must be such an end: the device never
 * published part of a frame. The driver only looks now and then; this
 * reader looks all the time. (idx wraps at 2^16: ends are kept modulo
 * that, which can hide a split but never invent one.) */
#define OBS_MAX (1u << 20)
static struct {
	int run;
	unsigned nseen;
	uint16_t *seen;
	uint8_t end[65536 / 8];
} obs;

static void obs_end(uint16_t idx)
{
	obs.end[idx / 8] |= (uint8_t)(1u << (idx % 8));
}

static void *observer(void *arg)
{
	uint16_t last = 0;
	(void)arg;
	while (__atomic_load_n(&obs.run, __ATOMIC_ACQUIRE) == 1) {
		uint16_t idx = ld16(d.q[RXQ(0)].used + 2, __ATOMIC_ACQUIRE);
		if (idx == last || obs.nseen == OBS_MAX)
			continue;
		obs.seen[obs.nseen++] = last = idx;
	}
	return NULL;
}

/* Values seen that end no frame. */
static unsigned obs_splits(void)
{
	unsigned bad = 0;
	for (unsigned i = 0; i < obs.nseen; i++)
		if (!(obs.end[obs.seen[i] / 8] & (1u << (obs.seen[i] % 8))))
			bad++;
	return bad;
}

struct shape {
	const char *name;
	unsigned pairs;   /* 2: MQ, and VQ_PAIRS_SET 2 through the control queue */
	bool mrg;
	bool gso;         /* GUEST_TSO4: room for a 64 KiB frame before each read */
	uint32_t bufsz;   /* each rx buffer */
	unsigned posted;  /* most rx buffers on the ring at once */
};

struct result {
	uint32_t frames[PAIRS];
	bool stalled, bad;
	char why[160];
};

static void dump_rings(unsigned pairs)
{
	for (unsigned p = 0; p < pairs; p++) {
		fprintf(stderr, "# rx%u: ", p);
		vq_dump(&n->vpci.q[RXQ(p)].vq, stderr);
		fprintf(stderr, "# tx%u: ", p);
		vq_dump(&n->vpci.q[TXQ(p)].vq, stderr);
	}
}

/* VQ_PAIRS_SET k on the control queue, as Linux's virtnet_send_command
 * does it: kick, then wait for the answer (served on the first pair's
 * loop, where the kick eventfd lands). The ack byte, or -1. */
static int pairs_set(uint16_t k)
{
	uint8_t *m = d.mem;
	m[CMD] = VIRTIO_NET_CTRL_MQ;
	m[CMD + 1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
	memcpy(m + CMD + 2, &k, 2);
	m[CMD + 64] = 0xee;
	struct td_seg sg[2] = { { CMD, 4, 0 }, { CMD + 64, 1, 1 } };
	td_add(&d, CTRLQ, sg, 2);
	td_kick(&d, CTRLQ);
	uint32_t id, len;
	for (long long end = td_now_ns() + STALL_MS * 1000000ll; td_now_ns() < end;)
		if (td_used(&d, CTRLQ, &id, &len) == 1)
			return len == 1 ? m[CMD + 64] : -1;
	return -1;
}

/* Take one received frame off the rx ring: 1 done (checked), 0 nothing
 * there, -1 malformed (r->why says how). */
static int rx_take(const struct shape *s, unsigned p, uint32_t expect, uint16_t *freed,
		   struct result *r)
{
	static uint8_t frame[4096];
	uint32_t id, len;
	if (td_used(&d, RXQ(p), &id, &len) != 1)
		return 0;
	if (id >= QSZ || len > s->bufsz || len < VNET_HDR_LEN) {
		snprintf(r->why, sizeof(r->why), "rx used element id %u len %u", id, len);
		return -1;
	}
	const uint8_t *b = d.mem + RXBUF(p) + (uint64_t)id * s->bufsz;
	uint16_t nbuf;
	memcpy(&nbuf, b + 10, 2);
	if (nbuf < 1 || (!s->mrg && nbuf != 1) || nbuf > s->posted) {
		snprintf(r->why, sizeof(r->why), "frame %u: num_buffers %u", expect, nbuf);
		return -1;
	}
	uint32_t got = 0;
	memcpy(frame, b, len);
	got = len;
	*freed = 1;
	for (uint16_t k = 1; k < nbuf; k++) {
		/* as Linux: the rest must be there now, published with the first */
		if (td_used(&d, RXQ(p), &id, &len) != 1) {
			snprintf(r->why, sizeof(r->why),
				 "pair %u, frame %u: buffer %u of %u not published with the first", p,
				 expect, k + 1, nbuf);
			return -1;
		}
		if (id >= QSZ || len > s->bufsz || got + len > sizeof(frame)) {
			snprintf(r->why, sizeof(r->why), "rx used element id %u len %u", id, len);
			return -1;
		}
		memcpy(frame + got, d.mem + RXBUF(p) + (uint64_t)id * s->bufsz, len);
		got += len;
		(*freed)++;
	}
	if (p == 0)
		obs_end(d.q[RXQ(0)].used_seen);
	uint32_t seq;
	memcpy(&seq, frame + VNET_HDR_LEN + 14, 4);
	if (seq != expect || got != VNET_HDR_LEN + frame_len(expect)) {
		snprintf(r->why, sizeof(r->why),
			 "pair %u: expected frame %u (%u bytes), got frame %u (%u bytes)", p, expect,
			 VNET_HDR_LEN + frame_len(expect), seq, got);
		return -1;
	}
	for (uint32_t i = 18; i < frame_len(seq); i++)
		if (frame[VNET_HDR_LEN + i] != frame_byte(seq, i)) {
			snprintf(r->why, sizeof(r->why), "frame %u: byte %u differs", seq, i);
			return -1;
		}
	return 1;
}

/* Post rx buffers on pair p until `posted` are out; kick if asked. */
static void rx_fill(const struct shape *s, unsigned p, unsigned *posted)
{
	uint16_t old = d.q[RXQ(p)].avail_idx;
	for (; *posted < s->posted; (*posted)++) {
		uint16_t slot = (uint16_t)(d.q[RXQ(p)].next_desc % QSZ);
		struct td_seg sg = { RXBUF(p) + (uint64_t)slot * s->bufsz, s->bufsz, 1 };
		td_add(&d, RXQ(p), &sg, 1);
	}
	kick_maybe(RXQ(p), old);
}

static void run_shape(const struct shape *s, struct result *r)
{
	uint64_t feats = B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_RING_F_EVENT_IDX) |
			 (s->mrg ? B(VIRTIO_NET_F_MRG_RXBUF) : 0) |
			 (s->gso ? B(VIRTIO_NET_F_GUEST_CSUM) | B(VIRTIO_NET_F_GUEST_TSO4) : 0) |
			 (s->pairs > 1 ? B(VIRTIO_NET_F_MQ) | B(VIRTIO_NET_F_CTRL_VQ) : 0);
	uint32_t sent[PAIRS] = { 0 }, recvd[PAIRS] = { 0 };
	unsigned tx_busy[PAIRS] = { 0 }, rx_posted[PAIRS] = { 0 };
	memset(r, 0, sizeof(*r));

	td_up(&d, feats, s->pairs > 1 ? 2 * PAIRS + 1 : 2, 1);
	if (s->pairs > 1 && pairs_set((uint16_t)s->pairs) != VIRTIO_NET_OK) {
		r->bad = true;
		snprintf(r->why, sizeof(r->why), "VQ_PAIRS_SET %u not acknowledged", s->pairs);
		return;
	}
	pthread_t ot;
	bool watching = false;
	if (s->mrg) {
		obs.nseen = 0;
		memset(obs.end, 0, sizeof(obs.end));
		obs_end(0);
		__atomic_store_n(&obs.run, 1, __ATOMIC_RELEASE);
		watching = pthread_create(&ot, NULL, observer, NULL) == 0;
	}
	/* fill the rx rings as the driver's probe does */
	for (unsigned p = 0; p < s->pairs; p++)
		rx_fill(s, p, &rx_posted[p]);

	long long end = td_now_ns() + RUN_NS;
	/* send for RUN_NS, then wait for what is still out (the next shape
	 * resets the device, and a late echo would land in its rings) */
	for (;;) {
		bool sending = false, out = false, progress = false;
		for (unsigned p = 0; p < s->pairs; p++) {
			sending |= sent[p] < MAX_FRAMES;
			out |= recvd[p] != sent[p];
		}
		sending = sending && td_now_ns() < end;
		if (!sending && !out)
			break;
		for (unsigned p = 0; p < s->pairs && !r->bad; p++) {
			uint32_t id, len;
			/* tx completions: the buffers are ours again */
			while (td_used(&d, TXQ(p), &id, &len) == 1) {
				tx_busy[p]--;
				progress = true;
			}
			/* send while the window and the tx ring allow */
			uint16_t old = d.q[TXQ(p)].avail_idx;
			while (sending && sent[p] < MAX_FRAMES && sent[p] - recvd[p] < WINDOW &&
			       tx_busy[p] < QSZ) {
				uint16_t slot = (uint16_t)(d.q[TXQ(p)].next_desc % QSZ);
				uint64_t gpa = TXBUF(p) + (uint64_t)slot * 2048u;
				struct td_seg sg = { gpa, frame_write(d.mem + gpa, sent[p]), 0 };
				td_add(&d, TXQ(p), &sg, 1);
				sent[p]++;
				tx_busy[p]++;
				progress = true;
			}
			kick_maybe(TXQ(p), old);
			/* receive, then refill what was taken */
			uint16_t freed = 0;
			int rc;
			while ((rc = rx_take(s, p, recvd[p], &freed, r)) == 1) {
				recvd[p]++;
				rx_posted[p] -= freed;
				progress = true;
			}
			if (rc < 0)
				r->bad = true;
			rx_fill(s, p, &rx_posted[p]);
		}
		if (r->bad)
			break;
		if (progress)
			continue;
		/* nothing to do: ask for interrupts, look once more, then sleep */
		bool again = false;
		for (unsigned p = 0; p < s->pairs; p++) {
			/* both queues armed, whatever the first one says */
			again |= td_enable_cb(&d, RXQ(p));
			again |= td_enable_cb(&d, TXQ(p));
		}
		if (again)
			continue;
		struct pollfd pf[2 * PAIRS];
		for (unsigned i = 0; i < 2 * s->pairs; i++)
			pf[i] = (struct pollfd){ d.efd[i], POLLIN, 0 };
		if (poll(pf, 2 * s->pairs, STALL_MS) == 0) {
			r->stalled = true;
			int at = 0;
			at += snprintf(r->why, sizeof(r->why), "no interrupt for %d ms:", STALL_MS);
			for (unsigned p = 0; p < s->pairs && at < (int)sizeof(r->why); p++)
				at += snprintf(r->why + at, sizeof(r->why) - (size_t)at,
					       " pair %u: %u sent, %u back, %u tx out, %u rx posted;", p,
					       sent[p], recvd[p], tx_busy[p], rx_posted[p]);
			break;
		}
		uint64_t cnt;
		for (unsigned i = 0; i < 2 * s->pairs; i++)
			if (pf[i].revents & POLLIN)
				(void)!read(d.efd[i], &cnt, sizeof(cnt));
	}
	memcpy(r->frames, recvd, sizeof(recvd));
	if (watching) {
		__atomic_store_n(&obs.run, 0, __ATOMIC_RELEASE);
		pthread_join(ot, NULL);
	}
	if (r->stalled || r->bad)
		dump_rings(s->pairs);
}

int main(void)
{
	static const struct shape shapes[] = {
		{ "roomy rx buffers", 1, false, false, 2048, QSZ },
		{ "an rx ring starved to 3 buffers", 1, false, false, 2048, 3 },
		{ "MRG_RXBUF, 512-byte buffers, at most 5 posted", 1, true, false, 512, 5 },
		{ "MRG_RXBUF, 512-byte buffers, full ring", 1, true, false, 512, QSZ },
		/* 33 chains gathered per read, most kept for the next frames */
		{ "MRG_RXBUF and GUEST_TSO4, 2048-byte buffers, full ring", 1, true, true, 2048, QSZ },
		{ "MRG_RXBUF and GUEST_TSO4, 2048-byte buffers, at most 40 posted", 1, true, true,
		  2048, 40 },
		/* two I/O threads, pair 1's kicks routed from pair 0's loop */
		{ "2 queue pairs, rx rings starved to 3 buffers", 2, false, false, 2048, 3 },
		{ "2 queue pairs, MRG_RXBUF, 512-byte buffers", 2, true, false, 512, 8 },
	};
	struct err e = { 0 };
	struct event_loop ev[PAIRS];
	pthread_t pt[PAIRS];
	int fds[PAIRS];

	td_mem_init(&d);
	for (unsigned p = 0; p < PAIRS; p++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv[p]))
			return 1;
		/* the device's end is non-blocking, as the tap is */
		if (fcntl(sv[p][0], F_SETFL, O_NONBLOCK))
			return 1;
		struct timeval tv = { 0, 50000 };
		if (setsockopt(sv[p][1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
			return 1;
		fds[p] = sv[p][0];
		for (unsigned i = 0; i < 2; i++)
			if ((d.efd[2 * p + i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
				return 1;
	}
	d.irq.msi = td_msi_efd;
	obs.seen = calloc(OBS_MAX, sizeof(*obs.seen));
	if (!obs.seen)
		return 1;
	n = calloc(1, sizeof(*n));
	int rc = vnet_init(n, fds, PAIRS, false, mac, &d.gm, &d.irq);
	CHECK_EQ(rc, 0, "vnet init, %d pairs", PAIRS);
	if (rc)
		return t_done(); /* nothing to drive */
	d.v = &n->vpci;
	/* devices.c's wiring: a loop per pair, with its tap queue and its
	 * pair's eventfd; the transport's kick eventfds on the first */
	bool up = true;
	for (unsigned p = 0; p < PAIRS; p++) {
		void *ref = (void *)(uintptr_t)p;
		up = up && event_init(&ev[p], &e) == 0 &&
		     event_add(&ev[p], fds[p], EPOLLIN | EPOLLET, pair_ready, ref, &e) == 0 &&
		     event_add(&ev[p], vnet_pair_kickfd(n, p), EPOLLIN, pair_ready, ref, &e) == 0;
	}
	up = up && vpci_start(&n->vpci, &ev[0], &e) == 0;
	for (unsigned p = 0; p < PAIRS; p++)
		up = up && event_start(&ev[p], &e) == 0;
	CHECK(up, "the pairs' I/O threads run%s%s", up ? "" : ": ", e.msg);
	if (!up)
		return t_done(); /* a driver would only wait for a stall */
	for (unsigned p = 0; p < PAIRS; p++)
		CHECK(pthread_create(&pt[p], NULL, peer, (void *)(uintptr_t)p) == 0,
		      "echo peer %u runs", p);

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *sh = &shapes[i];
		struct result r;
		uint64_t drops = __atomic_load_n(&n->stats_tx_drop, __ATOMIC_RELAXED) +
				 __atomic_load_n(&n->stats_rx_drop, __ATOMIC_RELAXED);
		kicks[0] = kicks[1] = 0;
		run_shape(sh, &r);
		if (r.stalled || r.bad)
			fprintf(stderr, "# %s: %s\n", sh->name, r.why);
		uint32_t least = r.frames[0], all = 0;
		for (unsigned p = 0; p < sh->pairs; p++) {
			least = r.frames[p] < least ? r.frames[p] : least;
			all += r.frames[p];
		}
		CHECK(!r.stalled && !r.bad && least >= 500,
		      "%s: %u frames out and back (at least %u on each pair), in order and intact, "
		      "no stall (%u tx, %u rx kicks)", sh->name, all, least, kicks[1], kicks[0]);
		if (sh->mrg)
			CHECK(obs.nseen > 0 && obs_splits() == 0,
			      "%s: a spinning reader saw no frame split by used->idx "
			      "(%u values seen, %u inside a frame)", sh->name, obs.nseen, obs_splits());
		CHECK_EQ(__atomic_load_n(&n->stats_tx_drop, __ATOMIC_RELAXED) +
			 __atomic_load_n(&n->stats_rx_drop, __ATOMIC_RELAXED) - drops, 0,
			 "%s: nothing dropped", sh->name);
		if (r.stalled || r.bad)
			break; /* the rings are in an unknown state */
	}
	CHECK_EQ(__atomic_load_n(&peer_errors, __ATOMIC_RELAXED), 0, "the peers sent every echo");

	__atomic_store_n(&stop_peer, 1, __ATOMIC_RELAXED);
	for (unsigned p = 0; p < PAIRS; p++) {
		pthread_join(pt[p], NULL);
		event_destroy(&ev[p]);
	}
	vpci_stop(&n->vpci);
	vnet_destroy(n);
	free(n);
	free(d.mem);
	free(obs.seen);
	for (unsigned p = 0; p < PAIRS; p++) {
		close(sv[p][0]);
		close(sv[p][1]);
		close(d.efd[2 * p]);
		close(d.efd[2 * p + 1]);
	}
	return t_done();
}
