/*
 * verdict.c: the two tables of the protocol's vocabulary. A new verdict or
 * reason is a new row here; nothing else compares names or messages.
 */
#include "verdict.h"

#include <stddef.h>
#include <string.h>

struct verdict_row {
	const char *name;    /* callbacks.verdict, SPEC §6; also in logs */
	bool stored;         /* whether an audit row can carry it */
	int http_status;     /* SPEC §4 */
	const char *answer;  /* the whole answer body; NULL: a refusal carrying the message */
	const char *message; /* the refusal's "error" when no reason gives a better one */
	const char *metric;  /* bayarhook_http_requests_total{verdict} */
};

#define ANSWER_OK "{\"success\":true}"

static const struct verdict_row verdicts[VERDICT__COUNT] = {
    [VERDICT_ACCEPTED] = {"accepted", true, 200, ANSWER_OK, NULL, "accepted"},
    [VERDICT_DUPLICATE] = {"duplicate", true, 200, "{\"success\":true,\"duplicate\":true}", NULL,
                           "duplicate"},
    [VERDICT_OUT_OF_ORDER] = {"out_of_order", true, 200, ANSWER_OK, NULL, "out_of_order"},
    [VERDICT_BAD_SIGNATURE] = {"bad_signature", true, 401, NULL, "invalid signature",
                               "bad_signature"},
    [VERDICT_STALE_TIMESTAMP] = {"stale_timestamp", true, 401, NULL,
                                 "timestamp outside replay window", "stale_timestamp"},
    [VERDICT_MALFORMED] = {"malformed", true, 400, NULL, "malformed", "malformed"},
    [VERDICT_FORBIDDEN] = {"forbidden", true, 403, NULL, "forbidden", "forbidden"},
    [VERDICT_TOO_LARGE] = {"too_large", true, 413, NULL, "body too large", "too_large"},
    /* SPEC §7: recorded, answered 200 once durable, then confirmed with the gateway. */
    [VERDICT_UNSIGNED] = {"unsigned", true, 200, ANSWER_OK, NULL, "unsigned"},
    /* The request could not be recorded at all; the sender retries. */
    [VERDICT_UNAVAILABLE] = {"unavailable", false, 503, NULL,
                             "temporarily unavailable, retry later", "unavailable"},
};

struct reason_row {
	enum verdict verdict;
	int http_status; /* 0: the verdict's */
	const char *message;
};

