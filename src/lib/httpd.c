/*
 * httpd.c: connections, requests and answers. One request per connection
 * is read at a time (httpd_parse.c), handed to the owner, answered, and
 * only once its answer has left are the bytes behind it read: a client that
 * pipelines without reading answers finds its connection stalled, not our
 * memory grown. Each connection holds one timer, whose meaning follows its
 * state: the whole-request deadline while a request is read (it starts at
 * accept for the first one), the keep-alive idle time between requests, the
 * write time of an answer, the lingering close after a refusal.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "httpd_int.h"
#include "log.h"
#include "xmalloc.h"

/* Discarded after a refusal before the connection is closed anyway. */
#define HTTPD_LINGER_MS 2000
#define HTTPD_LINGER_MAX (1024 * 1024)

struct httpd_req {
	struct httpd_conn *conn; /* NULL once the connection is gone */
	struct httpd_parsed d;
	size_t held;
	char peer[64];
};

static const struct {
	const char *name;
	int status;
	const char *message;
} httpd_refusals[HTTPD_REFUSE_COUNT] = {
    [HTTPD_REFUSE_MALFORMED] = {"malformed", 400, "malformed request"},
    [HTTPD_REFUSE_INCOMPLETE] = {"incomplete", 400, "request incomplete"},
    [HTTPD_REFUSE_METHOD] = {"method", 501, "method not implemented"},
    [HTTPD_REFUSE_VERSION] = {"version", 505, "HTTP version not supported"},
    [HTTPD_REFUSE_URL_TOO_LONG] = {"url_too_long", 414, "URI too long"},
    [HTTPD_REFUSE_HEADERS_TOO_LARGE] = {"headers_too_large", 431,
                                        "request header fields too large"},
    [HTTPD_REFUSE_BAD_LENGTH] = {"bad_length", 400, "invalid Content-Length"},
    [HTTPD_REFUSE_TRANSFER_ENCODING] = {"transfer_encoding", 501,
                                        "transfer encoding not implemented"},
    [HTTPD_REFUSE_LENGTH_AND_CHUNKED] = {"length_and_chunked", 400,
                                         "both Content-Length and Transfer-Encoding"},
    [HTTPD_REFUSE_TOO_LARGE] = {"too_large", 413, "body too large"},
    [HTTPD_REFUSE_TIMEOUT] = {"timeout", 408, "request timeout"},
};

const char *httpd_refusal_name(enum httpd_refusal r)
{
	return r < HTTPD_REFUSE_COUNT ? httpd_refusals[r].name : "?";
}

int httpd_refusal_status(enum httpd_refusal r)
{
	return r < HTTPD_REFUSE_COUNT ? httpd_refusals[r].status : 400;
}

const char *httpd_refusal_message(enum httpd_refusal r)
{
	return r < HTTPD_REFUSE_COUNT ? httpd_refusals[r].message : "bad request";
}

static void conn_arm(struct httpd_conn *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (ms > 0)
		evtimer_add(c->timer, &tv);
	else
		evtimer_del(c->timer);
}

static const char *reason_phrase(int status)
{
	const char *s = http_status_str((enum http_status)status);

	return s[0] == '<' ? "Status" : s;
}

/* Header text that cannot split or extend the answer, and is not ours to set. */
static bool header_ok(const struct httpd_header *hd)
{
	return hd->name && hd->value && hd->name[0] && strpbrk(hd->name, "\r\n:") == NULL &&
	       strpbrk(hd->value, "\r\n") == NULL && strcasecmp(hd->name, "Content-Length") != 0 &&
	       strcasecmp(hd->name, "Connection") != 0 &&
	       strcasecmp(hd->name, "Transfer-Encoding") != 0;
}

static void conn_answer(struct httpd_conn *c, int status, const struct httpd_header *hdrs, size_t n,
                        const char *body, size_t len, bool send_body, bool close)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (status < 100 || status > 999)
		status = 500;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
	for (size_t i = 0; i < n; i++)
		if (header_ok(&hdrs[i]))
			evbuffer_add_printf(out, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
	evbuffer_add_printf(out, "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len,
	                    close ? "close" : "keep-alive");
	if (send_body && len > 0)
		evbuffer_add(out, body, len);
	c->close_after = close;
	c->state = HTTPD_C_WRITING;
	conn_arm(c, c->h->lim.write_timeout_ms);
}

static void conn_refuse(struct httpd_conn *c)
{
	struct httpd *h = c->h;
	enum httpd_refusal why = c->parser.refusal;
	struct httpd_refused r = {why, httpd_refusal_status(why), &c->parser.msg};
	static const struct httpd_header json[] = {{"Content-Type", "application/json"},
	                                           {"Cache-Control", "no-store"}};
	char body[128];
	int n;

	h->st.refused[why]++;
	c->parser.msg.peer = c->peer;
	if (h->on.refused)
		h->on.refused(&r, h->on.arg);
	n = snprintf(body, sizeof(body), "{\"success\":false,\"error\":\"%s\"}",
	             httpd_refusal_message(why));
	conn_answer(c, r.status, json, 2, body, (size_t)n, true, true);
}

