#!/usr/bin/env bash
# kvmlab-vm list, stop, pause, resume and console, with the tiny guest (tests/cli/tinyguest.py:
# it ignores the power button, as a hung guest would) on any usable
# /dev/kvm. Every VM runs in network namespaces made here, as the control
# sockets are scoped to one. Oracles: the kernel's /proc/net/unix (the
# control sockets), /proc/PID (the VMMs), the VMMs' exit status and
# stderr, and ip -j for the namespace's links.
. "$(dirname "$0")/../lib.sh"
t_tiny_kvm "kvmlab-vm list/stop"
if [ "$(id -u)" != 0 ]; then t_skip "kvmlab-vm list/stop" "needs root (network namespaces)"; t_finish; fi
dir=$(mktemp -d /tmp/kvmlab-ctl.XXXXXX)
t_defer "rm -rf '$dir'"
$TINY "$dir/hang.bz" hang
t_netns_new ns ctl
t_netns_new ns2 ctl2
in_ns() { ip netns exec "$ns" "$@"; }

# sockets NS: the control sockets listening in NS, from the kernel
sockets() { ip netns exec "$1" awk '$4 == "00010000" && $8 ~ /^@kvmlab-vm\// {print substr($8, 12)}' /proc/net/unix | sort | tr '\n' ' '; }
# boot NS NAME [ARGS]: the hang guest in the background as VM NAME; pid
# in $vm (ip netns exec execs: its pid is the VMM's)
boot() {
	local n=$1 name=$2; shift 2
	ip netns exec "$n" "$KVMLAB_VM" run --kernel "$dir/hang.bz" --initrd none --name "$name" \
		--console "file:$dir/$name.out" "$@" 2>"$dir/$name.err" &
	vm=$!
	t_defer "kill -9 $vm 2>/dev/null"
	for _ in $(seq 50); do [[ " $(sockets "$n")" == *" $name "* ]] && return 0; sleep 0.1; done
	return 1
}

boot "$ns" web --cpus 2 --mem 64M || t_fail "VM web: control socket up" "$(cat "$dir/web.err")"
web=$vm
t_check "/proc/net/unix: @kvmlab-vm/web listens in its namespace only" \
	test "$(sockets "$ns")" = "web " -a "$(sockets "$ns2")" = ""
[[ $(readlink "/proc/$web/exe") == *kvmlab-vm ]] || t_fail "pid $web is kvmlab-vm"

out=$(in_ns "$KVMLAB_VM" list 2>"$dir/list.err"); rc=$?
row=$(grep '^web ' <<<"$out")
read -r n p cpus mem _ <<<"$row"
if [ $rc = 0 ] && [ "$p" = "$web" ] && [ "$cpus" = 2 ] && [ "$mem" = 64M ] && [ "$(head -n1 <<<"$out" | awk '{print $1}')" = NAME ]; then
	t_ok "list: a header, then web with its pid ($web), 2 vCPUs, 64M"
else t_fail "list: web's row" "rc $rc: $out $(cat "$dir/list.err")"; fi
j=$(in_ns "$KVMLAB_VM" list web --json)
t_check "list web --json: name, pid, cpus, mem, kernel, console, no NICs or disks" jq -e \
	--argjson pid "$web" --arg k "$dir/hang.bz" --arg c "file:$dir/web.out" \
	'length == 1 and .[0].name == "web" and .[0].pid == $pid and .[0].cpus == 2 and
	 .[0].mem_mib == 64 and .[0].kernel == $k and .[0].console == $c and .[0].state == "running" and
	 .[0].nics == [] and .[0].disks == [] and (.[0].uptime_s | type) == "number"' <<<"$j" >/dev/null
t_check "list in another namespace: web is not there" test -z "$(ip netns exec "$ns2" "$KVMLAB_VM" list | tail -n +2)"
err=$(in_ns "$KVMLAB_VM" list nosuch 2>&1 >/dev/null); rc=$?
t_check "list nosuch: exit 1, one line: not running in this network namespace" \
	test $rc = 1 -a "$err" = "kvmlab-vm: list: VM nosuch: not running in this network namespace"

# the name is claimed before anything is made: a second web here fails
# at once and leaves no console file; in another namespace it may run
err=$(in_ns timeout 10 "$KVMLAB_VM" run --kernel "$dir/hang.bz" --initrd none --name web \
	--console "file:$dir/web2.out" 2>&1); rc=$?
if [ $rc = 1 ] && [ "$err" = "kvmlab-vm: --name web: a VM of this name runs in this network namespace (pid $web)" ] &&
	[ ! -e "$dir/web2.out" ]; then t_ok "a second VM web here: exit 1, names the running one's pid, no console file made"
else t_fail "a second VM web here" "rc $rc: $err"; fi
boot "$ns2" web && t_ok "VM web in another namespace runs" || t_fail "VM web in another namespace" "$(cat "$dir/web.err")"
web2=$vm

