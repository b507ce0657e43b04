/*
 * reconcile.c: the reconciler: at most one pass at a time, started on
 * request (reconcile_run) or, under serve, every [reconciler] interval;
 * the pass itself is reconcile_pass.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "ident.h"
#include "log.h"
#include "reconcile.h"
#include "reconcile_pass.h"
#include "xmalloc.h"

#define RECONCILE_FIRST_DELAY 10 /* seconds after start before serve's first pass */

struct reconcile {
	struct event_base *base;
	struct db_pool *pool;
	struct store *store;
	struct gateway *gw;
	char *trigger;
	char runner[160];
	bool enabled;
	int interval, lookback, min_age;
	unsigned statuses;
	struct event *ev_timer; /* serve: the next periodic pass */
	struct event *ev_kick;  /* starts a requested pass from the loop */
	bool started, stopped;
	struct reconcile_pass *pass;
	struct reconcile_soon *soon; /* follow-ups of stale and unsigned callbacks */
	reconcile_done_cb done;      /* the caller's, for the pass in flight */
	void *done_arg;
};

static void reconcile_arm(struct reconcile *rc, int seconds)
{
	struct timeval tv = {seconds, 0};

	if (rc->enabled && !rc->stopped)
		evtimer_add(rc->ev_timer, &tv);
	else
		evtimer_del(rc->ev_timer);
}

/* Every pass ends here: the caller hears of it, then serve's timer is set again. */
static void reconcile_pass_done(const struct reconcile_summary *s, void *arg)
{
	struct reconcile *rc = arg;

	rc->pass = NULL;
	if (rc->done)
		rc->done(s, rc->done_arg);
	if (rc->started && !rc->stopped)
		reconcile_arm(rc, rc->interval);
}

static void reconcile_kick(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile *rc = arg;

	(void)fd;
	(void)what;
	if (rc->pass == NULL)
		return;
	if (rc->stopped)
		reconcile_pass_stop(rc->pass);
	reconcile_pass_begin(rc->pass);
}

int reconcile_run(struct reconcile *rc, reconcile_report_cb report, reconcile_done_cb done,
                  void *arg)
{
	struct reconcile_pass_env env = {
	    .base = rc->base,
	    .pool = rc->pool,
	    .store = rc->store,
	    .gw = rc->gw,
	    .trigger = rc->trigger,
	    .runner = rc->runner,
	    .lookback = rc->lookback,
	    .min_age = rc->min_age,
	    .statuses = rc->statuses,
	};

	if (rc->pass)
		return -1;
	rc->done = done;
	rc->done_arg = arg;
	rc->pass = reconcile_pass_new(&env, report, arg, reconcile_pass_done, rc);
	/* From the loop, so that done never runs before this returns. */
	event_active(rc->ev_kick, EV_TIMEOUT, 1);
	return 0;
}

/* ---- serve: the periodic pass ---- */

static void serve_report(enum reconcile_report kind, const char *invoice, const char *text,
                         void *arg)
{
	(void)arg;
	switch (kind) {
	case RECONCILE_FOUND:
		log_notice("reconcile: invoice=%s %s", invoice, text);
		break;
	case RECONCILE_ERROR:
		log_warnx("reconcile: %s%s%s%s", invoice ? "invoice=" : "", invoice ? invoice : "",
		          invoice ? " " : "", text);
		break;
	case RECONCILE_CHECKED:
		log_debug("reconcile: invoice=%s %s", invoice, text);
		break;
	}
}

static void serve_done(const struct reconcile_summary *s, void *arg)
{
	(void)arg;
	if (strcmp(s->result, "skipped") == 0) {
		log_info("reconcile: pass skipped: %s", s->note ? s->note : "");
		return;
	}
	log_msg(strcmp(s->result, "completed") == 0 ? LOG_INFO : LOG_WARNING,
	        "reconcile: pass %lld %s: checked=%d found=%d errors=%d requests=%d pages=%d "
	        "seconds=%.1f%s%s",
	        s->id, s->result, s->checked, s->found, s->errors, s->requests, s->pages,
	        s->seconds, s->note ? " note=" : "", s->note ? s->note : "");
}

static void reconcile_timer(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile *rc = arg;

	(void)fd;
	(void)what;
	if (!rc->enabled || rc->stopped || rc->pass)
		return;
	if (reconcile_run(rc, serve_report, serve_done, rc) < 0)
		reconcile_arm(rc, rc->interval);
}

void reconcile_start(struct reconcile *rc)
{
	rc->started = true;
	reconcile_arm(rc,
	              rc->interval < RECONCILE_FIRST_DELAY ? rc->interval : RECONCILE_FIRST_DELAY);
}

void reconcile_stop(struct reconcile *rc)
{
	if (rc == NULL || rc->stopped)
		return;
	rc->stopped = true;
	evtimer_del(rc->ev_timer);
	reconcile_soon_stop(rc->soon);
	if (rc->pass)
		reconcile_pass_stop(rc->pass);
}

bool reconcile_busy(const struct reconcile *rc)
{
	return rc != NULL && (rc->pass != NULL || reconcile_soon_busy(rc->soon));
}

void reconcile_check_soon(struct reconcile *rc, const char *invoice, enum reconcile_soon_kind kind)
{
	if (rc != NULL && !rc->stopped)
		reconcile_soon_ask(rc->soon, invoice, kind);
}

void reconcile_configure(struct reconcile *rc, const struct config *cfg)
{
	bool was = rc->enabled;
	int interval = rc->interval;

	rc->enabled = cfg->reconciler_enabled;
	rc->interval = cfg->reconciler_interval;
	rc->lookback = cfg->reconciler_lookback;
	rc->min_age = cfg->reconciler_min_age;
	rc->statuses = cfg->reconciler_statuses;
	reconcile_soon_configure(rc->soon, cfg);
	if (rc->started && rc->pass == NULL && (was != rc->enabled || interval != rc->interval))
		reconcile_arm(rc, rc->interval);
	if (rc->started && rc->enabled && (cfg->api_key == NULL || cfg->api_key[0] == '\0'))
		log_warnx("reconcile: [reconciler] enabled but no [gateway] api_key_file: "
		          "passes will fail");
}

struct reconcile *reconcile_new(struct event_base *base, const struct config *cfg,
                                struct db_pool *pool, struct store *store, struct gateway *gw,
                                const char *trigger)
{
	struct reconcile *rc = xcalloc(1, sizeof(*rc));

	rc->base = base;
	rc->pool = pool;
	rc->store = store;
	rc->gw = gw;
	ident_process(rc->runner, sizeof(rc->runner));
	rc->trigger = xstrdup(trigger);
	rc->ev_timer = evtimer_new(base, reconcile_timer, rc);
	rc->ev_kick = event_new(base, -1, 0, reconcile_kick, rc);
	rc->soon = reconcile_soon_new(base, store, gw);
	if (rc->ev_timer == NULL || rc->ev_kick == NULL || rc->soon == NULL) {
		reconcile_free(rc);
		return NULL;
	}
	reconcile_configure(rc, cfg);
	return rc;
}

void reconcile_free(struct reconcile *rc)
{
	if (rc == NULL)
		return;
	reconcile_pass_free(rc->pass);
	reconcile_soon_free(rc->soon);
	if (rc->ev_timer)
		event_free(rc->ev_timer);
	if (rc->ev_kick)
		event_free(rc->ev_kick);
	free(rc->trigger);
	free(rc);
}
