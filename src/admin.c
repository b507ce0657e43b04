/*
 * admin.c: the status page's listener (SPEC §8): [admin] listen, on
 * host:port or unix:/path, read by our own request reader (lib/httpd) and
 * apart from the callback listener. Routes: GET / (the HTML page, made by
 * admin_page.c), GET /api/summary (JSON), POST /jobs/ID/retry.
 *
 * Who may come in: with [admin] token_file, whoever shows the token
 * (Authorization: Bearer, the bayarhook_token cookie, or ?token= once,
 * which sets the cookie); without it the listener is loopback or a unix
 * socket (config.c insists) and, on loopback TCP, the Host header must name
 * the loopback too, so that a web page that rebinds its name to 127.0.0.1
 * cannot read the page. A retry also needs the page's CSRF token for that
 * job (an HMAC under a key drawn at start), so another site cannot make
 * the browser post one; tokens are compared in constant time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "admin_int.h"
#include "httpd.h"
#include "log.h"
#include "xmalloc.h"

#define ADMIN_KEY_LEN 32
#define ADMIN_COOKIE "bayarhook_token"

struct admin {
	struct event_base *base;
	struct httpd *httpd;
	struct admin_db *db;
	char *token;     /* NULL: none (loopback or unix socket only) */
	bool check_host; /* loopback TCP without a token: Host must be loopback */
	bool need_token; /* listening beyond this host: never without a token */
	char *unix_path; /* our socket, removed at free */
	unsigned char key[ADMIN_KEY_LEN];
	char address[160];
};

/* A request waiting for the database. */
struct admin_call {
	struct admin *a;
	struct httpd_req *req;
	bool json; /* /api/summary, else the page */
	char job[24];
};

/* Headers of every answer: nothing cached, framed, sniffed, scripted or sent elsewhere. */
/* clang-format off */
#define ADMIN_SAFE_HEADERS                                                         \
	{"Cache-Control", "no-store"},                                             \
	{"X-Content-Type-Options", "nosniff"},                                     \
	{"X-Frame-Options", "DENY"},                                               \
	{"Referrer-Policy", "no-referrer"},                                        \
	{"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; " \
	                            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
/* clang-format on */

static void reply_json(struct httpd_req *req, int status, const char *json)
{
	const struct httpd_header hd[] = {{"Content-Type", "application/json"}, ADMIN_SAFE_HEADERS};

	httpd_reply(req, status, hd, sizeof(hd) / sizeof(hd[0]), json, strlen(json));
}

/* {"error": why} */
static void reply_error(struct httpd_req *req, int status, const char *why)
{
	char *body;

	xasprintf(&body, "{\"error\":\"%s\"}", why); /* why: our own words, no quotes */
	reply_json(req, status, body);
	free(body);
}

static void reply_see_other(struct httpd_req *req, const char *location, const char *cookie)
{
	const struct httpd_header hd[] = {{"Location", location},
	                                  {"Content-Type", "text/plain; charset=utf-8"},
	                                  ADMIN_SAFE_HEADERS,
	                                  {"Set-Cookie", cookie}};
	size_t n = sizeof(hd) / sizeof(hd[0]) - (cookie == NULL);

	httpd_reply(req, 303, hd, n, "See Other\n", 10);
}

/* Constant time whatever the lengths: both sides are hashed under the process key first. */
static bool same_secret(const struct admin *a, const char *got, const char *want)
{
	char x[ADMIN_CSRF_LEN + 1], y[ADMIN_CSRF_LEN + 1];

	if (got == NULL || want == NULL)
		return false;
	admin_mac_hex(a->key, sizeof(a->key), got, x);
	admin_mac_hex(a->key, sizeof(a->key), want, y);
	return CRYPTO_memcmp(x, y, ADMIN_CSRF_LEN) == 0;
}

/* The value of name in an a=b&c=d text (%-decoded, a copy), or NULL. */
static char *form_value(const char *text, const char *name)
{
	struct evkeyvalq q;
	const char *v;
	char *out = NULL;

	if (text == NULL)
		return NULL;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(text, &q) == 0 && (v = evhttp_find_header(&q, name)) != NULL)
		out = xstrdup(v);
	evhttp_clear_headers(&q);
	return out;
}

