# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Reader tests: what an application's reading side sees through loopless,
# compared with plain TCP in the same test, byte for byte. A socket in a
# sockmap reads through tcp_bpf_recvmsg(), which waits for one wake-up only
# (a blocking recv() woken without data returns EAGAIN where tcp_recvmsg()
# waits again), whose redirected bytes splice()/tcp_read_sock() cannot see,
# and which applies neither MSG_WAITALL nor SO_RCVLOWAT to them (DESIGN.md,
# "Receive-side behaviour"). Each test runs real readers (llprobe checks,
# redis-cli, Go proxies, HAProxy, nginx) over plain TCP first, the reference,
# which must pass, then through loopless; a difference is recorded (differ)
# and the test fails at the end (verdict) after measuring every case, so one
# run reports them all. Every wait is bounded (llprobe's and lltraffic's
# watchdogs, curl --max-time, timeout). Sourced after tests/lib.sh and the
# other test files (probe, counter, grew, kv, wait_port). Ports 7701-7799.

# 256 MiB: llprobe moves it in 0.2-0.5 s over plain TCP (2 cores).
SIGALRM_BYTES=${LOOPLESS_SIGALRM_BYTES:-256M}

# differ MSG: a difference between loopless and plain TCP (the test goes on
# measuring, verdict fails it). A file, not a variable: $(...) subshells.
differ() {
	echo "  DIFFERS: $*"
	echo "$*" >>"$TMP/differences"
}

# verdict: fail the test if any case differed.
verdict() {
	[ -s "$TMP/differences" ] || return 0
	die "$(wc -l <"$TMP/differences") case(s) differ from plain TCP: $(head -c 1500 "$TMP/differences" | paste -sd';' -)"
}

# ms_since T0: milliseconds since T0 (date +%s%N).
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# probe_both CHECK ARGS...: llprobe CHECK over plain TCP (the reference: it
# must pass) and then through loopless, both logged with the bytes
# redirected. Sets PLAIN and LL (the result lines), LL_OK (1: loopless said
# ok) and LL_REDIR; a loopless failure is recorded with differ.
probe_both() {
	local r0 rc
	PLAIN=$(probe "" "$@") || exit 1
	r0=$(counter redirected_bytes)
	LL=$(in_ns_cg "$NS" "$CG" "$LLPROBE" "$@" 2>&1)
	rc=$?
	LL_REDIR=$(grew redirected_bytes "$r0")
	log "$*"
	log "  plain TCP: $PLAIN"
	log "  loopless:  $LL (redirected +$LL_REDIR)"
	LL_OK=0
	if [ $rc -eq 0 ]; then LL_OK=1; else differ "llprobe $*: exit $rc: $LL"; fi
}

# zero_in_both KEY...: each KEY is 0 over plain TCP (else the check itself is
# wrong: die) and through loopless (else differ). After probe_both.
zero_in_both() {
	local k
	for k in "$@"; do
		[ "$(kv "$PLAIN" "$k")" = 0 ] || die "plain TCP shows $k=$(kv "$PLAIN" "$k"): $PLAIN"
		[ "$LL_OK" = 1 ] || continue
		[ "$(kv "$LL" "$k")" = 0 ] || differ "llprobe $CASE: $k=$(kv "$LL" "$k") (plain TCP 0)"
	done
}

# at_most_in_loopless KEY N: plain TCP shows KEY=0 and loopless at most N (a
# residual the README names, with its rate); logged when it is not 0.
at_most_in_loopless() {
	[ "$(kv "$PLAIN" "$1")" = 0 ] || die "plain TCP shows $1=$(kv "$PLAIN" "$1"): $PLAIN"
	[ "$LL_OK" = 1 ] || return 0
	[ "$(kv "$LL" "$1")" -le "$2" ] ||
		differ "llprobe $CASE: $1=$(kv "$LL" "$1") (plain TCP 0, at most $2 known)"
	[ "$(kv "$LL" "$1")" = 0 ] || log "  known residual: $1=$(kv "$LL" "$1") ($CASE)"
}

# not_above_plain KEY...: through loopless each KEY is at most what plain TCP
# showed (for counts that plain TCP itself may show now and then).
not_above_plain() {
	local k
	for k in "$@"; do
		[ "$LL_OK" = 1 ] || continue
		[ "$(kv "$LL" "$k")" -le "$(kv "$PLAIN" "$k")" ] ||
			differ "llprobe $CASE: $k=$(kv "$LL" "$k") (plain TCP $(kv "$PLAIN" "$k"))"
	done
}

