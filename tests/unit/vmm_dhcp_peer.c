/* DHCP checked by independent code: tests/unit/dhcp_peer.py (python3,
 * standard library only) builds every request and parses every reply;
 * this program only runs vmm/dhcp.c on what it is sent. Run without
 * arguments it execs the script with itself as the server; the script
 * prints the TAP lines.
 * Protocol on stdin/stdout, one line each:
 *   lease MAC ADDR ROUTER PREFIX MTU DNS[,DNS..]|- HOSTNAME|- LEASETIME
 *   frame HEX|- [CAP]  ->  "VERDICT HEX" (HEX "-" without a reply) */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
			char *mac = strtok_r(NULL, " ", &save), *addr = strtok_r(NULL, " ", &save);
			char *rt = strtok_r(NULL, " ", &save), *pfx = strtok_r(NULL, " ", &save);
			char *mtu = strtok_r(NULL, " ", &save), *dns = strtok_r(NULL, " ", &save);
			char *hn = strtok_r(NULL, " ", &save), *lt = strtok_r(NULL, " ", &save);
			if (!lt)
				return 2;
			memset(&l, 0, sizeof(l));
			unsigned m[6];
			if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
				return 2;
			for (int i = 0; i < 6; i++)
				l.mac[i] = (uint8_t)m[i];
			l.addr = ip4(addr);
			l.router = ip4(rt);
			l.prefix = (unsigned)atoi(pfx);
			l.mtu = (unsigned)atoi(mtu);
			if (strcmp(dns, "-")) {
				char *s2, *d = strtok_r(dns, ",", &s2);
				while (d && l.ndns < DHCP_DNS_MAX) {
					l.dns[l.ndns++] = ip4(d);
					d = strtok_r(NULL, ",", &s2);
				}
			}
			if (strcmp(hn, "-"))
				snprintf(l.hostname, sizeof(l.hostname), "%s", hn);
			l.lease_time = (uint32_t)strtoul(lt, NULL, 10);
			printf("%s\n", dhcp_lease_check(&l) ? "bad" : "ok");
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
