/*
 * config.c: receiver.conf into a fresh struct config.
 *
 * Every key is one row of config_keys[] (or action_keys[] for [action.NAME]
 * sections): its type, default, bounds, field offset and whether SIGHUP may
 * change it. Defaults are parsed by the same code as the file, freeing walks
 * the same table, and the summary prints from it, so a new key is one row.
 *
 * The file is read line by line here: ';' and '#' comments, [section]
 * headers, "key = value" lines of any length up to CONFIG_LINE_MAX, indented
 * lines as ordinary keys (never continuations), line numbers for messages.
 *
 * Nothing here logs: the first error becomes one "file:line: key: reason"
 * line for the caller.
 *
 * A new key is a field in struct config (or struct action_conf), one row
 * below, and its paragraph in receiver.conf.example and receiver.conf(5).
 */
#include "config.h"
#include "event.h" /* enum pay_status and STATUS_MASK only; nothing to link */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX ((size_t)1024 * 1024) /* bytes of receiver.conf */
#define CONFIG_LINE_MAX ((size_t)64 * 1024)   /* bytes of one line */
#define SECRET_FILE_MAX ((size_t)64 * 1024)   /* bytes of one *_file */
#define NAME_MAX_LEN 64                       /* key and action names */
#define ACTIONS_MAX 256

enum conf_type {
	T_STRING,       /* char *: any text */
	T_PATH,         /* char *: URL path, starts with '/' */
	T_INT,          /* int in [min, max]; durations and counts have min 1 */
	T_LONG,         /* long in [min, max] */
	T_BOOL,         /* bool: true/false yes/no on/off 1/0 */
	T_LISTEN,       /* char *: host:port or [v6]:port */
	T_URL,          /* char *: http:// or https:// */
	T_CIDRS,        /* struct cidr_list */
	T_SECRETS_FILE, /* char ** at off, size_t at off_n: one secret per line */
	T_SECRETS,      /* same fields, one inline secret */
	T_SECRET_FILE,  /* char *: the first secret in a file */
	T_SECRET,       /* char *: inline secret */
	T_ACTION_TYPE,  /* enum action_type: exec | sql | forward */
	T_STATUSES,     /* unsigned: STATUS_MASK() bits */
	T_SIGN,         /* bool: bayar | none */
};

enum {
	K_RESTART = 1u << 0,  /* not reloadable: SIGHUP keeps the running value */
	K_REQUIRED = 1u << 1, /* must have a value (unless its excl key has one) */
	K_NONEMPTY = 1u << 2, /* an empty value is an error, not "default" */
	K_NOSLASH = 1u << 3,  /* trailing '/' removed */
	K_REDACT = 1u << 4,   /* may hold a password: masked in the summary */
};

#define TYPE_BIT(t) (1u << (t))
#define ALL_TYPES (TYPE_BIT(ACTION_EXEC) | TYPE_BIT(ACTION_SQL) | TYPE_BIT(ACTION_FORWARD))

struct conf_key {
	const char *section; /* NULL in action_keys */
	const char *name;
	enum conf_type type;
	const char *def;   /* parsed like a value from the file; NULL: unset (NULL, 0) */
	size_t off;        /* into struct config, or struct action_conf */
	size_t off_n;      /* T_SECRETS*: the count */
	long min, max;     /* T_INT, T_LONG */
	unsigned flags;    /* K_* */
	const char *excl;  /* a key of the same section that may not be set with this one */
	unsigned types;    /* action_keys: TYPE_BIT()s this key is valid for */
	const char *unset; /* what no value means, for the summary */
};

#define CFG(f) offsetof(struct config, f)
#define ACT(f) offsetof(struct action_conf, f)
/* The columns every row has; the optional ones follow as designated fields. */
#define KEY(sec, key, typ, dflt, field)                                                            \
	.section = (sec), .name = (key), .type = (typ), .def = (dflt), .off = CFG(field)
#define AKEY(key, typ, dflt, field, valid)                                                         \
	.name = (key), .type = (typ), .def = (dflt), .off = ACT(field), .types = (valid)
#define RANGE(lo, hi) .min = (lo), .max = (hi)

/*
 * Durations are T_INT seconds with RANGE(1, ...), counts T_INT with
 * RANGE(1, ...). Everything may change on SIGHUP unless K_RESTART.
 */
