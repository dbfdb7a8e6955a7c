/*
 * test_sqlsplit.c — splitting migration files into statements, for SQLite and PostgreSQL.
 *
 * Each test splits a text and compares the statements, as the text they cover and the line they
 * start on, with what the database itself would run: ';' inside strings, quoted identifiers,
 * comments, trigger bodies and dollar quotes does not end a statement; nested block comments
 * are PostgreSQL's only; unterminated constructs, NUL bytes and too many statements are refused
 * with the line where the trouble starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"
#include "store/sqlsplit.h"

#define PG SQL_DIALECT_POSTGRES
#define LITE SQL_DIALECT_SQLITE

struct split_result {
    struct sql_stmt *stmts;
    size_t n;
    int rc;
    char err[256];
};

static struct split_result run_len(enum sql_dialect d, const char *text, size_t len)
{
    struct split_result r;
    memset(&r, 0, sizeof(r));
    struct buf err;
    buf_init(&err, 200);
    r.rc = sql_split(d, text, len, &r.stmts, &r.n, &err);
    if (err.data != NULL) {
        snprintf(r.err, sizeof(r.err), "%s", err.data);
    }
    buf_release(&err);
    if (r.rc != 0) {
        assert_null(r.stmts);
        assert_int_equal(r.n, 0);
    }
    return r;
}

static struct split_result run(enum sql_dialect d, const char *text)
{
    return run_len(d, text, strlen(text));
}

/* Asserts that the statements of text are exactly want[0..n), each with its line. */
static void expect(enum sql_dialect d, const char *text, const char *const *want,
                   const unsigned *lines, size_t n)
{
    struct split_result r = run(d, text);
    if (r.rc != 0) {
        fail_msg("split failed: %s", r.err);
    }
    assert_int_equal(r.n, n);
    for (size_t i = 0; i < n; i++) {
        const struct sql_stmt *s = &r.stmts[i];
        assert_true(s->offset + s->len <= strlen(text));
        if (strlen(want[i]) != s->len || memcmp(text + s->offset, want[i], s->len) != 0) {
            fail_msg("statement %zu: got [%.*s], want [%s]", i, (int)s->len, text + s->offset,
                     want[i]);
        }
        assert_int_equal(s->line, lines[i]);
    }
    free(r.stmts);
}

/* Asserts that text is refused with an error naming line, and containing what. */
static void expect_error(enum sql_dialect d, const char *text, size_t len, const char *what,
                         unsigned line)
{
    struct split_result r = run_len(d, text, len);
    assert_int_equal(r.rc, -EINVAL);
    if (strstr(r.err, what) == NULL) {
        fail_msg("error [%s] does not say [%s]", r.err, what);
    }
    char at[32];
    snprintf(at, sizeof(at), "line %u", line);
    const char *p = strstr(r.err, at);
    if (p == NULL || (p[strlen(at)] >= '0' && p[strlen(at)] <= '9')) {
        fail_msg("error [%s] does not name line %u", r.err, line);
    }
}

static void test_simple_statements(void **state)
{
    (void)state;
    const char *text = "CREATE TABLE a (x INTEGER);\n\nCREATE INDEX a_x ON a (x);\n";
    const char *want[] = {"CREATE TABLE a (x INTEGER)", "CREATE INDEX a_x ON a (x)"};
    const unsigned lines[] = {1, 3};
    expect(LITE, text, want, lines, 2);
    expect(PG, text, want, lines, 2);
}

static void test_last_statement_without_semicolon(void **state)
{
    (void)state;
    const char *text = "SELECT 1;\nSELECT 2   \n-- trailing comment\n  ";
    const char *want[] = {"SELECT 1", "SELECT 2"};
    const unsigned lines[] = {1, 2};
    expect(LITE, text, want, lines, 2);
    expect(PG, text, want, lines, 2);
}

static void test_empty_and_comment_only(void **state)
{
    (void)state;
    const char *texts[] = {"", "   \n\t\r\n", "-- nothing here\n/* nor here */\n", ";;; ;\n",
                           "-- no newline at the end"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        for (int d = 0; d < 2; d++) {
            struct split_result r = run((enum sql_dialect)d, texts[i]);
            assert_int_equal(r.rc, 0);
            assert_int_equal(r.n, 0);
            assert_null(r.stmts);
        }
    }
    struct split_result r = run_len(LITE, NULL, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 0);
}

