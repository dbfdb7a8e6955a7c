/*
 * test_audit.c — audit records: the rules of every field (length, UTF-8, control characters,
 * grammars), the canonical encoding against golden bytes and hashes (the same ones
 * docs/security/audit.md recomputes by hand), encoding at the limits, the hash chain, and the
 * checkpoint message and schedule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "core/sha256.h"

/* The two records of the worked example in docs/security/audit.md. */
#define GOLDEN1_JSON                                                                               \
    "{\"action\":\"migration.apply\",\"actor\":\"system\",\"decision\":\"success\",\"format\":"    \
    "\"ledgerd.audit.record.v1\",\"prev_hash\":"                                                   \
    "\"0000000000000000000000000000000000000000000000000000000000000000\",\"reason\":\"\","        \
    "\"request_id\":\"\",\"resource\":\"migration:0002_audit\",\"seq\":1,\"source\":\"\","         \
    "\"time_unix_ms\":1767225600000,\"trace_id\":\"\"}"
#define GOLDEN1_HASH "c489e7e48dac7a08324dd71cbdbf7d657b704961eb443d14599ed9e9d51e58dd"
#define GOLDEN2_REASON "scope \"ledger:write\" missing \\ r\xc3\xb4le"
#define GOLDEN2_JSON                                                                               \
    "{\"action\":\"authz.deny\",\"actor\":\"apikey:k_7Qd2\",\"decision\":\"deny\",\"format\":"     \
    "\"ledgerd.audit.record.v1\",\"prev_hash\":"                                                   \
    "\"c489e7e48dac7a08324dd71cbdbf7d657b704961eb443d14599ed9e9d51e58dd\",\"reason\":"             \
    "\"scope \\\"ledger:write\\\" missing \\\\ r\xc3\xb4le\",\"request_id\":\"req-01\","           \
    "\"resource\":\"POST /v1/transfers\",\"seq\":2,\"source\":\"203.0.113.7:51234\","              \
    "\"time_unix_ms\":1767225601234,\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}"
#define GOLDEN2_HASH "b1fb005ce615fe2f05d0e58a37e8c2ff664919c35d8e711707d8dc810e534db9"
#define GOLDEN_CP_JSON                                                                             \
    "{\"format\":\"ledgerd.audit.checkpoint.v1\",\"hash\":"                                        \
    "\"b1fb005ce615fe2f05d0e58a37e8c2ff664919c35d8e711707d8dc810e534db9\",\"key_id\":"             \
    "\"21fe31dfa154a261\",\"seq\":2,\"time_unix_ms\":1767225660000}"

static void set(struct audit_record *r, enum audit_field f, const char *s)
{
    assert_int_equal(audit_record_set(r, f, s, strlen(s)), 0);
}

static void golden1(struct audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->time_unix_ms = 1767225600000;
    set(r, AUDIT_FIELD_ACTOR, "system");
    set(r, AUDIT_FIELD_ACTION, "migration.apply");
    set(r, AUDIT_FIELD_RESOURCE, "migration:0002_audit");
    set(r, AUDIT_FIELD_DECISION, "success");
}

