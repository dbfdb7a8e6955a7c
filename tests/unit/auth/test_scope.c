/*
 * test_scope.c — scope names, scope lists, formatting, and the role mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth/scope.h"
#include "core/limits.h"

static int parse(const char *s, uint32_t *mask, char *err, size_t err_len)
{
    return scope_parse_list(s, strlen(s), mask, err, err_len);
}

static uint32_t parse_ok(const char *s)
{
    uint32_t mask = 0xdead;
    char err[128] = "";
    int rc = parse(s, &mask, err, sizeof(err));
    if (rc != 0) {
        fail_msg("refused \"%s\": %s", s, err);
    }
    return mask;
}

/* Refuses s and returns the error message. */
static const char *parse_bad(const char *s, size_t len)
{
    static char err[256];
    uint32_t mask = 0xdead;
    err[0] = '\0';
    assert_int_equal(scope_parse_list(s, len, &mask, err, sizeof(err)), -EINVAL);
    assert_int_equal(mask, 0);
    assert_true(err[0] != '\0');
    return err;
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(scope_name(SCOPE_LEDGER_READ), "ledger:read");
    assert_string_equal(scope_name(SCOPE_LEDGER_WRITE), "ledger:write");
    assert_string_equal(scope_name(SCOPE_FLAGS_READ), "flags:read");
    assert_string_equal(scope_name(SCOPE_FLAGS_WRITE), "flags:write");
    assert_string_equal(scope_name(SCOPE_AUDIT_READ), "audit:read");
    assert_string_equal(scope_name(SCOPE_ADMIN), "admin");
    assert_null(scope_name(0));
    assert_null(scope_name(SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE));
    assert_null(scope_name(1u << SCOPE_COUNT));
    assert_null(scope_name(1u << 31));
    /* Every bit of SCOPE_ALL has a name. */
    for (uint32_t i = 0; i < SCOPE_COUNT; i++) {
        assert_non_null(scope_name(1u << i));
    }
}

