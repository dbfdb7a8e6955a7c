/*
 * test_decode.c — request bodies to accounts and transfers: every field error code, unknown and
 * duplicate members, hostile JSON (deep nesting, invalid UTF-8, huge numbers, truncation),
 * metadata kept verbatim but compact at its exact size limit, and batch sizes at their bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger/decode.h"

#define ARENA_BYTES ((size_t)4 * 1024 * 1024)

static char *arena_mem;
static struct ledger_arena arena;
static struct ledger_decode_errors errs;

static int setup(void **state)
{
    (void)state;
    arena_mem = malloc(ARENA_BYTES);
    arena = (struct ledger_arena){arena_mem, 0, ARENA_BYTES};
    return arena_mem == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    free(arena_mem);
    return 0;
}

static int account(const char *json, struct ledger_account *out)
{
    arena.len = 0;
    return ledger_decode_account(json, strlen(json), out, &arena, &errs);
}

static int transfer(const char *json, struct ledger_transfer *out)
{
    arena.len = 0;
    return ledger_decode_transfer(json, strlen(json), out, &arena, &errs);
}

static struct ledger_transfer batch_out[LIMIT_BATCH_TRANSFERS_MAX + 1];

static int batch(const char *json, size_t *n)
{
    arena.len = 0;
    return ledger_decode_transfer_batch(json, strlen(json), batch_out,
                                        LIMIT_BATCH_TRANSFERS_MAX + 1, n, &arena, &errs);
}

static void error_is(size_t i, const char *field, const char *code)
{
    assert_true(i < errs.count);
    assert_string_equal(errs.items[i].field, field);
    assert_string_equal(errs.items[i].code, code);
    assert_true(errs.items[i].detail[0] != '\0');
}

/* Exactly one error, with this field and code. */
static void only_error(const char *field, const char *code)
{
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.count_total, 1);
    error_is(0, field, code);
}

static void account_fails(const char *json, const char *field, const char *code)
{
    struct ledger_account a;
    assert_int_equal(account(json, &a), -EINVAL);
    only_error(field, code);
}

static void transfer_fails(const char *json, const char *field, const char *code)
{
    struct ledger_transfer t;
    assert_int_equal(transfer(json, &t), -EINVAL);
    only_error(field, code);
}

static void metadata_is(struct ledger_text m, const char *want)
{
    assert_int_equal(m.len, strlen(want));
    assert_memory_equal(m.ptr, want, m.len);
}

/* ---------------------------------------------------------------------------------------
 * Accounts
 * ------------------------------------------------------------------------------------- */
static void test_account_valid(void **state)
{
    (void)state;
    struct ledger_account a;
    assert_int_equal(account(" {\"id\":\"acc-1\",\"ledger\":\"USD\",\"code\":65535,"
                             "\"flags\":[\"credits_must_not_exceed_debits\"],"
                             "\"metadata\":{ \"a\" : [1, 2.50, \"x y\"] }}\n",
                             &a),
                     0);
    assert_string_equal(a.id, "acc-1");
    assert_string_equal(a.ledger, "USD");
    assert_int_equal(a.code, 65535);
    assert_int_equal(a.flags, LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS);
    metadata_is(a.metadata, "{\"a\":[1,2.50,\"x y\"]}");
    assert_int_equal(errs.count_total, 0);
}

static void test_account_optional_fields_absent_or_null(void **state)
{
    (void)state;
    struct ledger_account a;
    assert_int_equal(account("{\"ledger\":\"EUR_2\",\"code\":0}", &a), 0);
    assert_string_equal(a.id, "");
    assert_int_equal(a.flags, 0);
    assert_int_equal(a.metadata.len, 0);
    assert_int_equal(
        account("{\"id\":null,\"ledger\":\"E\",\"code\":0,\"flags\":null,\"metadata\":null}", &a),
        0);
    assert_string_equal(a.id, "");
    assert_int_equal(a.metadata.len, 0);
}

