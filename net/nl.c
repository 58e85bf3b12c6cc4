/* Netlink transport over libmnl: one socket per bus, extended acks on,
 * every request acked, replies drained until each sequence number has
 * its answer, interrupted dumps started over. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <linux/netlink.h>
#include "priv.h"

/* rtnetlink handles the messages of one sendmsg in a row and queues
 * every ack before we read; an ack skb costs ~1 KiB of receive buffer,
 * so large requests go in slices that cannot overflow it. */
#define NL_SLICE_MSGS 32
#define NL_SLICE_BYTES (32 * 1024)

int nl_open(struct kl_nl *nl, int bus)
{
	int one = 1, err;
	struct timeval tv = {.tv_sec = 10};

	memset(nl, 0, sizeof(*nl));
	nl->bus = bus;
	nl->fail_index = -1;
	nl->rbuf = malloc(NL_BUF_SIZE);
	if (!nl->rbuf)
		return -ENOMEM;
	nl->sk = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl->sk) {
		err = -errno;
		goto err_buf;
	}
	/* Both are best effort: old kernels lack them and still work, just
	 * with less to say on failure. */
	(void)mnl_socket_setsockopt(nl->sk, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl->sk, NETLINK_CAP_ACK, &one, sizeof(one));
	/* A thousand links in one atomic request need room to send. */
	int sndbuf = 1 << 20;
	if (setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET, SO_SNDBUFFORCE,
		       &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET,
				 SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* ... and to take the answers when many of them fail. */
	int rcvbuf = 4 << 20;
	if (setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET, SO_RCVBUFFORCE,
		       &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET,
				 SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* A lost ack must not hang the tool forever. */
	if (setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET, SO_RCVTIMEO, &tv,
		       sizeof(tv)) < 0) {
		err = -errno;
		goto err_sock;
	}
	if (mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto err_sock;
	}
	nl->portid = mnl_socket_get_portid(nl->sk);
	/* Distinct starting points keep a stale reply of an earlier process
	 * from matching. */
	nl->seq = (uint32_t)time(NULL) << 8;
	return 0;
err_sock:
	mnl_socket_close(nl->sk);
	nl->sk = NULL;
err_buf:
	free(nl->rbuf);
	nl->rbuf = NULL;
	return err;
}

void nl_close(struct kl_nl *nl)
{
	if (nl->sk)
		mnl_socket_close(nl->sk);
	nl->sk = NULL;
	free(nl->rbuf);
	nl->rbuf = NULL;
}

struct ext_ctx {
	char *buf;
	size_t len;
};

static int ext_attr_cb(const struct nlattr *a, void *data)
{
	struct ext_ctx *c = data;

	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 && c->len) {
		snprintf(c->buf, c->len, "%s", mnl_attr_get_str(a));
		/* the kernel's text may end in a newline */
		size_t l = strlen(c->buf);
		while (l && (c->buf[l - 1] == '\n' || c->buf[l - 1] == ' '))
			c->buf[--l] = 0;
	}
	return MNL_CB_OK;
}

int nl_parse_err(const struct nlmsghdr *nlh, char *ext, size_t extlen)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off;

	if (ext && extlen)
		ext[0] = 0;
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return -EBADMSG;
	if (e->error == 0 || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || !ext)
		return e->error;
	/* TLVs follow the echoed request, which is only its header when the
	 * ack was capped. */
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	if (mnl_nlmsg_size(off) <= nlh->nlmsg_len) {
		struct ext_ctx c = {ext, extlen};
		(void)mnl_attr_parse(nlh, (unsigned)off, ext_attr_cb, &c);
	}
	return e->error;
}

/* One datagram into rbuf: *first is its first message and *left the
 * bytes from there, ready for mnl_nlmsg_ok()/mnl_nlmsg_next(). */
