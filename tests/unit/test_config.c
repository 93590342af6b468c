// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/config.c, the configuration model: the defaults, the
 * setters the command line uses and the parsers of single values, without a
 * file (test_config_ini.c reads files).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

static void test_defaults(void **state)
{
	struct fixture *f = *state;

	assert_defaults(&f->cfg);
	assert_string_equal(f->cfg.source, "");
}

static void test_free_twice_and_reinit(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_add_cgroup(&f->cfg, "a", 0, f->err, sizeof(f->err)), 0);
	config_free(&f->cfg);
	assert_int_equal(f->cfg.n_cgroups, 0);
	config_free(&f->cfg);
	config_init(&f->cfg);
	assert_defaults(&f->cfg);
	/* The default entry is freed without harm too. */
	config_free(&f->cfg);
	config_free(&f->cfg);
	config_init(&f->cfg);
}

static void expect_cgroup_error(struct fixture *f, const char *path, const char *msg)
{
	assert_int_equal(config_add_cgroup(&f->cfg, path, 0, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, msg);
}

static void test_cgroup_errors(void **state)
{
	struct fixture *f = *state;
	char *huge;

	expect_cgroup_error(f, "", "empty cgroup path");
	expect_cgroup_error(f, "..", "cgroup \"..\" contains a \"..\" component");
	expect_cgroup_error(f, "a/../b", "cgroup \"a/../b\" contains a \"..\" component");
	expect_cgroup_error(f, "/sys/fs/cgroup/..",
			    "cgroup \"/sys/fs/cgroup/..\" contains a \"..\" "
			    "component");
	expect_cgroup_error(f, "/",
			    "cgroup \"/\" is the cgroup2 root, which is only valid as the "
			    "default (leave \"cgroup\" out to use it)");
	expect_cgroup_error(f, "//./",
			    "cgroup \"//./\" is the cgroup2 root, which is only valid as "
			    "the default (leave \"cgroup\" out to use it)");
	huge = malloc(CONFIG_PATH_MAX + 1);
	assert_non_null(huge);
	memset(huge, 'a', CONFIG_PATH_MAX);
	huge[CONFIG_PATH_MAX] = '\0';
	expect_cgroup_error(f, huge, "cgroup path too long (4096 bytes, at most 4095)");
	free(huge);
	/* Rejected values leave the default in place. */
	assert_true(f->cfg.cgroups_are_default);
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "/");

	/* "..." and "a..b" are ordinary names. */
	assert_int_equal(config_add_cgroup(&f->cfg, "a..b/...", 0, f->err, sizeof(f->err)), 0);
	expect_cgroup_error(f, "a..b/...", "duplicate cgroup \"a..b/...\"");
	/* Control characters cannot break the message into lines. */
	expect_cgroup_error(f, "x/\n/..", "cgroup \"x/\\x0a/..\" contains a \"..\" component");
}

static void test_cgroup_limit(void **state)
{
	struct fixture *f = *state;
	int i;

	/* test_cgroup_limit_in_file: the same in a file. */
	for (i = 0; i < CONFIG_MAX_CGROUPS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(config_add_cgroup(&f->cfg, name, 0, f->err, sizeof(f->err)), 0);
	}
	expect_cgroup_error(f, "c64", "too many cgroups (at most 64)");
	assert_int_equal(f->cfg.n_cgroups, CONFIG_MAX_CGROUPS);
}