static void test_account_field_errors(void **state)
{
    (void)state;
    account_fails("{\"code\":1}", "ledger", "field_required");
    account_fails("{\"ledger\":\"USD\"}", "code", "field_required");
    account_fails("{\"ledger\":null,\"code\":1}", "ledger", "field_required");
    account_fails("{\"ledger\":\"usd\",\"code\":1}", "ledger", "ledger_invalid");
    account_fails("{\"ledger\":\"ABCDEFGHIJKLMNOPQ\",\"code\":1}", "ledger", "ledger_invalid");
    account_fails("{\"ledger\":\"\",\"code\":1}", "ledger", "ledger_invalid");
    account_fails("{\"ledger\":5,\"code\":1}", "ledger", "field_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":65536}", "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":-1}", "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1.0}", "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":true}", "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":\"1\"}", "code", "code_invalid");
    account_fails("{\"id\":\"\",\"ledger\":\"USD\",\"code\":1}", "id", "id_invalid");
    account_fails("{\"id\":\"-a\",\"ledger\":\"USD\",\"code\":1}", "id", "id_invalid");
    account_fails("{\"id\":\"a b\",\"ledger\":\"USD\",\"code\":1}", "id", "id_invalid");
    account_fails("{\"id\":\"a1234567890123456789012345678901234567890123456789012345678901234\","
                  "\"ledger\":\"USD\",\"code\":1}",
                  "id", "id_invalid");
    account_fails("{\"id\":7,\"ledger\":\"USD\",\"code\":1}", "id", "field_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":\"linked\"}", "flags", "flag_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":[\"linked\"]}", "flags[0]",
                  "flag_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":[1]}", "flags[0]", "flag_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":[\"debits_must_not_exceed_credits\","
                  "\"debits_must_not_exceed_credits\"]}",
                  "flags[1]", "flag_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":[\"debits_must_not_exceed_credits\","
                  "\"credits_must_not_exceed_debits\"]}",
                  "flags", "flags_are_mutually_exclusive");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"metadata\":[]}", "metadata",
                  "metadata_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"metadata\":\"{}\"}", "metadata",
                  "metadata_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"debits_posted\":\"5\"}", "debits_posted",
                  "unknown_field");
}

static void test_errors_collected_in_document_order(void **state)
{
    (void)state;
    struct ledger_account a;
    assert_int_equal(
        account("{\"zz\":1,\"ledger\":\"usd\",\"id\":\"!\",\"flags\":[\"x\",\"y\"]}", &a), -EINVAL);
    assert_int_equal(errs.count, 6);
    assert_int_equal(errs.count_total, 6);
    error_is(0, "zz", "unknown_field");
    error_is(1, "ledger", "ledger_invalid");
    error_is(2, "id", "id_invalid");
    error_is(3, "flags[0]", "flag_invalid");
    error_is(4, "flags[1]", "flag_invalid");
    error_is(5, "code", "field_required");
}

static void test_errors_listed_up_to_the_limit_and_counted(void **state)
{
    (void)state;
    char body[1024];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":1");
    for (int i = 0; i < 20; i++) {
        n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"x%d\":%d", i, i);
    }
    snprintf(body + n, sizeof(body) - n, "}");
    struct ledger_account a;
    assert_int_equal(account(body, &a), -EINVAL);
    assert_int_equal(errs.count, LIMIT_DECODE_ERRORS_MAX);
    assert_int_equal(errs.count_total, 20);
    error_is(15, "x15", "unknown_field");
}

static void test_unknown_field_with_a_long_key_is_cut(void **state)
{
    (void)state;
    char body[512];
    char key[301];
    memset(key, 'k', 300);
    key[300] = '\0';
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":1,\"%s\":0}", key);
    struct ledger_account a;
    assert_int_equal(account(body, &a), -EINVAL);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].code, "unknown_field");
    assert_int_equal(strlen(errs.items[0].field), sizeof(errs.items[0].field) - 1);
}

/* ---------------------------------------------------------------------------------------
 * Malformed and hostile JSON
 * ------------------------------------------------------------------------------------- */
static void malformed(const char *body, size_t len)
{
    struct ledger_account a;
    arena.len = 0;
    assert_int_equal(ledger_decode_account(body, len, &a, &arena, &errs), -EINVAL);
    only_error("", "malformed_json");
    assert_non_null(strstr(errs.items[0].detail, " at byte "));
}

#define MALFORMED(literal) malformed(literal, sizeof(literal) - 1)

