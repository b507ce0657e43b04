/*
 * reconcile_record.h: what the gateway says about a payment, recorded as a
 * reconciler finding: through the store, like a verified callback (source
 * "reconciler", no audit row: bayarhook.callbacks holds requests to the
 * callback path only), so the same state machine decides and the same jobs
 * run, once. Shared by the passes and the follow-ups of callbacks.
 */
#ifndef BAYARHOOK_RECONCILE_RECORD_H
#define BAYARHOOK_RECONCILE_RECORD_H

#include <cjson/cJSON.h>

#include "event.h"
#include "store.h"

/*
 * Submits ev (a check-payment answer, or a list-payments item made an
 * event) to the store. cb is store_submit's: called exactly once, possibly
 * before this returns. Returns -1 without calling cb when the item cannot
 * be submitted (the database is down, or cJSON could not copy the answer).
 */
int reconcile_record(struct store *st, const struct pay_event *ev, store_done_cb cb, void *arg)
    __attribute__((warn_unused_result));

/*
 * A list-payments item as an event (ev owns a copy of item on success).
 * Returns 0, or -1 with the reason in *err.
 */
int reconcile_event_from_item(struct pay_event *ev, const cJSON *item, const char **err)
    __attribute__((warn_unused_result));

/*
 * missed_callback (SPEC §7): a paid invoice the reconciler found that no
 * callback had delivered. A warning and bayarhook_missed_callbacks_total.
 */
void reconcile_missed_callback(const char *invoice, const char *how);

#endif