/* clang-format off */
static const struct conf_key config_keys[] = {
	{KEY("server", "listen", T_LISTEN, "127.0.0.1:8080", listen), .flags = K_RESTART},
	{KEY("server", "callback_path", T_PATH, "/callback", callback_path)},
	{KEY("server", "max_body_bytes", T_LONG, "65536", max_body_bytes), RANGE(1, 16777216)},
	{KEY("server", "request_timeout", T_INT, "10", request_timeout), RANGE(1, 3600)},
	{KEY("server", "trusted_proxies", T_CIDRS, "127.0.0.1/32, ::1/128", trusted_proxies)},
	{KEY("server", "allow_from", T_CIDRS, "", allow_from), .unset = "everyone"},

	{KEY("security", "webhook_secret_file", T_SECRETS_FILE, NULL, secrets), .off_n = CFG(nsecrets),
	 .flags = K_REQUIRED, .excl = "webhook_secret"},
	{KEY("security", "webhook_secret", T_SECRETS, NULL, secrets), .off_n = CFG(nsecrets),
	 .flags = K_REQUIRED, .excl = "webhook_secret_file"},
	{KEY("security", "replay_window", T_INT, "300", replay_window), RANGE(1, 86400)},
	{KEY("security", "confirm_with_api", T_BOOL, "false", confirm_with_api)},

	{KEY("database", "conninfo", T_STRING, "postgresql:///bayarhook", conninfo),
	 .flags = K_RESTART | K_REDACT},

	{KEY("gateway", "base_url", T_URL, "https://www.bayar.gg/api", gateway_base_url),
	 .flags = K_NOSLASH | K_REDACT},
	{KEY("gateway", "api_key_file", T_SECRET_FILE, NULL, api_key), .excl = "api_key",
	 .unset = "none; the reconciler and confirm_with_api need one"},
	{KEY("gateway", "api_key", T_SECRET, NULL, api_key), .excl = "api_key_file"},
	{KEY("gateway", "timeout", T_INT, "10", gateway_timeout), RANGE(1, 3600)},

	{KEY("reconciler", "enabled", T_BOOL, "true", reconciler_enabled)},
	{KEY("reconciler", "interval", T_INT, "300", reconciler_interval), RANGE(1, 86400)},
	{KEY("reconciler", "lookback", T_INT, "172800", reconciler_lookback), RANGE(1, 7776000)},
	{KEY("reconciler", "min_age", T_INT, "120", reconciler_min_age), RANGE(1, 86400)},
	{KEY("reconciler", "max_requests_per_minute", T_INT, "30", reconciler_max_rpm), RANGE(1, 6000)},

	{KEY("fulfillment", "max_attempts", T_INT, "10", max_attempts), RANGE(1, 1000)},
	{KEY("fulfillment", "backoff_initial", T_INT, "5", backoff_initial), RANGE(1, 86400)},
	{KEY("fulfillment", "backoff_max", T_INT, "3600", backoff_max), RANGE(1, 604800)},
	{KEY("fulfillment", "concurrency", T_INT, "4", concurrency), RANGE(1, 256)},
};

#define EXEC TYPE_BIT(ACTION_EXEC)
#define SQL TYPE_BIT(ACTION_SQL)
#define FORWARD TYPE_BIT(ACTION_FORWARD)

/* [action.NAME]: the last column says which types take the key. */
static const struct conf_key action_keys[] = {
	{AKEY("type", T_ACTION_TYPE, NULL, type, ALL_TYPES), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("on", T_STATUSES, "paid", on_mask, ALL_TYPES)},
	{AKEY("timeout", T_INT, "30", timeout, ALL_TYPES), RANGE(1, 86400)},
	{AKEY("max_attempts", T_INT, NULL, max_attempts, ALL_TYPES), RANGE(1, 1000)}, /* NULL: inherit */
	{AKEY("command", T_STRING, NULL, command, EXEC), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("conninfo", T_STRING, NULL, conninfo, SQL), .flags = K_REDACT,
	 .unset = "[database] conninfo"},
	{AKEY("statement", T_STRING, NULL, statement, SQL), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("expect_rows", T_INT, "1", expect_rows, SQL), RANGE(0, INT_MAX)},
	{AKEY("url", T_URL, NULL, url, FORWARD), .flags = K_REQUIRED | K_NONEMPTY | K_REDACT},
	{AKEY("sign", T_SIGN, "bayar", sign_bayar, FORWARD)},
	{AKEY("secret_file", T_SECRET_FILE, NULL, secret, FORWARD), .excl = "secret",
	 .unset = "the current webhook secret"},
	{AKEY("secret", T_SECRET, NULL, secret, FORWARD), .excl = "secret_file"},
};
/* clang-format on */

#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))
#define N_ACTION_KEYS (sizeof(action_keys) / sizeof(action_keys[0]))

static const char *const action_type_names[] = {
    [ACTION_EXEC] = "exec",
    [ACTION_SQL] = "sql",
    [ACTION_FORWARD] = "forward",
};

/* A local copy of the status names, so that config.c links without event.c. */
static const struct {
	const char *name;
	enum pay_status status;
} config_statuses[] = {
    {"pending", STATUS_PENDING},
    {"paid", STATUS_PAID},
    {"expired", STATUS_EXPIRED},
    {"cancelled", STATUS_CANCELLED},
};

struct parser {
	struct config *cfg;
	const char *name; /* file name in messages */
	char *dir;        /* its directory: relative *_file names */
	const char *p, *end;
	int lineno;
	char *line; /* the current line, cut in place by config_lex */
	size_t linecap;

	int section; /* index of the current section's first config_keys row, or -1 */
	long action; /* index of the current [action.NAME] in cfg->actions, or -1 */
	int section_line[N_CONFIG_KEYS];   /* by first row of a section: its header line */
	int key_line[N_CONFIG_KEYS];       /* line each key was set on */
	int (*action_line)[N_ACTION_KEYS]; /* the same per action */
	size_t actions_cap;

	bool failed;
	char *err;
	size_t errlen;
	char reason[512]; /* filled by the value parsers */
};

static int config_fail(struct parser *ps, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the first error as "file:line: key: reason"; later ones are noise. */
static int config_fail(struct parser *ps, int line, const char *key, const char *fmt, ...)
{
	char reason[600];
	va_list ap;

	if (ps->failed)
		return -1;
	ps->failed = true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (ps->err == NULL || ps->errlen == 0)
		return -1;
	if (key != NULL)
		snprintf(ps->err, ps->errlen, "%s:%d: %.*s: %s", ps->name, line, NAME_MAX_LEN + 16,
		         key, reason);
	else
		snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->name, line, reason);
	return -1;
}

