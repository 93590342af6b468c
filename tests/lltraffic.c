// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lltraffic: traffic generator and byte-exact verifier for the loopless integration tests.
 *
 * loopless moves bytes between local TCP sockets with sockmap redirection, bypassing the TCP
 * stack. A test passes only if every byte sent arrives once, in order, on the right connection,
 * followed by EOF. Each direction of a connection therefore carries a deterministic
 * pseudo-random stream:
 *
 *	byte i of stream(seed) = bits 8*(i%8) .. 8*(i%8)+7 of splitmix64_k(seed), k = i / 8
 *	splitmix64_k(seed) = mix(seed + (k + 1) * 0x9e3779b97f4a7c15)   (the k-th splitmix64 output)
 *
 * Byte i depends only on (seed, i), so the receiver checks any read at any offset with no state
 * but the offset: loss, duplication and reordering all show up as a mismatch at an exact offset,
 * and so do bytes crossing between connections as long as concurrent connections use different
 * seeds. Both ends also keep a 64-bit FNV-1a of each direction so separate processes (serve and
 * send) can be compared by the caller.
 *
 * Only addresses given on the command line are ever used; nothing is hard-coded.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sock_diag.h>
#include <time.h>
#include <unistd.h>

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

#define PROG "lltraffic"

#define DEFAULT_CHUNK 65536
#define DEFAULT_TIMEOUT 120.0
#define DEFAULT_SEED 1
#define HOLD_DEFAULT_BYTES (1ULL << 20)
#define MAX_CHUNK (64ULL << 20)
#define MAX_RR_SIZE (64ULL << 20)
#define MAX_RR_COUNT (1ULL << 24)
#define MAX_TIMEOUT 1e6
#define RESUME_POLL_NS 10000000L
/* --rate paces at this many steps per second, so a slow stream is smooth, not bursty. */
#define RATE_HZ 100
#define LISTEN_BACKLOG 16
#define ADDR_LEN 128

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

enum cmd {
	CMD_PAIR,
	CMD_HOLD,
	CMD_SERVE,
	CMD_SEND,
	CMD_RR,
};

static const char *const cmd_names[] = {
	[CMD_PAIR] = "pair", [CMD_HOLD] = "hold", [CMD_SERVE] = "serve",
	[CMD_SEND] = "send", [CMD_RR] = "rr",
};

enum {
	OPT_BASE = 256,
	OPT_CONNECT = OPT_BASE,
	OPT_LISTEN,
	OPT_PORT,
	OPT_CLIENT_PORT,
	OPT_BYTES,
	OPT_CHUNK,
	OPT_DUPLEX,
	OPT_SEED,
	OPT_RATE,
	OPT_PAUSE_AFTER,
	OPT_RESUME_FILE,
	OPT_READY_FILE,
	OPT_TIMEOUT,
	OPT_SIZE,
	OPT_COUNT,
	OPT_JSON,
	OPT_CORRUPT_AT,
	OPT_BIND,
	OPT_TOLERATE_EAGAIN,
	OPT_READER_DELAY,
	OPT_READER_STALL,
	OPT_ACCEPT_DELAY,
	OPT_SERVER_FIRST,
	OPT_S2C_BYTES,
	OPT_RCVBUF,
	OPT_VERSION,
};

#define OB(opt) (1u << ((opt)-OPT_BASE))

static const struct option long_opts[] = {
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "client-port", required_argument, NULL, OPT_CLIENT_PORT },
	{ "bytes", required_argument, NULL, OPT_BYTES },
	{ "chunk", required_argument, NULL, OPT_CHUNK },
	{ "duplex", no_argument, NULL, OPT_DUPLEX },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "pause-after", required_argument, NULL, OPT_PAUSE_AFTER },
	{ "resume-file", required_argument, NULL, OPT_RESUME_FILE },
	{ "ready-file", required_argument, NULL, OPT_READY_FILE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "json", no_argument, NULL, OPT_JSON },
	/* Debug only, not in --help: proves the verifier catches a single flipped byte. */
	{ "corrupt-at", required_argument, NULL, OPT_CORRUPT_AT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "tolerate-eagain", no_argument, NULL, OPT_TOLERATE_EAGAIN },
	{ "reader-delay", required_argument, NULL, OPT_READER_DELAY },
	{ "reader-stall", required_argument, NULL, OPT_READER_STALL },
	{ "accept-delay", required_argument, NULL, OPT_ACCEPT_DELAY },
	{ "server-first", no_argument, NULL, OPT_SERVER_FIRST },
	{ "s2c-bytes", required_argument, NULL, OPT_S2C_BYTES },
	{ "rcvbuf", required_argument, NULL, OPT_RCVBUF },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{},
};

#define COMMON_OPTS (OB(OPT_TIMEOUT) | OB(OPT_JSON) | OB(OPT_SEED) | OB(OPT_TOLERATE_EAGAIN))
#define STREAM_OPTS                                                                           \
	(OB(OPT_BYTES) | OB(OPT_CHUNK) | OB(OPT_DUPLEX) | OB(OPT_RATE) | OB(OPT_CORRUPT_AT) | \
	 OB(OPT_READY_FILE))
#define LOCAL_PAIR_OPTS (OB(OPT_CONNECT) | OB(OPT_LISTEN) | OB(OPT_PORT) | OB(OPT_CLIENT_PORT))
#define RR_OPTS (OB(OPT_SIZE) | OB(OPT_COUNT))
/* serve/send with --size/--count run request/response: these stream options mean nothing. */
#define RR_EXCLUDED_OPTS (OB(OPT_BYTES) | OB(OPT_CHUNK) | OB(OPT_DUPLEX) | OB(OPT_RATE))

/* Options each subcommand accepts; anything else is a usage error, not silently ignored. */
static const unsigned int cmd_allowed[] = {
	[CMD_PAIR] = COMMON_OPTS | STREAM_OPTS | LOCAL_PAIR_OPTS | OB(OPT_PAUSE_AFTER) |
		     OB(OPT_RESUME_FILE) | OB(OPT_BIND) | OB(OPT_READER_DELAY) |
		     OB(OPT_READER_STALL) | OB(OPT_ACCEPT_DELAY) | OB(OPT_SERVER_FIRST) |
		     OB(OPT_S2C_BYTES) | OB(OPT_RCVBUF),
	[CMD_HOLD] = COMMON_OPTS | STREAM_OPTS | LOCAL_PAIR_OPTS | OB(OPT_RESUME_FILE),
	[CMD_SERVE] = COMMON_OPTS | STREAM_OPTS | RR_OPTS | OB(OPT_LISTEN) | OB(OPT_PORT),
	[CMD_SEND] = COMMON_OPTS | STREAM_OPTS | RR_OPTS | OB(OPT_CONNECT) | OB(OPT_PORT) |
		     OB(OPT_CLIENT_PORT) | OB(OPT_BIND),
	[CMD_RR] =
		COMMON_OPTS | LOCAL_PAIR_OPTS | OB(OPT_SIZE) | OB(OPT_COUNT) | OB(OPT_CORRUPT_AT),
};

/*
 * A blocking recv() on a socket in a sockmap can fail with EAGAIN: tcp_bpf_recvmsg()
 * (net/ipv4/tcp_bpf.c) waits for one wake-up only, and a wake-up of the socket's wait queue
 * for another reason (send-buffer space, when another thread writes on the same socket) ends
 * the wait with no data. --tolerate-eagain retries and counts them ("eagain=N").
 */
static bool tolerate_eagain;
static _Atomic uint64_t eagain_seen;

/* --rcvbuf: SO_RCVBUF of every socket pair creates (0: the kernel's default). */
static int rcvbuf_opt;

struct opts {
	enum cmd cmd;
	unsigned int seen;
	const char *connect;
	const char *listen;
	struct sockaddr_storage connect_sa;
	struct sockaddr_storage listen_sa;
	const char *bind;
	struct sockaddr_storage bind_sa; /* family AF_UNSPEC: no --bind */
	double reader_delay; /* seconds the c2s reader waits before its first read */
	uint64_t stall_every; /* the c2s reader sleeps stall_ms after each stall_every bytes */
	unsigned int stall_ms;
	unsigned int accept_delay_ms; /* pair: the server sleeps this long before accept() */
	bool server_first; /* pair: the client writes only once it has verified stream(S+1) */
	uint64_t s2c_bytes; /* pair: bytes of the s2c direction (default --bytes) */
	unsigned int port;
	unsigned int client_port;
	uint64_t bytes;
	size_t chunk;
	bool duplex;
	uint64_t seed;
	uint64_t rate;
	uint64_t pause_after;
	const char *resume_file;
	const char *ready_file;
	double timeout;
	uint64_t size;
	uint64_t count;
	bool rr; /* request/response: rr, or serve/send with --size and --count */
	bool json;
	uint64_t corrupt_at;
};

