/* Runs inside the benchmark guest: O_DIRECT I/O on a block device at
 * queue depth 1, sequential or random, reads or writes. Prints
 *   RES <name> <MB/s> <IOPS> <seconds>
 * usage: guest-dio DEV seqread|seqwrite|randread|randwrite BS SPAN_MIB SECONDS
 * Linked statically and appended to the guest's initramfs by bench/io.sh,
 * so kvmlab-vm and QEMU run the very same binary. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s DEV seqread|seqwrite|randread|randwrite BS SPAN_MIB SECONDS\n", argv[0]);
		return 2;
	}
	const char *mode = argv[2];
	size_t bs = strtoul(argv[3], NULL, 0);
	uint64_t span = strtoull(argv[4], NULL, 0) << 20;
	double secs = atof(argv[5]);
	int wr = strstr(mode, "write") != NULL, rnd = !strncmp(mode, "rand", 4);
	int fd = open(argv[1], (wr ? O_RDWR : O_RDONLY) | O_DIRECT);
	void *buf;
	if (fd < 0 || bs == 0 || span < bs || posix_memalign(&buf, 4096, bs)) {
		perror("guest-dio");
		return 1;
	}
	memset(buf, 0xa5, bs);
	uint64_t blocks = span / bs, x = 88172645463325252ull, n = 0, bytes = 0;
	double t0 = now(), t = t0;
	while (t - t0 < secs) {
		uint64_t b;
		if (rnd) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			b = x % blocks;
		} else {
			b = n % blocks;
		}
		ssize_t r = wr ? pwrite(fd, buf, bs, (off_t)(b * bs)) : pread(fd, buf, bs, (off_t)(b * bs));
		if (r != (ssize_t)bs) {
			perror("guest-dio: io");
			return 1;
		}
		n++;
		bytes += bs;
		if ((n & 15) == 0)
			t = now();
	}
	if (wr)
		fdatasync(fd);
	t = now() - t0;
	printf("RES %s %.1f %.0f %.2f\n", mode, bytes / t / 1e6, n / t, t);
	return 0;
}
