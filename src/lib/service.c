/*
 * service.c: socket activation, readiness/reload/stop notifications and the
 * watchdog timer, over libsystemd's sd-daemon API (systemd 252). daemon.c
 * decides when; this file only knows how to tell systemd.
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "log.h"

struct service_watchdog {
	struct event *timer;        /* persistent, WATCHDOG_USEC / 2 */
	bool (*healthy)(void *arg); /* NULL: always healthy */
	void *arg;
	bool unhealthy; /* last tick skipped the ping; logged once */
};

int service_listen_sockets(int **fds)
{
	int n, *out = NULL;

	*fds = NULL;
	n = sd_listen_fds(1);
	if (n < 0) {
		errno = -n;
		log_warn("sd_listen_fds");
		return -1;
	}
	if (n == 0)
		return 0;
	out = calloc((size_t)n, sizeof(*out));
	if (out == NULL) {
		log_warn("service_listen_sockets");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i, r, flags;

		r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
		if (r < 0) {
			errno = -r;
			log_warn("socket activation: fd %d", fd);
			goto fail;
		}
		if (r == 0) {
			log_errx("socket activation: fd %d is not a listening stream socket "
			         "(check ListenStream= and Accept=no in the .socket unit)",
			         fd);
			goto fail;
		}
		/*
		 * libevent's listener accepts until EAGAIN; a blocking socket
		 * (systemd's default without NonBlocking=yes) would stall the
		 * loop in accept().
		 */
		flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
			log_warn("socket activation: fd %d: O_NONBLOCK", fd);
			goto fail;
		}
		out[i] = fd;
	}
	*fds = out;
	return n;
fail:
	free(out);
	return -1;
}

/* Turns newlines into spaces: a STATUS= value must not smuggle in READY=1. */
static void service_flatten(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

static bool sd_notify_wanted(void)
{
	const char *e = getenv("NOTIFY_SOCKET");

	return e != NULL && *e != '\0';
}

static void service_send(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0) {
		errno = -r;
		log_warn("sd_notify");
	}
}

void service_ready(const char *status)
{
	char buf[512];

	if (!sd_notify_wanted())
		return;
	if (status == NULL) {
		service_send("READY=1");
		return;
	}
	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
	service_flatten(buf + sizeof("READY=1"));
	service_send(buf);
}

void service_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int off = (int)sizeof("STATUS=") - 1;

	if (!sd_notify_wanted())
		return;
	memcpy(buf, "STATUS=", (size_t)off);
	va_start(ap, fmt);
	vsnprintf(buf + off, sizeof(buf) - (size_t)off, fmt, ap);
	va_end(ap);
	service_flatten(buf + off);
	service_send(buf);
}

void service_reloading(void)
{
	struct timespec ts;
	char buf[128];

	if (!sd_notify_wanted())
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)ts.tv_sec * 1000000ULL +
	             (unsigned long long)ts.tv_nsec / 1000ULL);
	service_send(buf);
}

void service_stopping(void)
{
	if (!sd_notify_wanted())
		return;
	service_send("STOPPING=1");
}

static void sd_watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
	struct service_watchdog *wd = arg;

	(void)fd;
	(void)what;
	if (wd->healthy != NULL && !wd->healthy(wd->arg)) {
		if (!wd->unhealthy)
			log_warnx("watchdog: unhealthy, withholding WATCHDOG=1");
		wd->unhealthy = true;
		return;
	}
	if (wd->unhealthy)
		log_notice("watchdog: healthy again");
	wd->unhealthy = false;
	service_send("WATCHDOG=1");
}

struct service_watchdog *service_watchdog_start(struct event_base *base, bool (*healthy)(void *),
                                                void *arg)
{
	struct service_watchdog *wd;
	struct timeval tv;
	uint64_t usec = 0, half;
	int r;

	r = sd_watchdog_enabled(0, &usec);
	if (r < 0) {
		errno = -r;
		log_warn("sd_watchdog_enabled");
		return NULL;
	}
	if (r == 0 || usec == 0)
		return NULL;
	wd = calloc(1, sizeof(*wd));
	if (wd == NULL) {
		log_warn("watchdog");
		return NULL;
	}
	wd->healthy = healthy;
	wd->arg = arg;
	wd->timer = event_new(base, -1, EV_PERSIST, sd_watchdog_tick, wd);
	half = usec / 2;
	tv.tv_sec = (time_t)(half / 1000000);
	tv.tv_usec = (suseconds_t)(half % 1000000);
	if (wd->timer == NULL || event_add(wd->timer, &tv) < 0) {
		log_errx("watchdog: cannot arm the timer");
		service_watchdog_free(wd);
		return NULL;
	}
	log_debug("watchdog: WATCHDOG_USEC=%llu, ping every %llu us", (unsigned long long)usec,
	          (unsigned long long)half);
	return wd;
}

void service_watchdog_free(struct service_watchdog *wd)
{
	if (wd == NULL)
		return;
	if (wd->timer != NULL)
		event_free(wd->timer);
	free(wd);
}
