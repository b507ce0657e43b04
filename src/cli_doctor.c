/*
 * cli_doctor.c: `bayarhook doctor`, what a sysadmin runs after an install
 * or when something stopped working (SPEC §10). One line per check:
 *
 *   ok    config: /etc/bayarhook/receiver.conf
 *   FAIL  database: cannot connect ...; check [database] conninfo ...
 *
 * Every check runs even when an earlier one failed, as far as it can (no
 * database check without a conninfo), so one run shows everything to fix.
 * Exit 0 when every line is ok, 1 otherwise.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>

#include <libpq-fe.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "http_client.h"
#include "migrate.h"
#include "xmalloc.h"

#define DOCTOR_HTTP_TIMEOUT 10 /* seconds, for the gateway and the listener */

struct doctor {
	int failed;
};

/* One line: "ok    name: what" or "FAIL  name: what". */
static void doctor_line(struct doctor *dr, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void doctor_line(struct doctor *dr, bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (!ok)
		dr->failed++;
	printf("%-5s %s: ", ok ? "ok" : "FAIL", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The config as serve would load it; else without secrets, for the other checks. */
static struct config *doctor_config(struct doctor *dr, struct cli *cli, bool *secrets_read)
{
	struct config *cfg = cli->cfg;
	char err[512];

	*secrets_read = cfg != NULL;
	if (cfg != NULL) {
		doctor_line(dr, true, "config", "%s loads", cli->config_path);
		return cfg;
	}
	doctor_line(dr, false, "config", "%s; fix it (bayarhook check-config shows the same)",
	            cli->config_err);
	cfg = config_load_flags(cli->config_path, CONFIG_NO_SECRETS, err, sizeof(err));
	if (cfg != NULL && cli->conninfo != NULL) {
		free(cfg->conninfo);
		cfg->conninfo = xstrdup(cli->conninfo);
	}
	return cfg;
}

static void doctor_database(struct doctor *dr, const struct config *cfg)
{
	char err[512];
	PGconn *conn;
	int cur, latest = migrate_latest();

	if (cfg == NULL) {
		doctor_line(dr, false, "database", "not checked: the config does not load");
		return;
	}
	conn = db_connect_blocking(cfg->conninfo, err, sizeof(err));
	if (conn == NULL) {
		doctor_line(dr, false, "database",
		            "%s; check [database] conninfo, that PostgreSQL runs, and the role "
		            "(README: Production setup)",
		            err);
		return;
	}
	cur = migrate_current(conn);
	if (db_conn_read_only(conn, NULL)) {
		/* PostgreSQL 14+ reports it at connect: a standby, or read-only by default. */
		doctor_line(dr, false, "database",
		            "read-only (in hot standby or default_transaction_read_only): "
		            "callbacks cannot be recorded there; point [database] conninfo at the "
		            "primary, or list every host (target_session_attrs=read-write)");
		PQfinish(conn);
		return;
	}
	PQfinish(conn);
	if (cur == latest)
		doctor_line(dr, true, "database", "reachable, schema at migration %d (current)",
		            cur);
	else if (cur < 0)
		doctor_line(dr, false, "database",
		            "reachable, but no bayarhook schema; run bayarhook migrate");
	else if (cur < latest)
		doctor_line(dr, false, "database",
		            "schema at migration %d, this bayarhook has %d; run bayarhook migrate",
		            cur, latest);
	else
		doctor_line(dr, false, "database",
		            "schema at migration %d is newer than this bayarhook's %d; upgrade "
		            "bayarhook",
		            cur, latest);
}

static void doctor_secrets(struct doctor *dr, const struct config *cfg, bool read)
{
	char fps[256];

	if (!read) {
		doctor_line(dr, false, "secrets",
		            "not read (see the config line); the secret files must be readable by "
		            "the user serve runs as, mode 0600");
		return;
	}
	config_secret_fingerprints(cfg, fps, sizeof(fps));
	doctor_line(dr, true, "secrets", "%zu webhook secret(s), fingerprints %s%s", cfg->nsecrets,
	            fps, cfg->api_key != NULL ? "; API key read" : "; no API key");
}

static void doctor_gateway(struct doctor *dr, const struct config *cfg, bool read)
{
	struct http_client_resp_owned out;
	struct http_client_req req;
	const char *headers[5];
	char *url = NULL;

	if (!read || cfg->api_key == NULL) {
		doctor_line(dr, false, "gateway",
		            "not checked: no API key read; set [gateway] api_key_file to the "
		            "key from the bayar.gg dashboard");
		return;
	}
	xasprintf(&url, "%s/get-account-status.php", cfg->gateway_base_url);
	headers[0] = "X-API-Key";
	headers[1] = cfg->api_key;
	headers[2] = "Accept";
	headers[3] = "application/json";
	headers[4] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.headers = headers;
	req.timeout_sec = cfg->gateway_timeout > 0 ? cfg->gateway_timeout : DOCTOR_HTTP_TIMEOUT;
	if (http_client_fetch(&req, NULL, &out) < 0)
		doctor_line(dr, false, "gateway",
		            "%s: %s; check [gateway] base_url and the host's outgoing HTTPS", url,
		            out.resp.error);
	else if (out.resp.status == 401 || out.resp.status == 403)
		doctor_line(dr, false, "gateway",
		            "the API key was refused (HTTP %d); put the key from the bayar.gg "
		            "dashboard in [gateway] api_key_file",
		            out.resp.status);
	else if (out.resp.status / 100 != 2)
		doctor_line(dr, false, "gateway", "%s answered HTTP %d; check [gateway] base_url",
		            url, out.resp.status);
	else
		doctor_line(dr, true, "gateway", "the API key is accepted (%s)", url);
	http_client_resp_owned_free(&out);
	free(url);
}

/*
 * The replay window and bayar.gg's timestamps assume a true clock: the
 * kernel's NTP state says whether something keeps it so.
 */
static void doctor_clock(struct doctor *dr)
{
	struct timex tx;
	int state;

	memset(&tx, 0, sizeof(tx)); /* modes 0: read only */
	state = adjtimex(&tx);
	if (state == -1)
		doctor_line(dr, false, "clock", "cannot read the kernel's NTP state");
	else if (state == TIME_ERROR || (tx.status & STA_UNSYNC))
		doctor_line(dr, false, "clock",
		            "not synchronised; enable NTP (systemctl enable --now "
		            "systemd-timesyncd, or install chrony)");
	else
		doctor_line(dr, true, "clock", "synchronised (estimated error %ld us)",
		            tx.esterror);
}

static void doctor_listener(struct doctor *dr, const struct config *cfg)
{
	struct http_client_resp_owned out;
	struct http_client_req req;
	const char *host;
	char url[300];

	if (cfg == NULL) {
		doctor_line(dr, false, "listener", "not checked: the config does not load");
		return;
	}
	host = cfg->listen.host;
	/* A wildcard listener is reached over loopback. */
	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	snprintf(url, sizeof(url),
	         strchr(host, ':') ? "http://[%s]:%d/healthz" : "http://%s:%d/healthz", host,
	         cfg->listen.port);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.timeout_sec = DOCTOR_HTTP_TIMEOUT;
	if (http_client_fetch(&req, NULL, &out) < 0)
		doctor_line(dr, false, "listener",
		            "%s: %s; start it (systemctl start bayarhook, or bayarhook serve)", url,
		            out.resp.error);
	else if (out.resp.status != 200)
		doctor_line(dr, false, "listener", "%s answered HTTP %d: %.*s", url,
		            out.resp.status, (int)strcspn(out.resp.body, "\r\n"), out.resp.body);
	else
		doctor_line(dr, true, "listener", "%s answers 200", url);
	http_client_resp_owned_free(&out);
}

static int cli_doctor(struct cli *cli)
{
	struct doctor dr = {0};
	bool read;
	struct config *cfg = doctor_config(&dr, cli, &read);

	doctor_database(&dr, cfg);
	if (cfg != NULL) {
		doctor_secrets(&dr, cfg, read);
		doctor_gateway(&dr, cfg, read);
	} else {
		doctor_line(&dr, false, "secrets", "not checked: the config does not load");
		doctor_line(&dr, false, "gateway", "not checked: the config does not load");
	}
	doctor_clock(&dr);
	doctor_listener(&dr, cfg);
	if (cfg != cli->cfg)
		config_free(cfg);
	return dr.failed ? 1 : 0;
}

const struct cli_command cli_cmd_doctor = {
    .name = "doctor",
    .args = "",
    .help = "check config, database, secrets, API key, clock, listener",
    .config = true,
    .config_soft = true,
    .db = CLI_DB_SELF,
    .secrets = true,
    .run = cli_doctor,
};
