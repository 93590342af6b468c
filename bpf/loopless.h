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
 * Which two sockets are the two ends of one connection. Not the 4-tuple:
 * iptables REDIRECT and DNAT (every service mesh's interception) give the
 * two ends tuples that do not mirror, and conntrack may rewrite a source
 * port. NAT never touches TCP sequence numbers, so at establishment the
 * client's (snd_una, rcv_nxt) is the server's (rcv_nxt, snd_una): each is
 * one end's random ISN + 1, 64 bits that survive any address rewriting.
 *
 * netns: the network namespace cookie. Two ends that meet on lo are in one
 * namespace; the cookie keeps every other namespace's sockets apart, so a
 * collision needs two connections of one namespace whose two ISNs both match.
 * Inserts never overwrite (BPF_NOEXIST) and a pair is made only when the
 * server end claims the client end's record (ll_sock_ref.peer_cookie), so a
 * collision leaves both connections on TCP and is counted.
 */
struct ll_key {
	/* The netns cookie of both ends, or LL_KEY_NODE for a pair whose ends
	 * may be in two namespaces (cross_netns): 64 bits of ISNs are then the
	 * identity, and address ownership (addr_owners) who may claim it. */
	__u64 netns;
	__u32 lseq; /* snd_una at establishment: this end's ISN + 1 */
	__u32 rseq; /* rcv_nxt at establishment: the peer's ISN + 1 */
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
	LL_CNT_PAIRS, /* a server end claimed its client end: one accelerated pair */
	LL_CNT_PROVISIONAL_LEFT, /* a client end left unpaired at its first segment */
	LL_CNT_COLLISIONS, /* a key already in use, or a client end already claimed */
	LL_CNT_SKIPPED_NO_PEER, /* a server end on lo whose client end is not in the map */
	LL_CNT_SKIPPED_BLOCKING, /* a blocking client, or a server end of a blocking listener */
	LL_CNT_TCP_READER_UNKNOWN, /* sent on TCP: the reader was not seen reading safely yet */
	LL_CNT_LEAVE_BLOCKING, /* a socket in the map was read blocking: its pair leaves */
	LL_CNT_LEAVE_WAITALL, /* ... read with MSG_WAITALL */
	LL_CNT_LEFT, /* sockets taken out of the map by a leave, every byte read */
	LL_CNT_APP_VISIBLE_ERRORS, /* EAGAIN returned to a blocking recvmsg in the map */
	/* Pairs that started leaving the map because a direction took TCP
	 * (enum ll_leave_why); they may come back (LL_CNT_REENTERED). */
	LL_CNT_LEAVE_UNKNOWN, /* bytes came before the reader was seen reading */
	LL_CNT_LEAVE_LAG, /* the reader fell behind: its queue is over the limit */
	LL_CNT_LEAVE_SMALL, /* a stream of small writes outran its reader */
	LL_CNT_LEAVE_RCVLOWAT, /* the reader set SO_RCVLOWAT */
	LL_CNT_REENTERED, /* sockets put back into the map by ll_reenter */
	LL_CNT_NEVER_SPLICE, /* kept out: read without recvmsg (splice) while out */
	LL_CNT_PAIRS_CROSS_NETNS, /* pairs of ends in two network namespaces */
	LL_CNT_SKIPPED_NOT_OWNER, /* cross_netns: an address its namespace does not own */
	LL_CNT_LEAVE_SPLICE, /* a reader in the map spliced, or its process did: never back */
	LL_CNT_SPLICE_MISSED, /* a splice() found redirected bytes it cannot read */
	LL_CNT_STRANDED_REFUSED, /* sends refused (EACCES) into such a reader's full queue */
	LL_CNT_MAX,
};

/* Slots of the counters map: more than LL_CNT_MAX, so that a datapath
 * pinned by an older looplessd (fewer counters) can be adopted by a newer
 * one and the other way round (libbpf reuses a pinned map only when its
 * max_entries match). */
#define LL_CNT_SLOTS 64

/* Run-time configuration (a one-entry array map, rewritten on reload). */
enum ll_config_flags {
	LL_CFG_INCLUDE_PORTS = 1 << 0, /* only ports marked LL_PORT_INCLUDE are in scope */
	LL_CFG_DRAIN = 1 << 1, /* uninstall: insert nothing, redirect nothing */
	LL_CFG_CROSS_NETNS = 1 << 2, /* pair ends in two namespaces of the node (veth) */
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
	/* A pair that left the map because a direction took TCP comes back
	 * at the earliest this long after it left, doubling per cycle
	 * (ll_reenter_wait()). */
	__u64 reenter_min_ns;
};

/* Values of the 65536-entry port array map. */
enum ll_port_rule {
	LL_PORT_NONE = 0,
	LL_PORT_INCLUDE = 1,
	LL_PORT_EXCLUDE = 2,
};

/* Per-socket state (socket local storage). Its flags change from contexts
 * that share no lock (sk_msg and ll_reenter hold the socket lock, sockops
 * the softirq's, ll_recv and ll_reap none): every change is an atomic or/and. */
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
	/* The connecting end (ACTIVE_ESTABLISHED). */
	LL_SK_ACTIVE = 1 << 4,
	/* A client end in the map until its first incoming segment: it stays
	 * if a server end claimed it by then, and leaves otherwise. */
	LL_SK_PROVISIONAL = 1 << 5,
	/* Its reader as seen by ll_recv (copies of ll_sock_ref.reader, so
	 * the tracepoint needs no map lookup once it has decided). */
	LL_SK_READER_SAFE = 1 << 6,
	LL_SK_READER_UNSAFE = 1 << 7,
	/* Left the map because a direction took TCP (not for an unsafe
	 * reader): ll_reenter may put it back. */
	LL_SK_LEFT = 1 << 8,
	/* ll_reenter saw bytes read without recvmsg once (see ll_read_by_recv()). */
	LL_SK_SPLICE_SUSPECT = 1 << 9,
	/* Keyed node-wide (key.netns LL_KEY_NODE): its peer may be in another
	 * network namespace of the node (cross_netns). */
	LL_SK_CROSS = 1 << 10,
	/* A provisional LL_SK_CROSS client end sent its first segment (the
	 * handshake's final ACK): its next one decides. */
	LL_SK_FIRST_SENT = 1 << 11,
	/* Its reader was seen reading non-blocking, without taking a byte yet
	 * (EAGAIN, a peek): not blocking, but not LL_SK_READER_SAFE either. */
	LL_SK_READER_NB = 1 << 12,
};

