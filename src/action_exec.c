/*
 * action_exec.c: the exec action. The command is split into words once per
 * load; each attempt expands its {field} placeholders (one word stays one
 * argument, whatever the value holds), builds the environment of SPEC §5
 * and hands both to the process runner. The runner's verdict becomes the
 * attempt's result: exit 0 succeeds, a timeout is a timeout, exit 65
 * (EX_DATAERR: the event itself is wrong) fails for good, anything else
 * fails to be retried; a failure carries the last line the command printed.
 *
 * What the buyer typed reaches the command (SPEC §13): a field that would
 * start an argument with '-' ends the job for good unless the action allows
 * it, and the environment holds the fields of `env =` only, each value and
 * the whole capped in size.
 */
#include "action_exec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "action_run.h"
#include "event.h"
#include "log.h"
#include "words.h"
#include "xmalloc.h"

struct exec_action {
	char **argv;             /* split command, placeholders still in */
	char **env;              /* env =: the fields given as BAYAR_*; NULL: all */
	bool allow_leading_dash; /* allow_leading_dash = true */
};

/* One attempt: its process, or its refusal waiting to be reported from the loop. */
struct exec_run {
	struct proc *proc;     /* NULL once it reported or was cancelled */
	struct event *refusal; /* pending ACTION_FAILED_PERMANENT */
	char *error;           /* the refusal's last_error */
	char *note;            /* BAYAR_* left out, put before the command's output */
};

/* Splits "a, b,c" into names; an empty item is an error. */
static int exec_env_list(const char *text, char ***out, char *err, size_t errlen)
{
	size_t n = 0;
	const char *p = text;
	char **v = xcalloc(strlen(text) / 2 + 2, sizeof(*v));

	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "env: an empty field name in the list");
			words_free(v);
			return -1;
		}
		v[n++] = xstrndup(p, len);
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = v;
	return 0;
}

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
	x->allow_leading_dash = ac->allow_leading_dash;
	if (ac->env != NULL && ac->env[0] != '\0') {
		if (exec_env_list(ac->env, &x->env, err, errlen) < 0)
			return -1;
		action_warn_fields(cfg, ac, x->env, "env");
	}
	return 0;
}

static void exec_release(struct action *a)
{
	struct exec_action *x = a->priv;

	if (x == NULL)
		return;
	words_free(x->argv);
	words_free(x->env);
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

static void exec_run_release(struct action_run *run)
{
	struct exec_run *er = run->priv;

	if (er->refusal != NULL)
		event_free(er->refusal);
	free(er->error);
	free(er->note);
	free(er);
	run->priv = NULL;
}

static void exec_done(struct proc *p, const struct proc_result *r, void *arg)
{
	struct action_run *run = arg;
	struct exec_run *er = run->priv;
	struct exec_action *x = run->action->priv;
	struct action_result res;
	char msg[512], line[256], *output = NULL;

	(void)p;
	er->proc = NULL; /* the runner frees the process after this */
	action_result_init(&res, ACTION_FAILED);
	res.output = r->output;
	res.output_len = r->output_len;
	if (er->note != NULL) {
		/* First, so that the cap on stored output keeps it. */
		size_t nlen = strlen(er->note);

		output = xmalloc(nlen + 1 + r->output_len + 1);
		memcpy(output, er->note, nlen);
		output[nlen] = '\n';
		memcpy(output + nlen + 1, r->output, r->output_len);
		res.output = output;
		res.output_len = nlen + 1 + r->output_len;
		output[res.output_len] = '\0';
	}
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
	free(output);
}

/* The refusal of exec_start, reported from the loop as the rule of action_run.h wants. */
static void exec_refused(evutil_socket_t fd, short what, void *arg)
{
	struct action_run *run = arg;
	struct exec_run *er = run->priv;
	struct action_result res;

	(void)fd;
	(void)what;
	action_result_init(&res, ACTION_FAILED_PERMANENT);
	res.error = er->error;
	action_run_finish(run, &res);
}

int action_exec_leading_dash(const char *tmpl, words_lookup_fn lookup, void *arg, char *field,
                             size_t fieldlen)
{
	const char *p = tmpl;

	/* Only placeholders can come before the first character: a literal '-' is the command's. */
	while (p[0] == '{' && p[1] != '{') {
		const char *end = strchr(p, '}');
		char name[128];
		const char *value;

		if (end == NULL || (size_t)(end - p - 1) >= sizeof(name))
			return 0; /* words_expand refused it before */
		memcpy(name, p + 1, (size_t)(end - p - 1));
		name[end - p - 1] = '\0';
		value = lookup(arg, name);
		if (value != NULL && value[0] != '\0') {
			if (value[0] != '-')
				return 0;
			snprintf(field, fieldlen, "%s", name);
			return 1;
		}
		p = end + 1;
	}
	return 0;
}

/*
 * The fields an attempt's environment holds: those of env =, or all, the
 * fields bayar.gg sends first so that a body full of other keys cannot push
 * them past the environment's cap.
 */
static struct action_exec_var *exec_vars(struct action_run *run, const struct exec_action *x,
                                         size_t *count)
{
	struct action_exec_var *vars = xcalloc(run->ev.nfields + 1, sizeof(*vars));
	size_t n = 0;

	for (int known = 1; known >= 0; known--) {
		const cJSON *f;

		cJSON_ArrayForEach(f, run->ev.json)
		{
			bool wanted = x->env == NULL;

			if (f->string == NULL || action_field_known(f->string) != (known == 1))
				continue;
			for (size_t i = 0; !wanted && x->env[i] != NULL; i++)
				wanted = strcmp(x->env[i], f->string) == 0;
			if (!wanted || n == run->ev.nfields)
				continue;
			vars[n].name = f->string;
			vars[n].value = event_field(&run->ev, f->string);
			n++;
		}
	}
	*count = n;
	return vars;
}

static int exec_start(struct action_run *run, char *err, size_t errlen)
{
	struct exec_action *x = run->action->priv;
	struct exec_run *er;
	struct action_exec_var *vars;
	char **argv = NULL, **envp, field[128];
	size_t n = 0;

	if (words_expand(x->argv, exec_lookup, run, &argv, err, errlen) < 0)
		return -1;
	er = xcalloc(1, sizeof(*er));
	run->priv = er;
	for (size_t k = 1; !x->allow_leading_dash && argv[k] != NULL; k++) {
		if (argv[k][0] != '-' ||
		    !action_exec_leading_dash(x->argv[k], exec_lookup, run, field, sizeof(field)))
			continue;
		xasprintf(
		    &er->error,
		    "field %s would start argument %zu with '-' (an option): refused, the job "
		    "ends; put -- before it, or set allow_leading_dash = true",
		    field, k);
		er->refusal = event_new(action_ctx_base(run->ctx), -1, 0, exec_refused, run);
		event_active(er->refusal, EV_TIMEOUT, 0);
		words_free(argv);
		return 0;
	}
	vars = exec_vars(run, x, &n);
	envp =
	    action_exec_env(vars, n, run->source, run->job_id, run->attempt, run->flag, &er->note);
	{
		/* SPEC §12, in the slot action_exec_env leaves free at the end. */
		size_t e = 0;

		while (envp[e] != NULL)
			e++;
		xasprintf(&envp[e], "BAYARHOOK_IDEMPOTENCY_KEY=%s", run->idempotency_key);
	}
	if (er->note != NULL)
		log_warnx("job=%s action=%s: %s", run->job_id, run->action->name, er->note);
	er->proc = proc_start(action_ctx_base(run->ctx), argv, envp, run->event, strlen(run->event),
	                      run->action->timeout, exec_done, run);
	if (er->proc == NULL)
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(errno));
	action_exec_env_free(envp);
	words_free(argv);
	free(vars);
	return er->proc != NULL ? 0 : -1;
}

