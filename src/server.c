/*
 * server.c: evhttp listeners and routes. Limits on headers, body and time
 * are set on evhttp itself so that an oversized body is refused (413) before
 * it is read into memory. evhttp answers those refusals on its own, so to
 * leave an audit row for them we peek at each connection's input as it
 * arrives (server_peek) and audit a request whose Content-Length is over the
 * limit before evhttp throws it away.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/filter.h>
#include <poll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "callback.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "xmalloc.h"

#define SERVER_MAX_HEADERS 16384
#define SERVER_MAX_LISTENERS 16
/*
 * A graceful stop waits until no request bytes arrived for this long, so
 * that a client that connected before the listener closed and is still
 * sending is answered rather than cut off.
 */
#define SERVER_QUIET_MS 250

struct server {
	struct event_base *base;
	struct evhttp *http;
	const struct config *cfg;
	struct store *store;
	struct server_hooks hooks;
	struct evhttp_bound_socket *listeners[SERVER_MAX_LISTENERS];
	int nlisteners;
	bool from_systemd;          /* the listeners are systemd's (bayarhook.socket) */
	bool stopping;              /* server_stop_accepting() was called */
	struct timespec last_input; /* CLOCK_MONOTONIC of the last bytes received */
	unsigned inflight;
	char address[128];
	struct event *sweep; /* request deadlines, once a second */
};

static void deadline_stop(struct evhttp_request *req);

struct reply_ctx {
	struct server *srv;
	struct evhttp_request *req; /* NULL for audit-only requests */
};

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

static void send_json(struct server *srv, struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	/* Stopping: no keep-alive, so evhttp closes the connection after this answer. */
	if (srv->stopping)
		evhttp_add_header(out, "Connection", "close");
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (buf)
		evbuffer_add(buf, body, strlen(body));
	evhttp_send_reply(req, status, reason_phrase(status), buf);
	if (buf)
		evbuffer_free(buf);
}

void server_real_client(const struct cidr_list *trusted, const char *peer, const char *xff,
                        const char *xreal, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", peer);
	if (!cidr_list_match(trusted, peer))
		return;
	if (xff && *xff) {
		char buf[2048], *tok, *save = NULL;
		char *list[64];
		int n = 0;

		snprintf(buf, sizeof(buf), "%s", xff);
		for (tok = strtok_r(buf, ",", &save); tok && n < 64;
		     tok = strtok_r(NULL, ",", &save)) {
			while (isspace((unsigned char)*tok))
				tok++;
			for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);
			     e--)
				e[-1] = '\0';
			list[n++] = tok;
		}
		/* Walk back from the proxy nearest to us; the first untrusted hop is the client. */
		for (int i = n - 1; i >= 0; i--) {
			if (!cidr_addr_valid(list[i]))
				return; /* garbage: believe nothing further left */
			snprintf(out, outlen, "%s", list[i]);
			if (!cidr_list_match(trusted, list[i]))
				return;
		}
		return;
	}
	if (xreal && cidr_addr_valid(xreal))
		snprintf(out, outlen, "%s", xreal);
}

static void client_of(struct server *srv, struct evhttp_request *req, char *peer, size_t peerlen,
                      char *real, size_t reallen)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);

	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(peer, peerlen, "%s", addr ? addr : "");
	server_real_client(&srv->cfg->trusted_proxies, peer,
	                   evhttp_find_header(h, "X-Forwarded-For"),
	                   evhttp_find_header(h, "X-Real-IP"), real, reallen);
}

