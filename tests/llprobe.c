// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
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
 * Every byte is byte i of stream(seed) as in lltraffic (splitmix64), verified at its offset.
 * Output: one line "ok CHECK key=value..." (exit 0); a failure is one line on stderr starting
 * with "llprobe: CHECK:" (exit 1); a check the kernel cannot do on this socket is one line
 * "limit CHECK reason..." (exit 3). A watchdog (--timeout) turns a hang into a failure that
 * says where it hung.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

#define PROG "llprobe"
#define ROUNDS 200
#define MAX_MSG 65536
#define WAKE_TIMEOUT_MS 3000
#define EXIT_LIMIT 3
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *check_name = "?";
static const char *_Atomic phase = "starting";
static struct sockaddr_in6 addr6;
static struct sockaddr_in addr4;
static bool use_v6;
static int port; /* --port: the listener's, 0 for any */
static bool zc_early; /* zerocopy-early: SO_ZEROCOPY on before connect() and listen() */
static int proto; /* 0, or IPPROTO_MPTCP */
static uint64_t total_bytes = 4 << 20;
static unsigned int timeout_s = 20;

/* ---- stream, output, watchdog ----------------------------------------------------------- */

static uint64_t stream_word(uint64_t seed, uint64_t k)
{
	uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void stream_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Whole words at once: byte k of a word is its k-th little-endian byte. */
	for (; i < len && (off + i) % 8; i++)
		buf[i] = stream_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8));
	for (; i + 8 <= len; i += 8) {
		uint64_t w = stream_word(seed, (off + i) / 8);

		memcpy(buf + i, &w, 8);
	}
#endif
	for (; i < len; i++)
		buf[i] = stream_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8));
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s: %s\n", check_name, msg);
	fflush(stderr);
	_exit(1);
}

static void __attribute__((noreturn, format(printf, 1, 2))) limit(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("limit %s %s\n", check_name, msg);
	fflush(stdout);
	_exit(EXIT_LIMIT);
}

/* Verifies BUF as bytes [off, off + len) of stream(seed). */
static void verify(const char *who, uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t want[4096];
	size_t i, n;

	while (len) {
		n = MIN(len, sizeof(want));
		stream_fill(seed, off, want, n);
		if (memcmp(buf, want, n)) {
			for (i = 0; buf[i] == want[i]; i++)
				;
			fail("%s: data mismatch at offset %" PRIu64 ": expected 0x%02x got 0x%02x",
			     who, off + i, want[i], buf[i]);
		}
		off += n;
		buf += n;
		len -= n;
	}
}

