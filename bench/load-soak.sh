#!/usr/bin/env bash
# Guests under network load, boot after boot: a soak for failures that
# come once in tens of transfers (issue 8: the guest's triple faults,
# nested-KVM hangs). Each boot of the default guest (256 MiB, 2 vCPUs,
# vhost-net as asked) runs ROUNDS x (iperf3 guest->host, then host->guest,
# 5 s each, two clients pinned to vCPU 0 and 1) against servers on the
# host side of a kvmlab network in a netns of its own, then powers off.
# Per boot one line:
#   BOOT n VMM rc R S s: M marks; npt 4k A 2m B; <end of the console>
# with npt the nested-page entries KVM holds for the VM mid-run (debugfs
# pages_4k/pages_2m: how guest RAM is mapped), and for a boot that
# triple-faulted or hung, the console's tail and, with
# KVMLAB_SOAK_TRACE=1, the last kvm tracepoints before SVM's SHUTDOWN
# exit (tracing stops itself there: a trigger on kvm_exit). Ends with
#   SOAK kvmlab-vm: F failed of N; qemu: ...
# Not run by bench/run (it is a soak, not a measurement).
# Env: KVMLAB_SOAK_BOOTS (12), KVMLAB_SOAK_ROUNDS (4), KVMLAB_SOAK_VHOST
#      (on|off, on), KVMLAB_SOAK_VMS (VMMs taken in turn: "kvmlab", "qemu",
#      "base" = KVMLAB_BENCH_BASE's binary, "kvmmio" = kvmlab on
#      --virtio-transport mmio, "microvm" = QEMU's microvm machine with
#      virtio-net-device; default "kvmlab"),
#      KVMLAB_SOAK_TRACE (0), KVMLAB_SOAK_CMDLINE (added to the guest's),
#      KVMLAB_BENCH_BASE (a second kvmlab-vm under bench/, for an A/B).
# Without hardware-backed KVM it runs inside the test host.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
. bench/lib.sh
bl_build || exit 1
BOOTS=${KVMLAB_SOAK_BOOTS:-12} ROUNDS=${KVMLAB_SOAK_ROUNDS:-4}
bl_enter load-soak.sh $((300 + BOOTS * (60 + ROUNDS * 15))) -- KVMLAB_SOAK_BOOTS="$BOOTS" KVMLAB_SOAK_ROUNDS="$ROUNDS" \
	KVMLAB_SOAK_VHOST="${KVMLAB_SOAK_VHOST:-on}" KVMLAB_SOAK_VMS="${KVMLAB_SOAK_VMS:-kvmlab}" \
	KVMLAB_SOAK_TRACE="${KVMLAB_SOAK_TRACE:-0}" KVMLAB_SOAK_CMDLINE="${KVMLAB_SOAK_CMDLINE:-}" \
	KVMLAB_BENCH_BASE="${KVMLAB_BENCH_BASE:-}"
[ "$(id -u)" = 0 ] || { echo "bench/load-soak.sh: needs root (netns, taps)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench/load-soak.sh: no iperf3 (scripts/install-deps)" >&2; exit 1; }
VHOST=${KVMLAB_SOAK_VHOST:-on} TRACE=${KVMLAB_SOAK_TRACE:-0}
read -ra VMS <<<"${KVMLAB_SOAK_VMS:-kvmlab}"
K=$TOP/build/guest/bzImage I=$TOP/build/guest/initrd.img
NETC=$TOP/build/kvmlab-net QEMU=$(command -v qemu-system-x86_64 || true)
HOST=10.82.0.1 GUEST=10.82.0.2 TMO=$((60 + ROUNDS * 30))
work=$(mktemp -d /tmp/kvmlab-soak.XXXXXX) || exit 1
ns=kl-soak-$$-$RANDOM
T=/sys/kernel/tracing
ip netns add "$ns" || exit 1
trap 'bl_iperf_stop; ip netns exec "$ns" "$NETC" down soakb >/dev/null 2>&1; bl_ns_del "$ns"
	[ "$TRACE" = 1 ] && { echo 0 >$T/tracing_on; echo "!traceoff if exit_reason == 127" >$T/events/kvm/kvm_exit/trigger; echo 0 >$T/events/kvm/enable; }
	rm -rf "$work"; bl_cleanup' EXIT
trap 'exit 130' INT TERM
nsx() { ip netns exec "$ns" "$@"; }
bl_debugfs || { echo "bench/load-soak.sh: no debugfs" >&2; exit 1; }
nsx ip link set lo up
nsx "$NETC" up soakb --cidr $HOST/24 >/dev/null && nsx "$NETC" tap add klsoak0 --net soakb >/dev/null ||
	{ echo "bench/load-soak.sh: network setup failed" >&2; exit 1; }
if [ "$TRACE" = 1 ]; then
	[ -d $T/events ] || mount -t tracefs nodev $T
	echo 8192 >$T/buffer_size_kb
	for e in kvm_exit kvm_entry kvm_inj_virq kvm_inj_exception kvm_apic_accept_irq kvm_msr \
		kvm_userspace_exit kvm_pio kvm_mmio kvm_apic_ipi kvm_eoi kvm_set_irq kvm_msi_set_irq kvm_hypercall; do
		[ -d $T/events/kvm/$e ] && echo 1 >$T/events/kvm/$e/enable
	done
	# 0x7f: SVM_EXIT_SHUTDOWN, the triple fault (the test host is AMD)
	echo 'traceoff if exit_reason == 127' >$T/events/kvm/kvm_exit/trigger