static void golden2(struct audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->time_unix_ms = 1767225601234;
    set(r, AUDIT_FIELD_ACTOR, "apikey:k_7Qd2");
    set(r, AUDIT_FIELD_ACTION, "authz.deny");
    set(r, AUDIT_FIELD_RESOURCE, "POST /v1/transfers");
    set(r, AUDIT_FIELD_DECISION, "deny");
    set(r, AUDIT_FIELD_REASON, GOLDEN2_REASON);
    set(r, AUDIT_FIELD_REQUEST_ID, "req-01");
    set(r, AUDIT_FIELD_TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e4736");
    set(r, AUDIT_FIELD_SOURCE, "203.0.113.7:51234");
}

static void hex_of(const uint8_t h[AUDIT_HASH_BYTES], char out[2 * AUDIT_HASH_BYTES + 1])
{
    sha256_hex(h, out);
}

static void test_golden_chain(void **state)
{
    (void)state;
    struct audit_record r1, r2;
    char hex[2 * AUDIT_HASH_BYTES + 1];
    struct buf b;
    buf_init(&b, LIMIT_AUDIT_CANONICAL_BYTES_MAX);

    golden1(&r1);
    assert_int_equal(audit_chain_next(NULL, 0, &r1), 0);
    assert_int_equal(r1.seq, 1);
    assert_int_equal(audit_canonical(&r1, &b), 0);
    assert_string_equal(b.data, GOLDEN1_JSON);
    hex_of(r1.hash, hex);
    assert_string_equal(hex, GOLDEN1_HASH);
    /* The hash is SHA-256 of exactly those bytes. */
    uint8_t d[SHA256_BYTES];
    assert_int_equal(sha256_digest(b.data, b.len, d), 0);
    assert_memory_equal(d, r1.hash, SHA256_BYTES);

    golden2(&r2);
    assert_int_equal(audit_chain_next(r1.hash, r1.seq, &r2), 0);
    assert_int_equal(r2.seq, 2);
    assert_memory_equal(r2.prev_hash, r1.hash, AUDIT_HASH_BYTES);
    buf_reset(&b);
    assert_int_equal(audit_canonical(&r2, &b), 0);
    assert_string_equal(b.data, GOLDEN2_JSON);
    hex_of(r2.hash, hex);
    assert_string_equal(hex, GOLDEN2_HASH);
    assert_int_equal(audit_record_hash(&r2, d), 0);
    assert_memory_equal(d, r2.hash, AUDIT_HASH_BYTES);

    /* The stored hash is not part of the encoding; prev_hash and seq are. */
    memset(r2.hash, 0xee, sizeof(r2.hash));
    buf_reset(&b);
    assert_int_equal(audit_canonical(&r2, &b), 0);
    assert_string_equal(b.data, GOLDEN2_JSON);
    r2.seq = 3;
    assert_int_equal(audit_record_hash(&r2, d), 0);
    hex_of(d, hex);
    assert_string_not_equal(hex, GOLDEN2_HASH);
    buf_release(&b);
}

static void test_golden_checkpoint_message(void **state)
{
    (void)state;
    struct audit_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    cp.seq = 2;
    cp.time_unix_ms = 1767225660000;
    memcpy(cp.key_id, "21fe31dfa154a261", LIMIT_AUDIT_KEY_ID_LEN + 1);
    struct audit_record r1, r2;
    golden1(&r1);
    assert_int_equal(audit_chain_next(NULL, 0, &r1), 0);
    golden2(&r2);
    assert_int_equal(audit_chain_next(r1.hash, 1, &r2), 0);
    memcpy(cp.hash, r2.hash, AUDIT_HASH_BYTES);
    struct buf b;
    buf_init(&b, 512);
    assert_int_equal(audit_checkpoint_canonical(&cp, &b), 0);
    assert_string_equal(b.data, GOLDEN_CP_JSON);

    /* Out of range: seq 0, a key id not 16 lower-case hex digits, negative time. The buffer is
     * left as it was. */
    size_t len = b.len;
    struct audit_checkpoint bad = cp;
    bad.seq = 0;
    assert_int_equal(audit_checkpoint_canonical(&bad, &b), -EINVAL);
    bad = cp;
    bad.key_id[3] = 'E';
    assert_int_equal(audit_checkpoint_canonical(&bad, &b), -EINVAL);
    bad = cp;
    bad.key_id[LIMIT_AUDIT_KEY_ID_LEN] = 'a';
    assert_int_equal(audit_checkpoint_canonical(&bad, &b), -EINVAL);
    bad = cp;
    bad.time_unix_ms = -1;
    assert_int_equal(audit_checkpoint_canonical(&bad, &b), -EINVAL);
    bad = cp;
    bad.seq = (uint64_t)LIMIT_AUDIT_INTEGER_MAX + 1;
    assert_int_equal(audit_checkpoint_canonical(&bad, &b), -EINVAL);
    assert_int_equal(b.len, len);
    buf_release(&b);
}

/* Every refusal leaves the field as it was. */
static void refused(enum audit_field f, const char *s, size_t len, int expected)
{
    struct audit_record r;
    golden2(&r);
    struct audit_record before = r;
    assert_int_equal(audit_record_set(&r, f, s, len), expected);
    assert_memory_equal(&r, &before, sizeof(r));
}

#define REFUSED(f, s) refused(f, s, sizeof(s) - 1, -EINVAL)

static void test_text_rules(void **state)
{
    (void)state;
    static const enum audit_field text_fields[] = {AUDIT_FIELD_ACTOR, AUDIT_FIELD_RESOURCE,
                                                   AUDIT_FIELD_REASON, AUDIT_FIELD_SOURCE};
    for (size_t i = 0; i < sizeof(text_fields) / sizeof(text_fields[0]); i++) {
        enum audit_field f = text_fields[i];
        struct audit_record r;
        golden2(&r);
        /* UTF-8 of every length is kept as is: é, €, U+1D11E, U+10FFFF. */
        set(&r, f, "a \xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf \"q\" \\");
        /* Control characters: C0, NUL inside the value, DEL, C1 (U+0085, U+009F). */
        REFUSED(f, "a\nb");
        REFUSED(f, "a\tb");
        REFUSED(f, "\r");
        REFUSED(f, "a\0b");
        REFUSED(f, "a\x1b[31m");
        REFUSED(f, "a\x7f");
        REFUSED(f, "a\xc2\x85");
        REFUSED(f, "\xc2\x9f");
        /* Invalid UTF-8: a lone continuation, overlong forms, a surrogate, past U+10FFFF,
         * truncated sequences, bytes that never occur. */
        REFUSED(f, "\x80");
        REFUSED(f, "\xc0\xaf");
        REFUSED(f, "\xc1\xbf");
        REFUSED(f, "\xe0\x80\xaf");
        REFUSED(f, "\xf0\x80\x80\xaf");
        REFUSED(f, "\xed\xa0\x80");
        REFUSED(f, "\xf4\x90\x80\x80");
        REFUSED(f, "a\xe2\x82");
        REFUSED(f, "a\xc3");
        REFUSED(f, "\xe2\x28\xa1");
        REFUSED(f, "\xfe");
        REFUSED(f, "\xff");
    }
}

static void test_lengths(void **state)
{
    (void)state;
    static const struct {
        enum audit_field f;
        size_t max;
        char c;
    } cases[] = {
        {AUDIT_FIELD_ACTOR, LIMIT_AUDIT_ACTOR_LEN_MAX, 'a'},
        {AUDIT_FIELD_ACTION, LIMIT_AUDIT_ACTION_LEN_MAX, 'a'},
        {AUDIT_FIELD_RESOURCE, LIMIT_AUDIT_RESOURCE_LEN_MAX, 'r'},
        {AUDIT_FIELD_REASON, LIMIT_AUDIT_REASON_LEN_MAX, 'x'},
        {AUDIT_FIELD_REQUEST_ID, LIMIT_REQUEST_ID_LEN_MAX, 'q'},
        {AUDIT_FIELD_SOURCE, LIMIT_AUDIT_SOURCE_LEN_MAX, '1'},
    };
    char s[LIMIT_AUDIT_ACTOR_LEN_MAX + 2];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(s, cases[i].c, sizeof(s));
        struct audit_record r;
        golden2(&r);
        assert_int_equal(audit_record_set(&r, cases[i].f, s, cases[i].max), 0);
        assert_int_equal(audit_record_validate(&r, NULL, 0), 0);
        /* One byte more is refused, never cut. */
        refused(cases[i].f, s, cases[i].max + 1, -ENAMETOOLONG);
        refused(cases[i].f, s, cases[i].max + 100, -ENAMETOOLONG);
    }
    /* A multi-byte character that would end past the limit is refused whole. */
    memset(s, 'a', sizeof(s));
    memcpy(s + LIMIT_AUDIT_REASON_LEN_MAX - 1, "\xc3\xa9", 2);
    refused(AUDIT_FIELD_REASON, s, LIMIT_AUDIT_REASON_LEN_MAX + 1, -ENAMETOOLONG);
    refused(AUDIT_FIELD_DECISION, "success!", 8, -ENAMETOOLONG);
    refused(AUDIT_FIELD_TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e47360", 33, -ENAMETOOLONG);
}

static void test_field_grammars(void **state)
{
    (void)state;
    struct audit_record r;
    golden2(&r);
    /* Required fields are not empty. */
    refused(AUDIT_FIELD_ACTOR, "", 0, -EINVAL);
    refused(AUDIT_FIELD_RESOURCE, "", 0, -EINVAL);
    refused(AUDIT_FIELD_ACTION, "", 0, -EINVAL);
    refused(AUDIT_FIELD_DECISION, "", 0, -EINVAL);
    /* Optional ones may be. */
    set(&r, AUDIT_FIELD_REASON, "");
    set(&r, AUDIT_FIELD_REQUEST_ID, "");
    set(&r, AUDIT_FIELD_TRACE_ID, "");
    set(&r, AUDIT_FIELD_SOURCE, "");
    assert_int_equal(audit_record_validate(&r, NULL, 0), 0);

    /* Actions: dotted names of [a-z0-9_]. */
    const char *actions_ok[] = {"auth.failed",   "authz.allow", "transfer.create", "apikey.revoke",
                                "config.reload", "keys.reload", "migration.apply", "a",
                                "a_1.b2"};
    for (size_t i = 0; i < sizeof(actions_ok) / sizeof(actions_ok[0]); i++) {
        set(&r, AUDIT_FIELD_ACTION, actions_ok[i]);
    }
    REFUSED(AUDIT_FIELD_ACTION, ".a");
    REFUSED(AUDIT_FIELD_ACTION, "a.");
    REFUSED(AUDIT_FIELD_ACTION, "a..b");
    REFUSED(AUDIT_FIELD_ACTION, "Auth.failed");
    REFUSED(AUDIT_FIELD_ACTION, "auth failed");
    REFUSED(AUDIT_FIELD_ACTION, "auth-failed");

    const char *decisions[] = {"allow", "deny", "success", "failure"};
    for (size_t i = 0; i < 4; i++) {
        set(&r, AUDIT_FIELD_DECISION, decisions[i]);
    }
    REFUSED(AUDIT_FIELD_DECISION, "Allow");
    REFUSED(AUDIT_FIELD_DECISION, "allowed");
    REFUSED(AUDIT_FIELD_DECISION, "den");
    REFUSED(AUDIT_FIELD_DECISION, "ok");

    /* Request ids follow the X-Request-Id grammar. */
    set(&r, AUDIT_FIELD_REQUEST_ID, "0190a5c0-7a1b-7cc2-8d3e-4f5a6b7c8d9e");
    REFUSED(AUDIT_FIELD_REQUEST_ID, "req 1");
    REFUSED(AUDIT_FIELD_REQUEST_ID, "req/1");
    REFUSED(AUDIT_FIELD_REQUEST_ID, "r\xc3\xa9q");

    /* Trace ids: 32 lower-case hex digits, not all zero (W3C Trace Context). */
    REFUSED(AUDIT_FIELD_TRACE_ID, "00000000000000000000000000000000");
    REFUSED(AUDIT_FIELD_TRACE_ID, "4BF92F3577B34DA6A3CE929D0E0E4736");
    REFUSED(AUDIT_FIELD_TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e473");
    REFUSED(AUDIT_FIELD_TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e473g");

    assert_string_equal(audit_field_name(AUDIT_FIELD_REQUEST_ID), "request_id");
    assert_string_equal(audit_field_name(AUDIT_FIELD_SOURCE), "source");
}

/* A record written into directly (as storage reads it back) is checked by validate. */
static void test_validate(void **state)
{
    (void)state;
    struct audit_record r;
    char err[128];
    golden2(&r);
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), 0);

    /* A field that fills its array without a NUL: too long. */
    memset(r.source, '1', sizeof(r.source));
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "source"));
    struct buf b;
    buf_init(&b, LIMIT_AUDIT_CANONICAL_BYTES_MAX);
    assert_int_equal(audit_canonical(&r, &b), -EINVAL);
    assert_int_equal(b.len, 0);
    uint8_t h[AUDIT_HASH_BYTES];
    assert_int_equal(audit_record_hash(&r, h), -EINVAL);

    golden2(&r);
    memcpy(r.actor, "a\x01", 3);
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "actor"));
    golden2(&r);
    memcpy(r.decision, "maybe", 6);
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "decision"));
    golden2(&r);
    r.time_unix_ms = -1;
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "time_unix_ms"));
    r.time_unix_ms = LIMIT_AUDIT_INTEGER_MAX;
    assert_int_equal(audit_record_validate(&r, NULL, 0), 0);
    r.time_unix_ms = LIMIT_AUDIT_INTEGER_MAX + 1;
    assert_int_equal(audit_record_validate(&r, NULL, 0), -EINVAL);
    golden2(&r);
    r.seq = (uint64_t)LIMIT_AUDIT_INTEGER_MAX + 1;
    assert_int_equal(audit_record_validate(&r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "seq"));
    /* A tiny err buffer is cut, not overrun. */
    golden2(&r);
    r.action[0] = 'A';
    char tiny[4] = {'x', 'x', 'x', 'x'};
    assert_int_equal(audit_record_validate(&r, tiny, 3), -EINVAL);
    assert_int_equal(tiny[2], '\0');
    assert_int_equal(tiny[3], 'x');
    buf_release(&b);
}

