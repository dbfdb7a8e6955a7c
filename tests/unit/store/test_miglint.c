/*
 * test_miglint.c — the destructive-change lint on fixture migrations and on inline statements.
 *
 * The fixtures live in tests/fixtures/migrations/lint/<backend>/: one <rule-name>.sql per rule
 * the backend has, each triggering exactly that rule once; clean-*.sql that trigger nothing;
 * problem-*.sql that carry a problem. Every rule must have its fixture wherever it applies.
 * The repository's own first migrations must lint clean. The inline tests cover what the
 * fixtures cannot all show: objects created earlier in the file, spelling variations, quoted and
 * qualified names, bodies that hide statements, and every annotation problem.
 *
 * The repository is found through LEDGERD_SOURCE_DIR, else LEDGERD_SOURCE_DIR_DEFAULT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"
#include "store/miglint.h"

#ifndef LEDGERD_SOURCE_DIR_DEFAULT
#define LEDGERD_SOURCE_DIR_DEFAULT "."
#endif

#define PG SQL_DIALECT_POSTGRES
#define LITE SQL_DIALECT_SQLITE

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */
static const char *source_dir(void)
{
    const char *env = getenv("LEDGERD_SOURCE_DIR");
    return env != NULL && env[0] != '\0' ? env : LEDGERD_SOURCE_DIR_DEFAULT;
}

static const char *backend_dir(enum sql_dialect d)
{
    return d == PG ? "postgres" : "sqlite";
}

/* Reads a whole file; NULL when it does not exist. The caller frees. */
static char *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16;
    char *data = malloc(cap);
    assert_non_null(data);
    size_t n = fread(data, 1, cap, f);
    assert_true(n < cap); /* fixtures are small */
    assert_int_equal(ferror(f), 0);
    fclose(f);
    *len = n;
    return data;
}

static char *load_fixture(enum sql_dialect d, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/migrations/lint/%s/%s", source_dir(),
             backend_dir(d), name);
    return load(path, len);
}

static void lint_len(enum sql_dialect d, const char *text, size_t len, struct miglint_report *r)
{
    struct buf err;
    buf_init(&err, 256);
    int rc = miglint_file(d, text, len, r, &err);
    if (rc != 0) {
        fail_msg("miglint_file: %d %s", rc, err.data != NULL ? err.data : "");
    }
    buf_release(&err);
}

static void lint(enum sql_dialect d, const char *text, struct miglint_report *r)
{
    lint_len(d, text, strlen(text), r);
}

static void dump(const struct miglint_report *r)
{
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct miglint_finding *f = &r->findings[i];
        print_message("finding: %s line %u target %s%s\n", miglint_rule_name(f->rule), f->line,
                      f->target, f->allowed ? " (allowed)" : "");
    }
    for (size_t i = 0; i < r->nproblems; i++) {
        print_message("problem: line %u: %s\n", r->problems[i].line, r->problems[i].message);
    }
}

/* The findings of text, as "rule:target" joined by spaces, for compact comparisons. */
static void expect_findings(enum sql_dialect d, const char *text, const char *want)
{
    struct miglint_report r;
    lint(d, text, &r);
    char got[1024] = "";
    size_t n = 0;
    for (size_t i = 0; i < r.nfindings; i++) {
        int w = snprintf(got + n, sizeof(got) - n, "%s%s:%s", i == 0 ? "" : " ",
                         miglint_rule_name(r.findings[i].rule), r.findings[i].target);
        assert_true(w > 0 && (size_t)w < sizeof(got) - n);
        n += (size_t)w;
    }
    if (strcmp(got, want) != 0) {
        dump(&r);
        fail_msg("%s\ngot  [%s]\nwant [%s]", text, got, want);
    }
    miglint_report_free(&r);
}

/* Asserts that text has a problem on line whose message contains what. */
static void expect_problem(enum sql_dialect d, const char *text, unsigned line, const char *what)
{
    struct miglint_report r;
    lint(d, text, &r);
    for (size_t i = 0; i < r.nproblems; i++) {
        if (r.problems[i].line == line && strstr(r.problems[i].message, what) != NULL) {
            miglint_report_free(&r);
            return;
        }
    }
    dump(&r);
    fail_msg("%s\nno problem on line %u saying [%s]", text, line, what);
}

static void expect_no_problem(enum sql_dialect d, const char *text)
{
    struct miglint_report r;
    lint(d, text, &r);
    if (r.nproblems != 0) {
        dump(&r);
        fail_msg("%s\nunexpected problem", text);
    }
    miglint_report_free(&r);
}

/* Which rules exist on which backend: SQLite has no TRUNCATE, ALTER COLUMN, CONCURRENTLY or
 * lock_timeout. */
static bool applies(enum miglint_rule rule, enum sql_dialect d)
{
    return d == PG ||
           (rule != MIGLINT_TRUNCATE && rule != MIGLINT_COLUMN_TYPE_CHANGE &&
            rule != MIGLINT_INDEX_WITHOUT_CONCURRENTLY && rule != MIGLINT_MISSING_LOCK_TIMEOUT);
}

