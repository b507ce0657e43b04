/*
 * service.h: the daemon's side of the systemd service protocol: socket
 * activation, sd_notify state changes and the watchdog. Every function is a
 * no-op outside systemd, so `bayarhook serve` behaves the same in a terminal.
 */
#ifndef BAYARHOOK_SERVICE_H
#define BAYARHOOK_SERVICE_H

#include <stdbool.h>

struct event_base;
struct service_watchdog;

/*
 * Sockets passed by systemd (bayarhook.socket). Returns how many, with a
 * malloc'd array in *fds for the caller to free, or 0 (and *fds = NULL) when
 * systemd passed none: then `listen =` applies. Returns -1 after logging
 * when one of the descriptors is not a listening stream socket, so a
 * misconfigured .socket unit (ListenDatagram=, Accept=yes) fails loudly.
 * The descriptors come back non-blocking and close-on-exec, ready for
 * evhttp_accept_socket_with_handle(); LISTEN_* is removed from the
 * environment so no child mistakes them for its own.
 */
int service_listen_sockets(int **fds) __attribute__((warn_unused_result));

/* READY=1, with STATUS= when status is not NULL; after start and each reload. */
void service_ready(const char *status);
/* STATUS=..., shown by systemctl status. */
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC now> at the start of a
 * reload; service_ready() ends it. systemd 253+ (Type=notify-reload) requires
 * MONOTONIC_USEC, 252 ignores it.
 */
void service_reloading(void);
/* STOPPING=1 at the start of a graceful shutdown. */
void service_stopping(void);

/*
 * When the unit has WatchdogSec=, starts a timer at half the interval that
 * sends WATCHDOG=1 each time healthy(arg) returns true (healthy may be NULL:
 * the timer firing proves the loop runs). A tick while unhealthy sends
 * nothing, so systemd restarts a wedged daemon. Returns NULL when no
 * watchdog is asked for, or after logging when the timer cannot be made.
 *
 * WATCHDOG_USEC/WATCHDOG_PID are left in the environment
 * (sd_watchdog_enabled(0, ...)): children are exec'd with an explicit, clean
 * environment (SPEC §5) so they never see them, and a forked child that has
 * not exec'd fails libsystemd's WATCHDOG_PID check anyway.
 */
struct service_watchdog *service_watchdog_start(struct event_base *base, bool (*healthy)(void *),
                                                void *arg);
/* Stops the timer; accepts NULL. */
void service_watchdog_free(struct service_watchdog *wd);

#endif
