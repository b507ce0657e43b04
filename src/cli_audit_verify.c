/*
 * cli_audit_verify.c: `bayarhook audit verify [--since AGE|TIME]
 * [--checkpoint LANE:SEQ:MAC[,...]]` (SPEC §11): walks bayarhook.callbacks
 * in id order through a cursor (bounded memory: one state per lane), asks
 * PostgreSQL for each row's audit_digest() (the one serialization, in
 * sql/functions/audit.sql) and checks each mac in C with the audit key.
 * Within a lane lane_seq rises with id (a lane carries one batch at a
 * time), so a gap is a deleted row, a repeat or a bad mac an inserted,
 * changed or moved one. After a break the walk goes on from the row's
 * stored mac, so that each damaged row is named once; the first is the
 * one-line reason.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit_mac.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "xmalloc.h"

#define VERIFY_FETCH "5000" /* rows per FETCH */
#define VERIFY_SHOW_MAX 20  /* break lines printed; the rest are counted */

#define VERIFY_DIGEST                                                                              \
	"bayarhook.audit_digest(c.id, c.lane, c.lane_seq, c.received_at, c.remote_addr, "          \
	"c.peer_addr, c.invoice_id, c.event, c.status, c.verdict, c.http_status, c.error, "        \
	"c.method, c.headers, c.body, c.secret_index, c.signature_valid, c.body_length, "          \
	"c.body_sha256, c.repeat, c.suppressed, c.headers_dropped)"

enum { OPT_SINCE = 's', OPT_CHECKPOINT = 'k' };

static const struct option verify_options[] = {
    {"since", required_argument, NULL, OPT_SINCE},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {NULL, 0, NULL, 0},
};

/* One lane's walk. */
struct lane_state {
	int64_t lane;       /* 0: an empty slot (lane ids are >= 1) */
	int64_t next;       /* the lane_seq expected next; 0: no row seen yet */
	int64_t anchor_seq; /* retention's anchor (audit_anchors); 0: none */
	int64_t last_id;    /* the lane's last row seen */
	int key;            /* which of the keys its rows verify with; -1: not known yet */
	unsigned char prev[AUDIT_MAC_LEN];
	unsigned char anchor_mac[AUDIT_MAC_LEN];
};

struct verify {
	struct audit_key *keys; /* [audit] key_file's lines: current first, then older ones */
	size_t nkeys;
	PGconn *conn;
	bool since;
	struct lane_state *lanes; /* open addressing, size a power of two */
	size_t cap, nlanes;
	long long rows, before_chain, skipped, breaks;
	bool chained_seen;
	char first[256]; /* the first break, for stderr */
};

static struct lane_state *lane_get(struct verify *v, int64_t lane)
{
	size_t i;

	if (2 * (v->nlanes + 1) > v->cap) {
		struct lane_state *old = v->lanes;
		size_t oldcap = v->cap;

		v->cap = v->cap ? 2 * v->cap : 64;
		v->lanes = xcalloc(v->cap, sizeof(*v->lanes));
		v->nlanes = 0;
		for (size_t j = 0; j < oldcap; j++)
			if (old[j].lane != 0)
				*lane_get(v, old[j].lane) = old[j];
		free(old);
	}
	for (i = (size_t)((uint64_t)lane * 0x9e3779b97f4a7c15u) & (v->cap - 1);
	     v->lanes[i].lane != 0 && v->lanes[i].lane != lane; i = (i + 1) & (v->cap - 1))
		;
	if (v->lanes[i].lane == 0) {
		memset(&v->lanes[i], 0, sizeof(v->lanes[i]));
		v->lanes[i].lane = lane;
		v->lanes[i].key = -1;
		v->nlanes++;
	}
	return &v->lanes[i];
}

