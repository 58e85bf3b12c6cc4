/* kvmlab-vm: argv into a config, build, run, exit code. */
#include <arpa/inet.h>
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

#include "boot.h"
#include "check.h"
#include "cli.h"
#include "cmd_ctl.h"
#include "cmd_dhcp.h"
#include "ctl.h"
#include "layout.h"
#include "devices.h"
#include "dhcp.h"
#include "dhcp_tap.h"
#include "ra.h"
#include "fwd6.h"
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
	"      [--cpus N] [--console stdio|file:PATH|pty|none] [--net NAME] [--tap IFNAME]\n"
	"      [--queues N] [--mac MAC] [--vhost auto|on|off]\n"
	"      [--nic net=NAME|tap=IFNAME[,mac=MAC][,queues=N]]...\n"
	"      [--disk FILE[,ro][,cache=writeback|none][,aio=auto|uring|thread]]...\n"
	"      [--name VM] [--forward HOSTPORT:GUESTPORT[/udp]]... [--vsock CID] [--rng]\n"
	"      [--virtio-transport pci|mmio] [--on-reboot exit|restart] [--stats]\n"
	"  list [NAME] [--json]\n"
	"  stop NAME [--timeout SECONDS] [--force]\n"
	"  pause NAME\n"
	"  resume NAME\n"
	"  console NAME\n"
	"  dhcp NET\n"
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
	"                     [--mem SIZE] [--cpus N] [--console stdio|file:PATH|pty|none]\n"
	"                     [--net NAME] [--tap IFNAME] [--queues N] [--mac MAC]\n"
	"                     [--vhost auto|on|off] [--nic net=NAME|tap=IFNAME[,mac=MAC][,queues=N]]...\n"
	"                     [--disk FILE[,ro][,cache=writeback|none][,aio=auto|uring|thread]]...\n"
	"                     [--name VM] [--forward HOSTPORT:GUESTPORT[/udp]]... [--vsock CID]\n"
	"                     [--rng] [--virtio-transport pci|mmio]\n"
	"                     [--on-reboot exit|restart] [--stats]\n"
	"\n"
	"run: boot Linux under KVM with a 16550 console on COM1.\n"
	"  --kernel   a bzImage, or an uncompressed ELF vmlinux; default: the\n"
	"             default guest's bzImage, from <dir of this\n"
	"             program>/guest, <dir>/../lib/kvmlab/guest or " KL_GUEST_DIR "\n"
	"  --initrd   default: that guest's initrd.img when --kernel is not given\n"
	"  --cmdline  default: \"" DEFAULT_CMDLINE "\"\n"
	"  --mem      bytes with K/M/G suffix, plain numbers are MiB; default 256M\n"
	"  --cpus     1..255, default 1\n"
	"  --console  stdio (default; stdin goes raw on a tty), file:PATH, none, or\n"
	"             pty: a new pseudo-terminal, its path said on stderr (for\n"
	"             screen, minicom; Ctrl-A x there quits too)\n"
	"  --net      make a tap of our own on kvmlab network NAME (kvmlab-net up)\n"
	"             for virtio-net; it is removed when kvmlab-vm exits. The VM\n"
	"             takes its lease (stable MAC and address) on NAME first and\n"
	"             answers its guest's DHCP itself; the lease goes at exit\n"
	"  --name     the VM's name: for list and stop (unique in this network\n"
	"             namespace), and on NAME and each --nic net= network (its\n"
	"             leases, DHCP host name); default vm-<pid>; [A-Za-z0-9_.-],\n"
	"             1..63 bytes\n"
	"  --forward  host port to guest port (TCP; /udp for UDP) for the VM's\n"
	"             lifetime; repeatable; to the first NIC on a kvmlab network\n"
	"             (on an IPv6 network over IPv6 too, to the address the guest\n"
	"             claims)\n"
	"  --tap      an existing tap for virtio-net; with --net, the new tap's name\n"
	"  --queues   virtio-net queue pairs, 1..8 and at most --cpus, default 1;\n"
	"             one tap queue each (a tap made by kvmlab-net tap add --queues N)\n"
	"  --vhost    virtio-net data path in the kernel (vhost-net) once the driver\n"
	"             runs: auto (default) when /dev/vhost-net opens, on (required), off\n"
	"  --mac      virtio-net MAC, default: the lease's with --net, else\n"
	"             52:54:00 plus 3 random bytes\n"
	"  --nic      one more virtio-net device (eth1, eth2, ...; up to 4 NICs in\n"
	"             all): net=NAME as --net (its own tap and lease on NAME, the\n"
	"             same VM name; tap=IFNAME names that tap), or tap=IFNAME alone\n"
	"             as --tap; mac= and queues= as --mac and --queues; repeatable\n"
	"  --disk     a raw image for virtio-blk (repeatable, up to 8: vda, vdb,\n"
	"             ... in order), \",ro\" for read-only; cache=none\n"
	"             opens it O_DIRECT, writeback (default) uses the page cache;\n"
	"             aio=uring does the I/O through io_uring, aio=thread on the\n"
	"             disk's own thread; aio=auto (default): the thread with\n"
	"             writeback, io_uring with cache=none where the kernel\n"
	"             allows it (else the thread; one line says so)\n"
	"  --vsock    a virtio-vsock device with this guest CID (3..4294967294):\n"
	"             AF_VSOCK between host and guest, moved by the kernel's\n"
	"             vhost-vsock (/dev/vhost-vsock; modprobe vhost_vsock)\n"
	"  --rng      a virtio-rng device: entropy from the host's getrandom(2)\n"
	"             (the guest's /dev/hwrng; its kernel seeds its pool from it)\n"
	"  --virtio-transport  pci (default; mmio when the command line has\n"
	"             pci=off): virtio devices on the PCI bus;\n"
	"             mmio: on virtio-mmio instead (up to 11 devices), for kernels\n"
	"             without PCI; described in the DSDT (LNRO0005), the MP table\n"
	"             and, for kernels without ACPI, virtio_mmio.device= added to\n"
	"             the command line\n"
	"  --on-reboot  what a guest reboot (or triple fault) does: exit\n"
	"             (default: kvmlab-vm exits 0) or restart: boot the guest again\n"
	"             on the same taps, leases, disks and console, as a PC resets\n"
	"  --stats    at exit, print the exit counts by reason from KVM's own\n"
	"             statistics (binary stats fd, Linux 5.14+; else debugfs)\n"
	"  Console keys: Ctrl-A x quits, Ctrl-A p presses the guest's ACPI power\n"
	"  button, Ctrl-A s prints the devices' virtqueue state on stderr (as\n"
	"  SIGUSR2 does), Ctrl-A Ctrl-A sends Ctrl-A. SIGPWR presses the power button\n"
	"  too (a guest that handles it shuts down cleanly: systemd does);\n"
	"  SIGTERM and SIGINT stop the VM at once; SIGQUIT too, after printing\n"
	"  each vCPU's registers and each device's virtqueue state on stderr.\n"
	"  A guest panic is seen through pvpanic, or the console's\n"
	"  \"Kernel panic - not syncing\" line for guests without that driver.\n"
	"  A guest that halts for good (every vCPU halted with interrupts off:\n"
	"  `halt`, or power-off on a kernel without ACPI) ends the VM with 0.\n"
	"exit status of run:\n"
	"  0  guest powered off, rebooted (without --on-reboot restart) or halted\n"
	"     for good, or Ctrl-A x\n"
	"  1  host-side setup error (one line names the object and reason)\n"
	"  2  usage error\n"
	"  3  guest panicked\n"
	"  4  fatal KVM exit (registers dumped on stderr)\n"
	"  128+N  stopped by signal N (SIGINT, SIGTERM, SIGHUP, SIGQUIT)\n"
	"  --help     this text\n";

