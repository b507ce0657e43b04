/*
 * config_keys.c: every key of receiver.conf as one row: section, name,
 * value type, default, bounds, and whether SIGHUP may change it. The
 * loader (config.c), the reload copy and check-config's summary
 * (config_print.c) all walk these two tables.
 */
#include <limits.h>
#include <stddef.h>

#include "config_table.h"
#include "pool_plan.h"

#define ALL_TYPES                                                                                  \
	(TYPE_BIT(ACTION_EXEC) | TYPE_BIT(ACTION_SQL) | TYPE_BIT(ACTION_FORWARD) |                 \
	 TYPE_BIT(ACTION_HTTP) | TYPE_BIT(ACTION_WA_STORE))

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
const struct conf_key config_keys[] = {
	{KEY("server", "listen", T_LISTEN, "127.0.0.1:8080", listen), .flags = K_RESTART},
	{KEY("server", "callback_path", T_PATH, "/callback", callback_path)},
	{KEY("server", "max_body_bytes", T_LONG, "65536", max_body_bytes), RANGE(1, 16777216)},
	{KEY("server", "request_timeout", T_INT, "10", request_timeout), RANGE(1, 3600)},
	{KEY("server", "answer_timeout", T_INT, "5", answer_timeout), RANGE(1, 300)},
	{KEY("server", "trusted_proxies", T_CIDRS, "127.0.0.1/32, ::1/128", trusted_proxies)},
	{KEY("server", "allow_from", T_CIDRS, "", allow_from), .unset = "everyone"},

	{KEY("security", "webhook_secret_file", T_SECRETS_FILE, NULL, secrets), .off_n = CFG(nsecrets),
	 .flags = K_REQUIRED | K_HMAC, .excl = "webhook_secret"},
	{KEY("security", "webhook_secret", T_SECRETS, NULL, secrets), .off_n = CFG(nsecrets),
	 .flags = K_REQUIRED | K_HMAC, .excl = "webhook_secret_file"},
	{KEY("security", "replay_window", T_INT, "300", replay_window), RANGE(1, 86400)},
	{KEY("security", "confirm_with_api", T_BOOL, "false", confirm_with_api)},
	{KEY("security", "unsigned", T_UNSIGNED, "refuse", unsigned_confirm)},

	{KEY("database", "conninfo", T_STRING, "postgresql:///bayarhook", conninfo),
	 .flags = K_RESTART | K_REDACT},
	{KEY("database", "listen_conninfo", T_STRING, NULL, listen_conninfo),
	 .flags = K_RESTART | K_REDACT, .unset = "[database] conninfo"},
	{KEY("database", "pool_size", T_INT, "8", pool_size), RANGE(POOL_SIZE_MIN, 1000),
	 .flags = K_RESTART},

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
	{KEY("reconciler", "statuses", T_STATUSES, "paid, expired, cancelled", reconciler_statuses)},

	{KEY("fulfillment", "max_attempts", T_INT, "10", max_attempts), RANGE(1, 1000)},
	{KEY("fulfillment", "backoff_initial", T_INT, "5", backoff_initial), RANGE(1, 86400)},
	{KEY("fulfillment", "backoff_max", T_INT, "3600", backoff_max), RANGE(1, 604800)},
	{KEY("fulfillment", "concurrency", T_INT, "4", concurrency), RANGE(1, 256)},

	{KEY("alert", "command", T_STRING, NULL, alert_command), .unset = "none"},
	{KEY("alert", "url", T_URL, NULL, alert_url), .flags = K_REDACT, .excl = "url_file",
	 .unset = "none"},
	{KEY("alert", "url_file", T_SECRET_FILE, NULL, alert_url_secret), .excl = "url"},
	{KEY("alert", "kinds", T_STRING, NULL, alert_kinds), .unset = "every kind"},
	{KEY("alert", "min_interval", T_INT, "300", alert_min_interval), RANGE(0, 604800)},
	{KEY("alert", "timeout", T_INT, "30", alert_timeout), RANGE(1, 3600)},
	{KEY("alert", "telegram_chat_id", T_STRING, NULL, alert_telegram_chat),
	 .unset = "none: the alert JSON is POSTed as is"},
	{KEY("alert", "database_down_after", T_INT, "60", alert_db_down_after), RANGE(1, 86400)},

	{KEY("admin", "listen", T_LISTEN, NULL, admin_listen), .flags = K_RESTART | K_UNIX,
	 .unset = "off"},
	{KEY("admin", "token_file", T_SECRET_FILE, NULL, admin_token), .flags = K_HMAC,
	 .unset = "none: only for a loopback or unix: listen"},
	/* days: whole months older are dropped (sql/functions/audit_partitions.sql) */
	{KEY("audit", "retention", T_INT, "0", audit_retention), RANGE(0, 36500)},
	{KEY("audit", "key_file", T_SECRETS_FILE, NULL, audit_keys), .off_n = CFG(audit_nkeys),
	 .flags = K_HMAC, .excl = "key", .unset = "none: no tamper-evident chain"},
	{KEY("audit", "key", T_SECRETS, NULL, audit_keys), .off_n = CFG(audit_nkeys),
	 .flags = K_HMAC, .excl = "key_file"},
	{KEY("audit", "checkpoint_interval", T_INT, "3600", audit_checkpoint_interval),
	 RANGE(1, 604800)},
	{KEY("audit", "redact_after", T_INT, "0", audit_redact_after), RANGE(0, 36500)},
};

