/*
 * config.h: receiver.conf, read by our own line reader through one table of keys
 * (config.c). A load builds a fresh struct config; callers swap it in only
 * when the whole file was valid.
 */
#ifndef BAYARHOOK_CONFIG_H
#define BAYARHOOK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "cidr.h"

enum action_type {
	ACTION_EXEC,     /* fork/exec a command, no shell */
	ACTION_SQL,      /* one parameterised statement */
	ACTION_FORWARD,  /* POST the event JSON to a URL */
	ACTION_HTTP,     /* a templated request to any JSON API (SPEC §9) */
	ACTION_WA_STORE, /* complete or cancel bayar.gg's WA Store order of the invoice */
};

/* operation = complete | cancel (wa_store): the index of its word in the key's choices. */
enum { WA_STORE_COMPLETE, WA_STORE_CANCEL };

/* method = POST | PUT | PATCH (http): the index of its word in the key's choices. */
enum { HTTP_METHOD_POST, HTTP_METHOD_PUT, HTTP_METHOD_PATCH };

/* on_mismatch = retry | dead: the index of its word in the key's choices. */
enum { ON_MISMATCH_RETRY, ON_MISMATCH_DEAD };

struct action_conf {
	char *name; /* [action.NAME] */
	enum action_type type;
	unsigned on_mask; /* STATUS_MASK() bits of event.h */
	int timeout;      /* seconds, default 30 */
	int max_attempts; /* 0: use [fulfillment] max_attempts */
	/* exec */
	char *command;
	char *env;               /* comma list of the fields given as BAYAR_*; NULL: all */
	bool allow_leading_dash; /* a {field} may start an argument with '-' */
	/* sql */
	char *conninfo; /* NULL: [database] conninfo */
	char *statement;
	int expect_rows; /* 0 = any; default 1 */
	int on_mismatch; /* ON_MISMATCH_*: what a count other than expect_rows does */
	/* forward, http */
	char *url;     /* http: a template, {field} URL-encoded */
	char *ca_file; /* extra trusted CA certificates (PEM); NULL: the system store only */
	/* forward */
	bool sign_bayar; /* sign = bayar */
	char *secret;    /* secret_file/secret contents; NULL: current webhook secret */
	/* http */
	int method;     /* HTTP_METHOD_* */
	char *body;     /* a template, {field} JSON-escaped; NULL: the event JSON */
	char **headers; /* headers_file: its "Name: value" lines, in the secret store */
	size_t nheaders;
	/* wa_store */
	int operation; /* WA_STORE_* */
	bool notify;   /* the store sends the buyer a WhatsApp message */
	char *when;    /* conditions on event fields (when.h); NULL: always */
	char *after;   /* the action whose job must succeed first (same invoice); NULL: none */
	int line;      /* line of the section header, for messages */
};

/* listen = host:port or [v6]:port, split once at load; or unix:/path ([admin]). */
struct config_listen {
	char *text; /* as written, for messages; NULL: not set */
	char *host; /* without the brackets of an IPv6 address; NULL for unix: */
	int port;   /* 1..65535; 0 for unix: */
};

/* The socket path of a unix:/path listen, or NULL. */
static inline const char *config_listen_unix(const struct config_listen *l)
{
	return l->text != NULL && l->host == NULL ? l->text + 5 : NULL;
}
/* True for a unix: socket or a loopback host (127.0.0.0/8, ::1, localhost). */
bool config_listen_local(const struct config_listen *l);

struct config {
	char *path;

	/* [server] */
	struct config_listen listen;
	char *callback_path;
	long max_body_bytes;
	int request_timeout;
	int answer_timeout; /* a callback not durable by then is answered 503 (SPEC §12) */
	struct cidr_list trusted_proxies;
	struct cidr_list allow_from; /* empty: everyone */

	/* [security] */
	char **secrets; /* current first, then older ones */
	size_t nsecrets;
	int replay_window;
	bool confirm_with_api;
	/*
	 * unsigned = confirm (SPEC §7): a callback with no signature at all is
	 * audited "unsigned", answered 200, and only the gateway's answer acts.
	 */
	bool unsigned_confirm;

	/* [database] */
	char *conninfo;
	char *listen_conninfo; /* the job wake-up's LISTEN; NULL: conninfo */
	int pool_size;         /* serve's own connections, split by pool_plan() */

	/* [gateway] */
	char *gateway_base_url;
	char *api_key; /* NULL when no key is configured */
	int gateway_timeout;

	/* [reconciler] */
	bool reconciler_enabled;
	int reconciler_interval;
	int reconciler_lookback;
	int reconciler_min_age;
	int reconciler_max_rpm;
	unsigned reconciler_statuses; /* STATUS_MASK() bits list-payments is swept for */

	/* [fulfillment] */
	int max_attempts;
	int backoff_initial;
	int backoff_max;
	int concurrency;

