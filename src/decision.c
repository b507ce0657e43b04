/*
 * decision.c: whether a callback request is a genuine payment event
 * (SPEC §1, §4). Every way to refuse it is a typed reason (verdict.h);
 * the message is printed from the reason, never read back.
 */
#include "decision.h"

#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "verify.h"

static void refuse(struct decision *d, enum verdict_reason why, const char *text)
{
	d->reason = why;
	snprintf(d->message, sizeof(d->message), "%s",
	         text != NULL ? text : verdict_reason_message(why));
}

/* The checks before the body is read: who asks, how, and how much. */
static enum verdict_reason decide_envelope(const struct config *cfg,
                                           const struct decision_request *req)
{
	if (req->refused != REASON_NONE)
		return req->refused;
	if (cfg->allow_from.n > 0 &&
	    (req->remote_addr == NULL || !cidr_list_match(&cfg->allow_from, req->remote_addr)))
		return REASON_FORBIDDEN;
	if (req->method == NULL || strcmp(req->method, "POST") != 0)
		return REASON_METHOD;
	if (req->body_len > (size_t)cfg->max_body_bytes)
		return REASON_TOO_LARGE;
	/*
	 * Content-Type is not judged: bayar.gg sends application/json, and SPEC
	 * §4 refuses a body for not being JSON, not for its label; the
	 * signature, not the header, says whether it came from the gateway.
	 */
	return REASON_NONE;
}

void decision_make(struct decision *d, const struct config *cfg, const struct decision_request *req,
                   int64_t now)
{
	const char *err = NULL, *ts, *sig;
	enum verdict_reason why;

	memset(d, 0, sizeof(*d));
	d->secret_index = -1;
	if ((why = decide_envelope(cfg, req)) != REASON_NONE) {
		refuse(d, why, NULL);
		return;
	}
	if (event_parse(&d->ev, req->body, req->body_len, &err) < 0) {
		/* err may name a key; it lives in d->ev until released. */
		refuse(d, d->ev.why, err);
		return;
	}
	if (req->x_invoice_id != NULL && strcmp(req->x_invoice_id, d->ev.invoice_id) != 0) {
		refuse(d, REASON_INVOICE_MISMATCH, NULL);
		return;
	}
	/* SPEC §1: the body's fields stand in only for absent headers. */
	ts = req->x_webhook_timestamp;
	if (ts == NULL && d->ev.body_timestamp[0] != '\0')
		ts = d->ev.body_timestamp;
	sig = req->x_webhook_signature != NULL ? req->x_webhook_signature : d->ev.body_signature;
	/*
	 * SPEC §7: only the complete absence of a signature is unsigned; a
	 * present but wrong one is a forgery and stays refused.
	 */
	if (sig == NULL && cfg->unsigned_confirm) {
		d->is_unsigned = true;
		return;
	}
	if (ts == NULL || *ts == '\0') {
		refuse(d, REASON_NO_TIMESTAMP, NULL);
		return;
	}
	if (sig == NULL) {
		refuse(d, REASON_NO_SIGNATURE, NULL);
		return;
	}
	d->secret_index =
	    verify_signature((const char *const *)cfg->secrets, cfg->nsecrets, d->ev.invoice_id,
	                     d->ev.status_text, d->ev.final_amount, ts, sig);
	if (d->secret_index < 0) {
		refuse(d, REASON_SIGNATURE_WRONG, NULL);
		return;
	}
	d->signature_valid = true;
	if (!verify_timestamp(ts, now, cfg->replay_window)) {
		refuse(d, REASON_OUTSIDE_WINDOW, NULL);
		return;
	}
}

void decision_release(struct decision *d)
{
	if (d == NULL)
		return;
	event_release(&d->ev);
}

enum verdict decision_verdict(const struct decision *d)
{
	if (d->reason == REASON_NONE && d->is_unsigned)
		return VERDICT_UNSIGNED;
	return verdict_reason_verdict(d->reason);
}
