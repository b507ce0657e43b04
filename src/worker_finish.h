/*
 * worker_finish.h: the worker's outcomes, written in batches (issue 16).
 * Every attempt that ends while a write is in flight waits in a queue, and
 * the next write records them all with one bayarhook.job_finish_many(): one
 * statement, one commit, each job fenced on its own claim.
 */
#ifndef BAYARHOOK_WORKER_FINISH_H
#define BAYARHOOK_WORKER_FINISH_H

#include <stdbool.h>
#include <sys/queue.h>

struct db_pool;
struct worker_outcome;

#define WORKER_FINISH_BATCH 256 /* outcomes per job_finish_many() */

/*
 * One job's outcome, embedded in the caller's job. state: the job's new
 * state, or NULL when its claim was gone (nothing written); err non-NULL
 * instead when the write failed (the database): push it again later.
 */
struct worker_finish_item {
	TAILQ_ENTRY(worker_finish_item) link;
	bool queued;
	const char *job, *attempts, *attempt_id, *max_attempts; /* decimal text */
	const struct worker_outcome *out;
	void (*done)(struct worker_finish_item *it, const char *state, const char *err);
};

struct worker_finish {
	struct db_pool *pool;
	const char *owner; /* the claims' lease_owner */
	TAILQ_HEAD(, worker_finish_item) queue;
	struct worker_finish_batch *inflight;
};

void worker_finish_init(struct worker_finish *f, struct db_pool *pool, const char *owner);
/* Queues it (once) and writes unless a write is in flight; done is called later. */
void worker_finish_push(struct worker_finish *f, struct worker_finish_item *it);
/* Takes it out of the queue (its job is freed before its write). */
void worker_finish_drop(struct worker_finish *f, struct worker_finish_item *it);
/* A write is in flight. */
bool worker_finish_busy(const struct worker_finish *f);
/* The pool is gone: forgets the write in flight (no callback ever comes). */
void worker_finish_clear(struct worker_finish *f);

#endif