	/* [alert] (SPEC §8; src/alert.c) */
	char *alert_command;       /* NULL: no command */
	char *alert_url;           /* url =; NULL: none */
	char *alert_url_secret;    /* url_file's first line (secret memory); NULL: none */
	char *alert_kinds;         /* NULL or empty: every kind */
	int alert_min_interval;    /* seconds between two alerts of one kind and subject */
	int alert_timeout;         /* seconds for one delivery (command or POST) */
	char *alert_telegram_chat; /* set: the POST is a Telegram sendMessage */
	int alert_db_down_after;   /* seconds unreachable before database_down */

	/* [audit] (SPEC §11) */
	int audit_retention; /* days; 0: keep forever (src/audit_keep.c, cli_retain.c) */
	/*
	 * [audit] (SPEC §11; src/audit_chain.c): key_file's lines (secret memory), current first,
	 * then older ones that `audit verify` still accepts for the lanes written under them.
	 * audit_nkeys 0: no chain.
	 */
	char **audit_keys;
	size_t audit_nkeys;
	int audit_checkpoint_interval; /* seconds between two logged checkpoints of the lanes */
	int audit_redact_after;        /* days; 0: never redact by age */
	/* [admin] (SPEC §8 status page; src/admin.c) */
	struct config_listen admin_listen; /* text NULL: no status page */
	char *admin_token;                 /* token_file's first line (secret memory); NULL: none */

	struct action_conf *actions;
	size_t nactions;

	/* "file:line: key: what" for each value accepted with a warning (SPEC §13). */
	char **warnings;
	size_t nwarnings;
	/* A *_file came from $CREDENTIALS_DIRECTORY: systemd fills it only at start. */
	bool secrets_from_credentials;
};

/*
 * Loads path. On error returns NULL and writes one line naming
 * file:line: key: reason into err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
/*
 * CONFIG_NO_SECRETS: the *_file keys count as given but their files are not
 * opened, and the secrets they would hold stay unset (nsecrets 0, api_key
 * NULL): for the commands that use no secret (SPEC §10). Inline secrets are
 * still read, being in the file anyway.
 */
enum {
	CONFIG_NO_SECRETS = 1,
	/* With CONFIG_NO_SECRETS: [audit] key_file is read all the same (audit verify, redact). */
	CONFIG_AUDIT_KEY = 2,
};
struct config *config_load_flags(const char *path, unsigned flags, char *err, size_t errlen);
/*
 * Same from memory (tests, fuzzing): name is used in messages and its
 * directory for relative *_file names.
 */
struct config *config_load_buffer(const char *name, const char *data, size_t len, char *err,
                                  size_t errlen);
void config_free(struct config *cfg);
/*
 * For SIGHUP: the keys the table marks not reloadable (listen, [database]
 * conninfo) are copied from cur into next. Returns how many of them
 * differed, and their names ("listen, conninfo") in changed.
 */
int config_keep_fixed(struct config *next, const struct config *cur, char *changed, size_t len);
/*
 * Splits a listen value: "[::1]:8080" -> "::1", 8080. Returns 0, or -1 when
 * it is not valid. A loaded config has it split already (struct config_listen).
 */
int config_split_listen(const char *listen, char *host, size_t hostlen, int *port)
    __attribute__((warn_unused_result));
/* Default path: $BAYARHOOK_CONFIG, else /etc/bayarhook/receiver.conf. */
const char *config_default_path(void);
/* The effective max_attempts of an action. */
int config_action_max_attempts(const struct config *cfg, const struct action_conf *a);
const struct action_conf *config_action(const struct config *cfg, const char *name);
/*
 * {"pending":["name",...],"paid":[...],...,"after":{"name":"first",...}}:
 * the actions each payment status triggers, as bayarhook.ingest() and
 * job_replay() take them (only the action named only when it is not
 * NULL), and each action's after = NAME. malloc'd, never NULL.
 */
char *config_actions_by_status(const struct config *cfg, const char *only);
/*
 * A secret's fingerprint: the first 8 hex digits of its SHA-256 (SPEC §7),
 * to tell which secret is active without showing it.
 */
void config_secret_fingerprint(const char *secret, char out[9]);
/* In the placeholder secrets scripts/run writes for development, so check-config can say so. */
#define CONFIG_PLACEHOLDER_MARK "put-the-real-one-here"
/*
 * The secrets of a loaded config (cfg->secrets[i], cfg->api_key, an
 * action's secret) live in a store outside the heap (config_secret.c):
 * whoever keeps one beyond the config's life takes a reference instead of
 * a copy, and drops it with config_secret_unref (the last one wipes it).
 */
char *config_secret_ref(const char *secret);
void config_secret_unref(char *secret);
/* "1a2b3c4d, 5e6f7a8b": the webhook secrets' fingerprints, current first. */
void config_secret_fingerprints(const struct config *cfg, char *buf, size_t len);
/* Prints a summary (no secrets) for check-config. */
void config_print_summary(const struct config *cfg, FILE *out);

#endif
