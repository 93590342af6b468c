/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The test stream: the bytes every tool writes and verifies, the same in each (integration tests
 * compare streams across lltraffic, llprobe and their peers).
 *
 *	byte i of stream(seed) = bits 8*(i%8) .. 8*(i%8)+7 of splitmix64_k(seed), k = i / 8
 *	splitmix64_k(seed) = mix(seed + (k + 1) * 0x9e3779b97f4a7c15)   (the k-th splitmix64 output)
 *
 * Byte i depends only on (seed, i), so a receiver checks any read at any offset with no state
 * but the offset: loss, duplication and reordering all show up as a mismatch at an exact offset,
 * and so do bytes crossing between connections as long as concurrent connections use different
 * seeds. The byte order is fixed (little-endian) whatever the host's.
 */
#ifndef LOOPLESS_TESTS_STREAM_H
#define LOOPLESS_TESTS_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Word k of stream(seed): its bytes 8k .. 8k+7. */
uint64_t stream_word(uint64_t seed, uint64_t k);

/* Byte @off of stream(@seed). */
uint8_t stream_byte(uint64_t seed, uint64_t off);

/* Bytes [@off, @off + @len) of stream(@seed) into @buf. */
void stream_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len);

/* Index of the first byte of @buf that is not byte @off + i of stream(@seed); @len if none. */
size_t stream_diff(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len);

/*
 * For a failure message: which stream the @len bytes @got (that arrived instead) belong to,
 * as a sentence in @out. Slow (seconds for 64 MiB): only once a mismatch is found.
 */
void stream_whose(const uint8_t *got, size_t len, uint64_t seed, uint64_t limit, char *out,
		  size_t outlen);

#endif
