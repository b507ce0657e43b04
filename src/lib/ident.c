/*
 * ident.c: the process identity strings (see ident.h).
 */
#include "ident.h"

#include <stdio.h>
#include <unistd.h>

void ident_host(char *out, size_t size)
{
	if (size == 0)
		return;
	if (gethostname(out, size) < 0 || out[0] == '\0')
		snprintf(out, size, "localhost");
	out[size - 1] = '\0'; /* gethostname need not terminate a cut name */
	for (char *p = out; *p != '\0'; p++)
		if (*p == ':')
			*p = '_';
}

void ident_process(char *out, size_t size)
{
	char host[256];

	ident_host(host, sizeof(host));
	snprintf(out, size, "%s:%ld", host, (long)getpid());
}
