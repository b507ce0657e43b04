/*
 * redact.c: passwords masked in conninfo strings and URLs, so that they
 * can be shown in summaries and logs.
 */
#include "redact.h"

#include <string.h>
#include <strings.h>

static void redact_put(char *buf, size_t len, size_t *used, const char *s, size_t n)
{
	if (*used + 1 >= len)
		return;
	if (n > len - 1 - *used)
		n = len - 1 - *used;
	memcpy(buf + *used, s, n);
	*used += n;
	buf[*used] = '\0';
}

void redact_passwords(const char *text, char *buf, size_t len)
{
	const char *s = text, *scheme;
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (text == NULL)
		return;
	/* URI form: scheme://user:password@host/... */
	scheme = strstr(s, "://");
	if (scheme != NULL) {
		const char *auth = scheme + 3, *at = NULL, *colon;
		size_t alen = strcspn(auth, "/?#");

		for (const char *p = auth; p < auth + alen; p++)
			if (*p == '@')
				at = p;
		colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon != NULL) {
			redact_put(buf, len, &used, s, (size_t)(colon + 1 - s));
			redact_put(buf, len, &used, "***", 3);
			s = at;
		}
	}
	/* password=..., sslpassword=... in a conninfo or a URI query. */
	while (*s) {
		const char *v;

		if (strncasecmp(s, "password", 8) != 0) {
			redact_put(buf, len, &used, s, 1);
			s++;
			continue;
		}
		v = s + 8;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=') {
			redact_put(buf, len, &used, s, 1);
			s++;
			continue;
		}
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		redact_put(buf, len, &used, s, (size_t)(v - s));
		redact_put(buf, len, &used, "***", 3);
		if (*v == '\'') {
			for (v++; *v && *v != '\''; v++)
				if (*v == '\\' && v[1] != '\0')
					v++;
			if (*v == '\'')
				v++;
		} else {
			v += strcspn(v, " \t&#");
		}
		s = v;
	}
}
