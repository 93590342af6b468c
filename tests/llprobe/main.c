// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* llprobe's main: the checks, the options, and the one connection the check runs on. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fail.h"
#include "lib/number.h"
#include "llprobe.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define PROG "llprobe"

const char prog_name[] = PROG;

static const struct {
	const char *name;
	int (*fn)(struct pair *p);
	const char *what;
} checks[] = {
	{ "poll", c_poll, "poll() wakes a reader blocked on an empty socket (200 rounds)" },
	{ "select", c_select, "select() the same" },
	{ "epoll-lt", c_epoll_lt, "level-triggered epoll the same" },
	{ "epoll-et", c_epoll_et, "edge-triggered epoll, reading until EAGAIN" },
	{ "epoll-et-rearm", check_epoll_et_rearm, "ET: a new write while unread is a new edge" },
	{ "blocking", c_blocking, "a blocking recv() wakes for each message" },
	{ "waitall", c_waitall, "recv(MSG_WAITALL) gathers a message written in 4 pieces" },
	{ "fionread-peek", check_fionread_peek, "FIONREAD and MSG_PEEK over 3 queued writes" },
	{ "rcvlowat", check_rcvlowat, "SO_RCVLOWAT 2000 with 1000 bytes queued" },
	{ "reset-writer", check_reset_writer, "writer resets (SO_LINGER 0) after 1 MiB" },
	{ "reset-reader", c_reset_reader, "reader resets mid-stream: writer gets an error" },
	{ "close-reader", c_close_reader, "reader closes mid-stream: writer gets an error" },
	{ "close-writer", check_close_writer, "writer close()s after a burst: all bytes, EOF" },
	{ "sendfile", c_sendfile, "sendfile() from a memfd" },
	{ "splice-write", c_splice_write, "splice() pipe -> socket" },
	{ "splice-read", check_splice_read, "splice() socket -> pipe on the reading side" },
	{ "writev", c_writev, "writev() with up to IOV_MAX iovecs of 0-2048 bytes" },
	{ "zerocopy", check_zerocopy,
	  "send(MSG_ZEROCOPY) with SO_ZEROCOPY set after connect (copies if it is refused)" },
	{ "zerocopy-early", check_zerocopy,
	  "the same with SO_ZEROCOPY set before connect() and on the listener" },
	{ "stream", c_stream, "a plain stream (with --mptcp: an MPTCP connection)" },
	{ "blocking-sigalrm", check_blocking_sigalrm,
	  "a blocking reader under a 1 ms SIGALRM timer: recv() errors by errno" },
	{ "splice-after-header", check_splice_after_header,
	  "recv() a 64-byte header (non-blocking), then splice() the rest" },
	{ "splice-after-eagain", check_splice_after_eagain,
	  "recv() once before any byte came (EAGAIN), then splice() everything (HAProxy)" },
	{ "splice-after-peek", check_splice_after_peek,
	  "recv(MSG_PEEK) a 64-byte header, then splice() everything" },
	{ "splice-after-bulk", check_splice_after_bulk,
	  "recv() before any byte (EAGAIN), recv() the first MiB, then splice() the rest" },
	{ "waitall-stream", check_waitall_stream,
	  "recv(MSG_WAITALL) of 64 KiB messages written in pieces: short reads" },
	{ "rcvlowat-stream", check_rcvlowat_stream,
	  "SO_RCVLOWAT 64 KiB, poll + recv: reads below it before EOF" },
	{ "nonblock-then-blocking", check_nonblock_then_blocking,
	  "epoll + non-blocking reads for 8 MiB, then fcntl() to blocking for the rest" },
	{ "epoll-et-nginx", check_epoll_et_nginx,
	  "edge-triggered epoll, drained at a short read or FIONREAD 0 (nginx)" },
	{ "rr-blocking-client", c_rr_blocking_client,
	  "--count blocking request/responses of --size against an epoll server" },
	{ "rr-poll-client", c_rr_poll_client, "the same, poll() for POLLIN before each recv()" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: " PROG
		" CHECK [--connect ADDR] [--port P] [--bytes N] [--mptcp] [--timeout SEC]\n"
		"       [--reader server|client] [--sigalrm] [--no-restart] [--count K] [--size N]\n"
		"       " PROG " --list | --help\n\n"
		"One local TCP connection to itself (listen on ADDR, default 127.0.0.1, port P,\n"
		"default any; connect, accept), one check on it, every byte verified. Prints\n"
		"\"ok CHECK key=value...\" (exit 0), \"limit CHECK reason\" when the kernel cannot\n"
		"do it on this socket (exit 3), or an error on stderr (exit 1; 2: usage).\n\n"
		"Checks:\n");
	for (i = 0; i < ARRAY_SIZE(checks); i++)
		fprintf(f, "  %-22s %s\n", checks[i].name, checks[i].what);
	fprintf(f,
		"\nReader checks (blocking-sigalrm .. rr-poll-client, splice-read):\n"
		"  --reader END   the end whose reading is tested: server (the accepted socket,\n"
		"                 default for streams) or client (the connecting one, default for\n"
		"                 rr-*); the other end is driven from a thread\n"
		"  --sigalrm      a 1 ms ITIMER_REAL, SIGALRM handler with SA_RESTART, delivered to\n"
		"                 the reader only (blocking-sigalrm: always)\n"
		"  --no-restart   the handler without SA_RESTART; the reader retries EINTR\n"
		"  --count K, --size N   rr-*: K round trips of N bytes (10000, 64; N <= 64K)\n"
		"  They count every recv() error by errno (eintr=, eagain=: a blocking socket retries\n"
		"  both) and what the reading style promises: short_reads= (MSG_WAITALL, SO_RCVLOWAT),\n"
		"  empty_wakeups= (readable by poll(), nothing to read).\n"
		"\nEXAMPLES\n  " PROG " epoll-et\n  " PROG " splice-read --bytes 16M\n"
		"  " PROG " stream --mptcp\n"
		"  " PROG " blocking-sigalrm --bytes 256M --reader client --no-restart\n"
		"  " PROG " rr-poll-client --count 10000 --size 64\n");
}