static const char help_text[] =
	"Usage:\n"
	"  lltraffic pair  --connect ADDR [--listen ADDR] [--port P] [--client-port P] --bytes N\n"
	"                  [--chunk N] [--duplex] [--seed S] [--rate R]\n"
	"                  [--pause-after N --resume-file PATH] [--ready-file PATH]\n"
	"                  [--timeout SEC] [--json] [--bind ADDR] [--tolerate-eagain]\n"
	"                  [--reader-delay SEC] [--reader-stall N:MS] [--accept-delay MS]\n"
	"                  [--server-first] [--s2c-bytes N] [--rcvbuf N]\n"
	"  lltraffic hold  --connect ADDR [--listen ADDR] [--port P] [--client-port P]\n"
	"                  --resume-file PATH --ready-file PATH [--bytes N] [--chunk N] [--duplex]\n"
	"                  [--seed S] [--rate R] [--timeout SEC] [--json]\n"
	"  lltraffic serve --listen ADDR [--port P] --bytes N [--seed S] [--duplex] [--chunk N]\n"
	"                  [--rate R] [--ready-file PATH] [--timeout SEC] [--json]\n"
	"  lltraffic serve --listen ADDR [--port P] --size N --count K [--seed S]\n"
	"                  [--ready-file PATH] [--timeout SEC] [--json]\n"
	"  lltraffic send  --connect ADDR --port P --bytes N [--seed S] [--duplex] [--chunk N]\n"
	"                  [--client-port P] [--rate R] [--ready-file PATH] [--timeout SEC] [--json]\n"
	"  lltraffic send  --connect ADDR --port P --size N --count K [--seed S] [--client-port P]\n"
	"                  [--ready-file PATH] [--timeout SEC] [--json]\n"
	"  lltraffic rr    --connect ADDR [--listen ADDR] [--port P] [--client-port P] --size N\n"
	"                  --count K [--seed S] [--timeout SEC] [--json]\n"
	"  lltraffic --help | --version\n"
	"\n"
	"Traffic generator and byte-exact verifier for the loopless integration tests.\n"
	"\n"
	"Subcommands:\n"
	"  pair   One process, both ends: listen on --listen, connect a client to it, accept.\n"
	"         The client writes N bytes of stream(S) and half-closes (shutdown SHUT_WR); the\n"
	"         server verifies every byte, the length and the EOF. With --duplex the server\n"
	"         at the same time writes N bytes of stream(S+1) back, verified by the client.\n"
	"  hold   Alias of pair --pause-after 0 (default --bytes 1M): connect, touch the ready\n"
	"         file, keep the connection idle until the resume file exists, then transfer.\n"
	"  serve  Server end alone: listen, touch the ready file, accept ONE connection, verify\n"
	"         N bytes of stream(S) then EOF (with --duplex also send N bytes of stream(S+1)\n"
	"         and half-close), close, print the result. Use it with send across network\n"
	"         namespaces.\n"
	"  send   Client end alone: connect, send N bytes of stream(S), half-close; with --duplex\n"
	"         verify N bytes of stream(S+1) coming back. Without --duplex it still waits for\n"
	"         the server to close, so success means the server has read everything.\n"
	"  rr     Request/response: the client sends --size bytes, the server verifies and echoes\n"
	"         them, --count times; the client checks every echoed byte and reports latency.\n"
	"         TCP_NODELAY is set on both ends (rr only). serve and send given --size and\n"
	"         --count (instead of --bytes) are its two ends in separate processes.\n"
	"\n"
	"Options:\n"
	"  --connect ADDR        IP literal to connect to (127.0.0.1, ::1, ::ffff:127.0.0.1, or an\n"
	"                        address inside a test netns). The literal picks the family:\n"
	"                        IPv4 -> AF_INET, anything with ':' -> AF_INET6.\n"
	"  --listen ADDR         IP literal to listen on (pair/hold/rr default: --connect). A\n"
	"                        wildcard \"::\" listener is dual-stack (IPV6_V6ONLY=0).\n"
	"  --port P              Listening / destination port (default 0 = ephemeral; send: required).\n"
	"  --client-port P       Bind the client socket to this local port (SO_REUSEADDR).\n"
	"  --bind ADDR           Bind the client socket to this local address (pair, send).\n"
	"  --tolerate-eagain     Retry a blocking recv() that fails with EAGAIN (a sockmap\n"
	"                        kernel quirk, see tcp_bpf_recvmsg) and report eagain=N.\n"
	"  --reader-delay SEC    pair: the c2s reader peeks once (MSG_DONTWAIT), then sleeps SEC\n"
	"                        before its first read while the writer goes on; reports\n"
	"                        peak_rw (receive + write queue\n"
	"                        bytes, SO_MEMINFO) and peak_rwi (+ FIONREAD) while it sleeps.\n"
	"  --reader-stall N:MS   pair: the c2s reader sleeps MS ms after every N bytes read.\n"
	"  --accept-delay MS     pair: the client starts writing right after connect() while the\n"
	"                        server sleeps MS ms before accept() (data before accept).\n"
	"  --server-first        pair: implies --duplex; the client writes only after it has\n"
	"                        verified all of stream(S+1) (the server speaks first).\n"
	"  --s2c-bytes N         pair: implies --duplex; the s2c direction carries N bytes instead\n"
	"                        of --bytes (e.g. the client half-closes early, the server goes on).\n"
	"  --rcvbuf N            pair: SO_RCVBUF of both ends, set before listen()/connect().\n"
	"  --bytes N             Bytes per direction. Suffixes K, M, G, T are 1024-based (256M).\n"
	"  --chunk N             Size of every write and read (default 64K, max 64M).\n"
	"  --duplex              Also send stream(S+1) from server to client at the same time.\n"
	"  --seed S              Stream seed, decimal or 0x-hex (default 1). Concurrent connections\n"
	"                        should use seeds at least 2 apart so crossed bytes are caught.\n"
	"  --rate R              Pace each writer to about R bytes/s (suffixes allowed); writes are\n"
	"                        then cut to R/100 bytes so the stream is smooth.\n"
	"  --pause-after N       pair: once N bytes are written AND verified in every direction,\n"
	"                        touch --ready-file, wait for --resume-file (polled every 10 ms),\n"
	"                        then send the rest. N <= --bytes; N = --bytes pauses before EOF.\n"
	"  --resume-file PATH    File whose appearance ends the pause.\n"
	"  --ready-file PATH     Created (atomically, via rename) when: pair/hold with a pause -> at\n"
	"                        the pause; pair/send without -> once connected; serve -> once\n"
	"                        listening. It holds one key=value line (listen=, client=, server=).\n"
	"  --size N              rr (serve/send): bytes per request and per response (max 64M).\n"
	"  --count K             rr (serve/send): number of round trips.\n"
	"  --timeout SEC         Watchdog for the whole run (default 120, fractions allowed): when\n"
	"                        it fires, report which side is stuck at which offset, exit 1.\n"
	"  --json                Print the result as one JSON object instead of key=value.\n"
	"  -h, --help            This text.   --version   Print the version.\n"
	"\n"
	"Data: byte i of stream(S) is byte i%8 (little-endian) of the (i/8)-th splitmix64 output\n"
	"seeded with S, i.e. mix(S + (i/8 + 1) * 0x9e3779b97f4a7c15). The first wrong byte is\n"
	"reported with its absolute offset, expected and received value. Checksums are 64-bit\n"
	"FNV-1a over the bytes of a direction, printed as 16 hex digits.\n"
	"\n"
	"Output (one line on stdout, only on success):\n"
	"  pair/hold/serve/send:\n"
	"    ok bytes=N c2s_fnv=HEX [s2c_fnv=HEX] elapsed_ms=MS mbps=MBIT client=A:P server=A:P\n"
	"  rr, send --size:\n"
	"    ok count=K size=N p50_us=US p99_us=US max_us=US elapsed_ms=MS client=A:P server=A:P\n"
	"  serve --size:\n"
	"    ok count=K size=N elapsed_ms=MS client=A:P server=A:P\n"
	"  mbps is megabits/s of one direction; s2c_fnv only with --duplex; client/server are the\n"
	"  client socket's ends (serve: the accepted socket's peer and local address). IPv6\n"
	"  addresses are bracketed: [::1]:41234.\n"
	"\n"
	"Exit status: 0 success, 1 failure (I/O error, data mismatch, timeout), 2 usage error.\n"
	"Errors are one line on stderr starting with \"lltraffic: \".\n"
	"\n"
	"EXAMPLES\n"
	"  lltraffic pair --connect 127.0.0.1 --bytes 256M\n"
	"  lltraffic pair --connect ::1 --bytes 64M --duplex --chunk 4K\n"
	"  lltraffic pair --listen :: --connect ::ffff:127.0.0.1 --bytes 16M\n"
	"  lltraffic pair --connect 127.0.0.1 --bytes 8M --rate 2M     # lasts about 4 s\n"
	"  lltraffic pair --connect 127.0.0.1 --bytes 64K --accept-delay 20 --server-first\n"
	"  lltraffic pair --connect 127.0.0.1 --bytes 1M --s2c-bytes 64M --rate 64M\n"
	"  lltraffic pair --connect 127.0.0.1 --bytes 4M --pause-after 1M \\\n"
	"          --ready-file /tmp/t/ready --resume-file /tmp/t/resume --timeout 30\n"
	"  lltraffic hold --connect 127.0.0.1 --ready-file /tmp/t/ready --resume-file /tmp/t/go\n"
	"  lltraffic serve --listen 10.200.0.2 --port 5001 --bytes 1G --duplex --ready-file r &\n"
	"  lltraffic send --connect 10.200.0.2 --port 5001 --bytes 1G --duplex\n"
	"  lltraffic rr --connect 127.0.0.1 --size 64 --count 10000\n"
	"  lltraffic serve --listen :: --port 8080 --size 512 --count 5000 --ready-file r &\n"
	"  lltraffic send --connect 198.18.2.7 --port 8080 --size 512 --count 5000\n";

/* ---- stream and checksum ---------------------------------------------------------------- */

static inline uint64_t stream_word(uint64_t seed, uint64_t k)
{
	uint64_t z = seed + (k + 1) * GOLDEN;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Bytes [off, off + len) of stream(seed); byte order is fixed (LE) whatever the host's. */
static void stream_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t k = off / 8, w;
	unsigned int i;

	if (off % 8) {
		w = stream_word(seed, k++);
		for (i = off % 8; i < 8 && len; i++, len--)
			*buf++ = w >> (8 * i);
	}
	for (; len >= 8; len -= 8, buf += 8) {
		w = stream_word(seed, k++);
		for (i = 0; i < 8; i++)
			buf[i] = w >> (8 * i);
	}
	if (len) {
		w = stream_word(seed, k);
		for (i = 0; i < len; i++)
			buf[i] = w >> (8 * i);
	}
}