/* ---------------------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------------------- */
struct rule_expect {
    enum sql_dialect dialect;
    enum miglint_rule rule;
    unsigned line;
    const char *target;
};

static const struct rule_expect rule_expects[] = {
    {LITE, MIGLINT_DROP_TABLE, 3, "legacy_fees"},
    {LITE, MIGLINT_DROP_COLUMN, 8, "accounts"},
    {LITE, MIGLINT_DROP_INDEX, 4, "accounts_by_ledger"},
    {LITE, MIGLINT_DELETE_WITHOUT_WHERE, 3, "idempotency_keys"},
    {LITE, MIGLINT_UPDATE_WITHOUT_WHERE, 3, "transfers"},
    {LITE, MIGLINT_RENAME, 3, "transfers"},
    {LITE, MIGLINT_NOT_NULL_WITHOUT_DEFAULT, 3, "accounts"},
    {LITE, MIGLINT_UNIQUE_ON_EXISTING_TABLE, 3, "accounts"},
    {PG, MIGLINT_DROP_TABLE, 4, "legacy_fees"},
    {PG, MIGLINT_DROP_COLUMN, 9, "accounts"},
    {PG, MIGLINT_DROP_INDEX, 4, "accounts_by_ledger"},
    {PG, MIGLINT_TRUNCATE, 4, "idempotency_keys"},
    {PG, MIGLINT_DELETE_WITHOUT_WHERE, 3, "idempotency_keys"},
    {PG, MIGLINT_UPDATE_WITHOUT_WHERE, 3, "transfers"},
    {PG, MIGLINT_COLUMN_TYPE_CHANGE, 4, "transfers"},
    {PG, MIGLINT_RENAME, 4, "transfers"},
    {PG, MIGLINT_NOT_NULL_WITHOUT_DEFAULT, 4, "accounts"},
    {PG, MIGLINT_UNIQUE_ON_EXISTING_TABLE, 4, "accounts"},
    {PG, MIGLINT_INDEX_WITHOUT_CONCURRENTLY, 4, "transfers"},
    {PG, MIGLINT_MISSING_LOCK_TIMEOUT, 3, "accounts"},
};

static void test_every_rule_has_its_fixture(void **state)
{
    (void)state;
    const enum sql_dialect dialects[] = {LITE, PG};
    for (size_t di = 0; di < 2; di++) {
        enum sql_dialect d = dialects[di];
        for (unsigned i = 0; i < MIGLINT_RULE_COUNT; i++) {
            enum miglint_rule rule = (enum miglint_rule)i;
            char name[128];
            snprintf(name, sizeof(name), "%s.sql", miglint_rule_name(rule));
            size_t len = 0;
            char *text = load_fixture(d, name, &len);
            if (!applies(rule, d)) {
                if (text != NULL) {
                    fail_msg("%s/%s: the rule does not apply to this backend", backend_dir(d),
                             name);
                }
                continue;
            }
            if (text == NULL) {
                fail_msg("%s/%s: missing fixture (from %s)", backend_dir(d), name, source_dir());
            }
            const struct rule_expect *want = NULL;
            for (size_t k = 0; k < sizeof(rule_expects) / sizeof(rule_expects[0]); k++) {
                if (rule_expects[k].dialect == d && rule_expects[k].rule == rule) {
                    want = &rule_expects[k];
                }
            }
            if (want == NULL) {
                fail_msg("%s/%s: no expectation in this test", backend_dir(d), name);
            }
            struct miglint_report r;
            lint_len(d, text, len, &r);
            if (r.nproblems != 0 || r.nfindings != 1 || r.findings[0].rule != rule) {
                dump(&r);
                fail_msg("%s/%s: want exactly one %s and no problem", backend_dir(d), name,
                         miglint_rule_name(rule));
            }
            assert_int_equal(r.findings[0].line, want->line);
            assert_string_equal(r.findings[0].target, want->target);
            assert_false(r.findings[0].allowed);
            assert_true(r.findings[0].stmt < r.nstmts);
            assert_int_equal(r.stmts[r.findings[0].stmt].line, want->line);
            assert_int_equal(miglint_unallowed(&r), 1);
            miglint_report_free(&r);
            free(text);
        }
    }
}

struct problem_expect {
    enum sql_dialect dialect;
    unsigned line;
    const char *file;
    const char *message;
    size_t unallowed;
};

