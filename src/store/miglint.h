/*
 * miglint.h — the destructive-change lint for migration files.
 *
 * A rule flags a statement that loses data, breaks the running version of ledgerd during a
 * rolling deployment, or holds a lock that stalls traffic. A table created earlier in the same
 * file is new (empty, unused): statements on it are never flagged. A file allows a rule for
 * itself with an annotation line carrying a reason:
 *
 *     -- ledgerd:destructive drop-column: contract step of 0007; nothing reads fee_code since 0008
 *
 * and a PostgreSQL file that must run outside a transaction (CREATE INDEX CONCURRENTLY) says so:
 *
 *     -- ledgerd:no-transaction
 *
 * Annotations are whole-line SQL comments starting with "-- ledgerd:", anywhere in the file.
 */
#ifndef LEDGERD_STORE_MIGLINT_H
#define LEDGERD_STORE_MIGLINT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/limits.h"
#include "store/sqlsplit.h"

enum miglint_rule {
    MIGLINT_DROP_TABLE,                 /* DROP TABLE (and DROP SCHEMA / SEQUENCE / VIEW) */
    MIGLINT_DROP_COLUMN,                /* ALTER TABLE ... DROP [COLUMN] */
    MIGLINT_DROP_INDEX,                 /* DROP INDEX */
    MIGLINT_TRUNCATE,                   /* TRUNCATE */
    MIGLINT_DELETE_WITHOUT_WHERE,       /* DELETE FROM t (no WHERE) */
    MIGLINT_UPDATE_WITHOUT_WHERE,       /* UPDATE t SET ... (no WHERE) */
    MIGLINT_COLUMN_TYPE_CHANGE,         /* ALTER TABLE ... ALTER [COLUMN] c [SET DATA] TYPE */
    MIGLINT_RENAME,                     /* ALTER TABLE ... RENAME [COLUMN|TO] */
    MIGLINT_NOT_NULL_WITHOUT_DEFAULT,   /* ADD COLUMN ... NOT NULL without DEFAULT; SET NOT NULL */
    MIGLINT_UNIQUE_ON_EXISTING_TABLE,   /* CREATE UNIQUE INDEX / ADD UNIQUE / ADD PRIMARY KEY */
    MIGLINT_INDEX_WITHOUT_CONCURRENTLY, /* PostgreSQL: CREATE INDEX without CONCURRENTLY */
    MIGLINT_MISSING_LOCK_TIMEOUT,       /* PostgreSQL: a lock taken before SET lock_timeout */
    MIGLINT_RULE_COUNT,
};

/* "drop-table", "drop-column", ... "missing-lock-timeout": the names annotations use. */
const char *miglint_rule_name(enum miglint_rule rule);
/* The rule named name (len bytes), or MIGLINT_RULE_COUNT when there is none. */
enum miglint_rule miglint_rule_find(const char *name, size_t len);
/* One line saying why the rule exists, for `ledgerd migrate lint` output and the docs. */
const char *miglint_rule_why(enum miglint_rule rule);

struct miglint_finding {
    enum miglint_rule rule;
    size_t stmt;                                    /* index into miglint_report.stmts */
    unsigned line;                                  /* 1-based line of the statement */
    char target[LIMIT_MIGRATION_IDENT_LEN_MAX + 1]; /* table (or index) concerned, lower case */
    bool allowed;                                   /* the file annotates this rule */
};

/* A problem that makes the file itself wrong, whatever the flags: an annotation that is
 * malformed, names no known rule, has no reason (fewer than LIMIT_MIGRATION_REASON_LEN_MIN
 * characters) or matches no finding; CREATE INDEX CONCURRENTLY in a file that runs in a
 * transaction; -- ledgerd:no-transaction in a SQLite file or in a file of several statements
 * (other than SET). */
struct miglint_problem {
    unsigned line;
    char message[LIMIT_MIGRATION_MESSAGE_LEN];
};

struct miglint_annotation {
    enum miglint_rule rule;
    unsigned line;
    char reason[LIMIT_MIGRATION_REASON_LEN_MAX + 1];
};

struct miglint_report {
    struct sql_stmt *stmts; /* the file's statements (sql_split) */
    size_t nstmts;
    struct miglint_finding *findings; /* in statement order */
    size_t nfindings;
    struct miglint_problem *problems;
    size_t nproblems;
    struct miglint_annotation *annotations;
    size_t nannotations;
    bool no_transaction; /* -- ledgerd:no-transaction */
};

/* Lints one migration file (text, len bytes). Returns 0 with *out filled (free with
 * miglint_report_free) — findings and problems are results, not errors; -EINVAL when the text
 * cannot be split (reason in err, as sql_split); -ENOMEM. */
int miglint_file(enum sql_dialect dialect, const char *text, size_t len, struct miglint_report *out,
                 struct buf *err);
void miglint_report_free(struct miglint_report *r);

/* Findings not allowed by an annotation. */
size_t miglint_unallowed(const struct miglint_report *r);

#endif
