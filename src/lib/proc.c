/*
 * proc.c: the process runner (the exec action's engine, but free of it).
 * Owns the child's setup, the pipes and their bufferevents, the
 * timeout/kill/linger timer, and reaping. See proc.h for the rules a run
 * follows; this file is their mechanics.
 *
 * Children are started with posix_spawn(): glibc runs it as a vfork-style
 * clone (CLONE_VM | CLONE_VFORK) that shares our memory instead of copying
 * the page tables as fork() does, and it reports a failed execve as its
 * own result, so no exec-errno pipe is needed. Its attributes do what the
 * child used to do by hand: a new process group, every signal back to its
 * default, an empty mask, the three pipes on 0-2 and every other fd closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proc.h"
#include "xmalloc.h"

#define HEAD_MAX (PROC_OUTPUT_MAX / 2)
#define TAIL_MAX (PROC_OUTPUT_MAX - HEAD_MAX)

enum run_state {
	RUN_RUNNING,     /* leader alive; timer: the timeout */
	RUN_TERMINATING, /* timed out, SIGTERM sent to the group; timer: SIGKILL */
	RUN_KILLED,      /* SIGKILL sent to the group; no timer, waiting for exit */
	RUN_EXITED,      /* leader exited, kept as a zombie; timer: linger for EOF */
	RUN_CANCELLED,   /* owner gone, SIGKILL sent; freed once the leader is reaped */
	RUN_DONE,        /* reaped and out of the list; callback running, then freed */
};

/*
 * Output capture: the first HEAD_MAX bytes, plus a ring holding the last
 * TAIL_MAX, so that both how a script started and how it failed survive.
 */
struct capture {
	char head[HEAD_MAX];
	size_t head_len;
	char tail[TAIL_MAX];
	size_t tail_pos; /* next write position in the ring */
	size_t total;    /* bytes seen in all */
};

struct proc {
	TAILQ_ENTRY(proc) entry;
	enum run_state state;
	struct event_base *base;
	pid_t pid;   /* leader and process group id */
	bool exited; /* leader has exited (seen with WNOWAIT, not reaped) */
	bool lost;   /* someone else reaped the leader: no status, no group kill */
	bool eof;    /* output pipe closed by every writer */
	bool timed_out;
	bool leftovers;          /* output still open after the linger: group killed */
	int fail_errno;          /* the spawn or the set-up after it failed: a spawn failure */
	struct bufferevent *in;  /* stdin feed, NULL once done */
	struct bufferevent *out; /* stdout+stderr, NULL once EOF or given up */
	struct event *timer;
	struct event *step; /* deferred re-evaluation, activated from anywhere */
	struct timespec started;
	int timeout_sec;
	char *prog;
	struct capture cap;
	proc_done_cb cb;
	void *arg;
};

static TAILQ_HEAD(proc_list, proc) all_runs = TAILQ_HEAD_INITIALIZER(all_runs);
static size_t nruns;
static struct event *sigchld_ev;

static void run_free(struct proc *run);

static void set_timer(struct proc *run, int sec)
{
	struct timeval tv = {.tv_sec = sec, .tv_usec = 0};

	evtimer_add(run->timer, &tv);
}

static void kill_group(struct proc *run, int sig)
{
	/* After an unexpected reap the id may be reused: better leak than harm. */
	if (!run->lost)
		(void)kill(-run->pid, sig);
}

static void bev_drop(struct bufferevent **b)
{
	if (*b != NULL)
		bufferevent_free(*b);
	*b = NULL;
}

static void ev_drop(struct event **e)
{
	if (*e != NULL)
		event_free(*e);
	*e = NULL;
}

/* Closes the pipes and events; the run stays in the list. */
static void run_close(struct proc *run)
{
	bev_drop(&run->in);
	bev_drop(&run->out);
	ev_drop(&run->timer);
	ev_drop(&run->step);
}

/* Reaps the leader, which must have exited; returns its wait status. */
static int reap(struct proc *run)
{
	int status = 0;

	if (run->lost)
		return -1;
	while (waitpid(run->pid, &status, 0) == -1) {
		if (errno != EINTR)
			return -1;
	}
	return status;
}

/* Non-blocking: has the leader exited? Leaves it a zombie (WNOWAIT). */
static bool poll_exit(struct proc *run)
{
	siginfo_t si;

	if (run->exited)
		return true;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)run->pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1) {
		if (errno == EINTR)
			return false;
		/* ECHILD: reaped behind our back. */
		run->lost = true;
		run->exited = true;
		return true;
	}
	if (si.si_pid != run->pid)
		return false;
	run->exited = true;
	return true;
}