static void test_log_level(void **state)
{
	enum log_level l = LOG_LEVEL_INFO;

	(void)state;
	assert_int_equal(config_parse_log_level("error", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERROR);
	assert_int_equal(config_parse_log_level("WARN", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_equal(config_parse_log_level("Info", &l), 0);
	assert_int_equal(l, LOG_LEVEL_INFO);
	assert_int_equal(config_parse_log_level("dEbUg", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(config_parse_log_level("warning", &l), -EINVAL);
	assert_int_equal(config_parse_log_level("", &l), -EINVAL);
	assert_int_equal(config_parse_log_level("debug ", &l), -EINVAL);
	assert_int_equal(l, LOG_LEVEL_DEBUG);

	assert_string_equal(config_log_level_name(LOG_LEVEL_ERROR), "error");
	assert_string_equal(config_log_level_name(LOG_LEVEL_WARN), "warn");
	assert_string_equal(config_log_level_name(LOG_LEVEL_INFO), "info");
	assert_string_equal(config_log_level_name(LOG_LEVEL_DEBUG), "debug");
	assert_string_equal(config_log_level_name((enum log_level)42), "unknown");
}

/* @s parses to @family, @port and the canonical @text. */
static void expect_metrics(const char *s, int family, const char *addr, uint16_t port,
			   const char *text)
{
	struct metrics_addr m;
	uint8_t want[16] = {};
	char err[CONFIG_ERR_MAX] = "";

	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(config_parse_metrics(s, &m, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_true(m.enabled);
	assert_int_equal(m.family, family);
	assert_int_equal(inet_pton(family, addr, want), 1);
	assert_memory_equal(m.addr, want, family == AF_INET ? 4 : 16);
	assert_int_equal(m.port, port);
	assert_string_equal(m.text, text);
}

static void expect_metrics_error(const char *s, const char *msg)
{
	struct metrics_addr m = {};
	char err[CONFIG_ERR_MAX] = "";

	assert_true(config_parse_metrics("127.0.0.1:1", &m, err, sizeof(err)) == 0);
	assert_int_equal(config_parse_metrics(s, &m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	/* A bad value leaves the old one in place. */
	assert_string_equal(m.text, "127.0.0.1:1");
}

static void test_metrics(void **state)
{
	struct metrics_addr a, b;

	(void)state;
	expect_metrics("127.0.0.1:9464", AF_INET, "127.0.0.1", 9464, "127.0.0.1:9464");
	expect_metrics("0.0.0.0:1", AF_INET, "0.0.0.0", 1, "0.0.0.0:1");
	expect_metrics("127.0.0.1:0", AF_INET, "127.0.0.1", 0, "127.0.0.1:0");
	expect_metrics("127.0.0.1:65535", AF_INET, "127.0.0.1", 65535, "127.0.0.1:65535");
	expect_metrics("127.0.0.1:09464", AF_INET, "127.0.0.1", 9464, "127.0.0.1:9464");
	expect_metrics("[::1]:9464", AF_INET6, "::1", 9464, "[::1]:9464");
	expect_metrics("[::]:9464", AF_INET6, "::", 9464, "[::]:9464");
	expect_metrics("[fd00:0:0::5]:80", AF_INET6, "fd00::5", 80, "[fd00::5]:80");
	expect_metrics("[::ffff:127.0.0.1]:80", AF_INET6, "::ffff:127.0.0.1", 80,
		       "[::ffff:127.0.0.1]:80");

	/* Equality: address, family and port; every "off" is the same. */
	assert_int_equal(config_parse_metrics("127.0.0.1:9464", &a, NULL, 0), 0);
	assert_int_equal(config_parse_metrics("127.0.0.1:09464", &b, NULL, 0), 0);
	assert_true(config_metrics_equal(&a, &b));
	assert_int_equal(config_parse_metrics("127.0.0.1:9465", &b, NULL, 0), 0);
	assert_false(config_metrics_equal(&a, &b));
	assert_int_equal(config_parse_metrics("[::ffff:127.0.0.1]:9464", &b, NULL, 0), 0);
	assert_false(config_metrics_equal(&a, &b));
	assert_int_equal(config_parse_metrics("", &b, NULL, 0), 0);
	assert_false(config_metrics_equal(&a, &b));
	assert_int_equal(config_parse_metrics("", &a, NULL, 0), 0);
	assert_true(config_metrics_equal(&a, &b));
}

static void test_metrics_errors(void **state)
{
	(void)state;
	expect_metrics_error("127.0.0.1:99999", "port \"99999\" out of range (0-65535)");
	expect_metrics_error("127.0.0.1:65536", "port \"65536\" out of range (0-65535)");
	expect_metrics_error("127.0.0.1:", "bad port \"\" (expected a number from 0 to 65535)");
	expect_metrics_error("127.0.0.1:-1", "bad port \"-1\" (expected a number from 0 to 65535)");
	expect_metrics_error("127.0.0.1:http",
			     "bad port \"http\" (expected a number from 0 to 65535)");
	expect_metrics_error("[::1]:94 64",
			     "bad port \"94 64\" (expected a number from 0 to 65535)");
	expect_metrics_error("nope:1",
			     "\"nope\" is not an IPv4 address (expected e.g. "
			     "127.0.0.1:9464 or [::1]:9464; host names are not resolved)");
	expect_metrics_error(
		"localhost:9464",
		"\"localhost\" is not an IPv4 address (expected e.g. 127.0.0.1:9464 or "
		"[::1]:9464; host names are not resolved)");
	expect_metrics_error(":9464", "\"\" is not an IPv4 address (expected e.g. 127.0.0.1:9464 "
				      "or [::1]:9464; host names are not resolved)");
	expect_metrics_error("127.1:9464", "\"127.1\" is not an IPv4 address (expected e.g. "
					   "127.0.0.1:9464 or [::1]:9464; host names are not "
					   "resolved)");
	expect_metrics_error(
		"127.0.0.1",
		"\"127.0.0.1\": missing port (expected ADDRESS:PORT, e.g. 127.0.0.1:9464)");
	expect_metrics_error("9464",
			     "\"9464\": missing port (expected ADDRESS:PORT, e.g. 127.0.0.1:9464)");
	expect_metrics_error("::1:9464",
			     "\"::1:9464\": write an IPv6 address in brackets, e.g. [::1]:9464");
	expect_metrics_error("[::1]",
			     "\"[::1]\": missing port (expected [ADDRESS]:PORT, e.g. [::1]:9464)");
	expect_metrics_error(
		"[::1]9464",
		"\"[::1]9464\": missing port (expected [ADDRESS]:PORT, e.g. [::1]:9464)");
	expect_metrics_error("[::1:9464", "\"[::1:9464\": missing \"]\" after the IPv6 address");
	expect_metrics_error("[127.0.0.1]:9464",
			     "\"127.0.0.1\" is not an IPv6 address (expected e.g. [::1]:9464)");
	expect_metrics_error("[]:9464", "\"\" is not an IPv6 address (expected e.g. [::1]:9464)");
}

static void test_pin_dir(void **state)
{
	struct fixture *f = *state;
	char *huge;

	assert_int_equal(config_set_pin_dir(&f->cfg, "/sys/fs/bpf/x", f->err, sizeof(f->err)), 0);
	assert_string_equal(f->cfg.pin_dir, "/sys/fs/bpf/x");
	assert_int_equal(config_set_pin_dir(&f->cfg, "sys/fs/bpf", f->err, sizeof(f->err)),
			 -EINVAL);
	assert_string_equal(f->err, "\"sys/fs/bpf\" is not an absolute path (it must start with "
				    "\"/\")");
	assert_int_equal(config_set_pin_dir(&f->cfg, "", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "\"\" is not an absolute path (it must start with \"/\")");

	huge = malloc(CONFIG_PATH_MAX + 1);
	assert_non_null(huge);
	memset(huge, 'p', CONFIG_PATH_MAX);
	huge[0] = '/';
	huge[CONFIG_PATH_MAX - 1] = '\0';
	assert_int_equal(config_set_pin_dir(&f->cfg, huge, f->err, sizeof(f->err)), 0);
	assert_int_equal(strlen(f->cfg.pin_dir), CONFIG_PATH_MAX - 1);
	huge[CONFIG_PATH_MAX - 1] = 'p';
	huge[CONFIG_PATH_MAX] = '\0';
	assert_int_equal(config_set_pin_dir(&f->cfg, huge, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "path too long (4096 bytes, at most 4095)");
	free(huge);

	/* The root (any spelling of it) would be mounted over and removed. */
	assert_int_equal(config_set_pin_dir(&f->cfg, "/", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "\"/\" is the root directory (use a directory of its own, "
				    "e.g. /sys/fs/bpf/loopless)");
	assert_int_equal(config_check_pin_dir("//./", f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(config_check_pin_dir("/sys/fs/bpf/y", f->err, sizeof(f->err)), 0);
	assert_int_equal(config_check_pin_dir("x\ny", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "\"x\\x0ay\" is not an absolute path (it must start with "
				    "\"/\")");
}

static void test_parse_uint(void **state)
{
	unsigned long v = 7;

	(void)state;
	assert_int_equal(config_parse_uint("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_uint("3600", 3600, &v), 0);
	assert_int_equal(v, 3600);
	assert_int_equal(config_parse_uint("3601", 3600, &v), -ERANGE);
	assert_int_equal(config_parse_uint("99999999999999999999", 3600, &v), -ERANGE);
	assert_int_equal(config_parse_uint("", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint(" 5", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint("+5", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint("-1", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint("5s", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint("0x10", 3600, &v), -EINVAL);
	assert_int_equal(config_parse_uint(NULL, 3600, &v), -EINVAL);
	assert_int_equal(v, 3600);
}

static void test_quote(void **state)
{
	char q[CONFIG_QUOTE_MAX], small[8];
	char long_value[200];

	(void)state;
	assert_string_equal(config_quote(q, sizeof(q), "plain"), "plain");
	assert_string_equal(config_quote(q, sizeof(q), "a\nb\"c\\\x7f"), "a\\x0ab\\\"c\\\\\\x7f");
	assert_string_equal(config_quote(q, sizeof(q), NULL), "");
	assert_string_equal(config_quote(small, sizeof(small), "abcdefgh"), "abcd...");
	memset(long_value, 'v', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	config_quote(q, sizeof(q), long_value);
	assert_int_equal(strlen(q), CONFIG_QUOTE_MAX - 1);
	assert_string_equal(q + CONFIG_QUOTE_MAX - 4, "...");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		/* The defaults and the lifecycle. */
		T(test_defaults),
		T(test_free_twice_and_reinit),
		/* Setters. */
		T(test_cgroup_errors),
		T(test_cgroup_limit),
		/* Single values. */
		T(test_log_level),
		T(test_metrics),
		T(test_metrics_errors),
		T(test_pin_dir),
		T(test_parse_uint),
		T(test_quote),
	};
#undef T

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
