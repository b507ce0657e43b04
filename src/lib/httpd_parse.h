/*
 * httpd_parse.h: the byte side of the request reader, with no sockets: one
 * request at a time is read from the bytes it is fed, under the limits, and
 * is either complete or refused. httpd.c feeds it from connections; the
 * fuzzer feeds it anything.
 */
#ifndef BAYARHOOK_HTTPD_PARSE_H
#define BAYARHOOK_HTTPD_PARSE_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpd.h"

#define HTTPD_MAX_HEAD 16384  /* request line and header fields, CRLFs included */
#define HTTPD_MAX_HEADERS 100 /* header fields */
#define HTTPD_PREFIX_MAX 4096 /* body bytes reported with a refusal */
#define HTTPD_METHOD_MAX 24

enum httpd_parse_result {
	HTTPD_PARSE_MORE,    /* all bytes taken; the request goes on */
	HTTPD_PARSE_REQUEST, /* a whole request; bytes after it were not taken */
	HTTPD_PARSE_REFUSED, /* refused; see .refusal */
};

/* Where a string lives in the arena (offsets: the arena may move while it grows). */
struct httpd_span {
	size_t off;
	bool set;
};

struct httpd_field {
	struct httpd_span name, value;
};

/* What a finished request owns: the msg points into these blocks. */
struct httpd_parsed {
	struct httpd_msg msg;
	char *arena;
	char *body;
	struct httpd_header *hv;
	char method[HTTPD_METHOD_MAX];
	bool keep_alive;
};

struct httpd_parser {
	http_parser hp;
	size_t max_body;
	enum httpd_parse_result result;
	enum httpd_refusal refusal;
	bool started;  /* a byte of this request was seen */
	bool url_done; /* the request line is behind us */
	bool headers_done;
	bool complete;
	bool want_continue; /* Expect: 100-continue on a request with a body */
	bool keep_alive;    /* the client allows another request after this one */
	bool te_seen, cl_seen;
	size_t head_fed;
	bool after_lf; /* the last head byte fed was a LF */
	enum {
		HTTPD_IN_NONE,
		HTTPD_IN_URL,
		HTTPD_IN_FIELD,
		HTTPD_IN_VALUE,
		HTTPD_IN_SKIP_FIELD, /* a field past HTTPD_MAX_HEADERS */
		HTTPD_IN_SKIP_VALUE,
	} in;
	bool has_pending; /* a rule broken in the head, applied when it is complete */
	enum httpd_refusal pending;
	char method[HTTPD_METHOD_MAX];
	size_t mlen;
	bool mdone;
	char *arena;
	size_t alen, acap;
	struct httpd_span url, path, query;
	struct httpd_field *fields;
	size_t nfields, fcap;
	char *body;
	size_t blen, bcap;
	uint64_t received;
	int64_t declared;
	struct httpd_header *hv; /* built with the msg */
	struct httpd_msg msg;    /* valid once result != HTTPD_PARSE_MORE */
};

void httpd_parser_init(struct httpd_parser *p, size_t max_body);
/* Ready for the next request on the same connection (frees what it held). */
void httpd_parser_reset(struct httpd_parser *p, size_t max_body);
void httpd_parser_free(struct httpd_parser *p);
/*
 * Reads from data; *used bytes were taken (the rest belongs to the next
 * request, or to nobody after a refusal). Once the result is not
 * HTTPD_PARSE_MORE, p->msg says what was read (peer is left NULL).
 */
enum httpd_parse_result httpd_parser_feed(struct httpd_parser *p, const char *data, size_t len,
                                          size_t *used);
/* Refuses the request being read (timeout, end of stream) and fills p->msg. */
void httpd_parser_refuse(struct httpd_parser *p, enum httpd_refusal why);
/* Bytes held by the parser (arena, fields, body). */
size_t httpd_parser_held(const struct httpd_parser *p);
/* Moves a whole request's blocks to out; the parser must be reset after. */
void httpd_parser_take(struct httpd_parser *p, struct httpd_parsed *out);
void httpd_parsed_free(struct httpd_parsed *d);

#endif
