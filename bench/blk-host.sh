#!/usr/bin/env bash
# virtio-blk's two backends (aio=thread, aio=uring) on this host alone:
# bench/blk-host.c drives the real device with crafted 4 KiB random
# requests, QD at a time, against an image in a fresh directory under
# KVMLAB_BENCH_DIR (default /var/tmp: a real file system, where
# cache=none is O_DIRECT on the disk; /tmp may be tmpfs). For each of
# cache=writeback|none, read|write, QD 1 and 32: runs taken in turn
# (thread, uring, thread, ...), medians of KVMLAB_BENCH_RUNS (3), IOPS
# and CPU microseconds per request, ratio uring/thread.
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_SECS (per run, 2),
#      KVMLAB_BENCH_MB (image size, 256).
set -u
cd "$(dirname "$0")/.." || exit 1
RUNS=${KVMLAB_BENCH_RUNS:-3}
SECS=${KVMLAB_BENCH_SECS:-2}
MB=${KVMLAB_BENCH_MB:-256}
make -s -j2 build/bench/blk-host || exit 1
dir=$(mktemp -d "${KVMLAB_BENCH_DIR:-/var/tmp}/kvmlab-blkhost.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
img=$dir/img
# written, not sparse: reads hit real blocks
dd if=/dev/urandom of="$img" bs=1M count="$MB" status=none conv=fsync || exit 1
echo "# $(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }'), ${MB} MiB image, ${SECS}s per run, $RUNS runs each"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-9s %-5s %3s %12s %12s %8s %10s %10s\n' cache rw qd thread_IOPS uring_IOPS ratio thread_us uring_us
for cache in writeback none; do
	for rw in read write; do
		for qd in 1 32; do
			declare -A io=() us=()
			for ((r = 1; r <= RUNS; r++)); do
				for be in thread uring; do
					# shellcheck disable=SC2046
					set -- $(build/bench/blk-host "$img" $be $cache $rw $qd "$SECS") || exit 1
					io[$be]+="$6 " us[$be]+="$7 "
				done
			done
			ti=$(tr ' ' '\n' <<<"${io[thread]}" | grep . | median)
			ui=$(tr ' ' '\n' <<<"${io[uring]}" | grep . | median)
			tu=$(tr ' ' '\n' <<<"${us[thread]}" | grep . | median)
			uu=$(tr ' ' '\n' <<<"${us[uring]}" | grep . | median)
			printf '%-9s %-5s %3s %12s %12s %7.2fx %10s %10s\n' $cache $rw $qd "$ti" "$ui" \
				"$(awk -v a="$ui" -v b="$ti" 'BEGIN { print a / b }')" "$tu" "$uu"
		done
	done
done
