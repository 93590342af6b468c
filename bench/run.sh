#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# bench/run.sh: local TCP over 127.0.0.1, a local IP and ::1, with and without loopless
# redirection, against AF_UNIX sockets and pipes, and (--modes remote,redirect-remote) what
# loopless costs a peer in another netns that it must not accelerate, and (--workloads mesh) a
# request crossing two Istio-shaped pods: app -> sidecar -> node -> sidecar -> app. Every
# measurement is one run of build/loopless-bench; modes are interleaved and repeated, medians
# and ratios to lo are taken within the run. See bench/README.md for the method, --help for
# the options.
set -u
cd "$(dirname "$0")/.." || exit 2
PROG=run.sh

# The default (quick) run takes its minute already; the remote modes would add 54
# measurements (~11 s) to it, so they are asked for by name.
DEFAULT_MODES="lo redirect-lo localip redirect-localip lo6 redirect-lo6 uds pipe"
ALL_MODES="$DEFAULT_MODES remote redirect-remote redirect-crossns"
# mesh is asked for by name too: it builds three more netns with Istio's rules and starts
# two sidecars per measurement, ~7 s more for the quick run.
DEFAULT_WORKLOADS="rr stream crr scale"
ALL_WORKLOADS="$DEFAULT_WORKLOADS mesh"
# The mesh workload's own modes (--modes does not apply to it): mesh, all plain TCP;
# redirect-mesh, both apps and both sidecars in the loopless cgroup.
MESH_MODES="mesh redirect-mesh"
MESH_PORT=8080 # app B's port: svc-b (tests/mesh-lib.sh) is DNATed to pod B:8080 on the node
LOCALIP=203.0.113.1 # TEST-NET-3, on a veth inside the bench's own netns only
LOCALIP_PEER=203.0.113.2
# remote: 198.18.0.0/15 (RFC 2544, benchmarking) on a veth between the bench netns (client)
# and a second netns of its own (server). Never routed anywhere else.
REMOTE_CLIENT=198.18.10.1
REMOTE_SERVER=198.18.10.2
REMOTE_DEV=llr0 # the client's end; llr1 is the server's

usage() {
	cat <<'EOF'
Usage: bench/run.sh [OPTION]...
Measure local TCP over 127.0.0.1, a local IP and ::1 with and without loopless redirection,
against AF_UNIX stream sockets and pipes, what loopless costs a peer in another netns
(remote modes) and what it gives a request through two service-mesh sidecars (mesh workload),
in network namespaces, a cgroup and a bpffs pin directory of its own (all removed at the end,
also on Ctrl-C). Needs root.

Modes (--modes):
  lo                TCP over 127.0.0.1, not in the loopless cgroup (the baseline)
  localip           TCP over 203.0.113.1, an address of a veth inside the bench netns
  lo6               TCP over ::1
  redirect-lo, redirect-localip, redirect-lo6
                    the same, run inside the cgroup looplessd is attached to
  uds               AF_UNIX stream sockets          pipe   a pair of pipes (rr, stream)
  remote            TCP from the bench netns (198.18.10.1) to a server in a second netns
                    (198.18.10.2) over a veth: a peer loopless must leave alone
  redirect-remote   the same with both ends in the loopless cgroup: what loopless's
                    programs cost connections they do not accelerate (goal: >= 0.97x remote)
  redirect-crossns  the remote topology with both ends in the cgroup and looplessd's
                    cross_netns on: the hop between two namespaces redirected (goals:
                    rr 64 B p50 <= 0.75x remote, stream 64 KiB >= 2x remote)
                    remote modes are not in the default run (they add ~11 s to it):
                    --modes remote,redirect-remote,redirect-crossns (rr, stream, crr)
Workloads (--workloads):
  rr      ping-pong latency p50/p99/p99.9 and transactions/s, 64 B, 1 KiB, 16 KiB
  stream  one-way throughput and CPU s/GB, writes of 64 B, 1 KiB, 16 KiB, 64 KiB, 1 MiB
  crr     connect + 64 B request/response + close: connections/s
  scale   N concurrent pairs: insert rate, map fill, memory, sample redirected, map empty
          after close (modes lo and redirect-lo unless --scale-modes)
  mesh    app -> sidecar -> (veth, node) -> sidecar -> app: two pods (netns) with Istio's
          iptables rules and llsidecar as uid 1337, the client dialling a service VIP
          that the node DNATs to pod B (tests/mesh-lib.sh). rr (--mesh-rr-sizes) and
          stream (--mesh-stream-sizes; not --sizes) in two modes of its own, whatever
          --modes says: mesh (plain TCP) and redirect-mesh (both apps and both sidecars
          in the loopless cgroup); goals: rr p50 <= 0.85x and stream 64 KiB >= 1.3x
          mesh. Placement: app A with sidecar B, app B with sidecar A, so with --cpus
          split every hop crosses CPUs. Not in the default run (adds ~7 s):
          --workloads mesh

Options:
  -q, --quick            the default: 0.1 s per measurement, 3 repeats, 1000 scale pairs;
                         the whole run takes well under a minute
  -f, --full             2 s per measurement, 5 repeats, 100000 scale pairs (~15 min)
  -m, --modes LIST       comma-separated modes (default: all but remote, redirect-remote)
  -w, --workloads LIST   comma-separated workloads (default: rr,stream,crr,scale; mesh
                         only when named)
  -s, --sizes LIST       message/write sizes for both rr and stream (64,1K,16K,...)
      --rr-sizes LIST    rr sizes only (default 64,1K,16K)
      --stream-sizes LIST
                         stream write sizes only (default 64,1K,16K,64K,1M)
      --mesh-rr-sizes LIST
                         mesh: rr sizes (default 64,1K)
      --mesh-stream-sizes LIST
                         mesh: stream write sizes (default 64K)
  -d, --duration SEC     measured seconds per measurement (after a 10% warm-up)
  -r, --repeat N         repeats of the whole set (medians are taken over them)
  -c, --cpus PLACEMENT   where the client and server threads run: "same" (the default:
                         both on the last CPU; wake-ups stay on one CPU, the figures
                         measure the software path and repeat well), "split" (two
                         different CPUs: adds the cross-CPU wake-up, an IPI, to every
                         mode), "none" (the scheduler decides; on small VMs it flips
                         between the two from run to run), or A,B (client on CPU A,
                         server on CPU B)
  -n, --pairs N          scale: concurrent pairs
      --scale-modes LIST scale: modes to run (default lo,redirect-lo)
  -o, --out DIR          where results go (default BUILD/bench/<date>-<host>)
  -b, --build DIR        where the binaries are (default build)
      --no-plots         skip the gnuplot PNGs
  -h, --help             this text

Output: DIR/results.json (every measurement, machine facts, options, aggregates),
DIR/results.csv (one row per measurement), DIR/summary.md (also printed on stdout),
DIR/latency.png, throughput.png, cpu.png, crr.png. Progress goes to stderr.
Exit status: 0 all measurements done, 1 a measurement or the setup failed, 2 usage error.

EXAMPLES
  make bench                                   # = bench/run.sh --build build (quick)
  bench/run.sh --full                          # the long run: medians of 5 x 2 s
  bench/run.sh --modes lo,redirect-lo --workloads rr --sizes 64 --duration 5 --repeat 7
  bench/run.sh --workloads stream --stream-sizes 64,64K --cpus split
  bench/run.sh --modes remote,redirect-remote --workloads crr,stream --stream-sizes 64,64K \
      --duration 1 --repeat 5
  bench/run.sh --workloads mesh --duration 2 --repeat 5 --cpus split
  bench/run.sh --workloads scale --pairs 100000 --out /tmp/scale
  make bench BENCH_ARGS="--full --out /tmp/bench-full"
EOF
}

fatal() { echo "$PROG: $*" >&2; exit 1; }
usage_err() { echo "$PROG: $* (see 'bench/run.sh --help')" >&2; exit 2; }

# ---- options -------------------------------------------------------------------------------

PRESET=quick
O_MODES='' O_WORKLOADS='' O_RR_SIZES='' O_STREAM_SIZES='' O_DURATION='' O_REPEAT='' O_CPUS=''
O_PAIRS='' O_SCALE_MODES='' O_MESH_RR_SIZES='' O_MESH_STREAM_SIZES='' OUT='' BUILD=build PLOTS=1
ARGS_STR="$*"

opts=$(getopt -n "$PROG" -o qfm:w:s:d:r:c:n:o:b:h \
	-l quick,full,modes:,workloads:,sizes:,rr-sizes:,stream-sizes:,duration:,repeat:,cpus:,pairs:,scale-modes:,mesh-rr-sizes:,mesh-stream-sizes:,out:,build:,no-plots,help \
	-- "$@") || exit 2
eval set -- "$opts"
while :; do
	case "$1" in
	-q | --quick) PRESET=quick ;;
	-f | --full) PRESET=full ;;
	-m | --modes) O_MODES=$2; shift ;;
	-w | --workloads) O_WORKLOADS=$2; shift ;;
	-s | --sizes) O_RR_SIZES=$2; O_STREAM_SIZES=$2; shift ;;
	--rr-sizes) O_RR_SIZES=$2; shift ;;
	--stream-sizes) O_STREAM_SIZES=$2; shift ;;
	-d | --duration) O_DURATION=$2; shift ;;
	-r | --repeat) O_REPEAT=$2; shift ;;
	-c | --cpus) O_CPUS=$2; shift ;;
	-n | --pairs) O_PAIRS=$2; shift ;;
	--scale-modes) O_SCALE_MODES=$2; shift ;;
	--mesh-rr-sizes) O_MESH_RR_SIZES=$2; shift ;;
	--mesh-stream-sizes) O_MESH_STREAM_SIZES=$2; shift ;;
	-o | --out) OUT=$2; shift ;;
	-b | --build) BUILD=$2; shift ;;
	--no-plots) PLOTS=0 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	esac
	shift
done
[ $# -eq 0 ] || usage_err "unexpected argument \"$1\""

case $PRESET in
quick) DURATION=0.1 REPEAT=3 PAIRS=1000 ;;
full) DURATION=2 REPEAT=5 PAIRS=100000 ;;
esac
DURATION=${O_DURATION:-$DURATION}
REPEAT=${O_REPEAT:-$REPEAT}
PAIRS=${O_PAIRS:-$PAIRS}
CPUS=${O_CPUS:-same}
RR_SIZES=${O_RR_SIZES:-64,1K,16K}
STREAM_SIZES=${O_STREAM_SIZES:-64,1K,16K,64K,1M}
MESH_RR_SIZES=${O_MESH_RR_SIZES:-64,1K}
MESH_STREAM_SIZES=${O_MESH_STREAM_SIZES:-64K}

# in_list WORD LIST: LIST is space-separated.
in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

