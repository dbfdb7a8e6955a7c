/*
 * sqlsplit.c — splits a migration file into statements with one linear scan.
 *
 * The scanner knows just enough of each dialect's lexical rules to tell a ';' that ends a
 * statement from one inside a string, a quoted identifier, a comment or a body: strings and
 * identifiers with doubled-quote escapes, line and block comments (nested in PostgreSQL, flat in
 * SQLite), SQLite's `...` and [...] identifiers, PostgreSQL's E'...' strings and dollar quotes.
 * A SQLite CREATE TRIGGER statement ends only at a ';' that follows "; END", the same test
 * sqlite3_complete() applies. Every construct is scanned at most once and a dollar quote's end
 * is found with memmem(), so the whole split is linear in the text and never reads past len.
 */
#include "store/sqlsplit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assert.h"
#include "core/limits.h"

/* Where a SQLite statement is in the CREATE [TEMP] TRIGGER ... ; END test. */
enum trig_state {
    TRIG_START,  /* no token yet */
    TRIG_CREATE, /* CREATE [TEMP|TEMPORARY] seen */
    TRIG_NORMAL, /* any other statement: ';' ends it */
    TRIG_BODY,   /* inside a trigger: ';' does not end it */
    TRIG_SEMI,   /* a ';' inside the trigger was the last token */
    TRIG_END,    /* "; END" was the last token: the next ';' ends the trigger */
};

struct scan {
    enum sql_dialect dialect;
    const char *text;
    size_t len;
    size_t pos;
    unsigned line;
    struct buf *err;
};

struct stmts {
    struct sql_stmt *items;
    size_t n;
    size_t cap;
};

static int fail(struct scan *s, const char *what, unsigned line)
{
    if (s->err != NULL) {
        (void)buf_appendf(s->err, "%s starting at line %u", what, line);
    }
    return -EINVAL;
}

static bool is_word_char(enum sql_dialect dialect, unsigned char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) {
        return true;
    }
    if (first) {
        return false;
    }
    /* PostgreSQL identifiers may contain '$' after their first character (a$b). */
    return (c >= '0' && c <= '9') || (c == '$' && dialect == SQL_DIALECT_POSTGRES);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == '\n';
}

/* Advances over [pos, to) counting its newlines. */
static void advance_to(struct scan *s, size_t to)
{
    ASSERT(to >= s->pos && to <= s->len);
    for (size_t i = s->pos; i < to; i++) {
        if (s->text[i] == '\n') {
            s->line++;
        }
    }
    s->pos = to;
}

/* A quoted run that ends at close; a doubled close is an escaped one. With backslash (E'...'),
 * a backslash escapes the byte after it. s->pos is at the opening quote. */
static int skip_quoted(struct scan *s, char close, bool doubled, bool backslash, const char *what)
{
    unsigned line = s->line;
    size_t i = s->pos + 1;
    while (i < s->len) {
        char c = s->text[i];
        if (backslash && c == '\\') {
            i += 2;
            continue;
        }
        if (c == close) {
            if (doubled && i + 1 < s->len && s->text[i + 1] == close) {
                i += 2;
                continue;
            }
            advance_to(s, i + 1);
            return 0;
        }
        i++;
    }
    return fail(s, what, line);
}

/* s->pos is at the '/' of a block comment; PostgreSQL nests them, SQLite does not. */
static int skip_block_comment(struct scan *s)
{
    unsigned line = s->line;
    size_t depth = 1;
    size_t i = s->pos + 2;
    while (i + 1 < s->len) {
        if (s->text[i] == '*' && s->text[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                advance_to(s, i);
                return 0;
            }
            continue;
        }
        if (s->dialect == SQL_DIALECT_POSTGRES && s->text[i] == '/' && s->text[i + 1] == '*') {
            depth++;
            i += 2;
            continue;
        }
        i++;
    }
    return fail(s, "unterminated block comment", line);
}

/* s->pos is at a '$' that does not continue a word: a dollar quote ($$ or $tag$), a parameter
 * ($1) or a lone '$'. Returns 0 having consumed the token. */
