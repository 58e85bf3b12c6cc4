#!/usr/bin/env bash
# I/O benchmark: kvmlab-vm against QEMU (virtio-net-pci vhost=off,
# virtio-blk-pci) on the same guest, the same tap and the same image:
#   net: TCP 32 MiB (KVMLAB_BENCH_MB) guest->host (tx) and host->guest (rx), MB/s, and
#        userspace exits per MiB (KVM's debugfs io_exits + mmio_exits of
#        the VMM's VM, sampled around each transfer)
#   disk: O_DIRECT from inside the guest (bench/guest-dio.c, static,
#        appended to the guest's initramfs): at queue depth 1, 1 MiB
#        sequential read/write MB/s and 4 KiB random read/write IOPS; 4 KiB
#        random read/write IOPS from QD processes at once (queue depth QD);
#        exits per MiB
# kvmlab-vm runs once per virtio-blk backend (kvmlab-thread: --disk
# ...,aio=thread; kvmlab-uring: aio=uring), and with
# KVMLAB_VM_NO_FASTPATH=1 (kvmlab-slow: no ioeventfd/irqfd, every kick and
# interrupt through userspace) to show what they buy.
# Runs interleaved (kvmlab-thread, kvmlab-uring, kvmlab-slow, qemu,
# kvmlab-thread, ...), medians of N (default 3), ratios uring/thread and
# each against QEMU.
#
# Without hardware-backed KVM everything runs inside one test host
# (scripts/testhost: QEMU TCG + nested SVM), where absolute numbers are
# inflated many times: compare the ratios. The image lives on the test
# host's tmpfs, so both VMMs use the page cache (cache=writeback; tmpfs on
# Linux 6.1 has no O_DIRECT for cache=none).
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_SECS (per disk test, 5),
#      KVMLAB_BENCH_MB (per TCP transfer and disk span, 32),
#      KVMLAB_BENCH_QD (queue depth of the parallel random tests, 4),
#      KVMLAB_BENCH_VMMS (which of kvmlab-thread kvmlab-uring kvmlab-slow
#      qemu, all by default), KVMLAB_BENCH_NET (0: skip the TCP part).
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD

