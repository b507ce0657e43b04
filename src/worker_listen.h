/*
 * worker_listen.h: the job wake-up of `serve`. ingest() and the job
 * functions NOTIFY bayarhook_jobs when jobs become due; one connection to
 * [database] listen_conninfo (default: conninfo) LISTENs for it.
 *
 * LISTEN needs a session of its own: behind a transaction-pooling
 * PgBouncer it is run on some server connection and the notifications go
 * to whichever client holds that connection next, never to us. Asking the
 * server cannot tell (PgBouncer passes SHOW to PostgreSQL; port numbers
 * prove nothing), so the wake-up tests itself: after each connect, and
 * every WORKER_LISTEN_REPROBE_SEC, it NOTIFYs a token through the queue's
 * connections and waits WORKER_LISTEN_PROBE_MS for it to come back. When it
 * does not, the wake-up polls for due jobs every WORKER_LISTEN_POLL_MS on
 * the listen connection instead, and says so in the log; when it comes
 * back, LISTEN is used again.
 */
#ifndef BAYARHOOK_WORKER_LISTEN_H
#define BAYARHOOK_WORKER_LISTEN_H

#include <event2/event.h>

#include "config.h"
#include "db.h"

#define WORKER_LISTEN_PROBE_MS 2000
#define WORKER_LISTEN_POLL_MS 25
#define WORKER_LISTEN_REPROBE_SEC 60

struct worker_listen;

/* Jobs may be due: claim. */
typedef void (*worker_listen_cb)(void *arg);

/*
 * notify_pool: where the probe's NOTIFY is sent from (the queue's pool, on
 * conninfo); it must outlive the wake-up. NULL when the events cannot be made.
 */
struct worker_listen *worker_listen_new(struct event_base *base, const struct config *cfg,
                                        struct db_pool *notify_pool, worker_listen_cb wake,
                                        void *arg);
/* Shutdown: no more polls or probes. */
void worker_listen_stop(struct worker_listen *wl);
/* Accepts NULL. */
void worker_listen_free(struct worker_listen *wl);

#endif
