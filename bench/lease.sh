#!/usr/bin/env bash
# Leases and forwards: kvmlab-net against the nft commands that make the
# same kernel objects, in a throwaway network namespace. Not a test: it
# prints numbers. Each side runs a whole cycle in turn, RUNS times; the
# medians and their ratio are printed.
#   lease:   `lease take` + `lease release` of one VM (reading the table,
#            allocating, one batch each) vs `nft add element` + `nft
#            delete element` of the same element in the same map
#   forward: `forward add` + `forward del` vs `nft -f` adding the same
#            three rules + `nft -f` deleting them by flushing the chains
# Env: KVMLAB_NET (default build/kvmlab-net), RUNS (default 31).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KVMLAB_NET=${KVMLAB_NET:-$ROOT/build/kvmlab-net}
RUNS=${RUNS:-31}
if [ "${1:-}" != --inner ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/lease.sh: needs root" >&2; exit 1; }
	[ -x "$KVMLAB_NET" ] || { echo "bench/lease.sh: no $KVMLAB_NET" >&2; exit 1; }
	ns=kl-bench-lease-$$-$RANDOM
	ip netns add "$ns" || exit 1
	# kvmlab-net keeps nothing outside the namespace: it goes with it
	trap 'ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns"' EXIT
	trap 'exit 130' INT TERM HUP
	ip netns exec "$ns" env KVMLAB_NET="$KVMLAB_NET" RUNS="$RUNS" bash "$0" --inner
	exit $?
fi
K=$KVMLAB_NET
tmp=$(mktemp -d /tmp/kvmlab-bench-lease.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ip link set lo up
$K up lab --cidr 10.201.0.1/24 --nat >/dev/null 2>&1 || { echo "up failed" >&2; exit 1; }
# a warm table: map and chains exist, as after the first VM
$K lease take lab warm --pid $$ >/dev/null && $K forward add lab --proto tcp --port 1 --to 10.201.0.9:1

cat >"$tmp/kl-lease.sh" <<EOT
$K lease take lab web --pid $$ >/dev/null
$K lease release lab web
EOT
cat >"$tmp/nft-lease.sh" <<'EOT'
nft add element ip kvmlab-lab leases '{ 02:00:00:00:00:99 comment "vm=web owner=1/1" : 10.201.0.99 }'
nft delete element ip kvmlab-lab leases '{ 02:00:00:00:00:99 }'
EOT
cat >"$tmp/kl-fwd.sh" <<EOT
$K forward add lab --proto tcp --port 8080 --to 10.201.0.5:80
$K forward del lab --proto tcp --port 8080
EOT
cat >"$tmp/add.nft" <<'EOT'
add rule ip kvmlab-lab fwd-pre fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 10.201.0.5:80 comment "x"
add rule ip kvmlab-lab fwd-out fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 10.201.0.5:80 comment "x"
add rule ip kvmlab-lab fwd-accept oifname "kl-lab" ip daddr 10.201.0.5 tcp dport 80 ct status dnat accept comment "x"
EOT
# the chains also hold the warm forward: make a copy chain set to flush
cat >"$tmp/del.nft" <<'EOT'
flush chain ip nftb fwd-pre
flush chain ip nftb fwd-out
flush chain ip nftb fwd-accept
EOT
nft -f - <<'EOT'
table ip nftb {
	chain fwd-pre { type nat hook prerouting priority dstnat; }
	chain fwd-out { type nat hook output priority -100; }
	chain fwd-accept { type filter hook forward priority 0; }
}
EOT
sed -i 's/kvmlab-lab/nftb/' "$tmp/add.nft"
cat >"$tmp/nft-fwd.sh" <<EOT
nft -f $tmp/add.nft
nft -f $tmp/del.nft
EOT

# median_ms SCRIPT: median wall time of bash SCRIPT over RUNS runs
median_ms() {
	local i t0 t1
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s%N)
		bash "$1" >/dev/null 2>&1
		t1=$(date +%s%N)
		echo $(( (t1 - t0) / 1000 ))
	done | sort -n | awk '{v[NR]=$1} END {printf "%.2f", v[int((NR+1)/2)] / 1000}'
}
echo "leases and forwards in netns (kernel $(uname -r), $(nproc) cpus, $RUNS runs, medians in ms)"
for what in lease fwd; do
	kl=$(median_ms "$tmp/kl-$what.sh")
	nf=$(median_ms "$tmp/nft-$what.sh")
	printf '%-8s kvmlab-net %7s ms   nft %7s ms   nft/kvmlab %s\n' "$what" "$kl" "$nf" \
		"$(awk -v a="$kl" -v b="$nf" 'BEGIN {printf "%.2fx", b / a}')"
done
$K down lab >/dev/null 2>&1
