/*
 * gateway.c: the bayar.gg API client (see gateway.h). Calls wait in one
 * queue; a single timer (ev_tick) delivers finished calls and sends queued
 * ones when three gates are open:
 *   - the rate limit: a bucket of max_requests_per_minute tokens where a
 *     spent token comes back 60 s after it was spent, so no minute ever
 *     sees more requests than the limit (the gateway's own limiter counts
 *     per minute; a smoother refill would only make us slower);
 *   - a pause set by 429: the limit is per API key, so one 429 stops every
 *     call until Retry-After (or the backoff) has passed; a Retry-After
 *     beyond GATEWAY_MAX_WAIT fails calls, unasked, until that time;
 *   - at most GATEWAY_MAX_INFLIGHT requests at once;
 *   - GATEWAY_HALF calls (asked because of an unsigned callback, which
 *     anyone can send) also need a token of a second bucket of half the
 *     size, so strangers never get more than half of the budget.
 * A retried request spends a token like any other: it is a request.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>

#include "gateway.h"
#include "http_client.h"
#include "log.h"
#include "xmalloc.h"

#define GW_WINDOW_SEC 60.0
#define GW_BACKOFF_FIRST 1.0 /* seconds before the first retry without Retry-After */
#define GW_BACKOFF_MAX 30.0
#define GW_MSG_LEN 320

enum call_kind {
	CALL_CHECK, /* check-payment */
	CALL_LIST,  /* list-payments */
	CALL_RAW,   /* the WA Store's: the answer's body goes back to the caller as it came */
};

enum call_state {
	CALL_QUEUED,   /* waiting for a token, its not_before, or the 429 pause */
	CALL_INFLIGHT, /* an HTTP request is out */
	CALL_DONE,     /* reply ready; ev_tick delivers it */
};

struct gw_call {
	TAILQ_ENTRY(gw_call) link;
	struct gateway *gw;
	enum call_kind kind;
	enum call_state state;
	char *target;  /* path and query after base_url */
	char *invoice; /* CALL_CHECK */
	char *body;    /* CALL_RAW: a JSON body to POST; NULL: a GET */
	char *raw;     /* CALL_RAW: the last answer's body */
	char what[64]; /* "check-payment", "list-payments page 3", for messages */
	const void *owner;
	unsigned flags; /* GATEWAY_* */
	gateway_cb cb;
	void *arg;
	double not_before; /* monotonic seconds */
	bool cancelled;    /* in flight when cancelled: drop the answer */

	/* the reply, when CALL_DONE */
	struct gateway_reply reply;
	char message[GW_MSG_LEN];
	struct pay_event ev;
	struct gateway_page page;
};
TAILQ_HEAD(call_list, gw_call);

struct gateway {
	struct event_base *base;
	struct http_client *http;
	struct event *ev_tick;
	char *base_url;
	char *api_key;
	int timeout;

	struct call_list queue;  /* CALL_QUEUED, in order */
	struct call_list flight; /* CALL_INFLIGHT */
	struct call_list done;   /* CALL_DONE */
	int inflight;

