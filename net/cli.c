/* kvmlab-net: the command line over the net library. Parses arguments,
 * prints one line per failure and picks the exit code: 0 done, 1 failed
 * (bad values included), 2 usage error (the table in doc/exit-status.txt,
 * shared with kvmlab-vm, the man pages and the README). */
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
#include <jansson.h>
#include "cli_suggest.h"
#include "net.h"

#define PROG "kvmlab-net"
#ifndef KL_VERSION
#define KL_VERSION "unknown"
#endif
#ifndef KL_SYSCONFDIR
#define KL_SYSCONFDIR "/etc"
#endif
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
	"usage: " PROG " COMMAND [ARGS]\n"
	"\n"
	"Host networking for kvmlab: bridges, taps, forwarding and NAT.\n"
	"\n"
	"commands:\n"
	"  up NAME --cidr A.B.C.D/LEN [--cidr6 ADDR/LEN] [--bridge BR] [--nat]\n"
	"          [--uplink IF] [--mtu N] [--stp] [--dns A[,B]] [--dry-run]\n"
	"          [--config FILE]\n"
	"  down NAME [--if-exists]\n"
	"  tap add TAP [TAP...] --net NAME [--owner USER] [--group GROUP]\n"
	"          [--queues N]\n"
	"  tap del TAP [TAP...] [--if-exists]\n"
	"  show [NAME] [--json]\n"
	"  lease add NET VM [--mac MAC] [--ip ADDR]\n"
	"  lease del NET VM\n"
	"  lease take NET VM [--pid PID]\n"
	"  lease release NET VM\n"
	"  forward add NET --proto tcp|udp --port HOSTPORT --to ADDR:PORT\n"
	"          [--vm VM]\n"
	"  forward del NET --proto tcp|udp --port HOSTPORT [-4|-6]\n"
	"  help [COMMAND]\n"
	"\n"
	"  --help     this text ('" PROG " COMMAND --help' for a command's)\n"
	"  --version  print the version\n"
	"\n"
	"Every command takes --wait SECONDS: how long to wait for another run\n"
	"in this network namespace (default 10, or KVMLAB_LOCK_TIMEOUT).\n"
	"Needs CAP_NET_ADMIN (show does not). Exit status: 0 done, 1 failed\n"
	"(a bad value or the system refused), 2 usage error. See kvmlab-net(8).\n";

static const char usage_up[] =
	"usage: " PROG " up NAME --cidr A.B.C.D/LEN [options]\n"
	"\n"
	"Ensure network NAME: its bridge exists, is up and holds the address;\n"
	"IPv4 forwarding is on. Running it again changes nothing; a different\n"
	"definition of an existing network is an error.\n"
	"\n"
	"  --cidr A.B.C.D/LEN  the bridge's address and the subnet (required)\n"
	"  --cidr6 ADDR/LEN    IPv6 too: the bridge's address and the prefix\n"
	"                      (a /64 for SLAAC, e.g. fd57::1/64); the bridge\n"
	"                      also gets fe80::1, IPv6 forwarding goes on, and\n"
	"                      --nat masquerades the prefix as well\n"
	"  --bridge BR         bridge name (default kl-NAME)\n"
	"  --nat               masquerade the subnet leaving through any other\n"
	"                      interface, accept it in forward and the replies\n"
	"  --uplink IF         masquerade only through IF\n"
	"  --mtu N             bridge MTU (68..65521, what a tap can take)\n"
	"  --stp               turn on spanning tree\n"
	"  --dns A[,B[,C]]     DNS servers to hand to guests, stored with the\n"
	"                      network: IPv4 ones by DHCP, IPv6 ones (with\n"
	"                      --cidr6) in router advertisements; up to 3 of each\n"
	"  --dry-run           print the plan, have the kernel check the nft\n"
	"                      batch, change nothing\n"
	"  --config FILE       read options from FILE, one per line (\"cidr\n"
	"                      10.0.0.1/24\", \"nat\"; '#' comments); the command\n"
	"                      line's own come after them\n";

