/*
 * test_sqlite.c — the SQLite store as its callers see it: URLs, migrations and drift, writes
 * through a ledger book read back field by field, list pages, idempotency records, pending
 * deadlines, transactions that roll back or meet a lock, and readers on many threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/u128.h"
#include "ledger/book.h"
#include "ledger/ledger.h"
#include "store/store.h"

#define ALL_FIELDS                                                                                 \
    (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |        \
     LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE)

/* ---------------------------------------------------------------------------------------
 * Fixture: a fresh database in a fresh directory (below a directory that does not exist yet,
 * so store_open must create it), migrated.
 * ------------------------------------------------------------------------------------- */
struct fx {
    char dir[64];
    char path[PATH_MAX];
    char url[PATH_MAX + 16];
    struct store *s;
    struct ledger_book *b;
};

static void fx_url(struct fx *f)
{
    snprintf(f->path, sizeof(f->path), "%s/var/db/ledger.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite://%s", f->path); /* absolute: sqlite:///tmp/... */
}

static int fx_setup_unmigrated(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ledgerd-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fx_url(f);
    struct buf err;
    buf_init(&err, 1024);
    int rc = store_open(f->url, &f->s, &err);
    if (rc != 0) {
        fprintf(stderr, "store_open: %s\n", err.data != NULL ? err.data : "");
    }
    assert_int_equal(rc, 0);
    buf_release(&err);
    assert_int_equal(ledger_book_new(4096, 1024, 1u << 20, &f->b), 0);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    fx_setup_unmigrated(state);
    struct fx *f = *state;
    struct buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), 0);
    buf_release(&err);
    return 0;
}

static void rm_db_files(const char *dir)
{
    static const char *const names[] = {"var/db/ledger.db", "var/db/ledger.db-wal",
                                        "var/db/ledger.db-shm", "var/db", "var"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        if (unlink(p) != 0) {
            (void)rmdir(p);
        }
    }
    (void)rmdir(dir);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    ledger_book_free(f->b);
    rm_db_files(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Helpers: build items, commit a book, read rows into copies.
 * ------------------------------------------------------------------------------------- */
static struct ledger_account mk_account(const char *id, const char *ledger, uint16_t code,
                                        uint32_t flags, const char *meta)
{
    struct ledger_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.ledger, sizeof(a.ledger), "%s", ledger);
    a.code = code;
    a.flags = flags;
    if (meta != NULL) {
        a.metadata.ptr = meta;
        a.metadata.len = strlen(meta);
    }
    return a;
}

static struct ledger_transfer mk_transfer(const char *id, const char *dr, const char *cr,
                                          u128 amount, const char *ledger, uint32_t flags)
{
    struct ledger_transfer t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "%s", dr);
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "%s", cr);
    snprintf(t.ledger, sizeof(t.ledger), "%s", ledger);
    t.amount = amount;
    t.code = 1;
    t.flags = flags;
    t.present = ALL_FIELDS;
    return t;
}

static void commit_book(struct fx *f)
{
    assert_true(ledger_book_balanced(f->b));
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    assert_int_equal(store_tx_commit(f->s), 0);
    ledger_book_reset(f->b);
}

static void create_accounts(struct fx *f, const struct ledger_account *a, size_t n, int64_t now)
{
    assert_int_equal(store_tx_begin(f->s), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(store_wr_account_load(f->s, a[i].id, f->b), 0);
        assert_int_equal(ledger_book_account_create(f->b, &a[i], now, NULL), LEDGER_CREATED);
    }
    commit_book(f);
}

/* Loads what t references, applies it at now and commits; returns the result. */
static enum ledger_result apply_one(struct fx *f, const struct ledger_transfer *t, int64_t now)
{
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_transfer_load(f->s, t->id, f->b), 0);
    if (t->pending_id[0] != '\0') {
        assert_int_equal(store_wr_transfer_load(f->s, t->pending_id, f->b), 0);
    }
    assert_int_equal(store_wr_account_load(f->s, t->debit_account_id, f->b), 0);
    assert_int_equal(store_wr_account_load(f->s, t->credit_account_id, f->b), 0);
    enum ledger_result r = LEDGER_RESULT_COUNT;
    (void)ledger_book_transfers_apply(f->b, t, 1, now, &r, NULL);
    commit_book(f);
    return r;
}

/* A row copied out of a read callback (its pointers die with the call). */
struct got_account {
    int calls;
    struct ledger_account a;
    char meta[LIMIT_METADATA_BYTES_MAX + 1];
};

