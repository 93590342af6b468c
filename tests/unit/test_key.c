// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for the key and admission helpers in bpf/loopless.h: the BPF
 * datapath runs exactly this code, so a wrong byte order here is a missed
 * redirect there, and a wrong decision a socket paired with the wrong peer.
 * Addresses come from inet_pton() so that their bytes are in real network
 * order, as the kernel hands them to the programs.
 */
#include <linux/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "loopless.h"

static __u32 ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void ip6(const char *s, __u32 w[4])
{
	struct in6_addr a;

	assert_int_equal(inet_pton(AF_INET6, s, &a), 1);
	memcpy(w, &a, 16);
}

/* The address as a socket of @family sees it, through ll_addr_set(). */
static __u32 set_addr(__u32 dst[4], int family, const char *s)
{
	__u32 w[4] = { 0 };

	if (family == AF_INET)
		/* The ip6 fields of an AF_INET socket hold garbage for us. */
		return ll_addr_set(dst, LL_AF_INET, ip4(s), 0xdeadbeef, 1, 2, 3);
	ip6(s, w);
	return ll_addr_set(dst, LL_AF_INET6, 0xdeadbeef, w[0], w[1], w[2], w[3]);
}

static void test_family_constants(void **state)
{
	(void)state;
	assert_int_equal(LL_AF_INET, AF_INET);
	assert_int_equal(LL_AF_INET6, AF_INET6);
}

static void test_addr_set_v4(void **state)
{
	const __u8 want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 };
	__u32 a[4];

	(void)state;
	assert_int_equal(set_addr(a, AF_INET, "192.0.2.1"), LL_AF_INET);
	assert_memory_equal(a, want, 16);
}

static void test_addr_set_v6(void **state)
{
	const __u8 want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34 };
	__u32 a[4];

	(void)state;
	assert_int_equal(set_addr(a, AF_INET6, "2001:db8::1234"), LL_AF_INET6);
	assert_memory_equal(a, want, 16);
	/* Near misses of the v4-mapped prefix stay IPv6. */
	assert_int_equal(set_addr(a, AF_INET6, "::fffe:192.0.2.1"), LL_AF_INET6);
	assert_int_equal(set_addr(a, AF_INET6, "1::ffff:192.0.2.1"), LL_AF_INET6);
	assert_int_equal(set_addr(a, AF_INET6, "::192.0.2.1"), LL_AF_INET6);
}

/* A v4 client of a dual-stack server: the server's socket is AF_INET6 with
 * v4-mapped addresses, the client's AF_INET. Both must build the same key. */
static void test_addr_set_v4mapped(void **state)
{
	__u32 mapped[4], plain[4];

	(void)state;
	assert_int_equal(set_addr(mapped, AF_INET6, "::ffff:198.51.100.7"), LL_AF_INET);
	assert_int_equal(set_addr(plain, AF_INET, "198.51.100.7"), LL_AF_INET);
	assert_memory_equal(mapped, plain, 16);
}

static void test_remote_port(void **state)
{
	__u32 nport = htons(8080);

	(void)state;
	/* Network order in the low 16 bits (sk_msg_md, newer sock_ops). */
	assert_int_equal(ll_remote_port(nport), 8080);
	/* The same shifted into the upper 16 bits (older kernels' ctx rewrite). */
	assert_int_equal(ll_remote_port(nport << 16), 8080);
	assert_int_equal(ll_remote_port(htons(1)), 1);
	assert_int_equal(ll_remote_port((__u32)htons(1) << 16), 1);
	assert_int_equal(ll_remote_port(htons(256)), 256);
	assert_int_equal(ll_remote_port((__u32)htons(256) << 16), 256);
	assert_int_equal(ll_remote_port(htons(65535)), 65535);
	assert_int_equal(ll_remote_port((__u32)htons(65535) << 16), 65535);
}

static void test_local_port(void **state)
{
	(void)state;
	/* Host order already. */
	assert_int_equal(ll_local_port(8080), 8080);
	assert_int_equal(ll_local_port(1), 1);
	assert_int_equal(ll_local_port(65535), 65535);
}

