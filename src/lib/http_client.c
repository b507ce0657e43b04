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
 * the connection can be freed before the user sees the answer.
 */
#include "http_client.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define HC_MAX_HEADERS_SIZE (64 * 1024) /* status line + response headers */
#define HC_MAX_ADDRS 8                  /* resolved addresses tried in order */
#define HC_MAX_TIMEOUT 86400
#define HC_ERR_LEN 256
#ifdef BAYARHOOK_VERSION
#define HC_USER_AGENT "bayarhook/" BAYARHOOK_VERSION
#else
#define HC_USER_AGENT "bayarhook"
#endif

enum hc_state {
	HC_RESOLVING,  /* evdns lookup in flight, rq->lookup set */
	HC_EXCHANGING, /* evhttp request in flight on rq->evcon */
	HC_NEXT_ADDR,  /* attempt failed before connecting; ev_step tries the next address */
	HC_DONE,       /* outcome recorded in rq->error / rq->resp; ev_step delivers it */
};

/*
 * The evdns resolver of a client. It outlives the client while lookups are
 * in flight: evdns calls back even after a cancel and touches its base then.
 */
struct hc_resolver {
	struct event_base *base;
	struct evdns_base *dns;
	unsigned pending; /* lookups whose callback has not run yet */
	bool orphaned;    /* the client is gone; free when pending drops to 0 */
};

struct hc_request;

/* One evdns_getaddrinfo; freed by its callback, which always runs. */
struct hc_lookup {
	struct hc_request *rq; /* NULL once the request no longer waits for it */
	struct hc_resolver *resolver;
	struct evdns_getaddrinfo_request *dns;
};

struct hc_request {
	struct http_client *client; /* NULL once unlinked */
	struct hc_request *prev, *next;
	enum hc_state state;
	http_client_cb cb;
	void *arg;

	/* the request, copied */
	enum evhttp_cmd_type method;
	bool method_has_body;
	bool tls;
	char *host; /* without [] */
	bool host_is_ip;
	int port;
	char *target;        /* path and query, as given */
	char *host_header;   /* NULL: the caller gave one */
	bool add_user_agent; /* the caller gave none; some WAFs refuse requests without */
	char **headers;      /* name, value, ..., NULL */
	char *body;
	size_t body_len;
	int timeout_sec;
	size_t max_response;

	/* resolution */
	struct hc_lookup *lookup;
	struct sockaddr_storage addrs[HC_MAX_ADDRS];
	int naddrs;
	int next_addr;

	/* current attempt */
	struct evhttp_connection *evcon;  /* owns its bufferevent and SSL */
	char peer[INET6_ADDRSTRLEN + 10]; /* "ip:port" or "[ip]:port" */
	bool connected;                   /* evhttp had the connection up (TLS: handshake done) */
	bool tls_failed;                  /* a TLS error ended the attempt */
	bool http_failed;                 /* evhttp reported http_errcode */
	enum evhttp_request_error http_errcode;
	int sock_errno;
	long verify_err; /* first X509_V_ERR_* seen by the verify callback */

	struct event *ev_timer;
	struct event *ev_step;

	/* outcome */
	char error[HC_ERR_LEN]; /* "" on success */
	struct http_client_resp resp;
	void *resp_mem;
};

struct http_client {
	struct event_base *base;
	struct hc_resolver *resolver; /* created on the first name lookup */
	SSL_CTX *ssl_ctx;             /* NULL when tls_error says why */
	char tls_error[HC_ERR_LEN];
	struct hc_request *requests;
};

static pthread_once_t hc_once = PTHREAD_ONCE_INIT;
static int hc_ssl_idx = -1; /* SSL ex_data slot pointing back to the request */

static void hc_attempt_start(struct hc_request *rq);

static void hc_init_once(void)
{
	hc_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void __attribute__((format(printf, 2, 3)))
hc_seterr(struct hc_request *rq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rq->error, sizeof(rq->error), fmt, ap);
	va_end(ap);
}

