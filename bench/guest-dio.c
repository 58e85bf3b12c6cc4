/* Runs inside the benchmark guest: O_DIRECT I/O on a block device,
 * sequential or random, reads or writes, at queue depth 1 or, with JOBS,
 * from JOBS processes at once (queue depth JOBS; sequential jobs each
 * take their own slice of the span). Prints
 *   RES <name> <MB/s> <IOPS> <seconds>
 * usage: guest-dio DEV seqread|seqwrite|randread|randwrite BS SPAN_MIB SECONDS [JOBS]
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
#include <sys/wait.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One job: I/O for secs seconds over blocks [first, first + blocks);
 * returns the number of I/Os done, or -1. */
static long long job(int fd, int wr, int rnd, size_t bs, uint64_t first, uint64_t blocks,
		     double secs, uint64_t seed)
{
	void *buf;
	if (posix_memalign(&buf, 4096, bs))
		return -1;
	memset(buf, 0xa5, bs);
	uint64_t x = seed, n = 0;
	double t0 = now(), t = t0;
	while (t - t0 < secs) {
		uint64_t b;
		if (rnd) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			b = first + x % blocks;
		} else {
			b = first + n % blocks;
		}
		ssize_t r = wr ? pwrite(fd, buf, bs, (off_t)(b * bs)) : pread(fd, buf, bs, (off_t)(b * bs));
		if (r != (ssize_t)bs) {
			perror("guest-dio: io");
			return -1;
		}
		n++;
		if ((n & 15) == 0)
			t = now();
	}
	if (wr)
		fdatasync(fd);
	return (long long)n;
}

int main(int argc, char **argv)
{
	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: %s DEV seqread|seqwrite|randread|randwrite BS SPAN_MIB SECONDS [JOBS]\n", argv[0]);
		return 2;
	}
	const char *mode = argv[2];
	size_t bs = strtoul(argv[3], NULL, 0);
	uint64_t span = strtoull(argv[4], NULL, 0) << 20;
	double secs = atof(argv[5]);
	int jobs = argc == 7 ? atoi(argv[6]) : 1;
	int wr = strstr(mode, "write") != NULL, rnd = !strncmp(mode, "rand", 4);
	int fd = open(argv[1], (wr ? O_RDWR : O_RDONLY) | O_DIRECT);
	int pfd[2];
	if (fd < 0 || bs == 0 || span < bs * (uint64_t)(jobs > 0 ? jobs : 1) || jobs < 1 || jobs > 64 ||
	    pipe(pfd)) {
		perror("guest-dio");
		return 1;
	}
	uint64_t blocks = span / bs, per = blocks / (uint64_t)jobs;
	double t0 = now();
	for (int j = 0; j < jobs; j++) {
		if (fork() == 0) {
			long long n = rnd ? job(fd, wr, rnd, bs, 0, blocks, secs, 88172645463325252ull + 7919u * (unsigned)j)
					  : job(fd, wr, rnd, bs, per * (uint64_t)j, per, secs, 0);
			if (write(pfd[1], &n, sizeof(n)) != sizeof(n))
				_exit(1);
			_exit(n < 0);
		}
	}
	long long total = 0, n;
	int bad = 0;
	for (int j = 0; j < jobs; j++) {
		if (read(pfd[0], &n, sizeof(n)) != sizeof(n) || n < 0)
			bad = 1;
		else
			total += n;
	}
	while (wait(NULL) > 0)
		;
	if (bad)
		return 1;
	double t = now() - t0;
	printf("RES %s%s %.1f %.0f %.2f\n", mode, jobs > 1 ? argv[6] : "", (double)total * bs / t / 1e6,
	       total / t, t);
	return 0;
}
