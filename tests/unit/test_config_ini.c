// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/config_ini.c, configuration files: every key and its
 * values (the syntax, errors and whole files: test_config_syntax.c).
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
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

/* "::ffff:a.b.c.d" as stored. */
static void assert_v4(const struct local_addr *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	const uint8_t want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b0, b1, b2, b3 };

	assert_int_equal(a->family, AF_INET);
	assert_memory_equal(a->addr, want, 16);
}

static void test_every_key(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[daemon]\n"
				  "pin_dir = /sys/fs/bpf/other\n"
				  "cgroup = /sys/fs/cgroup/a.slice\n"
				  "log_level = debug\n"
				  "max_sockets = 1024\n"
				  "metrics = 127.0.0.1:9464\n"
				  "[datapath]\n"
				  "include_ports = 80, 443\n"
				  "exclude_ports = 22\n"
				  "local_addrs = 192.0.2.1, 2001:db8::1\n"),
			 0);
	assert_string_equal(f->err, "");
	assert_string_equal(f->cfg.pin_dir, "/sys/fs/bpf/other");
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "/sys/fs/cgroup/a.slice");
	assert_int_equal(f->cfg.cgroup_lines[0], 3);
	assert_false(f->cfg.cgroups_are_default);
	assert_int_equal(f->cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(f->cfg.max_sockets, 1024);
	assert_true(f->cfg.metrics.enabled);
	assert_string_equal(f->cfg.metrics.text, "127.0.0.1:9464");
	assert_int_equal(f->cfg.n_include_ports, 2);
	assert_int_equal(f->cfg.include_ports[0].lo, 80);
	assert_int_equal(f->cfg.include_ports[0].hi, 80);
	assert_int_equal(f->cfg.include_ports[1].lo, 443);
	assert_int_equal(f->cfg.include_ports[1].hi, 443);
	assert_int_equal(f->cfg.n_exclude_ports, 1);
	assert_int_equal(f->cfg.exclude_ports[0].lo, 22);
	assert_int_equal(f->cfg.exclude_ports[0].hi, 22);
	assert_int_equal(f->cfg.n_local_addrs, 2);
	assert_v4(&f->cfg.local_addrs[0], 192, 0, 2, 1);
	assert_int_equal(f->cfg.local_addrs[1].family, AF_INET6);
	assert_string_equal(f->cfg.source, "x.conf");
}

static void test_empty_text_keeps_defaults(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, ""), 0);
	assert_defaults(&f->cfg);
	assert_int_equal(parse(f, "\n\n# only comments\n; and more\n[daemon]\n[datapath]\n"), 0);
	assert_defaults(&f->cfg);
	assert_string_equal(f->cfg.source, "x.conf");
}

/* Comment styles, "key: value", CRLF line ends and a UTF-8 BOM. */
static void test_syntax_variants(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "\xef\xbb\xbf# comment\r\n"
				  "; comment\r\n"
				  "   # indented comment\r\n"
				  "[daemon] ; comment after a section\r\n"
				  "pin_dir: /p ; inline comment\r\n"
				  "log_level=WARN\r\n"
				  "  max_sockets   =   7   \r\n"),
			 /* max_sockets is indented but follows log_level: a
			  * continuation, rejected below; here we stop at it. */
			 -EINVAL);
	assert_string_equal(f->err,
			    "x.conf:7: indented line continues the value of \"log_level\" in "
			    "[daemon] (remove the indentation to start a new key; only list "
			    "keys take continuation lines)");

	assert_int_equal(parse(f, "\xef\xbb\xbf[daemon]\r\n"
				  "  pin_dir: /p ; inline comment\r\n"
				  "log_level=WARN\r\n"
				  "max_sockets=7;not a comment without a blank\r\n"),
			 -EINVAL);
	assert_string_equal(f->err,
			    "x.conf:4: bad value for \"max_sockets\" in [daemon]: \"7;not a "
			    "comment without a blank\" (expected an integer from 1 to "
			    "16777216)");

	assert_int_equal(parse(f, "\xef\xbb\xbf[daemon]\r\n"
				  "  pin_dir: /p ; inline comment\r\n"
				  "log_level=WARN\r\n"
				  "max_sockets=7\t; tab before the comment\r\n"),
			 0);
	/* An indented key right after a section line is a key, not a
	 * continuation (there is no previous key in the section). */
	assert_string_equal(f->cfg.pin_dir, "/p");
	assert_int_equal(f->cfg.log_level, LOG_LEVEL_WARN);
	assert_int_equal(f->cfg.max_sockets, 7);
}

