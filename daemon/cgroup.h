/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup v2: where it is mounted, path resolution, ids. */
#ifndef LOOPLESS_CGROUP_H
#define LOOPLESS_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cgroup2 mount point from /proc/self/mountinfo (first one found).
 * -ENOENT when cgroup v2 is not mounted. */
int cgroup2_mount(char *buf, size_t len);
/* @path as written in the config: absolute, or relative to @mnt ("/" and ""
 * name its root). Writes the absolute path; -ENOENT / -ENOTDIR when it does
 * not exist, -EMEDIUMTYPE when it is not on a cgroup2 file system. */
int cgroup_resolve(const char *mnt, const char *path, char *out, size_t len);
/* The cgroup id the kernel reports for @path (its kernfs inode number). */
int cgroup_id(const char *path, uint64_t *id);
/* Find the path of cgroup @id below @mnt; -ENOENT when gone. */
int cgroup_path_of(const char *mnt, uint64_t id, char *out, size_t len);

#define CGROUP_UNITS_MAX 32

/* The systemd units whose processes are in a cgroup (its *.service and
 * *.scope groups with a process), and how many processes it holds in all. */
struct cgroup_units {
	int procs;
	int n;
	bool more; /* more units than CGROUP_UNITS_MAX */
	struct {
		char name[128];
		char path[4096];
		int procs;
	} unit[CGROUP_UNITS_MAX];
};
int cgroup_units(const char *path, struct cgroup_units *u);

#endif
