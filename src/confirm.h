/*
 * confirm.h: [security] confirm_with_api. A callback stored with "hold"
 * has its jobs created in state held; the confirmer finds such jobs, asks
 * check-payment about their invoice, and lets bayarhook.confirm_held()
 * (sql/functions/jobs.sql) make them pending when status and final_amount
 * agree, or dead, with the payment flagged and the reason in
 * bayarhook.confirmations, when they do not.
 */
#ifndef BAYARHOOK_CONFIRM_H
#define BAYARHOOK_CONFIRM_H

#include <stdbool.h>

#include "db.h"
#include "gateway.h"

struct event_base;
struct confirm;

/* Checks asked while the gateway still says pending before that counts as disagreeing. */
#define CONFIRM_MAX_UNCONFIRMED 10
#define CONFIRM_RETRY_SEC 30 /* between those checks */
#define CONFIRM_POLL_SEC 5   /* held jobs are looked for this often, and on NOTIFY */

/*
 * Runs on pool (it LISTENs on bayarhook_jobs there, so call this before the
 * loop runs) and asks through gw, ahead of reconciliation calls. Held jobs
 * are confirmed whatever confirm_with_api says now: they were held by a
 * process for which it was true.
 */
struct confirm *confirm_new(struct event_base *base, struct db_pool *pool, struct gateway *gw);
/* Accepts NULL. */
void confirm_free(struct confirm *cf);
/* Shutdown: ask nothing more. */
void confirm_stop(struct confirm *cf);
/* A decision is being written. */
bool confirm_busy(const struct confirm *cf);

#endif
