// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/counters.c's table: every counter the datapath has
 * is named for `loopless stats` and for Prometheus, the names follow the
 * conventions, and the exposition text is what promtool accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

static bool is_metric_name(const char *s)
{
	const char *p;

	/* [a-zA-Z_:][a-zA-Z0-9_:]*, and ours are lower case with a prefix. */
	if (strncmp(s, "loopless_", 9))
		return false;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static void test_every_entry_named(void **state)
{
	int i, j;

	(void)state;
	for (i = 0; i < STAT_NR; i++) {
		const struct stat_def *d = &stat_defs[i];

		if (!d->key || !d->metric)
			print_message("stat id %d has no line in stat_defs (daemon/counters.c)\n",
				      i);
		assert_non_null(d->key);
		assert_non_null(d->metric);
		assert_true(is_metric_name(d->metric));
		/* Counters are _total, nothing else is. */
		assert_int_equal(d->type == STAT_COUNTER, ends_with(d->metric, "_total"));
		for (j = 0; j < i; j++) {
			assert_string_not_equal(stat_defs[j].key, d->key);
			if (!strcmp(stat_defs[j].metric, d->metric)) {
				/* One family: same type, labels tell its members apart. */
				assert_int_equal(stat_defs[j].type, d->type);
				assert_non_null(d->label);
				assert_non_null(stat_defs[j].label);
				assert_string_not_equal(stat_defs[j].label, d->label);
			}
		}
		/* The first of a family carries the help text. */
		for (j = 0; j < i && strcmp(stat_defs[j].metric, d->metric); j++)
			;
		if (j == i) {
			assert_non_null(d->help);
			assert_null(strchr(d->help, '\n'));
			assert_null(strchr(d->help, '\\'));
		}
	}
}

/* The keys `loopless stats --json` has always had (README). */
static void test_stable_keys(void **state)
{
	static const char *const keys[] = {
		"redirected_msgs", "redirected_bytes", "passed_msgs",
		"passed_bytes",	   "tcp_pinned",       "sockets_inserted",
		"insert_errors",   "skipped_remote",   "skipped_port",
	};
	size_t k;
	int i;

	(void)state;
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (i = 0; i < STAT_NR && strcmp(stat_defs[i].key, keys[k]); i++)
			;
		assert_true(i < STAT_NR);
	}
	assert_string_equal(stat_defs[LL_CNT_REDIRECTED_BYTES].metric,
			    "loopless_redirected_bytes_total");
	assert_string_equal(stat_defs[STAT_SOCKETS].metric, "loopless_active_sockets");
	assert_string_equal(stat_defs[STAT_MAX_SOCKETS].metric, "loopless_map_capacity");
}

static void test_prometheus_text(void **state)
{
	uint64_t v[STAT_NR];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int i;

	(void)state;
	for (i = 0; i < STAT_NR; i++)
		v[i] = 1000 + (uint64_t)i;
	v[LL_CNT_REDIRECTED_BYTES] = UINT64_MAX;
	v[STAT_SOCKETS] = 4242;
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(stats_write_prometheus(f, v), 0);
	fclose(f);
	assert_non_null(strstr(buf, "# HELP loopless_redirected_bytes_total Bytes "));
	assert_non_null(strstr(buf, "\n# TYPE loopless_redirected_bytes_total counter\n"
				    "loopless_redirected_bytes_total 18446744073709551615\n"));
	/* A family: HELP and TYPE once, then its samples. */
	assert_non_null(strstr(buf, "# TYPE loopless_sockets_skipped_total counter\n"
				    "loopless_sockets_skipped_total{reason=\"remote\"} 1007\n"
				    "loopless_sockets_skipped_total{reason=\"port\"} 1008\n"));
	assert_null(strstr(strstr(buf, "# TYPE loopless_sockets_skipped_total") + 1,
			   "# TYPE loopless_sockets_skipped_total"));
	assert_non_null(strstr(buf, "# TYPE loopless_active_sockets gauge\n"
				    "loopless_active_sockets 4242\n"));
	assert_int_equal(buf[len - 1], '\n');
	free(buf);
}

/* A label value escapes backslash, quote and newline (text format 0.0.4);
 * one that does not fit is cut, still a closed string. */
static void test_prom_label(void **state)
{
	char out[64];

	(void)state;
	prom_label(out, sizeof(out), "version", "1.2-3");
	assert_string_equal(out, "version=\"1.2-3\"");
	prom_label(out, sizeof(out), "version", "a\"b\\c\nd");
	assert_string_equal(out, "version=\"a\\\"b\\\\c\\nd\"");
	prom_label(out, 14, "version", "0123456789");
	assert_string_equal(out, "version=\"01\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_entry_named),
		cmocka_unit_test(test_stable_keys),
		cmocka_unit_test(test_prometheus_text),
		cmocka_unit_test(test_prom_label),
	};

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
