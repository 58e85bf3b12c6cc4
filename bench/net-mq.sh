#!/usr/bin/env bash
# virtio-net data path: kvmlab-vm against QEMU's virtio-net-pci, with the
# kernel's vhost-net off and on, on the same default guest (2 vCPUs,
# 256 MiB) and the same kvmlab network and taps (kvmlab-net tap add).
#
# Per boot the guest measures, against iperf3 servers on the host side of
# the bridge: RTT guest->host (ping, 20 x 0.2 s, average); TCP guest->host
# ("up") and host->guest ("down", iperf3 -R), 5 s each, two clients at
# once pinned to vCPU 0 and 1 (so that 2 queue pairs can both work),
# summed. Around each transfer the guest prints a MARK line and sleeps a
# second, and the host samples KVM's debugfs io_exits + mmio_exits of the
# VM: userspace exits per MiB moved (iperf3's MBytes, receiver side).
# Configurations, VMM-NET-qQ, taken in turn within each round so that the
# test host's noise hits all alike (A B C D, then D C B A, ...):
#   kvmlab-off-q1 qemu-off-q1 kvmlab-on-q1 qemu-on-q1   (the headline)
#   the same with q2 (2 queue pairs on a multi-queue tap) when
#   KVMLAB_BENCH_QUEUES="1 2"; kvmlab with --vhost off|on, QEMU with
#   vhost=off|on.
# Two more, by name only (KVMLAB_BENCH_ONLY): kvmmio-NET-qQ, kvmlab-vm
# with --virtio-transport mmio, and microvm-NET-qQ, QEMU's microvm
# machine with virtio-net-device on its virtio-mmio: the same transport
# side by side, e.g. "kvmmio-off-q1 microvm-off-q1 kvmmio-on-q1 microvm-on-q1".
# kvmtool is not packaged in Debian 12 (apt-cache policy kvmtool: no
# candidate), so it is not in the comparison.
# A boot that does not finish within KVMLAB_BENCH_TIMEOUT is killed and
# counted as hung (nested KVM under TCG hangs a boot now and then); it
# gives no numbers. Medians are over the good runs, ratios kvmlab/QEMU.
#
# Without hardware-backed KVM everything runs inside one test host
# (scripts/testhost): nested KVM under TCG, so absolute numbers are far
# below real hardware; compare the ratios.
# Env: KVMLAB_BENCH_RUNS (rounds, 3), KVMLAB_BENCH_TIMEOUT (per boot, 150 s),
#      KVMLAB_BENCH_QUEUES ("1"), KVMLAB_BENCH_BUDGET (seconds: start no new
#      round that would end past it; 0 = none), KVMLAB_BENCH_ONLY (names),
#      KVMLAB_BENCH_BASE (a second kvmlab-vm binary, a path under bench/ so
#      that it reaches the test host, e.g. bench/.base/kvmlab-vm (that name:
#      the same thread names): configurations base-NET-qQ, for an A/B of a
#      change in the same session), KVMLAB_BENCH_EXITS (1: the
#      per-MiB breakdown of what KVM, the VMM's threads and the guest did,
#      from tracefs hist triggers, debugfs, /proc; see bench/lib.sh bl_snap).
# bench/net-mq.sh --report LOG...: medians and ratios over the RESULT
# lines of several runs' logs (e.g. rounds taken in several test-host
# sessions), without running anything.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
. bench/lib.sh

