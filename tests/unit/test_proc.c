/*
 * test_proc.c: the process runner (src/lib/proc.c) against real processes
 * on a real event_base. Every test ends by checking that no child is left unreaped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "action_exec.h" /* the environment of test_env_exact */
#include "proc.h"

static char *const test_env[] = {"PATH=/usr/bin:/bin", NULL};

struct outcome {
	int calls;
	struct proc_result res;
	char *output; /* copy of res.output */
	int *pending; /* loop exits when it reaches 0 */
	struct event_base *base;
};

struct fixture {
	struct event_base *base;
	char dir[64];
	int pending;
	bool expired;
	int nfds; /* open fds before the test, event base included */
};

static struct fixture *fx;

static void done_cb(struct proc *run, const struct proc_result *res, void *arg)
{
	struct outcome *o = arg;

	assert_non_null(run);
	o->calls++;
	o->res = *res;
	o->output = malloc(res->output_len + 1);
	assert_non_null(o->output);
	memcpy(o->output, res->output, res->output_len + 1);
	o->res.output = o->output;
	/* The result promises a NUL after the bytes. */
	assert_int_equal(res->output[res->output_len], '\0');
	assert_true(res->output_len <= PROC_OUTPUT_MAX);
	if (--*o->pending == 0)
		event_base_loopexit(o->base, NULL);
}

static void safety_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fx->expired = true;
	event_base_loopbreak(arg);
}

/* Runs the loop until something exits it (fx->pending reaching 0); fails after max_sec. */
static void run_loop(int max_sec)
{
	struct timeval tv = {.tv_sec = max_sec, .tv_usec = 0};
	struct event *safety = evtimer_new(fx->base, safety_cb, fx->base);

	evtimer_add(safety, &tv);
	event_base_dispatch(fx->base);
	event_free(safety);
	assert_false(fx->expired);
	assert_int_equal(fx->pending, 0);
}

static void outcome_init(struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->pending = &fx->pending;
	o->base = fx->base;
	fx->pending++;
}

static struct proc *start_sh(char *script, const char *in, size_t inlen, int timeout,
                             struct outcome *o)
{
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct proc *run;

	outcome_init(o);
	run = proc_start(fx->base, argv, test_env, in, inlen, timeout, done_cb, o);
	assert_non_null(run);
	return run;
}

/* Runs one script to completion. */
static void run_sh(char *script, const char *in, size_t inlen, int timeout, struct outcome *o)
{
	(void)start_sh(script, in, inlen, timeout, o);
	run_loop(timeout + 10);
	assert_int_equal(o->calls, 1);
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *path_in_dir(const char *name)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/%s", fx->dir, name);
	return buf;
}

static pid_t read_pid(const char *name)
{
	FILE *f = fopen(path_in_dir(name), "r");
	long pid = -1;

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	assert_true(pid > 1);
	return (pid_t)pid;
}

/*
 * True once pid is gone: no such process, or a zombie waiting for init
 * (orphans are init's to reap, and dead all the same).
 */
static bool proc_gone(pid_t pid)
{
	for (int i = 0; i < 300; i++) {
		char path[64], buf[512], *p;
		FILE *f;
		size_t n;

		if (kill(pid, 0) == -1 && errno == ESRCH)
			return true;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (f != NULL) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			p = strrchr(buf, ')');
			if (p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
				return true;
		}
		usleep(10000);
	}
	return false;
}

