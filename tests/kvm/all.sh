#!/usr/bin/env bash
# KVM boot tests: real guests under build/kvmlab-vm with the default guest
# (scripts/build-guest). Needs a /dev/kvm that boots a stock kernel: run
# it through tests/kvm/run, which picks the test host when needed.
# The guest is the oracle: what it prints on its console (its own
# /proc/cpuinfo, /proc/meminfo, /proc/cmdline) is checked here.
#
# Env: KVMLAB_VM (the VMM, default build/kvmlab-vm), KVMLAB_KVM_TIMEOUT
# (seconds per boot, default 90; nested under TCG a boot takes 5-30 s).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1

TMO=${KVMLAB_KVM_TIMEOUT:-90}
# --cmdline replaces the VMM's default, so carry what a guest needs:
# the console, reboot through the keyboard controller, a quiet kernel.
BASE="console=ttyS0 reboot=k quiet"
work=$(mktemp -d /tmp/kvmlab-kvm.XXXXXX) || exit 1
t_defer "rm -rf '$work'"

if [ ! -x "$KVMLAB_VM" ]; then
	t_fail "kvm: $KVMLAB_VM" "not built (make)"
	t_finish
fi
for f in "$KVMLAB_BUILD/guest/bzImage" "$KVMLAB_BUILD/guest/initrd.img"; do
	[ -f "$f" ] || { t_fail "kvm: default guest" "$f missing (scripts/build-guest)"; t_finish; }
done

# vm NAME ARGS...: run the VMM with a bounded time. Sets OUT/ERR (files
# with the console and stderr), RC, and SECS (wall time).
vm() {
	local name=$1; shift
	OUT=$work/$name.out ERR=$work/$name.err
	local s e
	s=$(date +%s%N)
	# not timeout(1): it waits forever for a process stuck in the kernel
	# (a vCPU in KVM_RUN that SIGKILL cannot reach); we give up instead
	"$KVMLAB_VM" run "$@" </dev/null >"$OUT" 2>"$ERR" &
	local p=$! i
	for ((i = 0; i < TMO * 10; i++)); do
		kill -0 $p 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 $p 2>/dev/null; then
		kill -TERM $p
		for ((i = 0; i < 50; i++)); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
		kill -9 $p 2>/dev/null
		for ((i = 0; i < 100; i++)); do kill -0 $p 2>/dev/null || break; sleep 0.1; done
		if kill -0 $p 2>/dev/null; then
			echo "# $name: pid $p survives SIGKILL: state $(awk '{print $3}' /proc/$p/stat 2>/dev/null), wchan $(cat /proc/$p/wchan 2>/dev/null)"
			RC=125
		else
			wait $p
			RC=124
		fi
	else
		wait $p
		RC=$?
	fi
	e=$(date +%s%N)
	SECS=$(( (e - s) / 1000000 ))ms
	tr -d '\r' <"$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
}
# why: the distinct reason a boot did not give what was expected
why() {
	if [ "$RC" = 124 ]; then
		echo "timeout after ${TMO}s"
	elif [ "$RC" = 125 ]; then
		echo "timeout after ${TMO}s, and the VMM survives SIGKILL (stuck in the kernel)"
	elif grep -q 'guest panicked' "$ERR"; then
		echo "guest panicked (rc $RC): $(grep -m1 -i 'panic' "$OUT" | cut -c1-120)"
	elif ! grep -qx 'KVMLAB-READY' "$OUT"; then
		echo "no KVMLAB-READY (rc $RC after $SECS; $(wc -l <"$OUT") console lines); stderr: $(tail -n 2 "$ERR" | tr '\n' ' ' | cut -c1-150); console: $(grep -v '^$' "$OUT" | tail -n 2 | tr '\n' ' ' | cut -c1-150)"
	else
		echo "rc $RC; $*"
	fi
}
# val KEY: the value printed by the guest as "KEY=value" (last one)
val() { sed -n "s/^$1=//p" "$OUT" | tail -n1; }

