/*
 * test_render.c — accounts, transfers and batch results as JSON: member order, amounts as
 * strings at the u128 maximum, flags in their fixed order, metadata byte for byte, null for
 * absent values, escaping, and a render that does not fit leaving the buffer untouched.
 * Outputs are parsed back with jansson.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "ledger/render.h"

static json_t *parse(const struct buf *b)
{
    json_error_t err;
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        fail_msg("render produced invalid JSON: %s at %d: %s", err.text, err.position, b->data);
    }
    return v;
}

static void keys_are(json_t *obj, const char *const *want, size_t n)
{
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), n);
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        assert_true(i < n);
        if (i < n) {
            assert_string_equal(key, want[i]);
        }
        i++;
    }
}

static const char *str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static struct ledger_account sample_account(void)
{
    struct ledger_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "acc-1");
    snprintf(a.ledger, sizeof(a.ledger), "USD");
    a.code = 65535;
    a.flags = LEDGER_ACCOUNT_FLAGS_ALL;
    static const char meta[] = "{\"b\":1.50,\"a\":\"\\u00e9\"}";
    a.metadata = (struct ledger_text){meta, sizeof(meta) - 1};
    a.debits_pending = 0;
    a.debits_posted = U128_MAX;
    a.credits_pending = 12;
    a.credits_posted = 1000000000000000000u;
    a.created_at_ms = 1700000000123;
    return a;
}

static void test_account(void **state)
{
    (void)state;
    struct ledger_account a = sample_account();
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(ledger_render_account(&b, &a), 0);
    /* Metadata goes out exactly as stored, not re-serialised. */
    assert_non_null(strstr(b.data, "\"metadata\":{\"b\":1.50,\"a\":\"\\u00e9\"},"));
    json_t *v = parse(&b);
    static const char *const keys[] = {"id",
                                       "ledger",
                                       "code",
                                       "flags",
                                       "metadata",
                                       "debits_pending",
                                       "debits_posted",
                                       "credits_pending",
                                       "credits_posted",
                                       "created_at"};
    keys_are(v, keys, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(str(v, "id"), "acc-1");
    assert_string_equal(str(v, "ledger"), "USD");
    assert_int_equal(json_integer_value(json_object_get(v, "code")), 65535);
    json_t *flags = json_object_get(v, "flags");
    assert_int_equal(json_array_size(flags), 2);
    assert_string_equal(json_string_value(json_array_get(flags, 0)),
                        "debits_must_not_exceed_credits");
    assert_string_equal(json_string_value(json_array_get(flags, 1)),
                        "credits_must_not_exceed_debits");
    assert_string_equal(str(v, "debits_pending"), "0");
    assert_string_equal(str(v, "debits_posted"), "340282366920938463463374607431768211455");
    assert_string_equal(str(v, "credits_pending"), "12");
    assert_string_equal(str(v, "credits_posted"), "1000000000000000000");
    assert_string_equal(str(v, "created_at"), "2023-11-14T22:13:20.123Z");
    json_decref(v);

    /* No flags, no metadata. */
    buf_reset(&b);
    a.flags = 0;
    a.metadata = (struct ledger_text){NULL, 0};
    assert_int_equal(ledger_render_account(&b, &a), 0);
    v = parse(&b);
    assert_int_equal(json_array_size(json_object_get(v, "flags")), 0);
    assert_true(json_is_null(json_object_get(v, "metadata")));
    json_decref(v);
    buf_release(&b);
}

static struct ledger_transfer sample_transfer(void)
{
    struct ledger_transfer t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "t.1");
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "a");
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "b");
    snprintf(t.ledger, sizeof(t.ledger), "EUR");
    t.amount = 250;
    t.code = 3;
    t.created_at_ms = 0;
    return t;
}

