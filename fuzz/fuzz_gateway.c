/*
 * fuzz_gateway.c: libFuzzer target for the answers of the bayar.gg API
 * (whoever controls the gateway, or the path to an http:// base_url, writes
 * them): the check-payment and list-payments bodies, the "error" text of
 * refusals, Retry-After, a paid_at time, and an invoice id as it is encoded
 * into the next check-payment query.
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Isrc/lib \
 *     src/gateway_parse.c src/event.c src/verify.c src/lib/utf8.c src/lib/phpnum.c \
 *     src/lib/xmalloc.c src/lib/log.c fuzz/fuzz_gateway.c \
 *     -lcjson -lcrypto -lsystemd -lm -o fuzz_gateway
 *   ./fuzz_gateway fuzz/corpus/gateway
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gateway_page page;
	struct pay_event ev;
	char err[256], *text, *nl, *enc;
	size_t total = 0;

	/* Exact-size buffer: ASan sees any read past the body. */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (gateway_parse_check(text, size, "PAY-1", &ev, err, sizeof(err)) == GATEWAY_OK) {
		if (strcmp(ev.invoice_id, "PAY-1") != 0 || ev.status == STATUS_UNKNOWN)
			abort();
		(void)event_field(&ev, "paid_at");
		event_release(&ev);
	}
	if (gateway_parse_list(text, size, &page, err, sizeof(err)) == GATEWAY_OK) {
		for (size_t i = 0; i < page.n; i++) {
			total += strlen(page.items[i].invoice_id) + strlen(page.items[i].status);
			if (page.items[i].invoice_id[0] == '\0')
				abort();
		}
		(void)total;
		gateway_page_release(&page);
	} else if (page.json != NULL || page.items != NULL) {
		abort(); /* a refused body leaves nothing to release */
	}
	gateway_body_reason(text, size, err, sizeof(err));
	if (strlen(err) >= sizeof(err))
		abort();
	/* The first line as a Retry-After value. */
	nl = memchr(text, '\n', size);
	if (nl)
		*nl = '\0';
	if (gateway_retry_after(text, 1700000000) < -1)
		abort();
	(void)gateway_wib_time(text);
	/* Only unreserved bytes and %XX, at most three bytes per byte. */
	enc = gateway_uriencode(text);
	if (strlen(enc) > 3 * strlen(text) ||
	    strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                "0123456789-._~%") != strlen(enc))
		abort();
	free(enc);
	free(text);
	return 0;
}
