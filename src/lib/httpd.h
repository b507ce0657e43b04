/*
 * httpd.h: our HTTP/1.1 request reader and server side. It accepts on
 * listening sockets, reads each request under fixed bounds (head, body,
 * time, buffered bytes), answers the requests it refuses itself and tells
 * the owner about them, and hands every other request to the owner, who
 * answers with httpd_reply() whenever it is ready. It knows no routes and
 * no domain: the owner decides everything about a request it is given.
 *
 * Owner callbacks are only ever invoked from the event loop, never from
 * inside an httpd_* call the owner makes.
 */
#ifndef BAYARHOOK_HTTPD_H
#define BAYARHOOK_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

/* The methods handed to the owner; every other one is refused (501). */
enum httpd_method {
	HTTPD_GET,
	HTTPD_HEAD,
	HTTPD_POST,
	HTTPD_PUT,
	HTTPD_DELETE,
	HTTPD_OPTIONS,
	HTTPD_TRACE,
	HTTPD_PATCH,
	HTTPD_METHOD_NONE, /* not read, or not one of the above */
};

struct httpd_header {
	const char *name;
	const char *value;
};

/*
 * What is known of a request. For a request handed to the owner everything
 * is set and the body is whole. For a refused one, what was read before the
 * refusal: fields not reached are "" (method_name, path) or NULL (query).
 */
struct httpd_msg {
	enum httpd_method method;
	const char *method_name;            /* as sent (printable ASCII, at most 23 bytes) */
	const char *path;                   /* raw (not %-decoded), without the query */
	const char *query;                  /* after '?', or NULL */
	const struct httpd_header *headers; /* in order, duplicates kept */
	size_t nheaders;
	const char *body; /* NUL-terminated; for a refusal the first bytes only */
	size_t body_len;
	uint64_t body_received; /* body bytes read (refusal: may exceed body_len) */
	int64_t body_declared;  /* Content-Length, or -1 */
	const char *peer;       /* the TCP peer's address ("192.0.2.1", "::1") */
};

/* The first header of that name (case-insensitive), or NULL. */
const char *httpd_msg_header(const struct httpd_msg *msg, const char *name);

/* Why the reader refused a request; each has one status and message. */
enum httpd_refusal {
	HTTPD_REFUSE_MALFORMED,          /* 400 not HTTP/1.x syntax */
	HTTPD_REFUSE_INCOMPLETE,         /* 400 the client closed mid-request */
	HTTPD_REFUSE_METHOD,             /* 501 unknown method, CONNECT, WebDAV, ... */
	HTTPD_REFUSE_VERSION,            /* 505 not HTTP/1.x */
	HTTPD_REFUSE_URL_TOO_LONG,       /* 414 request line over the head limit */
	HTTPD_REFUSE_HEADERS_TOO_LARGE,  /* 431 head over the limit or too many fields */
	HTTPD_REFUSE_BAD_LENGTH,         /* 400 Content-Length not one run of digits */
	HTTPD_REFUSE_TRANSFER_ENCODING,  /* 501 Transfer-Encoding other than chunked */
	HTTPD_REFUSE_LENGTH_AND_CHUNKED, /* 400 both Transfer-Encoding and Content-Length */
	HTTPD_REFUSE_TOO_LARGE,          /* 413 body over max_body (declared or counted) */
	HTTPD_REFUSE_TIMEOUT,            /* 408 request not received within request_timeout */
	HTTPD_REFUSE_COUNT
};

const char *httpd_refusal_name(enum httpd_refusal r); /* "too_large", ... */
int httpd_refusal_status(enum httpd_refusal r);
const char *httpd_refusal_message(enum httpd_refusal r); /* the answer's "error" */

struct httpd_refused {
	enum httpd_refusal reason;
	int status;
	const struct httpd_msg *msg; /* valid during the callback only */
};

struct httpd_limits {
	size_t max_body;        /* bytes; a larger body is refused (413) */
	int request_timeout_ms; /* first byte to end of body; 0: none */
	int idle_timeout_ms;    /* between keep-alive requests; 0: 5 s */
	int write_timeout_ms;   /* an answer not taken by the client; 0: request_timeout */
	unsigned max_conns;     /* connections past it are closed at once; 0: 1024 */
	int backlog;            /* listen(2) backlog of our own sockets; 0: 1024 */
};

struct httpd_req;

struct httpd_handlers {
	/* A whole request; answer it exactly once with httpd_reply(). */
	void (*request)(struct httpd_req *req, void *arg);
	/* A request refused (and already being answered) by the reader. */
	void (*refused)(const struct httpd_refused *r, void *arg);
	void *arg;
};

struct httpd *httpd_new(struct event_base *base, const struct httpd_limits *lim,
                        const struct httpd_handlers *handlers);
/* New limits for the requests that start from now on (reload). */
void httpd_set_limits(struct httpd *h, const struct httpd_limits *lim);
/* Binds and listens on "host:port" or "[v6]:port" (port 0: any). */
int httpd_listen(struct httpd *h, const char *hostport, char *err, size_t errlen);
/* Accepts on an already listening socket (systemd's); it is closed at stop. */
int httpd_listen_fd(struct httpd *h, int fd, char *err, size_t errlen);
/* The address of the first listener ("127.0.0.1:8080"), for logs and tests. */
const char *httpd_address(const struct httpd *h);

/*
 * Graceful stop: inherited sockets are closed, our own refuse new SYNs
 * while their accept queue is served; idle keep-alive connections are
 * closed; every answer from now on carries Connection: close.
 */
void httpd_stop_accepting(struct httpd *h);
/*
 * After httpd_stop_accepting(), called periodically: closes listeners with
 * an empty queue and connections that sent nothing for a moment; true once
 * no listener and no connection is left.
 */
bool httpd_drained(struct httpd *h);

struct httpd_stats {
	unsigned connections;   /* open now */
	unsigned inflight;      /* handed to the owner, not answered yet */
	size_t buffered;        /* bytes held for all connections (in, out, parsed) */
	uint64_t accepted;      /* connections accepted */
	uint64_t over_capacity; /* closed at once past max_conns */
	uint64_t accept_pauses; /* accept paused for lack of descriptors */
	uint64_t refused[HTTPD_REFUSE_COUNT];
};
void httpd_get_stats(const struct httpd *h, struct httpd_stats *st);

/*
 * Closes every connection and listener. Requests the owner holds stay
 * valid; it must still answer each (the answer is then only freed).
 */
void httpd_free(struct httpd *h);

const struct httpd_msg *httpd_req_msg(const struct httpd_req *req);
/*
 * Answers and frees req; the owner must not use req afterwards. headers
 * (n of them) are the owner's (Content-Type, Retry-After, ...);
 * Content-Length and Connection are the reader's and ignored if given, as
 * is any header with a CR, LF or NUL. If the client went away meanwhile,
 * nothing is sent. A HEAD answer has no body.
 */
void httpd_reply(struct httpd_req *req, int status, const struct httpd_header *headers, size_t n,
                 const char *body, size_t len);
/* httpd_reply with Content-Type: application/json and Cache-Control: no-store. */
void httpd_reply_json(struct httpd_req *req, int status, const char *json);

#endif
