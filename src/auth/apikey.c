/*
 * apikey.c — API key format, generation and verification.
 *
 * Secrets come from gnutls_rnd(GNUTLS_RND_KEY): core/rand is a fast generator for ids, not a
 * cryptographic one. The secret's characters are decoded without branches or table lookups on
 * their values, and the stored hash is compared in constant time, so neither timing nor cache
 * state tells a client how close a guess came. Every stack copy of a secret is wiped.
 */
#include "auth/apikey.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "core/assert.h"
#include "core/limits.h"

_Static_assert(APIKEY_TOKEN_LEN == 64, "ldk_ + 16 + _ + 43");
_Static_assert(APIKEY_SECRET_LEN == (APIKEY_SECRET_BYTES * 8 + 5) / 6, "base64url without padding");
_Static_assert(APIKEY_ID_LEN == 2 * APIKEY_ID_BYTES, "hex");
_Static_assert(LIMIT_APIKEY_HASH_KEY_BYTES_MIN >= APIKEY_HASH_BYTES,
               "RFC 2104: a key shorter than the output weakens the MAC");

static const char apikey_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char apikey_hex[] = "0123456789abcdef";

static void apikey_err(char *err, size_t err_len, const char *msg)
{
    if (err != NULL && err_len > 0) {
        snprintf(err, err_len, "%s", msg);
    }
}

/* ---- constant-time helpers ---- */

bool apikey_equal_ct(const uint8_t *a, const uint8_t *b, size_t len)
{
    ASSERT(a != NULL && b != NULL);
    /* The volatile accumulator keeps the compiler from turning the loop into an early exit. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) {
        diff = (uint8_t)(diff | (a[i] ^ b[i]));
    }
    return diff == 0;
}

/* All ones when lo <= c <= hi, else zero; no branch on c. */
static uint32_t apikey_ct_in_range(uint32_t c, uint32_t lo, uint32_t hi)
{
    /* Both differences wrap to a value with the top bit set exactly when c is inside. */
    uint32_t inside = ((c - lo) ^ 0x80000000u) & ((hi - c) ^ 0x80000000u);
    return 0u - (inside >> 31);
}

/* The 6-bit value of a base64url character, or a value with bit 8 set when c is not one.
 * Branch-free and table-free: the secret's characters must not steer timing or caches. */
static uint32_t apikey_b64url_value(uint8_t c)
{
    uint32_t x = c;
    uint32_t v = 0;
    v |= apikey_ct_in_range(x, 'A', 'Z') & (x - 'A' + 1);
    v |= apikey_ct_in_range(x, 'a', 'z') & (x - 'a' + 27);
    v |= apikey_ct_in_range(x, '0', '9') & (x - '0' + 53);
    v |= apikey_ct_in_range(x, '-', '-') & 63u;
    v |= apikey_ct_in_range(x, '_', '_') & 64u;
    /* v is 1..64 for the alphabet and 0 otherwise: minus one gives 0..63 or all ones. */
    return (v - 1) & 0x1ffu;
}

/* Decodes the 43 characters of a secret. false when a character is outside the alphabet or the
 * two unused bits of the last one are set. Runs in the same time whatever the input. */
static bool apikey_decode_secret(const char *s, uint8_t out[APIKEY_SECRET_BYTES])
{
    uint32_t bad = 0;
    uint32_t acc = 0;
    size_t bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < APIKEY_SECRET_LEN; i++) {
        uint32_t v = apikey_b64url_value((uint8_t)s[i]);
        bad |= v & 0x100u;
        acc = (acc << 6) | (v & 0x3fu);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    ASSERT(n == APIKEY_SECRET_BYTES && bits == 2);
    bad |= acc & 0x3u; /* 258 bits were read, 256 used */
    explicit_bzero(&acc, sizeof(acc));
    return bad == 0;
}

static void apikey_encode_secret(const uint8_t in[APIKEY_SECRET_BYTES], char out[APIKEY_SECRET_LEN])
{
    uint32_t acc = 0;
    size_t bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < APIKEY_SECRET_BYTES; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = apikey_b64url[(acc >> bits) & 0x3fu];
        }
    }
    ASSERT(bits == 4); /* 256 bits = 42 characters and 4 bits, padded with two zero bits */
    out[n++] = apikey_b64url[(acc << 2) & 0x3fu];
    ASSERT(n == APIKEY_SECRET_LEN);
    explicit_bzero(&acc, sizeof(acc));
}

/* ---- the hashing key ---- */

