/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The datapath's life cycle: load (adopting what is pinned), apply a
 * configuration (maps and cgroup attachments), uninstall.
 */
#ifndef LOOPLESS_DATAPATH_H
#define LOOPLESS_DATAPATH_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "loopless.h"

struct loopless_bpf;
struct ring_buffer;

struct cgroup_target {
	char path[CONFIG_PATH_MAX]; /* absolute */
	uint64_t id;
};

struct datapath {
	struct loopless_bpf *skel;
	char pin_dir[CONFIG_PATH_MAX];
	bool adopted; /* a pinned datapath was found and taken over */
	struct ring_buffer *leaves; /* leave_events: a pair started leaving */
	/* datapath_reap() took sockets out or saw a pair start leaving (not a
	 * re-entry undone): sockets that may come back. */
	bool left;
};

/* cross_netns @on: fill the addr_owners map from every namespace's
 * interfaces (owners_sync(); *@n: the addresses owned); off: empty it. */
int datapath_owners(struct datapath *dp, bool on, unsigned int *n);

/* Kernel features the datapath needs; -EOPNOTSUPP with @what naming the
 * first one missing. */
int datapath_probe(const char **what);
/* Open and load the programs, reusing the maps pinned in @pin_dir (so live
 * sockets stay in the same sockhash) or creating and pinning new ones; pin
 * the programs; attach the sk_msg program to the sockhash. */
int datapath_load(struct datapath *dp, const char *pin_dir, uint32_t max_sockets);
/* Write the run-time maps from @cfg and make the set of attached cgroups
 * exactly @cg: new ones get a pinned link, pinned ones get the new program
 * swapped in place, links to cgroups not listed are detached. */
int datapath_apply(struct datapath *dp, const struct config *cfg, const struct cgroup_target *cg,
		   int n_cg);
/* The fd to poll for leave events (readable: call datapath_reap()). */
int datapath_leave_fd(const struct datapath *dp);
/* Take the sockets of leaving pairs out of the map once nothing redirected
 * to them is unread (ll_reap, in every network namespace of a process in
 * @cgroups); *pending: how many still wait, to try again shortly. */
int datapath_reap(struct datapath *dp, const char *const *cgroups, int n, unsigned int *pending);
/* Put sockets of pairs that left the map for TCP back in once ll_reenter()
 * allows (ll_reenter, in every network namespace of a process in @cgroups:
 * absolute paths); *pending: how many still wait, to try again later. */
int datapath_reenter(struct datapath *dp, const char *const *cgroups, int n, unsigned int *pending);
/* Release the skeleton; everything pinned stays. */
void datapath_close(struct datapath *dp);
/* Every socket in the pinned sockhash (and an older version's) with its
 * redirected bytes waiting unread and its path (ll_iter in every network
 * namespace of the host). *out is malloc'd; -ENOENT: nothing pinned. */
int datapath_conns(const char *pin_dir, struct ll_conn_rec **out, size_t *n);

/*
 * Stop inserting and redirecting, detach from every cgroup, wait up to
 * @timeout_ms for every redirected byte to be read (unless @force), empty
 * the sockhash (sockets go back to plain TCP) and remove every pin and the
 * directory. -ENOENT when nothing is pinned in @pin_dir; -EBUSY when bytes
 * were still unread at the timeout (*unread says how many; the datapath is
 * then left drained and detached, pins in place, nothing lost).
 */
int datapath_uninstall(const char *pin_dir, unsigned int timeout_ms, bool force, uint64_t *unread);

#endif
