// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "stats.h"

/*
 * Keys are the stable interface of `loopless stats --json`; metric names
 * follow the Prometheus conventions (a loopless_ prefix, the unit, _total
 * on counters). Entries of one metric family must differ in their label.
 * A new counter in enum ll_counter needs its line here: test_counters
 * fails on a missing one.
 */
const struct stat_def stat_defs[STAT_NR] = {
	[LL_CNT_REDIRECTED_MSGS] = { "redirected_msgs", "loopless_redirected_messages_total", NULL,
				     STAT_COUNTER,
				     "Messages (one per send) moved straight into the peer "
				     "socket's receive queue." },
	[LL_CNT_REDIRECTED_BYTES] = { "redirected_bytes", "loopless_redirected_bytes_total", NULL,
				      STAT_COUNTER,
				      "Bytes moved straight into the peer socket's receive queue." },
	[LL_CNT_PASSED_MSGS] = { "passed_msgs", "loopless_passed_messages_total", NULL,
				 STAT_COUNTER,
				 "Messages of sockets in the sockhash sent on the normal TCP path "
				 "(peer not in the sockhash, or the direction is on TCP)." },
	[LL_CNT_PASSED_BYTES] = { "passed_bytes", "loopless_passed_bytes_total", NULL, STAT_COUNTER,
				  "Bytes of sockets in the sockhash sent on the normal TCP path." },
	[LL_CNT_TCP_PINNED] = { "tcp_pinned", "loopless_tcp_pinned_messages_total", NULL,
				STAT_COUNTER,
				"Messages kept on TCP because earlier bytes of their direction "
				"took TCP (redirected bytes would overtake them)." },
	[LL_CNT_SOCKETS_INSERTED] = { "sockets_inserted", "loopless_sockets_inserted_total", NULL,
				      STAT_COUNTER,
				      "Sockets added to the sockhash (two per accelerated "
				      "connection)." },
	[LL_CNT_INSERT_ERRORS] = { "insert_errors", "loopless_insert_errors_total", NULL,
				   STAT_COUNTER,
				   "Sockets that could not enter the sockhash (full, a ULP such as "
				   "kTLS, MPTCP); they stay on TCP." },
	[LL_CNT_SKIPPED_REMOTE] = { "skipped_remote", "loopless_sockets_skipped_total",
				    "reason=\"remote\"", STAT_COUNTER,
				    "Established sockets left on TCP: reason=remote, a server end "
				    "whose handshake did not come over lo; reason=no_peer, one on lo "
				    "whose client end is not in the sockhash; reason=port, "
				    "include_ports or exclude_ports; reason=zerocopy, SO_ZEROCOPY "
				    "was on; reason=blocking, a blocking client or a server end of "
				    "a blocking listener; reason=not_owner (cross_netns), an "
				    "address its namespace does not own." },
	[LL_CNT_SKIPPED_PORT] = { "skipped_port", "loopless_sockets_skipped_total",
				  "reason=\"port\"", STAT_COUNTER, NULL },
	[LL_CNT_SKIPPED_NOT_OWNER] = { "skipped_not_owner", "loopless_sockets_skipped_total",
				       "reason=\"not_owner\"", STAT_COUNTER, NULL },
	[LL_CNT_SKIPPED_ZEROCOPY] = { "skipped_zerocopy", "loopless_sockets_skipped_total",
				      "reason=\"zerocopy\"", STAT_COUNTER, NULL },
	[LL_CNT_ZEROCOPY_REFUSED] = { "zerocopy_refused", "loopless_zerocopy_refused_total", NULL,
				      STAT_COUNTER,
				      "SO_ZEROCOPY requests refused (EOPNOTSUPP) on sockets already "
				      "in the sockhash." },
	[LL_CNT_FALLBACKS] = { "fallbacks", "loopless_fallbacks_total", "reason=\"stalled_reader\"",
			       STAT_COUNTER,
			       "Directions moved from redirection to TCP: reason=stalled_reader, the "
			       "peer's queue was over its limit; reason=small_writes, small writes "
			       "outran the reader; reason=rcvlowat, the reader set SO_RCVLOWAT." },
	[LL_CNT_FALLBACKS_SMALL] = { "fallbacks_small", "loopless_fallbacks_total",
				     "reason=\"small_writes\"", STAT_COUNTER, NULL },
	[LL_CNT_FALLBACKS_RCVLOWAT] = { "fallbacks_rcvlowat", "loopless_fallbacks_total",
					"reason=\"rcvlowat\"", STAT_COUNTER, NULL },
	[LL_CNT_RETURNS] = { "returns", "loopless_returns_total", NULL, STAT_COUNTER,
			     "Directions moved from TCP back to redirection once every TCP byte "
			     "of theirs was read." },
	[LL_CNT_PAIRS] = { "pairs", "loopless_pairs_total", NULL, STAT_COUNTER,
			   "Connections whose two ends were paired in the sockhash (by their TCP "
			   "sequence numbers, whatever NAT did to their addresses)." },
	[LL_CNT_PAIRS_CROSS_NETNS] = { "pairs_cross_netns", "loopless_pairs_cross_netns_total",
				       NULL, STAT_COUNTER,
				       "Pairs whose two ends are in two network namespaces of the "
				       "node (cross_netns), among loopless_pairs_total." },
	[LL_CNT_PROVISIONAL_LEFT] = { "provisional_left", "loopless_provisional_left_total", NULL,
				      STAT_COUNTER,
				      "Client ends that entered the sockhash provisionally and left "
				      "it at their first incoming segment: nobody on this host's lo "
				      "claimed them (a remote peer, or one outside loopless's "
				      "scope)." },
	[LL_CNT_COLLISIONS] = { "collisions", "loopless_collisions_total", NULL, STAT_COUNTER,
				"Sockets left on TCP because their key was in use or their client "
				"end was claimed already: never paired with a wrong peer." },
	[LL_CNT_SKIPPED_NO_PEER] = { "skipped_no_peer", "loopless_sockets_skipped_total",
				     "reason=\"no_peer\"", STAT_COUNTER, NULL },
	[LL_CNT_SKIPPED_BLOCKING] = { "skipped_blocking", "loopless_sockets_skipped_total",
				      "reason=\"blocking\"", STAT_COUNTER, NULL },
	[LL_CNT_TCP_READER_UNKNOWN] = { "tcp_reader_unknown",
					"loopless_tcp_reader_unknown_messages_total", NULL,
					STAT_COUNTER,
					"Messages sent on TCP because the peer's reader was not seen "
					"reading non-blocking yet (or the pair is leaving the map)." },
	[LL_CNT_LEAVE_BLOCKING] = { "leaves_blocking", "loopless_leaves_total",
				    "reason=\"blocking_reader\"", STAT_COUNTER,
				    "Pairs that started leaving the sockhash: reason=blocking_reader, "
				    "a reader was seen reading blocking; reason=waitall, with "
				    "MSG_WAITALL; reason=splice, a reader spliced, or its process "
				    "was seen splicing (these three never come back); the others "
				    "took TCP and "
				    "may be put back: reason=reader_unknown, bytes came before the "
				    "reader was seen reading; reason=lag, its queue was over the "
				    "limit; reason=small_writes, small writes outran the reader; "
				    "reason=rcvlowat, the reader set SO_RCVLOWAT." },
	[LL_CNT_LEAVE_WAITALL] = { "leaves_waitall", "loopless_leaves_total", "reason=\"waitall\"",
				   STAT_COUNTER, NULL },
	[LL_CNT_LEAVE_SPLICE] = { "leaves_splice", "loopless_leaves_total", "reason=\"splice\"",
				  STAT_COUNTER, NULL },
	[LL_CNT_LEAVE_UNKNOWN] = { "leaves_reader_unknown", "loopless_leaves_total",
				   "reason=\"reader_unknown\"", STAT_COUNTER, NULL },
	[LL_CNT_LEAVE_LAG] = { "leaves_lag", "loopless_leaves_total", "reason=\"lag\"",
			       STAT_COUNTER, NULL },
	[LL_CNT_LEAVE_SMALL] = { "leaves_small_writes", "loopless_leaves_total",
				 "reason=\"small_writes\"", STAT_COUNTER, NULL },
	[LL_CNT_LEAVE_RCVLOWAT] = { "leaves_rcvlowat", "loopless_leaves_total",
				    "reason=\"rcvlowat\"", STAT_COUNTER, NULL },
	[LL_CNT_REENTERED] = { "reentered", "loopless_reentered_sockets_total", NULL, STAT_COUNTER,
			       "Sockets put back into the sockhash after their pair left it because "
			       "a direction took TCP, once the reason was gone (both readers "
			       "non-blocking, nothing unread on TCP)." },
	[LL_CNT_NEVER_SPLICE] = { "never_back_splice", "loopless_never_back_total",
				  "reason=\"splice\"", STAT_COUNTER,
				  "Sockets kept out of the sockhash for good after their pair left: "
				  "reason=splice, their program read bytes without recvmsg (splice, "
				  "TCP_ZEROCOPY_RECEIVE), which never sees redirected bytes." },
	[LL_CNT_LEFT] = { "sockets_left", "loopless_sockets_left_total", NULL, STAT_COUNTER,
			  "Sockets of leaving pairs taken out of the sockhash once every byte "
			  "redirected to them was read." },
	[LL_CNT_APP_VISIBLE_ERRORS] = { "app_visible_errors", "loopless_app_visible_errors_total",
					NULL, STAT_COUNTER,
					"EAGAIN returned to a blocking recvmsg on a socket in the "
					"sockhash (plain TCP would have waited on; SO_RCVTIMEO "
					"timeouts count too), and splices that missed redirected "
					"bytes. Should stay 0." },
	[LL_CNT_SPLICE_MISSED] = { "splice_missed", "loopless_splice_missed_total", NULL,
				   STAT_COUNTER,
				   "Sockets whose program spliced from them while redirected bytes "
				   "were queued, which splice() cannot read (counted in "
				   "loopless_app_visible_errors_total too). Should stay 0." },
	[LL_CNT_STRANDED_REFUSED] = { "stranded_refused", "loopless_stranded_refused_total", NULL,
				      STAT_COUNTER,
				      "Sends refused (EACCES) into a reader counted in "
				      "loopless_splice_missed_total once its queue was over "
				      "queue_limit: taking TCP would have reordered its bytes." },
	[STAT_SOCKETS] = { "sockets", "loopless_active_sockets", NULL, STAT_GAUGE,
			   "Sockets in the sockhash now (two per accelerated connection)." },
	[STAT_MAX_SOCKETS] = { "max_sockets", "loopless_map_capacity", NULL, STAT_GAUGE,
			       "Capacity of the sockhash (max_sockets)." },
};

