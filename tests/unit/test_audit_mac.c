/*
 * test_audit_mac.c: the audit chain's C pieces (SPEC §11): HMAC-SHA256 from
 * pads against RFC 4231, the row subkeys ingest() gets, row and redaction
 * macs against values computed apart (Python's hmac module: the same
 * numbers tests/integration/test_audit_chain.py checks the SQL against),
 * and the lanes of audit_chain.c: where a batch starts, what a commit, a
 * rollback and an unknown outcome do to them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit_chain.h"
#include "audit_mac.h"
#include "log.h"

#define KEY "audit-key-for-tests-0123456789abcdef"

static void hex_of(const unsigned char *mac, char out[65])
{
	audit_mac_hex(mac, out);
}

static void test_rfc4231(void **state)
{
	static const struct {
		unsigned char key[131];
		size_t keylen;
		const char *msg;
		const char *want;
	} v[] = {
	    {{0},
	     20,
	     "Hi There",
	     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	    {"Jefe", 4, "what do ya want for nothing?",
	     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	    {{0},
	     131,
	     "Test Using Larger Than Block-Size Key - Hash Key First",
	     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	};
	unsigned char key0[20], key2[131];

	(void)state;
	memset(key0, 0x0b, sizeof(key0));
	memset(key2, 0xaa, sizeof(key2));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct audit_key k;
		unsigned char mac[AUDIT_MAC_LEN];
		char hex[65];
		const unsigned char *key = i == 0 ? key0 : i == 2 ? key2 : v[i].key;

		audit_key_init(&k, key, v[i].keylen);
		audit_hmac_pads(k.pads, v[i].msg, strlen(v[i].msg), mac);
		hex_of(mac, hex);
		assert_string_equal(hex, v[i].want);
	}
}

/* The subkey's pads are HMAC(key, tag || be64 lane || be64 seq) made pads. */
static void test_row_pads_are_the_subkey(void **state)
{
	struct audit_key k, sub_key;
	unsigned char msg[19 + 16] = "bayarhook-audit-row", sub[AUDIT_MAC_LEN];
	unsigned char pads[AUDIT_PADS_LEN];

	(void)state;
	audit_key_init(&k, KEY, strlen(KEY));
	/* lane 0x0102030405060708, seq 9, big-endian */
	for (int i = 0; i < 8; i++)
		msg[19 + i] = (unsigned char)(i + 1);
	memset(msg + 27, 0, 7);
	msg[34] = 9;
	audit_hmac_pads(k.pads, msg, sizeof(msg), sub);
	audit_key_init(&sub_key, sub, sizeof(sub));
	audit_row_pads(&k, 0x0102030405060708, 9, pads);
	assert_memory_equal(pads, sub_key.pads, AUDIT_PADS_LEN);
	/* Another position, another subkey. */
	audit_row_pads(&k, 0x0102030405060708, 10, pads);
	assert_memory_not_equal(pads, sub_key.pads, AUDIT_PADS_LEN);
}

/* Known answers, computed with Python's hmac (the test file's header). */
static void test_row_and_redaction_macs(void **state)
{
	struct audit_key k;
	unsigned char d[AUDIT_MAC_LEN], prev[AUDIT_MAC_LEN], now[AUDIT_MAC_LEN];
	unsigned char mac[AUDIT_MAC_LEN], pads[AUDIT_PADS_LEN], msg[64], again[AUDIT_MAC_LEN];
	char hex[65];

	(void)state;
	audit_key_init(&k, KEY, strlen(KEY));
	memset(d, 0x11, sizeof(d));
	memset(prev, 0x22, sizeof(prev));
	memset(now, 0x33, sizeof(now));
	audit_row_mac(&k, 12345, 7, d, prev, mac);
	hex_of(mac, hex);
	assert_string_equal(hex,
	                    "c66e2fef35c5372ecbdeed2ca0570d71d9ae6c26d599609e124fb14dd4dc757f");
	/* What ingest() does with the pads it is sent: the same mac. */
	audit_row_pads(&k, 12345, 7, pads);
	memcpy(msg, d, 32);
	memcpy(msg + 32, prev, 32);
	audit_hmac_pads(pads, msg, sizeof(msg), again);
	assert_true(audit_mac_equal(mac, again));

	audit_redaction_mac(&k, 42, d, now, mac);
	hex_of(mac, hex);
	assert_string_equal(hex,
	                    "df8e865baa76bd096a8cad9a638b39273112da67b8cec42588830359d96caa35");
}

