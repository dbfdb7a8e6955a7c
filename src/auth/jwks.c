/*
 * jwks.c — a JSON Web Key Set (RFC 7517) read strictly into GnuTLS public keys, and JWS
 * signature checks with them (RFC 7515 §5.2, RFC 7518 §3, RFC 8037 §3.1).
 *
 * Thread safety. Each key is imported into one gnutls_pubkey_t at load time and shared by every
 * verifying thread. The GnuTLS manual allows read-only access to one object from many threads,
 * and gnutls_pubkey_verify_data2 is read-only on the key (GnuTLS 3.7.9, lib/pubkey.c and
 * lib/nettle/pk.c): it copies the key's signature parameters to its stack, reads the key's
 * numbers through const pointers into Nettle structures of its own, and keeps its FIPS state
 * per thread. tests/unit/auth/test_jwt.c verifies from two threads on one set to back this.
 * Importing per call instead would add a pubkey init, import and deinit (allocations) to every
 * request for no safety gained.
 */
#include "auth/jwks.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

/* Ed25519 public keys and signatures (RFC 8032 §5.1.5, §5.1.6). */
#define ED25519_KEY_BYTES 32
#define ED25519_SIG_BYTES 64
/* P-256 coordinates (RFC 7518 §6.2.1.2: the full size of a coordinate) and R || S. */
#define P256_COORD_BYTES 32
#define P256_SIG_BYTES ((size_t)2 * P256_COORD_BYTES)

struct jwks_key {
    char kid[LIMIT_JWT_KID_LEN_MAX + 1];
    size_t kid_len;
    size_t index; /* position in the document's "keys", for messages */
    enum jwks_alg alg;
    size_t sig_bytes; /* the one signature length this key can produce */
    gnutls_pubkey_t pub;
};

struct jwks {
    size_t count;
    size_t skipped;
    struct jwks_key keys[LIMIT_JWKS_KEYS_MAX];
};

const char *jwks_alg_name(enum jwks_alg alg)
{
    switch (alg) {
    case JWKS_ALG_EDDSA:
        return "EdDSA";
    case JWKS_ALG_ES256:
        return "ES256";
    case JWKS_ALG_RS256:
        return "RS256";
    }
    ASSERT(false); /* not a jwks_alg */
    return "";
}

/* ---- base64url ---- */

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

