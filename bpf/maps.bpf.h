// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The datapath's maps and the small helpers every program uses.
 * Included by loopless.bpf.c only (one BPF object, one skeleton): the
 * programs share these maps and helpers.
 */
#ifndef LOOPLESS_MAPS_BPF_H
#define LOOPLESS_MAPS_BPF_H

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

/* Processes seen splicing from a TCP socket (ll_splice), by thread-group
 * id and start time (a pid used again is another process). LRU: processes
 * exit without telling; an evicted one is learnt again at its next splice. */
struct ll_proc_key {
	__u32 tgid;
	__u32 pad;
	__u64 start_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ll_proc_key);
	__type(value, __u64); /* when it was first seen splicing */
} splicers SEC(".maps");

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

/* A socket's local (@local) or remote address as ll_addr_set() writes it
 * (v4-mapped for IPv4, network byte order) into @dst; its family. */
static __always_inline __u32 skc_addr(const struct sock_common *skc, bool local, __u32 dst[4])
{
	__u32 fam = skc->skc_family == LL_AF_INET6 ? LL_AF_INET6 : LL_AF_INET;
	const struct in6_addr *a6 = local ? &skc->skc_v6_rcv_saddr : &skc->skc_v6_daddr;

	return ll_addr_set(dst, fam, local ? skc->skc_rcv_saddr : skc->skc_daddr,
			   a6->in6_u.u6_addr32[0], a6->in6_u.u6_addr32[1], a6->in6_u.u6_addr32[2],
			   a6->in6_u.u6_addr32[3]);
}

/* The namespace that owns a socket's local (@local) or remote address; 0:
 * none, or two. */
static __always_inline __u64 addr_owner(const struct sock_common *skc, bool local)
{
	struct ll_owner_key k;
	__u64 *v;

	skc_addr(skc, local, k.addr);
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

#endif
