#!/usr/bin/env bash
# virtio-net's receive path on this host alone: bench/vnet-host.c sends
# bursts of 64-byte frames through a socketpair into the real device and
# times its drain. mtu: the device gathers room for one MTU frame before
# each read; gso: room for a 64 KiB GSO frame (MRG_RXBUF + GUEST_TSO4, what
# a Linux guest negotiates), the cost this measures. Runs taken in turn
# (mtu, gso, mtu, ...), medians of KVMLAB_BENCH_RUNS (3), ns per frame,
# ratio gso/mtu. KVMLAB_BENCH_BIN: another build's vnet-host, to compare.
# Env: KVMLAB_BENCH_RUNS (3), KVMLAB_BENCH_SECS (per run, 1),
#      KVMLAB_BENCH_BURSTS ("1 8 32").
set -u
cd "$(dirname "$0")/.." || exit 1
RUNS=${KVMLAB_BENCH_RUNS:-3}
SECS=${KVMLAB_BENCH_SECS:-1}
BIN=${KVMLAB_BENCH_BIN:-build/bench/vnet-host}
[ -n "${KVMLAB_BENCH_BIN:-}" ] || make -s -j2 build/bench/vnet-host || exit 1
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "# $BIN: ${SECS}s per run, $RUNS runs each, ns per frame inside vnet_rx"
printf '%5s %8s %8s %8s\n' burst mtu_ns gso_ns gso/mtu
for burst in ${KVMLAB_BENCH_BURSTS:-1 8 32}; do
	declare -A ns=()
	for ((r = 0; r < RUNS; r++)); do
		for mode in mtu gso; do
			line=$("$BIN" $mode "$burst" "$SECS") || { echo "# vnet-host $mode $burst failed" >&2; exit 1; }
			ns[$mode]+="$(awk '{ print $4 }' <<<"$line") "
		done
	done
	m=$(tr ' ' '\n' <<<"${ns[mtu]}" | grep . | median)
	g=$(tr ' ' '\n' <<<"${ns[gso]}" | grep . | median)
	printf '%5s %8s %8s %8s\n' "$burst" "$m" "$g" "$(awk -v a="$g" -v b="$m" 'BEGIN { printf "%.2f", a / b }')"
	unset ns
done
