/*
 * test_walbuf.c — the WAL write-coalescing VFS, seen through SQLite as ledgerd's writer uses it.
 *
 * A counting VFS is installed as SQLite's default before walbuf registers, so walbuf wraps it:
 * the tests see every write that reaches the "disk", can make WAL writes fail, and check that
 * (1) a commit reaches the WAL in far fewer writes than it has frames, (2) another connection on
 * the default VFS sees every committed row, with synchronous=FULL and also with NORMAL (where
 * only the wal-index barrier flushes), (3) a transaction larger than the writer's page cache
 * (which reads its own spilled frames back) and one larger than the buffer commit intact,
 * (4) a failed WAL write fails the commit and loses nothing committed before it, and the next
 * commit succeeds, (5) a database written through walbuf reopens and checkpoints intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "store/walbuf.h"

/* ---------------------------------------------------------------------------------------
 * The counting VFS: the default VFS with WAL writes counted and, on demand, failed.
 * ------------------------------------------------------------------------------------- */
struct cnt_file {
    sqlite3_file base;
    sqlite3_file *real;
    int is_wal;
};

static sqlite3_vfs *cnt_root;
static sqlite3_vfs cnt_vfs;
static sqlite3_io_methods cnt_methods;
static long cnt_wal_writes;
static long cnt_wal_bytes;
static long cnt_fail_wal_writes; /* while > 0, WAL writes fail with SQLITE_IOERR_WRITE */

static int cnt_close(sqlite3_file *f)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xClose(c->real);
}

static int cnt_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xRead(c->real, out, n, off);
}

static int cnt_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off)
{
    struct cnt_file *c = (struct cnt_file *)f;
    if (c->is_wal) {
        if (cnt_fail_wal_writes > 0) {
            cnt_fail_wal_writes--;
            return SQLITE_IOERR_WRITE;
        }
        cnt_wal_writes++;
        cnt_wal_bytes += n;
        assert_true((size_t)n <= LIMIT_WALBUF_CHUNK_BYTES);
    }
    return c->real->pMethods->xWrite(c->real, data, n, off);
}

static int cnt_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xTruncate(c->real, size);
}

static int cnt_sync(sqlite3_file *f, int flags)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xSync(c->real, flags);
}

static int cnt_file_size(sqlite3_file *f, sqlite3_int64 *out)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xFileSize(c->real, out);
}

static int cnt_lock(sqlite3_file *f, int level)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xLock(c->real, level);
}

static int cnt_unlock(sqlite3_file *f, int level)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xUnlock(c->real, level);
}

static int cnt_reserved(sqlite3_file *f, int *out)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xCheckReservedLock(c->real, out);
}

static int cnt_control(sqlite3_file *f, int op, void *arg)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xFileControl(c->real, op, arg);
}

static int cnt_sector(sqlite3_file *f)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xSectorSize(c->real);
}

static int cnt_device(sqlite3_file *f)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xDeviceCharacteristics(c->real);
}

static int cnt_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xShmMap(c->real, region, size, extend, out);
}

static int cnt_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xShmLock(c->real, off, n, flags);
}

static void cnt_shm_barrier(sqlite3_file *f)
{
    struct cnt_file *c = (struct cnt_file *)f;
    c->real->pMethods->xShmBarrier(c->real);
}

static int cnt_shm_unmap(sqlite3_file *f, int del)
{
    struct cnt_file *c = (struct cnt_file *)f;
    return c->real->pMethods->xShmUnmap(c->real, del);
}

static int cnt_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    (void)f;
    (void)off;
    (void)n;
    *out = NULL;
    return SQLITE_OK;
}

static int cnt_unfetch(sqlite3_file *f, sqlite3_int64 off, void *page)
{
    (void)f;
    (void)off;
    (void)page;
    return SQLITE_OK;
}

