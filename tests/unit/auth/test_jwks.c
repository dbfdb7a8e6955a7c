/*
 * test_jwks.c — loading a JWK Set: the keys ledgerd keeps, the ones it skips, every refusal
 * with the key it names, strict base64url, and the bounds on the document.
 *
 * The keys are fixed public keys (their private halves were discarded); signatures made with
 * generated keys are tested in test_jwt.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/jwks.h"

#define ED_X "sZge9ohL_Lpiy6C3wprzmgEURzbnsupHhCA_ij1aClM"
#define EC_X "fY1rfNmPVbr23DwM9byyQO45Cy678Dl5HubBv0zDkt4"
#define EC_Y "AI6lr0ea-gH6kFRoZjo_WMLXo5nIL73aXKuavECAOSk" /* starts with a zero byte */
#define RSA_N                                                                                      \
    "27_Q5CPCPdcQ3aZl7qI5fuu5hDrjje1k60yix7h3V8I0Z8veCKzyibxhchTyP5O_E7lxRxVt-vCzItKsuwF9kJLJL09h" \
    "L7BM1pyyhN7qg9yrXkPqz-TgnUmlRTeyQ2p9vR71QWULxR5jfTj0mw84yZaEumlOrY6qzvm37sVXqX6meD2IW3LsBYKR" \
    "Btmmc9nNwW5GtBB2zx6Vfz8KY7nG97O_5ca4E_OlUbAfmmW4NU12tQlXDO2OBMhO2KQQ84y8RWBPqOA_Prz4IBy0_qae" \
    "8qHOENfmcg9tB894Wg00N2KNAyKnLJnFV6sbVe3FNW2B077Q3i1NJfN6EeWtEGKO7Q"
#define RSA_N_LEADING_ZERO                                                                         \
    "ANu_0OQjwj3XEN2mZe6iOX7ruYQ6443tZOtMose4d1fCNGfL3gis8om8YXIU8j-TvxO5cUcVbfrwsyLSrLsBfZCSyS9P" \
    "YS-wTNacsoTe6oPcq15D6s_k4J1JpUU3skNqfb0e9UFlC8UeY3049JsPOMmWhLppTq2Oqs75t-7FV6l-png9iFty7AWC" \
    "kQbZpnPZzcFuRrQQds8elX8_CmO5xvezv-XGuBPzpVGwH5pluDVNdrUJVwztjgTITtikEPOMvEVgT6jgPz68-CActP6m" \
    "nvKhzhDX5nIPbQfPeFoNNDdijQMipyyZxVerG1XtxTVtgdO-0N4tTSXzehHlrRBiju0"
#define RSA1024_N                                                                                  \
    "okKWrYUStnHIy4TcrGu-r6Xj8_VGolligOfAwUBUO7Hg4xf4Uky898vjL9k2U0rZf7QCOLIs0Oegf_Z3_s9MBUXIxwXg" \
    "Qj9b8IBNPg2Jag9qwkxStOdfJ_EeUpakM5zOe5g_nVLFPfAAHyHx4gk8JQQEdoNmzcii56tkPGLS6LM"

#define ED_JWK(kid) "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"" kid "\",\"x\":\"" ED_X "\"}"
#define EC_JWK(kid)                                                                                \
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"" kid "\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y "\"}"
#define RSA_JWK(kid) "{\"kty\":\"RSA\",\"kid\":\"" kid "\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\"}"

static char err[512];

static int parse(const char *json, struct jwks **out)
{
    memset(err, 0, sizeof(err));
    return jwks_parse(json, strlen(json), out, err, sizeof(err));
}

/* Parses one key wrapped in a set; expects a refusal whose reason contains want. */
static void refuse(const char *key_json, const char *want)
{
    char doc[4096];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", key_json);
    struct jwks *set = (struct jwks *)&set;
    int rc = parse(doc, &set);
    if (rc != -EINVAL || set != NULL) {
        fail_msg("accepted (%d): %s", rc, key_json);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("reason \"%s\" lacks \"%s\" for %s", err, want, key_json);
    }
    assert_null(strchr(err, '\n'));
}

