#!/usr/bin/env bash
# Every KVM test script, in one environment whose /dev/kvm boots stock
# kernels (one test-host boot on PVM hosts): the VMM's own boot checks,
# virtio-net/blk end to end, the in-kernel data path (io.sh), multiqueue
# virtio-net, vhost-net, the single-command `run --net` NAT path, QEMU as a
# peer VMM on a kvmlab tap, DHCP from the VMM (udhcpc), and a Debian system
# booted from a disk on a NAT network.
# Exit status: non-zero if any script failed.
cd "$(dirname "$0")/../.." || exit 1
rc=0
for t in all.sh virtio.sh io.sh mq.sh vhost.sh nat.sh qemu_peer.sh dhcp.sh debian.sh shell.sh; do
	echo "# --- tests/kvm/$t"
	bash "tests/kvm/$t" || rc=1
done
exit $rc
