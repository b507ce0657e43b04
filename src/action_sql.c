/*
 * action_sql.c: the sql action. The statement's :name placeholders become
 * $1..$n at load time and are bound to event fields at run time, never
 * pasted into the text.
 *
 * Every run is one transaction on a pooled asynchronous connection:
 * BEGIN; statement_timeout = the action's timeout; the statement; the
 * changed-row count checked against expect_rows (a mismatch rolls back and
 * fails: retried, or dead at once with on_mismatch = dead); COMMIT. On the receiver's
 * own database the queue's completion of the job (action_tx_fn) runs in that
 * same transaction before COMMIT, so the statement takes effect exactly
 * once: a crash before COMMIT leaves the job claimable and the statement
 * undone; after it, both are done. Elsewhere the statement commits first and
 * the job is completed afterwards: at least once.
 *
 * On the receiver's own database the runs that start together share one
 * transaction (issue 16: one commit for many jobs): BEGIN; the timeout;
 * then for each run SAVEPOINT, its statement, the row check and the
 * queue's completion of its job; a run whose statement fails, whose rows do
 * not match or whose job was taken over is rolled back to its savepoint and
 * reported at once, alone; COMMIT reports the others, all succeeded with
 * their jobs, or all failed. The savepoints nest (none is released): at
 * most SQL_BATCH_MAX, under PostgreSQL's 64 cached subtransactions.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action_sql.h"

#include <sys/queue.h>

#include "action_run.h"
#include "db.h"
#include "xmalloc.h"

#define SQL_NAME_MAX 63
#define SQL_PARAMS_MAX 65535
#define SQLSTATE_QUERY_CANCELED "57014"
#define SQL_BATCH_MAX 32 /* runs per shared transaction */
/*
 * Runs that start together are spread over up to SQL_BATCH_SPREAD
 * transactions of at least SQL_BATCH_MIN runs each: each run costs three
 * round trips in sequence (savepoint, statement, completion), and on a busy
 * machine a round trip waits for the scheduler, so a few transactions side
 * by side finish sooner than one long one, and still commit once per run.
 */
#define SQL_BATCH_SPREAD 4
#define SQL_BATCH_MIN 4

