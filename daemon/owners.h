/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Who owns each address of the node, for cross_netns: the addr_owners map
 * the datapath reads (see ll_admit_cross() in bpf/loopless.h).
 */
#ifndef LOOPLESS_OWNERS_H
#define LOOPLESS_OWNERS_H

/* Fill the addr_owners map (@map_fd) from the interfaces of every network
 * namespace of the host: each address to the cookie of the one namespace
 * that has it; an address found in two namespaces is left out (neither may
 * claim it), as is every address no namespace has any more. On success,
 * *@n (if not NULL) is the number of owned addresses. 0 or -errno. */
int owners_sync(int map_fd, unsigned int *n);

/* Empty the map (cross_netns turned off). 0 or -errno. */
int owners_clear(int map_fd);

#endif
