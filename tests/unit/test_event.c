/*
 * test_event.c: callback body parsing. Every way a stranger's body can be
 * malformed maps to its client-facing reason; accepted bodies give every
 * field the text PHP would give it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"
#include "utf8.h"

#define LONG_KEY                                                                                   \
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"    \
	"567890123456789"
#define OK_FIELDS "\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":50123"

struct bad_case {
	const char *body;
	size_t len; /* 0: strlen(body) */
	const char *err;
	enum verdict_reason why;
};

static const struct bad_case bad_cases[] = {
    {"{\"invoice_id\":\"INV\0\",\"status\":\"paid\",\"final_amount\":1}", 55,
     "body contains NUL bytes", REASON_NUL_BYTES},
    {"\0", 1, "body contains NUL bytes", REASON_NUL_BYTES},
    {"{\"a\":\"\xff\"," OK_FIELDS "}", 0, "body is not valid UTF-8", REASON_NOT_UTF8},
    {"{\"a\":\"\xc0\xaf\"," OK_FIELDS "}", 0, "body is not valid UTF-8", REASON_NOT_UTF8},
    {"{\"a\":\"\xed\xa0\x80\"," OK_FIELDS "}", 0, "body is not valid UTF-8", REASON_NOT_UTF8},
    {"{\"a\":\"\xf4\x90\x80\x80\"," OK_FIELDS "}", 0, "body is not valid UTF-8", REASON_NOT_UTF8},
    {"{\"a\":\"\xe2\x82\"," OK_FIELDS "}", 0, "body is not valid UTF-8", REASON_NOT_UTF8},
    {"{\"invoice_id\":\"INV\\u0000x\",\"status\":\"paid\",\"final_amount\":1}", 0,
     "body contains \\u0000", REASON_NUL_ESCAPE},
    {"{\"a\\u0000\":1," OK_FIELDS "}", 0, "body contains \\u0000", REASON_NUL_ESCAPE},
    /* Past PostgreSQL numeric's range (jsonb could never hold the event);
     * the boundaries as PostgreSQL 15 itself draws them. */
    {"{\"x\":1e131072," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":-1E+131072," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":0.1e131073," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":1e200000," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":1e-16384," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":10e-16384," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":0.10e-16382," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":1.0e-16383," OK_FIELDS "}", 0, "number out of range", REASON_NUMBER_RANGE},
    {"{\"x\":[{\"y\":1e99999999999}]," OK_FIELDS "}", 0, "number out of range",
     REASON_NUMBER_RANGE},
    {"{\"a\":\"\\\\\\u0000\"," OK_FIELDS "}", 0, "body contains \\u0000", REASON_NUL_ESCAPE},
    {"", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"   ", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{" OK_FIELDS, 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{" OK_FIELDS "}x", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{" OK_FIELDS "} {}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{" OK_FIELDS ",}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{'invoice_id':'INV-1'}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":\"\\x\"," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":\"\\ud800\"," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    /* cJSON accepts these, PHP's json_decode does not. */
    {"{\"a\":01," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":-01," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":+1," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":1.," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":1.e5," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":[1,-]," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":{\"b\":00}," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":\"x\x01y\"," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\":\"tab\there\"," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\"a\x1f\":1," OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"\x0b{" OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{" OK_FIELDS "}\x0c", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"{\x01" OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"\xef\xbb\xbf{" OK_FIELDS "}", 0, "body is not valid JSON", REASON_NOT_JSON},
    {"[1]", 0, "body is not a JSON object", REASON_NOT_OBJECT},
    {"\"paid\"", 0, "body is not a JSON object", REASON_NOT_OBJECT},
    {"null", 0, "body is not a JSON object", REASON_NOT_OBJECT},
    {"42", 0, "body is not a JSON object", REASON_NOT_OBJECT},
    {"{\"a\":1,\"a\":2," OK_FIELDS "}", 0, "duplicate key: a", REASON_DUPLICATE_KEY},
    {"{\"zz\":1," OK_FIELDS ",\"zz\":[]}", 0, "duplicate key: zz", REASON_DUPLICATE_KEY},
    {"{\"a\":1,\"\\u0061\":2," OK_FIELDS "}", 0, "duplicate key: a", REASON_DUPLICATE_KEY},
    {"{" OK_FIELDS ",\"status\":\"paid\"}", 0, "duplicate key: status", REASON_DUPLICATE_KEY},
    {"{\"\":1,\"\":2," OK_FIELDS "}", 0, "duplicate key: ", REASON_DUPLICATE_KEY},
    {"{\"a\\\"b\\n\":1,\"a\\\"b\\n\":2," OK_FIELDS "}", 0, "duplicate key: a?b?",
     REASON_DUPLICATE_KEY},
    {"{\"k\xc3\xa9\":1,\"k\xc3\xa9\":2," OK_FIELDS "}", 0, "duplicate key: k??",
     REASON_DUPLICATE_KEY},
    /*
     * SPEC §13: two keys giving one BAYAR_* name (upper case, any other byte
     * '_') are malformed, so that neither can pose as the other to a script.
     * The message names both, in body order.
     */
    {"{\"Invoice_ID\":\"PAY-OTHER-1\",\"STATUS\":\"expired\",\"FINAL_AMOUNT\":1," OK_FIELDS "}", 0,
     "ambiguous field names: FINAL_AMOUNT, final_amount", REASON_AMBIGUOUS_KEY},
    {"{\"A\":1,\"a\":2," OK_FIELDS "}", 0, "ambiguous field names: A, a", REASON_AMBIGUOUS_KEY},
    {"{" OK_FIELDS ",\"Status\":\"paid\"}", 0, "ambiguous field names: status, Status",
     REASON_AMBIGUOUS_KEY},
    {"{\"invoice-id\":\"x\"," OK_FIELDS "}", 0, "ambiguous field names: invoice-id, invoice_id",
     REASON_AMBIGUOUS_KEY},
    {"{\"invoice.id\":\"x\"," OK_FIELDS "}", 0, "ambiguous field names: invoice.id, invoice_id",
     REASON_AMBIGUOUS_KEY},
    {"{\"invoice id\":\"x\"," OK_FIELDS "}", 0, "ambiguous field names: invoice id, invoice_id",
     REASON_AMBIGUOUS_KEY},
    /* An escape spells the same key differently: still one variable. */
    {"{\"Invoice\\u005fId\":\"x\"," OK_FIELDS "}", 0,
     "ambiguous field names: Invoice_Id, invoice_id", REASON_AMBIGUOUS_KEY},
    /* Punctuation only, no letters involved; non-ASCII bytes fold to '_' each. */
    {"{\"a-b\":1,\"a.b\":2," OK_FIELDS "}", 0, "ambiguous field names: a-b, a.b",
     REASON_AMBIGUOUS_KEY},
    {"{\"k\xc3\xa9\":1,\"k__\":2," OK_FIELDS "}", 0, "ambiguous field names: k??, k__",
     REASON_AMBIGUOUS_KEY},
    /* Long keys are cut to fit the message. */
    {"{\"" LONG_KEY "\":1,\"" LONG_KEY "\":2," OK_FIELDS "}", 0,
     "duplicate key: 01234567890123456789012345678901234567890123456789012345678901234567890"
     "123456...",
     REASON_DUPLICATE_KEY},
    {"{\"status\":\"paid\",\"final_amount\":1}", 0, "missing field: invoice_id",
     REASON_MISSING_INVOICE},
    {"{}", 0, "missing field: invoice_id", REASON_MISSING_INVOICE},
    {"{\"Invoice_ID\":\"INV-1\",\"status\":\"paid\",\"final_amount\":1}", 0,
     "missing field: invoice_id", REASON_MISSING_INVOICE},
    {"{\"invoice_id\":5,\"status\":\"paid\",\"final_amount\":1}", 0, "invoice_id must be a string",
     REASON_INVOICE_TYPE},
    {"{\"invoice_id\":\"\",\"status\":\"paid\",\"final_amount\":1}", 0,
     "invoice_id must be a string", REASON_INVOICE_TYPE},
    {"{\"invoice_id\":null,\"status\":\"paid\",\"final_amount\":1}", 0,
     "invoice_id must be a string", REASON_INVOICE_TYPE},
    {"{\"invoice_id\":[\"INV-1\"],\"status\":\"paid\",\"final_amount\":1}", 0,
     "invoice_id must be a string", REASON_INVOICE_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"final_amount\":1}", 0, "missing field: status",
     REASON_MISSING_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":1,\"final_amount\":1}", 0, "missing field: status",
     REASON_MISSING_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":null,\"final_amount\":1}", 0, "missing field: status",
     REASON_MISSING_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"PAID\",\"final_amount\":1}", 0, "unknown status",
     REASON_UNKNOWN_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"refunded\",\"final_amount\":1}", 0, "unknown status",
     REASON_UNKNOWN_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"\",\"final_amount\":1}", 0, "unknown status",
     REASON_UNKNOWN_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid \",\"final_amount\":1}", 0, "unknown status",
     REASON_UNKNOWN_STATUS},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\"}", 0, "missing field: final_amount",
     REASON_MISSING_AMOUNT},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"Final_Amount\":1}", 0,
     "missing field: final_amount", REASON_MISSING_AMOUNT},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":null}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":true}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":[50123]}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":{}}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":1e400}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":-1E999}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"abc\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"1e5\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\" 50123\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"50123.\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\".5\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"+5\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"5,000\"}", 0,
     "final_amount must be a number", REASON_AMOUNT_TYPE},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":"
     "\"1234567890123456789012345678901234567890123456789012345678901234567890\"}",
     0, "final_amount must be a number", REASON_AMOUNT_TYPE},
};

