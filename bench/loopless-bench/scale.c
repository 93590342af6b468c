// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* scale: --pairs connected pairs at once, a data check on --sample of them, then closing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/clock.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "bench.h"

#define SAMPLE_BYTES 1024
#define SYNC_POLL_NS 10000000ULL

/*
 * 100 000 pairs are 200 000 descriptors, and without CAP_SYS_RESOURCE (containers, this kind
 * of VM) the hard RLIMIT_NOFILE cannot be raised. So the pairs are split over worker
 * processes, each holding as many as its limit allows, and the workers connect one after the
 * other: the insert rate is that of one connecting thread (plus one accepting thread), as in a
 * single process. The parent drives the phases over pipes and takes the readings that are
 * host- or netns-wide (MemAvailable, lo counters) between them.
 */
struct scale_worker {
	pid_t pid;
	int cmd; /* parent -> worker: one command byte */
	int res; /* worker -> parent: one uint64_t (nanoseconds of the phase) */
	unsigned long first, n, sample;
	unsigned int l_first, nl; /* global listener indices [l_first, l_first + nl) */
};

enum { SC_CONNECT = 'c', SC_SAMPLE = 's', SC_CLOSE = 'x' };

/* Worker-side state. */
static struct listener *w_l;
static int *w_srv; /* [local listener * 65536 + client port] = accepted fd, or -1 */
static unsigned long w_accepted;
static const struct scale_worker *w_me;

