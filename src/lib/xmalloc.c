/*
 * xmalloc.c: allocation that aborts on out-of-memory (see xmalloc.h).
 */
#include "xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static void xmalloc_fatal(const char *what, size_t n) __attribute__((noreturn));

static void xmalloc_fatal(const char *what, size_t n)
{
	log_msg(LOG_CRIT, "%s: out of memory allocating %zu bytes", what, n);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size != 0 ? size : 1);

	if (p == NULL)
		xmalloc_fatal("xmalloc", size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p;

	if (n == 0 || size == 0)
		n = size = 1;
	p = calloc(n, size);
	if (p == NULL)
		xmalloc_fatal("xcalloc", n * size);
	return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	void *q;

	if (size != 0 && n > SIZE_MAX / size)
		xmalloc_fatal("xreallocarray", SIZE_MAX);
	if (n * size == 0)
		n = size = 1;
	q = realloc(p, n * size);
	if (q == NULL)
		xmalloc_fatal("xreallocarray", n * size);
	return q;
}

char *xstrdup(const char *s)
{
	return xmemdup0(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	return xmemdup0(s, strnlen(s, n));
}

char *xmemdup0(const void *p, size_t n)
{
	char *s;

	if (n == SIZE_MAX)
		xmalloc_fatal("xmemdup0", n);
	s = xmalloc(n + 1);
	if (n != 0)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int xvasprintf(char **out, const char *fmt, va_list ap)
{
	int n = vasprintf(out, fmt, ap);

	if (n < 0)
		xmalloc_fatal("xvasprintf", 0);
	return n;
}

int xasprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = xvasprintf(out, fmt, ap);
	va_end(ap);
	return n;
}
