/*
 * admin_int.h: what admin.c (listener, routes, auth), admin_summary.c (the
 * queries) and admin_page.c (the HTML) share. Not for other modules.
 */
#ifndef BAYARHOOK_ADMIN_INT_H
#define BAYARHOOK_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

/* Dead, held and flagged rows listed at most; the counts say how many there are. */
#define ADMIN_LIST_MAX 50
/* PostgreSQL cancels a status query running longer (statement_timeout, ms). */
#define ADMIN_STATEMENT_TIMEOUT_MS 2000
/* A page or a retry that has no answer from the database by then says it is down. */
#define ADMIN_FETCH_TIMEOUT_MS 3000
/* While the first connection is made at start, a page looks for it this often (ms). */
#define ADMIN_CONNECT_POLL_MS 100
/* Pages waiting for a summary at most; more are answered 503 at once. */
#define ADMIN_FETCH_MAX 64
/* A summary younger than this is shown again rather than asked for again (ms). */
#define ADMIN_CACHE_MS 5000
/* The hex of an HMAC-SHA256: a CSRF token. */
#define ADMIN_CSRF_LEN 64

/*
 * What the page shows. With the database up, data is the object
 * /api/summary shows beside "database" (see README "Status page");
 * otherwise data is NULL and why says what went wrong.
 */
struct admin_summary {
	bool db_up;
	const char *why;
	const cJSON *data;
};

struct admin_db;
typedef void (*admin_summary_cb)(const struct admin_summary *s, void *arg);
/* Retrying a job: what job_retry() said. */
enum admin_retry_outcome {
	ADMIN_RETRY_QUEUED,   /* the job is pending again */
	ADMIN_RETRY_NOT_DEAD, /* it exists but is not dead or pending (was: its state) */
	ADMIN_RETRY_NO_JOB,   /* no such job */
	ADMIN_RETRY_DB_DOWN,  /* the database did not answer */
};
typedef void (*admin_retry_cb)(enum admin_retry_outcome o, const char *was, void *arg);

/* admin_summary.c: the status connection. */
struct admin_db *admin_db_new(struct event_base *base, const char *conninfo);
/*
 * Calls cb with a summary (one at most ADMIN_CACHE_MS old, or the one
 * under way), always from the loop, within about ADMIN_FETCH_TIMEOUT_MS.
 * Returns -1 (cb never called) when ADMIN_FETCH_MAX are already waiting.
 */
int admin_summary_get(struct admin_db *db, admin_summary_cb cb, void *arg);
/* Requeues dead job job_id (digits) like `bayarhook retry`; cb always from the loop. */
void admin_retry(struct admin_db *db, const char *job_id, admin_retry_cb cb, void *arg);
/* Every pending summary and retry gets its callback (database down); then frees. */
void admin_db_free(struct admin_db *db);
/* /api/summary's text: {"database":"up", ...data} or {"database":"down","error":...}. */
char *admin_summary_json(const struct admin_summary *s);

/* admin_page.c */
/* Hex HMAC-SHA256 of data under key. */
void admin_mac_hex(const unsigned char *key, size_t keylen, const char *data,
                   char out[ADMIN_CSRF_LEN + 1]);
/* The CSRF token of a retry of job_id: hex HMAC-SHA256 under the process's key. */
void admin_csrf_token(const unsigned char *key, size_t keylen, const char *job_id,
                      char out[ADMIN_CSRF_LEN + 1]);
/* The whole HTML page (caller frees); *len its length. */
char *admin_page_render(const struct admin_summary *s, const unsigned char *key, size_t keylen,
                        const char *notice, size_t *len);

#endif
