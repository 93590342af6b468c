// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include "log.h"
#include "pins.h"

/* One per line: clang-format 14 would pack them in pairs. */
/* clang-format off */
const char *const pin_map_names[PIN_NR_MAPS] = {
	[PIN_SOCK_HASH] = "sock_hash",
	[PIN_COUNTERS] = "counters",
	[PIN_CONFIG] = "ll_config",
	[PIN_PORTS] = "ports",
	[PIN_SK_STATE] = "sk_state",
	[PIN_PEERS] = "peers",
	[PIN_LISTENERS] = "listeners",
	[PIN_LEAVE_EVENTS] = "leave_events",
	[PIN_NETNS_WORK] = "netns_work",
	[PIN_ADDR_OWNERS] = "addr_owners",
	[PIN_SPLICERS] = "splicers",
	[PIN_LEGACY_SOCK_HASH] = "legacy_sock_hash",
	[PIN_LOCAL_ADDRS] = "local_addrs",
};
/* clang-format on */

const char *const pin_prog_names[2] = { "ll_sockops", "ll_sk_msg" };

int pins_path(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int pins_unlink(const char *dir, const char *name)
{
	char path[4096];
	int err = pins_path(path, sizeof(path), dir, name);

	if (err)
		return err;
	return unlink(path) && errno != ENOENT ? -errno : 0;
}

int pins_detach_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id)
{
	/* EINVAL: already detached (its cgroup was removed). */
	if (cgroup_id && bpf_link_detach(link_fd) && errno != EINVAL)
		return -errno;
	return pins_unlink(dir, name);
}

int pins_remove_all(const char *dir)
{
	size_t i;
	int err;

	for (i = 0; i < PIN_NR_MAPS; i++) {
		err = pins_unlink(dir, pin_map_names[i]);
		if (err)
			return err;
	}
	for (i = 0; i < sizeof(pin_prog_names) / sizeof(pin_prog_names[0]); i++) {
		err = pins_unlink(dir, pin_prog_names[i]);
		if (err)
			return err;
	}
	return rmdir(dir) && errno != ENOENT ? -errno : 0;
}

static bool on_bpffs(const char *path)
{
	struct statfs sfs;

	return !statfs(path, &sfs) && sfs.f_type == BPF_FS_MAGIC;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

static int mount_bpffs(const char *where)
{
	int err = mkdir_p(where);

	if (err)
		return err;
	if (mount("bpf", where, "bpf", 0, "mode=0700"))
		return -errno;
	log_info("mounted bpffs on %s", where);
	return 0;
}

int pins_prepare(const char *dir)
{
	char parent[4096];
	char *slash;
	int err;

	if (on_bpffs(dir))
		return 0;
	/* The nearest existing ancestor decides where bpffs is. */
	snprintf(parent, sizeof(parent), "%s", dir);
	while ((slash = strrchr(parent, '/')) && slash != parent) {
		*slash = '\0';
		if (!access(parent, F_OK))
			break;
	}
	if (!on_bpffs(parent)) {
		if (!strncmp(dir, "/sys/fs/bpf/", 12))
			err = mount_bpffs("/sys/fs/bpf");
		else
			err = mount_bpffs(dir);
		if (err)
			return err;
	}
	err = mkdir_p(dir);
	if (err)
		return err;
	return on_bpffs(dir) ? 0 : -EMEDIUMTYPE;
}

int pins_lock(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int pins_open(const char *dir, struct pinned *p)
{
	char path[4096];
	int i, err;

	for (i = 0; i < PIN_NR_MAPS; i++)
		p->maps[i] = -1;
	for (i = 0; i < PIN_NR_MAPS; i++) {
		err = pins_path(path, sizeof(path), dir, pin_map_names[i]);
		if (err)
			goto fail;
		p->maps[i] = bpf_obj_get(path);
		if (p->maps[i] < 0 && errno != ENOENT) {
			err = -errno;
			goto fail;
		}
	}
	if (p->maps[PIN_SOCK_HASH] < 0 || p->maps[PIN_COUNTERS] < 0) {
		err = -ENOENT;
		goto fail;
	}
	return 0;
fail:
	pins_close(p);
	return err;
}

void pins_close(struct pinned *p)
{
	int i;

	for (i = 0; i < PIN_NR_MAPS; i++) {
		if (p->maps[i] >= 0)
			close(p->maps[i]);
		p->maps[i] = -1;
	}
}

int pins_for_each_link_named(const char *dir, const char *prefix, pins_link_fn fn, void *arg)
{
	struct dirent *de;
	char path[4096];
	int ret = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		if (pins_path(path, sizeof(path), dir, de->d_name))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0) {
			ret = -errno;
			break;
		}
		/* A link whose cgroup was removed reports cgroup_id 0. */
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			info.cgroup.cgroup_id = 0;
		ret = fn(dir, de->d_name, fd, info.cgroup.cgroup_id, arg);
		close(fd);
	}
	closedir(d);
	return ret;
}