static void free_outcome(struct outcome *o)
{
	free(o->output);
	o->output = NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int setup(void **state)
{
	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	assert_int_equal(proc_init(fx->base), 0);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/bayarhook-exec-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->nfds = count_fds();
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	assert_int_equal(proc_count(), 0);
	/* Every pipe of every run is closed (bufferevents close in the loop). */
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(count_fds(), fx->nfds);
	proc_fini();
	event_base_free(fx->base);
	/* No zombie and no child of ours left at all. */
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	fx = NULL;
	return 0;
}

static void test_exit_zero(void **state)
{
	struct outcome o;

	(void)state;
	run_sh("echo out; echo err >&2; echo out2", NULL, 0, 10, &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 0);
	assert_string_equal(o.output, "out\nerr\nout2\n");
	assert_int_equal(o.res.output_len, 13);
	assert_true(o.res.seconds >= 0 && o.res.seconds < 5);
	free_outcome(&o);
}

static void test_exit_code(void **state)
{
	struct outcome o;

	(void)state;
	run_sh("exit 3", NULL, 0, 10, &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 3);
	assert_int_equal(o.res.output_len, 0);
	assert_string_equal(o.output, "");
	free_outcome(&o);
}

/* Dispositions and the mask are reset: ignored/blocked here, deadly there. */
static void test_signals_reset(void **state)
{
	struct outcome o;
	sigset_t set, old;

	(void)state;
	signal(SIGUSR1, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);

	run_sh("kill -USR1 $$; echo survived", NULL, 0, 10, &o);
	assert_int_equal(o.res.how, PROC_SIGNALED);
	assert_int_equal(o.res.code, SIGUSR1);
	free_outcome(&o);
	run_sh("kill -USR2 $$; echo survived", NULL, 0, 10, &o);
	assert_int_equal(o.res.how, PROC_SIGNALED);
	assert_int_equal(o.res.code, SIGUSR2);
	free_outcome(&o);

	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
}

static void test_stdin_echo(void **state)
{
	static const char in[] = "hello\0world\n{\"invoice_id\":\"PAY-1\"}";
	char *argv[] = {"cat", NULL}; /* found through the PATH of test_env */
	struct outcome o;

	(void)state;
	outcome_init(&o);
	assert_non_null(proc_start(fx->base, argv, test_env, in, sizeof(in) - 1, 10, done_cb, &o));
	run_loop(20);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 0);
	assert_int_equal(o.res.output_len, sizeof(in) - 1);
	assert_memory_equal(o.output, in, sizeof(in) - 1);
	free_outcome(&o);
}

static void test_stdin_large_and_empty(void **state)
{
	size_t len = 300 * 1024;
	char *in = malloc(len);
	struct outcome o;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	run_sh("wc -c | tr -d ' '", in, len, 10, &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_string_equal(o.output, "307200\n");
	free_outcome(&o);
	free(in);

	/* No data: the child reads EOF at once. */
	run_sh("cat; echo done", NULL, 0, 10, &o);
	assert_string_equal(o.output, "done\n");
	free_outcome(&o);
}

/* The child sees exactly the environment given, nothing inherited. */
static void test_env_exact(void **state)
{
	const struct action_exec_var vars[] = {
	    {"invoice_id", "PAY-admin-1234567890-ABC123"},
	    {"final_amount", "50123"},
	    {"customer_name", "John \"Q\" O'Brien $(rm -rf /)"},
	    {"description", "two\nlines"},
	};
	char *argv[] = {"env", "-0", NULL};
	char **env, want[1024], *note;
	size_t wlen = 0;
	struct outcome o;

	(void)state;
	setenv("BAYARHOOK_TEST_LEAK", "must not be seen", 1);
	env = action_exec_env(vars, 4, "callback", "123", 2, "", &note);
	assert_non_null(env);
	assert_null(note);
	for (size_t i = 0; env[i] != NULL; i++) {
		size_t n = strlen(env[i]) + 1;

		assert_true(wlen + n < sizeof(want));
		memcpy(want + wlen, env[i], n);
		wlen += n;
	}
	outcome_init(&o);
	assert_non_null(proc_start(fx->base, argv, env, NULL, 0, 10, done_cb, &o));
	run_loop(20);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 0);
	assert_int_equal(o.res.output_len, wlen);
	assert_memory_equal(o.output, want, wlen);
	free_outcome(&o);
	action_exec_env_free(env);
	unsetenv("BAYARHOOK_TEST_LEAK");
}

/* Only 0, 1 and 2 reach the child, even from an fd opened without CLOEXEC. */
static void test_fds_closed(void **state)
{
	struct outcome o;
	int fd = open("/dev/null", O_RDONLY);

	(void)state;
	assert_true(fd >= 0);
	/* ls looks at the shell's fds from outside; ": " stops an exec of ls. */
	run_sh("ls /proc/$$/fd; :", NULL, 0, 10, &o);
	assert_string_equal(o.output, "0\n1\n2\n");
	free_outcome(&o);
	close(fd);
}

