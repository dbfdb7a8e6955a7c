/*
 * migrations.h — the migration files compiled into the binary (generated at build time from
 * migrations/<backend>/NNNN_name.sql by cmake/embed_migrations.cmake).
 */
#ifndef LEDGERD_STORE_MIGRATIONS_H
#define LEDGERD_STORE_MIGRATIONS_H

#include <stddef.h>
#include <stdint.h>

struct store_migration {
    uint32_t version; /* NNNN */
    const char *name; /* the name part of the file name */
    const char *sql;  /* file content, NUL-terminated */
    size_t sql_len;   /* bytes, without the NUL */
};

/* In version order, no gaps checked here (store_migrate_up checks). */
extern const struct store_migration store_migrations_sqlite[];
extern const size_t store_migrations_sqlite_count;
extern const struct store_migration store_migrations_postgres[];
extern const size_t store_migrations_postgres_count;

#endif
