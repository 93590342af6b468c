// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
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
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

#define PROG "loopless-bench"

#define NSEC 1000000000ULL
#define MAX_SIZE (64ULL << 20)
#define MAX_PAIRS 4000000UL
#define MAX_SAMPLES (64UL << 20) /* rr/crr latency samples kept (256 MiB) */
#define PAIRS_PER_LISTENER 8192
#define LISTENERS_FOR(pairs) (((pairs) + PAIRS_PER_LISTENER - 1) / PAIRS_PER_LISTENER)
#define MAX_CRR_LISTENERS 64
#define LISTEN_BACKLOG 4096
#define SAMPLE_BYTES 1024
#define SYNC_POLL_NS 10000000ULL
#define LO_STATS "/sys/class/net/lo/statistics"
#define SYS_NET "/sys/class/net/"

enum workload { WL_RR, WL_STREAM, WL_CRR, WL_SCALE, WL_NR };
enum transport { TR_TCP, TR_UNIX, TR_PIPE, TR_NR };

static const char *const wl_names[WL_NR] = { [WL_RR] = "rr",
					     [WL_STREAM] = "stream",
					     [WL_CRR] = "crr",
					     [WL_SCALE] = "scale" };
static const char
	*const tr_names[TR_NR] = { [TR_TCP] = "tcp", [TR_UNIX] = "unix", [TR_PIPE] = "pipe" };

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

static struct opts o = {
	.tr = TR_TCP,
	.addr = "127.0.0.1",
	.size = 64,
	.read_size = 256 << 10,
	.duration = 1.0,
	.warmup = -1,
	.cpu_client = -1,
	.cpu_server = -1,
	.pairs = 1000,
	.sample = 100,
	.listeners = 8,
	.timeout = 30,
};

static const char help_text[] =
	"Usage: loopless-bench WORKLOAD [OPTION]...\n"
	"One measurement of one local transport, both ends in this process (client and server\n"
	"thread), printed as one JSON object on stdout. bench/run.sh runs it for every mode,\n"
	"size and repeat, inside or outside the loopless cgroup, and aggregates.\n"
	"\n"
	"Workloads:\n"
	"  rr       ping-pong of --size byte messages for --duration s: latency p50/p90/p99/\n"
	"           p99.9 per round trip (us) and transactions/s. TCP_NODELAY on TCP.\n"
	"  stream   one-way transfer, --size bytes per write(), reader buffer --read-size:\n"
	"           Gbit/s counted at the reader up to EOF, CPU seconds per GB (both ends).\n"
	"  crr      connect, --size request, --size response, close; connections/s. The server\n"
	"           closes first, so it (not the client) holds the TIME_WAIT.\n"
	"  scale    --pairs connected pairs at once: insert rate, memory, a data check on\n"
	"           --sample random pairs, close rate (tcp only).\n"
	"\n"
	"Options:\n"
	"  -t, --transport T     tcp (default), unix (AF_UNIX stream, abstract name) or pipe\n"
	"  -a, --addr ADDR       tcp: IP literal to listen on and connect to (default 127.0.0.1)\n"
	"  -p, --port P          tcp: first listening port (default 0: the kernel picks)\n"
	"  -s, --size N          rr/crr: message bytes; stream: bytes per write (default 64).\n"
	"                        Suffixes K, M are 1024-based (16K, 1M); at most 64M\n"
	"  -d, --duration SEC    measured time (default 1, fractions allowed)\n"
	"  -w, --warmup SEC      time run but not measured before it (default 10% of\n"
	"                        --duration, at most 0.5)\n"
	"  -c, --cpus A,B        pin the client thread to CPU A and the server thread to B\n"
	"  -r, --read-size N     stream: reader buffer (default 256K)\n"
	"  -n, --pairs N         scale: connected pairs (default 1000)\n"
	"      --sample N        scale: random pairs that exchange 1 KiB each way (default 100)\n"
	"      --sync-dir DIR    scale: create DIR/connected and wait for DIR/go-sample, create\n"
	"                        DIR/sampled and wait for DIR/go-close (the runner reads the\n"
	"                        loopless map and counters in between)\n"
	"  -l, --listeners N     crr: listening sockets used in turn (default 8, at most 64)\n"
	"      --nodelay         stream: set TCP_NODELAY too (default: Nagle on, as most bulk\n"
	"                        senders leave it)\n"
	"      --server-netns PATH\n"
	"                        tcp (rr, stream, crr): make the listening sockets, so the\n"
	"                        server ends, in the network namespace PATH (/run/netns/NAME);\n"
	"                        the client ends stay in this process's own, --addr must be\n"
	"                        reachable from it (a veth to PATH's netns)\n"
	"      --dev NAME        also report the packet counters of device NAME (in this\n"
	"                        netns) as dev_rx, dev_tx: the path proof of --server-netns\n"
	"      --connect ADDR:PORT\n"
	"                        rr, stream: the client connects to ADDR:PORT (IPv6 in\n"
	"                        brackets) instead of the listener's address, and a\n"
	"                        connection that NAT or a proxy brings to the listener (on\n"
	"                        --addr, a fixed --port) is the server end: a service address\n"
	"                        behind mesh sidecars (bench/run.sh's mesh workload)\n"
	"  -m, --mode NAME       label printed as \"mode\" (default: the transport)\n"
	"      --rep N           repeat index printed as \"rep\"\n"
	"      --timeout SEC     give up when a run takes this much longer than planned, or a\n"
	"                        scale phase this long (default 30): exit 1 naming the phase\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n"
	"\n"
	"Output: one JSON object; common keys mode, workload, transport, addr, size, rep,\n"
	"duration_s, cpu_s (user+system of the process), host_busy_s (/proc/stat, all CPUs),\n"
	"lo_rx, lo_tx (packet deltas of lo in this netns), eagain (spurious EAGAIN retries);\n"
	"with --dev also dev, dev_rx, dev_tx; with --connect also connect.\n"
	"  rr:     samples, p50_us, p90_us, p99_us, p999_us, mean_us, max_us, tps, cpu_us_per_rt\n"
	"  stream: bytes, gbps, mbytes_s, cpu_s_per_gb, host_s_per_gb, lag_bytes (queued when\n"
	"          the writer stopped), drain_ms (writer stop to reader EOF)\n"
	"  crr:    conns, cps, p50_us, p99_us (per connection), cpu_us_per_conn\n"
	"  scale:  pairs, procs (worker processes), listeners, connect_s, insert_rate, mem_kb,\n"
	"          kb_per_pair, sample_pairs, sample_bytes, sample_lo_rx, sample_lo_tx, close_s,\n"
	"          close_rate, nofile (descriptors per process)\n"
	"\n"
	"Exit status: 0 success, 1 runtime error (one line on stderr), 2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"  loopless-bench rr --addr 127.0.0.1 --size 64 --duration 2\n"
	"  loopless-bench stream --transport unix --size 64K --cpus 0,1\n"
	"  loopless-bench crr --addr ::1 --duration 1 --mode lo6\n"
	"  loopless-bench scale --addr 127.0.0.1 --pairs 100000 --sync-dir /tmp/sync\n"
	"  ip netns exec NS loopless-bench rr --addr 203.0.113.1 --mode localip\n"
	"  ip netns exec NS loopless-bench crr --addr 198.18.10.2 --server-netns /run/netns/NS2 \\\n"
	"      --dev veth0 --mode remote\n"
	"  ip netns exec POD_A loopless-bench rr --addr 198.18.2.7 --port 8080 \\\n"
	"      --server-netns /run/netns/POD_B --connect 198.19.0.10:80 --dev eth0 --mode mesh\n";

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = t / NSEC, .tv_nsec = t % NSEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One write: lines from two failing threads do not interleave; _exit ends both. */
	fprintf(stderr, PROG ": %s: %s\n", wl_names[o.wl], msg);
	_exit(1);
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s (see '" PROG " --help')\n", msg);
	return 2;
}

