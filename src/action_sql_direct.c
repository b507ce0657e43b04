/*
 * action_sql_direct.c: a round of a sql action's jobs in one transaction
 * (see action_sql_direct.h and sql/functions/jobs_direct.sql):
 *
 *   the parameters' types, once per statement (bayarhook.sql_param_types)
 *   BEGIN
 *   job_take()      due jobs, locked; the action's statement_timeout
 *   job_run_sql()   every statement in a subtransaction, every outcome
 *   COMMIT
 *
 * Four round trips for the whole round. The values are bound here, as the
 * per-job path binds them (action_sql_bind), and sent as one text[] per
 * job that the statement, rewritten once (q->typed), casts to the types its
 * placeholders take.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "action_sql_direct.h"
#include "action_sql.h"
#include "action_sql_int.h"
#include "db.h"
#include "jsonw.h"
#include "log.h"
#include "xmalloc.h"

static const char SQL_TAKE[] =
    "SELECT job_id, invoice_id, attempts, source, event, event_bare, status, flag,"
    " idempotency_key FROM bayarhook.job_take(p_action => $1, p_limit => $2,"
    " p_timeout_ms => $3, p_only => $4::bigint[])";
static const char SQL_RUN[] =
    "SELECT job_id, state, outcome, row_count, error FROM bayarhook.job_run_sql("
    "p_owner => $1, p_statement => $2, p_expect_rows => $3, p_dead_on_mismatch => $4,"
    " p_max_attempts => $5, p_items => $6::jsonb)";
static const char SQL_LOST[] =
    "SELECT bayarhook.job_attempt_lost(p_job => $1, p_attempts => $2, p_owner => $3,"
    " p_outcome => $4, p_error => $5, p_max_attempts => $6, p_retry_in => $7)";

struct direct_job {
	char *id, *invoice;
	int attempt;
	char attempt_text[16];
	char retry_in[32];
	char *state, *outcome, *error; /* as written; state NULL: nothing was */
	long long rows;
};

struct sql_direct {
	struct action *a;
	struct sql_action *q;
	char *owner;
	void (*retry_in)(int attempt, char out[32], void *arg);
	sql_direct_outcome_fn on_outcome;
	sql_direct_end_fn on_end;
	void *arg;
	struct db_session *s;
	char *types_error;       /* the statement cannot be prepared: every job fails with it */
	struct direct_job *jobs; /* the round's, from its first take */
	int n, taken;
	/* -1: the round's transaction; else the index of the job run alone */
	int alone;
	char only[32]; /* p_only of the take: "{id}" when alone */
	char limit_text[16], timeout_ms[16], expect[16], max_attempts[16];
};

static void alone_next(struct sql_direct *d);

bool action_sql_direct_ok(const struct action *a)
{
	const struct sql_action *q = a->priv;
	static const char *const verbs[] = {"SELECT", "INSERT", "UPDATE", "DELETE",
	                                    "WITH",   "MERGE",  "VALUES"};
	const char *s;
	size_t len;

	if (a->ops != &action_sql_ops || a->ctx == NULL || q == NULL || !q->own_db)
		return false;
	/*
	 * A second command would run when PREPARE learns the types and again
	 * with each job: exactly once would not hold. The per-job way refuses
	 * it (a prepared statement is one command): the job fails, as it did.
	 */
	if (!action_sql_one_command(q->stmt))
		return false;
	/* What PREPARE takes (sql_param_types): CALL and the like go the per-job way. */
	for (s = q->sql; isspace((unsigned char)*s); s++)
		;
	for (len = 0; isalpha((unsigned char)s[len]); len++)
		;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (len == strlen(verbs[i]) && strncasecmp(s, verbs[i], len) == 0)
			return true;
	return false;
}

