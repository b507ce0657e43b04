/*
 * cli_reconcile.c: `bayarhook reconcile --once`: one reconciliation pass on
 * a private event loop, with the same code `serve` runs every interval,
 * whatever [reconciler] enabled says. Prints a line per payment found (and
 * with --verbose per invoice checked), then a summary; exit 0 only when the
 * pass completed. `reconcile --history` lists the passes recorded in
 * bayarhook.reconcile_passes instead.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "alert.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "gateway.h"
#include "migrate.h"
#include "reconcile.h"
#include "store.h"
#include "xmalloc.h"

#define CLI_DB_WAIT_SEC 30 /* for the pool's first connection */

struct cli_run {
	struct event_base *base;
	struct db_pool *pool;
	struct reconcile *rc;
	bool verbose;
	bool started;
	int rc_exit;
	char why[400];
	/* Alerts the pass raised (missed_callback), recorded at the end for serve to deliver. */
	struct cli_alert {
		enum alert_kind kind;
		char *subject, *detail;
	} * alerts;
	size_t nalerts;
};

static void cli_alert_raised(enum alert_kind kind, const char *subject, const char *detail,
                             void *arg)
{
	struct cli_run *r = arg;
	struct cli_alert *a;

	r->alerts = xreallocarray(r->alerts, r->nalerts + 1, sizeof(*r->alerts));
	a = &r->alerts[r->nalerts++];
	a->kind = kind;
	a->subject = xstrdup(subject ? subject : "");
	a->detail = xstrdup(detail ? detail : "{}");
}

/*
 * The alerts of the pass go to bayarhook.alerts, where a running serve
 * delivers them like its own; without one they wait there (SPEC §8).
 */
static void cli_record_alerts(struct cli_run *r, const char *conninfo)
{
	char err[512];
	PGconn *conn;
	size_t written = 0;

	if (r->nalerts == 0)
		return;
	if ((conn = db_connect_blocking(conninfo, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bayarhook: reconcile: %zu alert(s) not recorded: %s\n", r->nalerts,
		        err);
		r->rc_exit = 1;
		return;
	}
	for (size_t i = 0; i < r->nalerts; i++) {
		const char *params[3] = {alert_kind_name(r->alerts[i].kind), r->alerts[i].subject,
		                         r->alerts[i].detail};
		PGresult *res =
		    PQexecParams(conn, "SELECT bayarhook.alert_raise($1, $2, $3::jsonb)", 3, NULL,
		                 params, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			written++;
		else
			cli_sql_error("reconcile", res);
		PQclear(res);
	}
	PQfinish(conn);
	printf("%zu alert(s) recorded for serve to deliver\n", written);
	if (written < r->nalerts)
		r->rc_exit = 1;
}

static void cli_alerts_free(struct cli_run *r)
{
	for (size_t i = 0; i < r->nalerts; i++) {
		free(r->alerts[i].subject);
		free(r->alerts[i].detail);
	}
	free(r->alerts);
}

static void cli_report(enum reconcile_report kind, const char *invoice, const char *text, void *arg)
{
	struct cli_run *r = arg;

	switch (kind) {
	case RECONCILE_FOUND:
		printf("found   %s  %s\n", invoice, text);
		break;
	case RECONCILE_ERROR:
		printf("error   %s  %s\n", invoice ? invoice : "-", text);
		break;
	case RECONCILE_CHECKED:
		if (r->verbose)
			printf("checked %s  %s\n", invoice, text);
		break;
	}
	fflush(stdout);
}

static void cli_done(const struct reconcile_summary *s, void *arg)
{
	struct cli_run *r = arg;

	if (strcmp(s->result, "skipped") == 0) {
		snprintf(r->why, sizeof(r->why), "%s", s->note ? s->note : "pass skipped");
	} else {
		printf("pass %lld %s in %.1f s: checked %d invoice%s, found %d, errors %d; "
		       "%d API request%s, %d list-payments page%s\n",
		       s->id, s->result, s->seconds, s->checked, s->checked == 1 ? "" : "s",
		       s->found, s->errors, s->requests, s->requests == 1 ? "" : "s", s->pages,
		       s->pages == 1 ? "" : "s");
		if (strcmp(s->result, "completed") == 0)
			r->rc_exit = 0;
		else
			snprintf(r->why, sizeof(r->why), "pass %lld %s: %s", s->id, s->result,
			         s->note ? s->note : "see the lines above");
	}
	event_base_loopbreak(r->base);
}

static void cli_start(struct cli_run *r)
{
	if (r->started)
		return;
	r->started = true;
	if (reconcile_run(r->rc, cli_report, cli_done, r) < 0) {
		snprintf(r->why, sizeof(r->why), "a pass is already running");
		event_base_loopbreak(r->base);
	}
}

static void cli_db_state(bool up, void *arg)
{
	if (up)
		cli_start(arg);
}

static void cli_db_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cli_run *r = arg;

	(void)fd;
	(void)what;
	if (r->started)
		return;
	snprintf(r->why, sizeof(r->why), "cannot connect to the database within %d s",
	         CLI_DB_WAIT_SEC);
	event_base_loopbreak(r->base);
}

static void cli_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cli_run *r = arg;

	(void)sig;
	(void)what;
	/* The pass ends itself: cancelled calls, its row marked aborted, the lock released. */
	if (reconcile_busy(r->rc))
		reconcile_stop(r->rc);
	else
		event_base_loopbreak(r->base);
}

