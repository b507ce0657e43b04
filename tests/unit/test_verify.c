/*
 * test_verify.c: the signature rules against the vectors made by the
 * gateway's own PHP sample (tests/vectors/signatures.jsonl, one cmocka test
 * per vector), plus PHP amount text, replay window and secret rotation.
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
#include "phpnum.h"
#include "verify.h"

#define VECTORS_DEFAULT "vectors/signatures.jsonl"

struct vector {
	char name[64];
	char *secret, *timestamp, *signed_text, *signature, *body;
};

static struct vector *vectors;
static size_t nvectors;

/* ---- vector file ---- */

static char *dup_member(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(item))
		return NULL;
	return strdup(item->valuestring);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL)
		return NULL;
	do {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Returns the number of vectors loaded, or -1 with a message on stderr. */
static int load_vectors(void)
{
	const char *env = getenv("BAYARHOOK_VECTORS");
	const char *candidates[] = {env, VECTORS_DEFAULT, "tests/" VECTORS_DEFAULT};
	char *text = NULL, *line, *save = NULL;
	const char *path = NULL;
	size_t len = 0, lineno = 0;

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]) && text == NULL; i++) {
		/* An explicit BAYARHOOK_VECTORS must be used, not silently skipped. */
		if (candidates[i] == NULL || (env != NULL && candidates[i] != env))
			continue;
		path = candidates[i];
		text = read_file(path, &len);
	}
	if (text == NULL) {
		fprintf(stderr,
		        "cannot read vectors (%s); run from tests/ or set "
		        "BAYARHOOK_VECTORS\n",
		        path != NULL ? path : VECTORS_DEFAULT);
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		cJSON *obj;
		struct vector *v, *nv;
		const cJSON *name;

		lineno++;
		if (line[strspn(line, " \t\r")] == '\0')
			continue;
		obj = cJSON_Parse(line);
		nv = realloc(vectors, (nvectors + 1) * sizeof(*vectors));
		if (obj == NULL || nv == NULL) {
			fprintf(stderr, "%s:%zu: not a JSON line\n", path, lineno);
			cJSON_Delete(obj);
			free(text);
			return -1;
		}
		vectors = nv;
		v = &vectors[nvectors++];
		memset(v, 0, sizeof(*v));
		name = cJSON_GetObjectItemCaseSensitive(obj, "name");
		snprintf(v->name, sizeof(v->name), "vector:%s",
		         cJSON_IsString(name) ? name->valuestring : "?");
		v->secret = dup_member(obj, "secret");
		v->timestamp = dup_member(obj, "timestamp");
		v->signed_text = dup_member(obj, "signed");
		v->signature = dup_member(obj, "signature");
		v->body = dup_member(obj, "body");
		cJSON_Delete(obj);
		if (!v->secret || !v->timestamp || !v->signed_text || !v->signature || !v->body) {
			fprintf(stderr, "%s:%zu: missing member\n", path, lineno);
			free(text);
			return -1;
		}
	}
	free(text);
	return (int)nvectors;
}

static void free_vectors(void)
{
	for (size_t i = 0; i < nvectors; i++) {
		free(vectors[i].secret);
		free(vectors[i].timestamp);
		free(vectors[i].signed_text);
		free(vectors[i].signature);
		free(vectors[i].body);
	}
	free(vectors);
}

/* ---- one test per vector ---- */

/* A different character of the same kind, so the text stays plausible. */
static char other_char(char c)
{
	if (c >= '0' && c <= '9')
		return c == '9' ? '0' : (char)(c + 1);
	if (c >= 'a' && c <= 'f')
		return c == 'f' ? 'a' : (char)(c + 1);
	if (c >= 'A' && c <= 'Z')
		return c == 'Z' ? 'A' : (char)(c + 1);
	return c == 'x' ? 'y' : 'x';
}

enum part {
	PART_INVOICE,
	PART_STATUS,
	PART_AMOUNT,
	PART_TIMESTAMP,
	PART_SIGNATURE,
	PART_SECRET,
	PART_COUNT,
};
static const char *const part_names[PART_COUNT] = {"invoice_id", "status",    "final_amount",
                                                   "timestamp",  "signature", "secret"};

