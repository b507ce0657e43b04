/*
 * phpjson.h: checks JSON text against PHP's json_decode (the gateway signs
 * what PHP decoded) and PostgreSQL's numeric (jsonb stores every number as
 * one), and finds the literal text of each top-level member.
 */
#ifndef BAYARHOOK_PHPJSON_H
#define BAYARHOOK_PHPJSON_H

#include <stdbool.h>
#include <stddef.h>

struct phpjson_span {
	size_t off, len; /* a member's value text in the scanned text */
};

enum phpjson_check {
	PHPJSON_OK,           /* an object PHP decodes; spans filled */
	PHPJSON_INVALID,      /* not JSON as PHP reads it, or not n members */
	PHPJSON_NUMBER_RANGE, /* a number past what PostgreSQL's numeric holds */
};

/*
 * Whether s holds a "\u0000" escape inside a string. cJSON would decode it
 * and silently cut the string there, so signed and stored text would differ.
 */
bool phpjson_has_nul_escape(const char *s, size_t len);
/* The first index from i that is not JSON whitespace (cJSON skips any byte below 0x21). */
size_t phpjson_skip_ws(const char *s, size_t len, size_t i);
/*
 * Walks s, an object that cJSON already parsed into n members, checking
 * each token against PHP's rules, and fills spans[0..n) with the value text
 * of each top-level member in text order (cJSON's order too).
 */
enum phpjson_check phpjson_members(const char *s, size_t len, struct phpjson_span *spans, size_t n)
    __attribute__((warn_unused_result));

#endif
