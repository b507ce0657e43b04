/*
 * cli_retain.c: the owner role's audit commands (README "Setup"):
 * `audit retain` drops the whole months of the audit older than [audit]
 * retention, leaving the chain's anchors (SPEC §11), and `grant` gives the
 * daemon's login role what serve needs and nothing more. Both run SQL
 * functions (sql/functions/audit_partitions.sql, roles.sql) in one
 * statement, so that each is one transaction.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "db.h"

/* SQLSTATE insufficient_privilege: the role is not the owner. */
#define CLI_SQLSTATE_PRIVILEGE "42501"

static const struct option cli_retain_options[] = {
    {"dry-run", no_argument, NULL, 'n'},
    {NULL, 0, NULL, 0},
};

/* After a refusal for want of rights: who may do it. */
static void cli_owner_hint(const char *what, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state != NULL && strcmp(state, CLI_SQLSTATE_PRIVILEGE) == 0)
		fprintf(stderr,
		        "bayarhook: %s: run it as the role that owns the schema (the one that "
		        "runs migrate), e.g. with --conninfo (README, \"Setup\")\n",
		        what);
}

static int cli_retain(struct cli *cli)
{
	bool dry = cli_opt(cli, 'n') != NULL;
	char days[16];
	const char *params[2] = {days, dry ? "true" : "false"};
	PGresult *res;
	int rc = 1;

	if (cli->cfg->audit_retention == 0) {
		printf("[audit] retention is 0: the audit is kept forever, nothing to drop\n");
		return 0;
	}
	snprintf(days, sizeof(days), "%d", cli->cfg->audit_retention);
	res = PQexecParams(cli->conn,
	                   "SELECT partition_name,"
	                   " to_char(range_from AT TIME ZONE 'UTC', 'YYYY-MM-DD'),"
	                   " to_char(range_to AT TIME ZONE 'UTC', 'YYYY-MM-DD'), row_count, lanes"
	                   " FROM bayarhook.audit_retain($1::integer, $2::boolean)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error(cli->cmd->name, res);
		cli_owner_hint(cli->cmd->name, res);
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s %s (UTC %s to %s): %s rows, %s lane anchor(s)\n",
		       dry ? "would drop" : "dropped", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
	if (PQntuples(res) == 0)
		printf("no month of the audit is older than %d days: nothing to drop\n",
		       cli->cfg->audit_retention);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const struct cli_command cli_cmd_audit_retain = {
    .name = "audit retain",
    .args = "[--dry-run]",
    .help = "drop the audit's months older than [audit] retention (as the owner role)",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_retain_options,
    .run = cli_retain,
};

enum { OPT_ROLE = 'r' };

static const struct option cli_grant_options[] = {
    {"role", required_argument, NULL, OPT_ROLE},
    {"dry-run", no_argument, NULL, 'n'},
    {NULL, 0, NULL, 0},
};

static int cli_grant_check(struct cli *cli)
{
	return cli_opt(cli, OPT_ROLE) != NULL ? 0 : cli_usage(cli);
}

static int cli_grant(struct cli *cli)
{
	const char *params[2] = {cli_opt(cli, OPT_ROLE), cli_opt(cli, 'n') ? "true" : "false"};
	PGresult *res;

	res = PQexecParams(cli->conn, "SELECT bayarhook.grant_daemon($1, $2::boolean)", 2, NULL,
	                   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

		cli_sql_error(cli->cmd->name, res);
		if (hint != NULL)
			fprintf(stderr, "bayarhook: grant: %s\n", hint);
		cli_owner_hint(cli->cmd->name, res);
		PQclear(res);
		return 1;
	}
	/* What was run (or would be), as SQL one can keep or run by hand. */
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s;\n", PQgetvalue(res, i, 0));
	PQclear(res);
	return 0;
}

const struct cli_command cli_cmd_grant = {
    .name = "grant",
    .args = "--role NAME [--dry-run]",
    .help = "give the daemon's login role NAME only what serve needs (as the owner role)",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_grant_options,
    .check = cli_grant_check,
    .run = cli_grant,
};
