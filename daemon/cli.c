// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The loopless command: look at and remove the pinned datapath (status,
 * stats, conns, uninstall), and run programs in a served cgroup (exec).
 * Reads the pins only; works with or without looplessd running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cgroup.h"
#include "config.h"
#include "stats.h"
#include "datapath.h"
#include "join.h"
#include "json.h"
#include "log.h"
#include "loopless.h"
#include "options.h"
#include "pins.h"
#include "procs.h"

#define EXIT_USAGE 2

struct opts {
	const char *pin_dir;
	bool json;
	unsigned int timeout_ms;
	bool timeout_set;
	bool force;
	const char *group;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: loopless [--pin-dir DIR] [--json] COMMAND\n"
		"       loopless [--pin-dir DIR] exec [--group GROUP] [--] CMD [ARG]...\n"
		"Run a program accelerated; inspect or remove the loopless datapath pinned by\n"
		"looplessd.\n"
		"\n"
		"Commands:\n"
		"  status      is the datapath loaded and attached; to which cgroups, with the\n"
		"              processes and systemd units in each; map fill\n"
		"              (exit 0 when attached, 1 otherwise)\n"
		"  stats       the datapath's counters, summed over CPUs, and the sockhash's\n"
		"              fill (sockets) and capacity (max_sockets); looplessd's\n"
		"              metrics endpoint serves the same numbers\n"
		"  conns       the sockets in the map, two lines per pair: the client end and\n"
		"              the server end it was paired with, each with its process, its\n"
		"              own local and remote address:port (behind a mesh's REDIRECT\n"
		"              they do not mirror), how its sends travel now (redirect or\n"
		"              tcp) and its redirected bytes unread; then sockets not paired\n"
		"              (provisional, unpaired, legacy). --json: one object per socket\n"
		"  exec        run CMD inside a cgroup looplessd serves, so that its local TCP\n"
		"              connections are accelerated: the first one it is attached to\n"
		"              (the oldest), or --group; CMD's exit status is loopless's\n"
		"  uninstall   stop redirecting, detach from every cgroup, wait until every\n"
		"              redirected byte is read, return every socket to plain TCP and\n"
		"              remove all pins; open connections keep working\n"
		"\n"
		"Options:\n"
		"  -p, --pin-dir DIR   bpffs directory looplessd pins into (default %s)\n"
		"  -j, --json          machine-readable output (status, stats, conns)\n"
		"  -t, --timeout SEC   uninstall: how long to wait for readers (default 30)\n"
		"  -f, --force         uninstall: do not wait; unread redirected bytes are lost\n"
		"  -g, --group GROUP   exec: the cgroup to run CMD in, absolute or relative to the\n"
		"                      cgroup2 mount: one looplessd serves, or a group below one\n"
		"                      (created if missing)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Exit status: 0 success, 1 runtime error (or not attached, for status), 2 usage\n"
		"(and exec into a group looplessd does not serve); exec: CMD's own, or 126\n"
		"when CMD cannot be run, 127 when it is not found.\n"
		"\n"
		"Examples:\n"
		"  loopless status\n"
		"  loopless stats --json | jq .redirected_bytes\n"
		"  loopless conns\n"
		"  loopless exec -- redis-server --port 7000\n"
		"  loopless exec --group accel/myapp -- ./app   (looplessd serving \"accel\")\n"
		"  loopless --pin-dir /sys/fs/bpf/loopless-test uninstall\n",
		CONFIG_DEFAULT_PIN_DIR);
}

static int open_pins(const struct opts *o, struct pinned *p)
{
	int err = pins_open(o->pin_dir, p);

	if (err == -ENOENT)
		log_error("no loopless datapath is pinned in %s (is looplessd running? "
			  "see --pin-dir)",
			  o->pin_dir);
	else if (err)
		log_error("cannot open the pins in %s: %s", o->pin_dir, strerror(-err));
	return err;
}

