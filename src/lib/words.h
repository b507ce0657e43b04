/*
 * words.h: turns a command line into an argument vector, without a shell,
 * and fills {field} placeholders in it word by word.
 *
 * Splitting follows the quoting rules of POSIX sh and nothing else:
 *   - blanks (space, tab, newline) separate words;
 *   - '...' is literal;
 *   - "..." is literal except \" \\ \$ \` (the backslash is dropped) and
 *     backslash-newline (removed); any other backslash is kept;
 *   - outside quotes a backslash makes the next character literal, and
 *     backslash-newline is removed;
 *   - '' and "" make an empty word.
 * There is no expansion of any kind ($VAR, $(...), `...`, globs, ~) and no
 * operators: ; | & < > ( ) # are ordinary characters inside words.
 *
 * Placeholders are substituted per word AFTER splitting, so a value is never
 * re-parsed: spaces, quotes or "$(...)" in a value stay inside its one
 * argument. Quoting does not hide placeholders ('{x}' is still one). Rules,
 * as in Python's str.format:
 *   - {name} with name matching [a-z0-9_]+ is replaced by the field's value;
 *   - {{ is a literal {, and }} a literal };
 *   - any other { or } is an error (catches {Field_Name}, {a-b}, {x).
 * The first word (the program) may not contain a placeholder: whoever
 * supplies the values must never be able to choose what runs.
 */
#ifndef BAYARHOOK_WORDS_H
#define BAYARHOOK_WORDS_H

#include <stddef.h>

/* Returns the value of field name, or NULL when the field does not exist. */
typedef const char *(*words_lookup_fn)(void *arg, const char *name);

/*
 * Splits cmd into a NULL-terminated vector of at least one word (free with
 * words_free). On error returns -1 and writes a one-line reason into
 * err ("unterminated single quote at offset 12").
 */
int words_split(const char *cmd, char ***argv_out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Config-time check of a split template: validates every placeholder
 * without values and returns the distinct field names used, in order of
 * first use, as a NULL-terminated vector (free with words_free). The
 * caller checks the names against the fields it knows.
 */
int words_fields(char *const *tmpl, char ***names_out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Substitutes placeholders in each word of tmpl using lookup. An unknown
 * field (lookup returns NULL) is an error naming it: "unknown field: foo".
 * The result is a new NULL-terminated vector with as many words as tmpl.
 */
int words_expand(char *const *tmpl, words_lookup_fn lookup, void *arg, char ***argv_out, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

/* Frees a vector returned by this module (or any NULL-terminated malloc'd one). */
void words_free(char **argv);

#endif