WUR static int nl_recv(struct kl_nl *nl, const struct nlmsghdr **first,
		       int *left)
{
	*first = (const struct nlmsghdr *)nl->rbuf;
	*left = 0;
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl->sk, nl->rbuf, NL_BUF_SIZE);
		if (len >= 0) {
			*left = (int)len;
			return 0;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
}

/* Send one slice and collect its answers. */
static int talk_slice(struct kl_nl *nl, const char *buf, size_t len,
		      uint32_t first_seq, unsigned n, unsigned base, int *res,
		      nl_data_cb cb, void *data, int *first_err)
{
	unsigned pending = n;
	uint8_t done[NL_SLICE_MSGS] = {0};
	int err;

	if (mnl_socket_sendto(nl->sk, buf, len) < 0)
		return -errno;
	while (pending) {
		const struct nlmsghdr *h;
		int left;
		char ext[sizeof(nl->extack)];

		if ((err = nl_recv(nl, &h, &left)))
			return err;
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_pid != nl->portid && h->nlmsg_pid)
				continue;
			uint32_t i = h->nlmsg_seq - first_seq;
			if (h->nlmsg_type != NLMSG_ERROR) {
				/* replies to someone else's request (an earlier,
				 * abandoned one) are not ours to parse */
				if (cb && i < n && h->nlmsg_type >= NLMSG_MIN_TYPE) {
					err = cb(h, data);
					if (err && !*first_err)
						*first_err = err;
				}
				continue;
			}
			int e = nl_parse_err(h, ext, sizeof(ext));
			if (i >= n) {
				/* An error for the nfnetlink batch header, which
				 * asked for no ack, means the batch was refused
				 * as a whole: nothing else will come. Anything
				 * else out of range is stale. */
				if (e && nl->bus == NETLINK_NETFILTER &&
				    h->nlmsg_seq == first_seq - 1) {
					if (!*first_err) {
						*first_err = e;
						nl->fail_index = -1;
						memcpy(nl->extack, ext, sizeof(ext));
					}
					return 0;
				}
				continue;
			}
			if (i < NL_SLICE_MSGS) {
				if (done[i])
					continue;
				done[i] = 1;
			}
			pending--;
			if (res)
				res[base + i] = e;
			if (e && !*first_err) {
				*first_err = e;
				nl->fail_index = (int)(base + i);
				memcpy(nl->extack, ext, sizeof(ext));
			}
		}
	}
	return 0;
}

int nl_talk(struct kl_nl *nl, const void *buf, size_t len, uint32_t first_seq,
	    unsigned n, int *res, nl_data_cb cb, void *data)
{
	const char *p = buf, *start = buf;
	unsigned in_slice = 0, base = 0;
	int first_err = 0, err;

	nl->extack[0] = 0;
	nl->fail_index = -1;
	if (nl->sk == NULL)
		return -ENOTCONN;
	if (n == 0)
		return 0;
	/* An nfnetlink batch has to reach the kernel in one sendmsg. */
	if (nl->bus == NETLINK_NETFILTER) {
		err = talk_slice(nl, buf, len, first_seq, n, 0, res, cb, data,
				 &first_err);
		return err ? err : first_err;
	}
	while ((size_t)(p - (const char *)buf) < len) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)p;
		size_t step = NLMSG_ALIGN(h->nlmsg_len);

		if (in_slice && (in_slice == NL_SLICE_MSGS ||
				 (size_t)(p + step - start) > NL_SLICE_BYTES)) {
			err = talk_slice(nl, start, (size_t)(p - start),
					 first_seq + base, in_slice, base, res,
					 cb, data, &first_err);
			if (err)
				return err;
			base += in_slice;
			in_slice = 0;
			start = p;
		}
		p += step;
		in_slice++;
	}
	if (in_slice) {
		err = talk_slice(nl, start, (size_t)(p - start), first_seq + base,
				 in_slice, base, res, cb, data, &first_err);
		if (err)
			return err;
	}
	return first_err;
}

