/*
 * fuzz_forwarded.c: libFuzzer target for X-Forwarded-For read from the right
 * (src/lib/forwarded.c). The input is split at its NUL bytes into fields
 * (the first byte picks the trusted list). Besides memory safety it checks:
 *   - the answer is the peer or an address, never more than one hop's text;
 *   - the right end decides: any bytes put in front of the fields (a forged
 *     left end, as a client's own X-Forwarded-For before nginx appends) do
 *     not change an answer that is not a trusted proxy.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc/lib \
 *     src/lib/forwarded.c src/lib/cidr.c src/lib/xmalloc.c src/lib/log.c \
 *     fuzz/fuzz_forwarded.c -lsystemd -o fuzz_forwarded
 * ./fuzz_forwarded fuzz/corpus/forwarded
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "forwarded.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const trusted_lists[] = {
    "127.0.0.1/32",
    "127.0.0.1/32, 10.0.0.0/8",
    "127.0.0.1/32, ::1/128, 2001:db8::/32",
    "0.0.0.0/0",
};

#define MAX_FIELDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cidr_list trusted;
	const char *err = NULL;
	const char *fields[MAX_FIELDS + 1];
	char *text, *p, out[64], again[64];
	size_t n = 0;

	if (size < 1)
		return 0;
	if (cidr_list_parse(&trusted, trusted_lists[data[0] % 4], &err) != 0)
		abort();
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	/* Fields at the NULs; the last one ends at the input's end. */
	for (p = text; n < MAX_FIELDS && p < text + size; p += strlen(p) + 1)
		fields[n++] = p;
	forwarded_client(&trusted, "127.0.0.1", fields, n, "198.51.100.9", out, sizeof(out));
	if (strcmp(out, "127.0.0.1") != 0 && strcmp(out, "198.51.100.9") != 0 &&
	    !cidr_addr_valid(out))
		abort();
	if (n > 0 && !cidr_list_match(&trusted, out)) {
		/* A forged left end in front of everything: the answer stands. */
		const char *forged[MAX_FIELDS + 1];

		forged[0] = "6.6.6.6, 10.0.0.1, garbage ,,, 2001:db8::1";
		memcpy(forged + 1, fields, n * sizeof(*fields));
		forwarded_client(&trusted, "127.0.0.1", forged, n + 1, "198.51.100.9", again,
		                 sizeof(again));
		if (strcmp(out, again) != 0 && strcmp(out, "198.51.100.9") != 0)
			abort();
	}
	free(text);
	cidr_list_free(&trusted);
	return 0;
}
