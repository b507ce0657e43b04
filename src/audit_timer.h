/*
 * audit_timer.h: the daemon's periodic audit work (SPEC §11): every
 * [audit] checkpoint_interval it logs the head of each chain lane (and once
 * more when it is freed, at shutdown), and applies [audit] redact_after.
 */
#ifndef BAYARHOOK_AUDIT_TIMER_H
#define BAYARHOOK_AUDIT_TIMER_H

#include <event2/event.h>

#include "config.h"
#include "db.h"
#include "store.h"

struct audit_timer;

/* cfg must outlive the timer or be replaced through audit_timer_reload. NULL: no timer. */
struct audit_timer *audit_timer_new(struct event_base *base, struct store *store,
                                    struct db_pool *pool, const struct config *cfg);
void audit_timer_reload(struct audit_timer *t, const struct config *cfg);
/* Logs the lanes' heads a last time ("shutdown"); accepts NULL. */
void audit_timer_free(struct audit_timer *t);

#endif
