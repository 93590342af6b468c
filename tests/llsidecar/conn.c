// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* One proxied connection: the accepted socket, the proxy's own upstream one, a buffer each way. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/fail.h"
#include "llsidecar.h"

/*
 * The conntrack getsockopts (include/uapi/linux/netfilter_ipv4.h: SO_ORIGINAL_DST,
 * netfilter_ipv6/ip6_tables.h: IP6T_SO_ORIGINAL_DST). Those headers pull in linux/in.h, which
 * clashes with netinet/in.h, so the two stable numbers are repeated here.
 */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

const char *const role_names[] = {
	[ROLE_OUTBOUND] = "outbound",
	[ROLE_INBOUND] = "inbound",
	[ROLE_FORWARD] = "forward",
};

static unsigned long next_id = 1;
unsigned long open_conns;
/*
 * Connections closed while handling a batch of events: a later event of the same batch may
 * still point at them (the other end), so they are freed only once the batch is done.
 */
static struct conn *dead_conns;

void info(const char *fmt, ...)
{
	va_list ap;

	if (!cfg.verbose)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void conn_close(struct conn *c, bool reset)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int s;

	info("conn %lu closed%s: down->up %" PRIu64 " up->down %" PRIu64, c->id,
	     reset ? " (reset)" : "", c->dir[DOWN].total, c->dir[UP].total);
	for (s = DOWN; s <= UP; s++) {
		if (c->end[s].fd < 0)
			continue;
		/* tcp_close() sends RST instead of FIN on a zero linger time. */
		if (reset)
			setsockopt(c->end[s].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->end[s].fd); /* also leaves the epoll set */
		c->end[s].fd = -1;
	}
	c->dead = true;
	c->next_dead = dead_conns;
	dead_conns = c;
	open_conns--;
}

void conns_reap(void)
{
	struct conn *c;
	int s;

	while ((c = dead_conns)) {
		dead_conns = c->next_dead;
		for (s = DOWN; s <= UP; s++)
			free(c->dir[s].buf);
		free(c);
	}
}

static void __attribute__((format(printf, 2, 3))) conn_abort(struct conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errmsg("conn %lu (%s): %s", c->id, c->desc, msg);
	conn_close(c, true);
}

/* Bytes read from one side not yet written to the other. */
static size_t dir_pending(const struct dir *d)
{
	return d->len - d->off;
}

/* Watch for what each side can do next: read while there is room, write while there is data. */
static int conn_update(struct conn *c)
{
	int s, err;

	for (s = DOWN; s <= UP; s++) {
		const struct dir *in = &c->dir[s], *out = &c->dir[!s];
		struct end *e = &c->end[s];
		bool up_busy = s == UP && c->connecting;
		uint32_t ev = 0;

		if (!e->watched)
			continue;
		/*
		 * Both directions of this side are over (FIN in, FIN out) while the other side
		 * still drains. epoll reports EPOLLHUP whatever the mask, so leave the set
		 * rather than wake up for it until the connection closes.
		 */
		if (in->eof && out->shut) {
			if (epoll_ctl(epfd, EPOLL_CTL_DEL, e->fd, NULL))
				return -errno;
			e->watched = false;
			continue;
		}
		if (!in->eof && dir_pending(in) < BUF_SIZE && !up_busy)
			ev |= EPOLLIN;
		if (up_busy || (dir_pending(out) && !c->connecting))
			ev |= EPOLLOUT;
		if (ev == e->events)
			continue;
		err = ep_mod(e->fd, e, ev);
		if (err)
			return err;
		e->events = ev;
	}
	return 0;
}

