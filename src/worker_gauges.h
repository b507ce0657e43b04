/*
 * worker_gauges.h: the queue's gauges (jobs by state, due jobs, the oldest
 * pending job's age, the last completed reconcile pass), read from the
 * database every few seconds by the worker's tick, so that jobs of other
 * processes and of the CLI count too.
 */
#ifndef BAYARHOOK_WORKER_GAUGES_H
#define BAYARHOOK_WORKER_GAUGES_H

#include <stdbool.h>

struct db_pool;

struct worker_gauges {
	struct db_pool *pool;
	bool counting; /* a count is in flight */
};

/* Starts a count unless one is in flight; the metrics are set when it returns. */
void worker_gauges_refresh(struct worker_gauges *g);

#endif
