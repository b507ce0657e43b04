/*
 * cli_export.c: bayarhook audit export: the audit rows received in a time
 * range, to stdout in id order, as JSON lines (one object per line) or as
 * CSV with a header row, for an accountant or an archive (SPEC §11).
 *
 * The server streams the rows with COPY ... TO STDOUT and each one is
 * written as it arrives (PQgetCopyData), so the memory used is that of one
 * row whatever the range holds. Every column is exported, as the table has
 * it; times are in UTC unless --tz says otherwise.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"

enum { OPT_FROM = 'f', OPT_TO = 't', OPT_FORMAT = 'o', OPT_TZ = 'z' };

static const struct option cli_export_options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"tz", required_argument, NULL, OPT_TZ},
    {NULL, 0, NULL, 0},
};

/*
 * COPY takes no parameters: the range reaches it as two settings of the
 * session, read back inside the query, so no text of the user's is ever
 * part of the statement.
 */
#define EXPORT_ROWS                                                                                \
	" FROM bayarhook.callbacks c"                                                              \
	" WHERE c.received_at >= current_setting('bayarhook.export_from')::timestamptz"            \
	"  AND c.received_at < current_setting('bayarhook.export_to')::timestamptz"                \
	" ORDER BY c.id"

/*
 * JSON lines: PostgreSQL's own JSON of each row, through COPY's CSV format
 * with a quote and a delimiter (0x01, 0x02) that JSON text never holds raw
 * (it escapes every control character), so that COPY quotes and escapes
 * nothing: each line out is the JSON text exactly.
 */
static const char export_jsonl[] =
    "COPY (SELECT row_to_json(c)::text" EXPORT_ROWS ")"
    " TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')";
static const char export_csv[] =
    "COPY (SELECT c.*" EXPORT_ROWS ") TO STDOUT WITH (FORMAT csv, HEADER true)";

static int cli_export_check(struct cli *cli)
{
	const char *from = cli_opt(cli, OPT_FROM), *to = cli_opt(cli, OPT_TO);
	const char *format = cli_opt(cli, OPT_FORMAT);
	char buf[64];
	int rc;

	if (from == NULL || to == NULL)
		return cli_usage(cli);
	if (format != NULL && strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
		fprintf(stderr, "bayarhook: audit export: unknown --format %s (jsonl or csv)\n",
		        format);
		return 2;
	}
	if ((rc = cli_time_since(cli, from, buf, sizeof(buf))) != 0)
		return rc;
	return cli_time_since(cli, to, buf, sizeof(buf));
}

/* The range into the session's settings, as PostgreSQL reads the times: 0 or 1. */
static int cli_export_range(struct cli *cli)
{
	char from[64], to[64];
	const char *params[2] = {from, to};
	PGresult *res;
	int rc = 0;

	cli_time_since(cli, cli_opt(cli, OPT_FROM), from, sizeof(from));
	cli_time_since(cli, cli_opt(cli, OPT_TO), to, sizeof(to));
	res =
	    PQexecParams(cli->conn,
	                 "SELECT set_config('bayarhook.export_from', $1::timestamptz::text, false),"
	                 " set_config('bayarhook.export_to', $2::timestamptz::text, false)",
	                 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error(cli->cmd->name, res);
		rc = 1;
	}
	PQclear(res);
	return rc;
}

static int cli_export(struct cli *cli)
{
	const char *format = cli_opt(cli, OPT_FORMAT), *zone = cli_opt(cli, OPT_TZ);
	bool csv = format != NULL && strcmp(format, "csv") == 0;
	unsigned long long rows = 0;
	PGresult *res;
	char *buf;
	int n, rc;

	if (PQsetClientEncoding(cli->conn, "UTF8") != 0) {
		fprintf(stderr, "bayarhook: audit export: cannot set client_encoding UTF8: %s",
		        PQerrorMessage(cli->conn));
		return 1;
	}
	if ((rc = cli_time_zone(cli, cli->conn, zone != NULL ? zone : "UTC")) != 0)
		return rc;
	if (cli_export_range(cli) != 0)
		return 1;
	res = PQexec(cli->conn, csv ? export_csv : export_jsonl);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		cli_sql_error(cli->cmd->name, res);
		PQclear(res);
		return 1;
	}
	PQclear(res);
	/* Blocking: one row at a time, written before the next is read. */
	while ((n = PQgetCopyData(cli->conn, &buf, 0)) > 0) {
		size_t w = fwrite(buf, 1, (size_t)n, stdout);

		PQfreemem(buf);
		if (w != (size_t)n)
			break;
		rows++;
	}
	rc = 0;
	if (n == -2) {
		fprintf(stderr, "bayarhook: audit export: %s", PQerrorMessage(cli->conn));
		rc = 1;
	}
	if (n > 0) {
		/* stdout refused a row (a full disk): stop the copy, not the reader. */
		perror("bayarhook: audit export: stdout");
		return 1; /* cli_run's PQfinish ends the copy */
	}
	while ((res = PQgetResult(cli->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
			cli_sql_error(cli->cmd->name, res);
			rc = 1;
		}
		PQclear(res);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("bayarhook: audit export: stdout");
		return 1;
	}
	if (rc == 0)
		fprintf(stderr, "bayarhook: audit export: %llu rows\n",
		        csv && rows ? rows - 1 : rows);
	return rc;
}

const struct cli_command cli_cmd_audit_export = {
    .name = "audit export",
    .args = "--from TIME --to TIME [--format jsonl|csv] [--tz ZONE]",
    .help = "the audit rows received from TIME up to (not at) TIME, to stdout in id order",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_export_options,
    .check = cli_export_check,
    .run = cli_export,
};
