/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * llprobe: socket API semantics on one local TCP connection, checked byte for byte.
 *
 * lltraffic moves streams; llprobe asks the questions a sockmap changes the answer to: is a
 * reader blocked in poll/select/epoll woken for redirected bytes, what do FIONREAD, MSG_PEEK,
 * SO_RCVLOWAT and MSG_WAITALL see, what does a peer's reset look like, do sendfile, splice,
 * writev and MSG_ZEROCOPY carry every byte, and what real readers see (blocking readers under
 * signals, MSG_WAITALL, SO_RCVLOWAT, splice after recv, nginx's edge-triggered rule, blocking
 * request/response clients; tests/readers.sh). Each run creates one connection to itself
 * (listen, connect, accept: inside loopless's cgroup when started there) and runs one check.
 *
 * Every byte is byte i of stream(seed) (tests/lib/stream.h, as in lltraffic), verified at its
 * offset. Output: one line "ok CHECK key=value..." (exit 0); a failure is one line on stderr
 * starting with "llprobe: CHECK:" (exit 1); a check the kernel cannot do on this socket is one
 * line "limit CHECK reason..." (exit 3). A watchdog (--timeout) turns a hang into a failure
 * that says where it hung.
 *
 * The parts: main.c (options, the checks' table), conn.c (the connection, its streams, the
 * sending thread), wake.c (wake-ups, FIONREAD, MSG_PEEK, SO_RCVLOWAT), send.c (resets, closes,
 * sendfile, splice, writev, MSG_ZEROCOPY), readers.c (what real readers see).
 */
#ifndef LOOPLESS_LLPROBE_H
#define LOOPLESS_LLPROBE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/clock.h"

#define ROUNDS 200
#define MAX_MSG 65536
#define WAKE_TIMEOUT_MS 3000
#define EXIT_LIMIT 3
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the run (conn.c) ---- */

extern const char *check_name;
extern const char *_Atomic phase;
extern struct sockaddr_in6 addr6;
extern struct sockaddr_in addr4;
extern bool use_v6;
extern int port; /* --port: the listener's, 0 for any */
extern bool zc_early; /* zerocopy-early: SO_ZEROCOPY on before connect() and listen() */
extern int proto; /* 0, or IPPROTO_MPTCP */
extern uint64_t total_bytes;
extern unsigned int timeout_s;
/* --reader client: the connecting socket is the one whose reading is tested. */
extern bool client_reads;

/* "limit CHECK reason" on stdout, exit 3: the kernel cannot do the check on this socket. */
void limit(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static inline void sleep_us(unsigned int us)
{
	sleep_ns((uint64_t)us * NSEC_PER_USEC);
}

void *watchdog(void *arg);

/* ---- the connection and its streams (conn.c) ---- */

struct pair {
	int cfd; /* client end: writes c2s */
	int sfd; /* accepted end: reads c2s */
};

void pair_open(struct pair *p);
/* The c2s reader looks (EAGAIN), then takes one byte (written, then read with recv()),
 * before a check of redirected bytes: loopless redirects into a reader only once it has
 * taken bytes with recvmsg (one that only looked may splice), so the first bytes take TCP. */
void take_first(struct pair *p);
/* The same for the reader @rfd of the writer @wfd (either direction). */
void take_first_from(int wfd, int rfd);
/* Verifies BUF as bytes [off, off + len) of stream(seed). */
void verify(const char *who, uint64_t seed, uint64_t off, const uint8_t *buf, size_t len);
void write_all(int fd, const uint8_t *buf, size_t len);
void write_stream(int fd, uint64_t seed, uint64_t off, size_t len);
/* Reads of exactly LEN bytes of stream(seed) from OFF, verified; fails at EOF. */
void read_stream(int fd, uint64_t seed, uint64_t off, uint64_t len);
void expect_eof(int fd);
int inq(int fd);

/* A thread that sends with FN, then shuts down (or closes) its socket. */
struct sender {
	int fd;
	int (*fn)(int fd);
	bool close; /* close() instead of shutdown(SHUT_WR) at the end */
	pthread_t tid;
};

void start_sender(struct sender *s, int fd, int (*fn)(int fd), bool close_fd);
/* total_bytes of stream(1), written in MAX_MSG pieces. */
int send_plain(int fd);

/* ---- the checks: wake.c, send.c, readers.c ---- */

int c_poll(struct pair *p);
int c_select(struct pair *p);
int c_epoll_lt(struct pair *p);
int c_epoll_et(struct pair *p);
int check_epoll_et_rearm(struct pair *p);
int c_blocking(struct pair *p);
int c_waitall(struct pair *p);
int check_fionread_peek(struct pair *p);
int check_rcvlowat(struct pair *p);

int check_reset_writer(struct pair *p);
int c_reset_reader(struct pair *p);
int c_close_reader(struct pair *p);
int check_close_writer(struct pair *p);
int c_sendfile(struct pair *p);
int c_splice_write(struct pair *p);
int c_writev(struct pair *p);
int check_zerocopy(struct pair *p);
int c_stream(struct pair *p);
int send_writev(int fd);

enum reader_end { R_DEFAULT, R_SERVER, R_CLIENT };

/* The reader checks' options. */
extern enum reader_end reader_end;
extern bool use_sigalrm, sa_restart;
extern uint64_t rr_count;
extern size_t rr_size;

void alarm_mask(int how);
int check_blocking_sigalrm(struct pair *p);
int check_splice_read(struct pair *p);
int check_splice_after_header(struct pair *p);
int check_splice_after_eagain(struct pair *p);
int check_splice_after_peek(struct pair *p);
int check_splice_after_bulk(struct pair *p);
int check_waitall_stream(struct pair *p);
int check_rcvlowat_stream(struct pair *p);
int check_nonblock_then_blocking(struct pair *p);
int check_epoll_et_nginx(struct pair *p);
int c_rr_blocking_client(struct pair *p);
int c_rr_poll_client(struct pair *p);

#endif
