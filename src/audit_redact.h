/*
 * audit_redact.h: personal data out of stored callbacks (SPEC §11): bayar.gg's
 * customer_name, customer_email and customer_phone become "[redacted]" in
 * bodies and headers (the text functions are in sql/functions/audit.sql).
 * A chained row keeps the digest its mac covers (redacted_digest) and
 * redaction_mac vouches, under the audit key, that the change was a
 * redaction, so `audit verify` still passes. One pass is two statements in
 * one transaction: AUDIT_REDACT_SELECT locks the rows and gives their
 * digests before and after, C computes the macs, AUDIT_REDACT_UPDATE
 * rewrites them. `audit redact` runs it from the shell (cli_audit.c); the
 * daemon runs [audit] redact_after on a timer (audit_redact_start).
 */
#ifndef BAYARHOOK_AUDIT_REDACT_H
#define BAYARHOOK_AUDIT_REDACT_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "audit_mac.h"

/* $1 invoice (NULL: any), $2 days (NULL: any age), $3 at most this many rows. */
extern const char AUDIT_REDACT_SELECT[];
/* $1 ids, $2 digests the chain covers, $3 redaction macs: from audit_redact_params. */
extern const char AUDIT_REDACT_UPDATE[];

/* AUDIT_REDACT_UPDATE's parameters, as PostgreSQL array text. */
struct audit_redact_params {
	char *ids, *origs, *macs;
	int n;
};

/*
 * From AUDIT_REDACT_SELECT's rows: key may be NULL only when no row is
 * chained. Returns 0, or -1 (params empty) when a row is chained and there
 * is no key: its redaction would break the chain.
 */
int audit_redact_params(const struct audit_key *key, const PGresult *sel,
                        struct audit_redact_params *p) __attribute__((warn_unused_result));
void audit_redact_params_free(struct audit_redact_params *p);

/* The daemon's side: [audit] redact_after, a pass at a time. */
struct db_pool;
struct audit_redactor;
struct audit_redactor *audit_redactor_new(struct db_pool *pool);
void audit_redactor_free(struct audit_redactor *r);
/*
 * Redacts the rows older than days, in transactions of a bounded number of
 * rows, unless a pass is running. key NULL: no chain. A role without UPDATE
 * on callbacks is logged once per pass with what to do instead.
 */
void audit_redactor_run(struct audit_redactor *r, const char *key, int days);

#endif