static const struct reason_row reasons[REASON__COUNT] = {
    [REASON_NONE] = {VERDICT_ACCEPTED, 0, NULL},
    [REASON_FORBIDDEN] = {VERDICT_FORBIDDEN, 0, "forbidden"},
    [REASON_TOO_LARGE] = {VERDICT_TOO_LARGE, 0, "body too large"},
    /* SPEC §6 audits a wrong method as malformed; SPEC §4 answers it 405. */
    [REASON_METHOD] = {VERDICT_MALFORMED, 405, "method not allowed"},
    [REASON_NUL_BYTES] = {VERDICT_MALFORMED, 0, "body contains NUL bytes"},
    [REASON_NOT_UTF8] = {VERDICT_MALFORMED, 0, "body is not valid UTF-8"},
    [REASON_NUL_ESCAPE] = {VERDICT_MALFORMED, 0, "body contains \\u0000"},
    [REASON_NOT_JSON] = {VERDICT_MALFORMED, 0, "body is not valid JSON"},
    [REASON_NOT_OBJECT] = {VERDICT_MALFORMED, 0, "body is not a JSON object"},
    [REASON_NUMBER_RANGE] = {VERDICT_MALFORMED, 0, "number out of range"},
    [REASON_DUPLICATE_KEY] = {VERDICT_MALFORMED, 0, "duplicate key: "},
    /* SPEC §13: "Invoice_ID" and "invoice_id" would give one BAYAR_INVOICE_ID. */
    [REASON_AMBIGUOUS_KEY] = {VERDICT_MALFORMED, 0, "ambiguous field names: "},
    [REASON_MISSING_INVOICE] = {VERDICT_MALFORMED, 0, "missing field: invoice_id"},
    [REASON_INVOICE_TYPE] = {VERDICT_MALFORMED, 0, "invoice_id must be a string"},
    [REASON_INVOICE_TOO_LONG] = {VERDICT_MALFORMED, 0, "invoice_id too long"},
    [REASON_MISSING_STATUS] = {VERDICT_MALFORMED, 0, "missing field: status"},
    [REASON_UNKNOWN_STATUS] = {VERDICT_MALFORMED, 0, "unknown status"},
    [REASON_MISSING_AMOUNT] = {VERDICT_MALFORMED, 0, "missing field: final_amount"},
    [REASON_AMOUNT_TYPE] = {VERDICT_MALFORMED, 0, "final_amount must be a number"},
    [REASON_INVOICE_MISMATCH] = {VERDICT_MALFORMED, 0, "X-Invoice-ID does not match invoice_id"},
    [REASON_NO_TIMESTAMP] = {VERDICT_STALE_TIMESTAMP, 0, "timestamp outside replay window"},
    [REASON_NO_SIGNATURE] = {VERDICT_BAD_SIGNATURE, 0, "invalid signature"},
    [REASON_SIGNATURE_WRONG] = {VERDICT_BAD_SIGNATURE, 0, "invalid signature"},
    [REASON_OUTSIDE_WINDOW] = {VERDICT_STALE_TIMESTAMP, 0, "timestamp outside replay window"},
    /*
     * The reader has answered these already (lib/httpd's table): status and
     * message must be its own, so that the audit row says what the client got
     * (tests/unit/test_server.c compares the two tables).
     */
    [REASON_HTTP_SYNTAX] = {VERDICT_MALFORMED, 400, "malformed request"},
    [REASON_HTTP_INCOMPLETE] = {VERDICT_MALFORMED, 400, "request incomplete"},
    [REASON_HTTP_METHOD] = {VERDICT_MALFORMED, 501, "method not implemented"},
    [REASON_HTTP_VERSION] = {VERDICT_MALFORMED, 505, "HTTP version not supported"},
    [REASON_URL_TOO_LONG] = {VERDICT_TOO_LARGE, 414, "URI too long"},
    [REASON_HEADERS_TOO_LARGE] = {VERDICT_TOO_LARGE, 431, "request header fields too large"},
    [REASON_BAD_LENGTH] = {VERDICT_MALFORMED, 400, "invalid Content-Length"},
    [REASON_TRANSFER_ENCODING] = {VERDICT_MALFORMED, 501, "transfer encoding not implemented"},
    [REASON_LENGTH_AND_CHUNKED] = {VERDICT_MALFORMED, 400,
                                   "both Content-Length and Transfer-Encoding"},
    [REASON_REQUEST_TIMEOUT] = {VERDICT_MALFORMED, 408, "request timeout"},
};

/* Out-of-range values read as the unavailable row: a 503 is never a wrong 200. */
static const struct verdict_row *verdict_row(enum verdict v)
{
	return &verdicts[(unsigned)v < VERDICT__COUNT ? v : VERDICT_UNAVAILABLE];
}

static const struct reason_row *reason_row(enum verdict_reason r)
{
	static const struct reason_row bad = {VERDICT_UNAVAILABLE, 0, NULL};

	return (unsigned)r < REASON__COUNT ? &reasons[r] : &bad;
}

const char *verdict_name(enum verdict v)
{
	return verdict_row(v)->name;
}

int verdict_http_status(enum verdict v)
{
	return verdict_row(v)->http_status;
}

const char *verdict_message(enum verdict v)
{
	return verdict_row(v)->message;
}

const char *verdict_metric_label(enum verdict v)
{
	return verdict_row(v)->metric;
}

const char *verdict_answer(enum verdict v)
{
	return verdict_row(v)->answer;
}

bool verdict_from_name(const char *name, enum verdict *out)
{
	for (int v = 0; name != NULL && v < VERDICT__COUNT; v++) {
		if (verdicts[v].stored && strcmp(verdicts[v].name, name) == 0) {
			*out = (enum verdict)v;
			return true;
		}
	}
	return false;
}

enum verdict verdict_reason_verdict(enum verdict_reason r)
{
	return reason_row(r)->verdict;
}

int verdict_reason_http_status(enum verdict_reason r)
{
	const struct reason_row *row = reason_row(r);

	return row->http_status != 0 ? row->http_status : verdict_http_status(row->verdict);
}

const char *verdict_reason_message(enum verdict_reason r)
{
	const struct reason_row *row = reason_row(r);

	return row->message != NULL ? row->message : verdict_message(row->verdict);
}
