/*
 * test_http_client.c: the HTTP client against in-process servers on
 * 127.0.0.1 sharing the client's event_base: an evhttp server (plain and
 * TLS with the certificates of unit/certs/), raw sockets that never answer,
 * answer garbage or hang up, and a thread for the blocking fetch.
 * Run from tests/ (the certificates are found as unit/certs/...).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <openssl/ssl.h>

#include "http_client.h"

#define CERTS "unit/certs/"
#define CA_FILE CERTS "ca.crt"

/* What the client's callback saw. */
struct result {
	bool done;
	int calls;
	int status;
	enum http_client_err kind;
	char *error;
	char *body;
	size_t body_len;
	char *retry_after;
	char *location;
	char *x_reply;
	size_t nheaders;
};

/* What the server's handler saw. */
struct seen {
	int hits;
	char method[16];
	char uri[512];
	char host[128];
	char content_type[128];
	char x_test[128];
	char connection[64];
	char user_agent[64];
	char *body;
	size_t body_len;
};

struct fx {
	struct event_base *base;
	struct http_client *client;
	struct evhttp *http;
	SSL_CTX *srv_ctx;
	int port;
	struct seen seen;
	struct result res;
	struct http_client *free_in_cb; /* freed from inside the callback */
	/* raw servers */
	int raw_fd;
	struct evconnlistener *listener;
	const char *raw_answer;   /* NULL: hang up after the request */
	bool raw_hang_up_at_once; /* hang up on the first bytes, whatever they are */
};

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->raw_fd = -1;
	fx->base = event_base_new();
	assert_non_null(fx->base);
	*state = fx;
	return 0;
}

/* Forgets the last answer, keeping the count of callbacks. */
static void clear_result(struct result *r)
{
	free(r->error);
	free(r->body);
	free(r->retry_after);
	free(r->location);
	free(r->x_reply);
	r->error = r->body = r->retry_after = r->location = r->x_reply = NULL;
	r->done = false;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	http_client_free(fx->client);
	if (fx->http != NULL)
		evhttp_free(fx->http);
	if (fx->listener != NULL)
		evconnlistener_free(fx->listener);
	if (fx->raw_fd >= 0)
		close(fx->raw_fd);
	/* Let finalizers and an abandoned resolver finish before the base goes. */
	for (int i = 0; i < 4; i++)
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	event_base_free(fx->base);
	SSL_CTX_free(fx->srv_ctx);
	free(fx->seen.body);
	clear_result(&fx->res);
	free(fx);
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void copy_header(char *dst, size_t len, struct evkeyvalq *h, const char *name)
{
	const char *v = evhttp_find_header(h, name);

	snprintf(dst, len, "%s", v != NULL ? v : "");
}

/* ---- evhttp test server ---- */

static void server_cb(struct evhttp_request *req, void *arg)
{
	struct fx *fx = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	struct evbuffer *reply = evbuffer_new();
	const char *uri = evhttp_request_get_uri(req);
	const char *m;

	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
		m = "GET";
		break;
	case EVHTTP_REQ_POST:
		m = "POST";
		break;
	case EVHTTP_REQ_PUT:
		m = "PUT";
		break;
	default:
		m = "OTHER";
		break;
	}
	fx->seen.hits++;
	snprintf(fx->seen.method, sizeof(fx->seen.method), "%s", m);
	snprintf(fx->seen.uri, sizeof(fx->seen.uri), "%s", uri);
	copy_header(fx->seen.host, sizeof(fx->seen.host), in, "Host");
	copy_header(fx->seen.content_type, sizeof(fx->seen.content_type), in, "Content-Type");
	copy_header(fx->seen.x_test, sizeof(fx->seen.x_test), in, "X-Test");
	copy_header(fx->seen.connection, sizeof(fx->seen.connection), in, "Connection");
	copy_header(fx->seen.user_agent, sizeof(fx->seen.user_agent), in, "User-Agent");
	free(fx->seen.body);
	fx->seen.body_len = evbuffer_get_length(body);
	fx->seen.body = calloc(1, fx->seen.body_len + 1);
	evbuffer_copyout(body, fx->seen.body, fx->seen.body_len);

	if (strncmp(uri, "/fail", 5) == 0) {
		evbuffer_add_printf(reply, "boom");
		evhttp_send_reply(req, 500, "Internal Server Error", reply);
	} else if (strncmp(uri, "/redirect", 9) == 0) {
		evhttp_add_header(out, "Location", "/elsewhere");
		evbuffer_add_printf(reply, "moved");
		evhttp_send_reply(req, 302, "Found", reply);
	} else if (strncmp(uri, "/ratelimit", 10) == 0) {
		evhttp_add_header(out, "Retry-After", "7");
		evhttp_send_reply(req, 429, "Too Many Requests", reply);
	} else if (strncmp(uri, "/big", 4) == 0) {
		for (int i = 0; i < 2048; i++)
			evbuffer_add(reply, "x", 1);
		evhttp_send_reply(req, 200, "OK", reply);
	} else {
		evhttp_add_header(out, "X-Reply", "yes");
		evhttp_add_header(out, "Content-Type", "text/plain");
		evbuffer_add_printf(reply, "ok %s", uri);
		evhttp_send_reply(req, 200, "OK", reply);
	}
	evbuffer_free(reply);
}

