/*
 * fuzz_rcache.c — libFuzzer target for the Redis cache's value decoder.
 *
 * A value read from Redis is untrusted: anyone who can write to that Redis can put bytes under
 * ledgerd's keys. Each input is decoded as a value; a refusal must carry a short, printable
 * reason (it is logged). An accepted value has a status of 100..599, a location without NUL
 * within its limit and a body inside the input, and encoding it again gives back exactly the
 * input's bytes (the format has one spelling per record).
 *
 * Build: part of `make fuzz` (CMake, -DLEDGERD_FUZZ=ON). Seeds: tests/fuzz/corpus/rcache/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "idem/rcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_idem_record r;
    char loc[RCACHE_LOCATION_LEN_MAX + 1];
    memset(&r, 0, sizeof(r));
    const char *why = rcache_value_decode(data, size, &r, loc);
    if (why != NULL) {
        size_t n = strlen(why);
        ASSERT(n > 0 && n < 64);
        for (size_t i = 0; i < n; i++) {
            ASSERT(why[i] >= 0x20 && why[i] <= 0x7e);
        }
        return 0;
    }
    ASSERT(r.status >= 100 && r.status <= 599);
    ASSERT(r.location == loc && strlen(loc) <= RCACHE_LOCATION_LEN_MAX);
    ASSERT(r.body_len <= size &&
           (r.body_len == 0 || ((const uint8_t *)r.body >= data &&
                                (const uint8_t *)r.body + r.body_len <= data + size)));
    uint8_t *again = NULL;
    size_t again_len = 0;
    ASSERT(rcache_value_encode(&r, &again, &again_len) == 0);
    ASSERT(again_len == size && memcmp(again, data, size) == 0);
    free(again);
    return 0;
}
