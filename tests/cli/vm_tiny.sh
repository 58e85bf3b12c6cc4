#!/usr/bin/env bash
# The VMM's KVM plumbing with a few hand-assembled 64-bit instructions as
# the "kernel" (tests/cli/tinyguest.py): entry state, COM1 output and
# input, every exit path and its status, signals, vCPU count. Runs on any
# usable /dev/kvm, PVM included (it emulates these few instructions).
# Oracles: what the guest prints, the exit status, and the kernel's view
# of the process (/proc/PID/fd names the vCPU fds).
. "$(dirname "$0")/../lib.sh"
t_tiny_kvm "tiny guest tests"

dir=$(mktemp -d /tmp/kvmlab-tiny.XXXXXX)
t_defer "rm -rf '$dir'"
for k in ok reboot acpireset panic paniclog triple echo hang stop regs mmiojump flood; do
	$TINY "$dir/$k.bz" $k
done

# run KIND [ARGS...]: run with stdin from $dir/in (empty unless set),
# sets rc, out, err
run() {
	local k=$1; shift
	[ -f "$dir/in" ] || : >"$dir/in"
	timeout -k 2 30 "$VM" run --kernel "$dir/$k.bz" --initrd none "$@" \
		<"$dir/in" >"$dir/out" 2>"$dir/err"
	rc=$?
	out=$(tr -d '\r' <"$dir/out")
	err=$(cat "$dir/err")
	rm -f "$dir/in"
}
# expect NAME RC OUT_REGEX [ERR_REGEX]
expect() {
	if [ "$rc" != "$2" ]; then
		t_fail "$1" "exit $rc, want $2; stderr: $(head -n3 <<<"$err")"
	elif ! grep -Eq -- "$3" <<<"$out"; then
		t_fail "$1" "output '$(head -c 100 <<<"$out")' does not match /$3/"
	elif [ -n "${4:-}" ] && ! grep -Eq -- "$4" <<<"$err"; then
		t_fail "$1" "stderr '$(head -n3 <<<"$err")' does not match /$4/"
	elif pgrep -f "$dir/" >/dev/null; then
		t_fail "$1" "a process is still running"
	else
		t_ok "$1"
	fi
}

run ok;        expect "ACPI S5 poweroff exits 0 after the guest's output" 0 '^TINY-OK$'
run regs;      expect "entry state: RSI is the zero page (0x7000)" 0 '^0000000000007000$'
run reboot;    expect "i8042 0xFE reset exits 0" 0 '^TINY-OK$'
run acpireset; expect "ACPI reset register exits 0" 0 '^TINY-OK$'
run triple;    expect "triple fault (reset) exits 0" 0 '^TINY-OK$'
run panic;     expect "pvpanic exits 3 with 'guest panicked'" 3 '^TINY-OK$' '^kvmlab-vm: guest panicked$'
run paniclog;  expect "console panic line exits 3" 3 'Kernel panic - not syncing' '^kvmlab-vm: guest panicked$'
run mmiojump;  expect "fatal KVM exit: exit 4 and a register dump" 4 '^TINY-OK$' 'RIP=00000000c0000000'
grep -q 'CR3=0000000000009000 CR4=' "$dir/err"
t_check "register dump shows control registers" test $? = 0

printf 'hello\001\001q' >"$dir/in"
run echo;      expect "COM1 input reaches the guest; Ctrl-A Ctrl-A sends Ctrl-A" 0 $'^hello\x01q$'
# Ctrl-A x once the guest is up (a pipe, so it comes late)
(sleep 1; printf '\001x') | timeout -k 2 30 "$VM" run --kernel "$dir/hang.bz" --initrd none \
	>"$dir/out" 2>"$dir/err"
rc=$?; out=$(tr -d '\r' <"$dir/out"); err=$(cat "$dir/err")
expect "Ctrl-A x quits with 0" 0 '^TINY-OK$' 'quit \(Ctrl-A x\)'

# halted for good: every vCPU halted with interrupts off and its LAPIC
# software-disabled (the BSP), or never started (the APs), as Linux
# leaves a machine on `halt` or on power-off without ACPI. Nothing exits
# to the VMM; its watch sees it within a few seconds.
start=$(date +%s)
run stop --cpus 3
expect "halted for good (3 vCPUs): exits 0 and says so" 0 '^TINY-OK$' \
	'^kvmlab-vm: the guest halted \(every vCPU stopped with interrupts off\)$'
t_check "halted for good: seen within 10 s (took $(($(date +%s) - start)) s)" \
	test $(($(date +%s) - start)) -le 10
