/*
 * u128.c — unsigned 128-bit amounts: strict canonical decimal parsing and formatting, checked
 * addition, and the big-endian storage form.
 *
 * Parsing accepts exactly the canonical form the API promises ("0", or 1-39 digits without a
 * leading zero, at most 2^128-1) and detects overflow exactly before it can happen.
 */
#include "core/u128.h"

#include <errno.h>

#include "core/assert.h"

int u128_parse(const char *s, size_t len, u128 *out)
{
    ASSERT(out != NULL);
    if (s == NULL || len == 0 || len > LIMIT_U128_DEC_LEN_MAX) {
        return -EINVAL;
    }
    if (s[0] == '0' && len > 1) {
        return -EINVAL; /* leading zero: not canonical */
    }

    /* v * 10 + d <= MAX  <=>  v < MAX / 10, or v == MAX / 10 and d <= MAX % 10. */
    const u128 limit = U128_MAX / 10u;
    const unsigned int last_digit_max = (unsigned int)(U128_MAX % 10u);
    u128 v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9') {
            return -EINVAL;
        }
        unsigned int d = (unsigned int)(c - '0');
        if (v > limit || (v == limit && d > last_digit_max)) {
            return -EINVAL;
        }
        v = v * 10u + d;
    }
    *out = v;
    return 0;
}

size_t u128_format(u128 v, char *out)
{
    ASSERT(out != NULL);
    char tmp[LIMIT_U128_DEC_LEN_MAX];
    size_t n = 0;

    do {
        ASSERT(n < sizeof(tmp));
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);

    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
    return n;
}

bool u128_add_overflows(u128 a, u128 b, u128 *sum)
{
    ASSERT(sum != NULL);
    if (a > U128_MAX - b) {
        return true;
    }
    *sum = a + b;
    return false;
}

void u128_to_be(u128 v, uint8_t out[U128_BYTES])
{
    ASSERT(out != NULL);
    for (int i = U128_BYTES - 1; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

u128 u128_from_be(const uint8_t in[U128_BYTES])
{
    ASSERT(in != NULL);
    u128 v = 0;
    for (int i = 0; i < U128_BYTES; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}