/* A clear message instead of a failed INSERT when the schema is old. */
static int check_schema(const char *conninfo, char *why, size_t len)
{
	PGconn *conn = db_connect_blocking(conninfo, why, len);
	int v;

	if (conn == NULL)
		return -1;
	v = migrate_current(conn);
	PQfinish(conn);
	if (v < migrate_latest()) {
		snprintf(why, len,
		         "the database schema is at version %d, this bayarhook needs %d: "
		         "run bayarhook migrate",
		         v < 0 ? 0 : v, migrate_latest());
		return -1;
	}
	return 0;
}

static const struct option cli_reconcile_options[] = {
    {"once", no_argument, NULL, 'o'},
    {"verbose", no_argument, NULL, 'v'},
    {"history", no_argument, NULL, 'H'},
    {"limit", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},
    {"tz", required_argument, NULL, 'z'},
    {NULL, 0, NULL, 0},
};

static int cli_reconcile_check(struct cli *cli)
{
	const char *limit = cli_opt(cli, 'n');
	bool once = cli_opt(cli, 'o') != NULL, history = cli_opt(cli, 'H') != NULL;

	/* A pass (serve runs them periodically) or the record of past ones, not both. */
	if (once == history)
		return cli_usage(cli);
	if (once && (limit || cli_opt(cli, 'j') || cli_opt(cli, 'z')))
		return cli_usage(cli);
	if (history && cli_opt(cli, 'v'))
		return cli_usage(cli);
	if (limit != NULL &&
	    (!*limit || strspn(limit, "0123456789") != strlen(limit) || strlen(limit) > 18))
		return cli_usage(cli);
	return 0;
}

/* reconcile --history: the newest passes from bayarhook.reconcile_passes, oldest first. */
static int cli_reconcile_history(struct cli *cli)
{
	const char *params[1] = {cli_opt(cli, 'n') ? cli_opt(cli, 'n') : "20"};
	char err[512];
	PGconn *conn = db_connect_blocking(cli->cfg->conninfo, err, sizeof(err));
	PGresult *res = NULL;
	cJSON *rows = NULL;
	const cJSON *r;
	int rc = 1;

	if (conn == NULL) {
		fprintf(stderr, "bayarhook: %s\n", err);
		return 1;
	}
	if ((rc = cli_time_zone(cli, conn, cli_opt(cli, 'z'))) != 0)
		goto out;
	rc = 1;
	res = PQexecParams(conn,
	                   "SELECT coalesce(json_agg(t ORDER BY t.id), '[]'::json) FROM ("
	                   " SELECT id, started_at, finished_at, result, trigger, runner, checked,"
	                   "  found, errors, requests, pages, note,"
	                   "  to_char(started_at, " CLI_TIME_FORMAT ") AS started,"
	                   "  round(extract(epoch FROM finished_at - started_at)::numeric, 1)"
	                   "   AS seconds"
	                   " FROM bayarhook.reconcile_passes ORDER BY id DESC LIMIT $1::bigint) t",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_sql_error("reconcile", res);
		goto out;
	}
	rc = 0;
	if (cli_opt(cli, 'j')) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		goto out;
	}
	rows = cJSON_Parse(PQgetvalue(res, 0, 0));
	printf("%-6s %-*s %6s  %-9s %-5s %8s %7s %5s %6s  %s\n", "PASS", CLI_TIME_WIDTH, "STARTED",
	       "SECS", "RESULT", "BY", "REQUESTS", "CHECKED", "FOUND", "ERRORS", "NOTE");
	cJSON_ArrayForEach(r, rows)
	{
		static const char *const f[] = {"started", "result", "trigger", "note"};
		const cJSON *secs = cJSON_GetObjectItemCaseSensitive(r, "seconds");
		const char *v[4];
		char secs_text[32] = "-";

		cli_row_strings(r, f, 4, v, "");
		if (cJSON_IsNumber(secs))
			snprintf(secs_text, sizeof(secs_text), "%.1f", secs->valuedouble);
		printf("%-6.0f %-*s %6s  %-9s %-5s %8.0f %7.0f %5.0f %6.0f  %s\n",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "id")),
		       CLI_TIME_WIDTH, v[0], secs_text, v[1], v[2][0] ? v[2] : "-",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "requests")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "checked")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "found")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "errors")), v[3]);
	}
