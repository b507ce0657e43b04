/*
 * action_run.c: the life of a run, whatever its type: the context shared by
 * all runs (event loop, HTTP client, sql pools), reference-counted prepared
 * actions, starting, cancelling and finishing a run, and the event fields
 * placeholders read. Type modules call in here; nothing here calls a type
 * except through its struct action_ops.
 *
 * A run owns a parsed copy of the job's event: {field}, :name and BAYAR_*
 * all read event_field() of it, so a value is the text PHP would see.
 */
#include "action_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "http_client.h"
#include "log.h"
#include "xmalloc.h"

#define ACTION_POOL_MAX 16

/* One connection pool per distinct sql conninfo, shared by the actions using it. */
struct action_pool {
	struct action_pool *next;
	char *conninfo;
	struct db_pool *pool;
	int refs; /* actions holding it */
};

struct action_ctx {
	struct event_base *base;
	char *own_conninfo;
	int pool_size;
	struct http_client *http; /* created on first use */
	struct gateway *gateway;  /* not ours: the daemon's */
	struct action_pool *pools;
	LIST_HEAD(, action_run) runs;
	size_t nruns;
};

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

/*
 * SPEC §7: the job's own values, named like fields, so a sql statement (and
 * an exec command's {name}) can read them: they are never an event's.
 */
static const char *const job_fields[] = {
    "bayarhook_job_id",  "bayarhook_attempt",         "bayarhook_source",
    "bayarhook_flagged", "bayarhook_idempotency_key",
};

bool action_job_field(const char *name)
{
	for (size_t i = 0; i < sizeof(job_fields) / sizeof(job_fields[0]); i++)
		if (strcmp(job_fields[i], name) == 0)
			return true;
	return false;
}

static const char *job_value(const struct action_run *run, const char *name)
{
	if (strcmp(name, "bayarhook_job_id") == 0)
		return run->job_id;
	if (strcmp(name, "bayarhook_attempt") == 0)
		return run->attempt_text;
	if (strcmp(name, "bayarhook_source") == 0)
		return run->source;
	if (strcmp(name, "bayarhook_flagged") == 0)
		return run->flag;
	if (strcmp(name, "bayarhook_idempotency_key") == 0)
		return run->idempotency_key;
	return NULL;
}

bool action_field_known(const char *name)
{
	for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
		if (strcmp(known_fields[i], name) == 0)
			return true;
	return false;
}

const char *action_field(struct action_run *run, const char *name)
{
	const char *v;

	if (action_job_field(name))
		return job_value(run, name);
	v = event_field(&run->ev, name);

	if (v == NULL && action_field_known(name))
		return "";
	return v;
}

void action_warn_fields(const struct config *cfg, const struct action_conf *ac, char *const *names,
                        const char *what)
{
	for (size_t i = 0; names && names[i]; i++) {
		if (!action_field_known(names[i]) && !action_job_field(names[i]))
			log_warnx("%s:%d: [action.%s] %s uses field \"%s\", which bayar.gg is not "
			          "known to send: an event without it fails the job",
			          cfg->path ? cfg->path : "config", ac->line, ac->name, what,
			          names[i]);
	}
}

/* ---- context ---- */

struct action_ctx *action_ctx_new(struct event_base *base, const char *own_conninfo)
{
	struct action_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->base = base;
	ctx->pool_size = 4;
	LIST_INIT(&ctx->runs);
	ctx->own_conninfo = xstrdup(own_conninfo);
	return ctx;
}

void action_ctx_set_pool_size(struct action_ctx *ctx, int size)
{
	ctx->pool_size = size < 1 ? 1 : size > ACTION_POOL_MAX ? ACTION_POOL_MAX : size;
}

static void run_free(struct action_run *run);

void action_ctx_free(struct action_ctx *ctx)
{
	struct action_run *run;
	struct action_pool *p;

	if (ctx == NULL)
		return;
	while ((run = LIST_FIRST(&ctx->runs)) != NULL) {
		run->action->ops->stop(run);
		run_free(run);
	}
	http_client_free(ctx->http);
	while ((p = ctx->pools) != NULL) {
		ctx->pools = p->next;
		db_pool_free(p->pool);
		free(p->conninfo);
		free(p);
	}
	free(ctx->own_conninfo);
	free(ctx);
}

size_t action_running(const struct action_ctx *ctx)
{
	return ctx->nruns;
}

struct event_base *action_ctx_base(const struct action_ctx *ctx)
{
	return ctx->base;
}

const char *action_ctx_own_conninfo(const struct action_ctx *ctx)
{
	return ctx->own_conninfo;
}

void action_ctx_set_gateway(struct action_ctx *ctx, struct gateway *gw)
{
	ctx->gateway = gw;
}

