/*
 * test_metrics.c: metrics_render() output is checked by a strict parser of
 * the Prometheus text format 0.0.4 (HELP then TYPE per family, sample names
 * matching their family, quoted and escaped label values, numbers that read
 * back completely), then the values are looked up in what was parsed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "metrics.h"
#include "stats.h"

#define MAX_SAMPLES 512
#define MAX_FAMILIES 32

struct sample {
	char name[128];
	char label[64];  /* first label name, "" when none */
	char value[128]; /* its unescaped value */
	int nlabels;
	double v;
};

struct family {
	char name[128];
	char type[16];
};

struct exposition {
	struct sample samples[MAX_SAMPLES];
	size_t nsamples;
	struct family families[MAX_FAMILIES];
	size_t nfamilies;
};

static struct exposition expo;

static const char *parse_name(const char *p, char *out, size_t size, bool colon, int lineno)
{
	size_t n = 0;

	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
	      (colon && *p == ':')))
		fail_msg("line %d: bad name start at \"%s\"", lineno, p);
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '_' || (colon && *p == ':')) {
		if (n + 1 >= size)
			fail_msg("line %d: name too long", lineno);
		out[n++] = *p++;
	}
	out[n] = '\0';
	return p;
}

static double parse_value(const char *p, int lineno)
{
	char *end;
	double v;

	if (strcmp(p, "+Inf") == 0)
		return INFINITY;
	if (strcmp(p, "-Inf") == 0)
		return -INFINITY;
	if (strcmp(p, "NaN") == 0)
		return NAN;
	if (*p == '\0' || *p == ' ')
		fail_msg("line %d: missing value", lineno);
	v = strtod(p, &end);
	if (*end != '\0')
		fail_msg("line %d: trailing text after value: \"%s\"", lineno, end);
	return v;
}

static const char *family_of(const char *sample_name, const struct family *f)
{
	size_t n = strlen(f->name);

	if (strcmp(f->type, "histogram") != 0)
		return strcmp(sample_name, f->name) == 0 ? "" : NULL;
	if (strncmp(sample_name, f->name, n) != 0)
		return NULL;
	sample_name += n;
	if (strcmp(sample_name, "_bucket") == 0 || strcmp(sample_name, "_sum") == 0 ||
	    strcmp(sample_name, "_count") == 0)
		return sample_name;
	return NULL;
}

static void parse_sample(const char *p, const struct family *cur, int lineno)
{
	struct sample *s;
	const char *suffix;

	if (expo.nsamples == MAX_SAMPLES)
		fail_msg("too many samples");
	s = &expo.samples[expo.nsamples++];
	memset(s, 0, sizeof(*s));
	p = parse_name(p, s->name, sizeof(s->name), true, lineno);
	if (cur == NULL)
		fail_msg("line %d: sample before any TYPE", lineno);
	suffix = family_of(s->name, cur);
	if (suffix == NULL)
		fail_msg("line %d: sample %s outside its family %s", lineno, s->name, cur->name);
	if (*p == '{') {
		p++;
		while (*p != '}') {
			char lname[64], lval[128];
			size_t n = 0;

			p = parse_name(p, lname, sizeof(lname), false, lineno);
			if (p[0] != '=' || p[1] != '"')
				fail_msg("line %d: expected =\" after label name", lineno);
			for (p += 2; *p != '"'; p++) {
				char c = *p;

				if (c == '\0' || c == '\n')
					fail_msg("line %d: unterminated label value", lineno);
				if (c == '\\') {
					p++;
					if (*p == '\\' || *p == '"')
						c = *p;
					else if (*p == 'n')
						c = '\n';
					else
						fail_msg("line %d: bad escape \\%c", lineno, *p);
				}
				if (n + 1 >= sizeof(lval))
					fail_msg("line %d: label value too long", lineno);
				lval[n++] = c;
			}
			lval[n] = '\0';
			p++;
			if (s->nlabels++ == 0) {
				snprintf(s->label, sizeof(s->label), "%s", lname);
				snprintf(s->value, sizeof(s->value), "%s", lval);
			}
			if (*p == ',')
				p++;
			else if (*p != '}')
				fail_msg("line %d: expected , or } in labels", lineno);
		}
		p++;
	}
	if (strcmp(suffix, "_bucket") == 0 && strcmp(s->label, "le") != 0)
		fail_msg("line %d: bucket without le", lineno);
	if (*p != ' ')
		fail_msg("line %d: expected one space before the value", lineno);
	s->v = parse_value(p + 1, lineno);
}

