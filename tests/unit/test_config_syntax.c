// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/config_ini.c, configuration files as text: INI
 * syntax, messages naming file, line and key, a failed parse keeping the
 * configuration, whole files, and garbage. Run from the repository root: one
 * test parses config/looplessd.conf and expects exactly the defaults.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

#define EXAMPLE_CONFIG "config/looplessd.conf"

/* The lines looplessd names when the system rejects a value later. */
static void test_value_lines(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->cfg.pin_dir_line, 0);
	assert_int_equal(f->cfg.metrics_line, 0);
	assert_int_equal(parse(f, "[daemon]\n\npin_dir = /sys/fs/bpf/a\nmetrics = 127.0.0.1:0\n"),
			 0);
	assert_int_equal(f->cfg.pin_dir_line, 3);
	assert_int_equal(f->cfg.metrics_line, 4);
	/* A bad value later in the file keeps the lines of the running one. */
	assert_int_equal(parse(f, "[daemon]\npin_dir = /sys/fs/bpf/b\nmetrics = x\n"), -EINVAL);
	assert_string_equal(f->cfg.pin_dir, "/sys/fs/bpf/a");
	assert_int_equal(f->cfg.pin_dir_line, 3);
	assert_int_equal(f->cfg.metrics_line, 4);
}

/* A file name in a message stays on one line. */
static void test_file_name_quoted(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(
		config_parse_string(&f->cfg, "a\nb.conf", "[nope]\n", f->err, sizeof(f->err)),
		-EINVAL);
	assert_string_equal(f->err, "a\\x0ab.conf:1: unknown section [nope]");
	assert_int_equal(config_parse_file(&f->cfg, "/nonexistent/a\nb", f->err, sizeof(f->err)),
			 -ENOENT);
	assert_string_equal(f->err, "/nonexistent/a\\x0ab: No such file or directory");
}

static void test_error_unknown_key(void **state)
{
	(void)state;
	expect_error("# looplessd\n"
		     "\n"
		     "[daemon]\n"
		     "cgroupz = /sys/fs/cgroup/x\n",
		     "x.conf:4: unknown key \"cgroupz\" in [daemon]");
	expect_error("[datapath]\n; a comment\n\ncgroup = x\n",
		     "x.conf:4: unknown key \"cgroup\" in [datapath] (it belongs in [daemon])");
	expect_error("[daemon]\n= value\n", "x.conf:2: unknown key \"\" in [daemon]");
	expect_error("[daemon]\nPIN_DIR = /x\n", "x.conf:2: unknown key \"PIN_DIR\" in [daemon]");
}

static void test_error_unknown_section(void **state)
{
	(void)state;
	expect_error("# x\n[foo]\n", "x.conf:2: unknown section [foo]");
	expect_error("[daemon]\n\n[]\n", "x.conf:3: unknown section []");
	expect_error("[ daemon ]\n", "x.conf:1: unknown section [ daemon ]");
	expect_error("[Daemon]\npin_dir = /x\n", "x.conf:1: unknown section [Daemon]");
	expect_error("[daemon]\n[datapath]\n[daemon.x]\n", "x.conf:3: unknown section [daemon.x]");
}

static void test_error_outside_section(void **state)
{
	(void)state;
	expect_error("pin_dir = /x\n[daemon]\n", "x.conf:1: key \"pin_dir\" outside any section");
	expect_error("; comment\n\nfoo = bar\n", "x.conf:3: key \"foo\" outside any section");
}

static void test_error_syntax(void **state)
{
	(void)state;
	expect_error("[daemon]\npin_dir = /x\n\n# c\nfoo\n",
		     "x.conf:5: syntax error (expected \"key = value\" or \"[section]\")");
	expect_error("[daemon\n",
		     "x.conf:1: syntax error (expected \"key = value\" or \"[section]\")");
	expect_error("[daemon ; comment]\n",
		     "x.conf:1: syntax error (expected \"key = value\" or \"[section]\")");
	expect_error("[daemon] junk\n", "x.conf:1: unexpected text after [daemon]");
	expect_error("[datapath]]\n", "x.conf:1: unexpected text after [datapath]");
}

