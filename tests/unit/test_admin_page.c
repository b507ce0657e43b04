/*
 * test_admin_page.c: the status page's HTML (admin_page.c) from a summary:
 * the headline for each case, every value escaped, a retry form per dead
 * job with its own CSRF token, and /api/summary's JSON (admin_summary.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "admin_int.h"

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

/* A summary as status_summary() returns it; the strings are a stranger's. */
static const char hostile[] =
    "{\"now\":\"2026-12-02 13:45:00+07\",\"time_zone\":\"Asia/Jakarta\","
    "\"today_since\":\"2026-12-02 00:00:00+07\","
    "\"callbacks_today\":{\"accepted\":6,\"bad_signature\":1,\"<b>x</b>\":2},"
    "\"paid_today\":{\"paid\":5,\"fulfilled\":4,\"in_progress\":0,\"failed\":1},"
    "\"jobs\":{\"dead\":1,\"held\":1,\"succeeded\":4},"
    "\"dead_jobs\":[{\"id\":42,\"invoice_id\":\"INV<script>alert(1)</script>\","
    "\"action\":\"ship\\\"'\",\"attempts\":3,\"last_error\":\"exit 3: <img src=x onerror=y>&\","
    "\"failed_at\":\"2026-12-02 13:40:00+07\"}],"
    "\"held_jobs\":[{\"id\":43,\"invoice_id\":\"INV-held\",\"action\":\"mail\","
    "\"held_reason\":\"after\",\"after_action\":\"<ship>\",\"created_at\":\"t\"}],"
    "\"orders_needing_attention\":2,\"orders_not_delivered\":1,\"flagged_today\":1,"
    "\"flagged_total\":1,"
    "\"flagged_payments\":[{\"invoice_id\":\"INV-late\",\"status\":\"paid\",\"amount\":\"50123\","
    "\"flag_reason\":\"paid after <expired>\",\"updated_at\":\"t\",\"today\":true}],"
    "\"last_reconcile\":null}";

static char *render(const char *json, bool up, const char *why, const char *notice)
{
	cJSON *data = json ? cJSON_Parse(json) : NULL;
	struct admin_summary s = {.db_up = up, .why = why, .data = data};
	size_t len = 0;
	char *page;

	if (json)
		assert_non_null(data);
	page = admin_page_render(&s, key, sizeof(key), notice, &len);
	assert_non_null(page);
	assert_int_equal(strlen(page), len);
	cJSON_Delete(data);
	return page;
}

static void test_escaped_and_headline(void **state)
{
	char *page = render(hostile, true, NULL, "Job 7 <queued>");
	char csrf[ADMIN_CSRF_LEN + 1], want[256];

	(void)state;
	assert_non_null(strstr(page, "<h1>2 orders need attention</h1>"));
	assert_non_null(strstr(page, "1 paid order was not delivered"));
	assert_non_null(strstr(page, "1 payment was flagged today"));
	/* Nothing a stranger wrote becomes markup. */
	assert_null(strstr(page, "<script>"));
	assert_null(strstr(page, "<img"));
	assert_null(strstr(page, "<b>x</b>"));
	assert_null(strstr(page, "<ship>"));
	assert_null(strstr(page, "<queued>"));
	assert_non_null(strstr(page, "INV&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(page, "exit 3: &lt;img src=x onerror=y&gt;&amp;"));
	assert_non_null(strstr(page, "ship&quot;&#39;"));
	assert_non_null(strstr(page, "paid after &lt;expired&gt;"));
	assert_non_null(strstr(page, "Job 7 &lt;queued&gt;"));
	/* The retry form of job 42 carries job 42's token. */
	admin_csrf_token(key, sizeof(key), "42", csrf);
	snprintf(want, sizeof(want),
	         "<form method='post' action='/jobs/42/retry'><input type='hidden' name='csrf' "
	         "value='%s'>",
	         csrf);
	assert_non_null(strstr(page, want));
	assert_non_null(strstr(page, "Waits for action <b>&lt;ship&gt;</b> to succeed first."));
	assert_non_null(strstr(page, "No reconcile pass yet."));
	assert_non_null(strstr(page, "name='viewport'"));
	assert_null(strstr(page, "<script"));
	assert_null(strstr(page, "http://"));
	assert_null(strstr(page, "https://"));
	free(page);
}

static void test_good_and_down(void **state)
{
	char *page;

	(void)state;
	page = render("{\"paid_today\":{\"paid\":3,\"fulfilled\":2,\"in_progress\":1,\"failed\":0},"
	              "\"orders_needing_attention\":0,\"jobs\":{},\"callbacks_today\":{}}",
	              true, NULL, NULL);
	assert_non_null(strstr(page, "<h1>All paid orders delivered</h1>"));
	assert_non_null(strstr(page, "3 paid today; 1 being delivered right now."));
	assert_null(strstr(page, "<form"));
	free(page);

	page = render("{\"paid_today\":{\"paid\":0},\"orders_needing_attention\":0}", true, NULL,
	              NULL);
	assert_non_null(strstr(page, "No payments yet today."));
	free(page);

	page = render(NULL, false, "connection <refused>", NULL);
	assert_non_null(strstr(page, "<h1>Cannot check orders right now</h1>"));
	assert_non_null(strstr(page, "connection &lt;refused&gt;"));
	assert_non_null(strstr(page, "Database <b>down</b>"));
	free(page);
}

static void test_csrf_tokens(void **state)
{
	char a[ADMIN_CSRF_LEN + 1], b[ADMIN_CSRF_LEN + 1], c[ADMIN_CSRF_LEN + 1];
	unsigned char other[32];

	(void)state;
	admin_csrf_token(key, sizeof(key), "42", a);
	admin_csrf_token(key, sizeof(key), "42", b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), ADMIN_CSRF_LEN);
	admin_csrf_token(key, sizeof(key), "43", c);
	assert_string_not_equal(a, c);
	memcpy(other, key, sizeof(other));
	other[0] ^= 1;
	admin_csrf_token(other, sizeof(other), "42", c);
	assert_string_not_equal(a, c);
}

static void test_summary_json(void **state)
{
	cJSON *data = cJSON_Parse(hostile), *back;
	struct admin_summary s = {.db_up = true, .why = NULL, .data = data};
	char *text;

	(void)state;
	text = admin_summary_json(&s);
	back = cJSON_Parse(text);
	assert_non_null(back);
	assert_string_equal(cJSON_GetObjectItem(back, "database")->valuestring, "up");
	assert_int_equal(cJSON_GetObjectItem(back, "orders_needing_attention")->valueint, 2);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(back, "dead_jobs"), 0),
	                        "invoice_id")
	        ->valuestring,
	    "INV<script>alert(1)</script>");
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(data);

	s.db_up = false;
	s.data = NULL;
	s.why = "timeout \"x\"";
	text = admin_summary_json(&s);
	assert_string_equal(text, "{\"database\":\"down\",\"error\":\"timeout \\\"x\\\"\"}");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escaped_and_headline),
	    cmocka_unit_test(test_good_and_down),
	    cmocka_unit_test(test_csrf_tokens),
	    cmocka_unit_test(test_summary_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
