/*
 * test_jwt.c — JWT verification end to end: keys generated here with GnuTLS (Ed25519, P-256,
 * RSA 2048), published as a JWK Set, tokens signed and encoded here, then every acceptance and
 * refusal of jwt_verify, the algorithm-confusion attacks of RFC 8725, hostile encodings, the
 * size limits, and two threads verifying on one key set at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/jwt.h"

#define NOW 1800000000LL
#define SKEW 60
#define ISSUER "https://issuer.example"
#define AUDIENCE "ledgerd"
#define TOKEN_CAP ((size_t)2 * LIMIT_JWT_BYTES_MAX)

/* ---- test keys and token minting ---- */

struct test_key {
    const char *kid;
    enum jwks_alg alg;
    gnutls_privkey_t priv;
    char jwk[2048];
    char n_b64[1024]; /* RSA only: the public modulus as published */
};

enum { KEY_ED, KEY_EC, KEY_RSA, KEY_ED_OTHER, KEY_COUNT };

static struct test_key keys[KEY_COUNT] = {
    [KEY_ED] = {.kid = "ed1", .alg = JWKS_ALG_EDDSA},
    [KEY_EC] = {.kid = "ec1", .alg = JWKS_ALG_ES256},
    [KEY_RSA] = {.kid = "rsa1", .alg = JWKS_ALG_RS256},
    [KEY_ED_OTHER] = {.kid = "ed1", .alg = JWKS_ALG_EDDSA}, /* same kid, not in the set */
};
static struct jwks *set;

static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = a[v >> 18];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
        out[n++] = a[v & 63];
    }
    if (len - i == 1) {
        out[n++] = a[in[i] >> 2];
        out[n++] = a[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[n++] = a[v >> 10];
        out[n++] = a[(v >> 4) & 63];
        out[n++] = a[(v & 15) << 2];
    }
    out[n] = '\0';
    return n;
}

static size_t b64url_str(const char *s, char *out)
{
    return b64url((const uint8_t *)s, strlen(s), out);
}

/* Copies a big-endian integer into exactly width bytes (left-padded, leading zeros dropped). */
static void fixed_width(const gnutls_datum_t *v, uint8_t *out, size_t width)
{
    size_t skip = 0;
    while (skip < v->size && v->data[skip] == 0) {
        skip++;
    }
    size_t n = v->size - skip;
    assert_true(n <= width);
    memset(out, 0, width);
    memcpy(out + width - n, v->data + skip, n);
}

static void key_generate(struct test_key *k, unsigned rsa_bits)
{
    assert_int_equal(gnutls_privkey_init(&k->priv), 0);
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    gnutls_datum_t x = {NULL, 0}, y = {NULL, 0};
    char xb[512], yb[512];
    gnutls_ecc_curve_t curve;
    switch (k->alg) {
    case JWKS_ALG_EDDSA:
        assert_int_equal(gnutls_privkey_generate(k->priv, GNUTLS_PK_EDDSA_ED25519,
                                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0),
                         0);
        assert_int_equal(gnutls_pubkey_import_privkey(pub, k->priv, 0, 0), 0);
        assert_int_equal(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0), 0);
        assert_int_equal(x.size, 32);
        b64url(x.data, x.size, xb);
        snprintf(k->jwk, sizeof(k->jwk),
                 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"}", k->kid, xb);
        break;
    case JWKS_ALG_ES256: {
        assert_int_equal(gnutls_privkey_generate(k->priv, GNUTLS_PK_ECDSA,
                                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                 0),
                         0);
        assert_int_equal(gnutls_pubkey_import_privkey(pub, k->priv, 0, 0), 0);
        assert_int_equal(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, 0), 0);
        uint8_t xr[32], yr[32];
        fixed_width(&x, xr, 32);
        fixed_width(&y, yr, 32);
        b64url(xr, 32, xb);
        b64url(yr, 32, yb);
        snprintf(k->jwk, sizeof(k->jwk),
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\","
                 "\"use\":\"sig\",\"alg\":\"ES256\"}",
                 k->kid, xb, yb);
        break;
    }
    case JWKS_ALG_RS256:
        assert_int_equal(gnutls_privkey_generate(k->priv, GNUTLS_PK_RSA, rsa_bits, 0), 0);
        assert_int_equal(gnutls_pubkey_import_privkey(pub, k->priv, 0, 0), 0);
        assert_int_equal(gnutls_pubkey_export_rsa_raw2(pub, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ), 0);
        b64url(x.data, x.size, k->n_b64);
        b64url(y.data, y.size, yb);
        snprintf(k->jwk, sizeof(k->jwk),
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\","
                 "\"key_ops\":[\"verify\"]}",
                 k->kid, k->n_b64, yb);
        break;
    }
    gnutls_free(x.data);
    gnutls_free(y.data);
    gnutls_pubkey_deinit(pub);
}

/* Signs data with k as JWS does: raw Ed25519, R || S for ES256, PKCS #1 v1.5 for RS256. */
static size_t key_sign(const struct test_key *k, const char *data, size_t len, uint8_t *sig)
{
    static const gnutls_sign_algorithm_t algos[] = {
        [JWKS_ALG_EDDSA] = GNUTLS_SIGN_EDDSA_ED25519,
        [JWKS_ALG_ES256] = GNUTLS_SIGN_ECDSA_SHA256,
        [JWKS_ALG_RS256] = GNUTLS_SIGN_RSA_SHA256,
    };
    gnutls_datum_t d = {(unsigned char *)data, (unsigned)len};
    gnutls_datum_t s = {NULL, 0};
    assert_int_equal(gnutls_privkey_sign_data2(k->priv, algos[k->alg], 0, &d, &s), 0);
    size_t n = s.size;
    if (k->alg == JWKS_ALG_ES256) {
        gnutls_datum_t r = {NULL, 0}, ss = {NULL, 0};
        assert_int_equal(gnutls_decode_rs_value(&s, &r, &ss), 0);
        fixed_width(&r, sig, 32);
        fixed_width(&ss, sig + 32, 32);
        n = 64;
        gnutls_free(r.data);
        gnutls_free(ss.data);
    } else {
        memcpy(sig, s.data, n);
    }
    gnutls_free(s.data);
    return n;
}

