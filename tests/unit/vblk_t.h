/* What the virtio-blk unit tests share: the test driver, the device
 * under test and the backend picked at build time (the thread one, or
 * io_uring where a *_uring.c file defines T_VBLK_FLAGS VBLK_URING). */
#ifndef T_VBLK_H
#define T_VBLK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_blk.h"
#include "vmm_vdrv.h"

#ifndef T_VBLK_FLAGS
#define T_VBLK_FLAGS 0u
#endif

static struct td d;
static struct vblk *vb;
static unsigned t_flags = T_VBLK_FLAGS; /* a variable: no constant-operand warnings */

/* Kick queue 0 and, with an asynchronous backend, wait for what it
 * started: the checks then see the used ring as the thread backend
 * leaves it. */
static void kick(void)
{
	td_kick(&d, 0);
	vblk_complete(vb, true);
}

/* vblk_init with this file's backend; a kernel without io_uring skips. */
static int vinit(struct vblk *b, int fd, unsigned fl, uint64_t size, const char *id)
{
	vb = b;
	int rc = vblk_init(b, fd, fl | t_flags, size, id, &d.gm, &d.irq);
	if (rc && (t_flags & VBLK_URING) && (rc == -ENOSYS || rc == -EPERM)) {
		printf("ok - io_uring backend # SKIP no io_uring here (%s)\n", strerror(-rc));
		exit(0);
	}
	return rc;
}
#endif
