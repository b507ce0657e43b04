/*
 * server.h: the HTTP side only: listeners, routes, limits, the real client
 * address. Callback requests are handed to callback.c.
 */
#ifndef BAYARHOOK_SERVER_H
#define BAYARHOOK_SERVER_H

#include <stdbool.h>
#include <event2/event.h>

#include "config.h"
#include "store.h"

struct server;

struct server_hooks {
	bool (*db_up)(void *arg); /* for /healthz */
	void *arg;
};

/*
 * Listens on the sockets systemd passed (fds, nfds > 0) or else on
 * cfg->listen. Returns NULL with the reason in err.
 */
struct server *server_new(struct event_base *base, const struct config *cfg, struct store *st,
                          const int *fds, int nfds, const struct server_hooks *hooks, char *err,
                          size_t errlen);
/* Applies a reloaded config (everything but listen). cfg must outlive its use. */
void server_set_config(struct server *srv, const struct config *cfg);
/*
 * Stops taking new connections (systemd's sockets are closed, our own
 * refuse new SYNs until their accept queue is served); requests already
 * received or queued are still answered, each with Connection: close.
 */
void server_stop_accepting(struct server *srv);
/*
 * After server_stop_accepting(), called periodically: closes listeners whose
 * accept queue is empty; true once none is left and no client sent a byte
 * for a moment (nobody is in the middle of a request). Requests already
 * read are counted by server_inflight().
 */
bool server_drained(struct server *srv);
/* Callback requests received and not yet answered. */
unsigned server_inflight(const struct server *srv);
/* The address actually bound ("127.0.0.1:8080"), for logs. */
const char *server_address(const struct server *srv);
void server_free(struct server *srv);

/*
 * The real client address: the peer, unless the peer is a trusted proxy,
 * in which case the rightmost untrusted X-Forwarded-For entry (or
 * X-Real-IP). Exposed for tests.
 */
void server_real_client(const struct cidr_list *trusted, const char *peer, const char *xff,
                        const char *xreal, char *out, size_t outlen);

#endif
