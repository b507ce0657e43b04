/*
 * server.c: listeners, routes and limits on top of our own request reader
 * (lib/httpd). The reader bounds every request (head, body, time, bytes
 * buffered per connection) and answers the requests it refuses itself;
 * server.c routes the whole ones and has a refusal on the callback path
 * audited by callback.c under the same rules as callback.c's own refusals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "callback.h"
#include "forwarded.h"
#include "jsonw.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "xmalloc.h"

struct server {
	struct event_base *base;
	struct httpd *httpd;
	const struct config *cfg;
	struct store *store;
	struct server_hooks hooks;
	unsigned inflight; /* handed to callback.c, not answered (or audited) yet */
	char address[128];
};

/* One request handed to callback.c; req is NULL for the audit of a refusal. */
struct server_call {
	struct server *srv;
	struct httpd_req *req;
};

static const enum verdict_reason refusal_reasons[HTTPD_REFUSE_COUNT] = {
    [HTTPD_REFUSE_MALFORMED] = REASON_HTTP_SYNTAX,
    [HTTPD_REFUSE_INCOMPLETE] = REASON_HTTP_INCOMPLETE,
    [HTTPD_REFUSE_METHOD] = REASON_HTTP_METHOD,
    [HTTPD_REFUSE_VERSION] = REASON_HTTP_VERSION,
    [HTTPD_REFUSE_URL_TOO_LONG] = REASON_URL_TOO_LONG,
    [HTTPD_REFUSE_HEADERS_TOO_LARGE] = REASON_HEADERS_TOO_LARGE,
    [HTTPD_REFUSE_BAD_LENGTH] = REASON_BAD_LENGTH,
    [HTTPD_REFUSE_TRANSFER_ENCODING] = REASON_TRANSFER_ENCODING,
    [HTTPD_REFUSE_LENGTH_AND_CHUNKED] = REASON_LENGTH_AND_CHUNKED,
    [HTTPD_REFUSE_TOO_LARGE] = REASON_TOO_LARGE,
    [HTTPD_REFUSE_TIMEOUT] = REASON_REQUEST_TIMEOUT,
};

enum verdict_reason server_refusal_reason(enum httpd_refusal r)
{
	return (unsigned)r < HTTPD_REFUSE_COUNT ? refusal_reasons[r] : REASON_HTTP_SYNTAX;
}

void server_real_client(const struct cidr_list *trusted, const char *peer, const char *const *xff,
                        size_t nxff, const char *xreal, char *out, size_t outlen)
{
	forwarded_client(trusted, peer, xff, nxff, xreal, out, outlen);
}

/* The real client of msg: its peer, or what its trusted proxies say. */
static void client_of(const struct server *srv, const struct httpd_msg *m, char *out, size_t outlen)
{
	const char *xff[16];
	size_t n = 0;

	/* Only the last fields matter: the walk starts at the right end. */
	for (size_t i = 0; i < m->nheaders; i++) {
		if (strcasecmp(m->headers[i].name, "X-Forwarded-For") != 0)
			continue;
		if (n == sizeof(xff) / sizeof(xff[0])) {
			memmove(xff, xff + 1, sizeof(xff) - sizeof(xff[0]));
			n--;
		}
		xff[n++] = m->headers[i].value;
	}
	server_real_client(&srv->cfg->trusted_proxies, m->peer, xff, n,
	                   httpd_msg_header(m, "X-Real-IP"), out, outlen);
}

static void callback_replied(const struct callback_answer *ans, void *arg)
{
	struct server_call *call = arg;
	struct httpd_header hd[4];
	size_t n = 0;
	char ra[16];

	call->srv->inflight--;
	if (call->req != NULL) {
		hd[n++] = (struct httpd_header){"Content-Type", "application/json"};
		hd[n++] = (struct httpd_header){"Cache-Control", "no-store"};
		if (ans->retry_after > 0) {
			snprintf(ra, sizeof(ra), "%d", ans->retry_after);
			hd[n++] = (struct httpd_header){"Retry-After", ra};
		}
		if (ans->allow_post)
			hd[n++] = (struct httpd_header){"Allow", "POST"};
		httpd_reply(call->req, ans->status, hd, n, ans->body, strlen(ans->body));
	}
	free(call);
}

/* Hands a request (whole, or refused by the reader: why) to callback.c. */
static void server_callback(struct server *srv, const struct httpd_msg *m, struct httpd_req *req,
                            enum verdict_reason why)
{
	struct server_call *call = xcalloc(1, sizeof(*call));
	struct callback_request cr;
	char real[64];

	call->srv = srv;
	call->req = req;
	client_of(srv, m, real, sizeof(real));
	memset(&cr, 0, sizeof(cr));
	cr.method = m->method_name;
	cr.peer_addr = m->peer;
	cr.remote_addr = real;
	cr.headers = m->headers;
	cr.nheaders = m->nheaders;
	cr.body = m->body;
	cr.body_len = m->body_len;
	cr.refused = why;
	if (why != REASON_NONE) {
		cr.body_total = m->body_received;
		if (m->body_declared > 0 && (uint64_t)m->body_declared > cr.body_total)
			cr.body_total = (uint64_t)m->body_declared;
	}
	/* allow_from, the method and the size are the decision's (decision.c). */
	srv->inflight++;
	callback_handle(srv->cfg, srv->store, &cr, callback_replied, call);
}

static bool db_up(const struct server *srv)
{
	return srv->hooks.db_up ? srv->hooks.db_up(srv->hooks.arg) : false;
}

