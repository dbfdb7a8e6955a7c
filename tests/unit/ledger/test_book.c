/*
 * test_book.c — the ledger rules: every result code, pending transfers (post, void, expiry),
 * balance limits and overflow at their exact boundaries, linked chains and their rollback, the
 * changes the writer sees, and a long deterministic random walk that checks the invariants
 * (INV-1 balance per ledger, INV-4 limits, atomicity of refused items and failed chains).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ledger/book.h"
#include "ledger/ledger.h"

#define NOW_MS 1700000000000

static struct ledger_book *book;

static int setup(void **state)
{
    (void)state;
    return ledger_book_new(64, 64, (size_t)64 * 1024, &book);
}

static int teardown(void **state)
{
    (void)state;
    ledger_book_free(book);
    book = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------------------- */
static struct ledger_account account(const char *id, const char *ledger, uint32_t flags)
{
    struct ledger_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.ledger, sizeof(a.ledger), "%s", ledger);
    a.code = 1;
    a.flags = flags;
    return a;
}

static void account_new(const char *id, const char *ledger, uint32_t flags)
{
    struct ledger_account a = account(id, ledger, flags);
    assert_int_equal(ledger_book_account_create(book, &a, NOW_MS, NULL), LEDGER_CREATED);
}

/* An account as the database would hand it over, with balances. */
static void account_load(const char *id, uint32_t flags, u128 dp, u128 dpo, u128 cp, u128 cpo)
{
    struct ledger_account a = account(id, "USD", flags);
    a.debits_pending = dp;
    a.debits_posted = dpo;
    a.credits_pending = cp;
    a.credits_posted = cpo;
    a.created_at_ms = NOW_MS - 1000;
    assert_int_equal(ledger_book_account_load(book, &a), 0);
}

static const struct ledger_account *acc(const char *id)
{
    const struct ledger_account *a = ledger_book_account_find(book, id);
    assert_non_null(a);
    return a;
}

static const struct ledger_transfer *xfer_find(const char *id)
{
    const struct ledger_transfer *t = ledger_book_transfer_find(book, id);
    assert_non_null(t);
    return t;
}

static struct ledger_transfer xfer(const char *id, const char *dr, const char *cr, u128 amount,
                                   uint32_t flags)
{
    struct ledger_transfer t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "%s", dr);
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "%s", cr);
    snprintf(t.ledger, sizeof(t.ledger), "USD");
    t.amount = amount;
    t.code = 7;
    t.flags = flags;
    t.present = LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID |
                LEDGER_FIELD_AMOUNT | LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE;
    return t;
}

/* A post or void naming only the pending transfer. */
static struct ledger_transfer resolve(const char *id, const char *pending_id, uint32_t flags)
{
    struct ledger_transfer t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.pending_id, sizeof(t.pending_id), "%s", pending_id);
    t.flags = flags;
    return t;
}

static enum ledger_result apply_at(const struct ledger_transfer *t, int64_t now_ms)
{
    enum ledger_result r = LEDGER_RESULT_COUNT;
    const struct ledger_transfer *stored = NULL;
    size_t created = ledger_book_transfers_apply(book, t, 1, now_ms, &r, &stored);
    assert_int_equal(created, r == LEDGER_CREATED ? 1 : 0);
    assert_true((r == LEDGER_CREATED || r == LEDGER_EXISTS) == (stored != NULL));
    assert_true(ledger_book_balanced(book));
    return r;
}

static enum ledger_result apply(const struct ledger_transfer *t)
{
    return apply_at(t, NOW_MS);
}

static void balances_are(const char *id, u128 dp, u128 dpo, u128 cp, u128 cpo)
{
    const struct ledger_account *a = acc(id);
    assert_true(a->debits_pending == dp);
    assert_true(a->debits_posted == dpo);
    assert_true(a->credits_pending == cp);
    assert_true(a->credits_posted == cpo);
}

/* Two USD accounts a and b, no flags. */
static void two_accounts(void)
{
    account_new("a", "USD", 0);
    account_new("b", "USD", 0);
}

static void pending_of(const char *id, u128 amount, uint32_t timeout_seconds)
{
    struct ledger_transfer p = xfer(id, "a", "b", amount, LEDGER_TRANSFER_PENDING);
    p.timeout_seconds = timeout_seconds;
    assert_int_equal(apply(&p), LEDGER_CREATED);
}

/* ---------------------------------------------------------------------------------------
 * Result table
 * ------------------------------------------------------------------------------------- */
static void test_result_codes_are_unique_and_mapped(void **state)
{
    (void)state;
    for (int i = 0; i < LEDGER_RESULT_COUNT; i++) {
        enum ledger_result r = (enum ledger_result)i;
        const char *code = ledger_result_code(r);
        assert_non_null(code);
        assert_non_null(ledger_result_detail(r));
        for (const char *c = code; *c != '\0'; c++) {
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        }
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(code, ledger_result_code((enum ledger_result)j));
        }
        int status = ledger_result_http_status(r);
        assert_int_equal(status, r == LEDGER_CREATED                        ? 201
                                 : r == LEDGER_EXISTS                       ? 200
                                 : r == LEDGER_EXISTS_WITH_DIFFERENT_FIELDS ? 409
                                                                            : 422);
    }
    assert_string_equal(ledger_result_code(LEDGER_EXCEEDS_CREDITS), "exceeds_credits");
    assert_string_equal(ledger_result_code(LEDGER_LINKED_EVENT_CHAIN_OPEN),
                        "linked_event_chain_open");
}

static void test_flag_names_round_trip(void **state)
{
    (void)state;
    for (uint32_t bit = 1; bit <= LEDGER_TRANSFER_VOID_PENDING; bit <<= 1) {
        const char *name = ledger_transfer_flag_name(bit);
        uint32_t back = 0;
        assert_non_null(name);
        assert_int_equal(ledger_transfer_flag_parse(name, strlen(name), &back), 0);
        assert_int_equal(back, bit);
    }
    for (uint32_t bit = 1; bit <= LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS; bit <<= 1) {
        const char *name = ledger_account_flag_name(bit);
        uint32_t back = 0;
        assert_non_null(name);
        assert_int_equal(ledger_account_flag_parse(name, strlen(name), &back), 0);
        assert_int_equal(back, bit);
    }
    uint32_t f = 0;
    assert_int_equal(ledger_transfer_flag_parse("pendin", 6, &f), -EINVAL);
    assert_int_equal(ledger_transfer_flag_parse("pending_", 8, &f), -EINVAL);
    assert_int_equal(ledger_account_flag_parse("linked", 6, &f), -EINVAL);
    assert_null(ledger_transfer_flag_name(1u << 7));
    assert_null(ledger_pending_state_name(LEDGER_PENDING_NONE));
    assert_string_equal(ledger_pending_state_name(LEDGER_PENDING_EXPIRED), "expired");
}

