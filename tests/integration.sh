# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Integration tests: real sockets, real kernel. Each t_* function runs in a
# subshell of its own (tests/run.sh) with its own netns, cgroup and pin dir
# (tests/lib.sh), asserting bytes (lltraffic verifies every byte, order and
# EOF) and proving redirection (counters, and lo's packet counter).

BIG=${LOOPLESS_TEST_BYTES:-256M}
BIG_BYTES=$((256 << 20))
[ "$BIG" = 256M ] || BIG_BYTES=$(numfmt --from=iec "$BIG")

# Writers in tests that prove full redirection are paced below what the
# verifying reader sustains: loopless redirects only while the reader keeps
# up and gives a lagging one TCP's flow control instead (see ll_sk_msg), and
# lltraffic's reader, which checks every byte, is slower than its writer.
# The rates leave room for a shared, noisy 2-core machine.
KEEPUP="--rate 64M"
KEEPUP_DUPLEX="--rate 40M" # two writers and two readers share 2 cores

# assert_redirected BEFORE_BYTES BYTES: redirected_bytes grew by at least
# 95 % of BYTES. Not all: a client that writes right after connect() can be
# faster than the server end's insertion; those first bytes take TCP and the
# direction returns to redirect once they are read (see ll_sk_msg).
assert_redirected() {
	local now
	now=$(counter redirected_bytes)
	[ $((now - $1)) -ge $(($2 / 100 * 95)) ] ||
		die "redirected_bytes grew by $((now - $1)), expected >= 95 % of $2"
}

# pair_checked NS CG ARGS...: run an lltraffic pair, fail unless it says ok.
# Duplex pairs read and write each socket from two threads; a blocking recv()
# there can return EAGAIN on a sockmap socket (kernel: tcp_bpf_recvmsg waits
# for one wake-up only, see README "Kernel behaviours"), so they retry it.
pair_checked() {
	local ns=$1 cg=$2 out
	shift 2
	case " $* " in *" --duplex "*) set -- "$@" --tolerate-eagain ;; esac
	out=$(in_ns_cg "$ns" "$cg" "$LLTRAFFIC" pair "$@") || die "lltraffic pair $*: $out"
	case "$out" in ok*) ;; *) die "lltraffic pair $*: $out" ;; esac
	echo "$out"
}

# 1. 127.0.0.1: every byte redirected, lo sees only handshake and teardown.
t_loopback_v4() {
	local base_rx rx0 rx1 r0 out
	# Without loopless first (not in the cgroup): the figure to compare with.
	start_daemon
	rx0=$(lo_rx)
	pair_checked "$NS" "" --connect 127.0.0.1 --bytes "$BIG" >/dev/null
	base_rx=$(($(lo_rx) - rx0))
	r0=$(counter redirected_bytes)
	rx0=$(lo_rx)
	out=$(pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes "$BIG")
	rx1=$(lo_rx)
	log "$out"
	log "lo rx packets for $BIG: plain TCP $base_rx, loopless $((rx1 - rx0))"
	assert_redirected "$r0" "$BIG_BYTES"
	[ $((rx1 - rx0)) -lt $((base_rx / 20)) ] || die "lo saw $((rx1 - rx0)) packets with loopless (plain TCP: $base_rx)"
	[ "$base_rx" -gt 1000 ] || die "plain TCP lo delta $base_rx: baseline is not plain TCP?"
	[ "$(counter sockets_inserted)" -ge 2 ] || die "sockets_inserted < 2"
}

