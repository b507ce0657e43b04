/*
 * daemon.c: wires the event loop: signals, the database pool, the store, the
 * HTTP server and systemd. SIGHUP reloads the config (a broken file is logged
 * and the running config kept); SIGTERM stops accepting, lets in-flight
 * callbacks finish within a bound, and exits 0.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "proc.h"
#include "callback.h"
#include "config.h"
#include "confirm.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "admin.h"
#include "alert.h"
#include "audit_keep.h"
#include "audit_refusal.h"
#include "audit_timer.h"
#include "pool_plan.h"
#include "reconcile.h"
#include "service.h"
#include "server.h"
#include "worker.h"
#include "xmalloc.h"
#include "stats.h"
#include "store.h"

#define DAEMON_STOP_GRACE_SEC 10
/* Running jobs get WORKER_STOP_GRACE_SEC, then are stopped; this bounds the rest. */
#define DAEMON_STOP_JOBS_SEC (WORKER_STOP_GRACE_SEC + 10)
/* How long the listener waits for the first database connection at start. */
#define DAEMON_START_DB_WAIT_MS 3000
/*
 * After a burst (nothing in flight at a tick of the memory timer) a resident
 * size over this gives the heap's free pages back (SPEC §13: under 32 MB
 * within seconds after a load).
 */
#define DAEMON_TRIM_RSS (24L * 1024 * 1024)
#define DAEMON_TRIM_EVERY_SEC 2
/* libevent's own messages: at most this many per DAEMON_EVLOG_WINDOW_SEC. */
#define DAEMON_EVLOG_BURST 5
#define DAEMON_EVLOG_WINDOW_SEC 10

struct daemon {
	struct event_base *base;
	struct config *cfg;
	const char *conninfo; /* --conninfo: [database] conninfo's stand-in, or NULL */
	struct db_pool *pool;
	struct store *store;
	struct server *server;
	struct worker *worker;
	struct db_pool *rpool;   /* the reconciler's and the confirmer's */
	struct gateway *gateway; /* one door to the API: one rate limit */
	struct reconcile *reconcile;
	struct confirm *confirm;
	struct alert *alert;
	struct audit_keep *audit_keep; /* the audit's months ahead, and retention */
	struct audit_timer *audit;     /* chain checkpoints, redact_after (SPEC §11) */
	struct admin *admin;           /* the status page; NULL without [admin] listen */
	struct service_watchdog *watchdog;
	struct event *ev_term, *ev_int, *ev_hup, *ev_drain, *ev_trim;
	struct event *ev_refusals; /* collapsed refusals' rows, once their window ends */
	int stop_ticks;
	bool stopping;
};

static bool daemon_db_up(void *arg)
{
	struct daemon *d = arg;

	return db_pool_up(d->pool) > 0;
}

static const char *daemon_degraded(void *arg)
{
	struct daemon *d = arg;

	if (db_pool_read_only(d->pool))
		return "read-only session";
	return store_degraded(d->store);
}

/*
 * libevent logs on its own (an accept error, a bufferevent's trouble) to
 * stderr by default, past our format and priorities and without a bound:
 * at the descriptor limit it wrote hundreds of MB. Its messages go through
 * our log, at most DAEMON_EVLOG_BURST per window, and the next line that
 * gets through says how many were left out.
 */
static void daemon_evlog(int severity, const char *msg)
{
	static struct timespec window;
	static unsigned n;
	static unsigned long dropped;
	struct timespec now;
	int prio = severity >= EVENT_LOG_ERR    ? LOG_ERR
	           : severity >= EVENT_LOG_WARN ? LOG_WARNING
	           : severity >= EVENT_LOG_MSG  ? LOG_INFO
	                                        : LOG_DEBUG;

	if (prio == LOG_DEBUG && !log_debug_enabled())
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - window.tv_sec >= DAEMON_EVLOG_WINDOW_SEC) {
		window = now;
		n = 0;
	}
	if (++n > DAEMON_EVLOG_BURST) {
		dropped++;
		return;
	}
	if (dropped > 0)
		log_msg(prio, "libevent: %s (%lu earlier message(s) left out)", msg, dropped);
	else
		log_msg(prio, "libevent: %s", msg);
	dropped = 0;
}

