// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/options.c: the one line looplessd and loopless print
 * for an option getopt_long() rejects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <getopt.h>
#include <cmocka.h>

#include "config.h" /* CONFIG_ERR_MAX */
#include "options.h"

/* Runs getopt_long() over @args as looplessd does and expects its first
 * error to read @msg. */
static void expect_option_error(const char *optstring, const char *const *args, const char *msg)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "check", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{},
	};
	char *argv[16], buf[CONFIG_ERR_MAX];
	int argc = 0, c;

	argv[argc++] = (char *)"prog";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	optind = 0; /* glibc: reinitialise */
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		if (c != '?' && c != ':')
			continue;
		options_error(buf, sizeof(buf), c, longopts, argv, optind, optopt);
		assert_string_equal(buf, msg);
		return;
	}
	fail_msg("no getopt error for \"%s\"", msg);
}

static void test_option_error(void **state)
{
	(void)state;
#define ARGS(...) (const char *const[]){ __VA_ARGS__, NULL }
	expect_option_error(":c:g:nj", ARGS("--bogus"), "unknown option \"--bogus\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("--bogus=1"),
			    "unknown option \"--bogus\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("-x"), "unknown option \"-x\" (try --help)");
	/* A short option inside a cluster, after a long one. */
	expect_option_error(":c:g:nj", ARGS("--json", "-nxj"),
			    "unknown option \"-x\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("-xn"), "unknown option \"-x\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("--bo\ngus"),
			    "unknown option \"--bo\\x0agus\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("-\n"), "unknown option \"-\\x0a\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("--=x"), "unknown option \"--\" (try --help)");
	expect_option_error(":c:g:nj", ARGS("--config"),
			    "option \"--config\" needs an argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("--conf"),
			    "option \"--config\" needs an argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("-n", "-c"),
			    "option \"-c\" needs an argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("-nc"), "option \"-c\" needs an argument (try --help)");
	expect_option_error("+:c:g:nj", ARGS("--json", "--cgroup"),
			    "option \"--cgroup\" needs an argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("--check=yes"),
			    "option \"--check\" takes no argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("--che="),
			    "option \"--check\" takes no argument (try --help)");
	expect_option_error(":c:g:nj", ARGS("--c"),
			    "ambiguous option \"--c\" (--config, --cgroup, --check; try --help)");
	expect_option_error(":c:g:nj", ARGS("--c=1"),
			    "ambiguous option \"--c\" (--config, --cgroup, --check; try --help)");
#undef ARGS
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_option_error),
	};

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
