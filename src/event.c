/*
 * event.c: turns a callback body (or a gateway API object) into a struct
 * event, rejecting anything the gateway's PHP json_decode would not have
 * produced, and gives every top-level field the text PHP would give it.
 *
 * cJSON builds the tree but forgets number literals, and 50123 vs 50123.0 vs
 * 1e15 sign differently; a small scanner over the validated text recovers
 * the literal of each top-level member (cJSON keeps members in text order).
 */
#include "event.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phpnum.h"
#include "utf8.h"
#include "verify.h"

/* PHP's json_decode default depth of 512 refuses 512 nested containers. */
#define JSON_MAX_NESTING 511

struct span {
	size_t off, len;
};

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

/*
 * cJSON would decode "\u0000" and silently cut the string there, so the
 * signed text and the stored text could differ. Walks strings only, so an
 * escaped backslash followed by "u0000" is not mistaken for one.
 */
static bool has_nul_escape(const char *s, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			in_string = s[i] == '"';
		} else if (s[i] == '"') {
			in_string = false;
		} else if (s[i] == '\\') {
			if (len - i > 5 && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
				return true;
			i++;
		}
	}
	return false;
}

/* JSON whitespace only; cJSON also skips every other byte below 0x21. */
static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* strchr would also find the terminator. */
static bool in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * At the opening quote. PHP refuses raw control characters, cJSON does not;
 * cJSON also decodes a \u with bad hex digits ("\u0e9x") as U+0000 and so
 * cuts the string short. Surrogate pairing is left to cJSON, which checks it.
 */
static bool scan_string(const char *s, size_t len, size_t *pos)
{
	size_t i = *pos + 1;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			*pos = i + 1;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\') {
			i++;
			continue;
		}
		if (len - i < 2 || !in_set(s[i + 1], "\"\\/bfnrtu"))
			return false;
		if (s[i + 1] == 'u') {
			if (len - i < 6 || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) ||
			    !is_hex(s[i + 4]) || !is_hex(s[i + 5]))
				return false;
			i += 6;
		} else {
			i += 2;
		}
	}
	return false;
}

/*
 * Whether PostgreSQL's numeric (which jsonb uses for every number) can hold
 * this JSON number: at most 131072 digits before the decimal point and a
 * scale (digits after it as written, less the exponent) of at most 16383.
 * A signed body with a number beyond that could never be stored: it is
 * refused as malformed rather than answered 503 for ever.
 */
static bool numeric_storable(const char *s, size_t n)
{
	size_t i = 0, intd = 0, fracd = 0, expd = 0;
	long long exp = 0, weight = 0; /* weight: decimal exponent of the first nonzero digit */
	bool neg_exp = false, nonzero = false;

	if (i < n && s[i] == '-')
		i++;
	for (; i < n && is_digit(s[i]); i++)
		nonzero |= s[i] != '0';
	intd = i - (s[0] == '-');
	if (nonzero)
		weight = (long long)intd - 1; /* JSON allows no leading zeros */
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]); i++) {
			fracd++;
			if (!nonzero && s[i] != '0') {
				nonzero = true;
				weight = -(long long)fracd;
			}
		}
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			neg_exp = s[i++] == '-';
		for (; i < n && is_digit(s[i]); i++) {
			if (expd == 0 && s[i] == '0')
				continue;
			if (++expd > 9)
				return false;
			exp = exp * 10 + (s[i] - '0');
		}
		if (neg_exp)
			exp = -exp;
	}
	if (nonzero && weight + exp > 131071)
		return false;
	return (long long)fracd - exp <= 16383;
}

/* RFC 8259 number; cJSON hands anything strtod likes ("01", "+1", "1.") on. */
static bool scan_number(const char *s, size_t len, size_t *pos, bool *range)
{
	size_t i = *pos;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0') {
		i++;
	} else if (i < len && is_digit(s[i])) {
		while (i < len && is_digit(s[i]))
			i++;
	} else {
		return false;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return false;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return false;
		while (i < len && is_digit(s[i]))
			i++;
	}
	/* cJSON reads "00" or "1.e5" as one number; here it would be two
	 * tokens that the structural walk cannot tell apart from one. */
	if (i < len && in_set(s[i], "0123456789+-.eE"))
		return false;
	if (!numeric_storable(s + *pos, i - *pos)) {
		*range = true;
		return false;
	}
	*pos = i;
	return true;
}

