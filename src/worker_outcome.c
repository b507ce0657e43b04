/*
 * worker_outcome.c: an attempt's result made fit for job_finish() (see
 * worker_outcome.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "action.h"
#include "jsonw.h"
#include "utf8.h"
#include "worker_outcome.h"
#include "worker_owner.h"
#include "xmalloc.h"

int64_t worker_backoff_ms(int initial, int max, int attempt, uint32_t rnd)
{
	int64_t d = initial < 1 ? 1 : initial, half;

	if (max < d)
		max = (int)d;
	for (int i = 1; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	d *= 1000;
	half = d / 2;
	return half + (int64_t)(rnd % (uint64_t)(half + 1));
}

/*
 * Output of an attempt as valid UTF-8 text of at most max bytes: PostgreSQL
 * refuses invalid sequences and NUL in text, and a script may print anything.
 */
static char *clean_text(const char *s, size_t len, size_t max)
{
	char *out = xmalloc((len < max ? len : max) + 1);
	size_t o = 0, i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

		if (n > 1 && (i + n > len || !utf8_valid(s + i, n)))
			n = 0; /* not a valid sequence: one '?' for its first byte */
		if (o + (n ? n : 1) > max)
			break;
		if (n == 0) {
			out[o++] = '?';
			i++;
		} else if (n == 1 && c == 0) {
			out[o++] = ' ';
			i++;
		} else if (n == 1 && c >= 0x80) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		}
	}
	out[o] = '\0';
	return out;
}

static char *num_text(long long v)
{
	char *s;

	xasprintf(&s, "%lld", v);
	return s;
}

static const char *outcome_name(enum action_outcome o)
{
	switch (o) {
	case ACTION_SUCCEEDED:
		return "succeeded";
	case ACTION_TIMEOUT:
		return "timeout";
	case ACTION_FAILED:
	case ACTION_FAILED_PERMANENT: /* the job's state says the rest */
		break;
	}
	return "failed";
}

void worker_outcome_clear(struct worker_outcome *o)
{
	free(o->exit_code);
	free(o->http_status);
	free(o->row_count);
	free(o->output);
	free(o->error);
	o->exit_code = o->http_status = o->row_count = o->output = o->error = NULL;
}

void worker_outcome_set(struct worker_outcome *o, const struct action_result *res, int attempt,
                        int backoff_initial, int backoff_max)
{
	worker_outcome_clear(o);
	snprintf(o->outcome, sizeof(o->outcome), "%s", outcome_name(res->outcome));
	o->permanent = res->outcome == ACTION_FAILED_PERMANENT ? "true" : "false";
	o->output = clean_text(res->output ? res->output : "", res->output ? res->output_len : 0,
	                       WORKER_OUTPUT_MAX);
	if (res->error)
		o->error = clean_text(res->error, strlen(res->error), WORKER_ERROR_MAX);
	if (res->exit_code >= 0)
		o->exit_code = num_text(res->exit_code);
	if (res->http_status > 0)
		o->http_status = num_text(res->http_status);
	if (res->row_count >= 0)
		o->row_count = num_text(res->row_count);
	if (res->outcome != ACTION_SUCCEEDED)
		worker_retry_in(backoff_initial, backoff_max, attempt, o->retry_in);
	else
		snprintf(o->retry_in, sizeof(o->retry_in), "0");
}

void worker_retry_in(int backoff_initial, int backoff_max, int attempt, char out[32])
{
	int64_t ms = worker_backoff_ms(backoff_initial, backoff_max, attempt, worker_random_u32());

	snprintf(out, 32, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

void worker_outcome_json(struct jsonw *w, const char *job, const char *attempts,
                         const char *attempt_id, const char *max_attempts,
                         const struct worker_outcome *o)
{
	jsonw_begin_object(w, NULL);
	jsonw_cstr(w, "job", job);
	jsonw_cstr(w, "attempts", attempts);
	jsonw_cstr(w, "attempt_id", attempt_id);
	jsonw_cstr(w, "outcome", o->outcome);
	jsonw_cstr(w, "max_attempts", max_attempts);
	jsonw_cstr(w, "retry_in", o->retry_in);
	/* NULL writes nothing: the column is NULL, as job_finish() is given it. */
	jsonw_cstr(w, "exit_code", o->exit_code);
	jsonw_cstr(w, "http_status", o->http_status);
	jsonw_cstr(w, "row_count", o->row_count);
	jsonw_cstr(w, "output", o->output);
	jsonw_cstr(w, "error", o->error);
	jsonw_cstr(w, "permanent", o->permanent);
	jsonw_end_object(w);
}
