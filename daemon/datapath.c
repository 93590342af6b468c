// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
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
#include "owners.h"
#include "log.h"
#include "netns.h"
#include "pins.h"

int datapath_probe(const char **what)
{
	static const struct {
		enum bpf_prog_type prog;
		enum bpf_func_id helper;
		const char *name;
	} helpers[] = {
		{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update,
		  "bpf_sock_hash_update in sockops" },
		{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie,
		  "bpf_get_netns_cookie in sockops (5.15)" },
		{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get,
		  "bpf_sk_storage_get in sockops" },
		{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash,
		  "bpf_msg_redirect_hash in sk_msg" },
		{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_netns_cookie,
		  "bpf_get_netns_cookie in sk_msg (5.15)" },
		{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, "bpf_sk_storage_get in sk_msg" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_set_retval,
		  "bpf_set_retval in cgroup/setsockopt (5.18)" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_sk_storage_get,
		  "bpf_sk_storage_get in cgroup/setsockopt" },
	};
	struct btf *vmlinux;
	bool have_cast, have_tp;
	size_t i;

	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, NULL) != 1) {
		*what = "BPF program type sockops";
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_MSG, NULL) != 1) {
		*what = "BPF program type sk_msg";
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCKOPT, NULL) != 1) {
		*what = "BPF program type cgroup sockopt";
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL) != 1) {
		*what = "BPF map type sockhash";
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, NULL) != 1) {
		*what = "BPF map type sk_storage";
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) != 1) {
		*what = "BPF map type ringbuf (5.8)";
		return -EOPNOTSUPP;
	}
	for (i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		if (libbpf_probe_bpf_helper(helpers[i].prog, helpers[i].helper, NULL) != 1) {
			*what = helpers[i].name;
			return -EOPNOTSUPP;
		}
	}
	/* The sender reads its peer through this kfunc (ll_sk_msg); without
	 * it the load would fail with a verifier log instead of this line. */
	vmlinux = btf__load_vmlinux_btf();
	if (!vmlinux) {
		*what = "BTF (/sys/kernel/btf/vmlinux)";
		return -EOPNOTSUPP;
	}
	have_cast = btf__find_by_name_kind(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC) >= 0;
	/* ll_recv attaches to it (tp_btf): how loopless sees its readers. */
	have_tp = btf__find_by_name_kind(vmlinux, "btf_trace_sock_recv_length", BTF_KIND_TYPEDEF) >=
		  0;
	btf__free(vmlinux);
	if (!have_cast) {
		*what = "the bpf_rdonly_cast kfunc (6.2)";
		return -EOPNOTSUPP;
	}
	if (!have_tp) {
		*what = "the sock_recv_length tracepoint (5.19)";
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * A pinned sockhash of another size cannot be reused (libbpf refuses an
 * incompatible map), and replacing it would drop every live socket: keep
 * its size and say how to change it.
 */
static uint32_t pinned_max_sockets(const char *pin_dir, uint32_t wanted)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[4096];
	int fd;

	if (pins_path(path, sizeof(path), pin_dir, pin_map_names[PIN_SOCK_HASH]))
		return wanted;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return wanted;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.max_entries != wanted) {
		log_warn("keeping the pinned sockhash's size %u (max_sockets=%u takes effect after "
			 "`loopless uninstall`)",
			 info.max_entries, wanted);
		wanted = info.max_entries;
	}
	close(fd);
	return wanted;
}

/* 1: the sockhash holds no socket, 0: it holds some, or -errno. Keys of any
 * version fit in the buffer (48 bytes at most so far). */
static int sockhash_empty(int fd)
{
	__u8 next[64];

	if (!bpf_map_get_next_key(fd, NULL, next))
		return 0;
	return errno == ENOENT ? 1 : -errno;
}

/*
 * Before the load: a pinned map that this version's programs cannot reuse
 * (libbpf refuses a map whose type, key, value or size differ) comes from an
 * older looplessd.
 * - The sockhash of a version that keyed sockets by their 4-tuple holds live
 *   connections, redirected by that version's sk_msg program (attached to the
 *   map, using that version's maps, which it holds). Unpinning it would free
 *   it and drop every socket's queue (sock_hash_free()), so it is pinned on
 *   as legacy_sock_hash: its connections stay accelerated until they close,
 *   and `loopless uninstall` drains it with the rest. New connections go into
 *   the new sockhash.
 * - Any other map (counters with fewer slots, peers and sk_state of another
 *   layout) is unpinned; the older programs hold what they still use, and
 *   counters start from 0 (a Prometheus counter reset).
 * A legacy sockhash whose last socket has closed is unpinned here too.
 */