static void test_vector(void **state)
{
	const struct vector *v = *state;
	struct pay_event ev;
	const char *err = NULL;
	char *msg, sig[65];
	size_t msglen;

	if (event_parse(&ev, v->body, strlen(v->body), &err) != 0)
		fail_msg("%s: event_parse: %s", v->name, err);

	/* The message PHP signed, rebuilt from what we parsed. */
	msglen = strlen(ev.invoice_id) + strlen(ev.status_text) + strlen(ev.final_amount) +
	         strlen(v->timestamp) + 4;
	msg = malloc(msglen);
	assert_non_null(msg);
	snprintf(msg, msglen, "%s|%s|%s|%s", ev.invoice_id, ev.status_text, ev.final_amount,
	         v->timestamp);
	assert_string_equal(msg, v->signed_text);
	free(msg);

	verify_sign(v->secret, ev.invoice_id, ev.status_text, ev.final_amount, v->timestamp, sig);
	assert_string_equal(sig, v->signature);
	{
		const char *secrets[] = {v->secret};
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, v->signature),
		                 0);
	}

	/* Every one-character change of every input must break it. */
	for (int p = 0; p < PART_COUNT; p++) {
		const char *orig[PART_COUNT] = {ev.invoice_id, ev.status_text, ev.final_amount,
		                                v->timestamp,  v->signature,   v->secret};
		size_t n = strlen(orig[p]);

		for (size_t i = 0; i < n; i++) {
			char *m = strdup(orig[p]);
			const char *in[PART_COUNT];
			const char *secrets[1];

			assert_non_null(m);
			m[i] = other_char(m[i]);
			memcpy(in, orig, sizeof(in));
			in[p] = m;
			secrets[0] = in[PART_SECRET];
			if (verify_signature(secrets, 1, in[PART_INVOICE], in[PART_STATUS],
			                     in[PART_AMOUNT], in[PART_TIMESTAMP],
			                     in[PART_SIGNATURE]) != -1)
				fail_msg("%s: changing %s[%zu] to '%c' still verifies", v->name,
				         part_names[p], i, m[i]);
			free(m);
		}
	}
	event_release(&ev);
}

/* The signature header may arrive in upper case; length must be exact. */
static void test_vector_signature_forms(void **state)
{
	(void)state;
	for (size_t k = 0; k < nvectors; k++) {
		const struct vector *v = &vectors[k];
		const char *secrets[] = {v->secret};
		struct pay_event ev;
		const char *err;
		char up[65], longer[66];

		assert_int_equal(event_parse(&ev, v->body, strlen(v->body), &err), 0);
		for (size_t i = 0; i < 65; i++)
			up[i] = (char)(v->signature[i] >= 'a' && v->signature[i] <= 'f'
			                   ? v->signature[i] - 'a' + 'A'
			                   : v->signature[i]);
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, up),
		                 0);
		snprintf(longer, sizeof(longer), "%s0", v->signature);
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, longer),
		                 -1);
		up[63] = '\0';
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, up),
		                 -1);
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, ""),
		                 -1);
		assert_int_equal(verify_signature(secrets, 1, ev.invoice_id, ev.status_text,
		                                  ev.final_amount, v->timestamp, NULL),
		                 -1);
		event_release(&ev);
	}
}

/* ---- rotation ---- */

static void test_rotation(void **state)
{
	const struct vector *v = &vectors[0];
	struct pay_event ev;
	const char *err;
	const char *rotated[] = {"whsec_new_not_yet_used", v->secret};
	const char *current[] = {v->secret, "whsec_old"};
	const char *neither[] = {"whsec_a", "whsec_b", "whsec_c"};
	const char *same[] = {v->secret, v->secret};

	(void)state;
	assert_int_equal(event_parse(&ev, v->body, strlen(v->body), &err), 0);
#define CHECK(list, n, want)                                                                       \
	assert_int_equal(verify_signature(list, n, ev.invoice_id, ev.status_text, ev.final_amount, \
	                                  v->timestamp, v->signature),                             \
	                 want)
	CHECK(rotated, 2, 1);
	CHECK(current, 2, 0);
	CHECK(neither, 3, -1);
	CHECK(same, 2, 0); /* the first match wins */
	CHECK(rotated, 1, -1);
	CHECK(rotated, 0, -1);
#undef CHECK
	event_release(&ev);
}

/* ---- amount text ---- */

struct amount_case {
	const char *literal; /* final_amount as written in the body */
	const char *want;    /* PHP's (string) of the decoded value */
};

