/*
 * cli_admin.c: check-config, migrate and audit: the config and the schema,
 * and the audit trail of received callbacks.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "action.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "migrate.h"
#include "verdict.h"

static int cli_check_config(struct cli *cli)
{
	char err[512];

	if (action_check_config(cli->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "bayarhook: %s\n", err);
		return 1;
	}
	/* Accepted, but worth fixing: a weak secret, a secret file others can read. */
	for (size_t i = 0; i < cli->cfg->nwarnings; i++)
		fprintf(stderr, "bayarhook: warning: %s\n", cli->cfg->warnings[i]);
	config_print_summary(cli->cfg, stdout);
	printf("%s: configuration is valid\n", cli->config_path);
	return 0;
}

const struct cli_command cli_cmd_check_config = {
    .name = "check-config",
    .args = "",
    .help = "parse and validate the config, print a summary",
    .config = true,
    .secrets = true,
    .run = cli_check_config,
};

static int cli_migrate(struct cli *cli)
{
	char err[512];

	if (migrate_run(cli->conn, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "bayarhook: migrate: %s\n", err);
		return 1;
	}
	return 0;
}

const struct cli_command cli_cmd_migrate = {
    .name = "migrate",
    .args = "",
    .help = "create or upgrade the database schema",
    .config = true,
    .db = CLI_DB_CONNECT,
    .run = cli_migrate,
};

enum { OPT_SHOW = 'w', OPT_TZ = 'z' };

static const struct option cli_audit_options[] = {
    {"invoice", required_argument, NULL, 'i'}, {"verdict", required_argument, NULL, 'v'},
    {"since", required_argument, NULL, 's'},   {"limit", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},          {"show", required_argument, NULL, OPT_SHOW},
    {"tz", required_argument, NULL, OPT_TZ},   {NULL, 0, NULL, 0},
};

static bool audit_number(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

static int cli_audit_check(struct cli *cli)
{
	const char *limit = cli_opt(cli, 'n'), *verdict = cli_opt(cli, 'v');
	const char *show = cli_opt(cli, OPT_SHOW), *since = cli_opt(cli, 's');
	enum verdict v;
	char buf[64];

	if (limit != NULL && !audit_number(limit))
		return cli_usage(cli);
	if (show != NULL && (!audit_number(show) || limit || verdict || since || cli_opt(cli, 'i')))
		return cli_usage(cli);
	if (verdict != NULL && !verdict_from_name(verdict, &v)) {
		fprintf(stderr,
		        "bayarhook: audit: unknown --verdict %s (accepted, duplicate, "
		        "out_of_order, bad_signature, stale_timestamp, malformed, forbidden, "
		        "too_large or unsigned)\n",
		        verdict);
		return 2;
	}
	return since ? cli_time_since(cli, since, buf, sizeof(buf)) : 0;
}

/* audit --show ID: one row whole, each column on its own line, the body last. */
static int cli_audit_show(struct cli *cli)
{
	const char *params[1] = {cli_opt(cli, OPT_SHOW)};
	PGresult *res;
	cJSON *row = NULL;
	const cJSON *x;
	int rc = 1;

	res = PQexecParams(cli->conn,
	                   "SELECT to_jsonb(cb) - 'body_sha256' || jsonb_build_object("
	                   "  'body_sha256', encode(cb.body_sha256, 'hex'),"
	                   "  'received', to_char(cb.received_at, " CLI_TIME_FORMAT "))"
	                   " FROM bayarhook.callbacks cb WHERE cb.id = $1::bigint",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("audit", res);
		goto out;
	}
	if (PQntuples(res) == 0) {
		fprintf(stderr, "bayarhook: audit: no audit row %s\n", params[0]);
		goto out;
	}
	if (cli_opt(cli, 'j')) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		rc = 0;
		goto out;
	}
	row = cJSON_Parse(PQgetvalue(res, 0, 0));
	{
		/* In the order a reader asks: what came, what we said, why, then the bounds. */
		static const char *const order[] = {"id",
		                                    "received",
		                                    "remote_addr",
		                                    "peer_addr",
		                                    "method",
		                                    "invoice_id",
		                                    "event",
		                                    "status",
		                                    "verdict",
		                                    "http_status",
		                                    "error",
		                                    "secret_index",
		                                    "signature_valid",
		                                    "repeat",
		                                    "suppressed",
		                                    "headers_dropped",
		                                    "body_length",
		                                    "body_sha256"};

		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			char *text;

			x = cJSON_GetObjectItemCaseSensitive(row, order[i]);
			if (x == NULL)
				continue;
			if (cJSON_IsString(x)) {
				printf("%-16s %s\n", order[i], x->valuestring);
				continue;
			}
			text = cJSON_PrintUnformatted(x);
			printf("%-16s %s\n", order[i], cJSON_IsNull(x) ? "-" : text);
			free(text);
		}
	}
	printf("headers:\n");
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(row, "headers"))
	{
		char *text = cJSON_IsString(x) ? NULL : cJSON_PrintUnformatted(x);

		printf("  %s: %s\n", x->string, text ? text : x->valuestring);
		free(text);
	}
	x = cJSON_GetObjectItemCaseSensitive(row, "body");
	printf("body:\n%s\n", cJSON_IsString(x) ? x->valuestring : "");
	rc = 0;
