/*
 * event.h: the payment event, the shared noun of bayarhook. It is what a
 * callback body (or a gateway API answer) becomes once parsed, and what
 * actions read their {field}, :name and BAYAR_* values from.
 */
#ifndef BAYARHOOK_EVENT_H
#define BAYARHOOK_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#include "verdict.h"

enum pay_status {
	STATUS_UNKNOWN = 0, /* not one of the four below */
	STATUS_PENDING,     /* created, not paid yet */
	STATUS_PAID,        /* final */
	STATUS_EXPIRED,     /* final unless a late paid arrives */
	STATUS_CANCELLED,   /* final unless a late paid arrives */
};
#define STATUS_MASK(s) (1u << (s))

#define EVENT_MAX_INVOICE_ID 255

enum pay_status event_status_parse(const char *s);
const char *event_status_name(enum pay_status s);

struct pay_event {
	cJSON *json;             /* the whole top-level object, owned */
	const char *invoice_id;  /* points into json */
	const char *status_text; /* points into json */
	enum pay_status status;
	const char *event_name;     /* "event" field or NULL */
	char final_amount[64];      /* PHP's string form of final_amount */
	char amount[64];            /* PHP's string form of amount, "" when absent */
	char body_timestamp[32];    /* body "timestamp" as PHP text, "" when absent */
	const char *body_signature; /* body "signature" or NULL */
	char **field_text;          /* PHP text of each top-level number, by member index */
	size_t nfields;             /* members of json, the length of field_text */
	enum verdict_reason why;    /* after a failed parse: why it is not an event */
	char errbuf[96];            /* holds *err when it names a key */
};

/*
 * Parses a callback body. Returns 0, or -1 with the reason in ev->why and
 * its client-facing text in *err ("body is not valid JSON", "duplicate key:
 * amount", ...): decide on ev->why, print *err.
 * Rejects: NUL bytes, invalid UTF-8, non-object JSON, duplicate top-level
 * keys, two top-level keys that give one BAYAR_* name (event_var_name:
 * "Invoice_ID" beside "invoice_id", "a-b" beside "a_b"), \u0000 escapes,
 * invoice_id/status not strings, final_amount not a number or numeric
 * string, numbers out of range. Also rejects what cJSON
 * tolerates but PHP's json_decode does not (leading zeros, "+1", \u with
 * bad hex, control characters in strings, non-JSON whitespace, more than
 * 511 levels of nesting).
 * ev need not be initialised. On failure ev holds nothing to free and *err
 * is static text or text inside ev, valid until ev is reused or released.
 */
int event_parse(struct pay_event *ev, const char *body, size_t len, const char **err)
    __attribute__((warn_unused_result));
/*
 * Builds from an already parsed object (gateway API answer); takes ownership
 * of obj even on failure. The number literals are gone, so numbers print as
 * integers when integral and below 2^53, else as PHP floats.
 */
int event_from_json(struct pay_event *ev, cJSON *obj, const char **err)
    __attribute__((warn_unused_result));
/*
 * Frees what ev owns and zeroes it; accepts NULL, a zeroed or a failed ev.
 * Not named event_free: libevent exports that symbol, and ours would take
 * over every libevent event_free() call in the binary.
 */
void event_release(struct pay_event *ev);

/*
 * The text of a top-level field as PHP would turn it into a string after
 * json_decode ("" for null/false, "1" for true, numbers PHP-style, strings as
 * is); NULL when absent or an array/object. Returned text is owned by the
 * event (valid until event_release). Used for {field}, :name and BAYAR_*.
 */
const char *event_field(struct pay_event *ev, const char *name);

/*
 * The environment variable an exec action gets a field in (SPEC §5):
 * "BAYAR_" and the name upper-cased, every byte outside [A-Za-z0-9_] as '_'.
 * event_parse refuses a body in which two keys give the same one. malloc'd.
 */
char *event_var_name(const char *field);

#endif