# check_list NAME VALUE ALLOWED: a comma list of allowed words, printed space-separated.
check_list() {
	local w out=
	[ -n "$2" ] || usage_err "--$1: empty list"
	for w in ${2//,/ }; do
		in_list "$w" "$3" || usage_err "--$1: unknown \"$w\" (one of: ${3// /, })"
		in_list "$w" "$out" || out="$out $w"
	done
	echo "${out# }"
}

# sizes_to_bytes NAME LIST: 64,1K,16K -> "64 1024 16384".
sizes_to_bytes() {
	local s b out=
	[ -n "$2" ] || usage_err "--$1: empty list"
	for s in ${2//,/ }; do
		[[ $s =~ ^[0-9]+[KkMm]?$ ]] || usage_err "--$1: \"$s\" is not a size like 64, 1K, 1M"
		b=$(numfmt --from=iec "${s^^}") || usage_err "--$1: \"$s\" is not a size"
		[ "$b" -ge 1 ] && [ "$b" -le $((64 << 20)) ] || usage_err "--$1: $s is not 1 B to 64M"
		out="$out $b"
	done
	echo "${out# }"
}

for m in ${O_MODES//,/ }; do
	in_list "$m" "$MESH_MODES" &&
		usage_err "--modes: $m is a mode of the mesh workload, which runs both: --workloads mesh"
done
MODES=$(check_list modes "${O_MODES:-${DEFAULT_MODES// /,}}" "$ALL_MODES") || exit 2
WORKLOADS=$(check_list workloads "${O_WORKLOADS:-${DEFAULT_WORKLOADS// /,}}" "$ALL_WORKLOADS") ||
	exit 2
SCALE_MODES=$(check_list scale-modes "${O_SCALE_MODES:-lo,redirect-lo}" \
	"lo redirect-lo localip redirect-localip lo6 redirect-lo6") || exit 2
RR_BYTES=$(sizes_to_bytes rr-sizes "$RR_SIZES") || exit 2
STREAM_BYTES=$(sizes_to_bytes stream-sizes "$STREAM_SIZES") || exit 2
MESH_RR_BYTES=$(sizes_to_bytes mesh-rr-sizes "$MESH_RR_SIZES") || exit 2
MESH_STREAM_BYTES=$(sizes_to_bytes mesh-stream-sizes "$MESH_STREAM_SIZES") || exit 2
# The workloads that run in --modes (all but mesh), and whether mesh runs.
GEN_WORKLOADS=
for w in $WORKLOADS; do [ "$w" = mesh ] || GEN_WORKLOADS="$GEN_WORKLOADS $w"; done
GEN_WORKLOADS=${GEN_WORKLOADS# }
in_list mesh "$WORKLOADS" && need_mesh=1 || need_mesh=0
[[ $DURATION =~ ^[0-9]*\.?[0-9]+$ ]] && awk "BEGIN { exit !($DURATION > 0 && $DURATION <= 3600) }" ||
	usage_err "--duration: \"$DURATION\" is not a number of seconds (0 < SEC <= 3600)"
[[ $REPEAT =~ ^[0-9]+$ ]] && [ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 1000 ] ||
	usage_err "--repeat: \"$REPEAT\" is not a count from 1 to 1000"
[[ $PAIRS =~ ^[0-9]+$ ]] && [ "$PAIRS" -ge 1 ] && [ "$PAIRS" -le 1000000 ] ||
	usage_err "--pairs: \"$PAIRS\" is not a count from 1 to 1000000"
# The CPUs this process may use, one per line (Cpus_allowed_list: "0-3,6").
allowed_cpus() {
	local r
	for r in $(awk '/^Cpus_allowed_list/ { gsub(",", " ", $2); print $2 }' /proc/self/status); do
		case $r in *-*) seq "${r%-*}" "${r#*-}" ;; *) echo "$r" ;; esac
	done
}
mapfile -t CPU_LIST < <(allowed_cpus)
PLACEMENT=$CPUS
case $CPUS in
same) CPUS="${CPU_LIST[-1]},${CPU_LIST[-1]}" ;;
split)
	[ ${#CPU_LIST[@]} -ge 2 ] || usage_err "--cpus split: only one CPU (${CPU_LIST[*]}) usable"
	CPUS="${CPU_LIST[-2]},${CPU_LIST[-1]}" ;;
none) CPUS= ;;
*)
	[[ $CPUS =~ ^[0-9]+,[0-9]+$ ]] ||
		usage_err "--cpus: \"$CPUS\" is not same, split, none or A,B"
	for c in ${CPUS//,/ }; do
		in_list "$c" "${CPU_LIST[*]}" ||
			usage_err "--cpus: CPU $c is not usable here (${CPU_LIST[*]})"
	done
	PLACEMENT=pinned ;;
esac
# The other placement, measured too for the headline comparisons (rr 64 B, stream 64 B, 1 KiB
# and 64 KiB; lo and redirect-lo) as modes "lo.split" or "lo.same": where the reader runs
# decides much of what redirection gives (one CPU: no cross-CPU wake-up either way).
OTHER_PLACEMENT='' OTHER_CPUS=''
if [ "$PLACEMENT" = same ] && [ ${#CPU_LIST[@]} -ge 2 ]; then
	OTHER_PLACEMENT=split OTHER_CPUS="${CPU_LIST[-2]},${CPU_LIST[-1]}"
elif [ "$PLACEMENT" = split ]; then
	OTHER_PLACEMENT=same OTHER_CPUS="${CPU_LIST[-1]},${CPU_LIST[-1]}"
fi

# ---- environment ---------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || fatal "needs root (BPF, network namespaces, cgroups)"
for b in loopless-bench looplessd loopless; do
	[ -x "$BUILD/$b" ] || fatal "$BUILD/$b is missing: run 'make all' first (or pass --build DIR)"
done
for t in jq ip numfmt awk; do
	command -v $t >/dev/null || fatal "$t is not installed: run 'make deps'"
done
if [ $need_mesh = 1 ]; then
	[ -x "$BUILD/llsidecar" ] ||
		fatal "$BUILD/llsidecar is missing (the mesh workload's sidecar): run 'make all'"
	for t in iptables taskset; do
		command -v $t >/dev/null || fatal "$t is not installed (mesh workload): run 'make deps'"
	done
fi
if [ $PLOTS = 1 ] && ! command -v gnuplot >/dev/null; then
	echo "$PROG: gnuplot is not installed (make deps): no plots" >&2
	PLOTS=0
fi
BENCH=$(realpath "$BUILD/loopless-bench")
HOST=$(hostname -s 2>/dev/null || hostname)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$BUILD/bench/$STAMP-$HOST}
mkdir -p "$OUT" || fatal "cannot create $OUT"
OUT=$(realpath "$OUT")

# shellcheck source=tests/lib.sh
source tests/lib.sh
env_setup bench
# The lib's EXIT trap removes everything; make Ctrl-C and kill run it too.
trap 'exit 130' INT
trap 'exit 143' TERM
JSONL="$TMP/samples.jsonl"
: >"$JSONL"

need_redirect=$need_mesh
need_localip=0
need_remote=0
need_crossns=0
# --modes serve the workloads but mesh: with --workloads mesh alone none of them is set up.
for m in $([ -n "$GEN_WORKLOADS" ] && echo "$MODES"); do
	case $m in redirect-*) need_redirect=1 ;; esac
	case $m in *localip) need_localip=1 ;; esac
	case $m in *remote | redirect-crossns) need_remote=1 ;; esac
	[ "$m" = redirect-crossns ] && need_crossns=1
done
if [ $need_localip = 1 ]; then
	# Both veth ends stay inside $NS: the address is local to the netns and nothing
	# leaves it. A connection to it picks it as source too (local == remote).
	ip -n "$NS" link add llb0 type veth peer name llb1 &&
		ip -n "$NS" addr add $LOCALIP/24 dev llb0 &&
		ip -n "$NS" addr add $LOCALIP_PEER/24 dev llb1 &&
		ip -n "$NS" link set llb0 up && ip -n "$NS" link set llb1 up ||
		fatal "cannot set up the veth pair for localip in $NS"
fi
REMOTE_NS=
if [ $need_remote = 1 ]; then
	# The server's netns, registered with the lib so its EXIT trap deletes it (and with it
	# the veth) on every exit. The driver makes its listeners there (--server-netns) and
	# stays in $NS itself: one process, the same cgroup and CPU accounting as every mode.
	add_netns remote
	REMOTE_NS=$NEW_NS
	ip -n "$NS" link add $REMOTE_DEV type veth peer name llr1 netns "$REMOTE_NS" &&
		ip -n "$NS" addr add $REMOTE_CLIENT/24 dev $REMOTE_DEV &&
		ip -n "$REMOTE_NS" addr add $REMOTE_SERVER/24 dev llr1 &&
		ip -n "$NS" link set $REMOTE_DEV up && ip -n "$REMOTE_NS" link set llr1 up ||
		fatal "cannot set up the veth pair between $NS and $REMOTE_NS"
	[ -e "/run/netns/$REMOTE_NS" ] || fatal "/run/netns/$REMOTE_NS is missing"
fi
MESH_A='' MESH_B='' MESH_NODE=''
if [ $need_mesh = 1 ]; then
	# The mesh tests' topology (tests/mesh-lib.sh): pod A, pod B and the node, three more
	# netns registered with the lib (its EXIT trap deletes them, their veths, their nat
	# rules and whatever runs in them), addresses in 198.18.0.0/15, kube-proxy's DNAT of
	# svc-b (MESH_VIP_B4:80) to pod B:8080 on the node, and Istio's default capture
	# rules in both pods (IPv4: the bench dials the IPv4 VIP only). Nothing is routed out.
	# shellcheck source=tests/mesh-lib.sh
	source tests/mesh-lib.sh
	add_netns a
	mesh_setup "$NEW_NS"
	mesh_istio_rules "$MESH_A" iptables
	mesh_istio_rules "$MESH_B" iptables
	[ -e "/run/netns/$MESH_B" ] || fatal "/run/netns/$MESH_B is missing"
fi
MAX_SOCKETS=262144
[ $((PAIRS * 2 + 4096)) -le $MAX_SOCKETS ] || MAX_SOCKETS=$((PAIRS * 2 + 4096))
LL_COUNTERS='[]'
if [ $need_redirect = 1 ]; then
	printf '[daemon]\ncgroup = %s\nmax_sockets = %d\n' "$CG" "$MAX_SOCKETS" \
		>"$TMP/looplessd.conf"
	start_daemon --config "$TMP/looplessd.conf"
	cp "$TMP/looplessd.conf" "$TMP/looplessd.conf.base"
	# The counters this looplessd has: every one is recorded per measurement (as deltas).
	LL_COUNTERS=$("$LOOPLESS" --pin-dir "$PIN" stats --json | jq -c 'keys') ||
		fatal "loopless stats --json failed"
fi

# ---- the job list --------------------------------------------------------------------------