static bool scan_literal(const char *s, size_t len, size_t *pos)
{
	static const char *const lits[] = {"true", "false", "null"};

	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(lits[k]);
		if (len - *pos >= n && memcmp(s + *pos, lits[k], n) == 0) {
			*pos += n;
			return true;
		}
	}
	return false;
}

/*
 * Skips one value starting at *pos. The structure was already accepted by
 * cJSON, so a flat token walk with a nesting counter suffices (no recursion
 * for a stranger to exhaust); each token is checked against PHP's rules.
 */
static bool scan_value(const char *s, size_t len, size_t *pos, int depth, bool *range)
{
	size_t i = *pos;
	int level = 0;

	do {
		i = skip_ws(s, len, i);
		if (i >= len)
			return false;
		switch (s[i]) {
		case '{':
		case '[':
			if (depth + ++level > JSON_MAX_NESTING)
				return false;
			i++;
			break;
		case '}':
		case ']':
			if (level-- == 0)
				return false;
			i++;
			break;
		case ',':
		case ':':
			if (level == 0)
				return false;
			i++;
			break;
		case '"':
			if (!scan_string(s, len, &i))
				return false;
			break;
		case 't':
		case 'f':
		case 'n':
			if (!scan_literal(s, len, &i))
				return false;
			break;
		default:
			if (s[i] != '-' && !is_digit(s[i]))
				return false;
			if (!scan_number(s, len, &i, range))
				return false;
			break;
		}
	} while (level > 0);
	*pos = i;
	return true;
}

/* Fills spans[0..n) with the value text of each top-level member. */
static bool scan_members(const char *s, size_t len, struct span *spans, size_t n, bool *range)
{
	size_t i = skip_ws(s, len, 0), count = 0;

	if (i >= len || s[i] != '{')
		return false;
	i = skip_ws(s, len, i + 1);
	if (i < len && s[i] == '}') {
		i++;
	} else {
		for (;;) {
			size_t start;

			i = skip_ws(s, len, i);
			if (i >= len || s[i] != '"' || !scan_string(s, len, &i))
				return false;
			i = skip_ws(s, len, i);
			if (i >= len || s[i] != ':')
				return false;
			start = i = skip_ws(s, len, i + 1);
			if (!scan_value(s, len, &i, 1, range) || count >= n)
				return false;
			spans[count].off = start;
			spans[count].len = i - start;
			count++;
			i = skip_ws(s, len, i);
			if (i < len && s[i] == ',') {
				i++;
				continue;
			}
			if (i < len && s[i] == '}') {
				i++;
				break;
			}
			return false;
		}
	}
	return skip_ws(s, len, i) == len && count == n;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys shown to clients and logs: printable ASCII only, bounded. */
static void set_key_error(struct pay_event *ev, const char *prefix, const char *key)
{
	size_t pos = (size_t)snprintf(ev->errbuf, sizeof(ev->errbuf), "%s", prefix);
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
	names = malloc(n * sizeof(*names));
	if (names == NULL) {
		*err = "out of memory";
		return -1;
	}
	cJSON_ArrayForEach(c, obj)
	{
		names[i++] = c->string != NULL ? c->string : "";
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			set_key_error(ev, "duplicate key: ", names[i]);
			*err = ev->errbuf;
			rc = -1;
			break;
		}
	}
	free(names);
	return rc;
}

/* A string item; objects built by hand may carry a NULL valuestring. */
static bool is_str(const cJSON *item)
{
	return item != NULL && cJSON_IsString(item) && item->valuestring != NULL;
}

