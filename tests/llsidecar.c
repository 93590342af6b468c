// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * llsidecar: a transparent TCP proxy standing in for a service-mesh sidecar (Envoy in Istio,
 * linkerd2-proxy in Linkerd) in the loopless mesh tests.
 *
 * The mesh's iptables rules REDIRECT an application's outbound connections to the outbound
 * listener and the pod's inbound connections to the inbound listener; the proxy reads where
 * each connection was going (SO_ORIGINAL_DST, kept by conntrack) and opens its own upstream
 * connection there. Inbound upstream connections leave from 127.0.0.6 / ::6 (Istio's inbound
 * passthrough), so that the pod's rules let them reach the application instead of looping back
 * into the proxy. This gives loopless the socket shapes of a real mesh: the two ends of a hop
 * see different addresses, and the proxy's own connections cross to other pods.
 *
 * One thread, one epoll set, every socket non-blocking and level-triggered. Each connection has
 * one buffer per direction; a socket is read only while its buffer has room and written only
 * while the other direction has bytes, so a slow reader slows its writer (as TCP's flow
 * control would) instead of growing memory. EOF on one side is passed on as shutdown(SHUT_WR)
 * once its buffer is drained; a connection closes when both directions are done. A reset or an
 * error on either socket resets the other (SO_LINGER 0), so an end never takes a broken stream
 * for a complete one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

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

#define PROG "llsidecar"
#define BUF_SIZE (256 * 1024) /* per direction; Envoy's default buffer limit is 1 MiB */
#define MAX_EVENTS 64
#define MAX_ENDPOINTS 16
#define MAX_LISTENERS 16
#define LISTEN_BACKLOG 128
#define ADDR_LEN (INET6_ADDRSTRLEN + 16)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum kind {
	K_LISTENER,
	K_END,
	K_SIGNAL,
};

enum role {
	ROLE_OUTBOUND, /* Istio 15001, Linkerd 4140: to the original destination */
	ROLE_INBOUND, /* Istio 15006, Linkerd 4143: to the original destination, from 127.0.0.6 */
	ROLE_FORWARD, /* a plain listener to a fixed upstream (Envoy static listener) */
};

static const char *const role_names[] = {
	[ROLE_OUTBOUND] = "outbound",
	[ROLE_INBOUND] = "inbound",
	[ROLE_FORWARD] = "forward",
};

/* What an epoll event's data.ptr points at: every such struct starts with its kind. */
struct tag {
	enum kind kind;
};

struct listener {
	struct tag tag;
	enum role role;
	int fd;
	unsigned int port;
	struct sockaddr_storage to; /* ROLE_FORWARD: the upstream */
	uint64_t accept_at_ns; /* --accept-delay: 0, or when the pending connections are due */
};

/* One direction of a connection: bytes read from one side, not yet written to the other. */
struct dir {
	char *buf;
	size_t off; /* first byte not yet written */
	size_t len; /* bytes in buf */
	uint64_t total; /* bytes read so far */
	bool eof; /* the source side sent FIN */
	bool shut; /* FIN passed on: shutdown(SHUT_WR) on the other side */
};

struct conn;

struct end {
	struct tag tag;
	struct conn *c;
	int side;
	int fd;
	uint32_t events; /* what epoll watches now */
	bool watched; /* in the epoll set */
};

enum { DOWN, UP }; /* DOWN: the accepted socket, UP: the proxy's own connection */

struct conn {
	unsigned long id;
	const struct listener *l;
	struct end end[2];
	struct dir dir[2]; /* dir[s]: read from end[s], written to end[!s] */
	bool connecting; /* the upstream connect() is in progress */
	bool dead; /* closed; freed after the current batch of events */
	struct conn *next_dead;
	char desc[3 * ADDR_LEN + 64]; /* for error messages: who to where */
};

struct endpoint {
	struct sockaddr_storage from, to;
};

static struct {
	unsigned int outbound_port;
	unsigned int inbound_port;
	bool inbound_bind; /* bind 127.0.0.6 / ::6 before an inbound upstream connect */
	bool dual_stack;
	long uid; /* -1: stay */
	long gid;
	unsigned int accept_delay_ms;
	const char *ready_file;
	bool verbose;
	struct endpoint endpoints[MAX_ENDPOINTS];
	int n_endpoints;
	struct listener listeners[MAX_LISTENERS];
	int n_listeners;
} cfg = {
	.outbound_port = 15001,
	.inbound_port = 15006,
	.inbound_bind = true,
	.uid = -1,
	.gid = -1,
};

