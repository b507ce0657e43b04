/*
 * test_cli_time.c: --since's AGE and TIME (cli_time.c), read before
 * anything is loaded: what PostgreSQL would take the same way in every
 * DateStyle is accepted, the rest is a usage error (2), never a query.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cli.h"

static const struct cli_command cmd = {.name = "test", .args = ""};

static int since(const char *text, char *buf, size_t len)
{
	struct cli cli;

	memset(&cli, 0, sizeof(cli));
	cli.cmd = &cmd;
	return cli_time_since(&cli, text, buf, len);
}

static void test_ages_become_utc_times(void **state)
{
	char buf[64];
	struct tm tm;
	time_t before, after, t;

	(void)state;
	before = time(NULL) - 2 * 3600;
	assert_int_equal(since("2h", buf, sizeof(buf)), 0);
	after = time(NULL) - 2 * 3600;
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(buf, "%Y-%m-%d %H:%M:%S+00", &tm));
	t = timegm(&tm);
	assert_true(t >= before && t <= after);
	assert_string_equal(buf + strlen(buf) - 3, "+00");

	for (const char *const *s = (const char *const[]){"90s", "15m", "3d", "0s", NULL}; *s; s++)
		assert_int_equal(since(*s, buf, sizeof(buf)), 0);
}

static void test_iso_dates_and_times_pass_through(void **state)
{
	static const char *const ok[] = {
	    "2026-12-01",        "2026-12-01 08:00",       "2026-12-01T08:00:59",
	    "2026-12-01T08:00Z", "2026-12-01T08:00+07:00", "2026-12-01 08:00:00.25-0330",
	    "2024-02-29",        "2026-12-01T23:59:59+07",
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(since(ok[i], buf, sizeof(buf)), 0);
		assert_string_equal(buf, ok[i]);
	}
}

static void test_anything_else_is_a_usage_error(void **state)
{
	static const char *const bad[] = {
	    "15x",
	    "h",
	    "2h ago",
	    "-2h",
	    "yesterday",
	    "now",
	    "2026-02-30",
	    "2025-02-29",
	    "2026-13-01",
	    "2026-1-1",
	    "2026-12-01T24:00",
	    "2026-12-01T08:60",
	    "2026-12-01T08:00:61",
	    "2026-12-01T08",
	    "2026-12-01T08:00+7",
	    "2026-12-01T08:00 UTC",
	    "2026-12-01x",
	    "",
	    "1e3s",
	    "2026-12-01T08:00:00.",
	    "12/01/2026",
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (since(bad[i], buf, sizeof(buf)) != 2)
			fail_msg("\"%s\" was accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ages_become_utc_times),
	    cmocka_unit_test(test_iso_dates_and_times_pass_through),
	    cmocka_unit_test(test_anything_else_is_a_usage_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
