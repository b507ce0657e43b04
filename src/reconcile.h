/*
 * reconcile.h: the reconciliation pass. It asks the gateway about payments
 * whose callback may never have come and records what it learns through
 * the store, exactly as a verified callback (source "reconciler", no audit
 * row), so the same jobs run, once:
 *   - local pending invoices older than min_age -> check-payment;
 *   - list-payments status=S for each S of [reconciler] statuses (paid,
 *     expired, cancelled) since lookback (+1 day, the gateway counts in
 *     WIB), every page -> each item not already so here (a paid one only
 *     once paid at least min_age ago: younger ones are left to their
 *     callback) is recorded as listed, with no check-payment of its own.
 * A paid invoice a pass records raises missed_callback. Beside the passes,
 * reconcile_check_soon() follows up stale and unsigned callbacks
 * (reconcile_soon.c), through the same gateway and its one budget.
 * One process at a time per database (a lease row renewed during the
 * pass, reconcile_lease.h: it holds under transaction pooling and expires
 * when its holder dies); every pass is a row in bayarhook.reconcile_passes.
 * `serve` runs a pass every [reconciler] interval when enabled;
 * `reconcile --once` runs one on a private loop.
 */
#ifndef BAYARHOOK_RECONCILE_H
#define BAYARHOOK_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "gateway.h"
#include "reconcile_soon.h"
#include "store.h"

struct event_base;
struct reconcile;

struct reconcile_summary {
	long long id;       /* bayarhook.reconcile_passes.id, 0 when no row was written */
	const char *result; /* "completed", "failed", "aborted", or "skipped" (locked elsewhere) */
	int checked;        /* invoices check-payment answered about */
	int found;          /* payments recorded (new, or moved forward) */
	int errors;         /* invoices or pages that could not be had */
	int requests;       /* API requests, retries included */
	int pages;          /* list-payments pages read */
	double seconds;
	const char *note; /* why it failed, or NULL */
};

enum reconcile_report {
	RECONCILE_CHECKED, /* an answer that changed nothing */
	RECONCILE_FOUND,   /* a payment recorded */
	RECONCILE_ERROR,   /* an invoice or page that could not be had */
};

/* Progress lines; invoice may be NULL (a page). */
typedef void (*reconcile_report_cb)(enum reconcile_report kind, const char *invoice,
                                    const char *text, void *arg);
typedef void (*reconcile_done_cb)(const struct reconcile_summary *s, void *arg);

/*
 * pool: the pass's lease and queries (statements stand alone: one
 * connection suffices, two let the lease renew beside a long query); store: where findings go; gw:
 * shared with the confirmer so one rate limit covers every API request. trigger ("serve", "cli") is
 * recorded.
 */
struct reconcile *reconcile_new(struct event_base *base, const struct config *cfg,
                                struct db_pool *pool, struct store *store, struct gateway *gw,
                                const char *trigger);
/* Stops and frees (a pass in flight is dropped unrecorded); accepts NULL. */
void reconcile_free(struct reconcile *rc);
/* After SIGHUP: interval, lookback, min_age, statuses, enabled, the follow-ups' bounds. */
void reconcile_configure(struct reconcile *rc, const struct config *cfg);

/* serve: a pass every interval while [reconciler] enabled = true. */
void reconcile_start(struct reconcile *rc);
/* Shutdown: no new pass; a running one is aborted and recorded as such. */
void reconcile_stop(struct reconcile *rc);
/*
 * A callback that changed no payment but whose invoice the gateway should
 * be asked about (SPEC §7): see reconcile_soon.h. Whatever [reconciler]
 * enabled says; nothing when no API key is configured.
 */
void reconcile_check_soon(struct reconcile *rc, const char *invoice, enum reconcile_soon_kind kind);

/* True while a pass is running (or finishing its records), or a follow-up is recorded. */
bool reconcile_busy(const struct reconcile *rc);

/*
 * Starts one pass now. report (may be NULL) gets progress lines, done the
 * summary, exactly once and never before this returns. Returns -1 when a
 * pass is already running.
 */
int reconcile_run(struct reconcile *rc, reconcile_report_cb report, reconcile_done_cb done,
                  void *arg) __attribute__((warn_unused_result));

#endif