static struct bufferevent *server_tls_bevcb(struct event_base *base, void *arg)
{
	struct fx *fx = arg;

	return bufferevent_openssl_socket_new(base, -1, SSL_new(fx->srv_ctx),
	                                      BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static int bound_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* cert: NULL for plain HTTP, else "localhost" or "wrong". */
static void start_server(struct fx *fx, const char *cert)
{
	struct evhttp_bound_socket *sock;

	fx->http = evhttp_new(fx->base);
	assert_non_null(fx->http);
	evhttp_set_gencb(fx->http, server_cb, fx);
	if (cert != NULL) {
		char crt[128], key[128];

		snprintf(crt, sizeof(crt), CERTS "%s.crt", cert);
		snprintf(key, sizeof(key), CERTS "%s.key", cert);
		fx->srv_ctx = SSL_CTX_new(TLS_server_method());
		assert_non_null(fx->srv_ctx);
		assert_int_equal(SSL_CTX_use_certificate_file(fx->srv_ctx, crt, SSL_FILETYPE_PEM),
		                 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(fx->srv_ctx, key, SSL_FILETYPE_PEM),
		                 1);
		evhttp_set_bevcb(fx->http, server_tls_bevcb, fx);
	}
	sock = evhttp_bind_socket_with_handle(fx->http, "127.0.0.1", 0);
	assert_non_null(sock);
	fx->port = bound_port(evhttp_bound_socket_get_fd(sock));
}

/* ---- raw servers ---- */

/* Listens but never accepts: the kernel completes the handshake, nobody reads. */
static void start_silent_server(struct fx *fx)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	fx->raw_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fx->raw_fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fx->raw_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fx->raw_fd, 8), 0);
	fx->port = bound_port(fx->raw_fd);
}

/* Bound, not listening: a connect is refused. */
static int refused_port(struct fx *fx)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	fx->raw_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fx->raw_fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fx->raw_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return bound_port(fx->raw_fd);
}

static void raw_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_free(bev); /* everything written: hang up */
}

static void raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct fx *fx = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (fx->raw_hang_up_at_once) {
		bufferevent_free(bev);
		return;
	}
	/* Wait for the end of the request head. */
	if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
		return;
	evbuffer_drain(in, evbuffer_get_length(in));
	if (fx->raw_answer == NULL) {
		bufferevent_free(bev);
		return;
	}
	bufferevent_setcb(bev, NULL, raw_write_cb, NULL, fx);
	bufferevent_write(bev, fx->raw_answer, strlen(fx->raw_answer));
}

static void raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void raw_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int len, void *arg)
{
	struct bufferevent *bev =
	    bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);

	(void)sa;
	(void)len;
	bufferevent_setcb(bev, raw_read_cb, NULL, raw_event_cb, arg);
	bufferevent_enable(bev, EV_READ);
}

