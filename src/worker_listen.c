/*
 * worker_listen.c: the job wake-up, LISTEN or fast polling (see
 * worker_listen.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "worker_listen.h"
#include "xmalloc.h"

#define WL_CHANNEL "bayarhook_jobs"
#define WL_PROBE_PREFIX "bayarhook-probe:"

enum wl_state {
	WL_DOWN,      /* the listen connection is not up */
	WL_PROBING,   /* LISTEN sent; the probe's NOTIFY is on its way back */
	WL_LISTENING, /* the probe came back: notifications wake the worker */
	WL_POLLING,   /* it did not: a cheap query every WORKER_LISTEN_POLL_MS */
};

struct worker_listen {
	struct event_base *base;
	struct db_pool *pool;        /* one connection, on listen_conninfo */
	struct db_pool *notify_pool; /* not ours */
	worker_listen_cb wake;
	void *arg;
	enum wl_state state;
	bool polling_said; /* the polling warning was logged (once per switch) */
	bool stopped;
	bool poll_out;    /* a poll query is in flight */
	bool probing;     /* a probe runs: barrier, NOTIFY, then its return or timeout */
	bool probe_again; /* asked for while one ran */
	char token[40];   /* of the probe in flight, "" when none is awaited */
	unsigned probes;
	struct event *ev_probe;   /* WL_PROBING: gives up on the probe */
	struct event *ev_poll;    /* WL_POLLING: persistent */
	struct event *ev_reprobe; /* every WORKER_LISTEN_REPROBE_SEC */
	struct event *ev_up;      /* the pool came up: probe from the loop */
	char where[160];          /* "listen_conninfo" or "conninfo", for the log */
};

static void wl_poll_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_listen *wl = arg;

	(void)sqlstate;
	wl->poll_out = false;
	if (res == NULL) {
		log_debug("job wake-up: polling failed: %s", err);
		return;
	}
	if (PQntuples(res) > 0 && !wl->stopped)
		wl->wake(wl->arg);
}

static void wl_poll(evutil_socket_t fd, short what, void *arg)
{
	struct worker_listen *wl = arg;

	(void)fd;
	(void)what;
	if (wl->state != WL_POLLING || wl->poll_out || wl->stopped)
		return;
	/* jobs_due_idx answers this without touching the table's heap much. */
	if (db_query(wl->pool,
	             "SELECT 1 FROM bayarhook.jobs WHERE state = 'pending'"
	             " AND next_attempt_at <= now() LIMIT 1",
	             0, NULL, wl_poll_done, wl) == 0)
		wl->poll_out = true;
}

static void wl_set_polling(struct worker_listen *wl)
{
	struct timeval every = {0, WORKER_LISTEN_POLL_MS * 1000};

	wl->state = WL_POLLING;
	if (!wl->polling_said) {
		wl->polling_said = true;
		log_warnx("job wake-up: LISTEN on %s does not deliver notifications (a "
		          "transaction-pooling PgBouncer?): polling for due jobs every %d ms "
		          "instead; point [database] listen_conninfo at PostgreSQL itself",
		          wl->where, WORKER_LISTEN_POLL_MS);
	}
	if (!evtimer_pending(wl->ev_poll, NULL))
		event_add(wl->ev_poll, &every);
}

static void wl_set_listening(struct worker_listen *wl)
{
	if (wl->state != WL_LISTENING)
		log_info("job wake-up: LISTEN %s on %s", WL_CHANNEL, wl->where);
	wl->state = WL_LISTENING;
	wl->polling_said = false;
	event_del(wl->ev_poll);
	/* Anything that became due while we did not listen. */
	wl->wake(wl->arg);
}

static void wl_probe(struct worker_listen *wl);

static void wl_probe_end(struct worker_listen *wl)
{
	wl->token[0] = '\0';
	evtimer_del(wl->ev_probe);
	wl->probing = false;
	if (wl->probe_again) {
		wl->probe_again = false;
		wl_probe(wl);
	}
}

static void wl_probe_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker_listen *wl = arg;

	(void)fd;
	(void)what;
	if (!wl->stopped)
		wl_set_polling(wl);
	wl_probe_end(wl);
}

static void wl_notified(const char *channel, const char *payload, void *arg)
{
	struct worker_listen *wl = arg;

	(void)channel;
	if (strncmp(payload, WL_PROBE_PREFIX, strlen(WL_PROBE_PREFIX)) == 0) {
		/* Ours comes back; other processes' probes are not for us. */
		if (wl->token[0] && strcmp(payload, wl->token) == 0) {
			if (!wl->stopped)
				wl_set_listening(wl);
			wl_probe_end(wl);
		}
		return;
	}
	if (!wl->stopped)
		wl->wake(wl->arg);
}