static int bad(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A value parser's reason, prefixed later with file, line and key. */
static int bad(struct parser *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->reason, sizeof(ps->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- values ---- */

static void *field_of(const struct conf_key *k, void *base)
{
	return (char *)base + k->off;
}

static void secret_wipe(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void secrets_wipe(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		secret_wipe(v[i]);
	free(v);
}

/* Frees what a key's field owns and leaves it unset. */
static void conf_clear(const struct conf_key *k, void *base)
{
	void *f = field_of(k, base);

	switch (k->type) {
	case T_STRING:
	case T_PATH:
	case T_LISTEN:
	case T_URL:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case T_SECRET_FILE:
	case T_SECRET:
		secret_wipe(*(char **)f);
		*(char **)f = NULL;
		break;
	case T_SECRETS_FILE:
	case T_SECRETS: {
		size_t *n = (size_t *)(void *)((char *)base + k->off_n);

		secrets_wipe(*(char ***)f, *n);
		*(char ***)f = NULL;
		*n = 0;
		break;
	}
	case T_CIDRS:
		cidr_list_free(f);
		break;
	case T_INT:
		*(int *)f = 0;
		break;
	case T_LONG:
		*(long *)f = 0;
		break;
	case T_BOOL:
	case T_SIGN:
		*(bool *)f = false;
		break;
	case T_ACTION_TYPE:
		*(enum action_type *)f = ACTION_EXEC;
		break;
	case T_STATUSES:
		*(unsigned *)f = 0;
		break;
	}
}

/* True when the key's field holds a value (for K_REQUIRED). */
static bool conf_has_value(const struct conf_key *k, const void *base)
{
	const void *f = (const char *)base + k->off;

	switch (k->type) {
	case T_SECRETS_FILE:
	case T_SECRETS:
		return *(const size_t *)(const void *)((const char *)base + k->off_n) > 0;
	case T_STRING:
	case T_PATH:
	case T_LISTEN:
	case T_URL:
	case T_SECRET_FILE:
	case T_SECRET:
		return *(char *const *)f != NULL;
	default:
		return true;
	}
}

static int parse_long(struct parser *ps, const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	if (v[0] == '-' ? strspn(v + 1, "0123456789") != strlen(v + 1) || v[1] == '\0'
	                : strspn(v, "0123456789") != strlen(v))
		return bad(ps, "must be a whole number");
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno == ERANGE || n < min || n > max) {
		if (max == INT_MAX || max == LONG_MAX)
			return bad(ps, "must be at least %ld", min);
		return bad(ps, "must be between %ld and %ld", min, max);
	}
	*out = n;
	return 0;
}

static int parse_bool(struct parser *ps, const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return bad(ps, "must be true or false (also yes/no, on/off, 1/0)");
}

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

static int check_url(struct parser *ps, const char *v)
{
	const char *rest;

	if (strncmp(v, "http://", 7) == 0)
		rest = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		rest = v + 8;
	else
		return bad(ps, "must start with http:// or https://");
	if (strcspn(rest, "/?#") == 0)
		return bad(ps, "has no host");
	if (strpbrk(v, " \t") != NULL)
		return bad(ps, "must not contain spaces");
	return 0;
}

static int parse_statuses(struct parser *ps, const char *v, unsigned *out)
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
			return bad(ps, "empty entry in list");
		for (i = 0; i < sizeof(config_statuses) / sizeof(config_statuses[0]); i++)
			if (strlen(config_statuses[i].name) == (size_t)(e - s) &&
			    memcmp(config_statuses[i].name, s, (size_t)(e - s)) == 0)
				break;
		if (i == sizeof(config_statuses) / sizeof(config_statuses[0]))
			return bad(ps,
			           "unknown status '%.*s' (use pending, paid, expired, cancelled)",
			           (int)(e - s > 32 ? 32 : e - s), s);
		mask |= STATUS_MASK(config_statuses[i].status);
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*out = mask;
	return 0;
}

/* Joins dir and name into buf; -1 when it does not fit. */
static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * Reads a *_file: an absolute name as is; a relative one from
 * $CREDENTIALS_DIRECTORY (systemd LoadCredential=), else beside the config
 * file. Returns a NUL-terminated buffer the caller wipes, or NULL with the
 * reason (the path, never the content) in ps->reason.
 */
static char *read_secret_file(struct parser *ps, const char *name, char path[PATH_MAX])
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	const char *also = "";
	struct stat st;
	char *buf = NULL;
	size_t used = 0;
	int fd = -1;

	/* O_NONBLOCK: a FIFO named by mistake must not hang the load. */
	if (name[0] == '/') {
		if (path_join(path, PATH_MAX, "", name + 1) < 0)
			goto toolong;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	} else {
		if (creds != NULL && creds[0] != '\0') {
			if (path_join(path, PATH_MAX, creds, name) < 0)
				goto toolong;
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
			if (fd < 0 && errno == ENOENT)
				also = " (not in $CREDENTIALS_DIRECTORY either)";
		}
		if (fd < 0 && (creds == NULL || creds[0] == '\0' || errno == ENOENT)) {
			if (path_join(path, PATH_MAX, ps->dir, name) < 0)
				goto toolong;
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		}
	}
	if (fd < 0) {
		bad(ps, "cannot open %s%s: %s", path, also, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		bad(ps, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		bad(ps, "%s: not a regular file", path);
		goto fail;
	}
	buf = malloc(SECRET_FILE_MAX + 1);
	if (buf == NULL) {
		bad(ps, "out of memory");
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, buf + used, SECRET_FILE_MAX + 1 - used);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			bad(ps, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > SECRET_FILE_MAX) {
			bad(ps, "%s: larger than %zu bytes", path, SECRET_FILE_MAX);
			goto fail;
		}
	}
	buf[used] = '\0';
	if (memchr(buf, '\0', used) != NULL) {
		bad(ps, "%s: contains a NUL byte", path);
		goto fail;
	}
	close(fd);
	return buf;

toolong:
	bad(ps, "path too long");
	return NULL;
fail:
	if (buf != NULL) {
		explicit_bzero(buf, used);
		free(buf);
	}
	close(fd);
	return NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Splits a secret file's text into its non-blank lines, blanks around each
 * removed. Returns the count (0 is possible), or -1 when out of memory.
 */
static long split_secrets(char *text, char ***out)
{
	char **v = NULL;
	size_t n = 0;

	for (char *line = text; line != NULL;) {
		char *nl = strchr(line, '\n'), *e;

		if (nl != NULL)
			*nl = '\0';
		while (is_space(*line))
			line++;
		e = line + strlen(line);
		while (e > line && is_space(e[-1]))
			e--;
		*e = '\0';
		if (*line != '\0') {
			char **nv = realloc(v, (n + 1) * sizeof(*v));

			if (nv == NULL || (nv[n] = strdup(line)) == NULL) {
				secrets_wipe(nv != NULL ? nv : v, n);
				return -1;
			}
			v = nv;
			n++;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	*out = v;
	return (long)n;
}

/* Secrets of a *_file; fails when the file holds none. */
static long load_secret_file(struct parser *ps, const char *name, char ***out)
{
	char path[PATH_MAX];
	char *text = read_secret_file(ps, name, path);
	size_t len;
	long n;

	if (text == NULL)
		return -1;
	len = strlen(text);
	n = split_secrets(text, out);
	explicit_bzero(text, len);
	free(text);
	if (n < 0)
		return bad(ps, "out of memory");
	if (n == 0)
		return bad(ps, "%s: holds no secret", path);
	return n;
}

static char *dup_or_oom(struct parser *ps, const char *v)
{
	char *s = strdup(v);

	if (s == NULL)
		bad(ps, "out of memory");
	return s;
}

/*
 * Sets one key from its text. An empty value means the default, except for
 * K_NONEMPTY keys. Returns 0, or -1 with ps->reason.
 */
static int conf_set(struct parser *ps, const struct conf_key *k, void *base, const char *value)
{
	void *f = field_of(k, base);
	long n = 0;

	if (value[0] == '\0') {
		if (k->flags & K_NONEMPTY)
			return bad(ps, "must not be empty");
		value = k->def;
	}
	conf_clear(k, base);
	if (value == NULL)
		return 0;

	switch (k->type) {
	case T_STRING:
		return (*(char **)f = dup_or_oom(ps, value)) != NULL ? 0 : -1;
	case T_PATH:
		if (value[0] != '/')
			return bad(ps, "must start with '/'");
		if (strpbrk(value, " \t?#") != NULL)
			return bad(ps, "must not contain spaces, '?' or '#'");
		return (*(char **)f = dup_or_oom(ps, value)) != NULL ? 0 : -1;
	case T_INT:
		if (parse_long(ps, value, k->min, k->max, &n) < 0)
			return -1;
		*(int *)f = (int)n;
		return 0;
	case T_LONG:
		return parse_long(ps, value, k->min, k->max, (long *)f);
	case T_BOOL:
		return parse_bool(ps, value, (bool *)f);
	case T_LISTEN:
		if (config_split_listen(value, NULL, 0, NULL) < 0)
			return bad(ps, "must be host:port or [IPv6]:port, e.g. 127.0.0.1:8080");
		return (*(char **)f = dup_or_oom(ps, value)) != NULL ? 0 : -1;
	case T_URL: {
		char *s;

		if (check_url(ps, value) < 0 || (s = dup_or_oom(ps, value)) == NULL)
			return -1;
		if (k->flags & K_NOSLASH) {
			size_t len = strlen(s), min = (size_t)(strstr(s, "://") + 4 - s);

			while (len > min && s[len - 1] == '/')
				s[--len] = '\0';
		}
		*(char **)f = s;
		return 0;
	}
	case T_CIDRS: {
		const char *why = NULL;

		if (cidr_list_parse(f, value, &why) < 0)
			return bad(ps, "%s", why);
		return 0;
	}
	case T_SECRETS_FILE:
	case T_SECRETS: {
		char **v = NULL;
		long cnt;

		if (k->type == T_SECRETS_FILE) {
			cnt = load_secret_file(ps, value, &v);
		} else {
			cnt = 1;
			v = malloc(sizeof(*v));
			if (v == NULL || (v[0] = strdup(value)) == NULL) {
				free(v);
				cnt = bad(ps, "out of memory");
			}
		}
		if (cnt < 0)
			return -1;
		*(char ***)f = v;
		*(size_t *)(void *)((char *)base + k->off_n) = (size_t)cnt;
		return 0;
	}
	case T_SECRET_FILE: {
		char **v = NULL;
		long cnt = load_secret_file(ps, value, &v);

		if (cnt <= 0 || v == NULL)
			return -1;
		/* The current (first) secret: a webhook-secret file may be reused here. */
		*(char **)f = v[0];
		v[0] = NULL;
		secrets_wipe(v, (size_t)cnt);
		return 0;
	}
	case T_SECRET:
		return (*(char **)f = dup_or_oom(ps, value)) != NULL ? 0 : -1;
	case T_ACTION_TYPE:
		for (size_t i = 0; i < sizeof(action_type_names) / sizeof(action_type_names[0]);
		     i++) {
			if (strcmp(value, action_type_names[i]) == 0) {
				*(enum action_type *)f = (enum action_type)i;
				return 0;
			}
		}
		return bad(ps, "must be exec, sql or forward");
	case T_STATUSES:
		return parse_statuses(ps, value, (unsigned *)f);
	case T_SIGN:
		if (strcmp(value, "bayar") == 0)
			*(bool *)f = true;
		else if (strcmp(value, "none") == 0)
			*(bool *)f = false;
		else
			return bad(ps, "must be bayar or none");
		return 0;
	}
	return bad(ps, "internal error: unknown key type");
}

/* ---- sections and keys ---- */

static int find_key(const struct conf_key *tab, size_t n, const char *section, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if ((section == NULL || strcmp(tab[i].section, section) == 0) &&
		    strcmp(tab[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The first config_keys row of a section, which stands for the section. */
static int find_section(const char *name)
{
	for (size_t i = 0; i < N_CONFIG_KEYS; i++)
		if (strcmp(config_keys[i].section, name) == 0)
			return (int)i;
	return -1;
}

static bool valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= NAME_MAX_LEN && s[n] == '\0';
}

/* The checks an [action.NAME] needs once all its keys are known. */
static void finish_action(struct parser *ps)
{
	const struct action_conf *a;
	const int *seen;
	unsigned bit;
	int first = 0;
	size_t bad_key = 0;

	if (ps->action < 0 || ps->failed)
		return;
	a = &ps->cfg->actions[ps->action];
	seen = ps->action_line[ps->action];
	ps->action = -1;
	if (!seen[find_key(action_keys, N_ACTION_KEYS, NULL, "type")]) {
		config_fail(ps, a->line, "type", "required (exec, sql or forward)");
		return;
	}
	bit = TYPE_BIT(a->type);
	/* The earliest key that the type does not take. */
	for (size_t i = 0; i < N_ACTION_KEYS; i++) {
		if (seen[i] && !(action_keys[i].types & bit) && (first == 0 || seen[i] < first)) {
			first = seen[i];
			bad_key = i;
		}
	}
	if (first) {
		config_fail(ps, first, action_keys[bad_key].name, "not valid for type %s",
		            action_type_names[a->type]);
		return;
	}
	for (size_t i = 0; i < N_ACTION_KEYS; i++) {
		const struct conf_key *k = &action_keys[i];

		if ((k->flags & K_REQUIRED) && (k->types & bit) && !conf_has_value(k, a)) {
			config_fail(ps, a->line, k->name, "required for type %s",
			            action_type_names[a->type]);
			return;
		}
	}
}

static void start_action(struct parser *ps, const char *header, const char *name)
{
	struct config *cfg = ps->cfg;
	struct action_conf *a;

	if (!valid_name(name)) {
		config_fail(ps, ps->lineno, header,
		            "action name must be 1 to %d characters from A-Z a-z 0-9 _ -",
		            NAME_MAX_LEN);
		return;
	}
	for (size_t i = 0; i < cfg->nactions; i++) {
		if (strcmp(cfg->actions[i].name, name) == 0) {
			config_fail(ps, ps->lineno, header, "duplicate section (first on line %d)",
			            cfg->actions[i].line);
			return;
		}
	}
	if (cfg->nactions == ACTIONS_MAX) {
		config_fail(ps, ps->lineno, header, "more than %d actions", ACTIONS_MAX);
		return;
	}
	if (cfg->nactions == ps->actions_cap) {
		size_t cap = ps->actions_cap ? ps->actions_cap * 2 : 4;
		struct action_conf *v = realloc(cfg->actions, cap * sizeof(*v));
		int(*lines)[N_ACTION_KEYS];

		if (v == NULL) {
			config_fail(ps, ps->lineno, header, "out of memory");
			return;
		}
		cfg->actions = v;
		lines = realloc(ps->action_line, cap * sizeof(*lines));
		if (lines == NULL) {
			config_fail(ps, ps->lineno, header, "out of memory");
			return;
		}
		ps->action_line = lines;
		ps->actions_cap = cap;
	}
	a = &cfg->actions[cfg->nactions];
	memset(a, 0, sizeof(*a));
	memset(ps->action_line[cfg->nactions], 0, sizeof(ps->action_line[0]));
	cfg->nactions++; /* from here on config_free owns it */
	a->line = ps->lineno;
	a->name = strdup(name);
	if (a->name == NULL) {
		config_fail(ps, ps->lineno, header, "out of memory");
		return;
	}
	for (size_t i = 0; i < N_ACTION_KEYS; i++) {
		if (action_keys[i].def != NULL && conf_set(ps, &action_keys[i], a, "") < 0) {
			config_fail(ps, ps->lineno, action_keys[i].name, "bad default: %s",
			            ps->reason);
			return;
		}
	}
	ps->action = (long)(cfg->nactions - 1);
}

static void start_section(struct parser *ps, const char *name)
{
	char header[NAME_MAX_LEN + 20];
	int sec;

	finish_action(ps);
	if (ps->failed)
		return;
	ps->section = -1;
	if (strlen(name) > NAME_MAX_LEN + 8)
		snprintf(header, sizeof(header), "[%.*s...]", NAME_MAX_LEN + 8, name);
	else
		snprintf(header, sizeof(header), "[%s]", name);
	if (strncmp(name, "action.", 7) == 0) {
		start_action(ps, header, name + 7);
		return;
	}
	sec = find_section(name);
	if (sec < 0) {
		config_fail(ps, ps->lineno, header, "unknown section");
		return;
	}
	if (ps->section_line[sec]) {
		config_fail(ps, ps->lineno, header, "duplicate section (first on line %d)",
		            ps->section_line[sec]);
		return;
	}
	ps->section_line[sec] = ps->lineno;
	ps->section = sec;
}

static void set_key(struct parser *ps, const char *name, const char *value)
{
	const struct conf_key *tab, *k;
	int *lines, i, x;
	void *base;
	size_t n;

	if (ps->action >= 0) {
		tab = action_keys;
		n = N_ACTION_KEYS;
		lines = ps->action_line[ps->action];
		base = &ps->cfg->actions[ps->action];
		i = find_key(tab, n, NULL, name);
	} else if (ps->section >= 0) {
		tab = config_keys;
		n = N_CONFIG_KEYS;
		lines = ps->key_line;
		base = ps->cfg;
		i = find_key(tab, n, config_keys[ps->section].section, name);
	} else {
		config_fail(ps, ps->lineno, name, "key outside of any [section]");
		return;
	}
	if (i < 0) {
		config_fail(ps, ps->lineno, name, "unknown key");
		return;
	}
	k = &tab[i];
	if (lines[i]) {
		config_fail(ps, ps->lineno, name, "duplicate key (first on line %d)", lines[i]);
		return;
	}
	if (k->excl != NULL) {
		x = find_key(tab, n, k->section, k->excl);
		if (x >= 0 && lines[x]) {
			config_fail(ps, ps->lineno, name, "conflicts with %s on line %d", k->excl,
			            lines[x]);
			return;
		}
	}
	lines[i] = ps->lineno;
	if (conf_set(ps, k, base, value) < 0)
		config_fail(ps, ps->lineno, name, "%s", ps->reason);
}

/* Whole-file checks, once every line is in. */
static void finish_config(struct parser *ps)
{
	struct config *cfg = ps->cfg;

	finish_action(ps);
	for (size_t i = 0; i < N_CONFIG_KEYS && !ps->failed; i++) {
		const struct conf_key *k = &config_keys[i];
		int x;

		if (!(k->flags & K_REQUIRED) || conf_has_value(k, cfg))
			continue;
		x = k->excl != NULL ? find_key(config_keys, N_CONFIG_KEYS, k->section, k->excl)
		                    : -1;
		/* A pair of alternatives is reported once, by its first row. */
		if (x >= 0 && (size_t)x < i)
			continue;
		if (x >= 0)
			config_fail(ps, ps->section_line[find_section(k->section)], k->name,
			            "required (or %s)", k->excl);
		else
			config_fail(ps, ps->section_line[find_section(k->section)], k->name,
			            "required");
	}
	if (!ps->failed && cfg->backoff_max < cfg->backoff_initial) {
		int line = ps->key_line[find_key(config_keys, N_CONFIG_KEYS, "fulfillment",
		                                 "backoff_max")];

		if (line == 0)
			line = ps->key_line[find_key(config_keys, N_CONFIG_KEYS, "fulfillment",
			                             "backoff_initial")];
		config_fail(ps, line, "backoff_max", "must be at least backoff_initial (%d)",
		            cfg->backoff_initial);
	}
	/* Held jobs would wait forever for a confirmation that cannot be asked. */
	if (!ps->failed && cfg->confirm_with_api && cfg->api_key == NULL)
		config_fail(ps,
		            ps->key_line[find_key(config_keys, N_CONFIG_KEYS, "security",
		                                  "confirm_with_api")],
		            "confirm_with_api", "needs a [gateway] api_key_file (or api_key)");
}

/* ---- lines ---- */

enum line_kind {
	LINE_BLANK,
	LINE_SECTION, /* *a: the name inside [] */
	LINE_KEY,     /* *a: key, *b: value */
	LINE_BAD,     /* error recorded */
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	return s;
}

/*
 * Cuts a line in place: comments (';' or '#' at the start or after a blank),
 * blanks, then [section] or key = value.
 */
static enum line_kind config_lex(struct parser *ps, char *line, char **a, char **b)
{
	char *s, *eq;

	for (s = line; *s; s++) {
		if ((*s == ';' || *s == '#') && (s == line || s[-1] == ' ' || s[-1] == '\t')) {
			*s = '\0';
			break;
		}
	}
	s = trim(line);
	if (*s == '\0')
		return LINE_BLANK;
	if (*s == '[') {
		char *close = strchr(s, ']');

		if (close == NULL) {
			config_fail(ps, ps->lineno, s, "missing ']'");
			return LINE_BAD;
		}
		if (close[1] != '\0') {
			close[1] = '\0';
			config_fail(ps, ps->lineno, s, "unexpected text after ']'");
			return LINE_BAD;
		}
		*close = '\0';
		*a = trim(s + 1);
		return LINE_SECTION;
	}
	eq = strchr(s, '=');
	if (eq == NULL) {
		config_fail(ps, ps->lineno, s, "expected 'key = value'");
		return LINE_BAD;
	}
	*eq = '\0';
	*a = trim(s);
	*b = trim(eq + 1);
	if (**a == '\0') {
		config_fail(ps, ps->lineno, NULL, "expected a key before '='");
		return LINE_BAD;
	}
	return LINE_KEY;
}

/* Takes the next physical line into ps->line; false at the end of the input. */
static bool next_line(struct parser *ps)
{
	const char *nl, *s = ps->p;
	size_t len;

	if (ps->p >= ps->end)
		return false;
	nl = memchr(s, '\n', (size_t)(ps->end - s));
	len = nl != NULL ? (size_t)(nl - s) : (size_t)(ps->end - s);
	ps->p = nl != NULL ? nl + 1 : ps->end;
	ps->lineno++;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (ps->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		len -= 3;
	}
	if (len > CONFIG_LINE_MAX) {
		config_fail(ps, ps->lineno, NULL, "line longer than %zu bytes", CONFIG_LINE_MAX);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			config_fail(ps, ps->lineno, NULL, "control character (0x%02x) in line", c);
			return false;
		}
	}
	if (len + 1 > ps->linecap) {
		size_t cap = len + 1 < 256 ? 256 : len + 1;
		char *l = realloc(ps->line, cap);

		if (l == NULL) {
			config_fail(ps, ps->lineno, NULL, "out of memory");
			return false;
		}
		ps->line = l;
		ps->linecap = cap;
	}
	memcpy(ps->line, s, len);
	ps->line[len] = '\0';
	return true;
}

/* Feeds every line to the section and key handlers, until the end or the first error. */
static void config_parse_lines(struct parser *ps)
{
	char *a = NULL, *b = NULL;

	while (!ps->failed && next_line(ps)) {
		switch (config_lex(ps, ps->line, &a, &b)) {
		case LINE_BLANK:
		case LINE_BAD:
			break;
		case LINE_SECTION:
			start_section(ps, a);
			break;
		case LINE_KEY:
			/* Not a key of any table, wherever it stands. */
			if (!valid_name(a) || strchr(a, '-') != NULL)
				config_fail(ps, ps->lineno, a, "unknown key");
			else
				set_key(ps, a, b);
			break;
		}
	}
}

/* ---- loading ---- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

struct config *config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                  size_t errlen)
{
	struct parser ps;
	struct config *cfg;

	memset(&ps, 0, sizeof(ps));
	ps.name = name;
	ps.err = err;
	ps.errlen = errlen;
	ps.p = data;
	ps.end = data + len;
	ps.section = -1;
	ps.action = -1;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	cfg = calloc(1, sizeof(*cfg));
	ps.cfg = cfg;
	if (cfg == NULL || (cfg->path = strdup(name)) == NULL || (ps.dir = dir_of(name)) == NULL) {
		config_fail(&ps, 0, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		if (config_keys[i].def != NULL && conf_set(&ps, &config_keys[i], cfg, "") < 0) {
			config_fail(&ps, 0, config_keys[i].name, "bad default: %s", ps.reason);
			goto fail;
		}
	}

	config_parse_lines(&ps);
	if (!ps.failed)
		finish_config(&ps);
fail:
	if (ps.line != NULL)
		explicit_bzero(ps.line, ps.linecap); /* may hold an inline secret */
	free(ps.line);
	free(ps.dir);
	free(ps.action_line);
	if (ps.failed) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t used = 0;
	struct config *cfg;
	int fd;

	if (err == NULL)
		errlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	data = malloc(CONFIG_FILE_MAX + 1);
	if (data == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, data + used, CONFIG_FILE_MAX + 1 - used);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > CONFIG_FILE_MAX) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path, CONFIG_FILE_MAX);
			goto fail;
		}
	}
	close(fd);
	cfg = config_load_buffer(path, data, used, err, errlen);
	explicit_bzero(data, used); /* may hold inline secrets */
	free(data);
	return cfg;

fail:
	free(data);
	close(fd);
	return NULL;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < N_CONFIG_KEYS; i++)
		conf_clear(&config_keys[i], cfg);
	for (size_t a = 0; a < cfg->nactions; a++) {
		for (size_t i = 0; i < N_ACTION_KEYS; i++)
			conf_clear(&action_keys[i], &cfg->actions[a]);
		free(cfg->actions[a].name);
	}
	free(cfg->actions);
	free(cfg->path);
	free(cfg);
}

const char *config_default_path(void)
{
	const char *env = getenv("BAYARHOOK_CONFIG");

	return env != NULL && env[0] != '\0' ? env : "/etc/bayarhook/receiver.conf";
}

int config_action_max_attempts(const struct config *cfg, const struct action_conf *a)
{
	return a->max_attempts > 0 ? a->max_attempts : cfg->max_attempts;
}

const struct action_conf *config_action(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nactions; i++)
		if (strcmp(cfg->actions[i].name, name) == 0)
			return &cfg->actions[i];
	return NULL;
}