static const char usage_down[] =
	"usage: " PROG " down NAME [--if-exists]\n"
	"\n"
	"Remove what up and tap add made for NAME (found by their tags): taps,\n"
	"bridge, address, nft table. Forwarding goes back to its value before\n"
	"the first network when no other kvmlab network is left. Also finishes\n"
	"what a crashed run left. --if-exists: a network that is gone is no\n"
	"error.\n";

static const char usage_tap[] =
	"usage: " PROG " tap add TAP [TAP...] --net NAME [--owner USER]\n"
	"                 [--group GROUP] [--queues N]\n"
	"       " PROG " tap del TAP [TAP...] [--if-exists]\n"
	"\n"
	"add: persistent taps with IFF_VNET_HDR, the bridge's MTU, enslaved to\n"
	"the bridge of NAME and up, all or none. --owner/--group let that user\n"
	"or group open them without privilege. --queues N (1..256) makes a\n"
	"multi-queue tap when N > 1.\n"
	"del: delete taps that kvmlab made (by their tag); --if-exists: a\n"
	"missing tap is no error.\n";

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
	"       " PROG " forward add NET --proto tcp|udp --port HOSTPORT\n"
	"                         --to [ADDR6]:PORT [--vm VM]\n"
	"       " PROG " forward del NET --proto tcp|udp --port HOSTPORT [-4|-6]\n"
	"\n"
	"DNAT of HOSTPORT on the host's own addresses (not loopback) to\n"
	"ADDR:PORT on network NET, for connections from outside, from the\n"
	"host itself and from NET's guests. Adding the same forward again\n"
	"changes nothing; the same host port to another target is an error.\n"
	"--vm ties the forward to VM's active lease (ADDR defaults to its\n"
	"address): it goes when the lease is released or reclaimed.\n"
	"Rules live in chains fwd-pre, fwd-out, fwd-post, fwd-accept of table\n"
	"ip kvmlab-NET.\n"
	"An IPv6 target, in brackets, makes an IPv6 forward on a network with\n"
	"--cidr6 (table ip6 kvmlab-NET): the same host port over IPv4 and\n"
	"over IPv6 are two forwards. It needs ADDR6, the guest's own address\n"
	"(SLAAC: see kvmlab-vm list); --vm only ties it to VM's lease.\n"
	"del removes the forward of HOSTPORT in both families, or with -4 or\n"
	"-6 in that one.\n";

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

static int parse_wait(const char *cmd, unsigned *ms);

