#!/usr/bin/env bash
# --virtio-transport mmio: the default guest with a disk, a NIC and the
# entropy device on virtio-mmio (LNRO0005 in the DSDT), 1 vCPU. What the
# guest itself reports: no virtio device on PCI, three virtio-mmio
# platform devices, their interrupts level-triggered IO-APIC lines; the
# disk's bytes both ways, ping and 4 MiB each way over the tap (md5),
# /dev/hwrng. With vhost-net (where /dev/vhost-net opens) the kernel
# moves the frames through the transport's interrupt relay: the VMM's own
# read/write byte counts (/proc/PID/io) stay flat across the transfers,
# and no line says vhost was refused; with --vhost off they grow by the
# frames. A reset in flight (unbind/rebind) brings the NIC back. The
# --vhost off boot does not name the transport: its command line has
# pci=off, as Firecracker's guests do, which picks virtio-mmio.
# 1 vCPU and 4 MiB: in the test host, 2-vCPU virtio-mmio guests
# triple-faulted during 8 MiB uploads in 6 of 28 boots (README,
# "Benchmarks"); bench/load-soak.sh (kvmmio) soaks that.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
VM=$KVMLAB_VM
MB=4

t_kvm_here "virtio-mmio" tests/kvm/mmio.sh 900

work=$(mktemp -d /tmp/kvmlab-mmio.XXXXXX) || exit 1
t_defer "rm -rf $work"
HOST=10.81.0.1 GUEST=10.81.0.2
t_tap_netns ns mmio $HOST
nsx() { ip netns exec "$ns" "$@"; }

tok=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
img=$work/disk.img
head -c $((4 << 20)) /dev/urandom >"$img"
printf 'MAGIC-%s' "$tok" | dd of="$img" conv=notrunc status=none
head -c $((MB << 20)) /dev/urandom >"$work/down"
want=$(md5sum <"$work/down" | cut -d' ' -f1)

vhost_ok=0
[ -r /dev/vhost-net ] && exec 9</dev/vhost-net 2>/dev/null && { vhost_ok=1; exec 9<&-; }

# one boot; prints "rc read written" (the VMM's bytes across the transfers)
boot() { # vhost tag
	local mode=$1 tag=$2 out=$work/$2.console
	nsx timeout 300 ncat -l $HOST 7002 --send-only <"$work/down" 2>/dev/null &
	local p1=$!
	nsx timeout 300 ncat -l $HOST 7001 >"$work/$tag.up" 2>/dev/null < <(nsx sleep 300) & # in the netns: its cleanup ends it
	local p2=$!
	sleep 0.5
	# guest side: no double quotes (they delimit kvmlab.run)
	local g="echo PCIVIRTIO=\$(ls /sys/bus/pci/drivers/virtio-pci | grep -c :)"
	g="$g; echo MMIODEVS=\$(ls /sys/bus/platform/drivers/virtio-mmio | grep -c LNRO0005)"
	g="$g; echo LEVEL=\$(grep -c 'IO-APIC.*fasteoi.*virtio' /proc/interrupts)"
	g="$g; echo MAGIC=\$(head -c 18 /dev/vda)"
	g="$g; echo WROTE-$tok | dd of=/dev/vda bs=512 seek=16 conv=notrunc 2>/dev/null; echo DD=\$?; sync"
	g="$g; echo RNG=\$(cat /sys/class/misc/hw_random/rng_current) \$(head -c 64 /dev/hwrng | wc -c)"
	g="$g; ping -c 3 -W 5 $HOST >/dev/null && echo PING-OK"
	# the host samples the VMM's byte counts between the two markers
	g="$g; echo XFER-START; sleep 2"
	g="$g; echo DOWN=\$(nc $HOST 7002 </dev/null | md5sum)"
	g="$g; head -c $((MB << 20)) /dev/zero | nc $HOST 7001 && echo UP-DONE"
	g="$g; echo XFER-END; sleep 2"
	g="$g; d=\$(basename \$(readlink /sys/class/net/eth0/device)); echo DEV=\$d"
	g="$g; echo \$d >/sys/bus/virtio/drivers/virtio_net/unbind; echo \$d >/sys/bus/virtio/drivers/virtio_net/bind"
	g="$g; sleep 1; ip link set eth0 up; ip addr add $GUEST/24 dev eth0 2>/dev/null; sleep 1"
	g="$g; ping -c 3 -W 5 $HOST >/dev/null && echo PING2-OK"
	local cmdline="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""
	local how=(--virtio-transport mmio)
	[ $mode = off ] && { how=(); cmdline="pci=off $cmdline"; }
	nsx timeout -s QUIT -k 10 300 "$VM" run "${how[@]}" --mem 256M --cpus 1 \
		--tap tap0 --disk "$img" --rng --vhost "$mode" --cmdline "$cmdline" \
		--console "file:$out" >"$work/$tag.err" 2>&1 &
	local vm=$! vpid= io r0= w0= r1= w1= sender=
	t_stall_reset
	for _ in $(seq 1 1500); do
		kill -0 $vm 2>/dev/null || break
		[ -n "$sender" ] || sender=$(pgrep -f "^ncat -l $HOST 7002" | head -1)
		if t_stalled 180 "$out" "$work/$tag.up" "pid:${sender:-0}"; then
			echo "# mmio $mode: nothing moved for 90 s: SIGQUIT to the VMM" >&2
			t_vm_quit "$out"
			break
		fi
		[ -n "$vpid" ] || vpid=$(pgrep -f -x "$VM run .*--vhost $mode .*" | head -1)
		if [ -n "$vpid" ] && io=$(cat /proc/$vpid/io 2>/dev/null); then
			if [ -z "$r0" ] && grep -q '^XFER-START' "$out" 2>/dev/null; then
				r0=$(awk '$1 == "rchar:" {print $2}' <<<"$io")
				w0=$(awk '$1 == "wchar:" {print $2}' <<<"$io")
			elif [ -n "$r0" ] && [ -z "$r1" ] && grep -q '^XFER-END' "$out" 2>/dev/null; then
				r1=$(awk '$1 == "rchar:" {print $2}' <<<"$io")
				w1=$(awk '$1 == "wchar:" {print $2}' <<<"$io")
			fi
		fi
		sleep 0.2
	done
	wait $vm
	local rc=$?
	kill $p1 $p2 2>/dev/null
	wait $p1 $p2 2>/dev/null
	if [ -n "$r0" ] && [ -n "$r1" ]; then echo "$rc $((r1 - r0)) $((w1 - w0))"; else echo "$rc - -"; fi
}

