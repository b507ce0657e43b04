/*
 * db.c: the asynchronous libpq pool (see db.h). The shape follows
 * pgbouncer's test/asynctest.c: PQconnectStart/PQconnectPoll, nonblocking
 * mode, PQsendQueryParams, PQflush, then PQconsumeInput + PQisBusy +
 * PQgetResult, with a one-shot event re-armed on PQsocket() each time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "db.h"
#include "log.h"
#include "xmalloc.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000
/*
 * libpq ignores connect_timeout under PQconnectPoll: a server that accepts
 * the TCP connection and never answers (a black hole, a stopped process
 * behind a proxy) would hold a connection slot for ever. This bounds the
 * whole attempt unless the conninfo sets connect_timeout (per host there,
 * here for all of them: a little more than one).
 */
#define DB_CONNECT_TIMEOUT_MS 10000

enum conn_state {
	CONN_DOWN,       /* no PGconn; the retry timer is armed */
	CONN_CONNECTING, /* PQconnectPoll in progress */
	CONN_IDLE,       /* connected, waiting for a query (and watching for EOF) */
	CONN_BUSY,       /* a query is in flight */
};

struct db_query {
	TAILQ_ENTRY(db_query) link;
	char *sql;
	int nparams;
	char **params;
	int *lengths; /* NULL: all text; else a binary parameter's length, or -1 for text */
	int *formats;
	db_result_cb cb;
	void *arg;
	bool internal;                   /* LISTEN after connect: not counted, no callback */
	struct db_session *session_open; /* a session waiting for a connection */
};
TAILQ_HEAD(query_list, db_query);

struct db_conn {
	struct db_pool *pool;
	int index;
	enum conn_state state;
	PGconn *pg;
	struct event ev; /* one-shot on PQsocket() */
	bool ev_added;
	struct event timer; /* reconnect backoff */
	int backoff_ms;
	struct db_query *q; /* when BUSY */
	PGresult *result;   /* last good result of q */
	char error[256];    /* first error of q */
	char sqlstate[6];
	bool flushing;
	struct db_session *session; /* holding this connection */
	bool counted;               /* included in pool->up */
	unsigned rotation;          /* pool->rotation when this attempt started */
};

struct db_session {
	struct db_pool *pool;
	struct db_conn *conn; /* NULL once the connection was lost */
	db_session_cb open_cb;
	void *open_arg;
};

struct db_pool {
	struct event_base *base;
	char *conninfo;
	struct db_params params; /* from conninfo, with our defaults (db_connect.c) */
	bool params_ok;          /* else PQconnectStart(conninfo) says what is wrong */
	int connect_timeout_ms;
	unsigned rotation; /* times db_params_rotate() moved params' first host to the end */
	/* A connection was dropped as read-only, none usable since (warned once). */
	bool read_only_said;
	char *name;
	int size;
	struct db_conn *conns;
	struct query_list queue;
	int up;
	char *listen_channel;
	db_notify_cb notify_cb;
	void *notify_arg;
	db_state_cb state_cb;
	void *state_arg;
	struct event handover; /* gives queued sessions their connection from the loop */
};

static void conn_event(evutil_socket_t fd, short what, void *arg);
static void conn_start(struct db_conn *c);
static void pool_dispatch(struct db_pool *pool);

static void query_free(struct db_query *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->lengths);
	free(q->formats);
	free(q->sql);
	free(q);
}

static void conn_arm(struct db_conn *c, short what)
{
	if (c->ev_added)
		event_del(&c->ev);
	event_assign(&c->ev, c->pool->base, PQsocket(c->pg), what, conn_event, c);
	event_add(&c->ev, NULL);
	c->ev_added = true;
}

static void pool_set_up(struct db_pool *pool, int delta)
{
	int before = pool->up;

	pool->up += delta;
	if ((before == 0) != (pool->up == 0)) {
		log_notice("database %s pool=%s", pool->up ? "up" : "down", pool->name);
		if (pool->state_cb)
			pool->state_cb(pool->up > 0, pool->state_arg);
	}
}

/* Fails every queued query: nothing can run them now. */
static void pool_fail_queue(struct db_pool *pool, const char *why)
{
	struct db_query *q;

	while ((q = TAILQ_FIRST(&pool->queue)) != NULL) {
		TAILQ_REMOVE(&pool->queue, q, link);
		if (q->session_open) {
			struct db_session *s = q->session_open;

			s->open_cb(NULL, s->open_arg);
			free(s);
		} else if (!q->internal && q->cb) {
			q->cb(NULL, why, "", q->arg);
		}
		query_free(q);
	}
}

