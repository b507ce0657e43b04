/*
 * forwarded.h: the real client address behind trusted proxies, from
 * X-Forwarded-For read from the right. No domain: server.c gives it the
 * header values and the trusted list.
 */
#ifndef BAYARHOOK_FORWARDED_H
#define BAYARHOOK_FORWARDED_H

#include <stddef.h>

#include "cidr.h"

/* At most this many hops are walked, whatever the header's length. */
#define FORWARDED_MAX_HOPS 32
/* A hop longer than this (blanks around it included) is not an address. */
#define FORWARDED_HOP_SCAN 64

/*
 * The peer, unless the peer is a trusted proxy: then X-Forwarded-For read
 * from the right (xff: the values of its fields, in order, nxff of them),
 * each hop taken while the one after it is a trusted proxy; the client is
 * the nearest hop that is not. A hop that is not an address stops the walk
 * at the last one believed. Without X-Forwarded-For (or only blank ones),
 * X-Real-IP when it is an address. Work is bounded whatever the length: at
 * most FORWARDED_MAX_HOPS hops, each scanned over at most
 * FORWARDED_HOP_SCAN bytes.
 */
void forwarded_client(const struct cidr_list *trusted, const char *peer, const char *const *xff,
                      size_t nxff, const char *xreal, char *out, size_t outlen);

#endif
