#!/usr/bin/env bash
# vhost-net: the same guest and transfers with --vhost on and --vhost off.
# With vhost on, the kernel's vhost worker for our process (a kernel
# thread named vhost-<pid>, seen in ps: the independent observer) moves
# the frames: 8 MiB each way arrive intact, ping works, the guest sees
# one NIC, and KVM's own exit statistics (--stats) show far fewer
# userspace exits than the same run through the VMM. A reset in flight
# (the guest unbinds and rebinds virtio-net) gives the rings back to the
# VMM and then to vhost again, and the NIC still works. --vhost on
# without /dev/vhost-net fails with one line. A third boot (intx) is
# vhost on with the guest on INTx (pci=nomsi): its interrupts pass
# through the VMM's relay, and the kernel still moves the frames.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
VM=$KVMLAB_VM
MB=8

t_kvm_here "vhost" tests/kvm/vhost.sh 900
t_need_vhost vhost

work=$(mktemp -d /tmp/kvmlab-vhost.XXXXXX) || exit 1
t_defer "rm -rf $work"
HOST=10.79.0.1 GUEST=10.79.0.2
t_tap_netns ns vhost $HOST
nsx() { ip netns exec "$ns" "$@"; }
head -c $((MB << 20)) /dev/urandom >"$work/down"
want=$(md5sum <"$work/down" | cut -d' ' -f1)

# one boot: ping, MB down and up, then a driver unbind/rebind (reset in
# flight) and another ping; prints what it saw
boot() { # mode tag
	local mode=$1 tag=$2 out=$work/$2.console extra=
	[ $mode = intx ] && { mode=on; extra=pci=nomsi; }
	nsx timeout 300 ncat -l $HOST 7002 --send-only <"$work/down" 2>/dev/null &
	local p1=$!
	nsx timeout 300 ncat -l $HOST 7001 >"$work/$tag.up" 2>/dev/null < <(nsx sleep 300) & # in the netns: its cleanup ends it
	local p2=$!
	sleep 0.5
	local g="ping -c 3 -W 5 $HOST >/dev/null && echo PING-OK"
	g="$g; echo DOWN=\$(nc $HOST 7002 </dev/null | md5sum)"
	# the guest driver's count of frames it found cut short (Linux counts
	# one when a frame's merged buffers are not all in the used ring)
	g="$g; echo RXLEN=\$(cat /sys/class/net/eth0/statistics/rx_length_errors)"
	g="$g; head -c $((MB << 20)) /dev/zero | nc $HOST 7001 && echo UP-DONE"
	g="$g; d=\$(basename \$(readlink /sys/class/net/eth0/device)); echo DEV=\$d"
	g="$g; echo \$d >/sys/bus/virtio/drivers/virtio_net/unbind; echo \$d >/sys/bus/virtio/drivers/virtio_net/bind"
	g="$g; sleep 1; ip link set eth0 up; ip addr add $GUEST/24 dev eth0 2>/dev/null; sleep 1"
	g="$g; ping -c 3 -W 5 $HOST >/dev/null && echo PING2-OK"
	g="$g; echo INTX=\$(grep -c 'IO-APIC.*virtio' /proc/interrupts)"
	local cmdline="console=ttyS0 reboot=k quiet $extra kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""
	nsx timeout -s QUIT -k 10 300 "$VM" run --mem 256M --tap tap0 --vhost "$mode" --stats \
		--cmdline "$cmdline" --console "file:$out" >"$work/$tag.err" 2>&1 &
	local vm=$!
	# the worker is a kernel thread named after its owner's pid; the
	# bytes the VMM itself read and wrote (/proc/PID/io: rchar, wchar,
	# every read/write syscall, the tap's included) show who moved the
	# frames: the boot's file reads are the same in both modes
	local seen=0 rch=0 wch=0 vpid io sender=
	t_stall_reset
	for _ in $(seq 1 600); do
		kill -0 $vm 2>/dev/null || break
		# nothing moved for 90 s (console, both transfers): a stalled
		# guest (README "The test host") gets SIGQUIT now, not at 300 s
		[ -n "$sender" ] || sender=$(pgrep -f "^ncat -l $HOST 7002" | head -1)
		if t_stalled 180 "$out" "$work/$tag.up" "pid:${sender:-0}"; then
			echo "# vhost $mode: nothing moved for 90 s: SIGQUIT to the VMM" >&2
			t_vm_quit "$out"
			break
		fi
		vpid=$(pgrep -f -x "$VM run --mem 256M --tap tap0 --vhost $mode.*" | head -1)
		if [ -n "$vpid" ]; then
			pgrep -x "vhost-$vpid" >/dev/null && seen=1
			if io=$(cat /proc/$vpid/io 2>/dev/null); then
				rch=$(awk '$1 == "rchar:" {print $2}' <<<"$io")
				wch=$(awk '$1 == "wchar:" {print $2}' <<<"$io")
			fi
		fi
		grep -q '^PING2-OK' "$out" 2>/dev/null && break
		sleep 0.5
	done
	wait $vm
	local rc=$?
	kill $p1 $p2 2>/dev/null
	wait $p1 $p2 2>/dev/null
	echo "$rc $seen ${rch:-0} ${wch:-0}"
}

