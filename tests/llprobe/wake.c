// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Wake-ups (poll, select, epoll level- and edge-triggered, a blocking recv(), MSG_WAITALL) and
 * what a reader sees queued (FIONREAD, MSG_PEEK, SO_RCVLOWAT).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "llprobe.h"

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
int check_epoll_et_rearm(struct pair *p)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int ep = epoll_create1(EPOLL_CLOEXEC), n1, n2, n3;
	uint8_t buf[2000];

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p->sfd, &ev))
		fail("epoll: %s", strerror(errno));
	take_first(p);
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

int check_fionread_peek(struct pair *p)
{
	uint8_t buf[3000], buf2[3000];
	int i, before, after;
	ssize_t n1, n2;

	take_first(p);
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

int check_rcvlowat(struct pair *p)
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

int c_poll(struct pair *p)
{
	return check_wake(p, W_POLL);
}
int c_select(struct pair *p)
{
	return check_wake(p, W_SELECT);
}
int c_epoll_lt(struct pair *p)
{
	return check_wake(p, W_EPOLL_LT);
}
int c_epoll_et(struct pair *p)
{
	return check_wake(p, W_EPOLL_ET);
}
int c_blocking(struct pair *p)
{
	return check_wake(p, W_BLOCKING);
}
int c_waitall(struct pair *p)
{
	return check_wake(p, W_WAITALL);
}
