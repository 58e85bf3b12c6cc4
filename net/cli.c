/* kvmlab-net: the command line over the net library. Parses arguments,
 * prints one line per failure and picks the exit code: 0 done, 1 failed
 * (bad input included), 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "net.h"
#include "cli_lease.h"

#define PROG "kvmlab-net"
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
	"usage: " PROG " COMMAND [ARGS]\n"
	"\n"
	"Host networking for kvmlab: bridges, taps, forwarding and NAT.\n"
	"\n"
	"commands:\n"
	"  up NAME --cidr A.B.C.D/LEN [--bridge BR] [--nat] [--uplink IF]\n"
	"          [--mtu N] [--stp] [--dry-run]\n"
	"  down NAME\n"
	"  tap add TAP [TAP...] --net NAME [--owner USER] [--group GROUP]\n"
	"          [--queues N]\n"
	"  tap del TAP [TAP...]\n"
	"  show [NAME] [--json]\n"
	"  lease add NET VM [--mac MAC] [--ip ADDR]\n"
	"  lease del NET VM\n"
	"  lease take NET VM [--pid PID]\n"
	"  lease release NET VM\n"
	"  forward add NET --proto tcp|udp --port HOSTPORT --to ADDR:PORT\n"
	"          [--vm VM]\n"
	"  forward del NET --proto tcp|udp --port HOSTPORT\n"
	"\n"
	"Run '" PROG " COMMAND --help' for details. Needs CAP_NET_ADMIN (show\n"
	"does not). Exit status: 0 done, 1 failed, 2 usage error.\n";

static const char usage_up[] =
	"usage: " PROG " up NAME --cidr A.B.C.D/LEN [options]\n"
	"\n"
	"Ensure network NAME: its bridge exists, is up and holds the address;\n"
	"IPv4 forwarding is on. Running it again changes nothing; a different\n"
	"definition of an existing network is an error.\n"
	"\n"
	"  --cidr A.B.C.D/LEN  the bridge's address and the subnet (required)\n"
	"  --bridge BR         bridge name (default kl-NAME)\n"
	"  --nat               masquerade the subnet leaving through any other\n"
	"                      interface, accept it in forward and the replies\n"
	"  --uplink IF         masquerade only through IF\n"
	"  --mtu N             bridge MTU (68..65535)\n"
	"  --stp               turn on spanning tree\n"
	"  --dry-run           print the plan, have the kernel check the nft\n"
	"                      batch, change nothing\n";

static const char usage_down[] =
	"usage: " PROG " down NAME\n"
	"\n"
	"Remove what up and tap add made for NAME: taps, bridge, address, nft\n"
	"table. Forwarding goes back to its earlier value when kvmlab turned it\n"
	"on and no other kvmlab network is left.\n";

static const char usage_tap[] =
	"usage: " PROG " tap add TAP [TAP...] --net NAME [--owner USER]\n"
	"                 [--group GROUP] [--queues N]\n"
	"       " PROG " tap del TAP [TAP...]\n"
	"\n"
	"add: persistent taps with IFF_VNET_HDR, the bridge's MTU, enslaved to\n"
	"the bridge of NAME and up, all or none. --owner/--group let that user\n"
	"or group open them without privilege. --queues N (1..256) makes a\n"
	"multi-queue tap when N > 1.\n"
	"del: delete taps that tap add made.\n";

static const char usage_lease[] =
	"usage: " PROG " lease add NET VM [--mac MAC] [--ip ADDR]\n"
	"       " PROG " lease del NET VM\n"
	"       " PROG " lease take NET VM [--pid PID]\n"
	"       " PROG " lease release NET VM\n"
	"\n"
	"Leases of network NET: VM name, MAC, IPv4 address, owner. They live\n"
	"in the nft map \"leases\" of table ip kvmlab-NET. A VM's MAC and\n"
	"address are derived from NET and VM, the same every time while free.\n"
	"add: reserve an address for VM, for any VMM (QEMU, Firecracker,\n"
	"libvirt); --mac/--ip pick them instead. A reservation is never\n"
	"reclaimed. del: remove VM's lease and the forwards tied to VM.\n"
	"take: take VM's lease for process PID (default: the calling process's\n"
	"parent, e.g. the shell), print it; when PID dies it turns stale and\n"
	"the next add or take reclaims it. release: give it back.\n";

static const char usage_forward[] =
	"usage: " PROG " forward add NET --proto tcp|udp --port HOSTPORT\n"
	"                         --to ADDR:PORT | --vm VM --to [ADDR:]PORT\n"
	"       " PROG " forward del NET --proto tcp|udp --port HOSTPORT\n"
	"\n"
	"DNAT of HOSTPORT on the host's own addresses (not loopback) to\n"
	"ADDR:PORT on network NET, for connections from outside, from the\n"
	"host itself and from NET's guests. Adding the same forward again\n"
	"changes nothing; the same host port to another target is an error.\n"
	"--vm ties the forward to VM's active lease (ADDR defaults to its\n"
	"address): it goes when the lease is released or reclaimed.\n"
	"Rules live in chains fwd-pre, fwd-out, fwd-post, fwd-accept of table\n"
	"ip kvmlab-NET.\n";

static const char usage_show[] =
	"usage: " PROG " show [NAME] [--json]\n"
	"\n"
	"Networks, bridge, address, taps, NAT and forwarding, read back from\n"
	"the kernel.\n";

__attribute__((format(printf, 2, 3))) static int usage_err(const char *cmd,
							   const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '" PROG " %s --help')\n", cmd);
	return EXIT_USAGE;
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

static int lib_fail(struct kl_net *h)
{
	return fail("%s", kl_net_errmsg(h));
}

static void print_warnings(struct kl_net *h)
{
	for (size_t i = 0; i < kl_net_nwarnings(h); i++)
		fprintf(stderr, PROG ": warning: %s\n", kl_net_warning(h, i));
}

static int open_handle(struct kl_net **h)
{
	int err = kl_net_open(h);

	if (err)
		return fail("netlink: cannot open: %s%s", strerror(-err),
			    err == -EPERM || err == -EACCES
				    ? " (CAP_NET_ADMIN is needed)"
				    : "");
	return 0;
}

/* Digits only, in range; anything else is bad input. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int check_name(const char *what, const char *name)
{
	const char *why;

	if (kl_name_check(name, &why))
		return fail("%s %s: %s", what, name, why);
	return 0;
}

/* What getopt_long's ':' (missing value) and '?' (unknown) mean. */
static int bad_opt(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return usage_err(cmd, "%s needs a value", argv[optind - 1]);
	return usage_err(cmd, "unknown option %s", argv[optind - 1]);
}

