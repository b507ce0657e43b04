/*
 * action_sql_batch.c: sql runs on the receiver's own database that start
 * together share one transaction (issue 16: one commit for many jobs).
 *
 * BEGIN; the timeout; for each run SAVEPOINT, its statement and the row
 * check, a run whose statement fails or whose rows do not match rolled back
 * to its savepoint and reported at once, alone; then the queue's completion
 * of every other job in one statement (action_tx_fn); COMMIT reports them,
 * all succeeded with their jobs, or all failed. A job found taken over at
 * the completion is reported so, and the transaction is rolled back and
 * run again without it (rare: its lease ran out while it waited). The savepoints nest (none is
 * released): at most SQL_BATCH_MAX, under PostgreSQL's 64 cached subtransactions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "action_sql_int.h"
#include "db.h"
#include "xmalloc.h"

struct sql_batch {
	struct sql_action *q;
	struct db_session *s;
	int n, cur, live;
	struct action_run *runs[SQL_BATCH_MAX];  /* NULL once reported or stopped */
	struct action_result res[SQL_BATCH_MAX]; /* of a statement that succeeded */
	struct action_tx_job tx[SQL_BATCH_MAX];  /* the completions asked for */
	int slot_of[SQL_BATCH_MAX];              /* tx[k] is runs[slot_of[k]] */
	int ntx;
	char ms[32]; /* statement_timeout */
	/* The failure of runs[cur], reported once its savepoint is rolled back. */
	struct action_result fail;
	char fail_msg[512];
};

static void batch_next(struct sql_batch *b);

static void batch_end(struct sql_batch *b)
{
	db_session_close(b->s);
	free(b);
}

static void batch_report(struct sql_batch *b, int i, const struct action_result *res)
{
	struct action_run *run = b->runs[i];

	b->runs[i] = NULL;
	b->live--;
	sql_state(run)->batch = NULL;
	action_run_finish(run, res);
}

/* The transaction is lost: every run not yet reported fails with it. */
static void batch_fail_all(struct sql_batch *b, const char *what, const char *err,
                           const char *sqlstate)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s%s%s", what, err && *err ? ": " : "", err ? err : "");
	for (int i = 0; i < b->n; i++) {
		struct action_result res;

		if (b->runs[i] == NULL)
			continue;
		sql_result_init(b->runs[i], &res, ACTION_FAILED);
		if (sqlstate != NULL && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0 &&
		    i == b->cur)
			res.outcome = ACTION_TIMEOUT;
		res.error = msg;
		batch_report(b, i, &res);
	}
	batch_end(b);
}

static void batch_committed(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;

	if (pgres == NULL) {
		b->cur = -1;
		batch_fail_all(b, "commit failed", err, sqlstate);
		return;
	}
	for (int i = 0; i < b->n; i++) {
		struct action_result res;

		if (b->runs[i] == NULL)
			continue;
		sql_result_init(b->runs[i], &res, ACTION_SUCCEEDED);
		res.finished = true;
		batch_report(b, i, &res);
	}
	batch_end(b);
}

static void batch_rolled_back(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;

	if (pgres == NULL) {
		batch_fail_all(b, "ROLLBACK TO SAVEPOINT failed", err, sqlstate);
		return;
	}
	if (b->runs[b->cur] != NULL) {
		b->fail.error = b->fail_msg;
		batch_report(b, b->cur, &b->fail);
	}
	b->cur++;
	batch_next(b);
}

/* Undoes runs[cur] alone (back to its savepoint), then reports it with o. */
static void batch_undo(struct sql_batch *b, enum action_outcome o, const char *what,
                       const char *err, const char *sqlstate)
{
	struct action_run *run = b->runs[b->cur];

	if (run != NULL) {
		sql_result_init(run, &b->fail, o);
		if (sqlstate != NULL && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0)
			b->fail.outcome = ACTION_TIMEOUT;
		snprintf(b->fail_msg, sizeof(b->fail_msg), "%s%s%s", what, err && *err ? ": " : "",
		         err ? err : "");
	}
	db_session_query(b->s, "ROLLBACK TO SAVEPOINT bayarhook_job", 0, NULL, batch_rolled_back,
	                 b);
}

/* Runs whose transaction was rolled back through no fault of theirs: again, in a new one. */
static void batch_requeue(struct sql_batch *b, int i)
{
	struct action_run *run = b->runs[i];
	struct sql_run *r = sql_state(run);

	b->runs[i] = NULL;
	b->live--;
	r->batch = NULL;
	r->rows = -1;
	r->status[0] = '\0';
	r->waiting = true;
	TAILQ_INSERT_TAIL(&b->q->waiting, r, link);
	b->q->nwaiting++;
	event_active(b->q->flush, EV_TIMEOUT, 1);
}

static void batch_tx_done(void *token, bool ok, const char *err)
{
	struct sql_batch *b = token;
	bool all = true;

	if (!ok) {
		batch_fail_all(b, "recording the jobs' completion failed", err, NULL);
		return;
	}
	for (int k = 0; k < b->ntx; k++)
		all &= b->tx[k].done;
	if (all) {
		db_session_query(b->s, "COMMIT", 0, NULL, batch_committed, b);
		return;
	}
	for (int k = 0; k < b->ntx; k++) {
		int i = b->slot_of[k];
		struct action_result res;

		if (b->runs[i] == NULL)
			continue;
		if (b->tx[k].done) {
			batch_requeue(b, i);
			continue;
		}
		/* Someone else holds the job now: its statement is undone with the rest. */
		action_result_init(&res, ACTION_FAILED);
		res.row_count = sql_state(b->runs[i])->rows;
		res.error = "lease lost";
		res.lease_lost = true;
		batch_report(b, i, &res);
	}
	batch_end(b);
}

