#!/usr/bin/env bash
# virtio-net data path: kvmlab-vm against QEMU's virtio-net-pci with
# vhost=off, the same default guest (2 vCPUs, 256 MiB) on the same
# kvmlab network, with 1 and with 2 queue pairs.
#
# Per boot the guest measures, against iperf3 servers on the host side
# of the bridge: TCP guest->host and host->guest (iperf3 -R), 5 s, two
# clients at once pinned to vCPU 0 and 1 (so that 2 queue pairs can both
# work), summed; and RTT guest->host (ping, 20 x 0.2 s, average).
# Configurations, interleaved run by run so that noise hits all alike:
#   kvmlab-q1, qemu-q1             1 queue pair (a single-queue tap)
#   kvmlab-q2, kvmlab-q2-1thr, qemu-q2   2 pairs (a multi-queue tap;
#   1thr: KVMLAB_NET_THREADS=one, both pairs on one epoll thread, to
#   compare with the default thread per pair)
# Medians of KVMLAB_BENCH_RUNS (3) runs, and ratios kvmlab / QEMU.
#
# Without hardware-backed KVM everything runs inside one test host
# (scripts/testhost): nested KVM under TCG, so absolute numbers are far
# below real hardware; compare the ratios.
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_TIMEOUT (per boot, 240 s).
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD

if [ -z "${KVMLAB_IN_TESTHOST:-}" ] && [ -z "${KVMLAB_BENCH_DIRECT:-}" ]; then
	if ! why=$(scripts/kvm-is-hw); then
		command -v qemu-system-x86_64 >/dev/null || { echo "bench/net-mq.sh: $why, and no QEMU for the test host" >&2; exit 1; }
		scripts/build-guest || exit 1
		[ -x build/kvmlab-vm ] || make -j2 build/kvmlab-vm build/kvmlab-net || exit 1
		echo "# bench/net-mq.sh: $why: running inside the test host (QEMU TCG + nested SVM)"
		exec scripts/testhost --timeout 2400 -- env KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" \
			KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-240}" bash bench/net-mq.sh
	fi
	scripts/build-guest || exit 1
fi
[ "$(id -u)" = 0 ] || { echo "bench/net-mq.sh: needs root (netns, taps)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench/net-mq.sh: no iperf3 (scripts/install-deps)" >&2; exit 1; }

RUNS=${KVMLAB_BENCH_RUNS:-3}
TMO=${KVMLAB_BENCH_TIMEOUT:-240}
K=$TOP/build/guest/bzImage
I=$TOP/build/guest/initrd.img
VM=$TOP/build/kvmlab-vm NETC=$TOP/build/kvmlab-net
QEMU=$(command -v qemu-system-x86_64 || true)
HOST=10.81.0.1 GUEST=10.81.0.2
work=$(mktemp -d /tmp/kvmlab-netmq.XXXXXX) || exit 1
ns=kl-netmq-$$-$RANDOM
ip netns add "$ns" || exit 1
trap 'servers_stop; ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns exec "$ns" "$NETC" down mqb >/dev/null 2>&1
      ip netns del "$ns"; rm -rf "$work"' EXIT
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx "$NETC" up mqb --cidr $HOST/24 >/dev/null &&
	nsx "$NETC" tap add klb1 --net mqb >/dev/null &&
	nsx "$NETC" tap add klb2 --net mqb --queues 2 >/dev/null || { echo "bench/net-mq.sh: network setup failed" >&2; exit 1; }
# fresh iperf3 servers for every boot: a guest that dies mid-test (the
# test host's nested KVM sometimes stalls one) would leave a server busy
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

names=(kvmlab-q1 kvmlab-q2 kvmlab-q2-1thr)
[ -n "$QEMU" ] && names=(kvmlab-q1 qemu-q1 kvmlab-q2 kvmlab-q2-1thr qemu-q2)

IP3=/usr/bin/iperf3
a="$IP3 -c $HOST -p 5201 -t 5 -f m" b="$IP3 -c $HOST -p 5202 -t 5 -f m"
g="ping -c 3 -W 5 $HOST >/dev/null; ping -c 20 -i 0.2 $HOST | tail -1 | sed s/^/RTT-/"
g="$g; (taskset -c 0 $a >/tmp/ua) & (taskset -c 1 $b >/tmp/ub) & wait"
g="$g; (taskset -c 0 $a -R >/tmp/da) & (taskset -c 1 $b -R >/tmp/db) & wait"
g="$g; for f in /tmp/ua /tmp/ub /tmp/da /tmp/db; do grep -E 'sec.*receiver' \$f | tail -1 | sed s,^,IPERF-\${f#/tmp/}' ',; done"
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

