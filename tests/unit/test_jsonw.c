/* test_jsonw.c: the store's JSON writer: escaping, sanitizing, nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "jsonw.h"

struct str_case {
	const char *in;
	size_t len;
	const char *want; /* the JSON text of the value */
};

#define S(lit) lit, sizeof(lit) - 1

static const struct str_case str_cases[] = {
    {S(""), "\"\""},
    {S("plain ascii 123"), "\"plain ascii 123\""},
    {S("q\"b\\s/"), "\"q\\\"b\\\\s/\""},
    {S("tab\tnl\ncr\r\x01\x1f"), "\"tab\\u0009nl\\u000acr\\u000d\\u0001\\u001f\""},
    {S("Rp 50.000 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"Rp 50.000 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    /* NUL, a lone continuation byte, a truncated sequence, an overlong
     * encoding, a surrogate: each invalid byte becomes U+FFFD. */
    {S("a\0b"), "\"a\xef\xbf\xbd"
                "b\""},
    {S("\x80x"), "\"\xef\xbf\xbdx\""},
    {S("\xe2\x82"), "\"\xef\xbf\xbd\xef\xbf\xbd\""},
    {S("\xc0\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\""},
    {S("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    {S("\x7f\xff"), "\"\x7f\xef\xbf\xbd\""},
};

static void test_strings(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(str_cases) / sizeof(str_cases[0]); i++) {
		const struct str_case *c = &str_cases[i];
		struct jsonw w;
		char want[128], *got;

		jsonw_begin(&w);
		jsonw_str(&w, "k", c->in, c->len);
		got = jsonw_finish(&w);
		snprintf(want, sizeof(want), "{\"k\":%s}", c->want);
		assert_non_null(got);
		assert_string_equal(got, want);
		free(got);
	}
}

/* Whatever goes in, what comes out parses, and valid text round-trips. */
static void test_round_trip(void **state)
{
	static const char body[] =
	    "{\"invoice_id\":\"INV-1\",\"note\":\"a \\\"quoted\\\" \xc3\xa9\"}";
	struct jsonw w;
	cJSON *o, *h;
	char *text;

	(void)state;
	jsonw_begin(&w);
	jsonw_cstr(&w, "invoice_id", "INV-\"1\"");
	jsonw_cstr(&w, "skipped", NULL);
	jsonw_int(&w, "http_status", 401);
	jsonw_int(&w, "neg", -9000000000LL);
	jsonw_bool(&w, "hold", true);
	jsonw_bool(&w, "audit", false);
	jsonw_raw(&w, "event", body, strlen(body));
	jsonw_begin_object(&w, "headers");
	jsonw_end_object(&w);
	jsonw_begin_object(&w, "more");
	jsonw_cstr(&w, "X-A", "1");
	jsonw_cstr(&w, "X-\x01", "\x02");
	jsonw_end_object(&w);
	jsonw_cstr(&w, "after", "x");
	text = jsonw_finish(&w);
	assert_non_null(text);
	o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "invoice_id")->valuestring, "INV-\"1\"");
	assert_null(cJSON_GetObjectItem(o, "skipped"));
	assert_int_equal(cJSON_GetObjectItem(o, "http_status")->valueint, 401);
	assert_true(cJSON_GetObjectItem(o, "neg")->valuedouble == -9000000000.0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "hold")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "audit")));
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(o, "event"), "note")->valuestring,
	    "a \"quoted\" \xc3\xa9");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "headers")), 0);
	h = cJSON_GetObjectItem(o, "more");
	assert_int_equal(cJSON_GetArraySize(h), 2);
	assert_string_equal(cJSON_GetObjectItem(h, "X-\x01")->valuestring, "\x02");
	assert_string_equal(cJSON_GetObjectItem(o, "after")->valuestring, "x");
	cJSON_Delete(o);
	free(text);
}

/* Long values grow the buffer; jsonw_take leaves an unclosed prefix. */
static void test_growth_and_take(void **state)
{
	size_t n = 100000;
	char *big = malloc(n), *text;
	struct jsonw w = {0};

	(void)state;
	assert_non_null(big);
	memset(big, '"', n);
	jsonw_put(&w, "[", 1);
	jsonw_put(&w, "1", 1);
	text = jsonw_take(&w);
	assert_string_equal(text, "[1");
	free(text);
	jsonw_begin(&w);
	jsonw_str(&w, "q", big, n);
	text = jsonw_finish(&w);
	assert_non_null(text);
	assert_int_equal(strlen(text), strlen("{\"q\":\"\"}") + 2 * n);
	free(text);
	free(big);
}

/* An array of strings: elements take key NULL. */
static void test_array(void **state)
{
	struct jsonw w;
	char *text;

	(void)state;
	jsonw_begin_array(&w);
	text = jsonw_finish_array(&w);
	assert_string_equal(text, "[]");
	free(text);
	jsonw_begin_array(&w);
	jsonw_cstr(&w, NULL, "PAY-1");
	jsonw_cstr(&w, NULL, "a\"b");
	jsonw_int(&w, NULL, 3);
	text = jsonw_finish_array(&w);
	assert_string_equal(text, "[\"PAY-1\",\"a\\\"b\",3]");
	free(text);
}

/* A list inside an object, and members after it. */
static void test_list_in_object(void **state)
{
	struct jsonw w;
	char *text;

	(void)state;
	jsonw_begin(&w);
	jsonw_begin_list(&w, "paid");
	jsonw_cstr(&w, NULL, "ship");
	jsonw_cstr(&w, NULL, "mail");
	jsonw_end_list(&w);
	jsonw_begin_list(&w, "expired");
	jsonw_end_list(&w);
	jsonw_int(&w, "n", 2);
	text = jsonw_finish(&w);
	assert_string_equal(text, "{\"paid\":[\"ship\",\"mail\"],\"expired\":[],\"n\":2}");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strings),         cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_growth_and_take), cmocka_unit_test(test_array),
	    cmocka_unit_test(test_list_in_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
