# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# The mesh topology: pods as netns, a node netns with kube-proxy-style service
# DNAT, the mesh's iptables rules (Istio, Linkerd) and llsidecar as the
# sidecar. Sourced by tests/mesh.sh (the mesh tests) and bench/run.sh (the mesh
# workload), after tests/lib.sh and env_setup (it uses add_netns, in_ns_cg,
# die, $NS and $TMP). Every address is in 198.18.0.0/15 (RFC 2544) or
# fd00::/8, inside netns made here; every rule goes into one of them.
#
#   pod A                  node                     pod B
#   eth0 198.18.1.5  ---  veth-a 198.18.1.1
#        fd00:1::5        veth-b 198.18.2.1  ---  eth0 198.18.2.7
#                                fd00:2::1             fd00:2::7

LLSIDECAR=${LLSIDECAR:-$BUILD/llsidecar}

MESH_A4=198.18.1.5
MESH_B4=198.18.2.7
MESH_A6=fd00:1::5
MESH_B6=fd00:2::7
# Service ClusterIPs: svc-b:80 -> pod B:8080, svc-a:80 -> pod A:8080 (a pod's
# own service), svc-b2:80 -> pod B:8081.
MESH_VIP_B4=198.19.0.10
MESH_VIP_A4=198.19.0.11
MESH_VIP_B2_4=198.19.0.12
MESH_VIP_B6=fd00:19::10
MESH_VIP_A6=fd00:19::11
MESH_VIP_B2_6=fd00:19::12

MESH_SC_PIDS=()
MESH_SC_NAMES=()