	/* rate limit: send times of the last rpm requests, oldest at head */
	double *sent;
	int rpm, head, count;
	/* the same for GATEWAY_HALF calls: half_cap = max(1, rpm / 2) */
	double *half_sent;
	int half_cap, half_head, half_count;
	double paused_until;  /* a 429's Retry-After: wait */
	double blocked_until; /* a Retry-After beyond GATEWAY_MAX_WAIT: fail, do not ask */
	double tick_at;       /* when ev_tick fires, if pending */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the queue ---- */

static void gw_tick(evutil_socket_t fd, short what, void *arg);

static void gw_schedule(struct gateway *gw, double delay)
{
	struct timeval tv;
	double at;

	if (delay < 0)
		delay = 0;
	at = mono_now() + delay;
	/* Only ever pull the next tick earlier; a later one is recomputed there. */
	if (evtimer_pending(gw->ev_tick, NULL) && gw->tick_at <= at)
		return;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (long)((delay - (double)tv.tv_sec) * 1e6);
	gw->tick_at = at;
	evtimer_add(gw->ev_tick, &tv);
}

static void call_free(struct gw_call *c)
{
	if (c == NULL)
		return;
	event_release(&c->ev);
	gateway_page_release(&c->page);
	free(c->target);
	free(c->invoice);
	free(c->body);
	free(c->raw);
	free(c);
}

/* The key must never reach a log, even if a proxy echoed it back. */
static void redact_key(const struct gateway *gw, char *msg)
{
	char *p;
	size_t n;

	if (gw->api_key == NULL || (n = strlen(gw->api_key)) < 4)
		return;
	while ((p = strstr(msg, gw->api_key)) != NULL) {
		memset(p, '*', 3);
		memmove(p + 3, p + n, strlen(p + n) + 1);
	}
}

static void __attribute__((format(printf, 3, 4)))
call_finish(struct gw_call *c, enum gateway_error e, const char *fmt, ...)
{
	struct gateway *gw = c->gw;

	if (c->state == CALL_QUEUED)
		TAILQ_REMOVE(&gw->queue, c, link);
	else if (c->state == CALL_INFLIGHT)
		TAILQ_REMOVE(&gw->flight, c, link);
	c->state = CALL_DONE;
	c->reply.error = e;
	if (e != GATEWAY_OK && fmt) {
		va_list ap;
		char tmp[GW_MSG_LEN - 80];

		va_start(ap, fmt);
		vsnprintf(tmp, sizeof(tmp), fmt, ap);
		va_end(ap);
		snprintf(c->message, sizeof(c->message), "%s: %s", c->what, tmp);
		redact_key(gw, c->message);
		c->reply.message = c->message;
	}
	TAILQ_INSERT_TAIL(&gw->done, c, link);
	gw_schedule(gw, 0);
}

static double backoff_for(int attempts)
{
	double d = GW_BACKOFF_FIRST * pow(2, attempts > 1 ? attempts - 1 : 0);

	if (d > GW_BACKOFF_MAX)
		d = GW_BACKOFF_MAX;
	/* Jitter keeps several processes from retrying in lockstep. */
	return d + d * 0.25 * ((double)rand() / RAND_MAX);
}

/* A retryable failure: queue the call again, or give up after the last attempt. */
static void call_retry(struct gw_call *c, enum gateway_error e, long retry_after, const char *why)
{
	struct gateway *gw = c->gw;
	double wait, now = mono_now();

	if (retry_after > GATEWAY_MAX_WAIT) {
		/* Honoured by not asking at all until then, rather than by waiting in a call. */
		if (e == GATEWAY_ERR_RATE_LIMITED && now + (double)retry_after > gw->blocked_until)
			gw->blocked_until = now + (double)retry_after;
		call_finish(c, e, "%s; the gateway asks to wait %ld s", why, retry_after);
		return;
	}
	if (c->reply.attempts >= GATEWAY_MAX_ATTEMPTS) {
		call_finish(c, e, "%s (gave up after %d attempts)", why, c->reply.attempts);
		return;
	}
	wait = retry_after >= 0 ? (double)retry_after : backoff_for(c->reply.attempts);
	log_info("gateway: %s: %s; retry %d of %d in %.1f s", c->what, why, c->reply.attempts,
	         GATEWAY_MAX_ATTEMPTS - 1, wait);
	TAILQ_REMOVE(&gw->flight, c, link);
	c->state = CALL_QUEUED;
	c->not_before = now + wait;
	/* The limit is per API key: a 429 holds back every call, not just this one. */
	if (e == GATEWAY_ERR_RATE_LIMITED && now + wait > gw->paused_until)
		gw->paused_until = now + wait;
	TAILQ_INSERT_HEAD(&gw->queue, c, link);
	gw_schedule(gw, wait);
}

/* A JSON object with "success": true. */
static bool raw_success(const char *body, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	bool ok = cJSON_IsObject(j) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "success"));

	cJSON_Delete(j);
	return ok;
}

