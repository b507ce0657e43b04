/*
 * audit_limit.c: the policy of audit_limit.h. Both tables are
 * set-associative with a fixed number of entries: a lookup hashes to one
 * set of AUDIT_TABLE_WAYS entries and, when the key is not there, reuses
 * the least recently used one. An attacker with many addresses can thus
 * push entries out (their counts go to the metric) but never grow memory
 * or the work per request.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>

#include "audit_limit.h"
#include "utf8.h"
#include "xmalloc.h"

struct bucket {
	double tokens;
	int64_t at_ms; /* when tokens was last brought up to date */
};

struct client {
	bool used;
	char addr[AUDIT_ADDR_MAX];
	int64_t last_ms;
	struct bucket b;
	uint64_t suppressed; /* refusals without a row since this client's last row */
};

struct key {
	bool used;
	char addr[AUDIT_ADDR_MAX];
	int verdict;
	unsigned char sha[32];
	int64_t last_ms;
	int64_t start_ms; /* when this key's last row (or suppression) began a window */
	uint32_t pending; /* identical refusals since, folded into the key's next row */
	char *held;       /* that row's item (audit_limit_hold), or NULL */
	char *held_body;
	size_t held_body_len;
};

struct audit_limit {
	struct bucket global;
	struct client clients[AUDIT_TABLE_SETS * AUDIT_TABLE_WAYS];
	struct key keys[AUDIT_TABLE_SETS * AUDIT_TABLE_WAYS];
};

struct audit_limit *audit_limit_new(void)
{
	struct audit_limit *al = xcalloc(1, sizeof(*al));

	al->global.tokens = AUDIT_GLOBAL_BURST;
	al->global.at_ms = INT64_MIN;
	return al;
}

static void key_release(struct key *k)
{
	free(k->held);
	free(k->held_body);
	k->held = k->held_body = NULL;
	k->held_body_len = 0;
}

void audit_limit_free(struct audit_limit *al)
{
	if (al == NULL)
		return;
	for (size_t i = 0; i < sizeof(al->keys) / sizeof(al->keys[0]); i++)
		key_release(&al->keys[i]);
	free(al);
}

static void bucket_refill(struct bucket *b, int64_t now_ms, double rate, double burst)
{
	/* INT64_MIN: a new bucket, full; a clock that went back refills nothing. */
	if (b->at_ms != INT64_MIN && now_ms > b->at_ms)
		b->tokens += (double)(now_ms - b->at_ms) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	if (b->at_ms == INT64_MIN || now_ms > b->at_ms)
		b->at_ms = now_ms;
}

