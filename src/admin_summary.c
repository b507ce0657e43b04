/*
 * admin_summary.c: the status page's database side. It has a pool of one
 * connection of its own, never the ingest or the worker pools, so a slow
 * page cannot hold up a callback: each summary or retry takes that
 * connection as a session, bounds it with statement_timeout, and runs one
 * statement (bayarhook.status_summary() or bayarhook.job_retry(), both in
 * sql/functions/). A C timer bounds the whole wait as well, for a database
 * that does not answer at all; its late answer is then only dropped.
 *
 * However many pages are open, at most one summary query runs at a time,
 * and one younger than ADMIN_CACHE_MS is shown again instead of asking
 * again: the page's cost to the database is bounded by time, not viewers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "admin_int.h"
#include "db.h"
#include "jsonw.h"
#include "log.h"
#include "xmalloc.h"

enum fetch_kind {
	FETCH_SUMMARY, /* status_summary(): answers db->waiters */
	FETCH_RETRY,   /* job_retry(): answers retry */
};

/* A summary or a retry: answered once (done), freed once the database let go too. */
struct admin_fetch {
	TAILQ_ENTRY(admin_fetch) link;
	struct admin_db *db;
	enum fetch_kind kind;
	admin_retry_cb retry; /* FETCH_RETRY; a summary answers db->waiters */
	void *arg;
	char job[24];
	struct event *timer;
	struct db_session *s;
	bool done;                /* answered */
	bool waiting;             /* the pool holds a callback of ours (session open or query) */
	struct timespec deadline; /* answered "down" by then at the latest */
	bool polling;             /* the timer looks for the first connection again */
};

/* A page or /api/summary waiting for a summary. */
struct admin_waiter {
	TAILQ_ENTRY(admin_waiter) link;
	admin_summary_cb cb;
	void *arg;
};

struct admin_db {
	struct event_base *base;
	struct db_pool *pool;
	TAILQ_HEAD(, admin_fetch) fetches;
	TAILQ_HEAD(, admin_waiter) waiters;
	unsigned nwaiters;
	struct admin_fetch *summary; /* the summary query under way, or NULL */
	struct event *from_cache;    /* answers the waiters from the cache, from the loop */
	char *cache;                 /* the last summary's JSON text, or NULL */
	struct timespec cache_at;
	bool ever_up; /* its connection was made once: "not up" now means down */
};

/* Set on the session's connection before its one statement (a new connection has none). */
static const char *const admin_sql_timeout = "SELECT set_config('statement_timeout', $1, false)";

/* Every waiter gets s; the list is empty afterwards. */
static void waiters_answer(struct admin_db *db, const struct admin_summary *s)
{
	struct admin_waiter *w;

	while ((w = TAILQ_FIRST(&db->waiters)) != NULL) {
		TAILQ_REMOVE(&db->waiters, w, link);
		db->nwaiters--;
		w->cb(s, w->arg);
		free(w);
	}
}

/* The waiters get the cached summary (its text parsed once for all). */
static void answer_from_cache(evutil_socket_t fd, short what, void *arg)
{
	struct admin_db *db = arg;
	struct admin_summary s = {.db_up = true, .why = NULL, .data = NULL};
	cJSON *data;

	(void)fd;
	(void)what;
	if (db->cache == NULL || (data = cJSON_Parse(db->cache)) == NULL) {
		s.db_up = false;
		s.why = "the summary could not be read";
		waiters_answer(db, &s);
		return;
	}
	s.data = data;
	waiters_answer(db, &s);
	cJSON_Delete(data);
}

static bool cache_fresh(const struct admin_db *db)
{
	struct timespec now;

	if (db->cache == NULL)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - db->cache_at.tv_sec) * 1000 +
	           (now.tv_nsec - db->cache_at.tv_nsec) / 1000000 <
	       ADMIN_CACHE_MS;
}

static void cache_drop(struct admin_db *db)
{
	free(db->cache);
	db->cache = NULL;
}

static void admin_db_state(bool up, void *arg)
{
	struct admin_db *db = arg;

	if (up)
		db->ever_up = true;
}

struct admin_db *admin_db_new(struct event_base *base, const char *conninfo)
{
	struct admin_db *db = xcalloc(1, sizeof(*db));