static int open_handle(struct kl_net **h)
{
	unsigned ms = 0;
	int w = parse_wait("wait", &ms), err;

	if (w < 0)
		return EXIT_FAIL;
	err = kl_net_open(h);
	if (err)
		return fail("netlink: cannot open: %s%s", strerror(-err),
			    err == -EPERM || err == -EACCES
				    ? " (CAP_NET_ADMIN is needed)"
				    : "");
	if (w > 0)
		kl_net_set_wait(*h, ms);
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

/* --wait SECONDS (fractions allowed), for kl_net_set_wait. */
static const char *wait_arg;

static int parse_wait(const char *cmd, unsigned *ms)
{
	char *end;
	double v;

	if (!wait_arg)
		return 0;
	v = strtod(wait_arg, &end);
	if (!*wait_arg || *end || !(v >= 0 && v <= 86400)) {
		fail("%s: --wait %s: not a number of seconds in 0..86400", cmd,
		     wait_arg);
		return -1;
	}
	*ms = (unsigned)(v * 1000);
	return 1;
}

/* What getopt_long's ':' (missing value) and '?' (unknown) mean. Every
 * command's option table is called opts, so the macro passes it along. */
#define bad_opt(cmd, c, argv) bad_opt_in(cmd, c, argv, opts)
static int bad_opt_in(const char *cmd, int c, char **argv,
		      const struct option *opts)
{
	const char *arg = argv[optind - 1], *near;

	if (c == ':')
		return usage_err(cmd, "%s needs a value", arg);
	near = cli_suggest_opt(arg, opts);
	if (near)
		return usage_err(cmd, "unknown option '%s'; did you mean '--%s'?",
				 arg, near);
	return usage_err(cmd, "unknown option '%s'", arg);
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

/* Append one string to a growing argv (NULL-terminated). */
static int argv_push(char ***v, int *n, char *s)
{
	char **nv = realloc(*v, sizeof(**v) * ((size_t)*n + 2));

	if (!nv || !s)
		return -ENOMEM;
	nv[(*n)++] = s;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

/* One line of a config file into "--key" [value]: "cidr 10.0.0.1/24",
 * "mtu=1400", "--nat". Returns 0 (also for blank and comment lines) or
 * the exit code after printing the reason. */
static int config_line(const char *file, unsigned lineno, char *line,
		       const struct option *opts, char ***v, int *n)
{
	char *key = line + strspn(line, " \t"), *val, *end;
	const struct option *o;
	const char *near;

	end = key + strlen(key);
	while (end > key && strchr(" \t\r\n", end[-1]))
		*--end = 0;
	if (!*key || *key == '#')
		return 0;
	if (!strncmp(key, "--", 2))
		key += 2;
	val = key + strcspn(key, "= \t");
	if (*val) {
		*val++ = 0;
		val += strspn(val, "= \t");
	}
	for (o = opts; o->name; o++)
		if (strcmp(o->name, "help") && strcmp(o->name, "config") &&
		    !strcmp(o->name, key))
			break;
	if (!o->name) {
		char dashed[64];
		snprintf(dashed, sizeof(dashed), "--%s", key);
		near = cli_suggest_opt(dashed, opts);
		return fail("config %s:%u: unknown option '%s'%s%s%s", file,
			    lineno, key, near ? "; did you mean '" : "",
			    near ? near : "", near ? "'?" : "");
	}
	if (o->has_arg == required_argument && !*val)
		return fail("config %s:%u: %s needs a value", file, lineno, key);
	if (o->has_arg == no_argument && *val)
		return fail("config %s:%u: %s takes no value", file, lineno, key);
	char *opt;
	if (asprintf(&opt, "--%s", key) < 0 || argv_push(v, n, opt) ||
	    (*val && argv_push(v, n, strdup(val))))
		return fail("config %s: out of memory", file);
	return 0;
}

/* --config FILE: the command's options, one per line (see config_line),
 * go in front of the command line's own, so for a value given in both
 * the command line wins. argv is replaced; getopt keeps pointers into it,
 * so it lives until exit. */
static int config_args(const char *cmd, const struct option *opts,
		       int *argcp, char ***argvp)
{
	int argc = *argcp, at = -1, skip = 1, n = 0, rc = 0;
	char **argv = *argvp, **nv = NULL, *line = NULL;
	const char *file;
	unsigned lineno = 0;
	size_t cap = 0;
	FILE *f;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (strcmp(argv[i], "--config") && strncmp(argv[i], "--config=", 9))
			continue;
		if (at >= 0)
			return usage_err(cmd, "--config given twice");
		at = i;
	}
	if (at < 0)
		return 0;
	if (argv[at][8] == '=') {
		file = argv[at] + 9;
	} else if (at + 1 < argc) {
		file = argv[at + 1];
		skip = 2;
	} else {
		return usage_err(cmd, "--config needs a value");
	}
	f = fopen(file, "re");
	if (!f)
		return fail("config %s: %s", file, strerror(errno));
	if (argv_push(&nv, &n, argv[0]))
		rc = fail("config %s: out of memory", file);
	while (!rc && getline(&line, &cap, f) >= 0)
		rc = config_line(file, ++lineno, line, opts, &nv, &n);
	if (!rc && ferror(f))
		rc = fail("config %s: %s", file, strerror(errno));
	free(line);
	fclose(f);
	for (int i = 1; !rc && i < argc; i++)
		if ((i < at || i >= at + skip) && argv_push(&nv, &n, argv[i]))
			rc = fail("config %s: out of memory", file);
	if (rc) {
		free(nv);
		return rc;
	}
	*argcp = n;
	*argvp = nv;
	return 0;
}

static int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cidr", required_argument, NULL, 'c'},
		{"cidr6", required_argument, NULL, '6'},
		{"bridge", required_argument, NULL, 'b'},
		{"nat", no_argument, NULL, 'n'},
		{"uplink", required_argument, NULL, 'u'},
		{"mtu", required_argument, NULL, 'm'},
		{"stp", no_argument, NULL, 's'},
		{"dry-run", no_argument, NULL, 'd'},
		{"dns", required_argument, NULL, 'D'},
		{"wait", required_argument, NULL, 'w'},
		{"config", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cidr = NULL, *bridge = NULL, *uplink = NULL, *mtu = NULL;
	const char *dns = NULL, *cidr6 = NULL;
	struct kl_net_cfg cfg;
	unsigned flags = 0;
	struct kl_net *h;
	const char *why;
	int c, rc;

	memset(&cfg, 0, sizeof(cfg));
	if ((rc = config_args("up", opts, &argc, &argv)))
		return rc;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cidr = optarg; break;
		case '6': cidr6 = optarg; break;
		case 'b': bridge = optarg; break;
		case 'n': cfg.nat = true; break;
		case 'u': uplink = optarg; break;
		case 'm': mtu = optarg; break;
		case 's': cfg.stp = true; break;
		case 'd': flags |= KL_DRY_RUN; break;
		case 'D': dns = optarg; break;
		case 'w': wait_arg = optarg; break;
		case 'F': return usage_err("up", "--config given twice");
		case 'h': fputs(usage_up, stdout); return EXIT_OK;
		default: return bad_opt("up", c, argv);
		}
	}
	if ((rc = one_name("up", argc, argv)))
		return rc;
	if (!cidr)
		return usage_err("up", "--cidr is required");
	if (uplink && !cfg.nat)
		return usage_err("up", "--uplink only applies with --nat");
	const char *name = argv[optind];
	if (check_name("network", name))
		return EXIT_FAIL;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	if (kl_cidr_parse(cidr, &cfg.addr, &cfg.prefix, &why))
		return fail("network %s: cidr %s: %s", name, cidr, why);
	if (cidr6 && kl_cidr6_parse(cidr6, cfg.addr6, &cfg.prefix6, &why))
		return fail("network %s: cidr6 %s: %s", name, cidr6, why);
	cfg.has6 = cidr6;
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
		if (parse_uint(mtu, 999999, &v) || v < KL_MTU_MIN ||
		    v > KL_MTU_MAX)
			return fail("network %s: mtu %s: not a number in %d..%d "
				    "(a tap takes at most %d)", name, mtu,
				    KL_MTU_MIN, KL_MTU_MAX, KL_MTU_MAX);
		cfg.mtu = (unsigned)v;
	}
	if (dns && kl_dns_parse46(dns, cfg.dns, &cfg.ndns, cfg.dns6, &cfg.ndns6,
				  &why))
		return fail("network %s: dns %s: %s", name, dns, why);
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
		{"if-exists", no_argument, NULL, 'e'},
		{"wait", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct kl_net *h;
	unsigned flags = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': flags |= KL_IF_EXISTS; break;
		case 'w': wait_arg = optarg; break;
		case 'h': fputs(usage_down, stdout); return EXIT_OK;
		default: return bad_opt("down", c, argv);
		}
	}
	if ((rc = one_name("down", argc, argv)))
		return rc;
	if (check_name("network", argv[optind]))
		return EXIT_FAIL;
	if ((rc = open_handle(&h)))
		return rc;
	rc = kl_net_down(h, argv[optind], flags) ? lib_fail(h) : EXIT_OK;
	print_warnings(h);
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
		{"if-exists", no_argument, NULL, 'e'},
		{"wait", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool if_exists = false;
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
		case 'e': if_exists = true; break;
		case 'w': wait_arg = optarg; break;
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
	if (add && if_exists)
		return usage_err(cmd, "--if-exists is for tap del");
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
		rc = kl_tap_del(h, taps, n, if_exists ? KL_IF_EXISTS : 0);
	rc = rc ? lib_fail(h) : EXIT_OK;
	kl_net_close(h);
	return rc;
}

