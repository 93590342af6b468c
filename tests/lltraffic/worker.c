// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lltraffic's workers, one thread moving one direction of one socket, and the watchdog that
 * names the one stuck when the run takes too long.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/clock.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "lib/stream.h"
#include "lltraffic.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

struct run run = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	pthread_t tid;
	double timeout;
} wd = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len)
{
	while (len--) {
		h ^= *p++;
		h *= FNV_PRIME;
	}
	return h;
}

/*
 * Called on the way to _exit(1). A linger time of 0 makes the exit's close send RST instead of
 * FIN, so a peer in another process (send vs. serve) fails too instead of taking the EOF for a
 * complete stream (tcp_close() resets on SO_LINGER 0).
 */
void abort_connections(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++)
		setsockopt(run.w[i]->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void set_phase(char *buf, size_t len, const char *what, const struct sockaddr_storage *ss)
{
	char addr[ADDR_LEN];

	fmt_sa(ss, addr, sizeof(addr));
	snprintf(buf, len, "%s %s", what, addr);
	/* Each phase has its own buffer, filled before it is published: no torn reads. */
	atomic_store(&run.phase, buf);
}

void worker_init(struct worker *w, const char *name, int fd, uint64_t seed, uint64_t total)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->unit = "offset";
	w->fd = fd;
	w->seed = seed;
	w->total = total;
	w->chunk = run.o->chunk;
	w->corrupt_at = UINT64_MAX;
	w->writer_fd = -1;
	atomic_init(&w->doing, "starting");
	atomic_init(&w->off, 0);
}

void worker_register(struct worker *w)
{
	int n = atomic_load(&run.nw);

	run.w[n] = w;
	/* Publish only once the slot is filled: the watchdog reads up to nw. */
	atomic_store(&run.nw, n + 1);
}