/* Exactly one argument left after the options: NAME. */
static int one_name(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return usage_err(cmd, "NAME is missing");
	if (optind + 1 < argc)
		return usage_err(cmd, "unexpected argument '%s'", argv[optind + 1]);
	return 0;
}

static int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cidr", required_argument, NULL, 'c'},
		{"bridge", required_argument, NULL, 'b'},
		{"nat", no_argument, NULL, 'n'},
		{"uplink", required_argument, NULL, 'u'},
		{"mtu", required_argument, NULL, 'm'},
		{"stp", no_argument, NULL, 's'},
		{"dry-run", no_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cidr = NULL, *bridge = NULL, *uplink = NULL, *mtu = NULL;
	struct kl_net_cfg cfg;
	unsigned flags = 0;
	struct kl_net *h;
	const char *why;
	int c, rc;

	memset(&cfg, 0, sizeof(cfg));
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cidr = optarg; break;
		case 'b': bridge = optarg; break;
		case 'n': cfg.nat = true; break;
		case 'u': uplink = optarg; break;
		case 'm': mtu = optarg; break;
		case 's': cfg.stp = true; break;
		case 'd': flags |= KL_DRY_RUN; break;
		case 'h': fputs(usage_up, stdout); return EXIT_OK;
		default: return bad_opt("up", c, argv);
		}
	}
	if ((rc = one_name("up", argc, argv)))
		return rc;
	if (!cidr)
		return usage_err("up", "--cidr is required");
	const char *name = argv[optind];
	if (check_name("network", name))
		return EXIT_FAIL;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	if (kl_cidr_parse(cidr, &cfg.addr, &cfg.prefix, &why))
		return fail("network %s: cidr %s: %s", name, cidr, why);
	if (bridge) {
		if (check_name("bridge", bridge))
			return EXIT_FAIL;
		snprintf(cfg.bridge, sizeof(cfg.bridge), "%s", bridge);
	}
	if (uplink) {
		if (check_name("uplink", uplink))
			return EXIT_FAIL;
		snprintf(cfg.uplink, sizeof(cfg.uplink), "%s", uplink);
	}
	if (mtu) {
		unsigned long v;
		if (parse_uint(mtu, 65535, &v) || v < 68)
			return fail("network %s: mtu %s: not a number in 68..65535",
				    name, mtu);
		cfg.mtu = (unsigned)v;
	}
	if ((rc = open_handle(&h)))
		return rc;
	rc = kl_net_up(h, &cfg, flags);
	if (rc) {
		rc = lib_fail(h);
	} else {
		for (size_t i = 0; i < kl_net_nplan(h); i++)
			printf("%s%s\n", i ? "  " : "plan: ", kl_net_plan(h, i));
		print_warnings(h);
	}
	kl_net_close(h);
	return rc;
}

