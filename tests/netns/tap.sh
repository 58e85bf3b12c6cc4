#!/usr/bin/env bash
# kvmlab-net tap add / tap del: persistent taps with vnet_hdr, queues,
# owner and group, enslaved to the network's bridge with its MTU, up;
# many taps in one call; an unprivileged owner can open the tap.
# Oracles: ip -j -d link (tun info_data), /sys/class/net/*/{owner,group}.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns tap
net_snap "$ns" "$KN_TMP/s0"
net_down_at_exit "$ns" lab
kn_expect "up lab --mtu 4000 exits 0" 0 "$ns" up lab --cidr 10.70.0.1/24 --bridge kltbr --mtu 4000

owner=nobody; oid=$(id -u nobody)
group=$(getent group 100 | cut -d: -f1); gid=100
kn_expect "tap add kt0 --owner $owner --group $group --queues 4 exits 0" 0 \
	"$ns" tap add kt0 --net lab --owner "$owner" --group "$group" --queues 4
j=$(link_json "$ns" kt0)
d() { jq -r "$1" <<<"$j"; }
t_check "kt0: kind tun" test "$(d .linkinfo.info_kind)" = tun
t_check "kt0: type tap" test "$(d .linkinfo.info_data.type)" = tap
t_check "kt0: pi false" test "$(d .linkinfo.info_data.pi)" = false
t_check "kt0: vnet_hdr true" test "$(d .linkinfo.info_data.vnet_hdr)" = true
t_check "kt0: multi_queue true" test "$(d .linkinfo.info_data.multi_queue)" = true
t_check "kt0: persist true" test "$(d .linkinfo.info_data.persist)" = true
t_check "kt0: user $owner" test "$(d .linkinfo.info_data.user)" = "$owner"
t_check "kt0: group $group" test "$(d .linkinfo.info_data.group)" = "$group"
t_check "kt0: /sys owner is $oid" test "$(in_ns "$ns" cat /sys/class/net/kt0/owner)" = "$oid"
t_check "kt0: /sys group is $gid" test "$(in_ns "$ns" cat /sys/class/net/kt0/group)" = "$gid"
t_check "kt0: master kltbr" test "$(d .master)" = kltbr
t_check "kt0: mtu 4000 (the bridge's)" test "$(d .mtu)" = 4000
t_check "kt0: admin up" test "$(d '.flags | index("UP") != null')" = true
t_check "kltbr keeps mtu 4000" test "$(link_json "$ns" kltbr | jq -r .mtu)" = 4000

