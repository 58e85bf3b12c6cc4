#!/usr/bin/env bash
# kill -9 matrix: `up --nat`, `tap add` of 1000 taps and `down` (also after
# leases and forwards, and timed kills of those), killed at
# every injection point (KVMLAB_NET_CRASH, net/ops.c) and by timed
# SIGKILLs from outside. After each kill, `down` must return the namespace
# byte for byte to what it was: ip -j -d link, ip -j addr,
# nft -j list ruleset and ip_forward, as the tools print them (a foreign
# veth pair and a foreign nft table are there throughout). Some cases
# also check that the next up / tap add completes what the crash left.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new ns kill9
in_ns "$ns" ip link add k9va type veth peer name k9vb
in_ns "$ns" nft add table inet k9foreign
net_raw "$ns" "$KN_TMP/r0"
net_down_at_exit "$ns" lab

UP=(up lab --cidr 10.90.0.1/24 --bridge k9br --nat)
TAPS=(); for i in $(seq 0 999); do TAPS+=("k$i"); done

# crash POINT ARGS...: kvmlab-net ARGS with a SIGKILL at POINT; sets CR_RC
crash() {
	local point=$1; shift
	# the braces keep bash's "Killed" notice out of the output
	{ ip netns exec "$ns" env KVMLAB_NET_CRASH="$point" timeout -k 2 60 \
		"$KVMLAB_NET" "$@" >/dev/null 2>"$KN_TMP/crash.err"; CR_RC=$?; } 2>/dev/null
}

# killed_ok NAME: the last crash run died by SIGKILL (128 + 9)
killed_ok() {
	if [ "$CR_RC" = 137 ]; then t_ok "$1: killed at the point"
	else t_fail "$1: killed at the point" "rc=$CR_RC $(head -c 300 "$KN_TMP/crash.err")"; fi
}

# recovered NAME: down (exit 0; --if-exists, as a timed kill may land
# before anything was made), then the namespace is byte-identical
recovered() {
	kn "$ns" down lab --if-exists
	if [ "$KN_RC" = 0 ]; then t_ok "$1: down after the kill exits 0"
	else t_fail "$1: down after the kill exits 0" "$(kn_desc)"; fi
	net_raw "$ns" "$KN_TMP/r1"
	if cmp -s "$KN_TMP/r0" "$KN_TMP/r1"; then t_ok "$1: namespace byte-identical after down"
	else t_fail "$1: namespace byte-identical after down" \
		"$(diff <(tr ',' '\n' <"$KN_TMP/r0") <(tr ',' '\n' <"$KN_TMP/r1") | grep '^[<>]' | head -5 | tr '\n' ' ')"; fi
}

# taps_whole N: N k* taps, all enslaved to k9br, up, tagged
taps_whole() {
	in_ns "$ns" ip -j -d link show master k9br | jq '[.[] | select(.ifname | startswith("k")) |
		select(.ifalias == "kvmlab:lab:tap" and (.flags | index("UP")) and .linkinfo.info_data.persist)] | length'
}

# --- up --nat, killed at each step
for p in up:table up:bridge up:fwd; do
	crash "$p" "${UP[@]}"; killed_ok "up --nat @$p"
	recovered "up --nat @$p"
done
# the next up completes what a killed one made
crash up:bridge "${UP[@]}"
kn_expect "up after a kill at up:bridge completes it (exit 0)" 0 "$ns" "${UP[@]}"
t_check "up after the kill: bridge holds 10.90.0.1/24" test "$(count_addr "$ns" k9br 10.90.0.1)" = 1
t_check "up after the kill: ip_forward 1" test "$(ip_forward "$ns")" = 1
t_check "up after the kill: masquerade rule there" test "$(in_ns "$ns" nft -j list chain ip kvmlab-lab postrouting |
	jq '[.nftables[] | select(.rule) | select(any(.rule.expr[]; has("masquerade")))] | length')" = 1
recovered "up completed after a kill"

# --- the same with IPv6 (ip6 table in the batch, IPv6 forwarding last)
UP6=(up lab --cidr 10.90.0.1/24 --bridge k9br --nat --cidr6 fd90::1/64)
for p in up:table up:bridge up:fwd up:fwd6; do
	crash "$p" "${UP6[@]}"; killed_ok "up --nat --cidr6 @$p"
	recovered "up --nat --cidr6 @$p"
done
crash up:fwd "${UP6[@]}"
kn_expect "up --cidr6 after a kill at up:fwd completes it (exit 0)" 0 "$ns" "${UP6[@]}"
t_check "up --cidr6 after the kill: IPv6 forwarding 1" test "$(ip6_forward "$ns")" = 1
t_check "up --cidr6 after the kill: fd90::1 and fe80::1 on k9br" \
	test "$(count_addr "$ns" k9br fd90::1)$(count_addr "$ns" k9br fe80::1)" = 11