# non-root: refused by the VMM (its user is root), and said so
err=$(in_ns setpriv --reuid=65534 --regid=65534 --clear-groups "$KVMLAB_VM" stop web 2>&1); rc=$?
if [ $rc = 1 ] && [[ $err == *"permission denied"* ]] && kill -0 "$web"; then t_ok "stop as uid 65534: exit 1, permission denied, the VM runs on"
else t_fail "stop as uid 65534" "rc $rc: $err"; fi

# the tiny guest ignores the power button: stop gives up after its
# timeout and says so; the VM runs on
t0=$EPOCHREALTIME
err=$(in_ns "$KVMLAB_VM" stop web --timeout 1 2>&1); rc=$?
t1=$EPOCHREALTIME
if [ $rc = 1 ] && [[ $err == *"VM web (pid $web): still running 1 s after its power button was pressed (--force quits it)" ]] &&
	kill -0 "$web" && [ "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a >= 0.9 && b-a < 5)}')" = 1 ]; then
	t_ok "stop --timeout 1 on a guest that ignores the button: exit 1 after ~1 s, the VM runs on"
else t_fail "stop --timeout 1" "rc $rc: $err"; fi
err=$(in_ns "$KVMLAB_VM" stop web --timeout 1 --force 2>&1); rc=$?
gone=no; t_running "$web" || gone=yes
t_vm_wait "$web" 10
if [ "$rc" = 0 ] && [ -z "$err" ] && [ $gone = yes ] && [ "$(sockets "$ns")" = "" ]; then
	t_ok "stop --force: exit 0 once the VMM has exited (ps: gone or a zombie); its socket is gone from /proc/net/unix"
else t_fail "stop --force" "stop rc ${rc}, VMM gone when stop returned: $gone, $err"; fi
# t_vm_wait set rc to the VMM's own status
grep -q "^kvmlab-vm: quit (asked on the control socket by pid [0-9]*)$" "$dir/web.err" &&
	t_ok "the VMM: quit, asked on the control socket (pid named)" ||
	t_fail "the VMM's quit line" "$(cat "$dir/web.err")"

# SIGKILL: the kernel frees the name with the process; nothing to clean
kill -9 "$web2"; wait "$web2" 2>/dev/null
boot "$ns2" web && t_ok "after kill -9 the name is free at once: web runs again" ||
	t_fail "web after kill -9" "$(cat "$dir/web.err")"
web3=$vm
err=$(ip netns exec "$ns2" "$KVMLAB_VM" stop web --force --timeout 0 2>&1); rc=$?
t_vm_wait "$web3" 10
t_check "stop --force --timeout 0: quits at once, exit 0 ($err)" test "$rc" = 0 -a -z "$err"

# pause and resume: the flood guest prints without end; paused, its
# console stops growing, and the VMM's vCPU threads burn no CPU
$TINY "$dir/flood.bz" flood
ip netns exec "$ns" "$KVMLAB_VM" run --kernel "$dir/flood.bz" --initrd none --name fl --cpus 2 \
	--console "file:$dir/fl.out" 2>"$dir/fl.err" &
fl=$!
t_defer "kill -9 $fl 2>/dev/null"
for _ in $(seq 50); do [ -s "$dir/fl.out" ] && break; sleep 0.1; done
# cputime PID: user+system ticks of all its threads (/proc/PID/task/*/stat)
cputime() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '{ t += $14 + $15 } END { print t + 0 }'; }
err=$(in_ns "$KVMLAB_VM" pause fl 2>&1); rc=$?
sleep 0.3
s1=$(stat -c %s "$dir/fl.out") c1=$(cputime $fl)
sleep 1
s2=$(stat -c %s "$dir/fl.out") c2=$(cputime $fl)
st=$(in_ns "$KVMLAB_VM" list fl --json | jq -r '.[0].state')
if [ $rc = 0 ] && [ -z "$err" ] && [ "$s1" -gt 0 ] && [ "$s1" = "$s2" ] && [ $((c2 - c1)) -le 5 ] && [ "$st" = paused ]; then
	t_ok "pause: the console stops at $s1 bytes, the VMM uses $((c2 - c1)) ticks in 1 s, list says paused"
else t_fail "pause" "rc $rc '$err', console $s1 then $s2 bytes, cpu ticks $c1 then $c2, state '$st'"; fi
err=$(in_ns "$KVMLAB_VM" pause fl 2>&1); rc=$?
t_check "pause again: exit 1, paused already" test $rc = 1 -a "$err" = "kvmlab-vm: VM fl (pid $fl): pause: paused already"
err=$(in_ns "$KVMLAB_VM" resume fl 2>&1); rc=$?
sleep 1
s3=$(stat -c %s "$dir/fl.out")
st=$(in_ns "$KVMLAB_VM" list fl --json | jq -r '.[0].state')
if [ $rc = 0 ] && [ "$s3" -gt "$s2" ] && [ "$st" = running ]; then t_ok "resume: the console grows again ($s2 to $s3 bytes), list says running"
else t_fail "resume" "rc $rc '$err', console $s2 then $s3, state '$st'"; fi
err=$(in_ns "$KVMLAB_VM" resume fl 2>&1); rc=$?
t_check "resume again: exit 1, not paused" test $rc = 1 -a "$err" = "kvmlab-vm: VM fl (pid $fl): resume: not paused"
in_ns "$KVMLAB_VM" pause fl
err=$(in_ns timeout 10 "$KVMLAB_VM" stop fl --force --timeout 0 2>&1); rc=$?
t_vm_wait "$fl" 10
t_check "a paused VM quits at once (stop --force --timeout 0: $rc, the VMM: ${rc:-still running})" \
	test -z "$err" -a "$rc" = 0

