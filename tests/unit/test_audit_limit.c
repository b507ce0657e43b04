/* test_audit_limit.c: the bounds on refusal rows (SPEC §13), on an injected clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_limit.h"

static const unsigned char sha_a[32] = {1};
static const unsigned char sha_b[32] = {2};

static struct audit_ticket admit(struct audit_limit *al, int64_t ms, const char *addr,
                                 const unsigned char *sha)
{
	struct audit_ticket t;

	audit_limit_admit(al, ms, addr, 3, sha, &t);
	return t;
}

/* A distinct body digest per i: no collapsing, only the buckets at work. */
static const unsigned char *sha_n(unsigned char buf[32], unsigned i)
{
	memset(buf, 0, 32);
	memcpy(buf, &i, sizeof(i));
	buf[31] = 0xee;
	return buf;
}

static void test_client_bucket_burst_then_refill(void **state)
{
	struct audit_limit *al = audit_limit_new();
	unsigned char sha[32];
	struct audit_ticket t;
	unsigned written = 0, i;
	uint64_t dropped = 0;

	(void)state;
	for (i = 0; i < 100; i++) {
		t = admit(al, 1000, "192.0.2.1", sha_n(sha, i));
		written += t.write;
		dropped += t.dropped;
	}
	assert_int_equal(written, AUDIT_CLIENT_BURST);
	assert_int_equal(dropped, 100 - AUDIT_CLIENT_BURST);
	/* One second later: AUDIT_CLIENT_RATE tokens, no more. */
	written = 0;
	for (i = 100; i < 200; i++) {
		t = admit(al, 2000, "192.0.2.1", sha_n(sha, i));
		/* The first row after the drops says how many were kept out before it. */
		if (i == 100) {
			assert_true(t.write);
			assert_int_equal(t.suppressed, 100 - AUDIT_CLIENT_BURST);
		}
		written += t.write;
	}
	assert_int_equal(written, AUDIT_CLIENT_RATE);
	t = admit(al, 10000, "192.0.2.1", sha_n(sha, 500));
	assert_true(t.write);
	assert_int_equal(t.suppressed, 100 - AUDIT_CLIENT_RATE);
	t = admit(al, 20000, "192.0.2.1", sha_n(sha, 501));
	assert_true(t.write);
	assert_int_equal(t.suppressed, 0);
	audit_limit_free(al);
}

static void test_global_bucket_bounds_all_clients(void **state)
{
	struct audit_limit *al = audit_limit_new();
	unsigned char sha[32];
	char addr[32];
	unsigned written = 0;

	(void)state;
	/* Many addresses, each within its own burst: the global bucket still holds. */
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "198.51.100.%u", i % 200);
		written += admit(al, 5000, addr, sha_n(sha, i)).write;
	}
	assert_int_equal(written, AUDIT_GLOBAL_BURST);
	/* Over 10 s of a steady flood: burst + 10 s of rate, whatever the addresses. */
	for (unsigned ms = 5001; ms <= 15000; ms++) {
		snprintf(addr, sizeof(addr), "203.0.113.%u", ms % 250);
		written += admit(al, ms, addr, sha_n(sha, 100000 + ms)).write;
	}
	assert_true(written <= AUDIT_GLOBAL_BURST + 10 * AUDIT_GLOBAL_RATE);
	assert_true(written >= AUDIT_GLOBAL_BURST + 10 * AUDIT_GLOBAL_RATE - 1);
	audit_limit_free(al);
}

static void test_collapse_within_and_after_window(void **state)
{
	struct audit_limit *al = audit_limit_new();
	struct audit_ticket t;

	(void)state;
	t = admit(al, 0, "192.0.2.7", sha_a);
	assert_true(t.write);
	assert_int_equal(t.repeat, 1);
	/* The same refusal within the window: a count, no row, nothing dropped. */
	for (int i = 1; i <= 999; i++) {
		t = admit(al, i * (AUDIT_COLLAPSE_MS / 1000), "192.0.2.7", sha_a);
		assert_false(t.write);
		assert_int_equal(t.dropped, 0);
		/* No item held yet (none handed over): each asks for one. */
		assert_true(t.hold);
	}
	/* Another body, another verdict or another client is not the same refusal. */
	assert_true(admit(al, 50, "192.0.2.7", sha_b).write);
	audit_limit_admit(al, 60, "192.0.2.7", 4, sha_a, &t);
	assert_true(t.write);
	assert_true(admit(al, 70, "192.0.2.8", sha_a).write);
	/* After the window, the next one stands for itself and the 999 before it. */
	t = admit(al, AUDIT_COLLAPSE_MS, "192.0.2.7", sha_a);
	assert_true(t.write);
	assert_int_equal(t.repeat, 1000);
	assert_int_equal(t.suppressed, 0);
	/* And a new window begins. */
	assert_false(admit(al, AUDIT_COLLAPSE_MS + 1, "192.0.2.7", sha_a).write);
	t = admit(al, 2 * AUDIT_COLLAPSE_MS, "192.0.2.7", sha_a);
	assert_true(t.write);
	assert_int_equal(t.repeat, 2);
	audit_limit_free(al);
}

