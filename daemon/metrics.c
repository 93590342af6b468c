// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The HTTP endpoint, on libmicrohttpd (Debian 12: 0.9.75).
 *
 * What we rely on in libmicrohttpd:
 * - MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD is "external
 *   polling": MHD starts no thread; MHD_DAEMON_INFO_EPOLL_FD is one epoll fd
 *   that becomes readable when MHD has work, MHD_run() does that work
 *   without blocking, and MHD_get_timeout() says when MHD must run anyway
 *   (idle connections time out). So every request is answered on the
 *   daemon's own thread, between signals: a reload never races a scrape.
 * - MHD_OPTION_LISTEN_SOCKET hands MHD a socket we bound ourselves (so the
 *   caller learns bind errors before committing a reload, and port 0
 *   works); MHD_stop_daemon() closes it.
 * - The access handler may queue a response on its first call for a
 *   request; MHD strips the query string from @url.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>
#include "log.h"
#include "metrics.h"

#define CONNECTION_LIMIT 32
#define CONNECTION_TIMEOUT_S 10
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

struct metrics {
	struct MHD_Daemon *mhd;
	struct metrics_ops ops;
};

int metrics_listen(const struct metrics_addr *addr)
{
	struct sockaddr_storage ss = {};
	socklen_t sslen;
	int fd, one = 1, v6only;

	if (!addr->enabled)
		return -EINVAL;
	if (addr->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(addr->port);
		memcpy(&sin->sin_addr, addr->addr, 4);
		sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(addr->port);
		memcpy(&sin6->sin6_addr, addr->addr, 16);
		sslen = sizeof(*sin6);
	}
	fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A restarted daemon rebinds at once despite connections of the
	 * previous one in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	/* "[::]:PORT" is both families; any other IPv6 address only itself. */
	if (addr->family == AF_INET6) {
		v6only = !IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)addr->addr);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)))
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) || listen(fd, 64))
		goto fail;
	return fd;
fail:
	one = -errno;
	close(fd);
	return one;
}

void metrics_bound_text(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss = {};
	socklen_t sslen = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen)) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(sin->sin_port));
	}
}

/* Queue @body (malloc'ed; freed by MHD, or here on failure). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
			     char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
	if (!r) {
		free(body);
		return MHD_NO; /* MHD closes the connection */
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	     MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *fmt,
				  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *fmt,
				  ...)
{
	va_list ap;
	char *body;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return reply(c, status, CONTENT_TYPE_TEXT, body, (size_t)n);
}

static enum MHD_Result serve_metrics(struct metrics *m, struct MHD_Connection *c)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f;
	int err;

	f = open_memstream(&body, &len);
	if (!f)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	err = m->ops.render(f, m->ops.arg);
	if (fclose(f) && !err)
		err = -ENOMEM;
	if (err) {
		free(body);
		log_warn("metrics: cannot read the datapath's counters: %s", strerror(-err));
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "cannot read the datapath's counters: %s\n", strerror(-err));
	}
	return reply(c, MHD_HTTP_OK, CONTENT_TYPE_METRICS, body, len);
}

static enum MHD_Result serve_health(struct metrics *m, struct MHD_Connection *c)
{
	char why[256] = "";

	if (m->ops.health(why, sizeof(why), m->ops.arg))
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
	return reply_text(c, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct metrics *m = cls;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	log_debug("metrics: %s %s", method, url);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (!strcmp(url, "/metrics"))
		return serve_metrics(m, c);
	if (!strcmp(url, "/healthz"))
		return serve_health(m, c);
	return reply_text(c, MHD_HTTP_NOT_FOUND, "not found (try /metrics or /healthz)\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_warn("metrics: %s", buf);
}

int metrics_start(struct metrics **out, int listen_fd, const struct metrics_ops *ops)
{
	struct metrics *m;

	m = calloc(1, sizeof(*m));
	if (!m) {
		close(listen_fd);
		return -ENOMEM;
	}
	m->ops = *ops;
	/* The logger first, or MHD says so on stderr. */
	m->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, m,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
		(MHD_socket)listen_fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!m->mhd) {
		close(listen_fd);
		free(m);
		return -EIO;
	}
	*out = m;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	free(m);
}

int metrics_poll_fd(struct metrics *m)
{
	const union MHD_DaemonInfo *info;

	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return info ? info->epoll_fd : -1;
}

int metrics_timeout_ms(struct metrics *m)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(m->mhd, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

void metrics_run(struct metrics *m)
{
	MHD_run(m->mhd);
}