static void callback_replied(const struct callback_answer *ans, void *arg)
{
	struct reply_ctx *rc = arg;

	rc->srv->inflight--;
	if (rc->req) {
		struct evkeyvalq *out = evhttp_request_get_output_headers(rc->req);
		char ra[16];

		if (ans->retry_after > 0) {
			snprintf(ra, sizeof(ra), "%d", ans->retry_after);
			evhttp_add_header(out, "Retry-After", ra);
		}
		if (ans->allow_post)
			evhttp_add_header(out, "Allow", "POST");
		send_json(rc->srv, rc->req, ans->status, ans->body);
	}
	free(rc);
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

static void handle_callback(struct server *srv, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct callback_request cr;
	struct reply_ctx *rc = xcalloc(1, sizeof(*rc));
	char peer[64], real[64];
	size_t len = evbuffer_get_length(in);

	rc->srv = srv;
	rc->req = req;
	client_of(srv, req, peer, sizeof(peer), real, sizeof(real));
	memset(&cr, 0, sizeof(cr));
	cr.method = method_name(evhttp_request_get_command(req));
	cr.peer_addr = peer;
	cr.remote_addr = real;
	cr.headers = evhttp_request_get_input_headers(req);
	cr.body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
	cr.body_len = len;
	/* allow_from, the method and the size are the decision's (decision.c). */
	srv->inflight++;
	callback_handle(srv->cfg, srv->store, &cr, callback_replied, rc);
}

static void handle_healthz(struct server *srv, struct evhttp_request *req)
{
	bool up = srv->hooks.db_up ? srv->hooks.db_up(srv->hooks.arg) : false;

	if (up)
		send_json(srv, req, 200, "{\"status\":\"ok\",\"database\":\"up\"}");
	else
		send_json(srv, req, 503, "{\"status\":\"degraded\",\"database\":\"down\"}");
}

static void handle_metrics(struct server *srv, struct evhttp_request *req)
{
	size_t len = 0;
	char *text;
	struct evbuffer *buf;

	metrics_set(METRIC_DATABASE_UP, NULL,
	            srv->hooks.db_up && srv->hooks.db_up(srv->hooks.arg) ? 1 : 0);
	text = metrics_render(&len);
	buf = evbuffer_new();
	if (srv->stopping)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	if (buf && text)
		evbuffer_add(buf, text, len);
	evhttp_send_reply(req, text ? 200 : 503, text ? "OK" : "Service Unavailable", buf);
	if (buf)
		evbuffer_free(buf);
	free(text);
}

static void server_route(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	deadline_stop(req);
	if (path == NULL)
		path = "/";
	if (strcmp(path, srv->cfg->callback_path) == 0) {
		handle_callback(srv, req);
		return;
	}
	if (strcmp(path, "/healthz") == 0 && (evhttp_request_get_command(req) == EVHTTP_REQ_GET ||
	                                      evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)) {
		handle_healthz(srv, req);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		handle_metrics(srv, req);
		return;
	}
	send_json(srv, req, 404, "{\"success\":false,\"error\":\"not found\"}");
}

/*
 * Audits a request that evhttp is about to refuse for its Content-Length:
 * the whole header block is at the start of the input buffer here, before
 * evhttp parses (and drains) it. A header block that arrives in several
 * reads is not seen; evhttp still refuses it, without an audit row.
 */
static void server_peek_audit(struct server *srv, struct bufferevent *bev, const char *hdr,
                              size_t hdrlen)
{
	const char *line_end = memchr(hdr, '\n', hdrlen);
	const char *p, *sp1, *sp2;
	struct evkeyvalq headers;
	const char *cl, *qmark;
	char method[16], path[512], peer[64] = "", real[64];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t plen;
	long long n;
	char *end;

	if (line_end == NULL)
		return;
	sp1 = memchr(hdr, ' ', (size_t)(line_end - hdr));
	if (sp1 == NULL || (size_t)(sp1 - hdr) >= sizeof(method))
		return;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
	if (sp2 == NULL)
		return;
	plen = (size_t)(sp2 - sp1 - 1);
	if (plen >= sizeof(path))
		return;
	memcpy(method, hdr, (size_t)(sp1 - hdr));
	method[sp1 - hdr] = '\0';
	memcpy(path, sp1 + 1, plen);
	path[plen] = '\0';
	if ((qmark = strchr(path, '?')) != NULL)
		path[qmark - path] = '\0';
	if (strcmp(path, srv->cfg->callback_path) != 0)
		return;

	TAILQ_INIT(&headers);
	for (p = line_end + 1; p < hdr + hdrlen;) {
		const char *e = memchr(p, '\n', (size_t)(hdr + hdrlen - p));
		const char *colon;
		char key[128], val[1024];
		size_t kl, vl;

		if (e == NULL)
			break;
		colon = memchr(p, ':', (size_t)(e - p));
		if (colon && (kl = (size_t)(colon - p)) < sizeof(key)) {
			const char *v = colon + 1, *ve = e;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			vl = (size_t)(ve - v);
			if (vl >= sizeof(val))
				vl = sizeof(val) - 1;
			memcpy(key, p, kl);
			key[kl] = '\0';
			memcpy(val, v, vl);
			val[vl] = '\0';
			evhttp_add_header(&headers, key, val);
		}
		p = e + 1;
	}
	cl = evhttp_find_header(&headers, "Content-Length");
	n = cl ? strtoll(cl, &end, 10) : -1;
	if (cl && *end == '\0' && n > srv->cfg->max_body_bytes) {
		struct callback_request cr;
		struct reply_ctx *rc = xcalloc(1, sizeof(*rc));

		if (getpeername(bufferevent_getfd(bev), (struct sockaddr *)&ss, &sl) == 0) {
			void *a = ss.ss_family == AF_INET6
			              ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
			              : (void *)&((struct sockaddr_in *)&ss)->sin_addr;

			inet_ntop(ss.ss_family, a, peer, sizeof(peer));
		}
		server_real_client(&srv->cfg->trusted_proxies, peer,
		                   evhttp_find_header(&headers, "X-Forwarded-For"),
		                   evhttp_find_header(&headers, "X-Real-IP"), real, sizeof(real));
		memset(&cr, 0, sizeof(cr));
		rc->srv = srv;
		cr.method = method;
		cr.peer_addr = peer;
		cr.remote_addr = real;
		cr.headers = &headers;
		cr.body = "";
		/* evhttp answers 413 itself, whatever else is wrong with the request. */
		cr.refused = REASON_TOO_LARGE;
		srv->inflight++;
		callback_handle(srv->cfg, srv->store, &cr, callback_replied, rc);
	}
	evhttp_clear_headers(&headers);
}

/*
 * request_timeout bounds the whole time to send a request, not only the
 * gap between two reads (which is all evhttp's own timeout measures), so
 * that a sender dripping a byte at a time cannot hold a connection. evhttp
 * gives no per-connection hook with a destructor, so the deadlines live in
 * a table indexed by descriptor, and a socket is identified by its
 * SO_COOKIE: an expired deadline shuts a socket down only when it is still
 * the same socket, and evhttp then closes the connection itself.
 */
struct deadline {
	uint64_t cookie;
	struct timespec due;
	bool active;
};
static struct deadline *deadlines;
static int ndeadlines;

static uint64_t socket_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0)
		return 0;
	return cookie;
}

