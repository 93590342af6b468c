// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The stream subcommands: pair (and hold), both ends in this process; serve and send, one each. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/clock.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "lltraffic.h"

/* The workers of pair: c2s writer, c2s reader, and with --duplex s2c writer, s2c reader. */
static struct worker pair_w[4];

static void pair_client_writer_init(const struct opts *o, int cfd)
{
	struct worker *w = &pair_w[0];

	worker_init(w, "client c2s writer", cfd, o->seed, o->bytes);
	w->corrupt_at = o->corrupt_at;
	w->rate = o->rate;
	w->pause = o->pause_after != UINT64_MAX;
	w->wait_s2c = o->server_first;
}

/* --accept-delay: the client writes from right after connect(), the server accepts late. */
static int pair_early_writer(const struct opts *o, struct conn *c)
{
	int err;

	pair_client_writer_init(o, c->cfd);
	err = worker_start(&pair_w[0], writer_main);
	if (err) {
		errmsg("cannot start the %s thread: %s", pair_w[0].name, strerror(-err));
		return err;
	}
	atomic_store(&run.phase, "sleeping before accept() (--accept-delay)");
	sleep_ns((uint64_t)o->accept_delay_ms * 1000000);
	return 0;
}

/* --greet: a byte each way, read with recv() (the sockets are blocking: poll first,
 * then MSG_DONTWAIT, as the readers do). Not with --accept-delay (no server end yet). */
static int greet(int cfd, int sfd)
{
	const int fds[2][2] = { { cfd, sfd }, { sfd, cfd } };
	struct pollfd pfd = { .events = POLLIN };
	char b = 'g';
	int i;

	for (i = 0; i < 2; i++) {
		if (write_full(fds[i][0], &b, 1, NULL))
			return -1;
		pfd.fd = fds[i][1];
		if (poll(&pfd, 1, 10000) != 1 || recv(fds[i][1], &b, 1, MSG_DONTWAIT) != 1)
			return -1;
	}
	return 0;
}

int cmd_pair(const struct opts *o, struct out *r)
{
	struct worker *w = pair_w;
	bool early = o->accept_delay_ms > 0;
	int i, n = 1, first = early ? 1 : 0, err;
	uint64_t t0 = now_ns(), elapsed;
	struct conn c;

	if (local_connect(o, &c, early ? pair_early_writer : NULL))
		return 1;
	if (o->greet && greet(c.cfd, c.sfd)) {
		errmsg("the greeting (a byte each way) failed");
		goto fail;
	}
	snprintf(run.ready_info, sizeof(run.ready_info), "client=%s server=%s\n", c.client,
		 c.server);
	if (o->pause_after == UINT64_MAX && ready_now(o, run.ready_info))
		goto fail;

	if (!early)
		pair_client_writer_init(o, c.cfd);
	worker_init(&w[n++], "server c2s reader", c.sfd, o->seed, o->bytes);
	w[1].writer_fd = c.cfd;
	if (o->duplex) {
		worker_init(&w[n++], "server s2c writer", c.sfd, o->seed + 1, o->s2c_bytes);
		worker_init(&w[n++], "client s2c reader", c.cfd, o->seed + 1, o->s2c_bytes);
		w[3].sets_s2c = o->server_first;
	}
	/* Register every worker before any starts: a pausing writer counts all readers. */
	w[1].reader = true;
	if (o->duplex)
		w[3].reader = true;
	for (i = first; i < n; i++) {
		w[i].rate = w[i].reader ? 0 : o->rate;
		w[i].pause = o->pause_after != UINT64_MAX;
		worker_register(&w[i]);
	}
	if (!early)
		t0 = now_ns();
	for (i = first; i < n; i++) {
		err = -pthread_create(&w[i].tid, NULL, w[i].reader ? reader_main : writer_main,
				      &w[i]);
		if (err) {
			errmsg("cannot start the %s thread: %s", w[i].name, strerror(-err));
			goto fail;
		}
		w[i].started = true;
	}
	workers_join();
	elapsed = now_ns() - t0;
	close(c.cfd);
	close(c.sfd);

	/* Readers verified every byte, so a difference here would be a bug in lltraffic. */
	for (i = 0; i + 1 < n; i += 2) {
		if (w[i].fnv != w[i + 1].fnv) {
			errmsg("%s checksum %016" PRIx64 " differs from %s checksum %016" PRIx64,
			       w[i].name, w[i].fnv, w[i + 1].name, w[i + 1].fnv);
			return 1;
		}
	}
	out_stream(r, o, w[1].fnv, o->duplex ? w[3].fnv : 0, elapsed, c.client, c.server);
	return 0;
fail:
	close(c.cfd);
	close(c.sfd);
	return 1;
}

