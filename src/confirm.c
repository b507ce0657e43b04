/*
 * confirm.c: releases or refuses held jobs (see confirm.h). The decision
 * itself is one SQL function so that it is atomic with the job rows; this
 * module only finds held invoices, asks the gateway, and paces the asking:
 * each invoice has an entry with the earliest time it may be asked again,
 * so a gateway that is down or still says "pending" is not hammered every
 * poll.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "confirm.h"
#include "event.h"
#include "log.h"
#include "xmalloc.h"

#define CONFIRM_SCAN_LIMIT "100"
#define CONFIRM_BACKOFF_MAX 600.0 /* seconds between asks after gateway errors */

struct confirm;

struct centry {
	struct centry *next;
	struct confirm *cf;
	char *invoice;
	double not_before; /* monotonic seconds */
	int failures;      /* gateway errors in a row */
	bool busy;         /* at the gateway or being decided */
	bool seen;         /* in the latest scan */
};

struct confirm {
	struct event_base *base;
	struct db_pool *pool;
	struct gateway *gw;
	struct event *ev_poll;
	struct centry *entries;
	bool scanning, rescan, stopped;
	bool soon;  /* the poll timer is armed for a NOTIFY */
	int db_out; /* decisions being written */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void confirm_arm(struct confirm *cf, double seconds)
{
	struct timeval tv;

	if (cf->stopped)
		return;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (long)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(cf->ev_poll, &tv);
}

static struct centry *entry_find(struct confirm *cf, const char *invoice)
{
	for (struct centry *e = cf->entries; e; e = e->next)
		if (strcmp(e->invoice, invoice) == 0)
			return e;
	return NULL;
}

static void entry_later(struct centry *e, double seconds)
{
	e->busy = false;
	e->not_before = mono_now() + seconds;
}

struct decide_ctx {
	struct confirm *cf;
	char *invoice;
};

static void confirm_decided(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct decide_ctx *dc = arg;
	struct confirm *cf = dc->cf;
	struct centry *e = entry_find(cf, dc->invoice);
	bool again = false;

	(void)sqlstate;
	cf->db_out--;
	if (res == NULL) {
		log_warnx("confirm: invoice=%s cannot record the decision: %s", dc->invoice, err);
		again = true;
	}
	for (int i = 0; res && i < PQntuples(res); i++) {
		const char *outcome = PQgetvalue(res, i, 0), *jobs = PQgetvalue(res, i, 1);
		const char *reason = PQgetvalue(res, i, 2);

		if (strcmp(outcome, "agreed") == 0) {
			log_info("confirm: invoice=%s confirmed by the gateway, %s job(s) released",
			         dc->invoice, jobs);
		} else if (strcmp(outcome, "unconfirmed") == 0) {
			log_info("confirm: invoice=%s %s", dc->invoice, reason);
			again = true;
		} else {
			log_warnx("confirm: invoice=%s NOT confirmed, %s job(s) dead, payment "
			          "flagged: %s",
			          dc->invoice, jobs, reason);
		}
	}
	if (e)
		entry_later(e, again ? CONFIRM_RETRY_SEC : 0);
	free(dc->invoice);
	free(dc);
}

static void confirm_decide(struct confirm *cf, struct centry *e, const struct pay_event *ev)
{
	struct decide_ctx *dc = xcalloc(1, sizeof(*dc));
	char max[16];
	const char *params[4];

	snprintf(max, sizeof(max), "%d", CONFIRM_MAX_UNCONFIRMED);
	params[0] = e->invoice;
	params[1] = ev ? ev->status_text : NULL; /* NULL: the gateway does not know it */
	params[2] = ev ? ev->final_amount : NULL;
	params[3] = max;
	dc->invoice = xstrdup(e->invoice);
	dc->cf = cf;
	if (db_query(cf->pool,
	             "SELECT outcome, jobs, reason FROM bayarhook.confirm_held(inv => $1,"
	             " gw_status => $2, gw_final_amount => $3, max_unconfirmed => $4)",
	             4, params, confirm_decided, dc) < 0) {
		free(dc->invoice);
		free(dc);
		entry_later(e, CONFIRM_RETRY_SEC);
		return;
	}
	cf->db_out++;
}

static void confirm_answered(const struct gateway_reply *r, void *arg)
{
	struct centry *e = arg;
	struct confirm *cf = e->cf;
	double wait;

	switch (r->error) {
	case GATEWAY_OK:
		e->failures = 0;
		confirm_decide(cf, e, r->event);
		return;
	case GATEWAY_ERR_NOT_FOUND:
		/* Another merchant's invoice, or a forged one: either way, not ours to pay. */
		e->failures = 0;
		confirm_decide(cf, e, NULL);
		return;
	default:
		/* The gateway already retried; pace the next ask and keep the jobs held. */
		e->failures++;
		wait = 30.0 * pow(2, e->failures - 1);
		if (wait > CONFIRM_BACKOFF_MAX)
			wait = CONFIRM_BACKOFF_MAX;
		log_warnx("confirm: invoice=%s cannot confirm yet, asking again in %.0f s: %s",
		          e->invoice, wait, r->message);
		entry_later(e, wait);
		return;
	}
}

static void confirm_scanned(PGresult *res, const char *err, const char *sqlstate, void *arg);

static void confirm_scan(struct confirm *cf)
{
	if (cf->stopped)
		return;
	if (cf->scanning) {
		cf->rescan = true;
		return;
	}
	if (db_query(cf->pool,
	             "SELECT invoice_id FROM bayarhook.jobs WHERE state = 'held'"
	             " AND held_reason IS NULL" /* not those of a removed action */
	             " GROUP BY invoice_id ORDER BY min(id) LIMIT " CONFIRM_SCAN_LIMIT,
	             0, NULL, confirm_scanned, cf) == 0)
		cf->scanning = true;
}

static void confirm_poll(evutil_socket_t fd, short what, void *arg)
{
	struct confirm *cf = arg;

	(void)fd;
	(void)what;
	cf->soon = false;
	confirm_scan(cf);
	confirm_arm(cf, CONFIRM_POLL_SEC);
}

static void confirm_notified(const char *channel, const char *payload, void *arg)
{
	struct confirm *cf = arg;

	(void)channel;
	(void)payload;
	/* A burst of callbacks is one scan a moment later, not one each. */
	if (!cf->soon) {
		cf->soon = true;
		confirm_arm(cf, 0.1);
	}
}

static void confirm_scanned(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct confirm *cf = arg;
	struct centry *e, **pp;
	double now = mono_now();

	(void)sqlstate;
	cf->scanning = false;
	if (res == NULL) {
		log_warnx("confirm: cannot look for held jobs: %s", err);
		return;
	}
	for (e = cf->entries; e; e = e->next)
		e->seen = false;
	for (int i = 0; i < PQntuples(res) && !cf->stopped; i++) {
		const char *inv = PQgetvalue(res, i, 0);

		e = entry_find(cf, inv);
		if (e == NULL) {
			e = xcalloc(1, sizeof(*e));
			e->invoice = xstrdup(inv);
			e->cf = cf;
			e->next = cf->entries;
			cf->entries = e;
		}
		e->seen = true;
		if (e->busy || e->not_before > now)
			continue;
		gateway_check_payment(cf->gw, e->invoice, GATEWAY_URGENT, cf, confirm_answered, e);
		e->busy = true;
	}
	/* Jobs decided elsewhere (another process, bayarhook retry): forget them. */
	for (pp = &cf->entries; (e = *pp) != NULL;) {
		if (!e->seen && !e->busy) {
			*pp = e->next;
			free(e->invoice);
			free(e);
		} else {
			pp = &e->next;
		}
	}
	if (cf->rescan) {
		cf->rescan = false;
		confirm_scan(cf);
	}
}

struct confirm *confirm_new(struct event_base *base, struct db_pool *pool, struct gateway *gw)
{
	struct confirm *cf = xcalloc(1, sizeof(*cf));

	cf->base = base;
	cf->pool = pool;
	cf->gw = gw;
	cf->ev_poll = evtimer_new(base, confirm_poll, cf);
	if (cf->ev_poll == NULL) {
		free(cf);
		return NULL;
	}
	db_pool_listen(pool, "bayarhook_jobs", confirm_notified, cf);
	confirm_arm(cf, 1);
	return cf;
}

void confirm_stop(struct confirm *cf)
{
	if (cf == NULL || cf->stopped)
		return;
	cf->stopped = true;
	evtimer_del(cf->ev_poll);
	gateway_cancel(cf->gw, cf);
}

bool confirm_busy(const struct confirm *cf)
{
	return cf != NULL && cf->db_out > 0;
}

void confirm_free(struct confirm *cf)
{
	struct centry *e, *next;

	if (cf == NULL)
		return;
	gateway_cancel(cf->gw, cf);
	for (e = cf->entries; e; e = next) {
		next = e->next;
		free(e->invoice);
		free(e);
	}
	if (cf->ev_poll)
		event_free(cf->ev_poll);
	free(cf);
}
