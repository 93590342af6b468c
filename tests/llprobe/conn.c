// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* llprobe's connection to itself, the streams it carries, and the thread that sends one. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "lib/stream.h"
#include "llprobe.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif

const char *check_name = "?";
const char *_Atomic phase = "starting";
struct sockaddr_in6 addr6;
struct sockaddr_in addr4;
bool use_v6;
int port; /* --port: the listener's, 0 for any */
bool zc_early; /* zerocopy-early: SO_ZEROCOPY on before connect() and listen() */
int proto; /* 0, or IPPROTO_MPTCP */
uint64_t total_bytes = 4 << 20;
unsigned int timeout_s = 20;

bool client_reads;

void limit(const char *fmt, ...)
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

void verify(const char *who, uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t i = stream_diff(seed, off, buf, len);

	if (i < len)
		fail("%s: data mismatch at offset %" PRIu64 ": expected 0x%02x got 0x%02x", who,
		     off + i, stream_byte(seed, off + i), buf[i]);
}

void *watchdog(void *arg)
{
	(void)arg;
	sleep(timeout_s);
	fail("timed out after %u s while %s", timeout_s, atomic_load(&phase));
}

static socklen_t addr_len(void)
{
	return use_v6 ? sizeof(addr6) : sizeof(addr4);
}

static struct sockaddr *addr(void)
{
	return use_v6 ? (struct sockaddr *)&addr6 : (struct sockaddr *)&addr4;
}

void pair_open(struct pair *p)
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
		look_once(p->cfd);
	close(lfd);
}

void take_first_from(int wfd, int rfd)
{
	struct pollfd pfd = { .fd = rfd, .events = POLLIN };
	uint8_t b = 0x5a;

	atomic_store(&phase, "the reader taking a first byte");
	/* It looks first, as an event loop's first read attempt does: a reader
	 * never seen reading takes the pair out of the map at its first bytes
	 * (it may be blocking), one that looked gets them over TCP in the map. */
	(void)!recv(rfd, &b, 1, MSG_DONTWAIT);
	write_all(wfd, &b, 1);
	if (poll(&pfd, 1, WAKE_TIMEOUT_MS) != 1 || recv(rfd, &b, 1, MSG_DONTWAIT) != 1)
		fail("the first byte did not arrive within %d ms", WAKE_TIMEOUT_MS);
}

void take_first(struct pair *p)
{
	take_first_from(p->cfd, p->sfd);
}

void write_all(int fd, const uint8_t *buf, size_t len)
{
	int err = write_full(fd, buf, len, NULL);

	if (err)
		fail("send: %s", strerror(-err));
}

void write_stream(int fd, uint64_t seed, uint64_t off, size_t len)
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

/* Reads of exactly LEN bytes of stream(seed) from OFF, verified; fails at EOF. */
void read_stream(int fd, uint64_t seed, uint64_t off, uint64_t len)
{
	uint8_t buf[MAX_MSG];
	ssize_t n;

	while (len) {
		n = read_some(fd, buf, MIN(len, sizeof(buf)));
		if (n < 0)
			fail("recv at offset %" PRIu64 ": %s", off, strerror(-n));
		if (!n)
			fail("premature EOF at offset %" PRIu64 " (%" PRIu64 " bytes missing)", off,
			     len);
		verify("reader", seed, off, buf, n);
		off += n;
		len -= n;
	}
}

void expect_eof(int fd)
{
	char c;
	ssize_t n;

	atomic_store(&phase, "waiting for EOF");
	n = read_some(fd, &c, 1);
	if (n < 0)
		fail("recv at the end: %s instead of EOF", strerror(-n));
	if (n > 0)
		fail("an extra byte after the stream instead of EOF");
}

int inq(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n))
		fail("FIONREAD: %s", strerror(errno));
	return n;
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->fn(s->fd);
	if (s->close ? close(s->fd) : shutdown(s->fd, SHUT_WR))
		fail("%s: %s", s->close ? "close" : "shutdown", strerror(errno));
	return NULL;
}

void start_sender(struct sender *s, int fd, int (*fn)(int fd), bool close_fd)
{
	s->fd = fd;
	s->fn = fn;
	s->close = close_fd;
	if (pthread_create(&s->tid, NULL, sender_main, s))
		fail("pthread_create");
}

int send_plain(int fd)
{
	write_stream(fd, 1, 0, total_bytes);
	return 0;
}
