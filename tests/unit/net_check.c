/* Validation of names and CIDRs, bridge-name derivation, subnet overlap
 * and the state file's text form. No kernel involved. */
#include <stdlib.h>
#include <string.h>
#include "t.h"
#include "priv.h"

static void names(void)
{
	const char *why = NULL;

	CHECK(kl_name_check("lab", &why) == 0, "plain name accepted");
	CHECK(kl_name_check("abcdefghijklmno", &why) == 0, "15 bytes accepted");
	CHECK(kl_name_check("abcdefghijklmnop", &why) == -EINVAL &&
		      strstr(why, "15 bytes"), "16 bytes rejected: %s", why);
	CHECK(kl_name_check("a/b", &why) == -EINVAL && strstr(why, "'/'"),
	      "slash rejected: %s", why);
	CHECK(kl_name_check("a b", &why) == -EINVAL && strstr(why, "space"),
	      "space rejected: %s", why);
	CHECK(kl_name_check("a:b", &why) == -EINVAL && strstr(why, "':'"),
	      "colon rejected: %s", why);
	CHECK(kl_name_check("", &why) == -EINVAL, "empty rejected");
	CHECK(kl_name_check("..", &why) == -EINVAL, "'..' rejected");
	CHECK(kl_name_check("a\tb", &why) == -EINVAL, "tab rejected");
}

