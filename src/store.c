/*
 * store.c: group commit of callbacks. The writer never holds more batches in
 * flight than the pool has connections, so while the database is busy new
 * items queue up and are sent together: one round trip and one fsync for all
 * of them. All decisions (accepted, duplicate, out of order, which jobs) are
 * made inside bayarhook.ingest() against committed rows, so several
 * bayarhook processes on one database agree.
 */
#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "audit_chain.h"
#include "audit_limit.h"
#include "event.h"
#include "jsonw.h"
#include "log.h"
#include "stats.h"
#include "store.h"
#include "when.h"
#include "xmalloc.h"

#define STORE_MAX_BATCH 256
#define STORE_MAX_RETRIES 3
/*
 * A second batch goes out while one is in flight only once this many items
 * wait. Each ingest() call costs PostgreSQL a fixed ~0.5 ms (executor
 * start-up of its statements, commit, WAL flush) on top of ~0.1 ms per
 * item, so splitting a small queue over two connections costs more CPU
 * than it saves time, while one batch at a time leaves a core idle
 * (bench/README.md, 32 senders: both connections always: 7 items per commit,
 * 4,400/s; a second batch from 16 waiting: 13, 5,100/s; from 8: 10,
 * 5,400-6,700/s; from 4 or 6: 4,800-5,100/s).
 */
#define STORE_SPILL_MIN 8
/*
 * Bytes of items (their text and body) held from store_submit() until they
 * are answered, waiting or in flight. Past it an item is refused at once:
 * a callback is answered 503 with Retry-After (the gateway sends it again),
 * a refused request keeps its answer without an audit row. 8 MiB is some
 * thousands of callbacks, seconds of a flash sale at full ingest speed,
 * and keeps a database that stalls from costing more memory than that.
 */
#define STORE_MAX_BYTES (8u * 1024 * 1024)
/* A failed commit keeps /healthz degraded this long, unless one succeeds. */
#define STORE_FAILING_SEC 60

struct store_item {
	struct store_item *next;
	TAILQ_ENTRY(store_item) live; /* in store.live: bounded and not answered yet */
	char *text;                   /* the item's JSON object, without idx */
	char *body; /* a verified callback's body, sent apart (bodies[idx + 1]), or NULL */
	size_t body_len;
	store_done_cb cb;
	void *arg;
	int retries;
	bool solo;            /* failed in a batch with others: try it alone */
	bool sent;            /* in a batch in flight */
	bool bounded;         /* store_submit_bounded: answered by answer_timeout at the latest */
	bool answered;        /* answered STORE_LATE: cb is NULL, the outcome is only logged */
	bool late_in_flight;  /* ... while in a batch: its row will say what was sent */
	int64_t submitted_ms; /* CLOCK_MONOTONIC */
};
TAILQ_HEAD(item_list, store_item);

struct store_batch {
	struct store *st;
	struct store_item **items;
	int n;
	int lane; /* its audit chain lane's slot (audit_chain.h), -1: no chain */
};

/* An action with `when =`: the events it does not match get no job of it. */
struct store_when {
	char *action;
	struct when *when;
};

struct store {
	struct db_pool *pool;
	char *actions_json;
	struct store_when *whens;
	size_t nwhens;
	struct store_item *head, *tail; /* waiting to be sent */
	unsigned waiting;
	int inflight; /* batches sent, not answered */
	unsigned outstanding;
	struct audit_limit *audit_limit;
	size_t bytes;       /* held by the items of outstanding (STORE_MAX_BYTES) */
	bool failing;       /* the last commit failed (none succeeded since) */
	bool read_only;     /* ... because the session was read-only */
	time_t failed_at;   /* CLOCK_MONOTONIC seconds of that failure */
	time_t full_logged; /* the last "queue full" line, at most one per 10 s */
	/* The answer deadline (SPEC §12), store_submit_bounded's items. */
	struct item_list live;     /* bounded, not answered yet: oldest first */
	struct event *deadline;    /* armed for the oldest of live */
	int64_t answer_timeout_ms; /* 0: none */
	unsigned late;             /* answered STORE_LATE, outcome not known yet */
	unsigned late_episode;     /* answered STORE_LATE since the stall was first said */
	bool stall_said;

	struct audit_chain *chain; /* SPEC §11: the lanes this process writes */

	/* store_on_commit: told of every commit that accepted an event */
	void (*commit_cb)(void *arg);
	void *commit_arg;
};

static void store_flush(struct store *st);

