/*
 * test_decision.c: the callback's decision without a database or an event
 * loop. Every vector made by the gateway's own PHP sample goes through it
 * and comes out verified, a tampered copy comes out bad_signature; then a
 * table of requests, each with the reason, verdict, status and message it
 * must get; and the verdict tables and answers themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "callback.h"
#include "decision.h"
#include "verify.h"

#define SECRET "whsec_test_secret"
#define TS "1705312530"
#define NOW INT64_C(1705312530)
#define BODY                                                                                       \
	"{\"event\":\"payment.paid\",\"invoice_id\":\"INV-1\",\"status\":\"paid\","                \
	"\"amount\":50000,\"final_amount\":50123}"

static void config_init(struct config *cfg, char **secrets, size_t n)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->secrets = secrets;
	cfg->nsecrets = n;
	cfg->replay_window = 300;
	cfg->max_body_bytes = 65536;
}

/* ---- the vectors ---- */

struct vector {
	char *name, *secret, *timestamp, *signature, *body;
};

static char *member(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(item) ? strdup(item->valuestring) : NULL;
}

static size_t load_vectors(struct vector **out)
{
	const char *env = getenv("BAYARHOOK_VECTORS");
	FILE *f = fopen(env != NULL ? env : "vectors/signatures.jsonl", "r");
	struct vector *v = NULL;
	char *line = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		f = fopen("tests/vectors/signatures.jsonl", "r");
	if (f == NULL)
		fail_msg("cannot read the vectors; run from tests/ or set BAYARHOOK_VECTORS");
	while (getline(&line, &cap, f) > 0) {
		cJSON *obj = cJSON_Parse(line);

		if (obj == NULL)
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n].name = member(obj, "name");
		v[n].secret = member(obj, "secret");
		v[n].timestamp = member(obj, "timestamp");
		v[n].signature = member(obj, "signature");
		v[n].body = member(obj, "body");
		cJSON_Delete(obj);
		assert_non_null(v[n].name);
		assert_non_null(v[n].secret);
		assert_non_null(v[n].timestamp);
		assert_non_null(v[n].signature);
		assert_non_null(v[n].body);
		n++;
	}
	free(line);
	fclose(f);
	*out = v;
	return n;
}

static void free_vectors(struct vector *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].secret);
		free(v[i].timestamp);
		free(v[i].signature);
		free(v[i].body);
	}
	free(v);
}

/* One character of s changed to another of the same kind. */
static void tamper(char *s, size_t at)
{
	char c = s[at];

	if (c >= '0' && c <= '9')
		s[at] = c == '9' ? '0' : (char)(c + 1);
	else if (c >= 'a' && c <= 'f')
		s[at] = c == 'f' ? 'a' : (char)(c + 1);
	else
		s[at] = c == 'x' ? 'y' : 'x';
}

static enum verdict_reason decide_vector(const struct vector *v, const char *secret, const char *ts,
                                         const char *sig, const char *xinv, int *secret_index)
{
	char *mine = strdup(secret);
	char *secrets[2] = {(char *)"whsec_some_other_secret", mine};
	struct config cfg;
	struct decision_request req = {
	    .method = "POST",
	    .remote_addr = "198.51.100.7",
	    .x_invoice_id = xinv,
	    .x_webhook_signature = sig,
	    .x_webhook_timestamp = ts,
	    .body = v->body,
	    .body_len = strlen(v->body),
	};
	struct decision d;
	enum verdict_reason why;

	/* The vector's secret second: an older secret during a rotation still verifies. */
	config_init(&cfg, secrets, 2);
	decision_make(&d, &cfg, &req, strtoll(v->timestamp, NULL, 10));
	why = d.reason;
	*secret_index = d.secret_index;
	if (why == REASON_NONE) {
		assert_non_null(d.ev.invoice_id);
		assert_string_equal(d.message, "");
	} else {
		assert_string_equal(d.message, verdict_reason_message(why));
	}
	decision_release(&d);
	free(mine);
	return why;
}

