/*
 * httpd_parse.c: reads one HTTP/1.1 request from bytes, under our limits.
 *
 * Why nodejs's http-parser (Debian's libhttp-parser-dev, 2.9) and not our
 * own: it is a state machine over a byte stream that has been fuzzed and
 * used in front of the internet for a decade; chunked decoding, request-line
 * and header-token syntax are the parts where a hand-written parser goes
 * wrong. Being a state machine fed byte ranges, it cannot mistake a body
 * byte for a header wherever the reads fall, which is the defect of the
 * evhttp work-arounds this replaces. What it allows and we do not is
 * checked here on top of it, not left to its version:
 *   - exactly one Content-Length, digits only (no sign, no inner space);
 *   - Transfer-Encoding exactly "chunked" (one field), never with a length;
 *   - HTTP/1.x only; methods GET HEAD POST PUT DELETE OPTIONS TRACE PATCH;
 *   - request line plus header block at most HTTPD_MAX_HEAD bytes (counted
 *     on the bytes fed, so whitespace and CRLFs count too), at most
 *     HTTPD_MAX_HEADERS fields, no obsolete line folding;
 *   - the body at most max_body: a declared length over it is refused
 *     before a body byte is read, a chunked one as soon as it passes it.
 * It is paused at the end of each request, so a pipelined request behind
 * it is not read until the owner has answered.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpd_parse.h"
#include "xmalloc.h"

static const struct {
	enum http_method hp;
	enum httpd_method m;
} httpd_methods[] = {
    {HTTP_GET, HTTPD_GET},     {HTTP_HEAD, HTTPD_HEAD},     {HTTP_POST, HTTPD_POST},
    {HTTP_PUT, HTTPD_PUT},     {HTTP_DELETE, HTTPD_DELETE}, {HTTP_OPTIONS, HTTPD_OPTIONS},
    {HTTP_TRACE, HTTPD_TRACE}, {HTTP_PATCH, HTTPD_PATCH},
};

static struct httpd_parser *P(http_parser *hp)
{
	return hp->data;
}

/* Marks the request refused; returning -1 from a callback stops http-parser. */
static int fail(struct httpd_parser *p, enum httpd_refusal why)
{
	if (p->result == HTTPD_PARSE_MORE) {
		p->result = HTTPD_PARSE_REFUSED;
		p->refusal = why;
	}
	return -1;
}

/* Room for n more bytes and a NUL. */
static void arena_reserve(struct httpd_parser *p, size_t n)
{
	if (p->alen + n + 1 > p->acap) {
		size_t cap = p->acap ? p->acap : 512;

		while (cap < p->alen + n + 1)
			cap *= 2;
		p->arena = xreallocarray(p->arena, cap, 1);
		p->acap = cap;
	}
}

static void arena_add(struct httpd_parser *p, const char *s, size_t n)
{
	arena_reserve(p, n);
	memcpy(p->arena + p->alen, s, n);
	p->alen += n;
	p->arena[p->alen] = '\0';
}

static struct httpd_span arena_str(struct httpd_parser *p, const char *s, size_t n)
{
	struct httpd_span sp = {p->alen, true};

	arena_add(p, s, n);
	p->alen++; /* past the NUL arena_add wrote */
	return sp;
}

/* Ends the string being appended (the URL, a name, a value). */
static void arena_end(struct httpd_parser *p)
{
	arena_add(p, "", 0);
	p->alen++;
}

