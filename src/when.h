/*
 * when.h: the `when =` conditions of an action (SPEC §9): comma-separated
 * "field OP value", all of which must hold. OP is = != ^= (prefix) ~ (a
 * POSIX extended regular expression, compiled once) or numeric < <= > >=.
 * Pure: the caller says how a field's text is found, so the config links
 * without the event parser.
 */
#ifndef BAYARHOOK_WHEN_H
#define BAYARHOOK_WHEN_H

#include <stdbool.h>
#include <stddef.h>

struct when;

/* The text of a field, or NULL when the event has none (it then reads as ""). */
typedef const char *(*when_lookup_fn)(const void *arg, const char *field);

/*
 * Parses and compiles text. A comma separates conditions only when a
 * "field OP" follows it, so an ERE keeps its {m,n}. NULL with the reason in
 * err (which condition, what is wrong).
 */
struct when *when_parse(const char *text, char *err, size_t errlen);
void when_free(struct when *w);
/* True when every condition holds; a numeric one on a value that is no number does not. */
bool when_match(const struct when *w, when_lookup_fn lookup, const void *arg);

#endif