static void test_bad_bodies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->body);
		struct pay_event ev;
		const char *err = NULL;

		if (event_parse(&ev, c->body, len, &err) != -1)
			fail_msg("case %zu (%s): accepted", i, c->body);
		if (err == NULL || strcmp(err, c->err) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, c->body,
			         err != NULL ? err : "(null)", c->err);
		if (ev.why != c->why)
			fail_msg("case %zu (%s): got reason %d, want %d", i, c->body, ev.why,
			         c->why);
		/* A failed parse leaves nothing behind, and event_release copes. */
		assert_null(ev.json);
		assert_null(ev.field_text);
		event_release(&ev);
	}
}

static char *nested(size_t levels)
{
	/* {"a":[[...]], ...}: the object is one level, the arrays the rest. */
	size_t arrays = levels - 1, len = 5 + 2 * arrays + sizeof(OK_FIELDS) + 2;
	char *s = malloc(len), *p = s;

	if (s == NULL)
		return NULL;
	p += sprintf(p, "{\"a\":");
	memset(p, '[', arrays);
	p += arrays;
	memset(p, ']', arrays);
	p += arrays;
	sprintf(p, ",%s}", OK_FIELDS);
	return s;
}

/* PHP's default depth of 512 admits 511 nested containers. */
static void test_nesting_limit(void **state)
{
	char *ok = nested(511), *deep = nested(512);
	struct pay_event ev;
	const char *err = NULL;

	(void)state;
	assert_non_null(ok);
	assert_non_null(deep);
	assert_int_equal(event_parse(&ev, ok, strlen(ok), &err), 0);
	event_release(&ev);
	assert_int_equal(event_parse(&ev, deep, strlen(deep), &err), -1);
	assert_string_equal(err, "body is not valid JSON");
	free(ok);
	free(deep);
}

