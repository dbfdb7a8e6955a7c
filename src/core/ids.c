/*
 * ids.c — the identifier grammars of the API and the ids the server generates (UUIDv7 per
 * RFC 9562, random hex request ids).
 *
 * The checks read exactly len bytes: ids arrive from the network and are not NUL-terminated.
 */
#include "core/ids.h"

#include "core/assert.h"
#include "core/limits.h"
#include "core/rand.h"

static const char ids_hex_digits[] = "0123456789abcdef";

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* [A-Za-z0-9._:-] */
static bool is_id_char(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

bool ids_resource_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LIMIT_ID_LEN_MAX) {
        return false;
    }
    if (!is_alnum((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        if (!is_id_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool ids_ledger_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LIMIT_LEDGER_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

bool ids_request_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LIMIT_REQUEST_ID_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_id_char((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool ids_idempotency_key_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LIMIT_IDEMPOTENCY_KEY_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* RFC 9562 §5.7 layout: unix_ts_ms(48) ver(4) rand_a(12) var(2) rand_b(62). The 74 random bits
 * are kept per thread as rand_a (high 12) and rand_b (low 62) so that ids made within one
 * millisecond can count upwards (§6.2 method 2). */
#define UUID_RAND_B_BITS 62
#define UUID_RAND_B_MASK ((UINT64_C(1) << UUID_RAND_B_BITS) - 1)
#define UUID_RAND_A_MASK UINT64_C(0xfff)
#define UUID_MS_MAX ((INT64_C(1) << 48) - 1)

struct uuid_state {
    int64_t last_ms; /* -1 before the first id */
    uint64_t rand_a;
    uint64_t rand_b;
};

static _Thread_local struct uuid_state uuid_tls = {.last_ms = -1};

static void uuid_fresh_random(struct uuid_state *st)
{
    uint64_t r = rand_u64();
    st->rand_a = r & UUID_RAND_A_MASK;
    /* Leave the top bit of rand_b clear: room for ~2^61 increments before a rollover. */
    st->rand_b = rand_u64() & (UUID_RAND_B_MASK >> 1);
}

static void hex_put(char *out, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = ids_hex_digits[v & 0x0f];
        v >>= 4;
    }
}

void ids_uuidv7(int64_t unix_ms, char out[IDS_UUID_LEN + 1])
{
    ASSERT(out != NULL);
    struct uuid_state *st = &uuid_tls;

    if (unix_ms < 0) {
        unix_ms = 0;
    }
    if (unix_ms > UUID_MS_MAX) {
        unix_ms = UUID_MS_MAX;
    }

    if (unix_ms > st->last_ms) {
        st->last_ms = unix_ms;
        uuid_fresh_random(st);
    } else {
        /* Same millisecond, or the clock stepped back: stay on the last timestamp and count
         * up by a random step so ids stay ordered and hard to guess. */
        uint64_t step = 1 + (rand_u64() >> 40);
        st->rand_b += step;
        if (st->rand_b > UUID_RAND_B_MASK) {
            st->rand_b &= UUID_RAND_B_MASK;
            st->rand_a++;
        }
        if (st->rand_a > UUID_RAND_A_MASK) {
            /* Counter exhausted: borrow the next millisecond (RFC 9562 §6.2). */
            if (st->last_ms < UUID_MS_MAX) {
                st->last_ms++;
            }
            uuid_fresh_random(st);
        }
    }

    uint64_t ms = (uint64_t)st->last_ms;
    uint64_t time_hi_ver = (UINT64_C(7) << 12) | st->rand_a;           /* 16 bits */
    uint64_t var_rand_b_hi = (UINT64_C(2) << 14) | (st->rand_b >> 48); /* 16 bits */
    uint64_t rand_b_lo = st->rand_b & ((UINT64_C(1) << 48) - 1);       /* 48 bits */

    hex_put(out, ms >> 16, 8);
    out[8] = '-';
    hex_put(out + 9, ms & 0xffff, 4);
    out[13] = '-';
    hex_put(out + 14, time_hi_ver, 4);
    out[18] = '-';
    hex_put(out + 19, var_rand_b_hi, 4);
    out[23] = '-';
    hex_put(out + 24, rand_b_lo, 12);
    out[IDS_UUID_LEN] = '\0';
}

void ids_random_hex(char *out, size_t nbytes)
{
    ASSERT(out != NULL);
    uint8_t chunk[32];
    size_t done = 0;
    while (done < nbytes) {
        size_t n = nbytes - done < sizeof(chunk) ? nbytes - done : sizeof(chunk);
        rand_bytes(chunk, n);
        for (size_t i = 0; i < n; i++) {
            out[2 * (done + i)] = ids_hex_digits[chunk[i] >> 4];
            out[2 * (done + i) + 1] = ids_hex_digits[chunk[i] & 0x0f];
        }
        done += n;
    }
    out[2 * nbytes] = '\0';
}

int ids_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}