# 2. A local IP: an address of a veth inside the test's netns. A connection
# to it picks it as source too (local == remote); between two different
# local addresses it is redirected only when local_addrs lists them.
t_local_ip() {
	local r0 rx0 rx1 s0
	ip -n "$NS" link add ll0 type veth peer name ll1
	ip -n "$NS" addr add 203.0.113.1/24 dev ll0
	ip -n "$NS" addr add 203.0.113.2/24 dev ll1
	ip -n "$NS" link set ll0 up
	ip -n "$NS" link set ll1 up
	printf '[daemon]\ncgroup = %s\n[datapath]\nlocal_addrs = 203.0.113.1, 2001:db8::1\n' "$CG" \
		>"$TMP/conf"
	start_daemon --config "$TMP/conf"
	r0=$(counter redirected_bytes)
	rx0=$(lo_rx)
	pair_checked "$NS" "$CG" $KEEPUP_DUPLEX --connect 203.0.113.1 --bytes 128M --duplex >/dev/null
	rx1=$(lo_rx)
	assert_redirected "$r0" $((2 * (128 << 20)))
	[ $((rx1 - rx0)) -lt 200 ] || die "lo saw $((rx1 - rx0)) packets (plain TCP: thousands)"
	log "local IP 203.0.113.1, duplex 128M: lo rx delta $((rx1 - rx0))"

	# .2 -> .1: only the client's peer (.1) is listed, so the server end
	# (whose peer is .2) stays out and nothing is redirected.
	r0=$(counter redirected_bytes)
	s0=$(counter skipped_remote)
	pair_checked "$NS" "$CG" --connect 203.0.113.1 --bind 203.0.113.2 --bytes 8M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "half-listed pair was redirected"
	[ "$(counter skipped_remote)" -ge $((s0 + 1)) ] || die "skipped_remote did not count"
	# With both listed (reload), the same pair is redirected.
	printf '[daemon]\ncgroup = %s\n[datapath]\nlocal_addrs = 203.0.113.1 203.0.113.2\n' "$CG" \
		>"$TMP/conf"
	kill -HUP "$DAEMON_PID"
	for _ in $(seq 100); do grep -q "reloaded" "$TMP/looplessd.log" && break; sleep 0.05; done
	grep -q "reloaded" "$TMP/looplessd.log" || die "SIGHUP reload not logged"
	pair_checked "$NS" "$CG" $KEEPUP --connect 203.0.113.1 --bind 203.0.113.2 --bytes 8M >/dev/null
	assert_redirected "$r0" $((8 << 20))
	log "203.0.113.2 -> 203.0.113.1 redirected once both are in local_addrs"
}

# 3. ::1, an AF_INET6 client to ::ffff:127.0.0.1, and an AF_INET client to a
# dual-stack (::) server whose accepted socket is AF_INET6 v4-mapped.
t_ipv6_and_mapped() {
	local r0 spec
	start_daemon
	for spec in "--connect ::1" "--listen :: --connect ::ffff:127.0.0.1" \
		"--listen :: --connect 127.0.0.1"; do
		r0=$(counter redirected_bytes)
		# shellcheck disable=SC2086
		pair_checked "$NS" "$CG" $KEEPUP_DUPLEX $spec --bytes 48M --duplex >/dev/null
		assert_redirected "$r0" $((2 * (48 << 20)))
		log "redirected: $spec"
	done
}

# 4. Two netns, identical 4-tuples, streaming at the same time: different
# seeds, so a single byte crossing over fails verification.
t_netns_collision() {
	local ns2 r0 p1 p2
	add_netns b
	ns2=$NEW_NS
	start_daemon
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" --rate 20M --connect 127.0.0.1 --port 7001 --client-port 7002 \
		--bytes 64M --seed 1 --duplex >"$TMP/a" &
	p1=$!
	pair_checked "$ns2" "$CG" --rate 20M --connect 127.0.0.1 --port 7001 --client-port 7002 \
		--bytes 64M --seed 2 --duplex >"$TMP/b" &
	p2=$!
	wait $p1 || die "netns A: $(cat "$TMP/a")"
	wait $p2 || die "netns B: $(cat "$TMP/b")"
	grep -q "client=127.0.0.1:7002" "$TMP/a" || die "netns A did not use the fixed tuple"
	grep -q "client=127.0.0.1:7002" "$TMP/b" || die "netns B did not use the fixed tuple"
	assert_redirected "$r0" $((4 * (64 << 20)))
	log "A: $(cat "$TMP/a")"
	log "B: $(cat "$TMP/b")"
}

# 5. A real remote peer (another netns over veth): not redirected, works.
t_remote_peer() {
	local ns2 r0 s0 out
	add_netns peer
	ns2=$NEW_NS
	ip link add ll-a netns "$NS" type veth peer name ll-b netns "$ns2"
	ip -n "$NS" addr add 198.51.100.1/24 dev ll-a
	ip -n "$ns2" addr add 198.51.100.2/24 dev ll-b
	ip -n "$NS" link set ll-a up
	ip -n "$ns2" link set ll-b up
	start_daemon
	r0=$(counter redirected_bytes)
	s0=$(counter skipped_remote)
	in_ns_cg "$ns2" "$CG" "$LLTRAFFIC" serve --listen 198.51.100.2 --port 7100 --bytes 32M \
		--duplex --ready-file "$TMP/ready" >"$TMP/serve" 2>&1 &
	for _ in $(seq 100); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	out=$(in_ns_cg "$NS" "$CG" "$LLTRAFFIC" send --connect 198.51.100.2 --port 7100 \
		--bytes 32M --duplex) || die "send: $out"
	wait $! || die "serve: $(cat "$TMP/serve")"
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "remote traffic was redirected"
	[ "$(counter skipped_remote)" -ge $((s0 + 2)) ] || die "skipped_remote did not count both ends"
}

