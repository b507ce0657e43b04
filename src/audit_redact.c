/*
 * audit_redact.c: redaction passes (see audit_redact.h).
 */
#include "audit_redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "db.h"
#include "jsonw.h"
#include "log.h"
#include "xmalloc.h"

/* Rows per transaction of the daemon's pass: the locks stay short. */
#define REDACT_BATCH "500"

#define DIGEST_OF(headers, body)                                                                   \
	"bayarhook.audit_digest(c.id, c.lane, c.lane_seq, c.received_at, c.remote_addr, "          \
	"c.peer_addr, c.invoice_id, c.event, c.status, c.verdict, c.http_status, c.error, "        \
	"c.method, " headers ", " body ", c.secret_index, c.signature_valid, c.body_length, "      \
	"c.body_sha256, c.repeat, c.suppressed, c.headers_dropped)"

const char AUDIT_REDACT_SELECT[] =
    "SELECT c.id, c.mac IS NOT NULL, coalesce(c.redacted_digest, " DIGEST_OF(
        "c.headers",
        "c.body") "), " DIGEST_OF("bayarhook.audit_redact_headers(c.headers)",
                                  "bayarhook.audit_redact_body(c.body)") "\n"
                                                                         "  FROM "
                                                                         "bayarhook.callbacks c\n"
                                                                         " WHERE ($1::text IS NULL "
                                                                         "OR c.invoice_id = "
                                                                         "$1::text)\n"
                                                                         "   AND ($2::integer IS "
                                                                         "NULL OR c.received_at < "
                                                                         "now() - "
                                                                         "make_interval(days => "
                                                                         "$2::integer))\n"
                                                                         "   AND "
                                                                         "(bayarhook.audit_redact_"
                                                                         "body(c.body) IS DISTINCT "
                                                                         "FROM c.body\n"
                                                                         "        OR "
                                                                         "bayarhook.audit_redact_"
                                                                         "headers(c.headers) IS "
                                                                         "DISTINCT FROM "
                                                                         "c.headers)\n"
                                                                         " ORDER BY c.id LIMIT "
                                                                         "$3::integer FOR UPDATE";

const char AUDIT_REDACT_UPDATE[] =
    "UPDATE bayarhook.callbacks c\n"
    "   SET body = bayarhook.audit_redact_body(c.body),\n"
    "       headers = bayarhook.audit_redact_headers(c.headers),\n"
    "       redacted_digest = u.orig, redaction_mac = u.mac\n"
    "  FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(id, orig, mac)\n"
    " WHERE c.id = u.id";

static void put_str(struct jsonw *w, const char *s)
{
	jsonw_put(w, s, strlen(s));
}

int audit_redact_params(const struct audit_key *key, const PGresult *sel,
                        struct audit_redact_params *p)
{
	struct jsonw ids = {0}, origs = {0}, macs = {0};
	int rows = PQntuples(sel);

	memset(p, 0, sizeof(*p));
	put_str(&ids, "{");
	put_str(&origs, "{");
	put_str(&macs, "{");
	for (int i = 0; i < rows; i++) {
		bool chained = strcmp(PQgetvalue(sel, i, 1), "t") == 0;
		const char *sep = i ? "," : "";
		unsigned char orig[AUDIT_MAC_LEN], now[AUDIT_MAC_LEN], mac[AUDIT_MAC_LEN];
		char hex[2 * AUDIT_MAC_LEN + 1];

		put_str(&ids, sep);
		put_str(&ids, PQgetvalue(sel, i, 0));
		put_str(&origs, sep);
		put_str(&macs, sep);
		if (!chained) {
			put_str(&origs, "NULL");
			put_str(&macs, "NULL");
			continue;
		}
		if (key == NULL || audit_mac_parse(PQgetvalue(sel, i, 2), orig) < 0 ||
		    audit_mac_parse(PQgetvalue(sel, i, 3), now) < 0) {
			free(jsonw_take(&ids));
			free(jsonw_take(&origs));
			free(jsonw_take(&macs));
			return -1;
		}
		audit_redaction_mac(key, strtoll(PQgetvalue(sel, i, 0), NULL, 10), orig, now, mac);
		put_str(&origs, "\"\\\\x");
		audit_mac_hex(orig, hex);
		put_str(&origs, hex);
		put_str(&origs, "\"");
		put_str(&macs, "\"\\\\x");
		audit_mac_hex(mac, hex);
		put_str(&macs, hex);
		put_str(&macs, "\"");
	}
	put_str(&ids, "}");
	put_str(&origs, "}");
	put_str(&macs, "}");
	p->ids = jsonw_take(&ids);
	p->origs = jsonw_take(&origs);
	p->macs = jsonw_take(&macs);
	p->n = rows;
	return 0;
}

