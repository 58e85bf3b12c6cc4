/* The nftables batch builder that the network's own chains (nft.c), its
 * lease map (lease_nft.c) and its port forwards (forward.c) share:
 * messages laid end to end in the caller's buffer, each with the next
 * sequence number; the first error sticks and later puts do nothing. */
#include <string.h>
#include <linux/netfilter.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/udata.h>
#include "priv.h"

#define NB_ROOM 2048 /* more than any single message put in a batch */

void nb_init(struct nb *b, void *buf, size_t size, uint32_t seq,
	     const char *table)
{
	b->p = buf;
	b->end = (char *)buf + size;
	b->seq = seq;
	b->first = 0;
	b->err = 0;
	b->table = table;
	b->family = NFPROTO_IPV4;
}

char *nb_room(struct nb *b)
{
	if (b->err)
		return NULL;
	if ((size_t)(b->end - b->p) < NB_ROOM) {
		b->err = -ENOSPC;
		return NULL;
	}
	return b->p;
}

void nb_next(struct nb *b, struct nlmsghdr *nlh)
{
	b->p += NLMSG_ALIGN(nlh->nlmsg_len);
	b->seq++;
}

void nb_begin(struct nb *b)
{
	char *buf = nb_room(b);

	if (!buf)
		return;
	nb_next(b, nftnl_batch_begin(buf, b->seq));
	b->first = b->seq;
}

void nb_end(struct nb *b)
{
	char *buf = nb_room(b);

	if (buf)
		nb_next(b, nftnl_batch_end(buf, b->seq));
}

unsigned nb_nacked(const struct nb *b)
{
	return b->seq - b->first;
}

long nb_len(const struct nb *b, const void *buf)
{
	return b->err ? b->err : (long)(b->p - (const char *)buf);
}

void nb_fail(struct nb *b, int err)
{
	if (!b->err)
		b->err = err;
}

struct nftnl_udata_buf *nb_comment(struct nb *b, int type, const char *text)
{
	/* one TLV: its length byte holds the text and its NUL */
	size_t n = strlen(text) + 1;
	struct nftnl_udata_buf *ud;

	if (n > 255) {
		nb_fail(b, -ENAMETOOLONG);
		return NULL;
	}
	ud = nftnl_udata_buf_alloc(n + 16);
	if (ud && !nftnl_udata_put_strz(ud, (uint8_t)type, text)) {
		nftnl_udata_buf_free(ud);
		ud = NULL;
	}
	if (!ud)
		nb_fail(b, -ENOMEM);
	return ud;
}

/* NEWCHAIN of a base chain, or (type NULL) DELCHAIN. */
static void chain_msg(struct nb *b, const char *name, const char *type,
		      unsigned hook, int prio)
{
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;
	char *buf = nb_room(b);

	if (!buf)
		return;
	c = nftnl_chain_alloc();
	if (!c) {
		nb_fail(b, -ENOMEM);
		return;
	}
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, b->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (type) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	/* No NLM_F_EXCL: an existing chain keeps its rules, and gets its
	 * policy set back to accept. */
	nlh = nftnl_nlmsg_build_hdr(buf, type ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN,
				    (uint16_t)b->family,
				    NLM_F_ACK | (type ? NLM_F_CREATE : 0), b->seq);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nb_next(b, nlh);
	nftnl_chain_free(c);
}

void nb_chain(struct nb *b, const char *name, const char *type, unsigned hook,
	      int prio)
{
	chain_msg(b, name, type, hook, prio);
}

void nb_delchain(struct nb *b, const char *name)
{
	chain_msg(b, name, NULL, 0, 0);
}
