/*
 * cli.c: the skeleton every subcommand runs in: options and operands by
 * the command's entry, a usage error as exit 2 before anything is loaded,
 * then the config and the database connection the entry asks for, the
 * command, and one cleanup. These run from a shell, not in the event loop,
 * so the connection is blocking libpq.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "xmalloc.h"

int cli_usage(const struct cli *cli)
{
	if (cli->cmd->args[0] == '\0')
		fprintf(stderr, "bayarhook: %s takes no arguments\n", cli->cmd->name);
	else
		fprintf(stderr, "usage: bayarhook %s %s\n", cli->cmd->name, cli->cmd->args);
	return 2;
}

const char *cli_opt(const struct cli *cli, int c)
{
	return c > 0 && (size_t)c < sizeof(cli->opt) / sizeof(cli->opt[0]) ? cli->opt[c] : NULL;
}

void cli_sql_error(const char *what, const PGresult *res)
{
	char msg[512];

	/* PostgreSQL's first line only: the CLI says why in one line (SPEC §2). */
	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
	msg[strcspn(msg, "\n")] = '\0';
	fprintf(stderr, "bayarhook: %s: %s\n", what, msg);
}

void cli_row_strings(const cJSON *row, const char *const *names, int n, const char **out,
                     const char *missing)
{
	for (int i = 0; i < n; i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, names[i]);

		out[i] = cJSON_IsString(x) ? x->valuestring : missing;
	}
}

/* Options into cli->opt, operands into cli->args; 0, or -1 for a usage error. */
static int cli_parse(struct cli *cli, int argc, char **argv)
{
	const struct cli_command *cmd = cli->cmd;
	int c;

	if (cmd->longopts == NULL) {
		cli->args = argv + 1;
		cli->nargs = argc - 1;
	} else {
		optind = 0; /* 0: glibc starts over (main.c parsed with "+") */
		while ((c = getopt_long(argc, argv, cmd->shortopts, cmd->longopts, NULL)) != -1) {
			if (c <= 0 || (size_t)c >= sizeof(cli->opt) / sizeof(cli->opt[0]) ||
			    c == '?' || c == ':')
				return -1;
			cli->opt[c] = optarg != NULL ? optarg : "";
		}
		cli->args = argv + optind;
		cli->nargs = argc - optind;
	}
	if (cli->nargs < cmd->min_args || cli->nargs > cmd->max_args)
		return -1;
	return 0;
}

/*
 * Takes --conninfo STR / --conninfo=STR out of argv, anywhere before "--",
 * for every command that reaches the database: one place instead of one
 * option row per command. 0, or -1 when it lacks its value.
 */
static int cli_take_conninfo(int *argc, char **argv, const char **conninfo)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--conninfo") == 0) {
			if (i + 1 >= *argc) {
				fprintf(stderr,
				        "bayarhook: --conninfo needs a connection string\n");
				return -1;
			}
			*conninfo = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--conninfo=", 11) == 0) {
			*conninfo = argv[i] + 11;
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

int cli_run(const struct cli_command *cmd, const char *config_path, const char *conninfo, int argc,
            char **argv)
{
	struct cli cli;
	char err[512];
	int rc = 1;

	memset(&cli, 0, sizeof(cli));
	cli.cmd = cmd;
	cli.config_path = config_path;
	/* Every database command, serve included (SPEC §10). */
	if (cmd->db != CLI_DB_NONE && cli_take_conninfo(&argc, argv, &conninfo) < 0)
		return 2;
	if (cli_parse(&cli, argc, argv) < 0)
		return cli_usage(&cli);
	if (cmd->check != NULL && (rc = cmd->check(&cli)) != 0)
		return rc;
	if (cmd->db != CLI_DB_NONE)
		cli.conninfo = conninfo;
	if (cmd->config) {
		/* A command without secrets must run where their files cannot be read. */
		unsigned flags =
		    cmd->secrets ? 0 : CONFIG_NO_SECRETS | (cmd->audit_key ? CONFIG_AUDIT_KEY : 0);

		cli.cfg =
		    config_load_flags(config_path, flags, cli.config_err, sizeof(cli.config_err));
		if (cli.cfg == NULL && !cmd->config_soft) {
			fprintf(stderr, "bayarhook: %s\n", cli.config_err);
			return 1;
		}
		if (cli.cfg != NULL && cli.conninfo != NULL) {
			free(cli.cfg->conninfo);
			cli.cfg->conninfo = xstrdup(cli.conninfo);
		}
	}
	if (cmd->db == CLI_DB_CONNECT) {
		cli.conn = db_connect_blocking(cli.cfg->conninfo, err, sizeof(err));
		if (cli.conn == NULL) {
			fprintf(stderr, "bayarhook: %s\n", err);
			rc = 1;
			goto out;
		}
	}
	rc = cmd->run(&cli);
out:
	PQfinish(cli.conn); /* an open transaction is rolled back */
	config_free(cli.cfg);
	return rc;
}