/* Compares a restart-only key of two configs; copies cur's value into next when they differ. */
static int keep_one(const struct conf_key *k, struct config *next, const struct config *cur,
                    bool *differed)
{
	void *nf = field_of(k, next);
	const void *cf = (const char *)cur + k->off;

	*differed = false;
	switch (k->type) {
	case T_STRING:
	case T_PATH:
	case T_LISTEN:
	case T_URL: {
		const char *c = *(char *const *)cf, *n = *(char **)nf;
		char *copy;

		if ((c == NULL && n == NULL) || (c != NULL && n != NULL && strcmp(c, n) == 0))
			return 0;
		copy = NULL;
		if (c != NULL && (copy = strdup(c)) == NULL)
			return -1;
		free(*(char **)nf);
		*(char **)nf = copy;
		break;
	}
	case T_INT:
		if (*(int *)nf == *(const int *)cf)
			return 0;
		*(int *)nf = *(const int *)cf;
		break;
	case T_LONG:
		if (*(long *)nf == *(const long *)cf)
			return 0;
		*(long *)nf = *(const long *)cf;
		break;
	case T_BOOL:
		if (*(bool *)nf == *(const bool *)cf)
			return 0;
		*(bool *)nf = *(const bool *)cf;
		break;
	default:
		/* Other types are not marked K_RESTART; add a case before marking one. */
		return 0;
	}
	*differed = true;
	return 0;
}

