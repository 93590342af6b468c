#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Test runner: unit tests (cmocka) then integration tests (the t_* functions of
# the files tests/test-files.sh lists; needs root). Ends with "N passed, N failed, N skipped"; exits non-zero on any failure.
#   tests/run.sh [--unit-only | --integration-only] [BUILD_DIR] [PATTERN...]
#   tests/run.sh --list [BUILD_DIR]
# PATTERN: a shell glob over integration test names ('mesh_*', 'exec'), or
# over unit test binaries, alone or with a glob over their tests ('test_*',
# 'test_key:test_reenter*'). With patterns, only what they match runs.
# An integration test skips by exiting 77 (need_cmd): SKIP, counted apart.
set -u
cd "$(dirname "$0")/.." || exit 2

mode=all
case "${1:-}" in
--unit-only) mode=unit; shift ;;
--integration-only) mode=integration; shift ;;
--list) mode=list; shift ;;
esac
BUILD=${1:-build}
shift || true
ONLY=("$@")
# shellcheck source=tests/test-files.sh
source tests/test-files.sh
UNIT_BINS=(test_config test_config_ini test_config_syntax test_options test_key test_stats)
SKIP_RC=77

passed=0
failed=0
skipped=0
failures=()

record() { # record NAME RC SECONDS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-28s %3ss\n' "$1" "$3"
	elif [ "$2" -eq $SKIP_RC ]; then
		skipped=$((skipped + 1))
		printf 'SKIP  %-28s %3ss\n' "$1" "$3"
	else
		failed=$((failed + 1))
		failures+=("$1")
		printf 'FAIL  %-28s %3ss\n' "$1" "$3"
	fi
}

# matches NAME: whether NAME is selected (everything when no pattern is given).
matches() {
	local p
	[ ${#ONLY[@]} -eq 0 ] && return 0
	for p in "${ONLY[@]}"; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $1 == $p ]] && return 0
	done
	return 1
}

# unit_filter BIN: the cmocka test glob a pattern gives BIN ("" for all);
# fails when no pattern names BIN.
unit_filter() {
	local p
	if [ ${#ONLY[@]} -eq 0 ]; then
		echo ""
		return 0
	fi
	for p in "${ONLY[@]}"; do
		# shellcheck disable=SC2053 # the binary part is a glob too
		[[ $1 == ${p%%:*} ]] || continue
		case $p in
		*:*) echo "${p#*:}" ;;
		*) echo "" ;;
		esac
		return 0
	done
	return 1
}

run_unit() {
	local b bin out rc n filter
	for b in "${UNIT_BINS[@]}"; do
		filter=$(unit_filter "$b") || continue
		bin="$BUILD/$b"
		# cmocka_set_test_filter() in each main reads it.
		out=$(LOOPLESS_TEST_FILTER="$filter" "$bin" 2>&1)
		rc=$?
		# cmocka: "[  PASSED  ] N test(s).", "[  FAILED  ] N test(s)...",
		# "[  SKIPPED ] N test(s)."
		n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
		passed=$((passed + ${n:-0}))
		n=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' <<<"$out")
		skipped=$((skipped + ${n:-0}))
		n=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
		if [ $rc -ne 0 ] || [ -n "$n" ]; then
			echo "$out" | grep -E '^\[  (FAILED|ERROR) ' >&2
			failed=$((failed + ${n:-1}))
			failures+=("$b")
		fi
		printf 'UNIT  %-28s rc=%d%s\n' "$b" $rc "${filter:+ (tests $filter)}"
	done
}

integration_tests() { grep -ho '^t_[a-z0-9_]*' "${TEST_FILES[@]}" | sed 's/^t_//'; }

run_integration() {
	local t start rc logf
	if [ "$(id -u)" -ne 0 ]; then
		echo "integration tests need root (BPF, netns, cgroups)" >&2
		failed=$((failed + 1))
		failures+=(integration-not-root)
		return
	fi
	mkdir -p "$BUILD/test-logs"
	for t in $(integration_tests); do
		matches "$t" || continue
		logf="$BUILD/test-logs/$t.log"
		start=$(date +%s)
		(
			BUILD=$BUILD
			source tests/lib.sh
			for f in "${TEST_FILES[@]}"; do
				# shellcheck source=/dev/null
				source "$f"
			done
			env_setup "$t"
			"t_$t"
		) >"$logf" 2>&1
		rc=$?
		record "$t" $rc $(($(date +%s) - start))
		if [ $rc -ne 0 ] && [ $rc -ne $SKIP_RC ]; then
			sed 's/^/      /' "$logf" | tail -25
		else
			grep -E '^  ' "$logf" | head -8
		fi
	done
}

if [ "$mode" = list ]; then
	printf '%s\n' "${UNIT_BINS[@]}"
	integration_tests
	exit 0
fi
[ "$mode" != integration ] && run_unit
[ "$mode" != unit ] && run_integration

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
if [ $((passed + failed + skipped)) -eq 0 ]; then
	echo "no test matches: ${ONLY[*]} (tests/run.sh --list)" >&2
	exit 2
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
