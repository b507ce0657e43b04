/*
 * jsonw.h: a JSON object written straight into one growing buffer. Building
 * a cJSON tree only to print it again costs more than parsing the input did;
 * this writes each value once. Strings are made safe for PostgreSQL's text
 * and jsonb on the way: invalid UTF-8 and NUL become U+FFFD. Allocation
 * aborts on out-of-memory (xmalloc.h).
 */
#ifndef BAYARHOOK_JSONW_H
#define BAYARHOOK_JSONW_H

#include <stdbool.h>
#include <stddef.h>

struct jsonw {
	char *buf;
	size_t len, cap;
	bool failed; /* set by a caller to discard the text: finish/take return NULL */
	bool first;  /* no member written yet in the open object */
};

/* Starts a buffer holding "{". */
void jsonw_begin(struct jsonw *w);
/* "key":"value" (value of n bytes, escaped and sanitized); NULL writes nothing. */
void jsonw_str(struct jsonw *w, const char *key, const char *val, size_t n);
/* As jsonw_str for a NUL-terminated value. */
void jsonw_cstr(struct jsonw *w, const char *key, const char *val);
void jsonw_int(struct jsonw *w, const char *key, long long v);
void jsonw_bool(struct jsonw *w, const char *key, bool v);
/* "key":raw, where raw is valid JSON text already. */
void jsonw_raw(struct jsonw *w, const char *key, const char *raw, size_t n);
/* "key":{ ... jsonw_end_object() closes it. */
void jsonw_begin_object(struct jsonw *w, const char *key);
void jsonw_end_object(struct jsonw *w);
/* "key":[ ... (elements written with key NULL); jsonw_end_list() closes it. */
void jsonw_begin_list(struct jsonw *w, const char *key);
void jsonw_end_list(struct jsonw *w);
/*
 * Starts a buffer holding "[" instead: the writers above then take key NULL
 * and write array elements; jsonw_finish_array() closes it.
 */
void jsonw_begin_array(struct jsonw *w);
char *jsonw_finish_array(struct jsonw *w);
/* Appends bytes as they are (for joining objects). */
void jsonw_put(struct jsonw *w, const char *s, size_t n);
/* Closes the object; returns the text (caller frees), or NULL when failed was set. */
char *jsonw_finish(struct jsonw *w);
/* Returns the text written so far, unclosed (caller frees), or NULL when failed. */
char *jsonw_take(struct jsonw *w);

#endif
