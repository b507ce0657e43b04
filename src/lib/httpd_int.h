/*
 * httpd_int.h: what httpd.c (connections, requests, answers) and
 * httpd_listen.c (listeners, accepting, stopping) share. Not for owners.
 */
#ifndef BAYARHOOK_HTTPD_INT_H
#define BAYARHOOK_HTTPD_INT_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "httpd.h"
#include "httpd_parse.h"

#define HTTPD_MAX_LISTENERS 16
/*
 * Unparsed input held per connection: while the owner handles a request,
 * reading stops once this much of the next one is buffered.
 */
#define HTTPD_READ_MAX 16384
/* A graceful stop closes a connection that sent nothing for this long. */
#define HTTPD_QUIET_MS 250
/* At most one log line per kind of trouble per this many seconds. */
#define HTTPD_LOG_EVERY_SEC 10

/* A log line at most every HTTPD_LOG_EVERY_SEC, saying how many it stands for. */
struct httpd_ratelog {
	struct timespec last;
	unsigned long count;
	bool logged;
};
void httpd_ratelog(struct httpd_ratelog *r, const char *what);

struct httpd_listener {
	struct evconnlistener *l;
	bool inherited; /* systemd's: closed at stop, its queue kept for the next process */
};

enum httpd_conn_state {
	HTTPD_C_IDLE,     /* waiting for a request's first byte */
	HTTPD_C_READING,  /* reading a request */
	HTTPD_C_HANDLING, /* the owner has the request */
	HTTPD_C_WRITING,  /* an answer is being sent */
	HTTPD_C_LINGER,   /* answered a refusal; discarding input until the client closes */
};

struct httpd_conn {
	TAILQ_ENTRY(httpd_conn) link;
	struct httpd *h;
	struct bufferevent *bev;
	struct event *timer;
	struct httpd_parser parser;
	enum httpd_conn_state state;
	bool deadline_armed; /* the request clock is running (set at accept) */
	bool close_after;
	bool peer_eof;
	bool continue_sent;
	unsigned served;
	size_t lingered;
	struct timespec since; /* accept, or the last answer */
	struct httpd_req *req;
	char peer[64];
};

struct httpd {
	struct event_base *base;
	struct httpd_limits lim;
	struct httpd_handlers on;
	struct httpd_listener ls[HTTPD_MAX_LISTENERS];
	int nls;
	struct event *resume; /* re-enables accepting after a lack of descriptors */
	/* httpd.c's connection constructor, so that the listeners need not link to it. */
	void (*accepted)(struct httpd *h, evutil_socket_t fd, const struct sockaddr *sa, int salen);
	TAILQ_HEAD(, httpd_conn) conns;
	bool stopping;
	struct httpd_stats st;
	struct httpd_ratelog log_fds, log_cap, log_accept;
	char address[128];
};

void httpd_conn_free(struct httpd_conn *c);
/* The listener side of httpd_stop_accepting(), httpd_drained() and httpd_free(). */
void httpd_listeners_stop(struct httpd *h);
/* Closes listeners whose accept queue is empty; true once none is left. */
bool httpd_listeners_drained(struct httpd *h);
void httpd_listeners_free(struct httpd *h);

#endif
