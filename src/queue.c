/*
 * queue.c: the job queue of `serve` (see queue.h).
 *
 * Wake-ups: LISTEN bayarhook_jobs (ingest() notifies when it inserts jobs),
 * a one-shot timer for this process's own retries, and a 1 s tick for
 * everything else (other processes' retries, expired leases). Each wake-up
 * claims at most concurrency - running jobs with one statement, which also
 * closes the previous attempt of a job taken over and opens the new one.
 *
 * A job is held by its claim (lease_owner, attempts) until lease_until =
 * now + the action's timeout + QUEUE_LEASE_MARGIN. Every later write to it
 * is fenced on that claim; a write that finds it gone changes nothing. A
 * crashed process's jobs are taken over when their lease ends, or at once
 * when the process was on this host and is gone (queue_reclaim).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "ident.h"
#include "log.h"
#include "queue.h"
#include "stats.h"
#include "utf8.h"

#define QUEUE_POOL_SIZE 3
#define QUEUE_TICK_MS 1000
#define QUEUE_METRICS_TICKS 5  /* refresh the jobs gauges every 5 s */
#define QUEUE_RECLAIM_TICKS 30 /* look for jobs of dead local processes */
#define QUEUE_OUTPUT_MAX 8192  /* bytes of output kept per attempt */
#define QUEUE_RECORD_TRIES 30  /* 2 s apart: about the lease margin */
#define QUEUE_UNKNOWN_LEASE 90 /* seconds, for a job whose action is unknown */

enum queue_state {
	QUEUE_RUNNING,  /* claiming */
	QUEUE_STOPPING, /* no claims; running jobs get QUEUE_STOP_GRACE_SEC */
	QUEUE_ABORTED,  /* grace over: exec and forward runs stopped, their jobs put back */
};

enum job_state {
	JOB_RUNNING,   /* its action runs (job->run) */
	JOB_RECORDING, /* the outcome is being written, or waits to be retried */
};

struct job {
	LIST_ENTRY(job) link;
	struct queue *q;
	enum job_state state;
	char id[24];
	char attempt_id[24];
	int attempts;     /* after the claim */
	int max_attempts; /* of its action when claimed */
	char *action;
	char *invoice;
	struct action_run *run;
	/* the outcome, as the parameters of the finishing statement */
	char outcome[16];
	char *exit_code, *http_status, *row_count; /* NULL: SQL NULL */
	char *output;
	char *error;
	char delay[32];
	bool release; /* put back (SIGTERM) rather than finished */
	int record_tries;
	struct event *retry;
};

struct queue {
	struct event_base *base;
	struct db_pool *pool;
	struct action_ctx *actx;
	struct action_set *actions;
	char *leases; /* {"action": lease seconds} for the claim */
	char owner[160];
	char host[80];
	char scope[48];
	int concurrency, max_attempts, backoff_initial, backoff_max;
	enum queue_state state;
	bool claiming;    /* a claim is in flight */
	bool claim_again; /* something happened meanwhile: claim once more */
	bool reclaiming;
	bool counting;
	int njobs;
	LIST_HEAD(, job) jobs;
	struct event *tick, *wake, *grace, *connected;
	int64_t wake_at; /* monotonic ms when wake fires */
	int claim_n;     /* rows asked for by the claim in flight */
	unsigned ticks;
};

/* ---- statements ---- */

/*
 * $1 owner, $2 how many, $3 lease seconds per action (jsonb), $4 lease of an
 * unknown action. ORDER BY next_attempt_at: oldest due first.
 */
