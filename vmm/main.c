/* kvmlab-vm: argv into a config, build, run, exit code. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <net/if.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"
#include "layout.h"
#include "devices.h"
#include "dhcp.h"
#include "dhcp_tap.h"
#include "cli_suggest.h"
#include "net.h"
#include "cpu.h"
#include "runloop.h"
#include "vm.h"

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k"
#define DEFAULT_MEM (256ULL << 20)
#ifndef KL_VERSION
#define KL_VERSION "unknown"
#endif
#ifndef KL_GUEST_DIR
#define KL_GUEST_DIR "/usr/local/lib/kvmlab/guest"
#endif

static const char usage_main[] =
	"usage: kvmlab-vm COMMAND [ARGS]\n"
	"\n"
	"A minimal KVM VMM for networked test VMs.\n"
	"\n"
	"commands:\n"
	"  run [--kernel KERNEL] [--initrd FILE|none] [--cmdline STR] [--mem SIZE]\n"
	"      [--cpus N] [--console stdio|file:PATH|none] [--net NAME] [--tap IFNAME]\n"
	"      [--queues N] [--mac MAC] [--vhost auto|on|off]\n"
	"      [--disk FILE[,ro][,cache=writeback|none][,aio=auto|uring|thread]] [--name VM]\n"
	"      [--forward HOSTPORT:GUESTPORT[/udp]]... [--stats]\n"
	"  check\n"
	"  help [COMMAND]\n"
	"\n"
	"  --help     this text ('kvmlab-vm COMMAND --help' for a command's)\n"
	"  --version  print the version\n"
	"\n"
	"Exit status: 0 done, 1 failed (a bad value or the host refused), 2 usage\n"
	"error; run and check add more (see their --help). See kvmlab-vm(1).\n";

static const char usage_check[] =
	"usage: kvmlab-vm check\n"
	"\n"
	"The host doctor: CPU flags, the module behind /dev/kvm, access to it,\n"
	"the KVM API and each capability the VMM needs, /dev/net/tun,\n"
	"/dev/vhost-net, nftables, bridge support and the default guest. Each\n"
	"problem is named as missing, no permission or PVM, with its fix.\n"
	"exit status: 0 ready, 1 cannot run, 3 PVM host (stock kernels will not boot)\n";

static const char usage_text[] =
	"usage: kvmlab-vm run [--kernel KERNEL] [--initrd FILE|none] [--cmdline STR]\n"
	"                     [--mem SIZE] [--cpus N] [--console stdio|file:PATH|none]\n"
	"                     [--net NAME] [--tap IFNAME] [--queues N] [--mac MAC]\n"
	"                     [--vhost auto|on|off] [--disk FILE[,ro][,cache=writeback|none][,aio=auto|uring|thread]]\n"
	"                     [--name VM] [--forward HOSTPORT:GUESTPORT[/udp]]... [--stats]\n"
	"\n"
	"run: boot Linux under KVM with a 16550 console on COM1.\n"
	"  --kernel   a bzImage, or an uncompressed ELF vmlinux; default: the\n"
	"             default guest's bzImage, from <dir of this\n"
	"             program>/guest, <dir>/../lib/kvmlab/guest or " KL_GUEST_DIR "\n"
	"  --initrd   default: that guest's initrd.img when --kernel is not given\n"
	"  --cmdline  default: \"" DEFAULT_CMDLINE "\"\n"
	"  --mem      bytes with K/M/G suffix, plain numbers are MiB; default 256M\n"
	"  --cpus     1..255, default 1\n"
	"  --console  stdio (default; stdin goes raw on a tty), file:PATH, none\n"
	"  --net      make a tap of our own on kvmlab network NAME (kvmlab-net up)\n"
	"             for virtio-net; it is removed when kvmlab-vm exits. The VM\n"
	"             takes its lease (stable MAC and address) on NAME first and\n"
	"             answers its guest's DHCP itself; the lease goes at exit\n"
	"  --name     the VM's name on NAME (its lease, DHCP host name), default\n"
	"             vm-<pid>; [A-Za-z0-9_.-], 1..63 bytes\n"
	"  --forward  host port to guest port (TCP; /udp for UDP) for the VM's\n"
	"             lifetime; repeatable; needs --net\n"
	"  --tap      an existing tap for virtio-net; with --net, the new tap's name\n"
	"  --queues   virtio-net queue pairs, 1..8 and at most --cpus, default 1;\n"
	"             one tap queue each (a tap made by kvmlab-net tap add --queues N)\n"
	"  --vhost    virtio-net data path in the kernel (vhost-net) once the driver\n"
	"             runs: auto (default) when /dev/vhost-net opens, on (required), off\n"
	"  --mac      virtio-net MAC, default: the lease's with --net, else\n"
	"             52:54:00 plus 3 random bytes\n"
	"  --disk     a raw image for virtio-blk, \",ro\" for read-only; cache=none\n"
	"             opens it O_DIRECT, writeback (default) uses the page cache;\n"
	"             aio=uring does the I/O through io_uring, aio=thread on the\n"
	"             disk's own thread; aio=auto (default): the thread with\n"
	"             writeback, io_uring with cache=none where the kernel\n"
	"             allows it (else the thread; one line says so)\n"
	"  --stats    at exit, print the exit counts by reason from KVM's own\n"
	"             statistics (binary stats fd, Linux 5.14+; else debugfs)\n"
	"  Console keys: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"  A guest panic is seen through pvpanic, or the console's\n"
	"  \"Kernel panic - not syncing\" line for guests without that driver.\n"
	"exit status of run:\n"
	"  0  guest powered off or rebooted, or Ctrl-A x\n"
	"  1  host-side setup error (one line names the object and reason)\n"
	"  2  usage error\n"
	"  3  guest panicked\n"
	"  4  fatal KVM exit (registers dumped on stderr)\n"
	"  128+N  stopped by signal N (SIGINT, SIGTERM, SIGHUP, SIGQUIT)\n"
	"  --help     this text\n";

/* The command line could not be parsed (exit 2): one line, ending with
 * where to read more. A bad value is value_error (exit 1), the same split
 * as kvmlab-net's (doc/exit-status.txt). */