# 6. A process outside the cgroup, and an excluded port: not redirected.
t_scope() {
	local r0 s0
	printf '[daemon]\ncgroup = %s\n[datapath]\nexclude_ports = 7200\n' "$CG" >"$TMP/conf"
	start_daemon --config "$TMP/conf"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "" --connect 127.0.0.1 --bytes 16M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "traffic outside the cgroup was redirected"
	s0=$(counter skipped_port)
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --port 7200 --bytes 16M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "excluded port was redirected"
	[ "$(counter skipped_port)" -ge $((s0 + 2)) ] || die "skipped_port did not count both ends"
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --port 7201 --bytes 16M >/dev/null
	assert_redirected "$r0" $((16 << 20))
}

# 7. looplessd stopped (SIGTERM), killed (SIGKILL) and restarted while a
# stream runs: every byte right, redirection never stops, the restarted
# daemon adopts the pins (no second attachment) and new connections are
# redirected too.
t_restart_mid_stream() {
	local r0 rx0 pid out links
	start_daemon
	r0=$(counter redirected_bytes)
	rx0=$(lo_rx)
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 192M --duplex --rate 40M \
		>"$TMP/pair" &
	pid=$!
	sleep 1
	stop_daemon TERM
	"$LOOPLESS" --pin-dir "$PIN" status >/dev/null || die "datapath gone after SIGTERM"
	sleep 0.5
	start_daemon
	sleep 1
	stop_daemon KILL
	sleep 0.5
	start_daemon
	grep -q "adopted datapath" "$TMP/looplessd.log" || die "restart did not adopt the pins"
	wait $pid || die "stream across restarts: $(cat "$TMP/pair")"
	out=$(cat "$TMP/pair")
	log "$out"
	assert_redirected "$r0" $((2 * (192 << 20)))
	[ $(($(lo_rx) - rx0)) -lt 200 ] || die "lo saw $(($(lo_rx) - rx0)) packets across restarts"
	links=$(bpftool cgroup show "$CG" | grep -c sock_ops)
	[ "$links" -eq 1 ] || die "$links sock_ops attachments after restarts, expected 1"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 16M >/dev/null
	assert_redirected "$r0" $((16 << 20))
}

# 8. `loopless uninstall` while a connection is open and idle: it keeps
# working, and nothing of ours is left.
t_uninstall_idle() {
	local pid out ids
	start_daemon
	ids="prog:$(bpftool prog show pinned "$PIN/ll_sockops" -j | jq .id)"
	ids+=" prog:$(bpftool prog show pinned "$PIN/ll_sk_msg" -j | jq .id)"
	ids+=" map:$(bpftool map show pinned "$PIN/sock_hash" -j | jq .id)"
	# ours_left: true (listing them in LEFT) while any of our programs or maps exists.
	ours_left() {
		local i
		LEFT=
		for i in $ids; do
			bpftool "${i%%:*}" show id "${i#*:}" >/dev/null 2>&1 && LEFT+=" $i"
		done
		[ -n "$LEFT" ]
	}
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 32M --duplex --pause-after 8M \
		--ready-file "$TMP/ready" --resume-file "$TMP/resume" >"$TMP/pair" &
	pid=$!
	for _ in $(seq 200); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	[ -e "$TMP/ready" ] || die "pair never paused"
	[ "$("$LOOPLESS" --pin-dir "$PIN" conns --json | jq length)" -ge 2 ] ||
		die "the paused pair is not in the sockhash"
	stop_daemon TERM
	"$LOOPLESS" --pin-dir "$PIN" uninstall || die "uninstall failed"
	[ ! -e "$PIN" ] || die "$PIN still exists"
	bpftool cgroup show "$CG" | grep -q sock_ops && die "sock_ops still attached to $CG"
	touch "$TMP/resume"
	wait $pid || die "connection broke after uninstall: $(cat "$TMP/pair")"
	"$LOOPLESS" --pin-dir "$PIN" status >/dev/null && die "status says attached after uninstall"
	# The programs and maps go once no socket holds them (freed from a
	# work queue after an RCU grace period, so poll). Checked by id: other
	# loopless instances may run on this host.
	for _ in $(seq 50); do
		ours_left || break
		sleep 0.1
	done
	ours_left && die "still loaded after uninstall:$LEFT"
	log "$(cat "$TMP/pair")"
}

