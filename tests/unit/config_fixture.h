/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the tests of the configuration model (test_config.c) and of its file
 * parser (test_config_ini.c, test_config_syntax.c) share: a configuration with room for an error,
 * set to the defaults before each test and freed after it, and the check that
 * a configuration holds exactly the defaults, and parsing a text as a file. Static inline in a header (as
 * the sockmap selftests' sockmap_helpers.h) so each test binary builds from
 * its own source and the objects it tests.
 */
#ifndef LOOPLESS_CONFIG_FIXTURE_H
#define LOOPLESS_CONFIG_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <cmocka.h>

#include "config.h"

struct fixture {
	struct config cfg;
	char err[CONFIG_ERR_MAX];
};

static inline int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	config_init(&f->cfg);
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&f->cfg);
	free(f);
	return 0;
}

static inline void assert_defaults(const struct config *cfg)
{
	assert_string_equal(cfg->pin_dir, CONFIG_DEFAULT_PIN_DIR);
	assert_string_equal(cfg->pin_dir, "/sys/fs/bpf/loopless");
	assert_int_equal(cfg->n_cgroups, 1);
	assert_string_equal(cfg->cgroups[0], "/");
	assert_int_equal(cfg->cgroup_lines[0], 0);
	assert_true(cfg->cgroups_are_default);
	assert_int_equal(cfg->max_sockets, 65536);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg->n_include_ports, 0);
	assert_int_equal(cfg->n_exclude_ports, 0);
	assert_int_equal(cfg->n_local_addrs, 0);
	assert_false(cfg->metrics.enabled);
	assert_string_equal(cfg->metrics.text, "");
	assert_int_equal(cfg->queue_limit, 16 << 20);
	assert_int_equal(cfg->reader_idle_ms, 20);
	assert_int_equal(cfg->small_write, 2048);
	assert_int_equal(cfg->small_lag, 65536);
}

/* Parses @text as file "x.conf" into @f's configuration. */
static inline int parse(struct fixture *f, const char *text)
{
	f->err[0] = '\0';
	return config_parse_string(&f->cfg, "x.conf", text, f->err, sizeof(f->err));
}

/* Parses @text into fresh defaults and expects -EINVAL with exactly @msg. */
static inline void expect_error(const char *text, const char *msg)
{
	struct fixture f;

	config_init(&f.cfg);
	assert_int_equal(parse(&f, text), -EINVAL);
	assert_string_equal(f.err, msg);
	config_free(&f.cfg);
}

#endif /* LOOPLESS_CONFIG_FIXTURE_H */
