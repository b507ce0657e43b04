/*
 * reconcile_todo.h: the invoices a reconciliation pass still has to check,
 * in the order the feeds named them, each queued once per pass however
 * often it is named (list-payments pages shift while a sweep reads them).
 */
#ifndef BAYARHOOK_RECONCILE_TODO_H
#define BAYARHOOK_RECONCILE_TODO_H

#include <stdbool.h>
#include <stddef.h>

struct reconcile_todo {
	struct reconcile_todo *next;
	char *invoice;
};

struct reconcile_todos {
	struct reconcile_todo *head, *tail;
	size_t n;
	/* every invoice queued in this pass: open addressing, FNV-1a */
	char **seen;
	size_t seen_cap, seen_n;
};

/* Queues invoice unless this list has queued it before. */
void reconcile_todos_add(struct reconcile_todos *l, const char *invoice);
/* Marks invoice as handled in this pass without queueing it; false when it already was. */
bool reconcile_todos_mark(struct reconcile_todos *l, const char *invoice);
/* The oldest queued invoice, now the caller's (reconcile_todo_free); NULL when none. */
struct reconcile_todo *reconcile_todos_take(struct reconcile_todos *l);
void reconcile_todo_free(struct reconcile_todo *t);
/* Frees what is queued and forgets what was seen. */
void reconcile_todos_clear(struct reconcile_todos *l);

#endif
