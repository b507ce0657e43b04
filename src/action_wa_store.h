/*
 * action_wa_store.h: the wa_store action (SPEC §9): completes or cancels
 * the invoice's order in bayar.gg's own WhatsApp Store.
 */
#ifndef BAYARHOOK_ACTION_WA_STORE_H
#define BAYARHOOK_ACTION_WA_STORE_H

#include <stdbool.h>

extern const struct action_ops action_wa_store_ops;

/* What an order's status means for an operation (pure, for the tests). */
enum wa_store_step {
	WA_STORE_DONE,      /* already in the wanted state: success */
	WA_STORE_CALL,      /* ask the store to change it */
	WA_STORE_FORBIDDEN, /* the store's rules refuse it: retrying cannot help */
};
enum wa_store_step action_wa_store_step(const char *status, bool cancel);

#endif
