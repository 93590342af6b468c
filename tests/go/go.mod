// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test programs for tests/readers.sh: Go proxies written the usual way, standard
// library only (built offline with Debian's golang-go).
module loopless.test/go

go 1.19
