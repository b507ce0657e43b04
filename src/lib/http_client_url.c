/*
 * http_client_url.c: what a caller asks for, checked and copied before
 * anything touches the network: the method, the URL (scheme, host, port,
 * target; an address literal needs no lookup), the headers (tokens and
 * field values only, framing headers refused) and the body. Every refusal
 * is an HTTP_CLIENT_ERR_REQUEST.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/util.h>

#include "http_client_int.h"
#include "xmalloc.h"

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

static int hc_copy_headers(struct http_client_call *rq, const char *const *h)
{
	size_t n = 0, i;
	bool own_host = false;

	rq->add_user_agent = true;
	if (h == NULL)
		return 0;
	while (h[n] != NULL) {
		if (h[n + 1] == NULL) {
			hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "header %s has no value", h[n]);
			return -1;
		}
		if (!hc_is_token(h[n]) || !hc_is_field_value(h[n + 1])) {
			hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "invalid header: %s", h[n]);
			return -1;
		}
		if (hc_is_reserved_header(h[n])) {
			hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "header %s is set by the HTTP client",
			        h[n]);
			return -1;
		}
		if (strcasecmp(h[n], "Host") == 0)
			own_host = true;
		if (strcasecmp(h[n], "User-Agent") == 0)
			rq->add_user_agent = false;
		n += 2;
	}
	rq->headers = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++)
		rq->headers[i] = xstrdup(h[i]);
	if (own_host) {
		free(rq->host_header);
		rq->host_header = NULL;
	}
	return 0;
}

static int hc_parse_url(struct http_client_call *rq, const char *url)
{
	struct evhttp_uri *uri = url != NULL ? evhttp_uri_parse(url) : NULL;
	const char *scheme, *host, *path, *query;
	int port, default_port;
	size_t hlen;
	int ret = -1;

	if (uri == NULL) {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "invalid URL");
		return -1;
	}
	scheme = evhttp_uri_get_scheme(uri);
	if (scheme != NULL && strcasecmp(scheme, "http") == 0) {
		default_port = 80;
	} else if (scheme != NULL && strcasecmp(scheme, "https") == 0) {
		rq->tls = true;
		default_port = 443;
	} else {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "unsupported URL scheme: %s",
		        scheme != NULL ? scheme : "(none)");
		goto out;
	}
	if (evhttp_uri_get_userinfo(uri) != NULL) {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "credentials in the URL are not supported");
		goto out;
	}
	host = evhttp_uri_get_host(uri);
	hlen = host != NULL ? strlen(host) : 0;
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen > 255) {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "invalid URL: bad host");
		goto out;
	}
	port = evhttp_uri_get_port(uri);
	if (port == -1)
		port = default_port;
	if (port <= 0 || port > 65535) {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "invalid URL: bad port");
		goto out;
	}
	rq->port = port;
	rq->host = xstrndup(host, hlen);

	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	xasprintf(&rq->target, "%s%s%s", path, query != NULL ? "?" : "",
	          query != NULL ? query : "");

	{
		struct sockaddr_in *sin = (struct sockaddr_in *)&rq->addrs[0];
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rq->addrs[0];
		bool v6 = false;
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
			xasprintf(&rq->host_header, v6 ? "[%s]" : "%s", rq->host);
		else
			xasprintf(&rq->host_header, v6 ? "[%s]:%d" : "%s:%d", rq->host, port);
	}
	ret = 0;
out:
	evhttp_uri_free(uri);
	return ret;
}

/*
 * req->resolve ("HOST:PORT:ADDR") into rq->addrs when it names rq's host
 * and port: the connection goes to ADDR, the name stays for Host and TLS.
 */
static int hc_apply_resolve(struct http_client_call *rq, const char *entry)
{
	const char *c1 = strchr(entry, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	char addr[INET6_ADDRSTRLEN + 2], *end;
	struct sockaddr_in *sin = (struct sockaddr_in *)&rq->addrs[0];
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rq->addrs[0];
	size_t alen;
	long port;

	if (c1 == NULL || c2 == NULL || c1 == entry)
		goto bad;
	port = strtol(c1 + 1, &end, 10);
	if (end != c2 || port <= 0 || port > 65535)
		goto bad;
	alen = strlen(c2 + 1);
	if (alen >= 2 && c2[1] == '[' && c2[alen] == ']') {
		alen -= 2;
		c2++;
	}
	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, c2 + 1, alen);
	addr[alen] = '\0';
	if ((size_t)(c1 - entry) != strlen(rq->host) ||
	    strncasecmp(entry, rq->host, (size_t)(c1 - entry)) != 0 || port != rq->port)
		return 0; /* another host's entry, as curl */
	memset(&rq->addrs[0], 0, sizeof(rq->addrs[0]));
	if (evutil_inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
	} else if (evutil_inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
	} else {
		goto bad;
	}
	rq->naddrs = 1;
	return 0;
bad:
	hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "invalid resolve entry (HOST:PORT:ADDR): %.64s",
	        entry);
	return -1;
}

int hc_prepare(struct http_client_call *rq, const struct http_client_req *req)
{
	const char *method = req->method != NULL ? req->method : "GET";
	size_t i;

	for (i = 0; i < sizeof(hc_methods) / sizeof(hc_methods[0]); i++)
		if (strcmp(method, hc_methods[i].name) == 0)
			break;
	if (i == sizeof(hc_methods) / sizeof(hc_methods[0])) {
		hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "unsupported method: %.32s", method);
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
	if (req->resolve != NULL && hc_apply_resolve(rq, req->resolve) != 0)
		return -1;
	rq->insecure = req->insecure;
	if (hc_copy_headers(rq, req->headers) != 0)
		return -1;
	if (req->body_len > 0) {
		if (req->body == NULL) {
			hc_fail(rq, HTTP_CLIENT_ERR_REQUEST, "body_len without body");
			return -1;
		}
		rq->body = xmalloc(req->body_len);
		memcpy(rq->body, req->body, req->body_len);
		rq->body_len = req->body_len;
	}
	return 0;
}
