/* kvmlab-vm dhcp NET: DHCP for the guests of other VMMs (QEMU, libvirt,
 * Firecracker, cloud-hypervisor...) on kvmlab network NET, the service a
 * libvirt network's dnsmasq gives. kvmlab-vm's own guests never reach it:
 * their VMM answers them, and their taps keep DHCP off the bridge.
 *
 * The same server as a kvmlab-vm guest's (dhcp.c, one lease per client),
 * on a packet socket on the bridge. Each client MAC gets a lease on NET
 * (net/, the kernel's nft map): a reservation that names its MAC
 * (kvmlab-net lease add NET VM --mac MAC) is used as is, host name
 * included; any other MAC gets the lease "mac-<12 hex digits>", whose
 * address is derived from that name and so the same every time while it
 * is free. The leases are held by this process: at exit a reservation
 * loses its owner and a mac-... lease goes (after a kill -9 they stay,
 * and the next run takes them again). A MAC whose lease a running VMM
 * holds is not answered.
 *
 * On a network with IPv6 it is the network's router advertiser too (what
 * radvd would be): it answers router solicitations on the bridge and
 * advertises the prefix to every port each RA_INTERVAL_S (ra.c), so that
 * those guests autoconfigure by SLAAC.
 *
 * Part of kvmlab-vm's command-line front: it and main.c are the only
 * files of vmm/ that call net/. */
#include "cmd_dhcp.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/filter.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "cli.h"
#include "dhcp.h"
#include "dhcp_tap.h"
#include "net.h"
#include "ra.h"
#include "vm.h"

#define DHCPD_CLIENTS_MAX 256 /* MACs served in one run; more are ignored */
#define DHCP_SERVER_PORT 67
#define BRIDGE_CHECK_MS 2000  /* how often the bridge is looked for */

const char cmd_dhcp_usage[] =
	"usage: kvmlab-vm dhcp NET\n"
	"\n"
	"dhcp: serve DHCP on kvmlab network NET (kvmlab-net up) to the guests of\n"
	"other VMMs on its bridge: QEMU, libvirt, Firecracker, ... (kvmlab-vm's own\n"
	"guests are answered by their VMM). Runs until SIGTERM or SIGINT. Each\n"
	"client MAC gets a lease on NET: a reservation for its MAC (kvmlab-net\n"
	"lease add: that address and host name), else the lease mac-<MAC hex>,\n"
	"the same address every time. Options as a kvmlab-vm guest gets them:\n"
	"mask, router and server id (the bridge), DNS, MTU, lease time. At exit\n"
	"the mac-... leases go and reservations lose their owner. One line on\n"
	"stderr per new client. On a network with IPv6 it also sends router\n"
	"advertisements for its prefix (SLAAC), to each router solicitation\n"
	"and every 10 minutes.\n"
	"Needs CAP_NET_ADMIN and CAP_NET_RAW. One server per network: UDP port 67\n"
	"on the bridge must be free.\n"
	"  --help     this text\n"
	"exit status: 0 stopped by SIGTERM or SIGINT, 1 cannot serve NET, or its\n"
	"bridge went away (one line says why), 2 usage error\n";

struct client {
	uint8_t mac[6];
	bool serve;                  /* false: not ours to answer */
	bool taken;                  /* we hold its lease */
	char vm[KL_VM_NAME_MAX + 1]; /* its lease's name */
	struct dhcp_lease lease;
};

struct server {
	struct kl_net *h;
	const char *net;
	struct client c[DHCPD_CLIENTS_MAX];
	unsigned n;
	bool told_full;
};

const char *front_net_why(struct kl_net *h, int rc)
{
	const char *m = kl_net_errmsg(h);
	/* the library's line when it left one, else the errno's text */
	return m && *m && strcmp(m, "unknown error") ? m : strerror(-rc);
}

/* The lease of client c: a reservation with its MAC, else its own
 * mac-<hex> lease, made now. Fills c->lease; false: not answered. */
