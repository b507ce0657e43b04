/*
 * config_types.c: one row of operations per value type of the key tables,
 * after pgbouncer's CfOps: parse a value into its field, free it, say
 * whether it is set, compare and copy it for a reload, print it for the
 * summary. A new type is one row here; nothing else switches on the types.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "config_table.h"
#include "redact.h"
#include "event.h" /* enum pay_status and STATUS_MASK only; nothing to link */
#include "xmalloc.h"

struct conf_ops {
	/* Parses value (never empty or NULL) into the cleared field; -1 with cx->reason. */
	int (*set)(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *value);
	void (*clear)(const struct conf_key *k, void *base);
	bool (*has)(const struct conf_key *k, const void *base);
	bool (*same)(const struct conf_key *k, const void *a, const void *b);
	/* Into the cleared field of dst. */
	void (*copy)(const struct conf_key *k, void *dst, const void *src);
	void (*print)(FILE *out, const struct config *cfg, const struct conf_key *k,
	              const void *base);
	size_t size; /* scalars: the field's size, for the scalar_* operations */
};

static const char *const action_type_names[] = {
    [ACTION_EXEC] = "exec", [ACTION_SQL] = "sql",           [ACTION_FORWARD] = "forward",
    [ACTION_HTTP] = "http", [ACTION_WA_STORE] = "wa_store",
};

/* A local copy of the status names, so that the config links without event.c. */
static const struct {
	const char *name;
	enum pay_status status;
} config_statuses[] = {
    {"pending", STATUS_PENDING},
    {"paid", STATUS_PAID},
    {"expired", STATUS_EXPIRED},
    {"cancelled", STATUS_CANCELLED},
};

#define NSTATUSES (sizeof(config_statuses) / sizeof(config_statuses[0]))

const char *config_action_type_name(enum action_type t)
{
	return action_type_names[t];
}

static void *field(const struct conf_key *k, void *base)
{
	return (char *)base + k->off;
}

static const void *cfield(const struct conf_key *k, const void *base)
{
	return (const char *)base + k->off;
}

/* ---- scalars: int, long, bool, enum, bit mask ---- */

static const struct conf_ops conf_ops[T_NTYPES];

static void scalar_clear(const struct conf_key *k, void *base)
{
	memset(field(k, base), 0, conf_ops[k->type].size);
}

static bool scalar_has(const struct conf_key *k, const void *base)
{
	(void)k;
	(void)base;
	return true;
}

static bool scalar_same(const struct conf_key *k, const void *a, const void *b)
{
	return memcmp(cfield(k, a), cfield(k, b), conf_ops[k->type].size) == 0;
}

static void scalar_copy(const struct conf_key *k, void *dst, const void *src)
{
	memcpy(field(k, dst), cfield(k, src), conf_ops[k->type].size);
}

static int parse_long(struct conf_ctx *cx, const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	if (v[0] == '-' ? strspn(v + 1, "0123456789") != strlen(v + 1) || v[1] == '\0'
	                : strspn(v, "0123456789") != strlen(v))
		return config_bad(cx, "must be a whole number");
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno == ERANGE || n < min || n > max) {
		if (max == INT_MAX || max == LONG_MAX)
			return config_bad(cx, "must be at least %ld", min);
		return config_bad(cx, "must be between %ld and %ld", min, max);
	}
	*out = n;
	return 0;
}

static int int_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	long n = 0; /* set by parse_long on success; -O2 cannot see through config_bad */

	if (parse_long(cx, v, k->min, k->max, &n) < 0)
		return -1;
	*(int *)field(k, base) = (int)n;
	return 0;
}

static void int_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                      const void *base)
{
	int n = *(const int *)cfield(k, base);

	/* The only int without a default is an action's inherited max_attempts. */
	if (n == 0 && k->def == NULL)
		fprintf(out, "%d (from [fulfillment])", cfg->max_attempts);
	else
		fprintf(out, "%d", n);
}

static int long_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	return parse_long(cx, v, k->min, k->max, field(k, base));
}

static void long_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                       const void *base)
{
	(void)cfg;
	fprintf(out, "%ld", *(const long *)cfield(k, base));
}

static int bool_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*(bool *)field(k, base) = strcasecmp(v, yes[i]) == 0;
			return 0;
		}
	}
	return config_bad(cx, "must be true or false (also yes/no, on/off, 1/0)");
}

static void bool_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                       const void *base)
{
	(void)cfg;
	fprintf(out, "%s", *(const bool *)cfield(k, base) ? "true" : "false");
}