# mode_def MODE: M_TR (transport), M_ADDR, M_CG (cgroup to run in, empty for none), M_SRV_NS
# (netns file the server ends are made in, empty for the bench netns), M_DEV (a device besides
# lo whose packets prove the path), M_NS (the netns the driver runs in), M_PORT (a fixed
# listening port, or empty), M_CONNECT (where the client dials, if not the listener).
mode_def() {
	M_TR=tcp M_ADDR='' M_CG='' M_SRV_NS='' M_DEV='' M_NS=$NS M_PORT='' M_CONNECT='' M_CPUS=$CPUS
	# MODE.PLACEMENT: MODE with the threads placed the other way (OTHER_PLACEMENT).
	case $1 in *.*) M_CPUS=$OTHER_CPUS ;; esac
	set -- "${1%.*}"
	case $1 in
	lo | redirect-lo) M_ADDR=127.0.0.1 ;;
	localip | redirect-localip) M_ADDR=$LOCALIP ;;
	lo6 | redirect-lo6) M_ADDR=::1 ;;
	remote | redirect-remote | redirect-crossns)
		M_ADDR=$REMOTE_SERVER M_SRV_NS=/run/netns/$REMOTE_NS M_DEV=$REMOTE_DEV ;;
	mesh | redirect-mesh)
		# App A (the client) in pod A dials svc-b; app B (the server) listens in pod B on
		# its pod IP, where sidecar B's passthrough connection from 127.0.0.6 arrives.
		# eth0: pod A's veth to the node, which carries the hop between the sidecars.
		M_NS=$MESH_A M_ADDR=$MESH_B4 M_PORT=$MESH_PORT M_CONNECT=$MESH_VIP_B4:80
		M_SRV_NS=/run/netns/$MESH_B M_DEV=eth0 ;;
	uds) M_TR=unix ;;
	pipe) M_TR=pipe ;;
	esac
	case $1 in redirect-*) M_CG=$CG ;; esac
}

J_WL=() J_SIZE=() J_MODE=() J_REP=()
add_jobs() { # add_jobs WL SIZE REP MODES...: in a rotated order (shift = REP + size index)
	local wl=$1 size=$2 rep=$3 shift_by=$4 m i n
	shift 4
	local ms=("$@")
	n=${#ms[@]}
	[ "$n" -gt 0 ] || return 0
	for ((i = 0; i < n; i++)); do
		m=${ms[$(((i + shift_by) % n))]}
		J_WL+=("$wl") J_SIZE+=("$size") J_MODE+=("$m") J_REP+=("$rep")
	done
}
for ((rep = 1; rep <= REPEAT; rep++)); do
	k=0
	for wl in $WORKLOADS; do
		if [ "$wl" = mesh ]; then
			for size in $MESH_RR_BYTES; do
				add_jobs rr "$size" "$rep" $((rep - 1 + k)) $MESH_MODES
				k=$((k + 1))
			done
			for size in $MESH_STREAM_BYTES; do
				add_jobs stream "$size" "$rep" $((rep - 1 + k)) $MESH_MODES
				k=$((k + 1))
			done
			continue
		fi
		ms=()
		for m in $MODES; do
			case $wl in
			crr) [ "$m" = pipe ] && continue ;;
			scale) in_list "$m" "$SCALE_MODES" || continue ;;
			esac
			ms+=("$m")
		done
		case $wl in
		rr) sizes=$RR_BYTES ;;
		stream) sizes=$STREAM_BYTES ;;
		crr) sizes=64 ;;
		scale) sizes=0 ;;
		esac
		for size in $sizes; do
			add_jobs "$wl" "$size" "$rep" $((rep - 1 + k)) "${ms[@]}"
			k=$((k + 1))
		done
	done
	# The other placement: the headline sizes, lo and redirect-lo.
	if [ -n "$OTHER_PLACEMENT" ] && in_list lo "$MODES" && in_list redirect-lo "$MODES"; then
		for wl in rr stream; do
			in_list "$wl" "$WORKLOADS" || continue
			[ "$wl" = rr ] && sizes=64 || sizes="64 1024 65536"
			for size in $sizes; do
				in_list "$size" "$([ "$wl" = rr ] && echo "$RR_BYTES" || echo "$STREAM_BYTES")" ||
					continue
				add_jobs "$wl" "$size" "$rep" $((rep - 1 + k)) "lo.$OTHER_PLACEMENT" \
					"redirect-lo.$OTHER_PLACEMENT"
				k=$((k + 1))
			done
		done
	fi
done
NJOBS=${#J_WL[@]}
[ "$NJOBS" -gt 0 ] || usage_err "nothing to run with these --modes and --workloads"

WARMUP=$(awk "BEGIN { w = $DURATION * 0.1; print (w > 0.5 ? 0.5 : w) }")
# Planned seconds per job, for the time-left estimate (scaled by what was observed).
P_SCALE=$(awk "BEGIN { print $PAIRS / 8000 + 1 }")
P_OTHER=$(awk "BEGIN { print $DURATION + $WARMUP + 0.05 }")
n_scale=0
for ((j = 0; j < NJOBS; j++)); do [ "${J_WL[$j]}" = scale ] && n_scale=$((n_scale + 1)); done
PLAN_TOTAL=$(awk "BEGIN { print $n_scale * $P_SCALE + ($NJOBS - $n_scale) * $P_OTHER }")

human_size() {
	if [ $(($1 % 1048576)) = 0 ]; then echo "$(($1 >> 20)) MiB"
	elif [ $(($1 % 1024)) = 0 ]; then echo "$(($1 >> 10)) KiB"
	else echo "$1 B"; fi
}

# ---- running one measurement ---------------------------------------------------------------

# read_stats: loopless's counters, one JSON object.
read_stats() { "$LOOPLESS" --pin-dir "$PIN" stats --json 2>/dev/null; }
# The counters a sample carries at its top level (the summary, CSV and tests read them);
# "counters" holds the delta of every one this looplessd has, whatever their names (one,
# "pairs", would clash with a field of the driver's).
TOP_COUNTERS='["redirected_bytes", "passed_bytes", "tcp_pinned", "sockets_inserted",
	"insert_errors", "fallbacks", "fallbacks_small", "returns", "skipped_remote",
	"provisional_left"]'
