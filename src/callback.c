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
#include "jsonw.h"
#include "log.h"
#include "stats.h"
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
	metrics_observe(METRIC_ACK_SECONDS, since(&p->started));
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

/* The request's headers as an object; the first of repeated names is kept, as evhttp does. */
static void write_headers(struct jsonw *w, const struct evkeyvalq *headers)
{
	const struct evkeyval *kv, *prev;

	jsonw_begin_object(w, "headers");
	if (headers != NULL) {
		TAILQ_FOREACH(kv, headers, next)
		{
			for (prev = TAILQ_FIRST(headers); prev != kv; prev = TAILQ_NEXT(prev, next))
				if (strcmp(prev->key, kv->key) == 0)
					break;
			if (prev == kv)
				jsonw_cstr(w, kv->key, kv->value);
		}
	}
	jsonw_end_object(w);
}

/*
 * Audits the request and, for a verified event, records it; the answer
 * follows in stored(). ev is the verified event (verified) or what could be
 * read of a refused one (its invoice, status and event name help the audit),
 * or NULL.
 */
static void submit(const struct config *cfg, struct store *st, const struct callback_request *req,
                   struct pending *p, const struct pay_event *ev, bool verified, int http_status)
{
	struct jsonw w;
	char *body = NULL;

	jsonw_begin(&w);
	if (verified) {
		/*
		 * event_parse accepted exactly these bytes (valid JSON and UTF-8,
		 * no NUL): they go to the store apart, as the body and the event.
		 */
		if ((body = malloc(req->body_len + 1)) == NULL)
			w.failed = true;
		else
			memcpy(body, req->body, req->body_len);
		store_write_event(&w, ev, "callback", NULL, 0);
		/* confirm_with_api: the jobs wait until check-payment agrees (confirm.c). */
		if (cfg->confirm_with_api)
			jsonw_bool(&w, "hold", true);
	} else if (ev != NULL) {
		jsonw_cstr(&w, "invoice_id", ev->invoice_id);
		jsonw_cstr(&w, "status", ev->status_text);
		jsonw_cstr(&w, "event_name", ev->event_name);
	}
	if (p->verdict) {
		struct callback_answer ans;
		char buf[512];

		callback_answer_for(p->verdict, p->error, &ans, buf, sizeof(buf));
		jsonw_cstr(&w, "verdict", p->verdict);
		jsonw_int(&w, "http_status", http_status ? http_status : ans.status);
		jsonw_cstr(&w, "error", p->error);
	}
	jsonw_cstr(&w, "remote_addr", req->remote_addr);
	jsonw_cstr(&w, "peer_addr", req->peer_addr);
	jsonw_cstr(&w, "method", req->method);
	write_headers(&w, req->headers);
	if (!verified)
		jsonw_str(&w, "body", req->body ? req->body : "", req->body ? req->body_len : 0);
	if (store_submit(st, jsonw_finish(&w), body, verified ? req->body_len : 0, stored, p) < 0)
		stored(STORE_FAILED, NULL, p);
}

/* A request refused before it could become an event: audit and answer. */
static void refuse(const struct config *cfg, struct store *st, const struct callback_request *req,
                   struct pending *p, const char *verdict, const char *error,
                   const struct pay_event *ev, int http_status)
{
	p->verdict = strdup(verdict);
	p->error = error ? strdup(error) : NULL;
	submit(cfg, st, req, p, ev, false, http_status);
}

static const char *header(const struct callback_request *req, const char *name)
{
	return req->headers ? evhttp_find_header(req->headers, name) : NULL;
}

void callback_handle(const struct config *cfg, struct store *st, const struct callback_request *req,
                     callback_reply_cb reply, void *arg)
{
	struct pending *p = calloc(1, sizeof(*p));
	struct pay_event ev;
	const char *err = NULL, *xinv, *sig, *ts;
	char sigbuf[160];

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
		refuse(cfg, st, req, p, "malformed", err, &ev, 400);
		event_release(&ev);
		return;
	}
	snprintf(p->invoice, sizeof(p->invoice), "%s", ev.invoice_id);
	xinv = header(req, "X-Invoice-ID");
	if (xinv && strcmp(xinv, ev.invoice_id) != 0) {
		refuse(cfg, st, req, p, "malformed", "X-Invoice-ID does not match invoice_id", &ev,
		       400);
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
		refuse(cfg, st, req, p, "stale_timestamp", "timestamp outside replay window", &ev,
		       401);
		event_release(&ev);
		return;
	}
	if (sig == NULL ||
	    verify_signature((const char *const *)cfg->secrets, cfg->nsecrets, ev.invoice_id,
	                     ev.status_text, ev.final_amount, ts, sig) < 0) {
		refuse(cfg, st, req, p, "bad_signature", "invalid signature", &ev, 401);
		event_release(&ev);
		return;
	}
	snprintf(sigbuf, sizeof(sigbuf), "%s", ts);
	if (!verify_timestamp(sigbuf, (int64_t)time(NULL), cfg->replay_window)) {
		refuse(cfg, st, req, p, "stale_timestamp", "timestamp outside replay window", &ev,
		       401);
		event_release(&ev);
		return;
	}
	if (ev.status == STATUS_UNKNOWN) {
		refuse(cfg, st, req, p, "malformed", "unknown status", &ev, 400);
		event_release(&ev);
		return;
	}
	submit(cfg, st, req, p, &ev, true, 0);
	event_release(&ev);
}