static int epfd = -1;
static unsigned long next_id = 1;
static unsigned long open_conns;
static struct tag sig_tag = { K_SIGNAL };
/*
 * Connections closed while handling a batch of events: a later event of the same batch may
 * still point at them (the other end), so they are freed only once the batch is done.
 */
static struct conn *dead_conns;

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s\n", msg);
}

/* --verbose: one line per connection event on stdout (stderr is for problems only). */
static void __attribute__((format(printf, 1, 2))) info(const char *fmt, ...)
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

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- addresses -------------------------------------------------------------------------- */

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void fmt_sa(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)ss, sa_len(ss), host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* ::ffff:a.b.c.d -> a.b.c.d (AF_INET), so addresses compare and print the same either way. */
static void sa_unmap(struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	struct sockaddr_in s4 = { .sin_family = AF_INET };

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
}

/* "198.19.0.10:80" or "[fd00:19::10]:80", numeric only: a name would be a DNS lookup. */
static int parse_hostport(const char *s, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	char host[NI_MAXHOST];
	const char *colon, *port;
	struct addrinfo *res;
	size_t n;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = close - s - 1;
		s++;
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		n = colon - s;
		port = colon + 1;
	}
	if (!n || n >= sizeof(host) || !*port)
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (getaddrinfo(host, port, &hints, &res))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* ---- epoll ------------------------------------------------------------------------------ */

static int ep_add(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int ep_mod(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

/* ---- connections ------------------------------------------------------------------------ */

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

static void conns_reap(void)
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

static void conn_event(struct end *e, uint32_t events)
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

static void conn_start(const struct listener *l, int fd, const struct sockaddr_storage *peer_in)
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

/* ---- listeners -------------------------------------------------------------------------- */

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

static void listener_event(struct listener *l)
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

/* Accepts the connections whose delay is over; returns the epoll timeout (ms) until the next. */
static int accept_due(void)
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
static int add_listeners(enum role role, unsigned int port, const struct sockaddr_storage *to)
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

/* ---- options and main ------------------------------------------------------------------- */

static const char help_text[] =
	"Usage: llsidecar [--outbound PORT] [--inbound PORT] [--forward PORT=ADDR:PORT]...\n"
	"                 [--endpoint ADDR:PORT=ADDR:PORT]... [--inbound-bind passthrough|none]\n"
	"                 [--dual-stack] [--uid UID] [--gid GID] [--ready-file PATH]\n"
	"                 [--accept-delay MS] [--verbose]\n"
	"       llsidecar --help | --version\n"
	"\n"
	"A transparent TCP proxy standing in for a mesh sidecar (Envoy, linkerd2-proxy) in the\n"
	"loopless tests. Connections redirected to it by iptables REDIRECT are forwarded to their\n"
	"original destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), byte for byte, with\n"
	"half-close passed on and resets propagated. One thread, epoll, non-blocking sockets.\n"
	"\n"
	"Options:\n"
	"  --outbound PORT       Outbound listener (default 15001, Istio; Linkerd: 4140; 0: none):\n"
	"                        connect to the original destination, or to its --endpoint.\n"
	"  --inbound PORT        Inbound listener (default 15006, Istio; Linkerd: 4143; 0: none):\n"
	"                        connect to the original destination, by default from 127.0.0.6\n"
	"                        or ::6 (Istio's inbound passthrough).\n"
	"  --inbound-bind MODE   passthrough (default): bind 127.0.0.6 / ::6 before an inbound\n"
	"                        connect (::6 must be on lo); none: let the kernel pick the source\n"
	"                        (Linkerd: the pod's own IP).\n"
	"  --forward PORT=ADDR:PORT\n"
	"                        A plain listener on PORT whose connections all go to ADDR:PORT (an\n"
	"                        Envoy static listener; apps dial it on 127.0.0.1). Repeatable.\n"
	"  --endpoint ADDR:PORT=ADDR:PORT\n"
	"                        Outbound connections whose original destination is the first\n"
	"                        address go to the second (Envoy picks a service's endpoint itself\n"
	"                        rather than dialling its ClusterIP). Repeatable, IPv6 in brackets.\n"
	"  --dual-stack          One [::] socket per port for IPv4 and IPv6 (v4-mapped) instead of\n"
	"                        0.0.0.0 and [::] (IPV6_V6ONLY) sockets.\n"
	"  --uid UID, --gid GID  After binding, drop to this uid/gid (the mesh's rules exempt it:\n"
	"                        Istio 1337, Linkerd 2102). --gid defaults to --uid.\n"
	"  --ready-file PATH     Created once listening, before dropping privileges; holds pid=PID.\n"
	"  --accept-delay MS     Accept a pending connection only MS ms after it arrived (tests: a\n"
	"                        client that writes before its proxy accepts).\n"
	"  --verbose             One line per connection on stdout: addresses, upstream, bytes.\n"
	"  -h, --help            This text.   --version   Print the version.\n"
	"\n"
	"Errors go to stderr, one line each, starting with \"llsidecar: \"; nothing else is printed\n"
	"without --verbose. SIGTERM or SIGINT: close everything and exit 0.\n"
	"Exit status: 0 clean stop, 1 runtime error, 2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"  llsidecar --uid 1337 --ready-file /tmp/t/ready &                  # Istio, 15001/15006\n"
	"  llsidecar --outbound 4140 --inbound 4143 --inbound-bind none --uid 2102   # Linkerd\n"
	"  llsidecar --outbound 0 --inbound 0 --forward 15080=127.0.0.1:8080\n"
	"  llsidecar --endpoint 198.19.0.11:80=198.18.1.5:8080 --uid 1337\n";

enum {
	OPT_OUTBOUND = 256,
	OPT_INBOUND,
	OPT_INBOUND_BIND,
	OPT_FORWARD,
	OPT_ENDPOINT,
	OPT_DUAL_STACK,
	OPT_UID,
	OPT_GID,
	OPT_READY_FILE,
	OPT_ACCEPT_DELAY,
	OPT_VERBOSE,
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{ "outbound", required_argument, NULL, OPT_OUTBOUND },
	{ "inbound", required_argument, NULL, OPT_INBOUND },
	{ "inbound-bind", required_argument, NULL, OPT_INBOUND_BIND },
	{ "forward", required_argument, NULL, OPT_FORWARD },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "dual-stack", no_argument, NULL, OPT_DUAL_STACK },
	{ "uid", required_argument, NULL, OPT_UID },
	{ "gid", required_argument, NULL, OPT_GID },
	{ "ready-file", required_argument, NULL, OPT_READY_FILE },
	{ "accept-delay", required_argument, NULL, OPT_ACCEPT_DELAY },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{},
};

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errmsg("%s (see '" PROG " --help')", msg);
	return 2;
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *end || *out > max ? -EINVAL : 0;
}

