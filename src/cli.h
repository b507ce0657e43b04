/* cli.h: the administrative subcommands (each in cli_<name>.c). */
#ifndef BAYARHOOK_CLI_H
#define BAYARHOOK_CLI_H

/*
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and the config path; returns the exit code (0, 1, or 2 for
 * usage errors) after printing a one-line reason on failure.
 */
int cli_check_config(const char *config_path, int argc, char **argv);
int cli_migrate(const char *config_path, int argc, char **argv);
int cli_audit(const char *config_path, int argc, char **argv);
int cli_send_test(const char *config_path, int argc, char **argv);
/* cli_jobs.c */
int cli_jobs(const char *config_path, int argc, char **argv);
int cli_retry(const char *config_path, int argc, char **argv);
int cli_replay(const char *config_path, int argc, char **argv);
int cli_cancel(const char *config_path, int argc, char **argv);
/* cli_reconcile.c */
int cli_reconcile(const char *config_path, int argc, char **argv);

/* Shared by the subcommands: load the config / connect, saying why on failure. */
struct config;
struct pg_conn;
struct config *cli_load_config(const char *path);
/* out[i] = the string field names[i] of a JSON row, or missing. */
struct cJSON;
void cli_row_strings(const struct cJSON *row, const char *const *names, int n, const char **out,
                     const char *missing);
struct pg_conn *cli_connect(const struct config *cfg);

#endif