static void test_vectors(void **state)
{
	struct vector *v;
	size_t n = load_vectors(&v);

	(void)state;
	assert_true(n >= 10);
	for (size_t i = 0; i < n; i++) {
		char sig[65], ts[32];
		int idx = -2;
		enum verdict_reason why;
		cJSON *body = cJSON_Parse(v[i].body);
		const cJSON *inv = cJSON_GetObjectItemCaseSensitive(body, "invoice_id");

		assert_true(cJSON_IsString(inv));
		why = decide_vector(&v[i], v[i].secret, v[i].timestamp, v[i].signature, NULL, &idx);
		if (why != REASON_NONE)
			fail_msg("%s: refused: %s", v[i].name, verdict_reason_message(why));
		assert_int_equal(idx, 1);
		/* X-Invoice-ID, when sent, must be the body's. */
		assert_int_equal(decide_vector(&v[i], v[i].secret, v[i].timestamp, v[i].signature,
		                               inv->valuestring, &idx),
		                 REASON_NONE);
		assert_int_equal(decide_vector(&v[i], v[i].secret, v[i].timestamp, v[i].signature,
		                               "PAY-someone-else", &idx),
		                 REASON_INVOICE_MISMATCH);
		cJSON_Delete(body);

		/* Each tampered character of the signature is caught, wherever it is. */
		for (size_t at = 0; at < 64; at += 9) {
			snprintf(sig, sizeof(sig), "%s", v[i].signature);
			tamper(sig, at);
			if (decide_vector(&v[i], v[i].secret, v[i].timestamp, sig, NULL, &idx) !=
			    REASON_SIGNATURE_WRONG)
				fail_msg("%s: signature tampered at %zu accepted", v[i].name, at);
			assert_int_equal(idx, -1);
		}
		/* Another timestamp, still inside the window: the signature no longer fits. */
		snprintf(ts, sizeof(ts), "%s", v[i].timestamp);
		tamper(ts, strlen(ts) - 1);
		assert_int_equal(decide_vector(&v[i], v[i].secret, ts, v[i].signature, NULL, &idx),
		                 REASON_SIGNATURE_WRONG);
		/* Another secret. */
		assert_int_equal(
		    decide_vector(&v[i], "whsec_wrong", v[i].timestamp, v[i].signature, NULL, &idx),
		    REASON_SIGNATURE_WRONG);
		/* Upper-case hex is the same signature. */
		for (size_t k = 0; k < 64; k++)
			sig[k] = (char)(v[i].signature[k] >= 'a' ? v[i].signature[k] - 32
			                                         : v[i].signature[k]);
		sig[64] = '\0';
		assert_int_equal(decide_vector(&v[i], v[i].secret, v[i].timestamp, sig, NULL, &idx),
		                 REASON_NONE);
	}
	free_vectors(v, n);
}

/* ---- a table of requests ---- */

struct request_case {
	const char *name;
	const char *method;     /* NULL: POST */
	const char *allow_from; /* NULL: everyone */
	const char *body;       /* NULL: BODY */
	const char *xinv;       /* NULL: "INV-1"; "-": absent */
	const char *ts;         /* NULL: TS; "-": absent */
	const char *sig;        /* NULL: signed right; "-": absent */
	int64_t now_offset;
	enum verdict_reason refused; /* by the HTTP layer */
	enum verdict_reason want;
	enum verdict want_verdict;
	int want_status;
	const char *want_message; /* NULL: the reason's */
};

#define SIGNED_IN_BODY(fields)                                                                     \
	"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":50123" fields "}"

