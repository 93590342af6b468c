// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "cgroup.h"
#include "join.h"
#include "log.h"
#include "pins.h"

struct link_ids {
	uint64_t id[JOIN_MAX_SERVED];
	int n;
};

static int note_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id, void *arg)
{
	struct link_ids *l = arg;

	(void)dir;
	(void)name;
	(void)link_fd;
	if (cgroup_id && l->n < JOIN_MAX_SERVED)
		l->id[l->n++] = cgroup_id;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int join_served(const char *pin_dir, struct served *s)
{
	struct link_ids l = {};
	struct pinned p;
	int i, err;

	memset(s, 0, sizeof(*s));
	err = pins_open(pin_dir, &p);
	if (err)
		return err;
	pins_close(&p);
	err = cgroup2_mount(s->mnt, sizeof(s->mnt));
	if (err)
		return err;
	err = pins_for_each_link(pin_dir, note_link, &l);
	if (err)
		return err;
	qsort(l.id, l.n, sizeof(l.id[0]), cmp_id);
	for (i = 0; i < l.n; i++)
		if (!cgroup_path_of(s->mnt, l.id[i], s->path[s->n], sizeof(s->path[0])))
			s->n++;
	return 0;
}

bool join_within(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return path[0] == '/';
	return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}

/* cgroup_resolve() wants the group to exist; one to be created is resolved
 * through its parent. */
static int resolve_new(const char *mnt, const char *name, char *out, size_t len)
{
	char parent[CONFIG_PATH_MAX];
	const char *slash;
	int err;

	err = cgroup_resolve(mnt, name, out, len);
	if (err != -ENOENT)
		return err;
	slash = strrchr(name, '/');
	if (!slash || !slash[1] || (size_t)(slash - name) >= sizeof(parent))
		return -ENOENT;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - name), name);
	err = resolve_new(mnt, parent[0] ? parent : "/", out, len);
	if (err)
		return err;
	/* cgroup_resolve() gives "/sys/fs/cgroup/x", never a bare "/". */
	if ((size_t)snprintf(out + strlen(out), len - strlen(out), "/%s", slash + 1) >=
	    len - strlen(out))
		return -ENAMETOOLONG;
	return 0;
}

int join_pick(const struct served *s, const char *name, char *out, size_t len)
{
	int i, err;

	if (!name) {
		if (!s->n)
			return -ESRCH;
		snprintf(out, len, "%s", s->path[0]);
		return 0;
	}
	err = resolve_new(s->mnt, name, out, len);
	if (err)
		return err;
	for (i = 0; i < s->n; i++)
		if (join_within(out, s->path[i]))
			return 0;
	return -ESRCH;
}

/* mkdir when missing, then cgroup.procs ("0": the writer itself). */
static int join_direct(const char *path, bool create)
{
	char procs[CONFIG_PATH_MAX + 16];
	int fd, err = 0;

	if (create && mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "0\n", 2) != 2)
		err = -errno;
	close(fd);
	return err;
}

/* Whether /proc/self/cgroup puts us in @rel of the v2 hierarchy. */
static bool in_cgroup(const char *rel)
{
	char line[CONFIG_PATH_MAX + 8];
	bool in = false;
	FILE *f;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	while (!in && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		in = !strncmp(line, "0::", 3) && !strcmp(line + 3, rel);
	}
	fclose(f);
	return in;
}

int join_cgroup(const char *mnt, const char *path)
{
	const char *rel = path + strlen(mnt);
	struct stat st;
	int err;

	if (!join_within(path, mnt))
		return -EINVAL;
	if (!*rel)
		rel = "/";
	err = join_direct(path, stat(path, &st) != 0);
	if (err)
		return err;
	return in_cgroup(rel) ? 0 : -EIO;
}
