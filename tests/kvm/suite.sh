#!/usr/bin/env bash
# Every KVM test script, in one environment whose /dev/kvm boots stock
# kernels (one test-host boot on PVM hosts): the VMM's own boot checks,
# virtio-net/blk end to end, the single-command `run --net` NAT path, and
# QEMU as a peer VMM on a kvmlab tap.
# Exit status: non-zero if any script failed.
cd "$(dirname "$0")/../.." || exit 1
rc=0
for t in all.sh virtio.sh nat.sh qemu_peer.sh shell.sh; do
	echo "# --- tests/kvm/$t"
	bash "tests/kvm/$t" || rc=1
done
exit $rc