/*
 * SPEC §7: ingest() flagged a payment (a late paid): the worst silent
 * failure this daemon had, so it is a warning and a metric. Rare: the
 * invoice is read back from the item only then.
 */
static void store_flagged(const struct store_item *it, const char *flag)
{
	cJSON *obj = cJSON_Parse(it->text);
	const cJSON *inv = cJSON_GetObjectItemCaseSensitive(obj, "invoice_id");
	const char *invoice = cJSON_IsString(inv) ? inv->valuestring : "";
	char f_inv[160];
	const char *fields[2] = {f_inv, NULL};

	snprintf(f_inv, sizeof(f_inv), "INVOICE_ID=%s", invoice);
	log_fields(LOG_WARNING, fields, "payment flagged invoice=%s flag=%s", invoice, flag);
	metrics_inc(METRIC_PAYMENTS_FLAGGED, NULL);
	cJSON_Delete(obj);
}

static void item_free(struct store_item *it)
{
	free(it->text);
	free(it->body);
	free(it);
}

static size_t item_bytes(const struct store_item *it)
{
	return strlen(it->text) + it->body_len + sizeof(*it);
}

static time_t now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* For store_writes_failing(): sqlstate NULL or "" when no server error. */
static void commit_failed(struct store *st, const char *sqlstate)
{
	st->failing = true;
	/* read_only_sql_transaction: every commit on this session will fail alike. */
	st->read_only = sqlstate != NULL && strcmp(sqlstate, "25006") == 0;
	st->failed_at = now_sec();
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void store_late_done(struct store *st, enum store_outcome o);

static void item_finish(struct store *st, struct store_item *it, enum store_outcome o,
                        enum verdict verdict)
{
	st->outstanding--;
	st->bytes -= item_bytes(it);
	if (it->answered) {
		store_late_done(st, o);
	} else {
		if (it->bounded)
			TAILQ_REMOVE(&st->live, it, live);
		it->cb(o, verdict, it->arg);
	}
	item_free(it);
}

static void queue_front(struct store *st, struct store_item *it)
{
	it->sent = false;
	it->next = st->head;
	st->head = it;
	if (st->tail == NULL)
		st->tail = it;
	st->waiting++;
}

static void batch_free(struct store_batch *b)
{
	free(b->items);
	free(b);
}

/*
 * The pool has no connection left: what waits cannot be sent before it
 * reconnects, which may take long, so nobody is kept waiting for that
 * (SPEC §12): every waiting item fails at once (a callback is answered
 * 503 and sent again by the gateway).
 */
static void store_fail_waiting(struct store *st, const char *why)
{
	struct store_item *it;
	unsigned n = 0, late = 0;

	while ((it = st->head) != NULL) {
		st->head = it->next;
		if (st->head == NULL)
			st->tail = NULL;
		st->waiting--;
		it->next = NULL;
		n++;
		late += it->answered;
		item_finish(st, it, STORE_FAILED, VERDICT_UNAVAILABLE);
	}
	if (n > 0) {
		commit_failed(st, NULL);
		log_warnx("store: database down; %u waiting item(s) not recorded (%u answered now, "
		          "%u by answer_timeout before): %s",
		          n, n - late, late, why ? why : "no connection");
	}
}

/* The batch's audit rows moved its lane's head to their last lane_seq and mac. */
static void store_chain_committed(struct store *st, const struct store_batch *b,
                                  const PGresult *res)
{
	unsigned char mac[AUDIT_MAC_LEN] = {0};
	long long last = 0;
	int row = -1;

	if (b->lane < 0)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		long long seq;

		if (PQgetisnull(res, i, 4) || PQgetisnull(res, i, 5))
			continue;
		if ((seq = strtoll(PQgetvalue(res, i, 4), NULL, 10)) > last) {
			last = seq;
			row = i;
		}
	}
	if (row >= 0 && audit_mac_parse(PQgetvalue(res, row, 5), mac) < 0) {
		/* Cannot happen with ingest()'s bytea; a lane we cannot follow ends. */
		audit_chain_failed(st->chain, b->lane, false);
		return;
	}
	audit_chain_committed(st->chain, b->lane, last, mac);
}