static void capture_add(struct capture *c, const char *p, size_t n)
{
	size_t k;

	c->total += n;
	k = HEAD_MAX - c->head_len;
	if (k > n)
		k = n;
	memcpy(c->head + c->head_len, p, k);
	c->head_len += k;
	p += k;
	n -= k;
	if (n > TAIL_MAX) {
		p += n - TAIL_MAX;
		n = TAIL_MAX;
	}
	while (n > 0) {
		k = TAIL_MAX - c->tail_pos;
		if (k > n)
			k = n;
		memcpy(c->tail + c->tail_pos, p, k);
		c->tail_pos = (c->tail_pos + k) % TAIL_MAX;
		p += k;
		n -= k;
	}
}

/* Copies the last n bytes of the ring (n <= what it holds) to dst. */
static void capture_tail(const struct capture *c, char *dst, size_t n)
{
	size_t start = (c->tail_pos + TAIL_MAX - n) % TAIL_MAX;
	size_t k = TAIL_MAX - start;

	if (k > n)
		k = n;
	memcpy(dst, c->tail + start, k);
	memcpy(dst + k, c->tail, n - k);
}

/*
 * Renders the capture followed by note into buf (PROC_OUTPUT_MAX + 1
 * bytes), within PROC_OUTPUT_MAX. Returns the length.
 */
static size_t capture_render(const struct capture *c, const char *note, char *buf)
{
	size_t note_len = strlen(note), budget, len, tail_held, tail_take, dropped;
	int m = 0, m2;

	if (note_len > PROC_OUTPUT_MAX / 4)
		note_len = PROC_OUTPUT_MAX / 4;
	budget = PROC_OUTPUT_MAX - note_len;
	tail_held = c->total - c->head_len;
	if (tail_held > TAIL_MAX)
		tail_held = TAIL_MAX;
	if (c->total <= budget) {
		memcpy(buf, c->head, c->head_len);
		capture_tail(c, buf + c->head_len, tail_held);
		len = c->total;
	} else {
		/* The marker holds the count it depends on: settle its width. */
		for (;;) {
			tail_take = budget - c->head_len - (size_t)m;
			if (tail_take > tail_held)
				tail_take = tail_held;
			dropped = c->total - c->head_len - tail_take;
			m2 = snprintf(NULL, 0, "\n[truncated %zu bytes]\n", dropped);
			if (m2 <= m)
				break;
			m = m2;
		}
		memcpy(buf, c->head, c->head_len);
		len = c->head_len;
		len += (size_t)snprintf(buf + len, (size_t)m + 1, "\n[truncated %zu bytes]\n",
		                        dropped);
		capture_tail(c, buf + len, tail_take);
		len += tail_take;
	}
	/* A note starts on a line of its own, without an empty one before it. */
	if (note_len > 0 && note[0] == '\n' && (len == 0 || buf[len - 1] == '\n')) {
		note++;
		note_len--;
	}
	memcpy(buf + len, note, note_len);
	len += note_len;
	buf[len] = '\0';
	return len;
}

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* The leader has exited and the output is done (or given up): report. */
static void run_finish(struct proc *run)
{
	struct proc_result res = {0};
	char out[PROC_OUTPUT_MAX + 1], note[256] = "";
	int status, exec_errno = run->fail_errno;

	/* Whatever is left of the group dies before the leader's pid is freed. */
	kill_group(run, SIGKILL);
	status = reap(run);
	run_close(run);
	TAILQ_REMOVE(&all_runs, run, entry);
	nruns--;
	run->state = RUN_DONE;

	if (exec_errno != 0) {
		res.how = PROC_SPAWN_FAILED;
		res.code = exec_errno;
		snprintf(note, sizeof(note), "\nbayarhook: cannot execute %s: %s\n", run->prog,
		         strerror(exec_errno));
	} else if (run->timed_out) {
		res.how = PROC_TIMEOUT;
		res.code = 0;
		snprintf(note, sizeof(note), "\n[bayarhook: timed out after %d s]\n",
		         run->timeout_sec);
	} else if (status != -1 && WIFSIGNALED(status)) {
		res.how = PROC_SIGNALED;
		res.code = WTERMSIG(status);
	} else {
		res.how = PROC_EXITED;
		/* A lost status is no success. */
		res.code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	}
	if (res.how != PROC_SPAWN_FAILED && run->leftovers)
		snprintf(note + strlen(note), sizeof(note) - strlen(note),
		         "%s[bayarhook: output still open %d s after exit: process group killed]\n",
		         note[0] != '\0' ? "" : "\n", PROC_LINGER);
	res.output_len = capture_render(&run->cap, note, out);
	res.output = out;
	res.seconds = elapsed(&run->started);
	if (run->cb != NULL)
		run->cb(run, &res, run->arg);
	run_free(run);
}