# need_pkg CMD PACKAGE: fail, naming the Debian package, when CMD is missing
# (make deps installs them all; these tests never skip).
need_pkg() {
	command -v "$1" >/dev/null || die "$1 not found: install Debian package $2 (make deps)"
}

# bg_in CG LOG CMD...: CMD in $NS (and cgroup CG, "" for none) in the
# background, output in LOG; BG_PID is the command's own pid (ip netns exec
# execs it), for stop_bg. The env_cleanup trap kills what is left.
bg_in() {
	local cg=$1 logf=$2
	shift 2
	ns_cg_prefix "$NS" "$cg"
	"${NS_CG[@]}" "$@" >"$logf" 2>&1 &
	BG_PID=$!
}

# stop_bg PID: SIGTERM, SIGKILL after 5 s.
stop_bg() {
	kill "$1" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# wait_port_free PORT: nothing listens on PORT in $NS any more (5 s).
wait_port_free() {
	for _ in $(seq 50); do
		ip netns exec "$NS" ss -Hltn "sport = :$1" | grep -q . || return 0
		sleep 0.1
	done
	die "port $1 still in use"
}

# ---- llprobe readers -------------------------------------------------------

# A blocking reader (no O_NONBLOCK, no MSG_DONTWAIT, no SO_RCVTIMEO) of a
# 256 MiB stream under a 1 ms interval timer (setitimer ITIMER_REAL), its
# SIGALRM handler installed with SA_RESTART as a typical program does, then
# without SA_RESTART (the program retries EINTR); the accepted socket reading,
# then the connecting one. Over plain TCP a signal restarts the recv()
# (ERESTARTSYS) or, without SA_RESTART, returns EINTR; never EAGAIN. Every
# recv() error is counted by errno; loopless must show none plain TCP does
# not. EINTR without SA_RESTART depends on timing (how often the reader is
# asleep when the signal comes): logged, not compared.
t_reader_sigalrm() {
	local reader restart CASE
	start_daemon
	for reader in server client; do
		for restart in "" --no-restart; do
			CASE="blocking-sigalrm --reader $reader $restart"
			probe_both blocking-sigalrm --bytes "$SIGALRM_BYTES" --reader "$reader" \
				$restart --timeout 60
			[ "$(kv "$PLAIN" signals)" -gt 0 ] || die "the timer never fired: $PLAIN"
			zero_in_both eagain
			[ -n "$restart" ] || zero_in_both eintr
		done
	done
	verdict
}

# A reader that changes how it reads mid-connection, each reading end:
# - recv() a 64-byte header (non-blocking, poll), then splice() the rest
#   (16 MiB): a proxy that parses a head and splices the body;
# - recv(MSG_WAITALL) of fixed 64 KiB messages (64 MiB written in pieces of
#   1 B-32 KiB, with pauses): never a short read;
# - SO_RCVLOWAT 64 KiB, O_NONBLOCK, poll() then recv() (16 MiB in pieces of
#   1 B-8 KiB, a pause every 40 KiB): every read but the last >= 64 KiB, no
#   empty wake-up beyond plain TCP's;
# - epoll and non-blocking reads for the first 8 MiB, then fcntl() back to
#   blocking for the rest (64 MiB), without and with the 1 ms SIGALRM timer:
#   no recv() error.
# Byte-exact (llprobe verifies every byte and the EOF), as plain TCP.
t_reader_switchers() {
	local reader CASE
	start_daemon
	for reader in server client; do
		CASE="waitall-stream --reader $reader"
		probe_both waitall-stream --bytes 64M --reader "$reader" --timeout 30
		zero_in_both short_reads eagain eintr
		CASE="rcvlowat-stream --reader $reader"
		probe_both rcvlowat-stream --bytes 16M --reader "$reader" --timeout 30
		# tcp_poll() may report readable below SO_RCVLOWAT under memory
		# pressure or a small window (tcp_epollin_ready()): not above plain.
		not_above_plain short_reads empty_wakeups
		CASE="nonblock-then-blocking --reader $reader"
		probe_both nonblock-then-blocking --bytes 64M --reader "$reader" --timeout 30
		zero_in_both eagain eintr
		CASE="nonblock-then-blocking --sigalrm --reader $reader"
		probe_both nonblock-then-blocking --bytes 64M --sigalrm --reader "$reader" --timeout 30
		zero_in_both eintr
		# The one case README's "Kernel behaviours" leaves open: a reader
		# already redirected into turns blocking, and its first blocking
		# reads, before the pair is out, can wait in tcp_bpf_recvmsg()
		# and get EAGAIN from the timer (1-2 in about 1 run in 8 here).
		# Bounded, and counted by app_visible_errors: more is a regression.
		at_most_in_loopless eagain 2
	done
	verdict
}

# Blocking clients, as a typical CLI: 10 000 request/responses of 64 B
# against an epoll server, reading each response with a blocking recv(), and
# the same with poll() for POLLIN before each blocking recv(); the connecting
# socket as the client, then the accepted one. No recv() error, every byte
# checked; whether they stayed accelerated is logged (redirected +N).
# spliced_pairs: sockets ll_splice (or ll_reenter) took for splicers so far.
spliced_pairs() { stat_json | jq '.leaves_splice + .never_back_splice'; }

# Readers that splice after a first look (16 MiB, each reading end), each
# in a fresh process:
# - recv() a 64-byte header, then splice() the rest. (Was the known issue
#   k_reader_splice_after_header.) Its peer's first bytes come before it was
#   seen taking bytes, so the pair leaves the map at once; ll_splice sees the
#   splice while it is out, and it never comes back;
# - recv() once before any byte came (EAGAIN), then splice() everything
#   (HAProxy's splice-request): an EAGAIN is not taking bytes, so nothing is
#   ever redirected to it;
# - recv(MSG_PEEK) a header, then splice() everything, the header too (an
#   SNI router): a peek is not taking bytes either.
# tcp_splice_read() never misses a redirected byte: splice_missed stays 0.
t_reader_splice_after_header() {
	local reader check m0 s0 CASE
	start_daemon
	for check in splice-after-header splice-after-eagain splice-after-peek; do
		for reader in server client; do
			CASE="$check --reader $reader"
			m0=$(counter splice_missed)
			s0=$(spliced_pairs)
			probe_both "$check" --bytes 16M --reader "$reader" --timeout 30
			[ "$(grew splice_missed "$m0")" -eq 0 ] ||
				differ "$CASE: a splice found redirected bytes queued"
			# ll_splice saw it: the pair left, or stayed out, for good.
			[ $(($(spliced_pairs) - s0)) -ge 1 ] ||
				differ "$CASE: no splice seen (leaves_splice, never_back_splice)"
		done
	done
	verdict
}

# Known issue (make known-issues): a reader that recv()s for a while and
# only then splices, in a process never seen splicing before. Bytes
# redirected to it while it recv()ed are still queued when it starts to
# splice, and splice() cannot read them (tcp_splice_read() reads the TCP
# queue only). ll_splice takes the pair out at that first splice and counts
# splice_missed, but the queued bytes stay where only recvmsg reads them.
# Each run is a fresh process (a process seen splicing once is never
# redirected into again): 10 runs per reading end, recv() of the first MiB
# of 16 MiB, then splice(); the rate is logged.
k_reader_splice_after_bulk() {
	local reader i bad m0 missed
	start_daemon
	for reader in server client; do
		bad=0
		m0=$(counter splice_missed)
		for i in $(seq 10); do
			CASE="splice-after-bulk --reader $reader (run $i)"
			probe_both splice-after-bulk --bytes 16M --reader "$reader" --timeout 10
			[ "$LL_OK" = 1 ] || bad=$((bad + 1))
		done
		missed=$(grew splice_missed "$m0")
		log "  splice-after-bulk --reader $reader: $bad of 10 runs failed, splice_missed +$missed"
	done
	verdict
}

t_reader_blocking_clients() {
	local c reader CASE
	start_daemon
	for c in rr-blocking-client rr-poll-client; do
		for reader in client server; do
			CASE="$c --reader $reader"
			probe_both "$c" --count 10000 --size 64 --reader "$reader" --timeout 60
			zero_in_both eagain eintr
		done
	done
	verdict
}

# (Was the known issue k_splice_read.) splice()
# from a socket gets every byte and the EOF, as over plain TCP, 64 KiB and
# 16 MiB, each reading end, with loopless attached to the cgroup and no
# exclude_ports (t_splice_read_excluded covers that way around it).
t_reader_splice_read() {
	local size reader
	start_daemon
	for size in 64K 16M; do
		for reader in server client; do
			probe_both splice-read --bytes "$size" --reader "$reader" --timeout 30
		done
	done
	verdict
}

# ---- redis-cli ---------------------------------------------------------------

# redis-cli (single-threaded, blocking sockets) SETs an 8 MiB random value
# 100 times, over plain TCP and with redis-server and redis-cli in the
# cgroup; then GET returns it byte for byte (sha256, 10 times) and DBSIZE
# answers 1. (Was the known issue k_redis_big_value.) Plain TCP never
# fails, so loopless must not.
t_reader_redis_cli() {
	local cg mode i out rc fails hung sets gfails first sum t0 r0 pid n=${LOOPLESS_REDIS_SETS:-100}
	local plain_line
	need_pkg redis-server redis-server
	need_pkg redis-cli redis-tools
	start_daemon
	head -c 8M /dev/urandom >"$TMP/value"
	sum=$(sha256sum <"$TMP/value")
	for cg in "" "$CG"; do
		[ -n "$cg" ] && mode=loopless || mode="plain TCP"
		bg_in "$cg" "$TMP/redis.out" redis-server --bind 127.0.0.1 --port 7701 --save '' \
			--appendonly no --dir "$TMP" --protected-mode no --unixsocket '' \
			--logfile "$TMP/redis.log"
		pid=$BG_PID
		wait_port 7701
		r0=$(counter redirected_bytes)
		t0=$(date +%s%N)
		fails=0 hung=0 first="" sets=0
		for i in $(seq "$n"); do
			# A SET takes ~0.1 s; 3 hung (20 s each) or 20 failed: enough.
			if [ $hung -ge 3 ] || [ $fails -ge 20 ]; then
				first="$first; gave up"
				break
			fi
			sets=$i
			out=$(in_ns_cg "$NS" "$cg" timeout 20 redis-cli -p 7701 -x SET big \
				<"$TMP/value" 2>&1)
			rc=$?
			if [ "$out" != OK ]; then
				fails=$((fails + 1))
				[ $rc -ne 124 ] || { hung=$((hung + 1)); out="hung for 20 s"; }
				[ -n "$first" ] || first="SET $i: $out"
			fi
		done
		gfails=0
		for i in $(seq 10); do
			in_ns_cg "$NS" "$cg" timeout 20 redis-cli -p 7701 --raw GET big >"$TMP/got" 2>&1
			# --raw prints the value and one newline.
			if [ "$(stat -c %s "$TMP/got")" -ne $((8 << 20 | 1)) ] ||
				[ "$(head -c 8M "$TMP/got" | sha256sum)" != "$sum" ]; then
				gfails=$((gfails + 1))
				[ -n "$first" ] || first="GET $i: $(head -c 200 "$TMP/got")"
			fi
		done
		out=$(in_ns_cg "$NS" "$cg" timeout 20 redis-cli -p 7701 DBSIZE 2>&1)
		log "$mode: $fails of $sets 8 MiB SETs failed, $gfails of 10 GETs wrong, DBSIZE $out," \
			"redirected +$(grew redirected_bytes "$r0"), $(ms_since "$t0") ms${first:+ (first: $first)}"
		stop_bg "$pid"
		wait_port_free 7701
		if [ -z "$cg" ]; then
			if [ "$fails" -ne 0 ] || [ "$gfails" -ne 0 ] || [ "$out" != 1 ]; then
				die "plain TCP: $fails SETs failed, $gfails GETs wrong, DBSIZE $out"
			fi
			plain_line=ok
		else
			[ "$fails" -eq 0 ] || differ "$fails of $sets redis-cli SETs of 8 MiB failed ($first)"
			[ "$gfails" -eq 0 ] || differ "$gfails of 10 redis-cli GETs of 8 MiB wrong"
			[ "$out" = 1 ] || differ "redis-cli DBSIZE: $out"
		fi
	done
	[ "$plain_line" = ok ] || die "no plain TCP reference"
	verdict
}

# ---- proxies -------------------------------------------------------------------

# go_build NAME: tests/go/NAME built into $TMP/NAME with Debian's golang-go,
# offline (standard library only).
go_build() {
	(cd tests/go && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$TMP/gocache" \
		GOPATH="$TMP/gopath" timeout 300 go build -o "$TMP/$1" "./$1") \
		>"$TMP/go-build-$1.log" 2>&1 || die "go build $1: $(cat "$TMP/go-build-$1.log")"
}

# nginx_start CG PORT: nginx serving $TMP/www on 127.0.0.1:PORT, PUT allowed
# under /up/ (WebDAV: the request-body direction); pid in NGINX_PID.
nginx_start() {
	local d="$TMP/nginx-$2"
	mkdir -p "$d" "$TMP/www/up"
	cat >"$d/nginx.conf" <<-CONF
		user root;
		worker_processes 1;
		daemon off;
		pid $d/nginx.pid;
		error_log $d/error.log;
		events { worker_connections 256; }
		http {
			access_log off;
			client_body_temp_path $d/body;
			proxy_temp_path $d/proxy;
			fastcgi_temp_path $d/fastcgi;
			uwsgi_temp_path $d/uwsgi;
			scgi_temp_path $d/scgi;
			server {
				listen 127.0.0.1:$2;
				root $TMP/www;
				location /up/ { dav_methods PUT; client_max_body_size 64m; }
			}
		}
	CONF
	bg_in "$1" "$d/out" nginx -c "$d/nginx.conf" -p "$d"
	NGINX_PID=$BG_PID
	wait_port "$2"
}

# An outcome of a proxy run: over plain TCP a failure is the harness's (die),
# through loopless a difference.
proxy_bad() { # proxy_bad CFG MSG
	[ "$1" = plain ] && die "plain TCP: $2"
	differ "$1: $2"
}

# streams_via CFG CG_CLIENT CG_SERVER PORT_PROXY PORT_SERVER WORKLOAD...:
# through a proxy already listening on PORT_PROXY, one lltraffic send/serve
# pair per WORKLOAD (its options: a stream, or rr with --size and --count),
# every byte verified. lltraffic reads with blocking recv(), a duplex stream
# from one reader and one writer thread per socket: with --tolerate-eagain
# it retries and counts EAGAIN (eagain=N), which must be 0; rr does not
# count them, an EAGAIN fails it as it would an application.
streams_via() {
	local cfg=$1 cc=$2 cs=$3 pp=$4 ps=$5 spid out sout rc what n tmo=10
	shift 5
	for what in "$@"; do
		# shellcheck disable=SC2086
		bg_in "$cs" "$TMP/serve.out" "$LLTRAFFIC" serve --listen 127.0.0.1 --port "$ps" \
			$what --timeout "$tmo"
		spid=$BG_PID
		wait_port "$ps"
		# shellcheck disable=SC2086
		out=$(in_ns_cg "$NS" "$cc" timeout 60 "$LLTRAFFIC" send --connect 127.0.0.1 \
			--port "$pp" $what --timeout "$tmo" 2>&1)
		rc=$?
		# serve ends by itself (its watchdog: tmo); after a failed send
		# give it 2 s to say what it saw.
		n=$((tmo * 10 + 50))
		[ $rc -eq 0 ] || n=20
		for _ in $(seq $n); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
		stop_bg "$spid"
		sout=$(cat "$TMP/serve.out")
		[ -n "$sout" ] || sout="(killed, still running 2 s after send failed)"
		log "  $cfg, $what: send: $out"
		log "  $cfg, $what: serve: $sout"
		case "$out" in ok*) ;; *) proxy_bad "$cfg" "send $what: exit $rc: $out"; continue ;; esac
		case "$sout" in ok*) ;; *) proxy_bad "$cfg" "serve $what: $sout"; continue ;; esac
		case $what in *--tolerate-eagain*) ;; *) continue ;; esac
		if [ "$(kv "$out" eagain)" != 0 ] || [ "$(kv "$sout" eagain)" != 0 ]; then
			proxy_bad "$cfg" "$what: EAGAIN on a blocking recv() (send $(kv "$out" eagain), serve $(kv "$sout" eagain))"
		fi
	done
}