static void test_error_comment_after_value(void **state)
{
	(void)state;
	expect_error(
		"[daemon]\npin_dir = /sys/fs/bpf/x # where maps live\n",
		"x.conf:2: bad value for \"pin_dir\" in [daemon]: \"#\" starts a comment only at "
		"the beginning of a line (use \" ;\" after a value)");
	expect_error("[datapath]\ninclude_ports = 80\n\t443 # https\n",
		     "x.conf:3: bad value for \"include_ports\" in [datapath]: \"#\" starts a "
		     "comment only at the beginning of a line (use \" ;\" after a value)");
}

static void test_error_continuation(void **state)
{
	(void)state;
	expect_error(
		"[daemon]\npin_dir = /x\n  log_level = debug\n",
		"x.conf:3: indented line continues the value of \"pin_dir\" in [daemon] (remove "
		"the indentation to start a new key; only list keys take continuation lines)");
	expect_error("[datapath]\ninclude_ports = 80\n  exclude_ports = 22\n",
		     "x.conf:3: indented line continues the value of \"include_ports\" in "
		     "[datapath] (remove the indentation to start a new key)");
	expect_error(
		"[datapath]\ninclude_ports = 80\n  [daemon]\n",
		"x.conf:3: bad value for \"include_ports\" in [datapath]: bad port \"[daemon]\" "
		"(expected 1-65535 or a range N-M)");
}

/* inih's line buffer holds 198 characters plus "\n" and the NUL. */
static void test_error_long_lines(void **state)
{
	struct fixture *f = *state;
	char text[2048], *p;

	/* Exactly 198 characters: accepted. */
	p = text + sprintf(text, "[daemon]\npin_dir = /");
	memset(p, 'a', 198 - 11);
	strcpy(p + 198 - 11, "\n");
	assert_int_equal(parse(f, text), 0);
	assert_int_equal(strlen(f->cfg.pin_dir), 198 - 10);

	/* 199, also without a final newline: rejected on its own line. */
	p = text + sprintf(text, "[daemon]\n# comment\n\npin_dir = /");
	memset(p, 'a', 199 - 11);
	p[199 - 11] = '\0';
	assert_int_equal(parse(f, text), -EINVAL);
	assert_string_equal(f->err, "x.conf:4: line too long (at most 198 characters)");
	strcat(text, "\n");
	assert_int_equal(parse(f, text), -EINVAL);
	assert_string_equal(f->err, "x.conf:4: line too long (at most 198 characters)");

	/* A long comment counts too: it would be read in pieces. */
	p = text + sprintf(text, "[daemon]\n#");
	memset(p, '=', 300);
	strcpy(p + 300, "\npin_dir = /x\n");
	assert_int_equal(parse(f, text), -EINVAL);
	assert_string_equal(f->err, "x.conf:2: line too long (at most 198 characters)");

	/* Long continuation lines are counted as one line each. */
	p = text + sprintf(text, "[datapath]\nexclude_ports = 1\n");
	for (int l = 0; l < 3; l++) {
		p += sprintf(p, "   ");
		for (int i = 0; i < 15; i++)
			p += sprintf(p, "%d-%d,", 10000 + l * 100 + i, 20000 + l * 100 + i);
		p += sprintf(p, "\n");
	}
	sprintf(p, "\n# after the long lines\nexclude_ports = 1, x\n");
	assert_int_equal(parse(f, text), -EINVAL);
	assert_string_equal(f->err, "x.conf:8: bad value for \"exclude_ports\" in [datapath]: bad "
				    "port \"x\" (expected 1-65535 or a range N-M)");
}

