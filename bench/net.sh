#!/usr/bin/env bash
# kvmlab-net against the equivalent ip/nft/sysctl command sequence, inside
# a throwaway network namespace. Not a test: it prints numbers.
#   bench/net.sh [N...]        (default N = 10 100 1000)
# Per N, one cycle is: `up --nat`, N taps in one `tap add`, `down`; the
# baseline is what a lab script runs for the same result: ip link add
# bridge, ip link set up, ip addr add, sysctl, nft -f with the same rules,
# ip tuntap add + ip link set mtu/master/up per tap, then the deletes.
# An `ip -batch` variant of the baseline is printed too, as the fairest
# one-process-per-tool comparison. Times are medians (hyperfine, which
# uses a monotonic clock; each cycle runs as one `bash FILE` on both sides
# so both pay the same shell start-up).
# Env: KVMLAB_NET (default build/kvmlab-net), BENCH_RUNS_SMALL (5),
#      BENCH_RUNS_LARGE (3, for N >= 1000), BENCH_UP_RUNS (30).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KVMLAB_NET=${KVMLAB_NET:-$ROOT/build/kvmlab-net}

if [ "${1:-}" != --inner ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/net.sh: needs root (network namespaces)" >&2; exit 1; }
	[ -x "$KVMLAB_NET" ] || { echo "bench/net.sh: no $KVMLAB_NET (make net)" >&2; exit 1; }
	for t in ip nft sysctl jq; do
		command -v $t >/dev/null || { echo "bench/net.sh: $t missing" >&2; exit 1; }
	done
	ns=kl-bench-$$-$RANDOM
	ip netns add "$ns" || exit 1
	# the namespace takes every link and table with it (kvmlab keeps no
	# state anywhere else)
	trap 'ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns"' EXIT
	trap 'exit 130' INT TERM HUP
	ip netns exec "$ns" env KVMLAB_NET="$KVMLAB_NET" bash "$0" --inner "$@"
	exit $?
fi
shift
Ns=("$@"); [ ${#Ns[@]} -gt 0 ] || Ns=(10 100 1000)
RS=${BENCH_RUNS_SMALL:-5} RL=${BENCH_RUNS_LARGE:-3} RU=${BENCH_UP_RUNS:-30}
K=$KVMLAB_NET NET=bench BR=klbench CIDR=10.200.0.1/24 SUB=10.200.0.0/24
tmp=$(mktemp -d /tmp/kvmlab-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ip link set lo up
# bridged frames through iptables hooks would only make kvmlab warn
for f in /proc/sys/net/bridge/bridge-nf-call-ip*tables; do [ -w "$f" ] && echo 0 >"$f"; done

# The same rules kvmlab-net up --nat makes: its own table with a comment,
# masquerade at srcnat, forward accepts subnet-out and established back.
cat >"$tmp/rules.nft" <<EOF
table ip kvmlab_bench {
	comment "kvmlab network bench"
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr $SUB oifname != "$BR" masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "$BR" ip saddr $SUB accept
	}
}
EOF

gen() { # gen N: the three cycle scripts for N taps
	local n=$1 i taps=()
	for ((i = 0; i < n; i++)); do taps+=("bt$i"); done
	{
		echo "set -e"
		echo "'$K' up $NET --cidr $CIDR --bridge $BR --nat"
		echo "'$K' tap add ${taps[*]} --net $NET"
		echo "'$K' down $NET"
	} >"$tmp/kl-$n.sh"
	{
		echo "set -e"
		echo "ip link add $BR type bridge"
		echo "ip link set dev $BR up"
		echo "ip addr add $CIDR dev $BR"
		echo "sysctl -q -w net.ipv4.ip_forward=1"
		echo "nft -f '$tmp/rules.nft'"
		for t in "${taps[@]}"; do
			echo "ip tuntap add dev $t mode tap vnet_hdr"
			echo "ip link set dev $t mtu 1500 master $BR up"
		done
		for t in "${taps[@]}"; do echo "ip link del dev $t"; done
		echo "ip link del dev $BR"
		echo "nft delete table ip kvmlab_bench"
		echo "sysctl -q -w net.ipv4.ip_forward=0"
	} >"$tmp/ip-$n.sh"
	{
		echo "link add $BR type bridge"
		echo "link set dev $BR up"
		echo "addr add $CIDR dev $BR"
		for t in "${taps[@]}"; do
			echo "tuntap add dev $t mode tap vnet_hdr"
			echo "link set dev $t mtu 1500 master $BR up"
		done
	} >"$tmp/batch-up-$n"
	{
		for t in "${taps[@]}"; do echo "link del dev $t"; done
		echo "link del dev $BR"
	} >"$tmp/batch-down-$n"
	{
		echo "set -e"
		echo "ip -batch '$tmp/batch-up-$n'"
		echo "sysctl -q -w net.ipv4.ip_forward=1"
		echo "nft -f '$tmp/rules.nft'"
		echo "ip -batch '$tmp/batch-down-$n'"
		echo "nft delete table ip kvmlab_bench"
		echo "sysctl -q -w net.ipv4.ip_forward=0"
	} >"$tmp/batch-$n.sh"
}

# Undo whatever a failed cycle left; cheap when nothing is left.
cat >"$tmp/clean.sh" <<EOF
'$K' down $NET >/dev/null 2>&1
'$K' down benchup >/dev/null 2>&1
ip -o link show | awk -F': ' '\$2 ~ /^(bt[0-9]+|$BR)(@|\$)/ {print "link del dev " \$2}' | ip -batch - >/dev/null 2>&1
nft delete table ip kvmlab_bench >/dev/null 2>&1
echo 0 > /proc/sys/net/ipv4/ip_forward
true
EOF

# median_ms RUNS CMD...: median wall time of CMD in ms (3 decimals)
median_ms() {
	local runs=$1; shift
	if command -v hyperfine >/dev/null; then
		hyperfine -N -w 1 -r "$runs" -p "bash $tmp/clean.sh" --export-json "$tmp/h.json" \
			"$*" >/dev/null 2>"$tmp/h.err" || { echo "FAIL"; return 1; }
		jq -r '.results[0].median * 1000 | . * 1000 | round / 1000' "$tmp/h.json"
	else
		# $EPOCHREALTIME: no `date` process inside the timed span
		local i t0 t1 ts=()
		for ((i = 0; i < runs; i++)); do
			bash "$tmp/clean.sh"
			t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1 || { echo FAIL; return 1; }; t1=$EPOCHREALTIME
			ts+=($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1e6 }'))
		done
		printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)]/1000}'
	fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", b / a; else print "-" }'; }
clean_check() { # after the runs the namespace must be empty again
	local left
	left=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}' | tr '\n' ' ')
	[ -z "$left" ] && [ -z "$(nft list ruleset)" ] || echo "  (warning: leftovers: $left $(nft list ruleset | head -1))"
}