# counter_deltas BEFORE AFTER: the counters' part of a sample, ',"name":delta,...'.
counter_deltas() {
	jq -nrc --argjson a "$1" --argjson b "$2" --argjson top "$TOP_COUNTERS" '
		($b | with_entries(.value -= ($a[.key] // 0))) as $d
		| ([$top[] | select($d[.] != null) | ",\"\(.)\":\($d[.])"] | join(""))
		  + ",\"counters\":\($d | tojson)"'
}
map_sockets() { "$LOOPLESS" --pin-dir "$PIN" status --json 2>/dev/null | jq -r '.sockets'; }

# wait_file PATH PID: until PATH exists; 1 when PID exits first.
wait_file() {
	while [ ! -e "$1" ]; do
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.02
	done
}

FAILED=0
RETRIED=0
JOB_TRIES=3
JOB_ERR=
# record_error SEQ WL SIZE MODE REP MESSAGE
record_error() {
	FAILED=$((FAILED + 1))
	jq -cn --argjson seq "$1" --arg wl "$2" --argjson size "$3" --arg mode "$4" \
		--argjson rep "$5" --arg err "$6" \
		'{seq: $seq, mode: $mode, workload: $wl, size: $size, rep: $rep, error: $err}' \
		>>"$JSONL"
	printf '%s: %s %s %s rep %s failed: %s\n' "$PROG" "$2" "$(human_size "$3")" "$4" "$5" \
		"$6" >&2
}

# ---- the mesh workload's sidecars ------------------------------------------------------------

# Each sidecar runs on the CPU of the other pod's app: app A is the driver's client thread
# (first CPU of --cpus), app B its server thread (second). With --cpus same all four share
# one CPU; with split every hop (app A -> sidecar A -> sidecar B -> app B) crosses CPUs, as
# the one hop of the other workloads does. Not pinned with --cpus none.
MESH_SC_CPU_A=${CPUS#*,} MESH_SC_CPU_B=${CPUS%,*}

# mesh_pin NAME CPU: every thread of sidecar NAME on CPU (nothing for "").
mesh_pin() {
	local pid
	[ -n "$2" ] || return 0
	pid=$(sed -n 's/^pid=//p' "$TMP/sc-$1.ready")
	taskset -apc "$2" "$pid" >/dev/null
}

# mesh_cpu_ns NAME: CPU time (ns) sidecar NAME has used so far, all its threads
# (/proc/PID/task/*/schedstat: on-CPU time, softirq work done meanwhile included, as for the
# driver's getrusage).
mesh_cpu_ns() {
	local pid
	pid=$(sed -n 's/^pid=//p' "$TMP/sc-$1.ready")
	cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{ n += $1 } END { printf "%d", n }'
}

# mesh_start CG: sidecar A in pod A and sidecar B in pod B as Istio runs Envoy (15001 and
# 15006, uid 1337, which the rules exempt), in cgroup CG ("" for none), each listening and
# pinned when this returns. Sidecars last one measurement: a socket keeps the cgroup of the
# process that made it, so the plain and the loopless mode each need their own.
mesh_start() {
	mesh_sidecar "$MESH_A" "$1" a --uid 1337 && mesh_pin a "$MESH_SC_CPU_A" &&
		mesh_sidecar "$MESH_B" "$1" b --uid 1337 && mesh_pin b "$MESH_SC_CPU_B"
}

# mesh_finish: stop both sidecars; 0 when each exited cleanly (no error, no reset) having
# carried the measurement's one connection (A: outbound, to svc-b:80; B: inbound, to pod
# B:8080): the proof that the rules sent it through both. Else 1, why in MESH_SC_ERROR.
mesh_finish() {
	local n
	mesh_sidecars_end || return 1
	n=$(grep -Ec "^conn [0-9]+ outbound: .* original $MESH_VIP_B4:80, upstream" "$TMP/sc-a.out")
	[ "$n" -eq 1 ] || {
		MESH_SC_ERROR="sidecar A proxied $n connections to svc-b, expected 1: $(head -c 300 "$TMP/sc-a.out")"
		return 1
	}
	n=$(grep -Ec "^conn [0-9]+ inbound: .* original $MESH_B4:$MESH_PORT, upstream" "$TMP/sc-b.out")
	[ "$n" -eq 1 ] || {
		MESH_SC_ERROR="sidecar B proxied $n connections to app B, expected 1: $(head -c 300 "$TMP/sc-b.out")"
		return 1
	}
}

# set_cross on|off: looplessd's cross_netns for the next measurement (a reload, which also
# reads the namespaces' addresses at once), so that redirect-remote stays unaccelerated and
# redirect-crossns is. Only runs that have redirect-crossns switch.
CROSS_NOW=off
set_cross() {
	local n0
	[ "$need_crossns" = 1 ] && [ "$1" != "$CROSS_NOW" ] || return 0
	cp "$TMP/looplessd.conf.base" "$TMP/looplessd.conf"
	[ "$1" = on ] && printf '[datapath]\ncross_netns = true\n' >>"$TMP/looplessd.conf"
	n0=$(grep -c '^looplessd: reloaded' "$TMP/looplessd.log")
	kill -HUP "$DAEMON_PID" || fatal "cannot signal looplessd"
	for _ in $(seq 100); do
		[ "$(grep -c '^looplessd: reloaded' "$TMP/looplessd.log")" -gt "$n0" ] && break
		sleep 0.02
	done
	[ "$(grep -c '^looplessd: reloaded' "$TMP/looplessd.log")" -gt "$n0" ] ||
		fatal "looplessd did not reload (cross_netns $1): $(tail -2 "$TMP/looplessd.log")"
	sleep 0.1 # the owners pass that follows the reload
	CROSS_NOW=$1
}

run_job() { # run_job SEQ
	local j=$1 wl=${J_WL[$1]} size=${J_SIZE[$1]} mode=${J_MODE[$1]} rep=${J_REP[$1]}
	local args s0='' s1 out err rc extra pid sd base t0 status sockets max memlock
	local r_mid r_end empty_s empty lo_b0 sc_ns mesh_err=''
	mode_def "$mode"
	set_cross "$([ "$mode" = redirect-crossns ] && echo on || echo off)"
	args=("$BENCH" "$wl" --transport "$M_TR" --mode "$mode" --rep "$rep")
	[ "$M_TR" = tcp ] && args+=(--addr "$M_ADDR")
	[ -n "$M_PORT" ] && args+=(--port "$M_PORT")
	[ -n "$M_CONNECT" ] && args+=(--connect "$M_CONNECT")
	[ -n "$M_SRV_NS" ] && args+=(--server-netns "$M_SRV_NS")
	[ -n "$M_DEV" ] && args+=(--dev "$M_DEV")
	[ -n "$M_CPUS" ] && args+=(--cpus "$M_CPUS")
	case $wl in
	scale) args+=(--pairs "$PAIRS") ;;
	*) args+=(--size "$size" --duration "$DURATION") ;;
	esac
	[ -n "$DAEMON_PID" ] && [ "$M_TR" = tcp ] && s0=$(read_stats)

	if [ "$wl" = scale ]; then
		# The driver stops twice so the map can be read with the pairs open.
		sd="$TMP/sync.$j"
		mkdir -p "$sd"
		base=$( [ -n "$DAEMON_PID" ] && map_sockets || echo 0)
		in_ns_cg "$NS" "$M_CG" "${args[@]}" --sync-dir "$sd" >"$TMP/out" 2>"$TMP/err" &
		pid=$!
		sockets=null max=null memlock=null r_mid=null r_end=null empty_s=null empty=null
		if wait_file "$sd/connected" $pid; then
			if [ -n "$DAEMON_PID" ]; then
				status=$("$LOOPLESS" --pin-dir "$PIN" status --json 2>/dev/null)
				sockets=$(jq -r .sockets <<<"$status")
				max=$(jq -r .max_sockets <<<"$status")
				memlock=$(bpftool map show pinned "$PIN/sock_hash" -j 2>/dev/null |
					jq -r '.bytes_memlock // "null"' 2>/dev/null)
				r_mid=$(read_stats | jq .redirected_bytes)
			fi
			touch "$sd/go-sample"
			if wait_file "$sd/sampled" $pid; then
				[ -n "$DAEMON_PID" ] && r_end=$(read_stats | jq .redirected_bytes)
				touch "$sd/go-close"
			fi
		fi
		wait $pid
		rc=$?
		if [ $rc = 0 ] && [ -n "$DAEMON_PID" ]; then
			# Every socket leaves the map on close; wait for it (30 s at most).
			t0=$(date +%s.%N)
			empty=false
			for _ in $(seq 1500); do
				[ "$(map_sockets)" = "$base" ] && { empty=true; break; }
				sleep 0.02
			done
			empty_s=$(awk "BEGIN { printf \"%.3f\", $(date +%s.%N) - $t0 }")
		fi
		extra=",\"map_base\":${base:-null},\"map_sockets\":${sockets:-null},\"max_sockets\":${max:-null}"
		extra+=",\"map_memlock\":${memlock:-null}"
		extra+=",\"sample_redirected_bytes\":$([ "$r_mid" != null ] && [ "$r_end" != null ] &&
			echo $((r_end - r_mid)) || echo null)"
		extra+=",\"map_empty\":$empty,\"map_empty_s\":$empty_s"
	else
		if [ -n "$M_CONNECT" ]; then
			# Pod B's lo from before its sidecar starts until after it stopped (the
			# driver counts pod A's, its own netns, itself: lo_rx).
			lo_b0=$(lo_rx "$MESH_B")
			mesh_start "$M_CG" || fatal "cannot pin the sidecars to CPUs $CPUS"
			# The sidecars' CPU over the driver's run (the wall time around it).
			sc_ns=$(($(mesh_cpu_ns a) + $(mesh_cpu_ns b)))
			t0=$(date +%s%N)
		fi
		in_ns_cg "$M_NS" "$M_CG" "${args[@]}" >"$TMP/out" 2>"$TMP/err"
		rc=$?
		extra=
		if [ -n "$M_CONNECT" ]; then
			t0=$(($(date +%s%N) - t0))
			sc_ns=$(($(mesh_cpu_ns a) + $(mesh_cpu_ns b) - sc_ns))
			mesh_finish || mesh_err=$MESH_SC_ERROR
			extra=",\"lo_rx_b\":$(($(lo_rx "$MESH_B") - lo_b0))"
			extra+=",\"sidecar_cpus\":\"${MESH_SC_CPU_A:-none},${MESH_SC_CPU_B:-none}\""
			extra+=",\"sidecar_cpu_s\":$(awk "BEGIN { printf \"%.4f\", $sc_ns / 1e9 }")"
			extra+=",\"wall_s\":$(awk "BEGIN { printf \"%.4f\", $t0 / 1e9 }")"
		fi
	fi
	out=$(cat "$TMP/out")
	err=$(head -c 400 "$TMP/err" | tr '\n' ' ')
	if [ $rc != 0 ] || [ "${out:0:1}" != "{" ]; then
		JOB_ERR="${err:-exit status $rc, no output}${mesh_err:+ ($mesh_err)}"
		return 1
	fi
	if [ -n "$mesh_err" ]; then
		JOB_ERR=$mesh_err
		return 1
	fi
	if [ -n "$s0" ] && s1=$(read_stats) && [ -n "$s1" ]; then
		extra+=$(counter_deltas "$s0" "$s1")
	fi
	echo "${out%\}},\"seq\":$j${extra}}" >>"$JSONL"
}

# ---- the run -------------------------------------------------------------------------------

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s.%N)
plan_done=0
[ -t 2 ] && TTY=1 || TTY=0
echo "$PROG: $NJOBS measurements ($PRESET: ${DURATION} s each, $REPEAT repeats; modes ${MODES// /,}), results in $OUT" >&2
for ((j = 0; j < NJOBS; j++)); do
	now=$(date +%s.%N)
	left=$(awk -v e="$now" -v s="$T_START" -v d="$plan_done" -v t="$PLAN_TOTAL" \
		'BEGIN { el = e - s; r = t - d; if (d > 0) r *= el / d; printf "%d", r + 0.5 }')
	sz=$([ "${J_WL[$j]}" = scale ] && echo "$PAIRS pairs" || human_size "${J_SIZE[$j]}")
	line=$(printf '[%d/%d] %s %s %s rep %d/%d  ~%d s left' $((j + 1)) "$NJOBS" "${J_WL[$j]}" \
		"$sz" "${J_MODE[$j]}" "${J_REP[$j]}" "$REPEAT" "$left")
	if [ $TTY = 1 ]; then printf '\r\033[K%s' "$line" >&2; else echo "$line" >&2; fi
	# A measurement that fails (a tenant stalled a CPU past a short --duration,
	# say) is run again, up to JOB_TRIES times; only the last failure counts.
	for ((try = 1; ; try++)); do
		run_job "$j" && break
		if [ "$try" -ge "$JOB_TRIES" ]; then
			record_error "$j" "${J_WL[$j]}" "${J_SIZE[$j]}" "${J_MODE[$j]}" "${J_REP[$j]}" \
				"$JOB_ERR (after $try tries)"
			break
		fi
		RETRIED=$((RETRIED + 1))
		echo "$PROG: ${J_WL[$j]} ${J_MODE[$j]} rep ${J_REP[$j]}: $JOB_ERR; trying again" >&2
	done
	plan_done=$(awk "BEGIN { print $plan_done + $([ "${J_WL[$j]}" = scale ] && echo "$P_SCALE" ||
		echo "$P_OTHER") }")
done
[ $TTY = 1 ] && printf '\r\033[K' >&2

# Memory with a reader that sleeps: what the kernel holds for one connection
# while a writer streams 1 GiB and the reader does not read for MEM_SLEEP s
# (lltraffic --reader-delay: receive + write queue from SO_MEMINFO, plus the
# redirected queue from FIONREAD for loopless; --greet: the reader took a
# byte first, so loopless redirects into it). Plain TCP: its flow control;
# loopless: the writer is moved to TCP once the sleeping reader's queue
# passes its receive buffer.
MEM_JSON="$TMP/memory.jsonl"
: >"$MEM_JSON"
case " $MODES " in *" lo "*) mem_lo=1 ;; *) mem_lo=0 ;; esac
case " $MODES " in *" redirect-lo "*) mem_rd=1 ;; *) mem_rd=0 ;; esac
# Not with --workloads mesh alone: the modes it needs serve the other workloads.
if [ $mem_lo = 1 ] && [ $mem_rd = 1 ] && [ -n "$GEN_WORKLOADS" ] && [ -x "$LLTRAFFIC" ]; then
	MEM_SLEEP=$([ "$PRESET" = full ] && echo 3 || echo 1)
	for ((r = 1; r <= REPEAT; r++)); do
		for m in lo redirect-lo; do
			echo "[memory] sleeping reader, $m rep $r/$REPEAT" >&2
			cg=$([ $m = redirect-lo ] && echo "$CG" || echo "")
			out=$(in_ns_cg "$NS" "$cg" "$LLTRAFFIC" pair --connect 127.0.0.1 --bytes 1G \
				--reader-delay "$MEM_SLEEP" --greet --timeout 120 2>&1) || {
				echo "$PROG: memory measurement $m failed: $out" >&2
				continue
			}
			key=$([ $m = redirect-lo ] && echo peak_rwi || echo peak_rw)
			printf '{"mode":"%s","rep":%d,"peak_bytes":%s}\n' "$m" "$r" "$(kv "$out" $key)" \
				>>"$MEM_JSON"
		done
	done
fi
ELAPSED=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $T_START }")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- results.json, results.csv -------------------------------------------------------------

CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
jq -n --slurpfile s "$JSONL" \
	--arg kernel "$(uname -r)" --arg cpu "${CPU_MODEL:-unknown}" --argjson cores "$(nproc)" \
	--arg version "$("$LOOPLESSD" --version 2>/dev/null | awk '{ print $2 }')" \
	--arg commit "$(git describe --tags --always --dirty 2>/dev/null || echo unknown)" \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$HOST" \
	--argjson mem "$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)" \
	--arg load0 "$LOAD_START" --arg load1 "$LOAD_END" --argjson elapsed "$ELAPSED" \
	--arg preset "$PRESET" --argjson duration "$DURATION" --argjson warmup "$WARMUP" \
	--argjson repeat "$REPEAT" --arg modes "$MODES" --arg workloads "$WORKLOADS" \
	--arg rr "$RR_BYTES" --arg stream "$STREAM_BYTES" --arg cpus "$CPUS" --arg placement "$PLACEMENT" \
	--argjson pairs "$PAIRS" --arg scale_modes "$SCALE_MODES" --arg args "$ARGS_STR" \
	--argjson max_sockets "$MAX_SOCKETS" --argjson counters "$LL_COUNTERS" \
	--argjson mesh "$need_mesh" --arg mesh_rr "$MESH_RR_BYTES" --arg mesh_stream "$MESH_STREAM_BYTES" \
	--arg mesh_cpus "${MESH_SC_CPU_A:-none},${MESH_SC_CPU_B:-none}" '
	def words: split(" ") | map(select(. != ""));
	{
	  machine: { kernel: $kernel, cpu_model: $cpu, cores: $cores, mem_total_kb: $mem,
	             host: $host, loopless_version: $version, git: $commit, date: $date,
	             loadavg_start: $load0, loadavg_end: $load1, elapsed_s: $elapsed,
	             loopless_counters: $counters },
	  options: { preset: $preset, duration_s: $duration, warmup_s: $warmup, repeat: $repeat,
	             modes: ($modes | words), workloads: ($workloads | words),
	             rr_sizes: ($rr | words | map(tonumber)),
	             stream_sizes: ($stream | words | map(tonumber)),
	             cpus: (if $cpus == "" then null else $cpus end), placement: $placement,
	             scale_pairs: $pairs,
	             scale_modes: ($scale_modes | words), max_sockets: $max_sockets,
	             mesh: (if $mesh == 1 then { modes: ["mesh", "redirect-mesh"],
	                    rr_sizes: ($mesh_rr | words | map(tonumber)),
	                    stream_sizes: ($mesh_stream | words | map(tonumber)),
	                    sidecar_cpus: $mesh_cpus } else null end),
	             args: $args },
	  samples: ($s | sort_by(.seq))
	}' >"$OUT/results.raw.json" || fatal "cannot write results.json"

# Aggregates: medians over repeats per (workload, size, mode), ratios to lo and to the plain
# counterpart of a redirect mode, all from this run.
jq '
	def median: sort | if length == 0 then null
		elif length % 2 == 1 then .[(length - 1) / 2]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def st(f): [.[] | f | select(. != null)]
		| if length == 0 then null else { med: median, min: min, max: max } end;
	def key_metric: if .workload == "rr" then "p50_us" elif .workload == "stream" then "gbps"
		elif .workload == "crr" then "cps" else "insert_rate" end;
	. as $root
	| ([.samples[] | select(.error == null)] | group_by([.workload, .size, .mode])
	   | map(. as $g | {
		workload: .[0].workload, size: .[0].size, mode: .[0].mode, n: length,
		metric: (.[0] | key_metric),
		p50_us: st(.p50_us), p99_us: st(.p99_us), p999_us: st(.p999_us), tps: st(.tps),
		gbps: st(.gbps), cpu_s_per_gb: st(.cpu_s_per_gb), host_s_per_gb: st(.host_s_per_gb),
		cpu_us_per_rt: st(.cpu_us_per_rt), cps: st(.cps), cpu_us_per_conn: st(.cpu_us_per_conn),
		host_us_per_rt: st(if .workload == "rr" and .samples > 0 then .host_busy_s * 1e6 / .samples
			else null end),
		host_us_per_conn: st(if .conns then .host_busy_s * 1e6 / .conns else null end),
		lo_rx: st(.lo_rx), lo_tx: st(.lo_tx), lo_rx_b: st(.lo_rx_b),
		# mesh: the driver (both apps, measured window) plus the sidecars (their CPU over the
		# driver run, at the measured rate), per round trip (µs) or per GB (s).
		mesh_cpu_per_rt: st(if .sidecar_cpu_s and .wall_s > 0 and .tps > 0 then
			.cpu_us_per_rt + .sidecar_cpu_s * 1e6 / .wall_s / .tps else null end),
		mesh_cpu_per_gb: st(if .sidecar_cpu_s and .wall_s > 0 and .mbytes_s > 0 then
			.cpu_s_per_gb + .sidecar_cpu_s / .wall_s / (.mbytes_s / 1000) else null end),
		lo_rx_per_conn: st(if .conns then .lo_rx / .conns else null end),
		dev_rx: st(.dev_rx), dev_tx: st(.dev_tx),
		dev_rx_per_conn: st(if .conns and .dev_rx then .dev_rx / .conns else null end),
		lag_bytes: st(.lag_bytes), eagain: st(.eagain),
		redirected_bytes: st(.redirected_bytes), passed_bytes: st(.passed_bytes),
		tcp_pinned: st(.tcp_pinned), insert_errors: st(.insert_errors),
		sockets_inserted: st(.sockets_inserted), skipped_remote: st(.skipped_remote),
		provisional_left: st(.provisional_left), ll_pairs: st(.counters.pairs),
		fallbacks: st(.fallbacks), fallbacks_small: st(.fallbacks_small), returns: st(.returns),
		pairs: st(.pairs), insert_rate: st(.insert_rate), close_rate: st(.close_rate),
		kb_per_pair: st(.kb_per_pair), map_sockets: st(.map_sockets),
		max_sockets: st(.max_sockets), map_memlock: st(.map_memlock),
		sample_bytes: st(.sample_bytes), sample_redirected_bytes: st(.sample_redirected_bytes),
		sample_lo_rx: st(.sample_lo_rx), map_empty_s: st(.map_empty_s),
		map_empty_all: ([$g[] | .map_empty] | if any(. == null) then null else all end)
	   })) as $agg
	| $agg | map(. as $a
		| ($a.metric) as $k
		| ([$agg[] | select(.workload == $a.workload and .size == $a.size and .mode == "lo")]
		   | .[0][$k].med) as $lo
		| ([$agg[] | select(.workload == $a.workload and .size == $a.size
		                    and .mode == ($a.mode | ltrimstr("redirect-")))] | .[0][$k].med)
		  as $plain
		| . + { ratio_lo: (if $lo and $lo != 0 and $a[$k] then $a[$k].med / $lo else null end),
		        ratio_plain: (if ($a.mode | startswith("redirect-")) and $plain and $plain != 0
		                      and $a[$k] then $a[$k].med / $plain else null end) })
	| { aggregate: . } as $x | $root + $x
' "$OUT/results.raw.json" >"$OUT/results.json" || fatal "cannot aggregate results"
rm -f "$OUT/results.raw.json"

CSV_COLS="seq rep mode workload size transport addr duration_s samples p50_us p90_us p99_us p999_us mean_us max_us tps cpu_us_per_rt bytes gbps mbytes_s cpu_s host_busy_s cpu_s_per_gb host_s_per_gb lag_bytes drain_ms conns cps cpu_us_per_conn pairs procs connect_s insert_rate close_rate mem_kb kb_per_pair map_sockets max_sockets map_memlock sample_bytes sample_redirected_bytes sample_lo_rx sample_lo_tx map_empty map_empty_s lo_rx lo_tx lo_rx_b dev dev_rx dev_tx connect sidecar_cpus sidecar_cpu_s wall_s eagain redirected_bytes passed_bytes tcp_pinned sockets_inserted insert_errors skipped_remote provisional_left fallbacks fallbacks_small returns error"
jq -r --arg cols "$CSV_COLS" '($cols | split(" ")) as $c
	| ($c | @csv), (.samples[] | [.[$c[]]] | @csv)' "$OUT/results.json" >"$OUT/results.csv"

# ---- summary.md ----------------------------------------------------------------------------

