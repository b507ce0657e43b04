/*
 * worker_hold.h: keeps the queue in step with the config's actions (SPEC
 * §7, "Actions that go away"). The pending jobs of an action no longer in
 * the config are held (bayarhook.job_hold_removed): not claimed, no attempt
 * spent; those of an action that is back resume (bayarhook.job_resume).
 * Jobs held for the gateway's confirmation are never touched.
 */
#ifndef BAYARHOOK_WORKER_HOLD_H
#define BAYARHOOK_WORKER_HOLD_H

#include <stdbool.h>

struct config;
struct db_pool;

struct worker_hold {
	struct db_pool *pool;
	char *actions;             /* the config's action names as a text[] literal */
	const char *when;          /* "start" or "reload", for the log */
	bool busy;                 /* a sync is in flight */
	bool again;                /* the names changed meanwhile: sync once more */
	bool done_once;            /* a sync has ended (well or not) since start */
	void (*synced)(void *arg); /* a sync ended: claiming may go on */
	void *arg;
};

void worker_hold_init(struct worker_hold *h, struct db_pool *pool, void (*synced)(void *arg),
                      void *arg);
/*
 * False until the first sync ended and while one runs: the worker claims
 * nothing then, so that it never claims a job the sync is about to hold.
 */
bool worker_hold_settled(const struct worker_hold *h);
/*
 * Takes cfg's action names and syncs the queue with them now (or once the
 * pool is up: worker_hold_sync). reload: the words of the log lines.
 */
void worker_hold_set(struct worker_hold *h, const struct config *cfg, bool reload);
/* Syncs with the names last set: at start, and after the pool reconnects. */
void worker_hold_sync(struct worker_hold *h);
void worker_hold_clear(struct worker_hold *h);

#endif