static int got_account_fn(void *ctx, const struct ledger_account *a)
{
    struct got_account *g = ctx;
    g->calls++;
    g->a = *a;
    assert_true(a->metadata.len <= LIMIT_METADATA_BYTES_MAX);
    if (a->metadata.len > 0) {
        memcpy(g->meta, a->metadata.ptr, a->metadata.len);
    }
    g->meta[a->metadata.len] = '\0';
    g->a.metadata.ptr = g->meta;
    return 0;
}

struct got_transfer {
    int calls;
    struct ledger_transfer t;
    char meta[LIMIT_METADATA_BYTES_MAX + 1];
};

static int got_transfer_fn(void *ctx, const struct ledger_transfer *t)
{
    struct got_transfer *g = ctx;
    g->calls++;
    g->t = *t;
    if (t->metadata.len > 0) {
        memcpy(g->meta, t->metadata.ptr, t->metadata.len);
    }
    g->meta[t->metadata.len] = '\0';
    g->t.metadata.ptr = g->meta;
    return 0;
}

static struct got_account get_account(struct fx *f, const char *id)
{
    struct got_account g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_account_get(f->s, id, got_account_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    return g;
}

static struct got_transfer get_transfer(struct fx *f, const char *id)
{
    struct got_transfer g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_transfer_get(f->s, id, got_transfer_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    return g;
}

static void assert_u128_equal(u128 a, u128 b)
{
    assert_true(a == b);
}

/* ---------------------------------------------------------------------------------------
 * Opening and migrations.
 * ------------------------------------------------------------------------------------- */
static void test_open_rejects_bad_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "mysql://localhost/x", "sqlite:/x.db", "sqlite://", "sqlite:///tmp/ledgerd-no-file/", "",
        "SQLITE:///x.db"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct store *s = (struct store *)&s; /* must be overwritten */
        struct buf err;
        buf_init(&err, 512);
        assert_int_equal(store_open(bad[i], &s, &err), -EINVAL);
        assert_null(s);
        assert_true(err.len > 0);
        buf_release(&err);
    }
}

static void test_open_relative_url(void **state)
{
    (void)state;
    char dir[] = "/tmp/ledgerd-store-rel-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    struct store *s = NULL;
    struct buf err;
    buf_init(&err, 512);
    assert_int_equal(store_open("sqlite://var/db/ledger.db", &s, &err), 0);
    assert_int_equal(store_ping(s), 0);
    store_close(s);
    struct stat st;
    assert_int_equal(stat("var/db/ledger.db", &st), 0);
    assert_int_equal(stat("var/db", &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0750 & ~mask);
    assert_int_equal(chdir(cwd), 0);
    buf_release(&err);
    rm_db_files(dir);
}

static void test_open_unwritable_path(void **state)
{
    (void)state;
    struct store *s = NULL;
    struct buf err;
    buf_init(&err, 512);
    /* A regular file where a directory should be. */
    assert_int_not_equal(store_open("sqlite:///dev/null/ledger.db", &s, &err), 0);
    assert_null(s);
    assert_true(err.len > 0);
    buf_release(&err);
}

static void count_applied(void *ctx, uint32_t version, const char *name)
{
    int *n = ctx;
    (*n)++;
    assert_int_equal(version, (uint32_t)*n);
    assert_non_null(name);
    assert_true(name[0] != '\0');
}

static void test_migrate_and_status(void **state)
{
    struct fx *f = *state;
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_true(st.available >= 1);
    assert_int_equal(st.applied, 0);
    assert_int_equal(st.pending, st.available);
    assert_false(st.drift);

    struct buf err;
    buf_init(&err, 512);
    int applied = 0;
    assert_int_equal(store_migrate_up(f->s, count_applied, &applied, &err), 0);
    assert_int_equal((uint32_t)applied, st.available);
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_int_equal(st.applied, st.available);
    assert_int_equal(st.pending, 0);
    assert_false(st.drift);

    /* Idempotent, also from a new process's point of view (a fresh store on the same file). */
    applied = 0;
    assert_int_equal(store_migrate_up(f->s, count_applied, &applied, &err), 0);
    assert_int_equal(applied, 0);
    store_close(f->s);
    assert_int_equal(store_open(f->url, &f->s, &err), 0);
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(store_migrate_up(f->s, count_applied, &applied, &err), 0);
    assert_int_equal(applied, 0);
    buf_release(&err);
}

static void raw_exec(const struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_drift_checksum(void **state)
{
    struct fx *f = *state;
    raw_exec(f, "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1");
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_true(st.drift);
    assert_non_null(strstr(st.detail, "0001_ledger.sql"));
    assert_non_null(strstr(st.detail, "edited"));

    struct buf err;
    buf_init(&err, 512);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.data, "refusing"));
    assert_non_null(strstr(err.data, "0001_ledger.sql"));
    buf_release(&err);
}

