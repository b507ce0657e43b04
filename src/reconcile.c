/*
 * reconcile.c: one reconciliation pass at a time (see reconcile.h).
 *
 * A pass takes the advisory lock on a pool session, writes its row, then
 * runs two feeds into one queue of invoices to check: the local pending
 * invoices, and list-payments pages, each page filtered against the
 * payments already paid here. Checks go to the gateway a few at a time (it
 * enforces the rate limit and the retries); the next page is fetched only
 * while the queue is short, so memory stays bounded however many payments
 * the gateway lists. list-payments is newest first, so a payment made
 * during the sweep pushes older ones to later pages: they are seen twice,
 * never skipped, and the set of seen invoices drops the repeat.
 *
 * The lock is about not asking the gateway twice, not about correctness:
 * the store decides every verdict against committed rows, so a pass that
 * loses its lock connection and overlaps another records nothing twice.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "event.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "reconcile.h"

#define PASS_WINDOW (GATEWAY_MAX_INFLIGHT * 2) /* checks handed to the gateway at once */
#define PASS_TODO_HIGH 200                     /* fetch the next page only while fewer wait */
#define PASS_MAX_PAGES 100000                  /* a gateway that never says "last page" */
#define PASS_MAX_PENDING "10000"               /* local pending invoices per pass */
#define PASS_MAX_FAILS 10        /* gateway calls failing in a row (each after its retries) */
#define RECONCILE_FIRST_DELAY 10 /* seconds after start before serve's first pass */

struct todo {
	struct todo *next;
	char *invoice;
	bool from_list; /* list-payments said paid; else a local pending invoice */
};

/* Invoices already queued in this pass: open addressing, FNV-1a. */
struct strset {
	char **slots;
	size_t cap, n;
};

enum pass_phase {
	PHASE_LOCKING,   /* waiting for the session, then pg_try_advisory_lock */
	PHASE_STARTING,  /* writing the reconcile_passes row */
	PHASE_RUNNING,   /* pages, checks and stores in flight */
	PHASE_FINISHING, /* writing the result, then unlocking */
};

/* A check at the gateway; listed so that a cancelled one can be freed. */
struct check_ctx {
	struct check_ctx *prev, *next;
	struct pass *p;
	struct todo *t;
};

struct pass {
	struct reconcile *rc;
	enum pass_phase phase;
	reconcile_report_cb report;
	reconcile_done_cb done;
	void *arg;
	struct db_session *session; /* holds the advisory lock */
	long long id;
	struct timespec t0;
	int lookback, min_age;
	char start_date[16];

	struct todo *head, *tail;
	size_t ntodo;
	struct strset seen;
	struct check_ctx *checks; /* at the gateway */
	int next_page;
	bool pending_loaded; /* the local pending invoices are queued */
	bool sweep_done;     /* no more pages to ask for */
	bool page_call;      /* a list-payments call is at the gateway */
	bool aborting;       /* send nothing more; finish when the outstanding work is back */
	bool stopped;        /* aborted by shutdown rather than by an error */
	bool in_store;       /* inside store_submit, whose callback may come at once */
	int checks_out, stores_out, db_out;
	int fails; /* gateway calls failed in a row */
	int checked, found, errors, requests, pages;
	char note[256];
};

struct reconcile {
	struct event_base *base;
	struct db_pool *pool;
	struct store *store;
	struct gateway *gw;
	char *trigger;
	char runner[160];
	bool enabled;
	int interval, lookback, min_age;
	struct event *ev_timer; /* serve: the next periodic pass */
	struct event *ev_kick;  /* starts a requested pass from the loop */
	bool started, stopped;
	struct pass *pass;
};

/* ---- small helpers ---- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* Returns 1 when added, 0 when present, -1 when out of memory. */
static int strset_add(struct strset *set, const char *s)
{
	size_t i;

	if (set->n * 2 >= set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 256;
		char **slots = calloc(cap, sizeof(*slots));

		if (slots == NULL)
			return -1;
		for (size_t j = 0; j < set->cap; j++) {
			if (set->slots[j] == NULL)
				continue;
			for (i = fnv1a(set->slots[j]) & (cap - 1); slots[i];
			     i = (i + 1) & (cap - 1))
				;
			slots[i] = set->slots[j];
		}
		free(set->slots);
		set->slots = slots;
		set->cap = cap;
	}
	for (i = fnv1a(s) & (set->cap - 1); set->slots[i]; i = (i + 1) & (set->cap - 1))
		if (strcmp(set->slots[i], s) == 0)
			return 0;
	if ((set->slots[i] = strdup(s)) == NULL)
		return -1;
	set->n++;
	return 1;
}

