/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The datapath's numbers, read and named in one place for every output:
 * `loopless stats` (text and --json) and looplessd's Prometheus endpoint.
 *
 *   stats_read()   the per-CPU counters summed, the sockhash fill and size
 *   stat_defs[]    for each: the stats key, the metric name (and label),
 *                  its type and help text
 */
#ifndef LOOPLESS_STATS_H
#define LOOPLESS_STATS_H

#include <stdint.h>
#include <stdio.h>
#include "loopless.h"

/* Counter ids (enum ll_counter) first, then values read from the sockhash. */
enum stat_id {
	STAT_SOCKETS = LL_CNT_MAX, /* entries in the sockhash now */
	STAT_MAX_SOCKETS, /* its capacity */
	STAT_NR,
};

enum stat_type {
	STAT_COUNTER,
	STAT_GAUGE,
};

struct stat_def {
	const char *key; /* `loopless stats` name and --json key: a stable interface */
	const char *metric; /* Prometheus metric family */
	const char *label; /* "name=\"value\"" within the family, or NULL */
	enum stat_type type;
	const char *help;
};

extern const struct stat_def stat_defs[STAT_NR];

/* Sum each counter over all possible CPUs. */
int counters_read(int map_fd, uint64_t out[LL_CNT_MAX]);
/* Counters from @counters_fd, fill and capacity of @sockhash_fd. */
int stats_read(int counters_fd, int sockhash_fd, uint64_t out[STAT_NR]);
/* Entries in a sockhash (a racing walk: never more than its capacity). */
int sockhash_count(int sockhash_fd, uint32_t *n);
/* Prometheus text exposition (HELP, TYPE, samples) of @v. */
int stats_write_prometheus(FILE *f, const uint64_t v[STAT_NR]);
/* The same for any table of @n entries and their values: looplessd's own
 * gauges go through it too, so every line of /metrics has one writer. */
int prom_write(FILE *f, const struct stat_def *defs, int n, const uint64_t *v);
/* name="value" into @out, the value escaped as the text format wants. */
void prom_label(char *out, size_t len, const char *name, const char *value);

#endif
