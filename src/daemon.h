/* daemon.h: `bayarhook serve`, the composition root. */
#ifndef BAYARHOOK_DAEMON_H
#define BAYARHOOK_DAEMON_H

/*
 * Runs until SIGTERM/SIGINT; returns the process exit code. conninfo, when
 * not NULL (--conninfo), stands for [database] conninfo, also on reloads.
 */
int daemon_serve(const char *config_path, const char *conninfo);

#endif