static void start_raw_server(struct fx *fx, const char *answer)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fx->raw_answer = answer;
	fx->listener = evconnlistener_new_bind(fx->base, raw_accept_cb, fx,
	                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	                                       (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(fx->listener);
	fx->port = bound_port(evconnlistener_get_fd(fx->listener));
}

/* ---- the client side ---- */

static void client_cb(const struct http_client_resp *resp, void *arg)
{
	struct fx *fx = arg;
	struct result *r = &fx->res;

	r->calls++;
	r->done = true;
	r->status = resp->status;
	r->kind = resp->kind;
	r->error = dup_or_null(resp->error);
	assert_non_null(resp->body);
	assert_int_equal(resp->body[resp->body_len], '\0');
	r->body = malloc(resp->body_len + 1);
	memcpy(r->body, resp->body, resp->body_len + 1);
	r->body_len = resp->body_len;
	r->retry_after = dup_or_null(resp->retry_after);
	r->location = dup_or_null(http_client_resp_header(resp, "location"));
	r->x_reply = dup_or_null(http_client_resp_header(resp, "X-Reply"));
	r->nheaders = resp->nheaders;
	/* The invariant callers rely on. */
	assert_true((resp->error == NULL) == (resp->status != 0));
	assert_true((resp->kind == HTTP_CLIENT_OK) == (resp->status != 0));
	if (fx->free_in_cb != NULL) {
		http_client_free(fx->free_in_cb);
		fx->free_in_cb = NULL;
		fx->client = NULL;
	}
	event_base_loopbreak(fx->base);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until the callback or max_ms; returns elapsed seconds. */
static double run(struct fx *fx, int max_ms)
{
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};
	struct event *dog = evtimer_new(fx->base, watchdog_cb, fx->base);
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	evtimer_add(dog, &tv);
	while (!fx->res.done) {
		event_base_dispatch(fx->base);
		if (!evtimer_pending(dog, NULL))
			break;
	}
	event_free(dog);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void request(struct fx *fx, const struct http_client_req *req)
{
	int calls = fx->res.calls;

	if (fx->client == NULL) {
		fx->client = http_client_new(fx->base, CA_FILE);
		assert_non_null(fx->client);
	}
	assert_non_null(http_client_request(fx->client, req, client_cb, fx));
	/* Never re-entrant: nothing is delivered before the loop runs. */
	assert_int_equal(fx->res.calls, calls);
}

static void get_ok(struct fx *fx, const char *url, int max_ms)
{
	struct http_client_req req = {.method = "GET", .url = url, .timeout_sec = 5};

	request(fx, &req);
	run(fx, max_ms);
	assert_true(fx->res.done);
	assert_int_equal(fx->res.calls, 1);
}

static char *url_of(struct fx *fx, const char *scheme, const char *host, const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s://%s:%d%s", scheme, host, fx->port, path);
	return buf;
}

/* Callers decide on the kind; the words are for people. */
static void assert_kind(struct fx *fx, enum http_client_err kind)
{
	if (fx->res.kind != kind)
		fail_msg("error kind %s, want %s (%s)", http_client_err_name(fx->res.kind),
		         http_client_err_name(kind), fx->res.error ? fx->res.error : "no error");
}

static void assert_error_contains(struct fx *fx, const char *needle)
{
	assert_true(fx->res.done);
	assert_int_equal(fx->res.status, 0);
	assert_non_null(fx->res.error);
	if (strstr(fx->res.error, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", fx->res.error, needle);
}

/* ---- plain HTTP ---- */

static void test_post_body_and_headers(void **state)
{
	struct fx *fx = *state;
	static const char *const hdrs[] = {"Content-Type", "application/json", "X-Test",
	                                   "hello world", NULL};
	static const char body[] = "{\"invoice_id\":\"PAY-1\",\"n\":1}";
	struct http_client_req req = {.method = "POST",
	                              .headers = hdrs,
	                              .body = body,
	                              .body_len = sizeof(body) - 1,
	                              .timeout_sec = 5};
	char host[64];

	start_server(fx, NULL);
	req.url = url_of(fx, "http", "127.0.0.1", "/callback.php");
	request(fx, &req);
	run(fx, 5000);

	assert_int_equal(fx->res.status, 200);
	assert_null(fx->res.error);
	assert_string_equal(fx->res.body, "ok /callback.php");
	assert_string_equal(fx->res.x_reply, "yes");
	assert_true(fx->res.nheaders >= 3);
	assert_int_equal(fx->seen.hits, 1);
	assert_string_equal(fx->seen.method, "POST");
	assert_string_equal(fx->seen.uri, "/callback.php");
	assert_string_equal(fx->seen.content_type, "application/json");
	assert_string_equal(fx->seen.x_test, "hello world");
	assert_string_equal(fx->seen.connection, "close");
	assert_true(strncmp(fx->seen.user_agent, "bayarhook", 9) == 0);
	snprintf(host, sizeof(host), "127.0.0.1:%d", fx->port);
	assert_string_equal(fx->seen.host, host);
	assert_int_equal(fx->seen.body_len, sizeof(body) - 1);
	assert_memory_equal(fx->seen.body, body, sizeof(body) - 1);
}

static void test_get_with_query(void **state)
{
	struct fx *fx = *state;

	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/api/check-payment.php?invoice=PAY-1%202&x=1"),
	       5000);
	assert_int_equal(fx->res.status, 200);
	assert_string_equal(fx->seen.method, "GET");
	assert_string_equal(fx->seen.uri, "/api/check-payment.php?invoice=PAY-1%202&x=1");
	assert_string_equal(fx->res.body, "ok /api/check-payment.php?invoice=PAY-1%202&x=1");
	assert_int_equal(fx->seen.body_len, 0);
}

static void test_root_path_and_hostname(void **state)
{
	struct fx *fx = *state;
	char host[64];

	/* "localhost" goes through the resolver (hosts file); no path means "/". */
	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "localhost", ""), 5000);
	assert_int_equal(fx->res.status, 200);
	assert_string_equal(fx->seen.uri, "/");
	snprintf(host, sizeof(host), "localhost:%d", fx->port);
	assert_string_equal(fx->seen.host, host);
}

static void test_500_with_body(void **state)
{
	struct fx *fx = *state;

	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/fail"), 5000);
	assert_int_equal(fx->res.status, 500);
	assert_null(fx->res.error);
	assert_string_equal(fx->res.body, "boom");
	assert_int_equal(fx->res.body_len, 4);
}

static void test_302_not_followed(void **state)
{
	struct fx *fx = *state;

	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/redirect"), 5000);
	assert_int_equal(fx->res.status, 302);
	assert_string_equal(fx->res.location, "/elsewhere");
	assert_string_equal(fx->res.body, "moved");
	assert_int_equal(fx->seen.hits, 1);
}

static void test_429_retry_after(void **state)
{
	struct fx *fx = *state;

	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/ratelimit"), 5000);
	assert_int_equal(fx->res.status, 429);
	assert_string_equal(fx->res.retry_after, "7");
	assert_int_equal(fx->res.body_len, 0);
	assert_string_equal(fx->res.body, "");
}

static void test_response_too_large(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.url = NULL, .timeout_sec = 5, .max_response = 1024};

	start_server(fx, NULL);
	req.url = url_of(fx, "http", "127.0.0.1", "/big");
	request(fx, &req);
	run(fx, 5000);
	assert_error_contains(fx, "too large");
	assert_kind(fx, HTTP_CLIENT_ERR_TOO_LARGE);
	assert_int_equal(fx->res.body_len, 0);
}

