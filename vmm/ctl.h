/* A running VM's control endpoint, and the client side of it
 * (kvmlab-vm list, stop).
 *
 * The endpoint is a SOCK_SEQPACKET unix socket in the abstract namespace,
 * "@kvmlab-vm/NAME", with one JSON object per message each way. The
 * kernel is its only holder: it goes with the process however that ends
 * (SIGKILL included), leaves no file behind, and is scoped to the network
 * namespace as the VM's taps are, so `kvmlab-vm list` shows the VMs of
 * its own namespace. Binding it is how a name is claimed: a second VM of
 * the same name in the same namespace is refused.
 *
 * Trust: abstract sockets have no file permissions, so each side checks
 * the other's credentials (SO_PEERCRED): the VMM answers root and its
 * own user only, and a client talks only to a VMM run by root or by
 * itself.
 *
 * Requests: {"cmd":"status"}, {"cmd":"powerdown"} (the ACPI power
 * button), {"cmd":"pause"} and {"cmd":"resume"} (the vCPUs),
 * {"cmd":"quit"} (end the VM now, as Ctrl-A x). Replies:
 * {"ok":true[,"status":{...}]} or {"ok":false,"error":"..."}. A client
 * that keeps its connection open sees it close when the VMM is gone,
 * after every tap, lease and forward it made has been removed. */
#ifndef KVMLAB_VMM_CTL_H
#define KVMLAB_VMM_CTL_H
#include <jansson.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "util.h"

#define CTL_PREFIX "kvmlab-vm/"
#define CTL_NAME_MAX 63          /* as a VM name (--name) */
#define CTL_MSG_MAX 4096         /* a request; longer ones are refused */
#define CTL_CLIENTS_MAX 8        /* connections held at once; more are closed */
#define CTL_POLLFDS (1 + CTL_CLIENTS_MAX)

struct ctl_ops {
	/* the VM's description for "status": a new object (the caller
	 * frees it); NULL: out of memory */
	json_t *(*status)(void *opaque);
	/* "powerdown": 0 or -errno */
	int (*power_button)(void *opaque);
	/* "pause", "resume": 0 or -errno (-EALREADY: it is so already) */
	int (*pause)(void *opaque);
	int (*resume)(void *opaque);
	/* "quit": end the VM (by: the client's pid, for the exit note) */
	void (*quit)(void *opaque, pid_t by);
};

struct ctl;

/* "@kvmlab-vm/name" (sun_path[0] 0, the length without a NUL); -EINVAL
 * for a name of 0 or more than CTL_NAME_MAX bytes. */
int ctl_sockaddr(const char *name, struct sockaddr_un *a, socklen_t *len) WUR;

/* Bind "@kvmlab-vm/name" and listen. -EADDRINUSE (e names the pid that
 * holds it when it can be asked): a VM of that name runs here. */
int ctl_open(struct ctl **out, const char *name, const struct ctl_ops *ops, void *opaque,
	     struct err *e) WUR;
/* For the owner's poll loop: fill p (room for CTL_POLLFDS) and return
 * the count; then hand the same array back to ctl_ready. Never blocks:
 * a client that sends nothing is only held, and one that does not read
 * its reply is dropped. */
int ctl_pollfds(const struct ctl *c, struct pollfd *p);
void ctl_ready(struct ctl *c, const struct pollfd *p, int n);
/* The reply to one request of n bytes from client pid by, as ctl_ready
 * sends it: malloc'd JSON text, NULL when out of memory. For tests and
 * the fuzzer; the ops run as for a client. */
char *ctl_handle(struct ctl *c, const void *buf, size_t n, pid_t by);
/* Close every connection and the endpoint (NULL: nothing). Call last:
 * waiting clients take the close as "the VM is gone". */
void ctl_close(struct ctl *c);

/* --- client --------------------------------------------------------- */

/* Connect to VM name's endpoint and check who serves it. -ENOENT: no VM
 * of that name in this network namespace; -EPERM: it is served by a user
 * other than root or ours (e says which). *pid: the VMM's (kernel's
 * word, SO_PEERCRED). */
int ctl_connect(const char *name, int *fd, pid_t *pid, struct err *e) WUR;
/* Send {"cmd":cmd} and wait at most timeout_ms for the reply object
 * (*reply, the caller frees it). A reply with "ok":false is -EREMOTEIO
 * with its error text in e. */
int ctl_call(int fd, const char *cmd, json_t **reply, int timeout_ms, struct err *e) WUR;
/* Wait at most timeout_ms (-1: forever) for the VMM to close the
 * connection: 0 gone, -ETIMEDOUT still there. */
int ctl_wait_gone(int fd, int timeout_ms) WUR;
/* The names of the endpoints listening in this network namespace, from
 * the kernel's /proc/net/unix, sorted; free each and the array. */
int ctl_names(char ***names, size_t *n) WUR;
#endif
