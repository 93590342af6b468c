# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Shared helpers for tests and benches: every run gets its own netns, cgroup,
# pin dir and temp dir, named loopless-<what>-<pid>-<n>, removed on exit.
# Source it, then call env_setup; env_cleanup runs from the EXIT trap.

: "${BUILD:=build}"
LOOPLESSD=${LOOPLESSD:-$BUILD/looplessd}
LOOPLESS=${LOOPLESS:-$BUILD/loopless}
LLTRAFFIC=${LLTRAFFIC:-$BUILD/lltraffic}

die() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "  $*"; }

cgroup2_root() {
	awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

# env_setup NAME: creates $NS (netns with lo up), $CG (cgroup v2 dir),
# $PIN (bpffs pin dir path, created by looplessd), $TMP, and sets the trap.
env_setup() {
	local name=$1
	ENV_ID="loopless-$name-$$"
	NS="$ENV_ID"
	CG2=$(cgroup2_root)
	[ -n "$CG2" ] || die "no cgroup2 mount"
	CG="$CG2/$ENV_ID"
	PIN="/sys/fs/bpf/$ENV_ID"
	TMP=$(mktemp -d "/tmp/$ENV_ID.XXXXXX")
	EXTRA_NS=()
	DAEMON_PID=
	trap env_cleanup EXIT
	ip netns add "$NS" || die "ip netns add $NS"
	ip -n "$NS" link set lo up
	mkdir "$CG" || die "mkdir $CG"
}

env_cleanup() {
	local rc=$?
	set +e
	stop_daemon KILL
	[ -d "$PIN" ] && "$LOOPLESS" --pin-dir "$PIN" uninstall >/dev/null 2>&1
	[ -d "$PIN" ] && rm -rf "$PIN"
	if [ -d "$CG" ]; then
		# Children first: tests may create sub-cgroups.
		find "$CG" -mindepth 1 -depth -type d 2>/dev/null | while read -r d; do
			kill_cgroup "$d"; rmdir "$d"; done
		kill_cgroup "$CG"
		rmdir "$CG" 2>/dev/null || { sleep 0.2; rmdir "$CG"; }
	fi
	for ns in "$NS" "${EXTRA_NS[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
	exit $rc
}

kill_cgroup() {
	local pid
	[ -f "$1/cgroup.procs" ] || return 0
	for pid in $(cat "$1/cgroup.procs"); do kill -9 "$pid" 2>/dev/null; done
	for _ in $(seq 50); do [ -s "$1/cgroup.procs" ] || return 0; sleep 0.05; done
}

# add_netns NAME: another netns, removed with the rest; its name in $NEW_NS
# (not printed: a $(...) subshell would lose it from the cleanup list).
add_netns() {
	NEW_NS="$ENV_ID-$1"
	EXTRA_NS+=("$NEW_NS")
	ip netns add "$NEW_NS" || die "ip netns add $NEW_NS"
	ip -n "$NEW_NS" link set lo up
}

# start_daemon [looplessd args...]: starts looplessd on $PIN (and $CG unless
# a --cgroup or --config is given) and waits until it is attached.
start_daemon() {
	local args=("$@") n0
	case " ${args[*]} " in
	*" --cgroup "* | *" --config "* | *" -c "*) ;;
	*) args+=(--cgroup "$CG") ;;
	esac
	case " ${args[*]} " in
	*" --config "* | *" -c "*) ;;
	*) args+=(--config /dev/null) ;;
	esac
	# A restart appends to the same log: wait for this daemon's line.
	n0=$(grep -c "datapath in" "$TMP/looplessd.log" 2>/dev/null)
	"$LOOPLESSD" --pin-dir "$PIN" "${args[@]}" >>"$TMP/looplessd.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		if "$LOOPLESS" --pin-dir "$PIN" status >/dev/null 2>&1 &&
			[ "$(grep -c "datapath in" "$TMP/looplessd.log")" -gt "${n0:-0}" ]; then
			return 0
		fi
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$TMP/looplessd.log" >&2
	die "looplessd did not become ready"
}

stop_daemon() {
	local sig=${1:-TERM}
	[ -n "$DAEMON_PID" ] || return 0
	kill -"$sig" "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

# in_ns_cg NS CGROUP CMD...: run CMD inside netns NS as a member of CGROUP
# ("" for none). The cgroup is joined before `ip netns exec`, which remounts
# /sys in a new mount namespace (bpffs and the cgroup2 mount are not visible
# there). Into the cgroup a running looplessd serves through `loopless exec`,
# as a user would (so every test and bench run uses it); into any other
# (a plain run's, or with no daemon up) by writing cgroup.procs.
in_ns_cg() {
	ns_cg_prefix "$1" "$2"
	shift 2
	"${NS_CG[@]}" "$@"
}

# ns_cg_prefix NS CGROUP: NS_CG=(the command that in_ns_cg puts before CMD).
# For `"${NS_CG[@]}" CMD... &`, whose $! is then CMD's own pid (each step
# execs the next).
ns_cg_prefix() {
	local ns=$1 cg=$2
	if [ -n "$cg" ] && [ "$cg" = "$CG" ] && [ -n "${DAEMON_PID:-}" ] &&
		kill -0 "$DAEMON_PID" 2>/dev/null; then
		NS_CG=("$LOOPLESS" --pin-dir "$PIN" exec --group "$cg" -- ip netns exec "$ns")
	elif [ -n "$cg" ]; then
		# shellcheck disable=SC2016 # $$ and $0 are the inner sh's
		NS_CG=(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" ip netns exec "$ns")
	else
		NS_CG=(ip netns exec "$ns")
	fi
}

stat_json() { "$LOOPLESS" --pin-dir "$PIN" stats --json; }
# stats_grown JSON KEY...: "key +N" for each KEY, N its growth since the
# stat_json output JSON (for logs).
stats_grown() {
	local before=$1 now key
	shift
	now=$(stat_json)
	for key in "$@"; do
		printf '%s +%s ' "$key" $(($(jq -r ".$key" <<<"$now") - $(jq -r ".$key // 0" <<<"$before")))
	done
}
counter() { stat_json | jq -r ".$1"; }
lo_rx() { ip netns exec "${1:-$NS}" cat /sys/class/net/lo/statistics/rx_packets; }

# kv LINE KEY: value of key=value in an lltraffic output line.
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
