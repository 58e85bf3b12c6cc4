/* Lease allocation (net/lease.c): stable MACs and addresses, bad input,
 * exhaustion, reservations, stale reclaim; the element comment; owners'
 * start times from /proc/PID/stat text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "t.h"
#include "lease.h"

static struct kl_net_cfg net(const char *name, uint32_t addr, unsigned prefix)
{
	struct kl_net_cfg c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	snprintf(c.bridge, sizeof(c.bridge), "kl-%s", name);
	c.addr = addr;
	c.prefix = prefix;
	return c;
}

static void macs(void)
{
	uint8_t a[6], b[6], c[6], d[6];
	int bad = 0, same = 0;

	lease_mac("lab", "web", 0, a);
	lease_mac("lab", "web", 0, b);
	lease_mac("lab2", "web", 0, c);
	lease_mac("lab", "web", 1, d);
	CHECK(!memcmp(a, b, 6), "same network and VM: same MAC");
	CHECK(memcmp(a, c, 6) && memcmp(a, d, 6),
	      "another network or attempt: another MAC");
	/* Every derived MAC: locally administered, unicast, never zero. */
	for (int i = 0; i < 2000; i++) {
		char vm[16];
		const char *why;
		snprintf(vm, sizeof(vm), "vm%d", i);
		lease_mac("lab", vm, 0, a);
		bad += (a[0] & 3) != 2 || lease_check_mac(a, &why) != 0;
		same += !memcmp(a, b, 6);
	}
	CHECK_EQ(bad, 0, "2000 derived MACs are local unicast");
	CHECK_EQ(same, 0, "and differ from web's");
	/* Known answer: a change of hash would move every guest's MAC. */
	lease_mac("lab", "web", 0, a);
	CHECK(a[0] == 0xa6 && a[1] == 0x31 && a[5] == 0xac,
	      "known MAC for lab/web: %02x:%02x:..:%02x", a[0], a[1], a[5]);
	/* "ab"+"c" and "a"+"bc" must not meet */
	lease_mac("ab", "c", 0, a);
	lease_mac("a", "bc", 0, b);
	CHECK(memcmp(a, b, 6), "name boundaries are part of the hash");
}

static void checks(void)
{
	struct kl_net_cfg c = net("lab", 0x0a000001, 24), p31;
	const uint8_t zero[6] = {0}, mc[6] = {0x01, 0, 0x5e, 0, 0, 1};
	const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	const uint8_t ok[6] = {0x02, 0, 0, 0, 0, 1};
	const char *why = NULL;

	CHECK(lease_check_mac(zero, &why) == -EINVAL && strstr(why, "zero"),
	      "all-zero MAC refused: %s", why);
	CHECK(lease_check_mac(mc, &why) == -EINVAL && strstr(why, "multicast"),
	      "multicast MAC refused");
	CHECK(lease_check_mac(bc, &why) == -EINVAL, "broadcast MAC refused");
	CHECK(lease_check_mac(ok, &why) == 0, "02:00:00:00:00:01 is fine");
	CHECK(lease_check_addr(&c, 0x0a000101, &why) == -EINVAL &&
		      strstr(why, "outside"), "10.0.1.1 is outside 10.0.0.0/24");
	CHECK(lease_check_addr(&c, 0x0a000001, &why) == -EINVAL &&
		      strstr(why, "bridge"), "the bridge's own address: %s", why);
	CHECK(lease_check_addr(&c, 0x0a000000, &why) == -EINVAL &&
		      strstr(why, "network address"), "the network address");
	CHECK(lease_check_addr(&c, 0x0a0000ff, &why) == -EINVAL &&
		      strstr(why, "broadcast"), "the broadcast address");
	CHECK(lease_check_addr(&c, 0x0a000002, &why) == 0 &&
		      lease_check_addr(&c, 0x0a0000fe, &why) == 0,
	      ".2 and .254 are fine");
	p31 = net("p", 0x0a000000, 31);
	CHECK(lease_check_addr(&p31, 0x0a000001, &why) == 0,
	      "/31: the other address is a host (RFC 3021)");
	const char *vmwhy;
	CHECK(kl_vm_name_check("web-1.a_b", &vmwhy) == 0, "VM name web-1.a_b");
	CHECK(kl_vm_name_check("", &vmwhy) && kl_vm_name_check("a b", &vmwhy) &&
		      kl_vm_name_check("a\"b", &vmwhy) &&
		      kl_vm_name_check("a%d", &vmwhy) &&
		      kl_vm_name_check("..", &vmwhy) &&
		      kl_vm_name_check("\xc3\xa9", &vmwhy),
	      "bad VM names refused");
	char longname[65];
	memset(longname, 'a', 64);
	longname[64] = 0;
	CHECK(kl_vm_name_check(longname, &vmwhy) == -EINVAL, "64 bytes: too long");
	longname[63] = 0;
	CHECK(kl_vm_name_check(longname, &vmwhy) == 0, "63 bytes: fine");
}

