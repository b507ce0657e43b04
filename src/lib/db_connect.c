/*
 * db_connect.c: how every libpq connection of ours is made and judged: the
 * connection parameters (db.h: db_params_build), the blocking connect of
 * the commands, and whether a session can write (db_conn_read_only).
 *
 * The user's conninfo is parsed with PQconninfoParse and passed on as
 * keyword/value arrays, so that both forms (key=value and postgresql://
 * URIs) work; what it does not set is added:
 *
 *   - TCP keepalives and tcp_user_timeout: a peer that vanished (a host
 *     gone, a firewall dropping the flow) is found in about 30 s instead of
 *     the kernel's two hours, and the connection is made again.
 *   - fallback_application_name = bayarhook/<purpose>: a DBA tells the
 *     pools apart in pg_stat_activity. It is a fallback on purpose: the
 *     conninfo's application_name or PGAPPNAME win.
 *   - target_session_attrs = read-write when several hosts are listed:
 *     after a failover libpq skips the old primary, now a standby, instead
 *     of keeping a session that can never commit.
 *
 * Nothing the conninfo (or the environment variable libpq reads for the
 * same parameter) sets is overridden. Unix-socket connections ignore the
 * TCP settings (libpq applies them to TCP only).
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "xmalloc.h"

/* Dead peer after 15 s idle + 3 probes 5 s apart; unacknowledged data: 30 s. */
static const struct {
	const char *key;
	const char *value;
} tcp_defaults[] = {
    {"keepalives", "1"},       {"keepalives_idle", "15"},     {"keepalives_interval", "5"},
    {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
};

static const char *param_get(const struct db_params *p, const char *key)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->keys[i], key) == 0)
			return p->values[i];
	return NULL;
}

static void param_add(struct db_params *p, const char *key, const char *value)
{
	p->keys = xreallocarray(p->keys, (size_t)p->n + 2, sizeof(*p->keys));
	p->values = xreallocarray(p->values, (size_t)p->n + 2, sizeof(*p->values));
	p->keys[p->n] = xstrdup(key);
	p->values[p->n] = xstrdup(value);
	p->n++;
	p->keys[p->n] = NULL;
	p->values[p->n] = NULL;
}

/* Set in the conninfo, or in the environment variable libpq reads for it. */
static bool param_set(const struct db_params *p, const char *key, const char *env)
{
	const char *v = param_get(p, key);
	const char *e = env ? getenv(env) : NULL;

	return (v != NULL && v[0] != '\0') || (e != NULL && e[0] != '\0');
}

/* More than one host (host or hostaddr, conninfo first, else PGHOST/PGHOSTADDR). */
static bool several_hosts(const struct db_params *p)
{
	static const char *const keys[][2] = {{"host", "PGHOST"}, {"hostaddr", "PGHOSTADDR"}};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = param_get(p, keys[i][0]);

		if (v == NULL || v[0] == '\0')
			v = getenv(keys[i][1]);
		if (v != NULL && strchr(v, ',') != NULL)
			return true;
	}
	return false;
}

int db_params_build(const char *conninfo, const char *purpose, struct db_params *out, char *err,
                    size_t errlen)
{
	PQconninfoOption *opts;
	char *perr = NULL, appname[64];

	memset(out, 0, sizeof(*out));
	opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
	if (opts == NULL) {
		snprintf(err, errlen, "invalid conninfo: %s", perr ? perr : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfreemem(perr);
		return -1;
	}
	out->keys = xcalloc(1, sizeof(*out->keys));
	out->values = xcalloc(1, sizeof(*out->values));
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			param_add(out, o->keyword, o->val);
	PQconninfoFree(opts);
	for (size_t i = 0; i < sizeof(tcp_defaults) / sizeof(tcp_defaults[0]); i++)
		if (!param_set(out, tcp_defaults[i].key, NULL))
			param_add(out, tcp_defaults[i].key, tcp_defaults[i].value);
	if (several_hosts(out) && !param_set(out, "target_session_attrs", "PGTARGETSESSIONATTRS"))
		param_add(out, "target_session_attrs", "read-write");
	snprintf(appname, sizeof(appname), "bayarhook/%s", purpose ? purpose : "admin");
	if (!param_set(out, "fallback_application_name", NULL))
		param_add(out, "fallback_application_name", appname);
	return 0;
}

void db_params_rotate(struct db_params *p)
{
	static const char *const lists[] = {"host", "hostaddr", "port"};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		for (int k = 0; k < p->n; k++) {
			char *v = p->values[k], *comma, *next;
			size_t first;

			if (strcmp(p->keys[k], lists[i]) != 0 || (comma = strchr(v, ',')) == NULL)
				continue;
			first = (size_t)(comma - v);
			xasprintf(&next, "%s,%.*s", comma + 1, (int)first, v);
			free(v);
			p->values[k] = next;
		}
	}
}

const char *db_params_get(const struct db_params *p, const char *key)
{
	return param_get(p, key);
}

void db_params_free(struct db_params *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->n; i++) {
		free(p->keys[i]);
		free(p->values[i]);
	}
	free(p->keys);
	free(p->values);
	memset(p, 0, sizeof(*p));
}

bool db_conn_read_only(PGconn *pg, const char *sqlstate)
{
	const char *hs = pg ? PQparameterStatus(pg, "in_hot_standby") : NULL;
	const char *ro = pg ? PQparameterStatus(pg, "default_transaction_read_only") : NULL;

	if (sqlstate != NULL && strcmp(sqlstate, "25006") == 0)
		return true;
	return (hs != NULL && strcmp(hs, "on") == 0) || (ro != NULL && strcmp(ro, "on") == 0);
}

static void blocking_notice(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void)arg;
	log_msg(sev && strcmp(sev, "WARNING") == 0 ? LOG_WARNING : LOG_INFO,
	        "database %s pool=admin: %.*s", sev ? sev : "NOTICE",
	        text ? (int)strcspn(text, "\n") : 1, text ? text : "-");
}

PGconn *db_connect_blocking(const char *conninfo, char *err, size_t errlen)
{
	struct db_params p;
	PGconn *conn;

	if (db_params_build(conninfo, "admin", &p, err, errlen) < 0)
		return NULL;
	conn = PQconnectdbParams((const char *const *)p.keys, (const char *const *)p.values, 0);
	db_params_free(&p);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the database: %s",
		         conn ? PQerrorMessage(conn) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeReceiver(conn, blocking_notice, NULL);
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	return conn;
}