static void conn_schedule_retry(struct db_conn *c)
{
	struct timeval tv;
	int ms = c->backoff_ms;

	/* Jitter keeps several processes from reconnecting in lockstep. */
	ms += rand() % (ms / 2 + 1);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&c->timer, &tv);
	c->backoff_ms =
	    c->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/*
 * Drops the connection and schedules the next one; a query in flight fails
 * with msg (it may have committed). The line is a warning when say, else
 * when the connection was up.
 */
static void conn_down(struct db_conn *c, const char *msg_in, bool say)
{
	struct db_query *q = c->q;
	bool was_up = c->counted;
	char msg[300];

	snprintf(msg, sizeof(msg), "%s", msg_in);
	msg[strcspn(msg, "\n")] = '\0';
	if (was_up || say)
		log_warnx("%s pool=%s conn=%d", msg, c->pool->name, c->index);
	else
		log_debug("%s pool=%s conn=%d", msg, c->pool->name, c->index);
	if (c->ev_added) {
		event_del(&c->ev);
		c->ev_added = false;
	}
	if (c->result) {
		PQclear(c->result);
		c->result = NULL;
	}
	PQfinish(c->pg);
	c->pg = NULL;
	c->q = NULL;
	c->state = CONN_DOWN;
	if (c->session) {
		c->session->conn = NULL;
		c->session = NULL;
	}
	conn_schedule_retry(c);
	c->counted = false;
	if (was_up)
		pool_set_up(c->pool, -1);
	if (q) {
		if (!q->internal && q->cb)
			q->cb(NULL, msg, "", q->arg);
		query_free(q);
	}
	if (c->pool->up == 0)
		pool_fail_queue(c->pool, msg);
}

/* Drops the connection; a query in flight fails (it may have committed). */
static void conn_broken(struct db_conn *c, const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "database connection lost: %s", why);
	conn_down(c, msg, false);
}

/*
 * A connection that cannot write is of no use to any pool of ours (each
 * records something): it is dropped and made again, which with several
 * hosts and target_session_attrs=read-write finds the new primary. The
 * first such drop of a pool is a warning, the rest debug until a
 * connection is usable again.
 */
static void conn_read_only(struct db_conn *c, const char *what)
{
	char msg[300];
	const char *host = c->pg ? PQhost(c->pg) : NULL;
	const char *port = c->pg ? PQport(c->pg) : NULL;

	snprintf(msg, sizeof(msg),
	         "database session is read-only (%s): a standby or a read-only database, not "
	         "the primary; callbacks cannot be recorded there; reconnecting host=%s port=%s",
	         what, host && host[0] ? host : "-", port && port[0] ? port : "-");
	conn_down(c, msg, !c->pool->read_only_said);
	c->pool->read_only_said = true;
}

/* The timer: the backoff ended (DOWN), or the connect took too long (CONNECTING). */
static void conn_retry(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CONN_CONNECTING) {
		char why[80];

		snprintf(why, sizeof(why), "no answer within %d ms while connecting",
		         c->pool->connect_timeout_ms);
		/* Once per silent host, however many connections found it so. */
		if (c->pool->params_ok && c->rotation == c->pool->rotation) {
			db_params_rotate(&c->pool->params);
			c->pool->rotation++;
		}
		conn_broken(c, why);
		return;
	}
	conn_start(c);
}