static const char *ip6(const uint8_t a[16], char buf[INET6_ADDRSTRLEN])
{
	if (!inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN))
		snprintf(buf, INET6_ADDRSTRLEN, "?");
	return buf;
}

static const char *ip4(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
	return buf;
}

/* -1 (unknown) as null, else a boolean */
static json_t *tri(int v)
{
	return v < 0 ? json_null() : json_boolean(v);
}

/* an id, or null for none */
static json_t *id_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

static json_t *tap_json(const struct kl_show_tap *t)
{
	char mac[18];

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", t->mac[0],
		 t->mac[1], t->mac[2], t->mac[3], t->mac[4], t->mac[5]);
	return json_pack("{s:s, s:i, s:b, s:b, s:i, s:s, s:o, s:o, s:i, s:b, s:b}",
			 "name", t->name, "ifindex", t->ifindex, "up", t->up,
			 "enslaved", t->enslaved, "mtu", (int)t->mtu,
			 "mac", mac, "owner", id_or_null(t->owner),
			 "group", id_or_null(t->group),
			 "queues", (int)t->queues,
			 "multi_queue", t->multi_queue, "persistent", t->persist);
}

static const char *const lease_states[] = {"active", "reserved", "stale"};

static void mac_str(const uint8_t *m, char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
		 m[3], m[4], m[5]);
}