static void test_transfer_plain(void **state)
{
    (void)state;
    struct ledger_transfer t = sample_transfer();
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(ledger_render_transfer(&b, &t), 0);
    json_t *v = parse(&b);
    static const char *const keys[] = {"id",       "debit_account_id", "credit_account_id",
                                       "amount",   "ledger",           "code",
                                       "flags",    "pending_id",       "timeout_seconds",
                                       "metadata", "created_at",       "pending_status"};
    keys_are(v, keys, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(str(v, "amount"), "250");
    assert_string_equal(str(v, "ledger"), "EUR");
    assert_true(json_is_null(json_object_get(v, "pending_id")));
    assert_int_equal(json_integer_value(json_object_get(v, "timeout_seconds")), 0);
    assert_true(json_is_null(json_object_get(v, "metadata")));
    assert_true(json_is_null(json_object_get(v, "pending_status")));
    assert_string_equal(str(v, "created_at"), "1970-01-01T00:00:00.000Z");
    json_decref(v);
    buf_release(&b);
}

static void test_transfer_pending_states_and_flags(void **state)
{
    (void)state;
    static const struct {
        enum ledger_pending_state s;
        const char *name;
    } states[] = {{LEDGER_PENDING_PENDING, "pending"},
                  {LEDGER_PENDING_POSTED, "posted"},
                  {LEDGER_PENDING_VOIDED, "voided"},
                  {LEDGER_PENDING_EXPIRED, "expired"}};
    struct ledger_transfer t = sample_transfer();
    t.flags = LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_LINKED;
    t.timeout_seconds = 4294967295u;
    struct buf b;
    buf_init(&b, 4096);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        buf_reset(&b);
        t.pending_state = states[i].s;
        assert_int_equal(ledger_render_transfer(&b, &t), 0);
        json_t *v = parse(&b);
        assert_string_equal(str(v, "pending_status"), states[i].name);
        json_t *flags = json_object_get(v, "flags");
        assert_int_equal(json_array_size(flags), 2);
        assert_string_equal(json_string_value(json_array_get(flags, 0)), "linked");
        assert_string_equal(json_string_value(json_array_get(flags, 1)), "pending");
        assert_int_equal(json_integer_value(json_object_get(v, "timeout_seconds")), 4294967295);
        json_decref(v);
    }
    /* A post names its pending transfer. */
    buf_reset(&b);
    t = sample_transfer();
    t.flags = LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_VOID_PENDING;
    snprintf(t.pending_id, sizeof(t.pending_id), "p-9");
    assert_int_equal(ledger_render_transfer(&b, &t), 0);
    json_t *v = parse(&b);
    assert_string_equal(str(v, "pending_id"), "p-9");
    json_t *flags = json_object_get(v, "flags");
    assert_string_equal(json_string_value(json_array_get(flags, 0)), "post_pending");
    assert_string_equal(json_string_value(json_array_get(flags, 1)), "void_pending");
    json_decref(v);
    buf_release(&b);
}

static void test_strings_are_escaped(void **state)
{
    (void)state;
    /* Ids are validated before they get here; render must still never emit broken JSON. */
    struct ledger_transfer t = sample_transfer();
    snprintf(t.id, sizeof(t.id), "q\"uo\\te\n\x01\xff");
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(ledger_render_transfer(&b, &t), 0);
    json_t *v = parse(&b);
    assert_non_null(strstr(str(v, "id"), "q\"uo\\te\n\x01"));
    json_decref(v);
    buf_release(&b);
}

static void test_render_that_does_not_fit_leaves_buffer_as_it_was(void **state)
{
    (void)state;
    struct ledger_account a = sample_account();
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(ledger_render_account(&b, &a), 0);
    size_t full = b.len;
    buf_release(&b);
    for (size_t max = 0; max < full; max += 7) {
        buf_init(&b, max);
        assert_int_equal(buf_append_str(&b, max >= 1 ? "[" : ""), 0);
        size_t before = b.len;
        assert_int_equal(ledger_render_account(&b, &a), -ENOSPC);
        assert_int_equal(b.len, before);
        if (b.data != NULL) {
            assert_int_equal(b.data[before], '\0');
        }
        buf_release(&b);
    }
    buf_init(&b, full);
    assert_int_equal(ledger_render_account(&b, &a), 0);
    buf_release(&b);
}

static void test_batch_results(void **state)
{
    (void)state;
    struct ledger_transfer items[3];
    for (int i = 0; i < 3; i++) {
        items[i] = sample_transfer();
        snprintf(items[i].id, sizeof(items[i].id), "t%d", i);
    }
    enum ledger_result results[3] = {LEDGER_CREATED, LEDGER_LINKED_EVENT_FAILED,
                                     LEDGER_EXCEEDS_CREDITS};
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(ledger_render_batch_results(&b, items, results, 3), 0);
    json_t *v = parse(&b);
    static const char *const top[] = {"results"};
    keys_are(v, top, 1);
    json_t *arr = json_object_get(v, "results");
    assert_int_equal(json_array_size(arr), 3);
    static const char *const keys[] = {"index", "id", "result"};
    const char *want[] = {"created", "linked_event_failed", "exceeds_credits"};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(arr, i);
        keys_are(r, keys, 3);
        assert_int_equal(json_integer_value(json_object_get(r, "index")), (json_int_t)i);
        assert_string_equal(str(r, "id"), items[i].id);
        assert_string_equal(str(r, "result"), want[i]);
    }
    json_decref(v);

    buf_reset(&b);
    assert_int_equal(ledger_render_batch_results(&b, NULL, NULL, 0), 0);
    assert_string_equal(b.data, "{\"results\":[]}");
    buf_release(&b);

    buf_init(&b, 20);
    assert_int_equal(ledger_render_batch_results(&b, items, results, 3), -ENOSPC);
    assert_int_equal(b.len, 0);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account),
        cmocka_unit_test(test_transfer_plain),
        cmocka_unit_test(test_transfer_pending_states_and_flags),
        cmocka_unit_test(test_strings_are_escaped),
        cmocka_unit_test(test_render_that_does_not_fit_leaves_buffer_as_it_was),
        cmocka_unit_test(test_batch_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
