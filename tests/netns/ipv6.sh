#!/usr/bin/env bash
# IPv6 networks: kvmlab-net up --cidr6, and kvmlab-vm dhcp as the
# network's router advertiser. Namespaces:
#   guest --veth-- [kl6br] router [up0] --veth-- wan (2001:db8:60::/64)
# "router" runs kvmlab-net and kvmlab-vm dhcp; the guest autoconfigures
# by SLAAC (its own kernel, accept_ra); the wan has no route back to the
# network's fd60::/64, so only a masqueraded connection completes.
# Oracles: ip -j (addresses, routes, flags), nft -j, /proc/sys, and a
# counter in the wan's own ruleset on packets from the private prefix.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin

net_new R router6
net_new W wan6
net_new G guest6
net_down_at_exit "$R" lab
net_down_at_exit "$R" lab2
tmp=$KN_TMP
UP=(up lab --cidr 10.60.0.1/24 --cidr6 fd60::1/64 --bridge kl6br --nat)

in_ns "$R" sysctl -qw net.ipv6.conf.all.forwarding=0
net_snap "$R" "$tmp/s0"

# --- up: addresses, forwarding, the ip6 table
kn_expect "up --cidr6 fd60::1/64 --nat" 0 "$R" "${UP[@]}"
a6=$(in_ns "$R" ip -j -6 addr show dev kl6br | jq -c '[.[0].addr_info[] | select(.local == "fd60::1" or .local == "fe80::1") |
	[.local, .prefixlen, .scope, (.nodad // false)]] | sort')
t_check "kl6br holds fd60::1/64 (global) and fe80::1/64 (link), both without DAD ($a6)" \
	test "$a6" = '[["fd60::1",64,"global",true],["fe80::1",64,"link",true]]'
t_check "IPv6 forwarding on" test "$(ip6_forward "$R")" = 1
t_check "IPv4 forwarding on" test "$(ip_forward "$R")" = 1
c6=$(in_ns "$R" nft list table ip6 kvmlab-lab | sed -n 's/^[[:space:]]*comment "\(.*\)"$/\1/p')
t_check "table ip6 kvmlab-lab holds the IPv6 definition ($c6)" \
	test "$c6" = "kvmlab network lab: cidr6=fd60::1/64 fwd6_prev=0"
masq=$(in_ns "$R" nft -j list chain ip6 kvmlab-lab postrouting | jq -c '[.nftables[] | select(.rule) | .rule.expr |
	[(.[] | select(.match) | .match.right | if type == "object" then (.prefix | "\(.addr)/\(.len)") else . end), (.[] | select(has("masquerade")) | "masq")]]')
t_check "ip6 postrouting masquerades fd60::/64 leaving by any interface but kl6br ($masq)" \
	test "$masq" = '[["fd60::/64","kl6br","masq"]]'
fwd=$(in_ns "$R" nft -j list chain ip6 kvmlab-lab forward | jq '[.nftables[] | select(.rule)] | length')
t_check "ip6 forward chain: the prefix out, established back (2 rules: $fwd)" test "$fwd" = 2
kn "$R" show --json lab
t_check "show --json: cidr6, subnet6, address6_present, forwarding6" jq_true \
	'.forwarding6 == true and .forwarding6_prev == false and (.networks[0] | .cidr6 == "fd60::1/64" and
	 .subnet6 == "fd60::/64" and .address6_present == true and .nft_table6 == "ip6 kvmlab-lab")' <<<"$KN_OUT"

printf 'nameserver 192.0.2.53\n' >"$tmp/resolv"
KVMLAB_RESOLV_CONF="$tmp/resolv" kn "$R" lease take lab web --pid $$
t_check "lease take on an IPv6 network (a host without IPv6 resolvers): the line ends with prefix6=fd60::/64 router6=fe80::1 dns6=none" \
	test "$KN_RC" = 0 -a "${KN_OUT##* prefix6=}" = "fd60::/64 router6=fe80::1 dns6=none"
kn "$R" lease del lab web

# --- idempotent, and repairs what it owns
net_snap "$R" "$tmp/s1"
kn_expect "up again: exit 0" 0 "$R" "${UP[@]}"
net_snap "$R" "$tmp/s2"
net_same "up again changes nothing (handles included)" "$tmp/s1" "$tmp/s2"
in_ns "$R" ip addr del fd60::1/64 dev kl6br
in_ns "$R" ip addr del fe80::1/64 dev kl6br
in_ns "$R" nft flush chain ip6 kvmlab-lab postrouting
kn_expect "up repairs the addresses and the chain" 0 "$R" "${UP[@]}"
t_check "fd60::1 and fe80::1 back on kl6br" \
	test "$(count_addr "$R" kl6br fd60::1)$(count_addr "$R" kl6br fe80::1)" = 11
t_check "the masquerade rule back" test "$(in_ns "$R" nft -j list chain ip6 kvmlab-lab postrouting |
	jq '[.nftables[] | select(.rule)] | length')" = 1

# --- refused: each one line, exit 1, the namespace untouched
in_ns "$R" ip link add d6 type veth peer name d6b
in_ns "$R" ip addr add fd61::5/64 dev d6 nodad
net_snap "$R" "$tmp/b0"
net_refuse "$R" "another cidr6 for lab" "already up with a different cidr6" up lab --cidr 10.60.0.1/24 \
	--cidr6 fd60::2/64 --bridge kl6br --nat
net_refuse "$R" "lab without --cidr6" "already up with a different cidr6" up lab --cidr 10.60.0.1/24 \
	--bridge kl6br --nat
net_refuse "$R" "a prefix over lab's" "prefix fd60::/48 overlaps kvmlab network lab (fd60::1/64)" up lab2 \
	--cidr 10.61.0.1/24 --cidr6 fd60::1:1/48
net_refuse "$R" "a prefix over a foreign interface's" "prefix fd61::/64 overlaps fd61::5/64 on d6" up lab2 \
	--cidr 10.61.0.1/24 --cidr6 fd61::1/64
for bad in fd62::/64 fe80::5/64 ff02::1/64 ::1/64 ::ffff:10.0.0.1/96 10.0.0.1/24 fd62::1/128 fd62::1 \
	fd62::1/129 fd62::1/x fd62::1%d6/64; do
	net_refuse "$R" "cidr6 $bad" "network lab2: cidr6 $bad:" up lab2 --cidr 10.61.0.1/24 --cidr6 "$bad"
done
net_refuse "$R" "--mtu 1000 with --cidr6" "network lab2: mtu 1000 is below IPv6's minimum of 1280 (--cidr6)" \
	up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64 --mtu 1000
# a failure half-way (after table, bridge, addresses and forwarding)
kn "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64 --nat --dry-run
t_check "dry run: exit 0, the plan names the ip6 table and IPv6 forwarding" \
	test "$KN_RC" = 0 -a -n "$(grep 'ip6 kvmlab-lab2' <<<"$KN_OUT")" -a -n "$(grep 'net.ipv6.conf.all.forwarding' <<<"$KN_OUT")"
net_snap "$R" "$tmp/b1"
net_same "dry run changes nothing" "$tmp/b0" "$tmp/b1"
in_ns "$R" sysctl -qw net.ipv6.conf.all.forwarding=1
net_snap "$R" "$tmp/b0"
ip netns exec "$R" env KVMLAB_NET_FAULT=up "$KVMLAB_NET" up lab2 --cidr 10.61.0.1/24 \
	--cidr6 fd62::1/64 --nat >/dev/null 2>&1
net_snap "$R" "$tmp/b1"
net_same "a failure after everything was made (KVMLAB_NET_FAULT=up) rolls it all back" "$tmp/b0" "$tmp/b1"
# a kernel that refuses IPv6 on the new bridge: the kernel's reason, rollback
in_ns "$R" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
net_snap "$R" "$tmp/b0"
kn "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64 --nat
net_snap "$R" "$tmp/b1"
if [ "$KN_RC" = 1 ] && [ "$(printf '%s' "$KN_ERR" | grep -c '')" = 1 ] &&
	printf '%s' "$KN_ERR" | grep -q 'bridge kl-lab2: cannot add IPv6 address' && cmp -s "$tmp/b0" "$tmp/b1"; then
	t_ok "IPv6 disabled on new links: exit 1, one line with the kernel's reason, nothing left"
else t_fail "IPv6 disabled on new links" "$(kn_desc)"; fi
in_ns "$R" sysctl -qw net.ipv6.conf.default.disable_ipv6=0
in_ns "$R" ip link del d6

# --- forwarding: back as found when the last IPv6 network goes
in_ns "$R" sysctl -qw net.ipv6.conf.all.forwarding=0
kn_expect "down lab" 0 "$R" down lab
kn_expect "up lab (IPv6 forwarding 0 before)" 0 "$R" "${UP[@]}"
kn_expect "up lab2 --cidr6 fd62::1/64" 0 "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64
kn_expect "down lab2" 0 "$R" down lab2
t_check "lab2 gone, lab left: IPv6 forwarding stays 1" test "$(ip6_forward "$R")" = 1
kn_expect "up lab2 IPv4 only" 0 "$R" up lab2 --cidr 10.61.0.1/24
kn_expect "down lab" 0 "$R" down lab
t_check "the last IPv6 network gone: IPv6 forwarding back to 0 (an IPv4 network is left)" \
	test "$(ip6_forward "$R")" = 0
t_check "... and IPv4 forwarding stays 1 for it" test "$(ip_forward "$R")" = 1
t_check "no ip6 table is left" test -z "$(nft_tables "$R" | grep '^ip6 ')"
kn_expect "down lab2" 0 "$R" down lab2

# --- one table deleted by hand: said, and down still restores what it can
kn_expect "up lab2 --cidr6 (for hand deletions)" 0 "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64
in_ns "$R" nft delete table ip kvmlab-lab2
kn "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64
t_check "ip table deleted by hand: up refuses, one line naming both tables" \
	test "$KN_RC" = 1 -a "$KN_ERR" = "kvmlab-net: network lab2: nft table ip kvmlab-lab2 is missing and its ip6 table is left; run down lab2 first"
kn_expect "... down lab2 removes the rest" 0 "$R" down lab2
t_check "... no table, no bridge left, IPv6 forwarding back to 0 (from the ip6 table's own definition)" \
	test -z "$(nft_tables "$R" | grep lab2)$(link_exists "$R" kl-lab2 && echo br)" -a "$(ip6_forward "$R")" = 0
kn_expect "up lab2 --cidr6 again" 0 "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64
in_ns "$R" nft delete table ip6 kvmlab-lab2
kn "$R" up lab2 --cidr 10.61.0.1/24 --cidr6 fd62::1/64
t_check "ip6 table deleted by hand: up sees a network without IPv6 and refuses (exit 1: $KN_ERR)" \
	test "$KN_RC" = 1 -a -n "$(grep -F 'already up with a different cidr6' <<<"$KN_ERR")"
kn_expect "... down lab2" 0 "$R" down lab2
in_ns "$R" sysctl -qw net.ipv6.conf.all.forwarding=0

# --- a host whose IPv6 routes come from router advertisements
in_ns "$R" ip link add ra0 type veth peer name ra0b
in_ns "$R" ip link set ra0b up
in_ns "$R" ip link set ra0 up
in_ns "$R" sysctl -qw net.ipv6.conf.ra0.accept_ra=1
in_ns "$R" ip -6 route add 2001:db8:99::/64 dev ra0 proto ra
kn "$R" "${UP[@]}"
t_check "up --cidr6 warns about ra0 (accept_ra=1 and RA routes), and names the remedy" \
	test "$KN_RC" = 0 -a -n "$(grep -F 'ra0: has IPv6 routes from router advertisements' <<<"$KN_ERR" | grep -F 'accept_ra=2')"
in_ns "$R" ip link del ra0

# --- SLAAC and NAT66 end to end: router <-> wan, guest on the bridge
in_ns "$R" ip link add up0 type veth peer name eth0 netns "$W"
in_ns "$R" ip addr add 2001:db8:60::1/64 dev up0 nodad
in_ns "$R" ip link set up0 up
in_ns "$W" ip addr add 2001:db8:60::2/64 dev eth0 nodad
in_ns "$W" ip link set eth0 up
ip netns exec "$W" timeout 120 ncat -6 -l -k 2001:db8:60::2 8060 --sh-exec 'echo "peer=$NCAT_REMOTE_ADDR"' \
	>/dev/null 2>&1 &
t_defer "kill $!"
for _ in $(seq 50); do in_ns "$W" ss -Hltn "sport = :8060" | grep -q . && break; sleep 0.1; done
in_ns "$W" nft -f - <<'EOF'
table inet obs {
	chain in {
		type filter hook input priority 0; policy accept;
		ip6 saddr fd60::/64 counter
	}
}
EOF
in_ns "$G" ip link add eth0 address 52:54:00:60:00:02 type veth peer name g6r netns "$R"
in_ns "$R" ip link set g6r master kl6br up
ip netns exec "$R" "$KVMLAB_VM" dhcp lab 2>"$tmp/srv.err" &
srv=$!
t_defer "kill $srv 2>/dev/null"
for _ in $(seq 50); do grep -q 'serving on kl6br' "$tmp/srv.err" && break; sleep 0.1; done
t_check "kvmlab-vm dhcp lab: serving, with router advertisements ($(cat "$tmp/srv.err"))" \
	grep -q 'serving on kl6br, with IPv6 router advertisements' "$tmp/srv.err"
# the guest's kernel does the rest: a router solicitation when eth0 comes
# up, SLAAC from the answer (forwarding off, accept_ra 1: a host)
in_ns "$G" sysctl -qw net.ipv6.conf.eth0.accept_ra=1 net.ipv6.conf.eth0.autoconf=1 2>/dev/null
in_ns "$G" ip link set eth0 up
want=fd60::5054:ff:fe60:2
for _ in $(seq 100); do
	got=$(in_ns "$G" ip -j -6 addr show dev eth0 | jq -r --arg w "$want" '.[0].addr_info[] | select(.local == $w and .dynamic == true) | .local')
	[ -n "$got" ] && break
	sleep 0.1
done
t_check "the guest autoconfigured $want/64 (EUI-64 of its MAC, dynamic)" test "$got" = "$want"
dr=$(in_ns "$G" ip -j -6 route show default | jq -r '.[0] | "\(.gateway) \(.dev) \(.protocol)"')
t_check "its default route: via fe80::1 on eth0, from the advertisement ($dr)" test "$dr" = "fe80::1 eth0 ra"
for _ in $(seq 30); do in_ns "$G" ip -6 addr show dev eth0 | grep -q tentative || break; sleep 0.1; done
peer=$(ip netns exec "$G" timeout 10 ncat -6 --recv-only -w 3 2001:db8:60::2 8060 2>"$tmp/nc.err")
t_check "the guest reaches the wan by TCP, which sees it as the router's 2001:db8:60::1 (masquerade; $peer)" \
	test "$peer" = "peer=2001:db8:60::1"
priv=$(in_ns "$W" nft -j list table inet obs | jq '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets] | add // 0')
t_check "no packet from fd60::/64 reached the wan ($priv)" test "$priv" = 0
# a solicitation now gets an answer at once (not the 10-minute period)
in_ns "$G" ip -6 route flush dev eth0 proto ra
in_ns "$G" ip link set eth0 down
in_ns "$G" ip link set eth0 up
for _ in $(seq 50); do
	dr=$(in_ns "$G" ip -j -6 route show default | jq -r '.[0].gateway // empty')
	[ -n "$dr" ] && break
	sleep 0.1
done
t_check "after its link bounced, the guest's solicitation is answered: default via fe80::1 again ($dr)" \
	test "$dr" = fe80::1
kill -TERM $srv; wait $srv
kn_expect "down lab" 0 "$R" down lab
net_snap "$R" "$tmp/s9"
jq -e '.links | map(select(.ifname == "kl6br")) | length == 0' "$tmp/s9" >/dev/null &&
	t_ok "down: the bridge is gone" || t_fail "down: the bridge is gone"
t_check "down: IPv6 forwarding back to 0" test "$(ip6_forward "$R")" = 0
t_check "down: no kvmlab table left" test -z "$(nft_tables "$R" | grep kvmlab)"
t_finish
