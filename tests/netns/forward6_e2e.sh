#!/usr/bin/env bash
# IPv6 port forwards end to end, namespaces only (no VM):
#   guest --veth-- [klf6 bridge] router [up0] --veth-- wan
#   guest fd43::2/64 and 10.43.0.2/24; wan 2001:db8:43::2/64 and 198.51.100.2/24
# "router" runs kvmlab-net (up --cidr6). A client in wan connects to the
# router's uplink IPv6 address at the host port and must reach the
# guest's listener, which prints the peer it sees; then the output path
# and the hairpin; then the same host port over IPv4 beside it, del by
# family, a forward tied to a VM's lease, bad input, and `down`.
# Oracles: what the listener prints, and `nft -j list ruleset`.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
command -v ncat >/dev/null || { t_fail "forward6_e2e" "ncat missing"; t_finish; }

net_new R router
net_new W wan
net_new G guest
UP6=2001:db8:43::1 WAN6=2001:db8:43::2 G6=fd43::2 BR6=fd43::1
UP_IP=198.51.100.1 WAN_IP=198.51.100.2 G_IP=10.43.0.2 BR_IP=10.43.0.1

in_ns "$R" ip link add up0 type veth peer name eth0 netns "$W"
in_ns "$R" ip addr add $UP6/64 dev up0 nodad
in_ns "$R" ip addr add $UP_IP/24 dev up0
in_ns "$R" ip link set up0 up
in_ns "$W" ip addr add $WAN6/64 dev eth0 nodad
in_ns "$W" ip addr add $WAN_IP/24 dev eth0
in_ns "$W" ip link set eth0 up
in_ns "$G" ip link add eth0 type veth peer name gr netns "$R"
in_ns "$G" ip addr add $G6/64 dev eth0 nodad
in_ns "$G" ip addr add $G_IP/24 dev eth0
in_ns "$G" ip link set eth0 up
in_ns "$G" ip -6 route add default via $BR6
in_ns "$G" ip route add default via $BR_IP
in_ns "$R" ip link set gr up

# the guest's listeners, on both families: tcp 80 prints the peer, udp
# 53 (IPv6) answers with a tag
fwd_guest_listen "$G" "" $G6 -6
# fwd_rules NS: "FAMILY CHAIN COMMENT" of every rule of the kvmlab-lab tables
fwd_rules() {
	in_ns "$1" nft -j list ruleset | jq -r '.nftables[] | select(.rule) |
		select(.rule.table == "kvmlab-lab") | "\(.rule.family) \(.rule.chain) \(.rule.comment // "")"' | sort
}
nftj() { in_ns "$R" nft -j list ruleset; }

net_down_at_exit "$R" lab
kn_expect "up lab --cidr6 --nat" 0 "$R" up lab --cidr $BR_IP/24 --cidr6 $BR6/64 --bridge klf6 --nat
in_ns "$R" ip link set dev gr master klf6
# the guest's router answers over the new port
for _ in $(seq 30); do in_ns "$G" ping -6 -c1 -W1 $BR6 >/dev/null 2>&1 && break; done

out=$(fwd_connect "$W" $UP6 8080)
t_check "before forward add: wan cannot reach [$UP6]:8080 (got '$out')" test -z "$out"

kn_expect "forward add tcp 8080 -> [$G6]:80" 0 "$R" forward add lab --proto tcp --port 8080 --to "[$G6]:80"
t_check "nft: fwd-pre, fwd-out and fwd-accept rules with the comment, all in table ip6" \
	test "$(fwd_rules "$R" | grep -c "^ip6 fwd-[a-z]* fwd tcp 8080 to \[$G6\]:80\$")" = 3
t_check "nft: nothing of it in table ip" test "$(fwd_rules "$R" | grep -c '^ip fwd-')" = 0
t_check "nft: the DNAT in ip6 fwd-pre targets [$G6]:80" jq_true \
	'[.nftables[] | select(.rule.chain? == "fwd-pre" and .rule.family == "ip6") | .rule.expr[] | select(.dnat) | .dnat] == [{"addr":"fd43::2","port":80}]' \
	< <(nftj)
t_check "nft: fwd-pre leaves ::1 alone" jq_true \
	'[.nftables[] | select(.rule.chain? == "fwd-pre" and .rule.family == "ip6") | .rule.expr[] | select(.match) | .match | select(.right == "::1") | .op] == ["!="]' \
	< <(nftj)
