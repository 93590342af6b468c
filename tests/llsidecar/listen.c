// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The listeners (outbound, inbound, --forward), accepting with --accept-delay, the epoll set. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/clock.h"
#include "lib/fail.h"
#include "llsidecar.h"

int epfd = -1;

int ep_add(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int ep_mod(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

static void accept_all(struct listener *l)
{
	struct sockaddr_storage peer;
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_start(l, fd, &peer);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN)
			errmsg("accept on port %u: %s", l->port, strerror(errno));
		return;
	}
}

void listener_event(struct listener *l)
{
	if (!cfg.accept_delay_ms) {
		accept_all(l);
		return;
	}
	/* --accept-delay: stop watching, accept what is pending once the delay is over. */
	if (ep_mod(l->fd, l, 0))
		errmsg("epoll_ctl: %s", strerror(errno));
	l->accept_at_ns = now_ns() + (uint64_t)cfg.accept_delay_ms * 1000000;
}

int accept_due(void)
{
	uint64_t now = now_ns(), next = 0;
	int i;

	for (i = 0; i < cfg.n_listeners; i++) {
		struct listener *l = &cfg.listeners[i];

		if (!l->accept_at_ns)
			continue;
		if (l->accept_at_ns <= now) {
			l->accept_at_ns = 0;
			accept_all(l);
			if (ep_mod(l->fd, l, EPOLLIN))
				errmsg("epoll_ctl: %s", strerror(errno));
			continue;
		}
		if (!next || l->accept_at_ns < next)
			next = l->accept_at_ns;
	}
	return next ? (int)((next - now) / 1000000 + 1) : -1;
}

static int listen_one(int family, unsigned int port, bool v6only, int *out)
{
	struct sockaddr_storage ss = { .ss_family = family };
	int one = 1, v6 = v6only, fd, err;

	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_ANY);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_any;
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)))
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, sa_len(&ss)) || listen(fd, LISTEN_BACKLOG))
		goto fail;
	*out = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

/*
 * Envoy in a dual-stack pod listens on 0.0.0.0:P and [::]:P (IPv6 only); --dual-stack makes
 * one [::]:P socket for both, whose IPv4 connections are v4-mapped AF_INET6 sockets.
 */
int add_listeners(enum role role, unsigned int port, const struct sockaddr_storage *to)
{
	int families[2] = { AF_INET, AF_INET6 }, i, fd = -1, err;

	for (i = cfg.dual_stack ? 1 : 0; i < 2; i++) {
		struct listener *l;

		if (cfg.n_listeners == MAX_LISTENERS) {
			errmsg("too many listeners (max %d)", MAX_LISTENERS);
			return -E2BIG;
		}
		err = listen_one(families[i], port, !cfg.dual_stack, &fd);
		if (err) {
			errmsg("cannot listen on %s port %u: %s",
			       families[i] == AF_INET ? "0.0.0.0" : "[::]", port, strerror(-err));
			return err;
		}
		l = &cfg.listeners[cfg.n_listeners++];
		l->tag.kind = K_LISTENER;
		l->role = role;
		l->fd = fd;
		l->port = port;
		if (to)
			l->to = *to;
	}
	return 0;
}