static bool lease_for(struct server *s, struct client *c)
{
	struct kl_show *sh = NULL;
	struct kl_lease_info info;
	char m[CLI_MAC_LEN], ad[CLI_IP4_LEN];
	bool named = false;
	int rc;

	cli_mac(m, c->mac);
	snprintf(c->vm, sizeof(c->vm), "mac-%02x%02x%02x%02x%02x%02x", c->mac[0], c->mac[1],
		 c->mac[2], c->mac[3], c->mac[4], c->mac[5]);
	rc = kl_net_show(s->h, s->net, &sh);
	if (rc) {
		fprintf(stderr, "kvmlab-vm: dhcp %s: %s: reading the leases: %s\n", s->net, m,
			front_net_why(s->h, rc));
		return false;
	}
	const struct kl_show_net *sn = &sh->nets[0];
	for (size_t i = 0; i < sn->nleases; i++) {
		const struct kl_lease *L = &sn->leases[i];
		if (memcmp(L->mac, c->mac, 6))
			continue;
		/* a running VMM answers its own guest; so does another server */
		if (L->state == KL_LEASE_ACTIVE && L->pid != getpid()) {
			fprintf(stderr, "kvmlab-vm: dhcp %s: %s: not answered: lease %s is held by "
				"pid %ld\n", s->net, m, L->vm, (long)L->pid);
			kl_show_free(sh);
			return false;
		}
		snprintf(c->vm, sizeof(c->vm), "%s", L->vm);
		named = strncmp(L->vm, "mac-", 4) != 0;
		break;
	}
	/* the reservation found, or a mac-... lease of an earlier run */
	bool exists = false;
	for (size_t i = 0; i < sn->nleases; i++)
		exists |= !strcmp(sn->leases[i].vm, c->vm);
	kl_show_free(sh);
	if (!exists) {
		rc = kl_lease_add(s->h, s->net, c->vm, c->mac, 0);
		if (rc) {
			fprintf(stderr, "kvmlab-vm: dhcp %s: %s: lease %s: %s\n", s->net, m, c->vm,
				front_net_why(s->h, rc));
			return false;
		}
	}
	rc = kl_lease_take(s->h, s->net, c->vm, getpid(), &info);
	if (rc) {
		fprintf(stderr, "kvmlab-vm: dhcp %s: %s: taking lease %s: %s\n", s->net, m, c->vm,
			front_net_why(s->h, rc));
		/* nothing half-made: the lease just added goes again */
		int d = exists ? 0 : kl_lease_del(s->h, s->net, c->vm);
		if (d)
			fprintf(stderr, "kvmlab-vm: dhcp %s: %s: removing lease %s: %s\n", s->net,
				m, c->vm, front_net_why(s->h, d));
		return false;
	}
	c->taken = true;
	struct dhcp_lease *d = &c->lease;
	memcpy(d->mac, c->mac, 6);
	d->addr = info.addr;
	d->router = info.router;
	d->prefix = info.prefix;
	d->mtu = info.mtu;
	d->ndns = info.ndns < DHCP_DNS_MAX ? info.ndns : DHCP_DNS_MAX;
	memcpy(d->dns, info.dns, sizeof(uint32_t) * d->ndns);
	/* a reservation's name is the guest's host name; mac-... is no name */
	if (named)
		snprintf(d->hostname, sizeof(d->hostname), "%s", c->vm);
	if (dhcp_lease_check(d)) {
		fprintf(stderr, "kvmlab-vm: dhcp %s: %s: lease %s cannot be served\n", s->net, m,
			c->vm);
		return false;
	}
	cli_ip4(ad, d->addr);
	fprintf(stderr, "kvmlab-vm: dhcp %s: %s gets %s/%u (lease %s)\n", s->net, m, ad,
		d->prefix, c->vm);
	return true;
}