#define usage_error_in cli_usage_error
#define usage_error(...) cli_usage_error("run", __VA_ARGS__)
#define value_error cli_value_error

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
	struct ra_cfg ra;            /* info.has6: the guest's IPv6 by SLAAC */
};


static void lease_give_back(struct net_lease *L)
{
	if (!L->h)
		return;
	int rc = kl_lease_release(L->h, L->net, L->name);
	if (rc)
		fprintf(stderr, "kvmlab-vm: --net %s: releasing the lease of %s: %s\n",
			L->net, L->name, front_net_why(L->h, rc));
	kl_net_close(L->h);
	L->h = NULL;
}

/* Take the lease of name on net and add its forwards; all or nothing. */
static int lease_take(struct net_lease *L, const char *what, const char *net, const char *name,
		      const struct kl_forward *fw, unsigned nfw, struct err *e)
{
	int rc;

	memset(L, 0, sizeof(*L));
	L->net = net;
	L->name = name;
	rc = kl_net_open(&L->h);
	if (rc) {
		L->h = NULL;
		return errf(e, -rc, "%s %s: %s%s", what, net, strerror(-rc),
			    rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	}
	rc = kl_lease_take(L->h, net, name, getpid(), &L->info);
	if (rc) {
		rc = errf(e, -rc, "%s %s: lease for %s: %s%s", what, net, name,
			  front_net_why(L->h, rc), rc == -EEXIST ? " (a running VM has this name)" : "");
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
				  f.proto == IPPROTO_UDP ? "/udp" : "", front_net_why(L->h, rc));
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
	if (L->info.has6) {
		memcpy(L->ra.router_mac, L->info.router_mac, 6);
		memcpy(L->ra.prefix, L->info.addr6, 16);
		L->ra.prefix_len = L->info.prefix6;
		L->ra.mtu = L->info.mtu;
		L->ra.ndns6 = L->info.ndns6 < RA_DNS_MAX ? L->info.ndns6 : RA_DNS_MAX;
		memcpy(L->ra.dns6, L->info.dns6, 16 * L->ra.ndns6);
	}
	return 0;
}

/* --net: the single-command path. The only place the VMM calls net/: a
 * non-persistent tap on the network's bridge, which the kernel deletes
 * when our fd closes, so no exit path (not even SIGKILL) leaves it. */
static int open_net_tap(const char *what, const char *net, const char *name, unsigned queues,
			int *fds, struct err *e)
{
	struct kl_net *h;
	char got[KL_NAME_MAX + 1] = "";
	int rc;

	rc = kl_net_open(&h);
	if (rc)
		return errf(e, -rc, "%s %s: %s%s", what, net, strerror(-rc),
			    rc == -EPERM ? " (CAP_NET_ADMIN is needed)" : "");
	rc = kl_tap_open_mq(h, net, name, queues, got, fds);
	if (rc) {
		rc = errf(e, -rc, "%s %s: %s", what, net, kl_net_errmsg(h));
		kl_net_close(h);
		return rc;
	}
	/* we answer the guest's DHCP (from a packet socket when vhost-net
	 * moves its frames): its requests have no business on the bridge.
	 * Not fatal: without it they also reach the bridge, nothing worse */
	rc = kl_tap_dhcp_local(h, got);
	if (rc)
		fprintf(stderr, "kvmlab-vm: %s %s: warning: %s; the guest's DHCP "
			"requests may also reach the bridge\n", what, net, front_net_why(h, rc));
	kl_net_close(h);
	/* the device's epoll loops drain each tap queue until EAGAIN */
	for (unsigned i = 0; i < queues; i++) {
		int fl = fcntl(fds[i], F_GETFL);
		if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0) {
			rc = errf(e, errno, "%s %s: tap %s: %s", what, net, got, strerror(errno));
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
static int open_tap(const char *what, const char *name, unsigned queues, int *fds,
		    struct err *e)
{
	if (strlen(name) >= IFNAMSIZ)
		return errf(e, EINVAL, "%s %s: name too long", what, name);
	if (!if_nametoindex(name))
		return errf(e, ENODEV, "%s %s: no such interface", what, name);
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
				rc = errf(e, EINVAL, "%s %s: %u queues need a multi-queue tap "
					  "(kvmlab-net tap add --queues N; ip tuntap ... multi_queue)",
					  what, name, queues);
			else
				rc = errf(e, -fd, "%s %s: TUNSETIFF%s: %s", what, name,
					  mq ? " (multi-queue)" : "", strerror(-fd));
			while (i-- > 0)
				close(fds[i]);
			return rc;
		}
		fds[i] = fd;
	}
	return 0;
}

/* --console pty: a new pseudo-terminal whose master is the console (out
 * and in); its path goes to stderr, for screen, minicom or picocom. We
 * keep a slave fd of our own, in raw mode: the master then never sees a
 * hangup when a user's terminal program leaves (and input goes on being
 * read), and nothing the guest prints is echoed back as input. */
static int open_pty(int *master, int *slave)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	const char *name = NULL;
	struct termios t;
	int s = -1;

	if (m < 0 || grantpt(m) || unlockpt(m) || !(name = ptsname(m)))
		goto err;
	s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0 || tcgetattr(s, &t))
		goto err;
	cfmakeraw(&t);
	if (tcsetattr(s, TCSANOW, &t))
		goto err;
	fprintf(stderr, "kvmlab-vm: console on %s\n", name);
	*master = m;
	*slave = s;
	return 0;