/* --bytes, --count, --size: the size grammar of every tool, from MIN to MAX. 0, or 2. */
static int size_arg(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	if (parse_size(arg, out)) {
		errmsg("invalid %s '%s': expected " SIZE_GRAMMAR, opt, arg);
		return 2;
	}
	if (*out < min || *out > max) {
		errmsg("%s %s is out of range (%" PRIu64 "..%" PRIu64 ")", opt, arg, min, max);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *connect_to = "127.0.0.1";
	uint64_t v;
	struct pair p;
	pthread_t wd;
	size_t i;
	int a;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--list")) {
		for (i = 0; i < ARRAY_SIZE(checks); i++)
			printf("%s\n", checks[i].name);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(checks); i++)
		if (!strcmp(argv[1], checks[i].name))
			break;
	if (i == ARRAY_SIZE(checks)) {
		errmsg("unknown check '%s' (--list)", argv[1]);
		return 2;
	}
	check_name = checks[i].name;
	fail_what = check_name;
	zc_early = !strcmp(check_name, "zerocopy-early");
	for (a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--mptcp")) {
			proto = IPPROTO_MPTCP;
		} else if (!strcmp(argv[a], "--connect") && a + 1 < argc) {
			connect_to = argv[++a];
		} else if (!strcmp(argv[a], "--bytes") && a + 1 < argc) {
			if (size_arg("--bytes", argv[++a], 1, UINT64_MAX, &total_bytes))
				return 2;
		} else if (!strcmp(argv[a], "--port") && a + 1 < argc) {
			port = atoi(argv[++a]);
			if (port <= 0 || port > 65535) {
				errmsg("bad --port");
				return 2;
			}
		} else if (!strcmp(argv[a], "--timeout") && a + 1 < argc) {
			timeout_s = atoi(argv[++a]);
		} else if (!strcmp(argv[a], "--reader") && a + 1 < argc) {
			a++;
			if (!strcmp(argv[a], "server")) {
				reader_end = R_SERVER;
			} else if (!strcmp(argv[a], "client")) {
				reader_end = R_CLIENT, client_reads = true;
			} else {
				errmsg("bad --reader (server, client)");
				return 2;
			}
		} else if (!strcmp(argv[a], "--sigalrm")) {
			use_sigalrm = true;
		} else if (!strcmp(argv[a], "--no-restart")) {
			sa_restart = false;
		} else if (!strcmp(argv[a], "--count") && a + 1 < argc) {
			if (size_arg("--count", argv[++a], 1, UINT64_MAX, &rr_count))
				return 2;
		} else if (!strcmp(argv[a], "--size") && a + 1 < argc) {
			if (size_arg("--size", argv[++a], 1, MAX_MSG, &v))
				return 2;
			rr_size = v;
		} else {
			errmsg("unexpected argument '%s'", argv[a]);
			return 2;
		}
	}
	use_v6 = strchr(connect_to, ':');
	addr6.sin6_family = AF_INET6;
	addr4.sin_family = AF_INET;
	addr6.sin6_port = addr4.sin_port = htons(port);
	if (use_v6 ? inet_pton(AF_INET6, connect_to, &addr6.sin6_addr) != 1 :
		     inet_pton(AF_INET, connect_to, &addr4.sin_addr) != 1) {
		errmsg("--connect '%s' is not an IP literal", connect_to);
		return 2;
	}
	if (!strcmp(check_name, "blocking-sigalrm"))
		use_sigalrm = true;
	if (!sa_restart && !use_sigalrm) {
		errmsg("--no-restart needs --sigalrm");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Only the reader unblocks SIGALRM (alarm_start): every thread inherits this mask. */
	alarm_mask(SIG_BLOCK);
	if (pthread_create(&wd, NULL, watchdog, NULL))
		fail("pthread_create");
	pair_open(&p);
	return checks[i].fn(&p);
}
