/*
 * worker.c: the fulfillment worker of `serve` (see worker.h): claims jobs,
 * runs their actions, records the outcomes. The state changes themselves
 * are SQL functions (sql/functions/jobs.sql); this module decides when to
 * call them and what to tell them.
 *
 * Wake-ups: worker_wake_now() when this process's store committed events
 * that made jobs (no round trip through the database: the action starts
 * within milliseconds of the callback's 200), LISTEN bayarhook_jobs for
 * jobs made by other processes (ingest() notifies; worker_listen.c, which
 * polls instead where LISTEN cannot work), a one-shot timer for
 * this process's own retries, and a 1 s tick for everything else (other
 * processes' retries, expired leases). Each wake-up claims at most
 * concurrency - running jobs with one job_claim(), which also closes the
 * previous attempt of a job taken over and opens the new one; one claim is
 * in flight at a time, so the slots that free up meanwhile are claimed
 * together.
 *
 * Outcomes are recorded in batches: every attempt that ended while the
 * previous write was in flight goes into the next bayarhook.job_finish_many()
 * (one statement, one commit). A job being recorded holds no slot of
 * concurrency (its child or statement is over), so the next claim does not
 * wait for that commit; WORKER_RECORDING_MAX bounds how many may wait.
 *
 * A job is held by its claim (lease_owner, attempts) until lease_until =
 * now + the action's timeout + WORKER_LEASE_MARGIN. Every later write to it
 * is fenced on that claim; a write that finds it gone changes nothing. A
 * crashed process's jobs are taken over when their lease ends, or at once
 * when the process was on this host and is gone (worker_reclaim).
 *
 * The jobs of actions no longer in the config are held, not failed
 * (worker_hold.c), at start and on every reload; nothing is claimed until
 * that has run once. A claimed job whose action is unknown all the same is
 * held too, its attempt uncounted (job_hold_claimed).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "action.h"
#include "action_sql_direct.h"
#include "config.h"
#include "db.h"
#include "jsonw.h"
#include "log.h"
#include "pool_plan.h"
#include "stats.h"
#include "worker.h"
#include "worker_finish.h"
#include "worker_gauges.h"
#include "worker_hold.h"
#include "worker_listen.h"
#include "worker_outcome.h"
#include "worker_owner.h"
#include "xmalloc.h"

#define WORKER_TICK_MS 1000
#define WORKER_METRICS_TICKS 5  /* refresh the jobs gauges every 5 s */
#define WORKER_RECLAIM_TICKS 30 /* look for jobs of dead local processes */
#define WORKER_RECORD_TRIES 30  /* 2 s apart: about the lease margin */
#define WORKER_UNKNOWN_LEASE 90 /* seconds, for a job whose action is unknown */
/* Jobs whose outcome waits to be written: past this, nothing more is claimed. */
#define WORKER_RECORDING_MAX 1024
/*
 * A sql action on the receiver's own database (action_sql_direct.h): jobs
 * per transaction, under PostgreSQL's 64 cached subtransactions (each job's
 * statement runs in one), and transactions of one action at once.
 */
#define WORKER_DIRECT_LIMIT 32
#define WORKER_DIRECT_ROUNDS 2

enum worker_state {
	WORKER_RUNNING,  /* claiming */
	WORKER_STOPPING, /* no claims; running jobs get WORKER_STOP_GRACE_SEC */
	WORKER_ABORTED,  /* grace over: exec and forward runs stopped, their jobs put back */
};

/* In this process; jobs.state is the database's. */
enum job_phase {
	JOB_RUNNING,   /* its action runs (job->run) */
	JOB_RECORDING, /* the outcome is being written, or waits to be retried */
};

struct job {
	LIST_ENTRY(job) link;
	struct worker *w;
	enum job_phase phase;
	char id[24];
	char attempt_id[24];
	int attempts;     /* after the claim */
	int max_attempts; /* of its action when claimed */
	char *action;
	char *invoice;
	struct action_run *run;
	struct worker_outcome out; /* of the attempt, for job_finish() */
	char attempts_text[16], max_text[16];
	bool release; /* put back (SIGTERM) rather than finished */
	bool hold;    /* its action is not in the config: held, the attempt uncounted */
	struct worker_finish_item fin; /* its outcome, for job_finish_many() */
	int record_tries;
	struct event *retry;
};

