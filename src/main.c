/*
 * main.c: `bayarhook [-c FILE] COMMAND [ARGS]`: the global options, the
 * table of commands (whose entries live beside their code, cli.h), --help
 * from that table, and the dispatch into cli_run(). -c may also follow the
 * command.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "xmalloc.h"

static int main_serve(struct cli *cli)
{
	return daemon_serve(cli->config_path, cli->conninfo);
}

/* serve loads the config itself: its errors go to the log, as SIGHUP's do. */
static const struct cli_command main_cmd_serve = {
    .name = "serve",
    .args = "",
    .help = "run the daemon (foreground; systemd-aware)",
    .db = CLI_DB_POOL,
    .secrets = true,
    .run = main_serve,
};

/* In --help's order. */
static const struct cli_command *const main_commands[] = {
    &main_cmd_serve,       &cli_cmd_check_config, &cli_cmd_migrate,      &cli_cmd_reconcile,
    &cli_cmd_jobs,         &cli_cmd_retry,        &cli_cmd_replay,       &cli_cmd_cancel,
    &cli_cmd_audit,        &cli_cmd_audit_verify, &cli_cmd_audit_redact, &cli_cmd_audit_export,
    &cli_cmd_audit_retain, &cli_cmd_grant,        &cli_cmd_payments,     &cli_cmd_send_test,
    &cli_cmd_doctor,
};

#define MAIN_NCOMMANDS (sizeof(main_commands) / sizeof(main_commands[0]))
#define MAIN_HELP_COLUMN 27 /* where a command's description starts, after two blanks */

static void main_usage(FILE *out)
{
	fprintf(out, "Usage: bayarhook [-c FILE] COMMAND [ARGS]\n"
	             "Receive bayar.gg payment callbacks, record them in PostgreSQL, fulfil "
	             "orders.\n"
	             "\n"
	             "Commands:\n");
	for (size_t i = 0; i < MAIN_NCOMMANDS; i++) {
		const struct cli_command *c = main_commands[i];
		char line[160];

		snprintf(line, sizeof(line), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
		if (strlen(line) < MAIN_HELP_COLUMN)
			fprintf(out, "  %-*s%s\n", MAIN_HELP_COLUMN, line, c->help);
		else
			fprintf(out, "  %s\n  %*s%s\n", line, MAIN_HELP_COLUMN, "", c->help);
	}
	fprintf(out, "\n"
	             "Options:\n"
	             "  -c, --config FILE          config file (default $BAYARHOOK_CONFIG, else\n"
	             "                             /etc/bayarhook/receiver.conf)\n"
	             "  --conninfo STR             (commands that use the database) connect with\n"
	             "                             STR instead of [database] conninfo\n"
	             "  -d, --debug                debug logging\n"
	             "  -h, --help                 show this help\n"
	             "  -V, --version              show the version\n"
	             "\n"
	             "--since AGE: 90s, 15m, 2h, 3d; or TIME: an ISO date or time\n"
	             "(2026-12-01, 2026-12-01 08:00, 2026-12-01T08:00+07:00).\n"
	             "Times print with their offset, in the database's zone\n"
	             "unless --tz ZONE (e.g. Asia/Jakarta).\n"
	             "\n"
	             "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/*
 * The entry of argv[0], or of "argv[0] argv[1]" when that names one (a
 * command with subcommands, like "audit export"): then argv[1] is taken
 * out, so that the entry sees its own options from argv[1] on.
 */
static const struct cli_command *main_find(int *argc, char **argv)
{
	char two[64];

	if (*argc >= 2 && snprintf(two, sizeof(two), "%s %s", argv[0], argv[1]) < (int)sizeof(two))
		for (size_t i = 0; i < MAIN_NCOMMANDS; i++)
			if (strcmp(main_commands[i]->name, two) == 0) {
				memmove(&argv[1], &argv[2], (size_t)(*argc - 1) * sizeof(*argv));
				(*argc)--;
				return main_commands[i];
			}
	for (size_t i = 0; i < MAIN_NCOMMANDS; i++)
		if (strcmp(main_commands[i]->name, argv[0]) == 0)
			return main_commands[i];
	return NULL;
}

/* Pulls -c FILE / --config FILE / --config=FILE out of argv, anywhere after the command. */
static int take_config(int *argc, char **argv, const char **path)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "bayarhook: %s needs a file name\n", argv[i]);
				return -1;
			}
			*path = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			*path = argv[i] + 9;
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"conninfo", required_argument, NULL, 'C'},
	    {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *conninfo = NULL, *cmd;
	const struct cli_command *entry;
	cJSON_Hooks hooks = {.malloc_fn = xmalloc, .free_fn = free};
	bool debug = false;
	int c;

	/* cJSON allocates like the rest of the program: abort on out-of-memory. */
	cJSON_InitHooks(&hooks);

	while ((c = getopt_long(argc, argv, "+c:dhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			conninfo = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'V':
			printf("bayarhook %s\n", BAYARHOOK_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		main_usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "help") == 0) {
		main_usage(stdout);
		return 0;
	}
	if (take_config(&argc, argv, &config_path) < 0)
		return 2;
	if (config_path == NULL)
		config_path = config_default_path();
	log_init("bayarhook", debug, "BAYARHOOK_DEBUG");
	if ((entry = main_find(&argc, argv)) == NULL) {
		fprintf(stderr, "bayarhook: unknown command \"%s\" (see bayarhook --help)\n", cmd);
		return 2;
	}
	return cli_run(entry, config_path, conninfo, argc, argv);
}
