/*
 * log.c: the one place the program writes diagnostics. Under systemd, when
 * stderr is the journal stream (JOURNAL_STREAM names stderr's device:inode,
 * see systemd.exec(5)), records go to the journal with a priority and the
 * caller's KEY=value fields; otherwise one line per event goes to stderr:
 *
 *   2026-11-25T11:40:00.123Z ident[42]: info: message key=value ...
 *
 * Never pass secrets (webhook secrets, API keys, conninfo passwords) to any
 * of these functions: that is the caller's duty, nothing here can tell a
 * secret from an invoice id. Request bodies belong at debug level only.
 *
 * Not thread-safe: meant for one event loop.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#define LOG_MSG_MAX 4096      /* a formatted message; longer ones are cut */
#define LOG_LINE_MAX 8192     /* a whole stderr line, fields included */
#define LOG_FIELDS_MAX 32     /* journal fields per record beyond our own */
#define LOG_FIELD_NAME_MAX 64 /* journald's limit on field names */

static struct {
	char ident[64];
	bool debug;
	bool journal;
} log_state = {"", false, false}; /* ident: the program's name until log_init */

/* systemd's documented check: JOURNAL_STREAM is "device:inode" of stderr. */
static bool log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (e == NULL || *e == '\0')
		return false;
	errno = 0;
	dev = strtoull(e, &end, 10);
	if (errno != 0 || end == e || *end != ':')
		return false;
	e = end + 1;
	ino = strtoull(e, &end, 10);
	if (errno != 0 || end == e || *end != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
		return false;
	/*
	 * sd_journal_sendv() drops records silently when journald's socket
	 * is missing (it returns 0 on ENOENT); stay on stderr then.
	 */
	return access("/run/systemd/journal/socket", F_OK) == 0;
}

void log_init(const char *ident, bool debug, const char *debug_env)
{
	const char *env = debug_env != NULL ? getenv(debug_env) : NULL;

	if (ident != NULL && *ident != '\0')
		snprintf(log_state.ident, sizeof(log_state.ident), "%s", ident);
	log_state.debug = debug || (env != NULL && strcmp(env, "1") == 0);
	log_state.journal = log_stderr_is_journal();
}

static const char *log_ident(void)
{
	return log_state.ident[0] != '\0' ? log_state.ident : program_invocation_short_name;
}

bool log_debug_enabled(void)
{
	return log_state.debug;
}

static const char *log_level_name(int prio)
{
	static const char *const names[] = {"emerg",   "alert",  "crit", "error",
	                                    "warning", "notice", "info", "debug"};

	return names[LOG_PRI(prio)];
}

/* A fixed-size line that records truncation instead of overflowing. */
struct log_buf {
	char *p;
	size_t len, cap;
	bool cut;
};

static void log_putc(struct log_buf *b, char c)
{
	if (b->len + 1 < b->cap)
		b->p[b->len++] = c;
	else
		b->cut = true;
}

static void log_puts(struct log_buf *b, const char *s)
{
	while (*s != '\0')
		log_putc(b, *s++);
}

/*
 * Copies text so that it cannot start a new line or forge one: a stranger's
 * invoice id with "\n" in it stays on this event's line.
 */
static void log_put_escaped(struct log_buf *b, const char *s, size_t n, bool quote)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n') {
			log_puts(b, "\\n");
		} else if (c == '\r') {
			log_puts(b, "\\r");
		} else if (c == '\t') {
			log_puts(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			log_puts(b, "\\x");
			log_putc(b, hex[c >> 4]);
			log_putc(b, hex[c & 0xf]);
		} else if (quote && (c == '"' || c == '\\')) {
			log_putc(b, '\\');
			log_putc(b, (char)c);
		} else {
			log_putc(b, (char)c);
		}
	}
}

/* logfmt-style: quote a value only when it would not read back as one token. */
static bool log_needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

static void log_put_field(struct log_buf *b, const char *field)
{
	const char *eq = strchr(field, '=');

	if (eq == NULL || eq == field)
		return;
	log_putc(b, ' ');
	for (const char *k = field; k < eq; k++) {
		char c = *k;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			c = '_';
		log_putc(b, c);
	}
	log_putc(b, '=');
	if (log_needs_quotes(eq + 1)) {
		log_putc(b, '"');
		log_put_escaped(b, eq + 1, strlen(eq + 1), true);
		log_putc(b, '"');
	} else {
		log_puts(b, eq + 1);
	}
}

static void log_write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to complain to */
		p += w;
		n -= (size_t)w;
	}
}

