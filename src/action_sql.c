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
 * transaction: action_sql_batch.c.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action_sql.h"
#include "action_sql_int.h"

#include "action_run.h"
#include "db.h"
#include "xmalloc.h"

#define SQL_NAME_MAX 63
#define SQL_PARAMS_MAX 65535

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

/*
 * The text of parameter idx (0-based) at a placeholder: $n, or with types
 * (action_sql_typed) the element of the one text[] parameter cast to it.
 */
static size_t placeholder_put(char **buf, size_t *cap, size_t o, int idx, char *const *types)
{
	size_t need = 32 + (types ? strlen(types[idx]) : 0);

	if (o + need + 1 > *cap) {
		*cap = (o + need + 1) * 2;
		*buf = xreallocarray(*buf, *cap, 1);
	}
	if (types == NULL)
		return (size_t)sprintf(*buf + o, "$%d", idx + 1);
	return (size_t)sprintf(*buf + o, "(($1::text[])[%d]::%s)", idx + 1, types[idx]);
}

/*
 * action_sql_placeholders; with types (one per name, in order) each
 * placeholder becomes ($1::text[])[n]::type instead of $n. ntypes: how many
 * types there are; a name past them is an error.
 */
static int placeholders(const char *stmt, char *const *types, int ntypes, char **out,
                        char ***names_out, bool *several, char *err, size_t errlen)
{
	size_t len = strlen(stmt), i = 0, o = 0, end, cap = len * 3 + 1;
	char *buf = xmalloc(cap), **names = xcalloc(1, sizeof(char *));
	int n = 0;
	bool semi = false; /* a ';' outside quotes and comments was seen */

	*several = false;
	while (stmt[i] != '\0') {
		unsigned char c = (unsigned char)stmt[i];

		end = i + 1;
		/* Anything but blanks, comments and ';' after a ';': a second command. */
		if (semi && !isspace(c) && c != ';' && !(c == '-' && stmt[i + 1] == '-') &&
		    !(c == '/' && stmt[i + 1] == '*'))
			*several = true;
		semi = semi || c == ';';
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
			if (types != NULL && idx >= ntypes) {
				snprintf(err, errlen, "placeholder :%s has no type", names[idx]);
				goto fail;
			}
			o += placeholder_put(&buf, &cap, o, idx, types);
			i += 1 + nl;
			continue;
		}
		if (o + (end - i) + 1 > cap) {
			cap = (o + (end - i) + 1) * 2;
			buf = xreallocarray(buf, cap, 1);
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

int action_sql_placeholders(const char *stmt, char **out, char ***names_out, char *err,
                            size_t errlen)
{
	bool several;

	return placeholders(stmt, NULL, 0, out, names_out, &several, err, errlen);
}

int action_sql_placeholders_typed(const char *stmt, char *const *types, int ntypes, char **out,
                                  char ***names_out, char *err, size_t errlen)
{
	bool several;

	return placeholders(stmt, types, ntypes, out, names_out, &several, err, errlen);
}

static void names_free(char **names);

bool action_sql_one_command(const char *stmt)
{
	char *out = NULL, **names = NULL, err[128];
	bool several = true;

	if (placeholders(stmt, NULL, 0, &out, &names, &several, err, sizeof(err)) < 0)
		return false;
	free(out);
	names_free(names);
	return !several;
}

/* ---- prepared ---- */

static void names_free(char **names)
{
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

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
	q->stmt = xstrdup(ac->statement);
	if (a->ctx == NULL)
		return 0;
	own = action_ctx_own_conninfo(a->ctx);
	conninfo = ac->conninfo && *ac->conninfo ? ac->conninfo : own;
	q->own_db = strcmp(conninfo, own) == 0;
	q->pool = action_ctx_pool_get(a->ctx, conninfo, q->own_db);
	if (q->own_db && (q->flush = event_new(action_ctx_base(a->ctx), -1, 0,
	                                       action_sql_batch_flush, q)) == NULL) {
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
	free(q->stmt);
	free(q->typed);
	if (q->pool != NULL)
		action_ctx_pool_put(a->ctx, q->pool);
	if (q->flush != NULL)
		event_free(q->flush);
	free(q);
}

/* ---- a run ---- */

static void sql_close(struct action_run *run)
{
	db_session_close(sql_state(run)->session);
	sql_state(run)->session = NULL;
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
	struct action_result res;

	if (pgres == NULL) {
		sql_fail(run, "commit failed", err, sqlstate);
		return;
	}
	sql_close(run);
	sql_result_init(run, &res, ACTION_SUCCEEDED);
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
	/* Own database with a completion: action_sql_batch.c, never here. */
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

char **action_sql_bind(struct action_run *run, char *err, size_t errlen)
{
	struct sql_action *q = run->action->priv;
	char **params = xcalloc((size_t)q->nparams + 1, sizeof(char *));

	for (int i = 0; i < q->nparams; i++)
		if (bind_field(run, q->names[i], &params[i], err, errlen) < 0) {
			action_sql_params_free(params, q->nparams);
			return NULL;
		}
	return params;
}

void action_sql_params_free(char **params, int n)
{
	for (int i = 0; params != NULL && i < n; i++)
		free(params[i]);
	free(params);
}

int action_sql_set_types(struct sql_action *q, char *const *types, int ntypes, char *err,
                         size_t errlen)
{
	char **names = NULL, *typed = NULL;

	if (action_sql_placeholders_typed(q->stmt, types, ntypes, &typed, &names, err, errlen) < 0)
		return -1;
	names_free(names);
	free(q->typed);
	q->typed = typed;
	return 0;
}

static int sql_start(struct action_run *run, char *err, size_t errlen)
{
	struct sql_action *q = run->action->priv;
	struct sql_run *r = xcalloc(1, sizeof(*r));

	run->priv = r;
	r->rows = -1;
	r->nparams = q->nparams;
	if ((r->params = action_sql_bind(run, err, errlen)) == NULL)
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
	if (r == NULL)
		return;
	if (r->waiting) {
		struct sql_action *q = run->action->priv;

		TAILQ_REMOVE(&q->waiting, r, link);
		q->nwaiting--;
		r->waiting = false;
	}
	if (r->batch != NULL)
		action_sql_batch_stop(r);
	if (r->session != NULL)
		sql_close(run);
}

static void sql_run_release(struct action_run *run)
{
	struct sql_run *r = sql_state(run);

	action_sql_params_free(r->params, r->nparams);
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
