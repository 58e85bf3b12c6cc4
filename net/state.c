/* What the kernel cannot tell back: which objects kvmlab made and the
 * forwarding value it found. One small text file per network namespace,
 * <dir>/<netns inode>.state, replaced atomically (temporary file, then
 * rename) while the directory is flocked. The namespace cookie inside the
 * file catches a recycled inode: a new namespace never inherits the state
 * of a dead one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "priv.h"

#define STATE_MAGIC "kvmlab-state 1"

static int path_of(const struct kl_net *h, char *buf, size_t len,
		   const char *suffix)
{
	int n = snprintf(buf, len, "%s/%" PRIu64 "%s", h->statedir, h->ino,
			 suffix);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int state_lock(struct kl_net *h, bool exclusive)
{
	int fd;

	/* Nested (lease calls read the network through kl_net_show while
	 * they hold the lock): the outer holder keeps it. */
	if (h->lockfd >= 0) {
		h->lockdepth++;
		return 0;
	}
	if (exclusive && mkdir(h->statedir, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = open(h->statedir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Readers of a directory nobody made yet: there is no state, and
	 * nothing to lock against. */
	if (fd < 0 && errno == ENOENT && !exclusive)
		return 0;
	if (fd < 0)
		return -errno;
	/* The directory itself is the lock: nothing to clean up afterwards,
	 * and runs in different namespaces only wait a few milliseconds. */
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			int e = -errno;
			close(fd);
			return e;
		}
	}
	h->lockfd = fd;
	return 0;
}

void state_unlock(struct kl_net *h)
{
	if (h->lockdepth) {
		h->lockdepth--;
		return;
	}
	if (h->lockfd >= 0)
		close(h->lockfd);
	h->lockfd = -1;
}

void state_free(struct kl_state *st)
{
	for (size_t i = 0; i < st->nnets; i++)
		free(st->nets[i].taps);
	free(st->nets);
	st->nets = NULL;
	st->nnets = 0;
}

struct st_net *state_find(struct kl_state *st, const char *name)
{
	for (size_t i = 0; i < st->nnets; i++)
		if (!strcmp(st->nets[i].cfg.name, name))
			return &st->nets[i];
	return NULL;
}

struct st_net *state_find_tap(struct kl_state *st, const char *tap,
			      size_t *idx)
{
	for (size_t i = 0; i < st->nnets; i++)
		for (size_t j = 0; j < st->nets[i].ntaps; j++)
			if (!strcmp(st->nets[i].taps[j].name, tap)) {
				if (idx)
					*idx = j;
				return &st->nets[i];
			}
	return NULL;
}

int state_add_tap(struct st_net *n, const char *name, unsigned queues)
{
	for (size_t j = 0; j < n->ntaps; j++)
		if (!strcmp(n->taps[j].name, name)) {
			n->taps[j].queues = queues;
			return 0;
		}
	return state_append_tap(n, name, queues);
}

