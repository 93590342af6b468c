// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * looplessd: loads the loopless datapath, attaches it to the configured
 * cgroups, pins it, and stays in the foreground (systemd Type=notify).
 * Stopping it leaves the pinned datapath in place, so connections stay
 * accelerated across restarts and upgrades; `loopless uninstall` removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/capability.h>
#include <sys/signalfd.h>
#include <sys/statfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <systemd/sd-daemon.h>
#include "cgroup.h"
#include "config.h"
#include "stats.h"
#include "datapath.h"
#include "log.h"
#include "loopless.skel.h"
#include "metrics.h"
#include "options.h"
#include "pins.h"

#include "looplessd_args.h"

/* What the event loop, reload and the metrics endpoint share. */
struct daemon {
	const struct opts *o;
	struct config cfg; /* the running configuration */
	struct datapath dp;
	struct metrics *metrics; /* NULL: endpoint off */
	char metrics_at[CONFIG_METRICS_TEXT_MAX]; /* where it listens, port resolved */
	bool last_reload_ok;
	time_t last_reload_ok_time; /* start, or the last reload applied */
	/* The attached cgroups, whose programs' namespaces ll_reenter walks. */
	char cg_paths[CONFIG_MAX_CGROUPS][CONFIG_PATH_MAX];
	const char *cg[CONFIG_MAX_CGROUPS];
	int n_cg;
	/* Event loop timers (monotonic ms, 0: off) and the re-entry period. */
	int64_t reap_at, reenter_at;
	int reap_ms, reenter_ms;
	int reenter_scans; /* since something last left */
	int reap_tries; /* since nothing waited */
	int64_t owners_at; /* cross_netns: the next look at the addresses */
	unsigned int owners_n; /* addresses owned at the last look */
};

static void served_cgroups(struct daemon *d, const struct cgroup_target *cg, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		memcpy(d->cg_paths[i], cg[i].path,
		       sizeof(d->cg_paths[i])); /* both NUL-terminated PATH_MAX */
		d->cg[i] = d->cg_paths[i];
	}
	d->n_cg = n;
}

