/*
 * fuzz_callback.c: libFuzzer target for everything a stranger's callback
 * body reaches before a signature is checked: the whole decision
 * (decision_make: event_parse, the PHP JSON rules, verify_signature,
 * verify_timestamp), event_field and the amount text; the BAYAR_* names of
 * an accepted body's keys (event_var_name), which must all differ (SPEC
 * §13: no field can pose as another); and jsonw, which
 * writes any body and header into the audit item: whatever the bytes, the
 * item must parse as JSON and hold valid UTF-8 without NUL.
 *
 *   scripts/fuzz 60 fuzz_callback   (its source list is the link line)
 *   ./build-fuzz/fuzz_callback fuzz/corpus/callback
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "decision.h"
#include "event.h"
#include "jsonw.h"
#include "phpnum.h"
#include "utf8.h"
#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Aborts when two keys of an accepted event give one BAYAR_* name. */
static void check_var_names(const struct pay_event *ev)
{
	char **names = calloc(ev->nfields + 1, sizeof(*names));
	const cJSON *c;
	size_t n = 0;

	if (names == NULL)
		return;
	cJSON_ArrayForEach(c, ev->json)
	{
		if (c->string != NULL && c->string[0] != '\0' && n < ev->nfields)
			names[n++] = event_var_name(c->string);
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			abort();
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static const char *const fields[] = {
    "invoice_id", "status",  "final_amount", "amount",      "timestamp", "signature",
    "event",      "paid_at", "has_file",     "unique_code", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = {"whsec_test_secret", "whsec_rotated_2"};
	struct pay_event ev;
	const char *err = NULL;
	char *text;

	/* Exact-size buffer: ASan sees any read past the body. */
	if (event_parse(&ev, (const char *)data, size, &err) == 0) {
		const char *ts = ev.body_timestamp;

		if (ev.invoice_id == NULL || ev.status == STATUS_UNKNOWN ||
		    ev.final_amount[0] == '\0')
			abort();
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			const char *v = event_field(&ev, fields[i]);
			/* Touch every byte so ASan checks the text's lifetime. */
			if (v != NULL && strlen(v) > 65536 + size)
				abort();
		}
		check_var_names(&ev);
		(void)verify_signature(secrets, 2, ev.invoice_id, ev.status_text, ev.final_amount,
		                       ts, ev.body_signature);
		(void)verify_timestamp(ts, 1705312530, 300);
		event_release(&ev);
	} else if (err == NULL || ev.json != NULL) {
		abort();
	}

	/* The same bytes as header texts. */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	{
		struct config cfg;
		struct decision d;
		struct decision_request req = {.method = "POST",
		                               .remote_addr = "127.0.0.1",
		                               .body = (const char *)data,
		                               .body_len = size};

		static char current[] = "whsec_test_secret", older[] = "whsec_rotated_2";
		char *cfg_secrets[] = {current, older};

		memset(&cfg, 0, sizeof(cfg));
		cfg.secrets = cfg_secrets;
		cfg.nsecrets = 2;
		cfg.replay_window = 300;
		cfg.max_body_bytes = 65536;
		/* The body alone (its own signature and timestamp), then the bytes as headers. */
		for (int round = 0; round < 2; round++) {
			if (round == 1) {
				req.x_invoice_id = text;
				req.x_webhook_signature = text;
				req.x_webhook_timestamp = text;
			}
			decision_make(&d, &cfg, &req, 1705312530);
			if (d.reason == REASON_NONE
			        ? d.ev.invoice_id == NULL || d.message[0] != '\0'
			        : d.message[0] == '\0' ||
			              verdict_answer(decision_verdict(&d)) != NULL)
				abort();
			decision_release(&d);
		}
	}
	(void)verify_timestamp(text, 1705312530, 300);
	(void)verify_signature(secrets, 2, "INV", "paid", "1", "2", text);
	if (size == sizeof(double)) {
		double d;
		char out[64];
		memcpy(&d, data, sizeof(d));
		phpnum_float(d, out, sizeof(out));
	}
	{
		struct jsonw w;
		cJSON *o;
		const cJSON *b;
		char *item;

		jsonw_begin(&w);
		jsonw_str(&w, "body", (const char *)data, size);
		jsonw_begin_object(&w, "headers");
		jsonw_str(&w, text, (const char *)data, size / 2); /* text: a NUL-ended copy */
		jsonw_end_object(&w);
		item = jsonw_finish(&w);
		free(text);
		if (item == NULL)
			return 0;
		o = cJSON_Parse(item);
		b = cJSON_GetObjectItemCaseSensitive(o, "body");
		if (!cJSON_IsString(b) || strlen(b->valuestring) < size ||
		    !utf8_valid(b->valuestring, strlen(b->valuestring)))
			abort();
		cJSON_Delete(o);
		free(item);
	}
	return 0;
}
