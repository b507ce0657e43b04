/*
 * alert.c: claims pending alerts, runs [alert] command and/or POSTs to
 * [alert] url, and records the outcome (see alert.h). One alert at a time:
 * alerts are rare, and one at a time keeps min_interval's merge simple.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "alert.h"
#include "db.h"
#include "http_client.h"
#include "ident.h"
#include "log.h"
#include "proc.h"
#include "stats.h"
#include "words.h"
#include "worker_outcome.h"
#include "worker_owner.h"
#include "xmalloc.h"

#define ALERT_TICK_SEC 1
#define ALERT_QUEUE_MAX 64      /* raises waiting for the database; older ones are dropped */
#define ALERT_OUTPUT_LOG 200    /* bytes of a failed command's output in last_error */
#define ALERT_TELEGRAM_MAX 4000 /* bytes of text; sendMessage takes 4096 characters */

struct alert_item {
	enum alert_kind kind;
	bool sent; /* already delivered (database_down, sent straight) */
	char *subject;
	char *detail;
};

enum alert_phase { ALERT_IDLE, ALERT_CLAIMING, ALERT_SENDING, ALERT_FINISHING };

struct alert {
	struct event_base *base;
	struct db_pool *pool; /* its own: never queued behind callbacks */
	struct http_client *http;
	struct event *tick;
	char owner[128];

	/* from [alert] and [fulfillment] */
	char **argv; /* NULL: no command */
	char *url;
	char *chat;
	char *kinds; /* a text[] literal, e.g. "{job_dead}" */
	int min_interval, timeout, db_down_after, backoff_initial, backoff_max;

	enum alert_phase phase;
	bool claim_failing;
	struct {
		char id[32];
		char kind[32];
		int attempts;
		char *body;
		bool cmd_done;
		bool direct; /* database_down sent without the database: no row yet */
		struct proc *proc;
		struct http_client_call *call;
	} cur;

	struct alert_item queue[ALERT_QUEUE_MAX];
	size_t nqueue;
	bool writing;

	unsigned kinds_mask;
	bool down;
	struct timespec down_mono;
	time_t down_wall;
	bool down_sent;            /* database_down delivered straight during this outage */
	int down_tries;            /* its attempts */
	struct timespec down_next; /* its next attempt, monotonic */
};

static struct alert *alert_running; /* for alert_raise() */

static void alert_claim(struct alert *a);

static void alert_item_clear(struct alert_item *it)
{
	free(it->subject);
	free(it->detail);
	memset(it, 0, sizeof(*it));
}

/* ---- raises the daemon sees itself ---- */

static void alert_queue(struct alert *a, enum alert_kind kind, const char *subject,
                        const char *detail_json, bool sent)
{
	struct alert_item *it;

	if (a->nqueue == ALERT_QUEUE_MAX) {
		log_warnx("alert queue full: dropping the oldest (%s)",
		          alert_kind_name(a->queue[0].kind));
		alert_item_clear(&a->queue[0]);
		memmove(&a->queue[0], &a->queue[1], (ALERT_QUEUE_MAX - 1) * sizeof(a->queue[0]));
		a->nqueue--;
		/* The first one may be in flight: writing it again is a duplicate, never a loss. */
		a->writing = false;
	}
	it = &a->queue[a->nqueue++];
	it->kind = kind;
	it->subject = xstrdup(subject ? subject : "");
	it->detail = xstrdup(detail_json ? detail_json : "{}");
	it->sent = sent;
}

static alert_raise_fn alert_elsewhere;
static void *alert_elsewhere_arg;

void alert_raise_elsewhere(alert_raise_fn fn, void *arg)
{
	alert_elsewhere = fn;
	alert_elsewhere_arg = arg;
}

void alert_raise(enum alert_kind kind, const char *subject, const char *detail_json)
{
	if (alert_running != NULL)
		alert_queue(alert_running, kind, subject, detail_json, false);
	else if (alert_elsewhere != NULL)
		alert_elsewhere(kind, subject, detail_json, alert_elsewhere_arg);
}