err:
	fprintf(stderr, "kvmlab-vm: --console pty: %s%s%s\n", name ? name : "", name ? ": " : "",
		strerror(errno));
	if (s >= 0)
		close(s);
	if (m >= 0)
		close(m);
	return -1;
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
static int parse_disk(char *arg, struct dev_disk *d)
{
	char *comma;
	d->readonly = d->direct = 0;
	d->aio = DEV_AIO_AUTO;
	while ((comma = strrchr(arg, ','))) {
		const char *o = comma + 1;
		if (!strcmp(o, "ro"))
			d->readonly = 1;
		else if (!strcmp(o, "cache=none"))
			d->direct = 1;
		else if (!strcmp(o, "cache=writeback"))
			d->direct = 0;
		else if (!strncmp(o, "cache=", 6))
			return value_error("--disk: %s: want cache=writeback or cache=none", o);
		else if (!strcmp(o, "aio=auto"))
			d->aio = DEV_AIO_AUTO;
		else if (!strcmp(o, "aio=uring"))
			d->aio = DEV_AIO_URING;
		else if (!strcmp(o, "aio=thread"))
			d->aio = DEV_AIO_THREAD;
		else if (!strncmp(o, "aio=", 4))
			return value_error("--disk: %s: want aio=auto, aio=uring or aio=thread", o);
		else
			break;
		*comma = 0;
	}
	if (!*arg)
		return usage_error("%s", "--disk: missing file name");
	d->path = arg;
	return 0;
}

/* What one NIC of the command line asks for: the first from --net,
 * --tap, --mac and --queues, each more from a --nic. */
struct nic_arg {
	const char *net, *tap;
	uint8_t mac[6];
	int mac_set;
	unsigned queues;
	char *spec; /* --nic: its own copy, which net and tap point into */
};

/* 1..DEV_NET_QUEUES_MAX: 0, or -1 (the caller says what was wrong) */
static int parse_queues(const char *v, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || n < 1 || n > DEV_NET_QUEUES_MAX)
		return -1;
	*out = (unsigned)n;
	return 0;
}