static void test_key_mirror(void **state)
{
	struct ll_key k, peer, back;

	(void)state;
	memset(&peer, 0xaa, sizeof(peer));
	memset(&back, 0x55, sizeof(back));
	ll_key_set(&k, 0x1122334455667788ULL, 196120063, 1462876676);
	assert_true(k.netns == 0x1122334455667788ULL);
	assert_int_equal(k.lseq, 196120063);
	assert_int_equal(k.rseq, 1462876676);

	ll_key_mirror(&peer, &k);
	assert_true(peer.netns == k.netns);
	assert_int_equal(peer.lseq, 1462876676);
	assert_int_equal(peer.rseq, 196120063);

	ll_key_mirror(&back, &peer);
	assert_memory_equal(&back, &k, sizeof(k));
	/* No padding that a lookup would hash: 8 + 4 + 4 bytes. */
	assert_int_equal(sizeof(struct ll_key), 16);
}

/*
 * The two ends of one connection as sockops sees them at establishment,
 * whatever NAT did to their addresses (DESIGN.md, measured across REDIRECT,
 * DNAT and network namespaces): the app's PodIP:E -> VIP:80 has (snd_una,
 * rcv_nxt) = (196120063, 1462876676), the sidecar's 127.0.0.1:15001 <-
 * PodIP:E has (1462876676, 196120063). Each one's mirror is the other's key:
 * the lookups the server end and sk_msg make. Wrap-around values too.
 */
static void test_key_pair(void **state)
{
	static const struct {
		__u32 client_isn, server_isn;
	} cases[] = {
		{ 196120062, 1462876675 },  { 0, 0 },	       { 0xffffffff, 0 },
		{ 0xfffffffe, 0xffffffff }, { 1, 0x80000000 },
	};
	struct ll_key client, server, mirror;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u32 c = cases[i].client_isn + 1, sv = cases[i].server_isn + 1;

		ll_key_set(&client, 42, c, sv); /* snd_una, rcv_nxt */
		ll_key_set(&server, 42, sv, c);
		ll_key_mirror(&mirror, &client);
		assert_memory_equal(&mirror, &server, sizeof(server));
		ll_key_mirror(&mirror, &server);
		assert_memory_equal(&mirror, &client, sizeof(client));
		/* The same sequence numbers in another netns are another pair. */
		ll_key_set(&server, 43, sv, c);
		ll_key_mirror(&mirror, &client);
		assert_memory_not_equal(&mirror, &server, sizeof(server));
	}
}

