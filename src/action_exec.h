/*
 * action_exec.h: the exec action (SPEC §5). Each attempt runs the
 * configured command through the process runner (proc.h) with the event
 * JSON on stdin and the event's fields in an environment built from
 * nothing: the daemon's own environment never reaches the command.
 */
#ifndef BAYARHOOK_ACTION_EXEC_H
#define BAYARHOOK_ACTION_EXEC_H

#include <stddef.h>

#include "proc.h"

/* The PATH a command gets (SPEC §5), also where proc.h searches without one. */
#define ACTION_EXEC_PATH PROC_DEFAULT_PATH

extern const struct action_ops action_exec_ops;

/* One event field for action_exec_env; a NULL value is skipped. */
struct action_exec_var {
	const char *name;
	const char *value;
};

/*
 * Builds the child environment of SPEC §5, NULL-terminated, in this order:
 * PATH=ACTION_EXEC_PATH, then BAYAR_<NAME>=value for each field (NAME
 * upper-cased, any byte outside [A-Za-z0-9_] becomes '_'; fields with an
 * empty name or a NULL value are skipped; when two names map to the same
 * variable the first wins), then BAYARHOOK_SOURCE, BAYARHOOK_JOB_ID,
 * BAYARHOOK_ATTEMPT and BAYARHOOK_FLAGGED (flag, "" when NULL: the payment
 * is not flagged). Values are copied verbatim. Free with
 * action_exec_env_free.
 */
char **action_exec_env(const struct action_exec_var *fields, size_t nfields, const char *source,
                       const char *job_id, int attempt, const char *flag);
void action_exec_env_free(char **envp);

#endif
