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

#include "maps.bpf.h"
#include "leave.bpf.h"
#include "sockops.bpf.h"

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
	if (!(st->flags & LL_SK_READER_SEEN)) {
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
	if (ref->reader & LL_READER_STRANDED) {
		/* ll_splice: TCP would overtake what is queued there. */
		if ((st->flags & LL_SK_HAVE_PEER) && peer_read(st, &v) &&
		    ll_stranded_redirect(v.queued, cfg->queue_limit) &&
		    bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS) == SK_PASS) {
			count(LL_CNT_REDIRECTED_MSGS, 1);
			count(LL_CNT_REDIRECTED_BYTES, size);
			return SK_PASS;
		}
		count(LL_CNT_STRANDED_REFUSED, 1);
		return SK_DROP;
	}
	/* Its reader not seen reading safely yet (it may block, or splice),
	 * or the pair is leaving the map. Bytes that take TCP into a socket in
	 * the map are invisible to FIONREAD there (tcp_bpf_ioctl() counts only
	 * ingress_msg: an event-driven reader that trusts it stalls), so the
	 * pair leaves; its reader, never redirected into, leaves at this very
	 * segment (sockops_segment), before the bytes are queued. ll_reenter
	 * puts the pair back once both readers were seen reading safely. */
	if (!ll_reader_redirectable(ref->reader)) {
		count(LL_CNT_TCP_READER_UNKNOWN, 1);
		if (!(ref->reader & LL_READER_LEAVING) && !ll_reader_probing(ref->reader)) {
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
	rec.family = skc_addr(skc, true, rec.laddr);
	skc_addr(skc, false, rec.raddr);
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
 * Its reader cannot be served like TCP (it read blocking, with MSG_WAITALL,
 * or splices): its pair leaves the map for good (@why ll_why_final()),
 * counted in @cnt; out of the map already, it never comes back.
 */
static __always_inline void reader_unsafe(struct ll_sk_state *st, enum ll_leave_why why,
					  enum ll_counter cnt)
{
	struct ll_sock_ref *ref;

	if (st->flags & LL_SK_READER_UNSAFE)
		return;
	__sync_fetch_and_or(&st->flags, LL_SK_READER_UNSAFE);
	if (st->flags & LL_SK_IN_MAP) {
		count(cnt, 1);
		leave_pair(st, why);
		return;
	}
	mark_left(st, false);
	ref = bpf_map_lookup_elem(&peers, &st->key);
	if (ref && ref->cookie == st->cookie)
		__sync_fetch_and_or(&ref->reader, LL_READER_UNSAFE);
	if (why == LL_WHY_SPLICE)
		count(LL_CNT_NEVER_SPLICE, 1);
}

/* The calling process, as splicers knows it. */
static __always_inline void proc_key(struct task_struct *task, struct ll_proc_key *pk)
{
	pk->tgid = task->tgid;
	pk->pad = 0;
	pk->start_ns = task->group_leader->start_time;
}

/*
 * After every recvmsg of the host (sock_recvmsg_nosec()), with its flags
 * (O_NONBLOCK already turned into MSG_DONTWAIT) and its result: how the
 * reader of a socket in the map reads. Global, so it stays tiny: one socket
 * storage lookup for every socket, and for ours a flag test once decided.
 * splice() never comes here (ll_splice sees it): a reader that only
 * splices stays "not seen", and is never redirected into.
 */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(ll_recv, struct sock *sk, int ret, int flags)
{
	struct ll_sk_state *st;
	struct ll_sock_ref *ref;
	enum ll_read_kind kind;
	struct ll_proc_key pk;

	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & (LL_SK_IN_MAP | LL_SK_LEFT)))
		return 0;
	/* Out of the map: what recvmsg read, for ll_read_by_recv(). */
	if ((st->flags & LL_SK_LEFT) && ret > 0 && !(flags & LL_MSG_PEEK))
		__sync_fetch_and_add(&st->recv_sum, ret);
	kind = ll_read_kind(flags, ret, false);
	if (kind == LL_READ_UNDECIDED) {
		if (st->flags & LL_SK_READER_SEEN)
			return 0;
		__sync_fetch_and_or(&st->flags, LL_SK_READER_NB);
		ref = bpf_map_lookup_elem(&peers, &st->key);
		if (ref && ref->cookie == st->cookie)
			__sync_fetch_and_or(&ref->reader, LL_READER_NB);
		return 0;
	}
	if (kind == LL_READ_SAFE) {
		if (st->flags & (LL_SK_READER_SAFE | LL_SK_READER_UNSAFE))
			return 0;
		/* Deciding, once per socket: is its process a splicer? */
		proc_key(bpf_get_current_task_btf(), &pk);
		kind = ll_read_kind(flags, ret, bpf_map_lookup_elem(&splicers, &pk) != NULL);
	}
	if (kind == LL_READ_SAFE) {
		__sync_fetch_and_or(&st->flags, LL_SK_READER_SAFE);
		ref = bpf_map_lookup_elem(&peers, &st->key);
		if (ref && ref->cookie == st->cookie)
			__sync_fetch_and_or(&ref->reader, LL_READER_SAFE);
		return 0;
	}
	if (kind == LL_READ_SPLICER) {
		reader_unsafe(st, LL_WHY_SPLICE, LL_CNT_LEAVE_SPLICE);
		return 0;
	}
	/* The answer tcp_bpf_recvmsg() gives a blocking reader woken without
	 * data, which tcp_recvmsg() would not (a timeout of SO_RCVTIMEO is
	 * counted too: the tracepoint cannot tell them apart). */
	if (ret == -LL_EAGAIN && (st->flags & LL_SK_IN_MAP))
		count(LL_CNT_APP_VISIBLE_ERRORS, 1);
	reader_unsafe(st, LL_WHY_BLOCKING,
		      kind == LL_READ_WAITALL ? LL_CNT_LEAVE_WAITALL : LL_CNT_LEAVE_BLOCKING);
	return 0;
}

