/*
 * phpnum.h: PHP 8's (string)$float.
 */
#ifndef BAYARHOOK_PHPNUM_H
#define BAYARHOOK_PHPNUM_H

#include <stddef.h>

/* (string)$v under PHP 8 with precision=14: "50123", "1.0E+15", "INF". */
void phpnum_float(double v, char *out, size_t outlen);

#endif
