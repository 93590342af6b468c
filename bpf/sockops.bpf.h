// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ll_sockops's work: who enters the map at establishment (ll_admit(),
 * ll_admit_cross()), what each segment of an undecided or leaving socket
 * decides, and the TCP_CLOSE cleanup.
 * Included by loopless.bpf.c only (one BPF object, one skeleton): the
 * programs share these maps and helpers.
 */
#ifndef LOOPLESS_SOCKOPS_BPF_H
#define LOOPLESS_SOCKOPS_BPF_H

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

static __always_inline int sockops_established(struct bpf_sock_ops *ops, __u32 flags, bool active)
{
	struct ll_sock_ref ref = {}, *client = NULL;
	struct sock_common *skc;
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
		skc = tp ? &tp->inet_conn.icsk_inet.sk.__sk_common : NULL;
		verdict = ll_admit_cross(active, nonblock, skc && addr_owner(skc, true) == netns,
					 netns, skc ? addr_owner(skc, false) : 0, client != NULL,
					 client ? sock_netns(client->sk, client->cookie) : 0,
					 client ? client->peer_cookie : 0);
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
	} else if (!(st->flags & LL_SK_READER_SEEN) && !incoming) {
		done = false; /* undecided: decided at a segment received */
	} else if (!(st->flags & LL_SK_READER_SEEN)) {
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

#endif
