/*
 * test_backoff.c: the retry schedule of worker_outcome.c and the :name -> $n
 * rewriting of sql actions (action_sql.c), table-driven.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "action_sql.h"
#include "worker_outcome.h"

/* ---- backoff ---- */

struct backoff_case {
	int initial, max, attempt;
	int64_t nominal_ms; /* d: the delay before jitter */
};

static const struct backoff_case backoff_cases[] = {
    {5, 3600, 1, 5000},
    {5, 3600, 2, 10000},
    {5, 3600, 3, 20000},
    {5, 3600, 4, 40000},
    {5, 3600, 10, 2560000},
    {5, 3600, 11, 3600000},
    {5, 3600, 50, 3600000},
    {5, 3600, 1000, 3600000},
    {1, 2, 1, 1000},
    {1, 2, 2, 2000},
    {1, 2, 3, 2000},
    {1, 1, 5, 1000},
    {86400, 604800, 3, 345600000},
    {86400, 604800, 40, 604800000},
    {3, 100, 0, 3000},
};

static void test_backoff_bounds(void **state)
{
	static const uint32_t rnds[] = {0, 1, 499, 2500, 12345, 0x7fffffff, 0xffffffff};

	(void)state;
	for (size_t i = 0; i < sizeof(backoff_cases) / sizeof(backoff_cases[0]); i++) {
		const struct backoff_case *c = &backoff_cases[i];

		for (size_t r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
			int64_t ms = worker_backoff_ms(c->initial, c->max, c->attempt, rnds[r]);

			if (ms < c->nominal_ms / 2 || ms > c->nominal_ms) {
				fprintf(stderr, "case %zu rnd %u: %lld not in [%lld, %lld]\n", i,
				        rnds[r], (long long)ms, (long long)(c->nominal_ms / 2),
				        (long long)c->nominal_ms);
				fail();
			}
		}
		/* rnd 0 is the floor of equal jitter, rnd = d/2 its ceiling. */
		assert_int_equal(worker_backoff_ms(c->initial, c->max, c->attempt, 0),
		                 c->nominal_ms / 2);
		assert_int_equal(worker_backoff_ms(c->initial, c->max, c->attempt,
		                                   (uint32_t)(c->nominal_ms / 2)),
		                 c->nominal_ms);
	}
}

static void test_backoff_grows(void **state)
{
	(void)state;
	for (int a = 1; a < 30; a++) {
		assert_true(worker_backoff_ms(5, 3600, a + 1, 0) >=
		            worker_backoff_ms(5, 3600, a, 0));
		assert_true(worker_backoff_ms(5, 3600, a + 1, UINT32_MAX) >=
		            worker_backoff_ms(5, 3600, a, UINT32_MAX));
	}
	/* Until the cap, the next floor is the previous ceiling: delays never shrink. */
	for (int a = 1; 5 << a <= 3600; a++)
		assert_int_equal(worker_backoff_ms(5, 3600, a + 1, 0),
		                 worker_backoff_ms(5, 3600, a, 2500u << (a - 1)));
}

static void test_backoff_spread(void **state)
{
	int64_t seen_lo = INT64_MAX, seen_hi = 0;

	(void)state;
	/* Jitter uses the whole upper half, not a few points of it. */
	for (uint32_t r = 0; r < 20000; r += 7) {
		int64_t ms = worker_backoff_ms(10, 3600, 1, r * 2654435761u);

		if (ms < seen_lo)
			seen_lo = ms;
		if (ms > seen_hi)
			seen_hi = ms;
	}
	assert_true(seen_lo < 5200);
	assert_true(seen_hi > 9800);
}

/* ---- placeholders ---- */

struct ph_case {
	const char *in;
	const char *out;   /* NULL: an error is expected */
	const char *names; /* space-separated */
};

static const struct ph_case ph_cases[] = {
    {"UPDATE shop_orders SET state = 'paid' WHERE invoice_id = :invoice_id AND total = "
     ":final_amount",
     "UPDATE shop_orders SET state = 'paid' WHERE invoice_id = $1 AND total = $2",
     "invoice_id final_amount"},
    {"SELECT 1", "SELECT 1", ""},
    {"SELECT :a, :b, :a", "SELECT $1, $2, $1", "a b"},
    {"SELECT :amount::numeric", "SELECT $1::numeric", "amount"},
    {"SELECT x::text FROM t WHERE y = :y", "SELECT x::text FROM t WHERE y = $1", "y"},
    {"SELECT ':not_me', :me", "SELECT ':not_me', $1", "me"},
    {"SELECT 'it''s :no', :yes", "SELECT 'it''s :no', $1", "yes"},
    {"SELECT E'\\' :no', :yes", "SELECT E'\\' :no', $1", "yes"},
    {"SELECT \"col:no\" FROM t WHERE a = :yes", "SELECT \"col:no\" FROM t WHERE a = $1", "yes"},
    {"SELECT $$ :no $$, :yes", "SELECT $$ :no $$, $1", "yes"},
    {"SELECT $tag$ :no $x$ $tag$, :yes", "SELECT $tag$ :no $x$ $tag$, $1", "yes"},
    {"SELECT 1 -- :no\n, :yes", "SELECT 1 -- :no\n, $1", "yes"},
    {"SELECT /* :no /* nested :no */ :no */ :yes", "SELECT /* :no /* nested :no */ :no */ $1",
     "yes"},
    {"SELECT f(x => :v), a[1:2]", "SELECT f(x => $1), a[1:2]", "v"},
    {"SELECT :_x1, :X", "SELECT $1, $2", "_x1 X"},
    {"SELECT a$b, :c", "SELECT a$b, $1", "c"},
    {"UPDATE t SET n = :n WHERE k = :k;", "UPDATE t SET n = $1 WHERE k = $2;", "n k"},
    {"SELECT :", "SELECT :", ""},
    {"SELECT :1", "SELECT :1", ""},
    /* errors */
    {"SELECT $1", NULL, NULL},
    {"SELECT 'open", NULL, NULL},
    {"SELECT \"open", NULL, NULL},
    {"SELECT /* open", NULL, NULL},
    {"SELECT $q$ open", NULL, NULL},
};

