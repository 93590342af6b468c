// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* rr, stream and crr: a serving and a driving thread, a warm-up, a measured time. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "bench.h"

const char *phase = "setup";

void on_alarm(int sig)
{
	char msg[256];
	int n;

	(void)sig;
	n = snprintf(msg, sizeof(msg),
		     "%s: %s: no result after the planned time + %.0f s, stuck in %s "
		     "(a read or write that never completes?)\n",
		     prog_name, wl_names[o.wl], o.timeout, phase);
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(1);
}

void arm_watchdog(double seconds)
{
	alarm((unsigned int)ceil(seconds + o.timeout));
}

static uint64_t t_start, t_warm, t_end; /* start, end of warm-up, end of the measured time */
static pthread_barrier_t go;
static struct ends ends;

/* The client's end of writing: the server (or reader) reads to EOF. */
static void client_eof(void)
{
	if (o.tr == TR_PIPE)
		close(ends.c_wr);
	else
		shutdown(ends.c_wr, SHUT_WR);
}

void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(t, NULL, fn, arg);

	if (err)
		fail("pthread_create: %s", strerror(err));
}

/* ---- rr --------------------------------------------------------------------------------- */

struct rr_client {
	struct samples lat;
	uint64_t t_first, t_last; /* first and last measured round trip */
};

static void *rr_server(void *arg)
{
	char *buf = xalloc(o.size);
	int r;

	(void)arg;
	pin_cpu(o.cpu_server);
	pthread_barrier_wait(&go);
	for (;;) {
		r = read_exact(ends.s_rd, buf, o.size);
		if (r == 1)
			break;
		if (r < 0)
			fail("server read: %s", strerror(-r));
		r = write_full(ends.s_wr, buf, o.size, NULL);
		if (r)
			fail("server write: %s", strerror(-r));
	}
	free(buf);
	return NULL;
}

static void *rr_client(void *arg)
{
	struct rr_client *c = arg;
	char *buf = xalloc(o.size);
	uint64_t t0, t1;
	int r;

	pin_cpu(o.cpu_client);
	memset(buf, 0xa5, o.size);
	pthread_barrier_wait(&go);
	t0 = now_ns();
	while (t0 < t_end) {
		r = write_full(ends.c_wr, buf, o.size, NULL);
		if (r)
			fail("client write: %s", strerror(-r));
		r = read_exact(ends.c_rd, buf, o.size);
		if (r)
			fail("client read: %s", r < 0 ? strerror(-r) : "early EOF");
		t1 = now_ns();
		if (t0 >= t_warm) {
			if (!c->t_first)
				c->t_first = t0;
			c->t_last = t1;
			samples_add(&c->lat, t1 - t0);
		}
		t0 = t1;
	}
	/* EOF tells the server to stop. */
	client_eof();
	free(buf);
	return NULL;
}

/* ---- stream ----------------------------------------------------------------------------- */

struct stream_state {
	uint64_t written;
	_Atomic uint64_t received; /* updated by the reader, read once by the writer */
	uint64_t lag; /* written - received when the writer stopped */
	uint64_t t_wstop;
	uint64_t rx_at_warm, t_rx_warm, t_eof;
};

static void *stream_reader(void *arg)
{
	struct stream_state *st = arg;
	char *buf = xalloc(o.read_size);
	uint64_t got = 0, t;
	bool warm = false;
	ssize_t n;

	pin_cpu(o.cpu_server);
	pthread_barrier_wait(&go);
	for (;;) {
		n = read_some(ends.s_rd, buf, o.read_size);
		if (n < 0)
			fail("reader: %s", strerror(-n));
		if (n == 0)
			break;
		got += (uint64_t)n;
		atomic_store_explicit(&st->received, got, memory_order_relaxed);
		if (!warm) {
			t = now_ns();
			if (t >= t_warm) {
				warm = true;
				st->rx_at_warm = got;
				st->t_rx_warm = t;
			}
		}
	}
	st->t_eof = now_ns();
	if (!warm) {
		st->rx_at_warm = 0;
		st->t_rx_warm = t_start;
	}
	free(buf);
	return NULL;
}

static void *stream_writer(void *arg)
{
	struct stream_state *st = arg;
	char *buf = xalloc(o.size);
	int err;

	pin_cpu(o.cpu_client);
	memset(buf, 0x5a, o.size);
	pthread_barrier_wait(&go);
	while (now_ns() < t_end) {
		err = write_full(ends.c_wr, buf, o.size, NULL);
		if (err)
			fail("writer: %s", strerror(-err));
		st->written += o.size;
	}
	st->t_wstop = now_ns();
	st->lag = st->written - atomic_load_explicit(&st->received, memory_order_relaxed);
	client_eof();
	free(buf);
	return NULL;
}