/* Who enters the map at establishment: every input that matters. */
static void test_admit(void **state)
{
	static const struct {
		bool active;
		int nonblock;
		__u32 rx_ifindex, mss;
		bool client_found;
		__u64 client_peer_cookie;
		enum ll_admit want;
		const char *why;
	} cases[] = {
		{ true, 1, 0, 65483, false, 0, LL_ADMIT_PROVISIONAL,
		  "client: SYN-ACK from the backlog" },
		{ true, 1, 1, 65483, true, 7, LL_ADMIT_PROVISIONAL, "client: SYN-ACK over lo" },
		{ true, 1, 0, 65464, false, 0, LL_ADMIT_PROVISIONAL, "client: IPv6 lo MSS" },
		{ true, 1, 5, 65483, false, 0, LL_SKIP_REMOTE,
		  "client: SYN-ACK over another device" },
		{ true, 1, 0, 1460, false, 0, LL_SKIP_REMOTE, "client: MSS of a 1500-byte MTU" },
		{ true, 1, 0, 8960, false, 0, LL_SKIP_REMOTE, "client: MSS of jumbo frames" },
		{ true, 1, 0, LL_LO_MSS_MIN, false, 0, LL_ADMIT_PROVISIONAL,
		  "client: at the bound" },
		{ true, 0, 0, 65483, false, 0, LL_SKIP_BLOCKING, "client on a blocking socket" },
		{ true, 0, 0, 1460, false, 0, LL_SKIP_REMOTE, "remote wins over blocking" },
		{ true, -1, 0, 65483, false, 0, LL_ADMIT_PROVISIONAL, "client without a file" },
		{ false, 1, 1, 65483, true, 0, LL_ADMIT_PAIR, "server on lo, client unclaimed" },
		{ false, -1, 1, 65483, true, 0, LL_ADMIT_PAIR,
		  "listener not seen: judged at recvmsg" },
		{ false, 0, 1, 65483, true, 0, LL_SKIP_BLOCKING, "server of a blocking listener" },
		{ false, 1, 1, 536, true, 0, LL_ADMIT_PAIR,
		  "server: the MSS is the client's, unused" },
		{ false, 1, 2, 65483, true, 0, LL_SKIP_REMOTE, "server, final ACK over a veth" },
		{ false, 1, 0, 65483, true, 0, LL_SKIP_REMOTE, "server, device unknown" },
		{ false, 1, 1, 65483, false, 0, LL_SKIP_NO_PEER,
		  "server on lo, client not in the map" },
		{ false, 1, 1, 65483, true, 99, LL_SKIP_COLLISION, "server on lo, client claimed" },
		{ false, 1, 7, 1460, false, 0, LL_SKIP_REMOTE, "remote wins over no peer" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_admit(cases[i].active, cases[i].nonblock, cases[i].rx_ifindex, cases[i].mss,
			     cases[i].client_found, cases[i].client_peer_cookie) != cases[i].want)
			fail_msg("%s: expected %d", cases[i].why, cases[i].want);
}

/* Across namespaces: own address owned by own namespace, and for a server
 * end the client's address owned by the client's namespace, another one. */
static void test_admit_cross(void **state)
{
	enum { A = 0x10, B = 0x20, H = 0x30 };
	static const struct {
		bool active;
		int nonblock;
		bool local_owned;
		__u64 own, remote_owner;
		bool client_found;
		__u64 client_netns, client_peer_cookie;
		enum ll_admit want;
		const char *why;
	} cases[] = {
		{ true, 1, true, A, 0, false, 0, 0, LL_ADMIT_PROVISIONAL,
		  "client: to a service address nobody owns" },
		{ true, 1, true, A, B, false, 0, 0, LL_ADMIT_PROVISIONAL, "client: to pod B" },
		{ true, 1, false, A, B, false, 0, 0, LL_SKIP_NOT_OWNER,
		  "client from an address its namespace does not own" },
		{ true, 0, true, A, B, false, 0, 0, LL_SKIP_BLOCKING,
		  "client on a blocking socket" },
		{ false, 1, true, B, A, true, A, 0, LL_ADMIT_PAIR,
		  "server: client's address is A's" },
		{ false, -1, true, B, A, true, A, 0, LL_ADMIT_PAIR, "server, listener not seen" },
		{ false, 1, false, B, A, true, A, 0, LL_SKIP_NOT_OWNER,
		  "server on an address two namespaces have (or another's)" },
		{ false, 1, true, B, A, true, H, 0, LL_SKIP_NOT_OWNER,
		  "server: the client end is in a namespace that does not own its address" },
		{ false, 1, true, B, 0, true, A, 0, LL_SKIP_NOT_OWNER,
		  "server: the client's address has no owner" },
		{ false, 1, true, B, B, true, B, 0, LL_SKIP_NOT_OWNER,
		  "server: a client in its own namespace is lo's business" },
		{ false, 1, true, B, A, false, 0, 0, LL_SKIP_NO_PEER, "server: no client end" },
		{ false, 1, true, B, A, true, A, 77, LL_SKIP_COLLISION, "server: client claimed" },
		{ false, 0, true, B, A, true, A, 0, LL_SKIP_BLOCKING,
		  "server of a blocking listener" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_admit_cross(cases[i].active, cases[i].nonblock, cases[i].local_owned,
				   cases[i].own, cases[i].remote_owner, cases[i].client_found,
				   cases[i].client_netns,
				   cases[i].client_peer_cookie) != cases[i].want)
			fail_msg("%s: expected %d", cases[i].why, cases[i].want);
}

/* What a recvmsg says about its reader, with the kernel's flag values. */
static void test_read_kind(void **state)
{
	(void)state;
	assert_int_equal(LL_MSG_DONTWAIT, MSG_DONTWAIT);
	assert_int_equal(LL_MSG_WAITALL, MSG_WAITALL);
	assert_int_equal(LL_MSG_PEEK, MSG_PEEK);
	assert_int_equal(LL_O_NONBLOCK, O_NONBLOCK);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, 1, false), LL_READ_SAFE);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT | MSG_WAITALL, 100, false), LL_READ_SAFE);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT | MSG_NOSIGNAL, 65536, false), LL_READ_SAFE);
	/* Non-blocking, but no byte taken: not yet. */
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, -EAGAIN, false), LL_READ_UNDECIDED);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, 0, false), LL_READ_UNDECIDED); /* EOF */
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, -ECONNRESET, false), LL_READ_UNDECIDED);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT | MSG_PEEK, 100, false), LL_READ_UNDECIDED);
	/* Blocking, whatever it returned. */
	assert_int_equal(ll_read_kind(0, 100, false), LL_READ_BLOCKING);
	assert_int_equal(ll_read_kind(0, -EAGAIN, false), LL_READ_BLOCKING);
	assert_int_equal(ll_read_kind(MSG_PEEK, 100, false), LL_READ_BLOCKING);
	assert_int_equal(ll_read_kind(MSG_WAITALL, 100, false), LL_READ_WAITALL);
	assert_int_equal(ll_read_kind(MSG_WAITALL | MSG_NOSIGNAL, 0, false), LL_READ_WAITALL);
	/* A splicing process: its non-blocking reads are not enough. */
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, 100, true), LL_READ_SPLICER);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT, -EAGAIN, true), LL_READ_SPLICER);
	assert_int_equal(ll_read_kind(MSG_DONTWAIT | MSG_PEEK, 100, true), LL_READ_SPLICER);
	/* Blocking first: the stricter reason (it would get EAGAIN). */
	assert_int_equal(ll_read_kind(0, 100, true), LL_READ_BLOCKING);
	assert_int_equal(ll_read_kind(MSG_WAITALL, 100, true), LL_READ_WAITALL);
}