static const struct problem_expect problem_expects[] = {
    {LITE, 3, "problem-no-reason.sql", "give a reason", 1},
    {LITE, 3, "problem-unused-annotation.sql", "unused annotation: no drop-table in this file", 0},
    {LITE, 3, "problem-unknown-rule.sql", "unknown rule \"drop-colum\"", 1},
    {LITE, 2, "problem-no-transaction.sql", "PostgreSQL only", 0},
    {LITE, 1, "problem-placeholder.sql", "fill in the header", 0},
    {PG, 3, "problem-no-reason.sql", "give a reason", 1},
    {PG, 3, "problem-unused-annotation.sql", "unused annotation: no drop-table in this file", 0},
    {PG, 3, "problem-unknown-rule.sql", "unknown rule \"drop_column\"", 1},
    {PG, 4, "problem-concurrently-in-transaction.sql", "cannot run inside a transaction", 0},
    {PG, 2, "problem-no-transaction-several.sql", "one statement besides SET", 0},
    {PG, 2, "problem-unknown-annotation.sql", "unknown annotation", 0},
};

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_clean_and_problem_fixtures(void **state)
{
    (void)state;
    const enum sql_dialect dialects[] = {LITE, PG};
    for (size_t di = 0; di < 2; di++) {
        enum sql_dialect d = dialects[di];
        char path[1024];
        snprintf(path, sizeof(path), "%s/tests/fixtures/migrations/lint/%s", source_dir(),
                 backend_dir(d));
        DIR *dir = opendir(path);
        if (dir == NULL) {
            fail_msg("%s: %s", path, strerror(errno));
            return;
        }
        size_t clean = 0;
        size_t problems = 0;
        for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir)) {
            bool is_clean = has_prefix(e->d_name, "clean-");
            bool is_problem = has_prefix(e->d_name, "problem-");
            if (!is_clean && !is_problem) {
                continue;
            }
            size_t len = 0;
            char *text = load_fixture(d, e->d_name, &len);
            assert_non_null(text);
            struct miglint_report r;
            lint_len(d, text, len, &r);
            if (is_clean) {
                if (r.nproblems != 0 || miglint_unallowed(&r) != 0) {
                    dump(&r);
                    fail_msg("%s/%s should be clean", backend_dir(d), e->d_name);
                }
                clean++;
            } else {
                const struct problem_expect *want = NULL;
                for (size_t k = 0; k < sizeof(problem_expects) / sizeof(problem_expects[0]); k++) {
                    if (problem_expects[k].dialect == d &&
                        strcmp(problem_expects[k].file, e->d_name) == 0) {
                        want = &problem_expects[k];
                    }
                }
                if (want == NULL) {
                    fail_msg("%s/%s: no expectation in this test", backend_dir(d), e->d_name);
                }
                if (r.nproblems != 1 || r.problems[0].line != want->line ||
                    strstr(r.problems[0].message, want->message) == NULL ||
                    miglint_unallowed(&r) != want->unallowed) {
                    dump(&r);
                    fail_msg("%s/%s: want one problem on line %u saying [%s]", backend_dir(d),
                             e->d_name, want->line, want->message);
                }
                problems++;
            }
            miglint_report_free(&r);
            free(text);
        }
        closedir(dir);
        assert_true(clean >= 3);
        size_t want_problems = 0;
        for (size_t k = 0; k < sizeof(problem_expects) / sizeof(problem_expects[0]); k++) {
            want_problems += problem_expects[k].dialect == d ? 1u : 0u;
        }
        assert_int_equal(problems, want_problems);
    }
}

static void test_annotated_fixture_is_allowed(void **state)
{
    (void)state;
    const enum sql_dialect dialects[] = {LITE, PG};
    for (size_t di = 0; di < 2; di++) {
        size_t len = 0;
        char *text = load_fixture(dialects[di], "clean-annotated.sql", &len);
        assert_non_null(text);
        struct miglint_report r;
        lint_len(dialects[di], text, len, &r);
        assert_int_equal(r.nfindings, 1);
        assert_int_equal(r.findings[0].rule, MIGLINT_DROP_COLUMN);
        assert_string_equal(r.findings[0].target, "accounts");
        assert_true(r.findings[0].allowed);
        assert_int_equal(miglint_unallowed(&r), 0);
        assert_int_equal(r.nannotations, 1);
        assert_int_equal(r.annotations[0].rule, MIGLINT_DROP_COLUMN);
        assert_int_equal(r.annotations[0].line, 3);
        assert_string_equal(r.annotations[0].reason,
                            "nothing has read or written accounts.metadata since 0008");
        miglint_report_free(&r);
        free(text);
    }
    size_t len = 0;
    char *text = load_fixture(PG, "clean-concurrently.sql", &len);
    assert_non_null(text);
    struct miglint_report r;
    lint_len(PG, text, len, &r);
    assert_true(r.no_transaction);
    assert_int_equal(r.nfindings, 0);
    miglint_report_free(&r);
    free(text);
}

