/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pin directory: what looplessd leaves in bpffs so the datapath outlives
 * it, and how the CLI finds it again.
 *
 *   <dir>/sock_hash counters ll_config ports sk_state peers listeners
 *         leave_events netns_work addr_owners splicers                   maps
 *   <dir>/legacy_sock_hash     an older looplessd's sockhash (4-tuple keys),
 *                              kept while sockets it redirects are open
 *   <dir>/ll_sockops ll_sk_msg                                      programs
 *   <dir>/link_cg_<cgroup id>                          cgroup links: ll_sockops
 *   <dir>/link_sockopt_cg_<cgroup id>                               ll_setsockopt
 *   <dir>/link_recv                              ll_recv (tp_btf, host-wide)
 *   <dir>/link_splice                          ll_splice (tp_btf, host-wide)
 */
#ifndef LOOPLESS_PINS_H
#define LOOPLESS_PINS_H

#include <stddef.h>
#include <stdint.h>

#define PIN_LINK_PREFIX "link_cg_"
#define PIN_SOCKOPT_LINK_PREFIX "link_sockopt_cg_"
/* The tp_btf/sock_recv_length link (ll_recv): it is global, not per cgroup. */
#define PIN_RECV_LINK "link_recv"
/* The tp_btf/tcp_rcv_space_adjust link (ll_splice), global too. */
#define PIN_SPLICE_LINK "link_splice"

enum pin_map {
	PIN_SOCK_HASH,
	PIN_COUNTERS,
	PIN_CONFIG,
	PIN_PORTS,
	PIN_SK_STATE,
	PIN_PEERS,
	PIN_LISTENERS,
	PIN_LEAVE_EVENTS,
	PIN_NETNS_WORK,
	PIN_ADDR_OWNERS,
	PIN_SPLICERS,
	/* Not maps of this version's programs: */
	PIN_LEGACY_SOCK_HASH, /* see above; optional */
	PIN_LOCAL_ADDRS, /* pinned by versions that used local_addrs; removed */
	PIN_NR_MAPS,
};

extern const char *const pin_map_names[PIN_NR_MAPS];
extern const char *const pin_prog_names[2];

struct pinned {
	int maps[PIN_NR_MAPS]; /* -1 when absent */
};

/* Make sure @dir is a directory on bpffs: mount bpffs (on /sys/fs/bpf for
 * paths below it, else on @dir itself) when none is mounted, then create
 * @dir. */
int pins_prepare(const char *dir);
/* <dir>/<name> into @out. */
int pins_path(char *out, size_t len, const char *dir, const char *name);
/* Remove the pin <dir>/<name>; one already gone is fine. */
int pins_unlink(const char *dir, const char *name);
/* Detach the cgroup link @link_fd (pinned as <dir>/<name>; @cgroup_id 0:
 * its cgroup is gone) and remove its pin. */
int pins_detach_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id);
/* Remove every map and program pin of this version and the directory
 * (links first: pins_detach_link()). */
int pins_remove_all(const char *dir);
/* Take the pin dir's lock (flock on the directory): -EWOULDBLOCK when
 * another looplessd holds it. Returns the fd holding the lock. */
int pins_lock(const char *dir);
/* Open the pinned maps; -ENOENT when no datapath is pinned in @dir. */
int pins_open(const char *dir, struct pinned *p);
void pins_close(struct pinned *p);

/* Calls @fn for each pinned cgroup link whose name starts with @prefix,
 * stopping at the first non-zero return. @link_fd is owned by the caller of
 * fn only during the call. */
typedef int (*pins_link_fn)(const char *dir, const char *name, int link_fd, uint64_t cgroup_id,
			    void *arg);
int pins_for_each_link_named(const char *dir, const char *prefix, pins_link_fn fn, void *arg);
/* The sockops links: one per cgroup loopless is attached to. */
static inline int pins_for_each_link(const char *dir, pins_link_fn fn, void *arg)
{
	return pins_for_each_link_named(dir, PIN_LINK_PREFIX, fn, arg);
}

#endif