/* --nic net=NAME|tap=IFNAME[,mac=MAC][,queues=N], in any order */
static int parse_nic(const char *arg, struct nic_arg *a)
{
	memset(a, 0, sizeof(*a));
	a->queues = 1;
	a->spec = strdup(arg);
	if (!a->spec)
		return value_error("--nic: out of memory");
	for (char *save = NULL, *o = strtok_r(a->spec, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		int rc = 0;
		if (!strncmp(o, "net=", 4) && o[4] && !a->net)
			a->net = o + 4;
		else if (!strncmp(o, "tap=", 4) && o[4] && !a->tap)
			a->tap = o + 4;
		else if (!strncmp(o, "mac=", 4) && !a->mac_set) {
			if (parse_mac(o + 4, a->mac))
				rc = value_error("--nic %s: mac=%s: want a unicast xx:xx:xx:xx:xx:xx",
						 arg, o + 4);
			a->mac_set = 1;
		} else if (!strncmp(o, "queues=", 7)) {
			if (parse_queues(o + 7, &a->queues))
				rc = value_error("--nic %s: %s: want 1..%d", arg, o, DEV_NET_QUEUES_MAX);
		} else {
			rc = value_error("--nic %s: '%s': want net=NAME or tap=IFNAME, then "
					 "mac=MAC or queues=N, each once", arg, o);
		}
		if (rc) {
			free(a->spec);
			a->spec = NULL;
			return rc;
		}
	}
	if (!a->net && !a->tap) {
		free(a->spec);
		a->spec = NULL;
		return value_error("--nic %s: want net=NAME or tap=IFNAME", arg);
	}
	return 0;
}

/* a bad command line: what it allocated so far goes too */
/* What `kvmlab-vm list` and stop see of this VM (ctl.h): the run's
 * configuration, read by the main thread's loop while the guest runs. */
struct run_view {
	const char *name, *console;
	struct vm *vm;
	const struct vm_cfg *cfg;
	const struct nic_arg *nics;
	const struct net_lease *leases;
	const struct kl_forward *fwd;
	unsigned nfwd, fwd_nic;
	const struct fwd6 *f6;  /* where the forwards go over IPv6 */
	int pty_slave;
	struct timespec t0;
	pid_t quit_by;  /* the client that sent "quit"; 0: none */
	unsigned boots; /* started so far (--on-reboot restart: more than 1) */
};

static json_t *status_nic(const struct run_view *v, unsigned i)
{
	const struct dev_nic *d = &v->cfg->dev.nics[i];
	char mac[CLI_MAC_LEN], tap[IFNAMSIZ] = "", ad[CLI_IP4_LEN + 4];
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	/* the tap's name from the kernel: --net made it, --tap named it */
	if (!ioctl(d->tap_fds[0], TUNGETIFF, &ifr))
		snprintf(tap, sizeof(tap), "%s", ifr.ifr_name);
	cli_mac(mac, d->mac);
	json_t *o = json_pack("{s:s, s:s, s:I}", "tap", tap, "mac", mac, "queues",
			      (json_int_t)d->queues);
	if (o && v->nics[i].net) {
		const struct kl_lease_info *L = &v->leases[i].info;
		cli_ip4(ad, L->addr);
		snprintf(ad + strlen(ad), sizeof(ad) - strlen(ad), "/%u", L->prefix);
		json_object_set_new(o, "net", json_string(v->nics[i].net));
		json_object_set_new(o, "addr", json_string(ad));
		if (L->has6) {
			/* the guest picks its own (SLAAC): what it claimed */
			uint8_t a6[DEV_ADDR6_MAX][16];
			unsigned n = devices_nic_addr6(i, a6, DEV_ADDR6_MAX);
			json_t *arr = json_array();
			for (unsigned k = 0; k < n; k++) {
				char s6[INET6_ADDRSTRLEN + 4];
				if (!inet_ntop(AF_INET6, a6[k], s6, INET6_ADDRSTRLEN))
					continue;
				snprintf(s6 + strlen(s6), sizeof(s6) - strlen(s6), "/%u", L->prefix6);
				json_array_append_new(arr, json_string(s6));
			}
			json_object_set_new(o, "addr6", arr);
		}
	}
	if (o && i == v->fwd_nic && v->nfwd) {
		json_t *fw = json_array();
		for (unsigned k = 0; k < v->nfwd; k++)
			json_array_append_new(fw, json_pack("{s:s, s:i, s:i}", "proto",
				v->fwd[k].proto == IPPROTO_UDP ? "udp" : "tcp",
				"host_port", v->fwd[k].port, "guest_port", v->fwd[k].to_port));
		json_object_set_new(o, "forwards", fw);
		/* on an IPv6 network: the guest address the forwards' IPv6
		 * twins go to, null until the guest has claimed one */
		if (v->leases[i].info.has6) {
			char s6[INET6_ADDRSTRLEN];
			bool in = v->f6 && v->f6->have &&
				  inet_ntop(AF_INET6, v->f6->to, s6, sizeof(s6));
			json_object_set_new(o, "forwards6_to", in ? json_string(s6) : json_null());
		}
	}
	return o;
}

static json_t *run_status(void *opaque)
{
	const struct run_view *v = opaque;
	const struct vm_cfg *cfg = v->cfg;
	struct timespec now;
	char console[64 + PATH_MAX];
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* to the ms: a JSON number a reader does not have to round */
	double up = (double)((now.tv_sec - v->t0.tv_sec) * 1000 +
			     (now.tv_nsec - v->t0.tv_nsec) / 1000000) / 1000;
	if (v->pty_slave >= 0 && ptsname(v->cfg->console_fd))
		snprintf(console, sizeof(console), "pty:%s", ptsname(v->cfg->console_fd));
	else
		snprintf(console, sizeof(console), "%s", v->console);
	json_t *o = json_pack("{s:s, s:I, s:s, s:f, s:I, s:I, s:s, s:s, s:s, s:s, s:s}",
		"name", v->name, "pid", (json_int_t)getpid(),
		"state", vm_paused(v->vm) ? "paused" : "running", "uptime_s", up,
		"cpus", (json_int_t)cfg->cpus, "mem_mib", (json_int_t)(cfg->mem >> 20),
		"kernel", cfg->kernel, "initrd", cfg->initrd ? cfg->initrd : "",
		"cmdline", cfg->cmdline, "console", console,
		"virtio_transport", cfg->dev.mmio ? "mmio" : "pci");
	if (!o)
		return NULL;
	json_object_set_new(o, "boots", json_integer(v->boots));
	json_t *nics = json_array(), *disks = json_array();
	for (unsigned i = 0; i < cfg->dev.nnics; i++)
		json_array_append_new(nics, status_nic(v, i));
	for (unsigned i = 0; i < cfg->dev.ndisks; i++) {
		const struct dev_disk *d = &cfg->dev.disks[i];
		json_array_append_new(disks, json_pack("{s:s, s:b, s:s}", "path", d->path,
			"readonly", d->readonly, "cache", d->direct ? "none" : "writeback"));
	}
	json_object_set_new(o, "nics", nics);
	json_object_set_new(o, "disks", disks);
	json_object_set_new(o, "rng", json_boolean(cfg->dev.rng));
	if (cfg->dev.vsock_cid)
		json_object_set_new(o, "vsock_cid", json_integer((json_int_t)cfg->dev.vsock_cid));
	return o;
}

/* The main loop's callbacks for one boot: the machine's own, and the
 * IPv6 forwards that follow the guest's address. */
struct run_loop {
	struct vm *vm;
	struct fwd6 *f6;
};

static int loop_power_button(void *opaque)
{
	return vm_power_button(((struct run_loop *)opaque)->vm);
}

static int loop_report(void *opaque)
{
	return vm_report(((struct run_loop *)opaque)->vm);
}

static void loop_tick(void *opaque)
{
	struct run_loop *l = opaque;
	vm_tick(l->vm);
	fwd6_tick(l->f6);
}

static int run_power_button(void *opaque)
{
	const struct run_view *v = opaque;
	return vm_power_button(v->vm);
}

static int run_pause(void *opaque)
{
	const struct run_view *v = opaque;
	return vm_pause(v->vm);
}

static int run_resume(void *opaque)
{
	const struct run_view *v = opaque;
	return vm_resume(v->vm);
}

static void run_quit(void *opaque, pid_t by)
{
	struct run_view *v = opaque;
	v->quit_by = by ? by : -1;
	exit_raise(&v->vm->exit, EXIT_EV_QUIT);
}

static const struct ctl_ops run_ctl_ops = {
	.status = run_status, .power_button = run_power_button, .pause = run_pause,
	.resume = run_resume, .quit = run_quit,
};

/* runloop's watch hooks onto the control socket */
static int ctl_watch_fds(void *c, struct pollfd *p) { return ctl_pollfds(c, p); }
static void ctl_watch_ready(void *c, const struct pollfd *p, int n) { ctl_ready(c, p, n); }

#define FAIL(x) do { rc = (x); goto out_args; } while (0)

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
		{ "on-reboot", required_argument, NULL, 'B' },
		{ "queues", required_argument, NULL, 'q' },
		{ "vhost", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'V' },
		{ "forward", required_argument, NULL, 'F' },
		{ "nic", required_argument, NULL, 'I' },
		{ "rng", no_argument, NULL, 'R' },
		{ "vsock", required_argument, NULL, 'K' },
		{ "virtio-transport", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_cfg cfg = {
		.cmdline = DEFAULT_CMDLINE, .mem = DEFAULT_MEM, .cpus = 1,
		.console_fd = STDOUT_FILENO,
		/* the guest's panic, also where ACPI (and so the pvpanic port)
		 * is missing: pvpanic-pci, last on the bus */
		.dev = { .pvpanic = 1 },
	};
	unsigned queues = 1;
	int transport = -1; /* --virtio-transport: -1 not given, 0 pci, 1 mmio */
	const char *console = "stdio", *tap = NULL, *initrd_arg = NULL, *net = NULL;
	const char *vmname = NULL;
	char *kdef = NULL, *idef = NULL, *disks[DEV_DISKS_MAX], namebuf[32];
	struct kl_forward fwd[MAX_FORWARDS];
	unsigned nfwd = 0, ndisks = 0, nnics = 0, nextra = 0, fwd_nic = DEV_NICS_MAX;
	/* nics[0] is --net/--tap when given; the --nic ones follow in order */
	struct nic_arg nics[DEV_NICS_MAX], extra[DEV_NICS_MAX];
	struct net_lease leases[DEV_NICS_MAX];
	struct fwd6 f6 = { .h = NULL };
	/* one definition of a DHCP request, net/'s: the tap's ingress filter
	 * drops exactly what the VMM's packet socket takes */
	struct sock_filter dhcp_prog[KL_DHCP_BPF_LEN];
	struct sock_fprog dhcp_fprog = { .len = KL_DHCP_BPF_LEN, .filter = dhcp_prog };
	struct err e = { "" };
	struct vm vm;
	struct ctl *ctl = NULL;
	struct run_view view;
	int c, rc = VM_RC_USAGE, mac_set = 0, stats = 0, pty_slave = -1, restart = 0;
	uint8_t mac[6];

	memset(leases, 0, sizeof(leases));

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': cfg.kernel = optarg; break;
		case 'i': initrd_arg = optarg; break;
		case 'c': cfg.cmdline = optarg; break;
		case 'm':
			if (parse_size(optarg, &cfg.mem))
				FAIL(value_error("--mem %s: not a size (e.g. 512M, 1G)", optarg));
			break;
		case 'n': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-')
				FAIL(value_error("--cpus %s: not a number", optarg));
			cfg.cpus = v > 100000 ? 100000 : (unsigned)v;
			break;
		}
		case 'q':
			if (parse_queues(optarg, &queues))
				FAIL(value_error("--queues %s: want 1..%d", optarg, DEV_NET_QUEUES_MAX));
			break;
		case 'C': console = optarg; break;
		case 't': tap = optarg; break;
		case 'N': net = optarg; break;
		case 'M':
			if (parse_mac(optarg, mac)) {
				rc = value_error("--mac %s: want a unicast xx:xx:xx:xx:xx:xx", optarg);
				goto out_args;
			}
			mac_set = 1;
			break;
		case 'V':
			if (!vm_name_ok(optarg))
				FAIL(value_error("--name %s: want 1..%d of [A-Za-z0-9_.-]", optarg, KL_VM_NAME_MAX));
			vmname = optarg;
			break;
		case 'F':
			if (nfwd == MAX_FORWARDS)
				FAIL(value_error("--forward: at most %d", MAX_FORWARDS));
			if (parse_forward(optarg, &fwd[nfwd]))
				FAIL(value_error("--forward %s: want HOSTPORT:GUESTPORT[/udp|/tcp], ports 1..65535", optarg));
			for (unsigned i = 0; i < nfwd; i++)
				if (fwd[i].proto == fwd[nfwd].proto && fwd[i].port == fwd[nfwd].port)
					FAIL(value_error("--forward %s: host port given twice", optarg));
			nfwd++;
			break;
		case 'd':
			if (ndisks == DEV_DISKS_MAX) {
				rc = value_error("--disk %s: at most %d disks", optarg, DEV_DISKS_MAX);
				goto out_args;
			}
			disks[ndisks] = strdup(optarg);
			if (!disks[ndisks]) {
				rc = VM_RC_SETUP;
				goto out_args;
			}
			ndisks++;
			if ((rc = parse_disk(disks[ndisks - 1], &cfg.dev.disks[ndisks - 1])))
				goto out_args;
			break;
		case 'I':
			if (nextra == DEV_NICS_MAX) {
				rc = value_error("--nic %s: at most %d NICs", optarg, DEV_NICS_MAX);
				goto out_args;
			}
			if ((rc = parse_nic(optarg, &extra[nextra])))
				goto out_args;
			nextra++;
			break;
		case 'S': stats = 1; break;
		case 'B':
			if (!strcmp(optarg, "exit"))
				restart = 0;
			else if (!strcmp(optarg, "restart"))
				restart = 1;
			else
				FAIL(value_error("--on-reboot %s: want exit or restart", optarg));
			break;
		case 'R': cfg.dev.rng = 1; break;
		case 'K': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || *optarg == '-' || v < DEV_VSOCK_CID_MIN ||
			    v > DEV_VSOCK_CID_MAX)
				FAIL(value_error("--vsock %s: want a CID, %u..%u (0-2 are the "
						 "hypervisor, local and the host)", optarg,
						 DEV_VSOCK_CID_MIN, DEV_VSOCK_CID_MAX));
			cfg.dev.vsock_cid = v;
			break;
		}
		case 'T':
			if (!strcmp(optarg, "pci"))
				transport = 0;
			else if (!strcmp(optarg, "mmio"))
				transport = 1;
			else
				FAIL(value_error("--virtio-transport %s: want pci or mmio", optarg));
			break;
		case 'H':
			if (!strcmp(optarg, "auto"))
				cfg.dev.vhost = DEV_VHOST_AUTO;
			else if (!strcmp(optarg, "on"))
				cfg.dev.vhost = DEV_VHOST_ON;
			else if (!strcmp(optarg, "off"))
				cfg.dev.vhost = DEV_VHOST_OFF;
			else
				FAIL(value_error("--vhost %s: want auto, on or off", optarg));
			break;
		case 'h':
			fputs(usage_text, stdout);
			FAIL(0);
		default: {
			/* ':' a value is missing, '?' an unknown option */
			const char *arg = argv[optind - 1];
			const char *near = cli_suggest_opt(arg, opts);
			if (c == ':')
				FAIL(usage_error("%s needs a value", arg));
			if (near)
				FAIL(usage_error("unknown option '%s'; did you mean '--%s'?", arg, near));
			FAIL(usage_error("unknown option '%s'", arg));
		}
		}
	}
	if (optind < argc)
		FAIL(usage_error("unexpected argument '%s'", argv[optind]));
	/* a guest told pci=off (Firecracker's usual command line) would
	 * find no device on PCI */
	cfg.dev.mmio = transport >= 0 ? transport : boot_cmdline_has(cfg.cmdline, "pci=off");
	/* a Linux guest uses at most one pair per online CPU: more would be
	 * host threads and tap queues that carry nothing */
	if (queues > 1 && !net && !tap)
		FAIL(usage_error("--queues %u: needs --net or --tap", queues));
	if (mac_set && !net && !tap)
		FAIL(usage_error("--mac: needs --net or --tap (a --nic takes mac=)"));
	if (net || tap)
		nics[nnics++] = (struct nic_arg){ .net = net, .tap = tap, .queues = queues,
						  .mac_set = mac_set };
	if (mac_set)
		memcpy(nics[0].mac, mac, 6);
	if (nnics + nextra > DEV_NICS_MAX)
		FAIL(value_error("--nic: at most %d NICs in all (--net/--tap is one)", DEV_NICS_MAX));
	for (unsigned i = 0; i < nextra; i++)
		nics[nnics++] = extra[i];
	nextra = 0; /* their specs are nics[]'s now */
	for (unsigned i = 0; i < nnics; i++) {
		struct nic_arg *a = &nics[i];
		const char *what = i || !(net || tap) ? "--nic " : a->net ? "--net " : "--tap ";
		const char *obj = a->net ? a->net : a->tap;
		if (a->queues > 1 && a->queues > cfg.cpus && i == 0 && (net || tap))
			FAIL(value_error("--queues %u: more than --cpus %u (one queue pair per vCPU "
					 "at most)", a->queues, cfg.cpus));
		if (a->queues > 1 && a->queues > cfg.cpus)
			FAIL(value_error("%s%s: queues=%u: more than --cpus %u (one queue pair per "
					 "vCPU at most)", what, obj, a->queues, cfg.cpus));
		for (unsigned j = 0; j < i; j++) {
			if (a->net && nics[j].net && !strcmp(a->net, nics[j].net))
				FAIL(value_error("%s%s: the VM already has a NIC on network %s (one "
						 "lease per network)", what, obj, a->net));
			const char *t1 = a->tap, *t2 = nics[j].tap;
			if (t1 && t2 && !strcmp(t1, t2))
				FAIL(value_error("%s%s: tap %s is already a NIC of this VM", what,
						 obj, t1));
			if (a->mac_set && nics[j].mac_set && !memcmp(a->mac, nics[j].mac, 6))
				FAIL(value_error("%s%s: the same MAC as another NIC", what, obj));
		}
		if (a->net && fwd_nic == DEV_NICS_MAX)
			fwd_nic = i; /* --forward and --name go with the first network */
	}
	if (fwd_nic == DEV_NICS_MAX && nfwd)
		FAIL(usage_error("--forward needs --net (or a --nic net=NAME)"));
	/* before any tap or lease is made: vm_build checks it again */
	struct dev_cfg planned = cfg.dev;
	planned.nnics = nnics;
	planned.ndisks = ndisks;
	unsigned nvirtio = devices_mmio_count(&planned);
	if (nvirtio > LAYOUT_VIRTIO_MMIO_MAX)
		FAIL(value_error("--virtio-transport mmio: %u virtio devices, at most %u", nvirtio,
				 LAYOUT_VIRTIO_MMIO_MAX));

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

	if (!vmname) {
		/* unique among live processes, stable for this run */
		snprintf(namebuf, sizeof(namebuf), "vm-%ld", (long)getpid());
		vmname = namebuf;
	}
	/* the name is claimed first: a clash leaves nothing made */
	view = (struct run_view){
		.name = vmname, .console = console, .vm = &vm, .cfg = &cfg, .nics = nics,
		.leases = leases, .fwd = fwd, .nfwd = nfwd, .fwd_nic = fwd_nic,
		.f6 = &f6, .pty_slave = -1,
	};
	if (ctl_open(&ctl, vmname, &run_ctl_ops, &view, &e)) {
		rc = value_error("%s", e.msg);
		goto out_free;
	}

	if (!strcmp(console, "none")) {
		cfg.console_fd = -1;
	} else if (!strncmp(console, "file:", 5) && console[5]) {
		cfg.console_fd = open(console + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (cfg.console_fd < 0) {
			fprintf(stderr, "kvmlab-vm: --console %s: %s\n", console, strerror(errno));
			rc = VM_RC_SETUP;
			goto out_free;
		}
	} else if (!strcmp(console, "pty")) {
		if (open_pty(&cfg.console_fd, &pty_slave)) {
			rc = VM_RC_SETUP;
			goto out_free;
		}
	} else if (strcmp(console, "stdio") != 0) {
		rc = value_error("--console %s: want stdio, file:PATH, pty or none", console);
		goto out_free;
	}
	/* each NIC on a network: its lease (the first network's with the
	 * forwards), then every NIC's tap; all or nothing */
	for (unsigned i = 0; i < nnics; i++) {
		struct nic_arg *a = &nics[i];
		struct dev_nic *d = &cfg.dev.nics[i];
		if (!a->net) {
			if (a->mac_set)
				memcpy(d->mac, a->mac, 6);
			else
				random_mac(d->mac);
			continue;
		}
		struct net_lease *L = &leases[i];
		if (lease_take(L, i || !(net || tap) ? "--nic" : "--net", a->net, vmname, fwd,
			       i == fwd_nic ? nfwd : 0, &e)) {
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_lease;
		}
		memcpy(d->mac, a->mac_set ? a->mac : L->info.mac, 6);
		/* DHCP answers the NIC's MAC: with --mac that is not the lease's */
		memcpy(L->dhcp.mac, d->mac, 6);
		d->dhcp = &L->dhcp;
		if (L->info.has6)
			d->ra = &L->ra;
		kl_dhcp_bpf(dhcp_prog, DHCP_TAP_FRAME_MAX, 0);
		cfg.dev.dhcp_bpf = &dhcp_fprog;
	}
	for (; cfg.dev.nnics < nnics; cfg.dev.nnics++) {
		struct nic_arg *a = &nics[cfg.dev.nnics];
		struct dev_nic *d = &cfg.dev.nics[cfg.dev.nnics];
		const char *what = cfg.dev.nnics || !(net || tap) ? "--nic" : a->net ? "--net" : "--tap";
		rc = a->net ? open_net_tap(what, a->net, a->tap, a->queues, d->tap_fds, &e)
			    : open_tap(what, a->tap, a->queues, d->tap_fds, &e);
		if (rc) {
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_tap;
		}
		d->queues = a->queues;
	}
	/* --forward over IPv6 too, once the guest has claimed an address */
	if (fwd_nic < nnics && nics[fwd_nic].net && leases[fwd_nic].info.has6) {
		int r6 = fwd6_start(&f6, nics[fwd_nic].net, vmname, fwd_nic, fwd, nfwd);
		if (r6)
			fprintf(stderr, "kvmlab-vm: --forward: warning: %s; IPv4 only\n",
				strerror(-r6));
	}
	/* said once everything is made: a failed run prints only its error */
	for (unsigned i = 0; i < nnics; i++) {
		char ms[CLI_MAC_LEN], ad[CLI_IP4_LEN];
		if (!nics[i].net)
			continue;
		cli_mac(ms, cfg.dev.nics[i].mac);
		cli_ip4(ad, leases[i].info.addr);
		fprintf(stderr, "kvmlab-vm: VM %s on %s: %s, DHCP offers %s/%u", vmname,
			nics[i].net, ms, ad, leases[i].info.prefix);
		if (leases[i].info.has6) {
			char p6[INET6_ADDRSTRLEN];
			uint8_t net6[16];
			kl_prefix6(leases[i].info.addr6, leases[i].info.prefix6, net6);
			inet_ntop(AF_INET6, net6, p6, sizeof(p6));
			fprintf(stderr, ", router advertisements %s/%u", p6, leases[i].info.prefix6);
		}
		fputc('\n', stderr);
	}
	cfg.dev.ndisks = ndisks;

	/* Signals arrive through a signalfd in the main loop; every thread
	 * inherits this mask, and vCPU threads unblock only their kick. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGQUIT);
	sigaddset(&ss, SIGPWR);
	sigaddset(&ss, SIGUSR2);
	int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	sigaddset(&ss, CPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sfd < 0) {
		fprintf(stderr, "kvmlab-vm: signalfd: %s\n", strerror(errno));
		rc = VM_RC_SETUP;
		goto out_tap;
	}

	int stdio = !strcmp(console, "stdio"), sig = 0;
	enum exit_event ev;
	clock_gettime(CLOCK_MONOTONIC, &view.t0);
	view.pty_slave = pty_slave;
	/* one boot per turn; a reboot comes back here with --on-reboot
	 * restart: the same taps, leases, name and console, a new machine
	 * (fresh RAM, kernel and initrd read again, devices reset) */
	for (;;) {
		rc = vm_build(&vm, &cfg, &e);
		if (rc) {
			cli_tty_restore();
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_sfd;
		}
		if (stdio)
			cli_tty_raw();
		rc = vm_start(&vm, &e);
		if (rc) {
			vm_destroy(&vm);
			cli_tty_restore();
			fprintf(stderr, "kvmlab-vm: %s\n", e.msg);
			rc = VM_RC_SETUP;
			goto out_sfd;
		}
		view.boots++;
		struct run_loop loop = { &vm, &f6 };
		struct runloop_cfg lc = {
			.sig_fd = sfd,
			.in_fd = stdio ? STDIN_FILENO : pty_slave >= 0 ? cfg.console_fd : -1,
			.exit = &vm.exit, .serial = vm.serial, .out = vm.console,
			.power_button = loop_power_button, .report = loop_report, .tick = loop_tick,
			.opaque = &loop,
			.watch_fds = ctl_watch_fds, .watch_ready = ctl_watch_ready, .wopaque = ctl,
		};
		ev = runloop_run(&lc, &sig);
		if (sig == SIGQUIT)
			vm_stop_dump(&vm);
		if (stats) {
			/* after the vCPUs stop, before their fds close */
			vm_stop(&vm);
			int fds[LAYOUT_MAX_CPUS];
			for (unsigned i = 0; i < vm.nr_vcpus; i++)
				fds[i] = vm.vcpus[i].fd;
			cli_tty_restore();
			(void)kvm_stats_print(stderr, &vm.kvm, fds, vm.nr_vcpus);
			devices_stats_print(stderr);
		}
		vm_destroy(&vm);
		if (ev != EXIT_EV_REBOOT || !restart)
			break;
		fprintf(stderr, "kvmlab-vm: the guest rebooted: boot %u of VM %s\n",
			view.boots + 1, vmname);
	}
	cli_tty_restore();
	switch (ev) {
	case EXIT_EV_POWEROFF:
	case EXIT_EV_REBOOT:
		rc = VM_RC_OK;
		break;
	case EXIT_EV_HALT:
		fprintf(stderr, "kvmlab-vm: the guest halted (every vCPU stopped with "
			"interrupts off)\n");
		rc = VM_RC_OK;
		break;
	case EXIT_EV_QUIT:
		if (view.quit_by)
			fprintf(stderr, "kvmlab-vm: quit (asked on the control socket by pid %ld)\n",
				(long)view.quit_by);
		else
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
	for (unsigned n = 0; n < cfg.dev.nnics; n++)
		for (unsigned i = 0; i < cfg.dev.nics[n].queues; i++)
			close(cfg.dev.nics[n].tap_fds[i]);
out_lease:
	fwd6_stop(&f6);
	for (unsigned n = nnics; n-- > 0;)
		lease_give_back(&leases[n]);
	if (cfg.console_fd > STDERR_FILENO)
		close(cfg.console_fd);
	if (pty_slave >= 0)
		close(pty_slave);
out_free:
	/* last: a client waiting on it takes the close as "the VM is gone" */
	ctl_close(ctl);
	free(kdef);
	free(idef);
out_args:
	for (unsigned i = 0; i < ndisks; i++)
		free(disks[i]);
	for (unsigned i = 0; i < nnics; i++)
		free(nics[i].spec);
	for (unsigned i = 0; i < nextra; i++)
		free(extra[i].spec);
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
	static const char *const commands[] = { "run", "list", "stop", "pause", "resume", "console", "dhcp", "check", "help" };
	static const struct option top[] = {
		{ "help", no_argument, NULL, 0 }, { "version", no_argument, NULL, 0 },
		{ NULL, 0, NULL, 0 },
	};
	static char help_opt[] = "--help";
	char *help_argv[3] = { NULL, help_opt, NULL };

	if (argc < 2)
		return usage_error_in(NULL, "missing command (run, list, stop, pause, resume, console, dhcp or check)");
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
	if (!strcmp(cmd, "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(cmd, "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(cmd, "pause"))
		return cmd_pause(argc - 1, argv + 1);
	if (!strcmp(cmd, "resume"))
		return cmd_resume(argc - 1, argv + 1);
	if (!strcmp(cmd, "console"))
		return cmd_console(argc - 1, argv + 1);
	if (!strcmp(cmd, "dhcp"))
		return cmd_dhcp(argc - 1, argv + 1);
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	const char *near = *cmd == '-' ? cli_suggest_opt(cmd, top)
		: cli_closest(cmd, strlen(cmd), commands, ARRAY_SIZE(commands));
	fprintf(stderr, "kvmlab-vm: unknown %s '%s'%s%s%s%s (try 'kvmlab-vm --help')\n",
		*cmd == '-' ? "option" : "command", cmd, near ? "; did you mean '" : "",
		near && *cmd == '-' ? "--" : "", near ? near : "", near ? "'?" : "");
	return VM_RC_USAGE;
}
