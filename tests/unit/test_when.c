/*
 * test_when.c: `when =` conditions (SPEC §9): each operator, all of them
 * must hold, a comma inside an ERE, a missing field reading as "", and
 * what a bad expression says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "when.h"

static const char *lookup(const void *arg, const char *field)
{
	(void)arg;
	if (strcmp(field, "description") == 0)
		return "KEY-steam-001";
	if (strcmp(field, "final_amount") == 0)
		return "50123";
	if (strcmp(field, "payment_method") == 0)
		return "QRIS";
	if (strcmp(field, "customer_name") == 0)
		return "not a number";
	return NULL;
}

static bool holds(const char *text)
{
	char err[256];
	struct when *w = when_parse(text, err, sizeof(err));
	bool ok;

	if (w == NULL)
		fail_msg("%s: %s", text, err);
	ok = when_match(w, lookup, NULL);
	when_free(w);
	return ok;
}

static void test_operators(void **state)
{
	(void)state;
	assert_true(holds("payment_method = QRIS"));
	assert_false(holds("payment_method = qris"));
	assert_true(holds("payment_method != VA"));
	assert_false(holds("payment_method != QRIS"));
	assert_true(holds("description ^= KEY-"));
	assert_false(holds("description ^= PHYS-"));
	assert_true(holds("description ~ ^KEY-[a-z]+-[0-9]{1,3}$"));
	assert_false(holds("description ~ ^PHYS"));
	assert_true(holds("final_amount > 50000"));
	assert_false(holds("final_amount > 50123"));
	assert_true(holds("final_amount >= 50123"));
	assert_true(holds("final_amount < 60000.5"));
	assert_false(holds("final_amount < 50123"));
	assert_true(holds("final_amount <= 50123"));
	/* A value that is no number never passes a numeric test. */
	assert_false(holds("customer_name < 1"));
	assert_false(holds("customer_name > 1"));
	/* A field the event lacks reads as "". */
	assert_true(holds("paid_reff_num = "));
	assert_false(holds("paid_reff_num ^= X"));
}

static void test_all_must_hold(void **state)
{
	(void)state;
	assert_true(
	    holds("payment_method = QRIS, final_amount >= 50000, description ~ [0-9]{2,3}"));
	assert_false(holds("payment_method = QRIS, final_amount >= 60000"));
	/* The comma of {2,3} is no separator: "3}" starts no condition. */
	assert_true(holds("description ~ ^KEY-[a-z]{2,9}-0{1,2}1$, payment_method=QRIS"));
}

static void test_errors(void **state)
{
	char err[256];

	(void)state;
	assert_null(when_parse("description ~ ([a-z", err, sizeof(err)));
	assert_non_null(strstr(err, "condition 1: bad regular expression"));
	assert_null(when_parse("final_amount > 1, final_amount < lots", err, sizeof(err)));
	assert_string_equal(err, "condition 2: final_amount needs a number");
	assert_null(when_parse("final_amount", err, sizeof(err)));
	assert_non_null(strstr(err, "condition 1: no operator"));
	assert_null(when_parse("= 5", err, sizeof(err)));
	assert_non_null(strstr(err, "condition 1: no field name"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_operators),
	    cmocka_unit_test(test_all_must_hold),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
