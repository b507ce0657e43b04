/*
 * gateway_parse.c: the pure half of the gateway client: what an answer of
 * the bayar.gg API means (status classes, Retry-After, check-payment and
 * list-payments bodies, its WIB times) and how a query is encoded. No I/O, so the unit tests and
 * fuzz_gateway link it alone. Bodies come from the network: every field is checked for type and
 * size before it is used, and check-payment goes through the same strict
 * parser as a callback body (event_parse), which keeps final_amount's
 * literal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "utf8.h"
#include "xmalloc.h"

char *gateway_uriencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

void gateway_start_date(time_t now, int lookback, char *buf, size_t len)
{
	/* The gateway's dates are WIB (UTC+7), and its day may have begun before ours. */
	time_t t = now + 7 * 3600 - (time_t)lookback - 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

time_t gateway_wib_time(const char *text)
{
	struct tm tm;
	const char *end;
	time_t t;

	if (text == NULL)
		return (time_t)-1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(text, "%Y-%m-%d %H:%M:%S", &tm);
	if (end == NULL || *end != '\0' || (t = timegm(&tm)) == (time_t)-1)
		return (time_t)-1;
	return t - 7 * 3600;
}

const char *gateway_error_name(enum gateway_error e)
{
	switch (e) {
	case GATEWAY_OK:
		return "ok";
	case GATEWAY_ERR_CONFIG:
		return "config";
	case GATEWAY_ERR_TRANSPORT:
		return "transport";
	case GATEWAY_ERR_AUTH:
		return "auth";
	case GATEWAY_ERR_NOT_FOUND:
		return "not_found";
	case GATEWAY_ERR_RATE_LIMITED:
		return "rate_limited";
	case GATEWAY_ERR_SERVER:
		return "server";
	case GATEWAY_ERR_HTTP:
		return "http";
	case GATEWAY_ERR_MALFORMED:
		return "malformed";
	case GATEWAY_ERR_REFUSED:
		return "refused";
	case GATEWAY_ERR_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

enum gateway_error gateway_classify(int status)
{
	if (status >= 200 && status <= 299)
		return GATEWAY_OK;
	if (status == 401 || status == 403)
		return GATEWAY_ERR_AUTH;
	if (status == 404)
		return GATEWAY_ERR_NOT_FOUND;
	if (status == 429)
		return GATEWAY_ERR_RATE_LIMITED;
	if (status >= 500 && status <= 599)
		return GATEWAY_ERR_SERVER;
	if (status <= 0)
		return GATEWAY_ERR_TRANSPORT;
	return GATEWAY_ERR_HTTP;
}

long gateway_retry_after(const char *value, time_t now)
{
	static const char *const formats[] = {
	    "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
	    "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
	    "%a %b %e %H:%M:%S %Y",      /* asctime */
	};
	size_t n;

	if (value == NULL)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0)
		return -1;
	if (strspn(value, "0123456789") == n) {
		long secs = 0;

		for (size_t i = 0; i < n; i++) {
			if (secs > 100000000L)
				return 100000000L; /* absurd, but a number: "a very long time" */
			secs = secs * 10 + (value[i] - '0');
		}
		return secs;
	}
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct tm tm;
		const char *end;
		char buf[64];

		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, value, n);
		buf[n] = '\0';
		memset(&tm, 0, sizeof(tm));
		end = strptime(buf, formats[i], &tm);
		if (end != NULL && *end == '\0') {
			time_t t = timegm(&tm);

			if (t == (time_t)-1)
				return -1;
			return t > now ? (long)(t - now) : 0;
		}
	}
	return -1;
}

/* Copies s as one printable line of at most max bytes. */
static void one_line(char *out, size_t outlen, const char *s, size_t max)
{
	size_t o = 0;

	for (size_t i = 0; s[i] && i < max && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	out[o] = '\0';
}

/* The gateway's own "error"/"message" text of a JSON body, if any. */
void gateway_body_reason(const char *body, size_t len, char *out, size_t outlen)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *m = NULL;

	out[0] = '\0';
	if (cJSON_IsObject(j)) {
		m = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (!cJSON_IsString(m))
			m = cJSON_GetObjectItemCaseSensitive(j, "message");
	}
	if (cJSON_IsString(m))
		one_line(out, outlen, m->valuestring, 160);
	cJSON_Delete(j);
}

