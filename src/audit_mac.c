/*
 * audit_mac.c: HMAC-SHA256 built from two SHA-256 passes over the key's
 * pads (RFC 2104), which is also how ingest() computes it with core
 * sha256() (sql/functions/audit.sql: audit_hmac); see audit_mac.h.
 */
#include "audit_mac.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define BLOCK 64
#define ROW_TAG "bayarhook-audit-row"
#define REDACTION_TAG "bayarhook-audit-redaction"

/* Messages here are short: tags, ids, digests (at most 2 * 32 + 34 bytes). */
#define MSG_MAX 128

static void sha256(const void *data, size_t len, unsigned char out[AUDIT_MAC_LEN])
{
	/* Cannot fail for SHA-256 in memory; an OpenSSL that cannot is unusable anyway. */
	(void)EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

static void put_be64(unsigned char *p, int64_t v)
{
	uint64_t u = (uint64_t)v;

	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)u;
		u >>= 8;
	}
}

static void pads_of(const unsigned char *key, size_t len, unsigned char pads[AUDIT_PADS_LEN])
{
	unsigned char k[BLOCK] = {0};

	memcpy(k, key, len);
	for (int i = 0; i < BLOCK; i++) {
		pads[i] = k[i] ^ 0x36;
		pads[BLOCK + i] = k[i] ^ 0x5c;
	}
	OPENSSL_cleanse(k, sizeof(k));
}

void audit_key_init(struct audit_key *k, const void *key, size_t len)
{
	unsigned char h[AUDIT_MAC_LEN];

	if (len > BLOCK) {
		sha256(key, len, h);
		pads_of(h, sizeof(h), k->pads);
		OPENSSL_cleanse(h, sizeof(h));
		return;
	}
	pads_of(key, len, k->pads);
}

void audit_hmac_pads(const unsigned char *pads, const void *msg, size_t len,
                     unsigned char out[AUDIT_MAC_LEN])
{
	unsigned char buf[BLOCK + MSG_MAX];
	EVP_MD_CTX *ctx;

	if (len <= MSG_MAX) {
		memcpy(buf, pads, BLOCK);
		memcpy(buf + BLOCK, msg, len);
		sha256(buf, BLOCK + len, buf + BLOCK);
	} else {
		/* Not used by the chain's own messages; kept general for the tests' vectors. */
		ctx = EVP_MD_CTX_new();
		(void)EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		(void)EVP_DigestUpdate(ctx, pads, BLOCK);
		(void)EVP_DigestUpdate(ctx, msg, len);
		(void)EVP_DigestFinal_ex(ctx, buf + BLOCK, NULL);
		EVP_MD_CTX_free(ctx);
	}
	memcpy(buf, pads + BLOCK, BLOCK);
	sha256(buf, BLOCK + AUDIT_MAC_LEN, out);
	OPENSSL_cleanse(buf, sizeof(buf));
}

void audit_row_pads(const struct audit_key *k, int64_t lane, int64_t seq,
                    unsigned char pads[AUDIT_PADS_LEN])
{
	unsigned char msg[sizeof(ROW_TAG) - 1 + 16], sub[AUDIT_MAC_LEN];

	memcpy(msg, ROW_TAG, sizeof(ROW_TAG) - 1);
	put_be64(msg + sizeof(ROW_TAG) - 1, lane);
	put_be64(msg + sizeof(ROW_TAG) - 1 + 8, seq);
	audit_hmac_pads(k->pads, msg, sizeof(msg), sub);
	pads_of(sub, sizeof(sub), pads);
	OPENSSL_cleanse(sub, sizeof(sub));
}

void audit_row_mac(const struct audit_key *k, int64_t lane, int64_t seq,
                   const unsigned char digest[AUDIT_MAC_LEN],
                   const unsigned char prev[AUDIT_MAC_LEN], unsigned char out[AUDIT_MAC_LEN])
{
	unsigned char pads[AUDIT_PADS_LEN], msg[2 * AUDIT_MAC_LEN];

	audit_row_pads(k, lane, seq, pads);
	memcpy(msg, digest, AUDIT_MAC_LEN);
	memcpy(msg + AUDIT_MAC_LEN, prev, AUDIT_MAC_LEN);
	audit_hmac_pads(pads, msg, sizeof(msg), out);
	OPENSSL_cleanse(pads, sizeof(pads));
}

void audit_redaction_mac(const struct audit_key *k, int64_t id,
                         const unsigned char orig[AUDIT_MAC_LEN],
                         const unsigned char now[AUDIT_MAC_LEN], unsigned char out[AUDIT_MAC_LEN])
{
	unsigned char msg[sizeof(REDACTION_TAG) - 1 + 8 + 2 * AUDIT_MAC_LEN];
	size_t n = sizeof(REDACTION_TAG) - 1;

	memcpy(msg, REDACTION_TAG, n);
	put_be64(msg + n, id);
	memcpy(msg + n + 8, orig, AUDIT_MAC_LEN);
	memcpy(msg + n + 8 + AUDIT_MAC_LEN, now, AUDIT_MAC_LEN);
	audit_hmac_pads(k->pads, msg, sizeof(msg), out);
}

int audit_mac_equal(const unsigned char a[AUDIT_MAC_LEN], const unsigned char b[AUDIT_MAC_LEN])
{
	return CRYPTO_memcmp(a, b, AUDIT_MAC_LEN) == 0;
}

void audit_mac_hex(const unsigned char mac[AUDIT_MAC_LEN], char out[2 * AUDIT_MAC_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < AUDIT_MAC_LEN; i++) {
		out[2 * i] = digits[mac[i] >> 4];
		out[2 * i + 1] = digits[mac[i] & 15];
	}
	out[2 * AUDIT_MAC_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int audit_mac_parse(const char *hex, unsigned char mac[AUDIT_MAC_LEN])
{
	if (hex[0] == '\\' && hex[1] == 'x')
		hex += 2;
	if (strlen(hex) != 2 * AUDIT_MAC_LEN)
		return -1;
	for (int i = 0; i < AUDIT_MAC_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		mac[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
