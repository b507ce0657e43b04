/*
 * test_server.c: the real client address behind trusted proxies (read from
 * the right, bounded), and the reasons the reader's refusals are audited
 * under.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "forwarded.h"
#include "server.h"
#include "verdict.h"

static void real_client(const char *trusted, const char *peer, const char *const *xff, size_t nxff,
                        const char *xreal, char *out, size_t outlen)
{
	struct cidr_list l;
	const char *err = NULL;

	assert_int_equal(cidr_list_parse(&l, trusted, &err), 0);
	server_real_client(&l, peer, xff, nxff, xreal, out, outlen);
	cidr_list_free(&l);
}

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
	    {"127.0.0.1/32", "127.0.0.1", "6.6.6.6,198.51.100.7", NULL, "198.51.100.7"},
	    {"127.0.0.1/32", "127.0.0.1", " 6.6.6.6 ,\t198.51.100.7\t ", NULL, "198.51.100.7"},
	    /* a chain of trusted proxies is skipped */
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", NULL,
	     "198.51.100.7"},
	    /* every hop trusted: the leftmost */
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "10.9.9.9, 10.1.2.3", NULL, "10.9.9.9"},
	    /* garbage stops the walk at the last good hop (the peer) */
	    {"127.0.0.1/32", "127.0.0.1", "not-an-ip", NULL, "127.0.0.1"},
	    /* ... or at the last trusted hop before it */
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "6.6.6.6, junk, 10.1.2.3", NULL, "10.1.2.3"},
	    /* a blank inside a hop, an empty hop: garbage */
	    {"127.0.0.1/32", "127.0.0.1", "6.6.6.6 198.51.100.7", NULL, "127.0.0.1"},
	    {"127.0.0.1/32", "127.0.0.1", "198.51.100.7,", NULL, "127.0.0.1"},
	    /* garbage on the left never matters once an untrusted hop decided */
	    {"127.0.0.1/32", "127.0.0.1", "<script>, ;, 198.51.100.7", NULL, "198.51.100.7"},
	    /* X-Real-IP only when there is no X-Forwarded-For */
	    {"127.0.0.1/32", "127.0.0.1", NULL, "198.51.100.8", "198.51.100.8"},
	    {"127.0.0.1/32", "127.0.0.1", "  ", "198.51.100.8", "198.51.100.8"},
	    {"127.0.0.1/32", "127.0.0.1", NULL, "junk", "127.0.0.1"},
	    {"::1/128", "::1", "2001:db8::1", NULL, "2001:db8::1"},
	    {"::1/128", "::1", "2001:db8::66, 2001:db8::1", NULL, "2001:db8::1"},
	    {"", "127.0.0.1", "1.2.3.4", NULL, "127.0.0.1"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *xff[1] = {cases[i].xff};
		char out[64];

		real_client(cases[i].trusted, cases[i].peer, xff, cases[i].xff ? 1 : 0,
		            cases[i].xreal, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got %s want %s", i, out, cases[i].want);
	}
}

/* Finding 2: the left end is the attacker's, however long; the right end decides. */
static void test_real_client_long_forged_chain(void **state)
{
	size_t sizes[] = {63, 64, 65, 200, 1000};
	char out[64];

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t cap = sizes[k] * 20 + 64, len = 0;
		char *xff = malloc(cap);
		const char *one[1] = {xff};

		assert_non_null(xff);
		for (size_t i = 0; i < sizes[k]; i++)
			len += (size_t)snprintf(xff + len, cap - len, "203.0.113.%zu, ", i % 250);
		snprintf(xff + len, cap - len, "198.51.100.7");
		real_client("127.0.0.1/32", "127.0.0.1", one, 1, NULL, out, sizeof(out));
		if (strcmp(out, "198.51.100.7") != 0)
			fail_msg("%zu forged hops: got %s", sizes[k], out);
		free(xff);
	}
}