static const char *phase = "setup";

static void on_alarm(int sig)
{
	char msg[256];
	int n;

	(void)sig;
	n = snprintf(msg, sizeof(msg),
		     PROG ": %s: no result after the planned time + %.0f s, stuck in %s "
			  "(a read or write that never completes?)\n",
		     wl_names[o.wl], o.timeout, phase);
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(1);
}

static void arm_watchdog(double seconds)
{
	alarm((unsigned int)ceil(seconds + o.timeout));
}

static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10, end++;
		break;
	case 'm':
	case 'M':
		v <<= 20, end++;
		break;
	case 'g':
	case 'G':
		v <<= 30, end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (end[0] == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(*out) || *out < 0)
		return -EINVAL;
	return 0;
}

static int parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (errno || end == s || *end) ? -EINVAL : 0;
}

static void pin_cpu(int cpu)
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

struct lo_stats {
	uint64_t rx, tx;
	uint64_t dev_rx, dev_tx; /* --dev */
};

static char dev_rx_path[64], dev_tx_path[64];

static struct lo_stats lo_read(void)
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

/* Process CPU (all threads: both ends) and host-wide busy time (includes softirq work that
 * ran outside this process, and every other tenant of the machine). */
struct cpu_mark {
	double proc_s;
	double host_busy_s;
};

static struct cpu_mark cpu_read(void)
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

static uint64_t mem_available_kb(void)
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

static void *xalloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 1))
		fail("out of memory (%zu bytes)", len);
	memset(p, 0, len);
	return p;
}

/* ---- blocking I/O with the sockmap EAGAIN quirk ----------------------------------------- */

/*
 * A blocking recv() on a socket in a sockmap can return EAGAIN with no data:
 * tcp_bpf_recvmsg() (net/ipv4/tcp_bpf.c) waits for one wake-up only, and a wake-up for another
 * reason ends the wait empty-handed. Retry after poll() and count it: a non-zero "eagain" in
 * the output is a datapath behaviour worth reporting, not a bench error.
 */
static _Atomic uint64_t eagain_seen;

/*
 * Every mode reads the way event-driven programs (the ones worth
 * accelerating) do: recv(MSG_DONTWAIT), poll() for readiness when nothing is
 * there. loopless redirects only into such readers (a blocking one is kept
 * on plain TCP, see ll_recv). Pipes are read with read().
 */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	bool polled = false;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		/* Readable, yet nothing to read: worth reporting. */
		if (polled)
			atomic_fetch_add_explicit(&eagain_seen, 1, memory_order_relaxed);
		poll(&p, 1, 100);
		polled = true;
	}
}