/* Its reader was seen reading, one way or the other: a socket whose reader
 * was not may belong to a blocking program (its file says). */
#define LL_SK_READER_SEEN (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE | LL_SK_READER_NB)

/*
 * What a socket's reader has shown (ll_sock_ref.reader), for its peer's
 * sender: bytes are redirected into a socket only while its reader is
 * LL_READER_SAFE and the pair is not LL_READER_LEAVING.
 */
enum ll_reader {
	/* Seen reading with recvmsg and MSG_DONTWAIT (O_NONBLOCK): the kind of
	 * reader tcp_bpf_recvmsg() serves exactly like tcp_recvmsg(). */
	LL_READER_SAFE = 1 << 0,
	/* Seen reading blocking or with MSG_WAITALL: it must leave the map
	 * (tcp_bpf_recvmsg() waits once, ignores MSG_WAITALL). */
	LL_READER_UNSAFE = 1 << 1,
	/* The pair is leaving the map: neither end redirects any more; it is
	 * taken out once every redirected byte was read (ll_reap). */
	LL_READER_LEAVING = 1 << 2,
	/* Its re-entry was undone: its peer could not follow in the same
	 * pass. Not a cycle of its own (ll_reenter_wait()). */
	LL_READER_UNDONE = 1 << 3,
	/* Seen reading non-blocking without taking a byte (EAGAIN, a peek):
	 * it may be in the map (it never waits in tcp_bpf_recvmsg()), but
	 * nothing is redirected into it until LL_READER_SAFE (it may splice). */
	LL_READER_NB = 1 << 4,
	/* Its program spliced while redirected bytes were queued (with
	 * LL_READER_UNSAFE): only recvmsg can read them, so nothing may take
	 * TCP into it, or TCP bytes would be spliced ahead of them. Its sender
	 * goes on redirecting, up to the queue limit, then is refused
	 * (ll_stranded_redirect()). The pair stays in the map. */
	LL_READER_STRANDED = 1 << 5,
};

