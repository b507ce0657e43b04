/*
 * alert_kind.c: the alert kinds' names (see alert_kind.h).
 */
#include <stdio.h>
#include <string.h>

#include "alert_kind.h"

static const char *const alert_kind_names[ALERT__COUNT] = {
    [ALERT_JOB_DEAD] = "job_dead",
    [ALERT_PAYMENT_FLAGGED] = "payment_flagged",
    [ALERT_MISSED_CALLBACK] = "missed_callback",
    [ALERT_CONFIRM_DISAGREED] = "confirm_disagreed",
    [ALERT_RECONCILE_FAILING] = "reconcile_failing",
    [ALERT_DATABASE_DOWN] = "database_down",
};

const char *alert_kind_name(enum alert_kind k)
{
	return (unsigned)k < ALERT__COUNT ? alert_kind_names[k] : "unknown";
}

int alert_kind_find(const char *name, size_t n)
{
	for (int k = 0; k < ALERT__COUNT; k++)
		if (strlen(alert_kind_names[k]) == n && memcmp(alert_kind_names[k], name, n) == 0)
			return k;
	return -1;
}

int alert_kinds_parse(const char *text, unsigned *mask, char *bad, size_t badlen)
{
	const char *sep = ", \t";
	const char *p = text;
	unsigned m = 0;

	while (p != NULL && *p != '\0') {
		size_t n;
		int k;

		p += strspn(p, sep);
		n = strcspn(p, sep);
		if (n == 0)
			break;
		k = alert_kind_find(p, n);
		if (k < 0) {
			snprintf(bad, badlen, "%.*s", (int)n, p);
			return -1;
		}
		m |= 1u << k;
		p += n;
	}
	*mask = m != 0 ? m : (1u << ALERT__COUNT) - 1;
	return 0;
}