# halted with interrupts off but its LAPIC enabled (as a guest deadlocked
# in PV spinlocks' kvm_wait): not stopped, the VMM must keep running
"$VM" run --kernel "$dir/hang.bz" --initrd none --cpus 2 </dev/null >"$dir/out" 2>"$dir/err" &
pid=$!
t_defer "kill -9 $pid"
sleep 6
t_check "halted with its LAPIC enabled: still running after 6 s" kill -0 $pid
kill -TERM $pid
wait $pid; rc=$?
t_check "halted with its LAPIC enabled: SIGTERM ends it (143)" test "$rc" = 143
t_check "halted with its LAPIC enabled: never called halted" \
	bash -c '! grep -q "the guest halted" "$1"' _ "$dir/err"

run ok --console none
expect "--console none: no output" 0 '^$'
run ok --console "file:$dir/console.log"
expect "--console file: nothing on stdout" 0 '^$'
t_check "--console file: guest output in the file" grep -qx 'TINY-OK' "$dir/console.log"

# signals, with 3 vCPUs: the kernel lists one kvm-vcpu fd per vCPU
for sig in TERM INT; do
	"$VM" run --kernel "$dir/hang.bz" --initrd none --cpus 3 </dev/null >"$dir/out" 2>"$dir/err" &
	pid=$!
	t_defer "kill -9 $pid"
	for _ in $(seq 50); do grep -q TINY-OK "$dir/out" && break; sleep 0.1; done
	n=$(ls -l /proc/$pid/fd 2>/dev/null | grep -c 'anon_inode:kvm-vcpu:')
	t_check "SIG$sig run: 3 vCPU fds" test "$n" = 3
	kill -$sig $pid
	wait $pid; rc=$?
	want=$((128 + $(kill -l $sig)))
	t_check "SIG$sig: exits $want" test "$rc" = "$want"
	t_check "SIG$sig: says so" grep -q "^kvmlab-vm: stopped by SIG$sig$" "$dir/err"
	t_check "SIG$sig: process gone" test ! -e /proc/$pid
done
# SIGPWR: presses the power button and the VMM runs on (this guest has
# no ACPI to hear it; a real one powers off, tests/kvm/all.sh); SIGTERM
# still stops it
truncate -s 1M "$dir/q.img"
"$VM" run --kernel "$dir/hang.bz" --initrd none --disk "$dir/q.img" </dev/null >"$dir/out" 2>"$dir/err" &
pid=$!
t_defer "kill -9 $pid"
for _ in $(seq 50); do grep -q TINY-OK "$dir/out" && break; sleep 0.1; done
kill -PWR $pid
for _ in $(seq 30); do grep -q "power button pressed" "$dir/out" && break; sleep 0.1; done
t_check "SIGPWR: the VMM says the power button was pressed (console)" grep -q "kvmlab-vm: power button pressed" "$dir/out"
t_check "SIGPWR: the VMM runs on" kill -0 $pid
# SIGUSR2: the devices' state on stderr while the guest runs on (a disk,
# which the tiny guest never drives: status 0, its queue off)
kill -USR2 $pid
for _ in $(seq 30); do grep -q '^    blk: off$' "$dir/err" && break; sleep 0.1; done
t_check "SIGUSR2: the devices' report on stderr (the disk, no driver: status 0, queue off)" \
	grep -q '^  virtio-blk: status 0x0, INTx, ' "$dir/err"
t_check "SIGUSR2: the queue line" grep -q '^    blk: off$' "$dir/err"
t_check "SIGUSR2: the VMM runs on" kill -0 $pid
kill -TERM $pid
wait $pid; rc=$?
t_check "SIGPWR, then SIGTERM: exits 143" test "$rc" = 143
# SIGQUIT: stops like SIGTERM, after each vCPU dumped its state; the
# guest's RIP sits in the tiny kernel's hlt loop (loaded at 1 MiB); the
# devices report their rings (the tiny guest drives none: all off)
"$VM" run --kernel "$dir/hang.bz" --initrd none --cpus 2 --disk "$dir/q.img" --rng \
	</dev/null >"$dir/out" 2>"$dir/err" &
pid=$!
t_defer "kill -9 $pid"
for _ in $(seq 50); do grep -q TINY-OK "$dir/out" && break; sleep 0.1; done
kill -QUIT $pid
wait $pid; rc=$?
t_check "SIGQUIT: exits 131" test "$rc" = 131
t_check "SIGQUIT: both vCPUs dump their state" test "$(grep -c '^kvmlab-vm: vcpu [01] at stop:$' "$dir/err")" = 2
t_check "SIGQUIT: the BSP's RIP is in the guest's code" grep -Eq '^  RIP=00000000001[0-9a-f]{5} ' "$dir/err"
t_check "SIGQUIT: run and interrupt state shown" grep -Eq '^  mp_state=[0-9] .* shadow=[01] ' "$dir/err"
t_check "SIGQUIT: the disk's transport is reported (no driver: status 0, INTx)" \
	grep -q '^  virtio-blk: status 0x0, INTx, ' "$dir/err"