struct ll_sk_state {
	struct ll_key key; /* its key in sock_hash and peers */
	__u64 cookie; /* its own socket cookie */
	__u32 flags;
	__u32 queued_expect; /* peer's queue after our last redirect */
	/* Writes of at most small_write bytes in a row: each within
	 * LL_BURST_GAP_NS of the one before (burst), with any gap (small_run,
	 * counted up to LL_SMALL_RUN). Both saturate. */
	__u16 burst;
	__u16 small_run;
	__u32 snd_mark; /* snd_nxt when it left the map (with copied_mark) */
	__u64 progress_ns; /* when the peer was last seen taking bytes */
	__u64 send_ns; /* when this socket last sent */
	__u64 peer; /* kernel address of the peer's struct sock */
	__u64 peer_cookie;
	__u64 moved_ns; /* when it last left or re-entered the map */
	__u32 cycles; /* re-entries since it last stayed LL_STAY_RESET_NS */
	__u32 copied_mark; /* copied_seq when it left the map ... */
	__u32 recv_sum; /* ... and the bytes recvmsg read since (ll_recv) */
	__u32 out_us; /* how long it was out before its last re-entry */
	/* Its own network namespace's cookie (key.netns is LL_KEY_NODE for a
	 * pair across namespaces). */
	__u64 netns;
};

/* Values of the peers map: where a socket is, for its peer's program. */
struct ll_sock_ref {
	__u64 sk; /* kernel address of the struct sock */
	__u64 cookie; /* its socket cookie (bpf_get_socket_cookie) */
	__u64 peer_cookie; /* the cookie of the end it is paired with; 0: none yet */
	__u32 reader; /* enum ll_reader: what its reader has shown */
	__u32 why; /* enum ll_leave_why of its pair's last leave */
	__u64 leave_ns; /* when LL_READER_LEAVING was set */
};

/* Why a pair last left the map (ll_sock_ref.why): a direction took TCP. */
enum ll_leave_why {
	LL_WHY_NONE,
	LL_WHY_UNKNOWN, /* bytes came before the reader was seen reading */
	LL_WHY_LAG, /* the reader fell behind */
	LL_WHY_SMALL, /* small writes outran the reader */
	LL_WHY_RCVLOWAT, /* the reader set SO_RCVLOWAT */
	LL_WHY_BLOCKING, /* a reader read blocking: never back */
	LL_WHY_SPLICE, /* a reader spliced, or its process did: never back */
};

/* A leave for a reader that tcp_bpf cannot serve like TCP: the pair never
 * comes back. */
static inline bool ll_why_final(__u32 why)
{
	return why == LL_WHY_BLOCKING || why == LL_WHY_SPLICE;
}

/* What ll_iter reports for each socket in a sockmap (key and flags from its
 * ll_sk_state; user space sets the key from the map for an older version's). */
struct ll_conn_rec {
	struct ll_key key;
	__u64 cookie; /* socket cookie */
	__u64 peer_cookie; /* the end it is paired with (0: none) */
	__u32 queued; /* redirected bytes waiting unread in its psock queue */
	__u32 flags; /* enum ll_sk_flags */
	/* Its real tuple, as the socket sees it (v4-mapped for IPv4). */
	__u32 laddr[4]; /* network byte order */
	__u32 raddr[4];
	__u16 lport; /* host byte order */
	__u16 rport;
	__u32 family; /* LL_AF_INET or LL_AF_INET6 */
	__u64 ino; /* inode of its file (socket:[ino] in /proc/PID/fd); 0: none */
	__u32 reader; /* enum ll_reader of its own record */
	__u32 pad;
};

/* netns_work values: per network namespace, what looplessd's walks can find. */
struct ll_netns_work {
	__s64 left; /* sockets out of the map that may come back (LL_SK_LEFT) */
	__u64 leave_ns; /* when a pair there last started leaving */
};

/* Records of the leave_events ring buffer. */
enum ll_event {
	LL_EVENT_LEAVE = 1, /* a pair started leaving */
	LL_EVENT_UNDO = 2, /* a re-entry was undone: its peer could not follow */
};

/* Records of ll_reap (one per leaving socket) and ll_reenter (one per
 * socket still waiting to go back in). */
enum ll_reap_rec {
	LL_REAP_WAITING = 1, /* still has unread redirected bytes, or may get some */
	LL_REAP_LEFT = 2, /* taken out of the map now */
	LL_REAP_UNDONE = 3, /* ... a re-entry undone: nothing new to look for */
};

/* Set by user space in ll_conn_rec.flags: the socket is in an older
 * version's sockhash (legacy_sock_hash), redirected by that version. */
#define LL_REC_LEGACY (1U << 31)
/* ... the socket is in the map but no namespace walk reached it: only its
 * key and cookie are known. */
#define LL_REC_UNSEEN (1U << 30)

/* Default sizes, overridable from the config before load. */
#define LL_DEFAULT_MAX_SOCKETS 65536
#define LL_NR_PORTS 65536
#define LL_DEFAULT_QUEUE_LIMIT (16U << 20)
#define LL_DEFAULT_READER_IDLE_NS (20ULL * 1000 * 1000)
#define LL_MIN_QUEUE (256U << 10)
#define LL_BURST_GAP_NS 5000ULL
#define LL_SMALL_BURST 32
#define LL_SMALL_RUN 8
#define LL_DEFAULT_SMALL_WRITE 2048
#define LL_DEFAULT_SMALL_LAG (64U << 10)
#define LL_DEFAULT_REENTER_MIN_NS (10ULL * 1000 * 1000)

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

