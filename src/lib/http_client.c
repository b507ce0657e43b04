/*
 * http_client.c: a small asynchronous HTTP/1.1 client on a caller's
 * event_base. evhttp speaks the protocol, bufferevent_openssl carries
 * https:// (chain and host name verified), evdns resolves names so that
 * nothing blocks the loop. One connection per request, Connection: close,
 * no redirects, one timer for the whole request.
 *
 * The module owns the request from http_client_request() until its callback
 * returns. Every outcome goes through one deferred event (ev_step), so a
 * callback never runs inside a libevent callback of the same connection and
 * the connection can be freed before the user sees the answer. The URL and
 * header checks are in http_client_url.c, OpenSSL in http_client_tls.c,
 * the blocking http_client_fetch() in http_client_fetch.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "http_client_int.h"
#include "xmalloc.h"

#ifdef BAYARHOOK_VERSION
#define HC_USER_AGENT "bayarhook/" BAYARHOOK_VERSION
#else
#define HC_USER_AGENT "bayarhook"
#endif

static void hc_attempt_start(struct http_client_call *rq);

static const char *const hc_err_names[] = {
    [HTTP_CLIENT_OK] = "ok",
    [HTTP_CLIENT_ERR_REQUEST] = "request",
    [HTTP_CLIENT_ERR_RESOLVE] = "resolve",
    [HTTP_CLIENT_ERR_CONNECT] = "connect",
    [HTTP_CLIENT_ERR_TLS] = "tls",
    [HTTP_CLIENT_ERR_TIMEOUT] = "timeout",
    [HTTP_CLIENT_ERR_TOO_LARGE] = "too_large",
    [HTTP_CLIENT_ERR_PROTOCOL] = "protocol",
    [HTTP_CLIENT_ERR_INTERNAL] = "internal",
};

const char *http_client_err_name(enum http_client_err kind)
{
	if ((size_t)kind >= sizeof(hc_err_names) / sizeof(hc_err_names[0]))
		return "unknown";
	return hc_err_names[kind];
}

/* Records the outcome and lets ev_step deliver it from the loop. */
static void hc_done(struct http_client_call *rq)
{
	rq->state = HC_DONE;
	event_active(rq->ev_step, EV_TIMEOUT, 1);
}

struct http_client *http_client_new(struct event_base *base, const char *ca_file)
{
	struct http_client *client;

	if (base == NULL)
		return NULL;
	client = xcalloc(1, sizeof(*client));
	client->base = base;
	client->ssl_ctx = hc_tls_ctx_new(ca_file, client->tls_error, sizeof(client->tls_error));
	return client;
}

/* ---- resolver ---- */

static void hc_resolver_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_resolver *rs = arg;

	(void)fd;
	(void)what;
	evdns_base_free(rs->dns, 0);
	free(rs);
}

static void hc_resolver_orphan(struct hc_resolver *rs)
{
	rs->orphaned = true;
	if (rs->pending == 0)
		hc_resolver_free_cb(-1, 0, rs);
}

static void hc_on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct hc_lookup *lk = arg;
	struct http_client_call *rq = lk->rq;
	struct hc_resolver *rs = lk->resolver;
	const struct evutil_addrinfo *ai;

	rs->pending--;
	free(lk);
	if (rq != NULL) {
		rq->lookup = NULL;
		for (ai = res; err == 0 && ai != NULL && rq->naddrs < HC_MAX_ADDRS;
		     ai = ai->ai_next) {
			if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
			    ai->ai_addrlen > sizeof(rq->addrs[0]))
				continue;
			memcpy(&rq->addrs[rq->naddrs++], ai->ai_addr, ai->ai_addrlen);
		}
		if (err != 0) {
			hc_fail(rq, HTTP_CLIENT_ERR_RESOLVE, "cannot resolve %s: %s", rq->host,
			        evutil_gai_strerror(err));
			hc_done(rq);
		} else if (rq->naddrs == 0) {
			hc_fail(rq, HTTP_CLIENT_ERR_RESOLVE, "cannot resolve %s: no address",
			        rq->host);
			hc_done(rq);
		} else {
			hc_attempt_start(rq);
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	if (rs->orphaned && rs->pending == 0) {
		/* Not from inside evdns's own callback: on the next turn. */
		static const struct timeval now = {0, 0};

		if (event_base_once(rs->base, -1, EV_TIMEOUT, hc_resolver_free_cb, rs, &now) != 0)
			hc_resolver_free_cb(-1, 0, rs);
	}
}

