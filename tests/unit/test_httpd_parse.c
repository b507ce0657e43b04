/*
 * test_httpd_parse.c: the byte side of the request reader, without
 * sockets: the exact edges of each limit, the framing rules, and outcomes
 * that do not depend on where the reads fall.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "httpd_parse.h"

#define MAX_BODY 100

static struct httpd_parser p;

/* Feeds s in reads of step bytes (0: one read) until the request ends; bytes taken in *used. */
static enum httpd_parse_result feed(const char *s, size_t len, size_t step, size_t *used)
{
	enum httpd_parse_result r = HTTPD_PARSE_MORE;
	size_t off = 0;

	httpd_parser_reset(&p, MAX_BODY);
	while (off < len && r == HTTPD_PARSE_MORE) {
		size_t n = step && step < len - off ? step : len - off, got;

		r = httpd_parser_feed(&p, s + off, n, &got);
		off += got;
	}
	if (used)
		*used = off;
	return r;
}

static enum httpd_parse_result feeds(const char *s)
{
	return feed(s, strlen(s), 0, NULL);
}

/* A request whose head is exactly len bytes (one padded field). */
static char *head_of(size_t len)
{
	static char buf[HTTPD_MAX_HEAD + 64];
	const char *start = "GET / HTTP/1.1\r\nX: ";
	size_t pad = len - strlen(start) - 4;

	snprintf(buf, sizeof(buf), "%s%0*d\r\n\r\n", start, (int)pad, 0);
	assert_int_equal(strlen(buf), len);
	return buf;
}

static void test_limit_edges(void **state)
{
	char buf[4096];
	size_t used, n;

	(void)state;
	assert_int_equal(feeds(head_of(HTTPD_MAX_HEAD)), HTTPD_PARSE_REQUEST);
	assert_int_equal(feeds(head_of(HTTPD_MAX_HEAD + 1)), HTTPD_PARSE_REFUSED);
	assert_int_equal(p.refusal, HTTPD_REFUSE_HEADERS_TOO_LARGE);

	for (int fields = HTTPD_MAX_HEADERS; fields <= HTTPD_MAX_HEADERS + 1; fields++) {
		n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
		for (int i = 0; i < fields; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "F%d: v\r\n", i);
		snprintf(buf + n, sizeof(buf) - n, "\r\n");
		assert_int_equal(feeds(buf), fields == HTTPD_MAX_HEADERS ? HTTPD_PARSE_REQUEST
		                                                         : HTTPD_PARSE_REFUSED);
	}
	assert_int_equal(p.refusal, HTTPD_REFUSE_HEADERS_TOO_LARGE);
	assert_int_equal(p.msg.nheaders, HTTPD_MAX_HEADERS); /* the rest are not kept */

	n = (size_t)snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
	                     MAX_BODY);
	memset(buf + n, 'b', MAX_BODY);
	assert_int_equal(feed(buf, n + MAX_BODY, 0, &used), HTTPD_PARSE_REQUEST);
	assert_int_equal(p.msg.body_len, MAX_BODY);
	assert_int_equal(used, n + MAX_BODY);
	n = (size_t)snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
	                     MAX_BODY + 1);
	assert_int_equal(feed(buf, n, 0, &used), HTTPD_PARSE_REFUSED);
	assert_int_equal(p.refusal, HTTPD_REFUSE_TOO_LARGE);
	assert_int_equal(p.msg.body_declared, MAX_BODY + 1);
	assert_int_equal(p.msg.body_received, 0);

	/* chunked: exactly the limit in two chunks, then one byte more */
	n = (size_t)snprintf(buf, sizeof(buf),
	                     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%0*d\r\n"
	                     "%x\r\n%0*d\r\n0\r\n\r\n",
	                     MAX_BODY / 2, MAX_BODY / 2, 0, MAX_BODY / 2, MAX_BODY / 2, 0);
	assert_int_equal(feed(buf, n, 7, NULL), HTTPD_PARSE_REQUEST);
	assert_int_equal(p.msg.body_len, MAX_BODY);
	assert_int_equal(p.msg.body_declared, -1);
	n = (size_t)snprintf(buf, sizeof(buf),
	                     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%0*d\r\n"
	                     "1\r\nz\r\n0\r\n\r\n",
	                     MAX_BODY, MAX_BODY, 0);
	assert_int_equal(feed(buf, n, 0, NULL), HTTPD_PARSE_REFUSED);
	assert_int_equal(p.refusal, HTTPD_REFUSE_TOO_LARGE);
	assert_int_equal(p.msg.body_received, MAX_BODY + 1);
	assert_int_equal(p.msg.body_len, MAX_BODY);
}