static int cmd_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct kl_net *h;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_down, stdout);
			return EXIT_OK;
		}
		return bad_opt("down", c, argv);
	}
	if ((rc = one_name("down", argc, argv)))
		return rc;
	if (check_name("network", argv[optind]))
		return EXIT_FAIL;
	if ((rc = open_handle(&h)))
		return rc;
	rc = kl_net_down(h, argv[optind]) ? lib_fail(h) : EXIT_OK;
	kl_net_close(h);
	return rc;
}

/* A user (or group) name, or a plain number: ids need not have a name.
 * UINT_MAX is (uid_t)-1, which the kernel reads as "no change". */
static int lookup_id(const char *s, bool group, unsigned *id)
{
	const struct passwd *pw = group ? NULL : getpwnam(s);
	const struct group *gr = group ? getgrnam(s) : NULL;
	unsigned long v;

	if (pw || gr) {
		*id = pw ? pw->pw_uid : gr->gr_gid;
		return 0;
	}
	if (parse_uint(s, UINT_MAX - 1, &v))
		return -ENOENT;
	*id = (unsigned)v;
	return 0;
}

static int cmd_tap(int argc, char **argv)
{
	static const struct option opts[] = {
		{"net", required_argument, NULL, 'N'},
		{"owner", required_argument, NULL, 'o'},
		{"group", required_argument, NULL, 'g'},
		{"queues", required_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *net = NULL, *owner = NULL, *group = NULL, *queues = NULL;
	struct kl_tap_cfg cfg = {.queues = 1};
	struct kl_net *h;
	bool add;
	int c, rc;

	if (argc < 2)
		return usage_err("tap", "add or del is missing");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_tap, stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "add") && strcmp(argv[1], "del"))
		return usage_err("tap", "unknown subcommand '%s'", argv[1]);
	add = !strcmp(argv[1], "add");
	argc--;
	argv++;
	const char *cmd = add ? "tap add" : "tap del";
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'N': net = optarg; break;
		case 'o': owner = optarg; break;
		case 'g': group = optarg; break;
		case 'q': queues = optarg; break;
		case 'h': fputs(usage_tap, stdout); return EXIT_OK;
		default: return bad_opt(cmd, c, argv);
		}
	}
	if (optind >= argc)
		return usage_err(cmd, "TAP is missing");
	if (!add && (net || owner || group || queues))
		return usage_err(cmd, "takes only tap names");
	if (add && !net)
		return usage_err(cmd, "--net is required");
	const char *const *taps = (const char *const *)&argv[optind];
	size_t n = (size_t)(argc - optind);
	for (size_t i = 0; i < n; i++)
		if (check_name("tap", taps[i]))
			return EXIT_FAIL;
	if (add) {
		if (check_name("network", net))
			return EXIT_FAIL;
		if (queues) {
			unsigned long v;
			if (parse_uint(queues, ULONG_MAX, &v) || v < 1 ||
			    v > KL_QUEUES_MAX)
				return fail("tap %s: --queues %s: not a number in "
					    "1..%d", taps[0], queues, KL_QUEUES_MAX);
			cfg.queues = (unsigned)v;
		}
		if (owner) {
			if (lookup_id(owner, false, &cfg.owner))
				return fail("tap %s: --owner %s: unknown user",
					    taps[0], owner);
			cfg.set_owner = true;
		}
		if (group) {
			if (lookup_id(group, true, &cfg.group))
				return fail("tap %s: --group %s: unknown group",
					    taps[0], group);
			cfg.set_group = true;
		}
	}
	if ((rc = open_handle(&h)))
		return rc;
	if (add)
		rc = kl_tap_add(h, net, taps, n, &cfg);
	else
		rc = kl_tap_del(h, taps, n);
	rc = rc ? lib_fail(h) : EXIT_OK;
	kl_net_close(h);
	return rc;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *ip4(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
	return buf;
}