static void test_later_value_replaces(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[daemon]\n"
				  "pin_dir = /one\n"
				  "pin_dir = /two\n"
				  "log_level = error\n"
				  "log_level = Debug\n"
				  "max_sockets = 5\n"
				  "max_sockets = 6\n"
				  "[datapath]\n"
				  "include_ports = 1-10, 20\n"
				  "include_ports = 30\n"
				  "exclude_ports = 40\n"
				  "exclude_ports =\n"
				  "local_addrs = 10.0.0.1\n"
				  "local_addrs = 10.0.0.2\n"
				  "[daemon]\n"
				  "pin_dir = /three\n"),
			 0);
	assert_string_equal(f->cfg.pin_dir, "/three");
	assert_int_equal(f->cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(f->cfg.max_sockets, 6);
	assert_int_equal(f->cfg.n_include_ports, 1);
	assert_int_equal(f->cfg.include_ports[0].lo, 30);
	assert_int_equal(f->cfg.include_ports[0].hi, 30);
	assert_int_equal(f->cfg.n_exclude_ports, 0);
	assert_int_equal(f->cfg.n_local_addrs, 1);
	assert_v4(&f->cfg.local_addrs[0], 10, 0, 0, 2);

	/* A second parse on top of the first replaces again. */
	assert_int_equal(parse(f, "[datapath]\ninclude_ports =\n"), 0);
	assert_int_equal(f->cfg.n_include_ports, 0);
	assert_string_equal(f->cfg.pin_dir, "/three");
}

static void test_cgroups_repeated(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[daemon]\n"
				  "cgroup = kubepods.slice\n"
				  "# a comment\n"
				  "cgroup = /sys/fs/cgroup/system.slice/a.service\n"
				  "\n"
				  "cgroup = b/c\n"
				  "  d.slice\n"
				  "  e.slice ; a comment on a continuation line\n"),
			 0);
	assert_false(f->cfg.cgroups_are_default);
	assert_int_equal(f->cfg.n_cgroups, 5);
	assert_string_equal(f->cfg.cgroups[0], "kubepods.slice");
	assert_int_equal(f->cfg.cgroup_lines[0], 2);
	assert_string_equal(f->cfg.cgroups[1], "/sys/fs/cgroup/system.slice/a.service");
	assert_int_equal(f->cfg.cgroup_lines[1], 4);
	assert_string_equal(f->cfg.cgroups[2], "b/c");
	assert_int_equal(f->cfg.cgroup_lines[2], 6);
	assert_string_equal(f->cfg.cgroups[3], "d.slice");
	assert_int_equal(f->cfg.cgroup_lines[3], 7);
	assert_string_equal(f->cfg.cgroups[4], "e.slice");
	assert_int_equal(f->cfg.cgroup_lines[4], 8);
}

static void test_cgroups_default_replacement(void **state)
{
	struct fixture *f = *state;

	/* No cgroup key: the default stays. */
	assert_int_equal(parse(f, "[daemon]\nlog_level = info\n"), 0);
	assert_true(f->cfg.cgroups_are_default);
	assert_int_equal(f->cfg.n_cgroups, 1);

	/* The first --cgroup replaces the default, the next one adds. */
	assert_int_equal(config_add_cgroup(&f->cfg, "cli.slice", 0, f->err, sizeof(f->err)), 0);
	assert_false(f->cfg.cgroups_are_default);
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "cli.slice");
	assert_int_equal(f->cfg.cgroup_lines[0], 0);
	assert_int_equal(config_add_cgroup(&f->cfg, "/sys/fs/cgroup/x", 0, f->err, sizeof(f->err)),
			 0);
	assert_int_equal(f->cfg.n_cgroups, 2);

	/* No longer the default: a file's keys add to the list. */
	assert_int_equal(parse(f, "[daemon]\ncgroup = file.slice\n"), 0);
	assert_int_equal(f->cfg.n_cgroups, 3);
	assert_string_equal(f->cfg.cgroups[2], "file.slice");
	assert_int_equal(f->cfg.cgroup_lines[2], 2);

	/* An explicit clear empties the list; the next add starts it. */
	assert_int_equal(config_set_cgroups_clear(&f->cfg), 0);
	assert_int_equal(f->cfg.n_cgroups, 0);
	assert_false(f->cfg.cgroups_are_default);
	assert_int_equal(config_add_cgroup(&f->cfg, "z", 9, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->cfg.n_cgroups, 1);
	assert_string_equal(f->cfg.cgroups[0], "z");
	assert_int_equal(f->cfg.cgroup_lines[0], 9);

	/* From the defaults, a file's first key replaces the default. */
	config_free(&f->cfg);
	config_init(&f->cfg);
	assert_int_equal(parse(f, "[daemon]\ncgroup = a\ncgroup = b\n"), 0);
	assert_int_equal(f->cfg.n_cgroups, 2);
	assert_string_equal(f->cfg.cgroups[0], "a");
	assert_string_equal(f->cfg.cgroups[1], "b");
}

