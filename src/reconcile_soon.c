/*
 * reconcile_soon.c: follow-ups of stale and unsigned callbacks (see
 * reconcile_soon.h). Each invoice has an entry, found through a small hash
 * table, that says when it was last asked and whether an ask is at the
 * gateway, being recorded, or due again; a single timer starts the asks
 * that are due. Entries idle for min_age are forgotten.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "reconcile_record.h"
#include "reconcile_soon.h"
#include "stats.h"
#include "xmalloc.h"

#define SOON_BUCKETS 1024
#define SOON_WARN_EVERY 60.0 /* seconds between warnings about dropped follow-ups */

struct soon_entry {
	struct soon_entry *next; /* in its bucket */
	struct reconcile_soon *s;
	char *invoice;
	enum reconcile_soon_kind kind;
	double asked_at; /* monotonic seconds of the latest ask */
	double due;      /* when to ask again; 0: not due */
	int asks;        /* of this follow-up */
	bool busy;       /* at the gateway, or its finding being recorded */
	bool active;     /* busy or due: counts towards unsigned_active */
};

struct reconcile_soon {
	struct event_base *base;
	struct store *store;
	struct gateway *gw;
	struct event *ev_due;
	struct soon_entry *buckets[SOON_BUCKETS];
	size_t n;
	int unsigned_active; /* unsigned entries busy or due */
	int min_age;
	int half; /* max(1, max_requests_per_minute / 2) */
	int stores_out;
	double warned_at;
	bool stopped;
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *reconcile_soon_kind_name(enum reconcile_soon_kind kind)
{
	return kind == RECONCILE_SOON_UNSIGNED ? "unsigned" : "stale";
}

static struct soon_entry **soon_slot(struct reconcile_soon *s, const char *invoice)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	struct soon_entry **pp;

	for (const char *c = invoice; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	for (pp = &s->buckets[h % SOON_BUCKETS]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->invoice, invoice) == 0)
			break;
	return pp;
}

static void entry_active(struct soon_entry *e, bool active)
{
	if (e->active == active)
		return;
	e->active = active;
	if (e->kind == RECONCILE_SOON_UNSIGNED)
		e->s->unsigned_active += active ? 1 : -1;
}

static void entry_free(struct soon_entry *e)
{
	free(e->invoice);
	free(e);
}

