/*
 * gateway.h: the bayar.gg API client (SPEC §1): check-payment and
 * list-payments with X-API-Key, on the caller's event loop. One gateway
 * object is the process's only door to the API, so it also owns the
 * politeness: at most max_requests_per_minute requests in any 60 seconds,
 * a few in flight at once, and bounded retries of 429, 5xx and transport
 * failures that honour Retry-After. Callers see one final reply per call.
 */
#ifndef BAYARHOOK_GATEWAY_H
#define BAYARHOOK_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "event.h"

struct event_base;
struct gateway;

#define GATEWAY_PAGE_LIMIT 100 /* list-payments' largest page (SPEC §1) */
#define GATEWAY_MAX_ATTEMPTS 5 /* per call: the first request and 4 retries */
#define GATEWAY_MAX_INFLIGHT 4 /* concurrent requests to the API */
#define GATEWAY_MAX_WAIT 300   /* longest Retry-After honoured inside a call, seconds */

enum gateway_error {
	GATEWAY_OK = 0,           /* a well-formed answer with "success": true */
	GATEWAY_ERR_CONFIG,       /* no API key configured, or a request we cannot build */
	GATEWAY_ERR_TRANSPORT,    /* no HTTP answer (DNS, connect, TLS, timeout), after retries */
	GATEWAY_ERR_AUTH,         /* 401/403: the API key was refused */
	GATEWAY_ERR_NOT_FOUND,    /* 404: the gateway does not know the invoice */
	GATEWAY_ERR_RATE_LIMITED, /* 429, after retries or with a Retry-After too long */
	GATEWAY_ERR_SERVER,       /* 5xx, after retries */
	GATEWAY_ERR_HTTP,         /* any other unexpected status */
	GATEWAY_ERR_MALFORMED,    /* 2xx whose body is not the documented JSON */
	GATEWAY_ERR_REFUSED,      /* 2xx with "success": false */
	GATEWAY_ERR_CANCELLED,    /* never delivered: see gateway_cancel() */
};

/* "auth", "rate_limited", ...: for logs and notes. */
const char *gateway_error_name(enum gateway_error e);

/* One item of a list-payments page; the strings point into the page. */
struct gateway_payment {
	const char *invoice_id;
	const char *status;     /* as the gateway wrote it */
	const char *created_at; /* WIB text or NULL */
	const char *paid_at;    /* WIB text or NULL */
	const cJSON *json;      /* the whole item: check-payment's fields plus created_at */
};

struct gateway_page {
	int page, limit, total, total_pages;
	size_t n;
	struct gateway_payment *items;
	cJSON *json; /* owns the strings of items */
};

struct gateway_reply {
	enum gateway_error error;
	int http_status;     /* of the last answer, 0 when none came */
	int attempts;        /* API requests this call sent, retries included */
	const char *message; /* NULL on success; one line, never the API key */
	/* check-payment on success: the payment, parsed as a callback body is */
	struct pay_event *event;
	/* list-payments on success */
	const struct gateway_page *page;
	/* the WA Store calls: the last answer's body (NULL when none came) */
	const char *body;
	size_t body_len;
};

/* Runs exactly once per call, from the event loop, never inside the call. */
typedef void (*gateway_cb)(const struct gateway_reply *reply, void *arg);

/*
 * Reads [gateway] and [reconciler] max_requests_per_minute; NULL when
 * libevent cannot make its timer or HTTP client.
 */
struct gateway *gateway_new(struct event_base *base, const struct config *cfg);
/* Cancels everything (no callbacks) and frees; accepts NULL. */
void gateway_free(struct gateway *gw);
/* After SIGHUP: new URL, key, timeout and rate apply to requests not yet sent. */
void gateway_configure(struct gateway *gw, const struct config *cfg);
bool gateway_has_key(const struct gateway *gw);

enum gateway_flags {
	GATEWAY_URGENT = 1u << 0, /* before queued calls: answers a callback, not a sweep */
	GATEWAY_HALF = 1u << 1,   /* asked by a stranger: at most half of the requests per minute */
};

/*
 * Queues a call, asking with both ?invoice= (the API docs) and ?invoice_id=
 * (the gateway's own examples). owner groups calls for gateway_cancel();
 * flags are GATEWAY_* bits.
 */
void gateway_check_payment(struct gateway *gw, const char *invoice, unsigned flags, void *owner,
                           gateway_cb cb, void *arg);
/* status and start_date (YYYY-MM-DD) may be NULL; limit is capped at GATEWAY_PAGE_LIMIT. */
void gateway_list_payments(struct gateway *gw, const char *status, const char *start_date, int page,
                           int limit, void *owner, gateway_cb cb, void *arg);
/*
 * bayar.gg's WA Store (SPEC §1, §9), in the same budget and queue as the
 * reconciler's calls: the orders whose number, buyer or invoice id matches
 * invoice (at most GATEWAY_PAGE_LIMIT); and completing (or cancelling) one,
 * with or without the WhatsApp message to the buyer. GATEWAY_OK for
 * "success": true, GATEWAY_ERR_REFUSED for a 2xx with "success": false (a
 * rule of the store said no); reply->body holds the answer either way.
 */
void gateway_wa_store_orders(struct gateway *gw, const char *invoice, void *owner, gateway_cb cb,
                             void *arg);
void gateway_wa_store_complete(struct gateway *gw, const char *order_number, bool cancel,
                               bool notify, void *owner, gateway_cb cb, void *arg);
/* Drops every call of owner without calling back; answers in flight are discarded. */
void gateway_cancel(struct gateway *gw, const void *owner);

/* ---- pure parts (gateway_parse.c) ---- */

/*
 * A query-string value percent-encoded: every byte but A-Z a-z 0-9 - . _ ~
 * as %XX (what evhttp_uriencode does, without its allocation failure).
 */
char *gateway_uriencode(const char *s) __attribute__((malloc, returns_nonnull));
/* The list-payments start_date for a lookback: today in WIB - lookback - 1 day. */
void gateway_start_date(time_t now, int lookback, char *buf, size_t len);
/* "YYYY-MM-DD HH:MM:SS" in WIB (the gateway's times) as Unix time; -1 when unreadable. */
time_t gateway_wib_time(const char *text);
/* The error class of an HTTP status (GATEWAY_OK for 2xx). */
enum gateway_error gateway_classify(int http_status);
/*
 * Retry-After: delta-seconds or an HTTP-date, as seconds from now (0 for a
 * date in the past); -1 when absent or unreadable.
 */
long gateway_retry_after(const char *value, time_t now);
/*
 * A check-payment body: the payment as an event (ev owns it on success),
 * invoice_id required to equal invoice. GATEWAY_OK, GATEWAY_ERR_MALFORMED or
 * GATEWAY_ERR_REFUSED with the reason in err.
 */
enum gateway_error gateway_parse_check(const char *body, size_t len, const char *invoice,
                                       struct pay_event *ev, char *err, size_t errlen);
/* A list-payments body; release page with gateway_page_release(). */
enum gateway_error gateway_parse_list(const char *body, size_t len, struct gateway_page *page,
                                      char *err, size_t errlen);
void gateway_page_release(struct gateway_page *page);
/* The "error" (or "message") text of a JSON answer as one printable line, "" if none. */
void gateway_body_reason(const char *body, size_t len, char *out, size_t outlen);

#endif