# http_via CFG CG_CLIENT PORT [PUTS]: through an HTTP server or proxy on
# PORT (nginx behind it): 20 GETs of the 16 MiB body (10 curls of 2 over one
# keep-alive connection) and PUTS (2) PUTs of it, each sha256-checked (the
# PUT's as nginx stored it). After 2 failures of a kind it gives up on that
# kind: a stall costs curl's 10 s each.
http_via() {
	local cfg=$1 cc=$2 port=$3 puts=${4:-2} i f out gbad=0 pbad=0 gn=0 pn=0
	for i in $(seq 10); do
		[ $gbad -lt 2 ] || { log "  $cfg: gave up on GETs after $gbad failures"; break; }
		gn=$((gn + 2))
		rm -f "$TMP/got1" "$TMP/got2"
		out=$(in_ns_cg "$NS" "$cc" timeout 60 curl -sS --noproxy '*' --max-time 10 \
			-o "$TMP/got1" "http://127.0.0.1:$port/body" \
			-o "$TMP/got2" "http://127.0.0.1:$port/body" 2>&1) || {
			gbad=$((gbad + 1)); proxy_bad "$cfg" "GET $i: $(tr '\n' ' ' <<<"$out")"; continue; }
		for f in "$TMP/got1" "$TMP/got2"; do
			[ "$(sha256sum <"$f")" = "$BODY_SUM" ] || {
				gbad=$((gbad + 1)); proxy_bad "$cfg" "GET $i: a different body ($(stat -c %s "$f") bytes)"; }
		done
	done
	for i in $(seq "$puts"); do
		[ $pbad -lt 2 ] || { log "  $cfg: gave up on PUTs after $pbad failures"; break; }
		pn=$((pn + 1))
		rm -f "$TMP/www/up/put$i"
		out=$(in_ns_cg "$NS" "$cc" timeout 60 curl -sS --noproxy '*' --max-time 10 -H 'Expect:' \
			-o /dev/null -w '%{http_code}' -T "$TMP/www/body" "http://127.0.0.1:$port/up/put$i" 2>&1)
		case "$out" in
		201 | 204) ;;
		*) pbad=$((pbad + 1)); proxy_bad "$cfg" "PUT $i: $(tr '\n' ' ' <<<"$out")"; continue ;;
		esac
		[ "$(sha256sum <"$TMP/www/up/put$i")" = "$BODY_SUM" ] || {
			pbad=$((pbad + 1)); proxy_bad "$cfg" "PUT $i: nginx stored different bytes"; }
	done
	log "  $cfg: GETs of 16 MiB: $gbad failed of $gn; PUTs of 16 MiB: $pbad failed of $pn"
}

