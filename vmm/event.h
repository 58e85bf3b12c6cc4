/* One epoll thread for device fds (tap rx), off the vCPU threads.
 * Register every fd before event_start(); callbacks run on the loop's
 * thread, one at a time. */
#ifndef KVMLAB_VMM_EVENT_H
#define KVMLAB_VMM_EVENT_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "util.h"

#define EVENT_MAX 24 /* virtio-net: 8 pairs x (tap queue + kick), plus room */

typedef void (*event_cb)(void *opaque, uint32_t events);

struct event_loop {
	int epfd, stopfd;
	pthread_t thread;
	bool running;
	unsigned nr;
	struct { event_cb cb; void *opaque; } h[EVENT_MAX];
};

int event_init(struct event_loop *l, struct err *e) WUR;
/* events: EPOLLIN, EPOLLET, ... */
int event_add(struct event_loop *l, int fd, uint32_t events, event_cb cb, void *opaque,
	      struct err *e) WUR;
int event_start(struct event_loop *l, struct err *e) WUR;
/* Stop the thread (if started), wait for it, close the loop's fds. */
void event_destroy(struct event_loop *l);
#endif