static const char SQL_CLAIM[] =
    "WITH c AS ("
    " SELECT id FROM bayarhook.jobs"
    "  WHERE (state = 'pending' AND next_attempt_at <= now())"
    "     OR (state = 'running' AND lease_until < now())"
    "  ORDER BY next_attempt_at, id LIMIT $2::int"
    "  FOR UPDATE SKIP LOCKED"
    "), j AS ("
    " UPDATE bayarhook.jobs AS t SET state = 'running', attempts = t.attempts + 1,"
    "  lease_owner = $1,"
    "  lease_until = now() + make_interval(secs =>"
    "   coalesce(($3::jsonb ->> t.action)::int, $4::int))"
    "  FROM c WHERE t.id = c.id"
    "  RETURNING t.id, t.invoice_id, t.action, t.attempts, t.source, t.event"
    "), ab AS ("
    " UPDATE bayarhook.job_attempts AS a SET outcome = 'abandoned', finished_at = now()"
    "  FROM j WHERE a.job_id = j.id AND a.finished_at IS NULL"
    "), ins AS ("
    " INSERT INTO bayarhook.job_attempts (job_id, attempt, runner)"
    "  SELECT id, attempts, $1 FROM j RETURNING id, job_id"
    ")"
    " SELECT j.id, j.invoice_id, j.action, j.attempts, j.source, j.event::text,"
    "  (j.event - 'timestamp' - 'signature')::text, ins.id"
    " FROM j JOIN ins ON ins.job_id = j.id ORDER BY j.id";

/*
 * $1 job, $2 owner, $3 attempts (the fence), $4 attempt row, $5 outcome,
 * $6 exit code, $7 HTTP status, $8 rows, $9 output, $10 error,
 * $11 max_attempts, $12 retry delay in seconds. Returns the new state, or
 * no row when the claim is gone.
 */
static const char SQL_FINISH[] =
    "WITH j AS ("
    " UPDATE bayarhook.jobs SET"
    "  state = CASE WHEN $5::text = 'succeeded' THEN 'succeeded'"
    "               WHEN attempts >= $11::int THEN 'dead' ELSE 'pending' END,"
    "  finished_at = CASE WHEN $5::text = 'succeeded' OR attempts >= $11::int"
    "                     THEN now() END,"
    "  next_attempt_at = CASE WHEN $5::text = 'succeeded' OR attempts >= $11::int"
    "                     THEN next_attempt_at"
    "                     ELSE now() + $12::double precision * interval '1 second' END,"
    "  last_error = $10, lease_owner = NULL, lease_until = NULL"
    "  WHERE id = $1::bigint AND lease_owner = $2 AND attempts = $3::int"
    "    AND state = 'running'"
    "  RETURNING state"
    "), a AS ("
    " UPDATE bayarhook.job_attempts SET finished_at = now(), outcome = $5::text,"
    "  exit_code = $6::int, http_status = $7::int, row_count = $8::bigint, output = $9"
    "  WHERE id = $4::bigint AND finished_at IS NULL AND EXISTS (SELECT 1 FROM j)"
    ")"
    " SELECT state FROM j";

/*
 * SIGTERM after the grace: the job goes back, due now, and the interrupted
 * attempt does not count. $1 job, $2 owner, $3 attempts, $4 attempt row.
 */
static const char SQL_RELEASE[] =
    "WITH j AS ("
    " UPDATE bayarhook.jobs SET state = 'pending', attempts = attempts - 1,"
    "  next_attempt_at = now(), lease_owner = NULL, lease_until = NULL"
    "  WHERE id = $1::bigint AND lease_owner = $2 AND attempts = $3::int"
    "    AND state = 'running'"
    "  RETURNING id"
    "), a AS ("
    " UPDATE bayarhook.job_attempts SET finished_at = now(), outcome = 'abandoned',"
    "  output = 'interrupted: bayarhook stopped'"
    "  WHERE id = $4::bigint AND finished_at IS NULL AND EXISTS (SELECT 1 FROM j)"
    ")"
    " SELECT id FROM j";

/* $1 host, $2 scope, $3 our owner: claims of other processes of this host and kernel. */
static const char SQL_LOCAL_OWNERS[] =
    "SELECT DISTINCT lease_owner FROM bayarhook.jobs"
    " WHERE state = 'running' AND split_part(lease_owner, ':', 1) = $1"
    "   AND split_part(lease_owner, ':', 3) = $2 AND lease_owner <> $3";

/* $1 owners (a JSON array): their leases end now. */
static const char SQL_EXPIRE[] =
    "WITH r AS ("
    " UPDATE bayarhook.jobs SET lease_until = now() - interval '1 second'"
    "  WHERE state = 'running'"
    "    AND lease_owner IN (SELECT jsonb_array_elements_text($1::jsonb))"
    "  RETURNING id"
    ") SELECT count(*) FROM r";

static const char SQL_COUNTS[] =
    "SELECT state, count(*),"
    " count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= now())"
    " FROM bayarhook.jobs GROUP BY state";

