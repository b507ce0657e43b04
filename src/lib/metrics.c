/*
 * metrics.c: the static metrics registry and its Prometheus text rendering
 * (exposition format 0.0.4). One table row per family; series live in fixed
 * arrays, so updating a metric never allocates and never fails loudly.
 */
#include "metrics.h"
#include "utf8.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum metric_type {
	MT_COUNTER,   /* only goes up */
	MT_GAUGE,     /* set, up or down */
	MT_HISTOGRAM, /* cumulative buckets, _sum and _count; unlabelled */
};

#define METRICS_MAX_BUCKETS 16

struct metric_family {
	const char *name;
	const char *help;
	enum metric_type type;
	const char *label;          /* label name, or NULL for one unlabelled series */
	const char *const *presets; /* label values rendered even at zero; NULL-terminated */
	const double *bounds;       /* histogram upper bounds, ascending, +Inf implied */
	size_t nbounds;
};

static const char *const verdicts[] = {
    "accepted",  "duplicate", "out_of_order", "bad_signature", "stale_timestamp",
    "malformed", "forbidden", "too_large",    "unavailable",   NULL,
};
static const char *const job_states[] = {"pending", "running",   "succeeded", "dead",
                                         "held",    "cancelled", NULL};
static const char *const attempt_outcomes[] = {"succeeded", "failed", "timeout", NULL};
static const char *const pass_results[] = {"completed", "failed", NULL};

static const double ack_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

#define NBOUNDS(a) (sizeof(a) / sizeof((a)[0]))

static const struct metric_family families[METRIC__COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"bayarhook_http_requests_total",
                              "Requests to the callback path, by audit verdict "
                              "(unavailable: answered 503, not durable).",
                              MT_COUNTER, "verdict", verdicts, NULL, 0},
    [METRIC_ACK_SECONDS] = {"bayarhook_ack_seconds",
                            "Time from a callback request's arrival to its answer, "
                            "including the durable commit.",
                            MT_HISTOGRAM, NULL, NULL, ack_bounds, NBOUNDS(ack_bounds)},
    [METRIC_DATABASE_UP] = {"bayarhook_database_up",
                            "1 when the database connection pool can commit, else 0.", MT_GAUGE,
                            NULL, NULL, NULL, 0},
    [METRIC_STORE_BATCHES] = {"bayarhook_store_batches_total",
                              "Group-commit transactions committed by the store.", MT_COUNTER, NULL,
                              NULL, NULL, 0},
    [METRIC_STORE_BATCH_SIZE] = {"bayarhook_store_batch_size",
                                 "Callbacks made durable per group-commit transaction.",
                                 MT_HISTOGRAM, NULL, NULL, batch_bounds, NBOUNDS(batch_bounds)},
    [METRIC_JOBS] = {"bayarhook_jobs", "Fulfillment jobs by state.", MT_GAUGE, "state", job_states,
                     NULL, 0},
    [METRIC_JOB_ATTEMPTS] = {"bayarhook_job_attempts_total",
                             "Finished fulfillment attempts by outcome.", MT_COUNTER, "outcome",
                             attempt_outcomes, NULL, 0},
    [METRIC_QUEUE_DEPTH] = {"bayarhook_queue_depth", "Jobs due to run now but not yet started.",
                            MT_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_RECONCILER_PASSES] = {"bayarhook_reconciler_passes_total",
                                  "Reconciliation passes by result.", MT_COUNTER, "result",
                                  pass_results, NULL, 0},
    [METRIC_RECONCILER_FOUND] = {"bayarhook_reconciler_found_total",
                                 "Payment state changes the reconciler found that no "
                                 "callback had delivered.",
                                 MT_COUNTER, NULL, NULL, NULL, 0},
    [METRIC_BUILD_INFO] = {"bayarhook_build_info", "Always 1; the version is a label.", MT_GAUGE,
                           "version", NULL, NULL, 0},
    [METRIC_PROCESS_START] = {"process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.", MT_GAUGE,
                              NULL, NULL, NULL, 0},
    [METRIC_DROPPED] = {"bayarhook_metrics_dropped_total",
                        "Metric updates dropped: label value set full, too long or "
                        "not UTF-8.",
                        MT_COUNTER, NULL, NULL, NULL, 0},
};

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
	bool ready;
	size_t nseries[METRIC__COUNT];
	struct metric_series series[METRIC__COUNT][METRICS_MAX_SERIES];
	struct metric_hist hist[METRIC__COUNT];
} reg;

