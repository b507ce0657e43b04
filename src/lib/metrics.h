/*
 * metrics.h: a registry of counters, gauges and histograms and its
 * Prometheus text rendering (exposition format 0.0.4). The families are a
 * table the caller registers once; they always exist, so a scrape shows them
 * at zero before anything happened. One registry per process, updated from
 * the event loop: not thread-safe.
 */
#ifndef BAYARHOOK_METRICS_H
#define BAYARHOOK_METRICS_H

#include <stddef.h>

enum metrics_type {
	METRICS_COUNTER,   /* only goes up */
	METRICS_GAUGE,     /* set, up or down */
	METRICS_HISTOGRAM, /* cumulative buckets, _sum and _count; unlabelled */
};

struct metrics_family {
	const char *name;
	const char *help;
	enum metrics_type type;
	const char *label;          /* label name, or NULL for one unlabelled series */
	const char *const *presets; /* label values rendered even at zero; NULL-terminated */
	const double *bounds;       /* histogram upper bounds, ascending, +Inf implied */
	size_t nbounds;
};

#define METRICS_MAX_FAMILIES 32
#define METRICS_MAX_SERIES 16 /* label values per family, presets included */
#define METRICS_MAX_LABEL 64  /* bytes of one label value */
#define METRICS_MAX_BUCKETS 16
#define METRICS_NO_FAMILY ((size_t)-1)

/*
 * Registers families[0..n) (the table must outlive the registry; families
 * are rendered in its order) with every value at zero. dropped is the index
 * of an unlabelled counter that counts updates that did not fit (label set
 * full, value too long or not UTF-8), or METRICS_NO_FAMILY. Registering again
 * starts over. Before any registration, updates are ignored.
 */
void metrics_register(const struct metrics_family *families, size_t n, size_t dropped);
/* Every value back to zero (presets only), the families kept. */
void metrics_reset(void);

/*
 * The family argument is an index into the registered table. Label values
 * are free text, escaped on output; values outside the presets are added on
 * first use. label_value is ignored for families without a label and must
 * not be NULL for families with one.
 */
/* Counters and gauges: += 1, += v. A counter ignores v < 0. */
void metrics_inc(size_t family, const char *label_value);
void metrics_add(size_t family, const char *label_value, double v);
/* Gauges only. */
void metrics_set(size_t family, const char *label_value, double v);
/* Histograms only; NaN is ignored. */
void metrics_observe(size_t family, double v);
/*
 * Current value of a counter or gauge series, 0 when it does not exist;
 * for a histogram, its number of observations.
 */
double metrics_get(size_t family, const char *label_value);

/*
 * The whole exposition, NUL-terminated, malloc'd for the caller to free;
 * *len (may be NULL) gets its length. Serve it as
 * "text/plain; version=0.0.4; charset=utf-8".
 */
char *metrics_render(size_t *len);

#endif
