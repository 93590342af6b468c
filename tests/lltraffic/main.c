// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* lltraffic's main: the subcommand, its options, the watchdog, the run and its result line. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lib/fail.h"
#include "lltraffic.h"

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

const char prog_name[] = "lltraffic";

const char *const cmd_names[] = {
	[CMD_PAIR] = "pair", [CMD_HOLD] = "hold", [CMD_SERVE] = "serve",
	[CMD_SEND] = "send", [CMD_RR] = "rr",
};

int main(int argc, char **argv)
{
	struct opts o = {
		.chunk = DEFAULT_CHUNK,
		.seed = DEFAULT_SEED,
		.timeout = DEFAULT_TIMEOUT,
		.corrupt_at = UINT64_MAX,
	};
	struct out r;
	bool done;
	size_t i;
	int ret;

	if (argc < 2)
		return usage_error("missing subcommand (pair, hold, serve, send or rr)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		print_help();
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s %s\n", prog_name, LOOPLESS_VERSION);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(cmd_names); i++)
		if (!strcmp(argv[1], cmd_names[i]))
			break;
	if (i == ARRAY_SIZE(cmd_names))
		return usage_error("unknown subcommand '%s' (pair, hold, serve, send or rr)",
				   argv[1]);
	o.cmd = i;
	if (o.cmd == CMD_HOLD)
		o.bytes = HOLD_DEFAULT_BYTES;
	/* argv[1] (the subcommand) takes the place of argv[0] for getopt_long(). */
	ret = parse_opts(argc - 1, argv + 1, &o, &done);
	if (ret || done)
		return ret;

	/* A peer that vanishes must surface as EPIPE with context, not kill us silently. */
	signal(SIGPIPE, SIG_IGN);
	fail_cleanup = abort_connections;
	run.o = &o;
	atomic_init(&run.nw, 0);
	atomic_init(&run.phase, "starting");
	if (watchdog_start(o.timeout)) {
		errmsg("cannot start the watchdog thread");
		return 1;
	}
	out_init(&r);
	switch (o.cmd) {
	case CMD_PAIR:
	case CMD_HOLD:
		ret = cmd_pair(&o, &r);
		break;
	case CMD_SERVE:
		ret = cmd_serve(&o, &r);
		break;
	case CMD_SEND:
		ret = cmd_send(&o, &r);
		break;
	case CMD_RR:
		ret = cmd_rr(&o, &r);
		break;
	}
	/* Stop the watchdog before printing: "ok" must never be followed by a timeout exit. */
	watchdog_stop();
	return ret ? ret : out_print(&r, o.json);
}
