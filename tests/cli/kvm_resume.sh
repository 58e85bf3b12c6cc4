#!/usr/bin/env bash
# tests/kvm/run's answer to a test host that dies (status 125, as a soft
# lockup panic or a stopped heartbeat give) or times out (124): a new test
# host goes on from the script that was interrupted, scripts that ended
# are not run again, their statuses still count, and a host that keeps
# dying ends the tier with a "not ok" naming what did not run. And
# suite.sh's bound on one script: a script that hangs is ended at
# KVMLAB_KVM_SCRIPT_TIMEOUT with its VMM's report, fails, and the tier
# goes on; what a script leaves running is ended. The real run and
# suite.sh run in a scratch tree whose scripts/testhost runs the command
# right here and "dies" when a test script asks it to. No root, no KVM.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1

d=$(mktemp -d /tmp/kvmlab-resume.XXXXXX) || exit 1
t_defer "rm -rf '$d'"
mkdir -p "$d/tests/kvm" "$d/scripts" "$d/build" "$d/ctl" "$d/tmp" "$d/trace/events/kvm/kvm_exit" \
	"$d/trace/events/kvm/kvm_inj_exception"
# a stand-in for the test host's tracefs: suite.sh counts its kvm_exit
# lines as SHUTDOWN exits (a guest's triple fault), its kvm_inj_exception
# lines as #PF injections
touch "$d/trace/trace"
cp tests/kvm/run tests/kvm/suite.sh "$d/tests/kvm/"
printf '#!/bin/sh\nexit 0\n' >"$d/scripts/build-guest"
printf '#!/bin/sh\nexit 0\n' >"$d/build/kvmlab-vm"
chmod +x "$d/scripts/build-guest" "$d/build/kvmlab-vm"
mapfile -t names < <(bash "$d/tests/kvm/suite.sh" --list)
[ ${#names[@]} -ge 3 ] || { t_fail "suite.sh --list" "${names[*]}"; t_finish; }

# A stand-in VMM: its command name is kvmlab-vm, and SIGQUIT makes it
# print a report on stderr and exit, as the real one does. (Perl: a
# shell started with & cannot trap SIGQUIT, which it inherits ignored.)
tok=$$.$RANDOM
mkdir -p "$d/bin"
cat >"$d/bin/kvmlab-vm" <<EOF
#!/usr/bin/perl
\$| = 1;
\$SIG{QUIT} = sub { print STDERR "kvmlab-vm: vcpu 0 REPORT-$tok\\n"; exit 131; };
print STDERR "kvmlab-vm: started\\n";
sleep 1 while 1;
EOF
chmod +x "$d/bin/kvmlab-vm"
# A test script: it dies (takes the host down) while ctl/die-NAME holds a
# count above 0, fails while ctl/fail-NAME exists, and logs each start.
# With ctl/hang-NAME it starts the stand-in VMM and waits forever; with
# ctl/linger-NAME it leaves a process behind and passes. While ctl/tf-NAME
# holds a count above 0 it "triple-faults": a SHUTDOWN exit in the trace
# and a failure.
for n in "${names[@]}"; do
	cat >"$d/tests/kvm/$n" <<EOF
c=$d/ctl
echo "$n" >>\$c/started
if [ -e \$c/hang-$n ]; then
	$d/bin/kvmlab-vm 2>\$c/vm-$n.err &
	sleep 987654
fi
[ -e \$c/linger-$n ] && { sleep 987655 & }
if [ -s \$c/die-$n ] && [ "\$(cat \$c/die-$n)" -gt 0 ]; then
	echo \$((\$(cat \$c/die-$n) - 1)) >\$c/die-$n
	touch \$c/dead
	kill -KILL "\$(cat \$c/suite.pid)"
	exit 1
fi
echo "ok - $n ran"
if [ -s \$c/tf-$n ] && [ "\$(cat \$c/tf-$n)" -gt 0 ]; then
	echo \$((\$(cat \$c/tf-$n) - 1)) >\$c/tf-$n
	echo " kvmlab-vm-1 [000] d.... 1.0: kvm_exit: vcpu 1 reason shutdown rip 0x0" >>$d/trace/trace
	echo "not ok - $n guest reset"
	exit 1
fi
[ -e \$c/fail-$n ] && { echo "not ok - $n failed"; exit 1; }
exit 0
EOF
done
# The test host: runs the command; a script that "died" ends it with 125,
# after a kernel's last words, as the real one does.
cat >"$d/scripts/testhost" <<EOF
#!/usr/bin/env bash
while [ "\$1" != -- ]; do shift; done; shift
"\$@" &
echo \$! >$d/ctl/suite.pid
wait \$!
r=\$?
if [ -e $d/ctl/dead ]; then
	rm -f $d/ctl/dead
	# ctl/timeout: this boot "ran out of time" instead (the real one: 124)
	[ -e $d/ctl/timeout ] && exit 124
	echo "[   52.9] Kernel panic - not syncing: softlockup: hung tasks"
	exit 125
fi
exit \$r
EOF
chmod +x "$d/scripts/testhost"

tier() { # runs the tier in the scratch tree; output in $out, status in $rc
	: >"$d/ctl/started"
	# TMPDIR: suite.sh's log file, left behind when a "death" kills it
	# (bounded itself: a suite.sh whose bound fails must fail this test, not hang it)
	out=$(cd "$d" && TMPDIR=$d/tmp KVMLAB_KVM_MODE=testhost KVMLAB_TESTHOST_DEATHS=3 \
		KVMLAB_KVM_TRACEFS=$d/trace timeout -k 5 300 \
		env KVMLAB_KVM_SCRIPT_TIMEOUT="${bound:-600}" bash tests/kvm/run 2>/dev/null)
	rc=$?
}
starts() { grep -cx "$1" "$d/ctl/started"; }
ends() { grep -c "^# --- tests/kvm/$1: [0-9]* s, status $2\$" <<<"$out"; }

# 1. one death in the second script: it runs again in a new host, the
#    first does not, every script ends once with status 0
first=${names[0]} second=${names[1]} last=${names[-1]}
echo 1 >"$d/ctl/die-$second"
tier
printf '%s\n' "$out" | sed 's/^/#   /'
[ "$rc" = 0 ] && t_ok "a death mid-tier: the tier passes (status 0)" ||
	t_fail "a death mid-tier: the tier passes" "status $rc"
[ "$(starts "$first")" = 1 ] && [ "$(starts "$second")" = 2 ] && [ "$(starts "$last")" = 1 ] &&
	t_ok "a death mid-tier: only the interrupted script runs again" ||
	t_fail "a death mid-tier: only the interrupted script runs again" \
		"starts: $first $(starts "$first"), $second $(starts "$second"), $last $(starts "$last")"
bad=
for n in "${names[@]}"; do [ "$(ends "$n" 0)" = 1 ] || bad+=" $n"; done
[ -z "$bad" ] && t_ok "a death mid-tier: every script ended once, status 0" ||
	t_fail "a death mid-tier: every script ended once, status 0" "not so:$bad"
grep -q "^# kvm: the test host died (rc 125) during tests/kvm/$second; a new one goes on from there (1 of 3)$" <<<"$out" &&
	t_ok "a death mid-tier: one line names the script and the count" ||
	t_fail "a death mid-tier: one line names the script and the count"
! grep -q '^not ok' <<<"$out" && t_ok "a death mid-tier: no not-ok line" ||
	t_fail "a death mid-tier: no not-ok line" "$(grep '^not ok' <<<"$out" | head -2 | tr '\n' ' ')"

# 2. a script that fails (twice: suite.sh runs it again) fails the tier
#    even when a later death interrupts the host that ran it
rm -f "$d"/ctl/die-*
touch "$d/ctl/fail-$first"
echo 1 >"$d/ctl/die-$last"
tier
rm -f "$d/ctl/fail-$first"
[ "$rc" != 0 ] && [ "$(ends "$first" 1)" = 1 ] && [ "$(starts "$first")" = 2 ] &&
	t_ok "a failed script before a death still fails the tier (status $rc)" ||
	t_fail "a failed script before a death still fails the tier" "status $rc, $first ran $(starts "$first") times"

# 2b. a script whose guest triple-faults in two tries (SHUTDOWN exits
#     in the test host's KVM trace) gets a third, and passes there; one
#     that does so three times fails after three; a plain failure gets
#     two tries (case 2)
rm -f "$d"/ctl/die-*
echo 2 >"$d/ctl/tf-$first"
tier
[ "$rc" = 0 ] && [ "$(starts "$first")" = 3 ] && [ "$(ends "$first" 0)" = 1 ] &&
	grep -q "^# (try 2) not ok - $first guest reset" <<<"$out" &&
	grep -q "^# tests/kvm/$first failed (status 1, 1 SHUTDOWN exits in the test host's KVM (a guest triple-faulted)); running it once more" <<<"$out" &&
	t_ok "a guest that triple-faults in two tries: a third try, which passes, counts" ||
	t_fail "a guest that triple-faults in two tries: a third try" \
		"status $rc, $first started $(starts "$first") times: $(grep "$first" <<<"$out" | tr '\n' '|')"
echo 3 >"$d/ctl/tf-$first"
tier
rm -f "$d/ctl/tf-$first"
[ "$rc" != 0 ] && [ "$(starts "$first")" = 3 ] && [ "$(ends "$first" 1)" = 1 ] &&
	t_ok "a guest that triple-faults in three tries: the script fails after three (status $rc)" ||
	t_fail "a guest that triple-faults in three tries fails after three" "status $rc, $first started $(starts "$first") times"
# each try's counts are shown (a triple fault, then a plain failure: no
# third try)
touch "$d/ctl/fail-$first"
echo 1 >"$d/ctl/tf-$first"
echo 0 >"$d/ctl/pf-$first"
tier
rm -f "$d/ctl/fail-$first" "$d/ctl/tf-$first"
[ "$(starts "$first")" = 2 ] && grep -q "^# test host's KVM during tests/kvm/$first, try 1: 1 SHUTDOWN exits, 0 #PF injected$" <<<"$out" &&
	grep -q "^# test host's KVM during tests/kvm/$first, try 2: 0 SHUTDOWN exits, 0 #PF injected$" <<<"$out" &&
	t_ok "every try's SHUTDOWN and #PF counts are shown" ||
	t_fail "every try's SHUTDOWN and #PF counts are shown" "$(grep "test host's KVM" <<<"$out" | tr '\n' '|')"
: >"$d/ctl/started"
# a #PF storm in the second try (after a plain first failure) earns the
# third; one below the bound (KVMLAB_KVM_PF_STORM, here 50) does not
s_pf() { # suite.sh on the first script alone, in a stand-in test host
	out=$(cd "$d" && TMPDIR=$d/tmp KVMLAB_KVM_TESTHOST=1 KVMLAB_KVM_TRACEFS=$d/trace KVMLAB_KVM_PF_STORM=50 \
		timeout -k 5 120 bash tests/kvm/suite.sh "$first" 2>/dev/null)
}
ones() { # COUNT: the first script fails plainly, then with a storm of COUNT
	cat >"$d/tests/kvm/$first" <<EOF2
c=$d/ctl
echo "$first" >>\$c/started
n=\$(grep -cx "$first" \$c/started)
if [ \$n = 2 ]; then
	for i in \$(seq $1); do echo " x [000] d.... 1.0: kvm_inj_exception: #PF (0x10)"; done >>$d/trace/trace
fi
echo "not ok - $first failed (\$n)"
exit 1
EOF2
}
orig=$(cat "$d/tests/kvm/$first")
ones 50
: >"$d/ctl/started"
s_pf
n50=$(starts "$first") o50=$out
ones 49
: >"$d/ctl/started"
s_pf
n49=$(starts "$first")
printf '%s\n' "$orig" >"$d/tests/kvm/$first"
[ "$n50" = 3 ] && [ "$n49" = 2 ] &&
	grep -q "^# tests/kvm/$first failed (status 1, 50 #PF injected by the test host's KVM (a guest's broken paging)); running it once more" <<<"$o50" &&
	t_ok "a #PF storm in the second try earns a third (50 of bound 50: 3 tries; 49: 2)" ||
	t_fail "a #PF storm in the second try earns a third" "tries: $n50 at 50, $n49 at 49: $(grep 'failed (status' <<<"$o50" | tr '\n' '|')"

# 3. a boot that runs out of time (124) goes on in a new host as well
rm -f "$d"/ctl/die-*
third=${names[2]}
echo 1 >"$d/ctl/die-$third"
touch "$d/ctl/timeout"
tier
rm -f "$d/ctl/timeout"
[ "$rc" = 0 ] && [ "$(starts "$third")" = 2 ] && [ "$(ends "$third" 0)" = 1 ] &&
	grep -q "^# kvm: the test host timed out after [0-9]*s (rc 124) during tests/kvm/$third; a new one goes on from there (1 of 3)$" <<<"$out" &&
	t_ok "a test host that times out: a new one goes on from the interrupted script" ||
	t_fail "a test host that times out: a new one goes on from the interrupted script" \
		"status $rc, $third started $(starts "$third") times: $(grep '^# kvm:' <<<"$out" | tr '\n' ' ')"

# 4. a host that dies every time: at most 3 new hosts, then one not-ok
#    line naming what did not run
rm -f "$d"/ctl/die-*
echo 99 >"$d/ctl/die-$second"
tier
[ "$rc" != 0 ] && [ "$(starts "$second")" = 4 ] && [ "$(starts "$last")" = 0 ] &&
	grep -q "^not ok - kvm: test host # it died or timed out 4 times; not run: $second .*$last\$" <<<"$out" &&
	t_ok "a host that keeps dying: 4 tries, then not ok naming the scripts not run" ||
	t_fail "a host that keeps dying: 4 tries, then not ok naming the scripts not run" \
		"status $rc, $second started $(starts "$second") times: $(grep '^not ok' <<<"$out" | tr '\n' ' ')"

# 5. a script that hangs (its VMM and a wait that never ends): each of
#    its two tries is ended at the bound, with the VMM's report (SIGQUIT);
#    it fails with status 124 and one not-ok line, the next script runs;
#    nothing of it is left
rm -f "$d"/ctl/die-*
touch "$d/ctl/hang-$second"
s0=$SECONDS
bound=3 tier
el=$((SECONDS - s0))
rm -f "$d/ctl/hang-$second"
left=$(pgrep -f "sleep 987654|$d/bin/kvmlab-vm" | tr '\n' ' ')
[ "$rc" != 0 ] && [ "$(starts "$second")" = 2 ] && [ "$(ends "$second" 124)" = 1 ] && [ "$(ends "$last" 0)" = 1 ] &&
	[ "$(grep -c "^not ok - tests/kvm/$second # ended after 3 s" <<<"$out")" = 1 ] && [ $el -lt 60 ] &&
	t_ok "a script that hangs: ended at the bound twice (status 124, one not-ok line), the tier goes on (${el} s)" ||
	t_fail "a script that hangs is ended at the bound and the tier goes on" \
		"status $rc, $el s, $second started $(starts "$second") times: $(grep "tests/kvm/$second" <<<"$out" | tr '\n' ' ')"
[ "$(grep -c "^#   kvmlab-vm: vcpu 0 REPORT-$tok\$" <<<"$out")" = 2 ] &&
	grep -q "^# tests/kvm/$second: still running after 3 s" <<<"$out" &&
	grep -q "^#  .* sleep 987654\$" <<<"$out" &&
	t_ok "a script that hangs: its processes and its VMM's report (SIGQUIT) are shown" ||
	t_fail "a script that hangs: its processes and its VMM's report are shown" \
		"$(grep -A6 'still running' <<<"$out" | head -n 12 | tr '\n' '|')"
[ -z "$left" ] && t_ok "a script that hangs: none of its processes is left" ||
	t_fail "a script that hangs: none of its processes is left" "still there: $left"
pkill -KILL -f "sleep 987654|$d/bin/kvmlab-vm"

# 6. a script that passes but leaves a process running: it still passes,
#    and the process is named and ended
touch "$d/ctl/linger-$first"
tier
rm -f "$d/ctl/linger-$first"
left=$(pgrep -f "sleep 987655" | tr '\n' ' ')
[ "$rc" = 0 ] && [ "$(ends "$first" 0)" = 1 ] && [ -z "$left" ] &&
	grep -A2 "^# tests/kvm/$first left processes running; ended:" <<<"$out" | grep -q 'sleep 987655$' &&
	t_ok "a script that leaves a process behind: it is named and ended, the tier passes" ||
	t_fail "a script that leaves a process behind is named and ended" \
		"status $rc, left: '$left': $(grep -A2 'left processes' <<<"$out" | tr '\n' '|')"
pkill -KILL -f "sleep 987655"

# 7. on hardware (direct mode) a failing script is not run again: there a
#    retry could hide a hang of our own
touch "$d/ctl/fail-$first"
: >"$d/ctl/started"
out=$(cd "$d" && TMPDIR=$d/tmp KVMLAB_KVM_MODE=direct timeout -k 5 300 bash tests/kvm/run 2>/dev/null)
rc=$?
rm -f "$d/ctl/fail-$first"
[ "$rc" != 0 ] && [ "$(starts "$first")" = 1 ] && [ "$(ends "$first" 1)" = 1 ] && [ "$(starts "$last")" = 1 ] &&
	! grep -q '(try 1)' <<<"$out" &&
	t_ok "on hardware a failing script runs once: no retry (status $rc)" ||
	t_fail "on hardware a failing script runs once" "status $rc, $first started $(starts "$first") times"
t_finish
