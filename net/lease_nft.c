/* The lease map in nftables: map "leases" { type ether_addr : ipv4_addr }
 * in the network's table, one element per VM (MAC : address) whose
 * comment carries the rest (lease_comment). It sits where the network's
 * rules are, changes atomically with them and goes with the table.
 * Also the small batch builder that lease and forward batches share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include "lease.h"

/* nft's datatype numbers (src/datatype.h), which `nft list` reads */
#define TYPE_IPADDR 7
#define TYPE_ETHERADDR 9
#define LEASE_SET_ID 1

static struct nftnl_set *lease_set(const char *table)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, LEASE_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	return s;
}

static void put_map(struct nb *b)
{
	static const char text[] = "kvmlab leases: MAC : address, "
				   "vm=NAME owner=PID/START [reserved]";
	struct nftnl_set *s = lease_set(b->table);
	struct nftnl_udata_buf *ud = nb_comment(b, NFTNL_UDATA_SET_COMMENT, text);
	struct nlmsghdr *nlh;
	char *buf = nb_room(b);

	if (!s || !ud) {
		nb_fail(b, -ENOMEM);
		goto out;
	}
	if (!buf)
		goto out;
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, TYPE_ETHERADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 6);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, TYPE_IPADDR);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 4);
	nftnl_set_set_u32(s, NFTNL_SET_ID, LEASE_SET_ID);
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
			   nftnl_udata_buf_len(ud));
	/* No NLM_F_EXCL: an existing map is kept, elements and all. */
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWSET, NFPROTO_IPV4,
				    NLM_F_ACK | NLM_F_CREATE, b->seq);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nb_next(b, nlh);
out:
	if (ud)
		nftnl_udata_buf_free(ud);
	if (s)
		nftnl_set_free(s);
}

/* One element per message: a change touches a few leases, and each gets
 * its own ack, so a failure names the lease. */
static void put_elem(struct nb *b, const struct kl_lease *l, bool add)
{
	struct nftnl_set *s = lease_set(b->table);
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;
	uint32_t addr = htonl(l->addr);
	char text[NFTNL_UDATA_COMMENT_MAXLEN];
	char *buf = nb_room(b);

	if (!s || !e) {
		nb_fail(b, -ENOMEM);
		goto out;
	}
	if (!buf)
		goto out;
	nftnl_set_set_u32(s, NFTNL_SET_ID, LEASE_SET_ID);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, l->mac, 6);
	if (add) {
		int err = lease_comment(l, text, sizeof(text));
		if (err)
			nb_fail(b, err);
		if (err || !(ud = nb_comment(b, NFTNL_UDATA_SET_ELEM_COMMENT, text))) {
			nftnl_set_elem_free(e);
			goto out;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &addr, 4);
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA,
				   nftnl_udata_buf_data(ud),
				   nftnl_udata_buf_len(ud));
	}
	nftnl_set_elem_add(s, e);
	/* NLM_F_EXCL: an element we did not expect is a conflict, never
	 * silently kept. */
	nlh = nftnl_nlmsg_build_hdr(buf, add ? NFT_MSG_NEWSETELEM
					     : NFT_MSG_DELSETELEM,
				    NFPROTO_IPV4,
				    NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0),
				    b->seq);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nb_next(b, nlh);
out:
	if (ud)
		nftnl_udata_buf_free(ud);
	if (s)
		nftnl_set_free(s);
}

static bool same_lease(const struct kl_lease *a, const struct kl_lease *b)
{
	return !memcmp(a->mac, b->mac, 6) && a->addr == b->addr &&
	       !strcmp(a->vm, b->vm) && a->pid == b->pid &&
	       a->start == b->start && a->reserved == b->reserved;
}

unsigned lease_nft_put(struct nb *b, const struct lease_tab *old,
		       const struct lease_tab *new)
{
	size_t i = 0, j = 0;
	unsigned n = 0;

	put_map(b);
	/* Both sorted by MAC: one merge walk finds what goes and what
	 * comes; a changed element goes and comes back in the same batch. */
	while (i < old->n || j < new->n) {
		int c = i == old->n ? 1 : j == new->n ? -1
			: memcmp(old->v[i].mac, new->v[j].mac, 6);
		if (c < 0) {
			put_elem(b, &old->v[i++], false);
			n++;
		} else if (c > 0) {
			j++;
		} else {
			if (!same_lease(&old->v[i], &new->v[j]))
				put_elem(b, &old->v[i], false), n++;
			i++, j++;
		}
	}
	for (i = 0, j = 0; j < new->n; j++) {
		while (i < old->n && memcmp(old->v[i].mac, new->v[j].mac, 6) < 0)
			i++;
		if (i < old->n && !memcmp(old->v[i].mac, new->v[j].mac, 6) &&
		    same_lease(&old->v[i], &new->v[j]))
			continue;
		put_elem(b, &new->v[j], true);
		n++;
	}
	return n;
}

static int elem_udata_cb(const struct nftnl_udata *a, void *data)
{
	if (nftnl_udata_type(a) == NFTNL_UDATA_SET_ELEM_COMMENT)
		snprintf(data, NFTNL_UDATA_COMMENT_MAXLEN, "%.*s",
			 (int)nftnl_udata_len(a), (const char *)nftnl_udata_get(a));
	return 0;
}

static int elem_cb(struct nftnl_set_elem *e, void *data)
{
	struct lease_tab *t = data;
	struct kl_lease l;
	char text[NFTNL_UDATA_COMMENT_MAXLEN] = "";
	const void *key, *val, *ud;
	uint32_t klen = 0, vlen = 0, ulen = 0, a;

	memset(&l, 0, sizeof(l));
	key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
	val = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &vlen);
	ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &ulen);
	/* An element without a comment we can read was not put there by
	 * kvmlab: keep its MAC and address taken, under no VM name. */
	if (!key || klen != 6 || !val || vlen != 4)
		return 0;
	if (ud)
		nftnl_udata_parse(ud, ulen, elem_udata_cb, text);
	if (lease_comment_parse(text, &l)) {
		snprintf(l.vm, sizeof(l.vm), "?");
		l.reserved = true; /* never reclaimed */
	}
	memcpy(l.mac, key, 6);
	memcpy(&a, val, 4);
	l.addr = ntohl(a);
	return lease_tab_push(t, &l);
}

int lease_nft_parse(const struct nlmsghdr *nlh, struct lease_tab *t)
{
	struct nftnl_set *s = nftnl_set_alloc();
	int err;

	if (!s)
		return -ENOMEM;
	if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0)
		err = -EBADMSG;
	else
		err = nftnl_set_elem_foreach(s, elem_cb, t);
	nftnl_set_free(s);
	return err < 0 ? (err == -1 ? -ENOMEM : err) : 0;
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	return lease_nft_parse(nlh, data);
}

static void dump_reset(void *data)
{
	struct lease_tab *t = data;

	t->n = 0;
}

int lease_nft_read(struct kl_nl *nl, const char *net, struct lease_tab *t)
{
	char buf[256], table[64];
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	int err;

	memset(t, 0, sizeof(*t));
	snprintf(table, sizeof(table), NFT_TABLE_PREFIX "%s", net);
	if (!(s = lease_set(table)))
		return -ENOMEM;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4,
				    NLM_F_DUMP, 0);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	err = nl_dump(nl, nlh, dump_cb, dump_reset, t);
	if (err == -ENOENT) /* no table or no map yet: no leases */
		err = 0;
	if (err)
		lease_tab_free(t);
	else
		lease_sort_mac(t);
	return err;
}