int counters_read(int map_fd, uint64_t out[LL_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	__u32 id;
	int i;

	if (ncpu < 0)
		return ncpu;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (id = 0; id < LL_CNT_MAX; id++) {
		out[id] = 0;
		if (bpf_map_lookup_elem(map_fd, &id, vals)) {
			int err = -errno;

			free(vals);
			return err;
		}
		for (i = 0; i < ncpu; i++)
			out[id] += vals[i];
	}
	free(vals);
	return 0;
}

int sockhash_count(int sockhash_fd, uint32_t *n)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	/* Keys of any version's sockhash fit (48 bytes at most so far). */
	__u8 key[64], next[64];
	void *prev = NULL;
	uint32_t count = 0;

	if (bpf_obj_get_info_by_fd(sockhash_fd, &info, &len))
		return -errno;
	/* A key deleted under the walk restarts it at the first bucket
	 * (sock_hash_get_next_key), so sockets closing meanwhile could make it
	 * count some twice, or walk for long: stop at the capacity. */
	while (count < info.max_entries && !bpf_map_get_next_key(sockhash_fd, prev, &next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		count++;
	}
	if (count < info.max_entries && errno != ENOENT)
		return -errno;
	*n = count;
	return 0;
}

int stats_read(int counters_fd, int sockhash_fd, uint64_t out[STAT_NR])
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	uint32_t n;
	int err;

	err = counters_read(counters_fd, out);
	if (err)
		return err;
	err = sockhash_count(sockhash_fd, &n);
	if (err)
		return err;
	if (bpf_obj_get_info_by_fd(sockhash_fd, &info, &len))
		return -errno;
	out[STAT_SOCKETS] = n;
	out[STAT_MAX_SOCKETS] = info.max_entries;
	return 0;
}