static void test_response_within_limit(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.url = NULL, .timeout_sec = 5, .max_response = 2048};

	start_server(fx, NULL);
	req.url = url_of(fx, "http", "127.0.0.1", "/big");
	request(fx, &req);
	run(fx, 5000);
	assert_int_equal(fx->res.status, 200);
	assert_int_equal(fx->res.body_len, 2048);
}

static void test_timeout_silent_server(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {
	    .method = "POST", .body = "{}", .body_len = 2, .timeout_sec = 1};
	double t;

	start_silent_server(fx);
	req.url = url_of(fx, "http", "127.0.0.1", "/callback");
	request(fx, &req);
	t = run(fx, 5000);
	assert_error_contains(fx, "timed out after 1 s");
	assert_kind(fx, HTTP_CLIENT_ERR_TIMEOUT);
	if (t < 0.9 || t > 2.5)
		fail_msg("timeout took %.2f s", t);
}

static void test_garbage_answer(void **state)
{
	struct fx *fx = *state;

	start_raw_server(fx, "SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n");
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "invalid HTTP response");
	assert_kind(fx, HTTP_CLIENT_ERR_PROTOCOL);
}

static void test_hang_up_without_answer(void **state)
{
	struct fx *fx = *state;

	start_raw_server(fx, NULL);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "closed before a complete response");
	assert_kind(fx, HTTP_CLIENT_ERR_PROTOCOL);
}