static void *watchdog(void *arg)
{
	(void)arg;
	sleep(timeout_s);
	fail("timed out after %u s while %s", timeout_s, atomic_load(&phase));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(unsigned int us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- the connection --------------------------------------------------------------------- */

struct pair {
	int cfd; /* client end: writes c2s */
	int sfd; /* accepted end: reads c2s */
};

static socklen_t addr_len(void)
{
	return use_v6 ? sizeof(addr6) : sizeof(addr4);
}

static struct sockaddr *addr(void)
{
	return use_v6 ? (struct sockaddr *)&addr6 : (struct sockaddr *)&addr4;
}

static void set_nonblock(int fd, bool on);
/* --reader client: the connecting socket is the one whose reading is tested. */
static bool client_reads;

static void pair_open(struct pair *p)
{
	struct pollfd pfd = { .events = POLLIN };
	int lfd, one = 1, soerr = 0;
	socklen_t len = addr_len(), slen = sizeof(soerr);

	/* As an event-driven program: a non-blocking listener and a
	 * non-blocking connect() (loopless leaves blocking programs on TCP);
	 * each check then sets the mode it tests. */
	atomic_store(&phase, "connecting");
	lfd = socket(addr()->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
	if (lfd < 0)
		fail("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* An accepted socket inherits its listener's SO_ZEROCOPY (sk_clone_lock()). */
	if (zc_early && setsockopt(lfd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
		limit("SO_ZEROCOPY on the listener: %s", strerror(errno));
	if (bind(lfd, addr(), len) || listen(lfd, 4) || getsockname(lfd, addr(), &len))
		fail("listen: %s", strerror(errno));
	p->cfd = socket(addr()->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
	if (p->cfd >= 0 && zc_early &&
	    setsockopt(p->cfd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
		limit("SO_ZEROCOPY before connect(): %s", strerror(errno));
	if (p->cfd < 0 || (connect(p->cfd, addr(), addr_len()) && errno != EINPROGRESS))
		fail("connect: %s", strerror(errno));
	pfd.fd = lfd;
	if (poll(&pfd, 1, 5000) != 1)
		fail("no connection to accept");
	p->sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->sfd < 0)
		fail("accept: %s", strerror(errno));
	pfd.fd = p->cfd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, 5000) != 1 || getsockopt(p->cfd, SOL_SOCKET, SO_ERROR, &soerr, &slen) ||
	    soerr)
		fail("connect: %s", strerror(soerr ? soerr : errno));
	set_nonblock(p->cfd, false);
	/* The client end's reader looks once, as an event loop's first read
	 * attempt does: its writes on the (now blocking) socket then do not
	 * mark it a blocking program (ll_sk_msg). Not when it is the reader
	 * under test, nor for the accepted end: each check wants its reader
	 * not seen yet, or seen the way it reads. */
	if (!client_reads)
		(void)!recv(p->cfd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT);
	close(lfd);
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("send: %s", strerror(errno));
		buf += n;
		len -= n;
	}
}

static void write_stream(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[MAX_MSG];
	size_t n;

	while (len) {
		n = MIN(len, sizeof(buf));
		stream_fill(seed, off, buf, n);
		write_all(fd, buf, n);
		off += n;
		len -= n;
	}
}

/* Reads the way event-driven programs do (the readers loopless redirects
 * into): recv(MSG_DONTWAIT), poll() when there is nothing yet. */
static ssize_t recv_ready(int fd, void *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return n;
		if (errno == EAGAIN)
			poll(&pfd, 1, -1);
	}
}

/* Reads of exactly LEN bytes of stream(seed) from OFF, verified; fails at EOF. */
static void read_stream(int fd, uint64_t seed, uint64_t off, uint64_t len)
{
	uint8_t buf[MAX_MSG];
	ssize_t n;

	while (len) {
		n = recv_ready(fd, buf, MIN(len, sizeof(buf)));
		if (n < 0)
			fail("recv at offset %" PRIu64 ": %s", off, strerror(errno));
		if (!n)
			fail("premature EOF at offset %" PRIu64 " (%" PRIu64 " bytes missing)", off,
			     len);
		verify("reader", seed, off, buf, n);
		off += n;
		len -= n;
	}
}

static void expect_eof(int fd)
{
	char c;
	ssize_t n;

	atomic_store(&phase, "waiting for EOF");
	n = recv_ready(fd, &c, 1);
	if (n < 0)
		fail("recv at the end: %s instead of EOF", strerror(errno));
	if (n > 0)
		fail("an extra byte after the stream instead of EOF");
}

static int inq(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n))
		fail("FIONREAD: %s", strerror(errno));
	return n;
}

/* ---- wake-ups: poll, select, epoll LT/ET, blocking, MSG_WAITALL --------------------------- */

enum wake { W_POLL, W_SELECT, W_EPOLL_LT, W_EPOLL_ET, W_BLOCKING, W_WAITALL };

static struct {
	int fd;
	enum wake how;
	atomic_int want; /* round the reader waits for; the writer writes it after a pause */
} wk;

static size_t round_size(int r)
{
	return (size_t)(r * 7919u) % MAX_MSG + 1;
}

static void *wake_writer(void *arg)
{
	uint64_t off = 0;
	size_t len, part;
	int r;

	(void)arg;
	for (r = 0; r < ROUNDS; r++) {
		while (atomic_load(&wk.want) < r)
			sleep_us(50);
		sleep_us(300); /* let the reader block first: the wake-up is what is tested */
		len = round_size(r);
		if (wk.how == W_WAITALL) {
			/* Four pieces apart in time: MSG_WAITALL must gather them. */
			for (part = 0; part < 4; part++) {
				size_t n = len / 4 + (part == 3 ? len % 4 : 0);

				write_stream(wk.fd, 1, off, n);
				off += n;
				sleep_us(500);
			}
		} else {
			write_stream(wk.fd, 1, off, len);
			off += len;
		}
	}
	return NULL;
}

/* Waits for readability with the mechanism under test; false on timeout. */
static bool wake_wait(int fd, int ep)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timeval tv = { .tv_sec = WAKE_TIMEOUT_MS / 1000 };
	struct epoll_event ev;
	fd_set rs;
	int n = 0;

	switch (wk.how) {
	case W_POLL:
		n = poll(&pfd, 1, WAKE_TIMEOUT_MS);
		break;
	case W_SELECT:
		FD_ZERO(&rs);
		FD_SET(fd, &rs);
		n = select(fd + 1, &rs, NULL, NULL, &tv);
		break;
	case W_EPOLL_LT:
	case W_EPOLL_ET:
		n = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
		break;
	default:
		return true;
	}
	if (n < 0 && errno != EINTR)
		fail("waiting: %s", strerror(errno));
	return n > 0;
}

static int check_wake(struct pair *p, enum wake how)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint8_t buf[MAX_MSG];
	unsigned int spurious = 0, short_waitall = 0;
	uint64_t off = 0, t0 = now_ms();
	size_t got, len;
	pthread_t tid;
	ssize_t n;
	int r, ep = -1;

	wk.fd = p->cfd;
	wk.how = how;
	atomic_store(&wk.want, 0);
	if (how == W_EPOLL_LT || how == W_EPOLL_ET) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (how == W_EPOLL_ET)
			ev.events |= EPOLLET;
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p->sfd, &ev))
			fail("epoll: %s", strerror(errno));
	}
	set_nonblock(p->sfd, how != W_BLOCKING && how != W_WAITALL);
	/* The pieces must leave at once, not wait for an ACK (Nagle). */
	setsockopt(p->cfd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (pthread_create(&tid, NULL, wake_writer, NULL))
		fail("pthread_create");
	for (r = 0; r < ROUNDS; r++) {
		len = round_size(r);
		got = 0;
		atomic_store(&wk.want, r);
		atomic_store(&phase, "waiting for a wake-up");
		while (got < len) {
			if (!wake_wait(p->sfd, ep))
				fail("round %d: no wake-up within %d ms with %d bytes readable "
				     "(FIONREAD), %zu of %zu read",
				     r, WAKE_TIMEOUT_MS, inq(p->sfd), got, len);
			/* Read until EAGAIN: edge-triggered epoll reports only new edges. */
			for (;;) {
				/* Blocking reads ask for the rest of the message only. */
				n = recv(p->sfd, buf + got,
					 how == W_BLOCKING || how == W_WAITALL ? len - got :
										 sizeof(buf) - got,
					 how == W_WAITALL ? MSG_WAITALL : 0);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 && errno == EAGAIN) {
					if (how == W_BLOCKING || how == W_WAITALL)
						continue; /* tcp_bpf_recvmsg quirk */
					if (!got)
						spurious++;
					break;
				}
				if (n < 0)
					fail("round %d: recv: %s", r, strerror(errno));
				if (!n)
					fail("round %d: unexpected EOF", r);
				if (how == W_WAITALL && (size_t)n < len - got)
					short_waitall++;
				got += n;
				if (got > len)
					fail("round %d: %zu bytes, more than the %zu written", r,
					     got, len);
				if (how == W_BLOCKING || how == W_WAITALL)
					break;
			}
		}
		verify("reader", 1, off, buf, len);
		off += len;
	}
	pthread_join(tid, NULL);
	printf("ok %s rounds=%d bytes=%" PRIu64 " empty_wakeups=%u short_waitall=%u "
	       "elapsed_ms=%" PRIu64 "\n",
	       check_name, ROUNDS, off, spurious, short_waitall, now_ms() - t0);
	return 0;
}

