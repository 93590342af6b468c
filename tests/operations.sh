# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Integration tests, operations: live reload, the metrics endpoint, the
# systemd unit, make install, man pages, deployment files (helpers in
# tests/lib.sh and tests/integration.sh).

# ---- Operations: live reload, metrics endpoint, systemd unit, install, deploy ----
# (issue 5). Helpers first, then the t_* functions.

# reload_daemon: SIGHUP and wait until the daemon says how it went (a
# "reloaded" or a "rejected"/"failed" line; at log_level warn and above the
# former is not logged: wait for something else then). Prints "ok",
# "rejected", or "none" after 5 s.
reload_daemon() {
	local n0 n
	n0=$(grep -cE "reloaded$|rejected|reload failed" "$TMP/looplessd.log")
	kill -HUP "$DAEMON_PID" || die "no daemon to reload"
	for _ in $(seq 100); do
		n=$(grep -cE "reloaded$|rejected|reload failed" "$TMP/looplessd.log")
		if [ "$n" -gt "$n0" ]; then
			tail -1 "$TMP/looplessd.log" | grep -q "reloaded$" && echo ok || echo rejected
			return 0
		fi
		sleep 0.05
	done
	echo none
}

# conf TEXT...: the test's config file, one line per argument.
conf() { printf '%s\n' "$@" >"$TMP/conf"; }

# wait_file PATH: an lltraffic ready file.
wait_file() {
	for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	die "$1 never appeared"
}

# paused_pair NAME CGROUP PORT: a connection that moves 8 MiB, then waits
# (established, in the sockhash) until resume_pair NAME; its 32 MiB are
# verified at the end. The pid goes to $PAIR_PID.
paused_pair() {
	pair_checked "$NS" "$2" $KEEPUP --connect 127.0.0.1 --port "$3" --bytes 32M --pause-after 8M \
		--ready-file "$TMP/$1.ready" --resume-file "$TMP/$1.resume" >"$TMP/$1.out" &
	PAIR_PID=$!
	wait_file "$TMP/$1.ready"
}
resume_pair() { # resume_pair NAME PID
	touch "$TMP/$1.resume"
	wait "$2" || die "paused connection $1 broke: $(cat "$TMP/$1.out")"
}

# rmdir_tree DIR: remove a cgroup and its descendants once they are empty.
rmdir_tree() {
	[ -d "$1" ] || return 0
	for _ in $(seq 50); do
		find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ -d "$1" ] || return 0
		sleep 0.1
	done
	return 1
}

sock_ops_count() { bpftool cgroup show "$1" 2>/dev/null | grep -c sock_ops; }

