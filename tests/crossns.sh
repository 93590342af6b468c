# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Pod to pod on one node (cross_netns): the mesh topology of tests/mesh-lib.sh
# without sidecars, pods A and B routed through the node's netns. Sourced by
# tests/run.sh with tests/lib.sh and the other test files.

# crossns_start: the topology and a daemon with cross_netns on, after one
# pass over the namespaces' addresses (looplessd reads them every second).
crossns_start() {
	mesh_setup
	printf '[datapath]\ncross_netns = true\n' >"$TMP/cross.conf"
	start_daemon --cgroup "$CG" --config "$TMP/cross.conf"
	sleep 1.2
}

# crossns_flows NAME: a stream and request/responses from pod A to pod B,
# to its IPv4 and IPv6 addresses and through its service address (DNATed on
# the node), each verified byte for byte.
crossns_flows() {
	mesh_flows "$1-v4" 1 "$MESH_A" "$MESH_B" 8080 "$MESH_B4" 8080
	mesh_flows "$1-v6" 1 "$MESH_A" "$MESH_B" 8080 "$MESH_B6" 8080
	mesh_flows "$1-svc" 1 "$MESH_A" "$MESH_B" 8080 "$MESH_VIP_B4" 80
}

# Plain (pods outside $CG), then loopless: the veth hop redirected, pod B's
# eth0 sees about the handshakes and teardowns only.
t_crossns_pods() {
	local pass r0 p0 v0 b0 red pairs rx_plain rx_ll pct
	crossns_start
	for pass in plain loopless; do
		MESH_APP_CG=''
		[ "$pass" = plain ] || MESH_APP_CG=$CG
		r0=$(counter redirected_bytes) p0=$(counter pairs_cross_netns)
		v0=$(mesh_veth_rx) b0=$MESH_LOCAL_BYTES
		crossns_flows "$pass"
		red=$(($(counter redirected_bytes) - r0))
		pairs=$(($(counter pairs_cross_netns) - p0))
		if [ "$pass" = plain ]; then
			rx_plain=$(($(mesh_veth_rx) - v0))
			[ "$red" -eq 0 ] || die "plain pass: $red bytes redirected"
		else
			rx_ll=$(($(mesh_veth_rx) - v0))
		fi
	done
	pct=$((red * 100 / (MESH_LOCAL_BYTES - b0)))
	log "pod A -> pod B (v4, v6, service): $pairs cross-namespace pairs, redirected $red of" \
		"$((MESH_LOCAL_BYTES - b0)) bytes ($pct %); pod B eth0 rx packets plain $rx_plain" \
		"loopless $rx_ll"
	[ "$pairs" -ge 6 ] || die "$pairs cross-namespace pairs for 6 connections"
	[ "$pct" -ge 90 ] || die "only $pct % redirected"
	[ $((rx_ll * 10)) -le "$rx_plain" ] ||
		die "pod B's eth0 received $rx_ll packets with loopless, $rx_plain plain (> 10 %)"
}

# A third namespace adds pod B's address to its own device and listens on
# its port: pod B's address is then in two namespaces, owned by neither, so
# new connections to it stay on TCP (correct, byte for byte) and the third
# namespace gets nothing; once it lets go, pod B's connections pair again.
t_crossns_hijack() {
	local h r0 s0 b0 red pct
	crossns_start
	# shellcheck disable=SC2034 # read by mesh_flow_start
	MESH_APP_CG=$CG
	add_netns h
	h=$NEW_NS
	ip -n "$h" addr add "$MESH_B4/32" dev lo || die "address in $h"
	in_ns_cg "$h" "$CG" "$LLTRAFFIC" serve --listen 0.0.0.0 --port 8080 --bytes 1M \
		--timeout 60 >"$TMP/hijack.srv" 2>&1 &
	sleep 1.2
	r0=$(counter redirected_bytes) s0=$(counter skipped_not_owner)
	mesh_flows victim 1 "$MESH_A" "$MESH_B" 8080 "$MESH_B4" 8080
	red=$(($(counter redirected_bytes) - r0))
	[ "$red" -eq 0 ] || die "$red bytes redirected to an address two namespaces have"
	[ "$(counter skipped_not_owner)" -gt "$s0" ] || die "skipped_not_owner did not grow"
	[ -z "$(ip netns exec "$h" ss -Htn state established)" ] ||
		die "the third namespace has connections: $(ip netns exec "$h" ss -tn)"
	[ ! -s "$TMP/hijack.srv" ] || die "the third namespace's server: $(cat "$TMP/hijack.srv")"
	log "pod B's address in a third namespace: victims byte-exact on TCP (redirected 0," \
		"skipped_not_owner +$(($(counter skipped_not_owner) - s0))), the third got nothing"
	ip -n "$h" addr del "$MESH_B4/32" dev lo || die "address removal in $h"
	sleep 1.2
	r0=$(counter redirected_bytes) b0=$MESH_LOCAL_BYTES
	mesh_flows after 1 "$MESH_A" "$MESH_B" 8080 "$MESH_B4" 8080
	red=$(($(counter redirected_bytes) - r0))
	pct=$((red * 100 / (MESH_LOCAL_BYTES - b0)))
	log "after it let go: redirected $red of $((MESH_LOCAL_BYTES - b0)) bytes ($pct %)"
	[ "$pct" -ge 90 ] || die "only $pct % redirected once pod B's address had one owner again"
}
