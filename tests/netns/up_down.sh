#!/usr/bin/env bash
# kvmlab-net up / show / down, an idempotent second up, down restoring the
# namespace exactly, --nat objects, --mtu/--stp, the derived bridge name,
# the forwarding sysctl's bookkeeping, and --dry-run.
# Oracles: ip -j, nft -j, /proc/sys/net/ipv4/ip_forward.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns updown
net_snap "$ns" "$KN_TMP/s0"

# --- up, checked against ip -j
net_down_at_exit "$ns" lab
kn_expect "up lab exits 0" 0 "$ns" up lab --cidr 10.77.0.1/24 --bridge klbr0
br=$(link_json "$ns" klbr0)
t_check "up: klbr0 is a bridge" test "$(jq -r '.linkinfo.info_kind' <<<"$br")" = bridge
t_check "up: klbr0 is up" jq_true '.flags | index("UP")' <<<"$br"
t_check "up: klbr0 holds 10.77.0.1/24 once" test "$(in_ns "$ns" ip -j addr show dev klbr0 |
	jq '[.[].addr_info[] | select(.family == "inet" and .local == "10.77.0.1" and .prefixlen == 24)] | length')" = 1
t_check "up: ip_forward is 1" test "$(ip_forward "$ns")" = 1
t_check "up: connected route 10.77.0.0/24 on klbr0" \
	test "$(in_ns "$ns" ip -j route show 10.77.0.0/24 | jq -r '.[0].dev')" = klbr0
t_check "up: the bridge carries the tag kvmlab:lab" test "$(jq -r .ifalias <<<"$br")" = kvmlab:lab
t_check "up: table ip kvmlab-lab holds the definition (nft's text form: -j has no table comments)" \
	bash -c 'ip netns exec "$1" nft list table ip kvmlab-lab | grep -qF "comment \"kvmlab network lab: cidr=10.77.0.1/24 bridge=klbr0 nat=0 "' _ "$ns"

# --- show, compared with what ip -j says
kn_expect "show lab exits 0" 0 "$ns" show lab
t_check "show: names the bridge and address" \
	bash -c 'grep -q klbr0 <<<"$1" && grep -q 10.77.0.1 <<<"$1"' _ "$KN_OUT"
kn_expect "show exits 0" 0 "$ns" show
t_check "show (all): lists lab" grep -q lab <<<"$KN_OUT"
kn_expect "show lab --json exits 0" 0 "$ns" show lab --json
t_check "show --json: valid JSON" jq_true . <<<"$KN_OUT"
t_check "show --json: bridge and address match ip -j" jq_true '
	[.. | strings] as $s | ($s | index("klbr0")) != null and
	([$s[] | select(test("^10\\.77\\.0\\.1(/24)?$"))] | length) > 0' <<<"$KN_OUT"

# --- a second up changes nothing at all
net_snap "$ns" "$KN_TMP/s1"
kn_expect "second up exits 0" 0 "$ns" up lab --cidr 10.77.0.1/24 --bridge klbr0
net_snap "$ns" "$KN_TMP/s2"
net_same "second up: namespace identical (no duplicate address/rule)" "$KN_TMP/s1" "$KN_TMP/s2"

# --- the same name with another definition: a clear error, nothing changed
kn_expect "up lab with a different cidr exits 1" 1 "$ns" up lab --cidr 10.78.0.1/24 --bridge klbr0
err_one_line "up lab different cidr: one line naming lab" lab
net_snap "$ns" "$KN_TMP/s3"
net_same "up lab different cidr: namespace unchanged" "$KN_TMP/s1" "$KN_TMP/s3"

# --- down restores the namespace exactly
kn_expect "down lab exits 0" 0 "$ns" down lab
net_snap "$ns" "$KN_TMP/s4"
net_same "down: namespace back to its earlier state" "$KN_TMP/s0" "$KN_TMP/s4"
kn "$ns" down lab
t_check "down of an unknown network fails (rc=$KN_RC)" test "$KN_RC" -ne 0
err_one_line "second down: one line naming lab" lab
kn_expect "second down --if-exists exits 0" 0 "$ns" down lab --if-exists

# --- --nat: kvmlab's own table, standard hooks and priorities
net_down_at_exit "$ns" natnet
kn_expect "up --nat exits 0" 0 "$ns" up natnet --cidr 10.78.0.1/24 --bridge klbr1 --nat
rs=$(in_ns "$ns" nft -j list ruleset)
t_check "nat: exactly one nft table" test "$(jq '[.nftables[] | select(has("table"))] | length' <<<"$rs")" = 1
t_check "nat: a nat chain at postrouting, priority 100 (srcnat)" jq_true '
	[.nftables[] | select(.chain.type == "nat" and .chain.hook == "postrouting" and .chain.prio == 100)] | length == 1' <<<"$rs"
t_check "nat: a filter chain at forward, priority 0" jq_true '
	[.nftables[] | select(.chain.type == "filter" and .chain.hook == "forward" and .chain.prio == 0)] | length == 1' <<<"$rs"