static void test_malformed_json(void **state)
{
    (void)state;
    MALFORMED("");
    MALFORMED("   ");
    MALFORMED("{\"ledger\":\"USD\",\"code\":1");                     /* truncated */
    MALFORMED("{\"ledger\":\"USD\",\"code\":1}x");                   /* trailing bytes */
    MALFORMED("{\"ledger\":\"USD\",\"code\":1}{}");                  /* two documents */
    MALFORMED("{\"ledger\":\"USD\",\"ledger\":\"EUR\",\"code\":1}"); /* duplicate */
    MALFORMED("{\"a\":{\"k\":1,\"k\":2}}");                          /* duplicate, nested */
    MALFORMED("{\"ledger\":\"U\xff\",\"code\":1}");                  /* invalid UTF-8 */
    MALFORMED("{\"ledger\":\"\xc0\xaf\",\"code\":1}");               /* overlong encoding */
    MALFORMED("{\"ledger\":\"\xed\xa0\x80\",\"code\":1}");           /* surrogate */
    MALFORMED("{\"ledger\":\"USD\",\"code\":1,}");                   /* trailing comma */
    MALFORMED("{'ledger':'USD'}");
    MALFORMED("{\"ledger\":\"USD\",\"code\":01}");
    MALFORMED("{\"ledger\":\"USD\",\"code\":NaN}");
    MALFORMED("{\"ledger\":\"USD\"\0,\"code\":1}"); /* raw NUL */
    /* The detail names jansson's position. */
    MALFORMED("{\"ledger\" \"USD\"}");
    assert_string_equal(errs.items[0].detail, "':' expected at byte 15");
}

/* Numbers too large for a double or a 64-bit integer are valid JSON: the field they are in
 * gets its own error, and inside metadata they are kept verbatim. */
static void test_huge_numbers_are_field_errors(void **state)
{
    (void)state;
    char body[700];
    char digits[401];
    memset(digits, '9', 400);
    digits[400] = '\0';
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":%s}", digits);
    account_fails(body, "code", "code_invalid");
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":-%s}", digits);
    account_fails(body, "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1e400}", "code", "code_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":9223372036854775808}", "code", "code_invalid");
    /* In u128 range but not an int64, as a JSON number: never read as an amount. */
    transfer_fails("{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\","
                   "\"amount\":99999999999999999999,\"ledger\":\"USD\",\"code\":1}",
                   "amount", "amount_invalid");
    snprintf(body, sizeof(body),
             "{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\",\"amount\":%s,"
             "\"ledger\":\"USD\",\"code\":1}",
             digits);
    transfer_fails(body, "amount", "amount_invalid");
    /* As a string, a 400-digit amount is an amount error too. */
    snprintf(body, sizeof(body),
             "{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\",\"amount\":\"%s\","
             "\"ledger\":\"USD\",\"code\":1}",
             digits);
    transfer_fails(body, "amount", "amount_invalid");

    /* Where a member name belongs a number is not JSON, however large (found by fuzz_decode:
     * it once passed as a string and tripped the scanners). */
    snprintf(body, sizeof(body), "{%s:1,\"metadata\":{\"k\":\"v\"}}", digits);
    malformed(body, strlen(body));
    MALFORMED("{\"ledger\":\"USD\",1e400 :1,\"metadata\":{}}");

    struct ledger_account a;
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"n\":%s}}", digits);
    assert_int_equal(account(body, &a), 0);
    assert_int_equal(a.metadata.len, 406);
    assert_memory_equal(a.metadata.ptr + 5, digits, 400);
    assert_int_equal(account("{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"n\":1e400}}", &a), 0);
    assert_int_equal(a.metadata.len, 11);
    assert_memory_equal(a.metadata.ptr, "{\"n\":1e400}", 11);
    /* The largest int64 and tiny fractions are in range and stay numbers. */
    account_fails("{\"ledger\":\"USD\",\"code\":9223372036854775807}", "code", "code_invalid");
    assert_int_equal(account("{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"n\":1e-400}}", &a), 0);
    /* Malformed numbers stay malformed, whatever their size. */
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":0%s}", digits);
    malformed(body, strlen(body));
    malformed("{\"ledger\":\"USD\",\"code\":1e}", 26);
}

