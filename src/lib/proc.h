/*
 * proc.h: the process runner. Runs child processes on an event loop, never
 * blocking it (tmux job.c, OpenBSD slowcgi.c); knows nothing of actions or
 * events: argv, environment, stdin bytes and a timeout in, exit status and
 * captured output out.
 *
 * Life of a run:
 *   - the child is the leader of a new process group, has default signal
 *     dispositions and an empty mask, stdin from a pipe (the data given, then
 *     EOF), stdout and stderr on one shared pipe (so they interleave in
 *     order), no other fds, the daemon's cwd, and exactly the environment
 *     given;
 *   - argv[0] without a '/' is searched in the PATH of that environment
 *     (empty PATH entries are skipped: never the cwd); no PATH there means
 *     PROC_DEFAULT_PATH;
 *   - past the timeout the whole group gets SIGTERM, and SIGKILL
 *     PROC_KILL_GRACE seconds later;
 *   - once the leader has exited, processes still holding the output pipe get
 *     PROC_LINGER seconds to finish, then the group is killed and
 *     reading stops;
 *   - when the run finishes the group always gets SIGKILL: nothing a child
 *     starts outlives its run (detach on purpose with setsid or
 *     systemd-run). The leader is reaped only after that kill, so its pid,
 *     which is the group id, cannot have been reused by then.
 *
 * SIGCHLD: proc_init() installs an evsignal that calls
 * proc_sigchld(); a daemon that owns SIGCHLD itself may call
 * proc_sigchld() from its own handler instead. Only pids this module
 * started are reaped (waitid per pid), since it keeps exited leaders as
 * zombies until their group is dealt with; the program must not reap them
 * itself.
 *
 * SIGPIPE must be ignored by the process (the daemon does): a child that
 * stops reading its stdin makes our write fail with EPIPE, which only ends
 * the stdin feed.
 */
#ifndef BAYARHOOK_PROC_H
#define BAYARHOOK_PROC_H

#include <stddef.h>

struct event_base;
struct proc;

#define PROC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PROC_OUTPUT_MAX 8192 /* bytes of output kept, marker included */
#define PROC_KILL_GRACE 2    /* seconds from SIGTERM to SIGKILL */
#define PROC_LINGER 1        /* seconds the output may stay open after exit */

enum proc_how {
	PROC_EXITED,       /* code = exit status; 0 is success */
	PROC_SIGNALED,     /* code = the signal that ended the leader */
	PROC_TIMEOUT,      /* killed past its timeout; code = 0 */
	PROC_SPAWN_FAILED, /* execve failed in the child; code = its errno */
};

struct proc_result {
	enum proc_how how;
	int code;
	/*
	 * stdout and stderr interleaved, NUL-terminated, at most
	 * PROC_OUTPUT_MAX bytes. When longer, the first half and the last
	 * bytes are kept around a "\n[truncated N bytes]\n" line. Valid only
	 * during the callback.
	 */
	const char *output;
	size_t output_len;
	double seconds; /* from start to finish, monotonic */
};

/*
 * Called once per run that was not cancelled, from the loop. The run is freed
 * when the callback returns; cancelling it from there does nothing. Starting new runs
 * from the callback is fine.
 */
typedef void (*proc_done_cb)(struct proc *run, const struct proc_result *res, void *arg);

/* Installs the SIGCHLD evsignal on base. Returns 0 or -1. */
int proc_init(struct event_base *base) __attribute__((warn_unused_result));
/*
 * For shutdown after the loop has stopped: SIGKILLs every remaining group,
 * reaps (blocking, briefly) and frees all runs without callbacks, and
 * removes the evsignal. The pipes' bufferevents close their fds on the next
 * loop pass or in event_base_free.
 */
void proc_fini(void);
/* Checks every running child for exit; call on SIGCHLD. Never blocks. */
void proc_sigchld(void);

/*
 * Starts argv (argv[0] the program) with environment envp, feeding it a copy
 * of stdin_data, killed after timeout_sec (>= 1). Returns NULL with errno set
 * when nothing could be started (pipes, memory, bad arguments): then
 * the callback is never called. A failed execve is reported through the
 * callback as PROC_SPAWN_FAILED.
 */
struct proc *proc_start(struct event_base *base, char *const argv[], char *const envp[],
                        const char *stdin_data, size_t stdin_len, int timeout_sec, proc_done_cb cb,
                        void *arg) __attribute__((warn_unused_result));

/*
 * Kills the run's process group (SIGKILL); the callback will not be called.
 * Resources are freed now, the run itself once its leader is reaped.
 */
void proc_cancel(struct proc *run);

/* The leader's pid (and process group id), for logs. */
int proc_pid(const struct proc *run);
/* Runs not yet freed, cancelled ones waiting to be reaped included. */
size_t proc_count(void);

#endif