/* Writes b64url(header).b64url(payload).b64url(signature by k) into out. */
static size_t mint(const struct test_key *k, const char *header, const char *payload, char *out)
{
    size_t n = b64url_str(header, out);
    out[n++] = '.';
    n += b64url_str(payload, out + n);
    uint8_t sig[1024];
    size_t sig_len = key_sign(k, out, n, sig);
    out[n++] = '.';
    n += b64url(sig, sig_len, out + n);
    assert_true(n < TOKEN_CAP);
    return n;
}

static char *header_for(const struct test_key *k)
{
    static char h[128];
    snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", jwks_alg_name(k->alg),
             k->kid);
    return h;
}

#define PAYLOAD_OK                                                                                 \
    "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"sub\":\"user-42\",\"exp\":1800000600,"     \
    "\"nbf\":1799999900,\"iat\":1799999900,\"jti\":\"j-1\",\"scope\":\"ledger:read "               \
    "ledger:write\",\"roles\":[\"reader\",\"writer\"]}"

static const struct jwt_policy policy = {ISSUER, AUDIENCE, SKEW, NOW};

static enum jwt_result verify_with(const char *token, size_t len, const struct jwt_policy *p,
                                   struct jwt_claims *c)
{
    return jwt_verify(set, token, len, p, c);
}

/* Mints with k and verifies under the default policy. */
static enum jwt_result check(const struct test_key *k, const char *header, const char *payload)
{
    char tok[TOKEN_CAP];
    size_t n = mint(k, header, payload, tok);
    struct jwt_claims c;
    return verify_with(tok, n, &policy, &c);
}

static enum jwt_result check_payload(const char *payload)
{
    return check(&keys[KEY_ED], header_for(&keys[KEY_ED]), payload);
}

static enum jwt_result check_str(const char *token)
{
    struct jwt_claims c;
    return verify_with(token, strlen(token), &policy, &c);
}

static int setup(void **state)
{
    (void)state;
    key_generate(&keys[KEY_ED], 0);
    key_generate(&keys[KEY_EC], 0);
    key_generate(&keys[KEY_RSA], 2048);
    key_generate(&keys[KEY_ED_OTHER], 0);
    char doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", keys[KEY_ED].jwk, keys[KEY_EC].jwk,
             keys[KEY_RSA].jwk);
    char err[256];
    int rc = jwks_parse(doc, strlen(doc), &set, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "jwks_parse: %s\n", err);
        return -1;
    }
    return jwks_count(set) == 3 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    jwks_free(set);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        gnutls_privkey_deinit(keys[i].priv);
    }
    return 0;
}

/* ---- acceptance ---- */

static void test_valid_each_alg(void **state)
{
    (void)state;
    for (size_t i = KEY_ED; i <= KEY_RSA; i++) {
        char tok[TOKEN_CAP];
        size_t n = mint(&keys[i], header_for(&keys[i]), PAYLOAD_OK, tok);
        struct jwt_claims c;
        memset(&c, 'z', sizeof(c));
        assert_int_equal(verify_with(tok, n, &policy, &c), JWT_OK);
        assert_string_equal(c.sub, "user-42");
        assert_string_equal(c.iss, ISSUER);
        assert_string_equal(c.kid, keys[i].kid);
        assert_string_equal(c.alg, jwks_alg_name(keys[i].alg));
        assert_string_equal(c.jti, "j-1");
        assert_string_equal(c.scope, "ledger:read ledger:write");
        assert_int_equal(c.roles_count, 2);
        assert_string_equal(c.roles[0], "reader");
        assert_string_equal(c.roles[1], "writer");
        assert_int_equal(c.exp, 1800000600);
        assert_true(c.has_nbf && c.has_iat);
        assert_int_equal(c.nbf, 1799999900);
        assert_int_equal(c.iat, 1799999900);
        /* Only len bytes are read. */
        tok[n] = 'x';
        assert_int_equal(verify_with(tok, n, &policy, &c), JWT_OK);
    }
}

static void test_minimal_claims(void **state)
{
    (void)state;
    char tok[TOKEN_CAP];
    size_t n = mint(&keys[KEY_EC], "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
                    "{\"sub\":\"s\",\"exp\":1800000001}", tok);
    struct jwt_policy open = {NULL, NULL, 0, NOW};
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &open, &c), JWT_OK);
    assert_string_equal(c.iss, "");
    assert_string_equal(c.scope, "");
    assert_int_equal(c.roles_count, 0);
    assert_false(c.has_nbf || c.has_iat);
    /* The configured policy needs iss and aud. */
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_ISSUER_MISMATCH);
}

static void test_typ(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/JWT"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":\"%s\"}", ok[i]);
        assert_int_equal(check(&keys[KEY_ED], h, PAYLOAD_OK), JWT_OK);
    }
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", PAYLOAD_OK),
                     JWT_OK);
    assert_int_equal(
        check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":\"JOSE\"}", PAYLOAD_OK),
        JWT_TYP_UNSUPPORTED);
    assert_int_equal(
        check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":\"JWT \"}", PAYLOAD_OK),
        JWT_TYP_UNSUPPORTED);
    assert_int_equal(
        check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":1}", PAYLOAD_OK),
        JWT_TYP_UNSUPPORTED);
}

/* ---- the algorithm ---- */

