// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The writer's side: resets and closes mid-stream, and every way of sending a stream (send(),
 * sendfile(), splice(), writev(), MSG_ZEROCOPY), each read back and verified to EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "lib/stream.h"
#include "llprobe.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/* ---- resets and closes mid-stream ---------------------------------------------------------- */

static void linger0(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
		fail("SO_LINGER: %s", strerror(errno));
}

/* The writer resets (SO_LINGER 0) after 1 MiB: the reader gets a correct prefix, then
 * ECONNRESET or EOF, never a hang. */
int check_reset_writer(struct pair *p)
{
	uint8_t buf[MAX_MSG];
	uint64_t off = 0;
	ssize_t n;

	write_stream(p->cfd, 1, 0, 1 << 20);
	sleep_us(20000);
	linger0(p->cfd);
	close(p->cfd);
	atomic_store(&phase, "reading after the writer's reset");
	for (;;) {
		n = recv(p->sfd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		verify("reader", 1, off, buf, n);
		off += n;
	}
	printf("ok %s written=%d read=%" PRIu64 " end=%s\n", check_name, 1 << 20, off,
	       n < 0 ? strerror(errno) : "EOF");
	return 0;
}

/* The reader goes away (CLOSE: close() with unread bytes, RESET: SO_LINGER 0) while the writer
 * streams: the writer's send fails (EPIPE or ECONNRESET) instead of blocking forever. */
static int check_reader_gone(struct pair *p, bool reset)
{
	uint8_t buf[MAX_MSG];
	uint64_t off = 0, after = 0;
	ssize_t n;

	write_stream(p->cfd, 1, 0, 256 << 10);
	read_stream(p->sfd, 1, 0, 64 << 10);
	if (reset)
		linger0(p->sfd);
	close(p->sfd);
	off = 256 << 10;
	atomic_store(&phase, "writing to a peer that is gone");
	for (;;) {
		stream_fill(1, off, buf, sizeof(buf));
		n = send(p->cfd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		off += n;
		after += n;
		if (after > (1ULL << 30))
			fail("1 GiB accepted by send() after the reader closed");
	}
	if (errno != EPIPE && errno != ECONNRESET)
		fail("send after the reader closed: %s, expected EPIPE or ECONNRESET",
		     strerror(errno));
	printf("ok %s accepted_after_close=%" PRIu64 " error=%s\n", check_name, after,
	       strerror(errno));
	return 0;
}

/* ---- sendfile, splice, writev, MSG_ZEROCOPY ----------------------------------------------- */

/* Sends with FN from a thread, reads and verifies total_bytes and EOF here. */
static uint64_t run_sender(struct pair *p, int (*fn)(int fd), bool close_fd)
{
	uint64_t t0 = now_ms();
	struct sender s;

	take_first(p);
	start_sender(&s, p->cfd, fn, close_fd);
	atomic_store(&phase, "reading");
	read_stream(p->sfd, 1, 0, total_bytes);
	expect_eof(p->sfd);
	pthread_join(s.tid, NULL);
	return now_ms() - t0;
}

static int sender_check(struct pair *p, int (*fn)(int fd))
{
	uint64_t ms = run_sender(p, fn, false);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, total_bytes, ms);
	return 0;
}

static int stream_memfd(void)
{
	int fd = memfd_create("llprobe", MFD_CLOEXEC);
	uint8_t buf[MAX_MSG];
	uint64_t off;

	if (fd < 0)
		fail("memfd_create: %s", strerror(errno));
	for (off = 0; off < total_bytes; off += sizeof(buf)) {
		stream_fill(1, off, buf, sizeof(buf));
		if (pwrite(fd, buf, MIN(sizeof(buf), total_bytes - off), off) < 0)
			fail("pwrite: %s", strerror(errno));
	}
	return fd;
}

static int send_sendfile(int fd)
{
	int file = stream_memfd();
	off_t off = 0;
	ssize_t n;

	while ((uint64_t)off < total_bytes) {
		n = sendfile(fd, file, &off, total_bytes - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("sendfile at %jd: %s", (intmax_t)off, n ? strerror(errno) : "0");
	}
	close(file);
	return 0;
}

static int send_splice(int fd)
{
	uint8_t buf[MAX_MSG];
	uint64_t off;
	int pp[2];
	ssize_t n, left;

	if (pipe(pp))
		fail("pipe: %s", strerror(errno));
	for (off = 0; off < total_bytes; off += sizeof(buf)) {
		stream_fill(1, off, buf, sizeof(buf));
		left = MIN(sizeof(buf), total_bytes - off);
		if (write(pp[1], buf, left) != left)
			fail("write to pipe: %s", strerror(errno));
		while (left > 0) {
			n = splice(pp[0], NULL, fd, NULL, left, SPLICE_F_MOVE);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				fail("splice pipe -> socket: %s", n ? strerror(errno) : "0");
			left -= n;
		}
	}
	close(pp[0]);
	close(pp[1]);
	return 0;
}

int send_writev(int fd)
{
	static uint8_t buf[1 << 20];
	struct iovec iov[IOV_MAX];
	uint64_t off = 0, seed = 7;
	size_t i, n, len, pos;
	ssize_t w;

	while (off < total_bytes) {
		len = MIN(sizeof(buf), total_bytes - off);
		stream_fill(1, off, buf, len);
		/* Up to IOV_MAX iovecs of 1..2048 bytes, some empty. */
		for (n = 0, pos = 0; n < IOV_MAX && pos < len; n++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			i = MIN((size_t)(seed >> 33) % 2049, len - pos);
			iov[n].iov_base = buf + pos;
			iov[n].iov_len = i;
			pos += i;
		}
		w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail("writev of %zu iovecs: %s", n, strerror(errno));
		off += w; /* a short writev: the next round starts where it stopped */
	}
	return 0;
}

static _Atomic uint64_t zc_done, zc_copied, zc_max_id;

static void zc_drain(int fd, int wait_ms)
{
	struct pollfd pfd = { .fd = fd, .events = 0 };
	char control[128];
	struct msghdr m = { .msg_control = control };
	struct sock_extended_err *ee;
	struct cmsghdr *cm;

	for (;;) {
		m.msg_controllen = sizeof(control);
		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno != EAGAIN || wait_ms <= 0 || poll(&pfd, 1, wait_ms) <= 0)
				return;
			continue;
		}
		for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			ee = (struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			atomic_fetch_add(&zc_done, ee->ee_data - ee->ee_info + 1);
			if (ee->ee_data + 1ULL > atomic_load(&zc_max_id))
				atomic_store(&zc_max_id, ee->ee_data + 1ULL);
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				atomic_fetch_add(&zc_copied, ee->ee_data - ee->ee_info + 1);
		}
	}
}

