/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
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
 *
 * The parts: main.c (options, setup, the event loop), conn.c (a connection: its two sockets and
 * buffers), listen.c (the listeners, accepting, the epoll set).
 */
#ifndef LOOPLESS_LLSIDECAR_H
#define LOOPLESS_LLSIDECAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

extern const char *const role_names[];

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

extern struct config {
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
} cfg;

/* The epoll set, with every listener and watched end (listen.c). */
extern int epfd;
extern unsigned long open_conns;

/* --verbose: one line per connection event on stdout (stderr is for problems only). */
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int ep_add(int fd, void *ptr, uint32_t events);
int ep_mod(int fd, void *ptr, uint32_t events);

/* A connection accepted on @l (conn.c): its upstream, buffers and epoll registration. */
void conn_start(const struct listener *l, int fd, const struct sockaddr_storage *peer_in);
void conn_event(struct end *e, uint32_t events);
/* Frees the connections closed while handling the last batch of events. */
void conns_reap(void);

void listener_event(struct listener *l);
/* Accepts the connections whose delay is over; returns the epoll timeout (ms) until the next. */
int accept_due(void);
int add_listeners(enum role role, unsigned int port, const struct sockaddr_storage *to);

#endif
