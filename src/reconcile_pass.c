/*
 * reconcile_pass.c: one reconciliation pass (see reconcile_pass.h).
 *
 * A pass takes the reconcile lease (reconcile_lease.c), writes its row, then
 * runs two feeds: the local pending invoices, each asked with
 * check-payment, and list-payments pages of every status in [reconciler]
 * statuses (paid, then expired, then cancelled), each item recorded as it
 * is listed: an item carries check-payment's fields, so asking again would
 * only spend the budget (1,000 invoices are 10 pages, not 1,010 requests).
 * A page is filtered against what is already so here before the store sees
 * it. Checks go to the gateway a few at a time (it enforces the rate limit
 * and the retries); the next page is fetched only when the previous one is
 * mostly recorded and the queue of checks is short, so memory stays
 * bounded however many payments the gateway lists. list-payments is newest
 * first, so a payment made during the sweep pushes older ones to later
 * pages: they are seen twice, never skipped, and the pass drops the repeat.
 *
 * The lease is about not asking the gateway twice, not about correctness:
 * the store decides every verdict against committed rows, so a pass that
 * loses its lease and overlaps another records nothing twice. A lost lease
 * (taken over after this process stalled, or not renewable in time) aborts
 * the pass.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "jsonw.h"
#include "log.h"
#include "reconcile_lease.h"
#include "reconcile_pass.h"
#include "reconcile_record.h"
#include "reconcile_todo.h"
#include "stats.h"
#include "xmalloc.h"

#define PASS_WINDOW (GATEWAY_MAX_INFLIGHT * 2) /* checks handed to the gateway at once */
#define PASS_TODO_HIGH 200                     /* fetch the next page only while fewer wait */
#define PASS_STORES_HIGH GATEWAY_PAGE_LIMIT    /* ... and fewer findings are being recorded */
#define PASS_MAX_PAGES 100000                  /* a gateway that never says "last page" */
#define PASS_MAX_PENDING "10000"               /* local pending invoices per pass */
#define PASS_MAX_FAILS 10 /* gateway calls failing in a row (each after its retries) */

enum pass_phase {
	PHASE_LOCKING,   /* taking the reconcile lease */
	PHASE_STARTING,  /* writing the reconcile_passes row */
	PHASE_RUNNING,   /* pages, checks and stores in flight */
	PHASE_FINISHING, /* writing the result, then releasing the lease */
};

/* A check at the gateway; listed so that a cancelled one can be freed. */
struct check_ctx {
	struct check_ctx *prev, *next;
	struct reconcile_pass *p;
	struct reconcile_todo *t;
};

struct reconcile_pass {
	struct reconcile_pass_env env;
	enum pass_phase phase;
	reconcile_report_cb report;
	void *report_arg;
	reconcile_done_cb done;
	void *done_arg;
	struct reconcile_lease *lease; /* taken in PHASE_LOCKING, released at the end */
	bool leading;                  /* the lease was taken and not yet released */
	long long id;
	struct timespec t0;
	char start_date[16];

	struct reconcile_todos todo;
	struct check_ctx *checks; /* at the gateway */
	int sweep;                /* index into sweep_order of the status being swept */
	int next_page;
	bool pending_loaded; /* the local pending invoices are queued */
	bool sweep_done;     /* no more pages to ask for */
	bool page_call;      /* a list-payments call is at the gateway */
	bool stop;           /* reconcile_pass_stop(): the process is shutting down */
	bool aborting;       /* send nothing more; finish when the outstanding work is back */
	bool stopped;        /* aborted by shutdown rather than by an error */
	bool in_store;       /* inside store_submit, whose callback may come at once */
	int checks_out, stores_out, db_out;
	int fails; /* gateway calls failed in a row */
	int checked, found, errors, requests, pages;
	char note[256];
};

