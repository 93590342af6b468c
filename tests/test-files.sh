# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# The files of t_* (and k_*) functions, one area each; all are sourced for
# every test, so a helper defined in one serves them all. tests/run.sh runs
# the tests in this order, tests/known-issues.sh the reproducers.
# shellcheck disable=SC2034 # used by the scripts that source this
TEST_FILES=(tests/integration.sh tests/operations.sh tests/datapath.sh tests/pitfalls.sh
	tests/apps.sh tests/misuse.sh tests/mesh.sh tests/readers.sh tests/crossns.sh)