static uint64_t zc_sent;
static int zc_refused; /* errno of a refused SO_ZEROCOPY, 0 when it was taken */

/* Like an application that supports kernels without zero-copy: when
 * SO_ZEROCOPY is refused, it sends by copying (no MSG_ZEROCOPY). */
static int send_zerocopy(int fd)
{
	int one = 1, zflag = MSG_ZEROCOPY;
	uint8_t *buf;
	uint64_t off;
	ssize_t n;

	if (!zc_early && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
		if (errno != EOPNOTSUPP && errno != ENOPROTOOPT)
			fail("SO_ZEROCOPY: %s", strerror(errno));
		zc_refused = errno;
		zflag = 0;
	}
	/* One buffer, never written while sends may still reference it. */
	buf = mmap(NULL, total_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	stream_fill(1, 0, buf, total_bytes);
	for (off = 0; off < total_bytes;) {
		n = send(fd, buf + off, MIN(MAX_MSG, total_bytes - off), zflag | MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == ENOBUFS)) {
			zc_drain(fd, 10);
			continue;
		}
		if (n < 0)
			fail("send(MSG_ZEROCOPY): %s", strerror(errno));
		off += n;
		if (zflag)
			zc_sent++;
		zc_drain(fd, 0);
	}
	return 0;
}

int check_zerocopy(struct pair *p)
{
	char res[256];

	run_sender(p, send_zerocopy, false);
	zc_drain(p->cfd, 200);
	/* Each MSG_ZEROCOPY send gets the next notification id (0, 1, ...); an application
	 * frees its buffers by these ids, so more ids than sends, or fewer completions, is a
	 * broken contract. */
	snprintf(res, sizeof(res),
		 "so_zerocopy=%s sends=%" PRIu64 " completions=%" PRIu64 " copied=%" PRIu64
		 " ids=%" PRIu64,
		 zc_refused ? strerrorname_np(zc_refused) : "on", zc_sent, atomic_load(&zc_done),
		 atomic_load(&zc_copied), atomic_load(&zc_max_id));
	if (atomic_load(&zc_max_id) > zc_sent || atomic_load(&zc_done) > zc_sent)
		limit("%s: more completion ids than MSG_ZEROCOPY sends", res);
	if (atomic_load(&zc_done) < zc_sent)
		limit("%s: MSG_ZEROCOPY sends never completed", res);
	printf("ok %s %s\n", check_name, res);
	return 0;
}

int c_reset_reader(struct pair *p)
{
	return check_reader_gone(p, true);
}
int c_close_reader(struct pair *p)
{
	return check_reader_gone(p, false);
}
int c_sendfile(struct pair *p)
{
	return sender_check(p, send_sendfile);
}
int c_splice_write(struct pair *p)
{
	return sender_check(p, send_splice);
}
int c_writev(struct pair *p)
{
	return sender_check(p, send_writev);
}
/* close() without shutdown() after a burst: every byte, then EOF. */
int check_close_writer(struct pair *p)
{
	uint64_t ms;

	/* run_sender(): the reader takes a first byte before the writer
	 * starts, so the pair is redirected from the stream's first byte, not
	 * back only once the transfer drained (ll_reenter). */
	ms = run_sender(p, send_plain, true);

	printf("ok %s bytes=%" PRIu64 " elapsed_ms=%" PRIu64 "\n", check_name, total_bytes, ms);
	return 0;
}

int c_stream(struct pair *p)
{
	return sender_check(p, send_plain);
}