/* Parses one key wrapped in a set next to a valid key; expects it loaded or skipped. */
static void accept(const char *key_json, size_t count, size_t skipped)
{
    char doc[4096];
    snprintf(doc, sizeof(doc), "{\"keys\":[" ED_JWK("other") ",%s]}", key_json);
    struct jwks *set = NULL;
    if (parse(doc, &set) != 0) {
        fail_msg("refused: %s: %s", key_json, err);
    }
    assert_int_equal(jwks_count(set), count);
    assert_int_equal(jwks_skipped_count(set), skipped);
    jwks_free(set);
}

static void test_base64url(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t n = 99;
    assert_int_equal(jwks_base64url_decode("", 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(jwks_base64url_decode("Zg", 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(out, "f", 1);
    assert_int_equal(jwks_base64url_decode("Zm8", 3, out, sizeof(out), &n), 0);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(jwks_base64url_decode("Zm9vYmFy", 8, out, sizeof(out), &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(jwks_base64url_decode("-_-_", 4, out, sizeof(out), &n), 0);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);

    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {"Zg==", 4},  {"Zg=", 3}, {"Z", 1},    {"Zm9vY", 5},  {"+/+/", 4}, {"Zm 9", 4},
        {"Zm9\n", 4}, {"Zh", 2},  {"Zm9=", 4}, {"Zm9v\0", 5}, {"Zm-", 3}, /* "f" and stray bits in
                                                                             the last character */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 99;
        if (jwks_base64url_decode(bad[i].s, bad[i].len, out, sizeof(out), &n) != -EINVAL) {
            fail_msg("accepted: \"%s\"", bad[i].s);
        }
        assert_int_equal(n, 0);
    }
    assert_int_equal(jwks_base64url_decode("Zm9vYmFyYg", 10, out, 6, &n), -ENOSPC);
    assert_int_equal(jwks_base64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
}

static void test_valid_set(void **state)
{
    (void)state;
    struct jwks *set = NULL;
    const char *doc = "{\"keys\":[" ED_JWK("a") "," EC_JWK("b") "," RSA_JWK("c") "],\"x\":1}";
    assert_int_equal(parse(doc, &set), 0);
    assert_string_equal(err, "");
    assert_int_equal(jwks_count(set), 3);
    assert_int_equal(jwks_skipped_count(set), 0);
    assert_int_equal(jwks_key_alg(jwks_find(set, "a", 1)), JWKS_ALG_EDDSA);
    assert_int_equal(jwks_key_alg(jwks_find(set, "b", 1)), JWKS_ALG_ES256);
    assert_int_equal(jwks_key_alg(jwks_find(set, "c", 1)), JWKS_ALG_RS256);
    assert_string_equal(jwks_key_kid(jwks_key_at(set, 1)), "b");
    assert_null(jwks_find(set, "d", 1));
    assert_null(jwks_find(set, "", 0));
    assert_null(jwks_find(set, "ab", 2));
    assert_non_null(jwks_find(set, "ab", 1)); /* only kid_len bytes count */
    assert_string_equal(jwks_alg_name(JWKS_ALG_EDDSA), "EdDSA");
    assert_string_equal(jwks_alg_name(JWKS_ALG_ES256), "ES256");
    assert_string_equal(jwks_alg_name(JWKS_ALG_RS256), "RS256");
    /* No signature verifies with garbage, and wrong lengths are refused before GnuTLS. */
    uint8_t sig[256] = {0};
    for (size_t i = 0; i < 3; i++) {
        const struct jwks_key *k = jwks_key_at(set, i);
        assert_false(jwks_key_verify(k, (const uint8_t *)"x", 1, sig, 64));
        assert_false(jwks_key_verify(k, (const uint8_t *)"x", 1, sig, 256));
        assert_false(jwks_key_verify(k, (const uint8_t *)"x", 1, sig, 0));
    }
    jwks_free(set);
    jwks_free(NULL);

    /* "alg" agreeing with the key, "use":"sig", key_ops with verify, extra members. */
    accept("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" ED_X
           "\",\"alg\":\"EdDSA\",\"use\":\"sig\",\"key_ops\":[\"sign\",\"verify\"],"
           "\"x5t#S256\":\"abc\",\"ext\":true}",
           2, 0);
    accept("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y
           "\",\"alg\":\"ES256\"}",
           2, 0);
    accept("{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"alg\":\"RS256\"}",
           2, 0);
    accept("{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"" RSA_N "\",\"e\":\"Aw\"}", 2, 0); /* e = 3 */
    /* The largest exponent: 4 bytes. */
    accept("{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"" RSA_N "\",\"e\":\"AQABAQ\"}", 2, 0);
    /* Any printable kid of up to LIMIT_JWT_KID_LEN_MAX characters. */
    char kid[LIMIT_JWT_KID_LEN_MAX + 2];
    memset(kid, 'k', sizeof(kid));
    kid[LIMIT_JWT_KID_LEN_MAX] = '\0';
    char key[1024];
    snprintf(key, sizeof(key),
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"" ED_X "\"}", kid);
    accept(key, 2, 0);
    accept(ED_JWK(" ~!@#$%^&*()[]{}<>?/|\\\\;:'\\\"`+=,."), 2, 0);
}

static void test_skipped(void **state)
{
    (void)state;
    accept("{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"use\":\"enc\"}", 1,
           1);
    accept("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"k\",\"x\":\"AA\",\"use\":\"enc\"}", 1, 1);
    accept("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" ED_X
           "\",\"use\":\"other\"}",
           1, 1);
    accept("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" ED_X
           "\",\"key_ops\":[\"sign\"]}",
           1, 1);
    accept("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" ED_X "\",\"key_ops\":[]}",
           1, 1);
    accept("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"" ED_X
           "\",\"use\":\"enc\",\"key_ops\":[\"verify\"]}",
           1, 1);
    /* A skipped key may share its kid with a verification key. */
    accept("{\"kty\":\"RSA\",\"kid\":\"other\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"use\":\"enc\"}",
           1, 1);
    /* A set of only skipped keys verifies nothing: refused. */
    struct jwks *set = NULL;
    assert_int_equal(parse("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"x\",\"e\":\"AQAB\","
                           "\"use\":\"enc\"}]}",
                           &set),
                     -EINVAL);
    assert_null(set);
    assert_non_null(strstr(err, "no signature verification key (1 skipped"));
    assert_int_equal(parse("{\"keys\":[]}", &set), -EINVAL);
}

static void test_private_keys(void **state)
{
    (void)state;
    static const char *const members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        char key[1024];
        char want[128];
        snprintf(key, sizeof(key),
                 "{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"" RSA_N
                 "\",\"e\":\"AQAB\",\"%s\":\"AQAB\"}",
                 members[i]);
        snprintf(want, sizeof(want), "key 0 (kid \"r1\"): carries the private parameter \"%s\"",
                 members[i]);
        refuse(key, want);
    }
    /* Even on a key that would be skipped. */
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e\",\"x\":\"" ED_X
           "\",\"d\":\"AQAB\",\"use\":\"enc\"}",
           "private parameter \"d\"");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y
           "\",\"d\":null}",
           "leaked");
    /* The index names the key when it is not the first. */
    struct jwks *set = NULL;
    assert_int_equal(parse("{\"keys\":[" ED_JWK("a") "," EC_JWK(
                               "b") ",{\"kty\":\"OKP\","
                                    "\"crv\":\"Ed25519\",\"kid\":\"c\",\"x\":\"" ED_X
                                    "\",\"d\":\"AA\"}]}",
                           &set),
                     -EINVAL);
    assert_non_null(strstr(err, "key 2 (kid \"c\"): carries the private parameter \"d\""));
}

static void test_symmetric_and_unknown(void **state)
{
    (void)state;
    refuse("{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}", "key 0 (kid \"h\"): a symmetric");
    refuse("{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\",\"use\":\"enc\"}", "symmetric");
    refuse("{\"kty\":\"DSA\",\"kid\":\"u\"}", "kty \"DSA\" is not supported");
    refuse("{\"kty\":\"ec\",\"kid\":\"u\",\"crv\":\"P-256\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y "\"}",
           "kty \"ec\"");
    refuse("{\"kty\":\"\",\"kid\":\"u\"}", "not supported");
    refuse("{\"kty\":1,\"kid\":\"u\"}", "\"kty\" is missing");
    refuse("{\"kid\":\"u\"}", "\"kty\" is missing");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"kid\":\"u\",\"x\":\"AA\"}",
           "needs crv \"Ed25519\"");
    refuse("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"u\",\"x\":\"" ED_X "\"}",
           "not \"X25519\"");
    refuse("{\"kty\":\"OKP\",\"kid\":\"u\",\"x\":\"" ED_X "\"}", "needs crv");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"u\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y "\"}",
           "needs crv \"P-256\"");
    refuse("{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"kid\":\"u\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y
           "\"}",
           "P-256");
}