static void gw_on_response(const struct http_client_resp *resp, void *arg)
{
	struct gw_call *c = arg;
	struct gateway *gw = c->gw;
	enum gateway_error e;
	char err[256], reason[200];
	long ra;

	gw->inflight--;
	gw_schedule(gw, 0);
	if (c->cancelled) {
		TAILQ_REMOVE(&gw->flight, c, link);
		call_free(c);
		return;
	}
	c->reply.http_status = resp->status;
	if (c->kind == CALL_RAW && resp->status != 0) {
		/* Kept past this callback: the reply is delivered later, from the tick. */
		free(c->raw);
		c->raw = xstrndup(resp->body, resp->body_len);
		c->reply.body = c->raw;
		c->reply.body_len = resp->body_len;
	}
	if (resp->status == 0) {
		call_retry(c, GATEWAY_ERR_TRANSPORT, -1, resp->error ? resp->error : "no answer");
		return;
	}
	e = gateway_classify(resp->status);
	if (e == GATEWAY_OK && c->kind == CALL_RAW) {
		gateway_body_reason(resp->body, resp->body_len, reason, sizeof(reason));
		if (raw_success(resp->body, resp->body_len))
			call_finish(c, GATEWAY_OK, NULL);
		else
			call_finish(c, GATEWAY_ERR_REFUSED, "refused: %s",
			            reason[0] ? reason : "no reason");
		return;
	}
	if (e == GATEWAY_OK) {
		if (c->kind == CALL_CHECK)
			e = gateway_parse_check(resp->body, resp->body_len, c->invoice, &c->ev, err,
			                        sizeof(err));
		else
			e = gateway_parse_list(resp->body, resp->body_len, &c->page, err,
			                       sizeof(err));
		if (e == GATEWAY_OK) {
			if (c->kind == CALL_CHECK)
				c->reply.event = &c->ev;
			else
				c->reply.page = &c->page;
			call_finish(c, GATEWAY_OK, NULL);
		} else {
			call_finish(c, e, "%s", err);
		}
		return;
	}
	gateway_body_reason(resp->body, resp->body_len, reason, sizeof(reason));
	snprintf(err, sizeof(err), "HTTP %d%s%s", resp->status, reason[0] ? ": " : "", reason);
	ra = gateway_retry_after(resp->retry_after, time(NULL));
	switch (e) {
	case GATEWAY_ERR_RATE_LIMITED:
	case GATEWAY_ERR_SERVER:
		call_retry(c, e, ra, err);
		return;
	case GATEWAY_ERR_AUTH:
		call_finish(c, e, "%s (is [gateway] api_key_file right?)", err);
		return;
	default:
		call_finish(c, e, "%s", err);
		return;
	}
}

static void call_send(struct gw_call *c, double now)
{
	struct gateway *gw = c->gw;
	const char *headers[7];
	struct http_client_req req;
	char *url = NULL;

	TAILQ_REMOVE(&gw->queue, c, link);
	c->state = CALL_INFLIGHT;
	TAILQ_INSERT_TAIL(&gw->flight, c, link);
	if (gw->api_key == NULL) {
		call_finish(c, GATEWAY_ERR_CONFIG,
		            "no API key configured ([gateway] api_key_file)");
		return;
	}
	xasprintf(&url, "%s%s", gw->base_url, c->target);
	headers[0] = "X-API-Key";
	headers[1] = gw->api_key;
	headers[2] = "Accept";
	headers[3] = "application/json";
	headers[4] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	if (c->body != NULL) {
		headers[4] = "Content-Type";
		headers[5] = "application/json";
		headers[6] = NULL;
		req.method = "POST";
		req.body = c->body;
		req.body_len = strlen(c->body);
	}
	req.url = url;
	req.headers = headers;
	req.timeout_sec = gw->timeout;
	c->reply.attempts++;
	/* The token is spent when the request leaves, whatever comes back. */
	gw->sent[(gw->head + gw->count) % gw->rpm] = now;
	gw->count++;
	if (c->flags & GATEWAY_HALF) {
		gw->half_sent[(gw->half_head + gw->half_count) % gw->half_cap] = now;
		gw->half_count++;
	}
	if (http_client_request(gw->http, &req, gw_on_response, c) == NULL) {
		free(url);
		call_finish(c, GATEWAY_ERR_CONFIG, "the HTTP client could not start the request");
		return;
	}
	log_debug("gateway: %s %s (attempt %d)", req.method, url, c->reply.attempts);
	free(url);
	gw->inflight++;
}