static int set_aside_incompatible(const char *pin_dir, struct loopless_bpf *skel)
{
	char path[4096], legacy[4096];
	struct bpf_map *map;
	int fd, err = 0;

	if (pins_path(legacy, sizeof(legacy), pin_dir, pin_map_names[PIN_LEGACY_SOCK_HASH]))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(legacy);
	if (fd >= 0) {
		if (sockhash_empty(fd) == 1 && !unlink(legacy))
			log_info(
				"removed the older version's sockhash: its last connection closed");
		close(fd);
	}
	bpf_object__for_each_map(map, skel->obj)
	{
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		bool sized, compatible;

		if (pins_path(path, sizeof(path), pin_dir, bpf_map__name(map)))
			return -ENAMETOOLONG;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			close(fd);
			return err;
		}
		/* The sockhash and peers keep their pinned size
		 * (pinned_max_sockets()). */
		sized = map == skel->maps.sock_hash || map == skel->maps.peers;
		compatible = info.type == bpf_map__type(map) &&
			     info.key_size == bpf_map__key_size(map) &&
			     info.value_size == bpf_map__value_size(map) &&
			     (sized || info.max_entries == bpf_map__max_entries(map));
		if (compatible) {
			close(fd);
			continue;
		}
		if (map == skel->maps.sock_hash) {
			if (!access(legacy, F_OK)) {
				log_error("%s holds sockets of two older versions; `loopless "
					  "uninstall` once their connections are idle",
					  pin_dir);
				close(fd);
				return -EEXIST;
			}
			err = bpf_obj_pin(fd, legacy) ? -errno : 0;
			if (!err)
				log_info("kept the older version's sockhash (%u-byte keys) as %s: "
					 "its connections stay accelerated until they close",
					 info.key_size, legacy);
		}
		close(fd);
		if (!err && unlink(path))
			err = -errno;
		if (err)
			return err;
		if (map != skel->maps.sock_hash)
			log_info("replaced the pinned %s map of an older version%s",
				 bpf_map__name(map),
				 map == skel->maps.counters ? ": counters start from 0" : "");
	}
	/* Used by versions that keyed by address; nothing reads it now. */
	return pins_unlink(pin_dir, pin_map_names[PIN_LOCAL_ADDRS]);
}

static int pin_prog(struct bpf_program *prog, const char *pin_dir, const char *name)
{
	char path[4096];
	int err;

	/* The previous daemon's program stays alive as long as something
	 * uses it (a cgroup link until it is updated, psocks of older
	 * sockets); the pin only names the current one. */
	err = pins_unlink(pin_dir, name);
	if (!err)
		err = pins_path(path, sizeof(path), pin_dir, name);
	if (err)
		return err;
	return bpf_program__pin(prog, path);
}

/* An iterator of @prog over the sockhash @map_fd: its fd to read(), and in
 * *link what to destroy afterwards; -errno on failure. */
static int attach_global(struct bpf_program *prog, const char *pin_dir, const char *name);
static int leave_event(void *ctx, void *data, size_t size);