# KVMLAB_VHOST_MODES: the boots, in order (default "on off"; e.g.
# "off off off" to soak the VMM's own data path)
modes=${KVMLAB_VHOST_MODES:-on intx off}
for mode in $modes; do
	read -r rc seen rch wch < <(boot $mode $mode)
	echo "# vhost $mode: the VMM read $rch and wrote $wch bytes (/proc/PID/io)"
	eval "rch_$mode=$rch wch_$mode=$wch"
	out=$work/$mode.console
	if t_powered_off "$rc" "$work/$mode.err"; then t_ok "vhost $mode: guest ran and powered off"; else
		t_fail "vhost $mode: guest ran and powered off" "exit $rc: $(tail -3 "$work/$mode.err" | tr '\n' ' ')"
		t_vm_report "$work/$mode.err"; fi
	grep -q '^PING-OK' "$out" && t_ok "vhost $mode: guest pings the host" ||
		t_fail "vhost $mode: guest pings the host" "$(tail -5 "$out" | tr '\n' ' ')"
	grep -q "^DOWN=$want" "$out" && t_ok "vhost $mode: $MB MiB host->guest intact (md5)" ||
		t_fail "vhost $mode: $MB MiB host->guest intact (md5)" "$(grep DOWN= "$out")"
	rxlen=$(tr -d '\r' <"$out" | sed -n 's/^RXLEN=//p' | head -1)
	[ "$rxlen" = 0 ] && t_ok "vhost $mode: the guest's driver saw no frame cut short (rx_length_errors 0)" ||
		t_fail "vhost $mode: the guest's driver saw no frame cut short" "rx_length_errors '${rxlen}'"
	if [ "$(stat -c %s "$work/$mode.up" 2>/dev/null)" = $((MB << 20)) ] &&
	   ! tr -d '\0' <"$work/$mode.up" | head -c 1 | grep -q .; then
		t_ok "vhost $mode: $MB MiB guest->host intact"
	else
		t_fail "vhost $mode: $MB MiB guest->host intact" "got $(stat -c %s "$work/$mode.up" 2>/dev/null) bytes"
	fi
	grep -q '^PING2-OK' "$out" && t_ok "vhost $mode: NIC works again after an unbind/rebind (reset in flight)" ||
		t_fail "vhost $mode: NIC works again after an unbind/rebind (reset in flight)" "$(tail -5 "$out" | tr '\n' ' ')"
	if [ $mode = intx ]; then
		grep -q '^INTX=[1-9]' "$out" && t_ok "vhost intx: the guest's virtio interrupts are IO-APIC lines" ||
			t_fail "vhost intx: the guest's virtio interrupts are IO-APIC lines" "$(grep INTX= "$out")"
	fi
	if [ $mode != off ]; then
		[ "$seen" = 1 ] && t_ok "vhost $mode: the kernel's vhost-<pid> worker ran for the VMM" ||
			t_fail "vhost $mode: the kernel's vhost-<pid> worker ran for the VMM" "no vhost-PID thread seen"
	else
		[ "$seen" = 0 ] && t_ok "vhost off: no vhost worker" ||
			t_fail "vhost off: no vhost worker" "a vhost-PID thread was seen"
	fi
	ex=$(sed -n 's/^  userspace_exits *//p' "$work/$mode.err")
	echo "# vhost $mode: userspace exits over the whole boot $ex (--stats)"
done
# without vhost the VMM reads every frame from the tap and writes every
# frame to it ($MB MiB each way at least); with vhost it touches neither
need=$(((MB - 1) << 20))
if [[ " $modes " != *" on "* || " $modes " != *" off "* ]]; then
	:
elif [ $((rch_off - rch_on)) -ge $need ] && [ $((wch_off - wch_on)) -ge $need ]; then
	t_ok "vhost: the VMM read $(((rch_off - rch_on) >> 20)) and wrote $(((wch_off - wch_on) >> 20)) MiB less with vhost: the kernel moved the frames"
else
	t_fail "vhost: the kernel moved the frames" "VMM read $rch_on/$rch_off, wrote $wch_on/$wch_off bytes (vhost on/off)"
fi
if [[ " $modes " == *" intx "* && " $modes " == *" off "* ]]; then
	if [ $((rch_off - rch_intx)) -ge $need ] && [ $((wch_off - wch_intx)) -ge $need ]; then
		t_ok "vhost intx: the VMM read $(((rch_off - rch_intx) >> 20)) and wrote $(((wch_off - wch_intx) >> 20)) MiB less: the kernel moved the frames on INTx too"
	else
		t_fail "vhost intx: the kernel moved the frames" "VMM read $rch_intx/$rch_off, wrote $wch_intx/$wch_off bytes (intx/off)"
	fi
fi

# --vhost on where there is no backend: one line, exit 1, nothing booted
if unshare -m --propagation private sh -c "mount --bind /dev/null /dev/vhost-net && \
	ip netns exec $ns $VM run --tap tap0 --vhost on --console none >$work/nov.out 2>$work/nov.err"; then
	t_fail "vhost on without /dev/vhost-net fails"
else
	rc=$?
	n=$(wc -l <"$work/nov.err")
	[ "$rc" = 1 ] && [ "$n" = 1 ] && grep -q 'vhost-net' "$work/nov.err" &&
		t_ok "vhost on without a usable /dev/vhost-net: exit 1, one line naming vhost-net" ||
		t_fail "vhost on without a usable /dev/vhost-net: exit 1, one line" "rc=$rc: $(cat "$work/nov.err")"
fi
t_finish
