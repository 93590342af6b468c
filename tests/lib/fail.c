// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "fail.h"

#define MSG_MAX 2048

const char *fail_what;
void (*fail_cleanup)(void);

static atomic_flag failing = ATOMIC_FLAG_INIT;

/* "PROG: [WHAT: ]message" on stderr; one fprintf on unbuffered stderr is one write(). */
static void vreport(const char *what, const char *fmt, va_list ap)
{
	char msg[MSG_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (what)
		fprintf(stderr, "%s: %s: %s\n", prog_name, what, msg);
	else
		fprintf(stderr, "%s: %s\n", prog_name, msg);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(NULL, fmt, ap);
	va_end(ap);
}

int usage_error(const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errmsg("%s (see '%s --help')", msg, prog_name);
	return 2;
}

void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_flag_test_and_set(&failing))
		for (;;)
			pause();
	va_start(ap, fmt);
	vreport(fail_what, fmt, ap);
	va_end(ap);
	if (fail_cleanup)
		fail_cleanup();
	_exit(1);
}