static void test_alg_mismatch(void **state)
{
    (void)state;
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"" ED_X
           "\",\"alg\":\"ES256\"}",
           "\"alg\" is \"ES256\" but this key serves \"EdDSA\" only");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_X "\",\"y\":\"" EC_Y
           "\",\"alg\":\"ES384\"}",
           "serves \"ES256\"");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"alg\":\"PS256\"}",
           "\"PS256\"");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"alg\":\"HS256\"}",
           "\"HS256\"");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"alg\":\"rs256\"}",
           "\"rs256\"");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"alg\":256}",
           "\"alg\" is not a string");
}

static void test_kid(void **state)
{
    (void)state;
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" ED_X "\"}", "key 0: \"kid\" is missing");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"\",\"x\":\"" ED_X "\"}", "\"kid\"");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":7,\"x\":\"" ED_X "\"}", "\"kid\"");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\\nb\",\"x\":\"" ED_X "\"}", "\"kid\"");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"\\u00e9\",\"x\":\"" ED_X "\"}",
           "\"kid\"");
    char kid[LIMIT_JWT_KID_LEN_MAX + 2];
    memset(kid, 'k', sizeof(kid));
    kid[LIMIT_JWT_KID_LEN_MAX + 1] = '\0';
    char key[1024];
    snprintf(key, sizeof(key),
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"" ED_X "\"}", kid);
    refuse(key, "printable");

    /* A kid used twice by verification keys, even of different types. */
    struct jwks *set = NULL;
    assert_int_equal(parse("{\"keys\":[" ED_JWK("a") "," EC_JWK("b") "," RSA_JWK("b") "]}", &set),
                     -EINVAL);
    assert_null(set);
    assert_string_equal(err, "key 2 (kid \"b\"): key 1 has the same kid: a token could not say "
                             "which key it means");
    assert_int_equal(parse("{\"keys\":[" ED_JWK("a") "," ED_JWK("a") "]}", &set), -EINVAL);
    /* kids are compared exactly. */
    assert_int_equal(parse("{\"keys\":[" ED_JWK("a") "," ED_JWK("A") "," ED_JWK("a ") "]}", &set),
                     0);
    assert_int_equal(jwks_count(set), 3);
    jwks_free(set);
}

