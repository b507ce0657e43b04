/*
 * action_forward.h: the forward action (SPEC §5): POSTs the event to the
 * shop's own handler, optionally signed as bayar.gg signs its callbacks.
 */
#ifndef BAYARHOOK_ACTION_FORWARD_H
#define BAYARHOOK_ACTION_FORWARD_H

extern const struct action_ops action_forward_ops;

#endif