/* ---------------------------------------------------------------------------------------
 * Accounts
 * ------------------------------------------------------------------------------------- */
static void test_account_created_exists_different(void **state)
{
    (void)state;
    struct ledger_account a =
        account("acc-1", "USD", LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS);
    a.metadata = (struct ledger_text){"{\"k\":1}", 7};
    a.debits_posted = 99; /* ignored on create */
    const struct ledger_account *stored = NULL;
    assert_int_equal(ledger_book_account_create(book, &a, NOW_MS, &stored), LEDGER_CREATED);
    assert_non_null(stored);
    assert_true(stored->debits_posted == 0);
    assert_int_equal(stored->created_at_ms, NOW_MS);
    assert_true(stored->metadata.ptr != a.metadata.ptr); /* copied into the book */
    assert_memory_equal(stored->metadata.ptr, "{\"k\":1}", 7);

    char same_meta[] = "{\"k\":1}";
    a.metadata.ptr = same_meta;
    assert_int_equal(ledger_book_account_create(book, &a, NOW_MS + 5, &stored), LEDGER_EXISTS);
    assert_int_equal(stored->created_at_ms, NOW_MS);

    struct ledger_account b = a;
    b.code = 2;
    assert_int_equal(ledger_book_account_create(book, &b, NOW_MS, &stored),
                     LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    assert_null(stored);
    b = a;
    snprintf(b.ledger, sizeof(b.ledger), "EUR");
    assert_int_equal(ledger_book_account_create(book, &b, NOW_MS, NULL),
                     LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    b = a;
    b.flags = 0;
    assert_int_equal(ledger_book_account_create(book, &b, NOW_MS, NULL),
                     LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    b = a;
    b.metadata = (struct ledger_text){"{\"k\":2}", 7};
    assert_int_equal(ledger_book_account_create(book, &b, NOW_MS, NULL),
                     LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    b.metadata = (struct ledger_text){NULL, 0};
    assert_int_equal(ledger_book_account_create(book, &b, NOW_MS, NULL),
                     LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
}

static void test_load_keeps_first_copy_and_reports_full(void **state)
{
    (void)state;
    struct ledger_book *small = NULL;
    assert_int_equal(ledger_book_new(2, 1, 8, &small), 0);
    struct ledger_account a = account("x", "USD", 0);
    a.credits_posted = 5;
    assert_int_equal(ledger_book_account_load(small, &a), 0);
    a.credits_posted = 6;
    assert_int_equal(ledger_book_account_load(small, &a), 0);
    assert_true(ledger_book_account_find(small, "x")->credits_posted == 5);
    struct ledger_account big = account("y", "USD", 0);
    big.metadata = (struct ledger_text){"{\"abcdefgh\":1}", 14};
    assert_int_equal(ledger_book_account_load(small, &big), -ENOSPC); /* arena */
    assert_int_equal(ledger_book_metadata_bytes_free(small), 8);
    big.metadata = (struct ledger_text){NULL, 0};
    assert_int_equal(ledger_book_account_load(small, &big), 0);
    struct ledger_account z = account("z", "USD", 0);
    assert_int_equal(ledger_book_account_load(small, &z), -ENOSPC); /* slots */
    assert_int_equal(ledger_book_accounts_free(small), 0);

    struct ledger_transfer t = xfer("t", "x", "y", 1, 0);
    assert_int_equal(ledger_book_transfer_load(small, &t), 0);
    struct ledger_transfer u = xfer("u", "x", "y", 1, 0);
    assert_int_equal(ledger_book_transfer_load(small, &u), -ENOSPC);
    assert_int_equal(ledger_book_transfers_free(small), 0);

    ledger_book_reset(small);
    assert_null(ledger_book_account_find(small, "x"));
    assert_null(ledger_book_transfer_find(small, "t"));
    assert_int_equal(ledger_book_accounts_free(small), 2);
    assert_int_equal(ledger_book_metadata_bytes_free(small), 8);
    ledger_book_free(small);
}

/* ---------------------------------------------------------------------------------------
 * Transfers: one test per refusal
 * ------------------------------------------------------------------------------------- */
static void test_transfer_created_posted(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t1", "a", "b", 100, 0);
    t.metadata = (struct ledger_text){"{}", 2};
    const struct ledger_transfer *stored = NULL;
    enum ledger_result r;
    assert_int_equal(ledger_book_transfers_apply(book, &t, 1, NOW_MS, &r, &stored), 1);
    assert_int_equal(r, LEDGER_CREATED);
    assert_int_equal(stored->created_at_ms, NOW_MS);
    assert_int_equal(stored->pending_state, LEDGER_PENDING_NONE);
    assert_int_equal(stored->expires_at_ms, 0);
    assert_memory_equal(stored->metadata.ptr, "{}", 2);
    balances_are("a", 0, 100, 0, 0);
    balances_are("b", 0, 0, 0, 100);
}

static void test_transfer_zero_amount_is_allowed(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t0", "a", "b", 0, 0);
    assert_int_equal(apply(&t), LEDGER_CREATED);
    balances_are("a", 0, 0, 0, 0);
}

static void test_transfer_exists_and_different_fields(void **state)
{
    (void)state;
    two_accounts();
    account_new("c", "USD", 0);
    struct ledger_transfer t = xfer("t1", "a", "b", 100, 0);
    assert_int_equal(apply(&t), LEDGER_CREATED);
    assert_int_equal(apply(&t), LEDGER_EXISTS);
    balances_are("a", 0, 100, 0, 0); /* applied once */

    struct ledger_transfer d = t;
    d.amount = 101;
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    d = t;
    snprintf(d.credit_account_id, sizeof(d.credit_account_id), "c");
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    d = t;
    d.code = 8;
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    d = t;
    d.metadata = (struct ledger_text){"{}", 2};
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    d = t;
    d.flags = LEDGER_TRANSFER_PENDING;
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    /* An existing id wins over every other check, even a would-be refusal. */
    d = t;
    snprintf(d.pending_id, sizeof(d.pending_id), "zz");
    assert_int_equal(apply(&d), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    balances_are("a", 0, 100, 0, 0);
}

static void test_accounts_must_be_different(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t", "a", "a", 1, 0);
    assert_int_equal(apply(&t), LEDGER_ACCOUNTS_MUST_BE_DIFFERENT);
    assert_null(ledger_book_transfer_find(book, "t"));
}

static void test_debit_and_credit_account_not_found(void **state)
{
    (void)state;
    account_new("a", "USD", 0);
    struct ledger_transfer t = xfer("t", "nope", "a", 1, 0);
    assert_int_equal(apply(&t), LEDGER_DEBIT_ACCOUNT_NOT_FOUND);
    t = xfer("t", "a", "nope", 1, 0);
    assert_int_equal(apply(&t), LEDGER_CREDIT_ACCOUNT_NOT_FOUND);
    /* Both missing: the debit side is reported. */
    t = xfer("t", "x", "y", 1, 0);
    assert_int_equal(apply(&t), LEDGER_DEBIT_ACCOUNT_NOT_FOUND);
}

static void test_ledger_mismatch(void **state)
{
    (void)state;
    two_accounts();
    account_new("e", "EUR", 0);
    struct ledger_transfer t = xfer("t", "a", "e", 1, 0);
    assert_int_equal(apply(&t), LEDGER_LEDGER_MISMATCH);
    t = xfer("t", "a", "b", 1, 0);
    snprintf(t.ledger, sizeof(t.ledger), "EUR");
    assert_int_equal(apply(&t), LEDGER_LEDGER_MISMATCH);
    balances_are("a", 0, 0, 0, 0);
}

static void test_exceeds_credits_at_boundary(void **state)
{
    (void)state;
    account_load("lim", LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, 10, 20, 0, 50);
    account_load("other", 0, 0, 0, 0, 0);
    /* 10 + 20 + 20 == 50: allowed. */
    struct ledger_transfer t = xfer("t1", "lim", "other", 20, 0);
    assert_int_equal(apply(&t), LEDGER_CREATED);
    /* One more unit, posted or pending, is refused. */
    t = xfer("t2", "lim", "other", 1, 0);
    assert_int_equal(apply(&t), LEDGER_EXCEEDS_CREDITS);
    t = xfer("t3", "lim", "other", 1, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_EXCEEDS_CREDITS);
    balances_are("lim", 10, 40, 0, 50);
    /* Crediting the limited account is always fine and raises the limit. */
    t = xfer("t4", "other", "lim", 1, 0);
    assert_int_equal(apply(&t), LEDGER_CREATED);
    t = xfer("t5", "lim", "other", 1, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_CREATED);
}

static void test_exceeds_debits_at_boundary(void **state)
{
    (void)state;
    account_load("lim", LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, 0, 30, 5, 5);
    account_load("other", 0, 0, 0, 0, 0);
    struct ledger_transfer t = xfer("t1", "other", "lim", 20, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_CREATED); /* 25 + 5 == 30 */
    t = xfer("t2", "other", "lim", 1, 0);
    assert_int_equal(apply(&t), LEDGER_EXCEEDS_DEBITS);
    balances_are("lim", 0, 30, 25, 5);
}

static void test_limits_both_sides_debit_checked_first(void **state)
{
    (void)state;
    account_load("d", LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, 0, 0, 0, 0);
    account_load("c", LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, 0, 0, 0, 0);
    struct ledger_transfer t = xfer("t", "d", "c", 1, 0);
    assert_int_equal(apply(&t), LEDGER_EXCEEDS_CREDITS);
}

static void test_overflows_debits(void **state)
{
    (void)state;
    account_load("full", 0, 0, U128_MAX, 0, 0);
    account_load("b", 0, 0, 0, 0, 0);
    struct ledger_transfer t = xfer("t", "full", "b", 1, 0);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_DEBITS);
    t = xfer("t", "full", "b", 0, 0);
    assert_int_equal(apply(&t), LEDGER_CREATED); /* exactly at the maximum is fine */
    /* pending + posted overflows even if each alone fits */
    t = xfer("p", "full", "b", 1, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_DEBITS);
    account_load("half", 0, U128_MAX - 5, 0, 0, 0);
    t = xfer("p2", "half", "b", 6, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_DEBITS);
    t = xfer("p2", "half", "b", 5, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_CREATED);
    balances_are("half", U128_MAX, 0, 0, 0);
}

static void test_overflows_credits(void **state)
{
    (void)state;
    account_load("a", 0, 0, 0, 0, 0);
    account_load("full", 0, 0, 0, 3, U128_MAX - 3);
    struct ledger_transfer t = xfer("t", "a", "full", 1, 0);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_CREDITS);
    t = xfer("t", "a", "full", 1, LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_CREDITS);
    balances_are("a", 0, 0, 0, 0);
}

static void test_overflow_checked_before_limits(void **state)
{
    (void)state;
    account_load("d", LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, 0, U128_MAX, 0, U128_MAX);
    account_load("c", 0, 0, 0, 0, 0);
    struct ledger_transfer t = xfer("t", "d", "c", 1, 0);
    assert_int_equal(apply(&t), LEDGER_OVERFLOWS_DEBITS);
}

static void test_pending_id_must_be_absent(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t", "a", "b", 1, 0);
    snprintf(t.pending_id, sizeof(t.pending_id), "p");
    assert_int_equal(apply(&t), LEDGER_PENDING_ID_MUST_BE_ABSENT);
    t.flags = LEDGER_TRANSFER_PENDING;
    assert_int_equal(apply(&t), LEDGER_PENDING_ID_MUST_BE_ABSENT);
}

static void test_timeout_reserved_for_pending_transfer(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t", "a", "b", 1, 0);
    t.timeout_seconds = 1;
    assert_int_equal(apply(&t), LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER);
    pending_of("p", 5, 0);
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    post.timeout_seconds = 10;
    assert_int_equal(apply(&post), LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER);
    t.flags = LEDGER_TRANSFER_PENDING;
    assert_int_equal(apply(&t), LEDGER_CREATED);
    assert_int_equal(xfer_find("t")->expires_at_ms, NOW_MS + 1000);
}

static void test_pending_id_required_and_different(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = resolve("q", "", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&t), LEDGER_PENDING_ID_REQUIRED);
    t = resolve("q", "", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply(&t), LEDGER_PENDING_ID_REQUIRED);
    t = resolve("q", "q", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply(&t), LEDGER_PENDING_ID_MUST_BE_DIFFERENT);
}

static void test_pending_transfer_not_found_and_not_pending(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = resolve("q", "missing", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_NOT_FOUND);
    struct ledger_transfer plain = xfer("plain", "a", "b", 3, 0);
    assert_int_equal(apply(&plain), LEDGER_CREATED);
    t = resolve("q", "plain", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_NOT_PENDING);
}

static void test_post_full_amount_by_default(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 100, 0);
    balances_are("a", 100, 0, 0, 0);
    balances_are("b", 0, 0, 100, 0);
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    const struct ledger_transfer *stored = NULL;
    enum ledger_result r;
    assert_int_equal(ledger_book_transfers_apply(book, &post, 1, NOW_MS + 1, &r, &stored), 1);
    assert_int_equal(r, LEDGER_CREATED);
    balances_are("a", 0, 100, 0, 0);
    balances_are("b", 0, 0, 0, 100);
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_POSTED);
    /* The stored post carries the resolved fields. */
    assert_string_equal(stored->debit_account_id, "a");
    assert_string_equal(stored->credit_account_id, "b");
    assert_string_equal(stored->ledger, "USD");
    assert_int_equal(stored->code, 7);
    assert_true(stored->amount == 100);
    assert_int_equal(stored->present, LEDGER_FIELD_DEBIT_ACCOUNT_ID |
                                          LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |
                                          LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE);
    assert_int_equal(stored->pending_state, LEDGER_PENDING_NONE);
    assert_int_equal(stored->created_at_ms, NOW_MS + 1);
    /* Replaying it is EXISTS; a second post is ALREADY_POSTED. */
    assert_int_equal(apply(&post), LEDGER_EXISTS);
    struct ledger_transfer again = resolve("q2", "p", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&again), LEDGER_PENDING_TRANSFER_ALREADY_POSTED);
    again.flags = LEDGER_TRANSFER_VOID_PENDING;
    assert_int_equal(apply(&again), LEDGER_PENDING_TRANSFER_ALREADY_POSTED);
}