static void test_alg_none(void **state)
{
    (void)state;
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"kid\":\"ed1\"}", "{\"alg\":\"NONE\",\"kid\":\"ed1\"}",
        "{\"alg\":\"None\",\"kid\":\"ed1\"}", "{\"alg\":\"nOnE\"}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char tok[TOKEN_CAP];
        size_t n = b64url_str(headers[i], tok);
        tok[n++] = '.';
        n += b64url_str(PAYLOAD_OK, tok + n);
        tok[n++] = '.';
        struct jwt_claims c;
        /* Unsecured JWS: empty signature (RFC 7519 §6.1). */
        assert_int_equal(verify_with(tok, n, &policy, &c), JWT_ALG_NONE);
        assert_string_equal(c.sub, "");
        /* And with a signature of a real key appended. */
        assert_int_equal(check(&keys[KEY_ED], headers[i], PAYLOAD_OK), JWT_ALG_NONE);
    }
}

static void test_alg_unsupported(void **state)
{
    (void)state;
    static const char *const algs[] = {"HS256", "HS512", "PS256",   "ES384", "ES256K", "RS512",
                                       "es256", "EDDSA", "Ed25519", "",      "none "};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"ed1\"}", algs[i]);
        assert_int_equal(check(&keys[KEY_ED], h, PAYLOAD_OK), JWT_ALG_UNSUPPORTED);
    }
    assert_int_equal(check(&keys[KEY_ED], "{\"kid\":\"ed1\"}", PAYLOAD_OK), JWT_MALFORMED);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":null,\"kid\":\"ed1\"}", PAYLOAD_OK),
                     JWT_MALFORMED);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":[\"EdDSA\"],\"kid\":\"ed1\"}", PAYLOAD_OK),
                     JWT_MALFORMED);
}

/* The classic confusion (RFC 8725 §2.1): HS256 with the RSA public key as the HMAC secret. A
 * verifier that let the header pick the algorithm would accept it. */
static void test_alg_hs256_with_public_key(void **state)
{
    (void)state;
    const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"rsa1\"}";
    const char *secrets[] = {keys[KEY_RSA].n_b64, keys[KEY_RSA].jwk};
    for (size_t i = 0; i < 2; i++) {
        char tok[TOKEN_CAP];
        size_t n = b64url_str(header, tok);
        tok[n++] = '.';
        n += b64url_str(PAYLOAD_OK, tok + n);
        uint8_t mac[32];
        assert_int_equal(
            gnutls_hmac_fast(GNUTLS_MAC_SHA256, secrets[i], strlen(secrets[i]), tok, n, mac), 0);
        tok[n++] = '.';
        n += b64url(mac, sizeof(mac), tok + n);
        struct jwt_claims c;
        assert_int_equal(verify_with(tok, n, &policy, &c), JWT_ALG_UNSUPPORTED);
        assert_string_equal(c.sub, "");
    }
}

static void test_alg_key_mismatch(void **state)
{
    (void)state;
    /* An ES256 token naming the Ed25519 key, signed with the EC key. */
    assert_int_equal(check(&keys[KEY_EC], "{\"alg\":\"ES256\",\"kid\":\"ed1\"}", PAYLOAD_OK),
                     JWT_ALG_KEY_MISMATCH);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"rsa1\"}", PAYLOAD_OK),
                     JWT_ALG_KEY_MISMATCH);
    assert_int_equal(check(&keys[KEY_RSA], "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", PAYLOAD_OK),
                     JWT_ALG_KEY_MISMATCH);
    char tok[TOKEN_CAP];
    size_t n = mint(&keys[KEY_EC], "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", PAYLOAD_OK, tok);
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_ALG_KEY_MISMATCH);
    assert_string_equal(c.kid, "rsa1"); /* for the log */
    assert_string_equal(c.alg, "ES256");
    assert_string_equal(c.sub, "");
}

/* ---- header members ---- */

static void test_kid(void **state)
{
    (void)state;
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\"}", PAYLOAD_OK), JWT_KID_MISSING);
    char tok[TOKEN_CAP];
    size_t n = mint(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed2\"}", PAYLOAD_OK, tok);
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_KID_UNKNOWN);
    assert_string_equal(c.kid, "ed2");
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ED1\"}", PAYLOAD_OK),
                     JWT_KID_UNKNOWN);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"\"}", PAYLOAD_OK),
                     JWT_KID_UNKNOWN);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1 \"}", PAYLOAD_OK),
                     JWT_KID_UNKNOWN);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":1}", PAYLOAD_OK),
                     JWT_MALFORMED);
    assert_int_equal(check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":null}", PAYLOAD_OK),
                     JWT_MALFORMED);
    char h[512];
    char longkid[LIMIT_JWT_KID_LEN_MAX + 2];
    memset(longkid, 'k', sizeof(longkid) - 1);
    longkid[sizeof(longkid) - 1] = '\0';
    snprintf(h, sizeof(h), "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", longkid);
    n = mint(&keys[KEY_ED], h, PAYLOAD_OK, tok);
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_KID_UNKNOWN);
    assert_string_equal(c.kid, ""); /* too long to keep */
}

static void test_crit(void **state)
{
    (void)state;
    assert_int_equal(check(&keys[KEY_ED],
                           "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"crit\":[\"exp\"],\"exp\":1}",
                           PAYLOAD_OK),
                     JWT_CRIT_UNSUPPORTED);
    assert_int_equal(
        check(&keys[KEY_ED], "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"crit\":[]}", PAYLOAD_OK),
        JWT_CRIT_UNSUPPORTED);
    assert_int_equal(check(&keys[KEY_ED],
                           "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"b64\":false,\"crit\":[\"b64\"]}",
                           PAYLOAD_OK),
                     JWT_CRIT_UNSUPPORTED);
}

/* Keys named by the header itself are never used (RFC 8725 §3.10): a token signed by another
 * key that embeds it, or points at it, still fails. */
