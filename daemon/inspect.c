// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The pinned datapath seen from outside the daemon (the loopless CLI):
 * which sockets are in the map and how they stand (datapath_conns), and
 * taking it all down without dropping a redirected byte
 * (datapath_uninstall).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "loopless.h"
#include "loopless.skel.h"
#include "datapath.h"
#include "log.h"
#include "netns.h"
#include "pins.h"

static int detach_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id,
		       void *arg)
{
	(void)arg;
	return pins_detach_link(dir, name, link_fd, cgroup_id);
}

/* A socket of a sockhash, as a lookup from user space gives it. */
struct member {
	__u64 cookie;
	struct ll_key key;
	__u32 flags; /* LL_REC_LEGACY for an older version's map */
};

struct members {
	struct member *v;
	size_t n, cap;
};

static int cmp_member(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/* Append every socket of the sockhash @fd (-1: none pinned) to @m. A
 * key of a map of older versions is at most 64 bytes. */
static int sockhash_members(int fd, __u32 flags, struct members *m)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	__u8 key[64], next[64];
	struct member *tmp;
	__u64 cookie;
	bool more;

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.key_size > sizeof(key) || info.value_size != sizeof(cookie))
		return -EINVAL;
	for (more = !bpf_map_get_next_key(fd, NULL, next); more;
	     more = !bpf_map_get_next_key(fd, key, next)) {
		memcpy(key, next, sizeof(key));
		if (bpf_map_lookup_elem(fd, key, &cookie))
			continue; /* closed meanwhile */
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 64;
			tmp = realloc(m->v, m->cap * sizeof(*m->v));
			if (!tmp)
				return -ENOMEM;
			m->v = tmp;
		}
		memset(&m->v[m->n], 0, sizeof(m->v[m->n]));
		m->v[m->n].cookie = cookie;
		memcpy(&m->v[m->n].key, key,
		       info.key_size < sizeof(struct ll_key) ? info.key_size :
							       sizeof(struct ll_key));
		m->v[m->n].flags = flags;
		m->n++;
	}
	return 0;
}

struct conns_walk {
	struct bpf_link *link;
	struct ll_conn_rec *recs;
	size_t len, cap;
};

/* Append ll_iter's records of the thread's namespace. */
static int conns_netns(void *ctx)
{
	struct conns_walk *w = ctx;
	struct ll_conn_rec *tmp;
	int fd, err = 0;
	ssize_t r;

	fd = bpf_iter_create(bpf_link__fd(w->link));
	if (fd < 0)
		return -errno;
	for (;;) {
		if (w->len == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 64;
			tmp = realloc(w->recs, w->cap * sizeof(*w->recs));
			if (!tmp) {
				err = -ENOMEM;
				break;
			}
			w->recs = tmp;
		}
		r = read(fd, &w->recs[w->len], (w->cap - w->len) * sizeof(*w->recs));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (!r)
			break;
		w->len += r / sizeof(*w->recs);
	}
	close(fd);
	return err;
}

/*
 * Which sockets are in the sockhashes comes from user space lookups (key
 * and cookie); what each one is (tuple, queue, process, reader) from
 * ll_iter, an iter/tcp walk of every network namespace of the host, joined
 * by cookie. A socket in the map that no walk reached (its namespace has no
 * process left and no /run/netns name) is listed with its key only.
 */
static int conns_join(struct loopless_bpf *skel, struct members *m, struct ll_conn_rec **out,
		      size_t *n)
{
	struct conns_walk w = {};
	struct ll_conn_rec *tmp;
	struct member *hit;
	bool *found = NULL;
	size_t i, k = 0;
	int err;

	qsort(m->v, m->n, sizeof(*m->v), cmp_member);
	w.link = bpf_program__attach_iter(skel->progs.ll_iter, NULL);
	if (!w.link)
		return -errno;
	err = netns_for_each_host(conns_netns, &w);
	bpf_link__destroy(w.link);
	if (err)
		goto out;
	found = calloc(m->n + 1, sizeof(*found));
	tmp = realloc(w.recs, (w.len + m->n + 1) * sizeof(*w.recs));
	if (!found || !tmp) {
		err = -ENOMEM;
		goto out;
	}
	w.recs = tmp;
	for (i = 0; i < w.len; i++) {
		hit = bsearch(&(struct member){ .cookie = w.recs[i].cookie }, m->v, m->n,
			      sizeof(*m->v), cmp_member);
		if (!hit || found[hit - m->v])
			continue; /* another tool's sockmap, or seen twice */
		found[hit - m->v] = true;
		w.recs[k] = w.recs[i];
		w.recs[k].key = hit->key;
		w.recs[k].flags |= hit->flags;
		k++;
	}
	for (i = 0; i < m->n; i++) {
		if (found[i])
			continue;
		memset(&w.recs[k], 0, sizeof(w.recs[k]));
		w.recs[k].cookie = m->v[i].cookie;
		w.recs[k].key = m->v[i].key;
		w.recs[k].flags = m->v[i].flags | LL_REC_UNSEEN;
		k++;
	}
	*out = w.recs;
	*n = k;
	w.recs = NULL;
out:
	free(found);
	free(w.recs);
	return err;
}