static void test_parse_lists(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("ledger:read"), SCOPE_LEDGER_READ);
    assert_int_equal(parse_ok("ledger:read,ledger:write"), SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE);
    assert_int_equal(parse_ok("ledger:read ledger:write"), SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE);
    assert_int_equal(parse_ok("ledger:read, ledger:write ,audit:read"),
                     SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE | SCOPE_AUDIT_READ);
    assert_int_equal(parse_ok(" ,admin,, "), SCOPE_ADMIN);
    assert_int_equal(parse_ok("flags:read flags:read flags:write"),
                     SCOPE_FLAGS_READ | SCOPE_FLAGS_WRITE);
    assert_int_equal(parse_ok("ledger:read ledger:write flags:read flags:write audit:read admin"),
                     SCOPE_ALL);
    /* The empty list is a list: whoever needs a scope checks for 0. */
    assert_int_equal(parse_ok(""), 0);
    assert_int_equal(parse_ok(" , ,"), 0);
    uint32_t mask = 1;
    assert_int_equal(scope_parse_list(NULL, 0, &mask, NULL, 0), 0);
    assert_int_equal(mask, 0);
    /* Only the given length is read. */
    assert_int_equal(scope_parse_list("admin,nonsense", 5, &mask, NULL, 0), 0);
    assert_int_equal(mask, SCOPE_ADMIN);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    assert_string_equal(parse_bad("ledger:read,ledger:wirte", 24),
                        "unknown scope \"ledger:wirte\"");
    assert_string_equal(parse_bad("Ledger:read", 11), "unknown scope \"Ledger:read\"");
    assert_string_equal(parse_bad("ledger", 6), "unknown scope \"ledger\"");
    assert_string_equal(parse_bad("ledger:read;admin", 17), "unknown scope \"ledger:read;admin\"");
    /* Only commas and spaces separate: a tab, a newline or a NUL is part of a name. */
    assert_string_equal(parse_bad("ledger:read\tadmin", 17), "unknown scope \"ledger:read?admin\"");
    assert_string_equal(parse_bad("admin\n", 6), "unknown scope \"admin?\"");
    assert_string_equal(parse_bad("admin\0x", 7), "unknown scope \"admin?x\"");
    /* Quoted text is printable and bounded whatever the client sent. */
    assert_string_equal(parse_bad("a\"b\\c\x7f\xff", 7), "unknown scope \"a?b?c??\"");
    char big[LIMIT_SCOPE_LIST_BYTES_MAX + 1];
    memset(big, 'x', sizeof(big));
    const char *err = parse_bad(big, 500);
    assert_true(strlen(err) < 80);
    assert_non_null(strstr(err, "...\""));
    /* Longer than the limit, even if only separators. */
    memset(big, ' ', sizeof(big));
    assert_non_null(strstr(parse_bad(big, sizeof(big)), "longer than 1024"));
    uint32_t mask = 0;
    assert_int_equal(scope_parse_list(big, LIMIT_SCOPE_LIST_BYTES_MAX, &mask, NULL, 0), 0);
    /* A short error buffer is cut, never overrun. */
    char small[9];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(scope_parse_list("nope", 4, &mask, small, 8), -EINVAL);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(small[8], 'Z');
    assert_int_equal(scope_parse_list("nope", 4, &mask, NULL, 0), -EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    char out[SCOPE_TEXT_LEN_MAX + 1];
    assert_int_equal(scope_format(SCOPE_ALL, out, sizeof(out)), 0);
    assert_string_equal(out, "ledger:read ledger:write flags:read flags:write audit:read admin");
    assert_int_equal(strlen(out), SCOPE_TEXT_LEN_MAX);
    assert_int_equal(scope_format(0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(scope_format(SCOPE_ADMIN | SCOPE_LEDGER_READ, out, sizeof(out)), 0);
    assert_string_equal(out, "ledger:read admin");

    /* Every mask survives format then parse. */
    for (uint32_t m = 0; m <= SCOPE_ALL; m++) {
        assert_int_equal(scope_format(m, out, sizeof(out)), 0);
        assert_int_equal(parse_ok(out), m);
    }
    /* Exactly enough room, and one byte less. */
    char tight[18];
    assert_int_equal(scope_format(SCOPE_ADMIN | SCOPE_LEDGER_READ, tight, 18), 0);
    assert_string_equal(tight, "ledger:read admin");
    memset(tight, 'Z', sizeof(tight));
    assert_int_equal(scope_format(SCOPE_ADMIN | SCOPE_LEDGER_READ, tight, 17), -ENOSPC);
    assert_string_equal(tight, "");
    assert_int_equal(tight[17], 'Z');
    assert_int_equal(scope_format(SCOPE_ALL, out, SCOPE_TEXT_LEN_MAX), -ENOSPC);
}

static void test_allows_and_admin_implies_nothing(void **state)
{
    (void)state;
    assert_true(scope_allows(SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE, SCOPE_LEDGER_WRITE));
    assert_true(scope_allows(SCOPE_LEDGER_READ, 0));
    assert_false(scope_allows(SCOPE_LEDGER_READ, SCOPE_LEDGER_WRITE));
    assert_false(scope_allows(0, SCOPE_LEDGER_READ));
    assert_false(scope_allows(SCOPE_LEDGER_WRITE, SCOPE_LEDGER_READ)); /* write is not read */
    /* admin alone grants the admin scope only. */
    for (uint32_t i = 0; i < SCOPE_COUNT; i++) {
        uint32_t bit = 1u << i;
        assert_int_equal(scope_allows(SCOPE_ADMIN, bit), bit == SCOPE_ADMIN);
    }
    struct scope_roles r;
    assert_int_equal(scope_roles_parse("ops=admin", 9, &r, NULL, 0), 0);
    assert_int_equal(scope_roles_lookup(&r, "ops", 3), SCOPE_ADMIN);
    assert_false(scope_allows(scope_roles_lookup(&r, "ops", 3), SCOPE_LEDGER_READ));
}

static void test_default_roles(void **state)
{
    (void)state;
    struct scope_roles r;
    scope_roles_default(&r);
    assert_int_equal(r.count, 4);
    assert_int_equal(scope_roles_lookup(&r, "reader", 6), SCOPE_LEDGER_READ);
    assert_int_equal(scope_roles_lookup(&r, "writer", 6), SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE);
    assert_int_equal(scope_roles_lookup(&r, "auditor", 7), SCOPE_AUDIT_READ);
    assert_int_equal(scope_roles_lookup(&r, "admin", 5), SCOPE_ALL);
    /* Unknown, differently cased, prefixes, longer, embedded NUL. */
    assert_int_equal(scope_roles_lookup(&r, "nobody", 6), 0);
    assert_int_equal(scope_roles_lookup(&r, "Reader", 6), 0);
    assert_int_equal(scope_roles_lookup(&r, "read", 4), 0);
    assert_int_equal(scope_roles_lookup(&r, "readers", 7), 0);
    assert_int_equal(scope_roles_lookup(&r, "reader\0", 7), 0);
    assert_int_equal(scope_roles_lookup(&r, "", 0), 0);
    assert_int_equal(scope_roles_lookup(&r, NULL, 0), 0);
}

static const char *roles_bad(const char *s, size_t len)
{
    static char err[256];
    struct scope_roles r;
    memset(&r, 0xaa, sizeof(r));
    err[0] = '\0';
    int rc = scope_roles_parse(s, len, &r, err, sizeof(err));
    if (rc != -EINVAL) {
        fail_msg("accepted \"%.*s\"", (int)len, s);
    }
    assert_int_equal(r.count, 0);
    assert_int_equal(scope_roles_lookup(&r, "reader", 6), 0);
    return err;
}

#define ROLES_BAD(s) roles_bad(s, sizeof(s) - 1)

static void test_roles_refusals(void **state)
{
    (void)state;
    assert_string_equal(ROLES_BAD("reader=ledger:read;reader=ledger:write"),
                        "role \"reader\" is defined twice");
    assert_string_equal(ROLES_BAD("reader=ledger:read;writer=ledger:read,ledger:wirte"),
                        "role \"writer\": unknown scope \"ledger:wirte\"");
    assert_string_equal(ROLES_BAD("reader=ledger:read;writer"),
                        "role entry \"writer\" has no '=' (expected role=scope,...)");
    assert_string_equal(ROLES_BAD("reader="), "role \"reader\" grants no scope");
    assert_string_equal(ROLES_BAD("reader= , "), "role \"reader\" grants no scope");
    assert_non_null(strstr(ROLES_BAD("Reader=ledger:read"), "role name \"Reader\" is not"));
    assert_non_null(strstr(ROLES_BAD("read er=ledger:read"), "role name \"read er\""));
    assert_non_null(strstr(ROLES_BAD("=ledger:read"), "role name \"\""));
    assert_non_null(strstr(ROLES_BAD("r\xc3\xa9=ledger:read"), "role name \"r??\""));
    assert_non_null(strstr(ROLES_BAD("a/b=ledger:read"), "role name \"a/b\""));
    /* ';' ends an entry, so a scope list cannot hold one; '=' in a list is a scope name. */
    assert_string_equal(ROLES_BAD("a=admin=ledger:read"),
                        "role \"a\": unknown scope \"admin=ledger:read\"");
    assert_string_equal(ROLES_BAD("a=ledger:read\nb=admin"),
                        "role \"a\": unknown scope \"ledger:read?b=admin\"");
    assert_string_equal(ROLES_BAD(""), "the role mapping defines no role");
    assert_string_equal(ROLES_BAD(" ; ;;\t"), "the role mapping defines no role");

    /* Names: 64 characters are accepted, 65 are not. */
    char text[LIMIT_ROLES_BYTES_MAX + 2];
    memset(text, 'n', 64);
    memcpy(text + 64, "=admin", 7);
    struct scope_roles r;
    assert_int_equal(scope_roles_parse(text, strlen(text), &r, NULL, 0), 0);
    assert_int_equal(scope_roles_lookup(&r, text, 64), SCOPE_ADMIN);
    memset(text, 'n', 65);
    memcpy(text + 65, "=admin", 7);
    assert_non_null(strstr(roles_bad(text, strlen(text)), "is not 1-64 characters"));

    /* LIMIT_ROLES_MAX roles are accepted, one more is not. */
    size_t len = 0;
    for (int i = 0; i < LIMIT_ROLES_MAX + 1; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "role%d=ledger:read;", i);
    }
    size_t last = strlen("role32=ledger:read;");
    assert_int_equal(scope_roles_parse(text, len - last, &r, NULL, 0), 0);
    assert_int_equal(r.count, LIMIT_ROLES_MAX);
    assert_int_equal(scope_roles_lookup(&r, "role31", 6), SCOPE_LEDGER_READ);
    assert_string_equal(roles_bad(text, len), "more than 32 roles (at role \"role32\")");

    /* LIMIT_ROLES_BYTES_MAX bytes are accepted, one more is not. */
    memset(text, ' ', sizeof(text));
    text[sizeof(text) - 1] = '\0';
    text[0] = 'a';
    text[1] = '=';
    text[2] = 'x'; /* "a=x" is an unknown scope: the length check must come first */
    assert_non_null(strstr(roles_bad(text, LIMIT_ROLES_BYTES_MAX + 1), "longer than 8192"));
    text[2] = ' ';
    snprintf(text + 3, 6, "%s", "admin");
    text[8] = ' ';
    assert_int_equal(scope_roles_parse(text, LIMIT_ROLES_BYTES_MAX, &r, NULL, 0), 0);
    assert_non_null(strstr(roles_bad(text, LIMIT_ROLES_BYTES_MAX + 1), "longer than 8192"));

    /* A short error buffer is cut, never overrun; no error buffer at all is fine. */
    char small[6];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(scope_roles_parse("x", 1, &r, small, 5), -EINVAL);
    assert_int_equal(strlen(small), 4);
    assert_int_equal(small[5], 'Z');
    assert_int_equal(scope_roles_parse("x", 1, &r, NULL, 0), -EINVAL);
}

static void test_roles_whitespace_and_order(void **state)
{
    (void)state;
    struct scope_roles r;
    char err[128] = "";
    const char *s =
        "  reader = ledger:read ;\twriter\t=ledger:write  ledger:read;; ops.team-1_x=admin;";
    assert_int_equal(scope_roles_parse(s, strlen(s), &r, err, sizeof(err)), 0);
    assert_int_equal(r.count, 3);
    assert_int_equal(scope_roles_lookup(&r, "reader", 6), SCOPE_LEDGER_READ);
    assert_int_equal(scope_roles_lookup(&r, "writer", 6), SCOPE_LEDGER_READ | SCOPE_LEDGER_WRITE);
    assert_int_equal(scope_roles_lookup(&r, "ops.team-1_x", 12), SCOPE_ADMIN);
    assert_int_equal(scope_roles_lookup(&r, " reader", 7), 0);
    /* The default text parses to the same table as scope_roles_default. */
    struct scope_roles d;
    scope_roles_default(&d);
    assert_int_equal(
        scope_roles_parse(SCOPE_ROLES_DEFAULT, strlen(SCOPE_ROLES_DEFAULT), &r, err, sizeof(err)),
        0);
    assert_int_equal(r.count, d.count);
    for (size_t i = 0; i < d.count; i++) {
        assert_string_equal(r.roles[i].name, d.roles[i].name);
        assert_int_equal(r.roles[i].scopes, d.roles[i].scopes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parse_lists),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_allows_and_admin_implies_nothing),
        cmocka_unit_test(test_default_roles),
        cmocka_unit_test(test_roles_refusals),
        cmocka_unit_test(test_roles_whitespace_and_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
