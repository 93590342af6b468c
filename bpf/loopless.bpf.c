// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loopless datapath.
 *
 * ll_sockops (cgroup sockops): when a TCP connection becomes established, put
 * its two ends into sock_hash under keys made of their sequence numbers
 * (struct ll_key: the pair's identity that NAT cannot change): the client end
 * provisionally, the server end when its handshake came over lo and it can
 * claim the client end. A client end nobody claimed leaves at its first
 * incoming segment. ll_sk_msg (sk_msg verdict on sock_hash): on every
 * sendmsg, redirect the bytes into the paired peer's receive queue (psock
 * ingress_msg). Anything that cannot be redirected takes the
 * normal TCP path: every branch returns SK_PASS. ll_setsockopt (cgroup
 * setsockopt): refuses SO_ZEROCOPY on sockets in the map. ll_iter (sockmap
 * iterator): per-socket records for the CLI.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "loopless.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, LL_DEFAULT_MAX_SOCKETS); /* set from max_sockets before load */
	__type(key, struct ll_key);
	/* 8-byte values: a lookup from user space returns the socket cookie. */
	__type(value, __u64);
} sock_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LL_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ll_config);
} ll_config SEC(".maps");

/* Indexed by port (host byte order), value enum ll_port_rule. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LL_NR_PORTS);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ll_sk_state);
} sk_state SEC(".maps");

static __always_inline void count(enum ll_counter id, __u64 n)
{
	__u32 key = id;
	__u64 *v = bpf_map_lookup_elem(&counters, &key);

	if (v)
		*v += n; /* per-CPU slot: no atomics needed */
}

static __always_inline __u32 config_flags(void)
{
	__u32 zero = 0;
	struct ll_config *cfg = bpf_map_lookup_elem(&ll_config, &zero);

	return cfg ? cfg->flags : 0;
}

static __always_inline __u8 port_rule(__u16 port)
{
	__u32 key = port;
	__u8 *rule = bpf_map_lookup_elem(&ports, &key);

	return rule ? *rule : LL_PORT_NONE;
}

/*
 * The port rules apply to each end's own ports. Without NAT both ends see
 * the same pair; behind a REDIRECT they do not (the app sees :80, its sidecar
 * :15001), and an end left out leaves the other unpaired: a server end needs
 * its client end in the map, a client end leaves unclaimed.
 */
static __always_inline bool ports_in_scope(struct bpf_sock_ops *ops, __u32 flags)
{
	__u8 l = port_rule(ll_local_port(ops->local_port));
	__u8 r = port_rule(ll_remote_port(ops->remote_port));

	if (l == LL_PORT_EXCLUDE || r == LL_PORT_EXCLUDE)
		return false;
	if (flags & LL_CFG_INCLUDE_PORTS)
		return l == LL_PORT_INCLUDE || r == LL_PORT_INCLUDE;
	return true;
}

/*
 * Where each socket lives, for its peer's sk_msg program: the kernel
 * address of the struct sock and its cookie. sk_msg programs cannot take and
 * release a socket reference (no bpf_sk_release), so they read the peer
 * through bpf_rdonly_cast(): loads that cannot fault, from an address that
 * may be stale. The cookie, unique per socket for the life of the system,
 * is checked on every use, so a freed and reused struct sock is never taken
 * for the peer. Entries go at TCP_CLOSE (BPF_SOCK_OPS_STATE_CB).
 */
struct {
	/* LRU: an entry whose TCP_CLOSE callback never ran (its cgroup was
	 * detached meanwhile) must not fill the map for good. An evicted live
	 * entry only sends its peer's writer to the TCP path. */
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LL_DEFAULT_MAX_SOCKETS); /* == sock_hash */
	__type(key, struct ll_key);
	__type(value, struct ll_sock_ref);
} peers SEC(".maps");

#define LL_EEXIST 17
/* sk_user_data carries flag bits in its low bits (SK_USER_DATA_PTRMASK). */
#define LL_SK_USER_DATA_PTRMASK (~7UL)
#define LL_SK_USER_DATA_PSOCK (1UL << 2) /* SK_USER_DATA_PSOCK: it is a psock */
#define LL_EAGAIN 11

/* Listening sockets (BPF_SOCK_OPS_TCP_LISTEN_CB), so that a server end
 * can tell whether its listener's program is event-driven (O_NONBLOCK): an
 * accepted socket has no file yet at PASSIVE_ESTABLISHED. LRU: listeners
 * close without telling; a stale entry fails its cookie check. */
struct ll_listen_key {
	__u64 netns;
	__u32 port; /* host byte order */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ll_listen_key);
	__type(value, struct ll_sock_ref);
} listeners SEC(".maps");

/* A pair started leaving the map: looplessd runs ll_reap (ll_reap finds
 * every leaving socket; the record says whether it was a re-entry undone,
 * enum ll_event). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} leave_events SEC(".maps");

/* Per network namespace (netns cookie): what looplessd's walks could find
 * there (struct ll_netns_work). A walk of one namespace costs ~0.6 ms
 * whatever it holds (iter/tcp goes through every bucket of the host's
 * established hash, 262 144 here), so looplessd walks only those where
 * there is something to do. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct ll_netns_work);
} netns_work SEC(".maps");

/* cross_netns: which namespace owns each address of the node (struct
 * ll_owner_key -> netns cookie), kept by looplessd from every namespace's
 * interfaces; an address two namespaces have is in neither. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ll_owner_key);
	__type(value, __u64);
} addr_owners SEC(".maps");

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* The netns cookie of the socket at @addr with @cookie, read without a
 * reference (see peers); 0: gone. */
static __always_inline __u64 sock_netns(__u64 addr, __u64 cookie)
{
	struct sock *psk = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sock));
	struct net *net;
	__u64 c;

	if (!addr || psk->__sk_common.skc_cookie.counter != cookie)
		return 0;
	net = bpf_rdonly_cast(psk->__sk_common.skc_net.net, bpf_core_type_id_kernel(struct net));
	c = net->net_cookie;
	return psk->__sk_common.skc_cookie.counter == cookie ? c : 0;
}

/* The namespace that owns an address (ops->local_ip4 ... network byte
 * order); 0: none, or two. */
static __always_inline __u64 addr_owner(__u32 family, __u32 ip4, __u32 w0, __u32 w1, __u32 w2,
					__u32 w3)
{
	struct ll_owner_key k;
	__u64 *v;

	ll_addr_set(k.addr, family, ip4, w0, w1, w2, w3);
	v = bpf_map_lookup_elem(&addr_owners, &k);
	return v ? *v : 0;
}

_Static_assert(LL_CNT_MAX <= LL_CNT_SLOTS, "counters map too small");

static __always_inline struct ll_netns_work *netns_work_of(__u64 netns)
{
	struct ll_netns_work *w = bpf_map_lookup_elem(&netns_work, &netns), zero = {};

	if (w)
		return w;
	bpf_map_update_elem(&netns_work, &netns, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&netns_work, &netns);
}

/* A pair of @netns started leaving: ll_reap has work there for a while. */
static __always_inline void netns_leaving(__u64 netns, __u64 now)
{
	struct ll_netns_work *w = netns_work_of(netns);

	if (w)
		w->leave_ns = now;
}