/* A stranded reader's sender: redirected up to the limit, refused beyond. */
static void test_stranded_redirect(void **state)
{
	(void)state;
	assert_true(ll_stranded_redirect(0, 1 << 20));
	assert_true(ll_stranded_redirect(1 << 20, 1 << 20));
	assert_false(ll_stranded_redirect((1 << 20) + 1, 1 << 20));
	assert_false(ll_stranded_redirect(UINT32_MAX, 1 << 20));
}

/* Sent over TCP in the map: a reader seen only polling or peeking. */
static void test_reader_probing(void **state)
{
	(void)state;
	assert_true(ll_reader_probing(LL_READER_NB));
	assert_false(ll_reader_probing(0)); /* never seen: may block, leaves */
	assert_false(ll_reader_probing(LL_READER_NB | LL_READER_SAFE)); /* redirected */
	assert_false(ll_reader_probing(LL_READER_NB | LL_READER_UNSAFE));
	assert_false(ll_reader_probing(LL_READER_NB | LL_READER_LEAVING));
	assert_false(ll_reader_probing(LL_READER_SAFE));
	assert_false(ll_reader_redirectable(LL_READER_NB)); /* nothing redirected to it */
	assert_true(ll_reader_redirectable(LL_READER_NB | LL_READER_SAFE));
}

/* The system calls that read a socket with tcp_read_sock(), by this
 * machine's numbers. */
