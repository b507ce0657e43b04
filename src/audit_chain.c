/*
 * audit_chain.c: the lanes of one writing process (see audit_chain.h).
 */
#include "audit_chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>

#include "log.h"
#include "xmalloc.h"

#define PARAM_HEAD (8 + 8 + AUDIT_MAC_LEN) /* lane, next seq, head mac */

enum lane_state {
	LANE_FREE, /* an unused slot (slots never move: a batch in flight keeps its number) */
	LANE_IDLE, /* its head is known: the next batch may take it */
	LANE_BUSY, /* a batch is in flight on it */
	LANE_DONE, /* ended (key changed while busy): dropped when its batch ends */
};

struct lane {
	int64_t id;
	int64_t next_seq;                  /* the lane_seq its next row gets; 1: no row yet */
	unsigned char head[AUDIT_MAC_LEN]; /* its last row's mac; zeros before the first */
	enum lane_state state;
};

struct audit_chain {
	bool enabled;
	struct audit_key key;
	struct lane *lanes;
	size_t nlanes;
};

struct audit_chain *audit_chain_new(void)
{
	return xcalloc(1, sizeof(struct audit_chain));
}

void audit_chain_free(struct audit_chain *c)
{
	if (c == NULL)
		return;
	OPENSSL_cleanse(&c->key, sizeof(c->key));
	free(c->lanes);
	free(c);
}

bool audit_chain_enabled(const struct audit_chain *c)
{
	return c->enabled;
}

static void lane_log(const struct lane *l, const char *why)
{
	char hex[2 * AUDIT_MAC_LEN + 1];

	if (l->next_seq <= 1)
		return;
	audit_mac_hex(l->head, hex);
	log_notice("audit checkpoint (%s) lane=%lld seq=%lld mac=%s checkpoint=%lld:%lld:%s", why,
	           (long long)l->id, (long long)(l->next_seq - 1), hex, (long long)l->id,
	           (long long)(l->next_seq - 1), hex);
}

static void lane_remove(struct audit_chain *c, size_t i)
{
	c->lanes[i].state = LANE_FREE;
}

void audit_chain_set_key(struct audit_chain *c, const char *key)
{
	struct audit_key k;

	if (key != NULL)
		audit_key_init(&k, key, strlen(key));
	if (c->enabled == (key != NULL) &&
	    (key == NULL || CRYPTO_memcmp(&k, &c->key, sizeof(k)) == 0)) {
		OPENSSL_cleanse(&k, sizeof(k));
		return;
	}
	for (size_t i = 0; i < c->nlanes; i++) {
		if (c->lanes[i].state == LANE_FREE)
			continue;
		lane_log(&c->lanes[i], "key changed, lane ended");
		if (c->lanes[i].state == LANE_BUSY)
			c->lanes[i].state = LANE_DONE;
		else
			lane_remove(c, i);
	}
	c->enabled = key != NULL;
	if (key != NULL) {
		c->key = k;
		OPENSSL_cleanse(&k, sizeof(k));
	} else {
		OPENSSL_cleanse(&c->key, sizeof(c->key));
	}
}

/* A random positive 63-bit lane id: two processes never pick the same lane. */
static int64_t lane_new_id(void)
{
	uint64_t r = 0;

	while (r == 0) {
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
			/* getrandom without GRND_NONBLOCK blocks only before boot-time seeding. */
			log_errx("audit: getrandom failed; lane id from the clock");
			r = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&r;
		}
		r &= INT64_MAX;
	}
	return (int64_t)r;
}

static void put_be64(unsigned char *p, int64_t v)
{
	uint64_t u = (uint64_t)v;

	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)u;
		u >>= 8;
	}
}

int audit_chain_begin(struct audit_chain *c, int n, unsigned char **param, size_t *len)
{
	struct lane *l = NULL;
	unsigned char *p;
	size_t slot;

	*param = NULL;
	*len = 0;
	if (!c->enabled)
		return -1;
	for (slot = 0; slot < c->nlanes; slot++)
		if (c->lanes[slot].state == LANE_IDLE)
			break;
	if (slot == c->nlanes) {
		for (slot = 0; slot < c->nlanes; slot++)
			if (c->lanes[slot].state == LANE_FREE)
				break;
		if (slot == c->nlanes)
			c->lanes = xreallocarray(c->lanes, ++c->nlanes, sizeof(*c->lanes));
		l = &c->lanes[slot];
		memset(l, 0, sizeof(*l));
		l->id = lane_new_id();
		l->next_seq = 1;
		log_info("audit: lane %lld started", (long long)l->id);
	}
	l = &c->lanes[slot];
	l->state = LANE_BUSY;
	*len = PARAM_HEAD + (size_t)n * AUDIT_PADS_LEN;
	p = xmalloc(*len);
	put_be64(p, l->id);
	put_be64(p + 8, l->next_seq);
	memcpy(p + 16, l->head, AUDIT_MAC_LEN);
	for (int i = 0; i < n; i++)
		audit_row_pads(&c->key, l->id, l->next_seq + i,
		               p + PARAM_HEAD + (size_t)i * AUDIT_PADS_LEN);
	*param = p;
	return (int)slot;
}

static struct lane *lane_at(struct audit_chain *c, int slot)
{
	if (slot < 0 || (size_t)slot >= c->nlanes || c->lanes[slot].state == LANE_FREE)
		return NULL;
	return &c->lanes[slot];
}

void audit_chain_committed(struct audit_chain *c, int slot, int64_t last_seq,
                           const unsigned char last_mac[AUDIT_MAC_LEN])
{
	struct lane *l = lane_at(c, slot);

	if (l == NULL)
		return;
	if (last_seq > 0) {
		l->next_seq = last_seq + 1;
		memcpy(l->head, last_mac, AUDIT_MAC_LEN);
	}
	if (l->state == LANE_DONE) {
		lane_log(l, "key changed, lane ended");
		lane_remove(c, (size_t)slot);
		return;
	}
	l->state = LANE_IDLE;
}

void audit_chain_failed(struct audit_chain *c, int slot, bool certain)
{
	struct lane *l = lane_at(c, slot);

	if (l == NULL)
		return;
	if (!certain)
		log_warnx("audit: lane %lld ended: a batch's commit outcome is unknown; the next "
		          "batch starts a new lane",
		          (long long)l->id);
	if (!certain || l->state == LANE_DONE) {
		lane_log(l, "lane ended");
		lane_remove(c, (size_t)slot);
		return;
	}
	l->state = LANE_IDLE;
}

void audit_chain_checkpoint(const struct audit_chain *c, const char *why)
{
	for (size_t i = 0; i < c->nlanes; i++)
		if (c->lanes[i].state != LANE_FREE)
			lane_log(&c->lanes[i], why);
}