/* Set (@on) or clear LL_SK_LEFT on @st, keeping its namespace's count of
 * sockets that may come back (ll_reenter's work) exact: only a change of
 * the flag counts, and every path that clears it comes here. */
static __always_inline void mark_left(struct ll_sk_state *st, bool on)
{
	struct ll_netns_work *w;
	__u32 old;

	old = on ? __sync_fetch_and_or(&st->flags, LL_SK_LEFT) :
		   __sync_fetch_and_and(&st->flags, ~LL_SK_LEFT);
	if (!!(old & LL_SK_LEFT) == on)
		return;
	w = netns_work_of(st->netns);
	if (w)
		__sync_fetch_and_add(&w->left, on ? 1 : -1);
}

/* sock_flag(sk, SOCK_ZEROCOPY): set by SO_ZEROCOPY. sk_flags is a #define
 * for __sk_common.skc_flags on 6.18. */
static __always_inline bool zerocopy_on(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	return tp && (tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags & (1UL << SOCK_ZEROCOPY));
}

/* The device a server end's final ACK came in on (inet_sk_rx_dst_set(),
 * called for the child socket in tcp_v4_syn_recv_sock() and
 * tcp_v6_syn_recv_sock()), or the one a client end's SYN-ACK came in on
 * (tcp_finish_connect(); 0 when it was processed from the backlog). */
static __always_inline __u32 rx_ifindex(struct tcp_sock *tp)
{
	return tp ? tp->inet_conn.icsk_inet.sk.sk_rx_dst_ifindex : 0;
}

/* The MSS the peer's SYN or SYN-ACK advertised (tcp_parse_options()), as
 * clamped by TCP_MAXSEG. */
static __always_inline __u32 peer_mss(struct tcp_sock *tp)
{
	return tp ? tp->rx_opt.mss_clamp : 0;
}

static __always_inline int file_nonblock(struct socket *so)
{
	struct file *f;

	if (!so)
		return -1;
	f = so->file;
	if (!f)
		return -1;
	return !!(f->f_flags & LL_O_NONBLOCK);
}

/* O_NONBLOCK of the program behind this end (see ll_admit()): the client's
 * own file; for a server end, its listener's, found by netns and port. */
static __always_inline int end_nonblock(struct bpf_sock_ops *ops, struct tcp_sock *tp, bool active,
					__u64 netns)
{
	struct ll_listen_key lk = { .netns = netns, .port = ll_local_port(ops->local_port) };
	struct ll_sock_ref *l;
	struct sock *lsk;
	int nb;

	if (active)
		return tp ? file_nonblock(tp->inet_conn.icsk_inet.sk.sk_socket) : -1;
	l = bpf_map_lookup_elem(&listeners, &lk);
	if (!l)
		return -1;
	lsk = bpf_rdonly_cast((void *)l->sk, bpf_core_type_id_kernel(struct sock));
	if (lsk->__sk_common.skc_cookie.counter != l->cookie)
		return -1; /* closed; the memory may hold another socket */
	nb = file_nonblock(lsk->sk_socket);
	return lsk->__sk_common.skc_cookie.counter == l->cookie ? nb : -1;
}

static __always_inline int sockops_listen(struct bpf_sock_ops *ops)
{
	struct ll_listen_key lk = { .netns = bpf_get_netns_cookie(ops),
				    .port = ll_local_port(ops->local_port) };
	struct ll_sock_ref ref = { .sk = (__u64)ops->sk, .cookie = bpf_get_socket_cookie(ops) };

	if (ops->sk)
		bpf_map_update_elem(&listeners, &lk, &ref, BPF_ANY);
	return 1;
}

/* The callbacks at each segment (sockops_segment), set at establishment. */
#define LL_SEGMENT_CB_FLAGS \
	(BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)

/* The owner of this connection's @local or remote address. Each context
 * field read apart (barrier_var): loads the compiler merges into a pointer
 * into the context are refused ("dereference of modified ctx ptr"). */
static __always_inline __u64 ops_owner(struct bpf_sock_ops *ops, bool local)
{
	__u32 fam = ops->family, ip4, w0, w1, w2, w3;

	if (local) {
		ip4 = ops->local_ip4;
		barrier_var(ip4);
		w0 = ops->local_ip6[0];
		barrier_var(w0);
		w1 = ops->local_ip6[1];
		barrier_var(w1);
		w2 = ops->local_ip6[2];
		barrier_var(w2);
		w3 = ops->local_ip6[3];
		barrier_var(w3);
	} else {
		ip4 = ops->remote_ip4;
		barrier_var(ip4);
		w0 = ops->remote_ip6[0];
		barrier_var(w0);
		w1 = ops->remote_ip6[1];
		barrier_var(w1);
		w2 = ops->remote_ip6[2];
		barrier_var(w2);
		w3 = ops->remote_ip6[3];
		barrier_var(w3);
	}
	return addr_owner(fam, ip4, w0, w1, w2, w3);
}

