/*
 * audit_keep.h: serve's upkeep of the partitioned audit (SPEC §11): the
 * months ahead of bayarhook.callbacks made at start and daily, and, with
 * [audit] retention, the months older than it dropped when the daemon's
 * role may (else it says once to run `bayarhook audit retain` as the owner).
 */
#ifndef BAYARHOOK_AUDIT_KEEP_H
#define BAYARHOOK_AUDIT_KEEP_H

#include <event2/event.h>

struct audit_keep;
struct config;
struct db_pool;

/* Starts the timer; the first round runs a second after. NULL if it cannot. */
struct audit_keep *audit_keep_new(struct event_base *base, struct db_pool *pool,
                                  const struct config *cfg);
/* A reloaded config: its retention counts from the next round. */
void audit_keep_configure(struct audit_keep *k, const struct config *cfg);
void audit_keep_free(struct audit_keep *k);

#endif