static void deliver_done(struct gateway *gw)
{
	struct gw_call *c;

	/* Callbacks may queue or cancel calls; take one at a time. */
	while ((c = TAILQ_FIRST(&gw->done)) != NULL) {
		TAILQ_REMOVE(&gw->done, c, link);
		c->cb(&c->reply, c->arg);
		call_free(c);
	}
}

static void gw_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	double now, wake = -1;

	(void)fd;
	(void)what;
	deliver_done(gw);
	now = mono_now();
	/* Tokens spent more than a minute ago are back. */
	while (gw->count > 0 && gw->sent[gw->head] <= now - GW_WINDOW_SEC) {
		gw->head = (gw->head + 1) % gw->rpm;
		gw->count--;
	}
	while (gw->half_count > 0 && gw->half_sent[gw->half_head] <= now - GW_WINDOW_SEC) {
		gw->half_head = (gw->half_head + 1) % gw->half_cap;
		gw->half_count--;
	}
	while (gw->inflight < GATEWAY_MAX_INFLIGHT && !TAILQ_EMPTY(&gw->queue)) {
		struct gw_call *c, *pick = NULL;
		double soonest = -1;

		if (now < gw->blocked_until) {
			struct gw_call *c2;

			while ((c2 = TAILQ_FIRST(&gw->queue)) != NULL)
				call_finish(c2, GATEWAY_ERR_RATE_LIMITED,
				            "rate limited: the gateway asked to wait %.0f s more",
				            gw->blocked_until - now);
			break;
		}
		if (now < gw->paused_until) {
			wake = gw->paused_until - now;
			break;
		}
		TAILQ_FOREACH(c, &gw->queue, link)
		{
			double at = c->not_before;

			/* Strangers' calls wait for their own bucket; the others pass them. */
			if ((c->flags & GATEWAY_HALF) && gw->half_count >= gw->half_cap &&
			    gw->half_sent[gw->half_head] + GW_WINDOW_SEC > at)
				at = gw->half_sent[gw->half_head] + GW_WINDOW_SEC;
			if (at <= now) {
				pick = c;
				break;
			}
			if (soonest < 0 || at < soonest)
				soonest = at;
		}
		if (pick == NULL) {
			wake = soonest - now;
			break;
		}
		if (gw->count >= gw->rpm) {
			wake = gw->sent[gw->head] + GW_WINDOW_SEC - now;
			break;
		}
		call_send(pick, now);
	}
	if (!TAILQ_EMPTY(&gw->done))
		wake = 0;
	if (wake >= 0)
		gw_schedule(gw, wake);
}

static struct gw_call *call_new(struct gateway *gw, enum call_kind kind, const void *owner,
                                gateway_cb cb, void *arg)
{
	struct gw_call *c = xcalloc(1, sizeof(*c));

	c->gw = gw;
	c->kind = kind;
	c->owner = owner;
	c->cb = cb;
	c->arg = arg;
	c->state = CALL_QUEUED;
	return c;
}

