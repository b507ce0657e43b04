/*
 * ident.h: how this process names itself in rows other processes read
 * (job claim owners, reconciliation runners): "host:pid".
 */
#ifndef BAYARHOOK_IDENT_H
#define BAYARHOOK_IDENT_H

#include <stddef.h>

/*
 * This host's name, "localhost" when it has none; ':' becomes '_' so that
 * the name stays the first field of a ':'-separated identity. Cut to size.
 */
void ident_host(char *out, size_t size);
/* "host:pid", host as ident_host() gives it. */
void ident_process(char *out, size_t size);

#endif
