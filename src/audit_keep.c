/*
 * audit_keep.c: serve's daily round over the audit's partitions. A round
 * is two statements on the pool, one after the other:
 * bayarhook.audit_partitions_ensure() (SECURITY DEFINER, so the daemon's
 * least-privileged role may call it) makes the months ahead, so that a
 * daemon running for years without `migrate` always has a month to write
 * into; then, with [audit] retention, bayarhook.audit_retain() drops the
 * months older than that. The daemon's role normally may not drop the
 * audit (README "Setup"): that refusal is said once, with what to do.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_keep.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "xmalloc.h"

#define AUDIT_KEEP_FIRST_SEC 1      /* after start: the pool is usually up by then */
#define AUDIT_KEEP_EVERY_SEC 86400  /* a round a day */
#define AUDIT_KEEP_RETRY_SEC 600    /* after a round that failed */
#define AUDIT_KEEP_WAIT_DB_SEC 5    /* while the pool has no connection */
#define AUDIT_KEEP_MONTHS_AHEAD "3" /* partitions made beyond this month */

/* SQLSTATEs that will not change until someone acts: said once, not daily. */
#define SQLSTATE_PRIVILEGE "42501"   /* insufficient_privilege */
#define SQLSTATE_NO_FUNCTION "42883" /* undefined_function: schema before 011 */

struct audit_keep {
	struct db_pool *pool;
	struct event *ev_timer;
	int retention;    /* [audit] retention: days, 0 keeps forever */
	bool failed;      /* this round failed: the next comes sooner */
	bool told_owner;  /* the "run audit retain as the owner" line was logged */
	bool told_schema; /* the "run migrate" line was logged */
};

static void audit_keep_arm(struct audit_keep *k, int seconds)
{
	struct timeval tv = {seconds, 0};

	evtimer_add(k->ev_timer, &tv);
}

static void audit_keep_end(struct audit_keep *k)
{
	audit_keep_arm(k, k->failed ? AUDIT_KEEP_RETRY_SEC : AUDIT_KEEP_EVERY_SEC);
}

static void audit_keep_retained(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_keep *k = arg;

	if (res == NULL) {
		if (strcmp(sqlstate, SQLSTATE_PRIVILEGE) == 0) {
			if (!k->told_owner)
				log_warnx("audit retention: this role may not drop the audit's "
				          "partitions (%s); run `bayarhook audit retain` from cron "
				          "as the owner (README, \"Retention\")",
				          err);
			k->told_owner = true;
		} else {
			log_warnx("audit retention failed: %s", err);
			k->failed = true;
		}
		audit_keep_end(k);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
		log_notice("audit retention: dropped %s (received %s to %s, %s rows, %s lane "
		           "anchor(s) kept)",
		           PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		           PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
	audit_keep_end(k);
}

static void audit_keep_ensured(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_keep *k = arg;
	char days[16];
	const char *params[1] = {days};

	if (res == NULL) {
		if (strcmp(sqlstate, SQLSTATE_NO_FUNCTION) == 0) {
			if (!k->told_schema)
				log_warnx("audit partitions: the schema has no "
				          "audit_partitions_ensure(): run bayarhook migrate (%s)",
				          err);
			k->told_schema = true;
		} else {
			log_warnx("audit partitions: cannot make the months ahead: %s", err);
			k->failed = true;
		}
		audit_keep_end(k);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
		log_notice("audit partitions: made %s", PQgetvalue(res, i, 0));
	if (k->retention == 0) {
		audit_keep_end(k);
		return;
	}
	snprintf(days, sizeof(days), "%d", k->retention);
	if (db_query(k->pool,
	             "SELECT partition_name, to_char(range_from AT TIME ZONE 'UTC', 'YYYY-MM-DD'),"
	             " to_char(range_to AT TIME ZONE 'UTC', 'YYYY-MM-DD'), row_count, lanes"
	             " FROM bayarhook.audit_retain($1::integer)",
	             1, params, audit_keep_retained, k) < 0) {
		k->failed = true;
		audit_keep_end(k);
	}
}

static void audit_keep_round(evutil_socket_t fd, short what, void *arg)
{
	struct audit_keep *k = arg;

	(void)fd;
	(void)what;
	/* Not yet connected (at start), or the database is down: soon again. */
	if (db_pool_up(k->pool) == 0) {
		audit_keep_arm(k, AUDIT_KEEP_WAIT_DB_SEC);
		return;
	}
	k->failed = false;
	if (db_query(k->pool,
	             "SELECT bayarhook.audit_partitions_ensure(" AUDIT_KEEP_MONTHS_AHEAD ")", 0,
	             NULL, audit_keep_ensured, k) < 0) {
		k->failed = true;
		audit_keep_end(k);
	}
}

struct audit_keep *audit_keep_new(struct event_base *base, struct db_pool *pool,
                                  const struct config *cfg)
{
	struct audit_keep *k = xcalloc(1, sizeof(*k));

	k->pool = pool;
	k->retention = cfg->audit_retention;
	k->ev_timer = evtimer_new(base, audit_keep_round, k);
	if (k->ev_timer == NULL) {
		free(k);
		return NULL;
	}
	audit_keep_arm(k, AUDIT_KEEP_FIRST_SEC);
	return k;
}

void audit_keep_configure(struct audit_keep *k, const struct config *cfg)
{
	if (k != NULL)
		k->retention = cfg->audit_retention;
}

void audit_keep_free(struct audit_keep *k)
{
	if (k == NULL)
		return;
	event_free(k->ev_timer);
	free(k);
}
