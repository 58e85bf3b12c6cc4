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
#   bl_trace_on, bl_trace_off
#                          in-kernel histograms (tracefs hist triggers) of
#                          L1 KVM's events: exits by reason, MSR and APIC
#                          register accesses, injected vectors, ...
#   bl_snap PID FILE       one snapshot of those, KVM's debugfs counters of
#                          PID's VM and PID's threads (+ its vhost worker):
#                          "key value" lines, for bl_snapdiff
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

# bl_iperf_start NS HOST PORT...: fresh iperf3 servers in netns NS, one
# per port (a guest that died mid-transfer leaves its server busy, so each
# boot gets its own). ip execs iperf3, so $! is the server itself and
# bl_iperf_stop reaches it; a shell function put in the background would
# leave its pid to a subshell, and the server would outlive the kill.
BL_IPERF=()
bl_iperf_start() {
	local ns=$1 host=$2 port
	shift 2
	for port in "$@"; do
		ip netns exec "$ns" iperf3 -s -B "$host" -p "$port" >/dev/null 2>&1 &
		BL_IPERF+=($!)
	done
	sleep 0.3
}
bl_iperf_stop() {
	[ ${#BL_IPERF[@]} -gt 0 ] || return 0
	kill "${BL_IPERF[@]}" 2>/dev/null
	wait "${BL_IPERF[@]}" 2>/dev/null
	BL_IPERF=()
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

# ---- what KVM does for a VM, by reason (BL_SNAPDIR) ----
# Hist triggers count in the kernel, with no trace buffer: cheap enough
# to leave on during a transfer, and the same cost for every VMM. One VM
# runs at a time, so their global counts are that VM's.
BL_TR='' BL_UMOUNT_TR='' BL_TRIG=()
bl_trace_on() {
	local t=/sys/kernel/tracing ev spec
	[ -d $t/events ] || { mount -t tracefs nodev $t 2>/dev/null && BL_UMOUNT_TR=1; }
	[ -d $t/events/kvm ] || return 1
	BL_TR=$t BL_TRIG=()
	# event:keys; an event or field this kernel lacks is skipped
	for spec in kvm_exit:exit_reason.hex kvm_msr:ecx.hex,write kvm_apic:reg.hex,rw \
		kvm_apic_accept_irq:vec kvm_inj_virq:common_pid kvm_eoi:vector kvm_pv_eoi:vector \
		kvm_apic_ipi:common_pid kvm_fast_mmio:gpa.hex kvm_mmio:type,gpa.hex kvm_pio:rw,port.hex \
		kvm_hypercall:nr kvm_vcpu_wakeup:waited,valid kvm_set_irq:gsi kvm_msi_set_irq:common_pid \
		kvm_userspace_exit:reason; do
		ev=${spec%%:*}
		[ -d $t/events/kvm/$ev ] || continue
		echo "hist:keys=${spec#*:}:size=1024" >$t/events/kvm/$ev/trigger 2>/dev/null &&
			BL_TRIG+=("$ev:${spec#*:}")
	done
	[ ${#BL_TRIG[@]} -gt 0 ]
}
bl_trace_off() {
	local x
	for x in ${BL_TRIG[@]+"${BL_TRIG[@]}"}; do
		echo "!hist:keys=${x#*:}:size=1024" >$BL_TR/events/kvm/${x%%:*}/trigger 2>/dev/null
	done
	BL_TRIG=()
	[ -n "$BL_UMOUNT_TR" ] && umount $BL_TR
	BL_UMOUNT_TR=
}
bl_snap() { # PID FILE
	local pid=$1 f=$2 d x files=() thr=()
	# few processes: this runs while the guest waits a second at a mark
	for x in ${BL_TRIG[@]+"${BL_TRIG[@]}"}; do files+=("$BL_TR/events/kvm/${x%%:*}/hist"); done
	for x in /proc/"$pid"/task/* $(pgrep -x "vhost-$pid" | sed 's,^,/proc/,'); do
		thr+=("$x/comm" "$x/schedstat" "$x/io" "$x/status")
	done
	d=$(ls -d /sys/kernel/debug/kvm/"$pid"-* 2>/dev/null | head -1)
	{
		# "{ ecx: 0x830, write: 1 } hitcount: 12" -> "kvm_msr/ecx:0x830,write:1 12"
		[ ${#files[@]} -gt 0 ] && awk '/^\{/ { e = FILENAME; sub(/\/hist$/, "", e); sub(/.*\//, "", e)
			s = $0; sub(/^\{/, "", s); split(s, a, "}"); k = a[1]; gsub(/[ \t]/, "", k)
			while (match(k, /0x0[0-9a-f]/)) k = substr(k, 1, RSTART + 1) substr(k, RSTART + 3)
			sub(/^common_pid:[0-9]+$/, "all", k) # thread ids differ per run: a count
			n = a[2]; sub(/.*hitcount:/, "", n); print e "/" k, n + 0 }' "${files[@]}"
		[ -n "$d" ] && grep -s . "$d"/* | sed 's,^.*/,vm/,; s,:, ,'
		# threads: CPU time (schedstat ns), read/write-family syscalls,
		# sleeps (voluntary switches); vhost's worker is a kernel thread
		[ ${#thr[@]} -gt 0 ] && awk 'FILENAME ~ /\/comm$/ { c = $0; gsub(/[ \/]/, "_", c); next }
			FILENAME ~ /\/schedstat$/ { print "thr/" c "/cpu_ns", $1 }
			$1 == "syscr:" || $1 == "syscw:" { print "thr/" c "/" substr($1, 1, 5), $2 }
			$1 == "voluntary_ctxt_switches:" { print "thr/" c "/sleeps", $2 }' "${thr[@]}"
	} 2>/dev/null | awk 'NF == 2 { s[$1] += $2 } END { for (k in s) print k, s[k] }' >"$f"
}

# bl_boot DEADLINE_S OUT -- ARGV...: start ARGV (a VMM, exec'ed directly
# so that $! is the process that owns the VM) with its console on OUT,
# and wait until it exits or DEADLINE_S seconds have passed. Meanwhile,
# each console line "MARK name" takes a sample of bl_exits into
# BL_X[name] (the guest then sleeps a second: the sample falls into a
# quiet moment); with BL_SNAPDIR set, also bl_snap into BL_SNAPDIR/name.
# Sets BL_RC (the VMM's exit status) and BL_HUNG (1 when
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
			[ -n "${BL_SNAPDIR:-}" ] && bl_snap "$pid" "$BL_SNAPDIR/${line#MARK }"
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
