/*
 * test_action.c: the action layer through its public interface (action.h),
 * on a real event loop and without a database: the registry's errors, the
 * rule that a completion never comes before action_start() returns, cancel
 * and shutdown without callbacks. Exec and forward runs only; sql runs need
 * PostgreSQL and are covered by the integration tests.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "action.h"
#include "config.h"
#include "proc.h"

#define SECRET "[security]\nwebhook_secret = whsec_test\n"
#define EVENT "{\"invoice_id\": \"PAY-1\", \"status\": \"paid\", \"final_amount\": 50123}"

struct seen {
	int calls;
	enum action_outcome outcome;
	int exit_code;
	char error[512];
	char output[256];
	struct event_base *base;
};

static void done_cb(struct action_run *run, const struct action_result *res, void *arg)
{
	struct seen *s = arg;

	assert_non_null(run);
	s->calls++;
	s->outcome = res->outcome;
	s->exit_code = res->exit_code;
	snprintf(s->error, sizeof(s->error), "%s", res->error ? res->error : "");
	snprintf(s->output, sizeof(s->output), "%.*s", (int)res->output_len, res->output);
	event_base_loopexit(s->base, NULL);
}

static struct config *load(const char *text)
{
	char err[512];
	struct config *cfg = config_load_buffer("mem.conf", text, strlen(text), err, sizeof(err));

	if (cfg == NULL)
		fail_msg("config: %s", err);
	return cfg;
}

static void test_check_config_errors(void **state)
{
	static const struct {
		const char *conf;
		const char *err; /* NULL: valid */
	} cases[] = {
	    {SECRET "[action.a]\ntype = exec\ncommand = /bin/echo {invoice_id}\n", NULL},
	    {SECRET "[action.a]\ntype = exec\ncommand = /bin/echo 'open\n",
	     "mem.conf:3: command: "},
	    {SECRET "[action.a]\ntype = sql\nstatement = SELECT $1\n",
	     "mem.conf:3: statement: positional parameter"},
	    /* Checked, not connected: nothing listens there. */
	    {SECRET "[action.a]\ntype = sql\nconninfo = host=/nonexistent\n"
	            "statement = SELECT :invoice_id\n",
	     NULL},
	    {SECRET "[action.a]\ntype = forward\nurl = http://127.0.0.1:1/\nsign = bayar\n", NULL},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = load(cases[i].conf);
		int rc;

		err[0] = '\0';
		rc = action_check_config(cfg, err, sizeof(err));
		if (cases[i].err == NULL) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err);
		} else {
			assert_int_equal(rc, -1);
			if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
				fail_msg("case %zu: \"%s\" does not start with \"%s\"", i, err,
				         cases[i].err);
		}
		config_free(cfg);
	}
}

struct fx {
	struct event_base *base;
	struct action_ctx *ctx;
	struct config *cfg;
	struct action_set *set;
};

static struct fx *fx_new(const char *actions)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char text[1024], err[512];

	assert_non_null(fx);
	snprintf(text, sizeof(text), "%s%s", SECRET, actions);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	assert_int_equal(proc_init(fx->base), 0);
	fx->cfg = load(text);
	fx->ctx = action_ctx_new(fx->base, "host=/nonexistent");
	fx->set = action_set_new(fx->ctx, fx->cfg, err, sizeof(err));
	if (fx->set == NULL)
		fail_msg("action_set_new: %s", err);
	return fx;
}

static void fx_free(struct fx *fx)
{
	action_set_free(fx->set);
	action_ctx_free(fx->ctx);
	proc_fini();
	/* Let the closed pipes' and the abandoned lookups' frees run. */
	for (int i = 0; i < 4; i++)
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	config_free(fx->cfg);
	event_base_free(fx->base);
	free(fx);
}

static struct action_run *start(struct fx *fx, const char *name, struct seen *s)
{
	struct action_job job = {.id = "7", .attempt = 1, .source = "callback", .event = EVENT};
	struct action *a = action_set_find(fx->set, name);
	struct action_run *run;
	char err[256];

	assert_non_null(a);
	memset(s, 0, sizeof(*s));
	s->base = fx->base;
	run = action_start(fx->ctx, a, &job, NULL, NULL, done_cb, s, err, sizeof(err));
	if (run == NULL)
		fail_msg("action_start: %s", err);
	/* The rule: never a completion before the call that started it returns. */
	assert_int_equal(s->calls, 0);
	return run;
}

static void run_loop(struct fx *fx, int sec)
{
	struct timeval tv = {sec, 0};

	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
}

static void test_exec_outcomes(void **state)
{
	struct fx *fx = fx_new("[action.ok]\ntype = exec\ncommand = /bin/echo {invoice_id}\n"
	                       "[action.bad]\ntype = exec\ncommand = /bin/false\n");
	struct seen s;

	(void)state;
	(void)start(fx, "ok", &s);
	run_loop(fx, 10);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.outcome, ACTION_SUCCEEDED);
	assert_int_equal(s.exit_code, 0);
	assert_string_equal(s.output, "PAY-1\n");

	(void)start(fx, "bad", &s);
	run_loop(fx, 10);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.outcome, ACTION_FAILED);
	assert_int_equal(s.exit_code, 1);
	assert_string_equal(s.error, "exit status 1");
	assert_int_equal(action_running(fx->ctx), 0);
	fx_free(fx);
}

static void test_cancel_and_shutdown(void **state)
{
	struct fx *fx = fx_new("[action.slow]\ntype = exec\ncommand = /bin/sleep 30\n"
	                       "[action.fwd]\ntype = forward\ntimeout = 30\n"
	                       "url = http://192.0.2.1/hook\n");
	struct seen s1, s2, s3;
	struct action_run *r1, *r2;

	(void)state;
	r1 = start(fx, "slow", &s1);
	r2 = start(fx, "fwd", &s2);
	(void)start(fx, "slow", &s3);
	assert_int_equal(action_running(fx->ctx), 3);
	assert_true(action_cancel(r1));
	assert_true(action_cancel(r2));
	assert_int_equal(action_running(fx->ctx), 1);
	run_loop(fx, 1);
	assert_int_equal(s1.calls + s2.calls + s3.calls, 0);
	/* The third is still running: shutdown stops it without a callback. */
	fx_free(fx);
	assert_int_equal(s3.calls, 0);
	assert_int_equal(proc_count(), 0);
}

static void test_forward_refused_from_the_loop(void **state)
{
	struct fx *fx = fx_new("[action.fwd]\ntype = forward\nurl = http://127.0.0.1:0/\n");
	struct seen s;

	(void)state;
	(void)start(fx, "fwd", &s);
	run_loop(fx, 5);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.outcome, ACTION_FAILED);
	assert_non_null(strstr(s.error, "bad port"));
	fx_free(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_config_errors),
	    cmocka_unit_test(test_exec_outcomes),
	    cmocka_unit_test(test_cancel_and_shutdown),
	    cmocka_unit_test(test_forward_refused_from_the_loop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
