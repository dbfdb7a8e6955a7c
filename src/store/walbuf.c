/*
 * walbuf.c — the WAL write-coalescing VFS (see walbuf.h for why and what it guarantees).
 *
 * Every file opened through this VFS is a struct wb_file followed by the real file of the
 * default VFS. Files other than WAL files pass every call straight through; the main database
 * file additionally remembers its WAL so that a wal-index memory barrier flushes it. WAL files
 * own a buffer of LIMIT_WALBUF_BYTES holding one contiguous run of bytes not yet written.
 *
 * Ordering argument. SQLite reads WAL frames only through the wal-index: a frame becomes
 * visible to a reader when the writer publishes a new wal-index header, and it publishes it
 * behind an xShmBarrier() on the database file. With synchronous=FULL the writer also syncs the
 * WAL before it appends to the wal-index. Both the sync and the barrier flush the buffer here, so
 * no reader, in this process or another, can see a frame whose bytes are still in the buffer.
 * The writer itself reads the WAL through this file, and every read flushes first.
 */
#include "store/walbuf.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/limits.h"

struct wb_file {
    sqlite3_file base; /* must be first: SQLite hands us this pointer */
    sqlite3_file *real;
    bool is_wal;
    /* WAL files: the pending bytes, written at offset .. offset + len of the real file. */
    unsigned char *buf;
    size_t len;
    sqlite3_int64 offset;
    int sticky_rc; /* a flush that failed where no caller could be told; 0 when none */
    /* Main database file: its open WAL, if any; WAL file: the database it belongs to. */
    struct wb_file *peer;
};

static sqlite3_vfs *wb_root;
static sqlite3_vfs wb_vfs;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_register_rc;

static const sqlite3_io_methods wb_io_methods;

static struct wb_file *wb(sqlite3_file *file)
{
    return (struct wb_file *)file;
}

static const sqlite3_io_methods *wb_real_methods(struct wb_file *f)
{
    return f->real->pMethods;
}

/* Hands the buffered bytes to the real file in chunks; the buffer is empty afterwards. */
static int wb_flush(struct wb_file *f)
{
    if (f->len == 0) {
        return f->sticky_rc;
    }
    int rc = SQLITE_OK;
    size_t done = 0;
    while (done < f->len && rc == SQLITE_OK) {
        size_t chunk = f->len - done;
        if (chunk > LIMIT_WALBUF_CHUNK_BYTES) {
            chunk = LIMIT_WALBUF_CHUNK_BYTES;
        }
        rc = wb_real_methods(f)->xWrite(f->real, f->buf + done, (int)chunk,
                                        f->offset + (sqlite3_int64)done);
        done += chunk;
    }
    f->len = 0;
    return rc != SQLITE_OK ? rc : f->sticky_rc;
}

/* Flushes before an operation that must see every byte written so far. */
static int wb_settle(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    return f->is_wal ? wb_flush(f) : SQLITE_OK;
}

static int wb_close(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    int rc = wb_settle(file);
    if (f->peer != NULL) {
        f->peer->peer = NULL;
        f->peer = NULL;
    }
    int close_rc = wb_real_methods(f)->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : close_rc;
}

static int wb_read(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset)
{
    int rc = wb_settle(file);
    if (rc != SQLITE_OK) {
        return rc;
    }
    return wb_real_methods(wb(file))->xRead(wb(file)->real, out, amount, offset);
}

