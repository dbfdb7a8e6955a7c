/*
 * u128.h — unsigned 128-bit amounts: strict decimal parsing, formatting, checked addition,
 * and a fixed big-endian byte form for storage.
 *
 * Amounts are integers in minor units; the API sends them as canonical decimal strings
 * ("0" ... "340282366920938463463374607431768211455"): no sign, no leading zeros, no exponent.
 */
#ifndef LEDGERD_CORE_U128_H
#define LEDGERD_CORE_U128_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

__extension__ typedef unsigned __int128 u128;

#define U128_MAX (~(u128)0)
#define U128_BYTES 16

/* Parses exactly len bytes of s as a canonical decimal u128. Returns 0 and writes *out, or
 * -EINVAL for anything else (empty, sign, leading zero, non-digit, more than max). s need not
 * be NUL-terminated. Thread-safe. */
int u128_parse(const char *s, size_t len, u128 *out);

/* Writes v in decimal plus a NUL into out (at least LIMIT_U128_DEC_LEN_MAX + 1 bytes).
 * Returns the number of digits written (without the NUL). Thread-safe. */
size_t u128_format(u128 v, char *out);

/* Checked addition: true when a + b does not fit (and *sum is left untouched); else false and
 * *sum = a + b. */
bool u128_add_overflows(u128 a, u128 b, u128 *sum);

/* Fixed 16-byte big-endian encoding; byte order makes memcmp order equal numeric order. */
void u128_to_be(u128 v, uint8_t out[U128_BYTES]);
u128 u128_from_be(const uint8_t in[U128_BYTES]);

#endif
