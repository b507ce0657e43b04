/*
 * audit_refusal.c: builds a refused request's bounded audit item
 * (audit_limit.h) and submits it to the store. The body prefix travels
 * as the item's body, in the batch's binary text[] (store.c): a body of
 * control characters is neither escaped sixfold into the JSON batch nor
 * parsed there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_limit.h"
#include "audit_refusal.h"
#include "jsonw.h"
#include "stats.h"
#include "xmalloc.h"

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A short field of the refused request, sanitized and cut to AUDIT_FIELD_BYTES. */
static void put_field(struct jsonw *w, const char *key, const char *val)
{
	char buf[AUDIT_FIELD_BYTES + 1];
	size_t n;

	if (val == NULL)
		return;
	n = audit_text_prefix(val, strlen(val), buf, AUDIT_FIELD_BYTES);
	jsonw_str(w, key, buf, n);
}

/* The headers as an object, the first of repeated names kept, capped by count and bytes. */
static void put_headers(struct jsonw *w, const struct httpd_header *h, size_t n)
{
	struct audit_headers cap = {0};

	jsonw_begin_object(w, "headers");
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		while (j < i && strcmp(h[j].name, h[i].name) != 0)
			j++;
		if (j == i && audit_headers_keep(&cap, h[i].name, h[i].value))
			jsonw_cstr(w, h[i].name, h[i].value);
	}
	jsonw_end_object(w);
	if (cap.dropped > 0)
		jsonw_int(w, "headers_dropped", cap.dropped);
}

/* Nobody waits for a refusal's row. */
static void audit_refusal_stored(enum store_outcome outcome, enum verdict verdict, void *arg)
{
	(void)outcome;
	(void)verdict;
	(void)arg;
}

/* item (a JSON object, or NULL) with the row's counts added; item is freed. */
static char *with_counts(char *item, const struct audit_ticket *t)
{
	size_t n;
	char tail[80], *out;
	int tl = snprintf(tail, sizeof(tail), ",\"repeat\":%u,\"suppressed\":%llu}", t->repeat,
	                  (unsigned long long)t->suppressed);

	if (item == NULL || (n = strlen(item)) < 2)
		return item;
	out = xmalloc(n + (size_t)tl);

	memcpy(out, item, n - 1); /* without its closing brace */
	memcpy(out + n - 1, tail, (size_t)tl + 1);
	free(item);
	return out;
}

/*
 * The row's item (without its counts) and body prefix, NULL when the
 * database is down: then the refusal is answered all the same, and like
 * every request meanwhile leaves no row (SPEC §4), which is not the rate
 * limits' doing, so not in their metric.
 */
static void submit(struct store *st, const struct audit_ticket *t, char *item, char *prefix,
                   size_t plen)
{
	if (store_submit(st, with_counts(item, t), prefix, plen, audit_refusal_stored, NULL) < 0)
		return;
}

void audit_refusal_store(struct store *st, const struct audit_refusal *r)
{
	unsigned char sha[32];
	char hex[65], *prefix;
	size_t plen;
	struct audit_ticket t;
	struct jsonw w;

	audit_sha256_hex(r->body, r->body ? r->body_len : 0, sha, hex);
	audit_limit_admit(store_audit_limit(st), monotonic_ms(), r->remote_addr, (int)r->reason,
	                  sha, &t);
	if (t.dropped > 0)
		metrics_add(METRIC_AUDIT_SUPPRESSED, NULL, (double)t.dropped);
	if (!t.write && !t.hold)
		return;
	jsonw_begin(&w);
	put_field(&w, "invoice_id", r->invoice_id);
	put_field(&w, "status", r->status);
	put_field(&w, "event_name", r->event_name);
	jsonw_cstr(&w, "verdict", verdict_name(r->verdict));
	jsonw_int(&w, "http_status", r->http_status);
	jsonw_bool(&w, "signature_valid", r->signature_valid);
	if (r->secret_index >= 0)
		jsonw_int(&w, "secret_index", r->secret_index);
	put_field(&w, "error", r->error);
	put_field(&w, "remote_addr", r->remote_addr);
	put_field(&w, "peer_addr", r->peer_addr);
	put_field(&w, "method", r->method);
	put_headers(&w, r->headers, r->nheaders);
	if (r->body_total > r->body_len) {
		/* Refused unread: its length is known, its digest is not. */
		jsonw_int(&w, "body_length", (long long)r->body_total);
	} else {
		jsonw_int(&w, "body_length", r->body ? (long long)r->body_len : 0);
		jsonw_cstr(&w, "body_sha256", hex);
	}
	prefix = xmalloc(AUDIT_BODY_PREFIX + 1);
	plen = audit_text_prefix(r->body ? r->body : "", r->body ? r->body_len : 0, prefix,
	                         AUDIT_BODY_PREFIX);
	if (t.hold) /* the row the refusals collapsed into will say what they were */
		audit_limit_hold(store_audit_limit(st), &t, jsonw_finish(&w), prefix, plen);
	else
		submit(st, &t, jsonw_finish(&w), prefix, plen);
}

struct expired {
	struct store *st;
	double dropped;
};

static void expired_row(void *arg, const struct audit_ticket *t, char *item, char *body,
                        size_t body_len)
{
	struct expired *e = arg;

	e->dropped += (double)t->dropped;
	if (t->write && item != NULL) {
		submit(e->st, t, item, body, body_len);
		return;
	}
	free(item);
	free(body);
}

void audit_refusal_flush(struct store *st, bool all)
{
	struct expired e = {st, 0};

	audit_limit_expire(store_audit_limit(st), monotonic_ms(), all, expired_row, &e);
	if (e.dropped > 0)
		metrics_add(METRIC_AUDIT_SUPPRESSED, NULL, e.dropped);
}