static void hc_resolve(struct http_client_call *rq)
{
	struct http_client *client = rq->client;
	struct evutil_addrinfo hints;
	struct hc_lookup *lk;
	struct evdns_getaddrinfo_request *dns;

	if (client->resolver == NULL) {
		struct hc_resolver *rs = xcalloc(1, sizeof(*rs));

		rs->base = client->base;
		rs->dns = evdns_base_new(client->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (rs->dns == NULL) {
			free(rs);
			hc_fail(rq, HTTP_CLIENT_ERR_RESOLVE,
			        "cannot resolve %s: resolver unavailable", rq->host);
			hc_done(rq);
			return;
		}
		client->resolver = rs;
	}
	lk = xcalloc(1, sizeof(*lk));
	lk->rq = rq;
	lk->resolver = client->resolver;
	client->resolver->pending++;
	rq->lookup = lk;
	rq->state = HC_RESOLVING;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* The callback may already have run (hosts file) and freed lk. */
	dns = evdns_getaddrinfo(client->resolver->dns, rq->host, NULL, &hints, hc_on_resolved, lk);
	if (dns != NULL)
		lk->dns = dns;
}

/* Stops waiting for a lookup; its callback still runs later and frees it. */
static void hc_lookup_abandon(struct http_client_call *rq)
{
	struct hc_lookup *lk = rq->lookup;

	if (lk == NULL)
		return;
	rq->lookup = NULL;
	lk->rq = NULL;
	if (lk->dns != NULL)
		evdns_getaddrinfo_cancel(lk->dns);
}

/* ---- one attempt: evhttp on one address ---- */

static void hc_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_client_call *rq = arg;

	/* evhttp calls this only for a connection that was established. */
	(void)evcon;
	rq->connected = true;
}

static void hc_on_error(enum evhttp_request_error e, void *arg)
{
	struct http_client_call *rq = arg;

	/* evhttp restored the errno of the failure just before this. */
	rq->sock_errno = errno;
	rq->http_failed = true;
	rq->http_errcode = e;
}

static int hc_capture(struct http_client_call *rq, struct evhttp_request *r, int code)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(r);
	struct evbuffer *buf = evhttp_request_get_input_buffer(r);
	struct http_client_header *tmp = NULL;
	struct http_client_resp src;
	struct evkeyval *kv;
	size_t n = 0;

	for (kv = hdrs->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		n++;
	if (n > 0)
		tmp = xcalloc(n, sizeof(*tmp));
	n = 0;
	for (kv = hdrs->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		tmp[n].name = kv->key;
		tmp[n].value = kv->value;
		n++;
	}
	memset(&src, 0, sizeof(src));
	src.status = code;
	src.body_len = evbuffer_get_length(buf);
	src.body = src.body_len > 0 ? (const char *)evbuffer_pullup(buf, -1) : "";
	src.headers = tmp;
	src.nheaders = n;
	if (src.body == NULL) {
		/* evbuffer_pullup's own allocation. */
		free(tmp);
		return -1;
	}
	rq->resp_mem = hc_resp_pack(&src, &rq->resp);
	free(tmp);
	return 0;
}