static void verify_break(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void verify_break(struct verify *v, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (v->breaks == 0)
		snprintf(v->first, sizeof(v->first), "%s", line);
	if (v->breaks < VERIFY_SHOW_MAX)
		printf("BROKEN %s\n", line);
	v->breaks++;
}

static int verify_check(struct cli *cli)
{
	const char *since = cli_opt(cli, OPT_SINCE), *cps = cli_opt(cli, OPT_CHECKPOINT);
	char buf[64];

	if (cps != NULL) {
		char *copy = xstrdup(cps), *save = NULL;

		for (char *cp = strtok_r(copy, ",", &save); cp; cp = strtok_r(NULL, ",", &save)) {
			long long lane, seq;
			char hex[80];
			unsigned char mac[AUDIT_MAC_LEN];

			if (sscanf(cp, "%lld:%lld:%79s", &lane, &seq, hex) != 3 || lane < 1 ||
			    seq < 1 || audit_mac_parse(hex, mac) < 0) {
				fprintf(
				    stderr,
				    "bayarhook: audit verify: --checkpoint %s: not LANE:SEQ:MAC "
				    "(as the daemon logs it)\n",
				    cp);
				free(copy);
				return 2;
			}
		}
		free(copy);
	}
	return since ? cli_time_since(cli, since, buf, sizeof(buf)) : 0;
}

/* The mac of (lane, seq), for --since's first row of a lane: 1 found, 0 not, -1 error. */
static int verify_lookup(struct verify *v, int64_t lane, int64_t seq,
                         unsigned char mac[AUDIT_MAC_LEN])
{
	char l[24], s[24];
	const char *params[2] = {l, s};
	PGresult *res;
	int rc;

	snprintf(l, sizeof(l), "%" PRId64, lane);
	snprintf(s, sizeof(s), "%" PRId64, seq);
	res = PQexecParams(v->conn,
	                   "SELECT mac FROM bayarhook.callbacks WHERE lane = $1::bigint "
	                   "AND lane_seq = $2::bigint AND lane IS NOT NULL",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("audit verify", res);
		rc = -1;
	} else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		rc = 0;
	} else {
		rc = audit_mac_parse(PQgetvalue(res, 0, 0), mac) == 0 ? 1 : 0;
	}
	PQclear(res);
	return rc;
}

/* The first row of a lane in the walk: where its chain starts. 0, or -1 on a database error. */
static int verify_lane_start(struct verify *v, struct lane_state *ls, int64_t id, int64_t seq)
{
	int64_t start = ls->anchor_seq + 1;

	memset(ls->prev, 0, sizeof(ls->prev));
	if (ls->anchor_seq > 0)
		memcpy(ls->prev, ls->anchor_mac, AUDIT_MAC_LEN);
	if (v->since && seq > start) {
		/* Before --since: the row before is trusted as the starting point. */
		int found = verify_lookup(v, ls->lane, seq - 1, ls->prev);

		if (found < 0)
			return -1;
		if (found)
			start = seq;
	}
	if (seq != start) {
		verify_break(v,
		             "row id %" PRId64 ": lane %" PRId64 ": row(s) before it missing (its "
		             "lane_seq is %" PRId64 ", the lane starts at %" PRId64 "%s)",
		             id, ls->lane, seq, start, ls->anchor_seq ? " after its anchor" : "");
		return 1;
	}
	return 0;
}

