#!/usr/bin/env bash
# kvmlab-vm dhcp NET: DHCP on a kvmlab network's bridge for the guests
# of other VMMs. Stand-in guests: network namespaces on veth ports of the
# bridge, each running busybox udhcpc (and ISC dhclient when installed).
# Oracles: what each client hands its script and ip -j in its namespace,
# and the network's nft map "leases" (nft -j) for who holds what.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
busybox udhcpc --help >/dev/null 2>&1 || { t_skip "dhcp bridge" "busybox udhcpc missing"; t_finish; }

net_new lab dlab
net_down_at_exit "$lab" lab
kn_expect "up lab" 0 "$lab" up lab --cidr 10.77.0.1/24 --bridge kldb
tmp=$KN_TMP

# guest NAME MAC: a namespace (its name in $NAME) on a veth port of kldb
guest() {
	local var=$1 mac=$2 g
	t_netns_new g "$var"
	printf -v "$var" '%s' "$g"
	ip link add "kv$var" netns "$lab" type veth peer name eth0 netns "$g" address "$mac" &&
		ip -n "$lab" link set "kv$var" master kldb up &&
		ip -n "$g" link set lo up && ip -n "$g" link set eth0 up ||
		t_fail "guest $var: veth port"
}
# client NS TAG: one udhcpc run in NS (bind, then quit); the script sets
# the address and records "ip mask router hostname serverid"
cat >"$tmp/script" <<'SCRIPT'
#!/bin/sh
case $1 in
bound|renew) ip addr add "$ip/$mask" dev "$interface"; echo "$ip $mask $router ${hostname:--} $serverid" >"$EVENTS" ;;
esac
SCRIPT
chmod +x "$tmp/script"
client() {
	rm -f "$tmp/$2.ev"
	ip netns exec "$1" env EVENTS="$tmp/$2.ev" timeout 20 busybox udhcpc -q -f -i eth0 \
		-s "$tmp/script" -t 4 -T 1 -n >"$tmp/$2.log" 2>&1
	cat "$tmp/$2.ev" 2>/dev/null
}
addr_of() { ip -n "$1" -j -4 addr show dev eth0 | jq -r '[.[0].addr_info[] | "\(.local)/\(.prefixlen)"] | join(",")'; }
# lease_of MAC: "vm addr owner" of the map element with that MAC
lease_of() {
	ip netns exec "$lab" nft -j list map ip kvmlab-lab leases | jq -r --arg m "$1" '
		.nftables[] | select(.map) | .map.elem // [] | .[] |
		select(.[0].elem.val == $m) | "\(.[0].elem.comment) \(.[1])"' |
		sed -E 's/^vm=([^ ]*) owner=([^ ]*)( reserved)? (.*)$/\1 \4 \2\3/'
}

guest g1 52:54:00:77:00:01
guest g2 52:54:00:77:00:02
guest g3 52:54:00:77:00:03
guest g4 52:54:00:77:00:04
kn_expect "lease add lab web --mac ...:03 --ip 10.77.0.50" 0 "$lab" lease add lab web \
	--mac 52:54:00:77:00:03 --ip 10.77.0.50
# g4's MAC: a lease a running VMM holds (this shell stands in for it)
kn_expect "lease add lab busy --mac ...:04" 0 "$lab" lease add lab busy --mac 52:54:00:77:00:04
kn_expect "lease take lab busy --pid $$" 0 "$lab" lease take lab busy --pid $$

serve() {
	ip netns exec "$lab" "$KVMLAB_VM" dhcp lab 2>"$tmp/srv$1.err" &
	srv=$!
	t_defer "kill $srv 2>/dev/null"
	for _ in $(seq 50); do grep -q 'serving on kldb' "$tmp/srv$1.err" && return 0; sleep 0.1; done
	t_fail "dhcp lab: serving" "$(cat "$tmp/srv$1.err")"
}
serve 1

read -r ip1 mask1 router1 host1 sid1 <<<"$(client "$g1" c1)"
l1=$(lease_of 52:54:00:77:00:01)
if [[ $ip1 == 10.77.0.* ]] && [ "$mask1" = 24 ] && [ "$router1" = 10.77.0.1 ] && [ "$sid1" = 10.77.0.1 ] &&
	[ "$host1" = - ] && [ "$(addr_of "$g1")" = "$ip1/24" ]; then
	t_ok "g1 bound $ip1/24, router and server id 10.77.0.1, no host name (ip -j agrees)"
else t_fail "g1 bound" "got '$ip1 $mask1 $router1 $host1 $sid1'; $(tail -n3 "$tmp/c1.log" "$tmp/srv1.err" | tr '\n' '|')"; fi
read -r v a o <<<"$l1"
t_check "nft map: g1's MAC holds lease mac-525400770001 at $ip1, owned by the server ($l1)" \
	test "$v" = mac-525400770001 -a "$a" = "$ip1" -a "${o%%/*}" = "$srv"