struct worker {
	struct event_base *base;
	struct db_pool *pool;
	struct worker_listen *listen; /* the wake-up: LISTEN, or polling */
	struct action_ctx *actx;
	struct action_set *actions;
	char *leases; /* {"action": lease seconds} for the claim */
	struct worker_owner owner;
	struct worker_hold hold; /* the jobs of removed actions */
	int concurrency, max_attempts, backoff_initial, backoff_max;
	size_t nactions; /* configured: none, no job of ours to wake up for */
	enum worker_state state;
	bool claiming;    /* a claim is in flight */
	bool claim_again; /* something happened meanwhile: claim once more */
	struct worker_gauges gauges;
	int njobs;
	int nrecording; /* of njobs, in JOB_RECORDING: they hold no slot */
	LIST_HEAD(, job) jobs;
	/*
	 * Rounds of the actions whose jobs are taken, run and finished in one
	 * transaction (action_sql_direct.h). Each holds one slot of
	 * concurrency: its statements run one after another.
	 */
	char **direct;     /* those actions' names, NULL-terminated */
	char *direct_skip; /* the same as a text[] literal, job_claim()'s p_skip */
	bool all_direct;   /* every action is one: job_claim() only on the tick */
	LIST_HEAD(, direct_round) rounds;
	int nrounds;
	bool direct_again;           /* woken while every round was busy: go again after one */
	size_t direct_next;          /* the direct action whose round starts first next time */
	bool rounds_turn;            /* one slot left: rounds' turn (else job_claim()'s) */
	bool claim_deferred;         /* rounds held every slot: job_claim() after one ends */
	struct worker_finish finish; /* outcomes, written in batches */
	struct event *tick, *wake, *grace, *connected;
	struct event *kick; /* claim from the loop: worker_wake_now, a slot freed */
	int64_t wake_at;    /* monotonic ms when wake fires */
	int claim_n;        /* rows asked for by the claim in flight */
	unsigned ticks;
};

/* Every outcome, in batches: worker_finish.c, and job_tx in a sql action's transaction. */
static const char SQL_FINISH_MANY[] =
    "SELECT job_id, state FROM bayarhook.job_finish_many(p_owner => $1, p_items => $2::jsonb)";

struct direct_round {
	LIST_ENTRY(direct_round) link;
	struct worker *w;
	struct sql_direct *d;
	char *action;
};

static void worker_claim(struct worker *w);
static void worker_kick(struct worker *w);
static void job_record(struct job *job);

/* ---- jobs ---- */

static void job_free(struct job *job)
{
	if (job == NULL)
		return;
	LIST_REMOVE(job, link);
	job->w->njobs--;
	if (job->phase == JOB_RECORDING)
		job->w->nrecording--;
	worker_finish_drop(&job->w->finish, &job->fin);
	if (job->retry)
		event_free(job->retry);
	free(job->action);
	free(job->invoice);
	worker_outcome_clear(&job->out);
	free(job);
}

/* After a job is done with, there is room for another. */
static void job_done(struct job *job)
{
	struct worker *w = job->w;

	job_free(job);
	worker_kick(w);
}

/* Its action is over: the job holds no slot of concurrency any more. */
static void job_set_recording(struct job *job)
{
	if (job->phase == JOB_RECORDING)
		return;
	job->phase = JOB_RECORDING;
	job->w->nrecording++;
	worker_kick(job->w);
}

static void job_set_outcome(struct job *job, const struct action_result *res)
{
	/* A permanent failure reaches job_finish() as p_permanent: dead at once. */
	worker_outcome_set(&job->out, res, job->attempts, job->w->backoff_initial,
	                   job->w->backoff_max);
}

/*
 * A dead job waits for a person (bayarhook retry or cancel): a warning and
 * bayarhook_jobs_dead_total{action}, the job_dead alert's signals (SPEC
 * §7). permanent: the failure was one retrying cannot fix, not the last of
 * max_attempts.
 */
