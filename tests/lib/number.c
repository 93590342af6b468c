// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "number.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int parse_size(const char *s, uint64_t *out)
{
	static const char multipliers[] = "KMGT";
	unsigned long long v;
	unsigned int shift = 0;
	const char *m;
	char *end;

	if (!is_digit(*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	m = *end ? strchr(multipliers, toupper((unsigned char)*end)) : NULL;
	if (m) {
		shift = 10 * (m - multipliers + 1);
		end++;
		/* "Ki" (IEC) only after a multiplier: "64i" means nothing. */
		if (*end == 'i')
			end++;
	}
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX >> shift)
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!is_digit(*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_seconds(const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* !(v >= 0) refuses NaN too. */
	if (errno || end == s || *end || !(v >= 0) || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}
