/*
 * reconcile_todo.c: a pass's queue of invoices to check and the set of
 * those it has queued (see reconcile_todo.h).
 */
#include "reconcile_todo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

static uint64_t todo_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* True when s was not in the set and is now. */
static bool todo_seen_add(struct reconcile_todos *l, const char *s)
{
	size_t i;

	if (l->seen_n * 2 >= l->seen_cap) {
		size_t cap = l->seen_cap ? l->seen_cap * 2 : 256;
		char **slots = xcalloc(cap, sizeof(*slots));

		for (size_t j = 0; j < l->seen_cap; j++) {
			if (l->seen[j] == NULL)
				continue;
			for (i = todo_hash(l->seen[j]) & (cap - 1); slots[i];
			     i = (i + 1) & (cap - 1))
				;
			slots[i] = l->seen[j];
		}
		free(l->seen);
		l->seen = slots;
		l->seen_cap = cap;
	}
	for (i = todo_hash(s) & (l->seen_cap - 1); l->seen[i]; i = (i + 1) & (l->seen_cap - 1))
		if (strcmp(l->seen[i], s) == 0)
			return false;
	l->seen[i] = xstrdup(s);
	l->seen_n++;
	return true;
}

void reconcile_todos_add(struct reconcile_todos *l, const char *invoice)
{
	struct reconcile_todo *t;

	if (!todo_seen_add(l, invoice))
		return;
	t = xcalloc(1, sizeof(*t));
	t->invoice = xstrdup(invoice);
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

bool reconcile_todos_mark(struct reconcile_todos *l, const char *invoice)
{
	return todo_seen_add(l, invoice);
}

struct reconcile_todo *reconcile_todos_take(struct reconcile_todos *l)
{
	struct reconcile_todo *t = l->head;

	if (t == NULL)
		return NULL;
	l->head = t->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->n--;
	t->next = NULL;
	return t;
}

void reconcile_todo_free(struct reconcile_todo *t)
{
	if (t == NULL)
		return;
	free(t->invoice);
	free(t);
}

void reconcile_todos_clear(struct reconcile_todos *l)
{
	struct reconcile_todo *t;

	while ((t = reconcile_todos_take(l)) != NULL)
		reconcile_todo_free(t);
	for (size_t i = 0; i < l->seen_cap; i++)
		free(l->seen[i]);
	free(l->seen);
	memset(l, 0, sizeof(*l));
}
