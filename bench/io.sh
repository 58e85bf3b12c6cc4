#!/usr/bin/env bash
# Disk benchmark: kvmlab-vm's virtio-blk, once per backend (kvmlab-thread:
# --disk ...,aio=thread; kvmlab-uring: aio=uring), against QEMU's
# virtio-blk-pci on the same default guest (256 MiB, 1 vCPU) and a fresh
# sparse raw image of the same size each boot. From inside the guest,
# O_DIRECT (bench/guest-dio.c, static, appended to the guest's initramfs,
# so every VMM runs the very same binary), each test KVMLAB_BENCH_SECS
# long over a KVMLAB_BENCH_MB span, at queue depth 1:
#   1 MiB sequential write and read (MB/s), 4 KiB random write and read
#   (IOPS), then 4 KiB random write and read from QD processes at once
#   (queue depth QD), and userspace exits per MiB over the sequential
#   tests (KVM's debugfs io_exits + mmio_exits, sampled at marks the
#   guest prints).
# kvmlab-mmio is kvmlab-thread on --virtio-transport mmio, and
# qemu-microvm QEMU's virtio-blk-device on its microvm machine's
# virtio-mmio: the same transport side by side (not in the default set;
# KVMLAB_BENCH_VMMS="kvmlab-mmio qemu-microvm kvmlab-thread qemu").
# With KVMLAB_BENCH_SLOW=1 kvmlab-vm also runs with KVMLAB_VM_NO_FASTPATH=1
# (no ioeventfd/irqfd: every kick and interrupt through userspace) to show
# what they buy. The network is bench/net-mq.sh's business.
# Runs in turn (kvmlab, [kvmlab-slow,] qemu, then the reverse, ...); a
# boot that does not end within KVMLAB_BENCH_TIMEOUT is killed and counted
# as hung (nested KVM under TCG hangs one now and then). Medians of the
# good runs of N rounds (default 3), ratios uring/thread and each against
# QEMU.
# Without hardware-backed KVM everything runs inside one test host
# (scripts/testhost: QEMU TCG + nested SVM), where absolute numbers are
# inflated many times: compare the ratios. The image lives on the test
# host's tmpfs, so both VMMs use the page cache (cache=writeback, QEMU
# aio=threads; tmpfs on Linux 6.1 has no O_DIRECT for cache=none).
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_SECS (per disk test, 5),
#      KVMLAB_BENCH_MB (disk span, 32), KVMLAB_BENCH_TIMEOUT (per boot,
#      150 s), KVMLAB_BENCH_SLOW, KVMLAB_BENCH_QD (4), KVMLAB_BENCH_VMMS
#      (a subset of kvmlab-thread kvmlab-uring kvmlab-slow kvmlab-mmio
#      qemu qemu-microvm).
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD

