/*
 * action_sql.h: the sql action (SPEC §5): one parameterised statement per
 * attempt, in its own transaction on a pooled connection.
 */
#ifndef BAYARHOOK_ACTION_SQL_H
#define BAYARHOOK_ACTION_SQL_H

#include <stdbool.h>
#include <stddef.h>

extern const struct action_ops action_sql_ops;

/*
 * Rewrites :name placeholders as $1..$n (the same name, the same number).
 * Not inside '...', E'...', "...", $tag$...$tag$, -- and block comments;
 * "::" is a cast. Positional $n in the text is refused. On success *out is
 * the new text and *names the field of each parameter (NULL-terminated),
 * both malloc'd. Returns 0, or -1 with a reason in err.
 */
int action_sql_placeholders(const char *stmt, char **out, char ***names, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * The same, for one text[] parameter instead of $1..$n: the placeholder of
 * the k-th name (from 1) becomes (($1::text[])[k]::types[k-1]), the type its
 * $k takes (action_sql_direct.c). ntypes: how many types there are; a name
 * past them is an error.
 */
int action_sql_placeholders_typed(const char *stmt, char *const *types, int ntypes, char **out,
                                  char ***names, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Whether stmt is one command: no second one after a ';' outside quotes,
 * identifiers, comments and dollar quotes (and stmt is well formed).
 */
bool action_sql_one_command(const char *stmt);

#endif
