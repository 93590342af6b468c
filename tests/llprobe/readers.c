// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* What real readers see: blocking under signals, MSG_WAITALL, SO_RCVLOWAT, splice, nginx's rule,
 * blocking request/response clients (tests/readers.sh). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "lib/stream.h"
#include "llprobe.h"

/*
 * A socket in a sockmap reads through tcp_bpf_recvmsg() (net/ipv4/tcp_bpf.c), which waits for
 * one wake-up only and does not loop as tcp_recvmsg() does, and whose bytes splice() cannot
 * see; MSG_WAITALL and SO_RCVLOWAT are not applied to redirected bytes. These checks read the
 * way real programs do and count everything a program would see differently: recv() errors by
 * errno, short MSG_WAITALL reads, reads below SO_RCVLOWAT, splice() stalls. The end under test
 * is --reader (the accepted "server" socket or the connecting "client" one); the other end is
 * driven from a thread. --sigalrm runs a 1 ms ITIMER_REAL with a SIGALRM handler installed
 * with SA_RESTART (--no-restart: without, and EINTR is retried), delivered to the reader only.
 */

enum reader_end reader_end;
bool use_sigalrm, sa_restart = true;
uint64_t rr_count = 10000;
size_t rr_size = 64;

/* Every recv() of the reader under test: errors by errno; eagain_first counts
 * those returned before its first byte (the one residual README names). */
static struct {
	uint64_t calls, eintr, eagain, eagain_first, got;
} rd;
static _Atomic uint64_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	atomic_fetch_add(&alarms, 1);
}

void alarm_mask(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(how, &set, NULL);
}

/* Called by the reader once every other thread runs (they keep SIGALRM blocked). */
static void alarm_start(void)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = sa_restart ? SA_RESTART : 0 };
	struct itimerval it = { .it_interval = { .tv_usec = 1000 },
				.it_value = { .tv_usec = 1000 } };

	if (!use_sigalrm)
		return;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) || setitimer(ITIMER_REAL, &it, NULL))
		fail("SIGALRM timer: %s", strerror(errno));
	alarm_mask(SIG_UNBLOCK);
}

static void alarm_stop(void)
{
	struct itimerval it = { 0 };

	if (!use_sigalrm)
		return;
	setitimer(ITIMER_REAL, &it, NULL);
	alarm_mask(SIG_BLOCK);
}

/* The socket under test and the other end: --reader, or DEF when not given. */
static int rfd_of(struct pair *p, enum reader_end def)
{
	return (reader_end == R_DEFAULT ? def : reader_end) == R_CLIENT ? p->cfd : p->sfd;
}

static int wfd_of(struct pair *p, enum reader_end def)
{
	return rfd_of(p, def) == p->cfd ? p->sfd : p->cfd;
}

static const char *reader_name(struct pair *p, enum reader_end def)
{
	return rfd_of(p, def) == p->cfd ? "client" : "server";
}

/*
 * One recv() on a blocking socket as a careful program makes it: EINTR is retried (a handler
 * without SA_RESTART), and so is EAGAIN, which a blocking socket without SO_RCVTIMEO never
 * returns over TCP; both are counted. Any other error fails.
 */
static ssize_t recv_counted(int fd, void *buf, size_t len, int flags)
{
	ssize_t n;

	for (;;) {
		rd.calls++;
		n = recv(fd, buf, len, flags);
		if (n >= 0) {
			rd.got += n;
			return n;
		}
		if (errno == EINTR) {
			rd.eintr++;
		} else if (errno == EAGAIN) {
			rd.eagain++;
			rd.eagain_first += !rd.got;
		} else
			fail("recv (%s) after %" PRIu64 " calls: %s",
			     flags & MSG_WAITALL ? "MSG_WAITALL" : "blocking", rd.calls,
			     strerror(errno));
	}
}

/* poll() for POLLIN, retried on EINTR; false after TIMEOUT_MS without readiness. */
static bool wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t until = now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = poll(&pfd, 1, timeout_ms);
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (now_ms() >= until)
			return false;
	}
}

