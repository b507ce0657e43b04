/* test_cidr.c: CIDR list parsing and matching, table-driven. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"

struct parse_case {
	const char *text;
	const char *want; /* cidr_list_format() of the result, or NULL for an error */
	const char *err;  /* the error, when want is NULL */
};

static const struct parse_case parse_cases[] = {
    {"", "", NULL},
    {"   ", "", NULL},
    {"127.0.0.1/32, ::1/128", "127.0.0.1/32, ::1/128", NULL},
    {"10.0.0.0/8", "10.0.0.0/8", NULL},
    {"192.168.1.5", "192.168.1.5/32", NULL},
    {"::1", "::1/128", NULL},
    {"  10.1.2.3/8 ,\t2001:db8::1/32  ", "10.0.0.0/8, 2001:db8::/32", NULL},
    {"192.168.1.5/24", "192.168.1.0/24", NULL},
    {"10.255.255.255/9", "10.128.0.0/9", NULL},
    {"0.0.0.0/0,::/0", "0.0.0.0/0, ::/0", NULL},
    {"1.2.3.4/0", "0.0.0.0/0", NULL},
    {"fe80::1:2:3:4/67", "fe80::/67", NULL},
    {"::ffff:10.0.0.1/120", "::ffff:10.0.0.0/120", NULL},
    {"10.0.0.0/33", NULL, "10.0.0.0/33: prefix must be between 0 and 32"},
    {"::/129", NULL, "::/129: prefix must be between 0 and 128"},
    {"10.0.0.0/", NULL, "10.0.0.0/: prefix must be between 0 and 32"},
    {"10.0.0.0/-1", NULL, "10.0.0.0/-1: prefix must be between 0 and 32"},
    {"10.0.0.0/+8", NULL, "10.0.0.0/+8: prefix must be between 0 and 32"},
    {"10.0.0.0/0008", NULL, "10.0.0.0/0008: prefix must be between 0 and 32"},
    {"10.0.0.0/8/8", NULL, "10.0.0.0/8/8: prefix must be between 0 and 32"},
    {"10.0.0.256", NULL, "10.0.0.256: not an IPv4 or IPv6 address"},
    {"10.1", NULL, "10.1: not an IPv4 or IPv6 address"},
    {"010.0.0.1", NULL, "010.0.0.1: not an IPv4 or IPv6 address"},
    {"localhost", NULL, "localhost: not an IPv4 or IPv6 address"},
    {"fe80::1%eth0", NULL, "fe80::1%eth0: not an IPv4 or IPv6 address"},
    {"[::1]", NULL, "[::1]: not an IPv4 or IPv6 address"},
    {"10.0.0.1 10.0.0.2", NULL, "10.0.0.1 10.0.0.2: not an IPv4 or IPv6 address"},
    {"10.0.0.1,", NULL, "empty entry in list"},
    {",10.0.0.1", NULL, "empty entry in list"},
    {"10.0.0.1,,10.0.0.2", NULL, "empty entry in list"},
    {"127.0.0.1, bogus", NULL, "bogus: not an IPv4 or IPv6 address"},
    {"1111:2222:3333:4444:5555:6666:7777:8888:9999/128", NULL,
     "1111:2222:3333:4444:5555:6666:7777:8888:9999/128: not an IPv4 or IPv6 address"},
};

static void test_parse(void **state)
{
	size_t failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct cidr_list l = {NULL, 7};
		const char *err = NULL;
		char buf[512];
		int rc = cidr_list_parse(&l, c->text, &err);

		if (c->want != NULL) {
			cidr_list_format(&l, buf, sizeof(buf));
			if (rc != 0 || strcmp(buf, c->want) != 0) {
				print_error("'%s': rc %d, got '%s' (%s), want '%s'\n", c->text, rc,
				            rc == 0 ? buf : "", rc == 0 ? "" : err, c->want);
				failures++;
			}
		} else if (rc == 0 || l.n != 0 || l.v != NULL || strcmp(err, c->err) != 0) {
			print_error("'%s': rc %d, err '%s', want '%s'\n", c->text, rc,
			            rc == 0 ? "" : err, c->err);
			failures++;
		}
		cidr_list_free(&l);
	}
	assert_int_equal(failures, 0);
}

