/*
 * test_httpd.c: the request reader over real loopback sockets, driven by
 * one event_base in this thread: the client side is non-blocking and the
 * loop is pumped while it waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "httpd.h"

#define MAX_BODY 1024

/* What the owner saw. */
struct seen {
	int requests, refusals, nheld;
	bool in_handler, hold; /* hold: keep requests for a later reply */
	struct httpd_req *held[64];
	size_t reply_size; /* answer body size, 0: echo the path */
	/* the last request */
	enum httpd_method method;
	char method_name[32], path[256], query[256], body[4096], peer[64];
	size_t body_len, nheaders;
	char ctype[64], dup2[64]; /* Content-Type, the second X-Dup */
	/* the last refusal */
	enum httpd_refusal reason;
	int status;
	char r_method[32], r_path[256], r_body[8192], r_xtest[64];
	size_t r_body_len;
	uint64_t r_received;
	int64_t r_declared; /* -1: none */
};

static struct event_base *base;
static struct httpd *srv;
static struct seen seen;
static unsigned short port;
static bool inherited; /* listen on a socket passed in */

static void on_request(struct httpd_req *req, void *arg)
{
	struct seen *s = arg;
	const struct httpd_msg *m = httpd_req_msg(req);
	int dups = 0;

	assert_false(s->in_handler); /* never re-entered from an httpd_* call */
	s->in_handler = true;
	s->requests++;
	s->method = m->method;
	snprintf(s->method_name, sizeof(s->method_name), "%s", m->method_name);
	snprintf(s->path, sizeof(s->path), "%s", m->path);
	snprintf(s->query, sizeof(s->query), "%s", m->query ? m->query : "(none)");
	snprintf(s->peer, sizeof(s->peer), "%s", m->peer);
	s->body_len = m->body_len;
	memcpy(s->body, m->body, m->body_len < sizeof(s->body) ? m->body_len : sizeof(s->body));
	s->nheaders = m->nheaders;
	snprintf(s->ctype, sizeof(s->ctype), "%s",
	         httpd_msg_header(m, "content-TYPE") ? httpd_msg_header(m, "content-TYPE") : "");
	s->dup2[0] = '\0';
	for (size_t i = 0; i < m->nheaders; i++)
		if (strcmp(m->headers[i].name, "X-Dup") == 0 && ++dups == 2)
			snprintf(s->dup2, sizeof(s->dup2), "%s", m->headers[i].value);
	if (s->hold) {
		s->held[s->nheld++] = req;
	} else if (s->reply_size > 0) {
		char *big = malloc(s->reply_size);

		memset(big, 'x', s->reply_size);
		httpd_reply(req, 200, NULL, 0, big, s->reply_size);
		free(big);
	} else {
		char body[300];

		snprintf(body, sizeof(body), "{\"path\":\"%s\"}", m->path);
		httpd_reply_json(req, 200, body);
	}
	s->in_handler = false;
}

static void on_refused(const struct httpd_refused *r, void *arg)
{
	struct seen *s = arg;
	const struct httpd_msg *m = r->msg;
	const char *x = httpd_msg_header(m, "X-Test");

	s->refusals++;
	s->reason = r->reason;
	s->status = r->status;
	snprintf(s->r_method, sizeof(s->r_method), "%s", m->method_name);
	snprintf(s->r_path, sizeof(s->r_path), "%s", m->path);
	snprintf(s->r_xtest, sizeof(s->r_xtest), "%s", x ? x : "");
	assert_true(m->body_len <= sizeof(s->r_body));
	memcpy(s->r_body, m->body, m->body_len);
	s->r_body_len = m->body_len;
	s->r_received = m->body_received;
	s->r_declared = m->body_declared;
	assert_string_equal(m->peer, "127.0.0.1");
}