static void alert_written(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct alert *a = arg;

	(void)sqlstate;
	a->writing = false;
	if (res == NULL) {
		log_warnx("cannot record the %s alert (retrying): %s",
		          alert_kind_name(a->queue[0].kind), err);
		return;
	}
	alert_item_clear(&a->queue[0]);
	memmove(&a->queue[0], &a->queue[1], (a->nqueue - 1) * sizeof(a->queue[0]));
	a->nqueue--;
	if (a->nqueue > 0)
		event_active(a->tick, EV_TIMEOUT, 0);
}

static void alert_write_next(struct alert *a)
{
	const char *params[3];

	if (a->writing || a->nqueue == 0 || db_pool_up(a->pool) == 0)
		return;
	params[0] = alert_kind_name(a->queue[0].kind);
	params[1] = a->queue[0].subject;
	params[2] = a->queue[0].detail;
	if (db_query(a->pool,
	             a->queue[0].sent ? "SELECT bayarhook.alert_record_sent($1, $2, $3::jsonb)"
	                              : "SELECT bayarhook.alert_raise($1, $2, $3::jsonb)",
	             3, params, alert_written, a) == 0)
		a->writing = true;
}

/* ---- delivery ---- */

static void alert_done_cb(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct alert *a = arg;

	(void)sqlstate;
	if (res == NULL)
		log_warnx("alert %s: cannot record the delivery (it is sent again once its claim "
		          "lapses): %s",
		          a->cur.id, err);
	free(a->cur.body);
	a->cur.body = NULL;
	a->phase = ALERT_IDLE;
	alert_claim(a);
}

/* Records the outcome: delivered, or pending again after the backoff. */
static void alert_finish(struct alert *a, const char *error)
{
	char retry[32];
	const char *params[5];

	a->cur.proc = NULL;
	a->cur.call = NULL;
	if (error == NULL) {
		metrics_inc(METRIC_ALERTS, a->cur.kind);
		log_notice("alert %s %s delivered", a->cur.id, a->cur.kind);
		snprintf(retry, sizeof(retry), "0");
	} else {
		int64_t ms = worker_backoff_ms(a->backoff_initial, a->backoff_max, a->cur.attempts,
		                               worker_random_u32());

		snprintf(retry, sizeof(retry), "%.3f", (double)ms / 1000.0);
		log_warnx("alert %s %s not delivered (attempt %d, again in %ss): %s", a->cur.id,
		          a->cur.kind, a->cur.attempts, retry, error);
	}
	if (a->cur.direct) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		a->down_sent = error == NULL;
		a->down_next = now;
		a->down_next.tv_sec += (time_t)atof(retry);
		free(a->cur.body);
		a->cur.body = NULL;
		a->cur.direct = false;
		a->phase = ALERT_IDLE;
		return;
	}
	params[0] = a->cur.id;
	params[1] = a->owner;
	params[2] = error == NULL ? "true" : "false";
	params[3] = error;
	params[4] = retry;
	a->phase = ALERT_FINISHING;
	if (db_query(a->pool, "SELECT bayarhook.alert_done($1, $2, $3, $4, $5)", 5, params,
	             alert_done_cb, a) < 0) {
		/* The claim lapses and the alert is sent again: at least once. */
		free(a->cur.body);
		a->cur.body = NULL;
		a->phase = ALERT_IDLE;
	}
}

static void alert_send(struct alert *a);

