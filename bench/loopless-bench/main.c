// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* loopless-bench's main: the workload, its options, --help, and the run. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "lib/number.h"
#include "bench.h"

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

#define PROG "loopless-bench"
#define SYS_NET "/sys/class/net/"

const char prog_name[] = PROG;

const char *const wl_names[WL_NR] = { [WL_RR] = "rr",
				      [WL_STREAM] = "stream",
				      [WL_CRR] = "crr",
				      [WL_SCALE] = "scale" };
const char *const tr_names[TR_NR] = { [TR_TCP] = "tcp", [TR_UNIX] = "unix", [TR_PIPE] = "pipe" };

struct opts o = {
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

	if (!colon || colon == s || parse_ulong(colon + 1, 65535, &port) || !port)
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
	uint64_t n;
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
			if (parse_ulong(optarg, 65535, &v))
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
			if (parse_seconds(optarg, 86400, &o.duration) || o.duration <= 0)
				return usage_error("--duration: \"%s\" is not a number of seconds",
						   optarg);
			break;
		case 'w':
			if (parse_seconds(optarg, 3600, &o.warmup))
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
			if (parse_size(optarg, &n) || !n || n > MAX_PAIRS)
				return usage_error("--pairs: \"%s\" is not a count from 1 to %lu",
						   optarg, MAX_PAIRS);
			o.pairs = n;
			break;
		case OPT_SAMPLE:
			if (parse_size(optarg, &n) || n > MAX_PAIRS)
				return usage_error("--sample: \"%s\" is not a count", optarg);
			o.sample = n;
			break;
		case OPT_SYNC_DIR:
			o.sync_dir = optarg;
			break;
		case 'l':
			if (parse_ulong(optarg, MAX_CRR_LISTENERS, &v) || !v)
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
			if (parse_ulong(optarg, 1000000, &v))
				return usage_error("--rep: \"%s\" is not a count", optarg);
			o.rep = (unsigned int)v;
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, 86400, &o.timeout) || o.timeout < 1)
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
	fail_what = wl_names[o.wl];
	/*
	 * A wait for readiness gives up after 100 ms and reads again: a wake-up the datapath
	 * loses costs a measurement 100 ms and an "eagain" count, not the whole run.
	 */
	io_poll_ms = 100;
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
