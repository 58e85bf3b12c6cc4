/* sysctls of the current network namespace, through /proc/sys. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "priv.h"

int sysctl_read_int(const char *path, int *val)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	close(fd);
	buf[n] = 0;
	char *end;
	long v = strtol(buf, &end, 10);
	if (end == buf)
		return -EINVAL;
	*val = (int)v;
	return 0;
}

int sysctl_write_int(const char *path, int val)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d\n", val);
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)len) != len) {
		int e = errno ? -errno : -EIO;
		close(fd);
		return e;
	}
	if (close(fd) < 0)
		return -errno;
	return 0;
}