static void test_splice_syscall(void **state)
{
	(void)state;
	assert_true(ll_splice_syscall(SYS_splice));
	assert_true(ll_splice_syscall(SYS_sendfile));
	assert_false(ll_splice_syscall(SYS_read));
	assert_false(ll_splice_syscall(SYS_recvfrom));
	assert_false(ll_splice_syscall(SYS_recvmsg));
	assert_false(ll_splice_syscall(SYS_readv));
	assert_false(ll_splice_syscall(SYS_io_uring_enter));
	assert_false(ll_splice_syscall(-1));
}

/* A reader that blocked or spliced never comes back; the others may. */
static void test_why_final(void **state)
{
	(void)state;
	assert_true(ll_why_final(LL_WHY_BLOCKING));
	assert_true(ll_why_final(LL_WHY_SPLICE));
	assert_false(ll_why_final(LL_WHY_NONE));
	assert_false(ll_why_final(LL_WHY_UNKNOWN));
	assert_false(ll_why_final(LL_WHY_LAG));
	assert_false(ll_why_final(LL_WHY_SMALL));
	assert_false(ll_why_final(LL_WHY_RCVLOWAT));
}

/* Redirected into only a reader seen safe, never unsafe, not leaving. */
static void test_reader_redirectable(void **state)
{
	(void)state;
	assert_false(ll_reader_redirectable(0)); /* not seen yet: maybe a splicer */
	assert_true(ll_reader_redirectable(LL_READER_SAFE));
	assert_false(ll_reader_redirectable(LL_READER_UNSAFE));
	assert_false(ll_reader_redirectable(LL_READER_SAFE | LL_READER_UNSAFE));
	assert_false(ll_reader_redirectable(LL_READER_SAFE | LL_READER_LEAVING));
	assert_false(ll_reader_redirectable(LL_READER_LEAVING));
}

/* Which writes take TCP as a small-write stream. */
static void test_small_stream(void **state)
{
	static const __u32 sw = LL_DEFAULT_SMALL_WRITE, lag = LL_DEFAULT_SMALL_LAG;
	static const struct {
		__u32 size, queued, run, burst;
		bool want;
	} cases[] = {
		{ 64, lag + 1, LL_SMALL_RUN, 0, true }, /* 64 B writes, the reader lags */
		{ 64, lag, LL_SMALL_RUN, 0, false }, /* ... by no more than small_lag */
		{ sw, lag + 1, LL_SMALL_RUN, 0, true },
		{ sw + 1, 1U << 30, LL_SMALL_RUN, LL_SMALL_BURST, false }, /* not small */
		/* A relay's 376-byte tail after 64 KiB writes, 128 KiB unread. */
		{ 376, 128U << 10, 1, 0, false },
		{ 376, 128U << 10, LL_SMALL_RUN - 1, 0, false },
		{ 64, 1, LL_SMALL_BURST, LL_SMALL_BURST, true }, /* back to back */
		{ 64, 0, LL_SMALL_BURST, LL_SMALL_BURST, false }, /* ... all read */
		{ 64, 1, LL_SMALL_BURST, LL_SMALL_BURST - 1, false },
		{ 64, 0, 0, 0, false }, /* a request */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_small_stream(cases[i].size, sw, cases[i].queued, lag, cases[i].run,
				    cases[i].burst) != cases[i].want)
			fail_msg("case %zu: size %u queued %u run %u burst %u: want %d", i,
				 cases[i].size, cases[i].queued, cases[i].run, cases[i].burst,
				 cases[i].want);
}

/* A leaving socket goes when drained and no redirect into it can be in
 * flight: no call of its peer's in progress (0 users: idle in the map, or
 * no psock), or the grace period over. */