static void print_errors(void)
{
	printf(" recv_calls=%" PRIu64 " eintr=%" PRIu64 " eagain=%" PRIu64 " eagain_first=%" PRIu64
	       " eagain_later=%" PRIu64,
	       rd.calls, rd.eintr, rd.eagain, rd.eagain_first, rd.eagain - rd.eagain_first);
	if (use_sigalrm)
		printf(" sa_restart=%d signals=%" PRIu64, sa_restart, atomic_load(&alarms));
}

/* Blocking reads of everything the writer sends until EOF, verified; returns the count. */
static uint64_t read_blocking_to_eof(int fd, uint64_t off)
{
	uint8_t buf[MAX_MSG];
	ssize_t n;

	atomic_store(&phase, "blocking reads");
	while ((n = recv_counted(fd, buf, sizeof(buf), 0)) > 0) {
		verify("reader", 1, off, buf, n);
		off += n;
	}
	return off;
}

/* A blocking reader (no O_NONBLOCK, no MSG_DONTWAIT, no SO_RCVTIMEO) under the 1 ms timer. */
/* The sender writes the stream with @send_fn while the reader reads it to EOF
 * with @read_fn under the 1 ms interval timer: every byte, then the EOF. */
static uint64_t read_all_under_alarm(struct pair *p, int (*send_fn)(int fd),
				     uint64_t (*read_fn)(int fd, uint64_t off))
{
	struct sender s;
	uint64_t off;

	start_sender(&s, wfd_of(p, R_SERVER), send_fn, false);
	alarm_start();
	off = read_fn(rfd_of(p, R_SERVER), 0);
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes", off, total_bytes);
	pthread_join(s.tid, NULL);
	return off;
}

int check_blocking_sigalrm(struct pair *p)
{
	uint64_t t0 = now_ms(), off = read_all_under_alarm(p, send_plain, read_blocking_to_eof);

	printf("ok %s reader=%s bytes=%" PRIu64, check_name, reader_name(p, R_SERVER), off);
	print_errors();
	printf(" elapsed_ms=%" PRIu64 "\n", now_ms() - t0);
	return 0;
}

/*
 * splice() socket -> pipe from OFF to EOF, verified, the way an event-driven proxy does it:
 * SPLICE_F_NONBLOCK, and poll() when it returns EAGAIN. Readable by poll() yet nothing to
 * splice for 2 s is the sockmap limit (the bytes wait where tcp_splice_read() does not look).
 */
static uint64_t splice_to_eof(int fd, uint64_t off)
{
	uint64_t idle_since = 0;
	uint8_t buf[MAX_MSG];
	int pp[2];
	ssize_t n, m;

	if (pipe(pp))
		fail("pipe: %s", strerror(errno));
	atomic_store(&phase, "splicing socket -> pipe");
	for (;;) {
		n = splice(fd, NULL, pp[1], NULL, sizeof(buf), SPLICE_F_NONBLOCK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_readable(fd, 100) && inq(fd) > 0) {
				if (!idle_since)
					idle_since = now_ms();
				if (now_ms() - idle_since > 2000)
					limit("splice() from the socket returns EAGAIN for 2 s while "
					      "poll says readable and FIONREAD=%d, after %" PRIu64
					      " bytes (tcp_splice_read reads sk_receive_queue only)",
					      inq(fd), off);
			}
			continue;
		}
		if (n < 0)
			fail("splice socket -> pipe at %" PRIu64 ": %s", off, strerror(errno));
		if (!n)
			break;
		idle_since = 0;
		while (n > 0) {
			m = read(pp[0], buf, n);
			if (m <= 0)
				fail("read from pipe: %s", strerror(errno));
			verify("splice reader", 1, off, buf, m);
			off += m;
			n -= m;
		}
	}
	close(pp[0]);
	close(pp[1]);
	return off;
}

/* splice() on the reading side: socket -> pipe -> verified (the writer uses writev()). */
int check_splice_read(struct pair *p)
{
	uint64_t t0 = now_ms(), off = read_all_under_alarm(p, send_writev, splice_to_eof);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, off, now_ms() - t0);
	return 0;
}