int prom_write(FILE *f, const struct stat_def *defs, int n, const uint64_t *v)
{
	int i, j;

	for (i = 0; i < n; i++) {
		const struct stat_def *d = &defs[i];

		if (!d->metric)
			continue; /* a counter without its line (test_counters says) */
		/* Each family once, at its first entry, with all its samples. */
		for (j = 0; j < i && (!defs[j].metric || strcmp(defs[j].metric, d->metric)); j++)
			;
		if (j < i)
			continue;
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", d->metric, d->help, d->metric,
			d->type == STAT_COUNTER ? "counter" : "gauge");
		for (j = i; j < n; j++) {
			const struct stat_def *e = &defs[j];

			if (!e->metric || strcmp(e->metric, d->metric))
				continue;
			if (e->label)
				fprintf(f, "%s{%s} %" PRIu64 "\n", e->metric, e->label, v[j]);
			else
				fprintf(f, "%s %" PRIu64 "\n", e->metric, v[j]);
		}
	}
	return ferror(f) ? -EIO : 0;
}

int stats_write_prometheus(FILE *f, const uint64_t v[STAT_NR])
{
	return prom_write(f, stat_defs, STAT_NR, v);
}

void prom_label(char *out, size_t len, const char *name, const char *value)
{
	size_t at;

	at = (size_t)snprintf(out, len, "%s=\"", name);
	/* A label value escapes '\\', '"' and newlines. */
	for (; *value && at + 3 < len; value++) {
		if (*value == '\\' || *value == '"')
			out[at++] = '\\';
		if (*value == '\n') {
			out[at++] = '\\';
			out[at++] = 'n';
		} else {
			out[at++] = *value;
		}
	}
	if (at + 1 < len)
		out[at++] = '"';
	out[at < len ? at : len - 1] = '\0';
}