enum gateway_error gateway_parse_check(const char *body, size_t len, const char *invoice,
                                       struct pay_event *ev, char *err, size_t errlen)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *ok;
	const char *why = NULL;

	memset(ev, 0, sizeof(*ev));
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		snprintf(err, errlen, "answer is not a JSON object");
		return GATEWAY_ERR_MALFORMED;
	}
	ok = cJSON_GetObjectItemCaseSensitive(j, "success");
	if (!cJSON_IsTrue(ok)) {
		char reason[200];
		bool refused = cJSON_IsFalse(ok);

		cJSON_Delete(j);
		gateway_body_reason(body, len, reason, sizeof(reason));
		if (refused) {
			snprintf(err, errlen, "gateway refused: %s",
			         reason[0] ? reason : "no reason");
			return GATEWAY_ERR_REFUSED;
		}
		snprintf(err, errlen, "answer has no \"success\": true");
		return GATEWAY_ERR_MALFORMED;
	}
	cJSON_Delete(j);
	/* The strict parser keeps final_amount's literal, as for a callback. */
	if (event_parse(ev, body, len, &why) < 0) {
		snprintf(err, errlen, "%s", why);
		event_release(ev);
		return GATEWAY_ERR_MALFORMED;
	}
	if (ev->status == STATUS_UNKNOWN) {
		snprintf(err, errlen, "unknown status \"%.40s\"", ev->status_text);
		event_release(ev);
		return GATEWAY_ERR_MALFORMED;
	}
	if (invoice && strcmp(ev->invoice_id, invoice) != 0) {
		snprintf(err, errlen, "answer is about another invoice");
		event_release(ev);
		return GATEWAY_ERR_MALFORMED;
	}
	return GATEWAY_OK;
}

/* A JSON integer, or a string of digits (PHP APIs send both). */
static int int_member(const cJSON *o, const char *name, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e9 &&
	    v->valuedouble == floor(v->valuedouble)) {
		*out = (int)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= 9 &&
	    strspn(v->valuestring, "0123456789") == strlen(v->valuestring)) {
		*out = atoi(v->valuestring);
		return 0;
	}
	return -1;
}

static bool plain_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || !utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

void gateway_page_release(struct gateway_page *page)
{
	if (page == NULL)
		return;
	free(page->items);
	cJSON_Delete(page->json);
	memset(page, 0, sizeof(*page));
}

enum gateway_error gateway_parse_list(const char *body, size_t len, struct gateway_page *page,
                                      char *err, size_t errlen)
{
	const cJSON *ok, *data, *pag, *it;
	size_t i = 0;

	memset(page, 0, sizeof(*page));
	page->json = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(page->json)) {
		snprintf(err, errlen, "answer is not a JSON object");
		goto malformed;
	}
	ok = cJSON_GetObjectItemCaseSensitive(page->json, "success");
	if (cJSON_IsFalse(ok)) {
		char reason[200];

		gateway_body_reason(body, len, reason, sizeof(reason));
		snprintf(err, errlen, "gateway refused: %s", reason[0] ? reason : "no reason");
		gateway_page_release(page);
		return GATEWAY_ERR_REFUSED;
	}
	if (!cJSON_IsTrue(ok)) {
		snprintf(err, errlen, "answer has no \"success\": true");
		goto malformed;
	}
	data = cJSON_GetObjectItemCaseSensitive(page->json, "data");
	pag = cJSON_GetObjectItemCaseSensitive(page->json, "pagination");
	if (!cJSON_IsArray(data)) {
		snprintf(err, errlen, "\"data\" is not an array");
		goto malformed;
	}
	if (!cJSON_IsObject(pag) || int_member(pag, "page", &page->page) < 0 ||
	    int_member(pag, "total", &page->total) < 0) {
		snprintf(err, errlen, "\"pagination\" lacks page or total");
		goto malformed;
	}
	if (int_member(pag, "limit", &page->limit) < 0)
		page->limit = 0;
	if (int_member(pag, "total_pages", &page->total_pages) < 0) {
		if (page->limit <= 0) {
			snprintf(err, errlen, "\"pagination\" lacks total_pages and limit");
			goto malformed;
		}
		page->total_pages = (page->total + page->limit - 1) / page->limit;
	}
	page->n = (size_t)cJSON_GetArraySize(data);
	if (page->n > 0)
		page->items = xcalloc(page->n, sizeof(*page->items));
	cJSON_ArrayForEach(it, data)
	{
		const cJSON *inv = cJSON_GetObjectItemCaseSensitive(it, "invoice_id");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
		const cJSON *ca = cJSON_GetObjectItemCaseSensitive(it, "created_at");
		const cJSON *pa = cJSON_GetObjectItemCaseSensitive(it, "paid_at");

		if (!cJSON_IsString(inv) || !plain_text(inv->valuestring, 255) ||
		    !cJSON_IsString(st)) {
			snprintf(err, errlen, "data[%zu] lacks a usable invoice_id or status", i);
			goto malformed;
		}
		page->items[i].invoice_id = inv->valuestring;
		page->items[i].status = st->valuestring;
		page->items[i].created_at = cJSON_IsString(ca) ? ca->valuestring : NULL;
		page->items[i].paid_at = cJSON_IsString(pa) ? pa->valuestring : NULL;
		page->items[i].json = it;
		i++;
	}
	return GATEWAY_OK;
malformed:
	gateway_page_release(page);
	return GATEWAY_ERR_MALFORMED;
}
