/*
 * fuzz_miglint.c — libFuzzer target for the migration statement splitter and lint.
 *
 * The first byte picks the dialect (even: SQLite, odd: PostgreSQL); the rest is the migration
 * file. A refusal must carry a short, printable reason naming a line and leave the report empty.
 * An accepted file's statements lie within the text, in increasing order, without overlapping,
 * each starting on the line it says and neither starting nor ending with whitespace; every
 * finding points at a statement and its line, names a known rule and a NUL-terminated target;
 * every problem has a line within the file and a non-empty message; annotations are within the
 * limit and carry a reason of allowed length.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file,
 * src/store/miglint.c, src/store/sqlsplit.c, src/core/buf.c and src/core/assert.c.
 * Seeds: tests/fuzz/corpus/miglint/
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/limits.h"
#include "store/miglint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static unsigned line_at(const char *text, size_t offset)
{
    unsigned line = 1;
    for (size_t i = 0; i < offset; i++) {
        line += text[i] == '\n' ? 1u : 0u;
    }
    return line;
}

static void check_report(const struct miglint_report *r, const char *text, size_t len)
{
    unsigned lines = line_at(text, len);
    ASSERT(r->nstmts <= LIMIT_MIGRATION_STATEMENTS_MAX);
    ASSERT((r->nstmts == 0) == (r->stmts == NULL));
    size_t prev_end = 0;
    for (size_t i = 0; i < r->nstmts; i++) {
        const struct sql_stmt *s = &r->stmts[i];
        ASSERT(s->len > 0 && s->offset < len && s->len <= len - s->offset);
        ASSERT(i == 0 || s->offset > prev_end);
        ASSERT(!is_space(text[s->offset]) && !is_space(text[s->offset + s->len - 1]));
        ASSERT(s->line == line_at(text, s->offset));
        prev_end = s->offset + s->len;
    }
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct miglint_finding *f = &r->findings[i];
        ASSERT((unsigned)f->rule < MIGLINT_RULE_COUNT);
        ASSERT(f->stmt < r->nstmts && f->line >= 1 && f->line == r->stmts[f->stmt].line);
        ASSERT(i == 0 || f->stmt >= r->findings[i - 1].stmt);
        ASSERT(memchr(f->target, '\0', sizeof(f->target)) != NULL);
        ASSERT(miglint_rule_find(miglint_rule_name(f->rule), strlen(miglint_rule_name(f->rule))) ==
               f->rule);
    }
    ASSERT(miglint_unallowed(r) <= r->nfindings);
    for (size_t i = 0; i < r->nproblems; i++) {
        const struct miglint_problem *p = &r->problems[i];
        size_t n = strnlen(p->message, sizeof(p->message));
        ASSERT(n > 0 && n < sizeof(p->message));
        ASSERT(p->line >= 1 && p->line <= lines);
    }
    ASSERT(r->nannotations <= LIMIT_MIGRATION_ANNOTATIONS_MAX);
    for (size_t i = 0; i < r->nannotations; i++) {
        const struct miglint_annotation *a = &r->annotations[i];
        size_t n = strnlen(a->reason, sizeof(a->reason));
        ASSERT((unsigned)a->rule < MIGLINT_RULE_COUNT);
        ASSERT(n >= LIMIT_MIGRATION_REASON_LEN_MIN && n <= LIMIT_MIGRATION_REASON_LEN_MAX);
        ASSERT(a->line >= 1 && a->line <= lines);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    enum sql_dialect dialect = (data[0] & 1) != 0 ? SQL_DIALECT_POSTGRES : SQL_DIALECT_SQLITE;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct buf err;
    buf_init(&err, 256);
    struct miglint_report r;
    int rc = miglint_file(dialect, text, len, &r, &err);
    if (rc != 0) {
        ASSERT(rc == -EINVAL);
        ASSERT(r.stmts == NULL && r.nstmts == 0 && r.findings == NULL && r.problems == NULL);
        ASSERT(err.len > 0 && err.len < 256 && strstr(err.data, "line ") != NULL);
        for (size_t i = 0; i < err.len; i++) {
            ASSERT(err.data[i] >= 0x20 && err.data[i] <= 0x7e);
        }
    } else {
        check_report(&r, text, len);
        miglint_report_free(&r);
        ASSERT(r.stmts == NULL && r.findings == NULL && r.problems == NULL);
    }
    buf_release(&err);
    return 0;
}