jq -r '
	def lpad(n): if length < n then ("0" * (n - length)) + . else . end;
	def fx(d): if . == null then "–" elif d == 0 then (round | tostring) else
		((. * pow(10; d)) | round) as $n
		| (if $n < 0 then "-" else "" end) as $sg
		| ($n | if . < 0 then -. else . end | tostring | lpad(d + 1)) as $a
		| $sg + $a[0:($a | length) - d] + "." + $a[($a | length) - d:] end;
	def sz: if . >= 1048576 then "\(. / 1048576 | floor) MiB" elif . >= 1024 then
		"\(. / 1024 | floor) KiB" else "\(.) B" end;
	def x: if . == null then "–" else fx(2) + "×" end;
	def span(f; d): if f == null then "–" else "\(f.min | fx(d))–\(f.max | fx(d))" end;
	# The path proof: lo packets, and for the remote modes the veth packets, which carry them.
	def pkts: "\(.lo_rx.med | fx(0))" + (if .dev_rx then " (veth \(.dev_rx.med | fx(0)))" else "" end);
	def pkts_conn: "\(.lo_rx_per_conn.med | fx(1))"
		+ (if .dev_rx_per_conn then " (veth \(.dev_rx_per_conn.med | fx(1)))" else "" end);
	.options as $o | .machine as $m | .aggregate as $agg
	| ($o.modes) as $order
	# The modes of the mesh workload have a section of their own.
	# MODE.PLACEMENT rows are the other CPU placement: a section of their own.
	| def rows(w): [$agg[] | select(.workload == w and .mode != "mesh" and .mode != "redirect-mesh"
		and (.mode | contains(".") | not))]
		| sort_by(.size, (.mode as $md | $order | index($md)));
	"# loopless bench, \($m.date[0:10]) on \($m.host)",
	"",
	"Kernel \($m.kernel), \($m.cpu_model) (\($m.cores) cores), loopless \($m.loopless_version)"
	+ " (git \($m.git)). Preset \($o.preset): \($o.duration_s) s per measurement after a"
	+ " \($o.warmup_s) s warm-up, \($o.repeat) repeats, modes interleaved; "
	+ (if $o.placement == "same" then "client and server threads pinned to one CPU (\($o.cpus))"
	   elif $o.placement == "split" then "client and server threads on two CPUs (\($o.cpus))"
	   elif $o.cpus then "client, server threads pinned to CPUs \($o.cpus)"
	   else "threads not pinned" end)
	+ ". Load average \($m.loadavg_start) at the start, \($m.loadavg_end) at the end;"
	+ " \($m.elapsed_s) s in all. Command: `bench/run.sh\(if $o.args == "" then "" else " " + $o.args end)`.",
	"",
	"Every figure is the median over the repeats. × lo: this mode / lo, × plain: redirect-X / X,"
	+ " both medians of this run. lo pkts: packets the bench netns lo device received per"
	+ " measurement (median), the path proof: thousands on the TCP path, a handful when"
	+ " redirected (handshake and teardown)"
	+ (if ($o.modes | index("remote")) or ($o.modes | index("redirect-remote")) then
	   "; remote modes cross a veth, not lo: its received packets are in parentheses" else "" end)
	+ ".",
	"",
	(if (rows("rr") | length) > 0 then
	"## rr: request/response, one round trip (µs; lower is better)", "",
	"| size | mode | p50 µs | × lo | × plain | p99 µs | p99.9 µs | trans/s | p50 min–max | lo pkts |",
	"|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
	(rows("rr")[] | "| \(.size | sz) | \(.mode) | \(.p50_us.med | fx(1)) | \(.ratio_lo | x) | "
	 + "\(.ratio_plain | x) | \(.p99_us.med | fx(1)) | \(.p999_us.med | fx(1)) | "
	 + "\(.tps.med | fx(0)) | \(span(.p50_us; 1)) | \(pkts) |"), "" else empty end),
	(if (rows("stream") | length) > 0 then
	"## stream: one-way throughput (Gbit/s; higher is better) and CPU (s per GB, both ends)", "",
	"| write | mode | Gbit/s | × lo | × plain | Gbit/s min–max | CPU s/GB | host CPU s/GB | lo pkts |",
	"|---:|---|---:|---:|---:|---:|---:|---:|---:|",
	(rows("stream")[] | "| \(.size | sz) | \(.mode) | \(.gbps.med | fx(2)) | \(.ratio_lo | x) | "
	 + "\(.ratio_plain | x) | \(span(.gbps; 2)) | \(.cpu_s_per_gb.med | fx(2)) | "
	 + "\(.host_s_per_gb.med | fx(2)) | \(pkts) |"), "" else empty end),
	(if (rows("crr") | length) > 0 then
	"## crr: connect, 64 B request and response, close (connections/s; higher is better)", "",
	"| mode | conn/s | × lo | × plain | conn/s min–max | µs per conn (p50) | CPU µs/conn | lo pkts/conn |",
	"|---|---:|---:|---:|---:|---:|---:|---:|",
	(rows("crr")[] | "| \(.mode) | \(.cps.med | fx(0)) | \(.ratio_lo | x) | \(.ratio_plain | x) | "
	 + "\(span(.cps; 0)) | \(.p50_us.med | fx(1)) | \(.cpu_us_per_conn.med | fx(1)) | "
	 + "\(pkts_conn) |"), "" else empty end),
	# mesh: its two modes side by side, one row per figure (rr: p50 and p99).
	(def mh(w; s; md): [$agg[] | select(.workload == w and .size == s and .mode == md)] | .[0];
	 def rx(a; b): if a == null or b == null or b == 0 then "–" else (a / b | fx(2)) + "×" end;
	 [$agg[] | select(.mode == "mesh") | [.workload, .size]] | unique
	 | map(. as [$w, $s] | select(mh($w; $s; "redirect-mesh") != null)) as $keys
	 | if ($keys | length) == 0 then empty else
	"## mesh: app → sidecar → node → sidecar → app (goals: rr p50 ≤ 0.85 × mesh, stream 64 KiB ≥ 1.3 × mesh)", "",
	"Two pods (network namespaces) joined through a node namespace by veths, with the default"
	+ " capture rules of Istio in both and the service DNAT of kube-proxy on the node"
	+ " (tests/mesh-lib.sh, the topology of the mesh tests). App A, the client thread of the"
	+ " driver, dials svc-b:80; the rules of pod A REDIRECT that to sidecar A (llsidecar, uid"
	+ " 1337), which dials svc-b itself; the node DNATs it to pod B:8080, the rules of pod B"
	+ " REDIRECT it to sidecar B, which connects to app B, the server thread of the driver,"
	+ " listening in pod B, from 127.0.0.6. Two local hops (app ↔ sidecar, one in each pod),"
	+ " which loopless can pair, and one across the veths, which it must leave on TCP. mesh:"
	+ " every process outside the loopless cgroup (plain TCP); redirect-mesh: both apps and"
	+ " both sidecars inside it. × is redirect-mesh / mesh, medians of this run. Apps A,B on"
	+ " CPUs \($o.cpus // "(not pinned)"), sidecars A,B on \($o.mesh.sidecar_cpus) (each on the"
	+ " CPU of the app of the other pod). CPU: the apps (the driver, measured window) and the"
	+ " two sidecars (their CPU time over the driver run, at the measured rate) per round trip"
	+ " or per GB; lower is better (host-wide busy time, other tenants included, is in"
	+ " results.json: host_busy_s). lo pkts: packets the lo of each pod received per measurement,"
	+ " mesh / redirect-mesh (the path proof of the local hops); veth pkts: the eth0 of pod A,"
	+ " the hop between the sidecars; loopless, per redirect-mesh measurement: connections it"
	+ " paired (2: the local hops) / sockets it skipped as remote (2: the ends of the hop"
	+ " across the node) / bytes it redirected.", "",
	"| measurement | mesh | redirect-mesh | × | mesh min–max | redirect-mesh min–max | CPU mesh → redirect-mesh | CPU × | lo pkts pod A | lo pkts pod B | veth pkts | loopless pairs / remote / bytes redirected |",
	"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
	($keys[] as [$w, $s] | mh($w; $s; "mesh") as $p | mh($w; $s; "redirect-mesh") as $l
	 | (if $w == "rr" then ["mesh_cpu_per_rt", 1, "µs/round trip"] else ["mesh_cpu_per_gb", 2, "s/GB"] end)
	   as [$h, $hd, $hu]
	 | (if $w == "rr" then [["p50_us", "p50 µs", 1], ["p99_us", "p99 µs", 1]]
	    else [["gbps", "Gbit/s", 2]] end)[] as [$k, $lab, $kd]
	 | "| \($w) \($s | sz), \($lab) | \($p[$k].med | fx($kd)) | \($l[$k].med | fx($kd)) | "
	   + "\(rx($l[$k].med; $p[$k].med)) | \(span($p[$k]; $kd)) | \(span($l[$k]; $kd)) | "
	   + "\($p[$h].med | fx($hd)) → \($l[$h].med | fx($hd)) \($hu) | \(rx($l[$h].med; $p[$h].med)) | "
	   + "\($p.lo_rx.med | fx(0)) / \($l.lo_rx.med | fx(0)) | "
	   + "\($p.lo_rx_b.med | fx(0)) / \($l.lo_rx_b.med | fx(0)) | "
	   + "\($p.dev_rx.med | fx(0)) / \($l.dev_rx.med | fx(0)) | "
	   + "\($l.ll_pairs.med | fx(0)) / \($l.skipped_remote.med | fx(0)) / \($l.redirected_bytes.med | fx(0)) |"), "" end),
	# remote: one row per workload and size both remote modes ran, in the metric where
	# higher is better for all three (rr: transactions/s, not p50), so one goal fits.
	(def rmt(w; s; md): [$agg[] | select(.workload == w and .size == s and .mode == md)] | .[0];
	 def rx(a; b): if a == null or b == null or b == 0 then "–" else (a / b | fx(2)) + "×" end;
	 [$agg[] | select(.mode == "remote") | [.workload, .size]] | unique
	 | map(. as [$w, $s] | select(rmt($w; $s; "redirect-remote") != null)) as $keys
	 | if ($keys | length) == 0 then empty else
	"## remote: a peer in another netns, which loopless leaves alone (goal: redirect-remote ≥ 0.97 × remote)", "",
	"Client in the bench netns, server in a second one, over a veth. remote: both ends"
	+ " outside the loopless cgroup; redirect-remote:"
	+ " inside it, so the loopless programs see every connection and must leave it on TCP."
	+ " × is redirect-remote / remote, medians of this run (rr: transactions/s, stream: Gbit/s,"
	+ " crr: connections/s; higher is better). CPU: both ends, per round trip (µs), per GB (s),"
	+ " per connection (µs); lower is better. host CPU ×: the same ratio for the busy time of"
	+ " all CPUs (/proc/stat), which also holds work done outside the driver (kworkers, softirq"
	+ " on the other CPU) and other tenants. loopless, redirect-remote, per measurement"
	+ " (medians): sockets it put in its map / of them, client ends that left it again at their"
	+ " first incoming segment (provisional_left) / sockets it skipped as remote / bytes it"
	+ " redirected (must be 0).", "",
	"| workload | size | remote | redirect-remote | × | remote min–max | redirect-remote min–max | CPU remote | CPU redirect-remote | CPU × | host CPU × | veth pkts remote / redirect-remote | loopless |",
	"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
	($keys[] as [$w, $s] | rmt($w; $s; "remote") as $p | rmt($w; $s; "redirect-remote") as $l
	 | {rr: ["tps", 0, "cpu_us_per_rt", 1, "dev_rx", 0, "trans/s", "host_us_per_rt"],
	    stream: ["gbps", 2, "cpu_s_per_gb", 3, "dev_rx", 0, "Gbit/s", "host_s_per_gb"],
	    crr: ["cps", 0, "cpu_us_per_conn", 1, "dev_rx_per_conn", 1, "conn/s", "host_us_per_conn"]}[$w]
	   as [$k, $kd, $c, $cd, $pk, $pd, $unit, $h]
	 | "| \($w) (\($unit)) | \($s | sz) | \($p[$k].med | fx($kd)) | \($l[$k].med | fx($kd)) | "
	   + "\(rx($l[$k].med; $p[$k].med)) | \(span($p[$k]; $kd)) | \(span($l[$k]; $kd)) | "
	   + "\($p[$c].med | fx($cd)) | \($l[$c].med | fx($cd)) | \(rx($l[$c].med; $p[$c].med)) | "
	   + "\(rx($l[$h].med; $p[$h].med)) | "
	   + "\($p[$pk].med | fx($pd)) / \($l[$pk].med | fx($pd)) | "
	   + "\($l.sockets_inserted.med | fx(0)) / \($l.provisional_left.med | fx(0)) / "
	   + "\($l.skipped_remote.med | fx(0)) / \($l.redirected_bytes.med | fx(0)) |"), "" end),
	(if (rows("scale") | length) > 0 then
	"## scale: concurrent connected pairs", "",
	"| mode | pairs | connects/s | closes/s | map entries (of max) | KB per pair | sample bytes redirected | sample lo pkts | map empty after close |",
	"|---|---:|---:|---:|---:|---:|---:|---:|---|",
	(rows("scale")[] | "| \(.mode) | \(.pairs.med | fx(0)) | \(.insert_rate.med | fx(0)) | "
	 + "\(.close_rate.med | fx(0)) | \(.map_sockets.med | fx(0)) (\(.max_sockets.med | fx(0))) | "
	 + "\(.kb_per_pair.med | fx(1)) | \(.sample_redirected_bytes.med | fx(0)) of "
	 + "\(.sample_bytes.med | fx(0)) | \(.sample_lo_rx.med | fx(0)) | "
	 + (if .map_empty_all == true then "yes, in \(.map_empty_s.max | fx(2)) s"
	    elif .map_empty_all == false then "**no**" else "–" end) + " |"), "" else empty end)
' "$OUT/results.json" >"$OUT/summary.md"

