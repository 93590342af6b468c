// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The result line: "ok key=value..." or, with --json, one JSON object; only on success. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/fail.h"
#include "lib/io.h"
#include "lltraffic.h"

void out_init(struct out *r)
{
	r->tl = snprintf(r->text, sizeof(r->text), "ok");
	r->jl = snprintf(r->json, sizeof(r->json), "{\"result\":\"ok\"");
}

void out_add(struct out *r, const char *key, bool str, const char *fmt, ...)
{
	char val[512];
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (r->tl < sizeof(r->text))
		r->tl += snprintf(r->text + r->tl, sizeof(r->text) - r->tl, " %s=%s", key, val);
	if (r->jl < sizeof(r->json))
		r->jl += snprintf(r->json + r->jl, sizeof(r->json) - r->jl, ",\"%s\":%s", key,
				  str ? "\"" : val);
	if (!str || r->jl >= sizeof(r->json))
		return;
	for (p = val; *p && r->jl + 3 < sizeof(r->json); p++) {
		if (*p == '"' || *p == '\\')
			r->json[r->jl++] = '\\';
		r->json[r->jl++] = *p;
	}
	r->json[r->jl++] = '"';
	r->json[r->jl] = '\0';
}

int out_print(const struct out *r, bool json)
{
	if (json)
		printf("%s}\n", r->json);
	else
		printf("%s\n", r->text);
	if (fflush(stdout)) {
		errmsg("cannot write the result to stdout: %s", strerror(errno));
		return 1;
	}
	return 0;
}

void out_stream(struct out *r, const struct opts *o, uint64_t c2s_fnv, uint64_t s2c_fnv,
		uint64_t elapsed, const char *client, const char *server)
{
	out_add(r, "bytes", false, "%" PRIu64, o->bytes);
	if (o->s2c_bytes != o->bytes)
		out_add(r, "s2c_bytes", false, "%" PRIu64, o->s2c_bytes);
	out_add(r, "c2s_fnv", true, "%016" PRIx64, c2s_fnv);
	if (o->duplex)
		out_add(r, "s2c_fnv", true, "%016" PRIx64, s2c_fnv);
	out_add(r, "elapsed_ms", false, "%" PRIu64, elapsed / 1000000);
	out_add(r, "mbps", false, "%.1f",
		elapsed ? (double)o->bytes * 8 * 1000 / (double)elapsed : 0.0);
	out_add(r, "client", true, "%s", client);
	out_add(r, "server", true, "%s", server);
	if (tolerate_eagain)
		out_add(r, "eagain", false, "%" PRIu64, atomic_load(&io_eagain));
	if (o->reader_delay > 0) {
		out_add(r, "peak_rw", false, "%" PRIu64, atomic_load(&peak_rw));
		out_add(r, "peak_rwi", false, "%" PRIu64, atomic_load(&peak_rwi));
	}
}
