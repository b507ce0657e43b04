/*
 * metrics.c: the metrics registry and its Prometheus text rendering
 * (exposition format 0.0.4). The caller's table describes the families;
 * series live in fixed arrays, so updating a metric never allocates and
 * never fails loudly.
 */
#include "metrics.h"
#include "utf8.h"
#include "xmalloc.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metric_series {
	char label[METRICS_MAX_LABEL + 1];
	double value;
};

struct metric_hist {
	uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
	uint64_t count;
	double sum;
};

static struct {
	const struct metrics_family *families;
	size_t nfamilies;
	size_t dropped;
	size_t nseries[METRICS_MAX_FAMILIES];
	struct metric_series series[METRICS_MAX_FAMILIES][METRICS_MAX_SERIES];
	struct metric_hist hist[METRICS_MAX_FAMILIES];
} reg = {.dropped = METRICS_NO_FAMILY};

void metrics_reset(void)
{
	memset(reg.nseries, 0, sizeof(reg.nseries));
	memset(reg.series, 0, sizeof(reg.series));
	memset(reg.hist, 0, sizeof(reg.hist));
	for (size_t m = 0; m < reg.nfamilies; m++) {
		const struct metrics_family *f = &reg.families[m];

		assert(f->nbounds <= METRICS_MAX_BUCKETS);
		if (f->type == METRICS_HISTOGRAM)
			continue;
		if (f->label == NULL) {
			reg.nseries[m] = 1; /* the one series, label "" */
			continue;
		}
		for (size_t i = 0; f->presets != NULL && f->presets[i] != NULL; i++) {
			assert(i < METRICS_MAX_SERIES);
			snprintf(reg.series[m][i].label, sizeof(reg.series[m][i].label), "%s",
			         f->presets[i]);
			reg.nseries[m] = i + 1;
		}
	}
}

void metrics_register(const struct metrics_family *families, size_t n, size_t dropped)
{
	assert(n <= METRICS_MAX_FAMILIES);
	assert(dropped == METRICS_NO_FAMILY ||
	       (dropped < n && families[dropped].type == METRICS_COUNTER &&
	        families[dropped].label == NULL));
	reg.families = families;
	reg.nfamilies = n <= METRICS_MAX_FAMILIES ? n : METRICS_MAX_FAMILIES;
	reg.dropped = dropped < reg.nfamilies ? dropped : METRICS_NO_FAMILY;
	metrics_reset();
}

static void metrics_drop(void)
{
	if (reg.dropped != METRICS_NO_FAMILY)
		reg.series[reg.dropped][0].value += 1;
}

/* The series for a label value, created on first use; NULL when it cannot be. */
static struct metric_series *metrics_series(size_t m, const char *label_value, bool create)
{
	const struct metrics_family *f;
	struct metric_series *s;

	if (m >= reg.nfamilies)
		return NULL;
	f = &reg.families[m];
	assert(f->type != METRICS_HISTOGRAM);
	if (f->type == METRICS_HISTOGRAM)
		return NULL;
	if (f->label == NULL)
		return &reg.series[m][0];
	assert(label_value != NULL);
	if (label_value == NULL)
		return NULL;
	for (size_t i = 0; i < reg.nseries[m]; i++)
		if (strcmp(reg.series[m][i].label, label_value) == 0)
			return &reg.series[m][i];
	if (!create)
		return NULL;
	if (reg.nseries[m] == METRICS_MAX_SERIES || strlen(label_value) > METRICS_MAX_LABEL ||
	    !utf8_valid(label_value, strlen(label_value))) {
		metrics_drop();
		return NULL;
	}
	s = &reg.series[m][reg.nseries[m]++];
	memcpy(s->label, label_value, strlen(label_value) + 1);
	return s;
}

void metrics_add(size_t m, const char *label_value, double v)
{
	struct metric_series *s;

	if (isnan(v))
		return;
	if (m < reg.nfamilies && reg.families[m].type == METRICS_COUNTER && v < 0)
		return;
	s = metrics_series(m, label_value, true);
	if (s != NULL)
		s->value += v;
}

void metrics_inc(size_t m, const char *label_value)
{
	metrics_add(m, label_value, 1);
}