static __always_inline int sockops_established(struct bpf_sock_ops *ops, __u32 flags, bool active)
{
	struct ll_sock_ref ref = {}, *client = NULL;
	enum ll_admit verdict;
	struct ll_key key, peer;
	struct ll_sk_state *st;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	__u64 cookie, netns;
	int nonblock;
	long err;

	sk = ops->sk;
	if (!sk) {
		count(LL_CNT_INSERT_ERRORS, 1);
		return 1;
	}
	if (!ports_in_scope(ops, flags)) {
		count(LL_CNT_SKIPPED_PORT, 1);
		return 1;
	}
	/* MSG_ZEROCOPY promises one completion per send once the kernel is
	 * done with the pages. A socket in a sockmap copies every send into
	 * an sk_msg (tcp_bpf_sendmsg()): redirected sends never complete, and
	 * sends on its TCP path complete in pieces (tcp_bpf_push() calls
	 * tcp_sendmsg_locked() per scatterlist entry, each taking a new id).
	 * So a socket that asked for SO_ZEROCOPY (itself before connect(), or
	 * its listener, whose flags an accepted socket inherits) stays on
	 * TCP. For a socket already in the map, ll_setsockopt refuses it. */
	if (zerocopy_on(sk)) {
		count(LL_CNT_SKIPPED_ZEROCOPY, 1);
		return 1;
	}
	/* Both are host byte order in struct bpf_sock_ops (tcp_sock fields). */
	netns = bpf_get_netns_cookie(ops);
	ll_key_set(&key, netns, ops->snd_una, ops->rcv_nxt);
	if (!active) {
		ll_key_mirror(&peer, &key);
		client = bpf_map_lookup_elem(&peers, &peer);
	}
	tp = bpf_skc_to_tcp_sock(sk);
	nonblock = end_nonblock(ops, tp, active, netns);
	verdict = ll_admit(active, nonblock, rx_ifindex(tp), peer_mss(tp), client != NULL,
			   client ? client->peer_cookie : 0);
	if (verdict == LL_SKIP_REMOTE && (flags & LL_CFG_CROSS_NETNS)) {
		/* Maybe another namespace of the node (a veth away): keyed
		 * node-wide, admitted by address ownership. */
		key.netns = LL_KEY_NODE;
		client = NULL;
		if (!active) {
			ll_key_mirror(&peer, &key);
			client = bpf_map_lookup_elem(&peers, &peer);
		}
		verdict = ll_admit_cross(active, nonblock, ops_owner(ops, true) == netns, netns,
					 ops_owner(ops, false), client != NULL,
					 client ? sock_netns(client->sk, client->cookie) : 0,
					 client ? client->peer_cookie : 0);
		if (verdict == LL_SKIP_NOT_OWNER) {
			count(LL_CNT_SKIPPED_NOT_OWNER, 1);
			return 1;
		}
	}
	switch (verdict) {
	case LL_ADMIT_PROVISIONAL:
	case LL_ADMIT_PAIR:
		break;
	case LL_SKIP_REMOTE:
		count(LL_CNT_SKIPPED_REMOTE, 1);
		return 1;
	case LL_SKIP_NO_PEER:
		count(LL_CNT_SKIPPED_NO_PEER, 1);
		return 1;
	case LL_SKIP_COLLISION:
		count(LL_CNT_COLLISIONS, 1);
		return 1;
	case LL_SKIP_BLOCKING:
		count(LL_CNT_SKIPPED_BLOCKING, 1);
		return 1;
	case LL_SKIP_NOT_OWNER:
		count(LL_CNT_SKIPPED_NOT_OWNER, 1);
		return 1;
	}
	/* The ordering state must exist before the first byte is sent; a
	 * socket without it is never put into the map. */
	st = bpf_sk_storage_get(&sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(LL_CNT_INSERT_ERRORS, 1);
		return 1;
	}
	cookie = bpf_get_socket_cookie(ops);
	ref.sk = (__u64)sk;
	ref.cookie = cookie;
	if (client) {
		/* Claim the client end: of two server ends with the same key
		 * (a collision) only the first one pairs. */
		if (__sync_val_compare_and_swap(&client->peer_cookie, 0, cookie) != 0) {
			count(LL_CNT_COLLISIONS, 1);
			return 1;
		}
		ref.peer_cookie = client->cookie;
	}
	/* Never overwrite: a key in use is a collision, and both connections
	 * stay on TCP rather than risk one socket's bytes reaching another. */
	err = bpf_map_update_elem(&peers, &key, &ref, BPF_NOEXIST);
	if (err)
		goto unclaim;
	/* Fails for sockets sockmap cannot take (a ULP such as MPTCP or kTLS:
	 * sk_psock_init() refuses them) and when the map is full; the socket
	 * then simply stays on the normal path. */
	err = bpf_sock_hash_update(ops, &sock_hash, &key, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&peers, &key);
		goto unclaim;
	}
	st->key = key;
	st->netns = netns;
	st->cookie = cookie;
	st->flags = key.netns == LL_KEY_NODE ? LL_SK_IN_MAP | LL_SK_CROSS : LL_SK_IN_MAP;
	if (client) {
		st->peer = client->sk;
		st->peer_cookie = client->cookie;
		__sync_fetch_and_or(&st->flags, LL_SK_HAVE_PEER);
		count(LL_CNT_PAIRS, 1);
		if (key.netns == LL_KEY_NODE)
			count(LL_CNT_PAIRS_CROSS_NETNS, 1);
	}
	/* STATE_CB: the TCP_CLOSE callback that removes the peers entry.
	 * LL_SEGMENT_CB_FLAGS: callbacks at its segments until nothing is
	 * left to decide: the client end's stay or leave, a leave
	 * (sockops_segment). */
	if (active)
		__sync_fetch_and_or(&st->flags, LL_SK_ACTIVE | LL_SK_PROVISIONAL);
	bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
					       LL_SEGMENT_CB_FLAGS);
	count(LL_CNT_SOCKETS_INSERTED, 1);
	return 1;
unclaim:
	if (client)
		client->peer_cookie = 0;
	count(err == -LL_EEXIST ? LL_CNT_COLLISIONS : LL_CNT_INSERT_ERRORS, 1);
	return 1;
}

/*
 * A pair starts leaving the map: both records say so, so neither sender
 * redirects any more (ll_reader_redirectable()); ll_reap takes each socket
 * out once nothing redirected to it is unread and no redirect into it can
 * be in flight (ll_leave_ready()). The protocol of DESIGN.md "Leaving the
 * map": flag, quiesce, drain, delete. @why LL_WHY_BLOCKING: this socket's
 * reader read blocking, so the pair never comes back; otherwise a direction
 * took TCP and ll_reenter may put the pair back once the reason is gone.
 */
static __always_inline void leave_pair(struct ll_sk_state *st, enum ll_leave_why why)
{
	__u64 now = bpf_ktime_get_ns();
	struct ll_sock_ref *ref;
	struct ll_key peer;
	__u32 one = LL_EVENT_LEAVE;

	ref = bpf_map_lookup_elem(&peers, &st->key);
	if (ref && ref->cookie == st->cookie) {
		ref->leave_ns = now;
		ref->why = why;
		__sync_fetch_and_or(&ref->reader, (why == LL_WHY_BLOCKING ? LL_READER_UNSAFE : 0) |
							  LL_READER_LEAVING);
	}
	ll_key_mirror(&peer, &st->key);
	ref = bpf_map_lookup_elem(&peers, &peer);
	if (ref && ref->peer_cookie == st->cookie) {
		ref->leave_ns = now;
		ref->why = why;
		__sync_fetch_and_or(&ref->reader, LL_READER_LEAVING);
		/* ll_reap must walk the peer's namespace too. */
		if (st->key.netns == LL_KEY_NODE)
			netns_leaving(sock_netns(ref->sk, ref->cookie), now);
	}
	netns_leaving(st->netns, now);
	bpf_ringbuf_output(&leave_events, &one, sizeof(one), 0);
}

/*
 * Calls in progress holding the psock of the socket at @addr
 * (ll_psock_users()); -1: no psock (the socket is gone, or out of the map
 * with no call left).
 */
static __always_inline int psock_users(__u64 addr, __u64 cookie)
{
	struct sock *psk = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sock));
	struct sk_psock *psock;
	__u32 refs;
	bool linked;
	__u64 ud;

	if (!addr || psk->__sk_common.skc_cookie.counter != cookie)
		return -1;
	ud = (__u64)psk->sk_user_data & LL_SK_USER_DATA_PTRMASK;
	if (!ud)
		return -1;
	psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock));
	refs = psock->refcnt.refs.counter;
	/* An empty list_head points at itself. */
	linked = (__u64)psock->link.next != ud + bpf_core_field_offset(struct sk_psock, link);
	if (psk->__sk_common.skc_cookie.counter != cookie)
		return -1;
	return ll_psock_users(refs, linked);
}

/*
 * Take a leaving socket out of the map if ll_leave_ready() allows: nothing
 * redirected to it is unread (its psock at @ud) and no redirect into it can
 * still be in flight. True when it left. Called from ll_reap and from the
 * socket's own sockops callbacks (both may delete from a sockhash).
 */
