#!/usr/bin/env bash
# virtio-net and virtio-blk end to end: boot the default guest with
# --tap (a tap inside a fresh namespace) and --disk (a raw image), then
# check from the outside: ping and TCP both ways over the tap, the image's
# bytes as the guest reads them, what the guest wrote as the file holds
# it, tap counters from `ip -j -s`, and a read-only image that stays so.
# Runs directly where /dev/kvm boots stock kernels, else re-runs itself
# inside scripts/testhost (PVM hosts).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
VM=$KVMLAB_VM

t_kvm_here "virtio e2e" tests/kvm/virtio.sh 900

work=$(mktemp -d /tmp/kvmlab-virtio.XXXXXX) || exit 1
t_defer "rm -rf $work"
HOST=10.77.0.1 GUEST=10.77.0.2
t_tap_netns ns virtio $HOST
nsx() { ip netns exec "$ns" "$@"; }

tok=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
img=$work/disk.img
head -c $((8 << 20)) /dev/urandom >"$img"
printf 'MAGIC-%s' "$tok" | dd of="$img" conv=notrunc status=none
head -c $((2 << 20)) "$img" >"$work/up.want" # the guest overwrites a sector later
head -c $((3 << 20)) /dev/urandom >"$work/down"
down_md5=$(md5sum <"$work/down" | cut -d' ' -f1)

# host ends of the two transfers; the guest connects out to both
# (not --recv-only: that half-closes at once, and busybox nc quits on EOF)
nsx timeout 200 ncat -l $HOST 7001 >"$work/up" 2>/dev/null < <(nsx sleep 200) & # in the netns: its cleanup ends it
t_defer "kill $! 2>/dev/null"
nsx timeout 200 ncat -l $HOST 7002 --send-only <"$work/down" 2>/dev/null &
t_defer "kill $! 2>/dev/null"
sleep 0.5

# guest side: no double quotes in here (they delimit kvmlab.run)
g="echo SIZE=\$(cat /sys/block/vda/size); echo RO=\$(cat /sys/block/vda/ro)"
g="$g; echo MAGIC=\$(head -c 18 /dev/vda)"
g="$g; ping -c 3 -W 5 $HOST >/dev/null && echo PING-OK"
g="$g; dd if=/dev/vda bs=65536 count=32 2>/dev/null | nc $HOST 7001 && echo UP-DONE"
g="$g; echo DOWN=\$(nc $HOST 7002 </dev/null | md5sum)"
g="$g; echo WROTE-$tok | dd of=/dev/vda bs=512 seek=16 conv=notrunc 2>/dev/null; echo DD=\$?; sync"
cmdline="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

out=$work/console
nsx timeout -s QUIT -k 10 300 "$VM" run --mem 256M --tap tap0 --disk "$img" --cmdline "$cmdline" \
	--console "file:$out" >"$work/vm.err" 2>&1
rc=$?
if t_powered_off $rc "$work/vm.err"; then t_ok "virtio: guest ran and powered off"; else
	t_fail "virtio: guest ran and powered off" "exit $rc: $(tail -3 "$work/vm.err" | tr '\n' ' ')"
	t_vm_report "$work/vm.err"; fi
grep -q 'KVMLAB-RC=' "$out" || t_fail "virtio: guest command finished" "$(tail -5 "$out" | tr '\n' ' ')"

has() { grep -q -- "$2" "$out" && t_ok "$1" || t_fail "$1" "console lacks '$2'"; }
has "virtio-blk: guest sees the image size (16384 sectors)" "^SIZE=16384"
has "virtio-blk: guest reads the image's first bytes" "^MAGIC=MAGIC-$tok"
has "virtio-blk: writable image is not read-only" "^RO=0"
has "virtio-net: guest pings the tap's host address" "^PING-OK"
has "virtio-net: guest->host TCP transfer finished" "^UP-DONE"
if cmp -s "$work/up" "$work/up.want"; then
	t_ok "virtio: 2 MiB read from the disk arrive intact on the host over the tap"
else
	t_fail "virtio: 2 MiB read from the disk arrive intact on the host over the tap" \
		"got $(stat -c %s "$work/up" 2>/dev/null) bytes"
fi
has "virtio-net: host->guest 3 MiB arrive intact (md5)" "^DOWN=$down_md5"
has "virtio-blk: guest write succeeded" "^DD=0"
if dd if="$img" bs=512 skip=16 count=1 status=none | head -c 19 | grep -q "^WROTE-$tok"; then
	t_ok "virtio-blk: the image file holds what the guest wrote"
else
	t_fail "virtio-blk: the image file holds what the guest wrote"
fi
stats=$(nsx ip -j -s link show tap0)
rxp=$(jq '.[0].stats64.rx.packets' <<<"$stats")
txp=$(jq '.[0].stats64.tx.packets' <<<"$stats")
if [ "${rxp:-0}" -gt 100 ] && [ "${txp:-0}" -gt 100 ]; then
	t_ok "virtio-net: tap counters show traffic both ways (rx $rxp, tx $txp)"
else
	t_fail "virtio-net: tap counters show traffic both ways" "rx ${rxp:-?} tx ${txp:-?}"
fi

# read-only: the guest sees ro=1, its write fails, the image is unchanged.
# pci=nomsi: this boot takes INTx (the DSDT's _PRT) instead of MSI-X.
sum=$(md5sum <"$img")
g="echo RO=\$(cat /sys/block/vda/ro); echo MAGIC=\$(head -c 18 /dev/vda); echo x | dd of=/dev/vda bs=512 seek=20 conv=notrunc 2>/dev/null; echo DD=\$?; grep -i virtio /proc/interrupts"
timeout -k 5 300 "$VM" run --mem 256M --disk "$img,ro" --cmdline "console=ttyS0 reboot=k quiet pci=nomsi kvmlab.run=\"$g\"" \
	--console "file:$out.ro" >"$work/vm-ro.err" 2>&1 </dev/null
rc=$?
[ $rc -eq 0 ] && t_ok "virtio-blk ro: guest ran" || t_fail "virtio-blk ro: guest ran" "exit $rc"
grep -q '^RO=1' "$out.ro" && t_ok "virtio-blk ro: guest sees a read-only disk" ||
	t_fail "virtio-blk ro: guest sees a read-only disk"
grep -q "^MAGIC=MAGIC-$tok" "$out.ro" && t_ok "virtio-blk ro: guest reads the image over INTx (pci=nomsi)" ||
	t_fail "virtio-blk ro: guest reads the image over INTx (pci=nomsi)"
grep -q 'IO-APIC.*virtio' "$out.ro" && t_ok "virtio-blk ro: its interrupt is an IO-APIC line" ||
	t_fail "virtio-blk ro: its interrupt is an IO-APIC line"
grep -q '^DD=[1-9]' "$out.ro" && t_ok "virtio-blk ro: guest write refused" ||
	t_fail "virtio-blk ro: guest write refused"
[ "$(md5sum <"$img")" = "$sum" ] && t_ok "virtio-blk ro: image unchanged" ||
	t_fail "virtio-blk ro: image unchanged"
t_tails_on_fail 25 "$out" "$out.ro" "$work/vm.err" "$work/vm-ro.err"
t_finish
