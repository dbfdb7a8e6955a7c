/*
 * jwks.h — the public keys that JWT signatures are checked with: a JSON Web Key Set (RFC 7517)
 * read strictly, and the three JWS algorithms ledgerd accepts (RFC 7518, RFC 8037).
 *
 * A set is parsed once (at start-up or on reload), is immutable afterwards, and is shared by
 * every I/O thread: lookups and signature checks only read it. Only signature verification keys
 * are kept: EdDSA over Ed25519 (kty OKP), ES256 over P-256 (kty EC) and RS256 with a modulus of
 * at least LIMIT_JWK_RSA_BITS_MIN bits (kty RSA). Symmetric keys and anything carrying private
 * parameters are refused, never skipped. See docs/security/jwt.md for every rule and its reason.
 */
#ifndef LEDGERD_AUTH_JWKS_H
#define LEDGERD_AUTH_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

/* The JWS "alg" values ledgerd verifies, one per key type (RFC 7518 §3.1, RFC 8037 §3.1). */
enum jwks_alg {
    JWKS_ALG_EDDSA, /* "EdDSA" with an Ed25519 key */
    JWKS_ALG_ES256, /* "ES256": ECDSA on P-256 with SHA-256 */
    JWKS_ALG_RS256, /* "RS256": RSASSA-PKCS1-v1_5 with SHA-256 */
};

/* The "alg" name of a (known) alg: "EdDSA", "ES256" or "RS256". */
const char *jwks_alg_name(enum jwks_alg alg);

struct jwks;
struct jwks_key;

/* Parses len bytes of JSON (not NUL-terminated) as a JWK Set: an object whose "keys" member is
 * an array of at most LIMIT_JWKS_KEYS_MAX keys, the document at most LIMIT_JWKS_BYTES_MAX
 * bytes, with no duplicate member names anywhere.
 *
 * Every key needs a "kid" (1..LIMIT_JWT_KID_LEN_MAX printable characters). Keys with "use"
 * other than "sig", or with "key_ops" lacking "verify", are skipped and counted
 * (jwks_skipped_count), so a set shared with encryption keys loads. Refused, with the whole set:
 * a key with private parameters (d p q dp dq qi oth k), a symmetric key (kty oct), an unknown
 * kty or curve, an "alg" that does not match the key, an RSA modulus outside
 * LIMIT_JWK_RSA_BITS_MIN..LIMIT_JWK_RSA_BITS_MAX bits, an EC point not on P-256, a value that is
 * not strict base64url without padding, a kid used twice by verification keys, and a set
 * without any verification key.
 *
 * Returns 0 with the set in *out (the caller owns it: jwks_free); -EINVAL with *out NULL and a
 * one-line reason in err naming the key at fault by index and kid ("key 2 (kid \"k1\"): ...");
 * -ENOMEM likewise when memory runs out. err may be NULL. Thread-safe. */
int jwks_parse(const char *json, size_t len, struct jwks **out, char *err, size_t err_len);

/* Frees a set; NULL is allowed. No thread may be using it. */
void jwks_free(struct jwks *set);

/* Verification keys held (at least 1), and entries that were skipped. */
size_t jwks_count(const struct jwks *set);
size_t jwks_skipped_count(const struct jwks *set);

/* The key whose kid is the kid_len bytes at kid (compared exactly), or NULL. Thread-safe. */
const struct jwks_key *jwks_find(const struct jwks *set, const char *kid, size_t kid_len);

/* The key's index in the set (0..jwks_count-1), NUL-terminated kid, and the one alg it serves. */
const struct jwks_key *jwks_key_at(const struct jwks *set, size_t index);
const char *jwks_key_kid(const struct jwks_key *key);
enum jwks_alg jwks_key_alg(const struct jwks_key *key);

/* Checks sig (sig_len bytes, as carried in a JWS: 64 bytes R || S for ES256, RFC 7518 §3.4)
 * over the data_len bytes at data with key, using the key's own alg. True only for a valid
 * signature; any other length, encoding or value is false. Thread-safe: any number of threads
 * may verify with the same key at once (the GnuTLS key is only read, see jwks.c). */
bool jwks_key_verify(const struct jwks_key *key, const uint8_t *data, size_t data_len,
                     const uint8_t *sig, size_t sig_len);

/* Decodes in_len characters of base64url without padding (RFC 7515 §2, RFC 4648 §5) into out
 * (out_cap bytes). Strict: only the 64 URL-safe characters, no '=' and no whitespace, a length
 * that is not 1 modulo 4, and unused trailing bits equal to zero (one spelling per value, so a
 * signature cannot be re-encoded). Returns 0 with the byte count in *out_len, -EINVAL for
 * anything else, -ENOSPC when out_cap is too small. Pure. */
int jwks_base64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                          size_t *out_len);

#endif
