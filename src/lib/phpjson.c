/*
 * phpjson.c: JSON text held to what PHP's json_decode accepts, where cJSON
 * is laxer (leading zeros, "+1", "1.", raw control characters, \u with bad
 * hex digits, whitespace other than JSON's, nesting past PHP's depth), and
 * to the numbers PostgreSQL's numeric can hold. cJSON builds the tree but
 * forgets number literals; this scanner also recovers the literal text of
 * each top-level member, which the PHP text of a number depends on.
 */
#include "phpjson.h"

#include <stdbool.h>
#include <string.h>

/* PHP's json_decode default depth of 512 refuses 512 nested containers. */
#define JSON_MAX_NESTING 511

/* Walks strings only, so an escaped backslash before "u0000" is not mistaken for one. */
bool phpjson_has_nul_escape(const char *s, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			in_string = s[i] == '"';
		} else if (s[i] == '"') {
			in_string = false;
		} else if (s[i] == '\\') {
			if (len - i > 5 && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
				return true;
			i++;
		}
	}
	return false;
}

size_t phpjson_skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* strchr would also find the terminator. */
static bool in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * At the opening quote. PHP refuses raw control characters, cJSON does not;
 * cJSON also decodes a \u with bad hex digits ("\u0e9x") as U+0000 and so
 * cuts the string short. Surrogate pairing is left to cJSON, which checks it.
 */
static bool scan_string(const char *s, size_t len, size_t *pos)
{
	size_t i = *pos + 1;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			*pos = i + 1;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\') {
			i++;
			continue;
		}
		if (len - i < 2 || !in_set(s[i + 1], "\"\\/bfnrtu"))
			return false;
		if (s[i + 1] == 'u') {
			if (len - i < 6 || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) ||
			    !is_hex(s[i + 4]) || !is_hex(s[i + 5]))
				return false;
			i += 6;
		} else {
			i += 2;
		}
	}
	return false;
}

/*
 * Whether PostgreSQL's numeric (which jsonb uses for every number) can hold
 * this JSON number: at most 131072 digits before the decimal point and a
 * scale (digits after it as written, less the exponent) of at most 16383.
 * A signed body with a number beyond that could never be stored: it is
 * refused as malformed rather than answered 503 for ever.
 */
static bool numeric_storable(const char *s, size_t n)
{
	size_t i = 0, intd = 0, fracd = 0, expd = 0;
	long long exp = 0, weight = 0; /* weight: decimal exponent of the first nonzero digit */
	bool neg_exp = false, nonzero = false;

	if (i < n && s[i] == '-')
		i++;
	for (; i < n && is_digit(s[i]); i++)
		nonzero |= s[i] != '0';
	intd = i - (s[0] == '-');
	if (nonzero)
		weight = (long long)intd - 1; /* JSON allows no leading zeros */
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]); i++) {
			fracd++;
			if (!nonzero && s[i] != '0') {
				nonzero = true;
				weight = -(long long)fracd;
			}
		}
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			neg_exp = s[i++] == '-';
		for (; i < n && is_digit(s[i]); i++) {
			if (expd == 0 && s[i] == '0')
				continue;
			if (++expd > 9)
				return false;
			exp = exp * 10 + (s[i] - '0');
		}
		if (neg_exp)
			exp = -exp;
	}
	if (nonzero && weight + exp > 131071)
		return false;
	return (long long)fracd - exp <= 16383;
}

/* RFC 8259 number; cJSON hands anything strtod likes ("01", "+1", "1.") on. */
static bool scan_number(const char *s, size_t len, size_t *pos, bool *range)
{
	size_t i = *pos;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0') {
		i++;
	} else if (i < len && is_digit(s[i])) {
		while (i < len && is_digit(s[i]))
			i++;
	} else {
		return false;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return false;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return false;
		while (i < len && is_digit(s[i]))
			i++;
	}
	/* cJSON reads "00" or "1.e5" as one number; here it would be two
	 * tokens that the structural walk cannot tell apart from one. */
	if (i < len && in_set(s[i], "0123456789+-.eE"))
		return false;
	if (!numeric_storable(s + *pos, i - *pos)) {
		*range = true;
		return false;
	}
	*pos = i;
	return true;
}

static bool scan_literal(const char *s, size_t len, size_t *pos)
{
	static const char *const lits[] = {"true", "false", "null"};

	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(lits[k]);
		if (len - *pos >= n && memcmp(s + *pos, lits[k], n) == 0) {
			*pos += n;
			return true;
		}
	}
	return false;
}

/*
 * Skips one value starting at *pos. The structure was already accepted by
 * cJSON, so a flat token walk with a nesting counter suffices (no recursion
 * for a stranger to exhaust); each token is checked against PHP's rules.
 */
static bool scan_value(const char *s, size_t len, size_t *pos, int depth, bool *range)
{
	size_t i = *pos;
	int level = 0;

	do {
		i = phpjson_skip_ws(s, len, i);
		if (i >= len)
			return false;
		switch (s[i]) {
		case '{':
		case '[':
			if (depth + ++level > JSON_MAX_NESTING)
				return false;
			i++;
			break;
		case '}':
		case ']':
			if (level-- == 0)
				return false;
			i++;
			break;
		case ',':
		case ':':
			if (level == 0)
				return false;
			i++;
			break;
		case '"':
			if (!scan_string(s, len, &i))
				return false;
			break;
		case 't':
		case 'f':
		case 'n':
			if (!scan_literal(s, len, &i))
				return false;
			break;
		default:
			if (s[i] != '-' && !is_digit(s[i]))
				return false;
			if (!scan_number(s, len, &i, range))
				return false;
			break;
		}
	} while (level > 0);
	*pos = i;
	return true;
}

/* The walk of phpjson_members; *range tells a number out of range from bad syntax. */
static bool scan_members(const char *s, size_t len, struct phpjson_span *spans, size_t n,
                         bool *range)
{
	size_t i = phpjson_skip_ws(s, len, 0), count = 0;

	if (i >= len || s[i] != '{')
		return false;
	i = phpjson_skip_ws(s, len, i + 1);
	if (i < len && s[i] == '}') {
		i++;
	} else {
		for (;;) {
			size_t start;

			i = phpjson_skip_ws(s, len, i);
			if (i >= len || s[i] != '"' || !scan_string(s, len, &i))
				return false;
			i = phpjson_skip_ws(s, len, i);
			if (i >= len || s[i] != ':')
				return false;
			start = i = phpjson_skip_ws(s, len, i + 1);
			if (!scan_value(s, len, &i, 1, range) || count >= n)
				return false;
			spans[count].off = start;
			spans[count].len = i - start;
			count++;
			i = phpjson_skip_ws(s, len, i);
			if (i < len && s[i] == ',') {
				i++;
				continue;
			}
			if (i < len && s[i] == '}') {
				i++;
				break;
			}
			return false;
		}
	}
	return phpjson_skip_ws(s, len, i) == len && count == n;
}

enum phpjson_check phpjson_members(const char *s, size_t len, struct phpjson_span *spans, size_t n)
{
	bool range = false;

	if (scan_members(s, len, spans, n, &range))
		return PHPJSON_OK;
	return range ? PHPJSON_NUMBER_RANGE : PHPJSON_INVALID;
}
