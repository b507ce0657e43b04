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
#include "words.h"

/* The PATH a command gets (SPEC §5), also where proc.h searches without one. */
#define ACTION_EXEC_PATH PROC_DEFAULT_PATH
/*
 * Caps on the BAYAR_* variables (SPEC §13): one value, and all the
 * "BAYAR_NAME=value" entries together. Linux refuses an execve() with one
 * string over 128 KiB, or all of them over a quarter of the stack limit
 * (E2BIG); under these caps a long field the command ignores cannot fail
 * the job. A variable over a cap is left out whole, never cut: a cut value
 * would look complete. The event JSON on stdin keeps every field.
 */
#define ACTION_EXEC_VALUE_MAX (32 * 1024)
#define ACTION_EXEC_ENV_MAX (128 * 1024)

extern const struct action_ops action_exec_ops;

/* One event field for action_exec_env; a NULL value is skipped. */
struct action_exec_var {
	const char *name;
	const char *value;
};

/*
 * Builds the child environment of SPEC §5, NULL-terminated, in this order:
 * PATH=ACTION_EXEC_PATH, then BAYAR_<NAME>=value for each field (the name
 * as event_var_name() gives it; fields with an empty name or a NULL value
 * are skipped; when two names map to the same variable the first wins,
 * though event_parse refuses such events), then BAYARHOOK_SOURCE,
 * BAYARHOOK_JOB_ID, BAYARHOOK_ATTEMPT and BAYARHOOK_FLAGGED (flag, "" when
 * NULL: the payment is not flagged). Values are copied verbatim. A
 * value over ACTION_EXEC_VALUE_MAX, or one that would take the BAYAR_*
 * entries past ACTION_EXEC_ENV_MAX, is left out, and *note then says which
 * (one line, malloc'd; NULL when nothing was left out). Free with
 * action_exec_env_free.
 */
char **action_exec_env(const struct action_exec_var *fields, size_t nfields, const char *source,
                       const char *job_id, int attempt, const char *flag, char **note);
void action_exec_env_free(char **envp);

/*
 * Whether the expansion of template word tmpl starts with '-' because of a
 * field (SPEC §13): the first placeholder at its start whose value is not
 * empty begins with '-'. Writes that field's name into field and returns 1;
 * else 0 (also when the '-' is the template's own text, as in "-{x}").
 */
int action_exec_leading_dash(const char *tmpl, words_lookup_fn lookup, void *arg, char *field,
                             size_t fieldlen);

#endif
