#!/usr/bin/env bash
# Port forwards end to end, namespaces only (no VM):
#   guest --veth-- [klf bridge] router [up0] --veth-- wan (198.51.100.0/24)
# "router" runs kvmlab-net; the guest's router end is enslaved by the
# test. A client in wan connects to the router's uplink address at the
# host port and must reach the guest's listener (which prints the peer
# it sees); then the router itself connects to its own address (output
# path); a second guest port over udp; `down` removes every forward.
# Oracles: what the listener prints, and `nft -j list ruleset`.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
command -v ncat >/dev/null || { t_fail "forward_e2e" "ncat missing"; t_finish; }

net_new R router
net_new W wan
net_new G guest
UP_IP=198.51.100.1 WAN_IP=198.51.100.2 G_IP=10.43.0.2 BR_IP=10.43.0.1

in_ns "$R" ip link add up0 type veth peer name eth0 netns "$W"
in_ns "$R" ip addr add $UP_IP/24 dev up0
in_ns "$R" ip link set up0 up
in_ns "$W" ip addr add $WAN_IP/24 dev eth0
in_ns "$W" ip link set eth0 up
in_ns "$G" ip link add eth0 type veth peer name gr netns "$R"
in_ns "$G" ip addr add $G_IP/24 dev eth0
in_ns "$G" ip link set eth0 up
in_ns "$G" ip route add default via $BR_IP
in_ns "$R" ip link set gr up

# the guest's listeners: tcp 80 prints the peer, udp 53 echoes a tag
fwd_guest_listen "$G" $G_IP $G_IP
# fwd_rules NS: the forward rules (by comment) in table kvmlab-lab, sorted
fwd_rules() {
	in_ns "$1" nft -j list ruleset | jq -r '.nftables[] | select(.rule) |
		select(.rule.table == "kvmlab-lab") | "\(.rule.chain) \(.rule.comment // "")"' | sort
}

net_down_at_exit "$R" lab
kn_expect "up lab --nat (any uplink)" 0 "$R" up lab --cidr $BR_IP/24 --bridge klf --nat
in_ns "$R" ip link set dev gr master klf

out=$(fwd_connect "$W" $UP_IP 8080)
t_check "before forward add: wan cannot reach 8080 (got '$out')" test -z "$out"

kn_expect "forward add tcp 8080 -> guest:80" 0 "$R" forward add lab --proto tcp --port 8080 --to $G_IP:80
rules=$(fwd_rules "$R")
t_check "nft: fwd-pre, fwd-out and fwd-accept rule with the forward's comment" \
	test "$(printf '%s\n' "$rules" | grep -c ' fwd tcp 8080 to 10.43.0.2:80$')" = 3
t_check "nft: the DNAT rule in fwd-pre targets 10.43.0.2:80" jq_true \
	'[.nftables[] | select(.rule.chain? == "fwd-pre") | .rule.expr[] | select(.dnat) | .dnat] == [{"addr":"10.43.0.2","port":80}]' \
	< <(in_ns "$R" nft -j list ruleset)
t_check "nft: fwd-pre hooks prerouting at dstnat, fwd-out output" jq_true \
	'([.nftables[] | select(.chain.name? == "fwd-pre") | .chain | [.type, .hook, .prio]] == [["nat","prerouting",-100]]) and
	 ([.nftables[] | select(.chain.name? == "fwd-out") | .chain | [.type, .hook, .prio]] == [["nat","output",-100]])' \
	< <(in_ns "$R" nft -j list ruleset)

out=$(fwd_connect "$W" $UP_IP 8080)
t_check "wan -> uplink:8080 reaches the guest, which sees the client $WAN_IP (got '$out')" \
	test "$out" = "guest peer=$WAN_IP"
out=$(fwd_connect "$R" $UP_IP 8080)
t_check "router itself -> its own uplink:8080 (output path) reaches the guest (got '$out')" \
	test "${out%%=*}" = "guest peer"
out=$(fwd_connect "$R" $BR_IP 8080)
t_check "router -> its bridge address:8080 reaches the guest too (got '$out')" \
	test "${out%%=*}" = "guest peer"
out=$(fwd_connect "$G" $UP_IP 8080)
t_check "hairpin: the guest -> uplink:8080 -> itself, via masquerade (got '$out')" \
	test "$out" = "guest peer=$BR_IP"
out=$(fwd_connect "$W" $UP_IP 8081)
t_check "another port is not forwarded (got '$out')" test -z "$out"

