/*
 * test_gateway.c: the pure parts of the gateway client and the reconciler:
 * HTTP status classes, Retry-After, check-payment and list-payments bodies
 * (SPEC §1 shapes), and the WIB dates of the sweep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/http.h>

#include "gateway.h"
#include "reconcile.h"

static void test_classify(void **state)
{
	static const struct {
		int status;
		enum gateway_error e;
	} cases[] = {
	    {200, GATEWAY_OK},
	    {204, GATEWAY_OK},
	    {301, GATEWAY_ERR_HTTP},
	    {400, GATEWAY_ERR_HTTP},
	    {401, GATEWAY_ERR_AUTH},
	    {403, GATEWAY_ERR_AUTH},
	    {404, GATEWAY_ERR_NOT_FOUND},
	    {429, GATEWAY_ERR_RATE_LIMITED},
	    {500, GATEWAY_ERR_SERVER},
	    {503, GATEWAY_ERR_SERVER},
	    {0, GATEWAY_ERR_TRANSPORT},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(gateway_classify(cases[i].status), cases[i].e);
	assert_string_equal(gateway_error_name(GATEWAY_ERR_RATE_LIMITED), "rate_limited");
}

static void test_retry_after(void **state)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const time_t then = 784111777;
	static const struct {
		const char *value;
		long secs;
	} cases[] = {
	    {NULL, -1},
	    {"", -1},
	    {"  ", -1},
	    {"0", 0},
	    {"7", 7},
	    {" 120 ", 120},
	    {"-1", -1},
	    {"1.5", -1},
	    {"soon", -1},
	    {"99999999999999999999", 100000000L},
	    {"Sun, 06 Nov 1994 08:49:47 GMT", 10},
	    {"Sunday, 06-Nov-94 08:50:37 GMT", 60},
	    {"Sun Nov  6 08:49:40 1994", 3},
	    {"Sun, 06 Nov 1994 08:00:00 GMT", 0}, /* in the past: now */
	    {"Sun, 06 Nov 1994 08:49:47 GMT trailing", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long got = gateway_retry_after(cases[i].value, then);

		if (got != cases[i].secs)
			fail_msg("Retry-After \"%s\": got %ld, want %ld",
			         cases[i].value ? cases[i].value : "(null)", got, cases[i].secs);
	}
}

#define CHECK_OK                                                                                   \
	"{\"success\":true,\"invoice_id\":\"PAY-1\",\"status\":\"paid\",\"amount\":50000,"         \
	"\"final_amount\":50123.0,\"payment_method\":\"QRIS\",\"paid_at\":\"2024-01-15 "           \
	"12:25:30\",\"paid_reff_num\":\"TRX1\",\"expires_at\":\"2024-01-15 13:00:00\"}"

static void test_parse_check_ok(void **state)
{
	struct pay_event ev;
	char err[256];

	(void)state;
	assert_int_equal(
	    gateway_parse_check(CHECK_OK, strlen(CHECK_OK), "PAY-1", &ev, err, sizeof(err)),
	    GATEWAY_OK);
	assert_string_equal(ev.invoice_id, "PAY-1");
	assert_int_equal(ev.status, STATUS_PAID);
	/* The literal 50123.0 as PHP prints it, exactly as a callback's would be. */
	assert_string_equal(ev.final_amount, "50123");
	assert_string_equal(ev.amount, "50000");
	assert_string_equal(event_field(&ev, "paid_reff_num"), "TRX1");
	event_release(&ev);
}

