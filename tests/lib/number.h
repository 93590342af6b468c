/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Numbers on the tools' command lines, one grammar each for every tool: sizes (and counts) with
 * a 1024-based multiplier, plain decimal numbers (ports, ids, milliseconds), and seconds. A size
 * or a plain number starts with a digit: no sign and no blank, which strtoull() would take ("-1"
 * as 2^64 - 1).
 */
#ifndef LOOPLESS_TESTS_NUMBER_H
#define LOOPLESS_TESTS_NUMBER_H

#include <stdint.h>

/* What parse_size() takes, for messages: "expected " SIZE_GRAMMAR. */
#define SIZE_GRAMMAR "a number with an optional K, M, G or T suffix"

/*
 * A decimal number, then optionally a multiplier K, M, G or T (1024-based, either case), which
 * may be spelt with "i" and "B" as well: 64, 64B, 1K, 1k, 1KB, 1Ki, 1KiB, 256M, 1MiB, 1G, 2T.
 * 0, -EINVAL (not a size) or -ERANGE (more than 2^64 - 1 bytes).
 */
int parse_size(const char *s, uint64_t *out);

/* A decimal number from 0 to @max. 0 or -EINVAL. */
int parse_ulong(const char *s, unsigned long max, unsigned long *out);

/* Seconds, fractions allowed ("1.5", strtod()), from 0 to @max. 0 or -EINVAL. */
int parse_seconds(const char *s, double max, double *out);

#endif
