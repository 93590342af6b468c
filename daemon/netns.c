// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "log.h"
#include "netns.h"

/* A refused setns() is said once per process. */
static bool refused_said;

/* Namespaces visited in one walk; more are skipped (and said once). */
#define NETNS_MAX 1024
/* Nesting of cgroup directories followed. */
#define NETNS_DEPTH 32

struct walk {
	int (*fn)(void *ctx);
	bool (*want)(uint64_t cookie, void *ctx);
	void *ctx;
	int self; /* the thread's own namespace, to come back to */
	ino_t seen[NETNS_MAX];
	int n_seen;
	bool full;
};

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* Netns cookies by namespace inode, kept across walks (a cookie never
 * changes; an inode is reused only after its namespace is gone, and then
 * the entry is simply wrong once: the walk visits a namespace it could
 * have skipped, or skips one for a pass). */
static struct {
	ino_t ino;
	uint64_t cookie;
} cookies[NETNS_MAX];
static int n_cookies, next_cookie;

/* The cookie of the namespace the thread is in now (inode @ino). */
static uint64_t cookie_here(ino_t ino)
{
	socklen_t len = sizeof(uint64_t);
	uint64_t c = 0;
	int i, fd;

	for (i = 0; i < n_cookies; i++)
		if (cookies[i].ino == ino)
			return cookies[i].cookie;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &c, &len))
		c = 0;
	close(fd);
	if (!c)
		return 0;
	i = n_cookies < NETNS_MAX ? n_cookies++ : next_cookie++ % NETNS_MAX;
	cookies[i].ino = ino;
	cookies[i].cookie = c;
	return c;
}

uint64_t netns_cookie(void)
{
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st))
		return 0;
	return cookie_here(st.st_ino);
}

/* Run w->fn here unless w->want says there is nothing to do (0: unknown,
 * visit). */
static int run_here(struct walk *w, ino_t ino)
{
	uint64_t c;

	if (w->want) {
		c = cookie_here(ino);
		if (c && !w->want(c, w->ctx))
			return 0;
	}
	return w->fn(w->ctx);
}

static bool seen(struct walk *w, ino_t ino)
{
	int i;

	for (i = 0; i < w->n_seen; i++)
		if (w->seen[i] == ino)
			return true;
	return false;
}

/* Run w->fn in the namespace @path names (/proc/PID/ns/net, a bind mount
 * in /run/netns) if it is a new one. One gone meanwhile is skipped. */
static int visit_ns(struct walk *w, const char *path)
{
	struct stat st;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || seen(w, st.st_ino)) {
		close(fd);
		return 0;
	}
	if (w->n_seen == NETNS_MAX) {
		if (!w->full)
			log_warn("more than %d network namespaces: some are not visited",
				 NETNS_MAX);
		w->full = true;
		close(fd);
		return 0;
	}
	w->seen[w->n_seen++] = st.st_ino;
	if (setns(fd, CLONE_NEWNET)) {
		err = -errno;
		close(fd);
		if (err == -EINVAL)
			return 0; /* gone meanwhile */
		/* Without CAP_SYS_ADMIN (looplessd.service) or under a filter
		 * (RestrictNamespaces=): only the own namespace is walked. */
		if (err == -EPERM) {
			if (!refused_said)
				log_warn("cannot enter other network namespaces (setns: %s; it "
					 "needs CAP_SYS_ADMIN): their sockets are walked only by "
					 "their own segments",
					 strerror(-err));
			refused_said = true;
			return 0;
		}
		return err;
	}
	close(fd);
	err = run_here(w, st.st_ino);
	/* Not coming back would leave the daemon in a pod's namespace. */
	if (setns(w->self, CLONE_NEWNET)) {
		log_error("cannot return to looplessd's network namespace: %s", strerror(errno));
		abort();
	}
	return err;
}

static int visit_pid(struct walk *w, long pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
	return visit_ns(w, path);
}

static int visit_procs(struct walk *w, int dirfd)
{
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	FILE *f;
	long pid;
	int err = 0;

	if (fd < 0)
		return 0; /* removed meanwhile */
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -errno;
	}
	while (!err && fscanf(f, "%ld", &pid) == 1)
		err = visit_pid(w, pid);
	fclose(f);
	return err;
}

/* @dirfd is consumed. */
static int visit_cgroup(struct walk *w, int dirfd, int depth)
{
	struct dirent *de;
	DIR *d;
	int err;

	err = visit_procs(w, dirfd);
	if (err || depth == NETNS_DEPTH) {
		close(dirfd);
		return err;
	}
	d = fdopendir(dirfd);
	if (!d) {
		err = -errno;
		close(dirfd);
		return err;
	}
	while (!err && (de = readdir(d))) {
		int sub;

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sub >= 0)
			err = visit_cgroup(w, sub, depth + 1);
	}
	closedir(d);
	return err;
}

static struct walk *walk_start(bool (*want)(uint64_t cookie, void *ctx), int (*fn)(void *ctx),
			       void *ctx, int *err)
{
	struct walk *w;
	struct stat st;

	w = calloc(1, sizeof(*w));
	if (!w) {
		*err = -ENOMEM;
		return NULL;
	}
	w->fn = fn;
	w->want = want;
	w->ctx = ctx;
	w->self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (w->self < 0 || fstat(w->self, &st)) {
		*err = -errno;
		if (w->self >= 0)
			close(w->self);
		free(w);
		return NULL;
	}
	w->seen[w->n_seen++] = st.st_ino;
	*err = run_here(w, st.st_ino);
	return w;
}

static int walk_end(struct walk *w, int err)
{
	close(w->self);
	free(w);
	return err;
}

int netns_for_each(const char *const *cgroups, int n, bool (*want)(uint64_t cookie, void *ctx),
		   int (*fn)(void *ctx), void *ctx)
{
	struct walk *w;
	int i, fd, err;

	w = walk_start(want, fn, ctx, &err);
	if (!w)
		return err;
	for (i = 0; !err && i < n; i++) {
		fd = open(cgroups[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			err = visit_cgroup(w, fd, 0);
	}
	return walk_end(w, err);
}

/* Every name in directory @dir, as @fmt (one %s) turns it into a path. */
static int visit_dir(struct walk *w, const char *dir, const char *fmt, bool pids)
{
	char path[300];
	struct dirent *de;
	DIR *d;
	int err = 0;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!err && (de = readdir(d))) {
		if (de->d_name[0] == '.' || (pids && (de->d_name[0] < '0' || de->d_name[0] > '9')))
			continue;
		snprintf(path, sizeof(path), fmt, de->d_name);
		err = visit_ns(w, path);
	}
	closedir(d);
	return err;
}

int netns_for_each_host(int (*fn)(void *ctx), void *ctx)
{
	struct walk *w;
	int err;

	w = walk_start(NULL, fn, ctx, &err);
	if (!w)
		return err;
	if (!err)
		err = visit_dir(w, "/proc", "/proc/%s/ns/net", true);
	if (!err)
		err = visit_dir(w, "/run/netns", "/run/netns/%s", false);
	return walk_end(w, err);
}