static void batch_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct store_batch *b = arg;
	struct store *st = b->st;

	st->inflight--;
	if (res != NULL) {
		int rows = PQntuples(res);

		store_chain_committed(st, b, res);

		for (int i = 0; i < rows; i++) {
			int idx = atoi(PQgetvalue(res, i, 0));
			enum verdict v;

			if (idx < 0 || idx >= b->n || b->items[idx] == NULL)
				continue;
			/*
			 * A name this build does not know (a newer migration): the
			 * item is answered 503 below; its resend finds it recorded.
			 */
			if (!verdict_from_name(PQgetvalue(res, i, 1), &v)) {
				log_errx("store: unknown verdict \"%s\"", PQgetvalue(res, i, 1));
				continue;
			}
			if (v == VERDICT_ACCEPTED && st->commit_cb != NULL)
				st->commit_cb(st->commit_arg);
			if (!PQgetisnull(res, i, 3))
				store_flagged(b->items[idx], PQgetvalue(res, i, 3));
			if (b->items[idx]->late_in_flight)
				log_warnx("store: callback_id=%s verdict=%s committed after "
				          "answer_timeout had answered it 503 (it was in a "
				          "transaction already, so its row says what was sent); "
				          "its resend is recorded as a duplicate",
				          PQgetisnull(res, i, 2) ? "-" : PQgetvalue(res, i, 2),
				          PQgetvalue(res, i, 1));
			item_finish(st, b->items[idx], STORE_COMMITTED, v);
			b->items[idx] = NULL;
		}
		for (int i = 0; i < b->n; i++) {
			if (b->items[i]) {
				log_errx("store: no verdict for item %d of %d", i, b->n);
				item_finish(st, b->items[i], STORE_FAILED, VERDICT_UNAVAILABLE);
			}
		}
		st->failing = false;
		metrics_inc(METRIC_STORE_BATCHES, NULL);
		metrics_observe(METRIC_STORE_BATCH_SIZE, b->n);
		batch_free(b);
		store_flush(st);
		return;
	}

	/* A server error rolled the batch back; a lost connection leaves it unknown. */
	if (b->lane >= 0)
		audit_chain_failed(st->chain, b->lane, sqlstate != NULL && sqlstate[0] != '\0');
	/*
	 * A deadlock or serialization failure: run the same items again. Any
	 * other server error with several items: one item may be poison, so
	 * retry each alone and let only that one fail. A lost connection:
	 * the commit may or may not have happened, so answer 503 and let the
	 * sender retry; a committed one then comes back as a duplicate.
	 */
	for (int i = b->n - 1; i >= 0; i--) {
		struct store_item *it = b->items[i];
		bool server_error = sqlstate && sqlstate[0];

		if (server_error && db_sqlstate_retryable(sqlstate) &&
		    it->retries < STORE_MAX_RETRIES) {
			it->retries++;
			queue_front(st, it);
		} else if (server_error && b->n > 1 && !it->solo &&
		           !db_conn_read_only(NULL, sqlstate)) {
			it->solo = true;
			queue_front(st, it);
		} else {
			log_warnx("store: item not recorded: %s", err ? err : "unknown error");
			commit_failed(st, sqlstate);
			item_finish(st, it, STORE_FAILED, VERDICT_UNAVAILABLE);
		}
	}
	if (b->n > 1 || !(sqlstate && db_sqlstate_retryable(sqlstate)))
		log_warnx("store: batch of %d failed sqlstate=%s: %s", b->n,
		          sqlstate && sqlstate[0] ? sqlstate : "-", err ? err : "");
	batch_free(b);
	if (db_pool_up(st->pool) == 0)
		store_fail_waiting(st, err);
	store_flush(st);
}

static void put_be32(struct jsonw *w, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};

	jsonw_put(w, (const char *)b, 4);
}

/*
 * The batch's bodies as a text[] in PostgreSQL's binary send format: they
 * reach the database as they are, neither escaped here nor parsed there
 * (ingest() casts each to jsonb once, for the event).
 */
static void put_bodies(struct jsonw *w, struct store_item *const *items, int n)
{
	bool nulls = false;

	for (int i = 0; i < n; i++)
		nulls |= items[i]->body == NULL;
	put_be32(w, 1);     /* dimensions */
	put_be32(w, nulls); /* has nulls */
	put_be32(w, 25);    /* element type: text */
	put_be32(w, (uint32_t)n);
	put_be32(w, 1); /* lower bound */
	for (int i = 0; i < n; i++) {
		if (items[i]->body == NULL) {
			put_be32(w, UINT32_MAX); /* -1: NULL */
			continue;
		}
		put_be32(w, (uint32_t)items[i]->body_len);
		jsonw_put(w, items[i]->body, items[i]->body_len);
	}
}