static json_t *lease_json(const struct kl_lease *l)
{
	char mac[18], ip[16];

	mac_str(l->mac, mac);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:o}", "vm", l->vm,
			 "mac", mac, "address", ip4(l->addr, ip),
			 "state", lease_states[l->state], "reserved", l->reserved,
			 "pid", l->pid ? json_integer(l->pid) : json_null(),
			 "start", l->pid ? json_integer((json_int_t)l->start)
					 : json_null());
}

static json_t *forward_json(const struct kl_forward *f)
{
	char ip[INET6_ADDRSTRLEN];
	bool v6 = f->family == AF_INET6;

	return json_pack("{s:s, s:i, s:s, s:i, s:o, s:s}", "proto",
			 f->proto == IPPROTO_TCP ? "tcp" : "udp", "port", f->port,
			 "to_address", v6 ? ip6(f->addr6, ip) : ip4(f->addr, ip),
			 "to_port", f->to_port,
			 "vm", f->vm[0] ? json_string(f->vm) : json_null(),
			 "family", v6 ? "ip6" : "ip");
}

/* The DNS servers guests get: up --dns ("network"), else the host's
 * resolvers ("host"); null when the definition is unknown. */
static json_t *dns_json(const struct kl_show_net *n)
{
	json_t *servers;
	char ip[INET6_ADDRSTRLEN];

	if (!n->def_known)
		return json_null();
	servers = json_array();
	for (unsigned i = 0; i < n->cfg.ndns && i < KL_DNS_MAX; i++)
		json_array_append_new(servers, json_string(ip4(n->cfg.dns[i], ip)));
	json_t *servers6 = json_array();
	for (unsigned i = 0; i < n->cfg.ndns6 && i < KL_DNS_MAX; i++)
		json_array_append_new(servers6, json_string(ip6(n->cfg.dns6[i], ip)));
	return json_pack("{s:o, s:s, s:o}", "servers", servers, "from",
			 n->dns_host ? "host" : "network", "servers6", servers6);
}

