/*
 * verdict.h: the protocol's vocabulary. A verdict is what became of one
 * request to the callback path (SPEC §6: the name kept in
 * bayarhook.callbacks.verdict); a reason says why a request was refused.
 * Each is an enum with one table row giving its name, HTTP status, public
 * message (SPEC §4) and metric label, so that code decides on the enum and
 * the words are only ever printed.
 */
#ifndef BAYARHOOK_VERDICT_H
#define BAYARHOOK_VERDICT_H

#include <stdbool.h>

enum verdict {
	VERDICT_ACCEPTED,        /* verified, recorded: 200 */
	VERDICT_DUPLICATE,       /* verified, already recorded: 200 with "duplicate" */
	VERDICT_OUT_OF_ORDER,    /* verified, would move the payment backwards: 200, no change */
	VERDICT_BAD_SIGNATURE,   /* signature missing or wrong: 401 */
	VERDICT_STALE_TIMESTAMP, /* timestamp missing or outside the window: 401 */
	VERDICT_MALFORMED,       /* not an event (also wrong method, X-Invoice-ID mismatch): 400 */
	VERDICT_FORBIDDEN,       /* client address not in allow_from: 403 */
	VERDICT_TOO_LARGE,       /* body over max_body_bytes: 413 */
	VERDICT_UNSIGNED,    /* SPEC §7 unsigned = confirm, no signature at all: 200, audit only */
	VERDICT_UNAVAILABLE, /* could not be made durable: 503, never stored */
	VERDICT__COUNT
};

/* The name stored in callbacks.verdict ("accepted", ...; "unavailable" is never stored). */
const char *verdict_name(enum verdict v);
/* The status of the answer; a reason may override it (verdict_reason_http_status). */
int verdict_http_status(enum verdict v);
/* The whole answer body of a success ({"success":true}, ...); NULL for a refusal. */
const char *verdict_answer(enum verdict v);
/* A refusal's "error" when no reason says more; NULL for a success. */
const char *verdict_message(enum verdict v);
/* The label value of bayarhook_http_requests_total{verdict}. */
const char *verdict_metric_label(enum verdict v);
/* The stored verdict of that name (as bayarhook.ingest() returns it); false when none is. */
bool verdict_from_name(const char *name, enum verdict *out) __attribute__((warn_unused_result));

/* Why a request was refused. Each belongs to exactly one verdict. */
enum verdict_reason {
	REASON_NONE,             /* not refused */
	REASON_FORBIDDEN,        /* client address not in allow_from */
	REASON_TOO_LARGE,        /* body over max_body_bytes */
	REASON_METHOD,           /* not POST: 405 with Allow: POST */
	REASON_NUL_BYTES,        /* a NUL byte in the body */
	REASON_NOT_UTF8,         /* the body is not valid UTF-8 */
	REASON_NUL_ESCAPE,       /* a \u0000 escape, which would cut a string short */
	REASON_NOT_JSON,         /* not JSON as PHP's json_decode reads it */
	REASON_NOT_OBJECT,       /* JSON, but not an object */
	REASON_NUMBER_RANGE,     /* a number PostgreSQL's numeric cannot hold */
	REASON_DUPLICATE_KEY,    /* a top-level key twice; the message names it */
	REASON_AMBIGUOUS_KEY,    /* two keys giving one BAYAR_* name; the message names both */
	REASON_MISSING_INVOICE,  /* no invoice_id */
	REASON_INVOICE_TYPE,     /* invoice_id not a non-empty string */
	REASON_INVOICE_TOO_LONG, /* invoice_id over EVENT_MAX_INVOICE_ID bytes */
	REASON_MISSING_STATUS,   /* no status, or not a string */
	REASON_UNKNOWN_STATUS,   /* a status not in SPEC §1's four */
	REASON_MISSING_AMOUNT,   /* no final_amount */
	REASON_AMOUNT_TYPE,      /* final_amount not a finite number or numeric string */
	REASON_INVOICE_MISMATCH, /* X-Invoice-ID differs from the body's invoice_id */
	REASON_NO_TIMESTAMP,     /* neither X-Webhook-Timestamp nor a body timestamp */
	REASON_NO_SIGNATURE,     /* neither X-Webhook-Signature nor a body signature */
	REASON_SIGNATURE_WRONG,  /* no secret gives this signature */
	REASON_OUTSIDE_WINDOW,   /* signed, but |now - timestamp| > replay_window */
	/*
	 * Refused by the request reader (lib/httpd) before a whole request was
	 * read; each has the status and message of its httpd refusal.
	 */
	REASON_HTTP_SYNTAX,        /* 400 not HTTP/1.x syntax */
	REASON_HTTP_INCOMPLETE,    /* 400 the client closed mid-request */
	REASON_HTTP_METHOD,        /* 501 unknown method, CONNECT, WebDAV, ... */
	REASON_HTTP_VERSION,       /* 505 not HTTP/1.x */
	REASON_URL_TOO_LONG,       /* 414 request line over the head limit (too_large) */
	REASON_HEADERS_TOO_LARGE,  /* 431 header block over the limit (too_large) */
	REASON_BAD_LENGTH,         /* 400 Content-Length not one run of digits, or twice */
	REASON_TRANSFER_ENCODING,  /* 501 Transfer-Encoding other than chunked */
	REASON_LENGTH_AND_CHUNKED, /* 400 both Transfer-Encoding and Content-Length */
	REASON_REQUEST_TIMEOUT,    /* 408 not received within request_timeout */
	REASON__COUNT
};

enum verdict verdict_reason_verdict(enum verdict_reason r);
/* The answer's status: the verdict's, except 405 for REASON_METHOD and the reader's own. */
int verdict_reason_http_status(enum verdict_reason r);
/*
 * The answer's (and the audit row's) "error"; REASON_DUPLICATE_KEY's is
 * followed by the key, REASON_AMBIGUOUS_KEY's by both keys.
 */
const char *verdict_reason_message(enum verdict_reason r);

#endif
