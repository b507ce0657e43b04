/*
 * audit_refusal.h: the audit row of a refused request, in the bounded form
 * of SPEC §13 (audit_limit.h decides what is kept), handed to the store
 * without waiting for it: a refusal's answer never depends on its row.
 */
#ifndef BAYARHOOK_AUDIT_REFUSAL_H
#define BAYARHOOK_AUDIT_REFUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "store.h"
#include "verdict.h"

/* What is known of a refused request; any pointer may be NULL. */
struct audit_refusal {
	enum verdict verdict;
	enum verdict_reason reason; /* refusals of different reasons are never collapsed */
	int http_status;
	const char *error; /* the refusal's public text */
	const char *remote_addr;
	const char *peer_addr;
	const char *method;
	const struct httpd_header *headers;
	size_t nheaders;
	const char *body; /* what was read of it */
	size_t body_len;
	/* The whole body's length when more than body_len (refused unread): no SHA-256 then. */
	uint64_t body_total;
	/* What could be read of the refused event: it helps the audit, capped. */
	const char *invoice_id;
	const char *status;
	const char *event_name;
	bool signature_valid; /* a stale timestamp under a good signature (SPEC §7) */
	int secret_index;     /* the secret that verified that signature; -1: none */
};

/*
 * Writes the refusal's row, or counts it (collapsed, or suppressed in
 * bayarhook_audit_suppressed_total) when the limits of the store's
 * audit_limit keep it out. Returns at once; the row follows.
 */
void audit_refusal_store(struct store *st, const struct audit_refusal *r);

/*
 * Writes the rows of identical refusals collapsed in a window that has
 * ended (all: every one held, for a daemon that stops), so that every
 * refused request is in a row's repeat or in the suppressed metric within
 * about AUDIT_COLLAPSE_MS. The daemon calls it a few times a second.
 */
void audit_refusal_flush(struct store *st, bool all);

#endif
