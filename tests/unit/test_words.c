/* test_words.c: word splitting and {field} substitution tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "words.h"

#define MAXW 8

struct split_case {
	const char *in;
	const char *words[MAXW]; /* NULL-terminated; unused when err is set */
	const char *err;         /* expected substring of the error, or NULL */
};

static const struct split_case split_cases[] = {
    {"a b  c", {"a", "b", "c"}, NULL},
    {"  lead\tand\ntrail  ", {"lead", "and", "trail"}, NULL},
    {"/usr/local/bin/fulfill --invoice {invoice_id}",
     {"/usr/local/bin/fulfill", "--invoice", "{invoice_id}"},
     NULL},
    {"'single quoted' word", {"single quoted", "word"}, NULL},
    {"'a\\b \"c\" $x'", {"a\\b \"c\" $x"}, NULL},
    {"\"d $HOME `x` \\\" \\\\ \\$ \\`\"", {"d $HOME `x` \" \\ $ `"}, NULL},
    {"\"keep \\n \\a\"", {"keep \\n \\a"}, NULL},
    {"a\\ b c\\'d \\\"e\\\\", {"a b", "c'd", "\"e\\"}, NULL},
    {"''", {""}, NULL},
    {"x '' \"\" y", {"x", "", "", "y"}, NULL},
    {"a''b\"\"c", {"abc"}, NULL},
    {"pre'mid'\"dq\"post", {"premiddqpost"}, NULL},
    {"a;b | c && d > e < f ( g ) # h", {"a;b", "|", "c", "&&", "d", ">", "e", "<"}, NULL},
    {"$(rm -rf /) `id` ~ *", {"$(rm", "-rf", "/)", "`id`", "~", "*"}, NULL},
    {"a\\\nb c", {"ab", "c"}, NULL},
    {"\"a\\\nb\"", {"ab"}, NULL},
    {"x \\\n y", {"x", "y"}, NULL},
    {"\\", {NULL}, "trailing backslash"},
    {"abc\\", {NULL}, "trailing backslash at offset 3"},
    {"'abc", {NULL}, "unterminated single quote at offset 0"},
    {"x \"abc", {NULL}, "unterminated double quote at offset 2"},
    {"\"abc\\\"", {NULL}, "unterminated double quote"},
    {"", {NULL}, "empty command"},
    {" \t\n ", {NULL}, "empty command"},
    {"\\\n", {NULL}, "empty command"},
};

static void assert_words(char **got, const char *const *want, const char *in)
{
	size_t n = 0;

	while (want[n] != NULL) {
		if (got[n] == NULL || strcmp(got[n], want[n]) != 0)
			fail_msg("input [%s] word %zu: got [%s], want [%s]", in, n,
			         got[n] ? got[n] : "(end)", want[n]);
		n++;
	}
	if (got[n] != NULL)
		fail_msg("input [%s]: extra word [%s]", in, got[n]);
}

static void test_split_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		char **argv = (char **)0x1, err[128] = "";
		int rc = words_split(c->in, &argv, err, sizeof(err));

		if (c->err != NULL) {
			if (rc != -1)
				fail_msg("input [%s]: expected error [%s]", c->in, c->err);
			assert_null(argv);
			if (strstr(err, c->err) == NULL)
				fail_msg("input [%s]: error [%s], want [%s]", c->in, err, c->err);
			continue;
		}
		if (rc != 0)
			fail_msg("input [%s]: unexpected error [%s]", c->in, err);
		/* The operator row is longer than MAXW: compare its prefix only. */
		if (strstr(c->in, "&&") != NULL) {
			assert_string_equal(argv[8], "f");
			assert_string_equal(argv[13], "h");
			assert_null(argv[14]);
			for (size_t k = 0; k < 8; k++)
				assert_string_equal(argv[k], c->words[k]);
		} else {
			assert_words(argv, c->words, c->in);
		}
		words_free(argv);
	}
}

struct kv {
	const char *k, *v;
};

static const struct kv fields[] = {
    {"invoice_id", "PAY-admin-1234567890-ABC123"},
    {"customer_name", "John \"Q\" O'Brien"},
    {"description", "$(rm -rf /); `reboot` | cat /etc/shadow > x"},
    {"spaces", "  a  b  "},
    {"empty", ""},
    {"braces", "{invoice_id} {{ }"},
    {"final_amount", "50123"},
    {"newline", "line1\nline2"},
    {"x9_", "ok"},
};

static const char *lookup(void *arg, const char *name)
{
	(void)arg;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(fields[i].k, name) == 0)
			return fields[i].v;
	}
	return NULL;
}

struct expand_case {
	const char *cmd;
	const char *words[MAXW];
	const char *err;
};

