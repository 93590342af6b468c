/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * looplessd's optional HTTP endpoint (libmicrohttpd), driven from the
 * daemon's one event loop (no thread of its own):
 *
 *   GET /metrics   Prometheus text format (what ops->render writes)
 *   GET /healthz   200 "ok" when ops->health says so, else 503 and why
 *   anything else  404; methods other than GET and HEAD: 405
 */
#ifndef LOOPLESS_METRICS_H
#define LOOPLESS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_METRICS_TEXT_MAX 56 /* "[" INET6_ADDRSTRLEN "]:65535" */

/* Where the endpoint listens: the "metrics" key (config_parse_metrics()). */
struct metrics_addr {
	bool enabled; /* false: no endpoint (the default, an empty value) */
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network order; IPv4 uses the first 4 bytes */
	uint16_t port; /* host order; 0: any free port (looplessd logs which) */
	char text[CONFIG_METRICS_TEXT_MAX]; /* canonical: "127.0.0.1:9464", "[::1]:9464" */
};

struct metrics;

struct metrics_ops {
	/* Write the exposition to @f: 0 or -errno (answered with 500). */
	int (*render)(FILE *f, void *arg);
	/* 0 when healthy, else -errno with @why set to one line. */
	int (*health)(char *why, size_t len, void *arg);
	void *arg;
};

/* A listening TCP socket on @addr (close-on-exec, non-blocking): the fd or
 * -errno. Kept apart from metrics_start() so that a reload can find out
 * whether an address is usable before it changes anything. */
int metrics_listen(const struct metrics_addr *addr);
/* "127.0.0.1:41873" or "[::1]:9464": where @fd is bound (port 0 resolved). */
void metrics_bound_text(int fd, char *buf, size_t len);
/* Serve HTTP on @listen_fd, which the server owns from now on (closed on
 * failure too). 0 or -errno. */
int metrics_start(struct metrics **out, int listen_fd, const struct metrics_ops *ops);
/* Close the listener and every connection. NULL is fine. */
void metrics_stop(struct metrics *m);
/* For the event loop: poll this fd for POLLIN, wait at most
 * metrics_timeout_ms() (-1: no limit), then call metrics_run(), which
 * handles whatever is ready and never blocks. */
int metrics_poll_fd(struct metrics *m);
int metrics_timeout_ms(struct metrics *m);
void metrics_run(struct metrics *m);

#endif