/* A version past the binary's files was applied by a newer release (an expand migration during
 * a rolling deployment): the schema only grew, so it is not drift and there is nothing to do. */
static void test_newer_version_is_ahead_not_drift(void **state)
{
    struct fx *f = *state;
    raw_exec(f, "INSERT INTO schema_migrations (version, name, checksum, applied_at_ms)"
                " VALUES (9999, 'future', 'x', 0)");
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_false(st.drift);
    assert_int_equal(st.ahead, 1);
    assert_int_equal(st.pending, 0);
    struct buf err;
    buf_init(&err, 512);
    int applied = 0;
    assert_int_equal(store_migrate_up(f->s, count_applied, &applied, &err), 0);
    assert_int_equal(applied, 0);
    buf_release(&err);
}

/* A pending migration numbered below an applied one: the history was reordered. */
static void test_drift_reordered(void **state)
{
    struct fx *f = *state;
    raw_exec(f, "DELETE FROM schema_migrations WHERE version = 1");
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_true(st.drift);
    assert_non_null(strstr(st.detail, "0001_ledger.sql is pending"));
    assert_non_null(strstr(st.detail, "reordered"));
    struct buf err;
    buf_init(&err, 512);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.data, "reordered"));
    buf_release(&err);
}

/* Each row says when, how long and who; the audit trail has one record per application. */
static void test_migration_rows_record_who_and_how_long(void **state)
{
    struct fx *f = *state;
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_migration_rows(f->s, &rows, &n), 0);
    assert_int_equal(n, 2);
    int64_t now = clock_unix_ms();
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].version, i + 1);
        assert_int_equal(strlen(rows[i].checksum), 64);
        assert_true(rows[i].applied_at_ms > now - 600000 && rows[i].applied_at_ms <= now);
        assert_true(rows[i].duration_ms >= 0);
        assert_string_equal(rows[i].applied_by, "system");
    }
    assert_string_equal(rows[0].name, "ledger");
    free(rows);
}

/* Rows counted for the plan: exact up to the cap, cap + 1 past it, -ENOENT for no table; a name
 * is an identifier, never SQL. */
static void test_table_rows(void **state)
{
    struct fx *f = *state;
    uint64_t rows = 99;
    assert_int_equal(store_table_rows(f->s, "api_keys", 10, &rows), 0);
    assert_int_equal(rows, 0);
    raw_exec(f, "CREATE TABLE \"we\"\"ird\" (a INTEGER);"
                " INSERT INTO \"we\"\"ird\" VALUES (1), (2), (3), (4), (5)");
    assert_int_equal(store_table_rows(f->s, "we\"ird", 10, &rows), 0);
    assert_int_equal(rows, 5);
    assert_int_equal(store_table_rows(f->s, "we\"ird", 3, &rows), 0);
    assert_int_equal(rows, 4);
    assert_int_equal(store_table_rows(f->s, "no_such_table", 10, &rows), -ENOENT);
    assert_int_equal(store_table_rows(f->s, "accounts; DROP TABLE accounts", 10, &rows), -ENOENT);
    assert_int_equal(store_table_rows(f->s, "", 10, &rows), -ENOENT);
}

/* A database an older ledgerd migrated has schema_migrations without duration_ms and
 * applied_by: status reads it as it is, and the next migration run completes the table. */
static void test_old_bookkeeping_table_is_completed(void **state)
{
    struct fx *f = *state;
    raw_exec(f, "ALTER TABLE schema_migrations DROP COLUMN duration_ms;"
                " ALTER TABLE schema_migrations DROP COLUMN applied_by");
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_migration_rows(f->s, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].duration_ms, -1);
    assert_string_equal(rows[0].applied_by, "");
    free(rows);
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_false(st.drift);
    raw_exec(f, "DELETE FROM schema_migrations WHERE version = 2; DROP TABLE api_keys;"
                " DROP TABLE audit_checkpoints; DROP TABLE audit_records");
    struct buf err;
    buf_init(&err, 512);
    assert_int_equal(store_migrate_up_as(f->s, "cli:alice", NULL, NULL, &err), 0);
    buf_release(&err);
    assert_int_equal(store_migration_rows(f->s, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].duration_ms, -1);
    assert_true(rows[1].duration_ms >= 0);
    assert_string_equal(rows[1].applied_by, "cli:alice");
    free(rows);
}

