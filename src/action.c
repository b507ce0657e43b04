/*
 * action.c: the registry of action types and the prepared set of one
 * config. Adding a type is one module filling a struct action_ops
 * (action_run.h) and one line in action_types[] below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "action_exec.h"
#include "action_forward.h"
#include "action_http.h"
#include "action_run.h"
#include "action_sql.h"
#include "action_wa_store.h"
#include "jsonw.h"
#include "xmalloc.h"

/* Indexed by config.h's enum action_type (the config parser names the types). */
static const struct action_ops *const action_types[] = {
    [ACTION_EXEC] = &action_exec_ops,         [ACTION_SQL] = &action_sql_ops,
    [ACTION_FORWARD] = &action_forward_ops,   [ACTION_HTTP] = &action_http_ops,
    [ACTION_WA_STORE] = &action_wa_store_ops,
};

struct action_set {
	struct action **v;
	size_t n;
};

/* ctx NULL: only checked, nothing acquired. NULL with "file:line: ..." in err. */
static struct action *action_prepare(struct action_ctx *ctx, const struct config *cfg,
                                     const struct action_conf *ac, char *err, size_t errlen)
{
	const struct action_ops *ops = NULL;
	struct action *a;
	char msg[256];

	if ((size_t)ac->type < sizeof(action_types) / sizeof(action_types[0]))
		ops = action_types[ac->type];
	if (ops == NULL) {
		snprintf(err, errlen, "%s:%d: type: unknown action type",
		         cfg->path ? cfg->path : "config", ac->line);
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->refs = 1;
	a->ctx = ctx;
	a->ops = ops;
	a->name = xstrdup(ac->name);
	a->timeout = ac->timeout;
	a->max_attempts = config_action_max_attempts(cfg, ac);
	if (ops->prepare(a, cfg, ac, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s:%d: %s", cfg->path ? cfg->path : "config", ac->line, msg);
		/* Whatever prepare filled in before failing goes with a. */
		action_unref(a);
		return NULL;
	}
	return a;
}

struct action_set *action_set_new(struct action_ctx *ctx, const struct config *cfg, char *err,
                                  size_t errlen)
{
	struct action_set *set = xcalloc(1, sizeof(*set));

	set->v = xcalloc(cfg->nactions + 1, sizeof(*set->v));
	for (size_t i = 0; i < cfg->nactions; i++) {
		set->v[i] = action_prepare(ctx, cfg, &cfg->actions[i], err, errlen);
		if (set->v[i] == NULL) {
			action_set_free(set);
			return NULL;
		}
		set->n++;
	}
	return set;
}

int action_check_config(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nactions; i++) {
		struct action *a = action_prepare(NULL, cfg, &cfg->actions[i], err, errlen);

		if (a == NULL)
			return -1;
		action_unref(a);
	}
	return 0;
}

void action_set_free(struct action_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		action_unref(set->v[i]);
	free(set->v);
	free(set);
}

struct action *action_set_find(const struct action_set *set, const char *name)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strcmp(set->v[i]->name, name) == 0)
			return set->v[i];
	return NULL;
}

char *action_set_leases(const struct action_set *set, int margin)
{
	struct jsonw w;

	jsonw_begin(&w);
	for (size_t i = 0; i < set->n; i++)
		jsonw_int(&w, set->v[i]->name, (long long)set->v[i]->timeout + margin);
	return jsonw_finish(&w);
}