static const struct request_case request_cases[] = {
    {"signed", NULL, NULL, NULL, NULL, NULL, NULL, 0, REASON_NONE, REASON_NONE, VERDICT_ACCEPTED,
     200, ""},
    {"charset", NULL, NULL, NULL, NULL, NULL, NULL, 0, REASON_NONE, REASON_NONE, VERDICT_ACCEPTED,
     200, ""},
    {"no content type", NULL, NULL, NULL, "-", NULL, NULL, 0, REASON_NONE, REASON_NONE,
     VERDICT_ACCEPTED, 200, ""},
    {"edge of the window", NULL, NULL, NULL, NULL, NULL, NULL, 300, REASON_NONE, REASON_NONE,
     VERDICT_ACCEPTED, 200, ""},
    {"edge of the window, early", NULL, NULL, NULL, NULL, NULL, NULL, -300, REASON_NONE,
     REASON_NONE, VERDICT_ACCEPTED, 200, ""},
    {"allowed", NULL, "198.51.100.0/24", NULL, NULL, NULL, NULL, 0, REASON_NONE, REASON_NONE,
     VERDICT_ACCEPTED, 200, ""},
    {"stale", NULL, NULL, NULL, NULL, NULL, NULL, 301, REASON_NONE, REASON_OUTSIDE_WINDOW,
     VERDICT_STALE_TIMESTAMP, 401, "timestamp outside replay window"},
    {"from the future", NULL, NULL, NULL, NULL, NULL, NULL, -301, REASON_NONE,
     REASON_OUTSIDE_WINDOW, VERDICT_STALE_TIMESTAMP, 401, NULL},
    {"no timestamp", NULL, NULL, NULL, NULL, "-", NULL, 0, REASON_NONE, REASON_NO_TIMESTAMP,
     VERDICT_STALE_TIMESTAMP, 401, "timestamp outside replay window"},
    {"empty timestamp", NULL, NULL, NULL, NULL, "", NULL, 0, REASON_NONE, REASON_NO_TIMESTAMP,
     VERDICT_STALE_TIMESTAMP, 401, NULL},
    {"timestamp not a number", NULL, NULL, NULL, NULL, "soon", NULL, 0, REASON_NONE,
     REASON_OUTSIDE_WINDOW, VERDICT_STALE_TIMESTAMP, 401, NULL},
    {"no signature", NULL, NULL, NULL, NULL, NULL, "-", 0, REASON_NONE, REASON_NO_SIGNATURE,
     VERDICT_BAD_SIGNATURE, 401, "invalid signature"},
    {"garbage signature", NULL, NULL, NULL, NULL, NULL, "not-hex", 0, REASON_NONE,
     REASON_SIGNATURE_WRONG, VERDICT_BAD_SIGNATURE, 401, "invalid signature"},
    /* A forger learns nothing about the window: the signature is checked first. */
    {"forged and stale", NULL, NULL, NULL, NULL, NULL, "00", 1000, REASON_NONE,
     REASON_SIGNATURE_WRONG, VERDICT_BAD_SIGNATURE, 401, NULL},
    /* SPEC §1: the body's signature and timestamp stand in for absent headers. */
    {"signed in the body", NULL, NULL,
     SIGNED_IN_BODY(",\"timestamp\":1705312530,\"signature\":\"@\""), NULL, "-", "-", 0,
     REASON_NONE, REASON_NONE, VERDICT_ACCEPTED, 200, ""},
    {"body timestamp stale", NULL, NULL,
     SIGNED_IN_BODY(",\"timestamp\":\"1705312530\",\"signature\":\"@\""), NULL, "-", "-", 400,
     REASON_NONE, REASON_OUTSIDE_WINDOW, VERDICT_STALE_TIMESTAMP, 401, NULL},
    {"body signature wrong", NULL, NULL,
     SIGNED_IN_BODY(",\"timestamp\":1705312530,\"signature\":\"abc\""), NULL, "-", "-", 0,
     REASON_NONE, REASON_SIGNATURE_WRONG, VERDICT_BAD_SIGNATURE, 401, NULL},
    {"body without signature", NULL, NULL, SIGNED_IN_BODY(",\"timestamp\":1705312530"), NULL, "-",
     "-", 0, REASON_NONE, REASON_NO_SIGNATURE, VERDICT_BAD_SIGNATURE, 401, NULL},
    /* Headers win over the body's fields. */
    {"header timestamp wins", NULL, NULL, SIGNED_IN_BODY(",\"timestamp\":1,\"signature\":\"abc\""),
     NULL, NULL, NULL, 0, REASON_NONE, REASON_NONE, VERDICT_ACCEPTED, 200, ""},
    {"forbidden", NULL, "10.0.0.0/8", NULL, NULL, NULL, NULL, 0, REASON_NONE, REASON_FORBIDDEN,
     VERDICT_FORBIDDEN, 403, "forbidden"},
    {"forbidden beats the method", "GET", "10.0.0.0/8", NULL, NULL, NULL, NULL, 0, REASON_NONE,
     REASON_FORBIDDEN, VERDICT_FORBIDDEN, 403, NULL},
    {"method", "GET", NULL, NULL, NULL, NULL, NULL, 0, REASON_NONE, REASON_METHOD,
     VERDICT_MALFORMED, 405, "method not allowed"},
    {"method is case-sensitive", "post", NULL, NULL, NULL, NULL, NULL, 0, REASON_NONE,
     REASON_METHOD, VERDICT_MALFORMED, 405, NULL},
    {"refused unread", "PUT", "10.0.0.0/8", "", NULL, NULL, NULL, 0, REASON_TOO_LARGE,
     REASON_TOO_LARGE, VERDICT_TOO_LARGE, 413, "body too large"},
    {"not JSON", NULL, NULL, "invoice_id=INV-1", NULL, NULL, NULL, 0, REASON_NONE, REASON_NOT_JSON,
     VERDICT_MALFORMED, 400, "body is not valid JSON"},
    {"empty body", NULL, NULL, "", NULL, NULL, NULL, 0, REASON_NONE, REASON_NOT_JSON,
     VERDICT_MALFORMED, 400, NULL},
    {"not an object", NULL, NULL, "[1]", NULL, NULL, NULL, 0, REASON_NONE, REASON_NOT_OBJECT,
     VERDICT_MALFORMED, 400, "body is not a JSON object"},
    {"not UTF-8", NULL, NULL, "{\"a\":\"\xff\"}", NULL, NULL, NULL, 0, REASON_NONE, REASON_NOT_UTF8,
     VERDICT_MALFORMED, 400, "body is not valid UTF-8"},
    {"NUL escape", NULL, NULL, "{\"a\":\"\\u0000\"}", NULL, NULL, NULL, 0, REASON_NONE,
     REASON_NUL_ESCAPE, VERDICT_MALFORMED, 400, "body contains \\u0000"},
    {"number out of range", NULL, NULL, SIGNED_IN_BODY(",\"x\":1e999999"), NULL, NULL, NULL, 0,
     REASON_NONE, REASON_NUMBER_RANGE, VERDICT_MALFORMED, 400, "number out of range"},
    {"duplicate key", NULL, NULL, SIGNED_IN_BODY(",\"amount\":1,\"amount\":2"), NULL, NULL, NULL, 0,
     REASON_NONE, REASON_DUPLICATE_KEY, VERDICT_MALFORMED, 400, "duplicate key: amount"},
    {"missing invoice_id", NULL, NULL, "{\"status\":\"paid\",\"final_amount\":1}", NULL, NULL, NULL,
     0, REASON_NONE, REASON_MISSING_INVOICE, VERDICT_MALFORMED, 400, "missing field: invoice_id"},
    {"invoice_id a number", NULL, NULL, "{\"invoice_id\":1,\"status\":\"paid\",\"final_amount\":1}",
     NULL, NULL, NULL, 0, REASON_NONE, REASON_INVOICE_TYPE, VERDICT_MALFORMED, 400,
     "invoice_id must be a string"},
    {"missing status", NULL, NULL, "{\"invoice_id\":\"INV-1\",\"final_amount\":1}", NULL, NULL,
     NULL, 0, REASON_NONE, REASON_MISSING_STATUS, VERDICT_MALFORMED, 400, "missing field: status"},
    {"unknown status", NULL, NULL,
     "{\"invoice_id\":\"INV-1\",\"status\":\"refunded\",\"final_amount\":1}", NULL, NULL, NULL, 0,
     REASON_NONE, REASON_UNKNOWN_STATUS, VERDICT_MALFORMED, 400, "unknown status"},
    {"missing final_amount", NULL, NULL, "{\"invoice_id\":\"INV-1\",\"status\":\"paid\"}", NULL,
     NULL, NULL, 0, REASON_NONE, REASON_MISSING_AMOUNT, VERDICT_MALFORMED, 400,
     "missing field: final_amount"},
    {"final_amount not a number", NULL, NULL,
     "{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"a lot\"}", NULL, NULL, NULL,
     0, REASON_NONE, REASON_AMOUNT_TYPE, VERDICT_MALFORMED, 400, "final_amount must be a number"},
    /* Shape before signature: a mismatch is named even for a forged request. */
    {"X-Invoice-ID mismatch", NULL, NULL, NULL, "INV-2", NULL, "-", 1000, REASON_NONE,
     REASON_INVOICE_MISMATCH, VERDICT_MALFORMED, 400, "X-Invoice-ID does not match invoice_id"},
    {"X-Invoice-ID is case-sensitive", NULL, NULL, NULL, "inv-1", NULL, NULL, 0, REASON_NONE,
     REASON_INVOICE_MISMATCH, VERDICT_MALFORMED, 400, NULL},
};