static void test_values(void **state)
{
    (void)state;
    /* Base64url: padding, the standard alphabet, whitespace, stray bits, wrong sizes. */
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"" ED_X "=\"}",
           "key 0 (kid \"a\"): \"x\" is not base64url without padding");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"sZge9ohL/Lpiy6C3wprzmgEURzbn"
           "supHhCA_ij1aClM\"}",
           "base64url");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"sZge9ohL+Lpiy6C3wprzmgEURzbn"
           "supHhCA_ij1aClM\"}",
           "base64url");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"sZge9ohL_Lpiy6C3wprzmgEURzbn"
           "supHhCA_ij1aClN\"}",
           "base64url"); /* the last character carries a stray bit */
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\" " ED_X "\"}", "base64url");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"" ED_X "AAAA\"}", "longer");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":\"AAAA\"}",
           "\"x\" is 3 bytes, Ed25519 needs 32");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\"}", "\"x\" is missing");
    refuse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":32}", "not a string");

    /* P-256: coordinates of exactly 32 bytes, on the curve. */
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_X
           "\",\"y\":\"jqWvR5r6AfqQVGhmOj9Ywtejmcgvvdpcq5q8QIA5KQ\"}",
           "must be 32 bytes each, not 32 and 31");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\""
           "AH2Na3zZj1W69tw8DPW8skDuOQsuu_A5eR7mwb9Mw5Le\",\"y\":\"" EC_Y "\"}",
           "longer than 32 bytes");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_X
           "\",\"y\":\"AI6lr0ea-gH6kFRoZjo_WMLXo5nIL73aXKuavECAOSg\"}",
           "key 0 (kid \"a\"): (x, y) is not a point on P-256");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_Y "\",\"y\":\"" EC_X "\"}",
           "not a point on P-256");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\","
           "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
           "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
           "not a point on P-256");
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\","
           "\"x\":\"_____wAAAAEAAAAAAAAAAAAAAAD_______________8\",\"y\":\"" EC_Y "\"}",
           "not a point on P-256"); /* x = p */
    refuse("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" EC_X "\"}",
           "\"y\" is missing");

    /* RSA: 2048 bits at least, minimal encoding, a sane exponent. */
    refuse("{\"kty\":\"RSA\",\"kid\":\"small\",\"n\":\"" RSA1024_N "\",\"e\":\"AQAB\"}",
           "key 0 (kid \"small\"): the RSA modulus has 1024 bits, fewer than 2048");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N_LEADING_ZERO "\",\"e\":\"AQAB\"}",
           "leading zero");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AAEAAQ\"}", "leading zero");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"\"}", "leading zero");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQ\"}", "odd exponent");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAA\"}", "odd exponent");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQABAQAB\"}",
           "\"e\" is longer than 4 bytes");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\"}", "\"e\" is missing");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"e\":\"AQAB\"}", "\"n\" is missing");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"use\":1}",
           "\"use\" is not a string");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N
           "\",\"e\":\"AQAB\",\"key_ops\":\"verify\"}",
           "\"key_ops\" is not an array");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N "\",\"e\":\"AQAB\",\"key_ops\":[1]}",
           "non-string");
    refuse("{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"" RSA_N
           "\",\"e\":\"AQAB\",\"key_ops\":[\"verify\",\"verify\"]}",
           "\"key_ops\" lists \"verify\" twice");
    /* An even modulus is no RSA key. */
    char n[sizeof(RSA_N)];
    memcpy(n, RSA_N, sizeof(n));
    n[sizeof(n) - 2] = 'A'; /* ...7Q -> ...7A: the low bit of the last byte cleared */
    char key[1024];
    snprintf(key, sizeof(key), "{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}", n);
    refuse(key, "odd modulus");
    /* 8192 bits is the most: one byte more does not fit. */
    static char big[2048];
    memset(big, '_', 1366);
    memcpy(big + 1366, "8", 2);
    static char bigkey[4096];
    snprintf(bigkey, sizeof(bigkey), "{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\",\"e\":\"AQAB\"}",
             big);
    refuse(bigkey, "\"n\" is longer than 1024 bytes");
}

