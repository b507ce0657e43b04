/*
 * callback.c: the verdict of one callback request. Checks run in the order
 * that tells a client the least it should not know: shape first (400), then
 * the signature (401), then the replay window (401), so that a forger learns
 * nothing about the window and a replayed genuine callback is named stale.
 * Every verdict goes to the store, which audits it; only a verified event can
 * change a payment, and its 200 waits for the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <event2/http.h>

#include "callback.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "verify.h"

struct pending {
	callback_reply_cb reply;
	void *arg;
	char *verdict; /* set when refused before storage */
	char *error;
	char invoice[128];
	struct timespec started;
};

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void callback_answer_for(const char *verdict, const char *error, struct callback_answer *ans,
                         char *buf, size_t buflen)
{
	memset(ans, 0, sizeof(*ans));
	ans->body = buf;
	if (strcmp(verdict, "accepted") == 0 || strcmp(verdict, "out_of_order") == 0) {
		ans->status = 200;
		snprintf(buf, buflen, "{\"success\":true}");
		return;
	}
	if (strcmp(verdict, "duplicate") == 0) {
		ans->status = 200;
		snprintf(buf, buflen, "{\"success\":true,\"duplicate\":true}");
		return;
	}
	if (strcmp(verdict, "unavailable") == 0) {
		ans->status = 503;
		ans->retry_after = 5;
		snprintf(buf, buflen,
		         "{\"success\":false,\"error\":\"temporarily unavailable, retry later\"}");
		return;
	}
	if (strcmp(verdict, "bad_signature") == 0)
		ans->status = 401;
	else if (strcmp(verdict, "stale_timestamp") == 0)
		ans->status = 401;
	else if (strcmp(verdict, "forbidden") == 0)
		ans->status = 403;
	else if (strcmp(verdict, "too_large") == 0)
		ans->status = 413;
	else
		ans->status = 400;
	{
		cJSON *o = cJSON_CreateObject();
		char *text;

		cJSON_AddFalseToObject(o, "success");
		cJSON_AddStringToObject(o, "error", error ? error : verdict);
		text = cJSON_PrintUnformatted(o);
		snprintf(buf, buflen, "%s", text ? text : "{\"success\":false}");
		free(text);
		cJSON_Delete(o);
	}
}

static void finish(struct pending *p, const char *verdict)
{
	struct callback_answer ans;
	char buf[512];
	const char *fields[4];
	char f_inv[160], f_verdict[48];

	callback_answer_for(verdict, p->error, &ans, buf, sizeof(buf));
	if (p->verdict && strcmp(p->verdict, "malformed") == 0 && p->error &&
	    strcmp(p->error, "method not allowed") == 0) {
		ans.status = 405;
		ans.allow_post = true;
	}
	snprintf(f_inv, sizeof(f_inv), "INVOICE_ID=%s", p->invoice);
	snprintf(f_verdict, sizeof(f_verdict), "VERDICT=%s", verdict);
	fields[0] = f_inv;
	fields[1] = f_verdict;
	fields[2] = NULL;
	log_fields(ans.status >= 500 ? LOG_WARNING : LOG_INFO, fields, "callback status=%d%s%s",
	           ans.status, p->error ? " error=" : "", p->error ? p->error : "");
	metrics_inc(METRIC_HTTP_REQUESTS, verdict);
	metrics_observe_ack(since(&p->started));
	p->reply(&ans, p->arg);
	free(p->verdict);
	free(p->error);
	free(p);
}

static void stored(enum store_outcome outcome, const char *verdict, void *arg)
{
	struct pending *p = arg;

	if (outcome == STORE_COMMITTED)
		finish(p, verdict);
	else
		/* A refusal stands even when its audit row could not be written. */
		finish(p, p->verdict ? p->verdict : "unavailable");
}

/* Text safe for a PostgreSQL text/jsonb value: valid UTF-8, no NUL. */
static char *sanitize(const char *s, size_t len)
{
	char *out = malloc(len * 3 + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = 1;
		unsigned char c = (unsigned char)s[i];

		if (c >= 0xc2 && c <= 0xf4)
			n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		if (c != 0 && (c < 0x80 || (n > 1 && i + n <= len && utf8_valid(s + i, n)))) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
			o += 3;
			i++;
		}
	}
	*o = '\0';
	return out;
}

static cJSON *headers_json(const struct evkeyvalq *headers)
{
	cJSON *o = cJSON_CreateObject();
	const struct evkeyval *kv;

	if (o == NULL || headers == NULL)
		return o;
	TAILQ_FOREACH(kv, headers, next)
	{
		char *k = sanitize(kv->key, strlen(kv->key));
		char *v = sanitize(kv->value, strlen(kv->value));

		if (k && v) {
			/* Keep the first of repeated headers; evhttp answers with it too. */
			if (!cJSON_HasObjectItem(o, k))
				cJSON_AddStringToObject(o, k, v);
		}
		free(k);
		free(v);
	}
	return o;
}

static void submit(const struct config *cfg, struct store *st, const struct callback_request *req,
                   struct pending *p, cJSON *item, int http_status)
{
	char *body = sanitize(req->body ? req->body : "", req->body ? req->body_len : 0);