static void outcome_log(const char *id, const char *invoice, const char *action, int attempt,
                        const char *state, const char *error, const char *retry_in, bool permanent)
{
	if (strcmp(state, "succeeded") == 0) {
		log_info("job succeeded job=%s invoice=%s action=%s attempt=%d", id, invoice,
		         action, attempt);
	} else if (strcmp(state, "dead") == 0) {
		metrics_inc(METRIC_JOBS_DEAD, action);
		log_warnx("job dead job=%s invoice=%s action=%s attempt=%d reason=%s error=\"%s\"",
		          id, invoice, action, attempt, permanent ? "permanent" : "max_attempts",
		          error ? error : "");
	} else {
		log_warnx("job failed job=%s invoice=%s action=%s attempt=%d retry_in=%ss "
		          "error=\"%s\"",
		          id, invoice, action, attempt, retry_in, error ? error : "");
	}
}

static void job_log_outcome(struct job *job, const char *state)
{
	outcome_log(job->id, job->invoice, job->action, job->attempts, state, job->out.error,
	            job->out.retry_in, strcmp(job->out.permanent, "true") == 0);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Arms the one-shot wake-up for this process's own retry of a job, so that
 * a short backoff is kept to the millisecond. One timer serves the earliest
 * retry; later ones are picked up by it or by the tick.
 */
static void worker_wake_in(struct worker *w, const char *delay)
{
	int64_t ms = (int64_t)(strtod(delay, NULL) * 1000) + 20, at = mono_ms() + ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	if (w->state != WORKER_RUNNING)
		return;
	if (evtimer_pending(w->wake, NULL) && w->wake_at <= at)
		return;
	w->wake_at = at;
	evtimer_add(w->wake, &tv);
}

static void job_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_record(arg);
}

/* The write failed (database down): try again shortly, then leave it to the lease. */
static void job_record_later(struct job *job, const char *err)
{
	struct timeval tv = {2, 0};

	if (++job->record_tries >= WORKER_RECORD_TRIES) {
		log_errx("job outcome not recorded, giving up job=%s action=%s: %s; it runs again "
		         "once its lease ends",
		         job->id, job->action, err);
		job_done(job);
		return;
	}
	if (job->record_tries == 1)
		log_warnx("cannot record job outcome job=%s action=%s: %s; retrying", job->id,
		          job->action, err);
	if (job->retry == NULL &&
	    (job->retry = evtimer_new(job->w->base, job_retry_cb, job)) == NULL) {
		job_done(job);
		return;
	}
	evtimer_add(job->retry, &tv);
}

/* job_finish() said state, or NULL: the claim was gone. */
static void job_finished(struct job *job, const char *state)
{
	if (state == NULL) {
		log_warnx("job outcome not written job=%s action=%s: %s", job->id, job->action,
		          job->record_tries
		              ? "an earlier try whose answer was lost may have written "
		                "it, or its claim was taken over"
		              : "its claim was taken over (lease expired)");
	} else {
		metrics_inc(METRIC_JOB_ATTEMPTS, job->out.outcome);
		job_log_outcome(job, state);
		if (strcmp(state, "pending") == 0)
			worker_wake_in(job->w, job->out.retry_in);
	}
	job_done(job);
}

/* job_release() or job_hold_claimed() answered. */
static void job_recorded(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct job *job = arg;

	(void)sqlstate;
	if (res == NULL) {
		job_record_later(job, err);
		return;
	}
	if (job->release) {
		log_notice("job put back job=%s action=%s (stopping)", job->id, job->action);
	} else if (PQntuples(res) > 0) {
		log_warnx("job held job=%s invoice=%s action=%s: the action is not in the "
		          "config; it resumes if the action returns",
		          job->id, job->invoice, job->action);
	}
	job_done(job);
}

/* worker_finish wrote the outcome (state), found the claim gone (NULL), or failed (err). */
static void job_finish_written(struct worker_finish_item *it, const char *state, const char *err)
{
	struct job *job = (struct job *)((char *)it - offsetof(struct job, fin));

	if (err != NULL)
		job_record_later(job, err);
	else
		job_finished(job, state);
}

/* The job's claim as text: p_job, p_owner, p_attempts, p_attempt_id. */
static void job_claim_params(struct job *job, const char *p[4])
{
	snprintf(job->attempts_text, sizeof(job->attempts_text), "%d", job->attempts);
	snprintf(job->max_text, sizeof(job->max_text), "%d", job->max_attempts);
	p[0] = job->id;
	p[1] = job->w->owner.id;
	p[2] = job->attempts_text;
	p[3] = job->attempt_id;
}

