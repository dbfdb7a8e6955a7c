/*
 * test_audit_verify.c — the streaming verifier against a tampered trail: a chain of 100 records
 * with a checkpoint every 10 verifies, and each kind of tampering (every field of a record
 * changed in turn, records removed, reordered, duplicated, rewritten, the tail cut off,
 * checkpoints forged, keys rotated) is found and named at the right seq. Every case runs in both
 * feeding orders: checkpoints merged among the records by seq, and every checkpoint first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"

#define TRAIL_MAX 110
#define CHECKPOINTS_MAX 16

struct trail {
    size_t n;
    struct audit_record r[TRAIL_MAX];
    size_t ncp;
    struct audit_checkpoint cp[CHECKPOINTS_MAX];
};

/* Three signing keys made at run time; verifiers with key 1, key 2, both, and key 3 alone. */
static struct audit_signer *key1, *key2, *key3;
static struct audit_verifier *only1, *only2, *both;

static struct audit_signer *generate_signer(void)
{
    gnutls_privkey_t pk;
    gnutls_x509_privkey_t x;
    gnutls_datum_t pem = {NULL, 0};
    assert_true(gnutls_privkey_init(&pk) >= 0);
    assert_true(gnutls_privkey_generate2(pk, GNUTLS_PK_EDDSA_ED25519, 0, 0, NULL, 0) >= 0);
    assert_true(gnutls_privkey_export_x509(pk, &x) >= 0);
    assert_true(gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                                  &pem) >= 0);
    struct audit_signer *s = NULL;
    assert_int_equal(audit_signer_load((const char *)pem.data, pem.size, &s, NULL, 0), 0);
    gnutls_free(pem.data);
    gnutls_x509_privkey_deinit(x);
    gnutls_privkey_deinit(pk);
    return s;
}

static void add_signer(struct audit_verifier *v, const struct audit_signer *s)
{
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    audit_signer_public_key(s, pub, NULL);
    assert_int_equal(audit_verifier_add_raw(v, pub, NULL), 0);
}

