/*
 * migrate.h: the schema compiled into the binary: the numbered migrations
 * (sql/NNN_*.sql, each applied once) and the functions (the files in
 * sql/functions, CREATE OR REPLACE, applied by every run).
 */
#ifndef BAYARHOOK_MIGRATE_H
#define BAYARHOOK_MIGRATE_H

#include <stddef.h>
#include <stdio.h>
#include <libpq-fe.h>

struct migration {
	int version; /* 0 for a functions file */
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;
extern const struct migration schema_functions[];
extern const size_t schema_functions_count;

/*
 * Applies every migration newer than the recorded version, then every
 * functions file, all in one transaction (a daemon never sees a new table
 * with the old functions), under a transaction-scoped advisory lock so
 * that two processes cannot race (and nothing is left held behind a
 * transaction-pooling PgBouncer). Running it again changes nothing. Prints one line per
 * applied migration to out. Returns 0 or -1 with the reason in err.
 */
int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen);
/* The newest version applied, 0 when none, -1 on error. */
int migrate_current(PGconn *conn);
int migrate_latest(void);

#endif
