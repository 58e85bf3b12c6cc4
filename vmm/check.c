/* The host doctor. Every probe reads what the kernel says (/proc,
 * /sys, ioctls), never a guess from the distribution. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/kvm.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kvm.h"

static int path_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* The flags line of the first CPU: vmx, svm and hypervisor. */
static void cpu_flags(int *vmx, int *svm, int *hyp)
{
	char line[8192];
	FILE *f = fopen("/proc/cpuinfo", "re");

	*vmx = *svm = *hyp = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *sp, *t = strtok_r(line, " \t\n", &sp); t; t = strtok_r(NULL, " \t\n", &sp)) {
			*vmx |= !strcmp(t, "vmx");
			*svm |= !strcmp(t, "svm");
			*hyp |= !strcmp(t, "hypervisor");
		}
		break;
	}
	fclose(f);
}

/* nf_tables may be built in (no /sys/module entry), so ask it: a GETGEN
 * request is answered with NEWGEN only when nf_tables is there, and with
 * an EPERM error without CAP_NET_ADMIN. 1 ok, 0 missing, -EPERM. */
static int nftables_ok(void)
{
	struct {
		struct nlmsghdr nh;
		struct nfgenmsg g;
	} req = {
		.nh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
			.nlmsg_flags = NLM_F_REQUEST,
			.nlmsg_seq = 1,
		},
		.g = { .nfgen_family = AF_UNSPEC, .version = NFNETLINK_V0 },
	};
	char buf[4096];
	int ok = 0;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return 0;
	struct timeval tv = { .tv_sec = 1 };
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, &req, sizeof(req), 0) == (ssize_t)sizeof(req)) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n >= (ssize_t)sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *nh = (const void *)buf;
			const struct nlmsgerr *ne = NLMSG_DATA(nh);
			ok = nh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN);
			if (nh->nlmsg_type == NLMSG_ERROR &&
			    n >= (ssize_t)NLMSG_LENGTH(sizeof(*ne)) &&
			    (ne->error == -EPERM || ne->error == -EACCES))
				ok = -EPERM;
		}
	}
	close(fd);
	return ok;
}

/* "owner root, group kvm, mode 0660" for a no-permission line. */
static const char *node_perms(const char *path, char *buf, size_t len, const char **group)
{
	struct stat st;
	const struct group *gr;

	*group = NULL;
	if (stat(path, &st) < 0)
		return "";
	gr = getgrgid(st.st_gid);
	if (gr && st.st_gid != 0 && (st.st_mode & 060))
		*group = gr->gr_name;
	snprintf(buf, len, " (group %s, mode %04o)", gr ? gr->gr_name : "?",
		 st.st_mode & 07777);
	return buf;
}

/* One device node line: ok, or missing / no permission with its fix. */
static int dev_line(FILE *out, const char *prefix, const char *path,
		    const char *missing_fix, const char *perm_fix)
{
	char pb[64], fix[320];
	const char *grp, *perms;
	int fd = open(path, O_RDWR | O_CLOEXEC), err = errno;

	if (fd >= 0) {
		close(fd);
		fprintf(out, "%s: %s: ok\n", prefix, path);
		return 0;
	}
	if (err == ENOENT || err == ENODEV || err == ENXIO) {
		fprintf(out, "%s: %s: %s: missing: %s\n", prefix, path,
			strerror(err), missing_fix);
		return -ENOENT;
	}
	if (err == EACCES || err == EPERM) {
		perms = node_perms(path, pb, sizeof(pb), &grp);
		if (grp && !perm_fix) {
			snprintf(fix, sizeof(fix), "add yourself to group %s "
				 "(usermod -aG %s $USER, then log in again)", grp, grp);
			perm_fix = fix;
		} else if (!perm_fix) {
			/* Debian's udev rule gives /dev/kvm to group kvm, 0660 */
			snprintf(fix, sizeof(fix), "run as root, or give group kvm "
				 "access (chgrp kvm %s; chmod 0660 %s) and join it "
				 "(usermod -aG kvm $USER, then log in again)", path, path);
			perm_fix = fix;
		}
		fprintf(out, "%s: %s: %s: no permission%s: %s\n", prefix, path,
			strerror(err), perms, perm_fix ? perm_fix : "run as root");
		return -EACCES;
	}
	fprintf(out, "%s: %s: %s\n", prefix, path, strerror(err));
	return -err;
}

static int bridge_state(void)
{
	struct utsname u;
	char p[512];

	if (path_exists("/sys/module/bridge"))
		return 2; /* loaded or built in */
	if (uname(&u) == 0) {
		snprintf(p, sizeof(p), "/lib/modules/%s/kernel/net/bridge", u.release);
		if (path_exists(p))
			return 1; /* loads on demand */
	}
	return 0;
}

