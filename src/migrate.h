/* migrate.h: the schema migrations compiled into the binary (sql/NNN_*.sql). */
#ifndef BAYARHOOK_MIGRATE_H
#define BAYARHOOK_MIGRATE_H

#include <stddef.h>
#include <stdio.h>
#include <libpq-fe.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;

/*
 * Applies every migration newer than the recorded version, each in its own
 * transaction, under an advisory lock so that two processes cannot race.
 * Prints one line per applied migration to out. Returns 0 or -1 with the
 * reason in err.
 */
int migrate_run(PGconn *conn, FILE *out, char *err, size_t errlen);
/* The newest version applied, 0 when none, -1 on error. */
int migrate_current(PGconn *conn);
int migrate_latest(void);

#endif