/* Fails the test on any line that is not well-formed 0.0.4 text. */
static void parse(const char *text, size_t len)
{
	char *copy = strndup(text, len), *line, *save = NULL;
	struct family *cur = NULL;
	char help_for[128] = "";
	int lineno = 0;

	assert_non_null(copy);
	memset(&expo, 0, sizeof(expo));
	assert_true(len > 0);
	assert_int_equal(text[len - 1], '\n');
	assert_null(strstr(text, "\n\n"));
	for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (strncmp(line, "# HELP ", 7) == 0) {
			const char *p =
			    parse_name(line + 7, help_for, sizeof(help_for), true, lineno);

			if (*p != ' ')
				fail_msg("line %d: HELP without text", lineno);
			for (p++; *p != '\0'; p++)
				if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
					fail_msg("line %d: bad escape in HELP", lineno);
				else if (*p == '\\')
					p++;
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[128];
			const char *p = parse_name(line + 7, name, sizeof(name), true, lineno);

			if (strcmp(name, help_for) != 0)
				fail_msg("line %d: TYPE %s not right after its HELP", lineno, name);
			for (size_t i = 0; i < expo.nfamilies; i++)
				if (strcmp(expo.families[i].name, name) == 0)
					fail_msg("line %d: family %s twice", lineno, name);
			if (strcmp(p, " counter") != 0 && strcmp(p, " gauge") != 0 &&
			    strcmp(p, " histogram") != 0)
				fail_msg("line %d: bad type \"%s\"", lineno, p);
			assert_true(expo.nfamilies < MAX_FAMILIES);
			cur = &expo.families[expo.nfamilies++];
			snprintf(cur->name, sizeof(cur->name), "%s", name);
			snprintf(cur->type, sizeof(cur->type), "%s", p + 1);
			help_for[0] = '\0';
		} else if (line[0] == '#') {
			fail_msg("line %d: unexpected comment", lineno);
		} else {
			parse_sample(line, cur, lineno);
		}
	}
	free(copy);
}

static void render_and_parse(void)
{
	size_t len = 0;
	char *text = metrics_render(&len);

	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	parse(text, len);
	free(text);
}

static const struct sample *find(const char *name, const char *label_value)
{
	for (size_t i = 0; i < expo.nsamples; i++) {
		const struct sample *s = &expo.samples[i];

		if (strcmp(s->name, name) != 0)
			continue;
		if (label_value == NULL ? s->nlabels == 0 : strcmp(s->value, label_value) == 0)
			return s;
	}
	return NULL;
}

static double value(const char *name, const char *label_value)
{
	const struct sample *s = find(name, label_value);

	if (s == NULL)
		fail_msg("no sample %s{%s}", name, label_value != NULL ? label_value : "");
	return s->v;
}

static const struct family *family(const char *name)
{
	for (size_t i = 0; i < expo.nfamilies; i++)
		if (strcmp(expo.families[i].name, name) == 0)
			return &expo.families[i];
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	stats_register();
	return 0;
}

