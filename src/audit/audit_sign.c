/*
 * audit_sign.c — the keys of audit checkpoints: loading an Ed25519 signing key from PEM,
 * signing checkpoints, and a set of public keys that checks their signatures across rotations.
 *
 * All of the cryptography is GnuTLS's (pure Ed25519, RFC 8032). The private key lives only in
 * GnuTLS's key object: this file never copies it out, and wipes the one copy of the PEM text it
 * makes to hand it a NUL-terminated string. Error messages say what is wrong with a key, never
 * what is in it.
 */
#include "audit/audit.h"
#include "audit/audit_internal.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/ids.h"
#include "core/sha256.h"

struct audit_signer {
    gnutls_privkey_t key;
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1];
};

struct audit_verifier_key {
    gnutls_pubkey_t key;
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1];
};

struct audit_verifier {
    size_t count;
    struct audit_verifier_key keys[LIMIT_AUDIT_VERIFY_KEYS_MAX];
};

static void say(char *err, size_t err_len, const char *msg)
{
    if (err != NULL && err_len > 0) {
        snprintf(err, err_len, "%s", msg);
    }
}

/* GnuTLS datums point at non-const bytes; they only read them here. */
static gnutls_datum_t datum(const void *p, size_t len)
{
    ASSERT(len <= UINT32_MAX);
    gnutls_datum_t d = {(unsigned char *)p, (unsigned int)len};
    return d;
}

static bool contains(const char *s, size_t len, const char *needle)
{
    return memmem(s, len, needle, strlen(needle)) != NULL;
}

int audit_key_id(const uint8_t pub[AUDIT_PUBLIC_KEY_BYTES], char out[LIMIT_AUDIT_KEY_ID_LEN + 1])
{
    ASSERT(pub != NULL && out != NULL);
    _Static_assert(LIMIT_AUDIT_KEY_ID_LEN <= 2 * SHA256_BYTES, "a key id is a digest prefix");
    uint8_t digest[SHA256_BYTES];
    if (sha256_digest(pub, AUDIT_PUBLIC_KEY_BYTES, digest) != 0) {
        return -EIO;
    }
    char hex[2 * SHA256_BYTES + 1];
    sha256_hex(digest, hex);
    memcpy(out, hex, LIMIT_AUDIT_KEY_ID_LEN);
    out[LIMIT_AUDIT_KEY_ID_LEN] = '\0';
    return 0;
}

/* The raw 32-byte Ed25519 key of pub. */
static int pubkey_raw(gnutls_pubkey_t pub, uint8_t out[AUDIT_PUBLIC_KEY_BYTES])
{
    gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
    gnutls_datum_t x = {NULL, 0};
    if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0) < 0) {
        return -EIO;
    }
    int rc = 0;
    if (curve != GNUTLS_ECC_CURVE_ED25519 || x.size != AUDIT_PUBLIC_KEY_BYTES) {
        rc = -EINVAL;
    } else {
        memcpy(out, x.data, AUDIT_PUBLIC_KEY_BYTES);
    }
    gnutls_free(x.data);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Signer
 * ------------------------------------------------------------------------------------- */

int audit_signer_load(const char *pem, size_t len, struct audit_signer **out, char *err,
                      size_t err_len)
{
    ASSERT(pem != NULL || len == 0);
    ASSERT(out != NULL);
    *out = NULL;
    if (len == 0 || len > LIMIT_AUDIT_KEY_PEM_BYTES_MAX) {
        say(err, err_len, "audit signing key: empty, or too long to be an Ed25519 PEM key");
        return -EINVAL;
    }
    if (contains(pem, len, "ENCRYPTED PRIVATE KEY")) {
        say(err, err_len, "audit signing key: encrypted keys are not supported");
        return -EINVAL;
    }
    if (!contains(pem, len, "PRIVATE KEY-----")) {
        say(err, err_len,
            "audit signing key: not a PEM private key (PKCS #8, as openssl genpkey writes)");
        return -EINVAL;
    }

    int rc = -ENOMEM;
    struct audit_signer *s = calloc(1, sizeof(*s));
    /* GnuTLS's PEM reader is handed a NUL-terminated copy; it is wiped below. */
    char *text = malloc(len + 1);
    gnutls_pubkey_t pub = NULL;
    if (s == NULL || text == NULL) {
        goto out_free;
    }
    memcpy(text, pem, len);
    text[len] = '\0';
    if (gnutls_privkey_init(&s->key) < 0) {
        s->key = NULL;
        rc = -EIO;
        goto out_free;
    }
    gnutls_datum_t d = datum(text, len);
    if (gnutls_privkey_import_x509_raw(s->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        say(err, err_len,
            "audit signing key: not a PEM private key (PKCS #8, as openssl genpkey writes)");
        rc = -EINVAL;
        goto out_free;
    }
    if (gnutls_privkey_get_pk_algorithm(s->key, NULL) != GNUTLS_PK_EDDSA_ED25519) {
        say(err, err_len, "audit signing key: not an Ed25519 key");
        rc = -EINVAL;
        goto out_free;
    }
    rc = -EIO;
    if (gnutls_pubkey_init(&pub) < 0) {
        pub = NULL;
        goto out_free;
    }
    if (gnutls_pubkey_import_privkey(pub, s->key, 0, 0) < 0 || pubkey_raw(pub, s->pub) != 0 ||
        audit_key_id(s->pub, s->key_id) != 0) {
        say(err, err_len, "audit signing key: its public key could not be derived");
        goto out_free;
    }
    *out = s;
    s = NULL;
    rc = 0;

out_free:
    if (pub != NULL) {
        gnutls_pubkey_deinit(pub);
    }
    if (text != NULL) {
        explicit_bzero(text, len + 1);
        free(text);
    }
    audit_signer_free(s);
    ASSERT((rc == 0) == (*out != NULL));
    return rc;
}

void audit_signer_public_key(const struct audit_signer *s, uint8_t pub[AUDIT_PUBLIC_KEY_BYTES],
                             char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1])
{
    ASSERT(s != NULL);
    if (pub != NULL) {
        memcpy(pub, s->pub, AUDIT_PUBLIC_KEY_BYTES);
    }
    if (key_id != NULL) {
        memcpy(key_id, s->key_id, LIMIT_AUDIT_KEY_ID_LEN + 1);
    }
}

