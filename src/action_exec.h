/*
 * action_exec.h: runs one child process per exec-action attempt on the
 * daemon's event loop, never blocking it (tmux job.c, OpenBSD slowcgi.c).
 *
 * Life of a run:
 *   - the child is the leader of a new process group, has default signal
 *     dispositions and an empty mask, stdin from a pipe (the data given, then
 *     EOF), stdout and stderr on one shared pipe (so they interleave in
 *     order), no other fds, the daemon's cwd, and exactly the environment
 *     given;
 *   - argv[0] without a '/' is searched in the PATH of that environment
 *     (empty PATH entries are skipped: never the cwd); no PATH there means
 *     ACTION_EXEC_PATH;
 *   - past the timeout the whole group gets SIGTERM, and SIGKILL
 *     ACTION_EXEC_KILL_GRACE seconds later;
 *   - once the leader has exited, processes still holding the output pipe get
 *     ACTION_EXEC_LINGER seconds to finish, then the group is killed and
 *     reading stops;
 *   - when the run finishes the group always gets SIGKILL: nothing an action
 *     starts outlives its attempt (detach on purpose with setsid or
 *     systemd-run). The leader is reaped only after that kill, so its pid,
 *     which is the group id, cannot have been reused by then.
 *
 * SIGCHLD: action_exec_init() installs an evsignal that calls
 * action_exec_sigchld(); a daemon that owns SIGCHLD itself may call
 * action_exec_sigchld() from its own handler instead. Only pids this module
 * started are reaped (waitid per pid), since it keeps exited leaders as
 * zombies until their group is dealt with; bayarhook forks nowhere else.
 *
 * SIGPIPE must be ignored by the process (the daemon does): a child that
 * stops reading its stdin makes our write fail with EPIPE, which only ends
 * the stdin feed.
 */
#ifndef BAYARHOOK_ACTION_EXEC_H
#define BAYARHOOK_ACTION_EXEC_H

#include <stddef.h>

struct event_base;
struct action_exec_run;

#define ACTION_EXEC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ACTION_EXEC_OUTPUT_MAX 8192 /* bytes of output kept, marker included */
#define ACTION_EXEC_KILL_GRACE 2    /* seconds from SIGTERM to SIGKILL */
#define ACTION_EXEC_LINGER 1        /* seconds the output may stay open after exit */

enum action_exec_how {
	ACTION_EXEC_EXITED,       /* code = exit status; 0 is success */
	ACTION_EXEC_SIGNALED,     /* code = the signal that ended the leader */
	ACTION_EXEC_TIMEOUT,      /* killed past its timeout; code = 0 */
	ACTION_EXEC_SPAWN_FAILED, /* execve failed in the child; code = its errno */
};

struct action_exec_result {
	enum action_exec_how how;
	int code;
	/*
	 * stdout and stderr interleaved, NUL-terminated, at most
	 * ACTION_EXEC_OUTPUT_MAX bytes. When longer, the first half and the last
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
typedef void (*action_exec_done_cb)(struct action_exec_run *run,
                                    const struct action_exec_result *res, void *arg);

/* Installs the SIGCHLD evsignal on base. Returns 0 or -1. */
int action_exec_init(struct event_base *base) __attribute__((warn_unused_result));
/*
 * For shutdown after the loop has stopped: SIGKILLs every remaining group,
 * reaps (blocking, briefly) and frees all runs without callbacks, and
 * removes the evsignal. The pipes' bufferevents close their fds on the next
 * loop pass or in event_base_free.
 */
void action_exec_fini(void);
/* Checks every running child for exit; call on SIGCHLD. Never blocks. */
void action_exec_sigchld(void);

/*
 * Starts argv (argv[0] the program) with environment envp, feeding it a copy
 * of stdin_data, killed after timeout_sec (>= 1). Returns NULL with errno set
 * when nothing could be started (pipes, fork, memory, bad arguments): then
 * the callback is never called. A failed execve is reported through the
 * callback as ACTION_EXEC_SPAWN_FAILED.
 */
struct action_exec_run *action_exec_start(struct event_base *base, char *const argv[],
                                          char *const envp[], const char *stdin_data,
                                          size_t stdin_len, int timeout_sec, action_exec_done_cb cb,
                                          void *arg) __attribute__((warn_unused_result));

/*
 * Kills the run's process group (SIGKILL); the callback will not be called.
 * Resources are freed now, the run itself once its leader is reaped.
 */
void action_exec_cancel(struct action_exec_run *run);

/* The leader's pid (and process group id), for logs. */
int action_exec_pid(const struct action_exec_run *run);
/* Runs not yet freed, cancelled ones waiting to be reaped included. */
size_t action_exec_count(void);

/* One event field for action_exec_env; a NULL value is skipped. */
struct action_exec_var {
	const char *name;
	const char *value;
};

/*
 * Builds the child environment of SPEC §5, NULL-terminated, in this order:
 * PATH=ACTION_EXEC_PATH, then BAYAR_<NAME>=value for each field (NAME
 * upper-cased, any byte outside [A-Za-z0-9_] becomes '_'; fields with an
 * empty name or a NULL value are skipped; when two names map to the same
 * variable the first wins), then BAYARHOOK_SOURCE, BAYARHOOK_JOB_ID and
 * BAYARHOOK_ATTEMPT. Values are copied verbatim. Free with
 * action_exec_env_free. Returns NULL when out of memory.
 */
char **action_exec_env(const struct action_exec_var *fields, size_t nfields, const char *source,
                       const char *job_id, int attempt);
void action_exec_env_free(char **envp);

#endif