static void test_all_families_at_zero(void **state)
{
	static const struct {
		const char *name, *type;
	} want[] = {
	    {"bayarhook_http_requests_total", "counter"},
	    {"bayarhook_ack_seconds", "histogram"},
	    {"bayarhook_database_up", "gauge"},
	    {"bayarhook_store_batches_total", "counter"},
	    {"bayarhook_store_batch_size", "histogram"},
	    {"bayarhook_jobs", "gauge"},
	    {"bayarhook_job_attempts_total", "counter"},
	    {"bayarhook_jobs_dead_total", "counter"},
	    {"bayarhook_queue_depth", "gauge"},
	    {"bayarhook_jobs_oldest_pending_seconds", "gauge"},
	    {"bayarhook_reconciler_passes_total", "counter"},
	    {"bayarhook_reconciler_found_total", "counter"},
	    {"bayarhook_reconcile_last_success_timestamp_seconds", "gauge"},
	    {"bayarhook_missed_callbacks_total", "counter"},
	    {"bayarhook_followup_checks_total", "counter"},
	    {"bayarhook_payments_flagged_total", "counter"},
	    {"bayarhook_audit_suppressed_total", "counter"},
	    {"bayarhook_alerts_total", "counter"},
	    {"bayarhook_build_info", "gauge"},
	    {"process_start_time_seconds", "gauge"},
	    {"bayarhook_metrics_dropped_total", "counter"},
	};
	static const struct {
		const char *name, *label;
	} zero[] = {
	    {"bayarhook_http_requests_total", "accepted"},
	    {"bayarhook_http_requests_total", "duplicate"},
	    {"bayarhook_http_requests_total", "out_of_order"},
	    {"bayarhook_http_requests_total", "bad_signature"},
	    {"bayarhook_http_requests_total", "stale_timestamp"},
	    {"bayarhook_http_requests_total", "malformed"},
	    {"bayarhook_http_requests_total", "forbidden"},
	    {"bayarhook_http_requests_total", "too_large"},
	    {"bayarhook_http_requests_total", "unsigned"},
	    {"bayarhook_http_requests_total", "unavailable"},
	    {"bayarhook_jobs", "pending"},
	    {"bayarhook_jobs", "running"},
	    {"bayarhook_jobs", "succeeded"},
	    {"bayarhook_jobs", "dead"},
	    {"bayarhook_jobs", "held"},
	    {"bayarhook_jobs", "cancelled"},
	    {"bayarhook_job_attempts_total", "succeeded"},
	    {"bayarhook_job_attempts_total", "failed"},
	    {"bayarhook_job_attempts_total", "timeout"},
	    {"bayarhook_reconciler_passes_total", "completed"},
	    {"bayarhook_reconciler_passes_total", "failed"},
	    {"bayarhook_database_up", NULL},
	    {"bayarhook_store_batches_total", NULL},
	    {"bayarhook_queue_depth", NULL},
	    {"bayarhook_reconciler_found_total", NULL},
	    {"bayarhook_missed_callbacks_total", NULL},
	    {"bayarhook_followup_checks_total", "recorded"},
	    {"bayarhook_followup_checks_total", "throttled"},
	    {"bayarhook_payments_flagged_total", NULL},
	    {"bayarhook_audit_suppressed_total", NULL},
	    {"bayarhook_jobs_oldest_pending_seconds", NULL},
	    {"bayarhook_reconcile_last_success_timestamp_seconds", NULL},
	    {"bayarhook_alerts_total", "job_dead"},
	    {"bayarhook_alerts_total", "payment_flagged"},
	    {"bayarhook_alerts_total", "missed_callback"},
	    {"bayarhook_alerts_total", "confirm_disagreed"},
	    {"bayarhook_alerts_total", "reconcile_failing"},
	    {"bayarhook_alerts_total", "database_down"},
	    {"bayarhook_ack_seconds_count", NULL},
	    {"bayarhook_ack_seconds_sum", NULL},
	    {"bayarhook_ack_seconds_bucket", "+Inf"},
	    {"bayarhook_store_batch_size_count", NULL},
	    {"bayarhook_metrics_dropped_total", NULL},
	};

	(void)state;
	render_and_parse();
	assert_int_equal(expo.nfamilies, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct family *f = family(want[i].name);

		if (f == NULL)
			fail_msg("family %s missing", want[i].name);
		assert_string_equal(f->type, want[i].type);
	}
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		assert_true(value(zero[i].name, zero[i].label) == 0);
}

