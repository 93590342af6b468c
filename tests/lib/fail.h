/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * How a tool says what went wrong: one line on stderr, "PROG: message", and for fail() the end
 * of the run. A tool is a short-lived process whose threads may be blocked on a peer that will
 * never move again: once a byte is wrong or a socket fails there is nothing left to save, and
 * _exit() ends every thread at once instead of untangling them.
 */
#ifndef LOOPLESS_TESTS_FAIL_H
#define LOOPLESS_TESTS_FAIL_H

/* The tool's name, the start of every line: defined by each tool ("lltraffic"). */
extern const char prog_name[];

/* What the tool is doing, printed after its name by fail() ("llprobe: poll: ..."); NULL: none. */
extern const char *fail_what;

/* Run by fail() before it exits (lltraffic resets its connections); NULL: nothing. */
extern void (*fail_cleanup)(void);

/* "PROG: message" on stderr, in one write(): lines from threads do not interleave. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "PROG: message (see 'PROG --help')"; returns 2, the exit status of a usage error. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * "PROG: [WHAT: ]message", then exit status 1. The first thread to fail is the one that speaks:
 * another failing at the same moment (or the watchdog) waits here until the exit ends it.
 */
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