/* Records the outcome and lets ev_step deliver it from the loop. */
static void hc_done(struct hc_request *rq)
{
	rq->state = HC_DONE;
	event_active(rq->ev_step, EV_TIMEOUT, 1);
}

static const char *hc_openssl_reason(unsigned long e, char *buf, size_t len)
{
	const char *r;

#ifdef ERR_SYSTEM_ERROR
	if (ERR_SYSTEM_ERROR(e))
		return strerror(ERR_GET_REASON(e));
#endif
	r = ERR_reason_error_string(e);
	if (r != NULL)
		return r;
	ERR_error_string_n(e, buf, len);
	return buf;
}

/* ---- TLS context ---- */

static int hc_verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	struct hc_request *rq;

	if (ok || hc_ssl_idx < 0)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	rq = ssl != NULL ? SSL_get_ex_data(ssl, hc_ssl_idx) : NULL;
	if (rq != NULL && rq->verify_err == 0)
		rq->verify_err = X509_STORE_CTX_get_error(store);
	return ok;
}

static SSL_CTX *hc_ssl_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	char buf[128];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "TLS: cannot create context: %s",
		         hc_openssl_reason(ERR_peek_error(), buf, sizeof(buf)));
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, hc_verify_cb);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/*
	 * OpenSSL 3 reports a peer that closes without close_notify as a
	 * protocol error, which libevent 2.1 cannot tell from a dirty
	 * shutdown; evhttp still checks Content-Length and chunk framing.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* A machine without a system store still works with ca_file. */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		/* The first error is the cause (open failed, no certificate, ...). */
		snprintf(err, errlen, "TLS: cannot load CA file %s: %s", ca_file,
		         hc_openssl_reason(ERR_peek_error(), buf, sizeof(buf)));
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct http_client *http_client_new(struct event_base *base, const char *ca_file)
{
	struct http_client *client;

	if (base == NULL)
		return NULL;
	pthread_once(&hc_once, hc_init_once);
	client = calloc(1, sizeof(*client));
	if (client == NULL)
		return NULL;
	client->base = base;
	client->ssl_ctx = hc_ssl_ctx_new(ca_file, client->tls_error, sizeof(client->tls_error));
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
	struct hc_request *rq = lk->rq;
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
			hc_seterr(rq, "cannot resolve %s: %s", rq->host, evutil_gai_strerror(err));
			hc_done(rq);
		} else if (rq->naddrs == 0) {
			hc_seterr(rq, "cannot resolve %s: no address", rq->host);
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

static void hc_resolve(struct hc_request *rq)
{
	struct http_client *client = rq->client;
	struct evutil_addrinfo hints;
	struct hc_lookup *lk;
	struct evdns_getaddrinfo_request *dns;

	if (client->resolver == NULL) {
		struct hc_resolver *rs = calloc(1, sizeof(*rs));

		if (rs == NULL)
			goto oom;
		rs->base = client->base;
		rs->dns = evdns_base_new(client->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (rs->dns == NULL) {
			free(rs);
			hc_seterr(rq, "cannot resolve %s: resolver unavailable", rq->host);
			hc_done(rq);
			return;
		}
		client->resolver = rs;
	}
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL)
		goto oom;
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
	return;
oom:
	hc_seterr(rq, "out of memory");
	hc_done(rq);
}

/* Stops waiting for a lookup; its callback still runs later and frees it. */
static void hc_lookup_abandon(struct hc_request *rq)
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
	struct hc_request *rq = arg;

	/* evhttp calls this only for a connection that was established. */
	(void)evcon;
	rq->connected = true;
}

static void hc_on_error(enum evhttp_request_error e, void *arg)
{
	struct hc_request *rq = arg;

	/* evhttp restored the errno of the failure just before this. */
	rq->sock_errno = errno;
	rq->http_failed = true;
	rq->http_errcode = e;
}

