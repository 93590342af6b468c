// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * looplessd: loads the loopless datapath, attaches it to the configured
 * cgroups, pins it, and stays in the foreground (systemd Type=notify).
 * Stopping it leaves the pinned datapath in place, so connections stay
 * accelerated across restarts and upgrades; `loopless uninstall` removes it.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/capability.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include "cgroup.h"
#include "config.h"
#include "datapath.h"
#include "log.h"
#include "pins.h"

#define EXIT_USAGE 2

struct opts {
	const char *config_path;
	bool config_explicit;
	const char *cli_cgroups[CONFIG_MAX_CGROUPS];
	int n_cli_cgroups;
	const char *pin_dir;
	const char *log_level;
	bool check;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: looplessd [OPTION]...\n"
		"Load the loopless datapath (sockops + sk_msg), attach it to cgroup v2 paths and\n"
		"keep it pinned in bpffs. Local TCP connections (127.0.0.0/8, ::1, a host's own\n"
		"address) between processes in those cgroups then skip the TCP/IP stack: each\n"
		"send goes straight into the peer socket's receive queue.\n"
		"\n"
		"Runs in the foreground. SIGHUP re-reads the configuration; SIGTERM/SIGINT exit\n"
		"and leave the datapath pinned (live connections stay accelerated; starting\n"
		"looplessd again adopts it). `loopless uninstall` removes everything.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE     configuration file (default %s;\n"
		"                        when that is missing, built-in defaults)\n"
		"  -g, --cgroup PATH     cgroup v2 path to attach to, absolute or relative to the\n"
		"                        cgroup2 mount; repeatable; replaces the config's list\n"
		"  -p, --pin-dir DIR     bpffs directory for pins (default %s)\n"
		"  -l, --log-level LVL   error, warn, info or debug (default info)\n"
		"  -n, --check           validate the configuration and exit\n"
		"  -h, --help            show this help\n"
		"  -V, --version         show the version\n"
		"\n"
		"Exit status: 0 stopped cleanly, 1 runtime error, 2 usage or configuration error.\n"
		"\n"
		"Examples:\n"
		"  looplessd --cgroup system.slice/myapp.service\n"
		"      accelerate local connections of one service\n"
		"  looplessd --config /etc/loopless/looplessd.conf --check\n"
		"      validate a configuration before `systemctl reload looplessd`\n"
		"  looplessd --cgroup kubepods.slice --pin-dir /sys/fs/bpf/loopless\n"
		"      every pod on a Kubernetes node\n",
		CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_PIN_DIR);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	int c;

	o->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:g:p:l:nhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			o->config_explicit = true;
			break;
		case 'g':
			if (o->n_cli_cgroups == CONFIG_MAX_CGROUPS) {
				log_error("too many --cgroup options (at most %d)",
					  CONFIG_MAX_CGROUPS);
				return EXIT_USAGE;
			}
			o->cli_cgroups[o->n_cli_cgroups++] = optarg;
			break;
		case 'p':
			o->pin_dir = optarg;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'n':
			o->check = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("looplessd %s\n", LOOPLESS_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'looplessd --help' for more information.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument \"%s\" (try --help)", argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * Build the configuration: file (or defaults), then command-line overrides.
 * Returns 0 or EXIT_USAGE after logging one line.
 */
static int build_config(const struct opts *o, struct config *cfg)
{
	char err[CONFIG_ERR_MAX];
	enum log_level level;
	int i, ret;

	config_init(cfg);
	ret = config_parse_file(cfg, o->config_path, err, sizeof(err));
	if (ret == -ENOENT && !o->config_explicit) {
		log_debug("%s not found, using built-in defaults", o->config_path);
	} else if (ret) {
		log_error("%s", err);
		return EXIT_USAGE;
	}
	if (o->n_cli_cgroups) {
		config_set_cgroups_clear(cfg);
		for (i = 0; i < o->n_cli_cgroups; i++) {
			if (config_add_cgroup(cfg, o->cli_cgroups[i], 0, err, sizeof(err))) {
				log_error("--cgroup: %s", err);
				return EXIT_USAGE;
			}
		}
	}
	if (o->pin_dir && config_set_pin_dir(cfg, o->pin_dir, err, sizeof(err))) {
		log_error("--pin-dir: %s", err);
		return EXIT_USAGE;
	}
	if (o->log_level) {
		if (config_parse_log_level(o->log_level, &level)) {
			log_error("--log-level: unknown level \"%s\" (error, warn, info, debug)",
				  o->log_level);
			return EXIT_USAGE;
		}
		cfg->log_level = level;
	}
	return 0;
}

/* Resolve every configured cgroup; one line naming where it came from. */
static int resolve_cgroups(const struct config *cfg, struct cgroup_target *out)
{
	char mnt[CONFIG_PATH_MAX];
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
		if (cfg->cgroup_lines[i])
			log_error("%s:%u: cgroup \"%s\": %s: %s (create it or fix \"cgroup =\")",
				  cfg->source, cfg->cgroup_lines[i], cfg->cgroups[i], out[i].path,
				  err == -EMEDIUMTYPE ? "not a cgroup v2 directory" :
							strerror(-err));
		else
			log_error("cgroup \"%s\": %s: %s", cfg->cgroups[i], out[i].path,
				  err == -EMEDIUMTYPE ? "not a cgroup v2 directory" :
							strerror(-err));
		return EXIT_USAGE;
	}
	return 0;
}