static int cnt_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    struct cnt_file *c = (struct cnt_file *)f;
    memset(c, 0, sizeof(*c));
    c->real = (sqlite3_file *)(c + 1);
    int rc = cnt_root->xOpen(cnt_root, name, c->real, flags, out);
    if (c->real->pMethods == NULL) {
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    c->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    c->base.pMethods = &cnt_methods;
    return rc;
}

static void cnt_install(void)
{
    cnt_root = sqlite3_vfs_find(NULL);
    assert_non_null(cnt_root);
    cnt_vfs = *cnt_root;
    cnt_vfs.pNext = NULL;
    cnt_vfs.zName = "counting";
    cnt_vfs.szOsFile = (int)sizeof(struct cnt_file) + cnt_root->szOsFile;
    cnt_vfs.xOpen = cnt_open;
    cnt_methods = (sqlite3_io_methods){
        3,
        cnt_close,
        cnt_read,
        cnt_write,
        cnt_truncate,
        cnt_sync,
        cnt_file_size,
        cnt_lock,
        cnt_unlock,
        cnt_reserved,
        cnt_control,
        cnt_sector,
        cnt_device,
        cnt_shm_map,
        cnt_shm_lock,
        cnt_shm_barrier,
        cnt_shm_unmap,
        cnt_fetch,
        cnt_unfetch,
    };
    assert_int_equal(sqlite3_vfs_register(&cnt_vfs, 1), SQLITE_OK);
}

/* ---------------------------------------------------------------------------------------
 * Fixture: a database path in a fresh directory; the writer on walbuf, a reader on default.
 * ------------------------------------------------------------------------------------- */
struct fx {
    char dir[64];
    char path[PATH_MAX];
    sqlite3 *writer;
    sqlite3 *reader;
};

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        fail_msg("%s: %s", sql, err != NULL ? err : sqlite3_errstr(rc));
    }
}

static sqlite3 *open_db(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    assert_int_equal(rc, SQLITE_OK);
    return db;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ledgerd-walbuf-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    f->writer = open_db(f->path, STORE_WALBUF_VFS_NAME);
    exec_ok(f->writer, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                       "PRAGMA wal_autocheckpoint = 0;"
                       "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    f->reader = open_db(f->path, NULL);
    cnt_wal_writes = 0;
    cnt_wal_bytes = 0;
    cnt_fail_wal_writes = 0;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    sqlite3_close(f->reader);
    sqlite3_close(f->writer);
    char p[PATH_MAX + 8];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Inserts rows [first, first + n) with a 1000-byte value in one transaction; returns the rc of
 * COMMIT (the first failing statement's rc, after a rollback). */
static int insert_rows(sqlite3 *db, int first, int n)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO t (k, v) VALUES (?1, randomblob(1000))", -1, &st, NULL),
        SQLITE_OK);
    for (int i = first; i < first + n && rc == SQLITE_OK; i++) {
        sqlite3_bind_int(st, 1, i);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

static long count_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(k), 0) FROM t", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* ---------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------- */
static long wal_size_bytes(const struct fx *f)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof(p), "%s-wal", f->path);
    FILE *w = fopen(p, "rb");
    assert_non_null(w);
    assert_int_equal(fseek(w, 0, SEEK_END), 0);
    long size = ftell(w);
    fclose(w);
    return size;
}

static void test_commit_coalesces_frames_into_few_writes(void **state)
{
    struct fx *f = *state;
    long before = wal_size_bytes(f);
    assert_int_equal(insert_rows(f->writer, 1, 400), SQLITE_OK);
    long grown = wal_size_bytes(f) - before;
    long frames = grown / (4096 + 24); /* a frame is a 24-byte header and a 4 KiB page */
    assert_int_equal(grown % (4096 + 24), 0);
    assert_true(frames >= 100);
    /* Without coalescing SQLite writes every frame as two writes (header, page). */
    assert_true(cnt_wal_writes * 10 < frames);
    assert_int_equal(cnt_wal_bytes, grown);
    assert_int_equal(count_rows(f->reader), 400);
}