static void alert_cmd_done(struct proc *run, const struct proc_result *res, void *arg)
{
	struct alert *a = arg;
	char why[ALERT_OUTPUT_LOG + 128];
	int n;

	(void)run;
	a->cur.proc = NULL;
	if (res->how == PROC_EXITED && res->code == 0) {
		a->cur.cmd_done = true;
		alert_send(a);
		return;
	}
	switch (res->how) {
	case PROC_EXITED:
		n = snprintf(why, sizeof(why), "command exited with %d", res->code);
		break;
	case PROC_SIGNALED:
		n = snprintf(why, sizeof(why), "command killed by signal %d", res->code);
		break;
	case PROC_TIMEOUT:
		n = snprintf(why, sizeof(why), "command timed out");
		break;
	default:
		n = snprintf(why, sizeof(why), "command could not start: %s", strerror(res->code));
		break;
	}
	if (res->output_len > 0 && n > 0 && (size_t)n < sizeof(why))
		snprintf(why + n, sizeof(why) - (size_t)n, ": %.*s", ALERT_OUTPUT_LOG, res->output);
	alert_finish(a, why);
}

static void alert_url_done(const struct http_client_resp *resp, void *arg)
{
	struct alert *a = arg;
	char why[256];

	a->cur.call = NULL;
	if (resp->kind == HTTP_CLIENT_OK && resp->status >= 200 && resp->status < 300) {
		alert_finish(a, NULL);
		return;
	}
	if (resp->kind == HTTP_CLIENT_OK)
		snprintf(why, sizeof(why), "url answered HTTP %d", resp->status);
	else
		snprintf(why, sizeof(why), "url: %s", resp->error);
	alert_finish(a, why);
}

/*
 * Cuts s to at most max bytes on a character boundary: Telegram refuses a
 * longer text for good, and an alert refused for good would be retried forever.
 */
static void alert_cut_utf8(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	s[n] = '\0';
}

/* Telegram's sendMessage wants chat_id and text, not our JSON: the text carries it. */
static char *alert_telegram_body(const struct alert *a)
{
	cJSON *o = cJSON_CreateObject();
	char *text, *out;

	xasprintf(&text, "bayarhook alert: %s\n%s", a->cur.kind, a->cur.body);
	alert_cut_utf8(text, ALERT_TELEGRAM_MAX);

	cJSON_AddStringToObject(o, "chat_id", a->chat);
	cJSON_AddStringToObject(o, "text", text);
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	free(text);
	if (out == NULL)
		abort(); /* cJSON fails only on out-of-memory */
	return out;
}

/* The command first (unless done), then the url; both must succeed. */
static void alert_send(struct alert *a)
{
	if (a->argv != NULL && !a->cur.cmd_done) {
		char env_kind[64];
		char *envp[] = {env_kind, "PATH=" PROC_DEFAULT_PATH, NULL};

		snprintf(env_kind, sizeof(env_kind), "BAYARHOOK_ALERT=%s", a->cur.kind);
		a->cur.proc = proc_start(a->base, a->argv, envp, a->cur.body, strlen(a->cur.body),
		                         a->timeout, alert_cmd_done, a);
		if (a->cur.proc == NULL) {
			char why[256];

			snprintf(why, sizeof(why), "cannot start %s: %s", a->argv[0],
			         strerror(errno));
			alert_finish(a, why);
		}
		return;
	}
	if (a->url != NULL) {
		static const char *const headers[] = {"Content-Type", "application/json", NULL};
		char *tg = a->chat != NULL ? alert_telegram_body(a) : NULL;
		struct http_client_req req = {
		    .method = "POST",
		    .url = a->url,
		    .headers = headers,
		    .body = tg ? tg : a->cur.body,
		    .body_len = strlen(tg ? tg : a->cur.body),
		    .timeout_sec = a->timeout,
		};

		a->cur.call = http_client_request(a->http, &req, alert_url_done, a);
		free(tg);
		return;
	}
	alert_finish(a, NULL);
}

static void alert_claimed(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct alert *a = arg;

	(void)sqlstate;
	a->phase = ALERT_IDLE;
	if (res == NULL) {
		/* Once per run of failures: the tick asks again every second. */
		if (!a->claim_failing)
			log_warnx("cannot claim alerts (is the schema migrated?): %s", err);
		a->claim_failing = true;
		return;
	}
	a->claim_failing = false;
	if (PQntuples(res) == 0)
		return;
	snprintf(a->cur.id, sizeof(a->cur.id), "%s", PQgetvalue(res, 0, 0));
	snprintf(a->cur.kind, sizeof(a->cur.kind), "%s", PQgetvalue(res, 0, 1));
	a->cur.attempts = atoi(PQgetvalue(res, 0, 2));
	a->cur.body = xstrdup(PQgetvalue(res, 0, 3));
	a->cur.cmd_done = false;
	a->cur.direct = false;
	a->phase = ALERT_SENDING;
	alert_send(a);
}

