/* The VMM core's one entry point into the PCI devices: it hands over the
 * buses, a guest-memory view and interrupt callbacks, nothing else. */
#ifndef KVMLAB_VMM_DEVICES_H
#define KVMLAB_VMM_DEVICES_H
#include <stdint.h>
#include <stdio.h>
#include "bus.h"
#include "dhcp.h"
#include "ra.h"
#include "guestmem.h"
#include "irq.h"
#include "util.h"

struct exit_latch;

struct dev_env {
	struct bus *pio, *mmio;
	const struct gmem *gm;
	struct dev_irq_ops irq;
	struct exit_latch *exit; /* what pvpanic raises */
};

#define DEV_NET_QUEUES_MAX 8 /* virtio-net queue pairs (VNET_MAX_PAIRS) */

enum { DEV_VHOST_AUTO, DEV_VHOST_OFF, DEV_VHOST_ON };
/* virtio-blk backend. auto: the one that measured better for the cache
 * mode (bench/blk-host.sh, bench/io.sh): the I/O thread for writeback,
 * where every request is a page-cache copy and io_uring only adds cost;
 * io_uring for cache=none, where requests wait on the device and only
 * io_uring keeps several in flight (else the thread, one line says so) */
enum { DEV_AIO_AUTO, DEV_AIO_THREAD, DEV_AIO_URING };

#define DEV_DISKS_MAX 8 /* virtio-blk devices */
#define DEV_NICS_MAX 4  /* virtio-net devices */
#define DEV_ADDR6_MAX 4 /* IPv6 addresses kept per NIC (devices_nic_addr6) */
#define DEV_VSOCK_CID_MIN 3u           /* 0-2: hypervisor, local, host */
#define DEV_VSOCK_CID_MAX 0xfffffffeu  /* U32_MAX is VMADDR_CID_ANY */

/* One virtio-blk device (a --disk). */
struct dev_disk {
	const char *path;
	int readonly;
	int direct;            /* cache=none: O_DIRECT */
	int aio;               /* DEV_AIO_* */
};

/* One virtio-net device (--net/--tap, or a --nic). */
struct dev_nic {
	int tap_fds[DEV_NET_QUEUES_MAX]; /* one tap queue per queue pair */
	unsigned queues;       /* 1..DEV_NET_QUEUES_MAX */
	uint8_t mac[6];
	const struct dhcp_lease *dhcp; /* non-NULL: answer the guest's DHCP
					* on this NIC from this lease (copied) */
	const struct ra_cfg *ra; /* non-NULL: answer the guest's IPv6 router
				  * solicitations, and advertise every
				  * RA_INTERVAL_S (copied) */
};

struct sock_fprog;
/* PCI slots (or virtio-mmio windows) follow this order: disks first
 * (vda, vdb, ... whatever the NICs), then the NICs (eth0, eth1, ...),
 * then vsock, then the entropy device, then pvpanic (PCI only). */
struct dev_cfg {
	struct dev_disk disks[DEV_DISKS_MAX];
	unsigned ndisks;
	struct dev_nic nics[DEV_NICS_MAX];
	unsigned nnics;
	int vhost;             /* DEV_VHOST_*: vhost-net for every NIC */
	int rng;               /* a virtio-rng device */
	int pvpanic;           /* a pvpanic-pci device (needs dev_env.exit) */
	uint64_t vsock_cid;    /* non-zero: a virtio-vsock device with this CID */
	const struct sock_fprog *dhcp_bpf; /* with a NIC's dhcp: what a DHCP
					    * request is (dhcp_tap_open's match) */
	int mmio;              /* virtio devices on virtio-mmio, not PCI (pvpanic
				* stays on PCI); same order, devices_mmio_count */
};

/* How many virtio-mmio windows cfg needs (0 on PCI): the firmware tables
 * and the command line describe devices 0..n-1 before they exist. */
unsigned devices_mmio_count(const struct dev_cfg *cfg);

/* Registers PCI conf1 ports + host bridge + devices on the buses; starts
 * device threads. Call after the buses exist and before vCPUs run. */
int devices_setup(const struct dev_env *env, const struct dev_cfg *cfg, struct err *e) WUR;
void devices_stop(void);
/* The IPv6 addresses inside its ra prefix that NIC nic's guest has
 * claimed by duplicate address detection (ra_dad_target), newest first:
 * at most max (and DEV_ADDR6_MAX) into out, the count returned. What a
 * guest claimed it may have given up since; 0 for a NIC without ra. Any
 * thread. */
unsigned devices_nic_addr6(unsigned nic, uint8_t (*out)[16], unsigned max);
/* For --stats: each device's MSI-X mask counts (vpci_msix_stats). */
void devices_stats_print(FILE *f);
/* Each device's transport and ring state on f (SIGQUIT, SIGUSR2): a stuck
 * queue shows who owes whom. Call while the devices are up; waits at most
 * wait_ms for each lock a device thread holds. */
void devices_dump(FILE *f, unsigned wait_ms);
#endif