/* Expectations checked against PHP 8.2: (string)json_decode($literal). */
static const struct amount_case amount_cases[] = {
    {"50123", "50123"},
    {"50123.0", "50123"},
    {"50123.5", "50123.5"},
    {"\"50123\"", "50123"},
    {"\"50123.50\"", "50123.50"}, /* a string is used as is */
    {"1.0e6", "1000000"},
    {"1E6", "1000000"},
    {"1e14", "1.0E+14"},
    {"1e15", "1.0E+15"},
    {"100000000000000", "100000000000000"}, /* an int stays digits */
    {"1000000000000000", "1000000000000000"},
    {"0.1", "0.1"},
    {"0.30000000000000004", "0.3"},
    {"1.5e-5", "1.5E-5"},
    {"0.0001", "0.0001"},
    {"0.00001", "1.0E-5"},
    {"-0", "0"},
    {"-0.0", "-0"},
    {"0", "0"},
    {"-42", "-42"},
    {"123456789012345678", "123456789012345678"},
    {"9223372036854775807", "9223372036854775807"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775808", "9.2233720368548E+18"},
    {"-9223372036854775809", "-9.2233720368548E+18"},
    {"99999999999999999999", "1.0E+20"},
    {"123456789012345.0", "1.2345678901234E+14"}, /* ties to even */
    {"12345678901234.5", "12345678901234"},
    {"999999999999999.5", "1.0E+15"},
    {"1e-400", "0"},
    {"2.5e+3", "2500"},
    {"50123.456789012345", "50123.456789012"},
};

static void test_amount_text(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(amount_cases) / sizeof(amount_cases[0]); i++) {
		const struct amount_case *c = &amount_cases[i];
		char body[256];
		struct pay_event ev;
		const char *err = NULL;

		snprintf(body, sizeof(body),
		         "{\"invoice_id\":\"INV-1\",\"status\":\"paid\",\"final_amount\":%s,"
		         "\"amount\":%s}",
		         c->literal, c->literal);
		if (event_parse(&ev, body, strlen(body), &err) != 0)
			fail_msg("%s: %s", c->literal, err);
		if (strcmp(ev.final_amount, c->want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->literal, ev.final_amount,
			         c->want);
		assert_string_equal(ev.amount, c->want);
		assert_string_equal(event_field(&ev, "final_amount"), c->want);
		event_release(&ev);
	}
}

struct float_case {
	double v;
	const char *want;
};

static void test_php_float(void **state)
{
	static const struct float_case cases[] = {
	    {0.0, "0"},
	    {-0.0, "-0"},
	    {1.0, "1"},
	    {50123.0, "50123"},
	    {50123.5, "50123.5"},
	    {0.5, "0.5"},
	    {1e14, "1.0E+14"},
	    {99999999999999.0, "99999999999999"},
	    {1e15, "1.0E+15"},
	    {-2e20, "-2.0E+20"},
	    {1e100, "1.0E+100"},
	    {1.5e-5, "1.5E-5"},
	    {0.0001, "0.0001"},
	    {0.00012345, "0.00012345"},
	    {1e-5, "1.0E-5"},
	    {0.1 + 0.2, "0.3"},
	    {1.0 / 3.0, "0.33333333333333"},
	    {2.0 / 3.0, "0.66666666666667"},
	    {5e-324, "4.9406564584125E-324"},
	    {1.7976931348623157e308, "1.7976931348623E+308"},
	    {9.999999999999995e14, "1.0E+15"},
	    {-1.25, "-1.25"},
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		phpnum_float(cases[i].v, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("%.17g: got \"%s\", want \"%s\"", cases[i].v, out, cases[i].want);
	}
	phpnum_float(1e15, out, 4); /* truncates, never overruns */
	assert_string_equal(out, "1.0");
}

/* verify_amount_text on items that are not numbers or strings, and limits. */
static void test_amount_text_types(void **state)
{
	cJSON *arr = cJSON_Parse("[true,false,null,[1],{\"a\":1},\"x\",12.5,1e400,"
	                         "9007199254740993,-0.0]");
	char out[64];
	const cJSON *it;

	(void)state;
	assert_non_null(arr);
	for (int i = 0; i < 5; i++)
		assert_int_equal(verify_amount_text(cJSON_GetArrayItem(arr, i), NULL, out, 64), -1);
	it = cJSON_GetArrayItem(arr, 5);
	assert_int_equal(verify_amount_text(it, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "x");
	assert_int_equal(verify_amount_text(it, NULL, out, 1), -1); /* too long */
	it = cJSON_GetArrayItem(arr, 6);
	assert_int_equal(verify_amount_text(it, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "12.5");
	assert_int_equal(verify_amount_text(it, "12.5", out, 4), -1);
	assert_int_equal(verify_amount_text(it, "12.5x", out, sizeof(out)), -1);
	assert_int_equal(verify_amount_text(it, "", out, sizeof(out)), -1);
	assert_int_equal(verify_amount_text(it, "-", out, sizeof(out)), -1);
	assert_int_equal(verify_amount_text(it, "1-2", out, sizeof(out)), -1);
	it = cJSON_GetArrayItem(arr, 7); /* 1e400: INF */
	assert_int_equal(verify_amount_text(it, NULL, out, sizeof(out)), -1);
	assert_int_equal(verify_amount_text(it, "1e400", out, sizeof(out)), -1);
	/* Without the literal, 2^53+1 is already a double: PHP float text. */
	it = cJSON_GetArrayItem(arr, 8);
	assert_int_equal(verify_amount_text(it, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "9.007199254741E+15");
	assert_int_equal(verify_amount_text(it, "9007199254740993", out, sizeof(out)), 0);
	assert_string_equal(out, "9007199254740993");
	it = cJSON_GetArrayItem(arr, 9);
	assert_int_equal(verify_amount_text(it, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "0");
	assert_int_equal(verify_amount_text(NULL, NULL, out, sizeof(out)), -1);
	cJSON_Delete(arr);
}

/* ---- replay window ---- */

struct ts_case {
	const char *text;
	int64_t now, window;
	bool want;
};

static void test_timestamp(void **state)
{
	static const struct ts_case cases[] = {
	    {"1705312530", 1705312530, 300, true},
	    {"1705312230", 1705312530, 300, true},  /* now - window */
	    {"1705312830", 1705312530, 300, true},  /* now + window */
	    {"1705312229", 1705312530, 300, false}, /* now - window - 1 */
	    {"1705312831", 1705312530, 300, false}, /* now + window + 1 */
	    {"01705312530", 1705312530, 300, true},
	    {"0", 0, 0, true},
	    {"-0", 0, 0, true},
	    {"-5", 0, 5, true},
	    {"-6", 0, 5, false},
	    {"", 1705312530, 300, false},
	    {"-", 1705312530, 300, false},
	    {"abc", 1705312530, 300, false},
	    {"1705312530x", 1705312530, 300, false},
	    {" 1705312530", 1705312530, 300, false},
	    {"1705312530 ", 1705312530, 300, false},
	    {"+1705312530", 1705312530, 300, false},
	    {"1705312530.0", 1705312530, 300, false},
	    {"1.7e9", 1705312530, 300, false},
	    {"--1", 1705312530, 300, false},
	    {"0x10", 16, 300, false},
	    {"9223372036854775807", INT64_MAX, 0, true},
	    {"9223372036854775808", INT64_MAX, INT64_MAX, false},
	    {"-9223372036854775808", INT64_MIN, 0, true},
	    {"-9223372036854775809", INT64_MIN, INT64_MAX, false},
	    {"00000000000000000001", 1, 300, false}, /* 20 digits */
	    {"99999999999999999999", 1705312530, 300, false},
	    /* Distances beyond int64 must not overflow. */
	    {"-9223372036854775808", INT64_MAX, INT64_MAX, false},
	    {"9223372036854775807", INT64_MIN, INT64_MAX, false},
	    {"9223372036854775807", 0, INT64_MAX, true},
	    {"9223372036854775807", -1, INT64_MAX, false},
	    {"1705312530", 1705312530, -1, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ts_case *c = &cases[i];
		if (verify_timestamp(c->text, c->now, c->window) != c->want)
			fail_msg("\"%s\" now=%lld window=%lld: want %s", c->text, (long long)c->now,
			         (long long)c->window, c->want ? "pass" : "fail");
	}
	assert_false(verify_timestamp(NULL, 0, 300));
}

/* Long inputs take the heap path of verify_sign and must agree with it. */
static void test_sign_long_input(void **state)
{
	size_t n = 5000;
	char *inv = malloc(n + 1), sig[65], sig2[65];
	const char *secrets[] = {"k"};

	(void)state;
	assert_non_null(inv);
	memset(inv, 'A', n);
	inv[n] = '\0';
	verify_sign("k", inv, "paid", "1", "2", sig);
	assert_int_equal(strlen(sig), 64);
	assert_int_equal(verify_signature(secrets, 1, inv, "paid", "1", "2", sig), 0);
	inv[n - 1] = 'B';
	verify_sign("k", inv, "paid", "1", "2", sig2);
	assert_string_not_equal(sig, sig2);
	free(inv);
	/* Known answer: printf 'a|paid|1|2' | openssl dgst -sha256 -hmac k */
	verify_sign("k", "a", "paid", "1", "2", sig);
	assert_string_equal(sig,
	                    "44bf5c4a7b9986a4eabcfbe6f9ea8220fa63188d3d09b79860d779945878a6a8");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector_signature_forms),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_amount_text),
	    cmocka_unit_test(test_php_float),
	    cmocka_unit_test(test_amount_text_types),
	    cmocka_unit_test(test_timestamp),
	    cmocka_unit_test(test_sign_long_input),
	};
	struct CMUnitTest *vtests;
	int failed;

	if (load_vectors() <= 0) {
		fprintf(stderr, "no signature vectors loaded\n");
		free_vectors();
		return 1;
	}
	vtests = calloc(nvectors, sizeof(*vtests));
	if (vtests == NULL)
		return 1;
	for (size_t i = 0; i < nvectors; i++) {
		vtests[i].name = vectors[i].name;
		vtests[i].test_func = test_vector;
		vtests[i].initial_state = &vectors[i];
	}
	failed = _cmocka_run_group_tests("signature vectors", vtests, nvectors, NULL, NULL);
	failed += cmocka_run_group_tests_name("verify", tests, NULL, NULL);
	free(vtests);
	free_vectors();
	return failed != 0;
}
