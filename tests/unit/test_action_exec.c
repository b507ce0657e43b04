/*
 * test_action_exec.c: the exec action's environment (SPEC §5): built from
 * nothing but the event's fields and the job's identity, in a fixed order,
 * each value and the whole capped (SPEC §13); and the check that a field
 * does not start an argument with '-'. How a process runs with it is
 * test_proc.c's business.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "action_exec.h"

static void test_env_builder(void **state)
{
	const struct action_exec_var vars[] = {
	    {"invoice_id", "PAY-1"}, {"paid_at", "2024-01-15 12:25:30"},
	    {"weird-name.x", "w"},   {"weird_name_x", "dropped: same variable"},
	    {"Mixed9", "m"},         {"array_field", NULL},
	    {"", "no name"},         {"customer_name", "a \"b\" 'c' $(d)\nline2"},
	    {"has_file", "1"},       {"has_content", ""},
	};
	static const char *const want[] = {
	    "PATH=" ACTION_EXEC_PATH,
	    "BAYAR_INVOICE_ID=PAY-1",
	    "BAYAR_PAID_AT=2024-01-15 12:25:30",
	    "BAYAR_WEIRD_NAME_X=w",
	    "BAYAR_MIXED9=m",
	    "BAYAR_CUSTOMER_NAME=a \"b\" 'c' $(d)\nline2",
	    "BAYAR_HAS_FILE=1",
	    "BAYAR_HAS_CONTENT=",
	    "BAYARHOOK_SOURCE=callback",
	    "BAYARHOOK_JOB_ID=42",
	    "BAYARHOOK_ATTEMPT=3",
	    "BAYARHOOK_FLAGGED=paid after expired",
	    NULL,
	};
	char **env, *note = (char *)"unset";
	size_t i;

	(void)state;
	env = action_exec_env(vars, sizeof(vars) / sizeof(vars[0]), "callback", "42", 3,
	                      "paid after expired", &note);
	assert_null(note);
	assert_non_null(env);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(env[i]);
		assert_string_equal(env[i], want[i]);
	}
	assert_null(env[i]);
	action_exec_env_free(env);

	env = action_exec_env(NULL, 0, "reconciler", "7", 1, NULL, &note);
	assert_null(note);
	assert_string_equal(env[0], "PATH=" ACTION_EXEC_PATH);
	assert_string_equal(env[1], "BAYARHOOK_SOURCE=reconciler");
	assert_string_equal(env[3], "BAYARHOOK_ATTEMPT=1");
	/* Not flagged: set, and empty. */
	assert_string_equal(env[4], "BAYARHOOK_FLAGGED=");
	assert_null(env[5]);
	action_exec_env_free(env);
	action_exec_env_free(NULL);
}

static size_t env_count(char **env)
{
	size_t n = 0;

	while (env[n] != NULL)
		n++;
	return n;
}

/* A 200 KiB description (E2BIG for execve on Linux) is left out, with a note; the rest stays. */
static void test_env_value_cap(void **state)
{
	size_t big = 200 * 1024;
	char *desc = malloc(big + 1), *at_cap = malloc(ACTION_EXEC_VALUE_MAX + 2), *note = NULL;
	char **env;

	(void)state;
	memset(desc, 'd', big);
	desc[big] = '\0';
	memset(at_cap, 'c', ACTION_EXEC_VALUE_MAX);
	at_cap[ACTION_EXEC_VALUE_MAX] = '\0';
	{
		const struct action_exec_var vars[] = {
		    {"invoice_id", "PAY-1"},
		    {"description", desc},
		    {"customer_name", at_cap},
		    {"status", "paid"},
		};

		env = action_exec_env(vars, 4, "callback", "1", 1, NULL, &note);
	}
	assert_int_equal(env_count(env), 1 + 3 + 4);
	assert_string_equal(env[1], "BAYAR_INVOICE_ID=PAY-1");
	assert_int_equal(strlen(env[2]), strlen("BAYAR_CUSTOMER_NAME=") + ACTION_EXEC_VALUE_MAX);
	assert_string_equal(env[3], "BAYAR_STATUS=paid");
	assert_non_null(note);
	assert_non_null(strstr(note, "BAYAR_DESCRIPTION (204800 bytes)"));
	assert_null(strstr(note, "CUSTOMER"));
	assert_null(strchr(note, '\n'));
	action_exec_env_free(env);
	free(note);

	/* Exactly one byte over the cap: left out too. */
	at_cap[ACTION_EXEC_VALUE_MAX] = 'c';
	at_cap[ACTION_EXEC_VALUE_MAX + 1] = '\0';
	{
		const struct action_exec_var vars[] = {{"customer_name", at_cap}};

		env = action_exec_env(vars, 1, "callback", "1", 1, NULL, &note);
	}
	assert_int_equal(env_count(env), 1 + 4); /* PATH and the four BAYARHOOK_* */
	assert_non_null(strstr(note, "BAYAR_CUSTOMER_NAME"));
	action_exec_env_free(env);
	free(note);
	free(desc);
	free(at_cap);
}

