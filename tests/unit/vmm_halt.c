/* halt.c's watch against fake vCPUs: when it probes, what answers it
 * needs, and that one vCPU running or silent resets it. */
#include <stdbool.h>
#include <string.h>

#include "halt.h"
#include "t.h"

#define NCPU 3

struct fake {
	int blocking;            /* what all_blocking says */
	int state[NCPU];         /* what each vCPU answers when probed */
	bool silent[NCPU];       /* probed but never answers */
	unsigned probed[NCPU];   /* the last seq each was asked */
	unsigned probes;
};

static int f_blocking(void *o) { return ((struct fake *)o)->blocking; }

static void f_probe(void *o, unsigned cpu, unsigned seq)
{
	struct fake *f = o;
	f->probed[cpu] = seq;
	f->probes++;
}

static int f_answer(void *o, unsigned cpu, unsigned seq)
{
	struct fake *f = o;
	if (f->silent[cpu] || f->probed[cpu] != seq)
		return -1;
	return f->state[cpu];
}

static struct fake f;
static struct halt_watch w;
static const struct halt_ops ops = { f_blocking, f_probe, f_answer, &f, NCPU };

static void reset(int blocking, int state)
{
	memset(&f, 0, sizeof(f));
	memset(&w, 0, sizeof(w));
	f.blocking = blocking;
	for (unsigned i = 0; i < NCPU; i++)
		f.state[i] = state;
}

/* ticks until halt_tick says halted, at most max; max+1 if never */
static unsigned ticks_to_halt(unsigned max)
{
	for (unsigned t = 1; t <= max; t++)
		if (halt_tick(&w, &ops))
			return t;
	return max + 1;
}

int main(void)
{
	reset(1, 1);
	CHECK_EQ(ticks_to_halt(10), HALT_ROUNDS + 1, "all stopped: halted after a probe and %d rounds", HALT_ROUNDS);
	CHECK_EQ(f.probes, NCPU * HALT_ROUNDS, "one probe per vCPU per round");
	CHECK(f.probed[0] != 0 && f.probed[0] == f.probed[2], "every vCPU asked the same round");

	reset(0, 1);
	CHECK_EQ(ticks_to_halt(10), 11, "vCPUs not blocking: never halted");
	CHECK_EQ(f.probes, 0, "and never disturbed (no probe)");

	reset(1, 1);
	f.state[1] = 0;
	CHECK_EQ(ticks_to_halt(10), 11, "one vCPU may run: never halted");

	reset(1, 1);
	f.silent[2] = true;
	CHECK_EQ(ticks_to_halt(10), 11, "one vCPU never answers: never halted");

	/* a round that finds one vCPU running starts the count again */
	reset(1, 1);
	CHECK(!halt_tick(&w, &ops), "tick 1: probes");
	CHECK(!halt_tick(&w, &ops), "tick 2: one round stopped");
	f.state[0] = 0;
	CHECK(!halt_tick(&w, &ops), "tick 3: a vCPU ran: count reset");
	f.state[0] = 1;
	CHECK_EQ(ticks_to_halt(10), HALT_ROUNDS, "then %d more rounds are needed", HALT_ROUNDS);

	/* the vCPUs stop blocking between rounds: the count starts again */
	reset(1, 1);
	CHECK(!halt_tick(&w, &ops), "probe");
	f.blocking = 0;
	CHECK(!halt_tick(&w, &ops), "answers stopped, but a vCPU now runs");
	CHECK(!halt_tick(&w, &ops), "not probed while it runs");
	f.blocking = 1;
	CHECK_EQ(ticks_to_halt(10), HALT_ROUNDS + 1, "blocking again: a fresh probe and %d rounds", HALT_ROUNDS);

	/* no statistics: the watch turns itself off and stays off */
	reset(-95, 1);
	CHECK_EQ(ticks_to_halt(5), 6, "no blocking statistic: never halted");
	f.blocking = 1;
	CHECK_EQ(ticks_to_halt(5), 6, "and it stays off");
	CHECK_EQ(f.probes, 0, "never probes");

	/* the sequence number skips 0, which means "never asked" */
	reset(1, 0);
	w.seq = ~0u;
	CHECK(!halt_tick(&w, &ops), "probe at the wrap");
	CHECK_EQ(f.probed[0], 1, "seq wraps to 1, not 0");
	return t_done();
}
