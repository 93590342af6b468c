// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

_Atomic uint64_t io_eagain;
int io_poll_ms = -1;

int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		return -errno;
	return 0;
}

void look_once(int fd)
{
	(void)!recv(fd, &(char){ 0 }, 1, MSG_PEEK | MSG_DONTWAIT);
}

int connect_wait(int fd, const struct sockaddr_storage *sa, socklen_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t olen = sizeof(int);
	int soerr = 0, err;

	if (connect(fd, (const struct sockaddr *)sa, len)) {
		if (errno != EINPROGRESS && errno != EINTR)
			return -errno;
		while (poll(&pfd, 1, -1) < 0)
			if (errno != EINTR)
				return -errno;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &olen))
			return -errno;
		if (soerr)
			return -soerr;
	}
	err = set_nonblock(fd, false);
	return err;
}

int accept_wait(int lfd, struct sockaddr_storage *peer, int *out)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	socklen_t len;
	int fd;

	for (;;) {
		len = sizeof(*peer);
		fd = accept4(lfd, (struct sockaddr *)peer, peer ? &len : NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EAGAIN) {
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
	*out = fd;
	return 0;
}

/* Waits for @events on @fd after an EAGAIN, which is counted when a poll() came before it. */
static int wait_after_eagain(int fd, short events, bool polled)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	if (polled)
		atomic_fetch_add_explicit(&io_eagain, 1, memory_order_relaxed);
	if (poll(&pfd, 1, io_poll_ms) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

ssize_t read_some(int fd, void *buf, size_t len)
{
	bool polled = false;
	ssize_t n;
	int err;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		err = wait_after_eagain(fd, POLLIN, polled);
		if (err)
			return err;
		polled = true;
	}
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read_some(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return n < 0 ? n : (ssize_t)got;
		got += n;
	}
	return got;
}

/*
 * write(), not send(MSG_NOSIGNAL): it serves pipes too (loopless-bench's pipe transport) with no
 * failing send() before each write; every tool ignores SIGPIPE, so a peer gone away is an EPIPE
 * to report either way.
 */
int write_full(int fd, const void *buf, size_t len, _Atomic uint64_t *progress)
{
	const char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			err = wait_after_eagain(fd, POLLOUT, true);
			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
		if (progress)
			atomic_fetch_add(progress, (uint64_t)n);
	}
	return 0;
}

int write_file_atomic(const char *path, const char *content)
{
	char tmp[PATH_MAX];
	int fd, err;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	err = write_full(fd, content, strlen(content), NULL);
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
