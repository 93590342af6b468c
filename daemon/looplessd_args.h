/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * looplessd's command line: its options, --help, and the configuration they
 * make with the file (looplessd_args.c).
 */
#ifndef LOOPLESS_LOOPLESSD_ARGS_H
#define LOOPLESS_LOOPLESSD_ARGS_H

#include <stdbool.h>
#include "config.h"

#define EXIT_USAGE 2

struct opts {
	const char *config_path;
	bool config_explicit;
	const char *cli_cgroups[CONFIG_MAX_CGROUPS];
	int n_cli_cgroups;
	const char *default_cgroup; /* --default-cgroup: instead of the root */
	const char *pin_dir;
	const char *log_level;
	const char *metrics;
	bool check;
};

/* Fill @o from the command line: 0, or EXIT_USAGE after one line on stderr
 * (--help and --version print and exit 0). */
int looplessd_parse_args(int argc, char **argv, struct opts *o);

/*
 * The configuration @o asks for: the file's (or the defaults), then the
 * command-line values over it. Returns 0 or EXIT_USAGE after logging one line.
 */
int looplessd_build_config(const struct opts *o, struct config *cfg);

#endif