static void direct_free(struct sql_direct *d)
{
	db_session_close(d->s);
	for (int i = 0; i < d->n; i++) {
		free(d->jobs[i].id);
		free(d->jobs[i].invoice);
		free(d->jobs[i].state);
		free(d->jobs[i].outcome);
		free(d->jobs[i].error);
	}
	free(d->jobs);
	free(d->types_error);
	free(d->owner);
	action_unref(d->a);
	free(d);
}

static void direct_end(struct sql_direct *d)
{
	d->on_end(d, d->taken, d->arg);
	direct_free(d);
}

static void job_report(struct sql_direct *d, struct direct_job *j)
{
	struct sql_direct_outcome o = {
	    .job = j->id,
	    .invoice = j->invoice,
	    .attempt = j->attempt,
	    .state = j->state,
	    .outcome = j->outcome ? j->outcome : "failed",
	    .error = j->error,
	    .retry_in = j->retry_in,
	    .rows = j->rows,
	};

	d->on_outcome(&o, d->arg);
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

static struct direct_job *job_find(struct sql_direct *d, const char *id)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->jobs[i].id, id) == 0)
			return &d->jobs[i];
	return NULL;
}

/* ---- a job lost twice: its attempt written on its own ---- */

static void lost_written(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;
	struct direct_job *j = &d->jobs[d->alone];

	(void)sqlstate;
	if (res == NULL)
		log_warnx("job outcome not written job=%s action=%s: %s; it runs again", j->id,
		          d->a->name, err);
	else if (!PQgetisnull(res, 0, 0))
		set_str(&j->state, PQgetvalue(res, 0, 0));
	job_report(d, j);
	d->alone++;
	alone_next(d);
}

static void job_lost(struct sql_direct *d, struct direct_job *j, const char *err,
                     const char *sqlstate)
{
	bool timeout = sqlstate != NULL && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0;
	char msg[512];
	const char *p[7];

	db_session_close(d->s);
	d->s = NULL;
	snprintf(msg, sizeof(msg), "%s%s",
	         timeout ? "statement failed: " : "transaction lost: ", err ? err : "");
	set_str(&j->outcome, timeout ? "timeout" : "failed");
	set_str(&j->error, msg);
	set_str(&j->state, NULL);
	p[0] = j->id;
	p[1] = j->attempt_text;
	p[2] = d->owner;
	p[3] = j->outcome;
	p[4] = j->error;
	p[5] = d->max_attempts;
	p[6] = j->retry_in;
	if (db_query(d->q->pool, SQL_LOST, 7, p, lost_written, d) < 0)
		lost_written(NULL, "database unavailable", NULL, d);
}

/* ---- the transaction ---- */

/* The transaction is lost: nothing of it was committed. */
static void round_lost(struct sql_direct *d, const char *what, const char *err,
                       const char *sqlstate)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s%s%s", what, err && *err ? ": " : "", err ? err : "");
	if (d->alone >= 0) {
		job_lost(d, &d->jobs[d->alone], msg, sqlstate);
		return;
	}
	if (d->n == 1) {
		d->alone = 0; /* alone already: no second run */
		job_lost(d, &d->jobs[0], msg, sqlstate);
		return;
	}
	db_session_close(d->s);
	d->s = NULL;
	if (d->n == 0) {
		log_warnx("sql action %s: cannot take jobs: %s", d->a->name, msg);
		direct_end(d);
		return;
	}
	log_warnx("sql action %s: transaction of %d job(s) lost (%s); running them one by one",
	          d->a->name, d->n, msg);
	d->alone = 0;
	alone_next(d);
}

static void committed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;

	if (res == NULL) {
		round_lost(d, "COMMIT failed", err, sqlstate);
		return;
	}
	db_session_close(d->s);
	d->s = NULL;
	if (d->alone >= 0) {
		job_report(d, &d->jobs[d->alone]);
		d->alone++;
		alone_next(d);
		return;
	}
	for (int i = 0; i < d->n; i++)
		job_report(d, &d->jobs[i]);
	direct_end(d);
}

