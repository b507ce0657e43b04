/*
 * reconcile_pass.h: one reconciliation pass, from taking the reconcile lease
 * to recording its result (reconcile.h says what a pass does). reconcile.c
 * schedules passes; this module runs one.
 */
#ifndef BAYARHOOK_RECONCILE_PASS_H
#define BAYARHOOK_RECONCILE_PASS_H

#include "reconcile.h"

struct reconcile_pass;

/* What a pass works with; the pointers must outlive it. */
struct reconcile_pass_env {
	struct event_base *base; /* the lease's renewal timer */
	struct db_pool *pool;
	struct store *store;
	struct gateway *gw;
	const char *trigger; /* recorded: "serve", "cli" */
	const char *runner;  /* recorded: ident_process() */
	int lookback, min_age;
	unsigned statuses; /* [reconciler] statuses: STATUS_MASK() bits */
};

/*
 * A pass that has not started: reconcile_pass_begin() starts it, from the
 * event loop. done gets the summary exactly once; the pass frees itself
 * after done returns.
 */
struct reconcile_pass *reconcile_pass_new(const struct reconcile_pass_env *env,
                                          reconcile_report_cb report, void *report_arg,
                                          reconcile_done_cb done, void *done_arg);
/* Asks for the lease; a pass already stopped ends as "skipped". */
void reconcile_pass_begin(struct reconcile_pass *p);
/* Shutdown: send nothing more; a running pass ends as "aborted", recorded. */
void reconcile_pass_stop(struct reconcile_pass *p);
/* Drops the pass unrecorded, without calling done (teardown). */
void reconcile_pass_free(struct reconcile_pass *p);

#endif