int config_keep_fixed(struct config *next, const struct config *cur, char *changed, size_t len)
{
	int count = 0;
	size_t used = 0;

	if (changed != NULL && len > 0)
		changed[0] = '\0';
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		bool differed;

		if (!(config_keys[i].flags & K_RESTART))
			continue;
		if (keep_one(&config_keys[i], next, cur, &differed) < 0)
			return -1;
		if (!differed)
			continue;
		if (changed != NULL && used < len) {
			int w = snprintf(changed + used, len - used, "%s%s", count ? ", " : "",
			                 config_keys[i].name);

			if (w > 0)
				used += (size_t)w;
		}
		count++;
	}
	return count;
}

/* ---- summary ---- */

static void put(char *buf, size_t len, size_t *used, const char *s, size_t n)
{
	if (*used + 1 >= len)
		return;
	if (n > len - 1 - *used)
		n = len - 1 - *used;
	memcpy(buf + *used, s, n);
	*used += n;
	buf[*used] = '\0';
}

void config_redact(const char *text, char *buf, size_t len)
{
	const char *s = text, *scheme;
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (text == NULL)
		return;
	/* URI form: scheme://user:password@host/... */
	scheme = strstr(s, "://");
	if (scheme != NULL) {
		const char *auth = scheme + 3, *at = NULL, *colon;
		size_t alen = strcspn(auth, "/?#");

		for (const char *p = auth; p < auth + alen; p++)
			if (*p == '@')
				at = p;
		colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon != NULL) {
			put(buf, len, &used, s, (size_t)(colon + 1 - s));
			put(buf, len, &used, "***", 3);
			s = at;
		}
	}
	/* password=..., sslpassword=... in a conninfo or a URI query. */
	while (*s) {
		const char *v;

		if (strncasecmp(s, "password", 8) != 0) {
			put(buf, len, &used, s, 1);
			s++;
			continue;
		}
		v = s + 8;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=') {
			put(buf, len, &used, s, 1);
			s++;
			continue;
		}
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		put(buf, len, &used, s, (size_t)(v - s));
		put(buf, len, &used, "***", 3);
		if (*v == '\'') {
			for (v++; *v && *v != '\''; v++)
				if (*v == '\\' && v[1] != '\0')
					v++;
			if (*v == '\'')
				v++;
		} else {
			v += strcspn(v, " \t&#");
		}
		s = v;
	}
}