/* 0 on success, -1 with errno, or 1 on EOF before len bytes. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = read_some(fd, p, len);
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	const char *q = buf;
	ssize_t n;

	while (len) {
		n = write(fd, q, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			atomic_fetch_add_explicit(&eagain_seen, 1, memory_order_relaxed);
			poll(&p, 1, 100);
			continue;
		}
		q += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- sockets ---------------------------------------------------------------------------- */

static int parse_addr(const char *s, unsigned int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return 0;
	}
	return -EINVAL;
}

/* "1.2.3.4:80" or "[::1]:80", port 1-65535. */
static int parse_addr_port(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	size_t n;

	if (!colon || colon == s || parse_ulong(colon + 1, &port) || !port || port > 65535)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return -EINVAL;
		s++, n -= 2;
	}
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	/* Brackets for IPv6 only, and IPv6 only in brackets: "::1:80" is ambiguous. */
	if ((colon[-1] == ']') != !!strchr(host, ':'))
		return -EINVAL;
	return parse_addr(host, (unsigned int)port, ss, len);
}

static unsigned int sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static const char *sa_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_UNIX) {
		snprintf(buf, len, "@%s", ((const struct sockaddr_un *)ss)->sun_path + 1);
		return buf;
	}
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, sa_port(ss));
	return buf;
}

struct listener {
	int fd;
	struct sockaddr_storage sa; /* bound address, real port */
	socklen_t salen;
};

static unsigned int unix_seq;

/*
 * --server-netns: a socket belongs for life to the netns of the thread that made it
 * (__sys_socket() passes current->nsproxy->net_ns down to sk_alloc()), and an accepted socket
 * to its listener's (sk_clone_lock() copies sk_net). So switching this thread's netns around socket() alone
 * puts every server end there; setns(CLONE_NEWNET) changes only the calling thread, and the
 * lo and --dev counters (read through /sys, whose view is fixed by the mount) are untouched.
 */
static int netns_client = -1, netns_server = -1;

static void netns_enter(int fd, const char *what)
{
	if (fd >= 0 && setns(fd, CLONE_NEWNET))
		fail("setns to %s: %s", what, strerror(errno));
}

/* A listener on @sa (TCP, port 0 allowed) or a fresh abstract AF_UNIX name; with
 * --server-netns in that netns. */
