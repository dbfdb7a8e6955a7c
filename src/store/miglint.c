/*
 * miglint.c — the destructive-change lint: rules over the leading keywords of each statement.
 *
 * The file is split with sql_split(); each top-level statement is then read as a stream of
 * tokens (comments and whitespace skipped, bare words compared case-insensitively, quoted
 * identifiers unquoted). Only a statement's own leading keywords decide what it is, so an UPDATE
 * inside a trigger body or a dollar-quoted function body is never taken for a top-level one.
 * Tables, views, sequences, schemas and indexes created earlier in the file are remembered in a
 * small hash set: statements on them are never flagged, since a new object is empty and unused.
 *
 * Annotations are read line by line from the whole text. The lint never fails on what it finds:
 * findings and problems are results, and only an unsplittable text or no memory is an error.
 */
#include "store/miglint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assert.h"

#define ANNOTATION_PREFIX "-- ledgerd:"
#define HEADER_PLACEHOLDER "<what this migration changes and why>"
/* A finding per statement is the common case; a file listing more than this many is hostile or
 * generated, and is refused as a problem rather than grown without bound. */
#define FINDINGS_MAX LIMIT_MIGRATION_STATEMENTS_MAX
/* Bytes of user text quoted in a problem message. */
#define QUOTE_LEN_MAX 40
/* A name as the lint keeps it: LIMIT_MIGRATION_IDENT_LEN_MAX bytes and a NUL. */
#define NAME_SIZE (LIMIT_MIGRATION_IDENT_LEN_MAX + 1)

/* ------------------------------------------------------------------------------------------
 * The rule table
 * ---------------------------------------------------------------------------------------- */
struct rule_info {
    const char *name;
    const char *why;
};

static const struct rule_info rules[MIGLINT_RULE_COUNT] = {
    [MIGLINT_DROP_TABLE] = {"drop-table", "the running version still reads and writes it, and "
                                          "the data is gone for good: drop it in a contract "
                                          "migration after every replica stopped using it"},
    [MIGLINT_DROP_COLUMN] = {"drop-column",
                             "the running version still reads and writes the column: drop it "
                             "in a contract migration after every replica stopped using it"},
    [MIGLINT_DROP_INDEX] = {"drop-index", "queries of the running version may depend on the "
                                          "index and turn into full scans without it"},
    [MIGLINT_TRUNCATE] = {"truncate", "it deletes every row at once, outside any ledger "
                                      "operation, and cannot be undone"},
    [MIGLINT_DELETE_WITHOUT_WHERE] = {"delete-without-where",
                                      "it deletes every row of the table: add the WHERE that "
                                      "says which rows the migration means"},
    [MIGLINT_UPDATE_WITHOUT_WHERE] = {"update-without-where",
                                      "it rewrites every row of the table: add the WHERE that "
                                      "says which rows the migration means"},
    [MIGLINT_COLUMN_TYPE_CHANGE] = {"column-type-change",
                                    "it rewrites the table under an exclusive lock and the "
                                    "running version may not read the new type: add a new "
                                    "column, backfill it, then switch"},
    [MIGLINT_RENAME] = {"rename", "the running version still uses the old name: add the new "
                                  "name, switch readers and writers, then drop the old one"},
    [MIGLINT_NOT_NULL_WITHOUT_DEFAULT] = {"not-null-without-default",
                                          "inserts by the running version, which does not know "
                                          "the column, fail: give the column a DEFAULT"},
    [MIGLINT_UNIQUE_ON_EXISTING_TABLE] = {"unique-on-existing-table",
                                          "existing rows may already break it, and building "
                                          "the index blocks writes to the table"},
    [MIGLINT_INDEX_WITHOUT_CONCURRENTLY] = {"index-without-concurrently",
                                            "building the index blocks every write to the "
                                            "table: use CREATE INDEX CONCURRENTLY"},
    [MIGLINT_MISSING_LOCK_TIMEOUT] = {"missing-lock-timeout",
                                      "waiting for a lock queues every query behind it: SET "
                                      "lock_timeout first so the migration fails fast instead"},
};

const char *miglint_rule_name(enum miglint_rule rule)
{
    ASSERT((unsigned)rule < MIGLINT_RULE_COUNT);
    return rules[rule].name;
}

const char *miglint_rule_why(enum miglint_rule rule)
{
    ASSERT((unsigned)rule < MIGLINT_RULE_COUNT);
    return rules[rule].why;
}

enum miglint_rule miglint_rule_find(const char *name, size_t len)
{
    ASSERT(name != NULL || len == 0);
    for (unsigned i = 0; i < MIGLINT_RULE_COUNT; i++) {
        if (strlen(rules[i].name) == len && memcmp(rules[i].name, name, len) == 0) {
            return (enum miglint_rule)i;
        }
    }
    return MIGLINT_RULE_COUNT;
}

/* Rules that only mean something on PostgreSQL: SQLite has no TRUNCATE, no ALTER COLUMN, no
 * CONCURRENTLY and no lock_timeout (a migration takes the one database-wide write lock). */
static bool rule_applies(enum miglint_rule rule, enum sql_dialect dialect)
{
    if (dialect == SQL_DIALECT_POSTGRES) {
        return true;
    }
    return rule != MIGLINT_TRUNCATE && rule != MIGLINT_COLUMN_TYPE_CHANGE &&
           rule != MIGLINT_INDEX_WITHOUT_CONCURRENTLY && rule != MIGLINT_MISSING_LOCK_TIMEOUT;
}