t_check "nft: ip6 fwd-accept accepts the DNATed flows to [$G6]:80 out of the bridge" jq_true \
	'[.nftables[] | select(.rule.chain? == "fwd-accept" and .rule.family == "ip6") | .rule.expr[] | select(.match) | .match.right] | (index("klf6") != null and index("fd43::2") != null and index(80) != null)' \
	< <(nftj)
t_check "nft: ip6 fwd-post masquerades the hairpin from fd43::/64" jq_true \
	'[.nftables[] | select(.rule.chain? == "fwd-post" and .rule.family == "ip6") | .rule.expr[] | select(.match) | .match.right | select(type == "object") | .prefix] == [{"addr":"fd43::","len":64}]' \
	< <(nftj)

out=$(fwd_connect "$W" $UP6 8080)
t_check "wan -> [$UP6]:8080 reaches the guest, which sees the client $WAN6 (got '$out')" \
	test "$out" = "guest peer=$WAN6"
out=$(fwd_connect "$R" $UP6 8080)
t_check "router itself -> its own [$UP6]:8080 (output path) reaches the guest (got '$out')" \
	test "${out%%=*}" = "guest peer"
out=$(fwd_connect "$G" $UP6 8080)
t_check "hairpin: the guest -> [$UP6]:8080 -> itself, via masquerade (got '$out')" \
	test "$out" = "guest peer=$BR6"
out=$(fwd_connect "$R" ::1 8080)
t_check "::1:8080 is not forwarded (got '$out')" test -z "$out"
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "IPv4 $UP_IP:8080 is not forwarded by an IPv6 forward (got '$out')" test -z "$out"

# the same host port over IPv4 too: two forwards
kn_expect "forward add tcp 8080 -> $G_IP:80 beside it" 0 "$R" forward add lab --proto tcp --port 8080 --to $G_IP:80
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "IPv4: wan -> $UP_IP:8080 reaches the guest (got '$out')" test "$out" = "guest peer=$WAN_IP"
out=$(fwd_connect "$W" $UP6 8080)
t_check "IPv6 still reaches the guest (got '$out')" test "$out" = "guest peer=$WAN6"
kn "$R" show lab
t_check "show lists both: tcp 8080 -> $G_IP:80 and -> [$G6]:80" \
	test "$(grep -c -e "forward  tcp 8080 -> $G_IP:80\$" -e "forward  tcp 8080 -> \[$G6\]:80\$" <<<"$KN_OUT")" = 2
t_check "show --json: both, with family ip and ip6" jq_true \
	'[.networks[0].forwards[] | "\(.family) \(.proto) \(.port) \(.to_address) \(.to_port)"] == ["ip tcp 8080 10.43.0.2 80","ip6 tcp 8080 fd43::2 80"]' \
	< <(in_ns "$R" "$KVMLAB_NET" show --json)

# idempotent; conflicting; bad input: one line, nothing changed
snap() { net_snap "$R" "$KN_TMP/$1"; }
snap f0
kn_expect "the same IPv6 forward again: exit 0" 0 "$R" forward add lab --proto tcp --port 8080 --to "[$G6]:80"
snap f1
net_same "the same IPv6 forward again: nothing changed (handles included)" "$KN_TMP/f0" "$KN_TMP/f1"
kn_expect "same host port over IPv6, another target: exit 1" 1 "$R" forward add lab --proto tcp --port 8080 --to "[fd43::3]:80"
err_one_line "same host port, another target: one line naming the old target" "[$G6]:80"
for bad in "[fd44::2]:80" "[$BR6]:80" "[fd43::]:80" "[$G6]:0" "[$G6]" "[$G6]80" "$G6:80" "[fd43::zz]:80" "[]:80"; do
	kn_expect "forward add --to $bad: exit 1" 1 "$R" forward add lab --proto tcp --port 9090 --to "$bad"
	err_one_line "forward add --to $bad: one line naming it" "$bad"
done
kn_expect "forward add -6: exit 2 (the family comes from --to)" 2 "$R" forward add lab -6 --proto tcp --port 9090 --to "[$G6]:80"
snap f2
net_same "bad IPv6 forwards: nothing changed" "$KN_TMP/f0" "$KN_TMP/f2"

# udp over IPv6
kn_expect "forward add udp 5353 -> [$G6]:53" 0 "$R" forward add lab --proto udp --port 5353 --to "[$G6]:53"
out=$(fwd_udp "$W" $UP6 5353)
t_check "udp: wan -> [$UP6]:5353 reaches the guest's port 53 (got '$out')" test "$out" = "udp-guest"

