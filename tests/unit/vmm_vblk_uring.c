/* vmm_vblk.c again, every request through the io_uring backend. */
#include "virtio_blk.h"
#define T_VBLK_FLAGS VBLK_URING
#include "vmm_vblk.c"
