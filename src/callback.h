/*
 * callback.h: one request to the callback path, from the HTTP layer's view
 * to its answer: decide (decision.c), record (store.c), then answer as
 * SPEC §4 once the audit row (and for a verified event, the payment) is
 * durable.
 */
#ifndef BAYARHOOK_CALLBACK_H
#define BAYARHOOK_CALLBACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "config.h"
#include "httpd.h"
#include "store.h"
#include "verdict.h"

/* What the HTTP layer knows about a request. */
struct callback_request {
	const char *method;      /* as sent */
	const char *remote_addr; /* real client (trusted proxies applied) */
	const char *peer_addr;   /* TCP peer */
	/* The header fields as the request reader gives them: in order, repeats kept. */
	const struct httpd_header *headers;
	size_t nheaders;
	const char *body; /* for a refusal of the reader: the first bytes it read */
	size_t body_len;
	/*
	 * For a refusal of the reader: the body's whole length as far as it is
	 * known (bytes received, or the Content-Length when larger); 0: body_len.
	 */
	uint64_t body_total;
	/*
	 * The reason the request reader refused it for (it has answered it
	 * already: only the audit row is left); REASON_NONE for a whole request.
	 */
	enum verdict_reason refused;
};

/* status 0 never happens; retry_after > 0 adds Retry-After; allow adds Allow: POST. */
struct callback_answer {
	int status;
	const char *body; /* JSON */
	int retry_after;
	bool allow_post;
};

typedef void (*callback_reply_cb)(const struct callback_answer *ans, void *arg);

/*
 * SPEC §7: callbacks the gateway should be asked about, once their audit row
 * is durable. Neither changed a payment; the receiver of the hook (the
 * reconciler) asks check-payment and records what the gateway answers.
 */
enum callback_followup {
	CALLBACK_FOLLOWUP_STALE,    /* stale_timestamp, but its signature verified */
	CALLBACK_FOLLOWUP_UNSIGNED, /* unsigned = confirm: it carried no signature at all */
};

/* invoice_id is only valid during the call. */
typedef void (*callback_followup_cb)(const char *invoice_id, enum callback_followup kind,
                                     void *arg);

/*
 * Sets the follow-up hook (NULL: none). It is called from the event loop,
 * after the answer, for each such callback whose audit row committed.
 */
void callback_set_followup(callback_followup_cb cb, void *arg);

/*
 * Whether a callback audited (durably) under v, decided unsigned or with a
 * valid signature, is followed up, and as what. Exposed for tests.
 */
bool callback_followup_for(enum verdict v, bool is_unsigned, bool signature_valid,
                           enum callback_followup *kind);

/*
 * Handles a request; reply is called exactly once, possibly before this
 * returns. cfg is only read during the call.
 */
void callback_handle(const struct config *cfg, struct store *st, const struct callback_request *req,
                     callback_reply_cb reply, void *arg);

/*
 * The answer for verdict v: a success's fixed body, or for a refusal
 * {"success":false,"error":message} with the status of its reason (why) or
 * else of v. body points into buf. Exposed for tests.
 */
void callback_answer_for(enum verdict v, enum verdict_reason why, const char *message,
                         struct callback_answer *ans, char *buf, size_t buflen);

#endif