/* ---- crr -------------------------------------------------------------------------------- */

static struct listener crr_l[MAX_CRR_LISTENERS];
static _Atomic bool crr_stop;

static void *crr_server(void *arg)
{
	struct pollfd pfd[MAX_CRR_LISTENERS];
	char *buf = xalloc(o.size);
	unsigned int i;
	int fd, r;

	(void)arg;
	pin_cpu(o.cpu_server);
	for (i = 0; i < o.listeners; i++)
		pfd[i] = (struct pollfd){ .fd = crr_l[i].fd, .events = POLLIN };
	pthread_barrier_wait(&go);
	while (!atomic_load(&crr_stop)) {
		if (poll(pfd, o.listeners, 20) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		for (i = 0; i < o.listeners; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			while ((fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				first_look(fd);
				set_nodelay(fd);
				r = read_exact(fd, buf, o.size);
				if (r)
					fail("server read: %s", r < 0 ? strerror(-r) : "early EOF");
				r = write_full(fd, buf, o.size, NULL);
				if (r)
					fail("server write: %s", strerror(-r));
				/* Server closes first: the TIME_WAIT stays here, keyed by the
				 * listener's port, so client ports are not held for 60 s. */
				close(fd);
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fail("accept: %s", strerror(errno));
		}
	}
	free(buf);
	return NULL;
}

struct crr_client {
	struct samples lat;
	uint64_t conns, t_first, t_last;
};

static void *crr_client(void *arg)
{
	struct crr_client *c = arg;
	char *buf = xalloc(o.size);
	char where[160];
	unsigned int k = 0;
	uint64_t t0, t1;
	int fd, r;

	pin_cpu(o.cpu_client);
	memset(buf, 0x3c, o.size);
	pthread_barrier_wait(&go);
	t0 = now_ns();
	while (t0 < t_end) {
		const struct listener *l = &crr_l[k++ % o.listeners];

		fd = connect_to(l);
		if (fd < 0)
			fail("connect %s after %" PRIu64 " connections: %s",
			     sa_str(&l->sa, where, sizeof(where)), c->conns, strerror(-fd));
		set_nodelay(fd);
		r = write_full(fd, buf, o.size, NULL);
		if (r)
			fail("client write: %s", strerror(-r));
		r = read_exact(fd, buf, o.size);
		if (r)
			fail("client read: %s", r < 0 ? strerror(-r) : "early EOF");
		/* Wait for the server's FIN, then close: CLOSE_WAIT -> LAST_ACK -> gone. */
		r = (int)read_some(fd, buf, 1);
		if (r != 0)
			fail("client: expected EOF after the response, got %s",
			     r < 0 ? strerror(-r) : "data");
		close(fd);
		t1 = now_ns();
		if (t0 >= t_warm) {
			if (!c->t_first)
				c->t_first = t0;
			c->t_last = t1;
			c->conns++;
			samples_add(&c->lat, t1 - t0);
		}
		t0 = t1;
	}
	atomic_store(&crr_stop, true);
	free(buf);
	return NULL;
}

/* ---- rr, stream, crr: the timed runs ---------------------------------------------------- */

static void plan_times(void)
{
	double warm = o.warmup >= 0 ? o.warmup : fmin(o.duration * 0.1, 0.5);

	/* Threads are started first; the clock starts at the barrier, set just before it. */
	t_start = now_ns() + 5000000ULL; /* threads get 5 ms to reach the barrier */
	t_warm = t_start + (uint64_t)(warm * 1e9);
	t_end = t_warm + (uint64_t)(o.duration * 1e9);
	arm_watchdog((t_end - now_ns()) / 1e9);
}

/*
 * One measured phase: start @first (the serving end) and @second, release
 * both at t_start, take the CPU mark at t_warm, wait for @second then
 * @first, take the closing mark.
 */
static void run_phase(const char *what, void *(*first)(void *), void *first_arg,
		      void *(*second)(void *), void *second_arg, struct cpu_mark *m0,
		      struct cpu_mark *m1)
{
	pthread_t t1, t2;

	pthread_barrier_init(&go, NULL, 3);
	plan_times();
	phase = what;
	start_thread(&t1, first, first_arg);
	start_thread(&t2, second, second_arg);
	sleep_until_ns(t_start);
	pthread_barrier_wait(&go);
	sleep_until_ns(t_warm);
	*m0 = cpu_read();
	pthread_join(t2, NULL);
	pthread_join(t1, NULL);
	*m1 = cpu_read();
}

int run_rr(void)
{
	struct rr_client c = { 0 };
	struct cpu_mark m0, m1;
	double secs;

	lo0 = lo_read();
	make_ends(&ends, true);
	run_phase("rr round trips", rr_server, NULL, rr_client, &c, &m0, &m1);
	if (!c.lat.n)
		fail("no round trip completed in the measured time (--duration too short?)");
	close(ends.c_rd);
	close(ends.s_rd);
	if (o.tr == TR_PIPE)
		close(ends.s_wr);
	secs = (c.t_last - c.t_first) / 1e9;
	qsort(c.lat.v, c.lat.n, sizeof(*c.lat.v), cmp_u32);
	print_common("\"duration_s\":%.4f,\"samples\":%zu,\"p50_us\":%.3f,\"p90_us\":%.3f,"
		     "\"p99_us\":%.3f,\"p999_us\":%.3f,\"mean_us\":%.3f,\"max_us\":%.3f,"
		     "\"tps\":%.1f,\"cpu_s\":%.4f,\"host_busy_s\":%.3f,\"cpu_us_per_rt\":%.3f",
		     secs, c.lat.n, pct_us(&c.lat, 0.5), pct_us(&c.lat, 0.9), pct_us(&c.lat, 0.99),
		     pct_us(&c.lat, 0.999), mean_us(&c.lat), pct_us(&c.lat, 1.0),
		     secs > 0 ? c.lat.n / secs : 0, m1.proc_s - m0.proc_s,
		     m1.host_busy_s - m0.host_busy_s, (m1.proc_s - m0.proc_s) * 1e6 / c.lat.n);
	free(c.lat.v);
	return 0;
}

int run_stream(void)
{
	struct stream_state st = { 0 };
	struct cpu_mark m0, m1;
	double secs, gb, got;

	lo0 = lo_read();
	make_ends(&ends, o.nodelay_stream);
	run_phase("stream transfer", stream_reader, &st, stream_writer, &st, &m0, &m1);
	got = (double)(atomic_load(&st.received) - st.rx_at_warm);
	if (atomic_load(&st.received) != st.written)
		fail("lost bytes: wrote %" PRIu64 ", read %" PRIu64 " before EOF", st.written,
		     (uint64_t)atomic_load(&st.received));
	close(ends.c_rd);
	close(ends.s_rd);
	if (o.tr == TR_PIPE)
		close(ends.s_wr);
	secs = (st.t_eof - st.t_rx_warm) / 1e9;
	gb = got / 1e9;
	print_common("\"duration_s\":%.4f,\"bytes\":%.0f,\"gbps\":%.4f,\"mbytes_s\":%.2f,"
		     "\"cpu_s\":%.4f,\"host_busy_s\":%.3f,\"cpu_s_per_gb\":%.4f,"
		     "\"host_s_per_gb\":%.4f,\"lag_bytes\":%" PRIu64 ",\"drain_ms\":%.3f",
		     secs, got, secs > 0 ? got * 8 / secs / 1e9 : 0,
		     secs > 0 ? got / secs / 1e6 : 0, m1.proc_s - m0.proc_s,
		     m1.host_busy_s - m0.host_busy_s, gb > 0 ? (m1.proc_s - m0.proc_s) / gb : 0,
		     gb > 0 ? (m1.host_busy_s - m0.host_busy_s) / gb : 0, st.lag,
		     (st.t_eof - st.t_wstop) / 1e6);
	return 0;
}

int run_crr(void)
{
	struct crr_client c = { 0 };
	struct cpu_mark m0, m1;
	unsigned int i;
	double secs;

	if (o.tr == TR_PIPE)
		fail("crr needs a connection: use --transport tcp or unix");
	lo0 = lo_read();
	for (i = 0; i < o.listeners; i++)
		listener_open(&crr_l[i], &o.sa, o.salen, true);
	run_phase("crr connections", crr_server, NULL, crr_client, &c, &m0, &m1);
	for (i = 0; i < o.listeners; i++)
		close(crr_l[i].fd);
	if (!c.conns)
		fail("no connection completed in the measured time");
	secs = (c.t_last - c.t_first) / 1e9;
	qsort(c.lat.v, c.lat.n, sizeof(*c.lat.v), cmp_u32);
	print_common("\"duration_s\":%.4f,\"conns\":%" PRIu64 ",\"cps\":%.1f,\"p50_us\":%.3f,"
		     "\"p99_us\":%.3f,\"cpu_s\":%.4f,\"host_busy_s\":%.3f,"
		     "\"cpu_us_per_conn\":%.3f,\"listeners\":%u",
		     secs, c.conns, secs > 0 ? c.conns / secs : 0, pct_us(&c.lat, 0.5),
		     pct_us(&c.lat, 0.99), m1.proc_s - m0.proc_s, m1.host_busy_s - m0.host_busy_s,
		     (m1.proc_s - m0.proc_s) * 1e6 / c.conns, o.listeners);
	free(c.lat.v);
	return 0;
}
