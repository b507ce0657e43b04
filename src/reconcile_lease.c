/*
 * reconcile_lease.c: the reconciler's lease row (see reconcile_lease.h).
 *
 * Taking is one statement: the row is updated only when it is free,
 * expired or already ours, and the same statement reads who holds it
 * otherwise. Two takers at once are ordered by the row lock: the second
 * sees the first's fresh expiry and gets nothing. Renewal extends the
 * expiry only while we are still the owner; a renewal that finds another
 * owner, or that could not be made before the lease would have expired,
 * reports the lease lost so that the pass stops asking the gateway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reconcile_lease.h"
#include "xmalloc.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const char lease_ttl[] = STR(RECONCILE_LEASE_TTL);

/*
 * Free, expired or ours: take it. The outer SELECT reads the row as it was
 * before the upsert: when nothing was taken, that is the holder.
 */
static const char SQL_TAKE[] =
    "WITH t AS (INSERT INTO bayarhook.reconcile_lease AS l (name, owner, taken_at, expires_at)"
    "  VALUES ('reconcile', $1, now(), now() + make_interval(secs => $2::integer))"
    "  ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    "   taken_at = excluded.taken_at, expires_at = excluded.expires_at"
    "  WHERE l.owner IS NULL OR l.expires_at < now() OR l.owner = excluded.owner"
    "  RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM t), coalesce(h.owner, '?'),"
    "  CASE WHEN h.expires_at > now()"
    "   THEN ceil(extract(epoch FROM h.expires_at - now()))::bigint ELSE 0 END"
    " FROM (SELECT 1) one"
    " LEFT JOIN bayarhook.reconcile_lease h ON h.name = 'reconcile'";

static const char SQL_RENEW[] =
    "UPDATE bayarhook.reconcile_lease SET expires_at = now() + make_interval(secs => $2::integer)"
    " WHERE name = 'reconcile' AND owner = $1 RETURNING 1";

enum lease_state {
	LEASE_IDLE,      /* not held, nothing asked */
	LEASE_TAKING,    /* the take statement is in flight */
	LEASE_HELD,      /* ours; the renewal timer runs */
	LEASE_RELEASING, /* the release statement is in flight */
};

struct reconcile_lease {
	struct event_base *base;
	struct db_pool *pool;
	char owner[200];
	enum lease_state state;
	struct event *ev_renew;
	bool renewing;           /* a renewal statement is in flight */
	struct timespec renewed; /* monotonic time of the last renewal the database confirmed */
	reconcile_lease_lost_cb lost;
	void *lost_arg;
	reconcile_lease_cb taken;
	void *taken_arg;
	void (*released)(void *arg);
	void *released_arg;
};

static double lease_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void lease_arm(struct reconcile_lease *l)
{
	struct timeval tv = {RECONCILE_LEASE_RENEW, 0};

	evtimer_add(l->ev_renew, &tv);
}

static void lease_lose(struct reconcile_lease *l, const char *why)
{
	l->state = LEASE_IDLE;
	evtimer_del(l->ev_renew);
	if (l->lost)
		l->lost(why, l->lost_arg);
}

static void lease_renewed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_lease *l = arg;

	(void)sqlstate;
	l->renewing = false;
	if (l->state != LEASE_HELD)
		return;
	if (res != NULL && PQntuples(res) == 1) {
		clock_gettime(CLOCK_MONOTONIC, &l->renewed);
		lease_arm(l);
		return;
	}
	if (res != NULL) {
		lease_lose(l, "the reconcile lease was taken over (this process stalled longer "
		              "than " STR(RECONCILE_LEASE_TTL) " s?)");
		return;
	}
	if (lease_since(&l->renewed) >= RECONCILE_LEASE_TTL - RECONCILE_LEASE_RENEW / 2) {
		lease_lose(l, "the reconcile lease could not be renewed before it expired");
		return;
	}
	log_warnx("reconcile: cannot renew the lease, trying again: %s", err);
	lease_arm(l);
}

