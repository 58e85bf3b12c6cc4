#!/usr/bin/env bash
# Every KVM test script, in one environment whose /dev/kvm boots stock
# kernels (one test-host boot on PVM hosts): the VMM's own boot checks,
# virtio-net/blk end to end, the same on virtio-mmio (mmio.sh), the
# in-kernel data path (io.sh), multiqueue
# virtio-net, vhost-net, the single-command `run --net` NAT path, QEMU as
# a peer VMM on a kvmlab tap, DHCP from the VMM (udhcpc), one VM with
# several NICs and disks, AF_VSOCK through vhost-vsock, and a Debian
# system booted from a disk on a NAT network. Not in the default list:
# msix.sh (MSI-X masking under vhost with vectors moving every 2 ms; in
# the test host it failed 3 of 8 tries and took the test host down once,
# README "MSI-X masking with vhost-net"); run it by name. Nor pause.sh
# (about 90 s: a long pause against a SIGSTOP of the VMM, for the
# guest's soft-lockup watchdog; all.sh has the short pause check).
#   suite.sh [SCRIPT...]   run these (default: all, in order)
#   suite.sh --list        print the default order
# Each script is framed by "# --- tests/kvm/X" and, once it is over,
# "# --- tests/kvm/X: N s, status R": tests/kvm/run reads these to go on
# from the script a dead test host interrupted.
#   KVMLAB_KVM_SCRIPT_TIMEOUT=SEC  bound on one run of one script (default
#                                  600); at it: what its processes wait on,
#                                  the VMMs' reports (SIGQUIT), then
#                                  SIGTERM and SIGKILL to its session
#   KVMLAB_KVM_TESTHOST=1          set by tests/kvm/run in the test host: a
#                                  script that fails runs once more (the
#                                  emulator's own failures, below); a
#                                  process SIGKILL cannot end (stuck in the
#                                  kernel) ends the suite with status 125,
#                                  so that a new test host goes on from it
#   KVMLAB_KVM_RETRY=0|1           override the retry (default: 1 in the
#                                  test host, 0 on hardware, where a retry
#                                  could hide a hang of our own)
# In the test host a failed script runs once more; a second failure gets
# a third run only if the emulator's broken paging showed in it (README
# "The test host"; QEMU as the inner VMM meets it too), as the test
# host's own KVM counts it in its trace: a guest's triple fault (kvm_exit
# with SVM exit 127, SHUTDOWN), or a page fault injected again and again
# into a guest that cannot take it (kvm_inj_exception #PF, at least
# KVMLAB_KVM_PF_STORM times in the try, default 10000). Every try is shown,
# with those counts; only the last one counts.
# Exit status: non-zero if any script failed.
cd "$(dirname "$0")/../.." || exit 1
all=(all.sh virtio.sh mmio.sh io.sh mq.sh vhost.sh nat.sh qemu_peer.sh dhcp.sh multi.sh vsock.sh debian.sh shell.sh)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${all[@]}"
	exit 0
