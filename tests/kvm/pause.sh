#!/usr/bin/env bash
# kvmlab-vm pause tells a kvmclock guest that it was stopped
# (KVM_KVMCLOCK_CTRL), so a long pause is no lockup to it. A 2-vCPU
# guest keeps both CPUs busy (a soft lockup is only reported for a CPU
# that is not idle; Linux's threshold: 20 s without its watchdog
# running). Then:
#   1. kvmlab-vm pause for PAUSE_S (30) seconds, resume: the guest's log
#      must have no new "soft lockup" line;
#   2. the control: the whole VMM stopped with SIGSTOP for as long (the
#      guest is not told): now the guest must report a soft lockup, which
#      shows that check 1 could have failed.
# The oracle is the guest's own kernel log, counted by the guest every
# second on its console. (A lower watchdog_thresh was tried: the nested
# test host's own stalls then set it off with no pause at all.) About
# 90 s; not in suite.sh's default list (the
# KVM tier's budget): run it by name (tests/kvm/suite.sh pause.sh).
# tests/kvm/all.sh has the short pause/resume check.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
VM=$KVMLAB_VM
PAUSE_S=${KVMLAB_PAUSE_S:-30}

t_kvm_here "pause" tests/kvm/pause.sh 400

work=$(mktemp -d /tmp/kvmlab-pause.XXXXXX) || exit 1
t_defer "rm -rf $work"
# guest side (no double quotes: they delimit kvmlab.run)
g="busy() { while :; do :; done; }; busy & busy &"
g="$g while :; do echo LC=\$(dmesg | grep -c 'soft lockup'); sleep 1; done"
t_vm_bg "$work" g "^LC=" 120 --cpus 2 --name pausetest \
	--cmdline "console=ttyS0 reboot=k quiet kvmlab.run=\"$g\""
out=$work/g.txt
# lc: the guest's last count; lines: how many it has printed
lc() { tr -d '\r' <"$out" | sed -n 's/^LC=//p' | tail -n1; }
lines() { grep -c '^LC=' "$out"; }
# after N: wait until the guest has printed N more lines (it runs again)
after() {
	local n0 i
	n0=$(lines)
	for ((i = 0; i < 150; i++)); do [ "$(lines)" -ge $((n0 + $1)) ] && return 0; sleep 0.2; done
	return 1
}
if ! grep -q '^LC=' "$out" 2>/dev/null; then
	t_fail "pause: guest up" "$(tail -c 300 "$work/g.err")"
	t_finish
fi
after 3
c0=$(lc)

"$VM" pause pausetest 2>"$work/p.err"
prc=$?
sleep "$PAUSE_S"
"$VM" resume pausetest 2>>"$work/p.err"
rrc=$?
after 4
c1=$(lc)
if [ $prc = 0 ] && [ $rrc = 0 ] && [ -n "$c0" ] && [ "$c1" = "$c0" ]; then
	t_ok "pause: ${PAUSE_S} s paused with both vCPUs busy, and the guest reports no soft lockup (threshold 20 s; $c0 before)"
else
	t_fail "pause: no soft lockup after a pause" "pause $prc resume $rrc, soft lockups before $c0, after $c1: $(cat "$work/p.err") $(tr -d '\r' <"$out" | grep -m3 'soft lockup')"
fi

# the control: the same gap without telling the guest
kill -STOP "$pid"
sleep "$PAUSE_S"
kill -CONT "$pid"
after 4
c2=$(lc)
if [ "${c2:-0}" -gt "${c1:-0}" ]; then
	t_ok "pause: the control: a ${PAUSE_S} s SIGSTOP of the VMM makes the guest report $((c2 - c1)) soft lockup(s)"
else
	t_fail "pause: the control (SIGSTOP) shows a soft lockup" "count $c1 then $c2"
fi
"$VM" stop pausetest --force --timeout 0 2>/dev/null
t_vm_wait "$pid" 30
t_check "pause: the VM quit (stop --force: exit ${rc:-none})" test "${rc:-x}" = 0
t_finish