/* Resolve every configured cgroup; one line naming where it came from. */
static int resolve_cgroups(const struct config *cfg, struct cgroup_target *out)
{
	char mnt[CONFIG_PATH_MAX], qsrc[CONFIG_ERR_MAX], qcg[CONFIG_QUOTE_MAX],
		qpath[CONFIG_ERR_MAX];
	const char *why;
	int i, err;

	err = cgroup2_mount(mnt, sizeof(mnt));
	if (err) {
		log_error("cgroup v2 is not mounted (no cgroup2 entry in /proc/self/mountinfo); "
			  "mount it, e.g. mount -t cgroup2 none /sys/fs/cgroup");
		return EXIT_USAGE;
	}
	for (i = 0; i < cfg->n_cgroups; i++) {
		err = cgroup_resolve(mnt, cfg->cgroups[i], out[i].path, sizeof(out[i].path));
		if (!err)
			err = cgroup_id(out[i].path, &out[i].id);
		if (!err)
			continue;
		why = err == -EMEDIUMTYPE ? "not a cgroup v2 directory" : strerror(-err);
		config_quote(qcg, sizeof(qcg), cfg->cgroups[i]);
		config_quote(qpath, sizeof(qpath), out[i].path);
		if (cfg->cgroup_lines[i])
			log_error("%s:%u: cgroup \"%s\": %s: %s (create it or fix \"cgroup =\")",
				  config_quote(qsrc, sizeof(qsrc), cfg->source),
				  cfg->cgroup_lines[i], qcg, qpath, why);
		else
			/* No line: from --cgroup, or the default (the root). */
			log_error("%scgroup \"%s\": %s: %s", cfg->cgroups_are_default ? "" : "--",
				  qcg, qpath, why);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * Say which capability is missing rather than failing later with EPERM (or
 * with the feature probe's "kernel lacks sockops", which is what bpf()
 * without CAP_BPF looks like). deploy/looplessd.service grants this set.
 */
static int check_caps(void)
{
	static const struct {
		cap_value_t cap;
		const char *name;
	} need[] = {
		{ CAP_BPF, "CAP_BPF (bpf(): maps, programs, pins)" },
		{ CAP_NET_ADMIN, "CAP_NET_ADMIN (sockops/sk_msg programs, cgroup attach)" },
		{ CAP_PERFMON, "CAP_PERFMON (the verifier's kernel pointer reads)" },
	};
	cap_flag_value_t v;
	size_t i;
	cap_t caps;

	caps = cap_get_proc();
	if (!caps)
		return -errno;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (cap_get_flag(caps, need[i].cap, CAP_EFFECTIVE, &v) || v != CAP_SET) {
			log_error("missing capability %s: run as root (or grant CAP_BPF, "
				  "CAP_NET_ADMIN and CAP_PERFMON)",
				  need[i].name);
			cap_free(caps);
			return -EPERM;
		}
	}
	cap_free(caps);
	return 0;
}

static bool have_cap(cap_value_t cap)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t caps = cap_get_proc();

	if (caps) {
		cap_get_flag(caps, cap, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	return v == CAP_SET;
}

static void notify_status(const struct daemon *d, const char *state)
{
	sd_notifyf(0, "%s\nSTATUS=attached: %d cgroup(s), pin dir %s, metrics %s", state,
		   d->cfg.n_cgroups, d->cfg.pin_dir, d->metrics ? d->metrics_at : "off");
}

/* ---- the metrics endpoint's view of the daemon ---- */

static int count_live_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id,
			   void *arg)
{
	(void)dir;
	(void)name;
	(void)link_fd;
	/* A link whose cgroup was removed reports cgroup id 0. */
	if (cgroup_id)
		(*(int *)arg)++;
	return 0;
}

static int attached_cgroups(const struct daemon *d, int *n)
{
	*n = 0;
	return pins_for_each_link(d->cfg.pin_dir, count_live_link, n);
}

/* looplessd's own gauges, written by the same table writer as the counters. */
static const struct stat_def own_gauges[] = {
	{ NULL, "loopless_attached_cgroups", NULL, STAT_GAUGE,
	  "Cgroups the sockops program is attached to." },
	{ NULL, "loopless_config_last_reload_successful", NULL, STAT_GAUGE,
	  "Whether the last configuration reload (SIGHUP) was applied (1) or rejected (0)." },
	{ NULL, "loopless_config_last_reload_success_timestamp_seconds", NULL, STAT_GAUGE,
	  "When looplessd last started or applied a reload, in seconds since the epoch." },
	{ NULL, "loopless_build_info", NULL /* version="..." */, STAT_GAUGE,
	  "The version of the running looplessd." },
};

#define N_OWN_GAUGES (int)(sizeof(own_gauges) / sizeof(own_gauges[0]))

static int render_metrics(FILE *f, void *arg)
{
	const struct daemon *d = arg;
	struct stat_def own[N_OWN_GAUGES];
	uint64_t v[STAT_NR], vals[N_OWN_GAUGES];
	char version[128];
	int err, n;

	/* The same reader and names as `loopless stats`. */
	err = stats_read(bpf_map__fd(d->dp.skel->maps.counters),
			 bpf_map__fd(d->dp.skel->maps.sock_hash), v);
	if (!err)
		err = attached_cgroups(d, &n);
	if (!err)
		err = stats_write_prometheus(f, v);
	if (err)
		return err;
	memcpy(own, own_gauges, sizeof(own));
	prom_label(version, sizeof(version), "version", LOOPLESS_VERSION);
	own[3].label = version;
	vals[0] = (uint64_t)n;
	vals[1] = d->last_reload_ok;
	vals[2] = (uint64_t)d->last_reload_ok_time;
	vals[3] = 1;
	return prom_write(f, own, N_OWN_GAUGES, vals);
}

static int health(char *why, size_t len, void *arg)
{
	const struct daemon *d = arg;
	__u32 ids[4], n_ids = 4, flags;
	int err, n;

	if (bpf_prog_query(bpf_map__fd(d->dp.skel->maps.sock_hash), BPF_SK_MSG_VERDICT, 0, &flags,
			   ids, &n_ids) ||
	    !n_ids) {
		snprintf(why, len, "the sk_msg program is not attached to the sockhash");
		return -ENOENT;
	}
	err = attached_cgroups(d, &n);
	if (err) {
		snprintf(why, len, "cannot read the links in %s: %s", d->cfg.pin_dir,
			 strerror(-err));
		return err;
	}
	if (n < d->cfg.n_cgroups) {
		snprintf(why, len, "attached to %d of %d configured cgroups (one was removed?)", n,
			 d->cfg.n_cgroups);
		return -ENOENT;
	}
	return 0;
}

/* Serve on @fd (a metrics_listen() socket, taken over); logs once. */
static int metrics_serve(struct daemon *d, int fd, const struct metrics_addr *a)
{
	static const struct metrics_ops ops = { .render = render_metrics, .health = health };
	struct metrics_ops o = ops;
	char at[CONFIG_METRICS_TEXT_MAX];
	int err;

	o.arg = d;
	metrics_bound_text(fd, at, sizeof(at));
	err = metrics_start(&d->metrics, fd, &o);
	if (err) {
		log_error("cannot start the metrics endpoint on %s: %s", a->text, strerror(-err));
		d->metrics = NULL;
		return err;
	}
	snprintf(d->metrics_at, sizeof(d->metrics_at), "%s", at);
	log_info("metrics: serving http://%s/metrics and /healthz", at);
	return 0;
}

static void metrics_off(struct daemon *d)
{
	if (!d->metrics)
		return;
	metrics_stop(d->metrics);
	d->metrics = NULL;
	log_info("metrics: stopped serving on %s", d->metrics_at);
	d->metrics_at[0] = '\0';
}

/* One line for a listen error, naming where the address came from. */
static void log_listen_error(const struct daemon *d, const struct config *cfg, int err)
{
	char q[CONFIG_ERR_MAX];

	if (d->o->metrics || !cfg->metrics_line)
		log_error("cannot listen on %s for metrics: %s (fix --metrics)", cfg->metrics.text,
			  strerror(-err));
	else
		log_error("%s:%u: cannot listen on %s for metrics: %s (fix \"metrics =\" in "
			  "[daemon])",
			  config_quote(q, sizeof(q), cfg->source), cfg->metrics_line,
			  cfg->metrics.text, strerror(-err));
}

/* The address itself is wrong (not one of this host's, or a family the
 * socket cannot take), as opposed to a port in use or not permitted. */
static bool listen_error_is_config(int err)
{
	return err == -EADDRNOTAVAIL || err == -EINVAL || err == -EAFNOSUPPORT;
}

/*
 * Values that only the system can judge, checked before anything is created
 * (and by --check): the metrics address must be one of this host's (bound on
 * port 0, so a port in use, also by a running looplessd, does not count),
 * and the pin directory must not be an existing directory with files in it
 * on another file system, over which pins_prepare() would mount bpffs.
 * Returns 0 or EXIT_USAGE after logging one line.
 */
static int check_targets(const struct daemon *d, const struct config *cfg)
{
	char q[CONFIG_QUOTE_MAX], qsrc[CONFIG_ERR_MAX], where[CONFIG_ERR_MAX + 32];
	struct metrics_addr probe = cfg->metrics;
	const char *why = NULL;
	struct dirent *de;
	struct statfs sfs;
	DIR *dir;
	int fd;

	if (probe.enabled) {
		probe.port = 0;
		fd = metrics_listen(&probe);
		if (fd >= 0) {
			close(fd);
		} else if (listen_error_is_config(fd)) {
			log_listen_error(d, cfg, fd);
			return EXIT_USAGE;
		}
	}

	/* A missing one is created; anything but ENOENT is pins_prepare()'s
	 * to report. */
	if (statfs(cfg->pin_dir, &sfs) || sfs.f_type == BPF_FS_MAGIC)
		return 0;
	dir = opendir(cfg->pin_dir);
	if (!dir) {
		if (errno == ENOTDIR)
			why = "not a directory";
	} else {
		while ((de = readdir(dir))) {
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				why = "a directory with files in it, not on a bpf file system "
				      "(bpffs would be mounted over them; use a new directory or "
				      "one on bpffs)";
				break;
			}
		}
		closedir(dir);
	}
	if (!why)
		return 0;
	config_quote(q, sizeof(q), cfg->pin_dir);
	if (d->o->pin_dir)
		snprintf(where, sizeof(where), "--pin-dir");
	else if (cfg->pin_dir_line)
		snprintf(where, sizeof(where), "%s:%u: pin_dir",
			 config_quote(qsrc, sizeof(qsrc), cfg->source), cfg->pin_dir_line);
	else
		snprintf(where, sizeof(where), "pin dir");
	log_error("%s \"%s\" is %s", where, q, why);
	return EXIT_USAGE;
}