static void cidrs(void)
{
	uint32_t a = 0;
	unsigned p = 0;
	const char *why = NULL;
	static const char *const bad[] = {
		"192.168.57.1", "192.168.57.1/", "192.168.57/24",
		"192.168.57.256/24", "192.168.057.1/24", "192.168.57.1/0",
		"192.168.57.1/32", "192.168.57.1/33", "192.168.57.1/2x",
		"192.168.57.0/24", "192.168.57.255/24", "10.0.0.1/024",
		" 10.0.0.1/24", "10.0.0.1/-1", "",
	};

	CHECK(kl_cidr_parse("192.168.57.1/24", &a, &p, &why) == 0 &&
		      a == 0xc0a83901 && p == 24, "192.168.57.1/24 parsed");
	CHECK(kl_cidr_parse("10.1.2.3/8", &a, &p, &why) == 0 && p == 8,
	      "/8 parsed");
	CHECK(kl_cidr_parse("10.0.0.1/30", &a, &p, &why) == 0, "/30 host ok");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why = NULL;
		CHECK(kl_cidr_parse(bad[i], &a, &p, &why) == -EINVAL && why,
		      "'%s' rejected: %s", bad[i], why ? why : "(no reason)");
	}
	CHECK(kl_cidr_parse("192.168.57.0/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "network address"), "network address named");
	CHECK(kl_cidr_parse("192.168.57.255/24", &a, &p, &why) == -EINVAL &&
		      strstr(why, "broadcast"), "broadcast address named");
	CHECK(kl_cidr_parse("1.2.3.4/0", &a, &p, &why) == -EINVAL &&
		      strstr(why, "/0"), "/0 named");
	CHECK(kl_cidr_parse("1.2.3.4/32", &a, &p, &why) == -EINVAL &&
		      strstr(why, "/32"), "/32 named");
}

static void bridge_names(void)
{
	char a[16], b[16], c[16];

	kl_bridge_name("lab", a);
	CHECK(!strcmp(a, "kl-lab"), "short name gets kl- prefix: %s", a);
	kl_bridge_name("abcdefghijklmno", b);
	kl_bridge_name("abcdefghijklmnp", c);
	CHECK(strlen(b) <= 15 && strlen(c) <= 15, "long names fit: %s %s", b, c);
	CHECK(strcmp(b, c) != 0, "long names stay distinct");
	const char *why;
	CHECK(kl_name_check(b, &why) == 0, "derived name is valid");
}

static void overlap(void)
{
	CHECK(cidr_overlap(0x0a000001, 24, 0x0a0000fe, 24), "same /24");
	CHECK(cidr_overlap(0x0a000001, 24, 0x0a010203, 8), "inside a /8");
	CHECK(!cidr_overlap(0x0a000001, 24, 0x0a000101, 24), "neighbour /24");
	CHECK(!cidr_overlap(0xc0a83901, 24, 0x7f000001, 8), "loopback apart");
}

static void state_text(void)
{
	struct kl_state st = {.ino = 4026531840ull, .cookie = 77, .fwd_prev = 0};
	struct kl_state back;
	struct st_net n = {.made_bridge = true, .made_addr = true,
			   .made_nft = true};
	char *text = NULL;
	size_t len = 0;

	snprintf(n.cfg.name, sizeof(n.cfg.name), "lab");
	snprintf(n.cfg.bridge, sizeof(n.cfg.bridge), "kl-lab");
	snprintf(n.cfg.uplink, sizeof(n.cfg.uplink), "eth0");
	n.cfg.addr = 0xc0a83901;
	n.cfg.prefix = 24;
	n.cfg.nat = true;
	n.cfg.mtu = 9000;
	CHECK(state_add_tap(&n, "t0", 4) == 0, "tap recorded");
	CHECK(state_add_tap(&n, "t1", 1) == 0, "second tap recorded");
	CHECK(state_add_tap(&n, "t0", 2) == 0 && n.ntaps == 2,
	      "same tap again is not duplicated");
	st.nets = &n;
	st.nnets = 1;
	CHECK(state_format(&st, &text, &len) == 0 && len > 0, "state formatted");
	CHECK(state_parse(text, &back) == 0, "state parsed back");
	CHECK_EQ(back.nnets, 1, "one network");
	CHECK_EQ(back.cookie, 77, "cookie kept");
	CHECK_EQ(back.fwd_prev, 0, "forwarding's earlier value kept");
	if (back.nnets == 1) {
		struct st_net *b = &back.nets[0];
		CHECK(!strcmp(b->cfg.name, "lab") && !strcmp(b->cfg.bridge, "kl-lab") &&
			      !strcmp(b->cfg.uplink, "eth0"), "names kept");
		CHECK(b->cfg.addr == 0xc0a83901 && b->cfg.prefix == 24 &&
			      b->cfg.nat && b->cfg.mtu == 9000 && !b->cfg.stp,
		      "definition kept");
		CHECK(b->made_bridge && b->made_addr && b->made_nft, "made flags kept");
		CHECK(b->ntaps == 2 && !strcmp(b->taps[0].name, "t0") &&
			      b->taps[0].queues == 2, "taps kept");
	}
	state_free(&back);
	free(text);
	free(n.taps);

	CHECK(state_parse("garbage\n", &back) == -EBADMSG, "bad magic rejected");
	CHECK(state_parse("kvmlab-state 1\nnet name=a/b bridge=x cidr=10.0.0.1/24\n",
			  &back) == -EBADMSG, "bad name in state rejected");
	CHECK(state_parse("kvmlab-state 1\ntap nosuch t0 1\n", &back) == -EBADMSG,
	      "tap of unknown network rejected");
}

/* The N log N helpers tap add/del use at 1000 taps, and the state file's
 * duplicate tap lines merged on load (first position, last queue count). */
static void tap_lookups(void)
{
	const char *names[] = {"t3", "t1", "t2", "t1"};
	bool dup = false;
	CHECK(names_dup(names, 3, &dup) == 0 && !dup, "distinct names: no duplicate");
	CHECK(names_dup(names, 4, &dup) == 0 && dup, "t1 twice: duplicate found");

	struct kl_state st;
	CHECK(state_parse("kvmlab-state 1\nnetns 1 2\nfwd_prev -1\n"
			  "net name=a bridge=kl-a cidr=10.0.0.1/24\n"
			  "tap a x2 1\ntap a x1 1\ntap a x2 4\n", &st) == 0,
	      "state with a duplicate tap line parsed");
	if (st.nnets == 1) {
		struct st_net *n = &st.nets[0];
		CHECK(n->ntaps == 2 && !strcmp(n->taps[0].name, "x2") &&
			      n->taps[0].queues == 4 && !strcmp(n->taps[1].name, "x1"),
		      "duplicate merged: first position, last queue count");
	}
	char (*v)[KL_NAME_MAX + 1] = NULL;
	size_t nv = 0;
	CHECK(state_tap_names(&st, &v, &nv) == 0 && nv == 2, "recorded tap names listed");
	if (v) {
		CHECK(!sorted_dup(v, nv), "listed names hold no duplicate");
		CHECK(names_has(v, nv, "x1") && names_has(v, nv, "x2") &&
			      !names_has(v, nv, "x3"), "sorted lookup finds exactly x1, x2");
	}
	free(v);
	state_free(&st);
}

int main(void)
{
	names();
	cidrs();
	bridge_names();
	overlap();
	state_text();
	tap_lookups();
	return t_done();
}