static void print_value(FILE *out, const struct config *cfg, const struct conf_key *k,
                        const void *base)
{
	const void *f = (const char *)base + k->off;
	char buf[2048];

	switch (k->type) {
	case T_STRING:
	case T_PATH:
	case T_LISTEN:
	case T_URL: {
		const char *s = *(char *const *)f;

		if (s != NULL && (k->flags & K_REDACT)) {
			config_redact(s, buf, sizeof(buf));
			s = buf;
		}
		if (s != NULL)
			fprintf(out, "%s", s);
		else if (k->unset != NULL)
			fprintf(out, "(%s)", k->unset);
		break;
	}
	case T_INT:
		/* The only int without a default is an action's inherited max_attempts. */
		if (*(const int *)f == 0 && k->def == NULL)
			fprintf(out, "%d (from [fulfillment])", cfg->max_attempts);
		else
			fprintf(out, "%d", *(const int *)f);
		break;
	case T_LONG:
		fprintf(out, "%ld", *(const long *)f);
		break;
	case T_BOOL:
		fprintf(out, "%s", *(const bool *)f ? "true" : "false");
		break;
	case T_SIGN:
		fprintf(out, "%s", *(const bool *)f ? "bayar" : "none");
		break;
	case T_CIDRS:
		cidr_list_format(f, buf, sizeof(buf));
		if (buf[0] == '\0' && k->unset != NULL)
			fprintf(out, "(%s)", k->unset);
		else
			fprintf(out, "%s", buf);
		break;
	case T_SECRETS_FILE:
	case T_SECRETS: {
		size_t n = *(const size_t *)(const void *)((const char *)base + k->off_n);

		fprintf(out, "(%zu %s%s)", n, n == 1 ? "secret" : "secrets",
		        n > 1 ? ", current first" : "");
		break;
	}
	case T_SECRET_FILE:
	case T_SECRET:
		if (*(char *const *)f != NULL)
			fprintf(out, "(set)");
		else
			fprintf(out, "(%s)", k->unset != NULL ? k->unset : "none");
		break;
	case T_ACTION_TYPE:
		fprintf(out, "%s", action_type_names[*(const enum action_type *)f]);
		break;
	case T_STATUSES: {
		const char *sep = "";

		for (size_t i = 0; i < sizeof(config_statuses) / sizeof(config_statuses[0]); i++) {
			if (*(const unsigned *)f & STATUS_MASK(config_statuses[i].status)) {
				fprintf(out, "%s%s", sep, config_statuses[i].name);
				sep = ", ";
			}
		}
		break;
	}
	}
}

