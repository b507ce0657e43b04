/*
 * reconcile_record.c: a gateway answer as a store item (see
 * reconcile_record.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "jsonw.h"
#include "log.h"
#include "reconcile_record.h"
#include "stats.h"

/*
 * What actions read is the gateway's answer shaped like a callback: without
 * the API envelope, with the event name a callback carries. NULL when cJSON
 * cannot copy it.
 */
static char *record_item(const struct store *st, const struct pay_event *ev)
{
	cJSON *event = cJSON_Duplicate(ev->json, 1);
	char *text;
	struct jsonw w;

	if (event == NULL)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(event, "success");
	if (!cJSON_HasObjectItem(event, "event")) {
		char name[32];

		snprintf(name, sizeof(name), "payment.%s", event_status_name(ev->status));
		cJSON_AddStringToObject(event, "event", name);
	}
	text = cJSON_PrintUnformatted(event);
	cJSON_Delete(event);
	if (text == NULL)
		return NULL;
	jsonw_begin(&w);
	store_write_event(st, &w, ev, "reconciler", text, strlen(text));
	jsonw_bool(&w, "audit", false);
	free(text);
	return jsonw_finish(&w);
}

int reconcile_record(struct store *st, const struct pay_event *ev, store_done_cb cb, void *arg)
{
	char *item = record_item(st, ev);

	if (item == NULL)
		return -1;
	return store_submit(st, item, NULL, 0, cb, arg);
}

int reconcile_event_from_item(struct pay_event *ev, const cJSON *item, const char **err)
{
	cJSON *copy = cJSON_Duplicate(item, 1);

	if (copy == NULL) {
		memset(ev, 0, sizeof(*ev));
		*err = "cannot copy the list-payments item";
		return -1;
	}
	if (event_from_json(ev, copy, err) < 0)
		return -1;
	if (ev->status == STATUS_UNKNOWN) {
		*err = "unknown status";
		event_release(ev);
		return -1;
	}
	return 0;
}

void reconcile_missed_callback(const char *invoice, const char *how)
{
	struct jsonw w;
	char *detail;

	jsonw_begin(&w);
	jsonw_cstr(&w, "invoice", invoice);
	jsonw_cstr(&w, "how", how);
	detail = jsonw_finish(&w);

	metrics_inc(METRIC_MISSED_CALLBACKS, NULL);
	/* Not a row change of its own: the daemon writes it (alert.c). */
	alert_raise(ALERT_MISSED_CALLBACK, invoice, detail);
	free(detail);
	log_warnx("missed callback invoice=%s: paid at the gateway, no callback came (%s); "
	          "is the callback URL reachable from bayar.gg?",
	          invoice, how);
}
