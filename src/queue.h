/*
 * queue.h: the fulfillment worker inside `bayarhook serve`. Jobs live in
 * bayarhook.jobs (inserted by bayarhook.ingest() together with the payment);
 * this module claims due ones with a lease, hands each to its action and
 * records the outcome: succeeded, or a retry after a backoff, or dead after
 * max_attempts. Several processes may share one database: claims use
 * FOR UPDATE SKIP LOCKED, and every completion is fenced on the claim, so a
 * runner whose lease ran out cannot overwrite the job's new owner.
 */
#ifndef BAYARHOOK_QUEUE_H
#define BAYARHOOK_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct config;
struct queue;

/* Seconds a claim outlives the action's timeout before others may take the job. */
#define QUEUE_LEASE_MARGIN 60
/* How long SIGTERM waits for running jobs before it kills them. */
#define QUEUE_STOP_GRACE_SEC 25

/*
 * Starts the worker on base with cfg's [fulfillment] and actions (which are
 * prepared and checked now). Returns NULL with "file:line: key: reason" or
 * another one-line reason in err.
 */
struct queue *queue_new(struct event_base *base, const struct config *cfg, char *err,
                        size_t errlen);
/*
 * SIGHUP: takes the new config's actions and limits. Jobs already running
 * finish with the action they started with. Returns -1 (and keeps the old
 * config) with a reason in err when an action is invalid.
 */
int queue_set_config(struct queue *q, const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * SIGTERM: claims nothing more. Running jobs get QUEUE_STOP_GRACE_SEC to
 * finish; then exec and forward attempts are stopped and their jobs put
 * back (pending, due now) for another process or the next start.
 */
void queue_stop(struct queue *q);
/* True when no job is running and nothing is left to record. */
bool queue_idle(const struct queue *q);
/* Cancels whatever still runs (no database writes) and frees everything. Accepts NULL. */
void queue_free(struct queue *q);

/*
 * The retry delay after a failed attempt, in milliseconds: with
 * d = min(max, initial * 2^(attempt - 1)) seconds, d/2 + (rnd mod d/2)
 * ("equal jitter": never less than half the nominal delay, spread over the
 * other half so that jobs failing together do not retry together).
 */
int64_t queue_backoff_ms(int initial, int max, int attempt, uint32_t rnd);

/*
 * The claim owner of this process, "host:pid:scope:nonce" (scope names the
 * kernel boot and pid namespace). Jobs of an owner on this host whose
 * process is gone are taken back at once, without waiting for the lease.
 */
const char *queue_owner(const struct queue *q);

#endif
