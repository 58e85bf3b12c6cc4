#!/usr/bin/env bash
# Several NICs and disks on one VM (a router between two lab networks,
# a root disk plus a data disk): the default guest booted with
#   --net a --nic net=b,queues=2 --nic tap=PLAIN,mac=M --disk D1 --disk D2,ro
#   --disk SEED.iso,ro
# with --cpus 2 and --vhost off (the VMM's own I/O threads move every
# frame: one per queue pair of each NIC)
# Oracles: what the guest prints of itself (its NICs' MACs and
# addresses, /sys/block/vdX/{size,ro,serial}, pings from each NIC), the
# image files on the host, the namespace's links (`ip -j link`) and
# each network's lease map (`nft -j list map`). Checks:
#   1. eth0, eth1, eth2 in --net/--nic order (eth2 has the MAC given);
#      eth0 and eth1 got their addresses by DHCP from their own networks;
#      eth1 has 2 queue pairs;
#      each NIC reaches its own host side; eth0 has the default route
#   2. vda and vdb in --disk order (size, serial kvmlab-disk/-disk1);
#      vdb is read-only and a write to it fails; a write to vda lands in
#      its image; vdc, a cloud-init NoCloud seed (`build-guest --seed`:
#      ISO 9660 labelled cidata), is found by that label and its
#      meta-data and user-data read back: the guest's kernel mounts ISO 9660
#   3. at exit both taps and both leases are gone, the plain tap stays
#   4. a --nic on a network that does not exist: exit 1 in one line,
#      and the first network's lease and tap are taken back
# Runs where /dev/kvm boots stock kernels (tests/kvm/run takes care).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
TMO=${KVMLAB_KVM_TIMEOUT:-120}
VM=$KVMLAB_VM

t_kvm_here "multi" tests/kvm/multi.sh 600

work=$(mktemp -d /tmp/kvmlab-multi.XXXXXX) || exit 1
t_defer "rm -rf '$work'"
t_tap_netns lab multi 10.79.0.1
t_defer "ip netns exec $lab '$KVMLAB_NET' down a --if-exists; ip netns exec $lab '$KVMLAB_NET' down b --if-exists"
for n in a:192.168.61.1/24 b:192.168.62.1/24; do
	if ! ip netns exec "$lab" "$KVMLAB_NET" up "${n%%:*}" --cidr "${n#*:}" >"$work/up" 2>&1; then
		t_fail "multi: kvmlab-net up ${n%%:*}" "$(cat "$work/up")"
		t_finish
	fi
