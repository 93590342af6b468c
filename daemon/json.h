/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one JSON string writer of the CLI's --json output: every string value
 * (paths, process names, addresses) goes through it, so a pin directory
 * or a comm with a quote or a control character still gives valid JSON.
 */
#ifndef LOOPLESS_JSON_H
#define LOOPLESS_JSON_H

#include <stdio.h>

/* @s as a JSON string, quotes included (RFC 8259: '"', '\\' and control
 * characters escaped; other bytes as they are). */
void json_str(FILE *f, const char *s);

#endif