t_check "SIGQUIT: the disk's queue and the rng's are reported, not enabled" \
	test "$(grep -Ec '^    (blk|rng): off$' "$dir/err")" = 2
t_check "SIGQUIT: says so" grep -q "^kvmlab-vm: stopped by SIGQUIT$" "$dir/err"
# a guest flooding a pipe nobody reads: SIGTERM must still stop it
fifo=$dir/fifo
mkfifo "$fifo"
sleep 30 <"$fifo" &
reader=$!
t_defer "kill $reader"
"$VM" run --kernel "$dir/flood.bz" --initrd none </dev/null >"$fifo" 2>"$dir/err" &
pid=$!
t_defer "kill -9 $pid"
sleep 1
kill -TERM $pid
for _ in $(seq 30); do [ -e /proc/$pid ] || break; sleep 0.1; done
if [ -e /proc/$pid ] && ! grep -q zombie /proc/$pid/status 2>/dev/null; then
	t_fail "SIGTERM with output blocked on a full pipe" "still running after 3 s"
else
	wait $pid; rc=$?
	t_check "SIGTERM with output blocked on a full pipe: exits 143" test "$rc" = 143
fi

# --on-reboot restart: the reboot guest resets itself at once, so it boots
# again and again; each boot prints TINY-OK, and the VMM's threads, fds
# and memory must not grow with the boots (/proc as the observer)
"$VM" run --kernel "$dir/reboot.bz" --initrd none --cpus 2 --rng --on-reboot restart \
	--console "file:$dir/rb.out" 2>"$dir/rb.err" &
pid=$!
t_defer "kill -9 $pid"
sleep 1
# snap: the most threads, fds and RSS (kB) of 20 looks over 1 s (a look
# may fall between two boots), then the boots so far
snap() {
	local i t f r mt=0 mf=0 mr=0
	for i in $(seq 20); do
		t=$(ls /proc/$pid/task | wc -l) f=$(ls /proc/$pid/fd | wc -l)
		r=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
		[ "$t" -gt $mt ] && mt=$t; [ "$f" -gt $mf ] && mf=$f; [ "$r" -gt $mr ] && mr=$r
		sleep 0.05
	done
	echo "$mt $mf $mr $(grep -c 'rebooted: boot' "$dir/rb.err")"
}
read -r t1 f1 r1 b1 <<<"$(snap)"
sleep 2
read -r t2 f2 r2 b2 <<<"$(snap)"
kill -TERM $pid
wait $pid; rc=$?
n=$(grep -c '^TINY-OK' "$dir/rb.out")
if [ "$rc" = 143 ] && [ "$b2" -gt "$b1" ] && [ "$b1" -ge 2 ] && [ "$n" -gt "$b1" ] &&
	grep -q '^kvmlab-vm: the guest rebooted: boot 2 of VM vm-[0-9]*$' "$dir/rb.err"; then
	t_ok "--on-reboot restart: the guest booted $n times, one stderr line a boot; SIGTERM still ends it (143)"
else
	t_fail "--on-reboot restart" "rc $rc, boots $b1 then $b2, TINY-OK $n: $(head -c 300 "$dir/rb.err")"
fi
# (a leak of one a boot would add a hundred or more; a look only sees a
# boot's threads and fds at some stage of its life, between the bare
# process and the whole machine, hence the slack of 16)
if [ $((b2 - b1)) -ge 50 ] && [ "$t2" -le $((t1 + 16)) ] && [ "$f2" -le $((f1 + 16)) ] && [ $((r2 - r1)) -lt 2048 ]; then
	t_ok "--on-reboot restart: over $((b2 - b1)) boots, threads ($t1, $t2), fds ($f1, $f2) and RSS (${r1} to ${r2} kB) stay flat"
else
	t_fail "--on-reboot restart: no growth" "threads $t1/$t2, fds $f1/$f2, RSS $r1/$r2 kB over $((b2 - b1)) boots"
fi
run reboot --on-reboot sometimes
t_check "--on-reboot sometimes: exit 1, one line" test "$rc" = 1 -a "$err" = "kvmlab-vm: --on-reboot sometimes: want exit or restart"
t_finish