# ---- medians and ratios over "RESULT name up dn rtt xup xdn" lines ----
report() {
	local t n q res b w v o
	# in variables, not temp files: a report cut short leaves nothing
	b=$(cat)
	t=$(grep '^RESULT ' <<<"$b")
	declare -A M
	echo "# medians over the good runs; up/down Mbit/s, rtt ms, exits per MiB (io+mmio, userspace)"
	printf '%-16s %5s %5s %10s %10s %9s %10s %10s\n' config good hung up down rtt xpm_up xpm_down
	for n in $(awk '{ print $2 }' <<<"$t" | awk '!s[$0]++'); do
		res=$(awk -v n="$n" '$2 == n' <<<"$t")
		local good hung=0
		good=$(grep -vc ' HUNG\| FAIL' <<<"$res")
		hung=$(grep -c ' HUNG' <<<"$res")
		for c in 3 4 5 6 7; do
			M[$n,$c]=$(grep -v ' HUNG\| FAIL' <<<"$res" | awk -v c=$c '{ print $c }' | bl_median)
		done
		printf '%-16s %5s %5s %10s %10s %9s %10s %10s\n' "$n" "$good" "$hung" "${M[$n,3]}" "${M[$n,4]}" "${M[$n,5]}" "${M[$n,6]}" "${M[$n,7]}"
	done
	echo
	echo "# ratios kvmlab/QEMU (throughput: >1 kvmlab faster; rtt and exits: <1 kvmlab better)"
	for q in 1 2; do
		for v in off on; do
			n=kvmlab-$v-q$q
			[ -n "${M[$n,3]:-}" ] && [ -n "${M[qemu-$v-q$q,3]:-}" ] || continue
			echo "q$q vhost=$v: up $(bl_ratio "${M[$n,3]}" "${M[qemu-$v-q$q,3]}")  down $(bl_ratio "${M[$n,4]}" "${M[qemu-$v-q$q,4]}")  rtt $(bl_ratio "${M[$n,5]}" "${M[qemu-$v-q$q,5]}")  exits/MiB up ${M[$n,6]} vs ${M[qemu-$v-q$q,6]}, down ${M[$n,7]} vs ${M[qemu-$v-q$q,7]}"
		done
		for v in off on; do
			n=kvmmio-$v-q$q o=microvm-$v-q$q
			[ -n "${M[$n,3]:-}" ] && [ -n "${M[$o,3]:-}" ] || continue
			echo "q$q vhost=$v virtio-mmio: kvmlab/microvm: up $(bl_ratio "${M[$n,3]}" "${M[$o,3]}")  down $(bl_ratio "${M[$n,4]}" "${M[$o,4]}")  rtt $(bl_ratio "${M[$n,5]}" "${M[$o,5]}")  exits/MiB up ${M[$n,6]} vs ${M[$o,6]}, down ${M[$n,7]} vs ${M[$o,7]}"
		done
		for v in off on; do
			n=base-$v-q$q
			[ -n "${M[$n,3]:-}" ] || continue
			for o in qemu kvmlab; do
				[ -n "${M[$o-$v-q$q,3]:-}" ] || continue
				echo "q$q vhost=$v: base/$o: up $(bl_ratio "${M[$n,3]}" "${M[$o-$v-q$q,3]}")  down $(bl_ratio "${M[$n,4]}" "${M[$o-$v-q$q,4]}")  rtt $(bl_ratio "${M[$n,5]}" "${M[$o-$v-q$q,5]}")"
			done
		done
	done
	grep -q '^BRK ' <<<"$b" || return
	# the exit breakdown: medians per MiB over the good runs' BRK lines,
	# the counters that reach 0.5 per MiB somewhere
	echo
	echo "# per MiB moved, medians (KVMLAB_BENCH_EXITS=1): L1 KVM's events (tracefs hist), its debugfs"
	echo "# counters (vm/), the VMM's threads (thr/: cpu_ns, syscr/syscw = read/write-family syscalls,"
	echo "# sleeps), the guest's /proc/interrupts (guest_irq/)"
	awk '$1 == "BRK" { if (!($2 in ci)) { ci[$2] = ++nc; cn[nc] = $2 }
			k = $3 SUBSEP $4; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
			v[$2, k, ++cnt[$2, k]] = $5 }
		# AMD SVM exit codes (the test host is an emulated AMD CPU)
		function svm(k,   c) {
			if (k !~ /^kvm_exit\/exit_reason:/) return ""
			c = substr(k, length("kvm_exit/exit_reason:") + 1); sub(/^0x/, "", c)
			return "(" (c in X ? X[c] : "?") ")" }
		BEGIN { split("60 INTR 61 NMI 64 VINTR 72 CPUID 77 PAUSE 78 HLT 7b IOIO 7c MSR 81 VMMCALL 400 NPF 401 AVIC_IPI 402 AVIC_NOACCEL 6e RDTSC 87 RDTSCP 8b MWAIT 8a MONITOR 18 CR8_W 8 CR8_R 7f SHUTDOWN 65 CR0_SEL 4e PF 41 DB 46 UD 52 MC", t, " ")
			for (i = 1; i < length(t); i += 2) X[t[i]] = t[i + 1] }
		function med(c, k,   n, i, j, t, a) {
			n = cnt[c, k]; if (!n) return "NA"
			for (i = 1; i <= n; i++) a[i] = v[c, k, i] + 0
			for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
		END {
			for (w = 1; w <= 2; w++) {
				wn = w == 1 ? "up" : "dn"
				printf "## %s", wn; for (c = 1; c <= nc; c++) printf " %s", cn[c]; print ""
				for (i = 1; i <= nk; i++) {
					split(keys[i], kk, SUBSEP); if (kk[1] != wn) continue
					line = ""; big = 0
					for (c = 1; c <= nc; c++) { m = med(cn[c], keys[i]); line = line " " m; if (m != "NA" && m >= 0.5) big = 1 }
					if (big) printf "%-48s%s\n", kk[2] svm(kk[2]), line
				}
			}
		}' <<<"$b"
}
if [ "${1:-}" = --report ]; then
	shift
	cat "$@" | report
	exit 0
