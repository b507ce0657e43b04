/*
 * action_run.h: what an action type module sees. A type (action_exec.c,
 * action_sql.c, action_forward.c, ...) fills one struct action_ops and is
 * named on one line of the registry in action.c; it depends on this module
 * (prepared actions, the life of a run, event fields, the shared HTTP client
 * and sql pools) and on nothing else of the action layer.
 *
 * The rule for completions: ops->start either fails at once (returns -1,
 * nothing started, no callback) or reports exactly one result later, from
 * the event loop, through action_run_finish() — never before start returns.
 */
#ifndef BAYARHOOK_ACTION_RUN_H
#define BAYARHOOK_ACTION_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "action.h"
#include "config.h"
#include "event.h"

struct db_pool;
struct http_client;

struct action_ops {
	const char *name; /* the config's type = NAME, for logs */
	/*
	 * Fills a->priv from ac. With a->ctx NULL (check-config) it only
	 * checks: it connects to nothing. Returns 0, or -1 with "key: reason"
	 * in err (the registry adds file and line).
	 */
	int (*prepare)(struct action *a, const struct config *cfg, const struct action_conf *ac,
	               char *err, size_t errlen);
	void (*release)(struct action *a); /* frees a->priv; a->ctx may be NULL */
	/* Starts the attempt (see the rule above); may set run->priv. */
	int (*start)(struct action_run *run, char *err, size_t errlen);
	/*
	 * Ends the work underneath at once, without a result (a killed process
	 * group, an abandoned request, a rolled-back transaction).
	 */
	void (*stop)(struct action_run *run);
	void (*run_release)(struct action_run *run); /* frees run->priv; NULL: nothing */
	/*
	 * False when stopping is not safe before the work ends by itself (a sql
	 * statement already sent is bounded by statement_timeout instead):
	 * action_cancel() then refuses, only shutdown stops it.
	 */
	bool cancellable;
};

struct action {
	int refs;               /* the set that prepared it, plus each run */
	struct action_ctx *ctx; /* NULL for an action only checked */
	const struct action_ops *ops;
	char *name;
	int timeout;
	int max_attempts; /* effective: the action's or [fulfillment]'s */
	void *priv;       /* the type's prepared state */
};

struct action_run {
	LIST_ENTRY(action_run) link;
	struct action_ctx *ctx;
	struct action *action;
	struct pay_event ev; /* parsed from event, for field lookups */
	char *job_id;
	int attempt;
	char attempt_text[16]; /* attempt in decimal, for :bayarhook_attempt */
	char *source;
	char *event;           /* the event JSON: exec stdin, forward body */
	char *event_bare;      /* without "timestamp" and "signature" */
	char *flag;            /* why the payment is flagged (SPEC §7); "" when it is not */
	char *idempotency_key; /* SPEC §12: Idempotency-Key, bayarhook_idempotency_key */
	action_done_cb cb;
	void *arg;
	action_tx_fn tx;
	void *tx_arg;
	void *priv; /* the type's state of this attempt */
};

/* Drops a reference; the last one releases the type's state and frees a. */
void action_unref(struct action *a);

/*
 * The text of an event field for an action: the field's PHP text; for a
 * field the event does not carry, "" when bayar.gg is known to send such a
 * field, else NULL (an unknown name, most likely a typo).
 */
const char *action_field(struct action_run *run, const char *name);
bool action_field_known(const char *name);
/*
 * bayarhook_job_id, bayarhook_attempt, bayarhook_source, bayarhook_flagged,
 * bayarhook_idempotency_key:
 * the job's own values, which action_field() also gives (bayarhook_flagged
 * "" when the payment is not flagged).
 */
bool action_job_field(const char *name);
/* Logs a warning per name that bayar.gg is not known to send; what: "command", ... */
void action_warn_fields(const struct config *cfg, const struct action_conf *ac, char *const *names,
                        const char *what);

/*
 * A run that is never started: the job's fields and its parsed event, for
 * what reads fields without the type's start (action_sql_direct.c binds
 * with it). NULL with the reason in err when the stored event is unusable.
 * Free with action_run_drop.
 */
struct action_run *action_run_new(struct action_ctx *ctx, struct action *a,
                                  const struct action_job *job, char *err, size_t errlen);
void action_run_drop(struct action_run *run);

/* A result with no exit code, no row count, no output. */
void action_result_init(struct action_result *res, enum action_outcome outcome);
/* Reports res to the owner and frees the run; the work underneath must be over. */
void action_run_finish(struct action_run *run, const struct action_result *res);
/* Same as action_run_finish for a failure with a formatted error. */
void action_run_fail(struct action_run *run, enum action_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Shared by the runs of a context. */
struct event_base *action_ctx_base(const struct action_ctx *ctx);
const char *action_ctx_own_conninfo(const struct action_ctx *ctx);
/* The gateway set by action_ctx_set_gateway, or NULL. */
struct gateway *action_ctx_gateway(const struct action_ctx *ctx);
/* The context's HTTP client, created on first use. */
struct http_client *action_ctx_http(struct action_ctx *ctx);
/*
 * The pool for conninfo, shared by every action naming the same one
 * (pool_size connections, at most 16); own: the receiver's database. Give
 * it back with action_ctx_pool_put.
 */
struct db_pool *action_ctx_pool_get(struct action_ctx *ctx, const char *conninfo, bool own);
void action_ctx_pool_put(struct action_ctx *ctx, struct db_pool *pool);

#endif
