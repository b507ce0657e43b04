/*
 * main.c: `bayarhook [-c FILE] COMMAND [ARGS]`: option parsing and dispatch
 * to the subcommands. -c may also follow the command.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: bayarhook [-c FILE] COMMAND [ARGS]\n"
	        "Receive bayar.gg payment callbacks, record them in PostgreSQL, fulfil orders.\n"
	        "\n"
	        "Commands:\n"
	        "  serve                      run the daemon (foreground; systemd-aware)\n"
	        "  check-config               parse and validate the config, print a summary\n"
	        "  migrate                    create or upgrade the database schema\n"
	        "  reconcile --once [--verbose]\n"
	        "                             ask the gateway about missed payments, once\n"
	        "  jobs [--state S] [--invoice ID] [--limit N] [--json]\n"
	        "                             list fulfillment jobs\n"
	        "  retry JOB_ID               put a failed or dead job back in the queue now\n"
	        "  replay INVOICE [--action NAME]\n"
	        "                             run the actions of an invoice again, as new jobs\n"
	        "  cancel JOB_ID              end a pending, held or dead job (cancelled)\n"
	        "  audit [--invoice ID] [--verdict V] [--since TIME] [--limit N] [--json]\n"
	        "                             show received callbacks\n"
	        "  send-test [--url URL] [--invoice ID] [--status S] [--amount N]\n"
	        "                             send a correctly signed sample callback\n"
	        "\n"
	        "Options:\n"
	        "  -c, --config FILE          config file (default $BAYARHOOK_CONFIG, else\n"
	        "                             /etc/bayarhook/receiver.conf)\n"
	        "  -d, --debug                debug logging\n"
	        "  -h, --help                 show this help\n"
	        "  -V, --version              show the version\n"
	        "\n"
	        "Exit status: 0 success, 1 failure, 2 usage error.\n");
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
	    {"config", required_argument, NULL, 'c'},
	    {"debug", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *cmd;
	bool debug = false;
	int c;

	while ((c = getopt_long(argc, argv, "+c:dhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("bayarhook %s\n", BAYARHOOK_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (take_config(&argc, argv, &config_path) < 0)
		return 2;
	if (config_path == NULL)
		config_path = config_default_path();
	log_init("bayarhook", debug);

	if (strcmp(cmd, "serve") == 0) {
		if (argc > 1) {
			fprintf(stderr, "bayarhook: serve takes no arguments\n");
			return 2;
		}
		return daemon_serve(config_path);
	}
	if (strcmp(cmd, "check-config") == 0)
		return cli_check_config(config_path, argc, argv);
	if (strcmp(cmd, "migrate") == 0)
		return cli_migrate(config_path, argc, argv);
	if (strcmp(cmd, "jobs") == 0)
		return cli_jobs(config_path, argc, argv);
	if (strcmp(cmd, "retry") == 0)
		return cli_retry(config_path, argc, argv);
	if (strcmp(cmd, "replay") == 0)
		return cli_replay(config_path, argc, argv);
	if (strcmp(cmd, "cancel") == 0)
		return cli_cancel(config_path, argc, argv);
	if (strcmp(cmd, "reconcile") == 0)
		return cli_reconcile(config_path, argc, argv);
	if (strcmp(cmd, "audit") == 0)
		return cli_audit(config_path, argc, argv);
	if (strcmp(cmd, "send-test") == 0)
		return cli_send_test(config_path, argc, argv);
	fprintf(stderr, "bayarhook: unknown command \"%s\" (see bayarhook --help)\n", cmd);
	return 2;
}