void audit_redact_params_free(struct audit_redact_params *p)
{
	free(p->ids);
	free(p->origs);
	free(p->macs);
	memset(p, 0, sizeof(*p));
}

/* The daemon's pass: BEGIN, SELECT, UPDATE, COMMIT, again while rows came. */
struct audit_redactor {
	struct db_pool *pool;
	struct db_session *session;
	bool running;
	bool has_key;
	struct audit_key key;
	char days[16];
	long done; /* rows redacted by this pass */
};

struct audit_redactor *audit_redactor_new(struct db_pool *pool)
{
	struct audit_redactor *r = xcalloc(1, sizeof(*r));

	r->pool = pool;
	return r;
}

void audit_redactor_free(struct audit_redactor *r)
{
	if (r == NULL)
		return;
	if (r->session != NULL)
		db_session_close(r->session);
	OPENSSL_cleanse(&r->key, sizeof(r->key));
	free(r);
}

static void redact_end(struct audit_redactor *r, const char *err, const char *sqlstate)
{
	if (err != NULL && sqlstate != NULL && strcmp(sqlstate, "42501") == 0)
		log_warnx("audit: redact_after: this role may not UPDATE bayarhook.callbacks "
		          "(least privilege); run `bayarhook audit redact --older-than %s` as the "
		          "owner role, e.g. from cron",
		          r->days);
	else if (err != NULL)
		log_warnx("audit: redact_after pass failed after %ld row(s): %s", r->done, err);
	else if (r->done > 0)
		log_notice("audit: redacted personal data in %ld row(s) older than %s days",
		           r->done, r->days);
	if (r->session != NULL)
		db_session_close(r->session);
	r->session = NULL;
	r->running = false;
}

static void redact_begin(struct audit_redactor *r);

static void redact_committed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_redactor *r = arg;

	if (res == NULL) {
		redact_end(r, err, sqlstate);
		return;
	}
	redact_begin(r);
}

static void redact_committed_last(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	redact_end(arg, res == NULL ? err : NULL, sqlstate);
}

static void redact_updated(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_redactor *r = arg;

	if (res == NULL) {
		redact_end(r, err, sqlstate);
		return;
	}
	if (atol(PQcmdTuples(res)) == 0) { /* the rows went meanwhile: nothing more to do */
		db_session_query(r->session, "COMMIT", 0, NULL, redact_committed_last, r);
		return;
	}
	r->done += atol(PQcmdTuples(res));
	db_session_query(r->session, "COMMIT", 0, NULL, redact_committed, r);
}

static void redact_selected(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_redactor *r = arg;
	struct audit_redact_params p;
	const char *params[3];

	if (res == NULL) {
		redact_end(r, err, sqlstate);
		return;
	}
	if (PQntuples(res) == 0) {
		redact_end(r, NULL, NULL);
		return;
	}
	if (audit_redact_params(r->has_key ? &r->key : NULL, res, &p) < 0) {
		redact_end(r, "rows are chained but there is no [audit] key_file", NULL);
		return;
	}
	params[0] = p.ids;
	params[1] = p.origs;
	params[2] = p.macs;
	db_session_query(r->session, AUDIT_REDACT_UPDATE, 3, params, redact_updated, r);
	audit_redact_params_free(&p);
}

static void redact_began(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct audit_redactor *r = arg;
	const char *params[3] = {NULL, r->days, REDACT_BATCH};

	if (res == NULL) {
		redact_end(r, err, sqlstate);
		return;
	}
	db_session_query(r->session, AUDIT_REDACT_SELECT, 3, params, redact_selected, r);
}

static void redact_begin(struct audit_redactor *r)
{
	db_session_query(r->session, "BEGIN", 0, NULL, redact_began, r);
}

static void redact_opened(struct db_session *s, void *arg)
{
	struct audit_redactor *r = arg;

	r->session = s;
	if (s == NULL) {
		redact_end(r, "the database went away", NULL);
		return;
	}
	redact_begin(r);
}

void audit_redactor_run(struct audit_redactor *r, const char *key, int days)
{
	if (r->running || days <= 0)
		return;
	r->has_key = key != NULL;
	if (key != NULL)
		audit_key_init(&r->key, key, strlen(key));
	snprintf(r->days, sizeof(r->days), "%d", days);
	r->done = 0;
	if (db_session_open(r->pool, redact_opened, r) < 0)
		return; /* the database is down: the next tick tries again */
	r->running = true;
}