/*
 * Which stream the bytes that arrived instead belong to, for the failure
 * message: stream(seed) at another offset (reordered, duplicated or lost
 * bytes) or a nearby seed (another connection's, or this one's other
 * direction: the tests give each flow seeds a few apart). Finds the first
 * whole 8-byte word of @got among the words of seeds @seed - 8 .. @seed + 8
 * over [0, @limit); slow (seconds for 64 MiB), so only on a failure.
 */
static void whose_bytes(const uint8_t *got, size_t len, uint64_t seed, uint64_t limit, char *out,
			size_t outlen)
{
	uint64_t s, k, v;
	unsigned int j, b;

	snprintf(out, outlen, "those bytes are of no stream with a seed within 8");
	for (j = 0; j < 8 && j + 8 <= len; j++) {
		for (v = 0, b = 0; b < 8; b++)
			v |= (uint64_t)got[j + b] << (8 * b);
		for (s = seed >= 8 ? seed - 8 : 0; s <= seed + 8; s++)
			for (k = 0; k < limit / 8 + 1; k++)
				if (stream_word(s, k) == v) {
					snprintf(out, outlen,
						 "those bytes are stream(seed %#" PRIx64
						 ") from offset %" PRIu64,
						 s, k * 8 - j);
					return;
				}
	}
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len)
{
	while (len--) {
		h ^= *p++;
		h *= FNV_PRIME;
	}
	return h;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000ULL, .tv_nsec = t % 1000000000ULL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void sleep_ns(uint64_t ns)
{
	sleep_until_ns(now_ns() + ns);
}

/* "1.5" -> 1.5 seconds; 0 <= value <= 3600. */
static int parse_seconds(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || !(*out >= 0) || *out > 3600 ? -EINVAL : 0;
}

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf on unbuffered stderr is one write(): lines from threads don't interleave. */
	fprintf(stderr, PROG ": %s\n", msg);
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errmsg("%s (see '" PROG " --help')", msg);
	return 2;
}

/*
 * Serialises the final word of the run: the first failing thread (or the watchdog) prints its
 * line and exits; any other thread failing at the same moment blocks here and never prints.
 */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void abort_connections(void);

/*
 * A worker thread is the boundary that decides: once a byte is wrong or a socket fails there
 * is nothing left to save, and the other threads may be blocked in recv()/send() on a peer
 * that will never move again. _exit() ends them all at once instead of untangling them.
 */
static void __attribute__((noreturn, format(printf, 1, 2))) run_fail(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fail_lock);
	errmsg("%s", msg);
	abort_connections();
	_exit(1);
}

/* Touch PATH with CONTENT; written to a temporary name and renamed, so readers never see it
 * half-written. */
static int write_ready_file(const char *path, const char *content)
{
	char tmp[PATH_MAX];
	size_t len = strlen(content);
	ssize_t n;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len) {
		n = write(fd, content, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		content += n;
		len -= n;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* ---- option parsing --------------------------------------------------------------------- */

static const char *opt_name(int id)
{
	const struct option *o;

	for (o = long_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* Unsigned decimal (or 0x-hex when !suffix) with an optional binary K/M/G/T suffix. */
static int parse_u64(const char *s, bool suffix, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	/* strtoull() accepts "-1" and leading blanks; a byte count must start with a digit. */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, suffix ? 10 : 0);
	if (errno)
		return -errno;
	if (suffix && *end) {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1ULL << 10;
			break;
		case 'm':
		case 'M':
			mult = 1ULL << 20;
			break;
		case 'g':
		case 'G':
			mult = 1ULL << 30;
			break;
		case 't':
		case 'T':
			mult = 1ULL << 40;
			break;
		default:
			return -EINVAL;
		}
		end++;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static unsigned int sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void sa_set_port(struct sockaddr_storage *ss, unsigned int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* An AF_INET6 socket only reaches IPv4 (wildcard or ::ffff:a.b.c.d) with IPV6_V6ONLY off. */
static bool sa_needs_dualstack(const struct sockaddr_storage *ss)
{
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	return ss->ss_family == AF_INET6 && (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_V4MAPPED(a));
}

/* Same endpoint, treating ::ffff:a.b.c.d as a.b.c.d (a dual-stack listener sees it so). */
static bool sa_same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_storage *ss[2] = { a, b };
	uint8_t addr[2][16];
	size_t alen[2];
	int i;

	for (i = 0; i < 2; i++) {
		if (ss[i]->ss_family == AF_INET) {
			memcpy(addr[i], &((const struct sockaddr_in *)ss[i])->sin_addr, 4);
			alen[i] = 4;
			continue;
		}
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss[i])->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(addr[i], &a6->s6_addr[12], 4);
			alen[i] = 4;
		} else {
			memcpy(addr[i], a6, 16);
			alen[i] = 16;
		}
	}
	return alen[0] == alen[1] && !memcmp(addr[0], addr[1], alen[0]) && sa_port(a) == sa_port(b);
}

static void fmt_sa(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)ss, sa_len(ss), host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* Numeric literal only (AI_NUMERICHOST): a name would mean a DNS lookup and another address. */
static int parse_ip(const char *s, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	char host[NI_MAXHOST];
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (getaddrinfo(host, NULL, &hints, &res))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int parse_size_opt(int id, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	int err = parse_u64(arg, true, out);

	if (err)
		return usage_error(
			"invalid --%s '%s': expected a number with an optional K, M, G or T suffix",
			opt_name(id), arg);
	if (*out < min || *out > max)
		return usage_error("--%s %s is out of range (%" PRIu64 "..%" PRIu64 ")",
				   opt_name(id), arg, min, max);
	return 0;
}

static int parse_port_opt(int id, const char *arg, unsigned int min, unsigned int *out)
{
	uint64_t v;

	if (parse_u64(arg, false, &v) || v < min || v > 65535)
		return usage_error("invalid --%s '%s': expected a port number %u..65535",
				   opt_name(id), arg, min);
	*out = v;
	return 0;
}

static char resume_doing[PATH_MAX + 64];

/* Returns 0, or the exit code (2) after printing the reason. */
static int check_opts(struct opts *o)
{
	bool rr = o->cmd == CMD_RR || (o->seen & RR_OPTS);
	bool needs_bytes = !rr && (o->cmd == CMD_PAIR || o->cmd == CMD_SERVE || o->cmd == CMD_SEND);
	bool has_pause = o->seen & OB(OPT_PAUSE_AFTER);
	const char *name = cmd_names[o->cmd];

	if (o->cmd != CMD_SERVE && !o->connect)
		return usage_error("%s needs --connect ADDR", name);
	if (o->cmd == CMD_SERVE && !o->listen)
		return usage_error("serve needs --listen ADDR");
	if (o->cmd == CMD_SEND && !o->port)
		return usage_error("send needs --port P (the port serve listens on)");
	if (needs_bytes && !(o->seen & OB(OPT_BYTES)))
		return usage_error("%s needs --bytes N", name);
	if (o->cmd == CMD_RR && (o->seen & RR_OPTS) != RR_OPTS)
		return usage_error("rr needs --size N and --count K");
	if (rr && (o->seen & RR_OPTS) != RR_OPTS)
		return usage_error("%s: request/response needs both --size N and --count K", name);
	if (rr && (o->seen & RR_EXCLUDED_OPTS))
		return usage_error("%s --size/--count (request/response) does not go with --bytes, "
				   "--chunk, --duplex or --rate",
				   name);
	o->rr = rr;
	if (o->cmd == CMD_HOLD) {
		if (!o->resume_file || !o->ready_file)
			return usage_error("hold needs --resume-file PATH and --ready-file PATH");
		has_pause = true;
		o->pause_after = 0;
	}
	if (o->cmd == CMD_PAIR && has_pause != !!o->resume_file)
		return usage_error("--pause-after and --resume-file go together");
	if (has_pause && o->pause_after > o->bytes)
		return usage_error("--pause-after %" PRIu64 " is beyond --bytes %" PRIu64,
				   o->pause_after, o->bytes);
	if (o->cmd == CMD_SERVE && !o->duplex && (o->seen & (OB(OPT_RATE) | OB(OPT_CORRUPT_AT))))
		return usage_error("serve only writes with --duplex; --rate/--corrupt-at need it");
	if (o->accept_delay_ms && has_pause)
		return usage_error("--accept-delay does not go with --pause-after");
	if (o->server_first || (o->seen & OB(OPT_S2C_BYTES)))
		o->duplex = true;
	if (!(o->seen & OB(OPT_S2C_BYTES)))
		o->s2c_bytes = o->bytes;
	if (o->s2c_bytes != o->bytes && has_pause)
		return usage_error("--s2c-bytes does not go with --pause-after");
	if (!o->listen)
		o->listen = o->connect;
	if (o->connect && parse_ip(o->connect, &o->connect_sa))
		return usage_error("--connect '%s' is not an IPv4 or IPv6 literal", o->connect);
	if (o->listen && parse_ip(o->listen, &o->listen_sa))
		return usage_error("--listen '%s' is not an IPv4 or IPv6 literal", o->listen);
	if (o->bind && parse_ip(o->bind, &o->bind_sa))
		return usage_error("--bind '%s' is not an IPv4 or IPv6 literal", o->bind);
	if (o->bind && o->bind_sa.ss_family != o->connect_sa.ss_family)
		return usage_error("--bind '%s' and --connect '%s' are of different families",
				   o->bind, o->connect);
	if (o->connect) {
		/* send connects to --port; pair/hold/rr to whatever the listener got. */
		sa_set_port(&o->connect_sa, o->port);
	}
	if (o->listen)
		sa_set_port(&o->listen_sa, o->cmd == CMD_SEND ? 0 : o->port);
	if (!has_pause)
		o->pause_after = UINT64_MAX;
	if (o->resume_file)
		snprintf(resume_doing, sizeof(resume_doing), "waiting for resume file %s",
			 o->resume_file);
	return 0;
}

static void print_help(void)
{
	fputs(help_text, stdout);
}

/* Returns 0 to go on, or an exit code: 0 after --help/--version, 2 after a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o, bool *done)
{
	unsigned int allowed = cmd_allowed[o->cmd];
	uint64_t v;
	int c, err;

	*done = false;
	opterr = 0;
	/* The leading ':' makes getopt_long() report a missing argument as ':' instead of '?'. */
	while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		if (c == 'h' || c == OPT_VERSION) {
			if (c == 'h')
				print_help();
			else
				printf(PROG " %s\n", LOOPLESS_VERSION);
			*done = true;
			return 0;
		}
		if (c == ':')
			return usage_error("option %s needs an argument", argv[optind - 1]);
		if (c == '?')
			return usage_error("unknown option '%s'", argv[optind - 1]);
		if (!(allowed & OB(c)))
			return usage_error("option --%s does not apply to %s", opt_name(c),
					   cmd_names[o->cmd]);
		o->seen |= OB(c);
		err = 0;
		switch (c) {
		case OPT_CONNECT:
			o->connect = optarg;
			break;
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_PORT:
			err = parse_port_opt(c, optarg, 0, &o->port);
			break;
		case OPT_CLIENT_PORT:
			err = parse_port_opt(c, optarg, 1, &o->client_port);
			break;
		case OPT_BYTES:
			err = parse_size_opt(c, optarg, 0, UINT64_MAX, &o->bytes);
			break;
		case OPT_CHUNK:
			err = parse_size_opt(c, optarg, 1, MAX_CHUNK, &v);
			o->chunk = v;
			break;
		case OPT_DUPLEX:
			o->duplex = true;
			break;
		case OPT_SEED:
			if (parse_u64(optarg, false, &o->seed))
				err = usage_error(
					"invalid --seed '%s': expected a decimal or 0x-hex number",
					optarg);
			break;
		case OPT_RATE:
			err = parse_size_opt(c, optarg, 1, UINT64_MAX, &o->rate);
			break;
		case OPT_PAUSE_AFTER:
			err = parse_size_opt(c, optarg, 0, UINT64_MAX, &o->pause_after);
			break;
		case OPT_RESUME_FILE:
			o->resume_file = optarg;
			break;
		case OPT_READY_FILE:
			o->ready_file = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &o->timeout) || !(o->timeout > 0) ||
			    o->timeout > MAX_TIMEOUT)
				err = usage_error("invalid --timeout '%s': expected seconds, > 0",
						  optarg);
			break;
		case OPT_SIZE:
			err = parse_size_opt(c, optarg, 1, MAX_RR_SIZE, &o->size);
			break;
		case OPT_COUNT:
			err = parse_size_opt(c, optarg, 1, MAX_RR_COUNT, &o->count);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_CORRUPT_AT:
			err = parse_size_opt(c, optarg, 0, UINT64_MAX, &o->corrupt_at);
			break;
		case OPT_BIND:
			o->bind = optarg;
			break;
		case OPT_TOLERATE_EAGAIN:
			tolerate_eagain = true;
			break;
		case OPT_READER_DELAY:
			if (parse_seconds(optarg, &o->reader_delay))
				err = usage_error("invalid --reader-delay '%s': expected seconds",
						  optarg);
			break;
		case OPT_READER_STALL: {
			char *at = strchr(optarg, ':');
			char every[32];

			if (!at || (size_t)(at - optarg) >= sizeof(every) ||
			    sscanf(at + 1, "%u", &o->stall_ms) != 1) {
				err = usage_error("invalid --reader-stall '%s': expected BYTES:MS",
						  optarg);
				break;
			}
			memcpy(every, optarg, at - optarg);
			every[at - optarg] = '\0';
			err = parse_size_opt(c, every, 1, UINT64_MAX, &o->stall_every);
			break;
		}
		case OPT_ACCEPT_DELAY:
			err = parse_size_opt(c, optarg, 0, 600000, &v);
			o->accept_delay_ms = v;
			break;
		case OPT_SERVER_FIRST:
			o->server_first = true;
			break;
		case OPT_S2C_BYTES:
			err = parse_size_opt(c, optarg, 0, UINT64_MAX, &o->s2c_bytes);
			break;
		case OPT_RCVBUF:
			err = parse_size_opt(c, optarg, 1, INT_MAX / 2, &v);
			rcvbuf_opt = v;
			break;
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return check_opts(o);
}

/* ---- sockets ---------------------------------------------------------------------------- */

static int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		return -errno;
	return 0;
}

