/*
 * action.c: prepared actions, the life of a run, and the exec action (the
 * sql and forward actions are in action_sql.c and action_forward.c).
 *
 * A run owns a parsed copy of the job's event: {field}, :name and BAYAR_*
 * all read event_field() of it, so a value is the text PHP would see.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action_exec.h"
#include "action_int.h"
#include "db.h"
#include "words.h"
#include "http_client.h"
#include "log.h"

#define ACTION_POOL_MAX 16

/*
 * Fields bayar.gg sends in a callback (SPEC §1) or returns from
 * check-payment / list-payments. A placeholder naming one of them is "" (or
 * SQL NULL) when an event lacks it; any other name must be in the event.
 */
static const char *const known_fields[] = {
    "event",          "invoice_id",     "status",      "amount",         "final_amount",
    "unique_code",    "paid_at",        "paid_amount", "paid_reff_num",  "customer_name",
    "customer_email", "customer_phone", "description", "redirect_url",   "has_file",
    "has_content",    "timestamp",      "signature",   "payment_method", "expires_at",
    "created_at",
};

bool action_field_known(const char *name)
{
	for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
		if (strcmp(known_fields[i], name) == 0)
			return true;
	return false;
}

const char *action_field(struct action_run *run, const char *name)
{
	const char *v = event_field(&run->ev, name);

	if (v == NULL && action_field_known(name))
		return "";
	return v;
}

/* ---- context ---- */

struct action_ctx *action_ctx_new(struct event_base *base, const char *own_conninfo)
{
	struct action_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	ctx->base = base;
	ctx->pool_size = 4;
	LIST_INIT(&ctx->runs);
	if ((ctx->own_conninfo = strdup(own_conninfo)) == NULL) {
		free(ctx);
		return NULL;
	}
	return ctx;
}

void action_ctx_set_pool_size(struct action_ctx *ctx, int size)
{
	ctx->pool_size = size < 1 ? 1 : size > ACTION_POOL_MAX ? ACTION_POOL_MAX : size;
}

void action_ctx_free(struct action_ctx *ctx)
{
	struct action_run *run;

	if (ctx == NULL)
		return;
	while ((run = LIST_FIRST(&ctx->runs)) != NULL) {
		if (run->exec != NULL) {
			action_exec_cancel(run->exec);
			run->exec = NULL;
		}
		action_sql_abort(run);
		action_run_free(run);
	}
	/* Cancels forwards in flight; their runs are gone already. */
	http_client_free(ctx->http);
	action_pools_free(ctx);
	free(ctx->own_conninfo);
	free(ctx);
}

size_t action_running(const struct action_ctx *ctx)
{
	return ctx->nruns;
}

/* ---- prepared actions ---- */

static void action_unref(struct action *a)
{
	if (a == NULL || --a->refs > 0)
		return;
	words_free(a->argv);
	action_sql_release(a);
	free(a->url);
	if (a->secret) {
		explicit_bzero(a->secret, strlen(a->secret));
		free(a->secret);
	}
	free(a->name);
	free(a);
}

static void warn_unknown_fields(const struct config *cfg, const struct action_conf *ac,
                                char *const *names, const char *what)
{
	for (size_t i = 0; names && names[i]; i++) {
		if (!action_field_known(names[i]))
			log_warnx("%s:%d: [action.%s] %s uses field \"%s\", which bayar.gg is not "
			          "known to send: an event without it fails the job",
			          cfg->path ? cfg->path : "config", ac->line, ac->name, what,
			          names[i]);
	}
}

static int prepare_exec(struct action *a, const struct config *cfg, const struct action_conf *ac,
                        char *err, size_t errlen)
{
	char msg[256], **names = NULL;

	if (words_split(ac->command, &a->argv, msg, sizeof(msg)) < 0 ||
	    words_fields(a->argv, &names, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s:%d: command: %s", cfg->path ? cfg->path : "config",
		         ac->line, msg);
		return -1;
	}
	warn_unknown_fields(cfg, ac, names, "command");
	words_free(names);
	return 0;
}