static void test_output_cap(void **state)
{
	struct outcome o;
	const char *mark;
	size_t dropped, mlen;

	(void)state;
	/* Exactly the cap: kept whole. */
	run_sh("head -c 8192 /dev/zero | tr '\\0' y", NULL, 0, 10, &o);
	assert_int_equal(o.res.output_len, PROC_OUTPUT_MAX);
	assert_null(strstr(o.output, "[truncated"));
	free_outcome(&o);

	/* One over: truncated, still within the cap. */
	run_sh("head -c 8193 /dev/zero | tr '\\0' y", NULL, 0, 10, &o);
	assert_int_equal(o.res.output_len, PROC_OUTPUT_MAX);
	assert_non_null(strstr(o.output, "\n[truncated "));
	free_outcome(&o);

	/* 100011 bytes: head and tail survive around the marker. */
	run_sh("echo START; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END", NULL, 0, 10,
	       &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.output_len, PROC_OUTPUT_MAX);
	assert_memory_equal(o.output, "START\nxxx", 9);
	assert_string_equal(o.output + o.res.output_len - 6, "x\nEND\n");
	mark = strstr(o.output, "\n[truncated ");
	assert_non_null(mark);
	assert_int_equal(mark - o.output, PROC_OUTPUT_MAX / 2);
	assert_int_equal(sscanf(mark, "\n[truncated %zu bytes]\n", &dropped), 1);
	mlen = (size_t)(strchr(mark + 1, '\n') + 1 - mark);
	/* What is shown plus what was dropped is what was written. */
	assert_int_equal(o.res.output_len - mlen + dropped, 100011);
	free_outcome(&o);
}

static void test_timeout_kills_group(void **state)
{
	struct outcome o;
	char script[256];
	pid_t gc;

	(void)state;
	snprintf(script, sizeof(script), "sleep 100 & echo $! > %s; echo started; sleep 100",
	         path_in_dir("gc"));
	run_sh(script, NULL, 0, 1, &o);
	assert_int_equal(o.res.how, PROC_TIMEOUT);
	/* SIGTERM was enough: well before the SIGKILL grace. */
	assert_true(o.res.seconds >= 0.9 && o.res.seconds < 1 + PROC_KILL_GRACE);
	assert_non_null(strstr(o.output, "started\n"));
	assert_non_null(strstr(o.output, "timed out after 1 s"));
	gc = read_pid("gc");
	assert_true(proc_gone(gc));
	free_outcome(&o);
}

/* SIGTERM ignored by the whole group: SIGKILL follows after the grace. */
static void test_timeout_escalates(void **state)
{
	struct outcome o;
	char script[256];
	pid_t gc;

	(void)state;
	snprintf(script, sizeof(script), "trap '' TERM; sleep 100 & echo $! > %s; wait",
	         path_in_dir("gc"));
	run_sh(script, NULL, 0, 1, &o);
	assert_int_equal(o.res.how, PROC_TIMEOUT);
	assert_true(o.res.seconds >= 1 + PROC_KILL_GRACE - 0.2);
	assert_true(o.res.seconds < 1 + PROC_KILL_GRACE + 2);
	gc = read_pid("gc");
	assert_true(proc_gone(gc));
	free_outcome(&o);
}

/* A background child holding the output: lingered for, then killed. */
static void test_exit_with_output_held(void **state)
{
	struct outcome o;
	char script[256];
	pid_t gc;

	(void)state;
	snprintf(script, sizeof(script), "sleep 100 & echo $! > %s; echo bye; exit 0",
	         path_in_dir("gc"));
	run_sh(script, NULL, 0, 30, &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 0);
	assert_true(o.res.seconds >= PROC_LINGER - 0.1);
	assert_true(o.res.seconds < PROC_LINGER + 2);
	assert_memory_equal(o.output, "bye\n", 4);
	assert_non_null(strstr(o.output, "process group killed"));
	gc = read_pid("gc");
	assert_true(proc_gone(gc));
	free_outcome(&o);
}

/* Detached from the output, it does not delay the result but still dies. */
static void test_exit_with_detached_child(void **state)
{
	struct outcome o;
	char script[256];
	pid_t gc;

	(void)state;
	snprintf(script, sizeof(script),
	         "sleep 100 </dev/null >/dev/null 2>&1 & echo $! > %s; echo bye",
	         path_in_dir("gc"));
	run_sh(script, NULL, 0, 30, &o);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_int_equal(o.res.code, 0);
	assert_true(o.res.seconds < PROC_LINGER - 0.2);
	assert_string_equal(o.output, "bye\n");
	gc = read_pid("gc");
	assert_true(proc_gone(gc));
	free_outcome(&o);
}