/* ---------------------------------------------------------------------------------------
 * Writes read back.
 * ------------------------------------------------------------------------------------- */
static void test_account_roundtrip(void **state)
{
    struct fx *f = *state;
    char meta[LIMIT_METADATA_BYTES_MAX + 1];
    /* Full-size metadata with multi-byte UTF-8, quotes and backslashes: stored byte for byte. */
    size_t len = (size_t)snprintf(meta, sizeof(meta), "{\"k\":\"\xc3\xa9\\\"\\\\ ");
    while (len < LIMIT_METADATA_BYTES_MAX - 2) {
        meta[len++] = 'x';
    }
    meta[len++] = '"';
    meta[len++] = '}';
    meta[len] = '\0';
    assert_int_equal(len, LIMIT_METADATA_BYTES_MAX);

    char long_id[LIMIT_ID_LEN_MAX + 1];
    memset(long_id, 'a', LIMIT_ID_LEN_MAX);
    long_id[LIMIT_ID_LEN_MAX] = '\0';
    struct ledger_account in[3] = {
        mk_account(long_id, "USD_LEDGER_16CHR", 65535, 0, meta),
        mk_account("b", "USD_LEDGER_16CHR", 0, 0, NULL),
        mk_account("c", "USD_LEDGER_16CHR", 0, LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, "{}"),
    };
    create_accounts(f, in, 3, 1700000000123);

    struct got_account g = get_account(f, long_id);
    assert_string_equal(g.a.id, long_id);
    assert_string_equal(g.a.ledger, "USD_LEDGER_16CHR");
    assert_int_equal(g.a.code, 65535);
    assert_int_equal(g.a.flags, 0);
    assert_int_equal(g.a.metadata.len, LIMIT_METADATA_BYTES_MAX);
    assert_memory_equal(g.meta, meta, LIMIT_METADATA_BYTES_MAX);
    assert_int_equal(g.a.created_at_ms, 1700000000123);
    assert_u128_equal(g.a.debits_posted, 0);

    g = get_account(f, "b");
    assert_int_equal(g.a.metadata.len, 0); /* absent stays absent */
    g = get_account(f, "c");
    assert_int_equal(g.a.flags, LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS);
    assert_string_equal(g.meta, "{}");

    /* The largest amount there is. */
    struct ledger_transfer t = mk_transfer("t-max", long_id, "b", U128_MAX, "USD_LEDGER_16CHR", 0);
    assert_int_equal(apply_one(f, &t, 1700000000200), LEDGER_CREATED);
    g = get_account(f, long_id);
    assert_u128_equal(g.a.debits_posted, U128_MAX);
    assert_u128_equal(g.a.credits_posted, 0);
    g = get_account(f, "b");
    assert_u128_equal(g.a.credits_posted, U128_MAX);

    struct got_transfer gt = get_transfer(f, "t-max");
    assert_string_equal(gt.t.debit_account_id, long_id);
    assert_string_equal(gt.t.credit_account_id, "b");
    assert_u128_equal(gt.t.amount, U128_MAX);
    assert_string_equal(gt.t.ledger, "USD_LEDGER_16CHR");
    assert_int_equal(gt.t.code, 1);
    assert_int_equal(gt.t.flags, 0);
    assert_string_equal(gt.t.pending_id, "");
    assert_int_equal(gt.t.timeout_seconds, 0);
    assert_int_equal(gt.t.metadata.len, 0);
    assert_int_equal(gt.t.present, ALL_FIELDS);
    assert_int_equal(gt.t.created_at_ms, 1700000000200);
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_NONE);
    assert_int_equal(gt.t.expires_at_ms, 0);

    /* Missing rows. */
    struct got_account none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(store_account_get(f->s, "nope", got_account_fn, &none), -ENOENT);
    assert_int_equal(store_transfer_get(f->s, "nope", got_transfer_fn, &none), -ENOENT);
    assert_int_equal(none.calls, 0);
    /* Hostile ids are just strings that are not there. */
    assert_int_equal(store_account_get(f->s, "' OR 1=1 --", got_account_fn, &none), -ENOENT);
}

