/*
 * test_log.c: the plain stderr format of log.c (one line per event, control
 * characters escaped, key=value fields), debug gating, errno handling and
 * the JOURNAL_STREAM check. stderr is swapped for a temporary file per test.
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static int saved_stderr = -1;
static FILE *capture_file;
static char captured[16384];

static void capture_start(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written to it. */
static const char *capture_end(void)
{
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(capture_file);
	n = fread(captured, 1, sizeof(captured) - 1, capture_file);
	captured[n] = '\0';
	fclose(capture_file);
	return captured;
}

static int setup(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	unsetenv("BAYARHOOK_DEBUG");
	log_init("test", false, "BAYARHOOK_DEBUG");
	return 0;
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&re, text, 0, NULL, 0) != 0) {
		regfree(&re);
		fail_msg("\"%s\" does not match /%s/", text, pattern);
	}
	regfree(&re);
}

#define PREFIX                                                                                     \
	"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z test\\[[0-9]+\\]: "

static void test_plain_line(void **state)
{
	const char *out;

	(void)state;
	capture_start();
	log_info("listening on %s", "127.0.0.1:8080");
	out = capture_end();
	assert_matches(out, PREFIX "info: listening on 127\\.0\\.0\\.1:8080\n$");
}

static void test_one_line_per_event(void **state)
{
	static const struct {
		int prio;
		const char *msg, *want;
	} cases[] = {
	    {LOG_WARNING, "a\nb", "warning: a\\\\nb\n$"},
	    {LOG_ERR, "x\r\ny", "error: x\\\\r\\\\ny\n$"},
	    {LOG_NOTICE, "bell\a", "notice: bell\\\\x07\n$"},
	    {LOG_CRIT, "tab\there", "crit: tab\\\\there\n$"},
	};
	char pattern[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *out;

		capture_start();
		log_msg(cases[i].prio, "%s", cases[i].msg);
		out = capture_end();
		snprintf(pattern, sizeof(pattern), "%s%s", PREFIX, cases[i].want);
		assert_matches(out, pattern);
	}
}

static void test_fields(void **state)
{
	const char *const fields[] = {
	    "INVOICE=PAY-1",
	    "VERDICT=accepted",
	    "error=connection refused",
	    "EMPTY=",
	    "noequals",
	    "QUOTE=a\"b",
	    "=novalue",
	    NULL,
	};
	const char *out;

	(void)state;
	capture_start();
	log_fields(LOG_INFO, fields, "callback %s", "recorded");
	out = capture_end();
	assert_matches(out, PREFIX "info: callback recorded invoice=PAY-1 verdict=accepted "
	                           "error=\"connection refused\" empty=\"\" quote=\"a\\\\\"b\"\n$");
}

static void test_errno(void **state)
{
	const char *out;

	(void)state;
	capture_start();
	errno = ENOENT;
	log_warn("open %s", "/etc/bayarhook/receiver.conf");
	assert_int_equal(errno, ENOENT);
	out = capture_end();
	assert_matches(out, PREFIX "warning: open /etc/bayarhook/receiver\\.conf: "
	                           "No such file or directory\n$");
}

static void test_debug_gating(void **state)
{
	const char *out;

	(void)state;
	assert_false(log_debug_enabled());
	capture_start();
	log_debug("hidden");
	log_msg(LOG_DEBUG, "hidden too");
	out = capture_end();
	assert_string_equal(out, "");

	setenv("BAYARHOOK_DEBUG", "1", 1);
	log_init("test", false, "BAYARHOOK_DEBUG");
	assert_true(log_debug_enabled());
	capture_start();
	log_debug("body %d bytes", 12);
	out = capture_end();
	assert_matches(out, PREFIX "debug: body 12 bytes\n$");

	setenv("BAYARHOOK_DEBUG", "0", 1);
	log_init("test", true, "BAYARHOOK_DEBUG");
	assert_true(log_debug_enabled());
}

static void test_long_message_is_cut(void **state)
{
	static char big[20000];
	const char *out;
	size_t len;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	capture_start();
	log_info("%s", big);
	out = capture_end();
	len = strlen(out);
	assert_true(len < 8192 + 1);
	assert_string_equal(out + len - 4, "...\n");
	assert_true(strchr(out, '\n') == out + len - 1); /* one line */
}

/*
 * A JOURNAL_STREAM that names another file keeps plain lines. One that
 * names stderr selects the journal; where no journald listens (a build
 * container) the record must still reach stderr rather than vanish.
 */
static void test_journal_stream(void **state)
{
	static const char *const others[] = {"1:1", "garbage", "12:", ":34", "1:2:3", ""};
	struct stat st;
	char value[64];
	const char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		setenv("JOURNAL_STREAM", others[i], 1);
		capture_start();
		log_init("test", false, "BAYARHOOK_DEBUG");
		log_info("plain %zu", i);
		out = capture_end();
		assert_matches(out, PREFIX "info: plain [0-9]\n$");
	}

	if (access("/run/systemd/journal/socket", F_OK) == 0)
		skip(); /* a real journal would take the record */
	capture_start();
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", value, 1);
	log_init("test", false, "BAYARHOOK_DEBUG");
	log_info("fallback");
	out = capture_end();
	unsetenv("JOURNAL_STREAM");
	log_init("test", false, "BAYARHOOK_DEBUG");
	assert_matches(out, PREFIX "info: fallback\n$");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_plain_line, setup),
	    cmocka_unit_test_setup(test_one_line_per_event, setup),
	    cmocka_unit_test_setup(test_fields, setup),
	    cmocka_unit_test_setup(test_errno, setup),
	    cmocka_unit_test_setup(test_debug_gating, setup),
	    cmocka_unit_test_setup(test_long_message_is_cut, setup),
	    cmocka_unit_test_setup(test_journal_stream, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
