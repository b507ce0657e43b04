/*
 * alert.h: delivery of alerts (SPEC §8). Alerts are rows of bayarhook.alerts,
 * mostly written by triggers in the transaction of their event
 * (sql/functions/alerts.sql); this module writes the two the daemon alone
 * sees (missed_callback, database_down) and delivers every pending one at
 * least once to [alert] command (the alert JSON on stdin, no shell) and/or
 * POSTs it to [alert] url, one at a time on its own database connection,
 * retried with the [fulfillment] backoff. bayarhook.alert_claim() applies
 * min_interval: the alerts of one kind and subject held back are merged into
 * the next one sent and counted in its "suppressed".
 *
 * Nothing here waits on the callback path or the job queue: a hanging
 * command only delays the next alert (it is killed after [alert] timeout).
 */
#ifndef BAYARHOOK_ALERT_H
#define BAYARHOOK_ALERT_H

#include <stdbool.h>
#include <stddef.h>

#include "alert_kind.h"
#include "config.h"

struct event_base;
struct alert;

/* Starts the delivery; NULL with err when the config cannot be used. */
struct alert *alert_new(struct event_base *base, const struct config *cfg, char *err,
                        size_t errlen);
/* SIGHUP: the new [alert] settings; -1 with err keeps the old ones. */
int alert_configure(struct alert *a, const struct config *cfg, char *err, size_t errlen);
/*
 * The main pool's state. Down for [alert] database_down_after seconds:
 * database_down is sent straight (no row can be written), and written once
 * the database is back (as sent, or pending when it could not be sent).
 */
void alert_db_state(struct alert *a, bool up);
/*
 * Queues an alert of the running daemon's, written on its next tick; in a
 * command, hands it to alert_raise_elsewhere()'s function. detail_json is a
 * JSON object or NULL.
 */
void alert_raise(enum alert_kind kind, const char *subject, const char *detail_json);
/*
 * Where alert_raise() hands an alert when no daemon runs in this process
 * (a command such as `reconcile --once`, which records it for serve to
 * deliver); NULL: dropped, as before.
 */
typedef void (*alert_raise_fn)(enum alert_kind kind, const char *subject, const char *detail_json,
                               void *arg);
void alert_raise_elsewhere(alert_raise_fn fn, void *arg);
/* True when no delivery is in flight. */
bool alert_idle(const struct alert *a);
/* Accepts NULL. Kills a running alert command; its claim lapses and it is sent again. */
void alert_free(struct alert *a);

#endif