static void expect_spawn_failure(char *prog, char *const *envp, int want_errno)
{
	char *argv[] = {prog, "arg", NULL};
	struct outcome o;

	outcome_init(&o);
	assert_non_null(proc_start(fx->base, argv, envp, "x", 1, 10, done_cb, &o));
	run_loop(20);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.res.how, PROC_SPAWN_FAILED);
	assert_int_equal(o.res.code, want_errno);
	assert_non_null(strstr(o.output, "bayarhook: cannot execute "));
	assert_non_null(strstr(o.output, prog));
	free_outcome(&o);
}

static void write_file(const char *name, const char *text, mode_t mode)
{
	FILE *f = fopen(path_in_dir(name), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path_in_dir(name), mode), 0);
}

static void test_spawn_failures(void **state)
{
	char pathvar[160], *env[2] = {pathvar, NULL}, *argv[] = {"mytool", NULL};
	char *empty_path[] = {"PATH=", NULL};
	struct outcome o;

	(void)state;
	expect_spawn_failure("/nonexistent/bayarhook-prog", test_env, ENOENT);
	expect_spawn_failure("bayarhook-no-such-command", test_env, ENOENT);
	/* No cwd search: an empty PATH finds nothing, not even ./sh. */
	expect_spawn_failure("sh", empty_path, ENOENT);

	write_file("noexec", "#!/bin/sh\necho hi\n", 0644);
	expect_spawn_failure(path_in_dir("noexec"), test_env, EACCES);
	/* No shebang: no /bin/sh retry as execvp would do. */
	write_file("noshebang", "echo hi\n", 0755);
	expect_spawn_failure(path_in_dir("noshebang"), test_env, ENOEXEC);

	/* PATH search over the child's PATH; EACCES entries are skipped. */
	write_file("mytool", "#!/bin/sh\necho found \"$1\" \"$0\"\n", 0755);
	assert_int_equal(mkdir(path_in_dir("d1"), 0755), 0);
	write_file("d1/mytool", "#!/bin/sh\necho wrong\n", 0644);
	snprintf(pathvar, sizeof(pathvar), "PATH=::/nonexistent:%s/d1:%s", fx->dir, fx->dir);
	outcome_init(&o);
	assert_non_null(proc_start(fx->base, argv, env, NULL, 0, 10, done_cb, &o));
	run_loop(20);
	assert_int_equal(o.res.how, PROC_EXITED);
	assert_non_null(strstr(o.output, "found "));
	free_outcome(&o);

	/* Bad arguments: nothing starts, no callback. */
	errno = 0;
	assert_null(proc_start(fx->base, argv, env, NULL, 0, 0, done_cb, &o));
	assert_int_equal(errno, EINVAL);
	assert_null(proc_start(fx->base, argv, env, NULL, 5, 10, done_cb, &o));
	assert_int_equal(errno, EINVAL);
}

static int ticks;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ticks++;
}

/* A child that never reads 1 MiB of stdin neither blocks nor breaks the loop. */
static void test_stdin_not_read(void **state)
{
	size_t len = 1024 * 1024;
	char *in = calloc(1, len);
	struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
	struct event *tick;
	struct outcome o1, o2, o3;
	double t0;

	(void)state;
	assert_non_null(in);
	run_sh("exit 0", in, len, 10, &o1);
	assert_int_equal(o1.res.how, PROC_EXITED);
	assert_int_equal(o1.res.code, 0);
	free_outcome(&o1);

	/* Reads a little, then closes stdin and goes on. */
	run_sh("head -c 10 >/dev/null; exec 0<&-; sleep 0.2; echo ok", in, len, 10, &o2);
	assert_int_equal(o2.res.how, PROC_EXITED);
	assert_string_equal(o2.output, "ok\n");
	free_outcome(&o2);

	/* Never reads and never ends: the loop keeps ticking until the timeout. */
	ticks = 0;
	tick = event_new(fx->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	t0 = now_sec();
	(void)start_sh("exec sleep 100", in, len, 1, &o3);
	run_loop(10);
	event_free(tick);
	assert_int_equal(o3.res.how, PROC_TIMEOUT);
	assert_true(now_sec() - t0 < 2.5);
	assert_true(ticks >= 10);
	free_outcome(&o3);
	free(in);
}

static void test_parallel(void **state)
{
	enum { N = 50 };
	struct outcome o[N];
	char nums[N][8];

	(void)state;
	for (int i = 0; i < N; i++) {
		char *argv[] = {
		    "/bin/sh", "-c",    "echo \"job $1\"; sleep 0.$(($1 % 3)); exit $(($1 % 7))",
		    "sh",      nums[i], NULL};

		snprintf(nums[i], sizeof(nums[i]), "%d", i);
		outcome_init(&o[i]);
		assert_non_null(proc_start(fx->base, argv, test_env, NULL, 0, 20, done_cb, &o[i]));
	}
	assert_int_equal(proc_count(), N);
	run_loop(30);
	for (int i = 0; i < N; i++) {
		char want[32];

		snprintf(want, sizeof(want), "job %d\n", i);
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].res.how, PROC_EXITED);
		assert_int_equal(o[i].res.code, i % 7);
		assert_string_equal(o[i].output, want);
		free_outcome(&o[i]);
	}
}

