// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* llsidecar's main: options, the listeners, privileges, the event loop. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/addr.h"
#include "lib/fail.h"
#include "lib/io.h"
#include "lib/number.h"
#include "llsidecar.h"

#ifndef LOOPLESS_VERSION
#define LOOPLESS_VERSION "dev"
#endif

#define PROG "llsidecar"

const char prog_name[] = PROG;

struct config cfg = {
	.outbound_port = 15001,
	.inbound_port = 15006,
	.inbound_bind = true,
	.uid = -1,
	.gid = -1,
};

static struct tag sig_tag = { K_SIGNAL };

/* "198.19.0.10:80" or "[fd00:19::10]:80", numeric only: a name would be a DNS lookup. */
static int parse_hostport(const char *s, struct sockaddr_storage *ss)
{
	const char *colon, *port;
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
	if (!*port)
		return -EINVAL;
	return sa_parse(s, n, port, ss);
}

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
	char pid[32];
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
		snprintf(pid, sizeof(pid), "pid=%d\n", (int)getpid());
		err = write_file_atomic(cfg.ready_file, pid);
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
