/*
 * sqlsplit.h — splits a migration file into its SQL statements, the way the database will read
 * them: a ';' ends a statement only outside quoted strings and identifiers, comments, and the
 * bodies that contain their own ';' (SQLite: CREATE TRIGGER ... BEGIN ... END; PostgreSQL:
 * dollar-quoted strings such as function bodies).
 */
#ifndef LEDGERD_STORE_SQLSPLIT_H
#define LEDGERD_STORE_SQLSPLIT_H

#include <stddef.h>

#include "core/buf.h"

enum sql_dialect {
    SQL_DIALECT_SQLITE,
    SQL_DIALECT_POSTGRES,
};

/* One statement: text[offset, offset + len) is the statement from its first character that is
 * not whitespace or comment up to, not including, its terminating ';' (trailing whitespace
 * removed). line is the 1-based line of its first character. */
struct sql_stmt {
    size_t offset;
    size_t len;
    unsigned line;
};

/* Splits text (len bytes, need not be NUL-terminated, may contain any byte) into statements.
 * Comments and whitespace between statements are not statements; the last statement may lack
 * its ';'. On success *out (malloc'd, free() it; NULL when *n is 0) and *n are set and 0 is
 * returned. Returns -EINVAL with a reason naming the line in err for an unterminated string,
 * quoted identifier, block comment, dollar quote or trigger body, a NUL byte, or more than
 * LIMIT_MIGRATION_STATEMENTS_MAX statements; -ENOMEM when out of memory. */
int sql_split(enum sql_dialect dialect, const char *text, size_t len, struct sql_stmt **out,
              size_t *n, struct buf *err);

#endif