static void test_truncated_body(void **state)
{
	struct fx *fx = *state;

	start_raw_server(fx, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "closed before a complete response");
	assert_kind(fx, HTTP_CLIENT_ERR_PROTOCOL);
}

static void test_close_delimited_body(void **state)
{
	struct fx *fx = *state;

	start_raw_server(fx, "HTTP/1.0 200 OK\r\nX-Reply: raw\r\n\r\nuntil eof");
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/"), 5000);
	assert_int_equal(fx->res.status, 200);
	assert_string_equal(fx->res.body, "until eof");
	assert_string_equal(fx->res.x_reply, "raw");
}

static void test_connection_refused(void **state)
{
	struct fx *fx = *state;

	fx->port = refused_port(fx);
	get_ok(fx, url_of(fx, "http", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "refused");
	assert_kind(fx, HTTP_CLIENT_ERR_CONNECT);
}

static void test_unresolvable_host(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.url = "http://no-such-host.invalid/", .timeout_sec = 2};

	/* NXDOMAIN, or a timeout where no DNS server answers: an error either way. */
	request(fx, &req);
	run(fx, 5000);
	assert_true(fx->res.done);
	assert_int_equal(fx->res.status, 0);
	assert_non_null(fx->res.error);
	assert_non_null(strstr(fx->res.error, "no-such-host.invalid"));
	assert_true(fx->res.kind == HTTP_CLIENT_ERR_RESOLVE ||
	            fx->res.kind == HTTP_CLIENT_ERR_TIMEOUT);
}

static void test_bad_requests(void **state)
{
	static const char *const crlf[] = {"X-Evil", "a\r\nInjected: 1", NULL};
	static const char *const framing[] = {"Content-Length", "5", NULL};
	static const char *const odd[] = {"X-Lonely", NULL};
	static const struct {
		struct http_client_req req;
		const char *error;
	} cases[] = {
	    {{.url = "ftp://127.0.0.1/"}, "unsupported URL scheme"},
	    {{.url = "not a url"}, "invalid URL"},
	    {{.url = "/relative"}, "unsupported URL scheme"},
	    {{.url = NULL}, "invalid URL"},
	    {{.url = "http://user:pw@127.0.0.1/"}, "credentials"},
	    {{.url = "http://127.0.0.1:0/"}, "bad port"},
	    {{.url = "http://127.0.0.1/", .method = "BREW"}, "unsupported method"},
	    {{.url = "http://127.0.0.1/", .headers = crlf}, "invalid header: X-Evil"},
	    {{.url = "http://127.0.0.1/", .headers = framing}, "set by the HTTP client"},
	    {{.url = "http://127.0.0.1/", .headers = odd}, "has no value"},
	    {{.url = "http://127.0.0.1/", .body_len = 3}, "body_len without body"},
	};
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clear_result(&fx->res);
		request(fx, &cases[i].req);
		run(fx, 2000);
		assert_error_contains(fx, cases[i].error);
		assert_kind(fx, HTTP_CLIENT_ERR_REQUEST);
	}
}

