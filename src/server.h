/*
 * server.h: the HTTP side only: listeners, routes, limits, the real client
 * address. Requests are read by lib/httpd; callback requests (and the
 * reader's refusals of them) are handed to callback.c.
 */
#ifndef BAYARHOOK_SERVER_H
#define BAYARHOOK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "config.h"
#include "httpd.h"
#include "store.h"
#include "verdict.h"

struct server;

struct server_hooks {
	bool (*db_up)(void *arg); /* for /healthz and /metrics: a usable connection */
	/*
	 * For /healthz and /metrics: why callbacks cannot be committed now
	 * ("read-only session", "answer_timeout passed", ...), NULL when they can.
	 */
	const char *(*degraded)(void *arg);
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
 * After server_stop_accepting(), called periodically: true once no
 * listener and no connection is left (lib/httpd: httpd_drained). Requests
 * handed to callback.c are counted by server_inflight().
 */
bool server_drained(struct server *srv);
/* Callback requests (and audit rows of refused ones) not yet answered or written. */
unsigned server_inflight(const struct server *srv);
/* The address actually bound ("127.0.0.1:8080"), for logs. */
const char *server_address(const struct server *srv);
void server_free(struct server *srv);

/*
 * The real client address behind trusted_proxies: X-Forwarded-For read from
 * the right, bounded (lib/forwarded.h). Exposed for tests.
 */
void server_real_client(const struct cidr_list *trusted, const char *peer, const char *const *xff,
                        size_t nxff, const char *xreal, char *out, size_t outlen);

/* The reason an httpd refusal is audited under (verdict.c). Exposed for tests. */
enum verdict_reason server_refusal_reason(enum httpd_refusal r);

#endif