static void test_cgroup_errors_in_file(void **state)
{
	(void)state;
	expect_error(
		"[daemon]\ncgroup = a\n\n# again\ncgroup = a\n",
		"x.conf:5: bad value for \"cgroup\" in [daemon]: duplicate cgroup \"a\" (first "
		"on line 2)");
	expect_error("[daemon]\ncgroup =\n",
		     "x.conf:2: bad value for \"cgroup\" in [daemon]: empty cgroup path");
	expect_error("[daemon]\ncgroup = ../etc\n",
		     "x.conf:2: bad value for \"cgroup\" in [daemon]: "
		     "cgroup \"../etc\" contains a \"..\" component");
}

static void test_cgroup_limit_in_file(void **state)
{
	struct fixture *f = *state;
	char *text, *p, want[CONFIG_ERR_MAX];
	int i;

	text = malloc(80 * CONFIG_MAX_CGROUPS + 64);
	assert_non_null(text);
	p = text + sprintf(text, "[daemon]\n");
	for (i = 0; i < CONFIG_MAX_CGROUPS; i++)
		p += sprintf(p, "cgroup = /sys/fs/cgroup/c%d\n", i);
	assert_int_equal(parse(f, text), 0);
	assert_int_equal(f->cfg.n_cgroups, CONFIG_MAX_CGROUPS);
	assert_int_equal(f->cfg.cgroup_lines[CONFIG_MAX_CGROUPS - 1], CONFIG_MAX_CGROUPS + 1);

	sprintf(p, "cgroup = /sys/fs/cgroup/one-too-many\n");
	config_free(&f->cfg);
	config_init(&f->cfg);
	assert_int_equal(parse(f, text), -EINVAL);
	snprintf(want, sizeof(want),
		 "x.conf:%d: bad value for \"cgroup\" in [daemon]: too many cgroups (at most 64)",
		 CONFIG_MAX_CGROUPS + 2);
	assert_string_equal(f->err, want);
	free(text);
}

/* "[datapath]\n@key = @value\n" as a file x.conf (the value on line 2). */
static int parse_key(struct fixture *f, const char *key, const char *value)
{
	char text[8192];

	snprintf(text, sizeof(text), "[datapath]\n%s = %s\n", key, value);
	return parse(f, text);
}

static void expect_ports(const char *s, const struct port_range *want, int n_want)
{
	struct fixture f;
	int i;

	config_init(&f.cfg);
	assert_int_equal(parse_key(&f, "exclude_ports", s), 0);
	assert_string_equal(f.err, "");
	assert_int_equal(f.cfg.n_exclude_ports, n_want);
	for (i = 0; i < n_want; i++) {
		assert_int_equal(f.cfg.exclude_ports[i].lo, want[i].lo);
		assert_int_equal(f.cfg.exclude_ports[i].hi, want[i].hi);
	}
	config_free(&f.cfg);
}

