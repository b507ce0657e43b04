/*
 * test_action_exec.c: the exec action's environment (SPEC §5): built from
 * nothing but the event's fields and the job's identity, in a fixed order.
 * How a process runs with it is test_proc.c's business.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
	char **env;
	size_t i;

	(void)state;
	env = action_exec_env(vars, sizeof(vars) / sizeof(vars[0]), "callback", "42", 3,
	                      "paid after expired");
	assert_non_null(env);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(env[i]);
		assert_string_equal(env[i], want[i]);
	}
	assert_null(env[i]);
	action_exec_env_free(env);

	env = action_exec_env(NULL, 0, "reconciler", "7", 1, NULL);
	assert_string_equal(env[0], "PATH=" ACTION_EXEC_PATH);
	assert_string_equal(env[1], "BAYARHOOK_SOURCE=reconciler");
	assert_string_equal(env[3], "BAYARHOOK_ATTEMPT=1");
	/* Not flagged: set, and empty. */
	assert_string_equal(env[4], "BAYARHOOK_FLAGGED=");
	assert_null(env[5]);
	action_exec_env_free(env);
	action_exec_env_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_builder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