/* A record at every maximum, made of the characters that need escaping, still encodes within
 * LIMIT_AUDIT_CANONICAL_BYTES_MAX, and the encoding is JSON that gives the fields back. */
static void test_canonical_at_limits(void **state)
{
    (void)state;
    struct audit_record r;
    memset(&r, 0, sizeof(r));
    char s[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    for (size_t i = 0; i < sizeof(s); i++) {
        s[i] = i % 2 ? '"' : '\\';
    }
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTOR, s, LIMIT_AUDIT_ACTOR_LEN_MAX), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_RESOURCE, s, LIMIT_AUDIT_RESOURCE_LEN_MAX),
                     0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_REASON, s, LIMIT_AUDIT_REASON_LEN_MAX), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_SOURCE, s, LIMIT_AUDIT_SOURCE_LEN_MAX), 0);
    memset(s, 'a', sizeof(s));
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTION, s, LIMIT_AUDIT_ACTION_LEN_MAX), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_REQUEST_ID, s, LIMIT_REQUEST_ID_LEN_MAX), 0);
    set(&r, AUDIT_FIELD_TRACE_ID, "ffffffffffffffffffffffffffffffff");
    set(&r, AUDIT_FIELD_DECISION, "failure");
    r.time_unix_ms = LIMIT_AUDIT_INTEGER_MAX;
    memset(r.prev_hash, 0xff, sizeof(r.prev_hash));
    assert_int_equal(audit_chain_next(r.prev_hash, (uint64_t)LIMIT_AUDIT_INTEGER_MAX - 1, &r), 0);
    assert_int_equal(r.seq, LIMIT_AUDIT_INTEGER_MAX);

    struct buf b;
    buf_init(&b, LIMIT_AUDIT_CANONICAL_BYTES_MAX);
    assert_int_equal(audit_canonical(&r, &b), 0);
    assert_true(b.len <= LIMIT_AUDIT_CANONICAL_BYTES_MAX);
    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 12);
    assert_string_equal(json_string_value(json_object_get(doc, "actor")), r.actor);
    assert_string_equal(json_string_value(json_object_get(doc, "reason")), r.reason);
    assert_string_equal(json_string_value(json_object_get(doc, "format")), AUDIT_RECORD_FORMAT);
    assert_true(json_integer_value(json_object_get(doc, "seq")) == LIMIT_AUDIT_INTEGER_MAX);
    assert_true(json_integer_value(json_object_get(doc, "time_unix_ms")) ==
                LIMIT_AUDIT_INTEGER_MAX);
    json_decref(doc);

    /* A buffer too small: -ENOSPC and the buffer as it was. */
    struct buf small;
    buf_init(&small, 100);
    assert_int_equal(buf_append_str(&small, "keep"), 0);
    assert_int_equal(audit_canonical(&r, &small), -ENOSPC);
    assert_int_equal(small.len, 4);
    assert_string_equal(small.data, "keep");
    buf_release(&small);
    buf_release(&b);
}