static void listener_open(struct listener *l, const struct sockaddr_storage *sa, socklen_t salen,
			  bool nonblock)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&l->sa;
	char where[160];
	int one = 1, fd, err;

	if (o.tr == TR_UNIX) {
		memset(&l->sa, 0, sizeof(l->sa));
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1, "loopless-bench-%d-%u",
			 (int)getpid(), unix_seq++);
		l->salen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(un->sun_path + 1);
	} else {
		memcpy(&l->sa, sa, salen);
		l->salen = salen;
	}
	netns_enter(netns_server, o.server_netns);
	fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
		    0);
	err = errno;
	netns_enter(netns_server >= 0 ? netns_client : -1, "the driver's own netns");
	if (fd < 0)
		fail("socket: %s", strerror(err));
	if (o.tr == TR_TCP)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&l->sa, l->salen))
		fail("bind %s: %s%s", sa_str(&l->sa, where, sizeof(where)), strerror(errno),
		     errno == EADDRNOTAVAIL ? " (is the address configured in this netns?)" : "");
	if (listen(fd, LISTEN_BACKLOG))
		fail("listen: %s", strerror(errno));
	if (o.tr == TR_TCP) {
		l->salen = sizeof(l->sa);
		getsockname(fd, (struct sockaddr *)&l->sa, &l->salen);
	}
	l->fd = fd;
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (o.tr == TR_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Every socket makes one read attempt as soon as it is set up, as Go's
 * netpoller does (a Read tries recvmsg before it parks): loopless redirects
 * into a reader only once it has been seen reading non-blocking. (A program
 * that reads only after its first readiness event gets the first message
 * of each direction over TCP.) A peek: no byte is taken.
 */
static void look_once(int fd)
{
	if (o.tr == TR_TCP)
		(void)!recv(fd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT);
}

/*
 * A client socket connected to @sa, or -1 with errno: connected the way
 * event-driven programs connect (non-blocking, then poll() for the end of
 * the handshake; loopless leaves programs that connect blocking on TCP), and
 * blocking afterwards, for the writers.
 */
static int connect_addr(const struct sockaddr_storage *sa, socklen_t salen)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int e = 0;

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, salen)) {
		e = errno;
		if (e == EINPROGRESS) {
			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
				e = errno;
		}
	}
	if (!e && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
		e = errno;
	if (!e)
		look_once(fd);
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int connect_to(const struct listener *l)
{
	return connect_addr(&l->sa, l->salen);
}

/* Client and server ends of one connection (or pipes): fds the threads use. */
struct ends {
	int c_rd, c_wr; /* client reads c_rd, writes c_wr */
	int s_rd, s_wr;
};

static void make_ends(struct ends *e, bool nodelay)
{
	struct listener l;
	char where[160];
	int p1[2], p2[2], c, s;

	if (o.tr == TR_PIPE) {
		if (pipe2(p1, O_CLOEXEC) || pipe2(p2, O_CLOEXEC))
			fail("pipe: %s", strerror(errno));
		e->c_wr = p1[1];
		e->s_rd = p1[0];
		e->s_wr = p2[1];
		e->c_rd = p2[0];
		return;
	}
	/* A non-blocking listener, as an event-driven server has (loopless
	 * judges an accepted socket by its listener). */
	listener_open(&l, &o.sa, o.salen, true);
	/* Through proxies the connection reaches the listener only once each hop is up. */
	phase = o.connect ? "connecting through --connect" : "connecting";
	arm_watchdog(0);
	c = o.connect ? connect_addr(&o.csa, o.csalen) : connect_to(&l);
	if (c < 0)
		fail("connect %s: %s", o.connect ? o.connect : sa_str(&l.sa, where, sizeof(where)),
		     strerror(errno));
	while ((s = accept4(l.fd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EAGAIN)
		poll(&(struct pollfd){ .fd = l.fd, .events = POLLIN }, 1, -1);
	if (s < 0)
		fail("accept: %s", strerror(errno));
	look_once(s);
	close(l.fd);
	if (nodelay) {
		set_nodelay(c);
		set_nodelay(s);
	}
	e->c_rd = e->c_wr = c;
	e->s_rd = e->s_wr = s;
}

/* ---- latency samples -------------------------------------------------------------------- */

struct samples {
	uint32_t *v; /* nanoseconds, saturated at UINT32_MAX (4.3 s) */
	size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t ns)
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

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const struct samples *s, double p)
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

static double mean_us(const struct samples *s)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		sum += s->v[i];
	return s->n ? sum / (double)s->n / 1e3 : 0;
}

/* ---- the run's shared state ------------------------------------------------------------- */

static uint64_t t_start, t_warm, t_end; /* start, end of warm-up, end of the measured time */
static pthread_barrier_t go;
static struct ends ends;
static struct lo_stats lo0;

static void print_common(const char *extra_fmt, ...) __attribute__((format(printf, 1, 2)));

static void print_common(const char *extra_fmt, ...)
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
	       atomic_load_explicit(&eagain_seen, memory_order_relaxed), extra);
	fflush(stdout);
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
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
		r = read_full(ends.s_rd, buf, o.size);
		if (r == 1)
			break;
		if (r < 0)
			fail("server read: %s", strerror(errno));
		if (write_full(ends.s_wr, buf, o.size))
			fail("server write: %s", strerror(errno));
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
		if (write_full(ends.c_wr, buf, o.size))
			fail("client write: %s", strerror(errno));
		r = read_full(ends.c_rd, buf, o.size);
		if (r)
			fail("client read: %s", r < 0 ? strerror(errno) : "early EOF");
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
	if (o.tr == TR_PIPE)
		close(ends.c_wr);
	else
		shutdown(ends.c_wr, SHUT_WR);
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
			fail("reader: %s", strerror(errno));
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

	pin_cpu(o.cpu_client);
	memset(buf, 0x5a, o.size);
	pthread_barrier_wait(&go);
	while (now_ns() < t_end) {
		if (write_full(ends.c_wr, buf, o.size))
			fail("writer: %s", strerror(errno));
		st->written += o.size;
	}
	st->t_wstop = now_ns();
	st->lag = st->written - atomic_load_explicit(&st->received, memory_order_relaxed);
	if (o.tr == TR_PIPE)
		close(ends.c_wr);
	else
		shutdown(ends.c_wr, SHUT_WR);
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
				look_once(fd);
				set_nodelay(fd);
				r = read_full(fd, buf, o.size);
				if (r)
					fail("server read: %s",
					     r < 0 ? strerror(errno) : "early EOF");
				if (write_full(fd, buf, o.size))
					fail("server write: %s", strerror(errno));
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
			     sa_str(&l->sa, where, sizeof(where)), c->conns, strerror(errno));
		set_nodelay(fd);
		if (write_full(fd, buf, o.size))
			fail("client write: %s", strerror(errno));
		r = read_full(fd, buf, o.size);
		if (r)
			fail("client read: %s", r < 0 ? strerror(errno) : "early EOF");
		/* Wait for the server's FIN, then close: CLOSE_WAIT -> LAST_ACK -> gone. */
		r = (int)read_some(fd, buf, 1);
		if (r != 0)
			fail("client: expected EOF after the response, got %s",
			     r < 0 ? strerror(errno) : "data");
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

static int run_rr(void)
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

static int run_stream(void)
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

static int run_crr(void)
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

/* ---- scale ------------------------------------------------------------------------------ */

/*
 * 100 000 pairs are 200 000 descriptors, and without CAP_SYS_RESOURCE (containers, this kind
 * of VM) the hard RLIMIT_NOFILE cannot be raised. So the pairs are split over worker
 * processes, each holding as many as its limit allows, and the workers connect one after the
 * other: the insert rate is that of one connecting thread (plus one accepting thread), as in a
 * single process. The parent drives the phases over pipes and takes the readings that are
 * host- or netns-wide (MemAvailable, lo counters) between them.
 */
struct scale_worker {
	pid_t pid;
	int cmd; /* parent -> worker: one command byte */
	int res; /* worker -> parent: one uint64_t (nanoseconds of the phase) */
	unsigned long first, n, sample;
	unsigned int l_first, nl; /* global listener indices [l_first, l_first + nl) */
};

enum { SC_CONNECT = 'c', SC_SAMPLE = 's', SC_CLOSE = 'x' };

/* Worker-side state. */
static struct listener *w_l;
static int *w_srv; /* [local listener * 65536 + client port] = accepted fd, or -1 */
static unsigned long w_accepted;
static const struct scale_worker *w_me;