/* Writes what dir[!s] holds to side S; passes its EOF on once drained. 0, or -errno. */
static int conn_flush(struct conn *c, int s)
{
	struct dir *d = &c->dir[!s];
	ssize_t n;

	if (s == UP && c->connecting)
		return 0; /* bytes read meanwhile wait for the handshake */
	while (dir_pending(d)) {
		/* MSG_NOSIGNAL: a peer gone away is an EPIPE to handle, not a SIGPIPE. */
		n = send(c->end[s].fd, d->buf + d->off, dir_pending(d), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		d->off += n;
	}
	d->off = d->len = 0;
	if (d->eof && !d->shut) {
		if (shutdown(c->end[s].fd, SHUT_WR))
			return -errno;
		d->shut = true;
	}
	return 0;
}

/* Reads from side S into dir[s] while there is room. 0, or -errno. */
static int conn_fill(struct conn *c, int s)
{
	struct dir *d = &c->dir[s];
	ssize_t n;

	while (!d->eof && dir_pending(d) < BUF_SIZE) {
		/* Room only before the unwritten bytes: move them to the front. */
		if (d->len == BUF_SIZE) {
			memmove(d->buf, d->buf + d->off, dir_pending(d));
			d->len -= d->off;
			d->off = 0;
		}
		n = recv(c->end[s].fd, d->buf + d->len, BUF_SIZE - d->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (!n)
			d->eof = true;
		d->len += n;
		d->total += n;
	}
	return 0;
}

static void conn_connected(struct conn *c)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char a[ADDR_LEN] = "?";

	c->connecting = false;
	if (!getsockname(c->end[UP].fd, (struct sockaddr *)&local, &len)) {
		sa_unmap(&local);
		fmt_sa(&local, a, sizeof(a));
	}
	info("conn %lu upstream connected from %s", c->id, a);
}

void conn_event(struct end *e, uint32_t events)
{
	struct conn *c = e->c;
	int s = e->side, soerr = 0, err = 0;
	socklen_t len = sizeof(soerr);

	if (c->dead)
		return;
	if (events & EPOLLERR) {
		getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (s == UP && c->connecting)
			conn_abort(c, "cannot connect upstream: %s", strerror(soerr ? soerr : EIO));
		else
			conn_abort(c, "%s socket: %s", s == UP ? "upstream" : "downstream",
				   strerror(soerr ? soerr : EIO));
		return;
	}
	if (s == UP && c->connecting) {
		if (!(events & (EPOLLOUT | EPOLLHUP)))
			return;
		if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr) {
			conn_abort(c, "cannot connect upstream: %s",
				   strerror(soerr ? soerr : errno));
			return;
		}
		conn_connected(c);
	}
	/* EPOLLHUP without EPOLLERR: both directions shut; a read returns what is left, then 0. */
	if (events & (EPOLLIN | EPOLLHUP))
		err = conn_fill(c, s);
	/* What came in on S goes out on !S right away; what waits for S goes out too. */
	if (!err)
		err = conn_flush(c, !s);
	if (!err)
		err = conn_flush(c, s);
	if (err) {
		conn_abort(c, "%s: %s", s == UP ? "upstream" : "downstream", strerror(-err));
		return;
	}
	if (c->dir[DOWN].shut && c->dir[UP].shut) {
		conn_close(c, false);
		return;
	}
	err = conn_update(c);
	if (err)
		conn_abort(c, "epoll_ctl: %s", strerror(-err));
}

/* Where the client was going (ORIG) and where the proxy connects (DST). 0, or -errno. */
static int upstream_for(const struct listener *l, int fd, const struct sockaddr_storage *local,
			struct sockaddr_storage *orig, struct sockaddr_storage *dst)
{
	socklen_t len = sizeof(*dst);
	int i, rc;

	if (l->role == ROLE_FORWARD) {
		*orig = *local; /* the client dialled this listener itself */
		*dst = l->to;
		return 0;
	}
	memset(dst, 0, sizeof(*dst));
	/*
	 * Ask conntrack in the family of the connection: an IPv4 connection accepted on a
	 * dual-stack socket (v4-mapped, LOCAL unmapped above) asks at SOL_IP, which
	 * ipv6_getsockopt() (net/ipv6/ipv6_sockglue.c) hands to ip_getsockopt() through
	 * udp_prot.getsockopt, and from there to conntrack's getorigdst().
	 */
	if (local->ss_family == AF_INET)
		rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
	else
		rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len);
	if (rc)
		return -errno;
	/* An IPv4 answer is a sockaddr_in whatever the socket's family. */
	sa_unmap(dst);
	*orig = *dst;
	if (l->role == ROLE_OUTBOUND) {
		/* Envoy's EDS: a known service address goes to its endpoint, the rest passes. */
		for (i = 0; i < cfg.n_endpoints; i++) {
			if (sa_equal(dst, &cfg.endpoints[i].from)) {
				*dst = cfg.endpoints[i].to;
				break;
			}
		}
	}
	/* Not redirected (a client that dialled the listener itself): connecting there loops. */
	if (sa_equal(dst, local))
		return -ELOOP;
	return 0;
}

