/*
 * cli_audit_redact.c: `bayarhook audit redact --invoice ID | --older-than
 * DAYS` (SPEC §11): personal data out of stored callbacks at once, as the
 * owner role (an UPDATE the daemon's role may not have). The statements
 * and the macs that keep `audit verify` passing are audit_redact.h's; this
 * runs them in transactions of a bounded number of rows until none is left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit_redact.h"
#include "cli.h"
#include "config.h"
#include "db.h"

#define REDACT_ROWS "1000" /* per transaction */

enum { OPT_INVOICE = 'i', OPT_OLDER = 'o' };

static const struct option redact_options[] = {
    {"invoice", required_argument, NULL, OPT_INVOICE},
    {"older-than", required_argument, NULL, OPT_OLDER},
    {NULL, 0, NULL, 0},
};

static int redact_check(struct cli *cli)
{
	const char *inv = cli_opt(cli, OPT_INVOICE), *days = cli_opt(cli, OPT_OLDER);

	if ((inv == NULL) == (days == NULL) || (inv != NULL && inv[0] == '\0'))
		return cli_usage(cli);
	if (days != NULL && (days[0] == '\0' || strspn(days, "0123456789") != strlen(days) ||
	                     strlen(days) > 5 || atoi(days) < 1)) {
		fprintf(stderr,
		        "bayarhook: audit redact: --older-than takes whole days (1 or more)\n");
		return 2;
	}
	return 0;
}

static PGresult *redact_exec(PGconn *conn, const char *sql, int n, const char *const *params,
                             ExecStatusType want)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == want)
		return res;
	cli_sql_error("audit redact", res);
	PQclear(res);
	return NULL;
}

/* One transaction: -1 on failure (said), else the rows it redacted. */
static long redact_once(PGconn *conn, const struct audit_key *key, const char *const sel[3])
{
	struct audit_redact_params p;
	const char *up[3];
	PGresult *res;
	long n;

	if ((res = redact_exec(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK)) == NULL)
		return -1;
	PQclear(res);
	if ((res = redact_exec(conn, AUDIT_REDACT_SELECT, 3, sel, PGRES_TUPLES_OK)) == NULL)
		return -1;
	if (audit_redact_params(key, res, &p) < 0) {
		fprintf(stderr,
		        "bayarhook: audit redact: the rows are chained (SPEC §11) and there is "
		        "no [audit] key_file: a redaction would break the chain\n");
		PQclear(res);
		return -1;
	}
	PQclear(res);
	if (p.n == 0) {
		audit_redact_params_free(&p);
		return 0; /* its transaction stays open: redact_run rolls it back */
	}
	up[0] = p.ids;
	up[1] = p.origs;
	up[2] = p.macs;
	res = redact_exec(conn, AUDIT_REDACT_UPDATE, 3, up, PGRES_COMMAND_OK);
	audit_redact_params_free(&p);
	if (res == NULL)
		return -1;
	n = atol(PQcmdTuples(res));
	PQclear(res);
	if ((res = redact_exec(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK)) == NULL)
		return -1;
	PQclear(res);
	return n;
}

static int redact_run(struct cli *cli)
{
	const char *inv = cli_opt(cli, OPT_INVOICE), *days = cli_opt(cli, OPT_OLDER);
	const char *sel[3] = {inv, days, REDACT_ROWS};
	struct audit_key key;
	const struct audit_key *kp = NULL;
	long total = 0, n;
	PGresult *res;

	if (cli->cfg->audit_nkeys > 0) { /* the current key vouches for a redaction */
		audit_key_init(&key, cli->cfg->audit_keys[0], strlen(cli->cfg->audit_keys[0]));
		kp = &key;
	}
	while ((n = redact_once(cli->conn, kp, sel)) > 0)
		total += n;
	if (kp != NULL)
		OPENSSL_cleanse(&key, sizeof(key));
	if (n < 0)
		return 1;
	/* The last, empty transaction is still open. */
	if ((res = redact_exec(cli->conn, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK)) != NULL)
		PQclear(res);
	if (inv != NULL)
		printf("redacted %ld row(s) of invoice %s\n", total, inv);
	else
		printf("redacted %ld row(s) older than %s days\n", total, days);
	return 0;
}

const struct cli_command cli_cmd_audit_redact = {
    .name = "audit redact",
    .args = "--invoice ID | --older-than DAYS",
    .help = "replace customer name, email and phone in stored callbacks with [redacted]",
    .config = true,
    .db = CLI_DB_CONNECT,
    .audit_key = true, /* of the secrets, only the chain's key (SPEC §10) */
    .shortopts = "",
    .longopts = redact_options,
    .check = redact_check,
    .run = redact_run,
};
