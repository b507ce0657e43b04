/*
 * action_forward.c: the forward action. POSTs the event JSON to the shop's
 * own handler. With sign = bayar the request is what bayar.gg itself would
 * send: the same headers, and a fresh timestamp and signature (in the
 * headers and in the body) over invoice_id|status|final_amount|timestamp,
 * so the handler from the bayar.gg docs accepts it unchanged. The texts
 * signed are the ones PHP's json_decode makes of the body sent, since the
 * body keeps the stored literals of every other field. A 2xx answer
 * succeeds; 400, 401, 403, 404, 410 and 422 fail for good (the job is dead
 * at once); anything else is retried.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "action_forward.h"

#include "action_http.h"
#include "action_run.h"
#include "http_client.h"
#include "verify.h"
#include "xmalloc.h"

#define FORWARD_OUTPUT_MAX 8192 /* bytes of the answer kept */

struct forward_action {
	char *url;
	bool sign_bayar;
	char *secret;               /* the action's, or the current webhook secret at load */
	struct http_client *client; /* its own, for a ca_file; NULL: the context's */
};

static int forward_prepare(struct action *a, const struct config *cfg, const struct action_conf *ac,
                           char *err, size_t errlen)
{
	struct forward_action *f = xcalloc(1, sizeof(*f));
	const char *secret = ac->secret;

	a->priv = f;
	if (secret == NULL && cfg->nsecrets > 0)
		secret = cfg->secrets[0];
	if (ac->sign_bayar && (secret == NULL || *secret == '\0')) {
		snprintf(err, errlen, "secret_file: no secret to sign with");
		return -1;
	}
	f->sign_bayar = ac->sign_bayar;
	f->url = xstrdup(ac->url);
	/* A reference into the config's secret store, not a copy (it outlives the config). */
	if (secret != NULL)
		f->secret = config_secret_ref(secret);
	return action_http_ca_client(a, cfg, ac->ca_file, &f->client, err, errlen);
}

static void forward_release(struct action *a)
{
	struct forward_action *f = a->priv;

	if (f == NULL)
		return;
	free(f->url);
	config_secret_unref(f->secret);
	http_client_free(f->client);
	free(f);
}

static void forward_done(const struct http_client_resp *resp, void *arg)
{
	struct action_run *run = arg;
	struct forward_action *f = run->action->priv;
	struct action_result res;
	char msg[512];

	run->priv = NULL; /* the call ends with this callback */
	if (action_http_result(&res, resp, FORWARD_OUTPUT_MAX, msg, sizeof(msg)))
		snprintf(msg, sizeof(msg), "HTTP %d from %s", resp->status, f->url);
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
	if (xasprintf(&out, "%.*s%s\"timestamp\": %s, \"signature\": \"%s\"}", (int)n, bare,
	              empty ? "" : ", ", ts, sig) < 0)
		return NULL;
	return out;
}

/*
 * A header value from an event field: the unsigned "event" (or anything in
 * the body) may hold control bytes, which the HTTP client refuses as header
 * injection, and the job would fail on every attempt. Each becomes '?', so
 * that the value cannot turn into another valid one either.
 */
static char *header_value(const char *field)
{
	char *v = xstrdup(field);

	for (char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	return v;
}

static int forward_start(struct action_run *run, char *err, size_t errlen)
{
	struct forward_action *f = run->action->priv;
	struct http_client_req req;
	const char *headers[20]; /* 8 pairs at most, and the NULL */
	char ts[32], sig[65], event_name[128], *body = NULL, *ev_header, *inv_header;
	size_t h = 0;
	int rc = -1;

	if (run->ev.event_name != NULL)
		snprintf(event_name, sizeof(event_name), "%s", run->ev.event_name);
	else
		snprintf(event_name, sizeof(event_name), "payment.%s", run->ev.status_text);
	ev_header = header_value(event_name);
	inv_header = header_value(run->ev.invoice_id);
	headers[h++] = "Content-Type";
	headers[h++] = "application/json";
	headers[h++] = "X-Webhook-Event";
	headers[h++] = ev_header;
	if (f->sign_bayar) {
		snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
		verify_sign(f->secret, run->ev.invoice_id, run->ev.status_text,
		            run->ev.final_amount, ts, sig);
		body = signed_body(run->event_bare, ts, sig);
		if (body == NULL) {
			snprintf(err, errlen, "stored event unusable: not a JSON object");
			goto out;
		}
		headers[h++] = "X-Webhook-Signature";
		headers[h++] = sig;
		headers[h++] = "X-Webhook-Timestamp";
		headers[h++] = ts;
	}
	headers[h++] = "X-Invoice-ID";
	headers[h++] = inv_header;
	/* For a handler that must not act twice: forwards are at least once. */
	headers[h++] = "X-Bayarhook-Job-Id";
	headers[h++] = run->job_id;
	/* SPEC §12: the same across retries and reruns, new for a replay. */
	headers[h++] = "Idempotency-Key";
	headers[h++] = run->idempotency_key;
	/* SPEC §7: the reason a payment needs a look (a late paid); absent when none. */
	if (run->flag != NULL && run->flag[0] != '\0') {
		headers[h++] = "X-Bayarhook-Flagged";
		headers[h++] = run->flag;
	}
	headers[h] = NULL;

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = f->url;
	req.headers = headers;
	req.body = body ? body : run->event;
	req.body_len = strlen(req.body);
	req.timeout_sec = run->action->timeout;
	req.max_response = 1024 * 1024;
	/* Bad URLs and the like come back through forward_done, from the loop. */
	run->priv = http_client_request(f->client ? f->client : action_ctx_http(run->ctx), &req,
	                                forward_done, run);
	if (run->priv == NULL)
		snprintf(err, errlen, "cannot start the request");
	else
		rc = 0;
out:
	free(body);
	free(ev_header);
	free(inv_header);
	return rc;
}

/* The request is abandoned: its connection closed, its callback dropped. */
static void forward_stop(struct action_run *run)
{
	http_client_cancel(run->priv);
	run->priv = NULL;
}

const struct action_ops action_forward_ops = {
    .name = "forward",
    .prepare = forward_prepare,
    .release = forward_release,
    .start = forward_start,
    .stop = forward_stop,
    .cancellable = true,
};