/* Forgets entries idle for min_age: they may be asked about again. */
static void soon_prune(struct reconcile_soon *s, double now)
{
	for (size_t b = 0; b < SOON_BUCKETS; b++) {
		struct soon_entry **pp = &s->buckets[b], *e;

		while ((e = *pp) != NULL) {
			if (!e->active && e->asked_at + s->min_age <= now) {
				*pp = e->next;
				entry_free(e);
				s->n--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static void soon_arm(struct reconcile_soon *s)
{
	double next = 0, now = mono_now();
	struct timeval tv;

	for (size_t b = 0; b < SOON_BUCKETS; b++)
		for (struct soon_entry *e = s->buckets[b]; e; e = e->next)
			if (e->due > 0 && (next == 0 || e->due < next))
				next = e->due;
	if (next == 0 || s->stopped)
		return;
	next = next > now ? next - now : 0;
	tv.tv_sec = (time_t)next;
	tv.tv_usec = (long)((next - (double)tv.tv_sec) * 1e6);
	evtimer_add(s->ev_due, &tv);
}

static void __attribute__((format(printf, 3, 4)))
soon_throttled(struct reconcile_soon *s, const char *invoice, const char *fmt, ...)
{
	double now = mono_now();
	char why[160];
	va_list ap;

	metrics_inc(METRIC_FOLLOWUPS, "throttled");
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Strangers choose how often this happens: one warning a minute, the rest debug. */
	if (now - s->warned_at >= SOON_WARN_EVERY || s->warned_at == 0) {
		s->warned_at = now;
		log_warnx(
		    "reconcile: follow-up of invoice=%.80s not asked: %s (more are counted in "
		    "bayarhook_followup_checks_total{outcome=\"throttled\"})",
		    invoice, why);
	} else {
		log_debug("reconcile: follow-up of invoice=%.80s not asked: %s", invoice, why);
	}
}

static void soon_answered(const struct gateway_reply *r, void *arg);

static void soon_send(struct soon_entry *e)
{
	struct reconcile_soon *s = e->s;
	unsigned flags = GATEWAY_URGENT;

	/* Anyone can send an unsigned callback: those asks take at most half the budget. */
	if (e->kind == RECONCILE_SOON_UNSIGNED)
		flags |= GATEWAY_HALF;
	e->due = 0;
	e->busy = true;
	e->asks++;
	e->asked_at = mono_now();
	entry_active(e, true);
	gateway_check_payment(s->gw, e->invoice, flags, s, soon_answered, e);
}

/* The follow-up is over; the entry stays until min_age after its last ask. */
static void soon_done(struct soon_entry *e, const char *outcome)
{
	e->busy = false;
	e->due = 0;
	entry_active(e, false);
	if (outcome)
		metrics_inc(METRIC_FOLLOWUPS, outcome);
}

/* Asks again after min_age, or gives up to the passes' sweeps. */
static void soon_later(struct soon_entry *e, const char *why)
{
	struct reconcile_soon *s = e->s;

	e->busy = false;
	if (e->asks >= SOON_MAX_ASKS || s->stopped) {
		log_info(
		    "reconcile: invoice=%s follow-up of a %s callback: %s after %d ask(s); left "
		    "to the reconciler's passes",
		    e->invoice, reconcile_soon_kind_name(e->kind), why, e->asks);
		soon_done(e, "not_confirmed");
		return;
	}
	log_info("reconcile: invoice=%s follow-up of a %s callback: %s; asking again in %d s",
	         e->invoice, reconcile_soon_kind_name(e->kind), why, s->min_age);
	e->due = e->asked_at + s->min_age;
	soon_arm(s);
}

static void soon_stored(enum store_outcome outcome, enum verdict verdict, void *arg)
{
	struct soon_entry *e = arg;
	struct reconcile_soon *s = e->s;

	s->stores_out--;
	if (outcome != STORE_COMMITTED) {
		log_warnx("reconcile: invoice=%s cannot record the gateway's answer: database "
		          "unavailable",
		          e->invoice);
		soon_later(e, "not recorded");
		return;
	}
	if (verdict == VERDICT_ACCEPTED) {
		log_notice("reconcile: invoice=%s recorded from check-payment after a %s callback",
		           e->invoice, reconcile_soon_kind_name(e->kind));
		soon_done(e, "recorded");
	} else {
		log_info("reconcile: invoice=%s follow-up of a %s callback: already recorded (%s)",
		         e->invoice, reconcile_soon_kind_name(e->kind), verdict_name(verdict));
		soon_done(e, NULL);
	}
}

static void soon_answered(const struct gateway_reply *r, void *arg)
{
	struct soon_entry *e = arg;
	struct reconcile_soon *s = e->s;

	switch (r->error) {
	case GATEWAY_OK:
		if (r->event->status == STATUS_PENDING) {
			soon_later(e, "the gateway says pending");
			return;
		}
		/* Only the gateway's answer is recorded: status, amounts, the rest. */
		s->stores_out++;
		if (reconcile_record(s->store, r->event, soon_stored, e) < 0) {
			s->stores_out--;
			soon_later(e, "database unavailable");
		}
		return;
	case GATEWAY_ERR_NOT_FOUND:
		/* A forged unsigned callback, or another merchant's invoice: nothing to record. */
		log_notice("reconcile: invoice=%s follow-up of a %s callback: the gateway does not "
		           "know it",
		           e->invoice, reconcile_soon_kind_name(e->kind));
		soon_done(e, "not_confirmed");
		return;
	default:
		log_warnx("reconcile: invoice=%s follow-up of a %s callback: %s", e->invoice,
		          reconcile_soon_kind_name(e->kind), r->message);
		metrics_inc(METRIC_FOLLOWUPS, "failed");
		soon_later(e, gateway_error_name(r->error));
		return;
	}
}

static void soon_due(evutil_socket_t fd, short what, void *arg)
{
	struct reconcile_soon *s = arg;
	double now = mono_now();

	(void)fd;
	(void)what;
	if (s->stopped)
		return;
	for (size_t b = 0; b < SOON_BUCKETS; b++)
		for (struct soon_entry *e = s->buckets[b]; e; e = e->next)
			if (e->due > 0 && e->due <= now && !e->busy)
				soon_send(e);
	soon_arm(s);
}

void reconcile_soon_ask(struct reconcile_soon *s, const char *invoice,
                        enum reconcile_soon_kind kind)
{
	double now = mono_now();
	struct soon_entry **pp, *e;

	if (s == NULL || s->stopped || invoice == NULL || invoice[0] == '\0')
		return;
	if (!gateway_has_key(s->gw)) {
		log_debug("reconcile: invoice=%.80s not followed up: no API key", invoice);
		return;
	}
	pp = soon_slot(s, invoice);
	e = *pp;
	if (e != NULL && (e->active || e->asked_at + s->min_age > now)) {
		soon_throttled(s, invoice, "asked less than min_age ago");
		return;
	}
	if (kind == RECONCILE_SOON_UNSIGNED && s->unsigned_active >= s->half) {
		soon_throttled(s, invoice, "%d unsigned follow-ups already waiting",
		               s->unsigned_active);
		return;
	}
	if (e == NULL) {
		if (s->n >= SOON_MAX_ENTRIES) {
			soon_prune(s, now);
			pp = soon_slot(s, invoice);
		}
		if (s->n >= SOON_MAX_ENTRIES) {
			soon_throttled(s, invoice, "%d invoices being followed up",
			               SOON_MAX_ENTRIES);
			return;
		}
		e = xcalloc(1, sizeof(*e));
		e->s = s;
		e->invoice = xstrdup(invoice);
		*pp = e;
		s->n++;
	}
	e->kind = kind;
	e->asks = 0;
	log_info("reconcile: invoice=%s asking check-payment after a %s callback", invoice,
	         reconcile_soon_kind_name(kind));
	soon_send(e);
}

void reconcile_soon_configure(struct reconcile_soon *s, const struct config *cfg)
{
	s->min_age = cfg->reconciler_min_age;
	s->half = cfg->reconciler_max_rpm / 2 > 0 ? cfg->reconciler_max_rpm / 2 : 1;
}

struct reconcile_soon *reconcile_soon_new(struct event_base *base, struct store *st,
                                          struct gateway *gw)
{
	struct reconcile_soon *s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->store = st;
	s->gw = gw;
	s->min_age = 120;
	s->half = 1;
	s->ev_due = evtimer_new(base, soon_due, s);
	if (s->ev_due == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void reconcile_soon_stop(struct reconcile_soon *s)
{
	if (s == NULL || s->stopped)
		return;
	s->stopped = true;
	evtimer_del(s->ev_due);
	gateway_cancel(s->gw, s);
}

bool reconcile_soon_busy(const struct reconcile_soon *s)
{
	return s != NULL && s->stores_out > 0;
}

void reconcile_soon_free(struct reconcile_soon *s)
{
	if (s == NULL)
		return;
	gateway_cancel(s->gw, s);
	for (size_t b = 0; b < SOON_BUCKETS; b++) {
		struct soon_entry *e, *next;

		for (e = s->buckets[b]; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	event_free(s->ev_due);
	free(s);
}
