# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Integration tests, trust: socket semantics an application could observe,
# each compared with plain TCP (issue 6).

# ---- Trust (issue 6) ----
# Every known sockmap pitfall (DESIGN.md "Pitfalls every release is tested
# against"), byte-exact, with redirection proven by the counters; real
# applications over loopless; bad input. llprobe (tests/llprobe/) checks one
# socket API behaviour per run on a connection to itself, verifying every
# byte; it prints "ok CHECK k=v..." or "limit CHECK why" (exit 3: the kernel
# cannot do it on a sockmap socket) and fails with exit 1.

LLPROBE=${LLPROBE:-$BUILD/llprobe}

# probe CG CHECK [ARGS...]: run one llprobe check in $NS (and CG: "" = plain
# TCP); prints its line; fails unless it said ok (or limit, with
# PROBE_LIMIT_OK=1). Called as out=$(probe ...) || exit 1: die in a command
# substitution only leaves the substitution.
probe() {
	local cg=$1 out rc
	shift
	out=$(in_ns_cg "$NS" "$cg" "$LLPROBE" "$@" 2>&1)
	rc=$?
	if [ $rc -eq 3 ] && [ "${PROBE_LIMIT_OK:-0}" = 1 ]; then
		echo "$out"
		return 0
	fi
	[ -n "$cg" ] && cg="loopless" || cg="plain TCP"
	[ $rc -eq 0 ] || die "llprobe $* ($cg): exit $rc: $out"
	echo "$out"
}

# grew NAME BEFORE: how much counter NAME grew since BEFORE.
grew() { echo $(($(counter "$1") - $2)); }

# conns_count: sockets in the sockhash now.
conns_count() { "$LOOPLESS" --pin-dir "$PIN" conns --json | jq length; }

# wait_conns N: the sockhash is back to N sockets within 5 s.
wait_conns() {
	for _ in $(seq 100); do [ "$(conns_count)" -le "$1" ] && return 0; sleep 0.05; done
	die "$(conns_count) sockets left in the sockhash, expected $1"
}

# Setup ordering: the client writes right after connect() while the server
# accepts late (its end is in the map before accept(): PASSIVE_ESTABLISHED
# fires on the final ACK), the server speaks first, and both at once; 300
# short connections in a row, every byte in order, then one big one whose
# client fills the queue of a socket nobody has accepted yet.
t_setup_ordering() {
	local r0 p0 ret0 i0 out n
	start_daemon
	r0=$(counter redirected_bytes)
	p0=$(counter passed_bytes)
	ret0=$(counter returns)
	i0=$(counter sockets_inserted)
	# One shell in the netns and cgroup for all 300 (a process start each).
	out=$(in_ns_cg "$NS" "$CG" sh -c '
		for i in $(seq 300); do
			case $((i % 3)) in
			0) a="--accept-delay 3" ;;
			1) a="--server-first --accept-delay 2" ;;
			2) a="--server-first" ;;
			esac
			"$0" pair --connect 127.0.0.1 --bytes 48K --chunk 16K --seed $((i * 2)) \
				--timeout 20 --tolerate-eagain $a || echo "FAILED $i $a"
		done' "$LLTRAFFIC" 2>&1)
	grep FAILED <<<"$out" && die "$(grep -m3 -B1 FAILED <<<"$out")"
	n=$(grep -c '^ok ' <<<"$out")
	[ "$n" -eq 300 ] || die "$n of 300 connections verified"
	log "300 connections (client-first before accept, server-first, both): all byte-exact"
	log "redirected_bytes +$(grew redirected_bytes "$r0"), passed_bytes +$(grew passed_bytes "$p0"), returns +$(grew returns "$ret0"), sockets_inserted +$(grew sockets_inserted "$i0")"
	[ "$(grew sockets_inserted "$i0")" -ge 600 ] || die "not every socket was inserted"
	# The first bytes of each direction take TCP until their reader has
	# been seen taking bytes (ll_recv), and the next ones until it has read
	# those (the ordering rule this test is about); the rest is redirected.
	# 16 KiB chunks written back to back mostly find the first unread:
	# 5-18 % of the bytes redirected, with the scheduling (a third when a
	# reader that only looked was redirected into, which a splicer cannot
	# read). Asserted: redirection happens at all (1 %).
	[ "$(grew redirected_bytes "$r0")" -ge $((300 * 48 * 1024 / 100)) ] ||
		die "less than 1 % of the bytes redirected"
	# 32 MiB written before accept() (the server sleeps 300 ms): the
	# writer fills the unaccepted socket's queue, falls back to TCP, and
	# every byte still arrives in order.
	r0=$(counter redirected_bytes)
	p0=$(counter passed_bytes)
	ret0=$(counter returns)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 32M --accept-delay 300 --duplex) || exit 1
	log "32M before a late accept(): $out"
	log "  redirected +$(grew redirected_bytes "$r0"), passed (TCP) +$(grew passed_bytes "$p0"), returns +$(grew returns "$ret0")"
	wait_conns 0
}