# 9. Bad configuration: one clear line naming file and line, exit 2, nothing
# attached or pinned.
t_bad_config() {
	local conf rc out
	conf="$TMP/bad.conf"
	check_bad() {
		printf "$1" >"$conf"
		out=$("$LOOPLESSD" --config "$conf" --pin-dir "$PIN" 2>&1)
		rc=$?
		[ $rc -eq 2 ] || die "exit $rc for: $1 ($out)"
		[ "$(wc -l <<<"$out")" -eq 1 ] || die "more than one line: $out"
		grep -q "$2" <<<"$out" || die "message \"$out\" lacks \"$2\""
		[ ! -e "$PIN" ] || die "$PIN created by a bad config"
		log "$out"
	}
	check_bad '[daemon]\ncgroupz = /\n' "bad.conf:2: unknown key \"cgroupz\""
	check_bad '[daemon]\nmax_sockets = lots\n' "bad.conf:2: .*max_sockets"
	check_bad '# comment\n\n[daemon]\ncgroup = /no/such/cgroup-loopless\n' "bad.conf:4: .*No such file"
	check_bad '[nope]\n' "bad.conf:1: unknown section"
	check_bad '[datapath]\nexclude_ports = 80-70000\n' "bad.conf:2: .*exclude_ports"
	check_bad '[datapath]\nlocal_addrs = 10.0.0.300\n' "bad.conf:2: .*local_addrs"
	out=$("$LOOPLESSD" --config "$TMP/missing.conf" 2>&1) && die "missing explicit config accepted"
	[ $? -eq 2 ] || die "missing config: wrong exit code"
	out=$("$LOOPLESSD" --bogus 2>&1)
	[ $? -eq 2 ] || die "unknown option: wrong exit code"
	printf '[daemon]\ncgroup = %s\n' "$CG" >"$conf"
	"$LOOPLESSD" --config "$conf" --check >/dev/null || die "--check rejected a good config"
}

# The CLI's machine output has the documented keys, and conns lists a live
# pair with its socket cookies.
t_cli() {
	local keys pid
	start_daemon
	keys=$(stat_json | jq -r 'keys[]' | sort | tr '\n' ' ')
	for k in redirected_msgs redirected_bytes passed_msgs sockets_inserted insert_errors; do
		grep -qw "$k" <<<"$keys" || die "stats --json lacks $k"
		[ "$(stat_json | jq ".$k | type")" = '"number"' ] || die "$k is not a number"
	done
	"$LOOPLESS" --pin-dir "$PIN" status --json | jq -e '.attached == true' >/dev/null ||
		die "status --json not attached"
	"$LOOPLESS" --pin-dir "$PIN" status | grep -q "$CG" || die "status does not name the cgroup"
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --port 7300 --bytes 1M --pause-after 1M \
		--ready-file "$TMP/ready" --resume-file "$TMP/resume" >/dev/null &
	pid=$!
	for _ in $(seq 200); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	"$LOOPLESS" --pin-dir "$PIN" conns --json >"$TMP/conns"
	jq -e 'map(select(.local == "127.0.0.1:7300" or .remote == "127.0.0.1:7300")) | length == 2' \
		"$TMP/conns" >/dev/null || die "conns does not show both ends: $(cat "$TMP/conns")"
	jq -e 'all(.[]; .cookie > 0 and .netns_cookie > 0 and .family == "ipv4")' "$TMP/conns" \
		>/dev/null || die "conns fields: $(cat "$TMP/conns")"
	"$LOOPLESS" --pin-dir "$PIN" conns | grep -q "127.0.0.1:7300" || die "conns table"
	touch "$TMP/resume"
	wait $pid || die "pair failed"
	"$LOOPLESS" --pin-dir "$PIN" bogus >/dev/null 2>&1
	[ $? -eq 2 ] || die "unknown command: exit code not 2"
	"$LOOPLESS" --pin-dir "$TMP/none" status >/dev/null 2>&1 && die "status on nothing exits 0"
	true
}