static __always_inline bool leave_if_ready(struct ll_sk_state *st, struct ll_sock_ref *ref,
					   __u64 ud, struct tcp_sock *tp)
{
	struct ll_sock_ref *pref;
	struct sk_psock *psock;
	__u32 queued = 0;
	int users;
	struct ll_key pk;
	__u64 peer;

	if (ud) {
		psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock));
		queued = psock->msg_tot_len;
	}
	/* A reader never seen safe was never redirected into (its record never
	 * said so): no redirect can be in flight, nothing to wait for. */
	ll_key_mirror(&pk, &st->key);
	pref = bpf_map_lookup_elem(&peers, &pk);
	peer = pref && ll_peer_mutual(pref->peer_cookie, st->cookie) &&
			       (st->flags & LL_SK_READER_SAFE) ?
		       pref->sk :
		       0;
	users = psock_users(peer, pref ? pref->cookie : 0);
	if (!ll_leave_ready(queued, users > 0 ? users : 0, bpf_ktime_get_ns() - ref->leave_ns))
		return false;
	if (bpf_map_delete_elem(&sock_hash, &st->key))
		return false;
	__sync_fetch_and_and(&st->flags, ~LL_SK_IN_MAP);
	if (!(ref->reader & LL_READER_UNSAFE)) {
		__u64 now = bpf_ktime_get_ns();

		/* ll_read_by_recv(): the sum starts at 0 before ll_recv can
		 * see LL_SK_LEFT, and the mark is read after: a read that
		 * ll_recv did not count (it reported before LL_SK_LEFT) is
		 * then behind the mark. (Zeroing after, from a copied_seq
		 * read before, lost reads: a request/response client was
		 * taken for a splicer.) */
		st->recv_sum = 0;
		mark_left(st, true);
		st->copied_mark = tp->copied_seq;
		st->snd_mark = tp->snd_nxt;
		if (ref->reader & LL_READER_UNDONE) {
			/* As if it had never gone back: same count, and out
			 * since it first left. */
			if (st->cycles)
				st->cycles--;
			st->moved_ns -= (__u64)st->out_us * 1000;
		} else {
			st->cycles = ll_cycles_after_stay(st->cycles, now - st->moved_ns,
							  (__u64)st->out_us * 1000);
			st->moved_ns = now;
		}
		__sync_fetch_and_and(&ref->reader, ~LL_READER_UNDONE);
	}
	count(LL_CNT_LEFT, 1);
	return true;
}

/*
 * A segment of a socket whose reader is not known to be safe yet, or of a
 * leaving pair: @incoming, one it received (BPF_SOCK_OPS_PARSE_HDR_OPT_CB,
 * from tcp_validate_incoming(), which the header-prediction fast path of
 * tcp_rcv_established() skips, so not every segment); otherwise one it is
 * about to send (BPF_SOCK_OPS_HDR_OPT_LEN_CB, from tcp_established_options()
 * for every segment, its data and its ACKs alike: the reader end of a
 * leaving pair leaves when it ACKs the first TCP-path bytes, in the softirq
 * that queued them, before its reader can wait on them in tcp_bpf_recvmsg()).
 * Both flags are set at establishment and cleared here once nothing is left
 * to decide, so a known-safe socket's segments cost nothing. Nothing is
 * reserved, so no option is ever written.
 * - A provisional client end: on lo the server end is established by the
 *   final ACK, before it can send anything, so by now a local server end in
 *   scope has claimed this one. If none did, the peer is remote (or out of
 *   loopless's scope): leave the map. Only a server end that claimed it may
 *   redirect into it, so its psock queue is empty and leaving loses nothing.
 * - A socket of a leaving pair (its reader read blocking, or its program
 *   sent on a blocking socket): leave as soon as ll_leave_ready() allows.
 *   Leaving makes both directions take TCP, so segments come, and the pair
 *   is out within a round trip; ll_reap catches what no segment reaches.
 * A socket out of the map is back on tcp_prot (sk_psock_drop()).
 */
static __always_inline int sockops_segment(struct bpf_sock_ops *ops, bool incoming)
{
	struct bpf_sock *sk = ops->sk;
	struct ll_sock_ref *ref;
	struct ll_sk_state *st;
	struct tcp_sock *tp;
	bool done = true;

	if (!sk)
		goto stop;
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & LL_SK_IN_MAP))
		goto stop;
	/* A client end's own first segment is the handshake's final ACK,
	 * which establishes the server end: only what comes back decides. Or,
	 * across namespaces, its next one: the final ACK crossed the veth and
	 * established a local server end in the softirq that sent it, long
	 * before this end's program writes (on lo the rule above suffices;
	 * from another node no segment may come slow enough to be seen:
	 * PARSE_HDR_OPT runs only off the fast path). */
	if ((st->flags & LL_SK_PROVISIONAL) && !incoming) {
		if (!(st->flags & LL_SK_CROSS))
			return 1;
		if (!(st->flags & LL_SK_FIRST_SENT)) {
			__sync_fetch_and_or(&st->flags, LL_SK_FIRST_SENT);
			return 1;
		}
	}
	/* Its own record (a colliding socket's is not). */
	ref = bpf_map_lookup_elem(&peers, &st->key);
	if (!ref || ref->cookie != st->cookie) {
		if (st->flags & LL_SK_PROVISIONAL) {
			__sync_fetch_and_and(&st->flags, ~LL_SK_PROVISIONAL);
			bpf_map_delete_elem(&sock_hash, &st->key);
			__sync_fetch_and_and(&st->flags, ~LL_SK_IN_MAP);
			count(LL_CNT_PROVISIONAL_LEFT, 1);
		}
		goto stop;
	}
	if (st->flags & LL_SK_PROVISIONAL) {
		__sync_fetch_and_and(&st->flags, ~LL_SK_PROVISIONAL);
		if (!ll_provisional_stays(ref->peer_cookie)) {
			bpf_map_delete_elem(&sock_hash, &st->key);
			bpf_map_delete_elem(&peers, &st->key);
			__sync_fetch_and_and(&st->flags, ~LL_SK_IN_MAP);
			count(LL_CNT_PROVISIONAL_LEFT, 1);
			goto stop;
		}
	}
	if (ref->reader & LL_READER_LEAVING) {
		tp = bpf_skc_to_tcp_sock(sk);
		done = tp && leave_if_ready(st, ref,
					    (__u64)tp->inet_conn.icsk_inet.sk.sk_user_data &
						    LL_SK_USER_DATA_PTRMASK,
					    tp);
	} else if (!(st->flags & (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE)) && !incoming) {
		done = false; /* undecided: decided at a segment received */
	} else if (!(st->flags & (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE))) {
		/* Not seen reading yet. An accepted socket has a file once
		 * accept()ed: a blocking one (a threaded server behind a
		 * non-blocking listener) leaves now, before its first
		 * blocking read can wait in tcp_bpf_recvmsg(). Never
		 * redirected into, so nothing is lost. Only at a segment
		 * received, as before the send callback: run at segments
		 * sent too, it kept revproxy -> nginx (Go, and nginx with
		 * accept4(SOCK_NONBLOCK)) from ever being redirected in about
		 * 1 run in 4, for a reason not found yet. */
		tp = bpf_skc_to_tcp_sock(sk);
		done = false;
		if (tp && file_nonblock(tp->inet_conn.icsk_inet.sk.sk_socket) == 0) {
			__sync_fetch_and_or(&st->flags, LL_SK_READER_UNSAFE);
			count(LL_CNT_LEAVE_BLOCKING, 1);
			leave_pair(st, LL_WHY_BLOCKING);
			done = leave_if_ready(st, ref,
					      (__u64)tp->inet_conn.icsk_inet.sk.sk_user_data &
						      LL_SK_USER_DATA_PTRMASK,
					      tp);
		}
	}
	if (!done)
		return 1;