# Half-close: one side shuts down its writing half early while the other
# goes on sending for about a second, each way round; every byte, then EOF.
# (--s2c-bytes implies --duplex: two threads per socket, so --tolerate-eagain
# as pair_checked gives --duplex.)
t_half_close() {
	local r0 out
	start_daemon
	r0=$(counter redirected_bytes)
	out=$(pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 1M --s2c-bytes 64M \
		--tolerate-eagain) || exit 1
	log "client half-closes after 1M, server sends 64M: $out"
	out=$(pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 64M --s2c-bytes 1M \
		--tolerate-eagain) || exit 1
	log "server half-closes after 1M, client sends 64M: $out"
	assert_redirected "$r0" $((130 << 20))
	out=$(probe "$CG" close-writer --bytes 16M) || exit 1
	log "$out"
	wait_conns 0
}

# poll, select, epoll (level and edge triggered), blocking and non-blocking
# reads, MSG_WAITALL: a reader blocked on an empty socket is woken for every
# redirected message (200 rounds of 1 B .. 64 KiB each), as with plain TCP.
t_poll_wakeups() {
	local c r0 out plain
	start_daemon
	for c in poll select epoll-lt epoll-et blocking waitall epoll-et-rearm; do
		plain=$(probe "" "$c") || exit 1
		r0=$(counter redirected_bytes)
		out=$(probe "$CG" "$c") || exit 1
		log "$out (redirected +$(grew redirected_bytes "$r0"))"
		case $c in
		blocking | waitall)
			# A blocking reader (with MSG_WAITALL or not) is never
			# redirected into: its pair leaves the map at its first
			# recvmsg (ll_recv), and it reads exactly as over TCP.
			[ "$(grew redirected_bytes "$r0")" -eq 0 ] || die "$c: redirected into a blocking reader"
			[ "$(kv "$out" short_waitall)" = "$(kv "$plain" short_waitall)" ] &&
				[ "$(kv "$out" bytes)" = "$(kv "$plain" bytes)" ] ||
				die "$c differs from plain TCP: $out / $plain" ;;
		epoll-et-rearm)
			[ "$(grew redirected_bytes "$r0")" -gt 0 ] || die "$c: nothing redirected"
			[ "${out#ok }" = "${plain#ok }" ] ||
				die "edge-triggered epoll differs from plain TCP: $out / $plain" ;;
		*)
			[ "$(grew redirected_bytes "$r0")" -gt 0 ] || die "$c: nothing redirected"
			[ "$(kv "$out" bytes)" = "$(kv "$plain" bytes)" ] || die "$c: byte count differs" ;;
		esac
	done
}

