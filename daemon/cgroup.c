// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include "cgroup.h"

/* mountinfo escapes blanks, tabs, newlines and backslashes as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

int cgroup2_mount(char *buf, size_t len)
{
	char *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* "36 25 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw" */
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *mnt = NULL, *save = NULL, *tok;
		int i = 0;

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			if (++i == 5)
				mnt = tok;
		if (!mnt)
			continue;
		unescape(mnt);
		if (strlen(mnt) >= len) {
			err = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, mnt);
		err = 0;
		break;
	}
	free(line);
	fclose(f);
	return err;
}

int cgroup_resolve(const char *mnt, const char *path, char *out, size_t len)
{
	struct statfs sfs;
	struct stat st;
	int n;

	if (path[0] == '/' && path[1] != '\0')
		n = snprintf(out, len, "%s", path);
	else
		n = snprintf(out, len, "%s%s%s", mnt, path[0] && path[0] != '/' ? "/" : "",
			     path[0] == '/' ? "" : path);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	/* Drop a trailing slash so the same cgroup always reads the same. */
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	if (stat(out, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (statfs(out, &sfs))
		return -errno;
	if (sfs.f_type != CGROUP2_SUPER_MAGIC)
		return -EMEDIUMTYPE;
	return 0;
}

int cgroup_id(const char *path, uint64_t *id)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	*id = st.st_ino;
	return 0;
}

/* nftw has no user pointer: the walk is single-threaded, so statics do. */
static uint64_t walk_id;
static char *walk_out;
static size_t walk_len;

static int walk_one(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_D || st->st_ino != walk_id)
		return 0;
	snprintf(walk_out, walk_len, "%s", fpath);
	return 1;
}

int cgroup_path_of(const char *mnt, uint64_t id, char *out, size_t len)
{
	int ret;

	walk_id = id;
	walk_out = out;
	walk_len = len;
	ret = nftw(mnt, walk_one, 16, FTW_PHYS | FTW_MOUNT);
	if (ret < 0)
		return -errno;
	return ret == 1 ? 0 : -ENOENT;
}

/* Processes listed in @dir/cgroup.procs. */
static int count_procs(const char *dir)
{
	char path[4096];
	int n = 0, c, last = '\n';
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF) {
		if (c == '\n' && last != '\n')
			n++;
		last = c;
	}
	fclose(f);
	return n + (last != '\n');
}

static struct cgroup_units *units_out;

static int units_one(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
	struct cgroup_units *u = units_out;
	const char *name = fpath + ftw->base, *dot = strrchr(name, '.');
	int n;

	(void)st;
	if (type != FTW_D)
		return 0;
	n = count_procs(fpath);
	u->procs += n;
	/* A unit's cgroup is named after it (systemd.unit(5)): count its
	 * processes, its own and those of groups below it, under it. */
	if (ftw->level > 0 && dot && (!strcmp(dot, ".service") || !strcmp(dot, ".scope"))) {
		if (u->n < CGROUP_UNITS_MAX) {
			snprintf(u->unit[u->n].name, sizeof(u->unit[0].name), "%s", name);
			u->unit[u->n].procs = 0;
			snprintf(u->unit[u->n].path, sizeof(u->unit[0].path), "%s", fpath);
			u->n++;
		} else {
			u->more = true;
		}
	}
	/* nftw goes depth first: the innermost unit seen last that holds
	 * this group owns its processes. */
	for (int i = u->n - 1; i >= 0 && n; i--) {
		size_t l = strlen(u->unit[i].path);

		if (!strncmp(fpath, u->unit[i].path, l) && (fpath[l] == '/' || !fpath[l])) {
			u->unit[i].procs += n;
			break;
		}
	}
	return 0;
}

int cgroup_units(const char *path, struct cgroup_units *u)
{
	int ret, i, k;

	memset(u, 0, sizeof(*u));
	units_out = u;
	ret = nftw(path, units_one, 16, FTW_PHYS | FTW_MOUNT);
	if (ret < 0)
		return -errno;
	/* Units without a process (stopped, a slice's leftovers) are not "in" it. */
	for (i = k = 0; i < u->n; i++)
		if (u->unit[i].procs)
			u->unit[k++] = u->unit[i];
	u->n = k;
	return 0;
}