PROMTOOL=${PROMTOOL:-$(command -v promtool || echo .deps/bin/promtool)}
# metrics_at: the address the daemon last said it serves on.
metrics_at() {
	sed -n 's#.*metrics: serving http://\([^/]*\)/metrics.*#\1#p' "$TMP/looplessd.log" | tail -1
}
# started_metrics_at: the endpoint of a daemon start_daemon just started; its
# line is logged right after the one start_daemon waits for.
started_metrics_at() {
	local at
	for _ in $(seq 100); do at=$(metrics_at); [ -n "$at" ] && break; sleep 0.05; done
	echo "$at"
}
http() { curl -sS --noproxy '*' --max-time 5 "$@"; }
http_code() { curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
# sample TEXT METRIC: the value of one sample ("name" or "name{labels}").
sample() { awk -v m="$2" '$1 == m { print $2 }' <<<"$1"; }

# Reload: a port added to exclude_ports applies to new connections (not
# redirected, counted as skipped_port) while a connection established before
# the reload keeps working, and stays redirected; removing it again makes new
# connections redirected again.
t_reload_ports() {
	local r0 s0 pid
	conf "[daemon]" "cgroup = $CG"
	start_daemon --config "$TMP/conf"
	paused_pair old "$CG" 7400
	pid=$PAIR_PID
	conf "[daemon]" "cgroup = $CG" "[datapath]" "exclude_ports = 7400-7401"
	[ "$(reload_daemon)" = ok ] || die "reload adding exclude_ports: $(tail -3 "$TMP/looplessd.log")"
	r0=$(counter redirected_bytes)
	s0=$(counter skipped_port)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --port 7401 --bytes 16M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "a newly excluded port was redirected"
	[ "$(counter skipped_port)" -ge $((s0 + 2)) ] || die "skipped_port did not count both ends"
	log "after reload: port 7401 excluded (skipped_port $s0 -> $(counter skipped_port))"
	resume_pair old "$pid"
	assert_redirected "$r0" $((24 << 20))
	log "connection established before the reload: all bytes right, still redirected"
	conf "[daemon]" "cgroup = $CG"
	[ "$(reload_daemon)" = ok ] || die "reload removing exclude_ports"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --port 7401 --bytes 16M >/dev/null
	assert_redirected "$r0" $((16 << 20))
	log "exclusion removed by reload: port 7401 redirected again"
}

# Reload: a second cgroup added gets the sockops program (its processes are
# redirected), a cgroup removed loses it (bpftool shows no sock_ops, new
# connections there stay on TCP) while its open connection keeps working.
t_reload_cgroups() {
	local a="$CG/a" b="$CG/b" r0 pid
	mkdir "$a" "$b"
	conf "[daemon]" "cgroup = $a"
	start_daemon --config "$TMP/conf"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$b" $KEEPUP --connect 127.0.0.1 --bytes 8M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "cgroup b redirected before it was added"
	conf "[daemon]" "cgroup = $a" "cgroup = $b"
	[ "$(reload_daemon)" = ok ] || die "reload adding cgroup b: $(tail -3 "$TMP/looplessd.log")"
	[ "$(sock_ops_count "$b")" -eq 1 ] || die "no sock_ops on $b after the reload"
	[ "$(sock_ops_count "$a")" -eq 1 ] || die "$a lost or doubled its sock_ops"
	pair_checked "$NS" "$b" $KEEPUP --connect 127.0.0.1 --bytes 16M >/dev/null
	assert_redirected "$r0" $((16 << 20))
	log "cgroup b added by reload: its process is redirected"

	paused_pair old "$a" 7410
	pid=$PAIR_PID
	conf "[daemon]" "cgroup = $b"
	[ "$(reload_daemon)" = ok ] || die "reload removing cgroup a"
	[ "$(sock_ops_count "$a")" -eq 0 ] ||
		die "sock_ops still attached to $a: $(bpftool cgroup show "$a")"
	[ "$(sock_ops_count "$b")" -eq 1 ] || die "$b lost its sock_ops"
	"$LOOPLESS" --pin-dir "$PIN" status | grep -q "$a " && die "status still lists $a"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$a" $KEEPUP --connect 127.0.0.1 --port 7411 --bytes 8M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "removed cgroup a still redirected"
	resume_pair old "$pid"
	log "cgroup a removed by reload: no sock_ops, new connections on TCP, open one intact"
}

# Reload: log_level changes take effect (debug lines appear; at warn a
# reload logs nothing but errors).
t_reload_log_level() {
	local n
	conf "[daemon]" "cgroup = $CG" "log_level = info"
	start_daemon --config "$TMP/conf"
	conf "[daemon]" "cgroup = $CG" "log_level = debug"
	[ "$(reload_daemon)" = ok ] || die "reload to debug"
	grep -q "log_level: info -> debug" "$TMP/looplessd.log" || die "level change not logged"
	grep -q "looplessd: running: 1 cgroup(s)" "$TMP/looplessd.log" || die "no debug line at debug"
	# At warn even "reloaded" is quiet: wait for the change line itself.
	conf "[daemon]" "cgroup = $CG" "log_level = warn"
	kill -HUP "$DAEMON_PID"
	for _ in $(seq 100); do
		grep -q "log_level: debug -> warn" "$TMP/looplessd.log" && break
		sleep 0.05
	done
	grep -q "log_level: debug -> warn" "$TMP/looplessd.log" || die "level change not logged"
	sleep 0.2
	tail -1 "$TMP/looplessd.log" | grep -q "reloaded" && die "info line logged at warn"
	n=$(wc -l <"$TMP/looplessd.log")
	conf "[daemon]" "cgroup = $CG" "log_level = warn" "bogus = 1"
	[ "$(reload_daemon)" = rejected ] || die "broken reload at warn not reported"
	# Only the two error lines: no "reloading ..." (info) any more.
	[ $(($(wc -l <"$TMP/looplessd.log") - n)) -eq 2 ] ||
		die "at warn, a rejected reload logged: $(tail -n +$((n + 1)) "$TMP/looplessd.log")"
	log "$(grep "log_level:" "$TMP/looplessd.log" | tr '\n' ' ')"
}

# Reload: a broken file (syntax, a missing cgroup, a bad or busy metrics
# address) is rejected with one line naming the problem, and everything
# keeps running as before: the exclusion, the attachment, the endpoint.
t_reload_broken() {
	local at r0 s0 busy_port py_pid
	conf "[daemon]" "cgroup = $CG" "metrics = 127.0.0.1:0" "[datapath]" "exclude_ports = 7500"
	start_daemon --config "$TMP/conf"
	at=$(started_metrics_at)
	[ -n "$at" ] || die "no metrics endpoint logged"
	conf "[daemon]" "cgroup = $CG" "log_levle = debug"
	[ "$(reload_daemon)" = rejected ] || die "a bad key was not rejected"
	grep -q "conf:3: unknown key \"log_levle\" in \[daemon\]" "$TMP/looplessd.log" ||
		die "no file:line message: $(tail -2 "$TMP/looplessd.log")"
	conf "[daemon]" "cgroup = $CG" "cgroup = /no/such/cgroup-loopless"
	[ "$(reload_daemon)" = rejected ] || die "a missing cgroup was not rejected"
	grep -q "conf:3: cgroup \"/no/such/cgroup-loopless\".*No such file" "$TMP/looplessd.log" ||
		die "missing cgroup message: $(tail -2 "$TMP/looplessd.log")"
	conf "[daemon]" "cgroup = $CG" "metrics = 127.0.0.1:99999"
	[ "$(reload_daemon)" = rejected ] || die "a bad metrics port was not rejected"
	grep -q 'conf:3: bad value for "metrics" in \[daemon\]: port "99999" out of range' \
		"$TMP/looplessd.log" || die "metrics message: $(tail -2 "$TMP/looplessd.log")"
	# A port another process holds.
	python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True)
time.sleep(30)' >"$TMP/busy" &
	py_pid=$!
	wait_file "$TMP/busy"
	# python3 can take seconds to start on a loaded machine.
	for _ in $(seq 400); do busy_port=$(cat "$TMP/busy"); [ -n "$busy_port" ] && break; sleep 0.05; done
	[ -n "$busy_port" ] || die "the port-holding helper did not start"
	conf "[daemon]" "cgroup = $CG" "metrics = 127.0.0.1:$busy_port"
	[ "$(reload_daemon)" = rejected ] || die "a busy metrics port was not rejected"
	kill "$py_pid"
	grep -q "cannot listen on 127.0.0.1:$busy_port for metrics: Address already in use" \
		"$TMP/looplessd.log" || die "busy port message: $(tail -2 "$TMP/looplessd.log")"
	[ "$(grep -c "configuration rejected, keeping the running one" "$TMP/looplessd.log")" -eq 4 ] ||
		die "not every rejection said so"
	grep "conf:\|cannot listen" "$TMP/looplessd.log" | while read -r l; do log "$l"; done

	# Everything as before.
	kill -0 "$DAEMON_PID" || die "the daemon died"
	[ "$(sock_ops_count "$CG")" -eq 1 ] || die "attachment changed"
	[ "$(metrics_at)" = "$at" ] || die "metrics moved"
	[ "$(http_code "http://$at/healthz")" = 200 ] || die "endpoint gone after rejections"
	[ "$(sample "$(http "http://$at/metrics")" loopless_config_last_reload_successful)" = 0 ] ||
		die "last_reload_successful is not 0"
	r0=$(counter redirected_bytes)
	s0=$(counter skipped_port)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --port 7500 --bytes 8M >/dev/null
	[ "$(counter redirected_bytes)" -eq "$r0" ] || die "exclusion lost by a rejected reload"
	[ "$(counter skipped_port)" -ge $((s0 + 2)) ] || die "skipped_port did not count"
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --port 7501 --bytes 8M >/dev/null
	assert_redirected "$r0" $((8 << 20))
	conf "[daemon]" "cgroup = $CG" "metrics = 127.0.0.1:0" "[datapath]" "exclude_ports = 7500"
	[ "$(reload_daemon)" = ok ] || die "a good reload after bad ones"
	[ "$(sample "$(http "http://$at/metrics")" loopless_config_last_reload_successful)" = 1 ] ||
		die "last_reload_successful is not back to 1"
}

# The metrics endpoint: promtool-valid Prometheus text, numbers that move
# with redirected traffic and equal `loopless stats` (one reader), /healthz,
# 404/405, and reload turning it on, moving it (IPv4 -> [::1]) and off.
t_metrics() {
	local at text text2 stats r0 pid v at6
	[ -x "$PROMTOOL" ] || die "promtool not found (make deps puts it in .deps/bin)"
	conf "[daemon]" "cgroup = $CG" "metrics = 127.0.0.1:0"
	start_daemon --config "$TMP/conf"
	at=$(started_metrics_at)
	[ -n "$at" ] || die "no 'serving' line: $(cat "$TMP/looplessd.log")"
	text=$(http "http://$at/metrics") || die "GET /metrics failed"
	"$PROMTOOL" check metrics <<<"$text" || die "promtool check metrics failed"
	[ "$(http_code "http://$at/healthz")" = 200 ] || die "/healthz not 200"
	[ "$(http "http://$at/healthz")" = ok ] || die "/healthz body"
	[ "$(http_code "http://$at/")" = 404 ] || die "/ not 404"
	[ "$(http_code "http://$at/metricsx")" = 404 ] || die "/metricsx not 404"
	[ "$(http_code -X POST "http://$at/metrics")" = 405 ] || die "POST not 405"
	[ "$(http_code -I "http://$at/metrics")" = 200 ] || die "HEAD not 200"
	http -i "http://$at/metrics" | grep -qi '^content-type: text/plain; version=0.0.4' ||
		die "content type"
	v=$("$LOOPLESSD" --version | awk '{print $2}')
	grep -qx "loopless_build_info{version=\"$v\"} 1" <<<"$text" || die "build_info"
	[ "$(sample "$text" loopless_attached_cgroups)" = 1 ] || die "attached_cgroups"

	r0=$(sample "$text" loopless_redirected_bytes_total)
	paused_pair p "$CG" 7600
	pid=$PAIR_PID
	text=$(http "http://$at/metrics")
	[ "$(sample "$text" loopless_active_sockets)" -ge 2 ] || die "active_sockets with a live pair"
	resume_pair p "$pid"
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 16M >/dev/null
	text=$(http "http://$at/metrics")
	"$PROMTOOL" check metrics <<<"$text" || die "promtool after traffic"
	# 48 MiB went through; each connection's first write takes TCP
	# (its reader had only polled: it might splice).
	[ $(($(sample "$text" loopless_redirected_bytes_total) - r0)) -ge $((48 * 95 / 100 << 20)) ] ||
		die "redirected_bytes_total did not move with the traffic"
	# Same reader as `loopless stats`: with no traffic in between, equal.
	stats=$(stat_json)
	for v in redirected_bytes:loopless_redirected_bytes_total \
		redirected_msgs:loopless_redirected_messages_total \
		passed_msgs:loopless_passed_messages_total \
		sockets_inserted:loopless_sockets_inserted_total \
		insert_errors:loopless_insert_errors_total \
		skipped_remote:'loopless_sockets_skipped_total{reason="remote"}' \
		skipped_port:'loopless_sockets_skipped_total{reason="port"}' \
		sockets:loopless_active_sockets max_sockets:loopless_map_capacity; do
		[ "$(jq -r ".${v%%:*}" <<<"$stats")" = "$(sample "$text" "${v#*:}")" ] ||
			die "stats ${v%%:*} != ${v#*:}: $stats / $text"
	done
	echo "$text" >"$BUILD/test-logs/metrics.txt"
	log "after $((48 << 20)) bytes: $(grep -E '^loopless_(redirected_bytes|sockets_inserted)_total' \
		<<<"$text" | tr '\n' ' ')"

	# Reload: move to [::1], then off; a bad address is refused up front.
	conf "[daemon]" "cgroup = $CG" "metrics = [::1]:0"
	[ "$(reload_daemon)" = ok ] || die "reload to [::1]"
	at6=$(metrics_at)
	case "$at6" in "[::1]:"*) ;; *) die "not serving on [::1]: $at6" ;; esac
	text2=$(http "http://$at6/metrics") || die "GET on [::1]"
	"$PROMTOOL" check metrics <<<"$text2" || die "promtool on [::1]"
	[ "$(http_code "http://$at/metrics")" = 000 ] || die "old address still answers"
	conf "[daemon]" "cgroup = $CG"
	[ "$(reload_daemon)" = ok ] || die "reload to off"
	grep -q "metrics: stopped serving on \[::1\]" "$TMP/looplessd.log" || die "stop not logged"
	[ "$(http_code "http://$at6/metrics")" = 000 ] || die "endpoint still answers when off"
	log "moved to $at6 by reload, then off"
	"$LOOPLESSD" --config /dev/null --metrics nope:1 --check >"$TMP/out" 2>&1
	[ $? -eq 2 ] || die "--metrics nope:1 accepted"
	grep -q 'looplessd: --metrics: "nope" is not an IPv4 address' "$TMP/out" || die "$(cat "$TMP/out")"
}

# /healthz says 503 (and why) when a configured cgroup disappears.
t_metrics_health() {
	local at
	mkdir "$CG/gone"
	start_daemon --cgroup "$CG/gone" --metrics 127.0.0.1:0
	at=$(started_metrics_at)
	[ "$(http_code "http://$at/healthz")" = 200 ] || die "/healthz not 200"
	rmdir "$CG/gone"
	for _ in $(seq 50); do
		[ "$(http_code "http://$at/healthz")" = 503 ] && break
		sleep 0.1
	done
	[ "$(http_code "http://$at/healthz")" = 503 ] || die "/healthz not 503 without the cgroup"
	log "$(http "http://$at/healthz")"
}

# The systemd unit: `systemd-analyze verify` says nothing (unknown keys and
# bad values are only warnings there, so any output fails), the offline
# security analysis rates it OK or better, and looplessd really runs with
# exactly the unit's capability set (and names any one taken away).
t_systemd_unit() {
	local unit="$TMP/looplessd.service" out score caps c others r0
	sed "s|/usr/local/sbin/looplessd|$(realpath "$LOOPLESSD")|g" deploy/looplessd.service >"$unit"
	out=$(systemd-analyze verify --man=no "$unit" 2>&1) || die "systemd-analyze verify: $out"
	[ -z "$out" ] || die "systemd-analyze verify: $out"
	out=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) ||
		die "systemd-analyze security: $out"
	score=$(sed -n 's/.*Overall exposure level for looplessd.service: \([0-9.]*\).*/\1/p' <<<"$out")
	awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 3.0) }' ||
		die "exposure level '$score' (want <= 3.0):$(grep '✗' <<<"$out")"
	log "systemd-analyze verify: clean; security --offline: exposure $score"
	# The slice, and a service given the documented drop-in.
	mkdir -p "$TMP/units/myapp.service.d"
	cp deploy/loopless.slice "$TMP/units/"
	printf '[Service]\nExecStart=/bin/true\n' >"$TMP/units/myapp.service"
	printf '[Service]\nSlice=loopless.slice\n' >"$TMP/units/myapp.service.d/loopless.conf"
	out=$(cd "$TMP/units" && SYSTEMD_UNIT_PATH="$TMP/units:" systemd-analyze verify --man=no \
		"$TMP/units/loopless.slice" myapp.service 2>&1) || die "verify the slice: $out"
	[ -z "$out" ] || die "systemd-analyze verify loopless.slice: $out"
	grep -q '^Wants=loopless.slice' deploy/looplessd.service &&
		grep -q '^ExecStart=.*--default-cgroup loopless.slice' deploy/looplessd.service ||
		die "looplessd.service does not default to loopless.slice"

	caps=$(sed -n 's/^CapabilityBoundingSet=//p' deploy/looplessd.service)
	[ "$caps" = "CAP_BPF CAP_NET_ADMIN CAP_PERFMON" ] || die "unit grants '$caps'"
	caps=$(tr 'A-Z ' 'a-z\n' <<<"$caps" | sed 's/^cap_/+/' | paste -sd,)
	# Root with the unit's bounding set (as systemd runs it) attaches...
	setpriv --bounding-set=-all,"$caps" "$LOOPLESSD" --config /dev/null --cgroup "$CG" \
		--pin-dir "$PIN" >>"$TMP/looplessd.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		"$LOOPLESS" --pin-dir "$PIN" status >/dev/null 2>&1 && break
		sleep 0.05
	done
	"$LOOPLESS" --pin-dir "$PIN" status >/dev/null ||
		die "not attached with $caps: $(cat "$TMP/looplessd.log")"
	r0=$(counter redirected_bytes)
	pair_checked "$NS" "$CG" $KEEPUP --connect 127.0.0.1 --bytes 8M >/dev/null
	assert_redirected "$r0" $((8 << 20))
	kill -HUP "$DAEMON_PID"
	for _ in $(seq 100); do grep -q "reloaded$" "$TMP/looplessd.log" && break; sleep 0.05; done
	grep -q "reloaded$" "$TMP/looplessd.log" || die "reload with the unit's capabilities"
	stop_daemon TERM
	log "runs, redirects and reloads with exactly $caps"
	# ...and without any one of them it says which is missing.
	for c in bpf net_admin perfmon; do
		others=$(tr ',' '\n' <<<"$caps" | grep -v "^+$c$" | paste -sd,)
		out=$(setpriv --bounding-set=-all,"$others" "$LOOPLESSD" --config /dev/null \
			--cgroup "$CG" --pin-dir "$PIN" 2>&1)
		[ $? -eq 1 ] || die "ran without CAP_${c^^}: $out"
		grep -q "missing capability CAP_${c^^}" <<<"$out" || die "without CAP_${c^^}: $out"
	done
}

# make install DESTDIR=... PREFIX=/usr lays out binaries, unit (ExecStart
# following PREFIX), man pages and config; keeps an existing config; make
# uninstall removes everything (an edited config stays) and does not touch
# the running system.
t_install() {
	local root="$TMP/root" f out
	make -s OUTPUT="$BUILD" install DESTDIR="$root" PREFIX=/usr >"$TMP/make.out" 2>&1 ||
		die "make install: $(cat "$TMP/make.out")"
	for f in usr/sbin/looplessd usr/sbin/loopless usr/lib/systemd/system/looplessd.service \
		usr/lib/systemd/system/loopless.slice usr/share/man/man8/looplessd.8 usr/share/man/man8/loopless.8 etc/loopless/looplessd.conf; do
		[ -e "$root/$f" ] || die "make install did not create /$f"
	done
	[ -x "$root/usr/sbin/looplessd" ] || die "looplessd not executable"
	grep -qx "ExecStart=/usr/sbin/looplessd --default-cgroup loopless.slice" \
		"$root/usr/lib/systemd/system/looplessd.service" ||
		die "ExecStart does not follow PREFIX"
	grep -q /usr/local "$root/usr/lib/systemd/system/looplessd.service" &&
		die "the unit still names /usr/local"
	cmp -s config/looplessd.conf "$root/etc/loopless/looplessd.conf" || die "config differs"
	"$root/usr/sbin/looplessd" --config "$root/etc/loopless/looplessd.conf" --check >/dev/null ||
		die "the installed config does not check"
	# The installed unit verifies (its ExecStart pointed into DESTDIR).
	sed "s|=/usr/sbin/|=$root/usr/sbin/|" "$root/usr/lib/systemd/system/looplessd.service" \
		>"$TMP/looplessd.service"
	out=$(systemd-analyze verify --man=no "$TMP/looplessd.service" 2>&1)
	[ -z "$out" ] || die "installed unit: $out"
	log "$(cd "$root" && find . -type f | sort | tr '\n' ' ')"

	# An edited config survives a reinstall and the uninstall.
	echo "# edited" >>"$root/etc/loopless/looplessd.conf"
	make -s OUTPUT="$BUILD" install DESTDIR="$root" PREFIX=/usr >/dev/null 2>&1 || die "reinstall"
	tail -1 "$root/etc/loopless/looplessd.conf" | grep -q edited || die "reinstall replaced the config"
	out=$(make -s uninstall DESTDIR="$root" PREFIX=/usr 2>&1) || die "make uninstall: $out"
	grep -q "kept $root/etc/loopless/looplessd.conf" <<<"$out" || die "uninstall: $out"
	[ "$(cd "$root" && find . -type f)" = "./etc/loopless/looplessd.conf" ] ||
		die "left after uninstall: $(cd "$root" && find . -type f)"
	# An unedited one goes, with its directory.
	rm -rf "$root"
	make -s OUTPUT="$BUILD" install DESTDIR="$root" PREFIX=/usr >/dev/null 2>&1 || die "install 2"
	make -s uninstall DESTDIR="$root" PREFIX=/usr >/dev/null 2>&1 || die "uninstall 2"
	[ -z "$(cd "$root" && find . -type f)" ] || die "left: $(cd "$root" && find . -type f)"
	[ ! -e "$root/etc/loopless" ] || die "/etc/loopless left behind"
}

# Man pages: groff finds nothing to warn about, man renders every section.
t_man_pages() {
	local m out s
	for m in man/looplessd.8 man/loopless.8; do
		out=$(groff -man -ww -z "$m" 2>&1)
		[ -z "$out" ] || die "groff -ww $m: $out"
		out=$(MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
		[ -z "$out" ] || die "man --warnings $m: $out"
		out=$(MANWIDTH=80 man -l "$m" 2>/dev/null)
		for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" FILES EXAMPLES "SEE ALSO"; do
			grep -qx "$s" <<<"$out" || die "$m has no $s section"
		done
	done
	out=$(MANWIDTH=80 man -l man/looplessd.8 2>/dev/null)
	for s in SIGNALS "CONFIGURATION FILE" "METRICS ENDPOINT"; do
		grep -qx "$s" <<<"$out" || die "looplessd.8 has no $s section"
	done
	# Every config key and option is documented.
	for s in pin_dir cgroup log_level max_sockets metrics include_ports exclude_ports \
		local_addrs -- --config --cgroup --pin-dir --log-level --metrics --check; do
		[ "$s" = -- ] && continue
		grep -q -- "$s" <<<"$out" || die "looplessd.8 does not mention $s"
	done
	log "looplessd.8, loopless.8: groff -ww clean, all sections"
}

# Kubernetes manifests, offline: yamllint (strict), the API schemas and
# unknown fields (tests/check-deploy.js), kustomize rendering when kubectl is
# there, and the ConfigMap's looplessd.conf passes looplessd --check.
# The manifests themselves (no root: make check runs this too).
check_manifests() {
	local out
	[ -d node_modules/kubernetes-models ] || die "node_modules missing (make deps)"
	yamllint -s deploy/kubernetes || die "yamllint"
	out=$(node tests/check-deploy.js k8s deploy/kubernetes --config-out "$TMP/cm.conf" 2>&1) ||
		die "$out"
	while read -r l; do log "$l"; done <<<"$out"
	if command -v kubectl >/dev/null; then
		kubectl kustomize deploy/kubernetes >"$TMP/rendered.yaml" 2>&1 ||
			die "kubectl kustomize: $(cat "$TMP/rendered.yaml")"
		[ "$(grep -c '^kind:' "$TMP/rendered.yaml")" -eq 3 ] ||
			die "kustomize rendered $(grep '^kind:' "$TMP/rendered.yaml")"
		log "kubectl kustomize: $(grep '^kind:' "$TMP/rendered.yaml" | tr '\n' ' ')"
	else
		log "kubectl not installed: rendering skipped (resources list checked above)"
	fi
}

t_deploy_manifests() {
	local out
	check_manifests
	# The config as the pod reads it; its cgroup is the host's, replaced here.
	out=$("$LOOPLESSD" --config "$TMP/cm.conf" --cgroup "$CG" --check 2>&1) ||
		die "the ConfigMap's looplessd.conf: $out"
	grep -q "metrics 0.0.0.0:9464" <<<"$out" || die "$out"
	log "ConfigMap's looplessd.conf: $out"
}

# The Dockerfile (no Docker engine here): dockerfile-utils lint plus its
# structure, and its runtime packages are exactly those of the libraries the
# built binaries link.
t_dockerfile() {
	local pkgs lib p r pk c out
	[ -d node_modules/dockerfile-utils ] || die "node_modules missing (make deps)"
	pkgs=$(for b in "$LOOPLESSD" "$LOOPLESS"; do objdump -p "$b" | awk '/NEEDED/ { print $2 }'; done |
		sort -u | while read -r lib; do
			p=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
			r=$(realpath "$p")
			for c in "$p" "$r" "${p#/usr}" "${r#/usr}"; do
				pk=$(dpkg -S "$c" 2>/dev/null | head -1 | cut -d: -f1)
				[ -n "$pk" ] && break
			done
			echo "${pk:?no package owns $lib}"
		done | sort -u)
	# shellcheck disable=SC2086 # one argument per package
	out=$(node tests/check-deploy.js dockerfile Dockerfile $pkgs 2>&1) || die "$out"
	while read -r l; do log "$l"; done <<<"$out"
}

# The installed unit under a real systemd 252 (the host's own OS booted in a
# systemd-nspawn container, --volatile=yes: nothing of the host changes; the
# container shares /sys/fs/bpf and the host network, and its cgroup root is
# a cgroup of ours): start (Type=notify), traffic redirected inside its
# sandbox, /metrics, reload (new metrics port and log level; a broken file
# rejected, service still up), stop leaving the datapath, restart adopting
# it. Proves ProtectSystem=strict, ReadWritePaths=, the capability bounding
# set and the syscall filter leave looplessd everything it needs.
t_systemd_boot() {
	local root="$TMP/root" m="loopless-$$" script="$TMP/boot-test.sh" res="$TMP/out/result.txt"
	local sysd unit="$root/usr/local/lib/systemd/system/looplessd.service"
	command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing (make deps)"
	make -s OUTPUT="$BUILD" install DESTDIR="$root" >/dev/null 2>&1 || die "make install"
	mkdir -p "$TMP/out" "$TMP/etc"
	printf '[daemon]\npin_dir = %s\nmetrics = 127.0.0.1:0\n' "$PIN" >"$TMP/etc/looplessd.conf"
	cat >"$script" <<-'EOS'
	#!/bin/bash
	# Runs as a oneshot unit inside the container; key=value lines to /out.
	# (--volatile=yes starts from an empty /etc: no alternatives, so no awk.)
	exec >/out/result.txt 2>/out/trace.txt
	set -x
	at() { # the journal may lag a moment behind the daemon
		local a
		for _ in $(seq 50); do
			a=$(journalctl -u looplessd -o cat |
				sed -n 's#.*serving http://\([^/]*\)/metrics.*#\1#p' | tail -1)
			[ -n "$a" ] && [ "$a" != "$1" ] && break
			sleep 0.1
		done
		echo "$a"
	}
	show() {
		for p in ActiveState SubState StatusText; do
			systemctl show -p $p --value looplessd
		done | paste -sd' '
	}
	PIN=$(sed -n 's/^pin_dir = //p' /etc/loopless/looplessd.conf)
	R() { /usr/local/sbin/loopless --pin-dir "$PIN" stats --json |
		sed 's/.*"redirected_bytes":\([0-9]*\).*/\1/'; }
	systemctl start looplessd; echo "start=$?"
	echo "state1=$(show)"
	echo "cgroups=$(/usr/local/sbin/loopless --pin-dir "$PIN" status | grep -c 'cgroup: .*/loopless.slice ')"
	# This script's own service is not in loopless.slice: plain TCP.
	/opt/build/lltraffic pair --connect 127.0.0.1 --bytes 8M --rate 64M | sed 's/^/outside=/'
	echo "redirected_outside=$(R)"
	# Services with the drop-in (Slice=loopless.slice) are accelerated;
	# status names the one still running (pair.service is done by then).
	systemctl start sleeper.service
	systemctl start pair.service; echo "pair_unit=$?"
	sed 's/^/pair=/' /out/pair.txt
	echo "redirected=$(R)"
	echo "units=$(/usr/local/sbin/loopless --pin-dir "$PIN" status | grep -o 'units:.*')"
	systemctl stop sleeper.service
	A=$(at); echo "at1=$A"
	echo "metric=$(curl -s --noproxy '*' "http://$A/metrics" |
		sed -n 's/^loopless_redirected_bytes_total //p')"
	echo "healthz1=$(curl -s --noproxy '*' "http://$A/healthz")"
	printf '[daemon]\npin_dir = %s\nmetrics = [::1]:0\nlog_level = debug\n' "$PIN" \
		>/etc/loopless/looplessd.conf
	systemctl reload looplessd; echo "reload=$?"
	sleep 0.3
	echo "state2=$(show)"
	echo "healthz2=$(curl -s --noproxy '*' "http://$(at "$A")/healthz")"
	echo "debug=$(journalctl -u looplessd -o cat | grep -c 'log_level: info -> debug')"
	echo 'cgroupz = /' >>/etc/loopless/looplessd.conf
	systemctl reload looplessd; echo "reload_bad=$?"
	sleep 0.3
	echo "rejected=$(journalctl -u looplessd -o cat |
		grep -c 'configuration rejected, keeping the running one')"
	echo "state3=$(show)"
	systemctl stop looplessd; echo "stop=$?"
	/usr/local/sbin/loopless --pin-dir "$PIN" status >/dev/null; echo "status_after_stop=$?"
	sed -i '/cgroupz/d' /etc/loopless/looplessd.conf
	systemctl start looplessd; echo "restart=$?"
	echo "adopted=$(journalctl -u looplessd -o cat | grep -c 'adopted datapath')"
	systemctl stop looplessd
	/usr/local/sbin/loopless --pin-dir "$PIN" uninstall >/dev/null; echo "uninstall=$?"
	echo "done=1"
	systemctl poweroff
	EOS
	chmod +x "$script"
	printf '[Unit]\nAfter=multi-user.target\n[Service]\nType=oneshot\nExecStart=/opt/boot-test.sh\n' \
		>"$TMP/boot-test.service"
	# Two services as a user would accelerate them: unchanged units plus
	# the documented drop-in (systemctl edit: [Service] Slice=loopless.slice).
	mkdir -p "$TMP/units/pair.service.d" "$TMP/units/sleeper.service.d"
	printf '[Service]\nType=oneshot\nExecStart=/opt/build/lltraffic pair --connect 127.0.0.1 --bytes 8M --rate 64M\nStandardOutput=file:/out/pair.txt\n' \
		>"$TMP/units/pair.service"
	printf '[Service]\nExecStart=/bin/sleep 60\n' >"$TMP/units/sleeper.service"
	for u in pair sleeper; do
		printf '[Service]\nSlice=loopless.slice\n' >"$TMP/units/$u.service.d/loopless.conf"
	done
	# nspawn puts the container in payload/ and itself in supervisor/
	# below its own cgroup: run it from the test's cgroup, so that they
	# go with it (on a hybrid host also in the name=systemd hierarchy,
	# which nspawn takes its path from). looplessd in the container
	# attaches to the container's cgroup root, $CG/payload.
	sysd=$(awk '$9 == "cgroup" && $NF ~ /name=systemd/ { print $5; exit }' /proc/self/mountinfo)
	if [ -n "$sysd" ]; then
		mkdir -p "$sysd/$ENV_ID" || die "mkdir $sysd/$ENV_ID"
		# env_cleanup reads the test's status from $?: keep it. (Expanded
		# now on purpose: the locals are gone when it runs.)
		# shellcheck disable=SC2064,SC2154 # rc is the trap's own
		trap "rc=\$?; rmdir_tree '$sysd/$ENV_ID'; (exit \$rc); env_cleanup" EXIT
	fi
	# The volatile /etc starts empty, so first-boot presets would enable and
	# start every installed service (nginx, redis from make deps): none.
	echo "disable *" >"$TMP/no-presets.preset"
	sh -c 'echo $$ >"$0/cgroup.procs" && { [ -z "$1" ] || echo $$ >"$1/cgroup.procs"; } &&
		shift && exec "$@"' "$CG" "${sysd:+$sysd/$ENV_ID}" \
		timeout 120 systemd-nspawn -D / --volatile=yes -b --register=no --keep-unit --quiet \
		--machine="$m" --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN --system-call-filter=bpf \
		--bind=/sys/fs/bpf --bind-ro="$root/usr/local/sbin:/usr/local/sbin" \
		--bind-ro="$(realpath "$BUILD"):/opt/build" --bind-ro="$script:/opt/boot-test.sh" \
		--bind-ro="$unit:/etc/systemd/system/looplessd.service" \
		--bind-ro="${unit%/*}/loopless.slice:/etc/systemd/system/loopless.slice" \
		--bind-ro="$TMP/units/pair.service:/etc/systemd/system/pair.service" \
		--bind-ro="$TMP/units/pair.service.d:/etc/systemd/system/pair.service.d" \
		--bind-ro="$TMP/units/sleeper.service:/etc/systemd/system/sleeper.service" \
		--bind-ro="$TMP/units/sleeper.service.d:/etc/systemd/system/sleeper.service.d" \
		--bind-ro="$TMP/boot-test.service:/etc/systemd/system/boot-test.service" \
		--bind="$TMP/etc:/etc/loopless" --bind="$TMP/out:/out" \
		--bind-ro="$TMP/no-presets.preset:/etc/systemd/system-preset/00-loopless-test.preset" \
		-- systemd.firstboot=0 systemd.wants=boot-test.service >"$TMP/boot.log" 2>&1
	rmdir "/run/systemd/nspawn/propagate/$m" 2>/dev/null
	# The container's cgroups empty a moment after it exits.
	rmdir_tree "$CG/payload" || die "$CG/payload stays"
	rmdir_tree "$CG/supervisor" || die "$CG/supervisor stays"
	[ -z "$sysd" ] || rmdir_tree "$sysd/$ENV_ID" || die "$sysd/$ENV_ID stays"
	[ -s "$res" ] || die "the container ran no test: $(tail -20 "$TMP/boot.log")"
	cp "$res" "$BUILD/test-logs/systemd_boot.result"
	cp "$TMP/out/trace.txt" "$BUILD/test-logs/systemd_boot.trace"
	grep -q '^done=1' "$res" || die "test incomplete: $(cat "$res") $(tail -20 "$TMP/out/trace.txt")"
	k() { sed -n "s/^$1=//p" "$res"; }
	[ "$(k start)" = 0 ] || die "systemctl start failed: $(cat "$res")"
	case "$(k state1)" in
	"active running attached: 1 cgroup(s)"*) ;;
	*) die "state1: $(k state1)" ;;
	esac
	[ "$(k cgroups)" = 1 ] || die "looplessd.service is not attached to loopless.slice"
	case "$(k outside)" in ok*) ;; *) die "traffic outside the slice: $(k outside)" ;; esac
	[ "$(k redirected_outside)" = 0 ] ||
		die "$(k redirected_outside) bytes redirected outside loopless.slice"
	[ "$(k pair_unit)" = 0 ] || die "pair.service failed: $(cat "$res")"
	case "$(k pair)" in ok*) ;; *) die "traffic in the container: $(k pair)" ;; esac
	[ "$(k redirected)" -ge $(((8 << 20) / 100 * 95)) ] ||
		die "not redirected in loopless.slice under systemd: $(k redirected)"
	case "$(k units)" in *sleeper.service*) ;; *) die "status does not list sleeper.service: $(k units)" ;; esac
	# The scrape itself is a local connection in the container's cgroup:
	# its request is redirected too.
	[ "$(k metric)" -ge "$(k redirected)" ] || die "/metrics $(k metric) < stats $(k redirected)"
	[ "$(k healthz1)" = ok ] || die "healthz1: $(k healthz1)"
	[ "$(k reload)" = 0 ] || die "systemctl reload failed"
	case "$(k state2)" in "active running"*"metrics [::1]:"*) ;; *) die "state2: $(k state2)" ;; esac
	[ "$(k healthz2)" = ok ] || die "healthz on the new address: $(k healthz2)"
	[ "$(k debug)" = 1 ] || die "log level change not in the journal"
	[ "$(k rejected)" = 1 ] || die "broken reload not rejected: $(k rejected)"
	[ "$(k state3 | cut -d' ' -f1-2)" = "active running" ] || die "after it: $(k state3)"
	[ "$(k stop)" = 0 ] || die "systemctl stop failed"
	[ "$(k status_after_stop)" = 0 ] || die "datapath gone after stop"
	[ "$(k restart)" = 0 ] || die "restart failed"
	[ "$(k adopted)" -ge 1 ] || die "restart did not adopt"
	[ "$(k uninstall)" = 0 ] || die "uninstall in the container"
	log "under systemd: $(k state1)"
	log "default cgroup loopless.slice: outside it 0 bytes redirected; pair.service with" \
		"the drop-in $(k redirected) of 8 MiB; status $(k units)"
	log "redirected $(k redirected) bytes, /metrics agrees;" \
		"reload -> $(k state2 | sed 's/.*metrics //')"
	log "broken reload rejected, stop keeps the datapath, restart adopts it"
}

# The bench (bench/run.sh --quick, tiny durations; it makes and removes its own netns,
# cgroup and pin dir) writes complete, well-formed results: every mode measured, ratios
# computed, the path proof holds (redirect modes: a handful of lo packets; plain TCP:
# thousands), PNGs, CSV, summary.
