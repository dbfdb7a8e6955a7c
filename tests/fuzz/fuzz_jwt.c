/*
 * fuzz_jwt.c — libFuzzer target for JWK Set loading and JWT verification.
 *
 * An input is split at its first NUL or newline: the first part is loaded as a JWK Set, the
 * second is a token (without a separator, the whole input is both). The token is verified
 * against the input's own set when it loads, against a fixed set of three public keys (the
 * seeds carry tokens those keys signed), and, re-signed, against a key made at start-up: its
 * first two parts are signed with that Ed25519 key (kid "fz"), so headers and claims that the
 * fuzzer invents get past the signature and reach the claim checks.
 *
 * A refused set must leave a one-line reason and no set; a loaded one holds 1 to
 * LIMIT_JWKS_KEYS_MAX keys, each found by its own printable kid. Every result must have a
 * reason; an accepted token must satisfy the policy it was checked against, and a refused one
 * must hand back no claims. base64url decoding must be canonical: what decodes, re-encodes to
 * the same text.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file,
 * src/auth/jwt.c, src/auth/jwks.c and src/core/assert.c, and
 * $(pkg-config --cflags --libs jansson gnutls).
 * Seeds: tests/fuzz/corpus/jwt/
 */
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public keys only; the seeds in the corpus carry tokens their private halves signed. */
static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed1\","
    "\"x\":\"sZge9ohL_Lpiy6C3wprzmgEURzbnsupHhCA_ij1aClM\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\","
    "\"x\":\"fY1rfNmPVbr23DwM9byyQO45Cy678Dl5HubBv0zDkt4\","
    "\"y\":\"AI6lr0ea-gH6kFRoZjo_WMLXo5nIL73aXKuavECAOSk\",\"use\":\"sig\",\"alg\":\"ES256\"},"
    "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"n\":\"27_Q5CPCPdcQ3aZl7qI5fuu5hDrjje1k60yix7h3V8I0Z8veCKz"
    "yibxhchTyP5O_E7lxRxVt-vCzItKsuwF9kJLJL09hL7BM1pyyhN7qg9yrXkPqz-TgnUmlRTeyQ2p9vR71QWULxR5jfTj"
    "0mw84yZaEumlOrY6qzvm37sVXqX6meD2IW3LsBYKRBtmmc9nNwW5GtBB2zx6Vfz8KY7nG97O_5ca4E_OlUbAfmmW4NU1"
    "2tQlXDO2OBMhO2KQQ84y8RWBPqOA_Prz4IBy0_qae8qHOENfmcg9tB894Wg00N2KNAyKnLJnFV6sbVe3FNW2B077Q3i1"
    "NJfN6EeWtEGKO7Q\",\"e\":\"AQAB\",\"key_ops\":[\"verify\"]}]}";

#define ISSUER "https://issuer.example"
#define AUDIENCE "ledgerd"

static const struct jwt_policy policy = {ISSUER, AUDIENCE, 60, 1800000000};
static const struct jwt_policy open_policy = {NULL, NULL, 0, 1800000000};

static struct jwks *fixed_set;
static struct jwks *signer_set;
static gnutls_privkey_t signer;
static char resigned[2 * LIMIT_JWT_BYTES_MAX];

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = b64_alphabet[v >> 18];
        out[n++] = b64_alphabet[(v >> 12) & 63];
        out[n++] = b64_alphabet[(v >> 6) & 63];
        out[n++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        out[n++] = b64_alphabet[in[i] >> 2];
        out[n++] = b64_alphabet[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[n++] = b64_alphabet[v >> 10];
        out[n++] = b64_alphabet[(v >> 4) & 63];
        out[n++] = b64_alphabet[(v & 15) << 2];
    }
    return n;
}

static void init_once(void)
{
    char err[256];
    ASSERT(jwks_parse(fixed_jwks, strlen(fixed_jwks), &fixed_set, err, sizeof(err)) == 0);
    ASSERT(jwks_count(fixed_set) == 3);

    gnutls_pubkey_t pub;
    gnutls_datum_t x = {NULL, 0};
    gnutls_ecc_curve_t curve;
    ASSERT(gnutls_privkey_init(&signer) == 0);
    ASSERT(gnutls_privkey_generate(signer, GNUTLS_PK_EDDSA_ED25519,
                                   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0) == 0);
    ASSERT(gnutls_pubkey_init(&pub) == 0);
    ASSERT(gnutls_pubkey_import_privkey(pub, signer, 0, 0) == 0);
    ASSERT(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0) == 0 && x.size == 32);
    char xb[64];
    size_t xn = b64url_encode(x.data, x.size, xb);
    char doc[256];
    int n =
        snprintf(doc, sizeof(doc),
                 "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"fz\",\"x\":\"%.*s\"}]}",
                 (int)xn, xb);
    ASSERT(n > 0 && (size_t)n < sizeof(doc));
    ASSERT(jwks_parse(doc, (size_t)n, &signer_set, err, sizeof(err)) == 0);
    gnutls_free(x.data);
    gnutls_pubkey_deinit(pub);
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void check_set(const struct jwks *set)
{
    size_t count = jwks_count(set);
    ASSERT(count >= 1 && count <= LIMIT_JWKS_KEYS_MAX);
    ASSERT(count + jwks_skipped_count(set) <= LIMIT_JWKS_KEYS_MAX);
    for (size_t i = 0; i < count; i++) {
        const struct jwks_key *k = jwks_key_at(set, i);
        const char *kid = jwks_key_kid(k);
        size_t len = strlen(kid);
        ASSERT(len >= 1 && len <= LIMIT_JWT_KID_LEN_MAX);
        for (size_t j = 0; j < len; j++) {
            ASSERT(kid[j] >= 0x20 && kid[j] <= 0x7e);
        }
        ASSERT(jwks_find(set, kid, len) == k);
        enum jwks_alg alg = jwks_key_alg(k);
        ASSERT(alg == JWKS_ALG_EDDSA || alg == JWKS_ALG_ES256 || alg == JWKS_ALG_RS256);
    }
}

