/*
 * audit_chain.h: the writer's side of the audit chain (SPEC §11; design in
 * sql/012_audit_chain.sql): the lanes a process writes, each with its next
 * lane_seq and head mac, and the parameter each batch gives ingest(): the
 * lane, where it stands, and one subkey's pads per item. A lane carries one
 * batch at a time, so its head is known whenever it is idle; a batch whose
 * commit outcome is unknown ends its lane, and the next batch starts a new
 * one. The store (store.c) holds one chain; this module knows nothing of
 * the database.
 */
#ifndef BAYARHOOK_AUDIT_CHAIN_H
#define BAYARHOOK_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_mac.h"

struct audit_chain;

struct audit_chain *audit_chain_new(void);
/* Logs nothing; call audit_chain_checkpoint first for a last checkpoint. */
void audit_chain_free(struct audit_chain *c);
/*
 * The key ([audit] key_file's first line; NULL: no chain, rows get no
 * mac). A key other than the running one ends every lane (each logged with
 * its head): rows from here on start new lanes under the new key.
 */
void audit_chain_set_key(struct audit_chain *c, const char *key);
bool audit_chain_enabled(const struct audit_chain *c);

/*
 * Takes an idle lane (a new one when none is) for a batch of n items and
 * fills *param (malloc'd, *len bytes: ingest()'s chain argument). Returns
 * the lane's slot for audit_chain_end, or -1 when there is no key (*param
 * NULL).
 */
int audit_chain_begin(struct audit_chain *c, int n, unsigned char **param, size_t *len);
/*
 * The batch on slot committed: last_seq and last_mac are its last audit
 * row's (last_seq 0: it wrote none, the lane stands where it stood).
 */
void audit_chain_committed(struct audit_chain *c, int slot, int64_t last_seq,
                           const unsigned char last_mac[AUDIT_MAC_LEN]);
/*
 * The batch on slot did not commit. certain: it was rolled back (a server
 * error), so the lane stands where it stood; else (a lost connection) the
 * lane's head is unknown and the lane ends.
 */
void audit_chain_failed(struct audit_chain *c, int slot, bool certain);
/*
 * Logs the head of every lane that has rows ("audit checkpoint
 * lane=L seq=S mac=HEX", LANE:SEQ:MAC being what `audit verify
 * --checkpoint` takes), why saying when (periodic, shutdown).
 */
void audit_chain_checkpoint(const struct audit_chain *c, const char *why);

#endif