static void test_post_partial_amount(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 100, 0);
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    post.amount = 101;
    post.present = LEDGER_FIELD_AMOUNT;
    assert_int_equal(apply(&post), LEDGER_EXCEEDS_PENDING_TRANSFER_AMOUNT);
    post.amount = 60;
    assert_int_equal(apply(&post), LEDGER_CREATED);
    balances_are("a", 0, 60, 0, 0);
    balances_are("b", 0, 0, 0, 60);
    assert_true(xfer_find("q")->amount == 60);
    /* Retrying with the amount is EXISTS; without it the default (100) differs from 60. */
    assert_int_equal(apply(&post), LEDGER_EXISTS);
    struct ledger_transfer omitted = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&omitted), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
}

static void test_post_zero_amount_releases_everything(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 100, 0);
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    post.present = LEDGER_FIELD_AMOUNT; /* amount "0" sent explicitly */
    assert_int_equal(apply(&post), LEDGER_CREATED);
    balances_are("a", 0, 0, 0, 0);
    balances_are("b", 0, 0, 0, 0);
}

static void test_void(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 100, 0);
    struct ledger_transfer v = resolve("v", "p", LEDGER_TRANSFER_VOID_PENDING);
    v.amount = 99;
    v.present = LEDGER_FIELD_AMOUNT;
    assert_int_equal(apply(&v), LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT);
    v.amount = 100;
    assert_int_equal(apply(&v), LEDGER_CREATED);
    balances_are("a", 0, 0, 0, 0);
    balances_are("b", 0, 0, 0, 0);
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_VOIDED);
    assert_true(xfer_find("v")->amount == 100);
    struct ledger_transfer again = resolve("v2", "p", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply(&again), LEDGER_PENDING_TRANSFER_ALREADY_VOIDED);
    again.flags = LEDGER_TRANSFER_POST_PENDING;
    assert_int_equal(apply(&again), LEDGER_PENDING_TRANSFER_ALREADY_VOIDED);
}

