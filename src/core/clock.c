/*
 * clock.c — wall-clock and monotonic time, and RFC 3339 timestamps with milliseconds (UTC).
 */
#include "core/clock.h"

#include <stdio.h>
#include <time.h>

#include "core/assert.h"

static int64_t clock_read_ns(clockid_t id)
{
    struct timespec ts;
    int rc = clock_gettime(id, &ts);
    ASSERT(rc == 0); /* only fails for an invalid clock id */
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

int64_t clock_unix_ns(void)
{
    return clock_read_ns(CLOCK_REALTIME);
}

int64_t clock_unix_ms(void)
{
    return clock_unix_ns() / 1000000;
}

int64_t clock_mono_ns(void)
{
    return clock_read_ns(CLOCK_MONOTONIC);
}

size_t clock_format_rfc3339_ms(int64_t unix_ms, char *out)
{
    ASSERT(out != NULL);
    /* The ledger has no instants before 1970: clamp rather than print a negative year. Floor
     * division keeps the millisecond part in 0..999 either way. */
    if (unix_ms < 0) {
        unix_ms = 0;
    }
    time_t secs = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || tm.tm_year + 1900 > 9999) {
        /* Beyond RFC 3339's four-digit years: print the last representable instant. */
        tm = (struct tm){.tm_year = 9999 - 1900,
                         .tm_mon = 11,
                         .tm_mday = 31,
                         .tm_hour = 23,
                         .tm_min = 59,
                         .tm_sec = 59};
        ms = 999;
    }
    int n = snprintf(out, CLOCK_RFC3339_MS_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ms);
    ASSERT(n == CLOCK_RFC3339_MS_LEN);
    return (size_t)n;
}