static void test_ports(void **state)
{
	const struct port_range a[] = { { 80, 80 }, { 443, 443 }, { 8000, 8100 } };
	const struct port_range b[] = { { 1, 65535 } };
	const struct port_range c[] = { { 5, 5 }, { 65535, 65535 }, { 1, 1 } };

	(void)state;
	expect_ports("80,443,8000-8100", a, 3);
	expect_ports("80 443 8000-8100", a, 3);
	expect_ports("80, 443\t8000-8100", a, 3);
	expect_ports(" ,80 ,,\t443,8000-8100, ", a, 3);
	expect_ports("1-65535", b, 1);
	expect_ports("5-5 65535 0001", c, 3);
	expect_ports("", NULL, 0);
	expect_ports(" , ", NULL, 0);

	/* In a file, the key line starts the list and continuations add. */
	{
		struct fixture f;

		config_init(&f.cfg);
		assert_int_equal(parse(&f, "[datapath]\n"
					   "include_ports = 80,\n"
					   "    443 ; https\n"
					   "\t8000-8100\n"
					   "exclude_ports = 22 2222\n"),
				 0);
		assert_int_equal(f.cfg.n_include_ports, 3);
		assert_int_equal(f.cfg.include_ports[1].lo, 443);
		assert_int_equal(f.cfg.include_ports[2].lo, 8000);
		assert_int_equal(f.cfg.include_ports[2].hi, 8100);
		assert_int_equal(f.cfg.n_exclude_ports, 2);
		assert_int_equal(f.cfg.exclude_ports[1].lo, 2222);
		config_free(&f.cfg);
	}
}

/* @s as the value of the list @key fails with @msg, and leaves the whole
 * configuration (the list @seed set included) as an earlier file left it. */
static void expect_list_error(const char *key, const char *seed, const char *s, const char *msg)
{
	char want[CONFIG_ERR_MAX];
	struct config before;
	struct fixture f;

	config_init(&f.cfg);
	assert_int_equal(parse_key(&f, key, seed), 0);
	memcpy(&before, &f.cfg, sizeof(before));
	assert_int_equal(parse_key(&f, key, s), -EINVAL);
	snprintf(want, sizeof(want), "x.conf:2: bad value for \"%s\" in [datapath]: %s", key, msg);
	assert_string_equal(f.err, want);
	assert_memory_equal(&f.cfg, &before, sizeof(before));
	config_free(&f.cfg);
}

static void expect_ports_error(const char *s, const char *msg)
{
	expect_list_error("exclude_ports", "7-9", s, msg);
}

static void test_ports_errors(void **state)
{
	(void)state;
	expect_ports_error("70000", "bad port \"70000\" (expected 1-65535 or a range N-M)");
	expect_ports_error("80, 0", "bad port \"0\" (expected 1-65535 or a range N-M)");
	expect_ports_error("65536", "bad port \"65536\" (expected 1-65535 or a range N-M)");
	expect_ports_error(
		"99999999999999999999999",
		"bad port \"99999999999999999999999\" (expected 1-65535 or a range N-M)");
	expect_ports_error("+80", "bad port \"+80\" (expected 1-65535 or a range N-M)");
	expect_ports_error("-80", "bad port \"-80\" (expected 1-65535 or a range N-M)");
	expect_ports_error("80-", "bad port \"80-\" (expected 1-65535 or a range N-M)");
	expect_ports_error("1-2-3", "bad port \"1-2-3\" (expected 1-65535 or a range N-M)");
	expect_ports_error("80 - 90", "bad port \"-\" (expected 1-65535 or a range N-M)");
	expect_ports_error("8o", "bad port \"8o\" (expected 1-65535 or a range N-M)");
	expect_ports_error("0x50", "bad port \"0x50\" (expected 1-65535 or a range N-M)");
	expect_ports_error("0-10", "bad port \"0-10\" (expected 1-65535 or a range N-M)");
	expect_ports_error("1-70000", "bad port \"1-70000\" (expected 1-65535 or a range N-M)");
	expect_ports_error("90-80",
			   "bad port range \"90-80\" (the first port must not be above the "
			   "second)");

	expect_error("[datapath]\n\n# ports\nexclude_ports = 22, 70000\n",
		     "x.conf:4: bad value for \"exclude_ports\" in [datapath]: bad port \"70000\" "
		     "(expected 1-65535 or a range N-M)");
}

static void test_ports_limit(void **state)
{
	struct fixture *f = *state;
	char s[1024], *p;
	int i;

	/* In a file, 64 ranges over continuation lines, the 65th on line 10. */
	p = s + sprintf(s, "[datapath]\ninclude_ports =");
	for (i = 1; i <= CONFIG_MAX_PORT_RANGES; i++)
		p += sprintf(p, "%s%d-%d", i % 8 == 1 ? "\n  " : ", ", i * 100, i * 100 + 1);
	strcpy(p, "\n  65000\n");
	assert_int_equal(parse(f, s), -EINVAL);
	assert_string_equal(f->err, "x.conf:11: bad value for \"include_ports\" in [datapath]: too "
				    "many port ranges (at most 64)");
	*strrchr(s, '6') = '\0';
	*strrchr(s, '\n') = '\0';
	assert_int_equal(parse(f, s), 0);
	assert_int_equal(f->cfg.n_include_ports, CONFIG_MAX_PORT_RANGES);
	assert_int_equal(f->cfg.include_ports[63].lo, 6400);
	assert_int_equal(f->cfg.include_ports[63].hi, 6401);
}