static void store_flush(struct store *st)
{
	while (st->head && st->inflight < db_pool_up(st->pool) &&
	       (st->inflight == 0 || st->waiting >= STORE_SPILL_MIN)) {
		struct store_batch *b = xcalloc(1, sizeof(*b));
		struct jsonw w = {0}, bw = {0};
		const char *params[4];
		int binlen[4] = {-1, -1, -1, -1};
		char *text = NULL, *bodies = NULL;
		unsigned char *chain = NULL;
		size_t chainlen;
		int max = STORE_MAX_BATCH, rc = -1;

		if (st->head->solo)
			max = 1;
		b->items = xcalloc((size_t)max, sizeof(*b->items));
		b->st = st;
		jsonw_put(&w, "[", 1);
		while (st->head && b->n < max && (b->n == 0 || !st->head->solo)) {
			struct store_item *it = st->head;
			char idx[32];

			st->head = it->next;
			if (st->head == NULL)
				st->tail = NULL;
			st->waiting--;
			it->next = NULL;
			/* {"idx":N, then the item's own members: it->text is "{...}". */
			jsonw_put(&w, idx,
			          (size_t)snprintf(idx, sizeof(idx), "%s{\"idx\":%d%s",
			                           b->n ? "," : "", b->n,
			                           it->text[1] == '}' ? "" : ","));
			jsonw_put(&w, it->text + 1, strlen(it->text + 1));
			it->sent = true;
			b->items[b->n++] = it;
		}
		jsonw_put(&w, "]", 1);
		put_bodies(&bw, b->items, b->n);
		binlen[1] = (int)bw.len;
		b->lane = audit_chain_begin(st->chain, b->n, &chain, &chainlen);
		binlen[3] = chain != NULL ? (int)chainlen : -1;
		text = jsonw_take(&w);
		bodies = jsonw_take(&bw);
		/* NULL: jsonw could not grow a buffer; a 503 beats a stalled queue. */
		if (text != NULL && bodies != NULL) {
			params[0] = text;
			params[1] = bodies;
			params[2] = st->actions_json;
			params[3] = (const char *)chain; /* NULL: no chain */
			rc = db_query_bin(
			    st->pool,
			    "SELECT idx, verdict, callback_id, flag, lane_seq, mac FROM "
			    "bayarhook.ingest($1::jsonb, $2::text[], $3::jsonb, $4::bytea)",
			    4, params, binlen, batch_done, b);
		}
		free(text);
		free(bodies);
		free(chain);
		if (rc < 0) {
			if (b->lane >= 0)
				audit_chain_failed(st->chain, b->lane, true); /* never sent */
			commit_failed(st, NULL);
			for (int i = 0; i < b->n; i++)
				item_finish(st, b->items[i], STORE_FAILED, VERDICT_UNAVAILABLE);
			batch_free(b);
			continue;
		}
		st->inflight++;
	}
}

struct store *store_new(struct db_pool *pool)
{
	struct store *st = xcalloc(1, sizeof(*st));

	st->pool = pool;
	TAILQ_INIT(&st->live);
	st->actions_json = xstrdup("{}");
	st->audit_limit = audit_limit_new();
	st->chain = audit_chain_new();
	return st;
}

static void store_whens_free(struct store *st);

void store_free(struct store *st)
{
	struct store_item *it, *next;

	if (st == NULL)
		return;
	for (it = st->head; it; it = next) {
		next = it->next;
		item_free(it);
	}
	free(st->actions_json);
	store_whens_free(st);
	audit_limit_free(st->audit_limit);
	if (st->deadline)
		event_free(st->deadline);
	audit_chain_free(st->chain);
	free(st);
}

static void store_whens_free(struct store *st)
{
	for (size_t i = 0; i < st->nwhens; i++) {
		free(st->whens[i].action);
		when_free(st->whens[i].when);
	}
	free(st->whens);
	st->whens = NULL;
	st->nwhens = 0;
}

void store_set_actions(struct store *st, const struct config *cfg)
{
	free(st->actions_json);
	st->actions_json = config_actions_by_status(cfg, NULL);
	audit_chain_set_key(st->chain, cfg->audit_nkeys ? cfg->audit_keys[0] : NULL);
	store_whens_free(st);
	st->whens = xcalloc(cfg->nactions + 1, sizeof(*st->whens));
	for (size_t i = 0; i < cfg->nactions; i++) {
		const struct action_conf *a = &cfg->actions[i];
		char err[256];
		struct when *w;

		if (a->when == NULL || a->when[0] == '\0')
			continue;
		/* The config's load parsed it already: this cannot fail. */
		if ((w = when_parse(a->when, err, sizeof(err))) == NULL)
			continue;
		st->whens[st->nwhens].action = xstrdup(a->name);
		st->whens[st->nwhens++].when = w;
	}
}

