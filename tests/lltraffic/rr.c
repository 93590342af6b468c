// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Request/response: the client sends --size bytes of stream(S), the server verifies and echoes
 * them, --count times; the client checks every echoed byte and reports latency percentiles.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "lib/stream.h"
#include "lltraffic.h"

static void *rr_server_main(void *arg)
{
	struct worker *w = arg;
	size_t size = w->chunk, i;
	uint8_t *buf;
	uint64_t round;
	ssize_t n;
	int err;

	buf = malloc(size);
	if (!buf)
		fail("%s: cannot allocate a %zu-byte buffer", w->name, size);
	for (round = 0; round < w->total; round++) {
		atomic_store(&w->doing, "reading a request");
		n = read_full(w->fd, buf, size);
		if (n < 0)
			fail("%s: read failed in round %" PRIu64 ": %s", w->name, round,
			     strerror(-n));
		if ((size_t)n < size)
			fail("%s: premature EOF in round %" PRIu64 " after %zd of %zu bytes",
			     w->name, round, n, size);
		i = stream_diff(w->seed, round * size, buf, size);
		if (i < size)
			fail("%s: request mismatch in round %" PRIu64 " at offset %" PRIu64
			     ": expected 0x%02x got 0x%02x",
			     w->name, round, round * size + i,
			     stream_byte(w->seed, round * size + i), buf[i]);
		atomic_store(&w->doing, "writing the echo");
		err = write_full(w->fd, buf, size, NULL);
		if (err)
			fail("%s: write failed in round %" PRIu64 ": %s", w->name, round,
			     strerror(-err));
		atomic_store(&w->off, round + 1);
	}
	atomic_store(&w->doing, "waiting for EOF after the last request");
	n = read_some(w->fd, buf, size);
	if (n != 0)
		fail("%s: expected EOF after %" PRIu64 " rounds, got %s", w->name, w->total,
		     n < 0 ? strerror(-n) : "more data");
	if (shutdown(w->fd, SHUT_WR))
		fail("%s: shutdown(SHUT_WR) failed: %s", w->name, strerror(errno));
	free(buf);
	atomic_store(&w->doing, "done");
	return NULL;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	size_t i;

	for (i = 0; i < len && a[i] == b[i]; i++)
		;
	return i;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const uint64_t *v, uint64_t n, unsigned int pct)
{
	uint64_t rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0] / 1000.0;
}

/* Without TCP_NODELAY, Nagle + delayed ACK would measure timers, not the data path. */
static int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		int err = -errno;

		errmsg("cannot set TCP_NODELAY: %s", strerror(-err));
		return err;
	}
	return 0;
}

/*
 * The client end of request/response on FD (rr, send --size): --count rounds of --size
 * bytes, every echoed byte checked, then half-close and wait for the server's EOF. Adds the
 * result fields to R. Returns 0, or 1 after printing why; an I/O error or a wrong byte ends
 * the run (fail()).
 */
int rr_client(const struct opts *o, int fd, struct out *r, const char *client, const char *server)
{
	static struct worker cli;
	uint64_t *lat = NULL, round, t0, t, elapsed;
	uint8_t *req = NULL, *resp = NULL;
	size_t size = o->size, i;
	int ret = 1, err;
	ssize_t n;

	if (set_nodelay(fd))
		return 1;
	lat = calloc(o->count, sizeof(*lat));
	req = malloc(size);
	resp = malloc(size);
	if (!lat || !req || !resp) {
		errmsg("cannot allocate buffers for %" PRIu64 " rounds of %zu bytes", o->count,
		       size);
		goto out;
	}
	worker_init(&cli, "client rr", fd, o->seed, o->count);
	cli.unit = "round";
	worker_register(&cli);

	t0 = now_ns();
	for (round = 0; round < o->count; round++) {
		stream_fill(o->seed, round * size, req, size);
		if (o->corrupt_at >= round * size && o->corrupt_at - round * size < size)
			req[o->corrupt_at - round * size] ^= 0xff;
		atomic_store(&cli.doing, "writing a request");
		t = now_ns();
		err = write_full(fd, req, size, NULL);
		if (err)
			fail("client rr: write failed in round %" PRIu64 ": %s%s", round,
			     strerror(-err), peer_hint(-err));
		atomic_store(&cli.doing, "reading the echo");
		n = read_full(fd, resp, size);
		if (n < 0)
			fail("client rr: read failed in round %" PRIu64 ": %s%s", round,
			     strerror(-n), peer_hint(-n));
		if ((size_t)n < size)
			fail("client rr: premature EOF in round %" PRIu64
			     " after %zd of %zu echoed bytes",
			     round, n, size);
		lat[round] = now_ns() - t;
		if (memcmp(req, resp, size)) {
			i = first_diff(resp, req, size);
			fail("client rr: echo mismatch in round %" PRIu64 " at offset %" PRIu64
			     ": expected 0x%02x got 0x%02x",
			     round, round * size + i, req[i], resp[i]);
		}
		atomic_store(&cli.off, round + 1);
	}
	if (shutdown(fd, SHUT_WR))
		fail("client rr: shutdown(SHUT_WR) failed: %s", strerror(errno));
	atomic_store(&cli.doing, "waiting for EOF after the last echo");
	n = read_some(fd, resp, size);
	if (n != 0)
		fail("client rr: expected EOF after the last echo, got %s",
		     n < 0 ? strerror(-n) : "more data");
	atomic_store(&cli.doing, "done");
	/* rr: the server thread of this process; send: none. */
	workers_join();
	elapsed = now_ns() - t0;

	qsort(lat, o->count, sizeof(*lat), cmp_u64);
	out_add(r, "count", false, "%" PRIu64, o->count);
	out_add(r, "size", false, "%zu", size);
	out_add(r, "p50_us", false, "%.1f", pct_us(lat, o->count, 50));
	out_add(r, "p99_us", false, "%.1f", pct_us(lat, o->count, 99));
	out_add(r, "max_us", false, "%.1f", lat[o->count - 1] / 1000.0);
	out_add(r, "elapsed_ms", false, "%" PRIu64, elapsed / 1000000);
	out_add(r, "client", true, "%s", client);
	out_add(r, "server", true, "%s", server);
	ret = 0;
out:
	free(lat);
	free(req);
	free(resp);
	return ret;
}

/* The echoing end of request/response on FD, in a worker thread like rr's server. */
int rr_server_start(const struct opts *o, int fd, struct worker *srv)
{
	int err;

	if (set_nodelay(fd))
		return -EINVAL;
	worker_init(srv, "server rr", fd, o->seed, o->count);
	srv->unit = "round";
	srv->chunk = o->size;
	err = worker_start(srv, rr_server_main);
	if (err)
		errmsg("cannot start the server thread: %s", strerror(-err));
	return err;
}

int cmd_rr(const struct opts *o, struct out *r)
{
	struct worker srv;
	int ret = 1;
	struct conn c;

	if (local_connect(o, &c, NULL))
		return 1;
	if (!rr_server_start(o, c.sfd, &srv))
		ret = rr_client(o, c.cfd, r, c.client, c.server);
	close(c.cfd);
	close(c.sfd);
	return ret;
}