static void test_addrs(void **state)
{
	const uint8_t v6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	const uint8_t ll[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd };
	struct fixture *f = *state;
	const struct local_addr *out = f->cfg.local_addrs;

	assert_int_equal(parse_key(f, "local_addrs",
				   "10.0.0.5, fd00::1 ::ffff:192.0.2.1,\tfe80::1234:0:0:abcd"),
			 0);
	assert_int_equal(f->cfg.n_local_addrs, 4);
	assert_v4(&out[0], 10, 0, 0, 5);
	assert_int_equal(out[1].family, AF_INET6);
	assert_memory_equal(out[1].addr, v6, 16);
	/* v4-mapped IPv6 is stored exactly like the IPv4 it carries. */
	assert_v4(&out[2], 192, 0, 2, 1);
	assert_int_equal(out[3].family, AF_INET6);
	assert_memory_equal(out[3].addr, ll, 16);

	assert_int_equal(parse_key(f, "local_addrs", ""), 0);
	assert_int_equal(f->cfg.n_local_addrs, 0);

	/* Continuation lines add in a file. */
	assert_int_equal(parse(f, "[datapath]\n"
				  "local_addrs = 127.0.0.2\n"
				  "\t::1, 198.51.100.7\n"),
			 0);
	assert_int_equal(f->cfg.n_local_addrs, 3);
	assert_v4(&f->cfg.local_addrs[0], 127, 0, 0, 2);
	assert_int_equal(f->cfg.local_addrs[1].family, AF_INET6);
	assert_int_equal(f->cfg.local_addrs[1].addr[15], 1);
	assert_v4(&f->cfg.local_addrs[2], 198, 51, 100, 7);
}

static void expect_addrs_error(const char *s, const char *msg)
{
	expect_list_error("local_addrs", "fd00::9", s, msg);
}

static void test_addrs_errors(void **state)
{
	char s[CONFIG_MAX_LOCAL_ADDRS * 16 + 128], *p = s;
	struct fixture *f = *state;
	int i;

	expect_addrs_error("10.0.0.256",
			   "bad address \"10.0.0.256\" (expected an IPv4 or IPv6 address)");
	expect_addrs_error("10.0.0.0/8",
			   "bad address \"10.0.0.0/8\" (expected an IPv4 or IPv6 address)");
	expect_addrs_error("fe80::1%eth0",
			   "bad address \"fe80::1%eth0\" (expected an IPv4 or IPv6 address)");
	expect_addrs_error("localhost",
			   "bad address \"localhost\" (expected an IPv4 or IPv6 address)");
	expect_addrs_error("1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17",
			   "bad address \"1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17\" (expected an "
			   "IPv4 or IPv6 address)");
	expect_addrs_error("10.0.0.1 10.0.0.1", "duplicate address \"10.0.0.1\"");
	expect_addrs_error("10.0.0.1 ::ffff:10.0.0.1", "duplicate address \"::ffff:10.0.0.1\"");
	expect_addrs_error("fd00::1, FD00:0::1", "duplicate address \"FD00:0::1\"");

	/* 256 addresses over 32 continuation lines, the 257th on line 35. */
	p += sprintf(p, "[datapath]\nlocal_addrs =");
	for (i = 0; i < CONFIG_MAX_LOCAL_ADDRS; i++)
		p += sprintf(p, "%s10.0.%d.%d", i % 8 ? " " : "\n  ", i / 256, i % 256);
	strcpy(p, "\n");
	assert_int_equal(parse(f, s), 0);
	assert_int_equal(f->cfg.n_local_addrs, CONFIG_MAX_LOCAL_ADDRS);
	strcpy(p, "\n  10.1.0.0\n");
	assert_int_equal(parse(f, s), -EINVAL);
	assert_string_equal(f->err, "x.conf:35: bad value for \"local_addrs\" in [datapath]: too "
				    "many addresses (at most 256)");

	expect_error("[datapath]\nlocal_addrs = 192.0.2.1\n  ::ffff:192.0.2.1\n",
		     "x.conf:3: bad value for \"local_addrs\" in [datapath]: duplicate address "
		     "\"::ffff:192.0.2.1\"");
}