/* The first bytes of a request start its clock. */
static void deadline_start(struct server *srv, int fd)
{
	uint64_t cookie;

	if (fd < 0 || srv->cfg->request_timeout <= 0)
		return;
	if (fd >= ndeadlines) {
		int n = fd + 1024;
		struct deadline *d = realloc(deadlines, (size_t)n * sizeof(*d));

		if (d == NULL)
			return;
		memset(d + ndeadlines, 0, (size_t)(n - ndeadlines) * sizeof(*d));
		deadlines = d;
		ndeadlines = n;
	}
	cookie = socket_cookie(fd);
	if (deadlines[fd].active && deadlines[fd].cookie == cookie)
		return;
	deadlines[fd].cookie = cookie;
	deadlines[fd].active = true;
	clock_gettime(CLOCK_MONOTONIC, &deadlines[fd].due);
	deadlines[fd].due.tv_sec += srv->cfg->request_timeout;
}

/* A request that reached the router has been received in full. */
static void deadline_stop(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd >= 0 && fd < ndeadlines)
		deadlines[fd].active = false;
}

static void deadline_sweep(evutil_socket_t unused, short what, void *arg)
{
	struct timespec now;

	(void)unused;
	(void)what;
	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (int fd = 0; fd < ndeadlines; fd++) {
		struct deadline *d = &deadlines[fd];

		if (!d->active || d->due.tv_sec > now.tv_sec ||
		    (d->due.tv_sec == now.tv_sec && d->due.tv_nsec > now.tv_nsec))
			continue;
		d->active = false;
		if (socket_cookie(fd) == d->cookie) {
			log_info("request_timeout: closing a connection that did not send its "
			         "request in time fd=%d",
			         fd);
			shutdown(fd, SHUT_RDWR);
		}
	}
}