static int setup(void **state)
{
    (void)state;
    key1 = generate_signer();
    key2 = generate_signer();
    key3 = generate_signer();
    assert_int_equal(audit_verifier_new(&only1), 0);
    assert_int_equal(audit_verifier_new(&only2), 0);
    assert_int_equal(audit_verifier_new(&both), 0);
    add_signer(only1, key1);
    add_signer(only2, key2);
    add_signer(both, key1);
    add_signer(both, key2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    audit_verifier_free(only1);
    audit_verifier_free(only2);
    audit_verifier_free(both);
    audit_signer_free(key1);
    audit_signer_free(key2);
    audit_signer_free(key3);
    return 0;
}

static void set(struct audit_record *r, enum audit_field f, const char *s)
{
    assert_int_equal(audit_record_set(r, f, s, strlen(s)), 0);
}

/* Record i (1-based) of the test trail: the kinds of events ledgerd audits, in turn. */
static void make_record(struct audit_record *r, size_t i)
{
    static const char *const actors[] = {"apikey:k_7Qd2", "jwt:https://id.example.com/|user-42",
                                         "anonymous", "system"};
    static const char *const actions[] = {
        "auth.failed",   "authz.allow",   "authz.deny",    "transfer.create", "account.create",
        "apikey.create", "apikey.revoke", "config.reload", "keys.reload",     "migration.apply"};
    static const char *const decisions[] = {"failure", "allow", "deny", "success"};
    char text[128];
    memset(r, 0, sizeof(*r));
    r->time_unix_ms = 1767225600000 + (int64_t)i * 1000;
    set(r, AUDIT_FIELD_ACTOR, actors[i % 4]);
    set(r, AUDIT_FIELD_ACTION, actions[i % 10]);
    snprintf(text, sizeof(text), "POST /v1/transfers #%zu", i);
    set(r, AUDIT_FIELD_RESOURCE, text);
    set(r, AUDIT_FIELD_DECISION, decisions[i % 4]);
    snprintf(text, sizeof(text), "reason \"%zu\" \\ \xc3\xa9", i);
    set(r, AUDIT_FIELD_REASON, i % 3 == 0 ? "" : text);
    snprintf(text, sizeof(text), "req-%zu", i);
    set(r, AUDIT_FIELD_REQUEST_ID, text);
    snprintf(text, sizeof(text), "%032zx", i + 1);
    set(r, AUDIT_FIELD_TRACE_ID, text);
    snprintf(text, sizeof(text), "192.0.2.%zu:%zu", i % 250, 40000 + i);
    set(r, AUDIT_FIELD_SOURCE, text);
}

/* Re-links records [from, n) after record from - 1, as someone rewriting the chain would. */
static void rechain(struct trail *t, size_t from)
{
    for (size_t k = from; k < t->n; k++) {
        const uint8_t *prev = k == 0 ? NULL : t->r[k - 1].hash;
        uint64_t prev_seq = k == 0 ? 0 : t->r[k - 1].seq;
        assert_int_equal(audit_chain_next(prev, prev_seq, &t->r[k]), 0);
    }
}

static void add_checkpoint(struct trail *t, const struct audit_signer *s, uint64_t seq)
{
    assert_true(t->ncp < CHECKPOINTS_MAX);
    assert_true(seq >= 1 && seq <= t->n);
    struct audit_checkpoint *cp = &t->cp[t->ncp++];
    memset(cp, 0, sizeof(*cp));
    cp->seq = seq;
    memcpy(cp->hash, t->r[seq - 1].hash, AUDIT_HASH_BYTES);
    cp->time_unix_ms = t->r[seq - 1].time_unix_ms + 500;
    assert_int_equal(audit_checkpoint_sign(s, cp), 0);
}

/* n records; a checkpoint every 10 by key 1 up to rotate_at, by key 2 after it. */
static struct trail *make_trail(size_t n, uint64_t rotate_at)
{
    struct trail *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->n = n;
    for (size_t k = 0; k < n; k++) {
        make_record(&t->r[k], k + 1);
    }
    rechain(t, 0);
    for (uint64_t seq = 10; seq <= n; seq += 10) {
        add_checkpoint(t, seq <= rotate_at ? key1 : key2, seq);
    }
    return t;
}

static struct trail *copy(const struct trail *t)
{
    struct trail *c = malloc(sizeof(*c));
    assert_non_null(c);
    memcpy(c, t, sizeof(*c));
    return c;
}

static void remove_record(struct trail *t, size_t k)
{
    memmove(&t->r[k], &t->r[k + 1], (t->n - k - 1) * sizeof(t->r[0]));
    t->n--;
}

enum order { MERGED, CHECKPOINTS_FIRST };

static void feed_checkpoint(struct audit_verify *v, const struct audit_checkpoint *cp)
{
    struct audit_finding f;
    assert_int_equal(audit_verify_checkpoint(v, cp, &f), 0);
    assert_non_null(memchr(f.message, '\0', sizeof(f.message)));
}

/* Feeds the trail as the CLI would and returns the first finding. */
static struct audit_finding run_order(const struct trail *t, const struct audit_verifier *keys,
                                      enum order order, uint64_t after_seq,
                                      const uint8_t *after_hash, struct audit_verify_stats *stats)
{
    struct audit_verify *v = NULL;
    struct audit_finding f;
    assert_int_equal(audit_verify_new(keys, after_seq, after_hash, &v), 0);
    size_t c = 0;
    if (order == CHECKPOINTS_FIRST) {
        for (; c < t->ncp; c++) {
            feed_checkpoint(v, &t->cp[c]);
        }
    }
    for (size_t k = 0; k < t->n; k++) {
        /* Merged: every checkpoint of seq S before the record S + 1. */
        while (c < t->ncp && t->cp[c].seq < t->r[k].seq) {
            feed_checkpoint(v, &t->cp[c++]);
        }
        assert_int_equal(audit_verify_record(v, &t->r[k], &f), 0);
    }
    for (; c < t->ncp; c++) {
        feed_checkpoint(v, &t->cp[c]);
    }
    assert_int_equal(audit_verify_finish(v, &f, stats), 0);
    audit_verify_free(v);
    return f;
}

/* Runs both orders; they must agree. */
static struct audit_finding run_from(const struct trail *t, const struct audit_verifier *keys,
                                     uint64_t after_seq, const uint8_t *after_hash,
                                     struct audit_verify_stats *stats)
{
    struct audit_verify_stats s1, s2;
    struct audit_finding f1 = run_order(t, keys, MERGED, after_seq, after_hash, &s1);
    struct audit_finding f2 = run_order(t, keys, CHECKPOINTS_FIRST, after_seq, after_hash, &s2);
    assert_int_equal(f1.kind, f2.kind);
    assert_int_equal(f1.seq, f2.seq);
    assert_string_equal(f1.message, f2.message);
    assert_int_equal(s1.findings, s2.findings);
    assert_int_equal(s1.last_seq, s2.last_seq);
    assert_int_equal(s1.checkpoints_verified, s2.checkpoints_verified);
    if (stats != NULL) {
        *stats = s1;
    }
    return f1;
}

static struct audit_finding run(const struct trail *t, const struct audit_verifier *keys)
{
    return run_from(t, keys, 0, NULL, NULL);
}

/* The trail verifies... or the first finding is this kind at this seq, and says so. */
static void expect(const struct trail *t, const struct audit_verifier *keys,
                   enum audit_finding_kind kind, uint64_t seq)
{
    struct audit_finding f = run(t, keys);
    if (f.kind != kind || f.seq != seq) {
        fail_msg("expected %s at %llu, got %s at %llu: %s", audit_finding_kind_name(kind),
                 (unsigned long long)seq, audit_finding_kind_name(f.kind),
                 (unsigned long long)f.seq, f.message);
    }
    if (kind != AUDIT_OK) {
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
        assert_non_null(strstr(f.message, num));
    } else {
        assert_string_equal(f.message, "");
    }
}

static void test_intact_trail(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    struct audit_verify_stats st;
    struct audit_finding f = run_from(t, only1, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(f.seq, 0);
    assert_int_equal(st.records, 100);
    assert_int_equal(st.checkpoints, 10);
    assert_int_equal(st.checkpoints_verified, 10);
    assert_int_equal(st.findings, 0);
    assert_int_equal(st.last_seq, 100);
    assert_memory_equal(st.last_hash, t->r[99].hash, AUDIT_HASH_BYTES);
    assert_int_equal(st.last_checkpoint_seq, 100);
    assert_int_equal(st.records_unsigned, 0);
    free(t);

    /* An empty trail verifies; records without any checkpoint verify but are all unsigned. */
    t = make_trail(0, 0);
    expect(t, only1, AUDIT_OK, 0);
    free(t);
    t = make_trail(7, 0);
    f = run_from(t, only1, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(st.records_unsigned, 7);
    assert_int_equal(st.last_checkpoint_seq, 0);
    free(t);

    assert_string_equal(audit_finding_kind_name(AUDIT_OK), "ok");
    assert_string_equal(audit_finding_kind_name(AUDIT_FINDING_HASH_MISMATCH), "hash_mismatch");
    assert_string_equal(audit_finding_kind_name(AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL),
                        "checkpoint_beyond_tail");
}

/* Each field of record 42 changed in turn (to another valid value, so only the hash can tell):
 * each is found at 42. */
static void test_every_field_tampered(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    static const char *const other[AUDIT_FIELD_COUNT] = {
        [AUDIT_FIELD_ACTOR] = "system",
        [AUDIT_FIELD_ACTION] = "authz.allow",
        [AUDIT_FIELD_RESOURCE] = "POST /v1/accounts",
        [AUDIT_FIELD_DECISION] = "allow",
        [AUDIT_FIELD_REASON] = "nothing to see",
        [AUDIT_FIELD_REQUEST_ID] = "req-43",
        [AUDIT_FIELD_TRACE_ID] = "0af7651916cd43dd8448eb211c80319c",
        [AUDIT_FIELD_SOURCE] = "198.51.100.1:443",
    };
    for (int i = 0; i < AUDIT_FIELD_COUNT; i++) {
        struct trail *c = copy(t);
        set(&c->r[41], (enum audit_field)i, other[i]);
        expect(c, only1, AUDIT_FINDING_HASH_MISMATCH, 42);
        /* Only that one record is reported. */
        struct audit_verify_stats st;
        run_from(c, only1, 0, NULL, &st);
        assert_int_equal(st.findings, 1);
        free(c);
    }
    /* Even one character, even the empty reason made non-empty. */
    struct trail *c = copy(t);
    c->r[41].resource[0] = 'G';
    expect(c, only1, AUDIT_FINDING_HASH_MISMATCH, 42);
    free(c);
    c = copy(t);
    assert_string_equal(c->r[44].reason, "");
    set(&c->r[44], AUDIT_FIELD_REASON, " ");
    expect(c, only1, AUDIT_FINDING_HASH_MISMATCH, 45);
    free(c);

    /* time_unix_ms. */
    c = copy(t);
    c->r[41].time_unix_ms += 1;
    expect(c, only1, AUDIT_FINDING_HASH_MISMATCH, 42);
    free(c);
    /* The stored hash itself. */
    c = copy(t);
    c->r[41].hash[31] ^= 0x80;
    expect(c, only1, AUDIT_FINDING_HASH_MISMATCH, 42);
    free(c);
    /* prev_hash. */
    c = copy(t);
    c->r[41].prev_hash[0] ^= 1;
    expect(c, only1, AUDIT_FINDING_PREV_HASH_MISMATCH, 42);
    free(c);
    /* seq, upwards and downwards. */
    c = copy(t);
    c->r[41].seq = 47;
    expect(c, only1, AUDIT_FINDING_SEQ_GAP, 42);
    free(c);
    c = copy(t);
    c->r[41].seq = 40;
    expect(c, only1, AUDIT_FINDING_SEQ_OUT_OF_ORDER, 42);
    free(c);
    c = copy(t);
    c->r[41].seq = 0;
    expect(c, only1, AUDIT_FINDING_INVALID_RECORD, 42);
    free(c);
    /* A value no ledgerd writes: a control character, invalid UTF-8, an unterminated field. */
    c = copy(t);
    c->r[41].actor[2] = '\n';
    expect(c, only1, AUDIT_FINDING_INVALID_RECORD, 42);
    free(c);
    c = copy(t);
    c->r[41].reason[0] = (char)0xc0;
    expect(c, only1, AUDIT_FINDING_INVALID_RECORD, 42);
    free(c);
    c = copy(t);
    memset(c->r[41].source, 'x', sizeof(c->r[41].source));
    expect(c, only1, AUDIT_FINDING_INVALID_RECORD, 42);
    free(c);
    /* The first record, whose prev_hash must be zeros. */
    c = copy(t);
    c->r[0].prev_hash[5] = 1;
    expect(c, only1, AUDIT_FINDING_PREV_HASH_MISMATCH, 1);
    free(c);
    free(t);
}

/* A change covered by recomputing hashes: only the chain (next record) or a checkpoint sees. */
static void test_rewritten_chain(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    /* Record 42 changed and its own hash recomputed: record 43 no longer links to it. */
    struct trail *c = copy(t);
    set(&c->r[41], AUDIT_FIELD_DECISION, "allow");
    assert_int_equal(audit_chain_next(c->r[40].hash, 41, &c->r[41]), 0);
    expect(c, only1, AUDIT_FINDING_PREV_HASH_MISMATCH, 43);
    free(c);

    /* Changed and the whole rest of the chain recomputed: the next checkpoint sees it, and each
     * later one too. */
    c = copy(t);
    set(&c->r[41], AUDIT_FIELD_DECISION, "allow");
    rechain(c, 41);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, 50);
    struct audit_verify_stats st;
    run_from(c, only1, 0, NULL, &st);
    assert_int_equal(st.findings, 6);
    assert_int_equal(st.checkpoints_verified, 4);
    assert_int_equal(st.last_checkpoint_seq, 40);
    free(c);

    /* A change right at a checkpoint's record. */
    c = copy(t);
    c->r[89].time_unix_ms++;
    rechain(c, 89);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, 90);
    free(c);

    /* Known limit: a change after the last checkpoint, with the chain recomputed, is not seen
     * unless a later checkpoint (kept elsewhere) is given; records_unsigned says how many
     * records are in that position. */
    struct trail *t105 = make_trail(105, 105);
    assert_int_equal(t105->ncp, 10);
    c = copy(t105);
    set(&c->r[102], AUDIT_FIELD_ACTOR, "anonymous");
    rechain(c, 102);
    assert_memory_not_equal(c->r[104].hash, t105->r[104].hash, AUDIT_HASH_BYTES);
    struct audit_finding f = run_from(c, only1, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(st.records_unsigned, 5);
    add_checkpoint(t105, key1, 105); /* made before the change, shipped elsewhere */
    c->cp[c->ncp++] = t105->cp[10];
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, 105);
    free(c);
    free(t105);
    free(t);
}

static void test_removed_and_reordered(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    /* One record removed. */
    struct trail *c = copy(t);
    remove_record(c, 41);
    expect(c, only1, AUDIT_FINDING_SEQ_GAP, 42);
    free(c);
    /* Several, including a checkpoint's record (which then cannot be checked). */
    c = copy(t);
    for (int i = 0; i < 5; i++) {
        remove_record(c, 47);
    }
    expect(c, only1, AUDIT_FINDING_SEQ_GAP, 48);
    free(c);
    /* The first record. */
    c = copy(t);
    remove_record(c, 0);
    expect(c, only1, AUDIT_FINDING_SEQ_GAP, 1);
    free(c);
    /* Removed and the rest renumbered: the renumbered record does not link. */
    c = copy(t);
    remove_record(c, 41);
    for (size_t k = 41; k < c->n; k++) {
        c->r[k].seq--;
    }
    expect(c, only1, AUDIT_FINDING_PREV_HASH_MISMATCH, 42);
    free(c);
    /* Removed, renumbered and the chain recomputed: the checkpoints see it. */
    c = copy(t);
    remove_record(c, 41);
    rechain(c, 41);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, 50);
    free(c);

    /* Two records swapped in the stream. */
    c = copy(t);
    struct audit_record tmp = c->r[41];
    c->r[41] = c->r[42];
    c->r[42] = tmp;
    expect(c, only1, AUDIT_FINDING_SEQ_GAP, 42);
    /* ... and their seqs swapped back, as rows whose content was exchanged. */
    c->r[41].seq = 42;
    c->r[42].seq = 43;
    expect(c, only1, AUDIT_FINDING_PREV_HASH_MISMATCH, 42);
    free(c);

    /* A record given twice. */
    c = copy(t);
    memmove(&c->r[43], &c->r[42], (c->n - 42) * sizeof(c->r[0]));
    c->r[42] = c->r[41];
    c->n++;
    expect(c, only1, AUDIT_FINDING_SEQ_OUT_OF_ORDER, 43);
    free(c);
    free(t);
}