/* U+0000 is a valid JSON string character; every grammar refuses it where one applies. */
static void test_nul_in_strings(void **state)
{
    (void)state;
    account_fails("{\"id\":\"a\\u0000b\",\"ledger\":\"USD\",\"code\":1}", "id", "id_invalid");
    account_fails("{\"ledger\":\"USD\\u0000\",\"code\":1}", "ledger", "ledger_invalid");
    account_fails("{\"ledger\":\"USD\",\"code\":1,\"flags\":[\"debits_must_not_exceed_credits"
                  "\\u0000\"]}",
                  "flags[0]", "flag_invalid");
    /* jansson keeps object keys as C strings: a key holding U+0000 is refused as syntax. */
    MALFORMED("{\"ledger\":\"USD\",\"code\":1,\"ledger\\u0000\":1}");
    assert_string_equal(errs.items[0].detail, "NUL byte in object key not supported at byte 39");
    transfer_fails("{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\",\"amount\":"
                   "\"1\\u0000\",\"ledger\":\"USD\",\"code\":1}",
                   "amount", "amount_invalid");
    struct ledger_account a;
    assert_int_equal(
        account("{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"k\":\"\\u0000\"}}", &a), 0);
    metadata_is(a.metadata, "{\"k\":\"\\u0000\"}");
}

static char *nested(size_t depth, const char *prefix, const char *suffix)
{
    size_t plen = strlen(prefix);
    size_t slen = strlen(suffix);
    char *s = malloc(plen + 2 * depth + slen + 1);
    assert_non_null(s);
    snprintf(s, plen + 1, "%s", prefix);
    memset(s + plen, '[', depth);
    memset(s + plen + depth, ']', depth);
    memcpy(s + plen + 2 * depth, suffix, slen + 1);
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char *deep = nested(10000, "", "");
    malformed(deep, strlen(deep));
    assert_string_equal(errs.items[0].detail, "nesting deeper than 64 at byte 64");
    free(deep);

    /* 64 levels (object, metadata object, 62 arrays) is fine; 65 is not. */
    char *ok = nested(62, "{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"d\":", "}}");
    struct ledger_account a;
    assert_int_equal(account(ok, &a), 0);
    assert_int_equal(a.metadata.len,
                     strlen(ok) - strlen("{\"ledger\":\"USD\",\"code\":1,\"metadata\":") - 1);
    free(ok);
    char *over = nested(63, "{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"d\":", "}}");
    malformed(over, strlen(over));
    assert_non_null(strstr(errs.items[0].detail, "nesting deeper than 64"));
    free(over);

    /* Brackets inside strings do not count, escaped quotes do not end strings. */
    char body[512];
    char brackets[201];
    memset(brackets, '[', 200);
    brackets[200] = '\0';
    snprintf(body, sizeof(body), "{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"s\":\"\\\"%s\"}}",
             brackets);
    assert_int_equal(account(body, &a), 0);
}

static void test_top_level_must_be_an_object(void **state)
{
    (void)state;
    account_fails("[]", "", "field_invalid");
    account_fails("[{\"ledger\":\"USD\",\"code\":1}]", "", "field_invalid");
    transfer_fails("[1]", "", "field_invalid");
    size_t n;
    assert_int_equal(batch("[]", &n), -EINVAL);
    only_error("", "field_invalid");
}

/* ---------------------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------------------- */
static void test_metadata_compact_and_verbatim(void **state)
{
    (void)state;
    struct ledger_account a;
    assert_int_equal(account("{\"metadata\" :\r\n {\n\t\"b\" : \"  spaced \\\"q\\\" \\u00e9 \","
                             " \"a\":{ \"z\" : [ true , null , -0.0e+1 ] },\"\xc3\xa9\":1 } ,"
                             "\"ledger\":\"USD\",\"code\":1}",
                             &a),
                     0);
    /* Key order, escapes, number spelling and raw UTF-8 are kept; only whitespace goes. */
    metadata_is(a.metadata,
                "{\"b\":\"  spaced \\\"q\\\" \\u00e9 \",\"a\":{\"z\":[true,null,-0.0e+1]}"
                ",\"\xc3\xa9\":1}");
    assert_int_equal(account("{\"ledger\":\"USD\",\"code\":1,\"metadata\":{}}", &a), 0);
    metadata_is(a.metadata, "{}");
}