static void test_resolve_fields_must_match_pending(void **state)
{
    (void)state;
    two_accounts();
    account_new("c", "USD", 0);
    pending_of("p", 10, 0);
    struct ledger_transfer t = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "c");
    t.present = LEDGER_FIELD_DEBIT_ACCOUNT_ID;
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS);
    t = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "a");
    t.present = LEDGER_FIELD_CREDIT_ACCOUNT_ID;
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS);
    t = resolve("q", "p", LEDGER_TRANSFER_VOID_PENDING);
    snprintf(t.ledger, sizeof(t.ledger), "EUR");
    t.present = LEDGER_FIELD_LEDGER;
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER);
    t = resolve("q", "p", LEDGER_TRANSFER_VOID_PENDING);
    t.code = 8;
    t.present = LEDGER_FIELD_CODE;
    assert_int_equal(apply(&t), LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_CODE);
    /* All given and equal: fine, and a replay with them omitted is EXISTS. */
    t = xfer("q", "a", "b", 10, LEDGER_TRANSFER_POST_PENDING);
    snprintf(t.pending_id, sizeof(t.pending_id), "p");
    assert_int_equal(apply(&t), LEDGER_CREATED);
    struct ledger_transfer bare = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&bare), LEDGER_EXISTS);
    bare.timeout_seconds = 1;
    assert_int_equal(apply(&bare), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
}