int apikey_hasher_init(struct apikey_hasher *h, const uint8_t *key, size_t len, char *err,
                       size_t err_len)
{
    ASSERT(h != NULL);
    ASSERT(key != NULL || len == 0);
    explicit_bzero(h, sizeof(*h));
    if (len < LIMIT_APIKEY_HASH_KEY_BYTES_MIN) {
        apikey_err(err, err_len, "the API key hashing key must be at least 32 bytes");
        return -EINVAL;
    }
    if (len > LIMIT_APIKEY_HASH_KEY_BYTES_MAX) {
        apikey_err(err, err_len, "the API key hashing key must be at most 1024 bytes");
        return -EINVAL;
    }
    if (len > APIKEY_HMAC_BLOCK_BYTES) {
        /* What HMAC itself does with a long key (RFC 2104 §2), done once here. */
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, len, h->key) < 0) {
            explicit_bzero(h, sizeof(*h));
            apikey_err(err, err_len, "cannot hash the API key hashing key");
            return -EIO;
        }
        h->key_len = APIKEY_HASH_BYTES;
    } else {
        memcpy(h->key, key, len);
        h->key_len = len;
    }
    ASSERT(h->key_len >= APIKEY_HASH_BYTES && h->key_len <= sizeof(h->key));
    return 0;
}

void apikey_hasher_release(struct apikey_hasher *h)
{
    if (h != NULL) {
        explicit_bzero(h, sizeof(*h));
    }
}

static int apikey_hmac(const struct apikey_hasher *h, const uint8_t secret[APIKEY_SECRET_BYTES],
                       uint8_t out[APIKEY_HASH_BYTES])
{
    ASSERT(h != NULL && h->key_len >= APIKEY_HASH_BYTES && h->key_len <= sizeof(h->key));
    ASSERT(gnutls_hmac_get_len(GNUTLS_MAC_SHA256) == APIKEY_HASH_BYTES);
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, h->key, h->key_len, secret, APIKEY_SECRET_BYTES, out) <
        0) {
        return -EIO;
    }
    return 0;
}

/* ---- generation ---- */

int apikey_generate(const struct apikey_hasher *h, struct apikey_new *out)
{
    ASSERT(h != NULL && out != NULL);
    uint8_t id[APIKEY_ID_BYTES];
    uint8_t secret[APIKEY_SECRET_BYTES];
    int rc = 0;

    explicit_bzero(out, sizeof(*out));
    if (gnutls_rnd(GNUTLS_RND_NONCE, id, sizeof(id)) < 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof(secret)) < 0) {
        rc = -EIO;
        goto out_wipe;
    }
    if (apikey_hmac(h, secret, out->hash) != 0) {
        rc = -EIO;
        goto out_wipe;
    }
    for (size_t i = 0; i < APIKEY_ID_BYTES; i++) {
        out->id[2 * i] = apikey_hex[id[i] >> 4];
        out->id[2 * i + 1] = apikey_hex[id[i] & 0x0f];
    }
    out->id[APIKEY_ID_LEN] = '\0';

    char *k = out->key;
    memcpy(k, APIKEY_PREFIX, APIKEY_PREFIX_LEN);
    memcpy(k + APIKEY_PREFIX_LEN, out->id, APIKEY_ID_LEN);
    k[APIKEY_PREFIX_LEN + APIKEY_ID_LEN] = '_';
    apikey_encode_secret(secret, k + APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1);
    k[APIKEY_TOKEN_LEN] = '\0';
    ASSERT(strlen(k) == APIKEY_TOKEN_LEN);

out_wipe:
    explicit_bzero(secret, sizeof(secret));
    if (rc != 0) {
        explicit_bzero(out, sizeof(*out));
    }
    return rc;
}

void apikey_new_clear(struct apikey_new *k)
{
    if (k != NULL) {
        explicit_bzero(k, sizeof(*k));
    }
}

/* ---- parsing and checking ---- */

int apikey_parse(const char *token, size_t len, struct apikey_parsed *out)
{
    ASSERT(token != NULL || len == 0);
    ASSERT(out != NULL);
    explicit_bzero(out, sizeof(*out));
    if (len != APIKEY_TOKEN_LEN || memcmp(token, APIKEY_PREFIX, APIKEY_PREFIX_LEN) != 0 ||
        token[APIKEY_PREFIX_LEN + APIKEY_ID_LEN] != '_') {
        return -EINVAL;
    }
    const char *id = token + APIKEY_PREFIX_LEN;
    for (size_t i = 0; i < APIKEY_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -EINVAL;
        }
    }
    if (!apikey_decode_secret(token + APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1, out->secret)) {
        explicit_bzero(out, sizeof(*out));
        return -EINVAL;
    }
    memcpy(out->id, id, APIKEY_ID_LEN);
    out->id[APIKEY_ID_LEN] = '\0';
    return 0;
}

void apikey_parsed_clear(struct apikey_parsed *p)
{
    if (p != NULL) {
        explicit_bzero(p, sizeof(*p));
    }
}

bool apikey_matches(const struct apikey_hasher *h, const struct apikey_parsed *p,
                    const uint8_t stored_hash[APIKEY_HASH_BYTES])
{
    ASSERT(h != NULL && p != NULL && stored_hash != NULL);
    uint8_t computed[APIKEY_HASH_BYTES];
    bool equal = false;
    if (apikey_hmac(h, p->secret, computed) == 0) {
        equal = apikey_equal_ct(computed, stored_hash, APIKEY_HASH_BYTES);
    }
    explicit_bzero(computed, sizeof(computed));
    return equal;
}