stop:
	bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags & ~LL_SEGMENT_CB_FLAGS);
	return 1;
}

/* TCP_CLOSE: the sockhash removes a closing socket by itself
 * (sock_map_close()); the peers entry is ours, and only this socket's. */
static __always_inline int sockops_closed(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk = ops->sk;
	struct ll_sock_ref *ref;
	struct ll_sk_state *st;

	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st)
		return 1;
	if (st->flags & LL_SK_LEFT)
		mark_left(st, false);
	ref = bpf_map_lookup_elem(&peers, &st->key);
	if (ref && ref->cookie == st->cookie)
		bpf_map_delete_elem(&peers, &st->key);
	return 1;
}

SEC("sockops")
int ll_sockops(struct bpf_sock_ops *ops)
{
	__u32 flags;

	if (ops->family != LL_AF_INET && ops->family != LL_AF_INET6)
		return 1;
	switch (ops->op) {
	/* ACTIVE: the client, in tcp_finish_connect() when the SYN-ACK is
	 * processed (before connect() returns). PASSIVE: the server's child
	 * socket, when the final ACK is processed (before accept() returns).
	 * Both fire without any BPF_SOCK_OPS_*_CB_FLAG. */
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		flags = config_flags();
		if (flags & LL_CFG_DRAIN)
			return 1;
		return sockops_established(ops, flags,
					   ops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB);
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		return sockops_segment(ops, true);
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		return sockops_segment(ops, false);
	/* listen(): fires without any flag. */
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		return sockops_listen(ops);
	/* args[1] is the new state (tcp_set_state()). */
	case BPF_SOCK_OPS_STATE_CB:
		if (ops->args[1] != BPF_TCP_CLOSE)
			return 1;
		return sockops_closed(ops);
	}
	return 1;
}

#define LL_SOL_SOCKET 1 /* asm-generic/socket.h */
#define LL_SO_ZEROCOPY 60
#define LL_EOPNOTSUPP 95
#define LL_PAGE_SIZE 4096

/*
 * cgroup setsockopt hook: SO_ZEROCOPY on a socket already in the map is
 * refused with EOPNOTSUPP, the answer of a socket type without zero-copy
 * (sock_setsockopt()), which applications handle by copying. Taking the
 * socket out of the map instead would drop the redirected bytes waiting
 * in its queue (sk_psock_drop()). Every other option passes untouched.
 */
SEC("cgroup/setsockopt")
int ll_setsockopt(struct bpf_sockopt *ctx)
{
	struct ll_sk_state *st;
	int *val = ctx->optval;

	if (ctx->level != LL_SOL_SOCKET || ctx->optname != LL_SO_ZEROCOPY || !ctx->sk)
		goto pass;
	st = bpf_sk_storage_get(&sk_state, ctx->sk, NULL, 0);
	if (!st || !(st->flags & LL_SK_IN_MAP))
		goto pass;
	/* Short or unreadable: sock_setsockopt() returns its own error. */
	if ((void *)(val + 1) > ctx->optval_end || !*val)
		goto pass;
	count(LL_CNT_ZEROCOPY_REFUSED, 1);
	bpf_set_retval(-LL_EOPNOTSUPP);
	return 0;
pass:
	/* Only the first page of a longer optval is in ctx; optlen 0 tells
	 * __cgroup_bpf_run_filter_setsockopt() to use the caller's buffer. */
	if (ctx->optlen > LL_PAGE_SIZE)
		ctx->optlen = 0;
	return 1;
}

/* What the sender needs to know about its peer, read without a reference. */
struct peer_view {
	__u32 queued; /* bytes redirected to it and not read yet (psock msg_tot_len) */
	__u32 rcvbuf; /* its SO_RCVBUF */
	__s32 rcvlowat; /* its SO_RCVLOWAT */
	__u32 rcv_nxt; /* TCP bytes it has received ... */
	__u32 copied_seq; /* ... and read */
};

static __always_inline bool peer_read(const struct ll_sk_state *st, struct peer_view *v)
{
	struct sock *psk = bpf_rdonly_cast((void *)st->peer, bpf_core_type_id_kernel(struct sock));
	struct tcp_sock *ptp;
	struct sk_psock *psock;
	__u64 ud;

	if (psk->__sk_common.skc_cookie.counter != st->peer_cookie)
		return false; /* freed; the memory may hold another socket */
	ud = (__u64)psk->sk_user_data & LL_SK_USER_DATA_PTRMASK;
	if (!ud)
		return false; /* left the map: no psock */
	psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock));
	ptp = bpf_rdonly_cast((void *)st->peer, bpf_core_type_id_kernel(struct tcp_sock));
	v->queued = psock->msg_tot_len;
	v->rcvbuf = (__u32)psk->sk_rcvbuf;
	v->rcvlowat = psk->sk_rcvlowat;
	v->rcv_nxt = ptp->rcv_nxt;
	v->copied_seq = ptp->copied_seq;
	/* Seen again last: the values above belong to the socket we meant. */
	return psk->__sk_common.skc_cookie.counter == st->peer_cookie;
}

/*
 * The path of each direction, chosen per message.
 *
 * Redirect (the peer's psock ingress_msg) while the reader keeps up. When
 * the bytes already waiting there exceed a limit, take the TCP path
 * instead: TCP has real flow control (the peer's window closes, our send
 * buffer fills, the writer blocks or gets EAGAIN), while redirected bytes
 * are charged to the peer but never limited by SO_RCVBUF (bpf_tcp_ingress()
 * in net/ipv4/tcp_bpf.c checks only global memory). The limit follows the
 * reader as TCP's receive-buffer auto-tuning does: queue_limit for a reader
 * seen taking bytes within the last reader_idle_ns (one that shares a CPU
 * with its writer reads in bursts of many MiB, a scheduler slice apart),
 * its SO_RCVBUF (at least LL_MIN_QUEUE) for one that has not read lately or
 * never has.
 *
 * Ordering. tcp_bpf_recvmsg() reads ingress_msg before sk_receive_queue
 * whenever ingress_msg holds data, so going from redirect to TCP is always
 * safe (TCP bytes are read after the redirected ones), but going back is
 * safe only once no TCP byte of this direction is left unread: all we wrote
 * is sent (write_seq == snd_nxt), the peer has received all of it (its
 * rcv_nxt == our snd_nxt: nothing left in flight on lo or in its backlog;
 * compared directly rather than through snd_una, which a delayed ACK holds
 * back) and has read all of it (copied_seq == rcv_nxt). Until then the
 * direction stays on TCP. A direction whose peer cannot be read (not in
 * peers: not in the map, or freed) stays on TCP.
 */
