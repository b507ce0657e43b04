/*
 * store.h: records requests and verified events in PostgreSQL, in one
 * transaction per batch (group commit): items submitted while earlier
 * batches are in flight travel together in the next one. Each item is
 * answered only after the transaction that holds it has committed.
 */
#ifndef BAYARHOOK_STORE_H
#define BAYARHOOK_STORE_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "verdict.h"

struct store;

enum store_outcome {
	STORE_COMMITTED, /* durable; verdict says what it was */
	STORE_FAILED,    /* not known to be durable: answer 503 */
};

/* verdict: what bayarhook.ingest() recorded; VERDICT_UNAVAILABLE when not committed. */
typedef void (*store_done_cb)(enum store_outcome outcome, enum verdict verdict, void *arg);

struct store *store_new(struct db_pool *pool);
void store_free(struct store *st);
/* Which actions each status triggers (from [action.*] on =); call on every (re)load. */
void store_set_actions(struct store *st, const struct config *cfg);

/*
 * Submits one item: the text of a JSON object (see the keys
 * bayarhook.ingest() reads in sql/functions/ingest.sql), without "idx";
 * and its body (valid UTF-8 without NUL), which is sent apart as bytes:
 * for a verified callback as event_parse accepted it, and also the event;
 * for a refusal, the prefix audit_limit.h keeps.
 * The store owns both from here, also on failure. Returns -1 without
 * calling cb when the database is down or the items held would pass a
 * byte cap (store.c: STORE_MAX_BYTES); otherwise cb is called exactly
 * once, possibly before store_submit returns.
 */
int store_submit(struct store *st, char *item, char *body, size_t body_len, store_done_cb cb,
                 void *arg) __attribute__((warn_unused_result));

/*
 * cb(arg) after each committed batch that accepted an event (jobs may have
 * been made): the worker's wake-up, without a round trip through LISTEN.
 */
void store_on_commit(struct store *st, void (*cb)(void *arg), void *arg);

/* The limits on refusal rows (audit_limit.h), one per store, as long as it lives. */
struct audit_limit *store_audit_limit(struct store *st);

/* Items accepted by store_submit and not yet answered. */
unsigned store_outstanding(const struct store *st);

/*
 * Whether callbacks cannot be committed: the last commit failed, on a
 * read-only session (SQLSTATE 25006, until one succeeds) or within the last
 * minute. For /healthz (SPEC §12).
 */
bool store_writes_failing(const struct store *st);

/*
 * Writes the members of the item for a verified event into an open object:
 * the payment fields and the event itself. source is "callback" or
 * "reconciler". raw is the event's JSON text (rawlen bytes), embedded as
 * is; NULL when the event is the body given to store_submit. st's actions
 * with `when =` that the event does not match are listed in "skip" (no
 * job for them); st NULL: none.
 */
struct pay_event;
struct jsonw;
void store_write_event(const struct store *st, struct jsonw *w, const struct pay_event *ev,
                       const char *source, const char *raw, size_t rawlen);

#endif