static void log_stderr(int prio, const char *const *fields, const char *msg)
{
	char line[LOG_LINE_MAX], ts[32];
	struct log_buf b = {line, 0, sizeof(line) - 4, false}; /* room for "...\n" */
	struct timespec now;
	struct tm tm;
	char head[256];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(head, sizeof(head), "%s.%03ldZ %s[%ld]: %s: ", ts, now.tv_nsec / 1000000L,
	         log_ident(), (long)getpid(), log_level_name(prio));
	log_puts(&b, head);
	log_put_escaped(&b, msg, strlen(msg), false);
	for (size_t i = 0; fields != NULL && fields[i] != NULL; i++)
		log_put_field(&b, fields[i]);
	if (b.cut) {
		memcpy(line + b.len, "...", 3);
		b.len += 3;
	}
	line[b.len++] = '\n';
	log_write_all(line, b.len);
}

/*
 * Journal field names are [A-Z0-9_], at most 64 bytes, not starting with
 * "_" (trusted fields) or a digit; journald silently drops anything else, so
 * a caller's "invoice=..." is normalised to "INVOICE=..." rather than lost.
 */
static size_t log_journal_name(char *out, const char *field, const char *eq)
{
	size_t n = 0;

	for (const char *k = field; k < eq && n < LOG_FIELD_NAME_MAX; k++) {
		char c = *k;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			c = '_';
		if (n == 0 && (c == '_' || (c >= '0' && c <= '9')))
			continue;
		out[n++] = c;
	}
	return n;
}

/*
 * sd_journal_sendv takes one "NAME=value" per iovec, so each field is
 * assembled in one heap buffer; values go as they are (the journal is
 * binary-safe, newlines in MESSAGE are fine there).
 */
static int log_journal(int prio, int err, const char *const *fields, const char *msg)
{
	struct iovec iov[4 + LOG_FIELDS_MAX];
	size_t n = 0, size, nfields = 0;
	char *buf, *p;
	int r;

	size = sizeof("MESSAGE=") + strlen(msg) + 32 + sizeof("SYSLOG_IDENTIFIER=") +
	       strlen(log_ident()) + 32;
	while (fields != NULL && fields[nfields] != NULL && nfields < LOG_FIELDS_MAX)
		size += LOG_FIELD_NAME_MAX + 2 + strlen(fields[nfields++]);
	/*
	 * Not xmalloc: its out-of-memory line is logged through here, and
	 * stderr (the caller's fallback) still works without the heap.
	 */
	buf = p = malloc(size);
	if (buf == NULL)
		return -ENOMEM;

#define LOG_IOV_PRINTF(...)                                                                        \
	do {                                                                                       \
		int len_ = snprintf(p, size - (size_t)(p - buf), __VA_ARGS__);                     \
		iov[n++] = (struct iovec){p, (size_t)len_};                                        \
		p += len_ + 1;                                                                     \
	} while (0)
	LOG_IOV_PRINTF("MESSAGE=%s", msg);
	LOG_IOV_PRINTF("PRIORITY=%d", LOG_PRI(prio));
	LOG_IOV_PRINTF("SYSLOG_IDENTIFIER=%s", log_ident());
	if (err != 0)
		LOG_IOV_PRINTF("ERRNO=%d", err);
#undef LOG_IOV_PRINTF
	for (size_t i = 0; i < nfields; i++) {
		const char *eq = strchr(fields[i], '=');
		size_t len;

		if (eq == NULL)
			continue;
		len = log_journal_name(p, fields[i], eq);
		if (len == 0)
			continue;
		p[len++] = '=';
		memcpy(p + len, eq + 1, strlen(eq + 1));
		len += strlen(eq + 1);
		iov[n++] = (struct iovec){p, len};
		p += len;
	}
	r = sd_journal_sendv(iov, (int)n);
	free(buf);
	return r;
}

static void log_vemit(int prio, int err, const char *const *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void log_vemit(int prio, int err, const char *const *fields, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	int n;

	if (LOG_PRI(prio) == LOG_DEBUG && !log_state.debug)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable log message: %s)", fmt);
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	if (err != 0) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(err));
	}
	if (log_state.journal && log_journal(prio, err, fields, msg) >= 0)
		return;
	log_stderr(prio, fields, msg);
}

void log_msg(int prio, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(prio, 0, NULL, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_errno(int prio, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(prio, saved, NULL, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_fields(int prio, const char *const *fields, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(prio, 0, fields, fmt, ap);
	va_end(ap);
	errno = saved;
}