# 1. Boot to the ready line; poweroff (the default end) exits 0. The
# guest also reports its MemTotal for the --mem check below.
vm boot --mem 256M --cmdline "$BASE kvmlab.run=\"echo MEM=\$(grep MemTotal /proc/meminfo)\""
# The kernel's own last words tell that the guest really powered off.
if [ $RC = 0 ] && grep -qx 'KVMLAB-READY' "$OUT" && grep -qx 'KVMLAB-RC=0' "$OUT" &&
	grep -q 'reboot: Power down' "$OUT"; then
	t_ok "kvm: boot to KVMLAB-READY, poweroff exits 0 ($SECS)"
else
	t_fail "kvm: boot to KVMLAB-READY, poweroff exits 0" "$(why "want KVMLAB-RC=0 and the kernel's 'reboot: Power down'")"
fi
mem256=$(val MEM | awk '{print $2}')

# The checks below judge only what they are about (the exit status has
# its own checks above and below), so one broken feature fails one check.

# 2. --cpus 2: the guest's own count of processors. The same boot
# carries check 4: a random token on --cmdline comes back from the
# guest's /proc/cmdline; the guest rewrites it (GOT-) so that a console
# echo of the command line cannot pass. The token goes last, so that the
# greedy .* skips the sed text itself.
tok=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
vm cpus --cpus 2 --rng --cmdline "$BASE kvmlab.run=\"echo CPUS=\$(grep -c ^processor /proc/cpuinfo); echo RNG=\$(cat /sys/class/misc/hw_random/rng_current) \$(head -c 4096 /dev/hwrng | od -An -tx1 -v | tr -d ' \\n' | wc -c) \$(head -c 4096 /dev/hwrng | gzip -c | wc -c); echo TSCDL=\$(grep -cw tsc_deadline_timer /proc/cpuinfo) \$(cat /sys/devices/system/clockevents/clockevent0/current_device); sed -n 's/.*kvmlab.token=\\([0-9a-f]*\\).*/GOT-\\1/p' /proc/cmdline\" kvmlab.token=$tok"
n=$(val CPUS)
if [ "$n" = 2 ]; then
	t_ok "kvm: --cpus 2, guest counts 2 CPUs ($SECS)"
else
	t_fail "kvm: --cpus 2, guest counts 2 CPUs" "$(why "guest counted '${n:-nothing}'")"
fi
# KVM emulates the TSC-deadline timer; the VMM offers it (KVM says so by
# a capability, not in its CPUID), and the guest's clockevent uses it
if [ "$(val TSCDL)" = "2 lapic-deadline" ]; then
	t_ok "kvm: both CPUs offer the TSC-deadline timer and the guest ticks with it"
else
	t_fail "kvm: the guest ticks with the TSC-deadline timer" "$(why "TSCDL='$(val TSCDL)' (want '2 lapic-deadline')")"
fi
# 9. --rng (same boot): the guest's hw_random core picked the virtio
# device, /dev/hwrng gives 4096 bytes, and they do not compress (gzip's
# output is larger than its input for random bytes; zeros shrink to ~30)
read -r rng_dev rng_hex rng_gz <<<"$(val RNG)"
if [ "$rng_dev" = virtio_rng.0 ] && [ "$rng_hex" = 8192 ] && [ "${rng_gz:-0}" -gt 4096 ]; then
	t_ok "kvm: --rng: the guest's hwrng is virtio_rng.0, 4096 bytes that gzip cannot shrink ($rng_gz)"
else
	t_fail "kvm: --rng: the guest's hwrng is virtio_rng.0 and gives random bytes" "$(why "RNG='$(val RNG)'")"
fi
if grep -qx "GOT-$tok" "$OUT"; then
	t_ok "kvm: --cmdline token echoed by the guest"
else
	t_fail "kvm: --cmdline token echoed by the guest" "$(why "no GOT-$tok line")"