static int skip_dollar(struct scan *s)
{
    const char *t = s->text;
    size_t i = s->pos + 1;
    if (i < s->len && t[i] >= '0' && t[i] <= '9') {
        while (i < s->len && t[i] >= '0' && t[i] <= '9') {
            i++;
        }
        advance_to(s, i);
        return 0;
    }
    if (i < s->len && is_word_char(s->dialect, (unsigned char)t[i], true)) {
        /* A tag: identifier characters without '$', no digit first. */
        while (i < s->len && t[i] != '$' && is_word_char(s->dialect, (unsigned char)t[i], false)) {
            i++;
        }
    }
    if (i >= s->len || t[i] != '$') {
        advance_to(s, s->pos + 1); /* a lone '$' */
        return 0;
    }
    size_t delim_len = i + 1 - s->pos;
    const char *body = t + i + 1;
    size_t body_len = s->len - (i + 1);
    const char *close = memmem(body, body_len, t + s->pos, delim_len);
    if (close == NULL) {
        return fail(s, "unterminated dollar-quoted string", s->line);
    }
    advance_to(s, (size_t)(close - t) + delim_len);
    return 0;
}

/* s->pos is at the first byte of a word; consumes it, and the string after a lone E. */
static int skip_word(struct scan *s, bool *is_e_string)
{
    size_t i = s->pos + 1;
    while (i < s->len && is_word_char(s->dialect, (unsigned char)s->text[i], false)) {
        i++;
    }
    *is_e_string = s->dialect == SQL_DIALECT_POSTGRES && i == s->pos + 1 &&
                   (s->text[s->pos] == 'e' || s->text[s->pos] == 'E') && i < s->len &&
                   s->text[i] == '\'';
    advance_to(s, i);
    return 0;
}

static bool word_is(const char *w, size_t len, const char *kw)
{
    return strlen(kw) == len && strncasecmp(w, kw, len) == 0;
}

/* The SQLite trigger test, one token at a time: word is the token when it is a bare word. */
static enum trig_state trig_next(enum trig_state st, const char *word, size_t len)
{
    switch (st) {
    case TRIG_START:
        return word != NULL && word_is(word, len, "create") ? TRIG_CREATE : TRIG_NORMAL;
    case TRIG_CREATE:
        if (word != NULL && (word_is(word, len, "temp") || word_is(word, len, "temporary"))) {
            return TRIG_CREATE;
        }
        return word != NULL && word_is(word, len, "trigger") ? TRIG_BODY : TRIG_NORMAL;
    case TRIG_SEMI:
        return word != NULL && word_is(word, len, "end") ? TRIG_END : TRIG_BODY;
    case TRIG_END:
        return TRIG_BODY;
    case TRIG_NORMAL:
    case TRIG_BODY:
        break;
    }
    return st;
}

static int push(struct stmts *v, struct scan *s, size_t start, size_t end, unsigned line)
{
    ASSERT(end > start && end <= s->len);
    if (v->n == LIMIT_MIGRATION_STATEMENTS_MAX) {
        if (s->err != NULL) {
            (void)buf_appendf(s->err, "more than %u statements (line %u)",
                              (unsigned)LIMIT_MIGRATION_STATEMENTS_MAX, line);
        }
        return -EINVAL;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap == 0 ? 16 : v->cap * 2;
        if (cap > LIMIT_MIGRATION_STATEMENTS_MAX) {
            cap = LIMIT_MIGRATION_STATEMENTS_MAX;
        }
        struct sql_stmt *items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL) {
            return -ENOMEM;
        }
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = (struct sql_stmt){.offset = start, .len = end - start, .line = line};
    return 0;
}

/* Consumes one token at s->pos (not whitespace, not a comment, not ';'); *word is set to the
 * token when it is a bare word, NULL otherwise. */