static const char *store_when_lookup(const void *arg, const char *field)
{
	/* event_field only fills the event's cache of PHP texts: the event stays the same. */
	return event_field((struct pay_event *)(uintptr_t)arg, field);
}

/*
 * "skip": the actions whose `when` this event does not match. Decided here,
 * per item in C, so that ingest() stays one set-based INSERT of the jobs
 * (it leaves out the names listed); no key when none is skipped.
 */
static void store_write_skip(const struct store *st, struct jsonw *w, const struct pay_event *ev)
{
	bool open = false;

	for (size_t i = 0; st != NULL && i < st->nwhens; i++) {
		if (when_match(st->whens[i].when, store_when_lookup, ev))
			continue;
		if (!open)
			jsonw_begin_list(w, "skip");
		open = true;
		jsonw_cstr(w, NULL, st->whens[i].action);
	}
	if (open)
		jsonw_end_list(w);
}

/* ---- the answer deadline (SPEC §12) ---- */

/*
 * An item answered 503 before it was sent: its audit row says so (the
 * batch's later "http_status" and "error" win in jsonb), and the payment
 * is still recorded when the database answers again.
 */
static void item_mark_late(struct store *st, struct store_item *it)
{
	static const char late[] =
	    ",\"http_status\":503,\"error\":\"not durable within answer_timeout: answered 503\"}";
	size_t len = strlen(it->text);
	bool empty = len == 2;
	char *text;

	if (len < 2 || it->text[len - 1] != '}')
		return;
	st->bytes -= item_bytes(it);
	text = xmalloc(len - 1 + sizeof(late));
	memcpy(text, it->text, len - 1);
	memcpy(text + len - 1, late + empty, sizeof(late) - empty);
	free(it->text);
	it->text = text;
	st->bytes += item_bytes(it);
}

static void store_deadline_arm(struct store *st)
{
	const struct store_item *it = TAILQ_FIRST(&st->live);
	int64_t ms;
	struct timeval tv;

	if (st->deadline == NULL || it == NULL || evtimer_pending(st->deadline, NULL))
		return;
	ms = it->submitted_ms + st->answer_timeout_ms - now_ms();
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(st->deadline, &tv);
}

/* The outcome of an item answered STORE_LATE; the last of a stall says it ended. */
static void store_late_done(struct store *st, enum store_outcome o)
{
	st->late--;
	if (st->late > 0 || !st->stall_said)
		return;
	log_notice("store: %s; %u callback(s) were answered 503 by answer_timeout meanwhile",
	           o == STORE_COMMITTED ? "the database commits again"
	                                : "the transactions that stalled failed",
	           st->late_episode);
	st->stall_said = false;
	st->late_episode = 0;
}

static void store_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;
	int64_t now = now_ms();
	struct store_item *it;

	(void)fd;
	(void)what;
	while ((it = TAILQ_FIRST(&st->live)) != NULL &&
	       now - it->submitted_ms >= st->answer_timeout_ms) {
		store_done_cb cb = it->cb;

		TAILQ_REMOVE(&st->live, it, live);
		it->answered = true;
		it->cb = NULL;
		st->late++;
		st->late_episode++;
		if (it->sent)
			it->late_in_flight = true;
		else
			item_mark_late(st, it);
		if (!st->stall_said) {
			log_warnx("store: a callback was not durable within answer_timeout=%llds "
			          "(%u waiting, %d transaction(s) in flight); answering 503 until "
			          "the database answers",
			          (long long)(st->answer_timeout_ms / 1000), st->waiting,
			          st->inflight);
			st->stall_said = true;
		}
		cb(STORE_LATE, VERDICT_UNAVAILABLE, it->arg);
	}
	store_deadline_arm(st);
}

void store_set_answer_timeout(struct store *st, struct event_base *base, int seconds)
{
	if (st->deadline == NULL)
		st->deadline = evtimer_new(base, store_deadline, st);
	st->answer_timeout_ms = (int64_t)seconds * 1000;
	evtimer_del(st->deadline);
	store_deadline_arm(st);
}