/* The lease branch's keys, built by jansson, spliced into this object. */
static void show_json_lease(const struct kl_show_net *n)
{
	json_t *o = cli_json_lease(n), *v;
	const char *k;

	json_object_foreach(o, k, v) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf(",\"%s\":%s", k, t ? t : "null");
		free(t);
	}
	json_decref(o);
}

static void show_json(const struct kl_show *s)
{
	char ip[16];

	printf("{\"netns\":%llu,\"forwarding\":%d,\"forwarding_prev\":%d,"
	       "\"networks\":[", (unsigned long long)s->netns, s->forwarding,
	       s->forwarding_prev);
	for (size_t i = 0; i < s->nnets; i++) {
		const struct kl_show_net *n = &s->nets[i];
		uint32_t mask = ~0u << (32 - n->cfg.prefix);
		printf("%s{\"name\":", i ? "," : "");
		json_str(n->cfg.name);
		printf(",\"bridge\":");
		json_str(n->cfg.bridge);
		printf(",\"cidr\":\"%s/%u\"", ip4(n->cfg.addr, ip), n->cfg.prefix);
		printf(",\"address\":\"%s\",\"prefixlen\":%u", ip,
		       n->cfg.prefix);
		printf(",\"subnet\":\"%s/%u\"", ip4(n->cfg.addr & mask, ip),
		       n->cfg.prefix);
		printf(",\"nat\":%s,\"uplink\":", n->cfg.nat ? "true" : "false");
		if (n->cfg.uplink[0])
			json_str(n->cfg.uplink);
		else
			printf("null");
		printf(",\"stp\":%s,\"mtu\":%u", n->cfg.stp ? "true" : "false",
		       n->bridge_mtu);
		printf(",\"bridge_exists\":%s,\"bridge_up\":%s,"
		       "\"address_present\":%s",
		       n->bridge_exists ? "true" : "false",
		       n->bridge_up ? "true" : "false",
		       n->addr_present ? "true" : "false");
		if (n->cfg.nat) {
			printf(",\"nft_table\":\"ip kvmlab-");
			/* names are validated: no quote needs escaping here */
			printf("%s\",\"nft_present\":%s", n->cfg.name,
			       n->nft_present < 0 ? "null"
			       : n->nft_present  ? "true" : "false");
		} else {
			printf(",\"nft_table\":null,\"nft_present\":false");
		}
		printf(",\"taps\":[");
		for (size_t j = 0; j < n->ntaps; j++) {
			const struct kl_show_tap *t = &n->taps[j];
			printf("%s{\"name\":", j ? "," : "");
			json_str(t->name);
			printf(",\"exists\":%s,\"up\":%s,\"enslaved\":%s,\"mtu\":%u}",
			       t->exists ? "true" : "false",
			       t->up ? "true" : "false",
			       t->enslaved ? "true" : "false", t->mtu);
		}
		printf("]");
		show_json_lease(n);
		printf("}");
	}
	printf("]}\n");
}

static void mac_str(const uint8_t *m, char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
}

static const char *const lease_states[] = {"active", "reserved", "stale"};