static void test_pending_lifecycle(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[2] = {mk_account("p1", "EUR", 7, 0, "{\"n\":1}"),
                                   mk_account("p2", "EUR", 7, 0, NULL)};
    create_accounts(f, in, 2, 1000);

    int64_t deadline = -1;
    assert_int_equal(store_wr_next_deadline(f->s, &deadline), 0);
    assert_int_equal(deadline, 0);

    struct ledger_transfer p = mk_transfer("pend", "p1", "p2", 500, "EUR", LEDGER_TRANSFER_PENDING);
    p.timeout_seconds = 2;
    p.metadata.ptr = "{\"why\":\"hold\"}";
    p.metadata.len = strlen(p.metadata.ptr);
    assert_int_equal(apply_one(f, &p, 10000), LEDGER_CREATED);
    struct ledger_transfer forever =
        mk_transfer("forever", "p1", "p2", 1, "EUR", LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply_one(f, &forever, 10001), LEDGER_CREATED);

    struct got_transfer gt = get_transfer(f, "pend");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_PENDING);
    assert_int_equal(gt.t.timeout_seconds, 2);
    assert_int_equal(gt.t.expires_at_ms, 12000);
    assert_string_equal(gt.meta, "{\"why\":\"hold\"}");
    assert_int_equal(gt.t.flags, LEDGER_TRANSFER_PENDING);
    gt = get_transfer(f, "forever");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_PENDING);
    assert_int_equal(gt.t.expires_at_ms, 0);

    struct got_account g = get_account(f, "p1");
    assert_u128_equal(g.a.debits_pending, 501);
    assert_string_equal(g.meta, "{\"n\":1}");

    /* Only the one with a timeout has a deadline; it is due exactly at its deadline. */
    assert_int_equal(store_wr_next_deadline(f->s, &deadline), 0);
    assert_int_equal(deadline, 12000);
    char ids[4][LIMIT_ID_LEN_MAX + 1];
    size_t n = 99;
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_due_pendings(f->s, 11999, 4, f->b, ids, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_wr_due_pendings(f->s, 12000, 4, f->b, ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "pend");
    assert_non_null(ledger_book_transfer_find(f->b, "pend"));
    assert_non_null(ledger_book_account_find(f->b, "p1"));
    assert_non_null(ledger_book_account_find(f->b, "p2"));
    assert_int_equal(ledger_book_pending_expire(f->b, "pend"), 0);
    commit_book(f);

    gt = get_transfer(f, "pend");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_EXPIRED);
    g = get_account(f, "p1");
    assert_u128_equal(g.a.debits_pending, 1);
    g = get_account(f, "p2");
    assert_u128_equal(g.a.credits_pending, 1);
    assert_int_equal(store_wr_next_deadline(f->s, &deadline), 0);
    assert_int_equal(deadline, 0);

    /* Post the one without a deadline: a new transfer and a pending state change. */
    struct ledger_transfer post = mk_transfer("post", "", "", 0, "", LEDGER_TRANSFER_POST_PENDING);
    post.present = 0;
    snprintf(post.pending_id, sizeof(post.pending_id), "forever");
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_transfer_load(f->s, "post", f->b), 0);
    assert_int_equal(store_wr_transfer_load(f->s, "forever", f->b), 0);
    assert_int_equal(store_wr_account_load(f->s, "p1", f->b), 0);
    assert_int_equal(store_wr_account_load(f->s, "p2", f->b), 0);
    enum ledger_result r = LEDGER_RESULT_COUNT;
    (void)ledger_book_transfers_apply(f->b, &post, 1, 20000, &r, NULL);
    assert_int_equal(r, LEDGER_CREATED);
    commit_book(f);
    gt = get_transfer(f, "forever");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_POSTED);
    gt = get_transfer(f, "post");
    assert_string_equal(gt.t.pending_id, "forever");
    assert_string_equal(gt.t.debit_account_id, "p1");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_NONE);
    g = get_account(f, "p1");
    assert_u128_equal(g.a.debits_pending, 0);
    assert_u128_equal(g.a.debits_posted, 1);
}

static void test_rollback_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct ledger_account a = mk_account("ghost", "USD", 1, 0, NULL);
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(ledger_book_account_create(f->b, &a, 1, NULL), LEDGER_CREATED);
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    store_tx_rollback(f->s);
    ledger_book_reset(f->b);
    struct got_account g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_account_get(f->s, "ghost", got_account_fn, &g), -ENOENT);
    /* The writer is usable again. */
    create_accounts(f, &a, 1, 2);
    g = get_account(f, "ghost");
    assert_int_equal(g.a.created_at_ms, 2);
}