static void queue_claim(struct queue *q);
static void job_record(struct job *job);

/* ---- backoff ---- */

int64_t queue_backoff_ms(int initial, int max, int attempt, uint32_t rnd)
{
	int64_t d = initial < 1 ? 1 : initial, half;

	if (max < d)
		max = (int)d;
	for (int i = 1; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	d *= 1000;
	half = d / 2;
	return half + (int64_t)(rnd % (uint64_t)(half + 1));
}

static uint32_t random_u32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)random();
	return r;
}

/* ---- text for the database ---- */

/*
 * Output of an attempt as valid UTF-8 text of at most max bytes: PostgreSQL
 * refuses invalid sequences and NUL in text, and a script may print anything.
 */
static char *clean_text(const char *s, size_t len, size_t max)
{
	char *out = malloc((len < max ? len : max) + 1);
	size_t o = 0, i = 0;

	if (out == NULL)
		return NULL;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

		if (n > 1 && (i + n > len || !utf8_valid(s + i, n)))
			n = 0; /* not a valid sequence: one '?' for its first byte */
		if (o + (n ? n : 1) > max)
			break;
		if (n == 0) {
			out[o++] = '?';
			i++;
		} else if (n == 1 && c == 0) {
			out[o++] = ' ';
			i++;
		} else if (n == 1 && c >= 0x80) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		}
	}
	out[o] = '\0';
	return out;
}

static char *num_text(long long v)
{
	char *s;

	return asprintf(&s, "%lld", v) < 0 ? NULL : s;
}

/* ---- jobs ---- */

static void job_free(struct job *job)
{
	if (job == NULL)
		return;
	LIST_REMOVE(job, link);
	job->q->njobs--;
	if (job->retry)
		event_free(job->retry);
	free(job->action);
	free(job->invoice);
	free(job->exit_code);
	free(job->http_status);
	free(job->row_count);
	free(job->output);
	free(job->error);
	free(job);
}

/* After a job is done with, there is room for another. */
static void job_done(struct job *job)
{
	struct queue *q = job->q;

	job_free(job);
	queue_claim(q);
}

static const char *outcome_name(enum action_outcome o)
{
	switch (o) {
	case ACTION_SUCCEEDED:
		return "succeeded";
	case ACTION_TIMEOUT:
		return "timeout";
	case ACTION_FAILED:
		break;
	}
	return "failed";
}

/* Fills the finishing parameters of job from res. Returns 0 or -1 (memory). */
static int job_set_outcome(struct job *job, const struct action_result *res)
{
	struct queue *q = job->q;

	snprintf(job->outcome, sizeof(job->outcome), "%s", outcome_name(res->outcome));
	free(job->output);
	free(job->error);
	job->output = clean_text(res->output ? res->output : "", res->output ? res->output_len : 0,
	                         QUEUE_OUTPUT_MAX);
	job->error = res->error ? clean_text(res->error, strlen(res->error), 1024) : NULL;
	/* A second outcome for the same attempt (a failed COMMIT after job_tx) replaces the first.
	 */
	free(job->exit_code);
	free(job->http_status);
	free(job->row_count);
	job->exit_code = job->http_status = job->row_count = NULL;
	if (res->exit_code >= 0)
		job->exit_code = num_text(res->exit_code);
	if (res->http_status > 0)
		job->http_status = num_text(res->http_status);
	if (res->row_count >= 0)
		job->row_count = num_text(res->row_count);
	if (res->outcome != ACTION_SUCCEEDED) {
		int64_t ms = queue_backoff_ms(q->backoff_initial, q->backoff_max, job->attempts,
		                              random_u32());

		snprintf(job->delay, sizeof(job->delay), "%lld.%03lld", (long long)(ms / 1000),
		         (long long)(ms % 1000));
	} else {
		snprintf(job->delay, sizeof(job->delay), "0");
	}
	if (job->output == NULL || (res->error && job->error == NULL))
		return -1;
	return 0;
}