modes=off
[ $vhost_ok = 1 ] && modes="on off"
for mode in $modes; do
	read -r rc rd wr < <(boot $mode $mode)
	out=$work/$mode.console
	echo "# mmio vhost $mode: the VMM read $rd and wrote $wr bytes during the transfers"
	if t_powered_off "$rc" "$work/$mode.err"; then t_ok "mmio $mode: guest ran and powered off"; else
		t_fail "mmio $mode: guest ran and powered off" "exit $rc: $(tail -3 "$work/$mode.err" | tr '\n' ' ')"
		t_vm_report "$work/$mode.err"; fi
	has() { grep -q -- "$2" "$out" && t_ok "mmio $mode: $1" || t_fail "mmio $mode: $1" "console lacks '$2'"; }
	has "no virtio device on PCI" "^PCIVIRTIO=0"
	has "three virtio-mmio devices (LNRO0005) bound" "^MMIODEVS=3"
	has "their interrupts are level-triggered IO-APIC lines" "^LEVEL=3"
	has "the guest reads the image's first bytes" "^MAGIC=MAGIC-$tok"
	has "the guest's write succeeded" "^DD=0"
	has "virtio-rng is the guest's hwrng and gives 64 bytes" "^RNG=virtio_rng.0 64"
	has "the guest pings the host" "^PING-OK"
	has "$MB MiB host->guest intact (md5)" "^DOWN=$want"
	has "$MB MiB guest->host sent" "^UP-DONE"
	if [ "$(stat -c %s "$work/$mode.up" 2>/dev/null)" = $((MB << 20)) ] &&
	   ! tr -d '\0' <"$work/$mode.up" | head -c 1 | grep -q .; then
		t_ok "mmio $mode: $MB MiB guest->host intact"
	else
		t_fail "mmio $mode: $MB MiB guest->host intact" "got $(stat -c %s "$work/$mode.up" 2>/dev/null) bytes"
	fi
	has "the NIC works again after an unbind/rebind (reset in flight)" "^PING2-OK"
	if dd if="$img" bs=512 skip=16 count=1 status=none | head -c 19 | grep -q "^WROTE-$tok"; then
		t_ok "mmio $mode: the image file holds what the guest wrote"
	else
		t_fail "mmio $mode: the image file holds what the guest wrote"
	fi
	if [ "$rd" = - ]; then
		t_fail "mmio $mode: the VMM's byte counts sampled around the transfers" "markers not seen"
	elif [ $mode = on ]; then
		# the kernel moved the frames: the VMM touched (almost) none
		[ "$rd" -lt $((1 << 20)) ] && [ "$wr" -lt $((1 << 20)) ] &&
			t_ok "mmio on: vhost-net moved the frames (the VMM read $rd, wrote $wr bytes)" ||
			t_fail "mmio on: vhost-net moved the frames" "the VMM read $rd, wrote $wr bytes"
		grep -q 'vhost' "$work/$mode.err" &&
			t_fail "mmio on: no line about vhost" "$(grep vhost "$work/$mode.err")" ||
			t_ok "mmio on: no line about vhost (it took the rings)"
	else
		[ "$rd" -ge $(((MB - 1) << 20)) ] && [ "$wr" -ge $(((MB - 1) << 20)) ] &&
			t_ok "mmio off: the VMM moved the frames itself (read $rd, wrote $wr bytes)" ||
			t_fail "mmio off: the VMM moved the frames itself" "read $rd, wrote $wr bytes"
	fi
done

t_tails_on_fail 25 "$work"/*.console "$work"/*.err
t_finish