fi

# 3. --mem 512M. MemTotal is RAM minus what the kernel keeps for itself
# (its image, struct page arrays, early reservations: ~40 MiB here, 8% of
# 512 MiB), so it can never be within 5% of 512 MiB by itself. Two
# observations that can be:
#  a) the RAM the kernel was handed (firmware memmap = the VMM's e820,
#     as the guest kernel recorded it) is within 5% of 512 MiB;
#  b) MemTotal(512M) - MemTotal(256M) is within 5% of 256 MiB: the fixed
#     reservations cancel out, so this catches a VMM that maps or
#     reports the wrong amount of memory to the running kernel.
vm mem --mem 512M --cmdline "$BASE kvmlab.run=\"echo MEM=\$(grep MemTotal /proc/meminfo); for d in /sys/firmware/memmap/*; do echo MAP=\$(cat \$d/start \$d/end \$d/type); done\""
mem512=$(val MEM | awk '{print $2}')
fw_kib=0
while read -r a b; do
	fw_kib=$(( fw_kib + (b - a + 1) / 1024 ))
done < <(sed -n 's/^MAP=\(0x[0-9a-fA-F]* 0x[0-9a-fA-F]*\) System RAM$/\1/p' "$OUT")
want=$((512 * 1024))
if [ "${fw_kib:-0}" -ge $((want * 95 / 100)) ] && [ "$fw_kib" -le $((want * 105 / 100)) ]; then
	t_ok "kvm: --mem 512M, guest was given $((fw_kib / 1024)) MiB of RAM (within 5%) ($SECS)"
else
	t_fail "kvm: --mem 512M, guest RAM within 5%" "$(why "firmware memmap RAM ${fw_kib:-?} KiB, want $want KiB +-5%")"
fi
if [ -n "$mem512" ] && [ -n "$mem256" ]; then
	d=$((mem512 - mem256)) w=$((256 * 1024))
	if [ $d -ge $((w * 95 / 100)) ] && [ $d -le $((w * 105 / 100)) ]; then
		t_ok "kvm: --mem 512M vs 256M, MemTotal grows by $((d / 1024)) MiB (within 5% of 256; MemTotal $((mem512 / 1024)) MiB)"
	else
		t_fail "kvm: --mem 512M vs 256M, MemTotal delta within 5%" "MemTotal 512M=$mem512 KiB, 256M=$mem256 KiB, delta $d KiB, want $w +-5%"
	fi
else
	t_fail "kvm: --mem 512M vs 256M, MemTotal delta within 5%" "$(why "MemTotal missing: 512M='$mem512' 256M='$mem256'")"
fi

# 5. reboot ends the VMM with status 0
vm reboot --cmdline "$BASE kvmlab.end=reboot"
if [ $RC = 0 ] && grep -qx 'KVMLAB-READY' "$OUT" && grep -q 'reboot: Restarting system' "$OUT"; then
	t_ok "kvm: guest reboot exits 0 ($SECS)"
else
	t_fail "kvm: guest reboot exits 0" "$(why "want the kernel's 'reboot: Restarting system'")"
fi

# 5b. halt: the kernel stops every CPU with interrupts off and no exit
# reaches the VMM (as power-off does on a kernel without ACPI); the VMM
# sees it and ends with 0. Before that, 4 s of an idle guest on 2 vCPUs
# (halted with interrupts on) must not look halted.
vm halt --cpus 2 --cmdline "$BASE kvmlab.run=\"sleep 4; echo AWAKE; halt -f\""
if [ $RC = 0 ] && grep -qx 'AWAKE' "$OUT" && grep -q 'reboot: System halted' "$OUT" &&
	grep -qx 'kvmlab-vm: the guest halted (every vCPU stopped with interrupts off)' "$ERR"; then
	t_ok "kvm: guest halt (2 vCPUs) exits 0 and says so; idle before it did not ($SECS)"
