/*
 * verify.h: the signature rules of bayar.gg, as pure functions.
 * message = invoice_id|status|final_amount|timestamp, HMAC-SHA256, hex.
 */
#ifndef BAYARHOOK_VERIFY_H
#define BAYARHOOK_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/*
 * PHP's string form of a decoded JSON value used in the signature:
 * a JSON integer gives its digits (as PHP int, or float when it overflows
 * int64), a string is used as is, a fraction/exponent number gives PHP's
 * float-to-string with precision 14 (50123.0 -> "50123", 1e15 -> "1.0E+15").
 * raw is the literal number text from the body (needed to tell 5 from 5.0),
 * NUL-terminated and nothing else; may be NULL for strings. For a number
 * with raw NULL (literal unknown) integral values below 2^53 print as
 * integers, others as PHP floats. Returns 0 or -1 (not representable:
 * inf/nan, array, object, bool, null, too long for out).
 */
int verify_amount_text(const cJSON *item, const char *raw, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Lowercase hex HMAC-SHA256 of invoice|status|amount|timestamp; out >= 65. */
void verify_sign(const char *secret, const char *invoice_id, const char *status,
                 const char *final_amount, const char *timestamp, char out[65]);

/*
 * Constant-time check of sig_hex (any case) against every secret.
 * Returns the index of the matching secret, or -1.
 */
int verify_signature(const char *const *secrets, size_t nsecrets, const char *invoice_id,
                     const char *status, const char *final_amount, const char *timestamp,
                     const char *sig_hex);

/*
 * Timestamp text must be decimal digits (optionally a leading '-'), fit in
 * int64; |now - ts| <= window passes. Returns true when inside.
 */
bool verify_timestamp(const char *ts_text, int64_t now, int64_t window);

#endif
