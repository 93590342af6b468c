# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Bad input and misuse: every option of looplessd and loopless and every
# configuration key, each with wrong values (not a number, negative, overflow,
# out of range, empty, wrong type, missing argument, unknown option). Each
# must give exactly one line on stderr and nothing on stdout, exit status 2,
# a line naming the option, or the file:line and key, and leave nothing
# behind: no pin dir, no program on the cgroup, no file in the working
# directory. looplessd runs both with --check and for real.
# Sourced by tests/run.sh after tests/lib.sh; each t_* runs in its own
# env_setup (netns, cgroup, pin dir, temp dir).

# Not on this host (TEST-NET-2, and the IPv6 documentation prefix): a metrics
# endpoint there cannot be bound.
MISUSE_FOREIGN4=198.51.100.1
MISUSE_FOREIGN6=2001:db8::1

misuse_setup() {
	MISUSE_D=$(realpath "$LOOPLESSD") || die "no $LOOPLESSD"
	MISUSE_L=$(realpath "$LOOPLESS") || die "no $LOOPLESS"
	# The binaries run here: a relative path taken for a pin dir or a
	# cgroup by mistake would show up in it.
	mkdir "$TMP/cwd" || die "mkdir $TMP/cwd"
	MISUSE_N=0
	[ -z "$(bpftool cgroup show "$CG")" ] || die "$CG has programs before the test"
}

# misuse_full_dir: $TMP/full, a directory with a file in it, for a pin dir
# bpffs must not be mounted over. Should that happen after all, the EXIT trap
# removes the datapath and the mount before env_cleanup runs.
misuse_full_dir() {
	mkdir "$TMP/full" && touch "$TMP/full/file" || die "mkdir $TMP/full"
	trap 'rc=$?
		if mountpoint -q "$TMP/full"; then
			"$LOOPLESS" --pin-dir "$TMP/full" uninstall --force >/dev/null 2>&1
			umount "$TMP/full"
		fi
		(exit $rc); env_cleanup' EXIT
}

# misuse_nothing WHAT: nothing was created or attached.
misuse_nothing() {
	[ ! -e "$PIN" ] || die "$1: created $PIN"
	[ -z "$(bpftool cgroup show "$CG")" ] || die "$1: attached to $CG: $(bpftool cgroup show "$CG")"
	[ -z "$(ls -A "$TMP/cwd")" ] || die "$1: created $(ls -A "$TMP/cwd") in the working directory"
}

# misuse_run WHAT PATTERN... -- CMD...: CMD exits 2 with exactly one line on
# stderr that contains every PATTERN (fixed strings), nothing on stdout.
misuse_run() {
	local what=$1 pats=() p rc
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do pats+=("$1"); shift; done
	[ "${1:-}" = -- ] || die "misuse_run $what: no -- before the command"
	shift
	(cd "$TMP/cwd" && exec timeout 5 "$@") </dev/null >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -eq 2 ] || die "$what: exit $rc, want 2 (stderr: $(head -c 600 "$TMP/err"))"
	[ ! -s "$TMP/out" ] || die "$what: wrote to stdout: $(head -c 300 "$TMP/out")"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] && [ -z "$(tail -c1 "$TMP/err")" ] ||
		die "$what: not exactly one line: $(cat -A "$TMP/err" | head -c 600)"
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$TMP/err" || die "$what: \"$(cat "$TMP/err")\" lacks \"$p\""
	done
	MISUSE_N=$((MISUSE_N + 1))
	MISUSE_LAST=$(cat "$TMP/err")
}

# bad_daemon PATTERN... -- ARGS...: looplessd with ARGS after a base command
# line (--config /dev/null, $PIN, $CG; ARGS come last, so they override it
# and a missing option argument is missing), with --check and for real.
bad_daemon() {
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	misuse_run "looplessd --check $*" "${pats[@]}" -- "$MISUSE_D" --check \
		--config /dev/null --pin-dir "$PIN" --cgroup "$CG" "$@"
	misuse_run "looplessd $*" "${pats[@]}" -- "$MISUSE_D" \
		--config /dev/null --pin-dir "$PIN" --cgroup "$CG" "$@"
	misuse_nothing "looplessd $*"
}

