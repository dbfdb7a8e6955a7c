/*
 * test_apikey.c — API key generation, strict parsing, keyed hashing and constant-time matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "core/limits.h"

/* 32 bytes of key material. */
#define TEST_KEY "ledgerd-test-hashing-key-32bytes"
#define TEST_KEY2 "another-hashing-key-of-32-bytes!"

/* The secret bytes 0x00..0x1f, and HMAC-SHA256(TEST_KEY, those bytes) computed independently. */
#define SEQ_TOKEN "ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define SEQ_HMAC_HEX "88799479db5289f0fc13455643b689c65c6ec8aeffe087a025b9f692b778cf53"
/* The secret bytes 0xff x 32. */
#define FF_TOKEN "ldk_ffffffffffffffff___________________________________________8"
#define FF_HMAC_HEX "a28337ecfef58684dc9f5948e852f9b0a2c34b1a83ea86ff52057cb4aae2cb63"

static unsigned hex_digit(char c)
{
    const char *digits = "0123456789abcdef";
    const char *at = strchr(digits, c);
    assert_true(c != '\0' && at != NULL);
    return (unsigned)(at - digits);
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
    }
}

static void hasher(struct apikey_hasher *h, const char *key)
{
    char err[128];
    assert_int_equal(apikey_hasher_init(h, (const uint8_t *)key, strlen(key), err, sizeof(err)), 0);
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static void test_known_vectors(void **state)
{
    (void)state;
    struct apikey_hasher h;
    hasher(&h, TEST_KEY);
    struct apikey_parsed p;
    uint8_t want[APIKEY_HASH_BYTES];

    assert_int_equal(apikey_parse(SEQ_TOKEN, strlen(SEQ_TOKEN), &p), 0);
    assert_string_equal(p.id, "0123456789abcdef");
    for (size_t i = 0; i < APIKEY_SECRET_BYTES; i++) {
        assert_int_equal(p.secret[i], i);
    }
    unhex(SEQ_HMAC_HEX, want, sizeof(want));
    assert_true(apikey_matches(&h, &p, want));
    apikey_parsed_clear(&p);
    assert_true(all_zero(&p, sizeof(p)));

    assert_int_equal(apikey_parse(FF_TOKEN, strlen(FF_TOKEN), &p), 0);
    for (size_t i = 0; i < APIKEY_SECRET_BYTES; i++) {
        assert_int_equal(p.secret[i], 0xff);
    }
    unhex(FF_HMAC_HEX, want, sizeof(want));
    assert_true(apikey_matches(&h, &p, want));
    apikey_hasher_release(&h);
    assert_true(all_zero(&h, sizeof(h)));
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void test_generate_round_trip(void **state)
{
    (void)state;
    struct apikey_hasher h;
    hasher(&h, TEST_KEY);
    char prev_id[APIKEY_ID_LEN + 1] = "";
    char prev_key[APIKEY_TOKEN_LEN + 1] = "";
    for (int round = 0; round < 200; round++) {
        struct apikey_new k;
        assert_int_equal(apikey_generate(&h, &k), 0);
        assert_int_equal(strlen(k.key), APIKEY_TOKEN_LEN);
        assert_int_equal(strlen(k.id), APIKEY_ID_LEN);
        assert_memory_equal(k.key, "ldk_", 4);
        assert_memory_equal(k.key + 4, k.id, APIKEY_ID_LEN);
        assert_int_equal(k.key[20], '_');
        for (size_t i = 0; i < APIKEY_ID_LEN; i++) {
            assert_true((k.id[i] >= '0' && k.id[i] <= '9') || (k.id[i] >= 'a' && k.id[i] <= 'f'));
        }
        for (size_t i = 21; i < APIKEY_TOKEN_LEN; i++) {
            assert_true(is_b64url(k.key[i]));
        }
        assert_string_not_equal(k.id, prev_id);
        assert_string_not_equal(k.key, prev_key);
        memcpy(prev_id, k.id, sizeof(prev_id));
        memcpy(prev_key, k.key, sizeof(prev_key));

        struct apikey_parsed p;
        assert_int_equal(apikey_parse(k.key, strlen(k.key), &p), 0);
        assert_string_equal(p.id, k.id);
        assert_true(apikey_matches(&h, &p, k.hash));
        /* The stored hash is HMAC-SHA256 of the decoded secret under the hashing key. */
        uint8_t direct[APIKEY_HASH_BYTES];
        assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, TEST_KEY, strlen(TEST_KEY), p.secret,
                                          APIKEY_SECRET_BYTES, direct),
                         0);
        assert_memory_equal(direct, k.hash, APIKEY_HASH_BYTES);
        apikey_parsed_clear(&p);
        apikey_new_clear(&k);
        assert_true(all_zero(&k, sizeof(k)));
    }
    apikey_hasher_release(&h);
}