static void conn_send(struct db_conn *c, struct db_query *q)
{
	int rc;

	c->q = q;
	c->state = CONN_BUSY;
	c->error[0] = '\0';
	c->sqlstate[0] = '\0';
	if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params,
	                       q->lengths, q->formats, 0)) {
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
	rc = PQflush(c->pg);
	if (rc < 0) {
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
	c->flushing = rc == 1;
	conn_arm(c, EV_READ | (c->flushing ? EV_WRITE : 0));
}

static void conn_ready(struct db_conn *c)
{
	c->backoff_ms = DB_BACKOFF_MIN_MS;
	c->pool->read_only_said = false;
	if (c->index == 0 && c->pool->listen_channel) {
		struct db_query *q;
		char *ident = PQescapeIdentifier(c->pg, c->pool->listen_channel,
		                                 strlen(c->pool->listen_channel));

		if (ident == NULL) {
			conn_broken(c, PQerrorMessage(c->pg));
			return;
		}
		q = xcalloc(1, sizeof(*q));
		xasprintf(&q->sql, "LISTEN %s", ident);
		PQfreemem(ident);
		q->internal = true;
		/*
		 * LISTEN goes out before the pool is announced up: the state
		 * callback may send queries, and they must not land on this
		 * connection while it is busy.
		 */
		c->state = CONN_IDLE;
		conn_send(c, q);
		if (c->state == CONN_BUSY) {
			c->counted = true;
			pool_set_up(c->pool, +1);
		}
		return;
	}
	c->state = CONN_IDLE;
	conn_arm(c, EV_READ);
	c->counted = true;
	pool_set_up(c->pool, +1);
	pool_dispatch(c->pool);
}

static void conn_poll_connect(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		conn_arm(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		conn_arm(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		evtimer_del(&c->timer);
		if (PQsetnonblocking(c->pg, 1) != 0) {
			conn_broken(c, PQerrorMessage(c->pg));
			break;
		}
		/* PostgreSQL 14+ reports these at connect (not through every pooler). */
		if (db_conn_read_only(c->pg, NULL)) {
			conn_read_only(
			    c, "in_hot_standby or default_transaction_read_only at connect");
			break;
		}
		conn_ready(c);
		break;
	default:
		conn_broken(c, PQerrorMessage(c->pg));
		break;
	}
}

/* libpq's notices and warnings (RAISE NOTICE, a deprecation, ...) into our log. */
static void conn_notice(void *arg, const PGresult *res)
{
	const struct db_conn *c = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	int prio = LOG_INFO;

	if (sev == NULL)
		sev = "NOTICE";
	if (strcmp(sev, "WARNING") == 0)
		prio = LOG_WARNING;
	else if (strcmp(sev, "DEBUG") == 0 || strcmp(sev, "LOG") == 0)
		prio = LOG_DEBUG;
	if (prio == LOG_DEBUG && !log_debug_enabled())
		return;
	log_msg(prio, "database %s pool=%s conn=%d sqlstate=%s: %.*s", sev, c->pool->name, c->index,
	        state ? state : "-", text ? (int)strcspn(text, "\n") : 1, text ? text : "-");
}

static void conn_start(struct db_conn *c)
{
	struct timeval tv = {c->pool->connect_timeout_ms / 1000,
	                     (c->pool->connect_timeout_ms % 1000) * 1000};

	c->rotation = c->pool->rotation;
	if (c->pool->params_ok)
		c->pg = PQconnectStartParams((const char *const *)c->pool->params.keys,
		                             (const char *const *)c->pool->params.values, 0);
	else
		c->pg = PQconnectStart(c->pool->conninfo);
	if (c->pg == NULL) {
		c->state = CONN_DOWN;
		conn_schedule_retry(c);
		return;
	}
	PQsetNoticeReceiver(c->pg, conn_notice, c);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		c->state = CONN_CONNECTING;
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
	c->state = CONN_CONNECTING;
	evtimer_add(&c->timer, &tv);
	conn_poll_connect(c);
}

static void conn_drain_notifies(struct db_conn *c)
{
	PGnotify *n;

	while ((n = PQnotifies(c->pg)) != NULL) {
		if (c->pool->notify_cb)
			c->pool->notify_cb(n->relname, n->extra, c->pool->notify_arg);
		PQfreemem(n);
	}
}

static void conn_finish_query(struct db_conn *c)
{
	struct db_query *q = c->q;
	PGresult *res = c->result;
	char error[256], sqlstate[6];

	snprintf(error, sizeof(error), "%s", c->error);
	snprintf(sqlstate, sizeof(sqlstate), "%s", c->sqlstate);
	c->q = NULL;
	c->result = NULL;
	if (error[0] && db_conn_read_only(c->pg, sqlstate)) {
		/*
		 * Every write on this session would fail alike: drop it before
		 * the callback runs, so that nothing else is sent on it; the
		 * callback still gets the statement's own error and SQLSTATE.
		 */
		conn_read_only(c, sqlstate[0] ? sqlstate : "in hot standby");
	} else {
		c->state = CONN_IDLE;
		conn_arm(c, EV_READ);
	}
	if (q->internal) {
		if (error[0])
			log_warnx("database setup failed pool=%s: %s", c->pool->name, error);
	} else if (q->cb) {
		q->cb(error[0] ? NULL : res, error[0] ? error : NULL, sqlstate, q->arg);
	}
	if (res)
		PQclear(res);
	query_free(q);
	pool_dispatch(c->pool);
}

static void conn_read_results(struct db_conn *c)
{
	while (c->q && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		ExecStatusType st;

		if (res == NULL) {
			conn_finish_query(c);
			return;
		}
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			if (c->result)
				PQclear(c->result);
			c->result = res;
			continue;
		}
		if (c->error[0] == '\0') {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			snprintf(c->error, sizeof(c->error), "%s", PQresultErrorMessage(res));
			c->error[strcspn(c->error, "\n")] = '\0';
			snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
		}
		PQclear(res);
	}
	if (c->q)
		conn_arm(c, EV_READ);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	(void)fd;
	c->ev_added = false;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_poll_connect(c);
		return;
	case CONN_DOWN:
		return;
	case CONN_IDLE:
	case CONN_BUSY:
		break;
	}
	if ((what & EV_WRITE) && c->flushing) {
		int rc = PQflush(c->pg);

		if (rc < 0) {
			conn_broken(c, PQerrorMessage(c->pg));
			return;
		}
		c->flushing = rc == 1;
	}
	if (what & EV_READ) {
		if (!PQconsumeInput(c->pg)) {
			conn_broken(c, PQerrorMessage(c->pg));
			return;
		}
		conn_drain_notifies(c);
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			conn_broken(c, "connection closed");
			return;
		}
	}
	if (c->state == CONN_BUSY && !c->flushing) {
		conn_read_results(c);
		return;
	}
	conn_arm(c, EV_READ | (c->flushing ? EV_WRITE : 0));
}