static void lease_renew(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile_lease *l = arg;
	const char *params[2] = {l->owner, lease_ttl};

	(void)fd;
	(void)what;
	if (l->state != LEASE_HELD || l->renewing)
		return;
	if (db_query(l->pool, SQL_RENEW, 2, params, lease_renewed, l) < 0) {
		lease_renewed(NULL, "database unavailable", "", l);
		return;
	}
	l->renewing = true;
}

static void lease_took(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_lease *l = arg;
	reconcile_lease_cb cb = l->taken;
	char text[300];

	(void)sqlstate;
	l->taken = NULL;
	if (res == NULL || PQntuples(res) != 1) {
		l->state = LEASE_IDLE;
		snprintf(text, sizeof(text), "%s",
		         err ? err : "no lease row (is the schema migrated?)");
		cb(LEASE_ERROR, text, l->taken_arg);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		l->state = LEASE_HELD;
		clock_gettime(CLOCK_MONOTONIC, &l->renewed);
		lease_arm(l);
		cb(LEASE_TAKEN, NULL, l->taken_arg);
		return;
	}
	l->state = LEASE_IDLE;
	snprintf(text, sizeof(text), "%s, lease expires in %s s", PQgetvalue(res, 0, 1),
	         PQgetvalue(res, 0, 2));
	cb(LEASE_BUSY, text, l->taken_arg);
}

int reconcile_lease_take(struct reconcile_lease *l, reconcile_lease_cb cb, void *arg)
{
	const char *params[2] = {l->owner, lease_ttl};

	if (l->state != LEASE_IDLE)
		return -1;
	l->taken = cb;
	l->taken_arg = arg;
	if (db_query(l->pool, SQL_TAKE, 2, params, lease_took, l) < 0) {
		l->taken = NULL;
		return -1;
	}
	l->state = LEASE_TAKING;
	return 0;
}

static void lease_released(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_lease *l = arg;
	void (*done)(void *) = l->released;

	(void)res;
	(void)sqlstate;
	if (err)
		log_warnx("reconcile: cannot release the lease (it expires by itself within "
		          "%d s): %s",
		          RECONCILE_LEASE_TTL, err);
	l->state = LEASE_IDLE;
	l->released = NULL;
	if (done)
		done(l->released_arg);
}

void reconcile_lease_release(struct reconcile_lease *l, void (*done)(void *arg), void *arg)
{
	const char *params[1] = {l->owner};

	evtimer_del(l->ev_renew);
	if (l->state != LEASE_HELD) {
		l->state = LEASE_IDLE;
		if (done)
			done(arg);
		return;
	}
	l->released = done;
	l->released_arg = arg;
	l->state = LEASE_RELEASING;
	if (db_query(l->pool,
	             "UPDATE bayarhook.reconcile_lease SET owner = NULL, expires_at = '-infinity'"
	             " WHERE name = 'reconcile' AND owner = $1",
	             1, params, lease_released, l) < 0)
		lease_released(NULL, "database unavailable", "", l);
}

struct reconcile_lease *reconcile_lease_new(struct event_base *base, struct db_pool *pool,
                                            const char *runner, reconcile_lease_lost_cb lost,
                                            void *arg)
{
	struct reconcile_lease *l = xcalloc(1, sizeof(*l));
	unsigned char rnd[6];

	l->base = base;
	l->pool = pool;
	l->lost = lost;
	l->lost_arg = arg;
	if (getentropy(rnd, sizeof(rnd)) < 0)
		memset(rnd, 0, sizeof(rnd)); /* host:pid still tells holders apart */
	snprintf(l->owner, sizeof(l->owner), "%s:%02x%02x%02x%02x%02x%02x", runner, rnd[0], rnd[1],
	         rnd[2], rnd[3], rnd[4], rnd[5]);
	l->ev_renew = evtimer_new(base, lease_renew, l);
	if (l->ev_renew == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void reconcile_lease_free(struct reconcile_lease *l)
{
	if (l == NULL)
		return;
	event_free(l->ev_renew);
	free(l);
}
