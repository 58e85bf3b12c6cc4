/* DHCP checked by independent code: tests/unit/dhcp_peer.py (python3,
 * standard library only) builds every request and parses every reply;
 * this program only runs vmm/dhcp.c on what it is sent. Run without
 * arguments it execs the script with itself as the server; the script
 * prints the TAP lines.
 * Protocol on stdin/stdout, one line each:
 *   lease MAC ADDR ROUTER PREFIX MTU DNS[,DNS..]|- HOSTNAME|- LEASETIME
 *   frame HEX|- [CAP]  ->  "VERDICT HEX" (HEX "-" without a reply)
 * For tests/netns/dhcp_udhcpc.sh (a real client, busybox udhcpc, on the
 * other side of a tap):
 *   vmm_dhcp_peer tap IFNAME SECONDS MAC ADDR ROUTER PREFIX MTU DNS|- HOST|- LEASETIME
 * makes a non-persistent tap IFNAME, prints "ready", then serves every
 * frame the kernel sends on it for SECONDS, logging one line per verdict. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>

#include "dhcp.h"

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	size_t l = strlen(s);
	if (l % 2 || l / 2 > cap)
		return -1;
	for (size_t i = 0; i < l / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = l / 2;
	return 0;
}

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return 0;
	return ntohl(a.s_addr);
}

static int set_lease(struct dhcp_lease *l, char **a)
{
	unsigned m[6];
	memset(l, 0, sizeof(*l));
	if (sscanf(a[0], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		l->mac[i] = (uint8_t)m[i];
	l->addr = ip4(a[1]);
	l->router = ip4(a[2]);
	l->prefix = (unsigned)atoi(a[3]);
	l->mtu = (unsigned)atoi(a[4]);
	if (strcmp(a[5], "-")) {
		char *s2, *d = strtok_r(a[5], ",", &s2);
		while (d && l->ndns < DHCP_DNS_MAX) {
			l->dns[l->ndns++] = ip4(d);
			d = strtok_r(NULL, ",", &s2);
		}
	}
	if (strcmp(a[6], "-"))
		snprintf(l->hostname, sizeof(l->hostname), "%s", a[6]);
	l->lease_time = (uint32_t)strtoul(a[7], NULL, 10);
	return dhcp_lease_check(l);
}

static int tap_serve(char **a)
{
	struct dhcp_lease l;
	struct ifreq ifr;
	static uint8_t frame[65536];
	uint8_t reply[DHCP_REPLY_MAX];

	if (set_lease(&l, a + 2))
		return 2;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", a[0]);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	time_t end = time(NULL) + atoi(a[1]);
	while (time(NULL) < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, frame, sizeof(frame));
		if (n <= 0)
			continue;
		size_t rl = sizeof(reply);
		enum dhcp_verdict v = dhcp_handle(&l, frame, (size_t)n, reply, &rl);
		if (v == DHCP_PASS)
			continue;
		/* where the request went: broadcast, or unicast to the server */
		printf("verdict %d in %zd out %zu dst %u.%u.%u.%u\n", (int)v, n, rl,
		       frame[30], frame[31], frame[32], frame[33]);
		fflush(stdout);
		if (rl && write(fd, reply, rl) != (ssize_t)rl)
			perror("write");
	}
	return 0;
}

static int serve(void)
{
	static char line[1 << 18];
	static uint8_t frame[1 << 17];
	struct dhcp_lease l;
	memset(&l, 0, sizeof(l));

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		char *save, *cmd = strtok_r(line, " ", &save);
		if (!cmd)
			continue;
		if (!strcmp(cmd, "lease")) {
			char *a[8];
			for (int i = 0; i < 8; i++)
				if (!(a[i] = strtok_r(NULL, " ", &save)))
					return 2;
			printf("%s\n", set_lease(&l, a) ? "bad" : "ok");
		} else if (!strcmp(cmd, "frame")) {
			char *hex = strtok_r(NULL, " ", &save), *cap = strtok_r(NULL, " ", &save);
			size_t n;
			if (!hex)
				return 2;
			if (!strcmp(hex, "-"))
				n = 0; /* the empty frame */
			else if (unhex(hex, frame, sizeof(frame), &n))
				return 2;
			uint8_t reply[DHCP_REPLY_MAX + 64];
			size_t rl = cap ? (size_t)atoi(cap) : DHCP_REPLY_MAX;
			if (rl > sizeof(reply))
				rl = sizeof(reply);
			enum dhcp_verdict v = dhcp_handle(&l, frame, n, reply, &rl);
			printf("%d ", (int)v);
			if (!rl)
				putchar('-');
			for (size_t i = 0; i < rl; i++)
				printf("%02x", reply[i]);
			putchar('\n');
		} else {
			return 2;
		}
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc == 12 && !strcmp(argv[1], "tap"))
		return tap_serve(argv + 2);
	char self[4096];
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (k <= 0)
		return 1;
	self[k] = 0;
	if (access("tests/unit/dhcp_peer.py", R_OK)) {
		printf("not ok - dhcp peer: tests/unit/dhcp_peer.py not found (run from the top)\n");
		return 1;
	}
	execlp("python3", "python3", "tests/unit/dhcp_peer.py", self, (char *)NULL);
	printf("ok - dhcp peer # SKIP python3 not found\n");
	return 0;
}
