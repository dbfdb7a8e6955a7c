/*
 * sha256.c — SHA-256 (FIPS 180-4) through GnuTLS, the one crypto stack ledgerd links.
 */
#include "core/sha256.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "core/assert.h"

int sha256_init(struct sha256 *h)
{
    ASSERT(h != NULL);
    gnutls_hash_hd_t hd = NULL;
    if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0) {
        h->hd = NULL;
        return -EIO;
    }
    h->hd = hd;
    return 0;
}

int sha256_update(struct sha256 *h, const void *data, size_t len)
{
    ASSERT(h != NULL && h->hd != NULL);
    ASSERT(data != NULL || len == 0);
    if (len == 0) {
        return 0;
    }
    if (gnutls_hash((gnutls_hash_hd_t)h->hd, data, len) < 0) {
        return -EIO;
    }
    return 0;
}

int sha256_final(struct sha256 *h, uint8_t out[SHA256_BYTES])
{
    ASSERT(h != NULL && h->hd != NULL);
    ASSERT(out != NULL);
    ASSERT(gnutls_hash_get_len(GNUTLS_DIG_SHA256) == SHA256_BYTES);
    gnutls_hash_deinit((gnutls_hash_hd_t)h->hd, out);
    h->hd = NULL;
    return 0;
}

int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_BYTES])
{
    ASSERT(data != NULL || len == 0);
    ASSERT(out != NULL);
    /* gnutls_hash_fast wants a non-NULL pointer even for empty input. */
    static const uint8_t empty[1] = {0};
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, len > 0 ? data : empty, len, out) < 0) {
        return -EIO;
    }
    return 0;
}

void sha256_hex(const uint8_t digest[SHA256_BYTES], char out[2 * SHA256_BYTES + 1])
{
    static const char hex[] = "0123456789abcdef";
    ASSERT(digest != NULL && out != NULL);
    for (size_t i = 0; i < SHA256_BYTES; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[(size_t)2 * SHA256_BYTES] = '\0';
}
