/*
 * action_wa_store.c: the wa_store action (SPEC §9). Finds the invoice's
 * order (wa-store-orders.php?search=<invoice>), then completes or cancels
 * it (wa-store-complete.php), both through the process's gateway client,
 * so the store's calls share the reconciler's request budget and its
 * retries of 429 and 5xx. Idempotent: an order already in the wanted
 * state is success. What the store's rules forbid (completing an unpaid
 * or cancelled order, cancelling a completed one) is a permanent failure,
 * decided on the order's status before asking, or on the store's
 * "success": false when the status changed in between.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "action_wa_store.h"

#include "action_run.h"
#include "gateway.h"
#include "xmalloc.h"

#define WA_OUTPUT_MAX 8192

struct wa_store_action {
	bool cancel;
	bool notify;
};

enum wa_store_step action_wa_store_step(const char *status, bool cancel)
{
	if (strcmp(status, cancel ? "cancelled" : "completed") == 0)
		return WA_STORE_DONE;
	if (cancel)
		return strcmp(status, "completed") == 0 ? WA_STORE_FORBIDDEN : WA_STORE_CALL;
	/* SPEC §1: completed only from paid or processing. */
	return strcmp(status, "paid") == 0 || strcmp(status, "processing") == 0
	           ? WA_STORE_CALL
	           : WA_STORE_FORBIDDEN;
}

static int wa_prepare(struct action *a, const struct config *cfg, const struct action_conf *ac,
                      char *err, size_t errlen)
{
	struct wa_store_action *w = xcalloc(1, sizeof(*w));

	(void)cfg;
	(void)err;
	(void)errlen;
	a->priv = w;
	w->cancel = ac->operation == WA_STORE_CANCEL;
	w->notify = ac->notify;
	return 0;
}

static void wa_release(struct action *a)
{
	free(a->priv);
}

static void wa_finish(struct action_run *run, enum action_outcome o,
                      const struct gateway_reply *reply, const char *error)
{
	struct action_result res;

	action_result_init(&res, o);
	res.http_status = reply ? reply->http_status : 0;
	if (reply != NULL && reply->body != NULL) {
		res.output = reply->body;
		res.output_len = reply->body_len > WA_OUTPUT_MAX ? WA_OUTPUT_MAX : reply->body_len;
	}
	res.error = error;
	action_run_finish(run, &res);
}

/* A call that failed: the store's refusal is for good, the gateway's trouble is retried. */
static void wa_failed(struct action_run *run, const struct gateway_reply *reply)
{
	enum action_outcome o = ACTION_FAILED;

	if (reply->error == GATEWAY_ERR_REFUSED)
		o = ACTION_FAILED_PERMANENT;
	else if (reply->error == GATEWAY_ERR_HTTP &&
	         (reply->http_status == 400 || reply->http_status == 409 ||
	          reply->http_status == 422))
		o = ACTION_FAILED_PERMANENT;
	wa_finish(run, o, reply, reply->message ? reply->message : "gateway call failed");
}

static void wa_complete_done(const struct gateway_reply *reply, void *arg)
{
	struct action_run *run = arg;

	if (reply->error != GATEWAY_OK) {
		wa_failed(run, reply);
		return;
	}
	wa_finish(run, ACTION_SUCCEEDED, reply, NULL);
}

/*
 * The invoice's order among the search's: the one whose invoice_id is
 * ours, else the only one found (search matches the invoice id, SPEC §1).
 */
static const cJSON *wa_find(const cJSON *data, const char *invoice, int *found)
{
	const cJSON *o, *only = NULL;

	*found = cJSON_GetArraySize(data);
	cJSON_ArrayForEach(o, data)
	{
		const cJSON *inv = cJSON_GetObjectItemCaseSensitive(o, "invoice_id");

		if (cJSON_IsString(inv) && strcmp(inv->valuestring, invoice) == 0)
			return o;
		only = o;
	}
	return *found == 1 ? only : NULL;
}

static void wa_orders_done(const struct gateway_reply *reply, void *arg)
{
	struct action_run *run = arg;
	struct wa_store_action *w = run->action->priv;
	cJSON *j;
	const cJSON *order, *num, *st;
	char msg[256];
	int found = 0;

	if (reply->error != GATEWAY_OK) {
		wa_failed(run, reply);
		return;
	}
	j = cJSON_ParseWithLength(reply->body, reply->body_len);
	order = wa_find(cJSON_GetObjectItemCaseSensitive(j, "data"), run->ev.invoice_id, &found);
	num = cJSON_GetObjectItemCaseSensitive(order, "order_number");
	st = cJSON_GetObjectItemCaseSensitive(order, "status");
	if (!cJSON_IsString(num) || !cJSON_IsString(st)) {
		/* None yet is retried (the store may record it late); several is for a person. */
		snprintf(msg, sizeof(msg), "%s WA Store order for invoice %.64s",
		         found == 0 ? "no"
		         : order    ? "an unreadable"
		                    : "more than one",
		         run->ev.invoice_id);
		wa_finish(run, found > 1 ? ACTION_FAILED_PERMANENT : ACTION_FAILED, reply, msg);
		cJSON_Delete(j);
		return;
	}
	switch (action_wa_store_step(st->valuestring, w->cancel)) {
	case WA_STORE_DONE:
		wa_finish(run, ACTION_SUCCEEDED, reply, NULL);
		break;
	case WA_STORE_FORBIDDEN:
		snprintf(msg, sizeof(msg), "WA Store order %.40s is %.20s: cannot %s it",
		         num->valuestring, st->valuestring, w->cancel ? "cancel" : "complete");
		wa_finish(run, ACTION_FAILED_PERMANENT, reply, msg);
		break;
	case WA_STORE_CALL:
		gateway_wa_store_complete(action_ctx_gateway(run->ctx), num->valuestring, w->cancel,
		                          w->notify, run, wa_complete_done, run);
		break;
	}
	cJSON_Delete(j);
}

static int wa_start(struct action_run *run, char *err, size_t errlen)
{
	struct gateway *gw = action_ctx_gateway(run->ctx);

	if (gw == NULL) {
		snprintf(err, errlen, "no gateway client in this process");
		return -1;
	}
	/* The gateway calls back from its tick, never inside this call. */
	gateway_wa_store_orders(gw, run->ev.invoice_id, run, wa_orders_done, run);
	return 0;
}

/* The calls queued or in flight for this run are dropped, their answers ignored. */
static void wa_stop(struct action_run *run)
{
	gateway_cancel(action_ctx_gateway(run->ctx), run);
}

const struct action_ops action_wa_store_ops = {
    .name = "wa_store",
    .prepare = wa_prepare,
    .release = wa_release,
    .start = wa_start,
    .stop = wa_stop,
    .cancellable = true,
};
