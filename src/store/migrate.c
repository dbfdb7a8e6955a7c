/*
 * migrate.c — the migration runner, the same for every backend: compare a set of migration
 * files (migset.h) with schema_migrations, refuse what is unsafe before anything runs, then
 * apply the pending files one transaction each through the backend's migration primitives
 * (store_internal.h).
 *
 * Forward only: a migration is never undone by ledgerd. A change that cannot be applied while
 * the previous version runs is split into an expand migration and, a release later, a contract
 * migration (docs/operations/migrations.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "store/migset.h"
#include "store/store.h"
#include "store/store_internal.h"

/* ---------------------------------------------------------------------------------------
 * The built-in set, loaded once per backend.
 * ------------------------------------------------------------------------------------- */

struct migrate_builtin {
    pthread_once_t once;
    const char *backend;
    struct migset set;
    int rc;
    char err[LIMIT_MIGRATION_MESSAGE_LEN];
};

static struct migrate_builtin migrate_builtin_sqlite = {PTHREAD_ONCE_INIT, "sqlite", {0}, 0, ""};
static struct migrate_builtin migrate_builtin_postgres = {
    PTHREAD_ONCE_INIT, "postgres", {0}, 0, ""};

static void migrate_builtin_load(struct migrate_builtin *b)
{
    struct buf err;
    buf_init(&err, LIMIT_MIGRATION_MESSAGE_LEN);
    b->rc = migset_load_builtin(b->backend, &b->set, &err);
    if (b->rc != 0) {
        snprintf(b->err, sizeof(b->err), "%s", err.data != NULL ? err.data : "out of memory");
    }
    buf_release(&err);
}

static void migrate_builtin_sqlite_once(void)
{
    migrate_builtin_load(&migrate_builtin_sqlite);
}

static void migrate_builtin_postgres_once(void)
{
    migrate_builtin_load(&migrate_builtin_postgres);
}

/* The built-in set of s's backend, or NULL with the reason in err (a binary built from a
 * directory that failed its integrity check). */
static const struct migset *migrate_builtin_of(const struct store *s, struct buf *err)
{
    struct migrate_builtin *b = NULL;
    if (strcmp(store_ops_of(s)->migrations_backend, "sqlite") == 0) {
        pthread_once(&migrate_builtin_sqlite.once, migrate_builtin_sqlite_once);
        b = &migrate_builtin_sqlite;
    } else {
        pthread_once(&migrate_builtin_postgres.once, migrate_builtin_postgres_once);
        b = &migrate_builtin_postgres;
    }
    if (b->rc != 0) {
        (void)buf_appendf(err, "the migrations built into this binary: %s", b->err);
        return NULL;
    }
    return &b->set;
}

const char *store_migrations_backend(const struct store *s)
{
    ASSERT(s != NULL);
    return store_ops_of(s)->migrations_backend;
}

/* ---------------------------------------------------------------------------------------
 * Status.
 * ------------------------------------------------------------------------------------- */

static bool migrate_row_applied(const struct store_migration_row *rows, size_t n, uint32_t version)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].version == version) {
            return true;
        }
    }
    return false;
}

void store_migration_compare(const struct migset *set, const struct store_migration_row *rows,
                             size_t n, struct store_migration_status *out)
{
    ASSERT(set != NULL && (rows != NULL || n == 0) && out != NULL);
    memset(out, 0, sizeof(*out));
    out->available = (uint32_t)set->n;
    out->applied = (uint32_t)n;
    uint32_t known = 0;
    uint32_t max_applied = 0;
    for (size_t i = 0; i < n; i++) {
        const struct store_migration_row *r = &rows[i];
        max_applied = r->version > max_applied ? r->version : max_applied;
        if (r->version == 0 || r->version > set->n) {
            if (r->version == 0 && !out->drift) {
                out->drift = true;
                snprintf(out->detail, sizeof(out->detail),
                         "schema_migrations has a row for version 0, which no file can have");
            }
            out->ahead += r->version > set->n ? 1 : 0;
            continue;
        }
        known++;
        const struct migset_file *f = &set->files[r->version - 1];
        if (out->drift) {
            continue;
        }
        if (strcmp(r->name, f->name) != 0) {
            out->drift = true;
            snprintf(out->detail, sizeof(out->detail),
                     "migration %04" PRIu32 " was applied as %04" PRIu32
                     "_%s.sql but the file is now %s",
                     r->version, r->version, r->name, f->file);
        } else if (strcmp(r->checksum, f->checksum) != 0) {
            out->drift = true;
            snprintf(out->detail, sizeof(out->detail),
                     "%s was edited after it was applied (sha256 %.12s, applied %.12s)", f->file,
                     f->checksum, r->checksum);
        }
    }
    out->pending = out->available - known;
    if (!out->drift) {
        /* A pending file numbered below an applied one: inserted into the history. */
        for (size_t v = 1; v <= set->n && v < max_applied; v++) {
            if (!migrate_row_applied(rows, n, (uint32_t)v)) {
                out->drift = true;
                snprintf(out->detail, sizeof(out->detail),
                         "%s is pending but %04" PRIu32
                         " is applied: the history was reordered (a migration was inserted "
                         "below an applied one)",
                         set->files[v - 1].file, max_applied);
                break;
            }
        }
    }
}