/* The right signature over body's fields, or "" when it does not parse. */
static void sign_body(const char *body, const char *ts, char sig[65])
{
	struct pay_event ev;
	const char *err;

	sig[0] = '\0';
	if (event_parse(&ev, body, strlen(body), &err) == 0)
		verify_sign(SECRET, ev.invoice_id, ev.status_text, ev.final_amount, ts, sig);
	event_release(&ev);
}

static const char *or_default(const char *v, const char *dflt)
{
	if (v == NULL)
		return dflt;
	return strcmp(v, "-") == 0 ? NULL : v;
}

static void test_requests(void **state)
{
	char *secrets[] = {(char *)SECRET};

	(void)state;
	for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
		const struct request_case *c = &request_cases[i];
		const char *body = c->body != NULL ? c->body : BODY;
		char sig[65], *text = strdup(body), *at;
		struct decision_request req;
		struct config cfg;
		struct decision d;

		assert_non_null(text);
		/* Signed over the timestamp header, or TS; "@" in a body stands for it. */
		sign_body(body, c->ts != NULL && strcmp(c->ts, "-") != 0 ? c->ts : TS, sig);
		if ((at = strchr(text, '@')) != NULL) {
			char *signed_body = NULL;

			*at = '\0';
			assert_true(asprintf(&signed_body, "%s%s%s", text, sig, at + 1) > 0);
			free(text);
			text = signed_body;
		}
		config_init(&cfg, secrets, 1);
		if (c->allow_from != NULL) {
			const char *err = NULL;
			assert_int_equal(cidr_list_parse(&cfg.allow_from, c->allow_from, &err), 0);
		}
		memset(&req, 0, sizeof(req));
		req.method = c->method != NULL ? c->method : "POST";
		req.remote_addr = "198.51.100.7";
		req.x_invoice_id = or_default(c->xinv, "INV-1");
		req.x_webhook_timestamp = or_default(c->ts, TS);
		req.x_webhook_signature = or_default(c->sig, sig);
		req.body = text;
		req.body_len = strlen(text);
		req.refused = c->refused;

		decision_make(&d, &cfg, &req, NOW + c->now_offset);
		if (d.reason != c->want)
			fail_msg("%s: got reason %d (%s), want %d (%s)", c->name, d.reason,
			         d.message, c->want, verdict_reason_message(c->want));
		assert_int_equal(decision_verdict(&d), c->want_verdict);
		assert_int_equal(c->want == REASON_NONE ? verdict_http_status(decision_verdict(&d))
		                                        : verdict_reason_http_status(d.reason),
		                 c->want_status);
		assert_string_equal(d.message, c->want_message ? c->want_message
		                                               : verdict_reason_message(c->want));
		/* Only a verified signature (stale or not) says so. */
		assert_int_equal(d.signature_valid,
		                 c->want == REASON_NONE || c->want == REASON_OUTSIDE_WINDOW);
		assert_false(d.is_unsigned);
		if (c->want == REASON_NONE) {
			assert_int_equal(d.secret_index, 0);
			assert_string_equal(d.ev.invoice_id, "INV-1");
			assert_string_equal(d.ev.final_amount, "50123");
		}
		decision_release(&d);
		cidr_list_free(&cfg.allow_from);
		free(text);
	}
}