static void job_log_outcome(struct job *job, const char *state)
{
	if (strcmp(state, "succeeded") == 0)
		log_info("job succeeded job=%s invoice=%s action=%s attempt=%d", job->id,
		         job->invoice, job->action, job->attempts);
	else if (strcmp(state, "dead") == 0)
		log_errx("job dead job=%s invoice=%s action=%s attempt=%d error=\"%s\"", job->id,
		         job->invoice, job->action, job->attempts, job->error ? job->error : "");
	else
		log_warnx("job failed job=%s invoice=%s action=%s attempt=%d retry_in=%ss "
		          "error=\"%s\"",
		          job->id, job->invoice, job->action, job->attempts, job->delay,
		          job->error ? job->error : "");
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
static void queue_wake_in(struct queue *q, const char *delay)
{
	int64_t ms = (int64_t)(strtod(delay, NULL) * 1000) + 20, at = mono_ms() + ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	if (q->state != QUEUE_RUNNING)
		return;
	if (evtimer_pending(q->wake, NULL) && q->wake_at <= at)
		return;
	q->wake_at = at;
	evtimer_add(q->wake, &tv);
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

	if (++job->record_tries >= QUEUE_RECORD_TRIES) {
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
	    (job->retry = evtimer_new(job->q->base, job_retry_cb, job)) == NULL) {
		job_done(job);
		return;
	}
	evtimer_add(job->retry, &tv);
}

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
	} else if (PQntuples(res) == 0) {
		log_warnx("job outcome dropped job=%s action=%s: its claim was taken over "
		          "(lease expired)",
		          job->id, job->action);
	} else {
		const char *state = PQgetvalue(res, 0, 0);

		metrics_inc(METRIC_JOB_ATTEMPTS, job->outcome);
		job_log_outcome(job, state);
		if (strcmp(state, "pending") == 0)
			queue_wake_in(job->q, job->delay);
	}
	job_done(job);
}

/*
 * The parameters of SQL_FINISH for a job, in order; att and max are the
 * caller's buffers for the two numbers.
 */
static void job_finish_params(const struct job *job, char att[16], char max[16], const char *p[12])
{
	snprintf(att, 16, "%d", job->attempts);
	snprintf(max, 16, "%d", job->max_attempts);
	p[0] = job->id;
	p[1] = job->q->owner;
	p[2] = att;
	p[3] = job->attempt_id;
	p[4] = job->outcome;
	p[5] = job->exit_code;
	p[6] = job->http_status;
	p[7] = job->row_count;
	p[8] = job->output;
	p[9] = job->error;
	p[10] = max;
	p[11] = job->delay;
}

static void job_record(struct job *job)
{
	struct queue *q = job->q;
	int rc;

	job->state = JOB_RECORDING;
	if (job->release) {
		const char *p[4] = {job->id, q->owner, NULL, job->attempt_id};
		char att[16];

		snprintf(att, sizeof(att), "%d", job->attempts);
		p[2] = att;
		rc = db_query(q->pool, SQL_RELEASE, 4, p, job_recorded, job);
	} else {
		char att[16], max[16];
		const char *p[12];

		job_finish_params(job, att, max, p);
		rc = db_query(q->pool, SQL_FINISH, 12, p, job_recorded, job);
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
	if (job_set_outcome(job, &res) < 0) {
		log_errx("out of memory recording job=%s", job->id);
		job_done(job);
		return;
	}
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
	if (job_set_outcome(job, res) < 0) {
		log_errx("out of memory recording job=%s", job->id);
		job_done(job);
		return;
	}
	job_record(job);
}

/* The transaction of a sql action on our database: complete the job in it. */
struct tx_step {
	action_tx_next_fn next;
	void *token;
};

static void job_tx_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct tx_step *st = arg;
	action_tx_next_fn next = st->next;
	void *token = st->token;

	(void)sqlstate;
	free(st);
	if (res == NULL)
		next(token, false, false, err);
	else
		next(token, PQntuples(res) == 1, PQntuples(res) == 0, NULL);
}

static void job_tx(struct db_session *s, const struct action_result *res, void *arg,
                   action_tx_next_fn next, void *token)
{
	struct job *job = arg;
	struct tx_step *st = malloc(sizeof(*st));
	char att[16], max[16];

	if (st == NULL || job_set_outcome(job, res) < 0) {
		free(st);
		next(token, false, false, "out of memory");
		return;
	}
	st->next = next;
	st->token = token;
	{
		const char *p[12];

		job_finish_params(job, att, max, p);
		db_session_query(s, SQL_FINISH, 12, p, job_tx_done, st);
	}
}

