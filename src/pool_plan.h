/*
 * pool_plan.h: how `serve` splits [database] pool_size among its pools.
 * Every connection serve opens to bayarhook's own database is in one of
 * them (sql actions' databases are not: each adds up to [fulfillment]
 * concurrency, see action_run.c). The split, for pool_size P:
 *   listen    1  the job wake-up's LISTEN, on listen_conninfo (worker_listen.c)
 *   alert     1  alert claims and deliveries (alert.c)
 *   reconcile 1, 2 from P = 9: passes, their lease, follow-ups, the confirmer
 *   queue     1..3: job claims and outcomes (worker.c); 3 from P = 8
 *   ingest    the rest (at least 1): callbacks' transactions (store.c)
 * The default P = 8 gives ingest 2, queue 3, reconcile 1, alert 1, listen 1.
 */
#ifndef BAYARHOOK_POOL_PLAN_H
#define BAYARHOOK_POOL_PLAN_H

#define POOL_SIZE_MIN 5 /* one connection for each pool */

struct pool_plan {
	int ingest, queue, reconcile, alert, listen;
};

/* pool_size below POOL_SIZE_MIN counts as POOL_SIZE_MIN (the config forbids it). */
struct pool_plan pool_plan(int pool_size);

#endif
