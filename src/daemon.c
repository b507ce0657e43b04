/*
 * daemon.c: wires the event loop: signals, the database pool, the store, the
 * HTTP server and systemd. SIGHUP reloads the config (a broken file is logged
 * and the running config kept); SIGTERM stops accepting, lets in-flight
 * callbacks finish within a bound, and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <event2/event.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "sd.h"
#include "server.h"
#include "store.h"

#define DAEMON_DB_CONNS 4
#define DAEMON_STOP_GRACE_SEC 10

struct daemon {
	struct event_base *base;
	struct config *cfg;
	struct db_pool *pool;
	struct store *store;
	struct server *server;
	struct sd_watchdog *watchdog;
	struct event *ev_term, *ev_int, *ev_hup, *ev_drain;
	int stop_ticks;
	bool stopping;
};

static bool daemon_db_up(void *arg)
{
	struct daemon *d = arg;

	return db_pool_up(d->pool) > 0;
}

static bool daemon_healthy(void *arg)
{
	/* The loop ran this timer, so it is not stuck; that is what the watchdog asks. */
	(void)arg;
	return true;
}

static void daemon_status(struct daemon *d)
{
	sd_status("serving on %s, database %s", server_address(d->server),
		  db_pool_up(d->pool) ? "up" : "down");
}

static void daemon_db_state(bool up, void *arg)
{
	struct daemon *d = arg;

	metrics_set(METRIC_DATABASE_UP, NULL, up ? 1 : 0);
	if (d->server)
		daemon_status(d);
}

static void daemon_reload(struct daemon *d)
{
	char err[512];
	struct config *next;

	sd_reloading();
	next = config_load(d->cfg->path, err, sizeof(err));
	if (next == NULL) {
		log_errx("reload failed, keeping the running config: %s", err);
		sd_ready(NULL);
		return;
	}
	/* listen and conninfo are bound at start; keep the running values. */
	if (strcmp(next->listen, d->cfg->listen) != 0)
		log_warnx("reload: listen changed; it takes effect only after a restart");
	if (strcmp(next->conninfo, d->cfg->conninfo) != 0)
		log_warnx("reload: [database] conninfo changed; it takes effect only after a restart");
	{
		char *t;

		t = next->listen, next->listen = d->cfg->listen, d->cfg->listen = t;
		t = next->conninfo, next->conninfo = d->cfg->conninfo, d->cfg->conninfo = t;
	}
	if (store_set_actions(d->store, next) < 0) {
		log_errx("reload failed (out of memory), keeping the running config");
		config_free(next);
		sd_ready(NULL);
		return;
	}
	server_set_config(d->server, next);
	config_free(d->cfg);
	d->cfg = next;
	log_notice("configuration reloaded from %s", d->cfg->path);
	sd_ready(NULL);
	daemon_status(d);
}

static void daemon_drain(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	unsigned left = server_inflight(d->server) + store_outstanding(d->store);

	(void)fd;
	(void)what;
	if (left == 0 || ++d->stop_ticks > DAEMON_STOP_GRACE_SEC * 10) {
		if (left)
			log_warnx("stopping with %u request(s) unanswered after %d s", left,
				  DAEMON_STOP_GRACE_SEC);
		event_base_loopexit(d->base, NULL);
	}
}

static void daemon_stop(struct daemon *d)
{
	struct timeval tick = {0, 100000};

	if (d->stopping)
		return;
	d->stopping = true;
	sd_stopping();
	log_notice("stopping: no new connections, finishing in-flight requests");
	server_stop_accepting(d->server);
	d->ev_drain = event_new(d->base, -1, EV_PERSIST, daemon_drain, d);
	event_add(d->ev_drain, &tick);
	daemon_drain(-1, 0, d);
}

static void daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (sig == SIGHUP)
		daemon_reload(d);
	else
		daemon_stop(d);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* Many slow clients must not starve the listener of descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void daemon_free(struct daemon *d)
{
	if (d->ev_drain)
		event_free(d->ev_drain);
	if (d->ev_term)
		event_free(d->ev_term);
	if (d->ev_int)
		event_free(d->ev_int);
	if (d->ev_hup)
		event_free(d->ev_hup);
	sd_watchdog_free(d->watchdog);
	server_free(d->server);
	store_free(d->store);
	db_pool_free(d->pool);
	config_free(d->cfg);
	if (d->base)
		event_base_free(d->base);
}

int daemon_serve(const char *config_path)
{
	struct daemon d;
	char err[512];
	int *fds = NULL, nfds, rc = 1;
	struct server_hooks hooks;

	memset(&d, 0, sizeof(d));
	d.cfg = config_load(config_path, err, sizeof(err));
	if (d.cfg == NULL) {
		log_errx("%s", err);
		return 1;
	}
	metrics_init(BAYARHOOK_VERSION);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	d.base = event_base_new();
	if (d.base == NULL) {
		log_errx("cannot create the event loop");
		goto out;
	}
	d.pool = db_pool_new(d.base, d.cfg->conninfo, DAEMON_DB_CONNS, "ingest");
	d.store = d.pool ? store_new(d.pool) : NULL;
	if (d.store == NULL || store_set_actions(d.store, d.cfg) < 0) {
		log_errx("out of memory");
		goto out;
	}
	db_pool_on_state(d.pool, daemon_db_state, &d);

	nfds = sd_listen_sockets(&fds);
	if (nfds < 0) {
		log_errx("unusable sockets from systemd");
		goto out;
	}
	if (nfds > 0)
		log_notice("using %d socket(s) from systemd; listen = %s is ignored", nfds,
			   d.cfg->listen);
	hooks.db_up = daemon_db_up;
	hooks.arg = &d;
	d.server = server_new(d.base, d.cfg, d.store, fds, nfds, &hooks, err, sizeof(err));
	free(fds);
	if (d.server == NULL) {
		log_errx("%s", err);
		goto out;
	}
	d.ev_term = evsignal_new(d.base, SIGTERM, daemon_signal, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, daemon_signal, &d);
	d.ev_hup = evsignal_new(d.base, SIGHUP, daemon_signal, &d);
	if (!d.ev_term || !d.ev_int || !d.ev_hup || evsignal_add(d.ev_term, NULL) < 0 ||
	    evsignal_add(d.ev_int, NULL) < 0 || evsignal_add(d.ev_hup, NULL) < 0) {
		log_errx("cannot install signal handlers");
		goto out;
	}
	d.watchdog = sd_watchdog_start(d.base, daemon_healthy, &d);
	metrics_set(METRIC_DATABASE_UP, NULL, db_pool_up(d.pool) ? 1 : 0);
	log_notice("bayarhook %s listening on %s callback_path=%s", BAYARHOOK_VERSION,
		   server_address(d.server), d.cfg->callback_path);
	/*
	 * Ready means the listener is up. With the database down, callbacks are
	 * answered 503 (the gateway keeps them) until the pool reconnects.
	 */
	sd_ready(NULL);
	daemon_status(&d);
	event_base_dispatch(d.base);
	log_notice("stopped");
	rc = 0;
out:
	daemon_free(&d);
	return rc;
}
