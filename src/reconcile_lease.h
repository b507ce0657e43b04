/*
 * reconcile_lease.h: the reconciler's single leader per database, as a
 * lease row (bayarhook.reconcile_lease, migration 014) rather than a
 * session advisory lock, so that it holds under a transaction-pooling
 * PgBouncer: every statement stands alone. A pass takes the lease when it
 * is free, expired or already its own, renews it every
 * RECONCILE_LEASE_RENEW seconds, and releases it at its end; the lease of
 * a process that died expires RECONCILE_LEASE_TTL seconds after its last
 * renewal. Only the database's clock is used.
 */
#ifndef BAYARHOOK_RECONCILE_LEASE_H
#define BAYARHOOK_RECONCILE_LEASE_H

#include <event2/event.h>

#include "db.h"

#define RECONCILE_LEASE_TTL 30   /* seconds a lease lives without renewal */
#define RECONCILE_LEASE_RENEW 10 /* seconds between renewals */

struct reconcile_lease;

enum reconcile_lease_result {
	LEASE_TAKEN, /* this pass leads until it releases */
	LEASE_BUSY,  /* another process holds it; text names it */
	LEASE_ERROR, /* the database did not answer; text says why */
};

/* text: the holder ("host:pid, 25 s left") or the error; NULL when taken. */
typedef void (*reconcile_lease_cb)(enum reconcile_lease_result r, const char *text, void *arg);
/* The lease was taken over or could not be renewed in time: stop leading. */
typedef void (*reconcile_lease_lost_cb)(const char *why, void *arg);

/* runner: "host:pid"; a random token is added so that no two holders share a name. */
struct reconcile_lease *reconcile_lease_new(struct event_base *base, struct db_pool *pool,
                                            const char *runner, reconcile_lease_lost_cb lost,
                                            void *arg);
/* Asks for the lease; cb once, from the loop. -1: the pool is down (cb never called). */
int reconcile_lease_take(struct reconcile_lease *l, reconcile_lease_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* Stops renewing and frees the row; done once, from the loop or at once when not held. */
void reconcile_lease_release(struct reconcile_lease *l, void (*done)(void *arg), void *arg);
/* Teardown: no callback is called again; a held lease is left to expire. Accepts NULL. */
void reconcile_lease_free(struct reconcile_lease *l);

#endif