SEC("sk_msg")
int ll_sk_msg(struct sk_msg_md *msg)
{
	struct ll_key peer;
	struct ll_config *cfg;
	struct ll_sock_ref *ref;
	struct peer_view v = {};
	struct ll_sk_state *st;
	__u64 size = msg->size;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	__u32 zero = 0;
	__u64 now;
	bool idle;

	sk = msg->sk;
	if (!sk)
		goto pass;
	/* Created by ll_sockops before the socket entered the map, so it
	 * exists for every socket this program runs on. */
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st)
		goto pass;
	cfg = bpf_map_lookup_elem(&ll_config, &zero);
	if (!cfg || (cfg->flags & LL_CFG_DRAIN))
		goto to_tcp;

	now = bpf_ktime_get_ns();
	idle = now - st->send_ns > cfg->reader_idle_ns;
	/* Small writes back to back: a stream, not requests waiting for
	 * their responses. */
	if (size > cfg->small_write || now - st->send_ns >= LL_BURST_GAP_NS)
		st->burst = 0;
	else if (st->burst < LL_SMALL_BURST)
		st->burst++;
	if (size > cfg->small_write)
		st->small_run = 0;
	else if (st->small_run < LL_SMALL_RUN)
		st->small_run++;
	st->send_ns = now;

	if (st->flags & LL_SK_TCP_USED) {
		/* A small-write stream stays on TCP until a large write or a
		 * pause: returning while it goes on would only queue it up
		 * again, one wake-up per write. */
		if ((st->flags & LL_SK_SMALL) && size <= cfg->small_write && !idle)
			goto pass_tcp;
		/* Bytes still unsent (autocork, a closed window): it cannot
		 * return yet, and needs nothing below. */
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp || ((st->flags & LL_SK_HAVE_PEER) && tp->write_seq != tp->snd_nxt))
			goto pass_tcp;
	}
	/* A send on a blocking socket whose reader has not been seen reading
	 * non-blocking: a blocking program (redis-cli turns its socket
	 * blocking after a non-blocking connect()). O_NONBLOCK is a flag of the
	 * file, so its reads will block too: the pair leaves the map before
	 * that first blocking read can wait in tcp_bpf_recvmsg(). */
	if (!(st->flags & (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE))) {
		tp = bpf_skc_to_tcp_sock(sk);
		if (tp && file_nonblock(tp->inet_conn.icsk_inet.sk.sk_socket) == 0) {
			__sync_fetch_and_or(&st->flags, LL_SK_READER_UNSAFE);
			count(LL_CNT_LEAVE_BLOCKING, 1);
			leave_pair(st, LL_WHY_BLOCKING);
			goto to_tcp;
		}
	}
	ll_key_mirror(&peer, &st->key);
	/* Not paired yet (the client wrote before the server's end was
	 * established), outside loopless's scope, or gone: only an end that
	 * named this socket as its peer is one. */
	ref = bpf_map_lookup_elem(&peers, &peer);
	if (!ref || !ll_peer_mutual(ref->peer_cookie, st->cookie))
		goto to_tcp;
	/* Its reader not seen reading safely yet (it may block, or splice),
	 * or the pair is leaving the map. Bytes that take TCP into a socket in
	 * the map are invisible to FIONREAD there (tcp_bpf_ioctl() counts only
	 * ingress_msg: an event-driven reader that trusts it stalls), so the
	 * pair leaves; its reader, never redirected into, leaves at this very
	 * segment (sockops_segment), before the bytes are queued. ll_reenter
	 * puts the pair back once both readers were seen reading safely. */
	if (!ll_reader_redirectable(ref->reader)) {
		count(LL_CNT_TCP_READER_UNKNOWN, 1);
		if (!(ref->reader & LL_READER_LEAVING)) {
			count(LL_CNT_LEAVE_UNKNOWN, 1);
			leave_pair(st, LL_WHY_UNKNOWN);
		}
		goto to_tcp;
	}
	if (!(st->flags & LL_SK_HAVE_PEER)) {
		st->peer = ref->sk;
		st->peer_cookie = ref->cookie;
		__sync_fetch_and_or(&st->flags, LL_SK_HAVE_PEER);
	}
	if (!peer_read(st, &v)) {
		__sync_fetch_and_and(&st->flags, ~LL_SK_HAVE_PEER);
		goto to_tcp;
	}
	if (v.queued < st->queued_expect)
		st->progress_ns = now; /* the reader took bytes since our last send */

	if (st->flags & LL_SK_TCP_USED) {
		struct ll_seqs own = {}, to = { .rcv_nxt = v.rcv_nxt, .copied_seq = v.copied_seq };

		tp = bpf_skc_to_tcp_sock(sk);
		if (tp) {
			own.write_seq = tp->write_seq;
			own.snd_nxt = tp->snd_nxt;
		}
		if (!tp || !ll_drained(&own, &to) || v.queued > v.rcvbuf / 2 || v.rcvlowat > 1)
			goto pass_tcp;
		__sync_fetch_and_and(&st->flags, ~(LL_SK_TCP_USED | LL_SK_SMALL));
		count(LL_CNT_RETURNS, 1);
	} else if (v.rcvlowat > 1) {
		/* The reader asked to be woken only once SO_RCVLOWAT bytes are
		 * there. Redirected bytes ignore it (sk_msg_recvmsg() returns
		 * what is queued, sk_msg_is_readable() any byte); TCP's
		 * tcp_recvmsg() and tcp_poll() honour it. */
		count(LL_CNT_FALLBACKS_RCVLOWAT, 1);
		count(LL_CNT_LEAVE_RCVLOWAT, 1);
		leave_pair(st, LL_WHY_RCVLOWAT);
		goto to_tcp;
	} else if (v.queued > (now - st->progress_ns <= cfg->reader_idle_ns ?
				       cfg->queue_limit :
				       (v.rcvbuf > LL_MIN_QUEUE ? v.rcvbuf : LL_MIN_QUEUE))) {
		count(LL_CNT_FALLBACKS, 1);
		/* The pair leaves (plain TCP's flow control holds the
		 * writer). Falling back in the map instead puts TCP bytes
		 * behind redirected ones, which FIONREAD does not count: an
		 * nginx-style reader stalled on them (llprobe epoll-et-nginx,
		 * 1 run in 3; a fresh stream's first burst too, 1 in 20),
		 * whatever the cost to a writer sharing its reader's CPU
		 * (64 KiB writes: ~1.1x lo, 1.3x falling back in the map). */
		count(LL_CNT_LEAVE_LAG, 1);
		leave_pair(st, LL_WHY_LAG);
		goto to_tcp;
	} else if (ll_small_stream(size, cfg->small_write, v.queued, cfg->small_lag, st->small_run,
				   st->burst)) {
		/* A stream of small writes (its reader lags, or they come
		 * back to back while earlier ones are still unread): TCP
		 * coalesces them into few segments and wake-ups, redirection
		 * queues and wakes per write. Request/response traffic finds
		 * the queue empty (the peer read the request before it
		 * answered), however short its round trips, so it stays
		 * redirected. */
		count(LL_CNT_FALLBACKS_SMALL, 1);
		count(LL_CNT_LEAVE_SMALL, 1);
		leave_pair(st, LL_WHY_SMALL);
		__sync_fetch_and_or(&st->flags, LL_SK_SMALL);
		goto to_tcp;
	}
	st->queued_expect = v.queued + size;
	/* Returns SK_DROP when the peer is not in the map; returning that
	 * would fail the sender's sendmsg with EACCES, so fall back instead. */
	if (bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(LL_CNT_REDIRECTED_MSGS, 1);
		count(LL_CNT_REDIRECTED_BYTES, size);
		return SK_PASS;
	}
to_tcp:
	if (!(st->flags & LL_SK_TCP_USED))
		__sync_fetch_and_or(&st->flags, LL_SK_TCP_USED);