static void test_log_level_in_file(void **state)
{
	(void)state;
	expect_error("[daemon]\nlog_level = verbose\n",
		     "x.conf:2: bad value for \"log_level\" in [daemon]: \"verbose\" (expected "
		     "error, warn, info or debug)");
}

static void test_max_sockets(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[daemon]\nmax_sockets = 1\n"), 0);
	assert_int_equal(f->cfg.max_sockets, 1);
	assert_int_equal(parse(f, "[daemon]\nmax_sockets = 16777216\n"), 0);
	assert_int_equal(f->cfg.max_sockets, 16777216);
	assert_int_equal(parse(f, "[daemon]\nmax_sockets = 000123\n"), 0);
	assert_int_equal(f->cfg.max_sockets, 123);

	expect_error("[daemon]\n\n\n\n\n\nmax_sockets = 12abc\n",
		     "x.conf:7: bad value for \"max_sockets\" in [daemon]: \"12abc\" (expected an "
		     "integer from 1 to 16777216)");
	expect_error("[daemon]\nmax_sockets = 0\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"0\" (expected an "
		     "integer from 1 to 16777216)");
	expect_error(
		"[daemon]\nmax_sockets = 16777217\n",
		"x.conf:2: bad value for \"max_sockets\" in [daemon]: \"16777217\" (expected an "
		"integer from 1 to 16777216)");
	expect_error(
		"[daemon]\nmax_sockets = 18446744073709551617\n",
		"x.conf:2: bad value for \"max_sockets\" in [daemon]: \"18446744073709551617\" "
		"(expected an integer from 1 to 16777216)");
	expect_error("[daemon]\nmax_sockets = +5\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"+5\" (expected an "
		     "integer from 1 to 16777216)");
	expect_error("[daemon]\nmax_sockets = -1\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"-1\" (expected an "
		     "integer from 1 to 16777216)");
	expect_error("[daemon]\nmax_sockets = 1 000\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"1 000\" (expected an "
		     "integer from 1 to 16777216)");
	expect_error("[daemon]\nmax_sockets =\n",
		     "x.conf:2: bad value for \"max_sockets\" in [daemon]: \"\" (expected an "
		     "integer from 1 to 16777216)");
}

/* The path-switching thresholds of [datapath]: one parser, each key its range. */
static void test_path_thresholds(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(parse(f, "[datapath]\nqueue_limit = 65536\nreader_idle_ms = 1\n"
				  "small_write = 0\nsmall_lag = 1\n"),
			 0);
	assert_int_equal(f->cfg.queue_limit, 65536);
	assert_int_equal(f->cfg.reader_idle_ms, 1);
	assert_int_equal(f->cfg.small_write, 0);
	assert_int_equal(f->cfg.small_lag, 1);
	assert_int_equal(parse(f, "[datapath]\nqueue_limit = 1073741824\nreader_idle_ms = 60000\n"
				  "small_write = 1048576\n"),
			 0);
	assert_int_equal(f->cfg.queue_limit, 1U << 30);
	assert_int_equal(f->cfg.reader_idle_ms, 60000);
	assert_int_equal(f->cfg.small_write, 1 << 20);

	expect_error("[datapath]\nqueue_limit = 65535\n",
		     "x.conf:2: bad value for \"queue_limit\" in [datapath]: \"65535\" (expected "
		     "an integer from 65536 to 1073741824)");
	expect_error("[datapath]\nreader_idle_ms = 0\n",
		     "x.conf:2: bad value for \"reader_idle_ms\" in [datapath]: \"0\" (expected "
		     "an integer from 1 to 60000)");
	expect_error("[datapath]\nsmall_write = 4K\n",
		     "x.conf:2: bad value for \"small_write\" in [datapath]: \"4K\" (expected an "
		     "integer from 0 to 1048576)");
	expect_error("[daemon]\nsmall_lag = 1\n",
		     "x.conf:2: unknown key \"small_lag\" in [daemon] (it belongs in [datapath])");
}