static void start(const struct httpd_limits *lim)
{
	struct httpd_handlers hd = {on_request, on_refused, &seen};
	char err[256], addr[128];

	memset(&seen, 0, sizeof(seen));
	base = event_base_new();
	srv = httpd_new(base, lim, &hd);
	if (inherited) { /* a socket made by someone else, as systemd's */
		struct sockaddr_in sin = {.sin_family = AF_INET};
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(listen(fd, 16), 0);
		assert_int_equal(httpd_listen_fd(srv, fd, err, sizeof(err)), 0);
	} else {
		assert_int_equal(httpd_listen(srv, "127.0.0.1:0", err, sizeof(err)), 0);
	}
	snprintf(addr, sizeof(addr), "%s", httpd_address(srv));
	port = (unsigned short)atoi(strrchr(addr, ':') + 1);
}

static void start_default(void)
{
	struct httpd_limits lim = {.max_body = MAX_BODY, .request_timeout_ms = 2000};

	start(&lim);
}

static void stop(void)
{
	for (int i = 0; i < seen.nheld; i++)
		if (seen.held[i])
			httpd_reply(seen.held[i], 200, NULL, 0, "", 0);
	seen.nheld = 0;
	httpd_free(srv);
	event_base_free(base);
	srv = NULL;
	base = NULL;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Runs the loop for about ms milliseconds. */
static void pump(int ms)
{
	long end = now_ms() + ms;

	do {
		event_base_loop(base, EVLOOP_NONBLOCK);
		poll(NULL, 0, 1);
	} while (now_ms() < end);
}

/* A connected non-blocking client socket; -1 when the connection is refused. */
static int cli_connect(void)
{
	struct sockaddr_in sin = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pump(5);
	return fd;
}

static void cli_send(int fd, const char *data, size_t len)
{
	long end = now_ms() + 3000;

	while (len > 0 && now_ms() < end) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else {
			assert_true(n < 0 && errno == EAGAIN);
		}
		pump(1);
	}
	assert_int_equal(len, 0);
}

static void cli_sends(int fd, const char *s)
{
	cli_send(fd, s, strlen(s));
}

/* Reads until an answer is whole (head and Content-Length body) or EOF; "" on nothing. */
static char *cli_answer(int fd, int timeout_ms)
{
	static char buf[1 << 20];
	size_t len = 0;
	long end = now_ms() + timeout_ms;

	while (now_ms() < end && len < sizeof(buf) - 1) {
		ssize_t n;
		char *head_end;

		buf[len] = '\0';
		head_end = strstr(buf, "\r\n\r\n");
		if (head_end) {
			const char *cl = strstr(buf, "Content-Length: ");
			size_t want =
			    (size_t)(head_end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);

			if (strncmp(buf, "HTTP/1.1 100 ", 13) == 0)
				want = (size_t)(head_end + 4 - buf);
			if (len >= want) {
				if (len > want) /* the next answer: keep it unread */
					abort();
				break;
			}
		}
		n = recv(fd, buf + len, 1, 0); /* one byte: never read past this answer */
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break; /* closed */
		pump(1);
	}
	buf[len] = '\0';
	return buf;
}

/* True when the server closed the connection within timeout_ms. */
static bool cli_closed(int fd, int timeout_ms)
{
	long end = now_ms() + timeout_ms;
	char c;

	while (now_ms() < end) {
		ssize_t n = recv(fd, &c, 1, 0);

		if (n == 0 || (n < 0 && errno != EAGAIN))
			return true;
		pump(1);
	}
	return false;
}

