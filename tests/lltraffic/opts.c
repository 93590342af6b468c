// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* lltraffic's options: what each subcommand accepts, their values, and --help. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"
#include "lib/fail.h"
#include "lib/number.h"
#include "lltraffic.h"

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

/* --timeout and --reader-delay: at most an hour. */
#define MAX_SECONDS 3600

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
	OPT_GREET,
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
	{ "greet", no_argument, NULL, OPT_GREET },
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
		     OB(OPT_S2C_BYTES) | OB(OPT_RCVBUF) | OB(OPT_GREET),
	[CMD_HOLD] =
		COMMON_OPTS | STREAM_OPTS | LOCAL_PAIR_OPTS | OB(OPT_RESUME_FILE) | OB(OPT_GREET),
	[CMD_SERVE] = COMMON_OPTS | STREAM_OPTS | RR_OPTS | OB(OPT_LISTEN) | OB(OPT_PORT),
	[CMD_SEND] = COMMON_OPTS | STREAM_OPTS | RR_OPTS | OB(OPT_CONNECT) | OB(OPT_PORT) |
		     OB(OPT_CLIENT_PORT) | OB(OPT_BIND),
	[CMD_RR] =
		COMMON_OPTS | LOCAL_PAIR_OPTS | OB(OPT_SIZE) | OB(OPT_COUNT) | OB(OPT_CORRUPT_AT),
};

bool tolerate_eagain;
int rcvbuf_opt;

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
	"  --greet               pair/hold: one byte each way, read back, before the stream (a\n"
	"                        connection's first exchange: loopless redirects into a reader\n"
	"                        only once it took bytes with recvmsg).\n"
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

static const char *opt_name(int id)
{
	const struct option *o;

	for (o = long_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* Seeds and ports: unsigned decimal or 0x-hex. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull() accepts "-1" and leading blanks; a number must start with a digit. */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* An IP literal, optionally in brackets ("[::1]"). */
static int parse_ip(const char *s, struct sockaddr_storage *ss)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
		return sa_parse(s + 1, n - 2, NULL, ss);
	return sa_parse(s, n, NULL, ss);
}

static int parse_size_opt(int id, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	if (parse_size(arg, out))
		return usage_error("invalid --%s '%s': expected " SIZE_GRAMMAR, opt_name(id), arg);
	if (*out < min || *out > max)
		return usage_error("--%s %s is out of range (%" PRIu64 "..%" PRIu64 ")",
				   opt_name(id), arg, min, max);
	return 0;
}

static int parse_port_opt(int id, const char *arg, unsigned int min, unsigned int *out)
{
	uint64_t v;

	if (parse_u64(arg, &v) || v < min || v > 65535)
		return usage_error("invalid --%s '%s': expected a port number %u..65535",
				   opt_name(id), arg, min);
	*out = v;
	return 0;
}

char resume_doing[PATH_MAX + 64];

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
	if (o->accept_delay_ms && o->greet)
		return usage_error(
			"--accept-delay does not go with --greet (nothing to greet yet)");
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

void print_help(void)
{
	fputs(help_text, stdout);
}

/* Returns 0 to go on, or an exit code: 0 after --help/--version, 2 after a usage error. */
int parse_opts(int argc, char **argv, struct opts *o, bool *done)
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
				printf("%s %s\n", prog_name, LOOPLESS_VERSION);
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
			if (parse_u64(optarg, &o->seed))
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
			if (parse_seconds(optarg, MAX_SECONDS, &o->timeout) || !(o->timeout > 0) ||
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
			if (parse_seconds(optarg, MAX_SECONDS, &o->reader_delay))
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
		case OPT_GREET:
			o->greet = true;
			break;
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return check_opts(o);
}