# Go proxies in $NS, each run in four placements: nothing in the cgroup
# (plain TCP), only the client and the proxy (hop 1), only the proxy and the
# backend (hop 2), all three (both hops), so the counters tell each hop's
# redirected bytes.
# - tcpproxy (tests/go): net.Listen, Accept, net.Dial, `go io.Copy` both ways,
#   which splices between two *net.TCPConn on Linux, between lltraffic send
#   and serve: 64 MiB duplex and 5 000 small request/responses, byte-exact,
#   no hang. Expected end state: its hops are not redirected (their reader
#   splices).
# - revproxy (tests/go): httputil.ReverseProxy in front of nginx, curl
#   fetching a 16 MiB body 20 times and PUTting it twice, sha256-exact.
#   Expected end state: both hops redirected (every reader is non-blocking
#   and reads with recv()). Asserted: each hop carries >= half the body bytes
#   redirected.
t_reader_go_proxy() {
	local cfg cc cp cs pid r0 s0 t0 red min
	need_pkg go golang-go
	need_pkg nginx nginx-light
	need_pkg curl curl
	go_build tcpproxy
	go_build revproxy
	start_daemon
	mkdir -p "$TMP/www"
	head -c 16M /dev/urandom >"$TMP/www/body"
	BODY_SUM=$(sha256sum <"$TMP/www/body")
	for cfg in plain hop1 hop2 both; do
		case $cfg in
		plain) cc="" cp="" cs="" ;;
		hop1) cc=$CG cp=$CG cs="" ;;
		hop2) cc="" cp=$CG cs=$CG ;;
		both) cc=$CG cp=$CG cs=$CG ;;
		esac
		log "tcpproxy (io.Copy), $cfg:"
		bg_in "$cp" "$TMP/tcpproxy-$cfg.log" "$TMP/tcpproxy" -listen 127.0.0.1:7720 \
			-backend 127.0.0.1:7721
		pid=$BG_PID
		wait_port 7720
		r0=$(counter redirected_bytes)
		t0=$(date +%s%N)
		streams_via "$cfg" "$cc" "$cs" 7720 7721 "--bytes 64M --duplex --tolerate-eagain" \
			"--size 64 --count 5000"
		log "  tcpproxy $cfg: redirected +$(grew redirected_bytes "$r0"), $(ms_since "$t0") ms"
		stop_bg "$pid"
		wait_port_free 7720

		log "revproxy (httputil.ReverseProxy) -> nginx, $cfg:"
		nginx_start "$cs" 7731
		bg_in "$cp" "$TMP/revproxy-$cfg.log" "$TMP/revproxy" -listen 127.0.0.1:7730 \
			-backend http://127.0.0.1:7731
		pid=$BG_PID
		wait_port 7730
		r0=$(counter redirected_bytes)
		s0=$(stat_json)
		t0=$(date +%s%N)
		# GETs only: uploads to nginx are t_reader_nginx_upload's.
		http_via "$cfg" "$cc" 7730 0
		red=$(grew redirected_bytes "$r0")
		log "  revproxy $cfg: redirected +$red, $(ms_since "$t0") ms; $(stats_grown "$s0" \
			pairs leaves_reader_unknown leaves_lag leaves_small_writes leaves_splice \
			reentered returns tcp_reader_unknown splice_missed)"
		stop_bg "$pid"
		stop_bg "$NGINX_PID"
		wait_port_free 7730
		wait_port_free 7731
		# 20 bodies of 16 MiB cross each hop: at least half redirected.
		min=$((10 * (16 << 20)))
		case $cfg in
		plain) [ "$red" -eq 0 ] || die "plain TCP run redirected $red bytes" ;;
		# Both hops: the proxy -> nginx hop mostly, curl -> proxy less
		# (below); measured 330-420 MiB of the 640.
		both) [ "$red" -ge $((3 * min / 2)) ] ||
			differ "revproxy both hops: only $red bytes redirected (expected >= $((3 * min / 2)))" ;;
		# curl -> proxy: each curl's connection starts on TCP (its first
		# request comes before the proxy reads), comes back between
		# requests, and a 16 MiB download whose reader falls behind
		# leaves again until the writer pauses: measured 20-96 MiB of
		# the 320. Still redirected, not mostly.
		hop1) [ "$red" -ge $((1 << 20)) ] ||
			differ "revproxy hop1: only $red bytes redirected (expected >= $((1 << 20)))" ;;
		*) [ "$red" -ge "$min" ] ||
			differ "revproxy $cfg: only $red bytes redirected (expected >= $min)" ;;
		esac
	done
	verdict
}

