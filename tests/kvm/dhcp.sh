#!/usr/bin/env bash
# DHCP from the VMM: the default guest, with no kvmlab.ip=, runs busybox
# udhcpc on eth0 and `kvmlab-vm run --net` answers it from its lease.
# Oracles: what the guest prints of its own configuration (busybox ip,
# hostname, /sys, resolv.conf), pings between guests and to the bridge,
# and the host's neighbour table (`ip -j neigh`) for who sits at which
# address. Checks:
#   1. a named VM gets an address in the subnet, router, host name = name,
#      the bridge's MTU, and reaches the bridge
#   2. while it runs, the host sees a VM's MAC at its address; a second VM
#      (no --name: vm-<pid>, printed) gets another address and reaches
#      the first
#   3. the named VM, restarted, gets the same address, and its renew
#      (unicast to the router) is ACKed; no DHCP request of 1-3 reached
#      the bridge (a bridge-family nft counter; the first VM runs with
#      --vhost off, the others with the default, vhost where there is one)
#   4. kill -9 a VM: the next VM of that name reclaims its lease (same
#      address); a live VM's name is refused (needs net/lease.c)
#   5. --forward: the host reaches a guest service (needs net/forward.c)
#   6. kvmlab-vm list (its NIC's tap, address, MAC and forward against
#      the guest and ip -j) and stop (the guest's power button; the tap
#      and forward gone when it returns)
#   7. --on-reboot restart: a guest that reboots boots again on the same
#      tap and lease (run while 5's VM waits for 6)
# Runs where /dev/kvm boots stock kernels (tests/kvm/run takes care).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
TMO=${KVMLAB_KVM_TIMEOUT:-90}
VM=$KVMLAB_VM
if ! "$VM" check >/dev/null 2>&1; then t_skip "dhcp" "kvmlab-vm check: /dev/kvm not usable"; exit 0; fi
for f in "$KVMLAB_BUILD/guest/bzImage" "$KVMLAB_BUILD/guest/initrd.img"; do
	[ -f "$f" ] || { t_fail "dhcp: default guest" "$f missing (scripts/build-guest)"; t_finish; }
done
work=$(mktemp -d /tmp/kvmlab-dhcp.XXXXXX) || exit 1
t_defer "rm -rf '$work'"
t_netns_new lab dhcplab
t_defer "ip netns exec $lab '$KVMLAB_NET' down lab"
ip -n "$lab" link set lo up
if ! ip netns exec "$lab" "$KVMLAB_NET" up lab --cidr 192.168.58.1/24 >"$work/up" 2>&1; then
	t_fail "dhcp: kvmlab-net up" "$(cat "$work/up")"
	t_finish
fi
BRIDGE=$(ip -n "$lab" -j link show type bridge | jq -r '.[0].ifname')
# The observer of what reaches the bridge from its ports (the bridge
# family's prerouting runs as the bridge takes a frame): DHCP requests
# must not (the VMM answers them; the tap's ingress drops them), while
# the guests' pings must (the control that the counters count at all).
ip netns exec "$lab" nft -f - <<'NFT' || t_fail "dhcp: observer nft table"
table bridge kltest {
	chain pre {
		type filter hook prerouting priority -300;
		udp dport 67 counter
		icmp type echo-request counter
	}
}
NFT
# brcount N: packets counted by the observer's rule N (0: DHCP, 1: ping)
brcount() { ip netns exec "$lab" nft -j list chain bridge kltest pre |
	jq "[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets][$1]"; }
BRMTU=$(ip -n "$lab" -j link show dev "$BRIDGE" | jq -r '.[0].mtu')

BASE="console=ttyS0 reboot=k quiet"
# what every guest prints about itself, then its own extra command
# (no double quotes: they delimit kvmlab.run= on the kernel command line)
INFO="echo G-IP=\$(ip -4 -o addr show dev eth0 | awk '{print \$4}'); echo G-HOST=\$(hostname); echo G-MTU=\$(cat /sys/class/net/eth0/mtu); echo G-GW=\$(ip route | awk '/^default/{print \$3}'); echo G-MAC=\$(cat /sys/class/net/eth0/address); ping -c 2 -W 3 192.168.58.1 >/dev/null && echo G-PING-GW=ok"

