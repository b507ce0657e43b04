/*
 * utf8.h: strict UTF-8 validation.
 */
#ifndef BAYARHOOK_UTF8_H
#define BAYARHOOK_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is well-formed UTF-8 (NUL bytes are allowed). */
bool utf8_valid(const char *s, size_t len);

#endif