out:
	cJSON_Delete(row);
	PQclear(res);
	return rc;
}

static int cli_audit(struct cli *cli)
{
	const char *since = cli_opt(cli, 's'), *limit = cli_opt(cli, 'n');
	char since_buf[64];
	PGresult *res = NULL;
	const char *params[4];
	int rc;

	if ((rc = cli_time_zone(cli, cli->conn, cli_opt(cli, OPT_TZ))) != 0)
		return rc;
	if (cli_opt(cli, OPT_SHOW))
		return cli_audit_show(cli);
	rc = 1;
	if (since)
		cli_time_since(cli, since, since_buf, sizeof(since_buf));
	params[0] = cli_opt(cli, 'i');
	params[1] = cli_opt(cli, 'v');
	params[2] = since ? since_buf : NULL;
	params[3] = limit != NULL ? limit : "100";
	/* The newest N rows that match, shown oldest first. */
	res = PQexecParams(cli->conn,
	                   "SELECT coalesce(json_agg(t ORDER BY t.id), '[]'::json) FROM ("
	                   " SELECT id, received_at, to_char(received_at, " CLI_TIME_FORMAT
	                   ") AS received,"
	                   "  remote_addr, invoice_id, event, status, verdict,"
	                   "  http_status,"
	                   /* confirm_with_api: why an accepted callback ran nothing. */
	                   "  coalesce(error, CASE WHEN verdict = 'accepted' THEN (SELECT"
	                   "   'not confirmed by the gateway: ' || c.reason"
	                   "   FROM bayarhook.confirmations c WHERE c.invoice_id = cb.invoice_id"
	                   "   AND c.callback_status = cb.status AND c.outcome = 'disagreed'"
	                   "   ORDER BY c.id DESC LIMIT 1) END) AS error"
	                   "  FROM bayarhook.callbacks cb"
	                   " WHERE ($1::text IS NULL OR invoice_id = $1)"
	                   "  AND ($2::text IS NULL OR verdict = $2)"
	                   "  AND ($3::timestamptz IS NULL OR received_at >= $3::timestamptz)"
	                   " ORDER BY id DESC LIMIT $4::bigint) t",
	                   4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("audit", res);
		goto out;
	}
	if (cli_opt(cli, 'j')) {
		/* Without the table's helper column: received_at is the time. */
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		cJSON *r;
		char *text;

		cJSON_ArrayForEach(r, rows)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(r, "received");
		}
		text = rows ? cJSON_PrintUnformatted(rows) : NULL;
		printf("%s\n", text ? text : "[]");
		free(text);
		cJSON_Delete(rows);
	} else {
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		const cJSON *r;

		printf("%-8s %-*s %-15s %-36s %-9s %-15s %4s  %s\n", "ID", CLI_TIME_WIDTH,
		       "RECEIVED", "CLIENT", "INVOICE", "STATUS", "VERDICT", "HTTP", "ERROR");
		cJSON_ArrayForEach(r, rows)
		{
			static const char *const f[] = {"received", "remote_addr", "invoice_id",
			                                "status",   "verdict",     "error"};
			const char *v[6];

			cli_row_strings(r, f, 6, v, "-");
			printf("%-8.0f %-*s %-15s %-36s %-9s %-15s %4.0f  %s\n",
			       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")),
			       CLI_TIME_WIDTH, v[0], v[1], v[2], v[3], v[4],
			       cJSON_GetNumberValue(
			           cJSON_GetObjectItemCaseSensitive(r, "http_status")),
			       strcmp(v[5], "-") ? v[5] : "");
		}
		cJSON_Delete(rows);
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const struct cli_command cli_cmd_audit = {
    .name = "audit",
    .args = "[--invoice ID] [--verdict V] [--since AGE|TIME] [--limit N] [--json] [--tz ZONE] "
            "| audit --show ID [--json] [--tz ZONE]",
    .help = "show received callbacks, or one audit row whole",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_audit_options,
    .check = cli_audit_check,
    .run = cli_audit,
};