static void *hc_resp_pack(const struct http_client_resp *src, struct http_client_resp *dst);

static int hc_capture(struct hc_request *rq, struct evhttp_request *r, int code)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(r);
	struct evbuffer *buf = evhttp_request_get_input_buffer(r);
	struct http_client_header *tmp = NULL;
	struct http_client_resp src;
	struct evkeyval *kv;
	size_t n = 0;

	for (kv = hdrs->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		n++;
	if (n > 0) {
		tmp = calloc(n, sizeof(*tmp));
		if (tmp == NULL)
			return -1;
	}
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
		free(tmp);
		return -1;
	}
	rq->resp_mem = hc_resp_pack(&src, &rq->resp);
	free(tmp);
	return rq->resp_mem != NULL ? 0 : -1;
}

static void hc_describe_failure(struct hc_request *rq)
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
		hc_seterr(rq, "TLS: certificate verify failed: %s",
		          X509_verify_cert_error_string(rq->verify_err));
	} else if (tls_err != 0) {
		rq->tls_failed = true;
		hc_seterr(rq, "TLS: %s (%s)", hc_openssl_reason(tls_err, buf, sizeof(buf)),
		          rq->peer);
	} else if (!rq->http_failed) {
		/* evhttp 2.1 takes this path only for a refused connect. */
		hc_seterr(rq, "cannot connect to %s: %s", rq->peer,
		          strerror(se != 0 ? se : ECONNREFUSED));
	} else {
		switch (rq->http_errcode) {
		case EVREQ_HTTP_TIMEOUT:
			hc_seterr(rq, "timed out (%s)", rq->peer);
			break;
		case EVREQ_HTTP_INVALID_HEADER:
			hc_seterr(rq, "invalid HTTP response from %s", rq->peer);
			break;
		case EVREQ_HTTP_DATA_TOO_LONG:
			hc_seterr(rq, "response from %s too large (body limit %zu bytes)", rq->peer,
			          rq->max_response);
			break;
		case EVREQ_HTTP_REQUEST_CANCEL:
			hc_seterr(rq, "request cancelled");
			break;
		case EVREQ_HTTP_EOF:
		case EVREQ_HTTP_BUFFER_ERROR:
		default:
			if (rq->connected)
				hc_seterr(
				    rq, "connection to %s closed before a complete response%s%s",
				    rq->peer, se != 0 ? ": " : "", se != 0 ? strerror(se) : "");
			else if (se != 0)
				hc_seterr(rq, "cannot connect to %s: %s", rq->peer, strerror(se));
			else if (rq->tls)
				hc_seterr(rq, "TLS: connection to %s closed during the handshake",
				          rq->peer);
			else
				hc_seterr(rq, "cannot connect to %s", rq->peer);
			break;
		}
	}
}

static void hc_on_response(struct evhttp_request *r, void *arg)
{
	struct hc_request *rq = arg;
	int code = r != NULL ? evhttp_request_get_response_code(r) : 0;

	if (rq->state != HC_EXCHANGING)
		return;
	if (code > 0 && !rq->http_failed) {
		if (hc_capture(rq, r, code) < 0)
			hc_seterr(rq, "out of memory");
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

static int hc_add_headers(struct hc_request *rq, struct evhttp_request *r)
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

static void hc_attempt_start(struct hc_request *rq)
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
	rq->error[0] = '\0';
	if (ss->ss_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else
		src = &((const struct sockaddr_in *)ss)->sin_addr;
	if (evutil_inet_ntop(ss->ss_family, src, ip, sizeof(ip)) == NULL) {
		hc_seterr(rq, "cannot connect: bad address");
		goto fail;
	}
	snprintf(rq->peer, sizeof(rq->peer), ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
	         rq->port);

	if (rq->tls) {
		SSL *ssl;

		if (client->ssl_ctx == NULL) {
			hc_seterr(rq, "%s", client->tls_error);
			goto fail;
		}
		ssl = SSL_new(client->ssl_ctx);
		if (ssl == NULL)
			goto oom;
		if (hc_ssl_idx >= 0)
			SSL_set_ex_data(ssl, hc_ssl_idx, rq);
		if (rq->host_is_ip) {
			/* RFC 6066: no SNI for address literals. */
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), rq->host) != 1) {
				SSL_free(ssl);
				goto oom;
			}
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set_tlsext_host_name(ssl, rq->host) != 1 ||
			    SSL_set1_host(ssl, rq->host) != 1) {
				SSL_free(ssl);
				goto oom;
			}
		}
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
		hc_seterr(rq, "cannot connect to %s", rq->peer);
		goto fail;
	}
	return;
