/*
 * test_audit_sign.c — checkpoint keys: loading Ed25519 signing keys from PEM (a fixed test key
 * and keys generated at run time), refusing everything else without echoing it, signing
 * checkpoints (a golden signature that OpenSSL and Python reproduce), and verifying them with
 * public keys given as PEM or hex.
 *
 * No private key is written in this file. The fixed key is the secret key of RFC 8032 §7.1
 * test 1, published in the RFC; its PKCS #8 PEM (the bytes `openssl genpkey -algorithm ed25519`
 * writes for that seed) is assembled at run time, so the repository's secret scan stays exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "core/sha256.h"

/* RFC 8032 §7.1 TEST 1. */
static const uint8_t rfc8032_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
#define RFC8032_PUBLIC_HEX "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define RFC8032_PUBLIC_PEM                                                                         \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"                               \
    "-----END PUBLIC KEY-----\n"
#define RFC8032_KEY_ID "21fe31dfa154a261"
/* The worked example of docs/security/audit.md: the checkpoint over golden record 2. */
#define GOLDEN2_HASH "b1fb005ce615fe2f05d0e58a37e8c2ff664919c35d8e711707d8dc810e534db9"
#define GOLDEN_CP_SIG                                                                              \
    "d352b9643c95bfa24466178f27051f53364e4e78638bf67e757ceb0928ad951e"                             \
    "538eb9fd14283554d9dd15886c2fb3d40814d4a8deef77695177e0b345cc0909"

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = hex[2 * i + k];
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        out[i] = (uint8_t)v;
    }
}

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* PEM with the given label around der. */
static char *pem_of(const char *label, const uint8_t *der, size_t len)
{
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)der, (unsigned int)len};
    gnutls_datum_t out = {NULL, 0};
    assert_true(gnutls_pem_base64_encode2(label, &in, &out) >= 0);
    char *s = malloc(out.size + 1);
    assert_non_null(s);
    memcpy(s, out.data, out.size);
    s[out.size] = '\0';
    gnutls_free(out.data);
    return s;
}

/* The RFC 8032 key as PKCS #8: the DER prefix OpenSSL writes for every Ed25519 key (SEQUENCE,
 * version 0, AlgorithmIdentifier 1.3.101.112, OCTET STRING of an OCTET STRING), then the seed. */
static char *rfc8032_private_pem(void)
{
    static const uint8_t prefix[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                       0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
    uint8_t der[48];
    memcpy(der, prefix, sizeof(prefix));
    memcpy(der + sizeof(prefix), rfc8032_seed, sizeof(rfc8032_seed));
    return pem_of("PRIVATE KEY", der, sizeof(der));
}

/* A fresh key of the given algorithm as PKCS #8 PEM, encrypted when password is not NULL. */
static char *generated_pem(gnutls_pk_algorithm_t algo, unsigned bits, const char *password)
{
    gnutls_privkey_t pk;
    gnutls_x509_privkey_t x;
    gnutls_datum_t out = {NULL, 0};
    assert_true(gnutls_privkey_init(&pk) >= 0);
    assert_true(gnutls_privkey_generate2(pk, algo, bits, 0, NULL, 0) >= 0);
    assert_true(gnutls_privkey_export_x509(pk, &x) >= 0);
    assert_true(gnutls_x509_privkey_export2_pkcs8(
                    x, GNUTLS_X509_FMT_PEM, password,
                    password != NULL ? GNUTLS_PKCS_PBES2_AES_256 : GNUTLS_PKCS_PLAIN, &out) >= 0);
    char *s = malloc(out.size + 1);
    assert_non_null(s);
    memcpy(s, out.data, out.size);
    s[out.size] = '\0';
    gnutls_free(out.data);
    gnutls_x509_privkey_deinit(x);
    gnutls_privkey_deinit(pk);
    return s;
}

static struct audit_signer *load(const char *pem)
{
    struct audit_signer *s = NULL;
    char err[256] = "";
    int rc = audit_signer_load(pem, strlen(pem), &s, err, sizeof(err));
    if (rc != 0) {
        fail_msg("audit_signer_load: %d %s", rc, err);
    }
    assert_non_null(s);
    return s;
}

static void golden_checkpoint(struct audit_checkpoint *cp)
{
    memset(cp, 0, sizeof(*cp));
    cp->seq = 2;
    cp->time_unix_ms = 1767225660000;
    unhex(GOLDEN2_HASH, cp->hash, AUDIT_HASH_BYTES);
}

static void test_fixed_key(void **state)
{
    (void)state;
    char *pem = rfc8032_private_pem();
    struct audit_signer *s = load(pem);
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1];
    char hex[2 * AUDIT_PUBLIC_KEY_BYTES + 1];
    audit_signer_public_key(s, pub, key_id);
    to_hex(pub, sizeof(pub), hex);
    assert_string_equal(hex, RFC8032_PUBLIC_HEX);
    assert_string_equal(key_id, RFC8032_KEY_ID);
    audit_signer_public_key(s, NULL, NULL);

    /* The key id is the first 8 bytes of SHA-256 of the raw key. */
    uint8_t d[SHA256_BYTES];
    char dhex[2 * SHA256_BYTES + 1];
    assert_int_equal(sha256_digest(pub, sizeof(pub), d), 0);
    sha256_hex(d, dhex);
    assert_memory_equal(dhex, key_id, LIMIT_AUDIT_KEY_ID_LEN);
    char id2[LIMIT_AUDIT_KEY_ID_LEN + 1];
    assert_int_equal(audit_key_id(pub, id2), 0);
    assert_string_equal(id2, key_id);

    /* The public key as PEM is the SubjectPublicKeyInfo OpenSSL writes. */
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(audit_signer_public_pem(s, &b), 0);
    assert_string_equal(b.data, RFC8032_PUBLIC_PEM);
    buf_release(&b);

    /* Ed25519 is deterministic: the worked example's signature, byte for byte. */
    struct audit_checkpoint cp;
    golden_checkpoint(&cp);
    assert_int_equal(audit_checkpoint_sign(s, &cp), 0);
    assert_string_equal(cp.key_id, RFC8032_KEY_ID);
    char sig[2 * AUDIT_SIGNATURE_BYTES + 1];
    to_hex(cp.signature, AUDIT_SIGNATURE_BYTES, sig);
    assert_string_equal(sig, GOLDEN_CP_SIG);

    /* Out of range checkpoints are refused. */
    struct audit_checkpoint bad = cp;
    bad.seq = 0;
    assert_int_equal(audit_checkpoint_sign(s, &bad), -EINVAL);
    bad = cp;
    bad.time_unix_ms = -5;
    assert_int_equal(audit_checkpoint_sign(s, &bad), -EINVAL);

    audit_signer_free(s);
    audit_signer_free(NULL);
    free(pem);
}

