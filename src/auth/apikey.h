/*
 * apikey.h — API keys: their format, their generation, and how a presented key is checked
 * against the hash that is stored instead of the key.
 *
 * A key reads `ldk_<id>_<secret>`: `id` is 16 lower-case hex digits (8 random bytes), public,
 * the key's name in listings and the lookup key in storage; `secret` is 32 random bytes in
 * base64url without padding (RFC 4648 §5), 43 characters. Only HMAC-SHA256(hashing key, the 32
 * secret bytes) is stored, so a leaked database alone does not allow guessing keys offline: the
 * hashing key lives outside it (LEDGERD_APIKEY_HASH_KEY_FILE). Pure functions: no storage here.
 * See docs/security/auth.md.
 */
#ifndef LEDGERD_AUTH_APIKEY_H
#define LEDGERD_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_PREFIX "ldk_"
#define APIKEY_PREFIX_LEN 4
#define APIKEY_ID_BYTES 8
#define APIKEY_ID_LEN 16 /* lower-case hex */
#define APIKEY_SECRET_BYTES 32
#define APIKEY_SECRET_LEN 43 /* base64url, no padding */
#define APIKEY_TOKEN_LEN (APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN) /* 64 */
#define APIKEY_HASH_BYTES 32 /* HMAC-SHA256 */
/* HMAC reduces keys longer than its block to their hash (RFC 2104 §2); the hasher does so once. */
#define APIKEY_HMAC_BLOCK_BYTES 64

/* The hashing key, ready for use. Read-only after apikey_hasher_init: one hasher may be shared
 * by every thread. Holds a secret: apikey_hasher_release wipes it. */
struct apikey_hasher {
    uint8_t key[APIKEY_HMAC_BLOCK_BYTES];
    size_t key_len;
};

/* A freshly generated key. `key` is shown to its owner once and never stored; `id` and `hash`
 * are what storage keeps. Wipe with apikey_new_clear once the key has been shown. */
struct apikey_new {
    char id[APIKEY_ID_LEN + 1];
    char key[APIKEY_TOKEN_LEN + 1];
    uint8_t hash[APIKEY_HASH_BYTES];
};

/* A presented key taken apart. `secret` is the decoded secret: wipe with apikey_parsed_clear. */
struct apikey_parsed {
    char id[APIKEY_ID_LEN + 1];
    uint8_t secret[APIKEY_SECRET_BYTES];
};

/* Prepares a hasher from len bytes of key material (the content of the hashing key file, used
 * as is). Refuses fewer than LIMIT_APIKEY_HASH_KEY_BYTES_MIN or more than
 * LIMIT_APIKEY_HASH_KEY_BYTES_MAX bytes with -EINVAL and a reason in err (never the key); -EIO
 * when GnuTLS fails. Does not keep a pointer to key; the caller wipes its own copy. */
int apikey_hasher_init(struct apikey_hasher *h, const uint8_t *key, size_t len, char *err,
                       size_t err_len);
/* Wipes the hashing key. */
void apikey_hasher_release(struct apikey_hasher *h);

/* Makes a new key from GnuTLS's key-grade generator and fills out (id, full key, hash).
 * 0, or -EIO when the generator or the HMAC fails (out is wiped then). Thread-safe. The id is
 * random, not checked for uniqueness: storage refuses a duplicate and the caller tries again. */
int apikey_generate(const struct apikey_hasher *h, struct apikey_new *out);
void apikey_new_clear(struct apikey_new *k);

/* Takes a presented token (len bytes, not NUL-terminated, e.g. what follows "Bearer ") apart.
 * 0, or -EINVAL for anything that is not exactly the format: prefix, lengths, lower-case hex
 * id, base64url secret without padding whose unused last bits are zero (one spelling per key).
 * On -EINVAL out is wiped. Never reads past len. */
int apikey_parse(const char *token, size_t len, struct apikey_parsed *out);
void apikey_parsed_clear(struct apikey_parsed *p);

/* True when HMAC-SHA256(h, p->secret) equals stored_hash, compared in constant time. False when
 * it differs or the HMAC cannot be computed. The computed hash is wiped. Thread-safe. */
bool apikey_matches(const struct apikey_hasher *h, const struct apikey_parsed *p,
                    const uint8_t stored_hash[APIKEY_HASH_BYTES]);

/* True when the len bytes at a and b are equal. Its running time depends on len only, never on
 * the content or where the first difference lies (for secrets and MACs; never memcmp them). */
bool apikey_equal_ct(const uint8_t *a, const uint8_t *b, size_t len);

#endif
