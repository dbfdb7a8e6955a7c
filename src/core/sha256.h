/*
 * sha256.h — SHA-256 (FIPS 180-4) through GnuTLS, the one crypto stack ledgerd uses.
 */
#ifndef LEDGERD_CORE_SHA256_H
#define LEDGERD_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

struct sha256 {
    void *hd; /* gnutls_hash_hd_t */
};

/* Streaming: init, update any number of times, final. Each returns 0 or -EIO. final releases
 * the context in every case. */
int sha256_init(struct sha256 *h);
int sha256_update(struct sha256 *h, const void *data, size_t len);
int sha256_final(struct sha256 *h, uint8_t out[SHA256_BYTES]);
/* One shot. */
int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_BYTES]);
/* Writes 64 lower-case hex digits plus a NUL. */
void sha256_hex(const uint8_t digest[SHA256_BYTES], char out[2 * SHA256_BYTES + 1]);

#endif
