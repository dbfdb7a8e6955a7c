/*
 * fuzz_audit.c — libFuzzer target for the audit trail: key loading and the streaming verifier.
 *
 * Each input is first given whole to audit_signer_load (as a private key PEM) and to
 * audit_verifier_add_key (as a public key): a refusal must carry a reason, an acceptance must
 * give a key that signs and verifies. Then the input is read as a program that builds a trail
 * and feeds it to the verifier record by record: records linked by audit_chain_next, records
 * with bytes patched anywhere in them, fields set from raw bytes, checkpoints signed over the
 * tail, ahead of it, or patched. The oracles: a trail built only from honest steps verifies
 * with no finding at every step; every finding has a known kind and a terminated message; a
 * record that validates has a canonical encoding that is JSON giving back its fields, whose
 * SHA-256 is audit_record_hash; audit_record_set accepts only what audit_record_validate
 * accepts.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file, every .c
 * file of src/audit and src/core, and $(pkg-config --cflags --libs jansson gnutls).
 * Seeds: tests/fuzz/corpus/audit/
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/assert.h"
#include "core/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Records built by one input; the verifier itself keeps no more than the last one. */
#define FUZZ_RECORDS_MAX 256

struct input {
    const uint8_t *p;
    size_t len;
};

static uint8_t take(struct input *in)
{
    if (in->len == 0) {
        return 0;
    }
    in->len--;
    return *in->p++;
}

static size_t take_bytes(struct input *in, size_t n, const uint8_t **out)
{
    n = n < in->len ? n : in->len;
    *out = in->p;
    in->p += n;
    in->len -= n;
    return n;
}

/* The fuzzer's own signing key: RFC 8032 §7.1 test 1, assembled as PKCS #8 at start-up. */
static struct audit_signer *signer;
static struct audit_verifier *keys;

static void init_keys(void)
{
    static const uint8_t der[48] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b,
                                    0x65, 0x70, 0x04, 0x22, 0x04, 0x20, 0x9d, 0x61, 0xb1, 0x9d,
                                    0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
                                    0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
                                    0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)der, sizeof(der)};
    gnutls_datum_t pem = {NULL, 0};
    ASSERT(gnutls_pem_base64_encode2("PRIVATE KEY", &in, &pem) >= 0);
    ASSERT(audit_signer_load((const char *)pem.data, pem.size, &signer, NULL, 0) == 0);
    gnutls_free(pem.data);
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    audit_signer_public_key(signer, pub, NULL);
    ASSERT(audit_verifier_new(&keys) == 0);
    ASSERT(audit_verifier_add_raw(keys, pub, NULL) == 0);
}

static void check_finding(const struct audit_finding *f)
{
    ASSERT(memchr(f->message, '\0', sizeof(f->message)) != NULL);
    ASSERT(audit_finding_kind_name(f->kind) != NULL);
    ASSERT((f->kind == AUDIT_OK) == (f->message[0] == '\0'));
}

/* A record that validates encodes as JSON that gives its fields back, and hashes to the
 * SHA-256 of that encoding. */