static void test_expire_via_pending_expire(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 40, 5);
    assert_int_equal(ledger_book_pending_expire(book, "missing"), -ENOENT);
    struct ledger_transfer plain = xfer("plain", "a", "b", 1, 0);
    assert_int_equal(apply(&plain), LEDGER_CREATED);
    assert_int_equal(ledger_book_pending_expire(book, "plain"), -EINVAL);
    assert_int_equal(ledger_book_pending_expire(book, "p"), 0);
    assert_true(ledger_book_balanced(book));
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_EXPIRED);
    balances_are("a", 0, 1, 0, 0);
    balances_are("b", 0, 0, 0, 1);
    assert_int_equal(ledger_book_pending_expire(book, "p"), -EINVAL); /* INV-3 */
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply(&post), LEDGER_PENDING_TRANSFER_EXPIRED);
    post.flags = LEDGER_TRANSFER_VOID_PENDING;
    assert_int_equal(apply(&post), LEDGER_PENDING_TRANSFER_EXPIRED);
}

static void test_expire_via_post_after_deadline(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 40, 5); /* expires at NOW_MS + 5000 */
    struct ledger_transfer post = resolve("q", "p", LEDGER_TRANSFER_POST_PENDING);
    /* One millisecond before the deadline a post still succeeds ... */
    pending_of("p2", 7, 5);
    struct ledger_transfer post2 = resolve("q2", "p2", LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(apply_at(&post2, NOW_MS + 4999), LEDGER_CREATED);
    /* ... at the deadline it is expired, and the expiry is applied. */
    assert_int_equal(apply_at(&post, NOW_MS + 5000), LEDGER_PENDING_TRANSFER_EXPIRED);
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_EXPIRED);
    assert_null(ledger_book_transfer_find(book, "q"));
    balances_are("a", 0, 7, 0, 0);
    balances_are("b", 0, 0, 0, 7);
    /* A pending transfer without timeout never expires. */
    pending_of("forever", 3, 0);
    struct ledger_transfer v = resolve("v", "forever", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply_at(&v, INT64_MAX), LEDGER_CREATED);
}

static void test_loaded_pending_past_deadline(void **state)
{
    (void)state;
    account_load("a", 0, 9, 0, 0, 0);
    account_load("b", 0, 0, 0, 9, 0);
    struct ledger_transfer p = xfer("p", "a", "b", 9, LEDGER_TRANSFER_PENDING);
    p.pending_state = LEDGER_PENDING_PENDING;
    p.created_at_ms = NOW_MS - 10000;
    p.timeout_seconds = 1;
    p.expires_at_ms = NOW_MS - 9000;
    assert_int_equal(ledger_book_transfer_load(book, &p), 0);
    struct ledger_transfer v = resolve("v", "p", LEDGER_TRANSFER_VOID_PENDING);
    assert_int_equal(apply(&v), LEDGER_PENDING_TRANSFER_EXPIRED);
    balances_are("a", 0, 0, 0, 0);
    balances_are("b", 0, 0, 0, 0);
}

/* ---------------------------------------------------------------------------------------
 * Linked chains
 * ------------------------------------------------------------------------------------- */
static void test_chain_fails_in_the_middle(void **state)
{
    (void)state;
    two_accounts();
    account_new("c", "USD", 0);
    pending_of("p", 50, 0);
    struct ledger_transfer in[5] = {
        xfer("t1", "a", "b", 10, LEDGER_TRANSFER_LINKED),
        resolve("t2", "p", LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_LINKED),
        xfer("t3", "a", "a", 1, LEDGER_TRANSFER_LINKED), /* fails */
        xfer("t4", "b", "c", 5, 0),
        xfer("t5", "c", "a", 2, 0), /* after the chain: applied */
    };
    in[0].metadata = (struct ledger_text){"{\"x\":1}", 7};
    enum ledger_result r[5];
    const struct ledger_transfer *stored[5];
    size_t meta_free = ledger_book_metadata_bytes_free(book);
    assert_int_equal(ledger_book_transfers_apply(book, in, 5, NOW_MS, r, stored), 1);
    assert_true(ledger_book_balanced(book));
    assert_int_equal(r[0], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[1], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[2], LEDGER_ACCOUNTS_MUST_BE_DIFFERENT);
    assert_int_equal(r[3], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[4], LEDGER_CREATED);
    for (int i = 0; i < 4; i++) {
        assert_null(stored[i]);
    }
    assert_non_null(stored[4]);
    /* Everything of the chain is gone: balances, transfers, the pending's state, metadata. */
    assert_null(ledger_book_transfer_find(book, "t1"));
    assert_null(ledger_book_transfer_find(book, "t2"));
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_PENDING);
    balances_are("a", 50, 0, 0, 2);
    balances_are("b", 0, 0, 50, 0);
    balances_are("c", 0, 2, 0, 0);
    assert_int_equal(ledger_book_metadata_bytes_free(book), meta_free);
    /* The rolled-back ids can be used again, and the index still finds the survivors. */
    struct ledger_transfer again = xfer("t1", "a", "b", 1, 0);
    assert_int_equal(apply(&again), LEDGER_CREATED);
    assert_non_null(ledger_book_transfer_find(book, "t5"));
    assert_non_null(ledger_book_transfer_find(book, "p"));
}

static void test_chain_fails_at_its_last_item(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer in[3] = {
        xfer("t1", "a", "b", 10, LEDGER_TRANSFER_LINKED),
        xfer("t2", "b", "a", 3, LEDGER_TRANSFER_LINKED),
        xfer("t3", "a", "missing", 1, 0),
    };
    enum ledger_result r[3];
    assert_int_equal(ledger_book_transfers_apply(book, in, 3, NOW_MS, r, NULL), 0);
    assert_int_equal(r[0], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[1], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[2], LEDGER_CREDIT_ACCOUNT_NOT_FOUND);
    balances_are("a", 0, 0, 0, 0);
    balances_are("b", 0, 0, 0, 0);
}

static void test_chain_succeeds_whole(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer in[3] = {
        xfer("t1", "a", "b", 10, LEDGER_TRANSFER_LINKED),
        xfer("t2", "b", "a", 3, LEDGER_TRANSFER_LINKED),
        xfer("t3", "a", "b", 1, 0),
    };
    enum ledger_result r[3];
    const struct ledger_transfer *stored[3];
    assert_int_equal(ledger_book_transfers_apply(book, in, 3, NOW_MS, r, stored), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i], LEDGER_CREATED);
        assert_non_null(stored[i]);
    }
    balances_are("a", 0, 11, 0, 3);
}

