/*
 * action_forward.c: the forward action. POSTs the event JSON to the shop's
 * own handler. With sign = bayar the request is what bayar.gg itself would
 * send: the same headers, and a fresh timestamp and signature (in the
 * headers and in the body) over invoice_id|status|final_amount|timestamp,
 * so the handler from the bayar.gg docs accepts it unchanged. The texts
 * signed are the ones PHP's json_decode makes of the body sent, since the
 * body keeps the stored literals of every other field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "action_int.h"
#include "http_client.h"
#include "verify.h"

#define FORWARD_OUTPUT_MAX 8192 /* bytes of the answer kept */

static void forward_done(const struct http_client_resp *resp, void *arg)
{
	struct action_run *run = arg;
	struct action_result res;
	char msg[512];

	memset(&res, 0, sizeof(res));
	res.exit_code = -1;
	res.row_count = -1;
	res.http_status = resp->status;
	res.output = resp->body ? resp->body : "";
	res.output_len = resp->body ? resp->body_len : 0;
	if (res.output_len > FORWARD_OUTPUT_MAX)
		res.output_len = FORWARD_OUTPUT_MAX;
	if (resp->error != NULL) {
		res.outcome =
		    resp->kind == HTTP_CLIENT_ERR_TIMEOUT ? ACTION_TIMEOUT : ACTION_FAILED;
		snprintf(msg, sizeof(msg), "%s", resp->error);
		res.error = msg;
	} else if (resp->status >= 200 && resp->status <= 299) {
		res.outcome = ACTION_SUCCEEDED;
	} else {
		res.outcome = ACTION_FAILED;
		snprintf(msg, sizeof(msg), "HTTP %d from %s", resp->status, run->action->url);
		res.error = msg;
	}
	action_run_finish(run, &res);
}

/* bare is an object's text without timestamp and signature; adds both at its end. */
static char *signed_body(const char *bare, const char *ts, const char *sig)
{
	size_t n = strlen(bare);
	char *out;
	bool empty;

	while (n > 0 && bare[n - 1] != '}')
		n--;
	if (n == 0)
		return NULL;
	n--; /* the closing brace */
	empty = strspn(bare, "{ \t\r\n") >= n;
	if (asprintf(&out, "%.*s%s\"timestamp\": %s, \"signature\": \"%s\"}", (int)n, bare,
	             empty ? "" : ", ", ts, sig) < 0)
		return NULL;
	return out;
}

int action_forward_start(struct action_run *run, char *err, size_t errlen)
{
	struct action *a = run->action;
	struct action_ctx *ctx = run->ctx;
	struct http_client_req req;
	const char *headers[16];
	char ts[32], sig[65], event_name[128], *body = NULL;
	size_t h = 0;
	bool started;

	if (ctx->http == NULL && (ctx->http = http_client_new(ctx->base, NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (run->ev.event_name != NULL)
		snprintf(event_name, sizeof(event_name), "%s", run->ev.event_name);
	else
		snprintf(event_name, sizeof(event_name), "payment.%s", run->ev.status_text);
	headers[h++] = "Content-Type";
	headers[h++] = "application/json";
	headers[h++] = "X-Webhook-Event";
	headers[h++] = event_name;
	if (a->sign_bayar) {
		snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
		verify_sign(a->secret, run->ev.invoice_id, run->ev.status_text,
		            run->ev.final_amount, ts, sig);
		body = signed_body(run->event_bare, ts, sig);
		if (body == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		headers[h++] = "X-Webhook-Signature";
		headers[h++] = sig;
		headers[h++] = "X-Webhook-Timestamp";
		headers[h++] = ts;
	}
	headers[h++] = "X-Invoice-ID";
	headers[h++] = run->ev.invoice_id;
	/* For a handler that must not act twice: forwards are at least once. */
	headers[h++] = "X-Bayarhook-Job-Id";
	headers[h++] = run->job_id;
	headers[h] = NULL;

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = a->url;
	req.headers = headers;
	req.body = body ? body : run->event;
	req.body_len = strlen(req.body);
	req.timeout_sec = a->timeout;
	req.max_response = 1024 * 1024;
	started = http_client_request(ctx->http, &req, forward_done, run) != NULL;
	free(body);
	if (!started) {
		snprintf(err, errlen, "cannot start the request");
		return -1;
	}
	return 0;
}