# Runtime errors a user can act on: one line, exit 1, nothing left behind.
t_runtime_errors() {
	local out rc
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$LOOPLESSD" --config /dev/null --cgroup "$CG" --pin-dir "$PIN" 2>&1)
	rc=$?
	[ $rc -eq 1 ] || die "unprivileged: exit $rc ($out)"
	grep -q "missing capability CAP_SYS_ADMIN" <<<"$out" || die "unprivileged: \"$out\""
	[ ! -e "$PIN" ] || die "unprivileged run created $PIN"
	log "$out"

	out=$("$LOOPLESSD" --config /dev/null --cgroup "$CG" --pin-dir /proc/loopless-nope 2>&1)
	rc=$?
	[ $rc -eq 1 ] || die "unusable pin dir: exit $rc ($out)"
	grep -q "cannot use /proc/loopless-nope as a bpffs pin directory" <<<"$out" ||
		die "unusable pin dir: \"$out\""
	log "$out"

	# A second daemon on the same pin dir refuses; the first keeps running.
	start_daemon
	out=$("$LOOPLESSD" --config /dev/null --cgroup "$CG" --pin-dir "$PIN" 2>&1)
	rc=$?
	[ $rc -eq 1 ] || die "second daemon: exit $rc ($out)"
	grep -q "in use by another looplessd" <<<"$out" || die "second daemon: \"$out\""
	kill -0 "$DAEMON_PID" || die "the first daemon died"
	"$LOOPLESS" --pin-dir "$PIN" status >/dev/null || die "datapath gone after second daemon"
	[ "$(bpftool cgroup show "$CG" | grep -c sock_ops)" -eq 1 ] || die "double attachment"
	log "$out"
}

# A reader that sleeps while a writer streams 1 GiB: loopless must not let
# the kernel queue more than twice what plain TCP queues (redirected bytes
# are not limited by SO_RCVBUF; loopless hands a stalled reader's writer to
# TCP's flow control). Measured from the sockets themselves: receive queue +
# write queue (SO_MEMINFO), plus the redirected queue (FIONREAD) for loopless.
t_backpressure() {
	local out plain ll f0
	start_daemon
	out=$(pair_checked "$NS" "" --connect 127.0.0.1 --bytes 1G --reader-delay 3)
	plain=$(kv "$out" peak_rw)
	f0=$(counter fallbacks)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 1G --reader-delay 3)
	ll=$(kv "$out" peak_rwi)
	log "peak queued while the reader sleeps 3 s: plain TCP $plain B, loopless $ll B"
	[ "$plain" -gt 0 ] && [ "$ll" -gt 0 ] || die "no memory samples"
	[ "$ll" -le $((2 * plain)) ] || die "loopless queued $ll B, more than 2 x plain TCP ($plain B)"
	[ "$(counter fallbacks)" -gt "$f0" ] || die "no fallback to TCP counted"
}

# Request/response traffic stays redirected: the reader always finds its
# queue empty, so no switch happens, small messages included.
t_rr_stays_redirected() {
	local m0 f0 s0 size out
	start_daemon
	for size in 64 1K 16K; do
		m0=$(counter redirected_msgs)
		f0=$(counter fallbacks)
		s0=$(counter fallbacks_small)
		out=$(in_ns_cg "$NS" "$CG" "$LLTRAFFIC" rr --connect 127.0.0.1 --size "$size" \
			--count 20000) || die "rr $size: $out"
		log "rr $size: $out"
		[ $(($(counter redirected_msgs) - m0)) -ge 40000 ] ||
			die "rr $size: $(($(counter redirected_msgs) - m0)) messages redirected, expected 40000"
		[ "$(counter fallbacks)" -eq "$f0" ] || die "rr $size fell back to TCP"
		[ "$(counter fallbacks_small)" -eq "$s0" ] || die "rr $size fell back (small writes)"
	done
}

# `loopless uninstall` while redirected bytes wait unread in a sleeping
# reader's queue: it stops redirecting, detaches, and waits for the reader
# before taking sockets out of the map (which would drop the queue); with a
# short --timeout it stops there, losing nothing. Every byte arrives.
t_uninstall_in_flight() {
	local pid unread out rc
	start_daemon
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 96M --reader-delay 4 >"$TMP/pair" &
	pid=$!
	sleep 1.5
	unread=$("$LOOPLESS" --pin-dir "$PIN" conns --json | jq '[.[].unread_bytes] | add')
	log "redirected bytes unread before uninstall: $unread"
	[ "$unread" -gt 0 ] || die "nothing queued: the test proves nothing"
	stop_daemon TERM
	out=$("$LOOPLESS" --pin-dir "$PIN" uninstall --timeout 1 2>&1)
	rc=$?
	log "$out"
	[ $rc -eq 1 ] || die "uninstall with a sleeping reader: exit $rc, expected 1"
	grep -q "still unread" <<<"$out" || die "no clear message: $out"
	[ -e "$PIN/sock_hash" ] || die "pins removed although bytes were unread"
	bpftool cgroup show "$CG" | grep -q sock_ops && die "still attached after uninstall"
	"$LOOPLESS" --pin-dir "$PIN" uninstall --timeout 30 || die "second uninstall failed"
	[ ! -e "$PIN" ] || die "$PIN still exists"
	wait $pid || die "bytes lost across uninstall: $(cat "$TMP/pair")"
	log "$(cat "$TMP/pair")"
}
