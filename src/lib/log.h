/* log.h: one line per event, to stderr or to the journal with fields. */
#ifndef BAYARHOOK_LOG_H
#define BAYARHOOK_LOG_H

#include <stdbool.h>
#include <syslog.h>

/*
 * Chooses the journal when stderr is connected to it (JOURNAL_STREAM).
 * Debug records are written when debug is true or the environment variable
 * named debug_env (may be NULL) is "1".
 */
void log_init(const char *ident, bool debug, const char *debug_env);
bool log_debug_enabled(void);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* With ": strerror(errno)" appended. */
void log_errno(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * A structured record: fields is a NULL-terminated list of "KEY=value"
 * strings sent as journal fields; on plain stderr they are appended as
 * key=value after the message.
 */
void log_fields(int prio, const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_debug_enabled())                                                           \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_warn(...) log_errno(LOG_WARNING, __VA_ARGS__)
#define log_errx(...) log_msg(LOG_ERR, __VA_ARGS__)

#endif
