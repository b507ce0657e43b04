/*
 * fuzz_httpd.c: libFuzzer target for the request reader's byte side
 * (src/lib/httpd_parse.c over http-parser). The input is a stream of
 * requests as a client would send them on one connection; its first byte
 * picks max_body and how the stream is cut into reads. Besides memory
 * safety it checks:
 *   - the outcome (each request's method, path, query, headers and body, or
 *     the refusal and its reason) is the same whether the stream arrives
 *     in one read or in many small ones: where reads fall never changes
 *     what is a header and what is body;
 *   - the limits hold: head, number of fields, body <= max_body, a whole
 *     request's body is exactly its declared length, a refusal's prefix
 *     (the bytes after the head in the read that refused it) is at most
 *     HTTPD_PREFIX_MAX.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc/lib \
 *     src/lib/httpd_parse.c src/lib/xmalloc.c src/lib/log.c fuzz/fuzz_httpd.c \
 *     -lhttp_parser -lsystemd -o fuzz_httpd
 * ./fuzz_httpd fuzz/corpus/httpd
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return s ? mix(h, s, strlen(s) + 1) : mix(h, "\xff", 1);
}

static uint64_t record(uint64_t h, enum httpd_parse_result r, const struct httpd_parser *p,
                       size_t max_body)
{
	const struct httpd_msg *m = &p->msg;

	if (m->nheaders > HTTPD_MAX_HEADERS || strlen(m->method_name) >= HTTPD_METHOD_MAX ||
	    (r == HTTPD_PARSE_REQUEST && m->body_len > max_body))
		abort();
	h = mix(h, &r, sizeof(r));
	if (r == HTTPD_PARSE_REFUSED) {
		if (m->body_len > HTTPD_PREFIX_MAX || p->refusal >= HTTPD_REFUSE_COUNT)
			abort();
		return mix(h, &p->refusal, sizeof(p->refusal));
	}
	if (m->method == HTTPD_METHOD_NONE || m->body_len != m->body_received ||
	    (m->body_declared >= 0 && (uint64_t)m->body_declared != m->body_len) ||
	    m->body[m->body_len] != '\0')
		abort();
	h = mix(h, &m->method, sizeof(m->method));
	h = mix_str(h, m->method_name);
	h = mix_str(h, m->path);
	h = mix_str(h, m->query);
	for (size_t i = 0; i < m->nheaders; i++) {
		h = mix_str(h, m->headers[i].name);
		h = mix_str(h, m->headers[i].value);
	}
	return mix(h, m->body, m->body_len);
}

/* Feeds the stream in reads of `step` bytes (0: all at once); a hash of the outcomes. */
static uint64_t run(const char *s, size_t size, size_t max_body, size_t step)
{
	struct httpd_parser p;
	uint64_t h = 14695981039346656037ull;
	size_t off = 0;

	httpd_parser_init(&p, max_body);
	while (off < size) {
		size_t n = step && step < size - off ? step : size - off, used = 0;
		enum httpd_parse_result r = httpd_parser_feed(&p, s + off, n, &used);

		if (used > n || (r == HTTPD_PARSE_MORE && used != n))
			abort();
		off += used;
		if (r == HTTPD_PARSE_MORE)
			continue;
		h = record(h, r, &p, max_body);
		if (r == HTTPD_PARSE_REFUSED)
			break;
		{
			/* as httpd.c does: the request leaves with the owner */
			struct httpd_parsed d;

			httpd_parser_take(&p, &d);
			httpd_parsed_free(&d);
		}
		httpd_parser_reset(&p, max_body);
	}
	if (p.result == HTTPD_PARSE_MORE && p.started) {
		httpd_parser_refuse(&p, HTTPD_REFUSE_INCOMPLETE);
		h = record(h, HTTPD_PARSE_REFUSED, &p, max_body);
	}
	httpd_parser_free(&p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t bodies[] = {0, 1, 16, 100, 4096, 65536};
	static const size_t steps[] = {1, 2, 3, 7, 64, 1000};
	size_t max_body, step;
	uint64_t whole;

	if (size < 1 || size > 200000)
		return 0;
	max_body = bodies[data[0] % 6];
	step = steps[(data[0] / 6) % 6];
	whole = run((const char *)data + 1, size - 1, max_body, 0);
	if (run((const char *)data + 1, size - 1, max_body, step) != whole)
		abort();
	return 0;
}
