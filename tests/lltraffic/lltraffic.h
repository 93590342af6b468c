/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * lltraffic: traffic generator and byte-exact verifier for the loopless integration tests.
 *
 * loopless moves bytes between local TCP sockets with sockmap redirection, bypassing the TCP
 * stack. A test passes only if every byte sent arrives once, in order, on the right connection,
 * followed by EOF. Each direction of a connection therefore carries a deterministic
 * pseudo-random stream, stream(seed) of tests/lib/stream.h, checked at every offset. Both ends
 * also keep a 64-bit FNV-1a of each direction so separate processes (serve and send) can be
 * compared by the caller.
 *
 * Only addresses given on the command line are ever used; nothing is hard-coded.
 *
 * The parts: main.c (the subcommand and the run), opts.c (options and --help), sock.c (the
 * sockets), worker.c (the threads moving one direction each, and the watchdog), streams.c
 * (pair, hold, serve, send), rr.c (request/response), report.c (the result line).
 */
#ifndef LOOPLESS_LLTRAFFIC_H
#define LOOPLESS_LLTRAFFIC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

enum cmd {
	CMD_PAIR,
	CMD_HOLD,
	CMD_SERVE,
	CMD_SEND,
	CMD_RR,
};

extern const char *const cmd_names[];

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
	bool greet; /* pair/hold: a byte each way before the stream */
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

/*
 * --tolerate-eagain: report the EAGAINs a read got after poll() said readable (io_eagain of
 * tests/lib/io.h: a blocking recv() on a socket in a sockmap can get them, see
 * tcp_bpf_recvmsg) as "eagain=N".
 */
extern bool tolerate_eagain;

/* --rcvbuf: SO_RCVBUF of every socket pair creates (0: the kernel's default). */
extern int rcvbuf_opt;

/* What a writer paused for --resume-file is doing, for the watchdog. */
extern char resume_doing[];

void print_help(void);
/* Returns 0 to go on, or an exit code: 0 after --help/--version (*done), 2 after a usage error. */
int parse_opts(int argc, char **argv, struct opts *o, bool *done);

/* ---- sockets (sock.c) ---- */

/* Both ends of one connection in this process, plus the client socket's view of it. */
struct conn {
	int cfd;
	int sfd;
	char client[ADDR_LEN];
	char server[ADDR_LEN];
};

int listen_on(const struct sockaddr_storage *ss, int *out);
/* The client socket to @dst, bound to --bind and --client-port if given. Logs its errors. */
int client_socket(const struct opts *o, const struct sockaddr_storage *dst, int *out);
int connect_to(int fd, const struct sockaddr_storage *dst);
int accept_one(int lfd, struct sockaddr_storage *peer, int *out);
int sock_addr(int fd, bool peer, struct sockaddr_storage *ss);
/* Listen, connect, accept, and make sure the accepted socket is ours. Logs its errors. */
int local_connect(const struct opts *o, struct conn *c,
		  int (*before_accept)(const struct opts *o, struct conn *c));
int ready_now(const struct opts *o, const char *content);

/* ---- workers and the watchdog (worker.c) ---- */

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

extern struct run {
	const struct opts *o;
	pthread_mutex_t lock; /* guards pause_ready; with cond, readers' progress at a pause */
	pthread_cond_t cond;
	bool pause_ready;
	char ready_info[2 * ADDR_LEN + 32]; /* client=A:P server=A:P, for the pause ready file */
	struct worker *w[4];
	atomic_int nw;
	const char *_Atomic phase; /* what the main thread is doing, for the watchdog */
} run;

/* Peak bytes the kernel held for the c2s direction while its reader slept (--reader-delay). */
extern _Atomic uint64_t peak_rw, peak_rwi;

void abort_connections(void);
void set_phase(char *buf, size_t len, const char *what, const struct sockaddr_storage *ss);
void worker_init(struct worker *w, const char *name, int fd, uint64_t seed, uint64_t total);
void worker_register(struct worker *w);
int worker_start(struct worker *w, void *(*fn)(void *));
void workers_join(void);
int watchdog_start(double timeout);
void watchdog_stop(void);
/* When the other process failed, our error is only its echo; point the reader there. */
const char *peer_hint(int err);
void *writer_main(void *arg);
void *reader_main(void *arg);

/* ---- the result line (report.c) ---- */

struct out {
	char text[1024];
	char json[2048];
	size_t tl;
	size_t jl;
};

void out_init(struct out *r);
/* Adds key=value; STR values are quoted (and escaped) in JSON, numbers are not. */
void out_add(struct out *r, const char *key, bool str, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int out_print(const struct out *r, bool json);
void out_stream(struct out *r, const struct opts *o, uint64_t c2s_fnv, uint64_t s2c_fnv,
		uint64_t elapsed, const char *client, const char *server);

/* ---- subcommands (streams.c, rr.c) ---- */

int cmd_pair(const struct opts *o, struct out *r);
int cmd_serve(const struct opts *o, struct out *r);
int cmd_send(const struct opts *o, struct out *r);
int cmd_rr(const struct opts *o, struct out *r);
/* serve and send with --size/--count: the two ends of rr. */
int rr_server_start(const struct opts *o, int fd, struct worker *srv);
int rr_client(const struct opts *o, int fd, struct out *r, const char *client, const char *server);

#endif
