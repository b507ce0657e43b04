/*
 * action_sql.c: the sql action. The statement's :name placeholders become
 * $1..$n at load time and are bound to event fields at run time, never
 * pasted into the text.
 *
 * Every run is one transaction on a pooled asynchronous connection:
 * BEGIN; statement_timeout = the action's timeout; the statement; the
 * changed-row count checked against expect_rows; COMMIT. On the receiver's
 * own database the queue's completion of the job (action_tx_fn) runs in that
 * same transaction before COMMIT, so the statement takes effect exactly
 * once: a crash before COMMIT leaves the job claimable and the statement
 * undone; after it, both are done. Elsewhere the statement commits first and
 * the job is completed afterwards: at least once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action_int.h"
#include "db.h"
#include "log.h"

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
		char *tag = strndup(s + i, taglen);

		if (tag == NULL)
			return 0;
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
	char *buf = malloc(len * 3 + 1), **names = calloc(1, sizeof(char *));
	int n = 0;

	if (buf == NULL || names == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
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
				char **v;

				if (n == SQL_PARAMS_MAX) {
					snprintf(err, errlen, "more than %d placeholders",
					         SQL_PARAMS_MAX);
					goto fail;
				}
				v = realloc(names, (size_t)(n + 2) * sizeof(*v));
				if (v == NULL) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
				names = v;
				names[n + 1] = NULL;
				if ((names[n] = strndup(stmt + i + 1, nl)) == NULL) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
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
	for (int k = 0; names && k < n; k++)
		free(names[k]);
	free(names);
	return -1;
}

/* ---- pools ---- */

static struct action_pool *pool_get(struct action_ctx *ctx, const char *conninfo, bool own)
{
	struct action_pool *p;

	for (p = ctx->pools; p; p = p->next) {
		if (strcmp(p->conninfo, conninfo) == 0) {
			p->refs++;
			return p;
		}
	}
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->conninfo = strdup(conninfo)) == NULL) {
		free(p);
		return NULL;
	}
	p->pool = db_pool_new(ctx->base, conninfo, ctx->pool_size, own ? "sql" : "sql-action");
	if (p->pool == NULL) {
		free(p->conninfo);
		free(p);
		return NULL;
	}
	p->refs = 1;
	p->next = ctx->pools;
	ctx->pools = p;
	return p;
}

static void pool_destroy(struct action_pool *p)
{
	db_pool_free(p->pool);
	free(p->conninfo);
	free(p);
}

