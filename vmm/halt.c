#include "halt.h"

bool halt_tick(struct halt_watch *w, const struct halt_ops *o)
{
	if (w->off)
		return false;
	if (w->asked) {
		/* a vCPU that has not answered in a tick was busy: not stopped */
		bool all = true;
		for (unsigned i = 0; i < o->ncpus && all; i++)
			all = o->answer(o->opaque, i, w->seq) == 1;
		w->asked = false;
		w->rounds = all ? w->rounds + 1 : 0;
		if (w->rounds >= HALT_ROUNDS)
			return true;
	}
	int b = o->all_blocking(o->opaque);
	if (b < 0) {
		w->off = true;
		return false;
	}
	if (!b) {
		/* some vCPU runs: whatever the last round saw is over */
		w->rounds = 0;
		return false;
	}
	if (++w->seq == 0)
		w->seq = 1;
	for (unsigned i = 0; i < o->ncpus; i++)
		o->probe(o->opaque, i, w->seq);
	w->asked = true;
	return false;
}
