#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make demo: one local connection over 127.0.0.1 without and with loopless,
# in a netns, cgroup and pin dir of its own (removed at the end), showing
# what lo carried, the throughput, and loopless's view (conns, stats).
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
source tests/lib.sh
[ "$(id -u)" -eq 0 ] || die "the demo needs root (BPF, netns, cgroups)"
env_setup demo

BYTES=256M
echo "== loopless demo: $BYTES over 127.0.0.1 in netns $NS"
start_daemon
echo "looplessd attached to $CG, pins in $PIN"

run() { # run LABEL CGROUP
	local rx0 out
	rx0=$(lo_rx)
	out=$(in_ns_cg "$NS" "$2" "$LLTRAFFIC" pair --connect 127.0.0.1 --bytes $BYTES) ||
		die "transfer failed: $out"
	printf '%-22s %8s MB/s  lo rx packets: %6d   (%s)\n' "$1" \
		"$(awk '{printf "%.0f", $1 / 8}' <<<"$(kv "$out" mbps)")" $(($(lo_rx) - rx0)) \
		"every byte verified"
}
run "plain TCP (no cgroup)" ""
run "loopless (in cgroup)" "$CG"

echo
echo "== an open connection, as loopless conns shows it"
in_ns_cg "$NS" "$CG" "$LLTRAFFIC" hold --connect 127.0.0.1 --port 7400 \
	--ready-file "$TMP/ready" --resume-file "$TMP/resume" >/dev/null &
hold=$!
for _ in $(seq 100); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
"$LOOPLESS" --pin-dir "$PIN" conns
touch "$TMP/resume"
wait $hold

echo
echo "== loopless stats"
"$LOOPLESS" --pin-dir "$PIN" stats
echo
echo "(everything made for the demo is removed on exit)"
