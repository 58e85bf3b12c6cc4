#!/usr/bin/env bash
# `kvmlab-vm check` against independent oracles: /proc/cpuinfo for the
# CPU flags, /sys/module for the module behind /dev/kvm, /dev itself for
# device nodes. On a PVM host it must say that a stock kernel will not
# boot, and exit non-zero (3).
. "$(dirname "$0")/../lib.sh"
VM=$KVMLAB_VM
[ -x "$VM" ] || { t_fail "kvmlab-vm built" "$VM missing"; t_finish; }

out=$("$VM" check 2>&1 </dev/null); rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
has() { grep -Eq -- "$1" <<<"$out"; }

flags=$(grep -m1 '^flags' /proc/cpuinfo)
if grep -qw vmx <<<"$flags"; then
	t_check "reports vmx" has '^cpu: virtualization flags: .*vmx'
elif grep -qw svm <<<"$flags"; then
	t_check "reports svm" has '^cpu: virtualization flags: .*svm'
else
	t_check "reports no vmx/svm" has '^cpu: virtualization flags: none'
fi

mod=
for m in kvm_pvm kvm_intel kvm_amd; do
	[ -d /sys/module/$m ] && { mod=$m; break; }
done
if [ -n "$mod" ]; then
	t_check "names the module behind /dev/kvm ($mod)" has "^kvm: /dev/kvm is backed by $mod"
else
	t_check "says no kvm module" has '^kvm: no kvm_intel, kvm_amd or kvm_pvm'
fi

if [ -c /dev/net/tun ] && [ "$(id -u)" = 0 ]; then
	t_check "/dev/net/tun ok" has '^net: /dev/net/tun: ok'
fi
if [ ! -e /dev/vhost-net ]; then
	t_check "/dev/vhost-net missing is reported" has '^net: /dev/vhost-net: No such file'
fi
if [ -d /sys/module/bridge ]; then
	t_check "bridge reported loaded" has '^net: bridge: ok \(module loaded\)'
fi
if [ "$(id -u)" = 0 ] && unshare -n nft list tables >/dev/null 2>&1; then
	t_check "nftables reported" has '^net: nftables: ok'
fi

if [ ! -e /dev/kvm ]; then
	t_check "no /dev/kvm: exits 1 with the reason" test "$rc" = 1
	t_check "no /dev/kvm: verdict names it" has '^verdict: kvmlab-vm cannot run here: /dev/kvm does not exist'
elif [ "$mod" = kvm_pvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	t_check "PVM: every required capability listed" test "$(grep -c '^kvm: KVM_CAP_.*: ok' <<<"$out")" -ge 10
	t_check "PVM: says PVM" has 'PVM'
	t_check "PVM: says a stock kernel will not boot" has '^verdict: .*stock \(non-PVM\) Linux kernel will not boot'
	t_check "PVM: points to the test host" has 'scripts/testhost'
	t_check "PVM: exits 3" test "$rc" = 3
elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	t_check "API version 12" has '^kvm: API version 12: ok'
	if has 'MISSING'; then
		t_check "missing capability: exits 1" test "$rc" = 1
	else
		t_check "hardware KVM: exits 0" test "$rc" = 0
	fi
else
	t_check "no access to /dev/kvm: exits 1" test "$rc" = 1
fi

"$VM" check extra >/dev/null 2>&1
t_check "check with an extra argument exits 2" test $? = 2
t_finish