fi

bl_build || exit 1
bl_enter net-mq.sh 2400 -- KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-150}" \
	KVMLAB_BENCH_QUEUES="${KVMLAB_BENCH_QUEUES:-1}" KVMLAB_BENCH_BUDGET="${KVMLAB_BENCH_BUDGET:-0}" \
	KVMLAB_BENCH_ONLY="${KVMLAB_BENCH_ONLY:-}" KVMLAB_BENCH_EXITS="${KVMLAB_BENCH_EXITS:-0}" \
	KVMLAB_BENCH_BASE="${KVMLAB_BENCH_BASE:-}"
[ "$(id -u)" = 0 ] || { echo "bench/net-mq.sh: needs root (netns, taps)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench/net-mq.sh: no iperf3 (scripts/install-deps)" >&2; exit 1; }

RUNS=${KVMLAB_BENCH_RUNS:-3}
TMO=${KVMLAB_BENCH_TIMEOUT:-150}
BUDGET=${KVMLAB_BENCH_BUDGET:-0}
K=$TOP/build/guest/bzImage
I=$TOP/build/guest/initrd.img
VM=$TOP/build/kvmlab-vm NETC=$TOP/build/kvmlab-net
QEMU=$(command -v qemu-system-x86_64 || true)
HOST=10.81.0.1 GUEST=10.81.0.2
work=$(mktemp -d /tmp/kvmlab-netmq.XXXXXX) || exit 1
ns=kl-netmq-$$-$RANDOM
ip netns add "$ns" || exit 1
trap 'bl_iperf_stop; ip netns exec "$ns" "$NETC" down mqb >/dev/null 2>&1; bl_ns_del "$ns"; rm -rf "$work"; bl_trace_off; bl_cleanup' EXIT
trap 'exit 130' INT TERM
nsx() { ip netns exec "$ns" "$@"; }
bl_debugfs || { echo "bench/net-mq.sh: no debugfs for KVM's exit counters" >&2; exit 1; }
[ "${KVMLAB_BENCH_EXITS:-0}" = 1 ] && { bl_trace_on || echo "# no tracefs hist triggers: debugfs and /proc only"; }
nsx ip link set lo up
nsx "$NETC" up mqb --cidr $HOST/24 >/dev/null &&
	nsx "$NETC" tap add klb1 --net mqb >/dev/null &&
	nsx "$NETC" tap add klb2 --net mqb --queues 2 >/dev/null || { echo "bench/net-mq.sh: network setup failed" >&2; exit 1; }

names=()
for q in ${KVMLAB_BENCH_QUEUES:-1}; do
	for v in off on; do
		names+=("kvmlab-$v-q$q")
		[ -n "${KVMLAB_BENCH_BASE:-}" ] && names+=("base-$v-q$q")
		[ -n "$QEMU" ] && names+=("qemu-$v-q$q")
	done
done
[ -n "${KVMLAB_BENCH_ONLY:-}" ] && read -ra names <<<"$KVMLAB_BENCH_ONLY"
[ -c /dev/vhost-net ] || { echo "# no /dev/vhost-net: vhost=on configurations skipped"; read -ra names <<<"${names[*]/*-on-*/}"; }