/* dhcp_tap's callback: every frame the bridge's filter passed */
static int answer(void *opaque, const uint8_t *frame, size_t len, uint8_t *reply,
		  size_t *reply_len)
{
	struct server *s = opaque;
	size_t room = *reply_len;
	*reply_len = 0;
	if (len < 14)
		return 1;
	const uint8_t *src = frame + 6;
	/* the sender's MAC is untrusted: a multicast or zero one gets no
	 * lease (and dhcp_handle checks chaddr against it) */
	static const uint8_t zero[6];
	if ((src[0] & 1) || !memcmp(src, zero, 6))
		return 1;
	struct client *c = NULL;
	for (unsigned i = 0; i < s->n && !c; i++)
		if (!memcmp(s->c[i].mac, src, 6))
			c = &s->c[i];
	if (!c) {
		if (s->n == DHCPD_CLIENTS_MAX) {
			if (!s->told_full)
				fprintf(stderr, "kvmlab-vm: dhcp %s: %d clients: new MACs are not "
					"answered\n", s->net, DHCPD_CLIENTS_MAX);
			s->told_full = true;
			return 1;
		}
		c = &s->c[s->n++];
		memset(c, 0, sizeof(*c));
		memcpy(c->mac, src, 6);
		c->serve = lease_for(s, c);
	}
	if (!c->serve)
		return 1;
	size_t rl = room;
	if (dhcp_handle(&c->lease, frame, len, reply, &rl) == DHCP_REPLY)
		*reply_len = rl;
	return 1;
}

