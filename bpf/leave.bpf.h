// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Leaving the map without losing a byte (DESIGN.md "Leaving the map"):
 * flag the pair, wait until nothing redirected is unread and no redirect
 * can be in flight, delete; and undoing a re-entry the peer cannot follow.
 * Included by loopless.bpf.c only (one BPF object, one skeleton): the
 * programs share these maps and helpers.
 */
#ifndef LOOPLESS_LEAVE_BPF_H
#define LOOPLESS_LEAVE_BPF_H

/*
 * A pair starts leaving the map: both records say so, so neither sender
 * redirects any more (ll_reader_redirectable()); ll_reap takes each socket
 * out once nothing redirected to it is unread and no redirect into it can
 * be in flight (ll_leave_ready()). The protocol of DESIGN.md "Leaving the
 * map": flag, quiesce, drain, delete. @why ll_why_final(): this socket's
 * reader read blocking or spliced, so the pair never comes back; otherwise a direction
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
		__sync_fetch_and_or(&ref->reader,
				    (ll_why_final(why) ? LL_READER_UNSAFE : 0) | LL_READER_LEAVING);
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

/* The namespace of @st's peer (record @pref): @st's own, but across
 * namespaces. */
static __always_inline __u64 peer_netns(const struct ll_sk_state *st,
					const struct ll_sock_ref *pref)
{
	return st->key.netns == LL_KEY_NODE ? sock_netns(pref->sk, pref->cookie) : st->netns;
}

/*
 * The peer went back in (earlier in this pass, or in an earlier one) but this
 * end does not follow (a byte moved in between, or it never may): nothing
 * was redirected into the peer while this end was out, so ll_reap takes it
 * out again at once rather than leave it alone in the map.
 */
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

#endif
