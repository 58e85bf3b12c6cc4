#!/usr/bin/env bash
# A real DHCP client against the VMM's DHCP server, without a VM: busybox
# udhcpc on a tap in a fresh namespace, vmm/dhcp.c (in the unit helper
# build/tests/unit/vmm_dhcp_peer) answering on the tap's other end, the
# same way virtio-net's tx filter runs it. Oracles: `ip -j` in the
# namespace, and what udhcpc hands its event script.
. "$(dirname "$0")/../lib.sh"
if ! busybox udhcpc --help >/dev/null 2>&1; then t_skip "dhcp udhcpc" "busybox udhcpc missing"; t_finish; fi
tmp=$(mktemp -d /tmp/kvmlab-dhcp.XXXXXX)
t_defer "rm -rf '$tmp'"
t_netns_new ns dhcp

t_dhcp_peer "$ns" 52:54:00:aa:bb:cc "$tmp/peer.log"

# records what udhcpc hands over; changes nothing (the host name belongs
# to this machine's UTS namespace, not the test's)
cat >"$tmp/script" <<SCRIPT
#!/bin/sh
echo "\$1 ip=\$ip mask=\$mask router=\$router dns=\$dns hostname=\$hostname mtu=\$mtu lease=\$lease serverid=\$serverid broadcast=\$broadcast" >>"$tmp/events"
case \$1 in
bound) ip addr add "\$ip/\$mask" dev "\$interface" ;;
deconfig) ip -4 addr flush dev "\$interface" ;;
esac
SCRIPT
chmod +x "$tmp/script"
t0=$EPOCHREALTIME
ip netns exec "$ns" timeout 20 busybox udhcpc -f -i kd0 -s "$tmp/script" -t 5 -T 1 -n \
	-p "$tmp/udhcpc.pid" >"$tmp/udhcpc.log" 2>&1 &
cl=$!
t_defer "kill $cl 2>/dev/null; wait $cl 2>/dev/null"
for _ in $(seq 100); do grep -q '^bound' "$tmp/events" 2>/dev/null && break; sleep 0.1; done
t1=$EPOCHREALTIME
b=$(grep '^bound' "$tmp/events" | head -1)
if [ -n "$b" ]; then t_ok "udhcpc bound (DISCOVER to ACK in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", (b-a)*1000}') ms incl. polling)"
else t_fail "udhcpc bound" "events: $(cat "$tmp/events" 2>/dev/null); log: $(tr '\n' ' ' <"$tmp/udhcpc.log")"; fi
want="bound ip=10.66.0.42 mask=24 router=10.66.0.1 dns=10.66.0.1 192.0.2.53 hostname=lab-vm mtu=1400 lease=600 serverid=10.66.0.1 broadcast=10.66.0.255"
if [ "$b" = "$want" ]; then t_ok "udhcpc got address, mask, router, DNS, host name, MTU, lease, server id, broadcast"
else t_fail "udhcpc got every option" "got '$b'"; fi
got=$(ip -n "$ns" -j -4 addr show dev kd0 | jq -r '.[0].addr_info[] | "\(.local)/\(.prefixlen)"')
if [ "$got" = "10.66.0.42/24" ]; then t_ok "ip -j: kd0 has 10.66.0.42/24"
else t_fail "ip -j: kd0 has 10.66.0.42/24" "got '$got'"; fi

# SIGUSR1: renew (unicast REQUEST to the server id); SIGUSR2: release.
# Unicast needs the server's MAC: under a VM the bridge answers ARP for
# the router address; here a static neighbour entry stands in for it.
ip -n "$ns" neigh replace 10.66.0.1 lladdr 02:00:00:66:00:01 dev kd0 nud permanent
kill -USR1 "$(cat "$tmp/udhcpc.pid")"
for _ in $(seq 50); do grep -q '^renew' "$tmp/events" 2>/dev/null && break; sleep 0.1; done
if grep -q '^renew ip=10.66.0.42 ' "$tmp/events" && grep -q '^verdict 1 .* dst 10.66.0.1$' "$tmp/peer.log"; then
	t_ok "udhcpc renew (unicast to the server id): ACK for the same address"
else t_fail "udhcpc renew" "events: $(tr '\n' '|' <"$tmp/events")"; fi
n0=$(grep -c '^verdict' "$tmp/peer.log")
kill -USR2 "$(cat "$tmp/udhcpc.pid")"
for _ in $(seq 30); do [ "$(grep -c '^verdict' "$tmp/peer.log")" -gt "$n0" ] && break; sleep 0.1; done
if tail -n1 "$tmp/peer.log" | grep -q '^verdict 2 in .* out 0 dst 10.66.0.1$'; then t_ok "udhcpc release: consumed, not answered"
else t_fail "udhcpc release" "peer log tail: $(tail -n2 "$tmp/peer.log" | tr '\n' '|')"; fi
grep -q '^verdict 1 ' "$tmp/peer.log" && [ "$(grep -c '^verdict 1 ' "$tmp/peer.log")" -ge 3 ] &&
	t_ok "server: OFFER, ACK, renew ACK sent" || t_fail "server: replies" "$(tr '\n' '|' <"$tmp/peer.log")"
t_finish