static void test_truncated(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    /* The tail cut before the last checkpoint's record. */
    struct trail *c = copy(t);
    c->n = 95;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, 100);
    free(c);
    /* Further back: the first checkpoint past the end is named; each one is counted. */
    c = copy(t);
    c->n = 80;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, 90);
    struct audit_verify_stats st;
    run_from(c, only1, 0, NULL, &st);
    assert_int_equal(st.findings, 2);
    assert_int_equal(st.last_seq, 80);
    free(c);
    c = copy(t);
    c->n = 99;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, 100);
    free(c);
    /* Every record gone, the checkpoints left. */
    c = copy(t);
    c->n = 0;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, 10);
    free(c);

    /* Known limit: records after the last checkpoint cut off are not seen in the database
     * alone... */
    struct trail *t105 = make_trail(105, 105);
    c = copy(t105);
    c->n = 101;
    struct audit_finding f = run_from(c, only1, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(st.records_unsigned, 1);
    /* ... nor when the checkpoints table is cut as well... */
    c->n = 95;
    c->ncp = 9;
    f = run_from(c, only1, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    /* ... but a checkpoint kept elsewhere (shipped off the host when it was made) shows it. */
    c->cp[c->ncp++] = t105->cp[9];
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, 100);
    free(c);
    free(t105);
    free(t);
}