/* The key of a socket from its netns cookie and its snd_una and rcv_nxt at
 * establishment (struct bpf_sock_ops, host byte order). */
static inline void ll_key_set(struct ll_key *k, __u64 netns, __u32 snd_una, __u32 rcv_nxt)
{
	k->netns = netns;
	k->lseq = snd_una;
	k->rseq = rcv_nxt;
}

/* The key the other end of @k holds: the two sequence numbers swapped. */
static inline void ll_key_mirror(struct ll_key *peer, const struct ll_key *k)
{
	peer->netns = k->netns;
	peer->lseq = k->rseq;
	peer->rseq = k->lseq;
}

/* key.netns of a pair keyed node-wide: no netns cookie is 0. */
#define LL_KEY_NODE 0

/* addr_owners keys: an address as ll_addr_set() writes it (v4-mapped for
 * IPv4, network byte order); values: the cookie of the one namespace that
 * has it on an interface (looplessd leaves out an address two have). */
struct ll_owner_key {
	__u32 addr[4];
};

/* lo's ifindex in every network namespace (LOOPBACK_IFINDEX). */
#define LL_LOOPBACK_IFINDEX 1

/* The smallest MSS a peer on lo advertises (see ll_admit()). */
#define LL_LO_MSS_MIN 16384

/*
 * Who enters the map at establishment, as a pure function of what sockops
 * sees there.
 *
 * The client end (ACTIVE_ESTABLISHED) mostly cannot tell where its SYN-ACK
 * came from: on lo the SYN-ACK is processed from the backlog (connect()
 * still holds the socket), where tcp_add_backlog() dropped its dst, so
 * sk_rx_dst_ifindex is still 0 (inet_sk_rx_dst_set() needs the dst). It
 * then enters provisionally and leaves at its first incoming segment unless
 * a server end claimed it by then (ll_provisional_stays). Two facts of the
 * handshake spare a remote peer's client end the insert and the leave:
 * - @rx_ifindex: when the SYN-ACK was processed at once, as from a peer a
 *   network round trip away, it names the device; not lo means not a pair.
 * - @peer_mss, the MSS the SYN-ACK advertised (rx_opt.mss_clamp): a server
 *   on this namespace's lo derives it from lo's MTU (65536: MSS 65483), a
 *   peer behind any other device from that device's (1500, 9000 with
 *   jumbo frames). Below LL_LO_MSS_MIN the peer is not on lo (or an MSS is
 *   clamped on purpose: TCP_MAXSEG, TCPMSS); either way not paired.
 *
 * The server end (PASSIVE_ESTABLISHED) enters only when its final ACK came
 * over lo (@rx_ifindex, sk_rx_dst_ifindex: the client is in this netns,
 * whatever its address) and the client end's record is in the map
 * (@client_found) and nobody claimed it yet (@client_peer_cookie == 0).
 * On lo the client is always established first: it sends the final ACK
 * that establishes the server.
 */
enum ll_admit {
	LL_ADMIT_PROVISIONAL, /* client end: enter, decide at the first segment */
	LL_ADMIT_PAIR, /* server end: enter and claim the client end */
	LL_SKIP_REMOTE, /* the handshake did not come over lo */
	LL_SKIP_NO_PEER, /* server end: no client end in the map */
	LL_SKIP_COLLISION, /* server end: the client end is claimed already */
	LL_SKIP_BLOCKING, /* a blocking program: tcp_bpf_recvmsg() would hurt it */
	LL_SKIP_NOT_OWNER, /* cross_netns: an address its namespace does not own */
};

/*
 * @nonblock: O_NONBLOCK of the program's socket, as far as it is known at
 * establishment: 1 set, 0 clear, -1 unknown. A client end has its file (a
 * connect() on a blocking socket means a blocking reader: never in the
 * map, where tcp_bpf_recvmsg() answers EAGAIN to a blocking reader woken
 * without data). An accepted socket has no file yet: its listener's flag
 * stands for it (an event-driven server's listener is non-blocking, a
 * blocking server's is not); a listener loopless has not seen (listening
 * since before loopless was attached) is unknown, and the reader is judged
 * at its first recvmsg (ll_recv).
 */
