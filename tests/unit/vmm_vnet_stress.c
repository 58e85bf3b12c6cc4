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
 * Three shapes: roomy rx buffers; an rx ring starved to a few buffers, so
 * the device keeps running dry with frames waiting in the tap (the
 * edge-triggered tap then relies on the driver's refill kick); and
 * MRG_RXBUF with small buffers, so frames span up to three of them and
 * the device gives chains back and arms the ring when it has too few. */
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
#define RXQ 0
#define TXQ 1
#define QSZ 64u       /* td_up's ring size */
#define TXBUF TD_BUF  /* QSZ tx buffers of 2 KiB */
#define RXBUF (TD_BUF + QSZ * 2048u)
/* frames in flight: fewer than the 10 datagrams a unix socket queues by
 * default (net.unix.max_dgram_qlen), so neither side ever drops one */
#define WINDOW 8u
#define STALL_MS 5000 /* a lost wake-up is for ever; a busy CI host is not */
#define RUN_NS 700000000ll /* per shape */
#define MAX_FRAMES 200000u

static struct td d;
static struct vnet *n;
static int sv[2];
static int stop_peer;
static unsigned peer_errors;
static const uint8_t mac[6] = { 0x52, 0x54, 0, 4, 5, 6 };

static void pair_ready(void *opaque, uint32_t events)
{
	(void)opaque;
	(void)events;
	vnet_pair_run(n, 0);
}

static void *peer(void *arg)
{
	uint8_t buf[4096];
	(void)arg;
	while (!__atomic_load_n(&stop_peer, __ATOMIC_RELAXED)) {
		ssize_t r = recv(sv[1], buf, sizeof(buf), 0); /* SO_RCVTIMEO bounds it */
		if (r < 0)
			continue;
		if (send(sv[1], buf, (size_t)r, 0) != r)
			__atomic_add_fetch(&peer_errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint16_t ld16(uint64_t gpa, int order)
{
	return __atomic_load_n((uint16_t *)(d.mem + gpa), order);
}

static unsigned kicks[2];
static void kick_maybe(unsigned qi, uint16_t old)
{
	kicks[qi] += td_kick_event(&d, qi, old);
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

/* A second reader of the rx used ring, spinning while an MRG_RXBUF
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
		uint16_t idx = ld16(d.q[RXQ].used + 2, __ATOMIC_ACQUIRE);
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
	bool mrg;
	uint32_t bufsz;   /* each rx buffer */
	unsigned posted;  /* most rx buffers on the ring at once */
};

struct result {
	uint32_t frames;
	bool stalled, bad;
	char why[160];
};

static void dump_rings(void)
{
	fprintf(stderr, "# rx: ");
	vq_dump(&n->vpci.q[RXQ].vq, stderr);
	fprintf(stderr, "# tx: ");
	vq_dump(&n->vpci.q[TXQ].vq, stderr);
}

/* Take one received frame off the rx ring: 1 done (checked), 0 nothing
 * there, -1 malformed (r->why says how). */
static int rx_take(const struct shape *s, uint32_t expect, uint16_t *freed, struct result *r)
{
	static uint8_t frame[4096];
	uint32_t id, len;
	if (td_used(&d, RXQ, &id, &len) != 1)
		return 0;
	if (id >= QSZ || len > s->bufsz || len < VNET_HDR_LEN) {
		snprintf(r->why, sizeof(r->why), "rx used element id %u len %u", id, len);
		return -1;
	}
	const uint8_t *b = d.mem + RXBUF + (uint64_t)id * s->bufsz;
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
		if (td_used(&d, RXQ, &id, &len) != 1) {
			snprintf(r->why, sizeof(r->why),
				 "frame %u: buffer %u of %u not published with the first", expect,
				 k + 1, nbuf);
			return -1;
		}
		if (id >= QSZ || len > s->bufsz || got + len > sizeof(frame)) {
			snprintf(r->why, sizeof(r->why), "rx used element id %u len %u", id, len);
			return -1;
		}
		memcpy(frame + got, d.mem + RXBUF + (uint64_t)id * s->bufsz, len);
		got += len;
		(*freed)++;
	}
	obs_end(d.q[RXQ].used_seen);
	uint32_t seq;
	memcpy(&seq, frame + VNET_HDR_LEN + 14, 4);
	if (seq != expect || got != VNET_HDR_LEN + frame_len(expect)) {
		snprintf(r->why, sizeof(r->why), "expected frame %u (%u bytes), got frame %u (%u bytes)",
			 expect, VNET_HDR_LEN + frame_len(expect), seq, got);
		return -1;
	}
	for (uint32_t i = 18; i < frame_len(seq); i++)
		if (frame[VNET_HDR_LEN + i] != frame_byte(seq, i)) {
			snprintf(r->why, sizeof(r->why), "frame %u: byte %u differs", seq, i);
			return -1;
		}
	return 1;
}

static void run_shape(const struct shape *s, struct result *r)
{
	uint64_t feats = B(VIRTIO_F_VERSION_1) | B(VIRTIO_NET_F_MAC) | B(VIRTIO_RING_F_EVENT_IDX) |
			 (s->mrg ? B(VIRTIO_NET_F_MRG_RXBUF) : 0);
	uint32_t sent = 0, recvd = 0;
	unsigned tx_busy = 0, rx_posted = 0;
	memset(r, 0, sizeof(*r));

	td_up(&d, feats, 2, 1);
	pthread_t ot;
	bool watching = false;
	if (s->mrg) {
		obs.nseen = 0;
		memset(obs.end, 0, sizeof(obs.end));
		obs_end(0);
		__atomic_store_n(&obs.run, 1, __ATOMIC_RELEASE);
		watching = pthread_create(&ot, NULL, observer, NULL) == 0;
	}
	/* fill the rx ring as the driver's probe does */
	uint16_t old = d.q[RXQ].avail_idx;
	for (; rx_posted < s->posted; rx_posted++) {
		uint16_t slot = (uint16_t)(d.q[RXQ].next_desc % QSZ);
		struct td_seg sg = { RXBUF + (uint64_t)slot * s->bufsz, s->bufsz, 1 };
		td_add(&d, RXQ, &sg, 1);
	}
	kick_maybe(RXQ, old);

	long long end = now_ns() + RUN_NS;
	/* send for RUN_NS, then wait for what is still out (the next shape
	 * resets the device, and a late echo would land in its rings) */
	for (;;) {
		bool sending = sent < MAX_FRAMES && now_ns() < end;
		if (!sending && recvd == sent)
			break;
		bool progress = false;
		uint32_t id, len;
		/* tx completions: the buffers are ours again */
		while (td_used(&d, TXQ, &id, &len) == 1) {
			tx_busy--;
			progress = true;
		}
		/* send while the window and the tx ring allow */
		old = d.q[TXQ].avail_idx;
		while (sending && sent - recvd < WINDOW && tx_busy < QSZ) {
			uint16_t slot = (uint16_t)(d.q[TXQ].next_desc % QSZ);
			uint64_t gpa = TXBUF + (uint64_t)slot * 2048u;
			struct td_seg sg = { gpa, frame_write(d.mem + gpa, sent), 0 };
			td_add(&d, TXQ, &sg, 1);
			sent++;
			tx_busy++;
			progress = true;
		}
		kick_maybe(TXQ, old);
		/* receive, then refill what was taken */
		uint16_t freed = 0;
		int rc;
		while ((rc = rx_take(s, recvd, &freed, r)) == 1) {
			recvd++;
			rx_posted -= freed;
			progress = true;
		}
		if (rc < 0) {
			r->bad = true;
			break;
		}
		old = d.q[RXQ].avail_idx;
		for (; rx_posted < s->posted; rx_posted++) {
			uint16_t slot = (uint16_t)(d.q[RXQ].next_desc % QSZ);
			struct td_seg sg = { RXBUF + (uint64_t)slot * s->bufsz, s->bufsz, 1 };
			td_add(&d, RXQ, &sg, 1);
		}
		kick_maybe(RXQ, old);
		if (progress)
			continue;
		/* nothing to do: ask for interrupts, look once more, then sleep */
		if (td_enable_cb(&d, RXQ) | td_enable_cb(&d, TXQ))
			continue;
		struct pollfd pf[2] = { { d.efd[0], POLLIN, 0 }, { d.efd[1], POLLIN, 0 } };
		int pr = poll(pf, 2, STALL_MS);
		if (pr == 0) {
			r->stalled = true;
			snprintf(r->why, sizeof(r->why),
				 "no interrupt for %d ms: %u frames sent, %u back, %u tx buffers out, "
				 "%u rx buffers posted", STALL_MS, sent, recvd, tx_busy, rx_posted);
			break;
		}
		uint64_t cnt;
		for (unsigned i = 0; i < 2; i++)
			if (pf[i].revents & POLLIN)
				(void)!read(d.efd[i], &cnt, sizeof(cnt));
	}
	r->frames = recvd;
	if (watching) {
		__atomic_store_n(&obs.run, 0, __ATOMIC_RELEASE);
		pthread_join(ot, NULL);
	}
	if (r->stalled || r->bad)
		dump_rings();
}

int main(void)
{
	static const struct shape shapes[] = {
		{ "roomy rx buffers", false, 2048, QSZ },
		{ "an rx ring starved to 3 buffers", false, 2048, 3 },
		{ "MRG_RXBUF, 512-byte buffers, at most 5 posted", true, 512, 5 },
		{ "MRG_RXBUF, 512-byte buffers, full ring", true, 512, QSZ },
	};
	struct err e = { 0 };
	struct event_loop ev;
	pthread_t pt;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	/* the device's end is non-blocking, as the tap is */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK))
		return 1;
	struct timeval tv = { 0, 50000 };
	if (setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return 1;
	td_mem_init(&d);
	for (unsigned i = 0; i < 2; i++)
		if ((d.efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return 1;
	d.irq.msi = td_msi_efd;
	obs.seen = calloc(OBS_MAX, sizeof(*obs.seen));
	if (!obs.seen)
		return 1;
	n = calloc(1, sizeof(*n));
	CHECK_EQ(vnet_init(n, &sv[0], 1, false, mac, &d.gm, &d.irq), 0, "vnet init");
	d.v = &n->vpci;
	/* devices.c's wiring for one pair on one loop */
	CHECK(event_init(&ev, &e) == 0 &&
	      event_add(&ev, sv[0], EPOLLIN | EPOLLET, pair_ready, NULL, &e) == 0 &&
	      event_add(&ev, vnet_pair_kickfd(n, 0), EPOLLIN, pair_ready, NULL, &e) == 0 &&
	      vpci_start(&n->vpci, &ev, &e) == 0 && event_start(&ev, &e) == 0,
	      "the pair's I/O thread runs");
	CHECK(pthread_create(&pt, NULL, peer, NULL) == 0, "echo peer runs");

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct result r;
		uint64_t drops = __atomic_load_n(&n->stats_tx_drop, __ATOMIC_RELAXED) +
				 __atomic_load_n(&n->stats_rx_drop, __ATOMIC_RELAXED);
		kicks[0] = kicks[1] = 0;
		run_shape(&shapes[i], &r);
		if (r.stalled || r.bad)
			fprintf(stderr, "# %s: %s\n", shapes[i].name, r.why);
		CHECK(!r.stalled && !r.bad && r.frames >= 500,
		      "%s: %u frames out and back, in order and intact, no stall (%u tx, %u rx kicks)",
		      shapes[i].name, r.frames, kicks[1], kicks[0]);
		if (shapes[i].mrg)
			CHECK(obs.nseen > 0 && obs_splits() == 0,
			      "%s: a spinning reader saw no frame split by used->idx "
			      "(%u values seen, %u inside a frame)", shapes[i].name, obs.nseen,
			      obs_splits());
		CHECK_EQ(__atomic_load_n(&n->stats_tx_drop, __ATOMIC_RELAXED) +
			 __atomic_load_n(&n->stats_rx_drop, __ATOMIC_RELAXED) - drops, 0,
			 "%s: nothing dropped", shapes[i].name);
		if (r.stalled || r.bad)
			break; /* the rings are in an unknown state */
	}
	CHECK_EQ(__atomic_load_n(&peer_errors, __ATOMIC_RELAXED), 0, "the peer sent every echo");

	__atomic_store_n(&stop_peer, 1, __ATOMIC_RELAXED);
	pthread_join(pt, NULL);
	event_destroy(&ev);
	vpci_stop(&n->vpci);
	vnet_destroy(n);
	free(n);
	free(d.mem);
	free(obs.seen);
	close(sv[0]);
	close(sv[1]);
	close(d.efd[0]);
	close(d.efd[1]);
	return t_done();
}
