/*
 * clock.h — wall-clock and monotonic time, and RFC 3339 formatting.
 *
 * The ledger's timestamps are Unix milliseconds (UTC). Durations use the monotonic clock.
 */
#ifndef LEDGERD_CORE_CLOCK_H
#define LEDGERD_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CLOCK_RFC3339_MS_LEN 24 /* "2026-11-27T06:00:00.000Z" */

int64_t clock_unix_ms(void);
int64_t clock_unix_ns(void);
int64_t clock_mono_ns(void);

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" plus a NUL (CLOCK_RFC3339_MS_LEN + 1 bytes).
 * Uses gmtime_r; thread-safe. Returns the length written. */
size_t clock_format_rfc3339_ms(int64_t unix_ms, char *out);

#endif