static void test_leave_ready(void **state)
{
	static const struct {
		__u32 queued, peer_users;
		__u64 since_ns;
		bool want;
	} cases[] = {
		{ 0, 0, 0, true },
		{ 1, 0, LL_LEAVE_GRACE_NS * 10, false }, /* never with bytes unread */
		{ 0, 1, 0, false }, /* the peer is inside a sendmsg (or a recvmsg) */
		{ 0, 1, LL_LEAVE_GRACE_NS - 1, false },
		{ 0, 1, LL_LEAVE_GRACE_NS, true },
		{ 4096, 0, 0, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_leave_ready(cases[i].queued, cases[i].peer_users, cases[i].since_ns) !=
		    cases[i].want)
			fail_msg("case %zu: expected %d", i, cases[i].want);
}

/* A psock's references beyond its map link are calls in progress; out of
 * the map, every reference is one (mesh_safety's lost 64 KiB: a sender that
 * left inside its own sendmsg had one reference, which read as its link). */
static void test_psock_users(void **state)
{
	(void)state;
	assert_int_equal(ll_psock_users(1, true), 0); /* in the map, idle */
	assert_int_equal(ll_psock_users(2, true), 1); /* ... inside a sendmsg */
	assert_int_equal(ll_psock_users(3, true), 2); /* ... and a recvmsg */
	assert_int_equal(ll_psock_users(1, false), 1); /* out, its sendmsg still running */
	assert_int_equal(ll_psock_users(0, false), 0);
	assert_int_equal(ll_psock_users(0, true), 0);
}

/* A provisional client end stays only if claimed; a sender uses a record
 * as its peer only if that record names the sender. */
static void test_pairing_is_mutual(void **state)
{
	(void)state;
	assert_false(ll_provisional_stays(0));
	assert_true(ll_provisional_stays(12345));
	assert_true(ll_peer_mutual(12345, 12345));
	assert_false(ll_peer_mutual(12345, 12346)); /* claimed by another socket */
	assert_false(ll_peer_mutual(0, 12345)); /* not claimed yet */
	assert_false(ll_peer_mutual(0, 0)); /* a socket without a cookie */
}

/* A redirected byte may follow TCP bytes only once all of them were sent,
 * received and read; sequence numbers wrap. */
static void test_drained(void **state)
{
	static const struct {
		struct ll_seqs from, to;
		bool want;
	} cases[] = {
		{ { 100, 100, 0, 0 }, { 0, 0, 100, 100 }, true },
		{ { 101, 100, 0, 0 }, { 0, 0, 100, 100 }, false }, /* a byte not sent yet */
		{ { 100, 100, 0, 0 }, { 0, 0, 99, 99 }, false }, /* in flight on lo */
		{ { 100, 100, 0, 0 }, { 0, 0, 100, 90 }, false }, /* received, not read */
		{ { 5, 5, 0, 0 }, { 0, 0, 5, 5 }, true }, /* after the wrap */
		{ { 0xfffffff0, 0xfffffff0, 0, 0 }, { 0, 0, 0xfffffff0, 0xffffffe0 }, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_drained(&cases[i].from, &cases[i].to) != cases[i].want)
			fail_msg("case %zu: expected %d", i, cases[i].want);
}

/* Re-entry: never for a reader that read blocking, not before both were seen
 * reading non-blocking, with SO_RCVLOWAT or TCP bytes in its own receive
 * queue; a first-bytes leave needs nothing more; any other a quiet
 * connection and the backoff since the last move. */
static void test_reenter(void **state)
{
	enum { S = LL_READER_SAFE, U = LL_READER_UNSAFE, L = LL_READER_LEAVING };
	const __u64 ms = 1000 * 1000, min = 10 * ms;
	static const struct {
		__u32 own, peer, why;
		bool rx_drained, quiet, streaming, writer_idle, duplex, active, paused, lowat;
		__u64 since_ms;
		__u32 cycles;
		enum ll_reenter want;
	} cases[] = {
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false, 10,
		  0, LL_REENTER_NOW },
		{ S, S, LL_WHY_SMALL, true, true, false, true, false, false, false, false, 10, 0,
		  LL_REENTER_NOW },
		{ S | L, L, LL_WHY_LAG, true, true, false, true, false, false, false, false, 10, 0,
		  LL_REENTER_LATER }, /* peer unseen */
		{ L, S | L, LL_WHY_UNKNOWN, true, true, false, true, false, false, false, false, 10,
		  0, LL_REENTER_LATER },
		{ S | U | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false,
		  10, 0, LL_REENTER_NEVER },
		{ S | L, U | L, LL_WHY_LAG, true, true, false, true, false, false, false, false,
		  999, 0, LL_REENTER_NEVER },
		{ S | L, S | L, LL_WHY_BLOCKING, true, true, false, true, false, false, false,
		  false, 999, 0, LL_REENTER_NEVER },
		{ S | L, S | L, LL_WHY_SPLICE, true, true, false, true, false, false, false, false,
		  999, 0, LL_REENTER_NEVER },
		{ S | L, S | L, LL_WHY_LAG, true, false, false, true, false, false, false, false,
		  10, 0, LL_REENTER_LATER }, /* moving */
		{ S | L, S | L, LL_WHY_LAG, false, true, false, true, false, false, false, false,
		  10, 0, LL_REENTER_LATER }, /* unread */
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, true, 10,
		  0, LL_REENTER_LATER }, /* RCVLOWAT */
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false, 9,
		  0, LL_REENTER_LATER }, /* too soon */
		{ S | L, S | L, LL_WHY_RCVLOWAT, true, true, false, true, false, false, false,
		  false, 39, 2, LL_REENTER_LATER }, /* 40 ms */
		{ S | L, S | L, LL_WHY_RCVLOWAT, true, true, false, true, false, false, false,
		  false, 40, 2, LL_REENTER_NOW },
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false,
		  1279, 50, LL_REENTER_LATER }, /* 1.28 s */
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false,
		  1280, 50, LL_REENTER_NOW },
		/* A lagging reader once it caught up. */
		{ S | L, S | L, LL_WHY_LAG, true, true, false, true, false, false, false, false, 10,
		  0, LL_REENTER_NOW },
		/* A stream's reader after any leave: only after its writer. */
		{ S | L, S | L, LL_WHY_LAG, true, true, true, false, false, false, false, false, 10,
		  0, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_LAG, true, true, true, true, false, false, false, false, 10,
		  0, LL_REENTER_NOW },
		/* Small writes and SO_RCVLOWAT the same, once quiet; small writes
		 * after a second leave only once both writers paused. */
		{ S | L, S | L, LL_WHY_SMALL, true, true, false, true, false, false, false, false,
		  40, 2, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_SMALL, true, true, false, true, false, false, true, false,
		  40, 2, LL_REENTER_NOW },
		{ S | L, S | L, LL_WHY_SMALL, true, true, false, true, false, false, false, false,
		  10, 0, LL_REENTER_NOW },
		{ S | L, S | L, LL_WHY_RCVLOWAT, true, true, false, true, false, false, false,
		  false, 10, 0, LL_REENTER_NOW },
		/* Left at its first bytes: back at once, busy or not ... */
		{ S | L, S | L, LL_WHY_UNKNOWN, true, false, false, true, false, false, false,
		  false, 0, 0, LL_REENTER_NOW },
		/* ... but a stream's reader only after its writer, quiet ... */
		{ S | L, S | L, LL_WHY_UNKNOWN, true, false, true, true, false, false, false, false,
		  0, 0, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, true, false, false, false, false, false,
		  0, 0, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, true, true, false, false, false, false,
		  0, 0, LL_REENTER_NOW },
		/* ... or, in a duplex stream, as the client end, quiet. */
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, true, false, true, true, false, false,
		  0, 0, LL_REENTER_NOW },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, true, false, true, false, false, false,
		  0, 0, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, false, true, false, true, true, false, false,
		  0, 0, LL_REENTER_LATER },
		/* ... but not with TCP bytes in its own receive queue ... */
		{ S | L, S | L, LL_WHY_UNKNOWN, false, true, false, true, false, false, false,
		  false, 0, 0, LL_REENTER_LATER },
		/* ... nor with SO_RCVLOWAT; a second cycle waits as any other. */
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, false, true, false, false, false, true,
		  0, 0, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, false, true, false, false, false, false,
		  5, 1, LL_REENTER_LATER },
		{ S | L, S | L, LL_WHY_UNKNOWN, true, true, false, true, false, false, false, false,
		  20, 1, LL_REENTER_NOW },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ll_reenter_verdict(cases[i].own, cases[i].peer, cases[i].why,
				       cases[i].rx_drained, cases[i].quiet, cases[i].streaming,
				       cases[i].writer_idle, cases[i].duplex, cases[i].active,
				       cases[i].paused, cases[i].lowat, cases[i].since_ms * ms, min,
				       cases[i].cycles) != cases[i].want)
			fail_msg("case %zu: expected %d", i, cases[i].want);
	/* A stay of a second or more, or twice the time out before, forgets
	 * the cycles. */
	assert_int_equal(ll_cycles_after_stay(5, LL_STAY_RESET_NS - 1, LL_STAY_RESET_NS), 5);
	assert_int_equal(ll_cycles_after_stay(5, LL_STAY_RESET_NS, LL_STAY_RESET_NS), 0);
	assert_int_equal(ll_cycles_after_stay(5, 19 * ms, 10 * ms), 5); /* left again soon */
	assert_int_equal(ll_cycles_after_stay(5, 20 * ms, 10 * ms), 0); /* paid off */
	assert_int_equal(ll_reenter_wait(min, 0), min);
	assert_int_equal(ll_reenter_wait(min, 3), 8 * min);
}

