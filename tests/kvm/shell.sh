#!/usr/bin/env bash
# The README's quick start ends in an interactive guest: kvmlab.end=shell
# gives a shell on the console (ttyS0 as its controlling tty), runs what
# is typed, and powers the guest off when the shell exits (kvmlab-vm
# exits 0). The console text the guest prints is the oracle.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
TMO=${KVMLAB_KVM_TIMEOUT:-90}
work=$(mktemp -d /tmp/kvmlab-kvmshell.XXXXXX) || exit 1
t_defer "rm -rf '$work'"
[ -x "$KVMLAB_VM" ] || { t_fail "kvm: shell: $KVMLAB_VM" "not built (make)"; t_finish; }
out=$work/console

# types into the console once the shell is there, then waits for the end
feeder() {
	local i
	for ((i = 0; i < TMO * 5; i++)); do grep -q "shell on the console" "$out" && break; sleep 0.2; done
	sleep 2
	printf 'echo SHELL-$((6*7)) $(tty)\n'
	for ((i = 0; i < 100; i++)); do grep -q "SHELL-42" "$out" && break; sleep 0.2; done
	printf 'exit\n'
	exec sleep "$TMO"
}
mkfifo "$work/in"
timeout -k 5 "$((TMO * 2))" "$KVMLAB_VM" run --cmdline "console=ttyS0 reboot=k quiet kvmlab.end=shell" \
	<"$work/in" >"$out" 2>"$work/err" &
pid=$!
feeder >"$work/in" &
fpid=$!
t_defer "kill -9 $pid $fpid"
wait $pid; rc=$?
kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
tail -n 5 "$out" | tr -d '\033' | sed 's/^/# /'
t_check "kvm: kvmlab.end=shell runs a typed command on ttyS0" grep -q 'SHELL-42 /dev/ttyS0' "$out"
t_check "kvm: leaving the shell powers off: kvmlab-vm exits 0 (rc $rc)" test "$rc" = 0
t_finish