static int sign_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	if (strcmp(v, "bayar") != 0 && strcmp(v, "none") != 0)
		return config_bad(cx, "must be bayar or none");
	*(bool *)field(k, base) = strcmp(v, "bayar") == 0;
	return 0;
}

static void sign_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                       const void *base)
{
	(void)cfg;
	fprintf(out, "%s", *(const bool *)cfield(k, base) ? "bayar" : "none");
}

/* [security] unsigned: whether a callback with no signature at all is confirmed with the gateway.
 */
static int unsigned_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	if (strcmp(v, "refuse") != 0 && strcmp(v, "confirm") != 0)
		return config_bad(cx, "must be refuse or confirm");
	*(bool *)field(k, base) = strcmp(v, "confirm") == 0;
	return 0;
}

static void unsigned_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                           const void *base)
{
	(void)cfg;
	fprintf(out, "%s", *(const bool *)cfield(k, base) ? "confirm" : "refuse");
}

static int choice_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	char words[128];
	size_t used = 0;

	for (int i = 0; k->choices[i] != NULL; i++) {
		if (strcmp(v, k->choices[i]) == 0) {
			*(int *)field(k, base) = i;
			return 0;
		}
		if (used < sizeof(words))
			used += (size_t)snprintf(words + used, sizeof(words) - used, "%s%s",
			                         i == 0              ? ""
			                         : k->choices[i + 1] ? ", "
			                                             : " or ",
			                         k->choices[i]);
	}
	return config_bad(cx, "must be %s", words);
}

static void choice_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                         const void *base)
{
	(void)cfg;
	fprintf(out, "%s", k->choices[*(const int *)cfield(k, base)]);
}

static int action_type_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	for (size_t i = 0; i < sizeof(action_type_names) / sizeof(action_type_names[0]); i++) {
		if (strcmp(v, action_type_names[i]) == 0) {
			*(enum action_type *)field(k, base) = (enum action_type)i;
			return 0;
		}
	}
	return config_bad(cx, "must be exec, sql, forward, http or wa_store");
}

static void action_type_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                              const void *base)
{
	(void)cfg;
	fprintf(out, "%s", action_type_names[*(const enum action_type *)cfield(k, base)]);
}

static int statuses_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	unsigned mask = 0;

	for (const char *p = v;;) {
		size_t len = strcspn(p, ","), i;
		const char *s = p, *e = p + len;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			return config_bad(cx, "empty entry in list");
		for (i = 0; i < NSTATUSES; i++)
			if (strlen(config_statuses[i].name) == (size_t)(e - s) &&
			    memcmp(config_statuses[i].name, s, (size_t)(e - s)) == 0)
				break;
		if (i == NSTATUSES)
			return config_bad(
			    cx, "unknown status '%.*s' (use pending, paid, expired, cancelled)",
			    (int)(e - s > 32 ? 32 : e - s), s);
		mask |= STATUS_MASK(config_statuses[i].status);
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*(unsigned *)field(k, base) = mask;
	return 0;
}

static void statuses_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                           const void *base)
{
	unsigned mask = *(const unsigned *)cfield(k, base);
	const char *sep = "";

	(void)cfg;
	for (size_t i = 0; i < NSTATUSES; i++) {
		if (mask & STATUS_MASK(config_statuses[i].status)) {
			fprintf(out, "%s%s", sep, config_statuses[i].name);
			sep = ", ";
		}
	}
}

/* ---- strings: any text, a URL path, a URL ---- */

static void str_clear(const struct conf_key *k, void *base)
{
	char **f = field(k, base);

	free(*f);
	*f = NULL;
}

static bool str_has(const struct conf_key *k, const void *base)
{
	return *(char *const *)cfield(k, base) != NULL;
}

static bool str_same(const struct conf_key *k, const void *a, const void *b)
{
	const char *x = *(char *const *)cfield(k, a), *y = *(char *const *)cfield(k, b);

	return x == NULL || y == NULL ? x == y : strcmp(x, y) == 0;
}

static void str_copy(const struct conf_key *k, void *dst, const void *src)
{
	const char *s = *(char *const *)cfield(k, src);

	*(char **)field(k, dst) = s != NULL ? xstrdup(s) : NULL;
}

static void str_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                      const void *base)
{
	const char *s = *(char *const *)cfield(k, base);
	char buf[2048];

	(void)cfg;
	if (s != NULL && (k->flags & K_REDACT)) {
		redact_passwords(s, buf, sizeof(buf));
		s = buf;
	}
	if (s != NULL)
		fprintf(out, "%s", s);
	else if (k->unset != NULL)
		fprintf(out, "(%s)", k->unset);
}