enum op { INC, ADD, SET };

static void test_counters_and_gauges(void **state)
{
	static const struct {
		enum op op;
		enum metric m;
		const char *label;
		double v;
	} steps[] = {
	    {INC, METRIC_HTTP_REQUESTS, "accepted", 0},
	    {INC, METRIC_HTTP_REQUESTS, "accepted", 0},
	    {INC, METRIC_HTTP_REQUESTS, "bad_signature", 0},
	    {ADD, METRIC_HTTP_REQUESTS, "duplicate", 5},
	    {ADD, METRIC_HTTP_REQUESTS, "duplicate", -3}, /* counters never go down */
	    {INC, METRIC_STORE_BATCHES, NULL, 0},
	    {INC, METRIC_STORE_BATCHES, "ignored", 0}, /* unlabelled: label ignored */
	    {SET, METRIC_DATABASE_UP, NULL, 1},
	    {SET, METRIC_JOBS, "pending", 7},
	    {ADD, METRIC_JOBS, "pending", -2},
	    {SET, METRIC_QUEUE_DEPTH, NULL, 0.1},
	    {ADD, METRIC_RECONCILER_FOUND, NULL, 9007199254740992.0},
	    {INC, METRIC_RECONCILER_PASSES, "completed", 0},
	    {INC, METRIC_JOB_ATTEMPTS, "timeout", 0},
	};
	static const struct {
		const char *name, *label;
		double v;
	} want[] = {
	    {"bayarhook_http_requests_total", "accepted", 2},
	    {"bayarhook_http_requests_total", "bad_signature", 1},
	    {"bayarhook_http_requests_total", "duplicate", 5},
	    {"bayarhook_http_requests_total", "malformed", 0},
	    {"bayarhook_store_batches_total", NULL, 2},
	    {"bayarhook_database_up", NULL, 1},
	    {"bayarhook_jobs", "pending", 5},
	    {"bayarhook_jobs", "dead", 0},
	    {"bayarhook_queue_depth", NULL, 0.1},
	    {"bayarhook_reconciler_found_total", NULL, 9007199254740992.0},
	    {"bayarhook_reconciler_passes_total", "completed", 1},
	    {"bayarhook_job_attempts_total", "timeout", 1},
	    {"bayarhook_metrics_dropped_total", NULL, 0},
	};
	double before = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		switch (steps[i].op) {
		case INC:
			metrics_inc(steps[i].m, steps[i].label);
			break;
		case ADD:
			metrics_add(steps[i].m, steps[i].label, steps[i].v);
			break;
		case SET:
			metrics_set(steps[i].m, steps[i].label, steps[i].v);
			break;
		}
	}
	render_and_parse();
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (value(want[i].name, want[i].label) != want[i].v)
			fail_msg("%s{%s} = %.17g, want %.17g", want[i].name,
			         want[i].label != NULL ? want[i].label : "",
			         value(want[i].name, want[i].label), want[i].v);
	assert_true(metrics_get(METRIC_JOBS, "pending") == 5);
	assert_true(metrics_get(METRIC_JOBS, "nonexistent") == 0);

	/* counters only increase across renders */
	for (int round = 0; round < 3; round++) {
		double now;

		metrics_inc(METRIC_HTTP_REQUESTS, "too_large");
		render_and_parse();
		now = value("bayarhook_http_requests_total", "too_large");
		assert_true(now > before);
		before = now;
	}
	assert_true(before == 3);
}