static const char *S(const struct httpd_parser *p, struct httpd_span sp)
{
	return sp.set ? p->arena + sp.off : "";
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * A rule broken in the header block refuses the request only once the block
 * is complete: http-parser hands over a field's bytes as the reads end, so
 * acting at once would make the reason for a head that is also malformed
 * further on depend on where the reads fell.
 */
static void pending(struct httpd_parser *p, enum httpd_refusal why)
{
	if (!p->has_pending)
		p->pending = why;
	p->has_pending = true;
}

/* A value is complete: trim its trailing blanks and apply our framing rules. */
static void field_done(struct httpd_parser *p)
{
	struct httpd_field *f = &p->fields[p->nfields - 1];
	char *v = p->arena + f->value.off, *e = v + strlen(v);
	const char *name = S(p, f->name);

	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (strpbrk(v, "\r\n") != NULL)
		pending(p, HTTPD_REFUSE_MALFORMED); /* obsolete line folding */
	if (strcasecmp(name, "Content-Length") == 0) {
		if (p->cl_seen || !all_digits(v) || strlen(v) > 18)
			pending(p, HTTPD_REFUSE_BAD_LENGTH);
		else
			p->declared = (int64_t)strtoll(v, NULL, 10);
		p->cl_seen = true;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		if (p->te_seen || strcasecmp(v, "chunked") != 0)
			pending(p, HTTPD_REFUSE_TRANSFER_ENCODING);
		p->te_seen = true;
	}
	if (p->te_seen && p->cl_seen)
		pending(p, HTTPD_REFUSE_LENGTH_AND_CHUNKED);
}

/* Closes the string in progress; a finished value is checked unless only tidying up. */
static void close_current(struct httpd_parser *p, bool check)
{
	switch (p->in) {
	case HTTPD_IN_URL:
		arena_end(p);
		p->url_done = true;
		break;
	case HTTPD_IN_FIELD:
		arena_end(p);
		p->fields[p->nfields - 1].value = arena_str(p, "", 0);
		break;
	case HTTPD_IN_VALUE:
		arena_end(p);
		if (check)
			field_done(p);
		break;
	case HTTPD_IN_NONE:
	case HTTPD_IN_SKIP_FIELD:
	case HTTPD_IN_SKIP_VALUE:
		break;
	}
	p->in = HTTPD_IN_NONE;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
	struct httpd_parser *p = P(hp);

	if (p->in != HTTPD_IN_URL) {
		p->url = (struct httpd_span){p->alen, true};
		p->in = HTTPD_IN_URL;
	}
	arena_add(p, at, len);
	return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct httpd_parser *p = P(hp);

	if (p->headers_done)
		return 0; /* chunked trailers: not used (http-parser bounds their size) */
	if (p->in == HTTPD_IN_SKIP_FIELD)
		return 0;
	if (p->in != HTTPD_IN_FIELD) {
		close_current(p, true);
		if (p->nfields == HTTPD_MAX_HEADERS) {
			pending(p, HTTPD_REFUSE_HEADERS_TOO_LARGE);
			p->in = HTTPD_IN_SKIP_FIELD; /* not kept */
			return 0;
		}
		if (p->nfields == p->fcap) {
			p->fcap = p->fcap ? p->fcap * 2 : 16;
			p->fields = xreallocarray(p->fields, p->fcap, sizeof(*p->fields));
		}
		p->fields[p->nfields++] = (struct httpd_field){{p->alen, true}, {0, false}};
		p->in = HTTPD_IN_FIELD;
	}
	arena_add(p, at, len);
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct httpd_parser *p = P(hp);

	if (p->headers_done || p->in == HTTPD_IN_SKIP_VALUE)
		return 0;
	if (p->in == HTTPD_IN_SKIP_FIELD) {
		p->in = HTTPD_IN_SKIP_VALUE;
		return 0;
	}
	if (p->in != HTTPD_IN_VALUE) {
		arena_end(p); /* the name */
		p->fields[p->nfields - 1].value = (struct httpd_span){p->alen, true};
		p->in = HTTPD_IN_VALUE;
	}
	arena_add(p, at, len);
	return 0;
}

/* A new string copied from n bytes at off in the arena itself (which may move). */
static struct httpd_span arena_dup(struct httpd_parser *p, size_t off, size_t n)
{
	struct httpd_span sp = {0, true};

	arena_reserve(p, n + 1);
	sp.off = p->alen;
	memmove(p->arena + p->alen, p->arena + off, n);
	p->alen += n;
	p->arena[p->alen++] = '\0';
	return sp;
}

/* Splits the URL into path and query: origin form ("/a?b"), "*", or absolute form. */
static int split_url(struct httpd_parser *p)
{
	const char *u = S(p, p->url);
	size_t n = strlen(u), pl, at = p->url.off;
	struct http_parser_url pu;

	if (u[0] == '/' || u[0] == '*') {
		pl = strcspn(u, "?#");
		if (u[pl] == '?')
			p->query = arena_dup(p, at + pl + 1, strcspn(u + pl + 1, "#"));
		p->path = arena_dup(p, at, pl);
		return 0;
	}
	http_parser_url_init(&pu);
	if (http_parser_parse_url(u, n, 0, &pu) != 0) {
		p->path = arena_dup(p, at, n);
		return -1;
	}
	if (pu.field_set & (1 << UF_QUERY))
		p->query =
		    arena_dup(p, at + pu.field_data[UF_QUERY].off, pu.field_data[UF_QUERY].len);
	if (pu.field_set & (1 << UF_PATH))
		p->path = arena_dup(p, at + pu.field_data[UF_PATH].off, pu.field_data[UF_PATH].len);
	else
		p->path = arena_str(p, "/", 1);
	return 0;
}

static enum httpd_method method_of(const http_parser *hp)
{
	for (size_t i = 0; i < sizeof(httpd_methods) / sizeof(httpd_methods[0]); i++)
		if (httpd_methods[i].hp == (enum http_method)hp->method)
			return httpd_methods[i].m;
	return HTTPD_METHOD_NONE;
}

static int on_headers_complete(http_parser *hp)
{
	struct httpd_parser *p = P(hp);

	close_current(p, true);
	p->url_done = true;
	p->headers_done = true;
	if (hp->http_major != 1)
		return fail(p, HTTPD_REFUSE_VERSION);
	if (method_of(hp) == HTTPD_METHOD_NONE)
		return fail(p, HTTPD_REFUSE_METHOD); /* CONNECT's authority is no path */
	if (split_url(p) < 0)
		return fail(p, HTTPD_REFUSE_MALFORMED);
	if (p->has_pending)
		return fail(p, p->pending);
	if (p->declared > 0 && (uint64_t)p->declared > p->max_body)
		return fail(p, HTTPD_REFUSE_TOO_LARGE);
	if (p->declared > 0) {
		p->bcap = (size_t)p->declared + 1;
		p->body = xmalloc(p->bcap);
	}
	if (hp->http_minor >= 1 && (p->declared > 0 || p->te_seen)) {
		for (size_t i = 0; i < p->nfields; i++)
			if (strcasecmp(S(p, p->fields[i].name), "Expect") == 0 &&
			    strcasecmp(S(p, p->fields[i].value), "100-continue") == 0)
				p->want_continue = true;
	}
	/* An Upgrade is not taken: the request is read as a plain one. */
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
	struct httpd_parser *p = P(hp);

	p->received += len;
	if (p->blen + len > p->max_body) {
		/* Keep no more than the first bytes, for the refusal's report. */
		size_t room = p->blen < HTTPD_PREFIX_MAX ? HTTPD_PREFIX_MAX - p->blen : 0;

		if (room > p->max_body - p->blen)
			room = p->max_body - p->blen;
		len = len < room ? len : room;
		fail(p, HTTPD_REFUSE_TOO_LARGE);
	}
	if (p->blen + len + 1 > p->bcap) {
		size_t cap = p->bcap ? p->bcap : 1024;

		while (cap < p->blen + len + 1)
			cap *= 2;
		if (cap > p->max_body + 1)
			cap = p->max_body + 1;
		p->body = xreallocarray(p->body, cap, 1);
		p->bcap = cap;
	}
	memcpy(p->body + p->blen, at, len);
	p->blen += len;
	return p->result == HTTPD_PARSE_MORE ? 0 : -1;
}

static int on_message_complete(http_parser *hp)
{
	struct httpd_parser *p = P(hp);

	p->complete = true;
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings httpd_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void httpd_parser_init(struct httpd_parser *p, size_t max_body)
{
	memset(p, 0, sizeof(*p));
	http_parser_init(&p->hp, HTTP_REQUEST);
	p->hp.data = p;
	p->max_body = max_body;
	p->declared = -1;
}

void httpd_parser_free(struct httpd_parser *p)
{
	free(p->arena);
	free(p->fields);
	free(p->body);
	free(p->hv);
	memset(p, 0, sizeof(*p));
}

void httpd_parser_reset(struct httpd_parser *p, size_t max_body)
{
	httpd_parser_free(p);
	httpd_parser_init(p, max_body);
}

size_t httpd_parser_held(const struct httpd_parser *p)
{
	return p->acap + p->fcap * sizeof(*p->fields) + p->bcap +
	       (p->hv ? p->nfields * sizeof(*p->hv) : 0);
}

/* The method token as sent, for the report of any request, known method or not. */
static void capture_method(struct httpd_parser *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len && !p->mdone; i++) {
		unsigned char c = (unsigned char)data[i];

		if (p->mlen == 0 && (c == '\r' || c == '\n'))
			continue;
		if (c == ' ' || p->mlen == sizeof(p->method) - 1) {
			p->mdone = true;
			break;
		}
		p->method[p->mlen++] = c > 0x20 && c < 0x7f ? (char)c : '?';
	}
}

/*
 * Where a line of the head starts with a blank: obsolete line folding (or a
 * blank before the first field), which RFC 9112 lets a server refuse and
 * http-parser would instead join to the value before. n when none.
 */
static size_t fold_at(const struct httpd_parser *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool lf = i == 0 ? p->after_lf : s[i - 1] == '\n';

		if (lf && (s[i] == ' ' || s[i] == '\t'))
			return i;
	}
	return n;
}

