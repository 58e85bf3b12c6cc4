/* MSI-X masking for interrupts the VMM does not write itself: a backend
 * (vhost's worker) that writes an eventfd straight into KVM. Against a
 * fake KVM (an irqfd is an eventfd nobody reads: its count is what the
 * guest got) and a fake backend that writes its call fd under a lock that
 * set_call also takes, as vhost swaps its call fd under the ring's mutex.
 * Checked: a masked vector's backend writes a hold fd, shown in the PBA
 * and sent once at the unmask; irqfds are never deassigned; and, with a
 * writer thread hammering while the vector is masked and unmasked
 * thousands of times, nothing reaches the guest while masked and nothing
 * written while masked is left behind at the unmask. */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "t.h"
#include "kvm.h"
#include "virtio_pci.h"
#include "vmm_vdrv.h"

#define B(n) (1ull << (n))
#define ROUNDS 4000

static struct {
	int routes, irqfds, deassigned;
} K;

static int f_route(void *o, int gsi, uint64_t addr, uint32_t data)
{
	(void)o, (void)addr, (void)data;
	return gsi < 0 ? (int)KVM_GSI_MSI_BASE + K.routes++ : gsi;
}

static void f_route_free(void *o, int gsi) { (void)o, (void)gsi; }

static int f_irqfd(void *o, unsigned gsi, int fd, int rfd, bool assign)
{
	(void)o, (void)gsi, (void)fd, (void)rfd;
	if (assign)
		K.irqfds++;
	else
		__atomic_add_fetch(&K.deassigned, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* the fake backend: one ring (queue 0) */
static struct {
	pthread_mutex_t lock; /* vhost's vq->mutex */
	int fd, calls;
	uint64_t held, direct; /* writes to the hold fd / to the irqfd */
	int hold_fd;           /* to tell the two apart */
	bool stop;
} be = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .hold_fd = -1 };

static void be_set_call(void *dev, unsigned q, int fd)
{
	(void)dev;
	if (q != 0)
		return;
	pthread_mutex_lock(&be.lock);
	be.fd = fd;
	be.calls++;
	pthread_mutex_unlock(&be.lock);
}

static void be_write(void)
{
	uint64_t one = 1;
	pthread_mutex_lock(&be.lock);
	/* a worker in the middle of a batch: the switch waits for it */
	sched_yield();
	if (be.fd >= 0 && write(be.fd, &one, 8) == 8)
		__atomic_add_fetch(be.fd == be.hold_fd ? &be.held : &be.direct, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&be.lock);
}

static void *be_thread(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&be.stop, __ATOMIC_SEQ_CST)) {
		be_write();
		sched_yield();
	}
	return NULL;
}

/* our own signals on queue 1 (vector 1), from another thread */
static struct vpci *sig_v;
static uint64_t sig_n;
static bool sig_stop;
static void *sig_thread(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&sig_stop, __ATOMIC_SEQ_CST)) {
		vpci_signal(sig_v, 1);
		__atomic_add_fetch(&sig_n, 1, __ATOMIC_SEQ_CST);
		sched_yield();
	}
	return NULL;
}

static const struct vpci_ops ops = { .set_call = be_set_call };

