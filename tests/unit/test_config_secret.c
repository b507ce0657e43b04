/*
 * test_config_secret.c: the secret rules of SPEC §13 and §7 at load time:
 * a secret under 8 bytes is a "file:line: key: reason" error, one under 16
 * bytes and a secret file readable by group or others are warnings the
 * config carries for its caller to log; fingerprints; where the secrets came
 * from; the on_mismatch choice key. Fixtures go into a mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char dir[PATH_MAX];

static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX * 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static struct config *load_text(const char *text, char *err, size_t len)
{
	char path[PATH_MAX * 2];

	write_file("receiver.conf", text, 0600);
	snprintf(path, sizeof(path), "%s/receiver.conf", dir);
	return config_load(path, err, len);
}

/* The one warning of cfg that contains want; fails when none does. */
static const char *warning_with(const struct config *cfg, const char *want)
{
	for (size_t i = 0; i < cfg->nwarnings; i++)
		if (strstr(cfg->warnings[i], want) != NULL)
			return cfg->warnings[i];
	fail_msg("no warning with \"%s\" (%zu warnings)", want, cfg->nwarnings);
	return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bayarhook-test-secret-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	unsetenv("CREDENTIALS_DIRECTORY");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unsetenv("CREDENTIALS_DIRECTORY");
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_short_secret_is_an_error(void **state)
{
	char err[512], want[PATH_MAX * 2 + 200];
	struct config *cfg;

	(void)state;
	cfg = load_text("[security]\n\nwebhook_secret = 1234567\n", err, sizeof(err));
	assert_null(cfg);
	snprintf(want, sizeof(want),
	         "%s/receiver.conf:3: webhook_secret: a secret of 7 byte(s); at least 8 are "
	         "needed (16 or more advised)",
	         dir);
	assert_string_equal(err, want);
	assert_null(strstr(err, "1234567")); /* never the secret itself */

	/* In a file, any line: the file and which secret, never the value. */
	write_file("ws", "whsec_current_0123456789\nshort\n", 0600);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n", err, sizeof(err));
	assert_null(cfg);
	snprintf(want, sizeof(want),
	         "%s/receiver.conf:2: webhook_secret_file: %s/ws: secret 2: a secret of 5 byte(s)",
	         dir, dir);
	assert_non_null(strstr(err, want));
	assert_null(strstr(err, "short"));

	/* A forward's own secret obeys the same rule; the API key is bayar.gg's to choose. */
	cfg = load_text("[security]\nwebhook_secret = whsec_current_0123456789\n"
	                "[gateway]\napi_key = k\n"
	                "[action.f]\ntype = forward\nurl = http://127.0.0.1:9/x\nsecret = abc\n",
	                err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "receiver.conf:8: secret: a secret of 3 byte(s)"));
}