static int string_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	(void)cx;
	*(char **)field(k, base) = xstrdup(v);
	return 0;
}

static int path_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	if (v[0] != '/')
		return config_bad(cx, "must start with '/'");
	if (strpbrk(v, " \t?#") != NULL)
		return config_bad(cx, "must not contain spaces, '?' or '#'");
	return string_set(cx, k, base, v);
}

static int url_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	const char *rest;
	char *s;

	if (strncmp(v, "http://", 7) == 0)
		rest = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		rest = v + 8;
	else
		return config_bad(cx, "must start with http:// or https://");
	if (strcspn(rest, "/?#") == 0)
		return config_bad(cx, "has no host");
	if (strpbrk(v, " \t") != NULL)
		return config_bad(cx, "must not contain spaces");
	s = xstrdup(v);
	if (k->flags & K_NOSLASH) {
		size_t len = strlen(s), min = (size_t)(rest - v) + 1;

		while (len > min && s[len - 1] == '/')
			s[--len] = '\0';
	}
	*(char **)field(k, base) = s;
	return 0;
}

/* ---- listen: kept as written, and split once into host and port ---- */

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-';
}

int config_split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
	const char *h, *he, *colon, *p;
	long n;

	if (listen == NULL)
		return -1;
	if (listen[0] == '[') {
		char v6[64];

		h = listen + 1;
		he = strchr(h, ']');
		if (he == NULL || he[1] != ':' || (size_t)(he - h) >= sizeof(v6))
			return -1;
		memcpy(v6, h, (size_t)(he - h));
		v6[he - h] = '\0';
		if (!cidr_addr_valid(v6) || strchr(v6, ':') == NULL)
			return -1;
		colon = he + 1;
	} else {
		h = listen;
		colon = strrchr(listen, ':');
		if (colon == NULL || colon == h)
			return -1;
		he = colon;
		for (p = h; p < he; p++)
			if (!is_host_char(*p))
				return -1;
	}
	p = colon + 1;
	if (*p == '\0' || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return -1;
	n = strtol(p, NULL, 10);
	if (n < 1 || n > 65535)
		return -1;
	if (host != NULL) {
		if ((size_t)(he - h) >= hostlen)
			return -1;
		memcpy(host, h, (size_t)(he - h));
		host[he - h] = '\0';
	}
	if (port != NULL)
		*port = (int)n;
	return 0;
}

bool config_listen_local(const struct config_listen *l)
{
	unsigned char a[16];

	if (config_listen_unix(l) != NULL)
		return true;
	if (l->host == NULL)
		return false;
	if (strcmp(l->host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, l->host, a) == 1)
		return a[0] == 127;
	return inet_pton(AF_INET6, l->host, a) == 1 && memcmp(a, &in6addr_loopback, 16) == 0;
}

static int listen_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	struct config_listen *l = field(k, base);
	size_t len = strlen(v) + 1;
	char *host = xmalloc(len);
	int port;

	if ((k->flags & K_UNIX) && strncmp(v, "unix:", 5) == 0) {
		free(host);
		if (v[5] != '/' || strlen(v + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return config_bad(cx, "unix: needs an absolute path of at most %zu bytes",
			                  sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		l->text = xstrdup(v);
		return 0;
	}
	if (config_split_listen(v, host, len, &port) < 0) {
		free(host);
		return config_bad(cx, (k->flags & K_UNIX) ? "must be host:port, [IPv6]:port or "
		                                            "unix:/path, e.g. 127.0.0.1:8081"
		                                          : "must be host:port or [IPv6]:port, "
		                                            "e.g. 127.0.0.1:8080");
	}
	l->text = xstrdup(v);
	l->host = host;
	l->port = port;
	return 0;
}

static void listen_clear(const struct conf_key *k, void *base)
{
	struct config_listen *l = field(k, base);

	free(l->text);
	free(l->host);
	memset(l, 0, sizeof(*l));
}

static bool listen_has(const struct conf_key *k, const void *base)
{
	return ((const struct config_listen *)cfield(k, base))->text != NULL;
}

static bool listen_same(const struct conf_key *k, const void *a, const void *b)
{
	const struct config_listen *x = cfield(k, a), *y = cfield(k, b);

	return x->text == NULL || y->text == NULL ? x->text == y->text
	                                          : strcmp(x->text, y->text) == 0;
}

static void listen_copy(const struct conf_key *k, void *dst, const void *src)
{
	struct config_listen *d = field(k, dst);
	const struct config_listen *s = cfield(k, src);

	d->text = s->text != NULL ? xstrdup(s->text) : NULL;
	d->host = s->host != NULL ? xstrdup(s->host) : NULL;
	d->port = s->port;
}

static void listen_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                         const void *base)
{
	const struct config_listen *l = cfield(k, base);

	(void)cfg;
	if (l->text != NULL)
		fprintf(out, "%s", l->text);
	else if (k->unset != NULL)
		fprintf(out, "(%s)", k->unset);
}

/* ---- CIDR lists ---- */

static int cidrs_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	const char *why = NULL;

	if (cidr_list_parse(field(k, base), v, &why) < 0)
		return config_bad(cx, "%s", why);
	return 0;
}

