/*
 * worker_hold.c: holds the jobs of removed actions and resumes them when
 * their action returns (see worker_hold.h). The decisions are the SQL
 * functions' (sql/functions/jobs.sql); this module says when, with which
 * names, and logs what they did.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "jsonw.h"
#include "log.h"
#include "worker_hold.h"
#include "xmalloc.h"

void worker_hold_init(struct worker_hold *h, struct db_pool *pool, void (*synced)(void *arg),
                      void *arg)
{
	memset(h, 0, sizeof(*h));
	h->pool = pool;
	h->synced = synced;
	h->arg = arg;
	h->when = "start";
}

bool worker_hold_settled(const struct worker_hold *h)
{
	return h->done_once && !h->busy;
}

void worker_hold_clear(struct worker_hold *h)
{
	free(h->actions);
	h->actions = NULL;
}

/*
 * The names as a JSON array, which the query turns into text[]: a name is
 * [A-Za-z0-9_-] (config.c), but no quoting rule of array literals is
 * relied on.
 */
static char *worker_hold_names(const struct config *cfg)
{
	struct jsonw w;

	jsonw_begin_array(&w);
	for (size_t i = 0; i < cfg->nactions; i++)
		jsonw_cstr(&w, NULL, cfg->actions[i].name);
	return jsonw_finish_array(&w);
}

static void worker_hold_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_hold *h = arg;
	int held, waiting, resumed;

	(void)sqlstate;
	h->busy = false;
	h->done_once = true;
	if (res == NULL) {
		/*
		 * Tried again when the pool comes back (worker_connected) or on the
		 * next reload; meanwhile a claimed job of a removed action is held
		 * by the worker itself (bayarhook.job_hold_claimed).
		 */
		log_warnx("%s: cannot hold the jobs of removed actions: %s", h->when, err);
		h->synced(h->arg);
		return;
	}
	held = atoi(PQgetvalue(res, 0, 0));
	waiting = atoi(PQgetvalue(res, 0, 1));
	resumed = atoi(PQgetvalue(res, 0, 2));
	if (waiting > 0)
		log_warnx("%s: %d job(s) held because their action is not in the config (%d held "
		          "now); they resume if the action returns, bayarhook cancel ends them",
		          h->when, waiting, held);
	if (resumed > 0)
		log_notice("%s: %d held job(s) resumed: their action is back in the config",
		           h->when, resumed);
	if (h->again)
		worker_hold_sync(h);
	else
		h->synced(h->arg);
}

void worker_hold_sync(struct worker_hold *h)
{
	const char *p[1] = {h->actions};

	if (h->actions == NULL || db_pool_up(h->pool) == 0)
		return;
	if (h->busy) {
		h->again = true;
		return;
	}
	h->again = false;
	/* Disjoint: one holds jobs of actions not named, the other resumes named ones. */
	if (db_query(h->pool,
	             "WITH n AS (SELECT array(SELECT jsonb_array_elements_text($1::jsonb)) AS a)"
	             " SELECT h.held, h.waiting, bayarhook.job_resume(p_actions => n.a)"
	             " FROM n, bayarhook.job_hold_removed(p_actions => n.a) AS h",
	             1, p, worker_hold_done, h) == 0)
		h->busy = true;
}

void worker_hold_set(struct worker_hold *h, const struct config *cfg, bool reload)
{
	free(h->actions);
	h->actions = worker_hold_names(cfg);
	h->when = reload ? "reload" : "start";
	worker_hold_sync(h);
}
