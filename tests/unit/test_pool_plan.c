/*
 * test_pool_plan.c: [database] pool_size split among serve's pools
 * (pool_plan.c), table-driven: the split README documents, and every
 * connection counted exactly once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pool_plan.h"

struct plan_case {
	int pool_size;
	struct pool_plan want; /* ingest, queue, reconcile, alert, listen */
};

static const struct plan_case cases[] = {
    {5, {1, 1, 1, 1, 1}}, {6, {1, 2, 1, 1, 1}},  {7, {2, 2, 1, 1, 1}},   {8, {2, 3, 1, 1, 1}},
    {9, {2, 3, 2, 1, 1}}, {10, {3, 3, 2, 1, 1}}, {20, {13, 3, 2, 1, 1}}, {1000, {993, 3, 2, 1, 1}},
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pool_plan p = pool_plan(cases[i].pool_size);

		assert_int_equal(p.ingest, cases[i].want.ingest);
		assert_int_equal(p.queue, cases[i].want.queue);
		assert_int_equal(p.reconcile, cases[i].want.reconcile);
		assert_int_equal(p.alert, cases[i].want.alert);
		assert_int_equal(p.listen, cases[i].want.listen);
	}
}

static void test_sum_is_pool_size(void **state)
{
	(void)state;
	for (int n = POOL_SIZE_MIN; n <= 200; n++) {
		struct pool_plan p = pool_plan(n);

		assert_int_equal(p.ingest + p.queue + p.reconcile + p.alert + p.listen, n);
		assert_true(p.ingest >= 1 && p.queue >= 1 && p.reconcile >= 1);
	}
	/* Below the minimum (the config refuses it): the minimum. */
	assert_int_equal(pool_plan(1).ingest, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_sum_is_pool_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
