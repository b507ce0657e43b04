/*
 * audit_timer.c: checkpoints and redact_after on one timer (see audit_timer.h).
 */
#include "audit_timer.h"

#include <stdlib.h>

#include "audit_redact.h"
#include "log.h"
#include "xmalloc.h"

/* The first redaction pass runs this soon after the start, then every interval. */
#define AUDIT_FIRST_TICK_SEC 5

struct audit_timer {
	struct event *ev;
	struct store *store;
	const struct config *cfg;
	struct audit_redactor *redactor;
	int interval; /* the one the timer runs with */
};

static void audit_timer_arm(struct audit_timer *t, int sec)
{
	struct timeval tv = {sec, 0};

	if (event_add(t->ev, &tv) < 0)
		log_errx("audit: cannot arm the checkpoint timer");
}

static void audit_tick(evutil_socket_t fd, short what, void *arg)
{
	struct audit_timer *t = arg;

	(void)fd;
	(void)what;
	store_audit_checkpoint(t->store, "periodic");
	if (t->cfg->audit_redact_after > 0)
		audit_redactor_run(t->redactor, t->cfg->audit_nkeys ? t->cfg->audit_keys[0] : NULL,
		                   t->cfg->audit_redact_after);
	t->interval = t->cfg->audit_checkpoint_interval;
	audit_timer_arm(t, t->interval);
}

struct audit_timer *audit_timer_new(struct event_base *base, struct store *store,
                                    struct db_pool *pool, const struct config *cfg)
{
	struct audit_timer *t = xcalloc(1, sizeof(*t));

	t->store = store;
	t->cfg = cfg;
	t->redactor = audit_redactor_new(pool);
	t->ev = evtimer_new(base, audit_tick, t);
	if (t->ev == NULL) {
		audit_redactor_free(t->redactor);
		free(t);
		return NULL;
	}
	t->interval = cfg->audit_checkpoint_interval;
	audit_timer_arm(t, t->interval < AUDIT_FIRST_TICK_SEC ? t->interval : AUDIT_FIRST_TICK_SEC);
	return t;
}

void audit_timer_reload(struct audit_timer *t, const struct config *cfg)
{
	if (t == NULL)
		return;
	t->cfg = cfg;
	if (cfg->audit_checkpoint_interval != t->interval) {
		t->interval = cfg->audit_checkpoint_interval;
		audit_timer_arm(t, t->interval);
	}
}

void audit_timer_free(struct audit_timer *t)
{
	if (t == NULL)
		return;
	store_audit_checkpoint(t->store, "shutdown");
	event_free(t->ev);
	audit_redactor_free(t->redactor);
	free(t);
}