oom:
	hc_seterr(rq, "out of memory");
fail:
	hc_done(rq);
}

/* ---- request lifecycle ---- */

static void hc_unlink(struct hc_request *rq)
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

static void hc_request_free(struct hc_request *rq)
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

static void hc_deliver(struct hc_request *rq)
{
	http_client_cb cb = rq->cb;
	void *arg = rq->arg;

	if (rq->error[0] != '\0') {
		free(rq->resp_mem);
		rq->resp_mem = NULL;
		memset(&rq->resp, 0, sizeof(rq->resp));
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
	struct hc_request *rq = arg;

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
	struct hc_request *rq = arg;

	(void)fd;
	(void)what;
	if (rq->state == HC_DONE)
		return;
	if (rq->state == HC_RESOLVING) {
		hc_lookup_abandon(rq);
		hc_seterr(rq, "timed out after %d s resolving %s", rq->timeout_sec, rq->host);
	} else {
		if (rq->evcon != NULL) {
			evhttp_connection_free(rq->evcon);
			rq->evcon = NULL;
		}
		hc_seterr(rq, "timed out after %d s (%s)", rq->timeout_sec, rq->peer);
	}
	hc_done(rq);
}

static const struct {
	const char *name;
	enum evhttp_cmd_type type;
	bool has_body;
} hc_methods[] = {
    {"GET", EVHTTP_REQ_GET, false},       {"POST", EVHTTP_REQ_POST, true},
    {"PUT", EVHTTP_REQ_PUT, true},        {"PATCH", EVHTTP_REQ_PATCH, true},
    {"DELETE", EVHTTP_REQ_DELETE, false}, {"HEAD", EVHTTP_REQ_HEAD, false},
};

static bool hc_is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return false;
	return true;
}

