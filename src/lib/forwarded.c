/*
 * forwarded.c: X-Forwarded-For from the right. A proxy appends the address
 * it saw to what the client sent, so only the right end is anybody's word
 * but the client's: the walk starts there and goes left only while the hop
 * is one of our own trusted proxies. Reading from the left (or keeping the
 * first entries of a long list) hands the choice of address to the client.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "forwarded.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * The hop that ends at s[end - 1] (blanks around it skipped) into hop;
 * *start is where its field begins (the comma before it, or 0). False when
 * it is empty or longer than an address can be: the scan never goes
 * further back than FORWARDED_HOP_SCAN bytes.
 */
static bool hop_before(const char *s, size_t end, char *hop, size_t hoplen, size_t *start)
{
	size_t e = end, b, lim = end > FORWARDED_HOP_SCAN ? end - FORWARDED_HOP_SCAN : 0;

	while (e > lim && blank(s[e - 1]))
		e--;
	b = e;
	while (b > lim && s[b - 1] != ',' && !blank(s[b - 1]))
		b--;
	*start = b;
	while (*start > lim && blank(s[*start - 1]))
		(*start)--;
	if (*start > 0 && s[*start - 1] != ',')
		return false; /* a blank inside a hop, or past the scan */
	if (*start > 0)
		(*start)--; /* onto the comma */
	if (e == b || e - b >= hoplen)
		return false;
	memcpy(hop, s + b, e - b);
	hop[e - b] = '\0';
	return true;
}

void forwarded_client(const struct cidr_list *trusted, const char *peer, const char *const *xff,
                      size_t nxff, const char *xreal, char *out, size_t outlen)
{
	int hops = 0;
	bool any = false;

	snprintf(out, outlen, "%s", peer);
	if (!cidr_list_match(trusted, peer))
		return;
	/* From the last field's right end, nearest hop first. */
	for (size_t i = nxff; i-- > 0;) {
		const char *s = xff[i];
		size_t end = strlen(s);

		if (strspn(s, " \t") == end)
			continue; /* an empty field says nothing */
		any = true;
		for (;;) {
			char hop[FORWARDED_HOP_SCAN];
			size_t start;

			if (!hop_before(s, end, hop, sizeof(hop), &start) || !cidr_addr_valid(hop))
				return; /* garbage: believe nothing further left */
			snprintf(out, outlen, "%s", hop);
			if (!cidr_list_match(trusted, hop) || ++hops == FORWARDED_MAX_HOPS)
				return;
			if (start == 0)
				break;
			end = start;
		}
	}
	if (!any && xreal && cidr_addr_valid(xreal))
		snprintf(out, outlen, "%s", xreal);
}
