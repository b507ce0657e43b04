/*
 * fuzz_config.c: libFuzzer target for the receiver.conf parser.
 *
 * The input is parsed as a file living in a scratch directory that holds a
 * webhook-secret and an api-key, so relative *_file names can succeed; a
 * loaded config is also printed (to /dev/null) to cover the summary and the
 * redaction of conninfo passwords, and its not-reloadable keys are kept by
 * a config of defaults, as SIGHUP does.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Isrc -Isrc/lib fuzz/fuzz_config.c src/config*.c src/lib/cidr.c \
 *     src/lib/xmalloc.c src/lib/log.c -lsystemd -o fuzz_config
 *   ./fuzz_config fuzz/corpus/config
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[] = "/tmp/bayarhook-fuzz-config-XXXXXX";
static char conf_name[64];
static FILE *devnull;

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/webhook-secret", scratch);
	unlink(path);
	snprintf(path, sizeof(path), "%s/api-key", scratch);
	unlink(path);
	rmdir(scratch);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(text, f);
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(scratch) == NULL)
		abort();
	put_file(scratch, "webhook-secret", "whsec_current\nwhsec_previous\n");
	put_file(scratch, "api-key", "api-key-value\n");
	atexit(cleanup);
	snprintf(conf_name, sizeof(conf_name), "%s/receiver.conf", scratch);
	unsetenv("CREDENTIALS_DIRECTORY");
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct config *cfg;

	cfg = config_load_buffer(conf_name, (const char *)data, size, err, sizeof(err));
	if (cfg == NULL) {
		/* One line, and always something. */
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
		return 0;
	}
	config_print_summary(cfg, devnull);
	for (size_t i = 0; i < cfg->nactions; i++)
		if (config_action(cfg, cfg->actions[i].name) != &cfg->actions[i] ||
		    config_action_max_attempts(cfg, &cfg->actions[i]) < 1)
			abort();
	/* A SIGHUP from the defaults to this file and back: the reload's copies. */
	{
		static const char min[] =
		    "[security]\nwebhook_secret = whsec_fuzz_default_secret\n";
		struct config *def =
		    config_load_buffer(conf_name, min, sizeof(min) - 1, err, sizeof(err));
		char changed[128];

		if (def == NULL)
			abort();
		config_keep_fixed(def, cfg, changed, sizeof(changed));
		if (strcmp(def->listen.text, cfg->listen.text) != 0 ||
		    strcmp(def->conninfo, cfg->conninfo) != 0 ||
		    config_keep_fixed(def, cfg, changed, sizeof(changed)) != 0)
			abort();
		config_free(def);
	}
	config_free(cfg);
	return 0;
}