# FIONREAD, MSG_PEEK, SO_RCVLOWAT on redirected data, next to plain TCP.
t_recv_semantics() {
	local c out plain f0
	start_daemon
	for c in fionread-peek rcvlowat; do
		plain=$(probe "" "$c") || exit 1
		out=$(probe "$CG" "$c") || exit 1
		log "plain TCP: $plain"
		log "loopless:  $out"
	done
	out=$(probe "$CG" fionread-peek) || exit 1
	[ "$(kv "$out" fionread)" = 3000 ] || die "FIONREAD does not count redirected bytes: $out"
	[ "$(kv "$out" peek)" = 3000 ] || die "MSG_PEEK did not see all 3 queued writes: $out"
	# SO_RCVLOWAT: a reader that set it gets its bytes over TCP, which
	# honours it (poll not readable with 1000 of 2000, one recv of 3000).
	# (This reader blocks in recv(): the bytes also take TCP because it is
	# not a reader loopless redirects into, whichever comes first.)
	f0=$(( $(counter fallbacks_rcvlowat) + $(counter tcp_reader_unknown) ))
	out=$(probe "$CG" rcvlowat) || exit 1
	[ "$(kv "$out" poll_readable_with_1000)" = 0 ] && [ "$(kv "$out" first_recv)" = 3000 ] ||
		die "SO_RCVLOWAT not honoured: $out"
	[ $(( $(counter fallbacks_rcvlowat) + $(counter tcp_reader_unknown) )) -gt "$f0" ] ||
		die "the rcvlowat reader's bytes were not sent on TCP"
}

# Peer reset (SO_LINGER 0) and close mid-stream: the other side gets
# ECONNRESET, EPIPE or EOF as with TCP, nothing hangs (llprobe's watchdog),
# and the sockets leave the sockhash.
t_reset_close() {
	local c out base
	start_daemon
	base=$(conns_count)
	for c in reset-writer reset-reader close-reader close-writer; do
		out=$(probe "" "$c") || exit 1
		log "plain TCP: $out"
		out=$(probe "$CG" "$c" --timeout 15) || exit 1
		log "loopless:  $out"
		case $c in
		reset-writer) grep -qE "end=(Connection reset by peer|EOF)" <<<"$out" || die "$out" ;;
		reset-reader | close-reader)
			grep -qE "error=(Connection reset by peer|Broken pipe)" <<<"$out" || die "$out" ;;
		esac
		wait_conns "$base"
	done
}

# A slow reader with a small SO_RCVBUF and a writer of 1 MiB messages: no
# deadlock (the pair completes), and what the kernel queues while the reader
# sleeps stays within twice plain TCP's figure plus one message.
t_small_rcvbuf() {
	local out plain ll f0
	start_daemon
	out=$(pair_checked "$NS" "" --connect 127.0.0.1 --bytes 128M --chunk 1M --rcvbuf 64K \
		--reader-delay 2 --reader-stall 1M:2 --greet) || exit 1
	plain=$(kv "$out" peak_rw)
	f0=$(counter fallbacks)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 128M --chunk 1M --rcvbuf 64K \
		--reader-delay 2 --reader-stall 1M:2 --greet) || exit 1
	ll=$(kv "$out" peak_rwi)
	log "$out"
	log "peak queued, SO_RCVBUF 64K, 1 MiB writes, reader asleep 2 s: plain $plain B, loopless $ll B"
	[ "$ll" -le $((2 * plain + (1 << 20))) ] || die "loopless queued $ll B (plain TCP: $plain B)"
	[ "$(counter fallbacks)" -gt "$f0" ] || die "no fallback to TCP counted"
}

# sendfile(), splice() into the socket, writev() with up to IOV_MAX iovecs:
# byte-exact and redirected.
t_sendfile_writev() {
	local c r0 out
	start_daemon
	for c in sendfile splice-write writev; do
		r0=$(counter redirected_bytes)
		out=$(probe "$CG" "$c" --bytes 16M) || exit 1
		log "$out (redirected +$(grew redirected_bytes "$r0"))"
		[ "$(grew redirected_bytes "$r0")" -gt 0 ] || die "$c: nothing redirected"
	done
}