static int scan_token(struct scan *s, const char **word, size_t *word_len)
{
    size_t start = s->pos;
    unsigned char c = (unsigned char)s->text[start];
    bool sqlite = s->dialect == SQL_DIALECT_SQLITE;
    *word = NULL;
    *word_len = 0;
    if (c == '\'') {
        return skip_quoted(s, '\'', true, false, "unterminated string literal");
    }
    if (c == '"') {
        return skip_quoted(s, '"', true, false, "unterminated quoted identifier");
    }
    if (sqlite && c == '`') {
        return skip_quoted(s, '`', true, false, "unterminated quoted identifier");
    }
    if (sqlite && c == '[') {
        return skip_quoted(s, ']', false, false, "unterminated quoted identifier");
    }
    if (!sqlite && c == '$') {
        return skip_dollar(s);
    }
    if (is_word_char(s->dialect, c, false)) {
        bool e_string = false;
        int rc = skip_word(s, &e_string);
        if (rc != 0) {
            return rc;
        }
        if (e_string) {
            return skip_quoted(s, '\'', true, true, "unterminated string literal");
        }
        *word = s->text + start;
        *word_len = s->pos - start;
        return 0;
    }
    advance_to(s, start + 1);
    return 0;
}

static int split(struct scan *s, struct stmts *v)
{
    bool in_stmt = false;
    size_t stmt_start = 0;
    size_t stmt_end = 0; /* end of the statement's last token */
    unsigned stmt_line = 0;
    enum trig_state trig = TRIG_START;
    while (s->pos < s->len) {
        const char *t = s->text;
        char c = t[s->pos];
        bool has_next = s->pos + 1 < s->len;
        if (is_space(c)) {
            advance_to(s, s->pos + 1);
            continue;
        }
        if (c == '-' && has_next && t[s->pos + 1] == '-') {
            const char *nl = memchr(t + s->pos, '\n', s->len - s->pos);
            advance_to(s, nl == NULL ? s->len : (size_t)(nl - t));
            continue;
        }
        if (c == '/' && has_next && t[s->pos + 1] == '*') {
            int rc = skip_block_comment(s);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        bool in_trigger = trig == TRIG_BODY || trig == TRIG_SEMI;
        if (c == ';' && !in_trigger) {
            if (in_stmt) {
                int rc = push(v, s, stmt_start, stmt_end, stmt_line);
                if (rc != 0) {
                    return rc;
                }
            }
            in_stmt = false;
            trig = TRIG_START;
            advance_to(s, s->pos + 1);
            continue;
        }
        if (!in_stmt) {
            in_stmt = true;
            stmt_start = s->pos;
            stmt_line = s->line;
        }
        if (c == ';') {
            trig = TRIG_SEMI;
            advance_to(s, s->pos + 1);
        } else {
            const char *word = NULL;
            size_t word_len = 0;
            int rc = scan_token(s, &word, &word_len);
            if (rc != 0) {
                return rc;
            }
            if (s->dialect == SQL_DIALECT_SQLITE) {
                trig = trig_next(trig, word, word_len);
            }
        }
        stmt_end = s->pos;
    }
    if (!in_stmt) {
        return 0;
    }
    if (trig == TRIG_BODY || trig == TRIG_SEMI) {
        return fail(s, "unterminated trigger body (CREATE TRIGGER ... BEGIN ... END;)", stmt_line);
    }
    return push(v, s, stmt_start, stmt_end, stmt_line);
}

int sql_split(enum sql_dialect dialect, const char *text, size_t len, struct sql_stmt **out,
              size_t *n, struct buf *err)
{
    ASSERT(out != NULL && n != NULL);
    ASSERT(text != NULL || len == 0);
    ASSERT(dialect == SQL_DIALECT_SQLITE || dialect == SQL_DIALECT_POSTGRES);
    *out = NULL;
    *n = 0;
    struct scan s = {.dialect = dialect, .text = text, .len = len, .pos = 0, .line = 1, .err = err};
    struct stmts v = {0};
    int rc = 0;
    const char *nul = len == 0 ? NULL : memchr(text, '\0', len);
    if (nul != NULL) {
        s.line = 1;
        for (const char *p = text; p < nul; p++) {
            s.line += *p == '\n' ? 1u : 0u;
        }
        if (err != NULL) {
            (void)buf_appendf(err, "NUL byte at line %u", s.line);
        }
        rc = -EINVAL;
        goto out_free;
    }
    rc = split(&s, &v);
    if (rc != 0) {
        goto out_free;
    }
    ASSERT(v.n <= LIMIT_MIGRATION_STATEMENTS_MAX);
    if (v.n == 0) {
        free(v.items);
        return 0;
    }
    *out = v.items;
    *n = v.n;
    return 0;

out_free:
    free(v.items);
    return rc;
}