/* The accepted socket's peer port says which client it belongs to. */
static void *scale_acceptor(void *arg)
{
	struct pollfd *pfd = xalloc(w_me->nl * sizeof(*pfd));
	struct sockaddr_storage peer;
	socklen_t len;
	unsigned int i;
	int fd;

	(void)arg;
	pin_cpu(o.cpu_server);
	for (i = 0; i < w_me->nl; i++)
		pfd[i] = (struct pollfd){ .fd = w_l[i].fd, .events = POLLIN };
	while (w_accepted < w_me->n) {
		if (poll(pfd, w_me->nl, 1000) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		for (i = 0; i < w_me->nl; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				len = sizeof(peer);
				fd = accept4(pfd[i].fd, (struct sockaddr *)&peer, &len,
					     SOCK_CLOEXEC);
				if (fd < 0)
					break;
				first_look(fd);
				w_srv[(size_t)i * 65536 + sa_port(&peer)] = fd;
				w_accepted++;
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fail("accept after %lu pairs: %s%s", w_me->first + w_accepted,
				     strerror(errno),
				     errno == EMFILE || errno == ENFILE ? " (open-file limit)" :
									  "");
		}
	}
	free(pfd);
	return NULL;
}

/* The i-th listener address: 127.0.0.1 + i inside 127.0.0.0/8, else the same address (the
 * kernel gives each listener its own port). */
static void scale_listener_addr(unsigned int i, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	uint32_t a;

	memcpy(ss, &o.sa, o.salen);
	if (ss->ss_family != AF_INET)
		return;
	a = ntohl(s4->sin_addr.s_addr);
	if ((a >> 24) != 127)
		return;
	a += i;
	if ((a >> 24) != 127 || (a & 0xff) == 0xff)
		fail("too many listeners for 127.0.0.0/8 starting at %s", o.addr);
	s4->sin_addr.s_addr = htonl(a);
}

static void reply(uint64_t v)
{
	if (write_full(w_me->res, &v, sizeof(v), NULL))
		_exit(1);
}

/* One way of a sample pair's exchange: @want written by the @from end, read back by @to. */
static void sample_leg(unsigned long pair, int wfd, int rfd, const char *from, const char *to,
		       const char *want)
{
	char buf[SAMPLE_BYTES];
	int r;

	r = write_full(wfd, want, SAMPLE_BYTES, NULL);
	if (r)
		fail("sample pair %lu: %s write: %s", pair, from, strerror(-r));
	r = read_exact(rfd, buf, SAMPLE_BYTES);
	if (r || memcmp(buf, want, SAMPLE_BYTES))
		fail("sample pair %lu: %s got %s", pair, to,
		     r < 0 ? strerror(-r) :
		     r	   ? "EOF" :
			     "wrong bytes");
}

/* One byte each way on a sample pair before its measured exchange (see SC_CONNECT). */
static void greet(unsigned long pair, int cfd, int sfd)
{
	char b = 'g';
	int r;

	r = write_full(cfd, &b, 1, NULL);
	if (!r)
		r = read_exact(sfd, &b, 1);
	if (!r)
		r = write_full(sfd, &b, 1, NULL);
	if (!r)
		r = read_exact(cfd, &b, 1);
	if (r)
		fail("sample pair %lu: greeting: %s", pair, r < 0 ? strerror(-r) : "EOF");
}

static void scale_worker_main(const struct scale_worker *w)
{
	struct sockaddr_storage ss;
	char want[SAMPLE_BYTES], where[160], cmd;
	unsigned long i, j, p, *idx;
	unsigned int *cport, *cl;
	uint64_t t0, rnd = 0x9e3779b97f4a7c15ULL ^ w->first;
	int *cfd, *sfd;
	socklen_t len;
	pthread_t ta;

	w_me = w;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	w_l = xalloc(w->nl * sizeof(*w_l));
	w_srv = malloc((size_t)w->nl * 65536 * sizeof(int));
	cfd = xalloc(w->n * sizeof(int));
	sfd = xalloc(w->n * sizeof(int));
	cport = xalloc(w->n * sizeof(unsigned int));
	cl = xalloc(w->n * sizeof(unsigned int));
	idx = xalloc(w->n * sizeof(unsigned long));
	if (!w_srv)
		fail("out of memory");
	memset(w_srv, 0xff, (size_t)w->nl * 65536 * sizeof(int));
	for (i = 0; i < w->nl; i++) {
		scale_listener_addr(w->l_first + (unsigned int)i, &ss);
		listener_open(&w_l[i], &ss, o.salen, true);
	}
	reply(0); /* ready */

	while (read_exact(w->cmd, &cmd, 1) == 0) {
		switch (cmd) {
		case SC_CONNECT:
			pin_cpu(o.cpu_client);
			t0 = now_ns();
			start_thread(&ta, scale_acceptor, NULL);
			for (i = 0; i < w->n; i++) {
				cl[i] = (unsigned int)(i % w->nl);
				cfd[i] = connect_to(&w_l[cl[i]]);
				if (cfd[i] < 0)
					fail("connect %s (pair %lu of %lu): %s%s",
					     sa_str(&w_l[cl[i]].sa, where, sizeof(where)),
					     w->first + i + 1, o.pairs, strerror(-cfd[i]),
					     cfd[i] == -EADDRNOTAVAIL ? " (out of local ports)" :
					     cfd[i] == -EMFILE || cfd[i] == -ENFILE ?
									" (open-file limit)" :
									"");
				len = sizeof(ss);
				getsockname(cfd[i], (struct sockaddr *)&ss, &len);
				cport[i] = sa_port(&ss);
			}
			pthread_join(ta, NULL);
			for (i = 0; i < w->n; i++) {
				sfd[i] = w_srv[(size_t)cl[i] * 65536 + cport[i]];
				if (sfd[i] < 0)
					fail("pair %lu: no accepted socket for client port %u",
					     w->first + i, cport[i]);
			}
			t0 = now_ns() - t0;
			/* The sample, chosen now (partial Fisher-Yates, fixed
			 * seed): each of its pairs exchanges a byte each way
			 * before the measured exchange, unmeasured. loopless
			 * redirects into a reader only once it has taken bytes
			 * with recvmsg (one that only looked may splice), so a
			 * pair's first bytes take TCP. */
			for (i = 0; i < w->n; i++)
				idx[i] = i;
			for (i = 0; i < w->sample; i++) {
				rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
				j = i + rnd % (w->n - i);
				p = idx[j], idx[j] = idx[i], idx[i] = p;
				greet(w->first + p, cfd[p], sfd[p]);
			}
			reply(t0);
			break;
		case SC_SAMPLE:
			/* The pairs picked and greeted at SC_CONNECT. */
			t0 = now_ns();
			for (i = 0; i < w->sample; i++) {
				p = idx[i];
				for (j = 0; j < SAMPLE_BYTES; j++)
					want[j] = (char)((w->first + p) * 31 + j);
				sample_leg(w->first + p, cfd[p], sfd[p], "client", "server", want);
				sample_leg(w->first + p, sfd[p], cfd[p], "server", "client", want);
			}
			reply(now_ns() - t0);
			break;
		case SC_CLOSE:
			t0 = now_ns();
			for (i = 0; i < w->n; i++) {
				close(cfd[i]);
				close(sfd[i]);
			}
			for (i = 0; i < w->nl; i++)
				close(w_l[i].fd);
			reply(now_ns() - t0);
			_exit(0);
		}
	}
	_exit(0); /* the parent went away */
}

static void sync_point(const char *done, const char *wait_for)
{
	char path[PATH_MAX];
	int fd;

	if (!o.sync_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", o.sync_dir, done);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("cannot create %s: %s", path, strerror(errno));
	close(fd);
	snprintf(path, sizeof(path), "%s/%s", o.sync_dir, wait_for);
	phase = wait_for;
	arm_watchdog(0);
	while (access(path, F_OK))
		sleep_until_ns(now_ns() + SYNC_POLL_NS);
}

/* Descriptors one process may hold: the soft limit raised as far as the hard one allows, or
 * the hard one too when we may (CAP_SYS_RESOURCE). */
static rlim_t fd_budget(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_max < need) {
		struct rlimit want = { need, need };

		if (!setrlimit(RLIMIT_NOFILE, &want))
			return need;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fail("setrlimit RLIMIT_NOFILE %llu: %s", (unsigned long long)rl.rlim_cur,
		     strerror(errno));
	return rl.rlim_cur;
}

static uint64_t scale_phase(struct scale_worker *w, unsigned int nw, unsigned int i, char cmd)
{
	unsigned int k;
	uint64_t v;
	int st = 0, r;

	if (cmd && write_full(w[i].cmd, &cmd, 1, NULL))
		r = -1;
	else
		r = read_exact(w[i].res, &v, sizeof(v));
	if (!r)
		return v;
	/* The worker failed: it said why on stderr (one line) unless a signal killed it. */
	waitpid(w[i].pid, &st, 0);
	w[i].pid = 0;
	for (k = 0; k < nw; k++)
		if (w[k].pid > 0)
			kill(w[k].pid, SIGKILL);
	if (WIFSIGNALED(st))
		fail("worker %u (pairs %lu-%lu) killed by signal %d in phase \"%s\"", i, w[i].first,
		     w[i].first + w[i].n, WTERMSIG(st), phase);
	_exit(1);
}

int run_scale(void)
{
	uint64_t connect_ns = 0, close_ns = 0, mem0, mem1;
	unsigned long per, first = 0, sampled = 0;
	unsigned int nw, i, l_next = 0;
	struct lo_stats l0, l1;
	struct scale_worker *w;
	rlim_t budget, need;
	int cmdp[2], resp[2];

	if (o.sample > o.pairs)
		o.sample = o.pairs;
	need = (rlim_t)o.pairs * 2 + LISTENERS_FOR(o.pairs) + 64;
	budget = fd_budget(need);
	if (budget < 64 + 2 * 16)
		fail("RLIMIT_NOFILE is %llu: too low to open pairs", (unsigned long long)budget);
	/* 64 spare descriptors per process, 1 per listener. */
	per = (budget - 64) / 2;
	while (per * 2 + LISTENERS_FOR(per) + 64 > budget)
		per--;
	nw = (unsigned int)((o.pairs + per - 1) / per);
	w = xalloc(nw * sizeof(*w));
	phase = "starting workers";
	arm_watchdog(nw * 1.0);
	for (i = 0; i < nw; i++) {
		w[i].first = first;
		w[i].n = o.pairs - first < per ? o.pairs - first : per;
		w[i].sample = o.sample * (first + w[i].n) / o.pairs - sampled;
		w[i].nl = (unsigned int)LISTENERS_FOR(w[i].n);
		w[i].l_first = l_next;
		first += w[i].n;
		sampled += w[i].sample;
		l_next += w[i].nl;
		if (pipe2(cmdp, O_CLOEXEC) || pipe2(resp, O_CLOEXEC))
			fail("pipe: %s", strerror(errno));
		w[i].pid = fork();
		if (w[i].pid < 0)
			fail("fork: %s", strerror(errno));
		if (!w[i].pid) {
			close(cmdp[1]);
			close(resp[0]);
			w[i].cmd = cmdp[0];
			w[i].res = resp[1];
			scale_worker_main(&w[i]);
		}
		close(cmdp[0]);
		close(resp[1]);
		w[i].cmd = cmdp[1];
		w[i].res = resp[0];
		scale_phase(w, nw, i, 0); /* ready: listeners open, memory allocated */
	}

	lo0 = lo_read();
	mem0 = mem_available_kb();
	phase = "connecting";
	arm_watchdog(o.pairs / 1000.0); /* generous: >= 1000 pairs/s */
	for (i = 0; i < nw; i++)
		connect_ns += scale_phase(w, nw, i, SC_CONNECT);
	mem1 = mem_available_kb();

	sync_point("connected", "go-sample");
	phase = "sample exchange";
	arm_watchdog(o.sample * 0.01);
	l0 = lo_read();
	for (i = 0; i < nw; i++)
		scale_phase(w, nw, i, SC_SAMPLE);
	l1 = lo_read();

	sync_point("sampled", "go-close");
	phase = "closing";
	arm_watchdog(o.pairs / 10000.0);
	for (i = 0; i < nw; i++) {
		close_ns += scale_phase(w, nw, i, SC_CLOSE);
		waitpid(w[i].pid, NULL, 0);
		w[i].pid = 0;
	}
	print_common("\"pairs\":%lu,\"procs\":%u,\"listeners\":%u,\"connect_s\":%.4f,"
		     "\"insert_rate\":%.1f,\"mem_kb\":%" PRId64 ",\"kb_per_pair\":%.3f,"
		     "\"sample_pairs\":%lu,\"sample_bytes\":%lu,\"sample_lo_rx\":%" PRIu64
		     ",\"sample_lo_tx\":%" PRIu64 ",\"close_s\":%.4f,\"close_rate\":%.1f,"
		     "\"nofile\":%llu",
		     o.pairs, nw, l_next, connect_ns / 1e9, o.pairs / (connect_ns / 1e9),
		     (int64_t)(mem0 - mem1), (double)(int64_t)(mem0 - mem1) / o.pairs, sampled,
		     sampled * 2 * SAMPLE_BYTES, l1.rx - l0.rx, l1.tx - l0.tx, close_ns / 1e9,
		     o.pairs / (close_ns / 1e9), (unsigned long long)budget);
	free(w);
	return 0;
}