# start NAME ARGS... -- RUNCMD: boot a VM in the background; sets PID_NAME
start() {
	local n=$1; shift
	local args=()
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	ip netns exec "$lab" "$VM" run --net lab --mem 192M "${args[@]}" \
		--cmdline "$BASE kvmlab.run=\"$INFO; $1\"" </dev/null >"$work/$n.out" 2>"$work/$n.err" &
	printf -v "PID_$n" '%s' $!
	t_defer "kill -9 $! 2>/dev/null"
}
# wait_for NAME PATTERN: until the console has it or TMO passes
wait_for() {
	local i
	for ((i = 0; i < TMO * 5; i++)); do
		grep -q "$2" "$work/$1.out" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}
# finish NAME: wait for the VM to exit (bounded); echo its status
finish() {
	local p=PID_$1 i
	for ((i = 0; i < TMO * 5; i++)); do kill -0 "${!p}" 2>/dev/null || break; sleep 0.2; done
	kill -9 "${!p}" 2>/dev/null
	wait "${!p}" 2>/dev/null
}
g() { tr -d '\r' <"$work/$1.out" | sed -n "s/^$2=//p" | tail -n1; }
desc() { echo "stderr: $(tail -n 3 "$work/$1.err" | tr '\n' ' ' | cut -c1-200); console: $(tr -d '\r' <"$work/$1.out" | grep -v '^$' | grep -v '^\[' | tail -n 4 | tr '\n' '|' | cut -c1-300)"; }
dhcp_ms() { tr -d '\r' <"$work/$1.out" | sed -n 's/^kvmlab-init: dhcp: .*(\([0-9]*\) ms)$/\1/p' | head -1; }
# the host's neighbour entry for ADDR on the bridge: its MAC
host_mac() { ip -n "$lab" -j neigh show dev "$BRIDGE" | jq -r --arg a "$1" '.[] | select(.dst == $a) | .lladdr' | head -1; }

# ---- 1. a named VM (the VMM's own data path: its tx path answers DHCP;
# later VMs take the default, vhost-net where the host has it, where a
# packet socket on the tap answers)
start web --name web --vhost off -- 'true'
finish web
rc=$?
ipw=$(g web G-IP)
if [ "$rc" = 0 ] && [[ $ipw == 192.168.58.*/24 ]] && [ "$ipw" != 192.168.58.1/24 ]; then
	t_ok "dhcp: default guest got $ipw by DHCP through run --net (udhcpc: $(dhcp_ms web) ms)"
else
	t_fail "dhcp: default guest got an address by DHCP" "rc $rc, G-IP '$ipw'; $(desc web)"
fi
[ "$(g web G-GW)" = 192.168.58.1 ] && t_ok "dhcp: default route via the bridge address" ||
	t_fail "dhcp: default route via the bridge address" "G-GW '$(g web G-GW)'"
[ "$(g web G-HOST)" = web ] && t_ok "dhcp: guest host name is the VM name" ||
	t_fail "dhcp: guest host name is the VM name" "G-HOST '$(g web G-HOST)'"
[ "$(g web G-MTU)" = "$BRMTU" ] && t_ok "dhcp: guest MTU is the bridge's ($BRMTU)" ||
	t_fail "dhcp: guest MTU is the bridge's" "G-MTU '$(g web G-MTU)', bridge $BRMTU"
[ "$(g web G-PING-GW)" = ok ] && t_ok "dhcp: guest reaches the bridge" ||
	t_fail "dhcp: guest reaches the bridge" "$(desc web)"
grep -q "VM web on lab" "$work/web.err" && t_ok "dhcp: run --net --name says which VM it is" ||
	t_fail "dhcp: run --net --name says which VM it is" "$(desc web)"

# ---- 2. two at once: the first waits for the second to reach it
start one --name one -- 'sleep 120'
if wait_for one '^G-PING-GW='; then
	ip1=$(g one G-IP)
	# while it runs: a port leaving the bridge may change the bridge's
	# MAC, which flushes its neighbour table
	hm=$(host_mac "${ip1%/*}")
	if [ -n "$hm" ] && [ "$hm" = "$(g one G-MAC)" ]; then
		t_ok "dhcp: the host's neighbour table has ${ip1%/*} at the guest's MAC $hm"
	else
		t_fail "dhcp: the host's neighbour table has the guest" "host '$hm', guest MAC '$(g one G-MAC)'; $(ip -n "$lab" -j neigh)"
	fi
	start two -- "ping -c 3 -W 3 ${ip1%/*} >/dev/null && echo G-PEER=ok"
	finish two
	ip2=$(g two G-IP)
	kill -TERM "$PID_one"
	finish one
	rc1=$?
	if [[ $ip2 == 192.168.58.*/24 ]] && [ "$ip1" != "$ip2" ]; then
		t_ok "dhcp: two VMs on one network: $ip1 and $ip2"
	else
		t_fail "dhcp: two VMs on one network get different addresses" "'$ip1' and '$ip2'; $(desc two)"
	fi
	[ "$(g two G-PEER)" = ok ] && t_ok "dhcp: the second VM reaches the first" ||
		t_fail "dhcp: the second VM reaches the first" "$(desc two)"
	name2=$(sed -n 's/^kvmlab-vm: VM \(vm-[0-9]*\) on lab.*/\1/p' "$work/two.err")
	if [ -n "$name2" ] && [ "$(g two G-HOST)" = "$name2" ]; then
		t_ok "dhcp: no --name: $name2, printed on stderr and used as host name"
	else
		t_fail "dhcp: no --name: vm-<pid> printed and used" "stderr name '$name2', host '$(g two G-HOST)'"
	fi
	[ "$rc1" = 143 ] && t_ok "dhcp: SIGTERM ends a VM (143)" || t_fail "dhcp: SIGTERM ends a VM (143)" "rc $rc1"