static int take(const struct kl_net_cfg *c, struct lease_tab *t,
		const char *vm, pid_t pid, struct kl_lease *l)
{
	const char *why;

	return lease_plan_take(c, t, vm, pid, 1000 + (uint64_t)pid, l, &why);
}

/* Owner pid dies: what the caller's liveness check would say. */
static void kill_owner(struct lease_tab *t, const char *vm)
{
	struct kl_lease *l = lease_find_vm(t, vm);

	if (l)
		l->state = lease_state_of(l, false);
}

static void allocation(void)
{
	struct kl_net_cfg c = net("lab", 0x0a000001, 24);
	struct lease_tab t = {0}, t2 = {0};
	struct kl_lease a, b, a2;
	const char *why = "";

	CHECK(take(&c, &t, "web", 10, &a) == 0, "web takes a lease");
	CHECK(lease_check_addr(&c, a.addr, &why) == 0 && a.state == KL_LEASE_ACTIVE
	      && a.pid == 10 && !a.reserved, "in the pool, active, owner 10");
	CHECK(take(&c, &t2, "web", 99, &a2) == 0 && a2.addr == a.addr &&
		      !memcmp(a2.mac, a.mac, 6),
	      "stable: the same address and MAC in another run");
	lease_tab_free(&t2);
	CHECK(take(&c, &t, "web", 10, &a2) == 0 && t.n == 1,
	      "the same owner again: no change");
	CHECK(take(&c, &t, "web", 11, &a2) == -EEXIST,
	      "another live owner of web: -EEXIST");
	CHECK(take(&c, &t, "db", 12, &b) == 0 && b.addr != a.addr &&
		      memcmp(b.mac, a.mac, 6), "db gets another address and MAC");
	CHECK(lease_plan_release(&t, "web", &why) == 0 && t.n == 1,
	      "release drops a dynamic lease");
	CHECK(take(&c, &t, "web", 13, &a2) == 0 && a2.addr == a.addr,
	      "web comes back to its address");
	CHECK(lease_plan_release(&t, "nope", &why) == -ENOENT, "release of no lease");
	/* a restarted VM (its old owner dead) keeps its address */
	kill_owner(&t, "web");
	CHECK(lease_find_vm(&t, "web")->state == KL_LEASE_STALE, "dead owner: stale");
	CHECK(take(&c, &t, "web", 14, &a2) == 0 && a2.addr == a.addr && t.n == 2,
	      "a restarted web retakes its own stale lease");
	lease_tab_free(&t);
}

static void collision(void)
{
	struct kl_net_cfg c = net("lab", 0x0a000001, 24);
	struct lease_tab t = {0};
	struct kl_lease a, b;
	const char *why;

	/* Someone reserves web's own address and MAC: web probes on. */
	CHECK(take(&c, &t, "web", 10, &a) == 0, "web's slot");
	CHECK(lease_plan_del(&t, "web", &why) == 0 && t.n == 0, "del");
	CHECK(lease_plan_add(&c, &t, "other", a.mac, a.addr, &b, &why) == 0,
	      "other reserves web's MAC and address");
	CHECK(take(&c, &t, "web", 10, &b) == 0 && b.addr == a.addr + 1 &&
		      memcmp(b.mac, a.mac, 6),
	      "web probes to the next address and another MAC");
	lease_tab_free(&t);
}