/* The size limit is the config's: one byte over is refused, unread or not. */
static void test_size_limit(void **state)
{
	char *secrets[] = {(char *)SECRET};
	struct decision_request req = {.method = "POST", .body = BODY, .body_len = strlen(BODY)};
	struct config cfg;
	struct decision d;

	(void)state;
	config_init(&cfg, secrets, 1);
	cfg.max_body_bytes = (long)strlen(BODY) - 1;
	decision_make(&d, &cfg, &req, NOW);
	assert_int_equal(d.reason, REASON_TOO_LARGE);
	assert_int_equal(decision_verdict(&d), VERDICT_TOO_LARGE);
	assert_null(d.ev.json);
	decision_release(&d);
	cfg.max_body_bytes = (long)strlen(BODY);
	decision_make(&d, &cfg, &req, NOW);
	assert_int_not_equal(d.reason, REASON_TOO_LARGE);
	decision_release(&d);
}

/* A stale but authentic callback names the secret that verified it (SPEC §7). */
static void test_stale_but_authentic(void **state)
{
	char *secrets[] = {(char *)"whsec_new_one", (char *)SECRET};
	char sig[65];
	struct decision_request req = {.method = "POST",
	                               .x_webhook_timestamp = TS,
	                               .x_webhook_signature = sig,
	                               .body = BODY,
	                               .body_len = strlen(BODY)};
	struct config cfg;
	struct decision d;

	(void)state;
	sign_body(BODY, TS, sig);
	config_init(&cfg, secrets, 2);
	decision_make(&d, &cfg, &req, NOW + 3600);
	assert_int_equal(d.reason, REASON_OUTSIDE_WINDOW);
	assert_int_equal(decision_verdict(&d), VERDICT_STALE_TIMESTAMP);
	assert_int_equal(verdict_reason_http_status(d.reason), 401);
	assert_int_equal(d.secret_index, 1);
	assert_true(d.signature_valid);
	/* What the body holds stays readable for the audit. */
	assert_string_equal(d.ev.invoice_id, "INV-1");
	assert_string_equal(d.ev.status_text, "paid");
	decision_release(&d);

	/* Forged and stale: refused for the signature, which is not valid. */
	sig[0] = sig[0] == '0' ? '1' : '0';
	decision_make(&d, &cfg, &req, NOW + 3600);
	assert_int_equal(d.reason, REASON_SIGNATURE_WRONG);
	assert_false(d.signature_valid);
	assert_int_equal(d.secret_index, -1);
	decision_release(&d);
}

