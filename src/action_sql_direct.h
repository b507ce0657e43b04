/*
 * action_sql_direct.h: the jobs of a sql action on the receiver's own
 * database taken, run and finished in one transaction (issue 16; the SQL
 * half is sql/functions/jobs_direct.sql). The worker starts a round when it
 * has a free slot; the round takes up to conf->limit due jobs of the
 * action, runs their statements one after another, each undone alone when
 * it fails, and commits them with their outcomes: exactly once, one commit
 * for many jobs, and no running state or lease in between.
 *
 * When the round's transaction is lost (a statement cut off by the
 * action's timeout, a refused COMMIT, the connection gone), nothing of it
 * was committed: each of its jobs is then run alone, and one lost again is
 * written as a failed attempt in a transaction of its own, so that every
 * attempt that ran counts.
 */
#ifndef BAYARHOOK_ACTION_SQL_DIRECT_H
#define BAYARHOOK_ACTION_SQL_DIRECT_H

#include <stdbool.h>

struct action;
struct sql_direct;

struct sql_direct_conf {
	const char *owner; /* job_attempts.runner (the worker's claim owner); copied */
	int limit;         /* jobs per transaction */
	/* The delay before attempt's retry, should it fail, as seconds ("12.345"); arg: start's. */
	void (*retry_in)(int attempt, char out[32], void *arg);
};

struct sql_direct_outcome {
	const char *job, *invoice;
	int attempt;
	const char *state;    /* "succeeded", "pending", "dead"; NULL: nothing was written */
	const char *outcome;  /* "succeeded", "failed", "timeout" */
	const char *error;    /* NULL on success */
	const char *retry_in; /* seconds, when pending */
	long long rows;       /* the statement's row count; -1: none */
};

/* Each job's outcome once written (or found unwritable). */
typedef void (*sql_direct_outcome_fn)(const struct sql_direct_outcome *o, void *arg);
/*
 * The round is over (d is freed after this returns); taken: how many jobs
 * its transaction took (the limit: there may be more).
 */
typedef void (*sql_direct_end_fn)(struct sql_direct *d, int taken, void *arg);

/* An action whose jobs go this way: sql, the receiver's own database, a statement PREPARE takes. */
bool action_sql_direct_ok(const struct action *a);
/*
 * Starts a round for a's due jobs. Every callback comes later, from the
 * loop. NULL when the database is not up (nothing started).
 */
struct sql_direct *action_sql_direct_start(struct action *a, const struct sql_direct_conf *conf,
                                           sql_direct_outcome_fn on_outcome,
                                           sql_direct_end_fn on_end, void *arg);
/*
 * Shutdown only (the loop does not run again): the transaction is rolled
 * back with its session, its jobs stay pending as they were; no callback.
 */
void action_sql_direct_stop(struct sql_direct *d);

#endif
