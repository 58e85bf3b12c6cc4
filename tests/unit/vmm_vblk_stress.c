/* virtio-blk under real concurrency, for both backends: the device on an
 * epoll I/O thread wired as devices.c wires a disk (the transport's kick
 * eventfd standing in for KVM's ioeventfd; io_uring's completion fd on
 * the same loop), and this thread as the guest driver with EVENT_IDX: it
 * kicks only when avail_event asks, and sleeps only after publishing
 * used_event and looking once more (tests/unit/vmm_vdrv.h).
 *
 * SLOTS requests stay in flight, each slot on its own descriptors and
 * its own part of the image, so they may complete in any order. A slot
 * writes a block, then reads back a random block of its part; an
 * oracle of what each block last got checks every read, with a FLUSH
 * now and then. A completion or an interrupt lost anywhere leaves the
 * driver waiting: the test fails at a STALL_MS stall with the ring
 * dumped, instead of hanging. The image is a memfd: nothing on disk. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/virtio_blk.h>

#include "t.h"
#include "event.h"
#include "virtio_blk.h"
#include "vmm_vdrv.h"

#define B(x) (1ull << (x))
#define QSZ 64u
#define SLOTS 16u       /* 3 descriptors each: 48 of the ring's 64 */
#define BPS 32u         /* 4 KiB blocks per slot */
#define IMG ((uint64_t)SLOTS * BPS * 4096u)
#define HDR(i) (TD_BUF + 16u * (i))
#define ST(i) (TD_BUF + 0x400u + (i))
#define DAT(i) (TD_BUF + 0x1000u + 4096u * (i))
#define STALL_MS 5000 /* a lost wake-up is for ever; a busy CI host is not */
#define RUN_NS 700000000ll

static struct td d;
static uint8_t *m;

struct slot {
	bool busy;
	uint32_t type;
	unsigned seq; /* submission order */
	unsigned blk; /* within the slot's part */
};

static uint32_t gen[SLOTS][BPS]; /* 0: never written (zeroes) */
static uint32_t next_gen = 1;
static unsigned next_seq;

static uint8_t pat(unsigned i, unsigned b, uint32_t g, unsigned k)
{
	return g ? (uint8_t)(k * 13u + i * 7u + b * 3u + g * 11u + 1u) : 0;
}

/* Slot i's next request on its own descriptors 3i.. (td_add takes
 * them from next_desc), made available. */
static void submit(struct slot *s, unsigned i, unsigned *rnd)
{
	*rnd = *rnd * 1103515245u + 12345u;
	unsigned r = *rnd >> 8;
	s->blk = r % BPS;
	if (r % 17 == 0)
		s->type = VIRTIO_BLK_T_FLUSH;
	else
		s->type = (r >> 5) % 2 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	uint64_t sector = ((uint64_t)i * BPS + s->blk) * 8u;
	struct { uint32_t type, reserved; uint64_t sector; } h = { s->type, 0, sector };
	memcpy(m + HDR(i), &h, sizeof(h));
	m[ST(i)] = 0xee;
	if (s->type == VIRTIO_BLK_T_OUT) {
		gen[i][s->blk] = next_gen++;
		for (unsigned k = 0; k < 4096; k++)
			m[DAT(i) + k] = pat(i, s->blk, gen[i][s->blk], k);
	} else {
		memset(m + DAT(i), 0xaa, 4096);
	}
	struct td_seg sg[3] = { { HDR(i), 16, 0 },
				{ DAT(i), 4096, s->type == VIRTIO_BLK_T_IN },
				{ ST(i), 1, 1 } };
	if (s->type == VIRTIO_BLK_T_FLUSH)
		sg[1] = sg[2];
	d.q[0].next_desc = (uint16_t)(3u * i);
	td_add(&d, 0, sg, s->type == VIRTIO_BLK_T_FLUSH ? 2 : 3);
	s->busy = true;
	s->seq = next_seq++;
}

/* A completion of slot i: status OK, and a read returns what the
 * oracle says its block last got. NULL, or what is wrong. */
static const char *check(const struct slot *s, unsigned i)
{
	if (m[ST(i)] != VIRTIO_BLK_S_OK)
		return "status not OK";
	if (s->type != VIRTIO_BLK_T_IN)
		return NULL;
	for (unsigned k = 0; k < 4096; k++)
		if (m[DAT(i) + k] != pat(i, s->blk, gen[i][s->blk], k))
			return "read returned other bytes than the last write";
	return NULL;
}