struct unsigned_case {
	const char *name;
	bool confirm;             /* [security] unsigned = confirm */
	const char *body;         /* NULL: BODY */
	const char *ts;           /* NULL: absent */
	const char *sig;          /* NULL: absent; "@": signed right */
	enum verdict_reason want; /* REASON_NONE with want_unsigned: unsigned */
	bool want_unsigned;
	enum verdict want_verdict;
	int want_status;
};

/* SPEC §7: only a request with no signature at all is unsigned, and only under confirm. */
static void test_unsigned(void **state)
{
	static const struct unsigned_case cases[] = {
	    {"no signature, confirm", true, NULL, TS, NULL, REASON_NONE, true, VERDICT_UNSIGNED,
	     200},
	    {"no signature nor timestamp, confirm", true, NULL, NULL, NULL, REASON_NONE, true,
	     VERDICT_UNSIGNED, 200},
	    /* Nothing vouches for the timestamp: the window does not apply. */
	    {"stale timestamp, no signature, confirm", true, NULL, "1", NULL, REASON_NONE, true,
	     VERDICT_UNSIGNED, 200},
	    {"no signature, refuse", false, NULL, TS, NULL, REASON_NO_SIGNATURE, false,
	     VERDICT_BAD_SIGNATURE, 401},
	    {"no signature nor timestamp, refuse", false, NULL, NULL, NULL, REASON_NO_TIMESTAMP,
	     false, VERDICT_STALE_TIMESTAMP, 401},
	    /* A wrong signature is a forgery, whatever the setting. */
	    {"wrong signature, confirm", true, NULL, TS, "00", REASON_SIGNATURE_WRONG, false,
	     VERDICT_BAD_SIGNATURE, 401},
	    {"empty signature, confirm", true, NULL, TS, "", REASON_SIGNATURE_WRONG, false,
	     VERDICT_BAD_SIGNATURE, 401},
	    {"wrong body signature, confirm", true,
	     SIGNED_IN_BODY(",\"timestamp\":1705312530,\"signature\":\"abc\""), NULL, NULL,
	     REASON_SIGNATURE_WRONG, false, VERDICT_BAD_SIGNATURE, 401},
	    {"signed, confirm", true, NULL, TS, "@", REASON_NONE, false, VERDICT_ACCEPTED, 200},
	    /* Shape still comes first. */
	    {"malformed, confirm", true, "{\"status\":\"paid\"}", NULL, NULL,
	     REASON_MISSING_INVOICE, false, VERDICT_MALFORMED, 400},
	};
	char *secrets[] = {(char *)SECRET};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct unsigned_case *c = &cases[i];
		const char *body = c->body != NULL ? c->body : BODY;
		struct decision_request req = {
		    .method = "POST", .body = body, .body_len = strlen(body)};
		struct callback_answer ans;
		struct config cfg;
		struct decision d;
		char sig[65], buf[256];

		config_init(&cfg, secrets, 1);
		cfg.unsigned_confirm = c->confirm;
		sign_body(body, TS, sig);
		req.x_webhook_timestamp = c->ts;
		req.x_webhook_signature = c->sig != NULL && strcmp(c->sig, "@") == 0 ? sig : c->sig;
		decision_make(&d, &cfg, &req, NOW);
		if (d.reason != c->want || d.is_unsigned != c->want_unsigned)
			fail_msg("%s: got reason %d unsigned %d", c->name, d.reason, d.is_unsigned);
		assert_int_equal(decision_verdict(&d), c->want_verdict);
		assert_int_equal(d.signature_valid, c->want_verdict == VERDICT_ACCEPTED);
		callback_answer_for(decision_verdict(&d), d.reason, d.message, &ans, buf,
		                    sizeof(buf));
		assert_int_equal(ans.status, c->want_status);
		if (c->want_unsigned) {
			assert_string_equal(ans.body, "{\"success\":true}");
			assert_int_equal(d.secret_index, -1);
			/* The body's values are there for the audit row. */
			assert_string_equal(d.ev.invoice_id, "INV-1");
			assert_string_equal(d.message, "");
		}
		decision_release(&d);
	}
}

