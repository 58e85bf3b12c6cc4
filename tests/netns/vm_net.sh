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
kn_expect "down lab" 0 "$ns" down lab
t_finish
