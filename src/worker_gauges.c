/*
 * worker_gauges.c: the queue's gauges (see worker_gauges.h), one query.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "stats.h"
#include "worker_gauges.h"

/*
 * The gauges: jobs by state, due ones, the oldest pending job's age, and the
 * end of the last completed reconcile pass (from the table, so that a pass
 * of another process or of the CLI counts). The pass row is a right side
 * that always exists: an empty jobs table still reports it.
 */
static const char SQL_COUNTS[] =
    "SELECT g.state, g.n, g.due, g.oldest, r.last_ok FROM"
    " (SELECT coalesce((SELECT extract(epoch FROM finished_at)"
    "   FROM bayarhook.reconcile_passes WHERE result = 'completed'"
    "   ORDER BY id DESC LIMIT 1), 0) AS last_ok) r"
    " LEFT JOIN (SELECT state, count(*) AS n,"
    "  count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= now()) AS due,"
    "  extract(epoch FROM now() - min(created_at)) AS oldest"
    "  FROM bayarhook.jobs GROUP BY state) g ON true";

static void counts_done(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	static const char *const states[] = {"pending", "running", "succeeded",
	                                     "dead",    "held",    "cancelled"};
	struct worker_gauges *g = arg;
	double due = 0, oldest = 0;

	(void)sqlstate;
	g->counting = false;
	if (res == NULL) {
		log_debug("counting jobs failed: %s", err);
		return;
	}
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		double v = 0;

		for (int i = 0; i < PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, i, 0), states[s]) == 0)
				v = strtod(PQgetvalue(res, i, 1), NULL);
		metrics_set(METRIC_JOBS, states[s], v);
	}
	for (int i = 0; i < PQntuples(res); i++) {
		due += strtod(PQgetvalue(res, i, 2), NULL);
		if (strcmp(PQgetvalue(res, i, 0), "pending") == 0)
			oldest = strtod(PQgetvalue(res, i, 3), NULL);
	}
	metrics_set(METRIC_QUEUE_DEPTH, NULL, due);
	metrics_set(METRIC_OLDEST_PENDING, NULL, oldest > 0 ? oldest : 0);
	if (PQntuples(res) > 0)
		metrics_set(METRIC_RECONCILE_LAST_OK, NULL, strtod(PQgetvalue(res, 0, 4), NULL));
}

void worker_gauges_refresh(struct worker_gauges *g)
{
	if (g->counting)
		return;
	if (db_query(g->pool, SQL_COUNTS, 0, NULL, counts_done, g) == 0)
		g->counting = true;
}