/* A GnuTLS public key object for a raw Ed25519 key. */
static int pubkey_from_raw(const uint8_t raw[AUDIT_PUBLIC_KEY_BYTES], gnutls_pubkey_t *out)
{
    gnutls_pubkey_t pub = NULL;
    if (gnutls_pubkey_init(&pub) < 0) {
        return -ENOMEM;
    }
    gnutls_datum_t x = datum(raw, AUDIT_PUBLIC_KEY_BYTES);
    if (gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL) < 0) {
        gnutls_pubkey_deinit(pub);
        return -EINVAL;
    }
    *out = pub;
    return 0;
}

int audit_signer_public_pem(const struct audit_signer *s, struct buf *out)
{
    ASSERT(s != NULL && out != NULL);
    gnutls_pubkey_t pub = NULL;
    int rc = pubkey_from_raw(s->pub, &pub);
    if (rc != 0) {
        return rc == -EINVAL ? -EIO : rc;
    }
    gnutls_datum_t pem = {NULL, 0};
    rc = -EIO;
    if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        goto out_deinit;
    }
    rc = buf_append(out, pem.data, pem.size);
    gnutls_free(pem.data);
out_deinit:
    gnutls_pubkey_deinit(pub);
    return rc;
}

int audit_checkpoint_sign(const struct audit_signer *s, struct audit_checkpoint *cp)
{
    ASSERT(s != NULL && s->key != NULL && cp != NULL);
    memcpy(cp->key_id, s->key_id, sizeof(cp->key_id));
    char msg[AUDIT_CHECKPOINT_CANONICAL_BYTES];
    size_t len = 0;
    int rc = audit_checkpoint_encode(cp, msg, &len);
    if (rc != 0) {
        return rc;
    }
    gnutls_datum_t d = datum(msg, len);
    gnutls_datum_t sig = {NULL, 0};
    if (gnutls_privkey_sign_data2(s->key, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig) < 0) {
        return -EIO;
    }
    rc = -EIO;
    if (sig.size == AUDIT_SIGNATURE_BYTES) {
        memcpy(cp->signature, sig.data, AUDIT_SIGNATURE_BYTES);
        rc = 0;
    }
    gnutls_free(sig.data);
    return rc;
}

void audit_signer_free(struct audit_signer *s)
{
    if (s == NULL) {
        return;
    }
    if (s->key != NULL) {
        gnutls_privkey_deinit(s->key);
    }
    explicit_bzero(s, sizeof(*s));
    free(s);
}

/* ---------------------------------------------------------------------------------------
 * Verifier keys
 * ------------------------------------------------------------------------------------- */

int audit_verifier_new(struct audit_verifier **out)
{
    ASSERT(out != NULL);
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -ENOMEM;
}

void audit_verifier_free(struct audit_verifier *v)
{
    if (v == NULL) {
        return;
    }
    ASSERT(v->count <= LIMIT_AUDIT_VERIFY_KEYS_MAX);
    for (size_t i = 0; i < v->count; i++) {
        gnutls_pubkey_deinit(v->keys[i].key);
    }
    free(v);
}

static const struct audit_verifier_key *find_key(const struct audit_verifier *v, const char *key_id)
{
    for (size_t i = 0; v != NULL && i < v->count; i++) {
        if (memcmp(v->keys[i].key_id, key_id, LIMIT_AUDIT_KEY_ID_LEN + 1) == 0) {
            return &v->keys[i];
        }
    }
    return NULL;
}

