# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Integration tests, the datapath under load: the bench end to end,
# backpressure, request/response staying redirected, uninstall in flight,
# leaving and re-entering the map.

t_bench_smoke() {
	local out="$TMP/bench" m n plain_min redir_max before after
	local modes="lo redirect-lo localip redirect-localip lo6 redirect-lo6 uds pipe"
	before=$(ip netns list | grep -c '^loopless-bench-')
	bench/run.sh --quick --build "$BUILD" --duration 0.03 --repeat 2 --pairs 300 \
		--out "$out" >"$TMP/summary.txt" 2>"$TMP/bench.err" ||
		die "bench/run.sh failed: $(grep -v '^\[' "$TMP/bench.err" | tail -3)"
	jq -e '.machine.kernel and .machine.loopless_version and .options.repeat == 2' \
		"$out/results.json" >/dev/null || die "results.json: machine facts or options missing"
	n=$(jq '[.samples[] | select(.error != null)] | length' "$out/results.json")
	[ "$n" -eq 0 ] || die "$n measurements failed: $(jq -c '.samples[] | select(.error)' \
		"$out/results.json" | head -3)"
	for m in $modes; do
		for w in rr stream crr; do
			[ "$w/$m" = crr/pipe ] && continue
			n=$(jq --arg m "$m" --arg w "$w" \
				'[.samples[] | select(.mode == $m and .workload == $w)] | length' \
				"$out/results.json")
			[ "$n" -ge 2 ] || die "results.json: $w $m has $n samples"
		done
	done
	for m in lo redirect-lo; do
		jq -e --arg m "$m" '[.aggregate[] | select(.workload == "scale" and .mode == $m)][0]
			| .pairs.med == 300 and .map_empty_all == true' "$out/results.json" \
			>/dev/null || die "scale $m: missing or the map did not empty"
	done
	jq -e '[.aggregate[] | select(.workload == "scale" and .mode == "redirect-lo")][0]
		| .map_sockets.med >= 600 and .sample_redirected_bytes.med == .sample_bytes.med
		  and .sample_lo_rx.max == 0' "$out/results.json" >/dev/null ||
		die "scale redirect-lo: map fill or sample redirection wrong"
	# Ratios: to lo for every (workload, size) lo ran in, to the plain mode for redirect-*.
	n=$(jq '[.aggregate[] | select(.workload != "scale" and .ratio_lo == null)] | length' \
		"$out/results.json")
	[ "$n" -eq 0 ] || die "$n aggregates without a ratio to lo"
	n=$(jq '[.aggregate[] | select((.mode | startswith("redirect-")) and .ratio_plain == null)]
		| length' "$out/results.json")
	[ "$n" -eq 0 ] || die "$n redirect aggregates without a ratio to their plain mode"
	# Path proof, per rr measurement: request/response always stays
	# redirected. Streams may use TCP by design (a reader that lags, small
	# writes), so their lo counts are reported, not bounded.
	plain_min=$(jq '[.samples[] | select(.workload == "rr" and
		(.mode == "lo" or .mode == "localip" or .mode == "lo6")) | .lo_rx] | min' \
		"$out/results.json")
	redir_max=$(jq '[.samples[] | select(.workload == "rr" and
		(.mode | startswith("redirect-"))) | .lo_rx] | max' "$out/results.json")
	log "lo packets per rr measurement: plain TCP >= $plain_min, redirected <= $redir_max"
	[ "$redir_max" -le 20 ] || die "a redirect rr measurement moved $redir_max packets over lo"
	[ "$plain_min" -ge $((10 * (redir_max + 1))) ] ||
		die "plain TCP lo delta $plain_min is not far above redirected $redir_max"
	# Every rr measurement redirected. Not bounded: crr, whose request and
	# response are each connection's first bytes, which take TCP (their
	# readers only looked: they might splice); streams, which also start on
	# TCP for that reason and return once their reader has caught up, or
	# never in a short measurement whose reader lags (as before it, 0-94 %
	# of a 1 s 64 KiB stream on two CPUs, measured on main).
	n=$(jq '[.samples[] | select((.mode | startswith("redirect-")) and .workload == "rr"
		and (.redirected_bytes // 0) == 0)] | length' "$out/results.json")
	[ "$n" -eq 0 ] || die "$n redirect rr measurements redirected no bytes"
	for m in latency throughput cpu crr; do
		[ -s "$out/$m.png" ] || die "$m.png missing or empty"
		[ "$(head -c 8 "$out/$m.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
			die "$m.png is not a PNG"
	done
	head -1 "$out/results.csv" | grep -q '^"seq","rep","mode","workload","size"' ||
		die "results.csv: no header"
	n=$(($(wc -l <"$out/results.csv") - 1))
	[ "$n" -eq "$(jq '.samples | length' "$out/results.json")" ] ||
		die "results.csv: $n rows for $(jq '.samples | length' "$out/results.json") samples"
	for m in "## rr" "## stream" "## crr" "## scale" "## Goals"; do
		grep -q "^$m" "$TMP/summary.txt" || die "summary on stdout lacks \"$m\""
	done
	grep '^| rr 64 B p50: redirect-lo\|^| stream 64 KiB\|^| crr: redirect-lo' "$TMP/summary.txt" |
		while read -r m; do log "$m"; done
	# The remote modes, asked for by name: a server in a second netns over a
	# veth. loopless sees every redirect-remote connection and redirects none
	# of it; the traffic crosses the veth, not lo; remote is out of its reach.
	bench/run.sh --quick --build "$BUILD" --modes remote,redirect-remote --sizes 64K \
		--workloads rr,stream,crr --duration 0.03 --repeat 2 --no-plots --out "$out-remote" \
		>"$TMP/summary-remote.txt" 2>"$TMP/bench-remote.err" ||
		die "bench/run.sh (remote) failed: $(grep -v '^\[' "$TMP/bench-remote.err" | tail -3)"
	n=$(jq '[.samples[] | select(.error == null)] | length' "$out-remote/results.json")
	[ "$n" -eq 12 ] || die "remote: $n of 12 measurements succeeded"
	jq -e '[.aggregate[] | select(.mode == "redirect-remote")]
		| length == 3 and all(.ratio_plain != null)' "$out-remote/results.json" >/dev/null ||
		die "remote: redirect-remote aggregates or their ratios to remote missing"
	jq -e '[.samples[] | select(.mode == "redirect-remote")] | all(.redirected_bytes == 0)' \
		"$out-remote/results.json" >/dev/null ||
		die "remote: loopless redirected bytes to a peer in another netns"
	jq -e '[.samples[]] | all(.dev_rx > 0 and .lo_rx <= 20)' "$out-remote/results.json" \
		>/dev/null || die "remote: the traffic did not cross the veth"
	# Seen: put in the map (provisionally) or skipped, at least once per connection.
	jq -e '[.samples[] | select(.workload == "crr")]
		| all(((.sockets_inserted // 0) + (.skipped_remote // 0)) as $seen
		      | if .mode == "redirect-remote" then $seen >= .conns else $seen == 0 end)' \
		"$out-remote/results.json" >/dev/null ||
		die "remote: loopless did not see every redirect-remote connection, or saw remote ones"
	grep -q '^## remote' "$TMP/summary-remote.txt" &&
		grep -q '^| remote crr 64 B: redirect-remote / remote ' "$TMP/summary-remote.txt" ||
		die "summary lacks the remote table or its goal"
	grep '^| remote crr' "$TMP/summary-remote.txt" | while read -r m; do log "$m"; done
	# The mesh workload, asked for by name: app -> sidecar -> node -> sidecar -> app.
	bench/run.sh --quick --build "$BUILD" --workloads mesh --mesh-rr-sizes 64 \
		--duration 0.2 --repeat 2 --no-plots --out "$out-mesh" \
		>"$TMP/summary-mesh.txt" 2>"$TMP/bench-mesh.err" ||
		die "bench/run.sh (mesh) failed: $(grep -v '^\[' "$TMP/bench-mesh.err" | tail -3)"
	n=$(jq '[.samples[] | select(.error == null)] | length' "$out-mesh/results.json")
	[ "$n" -eq 8 ] || die "mesh: $n of 8 measurements succeeded"
	jq -e '[.aggregate[] | select(.mode == "redirect-mesh")]
		| length == 2 and all(.ratio_plain != null)' "$out-mesh/results.json" >/dev/null ||
		die "mesh: redirect-mesh aggregates or their ratios to mesh missing"
	jq -e '[.samples[] | select(.mode == "redirect-mesh")]
		| all(.counters.pairs == 2 and .skipped_remote == 2 and .redirected_bytes > 0)' \
		"$out-mesh/results.json" >/dev/null || die "mesh: loopless did not pair exactly the two local hops"
	jq -e '[.samples[] | select(.mode == "mesh")] | all(.redirected_bytes == 0)' \
		"$out-mesh/results.json" >/dev/null || die "mesh: bytes redirected in the plain mode"
	# A sidecar reads only once bytes came, so each hop leaves the map at its
	# first request and is back within milliseconds: some round trips of each
	# sample take lo, a fixed few hundred packets (measured 166-594 per 200 ms
	# sample; plain: every one, 4900-5900). With 50 ms samples (plain ~850-
	# 1500) the same transient broke a 2x bound, with or without d818a1a.
	jq -e '[.samples[] | select(.workload == "rr")] as $s
		| ([$s[] | select(.mode == "mesh") | .lo_rx] | min) as $plain
		| $s | all(.dev_rx > 0 and if .mode == "mesh" then .lo_rx > 100 and .lo_rx_b > 100
		      else .lo_rx * 4 < $plain and .lo_rx_b * 4 < $plain end)' \
		"$out-mesh/results.json" >/dev/null ||
		die "mesh: lo packets of the pods do not prove the path"
	grep -q '^## mesh' "$TMP/summary-mesh.txt" || die "mesh: summary lacks its section"
	grep '^| mesh ' "$TMP/summary-mesh.txt" | while read -r m; do log "$m"; done
	after=$(ip netns list | grep -c '^loopless-bench-')
	[ "$after" -le "$before" ] || die "bench/run.sh left a network namespace behind"
}

# A reader that sleeps while a writer streams 1 GiB: loopless must not let
# the kernel queue more than twice what plain TCP queues (redirected bytes
# are not limited by SO_RCVBUF; loopless hands a stalled reader's writer to
# TCP's flow control). Measured from the sockets themselves: receive queue +
# write queue (SO_MEMINFO), plus the redirected queue (FIONREAD) for loopless.
# --greet: the reader took a byte before it sleeps, so loopless redirects
# into it (a reader that only looked gets TCP).
t_backpressure() {
	local out plain ll f0
	start_daemon
	out=$(pair_checked "$NS" "" --connect 127.0.0.1 --bytes 1G --reader-delay 3 --greet)
	plain=$(kv "$out" peak_rw)
	f0=$(counter fallbacks)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 1G --reader-delay 3 --greet)
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
		# All but the first request and the first response: each takes
		# TCP, before its reader has been seen taking bytes (ll_recv).
		[ $(($(counter redirected_msgs) - m0)) -ge 39998 ] ||
			die "rr $size: $(($(counter redirected_msgs) - m0)) messages redirected, expected 39998"
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
	pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 96M --reader-delay 4 --greet >"$TMP/pair" &
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

# A reader that keeps falling behind and catching up: it sleeps 20 ms after
# every MiB while the writer goes on at 32 MiB/s (the reader averages ~50
# MiB/s; its SO_RCVBUF is 64 KiB, so its queue limit is 256 KiB while it
# sleeps). The direction falls back to TCP in the map, and after
# reader_idle_ms (1 ms here) without catching up the pair leaves (the
# lossless protocol, while the bytes keep coming); looplessd puts it back
# once the reader has caught up (reenter_min_ms 1). Every byte arrives in
# order (a re-entry that let the writer redirect at once reordered bytes
# here), no reader sees an error, and the pair cycles: measured 3-13 leaves
# in the 2 s (each short stay makes its next wait longer).
t_path_switching() {
	local st0 st1 out
	printf '[daemon]\ncgroup = %s\n[datapath]\nqueue_limit = 65536\nreader_idle_ms = 1\nreenter_min_ms = 1\n' \
		"$CG" >"$TMP/conf"
	start_daemon --config "$TMP/conf"
	st0=$(stat_json)
	out=$(pair_checked "$NS" "$CG" --connect 127.0.0.1 --bytes 64M --chunk 1M --rate 32M --rcvbuf 64K \
		--reader-stall 1M:20)
	st1=$(stat_json)
	d() { echo $(($(jq -r ".$1" <<<"$st1") - $(jq -r ".$1" <<<"$st0"))); }
	log "$out"
	log "cycles: $(d leaves_lag) leaves (reader behind), $(d sockets_left) sockets out," \
		"$(d reentered) back in, $(d returns) returns; redirected $(d redirected_bytes) bytes"
	[ "$(d app_visible_errors)" -eq 0 ] || die "app_visible_errors grew by $(d app_visible_errors)"
	[ "$(d leaves_lag)" -ge 2 ] || die "only $(d leaves_lag) leaves"
	[ "$(d reentered)" -ge 4 ] || die "only $(d reentered) sockets back in"
	[ "$(d redirected_bytes)" -ge $((1 << 20)) ] ||
		die "only $(d redirected_bytes) bytes redirected"
}