static void hc_describe_failure(struct http_client_call *rq)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(rq->evcon);
	unsigned long tls_err = 0, e;
	char buf[128];
	int se = rq->sock_errno;

	if (rq->tls && bev != NULL) {
		/*
		 * libevent also queues bare SSL_get_error() codes (library 0,
		 * e.g. SSL_ERROR_SYSCALL): those are transport errors, not TLS.
		 */
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			if (tls_err == 0 && ERR_GET_LIB(e) != 0)
				tls_err = e;
	}
	/* Leftovers of nonblocking I/O and of evhttp's shutdown(), not the cause. */
	if (se == EAGAIN || se == EWOULDBLOCK || se == EINPROGRESS || se == ENOTCONN)
		se = 0;

	if (rq->verify_err != 0) {
		rq->tls_failed = true;
		hc_fail(rq, HTTP_CLIENT_ERR_TLS, "TLS: certificate verify failed: %s",
		        X509_verify_cert_error_string(rq->verify_err));
	} else if (tls_err != 0) {
		rq->tls_failed = true;
		hc_fail(rq, HTTP_CLIENT_ERR_TLS, "TLS: %s (%s)",
		        hc_tls_reason(tls_err, buf, sizeof(buf)), rq->peer);
	} else if (!rq->http_failed) {
		/* evhttp 2.1 takes this path only for a refused connect. */
		hc_fail(rq, HTTP_CLIENT_ERR_CONNECT, "cannot connect to %s: %s", rq->peer,
		        strerror(se != 0 ? se : ECONNREFUSED));
	} else {
		switch (rq->http_errcode) {
		case EVREQ_HTTP_TIMEOUT:
			hc_fail(rq, HTTP_CLIENT_ERR_TIMEOUT, "timed out (%s)", rq->peer);
			break;
		case EVREQ_HTTP_INVALID_HEADER:
			hc_fail(rq, HTTP_CLIENT_ERR_PROTOCOL, "invalid HTTP response from %s",
			        rq->peer);
			break;
		case EVREQ_HTTP_DATA_TOO_LONG:
			hc_fail(rq, HTTP_CLIENT_ERR_TOO_LARGE,
			        "response from %s too large (body limit %zu bytes)", rq->peer,
			        rq->max_response);
			break;
		case EVREQ_HTTP_REQUEST_CANCEL:
			hc_fail(rq, HTTP_CLIENT_ERR_INTERNAL, "request cancelled");
			break;
		case EVREQ_HTTP_EOF:
		case EVREQ_HTTP_BUFFER_ERROR:
		default:
			if (rq->connected)
				hc_fail(rq, HTTP_CLIENT_ERR_PROTOCOL,
				        "connection to %s closed before a complete response%s%s",
				        rq->peer, se != 0 ? ": " : "", se != 0 ? strerror(se) : "");
			else if (se != 0)
				hc_fail(rq, HTTP_CLIENT_ERR_CONNECT, "cannot connect to %s: %s",
				        rq->peer, strerror(se));
			else if (rq->tls)
				hc_fail(rq, HTTP_CLIENT_ERR_TLS,
				        "TLS: connection to %s closed during the handshake",
				        rq->peer);
			else
				hc_fail(rq, HTTP_CLIENT_ERR_CONNECT, "cannot connect to %s",
				        rq->peer);
			break;
		}
	}
}

static void hc_on_response(struct evhttp_request *r, void *arg)
{
	struct http_client_call *rq = arg;
	int code = r != NULL ? evhttp_request_get_response_code(r) : 0;

	if (rq->state != HC_EXCHANGING)
		return;
	if (code > 0 && !rq->http_failed) {
		if (hc_capture(rq, r, code) < 0)
			hc_fail(rq, HTTP_CLIENT_ERR_INTERNAL, "out of memory");
		hc_done(rq);
		return;
	}
	hc_describe_failure(rq);
	/* Only a connection that never came up may be tried elsewhere. */
	if (!rq->connected && !rq->tls_failed && rq->next_addr < rq->naddrs) {
		rq->state = HC_NEXT_ADDR;
		event_active(rq->ev_step, EV_TIMEOUT, 1);
		return;
	}
	hc_done(rq);
}

static int hc_add_headers(struct http_client_call *rq, struct evhttp_request *r)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(r);
	char len[32];
	size_t i;

	if (rq->host_header != NULL && evhttp_add_header(out, "Host", rq->host_header) != 0)
		return -1;
	if (evhttp_add_header(out, "Connection", "close") != 0)
		return -1;
	if (rq->add_user_agent && evhttp_add_header(out, "User-Agent", HC_USER_AGENT) != 0)
		return -1;
	for (i = 0; rq->headers != NULL && rq->headers[i] != NULL; i += 2)
		if (evhttp_add_header(out, rq->headers[i], rq->headers[i + 1]) != 0)
			return -1;
	if (rq->body_len > 0 || rq->method_has_body) {
		snprintf(len, sizeof(len), "%zu", rq->body_len);
		if (evhttp_add_header(out, "Content-Length", len) != 0)
			return -1;
	}
	if (rq->body_len > 0 &&
	    evbuffer_add(evhttp_request_get_output_buffer(r), rq->body, rq->body_len) != 0)
		return -1;
	return 0;
}

