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

/* "90s", "15m", "2h", "7d" -> an interval; anything else is a timestamp for PostgreSQL. */
static void since_param(const char *since, char *buf, size_t len, bool *relative)
{
	size_t n = strlen(since);
	const char *unit = NULL;

	*relative = false;
	if (n >= 2 && strspn(since, "0123456789") == n - 1) {
		switch (since[n - 1]) {
		case 's':
			unit = "seconds";
			break;
		case 'm':
			unit = "minutes";
			break;
		case 'h':
			unit = "hours";
			break;
		case 'd':
			unit = "days";
			break;
		}
	}
	if (unit) {
		snprintf(buf, len, "%.*s %s", (int)(n - 1), since, unit);
		*relative = true;
	} else {
		snprintf(buf, len, "%s", since);
	}
}

static const struct option cli_audit_options[] = {
    {"invoice", required_argument, NULL, 'i'}, {"verdict", required_argument, NULL, 'v'},
    {"since", required_argument, NULL, 's'},   {"limit", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},          {NULL, 0, NULL, 0},
};

static int cli_audit_check(struct cli *cli)
{
	const char *limit = cli_opt(cli, 'n');

	if (limit != NULL && (strspn(limit, "0123456789") != strlen(limit) || !*limit))
		return cli_usage(cli);
	return 0;
}

static int cli_audit(struct cli *cli)
{
	const char *since = cli_opt(cli, 's'), *limit = cli_opt(cli, 'n');
	char since_buf[128];
	bool relative = false;
	PGresult *res = NULL;
	const char *params[5];
	int rc = 1;

	if (since)
		since_param(since, since_buf, sizeof(since_buf), &relative);
	params[0] = cli_opt(cli, 'i');
	params[1] = cli_opt(cli, 'v');
	params[2] = since && !relative ? since_buf : NULL;
	params[3] = since && relative ? since_buf : NULL;
	params[4] = limit != NULL ? limit : "100";
	/* The newest N rows that match, shown oldest first. */
	res =
	    PQexecParams(cli->conn,
	                 "SELECT coalesce(json_agg(t ORDER BY t.id), '[]'::json) FROM ("
	                 " SELECT id, received_at, remote_addr, invoice_id, event, status, verdict,"
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
	                 "  AND ($4::interval IS NULL OR received_at >= now() - $4::interval)"
	                 " ORDER BY id DESC LIMIT $5::bigint) t",
	                 5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "bayarhook: audit: %s", PQresultErrorMessage(res));
		goto out;
	}
	if (cli_opt(cli, 'j')) {
		printf("%s\n", PQgetvalue(res, 0, 0));
	} else {
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		const cJSON *r;

		printf("%-8s %-26s %-15s %-36s %-9s %-15s %4s  %s\n", "ID", "RECEIVED", "CLIENT",
		       "INVOICE", "STATUS", "VERDICT", "HTTP", "ERROR");
		cJSON_ArrayForEach(r, rows)
		{
			static const char *const f[] = {"received_at", "remote_addr", "invoice_id",
			                                "status",      "verdict",     "error"};
			const char *v[6];

			cli_row_strings(r, f, 6, v, "-");
			printf("%-8.0f %-26.26s %-15s %-36s %-9s %-15s %4.0f  %s\n",
			       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")),
			       v[0], v[1], v[2], v[3], v[4],
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
    .args = "[--invoice ID] [--verdict V] [--since TIME] [--limit N] [--json]",
    .help = "show received callbacks",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_audit_options,
    .check = cli_audit_check,
    .run = cli_audit,
};