int worker_start(struct worker *w, void *(*fn)(void *))
{
	int rc;

	worker_register(w);
	rc = pthread_create(&w->tid, NULL, fn, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

void workers_join(void)
{
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++)
		if (run.w[i]->started)
			pthread_join(run.w[i]->tid, NULL);
}

static void *watchdog_main(void *arg)
{
	char msg[2048];
	uint64_t deadline = now_ns() + (uint64_t)(wd.timeout * 1e9);
	struct timespec ts = { .tv_sec = deadline / NSEC_PER_SEC,
			       .tv_nsec = deadline % NSEC_PER_SEC };
	int i, n, shown = 0, rc = 0;
	size_t pos = 0;

	(void)arg;
	pthread_mutex_lock(&wd.lock);
	while (!wd.done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&wd.cond, &wd.lock, &ts);
	if (wd.done) {
		pthread_mutex_unlock(&wd.lock);
		return NULL;
	}
	pthread_mutex_unlock(&wd.lock);

	pos += snprintf(msg, sizeof(msg), "timed out after %g s", wd.timeout);
	n = atomic_load(&run.nw);
	for (i = 0; i < n && pos < sizeof(msg); i++) {
		struct worker *w = run.w[i];
		const char *doing = atomic_load(&w->doing);

		if (!strcmp(doing, "done"))
			continue;
		pos += snprintf(msg + pos, sizeof(msg) - pos,
				"%s %s %s (%s %" PRIu64 " of %" PRIu64 ")", shown++ ? ";" : ":",
				w->name, doing, w->unit, atomic_load(&w->off), w->total);
	}
	if (!n && pos < sizeof(msg))
		snprintf(msg + pos, sizeof(msg) - pos, " while %s", atomic_load(&run.phase));
	fail("%s", msg);
}

int watchdog_start(double timeout)
{
	pthread_condattr_t attr;
	int rc;

	wd.timeout = timeout;
	/* CLOCK_MONOTONIC: a wall-clock jump during a test must neither fire nor stall it. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&wd.cond, &attr);
	pthread_condattr_destroy(&attr);
	if (!rc)
		rc = pthread_create(&wd.tid, NULL, watchdog_main, NULL);
	return -rc;
}

void watchdog_stop(void)
{
	pthread_mutex_lock(&wd.lock);
	wd.done = true;
	pthread_cond_signal(&wd.cond);
	pthread_mutex_unlock(&wd.lock);
	pthread_join(wd.tid, NULL);
}

/* When the other process failed, our error is only its echo; point the reader there. */
const char *peer_hint(int err)
{
	return err == ECONNRESET || err == EPIPE ? " (the peer aborted: see its own error)" : "";
}

/* True once every reader has verified the pause point (called with run.lock held). */
static bool readers_at_pause(void)
{
	int i, n = atomic_load(&run.nw);

	for (i = 0; i < n; i++) {
		struct worker *w = run.w[i];

		if (w->reader && atomic_load(&w->off) < run.o->pause_after)
			return false;
	}
	return true;
}

static void writer_pause(struct worker *w)
{
	const struct opts *o = run.o;
	struct timespec poll_ts = { .tv_nsec = RESUME_POLL_NS };
	char content[sizeof(run.ready_info) + 32];
	bool first;
	int err;

	/* Idle means idle: nothing may still be in flight when the test sees the ready file. */
	atomic_store(&w->doing, "waiting for the readers to verify the bytes before the pause");
	pthread_mutex_lock(&run.lock);
	while (!readers_at_pause())
		pthread_cond_wait(&run.cond, &run.lock);
	first = !run.pause_ready;
	run.pause_ready = true;
	pthread_mutex_unlock(&run.lock);

	if (first && o->ready_file) {
		snprintf(content, sizeof(content), "paused=%" PRIu64 " %s", o->pause_after,
			 run.ready_info);
		err = write_file_atomic(o->ready_file, content);
		if (err)
			fail("cannot create ready file %s: %s", o->ready_file, strerror(-err));
	}
	atomic_store(&w->doing, resume_doing);
	while (access(o->resume_file, F_OK)) {
		if (errno != ENOENT)
			fail("cannot check resume file %s: %s", o->resume_file, strerror(errno));
		nanosleep(&poll_ts, NULL);
	}
}

/* --server-first: set once the client has verified every byte the server sent. */
static atomic_bool s2c_verified;

void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint64_t pause_at = w->pause ? run.o->pause_after : UINT64_MAX;
	uint64_t off = 0, h = FNV_OFFSET, rate_t0 = now_ns(), rate_base = 0;
	size_t max_write = w->chunk, len;
	uint8_t *buf;
	int err;

	buf = malloc(w->chunk);
	if (!buf)
		fail("%s: cannot allocate a %zu-byte buffer", w->name, w->chunk);
	if (w->rate && w->rate / RATE_HZ < max_write)
		max_write = w->rate / RATE_HZ ? w->rate / RATE_HZ : 1;
	if (w->wait_s2c) {
		atomic_store(&w->doing, "waiting for the server's bytes (--server-first)");
		while (!atomic_load(&s2c_verified))
			sleep_ns(200000);
		rate_t0 = now_ns();
	}

	for (;;) {
		if (off == pause_at) {
			writer_pause(w);
			pause_at = UINT64_MAX;
			/* Pace from the resume on; the pause must not be made up with a burst. */
			rate_t0 = now_ns();
			rate_base = off;
		}
		if (off >= w->total)
			break;
		len = MIN((uint64_t)max_write, MIN(w->total, pause_at) - off);
		atomic_store(&w->doing, "writing");
		stream_fill(w->seed, off, buf, len);
		if (w->corrupt_at >= off && w->corrupt_at - off < len)
			buf[w->corrupt_at - off] ^= 0xff;
		h = fnv1a(h, buf, len);
		err = write_full(w->fd, buf, len, &w->off);
		if (err)
			fail("%s: write failed at offset %" PRIu64 " of %" PRIu64 ": %s%s", w->name,
			     atomic_load(&w->off), w->total, strerror(-err), peer_hint(-err));
		off += len;
		if (w->rate) {
			atomic_store(&w->doing, "pacing (--rate)");
			sleep_until_ns(rate_t0 + (uint64_t)((unsigned __int128)(off - rate_base) *
							    1000000000U / w->rate));
		}
	}
	atomic_store(&w->doing, "half-closing");
	/* The reader can only tell "all bytes" from "stalled" by the FIN this sends. */
	if (shutdown(w->fd, SHUT_WR))
		fail("%s: shutdown(SHUT_WR) after %" PRIu64 " bytes failed: %s", w->name, off,
		     strerror(errno));
	w->fnv = h;
	free(buf);
	atomic_store(&w->doing, "done");
	return NULL;
}

/*
 * Peak bytes the kernel holds for one direction while its reader sleeps:
 * SO_MEMINFO of the reading socket (rmem_alloc: the TCP receive queue) and
 * of the writing one (wmem_queued: its write queue), and FIONREAD of the
 * reader, which on a socket in a sockmap counts the redirected bytes waiting
 * in its psock queue (tcp_bpf_ioctl(), kernel 6.18) and on a plain one the
 * TCP receive queue again. Printed as peak_rw (rmem + wmem_queued) and
 * peak_rwi (+ FIONREAD): a caller comparing plain TCP with loopless takes
 * peak_rw for the first and peak_rwi for the second.
 */
_Atomic uint64_t peak_rw, peak_rwi;

static void sample_mem(int rfd, int wfd)
{
	uint32_t rm[SK_MEMINFO_VARS] = {}, wm[SK_MEMINFO_VARS] = {};
	socklen_t len = sizeof(rm);
	uint64_t rw, rwi;
	int inq = 0;

	if (getsockopt(rfd, SOL_SOCKET, SO_MEMINFO, rm, &len))
		return;
	len = sizeof(wm);
	if (getsockopt(wfd, SOL_SOCKET, SO_MEMINFO, wm, &len))
		return;
	if (ioctl(rfd, FIONREAD, &inq))
		inq = 0;
	rw = (uint64_t)rm[SK_MEMINFO_RMEM_ALLOC] + wm[SK_MEMINFO_WMEM_QUEUED];
	rwi = rw + (uint64_t)inq;
	if (rw > atomic_load(&peak_rw))
		atomic_store(&peak_rw, rw);
	if (rwi > atomic_load(&peak_rwi))
		atomic_store(&peak_rwi, rwi);
}

static void reader_delay(struct worker *w, double seconds)
{
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);

	/* A reader that looked once (look_once(), at accept()) and then
	 * stalls: one loopless redirects into, which is what the
	 * backpressure tests are about. */
	atomic_store(&w->doing, "sleeping before the first read (--reader-delay)");
	while (now_ns() < end) {
		sample_mem(w->fd, w->writer_fd);
		sleep_ns(20000000);
	}
	sample_mem(w->fd, w->writer_fd);
}