static void expect_refused(const char *token, size_t len)
{
    struct apikey_parsed p;
    memset(&p, 0xaa, sizeof(p));
    if (apikey_parse(token, len, &p) != -EINVAL) {
        fail_msg("accepted: \"%.*s\" (%zu bytes)", (int)len, token, len);
    }
    assert_true(all_zero(&p, sizeof(p)));
}

static void refuse(const char *token)
{
    expect_refused(token, strlen(token));
}

static void test_malformed_shapes_refused(void **state)
{
    (void)state;
    const char *valid = SEQ_TOKEN;
    struct apikey_parsed p;
    assert_int_equal(apikey_parse(valid, strlen(valid), &p), 0);

    refuse("");
    refuse("ldk_");
    refuse("ldk__");
    /* Wrong prefix. */
    refuse("LDK_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldx_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk-0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("xldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    /* Short and long id (the total length kept at 64 in the second pair). */
    refuse("ldk_0123456789abcde_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdef0_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcde_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A");
    refuse("ldk_0123456789abcdef0_AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    /* Short and long secret. */
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A");
    refuse("ldk_0123456789abcdef_");
    /* Bad alphabet: upper-case or non-hex id, standard base64, whitespace. */
    refuse("ldk_0123456789ABCDEF_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdeg_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH+8");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH/8");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw Hh8");
    refuse(" ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n");
    /* Padding. */
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=");
    /* Separator missing, doubled, or replaced. */
    refuse("ldk_0123456789abcdefAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdef__AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk_0123456789abcdef-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    refuse("ldk__0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    /* A second spelling of the same secret: the last character's unused bits set. */
    refuse("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9");
    /* A NUL inside: the length says 64, the bytes are not a key. */
    expect_refused("ldk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODx\0REhMUFRYXGBkaGxwdHh8", 64);
    /* A JWT is not an API key. */
    refuse("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln");
}

/* Every byte value at every position of a valid token: accepted exactly when the format allows
 * that byte there. */
static void test_every_single_byte_change(void **state)
{
    (void)state;
    char t[APIKEY_TOKEN_LEN];
    struct apikey_parsed p;
    for (size_t pos = 0; pos < APIKEY_TOKEN_LEN; pos++) {
        for (int b = 0; b < 256; b++) {
            memcpy(t, SEQ_TOKEN, APIKEY_TOKEN_LEN);
            char c = (char)b;
            t[pos] = c;
            bool want;
            if (pos < 4) {
                want = c == "ldk_"[pos];
            } else if (pos < 20) {
                want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            } else if (pos == 20) {
                want = c == '_';
            } else if (pos < 63) {
                want = is_b64url(c);
            } else {
                /* Last character: its value's two low bits must be 0. */
                const char *alpha =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                const char *at = b != 0 ? strchr(alpha, b) : NULL;
                want = at != NULL && ((at - alpha) & 3) == 0;
            }
            int rc = apikey_parse(t, sizeof(t), &p);
            if (rc != (want ? 0 : -EINVAL)) {
                fail_msg("position %zu byte 0x%02x: got %d", pos, b, rc);
            }
        }
    }
    /* Every length but 64 is refused. */
    char longer[200];
    memset(longer, 'A', sizeof(longer));
    memcpy(longer, SEQ_TOKEN, APIKEY_TOKEN_LEN);
    for (size_t len = 0; len < sizeof(longer); len++) {
        assert_int_equal(apikey_parse(longer, len, &p), len == APIKEY_TOKEN_LEN ? 0 : -EINVAL);
    }
}

static void test_wrong_secret_refused(void **state)
{
    (void)state;
    struct apikey_hasher h;
    hasher(&h, TEST_KEY);
    struct apikey_new k;
    struct apikey_new other;
    assert_int_equal(apikey_generate(&h, &k), 0);
    assert_int_equal(apikey_generate(&h, &other), 0);

    struct apikey_parsed p;
    assert_int_equal(apikey_parse(k.key, APIKEY_TOKEN_LEN, &p), 0);
    /* Another key's secret under this key's id. */
    char forged[APIKEY_TOKEN_LEN + 1];
    memcpy(forged, k.key, 21);
    memcpy(forged + 21, other.key + 21, APIKEY_SECRET_LEN + 1);
    struct apikey_parsed q;
    assert_int_equal(apikey_parse(forged, APIKEY_TOKEN_LEN, &q), 0);
    assert_string_equal(q.id, k.id);
    assert_false(apikey_matches(&h, &q, k.hash));
    /* Every single flipped bit of the secret. */
    for (size_t i = 0; i < APIKEY_SECRET_BYTES; i++) {
        for (int bit = 0; bit < 8; bit++) {
            q = p;
            q.secret[i] ^= (uint8_t)(1u << bit);
            assert_false(apikey_matches(&h, &q, k.hash));
        }
    }
    /* Every single flipped bit of the stored hash. */
    uint8_t stored[APIKEY_HASH_BYTES];
    for (size_t i = 0; i < APIKEY_HASH_BYTES; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(stored, k.hash, sizeof(stored));
            stored[i] ^= (uint8_t)(1u << bit);
            assert_false(apikey_matches(&h, &p, stored));
        }
    }
    assert_true(apikey_matches(&h, &p, k.hash));
    apikey_hasher_release(&h);
}

static void test_different_hashing_key_refuses(void **state)
{
    (void)state;
    struct apikey_hasher h;
    struct apikey_hasher h2;
    hasher(&h, TEST_KEY);
    hasher(&h2, TEST_KEY2);
    struct apikey_new k;
    assert_int_equal(apikey_generate(&h, &k), 0);
    struct apikey_parsed p;
    assert_int_equal(apikey_parse(k.key, APIKEY_TOKEN_LEN, &p), 0);
    assert_true(apikey_matches(&h, &p, k.hash));
    assert_false(apikey_matches(&h2, &p, k.hash));
    /* One byte more of key material is a different key too. */
    struct apikey_hasher h3;
    hasher(&h3, TEST_KEY "x");
    assert_false(apikey_matches(&h3, &p, k.hash));
    apikey_hasher_release(&h);
    apikey_hasher_release(&h2);
    apikey_hasher_release(&h3);
}

static void test_hasher_key_bounds(void **state)
{
    (void)state;
    uint8_t material[LIMIT_APIKEY_HASH_KEY_BYTES_MAX + 1];
    for (size_t i = 0; i < sizeof(material); i++) {
        material[i] = (uint8_t)(i * 7 + 1);
    }
    struct apikey_hasher h;
    char err[128];

    err[0] = '\0';
    assert_int_equal(apikey_hasher_init(&h, material, 0, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at least 32 bytes"));
    assert_int_equal(apikey_hasher_init(&h, material, 31, err, sizeof(err)), -EINVAL);
    assert_int_equal(apikey_hasher_init(&h, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(
        apikey_hasher_init(&h, material, LIMIT_APIKEY_HASH_KEY_BYTES_MAX + 1, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "at most"));

    /* Accepted lengths give exactly HMAC-SHA256 with that key, also past the 64-byte block
     * where the hasher reduces the key itself. */
    const size_t lens[] = {32, 63, 64, 65, 100, LIMIT_APIKEY_HASH_KEY_BYTES_MAX};
    struct apikey_parsed p;
    assert_int_equal(apikey_parse(SEQ_TOKEN, strlen(SEQ_TOKEN), &p), 0);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        assert_int_equal(apikey_hasher_init(&h, material, lens[i], err, sizeof(err)), 0);
        uint8_t want[APIKEY_HASH_BYTES];
        assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, material, lens[i], p.secret,
                                          APIKEY_SECRET_BYTES, want),
                         0);
        assert_true(apikey_matches(&h, &p, want));
        apikey_hasher_release(&h);
    }
}

static void test_equal_ct(void **state)
{
    (void)state;
    uint8_t a[APIKEY_HASH_BYTES];
    uint8_t b[APIKEY_HASH_BYTES];
    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = (uint8_t)(i * 37 + 11);
    }
    memcpy(b, a, sizeof(b));
    assert_true(apikey_equal_ct(a, b, sizeof(a)));
    assert_true(apikey_equal_ct(a, b, 0));
    /* Every position, every nonzero difference. */
    for (size_t i = 0; i < sizeof(a); i++) {
        for (int d = 1; d < 256; d++) {
            memcpy(b, a, sizeof(b));
            b[i] ^= (uint8_t)d;
            assert_false(apikey_equal_ct(a, b, sizeof(a)));
            assert_false(apikey_equal_ct(b, a, sizeof(a)));
            /* A prefix that ends before the difference is equal. */
            assert_true(apikey_equal_ct(a, b, i));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_generate_round_trip),
        cmocka_unit_test(test_malformed_shapes_refused),
        cmocka_unit_test(test_every_single_byte_change),
        cmocka_unit_test(test_wrong_secret_refused),
        cmocka_unit_test(test_different_hashing_key_refuses),
        cmocka_unit_test(test_hasher_key_bounds),
        cmocka_unit_test(test_equal_ct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