else
	t_fail "dhcp: two VMs on one network" "the first never reached the bridge; $(desc one)"
fi

# ---- 3. restart: same address
# (and renews: SIGUSR1 makes udhcpc send a unicast REQUEST to the
# server id, which the guest resolves to the bridge's MAC)
start web2 --name web -- 'kill -USR1 $(pidof udhcpc); sleep 3'
finish web2
[ -n "$ipw" ] && [ "$(g web2 G-IP)" = "$ipw" ] && t_ok "dhcp: restarted VM web keeps $ipw" ||
	t_fail "dhcp: restarted VM keeps its address" "first '$ipw', now '$(g web2 G-IP)'; $(desc web2)"
tr -d '\r' <"$work/web2.out" | grep -q "^kvmlab-init: dhcp: renewed ${ipw:-none} on eth0" &&
	t_ok "dhcp: the guest's renew (unicast to the router) is ACKed" ||
	t_fail "dhcp: the guest's renew is ACKed" "$(desc web2)"

dh=$(brcount 0) pg=$(brcount 1)
if [ "$dh" = 0 ] && [ "${pg:-0}" -gt 0 ] 2>/dev/null; then
	t_ok "dhcp: no DHCP request reached the bridge (the guests' $pg pings did), vhost off and $(if [ -c /dev/vhost-net ]; then echo on; else echo 'auto (no vhost-net)'; fi)"
else
	t_fail "dhcp: no DHCP request reaches the bridge" "bridge counted $dh DHCP requests and $pg pings"
fi

# ---- 4. kill -9, then reclaim
start crash --name crash -- 'sleep 120'
if wait_for crash '^G-IP='; then
	ipc=$(g crash G-IP)
	start dup --name crash -- 'true'
	finish dup
	rcd=$?
	if [ "$rcd" = 1 ] && [ "$(grep -c . "$work/dup.err")" = 1 ] && grep -q crash "$work/dup.err"; then
		t_ok "dhcp: a live VM's name is refused (one line, exit 1)"
	else
		t_fail "dhcp: a live VM's name is refused" "rc $rcd; $(desc dup)"
	fi
	# (bash's "Killed" job notice goes with the block's stderr)
	{ kill -9 "$PID_crash"; finish crash; } 2>/dev/null
	start crash2 --name crash -- 'true'
	finish crash2
	rc=$?
	if [ "$rc" = 0 ] && [ "$(g crash2 G-IP)" = "$ipc" ]; then
		t_ok "dhcp: after kill -9, the next VM crash reclaims the stale lease ($ipc)"
	else
		t_fail "dhcp: after kill -9, the lease is reclaimed" "rc $rc, first '$ipc', now '$(g crash2 G-IP)'; $(desc crash2)"
	fi
else
	t_fail "dhcp: kill -9 and reclaim" "the VM never printed its address; $(desc crash)"
fi

# ---- 5. --forward from the host to a guest service
start fwd --name fwd --forward 18080:8080 -- 'echo G-LISTEN=1; nc -l -p 8080 -e echo hello-from-guest; sleep 600'
if wait_for fwd '^G-LISTEN='; then
	got=$(ip netns exec "$lab" timeout 10 ncat 192.168.58.1 18080 </dev/null 2>&1)
	[[ $got == *hello-from-guest* ]] && t_ok "dhcp: --forward 18080:8080 reaches the guest" ||
		t_fail "dhcp: --forward reaches the guest" "got '$got'"
else
	t_fail "dhcp: --forward reaches the guest" "$(desc fwd)"
fi