static void test_document(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "null",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":\"\"}",
        "{\"keys\":[1]}",
        "{\"keys\":[[]]}",
        "{\"keys\":[" ED_JWK("a") "]} x",
        "{\"keys\":[],\"keys\":[" ED_JWK("a") "]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"a\",\"x\":"
        "\"" ED_X "\"}]}",
        "{\"keys\":[" ED_JWK("a") "],\"x\":{\"y\":1,\"y\":2}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jwks *set = NULL;
        if (parse(bad[i], &set) != -EINVAL || set != NULL || err[0] == '\0') {
            fail_msg("accepted: %s", bad[i]);
        }
    }
    struct jwks *set = NULL;
    assert_int_equal(parse("{\"keys\":[7]}", &set), -EINVAL);
    assert_string_equal(err, "key 0: is not a JSON object");
    assert_int_equal(parse("{\"keys\":[}", &set), -EINVAL);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(jwks_parse(NULL, 0, &set, err, sizeof(err)), -EINVAL);
    /* err may be NULL, or short: always terminated, never overrun. */
    assert_int_equal(jwks_parse("{}", 2, &set, NULL, 0), -EINVAL);
    char small[12];
    memset(small, 'z', sizeof(small));
    assert_int_equal(jwks_parse("{\"keys\":[" ED_JWK("abcdef") ",7]}",
                                strlen("{\"keys\":[" ED_JWK("abcdef") ",7]}"), &set, small, 8),
                     -EINVAL);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(small[8], 'z');
    /* Only len bytes are read. */
    const char *doc = "{\"keys\":[" ED_JWK("a") "]}garbage";
    assert_int_equal(jwks_parse(doc, strlen(doc) - 7, &set, err, sizeof(err)), 0);
    jwks_free(set);
}

