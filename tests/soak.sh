#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Soak test (`make soak`, not part of `make test`): for SECONDS (default 120)
# WORKERS concurrent loops (default 6) open local connections of random sizes
# with random shapes (one way, duplex, early half-close, client-first before
# a late accept, server-first, peer reset, close mid-stream) while looplessd
# is restarted every RESTART seconds (default 4; SIGTERM and SIGKILL in
# turn). The datapath runs with small knobs (queue_limit 64 KiB,
# reader_idle_ms 1, reenter_min_ms 1), and one shape is a duplex stream whose
# readers sleep now and then, so pairs keep leaving the map and coming back
# while they stream (restarts land in the middle of leaves and returns).
# Every stream is verified byte for byte (lltraffic, llprobe). At the end: no
# failure, no EAGAIN a blocking reader saw (app_visible_errors), no socket
# left in the sockhash, the netns's TCP sockets and the kernel's TCP memory
# back to where they started.
#   tests/soak.sh [BUILD_DIR] [SECONDS] [WORKERS] [RESTART]
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
DURATION=${2:-120}
WORKERS=${3:-6}
RESTART=${4:-4}
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root" >&2; exit 1; }
# shellcheck source=tests/lib.sh
source tests/lib.sh
LLPROBE=$BUILD/llprobe
env_setup soak

# tcp_mem: the kernel's TCP memory in pages (/proc/net/sockstat "mem"), and
# the sockets in use in our netns.
tcp_mem() { ip netns exec "$NS" awk '/^TCP:/ { print $NF }' /proc/net/sockstat; }
tcp_inuse() { ip netns exec "$NS" awk '/^TCP:/ { print $3 }' /proc/net/sockstat; }

# worker ID: connections until the deadline; one line per connection in
# $TMP/w.ID ("ok ..." or "FAIL ...").
worker() {
	local id=$1 end=$2 n=0 bytes shape args out rc
	RANDOM=$((id * 7919))
	while [ "$(date +%s)" -lt "$end" ]; do
		n=$((n + 1))
		bytes=$(((RANDOM % 4096 + 1) * (RANDOM % 8 == 0 ? 8192 : 64)))
		shape=$((RANDOM % 10))
		args=(pair --connect 127.0.0.1 --bytes "$bytes" --seed $(((id * 100000 + n) * 2))
			--timeout 60 --tolerate-eagain)
		case $shape in
		0) ;;
		1) args+=(--duplex) ;;
		2) args+=(--s2c-bytes $((bytes * 4))) ;;
		3) args+=(--accept-delay $((RANDOM % 20 + 1))) ;;
		4) args+=(--server-first --accept-delay $((RANDOM % 5))) ;;
		5) args+=(--duplex --chunk $((RANDOM % 65536 + 1))) ;;
		# Leave and come back while streaming: readers that sleep
		# RANDOM ms every 256 KiB, a 64 KiB receive buffer, random writes.
		9) args+=(--duplex --chunk $((RANDOM % 65536 + 1)) --rcvbuf 64K
			--reader-stall "256K:$((RANDOM % 8 + 1))") ;;
		esac
		case $shape in
		6) out=$(in_ns_cg "$NS" "$CG" "$LLPROBE" reset-reader --timeout 30 2>&1) ;;
		7) out=$(in_ns_cg "$NS" "$CG" "$LLPROBE" reset-writer --timeout 30 2>&1) ;;
		8) out=$(in_ns_cg "$NS" "$CG" "$LLPROBE" close-writer --bytes "$bytes" \
			--timeout 30 2>&1) ;;
		*) out=$(in_ns_cg "$NS" "$CG" "$LLTRAFFIC" "${args[@]}" 2>&1) ;;
		esac
		rc=$?
		if [ $rc -eq 0 ]; then
			echo "ok $shape $bytes"
		else
			echo "FAIL shape=$shape bytes=$bytes ${args[*]}: $out"
		fi
	done >"$TMP/w.$id"
}

mem0=$(tcp_mem)
inuse0=$(tcp_inuse)
printf '[daemon]\ncgroup = %s\n[datapath]\nqueue_limit = 65536\nreader_idle_ms = 1\nreenter_min_ms = 1\n' \
	"$CG" >"$TMP/soak.conf"
start_daemon --config "$TMP/soak.conf"
end=$(($(date +%s) + DURATION))
pids=()
for i in $(seq "$WORKERS"); do
	worker "$i" "$end" &
	pids+=($!)
done
restarts=0
while [ "$(date +%s)" -lt "$end" ]; do
	sleep "$RESTART"
	[ "$(date +%s)" -lt "$end" ] || break
	if [ $((restarts % 2)) -eq 0 ]; then stop_daemon TERM; else stop_daemon KILL; fi
	start_daemon --config "$TMP/soak.conf"
	restarts=$((restarts + 1))
done
for p in "${pids[@]}"; do wait "$p"; done

cat "$TMP"/w.* >"$TMP/all"
total=$(wc -l <"$TMP/all")
failed=$(grep -c '^FAIL' "$TMP/all")
bytes=$(awk '$1 == "ok" { s += $3 } END { printf "%.0f\n", s }' "$TMP/all")
stats=$(stat_json)
left=-1
for _ in $(seq 100); do
	left=$("$LOOPLESS" --pin-dir "$PIN" conns --json | jq length)
	[ "$left" -eq 0 ] && [ "$(tcp_inuse)" -le "$inuse0" ] && break
	sleep 0.1
done
mem1=$(tcp_mem)
echo "soak: $DURATION s, $WORKERS workers, $restarts daemon restarts"
echo "soak: $total connections, $failed failed, ~$((bytes >> 20)) MiB requested (one direction)"
echo "soak: counters: $(jq -c '{redirected_bytes, passed_bytes, sockets_inserted, insert_errors, fallbacks, fallbacks_small, returns}' <<<"$stats")"
echo "soak: leaves and returns: $(jq -c '{leaves_reader_unknown, leaves_lag, leaves_small_writes, sockets_left, reentered, never_back_splice, app_visible_errors}' <<<"$stats")"
echo "soak: sockets left in the sockhash: $left; TCP sockets in the netns: $(tcp_inuse) (start $inuse0)"
echo "soak: kernel TCP memory: $mem0 pages before, $mem1 after"
rc=0
[ "$failed" -eq 0 ] || { grep -m5 '^FAIL' "$TMP/all"; rc=1; }
[ "$left" -eq 0 ] || { echo "soak: FAIL: $left sockets left in the sockhash"; rc=1; }
[ "$(jq -r .app_visible_errors <<<"$stats")" -eq 0 ] ||
	{ echo "soak: FAIL: blocking readers saw EAGAIN"; rc=1; }
[ "$(tcp_inuse)" -le "$inuse0" ] || { echo "soak: FAIL: TCP sockets left in the netns"; rc=1; }
# Other tests may run on the host at the same time: allow 1024 pages (4 MiB) of noise.
[ "$mem1" -le $((mem0 + 1024)) ] || { echo "soak: FAIL: TCP memory did not come back"; rc=1; }
[ "$total" -gt 0 ] || rc=1
[ $rc -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $rc
