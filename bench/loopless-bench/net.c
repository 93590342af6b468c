// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The bench's sockets: listeners (in the server's netns), connecting, the ends of a run. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "bench.h"

const char *sa_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_UNIX)
		snprintf(buf, len, "@%s", ((const struct sockaddr_un *)ss)->sun_path + 1);
	else
		fmt_sa(ss, buf, len);
	return buf;
}

static unsigned int unix_seq;

/*
 * --server-netns: a socket belongs for life to the netns of the thread that made it
 * (__sys_socket() passes current->nsproxy->net_ns down to sk_alloc()), and an accepted socket
 * to its listener's (sk_clone_lock() copies sk_net). So switching this thread's netns around socket() alone
 * puts every server end there; setns(CLONE_NEWNET) changes only the calling thread, and the
 * lo and --dev counters (read through /sys, whose view is fixed by the mount) are untouched.
 */
int netns_client = -1, netns_server = -1;

static void netns_enter(int fd, const char *what)
{
	if (fd >= 0 && setns(fd, CLONE_NEWNET))
		fail("setns to %s: %s", what, strerror(errno));
}

/* A listener on @sa (TCP, port 0 allowed) or a fresh abstract AF_UNIX name; with
 * --server-netns in that netns. */
void listener_open(struct listener *l, const struct sockaddr_storage *sa, socklen_t salen,
		   bool nonblock)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&l->sa;
	char where[160];
	int one = 1, fd, err;

	if (o.tr == TR_UNIX) {
		memset(&l->sa, 0, sizeof(l->sa));
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1, "loopless-bench-%d-%u",
			 (int)getpid(), unix_seq++);
		l->salen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(un->sun_path + 1);
	} else {
		memcpy(&l->sa, sa, salen);
		l->salen = salen;
	}
	netns_enter(netns_server, o.server_netns);
	fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
		    0);
	err = errno;
	netns_enter(netns_server >= 0 ? netns_client : -1, "the driver's own netns");
	if (fd < 0)
		fail("socket: %s", strerror(err));
	if (o.tr == TR_TCP)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&l->sa, l->salen))
		fail("bind %s: %s%s", sa_str(&l->sa, where, sizeof(where)), strerror(errno),
		     errno == EADDRNOTAVAIL ? " (is the address configured in this netns?)" : "");
	if (listen(fd, LISTEN_BACKLOG))
		fail("listen: %s", strerror(errno));
	if (o.tr == TR_TCP) {
		l->salen = sizeof(l->sa);
		getsockname(fd, (struct sockaddr *)&l->sa, &l->salen);
	}
	l->fd = fd;
}

void set_nodelay(int fd)
{
	int one = 1;

	if (o.tr == TR_TCP)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Every socket makes one read attempt as soon as it is set up, as Go's
 * netpoller does (a Read tries recvmsg before it parks): loopless redirects
 * into a reader only once it has been seen reading non-blocking (look_once()).
 * (A program that reads only after its first readiness event gets the first
 * message of each direction over TCP.) TCP only: unix sockets are not
 * redirected, so their reader need not be seen.
 */
void first_look(int fd)
{
	if (o.tr == TR_TCP)
		look_once(fd);
}

/*
 * A client socket connected to @sa, or -errno: connected the way event-driven programs connect
 * (connect_wait(): loopless leaves programs that connect blocking on TCP), and blocking
 * afterwards, for the writers.
 */
int connect_addr(const struct sockaddr_storage *sa, socklen_t salen)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err;

	if (fd < 0)
		return -errno;
	err = connect_wait(fd, sa, salen);
	if (err) {
		close(fd);
		return err;
	}
	first_look(fd);
	return fd;
}

int connect_to(const struct listener *l)
{
	return connect_addr(&l->sa, l->salen);
}

void make_ends(struct ends *e, bool nodelay)
{
	struct listener l;
	char where[160];
	int p1[2], p2[2], c, s, err;

	if (o.tr == TR_PIPE) {
		if (pipe2(p1, O_CLOEXEC) || pipe2(p2, O_CLOEXEC))
			fail("pipe: %s", strerror(errno));
		e->c_wr = p1[1];
		e->s_rd = p1[0];
		e->s_wr = p2[1];
		e->c_rd = p2[0];
		return;
	}
	/* A non-blocking listener, as an event-driven server has (loopless
	 * judges an accepted socket by its listener). */
	listener_open(&l, &o.sa, o.salen, true);
	/* Through proxies the connection reaches the listener only once each hop is up. */
	phase = o.connect ? "connecting through --connect" : "connecting";
	arm_watchdog(0);
	c = o.connect ? connect_addr(&o.csa, o.csalen) : connect_to(&l);
	if (c < 0)
		fail("connect %s: %s", o.connect ? o.connect : sa_str(&l.sa, where, sizeof(where)),
		     strerror(-c));
	err = accept_wait(l.fd, NULL, &s);
	if (err)
		fail("accept: %s", strerror(-err));
	first_look(s);
	close(l.fd);
	if (nodelay) {
		set_nodelay(c);
		set_nodelay(s);
	}
	e->c_rd = e->c_wr = c;
	e->s_rd = e->s_wr = s;
}

int read_exact(int fd, void *buf, size_t len)
{
	ssize_t n = read_full(fd, buf, len);

	return n < 0 ? (int)n : (size_t)n < len;
}