/* dns, leases and forwards of one network */
static void show_text_leases(const struct kl_show_net *n)
{
	char ip[16], mac[18];

	printf("  dns     ");
	for (unsigned i = 0; i < n->cfg.ndns; i++)
		printf("%s %s", i ? "," : "", ip4(n->cfg.dns[i], ip));
	if (!n->cfg.ndns)
		printf(" none (%s)", n->dns_host ? "the host has no upstream "
		       "resolver a guest can reach" : "not set");
	else
		printf(" (%s)", n->dns_host ? "the host's resolvers" : "up --dns");
	printf("\n");
	if (n->nft_present < 0) {
		printf("  leases   unknown (reading them needs CAP_NET_ADMIN)\n");
		return;
	}
	if (!n->nleases)
		printf("  leases   none\n");
	for (size_t i = 0; i < n->nleases; i++) {
		const struct kl_lease *l = &n->leases[i];
		mac_str(l->mac, mac);
		printf("  lease    %s %s %s %s", l->vm, mac, ip4(l->addr, ip),
		       lease_states[l->state]);
		if (l->pid)
			printf(" (owner pid %d)", (int)l->pid);
		printf("%s\n", l->reserved && l->state == KL_LEASE_ACTIVE
				       ? " reserved" : "");
	}
	for (size_t i = 0; i < n->nfwds; i++) {
		const struct kl_forward *f = &n->fwds[i];
		printf("  forward  %s %u -> %s:%u", f->proto == IPPROTO_TCP ? "tcp"
		       : "udp", f->port, ip4(f->addr, ip), f->to_port);
		printf(f->vm[0] ? " (vm %s)\n" : "%s\n", f->vm);
	}
}

static void show_text(const struct kl_show *s)
{
	char ip[16];

	for (size_t i = 0; i < s->nnets; i++) {
		const struct kl_show_net *n = &s->nets[i];
		printf("network %s\n", n->cfg.name);
		if (n->bridge_exists)
			printf("  bridge   %s (%s, mtu %u, stp %s)\n", n->cfg.bridge,
			       n->bridge_up ? "up" : "DOWN", n->bridge_mtu,
			       n->cfg.stp ? "on" : "off");
		else
			printf("  bridge   %s (MISSING)\n", n->cfg.bridge);
		printf("  address  %s/%u%s\n", ip4(n->cfg.addr, ip), n->cfg.prefix,
		       n->addr_present ? "" : " (MISSING)");
		if (n->cfg.nat)
			printf("  nat      via %s, table ip kvmlab-%s%s\n",
			       n->cfg.uplink[0] ? n->cfg.uplink : "any interface",
			       n->cfg.name, n->nft_present < 0 ? " (unknown: needs "
			       "CAP_NET_ADMIN)" : n->nft_present ? "" : " (MISSING)");
		else
			printf("  nat      off\n");
		printf("  taps    ");
		if (!n->ntaps)
			printf(" none");
		for (size_t j = 0; j < n->ntaps; j++) {
			const struct kl_show_tap *t = &n->taps[j];
			printf(" %s%s", t->name,
			       !t->exists ? "(MISSING)"
			       : !t->enslaved ? "(DETACHED)"
			       : !t->up      ? "(DOWN)"
					     : "");
		}
		printf("\n");
		show_text_leases(n);
	}
	if (s->nnets == 0)
		printf("no kvmlab networks in this namespace\n");
	printf("forwarding %s", s->forwarding == 1 ? "on"
				: s->forwarding == 0 ? "off" : "unknown");
	if (s->forwarding_prev >= 0)
		printf(" (kvmlab turned it on; was %d)", s->forwarding_prev);
	printf("\n");
}