static void conn_dispatch(struct httpd_conn *c)
{
	struct httpd *h = c->h;
	struct httpd_req *req = xcalloc(1, sizeof(*req));

	req->conn = c;
	req->held = httpd_parser_held(&c->parser);
	httpd_parser_take(&c->parser, &req->d);
	snprintf(req->peer, sizeof(req->peer), "%s", c->peer);
	req->d.msg.peer = req->peer;
	c->req = req;
	c->state = HTTPD_C_HANDLING;
	evtimer_del(c->timer);
	h->st.inflight++;
	h->on.request(req, h->on.arg);
}

/* Parses what is buffered, as far as the state allows. */
static void conn_read(struct httpd_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->state == HTTPD_C_LINGER) {
		c->lingered += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (c->lingered > HTTPD_LINGER_MAX)
			httpd_conn_free(c);
		return;
	}
	while ((c->state == HTTPD_C_IDLE || c->state == HTTPD_C_READING) &&
	       evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		enum httpd_parse_result r;
		size_t used;

		if (c->state == HTTPD_C_IDLE) {
			c->state = HTTPD_C_READING;
			if (!c->deadline_armed)
				conn_arm(c, c->h->lim.request_timeout_ms);
			c->deadline_armed = true;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		r = httpd_parser_feed(&c->parser, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (c->parser.want_continue && !c->continue_sent && r == HTTPD_PARSE_MORE) {
			c->continue_sent = true;
			bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		}
		if (r == HTTPD_PARSE_REQUEST) {
			conn_dispatch(c);
			return;
		}
		if (r == HTTPD_PARSE_REFUSED) {
			conn_refuse(c);
			return;
		}
	}
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_read(arg);
}

/* An answer has left: close, linger, or read the next request. */
static void conn_writecb(struct bufferevent *bev, void *arg)
{
	struct httpd_conn *c = arg;
	struct timespec now;

	(void)bev;
	if (c->state != HTTPD_C_WRITING)
		return; /* a 100 Continue */
	if (c->close_after) {
		if (c->peer_eof) {
			httpd_conn_free(c);
			return;
		}
		/* Closing with unread input would reset the connection and lose the answer. */
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		c->state = HTTPD_C_LINGER;
		conn_arm(c, HTTPD_LINGER_MS);
		conn_read(c);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	c->since = now;
	c->served++;
	c->continue_sent = false;
	c->deadline_armed = false;
	c->state = HTTPD_C_IDLE;
	httpd_parser_reset(&c->parser, c->h->lim.max_body);
	conn_arm(c, c->h->lim.idle_timeout_ms);
	conn_read(c);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct httpd_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR) {
		httpd_conn_free(c);
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	c->peer_eof = true;
	switch (c->state) {
	case HTTPD_C_IDLE:
	case HTTPD_C_LINGER:
		httpd_conn_free(c);
		break;
	case HTTPD_C_READING:
		/* A half-closed client may still read the answer. */
		httpd_parser_refuse(&c->parser, HTTPD_REFUSE_INCOMPLETE);
		conn_refuse(c);
		break;
	case HTTPD_C_HANDLING:
	case HTTPD_C_WRITING:
		c->close_after = true;
		break;
	}
}

static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case HTTPD_C_READING:
		httpd_parser_refuse(&c->parser, HTTPD_REFUSE_TIMEOUT);
		conn_refuse(c);
		break;
	case HTTPD_C_HANDLING:
		break;
	default: /* idle, an answer not taken, lingering */
		httpd_conn_free(c);
		break;
	}
}

static void peer_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	snprintf(out, outlen, "unknown");
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
		          (socklen_t)outlen);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          out, (socklen_t)outlen);
	else if (sa->sa_family == AF_UNIX)
		snprintf(out, outlen, "unix");
}

static void httpd_conn_new(struct httpd *h, evutil_socket_t fd, const struct sockaddr *sa,
                           int salen)
{
	struct httpd_conn *c;

	(void)salen;
	if (h->st.connections >= h->lim.max_conns) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
		                           "Content-Type: application/json\r\n"
		                           "Content-Length: 48\r\nRetry-After: 1\r\n"
		                           "Connection: close\r\n\r\n"
		                           "{\"success\":false,\"error\":\"too many connections\"}";

		h->st.over_capacity++;
		httpd_ratelog(&h->log_cap, "connection limit reached: new connections closed");
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->h = h;
	c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(h->base, conn_timer, c);
	if (c->bev == NULL || c->timer == NULL) {
		/* libevent's own allocation failed: drop this client, keep serving. */
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->timer)
			event_free(c->timer);
		free(c);
		return;
	}
	peer_text(sa, c->peer, sizeof(c->peer));
	httpd_parser_init(&c->parser, h->lim.max_body);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTPD_READ_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	clock_gettime(CLOCK_MONOTONIC, &c->since);
	c->state = HTTPD_C_IDLE;
	c->deadline_armed = true; /* the first request's clock starts at accept */
	conn_arm(c, h->lim.request_timeout_ms ? h->lim.request_timeout_ms : h->lim.idle_timeout_ms);
	TAILQ_INSERT_TAIL(&h->conns, c, link);
	h->st.connections++;
	h->st.accepted++;
}

