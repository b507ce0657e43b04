/* daemon.h: `bayarhook serve`, the composition root. */
#ifndef BAYARHOOK_DAEMON_H
#define BAYARHOOK_DAEMON_H

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int daemon_serve(const char *config_path);

#endif