IP3=/usr/bin/iperf3
a="$IP3 -c $HOST -p 5201 -t 5 -f m" b="$IP3 -c $HOST -p 5202 -t 5 -f m"
g="echo 1 >/proc/sys/kernel/printk; mark() { echo MARK \$1; sleep 1; }"
g="$g; ping -c 3 -W 5 $HOST >/dev/null; ping -c 20 -i 0.2 $HOST | tail -1 | sed s/^/RTT-/"
EXITS=${KVMLAB_BENCH_EXITS:-0}
# KVMLAB_BENCH_EXITS=1: what the guest was given and negotiated (once per
# boot, before the transfers) and its /proc/interrupts around each one
if [ "$EXITS" = 1 ]; then
	# two seconds at a mark: bl_snap is slow in the test host
	g="$g; mark() { echo MARK \$1; sleep 2; }"
	g="$g; intr() { grep -v CPU /proc/interrupts | sed s/^/INTR\$1' '/; }; intr 0"
	g="$g; dmesg | grep -iE 'kvm|x2apic|tsc|clocksource|apic|pv|idle' | sed s/^/GI-/"
	g="$g; grep -m1 flags /proc/cpuinfo | sed s/^/GI-/; sed s/^/GI-virtio-features:/ /sys/class/net/eth0/device/features"
	g="$g; echo GI-k \$(/usr/sbin/ethtool -k eth0 | grep ': on' | tr -d '\t'); echo GI-g \$(/usr/sbin/ethtool -g eth0)"
	g="$g; cat /sys/devices/system/clocksource/clocksource0/current_clocksource /sys/devices/system/cpu/cpuidle/current_driver | sed s/^/GI-cs-idle:/"
fi
g="$g; mark up; (taskset -c 0 $a >/tmp/ua) & (taskset -c 1 $b >/tmp/ub) & wait; mark up-end"
[ "$EXITS" = 1 ] && g="$g; intr 1"
g="$g; mark dn; (taskset -c 0 $a -R >/tmp/da) & (taskset -c 1 $b -R >/tmp/db) & wait; mark dn-end"
[ "$EXITS" = 1 ] && g="$g; intr 2"
g="$g; for f in /tmp/ua /tmp/ub /tmp/da /tmp/db; do grep -E 'sec.*receiver' \$f | tail -1 | sed s,^,IPERF-\${f#/tmp/}' ',; done"
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

vmm_argv() { # NAME (VMM-NET-qQ)
	local vmm=${1%%-*} v=${1#*-}; v=${v%%-*}
	local q=${1##*-q}
	local tap=klb$q
	case $vmm in
	base) ARGV=("$TOP/$KVMLAB_BENCH_BASE" run --kernel "$K" --initrd "$I" --mem 256M --cpus 2 --console stdio
		--tap "$tap" --queues "$q" --vhost "$v" --cmdline "$CMDLINE") ;;
	kvmlab|kvmmio) ARGV=("$VM" run --kernel "$K" --initrd "$I" --mem 256M --cpus 2 --console stdio
		--tap "$tap" --queues "$q" --vhost "$v" --cmdline "$CMDLINE")
		[ $vmm = kvmmio ] && ARGV+=(--virtio-transport mmio) ;;
	qemu|microvm)
		local nd="tap,id=n0,ifname=$tap,script=no,downscript=no,vnet_hdr=on,vhost=$v" dv="virtio-net-pci,netdev=n0,romfile="
		local m=pc
		[ $vmm = microvm ] && { m=microvm; dv="virtio-net-device,netdev=n0"; }
		[ "$q" -gt 1 ] && nd="$nd,queues=$q" dv="$dv,mq=on"
		[ "$q" -gt 1 ] && [ $vmm = qemu ] && dv="$dv,vectors=$((2 * q + 2))"
		ARGV=("$QEMU" -enable-kvm -M $m -cpu host -m 256 -smp 2 -nodefaults -no-user-config
			-display none -serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "${CMDLINE}"
			-netdev "$nd" -device "$dv") ;;
	esac
}