struct good_case {
	const char *body;
	const char *final_amount, *amount, *timestamp, *signature, *event;
};

static const struct good_case good_cases[] = {
    {"{" OK_FIELDS "}", "50123", "", "", NULL, NULL},
    {" \t\r\n{ \"invoice_id\" : \"INV-1\" , \"status\" : \"paid\" , \"final_amount\" : 50123 "
     "}\r\n\t ",
     "50123", "", "", NULL, NULL},
    {"{\"event\":\"payment.paid\"," OK_FIELDS ",\"amount\":50000,\"timestamp\":1705312530,"
     "\"signature\":\"abc\"}",
     "50123", "50000", "1705312530", "abc", "payment.paid"},
    {"{" OK_FIELDS ",\"amount\":\"50000\",\"timestamp\":\"1705312530\"}", "50123", "50000",
     "1705312530", NULL, NULL},
    {"{" OK_FIELDS ",\"amount\":5e4,\"timestamp\":1705312530.0}", "50123", "50000", "1705312530",
     NULL, NULL},
    /* Optional fields of the wrong type are left empty, not errors. */
    {"{\"event\":1," OK_FIELDS ",\"amount\":null,\"timestamp\":true,\"signature\":5}", "50123", "",
     "", NULL, NULL},
    {"{" OK_FIELDS ",\"amount\":[1],\"timestamp\":{\"a\":1}}", "50123", "", "", NULL, NULL},
    {"{" OK_FIELDS ",\"amount\":1e999,\"timestamp\":\"0123456789012345678901234567890123\"}",
     "50123", "", "", NULL, NULL},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"-50123.50\"}", "-50123.50",
     "", "", NULL, NULL},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":\"007\"}", "007", "", "", NULL,
     NULL},
    {"{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":-5}", "-5", "", "", NULL,
     NULL},
    /* The edges of what PostgreSQL's numeric holds. */
    {"{\"x\":[1e131071,9.9e131071,-1E+0000131071,1e-16383,0e99,0.5e-16382]," OK_FIELDS "}", "50123",
     "", "", NULL, NULL},
    /* An escaped backslash before "u0000" is text, not a NUL escape. */
    {"{\"note\":\"C:\\\\u0000\"," OK_FIELDS "}", "50123", "", "", NULL, NULL},
    /* Only top-level keys must be unique; PHP keeps the last nested one. */
    {"{\"x\":{\"a\":1,\"a\":2}," OK_FIELDS "}", "50123", "", "", NULL, NULL},
    /* Keys that differ by more than case or punctuation give distinct BAYAR_* names. */
    {"{\"a\":1,\"ab\":2,\"a_\":3,\"_a\":4,\"invoice_id2\":5," OK_FIELDS "}", "50123", "", "", NULL,
     NULL},
    {"{\"list\":[1,2.5,-0,1e3,{\"k\":[true,false,null,\"\\\"]\"]}]," OK_FIELDS "}", "50123", "", "",
     NULL, NULL},
    {"{\"invoice_id\":\"PAY-\xe4\xb8\xad\xf0\x9f\x98\x80\",\"status\":\"pending\","
     "\"final_amount\":0.5}",
     "0.5", "", "", NULL, NULL},
};

