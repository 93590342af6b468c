/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Joining a cgroup that looplessd serves, for `loopless exec`: which cgroups
 * the pinned datapath is attached to, which of them (or which group below
 * one) to join, and moving the calling process there.
 *
 * Not with libcgroup (2.0.2, Debian 12): it reaches a v2 group only through
 * a controller enabled for it. With none enabled (loopless needs none, and
 * a hybrid host's v2 hierarchy often has none), cgroup_create_cgroup() and
 * cgroup_attach_task() return 0 and do nothing; naming a controller the
 * hierarchy hosts makes cgroup_create_cgroup() enable it in the parent's
 * cgroup.subtree_control (a change to the host's cgroup setup), and
 * cgroup_attach_task() fails (ECGROUPNOTMOUNTED) for a group whose parent
 * does not enable it. Two writes to cgroupfs do the job without either.
 */
#ifndef LOOPLESS_JOIN_H
#define LOOPLESS_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

#define JOIN_MAX_SERVED 64

struct served {
	char mnt[CONFIG_PATH_MAX]; /* the cgroup2 mount */
	int n;
	/* Absolute paths, lowest cgroup id (the oldest group) first. */
	char path[JOIN_MAX_SERVED][CONFIG_PATH_MAX];
};

/* The cgroups the datapath pinned in @pin_dir is attached to (its sockops
 * links; a removed cgroup is left out). -ENOENT: nothing pinned. */
int join_served(const char *pin_dir, struct served *s);

/* Whether @path is @root or a group below it (both absolute, no trailing
 * slash but for "/"): programs attached to @root run for it. */
bool join_within(const char *path, const char *root);

/* The group to join: @name (absolute, or relative to the cgroup2 mount)
 * when given, else the first served one. -ESRCH when @name is neither a
 * served cgroup nor below one (*out then holds the resolved path). */
int join_pick(const struct served *s, const char *name, char *out, size_t len);

/* Move the calling process into @path (below @mnt), creating it when it is
 * missing, and check in /proc/self/cgroup that it moved (-EIO otherwise). */
int join_cgroup(const char *mnt, const char *path);

#endif