static void test_header_keys_ignored(void **state)
{
    (void)state;
    char h[sizeof(keys[0].jwk) + 128];
    snprintf(h, sizeof(h), "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"jwk\":%s,\"jku\":\"https://x\"}",
             keys[KEY_ED_OTHER].jwk);
    assert_int_equal(check(&keys[KEY_ED_OTHER], h, PAYLOAD_OK), JWT_BAD_SIGNATURE);
    assert_int_equal(check(&keys[KEY_ED], h, PAYLOAD_OK), JWT_OK);
}

/* ---- the signature ---- */

static void test_bad_signature(void **state)
{
    (void)state;
    for (size_t i = KEY_ED; i <= KEY_RSA; i++) {
        char tok[TOKEN_CAP];
        size_t n = mint(&keys[i], header_for(&keys[i]), PAYLOAD_OK, tok);
        char *sig = strrchr(tok, '.') + 1;
        struct jwt_claims c;
        /* A flipped bit of the signature: decode, flip, encode. */
        uint8_t raw[1024];
        size_t raw_len = 0;
        assert_int_equal(jwks_base64url_decode(sig, strlen(sig), raw, sizeof(raw), &raw_len), 0);
        raw[raw_len / 2] ^= 0x10;
        char bad[TOKEN_CAP];
        memcpy(bad, tok, (size_t)(sig - tok));
        size_t m = (size_t)(sig - tok) + b64url(raw, raw_len, bad + (sig - tok));
        assert_int_equal(verify_with(bad, m, &policy, &c), JWT_BAD_SIGNATURE);
        assert_string_equal(c.sub, "");
        assert_string_equal(c.kid, keys[i].kid);
        /* Truncated by a byte, by half, and all of it. */
        raw[raw_len / 2] ^= 0x10;
        m = (size_t)(sig - tok) + b64url(raw, raw_len - 1, bad + (sig - tok));
        assert_int_equal(verify_with(bad, m, &policy, &c), JWT_BAD_SIGNATURE);
        m = (size_t)(sig - tok) + b64url(raw, raw_len / 2, bad + (sig - tok));
        assert_int_equal(verify_with(bad, m, &policy, &c), JWT_BAD_SIGNATURE);
        assert_int_equal(verify_with(tok, (size_t)(sig - tok), &policy, &c), JWT_BAD_SIGNATURE);
        /* Cut by four characters: usually no longer a canonical encoding (malformed); when the
         * bits left over happen to be zero, a short signature. */
        enum jwt_result cut = verify_with(tok, n - 4, &policy, &c);
        assert_true(cut == JWT_MALFORMED || cut == JWT_BAD_SIGNATURE);
        /* One byte more. */
        raw[raw_len] = 0;
        m = (size_t)(sig - tok) + b64url(raw, raw_len + 1, bad + (sig - tok));
        assert_int_equal(verify_with(bad, m, &policy, &c), JWT_BAD_SIGNATURE);
        /* A flipped bit of the signed payload (another character, same length). */
        char *payload = strchr(tok, '.') + 1;
        payload[3] = payload[3] == 'A' ? 'B' : 'A';
        assert_int_equal(verify_with(tok, n, &policy, &c), JWT_BAD_SIGNATURE);
    }
    /* Another key with the same kid and alg. */
    assert_int_equal(check(&keys[KEY_ED_OTHER], header_for(&keys[KEY_ED]), PAYLOAD_OK),
                     JWT_BAD_SIGNATURE);
}

/* ES256 signatures are R || S (RFC 7518 §3.4): the DER form some libraries emit is refused. */
static void test_es256_der_signature(void **state)
{
    (void)state;
    const struct test_key *k = &keys[KEY_EC];
    char tok[TOKEN_CAP];
    size_t n = b64url_str(header_for(k), tok);
    tok[n++] = '.';
    n += b64url_str(PAYLOAD_OK, tok + n);
    gnutls_datum_t d = {(unsigned char *)tok, (unsigned)n};
    gnutls_datum_t der = {NULL, 0};
    assert_int_equal(gnutls_privkey_sign_data2(k->priv, GNUTLS_SIGN_ECDSA_SHA256, 0, &d, &der), 0);
    tok[n++] = '.';
    n += b64url(der.data, der.size, tok + n);
    gnutls_free(der.data);
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_BAD_SIGNATURE);
}

/* R or S with leading zero bytes still fills 32 bytes each and verifies. */
static void test_es256_leading_zero(void **state)
{
    (void)state;
    const struct test_key *k = &keys[KEY_EC];
    int found = 0;
    for (int i = 0; i < 5000 && found < 2; i++) {
        char payload[256];
        snprintf(payload, sizeof(payload),
                 "{\"sub\":\"s%d\",\"exp\":1800000600,\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                 "\"}",
                 i);
        char tok[TOKEN_CAP];
        size_t n = mint(k, header_for(k), payload, tok);
        const char *sig = strrchr(tok, '.') + 1;
        uint8_t raw[64];
        size_t raw_len = 0;
        assert_int_equal(jwks_base64url_decode(sig, strlen(sig), raw, sizeof(raw), &raw_len), 0);
        assert_int_equal(raw_len, 64);
        if (raw[0] == 0 || raw[32] == 0) {
            struct jwt_claims c;
            assert_int_equal(verify_with(tok, n, &policy, &c), JWT_OK);
            found++;
        }
    }
    assert_int_equal(found, 2);
}

/* ---- claims ---- */

