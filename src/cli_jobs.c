/*
 * cli_jobs.c: `bayarhook jobs`, `retry` and `replay`: the fulfillment queue
 * from a shell. Blocking libpq, like the other admin commands; every change
 * is one statement (or one transaction) and wakes the daemons through
 * NOTIFY bayarhook_jobs.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "event.h"

static bool all_digits(const char *s)
{
	return s && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

static void say_sql_error(const char *what, PGresult *res)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
	msg[strcspn(msg, "\n")] = '\0';
	fprintf(stderr, "bayarhook: %s: %s\n", what, msg);
}

/* ---- jobs ---- */

static void print_table(const char *json)
{
	cJSON *rows = cJSON_Parse(json);
	const cJSON *r;

	printf("%-8s %-36s %-16s %-9s %4s  %-19s  %s\n", "ID", "INVOICE", "ACTION", "STATE", "TRY",
	       "NEXT/FINISHED", "LAST ERROR");
	cJSON_ArrayForEach(r, rows)
	{
		static const char *const f[] = {"invoice_id", "action",      "state",
		                                "next_at",    "finished_at", "last_error"};
		const char *v[6];

		cli_row_strings(r, f, 6, v, "");
		printf("%-8.0f %-36s %-16s %-9s %4.0f  %-19.19s  %s\n",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")), v[0], v[1],
		       v[2], cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "attempts")),
		       v[4][0] ? v[4] : v[3], v[5]);
	}
	cJSON_Delete(rows);
}