static void test_hex(void **state)
{
	unsigned char mac[AUDIT_MAC_LEN], back[AUDIT_MAC_LEN];
	char hex[65], pg[67];

	(void)state;
	for (int i = 0; i < AUDIT_MAC_LEN; i++)
		mac[i] = (unsigned char)(i * 7 + 3);
	audit_mac_hex(mac, hex);
	assert_int_equal(audit_mac_parse(hex, back), 0);
	assert_memory_equal(mac, back, AUDIT_MAC_LEN);
	snprintf(pg, sizeof(pg), "\\x%s", hex); /* PostgreSQL's bytea text */
	assert_int_equal(audit_mac_parse(pg, back), 0);
	assert_memory_equal(mac, back, AUDIT_MAC_LEN);
	hex[5] = 'g';
	assert_int_equal(audit_mac_parse(hex, back), -1);
	assert_int_equal(audit_mac_parse("abcd", back), -1);
}

static int64_t be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

/* The parameter: lane, next seq, head, then one subkey's pads per item. */
static void test_chain_lanes(void **state)
{
	struct audit_chain *c = audit_chain_new();
	struct audit_key k;
	unsigned char *p, *q, head[AUDIT_MAC_LEN], pads[AUDIT_PADS_LEN], zero[AUDIT_MAC_LEN] = {0};
	size_t len, qlen;
	int slot, other;
	int64_t lane;

	(void)state;
	assert_int_equal(audit_chain_begin(c, 3, &p, &len), -1); /* no key: no chain */
	assert_null(p);
	audit_chain_set_key(c, KEY);
	audit_key_init(&k, KEY, strlen(KEY));
	slot = audit_chain_begin(c, 3, &p, &len);
	assert_true(slot >= 0);
	assert_int_equal(len, 48 + 3 * AUDIT_PADS_LEN);
	lane = be64(p);
	assert_true(lane > 0);
	assert_int_equal(be64(p + 8), 1);
	assert_memory_equal(p + 16, zero, AUDIT_MAC_LEN);
	audit_row_pads(&k, lane, 3, pads);
	assert_memory_equal(p + 48 + 2 * AUDIT_PADS_LEN, pads, AUDIT_PADS_LEN);

	/* Busy: a second batch meanwhile takes another lane. */
	other = audit_chain_begin(c, 1, &q, &qlen);
	assert_true(other >= 0 && other != slot);
	assert_true(be64(q) != lane);
	free(q);
	audit_chain_failed(c, other, true);

	/* Committed two rows: the lane goes on at 3 from their last mac. */
	memset(head, 0x5a, sizeof(head));
	audit_chain_committed(c, slot, 2, head);
	free(p);
	slot = audit_chain_begin(c, 1, &p, &len);
	assert_int_equal(be64(p), lane);
	assert_int_equal(be64(p + 8), 3);
	assert_memory_equal(p + 16, head, AUDIT_MAC_LEN);
	free(p);
	/* Rolled back: the lane stands where it stood. */
	audit_chain_failed(c, slot, true);
	slot = audit_chain_begin(c, 1, &p, &len);
	assert_int_equal(be64(p), lane);
	assert_int_equal(be64(p + 8), 3);
	free(p);
	/* Unknown outcome: that lane ends; the next batch starts a new one at 1. */
	audit_chain_failed(c, slot, false);
	slot = audit_chain_begin(c, 1, &p, &len);
	assert_true(be64(p) != lane);
	assert_int_equal(be64(p + 8), 1);
	lane = be64(p);
	free(p);
	audit_chain_committed(c, slot, 0, zero); /* no audit row: nothing moves */
	/* Another key: new lanes. */
	audit_chain_set_key(c, KEY "-rotated");
	slot = audit_chain_begin(c, 1, &p, &len);
	assert_true(be64(p) != lane);
	free(p);
	audit_chain_failed(c, slot, true);
	audit_chain_set_key(c, NULL);
	assert_false(audit_chain_enabled(c));
	audit_chain_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4231),
	    cmocka_unit_test(test_row_pads_are_the_subkey),
	    cmocka_unit_test(test_row_and_redaction_macs),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_chain_lanes),
	};

	log_init("test_audit_mac", false, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