static int listen_on(const struct sockaddr_storage *ss, int *out)
{
	int one = 1, zero = 0, fd, err;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Tests reuse fixed ports back to back; TIME_WAIT from the last run must not block bind. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	if (sa_needs_dualstack(ss) &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)))
		goto fail;
	/* Before listen(): accepted sockets inherit it, and the window is sized from it. */
	if (rcvbuf_opt && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_opt, sizeof(rcvbuf_opt)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, sa_len(ss)))
		goto fail;
	if (listen(fd, LISTEN_BACKLOG))
		goto fail;
	/* An event-driven server's listener is non-blocking (accept_one() polls):
	 * loopless accelerates only the connections of such programs. */
	if (set_nonblock(fd, true))
		goto fail;
	*out = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

static int client_socket(const struct sockaddr_storage *dst, const struct sockaddr_storage *src,
			 unsigned int client_port, int *out)
{
	struct sockaddr_storage any = { .ss_family = dst->ss_family };
	int one = 1, zero = 0, fd, err;

	fd = socket(dst->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* connect() to ::ffff:a.b.c.d fails with ENETUNREACH while IPV6_V6ONLY is on. */
	if (sa_needs_dualstack(dst) &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)))
		goto fail;
	if (rcvbuf_opt && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_opt, sizeof(rcvbuf_opt)))
		goto fail;
	if (src->ss_family != AF_UNSPEC)
		any = *src;
	if (client_port || src->ss_family != AF_UNSPEC) {
		/* Reusing a 4-tuple right after the last run is the point of a fixed client port. */
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
			goto fail;
		sa_set_port(&any, client_port);
		if (bind(fd, (const struct sockaddr *)&any, sa_len(&any)))
			goto fail;
	}
	*out = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

/*
 * Every socket's reader looks once as soon as the socket is set up, the
 * first read attempt of an event loop (Go's netpoller makes one before it
 * parks): loopless redirects into a reader only once it has been seen
 * reading non-blocking (ll_recv), and a test's figures must not depend on
 * which thread the scheduler runs first. A peek: no byte is taken.
 */
static void look_once(int fd)
{
	(void)!recv(fd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT);
}

/*
 * Connects as event-driven programs do, non-blocking, then waits for the end
 * of the handshake with poll(); the socket is blocking again afterwards (the
 * writers block on a full send buffer; the readers use MSG_DONTWAIT).
 */
static int connect_to(int fd, const struct sockaddr_storage *dst)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int soerr = 0, err;

	err = set_nonblock(fd, true);
	if (err)
		return err;
	if (connect(fd, (const struct sockaddr *)dst, sa_len(dst))) {
		if (errno != EINPROGRESS && errno != EINTR)
			return -errno;
		while (poll(&pfd, 1, -1) < 0)
			if (errno != EINTR)
				return -errno;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len))
			return -errno;
	}
	err = set_nonblock(fd, false);
	if (!soerr && !err)
		look_once(fd);
	return soerr ? -soerr : err;
}

/* From a non-blocking listener: poll() for a connection, then accept it. */
static int accept_one(int lfd, struct sockaddr_storage *peer, int *out)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(*peer);
		fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EAGAIN) {
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		/* A client that gave up before accept() is not our failure; wait for the next. */
		if (errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
	look_once(fd);
	*out = fd;
	return 0;
}

static int sock_addr(int fd, bool peer, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	int rc;

	memset(ss, 0, sizeof(*ss));
	rc = peer ? getpeername(fd, (struct sockaddr *)ss, &len) :
		    getsockname(fd, (struct sockaddr *)ss, &len);
	return rc ? -errno : 0;
}

/*
 * Reads the way event-driven programs do, the kind loopless redirects into:
 * recv(MSG_DONTWAIT), and poll() for readiness when nothing is there. (A
 * blocking reader would be kept on plain TCP, see ll_recv.) EAGAIN after
 * poll() said readable is what --tolerate-eagain counts.
 */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	bool polled = false;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (polled && tolerate_eagain)
			atomic_fetch_add(&eagain_seen, 1);
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		polled = true;
	}
}

/* Reads until LEN bytes or EOF; returns the count (short only at EOF) or -errno. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read_some(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return n < 0 ? n : (ssize_t)got;
		got += n;
	}
	return got;
}

/* Writes all of BUF, advancing *PROGRESS (if any) as the kernel takes bytes. */
static int write_full(int fd, const void *buf, size_t len, _Atomic uint64_t *progress)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		/* MSG_NOSIGNAL on top of SIG_IGN: a dead peer is an EPIPE we report, not a kill. */
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
		if (progress)
			atomic_fetch_add(progress, (uint64_t)n);
	}
	return 0;
}

/* ---- workers and the watchdog ----------------------------------------------------------- */