# Excluding a port (the way to run a splicing program before ll_recv):
# its port in exclude_ports. Both ends stay on TCP (skipped_port) and splice()
# gets every byte in order, 64K and 16M as in the reproducer; a port not
# excluded is still redirected in the same run.
t_splice_read_excluded() {
	local size s0 r0 out
	conf "[datapath]" "exclude_ports = 7411"
	start_daemon --config "$TMP/conf"
	for size in 64K 16M; do
		s0=$(counter skipped_port)
		r0=$(counter redirected_bytes)
		out=$(probe "$CG" splice-read --port 7411 --bytes "$size") || exit 1
		log "excluded port, $size: $out (skipped_port +$(grew skipped_port "$s0"))"
		[ "$(grew skipped_port "$s0")" -eq 2 ] || die "the splicing pair was not skipped"
		[ "$(grew redirected_bytes "$r0")" -eq 0 ] || die "bytes of an excluded port redirected"
	done
	r0=$(counter redirected_bytes)
	out=$(probe "$CG" stream --port 7412 --bytes 4M) || exit 1
	[ "$(grew redirected_bytes "$r0")" -gt 0 ] || die "a port not excluded was not redirected"
}

# MSG_ZEROCOPY: one completion per send, as with plain TCP, or a clear
# refusal. SO_ZEROCOPY set before connect() (and on the listener) keeps both
# sockets out of the map; set on a socket already in the map, it is refused
# with EOPNOTSUPP (ll_setsockopt) and the probe sends by copying, redirected.
# Every byte is verified in all cases.
t_zerocopy() {
	local out c z0 r0 b0
	start_daemon
	for c in zerocopy zerocopy-early; do
		out=$(probe "" $c) || exit 1
		log "plain TCP: $out"
		[ "$(kv "$out" so_zerocopy)" = on ] || die "plain TCP $c: $out"
	done
	z0=$(counter skipped_zerocopy)
	out=$(probe "$CG" zerocopy-early) || exit 1
	log "loopless, SO_ZEROCOPY before connect: $out (skipped_zerocopy +$(grew skipped_zerocopy "$z0"))"
	[ "$(kv "$out" so_zerocopy)" = on ] && [ "$(kv "$out" sends)" -gt 0 ] &&
		[ "$(kv "$out" completions)" = "$(kv "$out" sends)" ] || die "zerocopy-early: $out"
	[ "$(grew skipped_zerocopy "$z0")" -eq 2 ] || die "skipped_zerocopy grew by $(grew skipped_zerocopy "$z0"), not 2"

	r0=$(counter zerocopy_refused)
	b0=$(counter redirected_bytes)
	out=$(probe "$CG" zerocopy) || exit 1
	log "loopless, SO_ZEROCOPY after connect: $out (redirected +$(grew redirected_bytes "$b0"))"
	[ "$(kv "$out" so_zerocopy)" = EOPNOTSUPP ] && [ "$(kv "$out" completions)" = 0 ] ||
		die "zerocopy after connect: $out"
	[ "$(grew zerocopy_refused "$r0")" -eq 1 ] || die "zerocopy_refused did not grow by 1"
	[ "$(grew redirected_bytes "$b0")" -gt 0 ] || die "the copying sends were not redirected"
	# SO_ZEROCOPY 0 and other options pass untouched, also an optval
	# longer than the page the hook sees (SO_SNDBUF reads its first int).
	out=$(in_ns_cg "$NS" "$CG" python3 -c '
import socket, struct
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
c.setsockopt(socket.SOL_SOCKET, 60, 0)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, struct.pack("i", 300000) + bytes(5000))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("ok rcvbuf=%d sndbuf=%d nodelay=%d" % (c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
      c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
      c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))' 2>&1) ||
		die "setsockopt in the cgroup: $out"
	[ "$out" = "ok rcvbuf=2097152 sndbuf=600000 nodelay=1" ] || die "options in the cgroup: $out"
	log "other options in the cgroup: $out"
}

# IPv6 and v4-mapped pairs (::1, an AF_INET6 socket to ::ffff:127.0.0.1):
# the wake-up and queue semantics hold there too, redirected.
t_v6_semantics() {
	local a c r0 out
	start_daemon
	for a in ::1 ::ffff:127.0.0.1; do
		for c in epoll-et fionread-peek close-writer; do
			r0=$(counter redirected_bytes)
			out=$(probe "$CG" "$c" --connect "$a") || exit 1
			log "$a: $out (redirected +$(grew redirected_bytes "$r0"))"
			[ "$(grew redirected_bytes "$r0")" -gt 0 ] || die "$a $c: nothing redirected"
		done
	done
	wait_conns 0
}