pass_tcp:
	count(LL_CNT_TCP_PINNED, 1);
pass:
	count(LL_CNT_PASSED_MSGS, 1);
	count(LL_CNT_PASSED_BYTES, size);
	return SK_PASS;
}

/*
 * One record (struct ll_conn_rec) per TCP socket of the iterator's network
 * namespace that is in a sockmap (its sk_user_data is a psock), for
 * `loopless conns` and for `loopless uninstall`, which waits until no
 * redirected byte is left unread before it takes sockets out of the map
 * (removing a socket drops its psock, and with it the queue: sk_psock_drop()
 * -> sk_psock_zap_ingress() in net/core/skmsg.c). User space keeps the
 * records whose cookie is in sock_hash (or an older version's): iter/sockmap,
 * which would walk the map itself, is refused here (EPERM at load on
 * 6.18.44-fc, like every map-element iterator), iter/tcp is not.
 */
SEC("iter/tcp")
int ll_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct ll_conn_rec rec = {};
	struct ll_sock_ref *ref;
	struct ll_sk_state *st;
	struct sk_psock *psock;
	struct tcp_sock *tp;
	struct socket *so;
	struct sock *sk;
	__u32 fam;
	__u64 ud;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* a request or time-wait socket: never in a map */
	sk = (struct sock *)tp;
	ud = (__u64)sk->sk_user_data;
	if (!(ud & LL_SK_USER_DATA_PSOCK))
		return 0;
	skc = &sk->__sk_common;
	rec.cookie = skc->skc_cookie.counter;
	/* The real tuple, for an operator to see which ends were paired. */
	fam = skc->skc_family == LL_AF_INET6 ? LL_AF_INET6 : LL_AF_INET;
	rec.family = ll_addr_set(
		rec.laddr, fam, skc->skc_rcv_saddr, skc->skc_v6_rcv_saddr.in6_u.u6_addr32[0],
		skc->skc_v6_rcv_saddr.in6_u.u6_addr32[1], skc->skc_v6_rcv_saddr.in6_u.u6_addr32[2],
		skc->skc_v6_rcv_saddr.in6_u.u6_addr32[3]);
	ll_addr_set(rec.raddr, fam, skc->skc_daddr, skc->skc_v6_daddr.in6_u.u6_addr32[0],
		    skc->skc_v6_daddr.in6_u.u6_addr32[1], skc->skc_v6_daddr.in6_u.u6_addr32[2],
		    skc->skc_v6_daddr.in6_u.u6_addr32[3]);
	rec.lport = skc->skc_num;
	rec.rport = LL_NTOHS(skc->skc_dport);
	/* Which process holds it: the CLI finds socket:[ino] in /proc. An
	 * accepted socket not accept()ed yet has no file. */
	so = sk->sk_socket;
	if (so && so->file)
		rec.ino = so->file->f_inode->i_ino;
	psock = bpf_rdonly_cast((void *)(ud & LL_SK_USER_DATA_PTRMASK),
				bpf_core_type_id_kernel(struct sk_psock));
	rec.queued = psock->msg_tot_len;
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (st) {
		rec.key = st->key;
		rec.flags = st->flags;
		ref = bpf_map_lookup_elem(&peers, &rec.key);
		if (ref && ref->cookie == rec.cookie) {
			rec.peer_cookie = ref->peer_cookie;
			rec.reader = ref->reader;
		}
	}
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/*
 * After every recvmsg of the host (sock_recvmsg_nosec()), with its flags
 * (O_NONBLOCK already turned into MSG_DONTWAIT) and its result: how the
 * reader of a socket in the map reads. Global, so it stays tiny: one socket
 * storage lookup for every socket, and for ours a flag test once decided.
 * splice() never comes here: a splicing reader stays "not seen", and is
 * never redirected into.
 */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(ll_recv, struct sock *sk, int ret, int flags)
{
	struct ll_sk_state *st;
	struct ll_sock_ref *ref;
	enum ll_read_kind kind;

	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & (LL_SK_IN_MAP | LL_SK_LEFT)))
		return 0;
	/* Out of the map: what recvmsg read, for ll_read_by_recv(). */
	if ((st->flags & LL_SK_LEFT) && ret > 0 && !(flags & LL_MSG_PEEK))
		__sync_fetch_and_add(&st->recv_sum, ret);
	kind = ll_read_kind(flags);
	if (kind == LL_READ_SAFE) {
		if (st->flags & (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE))
			return 0;
		__sync_fetch_and_or(&st->flags, LL_SK_READER_SAFE);
		ref = bpf_map_lookup_elem(&peers, &st->key);
		if (ref && ref->cookie == st->cookie)
			__sync_fetch_and_or(&ref->reader, LL_READER_SAFE);
		return 0;
	}
	/* The answer tcp_bpf_recvmsg() gives a blocking reader woken without
	 * data, which tcp_recvmsg() would not (a timeout of SO_RCVTIMEO is
	 * counted too: the tracepoint cannot tell them apart). */
	if (ret == -LL_EAGAIN && (st->flags & LL_SK_IN_MAP))
		count(LL_CNT_APP_VISIBLE_ERRORS, 1);
	if (st->flags & LL_SK_READER_UNSAFE)
		return 0;
	__sync_fetch_and_or(&st->flags, LL_SK_READER_UNSAFE);
	if (!(st->flags & LL_SK_IN_MAP)) {
		/* Out of the map already: it never comes back. */
		mark_left(st, false);
		ref = bpf_map_lookup_elem(&peers, &st->key);
		if (ref && ref->cookie == st->cookie)
			__sync_fetch_and_or(&ref->reader, LL_READER_UNSAFE);
		return 0;
	}
	count(kind == LL_READ_WAITALL ? LL_CNT_LEAVE_WAITALL : LL_CNT_LEAVE_BLOCKING, 1);
	leave_pair(st, LL_WHY_BLOCKING);
	return 0;
}

/*
 * looplessd runs this over each network namespace's TCP sockets (as
 * ll_reenter) after a leave_events record, and again while any leaving
 * socket is still waiting: every socket of a leaving pair that
 * ll_leave_ready() allows goes out of the map, back to tcp_prot; one 4-byte
 * record per socket (enum ll_reap_rec) tells looplessd which left (to look
 * for their return) and which still wait (to come back). The socket is
 * locked (iter/tcp), as in a sockops callback.
 */
SEC("iter/tcp")
int ll_reap(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	__u32 rec = LL_REAP_WAITING;
	struct ll_sock_ref *ref;
	struct ll_sk_state *st;
	struct tcp_sock *tp;
	struct sock *sk;
	bool undone;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = (struct sock *)tp;
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & LL_SK_IN_MAP))
		return 0;
	ref = bpf_map_lookup_elem(&peers, &st->key);
	if (!ref || ref->cookie != st->cookie || !(ref->reader & LL_READER_LEAVING))
		return 0;
	/* A re-entry undone gives looplessd nothing new to look for: taking
	 * it for a leave restarted the fast scans, and a writer whose reader
	 * could not follow went in and out every millisecond. */
	undone = ref->reader & LL_READER_UNDONE;
	if (leave_if_ready(st, ref, (__u64)sk->sk_user_data & LL_SK_USER_DATA_PTRMASK, tp))
		rec = undone ? LL_REAP_UNDONE : LL_REAP_LEFT;
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/*
 * looplessd runs this over each network namespace's TCP sockets (iter/tcp
 * walks the namespace of the process that creates the iterator), with the
 * socket locked, after pairs left the map because a direction took TCP and
 * while any of them waits: a socket that ll_reenter() lets back in is
 * inserted again under its key (iterators may insert into a sockhash; sockops
 * only at establishment). Its peer goes back in when its own turn comes; until
 * then this socket sends on TCP (the peer's record still says it left), so
 * nothing is redirected out of order, and both enter with LL_SK_TCP_USED: a
 * direction redirects again only once ll_drained(). One 4-byte record per
 * socket still waiting tells looplessd to come back.
 */
