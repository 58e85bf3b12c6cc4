# shellcheck shell=bash disable=SC2034
# bench/lib.sh: what the bench/*.sh scripts share. Sourced, never run.
#   bl_enter NAME TIMEOUT [testhost args] -- ENV=VAL...
#                          outside the test host: run the calling script
#                          inside one when this host's KVM cannot boot a
#                          stock guest (PVM), and exit with its status
#                          (BL_RETRY=1: once more when the test host died)
#   bl_ns_del NS...        kill what runs in these network namespaces, delete them
#   bl_build               outside the test host: the default guest and our binaries
#   bl_now_ms, bl_now_us   wall clock
#   bl_median              median of the numbers on stdin (other lines are
#                          skipped), "NA" when there are none
#   bl_ratio A B           A/B with 2 decimals, "NA" when either is not a number
#   bl_debugfs             mount debugfs if needed (unmounted by bl_cleanup)
#   bl_exits PID           KVM's userspace exits (io_exits + mmio_exits) of
#                          the VM that process PID created, from debugfs
#   bl_boot DEADLINE OUT -- ARGV...
#                          one guest boot, bounded: see below
# Nested KVM under TCG (the test host) hangs a boot now and then: every
# boot goes through bl_boot, which kills it at its deadline and says so,
# so a script counts that run as hung and goes on.

bl_now_us() { local t=$EPOCHREALTIME; echo $(( ${t%.*} * 1000000 + 10#${t#*.} )); }
bl_now_ms() { echo $(( $(bl_now_us) / 1000 )); }

bl_median() {
	grep -E '^-?[0-9]+(\.[0-9]+)?$' | sort -g | awk '{ v[NR] = $1 }
	END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bl_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "NA" }'
}

# bl_enter NAME TIMEOUT [testhost args...] -- [ENV=VAL...]: for a script
# started on this host. With hardware-backed KVM (or KVMLAB_BENCH_DIRECT)
# it returns and the script runs here; otherwise the script runs again
# inside the test host with the given environment, and this exits.
bl_enter() {
	local name=$1 tmo=$2 why th=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do th+=("$1"); shift; done
	shift
	[ -n "${KVMLAB_IN_TESTHOST:-}" ] || [ -n "${KVMLAB_BENCH_DIRECT:-}" ] && return 0
	why=$(scripts/kvm-is-hw) && return 0
	command -v qemu-system-x86_64 >/dev/null || { echo "bench/$name: $why, and no QEMU for the test host" >&2; exit 1; }
	echo "# bench/$name: $why: running inside the test host (QEMU TCG + nested SVM)"
	local try rc
	for try in 1 2; do
		scripts/testhost --timeout "$tmo" ${th[@]+"${th[@]}"} -- env "$@" bash "bench/$name"
		rc=$?
		# 125: the test host died (nested KVM under TCG can livelock its kernel)
		[ $rc = 125 ] && [ $try = 1 ] && [ -n "${BL_RETRY:-}" ] && { echo "# bench/$name: the test host died; retrying once"; continue; }
		exit $rc
	done
}

bl_ns_del() {
	local ns
	for ns in "$@"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	return 0
}

bl_build() {
	[ -n "${KVMLAB_IN_TESTHOST:-}" ] && return 0
	scripts/build-guest || return 1
	[ -x build/kvmlab-vm ] && [ -x build/kvmlab-net ] || make -j2 build/kvmlab-vm build/kvmlab-net
}

BL_UMOUNT_DBG=
bl_debugfs() {
	[ -d /sys/kernel/debug/kvm ] && return 0
	mount -t debugfs debugfs /sys/kernel/debug && BL_UMOUNT_DBG=1
}
bl_cleanup() { [ -n "$BL_UMOUNT_DBG" ] && umount /sys/kernel/debug; BL_UMOUNT_DBG=; }

bl_exits() {
	local d
	d=$(ls -d /sys/kernel/debug/kvm/"$1"-* 2>/dev/null | head -1)
	[ -n "$d" ] && [ -r "$d/io_exits" ] || return 1
	echo $(( $(cat "$d/io_exits") + $(cat "$d/mmio_exits") ))
}

# bl_boot DEADLINE_S OUT -- ARGV...: start ARGV (a VMM, exec'ed directly
# so that $! is the process that owns the VM) with its console on OUT,
# and wait until it exits or DEADLINE_S seconds have passed. Meanwhile,
# each console line "MARK name" takes a sample of bl_exits into
# BL_X[name] (the guest then sleeps a second: the sample falls into a
# quiet moment). Sets BL_RC (the VMM's exit status) and BL_HUNG (1 when
# the deadline killed it). With BL_ENV=(VAR=VAL ...) the VMM gets those.
declare -gA BL_X=()
BL_RC=0 BL_HUNG=0
bl_boot() {
	local tmo=$1 out=$2 pid seen=0 n line end
	shift 3
	BL_X=() BL_HUNG=0
	: >"$out"
	env ${BL_ENV[@]+"${BL_ENV[@]}"} "$@" </dev/null >"$out" 2>&1 &
	pid=$!
	end=$((SECONDS + tmo))
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $end ]; then
			BL_HUNG=1
			kill -9 "$pid" 2>/dev/null
			break
		fi
		n=$(grep -c '^MARK ' "$out" 2>/dev/null)
		while [ "${n:-0}" -gt $seen ]; do
			seen=$((seen + 1))
			line=$(grep '^MARK ' "$out" | sed -n "${seen}p" | tr -d '\r')
			BL_X[${line#MARK }]=$(bl_exits "$pid")
		done
		sleep 0.2
	done
	wait "$pid" 2>/dev/null
	BL_RC=$?
	tr -d '\r' <"$out" >"$out.t" && mv "$out.t" "$out"
}

# bl_xdiff A B: exits between marks A and B, or NA
bl_xdiff() {
	[ -n "${BL_X[$1]:-}" ] && [ -n "${BL_X[$2]:-}" ] || { echo NA; return; }
	echo $(( BL_X[$2] - BL_X[$1] ))
}