. bench/lib.sh
bl_build || exit 1
if [ -z "${KVMLAB_IN_TESTHOST:-}" ]; then
	# the guest's disk tool, static, in a cpio appended to the initramfs
	st=$(mktemp -d /tmp/kvmlab-bio.XXXXXX) || exit 1
	trap 'rm -rf "$st"' EXIT
	mkdir -p "$st/root/bin"
	cc -static -O2 -Wall -o "$st/root/bin/guest-dio" bench/guest-dio.c || exit 1
	(cd "$st/root" && find bin | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >build/guest/bench-io.cpio || exit 1
	rm -rf "$st"
	trap - EXIT
	[ -n "${KVMLAB_BENCH_PREP:-}" ] && exit 0
fi
bl_enter io.sh 2400 -- KVMLAB_BENCH_RUNS="${KVMLAB_BENCH_RUNS:-3}" KVMLAB_BENCH_SECS="${KVMLAB_BENCH_SECS:-5}" \
	KVMLAB_BENCH_MB="${KVMLAB_BENCH_MB:-32}" KVMLAB_BENCH_TIMEOUT="${KVMLAB_BENCH_TIMEOUT:-150}" \
	KVMLAB_BENCH_SLOW="${KVMLAB_BENCH_SLOW:-}" KVMLAB_BENCH_QD="${KVMLAB_BENCH_QD:-4}" \
	KVMLAB_BENCH_VMMS="${KVMLAB_BENCH_VMMS:-}"
[ -f build/guest/bench-io.cpio ] || { echo "bench/io.sh: no build/guest/bench-io.cpio (run it outside the test host first, KVMLAB_BENCH_PREP=1)" >&2; exit 1; }

RUNS=${KVMLAB_BENCH_RUNS:-3}
SECS=${KVMLAB_BENCH_SECS:-5}
MB=${KVMLAB_BENCH_MB:-32}
TMO=${KVMLAB_BENCH_TIMEOUT:-150}
QD=${KVMLAB_BENCH_QD:-4}
QEMU=$(command -v qemu-system-x86_64 || true)
PIN=()
[ -n "${KVMLAB_IN_TESTHOST:-}" ] && command -v taskset >/dev/null && PIN=(taskset -c 0)
work=$(mktemp -d /tmp/kvmlab-bio.XXXXXX) || exit 1
trap 'bl_cleanup; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
bl_debugfs || { echo "bench/io.sh: no debugfs for KVM's exit counters" >&2; exit 1; }
cat build/guest/initrd.img build/guest/bench-io.cpio >"$work/initrd" || exit 1
img=$work/disk.img

# the guest: per test a marker line (the host samples the counters in the
# quiet second after it), the test, a marker line
g="echo 1 >/proc/sys/kernel/printk; mark() { echo MARK \$1; sleep 1; }"
for t in seqwrite seqread randwrite randread randwrite:$QD randread:$QD; do
	bs=1048576; case $t in rand*) bs=4096 ;; esac
	jobs=${t#*:}; [ "$jobs" = "$t" ] && jobs=
	t=${t%:*}
	g="$g; mark $t$jobs; /bin/guest-dio /dev/vda $t $bs $MB $SECS $jobs; mark $t$jobs-end"
done
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.run=\"$g\""

vmm_argv() {
	case $1 in
	kvmlab-*) local aio=thread tr=pci
		[ "$1" = kvmlab-uring ] && aio=uring
		[ "$1" = kvmlab-mmio ] && tr=mmio
		ARGV=("$TOP/build/kvmlab-vm" run --kernel build/guest/bzImage --initrd "$work/initrd"
		--mem 256M --cpus 1 --disk "$img,cache=writeback,aio=$aio" --virtio-transport $tr
		--console stdio --cmdline "$CMDLINE") ;;
	qemu*) local m=pc dev=virtio-blk-pci
		[ "$1" = qemu-microvm ] && { m=microvm; dev=virtio-blk-device; }
		ARGV=("$QEMU" -enable-kvm -M $m -cpu host -m 256 -smp 1 -nodefaults -no-user-config
		-display none -serial stdio -no-reboot -kernel build/guest/bzImage
		-initrd "$work/initrd" -append "$CMDLINE"
		-drive file="$img",if=none,id=d0,format=raw,cache=writeback,aio=threads
		-device $dev,drive=d0) ;;
	esac
}

# one_run NAME: "sw_MBps sr_MBps rw_iops rr_iops rwQD_iops rrQD_iops disk_xpm",
# or "HUNG ..." / "FAIL ..."
one_run() {
	local name=$1 out=$work/c
	truncate -s 0 "$img"; truncate -s $((MB * 2))M "$img"
	vmm_argv "$name"
	BL_ENV=()
	[ "$name" = kvmlab-slow ] && BL_ENV=(KVMLAB_VM_NO_FASTPATH=1)
	# one host CPU for every VMM alike: in the test host, a VMM whose
	# threads span both CPUs has livelocked the host's kernel in a TLB
	# shootdown IPI (soft lockup in flush_tlb_mm_range under madvise)
	bl_boot "$TMO" "$out" -- ${PIN[@]+"${PIN[@]}"} "${ARGV[@]}"
	[ "$BL_HUNG" = 1 ] && { echo "HUNG after ${TMO}s: $(grep -v '^MARK' "$out" | tail -c 100 | tr '\n' ' ')"; return; }
	grep -q "^RES randread$QD " "$out" || { echo "FAIL rc $BL_RC: $(tail -c 120 "$out" | tr '\n' ' ')"; return; }
	res() { awk -v n="$1" -v c="$2" '$1 == "RES" && $2 == n { v = $c } END { print (v == "" ? "NA" : v) }' "$out"; }
	# exits per MiB over the two sequential tests (MiB: MB/s x seconds)
	local dmib dx=NA sw sr
	dmib=$(awk '$1 == "RES" && $2 ~ /^seq/ { s += $3 * $5 } END { printf "%.1f", s * 1e6 / 1048576 }' "$out")
	sw=$(bl_xdiff seqwrite seqwrite-end) sr=$(bl_xdiff seqread seqread-end)
	[ "$sw" != NA ] && [ "$sr" != NA ] && dx=$(awk -v n=$((sw + sr)) -v m="$dmib" 'BEGIN { printf "%.2f", (m > 0 ? n / m : 0) }')
	echo "$(res seqwrite 3) $(res seqread 3) $(res randwrite 4) $(res randread 4)" \
		"$(res "randwrite$QD" 4) $(res "randread$QD" 4) $dx"
}

