// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loopless datapath.
 *
 * ll_sockops (cgroup sockops): when a TCP connection becomes established and
 * its peer can be on this host, put the socket into sock_hash under its own
 * key. ll_sk_msg (sk_msg verdict on sock_hash): on every sendmsg, look the
 * peer up by the mirrored key and redirect the bytes into the peer's receive
 * queue (psock ingress_msg). Anything that cannot be redirected takes the
 * normal TCP path: every branch returns SK_PASS.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
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
	__uint(max_entries, LL_CNT_MAX);
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

/* Extra addresses of this host (v4-mapped form for IPv4), from local_addrs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LL_MAX_LOCAL_ADDRS);
	__type(key, __u32[4]);
	__type(value, __u8);
} local_addrs SEC(".maps");

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

/*
 * Both context types expose the same address fields; a macro keeps one
 * definition of how a key is built from them. Every field is loaded
 * unconditionally into a local first: loading inside the family branches
 * lets clang merge the loads into one with a computed ctx offset, which the
 * verifier rejects ("dereference of modified ctx ptr"); volatile loads
 * cannot be sunk or merged. For AF_INET sockets
 * the ip6 fields hold nothing meaningful and are ignored by ll_addr_set().
 */
#define LD(field) (*(volatile __u32 *)&(field))
#define LL_KEY_FROM_CTX(k, ctx)                                                                    \
	do {                                                                                       \
		__u32 fam = (ctx)->family == LL_AF_INET6 ? LL_AF_INET6 : LL_AF_INET;                 \
		__u32 l4 = LD((ctx)->local_ip4), r4 = LD((ctx)->remote_ip4);                               \
		__u32 l0 = LD((ctx)->local_ip6[0]), l1 = LD((ctx)->local_ip6[1]);                          \
		__u32 l2 = LD((ctx)->local_ip6[2]), l3 = LD((ctx)->local_ip6[3]);                          \
		__u32 r0 = LD((ctx)->remote_ip6[0]), r1 = LD((ctx)->remote_ip6[1]);                        \
		__u32 r2 = LD((ctx)->remote_ip6[2]), r3 = LD((ctx)->remote_ip6[3]);                        \
		(k)->family = ll_addr_set((k)->laddr, fam, l4, l0, l1, l2, l3);                    \
		ll_addr_set((k)->raddr, fam, r4, r0, r1, r2, r3);                                  \
		(k)->lport = ll_local_port((ctx)->local_port);                                     \
		(k)->rport = ll_remote_port((ctx)->remote_port);                                   \
		(k)->netns = bpf_get_netns_cookie(ctx);                                            \
	} while (0)

static __always_inline bool peer_is_local(const struct ll_key *k)
{
	if (ll_addr_is_loopback(k->raddr, k->family))
		return true;
	/* A connection to one of this host's own addresses picks that
	 * address as its source (fib source selection). */
	if (ll_addr_eq(k->laddr, k->raddr))
		return true;
	return bpf_map_lookup_elem(&local_addrs, k->raddr) != NULL;
}

static __always_inline __u8 port_rule(__u16 port)
{
	__u32 key = port;
	__u8 *rule = bpf_map_lookup_elem(&ports, &key);

	return rule ? *rule : LL_PORT_NONE;
}

/* Both ends see the same pair of ports, so both make the same decision. */
static __always_inline bool ports_in_scope(const struct ll_key *k, __u32 flags)
{
	__u8 l = port_rule(k->lport), r = port_rule(k->rport);

	if (l == LL_PORT_EXCLUDE || r == LL_PORT_EXCLUDE)
		return false;
	if (flags & LL_CFG_INCLUDE_PORTS)
		return l == LL_PORT_INCLUDE || r == LL_PORT_INCLUDE;
	return true;
}

