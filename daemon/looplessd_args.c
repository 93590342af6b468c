// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* looplessd's options and --help (see looplessd_args.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "log.h"
#include "looplessd_args.h"
#include "options.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: looplessd [OPTION]...\n"
		"Load the loopless datapath (sockops + sk_msg), attach it to cgroup v2 paths and\n"
		"keep it pinned in bpffs. Local TCP connections (127.0.0.0/8, ::1, a host's own\n"
		"address) between processes in those cgroups then skip the TCP/IP stack: each\n"
		"send goes straight into the peer socket's receive queue.\n"
		"\n"
		"Runs in the foreground (systemd Type=notify). SIGHUP re-reads the\n"
		"configuration and applies it without dropping a connection: cgroups added or\n"
		"removed, port lists, local addresses, log level, the metrics endpoint; a\n"
		"configuration with an error is rejected (one log line naming file and line)\n"
		"and the running one stays. SIGTERM/SIGINT exit and leave the datapath pinned\n"
		"(live connections stay accelerated; starting looplessd again adopts it).\n"
		"`loopless uninstall` removes everything.\n"
		"\n"
		"Metrics: with \"metrics = ADDRESS:PORT\" in [daemon] (or --metrics), an HTTP\n"
		"endpoint serves GET /metrics (Prometheus text format: the counters of\n"
		"`loopless stats`, sockets in the sockhash, its capacity, build info) and\n"
		"GET /healthz (200 while the datapath is attached to every configured cgroup,\n"
		"else 503). ADDRESS is an IP literal, IPv6 in brackets: 127.0.0.1:9464,\n"
		"[::1]:9464, 0.0.0.0:9464 (every interface), [::]:9464 (both families).\n"
		"Port 0 picks a free port, which the log names. Off by default (empty value).\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE     configuration file (default %s;\n"
		"                        when that is missing, built-in defaults)\n"
		"  -g, --cgroup PATH     cgroup v2 path to attach to, absolute or relative to the\n"
		"                        cgroup2 mount; repeatable; replaces the config's list\n"
		"  -D, --default-cgroup PATH\n"
		"                        the cgroup to attach to when neither the config nor\n"
		"                        --cgroup names one, instead of the cgroup2 root (the\n"
		"                        systemd unit passes loopless.slice)\n"
		"  -p, --pin-dir DIR     bpffs directory for pins (default %s)\n"
		"  -l, --log-level LVL   error, warn, info or debug (default info)\n"
		"  -m, --metrics ADDR    serve /metrics and /healthz on ADDR:PORT (\"\" for off);\n"
		"                        replaces the config's \"metrics\"\n"
		"  -n, --check           validate the configuration and exit\n"
		"  -h, --help            show this help\n"
		"  -V, --version         show the version\n"
		"\n"
		"Capabilities: CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; CAP_SYS_ADMIN as well\n"
		"when bpffs is not mounted where the pin directory goes (it is then mounted).\n"
		"\n"
		"Exit status: 0 stopped cleanly, 1 runtime error, 2 usage or configuration error.\n"
		"\n"
		"Examples:\n"
		"  looplessd --cgroup system.slice/myapp.service\n"
		"      accelerate local connections of one service\n"
		"  looplessd --config /etc/loopless/looplessd.conf --check\n"
		"      validate a configuration before `systemctl reload looplessd`\n"
		"  looplessd --cgroup kubepods.slice --pin-dir /sys/fs/bpf/loopless\n"
		"      every pod on a Kubernetes node\n"
		"  looplessd --metrics 127.0.0.1:9464\n"
		"      with Prometheus metrics on the loopback address: in another shell,\n"
		"      curl -s http://127.0.0.1:9464/metrics\n",
		CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_PIN_DIR);
}

int looplessd_parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "default-cgroup", required_argument, NULL, 'D' },
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "check", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	char msg[CONFIG_ERR_MAX], q[CONFIG_QUOTE_MAX];
	int c;

	o->config_path = CONFIG_DEFAULT_PATH;
	/* Errors are ours, one line each: getopt's own message would be one
	 * and "Try --help" another. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:g:D:p:l:m:nhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (!optarg[0]) {
				log_error("--config: empty file name");
				return EXIT_USAGE;
			}
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
		case 'D':
			o->default_cgroup = optarg;
			break;
		case 'p':
			o->pin_dir = optarg;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'm':
			o->metrics = optarg;
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
			options_error(msg, sizeof(msg), c, longopts, argv, optind, optopt);
			log_error("%s", msg);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument \"%s\" (try --help)",
			  config_quote(q, sizeof(q), argv[optind]));
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * Build the configuration: file (or defaults), then command-line overrides.
 * Returns 0 or EXIT_USAGE after logging one line.
 */
int looplessd_build_config(const struct opts *o, struct config *cfg)
{
	char err[CONFIG_ERR_MAX], q[CONFIG_QUOTE_MAX];
	enum log_level level;
	int i, ret;

	config_init(cfg);
	ret = config_parse_file(cfg, o->config_path, err, sizeof(err));
	if (ret == -ENOENT && !o->config_explicit) {
		log_debug("%s not found, using built-in defaults", o->config_path);
	} else if (ret) {
		/* -EINVAL: the text ("file:line: ..."); else the file itself. */
		log_error("%s%s", o->config_explicit && ret != -EINVAL ? "--config: " : "", err);
		return EXIT_USAGE;
	}
	/* The unit's loopless.slice: what neither the file nor --cgroup
	 * names falls back to it rather than to the whole host. */
	if (!o->n_cli_cgroups && o->default_cgroup && cfg->cgroups_are_default) {
		config_set_cgroups_clear(cfg);
		if (config_add_cgroup(cfg, o->default_cgroup, 0, err, sizeof(err))) {
			log_error("--default-cgroup: %s", err);
			return EXIT_USAGE;
		}
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
	if (o->pin_dir) {
		if (config_set_pin_dir(cfg, o->pin_dir, err, sizeof(err))) {
			log_error("--pin-dir: %s", err);
			return EXIT_USAGE;
		}
		cfg->pin_dir_line = 0;
	}
	if (o->log_level) {
		if (config_parse_log_level(o->log_level, &level)) {
			log_error("--log-level: unknown level \"%s\" (error, warn, info, debug)",
				  config_quote(q, sizeof(q), o->log_level));
			return EXIT_USAGE;
		}
		cfg->log_level = level;
	}
	if (o->metrics) {
		if (config_parse_metrics(o->metrics, &cfg->metrics, err, sizeof(err))) {
			log_error("--metrics: %s", err);
			return EXIT_USAGE;
		}
		cfg->metrics_line = 0;
	}
	return 0;
}
