/*
 * phpnum.c: the text PHP 8 gives a float, so that amounts are signed and
 * substituted exactly as the gateway's PHP code turns them into strings.
 */
#include "phpnum.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * PHP 8 (string)$float with precision=14 is zend_gcvt(v, 14, '.', 'E'):
 * zend_dtoa mode 2 (14 significant digits, correctly rounded, ties to even,
 * trailing zeros dropped), then plain notation unless the decimal exponent
 * is out of [-3, 14]. glibc's "%.13e" rounds the same way, so it supplies
 * the digits and the exponent.
 */
void phpnum_float(double v, char *out, size_t outlen)
{
	char e[40], digits[16], buf[48];
	size_t nd = 0, pos = 0;
	int exp10, decpt;
	bool neg;
	const char *p;

	if (outlen == 0)
		return;
	if (isnan(v)) {
		snprintf(out, outlen, "NAN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, "%sINF", v < 0 ? "-" : "");
		return;
	}

	snprintf(e, sizeof(e), "%.13e", v);
	p = e;
	neg = *p == '-';
	if (neg)
		p++;
	for (; *p != 'e' && *p != '\0'; p++)
		if (isdigit((unsigned char)*p))
			digits[nd++] = *p;
	exp10 = *p == 'e' ? atoi(p + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	/* dtoa's decpt: the decimal point sits after decpt digits. */
	decpt = exp10 + 1;

	if (neg)
		buf[pos++] = '-';
	if (decpt < -3 || decpt > 14) {
		/* 1.0E+15, 1.5E-5: PHP always shows one fractional digit. */
		buf[pos++] = digits[0];
		buf[pos++] = '.';
		if (nd == 1) {
			buf[pos++] = '0';
		} else {
			memcpy(buf + pos, digits + 1, nd - 1);
			pos += nd - 1;
		}
		snprintf(buf + pos, sizeof(buf) - pos, "E%c%d", exp10 < 0 ? '-' : '+',
		         exp10 < 0 ? -exp10 : exp10);
	} else if (decpt <= 0) {
		buf[pos++] = '0';
		buf[pos++] = '.';
		for (int i = decpt; i < 0; i++)
			buf[pos++] = '0';
		memcpy(buf + pos, digits, nd);
		pos += nd;
		buf[pos] = '\0';
	} else {
		for (int i = 0; i < decpt; i++)
			buf[pos++] = (size_t)i < nd ? digits[i] : '0';
		if ((size_t)decpt < nd) {
			buf[pos++] = '.';
			memcpy(buf + pos, digits + decpt, nd - (size_t)decpt);
			pos += nd - (size_t)decpt;
		}
		buf[pos] = '\0';
	}
	snprintf(out, outlen, "%s", buf);
}