static void test_chain_next(void **state)
{
    (void)state;
    struct audit_record r;
    uint8_t zero[AUDIT_HASH_BYTES] = {0};
    golden1(&r);
    assert_int_equal(audit_chain_next(zero, 0, &r), 0);
    assert_int_equal(r.seq, 1);
    assert_memory_equal(r.prev_hash, zero, AUDIT_HASH_BYTES);
    char hex[2 * AUDIT_HASH_BYTES + 1];
    hex_of(r.hash, hex);
    assert_string_equal(hex, GOLDEN1_HASH);

    /* Refusals leave seq, prev_hash and hash alone. */
    struct audit_record before = r;
    uint8_t prev[AUDIT_HASH_BYTES];
    memset(prev, 7, sizeof(prev));
    assert_int_equal(audit_chain_next(prev, 0, &r), -EINVAL);
    assert_memory_equal(&r, &before, sizeof(r));
    assert_int_equal(audit_chain_next(prev, (uint64_t)LIMIT_AUDIT_INTEGER_MAX, &r), -EOVERFLOW);
    assert_memory_equal(&r, &before, sizeof(r));
    r.decision[0] = 'S';
    before = r;
    assert_int_equal(audit_chain_next(prev, 5, &r), -EINVAL);
    assert_memory_equal(&r, &before, sizeof(r));

    /* Links: each record carries the hash of the one before. */
    golden1(&r);
    assert_int_equal(audit_chain_next(NULL, 0, &r), 0);
    for (uint64_t i = 2; i <= 5; i++) {
        struct audit_record next;
        golden2(&next);
        assert_int_equal(audit_chain_next(r.hash, r.seq, &next), 0);
        assert_int_equal(next.seq, i);
        assert_memory_equal(next.prev_hash, r.hash, AUDIT_HASH_BYTES);
        assert_memory_not_equal(next.hash, r.hash, AUDIT_HASH_BYTES);
        r = next;
    }
}

