#!/usr/bin/env bash
# The single-command path end to end: kvmlab-net up --nat in a namespace,
# `kvmlab-vm run --net` boots the default guest on it, and the guest
# reaches a TCP service in a second namespace ("the outside") through
# MASQUERADE, over IPv4 and over IPv6 (SLAAC from the VMM's router
# advertisements, NAT66). Oracles: the outside's own log of source addresses, what
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
if grep -q '^the outside saw connections from: 198.51.100.1 2001:db8:57::1 $' "$out"; then
	t_ok "nat: the outside saw only 198.51.100.1 and 2001:db8:57::1, never 192.168.57.2 or fd57::/64"
else
	t_fail "nat: the outside saw only 198.51.100.1 and 2001:db8:57::1" "$(grep 'outside saw' "$out")"
fi
# the guest's own view: the address SLAAC made from the VMM's advertisement
g6=$(tr -d '\r' <"$out" | sed -n 's/^guest6: //p' | tail -n1)
if [[ $g6 == fd57::*/64 ]]; then t_ok "nat: the guest autoconfigured $g6 from the VMM's router advertisement"
else t_fail "nat: the guest autoconfigured an fd57::/64 address" "guest6: '$g6'"; fi
if grep -q 'taps left after exit: 0' "$out"; then t_ok "nat: the VM's tap is gone after it exits"
else t_fail "nat: the VM's tap is gone after it exits" "$(grep 'taps left' "$out")"; fi
t_finish