static inline enum ll_admit ll_admit(bool active, int nonblock, __u32 rx_ifindex, __u32 peer_mss,
				     bool client_found, __u64 client_peer_cookie)
{
	if (active) {
		if ((rx_ifindex && rx_ifindex != LL_LOOPBACK_IFINDEX) || peer_mss < LL_LO_MSS_MIN)
			return LL_SKIP_REMOTE;
		return nonblock == 0 ? LL_SKIP_BLOCKING : LL_ADMIT_PROVISIONAL;
	}
	if (rx_ifindex != LL_LOOPBACK_IFINDEX)
		return LL_SKIP_REMOTE;
	if (nonblock == 0)
		return LL_SKIP_BLOCKING;
	if (!client_found)
		return LL_SKIP_NO_PEER;
	if (client_peer_cookie)
		return LL_SKIP_COLLISION;
	return LL_ADMIT_PAIR;
}

/*
 * Who enters the map across network namespaces (cross_netns), for an end
 * whose handshake did not come over lo (ll_admit() said LL_SKIP_REMOTE):
 * only a socket whose local address its own namespace owns (@local_owned),
 * so a namespace that adds another pod's address to its own device never
 * gets a socket in. A client end enters provisionally (its peer may be on
 * another node or behind a service address). A server end pairs with the
 * client end of the same ISNs (@client_found, its namespace @client_netns)
 * only when its peer's address as it sees it is owned (@remote_owner) by
 * that very namespace, another than its own (@own_netns).
 */
static inline enum ll_admit ll_admit_cross(bool active, int nonblock, bool local_owned,
					   __u64 own_netns, __u64 remote_owner, bool client_found,
					   __u64 client_netns, __u64 client_peer_cookie)
{
	if (!local_owned)
		return LL_SKIP_NOT_OWNER;
	if (nonblock == 0)
		return LL_SKIP_BLOCKING;
	if (active)
		return LL_ADMIT_PROVISIONAL;
	if (!client_found)
		return LL_SKIP_NO_PEER;
	if (!remote_owner || remote_owner != client_netns || client_netns == own_netns)
		return LL_SKIP_NOT_OWNER;
	if (client_peer_cookie)
		return LL_SKIP_COLLISION;
	return LL_ADMIT_PAIR;
}

/* recvmsg flags (include/linux/socket.h); O_NONBLOCK (asm-generic/fcntl.h):
 * recvfrom() and read() turn a file's O_NONBLOCK into MSG_DONTWAIT before
 * the recvmsg that sock_recv_length reports. */
#define LL_MSG_PEEK 0x2
#define LL_MSG_DONTWAIT 0x40
#define LL_MSG_WAITALL 0x100
#define LL_O_NONBLOCK 04000

/* What one recvmsg (its flags and result, as tp_btf/sock_recv_length sees
 * them) says about its reader. tcp_bpf_recvmsg() serves a non-blocking
 * reader exactly like tcp_recvmsg(); a blocking one it may answer EAGAIN
 * after one wake-up without data, and MSG_WAITALL it ignores for redirected
 * bytes. */
enum ll_read_kind {
	LL_READ_SAFE,
	LL_READ_BLOCKING,
	LL_READ_WAITALL,
	LL_READ_SPLICER, /* non-blocking, but its process splices (ll_splice) */
	LL_READ_UNDECIDED, /* non-blocking, and it took no byte: says nothing yet */
};

/*
 * Safe is a reader seen taking bytes with a non-blocking recvmsg (@ret > 0,
 * not a peek). One that only polled (EAGAIN) or peeked may take its bytes
 * some other way: HAProxy with splice-request recv()s once after accept(),
 * gets EAGAIN, then only splices (the first 64 KiB redirected to it were
 * never read: the server got the stream from offset 65536 on); an L4 proxy
 * peeks at a header, then splices. @splicer: its process was seen splicing
 * from a TCP socket (ll_splice): it recv()s some bytes and splices others,
 * and a splice never sees redirected bytes.
 */
static inline enum ll_read_kind ll_read_kind(__u32 flags, int ret, bool splicer)
{
	if (!(flags & LL_MSG_DONTWAIT)) /* MSG_WAITALL cannot wait without waiting */
		return flags & LL_MSG_WAITALL ? LL_READ_WAITALL : LL_READ_BLOCKING;
	if (splicer)
		return LL_READ_SPLICER;
	return ret > 0 && !(flags & LL_MSG_PEEK) ? LL_READ_SAFE : LL_READ_UNDECIDED;
}

/* System calls that read a TCP socket with tcp_read_sock() on the calling
 * task: splice() and sendfile() from a socket (numbers of the
 * architectures loopless builds for). io_uring's splice runs under
 * io_uring_enter or a worker; it is caught only by ll_read_by_recv(). */