struct cancel_ctx {
	struct proc *run;
	bool cancelled;
};

static void cancel_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_ctx *c = arg;
	struct stat st;

	(void)fd;
	(void)what;
	if (!c->cancelled && stat(path_in_dir("gc"), &st) == 0 && st.st_size > 0) {
		proc_cancel(c->run);
		c->cancelled = true;
	}
	if (c->cancelled && proc_count() == 0)
		event_base_loopexit(fx->base, NULL);
}

static void test_cancel(void **state)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
	struct cancel_ctx c = {0};
	struct event *poll_ev;
	struct outcome o, o2;
	char script[256];
	pid_t gc;

	(void)state;
	snprintf(script, sizeof(script), "sleep 100 & echo $! > %s; sleep 100", path_in_dir("gc"));
	c.run = start_sh(script, "data", 4, 30, &o);
	fx->pending = 0; /* the callback must not come: the poll ends the loop */
	poll_ev = event_new(fx->base, -1, EV_PERSIST, cancel_poll_cb, &c);
	event_add(poll_ev, &tv);
	run_loop(10);
	event_free(poll_ev);
	assert_true(c.cancelled);
	assert_int_equal(o.calls, 0);
	assert_int_equal(proc_count(), 0);
	gc = read_pid("gc");
	assert_true(proc_gone(gc));

	/* Cancelled at once, before the child even ran; reaped on SIGCHLD. */
	c.run = start_sh("sleep 100", NULL, 0, 30, &o2);
	proc_cancel(c.run);
	fx->pending = 0;
	for (int i = 0; i < 500 && proc_count() > 0; i++) {
		struct timeval t = {.tv_sec = 0, .tv_usec = 10000};

		event_base_loopexit(fx->base, &t);
		event_base_dispatch(fx->base);
	}
	assert_int_equal(proc_count(), 0);
	assert_int_equal(o2.calls, 0);
}

static struct outcome chain_second;

/* A callback may start the next run. */
static void chain_cb(struct proc *run, const struct proc_result *res, void *arg)
{
	char *argv[] = {"/bin/sh", "-c", "echo second", NULL};

	outcome_init(&chain_second);
	done_cb(run, res, arg);
	assert_non_null(proc_start(fx->base, argv, test_env, NULL, 0, 10, done_cb, &chain_second));
}

static void test_start_from_callback(void **state)
{
	char *argv[] = {"/bin/sh", "-c", "echo first", NULL};
	struct outcome o;

	(void)state;
	outcome_init(&o);
	assert_non_null(proc_start(fx->base, argv, test_env, NULL, 0, 10, chain_cb, &o));
	run_loop(20);
	assert_string_equal(o.output, "first\n");
	assert_string_equal(chain_second.output, "second\n");
	free_outcome(&o);
	free_outcome(&chain_second);
}

/* Shutdown with runs in flight: killed, reaped, freed, no callback. */
static void test_fini_with_runs(void **state)
{
	struct outcome o1, o2;

	(void)state;
	(void)start_sh("sleep 100", NULL, 0, 30, &o1);
	(void)start_sh("sleep 100 & sleep 100", "x", 1, 30, &o2);
	assert_int_equal(proc_count(), 2);
	proc_fini();
	assert_int_equal(proc_count(), 0);
	assert_int_equal(o1.calls + o2.calls, 0);
	fx->pending = 0;
	/* teardown calls fini again: it must be idempotent. */
	assert_int_equal(proc_init(fx->base), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exit_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_code, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signals_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin_echo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin_large_and_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fds_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_escalates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_with_output_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_with_detached_child, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spawn_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin_not_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_from_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fini_with_runs, setup, teardown),
	};

	/* As the daemon does: a child that stops reading must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