/* Resident set size in bytes, from /proc/self/statm; 0 when unknown. */
static long daemon_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long pages = 0, rss = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

/* Gives freed heap pages back once a burst is over (glibc keeps them otherwise). */
static void daemon_refusals(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	audit_refusal_flush(d->store, false);
}

static void daemon_trim(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (server_inflight(d->server) + store_outstanding(d->store) > 0)
		return;
	if (daemon_rss() > DAEMON_TRIM_RSS)
		malloc_trim(0);
}

static bool daemon_healthy(void *arg)
{
	/* The loop ran this timer, so it is not stuck; that is what the watchdog asks. */
	(void)arg;
	return true;
}

static void daemon_status(struct daemon *d)
{
	service_status("serving on %s, database %s", server_address(d->server),
	               db_pool_up(d->pool) ? "up" : "down");
}

static void daemon_db_state(bool up, void *arg)
{
	struct daemon *d = arg;

	metrics_set(METRIC_DATABASE_UP, NULL, up ? 1 : 0);
	alert_db_state(d->alert, up);
	if (d->server)
		daemon_status(d);
}

/* store_on_commit: an accepted event's jobs are in the database now. */
static void daemon_jobs_made(void *arg)
{
	worker_wake_now(arg);
}

/* callback.c's follow-up hook: a durable stale or unsigned callback, for the reconciler. */
static void daemon_followup(const char *invoice, enum callback_followup kind, void *arg)
{
	struct daemon *d = arg;

	reconcile_check_soon(d->reconcile, invoice,
	                     kind == CALLBACK_FOLLOWUP_UNSIGNED ? RECONCILE_SOON_UNSIGNED
	                                                        : RECONCILE_SOON_STALE);
}

/*
 * What the load accepted with a warning, and which webhook secrets are
 * active (their count and fingerprints, never the secrets: SPEC §7), so
 * that a rotation can be seen to have taken.
 */
static void daemon_log_config(const struct config *cfg, const char *when)
{
	char fps[1024];

	for (size_t i = 0; i < cfg->nwarnings; i++)
		log_warnx("%s: %s", when, cfg->warnings[i]);
	config_secret_fingerprints(cfg, fps, sizeof(fps));
	log_notice("%s: %zu webhook secret(s), fingerprints %s (SHA-256, current first)", when,
	           cfg->nsecrets, fps);
	/* systemd copies credentials at start only: a reload reads the same copy. */
	if (strcmp(when, "reload") == 0 && cfg->secrets_from_credentials)
		log_warnx(
		    "reload: secrets are read from $CREDENTIALS_DIRECTORY, which systemd fills "
		    "only at start; a changed secret takes effect after systemctl restart "
		    "bayarhook");
}

/* --conninfo stands for the file's [database] conninfo, at start and on each reload. */
static void daemon_conninfo(const struct daemon *d, struct config *cfg)
{
	if (d->conninfo == NULL)
		return;
	free(cfg->conninfo);
	cfg->conninfo = xstrdup(d->conninfo);
}

