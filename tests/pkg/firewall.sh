#!/usr/bin/env bash
# What kvmlab-net(8) FIREWALLS says, run as written: traffic between two
# kvmlab networks is forwarded (both with --nat, so each has its forward
# chain), and the documented lab-isolation rules, copied from the man
# page's source, stop it while each lab still reaches its own bridge.
# Two "guests" are namespaces on veth ports of the bridges; ping (busybox)
# is the observer.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
NET=$KVMLAB_NET
[ "$(id -u)" = 0 ] || { t_skip "firewall" "need root"; t_finish; }
[ -x "$NET" ] || { t_fail "kvmlab-net built"; t_finish; }
# pingq NS ADDR: one ping from NS, quietly
pingq() { ip netns exec "$1" busybox ping -c 1 -W 2 "$2" >/dev/null 2>&1; }
d=$(mktemp -d /tmp/kvmlab-pkgfw.XXXXXX)
t_defer "rm -rf '$d'"
export KVMLAB_STATE_DIR=$d

# the isolation commands from the man page: the code block naming lab-isolation
rules=$(awk '/^```/ { if (blk ~ /lab-isolation/) printf "%s", blk; blk = ""; inb = !inb; next }
	inb { blk = blk $0 "\n" }' doc/kvmlab-net.8.scd | sed -e ':a' -e '/\\\\$/{N;s/\\\\\n *//;ba' -e '}')
t_check "the man page has the isolation rules ($(grep -c . <<<"$rules") commands)" \
	test "$(grep -c '^nft ' <<<"$rules")" -ge 3

t_netns_new r pkgfwr && t_netns_new g1 pkgfw1 && t_netns_new g2 pkgfw2 || { t_fail "netns"; t_finish; }
for n in "$r" "$g1" "$g2"; do
	ip netns exec "$n" ip link set lo up
	ip netns exec "$n" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-ip*tables; do [ -w $f ] && echo 0 >$f; done; true'
done
t_defer "ip netns exec $r $NET down fwa; ip netns exec $r $NET down fwb"
ip netns exec "$r" "$NET" up fwa --cidr 10.91.0.1/24 --nat >/dev/null &&
	ip netns exec "$r" "$NET" up fwb --cidr 10.92.0.1/24 --nat >/dev/null
t_check "two kvmlab networks with --nat" test $? = 0
guest() { # guest NS NET ADDR GW
	ip link add "g-$2" netns "$r" type veth peer name eth0 netns "$1" &&
		ip netns exec "$r" ip link set "g-$2" master "kl-$2" up &&
		ip netns exec "$1" ip addr add "$3" dev eth0 &&
		ip netns exec "$1" ip link set eth0 up &&
		ip netns exec "$1" ip route add default via "$4"
}
guest "$g1" fwa 10.91.0.2/24 10.91.0.1 && guest "$g2" fwb 10.92.0.2/24 10.92.0.1
t_check "a guest on each network" test $? = 0

t_check "guest 1 reaches its bridge" pingq "$g1" 10.91.0.1
t_check "networks see each other: guest 1 -> guest 2 is forwarded" pingq "$g1" 10.92.0.2

while IFS= read -r c; do
	[ -n "$c" ] || continue
	eval "ip netns exec $r $c" || t_fail "documented rule runs: $c"
done <<<"$rules"
t_check "documented rules made table inet lab-isolation (nft -j)" bash -c \
	"ip netns exec $r nft -j list table inet lab-isolation | jq -e '[.nftables[].rule? // empty] | length == 1' >/dev/null"
t_check "isolated: guest 1 -> guest 2 dropped" bash -c "! ip netns exec $g1 busybox ping -c 1 -W 2 10.92.0.2 >/dev/null 2>&1"
t_check "isolated: guest 2 -> guest 1 dropped" bash -c "! ip netns exec $g2 busybox ping -c 1 -W 2 10.91.0.2 >/dev/null 2>&1"
t_check "isolated: guest 1 still reaches its bridge" pingq "$g1" 10.91.0.1
ip netns exec "$r" nft delete table inet lab-isolation
t_check "rules removed: forwarded again" pingq "$g1" 10.92.0.2
t_finish