static void test_forged_checkpoints(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    /* Signed by a key the verifier does not have. */
    struct trail *c = copy(t);
    assert_int_equal(audit_checkpoint_sign(key3, &c->cp[2]), 0);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY, 30);
    free(c);
    /* The right key id, one bit of the signature flipped. */
    c = copy(t);
    c->cp[4].signature[17] ^= 0x04;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID, 50);
    free(c);
    /* The right key id, another key's signature. */
    c = copy(t);
    char id1[LIMIT_AUDIT_KEY_ID_LEN + 1];
    audit_signer_public_key(key1, NULL, id1);
    assert_int_equal(audit_checkpoint_sign(key3, &c->cp[4]), 0);
    memcpy(c->cp[4].key_id, id1, sizeof(id1));
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID, 50);
    free(c);
    /* The signed hash changed after signing. */
    c = copy(t);
    c->cp[6].hash[0] ^= 1;
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID, 70);
    free(c);
    /* A valid signature by the right key over another hash (the signing key was used to
     * sign a rewritten chain): the hash at that seq disagrees. */
    c = copy(t);
    c->cp[6].hash[0] ^= 1;
    assert_int_equal(audit_checkpoint_sign(key1, &c->cp[6]), 0);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, 70);
    free(c);
    /* Malformed checkpoints. */
    c = copy(t);
    c->cp[0].key_id[0] = 'Z';
    expect(c, only1, AUDIT_FINDING_INVALID_CHECKPOINT, 10);
    free(c);
    c = copy(t);
    c->cp[0].seq = 0;
    expect(c, only1, AUDIT_FINDING_INVALID_CHECKPOINT, 0);
    free(c);
    /* No keys at all: every checkpoint is unknown. */
    struct audit_verify_stats st;
    struct audit_finding f = run_from(t, NULL, 0, NULL, &st);
    assert_int_equal(f.kind, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY);
    assert_int_equal(f.seq, 10);
    assert_int_equal(st.findings, 10);
    free(t);
}