static void test_metadata_found_behind_lookalikes(void **state)
{
    (void)state;
    struct ledger_account a;
    /* An escaped key that decodes to "metadata", after a string holding the word and an
     * object with a member of that name. */
    assert_int_equal(account("{\"id\":\"metadata\",\"ledger\":\"USD\",\"code\":1,"
                             "\"\\u006detadata\":{\"metadata\":{\"x\":\"\\\\\"}}}",
                             &a),
                     0);
    metadata_is(a.metadata, "{\"metadata\":{\"x\":\"\\\\\"}}");
}

static char *metadata_body(size_t compact_len, size_t extra_spaces)
{
    /* {"p":"xxxx"} is compact_len bytes when the string holds compact_len - 8 bytes. */
    const char *head = "{\"ledger\":\"USD\",\"code\":1,\"metadata\":{\"p\":\"";
    size_t filler = compact_len - 8;
    size_t hlen = strlen(head);
    char *s = malloc(hlen + filler + extra_spaces + 8);
    assert_non_null(s);
    snprintf(s, hlen + 1, "%s", head);
    memset(s + hlen, 'x', filler);
    s[hlen + filler] = '"';
    memset(s + hlen + filler + 1, ' ', extra_spaces);
    memcpy(s + hlen + filler + 1 + extra_spaces, "}}", 3);
    return s;
}

static void test_metadata_size_limit(void **state)
{
    (void)state;
    struct ledger_account a;
    char *body = metadata_body(4096, 0);
    assert_int_equal(account(body, &a), 0);
    assert_int_equal(a.metadata.len, 4096);
    free(body);
    body = metadata_body(4097, 0);
    assert_int_equal(account(body, &a), -EINVAL);
    only_error("metadata", "metadata_invalid");
    free(body);
    /* The limit applies to the compact form: whitespace does not count. */
    body = metadata_body(4096, 500);
    assert_int_equal(account(body, &a), 0);
    assert_int_equal(a.metadata.len, 4096);
    free(body);
}

/* ---------------------------------------------------------------------------------------
 * Transfers
 * ------------------------------------------------------------------------------------- */
#define ALL_FIELDS                                                                                 \
    (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |        \
     LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE)

static void test_transfer_valid(void **state)
{
    (void)state;
    struct ledger_transfer t;
    assert_int_equal(transfer("{\"id\":\"t:1\",\"debit_account_id\":\"a.1\",\"credit_account_id\":"
                              "\"b_2\",\"amount\":\"340282366920938463463374607431768211455\","
                              "\"ledger\":\"USD\",\"code\":9,\"flags\":[\"pending\",\"linked\"],"
                              "\"timeout_seconds\":4294967295,\"metadata\":{\"k\":\"v\"}}",
                              &t),
                     0);
    assert_string_equal(t.id, "t:1");
    assert_string_equal(t.debit_account_id, "a.1");
    assert_string_equal(t.credit_account_id, "b_2");
    assert_true(t.amount == U128_MAX);
    assert_string_equal(t.ledger, "USD");
    assert_int_equal(t.code, 9);
    assert_int_equal(t.flags, LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_LINKED);
    assert_int_equal(t.timeout_seconds, 4294967295u);
    assert_string_equal(t.pending_id, "");
    assert_int_equal(t.present, ALL_FIELDS);
    metadata_is(t.metadata, "{\"k\":\"v\"}");
}

static void test_transfer_post_needs_only_pending_id(void **state)
{
    (void)state;
    struct ledger_transfer t;
    assert_int_equal(
        transfer("{\"id\":\"q\",\"pending_id\":\"p\",\"flags\":[\"post_pending\"]}", &t), 0);
    assert_string_equal(t.pending_id, "p");
    assert_int_equal(t.present, 0);
    assert_int_equal(t.flags, LEDGER_TRANSFER_POST_PENDING);
    assert_int_equal(transfer("{\"flags\":[\"void_pending\"],\"amount\":\"0\",\"code\":3,"
                              "\"debit_account_id\":null}",
                              &t),
                     0);
    assert_int_equal(t.present, LEDGER_FIELD_AMOUNT | LEDGER_FIELD_CODE);
    assert_string_equal(t.pending_id, ""); /* the ledger answers pending_id_required */
}