static double alert_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - then->tv_sec) + (double)(now.tv_nsec - then->tv_nsec) / 1e9;
}

static char *alert_down_detail(const struct alert *a)
{
	char since[64], *out;

	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", gmtime(&a->down_wall));
	xasprintf(&out, "{\"down_since\":\"%s\",\"seconds\":%.0f}", since,
	          alert_since(&a->down_mono));
	return out;
}

/*
 * database_down cannot wait for the database: once the outage is
 * database_down_after old it is sent straight, without a row (written,
 * as sent, once the database is back), and retried with the backoff.
 */
static void alert_down_direct(struct alert *a)
{
	char now_text[64], *detail;
	time_t now = time(NULL);

	if (!a->down || a->down_sent || a->phase != ALERT_IDLE ||
	    (a->argv == NULL && a->url == NULL) || !(a->kinds_mask & (1u << ALERT_DATABASE_DOWN)) ||
	    alert_since(&a->down_mono) < a->db_down_after || alert_since(&a->down_next) < 0)
		return;
	strftime(now_text, sizeof(now_text), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	detail = alert_down_detail(a);
	free(a->cur.body);
	xasprintf(&a->cur.body,
	          "{\"id\":null,\"kind\":\"database_down\",\"subject\":\"\",\"detail\":%s,"
	          "\"created_at\":\"%s\",\"suppressed\":0}",
	          detail, now_text);
	free(detail);
	snprintf(a->cur.id, sizeof(a->cur.id), "(database down)");
	snprintf(a->cur.kind, sizeof(a->cur.kind), "%s", alert_kind_name(ALERT_DATABASE_DOWN));
	a->cur.attempts = ++a->down_tries;
	a->cur.cmd_done = false;
	a->cur.direct = true;
	a->phase = ALERT_SENDING;
	alert_send(a);
}

static void alert_claim(struct alert *a)
{
	char min_interval[16], lease[16];
	const char *params[4];

	if (a->phase != ALERT_IDLE || (a->argv == NULL && a->url == NULL) ||
	    db_pool_up(a->pool) == 0)
		return;
	snprintf(min_interval, sizeof(min_interval), "%d", a->min_interval);
	/* Command and POST one after the other, each with its kill grace, and a margin. */
	snprintf(lease, sizeof(lease), "%d", 2 * (a->timeout + PROC_KILL_GRACE) + 30);
	params[0] = a->owner;
	params[1] = a->kinds;
	params[2] = min_interval;
	params[3] = lease;
	if (db_query(a->pool,
	             "SELECT alert_id, kind, attempts, body"
	             " FROM bayarhook.alert_claim($1, $2::text[], $3, $4)",
	             4, params, alert_claimed, a) == 0)
		a->phase = ALERT_CLAIMING;
}

static void alert_tick(evutil_socket_t fd, short what, void *arg)
{
	struct alert *a = arg;

	(void)fd;
	(void)what;
	alert_write_next(a);
	alert_down_direct(a);
	alert_claim(a);
}

/* ---- configuration and life ---- */

/* The URL may hold a token (url_file): not left in freed memory. */
static void alert_wipe(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static char *alert_kinds_literal(unsigned mask)
{
	char buf[256] = "{";

	for (int k = 0; k < ALERT__COUNT; k++)
		if (mask & (1u << k)) {
			if (buf[1] != '\0')
				strcat(buf, ",");
			strcat(buf, alert_kind_name((enum alert_kind)k));
		}
	strcat(buf, "}");
	return xstrdup(buf);
}

int alert_configure(struct alert *a, const struct config *cfg, char *err, size_t errlen)
{
	char **argv = NULL;
	unsigned mask;
	char bad[64];

	if (alert_kinds_parse(cfg->alert_kinds, &mask, bad, sizeof(bad)) < 0) {
		snprintf(err, errlen, "[alert] kinds: unknown kind '%s'", bad);
		return -1;
	}
	if (cfg->alert_command != NULL && cfg->alert_command[0] != '\0') {
		if (words_split(cfg->alert_command, &argv, err, errlen) < 0)
			return -1;
		if (argv[0] == NULL) {
			words_free(argv);
			argv = NULL;
		}
	}
	/* A delivery in flight keeps its own copies: argv was copied by proc_start. */
	words_free(a->argv);
	a->argv = argv;
	alert_wipe(a->url);
	a->url = cfg->alert_url && cfg->alert_url[0] ? xstrdup(cfg->alert_url)
	         : cfg->alert_url_secret             ? xstrdup(cfg->alert_url_secret)
	                                             : NULL;
	free(a->chat);
	a->chat = cfg->alert_telegram_chat && cfg->alert_telegram_chat[0]
	              ? xstrdup(cfg->alert_telegram_chat)
	              : NULL;
	free(a->kinds);
	a->kinds = alert_kinds_literal(mask);
	a->kinds_mask = mask;
	a->min_interval = cfg->alert_min_interval;
	a->timeout = cfg->alert_timeout;
	a->db_down_after = cfg->alert_db_down_after;
	a->backoff_initial = cfg->backoff_initial;
	a->backoff_max = cfg->backoff_max;
	return 0;
}

struct alert *alert_new(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	struct alert *a = xcalloc(1, sizeof(*a));
	struct timeval every = {ALERT_TICK_SEC, 0};

	a->base = base;
	if (alert_configure(a, cfg, err, errlen) < 0) {
		alert_free(a);
		return NULL;
	}
	ident_process(a->owner, sizeof(a->owner));
	a->pool = db_pool_new(base, cfg->conninfo, 1, "alerts");
	a->http = http_client_new(base, NULL);
	a->tick = event_new(base, -1, EV_PERSIST, alert_tick, a);
	if (a->tick == NULL || event_add(a->tick, &every) < 0) {
		snprintf(err, errlen, "cannot start the alert timer");
		alert_free(a);
		return NULL;
	}
	alert_running = a;
	return a;
}

void alert_db_state(struct alert *a, bool up)
{
	char *detail;
	bool sent;

	if (a == NULL)
		return;
	if (!up) {
		if (!a->down) {
			a->down = true;
			clock_gettime(CLOCK_MONOTONIC, &a->down_mono);
			a->down_wall = time(NULL);
			a->down_sent = false;
			a->down_tries = 0;
			a->down_next = a->down_mono;
		}
		return;
	}
	if (!a->down)
		return;
	a->down = false;
	sent = a->down_sent;
	a->down_sent = false;
	if (!sent && alert_since(&a->down_mono) < a->db_down_after)
		return;
	detail = alert_down_detail(a);
	alert_queue(a, ALERT_DATABASE_DOWN, "", detail, sent);
	free(detail);
}

bool alert_idle(const struct alert *a)
{
	return a == NULL || a->phase == ALERT_IDLE;
}

void alert_free(struct alert *a)
{
	if (a == NULL)
		return;
	if (alert_running == a)
		alert_running = NULL;
	if (a->cur.proc != NULL)
		proc_cancel(a->cur.proc);
	if (a->cur.call != NULL)
		http_client_cancel(a->cur.call);
	if (a->tick != NULL)
		event_free(a->tick);
	/* Before the struct: the pool may still hold queries with a as their argument. */
	db_pool_free(a->pool);
	http_client_free(a->http);
	for (size_t i = 0; i < a->nqueue; i++)
		alert_item_clear(&a->queue[i]);
	free(a->cur.body);
	words_free(a->argv);
	alert_wipe(a->url);
	free(a->chat);
	free(a->kinds);
	free(a);
}
