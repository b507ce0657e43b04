/*
 * callback.h: turns one request to the callback path into a verdict: parse
 * (event.c), verify (verify.c), record (store.c), then answer as SPEC §4.
 */
#ifndef BAYARHOOK_CALLBACK_H
#define BAYARHOOK_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "store.h"

/* What the HTTP layer knows about a request. */
struct callback_request {
	const char *method;
	const char *remote_addr;         /* real client (trusted proxies applied) */
	const char *peer_addr;           /* TCP peer */
	const struct evkeyvalq *headers; /* request headers */
	const char *body;
	size_t body_len;
	const char *refused; /* set by the HTTP layer: "forbidden", "too_large", "method" */
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

/* The answer for a verdict (exposed for tests). */
void callback_answer_for(const char *verdict, const char *error, struct callback_answer *ans,
                         char *buf, size_t buflen);

#endif