/* What a splicing reader does before its first splice(). */
enum splice_first {
	FIRST_HEADER, /* recv() a 64-byte header: a proxy that parses a request head */
	FIRST_EAGAIN, /* one recv() before any byte came (EAGAIN), as HAProxy after accept() */
	FIRST_PEEK, /* recv(MSG_PEEK) a 64-byte header and splice it too (an SNI router) */
	FIRST_BULK, /* EAGAIN, recv() the first MiB, then splice(): a program that changes its mind */
};

/* The first bytes by recv() (FIRST_HEADER, FIRST_BULK), peeked (FIRST_PEEK) or an
 * EAGAIN (FIRST_EAGAIN), then splice() to EOF; returns after checking every byte. */
static int splice_after(struct pair *p, enum splice_first first)
{
	static const char *const what[] = {
		[FIRST_HEADER] = "header by recv",
		[FIRST_EAGAIN] = "EAGAIN first",
		[FIRST_PEEK] = "header peeked",
		[FIRST_BULK] = "first MiB by recv",
	};
	int fd = rfd_of(p, R_SERVER), flags = first == FIRST_PEEK ? MSG_PEEK : 0;
	uint64_t want = first == FIRST_BULK ? 1 << 20 : first == FIRST_EAGAIN ? 0 : 64;
	uint64_t t0 = now_ms(), off = 0, first_reads = 0;
	static uint8_t buf[MAX_MSG];
	struct sender s;
	ssize_t n;

	set_nonblock(fd, true);
	/* FIRST_BULK: an event loop's first read attempt too (Go's netpoller makes
	 * one before it parks), so that the bytes it then recv()s are redirected. */
	if (first == FIRST_EAGAIN || first == FIRST_BULK) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n >= 0 || errno != EAGAIN)
			fail("the first recv() before any write: %zd (%s), expected EAGAIN", n,
			     n < 0 ? strerror(errno) : "bytes");
	}
	start_sender(&s, wfd_of(p, R_SERVER), send_plain, false);
	alarm_start();
	atomic_store(&phase, "recv() before splicing");
	while (off < want) {
		if (!wait_readable(fd, WAKE_TIMEOUT_MS))
			fail("%s: not readable within %d ms after %" PRIu64 " bytes", what[first],
			     WAKE_TIMEOUT_MS, off);
		/* A peek sees the whole header again each time. */
		n = recv(fd, buf, flags ? want : MIN(want - off, sizeof(buf)), flags);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			fail("%s: recv: %s", what[first], n ? strerror(errno) : "EOF");
		first_reads++;
		if (flags) {
			off = n;
			continue;
		}
		verify(what[first], 1, off, buf, n);
		off += n;
	}
	if (flags)
		verify(what[first], 1, 0, buf, want);
	off = splice_to_eof(fd, flags ? 0 : off);
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes (%s, then splice)", off,
		     total_bytes, what[first]);
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s bytes=%" PRIu64 " first_reads=%" PRIu64 " elapsed_ms=%" PRIu64 "\n",
	       check_name, reader_name(p, R_SERVER), off, first_reads, now_ms() - t0);
	return 0;
}

/* A 64-byte header by recv() (non-blocking, poll), then splice() for the rest: a proxy that
 * parses a request head and splices the body (haproxy in HTTP mode). */
int check_splice_after_header(struct pair *p)
{
	return splice_after(p, FIRST_HEADER);
}

/* recv() once before the peer wrote (EAGAIN), then only splice(): HAProxy with
 * splice-request in TCP mode. */
int check_splice_after_eagain(struct pair *p)
{
	return splice_after(p, FIRST_EAGAIN);
}

/* recv(MSG_PEEK) a 64-byte header, then splice() everything, the header too. */
int check_splice_after_peek(struct pair *p)
{
	return splice_after(p, FIRST_PEEK);
}

/* recv() once before any byte came (EAGAIN), recv() the first MiB, then splice() the rest. */
int check_splice_after_bulk(struct pair *p)
{
	return splice_after(p, FIRST_BULK);
}

/* A writer of pieces: sizes 1..MAXPIECE (a fixed LCG), TCP_NODELAY, a PAUSE_US pause after
 * every BURST bytes, so the reader keeps finding partial messages. */