static void check_verify(const struct jwks *set, const char *token, size_t len)
{
    struct jwt_claims c;
    enum jwt_result r = jwt_verify(set, token, len, &policy, &c);
    ASSERT((size_t)r < JWT_RESULT_COUNT);
    ASSERT(jwt_result_reason(r)[0] != '\0');
    ASSERT(terminated(c.kid, sizeof(c.kid)) && terminated(c.alg, sizeof(c.alg)));
    if (r != JWT_OK) {
        ASSERT(c.sub[0] == '\0' && c.iss[0] == '\0' && c.scope[0] == '\0' && c.roles_count == 0);
        ASSERT(c.exp == 0);
        if (r == JWT_TOO_LARGE) {
            ASSERT(len > LIMIT_JWT_BYTES_MAX);
        }
        return;
    }
    ASSERT(len <= LIMIT_JWT_BYTES_MAX);
    ASSERT(terminated(c.sub, sizeof(c.sub)) && c.sub[0] != '\0');
    ASSERT(terminated(c.iss, sizeof(c.iss)) && strcmp(c.iss, ISSUER) == 0);
    ASSERT(terminated(c.jti, sizeof(c.jti)) && terminated(c.scope, sizeof(c.scope)));
    ASSERT(c.roles_count <= LIMIT_JWT_ROLES_MAX);
    for (size_t i = 0; i < c.roles_count; i++) {
        ASSERT(terminated(c.roles[i], sizeof(c.roles[i])) && c.roles[i][0] != '\0');
    }
    ASSERT(c.exp > policy.now_unix_s - (int64_t)policy.clock_skew_seconds);
    ASSERT(!c.has_nbf || c.nbf <= policy.now_unix_s + (int64_t)policy.clock_skew_seconds);
    const struct jwks_key *k = jwks_find(set, c.kid, strlen(c.kid));
    ASSERT(k != NULL && strcmp(jwks_alg_name(jwks_key_alg(k)), c.alg) == 0);
    /* Same answer again; and a looser policy cannot refuse what a stricter one accepted. */
    struct jwt_claims again;
    ASSERT(jwt_verify(set, token, len, &policy, &again) == JWT_OK);
    ASSERT(strcmp(again.sub, c.sub) == 0 && again.exp == c.exp);
    ASSERT(jwt_verify(set, token, len, &open_policy, &again) == JWT_OK ||
           c.exp <= open_policy.now_unix_s || (c.has_nbf && c.nbf > open_policy.now_unix_s));
}

/* Signs the first two parts of token with the start-up key and verifies the result. */
static void check_resigned(const char *token, size_t len)
{
    const char *dot = memchr(token, '.', len);
    if (dot == NULL) {
        return;
    }
    size_t rest = len - (size_t)(dot - token) - 1;
    const char *dot2 = memchr(dot + 1, '.', rest);
    size_t signed_len = dot2 != NULL ? (size_t)(dot2 - token) : len;
    if (signed_len > LIMIT_JWT_BYTES_MAX) {
        return;
    }
    gnutls_datum_t d = {(unsigned char *)token, (unsigned)signed_len};
    gnutls_datum_t sig = {NULL, 0};
    ASSERT(gnutls_privkey_sign_data2(signer, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig) == 0);
    ASSERT(sig.size == 64);
    memcpy(resigned, token, signed_len);
    resigned[signed_len] = '.';
    size_t n = signed_len + 1 + b64url_encode(sig.data, sig.size, resigned + signed_len + 1);
    gnutls_free(sig.data);
    check_verify(signer_set, resigned, n);
}

static void check_base64url(const char *s, size_t len)
{
    static uint8_t raw[LIMIT_JWT_PART_BYTES_MAX];
    static char back[LIMIT_JWT_BYTES_MAX];
    size_t n = 0;
    if (len > LIMIT_JWT_BYTES_MAX || jwks_base64url_decode(s, len, raw, sizeof(raw), &n) != 0) {
        return;
    }
    ASSERT(b64url_encode(raw, n, back) == len && memcmp(back, s, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fixed_set == NULL) {
        init_once();
    }
    const char *text = (const char *)data;
    size_t split = size;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\0' || data[i] == '\n') {
            split = i;
            break;
        }
    }
    const char *jwks_text = text;
    size_t jwks_len = split;
    const char *token = split < size ? text + split + 1 : text;
    size_t token_len = split < size ? size - split - 1 : size;

    char err[256];
    memset(err, 'z', sizeof(err));
    struct jwks *set = (struct jwks *)&set;
    int rc = jwks_parse(jwks_len > 0 ? jwks_text : NULL, jwks_len, &set, err, sizeof(err));
    if (rc == 0) {
        ASSERT(set != NULL);
        check_set(set);
        check_verify(set, token, token_len);
        jwks_free(set);
    } else {
        ASSERT(set == NULL);
        ASSERT(rc == -EINVAL || rc == -ENOMEM);
        ASSERT(terminated(err, sizeof(err)) && err[0] != '\0' && strchr(err, '\n') == NULL);
    }
    check_verify(fixed_set, token, token_len);
    check_resigned(token, token_len);
    check_base64url(token, token_len);
    return 0;
}
