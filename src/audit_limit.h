/*
 * audit_limit.h: how much of a refused request the audit keeps (SPEC §13).
 * Accepted callbacks are recorded whole elsewhere; a refusal costs the
 * attacker nothing, so what it may make us write is bounded here: the
 * body's first bytes with its length and SHA-256, capped headers,
 * identical refusals collapsed into one row with a count, and token
 * buckets (per client address and global) on refusal rows. The clock is
 * an argument; nothing here logs or touches the database. The only memory
 * it takes is the item of a collapsed refusal, which the caller builds and
 * hands over (audit_limit_hold) and gets back when its window ends
 * (audit_limit_expire), bounded by the table's size.
 */
#ifndef BAYARHOOK_AUDIT_LIMIT_H
#define BAYARHOOK_AUDIT_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The fixed limits, sized so that a refusal row is at most
 * AUDIT_ROW_MAX_BYTES on disk (table, TOAST and indexes; README
 * "Security") and at most AUDIT_GLOBAL_BURST + AUDIT_GLOBAL_RATE rows
 * are written in any second: 150 x 12 KiB = 1.8 MB < 2 MB (SPEC §13).
 */
#define AUDIT_BODY_PREFIX 2048  /* bytes of a refused body kept, after sanitizing */
#define AUDIT_HEADER_BYTES 4096 /* names + values of a refused request's headers */
#define AUDIT_HEADER_COUNT 64   /* headers kept at most (jsonb costs ~8 bytes each) */
#define AUDIT_FIELD_BYTES 255   /* invoice_id (its accepted maximum), status, event, ... */
#define AUDIT_ROW_MAX_BYTES 12288
#define AUDIT_COLLAPSE_MS 2000 /* identical refusals within this share a row */
#define AUDIT_GLOBAL_RATE 50   /* refusal rows per second, all clients */
#define AUDIT_GLOBAL_BURST 100
#define AUDIT_CLIENT_RATE 5 /* refusal rows per second, one client address */
#define AUDIT_CLIENT_BURST 20
#define AUDIT_TABLE_WAYS 4   /* entries per set of the two tables */
#define AUDIT_TABLE_SETS 256 /* 1,024 clients and 1,024 collapse keys */
#define AUDIT_ADDR_MAX 64    /* longer client addresses are compared by prefix */

struct audit_limit;

/* What to do with one refusal. */
struct audit_ticket {
	bool write;          /* write a row for it now */
	uint32_t repeat;     /* when write: the requests the row stands for (itself included) */
	uint64_t suppressed; /* when write: this client's refusals without a row since its last */
	uint64_t dropped;    /* refusals this call kept out of the audit (the metric's increment) */
	bool hold;           /* collapsed, and its key holds no item yet: hand one over */
	unsigned slot;       /* when hold: the key's slot, for audit_limit_hold() */
};

struct audit_limit *audit_limit_new(void);
void audit_limit_free(struct audit_limit *al);

/*
 * Decides about one refused request of client addr with kind (an
 * integer naming why it was refused: its verdict, or finer) and body
 * digest sha256, at now_ms on a
 * monotonic clock. Every request ends up in exactly one of: a row's
 * repeat; a later row's repeat (collapsed: counted until the window ends,
 * then written by audit_limit_expire() with the item held for it, or by
 * the next identical refusal if that comes first); a row's suppressed and
 * the metric (dropped), when a token bucket is empty or its table entry is
 * reused.
 */
void audit_limit_admit(struct audit_limit *al, int64_t now_ms, const char *addr, int kind,
                       const unsigned char sha256[32], struct audit_ticket *t);

/*
 * After a ticket with hold: the row its collapsed refusals will share,
 * item (a JSON object without "repeat" and "suppressed") and its body
 * prefix (may be NULL), both taken over.
 */
void audit_limit_hold(struct audit_limit *al, const struct audit_ticket *t, char *item, char *body,
                      size_t body_len);

/*
 * The collapsed refusals whose window has ended by now_ms (every one when
 * all: the daemon stops): for each, done() gets the ticket of their row
 * (write, repeat, suppressed, or dropped when a bucket is empty) and the
 * item held for it, which it takes over (item NULL: none was held; the
 * ticket then only drops). Call it a few times a second.
 */
void audit_limit_expire(struct audit_limit *al, int64_t now_ms, bool all,
                        void (*done)(void *arg, const struct audit_ticket *t, char *item,
                                     char *body, size_t body_len),
                        void *arg);

/*
 * The audit's text of body[0..len): invalid UTF-8 and NUL bytes become
 * U+FFFD (what PostgreSQL's text accepts), cut on a character boundary
 * so the result is at most max bytes. out has room for max + 1; returns
 * the length written (out is NUL-terminated).
 */
size_t audit_text_prefix(const char *body, size_t len, char *out, size_t max);

/* The SHA-256 of body[0..len) as 64 lower-case hex digits and a NUL. */
void audit_sha256_hex(const char *body, size_t len, unsigned char sha[32], char hex[65]);

/* Headers of a refusal, capped: AUDIT_HEADER_COUNT and AUDIT_HEADER_BYTES. */
struct audit_headers {
	size_t bytes;
	unsigned kept;
	unsigned dropped; /* headers left out */
};

/* Whether a header of that name and value still fits; counts it either way. */
bool audit_headers_keep(struct audit_headers *h, const char *name, const char *value);

#endif