static void test_time(void **state)
{
    (void)state;
    char p[256];
#define WITH_TIMES(exp, nbf)                                                                       \
    (snprintf(p, sizeof(p),                                                                        \
              "{\"sub\":\"s\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":%s%s%s}",    \
              exp, (nbf)[0] ? ",\"nbf\":" : "", nbf),                                              \
     check_payload(p))
    assert_int_equal(WITH_TIMES("1800000001", ""), JWT_OK);
    assert_int_equal(WITH_TIMES("1799999941", ""), JWT_OK);        /* within the skew */
    assert_int_equal(WITH_TIMES("1799999940", ""), JWT_EXPIRED);   /* exp == now - skew */
    assert_int_equal(WITH_TIMES("1799990000", ""), JWT_EXPIRED);   /* beyond the skew */
    assert_int_equal(WITH_TIMES("1799999940.5", ""), JWT_EXPIRED); /* fractions round down */
    assert_int_equal(WITH_TIMES("1799999941.0", ""), JWT_OK);
    assert_int_equal(WITH_TIMES("1800000600", "1800000060"), JWT_OK); /* nbf == now + skew */
    assert_int_equal(WITH_TIMES("1800000600", "1800000061"), JWT_NOT_YET_VALID);
    assert_int_equal(WITH_TIMES("1800000600", "1800000060.2"), JWT_NOT_YET_VALID); /* round up */
    assert_int_equal(WITH_TIMES("1800000600", "0"), JWT_OK);
    assert_int_equal(WITH_TIMES("\"1800000600\"", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("true", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("null", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("-1", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("253402300799", ""), JWT_OK);
    assert_int_equal(WITH_TIMES("253402300800", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("1e300", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("9223372036854775807", ""), JWT_CLAIM_INVALID);
    assert_int_equal(WITH_TIMES("99999999999999999999", ""), JWT_MALFORMED); /* not an int64 */
    assert_int_equal(WITH_TIMES("1800000600", "\"0\""), JWT_CLAIM_INVALID);
    assert_int_equal(check_payload("{\"sub\":\"s\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                                   "\",\"exp\":1800000600,\"iat\":\"x\"}"),
                     JWT_CLAIM_INVALID);
#undef WITH_TIMES
    /* Without skew, exp == now is expired. */
    char tok[TOKEN_CAP];
    size_t n =
        mint(&keys[KEY_ED], header_for(&keys[KEY_ED]), "{\"sub\":\"s\",\"exp\":1800000000}", tok);
    struct jwt_policy strict = {NULL, NULL, 0, NOW};
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &strict, &c), JWT_EXPIRED);
    strict.now_unix_s = NOW - 1;
    assert_int_equal(verify_with(tok, n, &strict, &c), JWT_OK);
}

static void test_required_claims(void **state)
{
    (void)state;
    assert_int_equal(
        check_payload("{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":1800000600}"),
        JWT_CLAIM_MISSING);
    assert_int_equal(
        check_payload("{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"sub\":\"s\"}"),
        JWT_CLAIM_MISSING);
    static const char *const bad_sub[] = {
        "\"\"", "1", "null", "[\"s\"]", "\"a\\nb\"", "\"a\\u0007\"", "\"\\u007f\""};
    for (size_t i = 0; i < sizeof(bad_sub) / sizeof(bad_sub[0]); i++) {
        char p[256];
        snprintf(p, sizeof(p),
                 "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":1800000600,\"sub\":%s}",
                 bad_sub[i]);
        assert_int_equal(check_payload(p), JWT_CLAIM_INVALID);
    }
    /* A NUL inside a string is refused by the JSON parser. */
    assert_int_equal(check_payload("{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                                   "\",\"exp\":1800000600,\"sub\":\"a\\u0000b\"}"),
                     JWT_MALFORMED);
    /* Non-ASCII subjects are fine. */
    assert_int_equal(check_payload("{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                                   "\",\"exp\":1800000600,\"sub\":\"z\\u00fcrich\"}"),
                     JWT_OK);
    static const char *const bad_optional[] = {"\"jti\":1",
                                               "\"scope\":[\"a\"]",
                                               "\"roles\":\"reader\"",
                                               "\"roles\":[1]",
                                               "\"roles\":[\"\"]",
                                               "\"iss\":null",
                                               "\"aud\":1",
                                               "\"aud\":[\"" AUDIENCE "\",2]"};
    for (size_t i = 0; i < sizeof(bad_optional) / sizeof(bad_optional[0]); i++) {
        char p[256];
        snprintf(p, sizeof(p), "{\"exp\":1800000600,\"sub\":\"s\",%s}", bad_optional[i]);
        char tok[TOKEN_CAP];
        size_t n = mint(&keys[KEY_ED], header_for(&keys[KEY_ED]), p, tok);
        struct jwt_policy open = {NULL, NULL, SKEW, NOW};
        struct jwt_claims c;
        if (verify_with(tok, n, &open, &c) != JWT_CLAIM_INVALID) {
            fail_msg("not claim_invalid: %s", p);
        }
    }
}

static void test_issuer_audience(void **state)
{
    (void)state;
    char p[1024];
#define WITH(iss_aud)                                                                              \
    (snprintf(p, sizeof(p), "{\"sub\":\"s\",\"exp\":1800000600%s}", iss_aud), check_payload(p))
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\""), JWT_OK);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":[\"other\",\"" AUDIENCE "\"]"), JWT_OK);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":[\"" AUDIENCE "\"]"), JWT_OK);
    assert_int_equal(WITH(",\"iss\":\"https://evil.example\",\"aud\":\"" AUDIENCE "\""),
                     JWT_ISSUER_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"https://ISSUER.example\",\"aud\":\"" AUDIENCE "\""),
                     JWT_ISSUER_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "/\",\"aud\":\"" AUDIENCE "\""),
                     JWT_ISSUER_MISMATCH);
    assert_int_equal(WITH(",\"aud\":\"" AUDIENCE "\""), JWT_ISSUER_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":\"other\""), JWT_AUDIENCE_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":\"LEDGERD\""), JWT_AUDIENCE_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":[\"a\",\"b\"]"), JWT_AUDIENCE_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":[]"), JWT_AUDIENCE_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\""), JWT_AUDIENCE_MISMATCH);
    assert_int_equal(WITH(",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "x\""),
                     JWT_AUDIENCE_MISMATCH);
    /* At most LIMIT_JWT_AUDIENCES_MAX audiences. */
    char many[512];
    size_t n =
        (size_t)snprintf(many, sizeof(many), ",\"iss\":\"" ISSUER "\",\"aud\":[\"" AUDIENCE "\"");
    for (int i = 1; i < LIMIT_JWT_AUDIENCES_MAX; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, ",\"a%d\"", i);
    }
    snprintf(many + n, sizeof(many) - n, "]");
    assert_int_equal(WITH(many), JWT_OK);
    snprintf(many + n, sizeof(many) - n, ",\"b\"]");
    assert_int_equal(WITH(many), JWT_CLAIM_TOO_LONG);