static void exec_stop(struct action_run *run)
{
	struct exec_run *er = run->priv;

	/* The process group is killed; the runner reaps it later on its own. */
	proc_cancel(er->proc);
	er->proc = NULL;
}

const struct action_ops action_exec_ops = {
    .name = "exec",
    .prepare = exec_prepare,
    .release = exec_release,
    .start = exec_start,
    .stop = exec_stop,
    .run_release = exec_run_release,
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

/* Adds name to the note of variables left out; the note stays bounded. */
static void note_left_out(char **note, size_t *count, const char *name, size_t vlen)
{
	char *more;

	(*count)++;
	if (*count > 8)
		return; /* the count at the end says how many there were */
	xasprintf(&more, "%s%s%s (%zu bytes)", *note != NULL ? *note : "",
	          *note != NULL ? ", " : "", name, vlen);
	free(*note);
	*note = more;
}

char **action_exec_env(const struct action_exec_var *fields, size_t nfields, const char *source,
                       const char *job_id, int attempt, const char *flag, char **note)
{
	char **env, attempt_s[16], *left = NULL;
	size_t n = 0, total = 0, nleft = 0;

	*note = NULL;
	/* + 7: PATH, four BAYARHOOK_*, the NULL, and room for exec_start's idempotency key. */
	env = xcalloc(nfields + 7, sizeof(*env));
	env[n++] = env_entry("PATH", 4, ACTION_EXEC_PATH);
	for (size_t i = 0; i < nfields; i++) {
		const char *fn = fields[i].name;
		size_t nlen, vlen;
		bool dup = false;
		char *name;

		if (fn == NULL || fn[0] == '\0' || fields[i].value == NULL)
			continue;
		name = event_var_name(fn);
		nlen = strlen(name);
		vlen = strlen(fields[i].value);
		/* The caps first: they bound the entries the duplicate check walks. */
		if (vlen > ACTION_EXEC_VALUE_MAX ||
		    total + nlen + 1 + vlen + 1 > ACTION_EXEC_ENV_MAX) {
			note_left_out(&left, &nleft, name, vlen);
			free(name);
			continue;
		}
		/* event_parse refuses events with such names; the first would win. */
		for (size_t k = 1; k < n && !dup; k++)
			dup = strncmp(env[k], name, nlen) == 0 && env[k][nlen] == '=';
		if (!dup) {
			env[n++] = env_entry(name, nlen, fields[i].value);
			total += nlen + 1 + vlen + 1;
		}
		free(name);
	}
	snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
	env[n++] = env_entry("BAYARHOOK_SOURCE", 16, source != NULL ? source : "");
	env[n++] = env_entry("BAYARHOOK_JOB_ID", 16, job_id != NULL ? job_id : "");
	env[n++] = env_entry("BAYARHOOK_ATTEMPT", 17, attempt_s);
	/* SPEC §7: always set, so a script tells "not flagged" from an old daemon. */
	env[n++] = env_entry("BAYARHOOK_FLAGGED", 17, flag != NULL ? flag : "");
	if (nleft > 0) {
		xasprintf(note,
		          "bayarhook: %zu BAYAR_* variable(s) left out, over %d bytes each or %d "
		          "in all (the event on stdin has every field): %s%s",
		          nleft, ACTION_EXEC_VALUE_MAX, ACTION_EXEC_ENV_MAX, left,
		          nleft > 8 ? ", ..." : "");
		free(left);
	}
	return env;
}