/* Bytes consumed beyond what recvmsg reported: a splicer. */
static void test_read_by_recv(void **state)
{
	(void)state;
	assert_true(ll_read_by_recv(1000, 1000, 0)); /* nothing read */
	assert_true(ll_read_by_recv(1500, 1000, 500)); /* all by recvmsg */
	assert_false(ll_read_by_recv(1500, 1000, 100)); /* 400 spliced */
	assert_true(ll_read_by_recv(1500, 1000, 900)); /* redirected bytes counted too */
	assert_true(ll_read_by_recv(10, 0xfffffff0, 26)); /* across the wrap */
	assert_false(ll_read_by_recv(10, 0xfffffff0, 25));
}

/* Both ends silent for the given time; a departure time still ahead
 * (pacing) is not silence. */
static void test_paused(void **state)
{
	(void)state;
	assert_true(ll_paused(1010, 1000, 1000, 10));
	assert_false(ll_paused(1010, 1001, 1000, 10)); /* this end sent 9 ago */
	assert_false(ll_paused(1010, 1000, 1005, 10)); /* the peer sent */
	assert_false(ll_paused(1010, 1020, 900, 10)); /* paced: leaves later */
	assert_true(ll_paused(1010, 0, 0, 10)); /* never sent */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_constants),
		cmocka_unit_test(test_addr_set_v4),
		cmocka_unit_test(test_addr_set_v6),
		cmocka_unit_test(test_addr_set_v4mapped),
		cmocka_unit_test(test_remote_port),
		cmocka_unit_test(test_local_port),
		cmocka_unit_test(test_key_mirror),
		cmocka_unit_test(test_key_pair),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_admit_cross),
		cmocka_unit_test(test_pairing_is_mutual),
		cmocka_unit_test(test_read_kind),
		cmocka_unit_test(test_splice_syscall),
		cmocka_unit_test(test_reader_probing),
		cmocka_unit_test(test_stranded_redirect),
		cmocka_unit_test(test_why_final),
		cmocka_unit_test(test_reader_redirectable),
		cmocka_unit_test(test_leave_ready),
		cmocka_unit_test(test_psock_users),
		cmocka_unit_test(test_small_stream),
		cmocka_unit_test(test_drained),
		cmocka_unit_test(test_reenter),
		cmocka_unit_test(test_read_by_recv),
		cmocka_unit_test(test_paused),
	};

	const char *only = getenv("LOOPLESS_TEST_FILTER"); /* tests/run.sh BIN:GLOB */

	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