/* evbuffer callbacks have no destructor, so the server is found here, not in an allocation. */
static struct server *peek_server;

static void server_peek(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct server *srv = peek_server;
	struct bufferevent *bev = arg;
	struct evbuffer_ptr end;
	size_t len = evbuffer_get_length(buf);
	unsigned char *data;

	if (info->n_added > 0 && srv != NULL) {
		clock_gettime(CLOCK_MONOTONIC, &srv->last_input);
		deadline_start(srv, bufferevent_getfd(bev));
	}
	if (info->n_added == 0 || len < 16 || len - info->n_added != 0)
		return; /* only a read that starts a fresh header block */
	end = evbuffer_search(buf, "\r\n\r\n", 4, NULL);
	if (end.pos < 0 || (size_t)end.pos > SERVER_MAX_HEADERS)
		return;
	data = evbuffer_pullup(buf, end.pos + 4);
	if (data)
		server_peek_audit(srv, bev, (const char *)data, (size_t)end.pos + 4);
}

static struct bufferevent *server_new_bev(struct event_base *base, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	(void)arg;
	if (bev)
		evbuffer_add_cb(bufferevent_get_input(bev), server_peek, bev);
	return bev;
}

static void server_apply_limits(struct server *srv)
{
	evhttp_set_max_headers_size(srv->http, SERVER_MAX_HEADERS);
	evhttp_set_max_body_size(srv->http, srv->cfg->max_body_bytes);
	evhttp_set_timeout(srv->http, srv->cfg->request_timeout);
}

struct server *server_new(struct event_base *base, const struct config *cfg, struct store *st,
                          const int *fds, int nfds, const struct server_hooks *hooks, char *err,
                          size_t errlen)
{
	struct server *srv = xcalloc(1, sizeof(*srv));

	if ((srv->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "cannot create the HTTP server");
		goto fail;
	}
	srv->base = base;
	srv->cfg = cfg;
	srv->store = st;
	if (hooks)
		srv->hooks = *hooks;
	peek_server = srv;
	/* Every method reaches us, so that a wrong one is answered 405 and audited. */
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                          EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                          EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                          EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(srv->http, server_route, srv);
	{
		struct timeval second = {1, 0};

		srv->sweep = event_new(base, -1, EV_PERSIST, deadline_sweep, srv);
		if (srv->sweep == NULL || event_add(srv->sweep, &second) < 0) {
			snprintf(err, errlen, "cannot start the request deadline timer");
			goto fail;
		}
	}
	evhttp_set_bevcb(srv->http, server_new_bev, srv);
	server_apply_limits(srv);

	if (nfds > 0) {
		for (int i = 0; i < nfds && i < SERVER_MAX_LISTENERS; i++) {
			evutil_make_socket_nonblocking(fds[i]);
			srv->listeners[srv->nlisteners] =
			    evhttp_accept_socket_with_handle(srv->http, fds[i]);
			if (srv->listeners[srv->nlisteners] == NULL) {
				snprintf(err, errlen, "cannot accept on socket fd %d from systemd",
				         fds[i]);
				goto fail;
			}
			srv->nlisteners++;
		}
		srv->from_systemd = true;
		snprintf(srv->address, sizeof(srv->address), "systemd socket (%d fd%s)", nfds,
		         nfds > 1 ? "s" : "");
	} else {
		unsigned short port = (unsigned short)cfg->listen.port;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		srv->listeners[0] =
		    evhttp_bind_socket_with_handle(srv->http, cfg->listen.host, port);
		if (srv->listeners[0] == NULL) {
			snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen.text,
			         strerror(errno));
			goto fail;
		}
		srv->nlisteners = 1;
		snprintf(srv->address, sizeof(srv->address), "%s", cfg->listen.text);
		if (getsockname(evhttp_bound_socket_get_fd(srv->listeners[0]),
		                (struct sockaddr *)&ss, &sl) == 0 &&
		    port == 0) {
			char a[64] = "";
			unsigned short p;

			if (ss.ss_family == AF_INET6) {
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a,
				          sizeof(a));
				p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
				snprintf(srv->address, sizeof(srv->address), "[%s]:%u", a, p);
			} else {
				inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a,
				          sizeof(a));
				p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
				snprintf(srv->address, sizeof(srv->address), "%s:%u", a, p);
			}
		}
	}
	return srv;