static void ran(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;

	if (res == NULL) {
		round_lost(d, "", err, sqlstate);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		struct direct_job *j = job_find(d, PQgetvalue(res, r, 0));

		if (j == NULL)
			continue;
		set_str(&j->state, PQgetisnull(res, r, 1) ? NULL : PQgetvalue(res, r, 1));
		set_str(&j->outcome, PQgetvalue(res, r, 2));
		j->rows = PQgetisnull(res, r, 3) ? -1 : strtoll(PQgetvalue(res, r, 3), NULL, 10);
		set_str(&j->error, PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4));
	}
	db_session_query(d->s, "COMMIT", 0, NULL, committed, d);
}

/* One job of the take: its values bound (or why not) as an item of job_run_sql(). */
static void item_write(struct sql_direct *d, struct jsonw *js, PGresult *res, int r,
                       struct direct_job *j)
{
	struct action_job aj = {
	    .id = j->id,
	    .attempt = j->attempt,
	    .source = PQgetvalue(res, r, 3),
	    .event = PQgetvalue(res, r, 4),
	    .event_bare = PQgetvalue(res, r, 5),
	    .flag = PQgetvalue(res, r, 7),
	    .idempotency_key = PQgetvalue(res, r, 8),
	};
	char err[512];
	struct action_run *run = NULL;
	char **params = NULL;

	jsonw_begin_object(js, NULL);
	jsonw_cstr(js, "job", j->id);
	jsonw_int(js, "attempts", j->attempt);
	jsonw_cstr(js, "retry_in", j->retry_in);
	if (d->types_error != NULL) {
		snprintf(err, sizeof(err), "statement failed: %s", d->types_error);
		jsonw_cstr(js, "fail", err);
	} else if ((run = action_run_new(d->a->ctx, d->a, &aj, err, sizeof(err))) == NULL ||
	           (params = action_sql_bind(run, err, sizeof(err))) == NULL) {
		jsonw_cstr(js, "fail", err);
	} else {
		jsonw_begin_list(js, "params");
		for (int i = 0; i < d->q->nparams; i++)
			if (params[i] == NULL)
				jsonw_raw(js, NULL, "null", 4);
			else
				jsonw_cstr(js, NULL, params[i]);
		jsonw_end_list(js);
	}
	jsonw_end_object(js);
	action_sql_params_free(params, d->q->nparams);
	if (run != NULL)
		action_run_drop(run);
}

static void taken(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;
	struct jsonw js;
	char *items, dead[8];
	const char *p[6];
	int rows;

	if (res == NULL) {
		round_lost(d, "taking jobs failed", err, sqlstate);
		return;
	}
	rows = PQntuples(res);
	if (rows == 0) {
		/* Nothing due (alone: someone else ran it meanwhile). */
		db_session_close(d->s);
		d->s = NULL;
		if (d->alone >= 0) {
			d->alone++;
			alone_next(d);
		} else {
			direct_end(d);
		}
		return;
	}
	if (d->alone < 0) {
		d->jobs = xcalloc((size_t)rows, sizeof(*d->jobs));
		d->n = d->taken = rows;
		for (int r = 0; r < rows; r++) {
			d->jobs[r].id = xstrdup(PQgetvalue(res, r, 0));
			d->jobs[r].invoice = xstrdup(PQgetvalue(res, r, 1));
		}
	}
	jsonw_begin_array(&js);
	for (int r = 0; r < rows; r++) {
		struct direct_job *j = job_find(d, PQgetvalue(res, r, 0));

		if (j == NULL)
			continue;
		j->attempt = atoi(PQgetvalue(res, r, 2));
		j->rows = -1;
		snprintf(j->attempt_text, sizeof(j->attempt_text), "%d", j->attempt);
		d->retry_in(j->attempt, j->retry_in, d->arg);
		item_write(d, &js, res, r, j);
	}
	items = jsonw_finish_array(&js);
	snprintf(dead, sizeof(dead), "%s", d->q->dead_on_mismatch ? "true" : "false");
	p[0] = d->owner;
	p[1] = d->q->typed ? d->q->typed : d->q->sql;
	p[2] = d->expect;
	p[3] = dead;
	p[4] = d->max_attempts;
	p[5] = items;
	db_session_query(d->s, SQL_RUN, 6, p, ran, d);
	free(items);
}