static void test_key_rotation(void **state)
{
    (void)state;
    /* Checkpoints up to 50 by key 1, after it by key 2. */
    struct trail *t = make_trail(100, 50);
    expect(t, both, AUDIT_OK, 0);
    expect(t, only2, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY, 10);
    expect(t, only1, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY, 60);
    struct audit_verify_stats st;
    run_from(t, only2, 0, NULL, &st);
    assert_int_equal(st.findings, 5);
    assert_int_equal(st.checkpoints_verified, 5);
    /* During a rotation both keys sign the same seq: either or both verify. */
    struct trail *c = copy(t);
    add_checkpoint(c, key1, 100);
    expect(c, both, AUDIT_OK, 0);
    expect(c, only1, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY, 60);
    free(c);
    free(t);
}

/* A trail whose records up to 50 were archived: verification starts from a checkpoint. */
static void test_start_after(void **state)
{
    (void)state;
    struct trail *t = make_trail(100, 100);
    struct trail *c = copy(t);
    memmove(&c->r[0], &c->r[50], 50 * sizeof(c->r[0]));
    c->n = 50;
    memmove(&c->cp[0], &c->cp[4], 6 * sizeof(c->cp[0]));
    c->ncp = 6;
    struct audit_verify_stats st;
    struct audit_finding f = run_from(c, only1, 50, t->r[49].hash, &st);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(st.records, 50);
    assert_int_equal(st.checkpoints_verified, 6);
    assert_int_equal(st.records_unsigned, 0);
    /* A wrong starting hash: the checkpoint at 50 disagrees with it. */
    uint8_t wrong[AUDIT_HASH_BYTES];
    memcpy(wrong, t->r[49].hash, sizeof(wrong));
    wrong[0] ^= 1;
    f = run_from(c, only1, 50, wrong, &st);
    assert_int_equal(f.kind, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH);
    assert_int_equal(f.seq, 50);
    /* And without that checkpoint, record 51 does not link. */
    memmove(&c->cp[0], &c->cp[1], 5 * sizeof(c->cp[0]));
    c->ncp = 5;
    f = run_from(c, only1, 50, wrong, &st);
    assert_int_equal(f.kind, AUDIT_FINDING_PREV_HASH_MISMATCH);
    assert_int_equal(f.seq, 51);
    free(c);

    struct audit_verify *v = NULL;
    uint8_t nonzero[AUDIT_HASH_BYTES] = {1};
    assert_int_equal(audit_verify_new(only1, 0, nonzero, &v), -EINVAL);
    assert_null(v);
    assert_int_equal(audit_verify_new(only1, (uint64_t)LIMIT_AUDIT_INTEGER_MAX, nonzero, &v),
                     -EINVAL);
    free(t);
}