#undef WITH
}

/* Each bounded claim: the longest value is kept whole, one byte more refuses the token. */
static void test_claim_lengths(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t max;
    } claims[] = {
        {"sub", LIMIT_JWT_SUB_LEN_MAX},
        {"jti", LIMIT_JWT_JTI_LEN_MAX},
        {"scope", LIMIT_JWT_SCOPE_LEN_MAX},
    };
    static char value[LIMIT_JWT_SCOPE_LEN_MAX + 2];
    static char p[4096];
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            memset(value, 'v', claims[i].max + extra);
            value[claims[i].max + extra] = '\0';
            snprintf(p, sizeof(p),
                     "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":1800000600%s"
                     "\"%s\":\"%s\"}",
                     strcmp(claims[i].name, "sub") == 0 ? "," : ",\"sub\":\"s\",", claims[i].name,
                     value);
            char tok[TOKEN_CAP];
            size_t n = mint(&keys[KEY_ED], header_for(&keys[KEY_ED]), p, tok);
            struct jwt_claims c;
            enum jwt_result r = verify_with(tok, n, &policy, &c);
            assert_int_equal(r, extra ? JWT_CLAIM_TOO_LONG : JWT_OK);
            if (!extra && strcmp(claims[i].name, "sub") == 0) {
                assert_int_equal(strlen(c.sub), claims[i].max);
            }
        }
    }
    /* iss: longer than kept is too long, not a mismatch. */
    memset(value, 'i', LIMIT_JWT_ISS_LEN_MAX + 1);
    value[LIMIT_JWT_ISS_LEN_MAX + 1] = '\0';
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"exp\":1800000600,\"sub\":\"s\"}", value);
    assert_int_equal(check_payload(p), JWT_CLAIM_TOO_LONG);

    /* Roles: LIMIT_JWT_ROLES_MAX of the longest name, then one more, then one longer name. */
    size_t n = (size_t)snprintf(p, sizeof(p),
                                "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                                "\",\"exp\":1800000600,\"sub\":\"s\",\"roles\":[");
    memset(value, 'r', LIMIT_JWT_ROLE_LEN_MAX);
    value[LIMIT_JWT_ROLE_LEN_MAX] = '\0';
    for (int i = 0; i < LIMIT_JWT_ROLES_MAX; i++) {
        n += (size_t)snprintf(p + n, sizeof(p) - n, "%s\"%s\"", i ? "," : "", value);
    }
    snprintf(p + n, sizeof(p) - n, "]}");
    char tok[TOKEN_CAP];
    size_t len = mint(&keys[KEY_ED], header_for(&keys[KEY_ED]), p, tok);
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, len, &policy, &c), JWT_OK);
    assert_int_equal(c.roles_count, LIMIT_JWT_ROLES_MAX);
    assert_string_equal(c.roles[LIMIT_JWT_ROLES_MAX - 1], value);
    snprintf(p + n, sizeof(p) - n, ",\"x\"]}");
    assert_int_equal(check_payload(p), JWT_CLAIM_TOO_LONG);
    snprintf(p, sizeof(p),
             "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
             "\",\"exp\":1800000600,\"sub\":\"s\",\"roles\":[\"%sr\"]}",
             value);
    assert_int_equal(check_payload(p), JWT_CLAIM_TOO_LONG);
}

/* ---- shape and encoding ---- */

static void test_segments(void **state)
{
    (void)state;
    char tok[TOKEN_CAP];
    size_t n = mint(&keys[KEY_ED], header_for(&keys[KEY_ED]), PAYLOAD_OK, tok);
    assert_int_equal(check_str(tok), JWT_OK);
    char *d1 = strchr(tok, '.');
    char *d2 = strrchr(tok, '.');
    char buf[3 * TOKEN_CAP];
    /* Two segments: header.payload */
    assert_int_equal(verify_with(tok, (size_t)(d2 - tok), &policy, &(struct jwt_claims){0}),
                     JWT_MALFORMED);
    /* Four segments. */
    snprintf(buf, sizeof(buf), "%s.", tok);
    assert_int_equal(check_str(buf), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.%s", tok, d2 + 1);
    assert_int_equal(check_str(buf), JWT_MALFORMED);
    /* Empty header, empty payload, everything empty. */
    assert_int_equal(check_str(d1), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(d1 - tok), tok, d2);
    assert_int_equal(check_str(buf), JWT_MALFORMED);
    assert_int_equal(check_str(".."), JWT_MALFORMED);
    assert_int_equal(check_str("."), JWT_MALFORMED);
    assert_int_equal(check_str(""), JWT_MALFORMED);
    assert_int_equal(jwt_verify(set, NULL, 0, &policy, &(struct jwt_claims){0}), JWT_MALFORMED);
    assert_int_equal(check_str("not a token"), JWT_MALFORMED);
    (void)n;
}

/* Replaces the character at pos of a fresh token with c and verifies. */
static enum jwt_result with_char(size_t key, size_t part, size_t offset, char c)
{
    char tok[TOKEN_CAP];
    size_t n = mint(&keys[key], header_for(&keys[key]), PAYLOAD_OK, tok);
    char *p = tok;
    for (size_t i = 0; i < part; i++) {
        p = strchr(p, '.') + 1;
    }
    p[offset] = c;
    struct jwt_claims c2;
    return verify_with(tok, n, &policy, &c2);
}

/* Inserts s at the end of part (0, 1, 2) of a fresh token and verifies. */
static enum jwt_result with_suffix(size_t key, size_t part, const char *s)
{
    char tok[TOKEN_CAP];
    mint(&keys[key], header_for(&keys[key]), PAYLOAD_OK, tok);
    char *end = tok;
    for (size_t i = 0; i <= part && end != NULL; i++) {
        end = strchr(end + (i ? 1 : 0), '.');
    }
    size_t at = end != NULL ? (size_t)(end - tok) : strlen(tok);
    char buf[TOKEN_CAP + 16];
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)at, tok, s, tok + at);
    return check_str(buf);
}

