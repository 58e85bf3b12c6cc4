/* virtio-blk backends on the host alone, no guest and no KVM: crafted
 * requests through the real device (the unit tests' little driver,
 * tests/unit/vmm_vdrv.h) against an image file, so what is measured is
 * the backend and the file system, not a nested guest.
 * usage: blk-host IMAGE thread|uring writeback|none read|write QD SECONDS
 * QD requests of 4 KiB at random offsets are made available, kicked
 * once and waited for, again and again. Prints
 *   RES <backend> <cache> <rw> <qd> <IOPS> <CPU us per request>
 * The image must exist (bench/blk-host.sh makes it). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <linux/virtio_blk.h>

#include "virtio_blk.h"
#include "vmm_vdrv.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* the process's CPU time: io_uring's workers are its threads */
static double cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
	       (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	static struct td d;
	if (argc != 7) {
		fprintf(stderr, "usage: blk-host IMAGE thread|uring writeback|none read|write QD SECONDS\n");
		return 2;
	}
	bool uring = !strcmp(argv[2], "uring"), direct = !strcmp(argv[3], "none");
	bool wr = !strcmp(argv[4], "write");
	unsigned qd = (unsigned)atoi(argv[5]);
	double secs = atof(argv[6]);
	if (qd < 1 || qd > 32) {
		fprintf(stderr, "blk-host: QD 1..32\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0));
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || st.st_size < (1 << 20)) {
		perror("blk-host: image");
		return 1;
	}
	uint64_t blocks = (uint64_t)st.st_size / 4096;
	td_mem_init(&d);
	struct vblk *b = calloc(1, sizeof(*b));
	int rc = vblk_init(b, fd, (uring ? VBLK_URING : 0) | (direct ? VBLK_DIRECT : 0),
			   (uint64_t)st.st_size, "bench", &d.gm, &d.irq);
	if (rc) {
		fprintf(stderr, "blk-host: vblk_init: %s\n", strerror(-rc));
		return 1;
	}
	d.v = &b->vpci;
	if (!(td_negotiate(&d, 1ull << VIRTIO_F_VERSION_1) & VIRTIO_CONFIG_S_FEATURES_OK) ||
	    td_queue(&d, 0, 128) != 1)
		return 1;
	td_driver_ok(&d);
	memset(d.mem + TD_BUF + 0x10000, 0x5a, 32 * 4096);
	uint64_t x = 88172645463325252ull, done = 0, bad = 0;
	double t0 = now(), c0 = cpu(), t = t0;
	while (t - t0 < secs) {
		for (unsigned i = 0; i < qd; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			struct { uint32_t type, reserved; uint64_t sector; } h = {
				wr ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0, (x % blocks) * 8 };
			memcpy(d.mem + TD_BUF + 32 * i, &h, sizeof(h));
			struct td_seg s[3] = { { TD_BUF + 32 * i, 16, 0 },
					       { TD_BUF + 0x10000 + 4096 * i, 4096, !wr },
					       { TD_BUF + 0x1000 + i, 1, 1 } };
			td_add(&d, 0, s, 3);
		}
		td_kick(&d, 0);
		vblk_complete(b, true);
		uint32_t id, ul;
		while (td_used(&d, 0, &id, &ul))
			done++;
		for (unsigned i = 0; i < qd; i++)
			bad += d.mem[TD_BUF + 0x1000 + i] != VIRTIO_BLK_S_OK;
		t = now();
	}
	double c = cpu() - c0;
	t -= t0;
	if (bad || !done) {
		fprintf(stderr, "blk-host: %llu requests failed\n", (unsigned long long)bad);
		return 1;
	}
	printf("RES %s %s %s %u %.0f %.2f\n", argv[2], argv[3], argv[4], qd, (double)done / t,
	       c / (double)done * 1e6);
	vblk_destroy(b);
	free(b);
	free(d.mem);
	close(fd);
	return 0;
}
