/*
 * migset.h — a backend's migration files, loaded from a directory (migrations/<backend>/) or
 * from the copy built into the binary, checked against their integrity file and linted.
 *
 * The integrity file, <dir>/ledgerd.sum, is text with LF line ends:
 *
 *     ledgerd-sum 1
 *     dir <sha256 hex of the file lines below, each with its LF, in order>
 *     0001_ledger.sql <sha256 hex of the file>
 *     0002_auth_audit.sql <sha256 hex>
 *
 * A file's hash is SHA-256 of its text with CRLF and lone CR turned into LF, so line endings
 * never change a hash (a checkout with core.autocrlf computes the same). The sum file is read
 * with the same normalisation.
 */
#ifndef LEDGERD_STORE_MIGSET_H
#define LEDGERD_STORE_MIGSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "store/miglint.h"

#define MIGSET_SUM_FILE "ledgerd.sum"
#define MIGSET_SNAPSHOT_FILE "schema.sql"
#define MIGSET_HASH_HEX_LEN ((size_t)2 * SHA256_BYTES)

struct migset_file {
    uint32_t version;                                 /* NNNN: 1, 2, ... without gaps */
    char name[LIMIT_MIGRATION_NAME_LEN_MAX + 1];      /* "ledger" */
    char file[LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 1]; /* "0001_ledger.sql" */
    char *sql;                                        /* normalised text (LF), NUL-terminated */
    size_t sql_len;
    char checksum[MIGSET_HASH_HEX_LEN + 1]; /* SHA-256 hex of sql: also what the database keeps */
    struct miglint_report lint;             /* miglint_file of sql */
};

struct migset {
    enum sql_dialect dialect;
    char backend[16];          /* "sqlite" or "postgres" */
    char origin[4096];         /* the directory read, or "built-in" */
    struct migset_file *files; /* files[i].version == i + 1 */
    size_t n;
    char dir_hash[MIGSET_HASH_HEX_LEN + 1]; /* of the files as loaded */
};

/* The dialect of backend "sqlite" or "postgres"; false for anything else. */
bool migset_backend_dialect(const char *backend, enum sql_dialect *out);

enum migset_load_flags {
    /* Check the files against <dir>/ledgerd.sum (always, but for `ledgerd migrate hash`). */
    MIGSET_CHECK_SUM = 1u << 0,
};

/* Loads every NNNN_name.sql of <root>/<backend>/ (other *.sql but schema.sql, and names not of
 * that form, are errors; files without .sql are ignored), normalises, hashes and lints each.
 * Returns 0, or with a one-line reason that names the file in err:
 *   -ENOENT  the directory (or, with MIGSET_CHECK_SUM, its ledgerd.sum) does not exist;
 *   -EINVAL  a badly named file, a duplicate number (two branches added the same number), a
 *            gap in the numbering, a file over LIMIT_MIGRATION_FILE_BYTES_MAX or with a NUL
 *            byte, a file that cannot be split into statements; with MIGSET_CHECK_SUM: a file
 *            missing from the sum, a file the sum lists that is gone, a file whose hash differs
 *            (edited), the sum listing files out of order (reordered), a dir hash that does not
 *            match the sum's lines, a malformed sum;
 *   -EIO     a read error; -ENOMEM.
 * Lint findings and problems do not fail the load: they are in files[i].lint. */
int migset_load_dir(const char *root, const char *backend, unsigned flags, struct migset *out,
                    struct buf *err);
/* The same for the copy built into the binary (origin "built-in"), always checked against its
 * built-in ledgerd.sum. */
int migset_load_builtin(const char *backend, struct migset *out, struct buf *err);
void migset_free(struct migset *set);

/* Appends the ledgerd.sum text of set to out. */
int migset_sum_render(const struct migset *set, struct buf *out);
/* Rewrites <root>/<backend>/ledgerd.sum from the files as they are now (after review), through
 * a temporary file, fsync and rename. Fails like migset_load_dir without MIGSET_CHECK_SUM. */
int migset_sum_write(const char *root, const char *backend, struct buf *err);

/* Creates the next migration, NNNN_<name>.sql with NNNN one past the highest number in either
 * backend directory, in each of <root>/sqlite and <root>/postgres that exists, holding only the
 * header an author fills in (what the migration changes and why, author, date, expand or
 * contract), and rewrites their ledgerd.sum. name must match ^[a-z0-9_]{1,64}$. Refuses
 * (-EINVAL) when a directory does not pass its integrity check first, so that `new` never
 * blesses an unreviewed edit. The paths created are appended to created, one per line. */
int migset_new(const char *root, const char *name, const char *author, int64_t now_unix_ms,
               struct buf *created, struct buf *err);

/* The parsed integrity file (exported for the fuzzer and the tests). */
struct migset_sum_entry {
    char file[LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 1];
    char hash[MIGSET_HASH_HEX_LEN + 1];
};
struct migset_sum {
    char dir_hash[MIGSET_HASH_HEX_LEN + 1];
    struct migset_sum_entry *entries; /* malloc'd, in file order */
    size_t n;
};
/* Parses ledgerd.sum text (any bytes, len at most LIMIT_MIGRATION_SUM_BYTES_MAX). Returns 0 or
 * -EINVAL with the line and reason in err; does not check the dir hash (migset_load_dir does). */
int migset_sum_parse(const char *text, size_t len, struct migset_sum *out, struct buf *err);
void migset_sum_free(struct migset_sum *sum);

/* Normalises line endings (CRLF and lone CR to LF) of in[0, len) into a malloc'd,
 * NUL-terminated *out of *out_len bytes. */
int migset_normalize(const char *in, size_t len, char **out, size_t *out_len);

#endif
