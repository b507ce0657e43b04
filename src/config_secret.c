/*
 * config_secret.c: the *_file keys' files (webhook_secret_file,
 * api_key_file, secret_file): where a relative name is looked up, the size
 * and type checks, one secret per non-blank line, and wiping what was read;
 * the length and permission rules of SPEC §13; fingerprints. A reason names
 * the path, never the content.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "config_table.h"
#include "xmalloc.h"

#define SECRET_FILE_MAX ((size_t)64 * 1024) /* bytes of one *_file */
/*
 * An HMAC key shorter than this is refused: a one-character secret can be
 * found from one genuine callback by trying every value. 16 bytes is what
 * an operator should use; between the two the load warns.
 */
#define CONFIG_SECRET_MIN 8
#define CONFIG_SECRET_GOOD 16

void config_warn(struct conf_ctx *cx, const char *fmt, ...)
{
	size_t used = strlen(cx->warning);
	va_list ap;

	if (used > 0 && used + 2 < sizeof(cx->warning)) {
		memcpy(cx->warning + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= sizeof(cx->warning))
		return;
	va_start(ap, fmt);
	vsnprintf(cx->warning + used, sizeof(cx->warning) - used, fmt, ap);
	va_end(ap);
}

int config_secret_check(struct conf_ctx *cx, const struct conf_key *k, const char *secret,
                        const char *which)
{
	size_t n = strlen(secret);

	if (!(k->flags & K_HMAC))
		return 0;
	if (n < CONFIG_SECRET_MIN)
		return config_bad(cx,
		                  "%sa secret of %zu byte(s); at least %d are needed (%d or more "
		                  "advised)",
		                  which, n, CONFIG_SECRET_MIN, CONFIG_SECRET_GOOD);
	if (n < CONFIG_SECRET_GOOD)
		config_warn(cx, "%sa secret of %zu bytes is weak; use %d or more", which, n,
		            CONFIG_SECRET_GOOD);
	return 0;
}

void config_secret_fingerprint(const char *secret, char out[9])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)secret, strlen(secret), md);
	snprintf(out, 9, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
	explicit_bzero(md, sizeof(md));
}

void config_secret_fingerprints(const struct config *cfg, char *buf, size_t len)
{
	size_t used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < cfg->nsecrets && used < len; i++) {
		char fp[9];
		int w;

		config_secret_fingerprint(cfg->secrets[i], fp);
		w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", fp);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- the store: every secret once, outside the heap ---- */

/*
 * Secrets live in pages of their own, never in the malloc heap: mapped
 * MADV_DONTDUMP (no core dump, even a dumpable CLI's), MADV_DONTFORK (an
 * exec action's child never has them) and locked in memory when
 * RLIMIT_MEMLOCK allows (never swapped). Each secret is stored once with a
 * reference count: a reload's copy of the config and a forward action take
 * a reference, not a copy. The last reference wipes it; a page whose last
 * secret went is unmapped. The process is single-threaded where secrets
 * are handled (the load, the event loop).
 */
struct secret_page {
	struct secret_page *next;
	size_t size; /* mapped bytes, this header included */
	size_t used; /* bytes handed out, from the start of the mapping */
	size_t live; /* secrets in it not yet wiped */
};

struct secret_hdr {
	struct secret_page *page;
	size_t refs;
	size_t cap; /* bytes after the header */
};

#define SECRET_PAGE_MIN ((size_t)16 * 1024)
#define SECRET_ALIGN (sizeof(void *) * 2)

static struct secret_page *secret_pages; /* the newest first: where new secrets go */

static size_t secret_round(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static struct secret_page *secret_page_new(size_t need)
{
	size_t pagesz = (size_t)sysconf(_SC_PAGESIZE);
	size_t size = secret_round(need + sizeof(struct secret_page) + SECRET_ALIGN,
	                           pagesz > 0 ? pagesz : 4096);
	struct secret_page *pg;
	void *p;

	if (size < SECRET_PAGE_MIN)
		size = SECRET_PAGE_MIN;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		/* Out of memory, handled as xmalloc does (xmalloc.h): one line, abort. */
		fprintf(stderr, "bayarhook: out of memory mapping %zu bytes for secrets\n", size);
		abort();
	}
	/* Best effort: what the kernel or the limits refuse leaves the secret in a page anyway. */
	(void)madvise(p, size, MADV_DONTDUMP);
	(void)madvise(p, size, MADV_DONTFORK);
	(void)mlock(p, size);
	pg = p;
	pg->size = size;
	pg->used = secret_round(sizeof(*pg), SECRET_ALIGN);
	pg->live = 0;
	pg->next = secret_pages;
	secret_pages = pg;
	return pg;
}

/* Room for n bytes (NUL included) with one reference; the content is zero. */
static char *secret_alloc(size_t n)
{
	size_t need = secret_round(sizeof(struct secret_hdr) + n, SECRET_ALIGN);
	struct secret_page *pg = secret_pages;
	struct secret_hdr *h;

	if (pg == NULL || pg->size - pg->used < need)
		pg = secret_page_new(need);
	h = (struct secret_hdr *)(void *)((char *)pg + pg->used);
	pg->used += need;
	pg->live++;
	h->page = pg;
	h->refs = 1;
	h->cap = need - sizeof(*h);
	return (char *)(h + 1);
}

static struct secret_hdr *secret_hdr_of(const char *s)
{
	/* The header sits before the text; the store owns both (no const to cast away). */
	return (struct secret_hdr *)(void *)((uintptr_t)s - sizeof(struct secret_hdr));
}

static void secret_page_drop(struct secret_page *pg)
{
	struct secret_page **pp;
	size_t size;

	for (pp = &secret_pages; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == pg) {
			*pp = pg->next;
			break;
		}
	}
	/* The size lives in the page itself: read it before the wipe clears it. */
	size = pg->size;
	explicit_bzero(pg, size);
	munlock(pg, size);
	munmap(pg, size);
}

