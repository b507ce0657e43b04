/*
 * worker_finish.c: outcomes in batches (see worker_finish.h). One write in
 * flight at a time: while the database commits one, the next gathers, so
 * the batches grow with the load, as the store's group commit does.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jsonw.h"
#include "worker_finish.h"
#include "worker_outcome.h"
#include "xmalloc.h"

struct worker_finish_batch {
	struct worker_finish *f;
	int n;
	struct worker_finish_item *items[WORKER_FINISH_BATCH];
};

static void finish_flush(struct worker_finish *f);

void worker_finish_init(struct worker_finish *f, struct db_pool *pool, const char *owner)
{
	f->pool = pool;
	f->owner = owner;
	TAILQ_INIT(&f->queue);
	f->inflight = NULL;
}

static void finish_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_finish_batch *b = arg;
	struct worker_finish *f = b->f;

	(void)sqlstate;
	f->inflight = NULL;
	for (int i = 0; i < b->n; i++) {
		struct worker_finish_item *it = b->items[i];
		const char *state = NULL;

		if (res == NULL) {
			it->done(it, NULL, err ? err : "database error");
			continue;
		}
		for (int r = 0; r < PQntuples(res) && state == NULL; r++)
			if (strcmp(PQgetvalue(res, r, 0), it->job) == 0)
				state = PQgetvalue(res, r, 1);
		it->done(it, state, NULL);
	}
	free(b);
	finish_flush(f);
}

/* Sends what waits as one job_finish_many(), unless one is in flight. */
static void finish_flush(struct worker_finish *f)
{
	struct worker_finish_batch *b;
	struct worker_finish_item *it;
	struct jsonw js;
	const char *p[2];
	char *items;
	int rc;

	if (f->inflight != NULL || TAILQ_EMPTY(&f->queue))
		return;
	b = xcalloc(1, sizeof(*b));
	b->f = f;
	jsonw_begin_array(&js);
	while ((it = TAILQ_FIRST(&f->queue)) != NULL && b->n < WORKER_FINISH_BATCH) {
		TAILQ_REMOVE(&f->queue, it, link);
		it->queued = false;
		b->items[b->n++] = it;
		worker_outcome_json(&js, it->job, it->attempts, it->attempt_id, it->max_attempts,
		                    it->out);
	}
	items = jsonw_finish_array(&js);
	p[0] = f->owner;
	p[1] = items;
	rc = db_query(f->pool,
	              "SELECT job_id, state FROM bayarhook.job_finish_many(p_owner => $1,"
	              " p_items => $2::jsonb)",
	              2, p, finish_done, b);
	free(items);
	if (rc == 0) {
		f->inflight = b;
		return;
	}
	for (int i = 0; i < b->n; i++)
		b->items[i]->done(b->items[i], NULL, "database unavailable");
	free(b);
}

void worker_finish_push(struct worker_finish *f, struct worker_finish_item *it)
{
	if (!it->queued) {
		TAILQ_INSERT_TAIL(&f->queue, it, link);
		it->queued = true;
	}
	finish_flush(f);
}

void worker_finish_drop(struct worker_finish *f, struct worker_finish_item *it)
{
	if (!it->queued)
		return;
	TAILQ_REMOVE(&f->queue, it, link);
	it->queued = false;
}

bool worker_finish_busy(const struct worker_finish *f)
{
	return f->inflight != NULL;
}

void worker_finish_clear(struct worker_finish *f)
{
	free(f->inflight);
	f->inflight = NULL;
}