__attribute__((format(printf, 2, 3)))
static int usage_error_in(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "kvmlab-vm: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'kvmlab-vm %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
	return VM_RC_USAGE;
}
#define usage_error(...) usage_error_in("run", __VA_ARGS__)

__attribute__((format(printf, 1, 2)))
static int value_error(const char *fmt, ...)
{
	va_list ap;
	fputs("kvmlab-vm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return VM_RC_SETUP;
}

/* "512" is MiB like QEMU's -m; K/M/G/T suffixes, optional "iB"/"B". */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift;
	switch (*end) {
	case 0: shift = 20; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && strcmp(end + 1, "") && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static char *exe_relative(const char *rel)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	char *p;
	if (asprintf(&p, "%s/%s", buf, rel) < 0)
		return NULL;
	return p;
}

/* The default guest's directory: next to a build tree's binary
 * (build/guest), relative to an installed one (bin/../lib/kvmlab/guest,
 * which also finds a DESTDIR copy), then where make install put it.
 * NULL if none holds a bzImage; tried[] then lists where it looked. */
static char *guest_dir_find(char *tried, size_t tried_len)
{
	static const char *const rel[] = { "guest", "../lib/kvmlab/guest" };
	struct stat st;
	char *d, *k;
	size_t used = 0;

	for (unsigned i = 0; i < 3; i++) {
		d = i < 2 ? exe_relative(rel[i]) : strdup(KL_GUEST_DIR);
		if (!d)
			continue;
		if (asprintf(&k, "%s/bzImage", d) >= 0) {
			int found = stat(k, &st) == 0 && S_ISREG(st.st_mode);
			free(k);
			char *r = found ? realpath(d, NULL) : NULL;
			if (r) {
				free(d);
				return r;
			}
			if (found)
				return d;
		}
		if (used < tried_len)
			used += (size_t)snprintf(tried + used, tried_len - used, "%s%s",
						 i ? ", " : "", d);
		free(d);
	}
	return NULL;
}

/* "52:54:00:ab:cd:ef"; a multicast address cannot be a NIC's. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &tail) != 6 || (v[0] & 1))
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* QEMU's locally administered prefix plus random bytes, so that several
 * VMs on one bridge do not clash. */
static void random_mac(uint8_t mac[6])
{
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	if (getrandom(mac + 3, 3, GRND_NONBLOCK) != 3) {
		unsigned r = (unsigned)getpid() * 2654435761u;
		memcpy(mac + 3, &r, 3);
	}
}

#define MAX_FORWARDS 64

/* "8080:80", "5353:53/udp", "2222:22/tcp" */
static int parse_forward(const char *s, struct kl_forward *f)
{
	unsigned long hp, gp;
	char *end;

	memset(f, 0, sizeof(*f));
	f->proto = IPPROTO_TCP;
	errno = 0;
	hp = strtoul(s, &end, 10);
	if (errno || end == s || *s == '-' || *end != ':' || !hp || hp > 65535)
		return -EINVAL;
	const char *g = end + 1;
	gp = strtoul(g, &end, 10);
	if (errno || end == g || *g == '-' || !gp || gp > 65535)
		return -EINVAL;
	if (!strcmp(end, "/udp"))
		f->proto = IPPROTO_UDP;
	else if (*end && strcmp(end, "/tcp"))
		return -EINVAL;
	f->port = (uint16_t)hp;
	f->to_port = (uint16_t)gp;
	return 0;
}

static int vm_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > KL_VM_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_.-") == n;
}

