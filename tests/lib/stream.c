// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "stream.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

uint64_t stream_word(uint64_t seed, uint64_t k)
{
	uint64_t z = seed + (k + 1) * GOLDEN;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint8_t stream_byte(uint64_t seed, uint64_t off)
{
	return stream_word(seed, off / 8) >> (8 * (off % 8));
}

void stream_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t k = off / 8, w;
	unsigned int i;

	if (off % 8) {
		w = stream_word(seed, k++);
		for (i = off % 8; i < 8 && len; i++, len--)
			*buf++ = w >> (8 * i);
	}
	for (; len >= 8; len -= 8, buf += 8) {
		w = stream_word(seed, k++);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		/* The word's bytes in memory order are its stream order: one store, 3x faster. */
		memcpy(buf, &w, 8);
#else
		for (i = 0; i < 8; i++)
			buf[i] = w >> (8 * i);
#endif
	}
	if (len) {
		w = stream_word(seed, k);
		for (i = 0; i < len; i++)
			buf[i] = w >> (8 * i);
	}
}

size_t stream_diff(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t want[4096];
	size_t done = 0, n, i;

	while (done < len) {
		n = len - done < sizeof(want) ? len - done : sizeof(want);
		stream_fill(seed, off + done, want, n);
		if (memcmp(buf + done, want, n)) {
			for (i = 0; buf[done + i] == want[i]; i++)
				;
			return done + i;
		}
		done += n;
	}
	return len;
}

/*
 * Stream(seed) at another offset (reordered, duplicated or lost bytes) or a nearby seed
 * (another connection's, or this one's other direction: the tests give each flow seeds a few
 * apart). Finds the first whole 8-byte word of @got among the words of seeds @seed - 8 ..
 * @seed + 8 over [0, @limit).
 */
void stream_whose(const uint8_t *got, size_t len, uint64_t seed, uint64_t limit, char *out,
		  size_t outlen)
{
	uint64_t s, k, v;
	unsigned int j, b;

	snprintf(out, outlen, "those bytes are of no stream with a seed within 8");
	for (j = 0; j < 8 && j + 8 <= len; j++) {
		for (v = 0, b = 0; b < 8; b++)
			v |= (uint64_t)got[j + b] << (8 * b);
		for (s = seed >= 8 ? seed - 8 : 0; s <= seed + 8; s++)
			for (k = 0; k < limit / 8 + 1; k++)
				if (stream_word(s, k) == v) {
					snprintf(out, outlen,
						 "those bytes are stream(seed %#" PRIx64
						 ") from offset %" PRIu64,
						 s, k * 8 - j);
					return;
				}
	}
}