static void pool_dispatch(struct db_pool *pool)
{
	for (int i = 0; i < pool->size && !TAILQ_EMPTY(&pool->queue); i++) {
		struct db_conn *c = &pool->conns[i];
		struct db_query *q;

		if (c->state != CONN_IDLE || c->session)
			continue;
		q = TAILQ_FIRST(&pool->queue);
		TAILQ_REMOVE(&pool->queue, q, link);
		if (q->session_open) {
			struct db_session *s = q->session_open;

			query_free(q);
			s->conn = c;
			c->session = s;
			s->open_cb(s, s->open_arg);
			continue;
		}
		conn_send(c, q);
	}
}

static void pool_handover(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pool_dispatch(arg);
}

struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, int size,
                            const char *name)
{
	struct db_pool *pool = xcalloc(1, sizeof(*pool));

	pool->base = base;
	pool->size = size;
	TAILQ_INIT(&pool->queue);
	event_assign(&pool->handover, base, -1, 0, pool_handover, pool);
	pool->conninfo = xstrdup(conninfo);
	pool->name = xstrdup(name);
	pool->connect_timeout_ms = DB_CONNECT_TIMEOUT_MS;
	{
		char err[256];
		const char *ct;

		pool->params_ok =
		    db_params_build(conninfo, name, &pool->params, err, sizeof(err)) == 0;
		if (!pool->params_ok)
			log_warnx("database pool=%s: %s", name, err);
		else if ((ct = db_params_get(&pool->params, "connect_timeout")) != NULL &&
		         atoi(ct) > 0)
			pool->connect_timeout_ms = (atoi(ct) + 1) * 1000;
	}
	pool->conns = xcalloc((size_t)size, sizeof(*pool->conns));
	for (int i = 0; i < size; i++) {
		struct db_conn *c = &pool->conns[i];

		c->pool = pool;
		c->index = i;
		c->backoff_ms = DB_BACKOFF_MIN_MS;
		evtimer_assign(&c->timer, base, conn_retry, c);
		conn_start(c);
	}
	return pool;
}

void db_pool_free(struct db_pool *pool)
{
	struct db_query *q;

	if (pool == NULL)
		return;
	event_del(&pool->handover);
	for (int i = 0; pool->conns && i < pool->size; i++) {
		struct db_conn *c = &pool->conns[i];

		if (c->pool == NULL)
			continue;
		if (c->ev_added)
			event_del(&c->ev);
		evtimer_del(&c->timer);
		if (c->result)
			PQclear(c->result);
		query_free(c->q);
		if (c->pg)
			PQfinish(c->pg);
	}
	while ((q = TAILQ_FIRST(&pool->queue)) != NULL) {
		TAILQ_REMOVE(&pool->queue, q, link);
		free(q->session_open); /* its owner is gone: no callback */
		query_free(q);
	}
	free(pool->conns);
	db_params_free(&pool->params);
	free(pool->conninfo);
	free(pool->name);
	free(pool->listen_channel);
	free(pool);
}

