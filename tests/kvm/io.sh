#!/usr/bin/env bash
# The in-kernel data path: a 64 MiB disk write (from the host over the
# tap) and read back (to the host over the tap) with matching md5s, FLUSH
# after the writes, DISCARD leaving holes in a sparse image, and the
# userspace exits during those transfers, counted by KVM's own debugfs
# statistics (the independent observer) and reported by --stats.
# Runs directly where /dev/kvm boots stock kernels, else inside
# scripts/testhost (PVM hosts).
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
VM=$KVMLAB_VM

t_kvm_here "io e2e" tests/kvm/io.sh 900

work=$(mktemp -d /tmp/kvmlab-io.XXXXXX) || exit 1
t_defer "rm -rf $work"
dbg=/sys/kernel/debug/kvm
if [ ! -d $dbg ]; then
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null && t_defer "umount /sys/kernel/debug"
fi
HOST=10.78.0.1 GUEST=10.78.0.2
t_tap_netns ns io $HOST
nsx() { ip netns exec "$ns" "$@"; }

has() { grep -q -- "$2" "$out" && t_ok "$1" || t_fail "$1" "console lacks '$2'"; }

# one AIO MB: boot with --disk ...,aio=AIO, move MB MiB each way and check
# everything once
one() {
	local aio=$1 MB=$2 img out vmjob vmdir rc got h1 h2 z1 z2 fl alloc lo hi l1 l2 nring want wantmd5
	local io0 mmio0 t0 io1 mmio1 t1 dio dmmio secs per p4k= p2m=
	img=$work/disk-$aio.img
	truncate -s $((MB * 2))M "$img" # sparse: no block allocated yet
	head -c $((MB << 20)) /dev/urandom >"$work/down"
	wantmd5=$(md5sum <"$work/down" | cut -d' ' -f1)
	nsx timeout 400 ncat -l $HOST 7002 --send-only <"$work/down" 2>/dev/null &
	l1=$!
	t_defer "kill $l1 2>/dev/null"
	nsx timeout 400 ncat -l $HOST 7001 >"$work/up-$aio" 2>/dev/null < <(nsx sleep 400) & # in the netns: its cleanup ends it
	l2=$!
	t_defer "kill $l2 2>/dev/null"
	sleep 0.5

	B=$((MB << 20))
	# guest side (no double quotes: they delimit kvmlab.run). The transfers
	# sit between XFER-START and XFER-END, with quiet seconds around them
	# for the host to read the counters.
	# printk level 1: kernel lines would be console (port I/O) exits in the window
	g="echo 1 >/proc/sys/kernel/printk; echo XFER-START; sleep 3"
	g="$g; nc $HOST 7002 </dev/null | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; echo W=\$?"
	g="$g; echo FLUSHES=\$(awk '{print \$16}' /sys/block/vda/stat)"
	g="$g; echo 3 >/proc/sys/vm/drop_caches; head -c $B /dev/vda | nc $HOST 7001; echo UP=\$?"
	g="$g; echo XFER-END; sleep 3"
	g="$g; blkdiscard -o $((B / 2)) -l $((B / 2)) /dev/vda; echo BD=\$?; sync"
	g="$g; echo DMAX=\$(cat /sys/block/vda/queue/discard_max_bytes)"
	cmdline="console=ttyS0 reboot=k quiet kvmlab.ip=$GUEST/24 kvmlab.run=\"$g\""

	out=$work/console-$aio
	nsx timeout -s QUIT -k 10 400 "$VM" run --stats --mem 256M --tap tap0 --disk "$img,aio=$aio" \
		--cmdline "$cmdline" --console "file:$out" >"$work/vm-$aio.err" 2>&1 &
	vmjob=$!
	t_defer "kill $vmjob 2>/dev/null"

	# the VM's debugfs directory: <pid>-<vm fd> (pgrep also finds timeout)
	vmdir=
	for _ in $(seq 600); do
		for pid in $(pgrep -f "console file:$out"); do
			[ -z "$vmdir" ] && vmdir=$(ls -d $dbg/"$pid"-* 2>/dev/null | head -1)
		done
		[ -n "$vmdir" ] && grep -q "^XFER-START" "$out" 2>/dev/null && break
		sleep 0.5
	done
	# all three or nothing: a VM already gone (its debugfs directory
	# with it) leaves the sample empty, and the exit count is skipped
	sample() {
		local a b
		a=$(cat "$vmdir/io_exits" 2>/dev/null) && b=$(cat "$vmdir/mmio_exits" 2>/dev/null) &&
			echo "$a $b $(date +%s.%N)"
	}
	if [ -n "$vmdir" ] && [ -r "$vmdir/mmio_exits" ]; then
		sleep 1 # inside the guest's quiet seconds
		read -r io0 mmio0 t0 < <(sample)
		# anchored: the kernel echoes its command line, markers included
		# (a guest that died, e.g. a triple fault, ends the wait)
		# A guest that stops moving anything (the test host's stalls:
		# README "The test host") gets SIGQUIT after 90 s instead of
		# the 400 s watchdog: its report shows where it stood.
		local sender
		sender=$(pgrep -f "^ncat -l $HOST 7002" | head -1)
		t_stall_reset
		for _ in $(seq 800); do
			grep -q "^XFER-END" "$out" && break
			kill -0 $vmjob 2>/dev/null || break
			sleep 0.5
			if t_stalled 180 "$out" "$img" "$work/up-$aio" "pid:${sender:-0}"; then
				echo "# io[$aio]: nothing moved for 90 s (console, image, both transfers): SIGQUIT to the VMM"
				t_vm_quit "$out"
				break
			fi
		done
		read -r io1 mmio1 t1 < <(sample)
		# how KVM maps guest RAM (nested-page entries by size)
		p4k=$(cat "$vmdir/pages_4k" 2>/dev/null) p2m=$(cat "$vmdir/pages_2m" 2>/dev/null)
	else
		t_skip "io[$aio]: exit counts" "no KVM debugfs for the VM (${vmdir:-not found})"
	fi
	# the kernel's view of the VMM while the guest works: an io_uring fd
	# with aio=uring, none with aio=thread
	nring=$(for pid in $(pgrep -f "console file:$out"); do ls -l /proc/$pid/fd 2>/dev/null; done | grep -c 'anon_inode:\[io_uring\]')
	wait $vmjob
	rc=$?
	kill $l1 $l2 2>/dev/null
	echo "# io[$aio]: VM done after ${SECONDS}s of this script"
	if t_powered_off $rc "$work/vm-$aio.err"; then t_ok "io[$aio]: guest ran and powered off"; else
		t_fail "io[$aio]: guest ran and powered off" "exit $rc: $(tail -3 "$work/vm-$aio.err" | tr '\n' ' ')"
		t_vm_report "$work/vm-$aio.err"; fi

	want=0; [ $aio = uring ] && want=1
	[ "$nring" = $want ] && t_ok "io[$aio]: $nring io_uring fd in the VMM (/proc/PID/fd)" ||
		t_fail "io[$aio]: $want io_uring fd in the VMM (/proc/PID/fd)" "found $nring"
	has "io[$aio]: guest wrote $MB MiB from the tap onto the disk" "^W=0"
	has "io[$aio]: guest sent $MB MiB read from the disk" "^UP=0"
	got=$(md5sum <"$work/up-$aio" | cut -d' ' -f1)
	[ "$got" = "$wantmd5" ] && t_ok "io[$aio]: $MB MiB disk->tap arrive intact on the host (md5)" ||
		t_fail "io[$aio]: $MB MiB disk->tap arrive intact on the host (md5)" "$(stat -c %s "$work/up-$aio") bytes"
	# the second half was discarded after the transfers: zeros now
	h1=$(head -c $((B / 2)) "$img" | md5sum) h2=$(head -c $((B / 2)) "$work/down" | md5sum)
	z1=$(tail -c +$((B / 2 + 1)) "$img" | head -c $((B / 2)) | md5sum) z2=$(head -c $((B / 2)) /dev/zero | md5sum)
	[ "$h1" = "$h2" ] && t_ok "io[$aio]: the image file holds what the guest wrote (md5 of the kept half)" ||
		t_fail "io[$aio]: the image file holds what the guest wrote (md5 of the kept half)"
	[ "$z1" = "$z2" ] && t_ok "io[$aio]: the discarded half reads as zeros on the host" ||
		t_fail "io[$aio]: the discarded half reads as zeros on the host"
	fl=$(sed -n 's/^FLUSHES=\([0-9]*\).*/\1/p' "$out")
	[ "${fl:-0}" -gt 0 ] && t_ok "io[$aio]: the guest's fsync after the writes sent FLUSH requests (/sys/block/vda/stat: $fl)" ||
		t_fail "io[$aio]: the guest's fsync after the writes sent FLUSH requests" "flushes=${fl:-?}"
	has "io[$aio]: guest blkdiscard succeeded" "^BD=0"
	grep -q '^DMAX=[1-9]' "$out" && t_ok "io[$aio]: the guest sees a discard-capable disk" ||
		t_fail "io[$aio]: the guest sees a discard-capable disk" "$(grep DMAX "$out")"
	alloc=$(( $(stat -c '%b * %B' "$img") ))
	lo=$(( (B / 2) - (2 << 20) )) hi=$(( (B / 2) + (2 << 20) ))
	if [ $alloc -ge $lo ] && [ $alloc -le $hi ]; then
		t_ok "io[$aio]: discarding half of it left holes: $((alloc >> 20)) MiB allocated of $((MB * 2)) (stat)"
	else
		t_fail "io[$aio]: discarding half of it left holes" "allocated $alloc bytes, want ~$((B / 2))"
	fi
	[ "$(stat -c %s "$img")" = $((MB * 2 << 20)) ] && t_ok "io[$aio]: image size unchanged" ||
		t_fail "io[$aio]: image size unchanged"

	# Userspace exits while 4 x $MB MiB moved (net rx, blk write, blk read,
	# net tx): with ioeventfd and irqfd only stray ones are left.
	if [ -n "${mmio0:-}" ] && [ -n "${mmio1:-}" ]; then
		dio=$((io1 - io0)) dmmio=$((mmio1 - mmio0))
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
		per=$(awk -v n=$((dio + dmmio)) -v mb=$((MB * 4)) 'BEGIN { printf "%.2f", n / mb }')
		echo "# io[$aio]: during the transfers ($secs s, $((MB * 4)) MiB through net+blk): io_exits $dio, mmio_exits $dmmio ($per per MiB)"
		# virtio is MMIO: its kicks would be mmio_exits. The port I/O left is
		# the guest's console (~30 characters of W=/FLUSHES=/UP=/XFER-END
		# lines printed inside the window, a few exits per character)
		if [ $dmmio -le 16 ] && [ $dio -le 256 ]; then
			t_ok "io[$aio]: userspace exits near zero during the transfers (mmio $dmmio, io $dio for $((MB * 4)) MiB)"
		else
			t_fail "io[$aio]: userspace exits near zero during the transfers" "mmio $dmmio, io $dio for $((MB * 4)) MiB"
		fi
	fi
	# Guest RAM is mapped 2 MiB-aligned with MADV_HUGEPAGE, so KVM backs
	# it with 2 MiB nested pages where THP gave the host huge pages; a
	# mapping misaligned by even 4 KiB leaves every entry at 4 KiB.
	if [ -z "$p2m" ]; then
		t_skip "io[$aio]: 2 MiB nested pages" "no pages_2m in KVM's debugfs"
	elif [ "$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)" = "always madvise [never]" ]; then
		t_skip "io[$aio]: 2 MiB nested pages" "THP is off on this host"
	elif [ "$p2m" -gt 0 ]; then
		t_ok "io[$aio]: KVM maps guest RAM with 2 MiB nested pages ($p2m of them, $p4k at 4 KiB)"
	else
		t_fail "io[$aio]: KVM maps guest RAM with 2 MiB nested pages" "pages_2m 0, pages_4k $p4k"
	fi
	if grep -q 'exit counts by reason (KVM binary stats' "$work/vm-$aio.err" &&
	   grep -Eq '^ +mmio_exits +[0-9]+$' "$work/vm-$aio.err" && grep -Eq '^ +userspace_exits +[0-9]+$' "$work/vm-$aio.err"; then
		t_ok "io[$aio]: --stats printed KVM's exit counts by reason"
	else
		t_fail "io[$aio]: --stats printed KVM's exit counts by reason" "$(tail -5 "$work/vm-$aio.err" | tr '\n' ' ')"
	fi
	sed -n '/exit counts by reason/,$p' "$work/vm-$aio.err" | sed 's/^/# /'
}

# both backends stay tested: the I/O thread and io_uring
# 64 MiB through the default one (thread); 16 MiB through io_uring, still
# hundreds of kicks and interrupts (each an exit without ioeventfd/irqfd):
# more would only cost minutes under TCG
one thread 64
one uring 16
t_tails_on_fail 25 "$work"/console-* "$work"/vm-*.err
t_finish