struct expired {
	unsigned rows, repeat;
	uint64_t dropped;
	char item[64];
};

static void expired_cb(void *arg, const struct audit_ticket *t, char *item, char *body,
                       size_t body_len)
{
	struct expired *e = arg;

	e->dropped += t->dropped;
	if (t->write) {
		assert_non_null(item);
		e->rows++;
		e->repeat += t->repeat;
		snprintf(e->item, sizeof(e->item), "%s|%.*s", item, (int)body_len, body);
	}
	free(item);
	free(body);
}

static char *dup(const char *s)
{
	char *p = malloc(strlen(s) + 1);

	assert_non_null(p);
	strcpy(p, s);
	return p;
}

/*
 * Collapsed refusals get their row when the window ends, written with the
 * item held for them: none is left counted in memory only.
 */
static void test_expire_writes_the_collapsed_row(void **state)
{
	struct audit_limit *al = audit_limit_new();
	struct expired e = {0};
	struct audit_ticket t;

	(void)state;
	assert_true(admit(al, 0, "192.0.2.7", sha_a).write);
	t = admit(al, 10, "192.0.2.7", sha_a);
	assert_true(t.hold);
	audit_limit_hold(al, &t, dup("{\"n\":1}"), dup("body"), 4);
	for (int i = 2; i <= 4; i++) {
		t = admit(al, 10 * i, "192.0.2.7", sha_a);
		assert_false(t.write);
		assert_false(t.hold); /* one item is held already */
	}
	/* Within the window: nothing yet. */
	audit_limit_expire(al, AUDIT_COLLAPSE_MS - 1, false, expired_cb, &e);
	assert_int_equal(e.rows, 0);
	/* After it: one row standing for the four collapsed refusals, with the held item. */
	audit_limit_expire(al, AUDIT_COLLAPSE_MS, false, expired_cb, &e);
	assert_int_equal(e.rows, 1);
	assert_int_equal(e.repeat, 4);
	assert_int_equal(e.dropped, 0);
	assert_string_equal(e.item, "{\"n\":1}|body");
	/* Written once: the next pass finds nothing. */
	audit_limit_expire(al, 2 * AUDIT_COLLAPSE_MS, true, expired_cb, &e);
	assert_int_equal(e.rows, 1);
	/* A new window began at the flush: the same refusal is counted again... */
	t = admit(al, AUDIT_COLLAPSE_MS + 5, "192.0.2.7", sha_a);
	assert_false(t.write);
	audit_limit_hold(al, &t, dup("{\"n\":2}"), NULL, 0);
	/* ...and a stopping daemon writes it at once (all), before its window ends. */
	audit_limit_expire(al, AUDIT_COLLAPSE_MS + 6, true, expired_cb, &e);
	assert_int_equal(e.rows, 2);
	assert_int_equal(e.repeat, 5);
	/* Collapsed with no item held (the caller gave none): counted as kept out. */
	t = admit(al, 3 * AUDIT_COLLAPSE_MS, "192.0.2.7", sha_b);
	assert_true(t.write);
	t = admit(al, 3 * AUDIT_COLLAPSE_MS + 1, "192.0.2.7", sha_b);
	assert_true(t.hold);
	audit_limit_expire(al, 5 * AUDIT_COLLAPSE_MS, false, expired_cb, &e);
	assert_int_equal(e.rows, 2);
	assert_int_equal(e.dropped, 1);
	/* A held item still there when the table is freed is freed with it (ASan). */
	t = admit(al, 6 * AUDIT_COLLAPSE_MS, "192.0.2.8", sha_a);
	t = admit(al, 6 * AUDIT_COLLAPSE_MS + 1, "192.0.2.8", sha_a);
	audit_limit_hold(al, &t, dup("{\"n\":3}"), dup("x"), 1);
	audit_limit_free(al);
}

/*
 * More collapse keys than the table holds: memory does not grow, and the
 * counts of a reused entry are not lost but suppressed (metric, next row).
 */