static void test_histogram(void **state)
{
	static const double observations[] = {0.0005, 0.001, 0.003, 0.3, 7, 100, 0.001};
	static const struct {
		const char *le;
		double cumulative;
	} want[] = {
	    {"0.001", 3}, /* upper bounds are inclusive */
	    {"0.0025", 3}, {"0.005", 4}, {"0.01", 4}, {"0.025", 4}, {"0.05", 4}, {"0.1", 4},
	    {"0.25", 4},   {"0.5", 5},   {"1", 5},    {"2.5", 5},   {"5", 5},    {"+Inf", 7},
	};
	double sum = 0, prev = 0;
	size_t nbuckets = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(observations) / sizeof(observations[0]); i++) {
		metrics_observe(METRIC_ACK_SECONDS, observations[i]);
		sum += observations[i];
	}
	metrics_observe(METRIC_ACK_SECONDS, NAN); /* ignored */
	metrics_observe(METRIC_STORE_BATCH_SIZE, 3);
	render_and_parse();

	for (size_t i = 0; i < expo.nsamples; i++) {
		const struct sample *s = &expo.samples[i];

		if (strcmp(s->name, "bayarhook_ack_seconds_bucket") != 0)
			continue;
		if (strcmp(s->value, want[nbuckets].le) != 0)
			fail_msg("bucket %zu: le=\"%s\", want \"%s\"", nbuckets, s->value,
			         want[nbuckets].le);
		if (s->v != want[nbuckets].cumulative)
			fail_msg("bucket le=%s: %g, want %g", s->value, s->v,
			         want[nbuckets].cumulative);
		assert_true(s->v >= prev);
		prev = s->v;
		nbuckets++;
	}
	assert_int_equal(nbuckets, sizeof(want) / sizeof(want[0]));
	assert_true(value("bayarhook_ack_seconds_count", NULL) ==
	            value("bayarhook_ack_seconds_bucket", "+Inf"));
	assert_true(value("bayarhook_ack_seconds_count", NULL) == 7);
	assert_true(fabs(value("bayarhook_ack_seconds_sum", NULL) - sum) < 1e-9);
	assert_true(metrics_get(METRIC_ACK_SECONDS, NULL) == 7);

	assert_true(value("bayarhook_store_batch_size_bucket", "2") == 0);
	assert_true(value("bayarhook_store_batch_size_bucket", "4") == 1);
	assert_true(value("bayarhook_store_batch_size_count", NULL) ==
	            value("bayarhook_store_batch_size_bucket", "+Inf"));
	assert_true(value("bayarhook_store_batch_size_sum", NULL) == 3);
}