int datapath_conns(const char *pin_dir, struct ll_conn_rec **out, size_t *n)
{
	struct loopless_bpf *skel = NULL;
	struct members m = {};
	struct bpf_map *map;
	struct pinned p;
	int i, err;

	*out = NULL;
	*n = 0;
	err = pins_open(pin_dir, &p);
	if (err)
		return err;
	skel = loopless_bpf__open();
	if (!skel) {
		err = -errno;
		goto out;
	}
	bpf_program__set_autoload(skel->progs.ll_sockops, false);
	bpf_program__set_autoload(skel->progs.ll_sk_msg, false);
	bpf_program__set_autoload(skel->progs.ll_setsockopt, false);
	bpf_program__set_autoload(skel->progs.ll_recv, false);
	bpf_program__set_autoload(skel->progs.ll_splice, false);
	bpf_program__set_autoload(skel->progs.ll_reap, false);
	bpf_program__set_autoload(skel->progs.ll_reenter, false);
	/* The iterator reads the pinned maps; a map a pin set lacks (older
	 * layout) is created for this run only. */
	bpf_object__for_each_map(map, skel->obj)
	{
		for (i = 0; i < PIN_NR_MAPS; i++) {
			if (p.maps[i] < 0 || strcmp(bpf_map__name(map), pin_map_names[i]))
				continue;
			err = bpf_map__reuse_fd(map, p.maps[i]);
			if (err)
				goto out;
		}
	}
	err = loopless_bpf__load(skel);
	if (err)
		goto out;
	err = sockhash_members(p.maps[PIN_SOCK_HASH], 0, &m);
	/* An older version's sockets: only their tuple, cookie and queue mean
	 * something to this iterator. */
	if (!err)
		err = sockhash_members(p.maps[PIN_LEGACY_SOCK_HASH], LL_REC_LEGACY, &m);
	if (!err)
		err = conns_join(skel, &m, out, n);
out:
	loopless_bpf__destroy(skel);
	free(m.v);
	pins_close(&p);
	return err;
}

/* Take every socket out of the sockhash @fd (-1: none pinned). */
static int sockhash_clear(int fd)
{
	__u8 key[64], next[64];
	bool more;

	if (fd < 0)
		return 0;
	for (more = !bpf_map_get_next_key(fd, NULL, next); more;) {
		memcpy(key, next, sizeof(key));
		more = !bpf_map_get_next_key(fd, key, next);
		if (bpf_map_delete_elem(fd, key) && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* Bytes redirected and not read yet, over every socket in the sockhash. */
static int unread_bytes(const char *pin_dir, uint64_t *unread)
{
	struct ll_conn_rec *recs;
	size_t i, n;
	int err;

	err = datapath_conns(pin_dir, &recs, &n);
	if (err)
		return err;
	*unread = 0;
	for (i = 0; i < n; i++)
		*unread += recs[i].queued;
	free(recs);
	return 0;
}

int datapath_uninstall(const char *pin_dir, unsigned int timeout_ms, bool force, uint64_t *unread)
{
	struct ll_config drain = { .flags = LL_CFG_DRAIN };
	static const enum pin_map hashes[] = { PIN_SOCK_HASH, PIN_LEGACY_SOCK_HASH };
	struct pinned p;
	unsigned int waited = 0;
	__u32 zero = 0;
	size_t h;
	int err;

	*unread = 0;
	err = pins_open(pin_dir, &p);
	if (err)
		return err;
	/* 1. Stop: no socket enters the map and no byte is redirected from
	 * now on (every later byte takes the TCP path, which is ordered after
	 * what was already redirected, see ll_sk_msg). */
	if (p.maps[PIN_CONFIG] >= 0 &&
	    bpf_map_update_elem(p.maps[PIN_CONFIG], &zero, &drain, BPF_ANY)) {
		err = -errno;
		goto out;
	}
	/* 2. Detach from every cgroup: sockops first, so no socket enters the
	 * map while SO_ZEROCOPY is no longer guarded. */
	err = pins_for_each_link(pin_dir, detach_link, NULL);
	if (!err)
		err = pins_for_each_link_named(pin_dir, PIN_SOCKOPT_LINK_PREFIX, detach_link, NULL);
	if (err)
		goto out;
	/* The tracepoints: host-wide, nothing left to judge. */
	err = pins_unlink(pin_dir, PIN_RECV_LINK);
	if (!err)
		err = pins_unlink(pin_dir, PIN_SPLICE_LINK);
	if (err)
		goto out;
	/* 3. Wait for the readers to take what was redirected to them: taking
	 * a socket out of the map drops its queue. */
	for (;;) {
		err = unread_bytes(pin_dir, unread);
		if (err)
			goto out;
		if (!*unread || force)
			break;
		if (waited >= timeout_ms) {
			err = -EBUSY;
			goto out;
		}
		usleep(50 * 1000);
		waited += 50;
	}
	/* 4. Empty the sockhashes (this version's and an older one's): each
	 * socket gets its own proto back. A map cannot simply be unpinned: the
	 * sk_msg program held by the psocks holds the map, so it would live on
	 * with its sockets. */
	for (h = 0; h < sizeof(hashes) / sizeof(hashes[0]); h++) {
		err = sockhash_clear(p.maps[hashes[h]]);
		if (err)
			goto out;
	}
	/* 5. Remove the pins and the directory. */
	err = pins_remove_all(pin_dir);
out:
	pins_close(&p);
	return err;
}
