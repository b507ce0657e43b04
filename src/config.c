/*
 * config.c: receiver.conf into a fresh struct config: the rows of the key
 * tables, the line reader, sections and keys, the whole-file checks, and
 * what SIGHUP keeps.
 *
 * Every key is one row of config_keys[] (or action_keys[] for [action.NAME]
 * sections): its type, default, bounds, field offset and whether SIGHUP may
 * change it. The type's row of operations (config_types.c) parses, frees,
 * compares, copies and prints it; defaults are parsed like the file, so a
 * new key is one row.
 *
 * The file is read line by line here: ';' and '#' comments, [section]
 * headers, "key = value" lines of any length up to CONFIG_LINE_MAX, indented
 * lines as ordinary keys (never continuations), line numbers for messages.
 *
 * Nothing here logs: the first error becomes one "file:line: key: reason"
 * line for the caller.
 *
 * A new key is a field in struct config (or struct action_conf), one row
 * in config_keys.c, and its paragraph in receiver.conf.example and receiver.conf(5).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alert_kind.h"
#include "config_table.h"
#include "when.h"
#include "event.h"
#include "jsonw.h"
#include "xmalloc.h"

#define CONFIG_FILE_MAX ((size_t)1024 * 1024) /* bytes of receiver.conf */
#define CONFIG_LINE_MAX ((size_t)64 * 1024)   /* bytes of one line */
#define NAME_MAX_LEN 64                       /* key and action names */
#define ACTIONS_MAX 256

#define ALL_TYPES (TYPE_BIT(ACTION_EXEC) | TYPE_BIT(ACTION_SQL) | TYPE_BIT(ACTION_FORWARD))

