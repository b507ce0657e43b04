/*
 * cli_time.c: times on the command line. An AGE or TIME operand (--since)
 * is read here, before anything is loaded, so that a typo is a one-line
 * usage error instead of PostgreSQL's two-line one; the output's zone is
 * the session's TimeZone, which --tz sets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "db.h"

/* "15m" -> 900; -1 when text is not digits and one of s, m, h, d. */
static long long cli_duration(const char *text)
{
	size_t n = strlen(text);
	long long v, unit;

	if (n < 2 || n > 12 || strspn(text, "0123456789") != n - 1)
		return -1;
	switch (text[n - 1]) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	v = strtoll(text, NULL, 10);
	return v * unit;
}

/* Exactly n digits at *p, as a number; -1 otherwise. */
static int digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

/* A real calendar day: timegm normalizes Feb 30 to Mar 2. */
static bool real_day(int y, int mo, int d)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || timegm(&tm) == (time_t)-1)
		return false;
	return tm.tm_mon == mo - 1 && tm.tm_mday == d;
}

/*
 * YYYY-MM-DD, optionally [T ]HH:MM[:SS[.frac]], optionally Z or +HH[[:]MM]
 * (or -): the ISO 8601 forms PostgreSQL reads the same way in every
 * DateStyle.
 */
static bool cli_iso_time(const char *s)
{
	const char *p = s;
	int y, mo, d, h, mi, sec = 0;

	if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 || *p++ != '-' ||
	    (d = digits(&p, 2)) < 0 || !real_day(y, mo, d))
		return false;
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != ' ')
		return false;
	p++;
	if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59)
		return false;
	if (*p == ':') {
		p++;
		if ((sec = digits(&p, 2)) < 0 || sec > 59)
			return false;
		if (*p == '.') {
			p++;
			if (strspn(p, "0123456789") == 0)
				return false;
			p += strspn(p, "0123456789");
		}
	}
	if (*p == 'Z' && p[1] == '\0')
		return true;
	if (*p == '+' || *p == '-') {
		p++;
		if ((h = digits(&p, 2)) < 0 || h > 15)
			return false;
		if (*p == ':')
			p++;
		if (*p != '\0' && ((mi = digits(&p, 2)) < 0 || mi > 59))
			return false;
	}
	return *p == '\0';
}

int cli_time_since(const struct cli *cli, const char *text, char *buf, size_t len)
{
	long long secs = cli_duration(text);

	if (secs >= 0) {
		time_t t = time(NULL) - (time_t)secs;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(buf, len, "%Y-%m-%d %H:%M:%S+00", &tm);
		return 0;
	}
	if (cli_iso_time(text)) {
		snprintf(buf, len, "%s", text);
		return 0;
	}
	fprintf(stderr,
	        "bayarhook: %s: cannot read the time \"%s\" (an age like 90s, 15m, 2h, 3d, or "
	        "an ISO date or time like 2026-12-01 or 2026-12-01T08:00+07:00)\n",
	        cli->cmd->name, text);
	return 2;
}

int cli_time_zone(const struct cli *cli, PGconn *conn, const char *zone)
{
	const char *params[1] = {zone};
	PGresult *res;
	int rc = 0;

	if (zone == NULL)
		return 0;
	res = PQexecParams(conn, "SELECT set_config('TimeZone', $1, false)", 1, NULL, params, NULL,
	                   NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* 22023 invalid_parameter_value: a zone PostgreSQL does not know. */
		if (state != NULL && strcmp(state, "22023") == 0) {
			fprintf(stderr,
			        "bayarhook: %s: unknown time zone \"%s\" (a name like UTC or "
			        "Asia/Jakarta)\n",
			        cli->cmd->name, zone);
			rc = 2;
		} else {
			cli_sql_error(cli->cmd->name, res);
			rc = 1;
		}
	}
	PQclear(res);
	return rc;
}