static void test_good_bodies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		const struct good_case *c = &good_cases[i];
		size_t len = strlen(c->body);
		/* An exact-size copy: no NUL after the body for anyone to lean on. */
		char *body = malloc(len);
		struct pay_event ev;
		const char *err = NULL;

		assert_non_null(body);
		memcpy(body, c->body, len);
		if (event_parse(&ev, body, len, &err) != 0)
			fail_msg("case %zu (%s): %s", i, c->body, err);
		free(body);
		assert_string_equal(ev.final_amount, c->final_amount);
		assert_string_equal(ev.amount, c->amount);
		assert_string_equal(ev.body_timestamp, c->timestamp);
		if (c->signature == NULL)
			assert_null(ev.body_signature);
		else
			assert_string_equal(ev.body_signature, c->signature);
		if (c->event == NULL)
			assert_null(ev.event_name);
		else
			assert_string_equal(ev.event_name, c->event);
		assert_non_null(ev.invoice_id);
		assert_int_not_equal(ev.status, STATUS_UNKNOWN);
		assert_string_equal(ev.status_text, event_status_name(ev.status));
		event_release(&ev);
		event_release(&ev); /* idempotent */
	}
}

struct field_case {
	const char *name;
	const char *want; /* NULL: absent or not a scalar */
};

static void test_event_field(void **state)
{
	static const char body[] =
	    "{\"event\":\"payment.paid\",\"invoice_id\":\"PAY-admin-1\",\"status\":\"paid\","
	    "\"amount\":50000,\"final_amount\":50123.0,\"unique_code\":123,"
	    "\"paid_at\":\"2024-01-15 12:25:30\",\"paid_amount\":\"50123\","
	    "\"customer_name\":\"Siti \\u00e9\\u4e2d\",\"has_file\":true,\"has_content\":false,"
	    "\"note\":null,\"items\":[1],\"meta\":{\"a\":1},\"ratio\":0.1,\"big\":1e15,"
	    "\"huge\":1e999,\"neg_huge\":-1e999,\"negzero\":-0.0,\"intzero\":-0,"
	    "\"bigint\":99999999999999999999,\"max\":9223372036854775807,\"tiny\":1.5e-5,"
	    "\"empty\":\"\",\"Case\":\"upper\"}";
	static const struct field_case cases[] = {
	    {"event", "payment.paid"},
	    {"invoice_id", "PAY-admin-1"},
	    {"status", "paid"},
	    {"amount", "50000"},
	    {"final_amount", "50123"},
	    {"unique_code", "123"},
	    {"paid_at", "2024-01-15 12:25:30"},
	    {"paid_amount", "50123"},
	    {"customer_name", "Siti \xc3\xa9\xe4\xb8\xad"},
	    {"has_file", "1"},
	    {"has_content", ""},
	    {"note", ""},
	    {"items", NULL},
	    {"meta", NULL},
	    {"ratio", "0.1"},
	    {"big", "1.0E+15"},
	    {"huge", "INF"},
	    {"neg_huge", "-INF"},
	    {"negzero", "-0"},
	    {"intzero", "0"},
	    {"bigint", "1.0E+20"},
	    {"max", "9223372036854775807"},
	    {"tiny", "1.5E-5"},
	    {"empty", ""},
	    {"Case", "upper"},
	    {"case", NULL}, /* PHP's properties are case-sensitive */
	    {"CASE", NULL},
	    {"missing", NULL},
	    {"", NULL},
	};
	struct pay_event ev;
	const char *err = NULL;

	(void)state;
	if (event_parse(&ev, body, strlen(body), &err) != 0)
		fail_msg("%s", err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = event_field(&ev, cases[i].name);
		if (cases[i].want == NULL && got != NULL)
			fail_msg("%s: got \"%s\", want NULL", cases[i].name, got);
		if (cases[i].want != NULL && (got == NULL || strcmp(got, cases[i].want) != 0))
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name,
			         got != NULL ? got : "(null)", cases[i].want);
	}
	/* The same pointer twice: callers may keep it until event_release. */
	assert_ptr_equal(event_field(&ev, "big"), event_field(&ev, "big"));
	assert_null(event_field(&ev, NULL));
	assert_null(event_field(NULL, "status"));
	event_release(&ev);
	assert_null(event_field(&ev, "status"));
}

