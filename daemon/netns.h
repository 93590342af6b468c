/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The network namespaces of the processes in a set of cgroups, or of the
 * whole host. An iter/tcp iterator walks the namespace of the process that
 * creates it, so each of loopless's iterators is created once in each
 * namespace where a socket in the map may be.
 */
#ifndef LOOPLESS_NETNS_H
#define LOOPLESS_NETNS_H

#include <stdbool.h>
#include <stdint.h>

/* Call @fn once in the calling thread's own network namespace and once in
 * each other namespace of a process in @cgroups (absolute paths) or their
 * descendants, with the thread switched into it (setns), skipping those
 * whose netns cookie @want (NULL: none skipped) returns false for; the
 * thread is back in its own namespace on return. Stops at the first error
 * @fn returns. */
int netns_for_each(const char *const *cgroups, int n, bool (*want)(uint64_t cookie, void *ctx),
		   int (*fn)(void *ctx), void *ctx);

/* The same over every namespace of the host: each process's and each one
 * bound in /run/netns (ip netns add) even without a process. */
int netns_for_each_host(int (*fn)(void *ctx), void *ctx);

/* The cookie of the namespace the calling thread is in (SO_NETNS_COOKIE,
 * cached by inode); 0: unknown. */
uint64_t netns_cookie(void);

#endif