/* One chained row. 0, or -1 on a database error. */
static int verify_row(struct verify *v, const PGresult *res, int i)
{
	int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	int64_t lane = strtoll(PQgetvalue(res, i, 1), NULL, 10);
	int64_t seq = PQgetisnull(res, i, 2) ? 0 : strtoll(PQgetvalue(res, i, 2), NULL, 10);
	unsigned char mac[AUDIT_MAC_LEN], digest[AUDIT_MAC_LEN], want[AUDIT_MAC_LEN];
	struct lane_state *ls = lane_get(v, lane);
	bool resync = false;

	if (PQgetisnull(res, i, 3) || audit_mac_parse(PQgetvalue(res, i, 3), mac) < 0 || seq < 1) {
		verify_break(
		    v, "row id %" PRId64 ": lane %" PRId64 " without a valid lane_seq and mac", id,
		    lane);
		return 0;
	}
	if (ls->anchor_seq > 0 && seq <= ls->anchor_seq && ls->next == 0) {
		v->skipped++; /* at or below the anchor: retention's, not ours to check */
		return 0;
	}
	if (ls->next == 0) {
		int rc = verify_lane_start(v, ls, id, seq);

		if (rc < 0)
			return -1;
		resync = rc > 0;
	} else if (seq > ls->next) {
		verify_break(v,
		             "row id %" PRId64 ": lane %" PRId64 ": row after id %" PRId64
		             " missing (lane_seq %" PRId64 "..%" PRId64 " deleted or moved)",
		             id, lane, ls->last_id, ls->next, seq - 1);
		resync = true;
	} else if (seq < ls->next) {
		verify_break(v,
		             "row id %" PRId64 ": lane %" PRId64 " lane_seq %" PRId64
		             " out of place after id %" PRId64 " (inserted or moved)",
		             id, lane, seq, ls->last_id);
		return 0; /* the lane goes on from the rows before it */
	}
	audit_mac_parse(PQgetvalue(res, i, 4), digest);
	if (!PQgetisnull(res, i, 5)) {
		unsigned char orig[AUDIT_MAC_LEN], rmac[AUDIT_MAC_LEN], rwant[AUDIT_MAC_LEN];

		if (audit_mac_parse(PQgetvalue(res, i, 5), orig) < 0 || PQgetisnull(res, i, 6) ||
		    audit_mac_parse(PQgetvalue(res, i, 6), rmac) < 0) {
			verify_break(v, "row id %" PRId64 ": a redaction without its mac", id);
			resync = true;
		} else {
			bool ok = false;

			/* Made with the key current at the redaction, maybe newer than the lane's.
			 */
			for (size_t k = 0; k < v->nkeys && !ok; k++) {
				audit_redaction_mac(&v->keys[k], id, orig, digest, rwant);
				ok = audit_mac_equal(rmac, rwant);
			}
			if (!ok) {
				verify_break(v, "row id %" PRId64 ": changed after its redaction",
				             id);
				resync = true;
			}
			memcpy(digest, orig, AUDIT_MAC_LEN);
		}
	}
	if (!resync && ls->key < 0) {
		/* A lane is written under one key: the first that verifies its first row. */
		for (size_t k = 0; k < v->nkeys && ls->key < 0; k++) {
			audit_row_mac(&v->keys[k], lane, seq, digest, ls->prev, want);
			if (audit_mac_equal(mac, want))
				ls->key = (int)k;
		}
	}
	if (!resync) {
		audit_row_mac(&v->keys[ls->key < 0 ? 0 : ls->key], lane, seq, digest, ls->prev,
		              want);
		if (!audit_mac_equal(mac, want))
			verify_break(v,
			             "row id %" PRId64 ": mac does not match (lane %" PRId64
			             " lane_seq %" PRId64 "): the row was changed, forged or moved",
			             id, lane, seq);
	}
	memcpy(ls->prev, mac, AUDIT_MAC_LEN); /* on from the stored mac: one break per damage */
	ls->next = seq + 1;
	ls->last_id = id;
	return 0;
}

static int verify_anchors(struct verify *v)
{
	PGresult *res = PQexec(v->conn, "SELECT lane, lane_seq, mac FROM bayarhook.audit_anchors");

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("audit verify", res);
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct lane_state *ls = lane_get(v, strtoll(PQgetvalue(res, i, 0), NULL, 10));

		ls->anchor_seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (audit_mac_parse(PQgetvalue(res, i, 2), ls->anchor_mac) < 0)
			ls->anchor_seq = 0;
	}
	PQclear(res);
	return 0;
}

static bool exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		cli_sql_error("audit verify", res);
	PQclear(res);
	return ok;
}

/* The walk itself. 0, or -1 on a database error (said). */
static int verify_walk(struct verify *v, const char *since)
{
	const char *params[1] = {since};
	PGresult *res;

	res = PQexecParams(v->conn,
	                   "DECLARE walk NO SCROLL CURSOR FOR SELECT c.id, c.lane, c.lane_seq, "
	                   "c.mac, " VERIFY_DIGEST ", c.redacted_digest, c.redaction_mac "
	                   "FROM bayarhook.callbacks c "
	                   "WHERE $1::timestamptz IS NULL OR c.received_at >= $1::timestamptz "
	                   "ORDER BY c.id",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_sql_error("audit verify", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (;;) {
		int n;

		res = PQexec(v->conn, "FETCH " VERIFY_FETCH " FROM walk");
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			cli_sql_error("audit verify", res);
			PQclear(res);
			return -1;
		}
		if ((n = PQntuples(res)) == 0) {
			PQclear(res);
			break;
		}
		for (int i = 0; i < n; i++) {
			v->rows++;
			if (PQgetisnull(res, i, 1)) {
				if (!v->chained_seen)
					v->before_chain++;
				else
					verify_break(
					    v,
					    "row id %s has no mac: written outside the chain (by "
					    "hand, or by a process without [audit] key_file)",
					    PQgetvalue(res, i, 0));
				continue;
			}
			v->chained_seen = true;
			if (verify_row(v, res, i) < 0) {
				PQclear(res);
				return -1;
			}
		}
		PQclear(res);
	}
	return 0;
}

/* --checkpoint: each head the daemon logged is still in the table, with its mac. */
static int verify_checkpoints(struct verify *v, const char *list)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;

	for (char *cp = strtok_r(copy, ",", &save); cp; cp = strtok_r(NULL, ",", &save)) {
		long long lane, seq;
		char hex[80];
		unsigned char want[AUDIT_MAC_LEN], got[AUDIT_MAC_LEN];
		struct lane_state *ls;
		int found;

		(void)sscanf(cp, "%lld:%lld:%79s", &lane, &seq, hex); /* checked by verify_check */
		(void)audit_mac_parse(hex, want);
		if ((found = verify_lookup(v, lane, seq, got)) < 0) {
			rc = -1;
			break;
		}
		ls = lane_get(v, lane);
		if (!found && ls->anchor_seq == seq) {
			memcpy(got, ls->anchor_mac, AUDIT_MAC_LEN);
			found = 1;
		}
		if (!found && ls->anchor_seq > seq) {
			printf(
			    "checkpoint %lld:%lld: dropped by retention (the lane's anchor is at "
			    "%" PRId64 "), not checked\n",
			    lane, seq, ls->anchor_seq);
			continue;
		}
		if (!found)
			verify_break(
			    v,
			    "checkpoint %lld:%lld: the row is gone: the table was rewritten or "
			    "cut short",
			    lane, seq);
		else if (!audit_mac_equal(want, got))
			verify_break(
			    v,
			    "checkpoint %lld:%lld: the row's mac differs: the table was rewritten",
			    lane, seq);
		else
			printf("checkpoint %lld:%lld: ok\n", lane, seq);
	}
	free(copy);
	return rc;
}