struct json_case {
	const char *json;
	const char *err;          /* NULL: accepted */
	const char *final_amount; /* when accepted */
};

/* Gateway answers arrive parsed: the literals are gone. */
static void test_event_from_json(void **state)
{
	static const struct json_case cases[] = {
	    {"{" OK_FIELDS "}", NULL, "50123"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":50123.0}", NULL, "50123"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":50123.5}", NULL,
	     "50123.5"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":1e15}", NULL,
	     "1000000000000000"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":1e16}", NULL, "1.0E+16"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":\"50123\"}", NULL,
	     "50123"},
	    {"{\"invoice_id\":\"I\",\"status\":\"paid\",\"final_amount\":1e400}",
	     "final_amount must be a number", NULL},
	    {"{\"invoice_id\":\"I\",\"status\":\"gone\",\"final_amount\":1}", "unknown status",
	     NULL},
	    {"{\"status\":\"paid\",\"final_amount\":1}", "missing field: invoice_id", NULL},
	    {"{\"a\":1,\"a\":1," OK_FIELDS "}", "duplicate key: a", NULL},
	    {"{\"Status\":\"expired\"," OK_FIELDS "}", "ambiguous field names: Status, status",
	     NULL},
	    {"{\"a\":\"\xff\"," OK_FIELDS "}", "body is not valid UTF-8", NULL},
	    {"[1]", "body is not a JSON object", NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct json_case *c = &cases[i];
		cJSON *obj = cJSON_Parse(c->json);
		struct pay_event ev;
		const char *err = NULL;
		int rc;

		assert_non_null(obj);
		rc = event_from_json(&ev, obj, &err); /* owns obj from here on */
		if (c->err == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", c->json, err);
			assert_string_equal(ev.final_amount, c->final_amount);
			assert_ptr_equal(ev.json, obj);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(err, c->err);
			/* The text is the typed reason's (or, for a key, starts with it). */
			assert_int_not_equal(ev.why, REASON_NONE);
			assert_memory_equal(err, verdict_reason_message(ev.why),
			                    strlen(verdict_reason_message(ev.why)));
		}
		event_release(&ev);
	}
	{
		struct pay_event ev;
		const char *err = NULL;
		assert_int_equal(event_from_json(&ev, NULL, &err), -1);
		assert_string_equal(err, "body is not a JSON object");
	}
}

struct utf8_case {
	const char *s;
	size_t len;
	bool want;
};

static void test_utf8(void **state)
{
	static const struct utf8_case cases[] = {
	    {"", 0, true},
	    {"plain ascii", 11, true},
	    {"a\0b", 3, true},
	    {"\xc3\xa9", 2, true},         /* U+00E9 */
	    {"\xe4\xb8\xad", 3, true},     /* U+4E2D */
	    {"\xf0\x9f\x98\x80", 4, true}, /* U+1F600 */
	    {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
	    {"\xed\x9f\xbf", 3, true},     /* U+D7FF */
	    {"\xee\x80\x80", 3, true},     /* U+E000 */
	    {"\xe0\xa0\x80", 3, true},     /* U+0800 */
	    {"\xf0\x90\x80\x80", 4, true}, /* U+10000 */
	    {"\x80", 1, false},            /* lone continuation */
	    {"\xbf", 1, false},
	    {"\xc0\x80", 2, false},         /* overlong NUL */
	    {"\xc1\xbf", 2, false},         /* overlong */
	    {"\xe0\x80\x80", 3, false},     /* overlong */
	    {"\xe0\x9f\xbf", 3, false},     /* overlong */
	    {"\xf0\x8f\xbf\xbf", 4, false}, /* overlong */
	    {"\xed\xa0\x80", 3, false},     /* surrogate D800 */
	    {"\xed\xbf\xbf", 3, false},     /* surrogate DFFF */
	    {"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, false},
	    {"\xf8\x88\x80\x80\x80", 5, false},
	    {"\xfe", 1, false},
	    {"\xff", 1, false},
	    {"\xc3", 1, false}, /* truncated */
	    {"\xe4\xb8", 2, false},
	    {"\xf0\x9f\x98", 3, false},
	    {"\xc3\x28", 2, false}, /* bad continuation */
	    {"\xe4\x28\xad", 3, false},
	    {"\xf0\x9f\x28\x80", 4, false},
	    {"ok\xc3\xa9ok\xff", 8, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (utf8_valid(cases[i].s, cases[i].len) != cases[i].want)
			fail_msg("case %zu: want %s", i, cases[i].want ? "valid" : "invalid");
}

static void test_status(void **state)
{
	static const struct {
		const char *text;
		enum pay_status want;
	} cases[] = {
	    {"pending", STATUS_PENDING},     {"paid", STATUS_PAID},    {"expired", STATUS_EXPIRED},
	    {"cancelled", STATUS_CANCELLED}, {"Paid", STATUS_UNKNOWN}, {"canceled", STATUS_UNKNOWN},
	    {"unknown", STATUS_UNKNOWN},     {"", STATUS_UNKNOWN},     {"paid\n", STATUS_UNKNOWN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(event_status_parse(cases[i].text), cases[i].want);
		if (cases[i].want != STATUS_UNKNOWN)
			assert_string_equal(event_status_name(cases[i].want), cases[i].text);
	}
	assert_int_equal(event_status_parse(NULL), STATUS_UNKNOWN);
	assert_string_equal(event_status_name(STATUS_UNKNOWN), "unknown");
	assert_string_equal(event_status_name((enum pay_status)99), "unknown");
	assert_int_equal(STATUS_MASK(STATUS_PAID), 1u << STATUS_PAID);
}

/* Many keys: duplicate detection must not be quadratic, nor miss one. */
static void test_many_keys(void **state)
{
	size_t n = 8000, cap = n * 16 + 128, pos = 0;
	char *body = malloc(cap);
	struct pay_event ev;
	const char *err = NULL;

	(void)state;
	assert_non_null(body);
	pos += (size_t)snprintf(body + pos, cap - pos, "{" OK_FIELDS);
	for (size_t i = 0; i < n; i++)
		pos += (size_t)snprintf(body + pos, cap - pos, ",\"k%zu\":%zu", i, i);
	snprintf(body + pos, cap - pos, "}");
	assert_int_equal(event_parse(&ev, body, strlen(body), &err), 0);
	assert_string_equal(event_field(&ev, "k7999"), "7999");
	event_release(&ev);
	snprintf(body + pos, cap - pos, ",\"k4321\":0}");
	assert_int_equal(event_parse(&ev, body, strlen(body), &err), -1);
	assert_string_equal(err, "duplicate key: k4321");
	free(body);
}

/* The BAYAR_* name of a field, the one folding both event_parse and the exec action use. */
static void test_var_name(void **state)
{
	static const char *const cases[][2] = {
	    {"invoice_id", "BAYAR_INVOICE_ID"}, {"Invoice-ID", "BAYAR_INVOICE_ID"},
	    {"a.b c", "BAYAR_A_B_C"},           {"k\xc3\xa9", "BAYAR_K__"},
	    {"Mixed9", "BAYAR_MIXED9"},         {"", "BAYAR_"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *v = event_var_name(cases[i][0]);

		assert_string_equal(v, cases[i][1]);
		free(v);
	}
}

static void test_release_null(void **state)
{
	struct pay_event ev;

	(void)state;
	memset(&ev, 0, sizeof(ev));
	event_release(NULL);
	event_release(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_bodies),      cmocka_unit_test(test_nesting_limit),
	    cmocka_unit_test(test_good_bodies),     cmocka_unit_test(test_event_field),
	    cmocka_unit_test(test_event_from_json), cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_status),          cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_release_null),    cmocka_unit_test(test_var_name),
	};

	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