static int upstream_socket(const struct listener *l, const struct sockaddr_storage *dst, int *out)
{
	struct sockaddr_storage src = { .ss_family = dst->ss_family };
	int one = 1, fd, err;

	fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Envoy sets TCP_NODELAY on every upstream: one request must not wait for Nagle. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		goto fail;
	if (l->role == ROLE_INBOUND && cfg.inbound_bind) {
		/*
		 * Istio's inbound passthrough: from 127.0.0.6 (or ::6, which istio-iptables adds
		 * to lo), so "-s 127.0.0.6 -o lo -j RETURN" lets it reach the app, not 15006.
		 */
		if (dst->ss_family == AF_INET)
			inet_pton(AF_INET, "127.0.0.6", &((struct sockaddr_in *)&src)->sin_addr);
		else
			inet_pton(AF_INET6, "::6", &((struct sockaddr_in6 *)&src)->sin6_addr);
		if (bind(fd, (struct sockaddr *)&src, sa_len(&src)))
			goto fail;
	}
	*out = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

void conn_start(const struct listener *l, int fd, const struct sockaddr_storage *peer_in)
{
	struct sockaddr_storage local, peer = *peer_in, dst, orig;
	char a[ADDR_LEN], b[ADDR_LEN], d[ADDR_LEN], o[ADDR_LEN];
	socklen_t len = sizeof(local);
	struct conn *c;
	int one = 1, s, ufd = -1, err;

	c = calloc(1, sizeof(*c));
	if (!c) {
		errmsg("out of memory for a connection");
		close(fd);
		return;
	}
	c->id = next_id++;
	c->l = l;
	c->end[DOWN].fd = fd;
	c->end[UP].fd = -1;
	open_conns++;
	for (s = DOWN; s <= UP; s++) {
		c->end[s].tag.kind = K_END;
		c->end[s].c = c;
		c->end[s].side = s;
	}
	if (getsockname(fd, (struct sockaddr *)&local, &len)) {
		conn_abort(c, "getsockname: %s", strerror(errno));
		return;
	}
	sa_unmap(&local);
	sa_unmap(&peer);
	fmt_sa(&peer, a, sizeof(a));
	fmt_sa(&local, b, sizeof(b));
	snprintf(c->desc, sizeof(c->desc), "%s %s <- %s", role_names[l->role], b, a);
	err = upstream_for(l, fd, &local, &orig, &dst);
	if (err == -ELOOP) {
		conn_abort(c, "not redirected here (its original destination is this listener)");
		return;
	}
	if (err) {
		conn_abort(c, "SO_ORIGINAL_DST: %s", strerror(-err));
		return;
	}
	fmt_sa(&orig, o, sizeof(o));
	fmt_sa(&dst, d, sizeof(d));
	snprintf(c->desc, sizeof(c->desc), "%s %s <- %s, to %s", role_names[l->role], b, a, d);
	info("conn %lu %s: %s -> %s, original %s, upstream %s", c->id, role_names[l->role], a, b, o,
	     d);

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		conn_abort(c, "TCP_NODELAY: %s", strerror(errno));
		return;
	}
	for (s = DOWN; s <= UP; s++) {
		c->dir[s].buf = malloc(BUF_SIZE);
		if (!c->dir[s].buf) {
			conn_abort(c, "out of memory for buffers");
			return;
		}
	}
	err = upstream_socket(l, &dst, &ufd);
	if (err == -EADDRNOTAVAIL) {
		conn_abort(c, "cannot bind the passthrough source %s: %s (add it to lo)",
			   dst.ss_family == AF_INET ? "127.0.0.6" : "::6", strerror(-err));
		return;
	}
	if (err) {
		conn_abort(c, "upstream socket: %s", strerror(-err));
		return;
	}
	c->end[UP].fd = ufd;
	if (connect(ufd, (struct sockaddr *)&dst, sa_len(&dst)) == 0) {
		conn_connected(c);
	} else if (errno == EINPROGRESS) {
		c->connecting = true;
	} else {
		conn_abort(c, "cannot connect upstream: %s", strerror(errno));
		return;
	}
	/* Registered with no events; conn_update() arms what each side needs. */
	for (s = DOWN; s <= UP; s++) {
		err = ep_add(c->end[s].fd, &c->end[s], 0);
		if (err) {
			conn_abort(c, "epoll_ctl: %s", strerror(-err));
			return;
		}
		c->end[s].watched = true;
	}
	err = conn_update(c);
	if (err)
		conn_abort(c, "epoll_ctl: %s", strerror(-err));
}
