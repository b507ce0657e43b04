/*
 * worker_outcome.h: an attempt's result as the arguments of
 * bayarhook.job_finish(): its output and error as text PostgreSQL accepts,
 * its numbers as text, and the delay before a retry (the backoff).
 */
#ifndef BAYARHOOK_WORKER_OUTCOME_H
#define BAYARHOOK_WORKER_OUTCOME_H

#include <stdint.h>

struct action_result;

#define WORKER_OUTPUT_MAX 8192 /* bytes of output kept per attempt */
#define WORKER_ERROR_MAX 1024  /* bytes of jobs.last_error */

struct worker_outcome {
	char outcome[16];                          /* job_attempts.outcome */
	char *exit_code, *http_status, *row_count; /* NULL: SQL NULL */
	char *output;
	char *error;           /* NULL on success */
	char retry_in[32];     /* seconds ("12.345") if the job is retried; "0" on success */
	const char *permanent; /* "true": dead at once (ACTION_FAILED_PERMANENT); "false" */
};

/*
 * Fills o from res, replacing what it held (a failed COMMIT after a sql
 * action's own completion is a second outcome of the same attempt). The
 * retry delay is worker_backoff_ms() for attempt with fresh jitter.
 */
void worker_outcome_set(struct worker_outcome *o, const struct action_result *res, int attempt,
                        int backoff_initial, int backoff_max);
/*
 * Writes o as one element of bayarhook.job_finish_many()'s p_items into an
 * open JSON array (jsonw_begin_array), with the job's claim: its id,
 * attempt number, attempt row and max_attempts, as decimal text.
 */
struct jsonw;
void worker_outcome_json(struct jsonw *w, const char *job, const char *attempts,
                         const char *attempt_id, const char *max_attempts,
                         const struct worker_outcome *o);
/* The delay before attempt's retry, with fresh jitter, as seconds ("12.345"). */
void worker_retry_in(int backoff_initial, int backoff_max, int attempt, char out[32]);
/* Frees what o holds. */
void worker_outcome_clear(struct worker_outcome *o);

/*
 * The retry delay after a failed attempt, in milliseconds: with
 * d = min(max, initial * 2^(attempt - 1)) seconds, d/2 + (rnd mod d/2)
 * ("equal jitter": never less than half the nominal delay, spread over the
 * other half so that jobs failing together do not retry together).
 */
int64_t worker_backoff_ms(int initial, int max, int attempt, uint32_t rnd);

#endif