int state_append_tap(struct st_net *n, const char *name, unsigned queues)
{
	struct st_tap *t = kl_grow(n->taps, &n->cap, n->ntaps + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	n->taps = t;
	snprintf(n->taps[n->ntaps].name, sizeof(n->taps[0].name), "%s", name);
	n->taps[n->ntaps++].queues = queues;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Works on both a key string and a char[KL_NAME_MAX + 1] element. */
int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

bool sorted_dup(const char (*v)[KL_NAME_MAX + 1], size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (!strcmp(v[i - 1], v[i]))
			return true;
	return false;
}

/* Sorting, because a scan per name makes N^2 string compares out of a
 * thousand taps. */
int names_dup(const char *const *names, size_t n, bool *dup)
{
	const char **v;

	*dup = false;
	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, names, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 1; i < n && !*dup; i++)
		*dup = !strcmp(v[i - 1], v[i]);
	free(v);
	return 0;
}

int state_tap_names(const struct kl_state *st,
		    char (**out)[KL_NAME_MAX + 1], size_t *n)
{
	size_t total = 0, k = 0;
	char (*v)[KL_NAME_MAX + 1];

	for (size_t i = 0; i < st->nnets; i++)
		total += st->nets[i].ntaps;
	v = calloc(total ? total : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->nnets; i++)
		for (size_t j = 0; j < st->nets[i].ntaps; j++)
			memcpy(v[k++], st->nets[i].taps[j].name, sizeof(*v));
	qsort(v, total, sizeof(*v), cmp_name);
	*out = v;
	*n = total;
	return 0;
}

bool names_has(const char (*v)[KL_NAME_MAX + 1], size_t n, const char *name)
{
	return n && bsearch(name, v, n, sizeof(*v), cmp_name);
}

/* What repeated state_add_tap calls would have left: the first place of
 * each name, with the queues of its last line. */
static void merge_dups(struct st_net *n)
{
	size_t k = 0;

	for (size_t i = 0; i < n->ntaps; i++) {
		size_t j;
		for (j = 0; j < k; j++)
			if (!strcmp(n->taps[j].name, n->taps[i].name)) {
				n->taps[j].queues = n->taps[i].queues;
				break;
			}
		if (j == k)
			n->taps[k++] = n->taps[i];
	}
	n->ntaps = k;
}

/* Taps are appended while parsing; duplicate lines, which only a hand
 * edit makes, are merged afterwards. */
static int parse_dedup(struct kl_state *st)
{
	for (size_t i = 0; i < st->nnets; i++) {
		struct st_net *n = &st->nets[i];
		const char **names;
		bool dup;
		int err;

		if (n->ntaps < 2)
			continue;
		names = malloc(n->ntaps * sizeof(*names));
		if (!names)
			return -ENOMEM;
		for (size_t j = 0; j < n->ntaps; j++)
			names[j] = n->taps[j].name;
		err = names_dup(names, n->ntaps, &dup);
		free(names);
		if (err)
			return err;
		if (dup)
			merge_dups(n);
	}
	return 0;
}

int state_format(const struct kl_state *st, char **out, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	char ip[16];

	if (!f)
		return -errno;
	fprintf(f, "%s\nnetns %" PRIu64 " %" PRIu64 "\nfwd_prev %d\n",
		STATE_MAGIC, st->ino, st->cookie, st->fwd_prev);
	for (size_t i = 0; i < st->nnets; i++) {
		const struct st_net *n = &st->nets[i];
		fprintf(f,
			"net name=%s bridge=%s cidr=%s/%u nat=%d uplink=%s mtu=%u "
			"stp=%d made_bridge=%d made_addr=%d made_nft=%d\n",
			n->cfg.name, n->cfg.bridge, kl_ip4(n->cfg.addr, ip),
			n->cfg.prefix, n->cfg.nat, n->cfg.uplink, n->cfg.mtu,
			n->cfg.stp, n->made_bridge, n->made_addr, n->made_nft);
		for (size_t j = 0; j < n->ntaps; j++)
			fprintf(f, "tap %s %s %u\n", n->cfg.name,
				n->taps[j].name, n->taps[j].queues);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = sz;
	return 0;
}

static int set_name(char *dst, const char *v, bool may_be_empty)
{
	const char *why;

	if (!*v && may_be_empty) {
		dst[0] = 0;
		return 0;
	}
	if (kl_name_check(v, &why))
		return -EBADMSG;
	snprintf(dst, KL_NAME_MAX + 1, "%s", v);
	return 0;
}

static int parse_net(char *line, struct st_net *n)
{
	char *save = NULL, *tok;
	const char *why;
	int have = 0;

	memset(n, 0, sizeof(*n));
	for (tok = strtok_r(line, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return -EBADMSG;
		*eq++ = 0;
		if (!strcmp(tok, "name")) {
			if (set_name(n->cfg.name, eq, false))
				return -EBADMSG;
			have |= 1;
		} else if (!strcmp(tok, "bridge")) {
			if (set_name(n->cfg.bridge, eq, false))
				return -EBADMSG;
			have |= 2;
		} else if (!strcmp(tok, "cidr")) {
			if (kl_cidr_parse(eq, &n->cfg.addr, &n->cfg.prefix, &why))
				return -EBADMSG;
			have |= 4;
		} else if (!strcmp(tok, "uplink")) {
			if (set_name(n->cfg.uplink, eq, true))
				return -EBADMSG;
		} else if (!strcmp(tok, "nat")) {
			n->cfg.nat = atoi(eq) != 0;
		} else if (!strcmp(tok, "mtu")) {
			n->cfg.mtu = (unsigned)strtoul(eq, NULL, 10);
		} else if (!strcmp(tok, "stp")) {
			n->cfg.stp = atoi(eq) != 0;
		} else if (!strcmp(tok, "made_bridge")) {
			n->made_bridge = atoi(eq) != 0;
		} else if (!strcmp(tok, "made_addr")) {
			n->made_addr = atoi(eq) != 0;
		} else if (!strcmp(tok, "made_nft")) {
			n->made_nft = atoi(eq) != 0;
		}
		/* unknown keys: written by a newer kvmlab, ignored */
	}
	return have == 7 ? 0 : -EBADMSG;
}

int state_parse(const char *text, struct kl_state *st)
{
	char *copy = strdup(text), *save = NULL, *line;
	int err = -EBADMSG;

	if (!copy)
		return -ENOMEM;
	memset(st, 0, sizeof(*st));
	st->fwd_prev = -1;
	line = strtok_r(copy, "\n", &save);
	if (!line || strcmp(line, STATE_MAGIC))
		goto out;
	while ((line = strtok_r(NULL, "\n", &save))) {
		if (!strncmp(line, "netns ", 6)) {
			if (sscanf(line + 6, "%" SCNu64 " %" SCNu64, &st->ino,
				   &st->cookie) != 2)
				goto out;
		} else if (!strncmp(line, "fwd_prev ", 9)) {
			st->fwd_prev = atoi(line + 9);
		} else if (!strncmp(line, "net ", 4)) {
			struct st_net *v = realloc(st->nets,
						   (st->nnets + 1) * sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				goto out;
			}
			st->nets = v;
			if (parse_net(line + 4, &st->nets[st->nnets]))
				goto out;
			if (state_find(st, st->nets[st->nnets].cfg.name))
				goto out;
			st->nnets++;
		} else if (!strncmp(line, "tap ", 4)) {
			char net[32], tap[32];
			unsigned q;
			struct st_net *n;
			const char *why;
			if (sscanf(line + 4, "%31s %31s %u", net, tap, &q) != 3 ||
			    kl_name_check(tap, &why) || !(n = state_find(st, net)))
				goto out;
			if ((err = state_append_tap(n, tap, q)) != 0)
				goto out;
			err = -EBADMSG;
		}
	}
	err = parse_dedup(st);
out:
	free(copy);
	if (err)
		state_free(st);
	return err;
}

int state_load(struct kl_net *h, struct kl_state *st)
{
	char path[256];
	struct stat sb;
	char *text;
	int fd, err;

	memset(st, 0, sizeof(*st));
	st->fwd_prev = -1;
	st->ino = h->ino;
	st->cookie = h->cookie;
	if ((err = path_of(h, path, sizeof(path), ".state")))
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &sb) < 0 || sb.st_size > (1 << 24)) {
		err = errno ? -errno : -EFBIG;
		goto err_fd;
	}
	text = malloc((size_t)sb.st_size + 1);
	if (!text) {
		err = -ENOMEM;
		goto err_fd;
	}
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, text + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			goto err_text;
		}
		got += (size_t)r;
	}
	text[got] = 0;
	err = state_parse(text, st);
	if (err)
		goto err_text;
	if (st->ino != h->ino || (st->cookie && h->cookie &&
				  st->cookie != h->cookie)) {
		/* A dead namespace's leftovers under a recycled inode. */
		state_free(st);
		st->fwd_prev = -1;
	}
	st->ino = h->ino;
	st->cookie = h->cookie;
	free(text);
	close(fd);
	return 0;
err_text:
	free(text);
err_fd:
	close(fd);
	return err;
}

int state_save(struct kl_net *h, const struct kl_state *st)
{
	char path[256], tmp[280];
	char *text;
	size_t len;
	int fd, err;

	if ((err = path_of(h, path, sizeof(path), ".state")))
		return err;
	if (st->nnets == 0) {
		/* Nothing left to remember: leave nothing behind. */
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if ((err = path_of(h, tmp, sizeof(tmp), ".state.tmp")))
		return err;
	if ((err = state_format(st, &text, &len)))
		return err;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		goto err_text;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err = -errno;
			goto err_fd;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0) {
		err = -errno;
		goto err_unlink;
	}
	if (rename(tmp, path) < 0) {
		err = -errno;
		goto err_unlink;
	}
	free(text);
	return 0;
err_fd:
	close(fd);
err_unlink:
	unlink(tmp);
err_text:
	free(text);
	return err;
}
