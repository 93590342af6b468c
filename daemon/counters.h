/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The datapath's per-CPU counters, summed; one reader for every output. */
#ifndef LOOPLESS_COUNTERS_H
#define LOOPLESS_COUNTERS_H

#include <stdint.h>
#include "loopless.h"

extern const char *const counter_names[LL_CNT_MAX];

/* Sum each counter over all possible CPUs. */
int counters_read(int map_fd, uint64_t out[LL_CNT_MAX]);

#endif