static void test_write_conflict_is_io_error(void **state)
{
    struct fx *f = *state;
    struct ledger_account a = mk_account("dup", "USD", 1, 0, NULL);
    create_accounts(f, &a, 1, 1);
    /* A book that never loaded "dup" believes it creates it: the unique id refuses. */
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(ledger_book_account_create(f->b, &a, 1, NULL), LEDGER_CREATED);
    assert_int_equal(store_wr_changes(f->s, f->b), -EIO);
    store_tx_rollback(f->s);
    ledger_book_reset(f->b);
}

static void test_locked_database_is_busy(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_tx_begin(f->s), -EBUSY); /* after the busy timeout */
    store_tx_rollback(f->s);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_tx_begin(f->s), 0);
    store_tx_rollback(f->s);
}

/* ---------------------------------------------------------------------------------------
 * Lists.
 * ------------------------------------------------------------------------------------- */
#define PAGE_ACCOUNTS 2500

struct walk {
    int seen[PAGE_ACCOUNTS];
    long next;    /* the index expected next */
    long step;    /* 1 for all ledgers, 2 for one */
    long stop_at; /* the callback returns 42 at this index; -1 never */
};

static long account_index(const char *id)
{
    assert_int_equal(strncmp(id, "acc-", 4), 0);
    char *end = NULL;
    unsigned long v = strtoul(id + 4, &end, 10);
    assert_true(end != NULL && *end == '\0' && v < PAGE_ACCOUNTS);
    return (long)v;
}

static int walk_fn(void *ctx, const struct ledger_account *a)
{
    struct walk *w = ctx;
    long i = account_index(a->id);
    assert_int_equal(i, w->next); /* commit order */
    w->seen[i]++;
    w->next += w->step;
    return i == w->stop_at ? 42 : 0;
}

static void make_page_accounts(struct fx *f)
{
    for (int base = 0; base < PAGE_ACCOUNTS; base += 1000) {
        assert_int_equal(store_tx_begin(f->s), 0);
        for (int i = base; i < base + 1000 && i < PAGE_ACCOUNTS; i++) {
            char id[16];
            snprintf(id, sizeof(id), "acc-%05d", i);
            struct ledger_account a = mk_account(id, i % 2 == 0 ? "EVEN" : "ODD", 1, 0, NULL);
            assert_int_equal(ledger_book_account_create(f->b, &a, i, NULL), LEDGER_CREATED);
        }
        commit_book(f);
    }
}

static void test_accounts_pages(void **state)
{
    struct fx *f = *state;
    make_page_accounts(f);

    struct walk *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->step = 1;
    w->stop_at = -1;
    struct store_page page = {.after_seq = 0, .limit = 1000};
    static const uint32_t sizes[] = {1000, 1000, 500};
    for (size_t p = 0; p < 3; p++) {
        long before = w->next;
        assert_int_equal(store_accounts_list(f->s, NULL, &page, walk_fn, w), 0);
        assert_int_equal(w->next - before, sizes[p]);
        assert_int_equal(page.more_out, p < 2);
        assert_true(page.last_seq_out > page.after_seq);
        page.after_seq = page.last_seq_out;
    }
    for (int i = 0; i < PAGE_ACCOUNTS; i++) {
        assert_int_equal(w->seen[i], 1);
    }
    /* Past the end: an empty page that says so. */
    uint64_t end = page.after_seq;
    assert_int_equal(store_accounts_list(f->s, NULL, &page, walk_fn, w), 0);
    assert_int_equal(page.last_seq_out, end);
    assert_false(page.more_out);

    /* One ledger, limit 1 at the boundary of the last row. */
    memset(w, 0, sizeof(*w));
    w->next = 1;
    w->step = 2;
    w->stop_at = -1;
    page = (struct store_page){.after_seq = 0, .limit = LIMIT_LIST_MAX};
    assert_int_equal(store_accounts_list(f->s, "ODD", &page, walk_fn, w), 0);
    assert_true(page.more_out);
    page.after_seq = page.last_seq_out;
    assert_int_equal(store_accounts_list(f->s, "ODD", &page, walk_fn, w), 0);
    assert_false(page.more_out);
    assert_int_equal(w->next, PAGE_ACCOUNTS + 1);
    page = (struct store_page){.after_seq = 0, .limit = 1};
    assert_int_equal(store_accounts_list(f->s, "NO_SUCH", &page, walk_fn, w), 0);
    assert_false(page.more_out);
    assert_int_equal(page.last_seq_out, 0);

    /* A callback's non-zero answer stops the walk and comes back. */
    memset(w, 0, sizeof(*w));
    w->step = 1;
    w->stop_at = 10;
    page = (struct store_page){.after_seq = 0, .limit = 100};
    assert_int_equal(store_accounts_list(f->s, NULL, &page, walk_fn, w), 42);
    assert_int_equal(w->next, 11);
    free(w);
}