static void test_leading_comments_are_not_part_of_the_statement(void **state)
{
    (void)state;
    const char *text = "-- header\n/* block\n comment */ UPDATE t SET a = 1 -- why\n WHERE b;";
    const char *want[] = {"UPDATE t SET a = 1 -- why\n WHERE b"};
    const unsigned lines[] = {3};
    expect(LITE, text, want, lines, 1);
    expect(PG, text, want, lines, 1);
}

static void test_strings_with_semicolons_and_escapes(void **state)
{
    (void)state;
    const char *text = "INSERT INTO t VALUES ('a;b', 'it''s; fine', '-- not a comment');\n"
                       "INSERT INTO t VALUES ('/* not a comment either');\n"
                       "SELECT \"odd;\"\"name\" FROM t;";
    const char *want[] = {"INSERT INTO t VALUES ('a;b', 'it''s; fine', '-- not a comment')",
                          "INSERT INTO t VALUES ('/* not a comment either')",
                          "SELECT \"odd;\"\"name\" FROM t"};
    const unsigned lines[] = {1, 2, 3};
    expect(LITE, text, want, lines, 3);
    expect(PG, text, want, lines, 3);
    /* A doubled quote is part of the string, not its end followed by an empty string. */
    const char *text2 = "SELECT 'a'';', \"b\"\";\";\nSELECT 2;";
    const char *want2[] = {"SELECT 'a'';', \"b\"\";\"", "SELECT 2"};
    const unsigned lines2[] = {1, 2};
    expect(LITE, text2, want2, lines2, 2);
    expect(PG, text2, want2, lines2, 2);
}

static void test_multiline_string_counts_lines(void **state)
{
    (void)state;
    const char *text = "INSERT INTO t VALUES ('one\ntwo;\nthree');\nSELECT 1;";
    const char *want[] = {"INSERT INTO t VALUES ('one\ntwo;\nthree')", "SELECT 1"};
    const unsigned lines[] = {1, 4};
    expect(LITE, text, want, lines, 2);
    expect(PG, text, want, lines, 2);
}

static void test_sqlite_identifiers(void **state)
{
    (void)state;
    const char *text = "SELECT `a;b`, [c;d], `e``;f` FROM t; SELECT 2;";
    const char *want[] = {"SELECT `a;b`, [c;d], `e``;f` FROM t", "SELECT 2"};
    const unsigned lines[] = {1, 1};
    expect(LITE, text, want, lines, 2);
    /* PostgreSQL has no such quotes: the ';' inside them end statements. */
    struct split_result r = run(PG, "SELECT [c;d];");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 2);
    free(r.stmts);
}

static void test_nested_comments(void **state)
{
    (void)state;
    const char *text = "/* outer /* inner; */ still; comment */ SELECT 1;";
    const char *pg_want[] = {"SELECT 1"};
    const unsigned lines[] = {1};
    expect(PG, text, pg_want, lines, 1);
    /* SQLite ends the comment at the first star-slash. */
    const char *lite_want[] = {"still", "comment */ SELECT 1"};
    const unsigned lite_lines[] = {1, 1};
    expect(LITE, text, lite_want, lite_lines, 2);
}

static void test_sqlite_trigger_body(void **state)
{
    (void)state;
    const char *text = "CREATE TRIGGER no_update BEFORE UPDATE ON audit\n"
                       "BEGIN\n"
                       "    SELECT RAISE(ABORT, 'immutable; really');\n"
                       "    UPDATE t SET a = CASE WHEN b THEN 1 ELSE 2 END;\n"
                       "END;\n"
                       "create temp trigger t2 after insert on t begin delete from u; end;\n"
                       "SELECT 1;";
    const char *want[] = {"CREATE TRIGGER no_update BEFORE UPDATE ON audit\n"
                          "BEGIN\n"
                          "    SELECT RAISE(ABORT, 'immutable; really');\n"
                          "    UPDATE t SET a = CASE WHEN b THEN 1 ELSE 2 END;\n"
                          "END",
                          "create temp trigger t2 after insert on t begin delete from u; end",
                          "SELECT 1"};
    const unsigned lines[] = {1, 6, 7};
    expect(LITE, text, want, lines, 3);
}

