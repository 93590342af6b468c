/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Types shared by the BPF programs (loopless.bpf.c) and user space
 * (looplessd, loopless, tests). Every struct and id is defined here once.
 *
 * The key helpers at the bottom are plain C on plain values so that user
 * space unit-tests exactly the code the datapath runs.
 */
#ifndef LOOPLESS_H
#define LOOPLESS_H

#ifndef __bpf__
#include <linux/types.h>
#include <stdbool.h>
#endif

#define LL_AF_INET 2 /* AF_INET: IPv4 and v4-mapped IPv6 share this form */
#define LL_AF_INET6 10 /* AF_INET6 */

/*
 * A socket as seen from its own side. The peer of a local connection holds
 * the mirrored key (local and remote swapped), so the sk_msg program finds
 * the peer by building its own key and swapping.
 *
 * netns: the network namespace cookie. Every pod has 127.0.0.1, so two
 * namespaces can hold identical 4-tuples; the cookie keeps them apart.
 *
 * Addresses are always 16 bytes: IPv4 is stored in v4-mapped form
 * (::ffff:a.b.c.d) and family is LL_AF_INET for both an AF_INET socket and
 * an AF_INET6 socket carrying a v4-mapped address, so a v4 client of a
 * dual-stack server finds its peer. Ports are in host byte order.
 */
struct ll_key {
	__u64 netns;
	__u32 laddr[4]; /* network byte order */
	__u32 raddr[4]; /* network byte order */
	__u16 lport; /* host byte order */
	__u16 rport; /* host byte order */
	__u32 family; /* LL_AF_INET or LL_AF_INET6 */
};

/* Per-CPU counters, indexed by these ids; user space sums over CPUs. */
enum ll_counter {
	LL_CNT_REDIRECTED_MSGS,
	LL_CNT_REDIRECTED_BYTES,
	LL_CNT_PASSED_MSGS, /* sent on the TCP path: no peer in the map */
	LL_CNT_PASSED_BYTES,
	LL_CNT_TCP_PINNED, /* sent on the TCP path: this direction is on TCP */
	LL_CNT_SOCKETS_INSERTED,
	LL_CNT_INSERT_ERRORS, /* bpf_sock_hash_update failed (ULP, MPTCP, map full) */
	LL_CNT_SKIPPED_REMOTE, /* peer cannot be on this host */
	LL_CNT_SKIPPED_PORT, /* port include/exclude rules */
	LL_CNT_FALLBACKS, /* redirect -> TCP: the peer's queue is over its limit */
	LL_CNT_RETURNS, /* TCP -> redirect: every TCP byte of the direction read */
	LL_CNT_FALLBACKS_SMALL, /* redirect -> TCP: small writes outrunning the reader */
	LL_CNT_SKIPPED_ZEROCOPY, /* SO_ZEROCOPY was on at establishment */
	LL_CNT_ZEROCOPY_REFUSED, /* SO_ZEROCOPY refused on a socket in the map */
	LL_CNT_FALLBACKS_RCVLOWAT, /* redirect -> TCP: the reader set SO_RCVLOWAT */
	LL_CNT_MAX,
};

/* Slots of the counters map: more than LL_CNT_MAX, so that a datapath
 * pinned by an older looplessd (fewer counters) can be adopted by a newer
 * one and the other way round (libbpf reuses a pinned map only when its
 * max_entries match). */
#define LL_CNT_SLOTS 32

/* Run-time configuration (a one-entry array map, rewritten on reload). */
enum ll_config_flags {
	LL_CFG_INCLUDE_PORTS = 1 << 0, /* only ports marked LL_PORT_INCLUDE are in scope */
	LL_CFG_DRAIN = 1 << 1, /* uninstall: insert nothing, redirect nothing */
};

struct ll_config {
	__u32 flags;
	/* Redirected bytes a reader that keeps reading may have waiting
	 * before its writer takes the TCP path; one not seen reading for
	 * reader_idle_ns: its SO_RCVBUF (at least LL_MIN_QUEUE). */
	__u32 queue_limit;
	/* Writes of at most small_write bytes take the TCP path while more
	 * than small_lag redirected bytes wait unread (a small-write stream
	 * outrunning its reader). */
	__u32 small_write;
	__u32 small_lag;
	__u64 reader_idle_ns;
};

/* Values of the 65536-entry port array map. */
enum ll_port_rule {
	LL_PORT_NONE = 0,
	LL_PORT_INCLUDE = 1,
	LL_PORT_EXCLUDE = 2,
};

/* Per-socket state (socket local storage). */
enum ll_sk_flags {
	/* This direction is on the TCP path: bytes of it may be unread, and
	 * redirected ones would overtake them (see ll_sk_msg). */
	LL_SK_TCP_USED = 1 << 0,
	/* peer/peer_cookie are filled in. */
	LL_SK_HAVE_PEER = 1 << 1,
	/* On TCP as a small-write stream outrunning its reader. */
	LL_SK_SMALL = 1 << 2,
	/* ll_sockops put the socket into sock_hash (ll_setsockopt asks). */
	LL_SK_IN_MAP = 1 << 3,
};

