/* virtio-blk with many requests in flight, for both backends: batches
 * of writes and reads (the file is the oracle), completion out of order
 * (uring), a bad request inside a batch, a reset with requests in flight,
 * and uring completions delivered by an event loop thread. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>

#include "t.h"
#include "virtio_blk.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))
#define IMG (4u << 20)
#define NR 32u
#define QS 128
#define HDR(i) (TD_BUF + 32u * (i))
#define ST(i) (TD_BUF + 0x1000u + (i))
#define DAT(i) (TD_BUF + 0x10000u + 4096u * (i))

static struct td d;
static uint8_t *m;

/* Make request i available: type at sector, 4 KiB at DAT(i) (len 0: none). */
static uint16_t add(unsigned i, uint32_t type, uint64_t sector, uint32_t len)
{
	struct { uint32_t type, reserved; uint64_t sector; } h = { type, 0, sector };
	memcpy(m + HDR(i), &h, sizeof(h));
	m[ST(i)] = 0xee;
	struct td_seg s[3] = { { HDR(i), 16, 0 }, { DAT(i), len, type != VIRTIO_BLK_T_OUT }, { ST(i), 1, 1 } };
	if (!len)
		s[1] = s[2];
	return td_add(&d, 0, s, len ? 3 : 2);
}

static void bring_up(void)
{
	if (!(td_negotiate(&d, B(VIRTIO_F_VERSION_1) | B(VIRTIO_BLK_F_FLUSH) | B(VIRTIO_BLK_F_DISCARD)) &
	      VIRTIO_CONFIG_S_FEATURES_OK) || td_queue(&d, 0, QS) != 1)
		abort();
	td_driver_ok(&d);
}

static uint16_t used_idx(void)
{
	uint16_t v;
	memcpy(&v, m + d.q[0].used + 2, 2);
	return v;
}

static void pattern(uint8_t *p, unsigned i, unsigned salt)
{
	for (unsigned k = 0; k < 4096; k++)
		p[k] = (uint8_t)(k * 31 + i * 7 + salt);
}

