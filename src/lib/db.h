/*
 * db.h: a small pool of asynchronous libpq connections driven by the event
 * loop. Nothing here blocks: connections are made with PQconnectStart/Poll,
 * queries sent with PQsendQueryParams and read back as the socket becomes
 * readable. A broken connection is replaced with backoff, forever; so is a
 * connection that turns out unable to write (a standby, a read-only
 * session: db_conn_read_only), at connect or at the first failed statement.
 * name is the pool's purpose: its connections carry application_name
 * bayarhook/<name>, and its log lines pool=<name>, libpq's notices
 * included.
 */
#ifndef BAYARHOOK_DB_H
#define BAYARHOOK_DB_H

#include <stdbool.h>
#include <event2/event.h>
#include <libpq-fe.h>

struct db_pool;

/*
 * res is the query's last result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) or
 * NULL on failure, with err describing it and sqlstate set when the server
 * reported one ("" when the connection failed). The pool clears res after
 * the callback returns.
 */
typedef void (*db_result_cb)(PGresult *res, const char *err, const char *sqlstate, void *arg);
/* Called when a LISTENed channel is notified on any pool connection. */
typedef void (*db_notify_cb)(const char *channel, const char *payload, void *arg);
/* Called when the pool goes from no usable connection to one, and back. */
typedef void (*db_state_cb)(bool up, void *arg);

struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, int size,
                            const char *name);
void db_pool_free(struct db_pool *pool);

/* The first connection of the pool LISTENs on channel (after each reconnect). */
void db_pool_listen(struct db_pool *pool, const char *channel, db_notify_cb cb, void *arg);
void db_pool_on_state(struct db_pool *pool, db_state_cb cb, void *arg);

/* Connections able to run a query now or soon (connected). */
int db_pool_up(const struct db_pool *pool);
/*
 * Whether the pool has no usable connection because the server it reaches
 * is read-only (a standby): the last connection made was dropped for that.
 */
bool db_pool_read_only(const struct db_pool *pool);
/* Connections connected and without a query. */
int db_pool_idle(const struct db_pool *pool);

/*
 * Runs sql with text parameters on a connection of the pool (queued until
 * one is idle). Parameters are copied. Returns 0, or -1 when no connection
 * is up (the callback is then never called): the caller answers at once.
 */
int db_query(struct db_pool *pool, const char *sql, int nparams, const char *const *params,
             db_result_cb cb, void *arg) __attribute__((warn_unused_result));
/*
 * As db_query, with binlen[i] >= 0 marking params[i] as binary (PostgreSQL's
 * send format, binlen[i] bytes; its type comes from a cast in sql) and -1
 * as text.
 */
int db_query_bin(struct db_pool *pool, const char *sql, int nparams, const char *const *params,
                 const int *binlen, db_result_cb cb, void *arg) __attribute__((warn_unused_result));

/*
 * A session holds one connection of the pool for a sequence of queries
 * (BEGIN ... COMMIT). cb gets the session once a connection is free, or
 * NULL when the pool went down meanwhile, always from the loop (never
 * before this returns). Returns -1 when no connection is up (cb never
 * called).
 */
struct db_session;
typedef void (*db_session_cb)(struct db_session *s, void *arg);
int db_session_open(struct db_pool *pool, db_session_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* As db_query, on the session's connection; a lost connection fails it via cb. */
void db_session_query(struct db_session *s, const char *sql, int nparams, const char *const *params,
                      db_result_cb cb, void *arg);
/* Gives the connection back (rolling back an open transaction first). */
void db_session_close(struct db_session *s);

/* True for SQLSTATEs that mean "try the same transaction again". */
bool db_sqlstate_retryable(const char *sqlstate);

/*
 * Blocking connect for command-line tools (application_name
 * bayarhook/admin unless the conninfo says otherwise); the reason in err on
 * failure.
 */
PGconn *db_connect_blocking(const char *conninfo, char *err, size_t errlen);

/*
 * The keyword/value arrays (NULL-terminated) every connection is made
 * with: the conninfo's own parameters, plus what it leaves unset of TCP
 * keepalives and tcp_user_timeout, fallback_application_name
 * bayarhook/<purpose>, and target_session_attrs=read-write when it lists
 * several hosts (db_connect.c). -1 with the reason in err when conninfo
 * does not parse.
 */
struct db_params {
	char **keys;
	char **values;
	int n;
};
int db_params_build(const char *conninfo, const char *purpose, struct db_params *out, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/*
 * Moves the first of several hosts (host, hostaddr and port lists alike)
 * to the end. libpq ignores connect_timeout under PQconnectPoll, so an
 * attempt whose first host never answers is given up as a whole; the next
 * one then starts at the next host instead of the silent one again.
 */
void db_params_rotate(struct db_params *p);
/* The value of key, or NULL when it is not in the arrays. */
const char *db_params_get(const struct db_params *p, const char *key);
void db_params_free(struct db_params *p);

/*
 * Whether a failed statement says the session cannot write: SQLSTATE 25006
 * (read_only_sql_transaction: a standby's "cannot execute ... during
 * recovery", default_transaction_read_only), or a server that reports it
 * is in hot standby.
 */
bool db_conn_read_only(PGconn *pg, const char *sqlstate);

#endif
