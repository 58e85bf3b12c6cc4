#!/usr/bin/env bash
# Consecutive 2-vCPU boots of the default guest, to show that nested KVM
# in the test host does not hang (issue 8). Not part of suite.sh (slow):
#   flock /work/testhost.lock scripts/testhost --timeout 900 -- bash tests/kvm/soak.sh [N]
# Each boot must print KVMLAB-READY and power off. A boot that makes no
# progress (KVM counts no guest exit, i.e. no vCPU ran guest code, for
# STALL seconds) is a hang: the state of the VMM's threads, KVM's counters and the
# host kernel's view are dumped, then the VMM is killed.
# What it found (README, "The test host"): the stuck guests are deadlocked
# on a spinlock with interrupts off; single-threaded TCG (--tcg single)
# hangs most boots, so use it to try a fix quickly, then prove the fix
# with the default (multi-threaded) test host.
# Env: KVMLAB_SOAK_STALL (default 20), KVMLAB_KVM_TIMEOUT (default 240),
#      KVMLAB_SOAK_CPUS (default 2), KVMLAB_SOAK_BUDGET (seconds; stop
#      starting new boots after this, default 480), KVMLAB_SOAK_KARGS
#      (added to the guest's command line), KVMLAB_SOAK_DUMP=light (only
#      the vCPUs' registers on a hang), KVMLAB_SOAK_FIRST_FAIL=1 (stop at
#      the first bad boot). These are read inside the test host: pass
#      them as `scripts/testhost -- env VAR=... bash tests/kvm/soak.sh`.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1

N=${1:-20}
STALL=${KVMLAB_SOAK_STALL:-20}
TMO=${KVMLAB_KVM_TIMEOUT:-240}
CPUS=${KVMLAB_SOAK_CPUS:-2}
BUDGET=${KVMLAB_SOAK_BUDGET:-480}
work=$(mktemp -d /tmp/kvmlab-soak.XXXXXX) || exit 1
t_defer "rm -rf '$work'"

if [ -n "${KVMLAB_IN_TESTHOST:-}" ]; then
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
	echo "# soak: host $(uname -r), $(nproc) CPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)," \
		"kvm_amd: $(for p in nested npt avic vls vgif; do printf '%s=%s ' $p "$(cat /sys/module/kvm_amd/parameters/$p 2>/dev/null)"; done)"
fi

# cputime PID: utime+stime of every thread, in ticks
cputime() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '{ s += $14 + $15 } END { print s + 0 }'; }
# progress PID: KVM's count of guest exits for the VM of PID (it only
# grows while a vCPU runs guest code), else console bytes + CPU time
progress() {
	local f
	for f in /sys/kernel/debug/kvm/"$1"-*/exits; do
		[ -r "$f" ] && { cat "$f"; return; }
	done
	echo "$(stat -c %s "$2") $(cputime "$1")"
}