static int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false;
	struct kl_net *h;
	struct kl_show *s;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":hj", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(usage_show, stdout); return EXIT_OK;
		default: return bad_opt("show", c, argv);
		}
	}
	if (optind + 1 < argc)
		return usage_err("show", "unexpected argument '%s'", argv[optind + 1]);
	const char *name = optind < argc ? argv[optind] : NULL;
	if (name && check_name("network", name))
		return EXIT_FAIL;
	if ((rc = open_handle(&h)))
		return rc;
	if (kl_net_show(h, name, &s)) {
		rc = lib_fail(h);
	} else {
		if (json)
			show_json(s);
		else
			show_text(s);
		kl_show_free(s);
	}
	kl_net_close(h);
	return rc;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!strchr("0123456789abcdefABCDEF", s[3 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[3 * i + 1]) ||
		    (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static int parse_ip(const char *s, uint32_t *a)
{
	struct in_addr in;

	if (inet_pton(AF_INET, s, &in) != 1)
		return -EINVAL;
	*a = ntohl(in.s_addr);
	return 0;
}

/* NET and VM, exactly, after the options. */
static int net_vm(const char *cmd, int argc, char **argv)
{
	if (optind + 2 > argc)
		return usage_err(cmd, "%s is missing", optind < argc ? "VM" : "NET");
	if (optind + 2 < argc)
		return usage_err(cmd, "unexpected argument '%s'", argv[optind + 2]);
	if (check_name("network", argv[optind]))
		return EXIT_FAIL;
	return 0;
}

static int cmd_lease(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mac", required_argument, NULL, 'm'},
		{"ip", required_argument, NULL, 'i'},
		{"pid", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const subs[] = {"add", "del", "take", "release"};
	const char *mac_s = NULL, *ip_s = NULL, *pid_s = NULL, *why;
	char cmd[32], m[18], a[16];
	struct kl_lease_info info;
	struct kl_net *h;
	uint8_t mac[6];
	uint32_t addr = 0;
	pid_t pid = getppid();
	int c, rc, sub = -1;

	if (argc < 2)
		return usage_err("lease", "add, del, take or release is missing");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_lease, stdout);
		return EXIT_OK;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(argv[1], subs[i]))
			sub = i;
	if (sub < 0)
		return usage_err("lease", "unknown subcommand '%s'", argv[1]);
	snprintf(cmd, sizeof(cmd), "lease %s", subs[sub]);
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mac_s = optarg; break;
		case 'i': ip_s = optarg; break;
		case 'p': pid_s = optarg; break;
		case 'h': fputs(usage_lease, stdout); return EXIT_OK;
		default: return bad_opt(cmd, c, argv);
		}
	}
	if ((mac_s || ip_s) && sub != 0)
		return usage_err(cmd, "--mac and --ip are for lease add");
	if (pid_s && sub != 2)
		return usage_err(cmd, "--pid is for lease take");
	if ((rc = net_vm(cmd, argc, argv)))
		return rc;
	const char *net = argv[optind], *vm = argv[optind + 1];
	if (kl_vm_name_check(vm, &why))
		return fail("network %s: vm %s: %s", net, vm, why);
	if (mac_s && parse_mac(mac_s, mac))
		return fail("network %s: vm %s: mac %s: not a MAC address "
			    "(want aa:bb:cc:dd:ee:ff)", net, vm, mac_s);
	if (ip_s && (parse_ip(ip_s, &addr) || !addr))
		return fail("network %s: vm %s: address %s: not an IPv4 address",
			    net, vm, ip_s);
	if (pid_s) {
		unsigned long v;
		if (parse_uint(pid_s, INT_MAX, &v) || !v)
			return fail("network %s: vm %s: pid %s: not a process id",
				    net, vm, pid_s);
		pid = (pid_t)v;
	}
	if ((rc = open_handle(&h)))
		return rc;
	switch (sub) {
	case 0: rc = kl_lease_add(h, net, vm, mac_s ? mac : NULL, addr); break;
	case 1: rc = kl_lease_del(h, net, vm); break;
	case 2: rc = kl_lease_take(h, net, vm, pid, &info); break;
	default: rc = kl_lease_release(h, net, vm); break;
	}
	if (rc) {
		rc = lib_fail(h);
	} else if (sub == 2) {
		/* One line of key=value, for scripts. */
		char r[16];
		mac_str(info.mac, m);
		printf("vm=%s mac=%s address=%s/%u router=%s mtu=%u dns=", info.vm,
		       m, ip4(info.addr, a), info.prefix, ip4(info.router, r),
		       info.mtu);
		for (unsigned i = 0; i < info.ndns; i++)
			printf("%s%s", i ? "," : "", ip4(info.dns[i], a));
		printf("%s\n", info.ndns ? "" : "none");
	}
	kl_net_close(h);
	return rc;
}

/* "tcp" or "udp" */
static int parse_proto(const char *s)
{
	return !strcmp(s, "tcp") ? IPPROTO_TCP : !strcmp(s, "udp") ? IPPROTO_UDP : 0;
}