/* Edge-triggered: a second write while the first is still unread is a new edge on TCP. */
static int check_epoll_et_rearm(struct pair *p)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int ep = epoll_create1(EPOLL_CLOEXEC), n1, n2, n3;
	uint8_t buf[2000];

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p->sfd, &ev))
		fail("epoll: %s", strerror(errno));
	/* The reader looks once first (an event loop adding the socket). */
	(void)!recv(p->sfd, buf, 1, MSG_DONTWAIT);
	write_stream(p->cfd, 1, 0, 1000);
	n1 = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
	n2 = epoll_wait(ep, &ev, 1, 100); /* no new edge: expect none */
	write_stream(p->cfd, 1, 1000, 1000);
	n3 = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);
	if (n1 != 1)
		fail("no edge for the first write");
	atomic_store(&phase, "reading");
	read_stream(p->sfd, 1, 0, 2000);
	(void)buf;
	printf("ok %s first_edge=%d repeat_without_data=%d edge_on_more_data=%d\n", check_name, n1,
	       n2, n3);
	return 0;
}

/* ---- FIONREAD, MSG_PEEK, SO_RCVLOWAT ------------------------------------------------------ */

static int check_fionread_peek(struct pair *p)
{
	uint8_t buf[3000], buf2[3000];
	int i, before, after;
	ssize_t n1, n2;

	/* The reader looks once first, as an event loop does (loopless
	 * redirects only into a reader seen reading non-blocking). */
	(void)!recv(p->sfd, buf, 1, MSG_DONTWAIT);
	for (i = 0; i < 3; i++) {
		write_stream(p->cfd, 1, i * 1000, 1000);
		sleep_us(1000);
	}
	sleep_us(50000); /* all arrived, on whichever path */
	before = inq(p->sfd);
	atomic_store(&phase, "peeking");
	n1 = recv(p->sfd, buf, sizeof(buf), MSG_PEEK);
	if (n1 <= 0)
		fail("MSG_PEEK: %zd (%s)", n1, n1 < 0 ? strerror(errno) : "EOF");
	verify("peek", 1, 0, buf, n1);
	n2 = recv(p->sfd, buf2, sizeof(buf2), MSG_PEEK);
	if (n2 <= 0)
		fail("second MSG_PEEK: %zd", n2);
	verify("second peek", 1, 0, buf2, n2);
	atomic_store(&phase, "reading after peeking");
	read_stream(p->sfd, 1, 0, 3000);
	after = inq(p->sfd);
	printf("ok %s written=3000 fionread=%d peek=%zd peek_again=%zd fionread_after=%d\n",
	       check_name, before, n1, n2, after);
	return 0;
}

