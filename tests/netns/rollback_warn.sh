#!/usr/bin/env bash
# Rollback on an injected failure (KVMLAB_NET_FAULT=nft|tap, see net/net.h)
# leaves the namespace exactly as before; a foreign nft table is never
# touched and its drop policy is warned about; br_netfilter with
# bridge-nf-call-iptables=1 is warned about; neither warning fails.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns rb

# --- nft batch rejected: the table is the first thing up makes, so
# nothing else has been made yet
net_snap "$ns" "$KN_TMP/s0"
net_down_at_exit "$ns" lab
KVMLAB_NET_FAULT=nft kn_expect "up --nat with the nft fault exits 1" 1 "$ns" up lab --cidr 10.50.0.1/24 --bridge klrb --nat
t_check "nft fault: one stderr line" test "$(printf '%s' "$KN_ERR" | grep -c '')" = 1
net_snap "$ns" "$KN_TMP/s1"
net_same "nft fault: namespace exactly as before (no bridge, address, rules, forwarding)" "$KN_TMP/s0" "$KN_TMP/s1"
t_check "nft fault: no nft table left" test "$(nft_table_count "$ns")" = 0
# --- a failure after table, bridge, address and forwarding are in place
KVMLAB_NET_FAULT=up kn_expect "up --nat with a failure at its end exits 1" 1 "$ns" up lab --cidr 10.50.0.1/24 --bridge klrb --nat
err_one_line "late failure: one line naming lab" lab
net_snap "$ns" "$KN_TMP/s1"
net_same "late failure: namespace exactly as before (table, bridge, address, forwarding undone)" "$KN_TMP/s0" "$KN_TMP/s1"
kn_expect "nft fault: the same up without the fault then works" 0 "$ns" up lab --cidr 10.50.0.1/24 --bridge klrb --nat

# --- the fault on a second up of an existing network keeps the network
net_snap "$ns" "$KN_TMP/s2"
KVMLAB_NET_FAULT=nft kn "$ns" up lab --cidr 10.50.0.1/24 --bridge klrb --nat
net_snap "$ns" "$KN_TMP/s3"
net_same "nft fault on a repeated up (rc=$KN_RC): existing network untouched" "$KN_TMP/s2" "$KN_TMP/s3"

# --- tap add failing after the last tap was created: all taps go again
kn_expect "tap add kt0 exits 0" 0 "$ns" tap add kt0 --net lab
net_snap "$ns" "$KN_TMP/t0"
KVMLAB_NET_FAULT=tap kn_expect "tap add with the tap fault exits 1" 1 "$ns" tap add kt1 kt2 kt3 --net lab --owner nobody --queues 2
net_snap "$ns" "$KN_TMP/t1"
net_same "tap fault: namespace exactly as before (no kt1..kt3, kt0 kept)" "$KN_TMP/t0" "$KN_TMP/t1"
kn_expect "down lab exits 0" 0 "$ns" down lab
net_snap "$ns" "$KN_TMP/s4"
net_same "down after faults: namespace back to its first state" "$KN_TMP/s0" "$KN_TMP/s4"

# --- a foreign table with a dropping forward chain
in_ns "$ns" nft -f - <<'EOF'
table inet foreign {
	comment "not kvmlab's"
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
	}
	chain post {
		type nat hook postrouting priority 100;
		oifname "nosuch0" masquerade
	}
}
EOF
foreign() { in_ns "$ns" nft -j list table inet foreign | jq -S '.nftables | map(select(has("metainfo") | not))'; }
f0=$(foreign)
net_down_at_exit "$ns" fw
kn_expect "up --nat beside a foreign drop policy exits 0" 0 "$ns" up fw --cidr 10.51.0.1/24 --bridge klfw --nat
t_check "foreign drop policy: a warning naming the table" grep -q 'foreign' <<<"$KN_ERR"
t_check "foreign table untouched by up" test "$(foreign)" = "$f0"
kn_expect "down fw exits 0" 0 "$ns" down fw
t_check "foreign table untouched by down" test "$(foreign)" = "$f0"
t_check "only the foreign table remains" test "$(nft_tables "$ns")" = "inet foreign"
in_ns "$ns" nft delete table inet foreign

# --- a foreign accepting forward chain: no such warning
in_ns "$ns" nft -f - <<'EOF'
table ip friendly {
	chain forward { type filter hook forward priority 0; policy accept; }
}
EOF
net_down_at_exit "$ns" fw
kn_expect "up --nat beside an accepting foreign chain exits 0" 0 "$ns" up fw --cidr 10.51.0.1/24 --bridge klfw --nat
t_check "accepting foreign chain, bridge-nf off: stderr empty" test -z "$KN_ERR"
kn_expect "down fw exits 0" 0 "$ns" down fw
in_ns "$ns" nft delete table ip friendly

# --- br_netfilter: bridged traffic also runs through iptables/nft hooks
if in_ns "$ns" test -w /proc/sys/net/bridge/bridge-nf-call-iptables; then
	in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables'
	net_down_at_exit "$ns" bn
	kn_expect "up with bridge-nf-call-iptables=1 exits 0" 0 "$ns" up bn --cidr 10.52.0.1/24 --bridge klbn --nat
	t_check "br_netfilter: a warning" grep -qiE 'br_netfilter|bridge-nf-call-iptables' <<<"$KN_ERR"
	kn_expect "down bn exits 0" 0 "$ns" down bn
	in_ns "$ns" sh -c 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables'
else
	t_skip "br_netfilter warning" "no br_netfilter in this kernel"
fi
t_finish