/* Many values each under the cap: the whole stays under ACTION_EXEC_ENV_MAX, the note bounded. */
static void test_env_total_cap(void **state)
{
	enum { N = 64 };
	struct action_exec_var vars[N];
	char names[N][16], *value = malloc(ACTION_EXEC_VALUE_MAX), *note = NULL, **env;
	size_t total = 0;

	(void)state;
	memset(value, 'v', ACTION_EXEC_VALUE_MAX - 1);
	value[ACTION_EXEC_VALUE_MAX - 1] = '\0';
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		vars[i].name = names[i];
		vars[i].value = value;
	}
	env = action_exec_env(vars, N, "callback", "1", 1, NULL, &note);
	for (size_t i = 1; env[i] != NULL; i++)
		if (strncmp(env[i], "BAYAR_", 6) == 0)
			total += strlen(env[i]) + 1;
	assert_true(total <= ACTION_EXEC_ENV_MAX);
	assert_true(total > ACTION_EXEC_ENV_MAX - ACTION_EXEC_VALUE_MAX - 16);
	assert_int_equal(strncmp(env[1], "BAYAR_F0=", 9), 0); /* the first ones are kept */
	assert_non_null(note);
	assert_true(strlen(note) < 1024);
	assert_non_null(strstr(note, ", ..."));
	action_exec_env_free(env);
	free(note);
	free(value);
}

struct fields {
	const char *const *kv; /* name, value, ..., NULL */
};

static const char *lookup(void *arg, const char *name)
{
	const struct fields *f = arg;

	for (size_t i = 0; f->kv[i] != NULL; i += 2)
		if (strcmp(f->kv[i], name) == 0)
			return f->kv[i + 1];
	return NULL;
}

/* SPEC §13: which field, if any, makes a word start with '-'. */
static void test_leading_dash(void **state)
{
	static const char *const kv[] = {"customer_email",
	                                 "--output=/etc/passwd",
	                                 "customer_name",
	                                 "-rf",
	                                 "empty",
	                                 "",
	                                 "invoice_id",
	                                 "PAY-1",
	                                 NULL};
	static const struct {
		const char *tmpl;
		int want;
		const char *field;
	} cases[] = {
	    {"{customer_email}", 1, "customer_email"},
	    {"{customer_name}", 1, "customer_name"},
	    {"{empty}{customer_email}", 1, "customer_email"},
	    {"{empty}{empty}{customer_name}x", 1, "customer_name"},
	    {"{invoice_id}{customer_email}", 0, NULL}, /* starts with P */
	    {"--email={customer_email}", 0, NULL},     /* the command's own option */
	    {"-{customer_name}", 0, NULL},
	    {"{empty}-x", 0, NULL}, /* the '-' is the template's */
	    {"{{customer_email}}", 0, NULL},
	    {"x{customer_email}", 0, NULL},
	    {"{invoice_id}", 0, NULL},
	    {"", 0, NULL},
	};
	struct fields f = {kv};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char field[64] = "";
		int got = action_exec_leading_dash(cases[i].tmpl, lookup, &f, field, sizeof(field));

		if (got != cases[i].want)
			fail_msg("%s: got %d", cases[i].tmpl, got);
		if (cases[i].field != NULL)
			assert_string_equal(field, cases[i].field);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_builder),
	    cmocka_unit_test(test_env_value_cap),
	    cmocka_unit_test(test_env_total_cap),
	    cmocka_unit_test(test_leading_dash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