static void test_sqlite_trigger_last_without_semicolon(void **state)
{
    (void)state;
    const char *text = "CREATE TRIGGER x AFTER INSERT ON t BEGIN DELETE FROM u; END";
    const char *want[] = {text};
    const unsigned lines[] = {1};
    expect(LITE, text, want, lines, 1);
}

static void test_postgres_trigger_has_no_body(void **state)
{
    (void)state;
    const char *text = "CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();\n"
                       "SELECT 1;";
    const char *want[] = {"CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
                          "SELECT 1"};
    const unsigned lines[] = {1, 2};
    expect(PG, text, want, lines, 2);
}

static void test_dollar_quotes(void **state)
{
    (void)state;
    const char *text = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
                       "BEGIN\n"
                       "    EXECUTE $$UPDATE t SET a = 1; DELETE FROM t;$$;\n"
                       "    RETURN NULL;\n"
                       "END;\n"
                       "$body$;\n"
                       "SELECT $1, $2::int, a$b$ FROM t;\n"
                       "SELECT $_x9$ ; $_x9$;";
    const char *want[] = {"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
                          "BEGIN\n"
                          "    EXECUTE $$UPDATE t SET a = 1; DELETE FROM t;$$;\n"
                          "    RETURN NULL;\n"
                          "END;\n"
                          "$body$",
                          "SELECT $1, $2::int, a$b$ FROM t", "SELECT $_x9$ ; $_x9$"};
    const unsigned lines[] = {1, 7, 8};
    expect(PG, text, want, lines, 3);
}

static void test_dollar_is_not_special_in_sqlite(void **state)
{
    (void)state;
    const char *text = "SELECT $$; SELECT $$;";
    const char *want[] = {"SELECT $$", "SELECT $$"};
    const unsigned lines[] = {1, 1};
    expect(LITE, text, want, lines, 2);
}

static void test_escape_strings(void **state)
{
    (void)state;
    const char *text = "SELECT E'it\\'s; \\\\', e'x''y;';\nSELECT 'a\\';";
    const char *want[] = {"SELECT E'it\\'s; \\\\', e'x''y;'", "SELECT 'a\\'"};
    const unsigned lines[] = {1, 2};
    expect(PG, text, want, lines, 2);
    /* A word ending in e is no E string: 'a\' is an ordinary string. */
    const char *text2 = "SELECT type'a\\';";
    const char *want2[] = {"SELECT type'a\\'"};
    expect(PG, text2, want2, lines, 1);
}

static void test_crlf(void **state)
{
    (void)state;
    const char *text = "-- header\r\nCREATE TABLE a (x INTEGER);\r\n\r\nDROP TABLE b;\r\n";
    const char *want[] = {"CREATE TABLE a (x INTEGER)", "DROP TABLE b"};
    const unsigned lines[] = {2, 4};
    expect(LITE, text, want, lines, 2);
    expect(PG, text, want, lines, 2);
}

static void test_unterminated(void **state)
{
    (void)state;
    const char *s1 = "SELECT 1;\nSELECT 'abc;\n\n";
    const char *s2 = "SELECT 1;\n\nSELECT \"abc;";
    const char *s3 = "SELECT 1;\n/* a\n b */\n/* c";
    const char *s4 = "SELECT 1;\nSELECT E'\\';";
    const char *s5 = "SELECT 1;\nSELECT $t$ abc $tt$;\n";
    const char *s6 = "SELECT 1;\nSELECT `abc;";
    const char *s7 = "SELECT 1;\n\nSELECT [abc;";
    const char *s8 = "SELECT 1;\nCREATE TRIGGER t AFTER INSERT ON u\nBEGIN\n DELETE FROM v;\n";
    const char *s9 = "SELECT 1;\n/* a /* b */ c;";
    const char *s10 = "SELECT 1;\nSELECT 'it''";
    expect_error(LITE, s1, strlen(s1), "unterminated string", 2);
    expect_error(PG, s1, strlen(s1), "unterminated string", 2);
    expect_error(LITE, s2, strlen(s2), "unterminated quoted identifier", 3);
    expect_error(PG, s2, strlen(s2), "unterminated quoted identifier", 3);
    expect_error(LITE, s3, strlen(s3), "unterminated block comment", 4);
    expect_error(PG, s3, strlen(s3), "unterminated block comment", 4);
    expect_error(PG, s4, strlen(s4), "unterminated string", 2);
    expect_error(PG, s5, strlen(s5), "unterminated dollar", 2);
    expect_error(LITE, s6, strlen(s6), "unterminated quoted identifier", 2);
    expect_error(LITE, s7, strlen(s7), "unterminated quoted identifier", 3);
    expect_error(LITE, s8, strlen(s8), "unterminated trigger body", 2);
    expect_error(PG, s9, strlen(s9), "unterminated block comment", 2);
    expect_error(LITE, s10, strlen(s10), "unterminated string", 2);
    expect_error(PG, s10, strlen(s10), "unterminated string", 2);
    /* The same texts without the unterminated part split fine: SQLite reads s9 flat. */
    struct split_result r = run(LITE, s9);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 2);
    free(r.stmts);
}

