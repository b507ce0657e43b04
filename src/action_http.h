/*
 * action_http.h: the http action (SPEC §9): a templated request to any
 * JSON API (a shop's REST API, a chat notification), with secret headers
 * from a file and the job's Idempotency-Key.
 */
#ifndef BAYARHOOK_ACTION_HTTP_H
#define BAYARHOOK_ACTION_HTTP_H

#include <stdbool.h>
#include <stddef.h>

extern const struct action_ops action_http_ops;

/* How a template's {field} values are escaped. */
enum http_escape {
	HTTP_ESCAPE_URL,  /* percent-encoded: everything but A-Z a-z 0-9 - . _ ~ */
	HTTP_ESCAPE_JSON, /* the inside of a JSON string: " \ and control bytes escaped */
};

struct action;
struct config;
struct http_client;

/*
 * For forward and http: *out an action's own client trusting ca_file (a
 * relative name from the config file's directory) on top of the system
 * store; NULL when ca_file is NULL or the action is only checked. A file
 * that cannot be opened is a config error: -1 with "ca_file: ..." in err.
 */
int action_http_ca_client(struct action *a, const struct config *cfg, const char *ca_file,
                          struct http_client **out, char *err, size_t errlen);

typedef const char *(*http_template_lookup_fn)(void *arg, const char *name);

/*
 * A template's placeholders are {name} with name from A-Z a-z 0-9 _; any
 * other brace is literal text, so a JSON body keeps its own braces. Checks
 * that every name is one bayar.gg sends or a job value (bayarhook_*):
 * 0, or -1 with "unknown field NAME" in err.
 */
int action_http_template_check(const char *tmpl, char *err, size_t errlen);
/* The template with each {name} replaced by lookup's value, escaped; malloc'd. */
char *action_http_template_expand(const char *tmpl, enum http_escape esc,
                                  http_template_lookup_fn lookup, void *arg);

struct action_result;
struct http_client_resp;
/*
 * res for the answer of a forward or http action (SPEC §5, §7): 2xx
 * succeeds; a timeout is a timeout; 400, 401, 403, 404, 410 and 422 fail for
 * good (the request itself is wrong or unwelcome); anything else is retried.
 * output is capped at output_max. A transport error is copied into msg.
 * Returns true for a non-2xx answer, whose msg the caller writes (saying
 * what it called without leaking a token); res->error points at msg.
 */
bool action_http_result(struct action_result *res, const struct http_client_resp *resp,
                        size_t output_max, char *msg, size_t msglen);

#endif
