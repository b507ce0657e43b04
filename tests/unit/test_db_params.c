/*
 * test_db_connect.c: the connection parameters added to a conninfo
 * (db_connect.c): keepalives, tcp_user_timeout, the application name per
 * pool, target_session_attrs with several hosts, and nothing the user set
 * overridden, in both conninfo forms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "db.h"

struct want {
	const char *key;
	const char *value; /* NULL: must be absent */
};

struct params_case {
	const char *conninfo;
	const char *purpose;
	struct want want[10];
};

static const struct params_case cases[] = {
    {"dbname=shop host=db1",
     "ingest",
     {{"dbname", "shop"},
      {"host", "db1"},
      {"keepalives", "1"},
      {"keepalives_idle", "15"},
      {"keepalives_interval", "5"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "30000"},
      {"fallback_application_name", "bayarhook/ingest"},
      {"target_session_attrs", NULL},
      {"application_name", NULL}}},
    /* The user's own values stay, and only the missing ones are added. */
    {"host=db1 keepalives_idle=60 tcp_user_timeout=0 application_name=shop keepalives=0",
     "worker",
     {{"keepalives", "0"},
      {"keepalives_idle", "60"},
      {"keepalives_interval", "5"},
      {"tcp_user_timeout", "0"},
      {"application_name", "shop"},
      {"fallback_application_name", "bayarhook/worker"}}},
    /* Several hosts: read-write, unless the conninfo says otherwise. */
    {"host=db1,db2 port=5432,5433", "reconcile", {{"target_session_attrs", "read-write"}}},
    {"host=db1,db2 target_session_attrs=any", "ingest", {{"target_session_attrs", "any"}}},
    {"hostaddr=192.0.2.1,192.0.2.2", "ingest", {{"target_session_attrs", "read-write"}}},
    {"postgresql://u@db1:5432,db2:5433/shop?keepalives_count=9",
     "alerts",
     {{"host", "db1,db2"},
      {"port", "5432,5433"},
      {"dbname", "shop"},
      {"user", "u"},
      {"keepalives_count", "9"},
      {"keepalives", "1"},
      {"target_session_attrs", "read-write"},
      {"fallback_application_name", "bayarhook/alerts"}}},
    {"postgresql:///bayarhook?fallback_application_name=mine",
     "ingest",
     {{"fallback_application_name", "mine"}, {"target_session_attrs", NULL}}},
    {"", NULL, {{"fallback_application_name", "bayarhook/admin"}, {"keepalives", "1"}}},
};

static void test_params_table(void **state)
{
	(void)state;
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	unsetenv("PGTARGETSESSIONATTRS");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_params p;
		char err[256];

		assert_int_equal(
		    db_params_build(cases[i].conninfo, cases[i].purpose, &p, err, sizeof(err)), 0);
		assert_null(p.keys[p.n]);
		assert_null(p.values[p.n]);
		for (size_t j = 0; j < 10 && cases[i].want[j].key; j++) {
			const char *got = db_params_get(&p, cases[i].want[j].key);

			if (cases[i].want[j].value == NULL) {
				if (got != NULL)
					fail_msg("case %zu: %s=%s, want none", i,
					         cases[i].want[j].key, got);
				continue;
			}
			if (got == NULL || strcmp(got, cases[i].want[j].value) != 0)
				fail_msg("case %zu: %s=%s, want %s", i, cases[i].want[j].key,
				         got ? got : "(none)", cases[i].want[j].value);
		}
		db_params_free(&p);
	}
}

/* The environment variables libpq reads count as set by the user. */
static void test_params_env(void **state)
{
	struct db_params p;
	char err[256];

	(void)state;
	setenv("PGHOST", "db1,db2", 1);
	assert_int_equal(db_params_build("dbname=x", "ingest", &p, err, sizeof(err)), 0);
	assert_string_equal(db_params_get(&p, "target_session_attrs"), "read-write");
	db_params_free(&p);

	setenv("PGTARGETSESSIONATTRS", "prefer-standby", 1);
	assert_int_equal(db_params_build("dbname=x", "ingest", &p, err, sizeof(err)), 0);
	assert_null(db_params_get(&p, "target_session_attrs"));
	db_params_free(&p);

	/* The conninfo's one host wins over PGHOST's several. */
	unsetenv("PGTARGETSESSIONATTRS");
	assert_int_equal(db_params_build("host=db9", "ingest", &p, err, sizeof(err)), 0);
	assert_null(db_params_get(&p, "target_session_attrs"));
	db_params_free(&p);
	unsetenv("PGHOST");
}

static void test_params_invalid(void **state)
{
	struct db_params p;
	char err[256];

	(void)state;
	assert_int_equal(db_params_build("nonsense_key=1", "ingest", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nonsense_key"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(db_params_build("host='unterminated", "ingest", &p, err, sizeof(err)), -1);
	db_params_free(NULL);
}

/* The next attempt starts at the next host; lists of one stay. */
static void test_params_rotate(void **state)
{
	struct db_params p;
	char err[256];

	(void)state;
	assert_int_equal(
	    db_params_build("host=a,b,c port=1,2,3 dbname=x", "ingest", &p, err, sizeof(err)), 0);
	db_params_rotate(&p);
	assert_string_equal(db_params_get(&p, "host"), "b,c,a");
	assert_string_equal(db_params_get(&p, "port"), "2,3,1");
	assert_string_equal(db_params_get(&p, "dbname"), "x");
	db_params_rotate(&p);
	db_params_rotate(&p);
	assert_string_equal(db_params_get(&p, "host"), "a,b,c");
	assert_string_equal(db_params_get(&p, "port"), "1,2,3");
	db_params_free(&p);

	assert_int_equal(db_params_build("host=a,,c port=5432", "ingest", &p, err, sizeof(err)), 0);
	db_params_rotate(&p);
	assert_string_equal(db_params_get(&p, "host"), ",c,a");
	assert_string_equal(db_params_get(&p, "port"), "5432");
	db_params_free(&p);
}

/* Read-only by SQLSTATE alone (no connection to ask). */
static void test_read_only_sqlstate(void **state)
{
	(void)state;
	assert_true(db_conn_read_only(NULL, "25006"));
	assert_false(db_conn_read_only(NULL, "40001"));
	assert_false(db_conn_read_only(NULL, ""));
	assert_false(db_conn_read_only(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_params_table),       cmocka_unit_test(test_params_env),
	    cmocka_unit_test(test_params_invalid),     cmocka_unit_test(test_params_rotate),
	    cmocka_unit_test(test_read_only_sqlstate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