static const char *family_name(__u32 family)
{
	/* 0: a socket no namespace walk reached (LL_REC_UNSEEN). */
	return family == LL_AF_INET ? "ipv4" : family == LL_AF_INET6 ? "ipv6" : "unknown";
}

/* "127.0.0.1:80" or "[::1]:80" */
static void fmt_endpoint(char *out, size_t len, __u32 family, const __u32 addr[4], __u16 port)
{
	char a[INET6_ADDRSTRLEN];

	if (!family) {
		snprintf(out, len, "?");
	} else if (family == LL_AF_INET) {
		inet_ntop(AF_INET, &addr[3], a, sizeof(a));
		snprintf(out, len, "%s:%u", a, port);
	} else {
		inet_ntop(AF_INET6, addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, port);
	}
}

struct status_links {
	const struct opts *o;
	char mnt[CONFIG_PATH_MAX];
	int n;
};

static int print_link(const char *dir, const char *name, int link_fd, uint64_t cgroup_id, void *arg)
{
	struct status_links *s = arg;
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[CONFIG_PATH_MAX] = "(removed)";
	struct cgroup_units *u;
	bool have_units = true;
	int i;

	(void)dir;
	(void)name;
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) || !cgroup_id)
		return 0;
	if (!s->mnt[0] || cgroup_path_of(s->mnt, cgroup_id, path, sizeof(path)))
		snprintf(path, sizeof(path), "(cgroup id %" PRIu64 ")", cgroup_id);
	/* Which services it accelerates: their cgroups below it. */
	u = calloc(1, sizeof(*u));
	if (!u || path[0] != '/' || cgroup_units(path, u))
		have_units = false;
	if (s->o->json) {
		printf("%s{\"path\":", s->n ? "," : "");
		json_str(stdout, path);
		printf(",\"cgroup_id\":%" PRIu64 ",\"link_id\":%u,\"prog_id\":%u", cgroup_id,
		       info.id, info.prog_id);
		if (have_units) {
			printf(",\"processes\":%d,\"units\":[", u->procs);
			for (i = 0; i < u->n; i++) {
				printf("%s{\"unit\":", i ? "," : "");
				json_str(stdout, u->unit[i].name);
				printf(",\"processes\":%d}", u->unit[i].procs);
			}
			printf("]");
		}
		printf("}");
	} else {
		printf("  cgroup:   %s (id %" PRIu64 ", link %u, prog %u)\n", path, cgroup_id,
		       info.id, info.prog_id);
		if (have_units) {
			printf("            %d process%s", u->procs, u->procs == 1 ? "" : "es");
			for (i = 0; i < u->n; i++)
				printf("%s %s (%d)", i ? "," : "; units:", u->unit[i].name,
				       u->unit[i].procs);
			printf("%s\n", u->more ? ", ..." : "");
		}
	}
	free(u);
	s->n++;
	return 0;
}