int datapath_load(struct datapath *dp, const char *pin_dir, uint32_t max_sockets)
{
	struct loopless_bpf *skel;
	struct bpf_map *map;
	char path[4096];
	int err;

	memset(dp, 0, sizeof(*dp));
	snprintf(dp->pin_dir, sizeof(dp->pin_dir), "%s", pin_dir);
	if (pins_path(path, sizeof(path), pin_dir, pin_map_names[PIN_SOCK_HASH]))
		return -ENAMETOOLONG;
	dp->adopted = access(path, F_OK) == 0;

	skel = loopless_bpf__open();
	if (!skel)
		return -errno;
	/* The iterator is the CLI's (datapath_conns). */
	bpf_program__set_autoload(skel->progs.ll_iter, false);
	err = set_aside_incompatible(pin_dir, skel);
	if (err) {
		log_error("cannot set aside the older version's pins in %s: %s", pin_dir,
			  strerror(-err));
		goto fail;
	}
	max_sockets = pinned_max_sockets(pin_dir, max_sockets);
	err = bpf_map__set_max_entries(skel->maps.sock_hash, max_sockets);
	if (!err)
		err = bpf_map__set_max_entries(skel->maps.peers, max_sockets);
	if (err)
		goto fail;
	/* With a pin path set, libbpf reuses a compatible pinned map at load
	 * time and pins the ones it creates. */
	bpf_object__for_each_map(map, skel->obj)
	{
		err = pins_path(path, sizeof(path), pin_dir, bpf_map__name(map));
		if (!err)
			err = bpf_map__set_pin_path(map, path);
		if (err)
			goto fail;
	}
	err = loopless_bpf__load(skel);
	if (err) {
		log_error("cannot load the BPF datapath: %s%s", strerror(-err),
			  dp->adopted ? " (the maps pinned in the pin dir may come from an "
					"incompatible version: `loopless uninstall` removes them)" :
					"");
		goto fail;
	}
	err = pin_prog(skel->progs.ll_sockops, pin_dir, pin_prog_names[0]);
	if (!err)
		err = pin_prog(skel->progs.ll_sk_msg, pin_dir, pin_prog_names[1]);
	if (err) {
		log_error("cannot pin programs in %s: %s", pin_dir, strerror(-err));
		goto fail;
	}
	/* Replaces the verdict program of the map for sockets inserted from
	 * now on; sockets already in it keep the program their psock took at
	 * insertion (sock_map_link()), which uses these same maps. */
	if (bpf_prog_attach(bpf_program__fd(skel->progs.ll_sk_msg),
			    bpf_map__fd(skel->maps.sock_hash), BPF_SK_MSG_VERDICT, 0)) {
		err = -errno;
		log_error("cannot attach sk_msg program to the sockhash: %s", strerror(-err));
		goto fail;
	}
	err = attach_global(skel->progs.ll_recv, pin_dir, PIN_RECV_LINK);
	if (!err)
		err = attach_global(skel->progs.ll_splice, pin_dir, PIN_SPLICE_LINK);
	if (err) {
		log_error("cannot attach the tracepoint programs (recvmsg, splice): %s",
			  strerror(-err));
		goto fail;
	}
	dp->leaves = ring_buffer__new(bpf_map__fd(skel->maps.leave_events), leave_event, dp, NULL);
	if (!dp->leaves) {
		err = -errno;
		log_error("cannot read the leave events: %s", strerror(-err));
		goto fail;
	}
	dp->skel = skel;
	return 0;
fail:
	loopless_bpf__destroy(skel);
	return err;
}

/*
 * A tracepoint program (ll_recv, ll_splice), host-wide, as a link pinned as
 * @name: it keeps judging readers while no looplessd runs. A newer daemon's
 * program replaces the pinned one: tracing links cannot swap programs
 * (bpf_link_update), so the new link is pinned beside it and renamed over
 * it, which drops the old link's last reference (both run for that moment;
 * they only set flags).
 */
static int attach_global(struct bpf_program *prog, const char *pin_dir, const char *name)
{
	char path[4096], tmp[4096], tmp_name[64];
	struct bpf_link *link;
	int err;

	snprintf(tmp_name, sizeof(tmp_name), "%s_new" /* bpffs refuses dots */, name);
	if (pins_path(path, sizeof(path), pin_dir, name) ||
	    pins_path(tmp, sizeof(tmp), pin_dir, tmp_name))
		return -ENAMETOOLONG;
	link = bpf_program__attach(prog);
	if (!link)
		return -errno;
	if (unlink(tmp) && errno != ENOENT) {
		err = -errno;
		goto out;
	}
	err = bpf_link__pin(link, tmp);
	if (err)
		goto out;
	if (rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
	}
out:
	/* Closes our fd: a pinned link stays (the pin holds it), one not
	 * pinned goes. (bpf_link__disconnect() would leak the fd and keep the
	 * link attached until this process exits, whatever its pin.) */
	bpf_link__destroy(link);
	return err;
}