static void *late_writer(void *arg)
{
	struct pair *p = arg;

	/* 2000, not 1000: tcp_data_ready() compares only the bytes not yet copied with
	 * SO_RCVLOWAT, so plain TCP would never wake a recv() that already holds 1000. */
	sleep_us(300000);
	write_stream(p->cfd, 1, 1000, 2000);
	return NULL;
}

static int check_rcvlowat(struct pair *p)
{
	struct pollfd pfd = { .fd = p->sfd, .events = POLLIN };
	int lowat = 2000, polled;
	uint8_t buf[4000];
	pthread_t tid;
	uint64_t t0;
	ssize_t n;

	if (setsockopt(p->sfd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))
		fail("SO_RCVLOWAT: %s", strerror(errno));
	write_stream(p->cfd, 1, 0, 1000);
	sleep_us(20000);
	polled = poll(&pfd, 1, 200);
	/* The rest arrives while the reader is blocked in recv(). */
	if (pthread_create(&tid, NULL, late_writer, p))
		fail("pthread_create");
	atomic_store(&phase, "recv with SO_RCVLOWAT 2000");
	t0 = now_ms();
	do
		n = recv(p->sfd, buf, sizeof(buf), 0);
	while (n < 0 && (errno == EINTR || errno == EAGAIN));
	if (n <= 0)
		fail("recv: %zd", n);
	verify("reader", 1, 0, buf, n);
	printf("ok %s lowat=2000 poll_readable_with_1000=%d first_recv=%zd first_recv_ms=%" PRIu64
	       "\n",
	       check_name, polled, n, now_ms() - t0);
	if (n < 3000)
		read_stream(p->sfd, 1, n, 3000 - n);
	pthread_join(tid, NULL);
	return 0;
}

/* ---- resets and closes mid-stream ---------------------------------------------------------- */

static void linger0(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
		fail("SO_LINGER: %s", strerror(errno));
}

/* The writer resets (SO_LINGER 0) after 1 MiB: the reader gets a correct prefix, then
 * ECONNRESET or EOF, never a hang. */
