/* virtio-vsock (virtio 1.x 5.10, the socket device) backed by the host
 * kernel's vhost-vsock: AF_VSOCK sockets between the host and the guest,
 * no network involved. The kernel moves every packet: once the driver is
 * running, the rx and tx rings go to /dev/vhost-vsock with the kick
 * eventfds KVM writes and the vectors' irqfds (vpci_queue_backend), and a
 * reset takes them back. The event queue stays here and stays quiet:
 * events only tell of a transport reset (migration), which never happens. */
#ifndef KVMLAB_VMM_VIRTIO_VSOCK_H
#define KVMLAB_VMM_VIRTIO_VSOCK_H
#include <stdbool.h>
#include <stdint.h>
#include "virtio_pci.h"

#define VVSOCK_QUEUE_SIZE 128
#define VVSOCK_CID_MIN 3              /* 0-2: hypervisor, local, host */
#define VVSOCK_CID_MAX 0xfffffffeu    /* U32_MAX is VMADDR_CID_ANY */

struct vvsock {
	struct vpci vpci;  /* first: the PCI layer hands us back this pointer */
	int fd;            /* /dev/vhost-vsock */
	uint64_t cid;
	uint64_t backend_features;
	bool running;      /* the rings are the kernel's (v->lock) */
	bool ring_set[2];  /* rx, tx given to the kernel: take them back */
	bool logged;
};

/* Opens /dev/vhost-vsock and claims cid for this VM (one line in e when
 * that fails: no vhost-vsock, or the CID is taken). */
int vvsock_init(struct vvsock *s, uint64_t cid, const struct gmem *gm,
		const struct dev_irq_ops *irq, struct err *e) WUR;
void vvsock_destroy(struct vvsock *s);
#endif
