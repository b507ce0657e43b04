/*
 * verify.c: bayar.gg's signature rules as pure functions: the PHP text of
 * amounts (what the gateway's PHP code hashes), HMAC-SHA256 over
 * invoice|status|final_amount|timestamp, constant-time comparison against
 * every configured secret, and the replay window.
 */
#include "verify.h"

#include "phpnum.h"
#include "xmalloc.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define SIG_HEX_LEN 64
#define KEY_CACHE 4

/*
 * HMAC contexts already keyed with a secret. Fetching the algorithm and
 * hashing the key cost more than the message itself; a copy of a keyed
 * context costs a few memcpys. The daemon is single-threaded and holds one
 * or two secrets (rotation); a reload with new secrets replaces entries.
 * An entry is found by the secret's SHA-256, so that the cache holds no
 * copy of the secret itself (SPEC §13: secrets kept once).
 */
static EVP_MAC *hmac_alg;
static struct {
	unsigned char id[32]; /* SHA-256 of the secret */
	EVP_MAC_CTX *ctx;
} key_cache[KEY_CACHE];
static unsigned key_cache_next;

static EVP_MAC_CTX *keyed_ctx(const char *secret)
{
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx;
	unsigned char id[32];
	unsigned slot;

	if (!EVP_Digest(secret, strlen(secret), id, NULL, EVP_sha256(), NULL))
		return NULL;
	for (unsigned i = 0; i < KEY_CACHE; i++)
		if (key_cache[i].ctx && memcmp(key_cache[i].id, id, sizeof(id)) == 0)
			return EVP_MAC_CTX_dup(key_cache[i].ctx);
	if (hmac_alg == NULL && (hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_MAC_CTX_new(hmac_alg)) == NULL)
		return NULL;
	if (!EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	slot = key_cache_next++ % KEY_CACHE;
	EVP_MAC_CTX_free(key_cache[slot].ctx); /* NULL is fine */
	memcpy(key_cache[slot].id, id, sizeof(id));
	key_cache[slot].ctx = ctx;
	return EVP_MAC_CTX_dup(ctx);
}

/* Copies src into out; -1 when it does not fit (a cut amount would sign wrong). */
static int copy_text(const char *src, char *out, size_t outlen)
{
	size_t n = strlen(src);

	if (n >= outlen)
		return -1;
	memcpy(out, src, n + 1);
	return 0;
}

static int float_text(double v, char *out, size_t outlen)
{
	char buf[48];

	if (!isfinite(v))
		return -1;
	phpnum_float(v, buf, sizeof(buf));
	return copy_text(buf, out, outlen);
}

/*
 * Parses -?[0-9]+ into *out. Returns 0, -1 when s is not of that form, or -2
 * when it is but does not fit int64.
 */
static int parse_int64(const char *s, int64_t *out)
{
	const char *p = s;
	bool neg = *p == '-';
	uint64_t mag = 0, limit;

	if (neg)
		p++;
	if (*p == '\0')
		return -1;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *p != '\0'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (d > 9)
			return -1;
		if (mag > (limit - d) / 10) {
			/* Keep checking the syntax so "999...9x" is -1, not -2. */
			while (*++p != '\0')
				if ((unsigned)(*p - '0') > 9)
					return -1;
			return -2;
		}
		mag = mag * 10 + d;
	}
	/* -(mag - 1) - 1 reaches INT64_MIN without signed overflow. */
	*out = neg && mag != 0 ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	return 0;
}

/*
 * A JSON integer literal the way PHP's json_decode sees it: an int when it
 * fits int64 ("-0" is int 0), else a float.
 */
static int integer_literal_text(const char *raw, char *out, size_t outlen)
{
	char buf[32];
	int64_t v;

	switch (parse_int64(raw, &v)) {
	case 0:
		snprintf(buf, sizeof(buf), "%" PRId64, v);
		return copy_text(buf, out, outlen);
	case -2:
		return float_text(strtod(raw, NULL), out, outlen);
	default:
		return -1;
	}
}