void *reader_main(void *arg)
{
	struct worker *w = arg;
	uint64_t off = 0, h = FNV_OFFSET, last_stall = 0;
	uint8_t *buf;
	ssize_t n;
	size_t i;

	buf = malloc(w->chunk);
	if (!buf)
		fail("%s: cannot allocate a %zu-byte buffer", w->name, w->chunk);
	if (w->writer_fd >= 0 && run.o->reader_delay > 0)
		reader_delay(w, run.o->reader_delay);
	atomic_store(&w->doing, "reading");
	while (off < w->total) {
		if (w->writer_fd >= 0 && run.o->stall_every &&
		    off / run.o->stall_every != last_stall) {
			last_stall = off / run.o->stall_every;
			sleep_ns((uint64_t)run.o->stall_ms * 1000000);
		}
		n = read_some(w->fd, buf, MIN((uint64_t)w->chunk, w->total - off));
		if (n < 0)
			fail("%s: read failed at offset %" PRIu64 " of %" PRIu64 ": %s%s", w->name,
			     off, w->total, strerror(-n), peer_hint(-n));
		if (!n)
			fail("%s: premature EOF at offset %" PRIu64 " of %" PRIu64 " (%" PRIu64
			     " bytes missing)",
			     w->name, off, w->total, w->total - off);
		i = stream_diff(w->seed, off, buf, n);
		if (i < (size_t)n) {
			char where[128];

			stream_whose(buf + i, (size_t)n - i, w->seed, w->total, where,
				     sizeof(where));
			fail("%s: data mismatch at offset %" PRIu64
			     ": expected 0x%02x got 0x%02x (seed %#" PRIx64
			     ", in a %zd-byte read starting at offset %" PRIu64 "); %s",
			     w->name, off + i, stream_byte(w->seed, off + i), buf[i], w->seed, n,
			     off, where);
		}
		h = fnv1a(h, buf, n);
		off += n;
		atomic_store(&w->off, off);
		if (run.o->pause_after != UINT64_MAX) {
			pthread_mutex_lock(&run.lock);
			pthread_cond_broadcast(&run.cond);
			pthread_mutex_unlock(&run.lock);
		}
	}
	if (w->sets_s2c)
		atomic_store(&s2c_verified, true);
	atomic_store(&w->doing, w->total ? "waiting for EOF after the last byte" :
					   "waiting for the peer to verify and close");
	n = read_some(w->fd, buf, w->chunk);
	if (n < 0)
		fail("%s: read failed while waiting for EOF after %" PRIu64 " bytes: %s%s", w->name,
		     off, strerror(-n), peer_hint(-n));
	if (n > 0)
		fail("%s: %zd unexpected bytes after the expected %" PRIu64
		     " instead of EOF (first 0x%02x)",
		     w->name, n, off, buf[0]);
	w->fnv = h;
	free(buf);
	atomic_store(&w->doing, "done");
	return NULL;
}