static double pass_elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void __attribute__((format(printf, 4, 5)))
pass_say(struct reconcile_pass *p, enum reconcile_report kind, const char *invoice, const char *fmt,
         ...)
{
	char text[400];
	va_list ap;

	if (p->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	p->report(kind, invoice, text, p->report_arg);
}

/* The first failure is the note; later ones only count. */
static void __attribute__((format(printf, 2, 3)))
pass_note(struct reconcile_pass *p, const char *fmt, ...)
{
	va_list ap;

	if (p->note[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->note, sizeof(p->note), fmt, ap);
	va_end(ap);
}

static void pass_checks_free(struct reconcile_pass *p)
{
	struct check_ctx *cc, *next;

	for (cc = p->checks; cc; cc = next) {
		next = cc->next;
		reconcile_todo_free(cc->t);
		free(cc);
	}
	p->checks = NULL;
	p->checks_out = 0;
}

static void pass_free(struct reconcile_pass *p)
{
	reconcile_lease_free(p->lease);
	pass_checks_free(p);
	reconcile_todos_clear(&p->todo);
	free(p);
}

/* ---- the end of a pass ---- */

static void pass_complete(struct reconcile_pass *p, const char *result)
{
	struct reconcile_summary s;

	memset(&s, 0, sizeof(s));
	s.id = p->id;
	s.result = result;
	s.checked = p->checked;
	s.found = p->found;
	s.errors = p->errors;
	s.requests = p->requests;
	s.pages = p->pages;
	s.seconds = pass_elapsed(&p->t0);
	s.note = p->note[0] ? p->note : NULL;
	if (strcmp(result, "skipped") != 0)
		metrics_inc(METRIC_RECONCILER_PASSES, result);
	p->done(&s, p->done_arg);
	pass_free(p);
}

static const char *pass_result(const struct reconcile_pass *p)
{
	if (p->stopped)
		return "aborted";
	if (p->aborting || p->errors > 0 || p->note[0])
		return "failed";
	return "completed";
}

static void pass_released(void *arg)
{
	struct reconcile_pass *p = arg;

	pass_complete(p, pass_result(p));
}

static void pass_unlock(struct reconcile_pass *p)
{
	if (!p->leading) {
		pass_complete(p, pass_result(p));
		return;
	}
	p->leading = false;
	reconcile_lease_release(p->lease, pass_released, p);
}

static void pass_recorded(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_pass *p = arg;

	(void)res;
	(void)sqlstate;
	if (err)
		log_warnx("reconcile: cannot record the end of pass %lld: %s", p->id, err);
	pass_unlock(p);
}

static void pass_finish(struct reconcile_pass *p)
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
	if (db_query(p->env.pool,
	             "UPDATE bayarhook.reconcile_passes SET finished_at = now(), checked = $2,"
	             " found = $3, errors = $4, requests = $5, pages = $6, result = $7, note = $8"
	             " WHERE id = $1",
	             8, params, pass_recorded, p) < 0) {
		log_warnx("reconcile: cannot record the end of pass %lld: database unavailable",
		          p->id);
		pass_unlock(p);
	}
}

static void pass_abort(struct reconcile_pass *p, const char *why)
{
	if (p->aborting)
		return;
	p->aborting = true;
	pass_note(p, "%s", why);
	gateway_cancel(p->env.gw, p);
	pass_checks_free(p);
	p->page_call = false;
}

/* ---- recording what the gateway said ---- */

static void pass_pump(struct reconcile_pass *p);

struct store_ctx {
	struct reconcile_pass *p;
	char *invoice;
	bool paid;
	char what[120];
};

static void pass_store_failed(struct reconcile_pass *p, const char *invoice, const char *why)
{
	p->errors++;
	pass_note(p, "could not record %s: %s", invoice, why);
	pass_say(p, RECONCILE_ERROR, invoice, "could not record it: %s", why);
}

static void pass_stored(enum store_outcome outcome, enum verdict verdict, void *arg)
{
	struct store_ctx *sc = arg;
	struct reconcile_pass *p = sc->p;

	p->stores_out--;
	if (outcome != STORE_COMMITTED) {
		pass_store_failed(p, sc->invoice, "database unavailable");
	} else if (verdict == VERDICT_ACCEPTED) {
		p->found++;
		metrics_inc(METRIC_RECONCILER_FOUND, NULL);
		pass_say(p, RECONCILE_FOUND, sc->invoice, "%s", sc->what);
		/* Older than min_age and no callback: something eats them. */
		if (sc->paid)
			reconcile_missed_callback(sc->invoice, "found by a reconciliation pass");
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

/* Records the gateway's word exactly as a verified callback, source reconciler. */
static void pass_store(struct reconcile_pass *p, const struct pay_event *ev)
{
	struct store_ctx *sc = xcalloc(1, sizeof(*sc));
	int rc;

	sc->invoice = xstrdup(ev->invoice_id);
	sc->paid = ev->status == STATUS_PAID;
	snprintf(sc->what, sizeof(sc->what), "recorded %s, final_amount %s",
	         event_status_name(ev->status), ev->final_amount);
	sc->p = p;
	p->stores_out++;
	p->in_store = true;
	rc = reconcile_record(p->env.store, ev, pass_stored, sc);
	p->in_store = false;
	if (rc < 0) {
		p->stores_out--;
		pass_store_failed(p, sc->invoice, "database unavailable");
		free(sc->invoice);
		free(sc);
	}
}

static void pass_checked(const struct gateway_reply *r, void *arg)
{
	struct check_ctx *cc = arg;
	struct reconcile_pass *p = cc->p;
	struct reconcile_todo *t = cc->t;

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
		/* Known here only, e.g. from another merchant account: not ours to fix. */
		p->checked++;
		pass_say(p, RECONCILE_CHECKED, t->invoice, "the gateway does not know it");
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
	reconcile_todo_free(t);
	pass_pump(p);
}

/* ---- the feeds: list-payments pages and the local pending invoices ---- */

/* The order of the sweeps: a late paid is seen before its earlier expiry. */
static const enum pay_status sweep_order[] = {STATUS_PAID, STATUS_EXPIRED, STATUS_CANCELLED};
#define NSWEEPS ((int)(sizeof(sweep_order) / sizeof(sweep_order[0])))

/* Moves to the next configured status from index from on; sweep_done when none is left. */
static void pass_sweep_from(struct reconcile_pass *p, int from)
{
	p->next_page = 1;
	for (p->sweep = from; p->sweep < NSWEEPS; p->sweep++)
		if (p->env.statuses & STATUS_MASK(sweep_order[p->sweep]))
			return;
	p->sweep_done = true;
}

/* A page's items that may need recording, until the database says which do. */
struct page_ctx {
	struct reconcile_pass *p;
	bool last;
	size_t n;
	struct pay_event *evs;
};

static void page_ctx_free(struct page_ctx *pc)
{
	for (size_t i = 0; i < pc->n; i++)
		event_release(&pc->evs[i]);
	free(pc->evs);
	free(pc);
}

static void pass_filtered(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct page_ctx *pc = arg;
	struct reconcile_pass *p = pc->p;

	(void)sqlstate;
	p->db_out--;
	if (res == NULL) {
		p->errors++;
		pass_note(p, "database: %s", err);
		p->sweep_done = true;
	} else {
		for (int i = 0; i < PQntuples(res) && !p->aborting; i++) {
			long k = strtol(PQgetvalue(res, i, 0), NULL, 10);

			if (k >= 0 && (size_t)k < pc->n)
				pass_store(p, &pc->evs[k]);
		}
		if (pc->last)
			pass_sweep_from(p, p->sweep + 1);
	}
	page_ctx_free(pc);
	pass_pump(p);
}

/*
 * A page's item worth recording: of the status swept, old enough when paid,
 * not already handled in this pass. Its event goes to pc.
 */
static void pass_take_item(struct reconcile_pass *p, struct page_ctx *pc,
                           const struct gateway_payment *gp, struct jsonw *ids)
{
	enum pay_status st = event_status_parse(gp->status);
	struct pay_event *ev = &pc->evs[pc->n];
	const char *why = NULL;

	/* The gateway filtered by status; anything else is not this sweep's to act on. */
	if (st != sweep_order[p->sweep])
		return;
	if (st == STATUS_PAID) {
		time_t paid = gateway_wib_time(gp->paid_at);

		/* Just paid: its callback is probably on its way; the next pass has it. */
		if (paid != (time_t)-1 && paid > time(NULL) - p->env.min_age) {
			pass_say(p, RECONCILE_CHECKED, gp->invoice_id,
			         "paid less than min_age ago, left to its callback");
			return;
		}
	}
	if (!reconcile_todos_mark(&p->todo, gp->invoice_id))
		return;
	if (reconcile_event_from_item(ev, gp->json, &why) < 0) {
		p->errors++;
		pass_note(p, "list-payments item %s: %s", gp->invoice_id, why);
		pass_say(p, RECONCILE_ERROR, gp->invoice_id, "unusable list-payments item: %s",
		         why);
		return;
	}
	jsonw_begin_object(ids, NULL);
	jsonw_cstr(ids, "i", ev->invoice_id);
	jsonw_cstr(ids, "s", event_status_name(ev->status));
	jsonw_end_object(ids);
	pc->n++;
}

static void pass_paged(const struct gateway_reply *r, void *arg)
{
	struct reconcile_pass *p = arg;
	const struct gateway_page *pg = r->page;
	struct page_ctx *pc;
	struct jsonw ids;
	char *text;
	int page = p->next_page;

	p->page_call = false;
	p->requests += r->attempts;
	if (r->error != GATEWAY_OK) {
		p->errors++;
		pass_say(p, RECONCILE_ERROR, NULL, "%s", r->message);
		switch (r->error) {
		case GATEWAY_ERR_AUTH:
		case GATEWAY_ERR_CONFIG:
		case GATEWAY_ERR_TRANSPORT:
		case GATEWAY_ERR_SERVER:
		case GATEWAY_ERR_RATE_LIMITED:
			/* After its retries: the other sweeps would fail the same way. */
			pass_abort(p, r->message);
			break;
		default:
			/* This status's pages cannot be trusted; the others may still be read. */
			pass_note(p, "%s", r->message);
			pass_sweep_from(p, p->sweep + 1);
			break;
		}
		pass_pump(p);
		return;
	}
	p->pages++;
	p->next_page++;
	pc = xcalloc(1, sizeof(*pc));
	pc->p = p;
	pc->last = page >= pg->total_pages || pg->n == 0 || p->next_page > PASS_MAX_PAGES;
	if (pg->n > 0)
		pc->evs = xcalloc(pg->n, sizeof(*pc->evs));
	jsonw_begin_array(&ids);
	for (size_t i = 0; i < pg->n; i++)
		pass_take_item(p, pc, &pg->items[i], &ids);
	log_debug("reconcile: list-payments status=%s page %d of %d: %zu payments",
	          event_status_name(sweep_order[p->sweep]), page, pg->total_pages, pg->n);
	text = jsonw_finish_array(&ids);
	if (pc->n == 0) {
		if (pc->last)
			pass_sweep_from(p, p->sweep + 1);
		page_ctx_free(pc);
	} else {
		const char *params[1] = {text};

		/*
		 * What is already so here, or cannot move there (ingest()'s
		 * rule: paid is final; expired and cancelled only leave pending),
		 * needs nothing; the store would say duplicate or out_of_order.
		 */
		p->db_out++;
		if (db_query(p->env.pool,
		             "SELECT x.n - 1 FROM jsonb_array_elements($1::jsonb)"
		             "  WITH ORDINALITY AS x(e, n)"
		             " WHERE NOT EXISTS (SELECT 1 FROM bayarhook.payments p"
		             "  WHERE p.invoice_id = x.e ->> 'i' AND (p.status = x.e ->> 's'"
		             "   OR p.status = 'paid' OR (x.e ->> 's' <> 'paid'"
		             "                            AND p.status <> 'pending')))"
		             " ORDER BY x.n",
		             1, params, pass_filtered, pc) < 0) {
			p->db_out--;
			p->errors++;
			p->sweep_done = true;
			pass_note(p, "database unavailable");
			page_ctx_free(pc);
		}
	}
	free(text);
	pass_pump(p);
}

static void pass_pending_loaded(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_pass *p = arg;

	(void)sqlstate;
	p->db_out--;
	p->pending_loaded = true;
	if (res == NULL) {
		p->errors++;
		pass_note(p, "database: %s", err);
	} else {
		for (int i = 0; i < PQntuples(res); i++)
			reconcile_todos_add(&p->todo, PQgetvalue(res, i, 0));
	}
	pass_pump(p);
}

/* Sends what may be sent; finishes the pass when nothing is left. */
static void pass_pump(struct reconcile_pass *p)
{
	struct gateway *gw = p->env.gw;

	if (p->phase != PHASE_RUNNING)
		return;
	if (!p->aborting && p->stop) {
		p->stopped = true;
		pass_abort(p, "stopped: bayarhook is shutting down");
	}
	while (!p->aborting && p->todo.head && p->checks_out < PASS_WINDOW) {
		struct check_ctx *cc = xcalloc(1, sizeof(*cc));

		cc->p = p;
		cc->t = reconcile_todos_take(&p->todo);
		gateway_check_payment(gw, cc->t->invoice, 0, p, pass_checked, cc);
		cc->next = p->checks;
		if (p->checks)
			p->checks->prev = cc;
		p->checks = cc;
		p->checks_out++;
	}
	if (!p->aborting && !p->sweep_done && !p->page_call && p->db_out == 0 &&
	    p->todo.n < PASS_TODO_HIGH && p->stores_out < PASS_STORES_HIGH) {
		gateway_list_payments(gw, event_status_name(sweep_order[p->sweep]), p->start_date,
		                      p->next_page, GATEWAY_PAGE_LIMIT, p, pass_paged, p);
		p->page_call = true;
	}
	if (p->checks_out || p->stores_out || p->db_out || p->page_call)
		return;
	if (p->aborting || (p->pending_loaded && p->sweep_done && p->todo.head == NULL))
		pass_finish(p);
}

/* ---- the start of a pass ---- */

static void pass_row(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct reconcile_pass *p = arg;
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
	if (!gateway_has_key(p->env.gw)) {
		p->errors++;
		pass_abort(p, "no API key configured ([gateway] api_key_file)");
		pass_pump(p);
		return;
	}
	log_info("reconcile: pass %lld started, list-payments since %s", p->id, p->start_date);
	/* Old enough that its callback should have come; young enough to still matter. */
	snprintf(secs[0], sizeof(secs[0]), "%d", p->env.min_age);
	snprintf(secs[1], sizeof(secs[1]), "%d", p->env.lookback + 86400);
	p->db_out++;
	if (db_query(p->env.pool,
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

static void pass_leased(enum reconcile_lease_result r, const char *text, void *arg)
{
	struct reconcile_pass *p = arg;
	const char *params[2] = {p->env.trigger, p->env.runner};

	if (r == LEASE_ERROR) {
		pass_note(p, "database: %s", text);
		pass_complete(p, "failed");
		return;
	}
	if (r == LEASE_BUSY) {
		pass_note(p, "another process is reconciling this database (%s)", text);
		pass_complete(p, "skipped");
		return;
	}
	p->leading = true;
	p->phase = PHASE_STARTING;
	/*
	 * Holding the lease, any pass still "running" belongs to a process
	 * that died mid-pass (its lease expired): close it so that the table
	 * does not lie.
	 */
	if (db_query(p->env.pool,
	             "WITH stale AS (UPDATE bayarhook.reconcile_passes SET result = 'aborted',"
	             "  note = coalesce(note || '; ', '') || 'the process ended during the pass'"
	             "  WHERE result = 'running' RETURNING 1)"
	             " INSERT INTO bayarhook.reconcile_passes (trigger, runner) VALUES ($1, $2)"
	             " RETURNING id",
	             2, params, pass_row, p) < 0)
		pass_row(NULL, "database unavailable", "", p);
}

/* The lease went to another process mid-pass: stop asking, record what was done. */
static void pass_lease_lost(const char *why, void *arg)
{
	struct reconcile_pass *p = arg;

	p->leading = false;
	log_warnx("reconcile: %s", why);
	if (p->phase == PHASE_FINISHING)
		return;
	pass_abort(p, why);
	pass_pump(p);
}

struct reconcile_pass *reconcile_pass_new(const struct reconcile_pass_env *env,
                                          reconcile_report_cb report, void *report_arg,
                                          reconcile_done_cb done, void *done_arg)
{
	struct reconcile_pass *p = xcalloc(1, sizeof(*p));

	p->env = *env;
	p->phase = PHASE_LOCKING;
	p->report = report;
	p->report_arg = report_arg;
	p->done = done;
	p->done_arg = done_arg;
	p->lease = reconcile_lease_new(env->base, env->pool, env->runner, pass_lease_lost, p);
	pass_sweep_from(p, 0);
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	gateway_start_date(time(NULL), env->lookback, p->start_date, sizeof(p->start_date));
	return p;
}

void reconcile_pass_begin(struct reconcile_pass *p)
{
	if (p->phase != PHASE_LOCKING || p->leading)
		return;
	if (p->stop) {
		pass_note(p, "stopped: bayarhook is shutting down");
		pass_complete(p, "skipped");
		return;
	}
	if (p->lease == NULL || reconcile_lease_take(p->lease, pass_leased, p) < 0) {
		pass_note(p, "database unavailable");
		pass_complete(p, "failed");
	}
}

void reconcile_pass_stop(struct reconcile_pass *p)
{
	p->stop = true;
	if (p->phase == PHASE_RUNNING)
		pass_pump(p);
}

void reconcile_pass_free(struct reconcile_pass *p)
{
	if (p == NULL)
		return;
	gateway_cancel(p->env.gw, p);
	pass_free(p);
}