static void daemon_reload(struct daemon *d)
{
	char err[512], changed[128];
	struct config *next;

	service_reloading();
	next = config_load(d->cfg->path, err, sizeof(err));
	if (next == NULL) {
		log_errx("reload failed, keeping the running config: %s", err);
		service_ready(NULL);
		return;
	}
	daemon_conninfo(d, next);
	/* The table's not-reloadable keys (listen, conninfo) keep their running values. */
	if (config_keep_fixed(next, d->cfg, changed, sizeof(changed)) > 0)
		log_warnx("reload: %s changed; that takes effect only after a restart", changed);
	if (worker_set_config(d->worker, next, err, sizeof(err)) < 0) {
		log_errx("reload failed, keeping the running config: %s", err);
		config_free(next);
		service_ready(NULL);
		return;
	}
	store_set_actions(d->store, next);
	store_set_answer_timeout(d->store, d->base, next->answer_timeout);
	audit_timer_reload(d->audit, next);
	gateway_configure(d->gateway, next);
	reconcile_configure(d->reconcile, next);
	audit_keep_configure(d->audit_keep, next);
	if (alert_configure(d->alert, next, err, sizeof(err)) < 0)
		log_errx("reload: %s; alerts keep the running [alert] settings", err);
	server_set_config(d->server, next);
	admin_set_config(d->admin, next);
	config_free(d->cfg);
	d->cfg = next;
	log_notice("configuration reloaded from %s", d->cfg->path);
	daemon_log_config(d->cfg, "reload");
	service_ready(NULL);
	daemon_status(d);
}

static void daemon_drain(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	unsigned left = server_inflight(d->server) + store_outstanding(d->store);
	bool jobs = !worker_idle(d->worker);
	bool recon = reconcile_busy(d->reconcile) || confirm_busy(d->confirm);
	bool http = server_drained(d->server); /* listeners closed, no request half-sent */

	(void)fd;
	(void)what;
	++d->stop_ticks;
	if ((left || recon || !http) && d->stop_ticks <= DAEMON_STOP_GRACE_SEC * 10)
		return;
	if (jobs && d->stop_ticks <= DAEMON_STOP_JOBS_SEC * 10)
		return;
	if (left)
		log_warnx("stopping with %u request(s) unanswered after %d s", left,
		          DAEMON_STOP_GRACE_SEC);
	if (jobs)
		log_warnx("stopping with jobs unfinished after %d s", DAEMON_STOP_JOBS_SEC);
	event_base_loopexit(d->base, NULL);
}