names=(kvmlab-thread kvmlab-uring)
[ -n "${KVMLAB_BENCH_SLOW:-}" ] && names+=(kvmlab-slow)
[ -n "$QEMU" ] && names+=(qemu)
if [ -n "${KVMLAB_BENCH_VMMS:-}" ]; then
	read -r -a names <<<"$KVMLAB_BENCH_VMMS"
fi
cols="seqwr_MBps seqrd_MBps randwr_IOPS randrd_IOPS randwr_QD$QD randrd_QD$QD exits/MiB"
echo "# bench/io.sh: $RUNS rounds of: ${names[*]} (in turn, every other round reversed); ${SECS}s per test over $MB MiB, boot timeout ${TMO}s"
[ -n "${KVMLAB_IN_TESTHOST:-}" ] &&
	echo "# NOTE: nested KVM inside a QEMU TCG test host: absolute numbers are far below hardware; compare ratios"
declare -A R
hung=0 failed=0
for ((r = 1; r <= RUNS; r++)); do
	order=("${names[@]}")
	[ $((r % 2)) = 0 ] && for ((i = 0; i < ${#names[@]}; i++)); do order[i]=${names[${#names[@]} - 1 - i]}; done
	for nm in "${order[@]}"; do
		R[$nm,$r]=$(one_run "$nm")
		echo "# run $r $nm: ${R[$nm,$r]}"
		case ${R[$nm,$r]} in HUNG*) hung=$((hung + 1)) ;; FAIL*) failed=$((failed + 1)) ;; esac
	done
done
declare -A M
printf '%-12s %4s' "median" good; for c in $cols; do printf ' %12s' "$c"; done; echo
for nm in "${names[@]}"; do
	good=0
	for ((r = 1; r <= RUNS; r++)); do case ${R[$nm,$r]} in HUNG*|FAIL*) ;; *) good=$((good + 1)) ;; esac; done
	printf '%-12s %4s' "$nm" $good
	i=0
	for c in $cols; do
		i=$((i + 1))
		M[$nm,$i]=$(for ((r = 1; r <= RUNS; r++)); do case ${R[$nm,$r]} in HUNG*|FAIL*) ;; *) echo "${R[$nm,$r]}" | cut -d' ' -f$i ;; esac; done | bl_median)
		printf ' %12s' "${M[$nm,$i]}"
	done
	echo
done
# ratio A B: one row of medians A/B, when both ran
ratio() {
	[[ " ${names[*]} " == *" $1 "* && " ${names[*]} " == *" $2 "* ]] || return 0
	printf '%-12s %4s' "${1#kvmlab-}/${2#kvmlab-}" ""
	for ((i = 1; i <= 7; i++)); do
		r=$(bl_ratio "${M[$1,$i]}" "${M[$2,$i]}")
		[ "$r" = NA ] || r=${r}x
		printf ' %12s' "$r"
	done
	echo
}
ratio kvmlab-uring kvmlab-thread
ratio kvmlab-thread qemu
ratio kvmlab-uring qemu
ratio kvmlab-mmio kvmlab-thread
ratio kvmlab-mmio qemu-microvm
echo "# exits/MiB: KVM debugfs io_exits + mmio_exits per MiB moved (lower is better)"
echo "# $hung boot(s) hung (killed at ${TMO}s), $failed failed; medians over the good runs"
[ "$failed" -eq 0 ]