void metrics_reset(void)
{
	memset(&reg, 0, sizeof(reg));
	for (size_t m = 0; m < METRIC__COUNT; m++) {
		const struct metric_family *f = &families[m];

		assert(f->nbounds <= METRICS_MAX_BUCKETS);
		if (f->type == MT_HISTOGRAM)
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
	reg.ready = true;
}

static void metrics_ready(void)
{
	if (!reg.ready)
		metrics_reset();
}

static void metrics_drop(void)
{
	reg.series[METRIC_DROPPED][0].value += 1;
}

/* The series for a label value, created on first use; NULL when it cannot be. */
static struct metric_series *metrics_series(enum metric m, const char *label_value, bool create)
{
	const struct metric_family *f;
	struct metric_series *s;

	metrics_ready();
	if ((unsigned)m >= METRIC__COUNT)
		return NULL;
	f = &families[m];
	assert(f->type != MT_HISTOGRAM);
	if (f->type == MT_HISTOGRAM)
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

void metrics_add(enum metric m, const char *label_value, double v)
{
	struct metric_series *s;

	if (isnan(v))
		return;
	if ((unsigned)m < METRIC__COUNT && families[m].type == MT_COUNTER && v < 0)
		return;
	s = metrics_series(m, label_value, true);
	if (s != NULL)
		s->value += v;
}

void metrics_inc(enum metric m, const char *label_value)
{
	metrics_add(m, label_value, 1);
}

void metrics_set(enum metric m, const char *label_value, double v)
{
	struct metric_series *s;

	assert((unsigned)m < METRIC__COUNT && families[m].type == MT_GAUGE);
	if ((unsigned)m >= METRIC__COUNT || families[m].type != MT_GAUGE)
		return;
	s = metrics_series(m, label_value, true);
	if (s != NULL)
		s->value = v;
}

void metrics_observe(enum metric m, double v)
{
	const struct metric_family *f;
	struct metric_hist *h;
	size_t i;

	metrics_ready();
	assert((unsigned)m < METRIC__COUNT && families[m].type == MT_HISTOGRAM);
	if ((unsigned)m >= METRIC__COUNT || families[m].type != MT_HISTOGRAM || isnan(v))
		return;
	f = &families[m];
	h = &reg.hist[m];
	for (i = 0; i < f->nbounds && v > f->bounds[i]; i++)
		;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

void metrics_observe_ack(double seconds)
{
	metrics_observe(METRIC_ACK_SECONDS, seconds);
}

double metrics_get(enum metric m, const char *label_value)
{
	const struct metric_series *s;

	metrics_ready();
	if ((unsigned)m >= METRIC__COUNT)
		return 0;
	if (families[m].type == MT_HISTOGRAM)
		return (double)reg.hist[m].count;
	s = metrics_series(m, label_value, false);
	return s != NULL ? s->value : 0;
}

void metrics_init(const char *version)
{
	struct timespec ts;

	metrics_reset();
	clock_gettime(CLOCK_REALTIME, &ts);
	metrics_set(METRIC_PROCESS_START, NULL, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	metrics_set(METRIC_BUILD_INFO, version != NULL ? version : "unknown", 1);
}

/* A growable output buffer; after a failed allocation it stays failed. */
struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void metrics_reserve(struct metrics_buf *b, size_t extra)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + extra < b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 4096;
	while (cap <= b->len + extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
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
	if (n < 0) {
		b->oom = true;
		return;
	}
	metrics_reserve(b, (size_t)n + 1);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void metrics_putc(struct metrics_buf *b, char c)
{
	metrics_reserve(b, 2);
	if (b->oom)
		return;
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

/* Shortest text that reads back as the same double; Prometheus' Inf/NaN spelling. */
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

static void metrics_render_histogram(struct metrics_buf *b, enum metric m)
{
	const struct metric_family *f = &families[m];
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
	struct metrics_buf b = {NULL, 0, 0, false};

	metrics_ready();
	metrics_reserve(&b, 1);
	for (size_t m = 0; m < METRIC__COUNT && !b.oom; m++) {
		const struct metric_family *f = &families[m];

		metrics_printf(&b, "# HELP %s ", f->name);
		metrics_escaped(&b, f->help, false);
		metrics_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
		if (f->type == MT_HISTOGRAM) {
			metrics_render_histogram(&b, (enum metric)m);
			continue;
		}
		for (size_t i = 0; i < reg.nseries[m]; i++)
			metrics_sample(&b, f->name, "", f->label, reg.series[m][i].label,
			               reg.series[m][i].value);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	if (len != NULL)
		*len = b.len;
	return b.p;
}