static json_t *net_json(const struct kl_show_net *n)
{
	const struct kl_net_cfg *c = &n->cfg;
	uint32_t mask = c->prefix ? ~0u << (32 - c->prefix) : 0;
	char ip[16], cidr[32], sub[32], tname[64];
	json_t *o, *taps = json_array(), *leases = NULL, *fwds = NULL;

	snprintf(cidr, sizeof(cidr), "%s/%u", ip4(c->addr, ip), c->prefix);
	snprintf(sub, sizeof(sub), "%s/%u", ip4(c->addr & mask, ip), c->prefix);
	snprintf(tname, sizeof(tname), "ip kvmlab-%s", c->name);
	for (size_t j = 0; j < n->ntaps; j++)
		json_array_append_new(taps, tap_json(&n->taps[j]));
	/* Unreadable without CAP_NET_ADMIN: null, not an empty list. */
	if (n->nft_present >= 0) {
		leases = json_array();
		fwds = json_array();
		for (size_t j = 0; j < n->nleases; j++)
			json_array_append_new(leases, lease_json(&n->leases[j]));
		for (size_t j = 0; j < n->nfwds; j++)
			json_array_append_new(fwds, forward_json(&n->fwds[j]));
	}
	/* unknown (no readable table): null, never a guess as a value */
	bool k = n->def_known;
	o = json_pack("{s:s, s:b, s:s?, s:s?, s:s?, s:o, s:s?, s:o, s:o, s:o, s:o,"
		      " s:o, s:o, s:b, s:b, s:b, s:s, s:o, s:o, s:o, s:o}",
		      "name", c->name, "defined", k,
		      "bridge", c->bridge[0] ? c->bridge : NULL,
		      "cidr", c->prefix ? cidr : NULL,
		      "address", c->prefix ? ip4(c->addr, ip) : NULL,
		      "prefixlen", c->prefix ? json_integer(c->prefix) : json_null(),
		      "subnet", c->prefix ? sub : NULL,
		      "nat", k ? json_boolean(c->nat) : json_null(),
		      "uplink", k && c->uplink[0] ? json_string(c->uplink)
						   : json_null(),
		      "stp", k ? json_boolean(c->stp) : json_null(),
		      "mtu", n->bridge_exists ? json_integer(n->bridge_mtu)
					      : json_null(),
		      "mtu_config", k && c->mtu ? json_integer(c->mtu) : json_null(),
		      "dns", dns_json(n),
		      "bridge_exists", n->bridge_exists,
		      "bridge_up", n->bridge_up,
		      "address_present", n->addr_present,
		      "nft_table", tname,
		      "nft_present", tri(n->nft_present),
		      "taps", taps,
		      "leases", leases ? leases : json_null(),
		      "forwards", fwds ? fwds : json_null());
	/* IPv6 (added keys): null when the network has none or its
	 * definition is unknown */
	char c6[64], s6[64], a6[46], t6[64];
	bool six = k && c->has6;
	if (six) {
		uint8_t net[16];
		kl_prefix6(c->addr6, c->prefix6, net);
		ip6(c->addr6, a6);
		snprintf(c6, sizeof(c6), "%s/%u", a6, c->prefix6);
		ip6(net, s6);
		snprintf(s6 + strlen(s6), sizeof(s6) - strlen(s6), "/%u", c->prefix6);
		snprintf(t6, sizeof(t6), "ip6 kvmlab-%s", c->name);
	}
	if (o)
		json_object_update_new(o, json_pack("{s:s?, s:s?, s:s?, s:o, s:s?}",
			"cidr6", six ? c6 : NULL, "address6", six ? a6 : NULL,
			"subnet6", six ? s6 : NULL,
			"address6_present", six ? json_boolean(n->addr6_present)
						: json_null(),
			"nft_table6", six ? t6 : NULL));
	return o;
}

static int show_json(const struct kl_show *s)
{
	json_t *nets = json_array(), *root;
	int rc = 0;

	for (size_t i = 0; i < s->nnets; i++)
		json_array_append_new(nets, net_json(&s->nets[i]));
	root = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "netns",
			 (json_int_t)s->netns,
			 "forwarding", tri(s->forwarding),
			 "forwarding_prev", tri(s->forwarding_prev),
			 "forwarding6", tri(s->forwarding6),
			 "forwarding6_prev", tri(s->forwarding6_prev),
			 "networks", nets);
	if (!root || json_dumpf(root, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) ||
	    putchar('\n') == EOF)
		rc = fail("show: cannot write JSON");
	json_decref(root);
	return rc;
}

