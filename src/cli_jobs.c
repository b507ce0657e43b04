/*
 * cli_jobs.c: `bayarhook jobs`, `retry`, `replay` and `cancel`: the
 * fulfillment queue from a shell. Blocking libpq, like the other admin
 * commands; every change is one call of a function of
 * sql/functions/jobs.sql, which also wakes the daemons (NOTIFY
 * bayarhook_jobs).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "when.h"

/* The values of bayarhook.jobs.state (sql/004_job_states.sql). */
static const char *const JOB_STATES[] = {"pending", "running", "succeeded",
                                         "dead",    "held",    "cancelled"};

static bool known_state(const char *s)
{
	for (size_t i = 0; i < sizeof(JOB_STATES) / sizeof(JOB_STATES[0]); i++)
		if (strcmp(s, JOB_STATES[i]) == 0)
			return true;
	return false;
}

static bool all_digits(const char *s)
{
	return s && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

/* ---- jobs ---- */

static void print_table(const char *json)
{
	cJSON *rows = cJSON_Parse(json);
	const cJSON *r;

	printf("%-8s %-36s %-16s %-9s %4s  %-*s  %s\n", "ID", "INVOICE", "ACTION", "STATE", "TRY",
	       CLI_TIME_WIDTH, "NEXT/FINISHED", "LAST ERROR");
	cJSON_ArrayForEach(r, rows)
	{
		static const char *const f[] = {"invoice_id", "action",   "state",
		                                "next_at",    "finished", "last_error"};
		const char *v[6];

		cli_row_strings(r, f, 6, v, "");
		printf("%-8.0f %-36s %-16s %-9s %4.0f  %-*s  %s\n",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")), v[0], v[1],
		       v[2], cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "attempts")),
		       CLI_TIME_WIDTH, v[4][0] ? v[4] : v[3], v[5]);
	}
	cJSON_Delete(rows);
}

/* getopt vals of the options jobs and retry share. */
enum { OPT_SINCE = 'S', OPT_TZ = 'z', OPT_ACTION = 'a' };

static const struct option cli_jobs_options[] = {
    {"state", required_argument, NULL, 's'},         {"invoice", required_argument, NULL, 'i'},
    {"action", required_argument, NULL, OPT_ACTION}, {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, 'n'},         {"json", no_argument, NULL, 'j'},
    {"tz", required_argument, NULL, OPT_TZ},         {NULL, 0, NULL, 0},
};

static bool jobs_is_show(const struct cli *cli)
{
	return cli->nargs > 0 && strcmp(cli->args[0], "show") == 0;
}

static int state_check(const struct cli *cli, const char *state)
{
	if (state && !known_state(state)) {
		fprintf(stderr,
		        "bayarhook: %s: unknown --state %s (pending, running, succeeded, dead, "
		        "held or cancelled)\n",
		        cli->cmd->name, state);
		return 2;
	}
	return 0;
}

static int cli_jobs_check(struct cli *cli)
{
	const char *limit = cli_opt(cli, 'n'), *since = cli_opt(cli, OPT_SINCE);
	char buf[64];
	int rc;

	if (jobs_is_show(cli)) {
		/* jobs show JOB_ID: the list's filters would mean nothing. */
		if (cli->nargs != 2 || !all_digits(cli->args[1]) || cli_opt(cli, 's') ||
		    cli_opt(cli, 'i') || cli_opt(cli, OPT_ACTION) || since || limit)
			return cli_usage(cli);
		return 0;
	}
	if (cli->nargs != 0 || (limit != NULL && !all_digits(limit)))
		return cli_usage(cli);
	if ((rc = state_check(cli, cli_opt(cli, 's'))) != 0)
		return rc;
	return since ? cli_time_since(cli, since, buf, sizeof(buf)) : 0;
}