int nl_send_all(struct kl_nl *nl, const void *buf, size_t len,
		uint32_t first_seq, unsigned n)
{
	uint32_t last = first_seq + n - 1;
	int first_err = 0, err;
	bool done = false;

	nl->extack[0] = 0;
	nl->fail_index = -1;
	if (nl->sk == NULL)
		return -ENOTCONN;
	if (n == 0)
		return 0;
	if (mnl_socket_sendto(nl->sk, buf, len) < 0)
		return -errno;
	while (!done) {
		const struct nlmsghdr *h;
		int left;
		char ext[sizeof(nl->extack)];

		if ((err = nl_recv(nl, &h, &left)))
			return err;
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			uint32_t i = h->nlmsg_seq - first_seq;
			if ((h->nlmsg_pid != nl->portid && h->nlmsg_pid) ||
			    h->nlmsg_type != NLMSG_ERROR || i >= n)
				continue;
			int e = nl_parse_err(h, ext, sizeof(ext));
			if (e && !first_err) {
				first_err = e;
				nl->fail_index = (int)i;
				memcpy(nl->extack, ext, sizeof(ext));
			}
			/* the kernel answers in order: the last ack ends it */
			if (h->nlmsg_seq == last)
				done = true;
		}
	}
	return first_err;
}

int nl_dump(struct kl_nl *nl, struct nlmsghdr *req, nl_data_cb cb,
	    void (*reset)(void *), void *data)
{
	int tries, err;

	nl->extack[0] = 0;
	if (nl->sk == NULL)
		return -ENOTCONN;
	for (tries = 0; tries < 8; tries++) {
		bool intr = false, done = false;
		int cb_err = 0;

		req->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		req->nlmsg_seq = ++nl->seq;
		if (mnl_socket_sendto(nl->sk, req, req->nlmsg_len) < 0)
			return -errno;
		while (!done) {
			const struct nlmsghdr *h;
			int left;

			if ((err = nl_recv(nl, &h, &left)))
				return err;
			for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
				if (h->nlmsg_seq != req->nlmsg_seq)
					continue;
				if (h->nlmsg_flags & NLM_F_DUMP_INTR)
					intr = true;
				if (h->nlmsg_type == NLMSG_ERROR) {
					err = nl_parse_err(h, nl->extack,
							   sizeof(nl->extack));
					return err ? err : -EBADMSG;
				}
				if (h->nlmsg_type == NLMSG_DONE) {
					const int *v = mnl_nlmsg_get_payload(h);
					if (h->nlmsg_len >= mnl_nlmsg_size(sizeof(int)) &&
					    *v < 0)
						return *v;
					done = true;
					break;
				}
				/* after a callback error keep reading to DONE so
				 * the socket stays usable */
				if (!cb_err && h->nlmsg_type >= NLMSG_MIN_TYPE)
					cb_err = cb(h, data);
			}
		}
		if (cb_err)
			return cb_err;
		if (!intr)
			return 0;
		if (reset)
			reset(data);
	}
	return -EINTR;
}

struct array_ctx {
	char *v;
	size_t n, cap, elem;
	nl_data_cb parse;
};

static int array_cb(const struct nlmsghdr *nlh, void *data)
{
	struct array_ctx *c = data;
	char *v = kl_grow(c->v, &c->cap, c->n + 1, c->elem);

	if (!v)
		return -ENOMEM;
	c->v = v;
	if (c->parse(nlh, v + c->n * c->elem) == 0)
		c->n++;
	return 0;
}

/* An interrupted dump starts over: what came before may be stale. */
static void array_reset(void *data)
{
	((struct array_ctx *)data)->n = 0;
}

int nl_dump_array(struct kl_nl *nl, struct nlmsghdr *req, size_t elem,
		  nl_data_cb parse, void **out, size_t *n)
{
	struct array_ctx c = {NULL, 0, 0, elem, parse};
	int err = nl_dump(nl, req, array_cb, array_reset, &c);

	if (err) {
		free(c.v);
		return err;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}
