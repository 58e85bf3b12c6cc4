#!/usr/bin/env bash
# The VMM's DHCP server against the clients other distributions run,
# without a VM (as dhcp_udhcpc.sh does for busybox): ISC dhclient (Debian's
# ifupdown, older Ubuntu and RHEL) and dhcpcd (Alpine, Arch, Raspberry Pi
# OS). Each runs on a tap in a fresh namespace, with vmm/dhcp.c
# (build/tests/unit/vmm_dhcp_peer) answering on the tap's other end.
# Oracles: `ip -j` in the namespace, what each client hands its hook
# script, and the client's own log. Neither client may leave a file on
# the machine: dhclient's lease and pid go to the test's directory, and
# dhcpcd (whose paths are compiled in) runs in a mount namespace with
# tmpfs over its state directories.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d /tmp/kvmlab-dhcpc.XXXXXX)
t_defer "rm -rf '$tmp'"
t_netns_new ns dhcpc
t_dhcp_peer "$ns" 52:54:00:aa:bb:cd "$tmp/peer.log"
# the server's MAC for unicast (a release): under a VM the bridge answers
# ARP for the router; here a static neighbour entry stands in for it
ip -n "$ns" neigh replace 10.66.0.1 lladdr 02:00:00:66:00:01 dev kd0 nud permanent

# hook script for both clients: one line per call, the reason and every
# new_* variable, sorted (both clients use those names)
cat >"$tmp/hook" <<HOOK
#!/bin/sh
{ echo "reason=\$reason"; env | grep '^new_' | sort; } | tr '\n' ' ' >>"$tmp/events"
echo >>"$tmp/events"
HOOK
# dhclient leaves the interface to its script (dhclient-script's job):
# this one records, then sets the address it is given, or takes it away
{ cat "$tmp/hook"; cat <<'HOOK'
case $reason in
BOUND|REBOOT|RENEW) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
RELEASE|EXPIRE|STOP|PREINIT) ip -4 addr flush dev "$interface" ;;
esac
HOOK
} >"$tmp/hook-dhclient"
chmod +x "$tmp/hook" "$tmp/hook-dhclient"
verdicts() { grep -c "^verdict $1 " "$tmp/peer.log"; }
# event_has REASON VAR=VALUE...: the last REASON line carries every pair
event_has() {
	local line r=$1; shift
	line=$(grep "^reason=$r " "$tmp/events" | tail -n1)
	[ -n "$line" ] || return 1
	for kv in "$@"; do case " $line " in *" $kv "*) ;; *) echo "missing $kv in: $line" >&2; return 1 ;; esac; done
}
addr_is() {
	[ "$(ip -n "$ns" -j -4 addr show dev kd0 | jq -r '[.[0].addr_info[] | "\(.local)/\(.prefixlen)"] | join(",")')" = "$1" ]
}

# ---- ISC dhclient ----------------------------------------------------
if ! command -v dhclient >/dev/null; then
	t_skip "dhclient" "isc-dhcp-client not installed"
else
	: >"$tmp/events"
	dhc() { ip netns exec "$ns" timeout 30 dhclient -4 -v -1 -sf "$tmp/hook-dhclient" -lf "$tmp/dhclient.leases" \
		-pf "$tmp/dhclient.pid" "$@" kd0 >>"$tmp/dhclient.log" 2>&1; }
	t_defer "[ -s '$tmp/dhclient.pid' ] && kill \$(cat '$tmp/dhclient.pid')"
	# -1: one try, then it goes to the background holding the lease
	if dhc && event_has BOUND new_ip_address=10.66.0.42 new_subnet_mask=255.255.255.0 \
		new_routers=10.66.0.1 "new_domain_name_servers=10.66.0.1 192.0.2.53" new_host_name=lab-vm \
		new_interface_mtu=1400 new_dhcp_lease_time=600 new_dhcp_server_identifier=10.66.0.1 \
		new_broadcast_address=10.66.0.255 2>>"$tmp/why" && addr_is 10.66.0.42/24; then
		t_ok "dhclient: BOUND with address, mask, router, DNS, host name, MTU, lease, server id, broadcast (ip -j: 10.66.0.42/24)"
	else t_fail "dhclient: BOUND with every option" "$(tail -n3 "$tmp/why" "$tmp/dhclient.log" | tr '\n' '|')"; fi
	# -r: a release, unicast to the server id; the server takes it back
	# without answering (DHCPRELEASE has no reply)
	n0=$(verdicts 2)
	dhc -r
	for _ in $(seq 30); do [ "$(verdicts 2)" -gt "$n0" ] && break; sleep 0.1; done
	if [ "$(verdicts 2)" -gt "$n0" ] && tail -n1 "$tmp/peer.log" | grep -q ' out 0 dst 10.66.0.1$'; then
		t_ok "dhclient -r: the release reaches the server (unicast) and gets no reply"
	else t_fail "dhclient -r: release" "peer log tail: $(tail -n2 "$tmp/peer.log" | tr '\n' '|')"; fi
	# INIT-REBOOT: a client that remembers an address asks for it with a
	# REQUEST and no server id, as a rebooted guest does. The lease file
	# names one the server did not give: it must be refused (NAK) and
	# the client must end on the right one through DISCOVER.
	cat >"$tmp/dhclient.leases" <<LEASE