static void test_bounded_table_counts_what_it_forgets(void **state)
{
	struct audit_limit *al = audit_limit_new();
	unsigned char sha[32];
	uint64_t dropped = 0;
	struct audit_ticket t;
	unsigned n = 4 * AUDIT_TABLE_SETS * AUDIT_TABLE_WAYS;

	(void)state;
	/*
	 * Each key once (past the client's burst, suppressed), then once more
	 * within its window: one pending count each, which a reused entry drops.
	 */
	for (unsigned i = 0; i < n; i++) {
		dropped += admit(al, 0, "192.0.2.9", sha_n(sha, i)).dropped;
		t = admit(al, 1, "192.0.2.9", sha_n(sha, i));
		assert_false(t.write);
		dropped += t.dropped;
	}
	/* The table holds 1,024 keys: at least the pending counts of the others are dropped. */
	assert_true(dropped >=
	            (n - AUDIT_CLIENT_BURST) + (n - AUDIT_TABLE_SETS * AUDIT_TABLE_WAYS));
	assert_true(dropped <= 2 * n);
	t = admit(al, 100000, "192.0.2.9", sha_a);
	assert_true(t.write);
	/* This client's next row carries them (and the bucket's drops before). */
	assert_true(t.suppressed >= dropped);
	audit_limit_free(al);
}

static void test_clock_going_back_refills_nothing(void **state)
{
	struct audit_limit *al = audit_limit_new();
	unsigned char sha[32];
	unsigned written = 0;

	(void)state;
	for (unsigned i = 0; i < 100; i++)
		written += admit(al, 100000 - (int64_t)i * 1000, "192.0.2.10", sha_n(sha, i)).write;
	assert_int_equal(written, AUDIT_CLIENT_BURST);
	audit_limit_free(al);
}

static void test_text_prefix(void **state)
{
	char out[AUDIT_BODY_PREFIX + 1], big[10000];
	size_t n;

	(void)state;
	n = audit_text_prefix("abc", 3, out, 16);
	assert_int_equal(n, 3);
	assert_string_equal(out, "abc");
	/* NUL and invalid bytes become U+FFFD; a valid é stays. */
	n = audit_text_prefix("a\0\xff\xc3\xa9", 5, out, 16);
	assert_int_equal(n, 1 + 3 + 3 + 2);
	assert_memory_equal(out, "a\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9", n);
	/* Cut on a character boundary, never past max. */
	n = audit_text_prefix("ab\xc3\xa9", 4, out, 3);
	assert_int_equal(n, 2);
	memset(big, 0xff, sizeof(big));
	n = audit_text_prefix(big, sizeof(big), out, AUDIT_BODY_PREFIX);
	assert_true(n <= AUDIT_BODY_PREFIX);
	assert_true(n > AUDIT_BODY_PREFIX - 3);
	/* A truncated sequence at the end is invalid, not read past. */
	n = audit_text_prefix("x\xe2\x82", 3, out, 16);
	assert_int_equal(n, 1 + 3 + 3);
}

static void test_sha256(void **state)
{
	unsigned char sha[32];
	char hex[65];

	(void)state;
	audit_sha256_hex("abc", 3, sha, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	audit_sha256_hex(NULL, 0, sha, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_headers_capped(void **state)
{
	struct audit_headers h = {0};
	char value[AUDIT_HEADER_BYTES + 10];
	unsigned kept = 0;

	(void)state;
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	/* One header alone over the cap is left out; small ones after it still fit. */
	assert_false(audit_headers_keep(&h, "X-Big", value));
	for (int i = 0; i < 200; i++)
		kept += audit_headers_keep(&h, "X-A", "1");
	assert_int_equal(kept, AUDIT_HEADER_COUNT);
	assert_int_equal(h.dropped, 1 + 200 - AUDIT_HEADER_COUNT);
	/* Bytes count as stored: an invalid byte costs 3 (U+FFFD). */
	memset(&h, 0, sizeof(h));
	memset(value, 0xff, AUDIT_HEADER_BYTES / 3 + 1);
	value[AUDIT_HEADER_BYTES / 3 + 1] = '\0';
	assert_false(audit_headers_keep(&h, "", value));
	assert_true(h.bytes <= AUDIT_HEADER_BYTES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_bucket_burst_then_refill),
	    cmocka_unit_test(test_global_bucket_bounds_all_clients),
	    cmocka_unit_test(test_collapse_within_and_after_window),
	    cmocka_unit_test(test_expire_writes_the_collapsed_row),
	    cmocka_unit_test(test_bounded_table_counts_what_it_forgets),
	    cmocka_unit_test(test_clock_going_back_refills_nothing),
	    cmocka_unit_test(test_text_prefix),
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_headers_capped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