static void test_encoding(void **state)
{
    (void)state;
    /* Padding, in each part. */
    for (size_t part = 0; part < 3; part++) {
        assert_int_equal(with_suffix(KEY_ED, part, "="), part == 0   ? JWT_MALFORMED
                                                         : part == 1 ? JWT_BAD_SIGNATURE
                                                                     : JWT_MALFORMED);
        assert_int_equal(with_suffix(KEY_ED, part, "=="),
                         part == 1 ? JWT_BAD_SIGNATURE : JWT_MALFORMED);
    }
    /* The standard alphabet's '+' and '/', whitespace, '%': in the header and signature parts
     * they are refused as encoding; in the payload they break the signature first. */
    static const char bad_chars[] = {'+', '/', ' ', '\n', '%', '\0', '\x80'};
    for (size_t i = 0; i < sizeof(bad_chars); i++) {
        assert_int_equal(with_char(KEY_ED, 0, 2, bad_chars[i]), JWT_MALFORMED);
        assert_int_equal(with_char(KEY_ED, 2, 2, bad_chars[i]), JWT_MALFORMED);
        assert_int_equal(with_char(KEY_ED, 1, 2, bad_chars[i]), JWT_BAD_SIGNATURE);
    }
    /* Payloads in the standard alphabet or padded, correctly signed: refused as encoding. */
    static const char *const payloads[] = {
        "eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwLCJ4IjoiPj4+In0", /* '+' */
        "eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwLCJ4IjoiPz8/In0", /* '/' */
        "eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwfQ==",            /* padding */
        "eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwfQ",              /* the same, unpadded */
        "eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwfR",              /* non-zero unused bits */
        " eyJzdWIiOiJzIiwiZXhwIjoxODAwMDAwNjAwfQ",             /* whitespace */
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char tok[TOKEN_CAP];
        size_t n = b64url_str("{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", tok);
        tok[n++] = '.';
        memcpy(tok + n, payloads[i], strlen(payloads[i]));
        n += strlen(payloads[i]);
        uint8_t sig[64];
        size_t sig_len = key_sign(&keys[KEY_ED], tok, n, sig);
        tok[n++] = '.';
        n += b64url(sig, sig_len, tok + n);
        struct jwt_claims c;
        struct jwt_policy open = {NULL, NULL, SKEW, NOW};
        assert_int_equal(verify_with(tok, n, &open, &c), i == 3 ? JWT_OK : JWT_MALFORMED);
    }

    /* Non-zero unused bits: "e30" is "{}", "e31" carries a stray bit. One spelling only. */
    assert_int_equal(check_str("e31.e30.AAAA"), JWT_MALFORMED);
    /* A length of 1 modulo 4 cannot be base64url. */
    assert_int_equal(with_suffix(KEY_ED, 0, "A"), JWT_MALFORMED);
}

static enum jwt_result with_header(const char *header)
{
    return check(&keys[KEY_ED], header, PAYLOAD_OK);
}

static void test_json(void **state)
{
    (void)state;
    static const char *const headers[] = {
        "[]",
        "\"EdDSA\"",
        "1",
        "null",
        "{",
        "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"} {}",
        "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"alg\":\"EdDSA\"}",
        "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"kid\":\"ec1\"}",
        "{'alg':'EdDSA','kid':'ed1'}",
        "{\"alg\":\"EdD\\u0000SA\",\"kid\":\"ed1\"}",
        "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"x\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        if (with_header(headers[i]) != JWT_MALFORMED) {
            fail_msg("not malformed: %s", headers[i]);
        }
    }
    /* Whitespace and unknown members in the header are fine. */
    assert_int_equal(with_header(" {\"alg\" : \"EdDSA\",\n\"kid\":\"ed1\",\"x5u\":\"https://x\"} "),
                     JWT_OK);
    static const char *const payloads[] = {
        "[]",
        "\"s\"",
        "{\"sub\":\"s\",\"exp\":1800000600,\"sub\":\"admin\"}",
        "{\"sub\":\"s\",\"exp\":1800000600,\"x\":{\"a\":1,\"a\":2}}",
        "{\"sub\":\"s\",\"exp\":1800000600",
        "",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        if (check_payload(payloads[i]) != JWT_MALFORMED) {
            fail_msg("not malformed: %s", payloads[i]);
        }
    }
}

static size_t b64_len(size_t bytes)
{
    return (bytes * 4 + 2) / 3;
}