static void test_parse_one(void **state)
{
	struct cidr c;
	const char *err = NULL;

	(void)state;
	assert_int_equal(cidr_parse(&c, "192.0.2.1/24", &err), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 24);
	assert_int_equal(c.addr[0], 192);
	assert_int_equal(c.addr[3], 0);
	assert_int_equal(cidr_parse(&c, "2001:db8::/32", &err), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(cidr_parse(&c, "", &err), -1);
	assert_string_equal(err, "empty entry");
}

struct match_case {
	const char *list;
	const char *addr;
	bool want;
};

static const struct match_case match_cases[] = {
    {"127.0.0.1/32, ::1/128", "127.0.0.1", true},
    {"127.0.0.1/32, ::1/128", "::1", true},
    {"127.0.0.1/32, ::1/128", "127.0.0.2", false},
    {"127.0.0.1/32, ::1/128", "::2", false},
    {"127.0.0.1/32", "::ffff:127.0.0.1", true}, /* v4-mapped matches v4 */
    {"127.0.0.1/32", "::FFFF:127.0.0.1", true},
    {"10.0.0.0/8", "::ffff:10.200.0.1", true},
    {"10.0.0.0/8", "::ffff:11.0.0.1", false},
    {"10.0.0.0/8", "::10.0.0.1", false},       /* v4-compatible is not mapped */
    {"::ffff:0:0/96", "::ffff:1.2.3.4", true}, /* and the v6 entry still applies */
    {"::ffff:0:0/96", "1.2.3.4", false},       /* a plain v4 client is not v6 */
    {"::/0", "1.2.3.4", false},
    {"0.0.0.0/0", "1.2.3.4", true},
    {"0.0.0.0/0", "2001:db8::1", false},
    {"::/0", "2001:db8::1", true},
    {"192.168.0.0/23", "192.168.1.255", true},
    {"192.168.0.0/23", "192.168.2.0", false},
    {"192.168.1.128/25", "192.168.1.127", false},
    {"192.168.1.128/25", "192.168.1.128", true},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"fe80::/10", "febf::1", true},
    {"fe80::/10", "fec0::1", false},
    {"203.0.113.9", "203.0.113.9", true},
    {"203.0.113.9", "203.0.113.8", false},
    {"", "127.0.0.1", false}, /* empty matches nothing */
    {"127.0.0.1", "", false},
    {"127.0.0.1", "127.0.0.1:80", false},
    {"::1", "[::1]", false},
    {"127.0.0.1", "localhost", false},
};

static void test_match(void **state)
{
	size_t failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct cidr_list l;
		const char *err;

		assert_int_equal(cidr_list_parse(&l, c->list, &err), 0);
		if (cidr_list_match(&l, c->addr) != c->want) {
			print_error("'%s' in '%s': want %s\n", c->addr, c->list,
			            c->want ? "true" : "false");
			failures++;
		}
		cidr_list_free(&l);
	}
	assert_int_equal(failures, 0);
	assert_false(cidr_list_match(NULL, "127.0.0.1"));
}

static void test_addr_valid(void **state)
{
	(void)state;
	assert_true(cidr_addr_valid("127.0.0.1"));
	assert_true(cidr_addr_valid("::1"));
	assert_true(cidr_addr_valid("::ffff:1.2.3.4"));
	assert_false(cidr_addr_valid(NULL));
	assert_false(cidr_addr_valid(""));
	assert_false(cidr_addr_valid("1.2.3"));
	assert_false(cidr_addr_valid("1.2.3.4/32"));
	assert_false(cidr_addr_valid(" 1.2.3.4"));
	assert_false(cidr_addr_valid("example.com"));
}

static void test_format_truncates(void **state)
{
	struct cidr_list l;
	const char *err;
	char buf[12];

	(void)state;
	assert_int_equal(cidr_list_parse(&l, "10.0.0.0/8, 192.168.0.0/16", &err), 0);
	cidr_list_format(&l, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.0/8,");
	cidr_list_format(&l, buf, 1);
	assert_string_equal(buf, "");
	cidr_list_free(&l);
	cidr_list_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_one),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_addr_valid),
	    cmocka_unit_test(test_format_truncates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