t_check "nat: a masquerade rule matching saddr 10.78.0.0/24" jq_true '
	[.nftables[] | select(.rule) | .rule |
	 select(any(.expr[]; has("masquerade"))) |
	 select(any(.expr[]; (.match.right | objects | .prefix.addr) == "10.78.0.0" and (.match.right | objects | .prefix.len) == 24))] | length == 1' <<<"$rs"
t_check "nat: forward accepts established,related" jq_true '
	[.nftables[] | select(.rule) | .rule | select(any(.expr[]; .match.left.ct.key == "state"))] | length >= 1' <<<"$rs"
t_check "nat: forward accepts from the subnet" jq_true '
	[.nftables[] | select(.rule) | .rule | select(any(.expr[]; has("accept")) and
	 any(.expr[]; (.match.right | objects | .prefix.addr) == "10.78.0.0" or
	     (.match.left.meta.key == "iifname" and .match.right == "klbr1")))] | length >= 1' <<<"$rs"
if in_ns "$ns" nft list ruleset | grep -q 'comment'; then t_ok "nat: kvmlab's table carries a comment"
else t_fail "nat: kvmlab's table carries a comment" "no comment in: $(in_ns "$ns" nft list ruleset | head -3 | tr '\n' ' ')"; fi
net_snap "$ns" "$KN_TMP/n1"
kn_expect "second up --nat exits 0" 0 "$ns" up natnet --cidr 10.78.0.1/24 --bridge klbr1 --nat
net_snap "$ns" "$KN_TMP/n2"
net_same "second up --nat: namespace identical" "$KN_TMP/n1" "$KN_TMP/n2"
kn_expect "down natnet exits 0" 0 "$ns" down natnet
net_snap "$ns" "$KN_TMP/n3"
net_same "down --nat network: namespace back to its earlier state" "$KN_TMP/s0" "$KN_TMP/n3"

# --- --mtu and --stp reach the kernel
net_down_at_exit "$ns" big
kn_expect "up --mtu 9000 --stp exits 0" 0 "$ns" up big --cidr 10.79.0.1/24 --bridge klbr2 --mtu 9000 --stp
br=$(link_json "$ns" klbr2)
t_check "mtu: klbr2 mtu is 9000" test "$(jq -r .mtu <<<"$br")" = 9000
t_check "stp: klbr2 stp_state is 1" test "$(jq -r .linkinfo.info_data.stp_state <<<"$br")" = 1
kn_expect "down big exits 0" 0 "$ns" down big

# --- no --bridge: the bridge name is derived; whatever it is, down removes it
net_down_at_exit "$ns" dflt
kn_expect "up without --bridge exits 0" 0 "$ns" up dflt --cidr 10.80.0.1/24
dbr=$(in_ns "$ns" ip -j addr | jq -r '.[] | select(any(.addr_info[]; .local == "10.80.0.1")) | .ifname')
t_check "derived bridge ($dbr) is a bridge holding 10.80.0.1" \
	test "$(link_json "$ns" "${dbr:-none}" | jq -r .linkinfo.info_kind)" = bridge
kn_expect "down dflt exits 0" 0 "$ns" down dflt
# 15-byte names sharing a prefix still get two distinct, valid bridges
net_down_at_exit "$ns" abcdefghijklmn1
net_down_at_exit "$ns" abcdefghijklmn2
kn_expect "up 15-byte name #1 without --bridge" 0 "$ns" up abcdefghijklmn1 --cidr 10.86.0.1/24
kn_expect "up 15-byte name #2 without --bridge" 0 "$ns" up abcdefghijklmn2 --cidr 10.87.0.1/24
t_check "15-byte names: two bridges holding their addresses" test "$(in_ns "$ns" ip -j -d addr |
	jq -r '[.[] | select(.linkinfo.info_kind == "bridge") | .addr_info[] | select(.family == "inet") | .local] | sort | join(" ")')" = "10.86.0.1 10.87.0.1"
kn_expect "down 15-byte name #1" 0 "$ns" down abcdefghijklmn1
kn_expect "down 15-byte name #2" 0 "$ns" down abcdefghijklmn2
t_check "derived bridge is gone" bash -c '! ip netns exec "$1" ip link show dev "$2" >/dev/null 2>&1' _ "$ns" "${dbr:-none}"

