/*
 * callback.h: one request to the callback path, from the HTTP layer's view
 * to its answer: decide (decision.c), record (store.c), then answer as
 * SPEC §4 once the audit row (and for a verified event, the payment) is
 * durable.
 */
#ifndef BAYARHOOK_CALLBACK_H
#define BAYARHOOK_CALLBACK_H

#include <stdbool.h>
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
