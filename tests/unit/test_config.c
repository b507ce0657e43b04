/*
 * test_config.c: receiver.conf parsing, table-driven in the way of
 * pgbouncer's test/hba_test.c. Fixtures are written into a mkdtemp
 * directory; "@" in an expected message stands for that directory.
 * Runs with the working directory tests/ (for ../receiver.conf.example).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "redact.h"
#include "event.h"

static char dir[PATH_MAX];

static void write_file(const char *name, const char *text)
{
	char path[PATH_MAX * 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* "@" -> the temporary directory. */
static void expand(const char *in, char *out, size_t len)
{
	size_t used = 0;

	for (; *in && used + 1 < len; in++) {
		if (*in == '@') {
			used += (size_t)snprintf(out + used, len - used, "%s", dir);
			if (used >= len)
				used = len - 1;
		} else {
			out[used++] = *in;
		}
	}
	out[used] = '\0';
}

static struct config *load_text(const char *text, char *err, size_t len)
{
	char path[PATH_MAX * 2];

	write_file("receiver.conf", text);
	snprintf(path, sizeof(path), "%s/receiver.conf", dir);
	return config_load(path, err, len);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bayarhook-test-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	unsetenv("CREDENTIALS_DIRECTORY");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unsetenv("CREDENTIALS_DIRECTORY");
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define SECRET "[security]\nwebhook_secret = whsec_test\n"

/* SPEC §7: unsigned = confirm, with the API key it needs. */
static void test_unsigned_confirm(void **state)
{
	char err[512];
	struct config *cfg;

	(void)state;
	cfg =
	    load_text(SECRET "unsigned = confirm\n[gateway]\napi_key = key-1\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_true(cfg->unsigned_confirm);
	config_free(cfg);
	cfg = load_text(SECRET "unsigned = refuse\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_false(cfg->unsigned_confirm);
	config_free(cfg);
}

static void test_defaults(void **state)
{
	char err[512];
	struct config *cfg;

	(void)state;
	cfg = load_text(SECRET, err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->listen.text, "127.0.0.1:8080");
	assert_string_equal(cfg->listen.host, "127.0.0.1");
	assert_int_equal(cfg->listen.port, 8080);
	assert_string_equal(cfg->callback_path, "/callback");
	assert_int_equal(cfg->max_body_bytes, 65536);
	assert_int_equal(cfg->request_timeout, 10);
	assert_int_equal(cfg->answer_timeout, 5);
	assert_int_equal(cfg->trusted_proxies.n, 2);
	assert_true(cidr_list_match(&cfg->trusted_proxies, "127.0.0.1"));
	assert_true(cidr_list_match(&cfg->trusted_proxies, "::1"));
	assert_false(cidr_list_match(&cfg->trusted_proxies, "127.0.0.2"));
	assert_int_equal(cfg->allow_from.n, 0);
	assert_int_equal(cfg->nsecrets, 1);
	assert_string_equal(cfg->secrets[0], "whsec_test");
	assert_int_equal(cfg->replay_window, 300);
	assert_false(cfg->confirm_with_api);
	assert_false(cfg->unsigned_confirm);
	assert_string_equal(cfg->conninfo, "postgresql:///bayarhook");
	assert_string_equal(cfg->gateway_base_url, "https://www.bayar.gg/api");
	assert_null(cfg->api_key);
	assert_int_equal(cfg->gateway_timeout, 10);
	assert_true(cfg->reconciler_enabled);
	assert_int_equal(cfg->reconciler_interval, 300);
	assert_int_equal(cfg->reconciler_lookback, 172800);
	assert_int_equal(cfg->reconciler_min_age, 120);
	assert_int_equal(cfg->reconciler_max_rpm, 30);
	assert_int_equal(cfg->reconciler_statuses, STATUS_MASK(STATUS_PAID) |
	                                               STATUS_MASK(STATUS_EXPIRED) |
	                                               STATUS_MASK(STATUS_CANCELLED));
	assert_int_equal(cfg->max_attempts, 10);
	assert_int_equal(cfg->backoff_initial, 5);
	assert_int_equal(cfg->backoff_max, 3600);
	assert_int_equal(cfg->concurrency, 4);
	assert_int_equal(cfg->audit_retention, 0);
	assert_int_equal(cfg->nactions, 0);
	config_free(cfg);
	cfg = load_text(SECRET "[audit]\nretention = 365\n", err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->audit_retention, 365);
	config_free(cfg);
	cfg = load_text(SECRET "[reconciler]\nstatuses = expired\n", err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->reconciler_statuses, STATUS_MASK(STATUS_EXPIRED));
	config_free(cfg);
}

static const char full_conf[] =
    "; a full configuration, every key away from its default\n"
    "[server]\n"
    "listen = [::1]:9000\n"
    "callback_path = /bayar/callback\n"
    "max_body_bytes = 1024\n"
    "request_timeout = 5\n"
    "trusted_proxies = 10.0.0.0/8, fd00::/8, 192.0.2.7\n"
    "allow_from = 203.0.113.0/24\n"
    "\n"
    "[security]\n"
    "webhook_secret_file = secrets/webhook\n"
    "replay_window = 60\n"
    "confirm_with_api = yes\n"
    "\n"
    "[database]\n"
    "conninfo = host=db dbname=shop user=hook password=hunter2\n"
    "\n"
    "[gateway]\n"
    "base_url = http://127.0.0.1:9999/api/\n"
    "api_key_file = /ABS/api-key\n"
    "timeout = 3\n"
    "\n"
    "[reconciler]\n"
    "enabled = off\n"
    "interval = 60\n"
    "lookback = 3600\n"
    "min_age = 30\n"
    "max_requests_per_minute = 10\n"
    "\n"
    "[fulfillment]\n"
    "max_attempts = 3\n"
    "backoff_initial = 2\n"
    "backoff_max = 20\n"
    "concurrency = 8\n"
    "\n"
    "[action.fulfil]\n"
    "type = exec\n"
    "on = paid, expired\n"
    "timeout = 7\n"
    "max_attempts = 2\n"
    "command = /usr/local/bin/fulfill --invoice {invoice_id}\n"
    "\n"
    "[action.mark_paid]\n"
    "type = sql\n"
    "conninfo = dbname=shop\n"
    "statement = UPDATE orders SET state = 'paid' WHERE invoice_id = :invoice_id\n"
    "expect_rows = 0\n"
    "\n"
    "[action.shop-php]\n"
    "type = forward\n"
    "on = pending,paid,expired,cancelled\n"
    "url = http://127.0.0.1:8000/callback.php\n"
    "sign = none\n"
    "secret = forward-secret\n";

static void test_full(void **state)
{
	char err[512], text[sizeof(full_conf) + PATH_MAX], path[PATH_MAX * 2], *p;
	const struct action_conf *a;
	struct config *cfg;

	(void)state;
	snprintf(path, sizeof(path), "%s/secrets", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file("secrets/webhook", "whsec_current\nwhsec_previous\n");
	write_file("api-key", "key-123\n");
	/* An absolute api_key_file. */
	p = strstr(full_conf, "/ABS/");
	snprintf(text, sizeof(text), "%.*s%s/%s", (int)(p - full_conf), full_conf, dir, p + 5);

	cfg = load_text(text, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->listen.text, "[::1]:9000");
	assert_string_equal(cfg->listen.host, "::1");
	assert_int_equal(cfg->listen.port, 9000);
	assert_string_equal(cfg->callback_path, "/bayar/callback");
	assert_int_equal(cfg->max_body_bytes, 1024);
	assert_int_equal(cfg->request_timeout, 5);
	assert_int_equal(cfg->trusted_proxies.n, 3);
	assert_true(cidr_list_match(&cfg->trusted_proxies, "10.1.2.3"));
	assert_true(cidr_list_match(&cfg->trusted_proxies, "fd12::1"));
	assert_true(cidr_list_match(&cfg->trusted_proxies, "192.0.2.7"));
	assert_false(cidr_list_match(&cfg->trusted_proxies, "192.0.2.8"));
	assert_int_equal(cfg->allow_from.n, 1);
	assert_int_equal(cfg->nsecrets, 2);
	assert_string_equal(cfg->secrets[0], "whsec_current");
	assert_string_equal(cfg->secrets[1], "whsec_previous");
	assert_int_equal(cfg->replay_window, 60);
	assert_true(cfg->confirm_with_api);
	assert_string_equal(cfg->conninfo, "host=db dbname=shop user=hook password=hunter2");
	assert_string_equal(cfg->gateway_base_url, "http://127.0.0.1:9999/api");
	assert_string_equal(cfg->api_key, "key-123");
	assert_int_equal(cfg->gateway_timeout, 3);
	assert_false(cfg->reconciler_enabled);
	assert_int_equal(cfg->reconciler_interval, 60);
	assert_int_equal(cfg->reconciler_lookback, 3600);
	assert_int_equal(cfg->reconciler_min_age, 30);
	assert_int_equal(cfg->reconciler_max_rpm, 10);
	assert_int_equal(cfg->max_attempts, 3);
	assert_int_equal(cfg->backoff_initial, 2);
	assert_int_equal(cfg->backoff_max, 20);
	assert_int_equal(cfg->concurrency, 8);
	assert_int_equal(cfg->nactions, 3);

	a = config_action(cfg, "fulfil");
	assert_non_null(a);
	assert_int_equal(a->type, ACTION_EXEC);
	assert_int_equal(a->on_mask, STATUS_MASK(STATUS_PAID) | STATUS_MASK(STATUS_EXPIRED));
	assert_int_equal(a->timeout, 7);
	assert_int_equal(a->max_attempts, 2);
	assert_int_equal(config_action_max_attempts(cfg, a), 2);
	assert_string_equal(a->command, "/usr/local/bin/fulfill --invoice {invoice_id}");
	assert_int_equal(a->line, 36);

	a = config_action(cfg, "mark_paid");
	assert_non_null(a);
	assert_int_equal(a->type, ACTION_SQL);
	assert_int_equal(a->on_mask, STATUS_MASK(STATUS_PAID));
	assert_int_equal(a->timeout, 30);
	assert_int_equal(a->max_attempts, 0);
	assert_int_equal(config_action_max_attempts(cfg, a), 3);
	assert_string_equal(a->conninfo, "dbname=shop");
	assert_string_equal(a->statement,
	                    "UPDATE orders SET state = 'paid' WHERE invoice_id = :invoice_id");
	assert_int_equal(a->expect_rows, 0);
	assert_null(a->command);

	a = config_action(cfg, "shop-php");
	assert_non_null(a);
	assert_int_equal(a->type, ACTION_FORWARD);
	assert_int_equal(a->on_mask, STATUS_MASK(STATUS_PENDING) | STATUS_MASK(STATUS_PAID) |
	                                 STATUS_MASK(STATUS_EXPIRED) |
	                                 STATUS_MASK(STATUS_CANCELLED));
	assert_string_equal(a->url, "http://127.0.0.1:8000/callback.php");
	assert_false(a->sign_bayar);
	assert_string_equal(a->secret, "forward-secret");

	assert_null(config_action(cfg, "nope"));
	config_free(cfg);
}

static void test_action_defaults(void **state)
{
	char err[512];
	struct config *cfg;
	const struct action_conf *a;

	(void)state;
	cfg = load_text(SECRET "[action.f]\ntype = forward\nurl = https://shop.example/cb\n"
	                       "[action.s]\ntype = sql\nstatement = SELECT 1\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	a = config_action(cfg, "f");
	assert_int_equal(a->on_mask, STATUS_MASK(STATUS_PAID));
	assert_int_equal(a->timeout, 30);
	assert_true(a->sign_bayar);
	assert_null(a->secret);
	assert_int_equal(config_action_max_attempts(cfg, a), 10);
	a = config_action(cfg, "s");
	assert_int_equal(a->expect_rows, 1);
	assert_null(a->conninfo);
	config_free(cfg);
}

struct error_case {
	const char *name;
	const char *text;
	const char *expect; /* "@" is the test directory */
};

static const struct error_case error_cases[] = {
    {"unknown key", "[server]\nlistn = 1\n", "@/receiver.conf:2: listn: unknown key"},
    {"unknown key, odd characters", "[server]\nlist-en = 1\n",
     "@/receiver.conf:2: list-en: unknown key"},
    {"key of another section", SECRET "replay_window = 1\n[server]\nreplay_window = 2\n",
     "@/receiver.conf:5: replay_window: unknown key"},
    {"unknown section", SECRET "[srever]\nlisten = 1\n",
     "@/receiver.conf:3: [srever]: unknown section"},
    {"bare [action]", "[action]\n", "@/receiver.conf:1: [action]: unknown section"},
    {"key outside a section", "listen = 127.0.0.1:1\n",
     "@/receiver.conf:1: listen: key outside of any [section]"},
    {"no equals sign", "[server]\nlisten\n", "@/receiver.conf:2: listen: expected 'key = value'"},
    {"no key", "[server]\n= 5\n", "@/receiver.conf:2: expected a key before '='"},
    {"missing ]", "[server\n", "@/receiver.conf:1: [server: missing ']'"},
    {"text after ]", "[server] x\n", "@/receiver.conf:1: [server]: unexpected text after ']'"},
    {"control character", "[server]\nlisten = a\x01\n",
     "@/receiver.conf:2: control character (0x01) in line"},
    {"bad int", SECRET "replay_window = 5m\n",
     "@/receiver.conf:3: replay_window: must be a whole number"},
    {"negative int", SECRET "replay_window = -5\n",
     "@/receiver.conf:3: replay_window: must be between 1 and 86400"},
    {"zero duration", SECRET "replay_window = 0\n",
     "@/receiver.conf:3: replay_window: must be between 1 and 86400"},
    {"out of range", SECRET "replay_window = 86401\n",
     "@/receiver.conf:3: replay_window: must be between 1 and 86400"},
    {"overflow", SECRET "replay_window = 99999999999999999999999\n",
     "@/receiver.conf:3: replay_window: must be between 1 and 86400"},
    {"body too large", "[server]\nmax_body_bytes = 16777217\n",
     "@/receiver.conf:2: max_body_bytes: must be between 1 and 16777216"},
    {"zero count", "[fulfillment]\nconcurrency = 0\n",
     "@/receiver.conf:2: concurrency: must be between 1 and 256"},
    {"negative retention", "[audit]\nretention = -1\n",
     "@/receiver.conf:2: retention: must be between 0 and 36500"},
    {"bad bool", SECRET "confirm_with_api = maybe\n",
     "@/receiver.conf:3: confirm_with_api: must be true or false (also yes/no, on/off, 1/0)"},
    {"bad cidr prefix", "[server]\ntrusted_proxies = 127.0.0.1/32, 10.0.0.0/33\n",
     "@/receiver.conf:2: trusted_proxies: 10.0.0.0/33: prefix must be between 0 and 32"},
    {"bad cidr address", "[server]\nallow_from = 10.0.0.256\n",
     "@/receiver.conf:2: allow_from: 10.0.0.256: not an IPv4 or IPv6 address"},
    {"empty cidr entry", "[server]\nallow_from = 10.0.0.1,\n",
     "@/receiver.conf:2: allow_from: empty entry in list"},
    {"bad listen", "[server]\nlisten = ::1:8080\n",
     "@/receiver.conf:2: listen: must be host:port or [IPv6]:port, e.g. 127.0.0.1:8080"},
    {"bad port", "[server]\nlisten = 127.0.0.1:65536\n",
     "@/receiver.conf:2: listen: must be host:port or [IPv6]:port, e.g. 127.0.0.1:8080"},
    {"unix socket for callbacks", "[server]\nlisten = unix:/run/b.sock\n",
     "@/receiver.conf:2: listen: must be host:port or [IPv6]:port, e.g. 127.0.0.1:8080"},
    {"admin unix socket, relative", "[admin]\nlisten = unix:b.sock\n",
     "@/receiver.conf:2: listen: unix: needs an absolute path of at most 107 bytes"},
    {"admin listen", "[admin]\nlisten = 8081\n",
     "@/receiver.conf:2: listen: must be host:port, [IPv6]:port or unix:/path, e.g. "
     "127.0.0.1:8081"},
    {"admin on every address without a token", SECRET "[admin]\nlisten = 0.0.0.0:8081\n",
     "@/receiver.conf:4: listen: not loopback nor unix:, so [admin] token_file is required"},
    {"admin on a v6 address without a token", SECRET "[admin]\n\nlisten = [::2]:8081\n",
     "@/receiver.conf:5: listen: not loopback nor unix:, so [admin] token_file is required"},
    {"admin token too short", SECRET "[admin]\nlisten = 0.0.0.0:8081\ntoken_file = short\n",
     "@/receiver.conf:5: token_file: @/short: secret 1: a secret of 5 byte(s); at least 8 are "
     "needed (16 or more advised)"},
    {"callback_path without /", "[server]\ncallback_path = callback\n",
     "@/receiver.conf:2: callback_path: must start with '/'"},
    {"bad base_url", "[gateway]\nbase_url = ftp://www.bayar.gg/api\n",
     "@/receiver.conf:2: base_url: must start with http:// or https://"},
    {"base_url without host", "[gateway]\nbase_url = https:///api\n",
     "@/receiver.conf:2: base_url: has no host"},
    {"missing secret", "[security]\nreplay_window = 60\n",
     "@/receiver.conf:1: webhook_secret_file: required (or webhook_secret)"},
    {"missing secret, no section", "[server]\n",
     "@/receiver.conf:0: webhook_secret_file: required (or webhook_secret)"},
    {"secret inline and file",
     "[security]\nwebhook_secret = whsec_long_enough\nwebhook_secret_file = s\n",
     "@/receiver.conf:3: webhook_secret_file: conflicts with webhook_secret on line 2"},
    {"secret file missing", "[security]\nwebhook_secret_file = nope\n",
     "@/receiver.conf:2: webhook_secret_file: cannot open @/nope: No such file or directory"},
    {"secret file empty", "[security]\nwebhook_secret_file = empty\n",
     "@/receiver.conf:2: webhook_secret_file: @/empty: holds no secret"},
    {"secret file is a directory", "[security]\nwebhook_secret_file = adir\n",
     "@/receiver.conf:2: webhook_secret_file: @/adir: not a regular file"},
    {"api key file missing", SECRET "[gateway]\napi_key_file = /nonexistent/api-key\n",
     "@/receiver.conf:4: api_key_file: cannot open /nonexistent/api-key: No such file or "
     "directory"},
    {"backoff_max below backoff_initial",
     SECRET "[fulfillment]\nbackoff_max = 30\nbackoff_initial = 60\n",
     "@/receiver.conf:4: backoff_max: must be at least backoff_initial (60)"},
    {"backoff_initial above default backoff_max", SECRET "[fulfillment]\nbackoff_initial = 7200\n",
     "@/receiver.conf:4: backoff_max: must be at least backoff_initial (7200)"},
    {"confirm_with_api without an API key", SECRET "confirm_with_api = true\n",
     "@/receiver.conf:3: confirm_with_api: needs a [gateway] api_key_file (or api_key)"},
    {"unsigned = confirm without an API key", SECRET "unsigned = confirm\n",
     "@/receiver.conf:3: unsigned: confirm needs a [gateway] api_key_file (or api_key)"},
    {"bad unsigned", SECRET "unsigned = accept\n",
     "@/receiver.conf:3: unsigned: must be refuse or confirm"},
    {"'#' without a blank is no comment", SECRET "replay_window = 60# one minute\n",
     "@/receiver.conf:3: replay_window: must be a whole number"},
    {"duplicate key", "[server]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
     "@/receiver.conf:3: listen: duplicate key (first on line 2)"},
    {"duplicate section", SECRET "[server]\n[security]\n",
     "@/receiver.conf:4: [security]: duplicate section (first on line 1)"},
    {"bad action type", SECRET "[action.a]\ntype = shell\n",
     "@/receiver.conf:4: type: must be exec, sql, forward, http or wa_store"},
    {"missing action type", SECRET "[action.a]\non = paid\n",
     "@/receiver.conf:3: type: required (exec, sql, forward, http or wa_store)"},
    {"missing action type, next section", SECRET "[action.a]\n[server]\n",
     "@/receiver.conf:3: type: required (exec, sql, forward, http or wa_store)"},
    {"missing command", SECRET "[action.a]\ntype = exec\n",
     "@/receiver.conf:3: command: required for type exec"},
    {"empty command", SECRET "[action.a]\ntype = exec\ncommand =\n",
     "@/receiver.conf:5: command: must not be empty"},
    {"missing statement", SECRET "[action.a]\ntype = sql\n",
     "@/receiver.conf:3: statement: required for type sql"},
    {"missing url", SECRET "[action.a]\ntype = forward\n",
     "@/receiver.conf:3: url: required for type forward"},
    {"key not valid for type",
     SECRET "[action.a]\ntype = sql\nstatement = SELECT 1\ncommand = /bin/true\n",
     "@/receiver.conf:6: command: not valid for type sql"},
    {"key not valid for type, before type",
     SECRET "[action.a]\nurl = http://x/\nsign = none\ntype = exec\ncommand = /bin/true\n",
     "@/receiver.conf:4: url: not valid for type exec"},
    {"unknown action key", SECRET "[action.a]\ntype = exec\ncommand = x\nshell = yes\n",
     "@/receiver.conf:6: shell: unknown key"},
    {"bad action name", SECRET "[action.bad name]\ntype = exec\n",
     "@/receiver.conf:3: [action.bad name]: action name must be 1 to 64 characters from A-Z "
     "a-z 0-9 _ -"},
    {"empty action name", SECRET "[action.]\n",
     "@/receiver.conf:3: [action.]: action name must be 1 to 64 characters from A-Z a-z 0-9 _ "
     "-"},
    {"duplicate action",
     SECRET "[action.a]\ntype = exec\ncommand = x\n[action.a]\ntype = exec\ncommand = y\n",
     "@/receiver.conf:6: [action.a]: duplicate section (first on line 3)"},
    {"duplicate action key", SECRET "[action.a]\ntype = exec\ntype = sql\n",
     "@/receiver.conf:5: type: duplicate key (first on line 4)"},
    {"unknown status", SECRET "[action.a]\ntype = exec\ncommand = x\non = paid, refunded\n",
     "@/receiver.conf:6: on: unknown status 'refunded' (use pending, paid, expired, "
     "cancelled)"},
    {"empty status", SECRET "[action.a]\ntype = exec\ncommand = x\non = paid,,expired\n",
     "@/receiver.conf:6: on: empty entry in list"},
    {"negative expect_rows", SECRET "[action.a]\ntype = sql\nstatement = x\nexpect_rows = -1\n",
     "@/receiver.conf:6: expect_rows: must be at least 0"},
    {"bad sign", SECRET "[action.a]\ntype = forward\nurl = https://x/\nsign = hmac\n",
     "@/receiver.conf:6: sign: must be bayar or none"},
    {"bad forward url", SECRET "[action.a]\ntype = forward\nurl = shop.example/cb\n",
     "@/receiver.conf:5: url: must start with http:// or https://"},
    {"action max_attempts zero", SECRET "[action.a]\ntype = exec\ncommand = x\nmax_attempts = 0\n",
     "@/receiver.conf:6: max_attempts: must be between 1 and 1000"},
    {"sweep pending", SECRET "[reconciler]\nstatuses = paid, pending\n",
     "@/receiver.conf:4: statuses: pending cannot be swept (use paid, expired, cancelled)"},
    {"sweep unknown status", SECRET "[reconciler]\nstatuses = paid, refunded\n",
     "@/receiver.conf:4: statuses: unknown status 'refunded' (use pending, paid, expired, "
     "cancelled)"},
};

static void test_errors(void **state)
{
	char err[1024], expect[PATH_MAX * 3], path[PATH_MAX * 2];
	size_t failures = 0;

	(void)state;
	write_file("empty", "\n  \n\r\n");
	write_file("short", "short\n");
	snprintf(path, sizeof(path), "%s/adir", dir);
	assert_int_equal(mkdir(path, 0700), 0);

	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		struct config *cfg;

		expand(c->expect, expect, sizeof(expect));
		err[0] = '\0';
		cfg = load_text(c->text, err, sizeof(err));
		if (cfg != NULL) {
			print_error("%s: loaded, expected: %s\n", c->name, expect);
			config_free(cfg);
			failures++;
		} else if (strcmp(err, expect) != 0) {
			print_error("%s:\n   got: %s\nexpect: %s\n", c->name, err, expect);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void test_missing_file(void **state)
{
	char err[512], path[PATH_MAX * 2], expect[PATH_MAX * 3];

	(void)state;
	snprintf(path, sizeof(path), "%s/none.conf", dir);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(expect, sizeof(expect), "%s: No such file or directory", path);
	assert_string_equal(err, expect);
}

/* Rotation: current first, blank lines, blanks and CR around a secret ignored. */
static void test_secret_rotation(void **state)
{
	char err[512];
	struct config *cfg;

	(void)state;
	write_file("webhook-secret", "\n  whsec_new \r\n\n\twhsec_old\r\n\n");
	cfg = load_text("[security]\nwebhook_secret_file = webhook-secret\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->nsecrets, 2);
	assert_string_equal(cfg->secrets[0], "whsec_new");
	assert_string_equal(cfg->secrets[1], "whsec_old");
	config_free(cfg);

	/* A single-secret key takes the current one, so the same file may serve. */
	cfg = load_text("[security]\nwebhook_secret_file = webhook-secret\n"
	                "[action.fwd]\ntype = forward\nurl = http://127.0.0.1/\n"
	                "secret_file = webhook-secret\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->actions[0].secret, "whsec_new");
	config_free(cfg);
}

static void test_credentials_directory(void **state)
{
	char err[512], creds[PATH_MAX * 2];
	struct config *cfg;

	(void)state;
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	assert_int_equal(mkdir(creds, 0700), 0);
	write_file("creds/webhook-secret", "whsec_from_creds\n");
	write_file("creds/api-key", "api_from_creds");
	write_file("webhook-secret", "whsec_beside_config\n");
	write_file("api-key-only-here", "api_beside_config\n");
	setenv("CREDENTIALS_DIRECTORY", creds, 1);

	/* $CREDENTIALS_DIRECTORY wins over the config's directory... */
	cfg = load_text("[security]\nwebhook_secret_file = webhook-secret\n"
	                "[gateway]\napi_key_file = api-key\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->secrets[0], "whsec_from_creds");
	assert_string_equal(cfg->api_key, "api_from_creds");
	config_free(cfg);

	/* ...and a name it lacks is looked up beside the config. */
	cfg = load_text("[security]\nwebhook_secret_file = webhook-secret\n"
	                "[gateway]\napi_key_file = api-key-only-here\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->api_key, "api_beside_config");
	config_free(cfg);

	/* Neither: the message says both places were tried. */
	cfg = load_text("[security]\nwebhook_secret_file = missing\n", err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "webhook_secret_file: cannot open "));
	assert_non_null(strstr(err, "/missing (not in $CREDENTIALS_DIRECTORY either): No such"));
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_comments_and_blanks(void **state)
{
	char err[512];
	struct config *cfg;
	static const char text[] =
	    "\xEF\xBB\xBF; leading comment\r\n"
	    "# hash comment\r\n"
	    "[server]   ; section comment\r\n"
	    "  listen = 127.0.0.1:8081   ; ignored when systemd passes a socket\r\n"
	    "callback_path = /cb\r\n"
	    "allow_from =                     ; optional\r\n"
	    "\t request_timeout=7 # seconds\r\n"
	    "[security]\r\n"
	    "webhook_secret = whsec_x_012345678   # hash comment after blank\r\n"
	    "[database]\r\n"
	    "conninfo = dbname=a#not-a-comment;nor-this\r\n"
	    "[action.a]\r\n"
	    "type = sql\r\n"
	    "statement = UPDATE t SET a = 1 WHERE b = ';';  ; the last one\r\n";

	(void)state;
	cfg = load_text(text, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->listen.text, "127.0.0.1:8081");
	assert_string_equal(cfg->callback_path, "/cb");
	assert_string_equal(cfg->conninfo, "dbname=a#not-a-comment;nor-this");
	assert_int_equal(cfg->allow_from.n, 0);
	assert_int_equal(cfg->request_timeout, 7);
	assert_string_equal(cfg->secrets[0], "whsec_x_012345678");
	assert_string_equal(cfg->actions[0].statement, "UPDATE t SET a = 1 WHERE b = ';';");
	config_free(cfg);
}

/* Empty values mean the default; indented lines are keys, not continuations. */
static void test_empty_means_default(void **state)
{
	char err[512];
	struct config *cfg;

	(void)state;
	cfg = load_text("[server]\nlisten =\n    callback_path = /x\ntrusted_proxies =\n" SECRET
	                "[action.a]\ntype = exec\ncommand = x\nmax_attempts =\non =\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->listen.text, "127.0.0.1:8080");
	assert_string_equal(cfg->callback_path, "/x");
	assert_int_equal(cfg->trusted_proxies.n, 2);
	assert_int_equal(cfg->actions[0].max_attempts, 0);
	assert_int_equal(cfg->actions[0].on_mask, STATUS_MASK(STATUS_PAID));
	config_free(cfg);
}

/* Values far longer than a line buffer of 200 bytes arrive whole. */
static void test_long_values(void **state)
{
	char err[512], text[20000], stmt[12000];
	struct config *cfg;

	(void)state;
	for (size_t len = 150; len < sizeof(stmt); len = len * 3 / 2 + 1) {
		memset(stmt, 'x', len);
		memcpy(stmt, "SELECT ", 7);
		stmt[len] = '\0';
		snprintf(text, sizeof(text), SECRET "[action.a]\ntype = sql\nstatement = %s\n",
		         stmt);
		cfg = load_text(text, err, sizeof(err));
		if (cfg == NULL)
			fail_msg("%zu: %s", len, err);
		assert_string_equal(cfg->actions[0].statement, stmt);
		config_free(cfg);
	}
}

static void test_example(void **state)
{
	char err[512], creds[PATH_MAX * 2], min[PATH_MAX * 2];
	struct config *cfg, *def;

	(void)state;
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	assert_int_equal(mkdir(creds, 0700), 0);
	write_file("creds/webhook-secret", "whsec_example\n");
	write_file("creds/api-key", "api-example\n");
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	cfg = config_load("../receiver.conf.example", err, sizeof(err));
	unsetenv("CREDENTIALS_DIRECTORY");
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->secrets[0], "whsec_example");
	assert_string_equal(cfg->api_key, "api-example");

	/* The example shows the defaults: it loads like an empty file would. */
	snprintf(min, sizeof(min), SECRET);
	def = load_text(min, err, sizeof(err));
	assert_non_null(def);
	assert_string_equal(cfg->listen.text, def->listen.text);
	assert_string_equal(cfg->callback_path, def->callback_path);
	assert_int_equal(cfg->max_body_bytes, def->max_body_bytes);
	assert_int_equal(cfg->request_timeout, def->request_timeout);
	assert_int_equal(cfg->trusted_proxies.n, def->trusted_proxies.n);
	assert_memory_equal(cfg->trusted_proxies.v, def->trusted_proxies.v,
	                    def->trusted_proxies.n * sizeof(struct cidr));
	assert_int_equal(cfg->allow_from.n, def->allow_from.n);
	assert_int_equal(cfg->replay_window, def->replay_window);
	assert_int_equal(cfg->confirm_with_api, def->confirm_with_api);
	assert_string_equal(cfg->conninfo, def->conninfo);
	assert_string_equal(cfg->gateway_base_url, def->gateway_base_url);
	assert_int_equal(cfg->gateway_timeout, def->gateway_timeout);
	assert_int_equal(cfg->reconciler_enabled, def->reconciler_enabled);
	assert_int_equal(cfg->reconciler_interval, def->reconciler_interval);
	assert_int_equal(cfg->reconciler_lookback, def->reconciler_lookback);
	assert_int_equal(cfg->reconciler_min_age, def->reconciler_min_age);
	assert_int_equal(cfg->reconciler_max_rpm, def->reconciler_max_rpm);
	assert_int_equal(cfg->max_attempts, def->max_attempts);
	assert_int_equal(cfg->backoff_initial, def->backoff_initial);
	assert_int_equal(cfg->backoff_max, def->backoff_max);
	assert_int_equal(cfg->concurrency, def->concurrency);
	assert_int_equal(cfg->audit_retention, def->audit_retention);
	assert_int_equal(cfg->nactions, 0);
	config_free(def);
	config_free(cfg);
}

/* Every key is documented in the example and in receiver.conf(5). */
static void test_docs_name_every_key(void **state)
{
	static const char *const keys[] = {
	    "listen",
	    "callback_path",
	    "max_body_bytes",
	    "request_timeout",
	    "answer_timeout",
	    "trusted_proxies",
	    "allow_from",
	    "webhook_secret_file",
	    "webhook_secret",
	    "replay_window",
	    "confirm_with_api",
	    "conninfo",
	    "base_url",
	    "api_key_file",
	    "api_key",
	    "timeout",
	    "enabled",
	    "interval",
	    "lookback",
	    "min_age",
	    "max_requests_per_minute",
	    "max_attempts",
	    "backoff_initial",
	    "backoff_max",
	    "concurrency",
	    "retention",
	    "type",
	    "on",
	    "command",
	    "statement",
	    "expect_rows",
	    "on_mismatch",
	    "url",
	    "sign",
	    "secret_file",
	    "secret",
	};
	static const char *const files[] = {"../receiver.conf.example", "../man/receiver.conf.5"};

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		char *text = NULL;
		size_t cap = 0;
		ssize_t n;

		assert_non_null(fp);
		n = getdelim(&text, &cap, '\0', fp);
		assert_true(n > 0);
		fclose(fp);
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			char pat[64];

			/* "key =" in the example, ".B key" or "key\\fR" style in the man page. */
			snprintf(pat, sizeof(pat), f == 0 ? "%s =" : "B %s", keys[k]);
			if (strstr(text, pat) == NULL)
				fail_msg("%s does not document %s", files[f], keys[k]);
		}
		free(text);
	}
}

static void test_summary(void **state)
{
	char err[512], *out = NULL;
	size_t outlen = 0;
	struct config *cfg;
	FILE *f;

	(void)state;
	write_file("ws", "whsec_SECRET_ONE\nwhsec_SECRET_TWO\n");
	cfg = load_text("[security]\nwebhook_secret_file = ws\n"
	                "[database]\nconninfo = host=db password = 'p w\\'d' user=u\n"
	                "[gateway]\napi_key = API_SECRET\n"
	                "[action.fwd]\ntype = forward\nurl = https://u:URLPASS@shop/cb\n"
	                "on = cancelled, paid\nsecret = FWD_SECRET\n"
	                "[action.run]\ntype = exec\ncommand = /bin/true\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	config_print_summary(cfg, f);
	fclose(f);
	assert_null(strstr(out, "SECRET"));
	assert_null(strstr(out, "URLPASS"));
	assert_null(strstr(out, "p w"));
	assert_non_null(strstr(out, "listen = 127.0.0.1:8080\n"));
	assert_non_null(strstr(out, "callback_path = /callback\n"));
	assert_non_null(strstr(out, "webhook_secret = (2 secrets, current first)\n"));
	assert_non_null(strstr(out, "conninfo = host=db password = *** user=u\n"));
	/* Which key, never the key: the first 8 hex digits of its SHA-256. */
	assert_non_null(strstr(out, "api_key = (set, fingerprint 0d66f4f9)\n"));
	assert_non_null(strstr(out, "[action.fwd]\ntype = forward\non = paid, cancelled\n"));
	assert_non_null(strstr(out, "url = https://u:***@shop/cb\n"));
	assert_non_null(strstr(out, "[action.run]\ntype = exec\n"));
	assert_non_null(strstr(out, "max_attempts = 10 (from [fulfillment])\n"));
	free(out);
	config_free(cfg);
}

static void test_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"postgresql:///bayarhook", "postgresql:///bayarhook"},
	    {"host=db password=secret user=x", "host=db password=*** user=x"},
	    {"password = 'a b\\' c' dbname=x", "password = *** dbname=x"},
	    {"PASSWORD=x", "PASSWORD=***"},
	    {"sslpassword=x host=y", "sslpassword=*** host=y"},
	    {"postgresql://user:pw@db:5432/x", "postgresql://user:***@db:5432/x"},
	    {"postgresql://user@db/x?password=pw&sslmode=require",
	     "postgresql://user@db/x?password=***&sslmode=require"},
	    {"https://a:b@c/d@e", "https://a:***@c/d@e"},
	    {"user=password", "user=password"},
	};
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		redact_passwords(cases[i].in, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
	redact_passwords("password=abcdef", buf, 12);
	assert_string_equal(buf, "password=**");
}

static void test_split_listen(void **state)
{
	char host[64];
	int port = 0;

	(void)state;
	assert_int_equal(config_split_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_int_equal(config_split_listen("[::1]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 1);
	assert_int_equal(config_split_listen("localhost:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(config_split_listen("localhost:0", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen(":80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[1.2.3.4]:80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[::1]80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("a b:80", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("host:8o", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("localhost:80", host, 4, &port), -1);
	/* The cases of server.c's former parser, whose callers now read cfg->listen. */
	assert_int_equal(config_split_listen("[::1]:9000", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9000);
	assert_int_equal(config_split_listen("127.0.0.1", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("127.0.0.1:99999", host, sizeof(host), &port), -1);
	assert_int_equal(config_split_listen("[::1]9000", host, sizeof(host), &port), -1);
}

/* [admin] listen: which values need no token (SPEC §8). */
static void test_admin_listen(void **state)
{
	static const struct {
		const char *listen;
		bool local;
	} cases[] = {
	    {"127.0.0.1:8081", true}, {"127.9.9.9:1", true},      {"[::1]:8081", true},
	    {"localhost:8081", true}, {"unix:/run/a.sock", true}, {"0.0.0.0:8081", false},
	    {"[::]:8081", false},     {"192.0.2.1:8081", false},  {"shop.example:8081", false},
	    {"[::2]:8081", false},
	};
	char err[512], text[256];
	struct config *cfg;

	(void)state;
	write_file("tok", "token-0123456789abcdef\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), SECRET "[admin]\nlisten = %s\ntoken_file = tok\n",
		         cases[i].listen);
		cfg = load_text(text, err, sizeof(err));
		assert_non_null(cfg);
		assert_string_equal(cfg->admin_listen.text, cases[i].listen);
		assert_string_equal(cfg->admin_token, "token-0123456789abcdef");
		if (config_listen_local(&cfg->admin_listen) != cases[i].local)
			fail_msg("%s: local should be %d", cases[i].listen, cases[i].local);
		assert_true((config_listen_unix(&cfg->admin_listen) != NULL) ==
		            (strncmp(cases[i].listen, "unix:", 5) == 0));
		config_free(cfg);
	}
	cfg = load_text(SECRET, err, sizeof(err));
	assert_non_null(cfg);
	assert_null(cfg->admin_listen.text);
	assert_null(cfg->admin_token);
	config_free(cfg);
}

/* scripts/run's placeholder API key is named as such by check-config. */
static void test_summary_placeholder_key(void **state)
{
	char err[512], *out = NULL;
	size_t outlen = 0;
	struct config *cfg;
	FILE *f;

	(void)state;
	cfg = load_text(SECRET "[gateway]\napi_key = dev-api-key-put-the-real-one-here\n", err,
	                sizeof(err));
	assert_non_null(cfg);
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	config_print_summary(cfg, f);
	fclose(f);
	assert_non_null(
	    strstr(out, "; the development placeholder: put the real one in its file)"));
	assert_null(strstr(out, "dev-api-key"));
	free(out);
	config_free(cfg);
}

/* What ingest() and job_replay() are told runs on each status. */
static void test_actions_by_status(void **state)
{
	char err[512], *text;
	struct config *cfg;

	(void)state;
	cfg = load_text(SECRET "[action.ship]\ntype = exec\ncommand = /bin/true\non = paid\n"
	                       "[action.release]\ntype = exec\ncommand = /bin/true\n"
	                       "on = expired, cancelled, paid\n",
	                err, sizeof(err));
	assert_non_null(cfg);
	text = config_actions_by_status(cfg, NULL);
	assert_string_equal(text, "{\"pending\":[],\"paid\":[\"ship\",\"release\"],"
	                          "\"expired\":[\"release\"],\"cancelled\":[\"release\"]}");
	free(text);
	text = config_actions_by_status(cfg, "ship");
	assert_string_equal(text, "{\"pending\":[],\"paid\":[\"ship\"],\"expired\":[],"
	                          "\"cancelled\":[]}");
	free(text);
	config_free(cfg);
}

static void test_keep_fixed(void **state)
{
	char err[512], changed[128];
	struct config *cur, *next;

	(void)state;
	cur = load_text(SECRET "[server]\nlisten = 127.0.0.1:1\nrequest_timeout = 3\n", err,
	                sizeof(err));
	assert_non_null(cur);
	next = load_text(SECRET "[server]\nlisten = 127.0.0.1:2\nrequest_timeout = 4\n"
	                        "[database]\nconninfo = dbname=other\n",
	                 err, sizeof(err));
	assert_non_null(next);
	assert_int_equal(config_keep_fixed(next, cur, changed, sizeof(changed)), 2);
	assert_string_equal(changed, "listen, conninfo");
	assert_string_equal(next->listen.text, "127.0.0.1:1");
	assert_string_equal(next->listen.host, "127.0.0.1");
	assert_int_equal(next->listen.port, 1);
	assert_string_equal(next->conninfo, "postgresql:///bayarhook");
	assert_int_equal(next->request_timeout, 4); /* reloadable: the new value stays */
	assert_int_equal(config_keep_fixed(next, cur, changed, sizeof(changed)), 0);
	assert_string_equal(changed, "");
	config_free(next);
	config_free(cur);
}

static void test_default_path(void **state)
{
	(void)state;
	unsetenv("BAYARHOOK_CONFIG");
	assert_string_equal(config_default_path(), "/etc/bayarhook/receiver.conf");
	setenv("BAYARHOOK_CONFIG", "/tmp/x.conf", 1);
	assert_string_equal(config_default_path(), "/tmp/x.conf");
	setenv("BAYARHOOK_CONFIG", "", 1);
	assert_string_equal(config_default_path(), "/etc/bayarhook/receiver.conf");
	unsetenv("BAYARHOOK_CONFIG");
}

static void test_buffer_and_free_null(void **state)
{
	char err[256];
	struct config *cfg;

	(void)state;
	config_free(NULL);
	cfg = config_load_buffer("mem.conf", SECRET, strlen(SECRET), err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->path, "mem.conf");
	config_free(cfg);
	/* No terminating NUL needed, NUL bytes refused. */
	assert_null(config_load_buffer("mem.conf", "[server]\0x", 10, err, sizeof(err)));
	assert_string_equal(err, "mem.conf:1: control character (0x00) in line");
	assert_null(config_load_buffer("mem.conf", "", 0, NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsigned_confirm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_action_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credentials_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_comments_and_blanks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_means_default, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_example, setup, teardown),
	    cmocka_unit_test(test_docs_name_every_key),
	    cmocka_unit_test_setup_teardown(test_summary, setup, teardown),
	    cmocka_unit_test(test_redact),
	    cmocka_unit_test(test_split_listen),
	    cmocka_unit_test_setup_teardown(test_admin_listen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keep_fixed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_actions_by_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_summary_placeholder_key, setup, teardown),
	    cmocka_unit_test(test_default_path),
	    cmocka_unit_test(test_buffer_and_free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
