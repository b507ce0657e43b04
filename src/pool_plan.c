/*
 * pool_plan.c: the split of [database] pool_size (see pool_plan.h).
 */
#include "pool_plan.h"

struct pool_plan pool_plan(int pool_size)
{
	struct pool_plan p;
	int rest = (pool_size < POOL_SIZE_MIN ? POOL_SIZE_MIN : pool_size);

	p.listen = 1;
	p.alert = 1;
	rest -= p.listen + p.alert;
	p.reconcile = rest >= 7 ? 2 : 1;
	rest -= p.reconcile;
	p.queue = rest >= 5 ? 3 : rest >= 3 ? 2 : 1;
	p.ingest = rest - p.queue;
	return p;
}