#define EXEC TYPE_BIT(ACTION_EXEC)
#define SQL TYPE_BIT(ACTION_SQL)
#define FORWARD TYPE_BIT(ACTION_FORWARD)
#define HTTP TYPE_BIT(ACTION_HTTP)
#define WA_STORE TYPE_BIT(ACTION_WA_STORE)

/* Indexed by ON_MISMATCH_* (config.h). */
static const char *const on_mismatch_words[] = {"retry", "dead", NULL};
/* Indexed by HTTP_METHOD_* (config.h). */
static const char *const http_method_words[] = {"POST", "PUT", "PATCH", NULL};
/* Indexed by WA_STORE_* (config.h). */
static const char *const wa_store_words[] = {"complete", "cancel", NULL};

/* [action.NAME]: the last column says which types take the key. */
const struct conf_key action_keys[] = {
	{AKEY("type", T_ACTION_TYPE, NULL, type, ALL_TYPES), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("on", T_STATUSES, "paid", on_mask, ALL_TYPES)},
	{AKEY("timeout", T_INT, "30", timeout, ALL_TYPES), RANGE(1, 86400)},
	{AKEY("max_attempts", T_INT, NULL, max_attempts, ALL_TYPES), RANGE(1, 1000)}, /* NULL: inherit */
	{AKEY("when", T_STRING, NULL, when, ALL_TYPES), .unset = "always"},
	{AKEY("after", T_STRING, NULL, after, ALL_TYPES), .unset = "none"},
	{AKEY("command", T_STRING, NULL, command, EXEC), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("env", T_STRING, NULL, env, EXEC), .unset = "every field"},
	{AKEY("allow_leading_dash", T_BOOL, "false", allow_leading_dash, EXEC)},
	{AKEY("conninfo", T_STRING, NULL, conninfo, SQL), .flags = K_REDACT,
	 .unset = "[database] conninfo"},
	{AKEY("statement", T_STRING, NULL, statement, SQL), .flags = K_REQUIRED | K_NONEMPTY},
	{AKEY("expect_rows", T_INT, "1", expect_rows, SQL), RANGE(0, INT_MAX)},
	{AKEY("on_mismatch", T_CHOICE, "retry", on_mismatch, SQL), .choices = on_mismatch_words},
	{AKEY("url", T_URL, NULL, url, FORWARD | HTTP), .flags = K_REQUIRED | K_NONEMPTY | K_REDACT},
	{AKEY("ca_file", T_STRING, NULL, ca_file, FORWARD | HTTP), .unset = "the system store"},
	{AKEY("sign", T_SIGN, "bayar", sign_bayar, FORWARD)},
	{AKEY("secret_file", T_SECRET_FILE, NULL, secret, FORWARD), .flags = K_HMAC, .excl = "secret",
	 .unset = "the current webhook secret"},
	{AKEY("secret", T_SECRET, NULL, secret, FORWARD), .flags = K_HMAC, .excl = "secret_file"},
	{AKEY("method", T_CHOICE, "POST", method, HTTP), .choices = http_method_words},
	{AKEY("body", T_STRING, NULL, body, HTTP), .unset = "the event JSON"},
	{AKEY("headers_file", T_SECRETS_FILE, NULL, headers, HTTP), .off_n = ACT(nheaders),
	 .unset = "none"},
	{AKEY("operation", T_CHOICE, "complete", operation, WA_STORE), .choices = wa_store_words},
	{AKEY("notify", T_BOOL, "true", notify, WA_STORE)},
};
/* clang-format on */

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) == N_CONFIG_KEYS,
               "N_CONFIG_KEYS in config_table.h counts the rows of config_keys");
_Static_assert(sizeof(action_keys) / sizeof(action_keys[0]) == N_ACTION_KEYS,
               "N_ACTION_KEYS in config_table.h counts the rows of action_keys");
const size_t config_nkeys = N_CONFIG_KEYS;
const size_t action_nkeys = N_ACTION_KEYS;