# ---- 7 (while fwd runs). --on-reboot restart: the guest marks its disk
# and reboots; the second boot sees the mark and powers off. Both boots
# take the same address by DHCP through the same tap and reach the bridge.
truncate -s 1M "$work/rb.img"
start rb --name rb --on-reboot restart --disk "$work/rb.img" -- 'if dd if=/dev/vda bs=5 count=1 2>/dev/null | grep -q BOOT1; then echo G-BOOT=2; else echo BOOT1 | dd of=/dev/vda conv=fsync 2>/dev/null; echo G-BOOT=1; reboot -f; sleep 30; fi'
finish rb
rc=$?
ips=$(tr -d '\r' <"$work/rb.out" | sed -n 's/^G-IP=//p' | sort -u | tr '\n' ' ')
nip=$(tr -d '\r' <"$work/rb.out" | grep -c '^G-IP=')
npg=$(tr -d '\r' <"$work/rb.out" | grep -c '^G-PING-GW=ok')
boots=$(tr -d '\r' <"$work/rb.out" | sed -n 's/^G-BOOT=//p' | tr '\n' ' ')
if [ "$rc" = 0 ] && [ "$boots" = "1 2 " ] && [ "$nip" = 2 ] && [[ $ips == 192.168.58.*/24" " ]] && [ "$npg" = 2 ] &&
	grep -q '^kvmlab-vm: the guest rebooted: boot 2 of VM rb$' "$work/rb.err"; then
	t_ok "dhcp: --on-reboot restart: the guest rebooted and booted again (its disk's mark seen), both boots got ${ips% } and reached the bridge; exit 0"
else
	t_fail "dhcp: --on-reboot restart" "rc $rc, boots '$boots', addresses '$ips' ($nip), pings $npg; $(desc rb)"
fi

# ---- 6. kvmlab-vm list and stop on the running VM: what list says of
# its NIC against the guest's own words and ip -j, then a graceful stop
# that returns only once the VMM has removed its tap and forward
j=$(ip netns exec "$lab" "$VM" list fwd --json 2>&1)
tapf=$(jq -r '.[0].nics[0].tap' <<<"$j" 2>/dev/null)
ports=$(ip -n "$lab" -j link show master "$BRIDGE" | jq -r '.[].ifname' | tr '\n' ' ')
if jq -e --arg ip "$(g fwd G-IP)" --arg mac "$(g fwd G-MAC)" '.[0].name == "fwd" and
	.[0].nics[0].net == "lab" and .[0].nics[0].addr == $ip and .[0].nics[0].mac == $mac and
	.[0].nics[0].forwards == [{"proto": "tcp", "host_port": 18080, "guest_port": 8080}]' <<<"$j" >/dev/null &&
	[[ " $ports" == *" $tapf "* ]]; then
	t_ok "dhcp: list --json: fwd's NIC on lab at the guest's own address and MAC, its tap $tapf a port of $BRIDGE (ip -j), its forward"
else
	t_fail "dhcp: list --json describes fwd" "guest IP '$(g fwd G-IP)' MAC '$(g fwd G-MAC)', bridge ports '$ports': $j"
fi
ip netns exec "$lab" "$VM" list | grep -q "^fwd .* $tapf(lab $(g fwd G-IP))\$" &&
	t_ok "dhcp: list: fwd's row names its tap, network and address" ||
	t_fail "dhcp: list: fwd's row" "$(ip netns exec "$lab" "$VM" list 2>&1)"
err=$(ip netns exec "$lab" timeout 90 "$VM" stop fwd --timeout 60 2>&1)
rcs=$?
alive=no; t_running "$PID_fwd" && alive=yes
tapleft=$(ip -n "$lab" -j link show 2>/dev/null | jq -r --arg t "$tapf" '.[] | select(.ifname == $t) | .ifname')
fwdleft=$(ip netns exec "$lab" nft list ruleset | grep -c 18080)
finish fwd
rc=$?
if [ "$rcs" = 0 ] && [ -z "$err" ] && [ $alive = no ] && [ -z "$tapleft" ] && [ "$fwdleft" = 0 ] &&
	[ "$rc" = 0 ] && tr -d '\r' <"$work/fwd.out" | grep -q 'kvmlab-init: power button pressed: powering off'; then
	t_ok "dhcp: stop fwd: the guest saw its power button and powered off; when stop returned (0) the VMM had exited 0 and its tap and forward were gone"
else
	t_fail "dhcp: stop fwd" "stop rc $rcs '$err', VMM alive at return: $alive, tap left '$tapleft', forward rules left $fwdleft, VMM rc $rc; $(desc fwd)"
fi
t_finish