int jwks_base64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                          size_t *out_len)
{
    ASSERT(in != NULL || in_len == 0);
    ASSERT(out != NULL && out_len != NULL);
    *out_len = 0;
    if (in_len % 4 == 1) {
        return -EINVAL; /* 6 bits cannot make a byte */
    }
    for (size_t i = 0; i < in_len; i++) {
        if (b64url_value(in[i]) < 0) {
            return -EINVAL;
        }
    }
    /* The unused low bits of a last partial group must be zero (RFC 4648 §3.5). */
    static const uint32_t unused_mask[4] = {0, 0, 0x0f, 0x03};
    if (in_len > 0 && ((uint32_t)b64url_value(in[in_len - 1]) & unused_mask[in_len % 4]) != 0) {
        return -EINVAL;
    }
    size_t need = in_len / 4 * 3 + (in_len % 4 == 0 ? 0 : in_len % 4 - 1);
    if (need > out_cap) {
        return -ENOSPC;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < in_len; i++) {
        acc = (acc << 6) | (uint32_t)b64url_value(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    ASSERT(n == need && acc == 0);
    *out_len = n;
    return 0;
}

/* ---- loading ---- */

/* Writes "key INDEX (kid "KID"): REASON" into err, or "key INDEX: REASON" without a valid kid. */
__attribute__((format(printf, 5, 6))) static void key_fail(char *err, size_t err_len, size_t index,
                                                           const char *kid, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    int n = kid != NULL ? snprintf(err, err_len, "key %zu (kid \"%s\"): ", index, kid)
                        : snprintf(err, err_len, "key %zu: ", index);
    if (n < 0 || (size_t)n >= err_len) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void set_fail(char *err, size_t err_len,
                                                           const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Reasons quote the document (a kty, an alg, the parser's view of a token) and are logged as one
 * line: control characters become '?'. */
static void one_printable_line(char *err, size_t err_len)
{
    for (size_t i = 0; err != NULL && i < err_len && err[i] != '\0'; i++) {
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) {
            err[i] = '?';
        }
    }
}

/* A kid ledgerd accepts: 1..LIMIT_JWT_KID_LEN_MAX printable ASCII characters (it is logged and
 * written to audit records, so no control characters and no encoding questions). */
static bool kid_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_JWT_KID_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* The string member name of obj: NULL when absent; *bad set when present but not a string. */
static const char *member_str(const json_t *obj, const char *name, bool *bad)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* Decodes the base64url member name of k into out; 0, or -EINVAL with err written. */
static int member_b64(const json_t *k, const char *name, uint8_t *out, size_t out_cap,
                      size_t *out_len, size_t index, const char *kid, char *err, size_t err_len)
{
    json_t *v = json_object_get(k, name);
    if (v == NULL || !json_is_string(v)) {
        key_fail(err, err_len, index, kid, "\"%s\" is missing or not a string", name);
        return -EINVAL;
    }
    int rc =
        jwks_base64url_decode(json_string_value(v), json_string_length(v), out, out_cap, out_len);
    if (rc == -ENOSPC) {
        key_fail(err, err_len, index, kid, "\"%s\" is longer than %zu bytes", name, out_cap);
        return -EINVAL;
    }
    if (rc < 0) {
        key_fail(err, err_len, index, kid, "\"%s\" is not base64url without padding (RFC 7515 §2)",
                 name);
        return -EINVAL;
    }
    return 0;
}

/* What one entry of "keys" turned out to be. */
enum key_verdict {
    KEY_LOADED,
    KEY_SKIPPED,
};

/* True when the key says it is not for verifying signatures: "use" other than "sig", or
 * "key_ops" without "verify". -EINVAL through *rc for a malformed use or key_ops. */
static bool key_not_for_verify(const json_t *k, size_t index, const char *kid, int *rc, char *err,
                               size_t err_len)
{
    bool bad = false;
    const char *use = member_str(k, "use", &bad);
    if (bad) {
        key_fail(err, err_len, index, kid, "\"use\" is not a string");
        *rc = -EINVAL;
        return false;
    }
    json_t *ops = json_object_get(k, "key_ops");
    bool verify = ops == NULL;
    if (ops != NULL) {
        if (!json_is_array(ops)) {
            key_fail(err, err_len, index, kid, "\"key_ops\" is not an array");
            *rc = -EINVAL;
            return false;
        }
        for (size_t i = 0; i < json_array_size(ops); i++) {
            json_t *op = json_array_get(ops, i);
            if (!json_is_string(op)) {
                key_fail(err, err_len, index, kid, "\"key_ops\" holds a non-string");
                *rc = -EINVAL;
                return false;
            }
            for (size_t j = 0; j < i; j++) {
                if (json_equal(op, json_array_get(ops, j))) {
                    /* RFC 7517 §4.3: duplicate values MUST NOT be present. */
                    key_fail(err, err_len, index, kid, "\"key_ops\" lists \"%s\" twice",
                             json_string_value(op));
                    *rc = -EINVAL;
                    return false;
                }
            }
            verify = verify || strcmp(json_string_value(op), "verify") == 0;
        }
    }
    return (use != NULL && strcmp(use, "sig") != 0) || !verify;
}

/* The private members of RFC 7518 §6.2.2, §6.3.2 and §6.4.1, and RFC 8037 §2. */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

static int import_okp(const json_t *k, struct jwks_key *key, char *err, size_t err_len)
{
    bool bad = false;
    const char *crv = member_str(k, "crv", &bad);
    if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
        key_fail(err, err_len, key->index, key->kid,
                 "kty OKP needs crv \"Ed25519\" (RFC 8037), not %s%s%s", crv != NULL ? "\"" : "",
                 crv != NULL ? crv : "a missing or non-string crv", crv != NULL ? "\"" : "");
        return -EINVAL;
    }
    uint8_t x[ED25519_KEY_BYTES];
    size_t x_len = 0;
    int rc = member_b64(k, "x", x, sizeof(x), &x_len, key->index, key->kid, err, err_len);
    if (rc < 0) {
        return rc;
    }
    if (x_len != ED25519_KEY_BYTES) {
        key_fail(err, err_len, key->index, key->kid, "\"x\" is %zu bytes, Ed25519 needs %d", x_len,
                 ED25519_KEY_BYTES);
        return -EINVAL;
    }
    gnutls_datum_t xd = {x, (unsigned)x_len};
    if (gnutls_pubkey_import_ecc_raw(key->pub, GNUTLS_ECC_CURVE_ED25519, &xd, NULL) < 0) {
        key_fail(err, err_len, key->index, key->kid, "not a valid Ed25519 public key");
        return -EINVAL;
    }
    key->alg = JWKS_ALG_EDDSA;
    key->sig_bytes = ED25519_SIG_BYTES;
    return 0;
}

static int import_ec(const json_t *k, struct jwks_key *key, char *err, size_t err_len)
{
    bool bad = false;
    const char *crv = member_str(k, "crv", &bad);
    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        key_fail(err, err_len, key->index, key->kid,
                 "kty EC needs crv \"P-256\" (ES256), not %s%s%s", crv != NULL ? "\"" : "",
                 crv != NULL ? crv : "a missing or non-string crv", crv != NULL ? "\"" : "");
        return -EINVAL;
    }
    uint8_t x[P256_COORD_BYTES];
    uint8_t y[P256_COORD_BYTES];
    size_t x_len = 0;
    size_t y_len = 0;
    int rc = member_b64(k, "x", x, sizeof(x), &x_len, key->index, key->kid, err, err_len);
    if (rc == 0) {
        rc = member_b64(k, "y", y, sizeof(y), &y_len, key->index, key->kid, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    if (x_len != P256_COORD_BYTES || y_len != P256_COORD_BYTES) {
        /* RFC 7518 §6.2.1.2-3: the full size of a coordinate, leading zeros included. */
        key_fail(err, err_len, key->index, key->kid,
                 "\"x\" and \"y\" must be %d bytes each, not %zu and %zu", P256_COORD_BYTES, x_len,
                 y_len);
        return -EINVAL;
    }
    gnutls_datum_t xd = {x, P256_COORD_BYTES};
    gnutls_datum_t yd = {y, P256_COORD_BYTES};
    /* The import only reads the numbers; gnutls_pubkey_verify_params checks the point lies on
     * the curve (a point off it would otherwise only show as failed signatures). */
    if (gnutls_pubkey_import_ecc_raw(key->pub, GNUTLS_ECC_CURVE_SECP256R1, &xd, &yd) < 0 ||
        gnutls_pubkey_verify_params(key->pub) < 0) {
        key_fail(err, err_len, key->index, key->kid, "(x, y) is not a point on P-256");
        return -EINVAL;
    }
    key->alg = JWKS_ALG_ES256;
    key->sig_bytes = P256_SIG_BYTES;
    return 0;
}

static int import_rsa(const json_t *k, struct jwks_key *key, char *err, size_t err_len)
{
    uint8_t n[LIMIT_JWK_RSA_BITS_MAX / 8];
    uint8_t e[LIMIT_JWK_RSA_E_BYTES_MAX];
    size_t n_len = 0;
    size_t e_len = 0;
    int rc = member_b64(k, "n", n, sizeof(n), &n_len, key->index, key->kid, err, err_len);
    if (rc == 0) {
        rc = member_b64(k, "e", e, sizeof(e), &e_len, key->index, key->kid, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    /* RFC 7518 §6.3.1: Base64urlUInt, the minimum number of octets: no leading zero. */
    if (n_len == 0 || n[0] == 0 || e_len == 0 || e[0] == 0) {
        key_fail(err, err_len, key->index, key->kid,
                 "\"n\" and \"e\" must be unsigned integers without leading zero bytes");
        return -EINVAL;
    }
    size_t bits = n_len * 8;
    for (uint8_t top = n[0]; (top & 0x80) == 0; top = (uint8_t)(top << 1)) {
        bits--;
    }
    if (bits < LIMIT_JWK_RSA_BITS_MIN) {
        key_fail(err, err_len, key->index, key->kid,
                 "the RSA modulus has %zu bits, fewer than %d (RFC 7518 §3.3)", bits,
                 LIMIT_JWK_RSA_BITS_MIN);
        return -EINVAL;
    }
    uint32_t exponent = 0;
    for (size_t i = 0; i < e_len; i++) {
        exponent = (exponent << 8) | e[i];
    }
    if (exponent < 3 || exponent % 2 == 0 || n[n_len - 1] % 2 == 0) {
        key_fail(err, err_len, key->index, key->kid,
                 "not an RSA public key (an odd modulus and an odd exponent of 3 or more)");
        return -EINVAL;
    }
    gnutls_datum_t nd = {n, (unsigned)n_len};
    gnutls_datum_t ed = {e, (unsigned)e_len};
    if (gnutls_pubkey_import_rsa_raw(key->pub, &nd, &ed) < 0) {
        key_fail(err, err_len, key->index, key->kid, "not a valid RSA public key");
        return -EINVAL;
    }
    key->alg = JWKS_ALG_RS256;
    key->sig_bytes = n_len;
    return 0;
}

/* Loads keys[index] into set->keys[set->count]. 0 with *verdict, or -EINVAL/-ENOMEM. */
static int load_key(struct jwks *set, size_t index, const json_t *k, enum key_verdict *verdict,
                    char *err, size_t err_len)
{
    ASSERT(set->count < LIMIT_JWKS_KEYS_MAX);
    if (!json_is_object(k)) {
        key_fail(err, err_len, index, NULL, "is not a JSON object");
        return -EINVAL;
    }
    json_t *jkid = json_object_get(k, "kid");
    if (jkid == NULL || !json_is_string(jkid) ||
        !kid_valid(json_string_value(jkid), json_string_length(jkid))) {
        key_fail(err, err_len, index, NULL,
                 "\"kid\" is missing or not 1 to %d printable ASCII characters; every key "
                 "needs one, tokens select their key by it",
                 LIMIT_JWT_KID_LEN_MAX);
        return -EINVAL;
    }
    const char *kid = json_string_value(jkid);
    bool bad = false;
    const char *kty = member_str(k, "kty", &bad);
    if (kty == NULL) {
        key_fail(err, err_len, index, kid, "\"kty\" is missing or not a string");
        return -EINVAL;
    }
    if (strcmp(kty, "oct") == 0) {
        key_fail(err, err_len, index, kid,
                 "a symmetric key (kty \"oct\") is refused: ledgerd verifies only asymmetric "
                 "signatures, and a shared secret does not belong in a key set");
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        if (json_object_get(k, private_members[i]) != NULL) {
            key_fail(err, err_len, index, kid,
                     "carries the private parameter \"%s\": a verification key set holds public "
                     "keys only; treat this private key as leaked and replace it",
                     private_members[i]);
            return -EINVAL;
        }
    }
    int rc = 0;
    if (key_not_for_verify(k, index, kid, &rc, err, err_len)) {
        *verdict = KEY_SKIPPED;
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    const char *alg = member_str(k, "alg", &bad);
    if (bad) {
        key_fail(err, err_len, index, kid, "\"alg\" is not a string");
        return -EINVAL;
    }

    struct jwks_key *key = &set->keys[set->count];
    memset(key, 0, sizeof(*key));
    key->kid_len = json_string_length(jkid);
    memcpy(key->kid, kid, key->kid_len);
    key->kid[key->kid_len] = '\0';
    key->index = index;
    if (gnutls_pubkey_init(&key->pub) < 0) {
        key->pub = NULL;
        return -ENOMEM;
    }
    if (strcmp(kty, "OKP") == 0) {
        rc = import_okp(k, key, err, err_len);
    } else if (strcmp(kty, "EC") == 0) {
        rc = import_ec(k, key, err, err_len);
    } else if (strcmp(kty, "RSA") == 0) {
        rc = import_rsa(k, key, err, err_len);
    } else {
        key_fail(err, err_len, index, kid,
                 "kty \"%s\" is not supported (OKP Ed25519, EC P-256 and RSA are)", kty);
        rc = -EINVAL;
    }
    if (rc == 0 && alg != NULL && strcmp(alg, jwks_alg_name(key->alg)) != 0) {
        key_fail(err, err_len, index, kid,
                 "\"alg\" is \"%s\" but this key serves \"%s\" only (RFC 8725 §3.1)", alg,
                 jwks_alg_name(key->alg));
        rc = -EINVAL;
    }
    for (size_t i = 0; rc == 0 && i < set->count; i++) {
        if (set->keys[i].kid_len == key->kid_len &&
            memcmp(set->keys[i].kid, key->kid, key->kid_len) == 0) {
            key_fail(err, err_len, index, kid,
                     "key %zu has the same kid: a token could not say which key it means",
                     set->keys[i].index);
            rc = -EINVAL;
        }
    }
    if (rc < 0) {
        gnutls_pubkey_deinit(key->pub);
        key->pub = NULL;
        return rc;
    }
    set->count++;
    *verdict = KEY_LOADED;
    return 0;
}

int jwks_parse(const char *json, size_t len, struct jwks **out, char *err, size_t err_len)
{
    ASSERT(json != NULL || len == 0);
    ASSERT(out != NULL);
    *out = NULL;
    if (err != NULL && err_len > 0) {
        err[0] = '\0';
    }
    if (len > LIMIT_JWKS_BYTES_MAX) {
        set_fail(err, err_len, "the key set is %zu bytes, more than %zu", len,
                 LIMIT_JWKS_BYTES_MAX);
        return -EINVAL;
    }
    int rc = 0;
    json_error_t jerr;
    json_t *doc = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        set_fail(err, err_len, "the key set is not JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        rc = -EINVAL;
        goto out_decref; /* json_decref(NULL) does nothing */
    }
    json_t *keys = json_is_object(doc) ? json_object_get(doc, "keys") : NULL;
    if (keys == NULL || !json_is_array(keys)) {
        set_fail(err, err_len, "the key set is not an object with a \"keys\" array (RFC 7517 §5)");
        rc = -EINVAL;
        goto out_decref;
    }
    if (json_array_size(keys) > LIMIT_JWKS_KEYS_MAX) {
        set_fail(err, err_len, "the key set holds %zu keys, more than %d", json_array_size(keys),
                 LIMIT_JWKS_KEYS_MAX);
        rc = -EINVAL;
        goto out_decref;
    }
    struct jwks *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        set_fail(err, err_len, "out of memory");
        rc = -ENOMEM;
        goto out_decref;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        enum key_verdict verdict = KEY_SKIPPED;
        rc = load_key(set, i, json_array_get(keys, i), &verdict, err, err_len);
        if (rc == -ENOMEM) {
            set_fail(err, err_len, "out of memory");
        }
        if (rc < 0) {
            goto out_free_set;
        }
        set->skipped += verdict == KEY_SKIPPED ? 1 : 0;
    }
    if (set->count == 0) {
        set_fail(err, err_len,
                 "the key set holds no signature verification key (%zu skipped for \"use\" or "
                 "\"key_ops\")",
                 set->skipped);
        rc = -EINVAL;
        goto out_free_set;
    }
    ASSERT(set->count + set->skipped == json_array_size(keys));
    *out = set;
    set = NULL;
out_free_set:
    jwks_free(set);
out_decref:
    json_decref(doc);
    if (rc < 0) {
        one_printable_line(err, err_len);
    }
    ASSERT((rc == 0) == (*out != NULL));
    return rc;
}

void jwks_free(struct jwks *set)
{
    if (set == NULL) {
        return;
    }
    ASSERT(set->count <= LIMIT_JWKS_KEYS_MAX);
    for (size_t i = 0; i < set->count; i++) {
        gnutls_pubkey_deinit(set->keys[i].pub);
    }
    free(set);
}

size_t jwks_count(const struct jwks *set)
{
    ASSERT(set != NULL);
    return set->count;
}

size_t jwks_skipped_count(const struct jwks *set)
{
    ASSERT(set != NULL);
    return set->skipped;
}

const struct jwks_key *jwks_find(const struct jwks *set, const char *kid, size_t kid_len)
{
    ASSERT(set != NULL);
    ASSERT(kid != NULL || kid_len == 0);
    for (size_t i = 0; i < set->count; i++) {
        const struct jwks_key *key = &set->keys[i];
        if (key->kid_len == kid_len && memcmp(key->kid, kid, kid_len) == 0) {
            return key;
        }
    }
    return NULL;
}

const struct jwks_key *jwks_key_at(const struct jwks *set, size_t index)
{
    ASSERT(set != NULL && index < set->count);
    return &set->keys[index];
}

const char *jwks_key_kid(const struct jwks_key *key)
{
    ASSERT(key != NULL);
    return key->kid;
}

enum jwks_alg jwks_key_alg(const struct jwks_key *key)
{
    ASSERT(key != NULL);
    return key->alg;
}

/* ---- verification ---- */

bool jwks_key_verify(const struct jwks_key *key, const uint8_t *data, size_t data_len,
                     const uint8_t *sig, size_t sig_len)
{
    ASSERT(key != NULL && key->pub != NULL);
    ASSERT(data != NULL && sig != NULL);
    if (sig_len != key->sig_bytes || data_len > UINT32_MAX) {
        return false;
    }
    /* GnuTLS takes non-const datums but only reads them. */
    gnutls_datum_t dd = {(unsigned char *)data, (unsigned)data_len};
    gnutls_datum_t sd = {(unsigned char *)sig, (unsigned)sig_len};
    int rc = GNUTLS_E_INVALID_REQUEST;
    switch (key->alg) {
    case JWKS_ALG_EDDSA:
        rc = gnutls_pubkey_verify_data2(key->pub, GNUTLS_SIGN_EDDSA_ED25519, 0, &dd, &sd);
        break;
    case JWKS_ALG_RS256:
        rc = gnutls_pubkey_verify_data2(key->pub, GNUTLS_SIGN_RSA_SHA256, 0, &dd, &sd);
        break;
    case JWKS_ALG_ES256: {
        /* JWS carries R || S, fixed size (RFC 7518 §3.4); GnuTLS wants the DER of X9.62. */
        gnutls_datum_t r = {sd.data, P256_COORD_BYTES};
        gnutls_datum_t s = {sd.data + P256_COORD_BYTES, P256_COORD_BYTES};
        gnutls_datum_t der = {NULL, 0};
        rc = gnutls_encode_rs_value(&der, &r, &s);
        if (rc >= 0) {
            rc = gnutls_pubkey_verify_data2(key->pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &dd, &der);
        }
        gnutls_free(der.data);
        break;
    }
    }
    return rc >= 0;
}
