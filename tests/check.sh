#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make check: what needs no root, no netns and no cgroup. C formatting
# (clang-format), shell scripts (shellcheck, warnings and up), the man pages,
# the Kubernetes manifests and the Dockerfile (the same functions make test
# runs as t_man_pages, t_deploy_manifests, t_dockerfile). Ends with
# "N passed, N failed"; exits non-zero on any failure.
#   tests/check.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
passed=0
failed=0

# step NAME CMD...: run CMD (a function of the test files, or a command) in a
# subshell of its own; its output on failure.
step() {
	local name=$1 out
	shift
	if out=$(
		TMP=$(mktemp -d "/tmp/loopless-check-$name.XXXXXX") || exit 1
		trap 'rm -rf "$TMP"' EXIT
		"$@" 2>&1
	); then
		passed=$((passed + 1))
		printf 'PASS  %s\n' "$name"
		grep -E '^  ' <<<"$out" | head -4
	else
		failed=$((failed + 1))
		printf 'FAIL  %s\n' "$name"
		sed 's/^/      /' <<<"$out" | tail -25
	fi
}

# shellcheck source=tests/lib.sh
source tests/lib.sh
# shellcheck source=tests/test-files.sh
source tests/test-files.sh
for f in "${TEST_FILES[@]}"; do
	# shellcheck source=/dev/null
	source "$f"
done

# The sources by find, not git ls-files: git refuses a checkout another user
# owns, and clang-format given no file would read stdin and pass.
mapfile -t C_FILES < <(find bpf daemon tests bench -name '*.[ch]' -not -path '*/corpus/*' | sort)
mapfile -t SH_FILES < <(find tests bench -name '*.sh' | sort)
[ ${#C_FILES[@]} -gt 20 ] && [ ${#SH_FILES[@]} -gt 10 ] ||
	{ echo "found only ${#C_FILES[@]} C and ${#SH_FILES[@]} shell files" >&2; exit 1; }
step clang-format clang-format --dry-run --Werror "${C_FILES[@]}"
step shellcheck shellcheck -S warning -x "${SH_FILES[@]}" .ci/run
step man-pages t_man_pages
step manifests check_manifests
step dockerfile t_dockerfile

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