/* The lease for `run --net`: what DHCP answers, plus the VM's forwards.
 * Holds its handle until lease_give_back(). */
struct net_lease {
	struct kl_net *h;
	const char *net, *name;
	struct kl_lease_info info;
	struct dhcp_lease dhcp;
};

static const char *net_why(struct kl_net *h, int rc)
{
	const char *m = kl_net_errmsg(h);
	/* the library's line when it left one, else the errno's text */
	return m && *m && strcmp(m, "unknown error") ? m : strerror(-rc);
}

static void lease_give_back(struct net_lease *L)
{
	if (!L->h)
		return;
	int rc = kl_lease_release(L->h, L->net, L->name);
	if (rc)
		fprintf(stderr, "kvmlab-vm: --net %s: releasing the lease of %s: %s\n",
			L->net, L->name, net_why(L->h, rc));
	kl_net_close(L->h);
	L->h = NULL;
}

/* Take the lease of name on net and add its forwards; all or nothing. */
static int lease_take(struct net_lease *L, const char *net, const char *name,
		      const struct kl_forward *fw, unsigned nfw, struct err *e)
{
	int rc;

	memset(L, 0, sizeof(*L));
	L->net = net;
	L->name = name;
	rc = kl_net_open(&L->h);
	if (rc) {
		L->h = NULL;
		return errf(e, -rc, "--net %s: %s%s", net, strerror(-rc),
			    rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	}
	rc = kl_lease_take(L->h, net, name, getpid(), &L->info);
	if (rc) {
		rc = errf(e, -rc, "--net %s: lease for %s: %s%s", net, name, net_why(L->h, rc),
			  rc == -EEXIST ? " (a running VM has this name)" : "");
		kl_net_close(L->h);
		L->h = NULL;
		return rc;
	}
	for (unsigned i = 0; i < nfw; i++) {
		struct kl_forward f = fw[i];
		f.addr = L->info.addr;
		snprintf(f.vm, sizeof(f.vm), "%s", name);
		rc = kl_forward_add(L->h, net, &f);
		if (rc) {
			rc = errf(e, -rc, "--forward %u:%u%s: %s", f.port, f.to_port,
				  f.proto == IPPROTO_UDP ? "/udp" : "", net_why(L->h, rc));
			lease_give_back(L); /* takes the forwards made so far with it */
			return rc;
		}
	}
	struct dhcp_lease *d = &L->dhcp;
	memcpy(d->mac, L->info.mac, 6);
	d->addr = L->info.addr;
	d->router = L->info.router;
	d->prefix = L->info.prefix;
	d->mtu = L->info.mtu;
	d->ndns = L->info.ndns < DHCP_DNS_MAX ? L->info.ndns : DHCP_DNS_MAX;
	memcpy(d->dns, L->info.dns, sizeof(uint32_t) * d->ndns);
	snprintf(d->hostname, sizeof(d->hostname), "%s", name);
	return 0;
}

/* --net: the single-command path. The only place the VMM calls net/: a
 * non-persistent tap on the network's bridge, which the kernel deletes
 * when our fd closes, so no exit path (not even SIGKILL) leaves it. */
static int open_net_tap(const char *net, const char *name, unsigned queues, int *fds,
			struct err *e)
{
	struct kl_net *h;
	char got[KL_NAME_MAX + 1] = "";
	int rc;

	rc = kl_net_open(&h);
	if (rc)
		return errf(e, -rc, "--net %s: %s%s", net, strerror(-rc),
			    rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	rc = kl_tap_open_mq(h, net, name, queues, got, fds);
	if (rc) {
		rc = errf(e, -rc, "--net %s: %s", net, kl_net_errmsg(h));
		kl_net_close(h);
		return rc;
	}
	/* we answer the guest's DHCP (from a packet socket when vhost-net
	 * moves its frames): its requests have no business on the bridge.
	 * Not fatal: without it they also reach the bridge, nothing worse */
	rc = kl_tap_dhcp_local(h, got);
	if (rc)
		fprintf(stderr, "kvmlab-vm: --net %s: warning: %s; the guest's DHCP "
			"requests may also reach the bridge\n", net, net_why(h, rc));
	kl_net_close(h);
	/* the device's epoll loops drain each tap queue until EAGAIN */
	for (unsigned i = 0; i < queues; i++) {
		int fl = fcntl(fds[i], F_GETFL);
		if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0) {
			rc = errf(e, errno, "--net %s: tap %s: %s", net, got, strerror(errno));
			for (unsigned j = 0; j < queues; j++)
				close(fds[j]);
			return rc;
		}
	}
	return 0;
}

/* One queue of an existing tap. mq: IFF_MULTI_QUEUE, which must match
 * how the tap was made, or the kernel says EINVAL. */
static int tap_queue_open(const char *name, bool mq)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* An existing tap, opened for virtio-net: queues fds into fds[]. TUNSETIFF
 * on a name that does not exist would create a new device; refuse that.
 * Whether the tap is multi-queue is asked of the kernel the one way that
 * works in any namespace: a single queue tries both kinds. */
static int open_tap(const char *name, unsigned queues, int *fds, struct err *e)
{
	if (strlen(name) >= IFNAMSIZ)
		return errf(e, EINVAL, "--tap %s: name too long", name);
	if (!if_nametoindex(name))
		return errf(e, ENODEV, "--tap %s: no such interface", name);
	bool mq = queues > 1;
	for (unsigned i = 0; i < queues; i++) {
		int fd = tap_queue_open(name, mq);
		if (fd == -EINVAL && i == 0 && queues == 1) {
			mq = true; /* a multi-queue tap (kvmlab-net tap add --queues N) */
			fd = tap_queue_open(name, mq);
		}
		if (fd < 0) {
			int rc;
			if (fd == -EINVAL && mq && queues > 1)
				rc = errf(e, EINVAL, "--tap %s: --queues %u needs a multi-queue tap "
					  "(kvmlab-net tap add --queues N; ip tuntap ... multi_queue)",
					  name, queues);
			else
				rc = errf(e, -fd, "--tap %s: TUNSETIFF%s: %s", name,
					  mq ? " (multi-queue)" : "", strerror(-fd));
			while (i-- > 0)
				close(fds[i]);
			return rc;
		}
		fds[i] = fd;
	}
	return 0;
}

static struct termios saved_tio;
static int tio_saved;

static void tty_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = 0;
	}
}