/* The token of the cookie header's bayarhook_token=, %-decoded, or NULL. */
static char *cookie_token(const struct httpd_msg *m)
{
	for (size_t i = 0; i < m->nheaders; i++) {
		const char *p = m->headers[i].value;

		if (strcasecmp(m->headers[i].name, "Cookie") != 0)
			continue;
		while (*p != '\0') {
			size_t len;

			p += strspn(p, " ;");
			len = strcspn(p, ";");
			if (strncmp(p, ADMIN_COOKIE "=", sizeof(ADMIN_COOKIE)) == 0) {
				char *enc =
				    xstrndup(p + sizeof(ADMIN_COOKIE), len - sizeof(ADMIN_COOKIE));
				char *dec = evhttp_uridecode(enc, 0, NULL);

				free(enc);
				if (dec == NULL)
					return NULL;
				return dec;
			}
			p += len;
		}
	}
	return NULL;
}

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	char h[128];
	size_t n;

	if (host == NULL)
		return true; /* HTTP/1.0: no name to rebind */
	if (host[0] == '[')
		return strncmp(host, "[::1]", 5) == 0 && (host[5] == '\0' || host[5] == ':');
	n = strcspn(host, ":");
	if (n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = '\0';
	/* An address literal: "127.0.0.1.rebind.example" is a name like any other. */
	return strcasecmp(h, "localhost") == 0 ||
	       (inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
}

enum admin_auth {
	AUTH_OK,
	AUTH_SET_COOKIE, /* the right ?token=: keep it in a cookie, take it out of the URL */
	AUTH_NO_TOKEN,
	AUTH_BAD_HOST,
};

static enum admin_auth admin_auth(const struct admin *a, const struct httpd_msg *m)
{
	const char *bearer = httpd_msg_header(m, "Authorization");
	char *got;
	bool ok;

	if (a->token == NULL)
		return !a->check_host || host_is_loopback(httpd_msg_header(m, "Host"))
		           ? AUTH_OK
		           : AUTH_BAD_HOST;
	if (bearer != NULL && strncasecmp(bearer, "Bearer ", 7) == 0)
		return same_secret(a, bearer + 7, a->token) ? AUTH_OK : AUTH_NO_TOKEN;
	if ((got = cookie_token(m)) != NULL) {
		ok = same_secret(a, got, a->token);
		free(got);
		if (ok)
			return AUTH_OK;
	}
	if ((got = form_value(m->query, "token")) != NULL) {
		ok = same_secret(a, got, a->token);
		free(got);
		if (ok)
			return AUTH_SET_COOKIE;
	}
	return AUTH_NO_TOKEN;
}

static void summary_ready(const struct admin_summary *s, void *arg)
{
	struct admin_call *call = arg;

	if (call->json) {
		char *body = admin_summary_json(s);

		reply_json(call->req, s->db_up ? 200 : 503, body);
		free(body);
	} else {
		const struct httpd_header hd[] = {{"Content-Type", "text/html; charset=utf-8"},
		                                  ADMIN_SAFE_HEADERS};
		char notice[96], *page;
		size_t len = 0;

		if (call->job[0] != '\0')
			snprintf(notice, sizeof(notice),
			         "Job %s is queued again: it runs within seconds.", call->job);
		page = admin_page_render(s, call->a->key, sizeof(call->a->key),
		                         call->job[0] ? notice : NULL, &len);
		httpd_reply(call->req, 200, hd, sizeof(hd) / sizeof(hd[0]), page, len);
		free(page);
	}
	free(call);
}

static void handle_summary(struct admin *a, struct httpd_req *req, bool json)
{
	struct admin_call *call = xcalloc(1, sizeof(*call));
	char *retried = json ? NULL : form_value(httpd_req_msg(req)->query, "retried");

	call->a = a;
	call->req = req;
	call->json = json;
	if (retried != NULL && retried[0] != '\0' && strlen(retried) < sizeof(call->job) &&
	    strspn(retried, "0123456789") == strlen(retried))
		snprintf(call->job, sizeof(call->job), "%s", retried);
	free(retried);
	if (admin_summary_get(a->db, summary_ready, call) < 0) {
		free(call);
		reply_error(req, 503, "busy: too many status requests at once");
	}
}

static void retry_done(enum admin_retry_outcome o, const char *was, void *arg)
{
	struct admin_call *call = arg;
	char *loc, *body;

	switch (o) {
	case ADMIN_RETRY_QUEUED:
		log_notice("status page: job %s queued again (was %s)", call->job, was);
		xasprintf(&loc, "/?retried=%s", call->job);
		reply_see_other(call->req, loc, NULL);
		free(loc);
		break;
	case ADMIN_RETRY_NOT_DEAD:
		xasprintf(&body, "{\"error\":\"job %s is %s, not dead\"}", call->job, was);
		reply_json(call->req, 409, body);
		free(body);
		break;
	case ADMIN_RETRY_NO_JOB:
		reply_error(call->req, 404, "no such job");
		break;
	case ADMIN_RETRY_DB_DOWN:
		reply_error(call->req, 503, "the database is not answering; try again");
		break;
	}
	free(call);
}

/* POST /jobs/ID/retry with the page's csrf field. */
static void handle_retry(struct admin *a, struct httpd_req *req, const char *id, size_t idlen)
{
	const struct httpd_msg *m = httpd_req_msg(req);
	char job[24], want[ADMIN_CSRF_LEN + 1], *got;
	struct admin_call *call;
	bool ok;

	if (idlen == 0 || idlen > 18) {
		reply_error(req, 404, "not found");
		return;
	}
	memcpy(job, id, idlen);
	job[idlen] = '\0';
	got = form_value(m->body, "csrf");
	admin_csrf_token(a->key, sizeof(a->key), job, want);
	ok = got != NULL && strlen(got) == ADMIN_CSRF_LEN &&
	     CRYPTO_memcmp(got, want, ADMIN_CSRF_LEN) == 0;
	free(got);
	if (!ok) {
		log_warnx(
		    "status page: retry of job %s refused: missing or wrong CSRF token peer=%s",
		    job, m->peer);
		reply_error(req, 403, "missing or wrong CSRF token: retry from the status page");
		return;
	}
	call = xcalloc(1, sizeof(*call));
	call->a = a;
	call->req = req;
	snprintf(call->job, sizeof(call->job), "%s", job);
	admin_retry(a->db, job, retry_done, call);
}

static void admin_request(struct httpd_req *req, void *arg)
{
	struct admin *a = arg;
	const struct httpd_msg *m = httpd_req_msg(req);
	bool get = m->method == HTTPD_GET || m->method == HTTPD_HEAD;
	size_t idlen = 0;

	switch (admin_auth(a, m)) {
	case AUTH_OK:
		break;
	case AUTH_SET_COOKIE: {
		if (!get)
			break; /* a redirect would turn the POST into a GET */
		char *enc = evhttp_encode_uri(a->token), *cookie;

		xasprintf(&cookie, ADMIN_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", enc);
		reply_see_other(req, m->path, cookie);
		free(cookie);
		free(enc);
		return;
	}
	case AUTH_NO_TOKEN: {
		const struct httpd_header hd[] = {{"Content-Type", "application/json"},
		                                  {"WWW-Authenticate", "Bearer"},
		                                  ADMIN_SAFE_HEADERS};
		static const char body[] = "{\"error\":\"token required: open /?token=TOKEN once, "
		                           "or send Authorization: Bearer TOKEN\"}";

		httpd_reply(req, 401, hd, sizeof(hd) / sizeof(hd[0]), body, sizeof(body) - 1);
		return;
	}
	case AUTH_BAD_HOST:
		reply_error(req, 403, "Host is not a loopback name: open the page as localhost");
		return;
	}
	if (strcmp(m->path, "/") == 0 && get) {
		handle_summary(a, req, false);
		return;
	}
	if (strcmp(m->path, "/api/summary") == 0 && get) {
		handle_summary(a, req, true);
		return;
	}
	if (strncmp(m->path, "/jobs/", 6) == 0) {
		idlen = strspn(m->path + 6, "0123456789");
		if (strcmp(m->path + 6 + idlen, "/retry") == 0 && idlen > 0) {
			if (m->method == HTTPD_POST)
				handle_retry(a, req, m->path + 6, idlen);
			else
				reply_error(req, 405, "POST only");
			return;
		}
	}
	if ((strcmp(m->path, "/") == 0 || strcmp(m->path, "/api/summary") == 0))
		reply_error(req, 405, "GET only");
	else
		reply_error(req, 404, "not found");
}

static void admin_refused(const struct httpd_refused *r, void *arg)
{
	(void)r;
	(void)arg;
}

/* Our own unix socket: a stale one (nobody accepting) is replaced. */
static int admin_listen_unix(struct admin *a, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0)
		goto fail;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool alive = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		if (probe >= 0)
			close(probe);
		if (alive) {
			errno = EADDRINUSE;
			goto fail;
		}
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	a->unix_path = xstrdup(path);
	/* The owner and its group (a reverse proxy's) only. */
	if (chmod(path, 0660) < 0 || listen(fd, 64) < 0)
		goto fail;
	if (httpd_listen_fd(a->httpd, fd, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	snprintf(a->address, sizeof(a->address), "unix:%s", path);
	return 0;
fail:
	snprintf(err, errlen, "[admin] listen unix:%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void admin_token_set(struct admin *a, const char *token)
{
	if (a->token != NULL) {
		explicit_bzero(a->token, strlen(a->token));
		free(a->token);
	}
	a->token = token != NULL ? xstrdup(token) : NULL;
}

struct admin *admin_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	struct admin *a = xcalloc(1, sizeof(*a));
	struct httpd_handlers on = {admin_request, admin_refused, a};
	struct httpd_limits lim = {.max_body = 4096,
	                           .request_timeout_ms = 10000,
	                           .idle_timeout_ms = 5000,
	                           .max_conns = 64,
	                           .backlog = 64};
	const struct config_listen *l = &cfg->admin_listen;

	a->base = base;
	if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key)) {
		snprintf(err, errlen, "[admin]: no random bytes for the CSRF key: %s",
		         strerror(errno));
		free(a);
		return NULL;
	}
	admin_token_set(a, cfg->admin_token);
	a->check_host = config_listen_unix(l) == NULL;
	a->need_token = !config_listen_local(l);
	a->httpd = httpd_new(base, &lim, &on);
	if (config_listen_unix(l) != NULL) {
		if (admin_listen_unix(a, config_listen_unix(l), err, errlen) < 0)
			goto fail;
	} else {
		char hostport[160], why[256];

		snprintf(hostport, sizeof(hostport), strchr(l->host, ':') ? "[%s]:%d" : "%s:%d",
		         l->host, l->port);
		if (httpd_listen(a->httpd, hostport, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "[admin] %s", why);
			goto fail;
		}
		snprintf(a->address, sizeof(a->address), "%s", httpd_address(a->httpd));
	}
	a->db = admin_db_new(base, cfg->conninfo);
	return a;
fail:
	admin_free(a);
	return NULL;
}

void admin_set_config(struct admin *a, const struct config *cfg)
{
	if (a == NULL)
		return;
	/* listen is only read at start: a reload cannot open a wide listener to everyone. */
	if (cfg->admin_token == NULL && a->need_token) {
		log_warnx("reload: [admin] token_file is gone, but the status page listens on %s "
		          "until a restart; the running token stays",
		          a->address);
		return;
	}
	admin_token_set(a, cfg->admin_token);
}

const char *admin_address(const struct admin *a)
{
	return a->address;
}

void admin_stop_accepting(struct admin *a)
{
	if (a != NULL)
		httpd_stop_accepting(a->httpd);
}

void admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	admin_db_free(a->db); /* answers what waited for it, while httpd can still send */
	httpd_free(a->httpd);
	if (a->unix_path != NULL) {
		unlink(a->unix_path);
		free(a->unix_path);
	}
	admin_token_set(a, NULL);
	explicit_bzero(a->key, sizeof(a->key));
	free(a);
}
