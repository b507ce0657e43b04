/*
 * cli.h: the subcommands as a table, after tmux's cmd_entry. Each cli_*.c
 * file defines the entries of its commands; main.c lists them and cli.c runs
 * any of them through one skeleton: options and operands, the config, the
 * database connection, then the command, then the cleanup.
 */
#ifndef BAYARHOOK_CLI_H
#define BAYARHOOK_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

struct cJSON;
struct config;
struct pg_conn;
struct pg_result;

/* How a command reaches the database. */
enum cli_db {
	CLI_DB_NONE,    /* with .config, every other value also takes --conninfo STR (cli.c) */
	CLI_DB_CONNECT, /* the skeleton connects (blocking libpq) before run: cli->conn */
	CLI_DB_POOL,    /* the command runs an event loop with its own pool */
	CLI_DB_SELF,    /* the command connects itself, if and when it can (doctor) */
};

struct cli;

struct cli_command {
	const char *name;
	const char *args; /* after the name in usage lines; "" when it takes none */
	const char *help; /* its line in --help */
	bool config;      /* the skeleton loads the config first: cli->cfg */
	/*
	 * With config: a config that does not load is the command's to report
	 * (cli->cfg NULL, the reason in cli->config_err), not the skeleton's.
	 */
	bool config_soft;
	enum cli_db db;
	/*
	 * Uses the secrets. Without it the skeleton loads the config with
	 * CONFIG_NO_SECRETS: no *_file is opened, so the command runs where
	 * the service's secret files cannot be read (SPEC §10).
	 */
	bool secrets;
	/* Without secrets: [audit] key_file is read all the same (CONFIG_AUDIT_KEY). */
	bool audit_key;
	/* getopt_long's; NULL: no options, and no argument may look like one. */
	const char *shortopts;
	const struct option *longopts;
	int min_args, max_args; /* operands after the options */
	/* Checks option values before anything is loaded: 0, or 2 after saying why. */
	int (*check)(struct cli *cli);
	/* The command itself: 0, or 1 after a one-line reason on stderr. */
	int (*run)(struct cli *cli);
};

/* One run of a command, as the skeleton prepared it. */
struct cli {
	const struct cli_command *cmd;
	const char *config_path;
	struct config *cfg;   /* when cmd->config */
	struct pg_conn *conn; /* when cmd->db == CLI_DB_CONNECT */
	const char *conninfo; /* --conninfo, or NULL (already applied to cfg) */
	char config_err[512]; /* when config_soft and cfg is NULL */
	const char *opt[128]; /* by getopt's val: the argument, "" for a flag, NULL if absent */
	char **args;          /* the operands */
	int nargs;
};

/* The entries, one per command, in the files that implement them. */
extern const struct cli_command cli_cmd_check_config, cli_cmd_migrate, cli_cmd_audit;
extern const struct cli_command cli_cmd_jobs, cli_cmd_retry, cli_cmd_replay, cli_cmd_cancel;
extern const struct cli_command cli_cmd_reconcile, cli_cmd_send_test, cli_cmd_doctor;
extern const struct cli_command cli_cmd_payments;
extern const struct cli_command cli_cmd_audit_export, cli_cmd_audit_retain, cli_cmd_grant;
extern const struct cli_command cli_cmd_audit_verify, cli_cmd_audit_redact;

/*
 * Runs cmd with the arguments after the global options (argv[0] is the
 * command's name); conninfo: a --conninfo given before the command, or
 * NULL (one after it wins). Returns the exit code: 0, 1 on failure, 2 on
 * usage errors.
 */
int cli_run(const struct cli_command *cmd, const char *config_path, const char *conninfo, int argc,
            char **argv);
/* The command's usage line on stderr; returns 2, for `return cli_usage(cli);`. */
int cli_usage(const struct cli *cli);
/* The value of the option whose getopt val is c, or NULL. */
const char *cli_opt(const struct cli *cli, int c);
/* out[i] = the string field names[i] of a JSON row, or missing. */
/* "bayarhook: what: " and the first line of a failed statement's error, on stderr. */
struct pg_result;
void cli_sql_error(const char *what, const struct pg_result *res);
void cli_row_strings(const struct cJSON *row, const char *const *names, int n, const char **out,
                     const char *missing);

/*
 * cli_time.c. --since's AGE or TIME (15m, 2h, 3d; 2026-12-01,
 * 2026-12-01T08:00+07:00) into buf as a timestamptz literal PostgreSQL reads:
 * 0, or 2 after a one-line usage error.
 */
int cli_time_since(const struct cli *cli, const char *text, char *buf, size_t len);
/* --tz: the session's TimeZone (NULL: leave it); 0, 2 for an unknown zone, 1. */
int cli_time_zone(const struct cli *cli, struct pg_conn *conn, const char *zone);
/* How every command prints a time: with its offset from UTC, in the session's zone. */
#define CLI_TIME_FORMAT "'YYYY-MM-DD HH24:MI:SSOF'"
/* The width of a time printed so; an offset like +05:30 is three more. */
#define CLI_TIME_WIDTH 22

#endif