static void test_reader_sees_every_commit_with_synchronous_normal(void **state)
{
    struct fx *f = *state;
    /* Without a sync per commit, only the wal-index barrier flushes the buffer before the
     * commit becomes visible: a reader on another connection must still see every row. */
    exec_ok(f->writer, "PRAGMA synchronous = NORMAL");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(insert_rows(f->writer, 1 + i * 10, 10), SQLITE_OK);
        assert_int_equal(count_rows(f->reader), (i + 1) * 10);
    }
}

static void test_transaction_larger_than_cache_and_buffer(void **state)
{
    struct fx *f = *state;
    /* A 16-page cache spills to the WAL mid-transaction and reads spilled frames back; 2,000
     * rows of 1 KB are ~2 MB, more than the buffer. */
    exec_ok(f->writer, "PRAGMA cache_size = 16");
    exec_ok(f->writer,
            "BEGIN IMMEDIATE;"
            "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 2000)"
            " INSERT INTO t (k, v) SELECT k, printf('%01000d', k) FROM n");
    /* Inside the transaction, the writer reads back pages it spilled into the WAL. */
    sqlite3_stmt *check = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->writer,
                                        "SELECT count(*), sum(CAST(v AS INTEGER) = k),"
                                        " sum(length(v)) FROM t",
                                        -1, &check, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(check), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(check, 0), 2000);
    assert_int_equal(sqlite3_column_int64(check, 1), 2000);
    assert_int_equal(sqlite3_column_int64(check, 2), 2000 * 1000);
    sqlite3_finalize(check);
    exec_ok(f->writer, "COMMIT");
    assert_int_equal(count_rows(f->reader), 2000);
    assert_int_equal(count_rows(f->writer), 2000);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->reader, "PRAGMA integrity_check", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static void test_failed_wal_write_fails_commit_and_loses_nothing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(insert_rows(f->writer, 1, 100), SQLITE_OK);
    cnt_fail_wal_writes = 1;
    int rc = insert_rows(f->writer, 1001, 100);
    assert_int_not_equal(rc, SQLITE_OK);
    assert_int_equal(cnt_fail_wal_writes, 0);
    assert_int_equal(count_rows(f->reader), 100);
    assert_int_equal(count_rows(f->writer), 100);
    /* The next commit goes through and both commits are there. */
    assert_int_equal(insert_rows(f->writer, 2001, 100), SQLITE_OK);
    assert_int_equal(count_rows(f->reader), 200);
}

static void test_reopen_and_checkpoint_keep_every_row(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(insert_rows(f->writer, 1 + i * 50, 50), SQLITE_OK);
    }
    sqlite3_close(f->writer);
    sqlite3_close(f->reader);
    /* Recovery from the WAL alone: nothing was checkpointed. */
    f->reader = open_db(f->path, NULL);
    assert_int_equal(count_rows(f->reader), 1000);
    exec_ok(f->reader, "PRAGMA wal_checkpoint(TRUNCATE)");
    f->writer = open_db(f->path, STORE_WALBUF_VFS_NAME);
    /* After the WAL restarted at offset 0, appends go on through the buffer. */
    assert_int_equal(insert_rows(f->writer, 5001, 50), SQLITE_OK);
    assert_int_equal(count_rows(f->reader), 1050);
}

int main(void)
{
    cnt_install();
    assert_int_equal(store_walbuf_register(), 0);
    assert_int_equal(store_walbuf_register(), 0); /* idempotent */
    assert_non_null(sqlite3_vfs_find(STORE_WALBUF_VFS_NAME));
    assert_true(sqlite3_vfs_find(NULL) == &cnt_vfs); /* not made the default */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_coalesces_frames_into_few_writes, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reader_sees_every_commit_with_synchronous_normal,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_transaction_larger_than_cache_and_buffer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_wal_write_fails_commit_and_loses_nothing,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_checkpoint_keep_every_row, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
