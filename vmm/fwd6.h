/* IPv6 port forwards for `kvmlab-vm run --net NET --forward`: on a
 * network with IPv6 the guest picks its own address (SLAAC), so its
 * forwards follow the address the VMM saw it claim (its duplicate
 * address detection, devices_nic_addr6). A command-line front file: it
 * calls net/, from the main loop's once-a-second tick. The forwards are
 * tied to the VM's lease, so they go with it at exit (or with the next
 * VM's reclaim after a kill -9). */
#ifndef KVMLAB_VMM_FWD6_H
#define KVMLAB_VMM_FWD6_H
#include <stdbool.h>
#include <stdint.h>
#include "net.h"
#include "util.h"

struct fwd6 {
	/* its own handle, which never waits for the namespace's lock: the
	 * main loop must not block; a busy lock is tried again next tick */
	struct kl_net *h;
	const char *net, *vm;
	const struct kl_forward *fw; /* the --forward list (IPv4 form) */
	unsigned nfw, nic;
	uint8_t to[16];     /* where the IPv6 forwards go */
	bool have;          /* they are in place, to `to` */
	uint8_t failed[16]; /* a target they could not go to: said once, not retried */
	bool has_failed;
};

/* Nothing to do (0, f->h NULL) without forwards; else its handle. */
int fwd6_start(struct fwd6 *f, const char *net, const char *vm, unsigned nic,
	       const struct kl_forward *fw, unsigned nfw) WUR;
/* Follow the guest's claims: put the forwards in place for a new target,
 * moving them off the old one. Failures are one stderr line per target. */
void fwd6_tick(struct fwd6 *f);
/* Close the handle (the forwards go with the lease). */
void fwd6_stop(struct fwd6 *f);
#endif