/*
 * The peer went back in (earlier in this pass, or in an earlier one) but this
 * end does not follow (a byte moved in between, or it never may): nothing
 * was redirected into the peer while this end was out, so ll_reap takes it
 * out again at once rather than leave it alone in the map.
 */
/* The namespace of @st's peer (record @pref): @st's own, but across
 * namespaces. */
static __always_inline __u64 peer_netns(const struct ll_sk_state *st,
					const struct ll_sock_ref *pref)
{
	return st->key.netns == LL_KEY_NODE ? sock_netns(pref->sk, pref->cookie) : st->netns;
}

static __always_inline void undo_peer(struct ll_sock_ref *pref, __u64 netns, __u64 now)
{
	__u32 undo = LL_EVENT_UNDO;

	if (pref->reader & LL_READER_LEAVING)
		return;
	pref->leave_ns = now;
	netns_leaving(netns, now);
	__sync_fetch_and_or(&pref->reader, LL_READER_LEAVING | LL_READER_UNDONE);
	bpf_ringbuf_output(&leave_events, &undo, sizeof(undo), 0);
}

SEC("iter/tcp")
int ll_reenter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct ll_sock_ref *ref, *pref;
	struct ll_seqs a = {}, b = {};
	struct tcp_sock *tp, *ptp;
	struct ll_sk_state *st;
	struct ll_config *cfg;
	struct sock *sk, *psk;
	__u32 zero = 0, one = LL_REAP_WAITING;
	enum ll_reenter verdict;
	struct ll_key pk;
	bool quiet, lowat;
	__u64 now;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	sk = (struct sock *)tp;
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & LL_SK_LEFT))
		return 0;
	cfg = bpf_map_lookup_elem(&ll_config, &zero);
	if (!cfg || (cfg->flags & LL_CFG_DRAIN))
		return 0;
	ref = bpf_map_lookup_elem(&peers, &st->key);
	ll_key_mirror(&pk, &st->key);
	pref = bpf_map_lookup_elem(&peers, &pk);
	if (sk->__sk_common.skc_state != BPF_TCP_ESTABLISHED || !ref || ref->cookie != st->cookie ||
	    !pref || !ll_peer_mutual(pref->peer_cookie, st->cookie))
		goto never; /* closing, or the peer closed */
	psk = bpf_rdonly_cast((void *)pref->sk, bpf_core_type_id_kernel(struct sock));
	ptp = bpf_rdonly_cast((void *)pref->sk, bpf_core_type_id_kernel(struct tcp_sock));
	if (psk->__sk_common.skc_cookie.counter != pref->cookie)
		goto never;
	a.write_seq = tp->write_seq;
	a.snd_nxt = tp->snd_nxt;
	a.rcv_nxt = tp->rcv_nxt;
	a.copied_seq = tp->copied_seq;
	b.write_seq = ptp->write_seq;
	b.snd_nxt = ptp->snd_nxt;
	b.rcv_nxt = ptp->rcv_nxt;
	b.copied_seq = ptp->copied_seq;
	quiet = ll_drained(&a, &b) && ll_drained(&b, &a) &&
		psk->__sk_common.skc_state == BPF_TCP_ESTABLISHED;
	lowat = sk->sk_rcvlowat > 1 || psk->sk_rcvlowat > 1;
	/* Seen again last: the values above belong to the peer we meant. */
	if (psk->__sk_common.skc_cookie.counter != pref->cookie)
		goto never;
	now = bpf_ktime_get_ns();
	if (!ll_read_by_recv(tp->copied_seq, st->copied_mark, st->recv_sum)) {
		if (st->flags & LL_SK_SPLICE_SUSPECT) {
			/* Its peer must not come back without it either. */
			__sync_fetch_and_or(&ref->reader, LL_READER_UNSAFE);
			count(LL_CNT_NEVER_SPLICE, 1);
			goto never;
		}
		__sync_fetch_and_or(&st->flags, LL_SK_SPLICE_SUSPECT);
		verdict = LL_REENTER_LATER;
	} else {
		__sync_fetch_and_and(&st->flags, ~LL_SK_SPLICE_SUSPECT);
		verdict = ll_reenter_verdict(
			ref->reader, pref->reader, ref->why, a.copied_seq == a.rcv_nxt, quiet,
			a.copied_seq - st->copied_mark > LL_STREAM_BYTES,
			!(pref->reader & LL_READER_LEAVING) &&
				psock_users(pref->sk, pref->cookie) == 0,
			tp->snd_nxt - st->snd_mark > LL_STREAM_BYTES, st->flags & LL_SK_ACTIVE,
			/* tcp_wstamp_ns: when its last segment left
			 * (tcp_clock_ns(), bpf_ktime_get_ns()'s clock); ACKs
			 * count. */
			ll_paused(now, tp->tcp_wstamp_ns, ptp->tcp_wstamp_ns, cfg->reader_idle_ns),
			lowat, now - st->moved_ns, cfg->reenter_min_ns, st->cycles);
	}
	if (verdict == LL_REENTER_NEVER)
		goto never;
	if (verdict == LL_REENTER_LATER) {
		undo_peer(pref, peer_netns(st, pref), now);
		bpf_seq_write(ctx->meta->seq, &one, sizeof(one));
		return 0;
	}
	if (bpf_map_update_elem(&sock_hash, &st->key, sk, BPF_NOEXIST)) {
		count(LL_CNT_INSERT_ERRORS, 1);
		goto never;
	}
	/* Its own direction redirects again only once ll_drained(), checked at
	 * a verdict: even drained now, a tcp_sendmsg() that began while it was
	 * out (asleep for send-buffer space, the lock released) goes on over
	 * TCP after the insert, and the next verdict comes after it returned.
	 * (Clearing LL_SK_TCP_USED here reordered bytes: t_path_switching.) */
	__sync_fetch_and_or(&st->flags, LL_SK_IN_MAP | LL_SK_TCP_USED);
	mark_left(st, false);
	st->cycles++;
	st->out_us = (now - st->moved_ns) / 1000 > 0xffffffffULL ? 0xffffffff :
								   (now - st->moved_ns) / 1000;
	st->moved_ns = now;
	__sync_fetch_and_and(&ref->reader, ~LL_READER_LEAVING);
	count(LL_CNT_REENTERED, 1);
	return 0;
never:
	mark_left(st, false);
	if (pref && ll_peer_mutual(pref->peer_cookie, st->cookie))
		undo_peer(pref, peer_netns(st, pref), bpf_ktime_get_ns());
	return 0;
}