static int check_reset_writer(struct pair *p)
{
	uint8_t buf[MAX_MSG];
	uint64_t off = 0;
	ssize_t n;

	write_stream(p->cfd, 1, 0, 1 << 20);
	sleep_us(20000);
	linger0(p->cfd);
	close(p->cfd);
	atomic_store(&phase, "reading after the writer's reset");
	for (;;) {
		n = recv(p->sfd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		verify("reader", 1, off, buf, n);
		off += n;
	}
	printf("ok %s written=%d read=%" PRIu64 " end=%s\n", check_name, 1 << 20, off,
	       n < 0 ? strerror(errno) : "EOF");
	return 0;
}

/* The reader goes away (CLOSE: close() with unread bytes, RESET: SO_LINGER 0) while the writer
 * streams: the writer's send fails (EPIPE or ECONNRESET) instead of blocking forever. */
static int check_reader_gone(struct pair *p, bool reset)
{
	uint8_t buf[MAX_MSG];
	uint64_t off = 0, after = 0;
	ssize_t n;

	write_stream(p->cfd, 1, 0, 256 << 10);
	read_stream(p->sfd, 1, 0, 64 << 10);
	if (reset)
		linger0(p->sfd);
	close(p->sfd);
	off = 256 << 10;
	atomic_store(&phase, "writing to a peer that is gone");
	for (;;) {
		stream_fill(1, off, buf, sizeof(buf));
		n = send(p->cfd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		off += n;
		after += n;
		if (after > (1ULL << 30))
			fail("1 GiB accepted by send() after the reader closed");
	}
	if (errno != EPIPE && errno != ECONNRESET)
		fail("send after the reader closed: %s, expected EPIPE or ECONNRESET",
		     strerror(errno));
	printf("ok %s accepted_after_close=%" PRIu64 " error=%s\n", check_name, after,
	       strerror(errno));
	return 0;
}

/* ---- sendfile, splice, writev, MSG_ZEROCOPY ----------------------------------------------- */

struct sender {
	int fd;
	int (*fn)(int fd);
	bool close; /* close() instead of shutdown(SHUT_WR) at the end */
	pthread_t tid;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->fn(s->fd);
	if (s->close ? close(s->fd) : shutdown(s->fd, SHUT_WR))
		fail("%s: %s", s->close ? "close" : "shutdown", strerror(errno));
	return NULL;
}

/* Sends with FN from a thread, reads and verifies total_bytes and EOF here. */
static uint64_t run_sender(struct pair *p, int (*fn)(int fd), bool close_fd)
{
	struct sender s = { .fd = p->cfd, .fn = fn, .close = close_fd };
	uint64_t t0 = now_ms();

	if (pthread_create(&s.tid, NULL, sender_main, &s))
		fail("pthread_create");
	atomic_store(&phase, "reading");
	read_stream(p->sfd, 1, 0, total_bytes);
	expect_eof(p->sfd);
	pthread_join(s.tid, NULL);
	return now_ms() - t0;
}

static int sender_check(struct pair *p, int (*fn)(int fd))
{
	uint64_t ms = run_sender(p, fn, false);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, total_bytes, ms);
	return 0;
}

static int stream_memfd(void)
{
	int fd = memfd_create("llprobe", MFD_CLOEXEC);
	uint8_t buf[MAX_MSG];
	uint64_t off;

	if (fd < 0)
		fail("memfd_create: %s", strerror(errno));
	for (off = 0; off < total_bytes; off += sizeof(buf)) {
		stream_fill(1, off, buf, sizeof(buf));
		if (pwrite(fd, buf, MIN(sizeof(buf), total_bytes - off), off) < 0)
			fail("pwrite: %s", strerror(errno));
	}
	return fd;
}

static int send_plain(int fd)
{
	write_stream(fd, 1, 0, total_bytes);
	return 0;
}

static int send_sendfile(int fd)
{
	int file = stream_memfd();
	off_t off = 0;
	ssize_t n;

	while ((uint64_t)off < total_bytes) {
		n = sendfile(fd, file, &off, total_bytes - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("sendfile at %jd: %s", (intmax_t)off, n ? strerror(errno) : "0");
	}
	close(file);
	return 0;
}

static int send_splice(int fd)
{
	uint8_t buf[MAX_MSG];
	uint64_t off;
	int pp[2];
	ssize_t n, left;

	if (pipe(pp))
		fail("pipe: %s", strerror(errno));
	for (off = 0; off < total_bytes; off += sizeof(buf)) {
		stream_fill(1, off, buf, sizeof(buf));
		left = MIN(sizeof(buf), total_bytes - off);
		if (write(pp[1], buf, left) != left)
			fail("write to pipe: %s", strerror(errno));
		while (left > 0) {
			n = splice(pp[0], NULL, fd, NULL, left, SPLICE_F_MOVE);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				fail("splice pipe -> socket: %s", n ? strerror(errno) : "0");
			left -= n;
		}
	}
	close(pp[0]);
	close(pp[1]);
	return 0;
}

static int send_writev(int fd)
{
	static uint8_t buf[1 << 20];
	struct iovec iov[IOV_MAX];
	uint64_t off = 0, seed = 7;
	size_t i, n, len, pos;
	ssize_t w;

	while (off < total_bytes) {
		len = MIN(sizeof(buf), total_bytes - off);
		stream_fill(1, off, buf, len);
		/* Up to IOV_MAX iovecs of 1..2048 bytes, some empty. */
		for (n = 0, pos = 0; n < IOV_MAX && pos < len; n++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			i = MIN((size_t)(seed >> 33) % 2049, len - pos);
			iov[n].iov_base = buf + pos;
			iov[n].iov_len = i;
			pos += i;
		}
		w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail("writev of %zu iovecs: %s", n, strerror(errno));
		off += w; /* a short writev: the next round starts where it stopped */
	}
	return 0;
}

static _Atomic uint64_t zc_done, zc_copied, zc_max_id;

static void zc_drain(int fd, int wait_ms)
{
	struct pollfd pfd = { .fd = fd, .events = 0 };
	char control[128];
	struct msghdr m = { .msg_control = control };
	struct sock_extended_err *ee;
	struct cmsghdr *cm;

	for (;;) {
		m.msg_controllen = sizeof(control);
		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno != EAGAIN || wait_ms <= 0 || poll(&pfd, 1, wait_ms) <= 0)
				return;
			continue;
		}
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			ee = (struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			atomic_fetch_add(&zc_done, ee->ee_data - ee->ee_info + 1);
			if (ee->ee_data + 1ULL > atomic_load(&zc_max_id))
				atomic_store(&zc_max_id, ee->ee_data + 1ULL);
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				atomic_fetch_add(&zc_copied, ee->ee_data - ee->ee_info + 1);
		}
	}
}