/* cross_netns: off by default, the usual spellings of a boolean. */
static void test_cross_netns(void **state)
{
	struct fixture *f = *state;
	static const char *const yes[] = { "true", "yes", "on", "1", "TRUE" }, *const no[] = {
		"false", "no", "off", "0", "Off"
	};
	char text[64];
	size_t i;

	assert_int_equal(parse(f, "[datapath]\n"), 0);
	assert_false(f->cfg.cross_netns);
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "[datapath]\ncross_netns = %s\n", yes[i]);
		assert_int_equal(parse(f, text), 0);
		assert_true(f->cfg.cross_netns);
		snprintf(text, sizeof(text), "[datapath]\ncross_netns = %s\n", no[i]);
		assert_int_equal(parse(f, text), 0);
		assert_false(f->cfg.cross_netns);
	}
	expect_error("[datapath]\ncross_netns = maybe\n",
		     "x.conf:2: bad value for \"cross_netns\" in [datapath]: \"maybe\" (expected "
		     "true or false)");
}

static void test_metrics_in_file(void **state)
{
	struct fixture *f = *state;

	/* Empty is off, in the file too; a later line replaces an earlier one. */
	assert_int_equal(parse(f, "[daemon]\nmetrics = [::1]:9464\n"), 0);
	assert_true(f->cfg.metrics.enabled);
	assert_string_equal(f->cfg.metrics.text, "[::1]:9464");
	assert_int_equal(parse(f, "[daemon]\nmetrics = 127.0.0.1:1 ; loopback only\nmetrics =\n"),
			 0);
	assert_false(f->cfg.metrics.enabled);
	assert_string_equal(f->cfg.metrics.text, "");
}

static void test_metrics_errors_in_file(void **state)
{
	(void)state;
	/* In a file: file, line and key. */
	expect_error("[daemon]\n\nmetrics = 127.0.0.1:99999\n",
		     "x.conf:3: bad value for \"metrics\" in [daemon]: port \"99999\" out of "
		     "range (0-65535)");
	expect_error("[daemon]\nmetrics = nope:1\n",
		     "x.conf:2: bad value for \"metrics\" in [daemon]: \"nope\" is not an IPv4 "
		     "address (expected e.g. 127.0.0.1:9464 or [::1]:9464; host names are not "
		     "resolved)");
	expect_error("[daemon]\nmetrics = 127.0.0.1\n",
		     "x.conf:2: bad value for \"metrics\" in [daemon]: \"127.0.0.1\": missing "
		     "port (expected ADDRESS:PORT, e.g. 127.0.0.1:9464)");
	expect_error("[datapath]\nmetrics = 127.0.0.1:9464\n",
		     "x.conf:2: unknown key \"metrics\" in [datapath] (it belongs in [daemon])");
	expect_error("[daemon]\nmetrics = 127.0.0.1:9464\n  127.0.0.1:9465\n",
		     "x.conf:3: indented line continues the value of \"metrics\" in [daemon] "
		     "(remove the indentation to start a new key; only list keys take "
		     "continuation lines)");
}

static void test_pin_dir_in_file(void **state)
{
	(void)state;
	expect_error("[daemon]\npin_dir = relative\n",
		     "x.conf:2: bad value for \"pin_dir\" in [daemon]: \"relative\" is not an "
		     "absolute path (it must start with \"/\")");
	/* The root (any spelling of it) would be mounted over and removed. */
	expect_error("[daemon]\npin_dir = /\n",
		     "x.conf:2: bad value for \"pin_dir\" in [daemon]: \"/\" is the root directory "
		     "(use a directory of its own, e.g. /sys/fs/bpf/loopless)");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_every_key),
		T(test_empty_text_keeps_defaults),
		T(test_syntax_variants),
		T(test_later_value_replaces),
		T(test_cgroups_repeated),
		T(test_cgroups_default_replacement),
		T(test_cgroup_errors_in_file),
		T(test_cgroup_limit_in_file),
		T(test_ports),
		T(test_ports_errors),
		T(test_ports_limit),
		T(test_addrs),
		T(test_addrs_errors),
		T(test_log_level_in_file),
		T(test_max_sockets),
		T(test_path_thresholds),
		T(test_cross_netns),
		T(test_metrics_in_file),
		T(test_metrics_errors_in_file),
		T(test_pin_dir_in_file),
	};
#undef T

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