/* The accepted socket's peer port says which client it belongs to. */
static void *scale_acceptor(void *arg)
{
	struct pollfd *pfd = xalloc(w_me->nl * sizeof(*pfd));
	struct sockaddr_storage peer;
	socklen_t len;
	unsigned int i;
	int fd;

	(void)arg;
	pin_cpu(o.cpu_server);
	for (i = 0; i < w_me->nl; i++)
		pfd[i] = (struct pollfd){ .fd = w_l[i].fd, .events = POLLIN };
	while (w_accepted < w_me->n) {
		if (poll(pfd, w_me->nl, 1000) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		for (i = 0; i < w_me->nl; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				len = sizeof(peer);
				fd = accept4(pfd[i].fd, (struct sockaddr *)&peer, &len,
					     SOCK_CLOEXEC);
				if (fd < 0)
					break;
				look_once(fd);
				w_srv[(size_t)i * 65536 + sa_port(&peer)] = fd;
				w_accepted++;
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fail("accept after %lu pairs: %s%s", w_me->first + w_accepted,
				     strerror(errno),
				     errno == EMFILE || errno == ENFILE ? " (open-file limit)" :
									  "");
		}
	}
	free(pfd);
	return NULL;
}

/* The i-th listener address: 127.0.0.1 + i inside 127.0.0.0/8, else the same address (the
 * kernel gives each listener its own port). */
static void scale_listener_addr(unsigned int i, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	uint32_t a;

	memcpy(ss, &o.sa, o.salen);
	if (ss->ss_family != AF_INET)
		return;
	a = ntohl(s4->sin_addr.s_addr);
	if ((a >> 24) != 127)
		return;
	a += i;
	if ((a >> 24) != 127 || (a & 0xff) == 0xff)
		fail("too many listeners for 127.0.0.0/8 starting at %s", o.addr);
	s4->sin_addr.s_addr = htonl(a);
}

static void reply(uint64_t v)
{
	if (write_full(w_me->res, &v, sizeof(v)))
		_exit(1);
}

static void scale_worker_main(const struct scale_worker *w)
{
	struct sockaddr_storage ss;
	char buf[SAMPLE_BYTES], want[SAMPLE_BYTES], where[160], cmd;
	unsigned long i, j, p, *idx;
	unsigned int *cport, *cl;
	uint64_t t0, rnd = 0x9e3779b97f4a7c15ULL ^ w->first;
	int *cfd, *sfd, r;
	socklen_t len;
	pthread_t ta;

	w_me = w;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	w_l = xalloc(w->nl * sizeof(*w_l));
	w_srv = malloc((size_t)w->nl * 65536 * sizeof(int));
	cfd = xalloc(w->n * sizeof(int));
	sfd = xalloc(w->n * sizeof(int));
	cport = xalloc(w->n * sizeof(unsigned int));
	cl = xalloc(w->n * sizeof(unsigned int));
	idx = xalloc(w->n * sizeof(unsigned long));
	if (!w_srv)
		fail("out of memory");
	memset(w_srv, 0xff, (size_t)w->nl * 65536 * sizeof(int));
	for (i = 0; i < w->nl; i++) {
		scale_listener_addr(w->l_first + (unsigned int)i, &ss);
		listener_open(&w_l[i], &ss, o.salen, true);
	}
	reply(0); /* ready */

	while (read_full(w->cmd, &cmd, 1) == 0) {
		switch (cmd) {
		case SC_CONNECT:
			pin_cpu(o.cpu_client);
			t0 = now_ns();
			start_thread(&ta, scale_acceptor, NULL);
			for (i = 0; i < w->n; i++) {
				cl[i] = (unsigned int)(i % w->nl);
				cfd[i] = connect_to(&w_l[cl[i]]);
				if (cfd[i] < 0)
					fail("connect %s (pair %lu of %lu): %s%s",
					     sa_str(&w_l[cl[i]].sa, where, sizeof(where)),
					     w->first + i + 1, o.pairs, strerror(errno),
					     errno == EADDRNOTAVAIL ? " (out of local ports)" :
					     errno == EMFILE || errno == ENFILE ?
								      " (open-file limit)" :
								      "");
				len = sizeof(ss);
				getsockname(cfd[i], (struct sockaddr *)&ss, &len);
				cport[i] = sa_port(&ss);
			}
			pthread_join(ta, NULL);
			for (i = 0; i < w->n; i++) {
				sfd[i] = w_srv[(size_t)cl[i] * 65536 + cport[i]];
				if (sfd[i] < 0)
					fail("pair %lu: no accepted socket for client port %u",
					     w->first + i, cport[i]);
			}
			reply(now_ns() - t0);
			break;
		case SC_SAMPLE:
			/* Partial Fisher-Yates over this worker's pairs, fixed seed. */
			t0 = now_ns();
			for (i = 0; i < w->n; i++)
				idx[i] = i;
			for (i = 0; i < w->sample; i++) {
				rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
				j = i + rnd % (w->n - i);
				p = idx[j], idx[j] = idx[i], idx[i] = p;
				for (j = 0; j < SAMPLE_BYTES; j++)
					want[j] = (char)((w->first + p) * 31 + j);
				if (write_full(cfd[p], want, SAMPLE_BYTES))
					fail("sample pair %lu: client write: %s", w->first + p,
					     strerror(errno));
				r = read_full(sfd[p], buf, SAMPLE_BYTES);
				if (r || memcmp(buf, want, SAMPLE_BYTES))
					fail("sample pair %lu: server got %s", w->first + p,
					     r < 0 ? strerror(errno) :
					     r	   ? "EOF" :
						     "wrong bytes");
				if (write_full(sfd[p], want, SAMPLE_BYTES))
					fail("sample pair %lu: server write: %s", w->first + p,
					     strerror(errno));
				r = read_full(cfd[p], buf, SAMPLE_BYTES);
				if (r || memcmp(buf, want, SAMPLE_BYTES))
					fail("sample pair %lu: client got %s", w->first + p,
					     r < 0 ? strerror(errno) :
					     r	   ? "EOF" :
						     "wrong bytes");
			}
			reply(now_ns() - t0);
			break;
		case SC_CLOSE:
			t0 = now_ns();
			for (i = 0; i < w->n; i++) {
				close(cfd[i]);
				close(sfd[i]);
			}
			for (i = 0; i < w->nl; i++)
				close(w_l[i].fd);
			reply(now_ns() - t0);
			_exit(0);
		}
	}
	_exit(0); /* the parent went away */
}

static void sync_point(const char *done, const char *wait_for)
{
	char path[PATH_MAX];
	int fd;

	if (!o.sync_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", o.sync_dir, done);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("cannot create %s: %s", path, strerror(errno));
	close(fd);
	snprintf(path, sizeof(path), "%s/%s", o.sync_dir, wait_for);
	phase = wait_for;
	arm_watchdog(0);
	while (access(path, F_OK))
		sleep_until_ns(now_ns() + SYNC_POLL_NS);
}

/* Descriptors one process may hold: the soft limit raised as far as the hard one allows, or
 * the hard one too when we may (CAP_SYS_RESOURCE). */
static rlim_t fd_budget(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_max < need) {
		struct rlimit want = { need, need };

		if (!setrlimit(RLIMIT_NOFILE, &want))
			return need;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fail("setrlimit RLIMIT_NOFILE %llu: %s", (unsigned long long)rl.rlim_cur,
		     strerror(errno));
	return rl.rlim_cur;
}

static uint64_t scale_phase(struct scale_worker *w, unsigned int nw, unsigned int i, char cmd)
{
	unsigned int k;
	uint64_t v;
	int st = 0, r;

	if (cmd && write_full(w[i].cmd, &cmd, 1))
		r = -1;
	else
		r = read_full(w[i].res, &v, sizeof(v));
	if (!r)
		return v;
	/* The worker failed: it said why on stderr (one line) unless a signal killed it. */
	waitpid(w[i].pid, &st, 0);
	w[i].pid = 0;
	for (k = 0; k < nw; k++)
		if (w[k].pid > 0)
			kill(w[k].pid, SIGKILL);
	if (WIFSIGNALED(st))
		fail("worker %u (pairs %lu-%lu) killed by signal %d in phase \"%s\"", i, w[i].first,
		     w[i].first + w[i].n, WTERMSIG(st), phase);
	_exit(1);
}

static int run_scale(void)
{
	uint64_t connect_ns = 0, close_ns = 0, mem0, mem1;
	unsigned long per, first = 0, sampled = 0;
	unsigned int nw, i, l_next = 0;
	struct lo_stats l0, l1;
	struct scale_worker *w;
	rlim_t budget, need;
	int cmdp[2], resp[2];

	if (o.sample > o.pairs)
		o.sample = o.pairs;
	need = (rlim_t)o.pairs * 2 + LISTENERS_FOR(o.pairs) + 64;
	budget = fd_budget(need);
	if (budget < 64 + 2 * 16)
		fail("RLIMIT_NOFILE is %llu: too low to open pairs", (unsigned long long)budget);
	/* 64 spare descriptors per process, 1 per listener. */
	per = (budget - 64) / 2;
	while (per * 2 + LISTENERS_FOR(per) + 64 > budget)
		per--;
	nw = (unsigned int)((o.pairs + per - 1) / per);
	w = xalloc(nw * sizeof(*w));
	phase = "starting workers";
	arm_watchdog(nw * 1.0);
	for (i = 0; i < nw; i++) {
		w[i].first = first;
		w[i].n = o.pairs - first < per ? o.pairs - first : per;
		w[i].sample = o.sample * (first + w[i].n) / o.pairs - sampled;
		w[i].nl = (unsigned int)LISTENERS_FOR(w[i].n);
		w[i].l_first = l_next;
		first += w[i].n;
		sampled += w[i].sample;
		l_next += w[i].nl;
		if (pipe2(cmdp, O_CLOEXEC) || pipe2(resp, O_CLOEXEC))
			fail("pipe: %s", strerror(errno));
		w[i].pid = fork();
		if (w[i].pid < 0)
			fail("fork: %s", strerror(errno));
		if (!w[i].pid) {
			close(cmdp[1]);
			close(resp[0]);
			w[i].cmd = cmdp[0];
			w[i].res = resp[1];
			scale_worker_main(&w[i]);
		}
		close(cmdp[0]);
		close(resp[1]);
		w[i].cmd = cmdp[1];
		w[i].res = resp[0];
		scale_phase(w, nw, i, 0); /* ready: listeners open, memory allocated */
	}

	lo0 = lo_read();
	mem0 = mem_available_kb();
	phase = "connecting";
	arm_watchdog(o.pairs / 1000.0); /* generous: >= 1000 pairs/s */
	for (i = 0; i < nw; i++)
		connect_ns += scale_phase(w, nw, i, SC_CONNECT);
	mem1 = mem_available_kb();

	sync_point("connected", "go-sample");
	phase = "sample exchange";
	arm_watchdog(o.sample * 0.01);
	l0 = lo_read();
	for (i = 0; i < nw; i++)
		scale_phase(w, nw, i, SC_SAMPLE);
	l1 = lo_read();

	sync_point("sampled", "go-close");
	phase = "closing";
	arm_watchdog(o.pairs / 10000.0);
	for (i = 0; i < nw; i++) {
		close_ns += scale_phase(w, nw, i, SC_CLOSE);
		waitpid(w[i].pid, NULL, 0);
		w[i].pid = 0;
	}
	print_common("\"pairs\":%lu,\"procs\":%u,\"listeners\":%u,\"connect_s\":%.4f,"
		     "\"insert_rate\":%.1f,\"mem_kb\":%" PRId64 ",\"kb_per_pair\":%.3f,"
		     "\"sample_pairs\":%lu,\"sample_bytes\":%lu,\"sample_lo_rx\":%" PRIu64
		     ",\"sample_lo_tx\":%" PRIu64 ",\"close_s\":%.4f,\"close_rate\":%.1f,"
		     "\"nofile\":%llu",
		     o.pairs, nw, l_next, connect_ns / 1e9, o.pairs / (connect_ns / 1e9),
		     (int64_t)(mem0 - mem1), (double)(int64_t)(mem0 - mem1) / o.pairs, sampled,
		     sampled * 2 * SAMPLE_BYTES, l1.rx - l0.rx, l1.tx - l0.tx, close_ns / 1e9,
		     o.pairs / (close_ns / 1e9), (unsigned long long)budget);
	free(w);
	return 0;
}

/* ---- options ---------------------------------------------------------------------------- */

enum {
	OPT_SAMPLE = 256,
	OPT_SYNC_DIR,
	OPT_NODELAY,
	OPT_REP,
	OPT_TIMEOUT,
	OPT_SERVER_NETNS,
	OPT_DEV,
	OPT_CONNECT,
};

static const struct option long_opts[] = {
	{ "transport", required_argument, NULL, 't' },
	{ "addr", required_argument, NULL, 'a' },
	{ "port", required_argument, NULL, 'p' },
	{ "size", required_argument, NULL, 's' },
	{ "duration", required_argument, NULL, 'd' },
	{ "warmup", required_argument, NULL, 'w' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "read-size", required_argument, NULL, 'r' },
	{ "pairs", required_argument, NULL, 'n' },
	{ "sample", required_argument, NULL, OPT_SAMPLE },
	{ "sync-dir", required_argument, NULL, OPT_SYNC_DIR },
	{ "listeners", required_argument, NULL, 'l' },
	{ "nodelay", no_argument, NULL, OPT_NODELAY },
	{ "mode", required_argument, NULL, 'm' },
	{ "rep", required_argument, NULL, OPT_REP },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "server-netns", required_argument, NULL, OPT_SERVER_NETNS },
	{ "dev", required_argument, NULL, OPT_DEV },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{},
};

static bool label_ok(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int parse_opts(int argc, char **argv)
{
	unsigned long v;
	int c, i;

	while ((c = getopt_long(argc, argv, "t:a:p:s:d:w:c:r:n:l:m:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			for (i = 0; i < TR_NR && strcmp(optarg, tr_names[i]); i++)
				;
			if (i == TR_NR)
				return usage_error("--transport: \"%s\" is not tcp, unix or pipe",
						   optarg);
			o.tr = i;
			break;
		case 'a':
			o.addr = optarg;
			break;
		case 'p':
			if (parse_ulong(optarg, &v) || v > 65535)
				return usage_error("--port: \"%s\" is not a port (0-65535)",
						   optarg);
			o.port = (unsigned int)v;
			break;
		case 's':
			if (parse_size(optarg, &o.size) || !o.size || o.size > MAX_SIZE)
				return usage_error("--size: \"%s\" is not a size from 1 to 64M",
						   optarg);
			break;
		case 'r':
			if (parse_size(optarg, &o.read_size) || !o.read_size ||
			    o.read_size > MAX_SIZE)
				return usage_error(
					"--read-size: \"%s\" is not a size from 1 to 64M", optarg);
			break;
		case 'd':
			if (parse_double(optarg, &o.duration) || o.duration <= 0 ||
			    o.duration > 86400)
				return usage_error("--duration: \"%s\" is not a number of seconds",
						   optarg);
			break;
		case 'w':
			if (parse_double(optarg, &o.warmup) || o.warmup > 3600)
				return usage_error("--warmup: \"%s\" is not a number of seconds",
						   optarg);
			break;
		case 'c':
			if (sscanf(optarg, "%d,%d%n", &o.cpu_client, &o.cpu_server, &i) != 2 ||
			    optarg[i] || o.cpu_client < 0 || o.cpu_server < 0 ||
			    o.cpu_client >= CPU_SETSIZE || o.cpu_server >= CPU_SETSIZE)
				return usage_error("--cpus: \"%s\" is not two CPU numbers A,B",
						   optarg);
			break;
		case 'n':
			if (parse_ulong(optarg, &o.pairs) || !o.pairs || o.pairs > MAX_PAIRS)
				return usage_error("--pairs: \"%s\" is not a count from 1 to %lu",
						   optarg, MAX_PAIRS);
			break;
		case OPT_SAMPLE:
			if (parse_ulong(optarg, &o.sample) || o.sample > MAX_PAIRS)
				return usage_error("--sample: \"%s\" is not a count", optarg);
			break;
		case OPT_SYNC_DIR:
			o.sync_dir = optarg;
			break;
		case 'l':
			if (parse_ulong(optarg, &v) || !v || v > MAX_CRR_LISTENERS)
				return usage_error(
					"--listeners: \"%s\" is not a count from 1 to %d", optarg,
					MAX_CRR_LISTENERS);
			o.listeners = (unsigned int)v;
			break;
		case OPT_NODELAY:
			o.nodelay_stream = true;
			break;
		case 'm':
			if (!label_ok(optarg))
				return usage_error("--mode: \"%s\" must be 1-64 of [A-Za-z0-9._-]",
						   optarg);
			o.mode = optarg;
			break;
		case OPT_REP:
			if (parse_ulong(optarg, &v) || v > 1000000)
				return usage_error("--rep: \"%s\" is not a count", optarg);
			o.rep = (unsigned int)v;
			break;
		case OPT_TIMEOUT:
			if (parse_double(optarg, &o.timeout) || o.timeout < 1 || o.timeout > 86400)
				return usage_error("--timeout: \"%s\" is not 1 to 86400 seconds",
						   optarg);
			break;
		case OPT_SERVER_NETNS:
			o.server_netns = optarg;
			break;
		case OPT_DEV:
			/* A name, not a path: it goes into /sys/class/net/NAME/statistics. */
			if (!label_ok(optarg) || strlen(optarg) >= 16 || optarg[0] == '.')
				return usage_error("--dev: \"%s\" is not a network device name",
						   optarg);
			o.dev = optarg;
			break;
		case OPT_CONNECT:
			if (strlen(optarg) > 64 || parse_addr_port(optarg, &o.csa, &o.csalen))
				return usage_error(
					"--connect: \"%s\" is not ADDR:PORT (an IP literal, "
					"IPv6 in brackets, and a port 1-65535)",
					optarg);
			o.connect = optarg;
			break;
		case 'h':
			fputs(help_text, stdout);
			exit(0);
		case 'V':
			printf(PROG " %s\n", LOOPLESS_VERSION);
			exit(0);
		default:
			return 2; /* getopt printed why */
		}
	}
	if (optind != argc - 1)
		return usage_error(optind >= argc ? "missing WORKLOAD (rr, stream, crr or scale)" :
						    "one WORKLOAD expected, got \"%s\" too",
				   optind < argc ? argv[optind + 1] : "");
	for (i = 0; i < WL_NR && strcmp(argv[optind], wl_names[i]); i++)
		;
	if (i == WL_NR)
		return usage_error("unknown workload \"%s\" (rr, stream, crr or scale)",
				   argv[optind]);
	o.wl = i;
	if (o.tr == TR_TCP && parse_addr(o.addr, o.port, &o.sa, &o.salen))
		return usage_error("--addr: \"%s\" is not an IPv4 or IPv6 literal", o.addr);
	if (o.tr != TR_TCP && o.wl == WL_SCALE)
		return usage_error("scale needs --transport tcp");
	if (o.tr == TR_PIPE && o.wl == WL_CRR)
		return usage_error("crr needs --transport tcp or unix");
	if (o.server_netns && (o.tr != TR_TCP || o.wl == WL_SCALE))
		return usage_error("--server-netns needs --transport tcp and rr, stream or crr");
	if (o.connect && (o.tr != TR_TCP || (o.wl != WL_RR && o.wl != WL_STREAM)))
		return usage_error("--connect needs --transport tcp and rr or stream");
	if (o.connect && !o.port)
		return usage_error("--connect needs a fixed --port: what NAT and proxies reach");
	if (!o.mode)
		o.mode = tr_names[o.tr];
	return 0;
}

int main(int argc, char **argv)
{
	int r = parse_opts(argc, argv);

	if (r)
		return r;
	if (o.server_netns) {
		netns_server = open(o.server_netns, O_RDONLY | O_CLOEXEC);
		if (netns_server < 0)
			fail("--server-netns %s: %s", o.server_netns, strerror(errno));
		netns_client = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (netns_client < 0)
			fail("cannot open this thread's netns: %s", strerror(errno));
	}
	if (o.dev) {
		snprintf(dev_rx_path, sizeof(dev_rx_path), SYS_NET "%s/statistics/rx_packets",
			 o.dev);
		snprintf(dev_tx_path, sizeof(dev_tx_path), SYS_NET "%s/statistics/tx_packets",
			 o.dev);
		if (access(dev_rx_path, R_OK))
			fail("--dev %s: no such device in this netns (%s)", o.dev, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	setvbuf(stderr, NULL, _IONBF, 0);
	switch (o.wl) {
	case WL_RR:
		return run_rr();
	case WL_STREAM:
		return run_stream();
	case WL_CRR:
		return run_crr();
	default:
		return run_scale();
	}
}
