/* Lease owners: a process is named by its pid and its start time (field
 * 22 of /proc/PID/stat, in clock ticks since boot), so a recycled pid is
 * never taken for the owner that died. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "lease.h"

int proc_stat_start(const char *stat, uint64_t *start)
{
	/* The command name (field 2) may hold spaces and ')': fields are
	 * counted from the last ')'. */
	const char *p = strrchr(stat, ')');
	unsigned long long v;
	int field = 2;

	if (!p)
		return -EBADMSG;
	for (p++; *p && field < 22; p++)
		if (*p == ' ' && p[1] && p[1] != ' ')
			field++;
	if (field != 22 || sscanf(p, "%llu", &v) != 1)
		return -EBADMSG;
	*start = v;
	return 0;
}

int proc_start(pid_t pid, uint64_t *start)
{
	char path[32], buf[1024];
	ssize_t n;
	int fd;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	/* A process that exits between open and read reads as empty. */
	if (n <= 0)
		return n == 0 || errno == ESRCH ? -ESRCH : -errno;
	buf[n] = 0;
	/* A zombie has stopped running: its lease is as good as stale. */
	const char *st = strrchr(buf, ')');
	if (st && (!strncmp(st, ") Z", 3) || !strncmp(st, ") X", 3)))
		return -ESRCH;
	return proc_stat_start(buf, start);
}

bool proc_owner_alive(pid_t pid, uint64_t start)
{
	uint64_t now;

	return pid > 0 && proc_start(pid, &now) == 0 && now == start;
}
