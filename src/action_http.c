/*
 * action_http.c: the http action (SPEC §9). One request per attempt to a
 * URL and body built from templates: {field} URL-encoded in the url,
 * JSON-escaped in the body (the event JSON when there is no body). The
 * headers of headers_file are secrets: they go on the wire and nowhere
 * else (not into logs, errors or the attempt's output). Every attempt
 * carries Idempotency-Key, the job's key (SPEC §12), so an API that honours
 * it acts once however often the job is retried. A 2xx answer succeeds;
 * 400, 401, 403, 404, 410 and 422 fail for good; anything else is retried.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "action_http.h"

#include "action_run.h"
#include "http_client.h"
#include "xmalloc.h"

#define HTTP_OUTPUT_MAX 8192 /* bytes of the answer kept */
#define HTTP_HEADERS_MAX 32  /* lines of a headers_file */
#define HTTP_NAME_MAX 64     /* a placeholder's name */

/* Indexed by HTTP_METHOD_* (config.h). */
static const char *const http_methods[] = {"POST", "PUT", "PATCH"};

struct http_action {
	char *url;  /* template */
	char *body; /* template; NULL: the event JSON */
	int method;
	/* "Name", "value" pairs: references into the config's secret store. */
	char *hdr_line[HTTP_HEADERS_MAX];
	char *hdr_name[HTTP_HEADERS_MAX]; /* not a secret: a copy */
	const char *hdr_value[HTTP_HEADERS_MAX];
	size_t nhdr;
	struct http_client *client; /* its own, for a ca_file; NULL: the context's */
};

static bool http_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* The length of the placeholder name after the '{' at p, or 0 when p starts no placeholder. */
static size_t http_placeholder(const char *p)
{
	size_t n = 0;

	while (http_name_char(p[1 + n]))
		n++;
	return n > 0 && n < HTTP_NAME_MAX && p[1 + n] == '}' ? n : 0;
}

int action_http_template_check(const char *tmpl, char *err, size_t errlen)
{
	for (const char *p = tmpl; *p != '\0'; p++) {
		size_t n;
		char name[HTTP_NAME_MAX];

		if (*p != '{' || (n = http_placeholder(p)) == 0)
			continue;
		memcpy(name, p + 1, n);
		name[n] = '\0';
		if (!action_field_known(name) && !action_job_field(name)) {
			snprintf(err, errlen, "unknown field {%s}: bayar.gg does not send it",
			         name);
			return -1;
		}
		p += n + 1;
	}
	return 0;
}

static void http_escape_append(char **buf, size_t *len, size_t *cap, const char *v,
                               enum http_escape esc)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *s = (const unsigned char *)v; *s != '\0'; s++) {
		char tmp[8];
		size_t n = 0;
		unsigned char c = *s;

		if (esc == HTTP_ESCAPE_URL) {
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			    c == '~') {
				tmp[n++] = (char)c;
			} else {
				tmp[n++] = '%';
				tmp[n++] = hex[c >> 4];
				tmp[n++] = hex[c & 15];
			}
		} else if (c == '"' || c == '\\') {
			tmp[n++] = '\\';
			tmp[n++] = (char)c;
		} else if (c == '\n') {
			tmp[n++] = '\\';
			tmp[n++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
		} else {
			tmp[n++] = (char)c; /* UTF-8 passes as it is: JSON text is UTF-8 */
		}
		if (*len + n + 1 > *cap) {
			*cap = (*len + n + 1) * 2;
			*buf = xreallocarray(*buf, *cap, 1);
		}
		memcpy(*buf + *len, tmp, n);
		*len += n;
	}
}