/* The system call the current task is in (its number; user registers). */
static __always_inline long syscall_nr(struct task_struct *task)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

#if defined(__TARGET_ARCH_x86)
	return regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
	return regs->syscallno;
#else
	return -1;
#endif
}

/*
 * Splicers. tcp_rcv_space_adjust() runs in tcp_recvmsg() and in
 * tcp_read_sock(), which every splice() (or sendfile()) from a TCP socket
 * calls, even one that finds nothing to read (measured here). A splice
 * never sees redirected bytes (tcp_splice_read() reads the TCP receive
 * queue only), and a program that splices once splices again on its other
 * connections, after recv()ing their first bytes (HAProxy's
 * splice-request); so its process goes into splicers, and ll_recv never
 * takes its readers for safe. The socket it spliced leaves for good. A
 * splice that finds redirected bytes queued cannot read them: counted as
 * an error the program sees, and that reader is stranded
 * (LL_READER_STRANDED): its pair stays, nothing takes TCP into it (the
 * splice would read those later bytes first). Global, like ll_recv: every recvmsg with data of the host comes
 * here, so the system call is tested first, and for those nothing else.
 */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(ll_splice, struct sock *sk)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ll_sock_ref *ref;
	struct ll_proc_key pk;
	struct ll_sk_state *st;
	struct sk_psock *psock;
	__u64 now, ud;

	if (!ll_splice_syscall(syscall_nr(task)))
		return 0;
	proc_key(task, &pk);
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&splicers, &pk, &now, BPF_NOEXIST);
	st = bpf_sk_storage_get(&sk_state, sk, NULL, 0);
	if (!st || !(st->flags & (LL_SK_IN_MAP | LL_SK_LEFT)) || (st->flags & LL_SK_READER_UNSAFE))
		return 0;
	ud = (__u64)sk->sk_user_data & LL_SK_USER_DATA_PTRMASK;
	if ((st->flags & LL_SK_IN_MAP) && ud) {
		psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock));
		if (psock->msg_tot_len) {
			/* Stranded: the pair stays, and its sender keeps
			 * redirecting (ll_stranded_redirect()). */
			count(LL_CNT_SPLICE_MISSED, 1);
			count(LL_CNT_APP_VISIBLE_ERRORS, 1);
			__sync_fetch_and_or(&st->flags, LL_SK_READER_UNSAFE);
			ref = bpf_map_lookup_elem(&peers, &st->key);
			if (ref && ref->cookie == st->cookie)
				__sync_fetch_and_or(&ref->reader,
						    LL_READER_UNSAFE | LL_READER_STRANDED);
			return 0;
		}
	}
	reader_unsafe(st, LL_WHY_SPLICE, LL_CNT_LEAVE_SPLICE);
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