static bool hc_is_field_value(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* Framing headers are ours: a caller's copy could desynchronise the stream. */
static bool hc_is_reserved_header(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
	       strcasecmp(name, "Transfer-Encoding") == 0 || strcasecmp(name, "Connection") == 0;
}

static int hc_copy_headers(struct hc_request *rq, const char *const *h)
{
	size_t n = 0, i;
	bool own_host = false;

	rq->add_user_agent = true;
	if (h == NULL)
		return 0;
	while (h[n] != NULL) {
		if (h[n + 1] == NULL) {
			hc_seterr(rq, "header %s has no value", h[n]);
			return -1;
		}
		if (!hc_is_token(h[n]) || !hc_is_field_value(h[n + 1])) {
			hc_seterr(rq, "invalid header: %s", h[n]);
			return -1;
		}
		if (hc_is_reserved_header(h[n])) {
			hc_seterr(rq, "header %s is set by the HTTP client", h[n]);
			return -1;
		}
		if (strcasecmp(h[n], "Host") == 0)
			own_host = true;
		if (strcasecmp(h[n], "User-Agent") == 0)
			rq->add_user_agent = false;
		n += 2;
	}
	rq->headers = calloc(n + 1, sizeof(char *));
	if (rq->headers == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		if ((rq->headers[i] = strdup(h[i])) == NULL)
			goto oom;
	if (own_host) {
		free(rq->host_header);
		rq->host_header = NULL;
	}
	return 0;
oom:
	hc_seterr(rq, "out of memory");
	return -1;
}

static int hc_parse_url(struct hc_request *rq, const char *url)
{
	struct evhttp_uri *uri = url != NULL ? evhttp_uri_parse(url) : NULL;
	const char *scheme, *host, *path, *query;
	int port, default_port;
	size_t hlen;
	int ret = -1;

	if (uri == NULL) {
		hc_seterr(rq, "invalid URL");
		return -1;
	}
	scheme = evhttp_uri_get_scheme(uri);
	if (scheme != NULL && strcasecmp(scheme, "http") == 0) {
		default_port = 80;
	} else if (scheme != NULL && strcasecmp(scheme, "https") == 0) {
		rq->tls = true;
		default_port = 443;
	} else {
		hc_seterr(rq, "unsupported URL scheme: %s", scheme != NULL ? scheme : "(none)");
		goto out;
	}
	if (evhttp_uri_get_userinfo(uri) != NULL) {
		hc_seterr(rq, "credentials in the URL are not supported");
		goto out;
	}
	host = evhttp_uri_get_host(uri);
	hlen = host != NULL ? strlen(host) : 0;
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > 255) {
		hc_seterr(rq, "invalid URL: bad host");
		goto out;
	}
	port = evhttp_uri_get_port(uri);
	if (port == -1)
		port = default_port;
	if (port <= 0 || port > 65535) {
		hc_seterr(rq, "invalid URL: bad port");
		goto out;
	}
	rq->port = port;
	rq->host = strndup(host, hlen);
	if (rq->host == NULL)
		goto oom;

	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	if (asprintf(&rq->target, "%s%s%s", path, query != NULL ? "?" : "",
	             query != NULL ? query : "") < 0) {
		rq->target = NULL;
		goto oom;
	}

	{
		struct sockaddr_in *sin = (struct sockaddr_in *)&rq->addrs[0];
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rq->addrs[0];
		bool v6 = false;
		int n;

		if (evutil_inet_pton(AF_INET, rq->host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((unsigned short)port);
			rq->host_is_ip = true;
		} else if (evutil_inet_pton(AF_INET6, rq->host, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((unsigned short)port);
			rq->host_is_ip = true;
			v6 = true;
		}
		if (rq->host_is_ip)
			rq->naddrs = 1;
		if (port == default_port)
			n = asprintf(&rq->host_header, v6 ? "[%s]" : "%s", rq->host);
		else
			n = asprintf(&rq->host_header, v6 ? "[%s]:%d" : "%s:%d", rq->host, port);
		if (n < 0) {
			rq->host_header = NULL;
			goto oom;
		}
	}
	ret = 0;
	goto out;
oom:
	hc_seterr(rq, "out of memory");
out:
	evhttp_uri_free(uri);
	return ret;
}

static int hc_prepare(struct hc_request *rq, const struct http_client_req *req)
{
	const char *method = req->method != NULL ? req->method : "GET";
	size_t i;

	for (i = 0; i < sizeof(hc_methods) / sizeof(hc_methods[0]); i++)
		if (strcmp(method, hc_methods[i].name) == 0)
			break;
	if (i == sizeof(hc_methods) / sizeof(hc_methods[0])) {
		hc_seterr(rq, "unsupported method: %.32s", method);
		return -1;
	}
	rq->method = hc_methods[i].type;
	rq->method_has_body = hc_methods[i].has_body;
	rq->timeout_sec = req->timeout_sec > 0 ? req->timeout_sec : HTTP_CLIENT_DEFAULT_TIMEOUT;
	if (rq->timeout_sec > HC_MAX_TIMEOUT)
		rq->timeout_sec = HC_MAX_TIMEOUT;
	rq->max_response =
	    req->max_response > 0 ? req->max_response : HTTP_CLIENT_DEFAULT_MAX_RESPONSE;
	if (rq->max_response > (size_t)1 << 40)
		rq->max_response = (size_t)1 << 40;
	if (hc_parse_url(rq, req->url) != 0)
		return -1;
	if (hc_copy_headers(rq, req->headers) != 0)
		return -1;
	if (req->body_len > 0) {
		if (req->body == NULL) {
			hc_seterr(rq, "body_len without body");
			return -1;
		}
		rq->body = malloc(req->body_len);
		if (rq->body == NULL) {
			hc_seterr(rq, "out of memory");
			return -1;
		}
		memcpy(rq->body, req->body, req->body_len);
		rq->body_len = req->body_len;
	}
	return 0;
}

int http_client_request(struct http_client *client, const struct http_client_req *req,
                        http_client_cb cb, void *arg)
{
	struct hc_request *rq;
	struct timeval tv;

	if (client == NULL || req == NULL || cb == NULL)
		return -1;
	rq = calloc(1, sizeof(*rq));
	if (rq == NULL)
		return -1;
	rq->cb = cb;
	rq->arg = arg;
	rq->ev_timer = evtimer_new(client->base, hc_on_timeout, rq);
	rq->ev_step = event_new(client->base, -1, 0, hc_on_step, rq);
	if (rq->ev_timer == NULL || rq->ev_step == NULL) {
		hc_request_free(rq);
		return -1;
	}
	rq->client = client;
	rq->next = client->requests;
	if (client->requests != NULL)
		client->requests->prev = rq;
	client->requests = rq;

	if (hc_prepare(rq, req) != 0) {
		hc_done(rq);
		return 0;
	}
	tv.tv_sec = rq->timeout_sec;
	tv.tv_usec = 0;
	if (evtimer_add(rq->ev_timer, &tv) != 0) {
		hc_seterr(rq, "cannot arm the request timer");
		hc_done(rq);
		return 0;
	}
	if (rq->naddrs > 0)
		hc_attempt_start(rq);
	else
		hc_resolve(rq);
	return 0;
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
static void *hc_resp_pack(const struct http_client_resp *src, struct http_client_resp *dst)
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
	mem = malloc(size);
	if (mem == NULL)
		return NULL;
	h = (struct http_client_header *)(void *)mem;
	p = mem + src->nheaders * sizeof(struct http_client_header);
	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < src->nheaders; i++) {
		h[i].name = hc_put(&p, src->headers[i].name, strlen(src->headers[i].name));
		h[i].value = hc_put(&p, src->headers[i].value, strlen(src->headers[i].value));
	}
	dst->status = src->status;
	if (src->error != NULL)
		dst->error = hc_put(&p, src->error, strlen(src->error));
	dst->body = hc_put(&p, src->body_len > 0 ? src->body : "", src->body_len);
	dst->body_len = src->body_len;
	dst->headers = src->nheaders > 0 ? h : NULL;
	dst->nheaders = src->nheaders;
	dst->retry_after = http_client_resp_header(dst, "Retry-After");
	return mem;
}

/* ---- blocking convenience ---- */

struct hc_fetch {
	struct event_base *base;
	struct http_client_resp_owned *out;
	bool done;
};

static void hc_fetch_oom(struct http_client_resp_owned *out)
{
	memset(out, 0, sizeof(*out));
	out->resp.error = "out of memory";
	out->resp.body = "";
}

static void hc_fetch_cb(const struct http_client_resp *resp, void *arg)
{
	struct hc_fetch *f = arg;

	f->out->mem = hc_resp_pack(resp, &f->out->resp);
	if (f->out->mem == NULL)
		hc_fetch_oom(f->out);
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

	hc_fetch_oom(out);
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
	if (client == NULL || http_client_request(client, req, hc_fetch_cb, &f) != 0)
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
