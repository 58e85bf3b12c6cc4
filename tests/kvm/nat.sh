#!/usr/bin/env bash
# The single-command path end to end: kvmlab-net up --nat in a namespace,
# `kvmlab-vm run --net` boots the default guest on it, and the guest
# reaches a TCP service in a second namespace ("the outside") through
# MASQUERADE. Oracles: the outside's own log of source addresses, what
# the guest prints, and `ip -o link` for taps left after the VM exits.
# Runs where /dev/kvm boots stock kernels (tests/kvm/run takes care).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
out=$(mktemp /tmp/kvmlab-natout.XXXXXX)
t_defer "rm -f '$out'"
timeout -k 5 "${KVMLAB_KVM_TIMEOUT:-90}" scripts/nat-lab >"$out" 2>&1
rc=$?
if [ $rc = 0 ]; then t_ok "nat: run --net guest reaches the outside as the uplink address"
else t_fail "nat: run --net guest reaches the outside as the uplink address" "rc $rc: $(tail -n 4 "$out" | tr '\n' ' ' | cut -c1-240)"; fi
if grep -q '^the outside saw connections from: 198.51.100.1 $' "$out"; then
	t_ok "nat: the outside saw only 198.51.100.1, never 192.168.57.2"
else
	t_fail "nat: the outside saw only 198.51.100.1, never 192.168.57.2" "$(grep 'outside saw' "$out")"
fi
if grep -q 'taps left after exit: 0' "$out"; then t_ok "nat: the VM's tap is gone after it exits"
else t_fail "nat: the VM's tap is gone after it exits" "$(grep 'taps left' "$out")"; fi
t_finish
