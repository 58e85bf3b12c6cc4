/* The control socket's request handler (vmm/ctl.c) on arbitrary bytes:
 * whatever a local client sends, the reply is one JSON object with a
 * boolean "ok", and only a well-formed request of a known "cmd" reaches
 * the VM's ops (counted here against what the reply says). */
/* fuzz-srcs: vmm/ctl.c -ljansson */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static int calls, paused;

static json_t *st(void *o) { (void)o; calls++; return json_pack("{s:s}", "name", "fuzz"); }
static int pw(void *o) { (void)o; calls++; return 0; }
static int pa(void *o) { (void)o; calls++; return paused++ ? (paused--, -EALREADY) : 0; }
static int re(void *o) { (void)o; calls++; return paused ? (paused = 0) : -EALREADY; }
static void qu(void *o, pid_t by) { (void)o; (void)by; calls++; }
static const struct ctl_ops ops = {
	.status = st, .power_button = pw, .pause = pa, .resume = re, .quit = qu,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl *c;
	if (!c) {
		char name[32];
		struct err e;
		snprintf(name, sizeof(name), "fuzz-%ld", (long)getpid());
		if (ctl_open(&c, name, &ops, NULL, &e))
			abort();
	}
	int before = calls;
	char *s = ctl_handle(c, data, size, 1);
	if (!s)
		abort(); /* out of memory only */
	json_t *r = json_loads(s, 0, NULL);
	json_t *okv = json_object_get(r, "ok");
	/* the reply is always an object with a boolean ok; a refusal says
	 * why; an accepted request ran exactly one op */
	if (!json_is_object(r) || !json_is_boolean(okv))
		abort();
	if (json_is_false(okv) && !json_is_string(json_object_get(r, "error")))
		abort();
	if (json_is_true(okv) && calls != before + 1)
		abort();
	const char *why = json_string_value(json_object_get(r, "error"));
	/* overlong, malformed or unknown: refused before any op runs */
	if (why && (!strncmp(why, "request too long", 16) || !strncmp(why, "want a JSON", 11) ||
		    !strncmp(why, "unknown cmd", 11)) && calls != before)
		abort();
	if (size > CTL_MSG_MAX && calls != before)
		abort();
	json_decref(r);
	free(s);
	return 0;
}