static uint64_t zc_sent;
static int zc_refused; /* errno of a refused SO_ZEROCOPY, 0 when it was taken */

/* Like an application that supports kernels without zero-copy: when
 * SO_ZEROCOPY is refused, it sends by copying (no MSG_ZEROCOPY). */
static int send_zerocopy(int fd)
{
	int one = 1, zflag = MSG_ZEROCOPY;
	uint8_t *buf;
	uint64_t off;
	ssize_t n;

	if (!zc_early && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
		if (errno != EOPNOTSUPP && errno != ENOPROTOOPT)
			fail("SO_ZEROCOPY: %s", strerror(errno));
		zc_refused = errno;
		zflag = 0;
	}
	/* One buffer, never written while sends may still reference it. */
	buf = mmap(NULL, total_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	stream_fill(1, 0, buf, total_bytes);
	for (off = 0; off < total_bytes;) {
		n = send(fd, buf + off, MIN(MAX_MSG, total_bytes - off), zflag | MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == ENOBUFS)) {
			zc_drain(fd, 10);
			continue;
		}
		if (n < 0)
			fail("send(MSG_ZEROCOPY): %s", strerror(errno));
		off += n;
		if (zflag)
			zc_sent++;
		zc_drain(fd, 0);
	}
	return 0;
}

static int check_zerocopy(struct pair *p)
{
	char res[256];

	run_sender(p, send_zerocopy, false);
	zc_drain(p->cfd, 200);
	/* Each MSG_ZEROCOPY send gets the next notification id (0, 1, ...); an application
	 * frees its buffers by these ids, so more ids than sends, or fewer completions, is a
	 * broken contract. */
	snprintf(res, sizeof(res),
		 "so_zerocopy=%s sends=%" PRIu64 " completions=%" PRIu64 " copied=%" PRIu64
		 " ids=%" PRIu64,
		 zc_refused ? strerrorname_np(zc_refused) : "on", zc_sent, atomic_load(&zc_done),
		 atomic_load(&zc_copied), atomic_load(&zc_max_id));
	if (atomic_load(&zc_max_id) > zc_sent || atomic_load(&zc_done) > zc_sent)
		limit("%s: more completion ids than MSG_ZEROCOPY sends", res);
	if (atomic_load(&zc_done) < zc_sent)
		limit("%s: MSG_ZEROCOPY sends never completed", res);
	printf("ok %s %s\n", check_name, res);
	return 0;
}

/* ---- readers: what a socket's reader sees, blocking or not, under signals ------------------ */

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

enum reader_end { R_DEFAULT, R_SERVER, R_CLIENT };

static enum reader_end reader_end;
static bool use_sigalrm, sa_restart = true;
static uint64_t rr_count = 10000;
static size_t rr_size = 64;

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