static int store_enqueue(struct store *st, char *item, char *body, size_t body_len,
                         store_done_cb cb, void *arg, bool bounded)
{
	struct store_item *it;
	size_t bytes;

	if (item == NULL || item[0] != '{' || body_len > INT32_MAX || db_pool_up(st->pool) == 0) {
		free(item);
		free(body);
		return -1;
	}
	bytes = strlen(item) + body_len + sizeof(*it);
	if (st->bytes + bytes > STORE_MAX_BYTES) {
		if (now_sec() - st->full_logged >= 10) {
			log_warnx("store: %zu bytes waiting for the database; refusing items until "
			          "they are written",
			          st->bytes);
			st->full_logged = now_sec();
		}
		free(item);
		free(body);
		return -1;
	}
	it = xcalloc(1, sizeof(*it));
	it->text = item;
	it->body = body;
	it->body_len = body_len;
	it->cb = cb;
	it->arg = arg;
	if (bounded && st->answer_timeout_ms > 0) {
		it->bounded = true;
		it->submitted_ms = now_ms();
		TAILQ_INSERT_TAIL(&st->live, it, live);
		store_deadline_arm(st);
	}
	if (st->tail)
		st->tail->next = it;
	else
		st->head = it;
	st->tail = it;
	st->waiting++;
	st->outstanding++;
	st->bytes += bytes;
	store_flush(st);
	return 0;
}

int store_submit(struct store *st, char *item, char *body, size_t body_len, store_done_cb cb,
                 void *arg)
{
	return store_enqueue(st, item, body, body_len, cb, arg, false);
}

int store_submit_bounded(struct store *st, char *item, char *body, size_t body_len,
                         store_done_cb cb, void *arg)
{
	return store_enqueue(st, item, body, body_len, cb, arg, true);
}

void store_on_commit(struct store *st, void (*cb)(void *arg), void *arg)
{
	st->commit_cb = cb;
	st->commit_arg = arg;
}

struct audit_limit *store_audit_limit(struct store *st)
{
	return st->audit_limit;
}

void store_audit_checkpoint(const struct store *st, const char *why)
{
	audit_chain_checkpoint(st->chain, why);
}

unsigned store_outstanding(const struct store *st)
{
	return st->outstanding;
}

const char *store_degraded(const struct store *st)
{
	const struct store_item *oldest = TAILQ_FIRST(&st->live);

	if (st->failing && st->read_only)
		return "read-only session";
	if (st->late > 0 ||
	    (oldest != NULL && now_ms() - oldest->submitted_ms >= st->answer_timeout_ms))
		return "answer_timeout passed";
	if (st->failing && now_sec() - st->failed_at < STORE_FAILING_SEC)
		return "commit failed";
	return NULL;
}

bool store_writes_failing(const struct store *st)
{
	return store_degraded(st) != NULL;
}

/* Only numeric text goes to a numeric column; anything else would fail the batch. */
static bool numeric_text(const char *s)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || strspn(s, "0123456789.-+eE") != strlen(s))
		return false;
	/*
	 * Out of double's range is also out of what is sane for an amount, and
	 * past numeric's range PostgreSQL would refuse the cast and fail the item
	 * (an unsigned field must never cost the callback its 200).
	 */
	errno = 0;
	v = strtod(s, &end);
	return *end == '\0' && errno != ERANGE && isfinite(v);
}

void store_write_event(const struct store *st, struct jsonw *w, const struct pay_event *ev,
                       const char *source, const char *raw, size_t rawlen)
{
	const cJSON *f;

	store_write_skip(st, w, ev);
	jsonw_cstr(w, "invoice_id", ev->invoice_id);
	jsonw_cstr(w, "status", event_status_name(ev->status));
	jsonw_cstr(w, "event_name", ev->event_name);
	if (numeric_text(ev->final_amount))
		jsonw_cstr(w, "final_amount", ev->final_amount);
	if (numeric_text(ev->amount))
		jsonw_cstr(w, "amount", ev->amount);
	f = cJSON_GetObjectItemCaseSensitive(ev->json, "paid_at");
	if (cJSON_IsString(f))
		jsonw_cstr(w, "paid_at", f->valuestring);
	f = cJSON_GetObjectItemCaseSensitive(ev->json, "paid_reff_num");
	if (cJSON_IsString(f))
		jsonw_cstr(w, "paid_reff_num", f->valuestring);
	jsonw_cstr(w, "source", source);
	/* Valid JSON text already, embedded, not parsed and printed again. */
	if (raw != NULL)
		jsonw_raw(w, "event", raw, rawlen);
}