static int verify_run(struct cli *cli)
{
	const char *since = cli_opt(cli, OPT_SINCE), *cps = cli_opt(cli, OPT_CHECKPOINT);
	char since_buf[64];
	struct verify v;
	struct timespec t0, t1;
	int rc = 1;

	if (cli->cfg->audit_nkeys == 0) {
		fprintf(stderr,
		        "bayarhook: audit verify: no [audit] key_file in %s: there is no chain "
		        "to verify\n",
		        cli->config_path);
		return 1;
	}
	memset(&v, 0, sizeof(v));
	v.nkeys = cli->cfg->audit_nkeys;
	v.keys = xcalloc(v.nkeys, sizeof(*v.keys));
	for (size_t k = 0; k < v.nkeys; k++)
		audit_key_init(&v.keys[k], cli->cfg->audit_keys[k],
		               strlen(cli->cfg->audit_keys[k]));
	v.conn = cli->conn;
	if (since != NULL) {
		(void)cli_time_since(cli, since, since_buf,
		                     sizeof(since_buf)); /* checked already */
		since = since_buf;
		v.since = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* One snapshot for the walk and the look-ups, writing nothing. */
	if (!exec_ok(v.conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") ||
	    verify_anchors(&v) < 0 || verify_walk(&v, since) < 0 ||
	    (cps != NULL && verify_checkpoints(&v, cps) < 0))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!v.chained_seen) {
		fprintf(stderr,
		        "bayarhook: audit verify: no row %sis chained: there is no chain (is "
		        "[audit] key_file set where the daemon runs?)\n",
		        v.since ? "since then " : "");
		goto out;
	}
	printf("%lld row(s) in %zu lane(s) checked in %.1f s", v.rows - v.before_chain, v.nlanes,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (v.before_chain)
		printf("; %lld older row(s) from before the chain began, not covered",
		       v.before_chain);
	if (v.skipped)
		printf("; %lld row(s) at or below a retention anchor skipped", v.skipped);
	printf("\n");
	if (v.breaks > 0) {
		if (v.breaks > VERIFY_SHOW_MAX)
			printf("... and %lld more\n", v.breaks - VERIFY_SHOW_MAX);
		fprintf(stderr,
		        "bayarhook: audit verify: the chain is broken (%lld place(s)); first: %s\n",
		        v.breaks, v.first);
		goto out;
	}
	printf("the audit chain holds\n");
	rc = 0;
out:
	free(v.lanes);
	OPENSSL_cleanse(v.keys, v.nkeys * sizeof(*v.keys));
	free(v.keys);
	return rc;
}

const struct cli_command cli_cmd_audit_verify = {
    .name = "audit verify",
    .args = "[--since AGE|TIME] [--checkpoint LANE:SEQ:MAC[,...]]",
    .help = "check the audit table's tamper-evident chain (SPEC §11)",
    .config = true,
    .db = CLI_DB_CONNECT,
    .audit_key = true, /* of the secrets, only the chain's key (SPEC §10) */
    .shortopts = "",
    .longopts = verify_options,
    .check = verify_check,
    .run = verify_run,
};