static int wb_write(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
    struct wb_file *f = wb(file);
    ASSERT(amount >= 0);
    size_t n = (size_t)amount;
    if (f->buf == NULL || n > LIMIT_WALBUF_BYTES) {
        int rc = wb_settle(file);
        return rc != SQLITE_OK ? rc : wb_real_methods(f)->xWrite(f->real, data, amount, offset);
    }
    if (f->len > 0 &&
        (offset != f->offset + (sqlite3_int64)f->len || f->len + n > LIMIT_WALBUF_BYTES)) {
        int rc = wb_flush(f);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    if (f->sticky_rc != SQLITE_OK) {
        return f->sticky_rc;
    }
    if (f->len == 0) {
        f->offset = offset;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    DEBUG_ASSERT(f->len <= LIMIT_WALBUF_BYTES);
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    int rc = wb_settle(file);
    return rc != SQLITE_OK ? rc : wb_real_methods(wb(file))->xTruncate(wb(file)->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
    int rc = wb_settle(file);
    return rc != SQLITE_OK ? rc : wb_real_methods(wb(file))->xSync(wb(file)->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size_out)
{
    int rc = wb_settle(file);
    return rc != SQLITE_OK ? rc : wb_real_methods(wb(file))->xFileSize(wb(file)->real, size_out);
}

static int wb_lock(sqlite3_file *file, int level)
{
    return wb_real_methods(wb(file))->xLock(wb(file)->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    return wb_real_methods(wb(file))->xUnlock(wb(file)->real, level);
}

static int wb_check_reserved_lock(sqlite3_file *file, int *out)
{
    return wb_real_methods(wb(file))->xCheckReservedLock(wb(file)->real, out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
    int rc = wb_settle(file);
    return rc != SQLITE_OK ? rc : wb_real_methods(wb(file))->xFileControl(wb(file)->real, op, arg);
}

static int wb_sector_size(sqlite3_file *file)
{
    return wb_real_methods(wb(file))->xSectorSize(wb(file)->real);
}

static int wb_device_characteristics(sqlite3_file *file)
{
    return wb_real_methods(wb(file))->xDeviceCharacteristics(wb(file)->real);
}

static int wb_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out)
{
    struct wb_file *f = wb(file);
    if (wb_real_methods(f)->iVersion < 2) {
        return SQLITE_IOERR_SHMMAP;
    }
    return wb_real_methods(f)->xShmMap(f->real, region, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct wb_file *f = wb(file);
    if (wb_real_methods(f)->iVersion < 2) {
        return SQLITE_IOERR_SHMLOCK;
    }
    return wb_real_methods(f)->xShmLock(f->real, offset, n, flags);
}

/* The writer publishes a wal-index header behind this barrier: its WAL must be on file first.
 * A failure cannot be returned from here, so it is kept and returned by the WAL's next call. */
static void wb_shm_barrier(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    if (f->peer != NULL && f->peer->is_wal) {
        int rc = wb_flush(f->peer);
        if (rc != SQLITE_OK && f->peer->sticky_rc == SQLITE_OK) {
            f->peer->sticky_rc = rc;
        }
    }
    if (wb_real_methods(f)->iVersion >= 2) {
        wb_real_methods(f)->xShmBarrier(f->real);
    }
}

static int wb_shm_unmap(sqlite3_file *file, int delete_flag)
{
    struct wb_file *f = wb(file);
    if (wb_real_methods(f)->iVersion < 2) {
        return SQLITE_OK;
    }
    return wb_real_methods(f)->xShmUnmap(f->real, delete_flag);
}

static int wb_fetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out)
{
    struct wb_file *f = wb(file);
    *out = NULL; /* "no mapping" is always a valid answer: SQLite then reads */
    int rc = wb_settle(file);
    if (rc != SQLITE_OK || wb_real_methods(f)->iVersion < 3) {
        return rc;
    }
    return wb_real_methods(f)->xFetch(f->real, offset, amount, out);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *page)
{
    struct wb_file *f = wb(file);
    if (wb_real_methods(f)->iVersion < 3) {
        return SQLITE_OK;
    }
    return wb_real_methods(f)->xUnfetch(f->real, offset, page);
}

static const sqlite3_io_methods wb_io_methods = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved_lock,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *flags_out)
{
    (void)vfs;
    struct wb_file *f = wb(file);
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = wb_root->xOpen(wb_root, name, f->real, flags, flags_out);
    if (f->real->pMethods == NULL) {
        f->base.pMethods = NULL; /* SQLite calls xClose only when pMethods is set */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->base.pMethods = &wb_io_methods;
    if (rc != SQLITE_OK || (flags & SQLITE_OPEN_WAL) == 0 || name == NULL) {
        return rc;
    }
    f->is_wal = true;
    f->buf = malloc(LIMIT_WALBUF_BYTES); /* without it, writes pass straight through */
    sqlite3_file *db = sqlite3_database_file_object(name);
    if (db != NULL && db->pMethods == &wb_io_methods) {
        f->peer = wb(db);
        wb(db)->peer = f;
    }
    return rc;
}

static void wb_register_once(void)
{
    wb_root = sqlite3_vfs_find(NULL);
    if (wb_root == NULL) {
        wb_register_rc = -EIO;
        return;
    }
    wb_vfs = *wb_root;
    wb_vfs.pNext = NULL;
    wb_vfs.zName = STORE_WALBUF_VFS_NAME;
    wb_vfs.szOsFile = (int)sizeof(struct wb_file) + wb_root->szOsFile;
    wb_vfs.xOpen = wb_open;
    wb_register_rc = sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK ? 0 : -EIO;
}

int store_walbuf_register(void)
{
    pthread_once(&wb_once, wb_register_once);
    return wb_register_rc;
}