	(void)cfg;
	if (item == NULL)
		item = cJSON_CreateObject();
	if (p->verdict) {
		struct callback_answer ans;
		char buf[512];

		callback_answer_for(p->verdict, p->error, &ans, buf, sizeof(buf));
		cJSON_AddStringToObject(item, "verdict", p->verdict);
		cJSON_AddNumberToObject(item, "http_status",
		                        http_status ? http_status : ans.status);
		if (p->error)
			cJSON_AddStringToObject(item, "error", p->error);
	}
	if (req->remote_addr)
		cJSON_AddStringToObject(item, "remote_addr", req->remote_addr);
	if (req->peer_addr)
		cJSON_AddStringToObject(item, "peer_addr", req->peer_addr);
	if (req->method)
		cJSON_AddStringToObject(item, "method", req->method);
	cJSON_AddItemToObject(item, "headers", headers_json(req->headers));
	if (body)
		cJSON_AddStringToObject(item, "body", body);
	free(body);
	if (store_submit(st, item, stored, p) < 0)
		stored(STORE_FAILED, NULL, p);
}

/* A request refused before it could become an event: audit and answer. */
static void refuse(const struct config *cfg, struct store *st, const struct callback_request *req,
                   struct pending *p, const char *verdict, const char *error, cJSON *item,
                   int http_status)
{
	p->verdict = strdup(verdict);
	p->error = error ? strdup(error) : NULL;
	submit(cfg, st, req, p, item, http_status);
}

static const char *header(const struct callback_request *req, const char *name)
{
	return req->headers ? evhttp_find_header(req->headers, name) : NULL;
}

/* Partial facts of a refused event still help the audit: invoice, status. */
static cJSON *partial_item(const struct pay_event *ev)
{
	cJSON *item = cJSON_CreateObject();

	if (item && ev->invoice_id)
		cJSON_AddStringToObject(item, "invoice_id", ev->invoice_id);
	if (item && ev->status_text)
		cJSON_AddStringToObject(item, "status", ev->status_text);
	if (item && ev->event_name)
		cJSON_AddStringToObject(item, "event_name", ev->event_name);
	return item;
}

void callback_handle(const struct config *cfg, struct store *st, const struct callback_request *req,
                     callback_reply_cb reply, void *arg)
{
	struct pending *p = calloc(1, sizeof(*p));
	struct pay_event ev;
	const char *err = NULL, *xinv, *sig, *ts;
	char sigbuf[160];
	cJSON *item;

	if (p == NULL) {
		struct callback_answer ans;
		char buf[256];

		callback_answer_for("unavailable", NULL, &ans, buf, sizeof(buf));
		reply(&ans, arg);
		return;
	}
	p->reply = reply;
	p->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &p->started);

	if (req->refused) {
		if (strcmp(req->refused, "forbidden") == 0)
			refuse(cfg, st, req, p, "forbidden", "forbidden", NULL, 403);
		else if (strcmp(req->refused, "too_large") == 0)
			refuse(cfg, st, req, p, "too_large", "body too large", NULL, 413);
		else
			refuse(cfg, st, req, p, "malformed", "method not allowed", NULL, 405);
		return;
	}
	{
		const char *ct = header(req, "Content-Type");

		/* A missing type is tolerated; a different one is not JSON. */
		if (ct && strncasecmp(ct, "application/json", 16) != 0) {
			refuse(cfg, st, req, p, "malformed",
			       "content type must be application/json", NULL, 400);
			return;
		}
	}
	memset(&ev, 0, sizeof(ev));
	if (event_parse(&ev, req->body, req->body_len, &err) < 0) {
		item = partial_item(&ev);
		refuse(cfg, st, req, p, "malformed", err, item, 400);
		event_release(&ev);
		return;
	}
	snprintf(p->invoice, sizeof(p->invoice), "%s", ev.invoice_id);
	xinv = header(req, "X-Invoice-ID");
	if (xinv && strcmp(xinv, ev.invoice_id) != 0) {
		refuse(cfg, st, req, p, "malformed", "X-Invoice-ID does not match invoice_id",
		       partial_item(&ev), 400);
		event_release(&ev);
		return;
	}
	ts = header(req, "X-Webhook-Timestamp");
	if (ts == NULL && ev.body_timestamp[0])
		ts = ev.body_timestamp;
	sig = header(req, "X-Webhook-Signature");
	if (sig == NULL)
		sig = ev.body_signature;
	if (ts == NULL || *ts == '\0') {
		refuse(cfg, st, req, p, "stale_timestamp", "timestamp outside replay window",
		       partial_item(&ev), 401);
		event_release(&ev);
		return;
	}
	if (sig == NULL ||
	    verify_signature((const char *const *)cfg->secrets, cfg->nsecrets, ev.invoice_id,
	                     ev.status_text, ev.final_amount, ts, sig) < 0) {
		refuse(cfg, st, req, p, "bad_signature", "invalid signature", partial_item(&ev),
		       401);
		event_release(&ev);
		return;
	}
	snprintf(sigbuf, sizeof(sigbuf), "%s", ts);
	if (!verify_timestamp(sigbuf, (int64_t)time(NULL), cfg->replay_window)) {
		refuse(cfg, st, req, p, "stale_timestamp", "timestamp outside replay window",
		       partial_item(&ev), 401);
		event_release(&ev);
		return;
	}
	if (ev.status == STATUS_UNKNOWN) {
		refuse(cfg, st, req, p, "malformed", "unknown status", partial_item(&ev), 400);
		event_release(&ev);
		return;
	}
	{
		/* event_parse accepted exactly these bytes (valid JSON, no NUL). */
		char *raw = strndup(req->body, req->body_len);

		item = raw ? store_item_for_event(&ev, "callback", raw) : NULL;
		free(raw);
	}
	/* confirm_with_api: the jobs wait until check-payment agrees (confirm.c). */
	if (item && cfg->confirm_with_api)
		cJSON_AddTrueToObject(item, "hold");
	event_release(&ev);
	submit(cfg, st, req, p, item, 0);
}
