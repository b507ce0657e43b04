/*
 * reconcile_soon.h: follow-ups of callbacks that changed no payment but
 * should have been asked about (SPEC §7): a stale but authentic one
 * (signature valid, timestamp outside the window), and an unsigned one
 * under [security] unsigned = confirm. The invoice is asked with
 * check-payment at once, ahead of the passes' calls, and what the gateway
 * answers (never the callback's own values) is recorded as a reconciler
 * finding when it is not pending. A gateway still saying pending, or
 * failing, is asked again min_age later, at most SOON_MAX_ASKS times; after
 * that the passes' sweeps are the safety net.
 *
 * Bounds, since anyone can send an unsigned request: one invoice is asked
 * at most once per min_age, whoever asks; unsigned asks go through the
 * gateway's GATEWAY_HALF bucket (half of max_requests_per_minute) and at
 * most that many wait at once; at most SOON_MAX_ENTRIES invoices are
 * remembered. What is over a bound is dropped (metric outcome "throttled").
 */
#ifndef BAYARHOOK_RECONCILE_SOON_H
#define BAYARHOOK_RECONCILE_SOON_H

#include <stdbool.h>

#include "config.h"
#include "gateway.h"
#include "store.h"

struct event_base;
struct reconcile_soon;

#define SOON_MAX_ASKS 3       /* check-payment asks per follow-up */
#define SOON_MAX_ENTRIES 4096 /* invoices remembered (asked, or to ask) */

enum reconcile_soon_kind {
	RECONCILE_SOON_STALE,    /* stale_timestamp with a valid signature */
	RECONCILE_SOON_UNSIGNED, /* unsigned = confirm: no signature at all */
};

const char *reconcile_soon_kind_name(enum reconcile_soon_kind kind);

/* NULL when libevent cannot make its timer. */
struct reconcile_soon *reconcile_soon_new(struct event_base *base, struct store *st,
                                          struct gateway *gw);
/* min_age and max_requests_per_minute, at start and after SIGHUP. */
void reconcile_soon_configure(struct reconcile_soon *s, const struct config *cfg);
/* Asks about invoice soon, within the bounds above; never calls back into the caller. */
void reconcile_soon_ask(struct reconcile_soon *s, const char *invoice,
                        enum reconcile_soon_kind kind);
/* Shutdown: ask nothing more (findings being recorded still finish). */
void reconcile_soon_stop(struct reconcile_soon *s);
/* A finding is being recorded. */
bool reconcile_soon_busy(const struct reconcile_soon *s);
/* Accepts NULL. */
void reconcile_soon_free(struct reconcile_soon *s);

#endif