static void job_record(struct job *job)
{
	struct worker *w = job->w;
	const char *p[4];
	int rc;

	job_set_recording(job);
	if (job->release) {
		job_claim_params(job, p);
		rc = db_query(w->pool,
		              "SELECT job_id FROM bayarhook.job_release(p_job => $1, p_owner => $2,"
		              " p_attempts => $3, p_attempt_id => $4)",
		              4, p, job_recorded, job);
	} else if (job->hold) {
		job_claim_params(job, p);
		rc = db_query(w->pool,
		              "SELECT job_id FROM bayarhook.job_hold_claimed(p_job => $1,"
		              " p_owner => $2, p_attempts => $3, p_attempt_id => $4)",
		              4, p, job_recorded, job);
	} else {
		snprintf(job->attempts_text, sizeof(job->attempts_text), "%d", job->attempts);
		snprintf(job->max_text, sizeof(job->max_text), "%d", job->max_attempts);
		job->fin.job = job->id;
		job->fin.attempts = job->attempts_text;
		job->fin.attempt_id = job->attempt_id;
		job->fin.max_attempts = job->max_text;
		job->fin.out = &job->out;
		job->fin.done = job_finish_written;
		worker_finish_push(&w->finish, &job->fin);
		return;
	}
	if (rc < 0)
		job_record_later(job, "database unavailable");
}

/* Records a failure that happened before the action could run. */
static void job_fail_now(struct job *job, const char *error)
{
	struct action_result res;

	memset(&res, 0, sizeof(res));
	res.outcome = ACTION_FAILED;
	res.exit_code = -1;
	res.row_count = -1;
	res.error = error;
	res.output = "";
	job_set_outcome(job, &res);
	job_record(job);
}

static void job_action_done(struct action_run *run, const struct action_result *res, void *arg)
{
	struct job *job = arg;

	(void)run;
	job->run = NULL;
	if (res->lease_lost) {
		log_warnx("job outcome dropped job=%s action=%s: its claim was taken over "
		          "(lease expired); the transaction was rolled back",
		          job->id, job->action);
		job_done(job);
		return;
	}
	if (res->finished) {
		/* sql on our own database: completed in the action's transaction. */
		metrics_inc(METRIC_JOB_ATTEMPTS, "succeeded");
		log_info("job succeeded job=%s invoice=%s action=%s attempt=%d rows=%lld", job->id,
		         job->invoice, job->action, job->attempts, res->row_count);
		job_done(job);
		return;
	}
	job_set_outcome(job, res);
	job_record(job);
}

/*
 * The transaction of sql actions on our database: complete their jobs in
 * it, with one statement (action_tx_fn).
 */
struct tx_step {
	struct action_tx_job *jobs;
	int n;
	action_tx_next_fn next;
	void *token;
};

static void job_tx_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct tx_step *st = arg;
	action_tx_next_fn next = st->next;
	void *token = st->token;

	(void)sqlstate;
	for (int r = 0; res != NULL && r < PQntuples(res); r++) {
		const char *id = PQgetvalue(res, r, 0);

		for (int k = 0; k < st->n; k++)
			if (strcmp(((struct job *)st->jobs[k].arg)->id, id) == 0)
				st->jobs[k].done = true;
	}
	free(st);
	next(token, res != NULL, err);
}

static void job_tx(struct db_session *s, struct action_tx_job *jobs, int n, action_tx_next_fn next,
                   void *token)
{
	struct tx_step *st = xmalloc(sizeof(*st));
	struct worker *w = NULL;
	struct jsonw js;
	const char *p[2];
	char *items;

	st->jobs = jobs;
	st->n = n;
	st->next = next;
	st->token = token;
	jsonw_begin_array(&js);
	for (int k = 0; k < n; k++) {
		struct job *job = jobs[k].arg;

		w = job->w;
		job_set_outcome(job, jobs[k].res);
		snprintf(job->attempts_text, sizeof(job->attempts_text), "%d", job->attempts);
		snprintf(job->max_text, sizeof(job->max_text), "%d", job->max_attempts);
		worker_outcome_json(&js, job->id, job->attempts_text, job->attempt_id,
		                    job->max_text, &job->out);
	}
	items = jsonw_finish_array(&js);
	p[0] = w ? w->owner.id : "";
	p[1] = items;
	db_session_query(s, SQL_FINISH_MANY, 2, p, job_tx_done, st);
	free(items);
}