int cmd_dhcp(int argc, char **argv)
{
	static struct server s; /* 256 clients: off the stack */
	struct sock_filter prog[KL_DHCP_BPF_LEN];
	struct sock_fprog fprog = { .len = KL_DHCP_BPF_LEN, .filter = prog };
	struct dhcp_tap t = { .fd = -1 }, rt = { .fd = -1 };
	struct sock_filter ra_prog[RA_BPF_LEN];
	struct sock_fprog ra_fprog = { .len = RA_BPF_LEN, .filter = ra_prog };
	struct ra_cfg ra = { .prefix_len = 0 };
	struct timespec ra_last = { 0, 0 };
	bool ra_sent = false;
	struct kl_show *sh = NULL;
	struct err e = { "" };
	char br[KL_NAME_MAX + 1];
	int rc, udp = -1, sfd = -1;

	if ((rc = cli_help_only("dhcp", cmd_dhcp_usage, argc, argv)) >= 0)
		return rc;
	if (optind >= argc)
		return cli_usage_error("dhcp", "missing network name");
	if (argc - optind > 1)
		return cli_usage_error("dhcp", "unexpected argument '%s'", argv[optind + 1]);
	memset(&s, 0, sizeof(s));
	s.net = argv[optind];

	rc = kl_net_open(&s.h);
	if (rc)
		return cli_value_error("dhcp %s: %s%s", s.net, strerror(-rc),
				       rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	rc = kl_net_show(s.h, s.net, &sh);
	if (rc) {
		rc = cli_value_error("dhcp %s: %s", s.net, rc == -ENOENT
				     ? "no such kvmlab network here (kvmlab-net up)"
				     : front_net_why(s.h, rc));
		goto out;
	}
	const struct kl_show_net *sn = &sh->nets[0];
	if (sn->cfg.bridge[0])
		snprintf(br, sizeof(br), "%s", sn->cfg.bridge);
	else
		kl_bridge_name(s.net, br);
	if (!sn->bridge_exists || !sn->bridge_up || !sn->addr_present) {
		rc = cli_value_error("dhcp %s: bridge %s is %s (kvmlab-net up %s repairs it)", s.net,
				     br, !sn->bridge_exists ? "missing" : !sn->bridge_up ? "down"
				     : "without its address", s.net);
		goto out;
	}
	/* the server's port on the bridge: one server per network, and a
	 * unicast request (a renewal) finds a socket, so the host sends no
	 * port-unreachable; what arrives there is read and dropped, the
	 * packet socket answers it */
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(DHCP_SERVER_PORT) };
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (udp < 0 || setsockopt(udp, SOL_SOCKET, SO_BINDTODEVICE, br, (socklen_t)strlen(br)) ||
	    bind(udp, (struct sockaddr *)&sin, sizeof(sin))) {
		rc = cli_value_error("dhcp %s: UDP port 67 on %s: %s", s.net, br,
				     errno == EADDRINUSE ? "in use: another DHCP server serves it "
				     "(dnsmasq, another kvmlab-vm dhcp)" : strerror(errno));
		goto out;
	}
	kl_dhcp_bpf(prog, DHCP_TAP_FRAME_MAX, 0);
	if (dhcp_sock_open(&t, br, &fprog, answer, &s, &e)) {
		rc = cli_value_error("dhcp %s: %s", s.net, e.msg);
		goto out;
	}
	if (sn->def_known && sn->cfg.has6) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", br);
		if (ioctl(udp, SIOCGIFHWADDR, &ifr)) {
			rc = cli_value_error("dhcp %s: %s's MAC: %s", s.net, br, strerror(errno));
			goto out;
		}
		memcpy(ra.router_mac, ifr.ifr_hwaddr.sa_data, 6);
		memcpy(ra.prefix, sn->cfg.addr6, 16);
		ra.prefix_len = sn->cfg.prefix6;
		ra.mtu = sn->bridge_mtu;
		ra.ndns6 = sn->cfg.ndns6 < RA_DNS_MAX ? sn->cfg.ndns6 : RA_DNS_MAX;
		memcpy(ra.dns6, sn->cfg.dns6, 16 * ra.ndns6);
		ra_bpf(ra_prog, DHCP_TAP_FRAME_MAX, 0);
		if (ra_cfg_check(&ra)) {
			rc = cli_value_error("dhcp %s: IPv6 prefix or %s's MAC unusable for router "
					     "advertisements", s.net, br);
			goto out;
		}
		if (dhcp_sock_open(&rt, br, &ra_fprog, ra_handle, &ra, &e)) {
			rc = cli_value_error("dhcp %s: %s", s.net, e.msg);
			goto out;
		}
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		rc = cli_value_error("dhcp %s: signalfd: %s", s.net, strerror(errno));
		goto out;
	}
	fprintf(stderr, "kvmlab-vm: dhcp %s: serving on %s%s\n", s.net, br,
		rt.fd >= 0 ? ", with IPv6 router advertisements" : "");
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = t.fd, .events = POLLIN },
			{ .fd = udp, .events = POLLIN },
			{ .fd = rt.fd, .events = POLLIN },
		};
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* unsolicited: at start (hosts already up learn the prefix now),
		 * then each period */
		if (rt.fd >= 0 && (!ra_sent || now.tv_sec - ra_last.tv_sec >= RA_INTERVAL_S)) {
			uint8_t f[RA_FRAME_MAX];
			size_t fl = ra_build_unsolicited(&ra, f, sizeof(f));
			if (fl)
				dhcp_tap_send(&rt, f, fl);
			ra_last = now;
			ra_sent = true;
		}
		if (poll(p, 4, BRIDGE_CHECK_MS) < 0 && errno != EINTR) {
			rc = cli_value_error("dhcp %s: poll: %s", s.net, strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				fprintf(stderr, "kvmlab-vm: dhcp %s: stopped by signal %u\n", s.net,
					si.ssi_signo);
				rc = 0;
				break;
			}
		}
		/* the bridge may go (kvmlab-net down) with no event on our
		 * sockets, or one error only (consumed by the reads below):
		 * look for it at each wake-up */
		if ((int)if_nametoindex(br) != t.ifindex) {
			rc = cli_value_error("dhcp %s: bridge %s is gone (kvmlab-net down?): "
					     "stopping", s.net, br);
			break;
		}
		if (p[1].revents)
			dhcp_tap_ready(&t, 0);
		if (p[3].revents)
			dhcp_tap_ready(&rt, 0);
		if (p[2].revents) {
			char b[1500];
			while (recv(udp, b, sizeof(b), 0) >= 0)
				;
		}
	}
out:
	/* what we took goes back: a reservation stays, without an owner; a
	 * mac-... lease is ours (made as a reservation, so that it has the
	 * client's MAC) and goes */
	for (unsigned i = 0; i < s.n; i++) {
		if (!s.c[i].taken)
			continue;
		int r = strncmp(s.c[i].vm, "mac-", 4) ? kl_lease_release(s.h, s.net, s.c[i].vm)
			: kl_lease_del(s.h, s.net, s.c[i].vm);
		/* -ENOENT: the network went first, and its leases with it */
		if (r && r != -ENOENT)
			fprintf(stderr, "kvmlab-vm: dhcp %s: releasing lease %s: %s\n", s.net,
				s.c[i].vm, front_net_why(s.h, r));
	}
	if (sfd >= 0)
		close(sfd);
	dhcp_tap_close(&t);
	dhcp_tap_close(&rt);
	if (udp >= 0)
		close(udp);
	kl_show_free(sh);
	kl_net_close(s.h);
	return rc;
}