static void cidrs_clear(const struct conf_key *k, void *base)
{
	cidr_list_free(field(k, base));
}

static bool cidrs_same(const struct conf_key *k, const void *a, const void *b)
{
	const struct cidr_list *x = cfield(k, a), *y = cfield(k, b);

	return x->n == y->n && (x->n == 0 || memcmp(x->v, y->v, x->n * sizeof(*x->v)) == 0);
}

static void cidrs_copy(const struct conf_key *k, void *dst, const void *src)
{
	struct cidr_list *d = field(k, dst);
	const struct cidr_list *s = cfield(k, src);

	d->n = s->n;
	d->v = s->n > 0 ? xreallocarray(NULL, s->n, sizeof(*s->v)) : NULL;
	if (s->n > 0)
		memcpy(d->v, s->v, s->n * sizeof(*s->v));
}

static void cidrs_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                        const void *base)
{
	char buf[2048];

	(void)cfg;
	cidr_list_format(cfield(k, base), buf, sizeof(buf));
	if (buf[0] == '\0' && k->unset != NULL)
		fprintf(out, "(%s)", k->unset);
	else
		fprintf(out, "%s", buf);
}

/* ---- secrets: a list (webhook secrets) or one (API key, a forward's secret) ---- */

static size_t *secrets_count(const struct conf_key *k, void *base)
{
	return (size_t *)(void *)((char *)base + k->off_n);
}

static size_t secrets_n(const struct conf_key *k, const void *base)
{
	return *(const size_t *)(const void *)((const char *)base + k->off_n);
}

static int secrets_file_set(struct conf_ctx *cx, const struct conf_key *k, void *base,
                            const char *v)
{
	char **list = NULL;
	long n = config_secret_read(cx, k, v, &list);

	if (n < 0)
		return -1;
	*(char ***)field(k, base) = list;
	*secrets_count(k, base) = (size_t)n;
	return 0;
}

static int secrets_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	char **list;

	if (config_secret_check(cx, k, v, "") < 0)
		return -1;
	list = xmalloc(sizeof(*list));
	list[0] = config_secret_dup(v, strlen(v));
	*(char ***)field(k, base) = list;
	*secrets_count(k, base) = 1;
	return 0;
}

static void secrets_clear(const struct conf_key *k, void *base)
{
	config_secrets_wipe(*(char ***)field(k, base), *secrets_count(k, base));
	*(char ***)field(k, base) = NULL;
	*secrets_count(k, base) = 0;
}

static bool secrets_has(const struct conf_key *k, const void *base)
{
	return secrets_n(k, base) > 0;
}

static bool secrets_same(const struct conf_key *k, const void *a, const void *b)
{
	char *const *x = *(char **const *)cfield(k, a), *const *y = *(char **const *)cfield(k, b);
	size_t n = secrets_n(k, a);

	if (n != secrets_n(k, b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(x[i], y[i]) != 0)
			return false;
	return true;
}

static void secrets_copy(const struct conf_key *k, void *dst, const void *src)
{
	char *const *s = *(char **const *)cfield(k, src);
	size_t n = secrets_n(k, src);
	char **d = n > 0 ? xreallocarray(NULL, n, sizeof(*d)) : NULL;

	for (size_t i = 0; i < n; i++)
		d[i] = config_secret_ref(s[i]); /* not a copy: each secret stays once */
	*(char ***)field(k, dst) = d;
	*secrets_count(k, dst) = n;
}

static void secrets_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                          const void *base)
{
	size_t n = secrets_n(k, base);

	(void)cfg;
	fprintf(out, "(%zu %s%s)", n, n == 1 ? "secret" : "secrets",
	        n > 1 ? ", current first" : "");
}

static int secret_file_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	char **list = NULL;
	long n = config_secret_read(cx, k, v, &list);

	if (n < 0)
		return -1;
	/* The current (first) secret: a webhook-secret file may be reused here. */
	*(char **)field(k, base) = list[0];
	list[0] = NULL;
	config_secrets_wipe(list, (size_t)n);
	return 0;
}

