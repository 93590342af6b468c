/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Time for the tools: CLOCK_MONOTONIC, so a wall-clock jump during a test neither fires a
 * timeout nor stalls a run. */
#ifndef LOOPLESS_TESTS_CLOCK_H
#define LOOPLESS_TESTS_CLOCK_H

#include <stdint.h>

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_USEC 1000ULL

uint64_t now_ns(void);

static inline uint64_t now_ms(void)
{
	return now_ns() / NSEC_PER_MSEC;
}

/* Sleeps until now_ns() reaches @t, through signals. */
void sleep_until_ns(uint64_t t);

void sleep_ns(uint64_t ns);

#endif
