/*
 * assert.c — the failure path of ASSERT(): report the broken invariant and abort.
 *
 * Uses write(2) only, with no allocation and no stdio, so it still works when the heap or a
 * FILE lock is in a bad state (the very situations an assertion catches).
 */
#include "core/assert.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_all(const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, s, len);
        if (n <= 0) {
            return; /* nothing more can be done: we are about to abort anyway */
        }
        s += n;
        len -= (size_t)n;
    }
}

static void write_str(const char *s)
{
    write_all(s, strlen(s));
}

_Noreturn void core_assert_fail(const char *expr, const char *file, int line)
{
    char digits[16];
    size_t pos = sizeof(digits);
    unsigned int v = line < 0 ? 0u : (unsigned int)line;

    do {
        digits[--pos] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v > 0 && pos > 0);

    write_str("assertion failed: ");
    write_str(expr != NULL ? expr : "?");
    write_str(" at ");
    write_str(file != NULL ? file : "?");
    write_str(":");
    write_all(digits + pos, sizeof(digits) - pos);
    write_str("\n");
    abort();
}