static int cmd_status(const struct opts *o, char *const *args)
{
	struct status_links s = { .o = o };
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), prog_ids[4], attach_flags, n_progs = 4;
	uint32_t fill = 0;
	struct pinned p;
	int err;
	bool attached;

	(void)args;
	err = pins_open(o->pin_dir, &p);
	if (err) {
		if (o->json) {
			printf("{\"loaded\":false,\"attached\":false,\"pin_dir\":");
			json_str(stdout, o->pin_dir);
			printf("}\n");
		} else
			printf("loopless: not loaded (nothing pinned in %s)\n", o->pin_dir);
		return 1;
	}
	bpf_obj_get_info_by_fd(p.maps[PIN_SOCK_HASH], &info, &len);
	sockhash_count(p.maps[PIN_SOCK_HASH], &fill);
	/* BPF_PROG_QUERY on a sockmap (kernel 5.19+) lists its verdict prog. */
	if (bpf_prog_query(p.maps[PIN_SOCK_HASH], BPF_SK_MSG_VERDICT, 0, &attach_flags, prog_ids,
			   &n_progs))
		n_progs = 0;
	cgroup2_mount(s.mnt, sizeof(s.mnt));

	if (o->json) {
		printf("{\"loaded\":true,\"pin_dir\":");
		json_str(stdout, o->pin_dir);
		printf(",\"sk_msg_attached\":%s,\"sockets\":%u,\"max_sockets\":%u,\"cgroups\":[",
		       n_progs ? "true" : "false", fill, info.max_entries);
		pins_for_each_link(o->pin_dir, print_link, &s);
		attached = s.n > 0 && n_progs > 0;
		printf("],\"attached\":%s}\n", attached ? "true" : "false");
	} else {
		printf("pin dir:    %s\n", o->pin_dir);
		printf("sk_msg:     %s\n", n_progs ? "attached to the sockhash" : "not attached");
		printf("sockets:    %u of %u in the sockhash\n", fill, info.max_entries);
		pins_for_each_link(o->pin_dir, print_link, &s);
		attached = s.n > 0 && n_progs > 0;
		printf("loopless:   %s\n", attached ? "attached" :
					   s.n	    ? "loaded, sk_msg not attached" :
						      "loaded, attached to no cgroup");
	}
	pins_close(&p);
	return attached ? 0 : 1;
}