# guestlog PID: the guest kernel's log, read out of guest RAM (the VMM's
# 256 MiB anonymous mapping) through /proc/PID/mem: printk's ring keeps
# each record's text as plain bytes, so a guest that died before its
# serial driver came up still tells why, and the guest's timing is not
# touched (earlycon changes it). Prints the records around the first
# oops/panic line, else the last ones found.
guestlog() {
	local p=$1 range rest start='' end=''
	while read -r range rest; do
		# anonymous (no path: 5 fields) and exactly the guest's size
		set -- $rest
		[ $# = 4 ] || continue
		if [ $((16#${range#*-} - 16#${range%-*})) = 268435456 ]; then
			start=$((16#${range%-*})) end=$((16#${range#*-}))
			break
		fi
	done </proc/"$p"/maps
	if [ -z "$start" ]; then echo "# guest log: no 256 MiB RAM mapping in /proc/$p/maps"; return; fi
	dd if=/proc/"$p"/mem bs=1M iflag=skip_bytes,count_bytes skip=$start count=$((end - start)) 2>/dev/null |
		strings -n 6 >"$work/guestram.txt"
	local n
	# the ring's copy of the command line (boot_command_line has no prefix)
	n=$(grep -n -m1 '^Command line: ' "$work/guestram.txt" | cut -d: -f1)
	if [ -n "$n" ]; then
		echo "# guest log (from guest RAM, line $n of $(wc -l <"$work/guestram.txt") strings on):"
		sed -n "$n,$((n + ${KVMLAB_SOAK_LOGLINES:-2000}))p" "$work/guestram.txt" | cut -c1-200 | sed 's/^/#   g| /'
	else
		echo "# guest log: no 'Command line:' record found in guest RAM"
	fi
	rm -f "$work/guestram.txt"
}

dump() {
	local p=$1 out=$2 t
	if [ "${KVMLAB_SOAK_DUMP:-full}" = light ]; then
		kill -QUIT "$p" 2>/dev/null
		sleep 2
		echo "# vCPU state at SIGQUIT:"; grep -E 'vcpu|RIP=|mp_state' "$3" | sed 's/^/#   /'
		return
	fi
	echo "# --- hang dump: pid $p, loadavg $(cat /proc/loadavg)"
	echo "# console tail:"; tail -n 40 "$out" | sed 's/^/#   /'
	for t in /proc/"$p"/task/*; do
		echo "# task ${t##*/} $(cat "$t"/comm) state $(awk '{print $3, "utime", $14, "stime", $15, "cpu", $39}' "$t"/stat) wchan $(cat "$t"/wchan)"
		sed 's/^/#     /' "$t"/stack 2>/dev/null | head -n 12
	done
	local d
	for d in /sys/kernel/debug/kvm/"$p"-*; do
		[ -d "$d" ] || continue
		echo "# kvm stats $d:"
		for f in "$d"/*; do [ -f "$f" ] && printf '%s=%s ' "${f##*/}" "$(cat "$f" 2>/dev/null)"; done | fold -w 150 | sed 's/^/#   /'
		for v in "$d"/vcpu*; do
			[ -d "$v" ] || continue
			echo "#   ${v##*/}: $(for f in "$v"/*; do [ -f "$f" ] && printf '%s=%s ' "${f##*/}" "$(cat "$f" 2>/dev/null | head -c 60)"; done)"
		done
	done
	echo "# host interrupts (LOC/RES/CAL):"; grep -E '^ *(LOC|RES|CAL|TLB|NMI):' /proc/interrupts | sed 's/^/#   /'
	echo "# host dmesg tail:"; dmesg | tail -n 8 | sed 's/^/#   /'
	if [ -w /sys/kernel/tracing/tracing_on ]; then
		echo "# kvm trace for 3 s:"
		echo > /sys/kernel/tracing/trace
		echo 1 > /sys/kernel/tracing/events/kvm/enable
		echo 1 > /sys/kernel/tracing/tracing_on
		sleep 3
		echo 0 > /sys/kernel/tracing/tracing_on
		grep -v '^#' /sys/kernel/tracing/trace | tail -n 25 | cut -c1-200 | sed 's/^/#   /'
		echo "#   events: $(grep -vc '^#' /sys/kernel/tracing/trace)"
		echo 0 > /sys/kernel/tracing/events/kvm/enable
	fi
	guestlog "$p"
	# a kick (KVM_RUN interrupted and re-entered): does the guest go on?
	local before; before=$(progress "$p" "$out")
	kill -USR1 "$p" 2>/dev/null
	sleep 5
	echo "# after a kick: progress $before -> $(progress "$p" "$out")"
	# SIGQUIT: the VMM stops and each vCPU dumps its registers
	kill -QUIT "$p" 2>/dev/null
	sleep 3
	echo "# vCPU state at SIGQUIT:"; sed 's/^/#   /' "$3"
}

ok=0 hung=0 failed=0 t0=$SECONDS
for ((i = 1; i <= N; i++)); do
	if [ $((SECONDS - t0)) -ge "$BUDGET" ]; then
		echo "# soak: time budget ${BUDGET}s used up after $((i - 1)) boots"
		break
	fi
	out=$work/$i.out err=$work/$i.err
	s=$(date +%s%N)
	# the KVM tests' own command line (no earlycon: it changes the timing
	# enough to hide the hang); a hang's log is read from guest RAM instead
	"$KVMLAB_VM" run --cpus "$CPUS" --cmdline "console=ttyS0 reboot=k quiet ${KVMLAB_SOAK_KARGS:-} kvmlab.run=\"echo CPUS=\$(grep -c ^processor /proc/cpuinfo)\"" \
		</dev/null >"$out" 2>"$err" &
	p=$!
	last=-1 still=0 verdict=
	for ((k = 0; k < TMO; k++)); do
		sleep 1
		kill -0 $p 2>/dev/null || break
		cur=$(progress $p "$out")
		if [ "$cur" = "$last" ]; then
			still=$((still + 1))
		else
			still=0
		fi
		last=$cur
		if [ $still -ge "$STALL" ]; then
			verdict=hang
			dump $p "$out" "$err"
			break
		fi
	done
	if kill -0 $p 2>/dev/null; then
		[ -n "$verdict" ] || { verdict=timeout; dump $p "$out" "$err"; }
		kill -9 $p 2>/dev/null
	fi
	wait $p
	rc=$?
	e=$(date +%s%N)
	ms=$(( (e - s) / 1000000 ))
	if [ -z "$verdict" ] && [ $rc = 0 ] && grep -q 'KVMLAB-READY' "$out" && grep -q '^CPUS=2' "$out"; then
		ok=$((ok + 1))
		echo "# boot $i: ok, ${ms} ms"
	elif [ -n "$verdict" ]; then
		hung=$((hung + 1))
		t_fail "soak: boot $i" "$verdict after ${ms} ms (the guest ran no instruction for ${STALL}s); stderr: $(tail -n 3 "$err" | tr '\n' ' ')"
	else
		failed=$((failed + 1))
		t_fail "soak: boot $i" "rc $rc after ${ms} ms; stderr: $(tail -n 3 "$err" | tr '\n' ' ')"
		echo "# console tail:"; tail -n 60 "$out" | tr -d '\r' | sed 's/^/#   /'
	fi
	grep -h 'Unhandled\|unhandled' "$err" 2>/dev/null | head -n 2 | sed 's/^/#   vmm: /'
	# screening a configuration: its first bad boot is enough
	[ "${KVMLAB_SOAK_FIRST_FAIL:-0}" = 1 ] && [ $((hung + failed)) -gt 0 ] && break
done
dmesg | grep -c 'Unhandled WRMSR' | sed 's/^/# host dmesg: Unhandled WRMSR lines: /'
n=$((ok + hung + failed))
if [ $hung = 0 ] && [ $failed = 0 ] && [ $n -gt 0 ]; then
	t_ok "soak: $ok consecutive $CPUS-vCPU boots, no hang"
else
	t_fail "soak: $n boots" "$ok ok, $hung hung, $failed failed"
fi
t_finish
