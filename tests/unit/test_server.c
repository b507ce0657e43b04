/* test_server.c: the real client address behind trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server.h"

static void test_real_client(void **state)
{
	static const struct {
		const char *trusted, *peer, *xff, *xreal, *want;
	} cases[] = {
	    /* an untrusted peer is believed, its headers are not */
	    {"127.0.0.1/32", "203.0.113.9", "1.2.3.4", "5.6.7.8", "203.0.113.9"},
	    /* nginx appends the client: rightmost untrusted wins */
	    {"127.0.0.1/32", "127.0.0.1", "198.51.100.7", NULL, "198.51.100.7"},
	    {"127.0.0.1/32", "127.0.0.1", "6.6.6.6, 198.51.100.7", NULL, "198.51.100.7"},
	    /* a chain of trusted proxies is skipped */
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", NULL,
	     "198.51.100.7"},
	    /* every hop trusted: the leftmost */
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "10.9.9.9, 10.1.2.3", NULL, "10.9.9.9"},
	    /* garbage stops the walk at the last good hop (the peer) */
	    {"127.0.0.1/32", "127.0.0.1", "not-an-ip", NULL, "127.0.0.1"},
	    /* X-Real-IP only when there is no X-Forwarded-For */
	    {"127.0.0.1/32", "127.0.0.1", NULL, "198.51.100.8", "198.51.100.8"},
	    {"127.0.0.1/32", "127.0.0.1", NULL, "junk", "127.0.0.1"},
	    {"::1/128", "::1", "2001:db8::1", NULL, "2001:db8::1"},
	    {"", "127.0.0.1", "1.2.3.4", NULL, "127.0.0.1"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cidr_list l;
		const char *err = NULL;
		char out[64];

		assert_int_equal(cidr_list_parse(&l, cases[i].trusted, &err), 0);
		server_real_client(&l, cases[i].peer, cases[i].xff, cases[i].xreal, out,
		                   sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got %s want %s", i, out, cases[i].want);
		cidr_list_free(&l);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
