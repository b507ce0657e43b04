/*
 * cli_admin.c: check-config, migrate and audit. These run from a shell, not
 * in the event loop, so they use blocking libpq.
 */
#include <ctype.h>
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

struct config *cli_load_config(const char *path)
{
	char err[512];
	struct config *cfg = config_load(path, err, sizeof(err));

	if (cfg == NULL)
		fprintf(stderr, "bayarhook: %s\n", err);
	return cfg;
}

void cli_row_strings(const cJSON *row, const char *const *names, int n, const char **out,
                     const char *missing)
{
	for (int i = 0; i < n; i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, names[i]);

		out[i] = cJSON_IsString(x) ? x->valuestring : missing;
	}
}

PGconn *cli_connect(const struct config *cfg)
{
	char err[512];
	PGconn *conn = db_connect_blocking(cfg->conninfo, err, sizeof(err));

	if (conn == NULL)
		fprintf(stderr, "bayarhook: %s\n", err);
	return conn;
}

int cli_check_config(const char *config_path, int argc, char **argv)
{
	struct config *cfg;
	char err[512];

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "bayarhook: check-config takes no arguments\n");
		return 2;
	}
	cfg = cli_load_config(config_path);
	if (cfg == NULL)
		return 1;
	if (action_check_config(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "bayarhook: %s\n", err);
		config_free(cfg);
		return 1;
	}
	config_print_summary(cfg, stdout);
	printf("%s: configuration is valid\n", config_path);
	config_free(cfg);
	return 0;
}

int cli_migrate(const char *config_path, int argc, char **argv)
{
	struct config *cfg;
	PGconn *conn;
	char err[512];
	int rc = 1;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "bayarhook: migrate takes no arguments\n");
		return 2;
	}
	if ((cfg = cli_load_config(config_path)) == NULL)
		return 1;
	if ((conn = cli_connect(cfg)) == NULL)
		goto out;
	if (migrate_run(conn, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "bayarhook: migrate: %s\n", err);
		goto out;
	}
	rc = 0;
out:
	PQfinish(conn);
	config_free(cfg);
	return rc;
}

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

int cli_audit(const char *config_path, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"invoice", required_argument, NULL, 'i'}, {"verdict", required_argument, NULL, 'v'},
	    {"since", required_argument, NULL, 's'},   {"limit", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},          {NULL, 0, NULL, 0},
	};
	const char *invoice = NULL, *verdict = NULL, *since = NULL, *limit = "100";
	char since_buf[128];
	bool json = false, relative = false;
	struct config *cfg;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	const char *params[5];
	int c, rc = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			invoice = optarg;
			break;
		case 'v':
			verdict = optarg;
			break;
		case 's':
			since = optarg;
			break;
		case 'n':
			limit = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			fprintf(stderr, "usage: bayarhook audit [--invoice ID] [--verdict V] "
			                "[--since TIME] [--limit N] [--json]\n");
			return 2;
		}
	}
	if (optind < argc || strspn(limit, "0123456789") != strlen(limit) || !*limit) {
		fprintf(stderr, "usage: bayarhook audit [--invoice ID] [--verdict V] "
		                "[--since TIME] [--limit N] [--json]\n");
		return 2;
	}
	if (since)
		since_param(since, since_buf, sizeof(since_buf), &relative);
	if ((cfg = cli_load_config(config_path)) == NULL)
		return 1;
	if ((conn = cli_connect(cfg)) == NULL)
		goto out;
	params[0] = invoice;
	params[1] = verdict;
	params[2] = since && !relative ? since_buf : NULL;
	params[3] = since && relative ? since_buf : NULL;
	params[4] = limit;
	/* The newest N rows that match, shown oldest first. */
	res =
	    PQexecParams(conn,
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
	if (json) {
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
	PQfinish(conn);
	config_free(cfg);
	return rc;
}
