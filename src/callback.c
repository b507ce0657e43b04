/*
 * callback.c: the life of one callback request. decision.c says what it
 * is; every request goes to the store, which audits it; only a verified
 * event can change a payment, and its 200 waits for the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit_refusal.h"
#include "callback.h"
#include "decision.h"
#include "jsonw.h"
#include "log.h"
#include "stats.h"
#include "xmalloc.h"

struct pending {
	callback_reply_cb reply;
	void *arg;
	/* REASON_NONE: a verified (or unsigned) event went to the store */
	enum verdict_reason refused;
	bool is_unsigned;     /* unsigned = confirm, no signature: audited only */
	bool signature_valid; /* the signature verified (also when then stale) */
	int secret_index;     /* which secret verified it; -1: none */
	char message[128];    /* the refusal's public text; "" when verified */
	/* Whole (the follow-up hook asks about it), so as long as event.c allows. */
	char invoice[EVENT_MAX_INVOICE_ID + 1];
	struct timespec started;
};

static callback_followup_cb followup_cb;
static void *followup_arg;

void callback_set_followup(callback_followup_cb cb, void *arg)
{
	followup_cb = cb;
	followup_arg = arg;
}

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void callback_answer_for(enum verdict v, enum verdict_reason why, const char *message,
                         struct callback_answer *ans, char *buf, size_t buflen)
{
	struct jsonw w;
	char *text;

	memset(ans, 0, sizeof(*ans));
	ans->body = buf;
	/* A reason belongs to its verdict; a verdict of another kind (unavailable) overrides it. */
	if (why != REASON_NONE && verdict_reason_verdict(why) != v)
		why = REASON_NONE;
	ans->status = why != REASON_NONE ? verdict_reason_http_status(why) : verdict_http_status(v);
	ans->allow_post = ans->status == 405;
	if (v == VERDICT_UNAVAILABLE)
		ans->retry_after = 5;
	if (verdict_answer(v) != NULL) {
		snprintf(buf, buflen, "%s", verdict_answer(v));
		return;
	}
	if (why == REASON_NONE || message == NULL || message[0] == '\0')
		message = verdict_message(v);
	jsonw_begin(&w);
	jsonw_bool(&w, "success", false);
	jsonw_cstr(&w, "error", message);
	text = jsonw_finish(&w);
	snprintf(buf, buflen, "%s", text ? text : "{\"success\":false}");
	free(text);
}

static void finish(struct pending *p, enum verdict v)
{
	struct callback_answer ans;
	char buf[512];
	const char *fields[3];
	char f_inv[sizeof("INVOICE_ID=") + EVENT_MAX_INVOICE_ID], f_verdict[48];

	callback_answer_for(v, p->refused, p->message, &ans, buf, sizeof(buf));
	snprintf(f_inv, sizeof(f_inv), "INVOICE_ID=%s", p->invoice);
	snprintf(f_verdict, sizeof(f_verdict), "VERDICT=%s", verdict_name(v));
	fields[0] = f_inv;
	fields[1] = f_verdict;
	fields[2] = NULL;
	log_fields(ans.status >= 500 ? LOG_WARNING : LOG_INFO, fields, "callback status=%d%s%s",
	           ans.status, p->message[0] ? " error=" : "", p->message);
	metrics_inc(METRIC_HTTP_REQUESTS, verdict_metric_label(v));
	metrics_observe(METRIC_ACK_SECONDS, since(&p->started));
	p->reply(&ans, p->arg);
	free(p);
}

bool callback_followup_for(enum verdict v, bool is_unsigned, bool signature_valid,
                           enum callback_followup *kind)
{
	if (v == VERDICT_UNSIGNED && is_unsigned) {
		*kind = CALLBACK_FOLLOWUP_UNSIGNED;
		return true;
	}
	if (v == VERDICT_STALE_TIMESTAMP && signature_valid) {
		*kind = CALLBACK_FOLLOWUP_STALE;
		return true;
	}
	return false;
}

static void stored(enum store_outcome outcome, enum verdict v, void *arg)
{
	struct pending *p = arg;
	enum callback_followup kind;
	char invoice[sizeof(p->invoice)];

	if (outcome == STORE_COMMITTED && followup_cb != NULL && p->invoice[0] != '\0' &&
	    callback_followup_for(v, p->is_unsigned, p->signature_valid, &kind)) {
		/* The hook runs after the answer, and finish() frees p. */
		memcpy(invoice, p->invoice, sizeof(invoice));
		finish(p, v);
		followup_cb(invoice, kind, followup_arg);
		return;
	}
	/*
	 * STORE_FAILED, or STORE_LATE (answer_timeout passed: the item may still
	 * commit, and the gateway's resend is then a duplicate): 503.
	 */
	if (outcome == STORE_COMMITTED)
		finish(p, v);
	else
		finish(p, VERDICT_UNAVAILABLE);
}

/*
 * The request's headers as an object; of names repeated exactly the first
 * is kept. The reader bounds their number (HTTPD_MAX_HEADERS).
 */
static void write_headers(struct jsonw *w, const struct callback_request *req)
{
	jsonw_begin_object(w, "headers");
	for (size_t i = 0; i < req->nheaders; i++) {
		size_t prev = 0;

		while (prev < i && strcmp(req->headers[prev].name, req->headers[i].name) != 0)
			prev++;
		if (prev == i)
			jsonw_cstr(w, req->headers[i].name, req->headers[i].value);
	}
	jsonw_end_object(w);
}