static void test_chain_open_at_end(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer in[4] = {
        xfer("t1", "a", "b", 1, 0),
        xfer("t2", "a", "b", 2, LEDGER_TRANSFER_LINKED),
        xfer("t3", "a", "a", 3, LEDGER_TRANSFER_LINKED), /* would fail, but the chain is open */
        xfer("t4", "a", "b", 4, LEDGER_TRANSFER_LINKED),
    };
    enum ledger_result r[4];
    const struct ledger_transfer *stored[4];
    assert_int_equal(ledger_book_transfers_apply(book, in, 4, NOW_MS, r, stored), 1);
    assert_int_equal(r[0], LEDGER_CREATED);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(r[i], LEDGER_LINKED_EVENT_CHAIN_OPEN);
        assert_null(stored[i]);
    }
    balances_are("a", 0, 1, 0, 0);
    assert_null(ledger_book_transfer_find(book, "t2"));
}

static void test_single_linked_item_is_chain_open(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer t = xfer("t", "a", "b", 1, LEDGER_TRANSFER_LINKED);
    assert_int_equal(apply(&t), LEDGER_LINKED_EVENT_CHAIN_OPEN);
    balances_are("a", 0, 0, 0, 0);
}

static void test_exists_inside_chain_counts_as_success(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer first = xfer("t1", "a", "b", 10, LEDGER_TRANSFER_LINKED);
    struct ledger_transfer in[2] = {first, xfer("t2", "b", "a", 4, 0)};
    enum ledger_result r[2];
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS, r, NULL), 2);
    /* The same chain again: both exist; a new item after an existing one is created. */
    in[1] = xfer("t3", "b", "a", 4, 0);
    const struct ledger_transfer *stored[2];
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS, r, stored), 1);
    assert_int_equal(r[0], LEDGER_EXISTS);
    assert_int_equal(r[1], LEDGER_CREATED);
    assert_non_null(stored[0]);
    assert_ptr_equal(stored[0], xfer_find("t1"));
    /* An existing item with different fields breaks the chain. */
    in[0].amount = 11;
    in[1] = xfer("t4", "b", "a", 4, 0);
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS, r, NULL), 0);
    assert_int_equal(r[0], LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    assert_int_equal(r[1], LEDGER_LINKED_EVENT_FAILED);
    assert_null(ledger_book_transfer_find(book, "t4"));
    balances_are("a", 0, 10, 0, 8);
}

static void test_chain_rolls_back_an_expiry(void **state)
{
    (void)state;
    two_accounts();
    pending_of("p", 5, 1);
    struct ledger_transfer in[2] = {
        xfer("t1", "a", "b", 1, LEDGER_TRANSFER_LINKED),
        resolve("t2", "p", LEDGER_TRANSFER_POST_PENDING),
    };
    enum ledger_result r[2];
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS + 2000, r, NULL), 0);
    assert_int_equal(r[0], LEDGER_LINKED_EVENT_FAILED);
    assert_int_equal(r[1], LEDGER_PENDING_TRANSFER_EXPIRED);
    /* The chain leaves nothing behind; the sweep expires the pending transfer later. */
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_PENDING);
    balances_are("a", 5, 0, 0, 0);
    assert_true(ledger_book_balanced(book));
}

static void test_chain_uses_its_own_earlier_items(void **state)
{
    (void)state;
    two_accounts();
    struct ledger_transfer in[2] = {
        xfer("p", "a", "b", 8, LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_LINKED),
        resolve("q", "p", LEDGER_TRANSFER_POST_PENDING),
    };
    enum ledger_result r[2];
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS, r, NULL), 2);
    balances_are("a", 0, 8, 0, 0);
    assert_int_equal(xfer_find("p")->pending_state, LEDGER_PENDING_POSTED);
}

/* ---------------------------------------------------------------------------------------
 * Changes for the writer
 * ------------------------------------------------------------------------------------- */
struct seen {
    char log[64][160];
    int n;
    int stop_at;
};

static int seen_add(void *ctx, const char *kind, const char *id, const char *extra)
{
    struct seen *s = ctx;
    assert_true(s->n < 64);
    snprintf(s->log[s->n], sizeof(s->log[0]), "%s %s%s", kind, id, extra);
    s->n++;
    return s->n == s->stop_at ? -ECANCELED : 0;
}

static int on_account_created(void *ctx, const struct ledger_account *a)
{
    return seen_add(ctx, "account_created", a->id, "");
}

static int on_account_updated(void *ctx, const struct ledger_account *a)
{
    return seen_add(ctx, "account_updated", a->id, "");
}

static int on_transfer_created(void *ctx, const struct ledger_transfer *t)
{
    const char *state = ledger_pending_state_name(t->pending_state);
    char extra[16];
    snprintf(extra, sizeof(extra), " %s", state == NULL ? "-" : state);
    return seen_add(ctx, "transfer_created", t->id, extra);
}

static int on_pending_updated(void *ctx, const struct ledger_transfer *t)
{
    return seen_add(ctx, "pending_updated", t->id, "");
}

static const struct ledger_book_changes_ops seen_ops = {on_account_created, on_account_updated,
                                                        on_transfer_created, on_pending_updated};