static void job_start(struct queue *q, PGresult *res, int row)
{
	struct job *job = calloc(1, sizeof(*job));
	struct action *a;
	struct action_job aj;
	char err[512];

	if (job == NULL) {
		log_errx("out of memory: claimed job %s left to its lease",
		         PQgetvalue(res, row, 0));
		return;
	}
	job->q = q;
	LIST_INSERT_HEAD(&q->jobs, job, link);
	q->njobs++;
	snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(res, row, 0));
	snprintf(job->attempt_id, sizeof(job->attempt_id), "%s", PQgetvalue(res, row, 7));
	job->attempts = atoi(PQgetvalue(res, row, 3));
	job->invoice = strdup(PQgetvalue(res, row, 1));
	job->action = strdup(PQgetvalue(res, row, 2));
	job->max_attempts = q->max_attempts;
	if (job->invoice == NULL || job->action == NULL) {
		log_errx("out of memory: claimed job %s left to its lease", job->id);
		job_free(job);
		return;
	}
	if (q->state == QUEUE_ABORTED) {
		/* Claimed as the stop grace ran out: give it straight back. */
		job->release = true;
		job_record(job);
		return;
	}
	a = action_set_find(q->actions, job->action);
	if (a == NULL) {
		job_fail_now(job, "unknown action");
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
	log_debug("job started job=%s invoice=%s action=%s attempt=%d", job->id, job->invoice,
	          job->action, job->attempts);
	job->state = JOB_RUNNING;
	job->run =
	    action_start(q->actx, a, &aj, job_tx, job, job_action_done, job, err, sizeof(err));
	if (job->run == NULL)
		job_fail_now(job, err);
}

/* ---- claiming ---- */

static void claim_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct queue *q = arg;
	int rows = 0;

	(void)sqlstate;
	q->claiming = false;
	if (res == NULL) {
		log_warnx("claiming jobs failed: %s", err);
		return;
	}
	rows = PQntuples(res);
	/* Claimed even while stopping: they run (within the grace) rather than wait. */
	for (int i = 0; i < rows; i++)
		job_start(q, res, i);
	/* A full batch may have left more behind. */
	if (rows == q->claim_n || q->claim_again)
		queue_claim(q);
}

static void queue_claim(struct queue *q)
{
	int room = q->concurrency - q->njobs;
	char n[16], unknown[16];
	const char *p[4] = {q->owner, n, q->leases, unknown};

	if (q->state != QUEUE_RUNNING || room <= 0 || db_pool_up(q->pool) == 0)
		return;
	if (q->claiming) {
		q->claim_again = true;
		return;
	}
	q->claim_again = false;
	q->claim_n = room;
	snprintf(n, sizeof(n), "%d", room);
	snprintf(unknown, sizeof(unknown), "%d", QUEUE_UNKNOWN_LEASE);
	if (db_query(q->pool, SQL_CLAIM, 4, p, claim_done, q) == 0)
		q->claiming = true;
}

static void queue_notified(const char *channel, const char *payload, void *arg)
{
	(void)channel;
	(void)payload;
	queue_claim(arg);
}

/* ---- dead local processes ---- */

static void reclaim_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct queue *q = arg;

	(void)sqlstate;
	q->reclaiming = false;
	if (res == NULL) {
		log_warnx("taking back jobs of dead processes failed: %s", err);
		return;
	}
	if (PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) > 0)
		log_notice("took back %s job(s) claimed by bayarhook processes of this host that "
		           "are gone",
		           PQgetvalue(res, 0, 0));
	queue_claim(q);
}