static void test_request(void **state)
{
	int fd;
	char *a;
	const char *req = "POST /callback?a=1&b=2 HTTP/1.1\r\nHost: x\r\n"
	                  "Content-Type: application/json\r\nX-Dup: one\r\nX-Dup: two  \r\n"
	                  "Content-Length: 11\r\n\r\n{\"k\":\"v\"}\r\n";

	(void)state;
	start_default();
	fd = cli_connect();
	cli_sends(fd, req);
	a = cli_answer(fd, 2000);
	assert_non_null(strstr(a, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(a, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(a, "Connection: keep-alive\r\n"));
	assert_non_null(strstr(a, "\r\n\r\n{\"path\":\"/callback\"}"));
	assert_int_equal(seen.requests, 1);
	assert_int_equal(seen.method, HTTPD_POST);
	assert_string_equal(seen.method_name, "POST");
	assert_string_equal(seen.path, "/callback");
	assert_string_equal(seen.query, "a=1&b=2");
	assert_string_equal(seen.peer, "127.0.0.1");
	assert_string_equal(seen.ctype, "application/json");
	assert_string_equal(seen.dup2, "two"); /* order and duplicates kept, blanks trimmed */
	assert_int_equal(seen.nheaders, 5);
	assert_int_equal(seen.body_len, 11);
	assert_memory_equal(seen.body, "{\"k\":\"v\"}\r\n", 11);
	assert_int_equal(seen.refusals, 0);
	close(fd);
	stop();
}

static void test_keep_alive_and_pipelining(void **state)
{
	struct httpd_stats st;
	int fd;

	(void)state;
	start_default();
	fd = cli_connect();
	cli_sends(fd, "GET /one HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(fd, 2000), "{\"path\":\"/one\"}"));
	cli_sends(fd, "GET /two HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(fd, 2000), "{\"path\":\"/two\"}"));
	/* three at once, answered in order, each only after the one before */
	seen.hold = true;
	cli_sends(fd, "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
	              "GET /c HTTP/1.1\r\n\r\n");
	pump(50);
	assert_int_equal(seen.nheld, 1); /* /b is not read before /a is answered */
	assert_string_equal(seen.path, "/a");
	httpd_reply_json(seen.held[0], 200, "{\"n\":1}");
	seen.held[0] = NULL;
	assert_non_null(strstr(cli_answer(fd, 2000), "{\"n\":1}"));
	pump(20);
	assert_int_equal(seen.nheld, 2);
	assert_string_equal(seen.path, "/b");
	assert_memory_equal(seen.body, "hi", 2);
	httpd_reply_json(seen.held[1], 201, "{\"n\":2}");
	seen.held[1] = NULL;
	assert_non_null(strstr(cli_answer(fd, 2000), "201 Created"));
	pump(20);
	assert_int_equal(seen.nheld, 3);
	assert_string_equal(seen.path, "/c");
	httpd_reply_json(seen.held[2], 200, "{\"n\":3}");
	seen.held[2] = NULL;
	assert_non_null(strstr(cli_answer(fd, 2000), "{\"n\":3}"));
	httpd_get_stats(srv, &st);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(seen.requests, 5);
	close(fd);
	stop();
}

/* A client pipelining without reading answers stalls; our buffers do not grow. */
static void test_pipelining_bounded(void **state)
{
	struct httpd_stats st;
	size_t max_buffered = 0, sent = 0;
	int fd, small = 4096;
	char *reqs;
	size_t len = 0, one = strlen("GET /p HTTP/1.1\r\n\r\n");
	const size_t total = 4 << 20;

	(void)state;
	start_default();
	seen.reply_size = 8192;
	fd = cli_connect();
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	reqs = malloc(total);
	while (len + one <= total) {
		memcpy(reqs + len, "GET /p HTTP/1.1\r\n\r\n", one);
		len += one;
	}
	for (long end = now_ms() + 1500; now_ms() < end;) {
		ssize_t n = send(fd, reqs + sent, len - sent, MSG_NOSIGNAL);

		if (n > 0)
			sent += (size_t)n;
		pump(2);
		httpd_get_stats(srv, &st);
		if (st.buffered > max_buffered)
			max_buffered = st.buffered;
	}
	/* the client stopped being able to send: the kernel's buffers are full, ours are not */
	assert_true(sent < len);
	assert_true(seen.requests < 2000);
	assert_true(max_buffered <= 64 * 1024);
	free(reqs);
	close(fd);
	stop();
}

/* A body that looks like a request is a body. */
static void test_body_is_never_a_head(void **state)
{
	static const char body[] = "POST /callback HTTP/1.1\r\nContent-Length: 99999999\r\n"
	                           "X-Forwarded-For: 6.6.6.6\r\n\r\n";
	char req[512];
	int fd;

	(void)state;
	start_default();
	fd = cli_connect();
	snprintf(req, sizeof(req), "POST /callback HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
	         strlen(body));
	/* the head, then the body in a read of its own, as the old peek feared */
	cli_sends(fd, req);
	pump(20);
	cli_sends(fd, body);
	assert_non_null(strstr(cli_answer(fd, 2000), "200 OK"));
	assert_int_equal(seen.requests, 1);
	assert_int_equal(seen.refusals, 0);
	assert_int_equal(seen.body_len, strlen(body));
	assert_memory_equal(seen.body, body, strlen(body));
	cli_sends(fd, "GET /after HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(fd, 2000), "/after"));
	assert_int_equal(seen.requests, 2);
	close(fd);
	stop();
}

struct refusal_case {
	const char *name;
	const char *head; /* sent first */
	size_t body;      /* then this many 'b' bytes */
	int status;
	enum httpd_refusal reason;
	const char *method, *path;
};

static void test_refusals(void **state)
{
	static char long_url[20000], big_head[20000], many[4000];
	const struct refusal_case cases[] = {
	    {"unknown method", "BREW /pot HTTP/1.1\r\nX-No: t\r\n\r\n", 0, 501, HTTPD_REFUSE_METHOD,
	     "BREW", ""},
	    {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nX-Test: t\r\n\r\n", 0, 501,
	     HTTPD_REFUSE_METHOD, "CONNECT", "example.com:443"},
	    {"WebDAV", "PROPFIND /callback HTTP/1.1\r\nX-Test: t\r\n\r\n", 0, 501,
	     HTTPD_REFUSE_METHOD, "PROPFIND", "/callback"},
	    {"version", "GET / HTTP/2.0\r\nX-Test: t\r\n\r\n", 0, 505, HTTPD_REFUSE_VERSION, "GET",
	     "/"},
	    {"request line", "GET /\x01 HTTP/1.1\r\n\r\n", 0, 400, HTTPD_REFUSE_MALFORMED, "GET",
	     ""},
	    {"header syntax", "GET / HTTP/1.1\r\nX-Test: t\r\nBad Header\r\n\r\n", 0, 400,
	     HTTPD_REFUSE_MALFORMED, "GET", "/"},
	    {"folding", "GET / HTTP/1.1\r\nX-Test: t\r\nX-A: one\r\n two\r\n\r\n", 0, 400,
	     HTTPD_REFUSE_MALFORMED, "GET", "/"},
	    {"url", long_url, 0, 414, HTTPD_REFUSE_URL_TOO_LONG, "GET", NULL},
	    {"head", big_head, 0, 431, HTTPD_REFUSE_HEADERS_TOO_LARGE, "GET", "/h"},
	    {"fields", many, 0, 431, HTTPD_REFUSE_HEADERS_TOO_LARGE, "GET", "/m"},
	    {"two lengths",
	     "POST /callback HTTP/1.1\r\nX-Test: t\r\nContent-Length: 2\r\n"
	     "Content-Length: 2\r\n\r\n",
	     2, 400, HTTPD_REFUSE_BAD_LENGTH, "POST", "/callback"},
	    {"signed length", "POST /callback HTTP/1.1\r\nX-Test: t\r\nContent-Length: +2\r\n\r\n",
	     2, 400, HTTPD_REFUSE_BAD_LENGTH, "POST", "/callback"},
	    {"spaced length", "POST /callback HTTP/1.1\r\nX-Test: t\r\nContent-Length: 1 2\r\n\r\n",
	     12, 400, HTTPD_REFUSE_BAD_LENGTH, "POST", "/callback"},
	    {"gzip",
	     "POST /callback HTTP/1.1\r\nX-Test: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0,
	     501, HTTPD_REFUSE_TRANSFER_ENCODING, "POST", "/callback"},
	    {"te and cl",
	     "POST /callback HTTP/1.1\r\nX-Test: t\r\nTransfer-Encoding: chunked\r\n"
	     "Content-Length: 5\r\n\r\n0\r\n\r\n",
	     0, 400, HTTPD_REFUSE_LENGTH_AND_CHUNKED, "POST", "/callback"},
	};

	(void)state;
	snprintf(long_url, sizeof(long_url), "GET /%0*d HTTP/1.1\r\n\r\n", 17000, 0);
	snprintf(big_head, sizeof(big_head), "GET /h HTTP/1.1\r\nX-Test: t\r\nX-Big: %0*d\r\n\r\n",
	         17000, 0);
	strcpy(many, "GET /m HTTP/1.1\r\nX-Test: t\r\n");
	for (int i = 0; i < 110; i++)
		strcat(many, "X-n: v\r\n");
	strcat(many, "\r\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct refusal_case *c = &cases[i];
		char status[32], *a, *b = NULL;
		int fd;

		start_default();
		fd = cli_connect();
		cli_sends(fd, c->head);
		if (c->body) {
			b = malloc(c->body);
			memset(b, 'b', c->body);
			send(fd, b, c->body, MSG_NOSIGNAL);
			free(b);
		}
		a = cli_answer(fd, 2000);
		snprintf(status, sizeof(status), "HTTP/1.1 %d ", c->status);
		if (strncmp(a, status, strlen(status)) != 0)
			fail_msg("%s: got %.40s", c->name, a);
		assert_non_null(strstr(a, "Connection: close\r\n"));
		assert_non_null(strstr(a, "\r\n\r\n{\"success\":false,\"error\":\""));
		assert_true(cli_closed(fd, 3000));
		assert_int_equal(httpd_refusal_status(c->reason), c->status);
		if (seen.refusals != 1 || seen.reason != c->reason || seen.status != c->status)
			fail_msg("%s: refusals=%d reason=%s", c->name, seen.refusals,
			         httpd_refusal_name(seen.reason));
		if (strcmp(seen.r_method, c->method) != 0 ||
		    (c->path && strcmp(seen.r_path, c->path)) ||
		    /* the headers read so far */
		    (strstr(c->head, "X-Test") && strcmp(seen.r_xtest, "t") != 0))
			fail_msg("%s: method=%s path=%.40s x-test=%s", c->name, seen.r_method,
			         seen.r_path, seen.r_xtest);
		assert_int_equal(seen.requests, 0);
		close(fd);
		stop();
	}
}

static void test_too_large(void **state)
{
	char head[256], *body;
	int fd;

	(void)state;
	/* declared: refused before the body is read; the report has what came with the head */
	start_default();
	fd = cli_connect();
	body = malloc(8192);
	memset(body, 'b', 8192);
	snprintf(head, sizeof(head),
	         "POST /callback HTTP/1.1\r\nX-Test: t\r\nContent-Length: %d\r\n\r\nfirst",
	         MAX_BODY + 1);
	cli_sends(fd, head);
	assert_non_null(strstr(cli_answer(fd, 2000), "HTTP/1.1 413 Payload Too Large\r\n"));
	assert_int_equal(seen.reason, HTTPD_REFUSE_TOO_LARGE);
	assert_int_equal(seen.r_declared, MAX_BODY + 1);
	assert_int_equal(seen.r_body_len, 5);
	assert_memory_equal(seen.r_body, "first", 5);
	assert_string_equal(seen.r_xtest, "t");
	send(fd, body, 8192, MSG_NOSIGNAL); /* the rest is discarded, the connection closed */
	assert_true(cli_closed(fd, 3000));
	close(fd);
	stop();

	/* chunked: counted as it arrives */
	start_default();
	fd = cli_connect();
	cli_sends(fd, "POST /callback HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		cli_sends(fd, "200\r\n"); /* 512 bytes each */
		cli_send(fd, body, 512);
		cli_sends(fd, "\r\n");
	}
	assert_non_null(strstr(cli_answer(fd, 2000), "HTTP/1.1 413 "));
	assert_int_equal(seen.refusals, 1);
	assert_int_equal(seen.reason, HTTPD_REFUSE_TOO_LARGE);
	assert_int_equal(seen.r_declared, -1);
	assert_true(seen.r_received > MAX_BODY);
	assert_int_equal(seen.r_body_len, MAX_BODY);
	assert_int_equal(seen.requests, 0);
	close(fd);
	stop();

	free(body);
}

static void test_timeouts(void **state)
{
	struct httpd_limits lim = {
	    .max_body = MAX_BODY, .request_timeout_ms = 300, .idle_timeout_ms = 200};
	struct httpd_stats st;
	long t0;
	int fd;

	(void)state;
	start(&lim);
	/* a request that does not arrive in time, sent slowly enough to never be idle */
	fd = cli_connect();
	t0 = now_ms();
	cli_sends(fd, "POST /callback HTTP/1.1\r\nX-Test: t\r\nContent-Length: 10\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		pump(60);
		cli_sends(fd, "a");
	}
	assert_non_null(strstr(cli_answer(fd, 2000), "HTTP/1.1 408 "));
	assert_true(now_ms() - t0 >= 250);
	assert_int_equal(seen.reason, HTTPD_REFUSE_TIMEOUT);
	assert_string_equal(seen.r_method, "POST");
	assert_string_equal(seen.r_path, "/callback");
	assert_int_equal(seen.r_declared, 10);
	assert_int_equal(seen.r_received, 3);
	assert_memory_equal(seen.r_body, "aaa", 3);
	assert_true(cli_closed(fd, 2000));
	close(fd);

	/* idle keep-alive: closed quietly */
	fd = cli_connect();
	cli_sends(fd, "GET /x HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(fd, 2000), "200 OK"));
	t0 = now_ms();
	assert_true(cli_closed(fd, 2000));
	assert_true(now_ms() - t0 >= 150);
	close(fd);
	/* connected, sent nothing: closed at the request deadline, nothing reported */
	fd = cli_connect();
	assert_true(cli_closed(fd, 2000));
	close(fd);
	assert_int_equal(seen.refusals, 1);
	httpd_get_stats(srv, &st);
	assert_int_equal(st.connections, 0);
	stop();
}

/* The client is gone before the owner answers: the answer is dropped, nothing breaks. */
static void test_reply_after_client_left(void **state)
{
	struct linger lg = {1, 0};
	struct httpd_stats st;
	int fd;

	(void)state;
	start_default();
	seen.hold = true;
	fd = cli_connect();
	cli_sends(fd, "POST /callback HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	pump(30);
	assert_int_equal(seen.nheld, 1);
	httpd_get_stats(srv, &st);
	assert_int_equal(st.inflight, 1);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd); /* a reset */
	pump(30);
	httpd_reply_json(seen.held[0], 200, "{}");
	seen.held[0] = NULL;
	pump(30);
	httpd_get_stats(srv, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.inflight, 0);

	/* and when the whole server is gone */
	fd = cli_connect();
	cli_sends(fd, "GET /late HTTP/1.1\r\n\r\n");
	pump(30);
	assert_int_equal(seen.nheld, 2);
	httpd_free(srv);
	srv = NULL;
	httpd_reply_json(seen.held[1], 200, "{}");
	seen.held[1] = NULL;
	seen.nheld = 0;
	close(fd);
	event_base_free(base);
}

static void test_max_conns(void **state)
{
	struct httpd_limits lim = {
	    .max_body = MAX_BODY, .request_timeout_ms = 2000, .max_conns = 2};
	struct httpd_stats st;
	int a, b, c;

	(void)state;
	inherited = true;
	start(&lim);
	inherited = false;
	a = cli_connect();
	b = cli_connect();
	c = cli_connect();
	pump(20);
	assert_non_null(strstr(cli_answer(c, 2000), "HTTP/1.1 503 "));
	assert_true(cli_closed(c, 1000));
	httpd_get_stats(srv, &st);
	assert_int_equal(st.connections, 2);
	assert_int_equal(st.over_capacity, 1);
	cli_sends(a, "GET / HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(a, 2000), "200 OK"));
	httpd_stop_accepting(srv); /* an inherited listener is closed at once */
	assert_int_equal(cli_connect(), -1);
	close(a);
	close(b);
	close(c);
	stop();
}

static void test_graceful_stop(void **state)
{
	int idle, busy;
	char *a;

	(void)state;
	start_default();
	idle = cli_connect();
	cli_sends(idle, "GET /1 HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(idle, 2000), "200 OK"));
	busy = cli_connect();
	seen.hold = true;
	cli_sends(busy, "POST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
	pump(30);
	assert_int_equal(seen.nheld, 1);
	httpd_stop_accepting(srv);
	assert_true(cli_closed(idle, 1000)); /* idle keep-alive: closed */
	assert_false(httpd_drained(srv));
	httpd_reply_json(seen.held[0], 200, "{\"last\":true}");
	seen.held[0] = NULL;
	a = cli_answer(busy, 2000);
	assert_non_null(strstr(a, "Connection: close\r\n"));
	assert_non_null(strstr(a, "{\"last\":true}"));
	assert_true(cli_closed(busy, 1000));
	close(busy);
	for (int i = 0; i < 100 && !httpd_drained(srv); i++)
		pump(10);
	assert_true(httpd_drained(srv));
	/* the listener is closed now */
	assert_int_equal(cli_connect(), -1);
	close(idle);
	stop();
}

static void test_expect_head_and_http10(void **state)
{
	char *a;
	int fd;

	(void)state;
	start_default();
	fd = cli_connect();
	cli_sends(fd, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
	assert_non_null(strstr(cli_answer(fd, 2000), "HTTP/1.1 100 Continue\r\n\r\n"));
	cli_sends(fd, "body");
	assert_non_null(strstr(cli_answer(fd, 2000), "200 OK"));
	assert_memory_equal(seen.body, "body", 4);
	cli_sends(fd, "HEAD /h HTTP/1.1\r\n\r\n");
	a = cli_answer(fd, 2000);
	assert_non_null(strstr(a, "Content-Length: 13\r\n")); /* {"path":"/h"} */
	assert_non_null(strstr(a, "\r\n\r\n"));
	assert_string_equal(strstr(a, "\r\n\r\n"), "\r\n\r\n"); /* no body */
	close(fd);
	fd = cli_connect();
	cli_sends(fd, "GET /old HTTP/1.0\r\n\r\n");
	a = cli_answer(fd, 2000);
	assert_non_null(strstr(a, "Connection: close\r\n"));
	assert_true(cli_closed(fd, 1000));
	close(fd);
	/* the client half-closes after a partial request: refused, answered */
	fd = cli_connect();
	cli_sends(fd, "GET /half HTTP/1.1\r\nX-Test: t\r\n");
	shutdown(fd, SHUT_WR);
	assert_non_null(strstr(cli_answer(fd, 2000), "HTTP/1.1 400 "));
	assert_int_equal(seen.reason, HTTPD_REFUSE_INCOMPLETE);
	assert_string_equal(seen.r_path, "/half");
	close(fd);
	stop();
}

/* Out of descriptors, accepting pauses instead of spinning, and resumes. */
static void test_out_of_descriptors(void **state)
{
	struct rlimit old, low;
	struct httpd_stats st;
	int fds[64], n = 0, cli;

	(void)state;
	start_default();
	getrlimit(RLIMIT_NOFILE, &old);
	{
		int probe = dup(0);

		low = old;
		low.rlim_cur = (rlim_t)probe + 8;
		close(probe);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fds[n] = dup(0)) >= 0)
		n++;
	assert_true(n > 1 && n < 64);
	close(fds[--n]); /* room for the client's socket only */
	cli = cli_connect();
	pump(500);
	httpd_get_stats(srv, &st);
	assert_true(st.accept_pauses >= 1);
	assert_true(st.accept_pauses <= 10); /* ~1 per 100 ms, not a spin */
	assert_int_equal(st.accepted, 0);
	close(fds[--n]); /* a descriptor is free: accepted within a pause */
	cli_sends(cli, "GET /fd HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(cli_answer(cli, 1000), "200 OK"));
	while (n > 0)
		close(fds[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
	close(cli);
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request),
	    cmocka_unit_test(test_keep_alive_and_pipelining),
	    cmocka_unit_test(test_pipelining_bounded),
	    cmocka_unit_test(test_body_is_never_a_head),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_reply_after_client_left),
	    cmocka_unit_test(test_max_conns),
	    cmocka_unit_test(test_graceful_stop),
	    cmocka_unit_test(test_expect_head_and_http10),
	    cmocka_unit_test(test_out_of_descriptors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