	db->base = base;
	db->pool = db_pool_new(base, conninfo, 1, "status");
	db_pool_on_state(db->pool, admin_db_state, db);
	TAILQ_INIT(&db->fetches);
	TAILQ_INIT(&db->waiters);
	db->from_cache = event_new(base, -1, 0, answer_from_cache, db);
	if (db->from_cache == NULL)
		abort(); /* out of memory: as xmalloc */
	return db;
}

static void fetch_release(struct admin_fetch *f)
{
	if (!f->done || f->waiting)
		return;
	if (f->s)
		db_session_close(f->s);
	if (f->timer)
		event_free(f->timer);
	TAILQ_REMOVE(&f->db->fetches, f, link);
	free(f);
}

/* The answer when the database is not there (or too slow): down, and why. */
static void fetch_down(struct admin_fetch *f, const char *why)
{
	if (f->done)
		return;
	f->done = true;
	if (f->kind == FETCH_SUMMARY) {
		struct admin_summary s = {.db_up = false, .why = why, .data = NULL};

		f->db->summary = NULL;
		cache_drop(f->db);
		waiters_answer(f->db, &s);
	} else {
		f->retry(ADMIN_RETRY_DB_DOWN, why, f->arg);
	}
}

/* Milliseconds from now to t (negative: past). */
static long ms_until(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
}

static void fetch_opened(struct db_session *s, void *arg);

/*
 * Takes the connection for f, or arms f->timer: at once (down) when there
 * is none, in ADMIN_CONNECT_POLL_MS while the first one is still being
 * made at start, and at the deadline once the pool has it.
 */
static void fetch_open(struct admin_fetch *f)
{
	long left = ms_until(&f->deadline);
	struct timeval tv = {0, 0};

	f->polling = false;
	if (left > 0 && db_session_open(f->db->pool, fetch_opened, f) == 0) {
		f->waiting = true;
	} else if (left > 0 && !f->db->ever_up) {
		f->polling = true;
		left = left < ADMIN_CONNECT_POLL_MS ? left : ADMIN_CONNECT_POLL_MS;
	} else {
		left = 0; /* down: answered from the loop at once, never from here */
	}
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(f->timer, &tv);
}

static void fetch_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct admin_fetch *f = arg;

	(void)fd;
	(void)what;
	if (f->polling && !f->done) {
		fetch_open(f); /* the first connection may be made by now */
		return;
	}
	if (f->s == NULL && !f->waiting)
		fetch_down(f, "the database is not reachable");
	else
		fetch_down(f, "the database did not answer in time");
	fetch_release(f);
}

static void summary_done(struct admin_fetch *f, PGresult *res, const char *err)
{
	struct admin_db *db = f->db;

	if (res == NULL || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		log_warnx("status page: summary query failed: %s", err ? err : "no summary");
		fetch_down(f, err ? err : "the summary could not be read");
		return;
	}
	f->done = true;
	db->summary = NULL;
	free(db->cache);
	db->cache = xstrdup(PQgetvalue(res, 0, 0));
	clock_gettime(CLOCK_MONOTONIC, &db->cache_at);
	answer_from_cache(-1, 0, db);
}

static void retry_done(struct admin_fetch *f, PGresult *res, const char *err)
{
	if (res == NULL) {
		log_warnx("status page: retry of job %s failed: %s", f->job, err);
		fetch_down(f, err);
		return;
	}
	f->done = true;
	if (PQntuples(res) == 0) {
		f->retry(ADMIN_RETRY_NO_JOB, NULL, f->arg);
	} else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		cache_drop(f->db); /* the page it returns to shows the job queued */
		f->retry(ADMIN_RETRY_QUEUED, PQgetvalue(res, 0, 0), f->arg);
	} else {
		f->retry(ADMIN_RETRY_NOT_DEAD, PQgetvalue(res, 0, 0), f->arg);
	}
}

static void fetch_result(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct admin_fetch *f = arg;

	(void)sqlstate;
	f->waiting = false;
	if (!f->done) {
		if (f->kind == FETCH_SUMMARY)
			summary_done(f, res, err);
		else
			retry_done(f, res, err);
	}
	fetch_release(f);
}

