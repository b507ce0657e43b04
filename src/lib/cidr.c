/*
 * cidr.c: IPv4/IPv6 CIDR lists for trusted_proxies and allow_from.
 *
 * Addresses go through inet_pton only, so "10.1" or "010.0.0.1" (which
 * inet_aton would take) are errors, not surprises. An IPv4 entry is stored in
 * the first 4 bytes of addr. A client that reaches a dual-stack socket as
 * ::ffff:a.b.c.d is compared with the IPv4 entries as a.b.c.d.
 */
#include "cidr.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Longest entry we look at: a full IPv6 address with embedded IPv4 and "/128". */
#define CIDR_TEXT_MAX (INET6_ADDRSTRLEN + 4)

/* Error text naming the bad entry; cidr.h promises it lives until the next call. */
static _Thread_local char cidr_errbuf[160];

static const char *cidr_error(const char *text, size_t len, const char *reason)
{
	if (len > 64)
		snprintf(cidr_errbuf, sizeof(cidr_errbuf), "%.64s...: %s", text, reason);
	else
		snprintf(cidr_errbuf, sizeof(cidr_errbuf), "%.*s: %s", (int)len, text, reason);
	return cidr_errbuf;
}

/* Address text to bytes; returns the family or 0. */
static int cidr_pton(const char *text, uint8_t addr[16])
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, text, &a4) == 1) {
		memset(addr, 0, 16);
		memcpy(addr, &a4, 4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		memcpy(addr, &a6, 16);
		return AF_INET6;
	}
	return 0;
}

static void cidr_mask(uint8_t addr[16], int prefix, int bits)
{
	for (int i = 0; i < bits / 8; i++) {
		int keep = prefix - i * 8;

		if (keep >= 8)
			continue;
		addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* Parses text[0..len) (no surrounding blanks). */
static int cidr_parse_len(struct cidr *out, const char *text, size_t len, const char **err)
{
	char buf[CIDR_TEXT_MAX + 1];
	char *slash;
	int family, bits, prefix;

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		*err = "empty entry";
		return -1;
	}
	if (len > CIDR_TEXT_MAX) {
		*err = cidr_error(text, len, "not an IPv4 or IPv6 address");
		return -1;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';

	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	family = cidr_pton(buf, out->addr);
	if (family == 0) {
		*err = cidr_error(text, len, "not an IPv4 or IPv6 address");
		return -1;
	}
	bits = family == AF_INET ? 32 : 128;
	prefix = bits;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t n = strlen(p);

		if (n == 0 || n > 3 || strspn(p, "0123456789") != n || atoi(p) > bits) {
			*err = cidr_error(text, len,
			                  family == AF_INET ? "prefix must be between 0 and 32"
			                                    : "prefix must be between 0 and 128");
			return -1;
		}
		prefix = atoi(p);
	}
	cidr_mask(out->addr, prefix, bits);
	out->family = family;
	out->prefix = prefix;
	return 0;
}

int cidr_parse(struct cidr *out, const char *text, const char **err)
{
	return cidr_parse_len(out, text, strlen(text), err);
}

static bool cidr_blank(char c)
{
	return c == ' ' || c == '\t';
}

int cidr_list_parse(struct cidr_list *out, const char *text, const char **err)
{
	const char *p;
	size_t n = 1;

	out->v = NULL;
	out->n = 0;
	if (text[strspn(text, " \t")] == '\0')
		return 0;

	for (p = text; *p; p++)
		if (*p == ',')
			n++;
	out->v = xcalloc(n, sizeof(*out->v));

	p = text;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *s = p, *e;

		if (end == NULL)
			end = p + strlen(p);
		e = end;
		while (s < e && cidr_blank(*s))
			s++;
		while (e > s && cidr_blank(e[-1]))
			e--;
		if (cidr_parse_len(&out->v[out->n], s, (size_t)(e - s), err) < 0) {
			if (s == e)
				*err = "empty entry in list";
			cidr_list_free(out);
			return -1;
		}
		out->n++;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return 0;
}

void cidr_list_free(struct cidr_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool cidr_contains(const struct cidr *c, int family, const uint8_t addr[16])
{
	int whole = c->prefix / 8, rest = c->prefix % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr, addr, (size_t)whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((addr[whole] ^ c->addr[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool cidr_list_match(const struct cidr_list *l, const char *addr)
{
	uint8_t a[16], v4[16];
	int family;
	bool mapped = false;

	if (l == NULL || addr == NULL || l->n == 0)
		return false;
	family = cidr_pton(addr, a);
	if (family == 0)
		return false;
	/* ::ffff:a.b.c.d, tested bytewise: a is not aligned for struct in6_addr. */
	if (family == AF_INET6 && memcmp(a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memset(v4, 0, sizeof(v4));
		memcpy(v4, a + 12, 4);
		mapped = true;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (cidr_contains(&l->v[i], family, a))
			return true;
		if (mapped && cidr_contains(&l->v[i], AF_INET, v4))
			return true;
	}
	return false;
}

bool cidr_addr_valid(const char *addr)
{
	uint8_t a[16];

	return addr != NULL && cidr_pton(addr, a) != 0;
}

int cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char text[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "?");
	return snprintf(buf, len, "%s/%d", text, c->prefix);
}

void cidr_list_format(const struct cidr_list *l, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; l != NULL && i < l->n && used < len; i++) {
		int w;

		if (i > 0) {
			w = snprintf(buf + used, len - used, ", ");
			if (w < 0)
				return;
			used += (size_t)w;
			if (used >= len)
				return;
		}
		w = cidr_format(&l->v[i], buf + used, len - used);
		if (w < 0)
			return;
		used += (size_t)w;
	}
}
