/*
 * action_int.h: the structures shared by action.c (prepared actions, runs,
 * exec), action_sql.c and action_forward.c. Nothing outside those three
 * files includes it, except the unit test of the placeholder rewriting.
 */
#ifndef BAYARHOOK_ACTION_INT_H
#define BAYARHOOK_ACTION_INT_H

#include <stdbool.h>
#include <sys/queue.h>

#include "action.h"
#include "config.h"
#include "event.h"

struct db_pool;
struct http_client;
struct action_exec_run;
struct event;

/* One connection pool per distinct sql conninfo, shared by the actions using it. */
struct action_pool {
	struct action_pool *next;
	char *conninfo;
	struct db_pool *pool;
	int refs; /* actions holding it */
};

struct action {
	int refs; /* the set that prepared it, plus each run */
	struct action_ctx *ctx;
	char *name;
	enum action_type type;
	int timeout;
	int max_attempts; /* effective: the action's or [fulfillment]'s */
	/* exec */
	char **argv; /* split command, placeholders still in */
	/* sql */
	char *sql;        /* the statement with $1..$n */
	char **sql_names; /* field of $i+1, NULL-terminated */
	int sql_nparams;
	int expect_rows; /* 0 = any */
	bool own_db;     /* the receiver's database: exactly once */
	struct action_pool *pool;
	/* forward */
	char *url;
	bool sign_bayar;
	char *secret; /* the action's, or the current webhook secret at load */
};

struct action_set {
	struct action **v;
	size_t n;
};

enum run_state {
	RUN_ACTIVE,    /* its callback will be called */
	RUN_CANCELLED, /* the owner is gone; freed once the work underneath ends */
};

struct action_run {
	LIST_ENTRY(action_run) link;
	enum run_state state;
	struct action_ctx *ctx;
	struct action *action;
	struct pay_event ev; /* parsed from event, for field lookups */
	char *job_id;
	int attempt;
	char *source;
	char *event;      /* the event JSON: exec stdin, forward body */
	char *event_bare; /* without "timestamp" and "signature" */
	action_done_cb cb;
	void *arg;
	action_tx_fn tx;
	void *tx_arg;
	/* exec */
	struct action_exec_run *exec;
	/* sql */
	struct event *defer; /* starts the run from the loop */
	struct db_session *session;
	char **params; /* bound values, NULL for SQL NULL */
	long long rows;
	char status[64]; /* the statement's command tag ("UPDATE 1") */
};

struct action_ctx {
	struct event_base *base;
	char *own_conninfo;
	int pool_size;
	struct http_client *http; /* created on first use */
	struct action_pool *pools;
	LIST_HEAD(, action_run) runs;
	size_t nruns;
};

/* action.c */
/*
 * The text of an event field for an action: the field's PHP text; for a
 * field the event does not carry, "" when bayar.gg is known to send such a
 * field, else NULL (an unknown name, most likely a typo).
 */
const char *action_field(struct action_run *run, const char *name);
bool action_field_known(const char *name);
/* Reports res to the owner (unless cancelled) and frees the run. */
void action_run_finish(struct action_run *run, const struct action_result *res);
/* Frees the run without any callback; the work underneath must be over. */
void action_run_free(struct action_run *run);
/* Same as action_run_finish for a failure with a formatted error. */
void action_run_fail(struct action_run *run, enum action_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* action_sql.c */
/*
 * Rewrites :name placeholders as $1..$n (the same name, the same number).
 * Not inside '...', E'...', "...", $tag$...$tag$, -- and block comments;
 * "::" is a cast. Positional $n in the text is refused. On success *out is
 * the new text and *names the field of each parameter (NULL-terminated),
 * both malloc'd. Returns 0, or -1 with a reason in err.
 */
int action_sql_placeholders(const char *stmt, char **out, char ***names, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Returns 0, or -1 with the reason (without file and line) in err. */
int action_sql_prepare(struct action *a, const struct action_conf *ac, const char *own_conninfo,
                       char *err, size_t errlen) __attribute__((warn_unused_result));
void action_sql_release(struct action *a);
int action_sql_start(struct action_run *run, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Gives the session back (rolled back unless committed); for shutdown. */
void action_sql_abort(struct action_run *run);
void action_pools_free(struct action_ctx *ctx);

/* action_forward.c */
int action_forward_start(struct action_run *run, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