/* Feeding out of the documented order is the caller's mistake, answered with an error. */
static void test_feeding_order(void **state)
{
    (void)state;
    struct trail *t = make_trail(30, 30);
    struct audit_verify *v = NULL;
    struct audit_finding f;
    assert_int_equal(audit_verify_new(only1, 0, NULL, &v), 0);
    for (size_t k = 0; k < 15; k++) {
        assert_int_equal(audit_verify_record(v, &t->r[k], &f), 0);
        assert_int_equal(f.kind, AUDIT_OK);
    }
    /* Checkpoint 10 after record 15: it can no longer be checked. */
    assert_int_equal(audit_verify_checkpoint(v, &t->cp[0], &f), -EINVAL);
    /* Checkpoint 30 waits; then 20 comes after it: out of order. */
    assert_int_equal(audit_verify_checkpoint(v, &t->cp[2], &f), 0);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(audit_verify_checkpoint(v, &t->cp[1], &f), -EINVAL);
    for (size_t k = 15; k < 30; k++) {
        assert_int_equal(audit_verify_record(v, &t->r[k], &f), 0);
        assert_int_equal(f.kind, AUDIT_OK);
    }
    struct audit_verify_stats st;
    assert_int_equal(audit_verify_finish(v, &f, &st), 0);
    assert_int_equal(f.kind, AUDIT_OK);
    assert_int_equal(st.checkpoints_verified, 1);
    audit_verify_free(v);

    /* The waiting queue is bounded. */
    assert_int_equal(audit_verify_new(only1, 0, NULL, &v), 0);
    for (size_t i = 0; i < LIMIT_AUDIT_VERIFY_PENDING_MAX; i++) {
        assert_int_equal(audit_verify_checkpoint(v, &t->cp[0], &f), 0);
    }
    assert_int_equal(audit_verify_checkpoint(v, &t->cp[0], &f), -ENOSPC);
    /* Records drain it. */
    for (size_t k = 0; k < 10; k++) {
        assert_int_equal(audit_verify_record(v, &t->r[k], &f), 0);
        assert_int_equal(f.kind, AUDIT_OK);
    }
    assert_int_equal(audit_verify_checkpoint(v, &t->cp[1], &f), 0);
    assert_int_equal(audit_verify_finish(v, &f, &st), 0);
    assert_int_equal(f.kind, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL);
    assert_int_equal(f.seq, 20);
    assert_int_equal(st.checkpoints_verified, LIMIT_AUDIT_VERIFY_PENDING_MAX);
    audit_verify_free(v);
    audit_verify_free(NULL);
    free(t);
}

