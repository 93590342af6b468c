// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for the configuration parser (daemon/config_ini.c): any byte string handed to
 * config_parse_string() must give 0 or -errno with a one-line message, never a crash, a leak
 * (ASan's LeakSanitizer runs at exit) or an unterminated error string. Built by `make fuzz`
 * with clang -fsanitize=fuzzer,address,undefined; the seed corpus is tests/fuzz/corpus.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[512];
	char *text;
	int rc;

	/* The parser takes a C string: NUL-terminate a copy (an embedded NUL ends it early). */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	config_init(&cfg);
	memset(err, 0x55, sizeof(err));
	err[0] = '\0';
	rc = config_parse_string(&cfg, "fuzz.conf", text, err, sizeof(err));
	if (rc > 0)
		abort(); /* 0 or -errno only */
	if (rc < 0 && !memchr(err, '\0', sizeof(err)))
		abort(); /* the message must be a terminated string */
	if (rc < 0 && strchr(err, '\n'))
		abort(); /* one line */
	config_free(&cfg);
	free(text);
	return 0;
}
