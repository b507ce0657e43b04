/*
 * audit_mac.h: the keyed hashes of the audit chain (SPEC §11; the design is
 * in sql/012_audit_chain.sql). All HMAC-SHA256, all pure: the daemon uses
 * them to send each row's subkey pads to ingest(), `audit verify` to check
 * the macs ingest() stored, `audit redact` to vouch for a redaction.
 */
#ifndef BAYARHOOK_AUDIT_MAC_H
#define BAYARHOOK_AUDIT_MAC_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_MAC_LEN 32   /* HMAC-SHA256 */
#define AUDIT_PADS_LEN 128 /* key XOR ipad, then key XOR opad: 64 bytes each */

/* A key's HMAC pads, so that neither side keeps hashing the key itself. */
struct audit_key {
	unsigned char pads[AUDIT_PADS_LEN];
};

/* The pads of key (len bytes; a key longer than 64 bytes is hashed first, as HMAC says). */
void audit_key_init(struct audit_key *k, const void *key, size_t len);
/* HMAC-SHA256 of msg under the key whose pads are pads (AUDIT_PADS_LEN bytes). */
void audit_hmac_pads(const unsigned char *pads, const void *msg, size_t len,
                     unsigned char out[AUDIT_MAC_LEN]);
/*
 * The subkey of row position (lane, seq): HMAC(key, "bayarhook-audit-row"
 * || be64(lane) || be64(seq)), as its pads: what ingest() gets per row.
 */
void audit_row_pads(const struct audit_key *k, int64_t lane, int64_t seq,
                    unsigned char pads[AUDIT_PADS_LEN]);
/* A row's mac: HMAC(subkey(lane, seq), digest || prev), as ingest() computes it. */
void audit_row_mac(const struct audit_key *k, int64_t lane, int64_t seq,
                   const unsigned char digest[AUDIT_MAC_LEN],
                   const unsigned char prev[AUDIT_MAC_LEN], unsigned char out[AUDIT_MAC_LEN]);
/*
 * A redaction's mac: HMAC(key, "bayarhook-audit-redaction" || be64(id) ||
 * the digest the chain covers || the digest after the redaction).
 */
void audit_redaction_mac(const struct audit_key *k, int64_t id,
                         const unsigned char orig[AUDIT_MAC_LEN],
                         const unsigned char now[AUDIT_MAC_LEN], unsigned char out[AUDIT_MAC_LEN]);
/* Constant-time comparison of two macs. */
int audit_mac_equal(const unsigned char a[AUDIT_MAC_LEN], const unsigned char b[AUDIT_MAC_LEN]);
/* Lowercase hex, 64 digits and a NUL. */
void audit_mac_hex(const unsigned char mac[AUDIT_MAC_LEN], char out[2 * AUDIT_MAC_LEN + 1]);
/* hex (with or without PostgreSQL's "\x") into mac: 0, or -1 when it is not 64 hex digits. */
int audit_mac_parse(const char *hex, unsigned char mac[AUDIT_MAC_LEN]);

#endif
