/*
 * config_secret.c: the *_file keys' files (webhook_secret_file,
 * api_key_file, secret_file): where a relative name is looked up, the size
 * and type checks, one secret per non-blank line, and wiping what was read.
 * A reason names the path, never the content.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_table.h"
#include "xmalloc.h"

#define SECRET_FILE_MAX ((size_t)64 * 1024) /* bytes of one *_file */

void config_secret_wipe(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void config_secrets_wipe(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		config_secret_wipe(v[i]);
	free(v);
}

/* Joins dir and name into buf; -1 when it does not fit. */
static int config_secret_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Opens name as config_secret_read() describes; the path tried last is in path. */
static int config_secret_open(struct conf_ctx *cx, const char *name, char path[PATH_MAX])
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	const char *also = "";
	int fd = -1;

	/* O_NONBLOCK: a FIFO named by mistake must not hang the load. */
	if (name[0] == '/') {
		if (config_secret_path(path, PATH_MAX, "", name + 1) < 0)
			return config_bad(cx, "path too long");
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	} else {
		if (creds != NULL && creds[0] != '\0') {
			if (config_secret_path(path, PATH_MAX, creds, name) < 0)
				return config_bad(cx, "path too long");
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
			if (fd < 0 && errno == ENOENT)
				also = " (not in $CREDENTIALS_DIRECTORY either)";
		}
		if (fd < 0 && (creds == NULL || creds[0] == '\0' || errno == ENOENT)) {
			if (config_secret_path(path, PATH_MAX, cx->dir, name) < 0)
				return config_bad(cx, "path too long");
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		}
	}
	if (fd < 0)
		return config_bad(cx, "cannot open %s%s: %s", path, also, strerror(errno));
	return fd;
}

/* The whole file, NUL-terminated, for the caller to wipe; NULL with cx->reason. */
static char *config_secret_slurp(struct conf_ctx *cx, const char *name, char path[PATH_MAX])
{
	struct stat st;
	char *buf = NULL;
	size_t used = 0;
	int fd = config_secret_open(cx, name, path);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		config_bad(cx, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		config_bad(cx, "%s: not a regular file", path);
		goto fail;
	}
	buf = xmalloc(SECRET_FILE_MAX + 1);
	for (;;) {
		ssize_t r = read(fd, buf + used, SECRET_FILE_MAX + 1 - used);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			config_bad(cx, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > SECRET_FILE_MAX) {
			config_bad(cx, "%s: larger than %zu bytes", path, SECRET_FILE_MAX);
			goto fail;
		}
	}
	buf[used] = '\0';
	if (memchr(buf, '\0', used) != NULL) {
		config_bad(cx, "%s: contains a NUL byte", path);
		goto fail;
	}
	close(fd);
	return buf;

fail:
	if (buf != NULL) {
		explicit_bzero(buf, used);
		free(buf);
	}
	close(fd);
	return NULL;
}

static bool config_secret_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits text into its non-blank lines, blanks around each removed; returns the count. */
static size_t config_secret_lines(char *text, char ***out)
{
	char **v = NULL;
	size_t n = 0;

	for (char *line = text; line != NULL;) {
		char *nl = strchr(line, '\n'), *e;

		if (nl != NULL)
			*nl = '\0';
		while (config_secret_space(*line))
			line++;
		e = line + strlen(line);
		while (e > line && config_secret_space(e[-1]))
			e--;
		*e = '\0';
		if (*line != '\0') {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n++] = xstrdup(line);
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	*out = v;
	return n;
}

long config_secret_read(struct conf_ctx *cx, const char *name, char ***out)
{
	char path[PATH_MAX];
	char *text = config_secret_slurp(cx, name, path);
	size_t len, n;

	if (text == NULL)
		return -1;
	len = strlen(text);
	n = config_secret_lines(text, out);
	explicit_bzero(text, len);
	free(text);
	if (n == 0)
		return config_bad(cx, "%s: holds no secret", path);
	return (long)n;
}