static void daemon_stop(struct daemon *d)
{
	struct timeval tick = {0, 100000};

	if (d->stopping)
		return;
	d->stopping = true;
	service_stopping();
	log_notice("stopping: no new connections, finishing in-flight requests");
	server_stop_accepting(d->server);
	admin_stop_accepting(d->admin);
	worker_stop(d->worker);
	reconcile_stop(d->reconcile);
	confirm_stop(d->confirm);
	/* Identical refusals still counted in memory get their row before the store drains. */
	audit_refusal_flush(d->store, true);
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

static void daemon_start_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/*
 * Runs the loop until the pool has a connection, for at most
 * DAEMON_START_DB_WAIT_MS, before the listener is made. With socket
 * activation the callback that started us is already waiting in the
 * backlog: it should be stored, not answered 503 because the pool was still
 * connecting. A database that stays down delays the listener by the bound;
 * then callbacks are answered 503 until it is back.
 */
static void daemon_wait_for_db(struct daemon *d)
{
	struct timeval tv = {DAEMON_START_DB_WAIT_MS / 1000,
	                     (DAEMON_START_DB_WAIT_MS % 1000) * 1000};
	bool expired = false;
	struct event *timer = evtimer_new(d->base, daemon_start_timeout, &expired);

	if (timer == NULL || evtimer_add(timer, &tv) < 0) {
		if (timer)
			event_free(timer);
		return;
	}
	while (!expired && db_pool_up(d->pool) == 0)
		event_base_loop(d->base, EVLOOP_ONCE);
	event_free(timer);
	if (db_pool_up(d->pool) == 0) {
		log_warnx("database not reachable yet; serving anyway, callbacks are answered 503 "
		          "until it is");
		/* Never up, so no change was seen: the outage (database_down) starts now. */
		daemon_db_state(false, d);
	}
}

static void daemon_free(struct daemon *d)
{
	callback_set_followup(NULL, NULL);
	if (d->ev_drain)
		event_free(d->ev_drain);
	if (d->ev_trim)
		event_free(d->ev_trim);
	if (d->ev_refusals)
		event_free(d->ev_refusals);
	if (d->ev_term)
		event_free(d->ev_term);
	if (d->ev_int)
		event_free(d->ev_int);
	if (d->ev_hup)
		event_free(d->ev_hup);
	service_watchdog_free(d->watchdog);
	audit_timer_free(d->audit); /* the lanes' last checkpoint */
	admin_free(d->admin);
	server_free(d->server);
	worker_free(d->worker);
	alert_free(d->alert);
	audit_keep_free(d->audit_keep);
	proc_fini();
	confirm_free(d->confirm);
	reconcile_free(d->reconcile);
	gateway_free(d->gateway);
	store_free(d->store);
	db_pool_free(d->rpool);
	db_pool_free(d->pool);
	config_free(d->cfg);
	if (d->base)
		event_base_free(d->base);
}

int daemon_serve(const char *config_path, const char *conninfo)
{
	struct daemon d;
	char err[512];
	struct pool_plan plan;
	int *fds = NULL, nfds, rc = 1;
	struct server_hooks hooks;

	memset(&d, 0, sizeof(d));
	/*
	 * Before any secret is read: no core dump holds them, and no process of
	 * the same user can ptrace them out or read /proc/PID/mem (SPEC §13).
	 * The commands of exec actions are dumpable again after their execve.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_warn("prctl(PR_SET_DUMPABLE): secrets may reach a core dump");
	d.cfg = config_load(config_path, err, sizeof(err));
	if (d.cfg == NULL) {
		log_errx("%s", err);
		return 1;
	}
	d.conninfo = conninfo;
	daemon_conninfo(&d, d.cfg);
	daemon_log_config(d.cfg, "start");
	stats_init(BAYARHOOK_VERSION);
	event_set_log_callback(daemon_evlog);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	d.base = event_base_new();
	if (d.base == NULL) {
		log_errx("cannot create the event loop");
		goto out;
	}
	/* [database] pool_size, split as pool_plan.h says; the log names the split. */
	plan = pool_plan(d.cfg->pool_size);
	log_info("database connections: pool_size=%d ingest=%d worker=%d reconcile=%d alerts=%d "
	         "listen=%d, %sand up to concurrency=%d per sql action database",
	         d.cfg->pool_size, plan.ingest, plan.queue, plan.reconcile, plan.alert, plan.listen,
	         d.cfg->admin_listen.text ? "status=1 ([admin] listen), " : "", d.cfg->concurrency);
	d.pool = db_pool_new(d.base, d.cfg->conninfo, plan.ingest, "ingest");
	d.store = store_new(d.pool);
	store_set_actions(d.store, d.cfg);
	store_set_answer_timeout(d.store, d.base, d.cfg->answer_timeout);
	db_pool_on_state(d.pool, daemon_db_state, &d);
	if (proc_init(d.base) < 0) {
		log_errx("cannot install the SIGCHLD handler");
		goto out;
	}
	d.worker = worker_new(d.base, d.cfg, err, sizeof(err));
	if (d.worker == NULL) {
		log_errx("%s", err);
		goto out;
	}
	/* The worker claims the jobs of a commit as soon as it is made. */
	store_on_commit(d.store, daemon_jobs_made, d.worker);
	d.alert = alert_new(d.base, d.cfg, err, sizeof(err));
	if (d.alert == NULL) {
		log_errx("%s", err);
		goto out;
	}
	/* Before the loop first runs: the confirmer LISTENs on rpool as it connects. */
	d.rpool = db_pool_new(d.base, d.cfg->conninfo, plan.reconcile, "reconcile");
	d.gateway = gateway_new(d.base, d.cfg);
	if (d.gateway != NULL)
		worker_set_gateway(d.worker, d.gateway);
	d.reconcile =
	    d.gateway ? reconcile_new(d.base, d.cfg, d.rpool, d.store, d.gateway, "serve") : NULL;
	d.confirm = d.reconcile ? confirm_new(d.base, d.rpool, d.gateway) : NULL;
	if (d.confirm == NULL) {
		log_errx("cannot create the reconciler's timers");
		goto out;
	}
	reconcile_start(d.reconcile);
	d.audit_keep = audit_keep_new(d.base, d.rpool, d.cfg);
	if (d.audit_keep == NULL) {
		log_errx("cannot start the audit's upkeep timer");
		goto out;
	}
	callback_set_followup(daemon_followup, &d);
	daemon_wait_for_db(&d);

	nfds = service_listen_sockets(&fds);
	if (nfds < 0) {
		log_errx("unusable sockets from systemd");
		goto out;
	}
	if (nfds > 0)
		log_notice("using %d socket(s) from systemd; listen = %s is ignored", nfds,
		           d.cfg->listen.text);
	hooks.db_up = daemon_db_up;
	hooks.degraded = daemon_degraded;
	hooks.arg = &d;
	d.server = server_new(d.base, d.cfg, d.store, fds, nfds, &hooks, err, sizeof(err));
	free(fds);
	if (d.server == NULL) {
		log_errx("%s", err);
		goto out;
	}
	/* The status page: its own listener and database connection (SPEC §8). */
	if (d.cfg->admin_listen.text != NULL) {
		d.admin = admin_new(d.base, d.cfg, err, sizeof(err));
		if (d.admin == NULL) {
			log_errx("%s", err);
			goto out;
		}
		log_notice("status page on %s", admin_address(d.admin));
	}
	d.ev_term = evsignal_new(d.base, SIGTERM, daemon_signal, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, daemon_signal, &d);
	d.ev_hup = evsignal_new(d.base, SIGHUP, daemon_signal, &d);
	if (!d.ev_term || !d.ev_int || !d.ev_hup || evsignal_add(d.ev_term, NULL) < 0 ||
	    evsignal_add(d.ev_int, NULL) < 0 || evsignal_add(d.ev_hup, NULL) < 0) {
		log_errx("cannot install signal handlers");
		goto out;
	}
	{
		struct timeval every = {DAEMON_TRIM_EVERY_SEC, 0};

		d.ev_trim = event_new(d.base, -1, EV_PERSIST, daemon_trim, &d);
		if (d.ev_trim == NULL || event_add(d.ev_trim, &every) < 0) {
			log_errx("cannot start the memory timer");
			goto out;
		}
	}
	{
		struct timeval every = {0, 250000};

		d.ev_refusals = event_new(d.base, -1, EV_PERSIST, daemon_refusals, &d);
		if (d.ev_refusals == NULL || event_add(d.ev_refusals, &every) < 0) {
			log_errx("cannot start the refusals timer");
			goto out;
		}
	}
	/* On rpool: a redaction pass never takes an ingest connection. */
	if ((d.audit = audit_timer_new(d.base, d.store, d.rpool, d.cfg)) == NULL) {
		log_errx("cannot start the audit timer");
		goto out;
	}
	d.watchdog = service_watchdog_start(d.base, daemon_healthy, &d);
	metrics_set(METRIC_DATABASE_UP, NULL, db_pool_up(d.pool) ? 1 : 0);
	log_notice("bayarhook %s listening on %s callback_path=%s", BAYARHOOK_VERSION,
	           server_address(d.server), d.cfg->callback_path);
	/*
	 * Ready means the listener is up. With the database down, callbacks are
	 * answered 503 (the gateway keeps them) until the pool reconnects.
	 */
	service_ready(NULL);
	daemon_status(&d);
	event_base_dispatch(d.base);
	log_notice("stopped");
	rc = 0;
out:
	daemon_free(&d);
	return rc;
}