static void hc_attempt_start(struct http_client_call *rq)
{
	struct http_client *client = rq->client;
	const struct sockaddr_storage *ss = &rq->addrs[rq->next_addr++];
	struct bufferevent *bev = NULL;
	struct evhttp_request *r;
	char ip[INET6_ADDRSTRLEN];
	const void *src;

	rq->connected = false;
	rq->tls_failed = false;
	rq->http_failed = false;
	rq->sock_errno = 0;
	rq->verify_err = 0;
	rq->kind = HTTP_CLIENT_OK;
	rq->error[0] = '\0';
	if (ss->ss_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else
		src = &((const struct sockaddr_in *)ss)->sin_addr;
	if (evutil_inet_ntop(ss->ss_family, src, ip, sizeof(ip)) == NULL) {
		hc_fail(rq, HTTP_CLIENT_ERR_CONNECT, "cannot connect: bad address");
		goto fail;
	}
	snprintf(rq->peer, sizeof(rq->peer), ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
	         rq->port);

	if (rq->tls) {
		SSL *ssl;

		if (client->ssl_ctx == NULL) {
			hc_fail(rq, HTTP_CLIENT_ERR_TLS, "%s", client->tls_error);
			goto fail;
		}
		if ((ssl = hc_tls_new(client->ssl_ctx, rq)) == NULL)
			goto oom;
		bev = bufferevent_openssl_socket_new(
		    client->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			SSL_free(ssl);
			goto oom;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	}
	/* A numeric address: evhttp's own (blocking) lookup returns at once. */
	rq->evcon = evhttp_connection_base_bufferevent_new(client->base, NULL, bev, ip,
	                                                   (unsigned short)rq->port);
	if (rq->evcon == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		goto oom;
	}
	/* Our own timer bounds the whole request; evhttp's is a backstop. */
	evhttp_connection_set_timeout(rq->evcon, rq->timeout_sec + 1);
	evhttp_connection_set_retries(rq->evcon, 0);
	evhttp_connection_set_max_headers_size(rq->evcon, HC_MAX_HEADERS_SIZE);
	evhttp_connection_set_max_body_size(rq->evcon, (ev_ssize_t)rq->max_response);
	evhttp_connection_set_closecb(rq->evcon, hc_on_close, rq);

	r = evhttp_request_new(hc_on_response, rq);
	if (r == NULL)
		goto oom;
	evhttp_request_set_error_cb(r, hc_on_error);
	if (hc_add_headers(rq, r) != 0) {
		evhttp_request_free(r);
		goto oom;
	}
	/* evhttp may call hc_on_response from inside; set the state first. */
	rq->state = HC_EXCHANGING;
	if (evhttp_make_request(rq->evcon, r, rq->method, rq->target) != 0) {
		hc_fail(rq, HTTP_CLIENT_ERR_CONNECT, "cannot connect to %s", rq->peer);
		goto fail;
	}
	return;
oom:
	/* libevent's and OpenSSL's own allocations: no xmalloc there. */
	hc_fail(rq, HTTP_CLIENT_ERR_INTERNAL, "out of memory");
fail:
	hc_done(rq);
}

/* ---- request lifecycle ---- */

static void hc_unlink(struct http_client_call *rq)
{
	struct http_client *client = rq->client;

	if (client == NULL)
		return;
	if (rq->prev != NULL)
		rq->prev->next = rq->next;
	else
		client->requests = rq->next;
	if (rq->next != NULL)
		rq->next->prev = rq->prev;
	rq->prev = rq->next = NULL;
	rq->client = NULL;
}

static void hc_request_free(struct http_client_call *rq)
{
	size_t i;

	if (rq == NULL)
		return;
	hc_unlink(rq);
	hc_lookup_abandon(rq);
	/* Before the rest: closing may still call hc_on_close(rq). */
	if (rq->evcon != NULL)
		evhttp_connection_free(rq->evcon);
	if (rq->ev_timer != NULL)
		event_free(rq->ev_timer);
	if (rq->ev_step != NULL)
		event_free(rq->ev_step);
	for (i = 0; rq->headers != NULL && rq->headers[i] != NULL; i++)
		free(rq->headers[i]);
	free(rq->headers);
	free(rq->host);
	free(rq->target);
	free(rq->host_header);
	free(rq->body);
	free(rq->resp_mem);
	free(rq);
}

static void hc_deliver(struct http_client_call *rq)
{
	http_client_cb cb = rq->cb;
	void *arg = rq->arg;

	if (rq->error[0] != '\0') {
		free(rq->resp_mem);
		rq->resp_mem = NULL;
		memset(&rq->resp, 0, sizeof(rq->resp));
		rq->resp.kind = rq->kind;
		rq->resp.error = rq->error;
		rq->resp.body = "";
	}
	/* The callback may free the client or start new requests. */
	hc_unlink(rq);
	event_del(rq->ev_timer);
	cb(&rq->resp, arg);
	hc_request_free(rq);
}

static void hc_on_step(evutil_socket_t fd, short what, void *arg)
{
	struct http_client_call *rq = arg;

	(void)fd;
	(void)what;
	/* Freed here, outside evhttp's callbacks for this connection. */
	if (rq->evcon != NULL) {
		evhttp_connection_free(rq->evcon);
		rq->evcon = NULL;
	}
	if (rq->state == HC_NEXT_ADDR)
		hc_attempt_start(rq);
	else if (rq->state == HC_DONE)
		hc_deliver(rq);
}

static void hc_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct http_client_call *rq = arg;

	(void)fd;
	(void)what;
	if (rq->state == HC_DONE)
		return;
	if (rq->state == HC_RESOLVING) {
		hc_lookup_abandon(rq);
		hc_fail(rq, HTTP_CLIENT_ERR_TIMEOUT, "timed out after %d s resolving %s",
		        rq->timeout_sec, rq->host);
	} else {
		if (rq->evcon != NULL) {
			evhttp_connection_free(rq->evcon);
			rq->evcon = NULL;
		}
		hc_fail(rq, HTTP_CLIENT_ERR_TIMEOUT, "timed out after %d s (%s)", rq->timeout_sec,
		        rq->peer);
	}
	hc_done(rq);
}

struct http_client_call *http_client_request(struct http_client *client,
                                             const struct http_client_req *req, http_client_cb cb,
                                             void *arg)
{
	struct http_client_call *rq;
	struct timeval tv;

	if (client == NULL || req == NULL || cb == NULL)
		return NULL;
	rq = xcalloc(1, sizeof(*rq));
	rq->cb = cb;
	rq->arg = arg;
	rq->ev_timer = evtimer_new(client->base, hc_on_timeout, rq);
	rq->ev_step = event_new(client->base, -1, 0, hc_on_step, rq);
	if (rq->ev_timer == NULL || rq->ev_step == NULL) {
		/* libevent's own allocation failed: nothing was started. */
		hc_request_free(rq);
		return NULL;
	}
	rq->client = client;
	rq->next = client->requests;
	if (client->requests != NULL)
		client->requests->prev = rq;
	client->requests = rq;

	if (hc_prepare(rq, req) != 0) {
		hc_done(rq);
		return rq;
	}
	tv.tv_sec = rq->timeout_sec;
	tv.tv_usec = 0;
	if (evtimer_add(rq->ev_timer, &tv) != 0) {
		hc_fail(rq, HTTP_CLIENT_ERR_INTERNAL, "cannot arm the request timer");
		hc_done(rq);
		return rq;
	}
	if (rq->naddrs > 0)
		hc_attempt_start(rq);
	else
		hc_resolve(rq);
	return rq;
}

void http_client_cancel(struct http_client_call *call)
{
	hc_request_free(call);
}

void http_client_free(struct http_client *client)
{
	if (client == NULL)
		return;
	while (client->requests != NULL)
		hc_request_free(client->requests);
	if (client->resolver != NULL)
		hc_resolver_orphan(client->resolver);
	SSL_CTX_free(client->ssl_ctx);
	free(client);
}

/* ---- responses ---- */

const char *http_client_resp_header(const struct http_client_resp *resp, const char *name)
{
	size_t i;

	if (resp == NULL || name == NULL)
		return NULL;
	for (i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

static char *hc_put(char **p, const char *s, size_t len)
{
	char *start = *p;

	memcpy(start, s, len);
	start[len] = '\0';
	*p += len + 1;
	return start;
}

/* Deep copy of *src into one allocation (header array first, then text). */
void *hc_resp_pack(const struct http_client_resp *src, struct http_client_resp *dst)
{
	size_t size = src->nheaders * sizeof(struct http_client_header);
	struct http_client_header *h;
	char *mem, *p;
	size_t i;

	for (i = 0; i < src->nheaders; i++)
		size += strlen(src->headers[i].name) + strlen(src->headers[i].value) + 2;
	if (src->error != NULL)
		size += strlen(src->error) + 1;
	size += src->body_len + 1;
	mem = xmalloc(size);
	h = (struct http_client_header *)(void *)mem;
	p = mem + src->nheaders * sizeof(struct http_client_header);
	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < src->nheaders; i++) {
		h[i].name = hc_put(&p, src->headers[i].name, strlen(src->headers[i].name));
		h[i].value = hc_put(&p, src->headers[i].value, strlen(src->headers[i].value));
	}
	dst->status = src->status;
	dst->kind = src->kind;
	if (src->error != NULL)
		dst->error = hc_put(&p, src->error, strlen(src->error));
	dst->body = hc_put(&p, src->body_len > 0 ? src->body : "", src->body_len);
	dst->body_len = src->body_len;
	dst->headers = src->nheaders > 0 ? h : NULL;
	dst->nheaders = src->nheaders;
	dst->retry_after = http_client_resp_header(dst, "Retry-After");
	return mem;
}
