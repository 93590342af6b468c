/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loopless-bench: one measurement of one local transport, printed as one JSON line.
 *
 * The driver runs both ends of the conversation in one process (a client and a server
 * thread), so "CPU time" (getrusage RUSAGE_SELF) covers both ends together. It knows nothing
 * about loopless: bench/run.sh starts it inside or outside the cgroup looplessd is attached
 * to, which is the only difference between "lo" and "redirect-lo". Transports:
 *
 *	tcp   a TCP listener on --addr (127.0.0.1, ::1, an address of the bench's own netns)
 *	unix  an AF_UNIX stream listener in the abstract namespace (per netns)
 *	pipe  two pipes (rr) or one (stream): the floor for a wake-up round trip
 *
 * Workloads:
 *	rr      ping-pong of --size byte messages for --duration seconds; one clock_gettime()
 *	        per round trip, every sample kept, percentiles by sorting
 *	stream  one-way bulk transfer, --size bytes per write(), the reader reads --read-size;
 *	        throughput counted at the reader, up to EOF (bytes still queued when the writer
 *	        stops are waited for, so a datapath without backpressure is not flattered)
 *	crr     connect, one --size request and response, close; the server closes first and
 *	        keeps the TIME_WAIT; --listeners listening sockets spread the 4-tuples
 *	scale   --pairs connected pairs at once, spread over listeners (8192 pairs each: 127/8
 *	        addresses 127.0.0.1, .2, ... for IPv4 loopback, otherwise ports), a data check on
 *	        --sample random pairs, then everything closed; --sync-dir lets the runner look at
 *	        the map between the phases
 *
 * The lo packet counters (/sys/class/net/lo/statistics, the netns the driver runs in) are read
 * before the first socket is made and after the last is closed: the path proof. --dev reads
 * another device's too (the veth of a remote peer).
 *
 * --server-netns puts the server end in another network namespace (bench/run.sh's remote
 * modes: a peer over a veth, which loopless must leave alone): the listening sockets are made
 * there, everything else stays in the driver's own, and both ends remain threads of this one
 * process, so CPU time, CPU placement and the cgroup stay those of every other mode.
 *
 * --connect makes the client dial another address than the listener's (rr, stream): a service
 * address that NAT and proxies lead to the listener (bench/run.sh's mesh workload: app ->
 * sidecar -> node -> sidecar -> app, with the listener in pod B via --server-netns). The
 * server end accepts whichever connection arrives first: the bench's netns hold nothing else.
 *
 * Only the address given with --addr (and, for scale on 127.0.0.0/8, its neighbours in
 * 127.0.0.0/8) and the one given with --connect are ever used.
 *
 * The parts: main.c (options, --help), net.c (sockets, the server's netns), measure.c (the
 * readings: packet counters, CPU, memory, latency samples; the output line), timed.c (rr,
 * stream and crr: the timed runs, the watchdog), scale.c (many pairs at once, over worker
 * processes).
 */
#ifndef LOOPLESS_BENCH_H
#define LOOPLESS_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MAX_SIZE (64ULL << 20)
#define MAX_PAIRS 4000000UL
#define MAX_SAMPLES (64UL << 20) /* rr/crr latency samples kept (256 MiB) */
#define PAIRS_PER_LISTENER 8192
#define LISTENERS_FOR(pairs) (((pairs) + PAIRS_PER_LISTENER - 1) / PAIRS_PER_LISTENER)
#define MAX_CRR_LISTENERS 64
#define LISTEN_BACKLOG 4096

enum workload { WL_RR, WL_STREAM, WL_CRR, WL_SCALE, WL_NR };
enum transport { TR_TCP, TR_UNIX, TR_PIPE, TR_NR };

extern const char *const wl_names[WL_NR];
extern const char *const tr_names[TR_NR];

struct opts {
	enum workload wl;
	enum transport tr;
	const char *addr;
	struct sockaddr_storage sa; /* --addr with port 0 */
	socklen_t salen;
	unsigned int port;
	uint64_t size;
	uint64_t read_size;
	double duration;
	double warmup; /* < 0: default */
	int cpu_client;
	int cpu_server;
	unsigned long pairs;
	unsigned long sample;
	unsigned int listeners;
	const char *sync_dir;
	const char *mode;
	unsigned int rep;
	double timeout;
	bool nodelay_stream;
	const char *server_netns; /* netns file the listeners are made in, or NULL */
	const char *dev; /* device whose packet counters are reported besides lo, or NULL */
	const char *connect; /* --connect ADDR:PORT as given, or NULL: dial the listener */
	struct sockaddr_storage csa; /* --connect */
	socklen_t csalen;
};

extern struct opts o;

/* ---- sockets (net.c) ---- */

struct listener {
	int fd;
	struct sockaddr_storage sa; /* bound address, real port */
	socklen_t salen;
};

/* Client and server ends of one connection (or pipes): fds the threads use. */
struct ends {
	int c_rd, c_wr; /* client reads c_rd, writes c_wr */
	int s_rd, s_wr;
};

/* --server-netns: the driver's own netns and the server's, or -1. */
extern int netns_client, netns_server;

const char *sa_str(const struct sockaddr_storage *ss, char *buf, size_t len);
void listener_open(struct listener *l, const struct sockaddr_storage *sa, socklen_t salen,
		   bool nonblock);
void set_nodelay(int fd);
void first_look(int fd);
int connect_addr(const struct sockaddr_storage *sa, socklen_t salen);
int connect_to(const struct listener *l);
void make_ends(struct ends *e, bool nodelay);

/* read_full() of exactly @len bytes: 0, 1 at EOF before them, or -errno. */
int read_exact(int fd, void *buf, size_t len);

/* ---- readings and the output line (measure.c) ---- */

struct lo_stats {
	uint64_t rx, tx;
	uint64_t dev_rx, dev_tx; /* --dev */
};

/* Process CPU (all threads: both ends) and host-wide busy time (includes softirq work that
 * ran outside this process, and every other tenant of the machine). */
struct cpu_mark {
	double proc_s;
	double host_busy_s;
};

struct samples {
	uint32_t *v; /* nanoseconds, saturated at UINT32_MAX (4.3 s) */
	size_t n, cap;
};

extern char dev_rx_path[64], dev_tx_path[64];
/* The counters before the first socket was made. */
extern struct lo_stats lo0;

void pin_cpu(int cpu);
struct lo_stats lo_read(void);
struct cpu_mark cpu_read(void);
uint64_t mem_available_kb(void);
void *xalloc(size_t len);
void samples_add(struct samples *s, uint64_t ns);
int cmp_u32(const void *a, const void *b);
/* Nearest-rank percentile of sorted samples, in microseconds. */
double pct_us(const struct samples *s, double p);
double mean_us(const struct samples *s);
/* The JSON line: the common keys, then @extra_fmt's. */
void print_common(const char *extra_fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- runs (timed.c, scale.c) ---- */

/* What the run is doing, for the watchdog. */
extern const char *phase;

void on_alarm(int sig);
/* Fails the run unless it is over @seconds + --timeout from now. */
void arm_watchdog(double seconds);
void start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
int run_rr(void);
int run_stream(void);
int run_crr(void);
int run_scale(void);

#endif