int cmd_serve(const struct opts *o, struct out *r)
{
	static char listen_phase[ADDR_LEN + 64];
	struct sockaddr_storage bound, local, peer;
	char laddr[ADDR_LEN], client[ADDR_LEN], server[ADDR_LEN], content[ADDR_LEN + 16];
	struct worker rd, wr;
	uint64_t t0, elapsed;
	int lfd, fd = -1, err;

	err = listen_on(&o->listen_sa, &lfd);
	if (err) {
		fmt_sa(&o->listen_sa, laddr, sizeof(laddr));
		errmsg("cannot listen on %s: %s", laddr, strerror(-err));
		return 1;
	}
	err = sock_addr(lfd, false, &bound);
	if (err) {
		errmsg("getsockname on the listening socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&bound, laddr, sizeof(laddr));
	set_phase(listen_phase, sizeof(listen_phase), "waiting for a connection on", &bound);
	snprintf(content, sizeof(content), "listen=%s\n", laddr);
	err = ready_now(o, content);
	if (err)
		goto out;
	err = accept_one(lfd, &peer, &fd);
	if (err) {
		errmsg("accept on %s failed: %s", laddr, strerror(-err));
		goto out;
	}
	/* One connection only: a second client must be refused, not silently queued. */
	close(lfd);
	lfd = -1;
	err = sock_addr(fd, false, &local);
	if (err) {
		errmsg("getsockname on the accepted socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&peer, client, sizeof(client));
	fmt_sa(&local, server, sizeof(server));

	t0 = now_ns();
	if (o->rr) {
		err = rr_server_start(o, fd, &rd);
		if (err)
			goto out;
		workers_join();
		out_add(r, "count", false, "%" PRIu64, o->count);
		out_add(r, "size", false, "%" PRIu64, o->size);
		out_add(r, "elapsed_ms", false, "%" PRIu64, (now_ns() - t0) / 1000000);
		out_add(r, "client", true, "%s", client);
		out_add(r, "server", true, "%s", server);
		goto out;
	}
	worker_init(&rd, "server c2s reader", fd, o->seed, o->bytes);
	rd.reader = true;
	err = worker_start(&rd, reader_main);
	if (!err && o->duplex) {
		worker_init(&wr, "server s2c writer", fd, o->seed + 1, o->bytes);
		wr.rate = o->rate;
		wr.corrupt_at = o->corrupt_at;
		err = worker_start(&wr, writer_main);
	}
	if (err) {
		errmsg("cannot start a worker thread: %s", strerror(-err));
		goto out;
	}
	workers_join();
	elapsed = now_ns() - t0;
	out_stream(r, o, rd.fnv, o->duplex ? wr.fnv : 0, elapsed, client, server);
out:
	/* Without --duplex the client waits for this close to learn that all was verified. */
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	return err ? 1 : 0;
}

int cmd_send(const struct opts *o, struct out *r)
{
	static char connect_phase[ADDR_LEN + 32];
	struct sockaddr_storage local, remote;
	char client[ADDR_LEN], server[ADDR_LEN], content[2 * ADDR_LEN + 32];
	struct worker wr, rd;
	uint64_t t0, elapsed;
	int fd = -1, err;

	set_phase(connect_phase, sizeof(connect_phase), "connecting to", &o->connect_sa);
	if (client_socket(o, &o->connect_sa, &fd))
		return 1;
	t0 = now_ns();
	err = connect_to(fd, &o->connect_sa);
	if (err) {
		fmt_sa(&o->connect_sa, server, sizeof(server));
		errmsg("cannot connect to %s: %s", server, strerror(-err));
		goto out;
	}
	err = sock_addr(fd, false, &local);
	if (!err)
		err = sock_addr(fd, true, &remote);
	if (err) {
		errmsg("getsockname/getpeername on the client socket: %s", strerror(-err));
		goto out;
	}
	fmt_sa(&local, client, sizeof(client));
	fmt_sa(&remote, server, sizeof(server));
	snprintf(content, sizeof(content), "client=%s server=%s\n", client, server);
	err = ready_now(o, content);
	if (err)
		goto out;
	if (o->rr) {
		err = rr_client(o, fd, r, client, server);
		goto out;
	}

	worker_init(&wr, "client c2s writer", fd, o->seed, o->bytes);
	wr.rate = o->rate;
	wr.corrupt_at = o->corrupt_at;
	/* Without --duplex this reader expects 0 bytes then the EOF of serve's close. */
	worker_init(&rd, "client s2c reader", fd, o->seed + 1, o->duplex ? o->bytes : 0);
	rd.reader = true;
	err = worker_start(&wr, writer_main);
	if (!err)
		err = worker_start(&rd, reader_main);
	if (err) {
		errmsg("cannot start a worker thread: %s", strerror(-err));
		goto out;
	}
	workers_join();
	elapsed = now_ns() - t0;
	out_stream(r, o, wr.fnv, rd.fnv, elapsed, client, server);
out:
	close(fd);
	return err ? 1 : 0;
}