/* One thread moving one direction of one socket (or one end of rr), watched by the watchdog. */
struct worker {
	char name[32]; /* "client c2s writer": start of every message about it */
	const char *unit; /* what off counts: "offset" (bytes) or "round" (rr) */
	int fd;
	uint64_t seed;
	uint64_t total;
	size_t chunk;
	uint64_t rate;
	uint64_t corrupt_at; /* UINT64_MAX: never */
	bool reader;
	bool pause;
	int writer_fd; /* c2s reader of pair: the other end, for --reader-delay sampling */
	bool wait_s2c; /* --server-first: the c2s writer waits for s2c_verified */
	bool sets_s2c; /* --server-first: the s2c reader sets s2c_verified */
	uint64_t fnv;
	const char *_Atomic doing;
	_Atomic uint64_t off;
	pthread_t tid;
	bool started;
};

static struct {
	const struct opts *o;
	pthread_mutex_t lock; /* guards pause_ready; with cond, readers' progress at a pause */
	pthread_cond_t cond;
	bool pause_ready;
	char ready_info[2 * ADDR_LEN + 32]; /* client=A:P server=A:P, for the pause ready file */
	struct worker *w[4];
	atomic_int nw;
	const char *_Atomic phase; /* what the main thread is doing, for the watchdog */
} run = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	pthread_t tid;
	double timeout;
} wd = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * Called on the way to _exit(1). A linger time of 0 makes the exit's close send RST instead of
 * FIN, so a peer in another process (send vs. serve) fails too instead of taking the EOF for a
 * complete stream (tcp_close() resets on SO_LINGER 0).
 */
static void abort_connections(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++)
		setsockopt(run.w[i]->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void set_phase(char *buf, size_t len, const char *what, const struct sockaddr_storage *ss)
{
	char addr[ADDR_LEN];

	fmt_sa(ss, addr, sizeof(addr));
	snprintf(buf, len, "%s %s", what, addr);
	/* Each phase has its own buffer, filled before it is published: no torn reads. */
	atomic_store(&run.phase, buf);
}

static void worker_init(struct worker *w, const char *name, int fd, uint64_t seed, uint64_t total)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->unit = "offset";
	w->fd = fd;
	w->seed = seed;
	w->total = total;
	w->chunk = run.o->chunk;
	w->corrupt_at = UINT64_MAX;
	w->writer_fd = -1;
	atomic_init(&w->doing, "starting");
	atomic_init(&w->off, 0);
}

static void worker_register(struct worker *w)
{
	int n = atomic_load(&run.nw);

	run.w[n] = w;
	/* Publish only once the slot is filled: the watchdog reads up to nw. */
	atomic_store(&run.nw, n + 1);
}

static int worker_start(struct worker *w, void *(*fn)(void *))
{
	int rc;

	worker_register(w);
	rc = pthread_create(&w->tid, NULL, fn, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

static void workers_join(void)
{
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++)
		if (run.w[i]->started)
			pthread_join(run.w[i]->tid, NULL);
}

static void *watchdog_main(void *arg)
{
	char msg[2048];
	struct timespec ts;
	uint64_t deadline;
	int i, n, shown = 0, rc = 0;
	size_t pos = 0;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec + (uint64_t)(wd.timeout * 1e9);
	ts.tv_sec = deadline / 1000000000ULL;
	ts.tv_nsec = deadline % 1000000000ULL;
	pthread_mutex_lock(&wd.lock);
	while (!wd.done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&wd.cond, &wd.lock, &ts);
	if (wd.done) {
		pthread_mutex_unlock(&wd.lock);
		return NULL;
	}
	pthread_mutex_unlock(&wd.lock);

	pos += snprintf(msg, sizeof(msg), "timed out after %g s", wd.timeout);
	n = atomic_load(&run.nw);
	for (i = 0; i < n && pos < sizeof(msg); i++) {
		struct worker *w = run.w[i];
		const char *doing = atomic_load(&w->doing);

		if (!strcmp(doing, "done"))
			continue;
		pos += snprintf(msg + pos, sizeof(msg) - pos,
				"%s %s %s (%s %" PRIu64 " of %" PRIu64 ")", shown++ ? ";" : ":",
				w->name, doing, w->unit, atomic_load(&w->off), w->total);
	}
	if (!n && pos < sizeof(msg))
		snprintf(msg + pos, sizeof(msg) - pos, " while %s", atomic_load(&run.phase));
	pthread_mutex_lock(&fail_lock);
	errmsg("%s", msg);
	abort_connections();
	_exit(1);
}

static int watchdog_start(double timeout)
{
	pthread_condattr_t attr;
	int rc;

	wd.timeout = timeout;
	/* CLOCK_MONOTONIC: a wall-clock jump during a test must neither fire nor stall it. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&wd.cond, &attr);
	pthread_condattr_destroy(&attr);
	if (!rc)
		rc = pthread_create(&wd.tid, NULL, watchdog_main, NULL);
	return -rc;
}

static void watchdog_stop(void)
{
	pthread_mutex_lock(&wd.lock);
	wd.done = true;
	pthread_cond_signal(&wd.cond);
	pthread_mutex_unlock(&wd.lock);
	pthread_join(wd.tid, NULL);
}

/* When the other process failed, our error is only its echo; point the reader there. */
static const char *peer_hint(int err)
{
	return err == ECONNRESET || err == EPIPE ? " (the peer aborted: see its own error)" : "";
}

/* True once every reader has verified the pause point (called with run.lock held). */
static bool readers_at_pause(void)
{
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++) {
		struct worker *w = run.w[i];

		if (w->reader && atomic_load(&w->off) < run.o->pause_after)
			return false;
	}
	return true;
}

static void writer_pause(struct worker *w)
{
	const struct opts *o = run.o;
	struct timespec poll_ts = { .tv_nsec = RESUME_POLL_NS };
	char content[sizeof(run.ready_info) + 32];
	bool first;
	int err;

	/* Idle means idle: nothing may still be in flight when the test sees the ready file. */
	atomic_store(&w->doing, "waiting for the readers to verify the bytes before the pause");
	pthread_mutex_lock(&run.lock);
	while (!readers_at_pause())
		pthread_cond_wait(&run.cond, &run.lock);
	first = !run.pause_ready;
	run.pause_ready = true;
	pthread_mutex_unlock(&run.lock);

	if (first && o->ready_file) {
		snprintf(content, sizeof(content), "paused=%" PRIu64 " %s", o->pause_after,
			 run.ready_info);
		err = write_ready_file(o->ready_file, content);
		if (err)
			run_fail("cannot create ready file %s: %s", o->ready_file, strerror(-err));
	}
	atomic_store(&w->doing, resume_doing);
	while (access(o->resume_file, F_OK)) {
		if (errno != ENOENT)
			run_fail("cannot check resume file %s: %s", o->resume_file,
				 strerror(errno));
		nanosleep(&poll_ts, NULL);
	}
}

/* --server-first: set once the client has verified every byte the server sent. */
static atomic_bool s2c_verified;

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint64_t pause_at = w->pause ? run.o->pause_after : UINT64_MAX;
	uint64_t off = 0, h = FNV_OFFSET, rate_t0 = now_ns(), rate_base = 0;
	size_t max_write = w->chunk, len;
	uint8_t *buf;
	int err;

	buf = malloc(w->chunk);
	if (!buf)
		run_fail("%s: cannot allocate a %zu-byte buffer", w->name, w->chunk);
	if (w->rate && w->rate / RATE_HZ < max_write)
		max_write = w->rate / RATE_HZ ? w->rate / RATE_HZ : 1;
	if (w->wait_s2c) {
		atomic_store(&w->doing, "waiting for the server's bytes (--server-first)");
		while (!atomic_load(&s2c_verified))
			sleep_ns(200000);
		rate_t0 = now_ns();
	}

	for (;;) {
		if (off == pause_at) {
			writer_pause(w);
			pause_at = UINT64_MAX;
			/* Pace from the resume on; the pause must not be made up with a burst. */
			rate_t0 = now_ns();
			rate_base = off;
		}
		if (off >= w->total)
			break;
		len = MIN((uint64_t)max_write, MIN(w->total, pause_at) - off);
		atomic_store(&w->doing, "writing");
		stream_fill(w->seed, off, buf, len);
		if (w->corrupt_at >= off && w->corrupt_at - off < len)
			buf[w->corrupt_at - off] ^= 0xff;
		h = fnv1a(h, buf, len);
		err = write_full(w->fd, buf, len, &w->off);
		if (err)
			run_fail("%s: write failed at offset %" PRIu64 " of %" PRIu64 ": %s%s",
				 w->name, atomic_load(&w->off), w->total, strerror(-err),
				 peer_hint(-err));
		off += len;
		if (w->rate) {
			atomic_store(&w->doing, "pacing (--rate)");
			sleep_until_ns(rate_t0 + (uint64_t)((unsigned __int128)(off - rate_base) *
							    1000000000U / w->rate));
		}
	}
	atomic_store(&w->doing, "half-closing");
	/* The reader can only tell "all bytes" from "stalled" by the FIN this sends. */
	if (shutdown(w->fd, SHUT_WR))
		run_fail("%s: shutdown(SHUT_WR) after %" PRIu64 " bytes failed: %s", w->name, off,
			 strerror(errno));
	w->fnv = h;
	free(buf);
	atomic_store(&w->doing, "done");
	return NULL;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	size_t i;

	for (i = 0; i < len && a[i] == b[i]; i++)
		;
	return i;
}

/*
 * Peak bytes the kernel holds for one direction while its reader sleeps:
 * SO_MEMINFO of the reading socket (rmem_alloc: the TCP receive queue) and
 * of the writing one (wmem_queued: its write queue), and FIONREAD of the
 * reader, which on a socket in a sockmap counts the redirected bytes waiting
 * in its psock queue (tcp_bpf_ioctl(), kernel 6.18) and on a plain one the
 * TCP receive queue again. Printed as peak_rw (rmem + wmem_queued) and
 * peak_rwi (+ FIONREAD): a caller comparing plain TCP with loopless takes
 * peak_rw for the first and peak_rwi for the second.
 */