static size_t piece_max, piece_burst;
static unsigned int piece_pause_us;

static int send_pieces(int fd)
{
	static uint8_t buf[MAX_MSG];
	uint64_t off = 0, since = 0, lcg = 12345;
	size_t n;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	while (off < total_bytes) {
		lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
		n = MIN((size_t)(lcg >> 33) % piece_max + 1, total_bytes - off);
		stream_fill(1, off, buf, n);
		write_all(fd, buf, n);
		off += n;
		since += n;
		if (since >= piece_burst) {
			sleep_us(piece_pause_us);
			since = 0;
		}
	}
	return 0;
}

/* Fixed 64 KiB messages by recv(MSG_WAITALL) on a blocking socket: a short read before EOF is
 * a message cut in two for a program that trusts the flag (it is counted, then completed). */
int check_waitall_stream(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER);
	uint64_t t0 = now_ms(), off = 0, msgs = 0, shorts = 0;
	uint8_t buf[MAX_MSG];
	struct sender s;
	size_t want, got;
	ssize_t n;

	piece_max = 32 << 10;
	piece_burst = 256 << 10;
	piece_pause_us = 200;
	start_sender(&s, wfd_of(p, R_SERVER), send_pieces, false);
	alarm_start();
	atomic_store(&phase, "recv(MSG_WAITALL) of 64 KiB messages");
	while (off < total_bytes) {
		want = MIN(sizeof(buf), total_bytes - off);
		for (got = 0; got < want; got += n) {
			n = recv_counted(fd, buf + got, want - got, MSG_WAITALL);
			if (!n)
				fail("EOF at %" PRIu64 " inside a message", off + got);
			if ((size_t)n < want - got)
				shorts++;
		}
		verify("reader", 1, off, buf, want);
		off += want;
		msgs++;
	}
	if (recv_counted(fd, buf, 1, 0))
		fail("an extra byte after the stream instead of EOF");
	alarm_stop();
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s bytes=%" PRIu64 " msg=%zu msgs=%" PRIu64 " short_reads=%" PRIu64,
	       check_name, reader_name(p, R_SERVER), off, sizeof(buf), msgs, shorts);
	print_errors();
	printf(" elapsed_ms=%" PRIu64 "\n", now_ms() - t0);
	return 0;
}

/* SO_RCVLOWAT 64 KiB, O_NONBLOCK, poll() then recv(): every read before the last must return
 * at least 64 KiB; a poll() readable with nothing to read is an empty wake-up. */
int check_rcvlowat_stream(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER), lowat = 64 << 10;
	uint64_t t0 = now_ms(), off = 0, reads = 0, shorts = 0, empty = 0, min_read = UINT64_MAX;
	static uint8_t buf[256 << 10];
	struct sender s;
	ssize_t n;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))
		fail("SO_RCVLOWAT: %s", strerror(errno));
	set_nonblock(fd, true);
	piece_max = 8 << 10;
	piece_burst = 40 << 10;
	piece_pause_us = 300;
	start_sender(&s, wfd_of(p, R_SERVER), send_pieces, false);
	alarm_start();
	atomic_store(&phase, "poll + recv with SO_RCVLOWAT 64 KiB");
	for (;;) {
		if (!wait_readable(fd, WAKE_TIMEOUT_MS))
			fail("not readable within %d ms at %" PRIu64 " (FIONREAD=%d)",
			     WAKE_TIMEOUT_MS, off, inq(fd));
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EAGAIN) {
			empty++;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("recv at %" PRIu64 ": %s", off, strerror(errno));
		if (!n)
			break;
		verify("reader", 1, off, buf, n);
		reads++;
		if (off + n < total_bytes && n < lowat)
			shorts++;
		if (off + n < total_bytes && (uint64_t)n < min_read)
			min_read = n;
		off += n;
	}
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes", off, total_bytes);
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s lowat=%d bytes=%" PRIu64 " reads=%" PRIu64 " short_reads=%" PRIu64
	       " min_read=%" PRIu64 " empty_wakeups=%" PRIu64 " elapsed_ms=%" PRIu64 "\n",
	       check_name, reader_name(p, R_SERVER), lowat, off, reads, shorts,
	       min_read == UINT64_MAX ? 0 : min_read, empty, now_ms() - t0);
	return 0;
}