static void job_start(struct worker *w, PGresult *res, int row)
{
	struct job *job = xcalloc(1, sizeof(*job));
	struct action *a;
	struct action_job aj;
	char err[512];

	job->w = w;
	LIST_INSERT_HEAD(&w->jobs, job, link);
	w->njobs++;
	snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(res, row, 0));
	snprintf(job->attempt_id, sizeof(job->attempt_id), "%s", PQgetvalue(res, row, 7));
	job->attempts = atoi(PQgetvalue(res, row, 3));
	job->invoice = xstrdup(PQgetvalue(res, row, 1));
	job->action = xstrdup(PQgetvalue(res, row, 2));
	job->max_attempts = w->max_attempts;
	if (w->state == WORKER_ABORTED) {
		/* Claimed as the stop grace ran out: give it straight back. */
		job->release = true;
		job_record(job);
		return;
	}
	a = action_set_find(w->actions, job->action);
	if (a == NULL) {
		/* Made while a reload removed its action: held, like the others (worker_hold). */
		job->hold = true;
		job_record(job);
		return;
	}
	job->max_attempts = action_max_attempts(a);
	if (job->attempts > job->max_attempts) {
		/* Its earlier attempts were all cut short (crashes): do not loop on it. */
		snprintf(err, sizeof(err),
		         "attempt %d exceeds max_attempts (%d): earlier attempts were cut short",
		         job->attempts, job->max_attempts);
		job_fail_now(job, err);
		return;
	}
	aj.id = job->id;
	aj.attempt = job->attempts;
	aj.source = PQgetvalue(res, row, 4);
	aj.event = PQgetvalue(res, row, 5);
	aj.event_bare = PQgetvalue(res, row, 6);
	/* NULL (no flag) reads as "". */
	aj.flag = PQgetvalue(res, row, 9);
	aj.idempotency_key = PQgetvalue(res, row, 10);
	log_debug("job started job=%s invoice=%s action=%s attempt=%d", job->id, job->invoice,
	          job->action, job->attempts);
	job->phase = JOB_RUNNING;
	job->run =
	    action_start(w->actx, a, &aj, job_tx, job, job_action_done, job, err, sizeof(err));
	if (job->run == NULL)
		job_fail_now(job, err);
}

/* ---- sql actions on the receiver's own database: rounds ---- */

static void direct_retry_in(int attempt, char out[32], void *arg)
{
	struct worker *w = ((struct direct_round *)arg)->w;

	worker_retry_in(w->backoff_initial, w->backoff_max, attempt, out);
}

static void direct_outcome(const struct sql_direct_outcome *o, void *arg)
{
	struct direct_round *r = arg;
	struct worker *w = r->w;
	struct action *a;

	if (o->state == NULL)
		return; /* not written: the job is as it was, and runs again */
	metrics_inc(METRIC_JOB_ATTEMPTS, o->outcome);
	a = action_set_find(w->actions, r->action);
	outcome_log(o->job, o->invoice, r->action, o->attempt, o->state, o->error, o->retry_in,
	            a != NULL && o->attempt < action_max_attempts(a));
	if (strcmp(o->state, "pending") == 0)
		worker_wake_in(w, o->retry_in);
}

static void direct_end(struct sql_direct *d, int taken, void *arg)
{
	struct direct_round *r = arg;
	struct worker *w = r->w;

	(void)d;
	LIST_REMOVE(r, link);
	w->nrounds--;
	/*
	 * A full round may have left more behind; a wake-up may have found every
	 * round busy, or found no slot for the other actions' claim.
	 */
	if (taken == WORKER_DIRECT_LIMIT || w->direct_again || w->claim_deferred) {
		w->direct_again = false;
		worker_kick(w);
	}
	free(r->action);
	free(r);
}

static int direct_rounds_of(const struct worker *w, const char *action)
{
	const struct direct_round *r;
	int n = 0;

	LIST_FOREACH(r, &w->rounds, link)
	n += strcmp(r->action, action) == 0;
	return n;
}

/*
 * Starts a round for each direct action with room for one, taking turns:
 * the pass starts after the action whose round started last, so more
 * direct actions than slots all get theirs. Returns the slots taken.
 */
