#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Test runner: unit tests (cmocka) then integration tests (the t_* functions of
# tests/integration.sh, tests/misuse.sh, tests/mesh.sh and tests/readers.sh, needs
# root). Ends with "N passed, N failed"; exits non-zero on any failure.
#   tests/run.sh [--unit-only | --integration-only] [BUILD_DIR] [TEST_NAME...]
set -u
cd "$(dirname "$0")/.." || exit 2

mode=all
case "${1:-}" in
--unit-only) mode=unit; shift ;;
--integration-only) mode=integration; shift ;;
esac
BUILD=${1:-build}
shift || true
ONLY=("$@")
# Files of t_* functions, all sourced for every test (helpers are shared).
TEST_FILES=(tests/integration.sh tests/misuse.sh tests/mesh.sh tests/readers.sh)

passed=0
failed=0
failures=()

record() { # record NAME RC SECONDS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-28s %3ss\n' "$1" "$3"
	else
		failed=$((failed + 1))
		failures+=("$1")
		printf 'FAIL  %-28s %3ss\n' "$1" "$3"
	fi
}

run_unit() {
	local bin out rc n
	for bin in "$BUILD"/test_config "$BUILD"/test_key "$BUILD"/test_counters; do
		out=$(cd . && "$bin" 2>&1)
		rc=$?
		# cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)..."
		n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
		passed=$((passed + ${n:-0}))
		n=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$out")
		if [ $rc -ne 0 ] || [ -n "$n" ]; then
			echo "$out" | grep -E '^\[  (FAILED|ERROR) ' >&2
			failed=$((failed + ${n:-1}))
			failures+=("$(basename "$bin")")
		fi
		printf 'UNIT  %-28s rc=%d\n' "$(basename "$bin")" $rc
	done
}

run_integration() {
	local t start rc logf
	if [ "$(id -u)" -ne 0 ]; then
		echo "integration tests need root (BPF, netns, cgroups)" >&2
		failed=$((failed + 1))
		failures+=(integration-not-root)
		return
	fi
	mkdir -p "$BUILD/test-logs"
	tests=$(grep -ho '^t_[a-z0-9_]*' "${TEST_FILES[@]}")
	for t in $tests; do
		if [ ${#ONLY[@]} -gt 0 ] && ! printf '%s\n' "${ONLY[@]}" | grep -qx "${t#t_}"; then
			continue
		fi
		logf="$BUILD/test-logs/${t#t_}.log"
		start=$(date +%s)
		(
			BUILD=$BUILD
			source tests/lib.sh
			for f in "${TEST_FILES[@]}"; do
				# shellcheck source=/dev/null
				source "$f"
			done
			env_setup "${t#t_}"
			"$t"
		) >"$logf" 2>&1
		rc=$?
		record "${t#t_}" $rc $(($(date +%s) - start))
		if [ $rc -ne 0 ]; then
			sed 's/^/      /' "$logf" | tail -25
		else
			grep -E '^  ' "$logf" | head -8
		fi
	done
}

[ "$mode" != integration ] && run_unit
[ "$mode" != unit ] && run_integration

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
