/*
 * action_exec.c: the exec action. The command is split into words once per
 * load; each attempt expands its {field} placeholders (one word stays one
 * argument, whatever the value holds), builds the environment of SPEC §5
 * and hands both to the process runner. The runner's verdict becomes the
 * attempt's result: exit 0 succeeds, a timeout is a timeout, exit 65
 * (EX_DATAERR: the event itself is wrong) fails for good, anything else
 * fails to be retried; a failure carries the last line the command printed.
 */
#include "action_exec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "action_run.h"
#include "words.h"
#include "xmalloc.h"

struct exec_action {
	char **argv; /* split command, placeholders still in */
};

static int exec_prepare(struct action *a, const struct config *cfg, const struct action_conf *ac,
                        char *err, size_t errlen)
{
	struct exec_action *x = xcalloc(1, sizeof(*x));
	char msg[200], **names = NULL;

	a->priv = x;
	if (words_split(ac->command, &x->argv, msg, sizeof(msg)) < 0 ||
	    words_fields(x->argv, &names, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "command: %s", msg);
		return -1;
	}
	action_warn_fields(cfg, ac, names, "command");
	words_free(names);
	return 0;
}

static void exec_release(struct action *a)
{
	struct exec_action *x = a->priv;

	if (x == NULL)
		return;
	words_free(x->argv);
	free(x);
}

static const char *exec_lookup(void *arg, const char *name)
{
	return action_field(arg, name);
}

/* The last non-empty line of the output, for last_error. */
static void last_line(const char *out, size_t len, char *buf, size_t buflen)
{
	size_t end = len, start;

	while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' || out[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && out[start - 1] != '\n')
		start--;
	if (end - start > 200)
		start = end - 200;
	snprintf(buf, buflen, "%.*s", (int)(end - start), out + start);
	/* Control characters would break the one-line rule of last_error. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static void exec_done(struct proc *p, const struct proc_result *r, void *arg)
{
	struct action_run *run = arg;
	struct exec_action *x = run->action->priv;
	struct action_result res;
	char msg[512], line[256];

	(void)p;
	run->priv = NULL; /* the runner frees the process after this */
	action_result_init(&res, ACTION_FAILED);
	res.output = r->output;
	res.output_len = r->output_len;
	last_line(r->output, r->output_len, line, sizeof(line));
	switch (r->how) {
	case PROC_EXITED:
		res.exit_code = r->code;
		if (r->code == 0) {
			res.outcome = ACTION_SUCCEEDED;
			break;
		}
		/* The script says the event itself is wrong: no retry will change that. */
		if (r->code == EX_DATAERR)
			res.outcome = ACTION_FAILED_PERMANENT;
		snprintf(msg, sizeof(msg), "exit status %d%s%s", r->code, line[0] ? ": " : "",
		         line);
		break;
	case PROC_SIGNALED:
		snprintf(msg, sizeof(msg), "killed by signal %d (%s)%s%s", r->code,
		         strsignal(r->code), line[0] ? ": " : "", line);
		break;
	case PROC_TIMEOUT:
		res.outcome = ACTION_TIMEOUT;
		snprintf(msg, sizeof(msg), "timed out after %d s, process group killed",
		         run->action->timeout);
		break;
	case PROC_SPAWN_FAILED:
		snprintf(msg, sizeof(msg), "cannot execute %s: %s", x->argv[0], strerror(r->code));
		break;
	}
	if (res.outcome != ACTION_SUCCEEDED)
		res.error = msg;
	action_run_finish(run, &res);
}

static int exec_start(struct action_run *run, char *err, size_t errlen)
{
	struct exec_action *x = run->action->priv;
	struct action_exec_var *vars;
	char **argv = NULL, **envp;
	size_t n = 0;
	const cJSON *f;
	int rc = -1;

	if (words_expand(x->argv, exec_lookup, run, &argv, err, errlen) < 0)
		return -1;
	vars = xcalloc(run->ev.nfields + 1, sizeof(*vars));
	cJSON_ArrayForEach(f, run->ev.json)
	{
		if (n == run->ev.nfields)
			break;
		vars[n].name = f->string;
		vars[n].value = f->string ? event_field(&run->ev, f->string) : NULL;
		n++;
	}
	envp = action_exec_env(vars, n, run->source, run->job_id, run->attempt);
	run->priv = proc_start(action_ctx_base(run->ctx), argv, envp, run->event,
	                       strlen(run->event), run->action->timeout, exec_done, run);
	if (run->priv == NULL)
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(errno));
	else
		rc = 0;
	action_exec_env_free(envp);
	words_free(argv);
	free(vars);
	return rc;
}

static void exec_stop(struct action_run *run)
{
	/* The process group is killed; the runner reaps it later on its own. */
	proc_cancel(run->priv);
	run->priv = NULL;
}

const struct action_ops action_exec_ops = {
    .name = "exec",
    .prepare = exec_prepare,
    .release = exec_release,
    .start = exec_start,
    .stop = exec_stop,
    .cancellable = true,
};

void action_exec_env_free(char **envp)
{
	if (envp == NULL)
		return;
	for (char **p = envp; *p != NULL; p++)
		free(*p);
	free(envp);
}

/* "NAME=value" in fresh memory. */
static char *env_entry(const char *name, size_t nlen, const char *value)
{
	size_t vlen = strlen(value);
	char *s = xmalloc(nlen + 1 + vlen + 1);

	memcpy(s, name, nlen);
	s[nlen] = '=';
	memcpy(s + nlen + 1, value, vlen + 1);
	return s;
}

char **action_exec_env(const struct action_exec_var *fields, size_t nfields, const char *source,
                       const char *job_id, int attempt)
{
	char **env, attempt_s[16], *name;
	size_t n = 0;

	env = xcalloc(nfields + 5, sizeof(*env));
	env[n++] = env_entry("PATH", 4, ACTION_EXEC_PATH);
	for (size_t i = 0; i < nfields; i++) {
		const char *fn = fields[i].name;
		size_t flen, nlen;
		bool dup = false;

		if (fn == NULL || fn[0] == '\0' || fields[i].value == NULL)
			continue;
		flen = strlen(fn);
		nlen = 6 + flen;
		name = xmalloc(nlen + 1);
		memcpy(name, "BAYAR_", 6);
		for (size_t k = 0; k < flen; k++) {
			unsigned char c = (unsigned char)fn[k];

			if (c >= 'a' && c <= 'z')
				c = (unsigned char)(c - 'a' + 'A');
			else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
				c = '_';
			name[6 + k] = (char)c;
		}
		name[nlen] = '\0';
		for (size_t k = 1; k < n && !dup; k++)
			dup = strncmp(env[k], name, nlen) == 0 && env[k][nlen] == '=';
		if (!dup)
			env[n++] = env_entry(name, nlen, fields[i].value);
		free(name);
	}
	snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
	env[n++] = env_entry("BAYARHOOK_SOURCE", 16, source != NULL ? source : "");
	env[n++] = env_entry("BAYARHOOK_JOB_ID", 16, job_id != NULL ? job_id : "");
	env[n++] = env_entry("BAYARHOOK_ATTEMPT", 17, attempt_s);
	return env;
}
