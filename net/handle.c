/* The library handle: sockets, namespace identity, and the messages of
 * the last call (error line, extack, warnings, dry-run plan). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include "priv.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

int kl_net_open(struct kl_net **out)
{
	struct kl_net *h = calloc(1, sizeof(*h));
	const char *wait = getenv("KVMLAB_LOCK_TIMEOUT");
	struct stat sb;
	socklen_t len = sizeof(h->cookie);
	int err;

	if (!h)
		return -ENOMEM;
	h->lockfd = -1;
	h->wait_ms = KL_LOCK_WAIT_MS;
	if (wait && *wait) {
		char *end;
		double v = strtod(wait, &end);
		if (!*end && v >= 0 && v < 86400)
			h->wait_ms = (unsigned)(v * 1000);
	}
	if (stat("/proc/self/ns/net", &sb) < 0) {
		err = -errno;
		goto err_free;
	}
	h->ino = (uint64_t)sb.st_ino;
	if ((err = nl_open(&h->rt, NETLINK_ROUTE)) != 0)
		goto err_free;
	if ((err = nl_open(&h->nf, NETLINK_NETFILTER)) != 0)
		goto err_rt;
	/* Never reused, unlike the inode; absent before Linux 5.14. */
	if (getsockopt(mnl_socket_get_fd(h->rt.sk), SOL_SOCKET, SO_NETNS_COOKIE,
		       &h->cookie, &len) < 0)
		h->cookie = 0;
	*out = h;
	return 0;
err_rt:
	nl_close(&h->rt);
err_free:
	free(h);
	return err;
}

static void free_lines(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void kl_reset_msgs(struct kl_net *h)
{
	h->err[0] = 0;
	h->extack[0] = 0;
	free_lines(h->warn, h->nwarn);
	free_lines(h->plan, h->nplan);
	h->warn = h->plan = NULL;
	h->nwarn = h->nplan = 0;
}

void kl_net_close(struct kl_net *h)
{
	if (!h)
		return;
	state_unlock(h);
	kl_reset_msgs(h);
	nl_close(&h->nf);
	nl_close(&h->rt);
	free(h);
}

void kl_net_set_wait(struct kl_net *h, unsigned ms)
{
	h->wait_ms = ms;
}

const char *kl_net_errmsg(const struct kl_net *h)
{
	return h->err[0] ? h->err : "unknown error";
}

const char *kl_net_extack(const struct kl_net *h)
{
	return h->extack;
}

size_t kl_net_nwarnings(const struct kl_net *h) { return h->nwarn; }
const char *kl_net_warning(const struct kl_net *h, size_t i)
{
	return i < h->nwarn ? h->warn[i] : NULL;
}
size_t kl_net_nplan(const struct kl_net *h) { return h->nplan; }
const char *kl_net_plan(const struct kl_net *h, size_t i)
{
	return i < h->nplan ? h->plan[i] : NULL;
}

__attribute__((format(printf, 3, 0)))
static void add_line(char ***v, size_t *n, const char *fmt, va_list ap)
{
	char *s = NULL, **nv;

	if (vasprintf(&s, fmt, ap) < 0)
		return;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv) {
		free(s);
		return;
	}
	nv[(*n)++] = s;
	*v = nv;
}

void kl_warn(struct kl_net *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_line(&h->warn, &h->nwarn, fmt, ap);
	va_end(ap);
}

void kl_plan(struct kl_net *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_line(&h->plan, &h->nplan, fmt, ap);
	va_end(ap);
}

int kl_err(struct kl_net *h, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof(h->err), fmt, ap);
	va_end(ap);
	return e;
}

int kl_nlerr(struct kl_net *h, struct kl_nl *nl, int e, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof(h->err), fmt, ap);
	va_end(ap);
	n = strlen(h->err);
	snprintf(h->extack, sizeof(h->extack), "%s", nl ? nl->extack : "");
	if (e == -EPERM || e == -EACCES)
		snprintf(h->err + n, sizeof(h->err) - n,
			 ": %s (CAP_NET_ADMIN is needed)", strerror(-e));
	else if (h->extack[0])
		snprintf(h->err + n, sizeof(h->err) - n, ": %s (kernel: %s)",
			 strerror(-e), h->extack);
	else
		snprintf(h->err + n, sizeof(h->err) - n, ": %s", strerror(-e));
	return e;
}

int kl_cap_net_admin(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	bool found = false;

	/* If the check itself cannot run, let the kernel decide. */
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	fclose(f);
	if (found && !(eff & (1ULL << CAP_NET_ADMIN)))
		return -EPERM;
	return 0;
}
