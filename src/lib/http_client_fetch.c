/*
 * http_client_fetch.c: the blocking convenience for command-line tools: one
 * request on a private event_base, its answer copied out of the callback.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "http_client_int.h"

struct hc_fetch {
	struct event_base *base;
	struct http_client_resp_owned *out;
	bool done;
};

/* Until an answer arrives: nothing came back. */
static void hc_fetch_none(struct http_client_resp_owned *out)
{
	memset(out, 0, sizeof(*out));
	out->resp.kind = HTTP_CLIENT_ERR_INTERNAL;
	out->resp.error = "no answer";
	out->resp.body = "";
}

static void hc_fetch_cb(const struct http_client_resp *resp, void *arg)
{
	struct hc_fetch *f = arg;

	f->out->mem = hc_resp_pack(resp, &f->out->resp);
	f->done = true;
	event_base_loopbreak(f->base);
}

int http_client_fetch(const struct http_client_req *req, const char *ca_file,
                      struct http_client_resp_owned *out)
{
	struct sigaction ign, old;
	struct http_client *client = NULL;
	struct hc_fetch f;
	int i;

	hc_fetch_none(out);
	memset(&f, 0, sizeof(f));
	f.out = out;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);

	f.base = event_base_new();
	if (f.base == NULL)
		goto out;
	client = http_client_new(f.base, ca_file);
	if (client == NULL || http_client_request(client, req, hc_fetch_cb, &f) == NULL)
		goto out;
	while (!f.done && event_base_loop(f.base, EVLOOP_ONCE) == 0)
		;
	if (!f.done)
		out->resp.error = "event loop failed";
out:
	http_client_free(client);
	if (f.base != NULL) {
		/* Let an abandoned DNS lookup and the resolver finish freeing. */
		for (i = 0; i < 4; i++)
			event_base_loop(f.base, EVLOOP_NONBLOCK);
		event_base_free(f.base);
	}
	sigaction(SIGPIPE, &old, NULL);
	return out->resp.status != 0 ? 0 : -1;
}

void http_client_resp_owned_free(struct http_client_resp_owned *out)
{
	if (out == NULL)
		return;
	free(out->mem);
	memset(out, 0, sizeof(*out));
}