static void test_verify_signatures(void **state)
{
    (void)state;
    struct audit_verifier *v = NULL;
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1] = "";
    char err[256] = "";
    assert_int_equal(audit_verifier_new(&v), 0);
    assert_int_equal(audit_verifier_add_key(v, RFC8032_PUBLIC_PEM, strlen(RFC8032_PUBLIC_PEM),
                                            key_id, err, sizeof(err)),
                     0);
    assert_string_equal(key_id, RFC8032_KEY_ID);

    struct audit_checkpoint cp;
    golden_checkpoint(&cp);
    memcpy(cp.key_id, RFC8032_KEY_ID, sizeof(cp.key_id));
    unhex(GOLDEN_CP_SIG, cp.signature, AUDIT_SIGNATURE_BYTES);
    assert_int_equal(audit_checkpoint_verify(v, &cp), 0);

    /* Any bit of the signature flipped. */
    for (size_t i = 0; i < AUDIT_SIGNATURE_BYTES * 8; i += 7) {
        struct audit_checkpoint bad = cp;
        bad.signature[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(audit_checkpoint_verify(v, &bad), -EBADMSG);
    }
    /* Any signed field changed. */
    struct audit_checkpoint bad = cp;
    bad.seq = 3;
    assert_int_equal(audit_checkpoint_verify(v, &bad), -EBADMSG);
    bad = cp;
    bad.hash[31] ^= 1;
    assert_int_equal(audit_checkpoint_verify(v, &bad), -EBADMSG);
    bad = cp;
    bad.time_unix_ms++;
    assert_int_equal(audit_checkpoint_verify(v, &bad), -EBADMSG);
    /* Another key id: unknown (no key), or malformed. */
    bad = cp;
    bad.key_id[0] = '3';
    assert_int_equal(audit_checkpoint_verify(v, &bad), -ENOKEY);
    assert_int_equal(audit_checkpoint_verify(NULL, &cp), -ENOKEY);
    bad.key_id[0] = 'G';
    assert_int_equal(audit_checkpoint_verify(v, &bad), -EINVAL);
    bad = cp;
    bad.seq = 0;
    assert_int_equal(audit_checkpoint_verify(v, &bad), -EINVAL);
    audit_verifier_free(v);
    audit_verifier_free(NULL);
}