/* Re-evaluates a run after any change; may finish (and free) it. */
static void run_step(struct proc *run)
{
	if (!poll_exit(run))
		return;
	if (run->state != RUN_EXITED) {
		run->state = RUN_EXITED;
		/* Nobody is left to read stdin that matters. */
		if (run->in != NULL) {
			bufferevent_free(run->in);
			run->in = NULL;
		}
		if (!run->eof) {
			/* Replaces the timeout/kill timer: the linger bounds the rest. */
			set_timer(run, PROC_LINGER);
			return;
		}
	}
	if (run->eof)
		run_finish(run);
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_step(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *run = arg;

	(void)fd;
	(void)what;
	switch (run->state) {
	case RUN_RUNNING:
		run->timed_out = true;
		run->state = RUN_TERMINATING;
		kill_group(run, SIGTERM);
		set_timer(run, PROC_KILL_GRACE);
		break;
	case RUN_TERMINATING:
		run->state = RUN_KILLED;
		kill_group(run, SIGKILL);
		break;
	case RUN_EXITED:
		/* Linger over: stop reading; run_finish kills the group. */
		if (!run->eof) {
			run->leftovers = true;
			run->eof = true;
		}
		run_finish(run);
		return;
	case RUN_KILLED:
	case RUN_CANCELLED:
	case RUN_DONE:
		break;
	}
	/* In case a SIGCHLD went missing. */
	run_step(run);
}

static void out_read_cb(struct bufferevent *bev, void *arg)
{
	struct proc *run = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	char buf[4096];
	int n;

	while ((n = evbuffer_remove(input, buf, sizeof(buf))) > 0)
		capture_add(&run->cap, buf, (size_t)n);
}

static void out_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct proc *run = arg;

	(void)what;
	/* EOF or a read error: either way nothing more will come. */
	out_read_cb(bev, arg);
	bufferevent_free(run->out);
	run->out = NULL;
	run->eof = true;
	event_active(run->step, 0, 0);
}

static void in_write_cb(struct bufferevent *bev, void *arg)
{
	struct proc *run = arg;

	(void)bev;
	/* All written: closing gives the child its EOF. */
	bufferevent_free(run->in);
	run->in = NULL;
}

static void in_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct proc *run = arg;

	(void)bev;
	(void)what;
	/* EPIPE: the child closed its stdin. Its exit status will tell. */
	bufferevent_free(run->in);
	run->in = NULL;
}

static void run_free(struct proc *run)
{
	if (run == NULL)
		return;
	run_close(run);
	free(run->prog);
	free(run);
}

/*
 * The candidate paths for argv0, computed before the spawn: the child may only
 * call async-signal-safe functions. NULL-terminated.
 */
static char **exec_candidates(const char *argv0, char *const envp[])
{
	const char *path = NULL, *p, *colon;
	size_t n = 1, k = 0, alen = strlen(argv0), dlen;
	char **v;

	if (strchr(argv0, '/') != NULL || argv0[0] == '\0') {
		v = xcalloc(2, sizeof(*v));
		v[0] = xstrdup(argv0);
		return v;
	}
	for (size_t i = 0; envp[i] != NULL; i++) {
		if (strncmp(envp[i], "PATH=", 5) == 0) {
			path = envp[i] + 5;
			break;
		}
	}
	if (path == NULL)
		path = PROC_DEFAULT_PATH;
	for (p = path; *p != '\0'; p++)
		n += *p == ':';
	v = xcalloc(n + 1, sizeof(*v));
	for (p = path;; p = colon + 1) {
		colon = strchr(p, ':');
		dlen = colon != NULL ? (size_t)(colon - p) : strlen(p);
		/* An empty entry would mean the cwd: never search it. */
		if (dlen > 0) {
			v[k] = xmalloc(dlen + 1 + alen + 1);
			memcpy(v[k], p, dlen);
			v[k][dlen] = '/';
			memcpy(v[k] + dlen + 1, argv0, alen + 1);
			k++;
		}
		if (colon == NULL)
			break;
	}
	return v;
}