# --- forwarding: kvmlab restores only what it changed, and only when no
# other kvmlab network still needs it
net_down_at_exit "$ns" f1
net_down_at_exit "$ns" f2
kn_expect "up f1 exits 0" 0 "$ns" up f1 --cidr 10.81.0.1/24 --bridge klf1
kn_expect "up f2 exits 0" 0 "$ns" up f2 --cidr 10.82.0.1/24 --bridge klf2
kn_expect "down f1 exits 0" 0 "$ns" down f1
t_check "down f1: f2 still needs ip_forward=1" test "$(ip_forward "$ns")" = 1
t_check "down f1: f2's bridge and address whole" test "$(count_addr "$ns" klf2 10.82.0.1)" = 1
kn_expect "down f2 exits 0" 0 "$ns" down f2
t_check "down f2: ip_forward back to 0" test "$(ip_forward "$ns")" = 0
in_ns "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
kn_expect "up f1 (forwarding already on) exits 0" 0 "$ns" up f1 --cidr 10.81.0.1/24 --bridge klf1
kn_expect "down f1 exits 0" 0 "$ns" down f1
t_check "down: ip_forward left at 1 when it was 1 before up" test "$(ip_forward "$ns")" = 1
in_ns "$ns" sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'

# --- --dry-run: a plan on stdout, exit 0, nothing changed
net_snap "$ns" "$KN_TMP/d0"
kn_expect "up --nat --dry-run exits 0" 0 "$ns" up dry --cidr 10.83.0.1/24 --bridge kldry --nat --dry-run
t_check "dry-run prints a plan" test -n "$KN_OUT"
net_snap "$ns" "$KN_TMP/d1"
net_same "dry-run: namespace unchanged" "$KN_TMP/d0" "$KN_TMP/d1"
in_ns "$ns" ip link add kldum type veth peer name kldump
net_snap "$ns" "$KN_TMP/d2"
kn_expect "dry-run of an invalid plan (bridge name is a veth) exits 1" 1 "$ns" up dry --cidr 10.83.0.1/24 --bridge kldum --nat --dry-run
net_snap "$ns" "$KN_TMP/d3"
net_same "invalid dry-run: namespace unchanged" "$KN_TMP/d2" "$KN_TMP/d3"
in_ns "$ns" ip link del kldum

# --- the same network name in two namespaces at once
net_new ns2 updown2
net_down_at_exit "$ns" twin
net_down_at_exit "$ns2" twin
kn_expect "up twin in ns1" 0 "$ns" up twin --cidr 10.84.0.1/24 --bridge kltwin
kn_expect "up twin in ns2" 0 "$ns2" up twin --cidr 10.84.0.1/24 --bridge kltwin --nat
kn_expect "down twin in ns1" 0 "$ns" down twin
t_check "ns2's twin untouched by ns1's down (address)" test "$(count_addr "$ns2" kltwin 10.84.0.1)" = 1
t_check "ns2's twin untouched by ns1's down (nft)" test "$(nft_table_count "$ns2")" = 1
kn_expect "down twin in ns2" 0 "$ns2" down twin
t_check "ns2: nothing left in the ruleset" test "$(nft_table_count "$ns2")" = 0

# --- an anonymous namespace (unshare -n, no name under /run/netns): the
# state is keyed by its inode and gone after down
out=$(timeout 30 unshare -n bash -c '
	K=$1; stat -L -c %i /proc/self/ns/net
	"$K" up anon --cidr 10.85.0.1/24 --nat >/dev/null 2>&1; echo "up=$?"
	ip -j addr | jq -r ".[].addr_info[].local" | grep -qx 10.85.0.1 && echo addr=yes
	"$K" down anon >/dev/null 2>&1; echo "down=$?"' _ "$KVMLAB_NET")
t_check "unshare -n: up, address seen by ip -j, down ($(tail -n +2 <<<"$out" | tr '\n' ' '))" \
	test "$(tail -n +2 <<<"$out" | tr '\n' ' ')" = "up=0 addr=yes down=0 "

# --- concurrent runs in one namespace are serialised, none lost
net_snap "$ns" "$KN_TMP/c0"
pids=()
for i in 1 2 3 4; do
	net_down_at_exit "$ns" cc$i
	ip netns exec "$ns" timeout 20 "$KVMLAB_NET" up cc$i --cidr 10.9$i.0.1/24 --bridge klcc$i --nat \
		>/dev/null 2>"$KN_TMP/cc$i.err" &
	pids+=($!)
done
rcs=""; for p in "${pids[@]}"; do wait "$p"; rcs+="$? "; done
t_check "4 concurrent ups all exit 0 ($rcs)" test "$rcs" = "0 0 0 0 "
n=0; for i in 1 2 3 4; do [ "$(count_addr "$ns" klcc$i 10.9$i.0.1)" = 1 ] && n=$((n + 1)); done
t_check "4 concurrent ups: all 4 bridges hold their address ($n)" test $n = 4
masq=$(in_ns "$ns" nft -j list ruleset | jq '[.nftables[] | select(.rule) | select(any(.rule.expr[]; has("masquerade")))] | length')
t_check "4 concurrent ups: 4 masquerade rules ($masq)" test "$masq" = 4
for i in 1 2 3 4; do kn "$ns" down cc$i; done
net_snap "$ns" "$KN_TMP/c1"
net_same "4 downs: namespace back to its earlier state" "$KN_TMP/c0" "$KN_TMP/c1"

t_finish