static void test_free_cancels_outstanding(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.timeout_sec = 5};

	start_silent_server(fx);
	req.url = url_of(fx, "http", "127.0.0.1", "/");
	request(fx, &req);
	request(fx, &req);
	req.url = url_of(fx, "http", "localhost", "/"); /* through the resolver */
	request(fx, &req);
	run(fx, 200);
	assert_false(fx->res.done);
	http_client_free(fx->client);
	fx->client = NULL;
	run(fx, 200);
	assert_int_equal(fx->res.calls, 0);
}

/* A cancelled call never calls back; the others go on. */
static void test_cancel_one(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.timeout_sec = 5};
	struct http_client_call *silent, *resolving;

	start_silent_server(fx);
	fx->client = http_client_new(fx->base, CA_FILE);
	assert_non_null(fx->client);
	req.url = url_of(fx, "http", "127.0.0.1", "/");
	silent = http_client_request(fx->client, &req, client_cb, fx);
	assert_non_null(silent);
	req.url = url_of(fx, "http", "localhost", "/"); /* through the resolver */
	resolving = http_client_request(fx->client, &req, client_cb, fx);
	assert_non_null(resolving);
	req.url = "ftp://127.0.0.1/"; /* fails at once, delivered from the loop */
	assert_non_null(http_client_request(fx->client, &req, client_cb, fx));
	assert_int_equal(fx->res.calls, 0);
	http_client_cancel(silent);
	http_client_cancel(resolving);
	http_client_cancel(NULL);
	run(fx, 1000);
	assert_int_equal(fx->res.calls, 1);
	assert_kind(fx, HTTP_CLIENT_ERR_REQUEST);
	clear_result(&fx->res);
	run(fx, 300);
	assert_int_equal(fx->res.calls, 1);
}

static void test_err_names(void **state)
{
	(void)state;
	assert_string_equal(http_client_err_name(HTTP_CLIENT_OK), "ok");
	assert_string_equal(http_client_err_name(HTTP_CLIENT_ERR_TIMEOUT), "timeout");
	assert_string_equal(http_client_err_name(HTTP_CLIENT_ERR_TOO_LARGE), "too_large");
	assert_string_equal(http_client_err_name(HTTP_CLIENT_ERR_INTERNAL), "internal");
	assert_string_equal(http_client_err_name((enum http_client_err)99), "unknown");
}

static void test_free_from_callback(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.timeout_sec = 5};

	start_server(fx, NULL);
	req.url = url_of(fx, "http", "127.0.0.1", "/");
	request(fx, &req);
	request(fx, &req); /* still outstanding when the first one frees the client */
	fx->free_in_cb = fx->client;
	run(fx, 5000);
	assert_int_equal(fx->res.calls, 1);
	assert_null(fx->client);
	run(fx, 200);
	assert_int_equal(fx->res.calls, 1);
}

static void test_many_concurrent(void **state)
{
	struct fx *fx = *state;
	struct http_client_req req = {.timeout_sec = 5};
	int i;

	start_server(fx, NULL);
	req.url = url_of(fx, "http", "127.0.0.1", "/many");
	for (i = 0; i < 20; i++)
		request(fx, &req);
	for (i = 0; i < 20; i++) {
		clear_result(&fx->res);
		run(fx, 5000);
		assert_true(fx->res.done);
		assert_int_equal(fx->res.status, 200);
	}
	assert_int_equal(fx->res.calls, 20);
	assert_int_equal(fx->seen.hits, 20);
}

/* ---- TLS ---- */

static void test_tls_ok_hostname(void **state)
{
	struct fx *fx = *state;

	start_server(fx, "localhost");
	get_ok(fx, url_of(fx, "https", "localhost", "/secure?x=1"), 5000);
	assert_null(fx->res.error);
	assert_int_equal(fx->res.status, 200);
	assert_string_equal(fx->res.body, "ok /secure?x=1");
}

