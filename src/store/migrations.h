/*
 * migrations.h — the migration files compiled into the binary: every NNNN_name.sql of
 * migrations/<backend>/ and that directory's ledgerd.sum, byte for byte, generated at build time
 * by cmake/embed_migrations.cmake. They are checked like a directory (migset_load_builtin).
 */
#ifndef LEDGERD_STORE_MIGRATIONS_H
#define LEDGERD_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration_blob {
    const char *file; /* "0001_ledger.sql", "ledgerd.sum" */
    const char *data; /* content, NUL-terminated */
    size_t len;       /* bytes, without the NUL */
};

/* The NNNN_name.sql files in file-name order. */
extern const struct store_migration_blob store_migrations_sqlite[];
extern const size_t store_migrations_sqlite_count;
extern const struct store_migration_blob store_migrations_postgres[];
extern const size_t store_migrations_postgres_count;
/* ledgerd.sum (len 0 and file "" when the directory had none). */
extern const struct store_migration_blob store_migrations_sqlite_sum;
extern const struct store_migration_blob store_migrations_postgres_sum;

#endif