static int worker_direct(struct worker *w, int room)
{
	struct sql_direct_conf conf = {
	    .owner = w->owner.id, .limit = WORKER_DIRECT_LIMIT, .retry_in = direct_retry_in};
	size_t n = 0;
	int used = 0;

	while (w->direct && w->direct[n])
		n++;
	for (size_t k = 0; k < n && used < room; k++) {
		size_t i = (w->direct_next + k) % n;
		struct action *a = action_set_find(w->actions, w->direct[i]);
		struct direct_round *r;

		if (a == NULL)
			continue;
		if (direct_rounds_of(w, w->direct[i]) >= WORKER_DIRECT_ROUNDS) {
			w->direct_again = true;
			continue;
		}
		r = xcalloc(1, sizeof(*r));
		r->w = w;
		r->action = xstrdup(w->direct[i]);
		r->d = action_sql_direct_start(a, &conf, direct_outcome, direct_end, r);
		if (r->d == NULL) {
			free(r->action);
			free(r);
			continue;
		}
		LIST_INSERT_HEAD(&w->rounds, r, link);
		w->nrounds++;
		used++;
		w->direct_next = (i + 1) % n;
	}
	return used;
}

/*
 * Of room free slots, those the rounds may take now. When other actions
 * have jobs too, job_claim() keeps one slot, and with a single slot the
 * two take turns: rounds start before the claim (sql on the receiver's
 * own database is the fast path) but never hold every slot for good.
 */
static int rounds_room(struct worker *w, int room)
{
	if (w->all_direct || w->direct == NULL || w->direct[0] == NULL)
		return room;
	if (room > 1)
		return room - 1;
	w->rounds_turn = !w->rounds_turn;
	return w->rounds_turn ? room : 0;
}

/* The configured actions whose jobs go in rounds, and job_claim()'s p_skip of them. */
static void direct_set(struct worker *w, const struct config *cfg)
{
	struct jsonw js;
	size_t n = 0;

	for (char **name = w->direct; name && *name; name++)
		free(*name);
	free(w->direct);
	free(w->direct_skip);
	w->direct = xcalloc(cfg->nactions + 1, sizeof(char *));
	jsonw_begin_array(&js);
	for (size_t i = 0; i < cfg->nactions; i++) {
		struct action *a = action_set_find(w->actions, cfg->actions[i].name);

		if (a != NULL && action_sql_direct_ok(a)) {
			w->direct[n++] = xstrdup(cfg->actions[i].name);
			jsonw_cstr(&js, NULL, cfg->actions[i].name);
		}
	}
	w->direct_skip = jsonw_finish_array(&js);
	w->all_direct = n > 0 && n == cfg->nactions;
}

/* ---- claiming ---- */

static void claim_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker *w = arg;
	int rows = 0;

	(void)sqlstate;
	w->claiming = false;
	if (res == NULL) {
		log_warnx("claiming jobs failed: %s", err);
		return;
	}
	rows = PQntuples(res);
	/* Claimed even while stopping: they run (within the grace) rather than wait. */
	for (int i = 0; i < rows; i++)
		job_start(w, res, i);
	/* A full batch may have left more behind. */
	if (rows == w->claim_n || w->claim_again)
		worker_claim(w);
}

static void worker_claim_as(struct worker *w, bool tick)
{
	/* Jobs being recorded are over: only running ones (and rounds) hold a slot. */
	int room = w->concurrency - (w->njobs - w->nrecording) - w->nrounds;
	char n[16], unknown[16];
	const char *p[5] = {w->owner.id, n, w->leases, unknown, w->direct_skip};

	if (w->state != WORKER_RUNNING || room <= 0 || w->nrecording >= WORKER_RECORDING_MAX ||
	    db_pool_up(w->pool) == 0 || !worker_hold_settled(&w->hold))
		return;
	room -= worker_direct(w, rounds_room(w, room));
	/* The rest: other actions, and direct ones' jobs left running by a per-job claim. */
	if (w->all_direct && !tick)
		return;
	w->claim_deferred = room <= 0;
	if (room <= 0)
		return;
	if (w->claiming) {
		w->claim_again = true;
		return;
	}
	w->claim_again = false;
	w->claim_n = room;
	snprintf(n, sizeof(n), "%d", room);
	snprintf(unknown, sizeof(unknown), "%d", WORKER_UNKNOWN_LEASE);
	if (db_query(w->pool,
	             "SELECT job_id, invoice_id, action, attempts, source, event, event_bare,"
	             " attempt_id, status, flag, idempotency_key"
	             " FROM bayarhook.job_claim(p_owner => $1, p_limit => $2,"
	             " p_leases => $3, p_default_lease => $4,"
	             " p_skip => ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))",
	             5, p, claim_done, w) == 0)
		w->claiming = true;
}