static void test_tls_ok_ip(void **state)
{
	struct fx *fx = *state;
	static const char body[] = "{\"status\":\"paid\"}";
	struct http_client_req req = {
	    .method = "POST", .body = body, .body_len = sizeof(body) - 1, .timeout_sec = 5};

	start_server(fx, "localhost");
	req.url = url_of(fx, "https", "127.0.0.1", "/post");
	request(fx, &req);
	run(fx, 5000);
	assert_null(fx->res.error);
	assert_int_equal(fx->res.status, 200);
	assert_string_equal(fx->seen.body, body);
}

static void test_tls_wrong_hostname(void **state)
{
	struct fx *fx = *state;

	start_server(fx, "wrong");
	get_ok(fx, url_of(fx, "https", "localhost", "/"), 5000);
	assert_error_contains(fx, "TLS: certificate verify failed: hostname mismatch");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
	assert_int_equal(fx->seen.hits, 0);
}

static void test_tls_wrong_ip(void **state)
{
	struct fx *fx = *state;

	start_server(fx, "wrong");
	get_ok(fx, url_of(fx, "https", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "TLS: certificate verify failed: IP address mismatch");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
	assert_int_equal(fx->seen.hits, 0);
}

static void test_tls_without_ca(void **state)
{
	struct fx *fx = *state;

	start_server(fx, "localhost");
	fx->client = http_client_new(fx->base, NULL); /* system store only */
	assert_non_null(fx->client);
	get_ok(fx, url_of(fx, "https", "localhost", "/"), 5000);
	assert_error_contains(fx, "TLS: certificate verify failed: ");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
	assert_int_equal(fx->seen.hits, 0);
}

static void test_tls_to_plain_server(void **state)
{
	struct fx *fx = *state;

	start_server(fx, NULL);
	get_ok(fx, url_of(fx, "https", "127.0.0.1", "/"), 5000);
	assert_error_contains(fx, "TLS: ");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
}

static void test_tls_connection_refused(void **state)
{
	struct fx *fx = *state;

	fx->port = refused_port(fx);
	get_ok(fx, url_of(fx, "https", "localhost", "/"), 5000);
	assert_error_contains(fx, "Connection refused");
	assert_kind(fx, HTTP_CLIENT_ERR_CONNECT);
}

static void test_tls_hang_up_in_handshake(void **state)
{
	struct fx *fx = *state;

	fx->raw_hang_up_at_once = true;
	start_raw_server(fx, NULL);
	get_ok(fx, url_of(fx, "https", "localhost", "/"), 5000);
	assert_error_contains(fx, "TLS: connection to 127.0.0.1:");
	assert_error_contains(fx, "closed during the handshake");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
}

static void test_tls_bad_ca_file(void **state)
{
	struct fx *fx = *state;

	start_server(fx, "localhost");
	fx->client = http_client_new(fx->base, CERTS "missing.crt");
	assert_non_null(fx->client);
	get_ok(fx, url_of(fx, "https", "localhost", "/"), 5000);
	assert_error_contains(fx, "TLS: cannot load CA file " CERTS
	                          "missing.crt: No such file or directory");
	assert_kind(fx, HTTP_CLIENT_ERR_TLS);
}

/* ---- blocking fetch ---- */

struct thread_server {
	int fd;
	char request[4096];
	size_t len;
};

/* Answers one request with a canned response, blocking, in its own thread. */
static void *thread_server_main(void *arg)
{
	struct thread_server *ts = arg;
	static const char answer[] =
	    "HTTP/1.1 201 Created\r\nContent-Length: 7\r\nRetry-After: 3\r\n\r\ncreated";
	int c = accept(ts->fd, NULL, NULL);
	ssize_t n;

	if (c < 0)
		return NULL;
	while (ts->len < sizeof(ts->request) - 1) {
		char *end;

		n = read(c, ts->request + ts->len, sizeof(ts->request) - 1 - ts->len);
		if (n <= 0)
			break;
		ts->len += (size_t)n;
		ts->request[ts->len] = '\0';
		end = strstr(ts->request, "\r\n\r\n");
		if (end != NULL && strlen(end + 4) >= 5) /* the 5-byte body */
			break;
	}
	if (write(c, answer, sizeof(answer) - 1) < 0)
		perror("write");
	close(c);
	return NULL;
}

static void test_fetch_blocking(void **state)
{
	struct fx *fx = *state;
	struct thread_server ts = {.fd = -1};
	struct http_client_resp_owned out;
	static const char *const hdrs[] = {
	    "Content-Type", "text/plain", "User-Agent", "send-test", "Host", "shop.example", NULL};
	struct http_client_req req = {
	    .method = "POST", .headers = hdrs, .body = "hello", .body_len = 5, .timeout_sec = 5};
	pthread_t th;

	start_silent_server(fx); /* reuse its listening socket for the thread */
	ts.fd = fx->raw_fd;
	assert_int_equal(pthread_create(&th, NULL, thread_server_main, &ts), 0);
	req.url = url_of(fx, "http", "127.0.0.1", "/send-test");
	assert_int_equal(http_client_fetch(&req, NULL, &out), 0);
	pthread_join(th, NULL);

	assert_int_equal(out.resp.status, 201);
	assert_null(out.resp.error);
	assert_string_equal(out.resp.body, "created");
	assert_string_equal(out.resp.retry_after, "3");
	assert_string_equal(http_client_resp_header(&out.resp, "content-length"), "7");
	assert_non_null(strstr(ts.request, "POST /send-test HTTP/1.1\r\n"));
	assert_non_null(strstr(ts.request, "Content-Type: text/plain\r\n"));
	/* The caller's Host and User-Agent replace the defaults. */
	assert_non_null(strstr(ts.request, "\r\nHost: shop.example\r\n"));
	assert_null(strstr(ts.request, "Host: 127.0.0.1"));
	assert_non_null(strstr(ts.request, "\r\nUser-Agent: send-test\r\n"));
	assert_null(strstr(ts.request, "bayarhook"));
	assert_non_null(strstr(ts.request, "Content-Length: 5\r\n"));
	assert_non_null(strstr(ts.request, "\r\n\r\nhello"));
	http_client_resp_owned_free(&out);
}

static void test_fetch_refused(void **state)
{
	struct fx *fx = *state;
	struct http_client_resp_owned out;
	struct http_client_req req = {.timeout_sec = 5};

	fx->port = refused_port(fx);
	req.url = url_of(fx, "http", "127.0.0.1", "/");
	assert_int_equal(http_client_fetch(&req, NULL, &out), -1);
	assert_int_equal(out.resp.status, 0);
	assert_non_null(out.resp.error);
	assert_non_null(strstr(out.resp.error, "refused"));
	assert_int_equal(out.resp.kind, HTTP_CLIENT_ERR_CONNECT);
	assert_string_equal(out.resp.body, "");
	http_client_resp_owned_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
	    T(test_post_body_and_headers),
	    T(test_get_with_query),
	    T(test_root_path_and_hostname),
	    T(test_500_with_body),
	    T(test_302_not_followed),
	    T(test_429_retry_after),
	    T(test_response_too_large),
	    T(test_response_within_limit),
	    T(test_timeout_silent_server),
	    T(test_garbage_answer),
	    T(test_hang_up_without_answer),
	    T(test_truncated_body),
	    T(test_close_delimited_body),
	    T(test_connection_refused),
	    T(test_unresolvable_host),
	    T(test_bad_requests),
	    T(test_free_cancels_outstanding),
	    T(test_cancel_one),
	    T(test_err_names),
	    T(test_free_from_callback),
	    T(test_many_concurrent),
	    T(test_tls_ok_hostname),
	    T(test_tls_ok_ip),
	    T(test_tls_wrong_hostname),
	    T(test_tls_wrong_ip),
	    T(test_tls_without_ca),
	    T(test_tls_to_plain_server),
	    T(test_tls_connection_refused),
	    T(test_tls_hang_up_in_handshake),
	    T(test_tls_bad_ca_file),
	    T(test_fetch_blocking),
	    T(test_fetch_refused),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