/* The forwards, kept until the wildcard listeners are made (after all options are read). */
struct forward {
	unsigned int port;
	struct sockaddr_storage to;
};

static struct forward forwards[MAX_LISTENERS];
static int n_forwards;

/* "A=B" with both sides ADDR:PORT; for --forward the left side is a bare port. */
static int parse_pair(const char *arg, bool left_port, unsigned int *port,
		      struct sockaddr_storage *from, struct sockaddr_storage *to)
{
	char left[NI_MAXHOST + 16];
	const char *eq = strchr(arg, '=');
	unsigned long p;

	if (!eq || (size_t)(eq - arg) >= sizeof(left))
		return -EINVAL;
	memcpy(left, arg, eq - arg);
	left[eq - arg] = '\0';
	if (parse_hostport(eq + 1, to))
		return -EINVAL;
	if (left_port) {
		if (parse_ulong(left, 65535, &p) || !p)
			return -EINVAL;
		*port = p;
		return 0;
	}
	return parse_hostport(left, from);
}

/* Returns -1 to go on, or an exit code. */
static int parse_opts(int argc, char **argv)
{
	unsigned long v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help_text, stdout);
			return 0;
		case OPT_VERSION:
			printf(PROG " %s\n", LOOPLESS_VERSION);
			return 0;
		case OPT_OUTBOUND:
		case OPT_INBOUND:
			if (parse_ulong(optarg, 65535, &v))
				return usage_error("invalid --%s '%s': expected a port 0..65535",
						   c == OPT_OUTBOUND ? "outbound" : "inbound",
						   optarg);
			*(c == OPT_OUTBOUND ? &cfg.outbound_port : &cfg.inbound_port) = v;
			break;
		case OPT_INBOUND_BIND:
			if (!strcmp(optarg, "passthrough"))
				cfg.inbound_bind = true;
			else if (!strcmp(optarg, "none"))
				cfg.inbound_bind = false;
			else
				return usage_error("invalid --inbound-bind '%s': expected "
						   "passthrough or none",
						   optarg);
			break;
		case OPT_FORWARD:
			if (n_forwards == MAX_LISTENERS)
				return usage_error("too many --forward (max %d)", MAX_LISTENERS);
			if (parse_pair(optarg, true, &forwards[n_forwards].port, NULL,
				       &forwards[n_forwards].to))
				return usage_error(
					"invalid --forward '%s': expected PORT=ADDR:PORT", optarg);
			n_forwards++;
			break;
		case OPT_ENDPOINT: {
			struct endpoint *e = &cfg.endpoints[cfg.n_endpoints];

			if (cfg.n_endpoints == MAX_ENDPOINTS)
				return usage_error("too many --endpoint (max %d)", MAX_ENDPOINTS);
			if (parse_pair(optarg, false, NULL, &e->from, &e->to))
				return usage_error("invalid --endpoint '%s': expected "
						   "ADDR:PORT=ADDR:PORT",
						   optarg);
			cfg.n_endpoints++;
			break;
		}
		case OPT_DUAL_STACK:
			cfg.dual_stack = true;
			break;
		case OPT_UID:
		case OPT_GID:
			if (parse_ulong(optarg, UINT32_MAX - 1, &v))
				return usage_error("invalid --%s '%s': expected a number",
						   c == OPT_UID ? "uid" : "gid", optarg);
			*(c == OPT_UID ? &cfg.uid : &cfg.gid) = v;
			break;
		case OPT_READY_FILE:
			cfg.ready_file = optarg;
			break;
		case OPT_ACCEPT_DELAY:
			if (parse_ulong(optarg, 600000, &v))
				return usage_error(
					"invalid --accept-delay '%s': expected 0..600000 ms",
					optarg);
			cfg.accept_delay_ms = v;
			break;
		case OPT_VERBOSE:
			cfg.verbose = true;
			break;
		case ':':
			return usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (cfg.gid < 0)
		cfg.gid = cfg.uid;
	if (cfg.uid < 0 && cfg.gid >= 0)
		return usage_error("--gid needs --uid");
	if (!cfg.outbound_port && !cfg.inbound_port && !n_forwards)
		return usage_error("no listener: --outbound 0, --inbound 0 and no --forward");
	return -1;
}

