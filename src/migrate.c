/*
 * migrate.c: applies the embedded migrations and functions (see migrate.h).
 * This runs from the command line (bayarhook migrate), never inside the
 * event loop, so blocking libpq calls are fine here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"

/* Arbitrary but fixed: "bayarhook" in the advisory-lock key space. */
#define MIGRATE_LOCK_KEY "7242184291"

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = -1;
	}
	PQclear(res);
	return rc;
}

int migrate_latest(void)
{
	return migrations_count ? migrations[migrations_count - 1].version : 0;
}

int migrate_current(PGconn *conn)
{
	PGresult *res =
	    PQexec(conn, "SELECT coalesce(max(version), 0) FROM bayarhook.schema_version");
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

/* Runs one embedded file; on failure err names it. */
static int apply(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	char why[512];

	if (exec_ok(conn, m->sql, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", m->name, why);
	return -1;
}

static int record_version(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;
	int rc = 0;

	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexecParams(conn,
	                   "INSERT INTO bayarhook.schema_version (version, name) VALUES ($1, $2)",
	                   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s: %s", m->name, PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = -1;
	}
	PQclear(res);
	return rc;
}

int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen)
{
	int current, applied = 0;

	/*
	 * A transaction-scoped lock, taken first: it serializes two migrators
	 * and ends with the transaction, also behind a transaction-pooling
	 * PgBouncer, where a session lock would be left on a server connection.
	 */
	if (exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0 ||
	    exec_ok(conn, "BEGIN", err, errlen) < 0)
		return -1;
	if (exec_ok(conn,
	            "SET LOCAL client_min_messages = warning;"
	            "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");"
	            "CREATE SCHEMA IF NOT EXISTS bayarhook;"
	            "CREATE TABLE IF NOT EXISTS bayarhook.schema_version ("
	            " version integer PRIMARY KEY, name text NOT NULL,"
	            " applied_at timestamptz NOT NULL DEFAULT now())",
	            err, errlen) < 0)
		goto rollback;
	current = migrate_current(conn);
	if (current < 0) {
		snprintf(err, errlen, "cannot read bayarhook.schema_version");
		goto rollback;
	}
	for (size_t i = 0; i < migrations_count; i++) {
		const struct migration *m = &migrations[i];

		if (m->version <= current)
			continue;
		if (apply(conn, m, err, errlen) < 0 || record_version(conn, m, err, errlen) < 0)
			goto rollback;
		applied++;
	}
	/* After the tables they use; CREATE OR REPLACE, so the same every time. */
	for (size_t i = 0; i < schema_functions_count; i++)
		if (apply(conn, &schema_functions[i], err, errlen) < 0)
			goto rollback;
	if (exec_ok(conn, "COMMIT", err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < migrations_count; i++)
		if (migrations[i].version > current)
			fprintf(out, "applied %s\n", migrations[i].name);
	if (applied == 0)
		fprintf(out, "schema is up to date (version %d)\n", current);
	return 0;
rollback:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
