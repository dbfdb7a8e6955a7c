/*
 * test_sha256.c — SHA-256 against the FIPS 180-4 example vectors, one-shot and streaming.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/sha256.h"

#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MSG448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define MSG448_HEX "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define MILLION_A_HEX "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static void check_digest(const char *msg, size_t len, const char *hex)
{
    uint8_t d[SHA256_BYTES];
    char out[2 * SHA256_BYTES + 1];
    assert_int_equal(sha256_digest(msg, len, d), 0);
    sha256_hex(d, out);
    assert_string_equal(out, hex);
}

static void test_vectors(void **state)
{
    (void)state;
    check_digest("abc", 3, ABC_HEX);
    check_digest("", 0, EMPTY_HEX);
    check_digest(NULL, 0, EMPTY_HEX);
    check_digest(MSG448, strlen(MSG448), MSG448_HEX);
}

static void test_streaming(void **state)
{
    (void)state;
    struct sha256 h;
    uint8_t d[SHA256_BYTES];
    char out[2 * SHA256_BYTES + 1];

    /* The 448-bit message fed one byte at a time. */
    assert_int_equal(sha256_init(&h), 0);
    for (size_t i = 0; i < strlen(MSG448); i++) {
        assert_int_equal(sha256_update(&h, &MSG448[i], 1), 0);
    }
    assert_int_equal(sha256_update(&h, NULL, 0), 0);
    assert_int_equal(sha256_final(&h, d), 0);
    assert_null(h.hd);
    sha256_hex(d, out);
    assert_string_equal(out, MSG448_HEX);

    /* One million 'a' (FIPS 180-4 example), in uneven chunks. */
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    assert_int_equal(sha256_init(&h), 0);
    size_t done = 0, chunk = 1;
    while (done < 1000000) {
        size_t n = 1000000 - done < chunk ? 1000000 - done : chunk;
        assert_int_equal(sha256_update(&h, a + done, n), 0);
        done += n;
        chunk = chunk * 3 + 1;
    }
    assert_int_equal(sha256_final(&h, d), 0);
    sha256_hex(d, out);
    assert_string_equal(out, MILLION_A_HEX);
    check_digest(a, 1000000, MILLION_A_HEX);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_streaming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