recovered "up --cidr6 completed after a kill"
for p in down:links down:fwd; do
	kn_expect "up --cidr6 for down @$p" 0 "$ns" "${UP6[@]}"
	crash "$p" down lab; killed_ok "down (IPv6) @$p"
	recovered "down (IPv6) @$p"
done

# --- up repairing a damaged network, killed at each repair step
for p in up:nft-repair up:taps; do
	kn_expect "up --nat + tap add for a repair @$p" 0 "$ns" "${UP[@]}"
	kn "$ns" tap add k0 k1 --net lab
	in_ns "$ns" ip link set k0 nomaster
	in_ns "$ns" nft flush chain ip kvmlab-lab postrouting
	crash "$p" "${UP[@]}"; killed_ok "repairing up @$p"
	recovered "repairing up @$p"
done

# --- tap add of 1000 taps, killed at each step
for p in tap:made tap:tagged tap:persist tap:up; do
	kn_expect "up --nat for tap add @$p" 0 "$ns" "${UP[@]}"
	crash "$p" tap add "${TAPS[@]}" --net lab; killed_ok "tap add 1000 @$p"
	recovered "tap add 1000 @$p"
done
# a killed tap add leaves only tagged taps (or none); the next tap add
# of the same names completes it
kn_expect "up --nat (tap add completion)" 0 "$ns" "${UP[@]}"
crash tap:persist tap add "${TAPS[@]}" --net lab
left=$(in_ns "$ns" ip -j -d link | jq '[.[] | select(.linkinfo.info_kind == "tun")] | length')
tagged=$(in_ns "$ns" ip -j -d link | jq '[.[] | select(.linkinfo.info_kind == "tun" and .ifalias == "kvmlab:lab:tap")] | length')
t_check "after a kill in tap add: every tap left ($left) carries the tag ($tagged)" test "$left" = "$tagged"
kn_expect "tap add of the same 1000 names completes it (exit 0)" 0 "$ns" tap add "${TAPS[@]}" --net lab
t_check "1000 taps whole after completion ($(taps_whole))" test "$(taps_whole)" = 1000
recovered "tap add completed after a kill"

# --- down of a network with 1000 taps, killed at each step
for p in down:links down:fwd; do
	kn_expect "up --nat for down @$p" 0 "$ns" "${UP[@]}"
	kn_expect "tap add 1000 for down @$p" 0 "$ns" tap add "${TAPS[@]}" --net lab
	crash "$p" down lab; killed_ok "down @$p"
	recovered "down @$p"
done

# --- tap del killed after its delete; up still finds the rest whole
kn_expect "up --nat for tap del" 0 "$ns" "${UP[@]}"
kn_expect "tap add 4 for tap del" 0 "$ns" tap add k0 k1 k2 k3 --net lab
crash tapdel:links tap del k0 k1; killed_ok "tap del @tapdel:links"
t_check "tap del killed after the delete: k0, k1 gone, k2, k3 whole" \
	test "$(taps_whole) $(link_exists "$ns" k0 && echo k0)" = "2 "
recovered "tap del @tapdel:links"

# --- timed SIGKILLs from outside, wherever they land
# timed ARGS...: start kvmlab-net ARGS, SIGKILL it after $DELAY seconds
timed() {
	{
		ip netns exec "$ns" "$KVMLAB_NET" "$@" >/dev/null 2>&1 &
		local pid=$!
		sleep "$DELAY"
		kill -9 "$pid"
		wait "$pid"
	} 2>/dev/null
}
for DELAY in 0.001 0.003 0.006; do
	timed "${UP[@]}"
	recovered "up --nat killed after ${DELAY}s"
done
for DELAY in 0.05 0.3; do
	kn "$ns" "${UP[@]}"
	timed tap add "${TAPS[@]}" --net lab
	recovered "tap add 1000 killed after ${DELAY}s"
done
for DELAY in 0.03; do
	kn "$ns" "${UP[@]}"
	kn "$ns" tap add "${TAPS[@]}" --net lab
	timed down lab
	recovered "down (1000 taps) killed after ${DELAY}s"
done

# --- leases and forwards (map and fwd-* chains in the table): down after
# them, and after a lease take or forward add killed anywhere
kn_expect "up --nat for leases" 0 "$ns" "${UP[@]}"
kn_expect "lease add lab web" 0 "$ns" lease add lab web
kn_expect "forward add tcp 8080" 0 "$ns" forward add lab --proto tcp --port 8080 --to 10.90.0.7:80
kn_expect "lease take lab app" 0 "$ns" lease take lab app --pid $$
kn_expect "forward add --vm app" 0 "$ns" forward add lab --proto udp --port 5353 --vm app --to 53
recovered "leases and forwards"
for DELAY in 0.002 0.01; do
	kn "$ns" "${UP[@]}"
	kn "$ns" lease add lab web
	timed lease take lab app --pid $$
	timed forward add lab --proto tcp --port 8080 --to 10.90.0.7:80
	recovered "lease take, forward add killed after ${DELAY}s"
done

in_ns "$ns" ip link del k9va
in_ns "$ns" nft delete table inet k9foreign
t_finish