/*
 * Audits the request and, for a verified event, records it; the answer
 * follows in stored(). A refusal is answered at once and audited in the
 * bounded form of SPEC §13 (audit_refusal.c): its answer never waits for
 * its row. ev is the verified event, or what could be read of a refused
 * one (its invoice, status and event name help the audit).
 */
/*
 * A refusal is answered at once: its audit row is bounded and may be
 * collapsed or suppressed (audit_refusal.c), so the answer never waits for
 * it. A stale but authentic callback still earns its follow-up (SPEC §7).
 */
static void refuse(struct store *st, const struct callback_request *req, struct pending *p,
                   const struct pay_event *ev)
{
	enum verdict v = verdict_reason_verdict(p->refused);
	enum callback_followup kind;
	char invoice[sizeof(p->invoice)];
	bool follow;

	audit_refusal_store(st, &(struct audit_refusal){
	                            .verdict = v,
	                            .reason = p->refused,
	                            .http_status = verdict_reason_http_status(p->refused),
	                            .error = p->message,
	                            .remote_addr = req->remote_addr,
	                            .peer_addr = req->peer_addr,
	                            .method = req->method,
	                            .headers = req->headers,
	                            .nheaders = req->nheaders,
	                            .body = req->body,
	                            .body_len = req->body_len,
	                            .body_total = req->body_total,
	                            .invoice_id = ev->invoice_id,
	                            .status = ev->status_text,
	                            .event_name = ev->event_name,
	                            .signature_valid = p->signature_valid,
	                            .secret_index = p->secret_index,
	                        });
	follow = followup_cb != NULL && p->invoice[0] != '\0' &&
	         callback_followup_for(v, false, p->signature_valid, &kind);
	memcpy(invoice, p->invoice, sizeof(invoice));
	finish(p, v);
	if (follow)
		followup_cb(invoice, kind, followup_arg);
}

static void submit(const struct config *cfg, struct store *st, const struct callback_request *req,
                   struct pending *p, const struct pay_event *ev)
{
	struct jsonw w;

	if (p->refused != REASON_NONE) {
		refuse(st, req, p, ev);
		return;
	}
	jsonw_begin(&w);
	if (p->is_unsigned) {
		/* An audit row only: the body's values never touch the payment (SPEC §7). */
		jsonw_cstr(&w, "invoice_id", ev->invoice_id);
		jsonw_cstr(&w, "status", ev->status_text);
		jsonw_cstr(&w, "event_name", ev->event_name);
		jsonw_cstr(&w, "verdict", verdict_name(VERDICT_UNSIGNED));
		jsonw_int(&w, "http_status", verdict_http_status(VERDICT_UNSIGNED));
	} else {
		/*
		 * event_parse accepted exactly these bytes (valid JSON and UTF-8,
		 * no NUL): they go to the store apart, as the body and the event.
		 */
		store_write_event(st, &w, ev, "callback", NULL, 0);
		/* confirm_with_api: the jobs wait until check-payment agrees (confirm.c). */
		if (cfg->confirm_with_api)
			jsonw_bool(&w, "hold", true);
	}
	jsonw_bool(&w, "signature_valid", p->signature_valid);
	if (p->secret_index >= 0)
		jsonw_int(&w, "secret_index", p->secret_index);
	jsonw_cstr(&w, "remote_addr", req->remote_addr);
	jsonw_cstr(&w, "peer_addr", req->peer_addr);
	jsonw_cstr(&w, "method", req->method);
	write_headers(&w, req);
	if (p->is_unsigned) {
		jsonw_str(&w, "body", req->body ? req->body : "", req->body ? req->body_len : 0);
		if (store_submit_bounded(st, jsonw_finish(&w), NULL, 0, stored, p) < 0)
			stored(STORE_FAILED, VERDICT_UNAVAILABLE, p);
	} else if (store_submit_bounded(st, jsonw_finish(&w), xmemdup0(req->body, req->body_len),
	                                req->body_len, stored, p) < 0) {
		stored(STORE_FAILED, VERDICT_UNAVAILABLE, p);
	}
}

/* The first header of that name (case-insensitive), or NULL. */
static const char *header(const struct callback_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

void callback_handle(const struct config *cfg, struct store *st, const struct callback_request *req,
                     callback_reply_cb reply, void *arg)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	struct decision_request dr = {
	    .method = req->method,
	    .remote_addr = req->remote_addr,
	    .x_invoice_id = header(req, "X-Invoice-ID"),
	    .x_webhook_signature = header(req, "X-Webhook-Signature"),
	    .x_webhook_timestamp = header(req, "X-Webhook-Timestamp"),
	    .body = req->body,
	    .body_len = req->body_len,
	    .refused = req->refused,
	};
	struct decision d;

	p->reply = reply;
	p->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &p->started);
	decision_make(&d, cfg, &dr, (int64_t)time(NULL));
	p->refused = d.reason;
	p->is_unsigned = d.is_unsigned;
	p->signature_valid = d.signature_valid;
	p->secret_index = d.secret_index;
	snprintf(p->message, sizeof(p->message), "%s", d.message);
	if (d.ev.invoice_id != NULL)
		snprintf(p->invoice, sizeof(p->invoice), "%s", d.ev.invoice_id);
	submit(cfg, st, req, p, &d.ev);
	decision_release(&d);
}