char *action_http_template_expand(const char *tmpl, enum http_escape esc,
                                  http_template_lookup_fn lookup, void *arg)
{
	size_t cap = strlen(tmpl) + 64, len = 0;
	char *buf = xmalloc(cap);

	for (const char *p = tmpl; *p != '\0'; p++) {
		size_t n = *p == '{' ? http_placeholder(p) : 0;

		if (n > 0) {
			char name[HTTP_NAME_MAX];
			const char *v;

			memcpy(name, p + 1, n);
			name[n] = '\0';
			v = lookup(arg, name);
			http_escape_append(&buf, &len, &cap, v != NULL ? v : "", esc);
			p += n + 1;
			continue;
		}
		if (len + 2 > cap) {
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		buf[len++] = *p;
	}
	buf[len] = '\0';
	return buf;
}

/*
 * "Name: value" with a token name and a value without control bytes: the
 * name copied, the value pointing into line (which the store keeps as is).
 */
static int http_split_header(const char *line, char **name, const char **value)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t n = strspn(line, tchar);
	const char *v;

	if (n == 0 || line[n] != ':')
		return -1;
	for (v = line + n + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return -1;
	*name = xstrndup(line, n);
	*value = v;
	return 0;
}

/* Names the client sets itself, or this action does. */
static bool http_header_reserved(const char *name)
{
	static const char *const reserved[] = {"Content-Length", "Transfer-Encoding", "Connection",
	                                       "Host", "Idempotency-Key"};

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return true;
	return false;
}

/* A relative ca_file is read from the config file's directory. */
static char *http_ca_path(const struct config *cfg, const char *ca_file)
{
	const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
	char *path;

	if (ca_file[0] == '/' || slash == NULL)
		return xstrdup(ca_file);
	xasprintf(&path, "%.*s/%s", (int)(slash - cfg->path), cfg->path, ca_file);
	return path;
}

int action_http_ca_client(struct action *a, const struct config *cfg, const char *ca_file,
                          struct http_client **out, char *err, size_t errlen)
{
	char *path;
	FILE *f;

	*out = NULL;
	if (ca_file == NULL || ca_file[0] == '\0')
		return 0;
	path = http_ca_path(cfg, ca_file);
	/* Checked at load, so a typo is a config error and not a failing job. */
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "ca_file: cannot open %s", path);
		free(path);
		return -1;
	}
	fclose(f);
	if (a->ctx != NULL)
		*out = http_client_new(action_ctx_base(a->ctx), path);
	free(path);
	return 0;
}

static int http_prepare(struct action *a, const struct config *cfg, const struct action_conf *ac,
                        char *err, size_t errlen)
{
	struct http_action *h = xcalloc(1, sizeof(*h));
	char msg[200];

	a->priv = h;
	h->url = xstrdup(ac->url);
	h->body = ac->body ? xstrdup(ac->body) : NULL;
	h->method = ac->method;
	if (action_http_template_check(h->url, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "url: %s", msg);
		return -1;
	}
	if (h->body != NULL && action_http_template_check(h->body, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "body: %s", msg);
		return -1;
	}
	if (ac->nheaders > HTTP_HEADERS_MAX) {
		snprintf(err, errlen, "headers_file: more than %d lines", HTTP_HEADERS_MAX);
		return -1;
	}
	for (size_t i = 0; i < ac->nheaders; i++) {
		/* A reference into the secret store, not a copy on the heap. */
		char *line = config_secret_ref(ac->headers[i]);

		h->hdr_line[h->nhdr++] = line;
		/* The line number only: the content is a secret. */
		if (http_split_header(line, &h->hdr_name[i], &h->hdr_value[i]) < 0) {
			snprintf(err, errlen, "headers_file: line %zu is not \"Name: value\"",
			         i + 1);
			return -1;
		}
		if (http_header_reserved(h->hdr_name[i])) {
			snprintf(err, errlen, "headers_file: line %zu: %s is set by bayarhook",
			         i + 1, h->hdr_name[i]);
			return -1;
		}
	}
	return action_http_ca_client(a, cfg, ac->ca_file, &h->client, err, errlen);
}

static void http_release(struct action *a)
{
	struct http_action *h = a->priv;

	if (h == NULL)
		return;
	free(h->url);
	free(h->body);
	for (size_t i = 0; i < h->nhdr; i++) {
		free(h->hdr_name[i]);
		config_secret_unref(h->hdr_line[i]);
	}
	http_client_free(h->client);
	free(h);
}

/*
 * The shop's answers that say the request itself is wrong or unwelcome
 * (SPEC §7): asking again with the same body cannot succeed. 408, 429 and
 * every 5xx are the shop's passing trouble and are retried.
 */