static void test_repository_migrations_lint_clean(void **state)
{
    (void)state;
    const enum sql_dialect dialects[] = {LITE, PG};
    for (size_t di = 0; di < 2; di++) {
        enum sql_dialect d = dialects[di];
        char path[1024];
        snprintf(path, sizeof(path), "%s/migrations/%s", source_dir(), backend_dir(d));
        DIR *dir = opendir(path);
        if (dir == NULL) {
            fail_msg("%s: %s", path, strerror(errno));
            return;
        }
        size_t seen = 0;
        for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir)) {
            const char *n = e->d_name;
            size_t nlen = strlen(n);
            if (!(has_prefix(n, "0001_") || has_prefix(n, "0002_")) || nlen < 5 ||
                strcmp(n + nlen - 4, ".sql") != 0) {
                continue;
            }
            char file[1300];
            snprintf(file, sizeof(file), "%s/%s", path, n);
            size_t len = 0;
            char *text = load(file, &len);
            assert_non_null(text);
            struct miglint_report r;
            lint_len(d, text, len, &r);
            if (r.nfindings != 0 || r.nproblems != 0 || r.nstmts < 3) {
                dump(&r);
                fail_msg("%s should lint clean", file);
            }
            miglint_report_free(&r);
            free(text);
            seen++;
        }
        closedir(dir);
        assert_int_equal(seen, 2);
    }
}

/* ---------------------------------------------------------------------------------------
 * Rules on inline statements
 * ------------------------------------------------------------------------------------- */
static void test_objects_created_in_the_file_are_not_flagged(void **state)
{
    (void)state;
    const char *stmts[] = {
        "DROP TABLE t",
        "ALTER TABLE t DROP COLUMN a",
        "TRUNCATE t",
        "DELETE FROM t",
        "UPDATE t SET a = 1",
        "ALTER TABLE t ALTER COLUMN a TYPE bigint",
        "ALTER TABLE t RENAME COLUMN a TO b",
        "ALTER TABLE t RENAME TO u; DROP TABLE u; ALTER TABLE u DROP COLUMN a",
        "ALTER TABLE t ADD COLUMN c integer NOT NULL",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "CREATE UNIQUE INDEX t_a ON t (a)",
        "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a)",
        "CREATE INDEX t_a ON t (a); DROP INDEX t_a",
        "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
        "CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "CREATE TABLE IF NOT EXISTS public.t (a integer);\n%s;",
                 stmts[i]);
        expect_findings(PG, text, "");
        snprintf(text, sizeof(text), "create temp table \"t\" (a integer); %s;", stmts[i]);
        expect_findings(PG, text, "");
    }
    expect_findings(LITE, "CREATE TABLE t (a); CREATE UNIQUE INDEX t_a ON t (a); DELETE FROM t;",
                    "");
    /* Only what the file created before the statement is new. */
    expect_findings(LITE, "DELETE FROM t; CREATE TABLE t2 (a); DELETE FROM t2;",
                    "delete-without-where:t");
    /* Views, sequences and schemas created here may be dropped. */
    expect_findings(PG,
                    "CREATE MATERIALIZED VIEW v AS SELECT 1; CREATE SEQUENCE s; "
                    "CREATE SCHEMA sc; DROP MATERIALIZED VIEW v; DROP SEQUENCE s; DROP SCHEMA "
                    "sc; DROP VIEW w;",
                    "drop-table:w");
}

static void test_spelling_variations(void **state)
{
    (void)state;
    expect_findings(LITE, "alter /* why */ TABLE\n\tAccounts -- comment\n  drop\r\n   Metadata",
                    "drop-column:accounts");
    expect_findings(LITE, "ALTER TABLE accounts DROP COLUMN metadata", "drop-column:accounts");
    expect_findings(PG,
                    "SET lock_timeout TO 1000; Alter Table If Exists Only accounts * Drop "
                    "Column If Exists metadata Cascade",
                    "drop-column:accounts");
    expect_findings(PG,
                    "set session LOCK_TIMEOUT = '1s'; ALTER TABLE accounts RENAME metadata TO m",
                    "rename:accounts");
    expect_findings(PG, "SET lock_timeout = 5; ALTER TABLE accounts RENAME TO accounts_old",
                    "rename:accounts");
    expect_findings(LITE, "drop index if exists main.accounts_by_ledger",
                    "drop-index:accounts_by_ledger");
    expect_findings(LITE, "DROP TABLE IF EXISTS a", "drop-table:a");
    expect_findings(PG, "SET lock_timeout = 5; DROP TABLE IF EXISTS a, s.b, \"C\" CASCADE",
                    "drop-table:a drop-table:b drop-table:C");
    expect_findings(PG, "DROP SCHEMA reporting CASCADE; DROP SEQUENCE IF EXISTS x_seq",
                    "drop-table:reporting drop-table:x_seq");
    expect_findings(PG, "SET lock_timeout = 5; TRUNCATE ONLY a, public.b RESTART IDENTITY",
                    "truncate:a truncate:b");
    expect_findings(PG, "delete from only public.idempotency_keys returning *",
                    "delete-without-where:idempotency_keys");
}

