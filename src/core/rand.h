/*
 * rand.h — fast per-thread randomness for ids (not for keys or secrets).
 *
 * Each thread runs its own xoshiro256** generator seeded from getrandom(2) on first use, so the
 * hot path makes no system call and takes no lock. Secrets use GnuTLS's generator instead.
 */
#ifndef LEDGERD_CORE_RAND_H
#define LEDGERD_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t rand_u64(void);
/* Fills len bytes; never all-zero for len >= 8 (trace ids must not be zero). */
void rand_bytes(uint8_t *out, size_t len);

#endif