void metrics_set(size_t m, const char *label_value, double v)
{
	struct metric_series *s;

	if (m >= reg.nfamilies)
		return;
	assert(reg.families[m].type == METRICS_GAUGE);
	if (reg.families[m].type != METRICS_GAUGE)
		return;
	s = metrics_series(m, label_value, true);
	if (s != NULL)
		s->value = v;
}

void metrics_observe(size_t m, double v)
{
	const struct metrics_family *f;
	struct metric_hist *h;
	size_t i;

	if (m >= reg.nfamilies)
		return;
	assert(reg.families[m].type == METRICS_HISTOGRAM);
	if (reg.families[m].type != METRICS_HISTOGRAM || isnan(v))
		return;
	f = &reg.families[m];
	h = &reg.hist[m];
	for (i = 0; i < f->nbounds && v > f->bounds[i]; i++)
		;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

double metrics_get(size_t m, const char *label_value)
{
	const struct metric_series *s;

	if (m >= reg.nfamilies)
		return 0;
	if (reg.families[m].type == METRICS_HISTOGRAM)
		return (double)reg.hist[m].count;
	s = metrics_series(m, label_value, false);
	return s != NULL ? s->value : 0;
}

/* A growable output buffer, always NUL-terminated. */
struct metrics_buf {
	char *p;
	size_t len, cap;
};

static void metrics_reserve(struct metrics_buf *b, size_t extra)
{
	size_t cap;

	if (b->len + extra < b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 4096;
	while (cap <= b->len + extra)
		cap *= 2;
	b->p = xreallocarray(b->p, cap, 1);
	b->cap = cap;
}

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return; /* only for a bad format; ours are literals */
	metrics_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void metrics_putc(struct metrics_buf *b, char c)
{
	metrics_reserve(b, 2);
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

/* Format 0.0.4: HELP escapes \ and newline; label values also ". */
static void metrics_escaped(struct metrics_buf *b, const char *s, bool quotes)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			metrics_printf(b, "\\\\");
		else if (*s == '\n')
			metrics_printf(b, "\\n");
		else if (quotes && *s == '"')
			metrics_printf(b, "\\\"");
		else
			metrics_putc(b, *s);
	}
}

/*
 * Whole numbers up to 2^53 (every count a counter reaches) as integers, so
 * 10 is "10" and not "1e+01"; anything else as the shortest text that reads
 * back as the same double; Prometheus' Inf/NaN spelling.
 */
static void metrics_number(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
		snprintf(out, size, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void metrics_sample(struct metrics_buf *b, const char *name, const char *suffix,
                           const char *label, const char *label_value, double v)
{
	char num[64];

	metrics_number(num, sizeof(num), v);
	metrics_printf(b, "%s%s", name, suffix);
	if (label != NULL) {
		metrics_printf(b, "{%s=\"", label);
		metrics_escaped(b, label_value, true);
		metrics_printf(b, "\"}");
	}
	metrics_printf(b, " %s\n", num);
}

static void metrics_render_histogram(struct metrics_buf *b, size_t m)
{
	const struct metrics_family *f = &reg.families[m];
	const struct metric_hist *h = &reg.hist[m];
	uint64_t cumulative = 0;
	char le[64];

	for (size_t i = 0; i <= f->nbounds; i++) {
		cumulative += h->counts[i];
		if (i < f->nbounds)
			metrics_number(le, sizeof(le), f->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		metrics_sample(b, f->name, "_bucket", "le", le, (double)cumulative);
	}
	metrics_sample(b, f->name, "_sum", NULL, NULL, h->sum);
	metrics_sample(b, f->name, "_count", NULL, NULL, (double)h->count);
}

char *metrics_render(size_t *len)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	struct metrics_buf b = {NULL, 0, 0};

	metrics_reserve(&b, 1);
	b.p[0] = '\0';
	for (size_t m = 0; m < reg.nfamilies; m++) {
		const struct metrics_family *f = &reg.families[m];

		metrics_printf(&b, "# HELP %s ", f->name);
		metrics_escaped(&b, f->help, false);
		metrics_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
		if (f->type == METRICS_HISTOGRAM) {
			metrics_render_histogram(&b, m);
			continue;
		}
		for (size_t i = 0; i < reg.nseries[m]; i++)
			metrics_sample(&b, f->name, "", f->label, reg.series[m][i].label,
			               reg.series[m][i].value);
	}
	if (len != NULL)
		*len = b.len;
	return b.p;
}