static bool http_status_permanent(int status)
{
	switch (status) {
	case 400: /* Bad Request */
	case 401: /* Unauthorized: the signature or token is not the one it expects */
	case 403: /* Forbidden */
	case 404: /* Not Found: no such order, or a wrong url */
	case 410: /* Gone */
	case 422: /* Unprocessable Content */
		return true;
	default:
		return false;
	}
}

bool action_http_result(struct action_result *res, const struct http_client_resp *resp,
                        size_t output_max, char *msg, size_t msglen)
{
	action_result_init(res, ACTION_FAILED);
	res->http_status = resp->status;
	res->output = resp->body ? resp->body : "";
	res->output_len = resp->body ? resp->body_len : 0;
	if (res->output_len > output_max)
		res->output_len = output_max;
	if (resp->error != NULL) {
		if (resp->kind == HTTP_CLIENT_ERR_TIMEOUT)
			res->outcome = ACTION_TIMEOUT;
		snprintf(msg, msglen, "%s", resp->error);
		res->error = msg;
		return false;
	}
	if (resp->status >= 200 && resp->status <= 299) {
		res->outcome = ACTION_SUCCEEDED;
		return false;
	}
	if (http_status_permanent(resp->status))
		res->outcome = ACTION_FAILED_PERMANENT;
	res->error = msg;
	return true;
}

static void http_done(const struct http_client_resp *resp, void *arg)
{
	struct action_run *run = arg;
	struct http_action *h = run->action->priv;
	struct action_result res;
	char msg[512];

	run->priv = NULL; /* the call ends with this callback */
	/* Not the URL: it may carry a token (a Telegram bot's, say). */
	if (action_http_result(&res, resp, HTTP_OUTPUT_MAX, msg, sizeof(msg)))
		snprintf(msg, sizeof(msg), "HTTP %d to %s", resp->status, http_methods[h->method]);
	action_run_finish(run, &res);
}

static const char *http_lookup(void *arg, const char *name)
{
	return action_field(arg, name);
}

static int http_start(struct action_run *run, char *err, size_t errlen)
{
	struct http_action *h = run->action->priv;
	struct http_client_req req;
	const char *headers[2 * HTTP_HEADERS_MAX + 8];
	char *url, *body = NULL;
	size_t n = 0;

	url = action_http_template_expand(h->url, HTTP_ESCAPE_URL, http_lookup, run);
	if (h->body != NULL)
		body = action_http_template_expand(h->body, HTTP_ESCAPE_JSON, http_lookup, run);
	headers[n++] = "Content-Type";
	headers[n++] = "application/json";
	headers[n++] = "Idempotency-Key";
	headers[n++] = run->idempotency_key;
	/* SPEC §7: the reason a payment needs a look (a late paid); absent when none. */
	if (run->flag != NULL && run->flag[0] != '\0') {
		headers[n++] = "X-Bayarhook-Flagged";
		headers[n++] = run->flag;
	}
	for (size_t i = 0; i < h->nhdr; i++) {
		headers[n++] = h->hdr_name[i];
		headers[n++] = h->hdr_value[i];
	}
	headers[n] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = http_methods[h->method];
	req.url = url;
	req.headers = headers;
	req.body = body ? body : run->event;
	req.body_len = strlen(req.body);
	req.timeout_sec = run->action->timeout;
	req.max_response = 1024 * 1024;
	/* Everything is copied; a bad URL comes back through http_done, from the loop. */
	run->priv = http_client_request(h->client ? h->client : action_ctx_http(run->ctx), &req,
	                                http_done, run);
	free(url);
	free(body);
	if (run->priv == NULL) {
		snprintf(err, errlen, "cannot start the request");
		return -1;
	}
	return 0;
}

static void http_stop(struct action_run *run)
{
	http_client_cancel(run->priv);
	run->priv = NULL;
}

const struct action_ops action_http_ops = {
    .name = "http",
    .prepare = http_prepare,
    .release = http_release,
    .start = http_start,
    .stop = http_stop,
    .cancellable = true,
};