/* FNV-1a: cheap and spread enough for a set index; the entries compare in full. */
static uint32_t hash_bytes(uint32_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

static void addr_copy(char dst[AUDIT_ADDR_MAX], const char *addr)
{
	memset(dst, 0, AUDIT_ADDR_MAX);
	strncpy(dst, addr ? addr : "", AUDIT_ADDR_MAX - 1);
}

static struct client *client_find(struct audit_limit *al, const char addr[AUDIT_ADDR_MAX],
                                  int64_t now_ms)
{
	size_t set = hash_bytes(2166136261u, addr, AUDIT_ADDR_MAX) % AUDIT_TABLE_SETS;
	struct client *c = &al->clients[set * AUDIT_TABLE_WAYS], *victim = c;

	for (int i = 0; i < AUDIT_TABLE_WAYS; i++) {
		if (c[i].used && memcmp(c[i].addr, addr, AUDIT_ADDR_MAX) == 0) {
			c[i].last_ms = now_ms;
			return &c[i];
		}
		if (!c[i].used || (victim->used && c[i].last_ms < victim->last_ms))
			victim = &c[i];
	}
	/* A forgotten client's suppressed count is already in the metric. */
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	memcpy(victim->addr, addr, AUDIT_ADDR_MAX);
	victim->last_ms = now_ms;
	victim->b.tokens = AUDIT_CLIENT_BURST;
	victim->b.at_ms = INT64_MIN;
	return victim;
}

/* The key's entry, or a reused one (found false) after counting what it held. */
static struct key *key_find(struct audit_limit *al, const char addr[AUDIT_ADDR_MAX], int verdict,
                            const unsigned char sha[32], int64_t now_ms, bool *found,
                            struct audit_ticket *t)
{
	uint32_t h = hash_bytes(2166136261u, addr, AUDIT_ADDR_MAX);
	size_t set;
	struct key *k, *victim;

	h = hash_bytes(h, &verdict, sizeof(verdict));
	set = hash_bytes(h, sha, 32) % AUDIT_TABLE_SETS;
	k = &al->keys[set * AUDIT_TABLE_WAYS];
	victim = k;
	for (int i = 0; i < AUDIT_TABLE_WAYS; i++) {
		if (k[i].used && k[i].verdict == verdict && memcmp(k[i].sha, sha, 32) == 0 &&
		    memcmp(k[i].addr, addr, AUDIT_ADDR_MAX) == 0) {
			k[i].last_ms = now_ms;
			*found = true;
			return &k[i];
		}
		if (!k[i].used || (victim->used && k[i].last_ms < victim->last_ms))
			victim = &k[i];
	}
	/*
	 * Collapsed refusals waiting for their key's next row lose it: they
	 * become suppressed, in the metric now and, while the client is still
	 * known, in its next row.
	 */
	if (victim->used && victim->pending > 0) {
		struct client *owner = client_find(al, victim->addr, now_ms);

		owner->suppressed += victim->pending;
		t->dropped += victim->pending;
	}
	key_release(victim);
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	memcpy(victim->addr, addr, AUDIT_ADDR_MAX);
	victim->verdict = verdict;
	memcpy(victim->sha, sha, 32);
	victim->last_ms = now_ms;
	*found = false;
	return victim;
}

/*
 * A row for stands_for refusals of client c, if the token buckets allow
 * it; else they are suppressed (the client's next row and the metric).
 */
static void row_or_suppress(struct audit_limit *al, struct client *c, int64_t now_ms,
                            uint32_t stands_for, struct audit_ticket *t)
{
	bucket_refill(&al->global, now_ms, AUDIT_GLOBAL_RATE, AUDIT_GLOBAL_BURST);
	bucket_refill(&c->b, now_ms, AUDIT_CLIENT_RATE, AUDIT_CLIENT_BURST);
	if (al->global.tokens < 1 || c->b.tokens < 1) {
		c->suppressed += stands_for;
		t->dropped += stands_for;
		return;
	}
	al->global.tokens -= 1;
	c->b.tokens -= 1;
	t->write = true;
	t->repeat = stands_for;
	t->suppressed = c->suppressed;
	c->suppressed = 0;
}

void audit_limit_admit(struct audit_limit *al, int64_t now_ms, const char *addr, int verdict,
                       const unsigned char sha256[32], struct audit_ticket *t)
{
	char a[AUDIT_ADDR_MAX];
	struct client *c;
	struct key *k;
	bool found;
	uint32_t stands_for;

	memset(t, 0, sizeof(*t));
	addr_copy(a, addr);
	k = key_find(al, a, verdict, sha256, now_ms, &found, t);
	if (found && now_ms - k->start_ms < AUDIT_COLLAPSE_MS) {
		/* The same refusal again within the window: a count, no row yet. */
		if (k->pending < UINT32_MAX - 1)
			k->pending++;
		if (k->held == NULL) {
			t->hold = true;
			t->slot = (unsigned)(k - al->keys);
		}
		return;
	}
	/* Looked up after the key: its eviction may have reused a client entry. */
	c = client_find(al, a, now_ms);
	stands_for = 1 + (found ? k->pending : 0);
	k->start_ms = now_ms;
	k->pending = 0;
	key_release(k); /* this row stands for the collapsed ones */
	row_or_suppress(al, c, now_ms, stands_for, t);
}

void audit_limit_hold(struct audit_limit *al, const struct audit_ticket *t, char *item, char *body,
                      size_t body_len)
{
	struct key *k =
	    t->slot < sizeof(al->keys) / sizeof(al->keys[0]) ? &al->keys[t->slot] : NULL;

	if (k == NULL || !k->used || k->pending == 0 || k->held != NULL) {
		free(item);
		free(body);
		return;
	}
	k->held = item;
	k->held_body = body;
	k->held_body_len = body_len;
}

void audit_limit_expire(struct audit_limit *al, int64_t now_ms, bool all,
                        void (*done)(void *arg, const struct audit_ticket *t, char *item,
                                     char *body, size_t body_len),
                        void *arg)
{
	for (size_t i = 0; i < sizeof(al->keys) / sizeof(al->keys[0]); i++) {
		struct key *k = &al->keys[i];
		struct audit_ticket t = {0};
		struct client *c;
		char *item, *body;
		size_t body_len;

		if (!k->used || k->pending == 0 ||
		    (!all && now_ms - k->start_ms < AUDIT_COLLAPSE_MS))
			continue;
		c = client_find(al, k->addr, now_ms);
		if (k->held != NULL) {
			row_or_suppress(al, c, now_ms, k->pending, &t);
		} else {
			/* Nothing to write it with (the caller held no item): kept out. */
			c->suppressed += k->pending;
			t.dropped = k->pending;
		}
		/* A new window: identical refusals from now on are counted afresh. */
		k->start_ms = now_ms;
		k->pending = 0;
		item = k->held;
		body = k->held_body;
		body_len = k->held_body_len;
		k->held = k->held_body = NULL;
		k->held_body_len = 0;
		done(arg, &t, item, body, body_len);
	}
}

/* Length of the valid UTF-8 character at s[0..n) other than NUL, or 0. */
static size_t char_len(const char *s, size_t n)
{
	unsigned char c = (unsigned char)s[0];
	size_t len = c == 0                   ? 0
	             : c < 0x80               ? 1
	             : c >= 0xc2 && c <= 0xdf ? 2
	             : c >= 0xe0 && c <= 0xef ? 3
	             : c >= 0xf0 && c <= 0xf4 ? 4
	                                      : 0;

	if (len > 1 && (len > n || !utf8_valid(s, len)))
		len = 0;
	return len;
}

size_t audit_text_prefix(const char *body, size_t len, char *out, size_t max)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t cl = char_len(body + i, len - i);
		size_t ol = cl ? cl : 3;

		if (o + ol > max)
			break;
		if (cl)
			memcpy(out + o, body + i, cl);
		else
			memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
		o += ol;
		i += cl ? cl : 1;
	}
	out[o] = '\0';
	return o;
}

/* What s costs once stored as text: invalid bytes and NUL become 3-byte U+FFFD. */
static size_t stored_len(const char *s)
{
	size_t n = strlen(s), i = 0, cost = 0;

	while (i < n) {
		size_t cl = char_len(s + i, n - i);

		cost += cl ? cl : 3;
		i += cl ? cl : 1;
	}
	return cost;
}

void audit_sha256_hex(const char *body, size_t len, unsigned char sha[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";

	SHA256((const unsigned char *)(body ? body : ""), len, sha);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[sha[i] >> 4];
		hex[2 * i + 1] = digits[sha[i] & 0xf];
	}
	hex[64] = '\0';
}

bool audit_headers_keep(struct audit_headers *h, const char *name, const char *value)
{
	size_t cost = stored_len(name ? name : "") + stored_len(value ? value : "");

	if (h->kept >= AUDIT_HEADER_COUNT || cost > AUDIT_HEADER_BYTES - h->bytes) {
		h->dropped++;
		return false;
	}
	h->kept++;
	h->bytes += cost;
	return true;
}