/* "host:pid:scope:nonce" of this host and scope: is that process gone? */
static bool owner_dead(const struct queue *q, const char *owner)
{
	const char *p = strchr(owner, ':');
	char *end;
	long pid;

	if (p == NULL || strcmp(owner, q->owner) == 0)
		return false;
	pid = strtol(p + 1, &end, 10);
	if (end == p + 1 || *end != ':' || pid <= 0)
		return false;
	/* Our own pid under another nonce: an earlier life of this pid, gone. */
	if (pid == (long)getpid())
		return true;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void owners_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct queue *q = arg;
	cJSON *dead;
	char *text;
	const char *p[1];
	int n = 0;

	(void)sqlstate;
	if (res == NULL) {
		q->reclaiming = false;
		log_warnx("looking for jobs of dead processes failed: %s", err);
		return;
	}
	if ((dead = cJSON_CreateArray()) == NULL) {
		q->reclaiming = false;
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *owner = PQgetvalue(res, i, 0);

		if (owner_dead(q, owner)) {
			cJSON_AddItemToArray(dead, cJSON_CreateString(owner));
			n++;
		}
	}
	text = n ? cJSON_PrintUnformatted(dead) : NULL;
	cJSON_Delete(dead);
	p[0] = text;
	if (text == NULL || db_query(q->pool, SQL_EXPIRE, 1, p, reclaim_done, q) < 0)
		q->reclaiming = false;
	free(text);
}

static void queue_reclaim(struct queue *q)
{
	const char *p[3] = {q->host, q->scope, q->owner};

	if (q->reclaiming || q->state != QUEUE_RUNNING)
		return;
	if (db_query(q->pool, SQL_LOCAL_OWNERS, 3, p, owners_done, q) == 0)
		q->reclaiming = true;
}

/* ---- gauges ---- */

static void counts_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	static const char *const states[] = {"pending", "running", "succeeded", "dead"};
	struct queue *q = arg;
	double due = 0;

	(void)sqlstate;
	q->counting = false;
	if (res == NULL) {
		log_debug("counting jobs failed: %s", err);
		return;
	}
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		double v = 0;

		for (int i = 0; i < PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, i, 0), states[s]) == 0)
				v = strtod(PQgetvalue(res, i, 1), NULL);
		metrics_set(METRIC_JOBS, states[s], v);
	}
	for (int i = 0; i < PQntuples(res); i++)
		due += strtod(PQgetvalue(res, i, 2), NULL);
	metrics_set(METRIC_QUEUE_DEPTH, NULL, due);
}

static void queue_count(struct queue *q)
{
	if (q->counting)
		return;
	if (db_query(q->pool, SQL_COUNTS, 0, NULL, counts_done, q) == 0)
		q->counting = true;
}

/* ---- timers ---- */

static void queue_tick(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	(void)fd;
	(void)what;
	if (db_pool_up(q->pool) == 0)
		return;
	if (q->ticks % QUEUE_RECLAIM_TICKS == 0)
		queue_reclaim(q);
	if (q->ticks % QUEUE_METRICS_TICKS == 0)
		queue_count(q);
	q->ticks++;
	queue_claim(q);
}

static void queue_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	queue_claim(arg);
}

static void queue_connected(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	(void)fd;
	(void)what;
	/* First thing once connected: jobs a crash here left behind. */
	q->ticks = 0;
	queue_reclaim(q);
	queue_claim(q);
}

static void queue_pool_state(bool up, void *arg)
{
	struct queue *q = arg;
	struct timeval now = {0, 0};

	/*
	 * From the loop, not from inside the pool's callback: the pool is in
	 * the middle of setting the connection up when it calls us.
	 */
	if (up)
		evtimer_add(q->connected, &now);
}

/* ---- identity ---- */

static void queue_identity(struct queue *q)
{
	char boot[64] = "", nonce[9], proc[100]; /* host (< 80) ":" pid */
	struct stat st;
	FILE *f;
	uint32_t r = random_u32();

	ident_host(q->host, sizeof(q->host));
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re")) != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		fclose(f);
	}
	boot[strspn(boot, "0123456789abcdef")] = '\0';
	if (stat("/proc/self/ns/pid", &st) < 0)
		st.st_ino = 0;
	/* Same boot and pid namespace: a pid from the owner names the same process. */
	snprintf(q->scope, sizeof(q->scope), "%.8s-%lu", boot[0] ? boot : "noboot",
	         (unsigned long)st.st_ino);
	snprintf(nonce, sizeof(nonce), "%08x", r);
	ident_process(proc, sizeof(proc));
	snprintf(q->owner, sizeof(q->owner), "%s:%s:%s", proc, q->scope, nonce);
}

const char *queue_owner(const struct queue *q)
{
	return q->owner;
}

/* ---- life ---- */