# bad_conf TEXT PATTERN...: looplessd --config FILE, FILE being
#   [daemon]
#   cgroup = $CG
#   TEXT (from line 3; printf escapes)
# with --check and for real. The cgroup line keeps a wrongly accepted file
# away from the cgroup2 root; --pin-dir on the command line keeps its pins
# away from /sys/fs/bpf/loopless.
bad_conf() {
	local text=$1 f="$TMP/bad.conf"
	shift
	printf '[daemon]\ncgroup = %s\n' "$CG" >"$f"
	# shellcheck disable=SC2059 # TEXT is a format: \n, \0 and %% are its escapes
	printf -- "$text" >>"$f"
	misuse_run "conf \"$text\" --check" "$@" -- "$MISUSE_D" --check --config "$f" --pin-dir "$PIN"
	misuse_run "conf \"$text\"" "$@" -- "$MISUSE_D" --config "$f" --pin-dir "$PIN"
	misuse_nothing "conf \"$text\""
}

# bad_key SECTION KEY VALUE [PATTERN]: KEY = VALUE on line 4 of a bad_conf
# file; the line must name bad.conf:4: and the key ("KEY", or PATTERN).
bad_key() {
	local value=${3//%/%%}
	value=${value//\\/\\\\}
	bad_conf "[$1]\n$2 = $value\n" "bad.conf:4: " "${4:-\"$2\"}"
}

# bad_cli PATTERN... -- ARGS...: loopless --pin-dir $PIN ARGS...
bad_cli() {
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	misuse_run "loopless $*" "${pats[@]}" -- "$MISUSE_L" --pin-dir "$PIN" "$@"
	misuse_nothing "loopless $*"
}

# getopt level: unknown options, missing and unwanted option arguments,
# stray arguments. One line each, not getopt's line plus "Try --help".
t_misuse_daemon_options() {
	local o
	misuse_setup
	bad_daemon 'unknown option "--bogus"' -- --bogus
	bad_daemon 'unknown option "--bogus"' -- --bogus=1
	bad_daemon 'unknown option "-x"' -- -x
	bad_daemon 'unknown option "-x"' -- -nx
	bad_daemon 'unknown option "--bo\x0agus"' -- $'--bo\ngus'
	bad_daemon 'ambiguous option "--c"' --config --cgroup --check -- --c
	bad_daemon 'unknown option "-\x01"' -- $'-\x01'
	for o in --config --cgroup --pin-dir --log-level --metrics -c -g -p -l -m; do
		bad_daemon "option \"$o\" needs an argument" -- "$o"
	done
	bad_daemon 'option "--config" needs an argument' -- --conf
	for o in --check --help --version; do
		bad_daemon "option \"$o\" takes no argument" -- "$o=yes"
		bad_daemon "option \"$o\" takes no argument" -- "$o="
	done
	bad_daemon 'unexpected argument "extra"' -- extra
	bad_daemon 'unexpected argument "ex\x0atra"' -- $'ex\ntra'
	bad_daemon 'unexpected argument "--check"' -- -- --check
	log "$MISUSE_N rejected, e.g.: $MISUSE_LAST"
}

# Every option's value: empty, wrong type, out of range, overflow, not there.
t_misuse_daemon_values() {
	local long i v args=()
	misuse_setup
	long=$(printf '%05000d' 0)

	# --config
	bad_daemon '--config: empty file name' -- --config ''
	bad_daemon '--config: ' 'No such file or directory' -- --config "$TMP/missing.conf"
	bad_daemon '--config: ' 'Is a directory' -- --config "$TMP"
	bad_daemon '--config: ' 'No such file or directory' -- --config 99999999999999999999
	bad_daemon '--config: ' '\x0a' -- --config "$TMP/a"$'\n'"b"
	bad_daemon '--config: ' 'File name too long' -- --config "/$long"
	printf '[daemon]\nmax_sockets = -1\n' >"$TMP/neg.conf"
	bad_daemon 'neg.conf:2: bad value for "max_sockets"' -- --config "$TMP/neg.conf"

	# --cgroup
	bad_daemon '--cgroup: empty cgroup path' -- --cgroup ''
	bad_daemon '--cgroup: ' '".." component' -- --cgroup ..
	bad_daemon '--cgroup: ' '".." component' -- --cgroup "$CG/../x"
	bad_daemon '--cgroup: ' 'cgroup2 root' -- --cgroup /
	bad_daemon '--cgroup: ' 'cgroup2 root' -- --cgroup .
	bad_daemon '--cgroup: ' 'duplicate cgroup' -- --cgroup "$CG"
	bad_daemon '--cgroup "loopless-no-such"' 'No such file or directory' -- --cgroup loopless-no-such
	bad_daemon '--cgroup "99999999999999999999"' 'No such file' -- --cgroup 99999999999999999999
	bad_daemon '--cgroup "/proc"' 'not a cgroup v2 directory' -- --cgroup /proc
	bad_daemon '--cgroup "/etc/passwd"' 'Not a directory' -- --cgroup /etc/passwd
	bad_daemon '--cgroup "/no\x0asuch"' -- --cgroup $'/no\nsuch'
	bad_daemon '--cgroup: cgroup path too long' -- --cgroup "/$long"
	args=()
	for i in $(seq 64); do args+=(--cgroup "c$i"); done
	bad_daemon 'too many --cgroup options (at most 64)' -- "${args[@]}"

	# --pin-dir
	bad_daemon '--pin-dir: ' 'not an absolute path' -- --pin-dir ''
	bad_daemon '--pin-dir: ' 'not an absolute path' -- --pin-dir relative
	bad_daemon '--pin-dir: ' 'not an absolute path' -- --pin-dir 99999999999999999999
	bad_daemon '--pin-dir: ' 'not an absolute path' -- --pin-dir $'x\ny'
	bad_daemon '--pin-dir: ' 'root directory' -- --pin-dir /
	bad_daemon '--pin-dir: ' 'root directory' -- --pin-dir //.
	bad_daemon '--pin-dir: path too long' -- --pin-dir "/$long"
	misuse_full_dir
	bad_daemon "--pin-dir \"$TMP/full\" is a directory with files in it" -- --pin-dir "$TMP/full"
	! mountpoint -q "$TMP/full" || die "bpffs mounted over $TMP/full"
	bad_daemon "--pin-dir \"/etc/passwd\" is not a directory" -- --pin-dir /etc/passwd

	# --log-level
	for v in '' loud 1 -1 99999999999999999999 'info debug' 'info '; do
		bad_daemon "--log-level: unknown level \"$v\"" -- --log-level "$v"
	done
	bad_daemon '--log-level: unknown level "lo\x0aud"' -- --log-level $'lo\nud'

	# --metrics ("" is valid: off)
	bad_daemon '--metrics: ' 'missing port' -- --metrics 127.0.0.1
	bad_daemon '--metrics: ' 'missing port' -- --metrics '[::1]'
	bad_daemon '--metrics: ' 'not an IPv4 address' -- --metrics localhost:9464
	bad_daemon '--metrics: ' 'not an IPv4 address' -- --metrics 256.0.0.1:9464
	bad_daemon '--metrics: ' 'not an IPv4 address' -- --metrics :9464
	bad_daemon '--metrics: ' 'not an IPv6 address' -- --metrics '[x]:9464'
	bad_daemon '--metrics: ' 'in brackets' -- --metrics ::1:9464
	bad_daemon '--metrics: ' 'missing "]"' -- --metrics '[::1:9464'
	bad_daemon '--metrics: ' 'out of range' -- --metrics 127.0.0.1:65536
	bad_daemon '--metrics: ' 'out of range' -- --metrics 127.0.0.1:99999999999999999999
	bad_daemon '--metrics: ' 'bad port "-1"' -- --metrics 127.0.0.1:-1
	bad_daemon '--metrics: ' 'bad port ""' -- --metrics 127.0.0.1:
	bad_daemon '--metrics: ' 'bad port "80x"' -- --metrics 127.0.0.1:80x
	bad_daemon '--metrics: ' '\x0a' -- --metrics $'127.0.0.1:80\n'
	# Well formed, but not an address of this host.
	bad_daemon "cannot listen on $MISUSE_FOREIGN4:9464" '(fix --metrics)' -- \
		--metrics "$MISUSE_FOREIGN4:9464"
	bad_daemon "cannot listen on [$MISUSE_FOREIGN6]:9464" '(fix --metrics)' -- \
		--metrics "[$MISUSE_FOREIGN6]:9464"
	bad_daemon "cannot listen on [::ffff:127.0.0.1]:9464" '(fix --metrics)' -- \
		--metrics "[::ffff:127.0.0.1]:9464"
	log "$MISUSE_N rejected, e.g.: $MISUSE_LAST"
}

# Every configuration key, each with wrong values; the line names
# bad.conf:4: and the key.
t_misuse_config_keys() {
	local k v many
	misuse_setup

	# [daemon]
	for v in '' relative 99999999999999999999 / //; do bad_key daemon pin_dir "$v"; done
	for v in '' .. a/../b / . //; do bad_key daemon cgroup "$v"; done
	bad_key daemon cgroup "$CG" 'duplicate cgroup'
	for v in /loopless-no-such 99999999999999999999 /proc /etc/passwd; do
		bad_key daemon cgroup "$v" "cgroup \"$v\""
	done
	for v in '' loud 1 -1 99999999999999999999 'info debug'; do bad_key daemon log_level "$v"; done
	for v in '' lots -1 0 16777217 99999999999999999999 1.5 0x10 1e6 '1 2' 64k; do
		bad_key daemon max_sockets "$v"
	done
	for v in 127.0.0.1 '[::1]' localhost:9464 256.0.0.1:80 :80 '[x]:80' '[]:80' ::1:9464 \
		'[::1:9464' 127.0.0.1: 127.0.0.1:-1 127.0.0.1:65536 127.0.0.1:99999999999999999999 \
		127.0.0.1:80x '[::1]:80:' 9464; do
		bad_key daemon metrics "$v"
	done
	# Well formed, but not on this host: found when bound (also by --check).
	bad_key daemon metrics "$MISUSE_FOREIGN4:9464" "cannot listen on $MISUSE_FOREIGN4:9464"
	grep -qF '(fix "metrics =" in [daemon])' <<<"$MISUSE_LAST" || die "no fix hint: $MISUSE_LAST"
	bad_key daemon metrics "[$MISUSE_FOREIGN6]:9464" "cannot listen on [$MISUSE_FOREIGN6]:9464"

	# [datapath]
	for k in include_ports exclude_ports; do
		for v in 0 65536 80-70000 -1 x 90-80 80- -80 0-10 99999999999999999999 80/tcp 1-2-3 \
			1.5 ssh; do
			bad_key datapath "$k" "$v"
		done
		# 1 on line 4, then one a line: the 65th on line 68.
		many=
		for v in $(seq 2 65); do many+="  $v\n"; done
		bad_conf "[datapath]\n$k = 1\n$many" 'bad.conf:68: ' "\"$k\"" 'too many port ranges'
	done
	for v in 10.0.0.300 x 10.0.0.0/8 fe80::1%eth0 '1.2.3.4, 1.2.3.4' '::1 ::1' localhost 1.2.3 \
		99999999999999999999 -1; do
		bad_key datapath local_addrs "$v"
	done
	for v in '' x -1 0 65535 1073741825 99999999999999999999 16M 1.5; do
		bad_key datapath queue_limit "$v"
	done
	for v in '' x -1 0 60001 99999999999999999999 20ms; do bad_key datapath reader_idle_ms "$v"; done
	for v in '' x -1 1048577 99999999999999999999 4K; do bad_key datapath small_write "$v"; done
	for v in '' x -1 0 1073741825 99999999999999999999; do bad_key datapath small_lag "$v"; done

	# Lists too long for their maps: 10.0.0.1 on line 4, then one a line,
	# the 257th on line 260; cgroups c1 on line 3 (after $CG), the 65th
	# (c64) on line 66.
	many=
	for v in $(seq 256); do many+="  10.1.$((v / 250)).$((v % 250 + 1))\n"; done
	bad_conf "[datapath]\nlocal_addrs = 10.0.0.1\n$many" 'bad.conf:260: ' '"local_addrs"' \
		'too many addresses'
	many=
	for v in $(seq 64); do many+="cgroup = c$v\n"; done
	bad_conf "$many" 'bad.conf:66: ' '"cgroup"' 'too many cgroups'
	log "$MISUSE_N rejected, e.g.: $MISUSE_LAST"
}

# The file's structure: sections, keys, comments, continuation lines, limits.
t_misuse_config_syntax() {
	local f="$TMP/raw.conf"
	misuse_setup
	bad_conf '[nope]\n' 'bad.conf:3: unknown section [nope]'
	bad_conf '[DAEMON]\n' 'bad.conf:3: unknown section [DAEMON]'
	bad_conf '[daemon] x\n' 'bad.conf:3: unexpected text after [daemon]'
	bad_conf '[daemon\n' 'bad.conf:3: syntax error'
	bad_conf 'max_sockets\n' 'bad.conf:3: syntax error'
	bad_conf 'cgroupz = x\n' 'bad.conf:3: unknown key "cgroupz" in [daemon]'
	bad_conf '= 5\n' 'bad.conf:3: unknown key "" in [daemon]'
	bad_conf 'queue_limit = 65536\n' 'bad.conf:3: ' '"queue_limit"' 'belongs in [datapath]'
	bad_conf '[datapath]\npin_dir = /x\n' 'bad.conf:4: ' '"pin_dir"' 'belongs in [daemon]'
	bad_conf 'max_sockets = 5 # five\n' 'bad.conf:3: ' '"max_sockets"' 'starts a comment'
	bad_conf 'log_level = info\n  debug\n' 'bad.conf:4: ' '"log_level"' 'indented line'
	bad_conf 'log_level = info\n  max_sockets = 5\n' 'bad.conf:4: ' '"log_level"' 'indented line'
	bad_conf "[datapath]\ninclude_ports = $(seq -s, 80 150)\n" 'bad.conf:4: line too long'
	bad_conf 'log_level = info\0\n' 'bad.conf:3: line contains a NUL byte'

	# A key before any section (no cgroup line first: --cgroup instead).
	printf 'max_sockets = 5\n' >"$f"
	misuse_run "key outside a section" 'raw.conf:1: key "max_sockets" outside any section' -- \
		"$MISUSE_D" --config "$f" --pin-dir "$PIN" --cgroup "$CG"
	misuse_nothing "key outside a section"
	# pin_dir on a directory that holds files: the file names it, not --pin-dir.
	misuse_full_dir
	printf '[daemon]\ncgroup = %s\npin_dir = %s\n' "$CG" "$TMP/full" >"$f"
	misuse_run "pin_dir over files" "raw.conf:3: pin_dir \"$TMP/full\" is a directory with files" \
		-- "$MISUSE_D" --config "$f"
	! mountpoint -q "$TMP/full" || die "bpffs mounted over $TMP/full"
	misuse_nothing "pin_dir over files"
	log "$MISUSE_N rejected, e.g.: $MISUSE_LAST"
}

# loopless: options, their values, commands, and options a command does not
# take.
t_misuse_cli() {
	local o long
	misuse_setup
	long=$(printf '%05000d' 0)
	bad_cli 'missing command' --
	bad_cli 'unknown command "bogus"' -- bogus
	bad_cli 'unknown command ""' -- ''
	bad_cli 'unknown command "st\x0aatus"' -- $'st\natus'
	bad_cli 'unknown command "STATUS"' -- STATUS
	bad_cli 'unexpected argument "extra"' -- status extra
	bad_cli 'unexpected argument "uninstall"' -- stats uninstall
	bad_cli 'unknown option "--bogus"' -- --bogus status
	bad_cli 'unknown option "--bogus"' -- status --bogus
	bad_cli 'unknown option "-x"' -- status -x
	for o in --pin-dir --timeout -p -t; do
		bad_cli "option \"$o\" needs an argument" -- uninstall "$o"
	done
	for o in --json --force --help --version; do
		bad_cli "option \"$o\" takes no argument" -- status "$o=1"
	done
	# --pin-dir
	for o in '' relative 99999999999999999999 / $'x\ny'; do
		bad_cli '--pin-dir: ' -- --pin-dir "$o" status
	done
	bad_cli '--pin-dir: path too long' -- --pin-dir "/$long" stats
	# --timeout: seconds, 0 to 3600, digits only
	for o in '' x -1 3601 99999999999999999999 1.5 ' 5' +5 5s 0x10 $'5\n'; do
		bad_cli '--timeout: "' 'is not a number of seconds (0-3600)' -- uninstall --timeout "$o"
	done
	# Options the command would ignore.
	bad_cli '--timeout applies to uninstall only, not to status' -- status --timeout 5
	bad_cli '--force applies to uninstall only, not to conns' -- --force conns
	bad_cli '--timeout and --force exclude each other' -- uninstall --force --timeout 5
	bad_cli '--json applies to status, stats and conns, not to uninstall' -- --json uninstall
	log "$MISUSE_N rejected, e.g.: $MISUSE_LAST"
}

# With a datapath running: misused commands change nothing. A bad uninstall
# does not uninstall; a second looplessd with a bad value does not adopt or
# re-attach (same links, same program).
t_misuse_running() {
	local before
	misuse_setup
	start_daemon
	before=$(bpftool cgroup show "$CG")
	[ "$(grep -c sock_ops <<<"$before")" -eq 1 ] || die "not attached: $before"
	for args in "uninstall --timeout x" "uninstall --force --timeout 1" "--json uninstall" \
		"uninstall now" "uninstall --bogus" "--force stats"; do
		# shellcheck disable=SC2086
		misuse_run "loopless $args" 'loopless: ' -- "$MISUSE_L" --pin-dir "$PIN" $args
	done
	misuse_run "loopless --pin-dir relative uninstall" '--pin-dir: ' -- \
		"$MISUSE_L" --pin-dir "${PIN#/}" uninstall
	for args in "--log-level loud" "--metrics 127.0.0.1" "--cgroup loopless-no-such" \
		"--max-sockets 5" "--pin-dir /"; do
		# shellcheck disable=SC2086
		misuse_run "looplessd $args" 'looplessd: ' -- \
			"$MISUSE_D" --config /dev/null --pin-dir "$PIN" --cgroup "$CG" $args
	done
	printf '[datapath]\nqueue_limit = 1\n' >"$TMP/bad.conf"
	misuse_run "looplessd with a bad file" 'bad.conf:2: ' '"queue_limit"' -- \
		"$MISUSE_D" --config "$TMP/bad.conf" --pin-dir "$PIN" --cgroup "$CG"
	kill -0 "$DAEMON_PID" || die "the running looplessd died"
	"$MISUSE_L" --pin-dir "$PIN" status >/dev/null || die "datapath no longer attached"
	[ "$(bpftool cgroup show "$CG")" = "$before" ] ||
		die "attachment changed: $before -> $(bpftool cgroup show "$CG")"
	[ -z "$(ls -A "$TMP/cwd")" ] || die "created $(ls -A "$TMP/cwd")"
	log "$MISUSE_N rejected with the datapath untouched, e.g.: $MISUSE_LAST"
}
