/*
 * http_client_int.h: the state shared by the HTTP client's files:
 * http_client.c (a request's life: resolve, connect, exchange, deliver),
 * http_client_url.c (checking and copying what the caller asked for) and
 * http_client_tls.c (OpenSSL set-up and verification). Nothing outside
 * them includes it.
 */
#ifndef BAYARHOOK_HTTP_CLIENT_INT_H
#define BAYARHOOK_HTTP_CLIENT_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/http.h>
#include <openssl/ssl.h>

#include "http_client.h"

#define HC_MAX_HEADERS_SIZE (64 * 1024) /* status line + response headers */
#define HC_MAX_ADDRS 8                  /* resolved addresses tried in order */
#define HC_MAX_TIMEOUT 86400
#define HC_ERR_LEN 256

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

struct http_client_call;

/* One evdns_getaddrinfo; freed by its callback, which always runs. */
struct hc_lookup {
	struct http_client_call *rq; /* NULL once the request no longer waits for it */
	struct hc_resolver *resolver;
	struct evdns_getaddrinfo_request *dns;
};

struct http_client_call {
	struct http_client *client; /* NULL once unlinked */
	struct http_client_call *prev, *next;
	enum hc_state state;
	http_client_cb cb;
	void *arg;

	/* the request, copied */
	enum evhttp_cmd_type method;
	bool method_has_body;
	bool tls;
	bool insecure; /* req->insecure: no certificate verification */
	char *host;    /* without [] */
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
	enum http_client_err kind;
	char error[HC_ERR_LEN]; /* "" on success */
	struct http_client_resp resp;
	void *resp_mem;
};

struct http_client {
	struct event_base *base;
	struct hc_resolver *resolver; /* created on the first name lookup */
	SSL_CTX *ssl_ctx;             /* NULL when tls_error says why */
	char tls_error[HC_ERR_LEN];
	struct http_client_call *requests;
};

/* Records why the request failed, replacing an earlier reason. */
static inline void __attribute__((format(printf, 3, 4)))
hc_fail(struct http_client_call *rq, enum http_client_err kind, const char *fmt, ...)
{
	va_list ap;

	rq->kind = kind;
	va_start(ap, fmt);
	vsnprintf(rq->error, sizeof(rq->error), fmt, ap);
	va_end(ap);
}

/* http_client.c: a deep copy of *src into one allocation, for dst. */
void *hc_resp_pack(const struct http_client_resp *src, struct http_client_resp *dst);

/* http_client_url.c: copies and checks *req into rq; -1 with hc_fail() done. */
int hc_prepare(struct http_client_call *rq, const struct http_client_req *req);

/* http_client_tls.c */
/* NULL with the reason in err. */
SSL_CTX *hc_tls_ctx_new(const char *ca_file, char *err, size_t errlen);
/* An SSL for one attempt of rq, verifying rq->host; NULL when out of memory. */
SSL *hc_tls_new(SSL_CTX *ctx, struct http_client_call *rq);
/* OpenSSL's words for error e (buf holds them when it has none of its own). */
const char *hc_tls_reason(unsigned long e, char *buf, size_t len);

#endif