/* Any record means "run ll_reap"; a pair that started leaving (not a
 * re-entry undone) is noted in dp->left. */
static int leave_event(void *ctx, void *data, size_t size)
{
	struct datapath *dp = ctx;
	__u32 ev;

	if (size >= sizeof(ev)) {
		memcpy(&ev, data, sizeof(ev));
		if (ev != LL_EVENT_UNDO)
			dp->left = true;
	}
	return 0;
}

int datapath_leave_fd(const struct datapath *dp)
{
	return dp->leaves ? ring_buffer__epoll_fd(dp->leaves) : -1;
}

/* Read an iterator's 4-byte records to the end: *waiting += those saying a
 * socket still waits (LL_REAP_WAITING), *left = any saying one left the map
 * (LL_REAP_LEFT; not LL_REAP_UNDONE). */
static int iter_tally(int fd, unsigned int *waiting, bool *left)
{
	__u32 rec[64];
	ssize_t r, k;

	*left = false;
	while ((r = read(fd, rec, sizeof(rec))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		for (k = 0; k < r / (ssize_t)sizeof(rec[0]); k++) {
			if (rec[k] == LL_REAP_LEFT)
				*left = true;
			else if (rec[k] == LL_REAP_WAITING)
				(*waiting)++;
		}
	}
	return 0;
}

struct work_set;

struct iter_walk {
	struct bpf_link *link;
	const struct work_set *ws;
	unsigned int pending;
	bool left;
};

/* One namespace: an iter/tcp iterator walks the TCP sockets of the
 * namespace the thread is in when it is created. */
static int tally_netns(void *ctx)
{
	struct iter_walk *w = ctx;
	bool left;
	int fd, err;

	fd = bpf_iter_create(bpf_link__fd(w->link));
	if (fd < 0)
		return -errno;
	err = iter_tally(fd, &w->pending, &left);
	w->left |= left;
	close(fd);
	return err;
}

/* Namespaces with work, by netns cookie (from the netns_work map). */
#define WORK_NETNS_MAX 1024

struct work_set {
	uint64_t cookie[WORK_NETNS_MAX];
	int n;
	bool all; /* too many to list, or the map unreadable: walk every one */
};

static bool work_wanted(uint64_t cookie, void *ctx)
{
	const struct work_set *ws = ((const struct iter_walk *)ctx)->ws;
	int i;

	if (ws->all)
		return true;
	for (i = 0; i < ws->n; i++)
		if (ws->cookie[i] == cookie)
			return true;
	return false;
}

/* ll_reap has work where a pair started leaving in the last
 * REAP_RECENT_NS (its backoff reaches 100 ms; a leaving socket idle longer
 * leaves at its next segment); ll_reenter where a socket may come back. */
#define REAP_RECENT_NS (10ULL * 1000 * 1000 * 1000)

static void work_set_read(int fd, bool reap, struct work_set *ws)
{
	struct ll_netns_work v;
	struct timespec ts;
	uint64_t key, next, now;
	bool more;

	ws->n = 0;
	ws->all = false;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	for (more = !bpf_map_get_next_key(fd, NULL, &next); more;
	     more = !bpf_map_get_next_key(fd, &key, &next)) {
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		if (reap ? now - v.leave_ns > REAP_RECENT_NS : v.left <= 0)
			continue;
		if (ws->n == WORK_NETNS_MAX) {
			ws->all = true;
			return;
		}
		ws->cookie[ws->n++] = key;
	}
}

/* Run @prog (ll_reap or ll_reenter) in the namespaces of the processes in
 * @cgroups where netns_work says it has work (none: no walk at all): each
 * walk of a namespace costs ~0.6 ms however few sockets it holds.
 * *pending counts the sockets still waiting, *left whether any left the
 * map. */
static int walk_served(struct datapath *dp, struct bpf_program *prog, bool reap,
		       const char *const *cgroups, int n, unsigned int *pending, bool *left)
{
	/* One looplessd per process: the set lives as long as it. */
	static struct work_set ws;
	struct iter_walk w = {};
	int err;

	*pending = 0;
	*left = false;
	w.ws = &ws;
	work_set_read(bpf_map__fd(dp->skel->maps.netns_work), reap, &ws);
	if (!ws.n && !ws.all)
		return 0;
	w.link = bpf_program__attach_iter(prog, NULL);
	if (!w.link)
		return -errno;
	err = netns_for_each(cgroups, n, work_wanted, tally_netns, &w);
	bpf_link__destroy(w.link);
	*pending = w.pending;
	*left = w.left;
	return err;
}

int datapath_reap(struct datapath *dp, const char *const *cgroups, int n, unsigned int *pending)
{
	bool left;
	int err;

	*pending = 0;
	dp->left = false;
	if (dp->leaves && ring_buffer__consume(dp->leaves) < 0)
		log_debug("leave events: %s", strerror(errno));
	err = walk_served(dp, dp->skel->progs.ll_reap, true, cgroups, n, pending, &left);
	if (left)
		dp->left = true; /* sockets that may come back */
	return err;
}

int datapath_owners(struct datapath *dp, bool on, unsigned int *n)
{
	int fd = bpf_map__fd(dp->skel->maps.addr_owners);

	*n = 0;
	return on ? owners_sync(fd, n) : owners_clear(fd);
}

int datapath_reenter(struct datapath *dp, const char *const *cgroups, int n, unsigned int *pending)
{
	bool left; /* ll_reenter writes LL_REAP_WAITING records only */

	*pending = 0;
	return walk_served(dp, dp->skel->progs.ll_reenter, false, cgroups, n, pending, &left);
}

static int write_maps(struct datapath *dp, const struct config *cfg)
{
	struct ll_config llc = {
		.flags = (cfg->n_include_ports ? LL_CFG_INCLUDE_PORTS : 0) |
			 (cfg->cross_netns ? LL_CFG_CROSS_NETNS : 0),
		.queue_limit = cfg->queue_limit,
		.small_write = cfg->small_write,
		.small_lag = cfg->small_lag,
		.reader_idle_ns = (__u64)cfg->reader_idle_ms * 1000000,
		.reenter_min_ns = (__u64)cfg->reenter_min_ms * 1000000,
	};
	static __u8 rules[LL_NR_PORTS];
	static __u32 keys[LL_NR_PORTS];
	int fd_ports = bpf_map__fd(dp->skel->maps.ports);
	__u32 zero = 0, count = LL_NR_PORTS;
	int i, p;

	memset(rules, LL_PORT_NONE, sizeof(rules));
	for (i = 0; i < cfg->n_include_ports; i++)
		for (p = cfg->include_ports[i].lo; p <= cfg->include_ports[i].hi; p++)
			rules[p] = LL_PORT_INCLUDE;
	/* An excluded port wins over an included one. */
	for (i = 0; i < cfg->n_exclude_ports; i++)
		for (p = cfg->exclude_ports[i].lo; p <= cfg->exclude_ports[i].hi; p++)
			rules[p] = LL_PORT_EXCLUDE;
	for (i = 0; i < LL_NR_PORTS; i++)
		keys[i] = i;
	if (bpf_map_update_batch(fd_ports, keys, rules, &count, NULL))
		return -errno;

	/* Last, so the new rules are in place before the flags that use them. */
	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ll_config), &zero, &llc, BPF_ANY))
		return -errno;
	return 0;
}