# haproxy_info SOCK KEY: a value of HAProxy's `show info` (PipesUsed,
# PipesFree: pipes exist only when it spliced).
haproxy_info() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"show info\n")
print(s.makefile().read())' "$1" | sed -n "s/^$2: //p"
}

# haproxy_spliced CFG: $PIPES is HAProxy's pipe count; over plain TCP it must
# have spliced, or the run proves nothing.
haproxy_spliced() {
	local used free
	used=$(haproxy_info "$TMP/haproxy.sock" PipesUsed)
	free=$(haproxy_info "$TMP/haproxy.sock" PipesFree)
	PIPES="HAProxy pipes: $used used, $free free"
	[ "$1" != plain ] || [ $((used + free)) -gt 0 ] ||
		die "HAProxy did not splice over plain TCP ($PIPES): the test proves nothing"
}

# haproxy_start CG MODE SPLICE FRONT BACK: HAProxy (one thread) in MODE (tcp,
# http) from 127.0.0.1:FRONT to 127.0.0.1:BACK with SPLICE ("auto":
# option splice-auto; "both": splice-request and splice-response); pid in
# HAPROXY_PID, stats socket $TMP/haproxy.sock.
haproxy_start() {
	local opts
	case $3 in
	auto) opts="option splice-auto" ;;
	both) opts="option splice-request
	option splice-response" ;;
	esac
	cat >"$TMP/haproxy.cfg" <<-CFG
		global
			nbthread 1
			maxconn 200
			stats socket $TMP/haproxy.sock mode 600 level admin
		defaults
			mode $2
			timeout connect 5s
			timeout client 30s
			timeout server 30s
			$opts
		frontend fe
			bind 127.0.0.1:$4
			default_backend be
		backend be
			server s1 127.0.0.1:$5
	CFG
	rm -f "$TMP/haproxy.sock"
	bg_in "$1" "$TMP/haproxy.out" haproxy -db -f "$TMP/haproxy.cfg"
	HAPROXY_PID=$BG_PID
	wait_port "$4"
}