static void test_transfer_field_errors(void **state)
{
    (void)state;
    struct ledger_transfer t;
    assert_int_equal(transfer("{}", &t), -EINVAL);
    assert_int_equal(errs.count, 5);
    error_is(0, "debit_account_id", "field_required");
    error_is(1, "credit_account_id", "field_required");
    error_is(2, "amount", "field_required");
    error_is(3, "ledger", "field_required");
    error_is(4, "code", "field_required");

#define T(extra)                                                                                   \
    "{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\",\"ledger\":\"USD\","                  \
    "\"code\":1" extra "}"
    const char *amounts[] = {"\"01\"",
                             "\"-1\"",
                             "\"+1\"",
                             "\"1e3\"",
                             "\"1.0\"",
                             "\"\"",
                             "\" 1\"",
                             "\"0x10\"",
                             "5",
                             "5.0",
                             "\"340282366920938463463374607431768211456\"",
                             "true",
                             "{}"};
    for (size_t i = 0; i < sizeof(amounts) / sizeof(amounts[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), T(",\"amount\":%s"), amounts[i]);
        transfer_fails(body, "amount", "amount_invalid");
    }
    transfer_fails(T(",\"amount\":null"), "amount", "field_required");
    transfer_fails(T(",\"amount\":\"1\",\"timeout_seconds\":-1"), "timeout_seconds",
                   "timeout_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"timeout_seconds\":4294967296"), "timeout_seconds",
                   "timeout_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"timeout_seconds\":1.5"), "timeout_seconds",
                   "timeout_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"timeout_seconds\":\"5\""), "timeout_seconds",
                   "timeout_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"pending_id\":\"$\""), "pending_id", "id_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"pending_id\":[]"), "pending_id", "field_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"flags\":[\"pending\",\"post_pending\"]"), "flags",
                   "flags_are_mutually_exclusive");
    transfer_fails(T(",\"amount\":\"1\",\"flags\":[\"void_pending\",\"post_pending\"]"), "flags",
                   "flags_are_mutually_exclusive");
    transfer_fails(T(",\"amount\":\"1\",\"flags\":[\"balancing_debit\"]"), "flags[0]",
                   "flag_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"flags\":[\"linked\",\"linked\"]"), "flags[1]",
                   "flag_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"flags\":{}"), "flags", "flag_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"metadata\":1"), "metadata", "metadata_invalid");
    transfer_fails(T(",\"amount\":\"1\",\"pending_status\":\"pending\""), "pending_status",
                   "unknown_field");
    transfer_fails("{\"debit_account_id\":\"a\",\"credit_account_id\":\"\",\"amount\":\"1\","
                   "\"ledger\":\"USD\",\"code\":1}",
                   "credit_account_id", "id_invalid");
    transfer_fails("{\"debit_account_id\":1,\"credit_account_id\":\"b\",\"amount\":\"1\","
                   "\"ledger\":\"USD\",\"code\":1}",
                   "debit_account_id", "field_invalid");
#undef T
}

/* ---------------------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------------------- */
#define ITEM_JSON                                                                                  \
    "{\"debit_account_id\":\"a\",\"credit_account_id\":\"b\",\"amount\":\"%zu\","                  \
    "\"ledger\":\"USD\",\"code\":1%s}"

static char *batch_body(size_t n)
{
    size_t cap = 64 + n * 160;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = (size_t)snprintf(s, cap, "{ \"transfers\" : [");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, i == 0 ? "" : " ,\n ");
        len += (size_t)snprintf(s + len, cap - len, ITEM_JSON, i,
                                i % 3 == 0 ? ",\"metadata\":{ \"i\" : 1 }" : "");
    }
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void test_batch_sizes(void **state)
{
    (void)state;
    size_t n = 99;
    assert_int_equal(batch("{\"transfers\":[]}", &n), -EINVAL);
    only_error("transfers", "batch_size_invalid");
    assert_int_equal(n, 0);

    char *body = batch_body(LIMIT_BATCH_TRANSFERS_MAX);
    assert_int_equal(batch(body, &n), 0);
    assert_int_equal(n, LIMIT_BATCH_TRANSFERS_MAX);
    assert_true(batch_out[8189].amount == 8189);
    metadata_is(batch_out[8187].metadata, "{\"i\":1}");
    assert_int_equal(batch_out[8188].metadata.len, 0);
    free(body);

    body = batch_body(LIMIT_BATCH_TRANSFERS_MAX + 1);
    assert_int_equal(batch(body, &n), -EINVAL);
    only_error("transfers", "batch_size_invalid");
    free(body);

    /* A caller with less room than the maximum gets the same answer. */
    body = batch_body(3);
    arena.len = 0;
    assert_int_equal(
        ledger_decode_transfer_batch(body, strlen(body), batch_out, 2, &n, &arena, &errs), -EINVAL);
    only_error("transfers", "batch_size_invalid");
    free(body);
}

