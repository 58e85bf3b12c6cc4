/* One epoll thread for device fds (tap rx, virtqueue kick eventfds,
 * resample eventfds), off the vCPU threads. fds may be added before or
 * after event_start() (never removed: they live as long as the loop);
 * callbacks run on the loop's thread, one at a time. */
#ifndef KVMLAB_VMM_EVENT_H
#define KVMLAB_VMM_EVENT_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "util.h"

#define EVENT_MAX 64 /* 17 kicks + 2 taps + resample per device, with room */

typedef void (*event_cb)(void *opaque, uint32_t events);

struct event_loop {
	int epfd, stopfd;
	pthread_t thread;
	bool running;
	char name[16];     /* the thread's name (top -H, ps -T), set before event_start */
	unsigned nr; /* atomic: handlers published so far */
	struct { event_cb cb; void *opaque; int fd; uint32_t events; } h[EVENT_MAX];
};

int event_init(struct event_loop *l, struct err *e) WUR;
/* events: EPOLLIN, EPOLLET, ... */
int event_add(struct event_loop *l, int fd, uint32_t events, event_cb cb, void *opaque,
	      struct err *e) WUR;
/* Stop (pause) or resume reporting fd, which was added to l: while
 * paused, another reader (vhost) owns it. A callback already running may
 * finish. -ENOENT if fd is not l's. Any thread. */
int event_pause(struct event_loop *l, int fd, bool pause) WUR;
int event_start(struct event_loop *l, struct err *e) WUR;
/* Stop the thread (if started), wait for it, close the loop's fds. */
void event_destroy(struct event_loop *l);
#endif