if [ -z "${KVMLAB_IN_TESTHOST:-}" ]; then
	scripts/build-guest || exit 1
	[ -x build/kvmlab-vm ] || make -j2 build/kvmlab-vm || exit 1
	# the guest's disk tool, static, in a cpio appended to the initramfs
	st=$(mktemp -d /tmp/kvmlab-bio.XXXXXX) || exit 1
	trap 'rm -rf "$st"' EXIT
	mkdir -p "$st/root/bin"
	cc -static -O2 -Wall -o "$st/root/bin/guest-dio" bench/guest-dio.c || exit 1
	(cd "$st/root" && find bin | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >build/guest/bench-io.cpio || exit 1
	rm -rf "$st"
	trap - EXIT
	if [ -z "${KVMLAB_BENCH_DIRECT:-}" ] && ! why=$(scripts/kvm-is-hw); then
		echo "# bench/io.sh: $why: running inside the test host (QEMU TCG + nested SVM)"
		scripts/testhost --timeout 2400 -- env KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" \
			KVMLAB_BENCH_SECS="${KVMLAB_BENCH_SECS:-5}" KVMLAB_BENCH_MB="${KVMLAB_BENCH_MB:-32}" \
			KVMLAB_BENCH_QD="${KVMLAB_BENCH_QD:-4}" KVMLAB_BENCH_NET="${KVMLAB_BENCH_NET:-1}" \
			KVMLAB_BENCH_VMMS="${KVMLAB_BENCH_VMMS:-}" bash bench/io.sh
		exit $?
	fi
fi

RUNS=${KVMLAB_BENCH_RUNS:-3}
SECS=${KVMLAB_BENCH_SECS:-5}
MB=${KVMLAB_BENCH_MB:-32}
QD=${KVMLAB_BENCH_QD:-4}
NET=${KVMLAB_BENCH_NET:-1}
QEMU=$(command -v qemu-system-x86_64 || true)
PIN=
[ -n "${KVMLAB_IN_TESTHOST:-}" ] && command -v taskset >/dev/null && PIN="taskset -c 0"
work=$(mktemp -d /tmp/kvmlab-bio.XXXXXX) || exit 1
ns=kl-bio-$$-$RANDOM
cleanup() {
	ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	[ -n "${umount_dbg:-}" ] && umount /sys/kernel/debug
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dbg=/sys/kernel/debug/kvm
[ -d $dbg ] || { mount -t debugfs debugfs /sys/kernel/debug && umount_dbg=1; }
cat build/guest/initrd.img build/guest/bench-io.cpio >"$work/initrd" || exit 1
ip netns add "$ns" || exit 1
nsx() { ip netns exec "$ns" "$@"; }
HOST=10.79.0.1 GUEST=10.79.0.2
nsx ip link set lo up
nsx ip tuntap add tap0 mode tap vnet_hdr && nsx ip addr add $HOST/24 dev tap0 && nsx ip link set tap0 up || exit 1
img=$work/disk.img
head -c $((MB << 20)) /dev/urandom >"$work/payload"
B=$((MB << 20))

# the guest: a marker line, a quiet second for the host to sample the
# counters, the test, the guest's own elapsed time, a marker line
g="echo 1 >/proc/sys/kernel/printk; mark() { echo MARK \$1; sleep 1; }; up() { cut -d' ' -f1 /proc/uptime; }"
if [ "$NET" != 0 ]; then
	g="$g; mark tx; a=\$(up); head -c $B /dev/zero | nc $HOST 7001; b=\$(up); echo T tx \$a \$b; mark tx-end"
	g="$g; mark rx; a=\$(up); nc $HOST 7002 </dev/null >/dev/null; b=\$(up); echo T rx \$a \$b; mark rx-end"
fi
for t in seqwrite seqread randwrite randread randwrite:$QD randread:$QD; do
	bs=1048576; case $t in rand*) bs=4096 ;; esac
	jobs=${t#*:}; [ "$jobs" = "$t" ] && jobs=
	t=${t%:*}
	g="$g; mark $t$jobs; /bin/guest-dio /dev/vda $t $bs $MB $SECS $jobs; mark $t$jobs-end"
done
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

vmm_argv() {
	case $1 in
	kvmlab-*) local aio=thread
		[ "$1" = kvmlab-uring ] && aio=uring
		[ "$1" = kvmlab-slow ] && aio=auto
		ARGV=("$TOP/build/kvmlab-vm" run --kernel build/guest/bzImage --initrd "$work/initrd"
		--mem 256M --cpus 1 --tap tap0 --disk "$img,aio=$aio" --console "file:$work/console"
		--cmdline "$CMDLINE") ;;
	qemu) ARGV=("$QEMU" -enable-kvm -M pc -cpu host -m 256 -smp 1 -nodefaults -no-user-config
		-display none -serial "file:$work/console" -no-reboot -kernel build/guest/bzImage
		-initrd "$work/initrd" -append "$CMDLINE"
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vnet_hdr=on,vhost=off
		-device virtio-net-pci,netdev=n0,romfile=
		-drive file="$img",if=none,id=d0,format=raw,cache=writeback,aio=threads
		-device virtio-blk-pci,drive=d0) ;;
	esac
}