/* The DNS servers guests get, and where they come from. */
static void show_text_dns(const struct kl_show_net *n)
{
	char ip[16];

	printf("  dns     ");
	for (unsigned i = 0; i < n->cfg.ndns; i++)
		printf("%s %s", i ? "," : "", ip4(n->cfg.dns[i], ip));
	for (unsigned i = 0; i < n->cfg.ndns6 && i < KL_DNS_MAX; i++) {
		char a6[INET6_ADDRSTRLEN];
		printf("%s %s", i || n->cfg.ndns ? "," : "", ip6(n->cfg.dns6[i], a6));
	}
	if (!n->cfg.ndns && !n->cfg.ndns6)
		printf(" none (the host has no upstream resolver a guest can "
		       "reach)");
	else
		printf(" (%s)", n->dns_host ? "the host's resolvers" : "up --dns");
	printf("\n");
}

static void show_text_leases(const struct kl_show_net *n)
{
	char ip[16], mac[18];

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
		char a6f[INET6_ADDRSTRLEN];
		if (f->family == AF_INET6)
			printf("  forward  %s %u -> [%s]:%u", f->proto == IPPROTO_TCP
			       ? "tcp" : "udp", f->port, ip6(f->addr6, a6f),
			       f->to_port);
		else
			printf("  forward  %s %u -> %s:%u", f->proto == IPPROTO_TCP
			       ? "tcp" : "udp", f->port, ip4(f->addr, ip),
			       f->to_port);
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
		if (n->def_known && n->cfg.has6) {
			char a6[46];
			ip6(n->cfg.addr6, a6);
			printf("  ipv6     %s/%u and fe80::1%s, table ip6 kvmlab-%s\n",
			       a6, n->cfg.prefix6, n->addr6_present ? "" :
			       " (MISSING)", n->cfg.name);
		}
		if (!n->def_known)
			printf("  table    ip kvmlab-%s %s\n", n->cfg.name,
			       n->nft_present < 0 ? "(unknown: reading it needs "
			       "CAP_NET_ADMIN)" : n->nft_present ? "(definition "
			       "unreadable)" : n->cfg.has6 ? "(MISSING, its ip6 table is "
			       "left: run down, then up)" : "(MISSING: run up again)");
		else if (n->cfg.nat)
			printf("  nat      via %s, table ip kvmlab-%s\n",
			       n->cfg.uplink[0] ? n->cfg.uplink : "any interface",
			       n->cfg.name);
		else
			printf("  nat      off, table ip kvmlab-%s\n", n->cfg.name);
		if (n->def_known)
			show_text_dns(n);
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
	if (s->forwarding_prev >= 0 && s->forwarding_prev != s->forwarding)
		printf(" (%s before kvmlab's first network)",
		       s->forwarding_prev ? "on" : "off");
	printf("\n");
	if (s->forwarding6_prev >= 0) {
		printf("forwarding6 %s", s->forwarding6 == 1 ? "on"
		       : s->forwarding6 == 0 ? "off" : "unknown");
		if (s->forwarding6_prev != s->forwarding6)
			printf(" (%s before kvmlab's first IPv6 network)",
			       s->forwarding6_prev ? "on" : "off");
		printf("\n");
	}
}

static int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"wait", required_argument, NULL, 'w'},
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
		case 'w': wait_arg = optarg; break;
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
			rc = show_json(s);
		else
			show_text(s);
		kl_show_free(s);
	}
	kl_net_close(h);
	return rc;
}

static const char *const commands[] = {"up", "down", "tap", "show", "lease", "forward", "help"};