static void strset_free(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

static double elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void reconcile_start_date(time_t now, int lookback, char *buf, size_t len)
{
	/* The gateway's dates are WIB (UTC+7), and its day may have begun before ours. */
	time_t t = now + 7 * 3600 - (time_t)lookback - 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

time_t reconcile_wib_time(const char *text)
{
	struct tm tm;
	const char *end;
	time_t t;

	if (text == NULL)
		return (time_t)-1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(text, "%Y-%m-%d %H:%M:%S", &tm);
	if (end == NULL || *end != '\0' || (t = timegm(&tm)) == (time_t)-1)
		return (time_t)-1;
	return t - 7 * 3600;
}

static void __attribute__((format(printf, 4, 5)))
pass_say(struct pass *p, enum reconcile_report kind, const char *invoice, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	if (p->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	p->report(kind, invoice, text, p->arg);
}

/* The first failure is the note; later ones only count. */
static void __attribute__((format(printf, 2, 3))) pass_note(struct pass *p, const char *fmt, ...)
{
	va_list ap;

	if (p->note[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->note, sizeof(p->note), fmt, ap);
	va_end(ap);
}

static void checks_free(struct pass *p)
{
	struct check_ctx *cc, *next;

	for (cc = p->checks; cc; cc = next) {
		next = cc->next;
		free(cc->t->invoice);
		free(cc->t);
		free(cc);
	}
	p->checks = NULL;
	p->checks_out = 0;
}

static void pass_free(struct pass *p)
{
	struct todo *t, *next;

	if (p == NULL)
		return;
	checks_free(p);
	for (t = p->head; t; t = next) {
		next = t->next;
		free(t->invoice);
		free(t);
	}
	strset_free(&p->seen);
	free(p);
}

/* Queues invoice once per pass; 0, or -1 when out of memory. */
static int pass_enqueue(struct pass *p, const char *invoice, bool from_list)
{
	struct todo *t;
	int added = strset_add(&p->seen, invoice);

	if (added <= 0)
		return added;
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->invoice = strdup(invoice)) == NULL) {
		free(t);
		return -1;
	}
	t->from_list = from_list;
	if (p->tail)
		p->tail->next = t;
	else
		p->head = t;
	p->tail = t;
	p->ntodo++;
	return 0;
}

/* ---- the end of a pass ---- */

static void reconcile_arm(struct reconcile *rc, int seconds);

static void pass_complete(struct pass *p, const char *result)
{
	struct reconcile *rc = p->rc;
	struct reconcile_summary s;

	memset(&s, 0, sizeof(s));
	s.id = p->id;
	s.result = result;
	s.checked = p->checked;
	s.found = p->found;
	s.errors = p->errors;
	s.requests = p->requests;
	s.pages = p->pages;
	s.seconds = elapsed(&p->t0);
	s.note = p->note[0] ? p->note : NULL;
	if (strcmp(result, "skipped") != 0)
		metrics_inc(METRIC_RECONCILER_PASSES, result);
	rc->pass = NULL;
	if (p->done)
		p->done(&s, p->arg);
	pass_free(p);
	if (rc->started && !rc->stopped)
		reconcile_arm(rc, rc->interval);
}

static const char *pass_result(const struct pass *p)
{
	if (p->stopped)
		return "aborted";
	if (p->aborting || p->errors > 0 || p->note[0])
		return "failed";
	return "completed";
}

static void pass_unlocked(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct pass *p = arg;

	(void)res;
	(void)sqlstate;
	if (err)
		log_warnx("reconcile: cannot release the lock (the session ends it anyway): %s",
		          err);
	db_session_close(p->session);
	p->session = NULL;
	pass_complete(p, pass_result(p));
}

static void pass_unlock(struct pass *p)
{
	if (p->session == NULL) {
		pass_complete(p, pass_result(p));
		return;
	}
	db_session_query(p->session, "SELECT pg_advisory_unlock(" RECONCILE_LOCK_KEY ")", 0, NULL,
	                 pass_unlocked, p);
}

static void pass_recorded(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct pass *p = arg;

	(void)res;
	(void)sqlstate;
	if (err)
		log_warnx("reconcile: cannot record the end of pass %lld: %s", p->id, err);
	pass_unlock(p);
}

static void pass_finish(struct pass *p)
{
	char id[24], n[5][16];
	const char *params[8];

	p->phase = PHASE_FINISHING;
	if (p->id == 0) {
		pass_unlock(p);
		return;
	}
	snprintf(id, sizeof(id), "%lld", p->id);
	snprintf(n[0], sizeof(n[0]), "%d", p->checked);
	snprintf(n[1], sizeof(n[1]), "%d", p->found);
	snprintf(n[2], sizeof(n[2]), "%d", p->errors);
	snprintf(n[3], sizeof(n[3]), "%d", p->requests);
	snprintf(n[4], sizeof(n[4]), "%d", p->pages);
	params[0] = id;
	params[1] = n[0];
	params[2] = n[1];
	params[3] = n[2];
	params[4] = n[3];
	params[5] = n[4];
	params[6] = pass_result(p);
	params[7] = p->note[0] ? p->note : NULL;
	if (db_query(p->rc->pool,
	             "UPDATE bayarhook.reconcile_passes SET finished_at = now(), checked = $2,"
	             " found = $3, errors = $4, requests = $5, pages = $6, result = $7, note = $8"
	             " WHERE id = $1",
	             8, params, pass_recorded, p) < 0) {
		log_warnx("reconcile: cannot record the end of pass %lld: database unavailable",
		          p->id);
		pass_unlock(p);
	}
}

static void pass_abort(struct pass *p, const char *why)
{
	if (p->aborting)
		return;
	p->aborting = true;
	pass_note(p, "%s", why);
	gateway_cancel(p->rc->gw, p);
	checks_free(p);
	p->page_call = false;
}

/* ---- the work ---- */

static void pass_pump(struct pass *p);

struct store_ctx {
	struct pass *p;
	char *invoice;
	char what[120];
};

static void pass_stored(enum store_outcome outcome, enum verdict verdict, void *arg)
{
	struct store_ctx *sc = arg;
	struct pass *p = sc->p;

	p->stores_out--;
	if (outcome != STORE_COMMITTED) {
		p->errors++;
		pass_note(p, "could not record %s: database unavailable", sc->invoice);
		pass_say(p, RECONCILE_ERROR, sc->invoice,
		         "could not record it: database unavailable");
	} else if (verdict == VERDICT_ACCEPTED) {
		p->found++;
		metrics_inc(METRIC_RECONCILER_FOUND, NULL);
		pass_say(p, RECONCILE_FOUND, sc->invoice, "%s", sc->what);
	} else {
		/* A callback (or another process) got there first. */
		pass_say(p, RECONCILE_CHECKED, sc->invoice, "%s: already recorded (%s)", sc->what,
		         verdict_name(verdict));
	}
	free(sc->invoice);
	free(sc);
	if (!p->in_store)
		pass_pump(p);
}

/* Records the gateway's answer exactly as a verified callback, source reconciler. */
static void pass_store(struct pass *p, const struct pay_event *ev)
{
	struct store_ctx *sc = calloc(1, sizeof(*sc));
	cJSON *event = cJSON_Duplicate(ev->json, 1);
	char *item = NULL, *text;
	struct jsonw w;
	int rc;

	if (sc == NULL || event == NULL || (sc->invoice = strdup(ev->invoice_id)) == NULL) {
		cJSON_Delete(event);
		free(sc);
		p->errors++;
		pass_note(p, "out of memory");
		return;
	}
	/*
	 * What actions read: check-payment's answer shaped like a callback,
	 * without the API envelope, with the event name a callback carries.
	 */
	cJSON_DeleteItemFromObjectCaseSensitive(event, "success");
	if (!cJSON_HasObjectItem(event, "event")) {
		char name[32];

		snprintf(name, sizeof(name), "payment.%s", event_status_name(ev->status));
		cJSON_AddStringToObject(event, "event", name);
	}
	text = cJSON_PrintUnformatted(event);
	cJSON_Delete(event);
	if (text != NULL) {
		jsonw_begin(&w);
		store_write_event(&w, ev, "reconciler", text, strlen(text));
		/* No audit row: bayarhook.callbacks holds requests to the callback path only. */
		jsonw_bool(&w, "audit", false);
		item = jsonw_finish(&w);
		free(text);
	}
	snprintf(sc->what, sizeof(sc->what), "recorded %s, final_amount %s",
	         event_status_name(ev->status), ev->final_amount);
	sc->p = p;
	p->stores_out++;
	p->in_store = true;
	rc = store_submit(p->rc->store, item, NULL, 0, pass_stored, sc);
	p->in_store = false;
	if (rc < 0) {
		p->stores_out--;
		p->errors++;
		pass_note(p, "could not record %s: database unavailable", sc->invoice);
		pass_say(p, RECONCILE_ERROR, sc->invoice,
		         "could not record it: database unavailable");
		free(sc->invoice);
		free(sc);
	}
}

static void pass_checked(const struct gateway_reply *r, void *arg)
{
	struct check_ctx *cc = arg;
	struct pass *p = cc->p;
	struct todo *t = cc->t;

	if (cc->prev)
		cc->prev->next = cc->next;
	else
		p->checks = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	free(cc);
	p->checks_out--;
	p->requests += r->attempts;
	if (r->error == GATEWAY_OK || r->error == GATEWAY_ERR_NOT_FOUND)
		p->fails = 0;
	switch (r->error) {
	case GATEWAY_OK:
		p->checked++;
		if (r->event->status == STATUS_PENDING)
			pass_say(p, RECONCILE_CHECKED, t->invoice, "still pending");
		else
			pass_store(p, r->event);
		break;
	case GATEWAY_ERR_NOT_FOUND:
		if (t->from_list) {
			p->errors++;
			pass_note(p, "%s", r->message);
			pass_say(p, RECONCILE_ERROR, t->invoice, "%s", r->message);
		} else {
			/* Known here only, e.g. from another merchant account: not ours to fix. */
			p->checked++;
			pass_say(p, RECONCILE_CHECKED, t->invoice, "the gateway does not know it");
		}
		break;
	case GATEWAY_ERR_AUTH:
	case GATEWAY_ERR_CONFIG:
		/* Every other request would fail the same way. */
		p->errors++;
		pass_say(p, RECONCILE_ERROR, t->invoice, "%s", r->message);
		pass_abort(p, r->message);
		break;
	default:
		p->errors++;
		pass_note(p, "%s", r->message);
		pass_say(p, RECONCILE_ERROR, t->invoice, "%s", r->message);
		/* Each failure already took its retries: the gateway is down, stop asking. */
		if (++p->fails >= PASS_MAX_FAILS)
			pass_abort(p, "the gateway failed too many requests in a row");
		break;
	}
	free(t->invoice);
	free(t);
	pass_pump(p);
}

struct page_ctx {
	struct pass *p;
	bool last;
};

static void pass_filtered(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct page_ctx *pc = arg;
	struct pass *p = pc->p;

	(void)sqlstate;
	p->db_out--;
	if (res == NULL) {
		p->errors++;
		pass_note(p, "database: %s", err);
		p->sweep_done = true;
	} else {
		for (int i = 0; i < PQntuples(res); i++) {
			if (pass_enqueue(p, PQgetvalue(res, i, 0), true) < 0) {
				pass_abort(p, "out of memory");
				break;
			}
		}
		if (pc->last)
			p->sweep_done = true;
	}
	free(pc);
	pass_pump(p);
}

static void pass_paged(const struct gateway_reply *r, void *arg)
{
	struct pass *p = arg;
	const struct gateway_page *pg = r->page;
	struct page_ctx *pc = NULL;
	cJSON *ids = NULL;
	char *text = NULL;
	int page = p->next_page;

	p->page_call = false;
	p->requests += r->attempts;
	if (r->error != GATEWAY_OK) {
		p->errors++;
		p->sweep_done = true;
		pass_say(p, RECONCILE_ERROR, NULL, "%s", r->message);
		if (r->error == GATEWAY_ERR_AUTH || r->error == GATEWAY_ERR_CONFIG)
			pass_abort(p, r->message);
		else
			pass_note(p, "%s", r->message);
		pass_pump(p);
		return;
	}
	p->pages++;
	p->next_page++;
	pc = calloc(1, sizeof(*pc));
	ids = cJSON_CreateArray();
	if (pc == NULL || ids == NULL)
		goto oom;
	pc->p = p;
	pc->last = page >= pg->total_pages || pg->n == 0 || p->next_page > PASS_MAX_PAGES;
	for (size_t i = 0; i < pg->n; i++) {
		const struct gateway_payment *gp = &pg->items[i];
		time_t paid = reconcile_wib_time(gp->paid_at);

		/* The sweep is for paid ones; anything else is not ours to act on. */
		if (strcmp(gp->status, "paid") != 0)
			continue;
		/* Just paid: its callback is probably on its way; the next pass has it. */
		if (paid != (time_t)-1 && paid > time(NULL) - p->min_age) {
			pass_say(p, RECONCILE_CHECKED, gp->invoice_id,
			         "paid less than min_age ago, left to its callback");
			continue;
		}
		if (!cJSON_AddItemToArray(ids, cJSON_CreateString(gp->invoice_id)))
			goto oom;
	}
	log_debug("reconcile: list-payments page %d of %d: %zu payments", page, pg->total_pages,
	          pg->n);
	if (cJSON_GetArraySize(ids) == 0) {
		p->sweep_done = pc->last;
		free(pc);
		cJSON_Delete(ids);
		pass_pump(p);
		return;
	}
	if ((text = cJSON_PrintUnformatted(ids)) == NULL)
		goto oom;
	cJSON_Delete(ids);
	ids = NULL;
	{
		const char *params[1] = {text};

		/* Only what is not paid here yet needs a check-payment. */
		p->db_out++;
		if (db_query(p->rc->pool,
		             "SELECT i FROM jsonb_array_elements_text($1::jsonb) AS i"
		             " WHERE NOT EXISTS (SELECT 1 FROM bayarhook.payments p"
		             "  WHERE p.invoice_id = i AND p.status = 'paid')",
		             1, params, pass_filtered, pc) < 0) {
			p->db_out--;
			p->errors++;
			p->sweep_done = true;
			pass_note(p, "database unavailable");
			free(pc);
		}
	}
	free(text);
	pass_pump(p);
	return;
oom:
	free(pc);
	cJSON_Delete(ids);
	pass_abort(p, "out of memory");
	pass_pump(p);
}

static void pass_pending_loaded(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct pass *p = arg;

	(void)sqlstate;
	p->db_out--;
	p->pending_loaded = true;
	if (res == NULL) {
		p->errors++;
		pass_note(p, "database: %s", err);
	} else {
		for (int i = 0; i < PQntuples(res); i++) {
			if (pass_enqueue(p, PQgetvalue(res, i, 0), false) < 0) {
				pass_abort(p, "out of memory");
				break;
			}
		}
	}
	pass_pump(p);
}

/* Sends what may be sent; finishes the pass when nothing is left. */
static void pass_pump(struct pass *p)
{
	struct gateway *gw = p->rc->gw;

	if (p->phase != PHASE_RUNNING)
		return;
	if (!p->aborting && p->rc->stopped) {
		p->stopped = true;
		pass_abort(p, "stopped: bayarhook is shutting down");
	}
	while (!p->aborting && p->head && p->checks_out < PASS_WINDOW) {
		struct todo *t = p->head;
		struct check_ctx *cc = calloc(1, sizeof(*cc));

		if (cc == NULL) {
			pass_abort(p, "out of memory");
			break;
		}
		p->head = t->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->ntodo--;
		cc->p = p;
		cc->t = t;
		if (gateway_check_payment(gw, t->invoice, false, p, pass_checked, cc) < 0) {
			free(cc);
			free(t->invoice);
			free(t);
			pass_abort(p, "out of memory");
			break;
		}
		cc->next = p->checks;
		if (p->checks)
			p->checks->prev = cc;
		p->checks = cc;
		p->checks_out++;
	}
	if (!p->aborting && !p->sweep_done && !p->page_call && p->db_out == 0 &&
	    p->ntodo < PASS_TODO_HIGH) {
		if (gateway_list_payments(gw, "paid", p->start_date, p->next_page,
		                          GATEWAY_PAGE_LIMIT, p, pass_paged, p) < 0)
			pass_abort(p, "out of memory");
		else
			p->page_call = true;
	}
	if (p->checks_out || p->stores_out || p->db_out || p->page_call)
		return;
	if (p->aborting || (p->pending_loaded && p->sweep_done && p->head == NULL))
		pass_finish(p);
}

static void pass_row(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct pass *p = arg;
	char secs[2][16];
	const char *params[2] = {secs[0], secs[1]};

	(void)sqlstate;
	if (res == NULL || PQntuples(res) != 1) {
		pass_note(p, "cannot record the pass (is the schema migrated?): %s",
		          err ? err : "no row");
		p->aborting = true;
		pass_finish(p);
		return;
	}
	p->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	p->phase = PHASE_RUNNING;
	if (!gateway_has_key(p->rc->gw)) {
		p->errors++;
		pass_abort(p, "no API key configured ([gateway] api_key_file)");
		pass_pump(p);
		return;
	}
	log_info("reconcile: pass %lld started, list-payments since %s", p->id, p->start_date);
	/* Old enough that its callback should have come; young enough to still matter. */
	snprintf(secs[0], sizeof(secs[0]), "%d", p->min_age);
	snprintf(secs[1], sizeof(secs[1]), "%d", p->lookback + 86400);
	p->db_out++;
	if (db_query(p->rc->pool,
	             "SELECT invoice_id FROM bayarhook.payments WHERE status = 'pending'"
	             " AND first_seen_at <= now() - make_interval(secs => $1::integer)"
	             " AND first_seen_at >= now() - make_interval(secs => $2::integer)"
	             " ORDER BY first_seen_at LIMIT " PASS_MAX_PENDING,
	             2, params, pass_pending_loaded, p) < 0) {
		p->db_out--;
		p->pending_loaded = true;
		p->errors++;
		pass_note(p, "database unavailable");
	}
	pass_pump(p);
}

static void pass_locked(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct pass *p = arg;
	const char *params[2] = {p->rc->trigger, p->rc->runner};

	(void)sqlstate;
	if (res == NULL || PQntuples(res) != 1) {
		pass_note(p, "database: %s", err ? err : "no answer");
		db_session_close(p->session);
		p->session = NULL;
		pass_complete(p, "failed");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		pass_note(p, "another process is reconciling this database");
		db_session_close(p->session);
		p->session = NULL;
		pass_complete(p, "skipped");
		return;
	}
	p->phase = PHASE_STARTING;
	/*
	 * Holding the lock, any pass still "running" belongs to a process that
	 * died mid-pass: close it so that the table does not lie.
	 */
	db_session_query(
	    p->session,
	    "WITH stale AS (UPDATE bayarhook.reconcile_passes SET result = 'aborted',"
	    "  note = coalesce(note || '; ', '') || 'the process ended during the pass'"
	    "  WHERE result = 'running' RETURNING 1)"
	    " INSERT INTO bayarhook.reconcile_passes (trigger, runner) VALUES ($1, $2)"
	    " RETURNING id",
	    2, params, pass_row, p);
}

static void pass_session(struct db_session *s, void *arg)
{
	struct pass *p = arg;

	if (s == NULL) {
		pass_note(p, "database unavailable");
		pass_complete(p, "failed");
		return;
	}
	p->session = s;
	db_session_query(s, "SELECT pg_try_advisory_lock(" RECONCILE_LOCK_KEY ")", 0, NULL,
	                 pass_locked, p);
}

static void reconcile_kick(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile *rc = arg;
	struct pass *p = rc->pass;

	(void)fd;
	(void)what;
	if (p == NULL || p->phase != PHASE_LOCKING || p->session)
		return;
	if (rc->stopped) {
		pass_note(p, "stopped: bayarhook is shutting down");
		pass_complete(p, "skipped");
		return;
	}
	if (db_session_open(rc->pool, pass_session, p) < 0) {
		pass_note(p, "database unavailable");
		pass_complete(p, "failed");
	}
}

int reconcile_run(struct reconcile *rc, reconcile_report_cb report, reconcile_done_cb done,
                  void *arg)
{
	struct pass *p;

	if (rc->pass)
		return -1;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	p->rc = rc;
	p->phase = PHASE_LOCKING;
	p->report = report;
	p->done = done;
	p->arg = arg;
	p->lookback = rc->lookback;
	p->min_age = rc->min_age;
	p->next_page = 1;
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	reconcile_start_date(time(NULL), p->lookback, p->start_date, sizeof(p->start_date));
	rc->pass = p;
	event_active(rc->ev_kick, EV_TIMEOUT, 1);
	return 0;
}

/* ---- serve: the periodic pass ---- */

static void serve_report(enum reconcile_report kind, const char *invoice, const char *text,
                         void *arg)
{
	(void)arg;
	switch (kind) {
	case RECONCILE_FOUND:
		log_notice("reconcile: invoice=%s %s", invoice, text);
		break;
	case RECONCILE_ERROR:
		log_warnx("reconcile: %s%s%s", invoice ? "invoice=" : "", invoice ? invoice : "",
		          text);
		break;
	case RECONCILE_CHECKED:
		log_debug("reconcile: invoice=%s %s", invoice, text);
		break;
	}
}

static void serve_done(const struct reconcile_summary *s, void *arg)
{
	(void)arg;
	if (strcmp(s->result, "skipped") == 0) {
		log_info("reconcile: pass skipped: %s", s->note ? s->note : "");
		return;
	}
	log_msg(strcmp(s->result, "completed") == 0 ? LOG_INFO : LOG_WARNING,
	        "reconcile: pass %lld %s: checked=%d found=%d errors=%d requests=%d pages=%d "
	        "seconds=%.1f%s%s",
	        s->id, s->result, s->checked, s->found, s->errors, s->requests, s->pages,
	        s->seconds, s->note ? " note=" : "", s->note ? s->note : "");
}

static void reconcile_timer(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile *rc = arg;

	(void)fd;
	(void)what;
	if (!rc->enabled || rc->stopped || rc->pass)
		return;
	if (reconcile_run(rc, serve_report, serve_done, rc) < 0) {
		log_errx("reconcile: out of memory");
		reconcile_arm(rc, rc->interval);
	}
}

static void reconcile_arm(struct reconcile *rc, int seconds)
{
	struct timeval tv = {seconds, 0};

	if (rc->enabled && !rc->stopped)
		evtimer_add(rc->ev_timer, &tv);
	else
		evtimer_del(rc->ev_timer);
}

void reconcile_start(struct reconcile *rc)
{
	rc->started = true;
	reconcile_arm(rc,
	              rc->interval < RECONCILE_FIRST_DELAY ? rc->interval : RECONCILE_FIRST_DELAY);
}

void reconcile_stop(struct reconcile *rc)
{
	if (rc == NULL || rc->stopped)
		return;
	rc->stopped = true;
	evtimer_del(rc->ev_timer);
	if (rc->pass && rc->pass->phase == PHASE_RUNNING)
		pass_pump(rc->pass);
}

bool reconcile_busy(const struct reconcile *rc)
{
	return rc != NULL && rc->pass != NULL;
}

int reconcile_configure(struct reconcile *rc, const struct config *cfg)
{
	bool was = rc->enabled;
	int interval = rc->interval;

	rc->enabled = cfg->reconciler_enabled;
	rc->interval = cfg->reconciler_interval;
	rc->lookback = cfg->reconciler_lookback;
	rc->min_age = cfg->reconciler_min_age;
	if (rc->started && rc->pass == NULL && (was != rc->enabled || interval != rc->interval))
		reconcile_arm(rc, rc->interval);
	if (rc->started && rc->enabled && (cfg->api_key == NULL || cfg->api_key[0] == '\0'))
		log_warnx("reconcile: [reconciler] enabled but no [gateway] api_key_file: "
		          "passes will fail");
	return 0;
}

struct reconcile *reconcile_new(struct event_base *base, const struct config *cfg,
                                struct db_pool *pool, struct store *store, struct gateway *gw,
                                const char *trigger)
{
	struct reconcile *rc = calloc(1, sizeof(*rc));
	char host[64];

	if (rc == NULL)
		return NULL;
	rc->base = base;
	rc->pool = pool;
	rc->store = store;
	rc->gw = gw;
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(rc->runner, sizeof(rc->runner), "%s:%ld", host, (long)getpid());
	rc->trigger = strdup(trigger);
	rc->ev_timer = evtimer_new(base, reconcile_timer, rc);
	rc->ev_kick = event_new(base, -1, 0, reconcile_kick, rc);
	if (rc->trigger == NULL || rc->ev_timer == NULL || rc->ev_kick == NULL ||
	    reconcile_configure(rc, cfg) < 0) {
		reconcile_free(rc);
		return NULL;
	}
	return rc;
}

void reconcile_free(struct reconcile *rc)
{
	if (rc == NULL)
		return;
	if (rc->pass) {
		gateway_cancel(rc->gw, rc->pass);
		db_session_close(rc->pass->session);
		pass_free(rc->pass);
	}
	if (rc->ev_timer)
		event_free(rc->ev_timer);
	if (rc->ev_kick)
		event_free(rc->ev_kick);
	free(rc->trigger);
	free(rc);
}
