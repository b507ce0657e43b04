/* cidr.h: IPv4/IPv6 CIDR lists for trusted_proxies and allow_from. */
#ifndef BAYARHOOK_CIDR_H
#define BAYARHOOK_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, host bits zeroed */
	int prefix;       /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/*
 * "10.0.0.0/8, ::1/128, 192.168.1.5" (a bare address is a /32 or /128). "" -> empty list.
 * Host bits below the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8). On error *out is
 * an empty list and *err a one-line reason naming the bad entry ("10.0.0.0/33: prefix
 * must be between 0 and 32"), valid until the next cidr_* call in the same thread.
 */
int cidr_list_parse(struct cidr_list *out, const char *text, const char **err)
    __attribute__((warn_unused_result));
/* One entry, same rules and *err as cidr_list_parse. */
int cidr_parse(struct cidr *out, const char *text, const char **err)
    __attribute__((warn_unused_result));
void cidr_list_free(struct cidr_list *l);
/*
 * addr is textual (v4, v6, or v4-mapped v6 "::ffff:1.2.3.4" matches v4 entries).
 * An empty list matches nothing: callers decide what an empty list means.
 */
bool cidr_list_match(const struct cidr_list *l, const char *addr);
/* True when text is a valid IPv4 or IPv6 address. */
bool cidr_addr_valid(const char *addr);
/* "10.0.0.0/8", "::1/128"; returns what snprintf would. */
int cidr_format(const struct cidr *c, char *buf, size_t len);
/* Entries joined by ", " ("" for an empty list); truncated to fit len. */
void cidr_list_format(const struct cidr_list *l, char *buf, size_t len);

#endif
