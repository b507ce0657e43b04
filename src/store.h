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
#include <event2/event.h>

#include "config.h"
#include "db.h"
#include "verdict.h"

struct store;

enum store_outcome {
	STORE_COMMITTED, /* durable; verdict says what it was */
	STORE_FAILED,    /* not known to be durable: answer 503 */
	/*
	 * store_submit_bounded: not durable within answer_timeout; answer 503.
	 * The item stays queued and may still commit (its resend is then a
	 * duplicate); nobody is called about it again.
	 */
	STORE_LATE,
};

/* verdict: what bayarhook.ingest() recorded; VERDICT_UNAVAILABLE when not committed. */
typedef void (*store_done_cb)(enum store_outcome outcome, enum verdict verdict, void *arg);

struct store *store_new(struct db_pool *pool);
void store_free(struct store *st);
/*
 * The answer deadline of store_submit_bounded() (SPEC §12: [server]
 * answer_timeout), in seconds; call on every (re)load. Without it (the
 * command-line tools) items wait for their outcome however long it takes.
 */
void store_set_answer_timeout(struct store *st, struct event_base *base, int seconds);
/*
 * Which actions each status triggers (from [action.*] on =), and the audit
 * chain's key ([audit] key_file, SPEC §11); call on every (re)load.
 */
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
 * As store_submit, for an item someone is waiting on (a callback's answer):
 * cb is called at the latest answer_timeout after this, with STORE_LATE
 * when the item is not durable by then. A late item still waiting to be
 * sent is recorded with http_status 503, as it was answered; one already
 * in a transaction keeps its row as sent (logged when it commits).
 */
int store_submit_bounded(struct store *st, char *item, char *body, size_t body_len,
                         store_done_cb cb, void *arg) __attribute__((warn_unused_result));

/*
 * cb(arg) after each committed batch that accepted an event (jobs may have
 * been made): the worker's wake-up, without a round trip through LISTEN.
 */
void store_on_commit(struct store *st, void (*cb)(void *arg), void *arg);

/* The limits on refusal rows (audit_limit.h), one per store, as long as it lives. */
struct audit_limit *store_audit_limit(struct store *st);

/*
 * Logs the head of each audit chain lane this store writes (SPEC §11
 * checkpoints; why: "periodic", "shutdown"). Nothing without a key.
 */
void store_audit_checkpoint(const struct store *st, const char *why);

/*
 * Items accepted by store_submit and without their outcome yet (those
 * answered STORE_LATE included until their transaction ends).
 */
unsigned store_outstanding(const struct store *st);

/*
 * Why callbacks cannot be committed now, or NULL when they can (SPEC §12,
 * for /healthz, the metric and doctor): "read-only session" (the last
 * commit failed with SQLSTATE 25006, until one succeeds), "commit failed"
 * (the last commit failed, within the last minute), "answer_timeout passed"
 * (a callback has waited longer than answer_timeout, or one answered 503 by
 * it has not reached its outcome yet).
 */
const char *store_degraded(const struct store *st);
/* store_degraded() != NULL. */
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
