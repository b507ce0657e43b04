/*
 * redact.h: passwords masked in conninfo strings and URLs.
 */
#ifndef BAYARHOOK_REDACT_H
#define BAYARHOOK_REDACT_H

#include <stddef.h>

/*
 * Copies text into buf (always NUL-terminated, cut at len) with every
 * password masked: "password=***", "sslpassword=***",
 * "postgresql://user:***@host". text may be NULL ("").
 */
void redact_passwords(const char *text, char *buf, size_t len);

#endif