else
	t_fail "kvm: guest halt (2 vCPUs) exits 0 and says so" \
		"$(why "want AWAKE, the kernel's 'reboot: System halted' and the VMM's 'the guest halted'; stderr: $(tail -n 2 "$ERR" | tr '\n' ' ')")"
fi

# 6. init exits -> kernel panic -> non-zero and "guest panicked"
vm panic --cmdline "$BASE kvmlab.end=exit"
if [ $RC != 0 ] && [ $RC != 124 ] && [ $RC != 125 ] && grep -q 'guest panicked' "$ERR"; then
	t_ok "kvm: kernel panic exits non-zero ($RC) with 'guest panicked' ($SECS)"
elif [ $RC = 124 ] || [ $RC = 125 ]; then
	t_fail "kvm: kernel panic exits non-zero with 'guest panicked'" "$(why): panic not detected"
else
	t_fail "kvm: kernel panic exits non-zero with 'guest panicked'" "rc $RC, stderr: $(head -c 200 "$ERR" | tr '\n' ' ')"
fi

# 6b. A panic seen only through pvpanic-pci: the guest unbinds the
# ACPI-described pvpanic port's driver (as a kernel without ACPI never
# has it) and has no console on the serial port, so the kernel's panic
# line never reaches the VMM either. It says what it unbound on
# /dev/ttyS0 itself (the serial driver works without a console there).
vm pvpci --cmdline "reboot=k quiet kvmlab.run=\"echo QEMU0001:00 >/sys/bus/platform/drivers/pvpanic-mmio/unbind; echo PV=\$(ls /sys/bus/platform/drivers/pvpanic-mmio | grep -c QEMU0001) \$(ls /sys/bus/pci/drivers/pvpanic-pci | grep -c ^0000:) >/dev/ttyS0\" kvmlab.end=exit"
if [ $RC = 3 ] && [ "$(val PV)" = "0 1" ] && ! grep -q 'Kernel panic' "$OUT" && grep -q 'guest panicked' "$ERR"; then
	t_ok "kvm: a panic with no pvpanic port and no console is seen through pvpanic-pci: exit 3 ($SECS)"
else
	t_fail "kvm: a panic with no pvpanic port and no console is seen through pvpanic-pci" \
		"$(why "want exit 3, PV='0 1' (port drivers bound, pvpanic-pci devices bound) and no panic line; PV='$(val PV)'")"
fi

# 7+8. One guest that stays up: --console file:PATH sends the console
# to the file and nothing to stdout; then SIGTERM stops the VMM with a
# non-zero status, a message, and no process left (the token on its
# command line finds it for pgrep).
sf=$work/sigterm.txt
t_vm_bg "$work" sigterm "CONSOLE-FILE-$tok" "$TMO" \
	--cmdline "$BASE kvmlab.sig=$tok kvmlab.run=\"echo CONSOLE-FILE-$tok; sleep 600\""
if grep -q "CONSOLE-FILE-$tok" "$sf" 2>/dev/null && grep -q 'KVMLAB-READY' "$sf" &&
	! grep -q 'KVMLAB-READY' "$work/sigterm.out"; then
	t_ok "kvm: --console file:PATH"
else
	t_fail "kvm: --console file:PATH" "file: $(tail -c 150 "$sf" 2>/dev/null | tr '\n' ' '); stdout: $(head -c 100 "$work/sigterm.out" | tr '\n' ' '); stderr: $(tail -c 150 "$work/sigterm.err" | tr '\n' ' ')"
fi
if ! grep -q "CONSOLE-FILE-$tok" "$sf" 2>/dev/null; then
	t_fail "kvm: SIGTERM stops the VMM" "guest never got ready: $(tail -c 200 "$work/sigterm.err" | tr '\n' ' ')"
