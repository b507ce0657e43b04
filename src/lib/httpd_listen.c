/*
 * httpd_listen.c: the listening side of httpd: our own sockets (with a
 * backlog of our choosing) or systemd's, accepting, the pause when the
 * process is out of descriptors, and the graceful stop.
 *
 * Out of descriptors, accept(2) fails at once for as long as a connection
 * waits, and a level-triggered listener would spin on it at full CPU. So
 * accepting pauses for HTTPD_FD_PAUSE_MS (connections wait in the kernel's
 * queue meanwhile) and the trouble is logged at most once per
 * HTTPD_LOG_EVERY_SEC with a count.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd_int.h"
#include "log.h"

#define HTTPD_FD_PAUSE_MS 100

void httpd_ratelog(struct httpd_ratelog *r, const char *what)
{
	struct timespec now;

	r->count++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (r->logged && now.tv_sec - r->last.tv_sec < HTTPD_LOG_EVERY_SEC)
		return;
	log_warnx("%s (%lu time%s in the last %d s)", what, r->count, r->count == 1 ? "" : "s",
	          HTTPD_LOG_EVERY_SEC);
	r->count = 0;
	r->last = now;
	r->logged = true;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct httpd *h = arg;

	(void)l;
	h->accepted(h, fd, sa, salen);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *h = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < h->nls; i++)
		if (h->ls[i].l)
			evconnlistener_enable(h->ls[i].l);
}

static void accept_error(struct evconnlistener *l, void *arg)
{
	struct httpd *h = arg;
	int e = EVUTIL_SOCKET_ERROR();
	char what[160];

	(void)l;
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		struct timeval tv = {0, HTTPD_FD_PAUSE_MS * 1000};

		for (int i = 0; i < h->nls; i++)
			if (h->ls[i].l)
				evconnlistener_disable(h->ls[i].l);
		if (h->resume == NULL)
			h->resume = evtimer_new(h->base, resume_cb, h);
		evtimer_add(h->resume, &tv);
		h->st.accept_pauses++;
		snprintf(what, sizeof(what), "accept: %s; pausing accepting for %d ms", strerror(e),
		         HTTPD_FD_PAUSE_MS);
		httpd_ratelog(&h->log_fds, what);
		return;
	}
	snprintf(what, sizeof(what), "accept: %s", strerror(e));
	httpd_ratelog(&h->log_accept, what);
}

static void address_of(struct httpd *h, evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[64] = "";

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(h->address, sizeof(h->address), "[%s]:%u", a, ntohs(s6->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(h->address, sizeof(h->address), "%s:%u", a, ntohs(s4->sin_port));
	}
}

static int add_listener(struct httpd *h, struct evconnlistener *l, bool inherited)
{
	if (h->nls == 0)
		address_of(h, evconnlistener_get_fd(l));
	evconnlistener_set_error_cb(l, accept_error);
	h->ls[h->nls].l = l;
	h->ls[h->nls].inherited = inherited;
	h->nls++;
	return 0;
}

/* "host:port" or "[v6]:port". */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *h = s;
	size_t hl;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || colon[1] == '\0' || strlen(colon + 1) >= portlen ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

int httpd_listen(struct httpd *h, const char *hostport, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	struct evconnlistener *l;
	char host[96], port[8];
	int rc;

	if (h->nls == HTTPD_MAX_LISTENERS) {
		snprintf(err, errlen, "too many listeners");
		return -1;
	}
	if (split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "listen: cannot parse \"%s\"", hostport);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	l = evconnlistener_new_bind(h->base, accept_cb, h,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	                                LEV_OPT_REUSEABLE,
	                            h->lim.backlog, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (l == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
		return -1;
	}
	return add_listener(h, l, false);
}

int httpd_listen_fd(struct httpd *h, int fd, char *err, size_t errlen)
{
	struct evconnlistener *l;

	if (h->nls == HTTPD_MAX_LISTENERS) {
		snprintf(err, errlen, "too many listeners");
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	/* backlog 0: the socket listens already, with systemd's Backlog=. */
	l = evconnlistener_new(h->base, accept_cb, h, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                       0, fd);
	if (l == NULL) {
		snprintf(err, errlen, "cannot accept on socket fd %d: %s", fd, strerror(errno));
		return -1;
	}
	return add_listener(h, l, true);
}

const char *httpd_address(const struct httpd *h)
{
	return h->address;
}

/*
 * Makes the kernel drop new SYNs to a listening socket while connections
 * already queued (and handshakes already answered) still complete: a
 * classic BPF socket filter sees the TCP header at offset 0 and drops
 * packets with SYN set and ACK clear. Clients retry the SYN and find the
 * port closed (refused) by then, instead of being reset after sending.
 */
static int refuse_new_syns(evutil_socket_t fd)
{
	static struct sock_filter code[] = {
	    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13), /* TCP flags */
	    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, 0),          /* SYN alone: drop */
	    BPF_STMT(BPF_RET | BPF_K, 0xffffffff), /* anything else: keep */
	};
	struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static void close_listener(struct httpd *h, int i)
{
	if (h->ls[i].l)
		evconnlistener_free(h->ls[i].l);
	h->ls[i].l = NULL;
}

/*
 * Closing a listening socket resets the connections in its accept queue,
 * though their clients may have sent a whole request. systemd's sockets
 * keep their queue for the next process, so they are closed at once; our
 * own first stop taking new connections and are closed by httpd_drained()
 * once their queue is empty.
 */
void httpd_listeners_stop(struct httpd *h)
{
	h->stopping = true;
	for (int i = 0; i < h->nls; i++) {
		if (h->ls[i].l == NULL)
			continue;
		if (!h->ls[i].inherited && refuse_new_syns(evconnlistener_get_fd(h->ls[i].l)) == 0)
			continue;
		close_listener(h, i);
	}
}

bool httpd_listeners_drained(struct httpd *h)
{
	bool open = false;

	for (int i = 0; i < h->nls; i++) {
		struct pollfd pfd = {0, POLLIN, 0};

		if (h->ls[i].l == NULL)
			continue;
		pfd.fd = evconnlistener_get_fd(h->ls[i].l);
		if (poll(&pfd, 1, 0) == 0)
			close_listener(h, i); /* nothing queued */
		else
			open = true; /* accepted on the next turn of the loop */
	}
	return !open;
}

void httpd_listeners_free(struct httpd *h)
{
	for (int i = 0; i < h->nls; i++)
		close_listener(h, i);
	h->nls = 0;
	if (h->resume)
		event_free(h->resume);
	h->resume = NULL;
}