# HAProxy between its clients and servers, with `option splice-auto` and
# with `option splice-request` + `option splice-response`, over plain TCP and
# with client, HAProxy and server in the cgroup:
# - TCP mode, lltraffic send -> HAProxy -> lltraffic serve: 64 MiB one way,
#   64 request/responses of 1 MiB (which splice-auto splices; a one-way
#   stream it does not) and 5 000 of 64 B, every byte verified. No duplex
#   stream: HAProxy 2.6 resets a spliced session whose one direction
#   half-closes while the other still flows, about one time in two over
#   plain TCP (measured; the Go proxy does not);
# - HTTP mode, curl -> HAProxy -> nginx: 20 GETs and 2 PUTs of a 16 MiB body,
#   sha256-exact.
# HAProxy's pipe counts (`show info`) prove that it spliced over plain TCP
# (splice-auto does not splice HTTP bodies here); redirected bytes are
# logged, and no splice may find redirected bytes queued (splice_missed).
# (Was the known issue k_reader_haproxy.) With splice-request/-response in
# TCP mode, HAProxy recv()s once after accept() (EAGAIN), then only
# splices: taken for a safe reader at that EAGAIN, it was redirected the
# client's first 64 KiB-320 KiB, which splice() never read (the server got
# the stream from offset 65536 or 327680 on; the 1 MiB request/response
# stalled). A reader is now safe only once it took bytes with recvmsg, and
# ll_splice sees each splice: the pair leaves for good, and the process is
# never taken for a safe reader again. Each case starts a fresh HAProxy.
t_reader_haproxy() {
	local splice cfg cg r0 t0 m0 s0
	need_pkg haproxy haproxy
	need_pkg nginx nginx-light
	need_pkg curl curl
	need_pkg python3 python3
	start_daemon
	mkdir -p "$TMP/www"
	head -c 16M /dev/urandom >"$TMP/www/body"
	BODY_SUM=$(sha256sum <"$TMP/www/body")
	for splice in auto both; do
		for cfg in plain loopless; do
			[ $cfg = plain ] && cg="" || cg=$CG
			log "HAProxy TCP mode, splice $splice, $cfg:"
			haproxy_start "$cg" tcp "$splice" 7740 7741
			r0=$(counter redirected_bytes)
			m0=$(counter splice_missed)
			s0=$(spliced_pairs)
			t0=$(date +%s%N)
			streams_via "$cfg" "$cg" "$cg" 7740 7741 "--bytes 64M --tolerate-eagain" \
				"--size 1M --count 64" "--size 64 --count 5000"
			haproxy_spliced "$cfg"
			log "  tcp $splice $cfg: redirected +$(grew redirected_bytes "$r0"), $(ms_since "$t0") ms, $PIPES"
			# With splice-request/-response HAProxy splices every
			# connection: ll_splice must have seen it.
			[ "$splice/$cfg" != both/loopless ] || [ $(($(spliced_pairs) - s0)) -ge 1 ] ||
				differ "tcp both: no splice seen (leaves_splice, never_back_splice)"
			[ "$(grew splice_missed "$m0")" -eq 0 ] ||
				differ "tcp $splice: a splice found $(grew splice_missed "$m0") socket(s) with redirected bytes queued"
			stop_bg "$HAPROXY_PID"
			wait_port_free 7740

			log "HAProxy HTTP mode, splice $splice, $cfg:"
			nginx_start "$cg" 7743
			haproxy_start "$cg" http "$splice" 7742 7743
			r0=$(counter redirected_bytes)
			m0=$(counter splice_missed)
			t0=$(date +%s%N)
			http_via "$cfg" "$cg" 7742
			# splice-auto does not splice HTTP bodies here (HAProxy 2.6).
			PIPES=""
			[ "$splice" = auto ] || haproxy_spliced "$cfg"
			log "  http $splice $cfg: redirected +$(grew redirected_bytes "$r0"), $(ms_since "$t0") ms${PIPES:+, $PIPES}"
			[ "$(grew splice_missed "$m0")" -eq 0 ] ||
				differ "http $splice: a splice found $(grew splice_missed "$m0") socket(s) with redirected bytes queued"
			stop_bg "$HAPROXY_PID"
			stop_bg "$NGINX_PID"
			wait_port_free 7742
			wait_port_free 7743
		done
	done
	verdict
}