static void test_quoted_and_qualified_names(void **state)
{
    (void)state;
    expect_findings(PG, "SET lock_timeout = 5; ALTER TABLE \"Accounts\" DROP COLUMN x",
                    "drop-column:Accounts");
    expect_findings(PG, "SET lock_timeout = 5; ALTER TABLE \"public\".\"Odd\"\"Name\" DROP x",
                    "drop-column:Odd\"Name");
    expect_findings(PG, "SET lock_timeout = 5; ALTER TABLE ledger.public.ACCOUNTS DROP x",
                    "drop-column:accounts");
    expect_findings(LITE, "DROP TABLE [legacy fees]; DROP TABLE `Old``Name`; DROP TABLE \"q\"",
                    "drop-table:legacy fees drop-table:Old`Name drop-table:q");
    /* A quoted name is not the same as the lower-cased bare name. */
    expect_findings(PG, "CREATE TABLE \"T\" (a int); DELETE FROM t; DELETE FROM \"T\"",
                    "delete-without-where:t");
    /* Names longer than PostgreSQL's are cut at LIMIT_MIGRATION_IDENT_LEN_MAX. */
    char text[256];
    char name[101];
    memset(name, 'x', 100);
    name[100] = '\0';
    snprintf(text, sizeof(text), "DELETE FROM %s", name);
    struct miglint_report r;
    lint(LITE, text, &r);
    assert_int_equal(r.nfindings, 1);
    assert_int_equal(strlen(r.findings[0].target), LIMIT_MIGRATION_IDENT_LEN_MAX);
    miglint_report_free(&r);
}

static void test_bodies_hide_statements(void **state)
{
    (void)state;
    expect_findings(LITE,
                    "CREATE TRIGGER x AFTER INSERT ON accounts BEGIN\n"
                    "  UPDATE transfers SET flags = 0;\n  DELETE FROM idempotency_keys;\n"
                    "  DROP TABLE z;\nEND;",
                    "");
    expect_findings(PG,
                    "CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE sql AS $$\n"
                    "  UPDATE transfers SET flags = 0; DELETE FROM idempotency_keys;\n"
                    "  TRUNCATE accounts; ALTER TABLE accounts DROP COLUMN x;\n$$;\n"
                    "DO $do$ BEGIN DELETE FROM accounts; END $do$;",
                    "");
    expect_findings(PG, "SELECT 'DELETE FROM accounts; DROP TABLE accounts'", "");
    /* A statement is what its leading keywords say, not what it mentions. */
    expect_findings(PG,
                    "INSERT INTO log SELECT * FROM accounts; COMMENT ON TABLE accounts IS "
                    "'DROP TABLE'",
                    "");
}