static void test_first_error_only(void **state)
{
	(void)state;
	/* A syntax error inih sees before ours wins... */
	expect_error("[daemon]\nbroken\nfoo = 1\n",
		     "x.conf:2: syntax error (expected \"key = value\" or \"[section]\")");
	/* ...and ours wins when it comes first. */
	expect_error("[daemon]\nfoo = 1\nbroken\n[bar]\n",
		     "x.conf:2: unknown key \"foo\" in [daemon]");
	expect_error("[bar]\nbroken\n", "x.conf:1: unknown section [bar]");
	expect_error("[daemon]\nmax_sockets = x\nlog_level = y\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"x\" (expected an "
		     "integer from 1 to 16777216)");
}

static void test_failed_parse_keeps_config(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[daemon]\npin_dir = /good\ncgroup = a\n"
				  "[datapath]\ninclude_ports = 80\n"),
			 0);
	assert_int_equal(parse(f, "[daemon]\npin_dir = /bad\ncgroup = b\nlog_level = debug\n"
				  "[datapath]\ninclude_ports = 1-2 3\nlocal_addrs = ::1\n"
				  "exclude_ports = nope\n"),
			 -EINVAL);
	assert_string_equal(f->cfg.pin_dir, "/good");
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "a");
	assert_int_equal(f->cfg.log_level, LOG_LEVEL_INFO);
	assert_int_equal(f->cfg.n_include_ports, 1);
	assert_int_equal(f->cfg.include_ports[0].lo, 80);
	assert_int_equal(f->cfg.n_local_addrs, 0);
	assert_string_equal(f->cfg.source, "x.conf");

	/* From the defaults, a failed parse leaves the defaults. */
	config_free(&f->cfg);
	config_init(&f->cfg);
	assert_int_equal(parse(f, "[daemon]\ncgroup = a\ncgroup = a\n"), -EINVAL);
	assert_defaults(&f->cfg);
	assert_string_equal(f->cfg.source, "");
}