/* ---- :name -> $n ---- */

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static bool name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(unsigned char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* The end of a quoted run starting at s[i] (the quote), or 0 when unterminated. */
static size_t quoted_end(const char *s, size_t i, char q, bool backslash)
{
	size_t j = i + 1;

	for (;;) {
		if (s[j] == '\0')
			return 0;
		if (backslash && s[j] == '\\' && s[j + 1] != '\0') {
			j += 2;
			continue;
		}
		if (s[j] == q) {
			if (s[j + 1] == q) {
				j += 2;
				continue;
			}
			return j + 1;
		}
		j++;
	}
}

static size_t comment_end(const char *s, size_t i)
{
	size_t j = i + 2;
	int depth = 1;

	while (s[j] != '\0') {
		if (s[j] == '/' && s[j + 1] == '*') {
			depth++;
			j += 2;
		} else if (s[j] == '*' && s[j + 1] == '/') {
			j += 2;
			if (--depth == 0)
				return j;
		} else {
			j++;
		}
	}
	return 0;
}

/* $tag$...$tag$ from s[i] == '$': the end, i + 1 for a lone '$', 0 when unterminated. */
static size_t dollar_end(const char *s, size_t i)
{
	size_t j = i + 1;
	const char *close;

	while (s[j] != '\0' && s[j] != '$' &&
	       (name_char((unsigned char)s[j]) || (unsigned char)s[j] >= 0x80))
		j++;
	if (s[j] != '$')
		return i + 1;
	{
		size_t taglen = j - i + 1;
		char *tag = xstrndup(s + i, taglen);

		close = strstr(s + j + 1, tag);
		free(tag);
		return close ? (size_t)(close - s) + taglen : 0;
	}
}

static int name_index(char **names, int n, const char *name, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return i;
	return -1;
}

int action_sql_placeholders(const char *stmt, char **out, char ***names_out, char *err,
                            size_t errlen)
{
	size_t len = strlen(stmt), i = 0, o = 0, end;
	char *buf = xmalloc(len * 3 + 1), **names = xcalloc(1, sizeof(char *));
	int n = 0;

	while (stmt[i] != '\0') {
		unsigned char c = (unsigned char)stmt[i];

		end = i + 1;
		if (c == '\'') {
			bool esc = i > 0 && (stmt[i - 1] == 'E' || stmt[i - 1] == 'e') &&
			           (i < 2 || !ident_char((unsigned char)stmt[i - 2]));

			if ((end = quoted_end(stmt, i, '\'', esc)) == 0) {
				snprintf(err, errlen, "unterminated quoted string at offset %zu",
				         i);
				goto fail;
			}
		} else if (c == '"') {
			if ((end = quoted_end(stmt, i, '"', false)) == 0) {
				snprintf(err, errlen,
				         "unterminated quoted identifier at offset %zu", i);
				goto fail;
			}
		} else if (c == '-' && stmt[i + 1] == '-') {
			end = i + strcspn(stmt + i, "\n");
		} else if (c == '/' && stmt[i + 1] == '*') {
			if ((end = comment_end(stmt, i)) == 0) {
				snprintf(err, errlen, "unterminated comment at offset %zu", i);
				goto fail;
			}
		} else if (c == '$' && !(i > 0 && ident_char((unsigned char)stmt[i - 1]))) {
			if (isdigit((unsigned char)stmt[i + 1])) {
				snprintf(
				    err, errlen,
				    "positional parameter at offset %zu: use :name placeholders",
				    i);
				goto fail;
			}
			if ((end = dollar_end(stmt, i)) == 0) {
				snprintf(err, errlen,
				         "unterminated dollar-quoted string at offset %zu", i);
				goto fail;
			}
		} else if (c == ':' && stmt[i + 1] == ':') {
			end = i + 2;
		} else if (c == ':' && name_start((unsigned char)stmt[i + 1])) {
			size_t nl = 1;
			int idx;

			while (name_char((unsigned char)stmt[i + 1 + nl]))
				nl++;
			if (nl > SQL_NAME_MAX) {
				snprintf(err, errlen, "placeholder at offset %zu: name too long",
				         i);
				goto fail;
			}
			idx = name_index(names, n, stmt + i + 1, nl);
			if (idx < 0) {
				if (n == SQL_PARAMS_MAX) {
					snprintf(err, errlen, "more than %d placeholders",
					         SQL_PARAMS_MAX);
					goto fail;
				}
				names = xreallocarray(names, (size_t)n + 2, sizeof(*names));
				names[n + 1] = NULL;
				names[n] = xstrndup(stmt + i + 1, nl);
				idx = n++;
			}
			o += (size_t)sprintf(buf + o, "$%d", idx + 1);
			i += 1 + nl;
			continue;
		}
		memcpy(buf + o, stmt + i, end - i);
		o += end - i;
		i = end;
	}
	buf[o] = '\0';
	*out = buf;
	*names_out = names;
	return 0;
fail:
	free(buf);
	for (int k = 0; k < n; k++)
		free(names[k]);
	free(names);
	return -1;
}

/* ---- prepared ---- */

struct sql_batch;
struct sql_run;

struct sql_action {
	struct action *a;
	char *sql;    /* the statement with $1..$n */
	char **names; /* field of $i+1, NULL-terminated */
	int nparams;
	int expect_rows;       /* 0 = any */
	bool dead_on_mismatch; /* on_mismatch = dead */
	bool own_db;           /* the receiver's database: exactly once */
	struct db_pool *pool;  /* NULL when only checked */
	/* Own database: runs waiting for the next shared transaction. */
	TAILQ_HEAD(, sql_run) waiting;
	int nwaiting;
	struct event *flush; /* starts the transactions of waiting, from the loop */
};

static void names_free(char **names)
{
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

static void batch_flush(evutil_socket_t fd, short what, void *arg);

static int sql_prepare(struct action *a, const struct config *cfg, const struct action_conf *ac,
                       char *err, size_t errlen)
{
	struct sql_action *q = xcalloc(1, sizeof(*q));
	const char *own, *conninfo;
	char msg[200];

	a->priv = q;
	q->a = a;
	TAILQ_INIT(&q->waiting);
	if (action_sql_placeholders(ac->statement, &q->sql, &q->names, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "statement: %s", msg);
		return -1;
	}
	action_warn_fields(cfg, ac, q->names, "statement");
	for (q->nparams = 0; q->names[q->nparams]; q->nparams++)
		;
	q->expect_rows = ac->expect_rows;
	q->dead_on_mismatch = ac->on_mismatch == ON_MISMATCH_DEAD;
	if (a->ctx == NULL)
		return 0;
	own = action_ctx_own_conninfo(a->ctx);
	conninfo = ac->conninfo && *ac->conninfo ? ac->conninfo : own;
	q->own_db = strcmp(conninfo, own) == 0;
	q->pool = action_ctx_pool_get(a->ctx, conninfo, q->own_db);
	if (q->own_db &&
	    (q->flush = event_new(action_ctx_base(a->ctx), -1, 0, batch_flush, q)) == NULL) {
		snprintf(err, errlen, "cannot set up the statement's event");
		return -1;
	}
	return 0;
}

static void sql_release(struct action *a)
{
	struct sql_action *q = a->priv;

	if (q == NULL)
		return;
	names_free(q->names);
	free(q->sql);
	if (q->pool != NULL)
		action_ctx_pool_put(a->ctx, q->pool);
	if (q->flush != NULL)
		event_free(q->flush);
	free(q);
}

/* ---- a run ---- */

struct sql_run {
	struct action_run *run;
	TAILQ_ENTRY(sql_run) link; /* in the action's waiting */
	bool waiting;
	struct sql_batch *batch; /* the shared transaction it is part of */
	int slot;                /* its index there */
	struct db_session *session;
	char **params; /* bound values, NULL for SQL NULL */
	int nparams;
	long long rows;
	char status[64]; /* the statement's command tag ("UPDATE 1") */
};

static struct sql_run *sql_state(struct action_run *run)
{
	return run->priv;
}

static void sql_close(struct action_run *run)
{
	db_session_close(sql_state(run)->session);
	sql_state(run)->session = NULL;
}

/* A result carrying what the statement did so far. */
static void sql_result_init(struct action_run *run, struct action_result *res,
                            enum action_outcome o)
{
	struct sql_run *r = sql_state(run);

	action_result_init(res, o);
	res->row_count = r->rows;
	res->output = r->status;
	res->output_len = strlen(r->status);
}

/* Rolls back (the session closes) and reports a failure of outcome o. */
static void sql_fail_as(struct action_run *run, enum action_outcome o, const char *what,
                        const char *err, const char *sqlstate)
{
	struct action_result res;
	char msg[512];

	sql_close(run);
	snprintf(msg, sizeof(msg), "%s%s%s", what, err && *err ? ": " : "", err ? err : "");
	sql_result_init(run, &res, o);
	/* The statement_timeout set after BEGIN cut it off. */
	if (sqlstate != NULL && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0)
		res.outcome = ACTION_TIMEOUT;
	res.error = msg;
	action_run_finish(run, &res);
}

static void sql_fail(struct action_run *run, const char *what, const char *err,
                     const char *sqlstate)
{
	sql_fail_as(run, ACTION_FAILED, what, err, sqlstate);
}

static void sql_committed(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	struct sql_action *q = run->action->priv;
	struct action_result res;

	if (pgres == NULL) {
		sql_fail(run, "commit failed", err, sqlstate);
		return;
	}
	sql_close(run);
	sql_result_init(run, &res, ACTION_SUCCEEDED);
	res.finished = run->tx != NULL && q->own_db;
	action_run_finish(run, &res);
}

static void sql_tx_next(void *token, bool ok, bool lease_lost, const char *err)
{
	struct action_run *run = token;
	struct action_result res;

	if (ok) {
		db_session_query(sql_state(run)->session, "COMMIT", 0, NULL, sql_committed, run);
		return;
	}
	if (!lease_lost) {
		sql_fail(run, "recording the job's completion failed", err, NULL);
		return;
	}
	/* Someone else holds the job now: undo, report nothing. */
	sql_close(run);
	action_result_init(&res, ACTION_FAILED);
	res.row_count = sql_state(run)->rows;
	res.error = "lease lost";
	res.lease_lost = true;
	action_run_finish(run, &res);
}

static void sql_done(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	struct sql_action *q = run->action->priv;
	struct sql_run *r = sql_state(run);
	const char *tuples;
	char msg[128];

	if (pgres == NULL) {
		sql_fail(run, "statement failed", err, sqlstate);
		return;
	}
	tuples = PQcmdTuples(pgres);
	r->rows = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
	snprintf(r->status, sizeof(r->status), "%s", PQcmdStatus(pgres));
	if (q->expect_rows != 0 && r->rows != q->expect_rows) {
		snprintf(msg, sizeof(msg), "expected %d row(s), the statement changed %lld",
		         q->expect_rows, r->rows);
		/* on_mismatch = dead: the rows will not appear by asking again (no such order). */
		sql_fail_as(run, q->dead_on_mismatch ? ACTION_FAILED_PERMANENT : ACTION_FAILED, msg,
		            NULL, NULL);
		return;
	}
	if (run->tx != NULL && q->own_db) {
		struct action_result res;

		sql_result_init(run, &res, ACTION_SUCCEEDED);
		run->tx(r->session, &res, run->tx_arg, sql_tx_next, run);
		return;
	}
	db_session_query(r->session, "COMMIT", 0, NULL, sql_committed, run);
}

static void sql_timeout_set(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	struct sql_action *q = run->action->priv;
	struct sql_run *r = sql_state(run);

	if (pgres == NULL) {
		sql_fail(run, "cannot set statement_timeout", err, sqlstate);
		return;
	}
	db_session_query(r->session, q->sql, q->nparams, (const char *const *)r->params, sql_done,
	                 run);
}

static void sql_begun(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	char ms[32];
	const char *params[1] = {ms};

	if (pgres == NULL) {
		sql_fail(run, "BEGIN failed", err, sqlstate);
		return;
	}
	snprintf(ms, sizeof(ms), "%lld", (long long)run->action->timeout * 1000);
	db_session_query(sql_state(run)->session,
	                 "SELECT set_config('statement_timeout', $1, true)", 1, params,
	                 sql_timeout_set, run);
}

static void sql_opened(struct db_session *s, void *arg)
{
	struct action_run *run = arg;

	if (s == NULL) {
		sql_fail(run, "database unavailable", NULL, NULL);
		return;
	}
	sql_state(run)->session = s;
	db_session_query(s, "BEGIN", 0, NULL, sql_begun, run);
}

/* ---- runs sharing one transaction (own database) ---- */

struct sql_batch {
	struct sql_action *q;
	struct db_session *s;
	int n, cur, live;
	struct action_run *runs[SQL_BATCH_MAX]; /* NULL once reported or stopped */
	char ms[32];                            /* statement_timeout */
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
                       const char *err, const char *sqlstate, bool lease_lost)
{
	struct action_run *run = b->runs[b->cur];

	if (run != NULL) {
		sql_result_init(run, &b->fail, o);
		if (sqlstate != NULL && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0)
			b->fail.outcome = ACTION_TIMEOUT;
		b->fail.lease_lost = lease_lost;
		snprintf(b->fail_msg, sizeof(b->fail_msg), "%s%s%s", what, err && *err ? ": " : "",
		         err ? err : "");
	}
	db_session_query(b->s, "ROLLBACK TO SAVEPOINT bayarhook_job", 0, NULL, batch_rolled_back,
	                 b);
}

static void batch_tx_next(void *token, bool ok, bool lease_lost, const char *err)
{
	struct sql_batch *b = token;

	if (ok) {
		b->cur++;
		batch_next(b);
	} else if (lease_lost) {
		/* Someone else holds the job now: its statement is undone. */
		batch_undo(b, ACTION_FAILED, "lease lost", NULL, NULL, true);
	} else {
		batch_undo(b, ACTION_FAILED, "recording the job's completion failed", err, NULL,
		           false);
	}
}

static void batch_stmt_done(PGresult *pgres, const char *err, const char *sqlstate, void *arg)
{
	struct sql_batch *b = arg;
	struct action_run *run = b->runs[b->cur];
	struct sql_run *r;
	const char *tuples;
	char msg[128];
	struct action_result res;

	if (run == NULL) {
		batch_undo(b, ACTION_FAILED, "stopped", NULL, NULL, false);
		return;
	}
	if (pgres == NULL) {
		batch_undo(b, ACTION_FAILED, "statement failed", err, sqlstate, false);
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
		           NULL, NULL, false);
		return;
	}
	sql_result_init(run, &res, ACTION_SUCCEEDED);
	run->tx(b->s, &res, run->tx_arg, batch_tx_next, b);
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
	db_session_query(b->s, "COMMIT", 0, NULL, batch_committed, b);
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
static void batch_flush(evutil_socket_t fd, short what, void *arg)
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

/*
 * A field's value as a parameter: JSON null (or a known field the event
 * lacks) is SQL NULL, true/false are 'true'/'false' (which both boolean and
 * text columns take), everything else PHP's text of it.
 */
static int bind_field(struct action_run *run, const char *name, char **out, char *err,
                      size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(run->ev.json, name);
	const char *v;

	*out = NULL;
	if (action_job_field(name)) {
		/* SPEC §7: :bayarhook_flagged is NULL when the payment is not flagged. */
		v = action_field(run, name);
		if (v != NULL && (v[0] != '\0' || strcmp(name, "bayarhook_flagged") != 0))
			*out = xstrdup(v);
		return 0;
	}
	if (item == NULL) {
		if (action_field_known(name))
			return 0;
		snprintf(err, errlen, "unknown field: %s", name);
		return -1;
	}
	if (cJSON_IsNull(item))
		return 0;
	if (cJSON_IsBool(item))
		v = cJSON_IsTrue(item) ? "true" : "false";
	else if ((v = event_field(&run->ev, name)) == NULL) {
		snprintf(err, errlen, "field %s is not a scalar", name);
		return -1;
	}
	*out = xstrdup(v);
	return 0;
}

static int sql_start(struct action_run *run, char *err, size_t errlen)
{
	struct sql_action *q = run->action->priv;
	struct sql_run *r = xcalloc(1, sizeof(*r));

	run->priv = r;
	r->rows = -1;
	r->params = xcalloc((size_t)q->nparams + 1, sizeof(char *));
	r->nparams = q->nparams;
	for (int i = 0; i < q->nparams; i++)
		if (bind_field(run, q->names[i], &r->params[i], err, errlen) < 0)
			return -1;
	r->run = run;
	if (q->own_db && run->tx != NULL) {
		/* Reported from the loop, with the runs that start with it. */
		r->waiting = true;
		TAILQ_INSERT_TAIL(&q->waiting, r, link);
		q->nwaiting++;
		event_active(q->flush, EV_TIMEOUT, 1);
		return 0;
	}
	/* The pool hands the session over from the loop, never from in here. */
	if (db_session_open(q->pool, sql_opened, run) < 0) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	return 0;
}

/* Shutdown only: the session goes back to the pool, rolled back. */
static void sql_stop(struct action_run *run)
{
	struct sql_run *r = sql_state(run);
	struct sql_batch *b;

	if (r == NULL)
		return;
	if (r->waiting) {
		struct sql_action *q = run->action->priv;

		TAILQ_REMOVE(&q->waiting, r, link);
		q->nwaiting--;
		r->waiting = false;
	}
	if ((b = r->batch) != NULL) {
		/* The loop does not run again: the last run out closes the transaction. */
		b->runs[r->slot] = NULL;
		r->batch = NULL;
		if (--b->live == 0)
			batch_end(b);
	}
	if (r->session != NULL)
		sql_close(run);
}

static void sql_run_release(struct action_run *run)
{
	struct sql_run *r = sql_state(run);

	for (int i = 0; i < r->nparams; i++)
		free(r->params[i]);
	free(r->params);
	free(r);
}

const struct action_ops action_sql_ops = {
    .name = "sql",
    .prepare = sql_prepare,
    .release = sql_release,
    .start = sql_start,
    .stop = sql_stop,
    .run_release = sql_run_release,
    /* A statement already sent is bounded by statement_timeout instead. */
    .cancellable = false,
};