static inline bool ll_splice_syscall(long nr)
{
#if defined(__TARGET_ARCH_x86) || defined(__x86_64__)
	return nr == 275 /* splice */ || nr == 40 /* sendfile */;
#elif defined(__TARGET_ARCH_arm64) || defined(__aarch64__)
	return nr == 76 /* splice */ || nr == 71 /* sendfile */;
#else
	return false;
#endif
}

/* A sender redirects into its peer only while the peer's record says its
 * reader is safe and the pair is not leaving. A reader not seen yet (it may
 * block, or splice, which cannot see redirected bytes) gets TCP. */
static inline bool ll_reader_redirectable(__u32 reader)
{
	return (reader & (LL_READER_SAFE | LL_READER_UNSAFE | LL_READER_LEAVING)) == LL_READER_SAFE;
}

/*
 * A send into a reader whose program spliced with redirected bytes queued
 * (LL_READER_STRANDED): redirected while its queue (@queued bytes unread)
 * is within @limit, refused beyond (the sender gets EACCES). Taking TCP
 * would put later bytes where splice() reads them first (measured: the
 * reader got offset 1 MiB's bytes at 1 MiB - its backlog). Redirected, they
 * stay in order: a program that goes back to recvmsg reads them all, one
 * that only splices waits (as for bytes that never come), and the queue is
 * bounded.
 */
static inline bool ll_stranded_redirect(__u32 queued, __u32 limit)
{
	return queued <= limit;
}

/* A reader seen reading non-blocking without taking a byte yet (EAGAIN, a
 * peek), in a pair not leaving: bytes sent to it take TCP in the map, and
 * how it takes them decides (recvmsg: LL_READER_SAFE, ll_recv; splice():
 * the pair leaves, ll_splice). A reader seen reading only this way reads
 * until EAGAIN, so FIONREAD, which misses TCP bytes in the map, is not
 * what tells it it drained its socket. */
static inline bool ll_reader_probing(__u32 reader)
{
	return (reader & (LL_READER_SAFE | LL_READER_UNSAFE | LL_READER_LEAVING | LL_READER_NB)) ==
	       LL_READER_NB;
}

/* After LL_READER_LEAVING, how long a redirect that decided before it can
 * take to land, at most: a verdict is followed at once by the queueing
 * (tcp_bpf_send_verdict() -> bpf_tcp_ingress()), microseconds. */
#define LL_LEAVE_GRACE_NS (100ULL * 1000 * 1000)

/*
 * Who else holds the psock of a socket, from its reference count @refs and
 * whether it is still in a map (@linked: its psock's link list is not empty):
 * every map link holds one reference, and so does every tcp_bpf_sendmsg()
 * and tcp_bpf_recvmsg() for its whole duration. A socket taken out of the
 * map while one of them runs keeps its psock (and sk_user_data) until that
 * call returns: one reference then is a call in progress, not a map link.
 */
static inline __u32 ll_psock_users(__u32 refs, bool linked)
{
	return linked ? (refs ? refs - 1 : 0) : refs;
}

/*
 * Whether a socket of a leaving pair may leave the map now, without losing
 * a byte: nothing redirected to it is left unread (@queued, its psock's
 * msg_tot_len) and no redirect into it can still be in flight. A redirect
 * is decided in the sender's tcp_bpf_sendmsg() and queued later in the same
 * call, after it released its own socket (tcp_bpf_send_verdict() ->
 * bpf_tcp_ingress(), which drops the bytes without a word if the target's
 * psock stopped in between), so the peer's psock with no call in progress
 * (@peer_users 0, ll_psock_users(); or no psock at all) after the flag was
 * set proves none is. Counting references alone did not: the sender can
 * leave the map itself inside that window (its own segment's callback, at
 * release_sock()), and its call's reference then looked like the map link
 * (mesh_safety lost a stream's first 64 KiB, about 1 run in 15). A peer
 * whose reader is parked in tcp_bpf_recvmsg() is a user for as long, and
 * then the grace period is the proof.
 */
static inline bool ll_leave_ready(__u32 queued, __u32 peer_users, __u64 since_ns)
{
	return !queued && (!peer_users || since_ns >= LL_LEAVE_GRACE_NS);
}

/* A provisional client end at its first incoming segment: it stays when a
 * server end claimed it (wrote its cookie into the client's record). */
static inline bool ll_provisional_stays(__u64 own_record_peer_cookie)
{
	return own_record_peer_cookie != 0;
}

