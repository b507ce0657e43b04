/*
 * config_table.h: what the config*.c files share and nobody else needs: the
 * rows of the key tables (config.c), the value types and the calls that
 * dispatch through their operations (config_types.c), and the secret-file
 * reader (config_secret.c). The rest of the program includes config.h.
 */
#ifndef BAYARHOOK_CONFIG_TABLE_H
#define BAYARHOOK_CONFIG_TABLE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

enum conf_type {
	T_STRING,       /* char *: any text */
	T_PATH,         /* char *: URL path, starts with '/' */
	T_INT,          /* int in [min, max]; durations and counts have min 1 */
	T_LONG,         /* long in [min, max] */
	T_BOOL,         /* bool: true/false yes/no on/off 1/0 */
	T_LISTEN,       /* struct config_listen: host:port or [v6]:port (K_UNIX: or unix:/path) */
	T_URL,          /* char *: http:// or https:// */
	T_CIDRS,        /* struct cidr_list */
	T_SECRETS_FILE, /* char ** at off, size_t at off_n: one secret per line */
	T_SECRETS,      /* same fields, one inline secret */
	T_SECRET_FILE,  /* char *: the first secret in a file */
	T_SECRET,       /* char *: inline secret */
	T_ACTION_TYPE,  /* enum action_type: exec | sql | forward | http | wa_store */
	T_STATUSES,     /* unsigned: STATUS_MASK() bits */
	T_SIGN,         /* bool: bayar | none */
	T_UNSIGNED,     /* bool: refuse (false) | confirm (true) */
	T_CHOICE,       /* int: the index of the value in the row's choices */
	T_NTYPES
};

enum {
	K_RESTART = 1u << 0,  /* not reloadable: SIGHUP keeps the running value */
	K_REQUIRED = 1u << 1, /* must have a value (unless its excl key has one) */
	K_NONEMPTY = 1u << 2, /* an empty value is an error, not "default" */
	K_NOSLASH = 1u << 3,  /* trailing '/' removed */
	K_REDACT = 1u << 4,   /* may hold a password: masked in the summary */
	K_HMAC = 1u << 5,     /* an HMAC key: CONFIG_SECRET_MIN bytes at least (SPEC §13) */
	K_UNIX = 1u << 6,     /* T_LISTEN: unix:/absolute/path is a value too */
};

#define TYPE_BIT(t) (1u << (t))

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
	const char *const *choices; /* T_CHOICE: the words, NULL-terminated */
};

/* config.c: the rows. */
/* Rows of the two tables (config_keys.c checks them at compile time). */
#define N_CONFIG_KEYS 44
#define N_ACTION_KEYS 23
extern const struct conf_key config_keys[];
extern const size_t config_nkeys;
extern const struct conf_key action_keys[];
extern const size_t action_nkeys;

/* What a value parser needs from the load, and where it leaves its reason. */
struct conf_ctx {
	const char *dir; /* the config file's directory: relative *_file names */
	char reason[512];
	char warning[512];     /* what a value parser found wrong but not fatal; "" if none */
	bool from_credentials; /* a *_file was read from $CREDENTIALS_DIRECTORY */
};

/* config_types.c: each call goes through the row of operations of k->type. */

/*
 * Sets one key from its text. An empty value means the default, except for
 * K_NONEMPTY keys. Returns 0, or -1 with cx->reason.
 */
int config_key_set(struct conf_ctx *cx, const struct conf_key *k, void *base, const char *value);
/* Whether a secret file of that relative name is there: $CREDENTIALS_DIRECTORY, then cx->dir. */
bool config_secret_exists(const struct conf_ctx *cx, const char *name);
/* Frees what the key's field owns and leaves it unset. */
void config_key_clear(const struct conf_key *k, void *base);
/* True when the field holds a value (for K_REQUIRED). */
bool config_key_has(const struct conf_key *k, const void *base);
/* Makes next's field a copy of cur's; returns whether they differed. */
bool config_key_keep(const struct conf_key *k, void *next, const void *cur);
/* The value as the summary shows it: no secrets, passwords masked. */
void config_key_print(FILE *out, const struct config *cfg, const struct conf_key *k,
                      const void *base);
const char *config_action_type_name(enum action_type t);
/* Fills cx->reason; returns -1. */
static inline int config_bad(struct conf_ctx *cx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int config_bad(struct conf_ctx *cx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cx->reason, sizeof(cx->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* config_secret.c */

/*
 * The non-blank lines of a *_file, blanks around each removed: an absolute
 * name as is, a relative one from $CREDENTIALS_DIRECTORY (systemd
 * LoadCredential=), else from cx->dir. Returns the count (at least 1), or -1
 * with the reason (the path, never the content) in cx->reason. Each line
 * obeys config_secret_check when k is K_HMAC; a file readable by group or
 * others is a warning.
 */
long config_secret_read(struct conf_ctx *cx, const struct conf_key *k, const char *name,
                        char ***out);
/*
 * The rules every secret value of a K_HMAC key obeys (SPEC §13): shorter
 * than CONFIG_SECRET_MIN bytes is an error (-1, cx->reason), shorter than
 * CONFIG_SECRET_GOOD a warning (cx->warning). which: "" for an inline
 * value, else "the file's line N: ". Never names the secret itself.
 */
int config_secret_check(struct conf_ctx *cx, const struct conf_key *k, const char *secret,
                        const char *which);
/* Adds a warning to cx->warning ("; " between several). */
void config_warn(struct conf_ctx *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A copy of n bytes of s (NUL added) in the secret store, one reference. */
char *config_secret_dup(const char *s, size_t n);
/* Drops a reference to a secret of the store; the last one wipes it (NULL is fine). */
void config_secret_wipe(char *s);
void config_secrets_wipe(char **v, size_t n);

#endif