static void exhaustion(void)
{
	/* /29: .1 bridge, .2-.6 five guests */
	struct kl_net_cfg c = net("small", 0xc0a80001, 29);
	struct lease_tab t = {0};
	struct kl_lease l;
	const char *why = "";
	uint32_t seen = 0;
	int ok = 0;

	for (int i = 0; i < 5; i++) {
		char vm[8];
		snprintf(vm, sizeof(vm), "v%d", i);
		if (take(&c, &t, vm, 100 + i, &l) == 0 && l.addr >= 0xc0a80002 &&
		    l.addr <= 0xc0a80006)
			ok++, seen |= 1u << (l.addr & 7);
	}
	CHECK_EQ(ok, 5, "five guests fit a /29");
	CHECK_EQ(seen, 0x7c, "each of .2-.6 once");
	CHECK(lease_plan_take(&c, &t, "v5", 200, 1, &l, &why) == -ENOSPC &&
		      strstr(why, "no free address"), "the sixth: -ENOSPC (%s)", why);
	CHECK(lease_plan_add(&c, &t, "r", NULL, 0, &l, &why) == -ENOSPC,
	      "a reservation too");
	/* an owner dies: its lease is reclaimed by the next allocation */
	kill_owner(&t, "v2");
	uint32_t freed = lease_find_vm(&t, "v2")->addr;
	CHECK(take(&c, &t, "v5", 200, &l) == 0 && l.addr == freed,
	      "stale v2 reclaimed for v5 (%08x)", l.addr);
	CHECK(!lease_find_vm(&t, "v2") && t.n == 5, "v2 gone");
	lease_tab_free(&t);
}

static void reservations(void)
{
	struct kl_net_cfg c = net("lab", 0x0a000001, 24);
	struct lease_tab t = {0};
	struct kl_lease l, r;
	const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x33};
	const uint8_t mc[6] = {0x03, 0, 0, 0, 0, 0x33};
	const char *why = "";

	CHECK(lease_plan_add(&c, &t, "db", mac, 0x0a000032, &r, &why) == 0 &&
		      r.reserved && r.state == KL_LEASE_RESERVED && !r.pid,
	      "db reserved at 10.0.0.50");
	CHECK(lease_plan_add(&c, &t, "db", NULL, 0, &l, &why) == -EEXIST &&
		      strstr(why, "VM"), "db again: -EEXIST (%s)", why);
	CHECK(lease_plan_add(&c, &t, "x", mac, 0, &l, &why) == -EEXIST &&
		      strstr(why, "MAC"), "db's MAC: -EEXIST (%s)", why);
	CHECK(lease_plan_add(&c, &t, "x", NULL, 0x0a000032, &l, &why) == -EEXIST &&
		      strstr(why, "address"), "db's address: -EEXIST (%s)", why);
	CHECK(lease_plan_add(&c, &t, "x", mc, 0, &l, &why) == -EINVAL,
	      "multicast MAC: -EINVAL");
	CHECK(lease_plan_add(&c, &t, "x", NULL, 0x0a0000ff, &l, &why) == -EINVAL,
	      "broadcast address: -EINVAL");
	CHECK(lease_plan_add(&c, &t, "x", NULL, 0x0b000005, &l, &why) == -EINVAL,
	      "outside: -EINVAL");
	CHECK_EQ(t.n, 1, "failures changed nothing");
	/* taking a reservation: same MAC and address, an owner */
	CHECK(take(&c, &t, "db", 20, &l) == 0 && l.addr == 0x0a000032 &&
		      !memcmp(l.mac, mac, 6) && l.pid == 20 && l.reserved,
	      "db's VMM takes the reservation as is");
	CHECK(lease_plan_release(&t, "db", &why) == 0 && t.n == 1 &&
		      t.v[0].pid == 0 && t.v[0].reserved,
	      "release keeps the reservation, without owner");
	/* a dead owner of a reservation: cleared, never reclaimed */
	CHECK(take(&c, &t, "db", 21, &l) == 0, "taken again");
	kill_owner(&t, "db");
	CHECK(lease_find_vm(&t, "db")->state == KL_LEASE_RESERVED,
	      "owner dead: still reserved");
	CHECK(take(&c, &t, "web", 22, &l) == 0 && lease_find_vm(&t, "db") &&
		      lease_find_vm(&t, "db")->pid == 0,
	      "next allocation keeps db, clears its dead owner");
	CHECK(lease_plan_del(&t, "db", &why) == 0 && !lease_find_vm(&t, "db"),
	      "lease del removes a reservation");
	CHECK(lease_plan_del(&t, "db", &why) == -ENOENT, "twice: -ENOENT");
	/* a stale lease of the same VM gives way to a reservation */
	kill_owner(&t, "web");
	CHECK(lease_plan_add(&c, &t, "web", NULL, 0, &l, &why) == 0 &&
		      l.reserved && t.n == 1, "stale web replaced by a reservation");
	lease_tab_free(&t);
}

