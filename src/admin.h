/*
 * admin.h: the status page (SPEC §8): its own listener ([admin] listen),
 * its own database connection, one HTML page, /api/summary and the retry
 * of a dead job. Nothing here is on the callback path.
 */
#ifndef BAYARHOOK_ADMIN_H
#define BAYARHOOK_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "config.h"

struct admin;

/*
 * Listens on cfg->admin_listen (host:port or unix:/path) with its own
 * one-connection pool on cfg->conninfo. Returns NULL with the reason in
 * err; a cfg without [admin] listen is not to be passed.
 */
struct admin *admin_new(struct event_base *base, const struct config *cfg, char *err,
                        size_t errlen);
/* A reloaded config: the token may have changed (listen and conninfo may not). */
void admin_set_config(struct admin *a, const struct config *cfg);
/* The address it listens on, for logs. */
const char *admin_address(const struct admin *a);
/* Stops taking connections (SIGTERM); pages being made are still answered. */
void admin_stop_accepting(struct admin *a);
/* Answers what is in flight (database down), closes everything; NULL is fine. */
void admin_free(struct admin *a);

#endif