static void test_placeholders(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ph_cases) / sizeof(ph_cases[0]); i++) {
		const struct ph_case *c = &ph_cases[i];
		char *out = NULL, **names = NULL, err[256] = "", joined[256] = "";
		int rc = action_sql_placeholders(c->in, &out, &names, err, sizeof(err));

		if (c->out == NULL) {
			if (rc != -1 || err[0] == '\0') {
				fprintf(stderr, "case %zu: expected an error for %s\n", i, c->in);
				fail();
			}
			continue;
		}
		if (rc != 0) {
			fprintf(stderr, "case %zu: %s: %s\n", i, c->in, err);
			fail();
		}
		assert_string_equal(out, c->out);
		for (int k = 0; names[k]; k++) {
			if (k)
				strcat(joined, " ");
			strcat(joined, names[k]);
		}
		assert_string_equal(joined, c->names);
		for (int k = 0; names[k]; k++)
			free(names[k]);
		free(names);
		free(out);
	}
}

static void test_placeholder_error_text(void **state)
{
	char *out = NULL, **names = NULL, err[256];

	(void)state;
	assert_int_equal(
	    action_sql_placeholders("SELECT * FROM t WHERE a = $1", &out, &names, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "use :name placeholders"));
}

/* The rounds' form (action_sql_direct.c): one text[] parameter, each element cast. */
static void test_placeholders_typed(void **state)
{
	char *const types[] = {"numeric", "timestamp with time zone"};
	char *out = NULL, **names = NULL, err[256] = "";

	(void)state;
	assert_int_equal(action_sql_placeholders_typed(
	                     "UPDATE t SET a = :x, s = ':x $1', at = :y WHERE b = :x::int -- :y",
	                     types, 2, &out, &names, err, sizeof(err)),
	                 0);
	assert_string_equal(out, "UPDATE t SET a = (($1::text[])[1]::numeric), s = ':x $1', "
	                         "at = (($1::text[])[2]::timestamp with time zone) "
	                         "WHERE b = (($1::text[])[1]::numeric)::int -- :y");
	assert_string_equal(names[0], "x");
	assert_string_equal(names[1], "y");
	assert_null(names[2]);
	for (int k = 0; names[k]; k++)
		free(names[k]);
	free(names);
	free(out);
	/* A name without a type (the database said fewer parameters). */
	assert_int_equal(action_sql_placeholders_typed("SELECT :x, :y", types, 1, &out, &names, err,
	                                               sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, ":y has no type"));
}

/* A statement run in rounds is one command: a second would run twice (PREPARE, then the job). */
static void test_one_command(void **state)
{
	(void)state;
	assert_true(action_sql_one_command("INSERT INTO t VALUES (:a)"));
	assert_true(action_sql_one_command("INSERT INTO t VALUES (:a);"));
	assert_true(
	    action_sql_one_command("UPDATE t SET a = 1 ; ; -- done; SELECT 2\n  /* ; x */ "));
	assert_true(action_sql_one_command("SELECT ';', \"a;b\", $$;x$$, E'\\';' FROM t"));
	assert_false(
	    action_sql_one_command("INSERT INTO t VALUES ('one'); INSERT INTO t VALUES (2)"));
	assert_false(action_sql_one_command("UPDATE t SET k = k;DELETE FROM t"));
	assert_false(action_sql_one_command("SELECT 1; :a"));
	assert_false(action_sql_one_command("SELECT 1; 'x'"));
	/* Not well formed: not taken as one command either. */
	assert_false(action_sql_one_command("SELECT 'unterminated"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_bounds),
	    cmocka_unit_test(test_backoff_grows),
	    cmocka_unit_test(test_backoff_spread),
	    cmocka_unit_test(test_placeholders),
	    cmocka_unit_test(test_placeholder_error_text),
	    cmocka_unit_test(test_placeholders_typed),
	    cmocka_unit_test(test_one_command),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
