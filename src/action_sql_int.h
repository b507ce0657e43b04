/*
 * action_sql_int.h: what action_sql.c and action_sql_batch.c share: the
 * prepared statement, the state of one run, and the shared transactions of
 * runs on the receiver's own database.
 */
#ifndef BAYARHOOK_ACTION_SQL_INT_H
#define BAYARHOOK_ACTION_SQL_INT_H

#include <stdbool.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "action_run.h"

#define SQLSTATE_QUERY_CANCELED "57014"
#define SQL_BATCH_MAX 32 /* runs per shared transaction */
/*
 * Runs that start together are spread over up to SQL_BATCH_SPREAD
 * transactions of at least SQL_BATCH_MIN runs each. Each run costs two
 * round trips in sequence (savepoint, statement), which on a busy machine
 * wait for the scheduler, so two transactions side by side finish sooner
 * than one long one; each transaction costs the database a fixed share
 * (BEGIN, the timeout, the completions, COMMIT), so not more than two.
 */
#define SQL_BATCH_SPREAD 2
#define SQL_BATCH_MIN 8

struct sql_batch;
struct sql_run;

struct sql_action {
	struct action *a;
	char *stmt; /* the statement as configured, :name placeholders */
	char *sql;  /* the statement with $1..$n */
	/*
	 * action_sql_direct.c: the statement with one text[] parameter, each
	 * element cast to the type its placeholder takes; NULL until known.
	 */
	char *typed;
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

static inline struct sql_run *sql_state(struct action_run *run)
{
	return run->priv;
}

/* A result carrying what the statement did so far. */
static inline void sql_result_init(struct action_run *run, struct action_result *res,
                                   enum action_outcome o)
{
	struct sql_run *r = sql_state(run);

	action_result_init(res, o);
	res->row_count = r->rows;
	res->output = r->status;
	res->output_len = strlen(r->status);
}

/*
 * The run's values of the statement's parameters (NULL for SQL NULL), as
 * many as nparams; NULL with the reason in err when a field cannot be
 * bound. Free with action_sql_params_free.
 */
char **action_sql_bind(struct action_run *run, char *err, size_t errlen);
void action_sql_params_free(char **params, int n);
/* Makes q->typed for the parameters' types (one per name, in order). */
int action_sql_set_types(struct sql_action *q, char *const *types, int ntypes, char *err,
                         size_t errlen);

/* The flush event of an own-database action: starts transactions for its waiting runs. */
void action_sql_batch_flush(evutil_socket_t fd, short what, void *arg);
/*
 * Shutdown only (the loop does not run again): takes r's run out of its
 * transaction; the last run out closes it, rolled back.
 */
void action_sql_batch_stop(struct sql_run *r);

#endif
