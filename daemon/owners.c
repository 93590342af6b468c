// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Address ownership for pairs across network namespaces. A pod's socket
 * may enter the map only with an address its own namespace has on an
 * interface, and pair only with a peer whose address the peer's namespace
 * has: so a namespace that adds another pod's address to its own device
 * (to race for its pairs) owns nothing, and the victim's address, now in
 * two namespaces, is owned by neither until one lets go: the victims stay
 * on TCP, correct. Read by walking every namespace (netns_for_each_host())
 * with getifaddrs(), which answers for the namespace the thread is in.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include "loopless.h"
#include "netns.h"
#include "owners.h"

struct owner {
	struct ll_owner_key key;
	__u64 netns; /* 0: two namespaces have it */
};

struct collect {
	struct owner *v;
	size_t n, cap;
};

static int add(struct collect *c, const struct sockaddr *sa, __u64 netns)
{
	struct owner *o;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct owner *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	o = &c->v[c->n];
	memset(o, 0, sizeof(*o));
	if (sa->sa_family == AF_INET)
		ll_addr_set(o->key.addr, LL_AF_INET,
			    ((const struct sockaddr_in *)sa)->sin_addr.s_addr, 0, 0, 0, 0);
	else
		memcpy(o->key.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	o->netns = netns;
	c->n++;
	return 0;
}

static int collect_here(void *ctx)
{
	struct collect *c = ctx;
	struct ifaddrs *ifa, *i;
	__u64 netns = netns_cookie();
	int err = 0;

	if (!netns)
		return 0; /* a namespace we cannot name owns nothing */
	if (getifaddrs(&ifa))
		return errno == EPERM || errno == EACCES ? 0 : -errno;
	for (i = ifa; i && !err; i = i->ifa_next)
		if (i->ifa_addr &&
		    (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
			err = add(c, i->ifa_addr, netns);
	freeifaddrs(ifa);
	return err;
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(&((const struct owner *)a)->key, &((const struct owner *)b)->key,
		      sizeof(struct ll_owner_key));
}

/* Sorted by address, one entry per address: netns 0 where two differ. */
static void merge(struct collect *c)
{
	size_t i, j = 0;

	qsort(c->v, c->n, sizeof(*c->v), cmp_key);
	for (i = 0; i < c->n; i++) {
		if (j && !cmp_key(&c->v[j - 1], &c->v[i])) {
			if (c->v[j - 1].netns != c->v[i].netns)
				c->v[j - 1].netns = 0;
			continue;
		}
		c->v[j++] = c->v[i];
	}
	c->n = j;
}

static const struct owner *find(const struct collect *c, const struct ll_owner_key *k)
{
	struct owner o = { .key = *k };

	return bsearch(&o, c->v, c->n, sizeof(*c->v), cmp_key);
}

int owners_sync(int map_fd, unsigned int *n)
{
	struct ll_owner_key k, next, *prev = NULL;
	struct collect c = {};
	unsigned int owned = 0;
	const struct owner *o;
	size_t i;
	int err;

	err = netns_for_each_host(collect_here, &c);
	if (err)
		goto out;
	merge(&c);
	/* Gone or now shared: out first, so no stale owner outlives a pass. */
	while (!bpf_map_get_next_key(map_fd, prev, &next)) {
		k = next;
		o = find(&c, &k);
		if ((!o || !o->netns) && bpf_map_delete_elem(map_fd, &k) && errno != ENOENT) {
			err = -errno;
			goto out;
		}
		prev = &k;
	}
	for (i = 0; i < c.n; i++) {
		if (!c.v[i].netns)
			continue;
		if (bpf_map_update_elem(map_fd, &c.v[i].key, &c.v[i].netns, BPF_ANY)) {
			err = -errno;
			goto out;
		}
		owned++;
	}
	if (n)
		*n = owned;
out:
	free(c.v);
	return err;
}

int owners_clear(int map_fd)
{
	struct ll_owner_key k;

	while (!bpf_map_get_next_key(map_fd, NULL, &k))
		if (bpf_map_delete_elem(map_fd, &k) && errno != ENOENT)
			return -errno;
	return 0;
}
