/* kvmlab-vsock, a tool of the default guest (busybox has no AF_VSOCK):
 *   kvmlab-vsock echo PORT    accept one connection on vsock PORT (any
 *                             CID), send back every byte until EOF, say
 *                             how many on stderr
 * Built static by scripts/build-guest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "echo")) {
		fprintf(stderr, "usage: kvmlab-vsock echo PORT\n");
		return 2;
	}
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				 .svm_port = (unsigned)strtoul(argv[2], NULL, 10) };
	int l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1)) {
		fprintf(stderr, "kvmlab-vsock: port %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	printf("kvmlab-vsock: listening on port %s\n", argv[2]);
	fflush(stdout);
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		fprintf(stderr, "kvmlab-vsock: accept: %s\n", strerror(errno));
		return 1;
	}
	char buf[65536];
	unsigned long long total = 0;
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(c, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "kvmlab-vsock: write: %s\n", strerror(errno));
				return 1;
			}
			off += w;
		}
		total += (unsigned long long)n;
	}
	shutdown(c, SHUT_WR);
	printf("kvmlab-vsock: echoed %llu bytes\n", total);
	return 0;
}