static const struct option cli_jobs_options[] = {
    {"state", required_argument, NULL, 's'},
    {"invoice", required_argument, NULL, 'i'},
    {"limit", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

static int cli_jobs_check(struct cli *cli)
{
	const char *state = cli_opt(cli, 's'), *limit = cli_opt(cli, 'n');

	if (limit != NULL && !all_digits(limit))
		return cli_usage(cli);
	if (state && strcmp(state, "pending") != 0 && strcmp(state, "running") != 0 &&
	    strcmp(state, "succeeded") != 0 && strcmp(state, "dead") != 0) {
		fprintf(stderr, "bayarhook: jobs: --state must be pending, running, succeeded or "
		                "dead\n");
		return 2;
	}
	return 0;
}

static int cli_jobs(struct cli *cli)
{
	const char *state = cli_opt(cli, 's'), *invoice = cli_opt(cli, 'i');
	const char *limit = cli_opt(cli, 'n') ? cli_opt(cli, 'n') : "1000";
	const char *params[3];
	bool json = cli_opt(cli, 'j') != NULL;
	PGconn *conn = cli->conn;
	PGresult *res = NULL;
	int rc = 1;

	params[0] = state;
	params[1] = invoice;
	params[2] = limit;
	/* The newest N that match, oldest first; 'infinity' (held) shows as null. */
	res = PQexecParams(
	    conn,
	    "SELECT coalesce(json_agg(t ORDER BY t.id), '[]'::json) FROM ("
	    " SELECT id, invoice_id, action, state, attempts,"
	    "  CASE WHEN isfinite(next_attempt_at) THEN next_attempt_at END AS next_attempt_at,"
	    "  last_error, created_at, finished_at, replay, source,"
	    "  to_char(CASE WHEN isfinite(next_attempt_at) THEN next_attempt_at END,"
	    "   'YYYY-MM-DD HH24:MI:SS') AS next_at"
	    " FROM bayarhook.jobs"
	    " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR invoice_id = $2)"
	    " ORDER BY id DESC LIMIT $3::bigint) t",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		say_sql_error("jobs", res);
		goto out;
	}
	if (json) {
		/* Without the table's helper column. */
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		cJSON *r;
		char *text;

		cJSON_ArrayForEach(r, rows)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(r, "next_at");
		}
		text = rows ? cJSON_PrintUnformatted(rows) : NULL;
		printf("%s\n", text ? text : "[]");
		free(text);
		cJSON_Delete(rows);
	} else {
		print_table(PQgetvalue(res, 0, 0));
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const struct cli_command cli_cmd_jobs = {
    .name = "jobs",
    .args = "[--state S] [--invoice ID] [--limit N] [--json]",
    .help = "list fulfillment jobs",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_jobs_options,
    .check = cli_jobs_check,
    .run = cli_jobs,
};

/* ---- retry ---- */

static int cli_retry_check(struct cli *cli)
{
	return all_digits(cli->args[0]) ? 0 : cli_usage(cli);
}

static int cli_retry(struct cli *cli)
{
	const char *job = cli->args[0];
	PGconn *conn = cli->conn;
	PGresult *res = NULL;
	const char *params[1];
	int rc = 1;

	params[0] = job;
	/*
	 * One statement decides and changes: a pending job becomes due now (its
	 * attempts so far still count); a dead one starts over with a full
	 * max_attempts and the first backoff. Running, succeeded and held jobs
	 * are left alone and reported.
	 */
	res = PQexecParams(
	    conn,
	    "WITH cur AS (SELECT id, state, isfinite(next_attempt_at) AS due"
	    "  FROM bayarhook.jobs WHERE id = $1::bigint FOR UPDATE),"
	    " upd AS (UPDATE bayarhook.jobs j SET state = 'pending', next_attempt_at = now(),"
	    "  finished_at = NULL,"
	    "  attempts = CASE WHEN j.state = 'dead' THEN 0 ELSE j.attempts END"
	    "  FROM cur WHERE j.id = cur.id AND (cur.state = 'dead' OR"
	    "   (cur.state = 'pending' AND cur.due))"
	    "  RETURNING j.id, j.invoice_id),"
	    " n AS (SELECT pg_notify('bayarhook_jobs', invoice_id) FROM upd)"
	    " SELECT cur.state, cur.due, (SELECT count(*) FROM upd), (SELECT count(*) FROM n)"
	    " FROM cur",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		say_sql_error("retry", res);
		goto out;
	}
	if (PQntuples(res) == 0) {
		fprintf(stderr, "bayarhook: retry: no job %s\n", job);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "1") != 0) {
		const char *st = PQgetvalue(res, 0, 0);

		if (strcmp(st, "succeeded") == 0)
			fprintf(stderr,
			        "bayarhook: retry: job %s already succeeded (bayarhook replay "
			        "runs the actions of an invoice again)\n",
			        job);
		else if (strcmp(st, "running") == 0)
			fprintf(stderr, "bayarhook: retry: job %s is running\n", job);
		else
			fprintf(stderr,
			        "bayarhook: retry: job %s waits for the gateway to confirm the "
			        "payment (confirm_with_api)\n",
			        job);
		goto out;
	}
	printf("job %s queued (was %s)\n", job, PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const struct cli_command cli_cmd_retry = {
    .name = "retry",
    .args = "JOB_ID",
    .help = "put a failed or dead job back in the queue now",
    .config = true,
    .db = CLI_DB_CONNECT,
    .min_args = 1,
    .max_args = 1,
    .check = cli_retry_check,
    .run = cli_retry,
};

/* ---- replay ---- */

static const struct option cli_replay_options[] = {
    {"action", required_argument, NULL, 'a'},
    {NULL, 0, NULL, 0},
};

static int cli_replay_check(struct cli *cli)
{
	return cli->args[0][0] == '\0' ? cli_usage(cli) : 0;
}

static int cli_replay(struct cli *cli)
{
	const char *only = cli_opt(cli, 'a'), *invoice = cli->args[0], *params[2];
	struct config *cfg = cli->cfg;
	PGconn *conn = cli->conn;
	PGresult *res = NULL;
	enum pay_status st;
	cJSON *names = NULL;
	char *names_text = NULL;
	int rc = 1;

	if (only && config_action(cfg, only) == NULL) {
		fprintf(stderr, "bayarhook: replay: no [action.%s] in %s\n", only,
		        cli->config_path);
		goto out;
	}
	res = PQexec(conn, "BEGIN");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		say_sql_error("replay", res);
		goto out;
	}
	PQclear(res);
	params[0] = invoice;
	/* The payment row lock orders us with ingest() and the confirmer. */
	res = PQexecParams(conn,
	                   "SELECT p.status, EXISTS (SELECT 1 FROM bayarhook.jobs j"
	                   "  WHERE j.invoice_id = p.invoice_id AND j.state = 'pending'"
	                   "    AND j.next_attempt_at = 'infinity')"
	                   " FROM bayarhook.payments p WHERE p.invoice_id = $1 FOR UPDATE",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		say_sql_error("replay", res);
		goto out;
	}
	if (PQntuples(res) == 0) {
		fprintf(stderr, "bayarhook: replay: no payment %s\n", invoice);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		fprintf(stderr,
		        "bayarhook: replay: the jobs of %s wait for the gateway to confirm "
		        "the payment (confirm_with_api)\n",
		        invoice);
		goto out;
	}
	st = event_status_parse(PQgetvalue(res, 0, 0));
	if ((names = cJSON_CreateArray()) == NULL)
		goto oom;
	for (size_t i = 0; i < cfg->nactions; i++) {
		const struct action_conf *a = &cfg->actions[i];

		if (only && strcmp(a->name, only) != 0)
			continue;
		if (!(a->on_mask & STATUS_MASK(st))) {
			if (only)
				fprintf(stderr,
				        "bayarhook: replay: action %s does not run on status %s "
				        "(on =)\n",
				        only, PQgetvalue(res, 0, 0));
			continue;
		}
		cJSON_AddItemToArray(names, cJSON_CreateString(a->name));
	}
	if (cJSON_GetArraySize(names) == 0) {
		if (!only)
			fprintf(stderr, "bayarhook: replay: no action runs on status %s\n",
			        PQgetvalue(res, 0, 0));
		goto out;
	}
	if ((names_text = cJSON_PrintUnformatted(names)) == NULL)
		goto oom;
	PQclear(res);
	params[1] = names_text;
	res =
	    PQexecParams(conn,
	                 "WITH ins AS (INSERT INTO bayarhook.jobs"
	                 "  (invoice_id, action, trigger_status, source, event, replay)"
	                 " SELECT p.invoice_id, a.name, p.status, p.source, p.event, true"
	                 "  FROM bayarhook.payments p,"
	                 "   jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS a(name, n)"
	                 "  WHERE p.invoice_id = $1 ORDER BY a.n"
	                 " RETURNING id, action)"
	                 " SELECT id, action, pg_notify('bayarhook_jobs', $1) FROM ins ORDER BY id",
	                 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		say_sql_error("replay", res);
		goto out;
	}
	{
		PGresult *commit = PQexec(conn, "COMMIT");

		if (PQresultStatus(commit) != PGRES_COMMAND_OK) {
			say_sql_error("replay", commit);
			PQclear(commit);
			goto out;
		}
		PQclear(commit);
	}
	for (int i = 0; i < PQntuples(res); i++)
		printf("job %s queued: invoice %s action %s\n", PQgetvalue(res, i, 0), invoice,
		       PQgetvalue(res, i, 1));
	rc = 0;
	goto out;
oom:
	fprintf(stderr, "bayarhook: out of memory\n");
out:
	cJSON_Delete(names);
	free(names_text);
	PQclear(res);
	return rc; /* the skeleton's PQfinish rolls back an open transaction */
}

const struct cli_command cli_cmd_replay = {
    .name = "replay",
    .args = "INVOICE [--action NAME]",
    .help = "run the actions of an invoice again, as new jobs",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_replay_options,
    .min_args = 1,
    .max_args = 1,
    .check = cli_replay_check,
    .run = cli_replay,
};