/* ---- the tables and the answers ---- */

static void test_verdict_table(void **state)
{
	static const char *const stored[] = {
	    "accepted",  "duplicate", "out_of_order", "bad_signature", "stale_timestamp",
	    "malformed", "forbidden", "too_large",    "unsigned",
	};
	enum verdict v;

	(void)state;
	/* Every name of SPEC §6, in order, and back. */
	for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++) {
		assert_string_equal(verdict_name((enum verdict)i), stored[i]);
		assert_string_equal(verdict_metric_label((enum verdict)i), stored[i]);
		assert_true(verdict_from_name(stored[i], &v));
		assert_int_equal(v, (enum verdict)i);
	}
	assert_string_equal(verdict_metric_label(VERDICT_UNAVAILABLE), "unavailable");
	assert_false(verdict_from_name("unavailable", &v));
	assert_false(verdict_from_name("Accepted", &v));
	assert_false(verdict_from_name(NULL, &v));
	assert_int_equal(verdict_http_status(VERDICT_UNAVAILABLE), 503);
	/* Out of range reads as unavailable: never a 200 by mistake. */
	assert_int_equal(verdict_http_status((enum verdict)99), 503);
	assert_int_equal(verdict_reason_verdict((enum verdict_reason)99), VERDICT_UNAVAILABLE);
	for (int r = REASON_NONE + 1; r < REASON__COUNT; r++) {
		enum verdict rv = verdict_reason_verdict((enum verdict_reason)r);

		assert_non_null(verdict_reason_message((enum verdict_reason)r));
		/* A reason refuses: its verdict has no success answer. */
		assert_null(verdict_answer(rv));
		assert_true(verdict_reason_http_status((enum verdict_reason)r) >= 400);
	}
	assert_int_equal(verdict_reason_http_status(REASON_METHOD), 405);
	assert_int_equal(verdict_reason_http_status(REASON_INVOICE_MISMATCH), 400);
}

struct answer_case {
	enum verdict v;
	enum verdict_reason why;
	const char *message;
	int status;
	const char *body;
	bool allow_post;
	int retry_after;
};