/* ------------------------------------------------------------------------------------------
 * Tokens of one statement
 * ---------------------------------------------------------------------------------------- */
enum tok_kind {
    TOK_END,
    TOK_WORD,   /* keyword, unquoted identifier or number */
    TOK_QIDENT, /* "x", `x` or [x]: p/len include the quotes */
    TOK_STRING, /* '...', E'...', $tag$...$tag$ */
    TOK_PUNCT,  /* any other single byte */
};

struct tok {
    enum tok_kind kind;
    const char *p;
    size_t len;
};

/* A cursor over text[pos, end). Copying it is how the parser looks ahead. */
struct lex {
    enum sql_dialect dialect;
    const char *text;
    size_t pos;
    size_t end;
};

static bool word_char(enum sql_dialect dialect, unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80 || (c == '$' && dialect == SQL_DIALECT_POSTGRES);
}

/* The index just past a run closed by close (doubled close escaped, backslash escapes when
 * asked), or end when the run is unterminated (sql_split has refused such text already). */
static size_t run_end(const struct lex *lx, size_t from, char close, bool doubled, bool bs)
{
    size_t i = from;
    while (i < lx->end) {
        char c = lx->text[i];
        if (bs && c == '\\') {
            i += 2;
            continue;
        }
        if (c == close) {
            if (doubled && i + 1 < lx->end && lx->text[i + 1] == close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
    return lx->end;
}

static size_t skip_comment(const struct lex *lx, size_t i)
{
    const char *t = lx->text;
    if (t[i] == '-') {
        const char *nl = memchr(t + i, '\n', lx->end - i);
        return nl == NULL ? lx->end : (size_t)(nl - t);
    }
    size_t depth = 1;
    i += 2;
    while (i + 1 < lx->end) {
        if (t[i] == '*' && t[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                return i;
            }
        } else if (lx->dialect == SQL_DIALECT_POSTGRES && t[i] == '/' && t[i + 1] == '*') {
            depth++;
            i += 2;
        } else {
            i++;
        }
    }
    return lx->end;
}

/* pos is at a '$' in PostgreSQL: the end of the dollar quote, or 0 when it is not one. */
static size_t dollar_end(const struct lex *lx, size_t pos)
{
    const char *t = lx->text;
    size_t i = pos + 1;
    if (i < lx->end && !(t[i] >= '0' && t[i] <= '9')) {
        while (i < lx->end && t[i] != '$' && word_char(lx->dialect, (unsigned char)t[i])) {
            i++;
        }
    }
    if (i >= lx->end || t[i] != '$') {
        return 0;
    }
    size_t delim_len = i + 1 - pos;
    const char *close = memmem(t + i + 1, lx->end - (i + 1), t + pos, delim_len);
    return close == NULL ? lx->end : (size_t)(close - t) + delim_len;
}

static void lex_next(struct lex *lx, struct tok *out)
{
    const char *t = lx->text;
    bool sqlite = lx->dialect == SQL_DIALECT_SQLITE;
    for (;;) {
        while (lx->pos < lx->end &&
               (t[lx->pos] == ' ' || t[lx->pos] == '\t' || t[lx->pos] == '\n' ||
                t[lx->pos] == '\r' || t[lx->pos] == '\f' || t[lx->pos] == '\v')) {
            lx->pos++;
        }
        if (lx->pos + 1 < lx->end && ((t[lx->pos] == '-' && t[lx->pos + 1] == '-') ||
                                      (t[lx->pos] == '/' && t[lx->pos + 1] == '*'))) {
            lx->pos = skip_comment(lx, lx->pos);
            continue;
        }
        break;
    }
    size_t start = lx->pos;
    *out = (struct tok){.kind = TOK_END, .p = t + start, .len = 0};
    if (start >= lx->end) {
        return;
    }
    unsigned char c = (unsigned char)t[start];
    size_t end = start + 1;
    enum tok_kind kind = TOK_PUNCT;
    if (c == '\'') {
        kind = TOK_STRING;
        end = run_end(lx, start + 1, '\'', true, false);
    } else if (c == '"' || (sqlite && c == '`')) {
        kind = TOK_QIDENT;
        end = run_end(lx, start + 1, (char)c, true, false);
    } else if (sqlite && c == '[') {
        kind = TOK_QIDENT;
        end = run_end(lx, start + 1, ']', false, false);
    } else if (!sqlite && c == '$' && dollar_end(lx, start) != 0) {
        kind = TOK_STRING;
        end = dollar_end(lx, start);
    } else if (word_char(lx->dialect, c) && c != '$') {
        kind = TOK_WORD;
        while (end < lx->end && word_char(lx->dialect, (unsigned char)t[end])) {
            end++;
        }
        if (!sqlite && end == start + 1 && (c == 'e' || c == 'E') && end < lx->end &&
            t[end] == '\'') {
            kind = TOK_STRING;
            end = run_end(lx, end + 1, '\'', true, true);
        }
    }
    ASSERT(end > start && end <= lx->end);
    lx->pos = end;
    *out = (struct tok){.kind = kind, .p = t + start, .len = end - start};
}

static bool is_kw(const struct tok *t, const char *kw)
{
    return t->kind == TOK_WORD && strlen(kw) == t->len && strncasecmp(t->p, kw, t->len) == 0;
}

static bool is_punct(const struct tok *t, char c)
{
    return t->kind == TOK_PUNCT && t->p[0] == c;
}

static bool is_ident(const struct tok *t)
{
    return t->kind == TOK_WORD || t->kind == TOK_QIDENT;
}

/* Consumes the next token when it is the keyword kw. */
static bool accept_kw(struct lex *lx, const char *kw)
{
    struct lex ahead = *lx;
    struct tok t;
    lex_next(&ahead, &t);
    if (!is_kw(&t, kw)) {
        return false;
    }
    *lx = ahead;
    return true;
}

static bool accept_punct(struct lex *lx, char c)
{
    struct lex ahead = *lx;
    struct tok t;
    lex_next(&ahead, &t);
    if (!is_punct(&t, c)) {
        return false;
    }
    *lx = ahead;
    return true;
}

static bool accept_if_exists(struct lex *lx)
{
    struct lex ahead = *lx;
    if (accept_kw(&ahead, "if") && accept_kw(&ahead, "exists")) {
        *lx = ahead;
        return true;
    }
    return false;
}

static bool accept_if_not_exists(struct lex *lx)
{
    struct lex ahead = *lx;
    if (accept_kw(&ahead, "if") && accept_kw(&ahead, "not") && accept_kw(&ahead, "exists")) {
        *lx = ahead;
        return true;
    }
    return false;
}

/* c, or '?' for a control byte: names and reasons end up in terminals and logs. */
static char printable(char c)
{
    if ((unsigned char)c < 0x20 || c == 0x7f) {
        return '?';
    }
    return c;
}

/* Writes the identifier t as a name: a bare word lower-cased, a quoted one unquoted with its
 * doubled quotes undone; control bytes become '?'. Truncated at LIMIT_MIGRATION_IDENT_LEN_MAX. */
static void ident_text(const struct tok *t, char out[NAME_SIZE])
{
    ASSERT(is_ident(t));
    const char *p = t->p;
    size_t len = t->len;
    char close = 0;
    if (t->kind == TOK_QIDENT) {
        close = p[0];
        if (close == '[') {
            close = ']';
        }
        p++;
        len--;
        if (len > 0 && p[len - 1] == close) {
            len--;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < len && n < LIMIT_MIGRATION_IDENT_LEN_MAX; i++) {
        char c = p[i];
        if (close != 0 && close != ']' && c == close && i + 1 < len && p[i + 1] == close) {
            i++;
        } else if (close == 0 && c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        out[n++] = printable(c);
    }
    out[n] = '\0';
}

/* name [. name ...]: keeps the last part (public.accounts is "accounts"). */
static bool parse_name(struct lex *lx, char out[NAME_SIZE])
{
    struct tok t;
    lex_next(lx, &t);
    if (!is_ident(&t)) {
        out[0] = '\0';
        return false;
    }
    ident_text(&t, out);
    while (accept_punct(lx, '.')) {
        lex_next(lx, &t);
        if (!is_ident(&t)) {
            return true;
        }
        ident_text(&t, out);
    }
    return true;
}

/* Whether a WHERE appears outside parentheses in the rest of the statement. */
static bool has_top_where(struct lex lx)
{
    size_t depth = 0;
    struct tok t;
    for (lex_next(&lx, &t); t.kind != TOK_END; lex_next(&lx, &t)) {
        if (is_punct(&t, '(')) {
            depth++;
        } else if (is_punct(&t, ')') && depth > 0) {
            depth--;
        } else if (depth == 0 && is_kw(&t, "where")) {
            return true;
        }
    }
    return false;
}

/* A sub-cursor over the next comma-separated item at parenthesis depth 0; lx moves past the
 * comma. Returns false at the end of the statement. */
static bool next_item(struct lex *lx, struct lex *item)
{
    struct lex probe = *lx;
    struct tok t;
    lex_next(&probe, &t);
    if (t.kind == TOK_END) {
        return false;
    }
    *item = *lx;
    size_t depth = 0;
    probe = *lx;
    for (;;) {
        size_t before = probe.pos;
        lex_next(&probe, &t);
        if (t.kind == TOK_END) {
            item->end = probe.pos;
            *lx = probe;
            return true;
        }
        if (is_punct(&t, '(')) {
            depth++;
        } else if (is_punct(&t, ')') && depth > 0) {
            depth--;
        } else if (depth == 0 && is_punct(&t, ',')) {
            item->end = before;
            *lx = probe;
            return true;
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Names created in this file: an open-addressing hash set of fixed-size names
 * ---------------------------------------------------------------------------------------- */
struct name_set {
    char (*slots)[NAME_SIZE];
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

static size_t name_hash(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    }
    return (size_t)h;
}

static bool name_set_has(const struct name_set *set, const char *name)
{
    if (set->cap == 0 || name[0] == '\0') {
        return false;
    }
    for (size_t i = name_hash(name) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (set->slots[i][0] == '\0') {
            return false;
        }
        if (strcmp(set->slots[i], name) == 0) {
            return true;
        }
    }
}

static void name_set_put(char (*slots)[NAME_SIZE], size_t cap, const char *name)
{
    size_t i = name_hash(name) & (cap - 1);
    while (slots[i][0] != '\0' && strcmp(slots[i], name) != 0) {
        i = (i + 1) & (cap - 1);
    }
    size_t len = strlen(name);
    ASSERT(len <= LIMIT_MIGRATION_IDENT_LEN_MAX);
    memcpy(slots[i], name, len + 1);
}

static int name_set_add(struct name_set *set, const char *name)
{
    if (name[0] == '\0' || name_set_has(set, name)) {
        return 0;
    }
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap == 0 ? 64 : set->cap * 2;
        char(*slots)[NAME_SIZE] = calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < set->cap; i++) {
            if (set->slots[i][0] != '\0') {
                name_set_put(slots, cap, set->slots[i]);
            }
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    name_set_put(set->slots, set->cap, name);
    set->n++;
    ASSERT(set->n * 2 <= set->cap);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The lint state and what it reports
 * ---------------------------------------------------------------------------------------- */
struct lint {
    enum sql_dialect dialect;
    const char *text;
    size_t len;
    struct miglint_report *r;
    struct name_set created;
    bool allowed[MIGLINT_RULE_COUNT];
    bool found[MIGLINT_RULE_COUNT];
    size_t findings_cap;
    size_t problems_cap;
    unsigned no_tx_line; /* the -- ledgerd:no-transaction line */
    bool lock_timeout_set;
    bool lock_reported;
    bool findings_full;
    size_t stmts_not_set; /* statements other than SET */
    size_t stmt;          /* the statement being read */
};

static int add_problem(struct lint *L, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_problem(struct lint *L, unsigned line, const char *fmt, ...)
{
    struct miglint_report *r = L->r;
    if (r->nproblems == L->problems_cap) {
        size_t cap = L->problems_cap == 0 ? 8 : L->problems_cap * 2;
        struct miglint_problem *p = realloc(r->problems, cap * sizeof(*p));
        if (p == NULL) {
            return -ENOMEM;
        }
        r->problems = p;
        L->problems_cap = cap;
    }
    struct miglint_problem *p = &r->problems[r->nproblems++];
    p->line = line == 0 ? 1 : line;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    return 0;
}

/* Reports rule on the current statement unless target is an object created in this file. */
static int add_finding(struct lint *L, enum miglint_rule rule, const char *target)
{
    ASSERT((unsigned)rule < MIGLINT_RULE_COUNT);
    if (!rule_applies(rule, L->dialect) || name_set_has(&L->created, target) || L->findings_full) {
        return 0;
    }
    struct miglint_report *r = L->r;
    ASSERT(L->stmt < r->nstmts);
    if (r->nfindings == FINDINGS_MAX) {
        L->findings_full = true;
        return add_problem(L, r->stmts[L->stmt].line, "more than %u findings: split the migration",
                           (unsigned)FINDINGS_MAX);
    }
    if (r->nfindings == L->findings_cap) {
        size_t cap = L->findings_cap == 0 ? 8 : L->findings_cap * 2;
        struct miglint_finding *f = realloc(r->findings, cap * sizeof(*f));
        if (f == NULL) {
            return -ENOMEM;
        }
        r->findings = f;
        L->findings_cap = cap;
    }
    struct miglint_finding *f = &r->findings[r->nfindings++];
    memset(f, 0, sizeof(*f));
    f->rule = rule;
    f->stmt = L->stmt;
    f->line = r->stmts[L->stmt].line;
    size_t n = strnlen(target, LIMIT_MIGRATION_IDENT_LEN_MAX);
    memcpy(f->target, target, n);
    f->target[n] = '\0';
    f->allowed = L->allowed[rule];
    L->found[rule] = true;
    return 0;
}

/* A statement that locks target: the first such on an existing table before SET lock_timeout
 * is reported, once per file. */
static int took_lock(struct lint *L, const char *target)
{
    if (L->lock_timeout_set || L->lock_reported || name_set_has(&L->created, target) ||
        target[0] == '\0') {
        return 0;
    }
    L->lock_reported = true;
    return add_finding(L, MIGLINT_MISSING_LOCK_TIMEOUT, target);
}

static int concurrently_outside_transaction(struct lint *L)
{
    if (L->r->no_transaction) {
        return 0;
    }
    return add_problem(L, L->r->stmts[L->stmt].line,
                       "CONCURRENTLY cannot run inside a transaction: add -- "
                       "ledgerd:no-transaction and make it the file's only statement");
}

/* ------------------------------------------------------------------------------------------
 * Statements
 * ---------------------------------------------------------------------------------------- */
static int lint_create_index(struct lint *L, struct lex *lx, bool unique)
{
    char index[NAME_SIZE] = "";
    char table[NAME_SIZE] = "";
    bool pg = L->dialect == SQL_DIALECT_POSTGRES;
    bool concurrently = pg && accept_kw(lx, "concurrently");
    (void)accept_if_not_exists(lx);
    if (!accept_kw(lx, "on")) {
        if (!parse_name(lx, index) || !accept_kw(lx, "on")) {
            return 0;
        }
    }
    (void)accept_kw(lx, "only");
    if (!parse_name(lx, table)) {
        return 0;
    }
    int rc = 0;
    if (concurrently) {
        rc = concurrently_outside_transaction(L);
    }
    if (rc == 0 && unique) {
        rc = add_finding(L, MIGLINT_UNIQUE_ON_EXISTING_TABLE, table);
    }
    if (rc == 0 && !concurrently) {
        rc = add_finding(L, MIGLINT_INDEX_WITHOUT_CONCURRENTLY, table);
    }
    if (rc == 0) {
        rc = took_lock(L, table);
    }
    if (rc == 0) {
        rc = name_set_add(&L->created, index);
    }
    return rc;
}

static int lint_create_trigger(struct lint *L, struct lex *lx)
{
    struct tok t;
    size_t depth = 0;
    for (lex_next(lx, &t); t.kind != TOK_END; lex_next(lx, &t)) {
        if (is_punct(&t, '(')) {
            depth++;
        } else if (is_punct(&t, ')') && depth > 0) {
            depth--;
        } else if (depth == 0 && is_kw(&t, "on")) {
            char table[NAME_SIZE];
            return parse_name(lx, table) ? took_lock(L, table) : 0;
        }
    }
    return 0;
}

static int lint_create(struct lint *L, struct lex *lx)
{
    if (accept_kw(lx, "or")) {
        (void)accept_kw(lx, "replace");
    }
    while (accept_kw(lx, "temp") || accept_kw(lx, "temporary") || accept_kw(lx, "unlogged") ||
           accept_kw(lx, "global") || accept_kw(lx, "local") || accept_kw(lx, "recursive") ||
           accept_kw(lx, "materialized") || accept_kw(lx, "virtual") ||
           accept_kw(lx, "constraint")) {
        /* modifiers that do not change what is created */
    }
    struct tok t;
    lex_next(lx, &t);
    if (is_kw(&t, "unique")) {
        return accept_kw(lx, "index") ? lint_create_index(L, lx, true) : 0;
    }
    if (is_kw(&t, "index")) {
        return lint_create_index(L, lx, false);
    }
    if (is_kw(&t, "trigger")) {
        return lint_create_trigger(L, lx);
    }
    if (is_kw(&t, "table") || is_kw(&t, "view") || is_kw(&t, "sequence") || is_kw(&t, "schema")) {
        char name[NAME_SIZE];
        (void)accept_if_not_exists(lx);
        return parse_name(lx, name) ? name_set_add(&L->created, name) : 0;
    }
    return 0;
}

/* DROP TABLE | SCHEMA | SEQUENCE | [MATERIALIZED] VIEW | INDEX [CONCURRENTLY] [IF EXISTS] a, b */
static int lint_drop(struct lint *L, struct lex *lx)
{
    bool pg = L->dialect == SQL_DIALECT_POSTGRES;
    enum miglint_rule rule = MIGLINT_DROP_TABLE;
    bool locks = false;
    bool concurrently = false;
    (void)accept_kw(lx, "materialized");
    if (accept_kw(lx, "table")) {
        locks = true;
    } else if (accept_kw(lx, "index")) {
        rule = MIGLINT_DROP_INDEX;
        locks = true;
        concurrently = pg && accept_kw(lx, "concurrently");
    } else if (!accept_kw(lx, "schema") && !accept_kw(lx, "sequence") && !accept_kw(lx, "view")) {
        return 0;
    }
    (void)accept_if_exists(lx);
    int rc = concurrently ? concurrently_outside_transaction(L) : 0;
    char name[NAME_SIZE];
    while (rc == 0 && parse_name(lx, name)) {
        rc = add_finding(L, rule, name);
        if (rc == 0 && locks) {
            rc = took_lock(L, name);
        }
        if (!accept_punct(lx, ',')) {
            break;
        }
    }
    return rc;
}

/* ADD [COLUMN] [IF NOT EXISTS] c type ... | ADD [CONSTRAINT n] UNIQUE | PRIMARY KEY | ... */
static int lint_add(struct lint *L, struct lex *a, const char *table)
{
    struct lex ahead = *a;
    struct tok t;
    lex_next(&ahead, &t);
    if (is_kw(&t, "constraint")) {
        char ignored[NAME_SIZE];
        (void)parse_name(&ahead, ignored);
        lex_next(&ahead, &t);
    }
    if (is_kw(&t, "unique") || is_kw(&t, "primary")) {
        return add_finding(L, MIGLINT_UNIQUE_ON_EXISTING_TABLE, table);
    }
    if (is_kw(&t, "check") || is_kw(&t, "foreign") || is_kw(&t, "exclude") || t.kind == TOK_END) {
        return 0;
    }
    /* A column definition: look at its constraints outside parentheses. */
    bool not_null = false;
    bool has_default = false;
    bool unique = false;
    bool after_not = false;
    size_t depth = 0;
    for (lex_next(a, &t); t.kind != TOK_END; lex_next(a, &t)) {
        if (is_punct(&t, '(')) {
            depth++;
        } else if (is_punct(&t, ')') && depth > 0) {
            depth--;
        } else if (depth == 0) {
            not_null = not_null || (after_not && is_kw(&t, "null"));
            has_default = has_default || is_kw(&t, "default") || is_kw(&t, "generated");
            unique = unique || is_kw(&t, "unique") || is_kw(&t, "primary");
        }
        after_not = depth == 0 && is_kw(&t, "not");
    }
    int rc = 0;
    if (not_null && !has_default) {
        rc = add_finding(L, MIGLINT_NOT_NULL_WITHOUT_DEFAULT, table);
    }
    if (rc == 0 && unique) {
        rc = add_finding(L, MIGLINT_UNIQUE_ON_EXISTING_TABLE, table);
    }
    return rc;
}

/* ALTER [COLUMN] c [SET DATA] TYPE ... | ALTER [COLUMN] c SET NOT NULL */
static int lint_alter_column(struct lint *L, struct lex *a, const char *table)
{
    if (accept_kw(a, "constraint")) {
        return 0;
    }
    (void)accept_kw(a, "column");
    char column[NAME_SIZE];
    if (!parse_name(a, column)) {
        return 0;
    }
    if (accept_kw(a, "type")) {
        return add_finding(L, MIGLINT_COLUMN_TYPE_CHANGE, table);
    }
    if (!accept_kw(a, "set")) {
        return 0;
    }
    if (accept_kw(a, "data")) {
        return accept_kw(a, "type") ? add_finding(L, MIGLINT_COLUMN_TYPE_CHANGE, table) : 0;
    }
    if (accept_kw(a, "not") && accept_kw(a, "null")) {
        return add_finding(L, MIGLINT_NOT_NULL_WITHOUT_DEFAULT, table);
    }
    return 0;
}

static int lint_alter_action(struct lint *L, struct lex *a, const char *table, bool is_new)
{
    struct tok t;
    lex_next(a, &t);
    if (is_kw(&t, "rename")) {
        if (accept_kw(a, "constraint")) {
            return 0;
        }
        char to[NAME_SIZE];
        if (is_new) {
            /* RENAME TO x of a table created here: x is new too. */
            return accept_kw(a, "to") && parse_name(a, to) ? name_set_add(&L->created, to) : 0;
        }
        return add_finding(L, MIGLINT_RENAME, table);
    }
    if (is_new) {
        return 0;
    }
    if (is_kw(&t, "drop")) {
        struct lex ahead = *a;
        lex_next(&ahead, &t);
        if (t.kind == TOK_END || is_kw(&t, "constraint") || is_kw(&t, "default") ||
            is_kw(&t, "not") || is_kw(&t, "expression") || is_kw(&t, "identity")) {
            return 0;
        }
        return add_finding(L, MIGLINT_DROP_COLUMN, table);
    }
    if (is_kw(&t, "add")) {
        (void)accept_kw(a, "column");
        (void)accept_if_not_exists(a);
        return lint_add(L, a, table);
    }
    if (is_kw(&t, "alter")) {
        return lint_alter_column(L, a, table);
    }
    return 0;
}

/* ALTER TABLE [IF EXISTS] [ONLY] t [*] action [, action ...] */
static int lint_alter(struct lint *L, struct lex *lx)
{
    if (!accept_kw(lx, "table")) {
        return 0;
    }
    (void)accept_if_exists(lx);
    (void)accept_kw(lx, "only");
    char table[NAME_SIZE];
    if (!parse_name(lx, table)) {
        return 0;
    }
    (void)accept_punct(lx, '*');
    bool is_new = name_set_has(&L->created, table);
    int rc = took_lock(L, table);
    struct lex action;
    while (rc == 0 && next_item(lx, &action)) {
        rc = lint_alter_action(L, &action, table, is_new);
    }
    return rc;
}

/* TRUNCATE [TABLE] [ONLY] a [*] [, ...]; LOCK [TABLE] [ONLY] a [*] [, ...] */
static int lint_truncate_or_lock(struct lint *L, struct lex *lx, bool truncate)
{
    (void)accept_kw(lx, "table");
    int rc = 0;
    char name[NAME_SIZE];
    while (rc == 0) {
        (void)accept_kw(lx, "only");
        if (!parse_name(lx, name)) {
            break;
        }
        (void)accept_punct(lx, '*');
        if (truncate) {
            rc = add_finding(L, MIGLINT_TRUNCATE, name);
        }
        if (rc == 0) {
            rc = took_lock(L, name);
        }
        if (!accept_punct(lx, ',')) {
            break;
        }
    }
    return rc;
}

/* DELETE FROM [ONLY] t ... / UPDATE [OR x] [ONLY] t ... SET: flagged without a WHERE. */
static int lint_dml(struct lint *L, struct lex *lx, bool update)
{
    if (update) {
        if (accept_kw(lx, "or")) {
            struct tok ignored;
            lex_next(lx, &ignored);
        }
    } else if (!accept_kw(lx, "from")) {
        return 0;
    }
    (void)accept_kw(lx, "only");
    char table[NAME_SIZE];
    if (!parse_name(lx, table)) {
        return 0;
    }
    if (has_top_where(*lx)) {
        return 0;
    }
    return add_finding(L, update ? MIGLINT_UPDATE_WITHOUT_WHERE : MIGLINT_DELETE_WITHOUT_WHERE,
                       table);
}

/* SET [LOCAL | SESSION] lock_timeout ... */
static void lint_set(struct lint *L, struct lex *lx)
{
    if (!accept_kw(lx, "local")) {
        (void)accept_kw(lx, "session");
    }
    if (accept_kw(lx, "lock_timeout")) {
        L->lock_timeout_set = true;
    }
}

/* WITH [RECURSIVE] a [(cols)] AS [[NOT] MATERIALIZED] (...) [, ...]: leaves lx at the main
 * statement and returns its first token. */
static void skip_with(struct lex *lx, struct tok *t)
{
    size_t depth = 0;
    bool closed = false;
    for (lex_next(lx, t); t->kind != TOK_END; lex_next(lx, t)) {
        if (depth == 0 && closed && !is_punct(t, ',') && !is_kw(t, "as")) {
            return;
        }
        closed = false;
        if (is_punct(t, '(')) {
            depth++;
        } else if (is_punct(t, ')') && depth > 0) {
            closed = --depth == 0;
        }
    }
}

static int lint_stmt(struct lint *L, size_t i)
{
    const struct sql_stmt *s = &L->r->stmts[i];
    struct lex lx = {
        .dialect = L->dialect, .text = L->text, .pos = s->offset, .end = s->offset + s->len};
    ASSERT(lx.end <= L->len);
    L->stmt = i;
    struct tok t;
    lex_next(&lx, &t);
    if (is_kw(&t, "set")) {
        lint_set(L, &lx);
        return 0;
    }
    L->stmts_not_set++;
    if (is_kw(&t, "with")) {
        skip_with(&lx, &t);
    }
    if (is_kw(&t, "create")) {
        return lint_create(L, &lx);
    }
    if (is_kw(&t, "drop")) {
        return lint_drop(L, &lx);
    }
    if (is_kw(&t, "alter")) {
        return lint_alter(L, &lx);
    }
    if (is_kw(&t, "truncate") || is_kw(&t, "lock")) {
        return lint_truncate_or_lock(L, &lx, is_kw(&t, "truncate"));
    }
    if (is_kw(&t, "delete") || is_kw(&t, "update")) {
        return lint_dml(L, &lx, is_kw(&t, "update"));
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Annotations
 * ---------------------------------------------------------------------------------------- */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Copies at most QUOTE_LEN_MAX printable bytes of s into out, for a message. */
static void quote_text(const char *s, size_t len, char out[QUOTE_LEN_MAX + 1])
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < QUOTE_LEN_MAX; i++) {
        char c = s[i];
        if ((unsigned char)c >= 0x80) {
            c = '?';
        }
        out[n++] = printable(c);
    }
    out[n] = '\0';
}

static int annotate_destructive(struct lint *L, const char *p, size_t len, unsigned line)
{
    struct miglint_report *r = L->r;
    size_t i = 0;
    while (i < len && is_blank(p[i])) {
        i++;
    }
    size_t name_at = i;
    while (i < len && p[i] != ':' && !is_blank(p[i])) {
        i++;
    }
    size_t name_len = i - name_at;
    if (name_len == 0) {
        return add_problem(L, line,
                           "name a rule and give a reason: -- ledgerd:destructive "
                           "<rule>: <why it is safe>");
    }
    enum miglint_rule rule = miglint_rule_find(p + name_at, name_len);
    if (rule == MIGLINT_RULE_COUNT) {
        char q[QUOTE_LEN_MAX + 1];
        quote_text(p + name_at, name_len, q);
        return add_problem(L, line, "unknown rule \"%s\" in -- ledgerd:destructive", q);
    }
    while (i < len && is_blank(p[i])) {
        i++;
    }
    size_t reason_at = len;
    if (i < len && p[i] == ':') {
        reason_at = i + 1;
        while (reason_at < len && is_blank(p[reason_at])) {
            reason_at++;
        }
    }
    size_t reason_len = len - reason_at;
    if (reason_len < LIMIT_MIGRATION_REASON_LEN_MIN) {
        return add_problem(L, line,
                           "give a reason: -- ledgerd:destructive %s: <why it is safe, at least "
                           "%u characters>",
                           miglint_rule_name(rule), (unsigned)LIMIT_MIGRATION_REASON_LEN_MIN);
    }
    if (reason_len > LIMIT_MIGRATION_REASON_LEN_MAX) {
        return add_problem(L, line, "the reason for %s is longer than %u characters",
                           miglint_rule_name(rule), (unsigned)LIMIT_MIGRATION_REASON_LEN_MAX);
    }
    if (L->allowed[rule]) {
        return add_problem(L, line, "%s is annotated twice", miglint_rule_name(rule));
    }
    ASSERT(r->nannotations < LIMIT_MIGRATION_ANNOTATIONS_MAX);
    struct miglint_annotation *a = &r->annotations[r->nannotations++];
    memset(a, 0, sizeof(*a));
    a->rule = rule;
    a->line = line;
    for (size_t k = 0; k < reason_len; k++) {
        char c = p[reason_at + k];
        a->reason[k] = printable(c);
    }
    L->allowed[rule] = true;
    return 0;
}

/* p[0, len) is one line after ANNOTATION_PREFIX, trailing blanks removed. */
static int annotate(struct lint *L, const char *p, size_t len, unsigned line)
{
    static const char destructive[] = "destructive";
    static const char no_tx[] = "no-transaction";
    size_t dlen = sizeof(destructive) - 1;
    if (len >= dlen && memcmp(p, destructive, dlen) == 0 && (len == dlen || is_blank(p[dlen]))) {
        return annotate_destructive(L, p + dlen, len - dlen, line);
    }
    if (len == sizeof(no_tx) - 1 && memcmp(p, no_tx, len) == 0) {
        if (L->r->no_transaction) {
            return add_problem(L, line, "-- ledgerd:no-transaction is given twice");
        }
        L->r->no_transaction = true;
        L->no_tx_line = line;
        if (L->dialect == SQL_DIALECT_SQLITE) {
            return add_problem(L, line,
                               "-- ledgerd:no-transaction is for PostgreSQL only: "
                               "SQLite runs every migration in a transaction");
        }
        return 0;
    }
    char q[QUOTE_LEN_MAX + 1];
    quote_text(p, len, q);
    return add_problem(L, line,
                       "unknown annotation \"" ANNOTATION_PREFIX "%s\": use "
                       "destructive <rule>: <reason> or no-transaction",
                       q);
}

static int read_annotations(struct lint *L)
{
    const size_t plen = sizeof(ANNOTATION_PREFIX) - 1;
    const char *t = L->text;
    size_t count = 0;
    unsigned line = 1;
    for (size_t at = 0; at < L->len; line++) {
        const char *nl = memchr(t + at, '\n', L->len - at);
        size_t eol = nl == NULL ? L->len : (size_t)(nl - t);
        size_t i = at;
        while (i < eol && (t[i] == ' ' || t[i] == '\t')) {
            i++;
        }
        if (eol - i >= plen && memcmp(t + i, ANNOTATION_PREFIX, plen) == 0) {
            if (++count > LIMIT_MIGRATION_ANNOTATIONS_MAX) {
                return add_problem(L, line, "more than %u annotations in one file",
                                   (unsigned)LIMIT_MIGRATION_ANNOTATIONS_MAX);
            }
            size_t end = eol;
            while (end > i + plen && is_blank(t[end - 1])) {
                end--;
            }
            int rc = annotate(L, t + i + plen, end - (i + plen), line);
            if (rc != 0) {
                return rc;
            }
        }
        at = eol + 1;
    }
    return 0;
}

/* Problems that need the whole file: unused annotations, an empty file, the generator's
 * placeholder, no-transaction around several statements. */
static int whole_file_problems(struct lint *L)
{
    struct miglint_report *r = L->r;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->nannotations; i++) {
        const struct miglint_annotation *a = &r->annotations[i];
        if (!L->found[a->rule]) {
            rc = add_problem(L, a->line, "unused annotation: no %s in this file",
                             miglint_rule_name(a->rule));
        }
    }
    if (rc == 0 && r->nstmts == 0) {
        rc = add_problem(L, 1, "the migration has no statements");
    }
    const char *ph =
        L->len == 0 ? NULL
                    : memmem(L->text, L->len, HEADER_PLACEHOLDER, sizeof(HEADER_PLACEHOLDER) - 1);
    if (rc == 0 && ph != NULL) {
        unsigned line = 1;
        for (const char *c = L->text; c < ph; c++) {
            line += *c == '\n' ? 1u : 0u;
        }
        rc = add_problem(L, line,
                         "fill in the header: replace " HEADER_PLACEHOLDER
                         " with what the migration changes and why");
    }
    if (rc == 0 && r->no_transaction && L->dialect == SQL_DIALECT_POSTGRES &&
        L->stmts_not_set > 1) {
        rc = add_problem(L, L->no_tx_line,
                         "-- ledgerd:no-transaction allows one statement besides SET, this file "
                         "has %zu: a failure halfway would leave the schema half-changed",
                         L->stmts_not_set);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * The entry points
 * ---------------------------------------------------------------------------------------- */
int miglint_file(enum sql_dialect dialect, const char *text, size_t len, struct miglint_report *out,
                 struct buf *err)
{
    ASSERT(out != NULL);
    ASSERT(text != NULL || len == 0);
    memset(out, 0, sizeof(*out));
    struct lint L = {.dialect = dialect, .text = text, .len = len, .r = out};
    int rc = sql_split(dialect, text, len, &out->stmts, &out->nstmts, err);
    if (rc != 0) {
        return rc;
    }
    out->annotations = calloc(LIMIT_MIGRATION_ANNOTATIONS_MAX, sizeof(*out->annotations));
    if (out->annotations == NULL) {
        rc = -ENOMEM;
        goto out_free_report;
    }
    rc = read_annotations(&L);
    for (size_t i = 0; rc == 0 && i < out->nstmts; i++) {
        rc = lint_stmt(&L, i);
    }
    if (rc == 0) {
        rc = whole_file_problems(&L);
    }
    if (rc != 0) {
        goto out_free_report;
    }
    ASSERT(out->nfindings <= FINDINGS_MAX);
    free(L.created.slots);
    return 0;

out_free_report:
    free(L.created.slots);
    miglint_report_free(out);
    return rc;
}

void miglint_report_free(struct miglint_report *r)
{
    if (r == NULL) {
        return;
    }
    free(r->stmts);
    free(r->findings);
    free(r->problems);
    free(r->annotations);
    memset(r, 0, sizeof(*r));
}

size_t miglint_unallowed(const struct miglint_report *r)
{
    ASSERT(r != NULL);
    size_t n = 0;
    for (size_t i = 0; i < r->nfindings; i++) {
        n += r->findings[i].allowed ? 0u : 1u;
    }
    return n;
}