struct link_sweep {
	const struct cgroup_target *cg;
	int n_cg;
	int prog_fd;
	bool *have; /* have[i]: cg[i] already has a pinned link */
};

/* Adopt pinned links to wanted cgroups, detach the others. */
static int sweep_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id, void *arg)
{
	struct link_sweep *s = arg;
	int i, err;

	for (i = 0; i < s->n_cg; i++) {
		if (cgroup_id != s->cg[i].id || s->have[i])
			continue;
		if (bpf_link_update(link_fd, s->prog_fd, NULL)) {
			int err = -errno;

			log_error("cannot swap the program of %s/%s: %s", dir, name,
				  strerror(-err));
			return err;
		}
		s->have[i] = true;
		if (!strncmp(name, PIN_LINK_PREFIX, strlen(PIN_LINK_PREFIX)))
			log_info("adopted attachment to %s", s->cg[i].path);
		return 0;
	}
	/* Not wanted (removed from the config), a duplicate, or its cgroup is
	 * gone (id 0). */
	err = pins_detach_link(dir, name, link_fd, cgroup_id);
	if (err)
		return err;
	if (!strncmp(name, PIN_LINK_PREFIX, strlen(PIN_LINK_PREFIX)))
		log_info("detached from cgroup id %" PRIu64 " (no longer configured)", cgroup_id);
	return 0;
}