# Goals (issue 4), from the same aggregates.
jq -r '
	def fx(d): if . == null then null else ((. * pow(10; d)) | round) / pow(10; d) end;
	.aggregate as $a
	| def med(w; s; m; k): [$a[] | select(.workload == w and .size == s and .mode == m)]
		| .[0][k].med // null;
	def goal(name; v; op; target; what):
		"| \(name) | " + (if v == null then "not measured" else "\(v | fx(3))× (\(what))" end)
		+ " | \(op) \(target) | " + (if v == null then "–"
		  elif (op == "≤" and v <= target) or (op == "≥" and v >= target) then "met"
		  else "**missed**" end) + " |";
	def ratio(a; b): if a == null or b == null or b == 0 then null else a / b end;
	def sz: if . >= 1048576 then "\(. / 1048576 | floor) MiB" elif . >= 1024 then
		"\(. / 1024 | floor) KiB" else "\(.) B" end;
	"## Goals", "",
	"| goal | measured (medians, this run) | target | status |", "|---|---|---|---|",
	goal("rr 64 B p50: redirect-lo / lo"; ratio(med("rr"; 64; "redirect-lo"; "p50_us");
		med("rr"; 64; "lo"; "p50_us")); "≤"; 0.75;
		"\(med("rr"; 64; "redirect-lo"; "p50_us") | fx(1)) vs \(med("rr"; 64; "lo"; "p50_us") | fx(1)) µs"),
	goal("rr 64 B p50: redirect-localip / localip"; ratio(med("rr"; 64; "redirect-localip"; "p50_us");
		med("rr"; 64; "localip"; "p50_us")); "≤"; 0.75;
		"\(med("rr"; 64; "redirect-localip"; "p50_us") | fx(1)) vs \(med("rr"; 64; "localip"; "p50_us") | fx(1)) µs"),
	goal("stream 64 KiB: redirect-lo / uds"; ratio(med("stream"; 65536; "redirect-lo"; "gbps");
		med("stream"; 65536; "uds"; "gbps")); "≥"; 1.2;
		"\(med("stream"; 65536; "redirect-lo"; "gbps") | fx(2)) vs \(med("stream"; 65536; "uds"; "gbps") | fx(2)) Gbit/s"),
	goal("stream 64 B: redirect-lo / lo"; ratio(med("stream"; 64; "redirect-lo"; "gbps");
		med("stream"; 64; "lo"; "gbps")); "≥"; 1.0;
		"\(med("stream"; 64; "redirect-lo"; "gbps") | fx(3)) vs \(med("stream"; 64; "lo"; "gbps") | fx(3)) Gbit/s"),
	goal("crr: redirect-lo / lo"; ratio(med("crr"; 64; "redirect-lo"; "cps");
		med("crr"; 64; "lo"; "cps")); "≥"; 0.95;
		"\(med("crr"; 64; "redirect-lo"; "cps") | fx(0)) vs \(med("crr"; 64; "lo"; "cps") | fx(0)) conn/s"),
	goal("crr: redirect-localip / localip"; ratio(med("crr"; 64; "redirect-localip"; "cps");
		med("crr"; 64; "localip"; "cps")); "≥"; 0.95;
		"\(med("crr"; 64; "redirect-localip"; "cps") | fx(0)) vs \(med("crr"; 64; "localip"; "cps") | fx(0)) conn/s"),
	# What loopless costs the traffic it does not accelerate: at most 3%, every workload.
	([$a[] | select(.mode == "remote") | [.workload, .size]] | unique) as $rk
	| (if ($rk | length) == 0 then
		goal("remote: redirect-remote / remote (run with --modes remote,redirect-remote)";
			null; "≥"; 0.97; "")
	   else ($rk[] as [$w, $s]
		| {rr: ["tps", 0, "trans/s", "cpu_us_per_rt", 1, "µs/round trip"],
		   stream: ["gbps", 2, "Gbit/s", "cpu_s_per_gb", 3, "s/GB"],
		   crr: ["cps", 0, "conn/s", "cpu_us_per_conn", 1, "µs/conn"]}[$w]
		  as [$k, $kd, $unit, $c, $cd, $cunit]
		| goal("remote \($w) \($s | sz): redirect-remote / remote";
			ratio(med($w; $s; "redirect-remote"; $k); med($w; $s; "remote"; $k)); "≥"; 0.97;
			"\(med($w; $s; "redirect-remote"; $k) | fx($kd)) vs \(med($w; $s; "remote"; $k) | fx($kd)) \($unit);"
			+ " CPU \(med($w; $s; "redirect-remote"; $c) | fx($cd)) vs \(med($w; $s; "remote"; $c) | fx($cd)) \($cunit)"))
	   end),
	# Pod to pod (cross_netns): the hop between two namespaces redirected.
	(if ([$a[] | select(.mode == "redirect-crossns")] | length) == 0 then
		goal("crossns rr 64 B p50: redirect-crossns / remote (run with --modes remote,redirect-crossns)";
			null; "≤"; 0.75; ""),
		goal("crossns stream 64 KiB: redirect-crossns / remote (run with --modes remote,redirect-crossns)";
			null; "≥"; 2; "")
	 else
		goal("crossns rr 64 B p50: redirect-crossns / remote";
			ratio(med("rr"; 64; "redirect-crossns"; "p50_us"); med("rr"; 64; "remote"; "p50_us")); "≤"; 0.75;
			"\(med("rr"; 64; "redirect-crossns"; "p50_us") | fx(1)) vs \(med("rr"; 64; "remote"; "p50_us") | fx(1)) µs;"
			+ " p99 \(med("rr"; 64; "redirect-crossns"; "p99_us") | fx(1)) vs \(med("rr"; 64; "remote"; "p99_us") | fx(1)) µs"),
		goal("crossns stream 64 KiB: redirect-crossns / remote";
			ratio(med("stream"; 65536; "redirect-crossns"; "gbps"); med("stream"; 65536; "remote"; "gbps")); "≥"; 2;
			"\(med("stream"; 65536; "redirect-crossns"; "gbps") | fx(2)) vs \(med("stream"; 65536; "remote"; "gbps") | fx(2)) Gbit/s")
	 end),
	# The mesh workload: rr p50 at every size it ran, stream at 64 KiB.
	([$a[] | select(.mode == "mesh" and .workload == "rr") | .size] | unique) as $mr
	| (if ([$a[] | select(.mode == "mesh")] | length) == 0 then
		goal("mesh rr p50: redirect-mesh / mesh (run with --workloads mesh)"; null; "≤"; 0.85; ""),
		goal("mesh stream 64 KiB: redirect-mesh / mesh (run with --workloads mesh)"; null; "≥"; 1.3; "")
	   else ($mr[] as $s
		| goal("mesh rr \($s | sz) p50: redirect-mesh / mesh";
			ratio(med("rr"; $s; "redirect-mesh"; "p50_us"); med("rr"; $s; "mesh"; "p50_us")); "≤"; 0.85;
			"\(med("rr"; $s; "redirect-mesh"; "p50_us") | fx(1)) vs \(med("rr"; $s; "mesh"; "p50_us") | fx(1)) µs;"
			+ " p99 \(med("rr"; $s; "redirect-mesh"; "p99_us") | fx(1)) vs \(med("rr"; $s; "mesh"; "p99_us") | fx(1)) µs")),
		goal("mesh stream 64 KiB: redirect-mesh / mesh";
			ratio(med("stream"; 65536; "redirect-mesh"; "gbps"); med("stream"; 65536; "mesh"; "gbps")); "≥"; 1.3;
			"\(med("stream"; 65536; "redirect-mesh"; "gbps") | fx(2)) vs \(med("stream"; 65536; "mesh"; "gbps") | fx(2)) Gbit/s")
	   end),
	([$a[] | select(.workload == "scale" and .mode == "redirect-lo")] | .[0]) as $s
	| "| 100 000 live pairs (redirect-lo) | "
	  + (if $s == null then "not measured | ≥ 100000 | – |" else
	     "\($s.pairs.med) pairs, \($s.map_sockets.med) map entries, sample \($s.sample_redirected_bytes.med)"
	     + " of \($s.sample_bytes.med) bytes redirected, map empty after close: \($s.map_empty_all)"
	     + " | ≥ 100000 | " + (if $s.map_sockets.med >= 2 * $s.pairs.med
	        and $s.sample_redirected_bytes.med >= $s.sample_bytes.med and $s.map_empty_all == true
	        then (if $s.pairs.med >= 100000 then "met"
	              else "checks pass at \($s.pairs.med) pairs; run --pairs 100000 (or --full)" end)
	        else "**missed**" end) + " |" end),
	""
' "$OUT/results.json" >>"$OUT/summary.md"

