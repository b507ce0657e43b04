/*
 * when.c: parsing and evaluating `when =` (see when.h). Values are
 * compared as the text PHP would see (event_field's), numbers with strtod.
 */
#include "when.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define WHEN_MAX 16 /* conditions of one action */

enum when_op { OP_EQ, OP_NE, OP_PREFIX, OP_RE, OP_LT, OP_LE, OP_GT, OP_GE };

/* Two-character operators first, so "<=" is not read as "<" and "=...". */
static const struct {
	const char *text;
	enum when_op op;
} when_ops[] = {
    {"!=", OP_NE}, {"^=", OP_PREFIX}, {"<=", OP_LE}, {">=", OP_GE},
    {"=", OP_EQ},  {"~", OP_RE},      {"<", OP_LT},  {">", OP_GT},
};

struct when_cond {
	char *field;
	enum when_op op;
	char *value;
	double num; /* numeric operators */
	regex_t re; /* OP_RE */
};

struct when {
	struct when_cond c[WHEN_MAX];
	size_t n;
};

static size_t when_name_len(const char *s)
{
	size_t n = 0;

	while (isalnum((unsigned char)s[n]) || s[n] == '_')
		n++;
	return n;
}

/* The operator at s (blanks skipped), its length in *len; -1 when none. */
static int when_op_at(const char *s, size_t *len)
{
	for (size_t i = 0; i < sizeof(when_ops) / sizeof(when_ops[0]); i++) {
		size_t n = strlen(when_ops[i].text);

		if (strncmp(s, when_ops[i].text, n) == 0) {
			*len = n;
			return (int)when_ops[i].op;
		}
	}
	return -1;
}

/* True when s (after blanks) starts "field OP": where a comma separates. */
static bool when_starts_cond(const char *s)
{
	size_t n, oplen;

	s += strspn(s, " \t");
	n = when_name_len(s);
	if (n == 0)
		return false;
	s += n;
	s += strspn(s, " \t");
	return when_op_at(s, &oplen) >= 0;
}

static char *when_trim(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return xstrndup(s, n);
}

static int when_cond_parse(struct when_cond *c, const char *s, size_t len, size_t idx, char *err,
                           size_t errlen)
{
	char *text = when_trim(s, len), *p = text;
	size_t n, oplen;
	int op, rc = -1;

	n = when_name_len(p);
	if (n == 0) {
		snprintf(err, errlen, "condition %zu: no field name (field OP value)", idx);
		goto out;
	}
	c->field = xstrndup(p, n);
	p += n;
	p += strspn(p, " \t");
	if ((op = when_op_at(p, &oplen)) < 0) {
		snprintf(err, errlen, "condition %zu: no operator (= != ^= ~ < <= > >=) after %s",
		         idx, c->field);
		goto out;
	}
	c->op = (enum when_op)op;
	c->value = when_trim(p + oplen, strlen(p + oplen));
	if (c->op == OP_RE) {
		int e = regcomp(&c->re, c->value, REG_EXTENDED | REG_NOSUB);

		if (e != 0) {
			char why[128];

			regerror(e, &c->re, why, sizeof(why));
			snprintf(err, errlen, "condition %zu: bad regular expression: %s", idx,
			         why);
			free(c->value);
			c->value = NULL; /* nothing compiled to free */
			goto out;
		}
	} else if (c->op >= OP_LT) {
		char *end;

		c->num = strtod(c->value, &end);
		if (c->value[0] == '\0' || *end != '\0' || !isfinite(c->num)) {
			snprintf(err, errlen, "condition %zu: %s needs a number", idx, c->field);
			goto out;
		}
	}
	rc = 0;
out:
	free(text);
	return rc;
}

struct when *when_parse(const char *text, char *err, size_t errlen)
{
	struct when *w = xcalloc(1, sizeof(*w));
	const char *start = text;

	for (const char *p = text;; p++) {
		if (*p != '\0' && !(*p == ',' && when_starts_cond(p + 1)))
			continue;
		if (w->n == WHEN_MAX) {
			snprintf(err, errlen, "more than %d conditions", WHEN_MAX);
			goto fail;
		}
		if (when_cond_parse(&w->c[w->n], start, (size_t)(p - start), w->n + 1, err,
		                    errlen) < 0) {
			w->n++; /* what it filled in is freed with the rest */
			goto fail;
		}
		w->n++;
		if (*p == '\0')
			break;
		start = p + 1;
	}
	return w;
fail:
	when_free(w);
	return NULL;
}

void when_free(struct when *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++) {
		if (w->c[i].op == OP_RE && w->c[i].value != NULL)
			regfree(&w->c[i].re);
		free(w->c[i].field);
		free(w->c[i].value);
	}
	free(w);
}

static bool when_cond_holds(const struct when_cond *c, const char *v)
{
	double x;
	char *end;

	switch (c->op) {
	case OP_EQ:
		return strcmp(v, c->value) == 0;
	case OP_NE:
		return strcmp(v, c->value) != 0;
	case OP_PREFIX:
		return strncmp(v, c->value, strlen(c->value)) == 0;
	case OP_RE:
		return regexec(&c->re, v, 0, NULL, 0) == 0;
	default:
		break;
	}
	x = strtod(v, &end);
	if (v[0] == '\0' || *end != '\0' || !isfinite(x))
		return false;
	switch (c->op) {
	case OP_LT:
		return x < c->num;
	case OP_LE:
		return x <= c->num;
	case OP_GT:
		return x > c->num;
	default:
		return x >= c->num;
	}
}

bool when_match(const struct when *w, when_lookup_fn lookup, const void *arg)
{
	for (size_t i = 0; w != NULL && i < w->n; i++) {
		const char *v = lookup(arg, w->c[i].field);

		if (!when_cond_holds(&w->c[i], v != NULL ? v : ""))
			return false;
	}
	return true;
}