# console: the echo guest on --console pty sends back what it is sent;
# Ctrl-] leaves it running; a second attach types q, which powers it off
$TINY "$dir/echo.bz" echo
ip netns exec "$ns" "$KVMLAB_VM" run --kernel "$dir/echo.bz" --initrd none --name ec --console pty \
	</dev/null >/dev/null 2>"$dir/ec.err" &
ec=$!
t_defer "kill -9 $ec 2>/dev/null"
for _ in $(seq 50); do [[ " $(sockets "$ns")" == *" ec "* ]] && break; sleep 0.1; done
# (fg, typed after Ctrl-], must never reach the guest: the second attach
# would see its echo)
(sleep 0.5; printf 'abc'; sleep 0.5; printf '\035fg'; sleep 5) |
	in_ns timeout 10 "$KVMLAB_VM" console ec >"$dir/con1.out" 2>"$dir/con1.err"
rc=$?
if [ $rc = 0 ] && [ "$(cat "$dir/con1.out")" = "$(printf 'TINY-ECHO\nabc')" ] &&
	[ "$(cat "$dir/con1.err")" = "kvmlab-vm: left the console; the VM runs on" ] && kill -0 $ec; then
	t_ok "console: the guest's output and what was typed, echoed; Ctrl-] leaves, the VM runs on"
else t_fail "console: attach and leave" "rc $rc, out '$(od -c "$dir/con1.out" | head -3)', err '$(cat "$dir/con1.err")'"; fi
(sleep 0.5; printf 'q'; sleep 5) | in_ns timeout 10 "$KVMLAB_VM" console ec >"$dir/con2.out" 2>"$dir/con2.err"
rc=$?
t_vm_wait $ec 10
if [ "$(cat "$dir/con2.out")" = "$(printf 'q\n')" ] && [ "$(cat "$dir/con2.err")" = "kvmlab-vm: the VM has ended" ] &&
	[ "$rc" = 0 ]; then
	t_ok "console again: only q reaches the guest (nothing typed after Ctrl-]), which powers off (its VMM: 0); console ends by itself"
else t_fail "console: second attach" "VMM rc ${rc:-running}, out '$(od -c "$dir/con2.out" | head -2)', err '$(cat "$dir/con2.err")'"; fi
boot "$ns" nopty
nopty=$vm
err=$(in_ns "$KVMLAB_VM" console nopty 2>&1); rc=$?
t_check "console of a VM whose console is a file: exit 1, says so" test $rc = 1 -a \
	"$err" = "kvmlab-vm: console: VM nopty (pid $nopty): its console is file:$dir/nopty.out, not a pty (run it with its console on a pty)"
kill $nopty; wait $nopty 2>/dev/null

# bad input
err=$(in_ns "$KVMLAB_VM" stop 2>&1); rc=$?
t_check "stop without a name: exit 2" test $rc = 2 -a "$err" = "kvmlab-vm: stop: missing VM name (try 'kvmlab-vm stop --help')"
err=$(in_ns "$KVMLAB_VM" stop a/b 2>&1); rc=$?
t_check "stop a/b: exit 1, names the bad name" test $rc = 1 -a "$err" = "kvmlab-vm: stop a/b: want a VM name of 1..63 of [A-Za-z0-9_.-]"
err=$(in_ns "$KVMLAB_VM" stop web --timeout x 2>&1); rc=$?
t_check "stop --timeout x: exit 1" test $rc = 1 -a "$err" = "kvmlab-vm: stop: --timeout x: want 0..86400 seconds"
err=$(in_ns "$KVMLAB_VM" stop web 2>&1); rc=$?
t_check "stop of a VM not running: exit 1, one line" test $rc = 1 -a "$err" = "kvmlab-vm: stop: VM web: not running in this network namespace"
err=$(in_ns "$KVMLAB_VM" list --bogus 2>&1); rc=$?
t_check "list --bogus: exit 2" test $rc = 2
err=$(in_ns "$KVMLAB_VM" pause 2>&1); rc=$?
t_check "pause without a name: exit 2" test $rc = 2
err=$(in_ns "$KVMLAB_VM" resume nosuch 2>&1); rc=$?
t_check "resume nosuch: exit 1, not running" test $rc = 1 -a "$err" = "kvmlab-vm: resume: VM nosuch: not running in this network namespace"
t_check "no kvmlab-vm left in the namespaces" test -z "$(ip netns pids "$ns"; ip netns pids "$ns2")"
t_finish