int check_host(FILE *out)
{
	int vmx, svm, hyp, rc = CHECK_RC_OK;
	const char *why = NULL;

	cpu_flags(&vmx, &svm, &hyp);
	fprintf(out, "cpu: virtualization flags: %s%s%s%s\n",
		vmx ? "vmx " : "", svm ? "svm " : "",
		!vmx && !svm ? "none (no vmx or svm in /proc/cpuinfo)" : "",
		hyp ? (vmx || svm ? "(nested, under a hypervisor)" : "; running under a hypervisor") : "");

	const char *mod = NULL;
	if (path_exists("/sys/module/kvm_pvm"))
		mod = "kvm_pvm";
	else if (path_exists("/sys/module/kvm_intel"))
		mod = "kvm_intel";
	else if (path_exists("/sys/module/kvm_amd"))
		mod = "kvm_amd";
	int pvm = mod && !strcmp(mod, "kvm_pvm");
	if (mod)
		fprintf(out, "kvm: /dev/kvm is backed by %s%s\n", mod,
			pvm ? " (PVM: paravirtualized, no hardware virtualization)" : "");
	else
		fprintf(out, "kvm: no kvm_intel, kvm_amd or kvm_pvm module in /sys/module\n");

	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int d = dev_line(out, "kvm", "/dev/kvm",
				 "modprobe kvm_intel or kvm_amd, with virtualization "
				 "(VT-x/AMD-V) on in the firmware", NULL);
		why = d == -ENOENT ? "/dev/kvm does not exist (missing: modprobe kvm_intel or kvm_amd)"
		    : d == -EACCES ? "no permission on /dev/kvm (see the kvm: line for the fix)"
				   : "cannot open /dev/kvm";
		rc = CHECK_RC_CANNOT;
	} else {
		fprintf(out, "kvm: /dev/kvm: read/write access ok\n");
		int api = ioctl(fd, KVM_GET_API_VERSION, 0);
		fprintf(out, "kvm: API version %d: %s\n", api,
			api == KVM_API_VERSION ? "ok" : "UNSUPPORTED");
		if (api != KVM_API_VERSION) {
			why = "wrong KVM API version";
			rc = CHECK_RC_CANNOT;
		}
		for (unsigned i = 0; i < kvm_required_caps_nr; i++) {
			int r = ioctl(fd, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap);
			fprintf(out, "kvm: %s: %s\n", kvm_required_caps[i].name,
				r > 0 ? "ok" : "MISSING");
			if (r <= 0 && rc == CHECK_RC_OK) {
				why = kvm_required_caps[i].name;
				rc = CHECK_RC_CANNOT;
			}
		}
		int mv = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
		fprintf(out, "kvm: max vCPUs per VM: %d\n", mv);
		close(fd);
	}

	(void)dev_line(out, "net", "/dev/net/tun", "modprobe tun",
		       "run --net needs CAP_NET_ADMIN; for --tap on a tap made by "
		       "kvmlab-net tap add --owner, let users open the node: chmod 0666 "
		       "/dev/net/tun (udev rule: KERNEL==\"tun\", MODE=\"0666\")");
	(void)dev_line(out, "net", "/dev/vhost-net", "modprobe vhost_net (optional)", NULL);
	int nft = nftables_ok();
	fprintf(out, "net: nftables: %s\n", nft > 0 ? "ok (nf_tables answers)"
		: nft < 0 ? "no permission (reading it needs CAP_NET_ADMIN: kvmlab-net runs as root)"
			  : "missing: modprobe nf_tables (kvmlab-net --nat needs it)");
	int br = bridge_state();
	fprintf(out, "net: bridge: %s\n", br == 2 ? "ok (module loaded)" :
		br == 1 ? "ok (module loads on demand)" : "not available");

	if (rc == CHECK_RC_CANNOT) {
		fprintf(out, "verdict: kvmlab-vm cannot run here: %s\n", why);
	} else if (pvm) {
		fprintf(out, "verdict: /dev/kvm is PVM (kvm_pvm): a stock (non-PVM) Linux kernel will not boot here;"
			     " PVM emulates its code one instruction at a time and stops early."
			     " Run the KVM tests in the test host: scripts/testhost -- build/kvmlab-vm run ...\n");
		rc = CHECK_RC_PVM;
	} else if (!vmx && !svm) {
		fprintf(out, "verdict: ok, although /proc/cpuinfo shows no vmx or svm\n");
	} else {
		fprintf(out, "verdict: ok: kvmlab-vm can boot stock kernels here\n");
	}
	return rc;
}
