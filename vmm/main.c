/* kvmlab-vm: argv into a config, build, run, exit code. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"
#include "net.h"
#include "cpu.h"
#include "runloop.h"
#include "vm.h"

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k"
#define DEFAULT_MEM (256ULL << 20)

static const char usage_text[] =
	"usage: kvmlab-vm run [--kernel BZIMAGE] [--initrd FILE|none] [--cmdline STR]\n"
	"                     [--mem SIZE] [--cpus N] [--console stdio|file:PATH|none]\n"
	"                     [--net NAME] [--tap IFNAME] [--mac MAC] [--disk FILE[,ro]]\n"
	"       kvmlab-vm check\n"
	"\n"
	"run: boot a Linux bzImage under KVM with a 16550 console on COM1.\n"
	"  --kernel   default: <dir of this program>/guest/bzImage\n"
	"  --initrd   default: <dir>/guest/initrd.img when --kernel is not given\n"
	"  --cmdline  default: \"" DEFAULT_CMDLINE "\"\n"
	"  --mem      bytes with K/M/G suffix, plain numbers are MiB; default 256M\n"
	"  --cpus     1..255, default 1\n"
	"  --console  stdio (default; stdin goes raw on a tty), file:PATH, none\n"
	"  --net      make a tap of our own on kvmlab network NAME (kvmlab-net up)\n"
	"             for virtio-net; it is removed when kvmlab-vm exits\n"
	"  --tap      an existing tap for virtio-net; with --net, the new tap's name\n"
	"  --mac      virtio-net MAC, default 52:54:00 plus 3 random bytes\n"
	"  --disk     a raw image for virtio-blk, \",ro\" for read-only\n"
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
	"exit status of check: 0 ready, 1 cannot run, 3 PVM host (stock kernels will not boot)\n";

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("kvmlab-vm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kvmlab-vm --help'.\n", stderr);
	return VM_RC_USAGE;
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

/* --net: the single-command path. The only place the VMM calls net/: a
 * non-persistent tap on the network's bridge, which the kernel deletes
 * when our fd closes, so no exit path (not even SIGKILL) leaves it. */
static int open_net_tap(const char *net, const char *name, struct err *e)
{
	struct kl_net *h;
	char got[KL_NAME_MAX + 1] = "";
	int fd = -1, rc;

	rc = kl_net_open(&h);
	if (rc)
		return errf(e, -rc, "--net %s: %s%s", net, strerror(-rc),
			    rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	rc = kl_tap_open(h, net, name, got, &fd);
	if (rc) {
		rc = errf(e, -rc, "--net %s: %s", net, kl_net_errmsg(h));
		kl_net_close(h);
		return rc;
	}
	kl_net_close(h);
	/* the device's epoll loop drains the tap until EAGAIN */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = errf(e, errno, "--net %s: tap %s: %s", net, got, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* An existing tap, opened for virtio-net. TUNSETIFF on a name that does
 * not exist would create a new device; refuse that. */
static int open_tap(const char *name, struct err *e)
{
	struct ifreq ifr;

	if (strlen(name) >= IFNAMSIZ)
		return errf(e, EINVAL, "--tap %s: name too long", name);
	if (!if_nametoindex(name))
		return errf(e, ENODEV, "--tap %s: no such interface", name);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errf(e, errno, "--tap %s: /dev/net/tun: %s", name, strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int rc = errf(e, errno, "--tap %s: TUNSETIFF: %s", name, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_cfg cfg = {
		.cmdline = DEFAULT_CMDLINE, .mem = DEFAULT_MEM, .cpus = 1,
		.console_fd = STDOUT_FILENO, .tap_fd = -1,
	};
	const char *console = "stdio", *tap = NULL, *initrd_arg = NULL, *net = NULL;
	char *kdef = NULL, *idef = NULL, *disk = NULL;
	struct err e = { "" };
	struct vm vm;
	int c, rc, mac_set = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'i': initrd_arg = optarg; break;
		case 'c': cfg.cmdline = optarg; break;
		case 'm':
			if (parse_size(optarg, &cfg.mem))
				return usage_error("--mem %s: not a size (e.g. 512M, 1G)", optarg);
			break;
		case 'n': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-')
				return usage_error("--cpus %s: not a number", optarg);
			cfg.cpus = v > 100000 ? 100000 : (unsigned)v;
			break;
		}
		case 'C': console = optarg; break;
		case 't': tap = optarg; break;
		case 'N': net = optarg; break;
		case 'M':
			if (parse_mac(optarg, cfg.mac))
				return usage_error("--mac %s: want a unicast xx:xx:xx:xx:xx:xx", optarg);
			mac_set = 1;
			break;
		case 'd': {
			free(disk);
			disk = strdup(optarg);
			if (!disk)
				return VM_RC_SETUP;
			size_t l = strlen(disk);
			if (l > 3 && !strcmp(disk + l - 3, ",ro")) {
				disk[l - 3] = 0;
				cfg.disk_readonly = 1;
			}
			cfg.disk_path = disk;
			break;
		}
		case 'h': fputs(usage_text, stdout); return 0;
		default:
			return usage_error("run: unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("run: unexpected argument '%s'", argv[optind]);

	if (!cfg.kernel) {
		cfg.kernel = kdef = exe_relative("guest/bzImage");
		if (!initrd_arg)
			cfg.initrd = idef = exe_relative("guest/initrd.img");
		if (!cfg.kernel || (!initrd_arg && !cfg.initrd)) {
			fprintf(stderr, "kvmlab-vm: cannot find this program's directory\n");
			rc = VM_RC_SETUP;
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
		rc = usage_error("--console %s: want stdio, file:PATH or none", console);
		goto out_free;
	}
	if (!mac_set)
		random_mac(cfg.mac);
	if (net || tap) {
		cfg.tap_fd = net ? open_net_tap(net, tap, &e) : open_tap(tap, &e);
		if (cfg.tap_fd < 0) {
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_console;
		}
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
	if (cfg.tap_fd >= 0)
		close(cfg.tap_fd);
out_console:
	if (cfg.console_fd > STDERR_FILENO)
		close(cfg.console_fd);
out_free:
	free(kdef);
	free(idef);
	free(disk);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("%s", "missing command (run or check)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "check")) {
		if (argc > 2)
			return usage_error("check: unexpected argument '%s'", argv[2]);
		return check_host(stdout);
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	return usage_error("unknown command '%s' (want run or check)", cmd);
}