static int unknown_command(const char *cmd)
{
	static const struct option top[] = {
		{"help", no_argument, NULL, 0}, {"version", no_argument, NULL, 0},
		{0},
	};
	const char *near = *cmd == '-' ? cli_suggest_opt(cmd, top) :
		cli_closest(cmd, strlen(cmd), commands,
			    sizeof(commands) / sizeof(commands[0]));
	char dashed[16];

	if (near && *cmd == '-') {
		snprintf(dashed, sizeof(dashed), "--%s", near);
		near = dashed;
	}

	fprintf(stderr, PROG ": unknown %s '%s'%s%s%s (try '" PROG " --help')\n",
		*cmd == '-' ? "option" : "command", cmd,
		near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
	return EXIT_USAGE;
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
		{"wait", required_argument, NULL, 'w'},
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
		case 'w': wait_arg = optarg; break;
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
		printf("%s", info.ndns ? "" : "none");
		if (info.has6) {
			/* what a VMM's router advertisements would say */
			char p6[INET6_ADDRSTRLEN];
			uint8_t net6[16];
			kl_prefix6(info.addr6, info.prefix6, net6);
			ip6(net6, p6);
			printf(" prefix6=%s/%u router6=fe80::1 dns6=", p6, info.prefix6);
			for (unsigned i = 0; i < info.ndns6 && i < KL_DNS_MAX; i++)
				printf("%s%s", i ? "," : "", ip6(info.dns6[i], p6));
			printf("%s", info.ndns6 ? "" : "none");
		}
		printf("\n");
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
		{"wait", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *proto_s = NULL, *port_s = NULL, *to_s = NULL, *vm = NULL;
	int family = AF_UNSPEC;
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
	while ((c = getopt_long(argc, argv, ":h46", opts, NULL)) != -1) {
		switch (c) {
		case '4': family = AF_INET; break;
		case '6': family = AF_INET6; break;
		case 'P': proto_s = optarg; break;
		case 'p': port_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'v': vm = optarg; break;
		case 'w': wait_arg = optarg; break;
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
	if (add && family != AF_UNSPEC)
		return usage_err(cmd, "-4 and -6 are for forward del (add takes "
				 "the family of --to's address)");
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
	} else if (add && to_s[0] == '[') {
		/* [ADDR6]:PORT */
		const char *close = strchr(to_s, ']');
		char ip[INET6_ADDRSTRLEN];
		size_t n = close ? (size_t)(close - to_s - 1) : 0;
		if (!close || !n || n >= sizeof(ip) || close[1] != ':' ||
		    (memcpy(ip, to_s + 1, n), ip[n] = 0,
		     inet_pton(AF_INET6, ip, f.addr6) != 1) ||
		    parse_uint(close + 2, 65535, &v) || !v)
			return fail("network %s: forward %s %u: --to %s: want "
				    "[ADDR6]:PORT (port 1..65535)", net, proto_s,
				    f.port, to_s);
		f.family = AF_INET6;
		f.to_port = (uint16_t)v;
	} else if (add && strchr(to_s, ':') != strrchr(to_s, ':')) {
		return fail("network %s: forward %s %u: --to %s: an IPv6 target "
			    "goes in brackets: [ADDR6]:PORT", net, proto_s, f.port,
			    to_s);
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
		 : kl_forward_del_family(h, net, family, f.proto, f.port);
	rc = rc ? lib_fail(h) : EXIT_OK;
	kl_net_close(h);
	return rc;
}

int main(int argc, char **argv)
{
	static char help_opt[] = "--help";
	char *help_argv[3] = {NULL, help_opt, NULL};

	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf(PROG " " KL_VERSION "\n");
		return EXIT_OK;
	}
	if (!strcmp(cmd, "help") && argc > 2) {
		/* help COMMAND: that command's --help */
		cmd = help_argv[0] = argv[2];
		argc = 2;
		argv = help_argv;
	} else if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") ||
		   !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return EXIT_OK;
	} else {
		/* getopt_long sees the command's own arguments only. */
		argc--;
		argv++;
	}
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
	return unknown_command(cmd);
}