# one_run NAME: "tx_MBps rx_MBps tx_xpm rx_xpm sw_MBps sr_MBps rw_iops rr_iops rwQD_iops rrQD_iops disk_xpm"
one_run() {
	local name=$1 pid vmdir= line n
	truncate -s 0 "$img"; truncate -s $((MB * 2))M "$img"
	: >"$work/console"
	nsx timeout 300 ncat -l $HOST 7001 >/dev/null 2>&1 < <(sleep 300) &
	local l1=$!
	nsx timeout 300 ncat -l $HOST 7002 --send-only <"$work/payload" >/dev/null 2>&1 &
	local l2=$!
	sleep 0.3
	vmm_argv "$name"
	local env=()
	[ "$name" = kvmlab-slow ] && env=(KVMLAB_VM_NO_FASTPATH=1)
	# one host CPU for every VMM alike: in the test host, a VMM whose
	# threads span both CPUs has livelocked the host's kernel in a TLB
	# shootdown IPI (soft lockup in flush_tlb_mm_range under madvise)
	env "${env[@]}" ip netns exec "$ns" $PIN "${ARGV[@]}" </dev/null >"$work/vm.err" 2>&1 &
	pid=$!
	declare -A io mm
	local seen=0 deadline=$((SECONDS + 600))
	while kill -0 $pid 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		[ -z "$vmdir" ] && vmdir=$(ls -d $dbg/"$pid"-* 2>/dev/null | head -1)
		n=$(grep -c '^MARK ' "$work/console" 2>/dev/null)
		while [ "${n:-0}" -gt $seen ]; do
			seen=$((seen + 1))
			line=$(grep '^MARK ' "$work/console" | sed -n "${seen}p" | tr -d '\r')
			io[${line#MARK }]=$(cat "$vmdir/io_exits" 2>/dev/null)
			mm[${line#MARK }]=$(cat "$vmdir/mmio_exits" 2>/dev/null)
		done
		sleep 0.2
	done
	kill -9 $pid $l1 $l2 2>/dev/null; wait $pid $l1 $l2 2>/dev/null
	tr -d '\r' <"$work/console" >"$work/c"
	xpm() { # exits per MiB between two marks
		local a=$1 b=$2 mib=$3
		[ -n "${io[$a]:-}" ] && [ -n "${io[$b]:-}" ] || { echo NA; return; }
		awk -v n=$(( (${io[$b]} - ${io[$a]}) + (${mm[$b]} - ${mm[$a]}) )) -v m="$mib" 'BEGIN { printf "%.2f", n / m }'
	}
	mbps() { awk -v n="$1" -v f="$work/c" '$1 == "T" && $2 == n { printf "%.1f", '"$B"' / ($4 - $3) / 1e6; found = 1 } END { if (!found) print "NA" }' "$work/c"; }
	res() { awk -v n="$1" -v c="$2" '$1 == "RES" && $2 == n { v = $c } END { print (v == "" ? "NA" : v) }' "$work/c"; }
	# disk exits per MiB over the two sequential tests
	local dmib
	dmib=$(awk '$1 == "RES" && $2 ~ /^seq/ { s += $3 * $5 } END { printf "%.1f", s * 1e6 / 1048576 }' "$work/c")
	local dx=NA
	if [ -n "${io[seqwrite]:-}" ] && [ -n "${io[seqread-end]:-}" ]; then
		dx=$(awk -v n=$(( (${io[seqwrite-end]} - ${io[seqwrite]}) + (${mm[seqwrite-end]} - ${mm[seqwrite]}) +
			(${io[seqread-end]} - ${io[seqread]}) + (${mm[seqread-end]} - ${mm[seqread]}) )) -v m="$dmib" \
			'BEGIN { printf "%.2f", (m > 0 ? n / m : 0) }')
	fi
	echo "$(mbps tx) $(mbps rx) $(xpm tx tx-end $MB) $(xpm rx rx-end $MB) $(res seqwrite 3) $(res seqread 3) $(res randwrite 4) $(res randread 4) $(res randwrite$QD 4) $(res randread$QD 4) $dx"
}

if [ -n "${KVMLAB_BENCH_VMMS:-}" ]; then
	read -ra names <<<"$KVMLAB_BENCH_VMMS"
else
	names=(kvmlab-thread kvmlab-uring kvmlab-slow)
	[ -n "$QEMU" ] && names+=(qemu)
fi
cols="tx_MBps rx_MBps tx_exits/MiB rx_exits/MiB seqwr_MBps seqrd_MBps randwr_IOPS randrd_IOPS randwr${QD}_IOPS randrd${QD}_IOPS disk_exits/MiB"
ncols=$(wc -w <<<"$cols")
declare -A R
for ((r = 1; r <= RUNS; r++)); do
	for nm in "${names[@]}"; do
		R[$nm,$r]=$(one_run "$nm")
		echo "# run $r $nm: ${R[$nm,$r]}"
	done
done
median() { tr ' ' '\n' | grep -v '^NA$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A M
printf '%-14s' "median"; for c in $cols; do printf ' %14s' "$c"; done; echo
for nm in "${names[@]}"; do
	printf '%-14s' "$nm"
	i=0
	for c in $cols; do
		i=$((i + 1))
		M[$nm,$i]=$(for ((r = 1; r <= RUNS; r++)); do echo "${R[$nm,$r]}" | cut -d' ' -f$i; done | median)
		printf ' %14s' "${M[$nm,$i]}"
	done
	echo
done
# ratio A B: one row of medians A/B
ratio() {
	local i has_a=0 has_b=0
	for nm in "${names[@]}"; do [ "$nm" = "$1" ] && has_a=1; [ "$nm" = "$2" ] && has_b=1; done
	[ $has_a = 1 ] && [ $has_b = 1 ] || return 0
	printf '%-14s' "${1#kvmlab-}/${2#kvmlab-}"
	for ((i = 1; i <= ncols; i++)); do
		printf ' %14s' "$(awk -v a="${M[$1,$i]}" -v b="${M[$2,$i]}" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.2fx", a / b }')"
	done
	echo
}
ratio kvmlab-uring kvmlab-thread
ratio kvmlab-uring qemu
ratio kvmlab-thread qemu
echo "# exits/MiB: KVM debugfs io_exits + mmio_exits per MiB moved (lower is better; a ratio of 0 exits is NA)"