/* Every statement ran: the completions of the jobs whose statement succeeded. */
static void batch_complete(struct sql_batch *b)
{
	struct action_run *first = NULL;

	b->ntx = 0;
	for (int i = 0; i < b->n; i++) {
		if (b->runs[i] == NULL)
			continue;
		first = first ? first : b->runs[i];
		b->tx[b->ntx].res = &b->res[i];
		b->tx[b->ntx].arg = b->runs[i]->tx_arg;
		b->tx[b->ntx].done = false;
		b->slot_of[b->ntx++] = i;
	}
	/* Every run of one action has the same owner: the first one's tx writes all. */
	first->tx(b->s, b->tx, b->ntx, batch_tx_done, b);
}

static void batch_stmt_done(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;
	struct action_run *run = b->runs[b->cur];
	struct sql_run *r;
	const char *tuples;
	char msg[128];

	if (run == NULL) {
		batch_undo(b, ACTION_FAILED, "stopped", NULL, NULL);
		return;
	}
	if (pgres == NULL) {
		batch_undo(b, ACTION_FAILED, "statement failed", err, sqlstate);
		return;
	}
	r = sql_state(run);
	tuples = PQcmdTuples(pgres);
	r->rows = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
	snprintf(r->status, sizeof(r->status), "%s", PQcmdStatus(pgres));
	if (b->q->expect_rows != 0 && r->rows != b->q->expect_rows) {
		snprintf(msg, sizeof(msg), "expected %d row(s), the statement changed %lld",
		         b->q->expect_rows, r->rows);
		batch_undo(b, b->q->dead_on_mismatch ? ACTION_FAILED_PERMANENT : ACTION_FAILED, msg,
		           NULL, NULL);
		return;
	}
	sql_result_init(run, &b->res[b->cur], ACTION_SUCCEEDED);
	b->cur++;
	batch_next(b);
}

static void batch_saved(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;
	struct action_run *run = b->runs[b->cur];

	if (pgres == NULL) {
		batch_fail_all(b, "SAVEPOINT failed", err, sqlstate);
		return;
	}
	if (run == NULL) {
		b->cur++;
		batch_next(b);
		return;
	}
	db_session_query(b->s, b->q->sql, b->q->nparams,
	                 (const char *const *)sql_state(run)->params, batch_stmt_done, b);
}

/* The next run's statement, or COMMIT once every run had its turn. */
static void batch_next(struct sql_batch *b)
{
	while (b->cur < b->n && b->runs[b->cur] == NULL)
		b->cur++;
	if (b->cur < b->n) {
		db_session_query(b->s, "SAVEPOINT bayarhook_job", 0, NULL, batch_saved, b);
		return;
	}
	if (b->live == 0) {
		batch_end(b); /* nothing to commit: the close rolls back */
		return;
	}
	batch_complete(b);
}

static void batch_timeout_set(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;

	if (pgres == NULL) {
		batch_fail_all(b, "cannot set statement_timeout", err, sqlstate);
		return;
	}
	b->cur = 0;
	batch_next(b);
}

static void batch_begun(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;
	const char *params[1] = {b->ms};

	if (pgres == NULL) {
		batch_fail_all(b, "BEGIN failed", err, sqlstate);
		return;
	}
	db_session_query(b->s, "SELECT set_config('statement_timeout', $1, true)", 1, params,
	                 batch_timeout_set, b);
}

static void batch_opened(struct db_session *s, void *arg)
{
	struct sql_batch *b = arg;

	if (s == NULL) {
		batch_fail_all(b, "database unavailable", NULL, NULL);
		return;
	}
	b->s = s;
	db_session_query(s, "BEGIN", 0, NULL, batch_begun, b);
}

/* Every waiting run goes into a transaction, SQL_BATCH_MAX to each. */
void action_sql_batch_flush(evutil_socket_t fd, short what, void *arg)
{
	struct sql_action *q = arg;
	struct sql_run *r;
	int per = (q->nwaiting + SQL_BATCH_SPREAD - 1) / SQL_BATCH_SPREAD;

	(void)fd;
	(void)what;
	per = per < SQL_BATCH_MIN ? SQL_BATCH_MIN : per > SQL_BATCH_MAX ? SQL_BATCH_MAX : per;
	while (!TAILQ_EMPTY(&q->waiting)) {
		struct sql_batch *b = xcalloc(1, sizeof(*b));

		b->q = q;
		snprintf(b->ms, sizeof(b->ms), "%lld", (long long)q->a->timeout * 1000);
		while (b->n < per && (r = TAILQ_FIRST(&q->waiting)) != NULL) {
			TAILQ_REMOVE(&q->waiting, r, link);
			q->nwaiting--;
			r->waiting = false;
			r->batch = b;
			r->slot = b->n;
			b->runs[b->n++] = r->run;
		}
		b->live = b->n;
		/* The pool hands the session over from the loop, never from in here. */
		if (db_session_open(q->pool, batch_opened, b) < 0)
			batch_fail_all(b, "database unavailable", NULL, NULL);
	}
}

void action_sql_batch_stop(struct sql_run *r)
{
	struct sql_batch *b = r->batch;

	b->runs[r->slot] = NULL;
	r->batch = NULL;
	if (--b->live == 0)
		batch_end(b);
}
