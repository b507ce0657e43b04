/*
 * cli_payments.c: `bayarhook payments`: the payments table from a shell,
 * with how far each one's fulfillment got, so that "did everything paid
 * today get delivered?" is one command.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "db.h"

/* The values of bayarhook.payments.status (sql/001_init.sql). */
static const char *const PAYMENT_STATUSES[] = {"pending", "paid", "expired", "cancelled"};

enum {
	OPT_FLAGGED = 'f',
	OPT_STATUS = 's',
	OPT_SINCE = 'S',
	OPT_LIMIT = 'n',
	OPT_JSON = 'j',
	OPT_TZ = 'z'
};

static const struct option cli_payments_options[] = {
    {"flagged", no_argument, NULL, OPT_FLAGGED},
    {"status", required_argument, NULL, OPT_STATUS},
    {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"json", no_argument, NULL, OPT_JSON},
    {"tz", required_argument, NULL, OPT_TZ},
    {NULL, 0, NULL, 0},
};

static int cli_payments_check(struct cli *cli)
{
	const char *status = cli_opt(cli, OPT_STATUS), *limit = cli_opt(cli, OPT_LIMIT);
	const char *since = cli_opt(cli, OPT_SINCE);
	char buf[64];
	bool known = status == NULL;

	if (limit != NULL &&
	    (!*limit || strspn(limit, "0123456789") != strlen(limit) || strlen(limit) > 18))
		return cli_usage(cli);
	for (size_t i = 0; status && i < sizeof(PAYMENT_STATUSES) / sizeof(PAYMENT_STATUSES[0]);
	     i++)
		known = known || strcmp(status, PAYMENT_STATUSES[i]) == 0;
	if (!known) {
		fprintf(stderr,
		        "bayarhook: payments: unknown --status %s (pending, paid, expired or "
		        "cancelled)\n",
		        status);
		return 2;
	}
	return since ? cli_time_since(cli, since, buf, sizeof(buf)) : 0;
}

static void cli_payments_table(const char *json)
{
	cJSON *rows = cJSON_Parse(json);
	const cJSON *r;

	printf("%-36s %-9s %12s  %-*s  %-19s  %-9s  %s\n", "INVOICE", "STATUS", "AMOUNT",
	       CLI_TIME_WIDTH, "UPDATED", "PAID_AT (GATEWAY)", "JOBS OK", "FLAG");
	cJSON_ArrayForEach(r, rows)
	{
		static const char *const f[] = {"invoice_id", "status",  "amount_text",
		                                "updated",    "paid_at", "flag"};
		const char *v[6];
		char jobs[32];

		cli_row_strings(r, f, 6, v, "");
		/* Succeeded of all, and the dead ones loud: what a shop owner asks first. */
		snprintf(
		    jobs, sizeof(jobs), "%.0f/%.0f%s",
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "jobs_succeeded")),
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "jobs")),
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "jobs_dead")) > 0
		        ? " DEAD"
		        : "");
		printf("%-36s %-9s %12s  %-*s  %-19s  %-9s  %s\n", v[0], v[1], v[2], CLI_TIME_WIDTH,
		       v[3], v[4][0] ? v[4] : "-", jobs, v[5]);
	}
	cJSON_Delete(rows);
}

static int cli_payments(struct cli *cli)
{
	const char *params[4];
	char since[64];
	PGresult *res;
	int rc;

	if ((rc = cli_time_zone(cli, cli->conn, cli_opt(cli, OPT_TZ))) != 0)
		return rc;
	params[0] = cli_opt(cli, OPT_FLAGGED) ? "t" : NULL;
	params[1] = cli_opt(cli, OPT_STATUS);
	params[2] = NULL;
	if (cli_opt(cli, OPT_SINCE)) {
		cli_time_since(cli, cli_opt(cli, OPT_SINCE), since, sizeof(since));
		params[2] = since;
	}
	params[3] = cli_opt(cli, OPT_LIMIT) ? cli_opt(cli, OPT_LIMIT) : "1000";
	/* The newest N changed that match, oldest first; --since is the last change. */
	res = PQexecParams(
	    cli->conn,
	    "SELECT coalesce(json_agg(t ORDER BY t.updated_at, t.invoice_id), '[]'::json) FROM ("
	    " SELECT p.invoice_id, p.status, p.amount, p.final_amount, p.paid_at,"
	    "  p.paid_reff_num, p.source, p.first_seen_at, p.updated_at, p.flagged, p.flag,"
	    "  coalesce(p.final_amount, p.amount)::text AS amount_text,"
	    "  to_char(p.updated_at, " CLI_TIME_FORMAT ") AS updated,"
	    "  (SELECT count(*) FROM bayarhook.jobs j WHERE j.invoice_id = p.invoice_id) AS jobs,"
	    "  (SELECT count(*) FROM bayarhook.jobs j WHERE j.invoice_id = p.invoice_id"
	    "    AND j.state = 'succeeded') AS jobs_succeeded,"
	    "  (SELECT count(*) FROM bayarhook.jobs j WHERE j.invoice_id = p.invoice_id"
	    "    AND j.state = 'dead') AS jobs_dead"
	    " FROM bayarhook.payments p"
	    " WHERE ($1::boolean IS NULL OR p.flagged)"
	    "  AND ($2::text IS NULL OR p.status = $2)"
	    "  AND ($3::timestamptz IS NULL OR p.updated_at >= $3::timestamptz)"
	    " ORDER BY p.updated_at DESC, p.invoice_id DESC LIMIT $4::bigint) t",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("payments", res);
		PQclear(res);
		return 1;
	}
	if (cli_opt(cli, OPT_JSON)) {
		/* Without the table's helper columns. */
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		cJSON *r;
		char *text;

		cJSON_ArrayForEach(r, rows)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(r, "amount_text");
			cJSON_DeleteItemFromObjectCaseSensitive(r, "updated");
		}
		text = rows ? cJSON_PrintUnformatted(rows) : NULL;
		printf("%s\n", text ? text : "[]");
		free(text);
		cJSON_Delete(rows);
	} else {
		cli_payments_table(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return 0;
}

const struct cli_command cli_cmd_payments = {
    .name = "payments",
    .args = "[--flagged] [--status S] [--since AGE|TIME] [--limit N] [--json] [--tz ZONE]",
    .help = "list payments and how many of their jobs succeeded",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_payments_options,
    .check = cli_payments_check,
    .run = cli_payments,
};