# idempotent; conflicting; bad input
snap() { net_snap "$R" "$KN_TMP/$1"; }
snap f0
kn_expect "the same forward again: exit 0" 0 "$R" forward add lab --proto tcp --port 8080 --to $G_IP:80
snap f1
net_same "the same forward again: nothing changed (handles included)" "$KN_TMP/f0" "$KN_TMP/f1"
kn_expect "same host port, another target: exit 1" 1 "$R" forward add lab --proto tcp --port 8080 --to 10.43.0.3:80
err_one_line "same host port, another target: one line naming the port" "tcp 8080"
t_check "the error names the existing target" grep -q "10.43.0.2:80" <<<"$KN_ERR"
snap f2
net_same "conflict: nothing changed" "$KN_TMP/f0" "$KN_TMP/f2"
for bad in "--to 10.99.0.2:80" "--to $BR_IP:80" "--to 10.43.0.255:80" "--to 10.43.0.0:80" \
	"--to $G_IP:0" "--to $G_IP" "--to x:80"; do
	# shellcheck disable=SC2086
	kn_expect "forward add $bad: exit 1" 1 "$R" forward add lab --proto tcp --port 9090 $bad
	err_one_line "forward add $bad: one line" "lab"
done
kn_expect "--proto sctp: exit 1" 1 "$R" forward add lab --proto sctp --port 9090 --to $G_IP:80
kn_expect "--port 70000: exit 1" 1 "$R" forward add lab --proto tcp --port 70000 --to $G_IP:80
kn_expect "forward on an unknown network: exit 1" 1 "$R" forward add nolab --proto tcp --port 9090 --to $G_IP:80
err_one_line "unknown network: one line naming it" "nolab"
snap f3
net_same "bad forwards: nothing changed" "$KN_TMP/f0" "$KN_TMP/f3"

# udp, and del
kn_expect "forward add udp 5353 -> guest:53" 0 "$R" forward add lab --proto udp --port 5353 --to $G_IP:53
out=$(fwd_udp "$W" $UP_IP 5353)
t_check "udp: wan -> uplink:5353 reaches the guest's port 53 (got '$out')" test "$out" = "udp-guest"
kn "$R" show
t_check "show lists both forwards" grep -q "forward  tcp 8080 -> $G_IP:80" <<<"$KN_OUT"
t_check "show --json lists both forwards" jq_true \
	'[.networks[0].forwards[] | "\(.proto) \(.port) \(.to_address):\(.to_port)"] == ["tcp 8080 10.43.0.2:80","udp 5353 10.43.0.2:53"]' \
	< <(in_ns "$R" "$KVMLAB_NET" show --json)
kn_expect "forward del tcp 8080" 0 "$R" forward del lab --proto tcp --port 8080
t_check "nft: the tcp 8080 rules are gone, udp stays" \
	test "$(fwd_rules "$R" | grep -c 'fwd tcp 8080')-$(fwd_rules "$R" | grep -c 'fwd udp 5353')" = "0-3"
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "after del: wan no longer reaches the guest (got '$out')" test -z "$out"
kn_expect "forward del again: exit 1" 1 "$R" forward del lab --proto tcp --port 8080
err_one_line "forward del again: one line" "no such forward"

# up again leaves the forwards alone, handles and all
kn_expect "forward add tcp 8080 again" 0 "$R" forward add lab --proto tcp --port 8080 --to $G_IP:80
snap u0
kn_expect "up lab again" 0 "$R" up lab --cidr $BR_IP/24 --bridge klf --nat
snap u1
net_same "a second up changes nothing, forwards included" "$KN_TMP/u0" "$KN_TMP/u1"
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "after a second up the forward still works (got '$out')" test "$out" = "guest peer=$WAN_IP"

# a network without --nat: the table is made on demand; a host port is
# forwarded by one network only
kn_expect "up plain (no --nat)" 0 "$R" up plain --cidr 10.44.0.1/24 --bridge klp
net_down_at_exit "$R" plain
kn_expect "plain: forward of lab's host port: exit 1" 1 "$R" forward add plain --proto tcp --port 8080 --to 10.44.0.9:80
err_one_line "plain: the error names lab" "already forwarded by network lab"
kn_expect "forward add on a network without --nat" 0 "$R" forward add plain --proto tcp --port 8088 --to 10.44.0.9:80
t_check "its table was made for it" grep -qx "ip kvmlab-plain" <<<"$(nft_tables "$R")"

kn_expect "down lab" 0 "$R" down lab
t_check "after down lab: only plain's table is left" test "$(nft_tables "$R")" = "ip kvmlab-plain"
t_check "after down lab: no rule of lab left" test "$(fwd_rules "$R" | wc -l)" = 0
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "after down: 8080 is closed (got '$out')" test -z "$out"
kn_expect "down plain" 0 "$R" down plain
t_check "down plain: no table left" test "$(nft_table_count "$R")" = 0
t_finish