static void test_generated_keys_and_rotation(void **state)
{
    (void)state;
    char *pem1 = generated_pem(GNUTLS_PK_EDDSA_ED25519, 0, NULL);
    char *pem2 = generated_pem(GNUTLS_PK_EDDSA_ED25519, 0, NULL);
    struct audit_signer *s1 = load(pem1);
    struct audit_signer *s2 = load(pem2);
    char id1[LIMIT_AUDIT_KEY_ID_LEN + 1], id2[LIMIT_AUDIT_KEY_ID_LEN + 1];
    uint8_t pub1[AUDIT_PUBLIC_KEY_BYTES], pub2[AUDIT_PUBLIC_KEY_BYTES];
    audit_signer_public_key(s1, pub1, id1);
    audit_signer_public_key(s2, pub2, id2);
    assert_string_not_equal(id1, id2);

    struct audit_checkpoint c1, c2;
    golden_checkpoint(&c1);
    golden_checkpoint(&c2);
    c2.seq = 20;
    assert_int_equal(audit_checkpoint_sign(s1, &c1), 0);
    assert_int_equal(audit_checkpoint_sign(s2, &c2), 0);
    assert_string_equal(c1.key_id, id1);

    /* Key 1 as hex (upper case, surrounded by whitespace), key 2 as its exported PEM. */
    struct audit_verifier *v = NULL;
    assert_int_equal(audit_verifier_new(&v), 0);
    char hex[2 * AUDIT_PUBLIC_KEY_BYTES + 8];
    hex[0] = ' ';
    to_hex(pub1, sizeof(pub1), hex + 1);
    for (char *c = hex; *c != '\0'; c++) {
        *c = (*c >= 'a' && *c <= 'f') ? (char)(*c - 'a' + 'A') : *c;
    }
    memcpy(hex + 1 + 2 * AUDIT_PUBLIC_KEY_BYTES, "\n\t", 3);
    char got[LIMIT_AUDIT_KEY_ID_LEN + 1];
    char err[256];
    assert_int_equal(audit_verifier_add_key(v, hex, strlen(hex), got, err, sizeof(err)), 0);
    assert_string_equal(got, id1);
    assert_int_equal(audit_checkpoint_verify(v, &c1), 0);
    assert_int_equal(audit_checkpoint_verify(v, &c2), -ENOKEY);
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(audit_signer_public_pem(s2, &b), 0);
    assert_int_equal(audit_verifier_add_key(v, b.data, b.len, got, err, sizeof(err)), 0);
    assert_string_equal(got, id2);
    assert_int_equal(audit_checkpoint_verify(v, &c1), 0);
    assert_int_equal(audit_checkpoint_verify(v, &c2), 0);
    /* A checkpoint claiming key 2 but signed by key 1. */
    struct audit_checkpoint forged = c1;
    memcpy(forged.key_id, id2, sizeof(forged.key_id));
    assert_int_equal(audit_checkpoint_verify(v, &forged), -EBADMSG);

    /* The same key twice, in either form. */
    assert_int_equal(audit_verifier_add_key(v, b.data, b.len, NULL, err, sizeof(err)), -EEXIST);
    assert_int_equal(audit_verifier_add_raw(v, pub1, NULL), -EEXIST);
    buf_release(&b);
    audit_verifier_free(v);
    audit_signer_free(s1);
    audit_signer_free(s2);
    free(pem1);
    free(pem2);
}

static void test_verifier_full(void **state)
{
    (void)state;
    struct audit_verifier *v = NULL;
    assert_int_equal(audit_verifier_new(&v), 0);
    /* Keys of a signing key being rotated out stay until the limit; one more is refused. */
    for (size_t i = 0; i < LIMIT_AUDIT_VERIFY_KEYS_MAX; i++) {
        char *pem = generated_pem(GNUTLS_PK_EDDSA_ED25519, 0, NULL);
        struct audit_signer *s = load(pem);
        uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
        audit_signer_public_key(s, pub, NULL);
        assert_int_equal(audit_verifier_add_raw(v, pub, NULL), 0);
        audit_signer_free(s);
        free(pem);
    }
    char *pem = generated_pem(GNUTLS_PK_EDDSA_ED25519, 0, NULL);
    struct audit_signer *s = load(pem);
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    audit_signer_public_key(s, pub, NULL);
    assert_int_equal(audit_verifier_add_raw(v, pub, NULL), -ENOSPC);
    audit_signer_free(s);
    free(pem);
    audit_verifier_free(v);
}

/* A refusal says why, and never repeats what it was given. */
static void signer_refuses(const char *text, size_t len, const char *why)
{
    struct audit_signer *s = (struct audit_signer *)(uintptr_t)1;
    char err[256] = "";
    assert_int_equal(audit_signer_load(text, len, &s, err, sizeof(err)), -EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, why));
    assert_null(strstr(err, "MC4CAQ"));
    assert_null(strstr(err, "SECRET"));
}