static void test_checkpoint_due(void **state)
{
    (void)state;
    /* Nothing new: never due, however long ago. */
    assert_false(audit_checkpoint_due(10, 10, 0, 1000000, 1000, 60000));
    assert_false(audit_checkpoint_due(0, 0, 0, 1000000, 1000, 60000));
    /* No checkpoint yet and records: due. */
    assert_true(audit_checkpoint_due(1, 0, 0, 5, 1000, 60000));
    /* Enough records. */
    assert_false(audit_checkpoint_due(1009, 10, 100000, 100001, 1000, 60000));
    assert_true(audit_checkpoint_due(1010, 10, 100000, 100001, 1000, 60000));
    /* Enough time. */
    assert_false(audit_checkpoint_due(11, 10, 100000, 159999, 1000, 60000));
    assert_true(audit_checkpoint_due(11, 10, 100000, 160000, 1000, 60000));
    /* The clock went back: wait for records rather than trust it. */
    assert_false(audit_checkpoint_due(11, 10, 100000, 50000, 1000, 60000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_chain),
        cmocka_unit_test(test_golden_checkpoint_message),
        cmocka_unit_test(test_text_rules),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_field_grammars),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_canonical_at_limits),
        cmocka_unit_test(test_chain_next),
        cmocka_unit_test(test_checkpoint_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