static _Atomic uint64_t peak_rw, peak_rwi;

static void sample_mem(int rfd, int wfd)
{
	uint32_t rm[SK_MEMINFO_VARS] = {}, wm[SK_MEMINFO_VARS] = {};
	socklen_t len = sizeof(rm);
	uint64_t rw, rwi;
	int inq = 0;

	if (getsockopt(rfd, SOL_SOCKET, SO_MEMINFO, rm, &len))
		return;
	len = sizeof(wm);
	if (getsockopt(wfd, SOL_SOCKET, SO_MEMINFO, wm, &len))
		return;
	if (ioctl(rfd, FIONREAD, &inq))
		inq = 0;
	rw = (uint64_t)rm[SK_MEMINFO_RMEM_ALLOC] + wm[SK_MEMINFO_WMEM_QUEUED];
	rwi = rw + (uint64_t)inq;
	if (rw > atomic_load(&peak_rw))
		atomic_store(&peak_rw, rw);
	if (rwi > atomic_load(&peak_rwi))
		atomic_store(&peak_rwi, rwi);
}

static void reader_delay(struct worker *w, double seconds)
{
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);

	/* A reader that looked once (look_once(), at accept()) and then
	 * stalls: one loopless redirects into, which is what the
	 * backpressure tests are about. */
	atomic_store(&w->doing, "sleeping before the first read (--reader-delay)");
	while (now_ns() < end) {
		sample_mem(w->fd, w->writer_fd);
		sleep_ns(20000000);
	}
	sample_mem(w->fd, w->writer_fd);
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	uint64_t off = 0, h = FNV_OFFSET, last_stall = 0;
	uint8_t *buf, *want;
	ssize_t n;
	size_t i;

	buf = malloc(w->chunk);
	want = malloc(w->chunk);
	if (!buf || !want)
		run_fail("%s: cannot allocate two %zu-byte buffers", w->name, w->chunk);
	if (w->writer_fd >= 0 && run.o->reader_delay > 0)
		reader_delay(w, run.o->reader_delay);
	atomic_store(&w->doing, "reading");
	while (off < w->total) {
		if (w->writer_fd >= 0 && run.o->stall_every &&
		    off / run.o->stall_every != last_stall) {
			last_stall = off / run.o->stall_every;
			sleep_ns((uint64_t)run.o->stall_ms * 1000000);
		}
		n = read_some(w->fd, buf, MIN((uint64_t)w->chunk, w->total - off));
		if (n < 0)
			run_fail("%s: read failed at offset %" PRIu64 " of %" PRIu64 ": %s%s",
				 w->name, off, w->total, strerror(-n), peer_hint(-n));
		if (!n)
			run_fail("%s: premature EOF at offset %" PRIu64 " of %" PRIu64 " (%" PRIu64
				 " bytes missing)",
				 w->name, off, w->total, w->total - off);
		stream_fill(w->seed, off, want, n);
		if (memcmp(buf, want, n)) {
			char where[128];

			i = first_diff(buf, want, n);
			whose_bytes(buf + i, (size_t)n - i, w->seed, w->total, where,
				    sizeof(where));
			run_fail("%s: data mismatch at offset %" PRIu64
				 ": expected 0x%02x got 0x%02x (seed %#" PRIx64
				 ", in a %zd-byte read starting at offset %" PRIu64 "); %s",
				 w->name, off + i, want[i], buf[i], w->seed, n, off, where);
		}
		h = fnv1a(h, buf, n);
		off += n;
		atomic_store(&w->off, off);
		if (run.o->pause_after != UINT64_MAX) {
			pthread_mutex_lock(&run.lock);
			pthread_cond_broadcast(&run.cond);
			pthread_mutex_unlock(&run.lock);
		}
	}
	if (w->sets_s2c)
		atomic_store(&s2c_verified, true);
	atomic_store(&w->doing, w->total ? "waiting for EOF after the last byte" :
					   "waiting for the peer to verify and close");
	n = read_some(w->fd, buf, w->chunk);
	if (n < 0)
		run_fail("%s: read failed while waiting for EOF after %" PRIu64 " bytes: %s%s",
			 w->name, off, strerror(-n), peer_hint(-n));
	if (n > 0)
		run_fail("%s: %zd unexpected bytes after the expected %" PRIu64
			 " instead of EOF (first 0x%02x)",
			 w->name, n, off, buf[0]);
	w->fnv = h;
	free(buf);
	free(want);
	atomic_store(&w->doing, "done");
	return NULL;
}

/* ---- result line ------------------------------------------------------------------------ */

struct out {
	char text[1024];
	char json[2048];
	size_t tl;
	size_t jl;
};

static void out_init(struct out *r)
{
	r->tl = snprintf(r->text, sizeof(r->text), "ok");
	r->jl = snprintf(r->json, sizeof(r->json), "{\"result\":\"ok\"");
}

/* Adds key=value; STR values are quoted (and escaped) in JSON, numbers are not. */
static void __attribute__((format(printf, 4, 5)))
out_add(struct out *r, const char *key, bool str, const char *fmt, ...)
{
	char val[512];
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (r->tl < sizeof(r->text))
		r->tl += snprintf(r->text + r->tl, sizeof(r->text) - r->tl, " %s=%s", key, val);
	if (r->jl < sizeof(r->json))
		r->jl += snprintf(r->json + r->jl, sizeof(r->json) - r->jl, ",\"%s\":%s", key,
				  str ? "\"" : val);
	if (!str || r->jl >= sizeof(r->json))
		return;
	for (p = val; *p && r->jl + 3 < sizeof(r->json); p++) {
		if (*p == '"' || *p == '\\')
			r->json[r->jl++] = '\\';
		r->json[r->jl++] = *p;
	}
	r->json[r->jl++] = '"';
	r->json[r->jl] = '\0';
}

static int out_print(const struct out *r, bool json)
{
	if (json)
		printf("%s}\n", r->json);
	else
		printf("%s\n", r->text);
	if (fflush(stdout)) {
		errmsg("cannot write the result to stdout: %s", strerror(errno));
		return 1;
	}
	return 0;
}

static void out_stream(struct out *r, const struct opts *o, uint64_t c2s_fnv, uint64_t s2c_fnv,
		       uint64_t elapsed, const char *client, const char *server)
{
	out_add(r, "bytes", false, "%" PRIu64, o->bytes);
	if (o->s2c_bytes != o->bytes)
		out_add(r, "s2c_bytes", false, "%" PRIu64, o->s2c_bytes);
	out_add(r, "c2s_fnv", true, "%016" PRIx64, c2s_fnv);
	if (o->duplex)
		out_add(r, "s2c_fnv", true, "%016" PRIx64, s2c_fnv);
	out_add(r, "elapsed_ms", false, "%" PRIu64, elapsed / 1000000);
	out_add(r, "mbps", false, "%.1f",
		elapsed ? (double)o->bytes * 8 * 1000 / (double)elapsed : 0.0);
	out_add(r, "client", true, "%s", client);
	out_add(r, "server", true, "%s", server);
	if (tolerate_eagain)
		out_add(r, "eagain", false, "%" PRIu64, atomic_load(&eagain_seen));
	if (o->reader_delay > 0) {
		out_add(r, "peak_rw", false, "%" PRIu64, atomic_load(&peak_rw));
		out_add(r, "peak_rwi", false, "%" PRIu64, atomic_load(&peak_rwi));
	}
}

/* ---- subcommands ------------------------------------------------------------------------ */

/* Both ends of one connection in this process, plus the client socket's view of it. */
struct conn {
	int cfd;
	int sfd;
	char client[ADDR_LEN];
	char server[ADDR_LEN];
};