one_run() { # NAME: "RESULT name up dn rtt xpm_up xpm_dn", or "RESULT name HUNG|FAIL why"
	local name=$1 out=$work/$1.out
	vmm_argv "$name"
	bl_iperf_start "$ns" $HOST 5201 5202
	BL_ENV=()
	local BL_SNAPDIR=
	[ "$EXITS" = 1 ] && { BL_SNAPDIR=$work/$1.snap; rm -rf "$BL_SNAPDIR"; mkdir -p "$BL_SNAPDIR"; }
	bl_boot "$TMO" "$out" -- ip netns exec "$ns" "${ARGV[@]}"
	bl_iperf_stop
	if [ "$BL_HUNG" = 1 ]; then
		echo "RESULT $name HUNG after ${TMO}s: $(grep -v '^MARK' "$out" | tail -c 120 | tr '\n' ' ')"
		return
	fi
	[ "$BL_RC" = 0 ] || { echo "RESULT $name FAIL rc $BL_RC: $(tail -c 160 "$out" | tr '\n' ' ')"; return; }
	awk -v n="$name" -v xu="$(bl_xdiff up up-end)" -v xd="$(bl_xdiff dn dn-end)" '
	function mb() { for (i = 2; i <= NF; i++) if ($i == "MBytes") return $(i - 1); return 0 }
	function mbit() { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") return $(i - 1); return 0 }
	$1 ~ /^IPERF-u/ { up += mbit(); mu += mb() }
	$1 ~ /^IPERF-d/ { dn += mbit(); md += mb() }
	/^RTT-/ { split($0, p, "="); split(p[2], v, "/"); rtt = v[2] + 0 }
	END {
		if (up > 0 && dn > 0 && rtt > 0 && mu > 0 && md > 0)
			printf "RESULT %s %.1f %.1f %.3f %s %s\n", n, up, dn, rtt,
				xu == "NA" ? "NA" : sprintf("%.2f", xu / mu), xd == "NA" ? "NA" : sprintf("%.2f", xd / md)
		else
			printf "RESULT %s FAIL no numbers: ", n
	}' "$out"
	grep -q '^IPERF-' "$out" && grep -q '^RTT-' "$out" || tail -c 160 "$out" | tr '\n' ' '
	echo
	[ "$EXITS" = 1 ] && breakdown "$name" "$out" "$BL_SNAPDIR"
}

# "BRK name up|dn key per_MiB" for every counter that moved in the
# window (marks up..up-end, dn..dn-end), and "GI name ..." for what the
# guest was given; per MiB moved (iperf3's receiver-side MBytes)
breakdown() { # NAME OUT SNAPDIR
	local name=$1 out=$2 sd=$3 w m
	grep '^GI-' "$out" | sed "s/^/GI $name /" | cut -c1-400
	for w in up dn; do
		m=$(awk -v w=$w 'function mb() { for (i = 2; i <= NF; i++) if ($i == "MBytes") return $(i - 1); return 0 }
			$1 ~ "^IPERF-" substr(w, 1, 1) { s += mb() } END { print s + 0 }' "$out")
		[ -f "$sd/$w" ] && [ -f "$sd/$w-end" ] && awk -v n="$name" -v w=$w -v m="$m" '
			FNR == NR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0 && m > 0) printf "BRK %s %s %s %.3g\n", n, w, $1, d / m }' \
			"$sd/$w" "$sd/$w-end"
		# the guest's interrupts: INTR0/1 around up, INTR1/2 around dn
		awk -v n="$name" -v w=$w -v m="$m" -v a="$([ $w = up ] && echo 0 || echo 1)" '
			$1 ~ /^INTR[0-9]$/ { t = substr($1, 5) + 0; k = $2; s = 0
				for (i = 3; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i
				if ($2 ~ /^[0-9]+:$/) k = $NF
				v[t, k] += s; seen[k] = 1 }
			END { for (k in seen) { d = v[a + 1, k] - v[a, k]; if (d > 0 && m > 0) printf "BRK %s %s guest_irq/%s %.3g\n", n, w, k, d / m } }' "$out"
	done
}

echo "# bench/net-mq.sh: up to $RUNS rounds of: ${names[*]}; guest 256 MiB / 2 vCPUs; QEMU: ${QEMU:-none}; boot timeout ${TMO}s"
[ -n "${KVMLAB_IN_TESTHOST:-}" ] &&
	echo "# NOTE: nested KVM inside a QEMU TCG test host: absolute numbers are far below hardware; compare ratios"
log=$work/results
t0=$SECONDS last=0
for ((r = 1; r <= RUNS; r++)); do
	if [ "$BUDGET" -gt 0 ] && [ $r -gt 1 ] && [ $((SECONDS - t0 + last)) -gt "$BUDGET" ]; then
		echo "# budget of ${BUDGET}s: no round $r"
		break
	fi
	rs=$SECONDS
	# every other round in reverse order: A B C D, D C B A, ... so that
	# a drift within a round favours no configuration
	order=("${names[@]}")
	[ $((r % 2)) = 0 ] && for ((i = 0; i < ${#names[@]}; i++)); do order[i]=${names[${#names[@]} - 1 - i]}; done
	for n in "${order[@]}"; do
		res=$(one_run "$n")
		echo "$(head -1 <<<"$res")  (round $r, $((SECONDS - rs))s into it)"
		tail -n +2 <<<"$res" | { [ $r = 1 ] && cat || grep -v '^GI '; }
		echo "$res" >>"$log"
	done
	last=$((SECONDS - rs))
done
echo
report <"$log"
hung=$(grep -c ' HUNG' "$log")
fails=$(grep -c ' FAIL' "$log")
echo "# $hung boot(s) hung (killed at ${TMO}s), $fails failed"
[ "$fails" -eq 0 ]
