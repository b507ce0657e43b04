/*
 * test_action_http.c: the http action's templates (SPEC §9): {field}
 * URL-encoded in a url and JSON-escaped in a body, hostile values
 * included; literal braces of a JSON body stay; a name bayar.gg does not
 * send is refused at load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "action_http.h"

static const char hostile[] = "a\"b'c&d=e/f?g#h\\i\nj\tk é 🙂 %20 {x}";

static const char *lookup(void *arg, const char *name)
{
	(void)arg;
	if (strcmp(name, "customer_name") == 0)
		return hostile;
	if (strcmp(name, "invoice_id") == 0)
		return "PAY-1";
	if (strcmp(name, "description") == 0)
		return NULL; /* known but absent: "" */
	return "?";
}

static void test_url_escape(void **state)
{
	char *s;

	(void)state;
	s = action_http_template_expand("https://shop.test/o/{invoice_id}?n={customer_name}&d="
	                                "{description}",
	                                HTTP_ESCAPE_URL, lookup, NULL);
	assert_string_equal(s, "https://shop.test/o/PAY-1?n=a%22b%27c%26d%3De%2Ff%3Fg%23h%5Ci%0Aj%"
	                       "09k%20%C3%A9%20%F0%9F%99%82%20%2520%20%7Bx%7D&d=");
	free(s);
}

static void test_json_escape(void **state)
{
	char *s;

	(void)state;
	s = action_http_template_expand("{\"note\": \"{customer_name}\", \"id\": \"{invoice_id}\"}",
	                                HTTP_ESCAPE_JSON, lookup, NULL);
	assert_string_equal(s,
	                    "{\"note\": \"a\\\"b'c&d=e/f?g#h\\\\i\\nj\\u0009k é 🙂 %20 {x}\", "
	                    "\"id\": \"PAY-1\"}");
	free(s);
}

static void test_check(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(action_http_template_check("https://x/{invoice_id}/{bayarhook_job_id}",
	                                            err, sizeof(err)),
	                 0);
	/* Braces that are no placeholder are text: a JSON body's own. */
	assert_int_equal(
	    action_http_template_check("{\"a\": {\"b\": 1}, \"c\": \"{ x }\"}", err, sizeof(err)),
	    0);
	assert_int_equal(action_http_template_check("{\"a\": \"{order_id}\"}", err, sizeof(err)),
	                 -1);
	assert_string_equal(err, "unknown field {order_id}: bayar.gg does not send it");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_escape),
	    cmocka_unit_test(test_json_escape),
	    cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
