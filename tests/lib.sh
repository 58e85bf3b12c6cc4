# Shared helpers for shell tests (tests/netns, tests/kvm). Source it.
# Output protocol, counted by tests/run:
#   ok - NAME            a passed check
#   not ok - NAME # why  a failed check
#   ok - NAME # SKIP why a skipped check
# Every namespace/file/process a test makes is registered with t_defer so
# that it is removed on any exit, including failure and signals.
set -u
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KVMLAB_BUILD:=$T_ROOT/build}"
KVMLAB_NET=${KVMLAB_NET:-$KVMLAB_BUILD/kvmlab-net}
KVMLAB_VM=${KVMLAB_VM:-$KVMLAB_BUILD/kvmlab-vm}
T_FAILS=0
T_DEFERRED=()

t_ok()   { echo "ok - $*"; }
t_fail() { echo "not ok - $1${2:+ # $2}"; T_FAILS=$((T_FAILS + 1)); }
t_skip() { echo "ok - $1 # SKIP ${2:-}"; }
# The test's own stdout, for t_check's line: a check written
# `t_check NAME jq -e ... >/dev/null <<<"$x"` redirects the whole call,
# and its ok/not ok line must not go with the command's output.
exec {T_OUT}>&1
# t_check NAME CMD...: pass if CMD exits 0
t_check() {
	local name=$1; shift
	if "$@"; then t_ok "$name" >&"$T_OUT"; else t_fail "$name" "command failed: $*" >&"$T_OUT"; fi
}
# t_defer CMD: run CMD (eval'd) at exit, last registered first
t_defer() { T_DEFERRED+=("$*"); }
t_cleanup() {
	local i
	for ((i = ${#T_DEFERRED[@]} - 1; i >= 0; i--)); do
		eval "${T_DEFERRED[$i]}" >/dev/null 2>&1 || true
	done
	T_DEFERRED=()
}
trap 't_cleanup' EXIT
trap 't_cleanup; exit 130' INT TERM

# t_netns PREFIX: create a namespace with a random suffix, echo its name,
# and register its removal. Call as: ns=$(t_netns foo) is WRONG (subshell
# loses the defer); use: t_netns_new VAR PREFIX
t_netns_new() {
	local __var=$1 name="kl-$2-${KVMLAB_TEST_TAG:-}$$-$RANDOM"
	ip netns add "$name" || return 1
	t_defer "ip netns pids $name 2>/dev/null | xargs -r kill -9; ip netns del $name"
	printf -v "$__var" '%s' "$name"
}
# t_tap_netns VAR NAME HOST: a new namespace (t_netns_new) with lo up and
# a vnet_hdr tap0 at HOST/24, up: the guest's link in the KVM tests. On
# error the test fails ("NAME: netns" / "NAME: tap setup") and ends.
t_tap_netns() {
	local __tn
	t_netns_new __tn "$2" || { t_fail "$2: netns"; t_finish; }
	printf -v "$1" '%s' "$__tn"
	ip netns exec "$__tn" ip link set lo up &&
		ip netns exec "$__tn" ip tuntap add tap0 mode tap vnet_hdr &&
		ip netns exec "$__tn" ip addr add "$3/24" dev tap0 &&
		ip netns exec "$__tn" ip link set tap0 up ||
		{ t_fail "$2: tap setup"; t_finish; }
}
# t_need_vhost NAME: skip (exit 0) where /dev/vhost-net is missing even
# after modprobe vhost_net
t_need_vhost() {
	[ -c /dev/vhost-net ] || modprobe vhost_net 2>/dev/null
	[ -c /dev/vhost-net ] && return 0
	t_skip "$1" "no /dev/vhost-net on this host"
	exit 0
}
# t_vm_bg DIR NAME MARK TMO ARGS...: kvmlab-vm run ARGS in the
# background, its console in DIR/NAME.txt (stdout DIR/NAME.out, stderr
# DIR/NAME.err); waits at most TMO s until MARK (a grep pattern) is on the
# console or the VMM is gone. Sets pid; the VMM is killed at exit.
t_vm_bg() {
	local dir=$1 name=$2 mark=$3 tmo=$4 i
	shift 4
	"$KVMLAB_VM" run --console "file:$dir/$name.txt" "$@" \
		</dev/null >"$dir/$name.out" 2>"$dir/$name.err" &
	pid=$!
	t_defer "kill -9 $pid 2>/dev/null"
	for ((i = 0; i < tmo * 5; i++)); do
		grep -q "$mark" "$dir/$name.txt" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.2
	done
}
# t_progress ITEM...: one number that grows while a transfer moves: the
# size and allocated bytes of each FILE item, plus the bytes written by
# each pid:N item (/proc/N/io wchar). A test's watchdog compares it over
# time to tell a stall (the nested test host's guests sometimes stop,
# README "The test host") from a slow run, and ends a stuck VMM early.
t_progress() {
	local sum=0 x v
	for x in "$@"; do
		case $x in
		pid:*) v=$(awk '$1 == "wchar:" { print $2 }' "/proc/${x#pid:}/io" 2>/dev/null) ;;
		*) v=$(stat -c '%s %b' "$x" 2>/dev/null | awk '{ print $1 + $2 * 512 }') ;;
		esac
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}
# t_stall_reset; t_stalled TICKS ITEM...: called once per tick of a
# polling loop, true once t_progress ITEM... has not changed for TICKS
# calls in a row (one watch at a time per shell: the state is global)
t_stall_reset() { T_STALL_LAST=-1 T_STALL_N=0; }
t_stalled() {
	local ticks=$1 now
	shift
	now=$(t_progress "$@")
	if [ "$now" != "${T_STALL_LAST:--1}" ]; then
		T_STALL_LAST=$now T_STALL_N=0
		return 1
	fi
	((++T_STALL_N >= ticks))
}
# t_vm_quit CONSOLEFILE: SIGQUIT to the VMM (and its timeout) whose
# command line ends with --console file:CONSOLEFILE: it stops and prints
# its vCPUs' state and its rings (t_vm_report shows them)
t_vm_quit() { pkill -QUIT -f -- "--console file:$1\$"; }
# t_powered_off RC ERRFILE: the VMM ended with 0 and no vCPU reset the
# guest on the way (a triple fault is a reset, and a reset ends the VMM
# with 0 as a reboot does: a guest that died there did not power off)
t_powered_off() {
	local tf
	tf=$(grep -a -m1 'triple fault' "$2" 2>/dev/null)
	[ -z "$tf" ] || echo "# the VMM said: $tf"
	[ "$1" = 0 ] && [ -z "$tf" ]
}
# t_vm_report ERRFILE: a VMM stopped by its watchdog (timeout -s QUIT)
# left its vCPUs' state and its rings on stderr: show them as comments
# (the vCPU lines and the devices' section), to tell a stuck guest from
# a stuck device
t_vm_report() {
	[ -f "$1" ] || return 0
	grep -q '^kvmlab-vm: devices (' "$1" || return 0
	echo "# the VMM's report at its watchdog's SIGQUIT:"
	grep -E '^kvmlab-vm: vcpu|^  (RIP|mp_state|nested|LAPIC)' "$1" | sed 's/^/#   /'
	sed -n '/^kvmlab-vm: devices (/,/^kvmlab-vm: stopped/p' "$1" | sed 's/^/#   /'
}
# t_tiny_kvm NAME: the tiny-guest tests' entry: fails without the VMM,
# skips (and ends the test) without a usable /dev/kvm (any /dev/kvm does,
# PVM included: the tiny guests need no stock kernel). Sets VM and TINY.
t_tiny_kvm() {
	VM=$KVMLAB_VM
	TINY="python3 $T_ROOT/tests/cli/tinyguest.py"
	[ -x "$VM" ] || { t_fail "kvmlab-vm built" "$VM missing"; t_finish; }
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		t_skip "$1" "no usable /dev/kvm"
		t_finish
	fi
}
# t_vm_wait PID SECS: rc = the exit status of PID (a child of this
# shell) once it ends within SECS; empty if it is still running then
t_vm_wait() {
	local i
	rc=
	for ((i = 0; i < $2 * 5; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1"; rc=$?; return 0; }
		sleep 0.2
	done
}
# t_tails_on_fail N FILE...: once a check failed, the last N lines of
# each file as comments (consoles, VMM stderr: what the guest said)
t_tails_on_fail() {
	local n=$1 f
	shift
	[ "$T_FAILS" -gt 0 ] || return 0
	for f in "$@"; do
		echo "# $f:"; tail -"$n" "$f" 2>/dev/null | sed 's/^/#   /'
	done
}
# t_dhcp_peer NS MAC LOG: vmm/dhcp.c without a VM (the unit helper
# build/tests/unit/vmm_dhcp_peer) answering on a new tap kd0 in NS, up
# with MAC, for at most 90 s, with the lease the DHCP client tests expect
# (10.66.0.42/24, router and first DNS 10.66.0.1, DNS 192.0.2.53, MTU
# 1400, host lab-vm, 600 s); one line per verdict in LOG. Returns once
# it serves; the defer ends it. Skips the test without the helper.
t_dhcp_peer() {
	local peer=$KVMLAB_BUILD/tests/unit/vmm_dhcp_peer
	if [ ! -x "$peer" ]; then t_skip "${0##*/}" "no $peer (make unit)"; t_finish; fi
	ip netns exec "$1" "$peer" tap kd0 90 "$2" 10.66.0.42 10.66.0.1 24 1400 \
		10.66.0.1,192.0.2.53 lab-vm 600 >"$3" 2>&1 &
	t_defer "kill $! 2>/dev/null; wait $! 2>/dev/null"
	for _ in $(seq 50); do grep -q ready "$3" && break; sleep 0.1; done
	ip -n "$1" link set lo up
	ip -n "$1" link set kd0 address "$2" up
}
# t_running PID: PID is a process that has not exited (a zombie, exited
# and not yet waited for by its parent, has)
t_running() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$st" ] && [ "${st:0:1}" != Z ]
}
# t_finish: exit status from the checks made
t_finish() { [ "$T_FAILS" -eq 0 ]; exit $?; }

# t_kvm_here NAME SCRIPT [TIMEOUT]: the KVM tests' entry. Skips (and
# exits 0) without the VMM, the default guest or root; where /dev/kvm
# cannot boot a stock kernel (PVM), re-runs SCRIPT inside scripts/testhost
# with TIMEOUT seconds (default 900); otherwise returns and the test runs
# here.
t_kvm_here() {
	local name=$1 script=$2 tmo=${3:-900}
	if [ ! -x "$KVMLAB_VM" ] || [ ! -f "$KVMLAB_BUILD/guest/bzImage" ]; then
		t_skip "$name" "no $KVMLAB_VM or guest (make; scripts/build-guest)"
		exit 0
	fi
	if [ "$(id -u)" != 0 ]; then
		t_skip "$name" "needs root (tap, netns)"
		exit 0
	fi
	[ -n "${KVMLAB_IN_TESTHOST:-}" ] && return 0
	"$KVMLAB_VM" check >/dev/null 2>&1
	case $? in
	0) ;;
	3) exec scripts/testhost --timeout "$tmo" -- bash "$script" ;;
	*) t_skip "$name" "kvmlab-vm check: /dev/kvm not usable"; exit 0 ;;
	esac
}