/* Non-blocking with epoll for the first 8 MiB (or half the stream), then fcntl() back to
 * blocking for the rest: a reader that looks event-driven and then is not. */
int check_nonblock_then_blocking(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER), ep = epoll_create1(EPOLL_CLOEXEC), n_ev;
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t t0 = now_ms(), off = 0, switch_at = MIN(8ULL << 20, total_bytes / 2);
	uint8_t buf[MAX_MSG];
	struct sender s;
	ssize_t n;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail("epoll: %s", strerror(errno));
	set_nonblock(fd, true);
	/* Redirected into from the stream's first byte: the case is a reader
	 * in the map that turns blocking. */
	take_first_from(wfd_of(p, R_SERVER), fd);
	start_sender(&s, wfd_of(p, R_SERVER), send_plain, false);
	alarm_start();
	atomic_store(&phase, "non-blocking reads (epoll)");
	while (off < switch_at) {
		n_ev = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
		if (n_ev < 0 && errno == EINTR)
			continue;
		if (n_ev <= 0)
			fail("epoll_wait at %" PRIu64 ": %s", off,
			     n_ev ? strerror(errno) : "timeout");
		for (;;) {
			n = recv(fd, buf, MIN(sizeof(buf), switch_at - off), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0)
				fail("recv at %" PRIu64 ": %s", off, n ? strerror(errno) : "EOF");
			verify("reader", 1, off, buf, n);
			off += n;
			if (off == switch_at)
				break;
		}
	}
	close(ep);
	set_nonblock(fd, false);
	off = read_blocking_to_eof(fd, off);
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes", off, total_bytes);
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s bytes=%" PRIu64 " switch_at=%" PRIu64, check_name,
	       reader_name(p, R_SERVER), off, switch_at);
	print_errors();
	printf(" elapsed_ms=%" PRIu64 "\n", now_ms() - t0);
	return 0;
}

/*
 * Edge-triggered epoll read the way nginx reads (ngx_unix_recv() with FIONREAD): after each
 * recv() the socket counts as drained, and the reader waits for the next edge, when the read
 * was short or FIONREAD says 0 bytes are left (once the peer's FIN was seen, EPOLLRDHUP, it
 * reads on to EOF). Over TCP either means the receive queue is empty, and whatever arrives
 * later is a new edge. The reader starts 50 ms late and takes 8 KiB reads, as nginx reading
 * a request body does, so its writer's queue builds up first.
 */
int check_epoll_et_nginx(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER), ep = epoll_create1(EPOLL_CLOEXEC), n_ev, left;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	uint64_t t0 = now_ms(), off = 0, shorts = 0, zero_inq = 0, edges = 0;
	uint8_t buf[8192];
	bool rdhup = false;
	struct sender s;
	ssize_t n;

	set_nonblock(fd, true);
	/* Redirected into first, then behind (the writer's queue builds up). */
	take_first_from(wfd_of(p, R_SERVER), fd);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail("epoll: %s", strerror(errno));
	start_sender(&s, wfd_of(p, R_SERVER), send_plain, false);
	sleep_us(50000);
	alarm_start();
	atomic_store(&phase, "edge-triggered reads, nginx's rule");
	for (;;) {
		n_ev = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
		if (n_ev < 0 && errno == EINTR)
			continue;
		if (n_ev < 0)
			fail("epoll_wait: %s", strerror(errno));
		if (!n_ev) {
			n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
			fail("no edge for %d ms at offset %" PRIu64 " after the socket looked "
			     "drained, FIONREAD=%d, yet recv(MSG_PEEK) finds %zd bytes",
			     WAKE_TIMEOUT_MS, off, inq(fd), n);
		}
		edges++;
		rdhup |= ev.events & EPOLLRDHUP;
		for (;;) {
			n = recv(fd, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n < 0)
				fail("recv at %" PRIu64 ": %s", off, strerror(errno));
			if (!n)
				goto eof;
			verify("reader", 1, off, buf, n);
			off += n;
			left = inq(fd);
			shorts += (size_t)n < sizeof(buf);
			zero_inq += !left;
			if (!rdhup && ((size_t)n < sizeof(buf) || !left))
				break; /* drained: wait for the next edge */
		}
	}