static void alarm_mask(int how)
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

static void start_sender(struct sender *s, int fd, int (*fn)(int fd))
{
	s->fd = fd;
	s->fn = fn;
	s->close = false;
	if (pthread_create(&s->tid, NULL, sender_main, s))
		fail("pthread_create");
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

	start_sender(&s, wfd_of(p, R_SERVER), send_fn);
	alarm_start();
	off = read_fn(rfd_of(p, R_SERVER), 0);
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes", off, total_bytes);
	pthread_join(s.tid, NULL);
	return off;
}

static int check_blocking_sigalrm(struct pair *p)
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
static int check_splice_read(struct pair *p)
{
	uint64_t t0 = now_ms(), off = read_all_under_alarm(p, send_writev, splice_to_eof);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, off, now_ms() - t0);
	return 0;
}

/* A 64-byte header by recv() (non-blocking, poll), then splice() for the rest: a proxy that
 * parses a request head and splices the body (haproxy in HTTP mode). */
static int check_splice_after_header(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER);
	uint8_t hdr[64];
	uint64_t t0 = now_ms(), off = 0, hdr_reads = 0;
	struct sender s;
	ssize_t n;

	set_nonblock(fd, true);
	start_sender(&s, wfd_of(p, R_SERVER), send_plain);
	alarm_start();
	atomic_store(&phase, "reading the 64-byte header");
	while (off < sizeof(hdr)) {
		if (!wait_readable(fd, WAKE_TIMEOUT_MS))
			fail("header: not readable within %d ms after %" PRIu64 " bytes",
			     WAKE_TIMEOUT_MS, off);
		n = recv(fd, hdr + off, sizeof(hdr) - off, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			fail("header: recv: %s", n ? strerror(errno) : "EOF");
		hdr_reads++;
		off += n;
	}
	verify("header", 1, 0, hdr, sizeof(hdr));
	off = splice_to_eof(fd, off);
	alarm_stop();
	if (off != total_bytes)
		fail("EOF after %" PRIu64 " of %" PRIu64 " bytes (header by recv, rest by splice)",
		     off, total_bytes);
	pthread_join(s.tid, NULL);
	printf("ok %s reader=%s bytes=%" PRIu64 " header_reads=%" PRIu64 " elapsed_ms=%" PRIu64
	       "\n",
	       check_name, reader_name(p, R_SERVER), off, hdr_reads, now_ms() - t0);
	return 0;
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
static int check_waitall_stream(struct pair *p)
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
	start_sender(&s, wfd_of(p, R_SERVER), send_pieces);
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
static int check_rcvlowat_stream(struct pair *p)
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
	start_sender(&s, wfd_of(p, R_SERVER), send_pieces);
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
static int check_nonblock_then_blocking(struct pair *p)
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
	start_sender(&s, wfd_of(p, R_SERVER), send_plain);
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
static int check_epoll_et_nginx(struct pair *p)
{
	int fd = rfd_of(p, R_SERVER), ep = epoll_create1(EPOLL_CLOEXEC), n_ev, left;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	uint64_t t0 = now_ms(), off = 0, shorts = 0, zero_inq = 0, edges = 0;
	uint8_t buf[8192];
	bool rdhup = false;
	struct sender s;
	ssize_t n;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail("epoll: %s", strerror(errno));
	set_nonblock(fd, true);
	start_sender(&s, wfd_of(p, R_SERVER), send_plain);
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

static int c_rr_blocking_client(struct pair *p)
{
	return check_rr_client(p, false);
}
static int c_rr_poll_client(struct pair *p)
{
	return check_rr_client(p, true);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int c_poll(struct pair *p)
{
	return check_wake(p, W_POLL);
}
static int c_select(struct pair *p)
{
	return check_wake(p, W_SELECT);
}
static int c_epoll_lt(struct pair *p)
{
	return check_wake(p, W_EPOLL_LT);
}
static int c_epoll_et(struct pair *p)
{
	return check_wake(p, W_EPOLL_ET);
}
static int c_blocking(struct pair *p)
{
	return check_wake(p, W_BLOCKING);
}
static int c_waitall(struct pair *p)
{
	return check_wake(p, W_WAITALL);
}
static int c_reset_reader(struct pair *p)
{
	return check_reader_gone(p, true);
}
static int c_close_reader(struct pair *p)
{
	return check_reader_gone(p, false);
}
static int c_sendfile(struct pair *p)
{
	return sender_check(p, send_sendfile);
}
static int c_splice_write(struct pair *p)
{
	return sender_check(p, send_splice);
}
static int c_writev(struct pair *p)
{
	return sender_check(p, send_writev);
}
/* close() without shutdown() after a burst: every byte, then EOF. */
static int check_close_writer(struct pair *p)
{
	uint64_t ms;

	/* The reader tries once before the writer starts, as an event loop
	 * reads after accept(): the pair is then redirected from the first
	 * byte, not back only once the transfer drained (ll_reenter). */
	(void)!recv(p->sfd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT);
	ms = run_sender(p, send_plain, true);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, total_bytes, ms);
	return 0;
}

static int c_stream(struct pair *p)
{
	return sender_check(p, send_plain);
}

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

int main(int argc, char **argv)
{
	const char *connect_to = "127.0.0.1";
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
		fprintf(stderr, PROG ": unknown check '%s' (--list)\n", argv[1]);
		return 2;
	}
	check_name = checks[i].name;
	zc_early = !strcmp(check_name, "zerocopy-early");
	for (a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--mptcp")) {
			proto = IPPROTO_MPTCP;
		} else if (!strcmp(argv[a], "--connect") && a + 1 < argc) {
			connect_to = argv[++a];
		} else if (!strcmp(argv[a], "--bytes") && a + 1 < argc) {
			char *end;

			total_bytes = strtoull(argv[++a], &end, 10);
			if (*end == 'K')
				total_bytes <<= 10;
			else if (*end == 'M')
				total_bytes <<= 20;
			if (!total_bytes || (*end && end[1]))
				return fprintf(stderr, PROG ": bad --bytes\n"), 2;
		} else if (!strcmp(argv[a], "--port") && a + 1 < argc) {
			port = atoi(argv[++a]);
			if (port <= 0 || port > 65535)
				return fprintf(stderr, PROG ": bad --port\n"), 2;
		} else if (!strcmp(argv[a], "--timeout") && a + 1 < argc) {
			timeout_s = atoi(argv[++a]);
		} else if (!strcmp(argv[a], "--reader") && a + 1 < argc) {
			a++;
			if (!strcmp(argv[a], "server"))
				reader_end = R_SERVER;
			else if (!strcmp(argv[a], "client"))
				reader_end = R_CLIENT, client_reads = true;
			else
				return fprintf(stderr, PROG ": bad --reader (server, client)\n"), 2;
		} else if (!strcmp(argv[a], "--sigalrm")) {
			use_sigalrm = true;
		} else if (!strcmp(argv[a], "--no-restart")) {
			sa_restart = false;
		} else if (!strcmp(argv[a], "--count") && a + 1 < argc) {
			rr_count = strtoull(argv[++a], NULL, 10);
			if (!rr_count)
				return fprintf(stderr, PROG ": bad --count\n"), 2;
		} else if (!strcmp(argv[a], "--size") && a + 1 < argc) {
			rr_size = strtoull(argv[++a], NULL, 10);
			if (!rr_size || rr_size > MAX_MSG)
				return fprintf(stderr, PROG ": bad --size (1..65536)\n"), 2;
		} else {
			fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[a]);
			return 2;
		}
	}
	use_v6 = strchr(connect_to, ':');
	addr6.sin6_family = AF_INET6;
	addr4.sin_family = AF_INET;
	addr6.sin6_port = addr4.sin_port = htons(port);
	if (use_v6 ? inet_pton(AF_INET6, connect_to, &addr6.sin6_addr) != 1 :
		     inet_pton(AF_INET, connect_to, &addr4.sin_addr) != 1) {
		fprintf(stderr, PROG ": --connect '%s' is not an IP literal\n", connect_to);
		return 2;
	}
	if (!strcmp(check_name, "blocking-sigalrm"))
		use_sigalrm = true;
	if (!sa_restart && !use_sigalrm)
		return fprintf(stderr, PROG ": --no-restart needs --sigalrm\n"), 2;
	signal(SIGPIPE, SIG_IGN);
	/* Only the reader unblocks SIGALRM (alarm_start): every thread inherits this mask. */
	alarm_mask(SIG_BLOCK);
	if (pthread_create(&wd, NULL, watchdog, NULL))
		fail("pthread_create");
	pair_open(&p);
	return checks[i].fn(&p);
}
