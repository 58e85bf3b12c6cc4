#!/usr/bin/env bash
# A kvmlab network serves any VMM: QEMU, not kvmlab-vm, boots the default
# guest with virtio-net on a persistent tap made by `kvmlab-net tap add`
# (IFF_VNET_HDR, so QEMU's vnet_hdr=on must work), takes its address by
# DHCP from `kvmlab-vm dhcp` on the network's bridge, and pings the
# bridge address. The network has IPv6 too: the guest's kernel
# autoconfigures from kvmlab-vm dhcp's router advertisements and pings
# the bridge's IPv6 address. Oracles: what the guest prints (its DHCP
# result, its SLAAC address, its ping output and exit status), and the
# tap's counters and master from `ip -j`. Runs in its own netns.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
QEMU=$(command -v qemu-system-x86_64) || { t_skip "qemu peer" "no qemu-system-x86_64"; exit 0; }
[ "$(id -u)" = 0 ] || { t_skip "qemu peer" "needs root"; exit 0; }
[ -f "$KVMLAB_BUILD/guest/bzImage" ] || { t_skip "qemu peer" "no default guest"; exit 0; }

t_netns_new ns qpeer || { t_fail "qemu peer: netns" "ip netns add failed"; t_finish; }
t_defer "ip netns exec $ns $KVMLAB_NET down qpeer"
out=$(mktemp /tmp/kvmlab-qpeer.XXXXXX)
t_defer "rm -f '$out'"

if ! ip netns exec "$ns" "$KVMLAB_NET" up qpeer --cidr 10.77.0.1/24 --cidr6 fd77::1/64 ||
	! ip netns exec "$ns" "$KVMLAB_NET" tap add klq0 --net qpeer; then
	t_fail "qemu peer: kvmlab-net up + tap add" "failed"
	t_finish
fi
# the guest asks for its address by DHCP (no kvmlab.ip=): kvmlab-vm dhcp
# serves the network's bridge for VMMs other than kvmlab-vm
ip netns exec "$ns" "$KVMLAB_VM" dhcp qpeer 2>"$out.dhcp" &
srv=$!
t_defer "kill $srv 2>/dev/null; rm -f '$out.dhcp'"
for _ in $(seq 50); do grep -q 'serving on' "$out.dhcp" && break; sleep 0.1; done
MAC=52:54:00:77:00:2a
v6='for i in $(seq 50); do ip -6 -o addr show dev eth0 scope global | grep fd77: | grep -vq tentative && break; sleep 0.2; done'
run="ping -c 3 -W 5 10.77.0.1; $v6; echo G6=\$(ip -6 -o addr show dev eth0 scope global | awk '{print \$4}'); ping -6 -c 2 -W 5 fd77::1 >/dev/null && echo G-PING6=ok; true"
timeout -k 5 "${KVMLAB_KVM_TIMEOUT:-90}" ip netns exec "$ns" "$QEMU" -enable-kvm -M pc -cpu host \
	-m 256 -smp 1 -nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-kernel "$KVMLAB_BUILD/guest/bzImage" -initrd "$KVMLAB_BUILD/guest/initrd.img" \
	-append "console=ttyS0 reboot=k quiet kvmlab.run=\"$run\"" \
	-netdev tap,id=n0,ifname=klq0,script=no,downscript=no,vnet_hdr=on \
	-device virtio-net-pci,netdev=n0,mac=$MAC,romfile= </dev/null >"$out" 2>&1
rc=$?
tr -d '\r' <"$out" >"$out.t" && mv "$out.t" "$out"
gaddr=$(sed -n 's/^kvmlab-init: dhcp: eth0 \([0-9.]*\/[0-9]*\) router 10.77.0.1 .*/\1/p' "$out" | head -1)
if [[ $gaddr == 10.77.0.*/24 ]] && grep -q "^kvmlab-vm: dhcp qpeer: $MAC gets $gaddr (lease mac-525400770" "$out.dhcp"; then
	t_ok "qemu peer: the QEMU guest took $gaddr by DHCP from kvmlab-vm dhcp (router 10.77.0.1)"
else
	t_fail "qemu peer: the QEMU guest's DHCP from kvmlab-vm dhcp" "guest '$(grep 'kvmlab-init: dhcp' "$out" | head -2 | tr '\n' '|')', server: $(tr '\n' '|' <"$out.dhcp")"
fi
kill -TERM $srv; wait $srv
g6=$(sed -n 's/^G6=//p' "$out" | tail -n1)
if [ "$g6" = fd77::5054:ff:fe77:2a/64 ] && grep -q '^G-PING6=ok' "$out" &&
	grep -q 'serving on kl-qpeer, with IPv6 router advertisements' "$out.dhcp"; then
	t_ok "qemu peer: the QEMU guest autoconfigured $g6 from kvmlab-vm dhcp's advertisements and pings fd77::1"
else
	t_fail "qemu peer: the QEMU guest's IPv6 from kvmlab-vm dhcp" "G6 '$g6', $(grep -c G-PING6=ok "$out") ping6 ok; server: $(head -n1 "$out.dhcp")"
fi

if grep -q '^KVMLAB-RC=0$' "$out" && grep -q '3 packets received' "$out"; then
	t_ok "qemu peer: QEMU guest on a kvmlab tap pings the bridge"
else
	t_fail "qemu peer: QEMU guest on a kvmlab tap pings the bridge" \
		"qemu rc $rc: $(grep -E 'KVMLAB|packets|error|Error' "$out" | tr '\n' ' ' | cut -c1-200)"
fi
j=$(ip -n "$ns" -j -s link show klq0 2>/dev/null)
rx=$(jq -r '.[0].stats64.rx.packets // 0' <<<"$j")
master=$(jq -r '.[0].master // ""' <<<"$j")
if [ "${rx:-0}" -ge 3 ] && [ "$master" = kl-qpeer ]; then
	t_ok "qemu peer: tap klq0 on kl-qpeer carried the guest's frames (rx $rx)"
else
	t_fail "qemu peer: tap klq0 on kl-qpeer carried the guest's frames" "rx=$rx master=$master"
fi
t_finish