# del by family
kn_expect "forward del tcp 8080 -6" 0 "$R" forward del lab --proto tcp --port 8080 -6
t_check "nft: the IPv6 tcp 8080 rules are gone, IPv4's stay" \
	test "$(fwd_rules "$R" | grep -c '^ip6 .*fwd tcp 8080')-$(fwd_rules "$R" | grep -c '^ip .*fwd tcp 8080')" = "0-3"
out=$(fwd_connect "$W" $UP6 8080)
t_check "after del -6: IPv6 8080 is closed (got '$out')" test -z "$out"
out=$(fwd_connect "$W" $UP_IP 8080)
t_check "after del -6: IPv4 8080 still reaches the guest (got '$out')" test "$out" = "guest peer=$WAN_IP"
kn_expect "forward del tcp 8080 -6 again: exit 1" 1 "$R" forward del lab --proto tcp --port 8080 -6
err_one_line "forward del -6 again: one line" "no such forward"
kn_expect "forward add tcp 8080 -> [$G6]:80 again" 0 "$R" forward add lab --proto tcp --port 8080 --to "[$G6]:80"
kn_expect "forward del tcp 8080 (both families)" 0 "$R" forward del lab --proto tcp --port 8080
t_check "nft: no tcp 8080 rule in either table" test "$(fwd_rules "$R" | grep -c 'fwd tcp 8080')" = 0

# tied to a VM's lease: it goes with the lease
sleep 300 >/dev/null 2>&1 &
owner=$!
t_defer "kill $owner"
kn_expect "lease take lab web" 0 "$R" lease take lab web --pid "$owner"
kn_expect "forward add tcp 8443 -> [$G6]:80 --vm web" 0 "$R" forward add lab --proto tcp --port 8443 --to "[$G6]:80" --vm web
t_check "nft: its comment names the vm" \
	test "$(fwd_rules "$R" | grep -c "^ip6 .*fwd tcp 8443 to \[$G6\]:80 vm=web\$")" = 3
out=$(fwd_connect "$W" $UP6 8443)
t_check "the VM's IPv6 forward works (got '$out')" test "$out" = "guest peer=$WAN6"
kn_expect "lease release lab web" 0 "$R" lease release lab web
t_check "nft: the VM's IPv6 forward went with its lease" test "$(fwd_rules "$R" | grep -c 'fwd tcp 8443')" = 0

# up again leaves the IPv6 forwards alone, handles and all
kn_expect "forward add tcp 8080 -> [$G6]:80 once more" 0 "$R" forward add lab --proto tcp --port 8080 --to "[$G6]:80"
snap u0
kn_expect "up lab again" 0 "$R" up lab --cidr $BR_IP/24 --cidr6 $BR6/64 --bridge klf6 --nat
snap u1
net_same "a second up changes nothing, IPv6 forwards included" "$KN_TMP/u0" "$KN_TMP/u1"

# a network without IPv6 refuses an IPv6 forward; one host port per
# family across networks
kn_expect "up plain (no --cidr6)" 0 "$R" up plain --cidr 10.44.0.1/24 --bridge klp6
net_down_at_exit "$R" plain
kn_expect "plain: an IPv6 forward: exit 1" 1 "$R" forward add plain --proto tcp --port 9191 --to "[fd43::9]:80"
err_one_line "plain: the error says it has no IPv6" "has no IPv6"
t_check "plain: no ip6 table was made for it" test "$(nft_tables "$R" | grep -c 'ip6 kvmlab-plain')" = 0
kn_expect "plain: IPv4 tcp 8080 (lab has it over IPv6 only)" 0 "$R" forward add plain --proto tcp --port 8080 --to 10.44.0.9:80
kn_expect "lab: IPv4 tcp 8080, now plain's: exit 1" 1 "$R" forward add lab --proto tcp --port 8080 --to $G_IP:80
err_one_line "lab: the error names plain" "already forwarded by network plain"

kn_expect "down lab" 0 "$R" down lab
t_check "after down lab: no table of lab left" test "$(nft_tables "$R" | grep -c 'kvmlab-lab')" = 0
out=$(fwd_connect "$W" $UP6 8080)
t_check "after down: IPv6 8080 is closed (got '$out')" test -z "$out"
kn_expect "down plain" 0 "$R" down plain
t_check "down plain: no table left" test "$(nft_table_count "$R")" = 0
t_finish