static void one_backend(int fd, unsigned flags)
{
	const char *bn = flags & VBLK_URING ? "uring" : "thread";
	struct vblk *b = calloc(1, sizeof(*b));
	uint16_t head[NR];
	uint32_t id, ul;
	int rc = vblk_init(b, fd, flags, IMG, "async", &d.gm, &d.irq);
	if (rc && (flags & VBLK_URING) && (rc == -ENOSYS || rc == -EPERM)) {
		printf("ok - %s # SKIP no io_uring here (%s)\n", bn, strerror(-rc));
		free(b);
		return;
	}
	CHECK_EQ(rc, 0, "%s: vblk init", bn);
	d.v = &b->vpci;
	bring_up();

	/* NR writes in one kick: each head used once, each with status OK */
	for (unsigned i = 0; i < NR; i++) {
		pattern(m + DAT(i), i, flags);
		head[i] = add(i, VIRTIO_BLK_T_OUT, 8u * (NR - 1 - i), 4096);
	}
	td_kick(&d, 0);
	vblk_complete(b, true);
	unsigned seen = 0, bad = 0;
	uint64_t mask = 0;
	while (td_used(&d, 0, &id, &ul)) {
		seen++;
		unsigned i = 0;
		while (i < NR && head[i] != id)
			i++;
		if (i == NR || (mask >> i) & 1 || ul != 1 || m[ST(i)] != VIRTIO_BLK_S_OK)
			bad++;
		else
			mask |= 1ull << i;
	}
	CHECK(seen == NR && bad == 0, "%s: %u writes in one batch: each head used once, status OK (%u used, %u bad)",
	      bn, NR, seen, bad);
	uint8_t buf[4096], want[4096];
	bad = 0;
	for (unsigned i = 0; i < NR; i++) {
		pattern(want, i, flags);
		if (pread(fd, buf, 4096, 4096ll * (NR - 1 - i)) != 4096 || memcmp(buf, want, 4096))
			bad++;
	}
	CHECK_EQ(bad, 0, "%s: the file holds every write of the batch", bn);

	/* NR reads back in one batch, one out-of-range read among them */
	for (unsigned i = 0; i < NR; i++) {
		memset(m + DAT(i), 0, 4096);
		head[i] = add(i, VIRTIO_BLK_T_IN, i == 7 ? IMG / 512 - 4 : 8u * (NR - 1 - i), 4096);
	}
	td_kick(&d, 0);
	vblk_complete(b, true);
	seen = bad = 0;
	while (td_used(&d, 0, &id, &ul))
		seen++;
	for (unsigned i = 0; i < NR; i++) {
		pattern(want, i, flags);
		if (i == 7 ? m[ST(i)] != VIRTIO_BLK_S_IOERR
			   : m[ST(i)] != VIRTIO_BLK_S_OK || memcmp(m + DAT(i), want, 4096))
			bad++;
	}
	CHECK(seen == NR && bad == 0, "%s: %u reads in one batch return the data; the one past the end "
	      "alone fails (%u used, %u bad)", bn, NR, seen, bad);

	/* FLUSH then GET_ID in one kick: uring answers GET_ID at once and
	 * the fsync later, so the used ring takes them out of order */
	uint16_t hf = add(0, VIRTIO_BLK_T_FLUSH, 0, 0);
	uint16_t hg = add(1, VIRTIO_BLK_T_GET_ID, 0, 4096);
	td_kick(&d, 0);
	vblk_complete(b, true);
	uint32_t id1 = 0xffff, id2 = 0xffff, ul1 = 0, ul2 = 0;
	CHECK(td_used(&d, 0, &id1, &ul1) && td_used(&d, 0, &id2, &ul2), "%s: flush and get-id both used", bn);
	if (flags & VBLK_URING)
		CHECK(id1 == hg && id2 == hf, "uring: get-id (head %u) used before the earlier flush (head %u)",
		      hg, hf);
	else
		CHECK(id1 == hf && id2 == hg, "thread: requests used in order");
	CHECK(m[ST(0)] == VIRTIO_BLK_S_OK && m[ST(1)] == VIRTIO_BLK_S_OK && (id1 == hg ? ul1 : ul2) == 21 &&
	      memcmp(m + DAT(1), "async", 5) == 0, "%s: both OK, the id arrived", bn);

	/* a reset with requests in flight: afterwards nothing reaches the
	 * old ring, and the device serves a new one */
	for (unsigned i = 0; i < NR; i++) {
		pattern(m + DAT(i), i, 99);
		if (i % 4 == 3)
			add(i, VIRTIO_BLK_T_FLUSH, 0, 0);
		else
			add(i, VIRTIO_BLK_T_OUT, 8u * i, 4096);
	}
	uint16_t base = used_idx();
	td_kick(&d, 0); /* no wait: whatever is not done stays in flight */
	uint16_t before = used_idx();
	td_wr(&d, 0x14, 0, 1); /* reset */
	uint16_t at_reset = used_idx();
	vblk_complete(b, true);
	usleep(20000);
	vblk_complete(b, true);
	printf("# %s: %u of %u requests used before the reset, %u by its end\n", bn,
	       (uint16_t)(before - base), NR, (uint16_t)(at_reset - base));
	CHECK(used_idx() == at_reset, "%s: nothing reaches the used ring after the reset", bn);
	bring_up();
	memset(m + DAT(0), 0, 4096);
	add(0, VIRTIO_BLK_T_IN, 8, 4096);
	td_kick(&d, 0);
	vblk_complete(b, true);
	pattern(want, 1, 99);
	CHECK(td_used(&d, 0, &id, &ul) && id == 0 && ul == 4097 && m[ST(0)] == VIRTIO_BLK_S_OK,
	      "%s: after the reset a new ring is served", bn);
	/* the write to sector 8 was in that batch: done or not, never torn */
	pattern(buf, 1, flags);
	CHECK(memcmp(m + DAT(0), want, 4096) == 0 || memcmp(m + DAT(0), buf, 4096) == 0,
	      "%s: a block written across the reset holds the old or the new data", bn);
	vblk_destroy(b);

	if (!(flags & VBLK_URING)) {
		free(b);
		return;
	}
	/* completions through an event loop thread, as in the VMM */
	struct event_loop ev;
	struct err er;
	CHECK_EQ(vblk_init(b, fd, flags, IMG, "async", &d.gm, &d.irq), 0, "uring: init again");
	d.v = &b->vpci;
	bring_up();
	CHECK_EQ(event_init(&ev, &er), 0, "event loop");
	CHECK_EQ(vblk_start(b, &ev, &er), 0, "uring: completions on the event loop");
	CHECK_EQ(event_start(&ev, &er), 0, "event thread");
	d.line = 0; /* a new device: the last one's line went with it */
	(void)td_rd(&d, VPCI_ISR_OFF, 1); /* the driver's ISR read: the line drops */
	int irqs = d.msi_count + d.line_edges;
	add(0, VIRTIO_BLK_T_FLUSH, 0, 0);
	td_kick(&d, 0); /* no vblk_complete: the loop thread must finish it */
	for (int i = 0; i < 400 && !__atomic_load_n(m + d.q[0].used + 2, __ATOMIC_SEQ_CST); i++)
		usleep(5000);
	CHECK(td_used(&d, 0, &id, &ul) && m[ST(0)] == VIRTIO_BLK_S_OK, "uring: a flush completed by the event thread");
	CHECK(d.msi_count + d.line_edges > irqs, "uring: ... which raised the interrupt");
	event_destroy(&ev);
	vblk_destroy(b);
	free(b);
}

int main(void)
{
	char dir[] = "/tmp/kvmlab-vblka-XXXXXX", path[64];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/img", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	/* the fd keeps the file: nothing left behind, whatever happens */
	unlink(path);
	rmdir(dir);
	if (fd < 0 || ftruncate(fd, IMG))
		return 1;
	td_mem_init(&d);
	m = d.mem;
	one_backend(fd, 0);
	one_backend(fd, VBLK_URING);
	free(d.mem);
	close(fd);
	return t_done();
}