/* One program on one cgroup, as a pinned link named @prefix<cgroup id>. */
static int attach_cgroup(struct datapath *dp, const struct cgroup_target *cg,
			 const struct bpf_program *prog, const char *prefix)
{
	struct bpf_link *link;
	char path[4096], name[64];
	int cgfd, err;

	snprintf(name, sizeof(name), "%s%" PRIu64, prefix, cg->id);
	err = pins_path(path, sizeof(path), dp->pin_dir, name);
	if (err)
		return err;
	cgfd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		err = -errno;
		log_error("cannot open cgroup %s: %s", cg->path, strerror(-err));
		return err;
	}
	link = bpf_program__attach_cgroup(prog, cgfd);
	close(cgfd);
	if (!link) {
		err = -errno;
		log_error("cannot attach %s to cgroup %s: %s", bpf_program__name(prog), cg->path,
			  strerror(-err));
		return err;
	}
	err = bpf_link__pin(link, path);
	if (err) {
		log_error("cannot pin link for %s at %s: %s", cg->path, path, strerror(-err));
		bpf_link__destroy(link); /* closes the only fd: detaches */
		return err;
	}
	/* Pinned: the attachment outlives this fd (closed here) and this
	 * process. */
	bpf_link__destroy(link);
	return 0;
}

/*
 * Each cgroup gets two links: ll_sockops (the datapath) and ll_setsockopt
 * (SO_ZEROCOPY on a socket in the map). A pin dir from a looplessd without
 * the latter gets it here; the sockops link is attached last, so no socket
 * enters the map before SO_ZEROCOPY is guarded.
 */
static const struct cg_prog {
	const char *prefix;
	bool sockops;
} cg_progs[] = {
	{ PIN_SOCKOPT_LINK_PREFIX, false },
	{ PIN_LINK_PREFIX, true },
};

static const struct bpf_program *cg_prog(const struct datapath *dp, const struct cg_prog *cp)
{
	return cp->sockops ? dp->skel->progs.ll_sockops : dp->skel->progs.ll_setsockopt;
}

int datapath_apply(struct datapath *dp, const struct config *cfg, const struct cgroup_target *cg,
		   int n_cg)
{
	struct link_sweep s = { .cg = cg, .n_cg = n_cg };
	bool have[CONFIG_MAX_CGROUPS];
	size_t k;
	int i, err;

	/* Accepted so that existing configurations keep loading. */
	if (cfg->n_local_addrs)
		log_warn("local_addrs is no longer needed and is ignored: the two ends of a "
			 "local connection are found by their TCP sequence numbers, whatever "
			 "their addresses");
	err = write_maps(dp, cfg);
	if (err) {
		log_error("cannot write the datapath's configuration maps: %s", strerror(-err));
		return err;
	}
	s.have = have;
	for (k = 0; k < sizeof(cg_progs) / sizeof(cg_progs[0]); k++) {
		memset(have, 0, sizeof(have));
		s.prog_fd = bpf_program__fd(cg_prog(dp, &cg_progs[k]));
		err = pins_for_each_link_named(dp->pin_dir, cg_progs[k].prefix, sweep_link, &s);
		if (err) {
			log_error("cannot update the pinned cgroup links in %s: %s", dp->pin_dir,
				  strerror(-err));
			return err;
		}
		for (i = 0; i < n_cg; i++) {
			if (have[i])
				continue;
			err = attach_cgroup(dp, &cg[i], cg_prog(dp, &cg_progs[k]),
					    cg_progs[k].prefix);
			if (err)
				return err;
			if (cg_progs[k].sockops)
				log_info("attached to %s", cg[i].path);
		}
	}
	return 0;
}

void datapath_close(struct datapath *dp)
{
	ring_buffer__free(dp->leaves);
	dp->leaves = NULL;
	loopless_bpf__destroy(dp->skel);
	dp->skel = NULL;
}