/* Say which capability is missing rather than failing later with EPERM. */
static int check_caps(void)
{
	static const struct {
		cap_value_t cap;
		const char *name;
	} need[] = {
		{ CAP_SYS_ADMIN, "CAP_SYS_ADMIN (mount bpffs, pin, load BPF)" },
		{ CAP_NET_ADMIN, "CAP_NET_ADMIN (attach to cgroups, sockmap)" },
	};
	cap_flag_value_t v;
	size_t i;
	cap_t caps;

	caps = cap_get_proc();
	if (!caps)
		return -errno;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (cap_get_flag(caps, need[i].cap, CAP_EFFECTIVE, &v) || v != CAP_SET) {
			log_error("missing capability %s: run as root", need[i].name);
			cap_free(caps);
			return -EPERM;
		}
	}
	cap_free(caps);
	return 0;
}

static void notify_status(const struct config *cfg, const char *state)
{
	sd_notifyf(0, "%s\nSTATUS=%s: %d cgroup(s), pin dir %s", state,
		   strcmp(state, "READY=1") ? "reloading" : "attached", cfg->n_cgroups,
		   cfg->pin_dir);
}

static int reload(const struct opts *o, struct datapath *dp, struct config *cfg)
{
	static struct cgroup_target cg[CONFIG_MAX_CGROUPS];
	struct config next;
	int err;

	sd_notify(0, "RELOADING=1");
	log_info("reloading %s", o->config_path);
	if (build_config(o, &next) || resolve_cgroups(&next, cg)) {
		log_error("configuration rejected, keeping the running one");
		goto keep;
	}
	if (strcmp(next.pin_dir, cfg->pin_dir)) {
		log_error("pin_dir cannot change on reload (restart looplessd), keeping the "
			  "running configuration");
		goto keep;
	}
	err = datapath_apply(dp, &next, cg, next.n_cgroups);
	if (err) {
		log_error("reload failed half-way: %s; the datapath is as far as it got",
			  strerror(-err));
		config_free(&next);
		goto keep;
	}
	log_set_level(next.log_level);
	config_free(cfg);
	*cfg = next;
	log_info("reloaded");
	notify_status(cfg, "READY=1");
	return 0;
keep:
	notify_status(cfg, "READY=1");
	return 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct cgroup_target cg[CONFIG_MAX_CGROUPS];
	struct opts o = {};
	struct datapath dp = {};
	struct signalfd_siginfo si;
	const char *missing;
	int lock_fd = -1, sfd = -1, ret, err;
	sigset_t mask;

	log_setup("looplessd", LOG_LEVEL_INFO);
	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret;
	ret = build_config(&o, &cfg);
	if (ret)
		return ret;
	log_set_level(cfg.log_level);
	ret = resolve_cgroups(&cfg, cg);
	if (ret)
		goto out;
	if (o.check) {
		printf("%s: configuration ok (%d cgroup(s), pin dir %s)\n",
		       cfg.source[0] ? cfg.source : "defaults", cfg.n_cgroups, cfg.pin_dir);
		goto out;
	}

	ret = 1;
	if (check_caps())
		goto out;
	log_libbpf();
	err = datapath_probe(&missing);
	if (err) {
		log_error("this kernel lacks %s: loopless needs Linux 5.15 or later with BPF "
			  "sockmap support",
			  missing);
		goto out;
	}
	err = pins_prepare(cfg.pin_dir);
	if (err) {
		log_error("cannot use %s as a bpffs pin directory: %s", cfg.pin_dir,
			  err == -EMEDIUMTYPE ? "not on a bpf file system" : strerror(-err));
		goto out;
	}
	lock_fd = pins_lock(cfg.pin_dir);
	if (lock_fd < 0) {
		log_error("%s is in use by another looplessd%s", cfg.pin_dir,
			  lock_fd == -EWOULDBLOCK ? "" : " (cannot lock it)");
		goto out;
	}

	/* Signals first: a SIGTERM during start-up is handled after it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}

	err = datapath_load(&dp, cfg.pin_dir, cfg.max_sockets);
	if (err)
		goto out_fresh;
	err = datapath_apply(&dp, &cfg, cg, cfg.n_cgroups);
	if (err)
		goto out_fresh;
	log_info("%s datapath in %s, %d cgroup(s)", dp.adopted ? "adopted" : "loaded", cfg.pin_dir,
		 cfg.n_cgroups);
	notify_status(&cfg, "READY=1");

	for (;;) {
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n != sizeof(si)) {
			if (n < 0 && errno == EINTR)
				continue;
			log_error("signalfd read: %s", strerror(errno));
			goto out_stop;
		}
		if (si.ssi_signo == SIGHUP) {
			reload(&o, &dp, &cfg);
			continue;
		}
		log_info("%s: exiting, the datapath stays pinned in %s",
			 strsignal((int)si.ssi_signo), cfg.pin_dir);
		break;
	}
	ret = 0;
out_stop:
	sd_notify(0, "STOPPING=1");
	datapath_close(&dp);
	goto out;
out_fresh:
	/* Nothing may stay half attached: when this run created the datapath,
	 * take all of it away again; an adopted one is left as it was
	 * (its links may already carry the new program, which is the same
	 * datapath). */
	if (dp.skel)
		datapath_close(&dp);
	if (!dp.adopted) {
		uint64_t unread;

		err = datapath_uninstall(cfg.pin_dir, 0, true, &unread);
		if (err && err != -ENOENT)
			log_warn("could not clean up %s after the failure: %s", cfg.pin_dir,
				 strerror(-err));
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (lock_fd >= 0)
		close(lock_fd);
	config_free(&cfg);
	return ret;
}