static void worker_claim(struct worker *w)
{
	worker_claim_as(w, false);
}

static void worker_woken(void *arg)
{
	worker_claim(arg);
}

/* worker_owner_reclaim() took jobs back: run them. */
static void worker_taken(void *arg)
{
	worker_claim(arg);
}

static void worker_reclaim(struct worker *w)
{
	if (w->state == WORKER_RUNNING)
		worker_owner_reclaim(&w->owner, w->pool);
}

/* ---- timers ---- */

static void worker_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (db_pool_up(w->pool) == 0)
		return;
	if (w->ticks % WORKER_RECLAIM_TICKS == 0)
		worker_reclaim(w);
	if (w->ticks % WORKER_METRICS_TICKS == 0)
		worker_gauges_refresh(&w->gauges);
	w->ticks++;
	worker_claim_as(w, true);
}

static void worker_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_claim(arg);
}

/* From the loop, once however often it was asked for meanwhile. */
static void worker_kick(struct worker *w)
{
	if (w->state == WORKER_RUNNING)
		event_active(w->kick, EV_TIMEOUT, 1);
}

void worker_wake_now(struct worker *w)
{
	if (w != NULL && w->nactions > 0)
		worker_kick(w);
}

static void worker_connected(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	/* First thing once connected: jobs a crash here left behind. */
	w->ticks = 0;
	worker_hold_sync(&w->hold);
	worker_reclaim(w);
	worker_claim_as(w, true);
}

static void worker_pool_state(bool up, void *arg)
{
	struct worker *w = arg;
	struct timeval now = {0, 0};

	/*
	 * From the loop, not from inside the pool's callback: the pool is in
	 * the middle of setting the connection up when it calls us.
	 */
	if (up)
		evtimer_add(w->connected, &now);
}

/* ---- life ---- */

static int worker_apply(struct worker *w, const struct config *cfg, char *err, size_t errlen)
{
	struct action_set *set;
	char *leases;

	action_ctx_set_pool_size(w->actx, cfg->concurrency);
	set = action_set_new(w->actx, cfg, err, errlen);
	if (set == NULL)
		return -1;
	leases = action_set_leases(set, WORKER_LEASE_MARGIN);
	action_set_free(w->actions);
	free(w->leases);
	w->actions = set;
	w->leases = leases;
	w->concurrency = cfg->concurrency;
	w->nactions = cfg->nactions;
	w->max_attempts = cfg->max_attempts;
	w->backoff_initial = cfg->backoff_initial;
	w->backoff_max = cfg->backoff_max;
	direct_set(w, cfg);
	return 0;
}

struct worker *worker_new(struct event_base *base, const struct config *cfg, char *err,
                          size_t errlen)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	struct timeval tick = {WORKER_TICK_MS / 1000, (WORKER_TICK_MS % 1000) * 1000};

	w->base = base;
	LIST_INIT(&w->jobs);
	LIST_INIT(&w->rounds);
	worker_owner_init(&w->owner, worker_taken, w);
	w->tick = event_new(base, -1, EV_PERSIST, worker_tick, w);
	w->wake = evtimer_new(base, worker_wake, w);
	w->kick = event_new(base, -1, 0, worker_wake, w);
	w->connected = evtimer_new(base, worker_connected, w);
	w->pool = db_pool_new(base, cfg->conninfo, pool_plan(cfg->pool_size).queue, "worker");
	w->actx = action_ctx_new(base, cfg->conninfo);
	w->gauges.pool = w->pool;
	worker_finish_init(&w->finish, w->pool, w->owner.id);
	if (w->tick == NULL || w->wake == NULL || w->kick == NULL || w->connected == NULL ||
	    w->pool == NULL || w->actx == NULL) {
		snprintf(err, errlen, "cannot set up the worker's events");
		goto fail;
	}
	if (worker_apply(w, cfg, err, errlen) < 0)
		goto fail;
	worker_hold_init(&w->hold, w->pool, worker_taken, w);
	worker_hold_set(&w->hold, cfg, false); /* runs once the pool is up */
	w->listen = worker_listen_new(base, cfg, w->pool, worker_woken, w);
	if (w->listen == NULL) {
		snprintf(err, errlen, "cannot set up the job wake-up");
		goto fail;
	}
	db_pool_on_state(w->pool, worker_pool_state, w);
	event_add(w->tick, &tick);
	log_info("fulfillment worker owner=%s concurrency=%d actions=%zu", w->owner.id,
	         w->concurrency, cfg->nactions);
	return w;