static void fetch_timeout_set(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct admin_fetch *f = arg;
	char list[16];
	const char *p[1];

	(void)sqlstate;
	f->waiting = false;
	if (res == NULL || f->done) {
		fetch_down(f, err ? err : "the database did not answer in time");
		fetch_release(f);
		return;
	}
	f->waiting = true;
	if (f->kind == FETCH_SUMMARY) {
		snprintf(list, sizeof(list), "%d", ADMIN_LIST_MAX);
		p[0] = list;
		db_session_query(f->s, "SELECT bayarhook.status_summary(p_list => $1::integer)", 1,
		                 p, fetch_result, f);
	} else {
		/* The same function as `bayarhook retry JOB_ID` (sql/functions/jobs.sql). */
		p[0] = f->job;
		db_session_query(f->s, "SELECT was, queued FROM bayarhook.job_retry(p_job => $1)",
		                 1, p, fetch_result, f);
	}
}

static void fetch_opened(struct db_session *s, void *arg)
{
	struct admin_fetch *f = arg;
	char ms[16];
	const char *p[1] = {ms};

	f->waiting = false;
	f->s = s;
	if (s == NULL || f->done) {
		fetch_down(f, "the database is not reachable");
		fetch_release(f);
		return;
	}
	snprintf(ms, sizeof(ms), "%d", ADMIN_STATEMENT_TIMEOUT_MS);
	f->waiting = true;
	db_session_query(s, admin_sql_timeout, 1, p, fetch_timeout_set, f);
}

static struct admin_fetch *fetch_start(struct admin_db *db, enum fetch_kind kind, void *arg)
{
	struct admin_fetch *f = xcalloc(1, sizeof(*f));

	f->db = db;
	f->kind = kind;
	f->arg = arg;
	TAILQ_INSERT_TAIL(&db->fetches, f, link);
	clock_gettime(CLOCK_MONOTONIC, &f->deadline);
	f->deadline.tv_sec += ADMIN_FETCH_TIMEOUT_MS / 1000;
	f->deadline.tv_nsec += (ADMIN_FETCH_TIMEOUT_MS % 1000) * 1000000L;
	if (f->deadline.tv_nsec >= 1000000000L) {
		f->deadline.tv_sec++;
		f->deadline.tv_nsec -= 1000000000L;
	}
	f->timer = evtimer_new(db->base, fetch_timeout, f);
	if (f->timer == NULL)
		abort(); /* out of memory: as xmalloc */
	fetch_open(f);
	return f;
}

int admin_summary_get(struct admin_db *db, admin_summary_cb cb, void *arg)
{
	struct admin_waiter *w;

	if (db->nwaiters >= ADMIN_FETCH_MAX)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&db->waiters, w, link);
	db->nwaiters++;
	if (db->summary != NULL)
		return 0; /* answered with the one under way */
	if (cache_fresh(db))
		event_active(db->from_cache, EV_TIMEOUT, 1);
	else
		db->summary = fetch_start(db, FETCH_SUMMARY, NULL);
	return 0;
}

void admin_retry(struct admin_db *db, const char *job_id, admin_retry_cb cb, void *arg)
{
	struct admin_fetch *f = fetch_start(db, FETCH_RETRY, arg);

	f->retry = cb;
	snprintf(f->job, sizeof(f->job), "%s", job_id);
}

void admin_db_free(struct admin_db *db)
{
	struct admin_fetch *f;

	if (db == NULL)
		return;
	while ((f = TAILQ_FIRST(&db->fetches)) != NULL) {
		fetch_down(f, "stopping");
		f->waiting = false; /* the pool goes below: it calls nothing back */
		fetch_release(f);
	}
	if (!TAILQ_EMPTY(&db->waiters)) {
		struct admin_summary s = {.db_up = false, .why = "stopping", .data = NULL};

		waiters_answer(db, &s);
	}
	event_free(db->from_cache);
	db_pool_free(db->pool);
	free(db->cache);
	free(db);
}

char *admin_summary_json(const struct admin_summary *s)
{
	struct jsonw w;
	const cJSON *it;

	jsonw_begin(&w);
	jsonw_cstr(&w, "database", s->db_up ? "up" : "down");
	if (!s->db_up || s->data == NULL) {
		jsonw_cstr(&w, "error", s->why ? s->why : "unknown");
		return jsonw_finish(&w);
	}
	cJSON_ArrayForEach(it, s->data)
	{
		char *raw = cJSON_PrintUnformatted(it);

		if (raw == NULL)
			abort(); /* out of memory: as xmalloc */
		jsonw_raw(&w, it->string, raw, strlen(raw));
		free(raw);
	}
	return jsonw_finish(&w);
}