echo "kvmlab-net benchmark in netns (kernel $(uname -r), $(nproc) cpus, medians in ms)"
printf '%6s %12s %12s %8s %12s %8s\n' N kvmlab-net ip+nft ratio ip-batch ratio
declare -A KL
for n in "${Ns[@]}"; do
	gen "$n"
	runs=$RS; [ "$n" -ge 1000 ] && runs=$RL
	kl=$(median_ms "$runs" bash "$tmp/kl-$n.sh")
	[ "$kl" = FAIL ] && sed 's/^/  /' "$tmp/h.err" | tail -3
	ipt=$(median_ms "$runs" bash "$tmp/ip-$n.sh")
	bat=$(median_ms "$runs" bash "$tmp/batch-$n.sh")
	KL[$n]=$kl
	printf '%6s %12s %12s %7sx %12s %7sx\n' "$n" "$kl" "$ipt" "$(ratio "$kl" "$ipt")" "$bat" "$(ratio "$kl" "$bat")"
	clean_check
done
# where kvmlab-net's time goes: one extra cycle per N, phase by phase
# (bash's $EPOCHREALTIME: no fork, but the wall clock, so indicative)
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
for n in "${Ns[@]}"; do
	bash "$tmp/clean.sh"
	taps=(); for ((i = 0; i < n; i++)); do taps+=("bt$i"); done
	t0=$EPOCHREALTIME; "$K" up $NET --cidr $CIDR --bridge $BR --nat >/dev/null 2>&1
	t1=$EPOCHREALTIME; "$K" tap add "${taps[@]}" --net $NET >/dev/null 2>&1
	t2=$EPOCHREALTIME; "$K" down $NET >/dev/null 2>&1
	t3=$EPOCHREALTIME
	echo "kvmlab-net phases, N=$n: up --nat $(ms "$t0" "$t1") ms, tap add $(ms "$t1" "$t2") ms, down $(ms "$t2" "$t3") ms"
done

# up --nat alone: one process, no shell around it; down between runs
"$K" up benchup --cidr 10.201.0.1/24 --bridge klbenchup --nat >/dev/null 2>&1
if command -v hyperfine >/dev/null; then
	hyperfine -N -w 3 -r "$RU" -p "'$K' down benchup" --export-json "$tmp/u.json" \
		"'$K' up benchup --cidr 10.201.0.1/24 --bridge klbenchup --nat" >/dev/null 2>"$tmp/u.err" &&
		up=$(jq -r '.results[0].median * 1000 | . * 1000 | round / 1000' "$tmp/u.json") || up=FAIL
	upmin=$(jq -r '.results[0].min * 1000 | . * 1000 | round / 1000' "$tmp/u.json" 2>/dev/null)
else
	up=$(median_ms "$RU" "$K" up benchup --cidr 10.201.0.1/24 --bridge klbenchup --nat); upmin=-
fi
"$K" down benchup >/dev/null 2>&1
echo "up --nat alone: median $up ms, min $upmin ms over $RU runs (goal < 5 ms)"
clean_check

if [ -n "${KL[100]:-}" ] && [ -n "${KL[1000]:-}" ]; then
	echo "growth: kvmlab-net N=1000 / N=100 = $(ratio "${KL[100]}" "${KL[1000]}")x (goal <= 12x)"
fi
echo "goals: ratio ip+nft/kvmlab-net >= 20x at N=100; N=1000 <= 12x N=100; up --nat < 5 ms"