fail:
	worker_free(w);
	return NULL;
}

int worker_set_config(struct worker *w, const struct config *cfg, char *err, size_t errlen)
{
	if (worker_apply(w, cfg, err, errlen) < 0)
		return -1;
	worker_hold_set(&w->hold, cfg, true);
	worker_claim(w);
	return 0;
}

static void worker_abort(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct job *job, *next;
	int n = 0;

	(void)fd;
	(void)what;
	w->state = WORKER_ABORTED;
	for (job = LIST_FIRST(&w->jobs); job; job = next) {
		next = LIST_NEXT(job, link);
		if (job->phase != JOB_RUNNING || job->run == NULL || !action_cancel(job->run))
			continue;
		job->run = NULL;
		job->release = true;
		n++;
		job_record(job);
	}
	if (n)
		log_warnx("stopping: %d job(s) still running after %d s were stopped and put back",
		          n, WORKER_STOP_GRACE_SEC);
}

void worker_stop(struct worker *w)
{
	struct timeval grace = {WORKER_STOP_GRACE_SEC, 0};

	if (w == NULL || w->state != WORKER_RUNNING)
		return;
	w->state = WORKER_STOPPING;
	worker_listen_stop(w->listen);
	event_del(w->tick);
	event_del(w->wake);
	event_del(w->kick);
	if (w->njobs || w->nrounds)
		log_notice("stopping: waiting up to %d s for %d running job(s) and %d sql round(s)",
		           WORKER_STOP_GRACE_SEC, w->njobs, w->nrounds);
	w->grace = evtimer_new(w->base, worker_abort, w);
	if (w->grace == NULL || evtimer_add(w->grace, &grace) < 0)
		worker_abort(-1, 0, w);
}

bool worker_idle(const struct worker *w)
{
	return w == NULL || (w->njobs == 0 && w->nrounds == 0 && !w->claiming &&
	                     !worker_finish_busy(&w->finish));
}

void worker_set_gateway(struct worker *w, struct gateway *gw)
{
	action_ctx_set_gateway(w->actx, gw);
}

void worker_free(struct worker *w)
{
	struct job *job;
	struct direct_round *r;

	if (w == NULL)
		return;
	if (w->njobs)
		log_warnx("exiting with %d job(s) unfinished; they run again once their lease ends",
		          w->njobs);
	if (w->tick)
		event_free(w->tick);
	if (w->wake)
		event_free(w->wake);
	if (w->kick)
		event_free(w->kick);
	if (w->grace)
		event_free(w->grace);
	if (w->connected)
		event_free(w->connected);
	/* Rolled back: their jobs stay pending, their statements undone. */
	while ((r = LIST_FIRST(&w->rounds)) != NULL) {
		LIST_REMOVE(r, link);
		action_sql_direct_stop(r->d);
		free(r->action);
		free(r);
	}
	/* The set first: runs hold the only other references to its actions. */
	action_set_free(w->actions);
	action_ctx_free(w->actx); /* no callbacks from here on */
	worker_listen_free(w->listen);
	db_pool_free(w->pool);
	while ((job = LIST_FIRST(&w->jobs)) != NULL)
		job_free(job);
	worker_finish_clear(&w->finish); /* the pool is gone: its answer never comes */
	worker_hold_clear(&w->hold);
	free(w->leases);
	for (char **name = w->direct; name && *name; name++)
		free(*name);
	free(w->direct);
	free(w->direct_skip);
	free(w);
}
