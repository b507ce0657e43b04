/*
 * worker_owner.c: the claim owner of this process and the reclaim of claims
 * left by local processes that are gone (see worker_owner.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "ident.h"
#include "log.h"
#include "worker_owner.h"

uint32_t worker_random_u32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)random();
	return r;
}

void worker_owner_init(struct worker_owner *o, void (*taken)(void *arg), void *arg)
{
	char boot[64] = "", proc[100]; /* host (< 80) ":" pid */
	struct stat st;
	FILE *f;

	memset(o, 0, sizeof(*o));
	o->taken = taken;
	o->arg = arg;
	ident_host(o->host, sizeof(o->host));
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re")) != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		fclose(f);
	}
	boot[strspn(boot, "0123456789abcdef")] = '\0';
	if (stat("/proc/self/ns/pid", &st) < 0)
		st.st_ino = 0;
	/* Same boot and pid namespace: a pid from the owner names the same process. */
	snprintf(o->scope, sizeof(o->scope), "%.8s-%lu", boot[0] ? boot : "noboot",
	         (unsigned long)st.st_ino);
	ident_process(proc, sizeof(proc));
	snprintf(o->id, sizeof(o->id), "%s:%s:%08x", proc, o->scope, worker_random_u32());
}

/* "host:pid:scope:nonce" of this host and scope: is that process gone? */
static bool owner_gone(const struct worker_owner *o, const char *owner)
{
	const char *p = strchr(owner, ':');
	char *end;
	long pid;

	if (p == NULL || strcmp(owner, o->id) == 0)
		return false;
	pid = strtol(p + 1, &end, 10);
	if (end == p + 1 || *end != ':' || pid <= 0)
		return false;
	/* Our own pid under another nonce: an earlier life of this pid, gone. */
	if (pid == (long)getpid())
		return true;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void expired(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_owner *o = arg;

	(void)sqlstate;
	o->reclaiming = false;
	if (res == NULL) {
		log_warnx("taking back jobs of dead processes failed: %s", err);
		return;
	}
	if (PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) > 0)
		log_notice("took back %s job(s) claimed by bayarhook processes of this host that "
		           "are gone",
		           PQgetvalue(res, 0, 0));
	o->taken(o->arg);
}

static void owners_found(PGresult *res, const char *err, const char *sqlstate, void *arg)
{
	struct worker_owner *o = arg;
	cJSON *gone = cJSON_CreateArray();
	char *text = NULL;
	const char *p[1];

	(void)sqlstate;
	if (res == NULL)
		log_warnx("looking for jobs of dead processes failed: %s", err);
	for (int i = 0; res && i < PQntuples(res); i++)
		if (owner_gone(o, PQgetvalue(res, i, 0)))
			cJSON_AddItemToArray(gone, cJSON_CreateString(PQgetvalue(res, i, 0)));
	if (cJSON_GetArraySize(gone) > 0)
		text = cJSON_PrintUnformatted(gone);
	cJSON_Delete(gone);
	p[0] = text;
	if (text == NULL || db_query(o->pool, "SELECT bayarhook.job_expire_owners(p_owners => $1)",
	                             1, p, expired, o) < 0)
		o->reclaiming = false;
	free(text);
}

void worker_owner_reclaim(struct worker_owner *o, struct db_pool *pool)
{
	const char *p[3] = {o->host, o->scope, o->id};

	if (o->reclaiming)
		return;
	o->pool = pool;
	if (db_query(pool,
	             "SELECT bayarhook.job_local_owners(p_host => $1, p_scope => $2, p_self => $3)",
	             3, p, owners_found, o) == 0)
		o->reclaiming = true;
}
