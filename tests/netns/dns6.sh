#!/usr/bin/env bash
# IPv6 DNS servers: up --dns with IPv6 entries (a --cidr6 network), the
# host's IPv6 resolvers otherwise, and the router advertisements' RDNSS
# option (RFC 8106) that kvmlab-vm dhcp sends. Namespaces:
#   guest --veth-- [kl62br] router
# Oracles: nft (the table comments), show --json, the lease line, and
# rdisc6 (ndisc6) in the guest namespace, which solicits and decodes the
# advertisement itself.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
command -v rdisc6 >/dev/null || { t_fail "dns6" "rdisc6 missing (ndisc6; scripts/install-deps)"; t_finish; }

net_new R router
net_new G guest
net_down_at_exit "$R" lab
net_down_at_exit "$R" lab2
net_down_at_exit "$R" lab3
tmp=$KN_TMP
D6A=2001:db8:62::53 D6B=fd63::53
UP=(up lab --cidr 10.62.0.1/24 --cidr6 fd62::1/64 --bridge kl62br --dns "10.62.0.53,$D6A,$D6B")
comment() { in_ns "$R" nft list table "$1" "$2" | sed -n 's/^[[:space:]]*comment "\(.*\)"$/\1/p'; }

kn_expect "up --cidr6 --dns with IPv4 and IPv6 servers" 0 "$R" "${UP[@]}"
c4=$(comment ip kvmlab-lab) c6=$(comment ip6 kvmlab-lab)
t_check "the ip table's definition keeps the IPv4 server ($c4)" grep -q ' dns=10.62.0.53 ' <<<"$c4"
t_check "the ip6 table's definition holds the IPv6 ones ($c6)" \
	test "$c6" = "kvmlab network lab: cidr6=fd62::1/64 fwd6_prev=0 dns6=$D6A,$D6B"
kn "$R" show --json lab
t_check "show --json: servers, servers6, from network" jq_true \
	".networks[0].dns == {\"servers\": [\"10.62.0.53\"], \"from\": \"network\", \"servers6\": [\"$D6A\", \"$D6B\"]}" <<<"$KN_OUT"
kn "$R" show lab
t_check "show: one dns line with all three" grep -qx "  dns      10.62.0.53, $D6A, $D6B (up --dns)" <<<"$KN_OUT"
kn "$R" lease take lab web --pid $$
t_check "lease take: the line ends with dns6=$D6A,$D6B" \
	test "$KN_RC" = 0 -a "${KN_OUT##* dns6=}" = "$D6A,$D6B"
kn "$R" lease del lab web

net_snap "$R" "$tmp/s1"
kn_expect "up again: exit 0" 0 "$R" "${UP[@]}"
net_snap "$R" "$tmp/s2"
net_same "up again changes nothing" "$tmp/s1" "$tmp/s2"

# refused: one line, exit 1, nothing changed
net_refuse "$R" "lab with another IPv6 DNS server" "already up with a different dns" \
	up lab --cidr 10.62.0.1/24 --cidr6 fd62::1/64 --bridge kl62br --dns "10.62.0.53,$D6A"
net_refuse "$R" "an IPv6 DNS server on a network without --cidr6" "needs IPv6 on the network (--cidr6)" \
	up lab2 --cidr 10.64.0.1/24 --dns "$D6A"
for bad in fe80::53 ::1 ff02::fb ::ffff:10.0.0.53 "$D6A,2001:db8::2,2001:db8::3,2001:db8::4"; do
	net_refuse "$R" "--dns $bad" "network lab2: dns $bad:" up lab2 --cidr 10.64.0.1/24 --cidr6 fd64::1/64 --dns "$bad"
done

# the advertisement, as a third party decodes it
in_ns "$G" ip link add eth0 address 52:54:00:62:00:02 type veth peer name g62r netns "$R"
in_ns "$R" ip link set g62r master kl62br up
in_ns "$G" ip link set eth0 up
ip netns exec "$R" "$KVMLAB_VM" dhcp lab 2>"$tmp/srv.err" &
srv=$!
t_defer "kill $srv 2>/dev/null"
for _ in $(seq 50); do grep -q 'serving on kl62br' "$tmp/srv.err" && break; sleep 0.1; done
# eth0's link-local address must be usable (no DAD left) to solicit
for _ in $(seq 50); do in_ns "$G" ip -6 addr show dev eth0 scope link | grep -q tentative || break; sleep 0.1; done
in_ns "$G" rdisc6 -1 -r 5 -w 1000 eth0 >"$tmp/ra" 2>&1
t_check "rdisc6: an answer with the prefix fd62::/64 ($(tr -s ' ' <"$tmp/ra" | tr '\n' ';' | cut -c1-200))" \
	grep -qE '^ Prefix +: fd62::/64' "$tmp/ra"
t_check "rdisc6: both IPv6 DNS servers, in order" \
	test "$(sed -n 's/^ Recursive DNS server *: *//p' "$tmp/ra" | paste -sd' ')" = "$D6A $D6B"
t_check "rdisc6: their lifetime is 1800 s (3 x the 600 s period)" \
	grep -qE '^ +DNS servers lifetime +: +1800 \(0x00000708\) seconds' "$tmp/ra"
kill -TERM $srv; wait $srv

# without --dns: the host's resolvers, IPv6 ones only on an IPv6 network
printf 'nameserver 127.0.0.53\n' >"$tmp/stub"
printf 'nameserver 192.0.2.53\nnameserver fe80::1%%eth0\nnameserver 2001:db8:99::53\nnameserver ::1\n' >"$tmp/resolved"
kn_expect "up lab3 --cidr6, no --dns" 0 "$R" up lab3 --cidr 10.63.0.1/24 --cidr6 fd65::1/64 --bridge kl63br
kn_expect "up lab2, IPv4 only, no --dns" 0 "$R" up lab2 --cidr 10.64.0.1/24 --bridge kl64br
t_check "no dns6 key in the ip6 table without IPv6 servers ($(comment ip6 kvmlab-lab3))" \
	test "$(comment ip6 kvmlab-lab3)" = "kvmlab network lab3: cidr6=fd65::1/64 fwd6_prev=0"
out=$(ip netns exec "$R" env KVMLAB_RESOLV_CONF="$tmp/stub" KVMLAB_RESOLVED_CONF="$tmp/resolved" \
	"$KVMLAB_NET" show --json)
t_check "host resolvers: lab3 gets 192.0.2.53 and 2001:db8:99::53 (link-local and loopback dropped)" jq_true \
	'.networks[] | select(.name == "lab3") | .dns == {"servers": ["192.0.2.53"], "from": "host", "servers6": ["2001:db8:99::53"]}' <<<"$out"
t_check "host resolvers: lab2 (no IPv6) gets no IPv6 one" jq_true \
	'.networks[] | select(.name == "lab2") | .dns == {"servers": ["192.0.2.53"], "from": "host", "servers6": []}' <<<"$out"
out=$(ip netns exec "$R" env KVMLAB_RESOLV_CONF="$tmp/stub" KVMLAB_RESOLVED_CONF="$tmp/resolved" \
	"$KVMLAB_NET" lease take lab3 w3 --pid $$)
t_check "lease take on lab3: dns=192.0.2.53 ... dns6=2001:db8:99::53 ($out)" \
	test -n "$(grep -E ' dns=192\.0\.2\.53 .* dns6=2001:db8:99::53$' <<<"$out")"
kn "$R" lease del lab3 w3

for n in lab lab2 lab3; do kn_expect "down $n" 0 "$R" down "$n"; done
t_check "no kvmlab table left" test -z "$(nft_tables "$R" | grep kvmlab)"
t_finish
