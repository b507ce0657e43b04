/*
 * decision.h: the callback's decision as a pure function. A request (what
 * the HTTP layer read), the config and the clock go in; a refusal with its
 * typed reason, or a verified payment event, comes out. No database, no
 * event loop: callback.c records and answers what this decides.
 */
#ifndef BAYARHOOK_DECISION_H
#define BAYARHOOK_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "verdict.h"

/* The parts of a request to the callback path that the decision reads. */
struct decision_request {
	const char *method;      /* "POST", ... */
	const char *remote_addr; /* the real client (trusted proxies applied) */
	/* Header values, NULL when absent (the first of repeated names). */
	const char *x_invoice_id;
	const char *x_webhook_signature;
	const char *x_webhook_timestamp;
	const char *body;
	size_t body_len;
	/*
	 * REASON_TOO_LARGE when the HTTP layer refuses the body before
	 * reading it (its Content-Length is over the limit), else REASON_NONE.
	 */
	enum verdict_reason refused;
};

struct decision {
	enum verdict_reason reason; /* REASON_NONE: ev is verified */
	/*
	 * Verified: the event, to be recorded (the store then says accepted,
	 * duplicate or out_of_order). Refused after the body parsed: what it
	 * holds (invoice, status, event name help the audit). Else zeroed.
	 */
	struct pay_event ev;
	int secret_index; /* the secret the signature matched (0: the current one),
	                   * also when stale; -1 when none did or none was tried */
	/*
	 * The signature verified (secret_index >= 0), also when the timestamp
	 * then fell outside the window: a stale but authentic callback
	 * (SPEC §7), worth asking the gateway about. False when refused before
	 * the signature was checked, or when it did not verify.
	 */
	bool signature_valid;
	/*
	 * [security] unsigned = confirm and the request carries no signature at
	 * all (neither header nor body field): not refused (reason is
	 * REASON_NONE) but not verified either; ev holds the body's values,
	 * for the audit only (SPEC §7: only check-payment's answer acts).
	 */
	bool is_unsigned;
	char message[128]; /* the refusal's public text (SPEC §4), "" when verified */
};

/*
 * Decides on req at unix time now. Checks run in the order that tells a
 * client the least it should not know: who may ask and how (403, 405, 413),
 * then shape (400), then the signature (401), then the replay window (401),
 * so that a forger learns nothing about the window and a replayed genuine
 * callback is named stale. Under unsigned = confirm, a request with no
 * signature at all is is_unsigned whatever its timestamp (nothing vouches
 * for it, so the window says nothing). d need not be initialised; release it after.
 */
void decision_make(struct decision *d, const struct config *cfg, const struct decision_request *req,
                   int64_t now);
/* Frees what d holds; accepts a zeroed d. */
void decision_release(struct decision *d);

/*
 * The verdict this decision is audited under: VERDICT_ACCEPTED when
 * verified, VERDICT_UNSIGNED when is_unsigned, else the refusal's.
 */
enum verdict decision_verdict(const struct decision *d);

#endif
