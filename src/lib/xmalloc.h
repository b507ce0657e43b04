/*
 * xmalloc.h: allocation that cannot fail, as in tmux's xmalloc.c and
 * redis's zmalloc. Out of memory, the process logs one line and aborts:
 * systemd restarts it, and nothing acknowledged is lost because a 200 is
 * only sent after the commit. Branches for an allocation failure that no
 * test reaches are code that has never run; keep explicit handling only
 * where a clean refusal really is better, and say why there.
 */
#ifndef BAYARHOOK_XMALLOC_H
#define BAYARHOOK_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
/* Like realloc, with n * size checked for overflow. */
void *xreallocarray(void *p, size_t n, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* A copy of n bytes with a NUL after them. */
char *xmemdup0(const void *p, size_t n) __attribute__((malloc, returns_nonnull));
int xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int xvasprintf(char **out, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