static void call_enqueue(struct gateway *gw, struct gw_call *c, bool urgent)
{
	if (urgent) {
		struct gw_call *q;

		/* After calls waiting for a retry, which hold their place at the head. */
		TAILQ_FOREACH(q, &gw->queue, link)
		{
			if (q->reply.attempts == 0)
				break;
		}
		if (q)
			TAILQ_INSERT_BEFORE(q, c, link);
		else
			TAILQ_INSERT_TAIL(&gw->queue, c, link);
	} else {
		TAILQ_INSERT_TAIL(&gw->queue, c, link);
	}
	gw_schedule(gw, 0);
}

void gateway_check_payment(struct gateway *gw, const char *invoice, unsigned flags, void *owner,
                           gateway_cb cb, void *arg)
{
	struct gw_call *c = call_new(gw, CALL_CHECK, owner, cb, arg);
	char *enc = gateway_uriencode(invoice);

	c->invoice = xstrdup(invoice);
	c->flags = flags;
	/* The docs name it invoice, the gateway's examples invoice_id: both, always. */
	xasprintf(&c->target, "/check-payment.php?invoice=%s&invoice_id=%s", enc, enc);
	free(enc);
	snprintf(c->what, sizeof(c->what), "check-payment %.40s", invoice);
	call_enqueue(gw, c, (flags & GATEWAY_URGENT) != 0);
}

void gateway_list_payments(struct gateway *gw, const char *status, const char *start_date, int page,
                           int limit, void *owner, gateway_cb cb, void *arg)
{
	struct gw_call *c = call_new(gw, CALL_LIST, owner, cb, arg);
	char *st = gateway_uriencode(status ? status : "");
	char *sd = gateway_uriencode(start_date ? start_date : "");

	if (limit < 1 || limit > GATEWAY_PAGE_LIMIT)
		limit = GATEWAY_PAGE_LIMIT;
	if (page < 1)
		page = 1;
	xasprintf(&c->target, "/list-payments.php?status=%s&start_date=%s&page=%d&limit=%d", st, sd,
	          page, limit);
	free(st);
	free(sd);
	snprintf(c->what, sizeof(c->what), "list-payments page %d", page);
	call_enqueue(gw, c, false);
}

void gateway_wa_store_orders(struct gateway *gw, const char *invoice, void *owner, gateway_cb cb,
                             void *arg)
{
	struct gw_call *c = call_new(gw, CALL_RAW, owner, cb, arg);
	char *enc = gateway_uriencode(invoice);

	xasprintf(&c->target, "/wa-store-orders.php?search=%s&limit=%d", enc, GATEWAY_PAGE_LIMIT);
	free(enc);
	snprintf(c->what, sizeof(c->what), "wa-store-orders %.40s", invoice);
	call_enqueue(gw, c, false);
}

void gateway_wa_store_complete(struct gateway *gw, const char *order_number, bool cancel,
                               bool notify, void *owner, gateway_cb cb, void *arg)
{
	struct gw_call *c = call_new(gw, CALL_RAW, owner, cb, arg);
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "order_number", order_number);
	cJSON_AddStringToObject(o, "status", cancel ? "cancelled" : "completed");
	cJSON_AddBoolToObject(o, "notify", notify);
	c->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (c->body == NULL)
		abort(); /* cJSON's allocation failed: like xmalloc, no recovery */
	c->target = xstrdup("/wa-store-complete.php");
	snprintf(c->what, sizeof(c->what), "wa-store-complete %.40s", order_number);
	call_enqueue(gw, c, false);
}

static void cancel_list(struct call_list *list, const void *owner, bool inflight)
{
	struct gw_call *c, *next;

	for (c = TAILQ_FIRST(list); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->owner != owner)
			continue;
		if (inflight) {
			c->cancelled = true; /* freed when its answer comes */
			continue;
		}
		TAILQ_REMOVE(list, c, link);
		call_free(c);
	}
}