static void check_encoding(const struct audit_record *r)
{
    struct buf b;
    buf_init(&b, LIMIT_AUDIT_CANONICAL_BYTES_MAX);
    int rc = audit_canonical(r, &b);
    if (audit_record_validate(r, NULL, 0) != 0) {
        ASSERT(rc == -EINVAL && b.len == 0);
        buf_release(&b);
        return;
    }
    ASSERT(rc == 0);
    json_error_t err;
    json_t *doc = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    ASSERT(doc != NULL && json_object_size(doc) == 12);
    for (int i = 0; i < AUDIT_FIELD_COUNT; i++) {
        json_t *v = json_object_get(doc, audit_field_name((enum audit_field)i));
        ASSERT(json_is_string(v));
    }
    ASSERT(strcmp(json_string_value(json_object_get(doc, "actor")), r->actor) == 0);
    ASSERT(strcmp(json_string_value(json_object_get(doc, "reason")), r->reason) == 0);
    ASSERT(strcmp(json_string_value(json_object_get(doc, "source")), r->source) == 0);
    ASSERT((uint64_t)json_integer_value(json_object_get(doc, "seq")) == r->seq);
    ASSERT(json_integer_value(json_object_get(doc, "time_unix_ms")) == r->time_unix_ms);
    json_decref(doc);
    uint8_t h1[AUDIT_HASH_BYTES], h2[SHA256_BYTES];
    ASSERT(audit_record_hash(r, h1) == 0);
    ASSERT(sha256_digest(b.data, b.len, h2) == 0);
    ASSERT(memcmp(h1, h2, SHA256_BYTES) == 0);
    buf_release(&b);
}

static void base_record(struct audit_record *r, uint8_t k)
{
    static const char *const decisions[] = {"allow", "deny", "success", "failure"};
    memset(r, 0, sizeof(*r));
    r->time_unix_ms = 1767225600000 + k;
    ASSERT(audit_record_set(r, AUDIT_FIELD_ACTOR, "system", 6) == 0);
    ASSERT(audit_record_set(r, AUDIT_FIELD_ACTION, "config.reload", 13) == 0);
    ASSERT(audit_record_set(r, AUDIT_FIELD_RESOURCE, "config", 6) == 0);
    ASSERT(audit_record_set(r, AUDIT_FIELD_DECISION, decisions[k % 4], strlen(decisions[k % 4])) ==
           0);
}

/* Sets fields from raw bytes: what is accepted must validate, what is refused changes nothing. */
static void set_fields(struct input *in, struct audit_record *r)
{
    uint8_t n = take(in) % 4;
    for (uint8_t i = 0; i < n; i++) {
        enum audit_field f = (enum audit_field)(take(in) % AUDIT_FIELD_COUNT);
        size_t want = take(in);
        want = want == 255 ? 1024 : want; /* reach past every limit */
        const uint8_t *bytes = NULL;
        size_t len = take_bytes(in, want, &bytes);
        struct audit_record before = *r;
        int rc = audit_record_set(r, f, (const char *)bytes, len);
        if (rc == 0) {
            ASSERT(audit_record_validate(r, NULL, 0) == 0);
        } else {
            ASSERT(rc == -EINVAL || rc == -ENAMETOOLONG);
            ASSERT(memcmp(r, &before, sizeof(*r)) == 0);
        }
    }
}