/* Prints one attempt of jobs show. */
static void print_attempt(const cJSON *a)
{
	static const char *const f[] = {"started", "finished", "outcome", "runner", "output"};
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(a, "exit_code");
	const cJSON *http = cJSON_GetObjectItemCaseSensitive(a, "http_status");
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(a, "row_count");
	const char *v[5];
	char result[64] = "";

	cli_row_strings(a, f, 5, v, "");
	if (cJSON_IsNumber(code))
		snprintf(result, sizeof(result), "exit status %d", code->valueint);
	else if (cJSON_IsNumber(http))
		snprintf(result, sizeof(result), "HTTP %d", http->valueint);
	else if (cJSON_IsNumber(rows))
		snprintf(result, sizeof(result), "%.0f rows", rows->valuedouble);
	printf("\nattempt %.0f  %s -> %s  %s%s%s%s%s\n",
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "attempt")), v[0],
	       v[1][0] ? v[1] : "(not finished)", v[2][0] ? v[2] : "running", result[0] ? "  " : "",
	       result, v[3][0] ? "  on " : "", v[3]);
	if (v[4][0]) {
		const char *line = v[4];

		/* Indented, so that the script's own lines cannot pass for ours. */
		while (*line) {
			size_t n = strcspn(line, "\n");

			printf("  | %.*s\n", (int)n, line);
			line += n + (line[n] == '\n');
		}
	}
}

static int cli_jobs_show(struct cli *cli)
{
	const char *params[1] = {cli->args[1]};
	PGresult *res;
	cJSON *doc = NULL;
	const cJSON *job, *a;
	int rc = 1;

	/* Times twice: as JSON values for --json, formatted with their zone for people. */
	res = PQexecParams(
	    cli->conn,
	    "SELECT json_build_object('job', to_jsonb(j) || jsonb_build_object("
	    "   'created', to_char(j.created_at, " CLI_TIME_FORMAT "),"
	    "   'next', CASE WHEN j.state IN ('pending', 'running') THEN"
	    "    to_char(j.next_attempt_at, " CLI_TIME_FORMAT ") END,"
	    "   'finished', to_char(j.finished_at, " CLI_TIME_FORMAT ")),"
	    "  'attempts', coalesce((SELECT json_agg(to_jsonb(a) || jsonb_build_object("
	    "    'started', to_char(a.started_at, " CLI_TIME_FORMAT "),"
	    "    'finished', to_char(a.finished_at, " CLI_TIME_FORMAT ")) ORDER BY a.id)"
	    "   FROM bayarhook.job_attempts a WHERE a.job_id = j.id), '[]'))"
	    " FROM bayarhook.jobs j WHERE j.id = $1::bigint",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("jobs show", res);
		goto out;
	}
	if (PQntuples(res) == 0) {
		fprintf(stderr, "bayarhook: jobs show: no job %s\n", cli->args[1]);
		goto out;
	}
	if (cli_opt(cli, 'j')) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		rc = 0;
		goto out;
	}
	doc = cJSON_Parse(PQgetvalue(res, 0, 0));
	job = cJSON_GetObjectItemCaseSensitive(doc, "job");
	{
		static const char *const f[] = {"invoice_id", "action",     "state", "status",
		                                "source",     "created",    "next",  "finished",
		                                "last_error", "held_reason"};
		const char *v[10];

		cli_row_strings(job, f, 10, v, "");
		printf("job %s  invoice %s  action %s  state %s%s%s\n", cli->args[1], v[0], v[1],
		       v[2], v[9][0] ? " " : "", v[9]);
		printf("for status %s (%s%s), %.0f attempt(s)\n", v[3], v[4],
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "replay")) ? ", a replay"
		                                                                     : "",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(job, "attempts")));
		printf("created  %s\n", v[5]);
		if (v[6][0])
			printf("next     %s\n", v[6]);
		if (v[7][0])
			printf("finished %s\n", v[7]);
		if (v[8][0])
			printf("last error: %s\n", v[8]);
	}
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(doc, "attempts"))
	{
		print_attempt(a);
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	PQclear(res);
	return rc;
}