static int secret_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *v)
{
	if (config_secret_check(cx, k, v, "") < 0)
		return -1;
	*(char **)field(k, base) = config_secret_dup(v, strlen(v));
	return 0;
}

/* A reference, not a copy: the secret stays once in the store. */
static void secret_copy(const struct conf_key *k, void *dst, const void *src)
{
	const char *s = *(char *const *)cfield(k, src);

	*(char **)field(k, dst) = s != NULL ? config_secret_ref(s) : NULL;
}

static void secret_clear(const struct conf_key *k, void *base)
{
	char **f = field(k, base);

	config_secret_wipe(*f);
	*f = NULL;
}

static void secret_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                         const void *base)
{
	const char *secret = *(char *const *)cfield(k, base);
	char fp[9];

	(void)cfg;
	if (secret != NULL) {
		/* Which secret, never the secret: the same fingerprint doctor and the log show. */
		config_secret_fingerprint(secret, fp);
		fprintf(out, "(set, fingerprint %s%s)", fp,
		        strstr(secret, CONFIG_PLACEHOLDER_MARK) != NULL
		            ? "; the development placeholder: put the real one in its file"
		            : "");
	} else
		fprintf(out, "(%s)", k->unset != NULL ? k->unset : "none");
}

/* clang-format off */
#define SCALAR(type) .clear = scalar_clear, .has = scalar_has, .same = scalar_same,        \
	.copy = scalar_copy, .size = sizeof(type)
#define STRING .clear = str_clear, .has = str_has, .same = str_same, .copy = str_copy
#define SECRETS .clear = secrets_clear, .has = secrets_has, .same = secrets_same,          \
	.copy = secrets_copy, .print = secrets_print
#define SECRET .clear = secret_clear, .has = str_has, .same = str_same, .copy = secret_copy, \
	.print = secret_print

static const struct conf_ops conf_ops[T_NTYPES] = {
	[T_STRING] = {.set = string_set, STRING, .print = str_print},
	[T_PATH] = {.set = path_set, STRING, .print = str_print},
	[T_URL] = {.set = url_set, STRING, .print = str_print},
	[T_INT] = {.set = int_set, SCALAR(int), .print = int_print},
	[T_LONG] = {.set = long_set, SCALAR(long), .print = long_print},
	[T_BOOL] = {.set = bool_set, SCALAR(bool), .print = bool_print},
	[T_SIGN] = {.set = sign_set, SCALAR(bool), .print = sign_print},
	[T_UNSIGNED] = {.set = unsigned_set, SCALAR(bool), .print = unsigned_print},
	[T_CHOICE] = {.set = choice_set, SCALAR(int), .print = choice_print},
	[T_ACTION_TYPE] = {.set = action_type_set, SCALAR(enum action_type),
	                   .print = action_type_print},
	[T_STATUSES] = {.set = statuses_set, SCALAR(unsigned), .print = statuses_print},
	[T_LISTEN] = {.set = listen_set, .clear = listen_clear, .has = listen_has,
	              .same = listen_same, .copy = listen_copy, .print = listen_print},
	[T_CIDRS] = {.set = cidrs_set, .clear = cidrs_clear, .has = scalar_has,
	             .same = cidrs_same, .copy = cidrs_copy, .print = cidrs_print},
	[T_SECRETS_FILE] = {.set = secrets_file_set, SECRETS},
	[T_SECRETS] = {.set = secrets_set, SECRETS},
	[T_SECRET_FILE] = {.set = secret_file_set, SECRET},
	[T_SECRET] = {.set = secret_set, SECRET},
};
/* clang-format on */

int config_key_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *value)
{
	if (value[0] == '\0') {
		if (k->flags & K_NONEMPTY)
			return config_bad(cx, "must not be empty");
		value = k->def;
	}
	conf_ops[k->type].clear(k, base);
	if (value == NULL)
		return 0;
	return conf_ops[k->type].set(cx, k, base, value);
}

void config_key_clear(const struct conf_key *k, void *base)
{
	conf_ops[k->type].clear(k, base);
}

bool config_key_has(const struct conf_key *k, const void *base)
{
	return conf_ops[k->type].has(k, base);
}

bool config_key_keep(const struct conf_key *k, void *next, const void *cur)
{
	if (conf_ops[k->type].same(k, next, cur))
		return false;
	conf_ops[k->type].clear(k, next);
	conf_ops[k->type].copy(k, next, cur);
	return true;
}

void config_key_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                      const void *base)
{
	conf_ops[k->type].print(out, cfg, k, base);
}