void gateway_cancel(struct gateway *gw, const void *owner)
{
	if (gw == NULL)
		return;
	cancel_list(&gw->queue, owner, false);
	cancel_list(&gw->done, owner, false);
	cancel_list(&gw->flight, owner, true);
}

bool gateway_has_key(const struct gateway *gw)
{
	return gw->api_key != NULL && gw->api_key[0] != '\0';
}

void gateway_configure(struct gateway *gw, const struct config *cfg)
{
	char *url = xstrdup(cfg->gateway_base_url), *key = NULL;
	int rpm = cfg->reconciler_max_rpm > 0 ? cfg->reconciler_max_rpm : 1;
	int half = rpm / 2 > 0 ? rpm / 2 : 1;
	double *sent = NULL;
	int count = 0;

	/* A reference into the config's secret store, not a copy (SPEC §13). */
	if (cfg->api_key && cfg->api_key[0])
		key = config_secret_ref(cfg->api_key);
	if (rpm != gw->rpm)
		sent = xcalloc((size_t)rpm, sizeof(*sent));
	/* Strip a trailing slash so that base_url + "/check-payment.php" stays one slash. */
	while (url[0] && url[strlen(url) - 1] == '/')
		url[strlen(url) - 1] = '\0';
	free(gw->base_url);
	gw->base_url = url;
	config_secret_unref(gw->api_key);
	gw->api_key = key;
	gw->timeout = cfg->gateway_timeout;
	if (sent) {
		/* Keep the newest sends: a lower limit must still count them. */
		int keep = gw->count < rpm ? gw->count : rpm;

		for (int i = gw->count - keep; i < gw->count; i++)
			sent[count++] = gw->sent[(gw->head + i) % gw->rpm];
		free(gw->sent);
		gw->sent = sent;
		gw->rpm = rpm;
		gw->head = 0;
		gw->count = count;
	}
	if (half != gw->half_cap) {
		int keep = gw->half_count < half ? gw->half_count : half;

		sent = xcalloc((size_t)half, sizeof(*sent));
		count = 0;
		for (int i = gw->half_count - keep; i < gw->half_count; i++)
			sent[count++] = gw->half_sent[(gw->half_head + i) % gw->half_cap];
		free(gw->half_sent);
		gw->half_sent = sent;
		gw->half_cap = half;
		gw->half_head = 0;
		gw->half_count = count;
	}
	gw_schedule(gw, 0);
}

struct gateway *gateway_new(struct event_base *base, const struct config *cfg)
{
	struct gateway *gw = xcalloc(1, sizeof(*gw));

	gw->base = base;
	TAILQ_INIT(&gw->queue);
	TAILQ_INIT(&gw->flight);
	TAILQ_INIT(&gw->done);
	gw->ev_tick = evtimer_new(base, gw_tick, gw);
	gw->http = http_client_new(base, NULL);
	if (gw->ev_tick == NULL || gw->http == NULL) {
		gateway_free(gw);
		return NULL;
	}
	gateway_configure(gw, cfg);
	return gw;
}

void gateway_free(struct gateway *gw)
{
	struct gw_call *c;

	if (gw == NULL)
		return;
	/* First the client: it cancels the requests without calling back. */
	http_client_free(gw->http);
	while ((c = TAILQ_FIRST(&gw->queue)) != NULL) {
		TAILQ_REMOVE(&gw->queue, c, link);
		call_free(c);
	}
	while ((c = TAILQ_FIRST(&gw->flight)) != NULL) {
		TAILQ_REMOVE(&gw->flight, c, link);
		call_free(c);
	}
	while ((c = TAILQ_FIRST(&gw->done)) != NULL) {
		TAILQ_REMOVE(&gw->done, c, link);
		call_free(c);
	}
	if (gw->ev_tick)
		event_free(gw->ev_tick);
	config_secret_unref(gw->api_key);
	free(gw->base_url);
	free(gw->sent);
	free(gw->half_sent);
	free(gw);
}