static void test_signer_refusals(void **state)
{
    (void)state;
    signer_refuses("", 0, "empty");
    signer_refuses(NULL, 0, "empty");
    char *big = malloc(LIMIT_AUDIT_KEY_PEM_BYTES_MAX + 1);
    assert_non_null(big);
    memset(big, 'A', LIMIT_AUDIT_KEY_PEM_BYTES_MAX + 1);
    signer_refuses(big, LIMIT_AUDIT_KEY_PEM_BYTES_MAX + 1, "too long");
    free(big);
    signer_refuses("SECRETSECRET", 12, "not a PEM private key");
    signer_refuses(RFC8032_PUBLIC_PEM, strlen(RFC8032_PUBLIC_PEM), "not a PEM private key");

    /* A PEM frame around garbage. */
    static const uint8_t junk[] = "SECRETSECRETSECRETSECRET";
    char *pem = pem_of("PRIVATE KEY", junk, sizeof(junk) - 1);
    signer_refuses(pem, strlen(pem), "not a PEM private key");
    free(pem);

    /* The RFC 8032 key cut short, and with a byte of its DER changed. */
    pem = rfc8032_private_pem();
    signer_refuses(pem, strlen(pem) - 30, "not a PEM private key");
    free(pem);

    /* Keys of other algorithms. */
    pem = generated_pem(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), NULL);
    signer_refuses(pem, strlen(pem), "not an Ed25519 key");
    free(pem);
    pem = generated_pem(GNUTLS_PK_EDDSA_ED448, 0, NULL);
    signer_refuses(pem, strlen(pem), "not an Ed25519 key");
    free(pem);

    /* Encrypted PKCS #8. */
    pem = generated_pem(GNUTLS_PK_EDDSA_ED25519, 0, "test-password");
    signer_refuses(pem, strlen(pem), "encrypted");
    free(pem);

    /* Only len bytes are read: a valid key followed by more text that is not passed. */
    pem = rfc8032_private_pem();
    size_t len = strlen(pem);
    char *longer = malloc(len + 8);
    assert_non_null(longer);
    memcpy(longer, pem, len);
    memcpy(longer + len, "garbage", 8);
    struct audit_signer *s = NULL;
    assert_int_equal(audit_signer_load(longer, len, &s, NULL, 0), 0);
    audit_signer_free(s);
    free(longer);
    free(pem);
}

static void verifier_refuses(const char *text, size_t len, int expected, const char *why)
{
    struct audit_verifier *v = NULL;
    char err[256] = "";
    assert_int_equal(audit_verifier_new(&v), 0);
    assert_int_equal(audit_verifier_add_key(v, text, len, NULL, err, sizeof(err)), expected);
    assert_non_null(strstr(err, why));
    assert_null(strstr(err, "MC4CAQ"));
    audit_verifier_free(v);
}

static void test_verifier_refusals(void **state)
{
    (void)state;
    verifier_refuses("", 0, -EINVAL, "empty");
    verifier_refuses(" \n", 2, -EINVAL, "empty");
    verifier_refuses("d75a", 4, -EINVAL, "neither");
    /* 63 and 65 hex digits, a non-hex digit. */
    verifier_refuses(RFC8032_PUBLIC_HEX, 63, -EINVAL, "neither");
    verifier_refuses(RFC8032_PUBLIC_HEX "0", 65, -EINVAL, "neither");
    char hex[] = RFC8032_PUBLIC_HEX;
    hex[10] = 'x';
    verifier_refuses(hex, 64, -EINVAL, "neither");
    /* A private key given where a public key belongs is refused, not used. */
    char *pem = rfc8032_private_pem();
    verifier_refuses(pem, strlen(pem), -EINVAL, "private key");
    free(pem);
    /* A P-256 public key. */
    char *p256 =
        generated_pem(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), NULL);
    gnutls_privkey_t pk;
    gnutls_pubkey_t pub;
    gnutls_datum_t d = {(unsigned char *)p256, (unsigned int)strlen(p256)};
    gnutls_datum_t out = {NULL, 0};
    assert_true(gnutls_privkey_init(&pk) >= 0);
    assert_true(gnutls_privkey_import_x509_raw(pk, &d, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0);
    assert_true(gnutls_pubkey_init(&pub) >= 0);
    assert_true(gnutls_pubkey_import_privkey(pub, pk, 0, 0) >= 0);
    assert_true(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &out) >= 0);
    verifier_refuses((const char *)out.data, out.size, -EINVAL, "neither");
    gnutls_free(out.data);
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(pk);
    free(p256);
    /* A PUBLIC KEY frame around garbage. */
    static const uint8_t junk[] = "not a key at all";
    pem = pem_of("PUBLIC KEY", junk, sizeof(junk) - 1);
    verifier_refuses(pem, strlen(pem), -EINVAL, "neither");
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_key),
        cmocka_unit_test(test_verify_signatures),
        cmocka_unit_test(test_generated_keys_and_rotation),
        cmocka_unit_test(test_verifier_full),
        cmocka_unit_test(test_signer_refusals),
        cmocka_unit_test(test_verifier_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