static const struct expand_case expand_cases[] = {
    {"/bin/fulfill --invoice {invoice_id}",
     {"/bin/fulfill", "--invoice", "PAY-admin-1234567890-ABC123"},
     NULL},
    {"prog --name={customer_name}", {"prog", "--name=John \"Q\" O'Brien"}, NULL},
    {"prog {description}", {"prog", "$(rm -rf /); `reboot` | cat /etc/shadow > x"}, NULL},
    {"prog \"{description}\" '{spaces}'",
     {"prog", "$(rm -rf /); `reboot` | cat /etc/shadow > x", "  a  b  "},
     NULL},
    {"prog {spaces}", {"prog", "  a  b  "}, NULL},
    {"prog {empty} x", {"prog", "", "x"}, NULL},
    {"prog {braces}", {"prog", "{invoice_id} {{ }"}, NULL},
    {"prog {newline}", {"prog", "line1\nline2"}, NULL},
    {"prog a{final_amount}b{x9_}c{final_amount}", {"prog", "a50123bokc50123"}, NULL},
    {"prog {{literal}} {{{final_amount}}} }}{{", {"prog", "{literal}", "{50123}", "}{"}, NULL},
    {"awk '{{print $1}}'", {"awk", "{print $1}"}, NULL},
    {"{{prog}} x", {"{prog}", "x"}, NULL},
    {"prog {nope}", {NULL}, "unknown field: nope"},
    {"prog ok {invoice_id} {missing_one}", {NULL}, "unknown field: missing_one"},
    {"prog {Invoice_id}", {NULL}, "word 2: bad placeholder at offset 0"},
    {"prog {}", {NULL}, "bad placeholder"},
    {"prog x{abc", {NULL}, "bad placeholder at offset 1"},
    {"prog {a-b}", {NULL}, "bad placeholder"},
    {"prog {a b}", {NULL}, "bad placeholder"},
    {"prog a}b", {NULL}, "word 2: lone '}' at offset 1"},
    {"prog {x9_}}", {NULL}, "lone '}'"},
    {"{invoice_id} x", {NULL}, "placeholder {invoice_id} not allowed in the program name"},
    {"/usr/bin/{invoice_id}", {NULL}, "not allowed in the program name"},
};

static void test_expand_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		const struct expand_case *c = &expand_cases[i];
		char **tmpl, **argv = (char **)0x1, err[160] = "";
		int rc;

		if (words_split(c->cmd, &tmpl, err, sizeof(err)) != 0)
			fail_msg("split [%s]: %s", c->cmd, err);
		rc = words_expand(tmpl, lookup, NULL, &argv, err, sizeof(err));
		if (c->err != NULL) {
			if (rc != -1)
				fail_msg("cmd [%s]: expected error [%s]", c->cmd, c->err);
			assert_null(argv);
			if (strstr(err, c->err) == NULL)
				fail_msg("cmd [%s]: error [%s], want [%s]", c->cmd, err, c->err);
		} else {
			if (rc != 0)
				fail_msg("cmd [%s]: unexpected error [%s]", c->cmd, err);
			assert_words(argv, c->words, c->cmd);
			words_free(argv);
		}
		words_free(tmpl);
	}
}

static void test_fields(void **state)
{
	char **tmpl, **names, err[160];

	(void)state;
	assert_int_equal(
	    words_split("prog {a} {b_2} --x={a}{c} '{{d}}' {b_2}", &tmpl, err, sizeof(err)), 0);
	assert_int_equal(words_fields(tmpl, &names, err, sizeof(err)), 0);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "b_2");
	assert_string_equal(names[2], "c");
	assert_null(names[3]);
	words_free(names);
	words_free(tmpl);

	/* No placeholders: an empty set, not NULL. */
	assert_int_equal(words_split("prog plain {{x}}", &tmpl, err, sizeof(err)), 0);
	assert_int_equal(words_fields(tmpl, &names, err, sizeof(err)), 0);
	assert_non_null(names);
	assert_null(names[0]);
	words_free(names);
	words_free(tmpl);

	/* Syntax errors are found at config time, without values. */
	assert_int_equal(words_split("prog ok {a} {Bad}", &tmpl, err, sizeof(err)), 0);
	names = (char **)0x1;
	assert_int_equal(words_fields(tmpl, &names, err, sizeof(err)), -1);
	assert_null(names);
	assert_non_null(strstr(err, "word 4: bad placeholder"));
	words_free(tmpl);

	assert_int_equal(words_split("{a}", &tmpl, err, sizeof(err)), 0);
	assert_int_equal(words_fields(tmpl, &names, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "program name"));
	words_free(tmpl);
}

/* A NULL lookup knows no fields; a tiny err buffer is truncated, not overrun. */
static void test_edge(void **state)
{
	char **tmpl, **argv, err[8];

	(void)state;
	assert_int_equal(words_split("prog {a}", &tmpl, err, sizeof(err)), 0);
	assert_int_equal(words_expand(tmpl, NULL, NULL, &argv, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown");
	assert_int_equal(words_expand(tmpl, NULL, NULL, &argv, NULL, 0), -1);
	words_free(tmpl);
	words_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_table),
	    cmocka_unit_test(test_expand_table),
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_edge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