static int queue_apply(struct queue *q, const struct config *cfg, char *err, size_t errlen)
{
	struct action_set *set;
	char *leases;

	action_ctx_set_pool_size(q->actx, cfg->concurrency);
	set = action_set_new(q->actx, cfg, err, errlen);
	if (set == NULL)
		return -1;
	leases = action_set_leases(set, QUEUE_LEASE_MARGIN);
	if (leases == NULL) {
		action_set_free(set);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	action_set_free(q->actions);
	free(q->leases);
	q->actions = set;
	q->leases = leases;
	q->concurrency = cfg->concurrency;
	q->max_attempts = cfg->max_attempts;
	q->backoff_initial = cfg->backoff_initial;
	q->backoff_max = cfg->backoff_max;
	return 0;
}

struct queue *queue_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	struct queue *q = calloc(1, sizeof(*q));
	struct timeval tick = {QUEUE_TICK_MS / 1000, (QUEUE_TICK_MS % 1000) * 1000};

	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->base = base;
	LIST_INIT(&q->jobs);
	queue_identity(q);
	if ((q->actx = action_ctx_new(base, cfg->conninfo)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (queue_apply(q, cfg, err, errlen) < 0)
		goto fail;
	q->tick = event_new(base, -1, EV_PERSIST, queue_tick, q);
	q->wake = evtimer_new(base, queue_wake, q);
	q->connected = evtimer_new(base, queue_connected, q);
	q->pool = db_pool_new(base, cfg->conninfo, QUEUE_POOL_SIZE, "queue");
	if (q->tick == NULL || q->wake == NULL || q->connected == NULL || q->pool == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	db_pool_listen(q->pool, "bayarhook_jobs", queue_notified, q);
	db_pool_on_state(q->pool, queue_pool_state, q);
	event_add(q->tick, &tick);
	log_info("fulfillment worker owner=%s concurrency=%d actions=%zu", q->owner, q->concurrency,
	         cfg->nactions);
	return q;
fail:
	queue_free(q);
	return NULL;
}

int queue_set_config(struct queue *q, const struct config *cfg, char *err, size_t errlen)
{
	if (queue_apply(q, cfg, err, errlen) < 0)
		return -1;
	queue_claim(q);
	return 0;
}

static void queue_abort(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct job *job, *next;
	int n = 0;

	(void)fd;
	(void)what;
	q->state = QUEUE_ABORTED;
	for (job = LIST_FIRST(&q->jobs); job; job = next) {
		next = LIST_NEXT(job, link);
		if (job->state != JOB_RUNNING || job->run == NULL || !action_cancel(job->run))
			continue;
		job->run = NULL;
		job->release = true;
		n++;
		job_record(job);
	}
	if (n)
		log_warnx("stopping: %d job(s) still running after %d s were stopped and put back",
		          n, QUEUE_STOP_GRACE_SEC);
}

void queue_stop(struct queue *q)
{
	struct timeval grace = {QUEUE_STOP_GRACE_SEC, 0};

	if (q == NULL || q->state != QUEUE_RUNNING)
		return;
	q->state = QUEUE_STOPPING;
	event_del(q->tick);
	event_del(q->wake);
	if (q->njobs)
		log_notice("stopping: waiting up to %d s for %d running job(s)",
		           QUEUE_STOP_GRACE_SEC, q->njobs);
	q->grace = evtimer_new(q->base, queue_abort, q);
	if (q->grace == NULL || evtimer_add(q->grace, &grace) < 0)
		queue_abort(-1, 0, q);
}

bool queue_idle(const struct queue *q)
{
	return q == NULL || (q->njobs == 0 && !q->claiming);
}

void queue_free(struct queue *q)
{
	struct job *job;

	if (q == NULL)
		return;
	if (q->njobs)
		log_warnx("exiting with %d job(s) unfinished; they run again once their lease ends",
		          q->njobs);
	if (q->tick)
		event_free(q->tick);
	if (q->wake)
		event_free(q->wake);
	if (q->grace)
		event_free(q->grace);
	if (q->connected)
		event_free(q->connected);
	/* The set first: runs hold the only other references to its actions. */
	action_set_free(q->actions);
	action_ctx_free(q->actx); /* no callbacks from here on */
	db_pool_free(q->pool);
	while ((job = LIST_FIRST(&q->jobs)) != NULL)
		job_free(job);
	free(q->leases);
	free(q);
}