static void test_nul_byte(void **state)
{
    (void)state;
    const char text[] = "SELECT 1;\nSELECT '\0';\n";
    expect_error(LITE, text, sizeof(text) - 1, "NUL byte", 2);
    expect_error(PG, text, sizeof(text) - 1, "NUL byte", 2);
    const char text2[] = "-- \0 in a comment\nSELECT 1;";
    expect_error(PG, text2, sizeof(text2) - 1, "NUL byte", 1);
}

static void test_text_is_not_read_past_len(void **state)
{
    (void)state;
    /* The bytes after len would close the string: they must not be seen. */
    const char *text = "SELECT 'abc'; SELECT 'x';";
    struct split_result r = run_len(PG, text, 22);
    assert_int_equal(r.rc, -EINVAL);
    r = run_len(LITE, text, 12);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.stmts[0].len, 12);
    free(r.stmts);
}

static void test_statement_limit(void **state)
{
    (void)state;
    static const char unit[] = "SELECT 1;";
    size_t n = LIMIT_MIGRATION_STATEMENTS_MAX + 1;
    char *text = malloc(n * 9 + 1);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++) {
        memcpy(text + i * 9, unit, sizeof(unit));
    }
    struct split_result r = run_len(LITE, text, (n - 1) * 9);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, LIMIT_MIGRATION_STATEMENTS_MAX);
    assert_int_equal(r.stmts[r.n - 1].offset, (n - 2) * 9);
    free(r.stmts);
    r = run_len(PG, text, n * 9);
    assert_int_equal(r.rc, -EINVAL);
    assert_non_null(strstr(r.err, "more than"));
    free(text);
}

static void test_long_input_is_fast(void **state)
{
    (void)state;
    /* Many '$' after a long dollar tag: linear with memmem, quadratic with a naive search. */
    size_t len = 1u << 21;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, '$', len);
    text[0] = ' ';
    memset(text + 1, 'a', 4096);
    text[1] = '$';
    text[4096] = '$';
    struct split_result r = run_len(PG, text, len);
    assert_int_equal(r.rc, -EINVAL);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_statements),
        cmocka_unit_test(test_last_statement_without_semicolon),
        cmocka_unit_test(test_empty_and_comment_only),
        cmocka_unit_test(test_leading_comments_are_not_part_of_the_statement),
        cmocka_unit_test(test_strings_with_semicolons_and_escapes),
        cmocka_unit_test(test_multiline_string_counts_lines),
        cmocka_unit_test(test_sqlite_identifiers),
        cmocka_unit_test(test_nested_comments),
        cmocka_unit_test(test_sqlite_trigger_body),
        cmocka_unit_test(test_sqlite_trigger_last_without_semicolon),
        cmocka_unit_test(test_postgres_trigger_has_no_body),
        cmocka_unit_test(test_dollar_quotes),
        cmocka_unit_test(test_dollar_is_not_special_in_sqlite),
        cmocka_unit_test(test_escape_strings),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_text_is_not_read_past_len),
        cmocka_unit_test(test_statement_limit),
        cmocka_unit_test(test_long_input_is_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
