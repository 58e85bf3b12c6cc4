/* kl_net_down: remove a network, in the order that lets a crashed run be
 * finished by the next one: tagged taps and bridge in one atomic request,
 * then ip_forward back (when no other network is left), then the table,
 * which holds the value to put back and so goes last. A device with the
 * network's names but not its tags is left alone, with a warning. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include "priv.h"

/* Is any other kvmlab network left (with IPv6: any other IPv6 one)? Its
 * table then keeps forwarding on. */
static int others_left(struct kl_net *h, const char *name, bool *left,
		       bool *left6)
{
	struct store_net *v;
	size_t n;
	int err = store_list(h, &v, &n);

	if (err)
		return err;
	*left = *left6 = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].cfg.name, name)) {
			*left = true;
			*left6 |= v[i].have6;
		}
	free(v);
	return 0;
}

/* The last network (with six: the last IPv6 one) gone: forwarding back
 * to prev, as kvmlab found it. */
static int restore_fwd(struct kl_net *h, const char *name, bool six, int prev)
{
	const char *path = six ? SYSCTL_FWD6 : SYSCTL_FWD;
	bool left, left6;
	int now, err;

	if ((err = others_left(h, name, &left, &left6)))
		return kl_nlerr(h, &h->nf, err, "network %s: cannot list nft "
				"tables", name);
	if ((six ? left6 : left) || sysctl_read_int(path, &now) || now == prev)
		return 0;
	if ((err = sysctl_write_int(path, prev)))
		return kl_err(h, err, "sysctl %s: cannot restore %d: %s",
			      six ? "net.ipv6.conf.all.forwarding" :
			      "net.ipv4.ip_forward", prev, strerror(-err));
	return 0;
}

int kl_net_down(struct kl_net *h, const char *name, unsigned flags)
{
	struct net_view v;
	int *idx = NULL, err;
	size_t k = 0;
	char buf[1024];

	kl_reset_msgs(h);
	if ((err = bad_name(h, "network", name)))
		return err;
	if ((err = need_cap(h, "network", name)))
		return err;
	if ((err = op_begin(h)))
		return err;
	if ((err = view_load(h, name, &v)))
		goto out;
	if (!v.have_def && !v.br && !v.ntaps) {
		err = flags & KL_IF_EXISTS ? 0 :
		      kl_err(h, -ENOENT, "network %s: not found in this network "
			     "namespace", name);
		goto out;
	}
	if (v.have_def && !v.def.bad && !v.br && v.named)
		kl_warn(h, "bridge %s: not kvmlab's (alias \"%s\"): left alone",
			v.def.cfg.bridge, v.named->alias);
	idx = calloc(v.ntaps + 1, sizeof(int));
	if (!idx) {
		err = kl_err(h, -ENOMEM, "network %s: out of memory", name);
		goto out;
	}
	for (size_t i = 0; i < v.nlinks; i++)
		if (link_is_tap_of(&v.links[i], name, NULL))
			idx[k++] = v.links[i].ifindex;
	if (v.br) {
		/* Down first: each port that leaves an up bridge makes it walk
		 * all the others, N^2 work for N taps. Best effort; the delete
		 * below is what counts. */
		struct nlmsghdr *nlh = rt_build_setlink(buf, ++h->rt.seq,
							v.br->ifindex, NULL, 0, 0,
							false, NULL);
		struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
		ifm->ifi_change = IFF_UP;
		IGNORE(talk1(&h->rt, nlh));
		idx[k++] = v.br->ifindex;
	}
	/* Taps and bridge go in one unregistration; the bridge takes its
	 * address with it. */
	if ((err = del_links(h, idx, k, v.br ? "bridge or tap" : "tap")))
		goto out;
	crash_point("down:links");
	if (v.have_def && !v.def.bad && v.def.fwd_prev >= 0) {
		if ((err = restore_fwd(h, name, false, v.def.fwd_prev)))
			goto out;
		crash_point("down:fwd");
	} else if (v.have_def && !v.def.have4) {
		kl_warn(h, "network %s: its nft table ip %s%s was gone; removed "
			   "its tagged links and ip6 table; net.ipv4.ip_forward "
			   "left as it is", name, NFT_TABLE_PREFIX, name);
	} else if (v.have_def && v.def.bad) {
		kl_warn(h, "network %s: its table's comment is not a definition "
			   "kvmlab can read; net.ipv4.ip_forward left as it is",
			name);
	} else if (!v.have_def) {
		kl_warn(h, "network %s: its nft table was gone; removed its tagged "
			   "links; net.ipv4.ip_forward left as it is", name);
	}
	/* The same for IPv6 forwarding and the last IPv6 network, from the
	 * ip6 table's own definition (readable even when the ip table's is
	 * not, or is gone). */
	if (v.have_def && v.def.cfg.has6 && v.def.fwd6_prev >= 0 &&
	    (err = restore_fwd(h, name, true, v.def.fwd6_prev)))
		goto out;
	if (v.have_def) {
		unsigned fams = (v.def.have4 ? NFT_IP : 0) |
				(v.def.have6 ? NFT_IP6 : 0);
		err = store_delete(h, name, fams);
		if (err == -ENOENT)
			err = 0;
		if (err)
			err = kl_nlerr(h, &h->nf, err, "nft table %s%s%s%s: cannot "
				       "delete", fams & NFT_IP ? "ip " : "ip6 ",
				       NFT_TABLE_PREFIX, name,
				       fams == (NFT_IP | NFT_IP6) ? " (and its ip6 twin)" : "");
	}
out:
	free(idx);
	view_free(&v);
	op_end(h);
	return err;
}