static void test_parse_check_bad(void **state)
{
	static const struct {
		const char *body;
		const char *invoice;
		enum gateway_error e;
		const char *err; /* a part of the message */
	} cases[] = {
	    {"", "PAY-1", GATEWAY_ERR_MALFORMED, "not a JSON object"},
	    {"<html>502</html>", "PAY-1", GATEWAY_ERR_MALFORMED, "not a JSON object"},
	    {"[1]", "PAY-1", GATEWAY_ERR_MALFORMED, "not a JSON object"},
	    {"{\"invoice_id\":\"PAY-1\",\"status\":\"paid\",\"final_amount\":1}", "PAY-1",
	     GATEWAY_ERR_MALFORMED, "success"},
	    {"{\"success\":false,\"error\":\"Payment not found\"}", "PAY-1", GATEWAY_ERR_REFUSED,
	     "Payment not found"},
	    {"{\"success\":false,\"message\":\"quota\\nexceeded\"}", "PAY-1", GATEWAY_ERR_REFUSED,
	     "quota exceeded"},
	    {"{\"success\":true,\"status\":\"paid\",\"final_amount\":1}", "PAY-1",
	     GATEWAY_ERR_MALFORMED, "invoice_id"},
	    {"{\"success\":true,\"invoice_id\":\"PAY-1\",\"status\":\"paid\"}", "PAY-1",
	     GATEWAY_ERR_MALFORMED, "final_amount"},
	    {"{\"success\":true,\"invoice_id\":\"PAY-1\",\"status\":\"refunded\","
	     "\"final_amount\":1}",
	     "PAY-1", GATEWAY_ERR_MALFORMED, "unknown status"},
	    {"{\"success\":true,\"invoice_id\":\"PAY-2\",\"status\":\"paid\",\"final_amount\":1}",
	     "PAY-1", GATEWAY_ERR_MALFORMED, "another invoice"},
	    {"{\"success\":true,\"invoice_id\":\"PAY-1\",\"status\":\"paid\",\"final_amount\":1,"
	     "\"status\":\"pending\"}",
	     "PAY-1", GATEWAY_ERR_MALFORMED, "duplicate"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pay_event ev;
		char err[256] = "";
		enum gateway_error e = gateway_parse_check(cases[i].body, strlen(cases[i].body),
		                                           cases[i].invoice, &ev, err, sizeof(err));

		if (e != cases[i].e || strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu %s: got %s \"%s\"", i, cases[i].body,
			         gateway_error_name(e), err);
		event_release(&ev);
	}
}

static void test_parse_list_ok(void **state)
{
	const char *body = "{\"success\":true,\"data\":["
	                   "{\"invoice_id\":\"PAY-1\",\"status\":\"paid\",\"created_at\":"
	                   "\"2024-01-15 12:00:00\",\"paid_at\":\"2024-01-15 12:05:00\"},"
	                   "{\"invoice_id\":\"PAY-2\",\"status\":\"pending\"}],"
	                   "\"pagination\":{\"page\":2,\"limit\":100,\"total\":250,"
	                   "\"total_pages\":3}}";
	struct gateway_page pg;
	char err[256];

	(void)state;
	assert_int_equal(gateway_parse_list(body, strlen(body), &pg, err, sizeof(err)), GATEWAY_OK);
	assert_int_equal(pg.page, 2);
	assert_int_equal(pg.limit, 100);
	assert_int_equal(pg.total, 250);
	assert_int_equal(pg.total_pages, 3);
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.items[0].invoice_id, "PAY-1");
	assert_string_equal(pg.items[0].paid_at, "2024-01-15 12:05:00");
	assert_string_equal(pg.items[1].status, "pending");
	assert_null(pg.items[1].created_at);
	gateway_page_release(&pg);
}

static void test_parse_list_numeric_strings(void **state)
{
	/* PHP APIs often echo query parameters back as strings. */
	const char *body = "{\"success\":true,\"data\":[],"
	                   "\"pagination\":{\"page\":\"1\",\"limit\":\"100\",\"total\":\"0\"}}";
	struct gateway_page pg;
	char err[256];

	(void)state;
	assert_int_equal(gateway_parse_list(body, strlen(body), &pg, err, sizeof(err)), GATEWAY_OK);
	assert_int_equal(pg.page, 1);
	assert_int_equal(pg.total_pages, 0); /* from total and limit */
	assert_int_equal(pg.n, 0);
	gateway_page_release(&pg);
}