/* A crash must not leave the user's terminal raw: put it back, then die
 * of the same signal. tcsetattr() is async-signal-safe. */
static void crash_handler(int sig)
{
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	raise(sig); /* SA_RESETHAND: default action now */
}

static void tty_raw(void)
{
	static const int crash_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	tio_saved = 1;
	atexit(tty_restore);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = crash_handler;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
		sigaction(crash_sigs[i], &sa, NULL);
	t = saved_tio;
	cfmakeraw(&t);
	/* keep output processing: our own messages still end lines */
	t.c_oflag |= OPOST;
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

static const char *sig_name(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	case SIGQUIT: return "SIGQUIT";
	default: return "a signal";
	}
}

/* FILE[,ro][,cache=writeback|none][,aio=auto|uring|thread]: options are taken off the end, so a
 * file name may hold commas as long as its last part is no option. */
static int parse_disk(char *arg, struct vm_cfg *cfg)
{
	char *comma;
	cfg->disk_readonly = cfg->disk_direct = 0;
	cfg->disk_aio = DEV_AIO_AUTO;
	while ((comma = strrchr(arg, ','))) {
		const char *o = comma + 1;
		if (!strcmp(o, "ro"))
			cfg->disk_readonly = 1;
		else if (!strcmp(o, "cache=none"))
			cfg->disk_direct = 1;
		else if (!strcmp(o, "cache=writeback"))
			cfg->disk_direct = 0;
		else if (!strncmp(o, "cache=", 6))
			return value_error("--disk: %s: want cache=writeback or cache=none", o);
		else if (!strcmp(o, "aio=auto"))
			cfg->disk_aio = DEV_AIO_AUTO;
		else if (!strcmp(o, "aio=uring"))
			cfg->disk_aio = DEV_AIO_URING;
		else if (!strcmp(o, "aio=thread"))
			cfg->disk_aio = DEV_AIO_THREAD;
		else if (!strncmp(o, "aio=", 4))
			return value_error("--disk: %s: want aio=auto, aio=uring or aio=thread", o);
		else
			break;
		*comma = 0;
	}
	if (!*arg)
		return usage_error("%s", "--disk: missing file name");
	cfg->disk_path = arg;
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "console", required_argument, NULL, 'C' },
		{ "tap", required_argument, NULL, 't' },
		{ "disk", required_argument, NULL, 'd' },
		{ "net", required_argument, NULL, 'N' },
		{ "mac", required_argument, NULL, 'M' },
		{ "stats", no_argument, NULL, 'S' },
		{ "queues", required_argument, NULL, 'q' },
		{ "vhost", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'V' },
		{ "forward", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_cfg cfg = {
		.cmdline = DEFAULT_CMDLINE, .mem = DEFAULT_MEM, .cpus = 1,
		.console_fd = STDOUT_FILENO,
	};
	unsigned queues = 1;
	const char *console = "stdio", *tap = NULL, *initrd_arg = NULL, *net = NULL;
	const char *vmname = NULL;
	char *kdef = NULL, *idef = NULL, *disk = NULL, namebuf[32];
	struct kl_forward fwd[MAX_FORWARDS];
	unsigned nfwd = 0;
	struct net_lease lease = { .h = NULL };
	/* one definition of a DHCP request, net/'s: the tap's ingress filter
	 * drops exactly what the VMM's packet socket takes */
	struct sock_filter dhcp_prog[KL_DHCP_BPF_LEN];
	struct sock_fprog dhcp_fprog = { .len = KL_DHCP_BPF_LEN, .filter = dhcp_prog };
	struct err e = { "" };
	struct vm vm;
	int c, rc, mac_set = 0, stats = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'i': initrd_arg = optarg; break;
		case 'c': cfg.cmdline = optarg; break;
		case 'm':
			if (parse_size(optarg, &cfg.mem))
				return value_error("--mem %s: not a size (e.g. 512M, 1G)", optarg);
			break;
		case 'n': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-')
				return value_error("--cpus %s: not a number", optarg);
			cfg.cpus = v > 100000 ? 100000 : (unsigned)v;
			break;
		}
		case 'q': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' || v < 1 ||
			    v > DEV_NET_QUEUES_MAX)
				return value_error("--queues %s: want 1..%d", optarg, DEV_NET_QUEUES_MAX);
			queues = (unsigned)v;
			break;
		}
		case 'C': console = optarg; break;
		case 't': tap = optarg; break;
		case 'N': net = optarg; break;
		case 'M':
			if (parse_mac(optarg, cfg.mac))
				return value_error("--mac %s: want a unicast xx:xx:xx:xx:xx:xx", optarg);
			mac_set = 1;
			break;
		case 'V':
			if (!vm_name_ok(optarg))
				return value_error("--name %s: want 1..%d of [A-Za-z0-9_.-]", optarg, KL_VM_NAME_MAX);
			vmname = optarg;
			break;
		case 'F':
			if (nfwd == MAX_FORWARDS)
				return value_error("--forward: at most %d", MAX_FORWARDS);
			if (parse_forward(optarg, &fwd[nfwd]))
				return value_error("--forward %s: want HOSTPORT:GUESTPORT[/udp|/tcp], ports 1..65535", optarg);
			for (unsigned i = 0; i < nfwd; i++)
				if (fwd[i].proto == fwd[nfwd].proto && fwd[i].port == fwd[nfwd].port)
					return value_error("--forward %s: host port given twice", optarg);
			nfwd++;
			break;
		case 'd': {
			free(disk);
			disk = strdup(optarg);
			if (!disk)
				return VM_RC_SETUP;
			int drc = parse_disk(disk, &cfg);
			if (drc) {
				free(disk);
				return drc;
			}
			break;
		}
		case 'S': stats = 1; break;
		case 'H':
			if (!strcmp(optarg, "auto"))
				cfg.vhost = DEV_VHOST_AUTO;
			else if (!strcmp(optarg, "on"))
				cfg.vhost = DEV_VHOST_ON;
			else if (!strcmp(optarg, "off"))
				cfg.vhost = DEV_VHOST_OFF;
			else
				return value_error("--vhost %s: want auto, on or off", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: {
			/* ':' a value is missing, '?' an unknown option */
			const char *arg = argv[optind - 1];
			const char *near = cli_suggest_opt(arg, opts);
			if (c == ':')
				return usage_error("%s needs a value", arg);
			if (near)
				return usage_error("unknown option '%s'; did you mean '--%s'?", arg, near);
			return usage_error("unknown option '%s'", arg);
		}
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* a Linux guest uses at most one pair per online CPU: more would be
	 * host threads and tap queues that carry nothing */
	if (queues > 1 && queues > cfg.cpus)
		return value_error("--queues %u: more than --cpus %u (one queue pair per vCPU at most)",
				   queues, cfg.cpus);
	if (queues > 1 && !net && !tap)
		return usage_error("--queues %u: needs --net or --tap", queues);
	if (!net && (vmname || nfwd))
		return usage_error("%s needs --net", vmname ? "--name" : "--forward");

	if (!cfg.kernel) {
		char tried[1024] = "";
		char *gdir = guest_dir_find(tried, sizeof(tried));
		if (!gdir) {
			rc = value_error("no default guest (bzImage) in %s: build it with "
					 "scripts/build-guest, or give --kernel", tried);
			goto out_free;
		}
		if (asprintf(&kdef, "%s/bzImage", gdir) < 0)
			kdef = NULL;
		if (!initrd_arg && asprintf(&idef, "%s/initrd.img", gdir) < 0)
			idef = NULL;
		free(gdir);
		cfg.kernel = kdef;
		cfg.initrd = idef;
		if (!kdef || (!initrd_arg && !idef)) {
			rc = value_error("default guest: out of memory");
			goto out_free;
		}
	}
	if (initrd_arg && strcmp(initrd_arg, "none") != 0)
		cfg.initrd = initrd_arg;

	if (!strcmp(console, "none")) {
		cfg.console_fd = -1;
	} else if (!strncmp(console, "file:", 5) && console[5]) {
		cfg.console_fd = open(console + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (cfg.console_fd < 0) {
			fprintf(stderr, "kvmlab-vm: --console %s: %s\n", console, strerror(errno));
			rc = VM_RC_SETUP;
			goto out_free;
		}
	} else if (strcmp(console, "stdio") != 0) {
		rc = value_error("--console %s: want stdio, file:PATH or none", console);
		goto out_free;
	}
	if (net) {
		if (!vmname) {
			/* unique among live processes, stable for this run */
			snprintf(namebuf, sizeof(namebuf), "vm-%ld", (long)getpid());
			vmname = namebuf;
		}
		if (lease_take(&lease, net, vmname, fwd, nfwd, &e)) {
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_console;
		}
		if (!mac_set)
			memcpy(cfg.mac, lease.info.mac, 6);
		/* DHCP answers the NIC's MAC: with --mac that is not the lease's */
		memcpy(lease.dhcp.mac, cfg.mac, 6);
		cfg.dhcp = &lease.dhcp;
		kl_dhcp_bpf(dhcp_prog, DHCP_TAP_FRAME_MAX, 0);
		cfg.dhcp_bpf = &dhcp_fprog;
		uint32_t a = lease.info.addr;
		fprintf(stderr, "kvmlab-vm: VM %s on %s: %02x:%02x:%02x:%02x:%02x:%02x, "
			"DHCP offers %u.%u.%u.%u/%u\n", vmname, net,
			cfg.mac[0], cfg.mac[1], cfg.mac[2], cfg.mac[3], cfg.mac[4], cfg.mac[5],
			a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, lease.info.prefix);
	} else if (!mac_set) {
		random_mac(cfg.mac);
	}
	if (net || tap) {
		rc = net ? open_net_tap(net, tap, queues, cfg.tap_fds, &e)
			 : open_tap(tap, queues, cfg.tap_fds, &e);
		if (rc) {
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_lease;
		}
		cfg.tap_queues = queues;
	}

	/* Signals arrive through a signalfd in the main loop; every thread
	 * inherits this mask, and vCPU threads unblock only their kick. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGQUIT);
	int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	sigaddset(&ss, CPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sfd < 0) {
		fprintf(stderr, "kvmlab-vm: signalfd: %s\n", strerror(errno));
		rc = VM_RC_SETUP;
		goto out_tap;
	}

	rc = vm_build(&vm, &cfg, &e);
	if (rc) {
		fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
		rc = VM_RC_SETUP;
		goto out_sfd;
	}
	int stdio = !strcmp(console, "stdio");
	if (stdio)
		tty_raw();
	rc = vm_start(&vm, &e);
	if (rc) {
		vm_destroy(&vm);
		tty_restore();
		fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
		rc = VM_RC_SETUP;
		goto out_sfd;
	}
	int sig = 0;
	struct runloop_cfg lc = {
		.sig_fd = sfd, .in_fd = stdio ? STDIN_FILENO : -1,
		.exit = &vm.exit, .serial = vm.serial, .out = vm.console,
	};
	enum exit_event ev = runloop_run(&lc, &sig);
	if (sig == SIGQUIT)
		vm_stop_dump(&vm);
	if (stats) {
		/* after the vCPUs stop, before their fds close */
		vm_stop(&vm);
		int fds[LAYOUT_MAX_CPUS];
		for (unsigned i = 0; i < vm.nr_vcpus; i++)
			fds[i] = vm.vcpus[i].fd;
		tty_restore();
		(void)kvm_stats_print(stderr, &vm.kvm, fds, vm.nr_vcpus);
		devices_stats_print(stderr);
	}
	vm_destroy(&vm);
	tty_restore();
	switch (ev) {
	case EXIT_EV_POWEROFF:
	case EXIT_EV_REBOOT:
		rc = VM_RC_OK;
		break;
	case EXIT_EV_QUIT:
		fprintf(stderr, "\nkvmlab-vm: quit (Ctrl-A x)\n");
		rc = VM_RC_OK;
		break;
	case EXIT_EV_PANIC:
		fprintf(stderr, "kvmlab-vm: guest panicked\n");
		rc = VM_RC_PANIC;
		break;
	case EXIT_EV_FATAL:
		rc = VM_RC_FATAL;
		break;
	default:
		fprintf(stderr, "kvmlab-vm: stopped by %s\n", sig_name(sig));
		rc = 128 + sig;
		break;
	}
out_sfd:
	close(sfd);
out_tap:
	for (unsigned i = 0; i < cfg.tap_queues; i++)
		close(cfg.tap_fds[i]);
out_lease:
	lease_give_back(&lease);
out_console:
	if (cfg.console_fd > STDERR_FILENO)
		close(cfg.console_fd);
out_free:
	free(kdef);
	free(idef);
	free(disk);
	return rc;
}

