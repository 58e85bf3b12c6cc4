#!/usr/bin/env bash
# VMM benchmark: kvmlab-vm against QEMU -M microvm, QEMU -M pc and (when
# installed) kvmtool, booting the same default guest (build/guest) with
# the same kernel command line, 256 MiB and 1 vCPU, under KVM.
#
# Per run: process start -> "KVMLAB-READY" on the console, process
# start -> exit (the guest powers off right after its ready line), and
# the VMM's resident memory beyond guest RAM. Median of N runs (default
# 5), runs interleaved across VMMs so that noise hits all of them alike.
# Plus exec -> first KVM_RUN ioctl, seen by strace (an upper bound: strace
# slows the traced calls).
#
# Memory method, the same for every VMM: at the ready line the VMM is
# stopped (SIGSTOP, so nothing changes while we read, and the pause is
# taken out of its exit time), /proc/PID/smaps is read, and
#   overhead = total Rss - Rss of the guest-RAM mapping
# where the guest-RAM mapping is the one whose size is the guest's RAM
# (256 MiB; below the PCI hole all of it is one mapping in all three).
# Rss counts shared library pages too: a VMM that pulls in 50 libraries
# pays for them. Pss beyond guest RAM is printed as well.
#
# Without hardware-backed KVM the whole benchmark runs inside one test
# host (scripts/testhost): nested KVM under TCG, where every number is
# inflated many times over; compare the ratios, not the absolutes.
#
# Env: KVMLAB_BENCH_RUNS (5), KVMLAB_BENCH_MEM (256, MiB),
#      KVMLAB_BENCH_TIMEOUT (per boot, 120 s).
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD

. bench/lib.sh
bl_build || exit 1
BL_RETRY=1 bl_enter vm.sh 1500 -- KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-5}" \
	KVMLAB_BENCH_MEM="${KVMLAB_BENCH_MEM:-256}" KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-120}"

RUNS=${KVMLAB_BENCH_RUNS:-5}
MEM=${KVMLAB_BENCH_MEM:-256}
TMO=${KVMLAB_BENCH_TIMEOUT:-120}
K=$TOP/build/guest/bzImage
I=$TOP/build/guest/initrd.img
CMDLINE="console=ttyS0 reboot=k quiet"
QEMU=$(command -v qemu-system-x86_64 || true)
KVMTOOL=$(command -v lkvm || command -v lkvm-static || command -v kvmtool || true)
work=$(mktemp -d /tmp/kvmlab-bench.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT

names=(kvmlab-vm)
[ -n "$QEMU" ] && names+=(qemu-microvm qemu-pc)
if [ -n "$KVMTOOL" ]; then
	names+=(kvmtool)
else
	echo "# kvmtool: not installed (Debian 12 does not package it: apt-cache policy kvmtool), skipped"
fi

# vmm_argv NAME: the command line of VMM NAME in ARGV, same guest for all
vmm_argv() {
	local q=("$QEMU" -enable-kvm -cpu host -m "$MEM" -smp 1 -nodefaults -no-user-config
		-display none -serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "$CMDLINE")
	case $1 in
	kvmlab-vm) ARGV=("$TOP/build/kvmlab-vm" run --kernel "$K" --initrd "$I" --mem "${MEM}M"
		--cpus 1 --console stdio --cmdline "$CMDLINE") ;;
	qemu-microvm) ARGV=("${q[@]}" -M microvm) ;;
	qemu-pc) ARGV=("${q[@]}" -M pc) ;;
	kvmtool) ARGV=("$KVMTOOL" run -k "$K" -i "$I" -m "$MEM" -c 1 --console serial -p "$CMDLINE") ;;
	esac
}

# smaps_overhead PID: "rss_kib pss_kib guest_rss_kib": Rss and Pss beyond
# the guest-RAM mapping (the one of exactly the guest's size with the
# most Rss), and that mapping's Rss
smaps_overhead() {
	awk -v want=$((MEM * 1024)) '
	/^[0-9a-f]+-[0-9a-f]+ / { n++ }
	/^Size:/ { size[n] = $2 }
	/^Rss:/  { rss[n] = $2; trss += $2 }
	/^Pss:/  { pss[n] = $2; tpss += $2 }
	END {
		g = 0
		for (i = 1; i <= n; i++) if (size[i] == want && (g == 0 || rss[i] > rss[g])) g = i
		printf "%d %d %d\n", trss - rss[g], tpss - pss[g], rss[g]
	}' "/proc/$1/smaps" 2>/dev/null
}

