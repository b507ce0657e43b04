/*
 * event.c: turns a callback body (or a gateway API object) into a struct
 * pay_event, rejecting anything the gateway's PHP json_decode would not have
 * produced (phpjson.c), and gives every top-level field the text PHP would
 * give it. cJSON forgets number literals, and 50123 vs 50123.0 vs 1e15 sign
 * differently, so the literals come from phpjson_members().
 */
#include "event.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phpjson.h"
#include "phpnum.h"
#include "utf8.h"
#include "verify.h"
#include "xmalloc.h"

const char *event_status_name(enum pay_status s)
{
	switch (s) {
	case STATUS_PENDING:
		return "pending";
	case STATUS_PAID:
		return "paid";
	case STATUS_EXPIRED:
		return "expired";
	case STATUS_CANCELLED:
		return "cancelled";
	case STATUS_UNKNOWN:
	default:
		return "unknown";
	}
}

/* Exact and case-sensitive: the status text is part of the signed message. */
enum pay_status event_status_parse(const char *s)
{
	if (s == NULL)
		return STATUS_UNKNOWN;
	for (int i = STATUS_PENDING; i <= STATUS_CANCELLED; i++)
		if (strcmp(s, event_status_name((enum pay_status)i)) == 0)
			return (enum pay_status)i;
	return STATUS_UNKNOWN;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Sets the typed reason and its text; returns -1 for the caller to pass on. */
static int event_fail(struct pay_event *ev, enum verdict_reason why, const char **err)
{
	ev->why = why;
	*err = verdict_reason_message(why);
	return -1;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The reason's text and the key; keys shown to clients and logs: printable ASCII only, bounded. */
static int fail_key(struct pay_event *ev, enum verdict_reason why, const char *key,
                    const char **err)
{
	size_t pos =
	    (size_t)snprintf(ev->errbuf, sizeof(ev->errbuf), "%s", verdict_reason_message(why));
	const size_t max = sizeof(ev->errbuf) - 4;

	for (; *key != '\0' && pos < max; key++) {
		unsigned char c = (unsigned char)*key;
		ev->errbuf[pos++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
	}
	if (*key != '\0') {
		memcpy(ev->errbuf + pos, "...", 3);
		pos += 3;
	}
	ev->errbuf[pos] = '\0';
	ev->why = why;
	*err = ev->errbuf;
	return -1;
}

/* Sorting beats comparing every pair: a 64 KiB body holds ~10k keys. */
static int check_duplicates(struct pay_event *ev, const cJSON *obj, size_t n, const char **err)
{
	const char **names;
	const cJSON *c;
	size_t i = 0;
	int rc = 0;

	if (n < 2)
		return 0;
	names = xreallocarray(NULL, n, sizeof(*names));
	cJSON_ArrayForEach(c, obj)
	{
		names[i++] = c->string != NULL ? c->string : "";
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			rc = fail_key(ev, REASON_DUPLICATE_KEY, names[i], err);
			break;
		}
	}
	free(names);
	return rc;
}

/* One byte of a field's BAYAR_* name (SPEC §5): upper case, anything else '_'. */
static char var_char(char ch)
{
	unsigned char c = (unsigned char)ch;

	if (c >= 'a' && c <= 'z')
		return (char)(c - 'a' + 'A');
	if ((c >= 'A' && c <= 'Z') || is_digit((char)c) || c == '_')
		return (char)c;
	return '_';
}

char *event_var_name(const char *field)
{
	size_t n = strlen(field);
	char *out = xmalloc(6 + n + 1);

	memcpy(out, "BAYAR_", 6);
	for (size_t i = 0; i < n; i++)
		out[6 + i] = var_char(field[i]);
	out[6 + n] = '\0';
	return out;
}

struct key_ref {
	const char *name;
	size_t index; /* in the body, so that the message names them in text order */
};

/* A byte of the variable name as a number; the terminator stays 0. */
static int fold_byte(char c)
{
	return c == '\0' ? 0 : (unsigned char)var_char(c);
}

/* strcmp() of the variable names two keys give. */
static int fold_cmp(const char *p, const char *q)
{
	while (*p != '\0' && fold_byte(*p) == fold_byte(*q)) {
		p++;
		q++;
	}
	return fold_byte(*p) - fold_byte(*q);
}

/* Orders keys by the variable name they give, then by their place in the body. */
static int cmp_folded(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	int d = fold_cmp(x->name, y->name);

	if (d != 0)
		return d;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Two keys that differ only by case or punctuation give one BAYAR_* name,
 * and only one of them could reach an exec action: "Invoice_ID" placed
 * before "invoice_id" would pose as the signed field to a script. Such a
 * body is not an event. Exact duplicates are caught before this.
 */
static int check_ambiguous(struct pay_event *ev, const cJSON *obj, size_t n, const char **err)
{
	struct key_ref *keys;
	const cJSON *c;
	size_t i = 0, k = 0;
	int rc = 0;

	if (n < 2)
		return 0;
	keys = xreallocarray(NULL, n, sizeof(*keys));
	cJSON_ArrayForEach(c, obj)
	{
		/* An empty name gives no variable (action_exec.c skips it). */
		if (c->string != NULL && c->string[0] != '\0') {
			keys[k].name = c->string;
			keys[k].index = i;
			k++;
		}
		i++;
	}
	qsort(keys, k, sizeof(*keys), cmp_folded);
	for (i = 1; i < k; i++) {
		char *both;

		if (fold_cmp(keys[i - 1].name, keys[i].name) != 0)
			continue;
		xasprintf(&both, "%s, %s", keys[i - 1].name, keys[i].name);
		rc = fail_key(ev, REASON_AMBIGUOUS_KEY, both, err);
		free(both);
		break;
	}
	free(keys);
	return rc;
}

/* A string item; objects built by hand may carry a NULL valuestring. */
static bool is_str(const cJSON *item)
{
	return item != NULL && cJSON_IsString(item) && item->valuestring != NULL;
}

/* False for a literal too large for a double, whose PHP text is INF. */
static bool finite_number(const cJSON *item)
{
	return cJSON_IsNumber(item) && isfinite(item->valuedouble);
}

/* PHP's text of member i, or NULL for arrays and objects. */
static const char *member_text(const struct pay_event *ev, size_t i, const cJSON *item)
{
	if (is_str(item))
		return item->valuestring;
	if (cJSON_IsNumber(item))
		return i < ev->nfields ? ev->field_text[i] : NULL;
	if (cJSON_IsTrue(item))
		return "1";
	if (cJSON_IsFalse(item) || cJSON_IsNull(item))
		return "";
	return NULL;
}

static const cJSON *member_find(const struct pay_event *ev, const char *name, size_t *index)
{
	const cJSON *c;
	size_t i = 0;

	if (ev->json == NULL)
		return NULL;
	/* PHP object properties are case-sensitive. */
	cJSON_ArrayForEach(c, ev->json)
	{
		if (c->string != NULL && strcmp(c->string, name) == 0) {
			*index = i;
			return c;
		}
		i++;
	}
	return NULL;
}

/* "50123" or "50123.5": what a numeric final_amount string must look like. */
static bool decimal_text(const char *s)
{
	size_t i = 0, len = strlen(s);

	if (s[i] == '-')
		i++;
	if (i >= len || !is_digit(s[i]))
		return false;
	while (i < len && is_digit(s[i]))
		i++;
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return false;
		while (i < len && is_digit(s[i]))
			i++;
	}
	return i == len;
}

/* Copies src into out when it fits, else leaves "" and returns -1. */
static int copy_field(char *out, size_t outlen, const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;

	out[0] = '\0';
	if (src == NULL || n >= outlen)
		return -1;
	memcpy(out, src, n + 1);
	return 0;
}

/*
 * Computes the PHP text of every top-level number. body/spans are NULL when
 * the literals are unknown (event_from_json).
 */
static void number_texts(struct pay_event *ev, const char *body, const struct phpjson_span *spans)
{
	const cJSON *c;
	size_t i = 0;

	cJSON_ArrayForEach(c, ev->json)
	{
		char buf[64], *raw = NULL;

		if (!cJSON_IsNumber(c)) {
			i++;
			continue;
		}
		if (spans != NULL)
			raw = xstrndup(body + spans[i].off, spans[i].len);
		if (verify_amount_text(c, raw, buf, sizeof(buf)) < 0) {
			/* Out of range: json_decode gives INF, which PHP prints. */
			phpnum_float(raw != NULL ? strtod(raw, NULL) : c->valuedouble, buf,
			             sizeof(buf));
		}
		free(raw);
		ev->field_text[i] = xstrdup(buf);
		i++;
	}
}

/* Releases everything but why and errbuf, which may hold the caller's *err. */
static void event_drop(struct pay_event *ev)
{
	cJSON_Delete(ev->json);
	for (size_t i = 0; i < ev->nfields; i++)
		free(ev->field_text[i]);
	free(ev->field_text);
	ev->json = NULL;
	ev->field_text = NULL;
	ev->nfields = 0;
	ev->invoice_id = ev->status_text = ev->event_name = ev->body_signature = NULL;
	ev->status = STATUS_UNKNOWN;
	ev->final_amount[0] = ev->amount[0] = ev->body_timestamp[0] = '\0';
}

/* Validation shared by event_parse and event_from_json; ev->json is set. */
static int event_fill(struct pay_event *ev, const char *body, const struct phpjson_span *spans,
                      const char **err)
{
	const cJSON *c, *item;
	size_t n = 0, idx;
	const char *text;

	cJSON_ArrayForEach(c, ev->json)
	{
		n++;
	}
	if (check_duplicates(ev, ev->json, n, err) < 0 || check_ambiguous(ev, ev->json, n, err) < 0)
		return -1;
	if (n > 0) {
		ev->field_text = xcalloc(n, sizeof(*ev->field_text));
		ev->nfields = n;
	}
	number_texts(ev, body, spans);

	item = member_find(ev, "invoice_id", &idx);
	if (item == NULL)
		return event_fail(ev, REASON_MISSING_INVOICE, err);
	if (!is_str(item) || item->valuestring[0] == '\0')
		return event_fail(ev, REASON_INVOICE_TYPE, err);
	/* Far above bayar.gg's ids, far below PostgreSQL's btree row limit. */
	if (strlen(item->valuestring) > EVENT_MAX_INVOICE_ID)
		return event_fail(ev, REASON_INVOICE_TOO_LONG, err);
	ev->invoice_id = item->valuestring;

	item = member_find(ev, "status", &idx);
	if (!is_str(item))
		return event_fail(ev, REASON_MISSING_STATUS, err);
	ev->status_text = item->valuestring;
	ev->status = event_status_parse(ev->status_text);
	if (ev->status == STATUS_UNKNOWN)
		return event_fail(ev, REASON_UNKNOWN_STATUS, err);

	item = member_find(ev, "final_amount", &idx);
	if (item == NULL)
		return event_fail(ev, REASON_MISSING_AMOUNT, err);
	text = member_text(ev, idx, item);
	if (is_str(item) ? !decimal_text(text) : !finite_number(item))
		return event_fail(ev, REASON_AMOUNT_TYPE, err);
	if (copy_field(ev->final_amount, sizeof(ev->final_amount), text) < 0)
		return event_fail(ev, REASON_AMOUNT_TYPE, err);

	/* Optional fields: keep "" / NULL when absent or unusable. */
	item = member_find(ev, "amount", &idx);
	if (is_str(item) || finite_number(item))
		(void)copy_field(ev->amount, sizeof(ev->amount), member_text(ev, idx, item));
	item = member_find(ev, "timestamp", &idx);
	if (is_str(item) || cJSON_IsNumber(item))
		(void)copy_field(ev->body_timestamp, sizeof(ev->body_timestamp),
		                 member_text(ev, idx, item));
	item = member_find(ev, "signature", &idx);
	if (is_str(item))
		ev->body_signature = item->valuestring;
	item = member_find(ev, "event", &idx);
	if (is_str(item))
		ev->event_name = item->valuestring;
	return 0;
}

int event_parse(struct pay_event *ev, const char *body, size_t len, const char **err)
{
	const char *end = NULL;
	struct phpjson_span *spans = NULL;
	size_t n = 0;
	const cJSON *c;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	if (body == NULL) {
		body = "";
		len = 0;
	}
	if (memchr(body, '\0', len) != NULL)
		return event_fail(ev, REASON_NUL_BYTES, err);
	if (!utf8_valid(body, len))
		return event_fail(ev, REASON_NOT_UTF8, err);
	if (phpjson_has_nul_escape(body, len))
		return event_fail(ev, REASON_NUL_ESCAPE, err);
	ev->json = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (ev->json == NULL || end == NULL || end < body || end > body + len ||
	    phpjson_skip_ws(body, len, (size_t)(end - body)) != len) {
		event_fail(ev, REASON_NOT_JSON, err);
		goto fail;
	}
	if (!cJSON_IsObject(ev->json)) {
		event_fail(ev, REASON_NOT_OBJECT, err);
		goto fail;
	}
	cJSON_ArrayForEach(c, ev->json)
	{
		n++;
	}
	spans = xcalloc(n > 0 ? n : 1, sizeof(*spans));
	switch (phpjson_members(body, len, spans, n)) {
	case PHPJSON_OK:
		break;
	case PHPJSON_NUMBER_RANGE:
		event_fail(ev, REASON_NUMBER_RANGE, err);
		goto fail;
	case PHPJSON_INVALID:
	default:
		event_fail(ev, REASON_NOT_JSON, err);
		goto fail;
	}
	if (event_fill(ev, body, spans, err) < 0)
		goto fail;
	rc = 0;
fail:
	free(spans);
	if (rc < 0)
		event_drop(ev);
	return rc;
}

int event_from_json(struct pay_event *ev, cJSON *obj, const char **err)
{
	const cJSON *c;

	memset(ev, 0, sizeof(*ev));
	ev->json = obj;
	if (!cJSON_IsObject(obj)) {
		event_fail(ev, REASON_NOT_OBJECT, err);
		goto fail;
	}
	/* No body text to check, but its strings still reach the database
	 * and the environment of actions. */
	cJSON_ArrayForEach(c, obj)
	{
		if ((c->string != NULL && !utf8_valid(c->string, strlen(c->string))) ||
		    (is_str(c) && !utf8_valid(c->valuestring, strlen(c->valuestring)))) {
			event_fail(ev, REASON_NOT_UTF8, err);
			goto fail;
		}
	}
	if (event_fill(ev, NULL, NULL, err) < 0)
		goto fail;
	return 0;
fail:
	event_drop(ev);
	return -1;
}

void event_release(struct pay_event *ev)
{
	if (ev == NULL)
		return;
	event_drop(ev);
	memset(ev, 0, sizeof(*ev));
}

const char *event_field(struct pay_event *ev, const char *name)
{
	const cJSON *item;
	size_t idx = 0;

	if (ev == NULL || name == NULL)
		return NULL;
	item = member_find(ev, name, &idx);
	return item != NULL ? member_text(ev, idx, item) : NULL;
}
