/*
 * stats.h: the metric families bayarhook exposes on GET /metrics. Callers
 * update them through the lib registry (metrics.h) with these indices, e.g.
 * metrics_inc(METRIC_HTTP_REQUESTS, "accepted").
 */
#ifndef BAYARHOOK_STATS_H
#define BAYARHOOK_STATS_H

#include "metrics.h"

/* One value per family, in rendering order; the comment gives the exposed name and label. */
enum metric {
	METRIC_HTTP_REQUESTS,     /* counter bayarhook_http_requests_total{verdict} */
	METRIC_ACK_SECONDS,       /* histogram bayarhook_ack_seconds: request in to answer out */
	METRIC_DATABASE_UP,       /* gauge bayarhook_database_up */
	METRIC_STORE_BATCHES,     /* counter bayarhook_store_batches_total */
	METRIC_STORE_BATCH_SIZE,  /* histogram bayarhook_store_batch_size */
	METRIC_JOBS,              /* gauge bayarhook_jobs{state} */
	METRIC_JOB_ATTEMPTS,      /* counter bayarhook_job_attempts_total{outcome} */
	METRIC_JOBS_DEAD,         /* counter bayarhook_jobs_dead_total{action} */
	METRIC_QUEUE_DEPTH,       /* gauge bayarhook_queue_depth */
	METRIC_OLDEST_PENDING,    /* gauge bayarhook_jobs_oldest_pending_seconds */
	METRIC_RECONCILER_PASSES, /* counter bayarhook_reconciler_passes_total{result} */
	METRIC_RECONCILER_FOUND,  /* counter bayarhook_reconciler_found_total */
	METRIC_RECONCILE_LAST_OK, /* gauge bayarhook_reconcile_last_success_timestamp_seconds */
	METRIC_MISSED_CALLBACKS,  /* counter bayarhook_missed_callbacks_total */
	METRIC_FOLLOWUPS,         /* counter bayarhook_followup_checks_total{outcome} */
	METRIC_PAYMENTS_FLAGGED,  /* counter bayarhook_payments_flagged_total */
	METRIC_AUDIT_SUPPRESSED,  /* counter bayarhook_audit_suppressed_total */
	METRIC_ALERTS,            /* counter bayarhook_alerts_total{kind}: alerts delivered */
	METRIC_BUILD_INFO,        /* gauge bayarhook_build_info{version}, always 1 */
	METRIC_PROCESS_START,     /* gauge process_start_time_seconds */
	METRIC_DROPPED,           /* counter bayarhook_metrics_dropped_total */
	METRIC__COUNT
};

/* Registers the families above, every value at zero. */
void stats_register(void);
/* stats_register(), then build_info{version} and process_start_time_seconds. */
void stats_init(const char *version);

#endif