static enum httpd_refusal refusal_of(const struct httpd_parser *p, enum http_errno e)
{
	switch (e) {
	case HPE_INVALID_METHOD:
		return HTTPD_REFUSE_METHOD;
	case HPE_INVALID_CONTENT_LENGTH:
		return HTTPD_REFUSE_BAD_LENGTH;
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		/* a second length, or a length with a Transfer-Encoding */
		for (size_t i = 0; i < p->nfields; i++)
			if (strcasecmp(S(p, p->fields[i].name), "Transfer-Encoding") == 0)
				return HTTPD_REFUSE_LENGTH_AND_CHUNKED;
		return HTTPD_REFUSE_BAD_LENGTH;
	case HPE_INVALID_TRANSFER_ENCODING:
		return HTTPD_REFUSE_TRANSFER_ENCODING;
	case HPE_HEADER_OVERFLOW:
		return HTTPD_REFUSE_HEADERS_TOO_LARGE;
	case HPE_INVALID_VERSION:
		return HTTPD_REFUSE_VERSION;
	default:
		return HTTPD_REFUSE_MALFORMED;
	}
}

/* Fills p->msg with what is known; everything it points to is the parser's. */
static void build_msg(struct httpd_parser *p)
{
	struct httpd_msg *m = &p->msg;

	close_current(p, false);
	free(p->hv);
	p->hv = xreallocarray(NULL, p->nfields + 1, sizeof(*p->hv));
	for (size_t i = 0; i < p->nfields; i++) {
		p->hv[i].name = S(p, p->fields[i].name);
		p->hv[i].value = S(p, p->fields[i].value);
	}
	if (p->body == NULL) {
		p->body = xmalloc(1);
		p->bcap = 1;
	}
	p->body[p->blen] = '\0';
	p->method[p->mlen] = '\0';
	memset(m, 0, sizeof(*m));
	m->method = p->headers_done ? method_of(&p->hp) : HTTPD_METHOD_NONE;
	m->method_name = p->method;
	m->path = p->path.set ? S(p, p->path) : p->url_done ? S(p, p->url) : "";
	m->query = p->query.set ? S(p, p->query) : NULL;
	m->headers = p->hv;
	m->nheaders = p->nfields;
	m->body = p->body;
	m->body_len = p->blen;
	m->body_received = p->received;
	m->body_declared = p->declared;
	if (p->result == HTTPD_PARSE_REFUSED && m->body_len > HTTPD_PREFIX_MAX)
		m->body_len = HTTPD_PREFIX_MAX;
}