void db_pool_listen(struct db_pool *pool, const char *channel, db_notify_cb cb, void *arg)
{
	free(pool->listen_channel);
	pool->listen_channel = xstrdup(channel);
	pool->notify_cb = cb;
	pool->notify_arg = arg;
}

void db_pool_on_state(struct db_pool *pool, db_state_cb cb, void *arg)
{
	pool->state_cb = cb;
	pool->state_arg = arg;
}

int db_pool_up(const struct db_pool *pool)
{
	return pool->up;
}

bool db_pool_read_only(const struct db_pool *pool)
{
	return pool->up == 0 && pool->read_only_said;
}

int db_pool_idle(const struct db_pool *pool)
{
	int n = 0;

	for (int i = 0; i < pool->size; i++)
		n += pool->conns[i].state == CONN_IDLE && pool->conns[i].session == NULL;
	return n;
}

/*
 * A query with copies of sql and its parameters: binlen[i] >= 0 marks
 * params[i] as binary, of that many bytes (binlen may be NULL: all text).
 */
static struct db_query *query_new(const char *sql, int nparams, const char *const *params,
                                  const int *binlen, db_result_cb cb, void *arg)
{
	size_t slots = (size_t)(nparams ? nparams : 1);
	struct db_query *q = xcalloc(1, sizeof(*q));

	q->sql = xstrdup(sql);
	q->nparams = nparams;
	q->params = xcalloc(slots, sizeof(char *));
	q->cb = cb;
	q->arg = arg;
	if (binlen != NULL) {
		q->lengths = xcalloc(slots, sizeof(int));
		q->formats = xcalloc(slots, sizeof(int));
	}
	for (int i = 0; i < nparams; i++) {
		if (params[i] == NULL)
			continue;
		if (binlen != NULL && binlen[i] >= 0) {
			q->lengths[i] = binlen[i];
			q->formats[i] = 1;
			q->params[i] = xmalloc((size_t)binlen[i]);
			memcpy(q->params[i], params[i], (size_t)binlen[i]);
		} else {
			q->params[i] = xstrdup(params[i]);
		}
	}
	return q;
}

int db_query_bin(struct db_pool *pool, const char *sql, int nparams, const char *const *params,
                 const int *binlen, db_result_cb cb, void *arg)
{
	struct db_query *q;

	if (pool->up == 0)
		return -1;
	q = query_new(sql, nparams, params, binlen, cb, arg);
	TAILQ_INSERT_TAIL(&pool->queue, q, link);
	pool_dispatch(pool);
	return 0;
}

int db_query(struct db_pool *pool, const char *sql, int nparams, const char *const *params,
             db_result_cb cb, void *arg)
{
	return db_query_bin(pool, sql, nparams, params, NULL, cb, arg);
}

int db_session_open(struct db_pool *pool, db_session_cb cb, void *arg)
{
	struct db_query *q;
	struct db_session *s;

	if (pool->up == 0)
		return -1;
	q = xcalloc(1, sizeof(*q));
	s = xcalloc(1, sizeof(*s));
	q->sql = xstrdup("");
	s->pool = pool;
	s->open_cb = cb;
	s->open_arg = arg;
	q->session_open = s;
	TAILQ_INSERT_TAIL(&pool->queue, q, link);
	/* Not pool_dispatch(): cb must not run before this returns. */
	event_active(&pool->handover, EV_TIMEOUT, 1);
	return 0;
}

void db_session_query(struct db_session *s, const char *sql, int nparams, const char *const *params,
                      db_result_cb cb, void *arg)
{
	struct db_conn *c = s->conn;

	if (c == NULL || c->state != CONN_IDLE) {
		cb(NULL, c ? "session busy" : "database connection lost", "", arg);
		return;
	}
	conn_send(c, query_new(sql, nparams, params, NULL, cb, arg));
}

void db_session_close(struct db_session *s)
{
	struct db_conn *c;

	if (s == NULL)
		return;
	c = s->conn;
	free(s);
	if (c == NULL)
		return;
	c->session = NULL;
	if (c->state == CONN_IDLE && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		struct db_query *q = xcalloc(1, sizeof(*q));

		q->sql = xstrdup("ROLLBACK");
		q->internal = true;
		conn_send(c, q);
		return;
	}
	pool_dispatch(c->pool);
}

bool db_sqlstate_retryable(const char *sqlstate)
{
	/* serialization_failure, deadlock_detected */
	return sqlstate && (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0);
}