static void test_batch_shape_errors(void **state)
{
    (void)state;
    size_t n;
    assert_int_equal(batch("{}", &n), -EINVAL);
    only_error("transfers", "field_required");
    assert_int_equal(batch("{\"transfers\":null}", &n), -EINVAL);
    only_error("transfers", "field_required");
    assert_int_equal(batch("{\"transfers\":{}}", &n), -EINVAL);
    only_error("transfers", "field_invalid");
    assert_int_equal(batch("{\"transfers\":[{\"flags\":[\"post_pending\"]}],\"x\":1}", &n),
                     -EINVAL);
    only_error("x", "unknown_field");
}

static void test_batch_item_paths(void **state)
{
    (void)state;
    size_t n = 99;
    assert_int_equal(batch("{\"transfers\":[{\"flags\":[\"void_pending\"],\"pending_id\":\"p\"},"
                           "7,"
                           "{\"flags\":[\"post_pending\"],\"amount\":\"-1\",\"zz\":0},"
                           "{\"flags\":[\"pending\",\"void_pending\"],\"metadata\":[]}]}",
                           &n),
                     -EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(errs.count, 5);
    error_is(0, "transfers[1]", "field_invalid");
    error_is(1, "transfers[2].amount", "amount_invalid");
    error_is(2, "transfers[2].zz", "unknown_field");
    error_is(3, "transfers[3].flags", "flags_are_mutually_exclusive");
    error_is(4, "transfers[3].metadata", "metadata_invalid");
}

static void test_batch_metadata_per_item(void **state)
{
    (void)state;
    size_t n;
    assert_int_equal(
        batch("{\"transfers\":[ {\"flags\":[\"post_pending\"],\"metadata\":{\"n\": 0},"
              "\"pending_id\":\"p\"} , \"\",{\"flags\":[\"void_pending\"],\"pending_id\""
              ":\"p\"} ]}",
              &n),
        -EINVAL); /* the string item is refused; the scanner kept its place */
    only_error("transfers[1]", "field_invalid");
    assert_int_equal(batch("{\"transfers\":[{\"flags\":[\"post_pending\"],\"pending_id\":\"p\"},"
                           "{\"flags\":[\"post_pending\"],\"pending_id\":\"p\","
                           "\"metadata\":{\"s\":\"]}\\\"\"}},"
                           "{\"metadata\":{\"n\" : 2},\"flags\":[\"void_pending\"]}]}",
                           &n),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(batch_out[0].metadata.len, 0);
    metadata_is(batch_out[1].metadata, "{\"s\":\"]}\\\"\"}");
    metadata_is(batch_out[2].metadata, "{\"n\":2}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_valid),
        cmocka_unit_test(test_account_optional_fields_absent_or_null),
        cmocka_unit_test(test_account_field_errors),
        cmocka_unit_test(test_errors_collected_in_document_order),
        cmocka_unit_test(test_errors_listed_up_to_the_limit_and_counted),
        cmocka_unit_test(test_unknown_field_with_a_long_key_is_cut),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_huge_numbers_are_field_errors),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_top_level_must_be_an_object),
        cmocka_unit_test(test_metadata_compact_and_verbatim),
        cmocka_unit_test(test_metadata_found_behind_lookalikes),
        cmocka_unit_test(test_metadata_size_limit),
        cmocka_unit_test(test_transfer_valid),
        cmocka_unit_test(test_transfer_post_needs_only_pending_id),
        cmocka_unit_test(test_transfer_field_errors),
        cmocka_unit_test(test_batch_sizes),
        cmocka_unit_test(test_batch_shape_errors),
        cmocka_unit_test(test_batch_item_paths),
        cmocka_unit_test(test_batch_metadata_per_item),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