static void test_framing(void **state)
{
	static const struct {
		const char *fields;
		enum httpd_parse_result r;
		enum httpd_refusal why;
	} cases[] = {
	    {"Content-Length: 0\r\n", HTTPD_PARSE_REQUEST, 0},
	    {"Content-Length: 003\r\n", HTTPD_PARSE_REQUEST, 0},
	    {"Content-Length:   3  \r\n", HTTPD_PARSE_REQUEST, 0},
	    {"Transfer-Encoding: Chunked\r\n", HTTPD_PARSE_REQUEST, 0},
	    {"Content-Length: 3\r\nContent-Length: 3\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: 3\r\ncontent-length: 4\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: +3\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: -3\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: 3,3\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: 0x3\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length:\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_BAD_LENGTH},
	    {"Content-Length: 99999999999999999999\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_BAD_LENGTH},
	    {"Transfer-Encoding: identity\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_TRANSFER_ENCODING},
	    {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_TRANSFER_ENCODING},
	    {"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", HTTPD_PARSE_REFUSED,
	     HTTPD_REFUSE_LENGTH_AND_CHUNKED},
	    {"X-A: 1\r\n\tfolded\r\n", HTTPD_PARSE_REFUSED, HTTPD_REFUSE_MALFORMED},
	};
	char buf[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool chunked = strstr(cases[i].fields, "hunked") != NULL;
		enum httpd_parse_result r;

		snprintf(buf, sizeof(buf), "POST /x HTTP/1.1\r\n%s\r\n%s", cases[i].fields,
		         chunked ? "3\r\nabc\r\n0\r\n\r\n" : "abc");
		/* a head with no length has no body: the "abc" is the next request */
		r = feeds(buf);
		if (r != cases[i].r || (r == HTTPD_PARSE_REFUSED && p.refusal != cases[i].why))
			fail_msg("case %zu (%s): result %d refusal %d", i, cases[i].fields, r,
			         p.refusal);
	}
}

/* The same outcome in one read or byte by byte; pipelined requests one at a time. */
static void test_reads_do_not_matter(void **state)
{
	static const char *streams[] = {
	    "POST /a?q=1 HTTP/1.1\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhelloGET /b "
	    "HTTP/1.1\r\n\r\n",
	    "POST /callback HTTP/1.1\r\nContent-Length: 52\r\n\r\nPOST /callback HTTP/1.1\r\n"
	    "Content-Length: 99999999\r\n\r\n",
	    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nwiki\r\n0\r\nT: "
	    "x\r\n\r\n",
	    "GET http://h:80/abs/path?k=v#frag HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1\r\nTransfer-Encoding: chu\r\n0\r\n\r\n",
	    "\r\n\r\nGET /lead HTTP/1.1\r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		const char *s = streams[i];
		size_t len = strlen(s);
		char want[1024];

		for (size_t step = 0; step <= 5; step++) {
			char got[1024];
			size_t off = 0, used, n = 0;
			enum httpd_parse_result r;

			do {
				r = feed(s + off, len - off, step, &used);
				off += used;
				/* what a refusal reports may vary with the reads; its reason not */
				if (r == HTTPD_PARSE_REFUSED)
					n += (size_t)snprintf(got + n, sizeof(got) - n,
					                      "[refused %d]", (int)p.refusal);
				else
					n += (size_t)snprintf(
					    got + n, sizeof(got) - n, "[%d %s %s %s %zu %.*s]", r,
					    p.msg.method_name, p.msg.path,
					    p.msg.query ? p.msg.query : "-", p.msg.nheaders,
					    (int)p.msg.body_len, p.msg.body);
			} while (r == HTTPD_PARSE_REQUEST && off < len);
			if (step == 0)
				snprintf(want, sizeof(want), "%s", got);
			else if (strcmp(got, want) != 0)
				fail_msg("stream %zu step %zu:\n%s\n%s", i, step, got, want);
		}
		if (i == 1) /* the body that looks like a request is one body */
			assert_non_null(strstr(want, "[1 POST /callback - 1 POST /callback"));
		if (i == 3) {
			assert_non_null(strstr(want, "GET /abs/path k=v"));
			assert_non_null(strstr(want, "OPTIONS * -"));
		}
	}
}

/* A request leaves with the owner; the parser reads the next one. */
static void test_take(void **state)
{
	static const char two[] =
	    "POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /two HTTP/1.1\r\n\r\n";
	struct httpd_parsed d;
	size_t used, more;

	(void)state;
	assert_int_equal(feed(two, strlen(two), 0, &used), HTTPD_PARSE_REQUEST);
	assert_int_equal(used, strlen(two) - strlen("GET /two HTTP/1.1\r\n\r\n"));
	httpd_parser_take(&p, &d);
	assert_true(d.keep_alive);
	assert_int_equal(d.msg.method, HTTPD_POST);
	httpd_parser_reset(&p, MAX_BODY); /* the owner's copy outlives the parser's state */
	assert_int_equal(httpd_parser_feed(&p, two + used, strlen(two) - used, &more),
	                 HTTPD_PARSE_REQUEST);
	assert_string_equal(p.msg.path, "/two");
	assert_string_equal(d.msg.path, "/one");
	assert_string_equal(d.msg.method_name, "POST");
	assert_memory_equal(d.msg.body, "abc", 4);
	assert_string_equal(httpd_msg_header(&d.msg, "content-length"), "3");
	assert_null(httpd_msg_header(&d.msg, "Host"));
	httpd_parsed_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_edges),
	    cmocka_unit_test(test_framing),
	    cmocka_unit_test(test_reads_do_not_matter),
	    cmocka_unit_test(test_take),
	};
	int rc;

	httpd_parser_init(&p, MAX_BODY);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	httpd_parser_free(&p);
	return rc;
}