static void test_changes_report_what_survived(void **state)
{
    (void)state;
    account_load("old1", 0, 0, 0, 4, 0);
    account_load("untouched", 0, 0, 0, 0, 0);
    account_load("old2", 0, 4, 0, 0, 0);
    struct ledger_transfer lp = xfer("loaded-p", "old2", "old1", 4, LEDGER_TRANSFER_PENDING);
    lp.pending_state = LEDGER_PENDING_PENDING;
    assert_int_equal(ledger_book_transfer_load(book, &lp), 0);
    struct ledger_transfer lp2 = xfer("loaded-q", "old2", "old1", 0, LEDGER_TRANSFER_PENDING);
    lp2.pending_state = LEDGER_PENDING_PENDING;
    assert_int_equal(ledger_book_transfer_load(book, &lp2), 0);

    account_new("new1", "USD", 0);
    account_new("new2", "USD", 0);
    struct ledger_transfer in[5] = {
        xfer("x1", "new1", "old1", 3, 0),
        xfer("px", "new1", "new2", 2, LEDGER_TRANSFER_PENDING),
        resolve("qx", "px", LEDGER_TRANSFER_POST_PENDING),
        resolve("ql", "loaded-p", LEDGER_TRANSFER_VOID_PENDING),
        resolve("bad", "loaded-q", LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_LINKED),
    };
    enum ledger_result r[5];
    assert_int_equal(ledger_book_transfers_apply(book, in, 5, NOW_MS, r, NULL), 4);
    assert_int_equal(r[4], LEDGER_LINKED_EVENT_CHAIN_OPEN);

    struct seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(ledger_book_changes(book, &seen_ops, &s), 0);
    const char *want[] = {
        "account_created new1",  "account_created new2",  "account_updated old1",
        "account_updated old2",  "transfer_created x1 -", "transfer_created px posted",
        "transfer_created qx -", "transfer_created ql -", "pending_updated loaded-p",
    };
    assert_int_equal(s.n, (int)(sizeof(want) / sizeof(want[0])));
    for (int i = 0; i < s.n; i++) {
        assert_string_equal(s.log[i], want[i]);
    }
    /* A callback's error stops the walk and is returned. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 3;
    assert_int_equal(ledger_book_changes(book, &seen_ops, &s), -ECANCELED);
    assert_int_equal(s.n, 3);
}

static void test_changes_ignore_balances_that_came_back(void **state)
{
    (void)state;
    account_load("a", 0, 0, 0, 0, 0);
    account_load("b", 0, 0, 0, 0, 0);
    struct ledger_transfer in[2] = {
        xfer("p", "a", "b", 5, LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_LINKED),
        resolve("v", "p", LEDGER_TRANSFER_VOID_PENDING),
    };
    enum ledger_result r[2];
    assert_int_equal(ledger_book_transfers_apply(book, in, 2, NOW_MS, r, NULL), 2);
    struct seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(ledger_book_changes(book, &seen_ops, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.log[0], "transfer_created p voided");
    assert_string_equal(s.log[1], "transfer_created v -");
}

static void test_balanced_detects_a_one_sided_change(void **state)
{
    (void)state;
    account_load("a", 0, 0, 0, 0, 0);
    assert_true(ledger_book_balanced(book));
    /* Find hands out a const pointer; a buggy writer casting it away must be caught. */
    struct ledger_account *a = (struct ledger_account *)acc("a");
    a->debits_posted += 1;
    assert_false(ledger_book_balanced(book));
    a->credits_posted += 1;
    assert_true(ledger_book_balanced(book));
    a->debits_pending += 2;
    assert_false(ledger_book_balanced(book));
}

/* ---------------------------------------------------------------------------------------
 * Random walk
 * ------------------------------------------------------------------------------------- */
#define WALK_ACCOUNTS 6
#define WALK_OPS 10000

static uint64_t walk_state = 0x9e3779b97f4a7c15u;

static uint64_t walk_next(void)
{
    walk_state ^= walk_state << 13;
    walk_state ^= walk_state >> 7;
    walk_state ^= walk_state << 17;
    return walk_state;
}

static uint32_t walk_below(uint32_t n)
{
    return (uint32_t)(walk_next() % n);
}

static const char *walk_ids[WALK_ACCOUNTS] = {"a0", "a1", "a2", "a3", "b0", "b1"};

struct walk_snapshot {
    struct ledger_account accounts[WALK_ACCOUNTS];
};

static void walk_snapshot(struct walk_snapshot *s)
{
    for (int i = 0; i < WALK_ACCOUNTS; i++) {
        s->accounts[i] = *acc(walk_ids[i]);
    }
}

static bool walk_snapshot_equal(const struct walk_snapshot *x, const struct walk_snapshot *y)
{
    for (int i = 0; i < WALK_ACCOUNTS; i++) {
        const struct ledger_account *p = &x->accounts[i];
        const struct ledger_account *q = &y->accounts[i];
        if (p->debits_pending != q->debits_pending || p->debits_posted != q->debits_posted ||
            p->credits_pending != q->credits_pending || p->credits_posted != q->credits_posted) {
            return false;
        }
    }
    return true;
}

/* Per ledger, absolute sums: every account started at zero in this walk. */
static void walk_check_invariants(void)
{
    assert_true(ledger_book_balanced(book));
    for (int l = 0; l < 2; l++) {
        u128 dp = 0, dpo = 0, cp = 0, cpo = 0;
        for (int i = 0; i < WALK_ACCOUNTS; i++) {
            const struct ledger_account *a = acc(walk_ids[i]);
            if ((a->ledger[0] == 'A') != (l == 0)) {
                continue;
            }
            dp += a->debits_pending;
            dpo += a->debits_posted;
            cp += a->credits_pending;
            cpo += a->credits_posted;
            if ((a->flags & LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) != 0) {
                assert_true(a->debits_pending + a->debits_posted <= a->credits_posted);
            }
            if ((a->flags & LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS) != 0) {
                assert_true(a->credits_pending + a->credits_posted <= a->debits_posted);
            }
        }
        assert_true(dp == cp);
        assert_true(dpo == cpo);
    }
}

#define WALK_PENDINGS 32

struct walk {
    char pendings[WALK_PENDINGS][LIMIT_ID_LEN_MAX + 1];
    unsigned pendings_n;
    unsigned next_id;
    int64_t now_ms;
};

static struct ledger_transfer walk_item(struct walk *w)
{
    char id[32];
    snprintf(id, sizeof(id), "w%u", w->next_id++);
    uint32_t kind = walk_below(10);
    if (kind >= 7 && w->pendings_n > 0) {
        const char *pid =
            w->pendings[walk_below(w->pendings_n < WALK_PENDINGS ? w->pendings_n : WALK_PENDINGS)];
        struct ledger_transfer t = resolve(
            id, pid, kind == 9 ? LEDGER_TRANSFER_VOID_PENDING : LEDGER_TRANSFER_POST_PENDING);
        if (walk_below(2) == 0) {
            t.amount = walk_below(60);
            t.present = LEDGER_FIELD_AMOUNT;
        }
        return t;
    }
    const char *dr = walk_ids[walk_below(WALK_ACCOUNTS)];
    const char *cr = walk_ids[walk_below(WALK_ACCOUNTS)];
    bool pending = kind >= 4;
    struct ledger_transfer t =
        xfer(id, dr, cr, walk_below(50), pending ? LEDGER_TRANSFER_PENDING : 0);
    snprintf(t.ledger, sizeof(t.ledger), "%s", dr[0] == 'a' ? "A" : "B");
    if (pending && walk_below(3) == 0) {
        t.timeout_seconds = 1 + walk_below(3);
    }
    if (pending) {
        snprintf(w->pendings[w->pendings_n % WALK_PENDINGS], sizeof(w->pendings[0]), "%s", id);
        w->pendings_n++;
    }
    return t;
}