lease {
  interface "kd0";
  fixed-address 10.66.0.77;
  option subnet-mask 255.255.255.0;
  option dhcp-lease-time 600;
  option dhcp-server-identifier 10.66.0.1;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
LEASE
	: >"$tmp/dhclient.log"
	if dhc && grep -q 'DHCPREQUEST for 10.66.0.77' "$tmp/dhclient.log" &&
		grep -q 'DHCPNAK from 10.66.0.1' "$tmp/dhclient.log" &&
		event_has BOUND new_ip_address=10.66.0.42 2>>"$tmp/why" && addr_is 10.66.0.42/24; then
		t_ok "dhclient INIT-REBOOT with a stale address: NAK, then DISCOVER to 10.66.0.42 (ip -j)"
	else t_fail "dhclient INIT-REBOOT stale" "$(tr '\n' '|' <"$tmp/dhclient.log")"; fi
	# the same with the right address: ACK at once, no DISCOVER. The
	# client is stopped, not released, as when its machine goes down.
	[ -s "$tmp/dhclient.pid" ] && kill "$(cat "$tmp/dhclient.pid")" 2>/dev/null
	ip -n "$ns" -4 addr flush dev kd0
	: >"$tmp/dhclient.log"
	if dhc && grep -q 'DHCPREQUEST for 10.66.0.42' "$tmp/dhclient.log" &&
		grep -q 'DHCPACK of 10.66.0.42' "$tmp/dhclient.log" &&
		! grep -q DHCPDISCOVER "$tmp/dhclient.log" && event_has REBOOT new_ip_address=10.66.0.42 2>>"$tmp/why"; then
		t_ok "dhclient INIT-REBOOT with its address: ACK without DISCOVER (REBOOT)"
	else t_fail "dhclient INIT-REBOOT" "$(tr '\n' '|' <"$tmp/dhclient.log")"; fi
	dhc -r
	ip -n "$ns" -4 addr flush dev kd0
fi

# ---- dhcpcd ----------------------------------------------------------
if ! command -v dhcpcd >/dev/null; then
	t_skip "dhcpcd" "dhcpcd-base not installed"
else
	: >"$tmp/events"
	# its client id is a DUID (RFC 4361), not the MAC: the lease must
	# still be found by the hardware address. -A: no ARP probe (5 s).
	ip netns exec "$ns" unshare -m sh -c '
		for d in /var/lib/dhcpcd /run/dhcpcd; do
			[ -d "$d" ] && mount -t tmpfs kvmlab-test "$d"
		done
		exec timeout 30 dhcpcd -d -4 -1 -A --duid -t 15 --nobackground --noipv4ll -f /dev/null \
			--option interface_mtu,host_name -c "$1" kd0' sh "$tmp/hook" >"$tmp/dhcpcd.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && event_has BOUND new_ip_address=10.66.0.42 new_subnet_cidr=24 new_routers=10.66.0.1 \
		"new_domain_name_servers=10.66.0.1 192.0.2.53" new_host_name=lab-vm new_interface_mtu=1400 \
		new_dhcp_lease_time=600 new_dhcp_server_identifier=10.66.0.1 2>>"$tmp/why"; then
		t_ok "dhcpcd: BOUND with address, prefix, router, DNS, host name, MTU, lease, server id"
	else t_fail "dhcpcd: BOUND" "rc $rc; $(tail -n3 "$tmp/why" "$tmp/dhcpcd.log" | tr '\n' '|')"; fi
	grep -q '^DUID ' "$tmp/dhcpcd.log" && t_ok "dhcpcd used a DUID client id (its log), and still got the MAC's lease" ||
		t_skip "dhcpcd DUID" "not in its log"
	if addr_is 10.66.0.42/24 &&
		[ "$(ip -n "$ns" -j -4 route show default | jq -r '.[0].gateway')" = 10.66.0.1 ] &&
		[ "$(ip -n "$ns" -j -4 route show default | jq -r '.[0].metrics[0].mtu')" = 1400 ]; then
		t_ok "dhcpcd: ip -j shows 10.66.0.42/24, default via 10.66.0.1 with MTU 1400 (dhcpcd puts the MTU on its routes)"
	else t_fail "dhcpcd: ip -j" "$(ip -n "$ns" -4 -o addr; ip -n "$ns" route; ip -n "$ns" -o link show kd0)"; fi
fi
t_finish