static void candidates_free(char **cand)
{
	for (size_t i = 0; cand != NULL && cand[i] != NULL; i++)
		free(cand[i]);
	free(cand);
}

/* posix_spawn's file actions and attributes for a child of the rules in proc.h. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int in_r, int out_w)
{
	sigset_t all, none;

	sigfillset(&all);
	sigemptyset(&none);
	if (posix_spawn_file_actions_adddup2(fa, in_r, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, out_w, 1) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, out_w, 2) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(fa, 3) != 0)
		return -1;
	if (posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
	                                       POSIX_SPAWN_SETSIGMASK) != 0 ||
	    posix_spawnattr_setpgroup(attr, 0) != 0 ||
	    posix_spawnattr_setsigdefault(attr, &all) != 0 ||
	    posix_spawnattr_setsigmask(attr, &none) != 0)
		return -1;
	return 0;
}

/*
 * execvpe()'s search over our PATH, without its ENOEXEC /bin/sh retry: the
 * first candidate that exists and can be executed. A candidate that is not
 * there is skipped without a spawn. Returns 0 with *pid, or the errno.
 */
static int spawn_first(pid_t *pid, char *const *cand, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int e = ENOENT;
	bool eacces = false;

	for (size_t i = 0; cand[i] != NULL; i++) {
		if (access(cand[i], F_OK) == 0)
			e = posix_spawn(pid, cand[i], fa, attr, argv, envp);
		else
			e = errno;
		if (e == 0)
			return 0;
		if (e == EACCES)
			eacces = true;
		else if (e != ENOENT && e != ENOTDIR && e != ELOOP && e != ENAMETOOLONG &&
		         e != ESTALE)
			break;
	}
	if (eacces && (e == ENOENT || e == ENOTDIR))
		e = EACCES;
	return e;
}

/* Moves fd above 2, so that the dup2 onto 0-2 in the child clobbers none of ours. */
static int lift_fd(int *fd)
{
	int nfd;

	if (*fd > 2)
		return 0;
	if ((nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3)) == -1)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct proc *proc_start(struct event_base *base, char *const argv[], char *const envp[],
                        const char *stdin_data, size_t stdin_len, int timeout_sec, proc_done_cb cb,
                        void *arg)
{
	static char *const no_env[] = {NULL};
	struct proc *run = NULL;
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	char **cand = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int saved, e;
	pid_t pid = -1;

	if (base == NULL || argv == NULL || argv[0] == NULL || timeout_sec < 1 || cb == NULL ||
	    (stdin_data == NULL && stdin_len > 0)) {
		errno = EINVAL;
		return NULL;
	}
	if (envp == NULL)
		envp = no_env;

	run = xcalloc(1, sizeof(*run));
	run->base = base;
	run->pid = -1;
	run->timeout_sec = timeout_sec;
	run->cb = cb;
	run->arg = arg;
	run->prog = xstrdup(argv[0]);
	cand = exec_candidates(argv[0], envp);
	run->timer = evtimer_new(base, timer_cb, run);
	run->step = event_new(base, -1, 0, step_cb, run);
	if (run->timer == NULL || run->step == NULL)
		goto fail;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1)
		goto fail;
	if (lift_fd(&in[0]) == -1 || lift_fd(&out[1]) == -1)
		goto fail;
	if (set_nonblock(in[1]) == -1 || set_nonblock(out[0]) == -1)
		goto fail;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		errno = ENOMEM;
		goto fail;
	}
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		errno = ENOMEM;
		goto fail;
	}
	e = spawn_setup(&fa, &attr, in[0], out[1]);
	if (e == 0)
		e = spawn_first(&pid, cand, &fa, &attr, argv, envp);
	else
		e = errno != 0 ? errno : ENOMEM;
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	clock_gettime(CLOCK_MONOTONIC, &run->started);
	run->state = RUN_RUNNING;
	TAILQ_INSERT_TAIL(&all_runs, run, entry);
	nruns++;
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	candidates_free(cand);
	cand = NULL;
	if (e != 0) {
		/* Nothing runs: reported from the loop as a spawn failure, as execve's was. */
		close(in[1]);
		close(out[0]);
		in[1] = out[0] = -1;
		run->fail_errno = e;
		run->lost = true; /* no pid: no status to wait for, no group to kill */
		run->exited = true;
		run->eof = true;
		event_active(run->step, 0, 0);
		return run;
	}
	/* Also here, so that a kill(-pid) racing the child's own call finds the group. */
	(void)setpgid(pid, pid);
	run->pid = pid;

	/*
	 * From here the child exists: a failure kills it and reports through the
	 * callback path rather than returning NULL, so it is always reaped.
	 */
	set_timer(run, timeout_sec);
	run->out = bufferevent_socket_new(base, out[0], BEV_OPT_CLOSE_ON_FREE);
	if (run->out == NULL) {
		close(out[0]);
		goto late_fail;
	}
	out[0] = -1;
	bufferevent_setcb(run->out, out_read_cb, NULL, out_event_cb, run);
	if (bufferevent_enable(run->out, EV_READ) == -1)
		goto late_fail;
	if (stdin_len == 0) {
		close(in[1]);
		in[1] = -1;
		return run;
	}
	run->in = bufferevent_socket_new(base, in[1], BEV_OPT_CLOSE_ON_FREE);
	if (run->in == NULL) {
		close(in[1]);
		goto late_fail;
	}
	in[1] = -1;
	bufferevent_setcb(run->in, NULL, in_write_cb, in_event_cb, run);
	if (evbuffer_add(bufferevent_get_output(run->in), stdin_data, stdin_len) == -1 ||
	    bufferevent_enable(run->in, EV_WRITE) == -1)
		goto late_fail;
	return run;