/* A sender may use the record @ref as its peer only when that end named the
 * sender as its own peer: pairing is mutual, never one-sided. */
static inline bool ll_peer_mutual(__u64 ref_peer_cookie, __u64 own_cookie)
{
	return own_cookie && ref_peer_cookie == own_cookie;
}

/* TCP sequence state of one end (struct tcp_sock), for ordering. */
struct ll_seqs {
	__u32 write_seq; /* the program wrote up to here ... */
	__u32 snd_nxt; /* ... TCP sent up to here */
	__u32 rcv_nxt; /* TCP received up to here ... */
	__u32 copied_seq; /* ... the program read up to here */
};

/*
 * Every TCP byte @from wrote to @to is sent, received and read: a byte
 * redirected now cannot overtake one (tcp_bpf_recvmsg() reads ingress_msg
 * before sk_receive_queue). Compared with the peer's rcv_nxt rather than
 * our snd_una, which a delayed ACK holds back.
 */
static inline bool ll_drained(const struct ll_seqs *from, const struct ll_seqs *to)
{
	return from->write_seq == from->snd_nxt && to->rcv_nxt == from->snd_nxt &&
	       to->copied_seq == to->rcv_nxt;
}

/*
 * Whether a write of @size bytes belongs to a stream of small writes, which
 * TCP serves better than redirection (it coalesces them into few segments
 * and wake-ups; redirection queues and wakes per write): it is small, and
 * either its reader lags (more than @small_lag bytes wait unread) with
 * small writes @run in a row (this one included), or @burst of them came
 * back to back while earlier ones are still unread. One small write after
 * large ones is not such a stream: a proxy relaying a bulk stream writes
 * the tail of each segment it read (376 or 1276 bytes after 64 KiB ones),
 * often while its reader is still 128 KiB behind, and leaving for it sent
 * the rest of the transfer over TCP.
 */
static inline bool ll_small_stream(__u32 size, __u32 small_write, __u32 queued, __u32 small_lag,
				   __u32 run, __u32 burst)
{
	if (size > small_write)
		return false;
	return (run >= LL_SMALL_RUN && queued > small_lag) || (burst >= LL_SMALL_BURST && queued);
}

/* Re-entry backoff: LL_REENTER_MAX_SHIFT doublings at most (10 ms -> 1.28
 * s with the defaults). A socket that stayed in the map at least twice as
 * long as it had been out before (the return paid off: a reader that falls
 * behind now and then), or LL_STAY_RESET_NS, starts again from the
 * shortest wait; one that leaves again at once waits longer each time. */
#define LL_REENTER_MAX_SHIFT 7
#define LL_STAY_RESET_NS (1000ULL * 1000 * 1000)

static inline __u64 ll_reenter_wait(__u64 min_ns, __u32 cycles)
{
	return min_ns << (cycles < LL_REENTER_MAX_SHIFT ? cycles : LL_REENTER_MAX_SHIFT);
}

/* The re-entry count a socket keeps when it leaves after @stay_ns in the
 * map, having been out @out_ns before. */
static inline __u32 ll_cycles_after_stay(__u32 cycles, __u64 stay_ns, __u64 out_ns)
{
	return stay_ns >= LL_STAY_RESET_NS || stay_ns >= 2 * out_ns ? 0 : cycles;
}

/*
 * Whether every byte a socket's program consumed since it left the map
 * (@copied_seq - @copied_mark) was read by recvmsg (@recv_sum, what
 * sock_recv_length reported, peeks excluded). Not so means it splices (or
 * uses TCP_ZEROCOPY_RECEIVE, or read_sock): tcp_read_sock() sees only the
 * TCP queue, never a redirected byte, so such a socket never goes back.
 * More reported than consumed is harmless: a recvmsg that ran across the
 * leave counts redirected bytes or bytes before the mark. Its recvmsg calls
 * report after they release the socket, so one look can catch a read
 * between the two: ll_reenter decides on the second.
 */
static inline bool ll_read_by_recv(__u32 copied_seq, __u32 copied_mark, __u32 recv_sum)
{
	return (__s32)(copied_seq - copied_mark - recv_sum) <= 0;
}

enum ll_reenter {
	LL_REENTER_NOW,
	LL_REENTER_LATER, /* not yet: ask again */
	LL_REENTER_NEVER, /* a reader that read blocking or with MSG_WAITALL */
};