static int cmd_stats(const struct opts *o, char *const *args)
{
	uint64_t v[STAT_NR];
	struct pinned p;
	int i, err;

	(void)args;
	if (open_pins(o, &p))
		return 1;
	/* The same reader and names as looplessd's /metrics. */
	err = stats_read(p.maps[PIN_COUNTERS], p.maps[PIN_SOCK_HASH], v);
	pins_close(&p);
	if (err) {
		log_error("cannot read counters: %s", strerror(-err));
		return 1;
	}
	for (i = 0; i < STAT_NR; i++) {
		const char *key = stat_defs[i].key;
		char unnamed[32];

		if (!key) {
			snprintf(unnamed, sizeof(unnamed), "counter_%d", i);
			key = unnamed;
		}
		if (o->json) {
			fputs(i ? "," : "{", stdout);
			json_str(stdout, key);
			printf(":%" PRIu64, v[i]);
		} else {
			printf("%-18s %" PRIu64 "\n", key, v[i]);
		}
	}
	if (o->json)
		printf("}\n");
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct ll_conn_rec *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/* The record of the socket with @cookie in @recs (sorted by cookie). */
static const struct ll_conn_rec *find_rec(const struct ll_conn_rec *recs, size_t n, __u64 cookie)
{
	struct ll_conn_rec key = { .cookie = cookie };

	return cookie ? bsearch(&key, recs, n, sizeof(*recs), cmp_rec) : NULL;
}

/* What a socket in the map is: one end of a pair, a client end waiting for
 * its first segment, an end whose peer is gone or never came, or a socket
 * an older looplessd redirects. */
static const char *rec_state(const struct ll_conn_rec *r, const struct ll_conn_rec *peer)
{
	if (r->flags & LL_REC_LEGACY)
		return "legacy";
	if (peer && peer->peer_cookie == r->cookie)
		return "paired";
	if (r->flags & LL_SK_PROVISIONAL)
		return "provisional";
	return "unpaired";
}

/* How this socket's own sends travel now. */
static const char *rec_sends(const struct ll_conn_rec *r)
{
	return r->flags & LL_SK_TCP_USED ? "tcp" : "redirect";
}

/* What its reader has shown (enum ll_reader): redirected into only if "safe". */
static const char *rec_reader(const struct ll_conn_rec *r)
{
	if (r->flags & LL_REC_LEGACY)
		return "unknown";
	if (r->reader & LL_READER_LEAVING)
		return "leaving";
	if (r->reader & LL_READER_UNSAFE)
		return "blocking";
	if (r->reader & LL_READER_SAFE)
		return "safe";
	return r->reader & LL_READER_NB ? "looked" : "not_seen";
}

/* "llsidecar[812]", or "-" when no process holds the socket's file. */
static void fmt_owner(char *out, size_t len, const struct sock_owner *own)
{
	if (own && own->pid)
		snprintf(out, len, "%s[%d]", own->comm, (int)own->pid);
	else
		snprintf(out, len, "-");
}

static void print_conn_json(const struct ll_conn_rec *r, const struct ll_conn_rec *peer,
			    const struct sock_owner *own, bool first)
{
	char local[64], remote[64];

	fmt_endpoint(local, sizeof(local), r->family, r->laddr, r->lport);
	fmt_endpoint(remote, sizeof(remote), r->family, r->raddr, r->rport);
	printf("%s{\"netns_cookie\":%llu,\"family\":", first ? "" : ",",
	       (unsigned long long)r->key.netns);
	json_str(stdout, family_name(r->family));
	printf(",\"local\":");
	json_str(stdout, local);
	printf(",\"remote\":");
	json_str(stdout, remote);
	printf(",\"cookie\":%llu,\"role\":", (unsigned long long)r->cookie);
	json_str(stdout, r->flags & LL_REC_LEGACY ? "unknown" :
			 r->flags & LL_SK_ACTIVE  ? "client" :
						    "server");
	printf(",\"state\":");
	json_str(stdout, rec_state(r, peer));
	printf(",\"peer_cookie\":%llu,\"pid\":%d,\"comm\":",
	       peer ? (unsigned long long)peer->cookie : 0ULL, own ? (int)own->pid : 0);
	json_str(stdout, own && own->pid ? own->comm : "");
	printf(",\"sends\":");
	json_str(stdout, rec_sends(r));
	printf(",\"reader\":");
	json_str(stdout, rec_reader(r));
	/* netns_cookie is 0 for a pair across namespaces (LL_KEY_NODE). */
	printf(",\"unread_bytes\":%u,\"cross_netns\":%s}", r->queued,
	       r->flags & LL_SK_CROSS ? "true" : "false");
}

/* A pair's netns cookie, or "cross" for ends in two namespaces. */
static void fmt_netns(char *out, size_t len, const struct ll_conn_rec *r)
{
	if (r->key.netns == LL_KEY_NODE)
		snprintf(out, len, "cross");
	else
		snprintf(out, len, "%llu", (unsigned long long)r->key.netns);
}

/* One end: its process, its tuple as it sees it, its sends and queue. */
static void print_end(const char *lead, const char *role, const struct ll_conn_rec *r,
		      const char *arrow, const struct sock_owner *own)
{
	char l[64], rm[64], who[40];

	fmt_endpoint(l, sizeof(l), r->family, r->laddr, r->lport);
	fmt_endpoint(rm, sizeof(rm), r->family, r->raddr, r->rport);
	fmt_owner(who, sizeof(who), own);
	printf("%-10s %-6s %-20s %21s %s %-21s %-8s %-9s %u\n", lead, role, who, l, arrow, rm,
	       rec_sends(r), rec_reader(r), r->queued);
}

/*
 * Two lines per pair, the client end first: what it connected from and to,
 * then the socket that accepted it with the address it was connected from.
 * Behind a mesh's REDIRECT the two differ, which is the point of showing
 * both: "client app 198.18.1.5:39798 -> 198.19.0.10:80" over "<=> server
 * sidecar 127.0.0.1:15001 <- 198.18.1.5:39798".
 */
static void print_conns_text(const struct ll_conn_rec *recs, size_t n,
			     const struct sock_owner *owners, size_t n_owners)
{
	const struct ll_conn_rec *c, *sv;
	size_t i, pairs = 0, others = 0;
	char ns[24];

	for (i = 0; i < n; i++) {
		c = &recs[i];
		sv = find_rec(recs, n, c->peer_cookie);
		if (!(c->flags & LL_SK_ACTIVE) || strcmp(rec_state(c, sv), "paired"))
			continue;
		if (!pairs++)
			printf("%-10s %-6s %-20s %21s %2s %-21s %-8s %-9s %s\n", "NETNS", "END",
			       "PROCESS", "LOCAL", "", "REMOTE", "SENDS", "READER", "UNREAD");
		fmt_netns(ns, sizeof(ns), c);
		print_end(ns, "client", c, "->", procs_owner(owners, n_owners, c->ino));
		print_end("  <=>", "server", sv, "<-", procs_owner(owners, n_owners, sv->ino));
	}
	for (i = 0; i < n; i++) {
		const char *state;

		c = &recs[i];
		state = rec_state(c, find_rec(recs, n, c->peer_cookie));
		if (!strcmp(state, "paired"))
			continue;
		if (!others++)
			printf("%s%-10s %-11s %-20s %21s %2s %-21s %-8s %-9s %s\n",
			       pairs ? "\n" : "", "NETNS", "NOT PAIRED", "PROCESS", "LOCAL", "",
			       "REMOTE", "SENDS", "READER", "UNREAD");
		fmt_netns(ns, sizeof(ns), c);
		printf("%-10s %-11s ", ns, state);
		print_end("", "", c, "->", procs_owner(owners, n_owners, c->ino));
	}
	if (!pairs && !others)
		printf("no sockets in the map\n");
}

static int cmd_conns(const struct opts *o, char *const *args)
{
	struct sock_owner *owners;
	struct ll_conn_rec *recs;
	size_t i, n, n_owners = 0;
	int err;

	(void)args;
	err = datapath_conns(o->pin_dir, &recs, &n);
	if (err == -ENOENT) {
		log_error("no loopless datapath is pinned in %s (is looplessd running? "
			  "see --pin-dir)",
			  o->pin_dir);
		return 1;
	}
	if (err) {
		log_error("cannot list the sockets in %s: %s", o->pin_dir, strerror(-err));
		return 1;
	}
	qsort(recs, n, sizeof(*recs), cmp_rec);
	owners = calloc(n + 1, sizeof(*owners));
	for (i = 0; owners && i < n; i++)
		if (recs[i].ino)
			owners[n_owners++].ino = recs[i].ino;
	if (owners)
		procs_find_owners(owners, n_owners, "/proc");
	if (o->json) {
		printf("[");
		for (i = 0; i < n; i++)
			print_conn_json(&recs[i], find_rec(recs, n, recs[i].peer_cookie),
					procs_owner(owners, n_owners, recs[i].ino), !i);
		printf("]\n");
	} else {
		print_conns_text(recs, n, owners, n_owners);
	}
	free(owners);
	free(recs);
	return 0;
}

static int cmd_uninstall(const struct opts *o, char *const *args)
{
	uint64_t unread;
	int err = datapath_uninstall(o->pin_dir, o->timeout_ms, o->force, &unread);

	(void)args;
	if (err == -ENOENT) {
		log_error("nothing to uninstall: no datapath pinned in %s", o->pin_dir);
		return 1;
	}
	if (err == -EBUSY) {
		log_error("%llu redirected bytes still unread after %u s: stopped before taking "
			  "sockets out of the map, which would drop them. The datapath is "
			  "detached and redirects nothing; run uninstall again once the readers "
			  "have read, or add --force to drop the bytes",
			  (unsigned long long)unread, o->timeout_ms / 1000);
		return 1;
	}
	if (err) {
		log_error("uninstall from %s failed: %s", o->pin_dir, strerror(-err));
		return 1;
	}
	printf("loopless: uninstalled (%s removed, detached from every cgroup)\n", o->pin_dir);
	return 0;
}

/*
 * exec: into the chosen cgroup, then execvp(). Signals and the exit status
 * are CMD's own: it is this process. Errors are loopless's, one line each,
 * before CMD starts.
 */
static int cmd_exec(const struct opts *o, char *const *argv)
{
	char path[CONFIG_PATH_MAX], q[CONFIG_QUOTE_MAX];
	struct served s;
	int i, err;

	err = join_served(o->pin_dir, &s);
	if (err == -ENOENT) {
		log_error("exec: no loopless datapath is pinned in %s (is looplessd running? see "
			  "--pin-dir)",
			  o->pin_dir);
		return 1;
	}
	if (err) {
		log_error("exec: cannot read the datapath pinned in %s: %s", o->pin_dir,
			  strerror(-err));
		return 1;
	}
	if (!s.n) {
		log_error("exec: the datapath in %s is attached to no cgroup (is looplessd "
			  "running?)",
			  o->pin_dir);
		return 1;
	}
	err = join_pick(&s, o->group, path, sizeof(path));
	if (err == -ESRCH) {
		char list[1024];
		size_t at = 0;

		list[0] = '\0';
		for (i = 0; i < s.n && at < sizeof(list); i++)
			at += snprintf(list + at, sizeof(list) - at, "%s%s", i ? ", " : "",
				       s.path[i]);
		log_error("exec: %s is not a cgroup looplessd serves, nor below one (it serves %s)",
			  config_quote(q, sizeof(q), path), list);
		return EXIT_USAGE;
	}
	if (err) {
		log_error("exec: --group %s: %s", config_quote(q, sizeof(q), o->group),
			  err == -EMEDIUMTYPE ? "not on the cgroup2 file system" : strerror(-err));
		return EXIT_USAGE;
	}
	err = join_cgroup(s.mnt, path);
	if (err) {
		log_error("exec: cannot move into %s: %s", path,
			  err == -EIO	? "the move did not happen (/proc/self/cgroup)" :
			  err == -EBUSY ? "it has controllers enabled for its children (pick a "
					  "group below it with --group)" :
					  strerror(-err));
		return 1;
	}
	execvp(argv[0], argv);
	err = errno;
	log_error("exec: %s: %s", config_quote(q, sizeof(q), argv[0]), strerror(err));
	return err == ENOENT ? 127 : 126;
}

/* What a command takes beyond --pin-dir. */
enum {
	TAKES_JSON = 1 << 0, /* --json */
	TAKES_WAIT = 1 << 1, /* --timeout, --force */
	TAKES_GROUP = 1 << 2, /* --group */
	TAKES_CMD = 1 << 3, /* CMD [ARG]... after the options */
};

/* The commands, in the order --help and the error messages list them. */
static const struct command {
	const char *name;
	int (*run)(const struct opts *o, char *const *args);
	unsigned int takes;
} commands[] = {
	/* One per line: clang-format 14 would pack them in pairs. */
	/* clang-format off */
	{ "status", cmd_status, TAKES_JSON },
	{ "stats", cmd_stats, TAKES_JSON },
	{ "conns", cmd_conns, TAKES_JSON },
	{ "exec", cmd_exec, TAKES_GROUP | TAKES_CMD },
	{ "uninstall", cmd_uninstall, TAKES_WAIT },
	/* clang-format on */
};

#define N_COMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static int find_command(const char *name)
{
	int i;

	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return i;
	return -1;
}

/* "a, b and c" of the commands whose takes has @bit (every command for 0);
 * "a only" when there is one. */
static const char *takers(unsigned int bit, char *out, size_t len)
{
	int i, n = 0, seen = 0;
	size_t at = 0;

	for (i = 0; i < N_COMMANDS; i++)
		n += !bit || (commands[i].takes & bit);
	out[0] = '\0';
	for (i = 0; i < N_COMMANDS && at < len; i++) {
		if (bit && !(commands[i].takes & bit))
			continue;
		seen++;
		at += snprintf(out + at, len - at, "%s%s",
			       seen == 1	? "" :
			       seen == n && bit ? " and " :
						  ", ",
			       commands[i].name);
	}
	if (n == 1 && at < len)
		snprintf(out + at, len - at, " only");
	return out;
}

static const char *command_list(char *out, size_t len)
{
	return takers(0, out, len);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pin-dir", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
		{ "group", required_argument, NULL, 'g' },   { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },	     {},
	};
	struct opts o = { .pin_dir = CONFIG_DEFAULT_PIN_DIR, .timeout_ms = 30000 };
	char msg[CONFIG_ERR_MAX], q[CONFIG_QUOTE_MAX], names[128];
	unsigned long secs;
	const char *cmd = NULL;
	size_t k;
	int c;

	log_setup("loopless", LOG_LEVEL_INFO);
	/* Errors are ours, one line each (see options_error()). */
	opterr = 0;
	/* "+" stops at the command; parsing then goes on after it, so options
	 * work on either side: `loopless --json stats`, `loopless stats --json`. */
	for (;;) {
		c = getopt_long(argc, argv, "+:p:jt:fg:hV", longopts, NULL);
		if (c == -1) {
			/* exec: the rest (after "--", or from the first word
			 * that is not an option) is the command. */
			if (cmd || optind >= argc)
				break;
			cmd = argv[optind++];
			continue;
		}
		switch (c) {
		case 'p':
			if (config_check_pin_dir(optarg, msg, sizeof(msg))) {
				log_error("--pin-dir: %s", msg);
				return EXIT_USAGE;
			}
			o.pin_dir = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			if (config_parse_uint(optarg, 3600, &secs)) {
				log_error("--timeout: \"%s\" is not a number of seconds (0-3600)",
					  config_quote(q, sizeof(q), optarg));
				return EXIT_USAGE;
			}
			o.timeout_ms = (unsigned int)secs * 1000;
			o.timeout_set = true;
			break;
		case 'f':
			o.force = true;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("loopless %s\n", LOOPLESS_VERSION);
			return 0;
		default:
			options_error(msg, sizeof(msg), c, longopts, argv, optind, optopt);
			log_error("%s", msg);
			return EXIT_USAGE;
		}
	}
	if (!cmd) {
		log_error("missing command (%s; try --help)", command_list(names, sizeof(names)));
		return EXIT_USAGE;
	}
	c = find_command(cmd);
	if (c < 0) {
		log_error("unknown command \"%s\" (%s; try --help)",
			  config_quote(q, sizeof(q), cmd), command_list(names, sizeof(names)));
		return EXIT_USAGE;
	}
	/* An option the command would ignore is a mistake worth a word. */
	const struct {
		const char *name;
		unsigned int bit; /* the commands that take it */
		bool given;
	} uses[] = {
		{ "--json", TAKES_JSON, o.json },
		{ "--timeout", TAKES_WAIT, o.timeout_set },
		{ "--force", TAKES_WAIT, o.force },
		{ "--group", TAKES_GROUP, o.group != NULL },
	};
	for (k = 0; k < sizeof(uses) / sizeof(uses[0]); k++) {
		if (!uses[k].given || (commands[c].takes & uses[k].bit))
			continue;
		log_error("%s applies to %s, not to %s", uses[k].name,
			  takers(uses[k].bit, names, sizeof(names)), cmd);
		return EXIT_USAGE;
	}
	if (o.timeout_set && o.force) {
		log_error("--timeout and --force exclude each other (--force does not wait)");
		return EXIT_USAGE;
	}
	if (commands[c].takes & TAKES_CMD) {
		if (optind >= argc) {
			log_error("%s: missing the command to run (loopless %s -- CMD [ARG]...)",
				  cmd, cmd);
			return EXIT_USAGE;
		}
	} else if (optind < argc) {
		log_error("unexpected argument \"%s\" (try --help)",
			  config_quote(q, sizeof(q), argv[optind]));
		return EXIT_USAGE;
	}
	return commands[c].run(&o, argv + optind);
}