static void test_err_buffer(void **state)
{
	struct fixture *f = *state;
	char small[12];

	memset(small, 'x', sizeof(small));
	assert_int_equal(config_parse_string(&f->cfg, "x.conf", "[nope]\n", small, sizeof(small)),
			 -EINVAL);
	assert_string_equal(small, "x.conf:1: u");
	assert_int_equal(config_parse_string(&f->cfg, "x.conf", "[nope]\n", NULL, 0), -EINVAL);
	assert_int_equal(config_add_cgroup(&f->cfg, "", 0, NULL, 0), -EINVAL);
	assert_int_equal(config_parse_string(&f->cfg, NULL, "[nope]\n", f->err, sizeof(f->err)),
			 -EINVAL);
	assert_string_equal(f->err, "<string>:1: unknown section [nope]");
	/* Bytes that are not printable ASCII are escaped, long values cut. */
	expect_error("[daemon]\nlog_level = \x01\xff\"\\\n",
		     "x.conf:2: bad value for \"log_level\" in [daemon]: \"\\x01\\xff\\\"\\\\\" "
		     "(expected error, warn, info or debug)");
	expect_error("[daemon]\nlog_level = "
		     "0123456789012345678901234567890123456789012345678901234567890123456789"
		     "0123456789012345678901234567890123456789\n",
		     "x.conf:2: bad value for \"log_level\" in [daemon]: "
		     "\"0123456789012345678901234567890123456789012345678901234567890123456789"
		     "0123456789012345678901...\" (expected error, warn, info or debug)");
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_parse_file(void **state)
{
	static const char good[] = "[daemon]\nlog_level = warn\ncgroup = k.slice\n";
	static const char bad[] = "[daemon]\n\nlog_level = warn\nmax_sockets = many\n";
	static const char nul[] = "[daemon]\nlog_level = warn\nmax_sockets = 1\0\n";
	struct fixture *f = *state;
	char *path, want[CONFIG_ERR_MAX + 64];

	assert_int_equal(
		config_parse_file(&f->cfg, "/nonexistent/looplessd.conf", f->err, sizeof(f->err)),
		-ENOENT);
	assert_string_equal(f->err, "/nonexistent/looplessd.conf: No such file or directory");
	assert_defaults(&f->cfg);

	assert_int_equal(config_parse_file(&f->cfg, "/", f->err, sizeof(f->err)), -EISDIR);
	assert_string_equal(f->err, "/: Is a directory");

	path = write_temp(good, sizeof(good) - 1);
	assert_int_equal(config_parse_file(&f->cfg, path, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->cfg.log_level, LOG_LEVEL_WARN);
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "k.slice");
	assert_int_equal(f->cfg.cgroup_lines[0], 3);
	assert_string_equal(f->cfg.source, path);
	unlink(path);
	free(path);

	path = write_temp(bad, sizeof(bad) - 1);
	assert_int_equal(config_parse_file(&f->cfg, path, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:4: bad value for \"max_sockets\" in [daemon]: \"many\" (expected an integer "
		 "from 1 to 16777216)",
		 path);
	assert_string_equal(f->err, want);
	unlink(path);
	free(path);

	path = write_temp(nul, sizeof(nul) - 1);
	assert_int_equal(config_parse_file(&f->cfg, path, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: line contains a NUL byte", path);
	assert_string_equal(f->err, want);
	unlink(path);
	free(path);
}

static void test_example_config(void **state)
{
	struct fixture *f = *state;

	if (access(EXAMPLE_CONFIG, R_OK))
		fail_msg("%s not found: run the tests from the repository root", EXAMPLE_CONFIG);
	assert_int_equal(config_parse_file(&f->cfg, EXAMPLE_CONFIG, f->err, sizeof(f->err)), 0);
	assert_string_equal(f->err, "");
	assert_defaults(&f->cfg);
	assert_string_equal(f->cfg.source, EXAMPLE_CONFIG);
}

/* Deterministic random texts from INI fragments: never crashes, leaks
 * (under ASan) or returns anything but 0 or one line of -EINVAL. */
static void test_garbage(void **state)
{
	static const char *const frags[] = {
		"[daemon]",
		"[datapath]",
		"[",
		"]",
		"=",
		":",
		";",
		"#",
		" ",
		"\t",
		"\n",
		"\r\n",
		",",
		"-",
		"/",
		"..",
		"0",
		"65535",
		"70000",
		"80-90",
		"::1",
		"10.0.0.1",
		"::ffff:1.2.3.4",
		"cgroup",
		"pin_dir",
		"log_level",
		"debug",
		"max_sockets",
		"include_ports",
		"exclude_ports",
		"local_addrs",
		"metrics",
		"127.0.0.1:9464",
		"[::1]:0",
		"\xef\xbb\xbf",
		"\x01",
		"\xff",
		"a",
	};
	struct fixture *f = *state;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	char text[512];
	int iter, ok = 0;

	for (iter = 0; iter < 20000; iter++) {
		size_t len = 0;
		int r, n;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		n = (int)(x % 40);
		while (n--) {
			const char *s;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			s = frags[x % (sizeof(frags) / sizeof(frags[0]))];
			if (len + strlen(s) >= sizeof(text))
				break;
			memcpy(text + len, s, strlen(s));
			len += strlen(s);
		}
		text[len] = '\0';
		r = parse(f, text);
		if (r) {
			assert_int_equal(r, -EINVAL);
			assert_true(f->err[0] != '\0');
			assert_null(strchr(f->err, '\n'));
			assert_memory_equal(f->err, "x.conf:", 7);
		} else {
			ok++;
		}
		if (iter % 100 == 0) {
			config_free(&f->cfg);
			config_init(&f->cfg);
		}
	}
	/* The generator must reach the success paths too. */
	assert_true(ok > 100);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_value_lines),
		T(test_file_name_quoted),
		T(test_error_unknown_key),
		T(test_error_unknown_section),
		T(test_error_outside_section),
		T(test_error_syntax),
		T(test_error_comment_after_value),
		T(test_error_continuation),
		T(test_error_long_lines),
		T(test_first_error_only),
		T(test_failed_parse_keeps_config),
		T(test_err_buffer),
		T(test_parse_file),
		T(test_example_config),
		T(test_garbage),
	};
#undef T

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