static uint64_t efd_take(int fd)
{
	uint64_t c = 0;
	if (read(fd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		return 0;
	return c;
}

static bool efd_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

static void vec_mask(struct td *d, unsigned vec, int on)
{
	td_wr(d, 0x4000 + 16 * vec + 12, on ? 1 : 0, 4);
}

/* spin until *ctr passes was (the other thread wrote while we wait) */
static bool wait_past(uint64_t *ctr, uint64_t was)
{
	for (int i = 0; i < 20000; i++) {
		if (__atomic_load_n(ctr, __ATOMIC_SEQ_CST) > was)
			return true;
		sched_yield();
	}
	return false;
}

int main(void)
{
	struct td d;
	td_mem_init(&d);
	d.irq.msi_route = f_route;
	d.irq.msi_route_free = f_route_free;
	d.irq.irqfd = f_irqfd;
	struct vpci *v = calloc(1, sizeof(*v));
	CHECK_EQ(vpci_init(v, 1, 0x020000, B(VIRTIO_F_VERSION_1), 2, 64, 0, &ops, NULL, &d.gm,
			   &d.irq), 0, "a two-queue device with set_call");
	d.v = v;
	uint32_t bar = 0xc0000000u;
	memcpy(v->pci.cfg + 0x10, &bar, 4);
	v->pci.cfg[4] |= 2;
	vpci_set_slot(v, 1);
	struct event_loop ev;
	struct err er;
	CHECK_EQ(event_init(&ev, &er), 0, "event loop");
	CHECK_EQ(vpci_start(v, &ev, &er), 0, "vpci_start");
	td_up(&d, B(VIRTIO_F_VERSION_1), 2, 1);

	/* --- the sequences, one step at a time --- */
	CHECK_EQ(vpci_queue_backend(v, 0, true), 0, "the backend takes queue 0's interrupts");
	int call = v->vec[0].call_fd, hold = v->vec[0].hold_fd;
	be.hold_fd = hold;
	CHECK(call >= 0 && hold >= 0 && hold != call, "vector 0 has an irqfd and a hold fd");
	CHECK(be.fd == call && be.calls == 1, "unmasked: the backend writes the irqfd");
	be_write();
	CHECK_EQ(efd_take(call), 1, "... which reaches the guest");

	vec_mask(&d, 0, 1);
	CHECK(be.fd == hold && be.calls == 2, "vector mask: the backend is switched to the hold fd");
	be_write();
	be_write();
	CHECK_EQ(efd_take(call), 0, "a masked vector's backend writes reach nobody");
	CHECK(td_rd(&d, VPCI_PBA_OFF, 4) & 1, "... and show in the PBA");
	CHECK(td_rd(&d, VPCI_PBA_OFF, 4) & 1, "... and stay there (a PBA read takes nothing)");
	vec_mask(&d, 0, 0);
	CHECK(be.fd == call && be.calls == 3, "vector unmask: the backend writes the irqfd again");
	CHECK_EQ(efd_take(call), 1, "... one interrupt for the writes held while masked");
	CHECK(!(td_rd(&d, VPCI_PBA_OFF, 4) & 1) && !efd_pending(hold), "... PBA clear, hold fd empty");

	vec_mask(&d, 0, 1);
	vec_mask(&d, 0, 0);
	CHECK_EQ(efd_take(call), 0, "a mask with nothing written sends nothing at the unmask");

	td_msix_ctl(&d, 1, 1);
	CHECK(be.fd == hold, "function mask: the hold fd as well");
	be_write();
	CHECK(efd_take(call) == 0 && (td_rd(&d, VPCI_PBA_OFF, 4) & 1), "function-masked: held, in the PBA");
	td_msix_ctl(&d, 1, 0);
	CHECK(be.fd == call && efd_take(call) == 1, "function unmask: back on the irqfd, delivered once");

	vec_mask(&d, 0, 1);
	be_write();
	int calls = be.calls;
	CHECK_EQ(vpci_queue_backend(v, 0, false), 0, "the backend gives the queue back while masked");
	CHECK(td_rd(&d, VPCI_PBA_OFF, 4) & 1, "what it held is still pending");
	vec_mask(&d, 0, 0);
	CHECK(efd_take(call) == 1 && be.calls == calls, "the unmask delivers it; the stopped backend is left alone");

	vec_mask(&d, 0, 1);
	CHECK_EQ(vpci_queue_backend(v, 0, true), 0, "a backend taking a masked vector's queue");
	CHECK(be.fd == hold, "... gets the hold fd");
	vec_mask(&d, 0, 0);
	CHECK(be.fd == call && efd_take(call) == 0, "... and the irqfd at the unmask (nothing held)");
	CHECK_EQ(K.deassigned, 0, "no irqfd was deassigned by any mask");

	/* --- hammering: a backend thread on vector 0, our own signals on
	 * vector 1, both masked and unmasked ROUNDS times --- */
	vpci_signal(v, 1); /* vector 1 gets its route and irqfd */
	int call1 = v->vec[1].call_fd;
	CHECK(call1 >= 0 && efd_take(call1) == 1, "our own signal on vector 1 went through its irqfd");
	pthread_t bt, st;
	sig_v = v;
	CHECK(pthread_create(&bt, NULL, be_thread, NULL) == 0 &&
	      pthread_create(&st, NULL, sig_thread, NULL) == 0, "writer threads");
	unsigned early = 0, lost = 0, stranded = 0, pba_miss = 0, idle = 0;
	uint64_t got = 0;
	for (int r = 0; r < ROUNDS && idle < ROUNDS / 10; r++) {
		vec_mask(&d, 0, 1);
		vec_mask(&d, 1, 1);
		/* whatever came before the mask was allowed */
		got += efd_take(call) + efd_take(call1);
		uint64_t h = __atomic_load_n(&be.held, __ATOMIC_SEQ_CST);
		uint64_t s = __atomic_load_n(&sig_n, __ATOMIC_SEQ_CST);
		/* sig_n counts after vpci_signal returns: one more means one
		 * signal ran entirely after the mask */
		/* one round in three flips the mask with no wait at all: the
		 * writers race the switches */
		bool wrote = false;
		if (r % 3) {
			wrote = wait_past(&be.held, h) && wait_past(&sig_n, s + 1);
			if (!wrote)
				idle++;
		}
		if (efd_take(call) || efd_take(call1))
			early++;
		if (wrote && (td_rd(&d, VPCI_PBA_OFF, 4) & 3) != 3)
			pba_miss++;
		vec_mask(&d, 0, 0);
		vec_mask(&d, 1, 0);
		if (efd_pending(hold))
			stranded++;
		uint64_t c0 = efd_take(call), c1 = efd_take(call1);
		if (wrote && (!c0 || !c1))
			lost++;
		got += c0 + c1;
		/* and one in three lets the backend write the irqfd first */
		if (r % 3 == 2 && !wait_past(&be.direct, __atomic_load_n(&be.direct, __ATOMIC_SEQ_CST)))
			idle++;
	}
	__atomic_store_n(&be.stop, true, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sig_stop, true, __ATOMIC_SEQ_CST);
	pthread_join(bt, NULL);
	pthread_join(st, NULL);
	printf("# %d rounds: %llu backend writes held by a mask, %llu direct, %llu own signals, "
	       "%llu interrupts delivered, %u rounds with no write in the masked window\n",
	       ROUNDS, (unsigned long long)be.held, (unsigned long long)be.direct,
	       (unsigned long long)sig_n, (unsigned long long)got, idle);
	CHECK(idle < ROUNDS / 10, "both writers wrote inside nearly every masked window (%u idle)", idle);
	CHECK_EQ(early, 0, "nothing reached the guest while its vector was masked");
	CHECK_EQ(pba_miss, 0, "every write held back showed in the PBA");
	CHECK_EQ(lost, 0, "every masked window's writes were delivered at its unmask");
	CHECK_EQ(stranded, 0, "nothing was left in the hold fd after an unmask");
	CHECK(!efd_pending(hold) && !(td_rd(&d, VPCI_PBA_OFF, 4) & 3), "at the end: nothing pending");
	CHECK_EQ(K.deassigned, 0, "still no irqfd deassigned");

	/* a reset voids what a backend held */
	vec_mask(&d, 0, 1);
	be_write();
	td_wr(&d, 0x14, 0, 1);
	CHECK(!efd_pending(hold) && !(td_rd(&d, VPCI_PBA_OFF, 4) & 1), "reset: held writes dropped");
	calls = be.calls;
	vec_mask(&d, 0, 0);
	CHECK_EQ(be.calls, calls, "reset: the backend is no longer switched");

	event_destroy(&ev);
	vpci_destroy(v);
	free(v);
	free(d.mem);
	return t_done();
}
