// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The readings: packet counters, CPU and memory, latency samples; and the one output line. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "bench.h"

#define LO_STATS "/sys/class/net/lo/statistics"

void pin_cpu(int cpu)
{
	cpu_set_t set;
	int err;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err)
		fail("cannot pin a thread to CPU %d: %s", cpu, strerror(err));
}

static uint64_t read_u64_file(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

char dev_rx_path[64], dev_tx_path[64];
struct lo_stats lo0;

struct lo_stats lo_read(void)
{
	struct lo_stats s = { 0, 0, 0, 0 };

	if (o.tr == TR_TCP) {
		s.rx = read_u64_file(LO_STATS "/rx_packets");
		s.tx = read_u64_file(LO_STATS "/tx_packets");
	}
	if (o.dev) {
		s.dev_rx = read_u64_file(dev_rx_path);
		s.dev_tx = read_u64_file(dev_tx_path);
	}
	return s;
}

struct cpu_mark cpu_read(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq;
	struct cpu_mark m = { 0, 0 };
	struct rusage ru;
	FILE *f;

	if (!getrusage(RUSAGE_SELF, &ru))
		m.proc_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
			   ru.ru_stime.tv_usec / 1e6;
	f = fopen("/proc/stat", "re");
	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
			   &iowait, &irq, &softirq) == 7)
			m.host_busy_s = (double)(user + nice + sys + irq + softirq) /
					(double)sysconf(_SC_CLK_TCK);
		fclose(f);
	}
	return m;
}

uint64_t mem_available_kb(void)
{
	unsigned long long v = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

void *xalloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 1))
		fail("out of memory (%zu bytes)", len);
	memset(p, 0, len);
	return p;
}

void samples_add(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		uint32_t *v;

		if (cap > MAX_SAMPLES)
			return; /* enough for any percentile; keep counting elsewhere */
		v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			fail("out of memory for %zu samples", cap);
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

double pct_us(const struct samples *s, double p)
{
	size_t i;

	if (!s->n)
		return 0;
	i = (size_t)ceil(p * (double)s->n);
	i = i ? i - 1 : 0;
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i] / 1e3;
}

double mean_us(const struct samples *s)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		sum += s->v[i];
	return s->n ? sum / (double)s->n / 1e3 : 0;
}

void print_common(const char *extra_fmt, ...)
{
	struct lo_stats lo1 = lo_read();
	char extra[2048], dev[128] = "", conn[96] = "";
	va_list ap;

	va_start(ap, extra_fmt);
	vsnprintf(extra, sizeof(extra), extra_fmt, ap);
	va_end(ap);
	if (o.dev)
		snprintf(dev, sizeof(dev),
			 "\"dev\":\"%s\",\"dev_rx\":%" PRIu64 ",\"dev_tx\":%" PRIu64 ",", o.dev,
			 lo1.dev_rx - lo0.dev_rx, lo1.dev_tx - lo0.dev_tx);
	/* parse_addr_port() took it: no character that needs escaping in JSON. */
	if (o.connect)
		snprintf(conn, sizeof(conn), "\"connect\":\"%s\",", o.connect);
	printf("{\"mode\":\"%s\",\"workload\":\"%s\",\"transport\":\"%s\",\"addr\":\"%s\","
	       "\"size\":%" PRIu64 ",\"rep\":%u,\"lo_rx\":%" PRIu64 ",\"lo_tx\":%" PRIu64
	       ",%s%s\"eagain\":%" PRIu64 ",%s}\n",
	       o.mode, wl_names[o.wl], tr_names[o.tr], o.tr == TR_TCP ? o.addr : "", o.size, o.rep,
	       lo1.rx - lo0.rx, lo1.tx - lo0.tx, dev, conn,
	       atomic_load_explicit(&io_eagain, memory_order_relaxed), extra);
	fflush(stdout);
}
