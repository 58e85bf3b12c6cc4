#!/usr/bin/env bash
# kvmlab-vm run --net: the VMM's tap (kl_tap_open) carries the network's
# tap tag, sits on the bridge while the VM runs, shows in `show --json`,
# and goes when the VM exits. The guest is the hand-made tiny one of
# tests/cli (it spins), so this runs on any usable /dev/kvm.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-net.sh"
net_need_bin
if ! [ -x "$KVMLAB_VM" ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	t_skip "vm_net" "no kvmlab-vm or no usable /dev/kvm"
	exit 0
fi

net_new ns vmnet
net_down_at_exit "$ns" lab
python3 "$T_ROOT/tests/cli/tinyguest.py" "$KN_TMP/hang.bz" hang
kn_expect "up lab" 0 "$ns" up lab --cidr 10.89.0.1/24 --bridge klvm
ip netns exec "$ns" timeout -k 2 60 "$KVMLAB_VM" run --kernel "$KN_TMP/hang.bz" --initrd none \
	--net lab </dev/null >"$KN_TMP/vm.out" 2>"$KN_TMP/vm.err" &
vm=$!
t_defer "kill -9 $vm 2>/dev/null"
tap=
for _ in $(seq 1 100); do
	tap=$(in_ns "$ns" ip -j -d link | jq -r '.[] | select(.linkinfo.info_kind == "tun") | .ifname' | head -1)
	[ -n "$tap" ] && break
	sleep 0.05
done
t_check "the VM's tap appeared (${tap:-none})" test -n "$tap"
j=$(link_json "$ns" "${tap:-none}")
t_check "its tag is kvmlab:lab:tap" test "$(jq -r .ifalias <<<"$j")" = kvmlab:lab:tap
t_check "it is on klvm and up" test "$(jq -r '[.master, (.flags | index("UP") != null)] | @tsv' <<<"$j")" = "klvm	true"
t_check "it is not persistent" test "$(jq -r .linkinfo.info_data.persist <<<"$j")" = false
# the VM answers its guest's DHCP itself: the tap's ingress drops DHCP
# requests before the bridge (tc, the independent observer, shows it)
f=$(in_ns "$ns" tc -j filter show dev "${tap:-none}" ingress 2>/dev/null)
t_check "its ingress has the DHCP filter (cls_bpf, direct action, port 67 shot)" jq -e \
	'[.[] | select(.kind == "bpf" and .options."direct-action" == true and
		(.options.bytecode.insns | any(.code == 21 and .k == 67)) and
		(.options.bytecode.insns | any(.code == 6 and .k == 2)))] | length == 1' >/dev/null <<<"$f"
kn_expect "show --json while the VM runs" 0 "$ns" show lab --json
t_check "show lists the VM's tap, not persistent" jq -e '.networks[0].taps | length == 1 and .[0].persistent == false' >/dev/null <<<"$KN_OUT"
kill -TERM "$vm"
wait "$vm"
t_check "the VM process is gone after SIGTERM" bash -c '! kill -0 "$1" 2>/dev/null' _ "$vm"
t_check "its tap is gone" bash -c '! ip netns exec "$1" ip link show "$2" >/dev/null 2>&1' _ "$ns" "${tap:-none}"

# several NICs: --net lab --nic net=lab2 --nic tap=TAP: a tap of its own
# on each network's bridge, a lease on each, the plain tap opened as is;
# all of it gone at exit
net_down_at_exit "$ns" lab2
kn_expect "up lab2" 0 "$ns" up lab2 --cidr 10.89.1.1/24 --bridge klvm2
in_ns "$ns" ip tuntap add kltplain mode tap vnet_hdr
leases() { in_ns "$ns" nft -j list map ip "kvmlab-$1" leases |
	jq '[.nftables[] | select(.map) | .map.elem // [] | length] | add // 0'; }
vmtaps() { in_ns "$ns" ip -j -d link | jq -r '[.[] | select(.linkinfo.info_kind == "tun" and
	.ifname != "kltplain") | "\(.ifname)@\(.master)"] | sort | join(" ")'; }
ip netns exec "$ns" timeout -k 2 60 "$KVMLAB_VM" run --kernel "$KN_TMP/hang.bz" --initrd none \
	--net lab --name multi --nic net=lab2 --nic tap=kltplain,mac=02:00:00:00:44:01 \
	</dev/null >"$KN_TMP/vm2.out" 2>"$KN_TMP/vm2.err" &
vm=$!
t_defer "kill -9 $vm 2>/dev/null"
got=
for _ in $(seq 1 100); do
	got=$(vmtaps)
	[ "$(wc -w <<<"$got")" = 2 ] && grep -q "DHCP offers" "$KN_TMP/vm2.err" && [ "$(grep -c "DHCP offers" "$KN_TMP/vm2.err")" = 2 ] && break
	sleep 0.05
done
t_check "--nic net=lab2: one tap of the VM on each bridge ($got)" \
	bash -c '[[ $1 =~ ^[^@]+@klvm\ [^@]+@klvm2$ || $1 =~ ^[^@]+@klvm2\ [^@]+@klvm$ ]]' _ "$got"
t_check "a lease on each network (nft maps: lab $(leases lab), lab2 $(leases lab2))" \
	test "$(leases lab)/$(leases lab2)" = 1/1
t_check "the VM says its MAC and address on both networks" \
	bash -c 'grep -q "VM multi on lab:" "$1" && grep -q "VM multi on lab2:" "$1"' _ "$KN_TMP/vm2.err"
kill -TERM "$vm"
wait "$vm"
left=$(vmtaps)
t_check "after SIGTERM: the VM's taps are gone ('$left'), the plain tap stays" \
	bash -c '[ -z "$1" ] && ip netns exec "$2" ip link show kltplain >/dev/null' _ "$left" "$ns"
t_check "both leases are given back" test "$(leases lab)/$(leases lab2)" = 0/0

# a NIC that cannot be made: one line, exit 1, and the first NIC's lease
# and tap are taken back
ip netns exec "$ns" timeout -k 2 60 "$KVMLAB_VM" run --kernel "$KN_TMP/hang.bz" --initrd none \
	--net lab --name multi --nic net=nosuch </dev/null >"$KN_TMP/vm3.out" 2>"$KN_TMP/vm3.err"
rc=$?
t_check "--nic net=nosuch: exit 1 in one line naming it ($(head -1 "$KN_TMP/vm3.err"))" \
	bash -c '[ "$1" = 1 ] && [ "$(grep -c . "$2")" = 1 ] && grep -q "^kvmlab-vm: --nic nosuch: " "$2"' _ "$rc" "$KN_TMP/vm3.err"
t_check "nothing of --net lab is left (taps: '$(vmtaps)', leases: $(leases lab))" \
	test "$(vmtaps)/$(leases lab)" = /0
kn_expect "down lab2" 0 "$ns" down lab2
kn_expect "down lab" 0 "$ns" down lab
t_finish