read -r ip2 _ <<<"$(client "$g2" c2)"
if [[ $ip2 == 10.77.0.* ]] && [ "$ip2" != "$ip1" ] && [ "$(lease_of 52:54:00:77:00:02 | awk '{print $2}')" = "$ip2" ]; then
	t_ok "g2 bound $ip2, another address, in the map under its MAC"
else t_fail "g2 bound" "'$ip2' (g1 $ip1); map: $(lease_of 52:54:00:77:00:02)"; fi

read -r ip3 _ _ host3 _ <<<"$(client "$g3" c3)"
t_check "g3 (reserved as web): 10.77.0.50 and host name web ($ip3 $host3)" \
	test "$ip3" = 10.77.0.50 -a "$host3" = web

ev4=$(client "$g4" c4)
if [ -z "$ev4" ] && grep -q '52:54:00:77:00:04: not answered: lease busy is held by pid' "$tmp/srv1.err"; then
	t_ok "g4, whose lease a running VMM holds: not answered (said once on stderr)"
else t_fail "g4 not answered" "event '$ev4'; $(cat "$tmp/srv1.err")"; fi

# one server per network
err=$(ip netns exec "$lab" timeout 5 "$KVMLAB_VM" dhcp lab 2>&1); rc=$?
t_check "a second server: exit 1, port 67 in use ($err)" \
	test $rc = 1 -a "$err" = "kvmlab-vm: dhcp lab: UDP port 67 on kldb: in use: another DHCP server serves it (dnsmasq, another kvmlab-vm dhcp)"

# stop: the leases taken go back: mac-... ones go, the reservation stays
kill -TERM $srv
wait $srv; rc=$?
t_check "SIGTERM: the server exits 0" test $rc = 0
t_check "the mac-... leases are gone from the map" test -z "$(lease_of 52:54:00:77:00:01)$(lease_of 52:54:00:77:00:02)"
read -r v a o <<<"$(lease_of 52:54:00:77:00:03)"
t_check "web stays reserved, without an owner ($v $a $o)" test "$v $a $o" = "web 10.77.0.50 0/0 reserved"

# a new server: the same MAC gets the same address again
serve 2
ip -n "$g1" -4 addr flush dev eth0
read -r ip1b _ <<<"$(client "$g1" c1b)"
t_check "after a restart g1 gets $ip1 again ($ip1b)" test -n "$ip1" -a "$ip1b" = "$ip1"
if command -v dhclient >/dev/null; then
	ip -n "$g2" -4 addr flush dev eth0
	cat >"$tmp/dhook" <<HOOK
#!/bin/sh
case \$reason in BOUND|REBOOT) echo "\$reason \$new_ip_address" >"$tmp/dh.ev" ;; esac
HOOK
	chmod +x "$tmp/dhook"
	ip netns exec "$g2" timeout 20 dhclient -4 -1 -sf "$tmp/dhook" -lf "$tmp/dh.leases" \
		-pf "$tmp/dh.pid" eth0 >"$tmp/dh.log" 2>&1
	t_defer "[ -s '$tmp/dh.pid' ] && kill \$(cat '$tmp/dh.pid')"
	t_check "ISC dhclient on g2: BOUND $ip2 ($(cat "$tmp/dh.ev" 2>/dev/null))" \
		test "$(cat "$tmp/dh.ev" 2>/dev/null)" = "BOUND $ip2"
else
	t_skip "ISC dhclient on g2" "isc-dhcp-client not installed"
fi
kill -TERM $srv; wait $srv

# the network taken down under a running server: it stops, and says so
serve 3
kn_expect "down lab under the server" 0 "$lab" down lab
t_vm_wait $srv 8
t_check "the server stops once its bridge is gone: exit 1, one line (${rc:-still running})" \
	test "${rc:-x}" = 1 -a "$(tail -n1 "$tmp/srv3.err")" = "kvmlab-vm: dhcp lab: bridge kldb is gone (kvmlab-net down?): stopping"

# bad input
err=$(ip netns exec "$lab" timeout 5 "$KVMLAB_VM" dhcp nosuch 2>&1); rc=$?
t_check "dhcp nosuch: exit 1, one line ($err)" test $rc = 1 -a "$err" = "kvmlab-vm: dhcp nosuch: no such kvmlab network here (kvmlab-net up)"
err=$(ip netns exec "$lab" "$KVMLAB_VM" dhcp 2>&1); rc=$?
t_check "dhcp without a network: exit 2" test $rc = 2
t_finish