int store_migration_rows(struct store *s, struct store_migration_row **rows, size_t *n)
{
    ASSERT(s != NULL);
    ASSERT(rows != NULL && n != NULL);
    *rows = NULL;
    *n = 0;
    return store_ops_of(s)->mig_rows(store_be_of(s), NULL, rows, n);
}

int store_migration_status_of(struct store *s, const struct migset *set,
                              struct store_migration_status *out)
{
    ASSERT(s != NULL);
    ASSERT(set != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    int rc = store_migration_rows(s, &rows, &n);
    if (rc == 0) {
        store_migration_compare(set, rows, n, out);
    }
    free(rows);
    return rc;
}

int store_migration_status(struct store *s, struct store_migration_status *out)
{
    ASSERT(s != NULL);
    ASSERT(out != NULL);
    struct buf err;
    buf_init(&err, LIMIT_MIGRATION_MESSAGE_LEN);
    const struct migset *set = migrate_builtin_of(s, &err);
    int rc = 0;
    if (set == NULL) {
        memset(out, 0, sizeof(*out));
        out->drift = true;
        snprintf(out->detail, sizeof(out->detail), "%s", err.data != NULL ? err.data : "");
    } else {
        rc = store_migration_status_of(s, set, out);
    }
    buf_release(&err);
    return rc;
}

int store_migration_audit_record(const struct store_migration_row *row, struct audit_record *r)
{
    memset(r, 0, sizeof(*r));
    char resource[LIMIT_AUDIT_RESOURCE_LEN_MAX + 1];
    int n =
        snprintf(resource, sizeof(resource), "migration:%04" PRIu32 "_%s", row->version, row->name);
    ASSERT(n > 0 && (size_t)n < sizeof(resource));
    r->time_unix_ms = row->applied_at_ms;
    if (audit_record_set(r, AUDIT_FIELD_ACTOR, row->applied_by, strlen(row->applied_by)) != 0 ||
        audit_record_set(r, AUDIT_FIELD_ACTION, "migration.apply", 15) != 0 ||
        audit_record_set(r, AUDIT_FIELD_RESOURCE, resource, (size_t)n) != 0 ||
        audit_record_set(r, AUDIT_FIELD_DECISION, "success", 7) != 0) {
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Applying.
 * ------------------------------------------------------------------------------------- */

/* Refuses, before anything runs, a pending file that must not be applied as it is. */
static int migrate_check_file(const struct migset_file *f, bool allow_destructive, struct buf *err)
{
    const struct miglint_report *l = &f->lint;
    if (l->nproblems > 0) {
        (void)buf_appendf(err, "%s line %u: %s", f->file, l->problems[0].line,
                          l->problems[0].message);
        return -EINVAL;
    }
    for (size_t i = 0; i < l->nfindings; i++) {
        const struct miglint_finding *d = &l->findings[i];
        if (!d->allowed) {
            (void)buf_appendf(err,
                              "%s line %u: %s on %s is destructive and not annotated (add "
                              "\"-- ledgerd:destructive %s: <reason>\" after review)",
                              f->file, d->line, miglint_rule_name(d->rule), d->target,
                              miglint_rule_name(d->rule));
            return -EINVAL;
        }
        if (!allow_destructive) {
            (void)buf_appendf(err,
                              "%s line %u: %s on %s is destructive: apply it with `ledgerd "
                              "migrate up --allow-destructive`",
                              f->file, d->line, miglint_rule_name(d->rule), d->target);
            return -EINVAL;
        }
    }
    return 0;
}

/* Applies f unless another process applied it meanwhile (*done false then). */
static int migrate_apply_one(struct store *s, const struct migset_file *f, const char *actor,
                             bool *done, int64_t *duration_ms, struct buf *err)
{
    const struct store_backend_ops *ops = store_ops_of(s);
    bool transaction = !f->lint.no_transaction;
    *done = false;
    void *mtx = NULL;
    int rc = ops->mig_begin(store_be_of(s), transaction, &mtx, err);
    if (rc != 0) {
        (void)buf_appendf(err, " (before %s)", f->file);
        return rc;
    }
    /* Under the lock: another process may have applied it, or changed the history. */
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    rc = ops->mig_rows(store_be_of(s), mtx, &rows, &n);
    if (rc != 0) {
        (void)buf_appendf(err, "cannot read schema_migrations before %s", f->file);
        goto out_end;
    }
    bool applied = migrate_row_applied(rows, n, f->version);
    free(rows);
    if (applied) {
        goto out_end; /* commits nothing but the bookkeeping table */
    }
    int64_t start_ms = clock_mono_ns() / 1000000;
    if (transaction) {
        rc = ops->mig_exec(mtx, f->sql, err);
    } else {
        /* Outside a transaction each statement commits alone (CREATE INDEX CONCURRENTLY). */
        struct buf stmt;
        buf_init(&stmt, LIMIT_MIGRATION_FILE_BYTES_MAX + 1);
        for (size_t i = 0; i < f->lint.nstmts && rc == 0; i++) {
            const struct sql_stmt *st = &f->lint.stmts[i];
            buf_reset(&stmt);
            rc = buf_append(&stmt, f->sql + st->offset, st->len);
            if (rc == 0) {
                rc = ops->mig_exec(mtx, stmt.data, err);
                if (rc != 0 && i > 0) {
                    (void)buf_appendf(err,
                                      " (the %zu statement(s) before line %u took effect: %s runs "
                                      "outside a transaction)",
                                      i, st->line, f->file);
                }
            }
        }
        buf_release(&stmt);
    }
    if (rc != 0) {
        goto out_end;
    }
    struct store_migration_row row;
    memset(&row, 0, sizeof(row));
    row.version = f->version;
    snprintf(row.name, sizeof(row.name), "%s", f->name);
    memcpy(row.checksum, f->checksum, sizeof(row.checksum));
    row.applied_at_ms = clock_unix_ms();
    row.duration_ms = clock_mono_ns() / 1000000 - start_ms;
    snprintf(row.applied_by, sizeof(row.applied_by), "%s", actor);
    rc = ops->mig_record(mtx, &row, err);
    if (rc == 0) {
        *done = true;
        *duration_ms = row.duration_ms;
    }
out_end:;
    int end = ops->mig_end(mtx, rc == 0, err);
    if (rc == 0 && end != 0) {
        *done = false;
        rc = end;
    }
    if (rc != 0) {
        (void)buf_appendf(err, "%s%s: not applied", err->len > 0 ? "; " : "", f->file);
    }
    return rc;
}

int store_migrate(struct store *s, const struct migset *set, const struct store_migrate_options *o,
                  struct buf *err)
{
    ASSERT(s != NULL);
    ASSERT(set != NULL);
    ASSERT(o != NULL);
    ASSERT(err != NULL);
    const char *actor = o->actor != NULL && o->actor[0] != '\0' ? o->actor : "system";
    if (strcmp(set->backend, store_ops_of(s)->migrations_backend) != 0) {
        (void)buf_appendf(err, "the migrations in %s are for %s, the database is %s", set->origin,
                          set->backend, store_ops_of(s)->migrations_backend);
        return -EINVAL;
    }
    if (o->to > set->n) {
        (void)buf_appendf(err, "--to %" PRIu32 ": there are only %zu migrations", o->to, set->n);
        return -EINVAL;
    }
    uint32_t to = o->to == 0 ? (uint32_t)set->n : o->to;

    struct store_migration_row *rows = NULL;
    size_t n = 0;
    int rc = store_migration_rows(s, &rows, &n);
    if (rc != 0) {
        (void)buf_append_str(err, "cannot read schema_migrations");
        return rc;
    }
    struct store_migration_status st;
    store_migration_compare(set, rows, n, &st);
    uint32_t max_applied = 0;
    for (size_t i = 0; i < n; i++) {
        max_applied = rows[i].version > max_applied ? rows[i].version : max_applied;
    }
    if (st.drift) {
        (void)buf_appendf(err, "refusing to migrate: %s", st.detail);
        rc = -EINVAL;
        goto out;
    }
    if (o->to != 0 && o->to < max_applied) {
        (void)buf_appendf(err,
                          "--to %" PRIu32 " is below the applied %04" PRIu32
                          ": ledgerd migrations only go forward (roll back with a new "
                          "migration, see expand/contract)",
                          o->to, max_applied);
        rc = -EINVAL;
        goto out;
    }
    /* Every pending file is checked before the first one runs. */
    for (uint32_t v = 1; v <= to; v++) {
        const struct migset_file *f = &set->files[v - 1];
        if (migrate_row_applied(rows, n, v)) {
            continue;
        }
        if (set->dialect == SQL_DIALECT_SQLITE && f->lint.no_transaction) {
            (void)buf_appendf(err, "%s: SQLite runs every migration in a transaction", f->file);
            rc = -EINVAL;
            goto out;
        }
        rc = migrate_check_file(f, o->allow_destructive, err);
        if (rc != 0) {
            goto out;
        }
    }
    if (o->dry_run) {
        goto out;
    }
    for (uint32_t v = 1; v <= to; v++) {
        const struct migset_file *f = &set->files[v - 1];
        if (migrate_row_applied(rows, n, v)) {
            continue;
        }
        bool done = false;
        int64_t duration_ms = 0;
        rc = migrate_apply_one(s, f, actor, &done, &duration_ms, err);
        if (rc != 0) {
            goto out;
        }
        if (done && o->applied != NULL) {
            o->applied(o->ctx, f, duration_ms);
        }
    }
out:
    free(rows);
    return rc;
}

struct migrate_up_ctx {
    void (*applied)(void *ctx, uint32_t version, const char *name);
    void *ctx;
};

static void migrate_up_applied(void *ctx, const struct migset_file *f, int64_t duration_ms)
{
    (void)duration_ms;
    struct migrate_up_ctx *c = ctx;
    if (c->applied != NULL) {
        c->applied(c->ctx, f->version, f->name);
    }
}

int store_migrate_up_as(struct store *s, const char *actor,
                        void (*applied)(void *ctx, uint32_t version, const char *name), void *ctx,
                        struct buf *err)
{
    ASSERT(s != NULL);
    ASSERT(actor != NULL && actor[0] != '\0');
    ASSERT(err != NULL);
    const struct migset *set = migrate_builtin_of(s, err);
    if (set == NULL) {
        return -EINVAL;
    }
    struct migrate_up_ctx c = {applied, ctx};
    struct store_migrate_options o = {.actor = actor, .applied = migrate_up_applied, .ctx = &c};
    return store_migrate(s, set, &o, err);
}

int store_migrate_up(struct store *s,
                     void (*applied)(void *ctx, uint32_t version, const char *name), void *ctx,
                     struct buf *err)
{
    return store_migrate_up_as(s, "system", applied, ctx, err);
}

/* ---------------------------------------------------------------------------------------
 * Schemas.
 * ------------------------------------------------------------------------------------- */

int store_table_rows(struct store *s, const char *table, uint64_t cap, uint64_t *rows)
{
    ASSERT(s != NULL && table != NULL && rows != NULL);
    *rows = 0;
    if (table[0] == '\0' || strlen(table) > LIMIT_MIGRATION_IDENT_LEN_MAX) {
        return -ENOENT;
    }
    return store_ops_of(s)->table_rows(store_be_of(s), table, cap, rows);
}

int store_schema_dump(struct store *s, struct buf *out, struct buf *err)
{
    ASSERT(s != NULL);
    ASSERT(out != NULL && err != NULL);
    return store_ops_of(s)->schema_dump(store_be_of(s), out, err);
}

int store_schema_of_fresh(const char *url, const struct store_options *opts,
                          const struct migset *set, struct buf *schema, struct buf *err)
{
    ASSERT(url != NULL && opts != NULL && set != NULL && schema != NULL && err != NULL);
    const char *location = NULL;
    const struct store_backend_ops *ops = store_backend_of_url(url, &location);
    if (ops == NULL) {
        (void)buf_append_str(err, "unsupported database URL scheme");
        return -EINVAL;
    }
    struct buf scratch;
    buf_init(&scratch, 8192);
    int rc = buf_append_str(&scratch, ops->scheme);
    if (rc == 0) {
        rc = ops->scratch_create(location, opts, &scratch, err);
    }
    if (rc != 0) {
        buf_release(&scratch);
        return rc;
    }
    struct store *s = NULL;
    rc = store_open_with(scratch.data, opts, &s, err);
    if (rc == 0) {
        struct store_migrate_options o = {.actor = "system", .allow_destructive = true};
        rc = store_migrate(s, set, &o, err);
        if (rc == 0) {
            rc = store_schema_dump(s, schema, err);
        }
        store_close(s);
    }
    ops->scratch_drop(location, opts, scratch.data + strlen(ops->scheme));
    buf_release(&scratch);
    return rc;
}
