#!/usr/bin/env bash
# `kvmlab-vm check` tells "missing" from "no permission" from PVM, each
# with its fix. Missing: a private mount namespace with an empty /dev.
# No permission: the same binary as nobody (setpriv), judged against the
# device nodes' own modes (stat). PVM: tests/cli/vm_check.sh.
. "$(dirname "$0")/../lib.sh"
VM=$KVMLAB_VM
[ -x "$VM" ] || { t_fail "kvmlab-vm built"; t_finish; }
[ "$(id -u)" = 0 ] || { t_skip "check: missing / no permission" "need root"; t_finish; }
has() { grep -Eq -- "$1" <<<"$out"; }

out=$(unshare -m --propagation private sh -c 'mount -t tmpfs none /dev && exec "$0" check' "$VM" 2>&1); rc=$?
t_check "missing /dev/kvm: exit 1" test $rc = 1
t_check "missing /dev/kvm: says missing, with the modprobe" \
	has '^kvm: /dev/kvm: No such file or directory: missing: modprobe kvm_intel or kvm_amd'
t_check "missing /dev/kvm: verdict" has '^verdict: kvmlab-vm cannot run here: /dev/kvm does not exist'
t_check "missing /dev/net/tun: modprobe tun" has '^net: /dev/net/tun: No such file or directory: missing: modprobe tun$'

command -v setpriv >/dev/null || { t_skip "check: no permission" "no setpriv"; t_finish; }
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$VM" check 2>&1); rc=$?
others_rw() { [ $(($(stat -c '0%a' "$1") & 6)) = 6 ]; }
if [ -e /dev/kvm ] && ! others_rw /dev/kvm; then
	t_check "nobody, /dev/kvm $(stat -c '%G %a' /dev/kvm): no permission" \
		has '^kvm: /dev/kvm: Permission denied: no permission \(group [a-z0-9_-]+, mode 0[0-7]+\): '
	t_check "nobody: the fix names the kvm group" has '^kvm: /dev/kvm: .*usermod -aG [a-z0-9_-]+ \$USER'
	t_check "nobody: exit 1, verdict no permission" bash -c \
		"[ $rc = 1 ] && grep -q '^verdict: kvmlab-vm cannot run here: no permission on /dev/kvm' <<<\"\$1\"" _ "$out"
fi
if [ -e /dev/net/tun ]; then
	if others_rw /dev/net/tun; then
		t_check "nobody, /dev/net/tun 0666: ok" has '^net: /dev/net/tun: ok$'
	else
		t_check "nobody, /dev/net/tun $(stat -c %a /dev/net/tun): no permission, chmod 0666 fix" \
			has '^net: /dev/net/tun: Permission denied: no permission .*chmod 0666 /dev/net/tun'
	fi
fi
t_check "nobody: nftables is no permission, not missing" has '^net: nftables: no permission \(.*CAP_NET_ADMIN'
t_finish