static void test_limits(void **state)
{
    (void)state;
    /* LIMIT_JWKS_KEYS_MAX keys load; one more is refused. */
    static char doc[LIMIT_JWKS_BYTES_MAX + 2];
    size_t n = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[");
    for (int i = 0; i < LIMIT_JWKS_KEYS_MAX; i++) {
        n += (size_t)snprintf(doc + n, sizeof(doc) - n,
                              "%s{\"kty\":\"RSA\",\"kid\":\"k%d\",\"n\":\"" RSA_N
                              "\",\"e\":\"AQAB\"}",
                              i ? "," : "", i);
    }
    snprintf(doc + n, sizeof(doc) - n, "]}");
    struct jwks *set = NULL;
    assert_int_equal(parse(doc, &set), 0);
    assert_int_equal(jwks_count(set), LIMIT_JWKS_KEYS_MAX);
    assert_non_null(jwks_find(set, "k31", 3));
    jwks_free(set);
    snprintf(doc + n, sizeof(doc) - n, "," ED_JWK("one-more") "]}");
    assert_int_equal(parse(doc, &set), -EINVAL);
    assert_non_null(strstr(err, "more than 32"));
    /* Skipped keys count against the limit too: it bounds the work of loading. */
    snprintf(doc + n, sizeof(doc) - n,
             ",{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"x\",\"use\":\"enc\"}]}");
    assert_int_equal(parse(doc, &set), -EINVAL);

    /* LIMIT_JWKS_BYTES_MAX bytes at most, whitespace included. */
    n = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[" ED_JWK("a") "]}");
    memset(doc + n, ' ', LIMIT_JWKS_BYTES_MAX - n);
    assert_int_equal(jwks_parse(doc, LIMIT_JWKS_BYTES_MAX, &set, err, sizeof(err)), 0);
    jwks_free(set);
    doc[LIMIT_JWKS_BYTES_MAX] = ' ';
    assert_int_equal(jwks_parse(doc, LIMIT_JWKS_BYTES_MAX + 1, &set, err, sizeof(err)), -EINVAL);
    assert_null(set);
    assert_non_null(strstr(err, "more than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_valid_set),
        cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_private_keys),
        cmocka_unit_test(test_symmetric_and_unknown),
        cmocka_unit_test(test_alg_mismatch),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_document),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
