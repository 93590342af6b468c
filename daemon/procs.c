// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "procs.h"

static int cmp_ino(const void *a, const void *b)
{
	const struct sock_owner *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void read_comm(const char *proc_root, pid_t pid, char comm[16])
{
	char path[256];
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/comm", proc_root, (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(comm, 16, f))
		snprintf(comm, 16, "?");
	if (f)
		fclose(f);
	len = strcspn(comm, "\n");
	comm[len] = '\0';
}

/* Look at every fd of @pid; claim the owners whose inode it holds. */
static void scan_pid(const char *proc_root, pid_t pid, struct sock_owner *owners, size_t n)
{
	char dir[256], link[512], target[64];
	unsigned long long ino;
	struct sock_owner *o;
	struct dirent *de;
	ssize_t len;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%d/fd", proc_root, (int)pid);
	d = opendir(dir);
	if (!d)
		return; /* exited, or not ours to read */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%llu]", &ino) != 1)
			continue;
		o = (struct sock_owner *)procs_owner(owners, n, ino);
		if (o && !o->pid) {
			o->pid = pid;
			read_comm(proc_root, pid, o->comm);
		}
	}
	closedir(d);
}

const struct sock_owner *procs_owner(const struct sock_owner *owners, size_t n, uint64_t ino)
{
	struct sock_owner key = { .ino = ino };

	return ino ? bsearch(&key, owners, n, sizeof(*owners), cmp_ino) : NULL;
}

void procs_find_owners(struct sock_owner *owners, size_t n, const char *proc_root)
{
	struct dirent *de;
	size_t i;
	DIR *d;

	for (i = 0; i < n; i++) {
		owners[i].pid = 0;
		owners[i].comm[0] = '\0';
	}
	qsort(owners, n, sizeof(*owners), cmp_ino);
	d = opendir(proc_root);
	if (!d)
		return; /* owners stay unknown: a display nicety, not an error */
	while ((de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]))
			scan_pid(proc_root, (pid_t)atoi(de->d_name), owners, n);
	closedir(d);
}
