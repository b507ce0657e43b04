/*
 * action.h: what one attempt of a job does (SPEC §5). The queue hands a
 * claimed job to action_start(); the action runs it on the event loop (a
 * child process, a SQL statement, an HTTP POST) and reports one
 * action_result. Nothing here knows about leases or retries. The types
 * themselves are behind struct action_ops (action_run.h); action.c holds
 * their registry.
 *
 * Configured actions are prepared once per (re)load into an action_set:
 * commands are split, statements rewritten from :name to $n, pools and
 * secrets resolved. A run keeps a reference to its action, so a reload while
 * jobs run changes only the jobs claimed after it.
 */
#ifndef BAYARHOOK_ACTION_H
#define BAYARHOOK_ACTION_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct config;
struct db_session;

/* Shared by all runs: the event loop, the HTTP client, the sql pools. */
struct action_ctx;
/* One prepared [action.NAME]; reference-counted. */
struct action;
/* Every action of one config. */
struct action_set;
/* One attempt in progress. */
struct action_run;

enum action_outcome {
	ACTION_SUCCEEDED, /* exit 0, 2xx, rows as expected and committed */
	ACTION_FAILED,    /* anything else worth retrying */
	ACTION_TIMEOUT,   /* killed or abandoned at the action's timeout */
	/*
	 * A failure retrying cannot fix (SPEC §7): exec exit 65 (EX_DATAERR),
	 * forward 400/401/403/404/410/422, sql on_mismatch = dead, and an exec
	 * argument a field would turn into an option (SPEC §13). Each type
	 * decides it on numbers; the job goes dead at once (job_finish's
	 * p_permanent), its attempt recorded as failed.
	 */
	ACTION_FAILED_PERMANENT,
};

struct action_result {
	enum action_outcome outcome;
	int exit_code;       /* exec: the exit status; -1 when none */
	int http_status;     /* forward: the answer's status; 0 when none */
	long long row_count; /* sql: rows the statement changed; -1 when none */
	const char *error;   /* one line for jobs.last_error; NULL on success */
	const char *output;  /* what the attempt printed or was answered; may be "" */
	size_t output_len;
	/*
	 * sql on the receiver's own database: the job's completion was part of
	 * the action's transaction (committed together, or not at all). The
	 * queue then records nothing more for a success.
	 */
	bool finished;
	bool lease_lost; /* the completion found the job taken over: record nothing */
};

/* The job an attempt is for; everything is copied by action_start(). */
struct action_job {
	const char *id;         /* jobs.id, as text */
	int attempt;            /* jobs.attempts after the claim (1 = first) */
	const char *source;     /* "callback" or "reconciler" */
	const char *event;      /* jobs.event as JSON text */
	const char *event_bare; /* the same without "timestamp" and "signature" */
	const char *flag;       /* payments.flag (SPEC §7), "" or NULL when none */
	/*
	 * SPEC §12: the same for every attempt and rerun of one invoice, action
	 * and triggering status, new for each replay (job_claim computes it);
	 * NULL: the job id.
	 */
	const char *idempotency_key;
};

typedef void (*action_done_cb)(struct action_run *run, const struct action_result *res, void *arg);
/* One job of a shared transaction whose statement succeeded. */
struct action_tx_job {
	const struct action_result *res; /* what its statement did */
	void *arg;                       /* action_start's tx_arg */
	bool done;                       /* set by the callee: its completion is recorded */
};
/*
 * For sql actions on the receiver's own database: called inside the open
 * transaction that the runs starting together share, once every statement
 * ran, with the jobs whose statement succeeded. The callee records their
 * completions through s (one statement for all), sets done for each job
 * whose claim still held, and then calls next(token, ok, err); ok false
 * (the write failed) rolls everything back. A job left not done was taken
 * over: the transaction is rolled back and run again without it.
 */
typedef void (*action_tx_next_fn)(void *token, bool ok, const char *err);
typedef void (*action_tx_fn)(struct db_session *s, struct action_tx_job *jobs, int n,
                             action_tx_next_fn next, void *token);

struct action_ctx *action_ctx_new(struct event_base *base, const char *own_conninfo);
/* Cancels what is still running (no callbacks) and frees everything. */
void action_ctx_free(struct action_ctx *ctx);
/*
 * The process's gateway client (gateway.h), for the wa_store action: its
 * calls share the reconciler's request budget. NULL: none (wa_store jobs
 * then fail and are retried).
 */
struct gateway;
void action_ctx_set_gateway(struct action_ctx *ctx, struct gateway *gw);
/* Connections of a sql pool created from now on (at most 16). */
void action_ctx_set_pool_size(struct action_ctx *ctx, int size);

/*
 * Prepares every action of cfg. On an invalid action returns NULL and
 * writes "file:line: key: reason" into err. Fields that no event is known
 * to carry are logged as warnings.
 */
struct action_set *action_set_new(struct action_ctx *ctx, const struct config *cfg, char *err,
                                  size_t errlen);
void action_set_free(struct action_set *set);
/*
 * The same checks as action_set_new without preparing anything (no
 * connections): for check-config. Returns 0, or -1 with "file:line: key:
 * reason" in err.
 */
int action_check_config(const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Lease seconds of each action as a JSON object {"name": seconds}, malloc'd. */
char *action_set_leases(const struct action_set *set, int margin);
/* NULL when the set has no action of that name. */
struct action *action_set_find(const struct action_set *set, const char *name);

const char *action_name(const struct action *a);
int action_timeout(const struct action *a);
int action_max_attempts(const struct action *a);

/*
 * Starts one attempt. tx is used only by sql actions on the receiver's
 * own database (NULL: such an action commits on its own, at least once).
 * Returns NULL (cb never called) when nothing could be started; *err then
 * says why. Otherwise cb is called exactly once, always from the loop and
 * never before this returns, unless the run is cancelled first. The run is
 * freed when cb returns.
 */
struct action_run *action_start(struct action_ctx *ctx, struct action *a,
                                const struct action_job *job, action_tx_fn tx, void *tx_arg,
                                action_done_cb cb, void *arg, char *err, size_t errlen);
/*
 * Stops an exec run (its process group is killed) or a forward (the
 * request is abandoned), frees it and drops the callback; returns true. A
 * sql run cannot be stopped once its statement is sent (it is bounded by
 * statement_timeout instead): returns false and changes nothing.
 */
bool action_cancel(struct action_run *run);
/* Runs started and not yet finished or cancelled. */
size_t action_running(const struct action_ctx *ctx);

#endif
