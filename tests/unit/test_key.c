// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for the key helpers in bpf/loopless.h: the BPF datapath runs
 * exactly this code, so a wrong byte order here is a missed redirect there.
 * Addresses come from inet_pton() so that their bytes are in real network
 * order, as the kernel hands them to the programs.
 */
#include <linux/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
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
	assert_true(ll_addr_eq(mapped, plain));
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

static void test_loopback(void **state)
{
	static const struct {
		int family;
		const char *addr;
		bool loopback;
	} cases[] = {
		{ AF_INET, "127.0.0.1", true },
		{ AF_INET, "127.255.1.2", true },
		{ AF_INET, "128.0.0.1", false },
		{ AF_INET, "10.0.0.1", false },
		{ AF_INET, "1.0.0.127", false },
		{ AF_INET6, "::1", true },
		{ AF_INET6, "::2", false },
		{ AF_INET6, "::", false },
		{ AF_INET6, "::ffff:127.0.0.1", true },
		{ AF_INET6, "::ffff:10.0.0.1", false },
		{ AF_INET6, "fe80::1", false },
		{ AF_INET6, "1::1", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u32 a[4], family;

		family = set_addr(a, cases[i].family, cases[i].addr);
		if (ll_addr_is_loopback(a, family) != cases[i].loopback)
			fail_msg("%s: expected loopback=%d", cases[i].addr, cases[i].loopback);
	}
}

static void test_key_mirror(void **state)
{
	struct ll_key k, peer, back;

	(void)state;
	memset(&k, 0, sizeof(k));
	memset(&peer, 0xaa, sizeof(peer));
	memset(&back, 0x55, sizeof(back));
	k.netns = 0x1122334455667788ULL;
	k.family = set_addr(k.laddr, AF_INET, "10.0.0.1");
	set_addr(k.raddr, AF_INET, "10.0.0.2");
	k.lport = 40000;
	k.rport = 8080;

	ll_key_mirror(&peer, &k);
	assert_true(peer.netns == k.netns);
	assert_int_equal(peer.family, LL_AF_INET);
	assert_memory_equal(peer.laddr, k.raddr, 16);
	assert_memory_equal(peer.raddr, k.laddr, 16);
	assert_int_equal(peer.lport, 8080);
	assert_int_equal(peer.rport, 40000);

	ll_key_mirror(&back, &peer);
	assert_memory_equal(&back, &k, sizeof(k));
}

/* The server's accepted socket and the client, built from their own
 * views, are each other's mirror: that is the lookup sk_msg does. */
static void test_key_pair(void **state)
{
	struct ll_key client = { 0 }, server = { 0 }, mirror = { 0 };

	(void)state;
	client.family = set_addr(client.laddr, AF_INET, "127.0.0.1");
	set_addr(client.raddr, AF_INET, "127.0.0.1");
	client.lport = ll_local_port(40000);
	client.rport = ll_remote_port(htons(8080));
	/* Dual-stack server: AF_INET6 socket, v4-mapped addresses. */
	server.family = set_addr(server.laddr, AF_INET6, "::ffff:127.0.0.1");
	set_addr(server.raddr, AF_INET6, "::ffff:127.0.0.1");
	server.lport = ll_local_port(8080);
	server.rport = ll_remote_port((__u32)htons(40000) << 16);

	ll_key_mirror(&mirror, &client);
	assert_memory_equal(&mirror, &server, sizeof(server));
}

static void test_addr_eq(void **state)
{
	__u32 a[4], b[4];
	int i;

	(void)state;
	set_addr(a, AF_INET6, "2001:db8::1:2:3:4");
	set_addr(b, AF_INET6, "2001:db8:0:0:1:2:3:4");
	assert_true(ll_addr_eq(a, b));
	for (i = 0; i < 4; i++) {
		b[i] ^= 1;
		assert_false(ll_addr_eq(a, b));
		b[i] ^= 1;
	}
	assert_true(ll_addr_eq(a, b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_constants), cmocka_unit_test(test_addr_set_v4),
		cmocka_unit_test(test_addr_set_v6),	 cmocka_unit_test(test_addr_set_v4mapped),
		cmocka_unit_test(test_remote_port),	 cmocka_unit_test(test_local_port),
		cmocka_unit_test(test_loopback),	 cmocka_unit_test(test_key_mirror),
		cmocka_unit_test(test_key_pair),	 cmocka_unit_test(test_addr_eq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