done
links() { ip -n "$lab" -j link show | jq -r '[.[].ifname] | sort | join(" ")'; }
leases() { ip netns exec "$lab" nft -j list map ip "kvmlab-$1" leases |
	jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add // 0'; }
links_before=$(links)

tok=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
d1=$work/d1.img d2=$work/d2.img
head -c $((8 << 20)) /dev/zero >"$d1"
printf 'ONE-%s' "$tok" | dd of="$d1" conv=notrunc status=none
head -c $((4 << 20)) /dev/zero >"$d2"
printf 'TWO-%s' "$tok" | dd of="$d2" conv=notrunc status=none
md5_d2=$(md5sum <"$d2")
# the seed as users make it (scripts/build-guest --seed), for a made-up key
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI%s multi\n' "$tok" >"$work/k.pub"
scripts/build-guest --seed "$work/seed.iso" --ssh-key "$work/k.pub" --hostname "m$tok" 2>"$work/seed.err" ||
	t_fail "multi: build-guest --seed makes a seed" "$(head -c 200 "$work/seed.err")"
MAC2=02:00:00:00:77:02

# guest side (no double quotes: they delimit kvmlab.run); eth2 has no
# DHCP server, so it is set by hand
g="ip addr add 10.79.0.2/24 dev eth2; ip link set eth2 up"
for i in 0 1 2; do
	g="$g; echo G-MAC$i=\$(cat /sys/class/net/eth$i/address)"
	g="$g; echo G-IP$i=\$(ip -4 -o addr show dev eth$i | awk '{print \$4}')"
done
g="$g; echo G-Q1=\$(ls /sys/class/net/eth1/queues | grep -c rx-)"
g="$g; echo G-GW=\$(ip route | awk '/^default/{print \$3, \$5}')"
g="$g; ping -c 2 -W 3 -I eth0 192.168.61.1 >/dev/null && echo G-PING0=ok"
g="$g; ping -c 2 -W 3 -I eth1 192.168.62.1 >/dev/null && echo G-PING1=ok"
g="$g; ping -c 2 -W 3 -I eth2 10.79.0.1 >/dev/null && echo G-PING2=ok"
for d in vda vdb; do
	g="$g; echo G-$d=\$(cat /sys/block/$d/size):\$(cat /sys/block/$d/ro):\$(cat /sys/block/$d/serial):\$(head -c 16 /dev/$d)"
done
g="$g; echo WROTE-$tok | dd of=/dev/vda bs=512 seek=8 conv=notrunc 2>/dev/null; echo G-DDA=\$?"
g="$g; echo NO | dd of=/dev/vdb bs=512 seek=8 conv=notrunc 2>/dev/null; echo G-DDB=\$?; sync"
g="$g; echo G-SEEDLABEL=\$(findfs LABEL=cidata)"
g="$g; mkdir -p /mnt; mount -t iso9660 -o ro /dev/vdc /mnt && echo G-SEED=\$(grep -c -e m$tok -e AAAAI$tok /mnt/meta-data /mnt/user-data | tr '\n' ' ')"

ip netns exec "$lab" timeout -s QUIT -k 10 $((TMO * 2)) "$VM" run --mem 256M --cpus 2 --vhost off --name multi --net a \
	--nic net=b,queues=2 --nic tap=tap0,mac=$MAC2 --disk "$d1" --disk "$d2,ro" --disk "$work/seed.iso,ro" \
	--cmdline "console=ttyS0 reboot=k quiet kvmlab.run=\"$g\"" --console "file:$work/out" \
	</dev/null >"$work/err" 2>&1
rc=$?
gv() { tr -d '\r' <"$work/out" | sed -n "s/^$1=//p" | tail -n1; }
desc() { echo "rc $rc; stderr: $(tail -n 3 "$work/err" | tr '\n' ' ' | cut -c1-200); console: $(tr -d '\r' <"$work/out" | grep -v '^$' | tail -n 4 | tr '\n' '|' | cut -c1-300)"; }
if t_powered_off "$rc" "$work/err" && grep -q KVMLAB-RC= "$work/out"; then
	t_ok "multi: a guest with 3 NICs and 3 disks ran and powered off"
else
	t_fail "multi: a guest with 3 NICs and 3 disks ran and powered off" "$(desc)"
	t_vm_report "$work/err"
fi

# 1. NICs
ip0=$(gv G-IP0) ip1=$(gv G-IP1)
[[ $ip0 == 192.168.61.*/24 && $ip0 != 192.168.61.1/* ]] &&
	t_ok "multi: eth0 (--net a) got $ip0 by DHCP from network a" ||
	t_fail "multi: eth0 got an address on a" "G-IP0 '$ip0'; $(desc)"
[[ $ip1 == 192.168.62.*/24 && $ip1 != 192.168.62.1/* ]] &&
	t_ok "multi: eth1 (--nic net=b) got $ip1 by DHCP from network b" ||
	t_fail "multi: eth1 got an address on b" "G-IP1 '$ip1'; $(desc)"
[ "$(gv G-MAC2)" = $MAC2 ] && [ "$(gv G-IP2)" = 10.79.0.2/24 ] &&
	t_ok "multi: eth2 is the --nic tap=,mac= NIC (MAC $MAC2)" ||
	t_fail "multi: eth2 is the --nic tap= NIC" "G-MAC2 '$(gv G-MAC2)'"
m0=$(gv G-MAC0) m1=$(gv G-MAC1)
[ -n "$m0" ] && [ -n "$m1" ] && [ "$m0" != "$m1" ] && [ "$m0" != $MAC2 ] && [ "$m1" != $MAC2 ] &&
	t_ok "multi: three distinct MACs ($m0, $m1, $MAC2)" ||
	t_fail "multi: three distinct MACs" "'$m0' '$m1' '$(gv G-MAC2)'"
[ "$(gv G-Q1)" = 2 ] && t_ok "multi: eth1 (queues=2) has 2 rx queues" ||
	t_fail "multi: eth1 (queues=2) has 2 rx queues" "G-Q1 '$(gv G-Q1)'"
for i in 0 1 2; do
	[ "$(gv G-PING$i)" = ok ] && t_ok "multi: eth$i reaches its host side" ||
		t_fail "multi: eth$i reaches its host side" "$(desc)"
done
[ "$(gv G-GW)" = "192.168.61.1 eth0" ] && t_ok "multi: the default route is eth0's (via 192.168.61.1)" ||
	t_fail "multi: the default route is eth0's" "G-GW '$(gv G-GW)'"

# 2. disks
IFS=: read -r sz ro ser magic <<<"$(gv G-vda)"
[ "$sz" = 16384 ] && [ "$ro" = 0 ] && [ "$ser" = kvmlab-disk ] && [ "$magic" = "ONE-$tok" ] &&
	t_ok "multi: vda is the first --disk (16384 sectors, writable, serial kvmlab-disk)" ||
	t_fail "multi: vda is the first --disk" "'$(gv G-vda)'"
IFS=: read -r sz ro ser magic <<<"$(gv G-vdb)"
[ "$sz" = 8192 ] && [ "$ro" = 1 ] && [ "$ser" = kvmlab-disk1 ] && [ "$magic" = "TWO-$tok" ] &&
	t_ok "multi: vdb is the second --disk (8192 sectors, read-only, serial kvmlab-disk1)" ||
	t_fail "multi: vdb is the second --disk" "'$(gv G-vdb)'"
dd if="$d1" bs=512 skip=8 count=1 status=none | head -c 19 | grep -q "^WROTE-$tok" &&
	t_ok "multi: vda's image holds what the guest wrote" ||
	t_fail "multi: vda's image holds what the guest wrote" "G-DDA '$(gv G-DDA)'"
[ "$(gv G-DDB)" != 0 ] && [ "$(md5sum <"$d2")" = "$md5_d2" ] &&
	t_ok "multi: a write to read-only vdb fails and its image is unchanged" ||
	t_fail "multi: read-only vdb" "G-DDB '$(gv G-DDB)'"
# meta-data: instance id and host name; user-data: hostname, and the key twice
[ "$(gv G-SEEDLABEL)" = /dev/vdc ] && [ "$(gv G-SEED)" = "/mnt/meta-data:2 /mnt/user-data:3" ] &&
	t_ok "multi: vdc, a build-guest --seed ISO: LABEL=cidata finds it, the guest mounts it as ISO 9660 and reads its host name and key" ||
	t_fail "multi: vdc, a build-guest --seed ISO, mounts in the guest" "label '$(gv G-SEEDLABEL)', meta-data '$(gv G-SEED)'"

# 3. what is left
[ "$(links)" = "$links_before" ] && t_ok "multi: both taps gone at exit, tap0 kept ($(links))" ||
	t_fail "multi: links after exit" "before '$links_before', after '$(links)'"
[ "$(leases a)" = 0 ] && [ "$(leases b)" = 0 ] && t_ok "multi: both leases released at exit" ||
	t_fail "multi: both leases released at exit" "a $(leases a), b $(leases b)"

# 4. a NIC that cannot be made: nothing of the others stays
ip netns exec "$lab" timeout -k 5 60 "$VM" run --name multi --net a --nic net=nosuch \
	--console none </dev/null >"$work/err4" 2>&1
rc4=$?
lines=$(grep -c . "$work/err4")
if [ "$rc4" = 1 ] && grep -q "^kvmlab-vm: --nic nosuch: " "$work/err4" && [ "$(grep -c . "$work/err4")" = 1 ]; then
	t_ok "multi: --nic net=nosuch: exit 1, named ($(grep -v 'DHCP offers' "$work/err4" | head -1))"
else
	t_fail "multi: --nic net=nosuch: exit 1, named" "rc $rc4, $lines lines: $(head -3 "$work/err4" | tr '\n' '|')"
fi
[ "$(links)" = "$links_before" ] && [ "$(leases a)" = 0 ] &&
	t_ok "multi: the first network's tap and lease were taken back" ||
	t_fail "multi: rollback after a bad --nic" "links '$(links)', leases on a $(leases a)"
t_finish
