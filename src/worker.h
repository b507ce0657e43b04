/*
 * worker.h: the fulfillment worker inside `bayarhook serve`. Jobs live in
 * bayarhook.jobs (inserted by bayarhook.ingest() together with the payment);
 * this module claims due ones with a lease, hands each to its action and
 * records the outcome through bayarhook.job_finish(), which makes the job
 * succeeded, pending again after the backoff, or dead after max_attempts
 * (sql/functions/jobs.sql). Several processes may share one database:
 * claims use FOR UPDATE SKIP LOCKED, and every completion is fenced on the
 * claim, so a runner whose lease ran out cannot overwrite the job's new
 * owner.
 */
#ifndef BAYARHOOK_WORKER_H
#define BAYARHOOK_WORKER_H

#include <stdbool.h>

struct event_base;
struct config;
struct worker;

/* Seconds a claim outlives the action's timeout before others may take the job. */
#define WORKER_LEASE_MARGIN 60
/* How long SIGTERM waits for running jobs before it kills them. */
#define WORKER_STOP_GRACE_SEC 25

/*
 * Starts the worker on base with cfg's [fulfillment] and actions (which are
 * prepared and checked now). Returns NULL with "file:line: key: reason" or
 * another one-line reason in err.
 */
struct worker *worker_new(struct event_base *base, const struct config *cfg, char *err,
                          size_t errlen);
/*
 * SIGHUP: takes the new config's actions and limits. Jobs already running
 * finish with the action they started with. Returns -1 (and keeps the old
 * config) with a reason in err when an action is invalid.
 */
int worker_set_config(struct worker *w, const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * SIGTERM: claims nothing more. Running jobs get WORKER_STOP_GRACE_SEC to
 * finish; then exec and forward attempts are stopped and their jobs put
 * back (pending, due now) for another process or the next start.
 */
void worker_stop(struct worker *w);
/*
 * Events that make jobs were just committed by this process: claim them now
 * (from the loop, coalesced), rather than when LISTEN's notification comes
 * back. Accepts NULL.
 */
void worker_wake_now(struct worker *w);
/* True when no job is running and nothing is left to record. */
bool worker_idle(const struct worker *w);
/* Cancels whatever still runs (no database writes) and frees everything. Accepts NULL. */
void worker_free(struct worker *w);
/* The gateway wa_store actions call through (the reconciler's: one budget); freed after w. */
struct gateway;
void worker_set_gateway(struct worker *w, struct gateway *gw);

#endif
