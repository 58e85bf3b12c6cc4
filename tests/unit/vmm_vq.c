/* Split-ring walker against crafted, hostile rings in flat memory. */
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "t.h"
#include "virtqueue.h"

#define MEM (64u * 1024)
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define IND 0x4000u
#define BUF 0x8000u

static uint8_t *mem;
static struct gmem gm;
static struct vq q;
static uint16_t aidx;

static void desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
	memcpy(mem + table + 16u * i, &d, sizeof(d));
}

static void avail(uint16_t head)
{
	memcpy(mem + AVAIL + 4 + 2u * (aidx % q.size), &head, 2);
	aidx++;
	memcpy(mem + AVAIL + 2, &aidx, 2);
}

static void setup(uint16_t size, bool event_idx, bool indirect)
{
	memset(mem, 0, MEM);
	aidx = 0;
	int rc = vq_enable(&q, &gm, size, DESC, AVAIL, USED, event_idx, indirect);
	if (rc)
		abort();
	q.name = "test";
}

static uint16_t used_idx(void)
{
	uint16_t v;
	memcpy(&v, mem + USED + 2, 2);
	return v;
}

int main(void)
{
	struct vq_chain *c = malloc(sizeof(*c));
	mem = aligned_alloc(4096, MEM);
	gmem_init_flat(&gm, mem, MEM);

	/* --- enable validation --- */
	CHECK_EQ(vq_enable(&q, &gm, 0, DESC, AVAIL, USED, 0, 0), -EINVAL, "size 0 refused");
	CHECK_EQ(vq_enable(&q, &gm, 3, DESC, AVAIL, USED, 0, 0), -EINVAL, "size not a power of two refused");
	CHECK_EQ(vq_enable(&q, &gm, 512, DESC, AVAIL, USED, 0, 0), -EINVAL, "size above VQ_MAX_SIZE refused");
	CHECK_EQ(vq_enable(&q, &gm, 8, DESC + 8, AVAIL, USED, 0, 0), -EINVAL, "misaligned desc table refused");
	CHECK_EQ(vq_enable(&q, &gm, 8, DESC, AVAIL + 1, USED, 0, 0), -EINVAL, "misaligned avail refused");
	CHECK_EQ(vq_enable(&q, &gm, 8, DESC, AVAIL, USED + 2, 0, 0), -EINVAL, "misaligned used refused");
	CHECK_EQ(vq_enable(&q, &gm, 256, MEM - 16 * 128, AVAIL, USED, 0, 0), -EFAULT, "desc table past RAM refused");
	CHECK_EQ(vq_enable(&q, &gm, 8, 0xfffffffffffffff0ull, AVAIL, USED, 0, 0), -EFAULT, "desc gpa near UINT64_MAX refused");
	CHECK_EQ(vq_enable(&q, &gm, 8, DESC, AVAIL, MEM - 8, 0, 0), -EFAULT, "used ring past RAM refused");
	CHECK(!q.ready, "queue stays disabled after a refused enable");
	int dummy;
	CHECK_EQ(vq_pop(&q, c), 0, "pop on a disabled queue finds nothing");
	(void)dummy;

	/* --- a good chain: 2 readable, 1 writable --- */
	setup(8, false, false);
	CHECK_EQ(vq_pop(c ? &q : &q, c), 0, "empty ring pops nothing");
	desc(DESC, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF + 100, 50, VRING_DESC_F_NEXT, 2);
	desc(DESC, 2, BUF + 200, 64, VRING_DESC_F_WRITE, 0);
	avail(0);
	CHECK_EQ(vq_pending(&q), 1, "one chain pending");
	CHECK_EQ(vq_pop(&q, c), 1, "good chain pops");
	CHECK_EQ(c->head, 0, "head is 0");
	CHECK_EQ(c->nr_out, 2, "two readable segments");
	CHECK_EQ(c->nr_in, 1, "one writable segment");
	CHECK_EQ(c->out_len, 66, "readable bytes");
	CHECK_EQ(c->in_len, 64, "writable bytes");
	CHECK(c->iov[1].iov_base == mem + BUF + 100, "host pointer maps the gpa");
	CHECK_EQ(vq_pop(&q, c), 0, "ring drained");
	vq_push(&q, c->head, 64);
	CHECK_EQ(used_idx(), 1, "used idx published");
	uint32_t ue[2];
	memcpy(ue, mem + USED + 4, 8);
	CHECK(ue[0] == 0 && ue[1] == 64, "used element holds id and len");
	CHECK(vq_should_signal(&q), "no suppression: signal");
	uint16_t noint = VRING_AVAIL_F_NO_INTERRUPT;
	memcpy(mem + AVAIL, &noint, 2);
	vq_push(&q, 0, 0);
	CHECK(!vq_should_signal(&q), "NO_INTERRUPT honoured");

	/* --- fill/flush: elements written first, published with one index
	 * store (a frame over merged rx buffers); the ring wraps --- */
	setup(4, false, false);
	for (uint16_t i = 0; i < 3; i++)
		vq_push(&q, i, 1); /* used->idx 3: the next fills wrap */
	vq_fill(&q, 0, 1, 100);
	vq_fill(&q, 1, 2, 200);
	CHECK_EQ(used_idx(), 3, "filled elements are not published yet");
	vq_flush(&q, 2);
	CHECK_EQ(used_idx(), 5, "flush publishes both at once");
	uint32_t w[4];
	memcpy(w, mem + USED + 4 + 8 * 3, 8);      /* slot 3 */
	memcpy(w + 2, mem + USED + 4 + 8 * 0, 8);  /* slot 0: wrapped */
	CHECK(w[0] == 1 && w[1] == 100 && w[2] == 2 && w[3] == 200,
	      "elements in ring order across the wrap");
	vq_flush(&q, 0);
	CHECK_EQ(used_idx(), 5, "flush of none publishes nothing");

	/* --- unpop gives the same chain back --- */
	setup(8, false, false);
	desc(DESC, 3, BUF, 32, VRING_DESC_F_WRITE, 0);
	avail(3);
	CHECK_EQ(vq_pop(&q, c), 1, "pop before unpop");
	vq_unpop(&q, 1);
	CHECK(vq_pop(&q, c) == 1 && c->head == 3, "unpop returns the chain to the ring");

	/* --- zero-length descriptors are dropped, not mapped --- */
	setup(8, false, false);
	desc(DESC, 0, 0xffffffffffff0000ull, 0, VRING_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 8, 0, 0);
	avail(0);
	CHECK(vq_pop(&q, c) == 1 && c->nr_out == 1 && c->out_len == 8,
	      "zero-length descriptor skipped, rest of chain kept");

	/* --- malformed rings break the queue, once, without touching memory outside --- */
	setup(8, false, false);
	desc(DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "descriptor loop detected");
	CHECK(q.broken, "queue marked broken");
	avail(0);
	CHECK_EQ(vq_pop(&q, c), 0, "broken queue stays stopped");
	vq_push(&q, 0, 0);
	CHECK_EQ(used_idx(), 0, "broken queue publishes nothing");

	setup(8, false, false);
	desc(DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 0); /* self-loop */
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "self-loop detected");

	setup(8, false, false);
	avail(8);
	CHECK_EQ(vq_pop(&q, c), -EIO, "head index past the table");

	setup(8, false, false);
	desc(DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 9);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "next index past the table");

	setup(8, false, false);
	desc(DESC, 0, 0xfffffffffffffff0ull, 32, 0, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "address+len overflowing 64 bits");

	setup(8, false, false);
	desc(DESC, 0, MEM - 4, 8, 0, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "buffer straddling the end of RAM");

	setup(8, false, false);
	desc(DESC, 0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(DESC, 1, BUF, 8, 0, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "readable after writable refused");

	setup(8, false, false);
	aidx = 9;
	memcpy(mem + AVAIL + 2, &aidx, 2);
	CHECK_EQ(vq_pop(&q, c), -EIO, "avail idx more than a queue ahead");

	/* a chain longer than the queue can only revisit a descriptor */
	setup(4, false, false);
	for (uint16_t i = 0; i < 4; i++)
		desc(DESC, i, BUF, 8, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % 4));
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "chain longer than the queue");

	/* --- indirect --- */
	setup(8, false, true);
	desc(IND, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	desc(IND, 1, BUF + 16, 16, VRING_DESC_F_NEXT, 2);
	desc(IND, 2, BUF + 32, 100, VRING_DESC_F_WRITE, 0);
	desc(DESC, 5, IND, 48, VRING_DESC_F_INDIRECT, 0);
	avail(5);
	CHECK(vq_pop(&q, c) == 1 && c->head == 5 && c->nr_out == 2 && c->nr_in == 1 &&
	      c->in_len == 100, "indirect chain walked");

	setup(8, false, false);
	desc(DESC, 0, IND, 48, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect without INDIRECT_DESC refused");

	setup(8, false, true);
	desc(IND, 0, IND + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	desc(DESC, 0, IND, 16, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "nested indirect refused");

	setup(8, false, true);
	desc(DESC, 0, IND, 40, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect length not a multiple of 16");

	setup(8, false, true);
	desc(DESC, 0, MEM - 32, 64, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect table past RAM");

	setup(8, false, true);
	desc(DESC, 0, IND, 16u * 300, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect table longer than VQ_MAX_SEGS");

	setup(8, false, true);
	desc(IND, 0, BUF, 8, VRING_DESC_F_NEXT, 2); /* table has 2 entries */
	desc(DESC, 0, IND, 32, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect next past its table");

	setup(8, false, true);
	desc(IND, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	desc(IND, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	desc(DESC, 0, IND, 32, VRING_DESC_F_INDIRECT, 0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "loop inside an indirect table");

	setup(8, false, true);
	desc(DESC, 0, IND, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), -EIO, "indirect with NEXT refused");

	/* --- EVENT_IDX --- */
	setup(8, true, false);
	desc(DESC, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	uint16_t ev = 5; /* used_event: interrupt once used idx passes 5 */
	memcpy(mem + AVAIL + 4 + 2 * 8, &ev, 2);
	unsigned sig = 0;
	for (int i = 0; i < 8; i++) {
		avail(0);
		CHECK_EQ(vq_pop(&q, c), 1, "event_idx pop %d", i);
		uint16_t ae;
		memcpy(&ae, mem + USED + 4 + 8 * 8, 2);
		CHECK_EQ(ae, i + 1, "avail_event follows consumption (%d)", i);
		vq_push(&q, 0, 8);
		if (vq_should_signal(&q))
			sig++;
	}
	/* first decision always signals (idx 1), then only crossing used_event 5 -> idx 6 */
	CHECK_EQ(sig, 2, "used_event suppresses all but the crossing");
	CHECK(!vq_arm(&q), "arm with nothing new");
	uint16_t ae;
	memcpy(&ae, mem + USED + 4 + 8 * 8, 2);
	CHECK_EQ(ae, aidx, "arm asks for a kick past the current avail idx");

	/* avail/used indices wrap at 65536 */
	setup(4, false, false);
	q.last_avail = 65535;
	aidx = 65535;
	desc(DESC, 0, BUF, 8, 0, 0);
	avail(0);
	avail(0);
	CHECK(vq_pop(&q, c) == 1 && vq_pop(&q, c) == 1 && vq_pop(&q, c) == 0,
	      "avail index wraps around 16 bits");

	/* --- the stuck-queue report: the driver's indexes and ours --- */
	setup(8, true, false);
	desc(DESC, 0, BUF, 8, 0, 0);
	avail(0);
	avail(0);
	avail(0);
	CHECK_EQ(vq_pop(&q, c), 1, "report: one popped");
	vq_push(&q, c->head, 0);
	uint16_t ue16 = 7;
	memcpy(mem + AVAIL + 4 + 2 * 8, &ue16, 2);
	char rep[256] = { 0 };
	FILE *rf = fmemopen(rep, sizeof(rep) - 1, "w");
	vq_dump(&q, rf);
	fclose(rf);
	CHECK(strstr(rep, "size 8, avail 3 (flags 0x0), taken 1, used 1 (ours 1), used_event 7, avail_event 1,") != NULL,
	      "report: avail 3, taken 1, used 1, the driver's used_event, our avail_event");
	CHECK(rep[strlen(rep) - 1] == '\n' && !strchr(rep, '\n')[1], "report: one line");
	vq_reset(&q);
	rf = fmemopen(rep, sizeof(rep) - 1, "w");
	vq_dump(&q, rf);
	fclose(rf);
	CHECK(!strcmp(rep, "off\n"), "report: a disabled queue is 'off'");

	/* --- iov helpers --- */
	struct iovec iov[3] = { { mem + BUF, 3 }, { mem + BUF + 10, 4 }, { mem + BUF + 20, 5 } };
	CHECK_EQ(vq_iov_write(iov, 3, 2, "abcdefghij", 10), 10, "iov write spans segments");
	char out[16] = { 0 };
	CHECK_EQ(vq_iov_read(iov, 3, 2, out, 16), 10, "iov read stops at the end");
	CHECK(memcmp(out, "abcdefghij", 10) == 0, "iov round trip");
	CHECK_EQ(vq_iov_read(iov, 3, 50, out, 4), 0, "offset past the end reads nothing");

	free(c);
	free(mem);
	return t_done();
}