static void patch(struct input *in, void *obj, size_t size)
{
    uint8_t n = (uint8_t)(1 + take(in) % 4);
    for (uint8_t i = 0; i < n; i++) {
        size_t at = ((size_t)take(in) << 8 | take(in)) % size;
        ((uint8_t *)obj)[at] ^= (uint8_t)(take(in) | 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (signer == NULL) {
        init_keys();
    }

    /* The whole input as keys. */
    struct audit_signer *s = NULL;
    char err[256];
    err[0] = '\0';
    int rc = audit_signer_load((const char *)data, size, &s, err, sizeof(err));
    ASSERT(rc == 0 || (rc == -EINVAL && err[0] != '\0') || rc == -ENOMEM || rc == -EIO);
    if (rc == 0) {
        struct audit_checkpoint cp = {.seq = 1, .time_unix_ms = 0};
        struct audit_verifier *v = NULL;
        uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
        ASSERT(audit_checkpoint_sign(s, &cp) == 0);
        audit_signer_public_key(s, pub, NULL);
        ASSERT(audit_verifier_new(&v) == 0);
        ASSERT(audit_verifier_add_raw(v, pub, NULL) == 0);
        ASSERT(audit_checkpoint_verify(v, &cp) == 0);
        audit_verifier_free(v);
        audit_signer_free(s);
    }
    struct audit_verifier *v = NULL;
    ASSERT(audit_verifier_new(&v) == 0);
    err[0] = '\0';
    rc = audit_verifier_add_key(v, (const char *)data, size, NULL, err, sizeof(err));
    ASSERT(rc == 0 || (rc == -EINVAL && err[0] != '\0') || rc == -ENOMEM);
    audit_verifier_free(v);

    /* The input as a program building and verifying a trail. */
    struct input in = {data, size};
    struct audit_verify *ver = NULL;
    ASSERT(audit_verify_new(keys, 0, NULL, &ver) == 0);
    uint64_t tail_seq = 0;
    uint8_t tail_hash[AUDIT_HASH_BYTES] = {0};
    bool honest = true;
    size_t records = 0;
    struct audit_finding f;
    while (in.len > 0 && records < FUZZ_RECORDS_MAX) {
        uint8_t op = take(&in);
        struct audit_record r;
        struct audit_checkpoint cp;
        switch (op % 6) {
        case 0: /* an honest record */
        case 1: /* a record with bytes of it patched after linking */
            base_record(&r, op);
            set_fields(&in, &r);
            check_encoding(&r);
            ASSERT(audit_chain_next(tail_seq == 0 ? NULL : tail_hash, tail_seq, &r) == 0);
            /* The honest tail goes on from the record as linked, whatever is patched below. */
            tail_seq = r.seq;
            memcpy(tail_hash, r.hash, AUDIT_HASH_BYTES);
            if (op % 6 == 1) {
                patch(&in, &r, sizeof(r));
                honest = false;
                check_encoding(&r);
            }
            ASSERT(audit_verify_record(ver, &r, &f) == 0);
            check_finding(&f);
            ASSERT(!honest || f.kind == AUDIT_OK);
            records++;
            break;
        case 2: /* an honest checkpoint over the tail */
        case 3: /* a patched one */
            if (tail_seq == 0) {
                break;
            }
            memset(&cp, 0, sizeof(cp));
            cp.seq = tail_seq;
            memcpy(cp.hash, tail_hash, AUDIT_HASH_BYTES);
            cp.time_unix_ms = 1767225600000;
            ASSERT(audit_checkpoint_sign(signer, &cp) == 0);
            if (op % 6 == 3) {
                patch(&in, &cp, sizeof(cp));
                honest = false;
            }
            rc = audit_verify_checkpoint(ver, &cp, &f);
            ASSERT(rc == 0 || (!honest && (rc == -EINVAL || rc == -ENOSPC)));
            if (rc == 0) {
                check_finding(&f);
                ASSERT(!honest || f.kind == AUDIT_OK);
            }
            break;
        case 4: /* a checkpoint ahead of the tail, over whatever hash */
            memset(&cp, 0, sizeof(cp));
            cp.seq = tail_seq + 1 + take(&in) % 4;
            cp.hash[0] = take(&in);
            ASSERT(audit_checkpoint_sign(signer, &cp) == 0);
            honest = false;
            rc = audit_verify_checkpoint(ver, &cp, &f);
            ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOSPC);
            break;
        default: /* a record straight from the input */
            memset(&r, 0, sizeof(r));
            {
                const uint8_t *bytes = NULL;
                size_t n = take_bytes(&in, sizeof(r), &bytes);
                memcpy(&r, bytes, n);
            }
            honest = false;
            check_encoding(&r);
            ASSERT(audit_verify_record(ver, &r, &f) == 0);
            check_finding(&f);
            records++;
            break;
        }
    }
    struct audit_verify_stats st;
    ASSERT(audit_verify_finish(ver, &f, &st) == 0);
    check_finding(&f);
    ASSERT(!honest || (f.kind == AUDIT_OK && st.findings == 0));
    ASSERT(st.records == records);
    ASSERT(st.checkpoints_verified <= st.checkpoints);
    audit_verify_free(ver);
    return 0;
}