static int cli_jobs(struct cli *cli)
{
	const char *state = cli_opt(cli, 's'), *invoice = cli_opt(cli, 'i');
	const char *limit = cli_opt(cli, 'n') ? cli_opt(cli, 'n') : "1000";
	const char *params[5];
	char since[64];
	bool json = cli_opt(cli, 'j') != NULL;
	PGconn *conn = cli->conn;
	PGresult *res = NULL;
	int rc;

	if ((rc = cli_time_zone(cli, conn, cli_opt(cli, OPT_TZ))) != 0)
		return rc;
	if (jobs_is_show(cli))
		return cli_jobs_show(cli);
	rc = 1;
	params[0] = state;
	params[1] = invoice;
	params[2] = limit;
	params[3] = cli_opt(cli, OPT_ACTION);
	params[4] = NULL;
	if (cli_opt(cli, OPT_SINCE)) {
		cli_time_since(cli, cli_opt(cli, OPT_SINCE), since, sizeof(since));
		params[4] = since;
	}
	/* The newest N that match, oldest first; a held job is due at no time: null. */
	res = PQexecParams(
	    conn,
	    "SELECT coalesce(json_agg(t ORDER BY t.id), '[]'::json) FROM ("
	    " SELECT id, invoice_id, action, status, state, held_reason, attempts,"
	    "  CASE WHEN state <> 'held' THEN next_attempt_at END AS next_attempt_at,"
	    "  last_error, created_at, to_char(finished_at, " CLI_TIME_FORMAT ") AS finished,"
	    "  finished_at, replay, source,"
	    "  to_char(CASE WHEN state <> 'held' THEN next_attempt_at END,"
	    "   " CLI_TIME_FORMAT ") AS next_at"
	    " FROM bayarhook.jobs"
	    " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR invoice_id = $2)"
	    "  AND ($4::text IS NULL OR action = $4)"
	    "  AND ($5::timestamptz IS NULL OR created_at >= $5::timestamptz)"
	    " ORDER BY id DESC LIMIT $3::bigint) t",
	    5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("jobs", res);
		goto out;
	}
	if (json) {
		/* Without the table's helper columns. */
		cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
		cJSON *r;
		char *text;

		cJSON_ArrayForEach(r, rows)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(r, "next_at");
			cJSON_DeleteItemFromObjectCaseSensitive(r, "finished");
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
    .args = "[--state S] [--invoice ID] [--action NAME] [--since AGE|TIME] [--limit N] [--json] "
            "[--tz ZONE] | jobs show JOB_ID [--json] [--tz ZONE]",
    .help = "list fulfillment jobs, or show one with every attempt",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_jobs_options,
    .max_args = 2,
    .check = cli_jobs_check,
    .run = cli_jobs,
};

/* ---- retry ---- */

static int cli_job_id_check(struct cli *cli)
{
	return all_digits(cli->args[0]) ? 0 : cli_usage(cli);
}

/*
 * Calls one job function of sql/functions/jobs.sql on the job named by the
 * command's operand: its (was, changed) row, or NULL after saying why (an
 * error, or no such job).
 */
static PGresult *job_change(struct cli *cli, const char *what, const char *sql)
{
	const char *params[1] = {cli->args[0]};
	PGresult *res = PQexecParams(cli->conn, sql, 1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error(what, res);
	} else if (PQntuples(res) == 0) {
		fprintf(stderr, "bayarhook: %s: no job %s\n", what, cli->args[0]);
	} else {
		return res;
	}
	PQclear(res);
	return NULL;
}

static const struct option cli_retry_options[] = {
    {"state", required_argument, NULL, 's'},
    {"action", required_argument, NULL, OPT_ACTION},
    {"since", required_argument, NULL, OPT_SINCE},
    {NULL, 0, NULL, 0},
};

static int cli_retry_check(struct cli *cli)
{
	const char *state = cli_opt(cli, 's'), *since = cli_opt(cli, OPT_SINCE);
	char buf[64];
	int rc;

	if (cli->nargs == 1)
		return state || since || cli_opt(cli, OPT_ACTION) ? cli_usage(cli)
		                                                  : cli_job_id_check(cli);
	if (state == NULL)
		return cli_usage(cli);
	if ((rc = state_check(cli, state)) != 0)
		return rc;
	if (strcmp(state, "dead") != 0) {
		fprintf(stderr, "bayarhook: retry: only --state dead retries many jobs at once\n");
		return 2;
	}
	return since ? cli_time_since(cli, since, buf, sizeof(buf)) : 0;
}

/* retry --state dead [--action NAME] [--since AGE]: every such job at once, one call. */
static int cli_retry_dead(struct cli *cli)
{
	const char *params[2] = {cli_opt(cli, OPT_ACTION), NULL};
	char since[64];
	PGresult *res;
	int n;

	if (cli_opt(cli, OPT_SINCE)) {
		cli_time_since(cli, cli_opt(cli, OPT_SINCE), since, sizeof(since));
		params[1] = since;
	}
	res = PQexecParams(cli->conn,
	                   "SELECT count(*) FROM bayarhook.job_retry_dead("
	                   "p_action => $1, p_since => $2::timestamptz)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("retry", res);
		PQclear(res);
		return 1;
	}
	n = atoi(PQgetvalue(res, 0, 0));
	printf("%d dead job%s queued\n", n, n == 1 ? "" : "s");
	PQclear(res);
	return 0;
}

static int cli_retry(struct cli *cli)
{
	const char *job;
	PGresult *res;
	int rc = 1;

	if (cli->nargs == 0)
		return cli_retry_dead(cli);
	job = cli->args[0];
	if ((res = job_change(cli, "retry",
	                      "SELECT was, queued FROM bayarhook.job_retry(p_job => $1)")) == NULL)
		return 1;
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		const char *st = PQgetvalue(res, 0, 0);

		if (strcmp(st, "succeeded") == 0)
			fprintf(stderr,
			        "bayarhook: retry: job %s already succeeded (bayarhook replay "
			        "runs the actions of an invoice again)\n",
			        job);
		else if (strcmp(st, "held") == 0)
			fprintf(stderr,
			        "bayarhook: retry: job %s waits for the gateway to confirm the "
			        "payment (confirm_with_api)\n",
			        job);
		else
			fprintf(stderr, "bayarhook: retry: job %s is %s\n", job, st);
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
    .args = "JOB_ID | retry --state dead [--action NAME] [--since AGE|TIME]",
    .help = "put a failed or dead job back in the queue now, or every dead one that matches",
    .config = true,
    .db = CLI_DB_CONNECT,
    .shortopts = "",
    .longopts = cli_retry_options,
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

static const char *cli_when_lookup(const void *arg, const char *field)
{
	/* event_field only fills the event's cache of PHP texts. */
	return event_field((struct pay_event *)(uintptr_t)arg, field);
}

/*
 * SPEC §9: a replay makes no job of an action whose `when` the payment's
 * stored event does not match, as ingest() would not have. Removes those
 * names from the actions map; a payment without a readable event keeps it
 * whole (job_replay then says no_payment).
 */
static char *cli_replay_when(PGconn *conn, const struct config *cfg, const char *invoice,
                             char *names_text)
{
	const char *params[1] = {invoice};
	PGresult *res =
	    PQexecParams(conn, "SELECT event::text FROM bayarhook.payments WHERE invoice_id = $1",
	                 1, NULL, params, NULL, NULL, 0);
	struct pay_event ev;
	const char *perr = NULL;
	cJSON *map;
	char *out;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return names_text;
	}
	if (event_parse(&ev, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &perr) < 0) {
		PQclear(res);
		return names_text;
	}
	PQclear(res);
	map = cJSON_Parse(names_text);
	for (size_t i = 0; map != NULL && i < cfg->nactions; i++) {
		const struct action_conf *a = &cfg->actions[i];
		char err[256];
		struct when *w;
		cJSON *list;

		if (a->when == NULL || a->when[0] == '\0' ||
		    (w = when_parse(a->when, err, sizeof(err))) == NULL)
			continue;
		/*
		 * Each list of the map, and the "after" object too: an action
		 * waiting for one this replay leaves out does not wait.
		 */
		if (!when_match(w, cli_when_lookup, &ev)) {
			cJSON_ArrayForEach(list, map)
			{
				for (int k = cJSON_GetArraySize(list) - 1; k >= 0; k--) {
					cJSON *n = cJSON_GetArrayItem(list, k);

					if (cJSON_IsString(n) &&
					    strcmp(n->valuestring, a->name) == 0)
						cJSON_DeleteItemFromArray(list, k);
				}
			}
		}
		when_free(w);
	}
	event_release(&ev);
	out = map ? cJSON_PrintUnformatted(map) : NULL;
	cJSON_Delete(map);
	if (out == NULL)
		return names_text;
	free(names_text);
	/* cJSON's allocation and ours are both malloc: free() fits either. */
	return out;
}

static int cli_replay(struct cli *cli)
{
	const char *only = cli_opt(cli, 'a'), *invoice = cli->args[0], *outcome, *params[2];
	struct config *cfg = cli->cfg;
	PGconn *conn = cli->conn;
	PGresult *res = NULL;
	char *names_text = NULL;
	int rc = 1;

	if (only && config_action(cfg, only) == NULL) {
		fprintf(stderr, "bayarhook: replay: no [action.%s] in %s\n", only,
		        cli->config_path);
		goto out;
	}
	names_text = cli_replay_when(conn, cfg, invoice, config_actions_by_status(cfg, only));
	params[0] = invoice;
	params[1] = names_text;
	/* It decides on the payment's status under the payment's row lock. */
	res = PQexecParams(conn,
	                   "SELECT outcome, status, job_id, action FROM"
	                   " bayarhook.job_replay(p_invoice => $1, p_actions => $2)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
		cli_sql_error("replay", res);
		goto out;
	}
	outcome = PQgetvalue(res, 0, 0);
	if (strcmp(outcome, "no_payment") == 0) {
		fprintf(stderr, "bayarhook: replay: no payment %s\n", invoice);
		goto out;
	}
	if (strcmp(outcome, "held") == 0) {
		fprintf(stderr,
		        "bayarhook: replay: the jobs of %s wait for the gateway to confirm "
		        "the payment (confirm_with_api)\n",
		        invoice);
		goto out;
	}
	if (strcmp(outcome, "no_action") == 0) {
		if (only)
			fprintf(stderr,
			        "bayarhook: replay: action %s does not run on status %s (on =)\n",
			        only, PQgetvalue(res, 0, 1));
		else
			fprintf(stderr, "bayarhook: replay: no action runs on status %s\n",
			        PQgetvalue(res, 0, 1));
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++)
		printf("job %s queued: invoice %s action %s\n", PQgetvalue(res, i, 2), invoice,
		       PQgetvalue(res, i, 3));
	rc = 0;
out:
	free(names_text);
	PQclear(res);
	return rc;
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

/* ---- cancel ---- */

static int cli_cancel(struct cli *cli)
{
	const char *job = cli->args[0];
	PGresult *res;
	int rc = 1;

	if ((res = job_change(cli, "cancel",
	                      "SELECT was, cancelled FROM bayarhook.job_cancel(p_job => $1)")) ==
	    NULL)
		return 1;
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		fprintf(stderr,
		        "bayarhook: cancel: job %s is %s (only a pending, held or dead job can be "
		        "cancelled)\n",
		        job, PQgetvalue(res, 0, 0));
		goto out;
	}
	printf("job %s cancelled (was %s)\n", job, PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

const struct cli_command cli_cmd_cancel = {
    .name = "cancel",
    .args = "JOB_ID",
    .help = "end a pending, held or dead job (cancelled)",
    .config = true,
    .db = CLI_DB_CONNECT,
    .min_args = 1,
    .max_args = 1,
    .check = cli_job_id_check,
    .run = cli_cancel,
};