int audit_verifier_add_raw(struct audit_verifier *v, const uint8_t pub[AUDIT_PUBLIC_KEY_BYTES],
                           char key_id_out[LIMIT_AUDIT_KEY_ID_LEN + 1])
{
    ASSERT(v != NULL && pub != NULL);
    ASSERT(v->count <= LIMIT_AUDIT_VERIFY_KEYS_MAX);
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1];
    if (audit_key_id(pub, key_id) != 0) {
        return -EIO;
    }
    if (key_id_out != NULL) {
        memcpy(key_id_out, key_id, sizeof(key_id));
    }
    if (find_key(v, key_id) != NULL) {
        return -EEXIST;
    }
    if (v->count == LIMIT_AUDIT_VERIFY_KEYS_MAX) {
        return -ENOSPC;
    }
    struct audit_verifier_key *k = &v->keys[v->count];
    int rc = pubkey_from_raw(pub, &k->key);
    if (rc != 0) {
        return rc;
    }
    memcpy(k->pub, pub, AUDIT_PUBLIC_KEY_BYTES);
    memcpy(k->key_id, key_id, sizeof(key_id));
    v->count++;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* 64 hex digits (either case) into 32 bytes. */
static bool parse_hex_key(const char *s, size_t len, uint8_t out[AUDIT_PUBLIC_KEY_BYTES])
{
    if (len != (size_t)2 * AUDIT_PUBLIC_KEY_BYTES) {
        return false;
    }
    for (size_t i = 0; i < AUDIT_PUBLIC_KEY_BYTES; i++) {
        int hi = ids_hex_value(s[2 * i]);
        int lo = ids_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* An Ed25519 SubjectPublicKeyInfo in PEM into its raw key. */
static int parse_pem_key(const char *s, size_t len, uint8_t out[AUDIT_PUBLIC_KEY_BYTES])
{
    int rc = -ENOMEM;
    char *text = malloc(len + 1);
    gnutls_pubkey_t pub = NULL;
    if (text == NULL) {
        return -ENOMEM;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (gnutls_pubkey_init(&pub) < 0) {
        pub = NULL;
        goto out_free;
    }
    rc = -EINVAL;
    gnutls_datum_t d = datum(text, len);
    if (gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_pubkey_get_pk_algorithm(pub, NULL) != GNUTLS_PK_EDDSA_ED25519) {
        goto out_free;
    }
    rc = pubkey_raw(pub, out);
out_free:
    if (pub != NULL) {
        gnutls_pubkey_deinit(pub);
    }
    free(text);
    return rc;
}

int audit_verifier_add_key(struct audit_verifier *v, const char *text, size_t len,
                           char key_id_out[LIMIT_AUDIT_KEY_ID_LEN + 1], char *err, size_t err_len)
{
    ASSERT(v != NULL);
    ASSERT(text != NULL || len == 0);
    while (len > 0 && is_space(text[0])) {
        text++;
        len--;
    }
    while (len > 0 && is_space(text[len - 1])) {
        len--;
    }
    if (len == 0 || len > LIMIT_AUDIT_KEY_PEM_BYTES_MAX) {
        say(err, err_len, "audit public key: empty, or too long to be an Ed25519 key");
        return -EINVAL;
    }
    if (contains(text, len, "PRIVATE KEY")) {
        say(err, err_len,
            "audit public key: this is a private key; give its public key "
            "(openssl pkey -pubout)");
        return -EINVAL;
    }
    uint8_t raw[AUDIT_PUBLIC_KEY_BYTES];
    int rc = 0;
    if (!parse_hex_key(text, len, raw)) {
        rc = contains(text, len, "PUBLIC KEY-----") ? parse_pem_key(text, len, raw) : -EINVAL;
    }
    if (rc == -EINVAL) {
        say(err, err_len,
            "audit public key: neither an Ed25519 PEM public key (SubjectPublicKeyInfo) nor "
            "64 hex digits");
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    rc = audit_verifier_add_raw(v, raw, key_id_out);
    if (rc == -EEXIST) {
        say(err, err_len, "audit public key: given twice");
    } else if (rc == -ENOSPC) {
        say(err, err_len, "audit public key: too many keys");
    } else if (rc == -EINVAL) {
        say(err, err_len, "audit public key: not a valid Ed25519 point");
    }
    return rc;
}

int audit_checkpoint_verify(const struct audit_verifier *v, const struct audit_checkpoint *cp)
{
    ASSERT(cp != NULL);
    char msg[AUDIT_CHECKPOINT_CANONICAL_BYTES];
    size_t len = 0;
    int rc = audit_checkpoint_encode(cp, msg, &len);
    if (rc != 0) {
        return rc;
    }
    const struct audit_verifier_key *k = find_key(v, cp->key_id);
    if (k == NULL) {
        return -ENOKEY;
    }
    gnutls_datum_t d = datum(msg, len);
    gnutls_datum_t sig = datum(cp->signature, AUDIT_SIGNATURE_BYTES);
    int g = gnutls_pubkey_verify_data2(k->key, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig);
    if (g >= 0) {
        return 0;
    }
    return g == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
}