late_fail:
	/* Kill it now; it is reaped and reported as a spawn failure. */
	run->fail_errno = errno != 0 ? errno : ENOMEM;
	if (in[1] != -1)
		close(in[1]);
	if (out[0] != -1)
		close(out[0]);
	run->state = RUN_KILLED;
	kill_group(run, SIGKILL);
	if (run->in != NULL) {
		bufferevent_free(run->in);
		run->in = NULL;
	}
	if (run->out != NULL) {
		bufferevent_free(run->out);
		run->out = NULL;
	}
	run->eof = true;
	return run;

fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (out[i] != -1)
			close(out[i]);
	}
	candidates_free(cand);
	run_free(run);
	errno = saved;
	return NULL;
}

void proc_cancel(struct proc *run)
{
	/* From its own callback (RUN_DONE) there is nothing left to cancel. */
	if (run == NULL || run->state == RUN_CANCELLED || run->state == RUN_DONE)
		return;
	run->cb = NULL;
	kill_group(run, SIGKILL);
	run_close(run);
	if (poll_exit(run)) {
		(void)reap(run);
		TAILQ_REMOVE(&all_runs, run, entry);
		nruns--;
		run_free(run);
		return;
	}
	run->state = RUN_CANCELLED;
}

void proc_sigchld(void)
{
	struct proc *run, *next;

	for (run = TAILQ_FIRST(&all_runs); run != NULL; run = next) {
		next = TAILQ_NEXT(run, entry);
		if (run->state == RUN_CANCELLED) {
			if (poll_exit(run)) {
				/* SIGKILL went to the group on cancel; sweep once more. */
				kill_group(run, SIGKILL);
				(void)reap(run);
				TAILQ_REMOVE(&all_runs, run, entry);
				nruns--;
				run_free(run);
			}
		} else if (!run->exited && poll_exit(run)) {
			/* Deferred: callbacks must not run while we walk the list. */
			event_active(run->step, 0, 0);
		}
	}
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	proc_sigchld();
}

int proc_init(struct event_base *base)
{
	if (sigchld_ev != NULL) {
		errno = EBUSY;
		return -1;
	}
	sigchld_ev = evsignal_new(base, SIGCHLD, sigchld_cb, NULL);
	if (sigchld_ev == NULL)
		return -1;
	if (event_add(sigchld_ev, NULL) == -1) {
		event_free(sigchld_ev);
		sigchld_ev = NULL;
		return -1;
	}
	return 0;
}

void proc_fini(void)
{
	struct proc *run;

	while ((run = TAILQ_FIRST(&all_runs)) != NULL) {
		kill_group(run, SIGKILL);
		(void)reap(run);
		TAILQ_REMOVE(&all_runs, run, entry);
		nruns--;
		run_free(run);
	}
	if (sigchld_ev != NULL) {
		event_free(sigchld_ev);
		sigchld_ev = NULL;
	}
}

int proc_pid(const struct proc *run)
{
	return (int)run->pid;
}

size_t proc_count(void)
{
	return nruns;
}