# mesh_wait_file PATH: up to 5 s for PATH to appear.
mesh_wait_file() {
	local _
	for _ in $(seq 100); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# mesh_nat NS CMD ARGS...: one nat-table rule inside netns NS. Every rule of these
# tests goes through here, so none can land in the host's netns.
mesh_nat() {
	local ns=$1 cmd=$2
	shift 2
	[ -n "$ns" ] || die "nat: no netns given (refusing to touch the host's rules)"
	ip netns exec "$ns" "$cmd" -w -t nat "$@" || die "$cmd -t nat $* in $ns failed"
}

# mesh_veth_up NS DEV ADDR4/LEN ADDR6/LEN: addresses without DAD, so IPv6 works
# at once instead of after a second of tentative state.
mesh_veth_up() {
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0" || die "sysctl in $1"
	ip -n "$1" addr add "$3" dev "$2" || die "addr $3 on $2 in $1"
	ip -n "$1" -6 addr add "$4" dev "$2" nodad || die "addr $4 on $2 in $1"
	ip -n "$1" link set "$2" up
}

# mesh_setup [POD_A_NS]: pod A (POD_A_NS, default $NS), pod B and the node
# (netns made with add_netns), veths, routes and services. Sets MESH_A,
# MESH_B, MESH_NODE.
mesh_setup() {
	MESH_A=${1:-$NS}
	add_netns b
	MESH_B=$NEW_NS
	add_netns node
	MESH_NODE=$NEW_NS
	ip -n "$MESH_NODE" link add veth-a type veth peer name eth0 netns "$MESH_A" ||
		die "veth to pod A"
	ip -n "$MESH_NODE" link add veth-b type veth peer name eth0 netns "$MESH_B" ||
		die "veth to pod B"
	mesh_veth_up "$MESH_NODE" veth-a 198.18.1.1/24 fd00:1::1/64
	mesh_veth_up "$MESH_NODE" veth-b 198.18.2.1/24 fd00:2::1/64
	mesh_veth_up "$MESH_A" eth0 "$MESH_A4/24" "$MESH_A6/64"
	mesh_veth_up "$MESH_B" eth0 "$MESH_B4/24" "$MESH_B6/64"
	# Pods reach each other and the service range through the node (a pod's
	# default route goes to its node in every CNI plugin).
	ip -n "$MESH_A" route add default via 198.18.1.1 || die "route in pod A"
	ip -n "$MESH_A" -6 route add default via fd00:1::1 || die "route6 in pod A"
	ip -n "$MESH_B" route add default via 198.18.2.1 || die "route in pod B"
	ip -n "$MESH_B" -6 route add default via fd00:2::1 || die "route6 in pod B"
	# Forwarding in the node's netns only (the sysctls are per netns).
	ip netns exec "$MESH_NODE" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 || die "forwarding in the node netns"
	mesh_kube_proxy
}

# kube-proxy's part: ClusterIP:80 DNATed to the pod's port in the node's
# netns, as kube-proxy (iptables mode) does in KUBE-SERVICES from PREROUTING
# (pod traffic) and OUTPUT (the node's own). Here rather than in pod A's nat
# OUTPUT: a pod's nat table holds only its mesh's rules, and nat OUTPUT sees
# a connection once, so a DNAT there would end that pass before Istio's
# chain could send the sidecar's own connection back in through 15006 (a
# pod calling its own service). The sidecar's connection to a ClusterIP
# (uid 1337, exempt from the redirect) leaves the pod unchanged and is
# DNATed on the node, so pod B sees pod A -> pod B:8080, as in a cluster.
mesh_kube_proxy() {
	local cmd vip4 vip6 dst4 dst6 svc
	for cmd in iptables ip6tables; do
		mesh_nat "$MESH_NODE" "$cmd" -N KUBE-SERVICES
		mesh_nat "$MESH_NODE" "$cmd" -A PREROUTING -j KUBE-SERVICES
		mesh_nat "$MESH_NODE" "$cmd" -A OUTPUT -j KUBE-SERVICES
	done
	for svc in "$MESH_VIP_B4 $MESH_VIP_B6 $MESH_B4:8080 [$MESH_B6]:8080" \
		"$MESH_VIP_A4 $MESH_VIP_A6 $MESH_A4:8080 [$MESH_A6]:8080" \
		"$MESH_VIP_B2_4 $MESH_VIP_B2_6 $MESH_B4:8081 [$MESH_B6]:8081"; do
		read -r vip4 vip6 dst4 dst6 <<<"$svc"
		mesh_nat "$MESH_NODE" iptables -A KUBE-SERVICES -d "$vip4/32" -p tcp --dport 80 \
			-j DNAT --to-destination "$dst4"
		mesh_nat "$MESH_NODE" ip6tables -A KUBE-SERVICES -d "$vip6/128" -p tcp --dport 80 \
			-j DNAT --to-destination "$dst6"
	done
}

# mesh_istio_rules NS [iptables|ip6tables]: Istio's default sidecar capture
# (istio-iptables with -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*'
# -b '*' -d 15090,15021,15020), both families unless one is given. The uid
# and gid 1337 rules keep the sidecar's own connections out of the redirect,
# except those to a non-loopback address over lo (a pod calling its own
# service: back in through 15006); 127.0.0.6 is the inbound passthrough
# source. Also adds ::6 to lo for IPv6, as istio-iptables does.
mesh_istio_rules() {
	local ns=$1 cmd pass lo p id
	for cmd in ${2:-iptables ip6tables}; do
		if [ "$cmd" = iptables ]; then
			pass=127.0.0.6/32 lo=127.0.0.1/32
		else
			pass=::6/128 lo=::1/128
			ip -n "$ns" -6 addr show dev lo | grep -q 'inet6 ::6/128' ||
				ip -n "$ns" -6 addr add ::6/128 dev lo || die "::6 on lo in $ns"
		fi
		mesh_nat "$ns" "$cmd" -N ISTIO_INBOUND
		mesh_nat "$ns" "$cmd" -N ISTIO_REDIRECT
		mesh_nat "$ns" "$cmd" -N ISTIO_IN_REDIRECT
		mesh_nat "$ns" "$cmd" -N ISTIO_OUTPUT
		mesh_nat "$ns" "$cmd" -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
		mesh_nat "$ns" "$cmd" -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
		mesh_nat "$ns" "$cmd" -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
		mesh_nat "$ns" "$cmd" -A PREROUTING -p tcp -j ISTIO_INBOUND
		# SSH (istio-iptables keeps it out with inbound capture '*'), then the
		# proxy's own ports: metrics, health, merged stats.
		for p in 22 15090 15021 15020; do
			mesh_nat "$ns" "$cmd" -A ISTIO_INBOUND -p tcp --dport "$p" -j RETURN
		done
		mesh_nat "$ns" "$cmd" -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
		mesh_nat "$ns" "$cmd" -A OUTPUT -p tcp -j ISTIO_OUTPUT
		mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT -s "$pass" -o lo -j RETURN
		for id in uid gid; do
			mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT ! -d "$lo" -o lo -p tcp ! --dport 15008 \
				-m owner --$id-owner 1337 -j ISTIO_IN_REDIRECT
			mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT -o lo -m owner ! --$id-owner 1337 -j RETURN
			mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT -m owner --$id-owner 1337 -j RETURN
		done
		mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT -d "$lo" -j RETURN
		mesh_nat "$ns" "$cmd" -A ISTIO_OUTPUT -j ISTIO_REDIRECT
	done
}

# mesh_linkerd_rules NS: linkerd2-proxy-init's default rules, both families:
# inbound TCP to 4143 (but the proxy's admin/tap/control ports), outbound TCP
# to 4140 except the proxy's own (uid 2102) and anything over lo. Its inbound
# proxy connects to the pod's IP itself (llsidecar --inbound-bind none).
mesh_linkerd_rules() {
	local ns=$1 cmd
	for cmd in iptables ip6tables; do
		mesh_nat "$ns" "$cmd" -N PROXY_INIT_REDIRECT
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_REDIRECT -p tcp --match multiport \
			--dports 4190,4191,4567,4568 -j RETURN
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-port 4143
		mesh_nat "$ns" "$cmd" -A PREROUTING -j PROXY_INIT_REDIRECT
		mesh_nat "$ns" "$cmd" -N PROXY_INIT_OUTPUT
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -j RETURN
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_OUTPUT -o lo -j RETURN
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_OUTPUT -p tcp --match multiport --dports 4567,4568 \
			-j RETURN
		mesh_nat "$ns" "$cmd" -A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 4140
		mesh_nat "$ns" "$cmd" -A OUTPUT -j PROXY_INIT_OUTPUT
	done
}

# mesh_nat_hits NS CHAIN: packets that hit CHAIN's REDIRECT rules, both
# families (iptables -L -v counts the first packet of each connection).
mesh_nat_hits() {
	local cmd n=0 c
	for cmd in iptables ip6tables; do
		for c in $(ip netns exec "$1" "$cmd" -w -t nat -L "$2" -v -n -x |
			awk '$3 == "REDIRECT" { print $1 }'); do
			n=$((n + c))
		done
	done
	echo "$n"
}

# ---- sidecars -------------------------------------------------------------

# mesh_sidecar NS CG NAME ARGS...: an llsidecar in pod NS, in cgroup CG (""
# for none), logging its connections to $TMP/sc-NAME.out and problems to
# $TMP/sc-NAME.err; waits until it listens.
mesh_sidecar() {
	local ns=$1 cg=$2 name=$3
	shift 3
	rm -f "$TMP/sc-$name.ready"
	in_ns_cg "$ns" "$cg" "$LLSIDECAR" --verbose --ready-file "$TMP/sc-$name.ready" "$@" \
		>"$TMP/sc-$name.out" 2>"$TMP/sc-$name.err" &
	MESH_SC_PIDS+=("$!")
	MESH_SC_NAMES+=("$name")
	mesh_wait_file "$TMP/sc-$name.ready" ||
		die "sidecar $name did not start: $(cat "$TMP/sc-$name.err")"
}

# mesh_sidecars_end: SIGTERM every sidecar started since the last call and
# wait for it. Returns 0 when each exited 0 having logged no error and reset no
# connection, else 1 with the first problem in MESH_SC_ERROR; all are stopped
# either way. $! of a backgrounded function is the subshell running it: the
# signal goes to the pid the sidecar wrote into its ready file, the wait to the
# subshell.
mesh_sidecars_end() {
	local i pid name rc
	MESH_SC_ERROR=
	for i in "${!MESH_SC_PIDS[@]}"; do
		name=${MESH_SC_NAMES[$i]}
		pid=$(sed -n 's/^pid=//p' "$TMP/sc-$name.ready")
		kill -TERM "$pid" 2>/dev/null
		wait "${MESH_SC_PIDS[$i]}"
		rc=$?
		[ -z "$MESH_SC_ERROR" ] || continue
		if [ $rc -ne 0 ]; then
			MESH_SC_ERROR="sidecar $name exited with $rc: $(cat "$TMP/sc-$name.err")"
		elif [ -s "$TMP/sc-$name.err" ]; then
			MESH_SC_ERROR="sidecar $name: $(cat "$TMP/sc-$name.err")"
		elif grep -q 'closed (reset)' "$TMP/sc-$name.out"; then
			MESH_SC_ERROR="sidecar $name reset a connection: $(grep 'reset' "$TMP/sc-$name.out")"
		fi
	done
	MESH_SC_PIDS=()
	MESH_SC_NAMES=()
	[ -z "$MESH_SC_ERROR" ]
}

# mesh_sidecars_stop: mesh_sidecars_end, dying on its first problem.
mesh_sidecars_stop() { mesh_sidecars_end || die "$MESH_SC_ERROR"; }