/* Listen, connect, accept, and make sure the accepted socket is ours. Logs its errors. */
static int local_connect(const struct opts *o, struct conn *c,
			 int (*before_accept)(const struct opts *o, struct conn *c))
{
	static char listen_phase[ADDR_LEN + 32], connect_phase[ADDR_LEN + 32],
		accept_phase[ADDR_LEN + 32];
	struct sockaddr_storage bound, dst = o->connect_sa, local, remote, peer;
	char a[ADDR_LEN], b[ADDR_LEN];
	int lfd = -1, err;

	c->cfd = c->sfd = -1;
	set_phase(listen_phase, sizeof(listen_phase), "listening on", &o->listen_sa);
	err = listen_on(&o->listen_sa, &lfd);
	if (err) {
		fmt_sa(&o->listen_sa, a, sizeof(a));
		errmsg("cannot listen on %s: %s", a, strerror(-err));
		return err;
	}
	err = sock_addr(lfd, false, &bound);
	if (err) {
		errmsg("getsockname on the listening socket: %s", strerror(-err));
		goto out;
	}
	sa_set_port(&dst, sa_port(&bound));

	set_phase(connect_phase, sizeof(connect_phase), "connecting to", &dst);
	err = client_socket(&dst, &o->bind_sa, o->client_port, &c->cfd);
	if (err) {
		if (o->client_port)
			errmsg("cannot bind the client socket to port %u: %s", o->client_port,
			       strerror(-err));
		else
			errmsg("cannot create the client socket: %s", strerror(-err));
		goto out;
	}
	err = connect_to(c->cfd, &dst);
	if (err) {
		fmt_sa(&dst, a, sizeof(a));
		fmt_sa(&bound, b, sizeof(b));
		errmsg("cannot connect to %s (listening on %s): %s", a, b, strerror(-err));
		goto out;
	}
	if (before_accept) {
		err = before_accept(o, c);
		if (err)
			goto out;
	}
	/* The handshake is complete, so the connection waits in the backlog for accept(). */
	set_phase(accept_phase, sizeof(accept_phase), "accepting on", &bound);
	err = accept_one(lfd, &peer, &c->sfd);
	if (err) {
		errmsg("accept on the listening socket failed: %s", strerror(-err));
		goto out;
	}
	err = sock_addr(c->cfd, false, &local);
	if (!err)
		err = sock_addr(c->cfd, true, &remote);
	if (err) {
		errmsg("getsockname/getpeername on the client socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&local, c->client, sizeof(c->client));
	fmt_sa(&remote, c->server, sizeof(c->server));
	/* With a fixed --port another process could get in first; verifying its bytes would
	 * report a bogus mismatch, so say what really happened. */
	if (!sa_same_endpoint(&peer, &local)) {
		fmt_sa(&peer, a, sizeof(a));
		errmsg("accepted a connection from %s, expected our own client %s", a, c->client);
		err = -EADDRINUSE;
		goto out;
	}
out:
	close(lfd);
	if (err) {
		if (c->cfd >= 0)
			close(c->cfd);
		if (c->sfd >= 0)
			close(c->sfd);
		c->cfd = c->sfd = -1;
	}
	return err;
}

static int ready_now(const struct opts *o, const char *content)
{
	int err;

	if (!o->ready_file)
		return 0;
	err = write_ready_file(o->ready_file, content);
	if (err)
		errmsg("cannot create ready file %s: %s", o->ready_file, strerror(-err));
	return err;
}

/* The workers of pair: c2s writer, c2s reader, and with --duplex s2c writer, s2c reader. */
static struct worker pair_w[4];

static void pair_client_writer_init(const struct opts *o, int cfd)
{
	struct worker *w = &pair_w[0];

	worker_init(w, "client c2s writer", cfd, o->seed, o->bytes);
	w->corrupt_at = o->corrupt_at;
	w->rate = o->rate;
	w->pause = o->pause_after != UINT64_MAX;
	w->wait_s2c = o->server_first;
}

/* --accept-delay: the client writes from right after connect(), the server accepts late. */
static int pair_early_writer(const struct opts *o, struct conn *c)
{
	int err;

	pair_client_writer_init(o, c->cfd);
	err = worker_start(&pair_w[0], writer_main);
	if (err) {
		errmsg("cannot start the %s thread: %s", pair_w[0].name, strerror(-err));
		return err;
	}
	atomic_store(&run.phase, "sleeping before accept() (--accept-delay)");
	sleep_ns((uint64_t)o->accept_delay_ms * 1000000);
	return 0;
}

static int cmd_pair(const struct opts *o, struct out *r)
{
	struct worker *w = pair_w;
	bool early = o->accept_delay_ms > 0;
	int i, n = 1, first = early ? 1 : 0, err;
	uint64_t t0 = now_ns(), elapsed;
	struct conn c;

	if (local_connect(o, &c, early ? pair_early_writer : NULL))
		return 1;
	snprintf(run.ready_info, sizeof(run.ready_info), "client=%s server=%s\n", c.client,
		 c.server);
	if (o->pause_after == UINT64_MAX && ready_now(o, run.ready_info))
		goto fail;

	if (!early)
		pair_client_writer_init(o, c.cfd);
	worker_init(&w[n++], "server c2s reader", c.sfd, o->seed, o->bytes);
	w[1].writer_fd = c.cfd;
	if (o->duplex) {
		worker_init(&w[n++], "server s2c writer", c.sfd, o->seed + 1, o->s2c_bytes);
		worker_init(&w[n++], "client s2c reader", c.cfd, o->seed + 1, o->s2c_bytes);
		w[3].sets_s2c = o->server_first;
	}
	/* Register every worker before any starts: a pausing writer counts all readers. */
	w[1].reader = true;
	if (o->duplex)
		w[3].reader = true;
	for (i = first; i < n; i++) {
		w[i].rate = w[i].reader ? 0 : o->rate;
		w[i].pause = o->pause_after != UINT64_MAX;
		worker_register(&w[i]);
	}
	if (!early)
		t0 = now_ns();
	for (i = first; i < n; i++) {
		err = -pthread_create(&w[i].tid, NULL, w[i].reader ? reader_main : writer_main,
				      &w[i]);
		if (err) {
			errmsg("cannot start the %s thread: %s", w[i].name, strerror(-err));
			goto fail;
		}
		w[i].started = true;
	}
	workers_join();
	elapsed = now_ns() - t0;
	close(c.cfd);
	close(c.sfd);

	/* Readers verified every byte, so a difference here would be a bug in lltraffic. */
	for (i = 0; i + 1 < n; i += 2) {
		if (w[i].fnv != w[i + 1].fnv) {
			errmsg("%s checksum %016" PRIx64 " differs from %s checksum %016" PRIx64,
			       w[i].name, w[i].fnv, w[i + 1].name, w[i + 1].fnv);
			return 1;
		}
	}
	out_stream(r, o, w[1].fnv, o->duplex ? w[3].fnv : 0, elapsed, c.client, c.server);
	return 0;
fail:
	close(c.cfd);
	close(c.sfd);
	return 1;
}

/* serve and send with --size/--count: the two ends of rr, defined with it below. */
static int rr_server_start(const struct opts *o, int fd, struct worker *srv);
static int rr_client(const struct opts *o, int fd, struct out *r, const char *client,
		     const char *server);

static int cmd_serve(const struct opts *o, struct out *r)
{
	static char listen_phase[ADDR_LEN + 64];
	struct sockaddr_storage bound, local, peer;
	char laddr[ADDR_LEN], client[ADDR_LEN], server[ADDR_LEN], content[ADDR_LEN + 16];
	struct worker rd, wr;
	uint64_t t0, elapsed;
	int lfd, fd = -1, err;

	err = listen_on(&o->listen_sa, &lfd);
	if (err) {
		fmt_sa(&o->listen_sa, laddr, sizeof(laddr));
		errmsg("cannot listen on %s: %s", laddr, strerror(-err));
		return 1;
	}
	err = sock_addr(lfd, false, &bound);
	if (err) {
		errmsg("getsockname on the listening socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&bound, laddr, sizeof(laddr));
	set_phase(listen_phase, sizeof(listen_phase), "waiting for a connection on", &bound);
	snprintf(content, sizeof(content), "listen=%s\n", laddr);
	err = ready_now(o, content);
	if (err)
		goto out;
	err = accept_one(lfd, &peer, &fd);
	if (err) {
		errmsg("accept on %s failed: %s", laddr, strerror(-err));
		goto out;
	}
	/* One connection only: a second client must be refused, not silently queued. */
	close(lfd);
	lfd = -1;
	err = sock_addr(fd, false, &local);
	if (err) {
		errmsg("getsockname on the accepted socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&peer, client, sizeof(client));
	fmt_sa(&local, server, sizeof(server));

	t0 = now_ns();
	if (o->rr) {
		err = rr_server_start(o, fd, &rd);
		if (err)
			goto out;
		workers_join();
		out_add(r, "count", false, "%" PRIu64, o->count);
		out_add(r, "size", false, "%" PRIu64, o->size);
		out_add(r, "elapsed_ms", false, "%" PRIu64, (now_ns() - t0) / 1000000);
		out_add(r, "client", true, "%s", client);
		out_add(r, "server", true, "%s", server);
		goto out;
	}
	worker_init(&rd, "server c2s reader", fd, o->seed, o->bytes);
	rd.reader = true;
	err = worker_start(&rd, reader_main);
	if (!err && o->duplex) {
		worker_init(&wr, "server s2c writer", fd, o->seed + 1, o->bytes);
		wr.rate = o->rate;
		wr.corrupt_at = o->corrupt_at;
		err = worker_start(&wr, writer_main);
	}
	if (err) {
		errmsg("cannot start a worker thread: %s", strerror(-err));
		goto out;
	}
	workers_join();
	elapsed = now_ns() - t0;
	out_stream(r, o, rd.fnv, o->duplex ? wr.fnv : 0, elapsed, client, server);
out:
	/* Without --duplex the client waits for this close to learn that all was verified. */
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	return err ? 1 : 0;
}

static int cmd_send(const struct opts *o, struct out *r)
{
	static char connect_phase[ADDR_LEN + 32];
	struct sockaddr_storage local, remote;
	char client[ADDR_LEN], server[ADDR_LEN], content[2 * ADDR_LEN + 32];
	struct worker wr, rd;
	uint64_t t0, elapsed;
	int fd = -1, err;

	set_phase(connect_phase, sizeof(connect_phase), "connecting to", &o->connect_sa);
	err = client_socket(&o->connect_sa, &o->bind_sa, o->client_port, &fd);
	if (err) {
		if (o->client_port)
			errmsg("cannot bind the client socket to port %u: %s", o->client_port,
			       strerror(-err));
		else
			errmsg("cannot create the client socket: %s", strerror(-err));
		return 1;
	}
	t0 = now_ns();
	err = connect_to(fd, &o->connect_sa);
	if (err) {
		fmt_sa(&o->connect_sa, server, sizeof(server));
		errmsg("cannot connect to %s: %s", server, strerror(-err));
		goto out;
	}
	err = sock_addr(fd, false, &local);
	if (!err)
		err = sock_addr(fd, true, &remote);
	if (err) {
		errmsg("getsockname/getpeername on the client socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&local, client, sizeof(client));
	fmt_sa(&remote, server, sizeof(server));
	snprintf(content, sizeof(content), "client=%s server=%s\n", client, server);
	err = ready_now(o, content);
	if (err)
		goto out;
	if (o->rr) {
		err = rr_client(o, fd, r, client, server);
		goto out;
	}

	worker_init(&wr, "client c2s writer", fd, o->seed, o->bytes);
	wr.rate = o->rate;
	wr.corrupt_at = o->corrupt_at;
	/* Without --duplex this reader expects 0 bytes then the EOF of serve's close. */
	worker_init(&rd, "client s2c reader", fd, o->seed + 1, o->duplex ? o->bytes : 0);
	rd.reader = true;
	err = worker_start(&wr, writer_main);
	if (!err)
		err = worker_start(&rd, reader_main);
	if (err) {
		errmsg("cannot start a worker thread: %s", strerror(-err));
		goto out;
	}
	workers_join();
	elapsed = now_ns() - t0;
	out_stream(r, o, wr.fnv, rd.fnv, elapsed, client, server);
out:
	close(fd);
	return err ? 1 : 0;
}

static void *rr_server_main(void *arg)
{
	struct worker *w = arg;
	size_t size = w->chunk, i;
	uint8_t *buf, *want;
	uint64_t round;
	ssize_t n;
	int err;

	buf = malloc(size);
	want = malloc(size);
	if (!buf || !want)
		run_fail("%s: cannot allocate two %zu-byte buffers", w->name, size);
	for (round = 0; round < w->total; round++) {
		atomic_store(&w->doing, "reading a request");
		n = read_full(w->fd, buf, size);
		if (n < 0)
			run_fail("%s: read failed in round %" PRIu64 ": %s", w->name, round,
				 strerror(-n));
		if ((size_t)n < size)
			run_fail("%s: premature EOF in round %" PRIu64 " after %zd of %zu bytes",
				 w->name, round, n, size);
		stream_fill(w->seed, round * size, want, size);
		if (memcmp(buf, want, size)) {
			i = first_diff(buf, want, size);
			run_fail("%s: request mismatch in round %" PRIu64 " at offset %" PRIu64
				 ": expected 0x%02x got 0x%02x",
				 w->name, round, round * size + i, want[i], buf[i]);
		}
		atomic_store(&w->doing, "writing the echo");
		err = write_full(w->fd, buf, size, NULL);
		if (err)
			run_fail("%s: write failed in round %" PRIu64 ": %s", w->name, round,
				 strerror(-err));
		atomic_store(&w->off, round + 1);
	}
	atomic_store(&w->doing, "waiting for EOF after the last request");
	n = read_some(w->fd, buf, size);
	if (n != 0)
		run_fail("%s: expected EOF after %" PRIu64 " rounds, got %s", w->name, w->total,
			 n < 0 ? strerror(-n) : "more data");
	if (shutdown(w->fd, SHUT_WR))
		run_fail("%s: shutdown(SHUT_WR) failed: %s", w->name, strerror(errno));
	free(buf);
	free(want);
	atomic_store(&w->doing, "done");
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const uint64_t *v, uint64_t n, unsigned int pct)
{
	uint64_t rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0] / 1000.0;
}

/* Without TCP_NODELAY, Nagle + delayed ACK would measure timers, not the data path. */
static int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		int err = -errno;

		errmsg("cannot set TCP_NODELAY: %s", strerror(-err));
		return err;
	}
	return 0;
}

/*
 * The client end of request/response on FD (rr, send --size): --count rounds of --size
 * bytes, every echoed byte checked, then half-close and wait for the server's EOF. Adds the
 * result fields to R. Returns 0, or 1 after printing why; an I/O error or a wrong byte ends
 * the run (run_fail).
 */
static int rr_client(const struct opts *o, int fd, struct out *r, const char *client,
		     const char *server)
{
	static struct worker cli;
	uint64_t *lat = NULL, round, t0, t, elapsed;
	uint8_t *req = NULL, *resp = NULL;
	size_t size = o->size, i;
	int ret = 1, err;
	ssize_t n;

	if (set_nodelay(fd))
		return 1;
	lat = calloc(o->count, sizeof(*lat));
	req = malloc(size);
	resp = malloc(size);
	if (!lat || !req || !resp) {
		errmsg("cannot allocate buffers for %" PRIu64 " rounds of %zu bytes", o->count,
		       size);
		goto out;
	}
	worker_init(&cli, "client rr", fd, o->seed, o->count);
	cli.unit = "round";
	worker_register(&cli);

	t0 = now_ns();
	for (round = 0; round < o->count; round++) {
		stream_fill(o->seed, round * size, req, size);
		if (o->corrupt_at >= round * size && o->corrupt_at - round * size < size)
			req[o->corrupt_at - round * size] ^= 0xff;
		atomic_store(&cli.doing, "writing a request");
		t = now_ns();
		err = write_full(fd, req, size, NULL);
		if (err)
			run_fail("client rr: write failed in round %" PRIu64 ": %s%s", round,
				 strerror(-err), peer_hint(-err));
		atomic_store(&cli.doing, "reading the echo");
		n = read_full(fd, resp, size);
		if (n < 0)
			run_fail("client rr: read failed in round %" PRIu64 ": %s%s", round,
				 strerror(-n), peer_hint(-n));
		if ((size_t)n < size)
			run_fail("client rr: premature EOF in round %" PRIu64
				 " after %zd of %zu echoed bytes",
				 round, n, size);
		lat[round] = now_ns() - t;
		if (memcmp(req, resp, size)) {
			i = first_diff(resp, req, size);
			run_fail("client rr: echo mismatch in round %" PRIu64 " at offset %" PRIu64
				 ": expected 0x%02x got 0x%02x",
				 round, round * size + i, req[i], resp[i]);
		}
		atomic_store(&cli.off, round + 1);
	}
	if (shutdown(fd, SHUT_WR))
		run_fail("client rr: shutdown(SHUT_WR) failed: %s", strerror(errno));
	atomic_store(&cli.doing, "waiting for EOF after the last echo");
	n = read_some(fd, resp, size);
	if (n != 0)
		run_fail("client rr: expected EOF after the last echo, got %s",
			 n < 0 ? strerror(-n) : "more data");
	atomic_store(&cli.doing, "done");
	/* rr: the server thread of this process; send: none. */
	workers_join();
	elapsed = now_ns() - t0;

	qsort(lat, o->count, sizeof(*lat), cmp_u64);
	out_add(r, "count", false, "%" PRIu64, o->count);
	out_add(r, "size", false, "%zu", size);
	out_add(r, "p50_us", false, "%.1f", pct_us(lat, o->count, 50));
	out_add(r, "p99_us", false, "%.1f", pct_us(lat, o->count, 99));
	out_add(r, "max_us", false, "%.1f", lat[o->count - 1] / 1000.0);
	out_add(r, "elapsed_ms", false, "%" PRIu64, elapsed / 1000000);
	out_add(r, "client", true, "%s", client);
	out_add(r, "server", true, "%s", server);
	ret = 0;
out:
	free(lat);
	free(req);
	free(resp);
	return ret;
}

/* The echoing end of request/response on FD, in a worker thread like rr's server. */
static int rr_server_start(const struct opts *o, int fd, struct worker *srv)
{
	int err;

	if (set_nodelay(fd))
		return -EINVAL;
	worker_init(srv, "server rr", fd, o->seed, o->count);
	srv->unit = "round";
	srv->chunk = o->size;
	err = worker_start(srv, rr_server_main);
	if (err)
		errmsg("cannot start the server thread: %s", strerror(-err));
	return err;
}

static int cmd_rr(const struct opts *o, struct out *r)
{
	struct worker srv;
	int ret = 1;
	struct conn c;

	if (local_connect(o, &c, NULL))
		return 1;
	if (!rr_server_start(o, c.sfd, &srv))
		ret = rr_client(o, c.cfd, r, c.client, c.server);
	close(c.cfd);
	close(c.sfd);
	return ret;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.chunk = DEFAULT_CHUNK,
		.seed = DEFAULT_SEED,
		.timeout = DEFAULT_TIMEOUT,
		.corrupt_at = UINT64_MAX,
	};
	struct out r;
	bool done;
	size_t i;
	int ret;

	if (argc < 2)
		return usage_error("missing subcommand (pair, hold, serve, send or rr)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		print_help();
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf(PROG " %s\n", LOOPLESS_VERSION);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(cmd_names); i++)
		if (!strcmp(argv[1], cmd_names[i]))
			break;
	if (i == ARRAY_SIZE(cmd_names))
		return usage_error("unknown subcommand '%s' (pair, hold, serve, send or rr)",
				   argv[1]);
	o.cmd = i;
	if (o.cmd == CMD_HOLD)
		o.bytes = HOLD_DEFAULT_BYTES;
	/* argv[1] (the subcommand) takes the place of argv[0] for getopt_long(). */
	ret = parse_opts(argc - 1, argv + 1, &o, &done);
	if (ret || done)
		return ret;

	/* A peer that vanishes must surface as EPIPE with context, not kill us silently. */
	signal(SIGPIPE, SIG_IGN);
	run.o = &o;
	atomic_init(&run.nw, 0);
	atomic_init(&run.phase, "starting");
	if (watchdog_start(o.timeout)) {
		errmsg("cannot start the watchdog thread");
		return 1;
	}
	out_init(&r);
	switch (o.cmd) {
	case CMD_PAIR:
	case CMD_HOLD:
		ret = cmd_pair(&o, &r);
		break;
	case CMD_SERVE:
		ret = cmd_serve(&o, &r);
		break;
	case CMD_SEND:
		ret = cmd_send(&o, &r);
		break;
	case CMD_RR:
		ret = cmd_rr(&o, &r);
		break;
	}
	/* Stop the watchdog before printing: "ok" must never be followed by a timeout exit. */
	watchdog_stop();
	return ret ? ret : out_print(&r, o.json);
}