# The point of owner/group: an unprivileged VMM attaches queues itself.
# /dev/net/tun may be root-only on a host, so open it as root, then drop to
# the user (no capabilities left, checked) and TUNSETIFF(IFF_TAP|IFF_NO_PI|
# IFF_VNET_HDR|IFF_MULTI_QUEUE): the kernel allows it only for owner+group.
opentap='my ($dev, $uid, $gid) = @ARGV;
	open(my $f, "+<", "/dev/net/tun") or die "open: $!\n";
	$) = "$gid $gid"; $( = $gid; $> = $uid; $< = $uid;
	die "still uid 0\n" if $< == 0 || $> == 0;
	open(my $s, "<", "/proc/self/status") or die; my ($c) = grep { /^CapEff:/ } <$s>;
	die "caps left: $c" unless $c =~ /^CapEff:\s+0+$/;
	my $r = pack("Z16 s x22", $dev, 0x0002|0x1000|0x4000|0x0100);
	ioctl($f, 0x400454ca, $r) or die "TUNSETIFF: $!\n"; print "attached\n";'
out=$(in_ns "$ns" perl -e "$opentap" kt0 "$oid" "$gid" 2>&1)
if [ "$out" = attached ]; then t_ok "kt0: owner+group without caps attaches a queue"
else t_fail "kt0: owner+group without caps attaches a queue" "$out"; fi
out=$(in_ns "$ns" perl -e "$opentap" kt0 1000 1000 2>&1)
if [ "$out" != attached ]; then t_ok "kt0: another user cannot attach ($out)"
else t_fail "kt0: another user cannot attach" "it could"; fi

# defaults: one queue, no owner
kn_expect "tap add kt1 (defaults) exits 0" 0 "$ns" tap add kt1 --net lab
j=$(link_json "$ns" kt1)
t_check "kt1: multi_queue false" test "$(d .linkinfo.info_data.multi_queue)" = false
t_check "kt1: vnet_hdr true" test "$(d .linkinfo.info_data.vnet_hdr)" = true
t_check "kt1: master kltbr, mtu 4000, up" test "$(d '[.master, .mtu, (.flags | index("UP") != null)] | @tsv')" = "kltbr	4000	true"

# --queues 256 is the upper bound and accepted
kn_expect "tap add kt2 --queues 256 exits 0" 0 "$ns" tap add kt2 --net lab --queues 256
t_check "kt2: multi_queue true" test "$(link_json "$ns" kt2 | jq -r .linkinfo.info_data.multi_queue)" = true

# tap del
kn_expect "tap del kt1 kt2 exits 0" 0 "$ns" tap del kt1 kt2
t_check "tap del: kt1 gone" bash -c '! ip netns exec "$1" ip link show dev kt1 >/dev/null 2>&1' _ "$ns"
t_check "tap del: kt2 gone" bash -c '! ip netns exec "$1" ip link show dev kt2 >/dev/null 2>&1' _ "$ns"
t_check "tap del: kt0 still there" link_exists "$ns" kt0

# many taps in one call
names=(); for i in $(seq 0 63); do names+=("km$i"); done
kn_expect "tap add 64 taps in one call exits 0" 0 "$ns" tap add "${names[@]}" --net lab --owner "$owner"
n=$(in_ns "$ns" ip -j -d link show master kltbr | jq '[.[] | select(.ifname | startswith("km")) |
	select(.linkinfo.info_data.type == "tap" and .mtu == 4000 and .linkinfo.info_data.user == "nobody" and
	       .linkinfo.info_data.vnet_hdr and (.flags | index("UP") != null))] | length')
t_check "64 taps: all enslaved, tap, vnet_hdr, mtu 4000, owned, up ($n)" test "$n" = 64
# show --json must agree with the kernel about which taps hang on the bridge
kn_expect "show lab --json exits 0" 0 "$ns" show lab --json
shown=$(jq -r '[.. | objects | select(has("taps")) | .taps[] | (.name? // .)] | sort | join(" ")' <<<"$KN_OUT" 2>/dev/null)
kern=$(in_ns "$ns" ip -j link show master kltbr | jq -r '[.[].ifname] | sort | join(" ")')
t_check "show --json taps equal ip -j's ports of kltbr (${#kern} chars)" test "$shown" = "$kern"
kn_expect "tap del 32 of them in one call exits 0" 0 "$ns" tap del "${names[@]:0:32}"
n=$(in_ns "$ns" ip -j link show master kltbr | jq '[.[] | select(.ifname | startswith("km"))] | length')
t_check "32 taps remain ($n)" test "$n" = 32

# tap add into a network that does not exist
net_snap "$ns" "$KN_TMP/s1"
kn_expect "tap add --net nosuch exits 1" 1 "$ns" tap add kt9 --net nosuch
err_one_line "tap add --net nosuch: one line naming nosuch" nosuch
net_snap "$ns" "$KN_TMP/s2"
net_same "tap add --net nosuch: namespace unchanged" "$KN_TMP/s1" "$KN_TMP/s2"

# down removes the network's taps too, and only those
in_ns "$ns" ip tuntap add footap mode tap
kn_expect "down lab exits 0" 0 "$ns" down lab
t_check "down: no km* or kt0 tap left" test "$(in_ns "$ns" ip -j link | jq '[.[] | select(.ifname | test("^(km|kt)"))] | length')" = 0
t_check "down: a tap kvmlab did not make is kept" link_exists "$ns" footap
in_ns "$ns" ip link del footap
net_snap "$ns" "$KN_TMP/s3"
net_same "down: namespace back to its earlier state" "$KN_TMP/s0" "$KN_TMP/s3"

t_finish
