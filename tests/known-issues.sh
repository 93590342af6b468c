#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make known-issues: reproducers of open problems, kept out of make test.
# Each k_* function in the test files (tests/test-files.sh) asserts the
# behaviour plain TCP has; a failure means the issue still reproduces. Exit 0 either way: this
# reports, it does not gate.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 2; }
mkdir -p "$BUILD/test-logs"
# shellcheck source=tests/test-files.sh
source tests/test-files.sh
for k in $(grep -ho '^k_[a-z0-9_]*' "${TEST_FILES[@]}"); do
	logf="$BUILD/test-logs/${k#k_}.log"
	(
		BUILD=$BUILD
		source tests/lib.sh
		for f in "${TEST_FILES[@]}"; do
			# shellcheck source=/dev/null
			source "$f"
		done
		env_setup "${k#k_}"
		"$k"
	) >"$logf" 2>&1
	if [ $? -eq 0 ]; then
		printf 'NOT SEEN    %s (this run; some are intermittent)\n' "${k#k_}"
	else
		printf 'REPRODUCED  %s: %s\n' "${k#k_}" "$(grep -m1 '^FAIL:' "$logf" | cut -c7-)"
	fi
	grep -E '^  ' "$logf" | head -4
done