else
	kill -TERM $pid
	# wait with a bound: a VMM that ignores SIGTERM must fail, not hang
	for ((i = 0; i < 50; i++)); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.2
	done
	kill -9 $pid 2>/dev/null
	for ((i = 0; i < 100; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $pid 2>/dev/null; then
		rc=unkillable
	else
		wait $pid
		rc=$?
	fi
	left=$(pgrep -f "kvmlab.sig=$tok" || true)
	if [ $rc = unkillable ]; then
		t_fail "kvm: SIGTERM stops the VMM" "still there 20 s after SIGTERM and SIGKILL (stuck in the kernel)"
	elif [ $rc = 137 ]; then
		t_fail "kvm: SIGTERM stops the VMM" "still running 10 s after SIGTERM (killed)"
	elif [ $rc = 0 ]; then
		t_fail "kvm: SIGTERM stops the VMM" "exit status 0, want non-zero"
	elif [ -n "$left" ]; then
		t_fail "kvm: SIGTERM stops the VMM" "processes left: $left"
	elif ! grep -q 'SIGTERM' "$work/sigterm.err"; then
		t_fail "kvm: SIGTERM stops the VMM" "rc $rc but no message naming SIGTERM on stderr"
	else
		t_ok "kvm: SIGTERM stops the VMM (rc $rc, message, no process left)"
	fi
fi

# 8. The same kernel as an uncompressed ELF vmlinux (what Firecracker
# boots; scripts/build-guest unpacks it from the bzImage): entered at its
# own startup_64, 2 CPUs, and the guest reads back a token and its memory
# size from the zero page we made up for it.
if [ -f "$KVMLAB_BUILD/guest/vmlinux" ]; then
	tok=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	vm elf --kernel "$KVMLAB_BUILD/guest/vmlinux" --initrd "$KVMLAB_BUILD/guest/initrd.img" --cpus 2 --mem 384M \
		--cmdline "$BASE kvmlab.run=\"echo CPUS=\$(grep -c ^processor /proc/cpuinfo); echo MEM=\$(grep MemTotal /proc/meminfo); sed -n 's/.*kvmlab.token=\\([0-9a-f]*\\).*/GOT-\\1/p' /proc/cmdline\" kvmlab.token=$tok"
	mem=$(val MEM | awk '{print $2}')
	if [ $RC = 0 ] && grep -q '^KVMLAB-READY' "$OUT" && grep -qx "GOT-$tok" "$OUT" &&
		[ "$(val CPUS)" = 2 ] && [ "${mem:-0}" -gt $((300 * 1024)) ] && [ "${mem:-0}" -lt $((384 * 1024)) ]; then
		t_ok "kvm: ELF vmlinux boots to the ready line with 2 CPUs, ${mem} KiB and the cmdline token, powers off ($SECS)"
	else
		t_fail "kvm: ELF vmlinux boots" "$(why "rc $RC, CPUS='$(val CPUS)', MemTotal '${mem:-}' KiB, token $(grep -c "GOT-$tok" "$OUT")")"
	fi
else
	t_skip "kvm: ELF vmlinux boots" "no $KVMLAB_BUILD/guest/vmlinux (scripts/build-guest could not unpack the bzImage)"
fi

# 10. kvmlab-vm pause and resume (the guest's own ticks stop and go on);
# then SIGPWR presses the ACPI power button (the DSDT's GED): the guest's
# button driver reports KEY_POWER, its init powers off, and kvmlab-vm
# exits 0. The guest itself says it saw the key, and the kernel's last
# words are a power-down, not a reset or a kill.
pf=$work/power.txt
# Before that, SIGUSR2 (same boot, with --rng): the VMM's device report
# while the guest runs, against what the guest says of the same device
# (the status its driver wrote, in its sysfs) after reading from it.
pw="echo RNG-STATUS=\$(cat /sys/bus/virtio/drivers/virtio_rng/virtio*/status)"
pw="$pw; head -c 64 /dev/hwrng >/dev/null; echo PWR-WAITING; while :; do echo TICK; sleep 0.2; done"
t_vm_bg "$work" power "^PWR-WAITING" "$TMO" --rng --cmdline "$BASE kvmlab.run=\"$pw\""
if ! grep -q "^PWR-WAITING" "$pf" 2>/dev/null; then
	t_fail "kvm: SIGPWR powers the guest off" "guest never got ready: $(tail -c 200 "$work/power.err" | tr '\n' ' ')"
else
	kill -USR2 $pid
	for ((i = 0; i < 50; i++)); do grep -q '^    rng: ' "$work/power.err" && break; sleep 0.1; done
	gst=$(tr -d '\r' <"$pf" | sed -n 's/^RNG-STATUS=//p' | head -1)
	hst=$(sed -n 's/^  virtio-rng: status \(0x[0-9a-f]*\), MSI-X, .*/\1/p' "$work/power.err")
	rq=$(sed -n 's/^    rng: vector [0-9]*, size [0-9]*, avail \([0-9]*\) (flags 0x[0-9a-f]*[a-z -]*), taken \([0-9]*\), used \([0-9]*\) .*/\1 \2 \3/p' "$work/power.err")
	read -r ra rt ru <<<"$rq"
	if [ -n "$gst" ] && [ -n "$hst" ] && [ $((gst)) = $((hst)) ] && [ $((hst & 4)) = 4 ] &&
		[ "${ra:-0}" -gt 0 ] && [ "$ra" = "$rt" ] && [ "$rt" = "$ru" ] && kill -0 $pid 2>/dev/null; then
		t_ok "kvm: SIGUSR2 reports the devices while the guest runs: virtio-rng status $hst as the guest's driver set it, $ra buffers offered, taken and used"
	else
		t_fail "kvm: SIGUSR2 reports the devices while the guest runs" "guest status '$gst', report status '$hst', ring '$rq': $(grep -A2 'virtio-rng' "$work/power.err" | tr '\n' '|')"
	fi
	# kvmlab-vm pause: the guest's ticks (5 a second) stop for the 3 s
	# it is paused, list says so, and they go on after resume
	"$KVMLAB_VM" pause "vm-$pid" 2>"$work/pause.err"
	prc=$?
	sleep 0.5
	n1=$(grep -c '^TICK' "$pf")
	sleep 3
	n2=$(grep -c '^TICK' "$pf")
	st=$("$KVMLAB_VM" list "vm-$pid" --json 2>>"$work/pause.err" | jq -r '.[0].state')
	"$KVMLAB_VM" resume "vm-$pid" 2>>"$work/pause.err"
	rrc=$?
	sleep 1.5
	n3=$(grep -c '^TICK' "$pf")
	if [ $prc = 0 ] && [ $rrc = 0 ] && [ "$n1" -gt 0 ] && [ "$n1" = "$n2" ] && [ "$n3" -ge $((n2 + 3)) ] && [ "$st" = paused ]; then
		t_ok "kvm: pause stops the guest (its ticks: $n1 before, $n2 after 3 s paused, list: paused) and resume runs it again ($n3)"
	else
		t_fail "kvm: pause and resume" "pause $prc, resume $rrc, ticks $n1 $n2 $n3, state '$st': $(cat "$work/pause.err")"
	fi
	kill -PWR $pid
	for ((i = 0; i < 150; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
	if kill -0 $pid 2>/dev/null; then
		rc="still running 30 s after SIGPWR"
		kill -9 $pid
	else
		wait $pid
		rc=$?
	fi
	if [ "$rc" = 0 ] && tr -d '\r' <"$pf" | grep -q 'kvmlab-init: power button pressed: powering off' &&
		tr -d '\r' <"$pf" | grep -q 'reboot: Power down'; then
		t_ok "kvm: SIGPWR presses the power button: the guest powers itself off, exit 0"
	else
		t_fail "kvm: SIGPWR powers the guest off" "rc $rc; console: $(tr -d '\r' <"$pf" | grep -v '^$' | tail -n 4 | tr '\n' '|')"
	fi
fi

t_finish