vmm_argv() { # NAME
	local q=${1#*-q}; q=${q%%-*}
	local tap=klb$q
	case $1 in
	kvmlab-*) ARGV=("$VM" run --kernel "$K" --initrd "$I" --mem 256M --cpus 2 --console stdio
		--tap $tap --queues "$q" --cmdline "$CMDLINE") ;;
	qemu-*)
		local nd="tap,id=n0,ifname=$tap,script=no,downscript=no,vnet_hdr=on,vhost=off" dv="virtio-net-pci,netdev=n0,romfile="
		[ "$q" -gt 1 ] && nd="$nd,queues=$q" dv="$dv,mq=on,vectors=$((2 * q + 2))"
		ARGV=("$QEMU" -enable-kvm -M pc -cpu host -m 256 -smp 2 -nodefaults -no-user-config
			-display none -serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "${CMDLINE}"
			-netdev "$nd" -device "$dv") ;;
	esac
}

one_run() { # NAME: "up_mbit down_mbit rtt_ms" or "FAIL why"
	local name=$1 out=$work/$1.out env=()
	vmm_argv "$name"
	[ "$name" = kvmlab-q2-1thr ] && env=(KVMLAB_NET_THREADS=one)
	servers_start
	timeout -k 5 "$TMO" ip netns exec "$ns" env "${env[@]}" "${ARGV[@]}" >"$out" 2>&1 </dev/null
	local rc=$?
	servers_stop
	tr -d '\r' <"$out" >"$out.t" && mv "$out.t" "$out"
	[ $rc = 0 ] || { echo "FAIL rc $rc: $(tail -c 160 "$out" | tr '\n' ' ')"; return; }
	awk '
	$1 ~ /^IPERF-u/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") up += $(i - 1) }
	$1 ~ /^IPERF-d/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") dn += $(i - 1) }
	/^RTT-/ { split($0, p, "="); split(p[2], v, "/"); rtt = v[2] + 0 }
	END { if (up > 0 && dn > 0 && rtt > 0) printf "%.1f %.1f %.3f\n", up, dn, rtt; else printf "FAIL no numbers: " }' "$out"
	grep -q '^IPERF-' "$out" && grep -q '^RTT-' "$out" || tail -c 160 "$out" | tr '\n' ' '
	echo
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# bench/net-mq.sh: $RUNS runs each, guest 256 MiB / 2 vCPUs, QEMU: ${QEMU:-none} (vhost=off)"
[ -n "${KVMLAB_IN_TESTHOST:-}" ] &&
	echo "# NOTE: nested KVM inside a QEMU TCG test host: absolute numbers are far below hardware; compare ratios"
declare -A R
for ((r = 1; r <= RUNS; r++)); do
	for n in "${names[@]}"; do
		res=$(one_run "$n")
		echo "# run $r $n: $res  (guest->host Mbit/s, host->guest Mbit/s, RTT ms)"
		R[$n]+="$res"$'\n'
	done
done

declare -A UP DN RTT
echo
printf '%-16s %14s %14s %10s\n' config up_Mbit/s down_Mbit/s rtt_ms
for n in "${names[@]}"; do
	ok=$(printf '%s' "${R[$n]}" | grep -v '^FAIL' | grep -v '^$')
	UP[$n]=$(awk '{print $1}' <<<"$ok" | median)
	DN[$n]=$(awk '{print $2}' <<<"$ok" | median)
	RTT[$n]=$(awk '{print $3}' <<<"$ok" | median)
	printf '%-16s %14s %14s %10s\n' "$n" "${UP[$n]}" "${DN[$n]}" "${RTT[$n]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'; }
echo
echo "# ratios (throughput: above 1.00 kvmlab-vm is faster; rtt: below 1.00 kvmlab-vm is faster)"
if [ -n "$QEMU" ]; then
	for q in 1 2; do
		echo "kvmlab-q$q/qemu-q$q: up $(ratio "${UP[kvmlab-q$q]}" "${UP[qemu-q$q]}")  down $(ratio "${DN[kvmlab-q$q]}" "${DN[qemu-q$q]}")  rtt $(ratio "${RTT[kvmlab-q$q]}" "${RTT[qemu-q$q]}")"
	done
fi
echo "kvmlab-q2/kvmlab-q1: up $(ratio "${UP[kvmlab-q2]}" "${UP[kvmlab-q1]}")  down $(ratio "${DN[kvmlab-q2]}" "${DN[kvmlab-q1]}")"
echo "kvmlab-q2 (thread per pair) / kvmlab-q2-1thr (one epoll thread): up $(ratio "${UP[kvmlab-q2]}" "${UP[kvmlab-q2-1thr]}")  down $(ratio "${DN[kvmlab-q2]}" "${DN[kvmlab-q2-1thr]}")  rtt $(ratio "${RTT[kvmlab-q2]}" "${RTT[kvmlab-q2-1thr]}")"
fails=$(printf '%s' "${R[*]}" | grep -c '^FAIL' || true)
[ "$fails" -eq 0 ] || { echo "# $fails run(s) failed"; exit 1; }