fail:
	server_free(srv);
	return NULL;
}

void server_set_config(struct server *srv, const struct config *cfg)
{
	srv->cfg = cfg;
	server_apply_limits(srv);
}

/*
 * Makes the kernel drop new SYNs to a listening socket while connections
 * already queued (and handshakes already answered) still complete: a
 * classic BPF socket filter sees the TCP header at offset 0 and drops
 * packets with SYN set and ACK clear. Clients retry the SYN and find the
 * port closed (refused) by then, instead of being reset after sending.
 */
static int server_refuse_new(evutil_socket_t fd)
{
	static struct sock_filter code[] = {
	    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13), /* TCP flags */
	    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, 0),          /* SYN alone: drop */
	    BPF_STMT(BPF_RET | BPF_K, 0xffffffff), /* anything else: keep */
	};
	struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static void server_close_listener(struct server *srv, int i)
{
	if (srv->listeners[i])
		evhttp_del_accept_socket(srv->http, srv->listeners[i]);
	srv->listeners[i] = NULL;
}

/*
 * Closing a listening socket resets the connections in its accept queue,
 * though their clients may have sent a whole request. systemd's sockets
 * keep their queue for the next bayarhook, so they are closed at once; our
 * own first stop taking new connections and are closed by server_drained()
 * once their queue is empty.
 */
void server_stop_accepting(struct server *srv)
{
	srv->stopping = true;
	clock_gettime(CLOCK_MONOTONIC, &srv->last_input);
	for (int i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i] == NULL)
			continue;
		if (!srv->from_systemd &&
		    server_refuse_new(evhttp_bound_socket_get_fd(srv->listeners[i])) == 0)
			continue;
		server_close_listener(srv, i);
	}
}

bool server_drained(struct server *srv)
{
	struct timespec now;
	bool open = false;
	long ms;

	for (int i = 0; i < srv->nlisteners; i++) {
		struct pollfd pfd = {0, POLLIN, 0};

		if (srv->listeners[i] == NULL)
			continue;
		pfd.fd = evhttp_bound_socket_get_fd(srv->listeners[i]);
		if (poll(&pfd, 1, 0) == 0)
			server_close_listener(srv, i); /* nothing queued */
		else
			open = true; /* accepted on the next turn of the loop */
	}
	if (open)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(now.tv_sec - srv->last_input.tv_sec) * 1000 +
	     (now.tv_nsec - srv->last_input.tv_nsec) / 1000000;
	return ms >= SERVER_QUIET_MS;
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
	if (srv && srv->sweep)
		event_free(srv->sweep);
	free(deadlines);
	deadlines = NULL;
	ndeadlines = 0;
	if (srv == NULL)
		return;
	if (srv->http)
		evhttp_free(srv->http);
	if (peek_server == srv)
		peek_server = NULL;
	free(srv);
}