struct parser {
	struct config *cfg;
	const char *name;   /* file name in messages */
	struct conf_ctx cx; /* its directory for the values, their reason */
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
	/*
	 * CONFIG_NO_SECRETS: *_file keys are taken as given but their files are
	 * never opened, for the commands that use no secret (SPEC §10): an
	 * operator running `jobs` as root or as another user than the service
	 * must not need to read its 0600 secret files.
	 */
	bool no_secrets;
	bool audit_key; /* CONFIG_AUDIT_KEY: [audit] key_file is read all the same */
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

/* A value accepted with a warning (a weak secret, a readable secret file): the caller logs it. */
static void config_add_warning(struct parser *ps, const char *key, const char *what)
{
	struct config *cfg = ps->cfg;
	char *w;

	xasprintf(&w, "%s:%d: %s: %s", ps->name, ps->lineno, key, what);
	cfg->warnings = xreallocarray(cfg->warnings, cfg->nwarnings + 1, sizeof(*cfg->warnings));
	cfg->warnings[cfg->nwarnings++] = w;
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
		config_fail(ps, a->line, "type", "required (exec, sql, forward, http or wa_store)");
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
		            config_action_type_name(a->type));
		return;
	}
	if (a->when != NULL && a->when[0] != '\0') {
		char why[256];
		struct when *w = when_parse(a->when, why, sizeof(why));

		/* Compiled here only to refuse a bad one at load; the store compiles its own. */
		if (w == NULL) {
			config_fail(ps, seen[find_key(action_keys, N_ACTION_KEYS, NULL, "when")],
			            "when", "%s", why);
			return;
		}
		when_free(w);
	}
	for (size_t i = 0; i < N_ACTION_KEYS; i++) {
		const struct conf_key *k = &action_keys[i];

		if ((k->flags & K_REQUIRED) && (k->types & bit) && !config_key_has(k, a)) {
			config_fail(ps, a->line, k->name, "required for type %s",
			            config_action_type_name(a->type));
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

		cfg->actions = xreallocarray(cfg->actions, cap, sizeof(*cfg->actions));
		ps->action_line = xreallocarray(ps->action_line, cap, sizeof(*ps->action_line));
		ps->actions_cap = cap;
	}
	a = &cfg->actions[cfg->nactions];
	memset(a, 0, sizeof(*a));
	memset(ps->action_line[cfg->nactions], 0, sizeof(ps->action_line[0]));
	cfg->nactions++; /* from here on config_free owns it */
	a->line = ps->lineno;
	a->name = xstrdup(name);
	for (size_t i = 0; i < N_ACTION_KEYS; i++) {
		if (action_keys[i].def != NULL &&
		    config_key_set(&ps->cx, &action_keys[i], a, "") < 0) {
			config_fail(ps, ps->lineno, action_keys[i].name, "bad default: %s",
			            ps->cx.reason);
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

static bool config_key_is_secret_file(const struct conf_key *k)
{
	return k->type == T_SECRETS_FILE || k->type == T_SECRET_FILE;
}

/* A *_file whose file CONFIG_NO_SECRETS leaves unopened. */
static bool secret_unread(const struct parser *ps, const struct conf_key *k)
{
	return ps->no_secrets && config_key_is_secret_file(k) &&
	       !(ps->audit_key && strcmp(k->section, "audit") == 0);
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
	if (secret_unread(ps, k))
		return; /* given (lines[i]) but not read */
	ps->cx.warning[0] = '\0';
	if (config_key_set(&ps->cx, k, base, value) < 0)
		config_fail(ps, ps->lineno, name, "%s", ps->cx.reason);
	else if (ps->cx.warning[0] != '\0')
		config_add_warning(ps, name, ps->cx.warning);
}

/* Set, or a *_file left unread by CONFIG_NO_SECRETS. */
static bool config_key_given(const struct parser *ps, size_t i)
{
	return config_key_has(&config_keys[i], ps->cfg) ||
	       (secret_unread(ps, &config_keys[i]) && ps->key_line[i]);
}

/* The line a key of the main table was set on; 0 when it was not. */
static int key_line(const struct parser *ps, const char *section, const char *name)
{
	return ps->key_line[find_key(config_keys, N_CONFIG_KEYS, section, name)];
}

/* An API key is configured, perhaps in a file left unread. */
static bool config_api_key_given(const struct parser *ps)
{
	int i = find_key(config_keys, N_CONFIG_KEYS, "gateway", "api_key_file");

	return ps->cfg->api_key != NULL || (i >= 0 && config_key_given(ps, (size_t)i));
}

/*
 * after = NAME names an action of this file, and following the names never
 * comes back to where it started.
 */
static void check_after(struct parser *ps)
{
	const struct config *cfg = ps->cfg;
	size_t key = (size_t)find_key(action_keys, N_ACTION_KEYS, NULL, "after");

	for (size_t i = 0; i < cfg->nactions && !ps->failed; i++) {
		const struct action_conf *a = &cfg->actions[i];
		const struct action_conf *p = a;
		int line = ps->action_line[i][key];

		if (a->after == NULL || a->after[0] == '\0')
			continue;
		if (config_action(cfg, a->after) == NULL) {
			config_fail(ps, line, "after", "no [action.%s]", a->after);
			return;
		}
		for (size_t n = 0; p != NULL && p->after != NULL && p->after[0] != '\0'; n++) {
			p = config_action(cfg, p->after);
			/* A walk into a cycle a is not on ends; an action of that cycle reports it.
			 */
			if (n > cfg->nactions)
				break;
			if (p == a) {
				config_fail(ps, line, "after", "a cycle: %s waits for itself",
				            a->name);
				return;
			}
		}
	}
}

/*
 * SPEC §3's defaults: webhook_secret_file = webhook-secret and api_key_file
 * = api-key, looked up like any relative name ($CREDENTIALS_DIRECTORY, then
 * the config's directory). Used when neither form of the key is given and
 * such a file is there; without one the key stays unset (the webhook
 * secret is then reported required).
 */
static void default_secret_files(struct parser *ps)
{
	static const struct {
		const char *section, *key, *alt, *file;
	} d[] = {
	    {"security", "webhook_secret_file", "webhook_secret", "webhook-secret"},
	    {"gateway", "api_key_file", "api_key", "api-key"},
	};

	for (size_t n = 0; n < sizeof(d) / sizeof(d[0]) && !ps->failed; n++) {
		int i = find_key(config_keys, N_CONFIG_KEYS, d[n].section, d[n].key);
		int j = find_key(config_keys, N_CONFIG_KEYS, d[n].section, d[n].alt);
		const struct conf_key *k;

		if (i < 0 || j < 0 || ps->key_line[i] || ps->key_line[j] ||
		    !config_secret_exists(&ps->cx, d[n].file))
			continue;
		k = &config_keys[i];
		/* Given, on the section's line (1 when the file has no such section). */
		ps->key_line[i] = ps->section_line[find_section(d[n].section)];
		if (ps->key_line[i] == 0)
			ps->key_line[i] = 1;
		if (secret_unread(ps, k))
			continue;
		ps->cx.warning[0] = '\0';
		if (config_key_set(&ps->cx, k, ps->cfg, d[n].file) < 0)
			config_fail(ps, ps->key_line[i], k->name, "%s (its default)",
			            ps->cx.reason);
		else if (ps->cx.warning[0] != '\0')
			config_add_warning(ps, k->name, ps->cx.warning);
	}
}

/* Whole-file checks, once every line is in. */
static void finish_config(struct parser *ps)
{
	struct config *cfg = ps->cfg;

	default_secret_files(ps);
	finish_action(ps);
	if (!ps->failed)
		check_after(ps);
	for (size_t i = 0; i < N_CONFIG_KEYS && !ps->failed; i++) {
		const struct conf_key *k = &config_keys[i];
		int x;

		if (!(k->flags & K_REQUIRED) || config_key_given(ps, i))
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
		int line = key_line(ps, "fulfillment", "backoff_max");

		if (line == 0)
			line = key_line(ps, "fulfillment", "backoff_initial");
		config_fail(ps, line, "backoff_max", "must be at least backoff_initial (%d)",
		            cfg->backoff_initial);
	}
	/* Nothing pushes pending, and every local pending invoice costs a check each pass. */
	if (!ps->failed && (cfg->reconciler_statuses & STATUS_MASK(STATUS_PENDING)))
		config_fail(ps, key_line(ps, "reconciler", "statuses"), "statuses",
		            "pending cannot be swept (use paid, expired, cancelled)");
	/* Held jobs would wait forever for a confirmation that cannot be asked. */
	if (!ps->failed && cfg->confirm_with_api && !config_api_key_given(ps))
		config_fail(ps, key_line(ps, "security", "confirm_with_api"), "confirm_with_api",
		            "needs a [gateway] api_key_file (or api_key)");
	/* A misspelt kind would silence that alert for good. */
	if (!ps->failed) {
		unsigned mask;
		char bad[64];

		if (alert_kinds_parse(cfg->alert_kinds, &mask, bad, sizeof(bad)) < 0)
			config_fail(ps, key_line(ps, "alert", "kinds"), "kinds",
			            "unknown kind '%s'", bad);
	}
	/* Checked here, not at the first alert: a wrong file would go unnoticed for weeks. */
	if (!ps->failed && cfg->alert_url_secret != NULL &&
	    strncmp(cfg->alert_url_secret, "http://", 7) != 0 &&
	    strncmp(cfg->alert_url_secret, "https://", 8) != 0)
		config_fail(ps, key_line(ps, "alert", "url_file"), "url_file",
		            "the file's first line must be an http:// or https:// URL");
	/* Anyone who reaches the status page can read orders and retry jobs (SPEC §8). */
	if (!ps->failed && cfg->admin_listen.text && !config_listen_local(&cfg->admin_listen) &&
	    !config_key_given(ps,
	                      (size_t)find_key(config_keys, N_CONFIG_KEYS, "admin", "token_file")))
		config_fail(ps, key_line(ps, "admin", "listen"), "listen",
		            "not loopback nor unix:, so [admin] token_file is required");
	/* An unsigned callback is only ever acted on with check-payment's answer. */
	if (!ps->failed && cfg->unsigned_confirm && !config_api_key_given(ps))
		config_fail(ps, key_line(ps, "security", "unsigned"), "unsigned",
		            "confirm needs a [gateway] api_key_file (or api_key)");
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

		ps->line = xreallocarray(ps->line, cap, 1);
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
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static struct config *config_load_data(const char *name, const char *data, size_t len,
                                       unsigned flags, char *err, size_t errlen)
{
	struct parser ps;
	struct config *cfg;
	char *dir;

	memset(&ps, 0, sizeof(ps));
	ps.no_secrets = (flags & CONFIG_NO_SECRETS) != 0;
	ps.audit_key = (flags & CONFIG_AUDIT_KEY) != 0;
	ps.name = name;
	ps.err = err;
	ps.errlen = errlen;
	ps.p = data;
	ps.end = data + len;
	ps.section = -1;
	ps.action = -1;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	cfg = xcalloc(1, sizeof(*cfg));
	ps.cfg = cfg;
	cfg->path = xstrdup(name);
	dir = dir_of(name);
	ps.cx.dir = dir;
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		if (config_keys[i].def != NULL &&
		    config_key_set(&ps.cx, &config_keys[i], cfg, "") < 0) {
			config_fail(&ps, 0, config_keys[i].name, "bad default: %s", ps.cx.reason);
			goto fail;
		}
	}

	config_parse_lines(&ps);
	if (!ps.failed)
		finish_config(&ps);
	cfg->secrets_from_credentials = ps.cx.from_credentials;
fail:
	if (ps.line != NULL)
		explicit_bzero(ps.line, ps.linecap); /* may hold an inline secret */
	free(ps.line);
	free(dir);
	free(ps.action_line);
	if (ps.failed) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                  size_t errlen)
{
	return config_load_data(name, data, len, 0, err, errlen);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	return config_load_flags(path, 0, err, errlen);
}

struct config *config_load_flags(const char *path, unsigned flags, char *err, size_t errlen)
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
	data = xmalloc(CONFIG_FILE_MAX + 1);
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
	cfg = config_load_data(path, data, used, flags, err, errlen);
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
		config_key_clear(&config_keys[i], cfg);
	for (size_t a = 0; a < cfg->nactions; a++) {
		for (size_t i = 0; i < N_ACTION_KEYS; i++)
			config_key_clear(&action_keys[i], &cfg->actions[a]);
		free(cfg->actions[a].name);
	}
	free(cfg->actions);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
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

char *config_actions_by_status(const struct config *cfg, const char *only)
{
	struct jsonw w;
	bool after = false;

	jsonw_begin(&w);
	for (enum pay_status st = STATUS_PENDING; st <= STATUS_CANCELLED; st++) {
		jsonw_begin_list(&w, event_status_name(st));
		for (size_t i = 0; i < cfg->nactions; i++) {
			const struct action_conf *a = &cfg->actions[i];

			if ((only == NULL || strcmp(a->name, only) == 0) &&
			    (a->on_mask & STATUS_MASK(st)))
				jsonw_cstr(&w, NULL, a->name);
		}
		jsonw_end_list(&w);
	}
	/* after = NAME: {"deliver_then": "deliver", ...}; never a status's name; absent when none.
	 */
	for (size_t i = 0; i < cfg->nactions; i++) {
		if (cfg->actions[i].after == NULL || cfg->actions[i].after[0] == '\0')
			continue;
		if (!after)
			jsonw_begin_object(&w, "after");
		after = true;
		jsonw_cstr(&w, cfg->actions[i].name, cfg->actions[i].after);
	}
	if (after)
		jsonw_end_object(&w);
	return jsonw_finish(&w);
}

int config_keep_fixed(struct config *next, const struct config *cur, char *changed, size_t len)
{
	int count = 0;
	size_t used = 0;

	if (changed != NULL && len > 0)
		changed[0] = '\0';
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		if (!(config_keys[i].flags & K_RESTART))
			continue;
		if (!config_key_keep(&config_keys[i], next, cur))
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