fi

IP3=/usr/bin/iperf3
a="$IP3 -c $HOST -p 5201 -t 5 -f m" b="$IP3 -c $HOST -p 5202 -t 5 -f m"
g="echo 1 >/proc/sys/kernel/printk; ping -c 3 -W 5 $HOST >/dev/null"
g="$g; for i in \$(seq $ROUNDS); do echo MARK up\$i; (taskset -c 0 $a >/dev/null) & (taskset -c 1 $b >/dev/null) & wait"
g="$g; echo MARK dn\$i; (taskset -c 0 $a -R >/dev/null) & (taskset -c 1 $b -R >/dev/null) & wait; done"
CMDLINE="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\" ${KVMLAB_SOAK_CMDLINE:-}"

declare -A FAILS=() RUNS=()
echo "# bench/load-soak.sh: $BOOTS boots of ${VMS[*]} in turn, $ROUNDS x (up, down) each, vhost $VHOST"
for ((n = 1; n <= BOOTS; n++)); do
	vm=${VMS[(n - 1) % ${#VMS[@]}]}
	case $vm in
	qemu|microvm) [ -n "$QEMU" ] || { echo "bench/load-soak.sh: no QEMU" >&2; exit 1; }
		m=pc dev=virtio-net-pci,netdev=n0,romfile=
		[ $vm = microvm ] && m=microvm dev=virtio-net-device,netdev=n0
		argv=("$QEMU" -enable-kvm -M $m -cpu host -m 256 -smp 2 -nodefaults -no-user-config
			-display none -serial stdio -no-reboot -kernel "$K" -initrd "$I" -append "$CMDLINE"
			-netdev "tap,id=n0,ifname=klsoak0,script=no,downscript=no,vnet_hdr=on,vhost=$VHOST"
			-device "$dev") ;;
	kvmlab|base|kvmmio)
		bin=$TOP/build/kvmlab-vm
		if [ $vm = base ]; then
			bin=$TOP/${KVMLAB_BENCH_BASE:-}
			[ -n "${KVMLAB_BENCH_BASE:-}" ] && [ -x "$bin" ] || { echo "bench/load-soak.sh: base needs KVMLAB_BENCH_BASE" >&2; exit 1; }
		fi
		argv=("$bin" run --kernel "$K" --initrd "$I" --mem 256M --cpus 2 --console stdio
			--tap klsoak0 --vhost "$VHOST" --cmdline "$CMDLINE")
		[ $vm = kvmmio ] && argv+=(--virtio-transport mmio) ;;
	*) echo "bench/load-soak.sh: unknown VMM $vm" >&2; exit 2 ;;
	esac
	bl_iperf_start "$ns" $HOST 5201 5202
	[ "$TRACE" = 1 ] && { echo >$T/trace; echo 1 >$T/tracing_on; }
	out=$work/console t0=$SECONDS
	nsx timeout -s KILL $TMO "${argv[@]}" </dev/null >"$out" 2>&1 &
	vpid=$!
	# mid-run: how KVM maps the VM's RAM (its debugfs directory is PID-FD)
	npt="npt ?"
	for _ in $(seq 60); do
		sleep 0.5
		d=$(for p in $(pgrep -f "^${argv[0]} "); do ls -d /sys/kernel/debug/kvm/"$p"-* 2>/dev/null; done | head -1)
		[ -n "$d" ] && grep -q '^MARK up1' "$out" && { npt="npt 4k $(cat "$d/pages_4k" 2>/dev/null) 2m $(cat "$d/pages_2m" 2>/dev/null)"; break; }
	done
	wait $vpid
	rc=$?
	[ "$TRACE" = 1 ] && echo 0 >$T/tracing_on
	bl_iperf_stop
	marks=$(grep -c '^MARK' "$out")
	RUNS[$vm]=$((${RUNS[$vm]:-0} + 1))
	echo "BOOT $n $vm rc $rc $((SECONDS - t0)) s: $marks marks; $npt; $(tr -d '\r' <"$out" | grep -v '^MARK' | tail -c 160 | tr '\n' ' ')"
	if [ $rc != 0 ] || [ "$marks" != $((2 * ROUNDS)) ] || grep -q 'triple fault' "$out"; then
		FAILS[$vm]=$((${FAILS[$vm]:-0} + 1))
		tr -d '\r' <"$out" | tail -n 20 | sed 's/^/#   console| /'
		if [ "$TRACE" = 1 ]; then
			echo "#   kvm trace, last 500 events of $(grep -vc '^#' $T/trace):"
			grep -v '^#' $T/trace | tail -n 500 | sed 's/^/#   trace| /'
		fi
	fi
done
line="SOAK"
for vm in "${!RUNS[@]}"; do line="$line $vm: ${FAILS[$vm]:-0} failed of ${RUNS[$vm]};"; done
echo "$line"