static int cmd_check(int argc, char **argv)
{
	char tried[1024] = "";
	char *gdir;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_check, stdout);
		return 0;
	}
	if (argc > 1)
		return usage_error_in("check", "unexpected argument '%s'", argv[1]);
	gdir = guest_dir_find(tried, sizeof(tried));
	if (gdir)
		printf("guest: default guest: %s\n", gdir);
	else
		printf("guest: no default guest in %s: scripts/build-guest makes "
		       "one, or give run --kernel\n", tried);
	free(gdir);
	fflush(stdout);
	return check_host(stdout);
}

int main(int argc, char **argv)
{
	static const char *const commands[] = { "run", "check", "help" };
	static const struct option top[] = {
		{ "help", no_argument, NULL, 0 }, { "version", no_argument, NULL, 0 },
		{ NULL, 0, NULL, 0 },
	};
	static char help_opt[] = "--help";
	char *help_argv[3] = { NULL, help_opt, NULL };

	if (argc < 2)
		return usage_error_in(NULL, "missing command (run or check)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("kvmlab-vm " KL_VERSION "\n");
		return 0;
	}
	if (!strcmp(cmd, "help") && argc > 2) {
		/* help COMMAND: that command's --help */
		cmd = help_argv[0] = argv[2];
		argc = 3;
		argv = help_argv - 1;
	}
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	const char *near = *cmd == '-' ? cli_suggest_opt(cmd, top)
		: cli_closest(cmd, strlen(cmd), commands, 3);
	fprintf(stderr, "kvmlab-vm: unknown %s '%s'%s%s%s%s (try 'kvmlab-vm --help')\n",
		*cmd == '-' ? "option" : "command", cmd, near ? "; did you mean '" : "",
		near && *cmd == '-' ? "--" : "", near ? near : "", near ? "'?" : "");
	return VM_RC_USAGE;
}
