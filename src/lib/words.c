/*
 * words.c: sh-style word splitting (quoting only) and per-word {field}
 * substitution for command templates. See words.h for the exact rules.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "words.h"
#include "xmalloc.h"

struct strvec {
	char **v;
	size_t n, cap;
};

/* A byte buffer that is always NUL-terminated once non-empty. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void words_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

/* Takes ownership of s. Keeps v NULL-terminated. */
static void strvec_push(struct strvec *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

static void strvec_clear(struct strvec *sv)
{
	words_free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

static void sbuf_add(struct sbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 32;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		b->s = xreallocarray(b->s, ncap, 1);
		b->cap = ncap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Hands the buffer's string to the caller and resets the buffer. */
static char *sbuf_take(struct sbuf *b)
{
	char *s = b->s;

	if (s == NULL)
		s = xstrdup("");
	memset(b, 0, sizeof(*b));
	return s;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/*
 * The end of a split or an expansion (ok: no error so far): *argv_out when
 * there is at least one word, else everything freed.
 */
static int words_done(struct strvec *sv, struct sbuf *word, bool ok, char ***argv_out, char *err,
                      size_t errlen)
{
	free(word->s);
	if (ok && sv->n == 0) {
		seterr(err, errlen, "empty command");
		ok = false;
	}
	if (!ok) {
		strvec_clear(sv);
		return -1;
	}
	*argv_out = sv->v;
	return 0;
}

int words_split(const char *cmd, char ***argv_out, char *err, size_t errlen)
{
	struct strvec sv = {0};
	struct sbuf word = {0};
	bool in_word = false, ok = false;
	size_t i = 0, start;
	char c;

	*argv_out = NULL;
	while ((c = cmd[i]) != '\0') {
		if (is_blank(c)) {
			i++;
			if (in_word) {
				in_word = false;
				strvec_push(&sv, sbuf_take(&word));
			}
			continue;
		}
		switch (c) {
		case '\\':
			if (cmd[i + 1] == '\0') {
				seterr(err, errlen, "trailing backslash at offset %zu", i);
				goto fail;
			}
			/* Backslash-newline is a line continuation: it vanishes. */
			if (cmd[i + 1] != '\n') {
				sbuf_add(&word, &cmd[i + 1], 1);
				in_word = true;
			}
			i += 2;
			break;
		case '\'':
			start = i++;
			while (cmd[i] != '\0' && cmd[i] != '\'')
				i++;
			if (cmd[i] == '\0') {
				seterr(err, errlen, "unterminated single quote at offset %zu",
				       start);
				goto fail;
			}
			sbuf_add(&word, &cmd[start + 1], i - start - 1);
			in_word = true;
			i++;
			break;
		case '"':
			start = i++;
			for (;;) {
				c = cmd[i];
				if (c == '\0') {
					seterr(err, errlen,
					       "unterminated double quote at offset %zu", start);
					goto fail;
				}
				if (c == '"')
					break;
				if (c == '\\' && cmd[i + 1] != '\0' &&
				    strchr("\"\\$`\n", cmd[i + 1]) != NULL) {
					if (cmd[i + 1] != '\n')
						sbuf_add(&word, &cmd[i + 1], 1);
					i += 2;
					continue;
				}
				sbuf_add(&word, &c, 1);
				i++;
			}
			in_word = true;
			i++;
			break;
		default:
			sbuf_add(&word, &c, 1);
			in_word = true;
			i++;
			break;
		}
	}
	if (in_word)
		strvec_push(&sv, sbuf_take(&word));
	ok = true;
fail:
	return words_done(&sv, &word, ok, argv_out, err, errlen);
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * Walks one template word. With out != NULL, appends the substituted text
 * (values from lookup); with names != NULL, records each distinct name.
 * wordno is 0-based; word 0 (the program) may not hold placeholders.
 */
static int subst_word(const char *w, size_t wordno, words_lookup_fn lookup, void *arg,
                      struct sbuf *out, struct strvec *names, char *err, size_t errlen)
{
	size_t i = 0, lit = 0;

	while (w[i] != '\0') {
		char c = w[i];
		size_t nstart, nlen;
		const char *val;
		char *name;

		if (c != '{' && c != '}') {
			i++;
			continue;
		}
		/* Flush the literal run before the brace. */
		if (out != NULL)
			sbuf_add(out, w + lit, i - lit);
		if (w[i + 1] == c) {
			/* {{ or }}: one literal brace. */
			if (out != NULL)
				sbuf_add(out, &c, 1);
			i += 2;
			lit = i;
			continue;
		}
		if (c == '}') {
			seterr(err, errlen,
			       "word %zu: lone '}' at offset %zu (write }} for a literal })",
			       wordno + 1, i);
			return -1;
		}
		nstart = i + 1;
		nlen = 0;
		while (is_name_char(w[nstart + nlen]))
			nlen++;
		if (nlen == 0 || w[nstart + nlen] != '}') {
			seterr(
			    err, errlen,
			    "word %zu: bad placeholder at offset %zu: a field name is [a-z0-9_]+ "
			    "(write {{ for a literal {)",
			    wordno + 1, i);
			return -1;
		}
		if (wordno == 0) {
			seterr(err, errlen, "placeholder {%.*s} not allowed in the program name",
			       (int)nlen, w + nstart);
			return -1;
		}
		name = xstrndup(w + nstart, nlen);
		if (names != NULL) {
			bool seen = false;

			for (size_t k = 0; k < names->n && !seen; k++)
				seen = strcmp(names->v[k], name) == 0;
			if (seen)
				free(name);
			else
				strvec_push(names, name);
		} else if (out != NULL) {
			val = lookup != NULL ? lookup(arg, name) : NULL;
			if (val == NULL) {
				seterr(err, errlen, "unknown field: %s", name);
				free(name);
				return -1;
			}
			free(name);
			sbuf_add(out, val, strlen(val));
		} else {
			free(name);
		}
		i = nstart + nlen + 1;
		lit = i;
	}
	if (out != NULL)
		sbuf_add(out, w + lit, i - lit);
	return 0;
}

int words_fields(char *const *tmpl, char ***names_out, char *err, size_t errlen)
{
	struct strvec names = {0};

	*names_out = NULL;
	for (size_t k = 0; tmpl[k] != NULL; k++) {
		if (subst_word(tmpl[k], k, NULL, NULL, NULL, &names, err, errlen) < 0) {
			strvec_clear(&names);
			return -1;
		}
	}
	/* An empty, but non-NULL, set when there are no placeholders. */
	if (names.v == NULL)
		names.v = xcalloc(1, sizeof(char *));
	*names_out = names.v;
	return 0;
}

int words_expand(char *const *tmpl, words_lookup_fn lookup, void *arg, char ***argv_out, char *err,
                 size_t errlen)
{
	struct strvec sv = {0};
	struct sbuf word = {0};
	bool ok = false;

	*argv_out = NULL;
	for (size_t k = 0; tmpl[k] != NULL; k++) {
		if (subst_word(tmpl[k], k, lookup, arg, &word, NULL, err, errlen) < 0)
			goto fail;
		strvec_push(&sv, sbuf_take(&word));
	}
	ok = true;
fail:
	return words_done(&sv, &word, ok, argv_out, err, errlen);
}