struct tlist {
    char ids[64][LIMIT_ID_LEN_MAX + 1];
    size_t n;
};

static int tlist_fn(void *ctx, const struct ledger_transfer *t)
{
    struct tlist *l = ctx;
    assert_true(l->n < 64);
    snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", t->id);
    assert_int_equal(t->present, ALL_FIELDS);
    return 0;
}

static void test_account_transfers_list(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[3] = {mk_account("A", "L", 1, 0, NULL),
                                   mk_account("B", "L", 1, 0, NULL),
                                   mk_account("C", "L", 1, 0, NULL)};
    create_accounts(f, in, 3, 1);
    /* 30 transfers: A->B, C->A, B->C, ... so A is on the debit side, then the credit side. */
    static const char *const pairs[3][2] = {{"A", "B"}, {"C", "A"}, {"B", "C"}};
    assert_int_equal(store_tx_begin(f->s), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_wr_account_load(f->s, in[i].id, f->b), 0);
    }
    for (int i = 0; i < 30; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t%02d", i);
        struct ledger_transfer t = mk_transfer(id, pairs[i % 3][0], pairs[i % 3][1], 1, "L", 0);
        enum ledger_result r = LEDGER_RESULT_COUNT;
        (void)ledger_book_transfers_apply(f->b, &t, 1, 2 + i, &r, NULL);
        assert_int_equal(r, LEDGER_CREATED);
    }
    commit_book(f);

    /* A takes part in t00, t01, t03, t04, ... (20 transfers); walk them 7 at a time. */
    struct tlist *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    struct store_page page = {.after_seq = 0, .limit = 7};
    int pages = 0;
    do {
        page.after_seq = page.last_seq_out;
        assert_int_equal(store_account_transfers_list(f->s, "A", &page, tlist_fn, l), 0);
        pages++;
    } while (page.more_out);
    assert_int_equal(pages, 3);
    assert_int_equal(l->n, 20);
    size_t k = 0;
    for (int i = 0; i < 30; i++) {
        if (i % 3 == 2) {
            continue;
        }
        char id[16];
        snprintf(id, sizeof(id), "t%02d", i);
        assert_string_equal(l->ids[k++], id);
    }

    l->n = 0;
    page = (struct store_page){.after_seq = 0, .limit = 5};
    assert_int_equal(store_account_transfers_list(f->s, "nobody", &page, tlist_fn, l), 0);
    assert_int_equal(l->n, 0);
    assert_false(page.more_out);
    free(l);
}

/* ---------------------------------------------------------------------------------------
 * Idempotency records.
 * ------------------------------------------------------------------------------------- */
struct got_idem {
    int calls;
    uint8_t digest[32];
    int status;
    char location[128];
    char body[256];
    size_t body_len;
    int64_t expires_at_ms;
};

static int got_idem_fn(void *ctx, const struct store_idem_record *r)
{
    struct got_idem *g = ctx;
    g->calls++;
    memcpy(g->digest, r->request_digest, sizeof(g->digest));
    g->status = r->status;
    snprintf(g->location, sizeof(g->location), "%s", r->location);
    assert_true(r->body_len <= sizeof(g->body));
    memcpy(g->body, r->body, r->body_len);
    g->body_len = r->body_len;
    g->expires_at_ms = r->expires_at_ms;
    return 0;
}

static void idem_put(struct fx *f, const char *principal, const char *key, int status,
                     const char *body, size_t body_len, int64_t expires_at_ms)
{
    struct store_idem_record r;
    memset(&r, 0, sizeof(r));
    memset(r.request_digest, 0xab, sizeof(r.request_digest));
    r.request_digest[0] = (uint8_t)status;
    r.status = status;
    r.location = status == 201 ? "/v1/accounts/x" : "";
    r.body = body;
    r.body_len = body_len;
    r.expires_at_ms = expires_at_ms;
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_put(f->s, principal, key, &r, expires_at_ms - 1000), 0);
    assert_int_equal(store_tx_commit(f->s), 0);
}