static void test_dynamic_labels(void **state)
{
	char label[METRICS_MAX_LABEL + 2];
	size_t len;
	char *text;
	int added = 0;

	(void)state;
	metrics_inc(METRIC_HTTP_REQUESTS, "a\"b\\c\nd");
	metrics_inc(METRIC_HTTP_REQUESTS, "caf\xc3\xa9");
	text = metrics_render(&len);
	assert_non_null(text);
	assert_non_null(
	    strstr(text, "bayarhook_http_requests_total{verdict=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(text);
	render_and_parse();
	assert_true(value("bayarhook_http_requests_total", "a\"b\\c\nd") == 1);
	assert_true(value("bayarhook_http_requests_total", "caf\xc3\xa9") == 1);

	/* rejected: not UTF-8, overlong encoding, too long */
	metrics_inc(METRIC_HTTP_REQUESTS, "\xff");
	metrics_inc(METRIC_HTTP_REQUESTS, "\xc0\xaf");
	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	metrics_inc(METRIC_HTTP_REQUESTS, label);
	assert_true(metrics_get(METRIC_DROPPED, NULL) == 3);

	/* 10 presets + 2 above: fill the rest, then one more is dropped */
	for (int i = 0; i < METRICS_MAX_SERIES; i++) {
		char v[16];

		snprintf(v, sizeof(v), "extra%d", i);
		metrics_inc(METRIC_HTTP_REQUESTS, v);
		if (metrics_get(METRIC_HTTP_REQUESTS, v) == 1)
			added++;
	}
	assert_int_equal(added, METRICS_MAX_SERIES - 12);
	render_and_parse();
	assert_true(value("bayarhook_metrics_dropped_total", NULL) == 3 + 12);
	assert_null(find("bayarhook_http_requests_total", "extra5"));
	/* existing series still count after the family is full */
	metrics_inc(METRIC_HTTP_REQUESTS, "accepted");
	assert_true(metrics_get(METRIC_HTTP_REQUESTS, "accepted") == 1);
}

static void test_init_and_numbers(void **state)
{
	double now = (double)time(NULL);

	(void)state;
	stats_init("0.1.0-\"rc\"");
	metrics_set(METRIC_QUEUE_DEPTH, NULL, 1e21);
	metrics_set(METRIC_DATABASE_UP, NULL, -INFINITY);
	render_and_parse();
	assert_true(value("bayarhook_build_info", "0.1.0-\"rc\"") == 1);
	assert_true(value("process_start_time_seconds", NULL) >= now - 5);
	assert_true(value("process_start_time_seconds", NULL) <= now + 5);
	assert_true(value("bayarhook_queue_depth", NULL) == 1e21);
	assert_true(isinf(value("bayarhook_database_up", NULL)));
	/* reset forgets everything, presets come back at zero */
	metrics_reset();
	render_and_parse();
	assert_null(find("bayarhook_build_info", "0.1.0-\"rc\""));
	assert_true(value("process_start_time_seconds", NULL) == 0);
}

/* Whole numbers print as integers: 10 is "10", never "1e+01". */
static void test_whole_numbers(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
	    {10, "10"},           {100, "100"},
	    {1000000, "1000000"}, {9007199254740992.0, "9007199254740992"},
	    {0.1, "0.1"},         {2.5, "2.5"},
	    {1e21, "1e+21"},
	};
	size_t len;
	char *text, want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stats_register();
		metrics_add(METRIC_HTTP_REQUESTS, "accepted", cases[i].v);
		metrics_set(METRIC_QUEUE_DEPTH, NULL, cases[i].v);
		text = metrics_render(&len);
		snprintf(want, sizeof(want),
		         "bayarhook_http_requests_total{verdict=\"accepted\"} %s\n", cases[i].text);
		if (strstr(text, want) == NULL)
			fail_msg("%.17g: no line \"%s\" in\n%s", cases[i].v, want, text);
		snprintf(want, sizeof(want), "\nbayarhook_queue_depth %s\n", cases[i].text);
		assert_non_null(strstr(text, want));
		free(text);
	}
}

/* The registry knows nothing of bayarhook: any table can be registered. */
static void test_own_table(void **state)
{
	static const char *const colours[] = {"red", NULL};
	static const double bounds[] = {1, 10};
	static const struct metrics_family table[] = {
	    {"t_events_total", "Events.", METRICS_COUNTER, "colour", colours, NULL, 0},
	    {"t_size", "Sizes.", METRICS_HISTOGRAM, NULL, NULL, bounds, 2},
	};
	char label[METRICS_MAX_LABEL + 2];
	size_t len;
	char *text;

	(void)state;
	metrics_register(table, 2, METRICS_NO_FAMILY);
	metrics_inc(0, "blue");
	metrics_observe(1, 5);
	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	metrics_inc(0, label); /* dropped, and no family to count it */
	metrics_inc(7, "red"); /* not a family: ignored */
	render_and_parse();
	assert_int_equal(expo.nfamilies, 2);
	assert_true(value("t_events_total", "red") == 0);
	assert_true(value("t_events_total", "blue") == 1);
	assert_true(value("t_size_bucket", "1") == 0);
	assert_true(value("t_size_bucket", "10") == 1);
	assert_true(value("t_size_count", NULL) == 1);
	assert_null(find("bayarhook_metrics_dropped_total", NULL));

	metrics_register(table, 0, METRICS_NO_FAMILY);
	text = metrics_render(&len);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_all_families_at_zero, setup),
	    cmocka_unit_test_setup(test_counters_and_gauges, setup),
	    cmocka_unit_test_setup(test_histogram, setup),
	    cmocka_unit_test_setup(test_dynamic_labels, setup),
	    cmocka_unit_test_setup(test_init_and_numbers, setup),
	    cmocka_unit_test_setup(test_whole_numbers, setup),
	    cmocka_unit_test_setup(test_own_table, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
