/*
 * stats.c: the table of bayarhook's metric families (names, help, labels
 * and the label values shown at zero: every verdict of SPEC §6 plus
 * "unavailable", every job state, ...), registered with the lib registry.
 */
#include "stats.h"

#include <time.h>

static const char *const verdicts[] = {
    "accepted",        "duplicate",   "out_of_order", "bad_signature",
    "stale_timestamp", "malformed",   "forbidden",    "too_large",
    "unsigned",        "unavailable", NULL,
};
static const char *const job_states[] = {"pending", "running",   "succeeded", "dead",
                                         "held",    "cancelled", NULL};
static const char *const attempt_outcomes[] = {"succeeded", "failed", "timeout", NULL};
static const char *const pass_results[] = {"completed", "failed", NULL};

/* The kinds of alert_kind.c, in its order. */
static const char *const alert_kinds[] = {"job_dead",
                                          "payment_flagged",
                                          "missed_callback",
                                          "confirm_disagreed",
                                          "reconcile_failing",
                                          "database_down",
                                          NULL};

static const char *const followup_outcomes[] = {"recorded", "not_confirmed", "failed", "throttled",
                                                NULL};

static const double ack_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

#define NBOUNDS(a) (sizeof(a) / sizeof((a)[0]))

static const struct metrics_family families[METRIC__COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"bayarhook_http_requests_total",
                              "Requests to the callback path, by audit verdict "
                              "(unavailable: answered 503, not durable).",
                              METRICS_COUNTER, "verdict", verdicts, NULL, 0},
    [METRIC_ACK_SECONDS] = {"bayarhook_ack_seconds",
                            "Time from a callback request's arrival to its answer, "
                            "including the durable commit.",
                            METRICS_HISTOGRAM, NULL, NULL, ack_bounds, NBOUNDS(ack_bounds)},
    [METRIC_DATABASE_UP] = {"bayarhook_database_up",
                            "1 when the database connection pool can commit, else 0.",
                            METRICS_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_STORE_BATCHES] = {"bayarhook_store_batches_total",
                              "Group-commit transactions committed by the store.", METRICS_COUNTER,
                              NULL, NULL, NULL, 0},
    [METRIC_STORE_BATCH_SIZE] = {"bayarhook_store_batch_size",
                                 "Callbacks made durable per group-commit transaction.",
                                 METRICS_HISTOGRAM, NULL, NULL, batch_bounds,
                                 NBOUNDS(batch_bounds)},
    [METRIC_JOBS] = {"bayarhook_jobs", "Fulfillment jobs by state.", METRICS_GAUGE, "state",
                     job_states, NULL, 0},
    [METRIC_JOB_ATTEMPTS] = {"bayarhook_job_attempts_total",
                             "Finished fulfillment attempts by outcome.", METRICS_COUNTER,
                             "outcome", attempt_outcomes, NULL, 0},
    [METRIC_JOBS_DEAD] = {"bayarhook_jobs_dead_total",
                          "Jobs this process recorded dead (a failure retrying cannot fix, or "
                          "max_attempts spent), by action.",
                          METRICS_COUNTER, "action", NULL, NULL, 0},
    [METRIC_QUEUE_DEPTH] = {"bayarhook_queue_depth", "Jobs due to run now but not yet started.",
                            METRICS_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_OLDEST_PENDING] = {"bayarhook_jobs_oldest_pending_seconds",
                               "Age of the oldest pending job (a paid order not yet "
                               "fulfilled, retries included); 0 when none is pending.",
                               METRICS_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_RECONCILER_PASSES] = {"bayarhook_reconciler_passes_total",
                                  "Reconciliation passes by result.", METRICS_COUNTER, "result",
                                  pass_results, NULL, 0},
    [METRIC_RECONCILER_FOUND] = {"bayarhook_reconciler_found_total",
                                 "Payment state changes the reconciler found that no "
                                 "callback had delivered.",
                                 METRICS_COUNTER, NULL, NULL, NULL, 0},
    [METRIC_RECONCILE_LAST_OK] = {"bayarhook_reconcile_last_success_timestamp_seconds",
                                  "When the last completed reconciliation pass (of any "
                                  "process on the database) ended, since unix epoch; 0 "
                                  "when none has.",
                                  METRICS_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_MISSED_CALLBACKS] = {"bayarhook_missed_callbacks_total",
                                 "Paid invoices the reconciler found whose callback never "
                                 "came (missed_callback: a firewall, a CDN or a wrong "
                                 "callback URL may be eating callbacks).",
                                 METRICS_COUNTER, NULL, NULL, NULL, 0},
    [METRIC_FOLLOWUPS] = {"bayarhook_followup_checks_total",
                          "check-payment follow-ups of stale or unsigned callbacks, by "
                          "outcome (throttled: not asked, over the budget or asked "
                          "less than min_age ago).",
                          METRICS_COUNTER, "outcome", followup_outcomes, NULL, 0},
    [METRIC_PAYMENTS_FLAGGED] = {"bayarhook_payments_flagged_total",
                                 "Payments flagged when recorded (a paid after expired or "
                                 "cancelled): their actions run, with the flag.",
                                 METRICS_COUNTER, NULL, NULL, NULL, 0},
    [METRIC_AUDIT_SUPPRESSED] = {"bayarhook_audit_suppressed_total",
                                 "Refused requests kept out of the audit by its rate "
                                 "limits (no row of their own; SPEC 13).",
                                 METRICS_COUNTER, NULL, NULL, NULL, 0},
    [METRIC_ALERTS] = {"bayarhook_alerts_total",
                       "Alerts delivered to [alert] command and/or url, by kind (those "
                       "held back by min_interval are counted in the next one's "
                       "suppressed, not here).",
                       METRICS_COUNTER, "kind", alert_kinds, NULL, 0},
    [METRIC_BUILD_INFO] = {"bayarhook_build_info", "Always 1; the version is a label.",
                           METRICS_GAUGE, "version", NULL, NULL, 0},
    [METRIC_PROCESS_START] = {"process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              METRICS_GAUGE, NULL, NULL, NULL, 0},
    [METRIC_DROPPED] = {"bayarhook_metrics_dropped_total",
                        "Metric updates dropped: label value set full, too long or "
                        "not UTF-8.",
                        METRICS_COUNTER, NULL, NULL, NULL, 0},
};

void stats_register(void)
{
	metrics_register(families, METRIC__COUNT, METRIC_DROPPED);
}

void stats_init(const char *version)
{
	struct timespec ts;

	stats_register();
	clock_gettime(CLOCK_REALTIME, &ts);
	metrics_set(METRIC_PROCESS_START, NULL, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	metrics_set(METRIC_BUILD_INFO, version != NULL ? version : "unknown", 1);
}