# MPTCP connections (subflows carry a ULP, which sockmap refuses) work and
# are not redirected.
t_mptcp() {
	local r0 e0 i0 rx0 out
	[ "$(ip netns exec "$NS" sysctl -n net.mptcp.enabled 2>/dev/null)" = 1 ] ||
		{ log "SKIP: kernel without MPTCP"; exit 77; }
	start_daemon
	r0=$(counter redirected_bytes)
	e0=$(counter insert_errors)
	i0=$(counter sockets_inserted)
	rx0=$(lo_rx)
	out=$(probe "$CG" stream --mptcp --bytes 16M) || exit 1
	log "$out; insert_errors +$(grew insert_errors "$e0"), sockets_inserted +$(grew sockets_inserted "$i0"), lo rx +$(($(lo_rx) - rx0))"
	[ "$(grew redirected_bytes "$r0")" -eq 0 ] || die "MPTCP bytes were redirected"
	[ $(($(lo_rx) - rx0)) -gt 100 ] || die "MPTCP bytes did not go over lo"
	wait_conns 0
}

# The map full (max_sockets = 8): four idle connections fill it; the next
# ones work on the normal path and insert_errors counts them.
t_map_full() {
	local i pids=() e0 n0 r0 out
	conf "[daemon]" "cgroup = $CG" "max_sockets = 8"
	start_daemon --config "$TMP/conf"
	for i in 1 2 3 4; do
		in_ns_cg "$NS" "$CG" "$LLTRAFFIC" hold --connect 127.0.0.1 --seed $((i * 2)) $KEEPUP --greet \
			--ready-file "$TMP/h$i.ready" --resume-file "$TMP/go" >"$TMP/h$i.out" 2>&1 &
		pids+=($!)
	done
	for i in 1 2 3 4; do wait_file "$TMP/h$i.ready"; done
	[ "$(conns_count)" -eq 8 ] || die "$(conns_count) sockets in a map of 8"
	e0=$(counter insert_errors)
	n0=$(counter skipped_no_peer)
	r0=$(counter redirected_bytes)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 16M --duplex) || exit 1
	log "a connection beyond max_sockets: $out"
	# The client end finds the map full; its server end then has no client
	# end to pair with.
	[ "$(grew insert_errors "$e0")" -eq 1 ] || die "insert_errors +$(grew insert_errors "$e0"), expected 1"
	[ "$(grew skipped_no_peer "$n0")" -eq 1 ] || die "skipped_no_peer +$(grew skipped_no_peer "$n0"), expected 1"
	[ "$(grew redirected_bytes "$r0")" -eq 0 ] || die "bytes redirected with the map full"
	touch "$TMP/go"
	for i in 1 2 3 4; do
		wait "${pids[$((i - 1))]}" || die "held connection $i: $(cat "$TMP/h$i.out")"
	done
	log "4 held connections of 1M, resumed: redirected +$(grew redirected_bytes "$r0")"
	[ "$(grew redirected_bytes "$r0")" -ge $((3 << 20)) ] || die "held connections not redirected"
	wait_conns 0
	r0=$(counter redirected_bytes)
	out=$(pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 8M) || exit 1
	log "with room again: redirected +$(grew redirected_bytes "$r0") of 8M"
	assert_redirected "$r0" $((8 << 20))
}

# Bad input: the configuration parser under libFuzzer (ASan, UBSan) for
# FUZZ_TEST_SECONDS (10); `make fuzz` runs it longer.
t_fuzz_config() {
	local out
	[ -x "$BUILD/fuzz_config" ] || die "$BUILD/fuzz_config not built"
	mkdir "$TMP/corpus"
	out=$("$BUILD/fuzz_config" -max_total_time="${FUZZ_TEST_SECONDS:-10}" -max_len=4096 \
		-timeout=10 -artifact_prefix="$TMP/" -print_final_stats=1 \
		"$TMP/corpus" tests/fuzz/corpus 2>&1) || die "fuzzer found a crash: $(tail -30 <<<"$out")"
	log "$(grep -E '^stat::number_of_executed_units' <<<"$out") ($(ls "$TMP/corpus" | wc -l) corpus entries)"
}