static int cmd_forward(int argc, char **argv)
{
	static const struct option opts[] = {
		{"proto", required_argument, NULL, 'P'},
		{"port", required_argument, NULL, 'p'},
		{"to", required_argument, NULL, 't'},
		{"vm", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *proto_s = NULL, *port_s = NULL, *to_s = NULL, *vm = NULL;
	struct kl_forward f;
	struct kl_net *h;
	unsigned long v;
	bool add;
	int c, rc;

	if (argc < 2)
		return usage_err("forward", "add or del is missing");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_forward, stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "add") && strcmp(argv[1], "del"))
		return usage_err("forward", "unknown subcommand '%s'", argv[1]);
	add = !strcmp(argv[1], "add");
	const char *cmd = add ? "forward add" : "forward del";
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'P': proto_s = optarg; break;
		case 'p': port_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'v': vm = optarg; break;
		case 'h': fputs(usage_forward, stdout); return EXIT_OK;
		default: return bad_opt(cmd, c, argv);
		}
	}
	if ((rc = one_name(cmd, argc, argv)))
		return rc;
	if (!proto_s || !port_s)
		return usage_err(cmd, "--proto and --port are required");
	if (add && !to_s)
		return usage_err(cmd, "--to is required");
	if (!add && (to_s || vm))
		return usage_err(cmd, "--to and --vm are for forward add");
	const char *net = argv[optind];
	if (check_name("network", net))
		return EXIT_FAIL;
	memset(&f, 0, sizeof(f));
	if (!(f.proto = parse_proto(proto_s)))
		return fail("network %s: forward: --proto %s: not tcp or udp", net,
			    proto_s);
	if (parse_uint(port_s, 65535, &v) || !v)
		return fail("network %s: forward %s: --port %s: not a port in "
			    "1..65535", net, proto_s, port_s);
	f.port = (uint16_t)v;
	if (vm) {
		const char *why;
		if (kl_vm_name_check(vm, &why))
			return fail("network %s: vm %s: %s", net, vm, why);
		snprintf(f.vm, sizeof(f.vm), "%s", vm);
	}
	if (add && vm && !strchr(to_s, ':')) {
		/* --vm VM --to PORT: the VM's leased address */
		if (parse_uint(to_s, 65535, &v) || !v)
			return fail("network %s: forward %s %u: --to %s: not a port "
				    "in 1..65535", net, proto_s, f.port, to_s);
		f.to_port = (uint16_t)v;
	} else if (add) {
		const char *colon = strrchr(to_s, ':');
		char ip[16];
		if (!colon || (size_t)(colon - to_s) >= sizeof(ip) ||
		    (memcpy(ip, to_s, (size_t)(colon - to_s)),
		     ip[colon - to_s] = 0, parse_ip(ip, &f.addr)) ||
		    parse_uint(colon + 1, 65535, &v) || !v)
			return fail("network %s: forward %s %u: --to %s: want "
				    "ADDR:PORT (port 1..65535)", net, proto_s,
				    f.port, to_s);
		f.to_port = (uint16_t)v;
	}
	if ((rc = open_handle(&h)))
		return rc;
	rc = add ? kl_forward_add(h, net, &f)
		 : kl_forward_del(h, net, f.proto, f.port);
	rc = rc ? lib_fail(h) : EXIT_OK;
	kl_net_close(h);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return EXIT_OK;
	}
	/* getopt_long sees the command's own arguments only. */
	argc--;
	argv++;
	if (!strcmp(cmd, "up"))
		return cmd_up(argc, argv);
	if (!strcmp(cmd, "down"))
		return cmd_down(argc, argv);
	if (!strcmp(cmd, "tap"))
		return cmd_tap(argc, argv);
	if (!strcmp(cmd, "show"))
		return cmd_show(argc, argv);
	if (!strcmp(cmd, "lease"))
		return cmd_lease(argc, argv);
	if (!strcmp(cmd, "forward"))
		return cmd_forward(argc, argv);
	fprintf(stderr, PROG ": unknown command '%s' (try '" PROG " --help')\n",
		cmd);
	return EXIT_USAGE;
}