fi
[ $# -gt 0 ] || set -- "${all[@]}"
limit=${KVMLAB_KVM_SCRIPT_TIMEOUT:-600}
if [ "${KVMLAB_KVM_TESTHOST:-}" = 1 ]; then retry=${KVMLAB_KVM_RETRY:-1}; else retry=${KVMLAB_KVM_RETRY:-0}; fi
# each script's output goes to a file, not a pipe: a process it leaves
# running would hold a pipe open and keep us waiting
log=$(mktemp -t kvmlab-suite.XXXXXX) || exit 1
sid=
trap 'rm -f "$log" "$log.why" "$log.late"' EXIT
# an interrupted suite takes the running script's session with it
trap '[ -n "$sid" ] && pkill -KILL -s "$sid"; exit 143' INT TERM

# the test host is ours: its KVM's SHUTDOWN exits and #PF injections go
# to its trace buffer, read and cleared around each try
tr=
storm=${KVMLAB_KVM_PF_STORM:-10000}
if [ "${KVMLAB_KVM_TESTHOST:-}" = 1 ]; then
	tr=${KVMLAB_KVM_TRACEFS:-/sys/kernel/tracing} # (a stand-in: tests/cli/kvm_resume.sh)
	[ -d "$tr/events" ] || mount -t tracefs nodev "$tr" 2>/dev/null
	{ echo 'exit_reason == 127' >"$tr/events/kvm/kvm_exit/filter" &&
		echo 1 >"$tr/events/kvm/kvm_exit/enable" && echo 1 >"$tr/tracing_on"; } 2>/dev/null || tr=
	if [ -z "$tr" ]; then
		echo "# the test host's KVM trace cannot be set up: no third tries"
	elif ! { echo 'exception == 14' >"$tr/events/kvm/kvm_inj_exception/filter" &&
		echo 1 >"$tr/events/kvm/kvm_inj_exception/enable"; } 2>/dev/null; then
		echo "# the test host's KVM trace counts no #PF injection (kvm_inj_exception)"
	fi
fi
# paging: "SHUTDOWNS PF_INJECTIONS" since the last call ("0 0" without
# the trace; a storm past the ring buffer's size counts what it kept)
paging() {
	[ -n "$tr" ] || { echo "0 0"; return; }
	awk '/kvm_exit:/ { s++ } /kvm_inj_exception:/ { p++ } END { print s + 0, p + 0 }' "$tr/trace"
	echo >"$tr/trace"
}
# the processes of session $1 (a script leads its own; timeout(1) gives
# its command a process group of its own, but the same session)
session() { ps -eo pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'; }
# ps lines for the given pids, each as a comment
show() { [ $# -gt 0 ] && ps -o pid,ppid,stat,etimes,wchan:28,args -p "$(IFS=,; echo "$*")" | sed 's/^/#   /'; }
# end_session SID GRACE: SIGTERM (the scripts' traps clean up), then
# SIGKILL after GRACE seconds; prints the pids still there 10 s later
end_session() {
	local i
	pkill -TERM -s "$1"
	for ((i = 0; i < $2 * 5; i++)); do [ -n "$(session "$1")" ] || return 0; sleep 0.2; done
	pkill -KILL -s "$1"
	for ((i = 0; i < 50; i++)); do [ -n "$(session "$1")" ] || return 0; sleep 0.2; done
	session "$1"
}
# watchdog PID SCRIPT: at the bound, say what the script's processes wait
# on, have each VMM print its vCPUs and rings (SIGQUIT: it then exits),
# and end the session; the findings go to $log.why
watchdog() {
	local i p f
	for ((i = 0; i < limit; i++)); do
		sleep 1
		kill -0 "$1" 2>/dev/null || return 0
	done
	{
		echo "# tests/kvm/$2: still running after $limit s (KVMLAB_KVM_SCRIPT_TIMEOUT); its processes:"
		# shellcheck disable=SC2046
		show $(session "$1")
		for p in $(session "$1"); do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = kvmlab-vm ] || continue
			f=$(readlink "/proc/$p/fd/2" 2>/dev/null)
			kill -QUIT "$p"
			for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
			if [ -f "$f" ]; then
				echo "# kvmlab-vm $p after SIGQUIT, the end of its stderr ($f):"
				tail -n 60 "$f" | sed 's/^/#   /'
			fi
		done
	} >"$log.why" 2>&1
	end_session "$1" 20 >/dev/null
}
# run_one SCRIPT: runs it in a session of its own, bounded; sets R (124
# when the watchdog ended it) and STUCK (pids that SIGKILL did not end)
run_one() {
	local pid w left
	rm -f "$log.why" "$log.late"
	# a background job of a shell without job control is no group leader,
	# so setsid(1) execs in place: $! is the script and its session's id
	setsid bash "tests/kvm/$1" >"$log" 2>&1 &
	pid=$! sid=$!
	watchdog "$pid" "$1" &
	w=$!
	wait "$pid"
	R=$?
	kill "$w" 2>/dev/null
	wait "$w" 2>/dev/null
	[ -e "$log.why" ] && R=124
	# what the script left running is ended here, and said; it fails only
	# if SIGKILL cannot end it
	left=$(session "$sid")
	STUCK=
	if [ -n "$left" ]; then
		# shellcheck disable=SC2086
		{ echo "# tests/kvm/$1 left processes running; ended:"; show $left; } >"$log.late"
		STUCK=$(end_session "$sid" 5)
	fi
	sid=
}
# out SCRIPT [PREFIX-SED]: the script's lines, then the suite's findings
out() {
	sed "${2:-}" "$log"
	cat "$log.why" "$log.late" 2>/dev/null
}
stuck() {
	local p
	echo "# tests/kvm/$1: processes that SIGKILL does not end (stuck in the kernel):"
	# shellcheck disable=SC2086
	show $STUCK
	for p in $STUCK; do
		[ -r "/proc/$p/stack" ] && sed "s/^/#   $p: /" "/proc/$p/stack" | head -n 12
	done
	if [ "${KVMLAB_KVM_TESTHOST:-}" = 1 ]; then
		echo "# this test host is done (status 125): a new one goes on from tests/kvm/$1"
		exit 125
	fi
}

rc=0
for t in "$@"; do
	echo "# --- tests/kvm/$t"
	s=$SECONDS
	paging >/dev/null
	run_one "$t"
	try=1
	while :; do
		read -r sd pf < <(paging)
		[ -z "$tr" ] || echo "# test host's KVM during tests/kvm/$t, try $try: $sd SHUTDOWN exits, $pf #PF injected"
		if [ $R -eq 0 ] || [ "$retry" != 1 ]; then break; fi
		# Nested KVM under TCG now and then deadlocks a stock guest (a
		# spinlock with interrupts off) or breaks its paging (a triple
		# fault, or a #PF storm, under load); no kvm_amd option or
		# guest argument avoids them (README, "The test host"). A
		# script that fails runs once more, and once again only after
		# broken paging.
		broken=
		[ "$sd" -eq 0 ] || broken=", $sd SHUTDOWN exits in the test host's KVM (a guest triple-faulted)"
		[ "$pf" -lt "$storm" ] || broken+=", $pf #PF injected by the test host's KVM (a guest's broken paging)"
		[ $try -eq 1 ] || { [ $try -eq 2 ] && [ -n "$broken" ]; } || break
		out "$t" "s/^\\(not \\)\\{0,1\\}ok - /# (try $try) &/"
		[ -z "$STUCK" ] || stuck "$t"
		echo "# tests/kvm/$t failed (status $R$broken); running it once more"
		run_one "$t"
		try=$((try + 1))
	done
	out "$t"
	[ -z "$STUCK" ] || stuck "$t"
	[ $R -ne 124 ] || echo "not ok - tests/kvm/$t # ended after $limit s (KVMLAB_KVM_SCRIPT_TIMEOUT)"
	echo "# --- tests/kvm/$t: $((SECONDS - s)) s, status $R"
	[ $R -eq 0 ] || rc=1
done
exit $rc