/* False for the INF text of a literal too large for a double. */
static bool finite_text(const char *t)
{
	return t != NULL && strcmp(t, "INF") != 0 && strcmp(t, "-INF") != 0 &&
	       strcmp(t, "NAN") != 0;
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
static int number_texts(struct pay_event *ev, const char *body, const struct span *spans)
{
	const cJSON *c;
	size_t i = 0;

	cJSON_ArrayForEach(c, ev->json)
	{
		char buf[64], *raw = NULL;

		if (i >= ev->nfields)
			return -1;
		if (!cJSON_IsNumber(c)) {
			i++;
			continue;
		}
		if (spans != NULL) {
			raw = strndup(body + spans[i].off, spans[i].len);
			if (raw == NULL)
				return -1;
		}
		if (verify_amount_text(c, raw, buf, sizeof(buf)) < 0) {
			/* Out of range: json_decode gives INF, which PHP prints. */
			phpnum_float(raw != NULL ? strtod(raw, NULL) : c->valuedouble, buf,
			                 sizeof(buf));
		}
		free(raw);
		ev->field_text[i] = strdup(buf);
		if (ev->field_text[i] == NULL)
			return -1;
		i++;
	}
	return 0;
}

/* Releases everything but errbuf, which may hold the caller's *err. */
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
static int event_fill(struct pay_event *ev, const char *body, const struct span *spans,
                      const char **err)
{
	const cJSON *c, *item;
	size_t n = 0, idx;
	const char *text;

	cJSON_ArrayForEach(c, ev->json)
	{
		n++;
	}
	if (check_duplicates(ev, ev->json, n, err) < 0)
		return -1;
	if (n > 0) {
		ev->field_text = calloc(n, sizeof(*ev->field_text));
		if (ev->field_text == NULL) {
			*err = "out of memory";
			return -1;
		}
		ev->nfields = n;
	}
	if (number_texts(ev, body, spans) < 0) {
		*err = "out of memory";
		return -1;
	}

	item = member_find(ev, "invoice_id", &idx);
	if (item == NULL) {
		*err = "missing field: invoice_id";
		return -1;
	}
	if (!is_str(item) || item->valuestring[0] == '\0') {
		*err = "invoice_id must be a string";
		return -1;
	}
	/* Far above bayar.gg's ids, far below PostgreSQL's btree row limit. */
	if (strlen(item->valuestring) > EVENT_MAX_INVOICE_ID) {
		*err = "invoice_id too long";
		return -1;
	}
	ev->invoice_id = item->valuestring;

	item = member_find(ev, "status", &idx);
	if (!is_str(item)) {
		*err = "missing field: status";
		return -1;
	}
	ev->status_text = item->valuestring;
	ev->status = event_status_parse(ev->status_text);
	if (ev->status == STATUS_UNKNOWN) {
		*err = "unknown status";
		return -1;
	}

	item = member_find(ev, "final_amount", &idx);
	if (item == NULL) {
		*err = "missing field: final_amount";
		return -1;
	}
	text = member_text(ev, idx, item);
	if (is_str(item) ? !decimal_text(text) : !cJSON_IsNumber(item) || !finite_text(text)) {
		*err = "final_amount must be a number";
		return -1;
	}
	if (copy_field(ev->final_amount, sizeof(ev->final_amount), text) < 0) {
		*err = "final_amount must be a number";
		return -1;
	}

	/* Optional fields: keep "" / NULL when absent or unusable. */
	item = member_find(ev, "amount", &idx);
	if (is_str(item) || (cJSON_IsNumber(item) && finite_text(member_text(ev, idx, item))))
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
	struct span *spans = NULL;
	size_t n = 0;
	const cJSON *c;
	bool range = false;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	if (body == NULL) {
		body = "";
		len = 0;
	}
	if (memchr(body, '\0', len) != NULL) {
		*err = "body contains NUL bytes";
		return -1;
	}
	if (!utf8_valid(body, len)) {
		*err = "body is not valid UTF-8";
		return -1;
	}
	if (has_nul_escape(body, len)) {
		*err = "body contains \\u0000";
		return -1;
	}
	ev->json = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (ev->json == NULL || end == NULL || end < body || end > body + len ||
	    skip_ws(body, len, (size_t)(end - body)) != len) {
		*err = "body is not valid JSON";
		goto fail;
	}
	if (!cJSON_IsObject(ev->json)) {
		*err = "body is not a JSON object";
		goto fail;
	}
	cJSON_ArrayForEach(c, ev->json)
	{
		n++;
	}
	spans = calloc(n > 0 ? n : 1, sizeof(*spans));
	if (spans == NULL) {
		*err = "out of memory";
		goto fail;
	}
	if (!scan_members(body, len, spans, n, &range)) {
		*err = range ? "number out of range" : "body is not valid JSON";
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
		*err = "body is not a JSON object";
		goto fail;
	}
	/* No body text to check, but its strings still reach the database
	 * and the environment of actions. */
	cJSON_ArrayForEach(c, obj)
	{
		if ((c->string != NULL && !utf8_valid(c->string, strlen(c->string))) ||
		    (is_str(c) && !utf8_valid(c->valuestring, strlen(c->valuestring)))) {
			*err = "body is not valid UTF-8";
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