static void test_weak_secret_and_readable_file_warn(void **state)
{
	char err[512], want[PATH_MAX + 100];
	struct config *cfg;
	const char *w;

	(void)state;
	cfg = load_text("[security]\nwebhook_secret = 12345678\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->nwarnings, 1);
	snprintf(want, sizeof(want),
	         "%s/receiver.conf:2: webhook_secret: a secret of 8 bytes is weak; use 16 or more",
	         dir);
	assert_string_equal(cfg->warnings[0], want);
	config_free(cfg);

	write_file("ws", "whsec_current_0123456789\n", 0644);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	w = warning_with(cfg, "readable by others (mode 0644); chmod 600 it");
	assert_non_null(strstr(w, "receiver.conf:2: webhook_secret_file: "));
	assert_int_equal(cfg->nwarnings, 1);
	config_free(cfg);

	write_file("ws", "whsec_current_0123456789\n", 0640);
	write_file("key", "api-key\n", 0644); /* any *_file: the API key's too */
	cfg = load_text("[security]\nwebhook_secret_file = ws\n[gateway]\napi_key_file = key\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	warning_with(cfg, "ws is readable by its group (mode 0640)");
	warning_with(cfg, "receiver.conf:4: api_key_file: ");
	assert_int_equal(cfg->nwarnings, 2);
	config_free(cfg);

	/* 0600 and long enough: nothing to say. */
	write_file("ws", "whsec_current_0123456789\n", 0600);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n", err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->nwarnings, 0);
	assert_false(cfg->secrets_from_credentials);
	config_free(cfg);
}

static void test_fingerprints(void **state)
{
	char err[512], fps[256], fp[9];
	struct config *cfg;

	(void)state;
	config_secret_fingerprint("whsec_test_current_0123456789abcdef", fp);
	assert_string_equal(fp, "fb88de39");
	write_file("ws", "whsec_new_secret_01234\nwhsec_test_current_0123456789abcdef\n", 0600);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	config_secret_fingerprints(cfg, fps, sizeof(fps));
	assert_string_equal(fps, "9721f607, fb88de39");
	config_free(cfg);
}

static void test_secrets_from_credentials(void **state)
{
	char err[512], creds[PATH_MAX + 8];
	struct config *cfg;

	(void)state;
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	assert_int_equal(mkdir(creds, 0700), 0);
	write_file("creds/ws", "whsec_current_0123456789\n", 0400);
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_true(cfg->secrets_from_credentials);
	config_free(cfg);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_on_mismatch(void **state)
{
	char err[512];
	struct config *cfg;
	static const char base[] = "[security]\nwebhook_secret = whsec_current_0123456789\n"
	                           "[action.s]\ntype = sql\nstatement = UPDATE t SET a = 1\n";
	char text[512];

	(void)state;
	cfg = load_text(base, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->actions[0].on_mismatch, ON_MISMATCH_RETRY);
	config_free(cfg);
	snprintf(text, sizeof(text), "%son_mismatch = dead\n", base);
	cfg = load_text(text, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->actions[0].on_mismatch, ON_MISMATCH_DEAD);
	config_free(cfg);
	snprintf(text, sizeof(text), "%son_mismatch = later\n", base);
	assert_null(load_text(text, err, sizeof(err)));
	assert_non_null(strstr(err, "receiver.conf:6: on_mismatch: must be retry or dead"));
	snprintf(text, sizeof(text),
	         "[security]\nwebhook_secret = whsec_current_0123456789\n"
	         "[action.e]\ntype = exec\ncommand = /bin/true\non_mismatch = dead\n");
	assert_null(load_text(text, err, sizeof(err)));
	assert_non_null(strstr(err, "receiver.conf:6: on_mismatch: not valid for type exec"));
}

/* The VmFlags of the mapping holding addr (/proc/self/smaps), "" when none does. */
static void vmflags_of(const void *addr, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool inside = false;

	assert_non_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		} else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, len, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static void test_secrets_kept_once_outside_the_heap(void **state)
{
	char err[512], flags[256];
	struct config *cfg;
	char *kept;

	(void)state;
	write_file("ws", "whsec_current_0123456789\nwhsec_previous_0123456789\n", 0600);
	cfg = load_text("[security]\nwebhook_secret_file = ws\n"
	                "[action.f]\ntype = forward\nurl = http://127.0.0.1:9/x\n"
	                "secret = whsec_forward_0123456789\n",
	                err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	/* Pages of their own: not dumped, not inherited by a fork. */
	vmflags_of(cfg->secrets[0], flags, sizeof(flags));
	assert_non_null(strstr(flags, " dd"));
	assert_non_null(strstr(flags, " dc"));
	vmflags_of(cfg->actions[0].secret, flags, sizeof(flags));
	assert_non_null(strstr(flags, " dd"));

	/* A reference is the same secret, alive after the config is gone. */
	kept = config_secret_ref(cfg->secrets[1]);
	assert_ptr_equal(kept, cfg->secrets[1]);
	config_free(cfg);
	assert_string_equal(kept, "whsec_previous_0123456789");
	config_secret_unref(kept);
}

/*
 * Every SIGHUP loads a config and frees the old one: the page of secrets no
 * longer referenced is unmapped, not left behind (it was: wiping the page
 * cleared the size munmap was then given, and each load kept 16 KiB).
 */
static void test_secret_pages_given_back(void **state)
{
	char err[512], vec[1];
	long pagesz = sysconf(_SC_PAGESIZE);
	struct config *cfg;
	uintptr_t page;

	(void)state;
	cfg =
	    load_text("[security]\nwebhook_secret = whsec_current_0123456789\n", err, sizeof(err));
	assert_non_null(cfg);
	page = (uintptr_t)cfg->secrets[0] & ~((uintptr_t)pagesz - 1);
	assert_int_equal(mincore((void *)page, (size_t)pagesz, (unsigned char *)vec), 0);
	config_free(cfg);
	/* Unmapped now: mincore says ENOMEM for an address with no mapping. */
	assert_int_equal(mincore((void *)page, (size_t)pagesz, (unsigned char *)vec), -1);
	assert_int_equal(errno, ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_short_secret_is_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_weak_secret_and_readable_file_warn, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_fingerprints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secrets_from_credentials, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secrets_kept_once_outside_the_heap, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_secret_pages_given_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