/* Touch PATH, written to a temporary name and renamed: a reader never sees it half-written. */
static int write_ready_file(const char *path)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "pid=%d\n", (int)getpid());
	if (fclose(f) || rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

static int drop_privileges(void)
{
	gid_t gid = cfg.gid;

	if (cfg.uid < 0)
		return 0;
	/* Groups first, uid last: once the uid is dropped the rest is no longer allowed. */
	if (setgroups(1, &gid) || setresgid(cfg.gid, cfg.gid, cfg.gid) ||
	    setresuid(cfg.uid, cfg.uid, cfg.uid)) {
		errmsg("cannot drop to uid %ld gid %ld: %s", cfg.uid, cfg.gid, strerror(errno));
		return -errno;
	}
	return 0;
}

static int setup(int *sfd)
{
	sigset_t mask;
	int i, err;

	if (cfg.outbound_port && add_listeners(ROLE_OUTBOUND, cfg.outbound_port, NULL))
		return -1;
	if (cfg.inbound_port && add_listeners(ROLE_INBOUND, cfg.inbound_port, NULL))
		return -1;
	for (i = 0; i < n_forwards; i++)
		if (add_listeners(ROLE_FORWARD, forwards[i].port, &forwards[i].to))
			return -1;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		errmsg("epoll_create1: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < cfg.n_listeners; i++) {
		err = ep_add(cfg.listeners[i].fd, &cfg.listeners[i], EPOLLIN);
		if (err) {
			errmsg("epoll_ctl: %s", strerror(-err));
			return -1;
		}
	}
	/* SIGTERM/SIGINT through the loop: a clean exit between two events, never inside one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL)) {
		errmsg("sigprocmask: %s", strerror(errno));
		return -1;
	}
	*sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sfd < 0 || ep_add(*sfd, &sig_tag, EPOLLIN)) {
		errmsg("signalfd: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (cfg.ready_file) {
		err = write_ready_file(cfg.ready_file);
		if (err) {
			errmsg("cannot create ready file %s: %s", cfg.ready_file, strerror(-err));
			return -1;
		}
	}
	return drop_privileges() ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct epoll_event ev[MAX_EVENTS];
	int sfd = -1, i, n, timeout, ret;

	ret = parse_opts(argc, argv);
	if (ret >= 0)
		return ret;
	if (setup(&sfd))
		return 1;
	for (;;) {
		timeout = accept_due();
		n = epoll_wait(epfd, ev, MAX_EVENTS, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errmsg("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			struct tag *t = ev[i].data.ptr;

			switch (t->kind) {
			case K_SIGNAL:
				/* Open connections are closed by the exit; nothing is left to flush
				 * that a peer could still read, so this is the clean stop. */
				info("stopping with %lu open connections", open_conns);
				return 0;
			case K_LISTENER:
				listener_event((struct listener *)t);
				break;
			case K_END:
				conn_event((struct end *)t, ev[i].events);
				break;
			}
		}
		conns_reap();
	}
}