/* Secret pairs share a field: print it once, under the name without "_file". */
static bool print_skip(const struct conf_key *tab, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (tab[j].off == tab[i].off && (tab[j].section == tab[i].section ||
		                                 (tab[j].section && tab[i].section &&
		                                  strcmp(tab[j].section, tab[i].section) == 0)))
			return true;
	return false;
}

static void print_key(FILE *out, const struct config *cfg, const struct conf_key *tab, size_t i,
                      const void *base)
{
	const char *name = tab[i].name;
	size_t n = strlen(name);

	if (print_skip(tab, i))
		return;
	if (tab[i].type == T_SECRETS_FILE || tab[i].type == T_SECRET_FILE)
		n -= strlen("_file");
	fprintf(out, "%.*s = ", (int)n, name);
	print_value(out, cfg, &tab[i], base);
	fputc('\n', out);
}

void config_print_summary(const struct config *cfg, FILE *out)
{
	const char *section = NULL;

	fprintf(out, "# %s (secrets are not shown)\n", cfg->path != NULL ? cfg->path : "");
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		if (section == NULL || strcmp(section, config_keys[i].section) != 0) {
			section = config_keys[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		print_key(out, cfg, config_keys, i, cfg);
	}
	for (size_t a = 0; a < cfg->nactions; a++) {
		const struct action_conf *ac = &cfg->actions[a];

		fprintf(out, "\n[action.%s]\n", ac->name);
		for (size_t i = 0; i < N_ACTION_KEYS; i++)
			if (action_keys[i].types & TYPE_BIT(ac->type))
				print_key(out, cfg, action_keys, i, ac);
	}
	if (cfg->nactions == 0)
		fprintf(out, "\n# no [action.NAME] sections: callbacks are recorded, nothing "
		             "is fulfilled\n");
}
