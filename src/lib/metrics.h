/*
 * metrics.h: every counter, gauge and histogram bayarhook exposes on
 * GET /metrics (Prometheus text exposition format 0.0.4). The registry is
 * static: the families below always exist, so a scrape shows them at zero
 * before anything happened. Not thread-safe: updated from the event loop.
 */
#ifndef BAYARHOOK_METRICS_H
#define BAYARHOOK_METRICS_H

#include <stddef.h>

/* One value per family; the comment gives the exposed name and label. */
enum metric {
	METRIC_HTTP_REQUESTS,     /* counter bayarhook_http_requests_total{verdict} */
	METRIC_ACK_SECONDS,       /* histogram bayarhook_ack_seconds */
	METRIC_DATABASE_UP,       /* gauge bayarhook_database_up */
	METRIC_STORE_BATCHES,     /* counter bayarhook_store_batches_total */
	METRIC_STORE_BATCH_SIZE,  /* histogram bayarhook_store_batch_size */
	METRIC_JOBS,              /* gauge bayarhook_jobs{state} */
	METRIC_JOB_ATTEMPTS,      /* counter bayarhook_job_attempts_total{outcome} */
	METRIC_QUEUE_DEPTH,       /* gauge bayarhook_queue_depth */
	METRIC_RECONCILER_PASSES, /* counter bayarhook_reconciler_passes_total{result} */
	METRIC_RECONCILER_FOUND,  /* counter bayarhook_reconciler_found_total */
	METRIC_BUILD_INFO,        /* gauge bayarhook_build_info{version}, always 1 */
	METRIC_PROCESS_START,     /* gauge process_start_time_seconds */
	METRIC_DROPPED,           /* counter bayarhook_metrics_dropped_total */
	METRIC__COUNT
};

/*
 * Label values are free text, escaped on output. The values listed in
 * metrics.c (every verdict of SPEC §6 plus "unavailable", every job state,
 * ...) are always rendered; others are added on first use, up to
 * METRICS_MAX_SERIES per family and METRICS_MAX_LABEL bytes each. An update
 * that does not fit is counted in bayarhook_metrics_dropped_total instead.
 * label_value is ignored for families without a label, and must not be NULL
 * for families with one.
 */
#define METRICS_MAX_SERIES 16
#define METRICS_MAX_LABEL 64

/* Sets build_info{version} and process_start_time_seconds; call once at start. */
void metrics_init(const char *version);
/* Back to the state before metrics_init (tests; a fresh `serve`). */
void metrics_reset(void);

/* Counters and gauges: += 1, += v. A counter ignores v < 0. */
void metrics_inc(enum metric m, const char *label_value);
void metrics_add(enum metric m, const char *label_value, double v);
/* Gauges only. */
void metrics_set(enum metric m, const char *label_value, double v);
/* Histograms only; NaN is ignored. */
void metrics_observe(enum metric m, double v);
/* metrics_observe(METRIC_ACK_SECONDS, seconds): request in to answer out. */
void metrics_observe_ack(double seconds);
/*
 * Current value of a counter or gauge series, 0 when it does not exist;
 * for a histogram, its number of observations.
 */
double metrics_get(enum metric m, const char *label_value);

/*
 * The whole exposition, NUL-terminated, malloc'd for the caller to free;
 * *len (may be NULL) gets its length. NULL when out of memory. Serve it as
 * "text/plain; version=0.0.4; charset=utf-8".
 */
char *metrics_render(size_t *len);

#endif