/*
 * Re-read the configuration and apply it, or keep the running one whole:
 * everything that can fail without side effects (parsing, cgroup paths,
 * binding a new metrics address) is done before anything changes.
 */
static int reload(struct daemon *d)
{
	static struct cgroup_target cg[CONFIG_MAX_CGROUPS];
	struct config *cfg = &d->cfg, next;
	bool metrics_change, old_stopped = false;
	int err, new_fd = -1;

	sd_notify(0, "RELOADING=1");
	log_info("reloading %s", d->o->config_path);
	if (looplessd_build_config(d->o, &next) || resolve_cgroups(&next, cg)) {
		log_error("configuration rejected, keeping the running one");
		goto reject;
	}
	if (strcmp(next.pin_dir, cfg->pin_dir)) {
		log_error("pin_dir cannot change on reload (restart looplessd); configuration "
			  "rejected, keeping the running one");
		goto reject;
	}
	metrics_change = !config_metrics_equal(&next.metrics, &cfg->metrics);
	if (metrics_change && next.metrics.enabled) {
		new_fd = metrics_listen(&next.metrics);
		/* 127.0.0.1:9464 -> 0.0.0.0:9464 collides with ourselves. */
		if (new_fd == -EADDRINUSE && d->metrics && next.metrics.port == cfg->metrics.port) {
			metrics_off(d);
			old_stopped = true;
			new_fd = metrics_listen(&next.metrics);
		}
		if (new_fd < 0) {
			log_listen_error(d, &next, new_fd);
			log_error("configuration rejected, keeping the running one");
			goto reject_restore;
		}
	}
	if (next.max_sockets != cfg->max_sockets)
		log_warn("max_sockets cannot change on reload: the sockhash keeps %u entries "
			 "(stop looplessd, `loopless uninstall`, start it again)",
			 cfg->max_sockets);
	err = datapath_apply(&d->dp, &next, cg, next.n_cgroups);
	served_cgroups(d, cg, err ? 0 : next.n_cgroups);
	if (err) {
		log_error("reload failed half-way: %s; the datapath is as far as it got",
			  strerror(-err));
		if (new_fd >= 0)
			close(new_fd);
		goto reject_restore;
	}
	if (metrics_change) {
		metrics_off(d);
		/* Off if it failed (logged), so that the next reload retries. */
		if (new_fd >= 0 && metrics_serve(d, new_fd, &next.metrics))
			memset(&next.metrics, 0, sizeof(next.metrics));
	}
	if (next.log_level != cfg->log_level)
		log_info("log_level: %s -> %s", config_log_level_name(cfg->log_level),
			 config_log_level_name(next.log_level));
	log_set_level(next.log_level);
	/* max_sockets stays what the sockhash has. */
	next.max_sockets = cfg->max_sockets;
	config_free(cfg);
	*cfg = next;
	log_debug("running: %d cgroup(s), %d include and %d exclude port range(s), %d local "
		  "address(es), metrics %s",
		  cfg->n_cgroups, cfg->n_include_ports, cfg->n_exclude_ports, cfg->n_local_addrs,
		  d->metrics ? d->metrics_at : "off");
	log_info("reloaded");
	d->last_reload_ok = true;
	d->last_reload_ok_time = time(NULL);
	notify_status(d, "READY=1");
	return 0;

reject_restore:
	/* Put back the endpoint stopped to free its port. */
	if (old_stopped) {
		new_fd = metrics_listen(&cfg->metrics);
		if (new_fd < 0)
			log_listen_error(d, cfg, new_fd);
		else
			metrics_serve(d, new_fd, &cfg->metrics);
	}
reject:
	config_free(&next);
	d->last_reload_ok = false;
	notify_status(d, "READY=1");
	return -EINVAL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Back off from @ms (doubling, from @lo up to @hi): a timer that keeps
 * finding work that is not done yet. */
static int backoff(int ms, int lo, int hi)
{
	return ms <= 0 ? lo : ms >= hi / 2 ? hi : ms * 2;
}

/* Fast retries of ll_reap and ll_reenter after a leave (1 ms apart). */
#define REENTER_FAST_SCANS 50

/* Leaving pairs: run ll_reap now; while some still wait for their reader to
 * drain, again every millisecond REENTER_FAST_SCANS times (a leaving
 * direction pays the sk_msg path until it is out: a small-write stream at
 * a third of its speed), then less often (doubling up to 100 ms: a reader
 * asleep). Sockets that left may come back: arm the re-entry timer. */
static void reap(struct daemon *d)
{
	unsigned int pending;
	int err = datapath_reap(&d->dp, d->cg, d->n_cg, &pending);

	if (err)
		log_warn("cannot take leaving sockets out of the map: %s", strerror(-err));
	if (err || pending) {
		d->reap_ms = ++d->reap_tries < REENTER_FAST_SCANS ? 1 : backoff(d->reap_ms, 1, 100);
		d->reap_at = now_ms() + d->reap_ms;
	} else {
		d->reap_ms = 0;
		d->reap_at = 0;
		d->reap_tries = 0;
	}
	/* A re-entry undone does not restart the fast scans: a streaming
	 * pair would be put in and taken out every millisecond for good. */
	if (d->dp.left) {
		d->reenter_ms = 0;
		d->reenter_scans = 0;
	}
	if (!d->reenter_at)
		d->reenter_at = now_ms() + 1;
}

/* Pairs that left for TCP: put back those ll_reenter_verdict() allows (a
 * pair that left at its first bytes comes back as soon as its readers were
 * seen; the others wait reenter_min_ms and more); while some wait, look
 * again: every millisecond REENTER_FAST_SCANS times (a streaming pair is
 * caught with its queues drained within a few), then less and less often
 * (doubling up to once a second) until something new leaves. */

static void reenter(struct daemon *d)
{
	unsigned int pending;
	int err = datapath_reenter(&d->dp, d->cg, d->n_cg, &pending);

	if (err)
		log_warn("cannot put sockets back into the map: %s", strerror(-err));
	if (err || pending) {
		d->reenter_ms = ++d->reenter_scans < REENTER_FAST_SCANS ?
					1 :
					backoff(d->reenter_ms, 1, 1000);
		d->reenter_at = now_ms() + d->reenter_ms;
	} else {
		d->reenter_ms = 0;
		d->reenter_at = 0;
	}
}

/* cross_netns: how often every namespace's addresses are read again. A pod
 * that just came up pairs across namespaces once a pass saw its address
 * (until then its connections stay on TCP); one gone loses its addresses
 * within a pass. */
#define OWNERS_MS 1000

static void owners(struct daemon *d)
{
	unsigned int n;
	int err = datapath_owners(&d->dp, d->cfg.cross_netns, &n);

	if (err)
		log_warn("cannot read the addresses of the node's namespaces: %s", strerror(-err));
	else if (n != d->owners_n)
		log_debug("cross_netns: %u addresses owned by one namespace each", n);
	d->owners_n = n;
	d->owners_at = d->cfg.cross_netns ? now_ms() + OWNERS_MS : 0;
}

static int min_timeout(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int until(int64_t at, int64_t now)
{
	return !at ? -1 : at <= now ? 0 : (int)(at - now);
}

static int event_loop(struct daemon *d, int sfd)
{
	struct signalfd_siginfo si;

	/* Pairs that started leaving while no looplessd ran. */
	reap(d);
	owners(d);
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = d->metrics ? metrics_poll_fd(d->metrics) : -1, .events = POLLIN },
			{ .fd = datapath_leave_fd(&d->dp), .events = POLLIN },
		};
		int64_t now = now_ms();
		int timeout = min_timeout(
			d->metrics ? metrics_timeout_ms(d->metrics) : -1,
			min_timeout(until(d->reap_at, now), min_timeout(until(d->reenter_at, now),
									until(d->owners_at, now))));
		int ready;
		ssize_t n;

		ready = poll(pfd, 3, timeout);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -errno;
		}
		if (d->metrics)
			metrics_run(d->metrics);
		now = now_ms();
		if ((pfd[2].revents & POLLIN) || (d->reap_at && d->reap_at <= now))
			reap(d);
		if (d->reenter_at && d->reenter_at <= now)
			reenter(d);
		if (d->owners_at && d->owners_at <= now)
			owners(d);
		if (!(pfd[0].revents & POLLIN))
			continue;
		n = read(sfd, &si, sizeof(si));
		if (n != sizeof(si)) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			log_error("signalfd read: %s", n < 0 ? strerror(errno) : "short read");
			return -EIO;
		}
		if (si.ssi_signo == SIGHUP) {
			reload(d);
			owners(d); /* cross_netns may have changed */
			continue;
		}
		log_info("%s: exiting, the datapath stays pinned in %s",
			 strsignal((int)si.ssi_signo), d->cfg.pin_dir);
		return 0;
	}
}