int verify_amount_text(const cJSON *item, const char *raw, char *out, size_t outlen)
{
	if (item == NULL || out == NULL || outlen == 0)
		return -1;
	if (cJSON_IsString(item))
		return item->valuestring != NULL ? copy_text(item->valuestring, out, outlen) : -1;
	if (!cJSON_IsNumber(item))
		return -1;

	if (raw == NULL) {
		/* Literal unknown: integral values that a double holds exactly
		 * print as PHP ints would; everything else as a PHP float. */
		double v = item->valuedouble;
		char buf[32];

		if (!isfinite(v))
			return -1;
		if (v == floor(v) && fabs(v) < 9007199254740992.0) {
			snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)v);
			return copy_text(buf, out, outlen);
		}
		return float_text(v, out, outlen);
	}

	if (raw[0] == '\0' || strspn(raw, "0123456789+-.eE") != strlen(raw))
		return -1;
	if (strpbrk(raw, ".eE") == NULL) {
		return integer_literal_text(raw, out, outlen);
	} else {
		char *end;
		double v = strtod(raw, &end);
		if (end == raw || *end != '\0')
			return -1;
		return float_text(v, out, outlen);
	}
}

void verify_sign(const char *secret, const char *invoice_id, const char *status,
                 const char *final_amount, const char *timestamp, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	const char *parts[4] = {invoice_id, status, final_amount, timestamp};
	size_t lens[4], total = 0, pos = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	char stackbuf[512], *msg = stackbuf;
	EVP_MAC_CTX *ctx;

	out[0] = '\0';
	for (int i = 0; i < 4; i++) {
		if (parts[i] == NULL)
			parts[i] = "";
		lens[i] = strlen(parts[i]);
		total += lens[i] + 1;
	}
	if (secret == NULL)
		secret = "";
	/* Invoice ids are short; only a hostile one needs the heap. */
	if (total > sizeof(stackbuf))
		msg = xmalloc(total);
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			msg[pos++] = '|';
		memcpy(msg + pos, parts[i], lens[i]);
		pos += lens[i];
	}
	ctx = keyed_ctx(secret);
	if (ctx && EVP_MAC_update(ctx, (const unsigned char *)msg, pos) &&
	    EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) && mdlen == SIG_HEX_LEN / 2) {
		for (size_t i = 0; i < mdlen; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 0xf];
		}
		out[2 * mdlen] = '\0';
	}
	/* On failure out stays "", which never equals a 64-digit signature. */
	EVP_MAC_CTX_free(ctx);
	OPENSSL_cleanse(md, sizeof(md));
	if (msg != stackbuf)
		free(msg);
}

int verify_signature(const char *const *secrets, size_t nsecrets, const char *invoice_id,
                     const char *status, const char *final_amount, const char *timestamp,
                     const char *sig_hex)
{
	char want[SIG_HEX_LEN] = {0};
	bool well_formed = sig_hex != NULL;
	int match = -1;
	size_t n = 0;

	/* Normalise to lowercase; anything but exactly 64 hex digits cannot
	 * match, but every secret is still tried so timing says nothing. */
	if (sig_hex != NULL) {
		for (; n < SIG_HEX_LEN && sig_hex[n] != '\0'; n++) {
			unsigned char c = (unsigned char)sig_hex[n];
			if (!isxdigit(c))
				well_formed = false;
			want[n] = (char)tolower(c);
		}
		if (n != SIG_HEX_LEN || sig_hex[n] != '\0')
			well_formed = false;
	}

	for (size_t i = 0; i < nsecrets; i++) {
		char got[SIG_HEX_LEN + 1] = {0};
		int same;

		verify_sign(secrets[i], invoice_id, status, final_amount, timestamp, got);
		same = CRYPTO_memcmp(got, want, SIG_HEX_LEN) == 0;
		if (same && well_formed && match < 0 && i <= (size_t)INT_MAX)
			match = (int)i;
		OPENSSL_cleanse(got, sizeof(got));
	}
	return match;
}

bool verify_timestamp(const char *ts_text, int64_t now, int64_t window)
{
	int64_t ts;
	uint64_t diff;
	size_t nd;

	if (ts_text == NULL || window < 0)
		return false;
	nd = strlen(ts_text) - (ts_text[0] == '-');
	if (nd < 1 || nd > 19 || parse_int64(ts_text, &ts) != 0)
		return false;
	/* The distance between two int64 values always fits in uint64, and
	 * unsigned subtraction cannot overflow. */
	if (ts <= now)
		diff = (uint64_t)now - (uint64_t)ts;
	else
		diff = (uint64_t)ts - (uint64_t)now;
	return diff <= (uint64_t)window;
}
