// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "counters.h"

/* The names are the stable interface of `loopless stats --json`. */
const char *const counter_names[LL_CNT_MAX] = {
	[LL_CNT_REDIRECTED_MSGS] = "redirected_msgs",
	[LL_CNT_REDIRECTED_BYTES] = "redirected_bytes",
	[LL_CNT_PASSED_MSGS] = "passed_msgs",
	[LL_CNT_PASSED_BYTES] = "passed_bytes",
	[LL_CNT_TCP_PINNED] = "tcp_pinned",
	[LL_CNT_SOCKETS_INSERTED] = "sockets_inserted",
	[LL_CNT_INSERT_ERRORS] = "insert_errors",
	[LL_CNT_SKIPPED_REMOTE] = "skipped_remote",
	[LL_CNT_SKIPPED_PORT] = "skipped_port",
	[LL_CNT_FALLBACKS] = "fallbacks",
	[LL_CNT_RETURNS] = "returns",
	[LL_CNT_FALLBACKS_SMALL] = "fallbacks_small",
};

int counters_read(int map_fd, uint64_t out[LL_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	__u32 id;
	int i;

	if (ncpu < 0)
		return ncpu;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (id = 0; id < LL_CNT_MAX; id++) {
		out[id] = 0;
		if (bpf_map_lookup_elem(map_fd, &id, vals)) {
			int err = -errno;

			free(vals);
			return err;
		}
		for (i = 0; i < ncpu; i++)
			out[id] += vals[i];
	}
	free(vals);
	return 0;
}