/*
 * A length refused at the end of the head: the bytes after it in the same
 * read are the body's first, which the report shows (never more are read).
 */
static void keep_prefix(struct httpd_parser *p, const char *rest, size_t n)
{
	if (p->blen > 0 || n == 0)
		return;
	n = n < HTTPD_PREFIX_MAX ? n : HTTPD_PREFIX_MAX;
	free(p->body);
	p->body = xmalloc(n + 1);
	p->bcap = n + 1;
	memcpy(p->body, rest, n);
	p->blen = n;
}

enum httpd_parse_result httpd_parser_feed(struct httpd_parser *p, const char *data, size_t len,
                                          size_t *used)
{
	size_t off = 0;

	while (off < len && p->result == HTTPD_PARSE_MORE) {
		size_t n = len - off, got;
		enum http_errno e;

		if (!p->headers_done) {
			size_t fold = fold_at(p, data + off, n);

			capture_method(p, data + off, n);
			if (n > HTTPD_MAX_HEAD - p->head_fed)
				n = HTTPD_MAX_HEAD - p->head_fed;
			if (p->head_fed == HTTPD_MAX_HEAD) {
				fail(p, p->url_done || p->nfields > 0
				            ? HTTPD_REFUSE_HEADERS_TOO_LARGE
				            : HTTPD_REFUSE_URL_TOO_LONG);
				break;
			}
			if (fold == 0) {
				fail(p, HTTPD_REFUSE_MALFORMED);
				break;
			}
			/* up to the line's end: a head ending there makes the blank a body byte */
			n = fold < n ? fold : n;
		}
		p->started = true;
		got = http_parser_execute(&p->hp, &httpd_settings, data + off, n);
		if (!p->headers_done && got > 0) {
			p->head_fed += got;
			p->after_lf = data[off + got - 1] == '\n';
		}
		off += got;
		e = HTTP_PARSER_ERRNO(&p->hp);
		if (p->complete && p->result == HTTPD_PARSE_MORE) {
			p->result = HTTPD_PARSE_REQUEST;
			p->keep_alive = http_should_keep_alive(&p->hp) != 0;
		} else if (e != HPE_OK && e != HPE_PAUSED) {
			fail(p, refusal_of(p, e));
			if (e == HPE_CB_headers_complete && p->refusal == HTTPD_REFUSE_TOO_LARGE &&
			    off + 1 < len)
				keep_prefix(p, data + off + 1, len - off - 1);
		} else if (got < n) {
			fail(p, HTTPD_REFUSE_MALFORMED); /* cannot happen: defensive */
		}
	}
	*used = off;
	if (p->result != HTTPD_PARSE_MORE)
		build_msg(p);
	return p->result;
}

void httpd_parser_refuse(struct httpd_parser *p, enum httpd_refusal why)
{
	if (p->result == HTTPD_PARSE_MORE) {
		fail(p, why);
		build_msg(p);
	}
}

void httpd_parser_take(struct httpd_parser *p, struct httpd_parsed *out)
{
	memset(out, 0, sizeof(*out));
	out->msg = p->msg;
	out->arena = p->arena;
	out->body = p->body;
	out->hv = p->hv;
	out->keep_alive = p->keep_alive;
	memcpy(out->method, p->method, sizeof(out->method));
	out->msg.method_name = out->method;
	p->arena = NULL;
	p->body = NULL;
	p->hv = NULL;
	p->acap = p->bcap = 0;
}

void httpd_parsed_free(struct httpd_parsed *d)
{
	free(d->arena);
	free(d->body);
	free(d->hv);
	memset(d, 0, sizeof(*d));
}

const char *httpd_msg_header(const struct httpd_msg *msg, const char *name)
{
	for (size_t i = 0; i < msg->nheaders; i++)
		if (strcasecmp(msg->headers[i].name, name) == 0)
			return msg->headers[i].value;
	return NULL;
}
