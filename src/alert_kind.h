/*
 * alert_kind.h: the alert kinds of SPEC §8, as one table, for the config
 * check of [alert] kinds and for the delivery (alert.c). No dependencies.
 */
#ifndef BAYARHOOK_ALERT_KIND_H
#define BAYARHOOK_ALERT_KIND_H

#include <stddef.h>

enum alert_kind {
	ALERT_JOB_DEAD,
	ALERT_PAYMENT_FLAGGED,
	ALERT_MISSED_CALLBACK,
	ALERT_CONFIRM_DISAGREED,
	ALERT_RECONCILE_FAILING,
	ALERT_DATABASE_DOWN,
	ALERT__COUNT
};

/* "job_dead", ...: the name in the table, the JSON and BAYARHOOK_ALERT. */
const char *alert_kind_name(enum alert_kind k);
/* The kind named name (n bytes), or -1. */
int alert_kind_find(const char *name, size_t n);
/*
 * Parses [alert] kinds: names separated by commas and/or blanks. NULL or
 * blank means every kind. Sets *mask (bit k for kind k) and returns 0, or
 * returns -1 with the unknown name in bad.
 */
int alert_kinds_parse(const char *text, unsigned *mask, char *bad, size_t badlen);

#endif