out:
	cJSON_Delete(rows);
	PQclear(res);
	PQfinish(conn);
	return rc;
}

static int cli_reconcile(struct cli *cli)
{
	struct cli_run r;
	struct config *cfg = NULL;
	struct store *store = NULL;
	struct gateway *gw = NULL;
	struct event *ev_wait = NULL, *ev_int = NULL, *ev_term = NULL;
	struct timeval wait = {CLI_DB_WAIT_SEC, 0};

	if (cli_opt(cli, 'H'))
		return cli_reconcile_history(cli);
	memset(&r, 0, sizeof(r));
	r.rc_exit = 1;
	/*
	 * The table loads the config without its secrets (--history needs none,
	 * SPEC §10); a pass needs the API key, so --once loads it whole.
	 */
	if ((cfg = config_load(cli->config_path, r.why, sizeof(r.why))) == NULL)
		goto out;
	if (cli->conninfo != NULL) {
		free(cfg->conninfo);
		cfg->conninfo = xstrdup(cli->conninfo);
	}
	r.verbose = cli_opt(cli, 'v') != NULL;
	if (check_schema(cfg->conninfo, r.why, sizeof(r.why)) < 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	/* Two connections: the pass's lock session, and its queries and stores. */
	if ((r.base = event_base_new()) == NULL) {
		snprintf(r.why, sizeof(r.why), "cannot create the event loop");
		goto out;
	}
	r.pool = db_pool_new(r.base, cfg->conninfo, 2, "reconcile");
	store = store_new(r.pool);
	store_set_actions(store, cfg);
	if ((gw = gateway_new(r.base, cfg)) == NULL ||
	    (r.rc = reconcile_new(r.base, cfg, r.pool, store, gw, "cli")) == NULL ||
	    (ev_wait = evtimer_new(r.base, cli_db_timeout, &r)) == NULL ||
	    (ev_int = evsignal_new(r.base, SIGINT, cli_signal, &r)) == NULL ||
	    (ev_term = evsignal_new(r.base, SIGTERM, cli_signal, &r)) == NULL) {
		snprintf(r.why, sizeof(r.why), "cannot create the reconciler's timers");
		goto out;
	}
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_term, NULL);
	evtimer_add(ev_wait, &wait);
	db_pool_on_state(r.pool, cli_db_state, &r);
	if (db_pool_up(r.pool) > 0)
		cli_start(&r);
	alert_raise_elsewhere(cli_alert_raised, &r);
	event_base_dispatch(r.base);
	alert_raise_elsewhere(NULL, NULL);
	cli_record_alerts(&r, cfg->conninfo);
out:
	cli_alerts_free(&r);
	if (r.rc_exit != 0)
		fprintf(stderr, "bayarhook: reconcile: %s\n", r.why[0] ? r.why : "failed");
	reconcile_free(r.rc);
	gateway_free(gw);
	store_free(store);
	db_pool_free(r.pool);
	if (ev_wait)
		event_free(ev_wait);
	if (ev_int)
		event_free(ev_int);
	if (ev_term)
		event_free(ev_term);
	if (r.base) {
		/* Lets a DNS lookup cancelled with the gateway free itself. */
		event_base_loop(r.base, EVLOOP_NONBLOCK);
		event_base_free(r.base);
	}
	config_free(cfg);
	return r.rc_exit;
}

const struct cli_command cli_cmd_reconcile = {
    .name = "reconcile",
    .args = "--once [--verbose] | reconcile --history [--limit N] [--json] [--tz ZONE]",
    .help = "ask the gateway about missed payments once, or list past passes",
    .config = true,
    .db = CLI_DB_POOL,
    .secrets = false, /* --once loads the API key itself */
    .shortopts = "v",
    .longopts = cli_reconcile_options,
    .check = cli_reconcile_check,
    .run = cli_reconcile,
};
