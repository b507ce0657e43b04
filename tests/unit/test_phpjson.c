/*
 * test_phpjson.c: the PHP json_decode rules on their own: which texts pass,
 * which are refused and why, and the literal text recovered for each
 * top-level member (test_event.c covers them through event_parse).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "phpjson.h"

struct members_case {
	const char *text;
	size_t n; /* members cJSON would have found */
	enum phpjson_check want;
	const char *spans[4]; /* the value texts, when PHPJSON_OK */
};

static void test_members(void **state)
{
	static const struct members_case cases[] = {
	    {"{}", 0, PHPJSON_OK, {NULL}},
	    {" {\"a\":50123.0,\"b\" : \"x\\\"y\" , \"c\":[1,{\"d\":-0}]}\n",
	     3,
	     PHPJSON_OK,
	     {"50123.0", "\"x\\\"y\"", "[1,{\"d\":-0}]"}},
	    {"{\"a\":1e15,\"b\":true,\"c\":null}", 3, PHPJSON_OK, {"1e15", "true", "null"}},
	    {"{\"a\":01}", 1, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":+1}", 1, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":1.}", 1, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":\"tab\there\"}", 1, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":\"\\u00zz\"}", 1, PHPJSON_INVALID, {NULL}},
	    {"\x0b{\"a\":1}", 1, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":1}", 2, PHPJSON_INVALID, {NULL}}, /* not the members cJSON saw */
	    {"[1]", 0, PHPJSON_INVALID, {NULL}},
	    {"{\"a\":1e131072}", 1, PHPJSON_NUMBER_RANGE, {NULL}},
	    {"{\"a\":[1e-16384]}", 1, PHPJSON_NUMBER_RANGE, {NULL}},
	    {"{\"a\":1e131071}", 1, PHPJSON_OK, {"1e131071"}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct members_case *c = &cases[i];
		struct phpjson_span spans[4];
		enum phpjson_check got = phpjson_members(c->text, strlen(c->text), spans, c->n);

		if (got != c->want)
			fail_msg("case %zu (%s): got %d, want %d", i, c->text, got, c->want);
		for (size_t k = 0; got == PHPJSON_OK && k < c->n; k++) {
			if (spans[k].len != strlen(c->spans[k]) ||
			    memcmp(c->text + spans[k].off, c->spans[k], spans[k].len) != 0)
				fail_msg("case %zu member %zu: got %.*s, want %s", i, k,
				         (int)spans[k].len, c->text + spans[k].off, c->spans[k]);
		}
	}
}

static void test_nul_escape(void **state)
{
	(void)state;
	assert_true(phpjson_has_nul_escape("{\"a\":\"\\u0000\"}", 14));
	assert_true(phpjson_has_nul_escape("{\"\\u0000\":1}", 12));
	/* An escaped backslash before "u0000" is text. */
	assert_false(phpjson_has_nul_escape("{\"a\":\"\\\\u0000\"}", 15));
	/* Outside a string it is not an escape (and not JSON either). */
	assert_false(phpjson_has_nul_escape("\\u0000", 6));
	/* Cut short: no room for the four digits. */
	assert_false(phpjson_has_nul_escape("\"\\u000", 6));
}

static void test_skip_ws(void **state)
{
	(void)state;
	assert_int_equal(phpjson_skip_ws(" \t\r\nx", 5, 0), 4);
	assert_int_equal(phpjson_skip_ws("\x0bx", 2, 0), 0); /* not JSON whitespace */
	assert_int_equal(phpjson_skip_ws("  ", 2, 1), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_nul_escape),
	    cmocka_unit_test(test_skip_ws),
	};

	return cmocka_run_group_tests_name("phpjson", tests, NULL, NULL);
}
