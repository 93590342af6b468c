// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* lltraffic's sockets: listeners, clients, and the one connection pair, hold and rr make. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "lltraffic.h"

/* An AF_INET6 socket only reaches IPv4 (wildcard or ::ffff:a.b.c.d) with IPV6_V6ONLY off. */
static bool sa_needs_dualstack(const struct sockaddr_storage *ss)
{
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	return ss->ss_family == AF_INET6 && (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_V4MAPPED(a));
}

/* Same endpoint, treating ::ffff:a.b.c.d as a.b.c.d (a dual-stack listener sees it so). */
static bool sa_same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_storage x = *a, y = *b;

	sa_unmap(&x);
	sa_unmap(&y);
	return sa_equal(&x, &y);
}

int listen_on(const struct sockaddr_storage *ss, int *out)
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

static int client_socket_bound(const struct sockaddr_storage *dst,
			       const struct sockaddr_storage *src, unsigned int client_port,
			       int *out)
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

int client_socket(const struct opts *o, const struct sockaddr_storage *dst, int *out)
{
	int err = client_socket_bound(dst, &o->bind_sa, o->client_port, out);

	if (err && o->client_port)
		errmsg("cannot bind the client socket to port %u: %s", o->client_port,
		       strerror(-err));
	else if (err)
		errmsg("cannot create the client socket: %s", strerror(-err));
	return err;
}

/*
 * Connects as event-driven programs do, non-blocking (connect_wait()), then the reader looks
 * once (look_once()); the socket is blocking again afterwards (the writers block on a full send
 * buffer; the readers use MSG_DONTWAIT).
 */
int connect_to(int fd, const struct sockaddr_storage *dst)
{
	int err = set_nonblock(fd, true);

	if (!err)
		err = connect_wait(fd, dst, sa_len(dst));
	if (!err)
		look_once(fd);
	return err;
}

/* From a non-blocking listener: poll() for a connection, accept it, look once. */
int accept_one(int lfd, struct sockaddr_storage *peer, int *out)
{
	int err = accept_wait(lfd, peer, out);

	if (!err)
		look_once(*out);
	return err;
}

int sock_addr(int fd, bool peer, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	int rc;

	memset(ss, 0, sizeof(*ss));
	rc = peer ? getpeername(fd, (struct sockaddr *)ss, &len) :
		    getsockname(fd, (struct sockaddr *)ss, &len);
	return rc ? -errno : 0;
}

/* Listen, connect, accept, and make sure the accepted socket is ours. Logs its errors. */
int local_connect(const struct opts *o, struct conn *c,
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
	err = client_socket(o, &dst, &c->cfd);
	if (err)
		goto out;
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

int ready_now(const struct opts *o, const char *content)
{
	int err;

	if (!o->ready_file)
		return 0;
	err = write_file_atomic(o->ready_file, content);
	if (err)
		errmsg("cannot create ready file %s: %s", o->ready_file, strerror(-err));
	return err;
}