int main(int argc, char **argv)
{
	static struct cgroup_target cg[CONFIG_MAX_CGROUPS];
	static struct daemon d;
	struct config *cfg = &d.cfg;
	struct opts o = {};
	const char *missing;
	int lock_fd = -1, sfd = -1, metrics_fd = -1, ret, err;
	sigset_t mask;

	log_setup("looplessd", LOG_LEVEL_INFO);
	ret = looplessd_parse_args(argc, argv, &o);
	if (ret)
		return ret;
	d.o = &o;
	ret = looplessd_build_config(&o, cfg);
	if (ret)
		goto out;
	log_set_level(cfg->log_level);
	ret = resolve_cgroups(cfg, cg);
	if (ret)
		goto out;
	ret = check_targets(&d, cfg);
	if (ret)
		goto out;
	if (o.check) {
		printf("%s: configuration ok (%d cgroup(s), pin dir %s, metrics %s)\n",
		       cfg->source[0] ? cfg->source : "defaults", cfg->n_cgroups, cfg->pin_dir,
		       cfg->metrics.enabled ? cfg->metrics.text : "off");
		goto out;
	}

	ret = 1;
	if (check_caps())
		goto out;
	log_libbpf();
	err = datapath_probe(&missing);
	if (err) {
		log_error("this kernel lacks %s: loopless needs Linux 6.2 or later with BTF and "
			  "BPF sockmap support",
			  missing);
		goto out;
	}
	/* Before anything is created or loaded: a busy port changes nothing.
	 * (A second looplessd with the same endpoint stops here, at its port,
	 * rather than at the pin directory's lock.) */
	if (cfg->metrics.enabled) {
		metrics_fd = metrics_listen(&cfg->metrics);
		if (metrics_fd < 0) {
			log_listen_error(&d, cfg, metrics_fd);
			if (listen_error_is_config(metrics_fd))
				ret = EXIT_USAGE;
			goto out;
		}
	}
	err = pins_prepare(cfg->pin_dir);
	if (err) {
		log_error("cannot use %s as a bpffs pin directory: %s", cfg->pin_dir,
			  err == -EMEDIUMTYPE ? "not on a bpf file system" :
			  err == -EPERM && !have_cap(CAP_SYS_ADMIN) ?
						"no bpffs is mounted there and mounting one needs "
						"CAP_SYS_ADMIN (mount bpffs on /sys/fs/bpf first)" :
						strerror(-err));
		goto out;
	}
	lock_fd = pins_lock(cfg->pin_dir);
	if (lock_fd < 0) {
		log_error("%s is in use by another looplessd%s", cfg->pin_dir,
			  lock_fd == -EWOULDBLOCK ? "" : " (cannot lock it)");
		goto out;
	}

	/* Signals first: a SIGTERM during start-up is handled after it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}

	err = datapath_load(&d.dp, cfg->pin_dir, cfg->max_sockets);
	if (err)
		goto out_fresh;
	err = datapath_apply(&d.dp, cfg, cg, cfg->n_cgroups);
	if (err)
		goto out_fresh;
	served_cgroups(&d, cg, cfg->n_cgroups);
	log_info("%s datapath in %s, %d cgroup(s)", d.dp.adopted ? "adopted" : "loaded",
		 cfg->pin_dir, cfg->n_cgroups);
	if (metrics_fd >= 0) {
		err = metrics_serve(&d, metrics_fd, &cfg->metrics);
		metrics_fd = -1;
		if (err)
			goto out_stop;
	}
	d.last_reload_ok = true;
	d.last_reload_ok_time = time(NULL);
	notify_status(&d, "READY=1");

	if (!event_loop(&d, sfd))
		ret = 0;
out_stop:
	sd_notify(0, "STOPPING=1");
	metrics_off(&d);
	datapath_close(&d.dp);
	goto out;
out_fresh:
	/* Nothing may stay half attached: when this run created the datapath,
	 * take all of it away again; an adopted one is left as it was
	 * (its links may already carry the new program, which is the same
	 * datapath). */
	if (d.dp.skel)
		datapath_close(&d.dp);
	if (!d.dp.adopted) {
		uint64_t unread;

		err = datapath_uninstall(cfg->pin_dir, 0, true, &unread);
		if (err && err != -ENOENT)
			log_warn("could not clean up %s after the failure: %s", cfg->pin_dir,
				 strerror(-err));
	}
out:
	if (metrics_fd >= 0)
		close(metrics_fd);
	if (sfd >= 0)
		close(sfd);
	if (lock_fd >= 0)
		close(lock_fd);
	config_free(cfg);
	return ret;
}