SEC("sockops")
int ll_sockops(struct bpf_sock_ops *ops)
{
	struct ll_key key = {};
	struct bpf_sock *sk;
	__u32 flags;
	long err;

	/* ACTIVE: the client, in tcp_finish_connect() when the SYN-ACK is
	 * processed (before connect() returns). PASSIVE: the server's child
	 * socket, when the final ACK is processed (before accept() returns).
	 * Both fire without any BPF_SOCK_OPS_*_CB_FLAG. */
	if (ops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (ops->family != LL_AF_INET && ops->family != LL_AF_INET6)
		return 1;
	flags = config_flags();
	if (flags & LL_CFG_DRAIN)
		return 1;

	LL_KEY_FROM_CTX(&key, ops);
	if (!peer_is_local(&key)) {
		count(LL_CNT_SKIPPED_REMOTE, 1);
		return 1;
	}
	if (!ports_in_scope(&key, flags)) {
		count(LL_CNT_SKIPPED_PORT, 1);
		return 1;
	}
	/* The ordering state must exist before the first byte is sent; a
	 * socket without it is never put into the map. */
	sk = ops->sk;
	if (!sk || !bpf_sk_storage_get(&sk_state, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE)) {
		count(LL_CNT_INSERT_ERRORS, 1);
		return 1;
	}
	/* Fails for sockets sockmap cannot take (a ULP such as MPTCP or kTLS:
	 * sk_psock_init() refuses them) and when the map is full; the socket
	 * then simply stays on the normal path. */
	err = bpf_sock_hash_update(ops, &sock_hash, &key, BPF_ANY);
	count(err ? LL_CNT_INSERT_ERRORS : LL_CNT_SOCKETS_INSERTED, 1);
	return 1;
}

/*
 * Ordering. tcp_bpf_recvmsg() (net/ipv4/tcp_bpf.c) reads the psock
 * ingress_msg queue before sk_receive_queue whenever ingress_msg holds data,
 * so a redirected byte would be read before an earlier byte of the same
 * direction that took the TCP path and still sits unread in the peer's
 * receive queue. A socket enters the map at ESTABLISHED, before it can send,
 * so every byte it sends passes this program: once a byte of a direction has
 * taken the TCP path (the peer was not in the map yet, or has left it), the
 * direction stays on TCP for the rest of the connection. The other way round
 * (redirect first, TCP later) is safe for the same reason and happens when
 * the peer leaves the map.
 *
 * sk_msg programs cannot release a socket reference (no bpf_sk_release), so
 * they cannot look the peer up to see whether it has read those TCP bytes:
 * pinning the direction is the safe choice; the counter "tcp_pinned" shows
 * how often it happens.
 */
SEC("sk_msg")
int ll_sk_msg(struct sk_msg_md *msg)
{
	struct ll_key key = {}, peer = {};
	struct ll_sk_state *st;
	__u64 size = msg->size;
	struct bpf_sock *sk;

	sk = msg->sk;
	if (!sk)
		goto pass;
	/* Created by ll_sockops before the socket entered the map, so it
	 * exists for every socket this program runs on. */
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st)
		goto pass;
	if (st->flags & LL_SK_TCP_USED) {
		count(LL_CNT_TCP_PINNED, 1);
		goto pass;
	}
	if (config_flags() & LL_CFG_DRAIN)
		goto pass_pin;

	LL_KEY_FROM_CTX(&key, msg);
	ll_key_mirror(&peer, &key);
	/* Returns SK_DROP when the peer is not in the map; returning that
	 * would fail the sender's sendmsg with EACCES, so fall back instead. */
	if (bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(LL_CNT_REDIRECTED_MSGS, 1);
		count(LL_CNT_REDIRECTED_BYTES, size);
		return SK_PASS;
	}
pass_pin:
	st->flags |= LL_SK_TCP_USED;
pass:
	count(LL_CNT_PASSED_MSGS, 1);
	count(LL_CNT_PASSED_BYTES, size);
	return SK_PASS;
}
