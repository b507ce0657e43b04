/*
 * http_client.h: a small asynchronous HTTP/1.1 client on a caller's
 * event_base, shared by the forward action, the gateway client and
 * `bayarhook send-test`. One connection per request (Connection: close),
 * redirects are not followed, https:// verifies the chain and the host name.
 *
 * Callers must ignore SIGPIPE (the daemon does; http_client_fetch() does it
 * for the duration of its own loop).
 */
#ifndef BAYARHOOK_HTTP_CLIENT_H
#define BAYARHOOK_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct http_client;
struct http_client_call; /* one request in flight */

#define HTTP_CLIENT_DEFAULT_TIMEOUT 30                 /* seconds, when timeout_sec <= 0 */
#define HTTP_CLIENT_DEFAULT_MAX_RESPONSE (1024 * 1024) /* body bytes, when max_response == 0 */

struct http_client_req {
	const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" */
	const char *url;            /* http:// or https://, no userinfo */
	const char *const *headers; /* NULL or "Name", "Value", ..., NULL */
	const char *body;           /* may be NULL when body_len == 0 */
	size_t body_len;
	int timeout_sec;     /* whole request: resolve + connect + send + receive */
	size_t max_response; /* body cap; a longer body fails the request */
	/*
	 * "HOST:PORT:ADDR", as curl's --resolve: a request whose URL names HOST
	 * and PORT connects to the address ADDR (IPv6 with or without []),
	 * without a lookup; Host, SNI and the certificate check keep HOST.
	 * Ignored when the URL names another host or port; NULL: none. A
	 * malformed entry fails the request (HTTP_CLIENT_ERR_REQUEST).
	 */
	const char *resolve;
	/* https:// without verifying the certificate chain or name (a self-signed test). */
	bool insecure;
};

struct http_client_header {
	const char *name;
	const char *value;
};

/* Why a request got no HTTP answer; callers decide on this, never on the text. */
enum http_client_err {
	HTTP_CLIENT_OK,            /* an answer arrived (any status) */
	HTTP_CLIENT_ERR_REQUEST,   /* the request itself is unusable: URL, method, header */
	HTTP_CLIENT_ERR_RESOLVE,   /* the host name did not resolve */
	HTTP_CLIENT_ERR_CONNECT,   /* no connection: refused, unreachable, reset */
	HTTP_CLIENT_ERR_TLS,       /* handshake, certificate or CA file */
	HTTP_CLIENT_ERR_TIMEOUT,   /* timeout_sec passed first */
	HTTP_CLIENT_ERR_TOO_LARGE, /* the answer exceeds max_response */
	HTTP_CLIENT_ERR_PROTOCOL,  /* not HTTP, or closed before a complete answer */
	HTTP_CLIENT_ERR_INTERNAL,  /* the event loop failed us */
};

/* "ok", "request", "resolve", "connect", "tls", ...: for logs and metric labels. */
const char *http_client_err_name(enum http_client_err kind);

/*
 * Everything points into memory owned by the client and is valid only
 * during the callback (or until http_client_resp_owned_free()).
 * Invariant: error == NULL exactly when status != 0 exactly when kind ==
 * HTTP_CLIENT_OK.
 */
struct http_client_resp {
	int status; /* HTTP status (3xx included), 0 on any error */
	enum http_client_err kind;
	const char *error; /* NULL on success, else a one-line reason */
	const char *body;  /* never NULL, NUL-terminated after body_len bytes */
	size_t body_len;
	const char *retry_after;                  /* Retry-After value or NULL */
	const struct http_client_header *headers; /* response headers, in order */
	size_t nheaders;
};

typedef void (*http_client_cb)(const struct http_client_resp *resp, void *arg);

/*
 * ca_file: extra trusted CA certificates (PEM) on top of the system store,
 * or NULL. Returns NULL only when base is NULL. A CA file that cannot be
 * loaded makes every https:// request fail with the reason.
 */
struct http_client *http_client_new(struct event_base *base, const char *ca_file);

/*
 * Starts a request; everything in *req is copied. The client sends Host
 * (unless given), Connection: close, User-Agent: bayarhook (unless given)
 * and Content-Length; a caller's Content-Length, Transfer-Encoding or
 * Connection header is an error. The URL must already be percent-encoded.
 * The callback runs exactly once, always later from the event loop (never
 * before this returns), with the response or the error, unless the call is
 * cancelled first. Returns NULL (and never calls cb) only when an argument
 * is NULL. The handle is valid until the callback returns or the call is
 * cancelled.
 */
struct http_client_call *http_client_request(struct http_client *client,
                                             const struct http_client_req *req, http_client_cb cb,
                                             void *arg) __attribute__((warn_unused_result));

/*
 * Abandons a call: its connection or lookup is dropped and its callback
 * never runs. Accepts NULL; not from the call's own callback.
 */
void http_client_cancel(struct http_client_call *call);

/*
 * Cancels outstanding requests without calling their callbacks and frees
 * the client. May be called from inside a callback. Accepts NULL.
 * A DNS lookup still in flight finishes its own cleanup from the loop: for
 * a leak-free exit run event_base_loop(base, EVLOOP_NONBLOCK) twice before
 * event_base_free().
 */
void http_client_free(struct http_client *client);

/* Case-insensitive lookup of a response header; the first one wins. */
const char *http_client_resp_header(const struct http_client_resp *resp, const char *name);

/* A response that outlives the callback: resp points into mem. */
struct http_client_resp_owned {
	struct http_client_resp resp;
	void *mem; /* private */
};

/*
 * Blocking convenience for CLI commands: runs a private event_base until
 * the request is done. Returns 0 when an HTTP answer arrived (any status),
 * -1 otherwise; *out is filled in both cases and must be released with
 * http_client_resp_owned_free().
 */
int http_client_fetch(const struct http_client_req *req, const char *ca_file,
                      struct http_client_resp_owned *out);
void http_client_resp_owned_free(struct http_client_resp_owned *out);

#endif