struct gateway *action_ctx_gateway(const struct action_ctx *ctx)
{
	return ctx->gateway;
}

struct http_client *action_ctx_http(struct action_ctx *ctx)
{
	if (ctx->http == NULL)
		ctx->http = http_client_new(ctx->base, NULL);
	return ctx->http;
}

struct db_pool *action_ctx_pool_get(struct action_ctx *ctx, const char *conninfo, bool own)
{
	struct action_pool *p;

	for (p = ctx->pools; p; p = p->next) {
		if (strcmp(p->conninfo, conninfo) == 0) {
			p->refs++;
			return p->pool;
		}
	}
	p = xcalloc(1, sizeof(*p));
	p->conninfo = xstrdup(conninfo);
	p->pool = db_pool_new(ctx->base, conninfo, ctx->pool_size, own ? "sql" : "sql-action");
	p->refs = 1;
	p->next = ctx->pools;
	ctx->pools = p;
	return p->pool;
}

void action_ctx_pool_put(struct action_ctx *ctx, struct db_pool *pool)
{
	struct action_pool **pp, *p;

	for (pp = &ctx->pools; (p = *pp) != NULL; pp = &p->next) {
		if (p->pool != pool)
			continue;
		if (--p->refs > 0)
			return;
		*pp = p->next;
		db_pool_free(p->pool);
		free(p->conninfo);
		free(p);
		return;
	}
}

/* ---- prepared actions ---- */

void action_unref(struct action *a)
{
	if (a == NULL || --a->refs > 0)
		return;
	a->ops->release(a);
	free(a->name);
	free(a);
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

static void run_free(struct action_run *run)
{
	LIST_REMOVE(run, link);
	run->ctx->nruns--;
	if (run->priv != NULL && run->action->ops->run_release != NULL)
		run->action->ops->run_release(run);
	action_unref(run->action);
	event_release(&run->ev);
	free(run->job_id);
	free(run->source);
	free(run->event);
	free(run->event_bare);
	free(run->flag);
	free(run->idempotency_key);
	free(run);
}

void action_result_init(struct action_result *res, enum action_outcome outcome)
{
	memset(res, 0, sizeof(*res));
	res->outcome = outcome;
	res->exit_code = -1;
	res->row_count = -1;
	res->output = "";
}

void action_run_finish(struct action_run *run, const struct action_result *res)
{
	run->cb(run, res, run->arg);
	run_free(run);
}

void action_run_fail(struct action_run *run, enum action_outcome o, const char *fmt, ...)
{
	struct action_result res;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	action_result_init(&res, o);
	res.error = msg;
	action_run_finish(run, &res);
}

struct action_run *action_run_new(struct action_ctx *ctx, struct action *a,
                                  const struct action_job *job, char *err, size_t errlen)
{
	struct action_run *run = xcalloc(1, sizeof(*run));
	const char *perr = NULL;

	run->ctx = ctx;
	run->action = a;
	a->refs++;
	run->attempt = job->attempt;
	snprintf(run->attempt_text, sizeof(run->attempt_text), "%d", job->attempt);
	LIST_INSERT_HEAD(&ctx->runs, run, link);
	ctx->nruns++;
	run->job_id = xstrdup(job->id);
	run->source = xstrdup(job->source ? job->source : "callback");
	run->event = xstrdup(job->event);
	run->event_bare = xstrdup(job->event_bare ? job->event_bare : job->event);
	run->flag = xstrdup(job->flag ? job->flag : "");
	run->idempotency_key = xstrdup(
	    job->idempotency_key && job->idempotency_key[0] ? job->idempotency_key : job->id);
	/* The stored event passed these checks once; this keeps the literal texts. */
	if (event_parse(&run->ev, run->event, strlen(run->event), &perr) < 0) {
		snprintf(err, errlen, "stored event unusable: %s", perr);
		run_free(run);
		return NULL;
	}
	return run;
}

void action_run_drop(struct action_run *run)
{
	run_free(run);
}

struct action_run *action_start(struct action_ctx *ctx, struct action *a,
                                const struct action_job *job, action_tx_fn tx, void *tx_arg,
                                action_done_cb cb, void *arg, char *err, size_t errlen)
{
	struct action_run *run = action_run_new(ctx, a, job, err, errlen);

	if (run == NULL)
		return NULL;
	run->cb = cb;
	run->arg = arg;
	run->tx = tx;
	run->tx_arg = tx_arg;
	if (a->ops->start(run, err, errlen) < 0) {
		run_free(run);
		return NULL;
	}
	return run;
}

bool action_cancel(struct action_run *run)
{
	if (run == NULL)
		return true;
	if (!run->action->ops->cancellable)
		return false;
	run->action->ops->stop(run);
	run_free(run);
	return true;
}