/* SPEC §4, byte for byte. */
static void test_answers(void **state)
{
	static const struct answer_case cases[] = {
	    {VERDICT_ACCEPTED, REASON_NONE, "", 200, "{\"success\":true}", false, 0},
	    {VERDICT_UNSIGNED, REASON_NONE, "", 200, "{\"success\":true}", false, 0},
	    {VERDICT_OUT_OF_ORDER, REASON_NONE, "", 200, "{\"success\":true}", false, 0},
	    {VERDICT_DUPLICATE, REASON_NONE, "", 200, "{\"success\":true,\"duplicate\":true}",
	     false, 0},
	    {VERDICT_UNAVAILABLE, REASON_NONE, "", 503,
	     "{\"success\":false,\"error\":\"temporarily unavailable, retry later\"}", false, 5},
	    {VERDICT_BAD_SIGNATURE, REASON_SIGNATURE_WRONG, "invalid signature", 401,
	     "{\"success\":false,\"error\":\"invalid signature\"}", false, 0},
	    {VERDICT_STALE_TIMESTAMP, REASON_NO_TIMESTAMP, "timestamp outside replay window", 401,
	     "{\"success\":false,\"error\":\"timestamp outside replay window\"}", false, 0},
	    {VERDICT_MALFORMED, REASON_METHOD, "method not allowed", 405,
	     "{\"success\":false,\"error\":\"method not allowed\"}", true, 0},
	    {VERDICT_MALFORMED, REASON_NUL_ESCAPE, "body contains \\u0000", 400,
	     "{\"success\":false,\"error\":\"body contains \\\\u0000\"}", false, 0},
	    {VERDICT_MALFORMED, REASON_DUPLICATE_KEY, "duplicate key: a", 400,
	     "{\"success\":false,\"error\":\"duplicate key: a\"}", false, 0},
	    {VERDICT_FORBIDDEN, REASON_FORBIDDEN, "forbidden", 403,
	     "{\"success\":false,\"error\":\"forbidden\"}", false, 0},
	    {VERDICT_TOO_LARGE, REASON_TOO_LARGE, "body too large", 413,
	     "{\"success\":false,\"error\":\"body too large\"}", false, 0},
	    /* A refusal whose audit row was committed under its own verdict. */
	    {VERDICT_MALFORMED, REASON_INVOICE_MISMATCH, "X-Invoice-ID does not match invoice_id",
	     400, "{\"success\":false,\"error\":\"X-Invoice-ID does not match invoice_id\"}", false,
	     0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct answer_case *c = &cases[i];
		struct callback_answer ans;
		char buf[512];

		callback_answer_for(c->v, c->why, c->message, &ans, buf, sizeof(buf));
		if (ans.status != c->status || strcmp(ans.body, c->body) != 0)
			fail_msg("case %zu: got %d %s, want %d %s", i, ans.status, ans.body,
			         c->status, c->body);
		assert_int_equal(ans.allow_post, c->allow_post);
		assert_int_equal(ans.retry_after, c->retry_after);
	}
}

/* Which durable callbacks the gateway is asked about (SPEC §7), and which never. */
static void test_followup(void **state)
{
	enum callback_followup kind;

	(void)state;
	assert_true(callback_followup_for(VERDICT_STALE_TIMESTAMP, false, true, &kind));
	assert_int_equal(kind, CALLBACK_FOLLOWUP_STALE);
	assert_true(callback_followup_for(VERDICT_UNSIGNED, true, false, &kind));
	assert_int_equal(kind, CALLBACK_FOLLOWUP_UNSIGNED);
	/* A forged stale one never costs a gateway request. */
	assert_false(callback_followup_for(VERDICT_STALE_TIMESTAMP, false, false, &kind));
	assert_false(callback_followup_for(VERDICT_BAD_SIGNATURE, false, false, &kind));
	/* Recorded events need no asking; nor does anything the store did not say unsigned. */
	assert_false(callback_followup_for(VERDICT_ACCEPTED, false, true, &kind));
	assert_false(callback_followup_for(VERDICT_DUPLICATE, false, true, &kind));
	assert_false(callback_followup_for(VERDICT_UNAVAILABLE, true, false, &kind));
	assert_false(callback_followup_for(VERDICT_UNSIGNED, false, false, &kind));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),       cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_size_limit),    cmocka_unit_test(test_stale_but_authentic),
	    cmocka_unit_test(test_verdict_table), cmocka_unit_test(test_answers),
	    cmocka_unit_test(test_unsigned),      cmocka_unit_test(test_followup),
	};

	return cmocka_run_group_tests_name("decision", tests, NULL, NULL);
}