# Anomalies worth a look: datapath quirks seen in redirect modes, failed measurements.
jq -r '
	# redirect-remote is not accelerated on purpose, and mesh measurements cross two pods:
	# each has a line of its own.
	[.samples[] | select(.error == null and (.mode | startswith("redirect-"))
	 and .mode != "redirect-remote" and .mode != "redirect-mesh")] as $r
	| [.samples[] | select(.error == null and .mode == "redirect-remote")] as $rr
	| [.samples[] | select(.error == null and (.mode == "mesh" or .mode == "redirect-mesh"))] as $ms
	| .machine.loopless_counters as $cn
	| [.samples[] | select(.error != null)] as $e
	| "## Datapath notes", "",
	(if ($r | length) == 0 then empty else
	"- redirect modes: \($r | length) measurements; bytes that took the TCP path: "
	  + "\([$r[] | .passed_bytes // 0] | add // 0) (directions moved to TCP: \([$r[] | .fallbacks // 0] | add // 0)"
	  + " for a lagging reader, \([$r[] | .fallbacks_small // 0] | add // 0) for small-write streams;"
	  + " back to redirect: \([$r[] | .returns // 0] | add // 0); insert errors"
	  + " \([$r[] | .insert_errors // 0] | add // 0)); spurious EAGAIN on blocking"
	  + " reads: \([$r[] | .eagain // 0] | add // 0); most lo packets in one rr/stream"
	  + " measurement: \([$r[] | select(.workload == "rr" or .workload == "stream") | .lo_rx] | max // "–")."
	end),
	(if ($ms | length) == 0 then empty else
	 [$ms[] | select(.mode == "redirect-mesh")] as $ml
	 | def sum(f): [$ml[] | f // 0] | add // 0;
	 "- mesh: \($ms | length) measurements, each through both sidecars (their logs: one"
	 + " connection each, to svc-b and to pod B:8080; no error, no reset). redirect-mesh:"
	 + " loopless paired \([$ml[] | .counters.pairs // 0] | min // "–")–\([$ml[] | .counters.pairs // 0] | max // "–")"
	 + " connections per measurement (the two local hops) and skipped"
	 + " \([$ml[] | .skipped_remote // 0] | min // "–")–\([$ml[] | .skipped_remote // 0] | max // "–")"
	 + " sockets as remote (the two ends of the hop across the node); bytes"
	 + " redirected \(sum(.redirected_bytes)), bytes that took the TCP path \(sum(.passed_bytes))"
	 + " (directions moved to TCP: \(sum(.fallbacks)) for a lagging reader, \(sum(.fallbacks_small))"
	 + " for small-write streams; back to redirect: \(sum(.returns)); spurious EAGAIN:"
	 + " \(sum(.eagain))); most lo packets in one redirect-mesh measurement: pod A"
	 + " \([$ml[] | .lo_rx] | max // "–"), pod B \([$ml[] | .lo_rx_b] | max // "–")." end),
	(if ($rr | length) == 0 then empty else
	 ([$rr[] | .redirected_bytes // 0] | add) as $rb
	 | "- redirect-remote: \($rr | length) measurements; loopless counters summed over them"
	   + " (non-zero only): " + ([$cn[] as $k | [$rr[] | .counters[$k] // 0] | add | select(. != 0)
	      | "\($k) \(.)"] | if length == 0 then "none" else join(", ") end)
	   + (if $rb == 0 then "; no byte redirected, as it must be (the peer is in another netns)."
	      else "; **\($rb) bytes redirected to a peer in another netns: a datapath bug**." end)
	 end),
	([$r[] | select(.workload == "stream")] | max_by(.lag_bytes) // null) as $l
	| if $l == null then empty else
	  "- largest backlog when a redirected stream writer stopped (written, not yet read):"
	  + " \($l.lag_bytes / 1048576 * 100 | round / 100) MiB (\($l.mode), \($l.size)-byte writes,"
	  + " drained in \($l.drain_ms) ms)." end,
	# Not mesh: its sidecars share the pinned CPUs with the driver by design.
	([.samples[] | select(.error == null and .workload != "scale" and .duration_s > 0
	  and .mode != "mesh" and .mode != "redirect-mesh")]) as $t
	| ([$t[] | select(.cpu_s / .duration_s < 0.8)]) as $c
	| if .options.placement != "same" or ($t | length) == 0 then empty else
	  "- noise: \($c | length) of \($t | length) measurements got less than 80% of their pinned CPU"
	  + " (another tenant ran there)"
	  + (if ($c | length) > 0 then ": " + ([$c[] | "\(.workload) \(.size) \(.mode) rep \(.rep)"]
	     | .[0:8] | join(", ")) + (if ($c | length) > 8 then ", …" else "" end) else "" end)
	  + ". They are kept; medians absorb a few, and the CPU-per-operation columns are the"
	  + " figures they disturb least." end,
	(if ($e | length) > 0 then "- **\($e | length) measurements failed**:",
	 ($e[] | "  - \(.workload) \(.size) \(.mode) rep \(.rep): \(.error)")
	 else "- no measurement failed." end),
	(if $retried > 0 then "- \($retried) failed attempts were run again (up to \($tries) tries each)."
	 else empty end), ""
' --argjson retried "$RETRIED" --argjson tries "$JOB_TRIES" "$OUT/results.json" >>"$OUT/summary.md"

# Both CPU placements side by side: redirect-lo / lo, each within its placement.
if [ -n "$OTHER_PLACEMENT" ]; then
	jq -r --arg main "$PLACEMENT" --arg other "$OTHER_PLACEMENT" '
		.aggregate as $a
		| def agg(w; s; m): [$a[] | select(.workload == w and .size == s and .mode == m)] | .[0];
		def fx(d): if . == null then "–" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
		def name(p): if p == "same" then "one CPU" else "two CPUs" end;
		def cell(w; s; m; k; d; u): agg(w; s; "redirect-" + m) as $r | agg(w; s; m) as $p
			| if $r == null or $p == null or $p[k].med == null or $p[k].med == 0 then "–"
			  else "\($r[k].med / $p[k].med | fx(2))× (\($r[k].med | fx(d)) vs \($p[k].med | fx(d)) \(u))" end;
		[[ "rr", 64, "rr 64 B p50", "p50_us", 1, "µs" ], [ "stream", 64, "stream 64 B", "gbps", 3, "Gbit/s" ],
		 [ "stream", 1024, "stream 1 KiB", "gbps", 2, "Gbit/s" ],
		 [ "stream", 65536, "stream 64 KiB", "gbps", 2, "Gbit/s" ]] as $rows
		| [$rows[] | select(.[0] as $w | .[1] as $s | agg($w; $s; "lo." + $other) != null)] as $have
		| if ($have | length) == 0 then empty else
		"## CPU placement: redirect-lo / lo, client and server threads on \(name($main)) and on \(name($other))", "",
		"Each ratio is within one placement (medians of this run; rr: lower is better, stream: higher).", "",
		"| measurement | \(name($main)) | \(name($other)) |", "|---|---:|---:|",
		($have[] as [$w, $s, $what, $k, $d, $u]
		 | "| \($what) | \(cell($w; $s; "lo"; $k; $d; $u)) | \(cell($w; $s; "lo." + $other; $k; $d; $u)) |"), ""
		end
	' "$OUT/results.json" >>"$OUT/summary.md"
fi

if [ -s "$MEM_JSON" ]; then
	jq -rs --arg sleep "$MEM_SLEEP" '
		def med: sort | .[(length - 1) / 2 | floor];
		([.[] | select(.mode == "lo") | .peak_bytes] | med) as $p
		| ([.[] | select(.mode == "redirect-lo") | .peak_bytes] | med) as $l
		| "## memory: a reader that sleeps \($sleep) s under a 1 GiB writer", "",
		  "| mode | peak queued (MB) | × lo |", "|---|---:|---:|",
		  "| lo | \($p / 1e6 * 100 | round / 100) | 1.00× |",
		  "| redirect-lo | \($l / 1e6 * 100 | round / 100) | \($l / $p * 100 | round / 100)× |",
		  "", "Receive + write queue of the connection (SO_MEMINFO), plus the redirected queue"
		  + " (FIONREAD) for loopless; median of \(length / 2 | floor) repeats.", ""
	' "$MEM_JSON" >>"$OUT/summary.md"
	jq -s '{memory: .}' "$MEM_JSON" >"$TMP/memory.json"
	jq -s '.[0] + .[1]' "$OUT/results.json" "$TMP/memory.json" >"$TMP/results.json" &&
		mv "$TMP/results.json" "$OUT/results.json"
fi

# ---- plots ---------------------------------------------------------------------------------

plot_all() {
	local d="$OUT/plot-data" m modes_rr='' modes_st='' title y50 y99
	mkdir -p "$d"
	for m in $MODES $([ $need_mesh = 1 ] && echo "$MESH_MODES"); do
		jq -r --arg m "$m" '.aggregate[] | select(.workload == "rr" and .mode == $m)
			| "\(.size) \(.p50_us.med) \(.p50_us.min) \(.p50_us.max) \(.p99_us.med) \(.p99_us.min) \(.p99_us.max)"' \
			"$OUT/results.json" | sort -n >"$d/rr-$m.dat"
		[ -s "$d/rr-$m.dat" ] && modes_rr="$modes_rr $m"
		jq -r --arg m "$m" '.aggregate[] | select(.workload == "stream" and .mode == $m)
			| "\(.size) \(.gbps.med) \(.gbps.min) \(.gbps.max) \(.cpu_s_per_gb.med) \(.cpu_s_per_gb.min) \(.cpu_s_per_gb.max)"' \
			"$OUT/results.json" | sort -n >"$d/stream-$m.dat"
		[ -s "$d/stream-$m.dat" ] && modes_st="$modes_st $m"
	done
	jq -r '.options.modes as $o | [.aggregate[] | select(.workload == "crr")]
		| sort_by(.mode as $m | $o | index($m))[]
		| "\"\(.mode)\" \(.cps.med) \(.cps.min) \(.cps.max)"' "$OUT/results.json" >"$d/crr.dat"
	title="$(jq -r '.machine | "\(.date[0:10]), \(.host): kernel \(.kernel), \(.cores) cores"' \
		"$OUT/results.json") — medians of $REPEAT × ${DURATION} s, bars: min–max"
	# Latency axes stop at 1.5 × the largest median: one noisy repeat's bar may leave the plot.
	y50=$(cat "$d"/rr-*.dat 2>/dev/null | awk '$2 > m { m = $2 } END { print m * 1.5 }')
	y99=$(cat "$d"/rr-*.dat 2>/dev/null | awk '$5 > m { m = $5 } END { print m * 1.5 }')
	cat >"$OUT/plots.gp" <<EOF
# Generated by bench/run.sh; re-run with: cd $OUT && gnuplot plots.gp
set terminal pngcairo size 1100,560 font "DejaVu Sans,10" noenhanced
modes_rr = "${modes_rr# }"
modes_st = "${modes_st# }"
# One colour per address, solid = loopless redirect (and uds), dashed = plain TCP.
color(m) = (strstrt(m, "localip") ? "#2ca02c" : strstrt(m, "lo6") ? "#9467bd" : \\
	strstrt(m, "remote") ? "#d62728" : strstrt(m, "mesh") ? "#8c564b" : \\
	strstrt(m, "lo") ? "#1f77b4" : m eq "uds" ? "#ff7f0e" : "#7f7f7f")
dash(m) = (strstrt(m, "redirect-") ? 1 : m eq "uds" ? 1 : m eq "pipe" ? 3 : 2)
set logscale x 2
set grid
set xtics ("64 B" 64, "256 B" 256, "1 KiB" 1024, "4 KiB" 4096, "16 KiB" 16384, \\
	"64 KiB" 65536, "256 KiB" 262144, "1 MiB" 1048576)
EOF
	[ -n "$modes_rr" ] && cat >>"$OUT/plots.gp" <<EOF
set output "latency.png"
set multiplot layout 1,2 title "rr: round-trip latency by mode and message size (lower is better)\n$title"
set xrange [45:23000]
set xlabel "message size (bytes per request and per response)"
set key top left opaque box
set title "p50"
set ylabel "µs per round trip (p50)"
set yrange [0:$y50]
plot for [m in modes_rr] "plot-data/rr-".m.".dat" using 1:2:3:4 with yerrorlines \\
	lw 2 lc rgb color(m) dt dash(m) title m
set title "p99 (legend: left)"
unset key
set ylabel "µs per round trip (p99)"
set yrange [0:$y99]
plot for [m in modes_rr] "plot-data/rr-".m.".dat" using 1:5:6:7 with yerrorlines \\
	lw 2 lc rgb color(m) dt dash(m) title m
unset multiplot
EOF
	[ -n "$modes_st" ] && cat >>"$OUT/plots.gp" <<EOF
set xrange [45:1500000]
set xlabel "bytes per write() (the reader reads up to 256 KiB)"
set logscale y 10
set yrange [*:*]
set key bottom right
set output "throughput.png"
set title "stream: one-way throughput by write size (higher is better)\n$title"
set ylabel "Gbit/s (log scale)"
plot for [m in modes_st] "plot-data/stream-".m.".dat" using 1:2:3:4 with yerrorlines \\
	lw 2 lc rgb color(m) dt dash(m) title m
set output "cpu.png"
set title "stream: CPU seconds per GB moved, writer and reader together (lower is better)\n$title"
set ylabel "CPU s per GB (user + system, log scale)"
set key top right
plot for [m in modes_st] "plot-data/stream-".m.".dat" using 1:5:6:7 with yerrorlines \\
	lw 2 lc rgb color(m) dt dash(m) title m
unset logscale y
EOF
	[ -s "$d/crr.dat" ] && cat >>"$OUT/plots.gp" <<EOF
set terminal pngcairo size 900,460 font "DejaVu Sans,10" noenhanced
set output "crr.png"
unset logscale x
set xtics auto
set xrange [*:*]
set title "crr: connect + 64 B request/response + close (higher is better)\n$title"
set ylabel "connections per second"
set xlabel "mode (dark: loopless redirect)"
set yrange [0:*]
set style fill solid 0.7
set boxwidth 0.6
unset key
plot "plot-data/crr.dat" using 0:2:(strstrt(strcol(1), "redirect") ? 0x1f77b4 : 0x9ecae1):xtic(1) \\
	with boxes lc rgb variable, "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0
EOF
	(cd "$OUT" && gnuplot plots.gp 2>"$TMP/gnuplot.err") ||
		echo "$PROG: gnuplot failed: $(head -3 "$TMP/gnuplot.err" | tr '\n' ' ')" >&2
}
[ $PLOTS = 1 ] && plot_all

cat "$OUT/summary.md"
echo "$PROG: $NJOBS measurements in $ELAPSED s; results in $OUT" >&2
[ $FAILED -eq 0 ] || { echo "$PROG: $FAILED measurements failed (see summary.md)" >&2; exit 1; }
exit 0
