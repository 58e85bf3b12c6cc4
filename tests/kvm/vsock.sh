#!/usr/bin/env bash
# virtio-vsock through the kernel's vhost-vsock: the default guest booted
# with --vsock CID runs an AF_VSOCK echo (kvmlab-vsock, in the guest
# image); the host connects with ncat --vsock CID PORT and gets back
# what it sent (4 MiB, md5). No network is configured at all. Also: a
# second VM cannot take the same CID (exit 1, one line naming it), and
# the CID is free again once the first VM is gone: a VM with its devices
# on virtio-mmio takes it and echoes 1 MiB. Oracles: ncat on the
# host, the guest's own count of echoed bytes, /sys in the guest.
# Runs where /dev/kvm boots stock kernels (tests/kvm/run takes care).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
TMO=${KVMLAB_KVM_TIMEOUT:-120}
VM=$KVMLAB_VM

t_kvm_here "vsock" tests/kvm/vsock.sh 600
[ -c /dev/vhost-vsock ] || modprobe vhost_vsock 2>/dev/null
if [ ! -c /dev/vhost-vsock ]; then t_skip "vsock" "no /dev/vhost-vsock on this host"; exit 0; fi
command -v ncat >/dev/null || { t_skip "vsock" "no ncat"; exit 0; }
ncat --help 2>&1 | grep -q -- --vsock || { t_skip "vsock" "this ncat has no --vsock"; exit 0; }

work=$(mktemp -d /tmp/kvmlab-vsock.XXXXXX) || exit 1
t_defer "rm -rf '$work'"
CID=$((1000 + RANDOM % 50000))
head -c $((4 << 20)) /dev/urandom >"$work/data"
want=$(md5sum <"$work/data" | cut -d' ' -f1)

g="echo VS-DEV=\$(cat /sys/bus/virtio/devices/*/device | grep -c 0x0013); kvmlab-vsock echo 5000"
t_vm_bg "$work" vs "listening on port 5000" "$TMO" --mem 256M --vsock $CID \
	--cmdline "console=ttyS0 reboot=k quiet kvmlab.run=\"$g\""
desc() { echo "stderr: $(tail -n 3 "$work/vs.err" | tr '\n' ' '); console: $(tr -d '\r' <"$work/vs.txt" | grep -v '^$' | tail -n 4 | tr '\n' '|')"; }
if ! grep -q "listening on port 5000" "$work/vs.txt"; then
	t_fail "vsock: the guest listens on vsock port 5000" "$(desc)"
	t_finish
fi
vsdev=$(tr -d '\r' <"$work/vs.txt" | sed -n 's/^VS-DEV=//p' | tail -n1)
if [ "$vsdev" = 1 ]; then t_ok "vsock: the guest sees one virtio-vsock device (virtio id 0x0013) and listens on port 5000"
else t_fail "vsock: the guest sees one virtio-vsock device" "VS-DEV '$vsdev'"; fi

# a second VM asking for the same CID: refused before boot
"$VM" run --vsock $CID --console none </dev/null >"$work/err2" 2>&1
rc=$?
if [ $rc = 1 ] && [ "$(grep -c . "$work/err2")" = 1 ] && grep -q "CID $CID: .*another VM" "$work/err2"; then
	t_ok "vsock: a second VM with CID $CID: exit 1, one line ($(cat "$work/err2"))"
else
	t_fail "vsock: a second VM with the same CID is refused" "rc $rc: $(head -2 "$work/err2" | tr '\n' '|')"
fi

timeout 60 ncat --vsock $CID 5000 <"$work/data" >"$work/back" 2>"$work/ncat.err"
got=$(md5sum <"$work/back" | cut -d' ' -f1)
if [ "$got" = "$want" ]; then
	t_ok "vsock: 4 MiB from the host came back from the guest intact (md5)"
else
	t_fail "vsock: 4 MiB echoed through vsock" "got $(stat -c %s "$work/back") bytes; $(head -c 200 "$work/ncat.err"); $(desc)"
fi
t_vm_wait $pid "$TMO"
if t_powered_off $rc "$work/vs.err" && tr -d '\r' <"$work/vs.txt" | grep -q "echoed $((4 << 20)) bytes"; then
	t_ok "vsock: the guest counted 4194304 bytes and powered off (exit 0)"
else
	t_fail "vsock: the guest counted the bytes and powered off" "rc $rc; $(desc)"
fi

# the CID is the next VM's once the first is gone. That VM has its
# devices on virtio-mmio, where vhost-vsock's interrupts pass through the
# transport's relay (no MSI-X there): 1 MiB echoed intact again
head -c $((1 << 20)) /dev/urandom >"$work/data3"
want3=$(md5sum <"$work/data3" | cut -d' ' -f1)
t_vm_bg "$work" vs3 "listening on port 5000" "$TMO" --mem 256M --vsock $CID --virtio-transport mmio \
	--cmdline "console=ttyS0 reboot=k quiet kvmlab.run=\"$g\""
if grep -q "listening on port 5000" "$work/vs3.txt"; then
	t_ok "vsock: CID $CID is free again after the first VM exited (a VM on virtio-mmio takes it)"
else
	t_fail "vsock: the CID is free again after exit" "$(tail -n 3 "$work/vs3.err" | tr '\n' ' ')"
fi
timeout 60 ncat --vsock $CID 5000 <"$work/data3" >"$work/back3" 2>"$work/ncat3.err"
got=$(md5sum <"$work/back3" | cut -d' ' -f1)
[ "$got" = "$want3" ] && t_ok "vsock on virtio-mmio: 1 MiB came back from the guest intact (md5)" ||
	t_fail "vsock on virtio-mmio: 1 MiB echoed" "got $(stat -c %s "$work/back3") bytes; $(head -c 200 "$work/ncat3.err")"
t_vm_wait $pid "$TMO"
vsdev=$(tr -d '\r' <"$work/vs3.txt" | sed -n 's/^VS-DEV=//p' | tail -n1)
if t_powered_off $rc "$work/vs3.err" && [ "$vsdev" = 1 ]; then
	t_ok "vsock on virtio-mmio: one vsock device, and the guest powered off (exit 0)"
else
	t_fail "vsock on virtio-mmio: one device, powered off" "rc $rc, VS-DEV '$vsdev': $(tail -n 3 "$work/vs3.err" | tr '\n' ' ')"
fi
t_finish