static void begun(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;
	const char *p[4] = {d->a->name, d->limit_text, d->timeout_ms, NULL};

	if (res == NULL) {
		round_lost(d, "BEGIN failed", err, sqlstate);
		return;
	}
	if (d->alone >= 0) {
		snprintf(d->only, sizeof(d->only), "{%s}", d->jobs[d->alone].id);
		p[1] = "1";
		p[3] = d->only;
	}
	db_session_query(d->s, SQL_TAKE, 4, p, taken, d);
}

static void typed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct sql_direct *d = arg;
	char msg[256];

	(void)sqlstate;
	if (res == NULL) {
		/* The statement does not prepare (a table not made yet?): its jobs fail with why.
		 */
		d->types_error = xstrdup(err ? err : "cannot prepare the statement");
	} else {
		int n = PQntuples(res);
		char **types = xcalloc((size_t)n + 1, sizeof(char *));

		for (int i = 0; i < n; i++)
			types[i] = PQgetvalue(res, i, 0);
		if (action_sql_set_types(d->q, types, n, msg, sizeof(msg)) < 0)
			d->types_error = xstrdup(msg);
		free(types);
	}
	db_session_query(d->s, "BEGIN", 0, NULL, begun, d);
}

static void opened(struct db_session *s, void *arg)
{
	struct sql_direct *d = arg;
	const char *p[1] = {d->q->sql};

	if (s == NULL) {
		round_lost(d, "database unavailable", NULL, NULL);
		return;
	}
	d->s = s;
	free(d->types_error);
	d->types_error = NULL;
	if (d->q->typed == NULL) {
		db_session_query(s, "SELECT bayarhook.sql_param_types($1)", 1, p, typed, d);
		return;
	}
	db_session_query(s, "BEGIN", 0, NULL, begun, d);
}

/* The next job of a lost transaction, alone; the round ends after the last. */
static void alone_next(struct sql_direct *d)
{
	if (d->alone >= d->n) {
		direct_end(d);
		return;
	}
	if (db_session_open(d->q->pool, opened, d) < 0)
		job_lost(d, &d->jobs[d->alone], "database unavailable", NULL);
}

struct sql_direct *action_sql_direct_start(struct action *a, const struct sql_direct_conf *conf,
                                           sql_direct_outcome_fn on_outcome,
                                           sql_direct_end_fn on_end, void *arg)
{
	struct sql_direct *d;

	if (!db_pool_up(((struct sql_action *)a->priv)->pool))
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->a = a;
	a->refs++;
	d->q = a->priv;
	d->owner = xstrdup(conf->owner);
	d->retry_in = conf->retry_in;
	d->on_outcome = on_outcome;
	d->on_end = on_end;
	d->arg = arg;
	d->alone = -1;
	snprintf(d->limit_text, sizeof(d->limit_text), "%d", conf->limit);
	snprintf(d->timeout_ms, sizeof(d->timeout_ms), "%lld", (long long)a->timeout * 1000);
	snprintf(d->expect, sizeof(d->expect), "%d", d->q->expect_rows);
	snprintf(d->max_attempts, sizeof(d->max_attempts), "%d", a->max_attempts);
	if (db_session_open(d->q->pool, opened, d) < 0) {
		direct_free(d);
		return NULL;
	}
	return d;
}

void action_sql_direct_stop(struct sql_direct *d)
{
	if (d != NULL)
		direct_free(d);
}