static void pool_unref(struct action_ctx *ctx, struct action_pool *p)
{
	struct action_pool **pp;

	if (p == NULL || --p->refs > 0)
		return;
	for (pp = &ctx->pools; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pool_destroy(p);
}

void action_pools_free(struct action_ctx *ctx)
{
	struct action_pool *p;

	while ((p = ctx->pools) != NULL) {
		ctx->pools = p->next;
		pool_destroy(p);
	}
}

int action_sql_prepare(struct action *a, const struct action_conf *ac, const char *own_conninfo,
                       char *err, size_t errlen)
{
	const char *conninfo = ac->conninfo && *ac->conninfo ? ac->conninfo : own_conninfo;

	if (action_sql_placeholders(ac->statement, &a->sql, &a->sql_names, err, errlen) < 0)
		return -1;
	for (a->sql_nparams = 0; a->sql_names[a->sql_nparams]; a->sql_nparams++)
		;
	a->expect_rows = ac->expect_rows;
	a->own_db = strcmp(conninfo, own_conninfo) == 0;
	if ((a->pool = pool_get(a->ctx, conninfo, a->own_db)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void action_sql_release(struct action *a)
{
	if (a->sql_names) {
		for (int i = 0; a->sql_names[i]; i++)
			free(a->sql_names[i]);
		free(a->sql_names);
	}
	free(a->sql);
	if (a->pool && a->ctx)
		pool_unref(a->ctx, a->pool);
	a->pool = NULL;
}

/* ---- a run ---- */

static void sql_close(struct action_run *run)
{
	db_session_close(run->session);
	run->session = NULL;
}

void action_sql_abort(struct action_run *run)
{
	if (run->session)
		sql_close(run);
}

static void sql_fail(struct action_run *run, const char *what, const char *err)
{
	struct action_result res;
	char msg[512];

	sql_close(run);
	snprintf(msg, sizeof(msg), "%s%s%s", what, err && *err ? ": " : "", err ? err : "");
	memset(&res, 0, sizeof(res));
	res.outcome = ACTION_FAILED;
	/* A statement cut off by statement_timeout: SQLSTATE 57014 (query_canceled). */
	if (strstr(msg, "statement timeout") != NULL)
		res.outcome = ACTION_TIMEOUT;
	res.exit_code = -1;
	res.row_count = run->rows;
	res.error = msg;
	res.output = run->status;
	res.output_len = strlen(run->status);
	action_run_finish(run, &res);
}

static void sql_result(struct action_run *run, bool finished)
{
	struct action_result res;

	sql_close(run);
	memset(&res, 0, sizeof(res));
	res.outcome = ACTION_SUCCEEDED;
	res.exit_code = -1;
	res.row_count = run->rows;
	res.output = run->status;
	res.output_len = strlen(run->status);
	res.finished = finished;
	action_run_finish(run, &res);
}

static void sql_committed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;

	(void)sqlstate;
	if (res == NULL) {
		sql_fail(run, "commit failed", err);
		return;
	}
	sql_result(run, run->tx != NULL && run->action->own_db);
}

static void sql_tx_next(void *token, bool ok, bool lease_lost, const char *err)
{
	struct action_run *run = token;

	if (!ok) {
		struct action_result res;

		if (!lease_lost) {
			sql_fail(run, "recording the job's completion failed", err);
			return;
		}
		/* Someone else holds the job now: undo, report nothing. */
		sql_close(run);
		memset(&res, 0, sizeof(res));
		res.outcome = ACTION_FAILED;
		res.exit_code = -1;
		res.row_count = run->rows;
		res.error = "lease lost";
		res.output = "";
		res.lease_lost = true;
		action_run_finish(run, &res);
		return;
	}
	db_session_query(run->session, "COMMIT", 0, NULL, sql_committed, run);
}

static void sql_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	struct action *a = run->action;
	const char *tuples;
	char msg[128];

	(void)sqlstate;
	if (res == NULL) {
		sql_fail(run, "statement failed", err);
		return;
	}
	tuples = PQcmdTuples(res);
	run->rows = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
	snprintf(run->status, sizeof(run->status), "%s", PQcmdStatus(res));
	if (a->expect_rows != 0 && run->rows != a->expect_rows) {
		snprintf(msg, sizeof(msg), "expected %d row(s), the statement changed %lld",
		         a->expect_rows, run->rows);
		sql_fail(run, msg, NULL);
		return;
	}
	if (run->tx != NULL && a->own_db) {
		struct action_result r;

		memset(&r, 0, sizeof(r));
		r.outcome = ACTION_SUCCEEDED;
		r.exit_code = -1;
		r.row_count = run->rows;
		r.output = run->status;
		r.output_len = strlen(run->status);
		run->tx(run->session, &r, run->tx_arg, sql_tx_next, run);
		return;
	}
	db_session_query(run->session, "COMMIT", 0, NULL, sql_committed, run);
}

static void sql_timeout_set(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	struct action *a = run->action;

	(void)sqlstate;
	if (res == NULL) {
		sql_fail(run, "cannot set statement_timeout", err);
		return;
	}
	db_session_query(run->session, a->sql, a->sql_nparams, (const char *const *)run->params,
	                 sql_done, run);
}

static void sql_begun(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct action_run *run = arg;
	char ms[32];
	const char *params[1] = {ms};

	(void)sqlstate;
	if (res == NULL) {
		sql_fail(run, "BEGIN failed", err);
		return;
	}
	snprintf(ms, sizeof(ms), "%lld", (long long)run->action->timeout * 1000);
	db_session_query(run->session, "SELECT set_config('statement_timeout', $1, true)", 1,
	                 params, sql_timeout_set, run);
}

static void sql_opened(struct db_session *s, void *arg)
{
	struct action_run *run = arg;

	if (s == NULL) {
		sql_fail(run, "database unavailable", NULL);
		return;
	}
	run->session = s;
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
	if ((*out = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void sql_open(evutil_socket_t fd, short what, void *arg)
{
	struct action_run *run = arg;

	(void)fd;
	(void)what;
	if (db_session_open(run->action->pool->pool, sql_opened, run) < 0)
		sql_fail(run, "database unavailable", NULL);
}

int action_sql_start(struct action_run *run, char *err, size_t errlen)
{
	struct action *a = run->action;
	struct timeval now = {0, 0};

	run->rows = -1;
	run->params = calloc((size_t)a->sql_nparams + 1, sizeof(char *));
	if (run->params == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < a->sql_nparams; i++)
		if (bind_field(run, a->sql_names[i], &run->params[i], err, errlen) < 0)
			return -1;
	/*
	 * The pool may hand over a connection (and fail it) before
	 * db_session_open returns: start from the loop, so that the outcome is
	 * never reported before action_start has returned.
	 */
	run->defer = evtimer_new(run->ctx->base, sql_open, run);
	if (run->defer == NULL || evtimer_add(run->defer, &now) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