char *config_secret_dup(const char *s, size_t n)
{
	char *d = secret_alloc(n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *config_secret_ref(const char *secret)
{
	struct secret_hdr *h = secret_hdr_of(secret);

	h->refs++;
	return (char *)(uintptr_t)secret;
}

void config_secret_wipe(char *s)
{
	struct secret_hdr *h;
	struct secret_page *pg;

	if (s == NULL)
		return;
	h = secret_hdr_of(s);
	if (--h->refs > 0)
		return;
	pg = h->page;
	explicit_bzero(h, sizeof(*h) + h->cap);
	if (--pg->live == 0)
		secret_page_drop(pg);
}

void config_secret_unref(char *secret)
{
	config_secret_wipe(secret);
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

bool config_secret_exists(const struct conf_ctx *cx, const char *name)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];

	if (creds != NULL && creds[0] != '\0' &&
	    config_secret_path(path, sizeof(path), creds, name) == 0 && access(path, F_OK) == 0)
		return true;
	return config_secret_path(path, sizeof(path), cx->dir, name) == 0 &&
	       access(path, F_OK) == 0;
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
			if (fd >= 0)
				cx->from_credentials = true;
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
	/* Anyone on the host who can read it can forge callbacks. */
	if (st.st_mode & (S_IRGRP | S_IROTH))
		config_warn(cx, "%s is readable by %s (mode %04o); chmod 600 it", path,
		            (st.st_mode & S_IROTH) ? "others" : "its group",
		            (unsigned)(st.st_mode & 07777));
	buf = secret_alloc(SECRET_FILE_MAX + 1); /* the file's text is a secret too */
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
	config_secret_wipe(buf);
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
			v[n++] = config_secret_dup(line, strlen(line));
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	*out = v;
	return n;
}

long config_secret_read(struct conf_ctx *cx, const struct conf_key *k, const char *name,
                        char ***out)
{
	char path[PATH_MAX], which[PATH_MAX + 32];
	char *text = config_secret_slurp(cx, name, path);
	size_t n;

	if (text == NULL)
		return -1;
	n = config_secret_lines(text, out);
	config_secret_wipe(text);
	if (n == 0)
		return config_bad(cx, "%s: holds no secret", path);
	for (size_t i = 0; i < n; i++) {
		snprintf(which, sizeof(which), "%s: secret %zu: ", path, i + 1);
		if (config_secret_check(cx, k, (*out)[i], which) < 0) {
			config_secrets_wipe(*out, n);
			*out = NULL;
			return -1;
		}
	}
	return (long)n;
}
