/*
 * jsonw.c: see jsonw.h. Runs of bytes that need no escaping are copied with
 * one memcpy, so a long string costs little more than its length.
 */
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "xmalloc.h"

static void reserve(struct jsonw *w, size_t more)
{
	size_t cap;

	if (w->len + more + 1 <= w->cap)
		return;
	cap = w->cap ? w->cap : 256;
	while (cap < w->len + more + 1)
		cap *= 2;
	w->buf = xreallocarray(w->buf, cap, 1);
	w->cap = cap;
}

void jsonw_put(struct jsonw *w, const char *s, size_t n)
{
	reserve(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void put_escaped(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run = 0;

	jsonw_put(w, "\"", 1);
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t len = 1;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80) {
			len = c >= 0xc2 && c <= 0xdf   ? 2
			      : c >= 0xe0 && c <= 0xef ? 3
			      : c >= 0xf0 && c <= 0xf4 ? 4
			                               : 0;
			if (len && i + len <= n && utf8_valid(s + i, len)) {
				i += len;
				continue;
			}
		}
		jsonw_put(w, s + run, i - run);
		if (c >= 0x80 || c == 0) {
			jsonw_put(w, "\xef\xbf\xbd", 3); /* U+FFFD */
		} else if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};

			jsonw_put(w, esc, 2);
		} else {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};

			jsonw_put(w, esc, 6);
		}
		run = ++i;
	}
	jsonw_put(w, s + run, n - run);
	jsonw_put(w, "\"", 1);
}

static void put_key(struct jsonw *w, const char *key)
{
	if (!w->first)
		jsonw_put(w, ",", 1);
	w->first = false;
	if (key == NULL)
		return; /* an array element */
	put_escaped(w, key, strlen(key));
	jsonw_put(w, ":", 1);
}

void jsonw_begin(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
	w->first = true;
	jsonw_put(w, "{", 1);
}

void jsonw_begin_array(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
	w->first = true;
	jsonw_put(w, "[", 1);
}

void jsonw_str(struct jsonw *w, const char *key, const char *val, size_t n)
{
	if (val == NULL)
		return;
	put_key(w, key);
	put_escaped(w, val, n);
}

void jsonw_cstr(struct jsonw *w, const char *key, const char *val)
{
	if (val != NULL)
		jsonw_str(w, key, val, strlen(val));
}

void jsonw_int(struct jsonw *w, const char *key, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", v);

	put_key(w, key);
	jsonw_put(w, num, (size_t)n);
}

void jsonw_bool(struct jsonw *w, const char *key, bool v)
{
	put_key(w, key);
	jsonw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_raw(struct jsonw *w, const char *key, const char *raw, size_t n)
{
	put_key(w, key);
	jsonw_put(w, raw, n);
}

void jsonw_begin_object(struct jsonw *w, const char *key)
{
	put_key(w, key);
	jsonw_put(w, "{", 1);
	w->first = true;
}

void jsonw_end_object(struct jsonw *w)
{
	jsonw_put(w, "}", 1);
	w->first = false;
}

void jsonw_begin_list(struct jsonw *w, const char *key)
{
	put_key(w, key);
	jsonw_put(w, "[", 1);
	w->first = true;
}

void jsonw_end_list(struct jsonw *w)
{
	jsonw_put(w, "]", 1);
	w->first = false;
}

char *jsonw_take(struct jsonw *w)
{
	char *out = w->buf;

	if (w->failed || out == NULL) {
		free(out);
		out = NULL;
	}
	memset(w, 0, sizeof(*w));
	return out;
}

char *jsonw_finish_array(struct jsonw *w)
{
	jsonw_put(w, "]", 1);
	return jsonw_take(w);
}

char *jsonw_finish(struct jsonw *w)
{
	jsonw_put(w, "}", 1);
	return jsonw_take(w);
}