static void test_idempotency_records(void **state)
{
    struct fx *f = *state;
    /* A body with a NUL inside: stored as bytes, not as a C string. */
    static const char body[] = "{\"a\":1}\0tail";
    idem_put(f, "alice", "key-1", 201, body, sizeof(body) - 1, 5000);

    struct got_idem g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 4999, got_idem_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 201);
    assert_int_equal(g.digest[0], 201);
    assert_int_equal(g.digest[31], 0xab);
    assert_string_equal(g.location, "/v1/accounts/x");
    assert_int_equal(g.body_len, sizeof(body) - 1);
    assert_memory_equal(g.body, body, sizeof(body) - 1);
    assert_int_equal(g.expires_at_ms, 5000);

    /* Scoped to the principal; gone once expired. */
    assert_int_equal(store_idem_get(f->s, "bob", "key-1", 4999, got_idem_fn, &g), -ENOENT);
    assert_int_equal(store_idem_get(f->s, "alice", "key-2", 4999, got_idem_fn, &g), -ENOENT);
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 5000, got_idem_fn, &g), -ENOENT);

    /* Replaced as a whole; an empty body is a body. */
    idem_put(f, "alice", "key-1", 422, "", 0, 9000);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 5000, got_idem_fn, &g), 0);
    assert_int_equal(g.status, 422);
    assert_int_equal(g.body_len, 0);
    assert_string_equal(g.location, "");

    /* Purge: only what expired, at most limit at a time. */
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof(key), "old-%d", i);
        idem_put(f, "carol", key, 200, "{}", 2, 1000 + i);
    }
    size_t deleted = 99;
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_purge(f->s, 999, 10, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_wr_idem_purge(f->s, 2000, 2, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(store_wr_idem_purge(f->s, 2000, 10, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(store_tx_commit(f->s), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 5000, got_idem_fn, &g), 0);
}

/* ---------------------------------------------------------------------------------------
 * Readers on many threads while the writer commits: every read sees whole commits.
 * ------------------------------------------------------------------------------------- */
#define READER_THREADS 6
#define WRITER_COMMITS 150

struct reader_arg {
    struct fx *f;
    int reads;
    int failures;
};

struct sums {
    u128 debits;
    u128 credits;
    int n;
};

static int sums_fn(void *ctx, const struct ledger_account *a)
{
    struct sums *s = ctx;
    s->debits += a->debits_posted;
    s->credits += a->credits_posted;
    s->n++;
    return 0;
}

static void *reader_main(void *p)
{
    struct reader_arg *r = p;
    for (int i = 0; i < 300; i++) {
        struct sums s = {0, 0, 0};
        struct store_page page = {.after_seq = 0, .limit = 10};
        if (store_accounts_list(r->f->s, "R", &page, sums_fn, &s) != 0 || s.n != 2 ||
            s.debits != s.credits || store_ping(r->f->s) != 0) {
            r->failures++;
        }
        r->reads++;
    }
    return NULL;
}

static void test_readers_on_threads(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[2] = {mk_account("r1", "R", 1, 0, NULL),
                                   mk_account("r2", "R", 1, 0, NULL)};
    create_accounts(f, in, 2, 1);

    pthread_t th[READER_THREADS];
    struct reader_arg args[READER_THREADS];
    for (int i = 0; i < READER_THREADS; i++) {
        args[i] = (struct reader_arg){f, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    for (int i = 0; i < WRITER_COMMITS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "w%d", i);
        struct ledger_transfer t =
            mk_transfer(id, i % 2 ? "r1" : "r2", i % 2 ? "r2" : "r1", 3, "R", 0);
        assert_int_equal(apply_one(f, &t, 10 + i), LEDGER_CREATED);
    }
    for (int i = 0; i < READER_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].reads, 300);
        assert_int_equal(args[i].failures, 0);
    }
    /* The exited threads' connections are closed by store_close (teardown; ASan sees leaks). */
    struct got_account g = get_account(f, "r1");
    assert_u128_equal(g.a.debits_posted, (u128)3 * (WRITER_COMMITS / 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_bad_urls),
        cmocka_unit_test(test_open_relative_url),
        cmocka_unit_test(test_open_unwritable_path),
        cmocka_unit_test_setup_teardown(test_migrate_and_status, fx_setup_unmigrated, fx_teardown),
        cmocka_unit_test_setup_teardown(test_drift_checksum, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_is_ahead_not_drift, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_drift_reordered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_migration_rows_record_who_and_how_long, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_old_bookkeeping_table_is_completed, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_table_rows, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_account_roundtrip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pending_lifecycle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_conflict_is_io_error, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_locked_database_is_busy, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_accounts_pages, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_account_transfers_list, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_records, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_readers_on_threads, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