# one_run NAME: prints "ready_ms exit_ms rss_kib pss_kib guest_kib", or
# "FAIL why"
one_run() {
	local name=$1 err=$work/$1.err fifo=$work/fifo
	local t0 tr='' te pause=0 p0 mem='' line rc st pid fd deadline timedout=0
	vmm_argv "$name"
	rm -f "$fifo"; mkfifo "$fifo"
	t0=$(bl_now_us)
	"${ARGV[@]}" >"$fifo" 2>"$err" </dev/null &
	pid=$!
	exec {fd}<"$fifo"
	deadline=$((t0 + TMO * 1000000))
	while :; do
		if IFS= read -r -t 2 -u "$fd" line; then
			line=${line%$'\r'}
			if [ -z "$tr" ] && [ "$line" = KVMLAB-READY ]; then
				tr=$(bl_now_us)
				p0=$tr
				kill -STOP "$pid" 2>/dev/null
				mem=$(smaps_overhead "$pid")
				kill -CONT "$pid" 2>/dev/null
				pause=$(( $(bl_now_us) - p0 ))
			fi
		else
			st=$?
			[ $st -le 128 ] && break  # EOF: the VMM closed its console
			if [ "$(bl_now_us)" -ge $deadline ]; then timedout=1; break; fi
		fi
	done
	exec {fd}<&-
	if [ $timedout = 1 ]; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		echo "FAIL timeout after ${TMO}s"
		return
	fi
	wait "$pid"
	rc=$?
	te=$(bl_now_us)
	if [ -z "$tr" ]; then echo "FAIL no KVMLAB-READY (rc $rc): $(tail -c 120 "$err" | tr '\n' ' ')"; return; fi
	if [ $rc != 0 ]; then echo "FAIL exit status $rc: $(tail -c 120 "$err" | tr '\n' ' ')"; return; fi
	echo "$(( (tr - t0) / 1000 )) $(( (te - t0 - pause) / 1000 )) ${mem:-0 0 0}"
}

# first_run_us NAME: exec -> first KVM_RUN ioctl, in microseconds, from
# strace timestamps; the VMM is killed once that ioctl shows up
first_run_us() {
	local name=$1 log=$work/strace.$1 t_exec t_run spid vpid i
	command -v strace >/dev/null || { echo "-"; return; }
	vmm_argv "$name"
	: >"$log"
	strace -f -ttt -qq --seccomp-bpf -e trace=execve,ioctl -o "$log" "${ARGV[@]}" >/dev/null 2>&1 </dev/null &
	spid=$!
	for ((i = 0; i < TMO * 20; i++)); do
		grep -q 'KVM_RUN' "$log" && break
		kill -0 $spid 2>/dev/null || break
		sleep 0.05
	done
	vpid=$(awk '/execve\(/ { print $1; exit }' "$log")
	[ -n "$vpid" ] && kill -9 "$vpid" 2>/dev/null
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
	t_exec=$(awk '/execve\(/ && !/ENOENT/ { print $2; exit }' "$log")
	t_run=$(awk '/ioctl\(.*KVM_RUN/ { print $2; exit }' "$log")
	if [ -z "$t_exec" ] || [ -z "$t_run" ]; then echo "-"; return; fi
	awk -v a="$t_exec" -v b="$t_run" 'BEGIN { printf "%d\n", (b - a) * 1000000 }'
}

median() { bl_median; }

echo "# bench/vm.sh: ${RUNS} runs each, guest ${MEM} MiB / 1 vCPU, cmdline \"$CMDLINE\""
[ -n "${KVMLAB_IN_TESTHOST:-}" ] &&
	echo "# NOTE: nested KVM inside a QEMU TCG test host: absolute times are inflated ~10x or more; compare ratios"
declare -A R
for ((r = 1; r <= RUNS; r++)); do
	for n in "${names[@]}"; do
		res=$(one_run "$n")
		echo "# run $r $n: $res  (ready_ms exit_ms rss_beyond_kib pss_beyond_kib guest_rss_kib)"
		R[$n]+="$res"$'\n'
	done
done

declare -A READY EXIT RSS PSS FIRST
for n in "${names[@]}"; do
	ok=$(printf '%s' "${R[$n]}" | grep -v '^FAIL' | grep -v '^$')
	READY[$n]=$(awk '{print $1}' <<<"$ok" | median)
	EXIT[$n]=$(awk '{print $2}' <<<"$ok" | median)
	RSS[$n]=$(awk '{print $3}' <<<"$ok" | median)
	PSS[$n]=$(awk '{print $4}' <<<"$ok" | median)
	FIRST[$n]=$(first_run_us "$n")
done

echo
printf '%-14s %10s %10s %14s %14s %16s\n' VMM ready_ms exit_ms rss_beyond_KiB pss_beyond_KiB exec_to_KVM_RUN_us
for n in "${names[@]}"; do
	printf '%-14s %10s %10s %14s %14s %16s\n' "$n" "${READY[$n]}" "${EXIT[$n]}" "${RSS[$n]}" "${PSS[$n]}" "${FIRST[$n]}"
done
ratio() { bl_ratio "$@"; }
echo
echo "# ratios kvmlab-vm / other (below 1.00: kvmlab-vm is faster / smaller)"
for n in "${names[@]}"; do
	[ "$n" = kvmlab-vm ] && continue
	echo "kvmlab-vm/$n: ready $(ratio "${READY[kvmlab-vm]}" "${READY[$n]}")  exit $(ratio "${EXIT[kvmlab-vm]}" "${EXIT[$n]}")  rss_beyond_guest $(ratio "${RSS[kvmlab-vm]}" "${RSS[$n]}")"
done
echo "# goals: ready <= fastest other; rss_beyond_guest < 2048 KiB; exec->first KVM_RUN < 5000 us (strace inflates it)"
fails=$(printf '%s' "${R[@]}" | grep -c '^FAIL' || true)
[ "$fails" -eq 0 ] || { echo "# $fails run(s) failed"; exit 1; }