void httpd_conn_free(struct httpd_conn *c)
{
	struct httpd *h = c->h;

	if (c->req) {
		c->req->conn = NULL; /* the owner's answer will only free it */
		h->st.inflight--;
	}
	TAILQ_REMOVE(&h->conns, c, link);
	h->st.connections--;
	event_free(c->timer);
	bufferevent_free(c->bev);
	httpd_parser_free(&c->parser);
	free(c);
}

const struct httpd_msg *httpd_req_msg(const struct httpd_req *req)
{
	return &req->d.msg;
}

void httpd_reply(struct httpd_req *req, int status, const struct httpd_header *headers, size_t n,
                 const char *body, size_t len)
{
	struct httpd_conn *c = req->conn;

	if (c != NULL) {
		bool close = !req->d.keep_alive || c->h->stopping || c->peer_eof;

		c->h->st.inflight--;
		c->req = NULL;
		conn_answer(c, status, headers, n, body, len, req->d.msg.method != HTTPD_HEAD,
		            close);
	}
	httpd_parsed_free(&req->d);
	free(req);
}

void httpd_reply_json(struct httpd_req *req, int status, const char *json)
{
	static const struct httpd_header hd[] = {{"Content-Type", "application/json"},
	                                         {"Cache-Control", "no-store"}};

	httpd_reply(req, status, hd, 2, json, strlen(json));
}

static void limits_apply(struct httpd *h, const struct httpd_limits *lim)
{
	h->lim = *lim;
	if (h->lim.idle_timeout_ms <= 0)
		h->lim.idle_timeout_ms = 5000;
	if (h->lim.write_timeout_ms <= 0)
		h->lim.write_timeout_ms =
		    h->lim.request_timeout_ms > 0 ? h->lim.request_timeout_ms : 10000;
	if (h->lim.max_conns == 0)
		h->lim.max_conns = 1024;
	if (h->lim.backlog <= 0)
		h->lim.backlog = 1024;
}

struct httpd *httpd_new(struct event_base *base, const struct httpd_limits *lim,
                        const struct httpd_handlers *handlers)
{
	struct httpd *h = xcalloc(1, sizeof(*h));

	h->base = base;
	h->on = *handlers;
	h->accepted = httpd_conn_new;
	limits_apply(h, lim);
	TAILQ_INIT(&h->conns);
	return h;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/*
 * Closing a listening socket resets the connections in its accept queue,
 * though their clients may have sent a whole request: see
 * httpd_listeners_stop(). Idle keep-alive connections that were served
 * are closed now; the others finish their request.
 */
void httpd_stop_accepting(struct httpd *h)
{
	struct httpd_conn *c, *next;

	httpd_listeners_stop(h);
	for (c = TAILQ_FIRST(&h->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == HTTPD_C_IDLE && c->served > 0)
			httpd_conn_free(c);
	}
}

bool httpd_drained(struct httpd *h)
{
	struct httpd_conn *c, *next;
	bool listening = !httpd_listeners_drained(h);

	/* A client that connected and sent nothing for a moment is not about to. */
	for (c = TAILQ_FIRST(&h->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == HTTPD_C_IDLE &&
		    (c->served > 0 || ms_since(&c->since) >= HTTPD_QUIET_MS))
			httpd_conn_free(c);
	}
	return !listening && TAILQ_EMPTY(&h->conns);
}

void httpd_set_limits(struct httpd *h, const struct httpd_limits *lim)
{
	limits_apply(h, lim);
}

void httpd_get_stats(const struct httpd *h, struct httpd_stats *st)
{
	const struct httpd_conn *c;

	*st = h->st;
	st->buffered = 0;
	TAILQ_FOREACH(c, &h->conns, link)
	{
		st->buffered += evbuffer_get_length(bufferevent_get_input(c->bev)) +
		                evbuffer_get_length(bufferevent_get_output(c->bev)) +
		                httpd_parser_held(&c->parser) + (c->req ? c->req->held : 0);
	}
}

void httpd_free(struct httpd *h)
{
	struct httpd_conn *c;

	if (h == NULL)
		return;
	httpd_listeners_free(h);
	while ((c = TAILQ_FIRST(&h->conns)) != NULL)
		httpd_conn_free(c);
	free(h);
}