struct ll_sk_state {
	__u32 flags;
	__u32 queued_expect; /* peer's queue after our last redirect */
	__u32 burst; /* small writes in a row, each within LL_BURST_GAP_NS */
	__u32 pad;
	__u64 progress_ns; /* when the peer was last seen taking bytes */
	__u64 send_ns; /* when this socket last sent */
	__u64 peer; /* kernel address of the peer's struct sock */
	__u64 peer_cookie;
};

/* Values of the peers map: where a socket is, for its peer's program. */
struct ll_sock_ref {
	__u64 sk; /* kernel address of the struct sock */
	__u64 cookie; /* its socket cookie (bpf_get_socket_cookie) */
};

/* What the sockmap iterator (ll_iter) reports for each socket. */
struct ll_conn_rec {
	struct ll_key key;
	__u64 cookie; /* socket cookie */
	__u32 queued; /* redirected bytes waiting unread in its psock queue */
	__u32 flags; /* enum ll_sk_flags of its sending direction */
};

/* Default sizes, overridable from the config before load. */
#define LL_DEFAULT_MAX_SOCKETS 65536
#define LL_MAX_LOCAL_ADDRS 256
#define LL_NR_PORTS 65536
#define LL_DEFAULT_QUEUE_LIMIT (16U << 20)
#define LL_DEFAULT_READER_IDLE_NS (20ULL * 1000 * 1000)
#define LL_MIN_QUEUE (256U << 10)
#define LL_BURST_GAP_NS 5000ULL
#define LL_SMALL_BURST 32
#define LL_DEFAULT_SMALL_WRITE 2048
#define LL_DEFAULT_SMALL_LAG (64U << 10)

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LL_NTOHS(x) ((__u16)__builtin_bswap16(x))
#define LL_HTONL(x) ((__u32)__builtin_bswap32(x))
#else
#define LL_NTOHS(x) ((__u16)(x))
#define LL_HTONL(x) ((__u32)(x))
#endif

/*
 * Port normalisation. In struct bpf_sock_ops and struct sk_msg_md
 * local_port is host byte order, remote_port network byte order; the
 * kernel's ctx rewrite (sock_ops_convert_ctx_access, sk_msg_convert_ctx_access
 * in net/core/filter.c) loads skc_dport and, on little-endian and before
 * 5.x cleanups, shifts it into the upper 16 bits. A connected socket never
 * has remote port 0, so a value above 0xffff means "shifted".
 */
static inline __u16 ll_remote_port(__u32 remote_port)
{
	__u16 nport = remote_port > 0xffff ? (__u16)(remote_port >> 16) : (__u16)remote_port;

	return LL_NTOHS(nport);
}

static inline __u16 ll_local_port(__u32 local_port)
{
	return (__u16)local_port;
}

/* Words of an address as they sit in memory (network byte order). */
#define LL_V4MAPPED_WORD LL_HTONL(0x0000ffffU) /* ::ffff:0:0/96, third word */
#define LL_V6_LOOPBACK_WORD LL_HTONL(1U) /* ::1, last word */

/* Fill a 16-byte address from a socket's family and addresses. */
static inline __u32 ll_addr_set(__u32 dst[4], __u32 family, __u32 ip4, __u32 w0, __u32 w1, __u32 w2,
				__u32 w3)
{
	if (family == LL_AF_INET) {
		dst[0] = 0;
		dst[1] = 0;
		dst[2] = LL_V4MAPPED_WORD;
		dst[3] = ip4;
		return LL_AF_INET;
	}
	dst[0] = w0;
	dst[1] = w1;
	dst[2] = w2;
	dst[3] = w3;
	if (w0 == 0 && w1 == 0 && w2 == LL_V4MAPPED_WORD)
		return LL_AF_INET;
	return LL_AF_INET6;
}

static inline bool ll_addr_eq(const __u32 a[4], const __u32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* 127.0.0.0/8 (also v4-mapped) or ::1. */
static inline bool ll_addr_is_loopback(const __u32 a[4], __u32 family)
{
	if (family == LL_AF_INET)
		return ((const __u8 *)&a[3])[0] == 127; /* first octet of 127.0.0.0/8 */
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == LL_V6_LOOPBACK_WORD;
}

/* The key the peer of @k holds: local and remote swapped. */
static inline void ll_key_mirror(struct ll_key *peer, const struct ll_key *k)
{
	peer->netns = k->netns;
	peer->family = k->family;
	peer->laddr[0] = k->raddr[0];
	peer->laddr[1] = k->raddr[1];
	peer->laddr[2] = k->raddr[2];
	peer->laddr[3] = k->raddr[3];
	peer->raddr[0] = k->laddr[0];
	peer->raddr[1] = k->laddr[1];
	peer->raddr[2] = k->laddr[2];
	peer->raddr[3] = k->laddr[3];
	peer->lport = k->rport;
	peer->rport = k->lport;
}

#endif /* LOOPLESS_H */