static void comments(void)
{
	struct kl_lease l = {.vm = "web", .pid = 123, .start = 456789}, p;
	char buf[128];

	CHECK(lease_comment(&l, buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "vm=web owner=123/456789"), "comment: %s", buf);
	memset(&p, 0, sizeof(p));
	CHECK(lease_comment_parse(buf, &p) == 0 && !strcmp(p.vm, "web") &&
		      p.pid == 123 && p.start == 456789 && !p.reserved,
	      "parsed back");
	l.reserved = true;
	l.pid = 0;
	l.start = 0;
	CHECK(lease_comment(&l, buf, sizeof(buf)) == 0 &&
		      lease_comment_parse(buf, &p) == 0 && p.reserved && !p.pid,
	      "reserved: %s", buf);
	/* the longest: a 63-byte name, 10-digit pid, 20-digit start */
	memset(l.vm, 'v', 63);
	l.vm[63] = 0;
	l.pid = 2147483647;
	l.start = UINT64_MAX;
	CHECK(lease_comment(&l, buf, 128) == 0 && lease_comment_parse(buf, &p) == 0
	      && p.start == UINT64_MAX, "the longest comment fits (%zu bytes)",
	      strlen(buf));
	const char *bad[] = {"", "vm=web", "vm=web owner=1", "vm=w\"b owner=1/2",
			     "vm=web owner=1/2 reservedx", "vm=web owner=-1/2",
			     "vm=web owner=1/2 x",
			     "vm=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa owner=1/2"};
	int rejected = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejected += lease_comment_parse(bad[i], &p) == -EBADMSG;
	CHECK_EQ(rejected, (int)(sizeof(bad) / sizeof(bad[0])),
	      "malformed comments refused");
}

static void proc(void)
{
	uint64_t s = 0;
	const char *st = "1234 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 "
			 "17 18 987654321 20 21";

	CHECK(proc_stat_start(st, &s) == 0 && s == 987654321,
	      "field 22 after a command with ') ' in it: %llu",
	      (unsigned long long)s);
	CHECK(proc_stat_start("1 (x) S 1 2", &s) == -EBADMSG, "truncated stat");
	CHECK(proc_stat_start("garbage", &s) == -EBADMSG, "no command");
	CHECK(proc_start(getpid(), &s) == 0 && s > 0, "our own start time");
	CHECK(proc_owner_alive(getpid(), s), "we are alive");
	CHECK(!proc_owner_alive(getpid(), s + 1), "another start time: not us");
	CHECK(!proc_owner_alive(0, 0), "pid 0 is nobody");
}

int main(void)
{
	macs();
	checks();
	allocation();
	collision();
	exhaustion();
	reservations();
	comments();
	proc();
	return t_done();
}
