/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Command-line errors of looplessd and loopless, one line each, in place of
 * getopt_long()'s own message and its "Try --help" line.
 */
#ifndef LOOPLESS_OPTIONS_H
#define LOOPLESS_OPTIONS_H

#include <stddef.h>

struct option;
/*
 * One line, in @buf, for the error getopt_long() reported by returning @c
 * ('?' or ':'), called with opterr = 0 and an option string that starts
 * (after any '+') with ':'. @ind and @opt are getopt's optind and optopt
 * after that call, e.g.
 *   unknown option "--bogus" (try --help)
 *   option "--config" needs an argument (try --help)
 */
void options_error(char *buf, size_t size, int c, const struct option *longopts, char *const argv[],
		   int ind, int opt);

#endif /* LOOPLESS_OPTIONS_H */
