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
#      round that would end past it; 0 = none), KVMLAB_BENCH_ONLY (names).
# bench/net-mq.sh --report LOG...: medians and ratios over the RESULT
# lines of several runs' logs (e.g. rounds taken in several test-host
# sessions), without running anything.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
. bench/lib.sh

# ---- medians and ratios over "RESULT name up dn rtt xup xdn" lines ----
report() {
	local t n q res
	t=$(mktemp /tmp/kvmlab-netmq-rep.XXXXXX) || exit 1
	grep '^RESULT ' >"$t"
	declare -A M
	echo "# medians over the good runs; up/down Mbit/s, rtt ms, exits per MiB (io+mmio, userspace)"
	printf '%-16s %5s %5s %10s %10s %9s %10s %10s\n' config good hung up down rtt xpm_up xpm_down
	for n in $(awk '{ print $2 }' "$t" | awk '!s[$0]++'); do
		res=$(awk -v n="$n" '$2 == n' "$t")
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
	done
	rm -f "$t"
}
if [ "${1:-}" = --report ]; then
	shift
	cat "$@" | report
	exit 0
fi

bl_build || exit 1
bl_enter net-mq.sh 2400 -- KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-150}" \
	KVMLAB_BENCH_QUEUES="${KVMLAB_BENCH_QUEUES:-1}" KVMLAB_BENCH_BUDGET="${KVMLAB_BENCH_BUDGET:-0}" \
	KVMLAB_BENCH_ONLY="${KVMLAB_BENCH_ONLY:-}"
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
trap 'servers_stop; ip netns exec "$ns" "$NETC" down mqb >/dev/null 2>&1; bl_ns_del "$ns"; rm -rf "$work"; bl_cleanup' EXIT
trap 'exit 130' INT TERM
nsx() { ip netns exec "$ns" "$@"; }
bl_debugfs || { echo "bench/net-mq.sh: no debugfs for KVM's exit counters" >&2; exit 1; }
nsx ip link set lo up
nsx "$NETC" up mqb --cidr $HOST/24 >/dev/null &&
	nsx "$NETC" tap add klb1 --net mqb >/dev/null &&
	nsx "$NETC" tap add klb2 --net mqb --queues 2 >/dev/null || { echo "bench/net-mq.sh: network setup failed" >&2; exit 1; }
# fresh iperf3 servers for every boot: a guest that dies mid-test would
# leave a server busy
SRV=()
servers_start() {
	local port
	for port in 5201 5202; do
		nsx iperf3 -s -B $HOST -p $port >/dev/null 2>&1 &
		SRV+=($!)
	done
	sleep 0.3
}
servers_stop() { [ ${#SRV[@]} -gt 0 ] && kill "${SRV[@]}" 2>/dev/null; wait "${SRV[@]}" 2>/dev/null; SRV=(); }

names=()
for q in ${KVMLAB_BENCH_QUEUES:-1}; do
	for v in off on; do
		names+=("kvmlab-$v-q$q")
		[ -n "$QEMU" ] && names+=("qemu-$v-q$q")
	done
done
[ -n "${KVMLAB_BENCH_ONLY:-}" ] && read -ra names <<<"$KVMLAB_BENCH_ONLY"
[ -c /dev/vhost-net ] || { echo "# no /dev/vhost-net: vhost=on configurations skipped"; read -ra names <<<"${names[*]/*-on-*/}"; }

IP3=/usr/bin/iperf3
a="$IP3 -c $HOST -p 5201 -t 5 -f m" b="$IP3 -c $HOST -p 5202 -t 5 -f m"
g="echo 1 >/proc/sys/kernel/printk; mark() { echo MARK \$1; sleep 1; }"
g="$g; ping -c 3 -W 5 $HOST >/dev/null; ping -c 20 -i 0.2 $HOST | tail -1 | sed s/^/RTT-/"
g="$g; mark up; (taskset -c 0 $a >/tmp/ua) & (taskset -c 1 $b >/tmp/ub) & wait; mark up-end"
g="$g; mark dn; (taskset -c 0 $a -R >/tmp/da) & (taskset -c 1 $b -R >/tmp/db) & wait; mark dn-end"
g="$g; for f in /tmp/ua /tmp/ub /tmp/da /tmp/db; do grep -E 'sec.*receiver' \$f | tail -1 | sed s,^,IPERF-\${f#/tmp/}' ',; done"
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

vmm_argv() { # NAME (VMM-NET-qQ)
	local vmm=${1%%-*} v=${1#*-}; v=${v%%-*}
	local q=${1##*-q}
	local tap=klb$q
	case $vmm in
	kvmlab) ARGV=("$VM" run --kernel "$K" --initrd "$I" --mem 256M --cpus 2 --console stdio
		--tap "$tap" --queues "$q" --vhost "$v" --cmdline "$CMDLINE") ;;
	qemu)
		local nd="tap,id=n0,ifname=$tap,script=no,downscript=no,vnet_hdr=on,vhost=$v" dv="virtio-net-pci,netdev=n0,romfile="
		[ "$q" -gt 1 ] && nd="$nd,queues=$q" dv="$dv,mq=on,vectors=$((2 * q + 2))"
		ARGV=("$QEMU" -enable-kvm -M pc -cpu host -m 256 -smp 2 -nodefaults -no-user-config
			-display none -serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "${CMDLINE}"
			-netdev "$nd" -device "$dv") ;;
	esac
}

one_run() { # NAME: "RESULT name up dn rtt xpm_up xpm_dn", or "RESULT name HUNG|FAIL why"
	local name=$1 out=$work/$1.out
	vmm_argv "$name"
	servers_start
	BL_ENV=()
	bl_boot "$TMO" "$out" -- ip netns exec "$ns" "${ARGV[@]}"
	servers_stop
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
		echo "$res  (round $r, $((SECONDS - rs))s into it)"
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