static const char *degraded(const struct server *srv)
{
	return srv->hooks.degraded ? srv->hooks.degraded(srv->hooks.arg) : NULL;
}

/*
 * SPEC §4, §12: degraded when the database is down or callbacks cannot be
 * committed now; "reason" says which, when it is more than "down".
 */
static void handle_healthz(struct server *srv, struct httpd_req *req)
{
	bool up = db_up(srv);
	const char *why = degraded(srv);
	struct jsonw w;
	char *text;

	if (up && why == NULL) {
		httpd_reply_json(req, 200, "{\"status\":\"ok\",\"database\":\"up\"}");
		return;
	}
	jsonw_begin(&w);
	jsonw_cstr(&w, "status", "degraded");
	jsonw_cstr(&w, "database", up ? "up" : "down");
	if (why != NULL)
		jsonw_cstr(&w, "reason", why);
	text = jsonw_finish(&w);
	httpd_reply_json(req, 503, text ? text : "{\"status\":\"degraded\"}");
	free(text);
}

static void handle_metrics(struct server *srv, struct httpd_req *req)
{
	static const struct httpd_header hd[] = {
	    {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
	size_t len = 0;
	char *text;

	/* "can commit" (SPEC §12): what /healthz says, as 1 or 0. */
	metrics_set(METRIC_DATABASE_UP, NULL, db_up(srv) && degraded(srv) == NULL ? 1 : 0);
	text = metrics_render(&len);
	if (text != NULL)
		httpd_reply(req, 200, hd, 1, text, len);
	else
		httpd_reply(req, 503, hd, 1, "", 0);
	free(text);
}

static void server_request(struct httpd_req *req, void *arg)
{
	struct server *srv = arg;
	const struct httpd_msg *m = httpd_req_msg(req);
	bool get = m->method == HTTPD_GET;

	if (strcmp(m->path, srv->cfg->callback_path) == 0) {
		server_callback(srv, m, req, REASON_NONE);
		return;
	}
	if (strcmp(m->path, "/healthz") == 0 && (get || m->method == HTTPD_HEAD)) {
		handle_healthz(srv, req);
		return;
	}
	if (strcmp(m->path, "/metrics") == 0 && get) {
		handle_metrics(srv, req);
		return;
	}
	httpd_reply_json(req, 404, "{\"success\":false,\"error\":\"not found\"}");
}

/*
 * A request the reader refused and answered. On the callback path, or when
 * no path could be read (it may have been meant for it: the reader stopped
 * before the URL, or the URL is not a path, as CONNECT's), it is audited
 * like callback.c's own refusals; on another path it is only answered, as
 * a whole request there would be. The URL of a refused request may still
 * hold its query (the reader stopped before splitting it).
 */
static void server_refused(const struct httpd_refused *r, void *arg)
{
	struct server *srv = arg;
	const char *path = r->msg->path;
	size_t len = strcspn(path, "?#");

	if (path[0] == '/' && (len != strlen(srv->cfg->callback_path) ||
	                       strncmp(path, srv->cfg->callback_path, len) != 0))
		return;
	server_callback(srv, r->msg, NULL, server_refusal_reason(r->reason));
}

static void limits_of(const struct config *cfg, struct httpd_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_body = (size_t)cfg->max_body_bytes;
	lim->request_timeout_ms = cfg->request_timeout * 1000;
	lim->backlog = 1024;
}

struct server *server_new(struct event_base *base, const struct config *cfg, struct store *st,
                          const int *fds, int nfds, const struct server_hooks *hooks, char *err,
                          size_t errlen)
{
	struct server *srv = xcalloc(1, sizeof(*srv));
	struct httpd_handlers on = {server_request, server_refused, srv};
	struct httpd_limits lim;

	srv->base = base;
	srv->cfg = cfg;
	srv->store = st;
	if (hooks)
		srv->hooks = *hooks;
	limits_of(cfg, &lim);
	srv->httpd = httpd_new(base, &lim, &on);
	if (nfds > 0) {
		for (int i = 0; i < nfds; i++)
			if (httpd_listen_fd(srv->httpd, fds[i], err, errlen) < 0)
				goto fail;
		snprintf(srv->address, sizeof(srv->address), "systemd socket (%d fd%s)", nfds,
		         nfds > 1 ? "s" : "");
	} else {
		char hostport[160];

		snprintf(hostport, sizeof(hostport),
		         strchr(cfg->listen.host, ':') ? "[%s]:%d" : "%s:%d", cfg->listen.host,
		         cfg->listen.port);
		if (httpd_listen(srv->httpd, hostport, err, errlen) < 0)
			goto fail;
		snprintf(srv->address, sizeof(srv->address), "%s", httpd_address(srv->httpd));
	}
	return srv;
fail:
	server_free(srv);
	return NULL;
}

void server_set_config(struct server *srv, const struct config *cfg)
{
	struct httpd_limits lim;

	srv->cfg = cfg;
	limits_of(cfg, &lim);
	httpd_set_limits(srv->httpd, &lim);
}

void server_stop_accepting(struct server *srv)
{
	httpd_stop_accepting(srv->httpd);
}

bool server_drained(struct server *srv)
{
	return httpd_drained(srv->httpd);
}

unsigned server_inflight(const struct server *srv)
{
	return srv->inflight;
}

const char *server_address(const struct server *srv)
{
	return srv->address;
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	httpd_free(srv->httpd);
	free(srv);
}
