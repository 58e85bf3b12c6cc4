/* Hostile-guest regressions: each block is a driver doing something the
 * spec forbids, checked against what a host observer sees (bytes on the
 * socket standing in for the tap, register read-back, stderr lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/virtio_net.h>

#include "t.h"
#include "virtio_blk.h"
#include "virtio_net.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))

/* Run fn with stderr going to a memfd; returns the lines it printed. */
static int stderr_lines(void (*fn)(void *), void *arg)
{
	int mfd = memfd_create("stderr", MFD_CLOEXEC), saved = dup(2);
	if (mfd < 0 || saved < 0)
		abort();
	fflush(stderr);
	dup2(mfd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char buf[8192];
	ssize_t n = pread(mfd, buf, sizeof(buf), 0);
	close(mfd);
	int lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

/* a guest that resets and re-breaks a queue in a loop */
static void break_loop(void *arg)
{
	struct gmem *gm = arg;
	struct vq q = { .name = "hostile" };
	struct vq_chain *c = malloc(sizeof(*c));
	for (unsigned i = 0; i < 100; i++) {
		memset(gm->r[0].host, 0, 0x4000);
		if (vq_enable(&q, gm, 8, 0x1000, 0x2000, 0x3000, false, false))
			abort();
		uint16_t head = 99, idx = 1; /* names a descriptor past the table */
		memcpy(gm->r[0].host + 0x2004, &head, 2);
		memcpy(gm->r[0].host + 0x2002, &idx, 2);
		if (vq_pop(&q, c) != -EIO)
			abort();
		vq_reset(&q);
	}
	free(c);
}

/* a guest that enables an oversized queue over and over */
static void enable_loop(void *arg)
{
	struct td *d = arg;
	for (unsigned i = 0; i < 100; i++) {
		td_negotiate(d, B(VIRTIO_F_VERSION_1));
		(void)td_queue(d, 0, 256);
	}
}

int main(void)
{
	struct td d;
	uint32_t id, len;

	/* --- virtio-blk: queue_size above queue_max (128) --- */
	td_mem_init(&d);
	struct vblk *b = calloc(1, sizeof(*b));
	int fd = memfd_create("img", MFD_CLOEXEC);
	if (!b || fd < 0 || ftruncate(fd, 1 << 20))
		return 1;
	CHECK_EQ(vblk_init(b, fd, false, 1 << 20, "x", &d.gm, &d.irq), 0, "vblk init");
	d.v = &b->vpci;
	td_negotiate(&d, B(VIRTIO_F_VERSION_1));
	td_wr(&d, 0x16, 0, 2);
	CHECK_EQ(td_rd(&d, 0x18, 2), VBLK_QUEUE_SIZE, "queue_size reads the maximum");
	CHECK_EQ(td_queue(&d, 0, 256), 0, "queue size 256 > max 128: enable refused");
	CHECK(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, "and the device asks for a reset");
	td_negotiate(&d, B(VIRTIO_F_VERSION_1));
	CHECK_EQ(td_queue(&d, 0, 64), 1, "after reset a smaller queue is fine");
	CHECK_EQ(td_rd(&d, 0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, 0, "NEEDS_RESET gone after reset");

	/* --- bounded logging of repeatable driver errors --- */
	int n = stderr_lines(enable_loop, &d);
	CHECK(n >= 1 && n <= VQ_LOG_MAX, "100 bad enables log %d lines (<= %d)", n, VQ_LOG_MAX);
	struct gmem gm;
	uint8_t *mem = aligned_alloc(4096, 0x10000);
	gmem_init_flat(&gm, mem, 0x10000);
	n = stderr_lines(break_loop, &gm);
	CHECK(n >= 1 && n <= VQ_LOG_MAX, "100 reset+break cycles log %d lines (<= %d)", n, VQ_LOG_MAX);
	free(mem);
	vblk_destroy(b);
	free(b);
	close(fd);
	free(d.mem);

	/* --- virtio-net: a tx chain longer than any frame --- */
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
	int sv[2];
	td_mem_init(&d);
	struct vnet *vn = calloc(1, sizeof(*vn));
	if (!vn || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	int big = 1 << 20;
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	CHECK_EQ(vnet_init(vn, &sv[0], 1, false, mac, &d.gm, &d.irq), 0, "vnet init");
	d.v = &vn->vpci;
	td_negotiate(&d, B(VIRTIO_F_VERSION_1));
	CHECK_EQ(td_queue(&d, 0, 64) + td_queue(&d, 1, 64), 2, "queues up");
	td_driver_ok(&d);
	/* header + 3 x 32 KiB of frame: 96 KiB, past any 64 KiB GSO frame */
	struct td_seg big3[4] = {
		{ TD_BUF, VNET_HDR_LEN, 0 }, { TD_BUF + 0x10000, 0x8000, 0 },
		{ TD_BUF + 0x18000, 0x8000, 0 }, { TD_BUF + 0x20000, 0x8000, 0 },
	};
	memset(d.mem + TD_BUF, 0, VNET_HDR_LEN);
	td_add(&d, 1, big3, 4);
	td_kick(&d, 1);
	vnet_pair_run(vn, 0); /* the kick only wakes the pair's I/O thread */
	uint8_t *got = malloc(0x20000);
	ssize_t r = recv(sv[1], got, 0x20000, MSG_DONTWAIT);
	CHECK_EQ(r, -1, "oversized frame not sent (recv got %zd)", r);
	CHECK(td_used(&d, 1, &id, &len) == 1 && len == 0, "oversized chain returned, len 0");
	CHECK_EQ(vn->stats_tx_drop, 1, "oversized frame counted as a drop");
	/* the largest GSO frame still goes through */
	struct td_seg ok2[2] = { { TD_BUF, VNET_HDR_LEN, 0 }, { TD_BUF + 0x10000, 65535 + 14 + 4, 0 } };
	td_add(&d, 1, ok2, 2);
	td_kick(&d, 1);
	vnet_pair_run(vn, 0);
	r = recv(sv[1], got, 0x20000, MSG_DONTWAIT);
	CHECK_EQ(r, VNET_HDR_LEN + 65535 + 14 + 4, "a 64 KiB GSO frame is still sent");
	free(got);
	vnet_destroy(vn);
	free(vn);
	close(sv[0]);
	close(sv[1]);
	free(d.mem);
	return t_done();
}