eof:
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes", off, total_bytes);
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s bytes=%" PRIu64 " edges=%" PRIu64 " short_reads=%" PRIu64
	       " fionread_zero=%" PRIu64 " elapsed_ms=%" PRIu64 "\n",
	       check_name, reader_name(p, R_SERVER), off, edges, shorts, zero_inq, now_ms() - t0);
	return 0;
}

/* rr-*: the other end is an epoll server (O_NONBLOCK) that verifies each --size request
 * (stream 1) and answers with --size bytes of stream 2 at the same offset, until EOF. */
static void *epoll_server(void *arg)
{
	int fd = *(int *)arg, ep = epoll_create1(EPOLL_CLOEXEC), n_ev;
	struct epoll_event ev = { .events = EPOLLIN };
	static uint8_t req[MAX_MSG], resp[MAX_MSG];
	uint64_t off = 0;
	size_t got = 0;
	ssize_t n;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail("server epoll: %s", strerror(errno));
	set_nonblock(fd, true);
	for (;;) {
		n_ev = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
		if (n_ev < 0 && errno == EINTR)
			continue;
		if (n_ev <= 0)
			fail("server: no request within %d ms after %" PRIu64 " bytes",
			     WAKE_TIMEOUT_MS, off);
		for (;;) {
			n = recv(fd, req + got, rr_size - got, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n < 0)
				fail("server recv: %s", strerror(errno));
			if (!n) {
				close(ep);
				return NULL;
			}
			got += n;
			if (got < rr_size)
				continue;
			verify("server", 1, off, req, rr_size);
			stream_fill(2, off, resp, rr_size);
			/* rr_size <= MAX_MSG, far below the send buffer: never EAGAIN. */
			if (send(fd, resp, rr_size, MSG_NOSIGNAL) != (ssize_t)rr_size)
				fail("server send: %s", strerror(errno));
			off += rr_size;
			got = 0;
		}
	}
}

/* A blocking client (a typical CLI): send a request, read the response blocking; with POLL,
 * poll() for POLLIN before each blocking recv(). */
static int check_rr_client(struct pair *p, bool use_poll)
{
	int fd = rfd_of(p, R_CLIENT), sfd = wfd_of(p, R_CLIENT);
	uint64_t t0 = now_ms(), i, off = 0, reads = 0;
	uint8_t req[MAX_MSG], resp[MAX_MSG];
	pthread_t tid;
	size_t got;
	ssize_t n;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (pthread_create(&tid, NULL, epoll_server, &sfd))
		fail("pthread_create");
	alarm_start();
	atomic_store(&phase, "request/response");
	for (i = 0; i < rr_count; i++, off += rr_size) {
		stream_fill(1, off, req, rr_size);
		write_all(fd, req, rr_size);
		for (got = 0; got < rr_size; got += n) {
			if (use_poll && !wait_readable(fd, WAKE_TIMEOUT_MS))
				fail("request %" PRIu64 ": no response within %d ms", i,
				     WAKE_TIMEOUT_MS);
			n = recv_counted(fd, resp + got, rr_size - got, 0);
			if (!n)
				fail("request %" PRIu64 ": EOF", i);
			reads++;
		}
		verify("client", 2, off, resp, rr_size);
	}
	alarm_stop();
	if (shutdown(fd, SHUT_WR))
		fail("shutdown: %s", strerror(errno));
	pthread_join(tid, NULL);
	printf("ok %s reader=%s count=%" PRIu64 " size=%zu reads=%" PRIu64, check_name,
	       reader_name(p, R_CLIENT), rr_count, rr_size, reads);
	print_errors();
	printf(" elapsed_ms=%" PRIu64 "\n", now_ms() - t0);
	return 0;
}

int c_rr_blocking_client(struct pair *p)
{
	return check_rr_client(p, false);
}
int c_rr_poll_client(struct pair *p)
{
	return check_rr_client(p, true);
}