static void one_backend(unsigned flags)
{
	const char *bn = flags & VBLK_URING ? "uring" : "thread";
	struct vblk *b = calloc(1, sizeof(*b));
	struct slot sl[SLOTS];
	struct event_loop ev;
	struct err e = { 0 };
	unsigned rnd = 1, done = 0, kicks = 0, ooo = 0;
	char why[160] = "";

	memset(sl, 0, sizeof(sl));
	memset(gen, 0, sizeof(gen));
	int fd = memfd_create("kvmlab-vblk-stress", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)IMG)) {
		CHECK(0, "%s: memfd image", bn);
		free(b);
		return;
	}
	int rc = vblk_init(b, fd, flags, IMG, "stress", &d.gm, &d.irq);
	if (rc && (flags & VBLK_URING) && (rc == -ENOSYS || rc == -EPERM)) {
		printf("ok - %s # SKIP no io_uring here (%s)\n", bn, strerror(-rc));
		free(b);
		close(fd);
		return;
	}
	CHECK_EQ(rc, 0, "%s: vblk init", bn);
	if (rc) {
		free(b);
		close(fd);
		return;
	}
	d.v = &b->vpci;
	/* devices.c's wiring for one disk */
	bool up = event_init(&ev, &e) == 0 && vpci_start(&b->vpci, &ev, &e) == 0 &&
		  vblk_start(b, &ev, &e) == 0 && event_start(&ev, &e) == 0;
	CHECK(up, "%s: the disk's I/O thread runs%s%s", bn, up ? "" : ": ", e.msg);
	if (!up)
		return; /* a driver would only wait for a stall */
	td_up(&d, B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_FLUSH) | B(VIRTIO_RING_F_EVENT_IDX), 1, 1);

	long long end = td_now_ns() + RUN_NS;
	for (;;) {
		bool more = td_now_ns() < end;
		unsigned busy = 0;
		bool progress = false;
		uint16_t old = d.q[0].avail_idx;
		for (unsigned i = 0; i < SLOTS; i++) {
			if (!sl[i].busy && more) {
				submit(&sl[i], i, &rnd);
				progress = true;
			}
			busy += sl[i].busy;
		}
		kicks += td_kick_event(&d, 0, old);
		if (!busy)
			break;
		uint32_t id, len;
		while (td_used(&d, 0, &id, &len) == 1) {
			unsigned i = id / 3;
			const char *bad = id % 3 || i >= SLOTS || !sl[i].busy ? "used id names no request"
									       : check(&sl[i], i);
			if (bad) {
				snprintf(why, sizeof(why), "request %u (used id %u): %s", done, id, bad);
				break;
			}
			for (unsigned k = 0; k < SLOTS; k++)
				if (sl[k].busy && sl[k].seq < sl[i].seq) {
					ooo++; /* an older request is still out */
					break;
				}
			sl[i].busy = false;
			done++;
			progress = true;
		}
		if (why[0])
			break;
		if (progress || td_enable_cb(&d, 0))
			continue;
		struct pollfd pf = { d.efd[0], POLLIN, 0 };
		if (poll(&pf, 1, STALL_MS) == 0) {
			snprintf(why, sizeof(why), "no interrupt for %d ms with %u requests in flight",
				 STALL_MS, busy);
			break;
		}
		uint64_t cnt;
		(void)!read(d.efd[0], &cnt, sizeof(cnt));
	}
	if (why[0]) {
		fprintf(stderr, "# %s: %s\n# ring: ", bn, why);
		vq_dump(&b->vpci.q[0].vq, stderr);
	}
	CHECK(!why[0] && done >= 200,
	      "%s: %u requests, %u in flight, each checked, no stall (%u kicks; %u completed "
	      "before an older one)", bn, done, SLOTS, kicks, ooo);

	event_destroy(&ev);
	vpci_stop(&b->vpci);
	vblk_destroy(b);
	free(b);
	close(fd);
}

int main(void)
{
	td_mem_init(&d);
	m = d.mem;
	if ((d.efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return 1;
	d.irq.msi = td_msi_efd;
	one_backend(0);
	one_backend(VBLK_URING);
	close(d.efd[0]);
	free(d.mem);
	return t_done();
}
