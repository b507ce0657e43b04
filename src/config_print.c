/*
 * config_print.c: what check-config shows: the summary of a loaded config,
 * every key of the tables with secrets never shown.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_table.h"

/* Secret pairs share a field: print it once, under the name without "_file". */
static bool print_skip(const struct conf_key *tab, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (tab[j].off == tab[i].off && (tab[j].section == tab[i].section ||
		                                 (tab[j].section && tab[i].section &&
		                                  strcmp(tab[j].section, tab[i].section) == 0)))
			return true;
	return false;
}

static void print_key(FILE *out, const struct config *cfg, const struct conf_key *tab, size_t i,
                      const void *base)
{
	const char *name = tab[i].name;
	size_t n = strlen(name);

	if (print_skip(tab, i))
		return;
	if (tab[i].type == T_SECRETS_FILE || tab[i].type == T_SECRET_FILE)
		n -= strlen("_file");
	fprintf(out, "%.*s = ", (int)n, name);
	config_key_print(out, cfg, &tab[i], base);
	fputc('\n', out);
}

void config_print_summary(const struct config *cfg, FILE *out)
{
	const char *section = NULL;

	fprintf(out, "# %s (secrets are not shown)\n", cfg->path != NULL ? cfg->path : "");
	for (size_t i = 0; i < config_nkeys; i++) {
		if (section == NULL || strcmp(section, config_keys[i].section) != 0) {
			section = config_keys[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		print_key(out, cfg, config_keys, i, cfg);
	}
	for (size_t a = 0; a < cfg->nactions; a++) {
		const struct action_conf *ac = &cfg->actions[a];

		fprintf(out, "\n[action.%s]\n", ac->name);
		for (size_t i = 0; i < action_nkeys; i++)
			if (action_keys[i].types & TYPE_BIT(ac->type))
				print_key(out, cfg, action_keys, i, ac);
	}
	if (cfg->nsecrets > 0) {
		char fps[1024];

		/* Which secrets are active, without them (SPEC §7): compare with serve's log. */
		config_secret_fingerprints(cfg, fps, sizeof(fps));
		fprintf(out,
		        "\n# %zu webhook secret(s), fingerprints (SHA-256, current first): %s\n",
		        cfg->nsecrets, fps);
	}
	if (cfg->nactions == 0)
		fprintf(out, "\n# no [action.NAME] sections: callbacks are recorded, nothing "
		             "is fulfilled\n");
}