static void test_parse_list_bad(void **state)
{
	static const struct {
		const char *body;
		enum gateway_error e;
		const char *err;
	} cases[] = {
	    {"nope", GATEWAY_ERR_MALFORMED, "not a JSON object"},
	    {"{\"success\":false,\"error\":\"Invalid date\"}", GATEWAY_ERR_REFUSED, "Invalid date"},
	    {"{\"data\":[]}", GATEWAY_ERR_MALFORMED, "success"},
	    {"{\"success\":true,\"data\":{}}", GATEWAY_ERR_MALFORMED, "data"},
	    {"{\"success\":true,\"data\":[]}", GATEWAY_ERR_MALFORMED, "pagination"},
	    {"{\"success\":true,\"data\":[],\"pagination\":{\"page\":1,\"total\":3}}",
	     GATEWAY_ERR_MALFORMED, "total_pages"},
	    {"{\"success\":true,\"data\":[],\"pagination\":{\"page\":-1,\"total\":3,"
	     "\"total_pages\":1}}",
	     GATEWAY_ERR_MALFORMED, "pagination"},
	    {"{\"success\":true,\"data\":[{\"status\":\"paid\"}],\"pagination\":{\"page\":1,"
	     "\"total\":1,\"total_pages\":1}}",
	     GATEWAY_ERR_MALFORMED, "data[0]"},
	    {"{\"success\":true,\"data\":[{\"invoice_id\":\"A\\nB\",\"status\":\"paid\"}],"
	     "\"pagination\":{\"page\":1,\"total\":1,\"total_pages\":1}}",
	     GATEWAY_ERR_MALFORMED, "data[0]"},
	    {"{\"success\":true,\"data\":[{\"invoice_id\":\"\",\"status\":\"paid\"}],"
	     "\"pagination\":{\"page\":1,\"total\":1,\"total_pages\":1}}",
	     GATEWAY_ERR_MALFORMED, "data[0]"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gateway_page pg;
		char err[256] = "";
		enum gateway_error e =
		    gateway_parse_list(cases[i].body, strlen(cases[i].body), &pg, err, sizeof(err));

		if (e != cases[i].e || strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu %s: got %s \"%s\"", i, cases[i].body,
			         gateway_error_name(e), err);
		assert_null(pg.json);
		assert_null(pg.items);
	}
}

static void test_start_date(void **state)
{
	char buf[16];

	(void)state;
	/* 2024-01-15 16:59:59 UTC is 23:59:59 WIB; a day of lookback, one more day. */
	gateway_start_date(1705337999, 86400, buf, sizeof(buf));
	assert_string_equal(buf, "2024-01-13");
	/* 17:00:00 UTC is already the 16th in WIB. */
	gateway_start_date(1705338000, 86400, buf, sizeof(buf));
	assert_string_equal(buf, "2024-01-14");
	/* The default lookback, 2 days. */
	gateway_start_date(1705338000, 172800, buf, sizeof(buf));
	assert_string_equal(buf, "2024-01-13");
}

/* gateway_uriencode encodes exactly as evhttp_uriencode(s, -1, 0) did. */
static void test_uriencode(void **state)
{
	static const char *const cases[] = {"PAY-1", "a b&c=d/e?f#g", "caf\xc3\xa9", "~._-", "%",
	                                    ""};
	char all[256];

	(void)state;
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = i < sizeof(cases) / sizeof(cases[0]) ? cases[i] : all;
		char *want = evhttp_uriencode(s, -1, 0), *got = gateway_uriencode(s);

		assert_string_equal(got, want);
		free(want);
		free(got);
	}
}

static void test_wib_time(void **state)
{
	(void)state;
	assert_int_equal(gateway_wib_time("2024-01-16 00:00:00"), 1705338000);
	assert_int_equal(gateway_wib_time(NULL), -1);
	assert_int_equal(gateway_wib_time(""), -1);
	assert_int_equal(gateway_wib_time("2024-01-16"), -1);
	assert_int_equal(gateway_wib_time("2024-01-16 00:00:00Z"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_parse_check_ok),
	    cmocka_unit_test(test_parse_check_bad),
	    cmocka_unit_test(test_parse_list_ok),
	    cmocka_unit_test(test_parse_list_numeric_strings),
	    cmocka_unit_test(test_parse_list_bad),
	    cmocka_unit_test(test_start_date),
	    cmocka_unit_test(test_wib_time),
	    cmocka_unit_test(test_uriencode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