/* Over 2 KiB in one forged hop, and 8 KiB of blanks left of the last: still the right end. */
static void test_real_client_long_forged_bytes(void **state)
{
	char *xff = malloc(12000);
	const char *one[1] = {xff};
	char out[64];

	(void)state;
	assert_non_null(xff);
	memset(xff, 'a', 3000);
	strcpy(xff + 3000, ", 203.0.113.5");
	memset(xff + 3013, ' ', 8000);
	strcpy(xff + 3013 + 8000, ", 198.51.100.7");
	real_client("127.0.0.1/32", "127.0.0.1", one, 1, NULL, out, sizeof(out));
	assert_string_equal(out, "198.51.100.7");
	/* The same padding right of the last hop: garbage, so nothing is believed. */
	memset(xff, ' ', 11000);
	xff[11000] = '\0';
	memcpy(xff, "198.51.100.7", 12);
	real_client("127.0.0.1/32", "127.0.0.1", one, 1, NULL, out, sizeof(out));
	assert_string_equal(out, "127.0.0.1");
	free(xff);
}

/* A chain of trusted hops longer than the walk's bound: it stops, on a trusted hop. */
static void test_real_client_hop_bound(void **state)
{
	char xff[4096];
	const char *one[1] = {xff};
	size_t len = 0;
	char out[64];

	(void)state;
	len += (size_t)snprintf(xff, sizeof(xff), "198.51.100.7");
	for (int i = 0; i < FORWARDED_MAX_HOPS + 5; i++)
		len += (size_t)snprintf(xff + len, sizeof(xff) - len, ", 10.0.0.%d", i + 1);
	real_client("127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", one, 1, NULL, out, sizeof(out));
	assert_true(strncmp(out, "10.0.0.", 7) == 0);
	assert_string_not_equal(out, "198.51.100.7");
}

/* Several X-Forwarded-For fields are one list, read from the last field's right end. */
static void test_real_client_several_fields(void **state)
{
	const char *two[2] = {"6.6.6.6", "198.51.100.7, 10.1.2.3"};
	const char *trusted_last[2] = {"198.51.100.9", "10.1.2.3"};
	char out[64];

	(void)state;
	real_client("127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", two, 2, NULL, out, sizeof(out));
	assert_string_equal(out, "198.51.100.7");
	real_client("127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", trusted_last, 2, NULL, out,
	            sizeof(out));
	assert_string_equal(out, "198.51.100.9");
}

/* The reader answered already: its audit row must carry the same status and message. */
static void test_refusal_reasons(void **state)
{
	(void)state;
	for (int r = 0; r < HTTPD_REFUSE_COUNT; r++) {
		enum verdict_reason why = server_refusal_reason((enum httpd_refusal)r);
		enum verdict v = verdict_reason_verdict(why);

		assert_int_not_equal(why, REASON_NONE);
		assert_int_equal(verdict_reason_http_status(why),
		                 httpd_refusal_status((enum httpd_refusal)r));
		assert_string_equal(verdict_reason_message(why),
		                    httpd_refusal_message((enum httpd_refusal)r));
		assert_true(v == VERDICT_MALFORMED || v == VERDICT_TOO_LARGE);
	}
	assert_int_equal(verdict_reason_verdict(server_refusal_reason(HTTPD_REFUSE_TOO_LARGE)),
	                 VERDICT_TOO_LARGE);
	assert_int_equal(
	    verdict_reason_verdict(server_refusal_reason(HTTPD_REFUSE_HEADERS_TOO_LARGE)),
	    VERDICT_TOO_LARGE);
	assert_int_equal(verdict_reason_verdict(server_refusal_reason(HTTPD_REFUSE_TIMEOUT)),
	                 VERDICT_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_client),
	    cmocka_unit_test(test_real_client_long_forged_chain),
	    cmocka_unit_test(test_real_client_long_forged_bytes),
	    cmocka_unit_test(test_real_client_hop_bound),
	    cmocka_unit_test(test_real_client_several_fields),
	    cmocka_unit_test(test_refusal_reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