/*
 * Whether a socket that left the map because a direction took TCP goes back
 * in (ll_reenter, driven by looplessd, with the socket locked: it neither
 * sends nor reads meanwhile). Only into a map where every byte either end
 * reads was redirected or is read in order after the redirected ones, by
 * readers tcp_bpf_recvmsg() serves like tcp_recvmsg():
 * - both readers seen reading non-blocking (@own_reader, @peer_reader:
 *   their records' enum ll_reader), neither ever blocking: a reader already
 *   asleep inside tcp_recvmsg() would wait on the TCP queue only and never
 *   see a redirected byte (a non-blocking one is never asleep there);
 * - no SO_RCVLOWAT above 1 on either end (@lowat);
 * - @rx_drained: no TCP byte waits in its own receive queue (FIONREAD in
 *   the map counts redirected bytes only);
 * - a pair that left at its first bytes, before its readers were seen
 *   (@why LL_WHY_UNKNOWN, @cycles 0: every new connection of a program
 *   that does not read before its peer writes), comes back at once unless
 *   this socket is the reader of a stream (@streaming: it read more than
 *   LL_STREAM_BYTES since it left). A writer still sending on TCP once
 *   its reader is back in keeps its direction on TCP until the reader has
 *   read all of it (the ordering rule), and meanwhile the reader's FIONREAD
 *   misses those bytes: an nginx-style reader stalled there (llprobe
 *   epoll-et-nginx, 1 run in 3 with only its own queue drained, 1 in 10
 *   with the connection quiet too: a send whose verdict ran just before
 *   the insert). So a stream's reader goes in only after its writer
 *   (@writer_idle: the peer is back in the map and no send of it is in
 *   progress, its psock holding only its map link's reference: its next
 *   verdict sees this socket in the map) and with @quiet, ll_drained()
 *   both ways. Both ends of a duplex stream are readers of one (@duplex:
 *   this end also sent more than LL_STREAM_BYTES since it left): the
 *   client end (@active) goes first with @quiet, the server end after it.
 *   This holds whatever the reason the pair left;
 * - any other also @quiet, and at least ll_reenter_wait() since it left: a
 *   connection that keeps leaving is put back less and less often;
 * - a small-write stream that came back once and left again as one
 *   (@cycles) also @paused: neither end sent for reader_idle_ns
 *   (ll_paused()). Writes cannot be seen out of the map, so "large writes
 *   again" shows only as a pause; coming back at every quiet instant made
 *   a 64 B-write stream cycle, at 0.63x lo. The first time it comes back
 *   without: a sidecar's paced stream forwards small pieces now and then,
 *   and waiting for its pause kept it out for good (mesh safety row: 83 %
 *   redirected).
 * Each direction redirects again at the first send that finds it
 * ll_drained() (both ends go in with LL_SK_TCP_USED).
 */
/* Always inlined: a BPF function call takes at most five arguments. */
static inline __attribute__((always_inline)) enum ll_reenter
ll_reenter_verdict(__u32 own_reader, __u32 peer_reader, __u32 why, bool rx_drained, bool quiet,
		   bool streaming, bool writer_idle, bool duplex, bool active, bool paused,
		   bool lowat, __u64 since_ns, __u64 min_ns, __u32 cycles)
{
	if ((own_reader | peer_reader) & LL_READER_UNSAFE || ll_why_final(why))
		return LL_REENTER_NEVER;
	if (!(own_reader & (LL_READER_SAFE | LL_READER_NB)) ||
	    !(peer_reader & (LL_READER_SAFE | LL_READER_NB)) || lowat || !rx_drained)
		return LL_REENTER_LATER;
	/* A stream's reader: after its writer, with the connection quiet. */
	if (streaming && !(quiet && (writer_idle || (duplex && active))))
		return LL_REENTER_LATER;
	if (why == LL_WHY_UNKNOWN && !cycles)
		return LL_REENTER_NOW;
	if (!quiet || since_ns < ll_reenter_wait(min_ns, cycles))
		return LL_REENTER_LATER;
	if (why == LL_WHY_SMALL && cycles && !paused)
		return LL_REENTER_LATER;
	return LL_REENTER_NOW;
}

/* Neither end transmitted a segment for @idle_ns (the departure times of
 * their last ones, tcp_sock.tcp_wstamp_ns, which may lie ahead of @now_ns
 * when paced). */
static inline bool ll_paused(__u64 now_ns, __u64 own_sent_ns, __u64 peer_sent_ns, __u64 idle_ns)
{
	return (__s64)(now_ns - own_sent_ns) >= (__s64)idle_ns &&
	       (__s64)(now_ns - peer_sent_ns) >= (__s64)idle_ns;
}

/* Bytes read since it left beyond which a socket is a stream's reader. */
#define LL_STREAM_BYTES (256U << 10)

#endif /* LOOPLESS_H */
