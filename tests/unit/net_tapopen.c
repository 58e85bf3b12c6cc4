/* kl_tap_open, the VMM's way onto a network, in a private network and
 * mount namespace of this process (gone when it exits). Checked through
 * sysfs mounted for that namespace. Needs root; skips without it. */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include "t.h"
#include "priv.h"

static int sys_read(const char *dev, const char *file, char *buf, size_t len)
{
	char path[128];
	int fd, n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", dev, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = (int)read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static long sys_num(const char *dev, const char *file)
{
	char buf[64];

	if (sys_read(dev, file, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 0);
}

static int master_of(const char *dev, char *out, size_t len)
{
	char path[128], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/master", dev);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = 0;
	snprintf(out, len, "%s", strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
	return 0;
}

static bool dev_exists(const char *dev)
{
	char path[128];
	struct stat sb;

	snprintf(path, sizeof(path), "/sys/class/net/%s", dev);
	return stat(path, &sb) == 0;
}

int main(void)
{
	char name[16], m[256];
	struct kl_net_cfg cfg = {.name = "lab", .addr = 0x0a4d0001, .prefix = 24,
				 .mtu = 1400};
	struct kl_net *h;
	int fd = -1, fd2 = -1, err;

	if (geteuid() != 0) {
		puts("ok - net_tapopen # SKIP needs root");
		return 0;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    umount2("/sys", MNT_DETACH) < 0 ||
	    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0) {
		puts("ok - net_tapopen # SKIP cannot make a private namespace");
		return 0;
	}
	CHECK(kl_net_open(&h) == 0, "handle opened");
	err = kl_net_up(h, &cfg, 0);
	CHECK(err == 0, "network up: %s", err ? kl_net_errmsg(h) : "ok");
	CHECK(sys_num("kl-lab", "mtu") == 1400, "bridge mtu 1400");

	err = kl_tap_open(h, "lab", NULL, name, &fd);
	CHECK(err == 0 && fd >= 0, "tap opened: %s", err ? kl_net_errmsg(h) : name);
	if (!err) {
		long fl = sys_num(name, "tun_flags");
		int hdr = 0;
		CHECK(fl >= 0 && (fl & IFF_TAP) && (fl & IFF_NO_PI) &&
			      (fl & IFF_VNET_HDR) && !(fl & IFF_PERSIST),
		      "tap %s: tun_flags 0x%lx: tap, no PI, vnet hdr, not persistent",
		      name, fl);
		CHECK(master_of(name, m, sizeof(m)) == 0 && !strcmp(m, "kl-lab"),
		      "tap enslaved to kl-lab");
		CHECK(sys_num(name, "flags") & IFF_UP, "tap is up");
		CHECK_EQ(sys_num(name, "mtu"), 1400, "tap takes the bridge mtu");
		CHECK(ioctl(fd, TUNGETVNETHDRSZ, &hdr) == 0 && hdr == 12,
		      "vnet header size 12");
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd is close-on-exec");
	}
	err = kl_tap_open(h, "lab", "vm0", name, &fd2);
	CHECK(err == 0 && !strcmp(name, "vm0"), "named tap vm0 opened");
	err = kl_tap_open(h, "lab", "vm0", name, &fd);
	CHECK(err == -EEXIST && strstr(kl_net_errmsg(h), "vm0"),
	      "vm0 again: %s", kl_net_errmsg(h));
	err = kl_tap_open(h, "nosuch", NULL, name, &fd);
	CHECK(err == -ENOENT, "unknown network: %s", kl_net_errmsg(h));
	if (fd2 >= 0)
		close(fd2);
	CHECK(!dev_exists("vm0"), "closing the fd removes the tap");

	err = kl_tap_open(h, "lab", "vm1", name, &fd2);
	CHECK(err == 0, "tap vm1 opened");
	CHECK(sys_read("vm1", "ifalias", m, sizeof(m)) == 0 &&
		      !strncmp(m, "kvmlab:lab:tap", 14), "vm1 tagged: %s", m);
	CHECK(kl_net_down(h, "lab", 0) == 0, "network down");
	CHECK(!dev_exists("vm1"), "down takes the VMM's tagged tap too");
	if (fd2 >= 0)
		close(fd2);
	CHECK(!dev_exists("kl-lab"), "bridge gone");
	if (fd >= 0)
		close(fd);
	CHECK(kl_net_down(h, "lab", 0) == -ENOENT, "second down: not found");
	CHECK(kl_net_down(h, "lab", KL_IF_EXISTS) == 0, "second down --if-exists");
	kl_net_close(h);
	return t_done();
}