/* The NOTIFY committed: it is on its way, or lost on the way. */
static void wl_notify_sent(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_listen *wl = arg;
	struct timeval wait = {WORKER_LISTEN_PROBE_MS / 1000,
	                       (WORKER_LISTEN_PROBE_MS % 1000) * 1000};

	(void)sqlstate;
	if (res == NULL) {
		/* No verdict: the next probe tries again. */
		log_debug("job wake-up: probe NOTIFY failed: %s", err);
		wl_probe_end(wl);
		return;
	}
	if (wl->token[0]) /* not already back */
		evtimer_add(wl->ev_probe, &wait);
}

/* The listen connection answered: its LISTEN, queued before, is in place. */
static void wl_barrier(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_listen *wl = arg;
	const char *params[1] = {wl->token};

	(void)sqlstate;
	if (res == NULL || wl->stopped) {
		if (res == NULL)
			log_debug("job wake-up: probe failed: %s", err);
		wl_probe_end(wl);
		return;
	}
	snprintf(wl->token, sizeof(wl->token), WL_PROBE_PREFIX "%ld.%u", (long)getpid(),
	         ++wl->probes);
	if (db_query(wl->notify_pool, "SELECT pg_notify('" WL_CHANNEL "', $1)", 1, params,
	             wl_notify_sent, wl) < 0)
		wl_probe_end(wl); /* the queue is down: no verdict */
}

static void wl_probe(struct worker_listen *wl)
{
	if (wl->stopped)
		return;
	if (wl->probing) {
		wl->probe_again = true;
		return;
	}
	if (wl->state == WL_DOWN)
		wl->state = WL_PROBING;
	if (db_query(wl->pool, "SELECT 1", 0, NULL, wl_barrier, wl) == 0)
		wl->probing = true;
}

static void wl_reprobe(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	wl_probe(arg);
}

static void wl_up(evutil_socket_t fd, short what, void *arg)
{
	struct worker_listen *wl = arg;

	(void)fd;
	(void)what;
	wl_probe(wl);
}

static void wl_pool_state(bool up, void *arg)
{
	struct worker_listen *wl = arg;
	struct timeval now = {0, 0};

	if (up) {
		/* From the loop: the pool is still setting the connection up. */
		evtimer_add(wl->ev_up, &now);
		return;
	}
	/* A new connection has a new session: it is tested again when up. */
	if (wl->state == WL_LISTENING)
		wl->state = WL_DOWN;
}

struct worker_listen *worker_listen_new(struct event_base *base, const struct config *cfg,
                                        struct db_pool *notify_pool, worker_listen_cb wake,
                                        void *arg)
{
	struct worker_listen *wl = xcalloc(1, sizeof(*wl));
	struct timeval reprobe = {WORKER_LISTEN_REPROBE_SEC, 0};
	const char *conninfo = cfg->listen_conninfo ? cfg->listen_conninfo : cfg->conninfo;

	wl->base = base;
	wl->notify_pool = notify_pool;
	wl->wake = wake;
	wl->arg = arg;
	snprintf(wl->where, sizeof(wl->where), "%s",
	         cfg->listen_conninfo ? "[database] listen_conninfo" : "[database] conninfo");
	wl->ev_probe = evtimer_new(base, wl_probe_timeout, wl);
	wl->ev_poll = event_new(base, -1, EV_PERSIST, wl_poll, wl);
	wl->ev_reprobe = event_new(base, -1, EV_PERSIST, wl_reprobe, wl);
	wl->ev_up = evtimer_new(base, wl_up, wl);
	wl->pool = db_pool_new(base, conninfo, 1, "listen");
	if (wl->ev_probe == NULL || wl->ev_poll == NULL || wl->ev_reprobe == NULL ||
	    wl->ev_up == NULL || wl->pool == NULL) {
		worker_listen_free(wl);
		return NULL;
	}
	db_pool_listen(wl->pool, WL_CHANNEL, wl_notified, wl);
	db_pool_on_state(wl->pool, wl_pool_state, wl);
	event_add(wl->ev_reprobe, &reprobe);
	return wl;
}

void worker_listen_stop(struct worker_listen *wl)
{
	if (wl == NULL)
		return;
	wl->stopped = true;
	event_del(wl->ev_poll);
	event_del(wl->ev_reprobe);
	evtimer_del(wl->ev_probe);
	evtimer_del(wl->ev_up);
}

void worker_listen_free(struct worker_listen *wl)
{
	if (wl == NULL)
		return;
	if (wl->ev_probe)
		event_free(wl->ev_probe);
	if (wl->ev_poll)
		event_free(wl->ev_poll);
	if (wl->ev_reprobe)
		event_free(wl->ev_reprobe);
	if (wl->ev_up)
		event_free(wl->ev_up);
	db_pool_free(wl->pool);
	free(wl);
}