/* Like a commit: forget the book and load the accounts and the pendings still referenced. */
static void walk_recommit(struct walk *w)
{
    struct ledger_account accounts[WALK_ACCOUNTS];
    struct ledger_transfer pendings[WALK_PENDINGS];
    unsigned np = 0;
    for (int i = 0; i < WALK_ACCOUNTS; i++) {
        accounts[i] = *acc(walk_ids[i]);
        accounts[i].metadata = (struct ledger_text){NULL, 0};
    }
    unsigned kept = w->pendings_n < WALK_PENDINGS ? w->pendings_n : WALK_PENDINGS;
    for (unsigned i = 0; i < kept; i++) {
        const struct ledger_transfer *t = ledger_book_transfer_find(book, w->pendings[i]);
        if (t != NULL) {
            pendings[np++] = *t;
        }
    }
    ledger_book_reset(book);
    for (int i = 0; i < WALK_ACCOUNTS; i++) {
        assert_int_equal(ledger_book_account_load(book, &accounts[i]), 0);
    }
    for (unsigned i = 0; i < np; i++) {
        assert_int_equal(ledger_book_transfer_load(book, &pendings[i]), 0);
    }
}

static void test_random_walk_keeps_invariants(void **state)
{
    (void)state;
    struct ledger_book *big = NULL;
    assert_int_equal(ledger_book_new(16, 1024, 1024, &big), 0);
    ledger_book_free(book);
    book = big;
    static const uint32_t flags[WALK_ACCOUNTS] = {0,
                                                  LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS,
                                                  LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS,
                                                  0,
                                                  LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS,
                                                  0};
    for (int i = 0; i < WALK_ACCOUNTS; i++) {
        account_new(walk_ids[i], walk_ids[i][0] == 'a' ? "A" : "B", flags[i]);
    }
    struct walk w;
    memset(&w, 0, sizeof(w));
    w.now_ms = NOW_MS;
    size_t results_seen[LEDGER_RESULT_COUNT] = {0};
    for (int op = 0; op < WALK_OPS; op++) {
        if (ledger_book_transfers_free(book) < 8) {
            walk_recommit(&w);
        }
        w.now_ms += walk_below(400);
        struct ledger_transfer in[4];
        size_t n = 1 + (walk_below(4) == 0 ? walk_below(4) : 0);
        for (size_t k = 0; k < n; k++) {
            in[k] = walk_item(&w);
            if (k + 1 < n) {
                in[k].flags |= LEDGER_TRANSFER_LINKED;
            }
        }
        if (walk_below(50) == 0) {
            in[n - 1].flags |= LEDGER_TRANSFER_LINKED; /* an open chain */
        }
        struct walk_snapshot before;
        struct walk_snapshot after;
        walk_snapshot(&before);
        enum ledger_result r[4];
        size_t created = ledger_book_transfers_apply(book, in, n, w.now_ms, r, NULL);
        walk_snapshot(&after);
        walk_check_invariants();
        bool failed = false;
        bool expired = false;
        size_t created_seen = 0;
        for (size_t k = 0; k < n; k++) {
            results_seen[r[k]]++;
            failed = failed || (r[k] != LEDGER_CREATED && r[k] != LEDGER_EXISTS);
            expired = expired || r[k] == LEDGER_PENDING_TRANSFER_EXPIRED;
            created_seen += r[k] == LEDGER_CREATED ? 1 : 0;
        }
        assert_int_equal(created, created_seen);
        /* Refused items and failed chains change nothing, except a lone item's expiry. */
        if (failed && (n > 1 || !expired)) {
            assert_true(walk_snapshot_equal(&before, &after));
            assert_int_equal(created, 0);
        }
        if (walk_below(20) == 0 && w.pendings_n > 0) {
            const char *pid =
                w.pendings[walk_below(w.pendings_n < WALK_PENDINGS ? w.pendings_n : WALK_PENDINGS)];
            int rc = ledger_book_pending_expire(book, pid);
            assert_true(rc == 0 || rc == -EINVAL || rc == -ENOENT);
            walk_check_invariants();
        }
    }
    /* The walk reached the interesting outcomes, not only refusals. */
    assert_true(results_seen[LEDGER_CREATED] > 1000);
    assert_true(results_seen[LEDGER_EXCEEDS_CREDITS] > 0);
    assert_true(results_seen[LEDGER_EXCEEDS_DEBITS] > 0);
    assert_true(results_seen[LEDGER_LEDGER_MISMATCH] > 0);
    assert_true(results_seen[LEDGER_LINKED_EVENT_FAILED] > 0);
    assert_true(results_seen[LEDGER_LINKED_EVENT_CHAIN_OPEN] > 0);
    assert_true(results_seen[LEDGER_PENDING_TRANSFER_ALREADY_POSTED] > 0);
    assert_true(results_seen[LEDGER_PENDING_TRANSFER_EXPIRED] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_codes_are_unique_and_mapped),
        cmocka_unit_test(test_flag_names_round_trip),
        cmocka_unit_test_setup_teardown(test_account_created_exists_different, setup, teardown),
        cmocka_unit_test(test_load_keeps_first_copy_and_reports_full),
        cmocka_unit_test_setup_teardown(test_transfer_created_posted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_zero_amount_is_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_exists_and_different_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts_must_be_different, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debit_and_credit_account_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exceeds_credits_at_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exceeds_debits_at_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_both_sides_debit_checked_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overflows_debits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflows_credits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_checked_before_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_id_must_be_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_reserved_for_pending_transfer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_id_required_and_different, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_transfer_not_found_and_not_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_post_full_amount_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_partial_amount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_zero_amount_releases_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_void, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_fields_must_match_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_via_pending_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_via_post_after_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loaded_pending_past_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_fails_in_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_fails_at_its_last_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_succeeds_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_open_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_linked_item_is_chain_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_inside_chain_counts_as_success, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chain_rolls_back_an_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_uses_its_own_earlier_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_report_what_survived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_ignore_balances_that_came_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_balanced_detects_a_one_sided_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_walk_keeps_invariants, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