static int prepare_forward(struct action *a, const struct config *cfg, const struct action_conf *ac,
                           char *err, size_t errlen)
{
	const char *secret = ac->secret;

	if (secret == NULL && cfg->nsecrets > 0)
		secret = cfg->secrets[0];
	if (ac->sign_bayar && (secret == NULL || *secret == '\0')) {
		snprintf(err, errlen, "%s:%d: secret_file: no secret to sign with",
		         cfg->path ? cfg->path : "config", ac->line);
		return -1;
	}
	a->sign_bayar = ac->sign_bayar;
	if ((a->url = strdup(ac->url)) == NULL ||
	    (secret != NULL && (a->secret = strdup(secret)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static struct action *action_prepare(struct action_ctx *ctx, const struct config *cfg,
                                     const struct action_conf *ac, char *err, size_t errlen)
{
	struct action *a = calloc(1, sizeof(*a));
	char msg[256];
	int rc = -1;

	if (a == NULL || (a->name = strdup(ac->name)) == NULL) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->refs = 1;
	a->ctx = ctx;
	a->type = ac->type;
	a->timeout = ac->timeout;
	a->max_attempts = config_action_max_attempts(cfg, ac);
	switch (ac->type) {
	case ACTION_EXEC:
		rc = prepare_exec(a, cfg, ac, err, errlen);
		break;
	case ACTION_SQL:
		rc = action_sql_prepare(a, ac, cfg->conninfo, msg, sizeof(msg));
		if (rc < 0)
			snprintf(err, errlen, "%s:%d: statement: %s",
			         cfg->path ? cfg->path : "config", ac->line, msg);
		else
			warn_unknown_fields(cfg, ac, a->sql_names, "statement");
		break;
	case ACTION_FORWARD:
		rc = prepare_forward(a, cfg, ac, err, errlen);
		break;
	}
	if (rc < 0) {
		action_unref(a);
		return NULL;
	}
	return a;
}

struct action_set *action_set_new(struct action_ctx *ctx, const struct config *cfg, char *err,
                                  size_t errlen)
{
	struct action_set *set = calloc(1, sizeof(*set));

	if (set == NULL || (set->v = calloc(cfg->nactions + 1, sizeof(*set->v))) == NULL) {
		free(set);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->nactions; i++) {
		set->v[i] = action_prepare(ctx, cfg, &cfg->actions[i], err, errlen);
		if (set->v[i] == NULL) {
			action_set_free(set);
			return NULL;
		}
		set->n++;
	}
	return set;
}

int action_check_config(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nactions; i++) {
		const struct action_conf *ac = &cfg->actions[i];
		struct action a;
		char msg[256], *sql = NULL, **names = NULL;
		int rc = 0;

		memset(&a, 0, sizeof(a));
		switch (ac->type) {
		case ACTION_EXEC:
			rc = prepare_exec(&a, cfg, ac, err, errlen);
			words_free(a.argv);
			break;
		case ACTION_SQL:
			rc = action_sql_placeholders(ac->statement, &sql, &names, msg, sizeof(msg));
			if (rc < 0)
				snprintf(err, errlen, "%s:%d: statement: %s",
				         cfg->path ? cfg->path : "config", ac->line, msg);
			else
				warn_unknown_fields(cfg, ac, names, "statement");
			words_free(names);
			free(sql);
			break;
		case ACTION_FORWARD:
			rc = prepare_forward(&a, cfg, ac, err, errlen);
			free(a.url);
			if (a.secret) {
				explicit_bzero(a.secret, strlen(a.secret));
				free(a.secret);
			}
			break;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

void action_set_free(struct action_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		action_unref(set->v[i]);
	free(set->v);
	free(set);
}

struct action *action_set_find(const struct action_set *set, const char *name)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strcmp(set->v[i]->name, name) == 0)
			return set->v[i];
	return NULL;
}

char *action_set_leases(const struct action_set *set, int margin)
{
	cJSON *obj = cJSON_CreateObject();
	char *text;

	if (obj == NULL)
		return NULL;
	for (size_t i = 0; i < set->n; i++) {
		if (cJSON_AddNumberToObject(obj, set->v[i]->name,
		                            (double)set->v[i]->timeout + margin) == NULL) {
			cJSON_Delete(obj);
			return NULL;
		}
	}
	text = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	return text;
}

const char *action_name(const struct action *a)
{
	return a->name;
}

int action_timeout(const struct action *a)
{
	return a->timeout;
}

int action_max_attempts(const struct action *a)
{
	return a->max_attempts;
}

/* ---- runs ---- */

void action_run_free(struct action_run *run)
{
	if (run == NULL)
		return;
	LIST_REMOVE(run, link);
	run->ctx->nruns--;
	if (run->defer)
		event_free(run->defer);
	if (run->params) {
		for (int i = 0; i < run->action->sql_nparams; i++)
			free(run->params[i]);
		free(run->params);
	}
	action_unref(run->action);
	event_release(&run->ev);
	free(run->job_id);
	free(run->source);
	free(run->event);
	free(run->event_bare);
	free(run);
}

void action_run_finish(struct action_run *run, const struct action_result *res)
{
	if (run->state == RUN_ACTIVE && run->cb)
		run->cb(run, res, run->arg);
	action_run_free(run);
}

void action_run_fail(struct action_run *run, enum action_outcome o, const char *fmt, ...)
{
	struct action_result res;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&res, 0, sizeof(res));
	res.outcome = o;
	res.exit_code = -1;
	res.row_count = -1;
	res.error = msg;
	res.output = "";
	action_run_finish(run, &res);
}

/* ---- exec ---- */

static const char *exec_lookup(void *arg, const char *name)
{
	return action_field(arg, name);
}

/* The last non-empty line of the output, for last_error. */
static void last_line(const char *out, size_t len, char *buf, size_t buflen)
{
	size_t end = len, start;

	while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' || out[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && out[start - 1] != '\n')
		start--;
	if (end - start > 200)
		start = end - 200;
	snprintf(buf, buflen, "%.*s", (int)(end - start), out + start);
	/* Control characters would break the one-line rule of last_error. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static void exec_done(struct action_exec_run *er, const struct action_exec_result *r, void *arg)
{
	struct action_run *run = arg;
	struct action_result res;
	char msg[512], line[256];

	(void)er;
	run->exec = NULL;
	memset(&res, 0, sizeof(res));
	res.exit_code = -1;
	res.row_count = -1;
	res.output = r->output;
	res.output_len = r->output_len;
	res.outcome = ACTION_FAILED;
	last_line(r->output, r->output_len, line, sizeof(line));
	switch (r->how) {
	case ACTION_EXEC_EXITED:
		res.exit_code = r->code;
		if (r->code == 0) {
			res.outcome = ACTION_SUCCEEDED;
			break;
		}
		snprintf(msg, sizeof(msg), "exit status %d%s%s", r->code, line[0] ? ": " : "",
		         line);
		break;
	case ACTION_EXEC_SIGNALED:
		snprintf(msg, sizeof(msg), "killed by signal %d (%s)%s%s", r->code,
		         strsignal(r->code), line[0] ? ": " : "", line);
		break;
	case ACTION_EXEC_TIMEOUT:
		res.outcome = ACTION_TIMEOUT;
		snprintf(msg, sizeof(msg), "timed out after %d s, process group killed",
		         run->action->timeout);
		break;
	case ACTION_EXEC_SPAWN_FAILED:
		snprintf(msg, sizeof(msg), "cannot execute %s: %s", run->action->argv[0],
		         strerror(r->code));
		break;
	}
	if (res.outcome != ACTION_SUCCEEDED)
		res.error = msg;
	action_run_finish(run, &res);
}

static int exec_start(struct action_run *run, char *err, size_t errlen)
{
	struct action *a = run->action;
	struct action_exec_var *vars = NULL;
	char **argv = NULL, **envp = NULL;
	size_t n = 0;
	const cJSON *f;
	int rc = -1;

	if (words_expand(a->argv, exec_lookup, run, &argv, err, errlen) < 0)
		return -1;
	vars = calloc(run->ev.nfields + 1, sizeof(*vars));
	if (vars == NULL)
		goto oom;
	cJSON_ArrayForEach(f, run->ev.json)
	{
		if (n == run->ev.nfields)
			break;
		vars[n].name = f->string;
		vars[n].value = f->string ? event_field(&run->ev, f->string) : NULL;
		n++;
	}
	envp = action_exec_env(vars, n, run->source, run->job_id, run->attempt);
	if (envp == NULL)
		goto oom;
	run->exec = action_exec_start(run->ctx->base, argv, envp, run->event, strlen(run->event),
	                              a->timeout, exec_done, run);
	if (run->exec == NULL) {
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	action_exec_env_free(envp);
	words_free(argv);
	free(vars);
	return rc;
}

/* ---- start and cancel ---- */

struct action_run *action_start(struct action_ctx *ctx, struct action *a,
                                const struct action_job *job, action_tx_fn tx, void *tx_arg,
                                action_done_cb cb, void *arg, char *err, size_t errlen)
{
	struct action_run *run = calloc(1, sizeof(*run));
	const char *perr = NULL;
	int rc = -1;

	if (run == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	run->ctx = ctx;
	run->action = a;
	a->refs++;
	run->attempt = job->attempt;
	run->cb = cb;
	run->arg = arg;
	run->tx = tx;
	run->tx_arg = tx_arg;
	LIST_INSERT_HEAD(&ctx->runs, run, link);
	ctx->nruns++;
	if ((run->job_id = strdup(job->id)) == NULL ||
	    (run->source = strdup(job->source ? job->source : "callback")) == NULL ||
	    (run->event = strdup(job->event)) == NULL ||
	    (run->event_bare = strdup(job->event_bare ? job->event_bare : job->event)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The stored event passed these checks once; this keeps the literal texts. */
	if (event_parse(&run->ev, run->event, strlen(run->event), &perr) < 0) {
		snprintf(err, errlen, "stored event unusable: %s", perr);
		goto fail;
	}
	switch (a->type) {
	case ACTION_EXEC:
		rc = exec_start(run, err, errlen);
		break;
	case ACTION_SQL:
		rc = action_sql_start(run, err, errlen);
		break;
	case ACTION_FORWARD:
		rc = action_forward_start(run, err, errlen);
		break;
	}
	if (rc < 0)
		goto fail;
	return run;
fail:
	action_run_free(run);
	return NULL;
}

bool action_cancel(struct action_run *run)
{
	if (run == NULL)
		return true;
	switch (run->action->type) {
	case ACTION_SQL:
		return false;
	case ACTION_EXEC:
		if (run->exec)
			action_exec_cancel(run->exec);
		run->exec = NULL;
		action_run_free(run);
		return true;
	case ACTION_FORWARD:
		/* The client has no per-request cancel: the answer is dropped when it comes. */
		run->state = RUN_CANCELLED;
		return true;
	}
	return true;
}