static void test_size(void **state)
{
    (void)state;
    /* A valid token of exactly LIMIT_JWT_BYTES_MAX bytes, padded through a claim and a header
     * member (base64url lengths skip one value in four). RS256 signatures take 342 characters. */
    static char p[LIMIT_JWT_BYTES_MAX];
    static char tok[TOKEN_CAP];
    char h[128];
    size_t pad = 0;
    size_t n = 0;
    for (size_t hx = 0; hx < 4 && n != LIMIT_JWT_BYTES_MAX; hx++) {
        snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x\":\"%.*s\"}", (int)hx,
                 "xxxx");
        for (pad = 0; pad < LIMIT_JWT_BYTES_MAX; pad++) {
            snprintf(p, sizeof(p),
                     "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
                     "\",\"exp\":1800000600,\"sub\":\"s\",\"pad\":\"%*s\"}",
                     (int)pad, "");
            n = b64_len(strlen(h)) + 1 + b64_len(strlen(p)) + 1 + b64_len(256);
            if (n >= LIMIT_JWT_BYTES_MAX) {
                break;
            }
        }
    }
    assert_int_equal(n, LIMIT_JWT_BYTES_MAX);
    n = mint(&keys[KEY_RSA], h, p, tok);
    assert_int_equal(n, LIMIT_JWT_BYTES_MAX);
    struct jwt_claims c;
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_OK);
    /* One more byte of claim. */
    snprintf(p, sizeof(p),
             "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
             "\",\"exp\":1800000600,\"sub\":\"s\",\"pad\":\"%*s\"}",
             (int)pad + 1, "");
    n = mint(&keys[KEY_RSA], h, p, tok);
    assert_true(n > LIMIT_JWT_BYTES_MAX);
    assert_int_equal(verify_with(tok, n, &policy, &c), JWT_TOO_LARGE);
    assert_string_equal(c.kid, "");
    /* Garbage over the limit is refused before it is read. */
    memset(tok, '.', LIMIT_JWT_BYTES_MAX + 1);
    assert_int_equal(verify_with(tok, LIMIT_JWT_BYTES_MAX + 1, &policy, &c), JWT_TOO_LARGE);
    assert_int_equal(verify_with(tok, SIZE_MAX, &policy, &c), JWT_TOO_LARGE);
    /* The largest header and signature parts a token can hold. */
    memset(tok, 'e', LIMIT_JWT_BYTES_MAX - 3);
    memcpy(tok + LIMIT_JWT_BYTES_MAX - 3, ".e.", 3);
    assert_int_equal(verify_with(tok, LIMIT_JWT_BYTES_MAX, &policy, &c), JWT_MALFORMED);
    n = b64url_str(header_for(&keys[KEY_ED]), tok);
    memcpy(tok + n, ".e30.", 5);
    memset(tok + n + 5, 'A', LIMIT_JWT_BYTES_MAX - n - 5);
    assert_int_equal(verify_with(tok, LIMIT_JWT_BYTES_MAX, &policy, &c), JWT_BAD_SIGNATURE);
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(jwt_result_reason(JWT_OK), "ok");
    assert_string_equal(jwt_result_reason(JWT_EXPIRED), "expired");
    assert_string_equal(jwt_result_reason(JWT_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(jwt_result_reason(JWT_ALG_NONE), "alg_none");
    assert_string_equal(jwt_result_reason(JWT_KID_UNKNOWN), "kid_unknown");
    assert_string_equal(jwt_result_reason(JWT_ALG_KEY_MISMATCH), "alg_key_mismatch");
    for (size_t i = 0; i < JWT_RESULT_COUNT; i++) {
        const char *r = jwt_result_reason((enum jwt_result)i);
        assert_true(strlen(r) > 0);
        for (const char *q = r; *q; q++) {
            assert_true((*q >= 'a' && *q <= 'z') || *q == '_');
        }
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(r, jwt_result_reason((enum jwt_result)j));
        }
    }
}

/* ---- threads ---- */

#ifndef THREAD_ROUNDS
#define THREAD_ROUNDS 3000 /* per thread */
#endif

struct worker {
    const char *const *tokens; /* four: three valid, the last signed by a foreign key */
    const size_t *lens;
    size_t start;
    size_t ok;
    size_t refused;
    size_t wrong;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (size_t i = 0; i < THREAD_ROUNDS; i++) {
        size_t t = (i + w->start) % 4;
        struct jwt_claims c;
        enum jwt_result r = jwt_verify(set, w->tokens[t], w->lens[t], &policy, &c);
        if (t < 3 && r == JWT_OK && strcmp(c.sub, "user-42") == 0 &&
            strcmp(c.kid, keys[t].kid) == 0) {
            w->ok++;
        } else if (t == 3 && r == JWT_BAD_SIGNATURE) {
            w->refused++;
        } else {
            w->wrong++;
        }
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    static char toks[4][TOKEN_CAP];
    static const char *tokens[4];
    static size_t lens[4];
    for (size_t i = KEY_ED; i <= KEY_RSA; i++) {
        lens[i] = mint(&keys[i], header_for(&keys[i]), PAYLOAD_OK, toks[i]);
        tokens[i] = toks[i];
    }
    lens[3] = mint(&keys[KEY_ED_OTHER], header_for(&keys[KEY_ED]), PAYLOAD_OK, toks[3]);
    tokens[3] = toks[3];
    struct worker w[2];
    pthread_t th[2];
    for (size_t i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].tokens = tokens;
        w[i].lens = lens;
        w[i].start = i; /* offset by one, so different algorithms and the same keys overlap */
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].wrong, 0);
        assert_int_equal(w[i].ok, THREAD_ROUNDS / 4 * 3);
        assert_int_equal(w[i].refused, THREAD_ROUNDS / 4);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_each_alg),
        cmocka_unit_test(test_minimal_claims),
        cmocka_unit_test(test_typ),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_unsupported),
        cmocka_unit_test(test_alg_hs256_with_public_key),
        cmocka_unit_test(test_alg_key_mismatch),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_crit),
        cmocka_unit_test(test_header_keys_ignored),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_es256_der_signature),
        cmocka_unit_test(test_es256_leading_zero),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_required_claims),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_claim_lengths),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
