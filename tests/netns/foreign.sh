#!/usr/bin/env bash
# Devices that are not kvmlab's are never touched, even when they take a
# kvmlab name (or carry a forged tag on the wrong kind of device) between
# commands: tap add, tap del, up and down fail or warn clearly, and the
# foreign device stays exactly as it was.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns foreign
net_down_at_exit "$ns" lab
kn_expect "up lab" 0 "$ns" up lab --cidr 10.93.0.1/24 --bridge klfo --nat
kn_expect "tap add kf0 kf1" 0 "$ns" tap add kf0 kf1 --net lab

# --- a veth pair takes a kvmlab tap's name
in_ns "$ns" ip link del kf0
in_ns "$ns" ip link add kf0 type veth peer name kf0p
v0=$(link_json "$ns" kf0)
kn_expect "tap del kf0 (now a veth) exits 1" 1 "$ns" tap del kf0
err_one_line "tap del kf0: one line naming kf0" kf0
kn_expect "tap del kf0 kf1: all checked first, exits 1" 1 "$ns" tap del kf1 kf0
t_check "tap del kf1 kf0: kf1 not deleted either" link_exists "$ns" kf1
kn_expect "tap add kf0 (name taken by a veth) exits 1" 1 "$ns" tap add kf0 --net lab
err_one_line "tap add kf0: one line naming kf0" kf0
t_check "the veth kf0 is unchanged" test "$(link_json "$ns" kf0)" = "$v0"
t_check "its peer kf0p is there" link_exists "$ns" kf0p

# --- forged tags on the wrong kind of device (a veth pair) are not kvmlab's
in_ns "$ns" ip link add kfx type veth peer name kfy
in_ns "$ns" ip link set kfx alias kvmlab:lab:tap
in_ns "$ns" ip link set kfy alias kvmlab:lab
kn_expect "tap del kfx (a dummy with a tap tag) exits 1" 1 "$ns" tap del kfx
err_one_line "tap del kfx: one line naming kfx" kfx

# --- a foreign bridge takes the kvmlab bridge's name
in_ns "$ns" ip link del klfo
in_ns "$ns" ip link add klfo type bridge
in_ns "$ns" ip link set klfo up
b0=$(link_json "$ns" klfo | jq -c 'del(.linkinfo.info_data) | del(.operstate)')
net_snap "$ns" "$KN_TMP/u0"
kn_expect "up lab (bridge name taken by a foreign bridge) exits 1" 1 "$ns" up lab --cidr 10.93.0.1/24 --bridge klfo --nat
err_one_line "up lab: one line naming klfo" klfo
net_snap "$ns" "$KN_TMP/u1"
net_same "up lab refused: namespace unchanged (no address, tag or port on the foreign bridge)" "$KN_TMP/u0" "$KN_TMP/u1"
kn_expect "down lab with a foreign bridge of its name exits 0" 0 "$ns" down lab
t_check "down lab: warns about klfo" grep -q "klfo.*not kvmlab's" <<<"$KN_ERR"
t_check "down lab: the foreign bridge survives, unchanged" \
	test "$(link_json "$ns" klfo | jq -c 'del(.linkinfo.info_data) | del(.operstate)')" = "$b0"
t_check "down lab: the veth kf0 survives" link_exists "$ns" kf0
t_check "down lab: the veths with forged tags survive" bash -c 'ip netns exec "$1" ip link show kfx >/dev/null && ip netns exec "$1" ip link show kfy >/dev/null' _ "$ns"
t_check "down lab: kvmlab's own tap kf1 is gone" bash -c '! ip netns exec "$1" ip link show kf1 >/dev/null 2>&1' _ "$ns"
t_check "down lab: its table is gone" test "$(nft_table_count "$ns")" = 0

# --- a table named like a kvmlab table but not kvmlab's
in_ns "$ns" nft add table ip kvmlab-lab2
kn_expect "up lab2 with a foreign table ip kvmlab-lab2 exits 1" 1 "$ns" up lab2 --cidr 10.94.0.1/24 --bridge klfo2
err_one_line "up lab2: one line naming the table" kvmlab-lab2
kn_expect "down lab2 (only a foreign table of its name) exits 1" 1 "$ns" down lab2
t_check "the foreign table ip kvmlab-lab2 survives" test "$(nft_tables "$ns")" = "ip kvmlab-lab2"
in_ns "$ns" nft delete table ip kvmlab-lab2

# --- a hand-edited definition (fwd_prev 7) or a cut one is not read
in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
for c in "cidr=10.94.0.1/24 bridge=klfo3 nat=0 uplink=- mtu=0 stp=0 dns=- fwd_prev=7" \
	 "cidr=10.94.0.1/24 bridge=klfo3 nat=0 uplink=- mtu=0 stp=0"; do
	in_ns "$ns" nft add table ip kvmlab-lab3 "{ comment \"kvmlab network lab3: $c\"; }"
	kn_expect "up lab3 over a damaged definition exits 1 ($c)" 1 "$ns" up lab3 --cidr 10.94.0.1/24 --bridge klfo3
	err_one_line "up lab3: one line naming lab3" lab3
	kn_expect "down lab3 with a damaged definition exits 0" 0 "$ns" down lab3
	t_check "down lab3: warns that ip_forward is left alone" grep -q "ip_forward left" <<<"$KN_ERR"
	t_check "down lab3: ip_forward untouched (1)" test "$(ip_forward "$ns")" = 1
	t_check "down lab3: its table is gone" test "$(nft_table_count "$ns")" = 0
done
t_finish
