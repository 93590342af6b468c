# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
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

# 2. A local IP: an address of a veth inside the test's netns. Redirected
# without any configuration (the ends are paired by sequence numbers, and a
# server end is admitted because the handshake came over lo), also between
# two different local addresses; local_addrs is accepted and ignored.
t_local_ip() {
	local r0 rx0 rx1
	ip -n "$NS" link add ll0 type veth peer name ll1
	ip -n "$NS" addr add 203.0.113.1/24 dev ll0
	ip -n "$NS" addr add 203.0.113.2/24 dev ll1
	ip -n "$NS" link set ll0 up
	ip -n "$NS" link set ll1 up
	start_daemon
	r0=$(counter redirected_bytes)
	rx0=$(lo_rx)
	pair_checked "$NS" "$CG" $KEEPUP_DUPLEX --connect 203.0.113.1 --bytes 128M --duplex >/dev/null
	rx1=$(lo_rx)
	assert_redirected "$r0" $((2 * (128 << 20)))
	[ $((rx1 - rx0)) -lt 200 ] || die "lo saw $((rx1 - rx0)) packets (plain TCP: thousands)"
	log "local IP 203.0.113.1, duplex 128M: lo rx delta $((rx1 - rx0))"

	# .2 -> .1: two different addresses of this netns.
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" $KEEPUP --connect 203.0.113.1 --bind 203.0.113.2 --bytes 8M >/dev/null
	assert_redirected "$r0" $((8 << 20))
	log "203.0.113.2 -> 203.0.113.1 redirected, no local_addrs"

	# An old configuration that lists local_addrs still loads.
	stop_daemon TERM
	printf '[daemon]\ncgroup = %s\n[datapath]\nlocal_addrs = 203.0.113.1, 2001:db8::1\n' "$CG" \
		>"$TMP/conf"
	start_daemon --config "$TMP/conf"
	grep -q "local_addrs is no longer needed and is ignored" "$TMP/looplessd.log" ||
		die "no warning for local_addrs"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" $KEEPUP --connect 203.0.113.1 --bind 203.0.113.2 --bytes 8M >/dev/null
	assert_redirected "$r0" $((8 << 20))
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

# remote_transfer NS2 PORT LABEL: 32 MiB duplex between a server in NS2 at
# 198.51.100.2:PORT and a client in $NS, both in $CG, verified by lltraffic.
remote_transfer() {
	local out
	rm -f "$TMP/ready"
	in_ns_cg "$1" "$CG" "$LLTRAFFIC" serve --listen 198.51.100.2 --port "$2" --bytes 32M \
		--duplex --ready-file "$TMP/ready" >"$TMP/serve" 2>&1 &
	for _ in $(seq 100); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	out=$(in_ns_cg "$NS" "$CG" "$LLTRAFFIC" send --connect 198.51.100.2 --port "$2" \
		--bytes 32M --duplex) || die "send ($3): $out"
	wait $! || die "serve ($3): $(cat "$TMP/serve")"
}

# 5. A real remote peer (another netns over veth): not redirected, works.
# Neither end enters the map: the server end's handshake came over the
# veth, and the client end's SYN-ACK advertised the veth's MSS (1460, no
# peer on lo advertises less than LL_LO_MSS_MIN), so it is not even put in
# provisionally.
t_remote_peer() {
	local ns2 r0 s0 l0 p0
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
	l0=$(counter provisional_left)
	p0=$(counter pairs)
	remote_transfer "$ns2" 7100 "MTU 1500"
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "remote traffic was redirected"
	[ "$(counter skipped_remote)" -eq $((s0 + 2)) ] || die "skipped_remote did not count both ends"
	[ "$(counter provisional_left)" -eq "$l0" ] || die "the client end entered the map"
	[ "$(counter pairs)" -eq "$p0" ] || die "a remote connection was paired"
	[ "$(conns_count)" -eq 0 ] || die "sockets left in the map: $("$LOOPLESS" --pin-dir "$PIN" conns)"
	# With lo's MTU on the veth the MSS tells nothing: the client end goes
	# in provisionally and leaves at its first incoming segment, unclaimed.
	ip -n "$NS" link set ll-a mtu 65535
	ip -n "$ns2" link set ll-b mtu 65535
	r0=$(counter redirected_bytes)
	s0=$(counter skipped_remote)
	l0=$(counter provisional_left)
	remote_transfer "$ns2" 7101 "MTU 65535"
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "remote traffic was redirected (MTU 65535)"
	[ "$(counter skipped_remote)" -eq $((s0 + 1)) ] || die "skipped_remote did not count the server end"
	[ "$(counter provisional_left)" -eq $((l0 + 1)) ] || die "the provisional client end did not leave"
	[ "$(conns_count)" -eq 0 ] || die "sockets left in the map: $("$LOOPLESS" --pin-dir "$PIN" conns)"
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

# Upgrade (pitfall 8): a looplessd built from an older commit runs the
# datapath while a duplex stream with a slow reader (it stalls 50 ms every
# 4 MiB) is in flight; this looplessd replaces it. It adopts the pins, swaps
# the programs in place (bpf_link_update), adds the cgroup/setsockopt link,
# and the stream goes on byte-exact and redirected: the older version keyed
# its sockhash by the 4-tuple, so that map is kept as legacy_sock_hash with
# the older sk_msg program redirecting its sockets until they close, while
# new connections are paired by sequence numbers in the new map. Once the
# old connection has closed, the next start removes the legacy map.
# UPGRADE_FROM: the older commits: the last before the counters map grew to
# LL_CNT_SLOTS and ll_setsockopt came, and the last with 4-tuple keys.
# And the last before the reader rules (sequence-number keys, a smaller
# peers record).
UPGRADE_SEQ_KEYS=9289e7e
UPGRADE_FROM=${UPGRADE_FROM:-48808b6 d775c98 $UPGRADE_SEQ_KEYS}
upgrade_from() {
	local from=$1 old=$TMP/old-$1 pid r0 p0 rx0
	mkdir -p "$old"
	git archive "$from" | tar -x -C "$old" || die "git archive $from"
	make -C "$old" -j2 build/looplessd >"$TMP/old-build.log" 2>&1 ||
		die "building $from: $(tail -3 "$TMP/old-build.log")"
	LOOPLESSD=$old/build/looplessd start_daemon
	log "old: $("$old/build/looplessd" --version)"
	rx0=$(lo_rx)
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 96M --duplex --rate 32M \
		--reader-stall 4M:50 >"$TMP/pair" &
	pid=$!
	sleep 1
	stop_daemon TERM
	start_daemon
	log "new: $("$LOOPLESSD" --version)"
	grep -q "adopted datapath" "$TMP/looplessd.log" ||
		die "the new looplessd did not adopt the pins: $(tail -5 "$TMP/looplessd.log")"
	if [ "$from" = "$UPGRADE_SEQ_KEYS" ]; then
		# Same sockhash keys: the map is adopted as it is; only peers (a
		# larger record) is replaced, the old programs keep theirs.
		grep -q "replaced the pinned peers map" "$TMP/looplessd.log" ||
			die "the older peers map was not replaced: $(tail -5 "$TMP/looplessd.log")"
	else
		grep -q "kept the older version's sockhash" "$TMP/looplessd.log" ||
			die "the 4-tuple sockhash was not kept aside: $(tail -5 "$TMP/looplessd.log")"
	fi
	[ "$(bpftool cgroup show "$CG" | grep -c sock_ops)" -eq 1 ] || die "sock_ops attachments != 1"
	[ "$(bpftool cgroup show "$CG" | grep -c setsockopt)" -eq 1 ] || die "no ll_setsockopt link"
	if [ "$from" != "$UPGRADE_SEQ_KEYS" ]; then
		"$LOOPLESS" --pin-dir "$PIN" conns --json |
			jq -e 'map(select(.state == "legacy")) | length == 2' >/dev/null ||
			die "conns does not show the old pair: $("$LOOPLESS" --pin-dir "$PIN" conns)"
	fi
	# A new connection while the old one streams: paired in the new map.
	r0=$(counter redirected_bytes)
	p0=$(counter pairs)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 16M >/dev/null
	assert_redirected "$r0" $((16 << 20))
	[ "$(counter pairs)" -eq $((p0 + 1)) ] || die "the new connection was not paired"
	wait $pid || die "stream across the upgrade: $(cat "$TMP/pair")"
	log "across the upgrade from $from: $(cat "$TMP/pair"); lo packets $(($(lo_rx) - rx0))"
	# Redirected before, during and after (plain TCP: ~100 000 packets).
	[ $(($(lo_rx) - rx0)) -lt 2000 ] || die "lo saw $(($(lo_rx) - rx0)) packets across the upgrade"
	wait_conns 0
	stop_daemon TERM
	start_daemon
	[ "$from" = "$UPGRADE_SEQ_KEYS" ] ||
		grep -q "removed the older version's sockhash" "$TMP/looplessd.log" ||
		die "the empty legacy sockhash was not removed"
	[ ! -e "$PIN/legacy_sock_hash" ] || die "legacy_sock_hash still pinned"
	stop_daemon TERM
	"$LOOPLESS" --pin-dir "$PIN" uninstall >/dev/null || die "uninstall after the upgrade"
}

t_upgrade() {
	local from ran=0
	for from in $UPGRADE_FROM; do
		if ! git cat-file -e "$from^{commit}" 2>/dev/null; then
			[ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ] ||
				die "commit $from is not in this repository"
			log "not tested: shallow clone, $from is not in it (git fetch --unshallow)"
			continue
		fi
		upgrade_from "$from"
		ran=$((ran + 1))
	done
	[ $ran -gt 0 ] || { log "SKIP: no older version in this shallow clone"; exit 77; }
}

# 8. `loopless uninstall` while a connection is open and idle: it keeps
# working, and nothing of ours is left.
t_uninstall_idle() {
	local pid out progs map p
	start_daemon
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 32M --duplex --pause-after 8M \
		--ready-file "$TMP/ready" --resume-file "$TMP/resume" >"$TMP/pair" &
	pid=$!
	for _ in $(seq 200); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	[ -e "$TMP/ready" ] || die "pair never paused"
	# A pair that left while it streamed (a lagging reader: 1 run in 8 here)
	# is put back once it is quiet, by a walk at most a second apart.
	for _ in $(seq 60); do
		[ "$("$LOOPLESS" --pin-dir "$PIN" conns --json | jq length)" -ge 2 ] && break
		sleep 0.05
	done
	[ "$("$LOOPLESS" --pin-dir "$PIN" conns --json | jq length)" -ge 2 ] ||
		die "the paused pair is not in the sockhash"
	# Ours by id, not by name: other datapaths may be loaded on the host.
	progs=$(for p in ll_sockops ll_sk_msg; do
		bpftool prog show pinned "$PIN/$p" | sed -n 's/^\([0-9]*\):.*/\1/p'; done)
	map=$(bpftool map show pinned "$PIN/sock_hash" | sed -n 's/^\([0-9]*\):.*/\1/p')
	[ -n "$progs" ] && [ -n "$map" ] || die "cannot find the pinned programs and sockhash"
	stop_daemon TERM
	"$LOOPLESS" --pin-dir "$PIN" uninstall || die "uninstall failed"
	[ ! -e "$PIN" ] || die "$PIN still exists"
	bpftool cgroup show "$CG" | grep -q sock_ops && die "sock_ops still attached to $CG"
	touch "$TMP/resume"
	wait $pid || die "connection broke after uninstall: $(cat "$TMP/pair")"
	"$LOOPLESS" --pin-dir "$PIN" status >/dev/null && die "status says attached after uninstall"
	# The programs and maps go once no socket holds them (freed from a
	# work queue after an RCU grace period, so poll).
	loaded() {
		for p in $progs; do bpftool prog show id "$p" >/dev/null 2>&1 && return 0; done
		bpftool map show id "$map" >/dev/null 2>&1
	}
	for _ in $(seq 50); do loaded || break; sleep 0.1; done
	for p in $progs; do
		bpftool prog show id "$p" >/dev/null 2>&1 && die "program $p still loaded"
	done
	bpftool map show id "$map" >/dev/null 2>&1 && die "sockhash $map still exists"
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

# `loopless exec`: a program run through it lands in the served cgroup
# (redirected traffic, counters move), or in a group below it (created); a
# group looplessd does not serve is refused (exit 2), as is exec with no
# datapath (exit 1); CMD's exit status and a signal that kills it pass
# through; a missing CMD is 127 as with env(1).
t_exec() {
	local served="$CG/served" other="$CG/other" r0 out rc
	mkdir "$served" "$other" || die "mkdir"
	start_daemon --cgroup "$served"
	# Before ip netns exec, whose fresh /sys hides bpffs and cgroup2.
	ex() {
		local a=()
		[ "$1" != --group ] || { a=(--group "$2"); shift 2; }
		shift # --
		"$LOOPLESS" --pin-dir "$PIN" exec "${a[@]}" -- ip netns exec "$NS" "$@"
	}
	r0=$(counter redirected_bytes)
	out=$(ex -- "$LLTRAFFIC" pair $KEEPUP --connect 127.0.0.1 --bytes 8M) || die "exec pair: $out"
	log "exec -- lltraffic pair: $out (redirected +$(($(counter redirected_bytes) - r0)))"
	[ $(($(counter redirected_bytes) - r0)) -ge $(((8 << 20) * 95 / 100)) ] ||
		die "not redirected through loopless exec"
	out=$(ex -- cat /proc/self/cgroup | sed -n 's/^0:://p')
	[ "$CG2$out" = "$served" ] || die "exec ran in $out, not $served"
	out=$(ex --group "${served#"$CG2"/}/app" -- cat /proc/self/cgroup | sed -n 's/^0:://p')
	[ "$CG2$out" = "$served/app" ] || die "exec --group below the served one ran in $out"
	[ -d "$served/app" ] || die "the group below was not created"
	out=$(ex --group "$other" -- true 2>&1)
	rc=$?
	[ $rc -eq 2 ] || die "exec into an unserved group: exit $rc, not 2: $out"
	[ "$(wc -l <<<"$out")" = 1 ] && grep -q "is not a cgroup looplessd serves" <<<"$out" ||
		die "unclear error: $out"
	grep -q "(it serves $served)" <<<"$out" || die "the error does not name the served cgroup: $out"
	log "unserved group: $out"
	ex -- sh -c 'exit 7'
	rc=$?
	[ $rc -eq 7 ] || die "CMD's exit status 7 came back as $rc"
	ex -- sh -c 'kill -TERM $$' 2>/dev/null
	rc=$?
	[ $rc -eq $((128 + 15)) ] || die "CMD killed by SIGTERM: exit $rc, not 143"
	out=$("$LOOPLESS" --pin-dir "$PIN" exec -- /nonexistent/cmd 2>&1)
	rc=$?
	[ $rc -eq 127 ] && grep -q "No such file" <<<"$out" || die "missing CMD: exit $rc: $out"
	stop_daemon TERM
	"$LOOPLESS" --pin-dir "$PIN" uninstall >/dev/null || die "uninstall"
	out=$(ex -- true 2>&1)
	rc=$?
	[ $rc -eq 1 ] && grep -q "no loopless datapath is pinned" <<<"$out" ||
		die "exec with no datapath: exit $rc: $out"
	log "no datapath: $out"
}

# The CLI's machine output has the documented keys, and conns lists a live
# pair with its socket cookies.
t_cli() {
	local keys pid pd
	start_daemon
	keys=$(stat_json | jq -r 'keys[]' | sort | tr '\n' ' ')
	for k in redirected_msgs redirected_bytes passed_msgs sockets_inserted insert_errors; do
		grep -qw "$k" <<<"$keys" || die "stats --json lacks $k"
		[ "$(stat_json | jq ".$k | type")" = '"number"' ] || die "$k is not a number"
	done
	"$LOOPLESS" --pin-dir "$PIN" status --json | jq -e '.attached == true' >/dev/null ||
		die "status --json not attached"
	"$LOOPLESS" --pin-dir "$PIN" status | grep -q "$CG" || die "status does not name the cgroup"
	"$LOOPLESS" --pin-dir "$PIN" status --json |
		jq -e '.cgroups[0].processes >= 0 and (.cgroups[0].units | type) == "array"' \
			>/dev/null || die "status --json: no processes and units per cgroup"
	# Every string goes through one JSON writer: quotes, backslashes and
	# control characters in a value still give valid JSON, value intact.
	pd=$'/tmp/no"such\\pin\tdir'
	"$LOOPLESS" --pin-dir "$pd" status --json | jq -e --arg p "$pd" '.pin_dir == $p' >/dev/null ||
		die "status --json with a quote in the pin dir: $("$LOOPLESS" --pin-dir "$pd" status --json)"
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --port 7300 --bytes 1M --pause-after 1M \
		--ready-file "$TMP/ready" --resume-file "$TMP/resume" >/dev/null &
	pid=$!
	for _ in $(seq 200); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
	"$LOOPLESS" --pin-dir "$PIN" conns --json >"$TMP/conns"
	jq -e 'map(select(.local == "127.0.0.1:7300" or .remote == "127.0.0.1:7300")) | length == 2' \
		"$TMP/conns" >/dev/null || die "conns does not show both ends: $(cat "$TMP/conns")"
	jq -e 'all(.[]; .cookie > 0 and .netns_cookie > 0 and .family == "ipv4")' "$TMP/conns" \
		>/dev/null || die "conns fields: $(cat "$TMP/conns")"
	# The two ends name each other, with their roles and their process.
	jq -e '(map(select(.role == "client")) | length == 1) and
		(map(select(.role == "server")) | length == 1) and
		all(.[]; .state == "paired" and .comm == "lltraffic" and .pid > 0) and
		(.[0].peer_cookie == .[1].cookie) and (.[1].peer_cookie == .[0].cookie)' \
		"$TMP/conns" >/dev/null || die "conns pairing: $(cat "$TMP/conns")"
	"$LOOPLESS" --pin-dir "$PIN" conns >"$TMP/conns.txt"
	log "conns:"
	sed 's/^/    /' "$TMP/conns.txt"
	grep -q "^[0-9]* *client lltraffic\[[0-9]*\] .*-> 127.0.0.1:7300 " "$TMP/conns.txt" &&
		grep -q "^  <=> *server lltraffic\[[0-9]*\] *127.0.0.1:7300 <- " "$TMP/conns.txt" ||
		die "conns table: $(cat "$TMP/conns.txt")"
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
	grep -q "missing capability CAP_BPF" <<<"$out" || die "unprivileged: \"$out\""
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

# Without cgroup v2 (a mount namespace where it is unmounted): one line that
# says so and how to mount it, exit 2, nothing pinned, for a run and --check.
t_no_cgroup2() {
	local mnt out rc args
	mnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
	[ -n "$mnt" ] || die "no cgroup2 mount to hide"
	for args in "--cgroup $CG" "--check"; do
		# shellcheck disable=SC2086 # args is two words on purpose
		out=$(unshare -m sh -c 'umount -l "$0" && exec "$@"' "$mnt" \
			"$LOOPLESSD" --config /dev/null --pin-dir "$PIN" $args 2>&1)
		rc=$?
		[ $rc -eq 2 ] || die "without cgroup2 ($args): exit $rc: $out"
		[ "$(wc -l <<<"$out")" -eq 1 ] || die "without cgroup2: more than one line: $out"
		grep -q "cgroup v2 is not mounted" <<<"$out" || die "without cgroup2: \"$out\""
		[ ! -e "$PIN" ] || die "$PIN created without cgroup2"
	done
	log "$out"
}
