#!/usr/bin/env bash
# up repairs everything it owns: detached and down taps, a missing
# address, a deleted bridge (made again, taps back on it), its chains
# (deleted, emptied, of the wrong kind, policy drop), a dormant table;
# it leaves the objects of the table it does not own (leases and forwards:
# "leases" map and "fwd-*" chains) untouched, and warns about a drop
# policy in any forward chain but its own, another kvmlab network's too.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns repair
net_down_at_exit "$ns" lab
net_down_at_exit "$ns" lab2
UP=(up lab --cidr 10.95.0.1/24 --bridge klre --nat)
kn_expect "up lab --nat" 0 "$ns" "${UP[@]}"
kn_expect "tap add kr0 kr1 kr2" 0 "$ns" tap add kr0 kr1 kr2 --net lab --queues 2
# objects in kvmlab's table that up does not own
in_ns "$ns" nft -f - <<'EOF'
add map ip kvmlab-lab leases { type ether_addr : ipv4_addr; comment "vm a"; }
add element ip kvmlab-lab leases { 52:54:00:00:00:01 : 10.95.0.10 }
add chain ip kvmlab-lab fwd-pre { type nat hook prerouting priority dstnat; policy accept; }
add rule ip kvmlab-lab fwd-pre tcp dport 2222 dnat to 10.95.0.10:22
EOF
theirs() { in_ns "$ns" sh -c 'nft -j list map ip kvmlab-lab leases; nft -j list chain ip kvmlab-lab fwd-pre' |
	jq -S -c '.nftables | map(select(has("metainfo") | not))'; }
o0=$(theirs)
net_snap "$ns" "$KN_TMP/whole"
kn_expect "up of a whole network" 0 "$ns" "${UP[@]}"
net_snap "$ns" "$KN_TMP/whole2"
net_same "up of a whole network changes nothing (rule handles included)" "$KN_TMP/whole" "$KN_TMP/whole2"

# --- break what up owns, all at once
in_ns "$ns" ip link set kr0 nomaster
in_ns "$ns" ip link set kr1 down
in_ns "$ns" ip addr flush dev klre
in_ns "$ns" nft flush chain ip kvmlab-lab postrouting
in_ns "$ns" nft add chain ip kvmlab-lab forward '{ type filter hook forward priority 0; policy drop; }'
kn_expect "up after the damage exits 0" 0 "$ns" "${UP[@]}"
t_check "kr0 back on klre" test "$(link_json "$ns" kr0 | jq -r .master)" = klre
t_check "kr1 up again" test "$(link_json "$ns" kr1 | jq -r '.flags | index("UP") != null')" = true
t_check "address back on klre" test "$(count_addr "$ns" klre 10.95.0.1)" = 1
t_check "forward chain policy accept again" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab forward |
	jq -r '.nftables[] | select(.chain) | .chain.policy')" = accept
t_check "masquerade rule back" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab postrouting |
	jq '[.nftables[] | select(.rule) | select(any(.rule.expr[]; has("masquerade")))] | length')" = 1
t_check "not kvmlab-net's objects in the table untouched (map, fwd-pre)" test "$(theirs)" = "$o0"
net_snap "$ns" "$KN_TMP/fixed"
kn_expect "up once more" 0 "$ns" "${UP[@]}"
net_snap "$ns" "$KN_TMP/fixed2"
net_same "up after the repair changes nothing" "$KN_TMP/fixed" "$KN_TMP/fixed2"

# --- chains gone or of the wrong kind, table dormant
in_ns "$ns" nft delete chain ip kvmlab-lab postrouting
in_ns "$ns" nft delete chain ip kvmlab-lab forward
in_ns "$ns" nft add chain ip kvmlab-lab forward
in_ns "$ns" nft add table ip kvmlab-lab '{ flags dormant; }'
kn_expect "up with chains gone, a regular chain 'forward' and the table dormant" 0 "$ns" "${UP[@]}"
rs=$(in_ns "$ns" nft -j list table ip kvmlab-lab)
t_check "postrouting made again (nat, srcnat)" jq_true '[.nftables[] | select(.chain.name == "postrouting" and .chain.type == "nat" and .chain.prio == 100)] | length == 1' <<<"$rs"
t_check "forward is a base chain again (filter, forward hook)" jq_true '[.nftables[] | select(.chain.name == "forward" and .chain.hook == "forward")] | length == 1' <<<"$rs"
t_check "table awake" bash -c '! ip netns exec "$1" nft list table ip kvmlab-lab | grep -q dormant' _ "$ns"
t_check "not kvmlab-net's objects untouched again" test "$(theirs)" = "$o0"

# --- the bridge deleted: made again, tagged, the taps back on it
in_ns "$ns" ip link del klre
kn_expect "up after the bridge was deleted" 0 "$ns" "${UP[@]}"
t_check "klre tagged again" test "$(link_json "$ns" klre | jq -r .ifalias)" = kvmlab:lab
t_check "klre holds its address" test "$(count_addr "$ns" klre 10.95.0.1)" = 1
t_check "all three taps on the new klre and up" test "$(in_ns "$ns" ip -j link show master klre |
	jq '[.[] | select(.flags | index("UP"))] | length')" = 3

# --- drop policies: another kvmlab network's forward chain is warned about
kn_expect "up lab2 --nat" 0 "$ns" up lab2 --cidr 10.96.0.1/24 --bridge klre2 --nat
in_ns "$ns" nft add chain ip kvmlab-lab2 forward '{ type filter hook forward priority 0; policy drop; }'
kn_expect "up lab" 0 "$ns" "${UP[@]}"
t_check "up lab warns about kvmlab-lab2's drop policy" grep -q 'kvmlab-lab2 forward.*policy drop' <<<"$KN_ERR"
kn_expect "up lab2 repairs its own chain" 0 "$ns" up lab2 --cidr 10.96.0.1/24 --bridge klre2 --nat
t_check "up lab2: no warning about its own chain" bash -c '! grep -q "kvmlab-lab2" <<<"$1"' _ "$KN_ERR"
t_check "kvmlab-lab2 forward policy accept again" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab2 forward |
	jq -r '.nftables[] | select(.chain) | .chain.policy')" = accept

kn_expect "down lab2" 0 "$ns" down lab2
kn_expect "down lab (the whole table goes, map and fwd-pre too)" 0 "$ns" down lab
t_check "no table left" test "$(nft_table_count "$ns")" = 0
t_finish