/* Each step reports its own finding; the first stays the first. */
static void test_step_findings(void **state)
{
    (void)state;
    struct trail *t = make_trail(20, 20);
    t->r[4].time_unix_ms++;
    t->r[14].seq = 99;
    struct audit_verify *v = NULL;
    struct audit_finding f;
    assert_int_equal(audit_verify_new(only1, 0, NULL, &v), 0);
    for (size_t k = 0; k < 20; k++) {
        assert_int_equal(audit_verify_record(v, &t->r[k], &f), 0);
        if (k == 4) {
            assert_int_equal(f.kind, AUDIT_FINDING_HASH_MISMATCH);
            assert_int_equal(f.seq, 5);
        } else if (k == 14) {
            assert_int_equal(f.kind, AUDIT_FINDING_SEQ_GAP);
            assert_int_equal(f.seq, 15);
        } else if (k > 14) {
            assert_int_equal(f.kind, AUDIT_FINDING_SEQ_OUT_OF_ORDER);
        } else {
            assert_int_equal(f.kind, AUDIT_OK);
        }
    }
    struct audit_verify_stats st;
    assert_int_equal(audit_verify_finish(v, &f, &st), 0);
    assert_int_equal(f.kind, AUDIT_FINDING_HASH_MISMATCH);
    assert_int_equal(f.seq, 5);
    assert_int_equal(st.findings, 7);
    audit_verify_free(v);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_trail),    cmocka_unit_test(test_every_field_tampered),
        cmocka_unit_test(test_rewritten_chain), cmocka_unit_test(test_removed_and_reordered),
        cmocka_unit_test(test_truncated),       cmocka_unit_test(test_forged_checkpoints),
        cmocka_unit_test(test_key_rotation),    cmocka_unit_test(test_start_after),
        cmocka_unit_test(test_feeding_order),   cmocka_unit_test(test_step_findings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
