/*
 * worker_owner.h: who holds a job's claim. Each `serve` process claims as
 * "host:pid:scope:nonce" (scope names the kernel boot and pid namespace, so
 * a pid from an owner of the same host and scope names the same process).
 * Claims of such a local process that is gone are taken back at once,
 * without waiting for their lease to end.
 */
#ifndef BAYARHOOK_WORKER_OWNER_H
#define BAYARHOOK_WORKER_OWNER_H

#include <stdbool.h>
#include <stdint.h>

struct db_pool;

struct worker_owner {
	char id[160]; /* jobs.lease_owner of this process's claims */
	char host[80];
	char scope[48];
	struct db_pool *pool; /* of the reclaim in flight */
	bool reclaiming;
	void (*taken)(void *arg);
	void *arg;
};

/* This process's identity; taken(arg) runs after a reclaim found jobs. */
void worker_owner_init(struct worker_owner *o, void (*taken)(void *arg), void *arg);
/*
 * Ends the leases of the claims held by this host's processes that are gone
 * (bayarhook.job_local_owners, job_expire_owners), so that the next claim
 * takes their jobs over. One at a time; a call while one runs does nothing.
 */
void worker_owner_reclaim(struct worker_owner *o, struct db_pool *pool);
/* A random number for nonces and jitter; never fails. */
uint32_t worker_random_u32(void);

#endif