# nginx reading request bodies: curl PUTs a 16 MiB body to nginx (WebDAV) 10
# times, and GETs it 20 times, over plain TCP and with both in the cgroup,
# sha256-exact. nginx reads with edge-triggered epoll and takes the socket
# for drained after a short read or when FIONREAD says 0 (ngx_unix_recv());
# llprobe's epoll-et-nginx reads by the same rule (64 MiB, each reading
# end). Over TCP both rules are true; a sockmap socket whose bytes arrive
# over the TCP path (after a fallback) answers FIONREAD from its redirected
# queue only (tcp_bpf_ioctl()), and the reader waits for an edge that never
# comes while its receive queue is full.
# (Was the known issue k_reader_nginx_upload.) A pair whose bytes take TCP
# leaves the map before they are queued: its reader, never redirected into,
# leaves at that very segment (sockops_segment), so FIONREAD counts them.
t_reader_nginx_upload() {
	local reader cfg cg r0 t0
	need_pkg nginx nginx-light
	need_pkg curl curl
	start_daemon
	for reader in server client; do
		probe_both epoll-et-nginx --bytes 64M --reader "$reader" --timeout 30
	done
	mkdir -p "$TMP/www"
	head -c 16M /dev/urandom >"$TMP/www/body"
	BODY_SUM=$(sha256sum <"$TMP/www/body")
	for cfg in plain loopless; do
		[ $cfg = plain ] && cg="" || cg=$CG
		nginx_start "$cg" 7750
		r0=$(counter redirected_bytes)
		t0=$(date +%s%N)
		http_via "$cfg" "$cg" 7750 10
		log "  curl <-> nginx, $cfg: redirected +$(grew redirected_bytes "$r0"), $(ms_since "$t0") ms"
		stop_bg "$NGINX_PID"
		wait_port_free 7750
	done
	verdict
}
