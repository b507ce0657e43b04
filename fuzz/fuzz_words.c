/*
 * fuzz_words.c: libFuzzer target for the exec command splitter and
 * placeholder substitution. Besides memory safety it checks three
 * properties:
 *   - re-quoting the words with '...' and splitting again gives them back;
 *   - words_fields and words_expand agree on what is valid;
 *   - expansion keeps the number of words (values are never re-split).
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     src/lib/words.c fuzz/fuzz_words.c -o fuzz_words
 * ./fuzz_words fuzz/corpus/words
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "words.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every field exists; its value is full of quoting hazards and braces. */
static const char *lookup_all(void *arg, const char *name)
{
	(void)arg;
	return name[0] == 'a' ? "" : "v a'l\"u\\e {x} $(id) ;|";
}

static const char *lookup_none(void *arg, const char *name)
{
	(void)arg;
	(void)name;
	return NULL;
}

/* Joins words as '...' with ' -> '\'' so that sh (and we) read them back. */
static char *requote(char **words)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; words[i] != NULL; i++)
		len += 3 + 4 * strlen(words[i]);
	s = malloc(len);
	if (s == NULL)
		return NULL;
	p = s;
	for (size_t i = 0; words[i] != NULL; i++) {
		if (i > 0)
			*p++ = ' ';
		*p++ = '\'';
		for (const char *c = words[i]; *c != '\0'; c++) {
			if (*c == '\'') {
				memcpy(p, "'\\''", 4);
				p += 4;
			} else {
				*p++ = *c;
			}
		}
		*p++ = '\'';
	}
	*p = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *cmd, *again;
	char **words = NULL, **words2 = NULL, **names = NULL, **argv = NULL;
	size_t n = 0, n2 = 0;
	int rf, re;

	if (size > 65536)
		return 0;
	cmd = malloc(size + 1);
	if (cmd == NULL)
		return 0;
	memcpy(cmd, data, size);
	cmd[size] = '\0';

	if (words_split(cmd, &words, err, sizeof(err)) != 0) {
		if (words != NULL || err[0] == '\0')
			abort();
		free(cmd);
		return 0;
	}
	while (words[n] != NULL)
		n++;
	if (n == 0)
		abort();

	again = requote(words);
	if (again != NULL) {
		if (words_split(again, &words2, err, sizeof(err)) != 0)
			abort();
		while (words2[n2] != NULL) {
			if (n2 >= n || strcmp(words[n2], words2[n2]) != 0)
				abort();
			n2++;
		}
		if (n2 != n)
			abort();
		words_free(words2);
		free(again);
	}

	rf = words_fields(words, &names, err, sizeof(err));
	re = words_expand(words, lookup_all, NULL, &argv, err, sizeof(err));
	if (rf != re)
		abort();
	if (re == 0) {
		size_t na = 0;

		while (argv[na] != NULL)
			na++;
		if (na != n)
			abort();
		/* Without placeholders the words pass through, braces unescaped only. */
		if (names[0] == NULL) {
			char **none = NULL;

			if (words_expand(words, lookup_none, NULL, &none, err, sizeof(err)) != 0)
				abort();
			words_free(none);
		} else {
			char **none = NULL;

			if (words_expand(words, lookup_none, NULL, &none, err, sizeof(err)) != -1 ||
			    strncmp(err, "unknown field: ", 15) != 0)
				abort();
		}
	}
	words_free(names);
	words_free(argv);
	words_free(words);
	free(cmd);
	return 0;
}