static void test_delete_and_update_where(void **state)
{
    (void)state;
    expect_findings(PG, "DELETE FROM t WHERE a = 1", "");
    expect_findings(PG, "DELETE FROM t WHERE CURRENT OF c", "");
    expect_findings(PG, "DELETE FROM t USING (SELECT id FROM u WHERE x) s",
                    "delete-without-where:t");
    expect_findings(PG, "UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id)",
                    "update-without-where:t");
    expect_findings(PG, "UPDATE ONLY t AS x SET a = 1 FROM u WHERE u.id = x.id", "");
    expect_findings(LITE, "UPDATE OR IGNORE t SET a = 1", "update-without-where:t");
    expect_findings(LITE, "update t set a = 1\n where a is null", "");
    expect_findings(PG,
                    "WITH RECURSIVE x(a, b) AS (SELECT 1, 2 WHERE true), y AS (SELECT 3) "
                    "DELETE FROM t",
                    "delete-without-where:t");
    expect_findings(PG, "WITH x AS MATERIALIZED (SELECT 1) UPDATE t SET a = 1 WHERE b", "");
    expect_findings(PG, "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "");
}

static void test_alter_table_actions(void **state)
{
    (void)state;
    const char *set = "SET lock_timeout = '2s';\n";
    const struct {
        const char *stmt;
        const char *want;
    } cases[] = {
        {"ALTER TABLE a DROP CONSTRAINT a_pkey", ""},
        {"ALTER TABLE a ALTER COLUMN b DROP DEFAULT, ALTER b DROP NOT NULL", ""},
        {"ALTER TABLE a ALTER COLUMN b SET DEFAULT 0", ""},
        {"ALTER TABLE a ALTER COLUMN b SET NOT NULL", "not-null-without-default:a"},
        {"ALTER TABLE a ALTER b SET DATA TYPE bigint", "column-type-change:a"},
        {"ALTER TABLE a ALTER COLUMN b TYPE text USING b::text", "column-type-change:a"},
        {"ALTER TABLE a ADD COLUMN b int NOT NULL DEFAULT 0", ""},
        {"ALTER TABLE a ADD b int DEFAULT 0 NOT NULL", ""},
        {"ALTER TABLE a ADD COLUMN IF NOT EXISTS b int NOT NULL", "not-null-without-default:a"},
        {"ALTER TABLE a ADD COLUMN b int CHECK (b IS NOT NULL)", ""},
        {"ALTER TABLE a ADD COLUMN b int GENERATED ALWAYS AS (c * 2) STORED NOT NULL", ""},
        {"ALTER TABLE a ADD COLUMN b int UNIQUE", "unique-on-existing-table:a"},
        {"ALTER TABLE a ADD UNIQUE (b)", "unique-on-existing-table:a"},
        {"ALTER TABLE a ADD CONSTRAINT a_pk PRIMARY KEY (b)", "unique-on-existing-table:a"},
        {"ALTER TABLE a ADD CONSTRAINT a_b UNIQUE USING INDEX a_b_idx",
         "unique-on-existing-table:a"},
        {"ALTER TABLE a ADD CONSTRAINT a_b CHECK (b > 0) NOT VALID", ""},
        {"ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b) REFERENCES c (d)", ""},
        {"ALTER TABLE a RENAME CONSTRAINT x TO y", ""},
        {"ALTER TABLE a DROP COLUMN b, DROP COLUMN c, RENAME d TO e",
         "drop-column:a drop-column:a rename:a"},
        {"ALTER TABLE a ADD COLUMN b numeric(10, 2) NOT NULL, ADD c int DEFAULT 1",
         "not-null-without-default:a"},
        {"ALTER TABLE a SET (fillfactor = 70), OWNER TO ledgerd", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "%s%s;", set, cases[i].stmt);
        expect_findings(PG, text, cases[i].want);
    }
    /* SQLite has no ALTER COLUMN: no PostgreSQL-only rule is reported there. */
    expect_findings(LITE, "ALTER TABLE a ALTER COLUMN b TYPE text", "");
    expect_findings(LITE, "ALTER TABLE a RENAME TO b", "rename:a");
    expect_findings(LITE, "ALTER TABLE a ADD b TEXT NOT NULL DEFAULT ''", "");
    expect_findings(LITE, "TRUNCATE t; LOCK TABLE t; CREATE INDEX i ON t (a)", "");
}

static void test_indexes(void **state)
{
    (void)state;
    expect_findings(PG, "SET lock_timeout = 5; CREATE UNIQUE INDEX i ON a (b)",
                    "unique-on-existing-table:a index-without-concurrently:a");
    expect_findings(PG, "CREATE INDEX IF NOT EXISTS i ON ONLY public.a USING btree (b)",
                    "index-without-concurrently:a missing-lock-timeout:a");
    expect_findings(PG, "SET lock_timeout = 5; CREATE INDEX ON a (b)",
                    "index-without-concurrently:a");
    expect_findings(LITE, "CREATE INDEX i ON a (b); CREATE UNIQUE INDEX j ON a (c)",
                    "unique-on-existing-table:a");
    /* SQLite has no CONCURRENTLY: an index may be called that. */
    expect_findings(LITE, "CREATE INDEX concurrently ON a (b); DROP INDEX concurrently", "");
    /* CONCURRENTLY outside a no-transaction file is a problem, inside one it is fine. */
    expect_problem(PG, "SET lock_timeout = 5;\nDROP INDEX CONCURRENTLY IF EXISTS i;", 2,
                   "add -- ledgerd:no-transaction");
    expect_problem(PG, "\n\nCREATE UNIQUE INDEX CONCURRENTLY i ON t (a);", 3,
                   "cannot run inside a transaction");
    expect_no_problem(PG, "-- ledgerd:no-transaction\nSET lock_timeout = 5;\n"
                          "DROP INDEX CONCURRENTLY IF EXISTS i;");
    expect_findings(PG,
                    "-- ledgerd:no-transaction\nSET lock_timeout = 5;\n"
                    "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a);",
                    "unique-on-existing-table:t");
}

static void test_lock_timeout(void **state)
{
    (void)state;
    /* Reported once, on the first statement that locks an existing table. */
    expect_findings(PG,
                    "CREATE TABLE n (a int); ALTER TABLE n ADD b int; LOCK TABLE a; "
                    "LOCK b; ALTER TABLE c ADD d int",
                    "missing-lock-timeout:a");
    expect_findings(PG, "SET LOCAL lock_timeout = '1s'; LOCK a; ALTER TABLE b ADD c int", "");
    expect_findings(PG, "SET statement_timeout = '1s'; ALTER TABLE b ADD c int",
                    "missing-lock-timeout:b");
    expect_findings(PG,
                    "CREATE TRIGGER x AFTER INSERT ON accounts FOR EACH ROW EXECUTE "
                    "FUNCTION f()",
                    "missing-lock-timeout:accounts");
    expect_findings(PG, "DROP TABLE a", "drop-table:a missing-lock-timeout:a");
    /* Data changes and new objects take no lock that matters. */
    expect_findings(PG,
                    "UPDATE a SET b = 1 WHERE c; CREATE TABLE d (e int); INSERT INTO a "
                    "VALUES (1)",
                    "");
    struct miglint_report r;
    lint(PG, "-- x\nALTER TABLE a ADD b int;\nSET lock_timeout = 1;", &r);
    assert_int_equal(r.nfindings, 1);
    assert_int_equal(r.findings[0].line, 2);
    assert_int_equal(r.findings[0].stmt, 0);
    miglint_report_free(&r);
}

/* ---------------------------------------------------------------------------------------
 * Annotations
 * ------------------------------------------------------------------------------------- */
static void test_allowed_findings(void **state)
{
    (void)state;
    struct miglint_report r;
    lint(PG,
         "  \t-- ledgerd:destructive drop-table:   the legacy tables are empty since 0004   \r\n"
         "SET lock_timeout = 5;\nDROP TABLE a, b;\nDELETE FROM c;\n",
         &r);
    assert_int_equal(r.nproblems, 0);
    assert_int_equal(r.nfindings, 3);
    assert_true(r.findings[0].allowed);
    assert_true(r.findings[1].allowed);
    assert_false(r.findings[2].allowed);
    assert_int_equal(r.findings[2].rule, MIGLINT_DELETE_WITHOUT_WHERE);
    assert_int_equal(r.findings[2].line, 4);
    assert_int_equal(miglint_unallowed(&r), 1);
    assert_int_equal(r.nannotations, 1);
    assert_string_equal(r.annotations[0].reason, "the legacy tables are empty since 0004");
    miglint_report_free(&r);
    expect_no_problem(LITE, "DELETE FROM c;\n"
                            "-- ledgerd:destructive delete-without-where: rebuilt below from "
                            "transfers\n");
}

static void test_annotation_problems(void **state)
{
    (void)state;
    const char *drop = "\nALTER TABLE a DROP COLUMN b;";
    char text[2048];
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column%s", drop);
    expect_problem(LITE, text, 1, "give a reason");
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column the column is unused%s", drop);
    expect_problem(LITE, text, 1, "give a reason");
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column:  too short  %s", drop);
    expect_problem(LITE, text, 1, "give a reason");
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column: ten chars!%s", drop);
    expect_no_problem(LITE, text);
    snprintf(text, sizeof(text), "-- ledgerd:destructive%s", drop);
    expect_problem(LITE, text, 1, "name a rule");
    snprintf(text, sizeof(text), "-- ledgerd:destructive Drop-Column: the column is unused%s",
             drop);
    expect_problem(LITE, text, 1, "unknown rule \"Drop-Column\"");
    char reason[LIMIT_MIGRATION_REASON_LEN_MAX + 2];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column: %s%s", reason, drop);
    expect_problem(LITE, text, 1, "longer than");
    reason[sizeof(reason) - 2] = '\0';
    snprintf(text, sizeof(text), "-- ledgerd:destructive drop-column: %s%s", reason, drop);
    expect_no_problem(LITE, text);
    snprintf(text, sizeof(text),
             "-- ledgerd:destructive drop-column: the column is unused\n"
             "-- ledgerd:destructive drop-column: the column is unused%s",
             drop);
    expect_problem(LITE, text, 2, "drop-column is annotated twice");
    expect_problem(LITE, "-- ledgerd:destructive rename: the old name is unused\nSELECT 1;", 1,
                   "unused annotation: no rename in this file");
    expect_problem(PG, "-- x\n-- ledgerd:Destructive drop-table: whatever it is\nSELECT 1;", 2,
                   "unknown annotation");
    expect_problem(PG, "-- ledgerd:\nSELECT 1;", 1, "unknown annotation");
    expect_problem(PG, "-- ledgerd:no-transaction please\nSELECT 1;", 1, "unknown annotation");
    expect_problem(PG, "-- ledgerd:no-transaction\n-- ledgerd:no-transaction\nSELECT 1;", 2,
                   "twice");
    expect_problem(LITE, "SELECT 1;\n-- ledgerd:no-transaction\n", 2, "PostgreSQL only");
    expect_problem(PG, "-- ledgerd:no-transaction\nSET lock_timeout = 1;\nSELECT 1;\nSELECT 2;", 1,
                   "one statement besides SET");
    expect_no_problem(PG, "-- ledgerd:no-transaction\nSET lock_timeout = 1;\nSET x = 2;\n"
                          "VACUUM accounts;");
    /* Not annotations: not at the start of the line, or not the exact prefix. */
    expect_no_problem(PG, "SELECT 1; -- ledgerd:bogus\n--ledgerd:bogus\n-- ledgerd : bogus\n");
    /* An annotation with a problem allows nothing. */
    struct miglint_report r;
    lint(LITE, "-- ledgerd:destructive drop-column: short\nALTER TABLE a DROP b;", &r);
    assert_int_equal(r.nfindings, 1);
    assert_false(r.findings[0].allowed);
    assert_int_equal(r.nannotations, 0);
    miglint_report_free(&r);
}

static void test_annotation_limit(void **state)
{
    (void)state;
    size_t cap = (LIMIT_MIGRATION_ANNOTATIONS_MAX + 2) * 40 + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = 0;
    for (unsigned i = 0; i < LIMIT_MIGRATION_ANNOTATIONS_MAX + 1; i++) {
        int w = snprintf(text + n, cap - n, "-- ledgerd:no-transaction\n");
        assert_true(w > 0);
        n += (size_t)w;
    }
    int w = snprintf(text + n, cap - n, "SELECT 1;");
    assert_true(w > 0);
    n += (size_t)w;
    struct miglint_report r;
    lint_len(PG, text, n, &r);
    bool limit = false;
    for (size_t i = 0; i < r.nproblems; i++) {
        limit = limit || (strstr(r.problems[i].message, "more than") != NULL &&
                          r.problems[i].line == LIMIT_MIGRATION_ANNOTATIONS_MAX + 1);
    }
    assert_true(limit);
    /* Every annotation past the first is a duplicate, up to the limit and not beyond. */
    assert_int_equal(r.nproblems, LIMIT_MIGRATION_ANNOTATIONS_MAX);
    miglint_report_free(&r);
    free(text);
}

static void test_whole_file_problems(void **state)
{
    (void)state;
    expect_problem(LITE, "", 1, "the migration has no statements");
    expect_problem(PG, "-- only a header\n/* and a comment */\n;\n", 1,
                   "the migration has no statements");
    expect_problem(PG, "-- 0009_x: one\n--\n-- <what this migration changes and why>\nSELECT 1;", 3,
                   "fill in the header");
    expect_no_problem(PG, "-- 0009_x: what this migration changes and why\nSELECT 1;");
}

static void test_unsplittable_text(void **state)
{
    (void)state;
    struct miglint_report r;
    struct buf err;
    buf_init(&err, 256);
    const char text[] = "SELECT 1;\nSELECT 'abc;\n";
    assert_int_equal(miglint_file(LITE, text, sizeof(text) - 1, &r, &err), -EINVAL);
    assert_non_null(strstr(err.data, "line 2"));
    assert_null(r.stmts);
    assert_null(r.findings);
    assert_int_equal(r.nproblems, 0);
    buf_release(&err);
    /* miglint_report_free accepts an emptied report twice. */
    miglint_report_free(&r);
    miglint_report_free(&r);
}

static void test_rule_names(void **state)
{
    (void)state;
    const char *names[] = {"drop-table",
                           "drop-column",
                           "drop-index",
                           "truncate",
                           "delete-without-where",
                           "update-without-where",
                           "column-type-change",
                           "rename",
                           "not-null-without-default",
                           "unique-on-existing-table",
                           "index-without-concurrently",
                           "missing-lock-timeout"};
    assert_int_equal(sizeof(names) / sizeof(names[0]), MIGLINT_RULE_COUNT);
    for (unsigned i = 0; i < MIGLINT_RULE_COUNT; i++) {
        enum miglint_rule rule = (enum miglint_rule)i;
        assert_string_equal(miglint_rule_name(rule), names[i]);
        assert_int_equal(miglint_rule_find(names[i], strlen(names[i])), rule);
        const char *why = miglint_rule_why(rule);
        assert_true(strlen(why) > 20 && strlen(why) < LIMIT_MIGRATION_MESSAGE_LEN);
    }
    assert_int_equal(miglint_rule_find("drop-tabl", 9), MIGLINT_RULE_COUNT);
    assert_int_equal(miglint_rule_find("drop-table ", 11), MIGLINT_RULE_COUNT);
    assert_int_equal(miglint_rule_find("drop-tablex", 10), MIGLINT_DROP_TABLE);
    assert_int_equal(miglint_rule_find("", 0), MIGLINT_RULE_COUNT);
    assert_string_equal(miglint_rule_why(MIGLINT_DROP_COLUMN),
                        "the running version still reads and writes the column: drop it in a "
                        "contract migration after every replica stopped using it");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_rule_has_its_fixture),
        cmocka_unit_test(test_clean_and_problem_fixtures),
        cmocka_unit_test(test_annotated_fixture_is_allowed),
        cmocka_unit_test(test_repository_migrations_lint_clean),
        cmocka_unit_test(test_objects_created_in_the_file_are_not_flagged),
        cmocka_unit_test(test_spelling_variations),
        cmocka_unit_test(test_quoted_and_qualified_names),
        cmocka_unit_test(test_bodies_hide_statements),
        cmocka_unit_test(test_delete_and_update_where),
        cmocka_unit_test(test_alter_table_actions),
        cmocka_unit_test(test_indexes),
        cmocka_unit_test(test_lock_timeout),
        cmocka_unit_test(test_allowed_findings),
        cmocka_unit_test(test_annotation_problems),
        cmocka_unit_test(test_annotation_limit),
        cmocka_unit_test(test_whole_file_problems),
        cmocka_unit_test(test_unsplittable_text),
        cmocka_unit_test(test_rule_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
