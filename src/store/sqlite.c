/*
 * sqlite.c — the SQLite backend: one writer connection, used only by the commit worker, and one
 * read-only connection per reading thread, all on the same database file in WAL mode.
 *
 * WAL lets readers run beside the writer, each statement on its own consistent snapshot, so a
 * list page never mixes two commits. Every statement on the hot path comes from the table
 * below, is prepared once per connection (on first use, as the schema may not exist at open)
 * and is reset and reused afterwards. Amounts are 16-byte big-endian blobs; metadata is TEXT,
 * NULL when absent.
 *
 * A thread's read connection lives until store_close: readers belong to long-lived pool
 * threads, and closing them from a thread-exit hook could race with store_close.
 *
 * A third kind, the administrative writer, is one more read-write connection behind a mutex,
 * opened on first use, for writes that do not come from the commit worker (API keys, audit
 * records of the command line). Audit records are linked to the tail read in the appending
 * transaction, whichever connection (or process) appends: BEGIN IMMEDIATE takes the database's
 * write lock first, so two appends can never read the same tail.
 *
 * Errors: SQLITE_BUSY / SQLITE_LOCKED become -EBUSY, every other failure -EIO; the SQLite
 * message is logged once, where the failure happened.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "core/u128.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "store/store_internal.h"
#include "store/walbuf.h"

/* How long a connection waits for a lock held by another connection before -EBUSY. */
#define SQLITE_BUSY_TIMEOUT_MS 5000

/* ---------------------------------------------------------------------------------------
 * The statement table: every statement a connection may run, prepared once per connection.
 * ------------------------------------------------------------------------------------- */
enum sq_stmt {
    SQ_PING,
    SQ_ACCOUNT_GET,
    SQ_TRANSFER_GET,
    SQ_ACCOUNTS_PAGE,
    SQ_ACCOUNTS_PAGE_LEDGER,
    SQ_ACCOUNT_TRANSFERS_PAGE,
    SQ_IDEM_GET,
    SQ_BEGIN,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_DUE_PENDINGS,
    SQ_NEXT_DEADLINE,
    SQ_ACCOUNT_INSERT,
    SQ_ACCOUNT_UPDATE,
    SQ_TRANSFER_INSERT,
    SQ_PENDING_INSERT,
    SQ_PENDING_UPDATE,
    SQ_IDEM_PUT,
    SQ_IDEM_PURGE,
    SQ_AUDIT_TAIL,
    SQ_AUDIT_INSERT,
    SQ_AUDIT_PAGE,
    SQ_AUDIT_CHECKPOINTS,
    SQ_AUDIT_TRAIL,
    SQ_AUDIT_CHECKPOINT_LAST,
    SQ_AUDIT_CHECKPOINT_INSERT,
    SQ_APIKEY_INSERT,
    SQ_APIKEY_GET,
    SQ_APIKEY_LIST,
    SQ_APIKEY_REVOKE,
    SQ_COUNT
};

/* Column lists shared by the statements that build struct ledger_account / ledger_transfer;
 * row_account() and row_transfer() read them in this order. */
#define SQ_ACCOUNT_COLS                                                                            \
    "seq, id, ledger, code, flags, metadata, debits_pending, debits_posted, credits_pending, "     \
    "credits_posted, created_at_ms"
#define SQ_TRANSFER_COLS                                                                           \
    "t.seq, t.id, t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code, "           \
    "t.flags, t.pending_id, t.timeout_seconds, t.metadata, t.created_at_ms, p.state, "             \
    "p.expires_at_ms"
#define SQ_TRANSFER_FROM " FROM transfers t LEFT JOIN pending_transfers p ON p.transfer_id = t.id"
/* sq_row_audit() reads these from a given first column, sq_row_apikey() these. */
#define SQ_AUDIT_COLS                                                                              \
    "seq, time_unix_ms, actor, action, resource, decision, reason, request_id, trace_id, "         \
    "source, prev_hash, hash"
#define SQ_AUDIT_COLS_COUNT 12
#define SQ_APIKEY_COLS "id, name, scopes, hash, created_at_ms, created_by, revoked_at_ms"

static const char *const sq_sql[SQ_COUNT] = {
    [SQ_PING] = "SELECT 1",
    [SQ_ACCOUNT_GET] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE id = ?1",
    [SQ_TRANSFER_GET] = "SELECT " SQ_TRANSFER_COLS SQ_TRANSFER_FROM " WHERE t.id = ?1",
    [SQ_ACCOUNTS_PAGE] =
        "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [SQ_ACCOUNTS_PAGE_LEDGER] =
        "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE ledger = ?3 AND seq > ?1"
        " ORDER BY seq LIMIT ?2",
    /* Each side walks its own index (debit, seq) / (credit, seq) and stops after limit rows;
     * the union of both is cut to limit again. */
    [SQ_ACCOUNT_TRANSFERS_PAGE] =
        "WITH s(seq) AS ("
        " SELECT seq FROM (SELECT seq FROM transfers WHERE debit_account_id = ?3 AND seq > ?1"
        "  ORDER BY seq LIMIT ?2)"
        " UNION"
        " SELECT seq FROM (SELECT seq FROM transfers WHERE credit_account_id = ?3 AND seq > ?1"
        "  ORDER BY seq LIMIT ?2)"
        " ORDER BY seq LIMIT ?2)"
        " SELECT " SQ_TRANSFER_COLS " FROM s JOIN transfers t ON t.seq = s.seq"
        " LEFT JOIN pending_transfers p ON p.transfer_id = t.id ORDER BY t.seq",
    [SQ_IDEM_GET] = "SELECT request_digest, status, location, body, expires_at_ms"
                    " FROM idempotency_keys WHERE principal = ?1 AND key = ?2"
                    " AND expires_at_ms > ?3",
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_DUE_PENDINGS] = "SELECT transfer_id FROM pending_transfers WHERE state = 1"
                        " AND expires_at_ms > 0 AND expires_at_ms <= ?1"
                        " ORDER BY expires_at_ms LIMIT ?2",
    [SQ_NEXT_DEADLINE] = "SELECT min(expires_at_ms) FROM pending_transfers WHERE state = 1"
                         " AND expires_at_ms > 0",
    [SQ_ACCOUNT_INSERT] = "INSERT INTO accounts (id, ledger, code, flags, metadata,"
                          " debits_pending, debits_posted, credits_pending, credits_posted,"
                          " created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [SQ_ACCOUNT_UPDATE] = "UPDATE accounts SET debits_pending = ?2, debits_posted = ?3,"
                          " credits_pending = ?4, credits_posted = ?5 WHERE id = ?1",
    [SQ_TRANSFER_INSERT] = "INSERT INTO transfers (id, debit_account_id, credit_account_id,"
                           " amount, ledger, code, flags, pending_id, timeout_seconds,"
                           " metadata, created_at_ms)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [SQ_PENDING_INSERT] = "INSERT INTO pending_transfers (transfer_id, state, expires_at_ms)"
                          " VALUES (?1, ?2, ?3)",
    [SQ_PENDING_UPDATE] = "UPDATE pending_transfers SET state = ?2 WHERE transfer_id = ?1",
    [SQ_IDEM_PUT] = "INSERT OR REPLACE INTO idempotency_keys (principal, key, request_digest,"
                    " status, location, body, created_at_ms, expires_at_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [SQ_IDEM_PURGE] = "DELETE FROM idempotency_keys WHERE (principal, key) IN"
                      " (SELECT principal, key FROM idempotency_keys WHERE expires_at_ms <= ?1"
                      " ORDER BY expires_at_ms LIMIT ?2)",
    [SQ_AUDIT_TAIL] = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
    [SQ_AUDIT_INSERT] = "INSERT INTO audit_records (" SQ_AUDIT_COLS ")"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [SQ_AUDIT_PAGE] =
        "SELECT " SQ_AUDIT_COLS " FROM audit_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [SQ_AUDIT_CHECKPOINTS] = "SELECT seq, time_unix_ms, key_id, hash, signature"
                             " FROM audit_checkpoints WHERE seq > ?1 ORDER BY seq",
    /* One statement, so one snapshot: a checkpoint can never be read without its record. Both
     * sides come in seq order from their primary keys and SQLite merges them, without a sort.
     * A checkpoint row has kind 1 and, in the record's columns, seq, time_unix_ms, key_id (as
     * actor), hash, and its signature in the last column. */
    [SQ_AUDIT_TRAIL] = "SELECT 0 AS kind, " SQ_AUDIT_COLS ", NULL AS signature"
                       " FROM audit_records WHERE seq > ?1"
                       " UNION ALL"
                       " SELECT 1, seq, time_unix_ms, key_id, NULL, NULL, NULL, NULL, NULL, NULL,"
                       " NULL, NULL, hash, signature FROM audit_checkpoints WHERE seq > ?1"
                       " ORDER BY seq, kind",
    [SQ_AUDIT_CHECKPOINT_LAST] = "SELECT seq, time_unix_ms FROM audit_checkpoints"
                                 " ORDER BY seq DESC LIMIT 1",
    [SQ_AUDIT_CHECKPOINT_INSERT] = "INSERT INTO audit_checkpoints (seq, time_unix_ms, key_id,"
                                   " hash, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
    [SQ_APIKEY_INSERT] = "INSERT INTO api_keys (" SQ_APIKEY_COLS ")"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
    [SQ_APIKEY_GET] = "SELECT " SQ_APIKEY_COLS " FROM api_keys WHERE id = ?1",
    [SQ_APIKEY_LIST] = "SELECT " SQ_APIKEY_COLS " FROM api_keys ORDER BY created_at_ms, id",
    [SQ_APIKEY_REVOKE] = "UPDATE api_keys SET revoked_at_ms = ?2"
                         " WHERE id = ?1 AND revoked_at_ms IS NULL",
};

/* The table that records migrations; created by the first migration run, not by a migration
 * (and completed there when an older ledgerd created it without duration_ms and applied_by). */
static const char sq_bootstrap_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version INTEGER PRIMARY KEY,"
                                       " name TEXT NOT NULL,"
                                       " checksum TEXT NOT NULL,"
                                       " applied_at_ms INTEGER NOT NULL,"
                                       " duration_ms INTEGER,"
                                       " applied_by TEXT)";

/* How long a migration waits for another process's migration (or write) to finish. */
#define SQ_MIGRATE_LOCK_WAIT_MS 120000

/* One connection and its prepared statements. */
struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[SQ_COUNT];
    struct sq_conn *next; /* in sq_store.readers */
};

/* WAL checkpoints run on their own thread and connection, so the commit worker never copies
 * pages into the database file or waits for its fsync: after a commit leaves at least
 * SQ_CHECKPOINT_PAGES frames in the WAL, the checkpointer runs a PASSIVE checkpoint (which
 * blocks neither readers nor the writer). Should it fall behind by SQ_WAL_PAGES_MAX frames,
 * the writer checkpoints itself, as SQLite's default would, which bounds the WAL's size. */
#define SQ_CHECKPOINT_PAGES 1000
#define SQ_WAL_PAGES_MAX 100000
#define SQ_CHECKPOINT_IDLE_MS 1000
/* The checkpointer's nice value (see sq_checkpointer_main). */
#define SQ_CHECKPOINT_NICE 10
/* The writer's page cache: the hot accounts and index pages of a busy ledger stay in memory
 * (SQLite's default is 2 MiB). Negative means KiB. */
#define SQ_WRITER_CACHE_KIB 65536

struct sq_checkpointer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool due;
    bool stop;
    struct sq_conn conn;
};

struct sq_store {
    char path[PATH_MAX];
    struct sq_checkpointer ckpt;
    struct sq_conn writer;    /* the commit worker's */
    pthread_key_t reader_key; /* this thread's struct sq_conn * */
    pthread_mutex_t readers_lock;
    struct sq_conn *readers; /* every reader opened, for close */
    pthread_mutex_t admin_lock;
    struct sq_conn admin; /* the administrative writer; db NULL until first used */
};

/* ---------------------------------------------------------------------------------------
 * Connections, statements and errors.
 * ------------------------------------------------------------------------------------- */

/* Logs the connection's last error once and maps rc to the store's error codes. */
static int sq_fail(struct sq_conn *c, int rc, const char *what)
{
    log_msgf(CONFIG_LOG_ERROR, NULL, "store: sqlite: %s: %s (%d)", what, sqlite3_errmsg(c->db), rc);
    int primary = rc & 0xff;
    return (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) ? -EBUSY : -EIO;
}

/* Rows that do not fit the domain (a corrupt or foreign database) are storage errors. */
static int sq_corrupt(const char *what)
{
    log_msgf(CONFIG_LOG_ERROR, NULL, "store: sqlite: malformed row: %s", what);
    return -EIO;
}

/* The connection's prepared statement id, prepared on first use. The statement must not be in
 * use (a read callback must not re-enter the same read). */
static int sq_stmt(struct sq_conn *c, enum sq_stmt id, sqlite3_stmt **out)
{
    ASSERT(id < SQ_COUNT);
    if (c->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(c->db, sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id],
                                    NULL);
        if (rc != SQLITE_OK) {
            c->stmts[id] = NULL;
            return sq_fail(c, rc, "prepare");
        }
    }
    ASSERT(!sqlite3_stmt_busy(c->stmts[id]));
    *out = c->stmts[id];
    return 0;
}

/* Finalizes every statement and closes the connection. */
static void sq_conn_close(struct sq_conn *c)
{
    for (size_t i = 0; i < SQ_COUNT; i++) {
        if (c->stmts[i] != NULL) {
            sqlite3_finalize(c->stmts[i]);
            c->stmts[i] = NULL;
        }
    }
    if (c->db != NULL) {
        int rc = sqlite3_close(c->db);
        ASSERT(rc == SQLITE_OK); /* every statement is finalized above */
        c->db = NULL;
    }
}

/* Runs SQL without rows (PRAGMAs, bootstrap). */
static int sq_exec(struct sq_conn *c, const char *sql, const char *what)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(c, rc, what);
}

/* Steps a statement that returns no rows, then resets it. */
static int sq_step_done(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : sq_fail(c, rc, what);
    sqlite3_reset(st);
    return ret;
}

/* Process-wide SQLite settings, made once before SQLite initializes. Without memory statistics
 * every allocation SQLite makes takes a global mutex (5 % of the commit worker's time in a batch
 * profile); ledgerd does not read those statistics. Should SQLite already be initialized (a
 * program that used it before opening a store), the call fails harmlessly and the default
 * stays. */
static pthread_once_t sq_config_once = PTHREAD_ONCE_INIT;

static void sq_config(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Opens a connection; vfs NULL is SQLite's default. */
static int sq_open_conn(struct sq_conn *c, const char *path, int flags, const char *vfs,
                        struct buf *err)
{
    memset(c, 0, sizeof(*c));
    int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
        if (err != NULL) {
            (void)buf_appendf(err, "cannot open %s: %s", path,
                              c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        }
        int ret = c->db != NULL ? sq_fail(c, rc, "open") : -EIO;
        sqlite3_close(c->db);
        c->db = NULL;
        return ret;
    }
    sqlite3_busy_timeout(c->db, SQLITE_BUSY_TIMEOUT_MS);
    return 0;
}

/* This thread's read connection, opened read-only on first use and registered for close. */
static int sq_reader(struct sq_store *s, struct sq_conn **out)
{
    struct sq_conn *c = pthread_getspecific(s->reader_key);
    if (c != NULL) {
        /* The thread's own connection: acquired without waiting. */
        metrics_observe(METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, 0);
        *out = c;
        return 0;
    }
    int64_t open_start_ns = clock_mono_ns();
    c = malloc(sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    int rc = sq_open_conn(c, s->path, SQLITE_OPEN_READONLY, NULL, NULL);
    if (rc != 0) {
        goto out_free;
    }
    rc = sq_exec(c, "PRAGMA query_only = ON", "reader setup");
    if (rc != 0) {
        goto out_close;
    }
    if (pthread_setspecific(s->reader_key, c) != 0) {
        rc = -ENOMEM;
        goto out_close;
    }
    pthread_mutex_lock(&s->readers_lock);
    c->next = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->readers_lock);
    metrics_gauge_add(METRIC_DB_POOL_SIZE, METRICS_DB_READER, 1);
    metrics_gauge_add(METRIC_DB_POOL_MAX, METRICS_DB_READER, 1); /* never waits: max = open */
    int64_t waited = clock_mono_ns() - open_start_ns;
    metrics_observe(METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, waited > 0 ? (uint64_t)waited : 0);
    *out = c;
    return 0;

out_close:
    sq_conn_close(c);
out_free:
    free(c);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Binding and reading columns.
 * ------------------------------------------------------------------------------------- */

static int sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* "" binds NULL (optional text such as pending_id). */
static int sq_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    return s[0] == '\0' ? sqlite3_bind_null(st, i) : sq_bind_text(st, i, s);
}

static int sq_bind_metadata(sqlite3_stmt *st, int i, struct ledger_text m)
{
    if (m.len == 0) {
        return sqlite3_bind_null(st, i);
    }
    ASSERT(m.ptr != NULL && m.len <= LIMIT_METADATA_BYTES_MAX);
    return sqlite3_bind_text(st, i, m.ptr, (int)m.len, SQLITE_TRANSIENT);
}

static int sq_bind_u128(sqlite3_stmt *st, int i, u128 v)
{
    uint8_t be[U128_BYTES];
    u128_to_be(v, be);
    return sqlite3_bind_blob(st, i, be, U128_BYTES, SQLITE_TRANSIENT);
}

/* Copies a TEXT column into out (size bytes); NULL reads as "". */
static int sq_col_text(sqlite3_stmt *st, int col, char *out, size_t size)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (p == NULL) {
        out[0] = '\0';
        return 0;
    }
    if (len >= size) {
        return sq_corrupt("text column too long");
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

static int sq_col_u128(sqlite3_stmt *st, int col, u128 *out)
{
    const void *p = sqlite3_column_blob(st, col);
    if (p == NULL || sqlite3_column_bytes(st, col) != U128_BYTES) {
        return sq_corrupt("amount is not 16 bytes");
    }
    *out = u128_from_be(p);
    return 0;
}

static int sq_col_uint(sqlite3_stmt *st, int col, int64_t max, uint32_t *out)
{
    int64_t v = sqlite3_column_int64(st, col);
    if (v < 0 || v > max) {
        return sq_corrupt("integer out of range");
    }
    *out = (uint32_t)v;
    return 0;
}

static struct ledger_text sq_col_metadata(sqlite3_stmt *st, int col)
{
    struct ledger_text m = {NULL, 0};
    const unsigned char *p = sqlite3_column_text(st, col);
    if (p != NULL) {
        m.ptr = (const char *)p;
        m.len = (size_t)sqlite3_column_bytes(st, col);
    }
    return m;
}

/* Builds an account from a row of SQ_ACCOUNT_COLS; metadata points into the row. */
static int sq_row_account(sqlite3_stmt *st, struct ledger_account *a, uint64_t *seq)
{
    memset(a, 0, sizeof(*a));
    *seq = (uint64_t)sqlite3_column_int64(st, 0);
    uint32_t code = 0;
    int rc = sq_col_text(st, 1, a->id, sizeof(a->id));
    if (rc == 0) {
        rc = sq_col_text(st, 2, a->ledger, sizeof(a->ledger));
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 3, UINT16_MAX, &code);
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 4, UINT32_MAX, &a->flags);
    }
    if (rc == 0) {
        rc = sq_col_u128(st, 6, &a->debits_pending);
    }
    if (rc == 0) {
        rc = sq_col_u128(st, 7, &a->debits_posted);
    }
    if (rc == 0) {
        rc = sq_col_u128(st, 8, &a->credits_pending);
    }
    if (rc == 0) {
        rc = sq_col_u128(st, 9, &a->credits_posted);
    }
    a->code = (uint16_t)code;
    a->metadata = sq_col_metadata(st, 5);
    a->created_at_ms = sqlite3_column_int64(st, 10);
    return rc;
}

/* Builds a transfer from a row of SQ_TRANSFER_COLS (pending state from the LEFT JOIN). */
static int sq_row_transfer(sqlite3_stmt *st, struct ledger_transfer *t, uint64_t *seq)
{
    memset(t, 0, sizeof(*t));
    *seq = (uint64_t)sqlite3_column_int64(st, 0);
    uint32_t code = 0;
    uint32_t state = 0;
    int rc = sq_col_text(st, 1, t->id, sizeof(t->id));
    if (rc == 0) {
        rc = sq_col_text(st, 2, t->debit_account_id, sizeof(t->debit_account_id));
    }
    if (rc == 0) {
        rc = sq_col_text(st, 3, t->credit_account_id, sizeof(t->credit_account_id));
    }
    if (rc == 0) {
        rc = sq_col_u128(st, 4, &t->amount);
    }
    if (rc == 0) {
        rc = sq_col_text(st, 5, t->ledger, sizeof(t->ledger));
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 6, UINT16_MAX, &code);
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 7, UINT32_MAX, &t->flags);
    }
    if (rc == 0) {
        rc = sq_col_text(st, 8, t->pending_id, sizeof(t->pending_id));
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 9, UINT32_MAX, &t->timeout_seconds);
    }
    if (rc == 0 && sqlite3_column_type(st, 12) != SQLITE_NULL) {
        rc = sq_col_uint(st, 12, LEDGER_PENDING_EXPIRED, &state);
    }
    t->code = (uint16_t)code;
    t->metadata = sq_col_metadata(st, 10);
    t->created_at_ms = sqlite3_column_int64(st, 11);
    t->pending_state = (enum ledger_pending_state)state;
    t->expires_at_ms = sqlite3_column_int64(st, 13); /* 0 for NULL */
    t->present = LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID |
                 LEDGER_FIELD_AMOUNT | LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Open and close.
 * ------------------------------------------------------------------------------------- */

/* mkdir -p of the directory part of path (mode 0750). */
static int sq_mkdir_parents(const char *path, struct buf *err)
{
    char dir[PATH_MAX];
    size_t len = strlen(path);
    ASSERT(len < sizeof(dir));
    memcpy(dir, path, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (dir[i] != '/') {
            continue;
        }
        dir[i] = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            int e = errno;
            (void)buf_appendf(err, "cannot create directory %s: %s", dir, strerror(e));
            return -e;
        }
        dir[i] = '/';
    }
    return 0;
}

/* Reads back a PRAGMA's single value and checks it (journal_mode can silently refuse WAL). */
static int sq_pragma_expect(struct sq_conn *c, const char *sql, const char *want, struct buf *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        (void)buf_appendf(err, "%s: %s", sql, sqlite3_errmsg(c->db));
        return sq_fail(c, rc, sql);
    }
    int ret = 0;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        (void)buf_appendf(err, "%s: %s", sql, sqlite3_errmsg(c->db));
        ret = sq_fail(c, rc, sql);
    } else {
        const unsigned char *v = sqlite3_column_text(st, 0);
        if (v == NULL || strcmp((const char *)v, want) != 0) {
            (void)buf_appendf(err, "%s: got %s, want %s", sql, v != NULL ? (const char *)v : "",
                              want);
            ret = -EIO;
        }
    }
    sqlite3_finalize(st);
    return ret;
}

/* Switches a connection to WAL. A new database file switches once, under an exclusive lock for
 * which SQLite does not wait (its busy handler is not called there): a second process opening
 * the same new file at that moment (two `ledgerd migrate up` at once) gets SQLITE_BUSY at once,
 * so it is retried here for as long as any other lock is waited for. */
static int sq_journal_wal(struct sq_conn *c, struct buf *err)
{
    size_t mark = err->len;
    int64_t deadline_ms = clock_mono_ns() / 1000000 + SQLITE_BUSY_TIMEOUT_MS;
    for (;;) {
        int rc = sq_pragma_expect(c, "PRAGMA journal_mode = WAL", "wal", err);
        if (rc != -EBUSY || clock_mono_ns() / 1000000 >= deadline_ms) {
            return rc;
        }
        err->len = mark; /* not an error yet */
        if (err->data != NULL) {
            err->data[mark] = '\0';
        }
        struct timespec pause = {0, 10000000L}; /* 10 ms */
        (void)nanosleep(&pause, NULL);
    }
}

static void *sq_checkpointer_main(void *arg)
{
    struct sq_store *s = arg;
    struct sq_checkpointer *k = &s->ckpt;
    (void)pthread_setname_np(pthread_self(), "ledgerd-ckpt");
    /* Background work: on a busy core the commit worker and the I/O threads go first. Raising
     * a thread's own nice value needs no privilege. Should the checkpointer fall far behind,
     * the writer checkpoints itself (sq_wal_hook), so the WAL stays bounded. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), SQ_CHECKPOINT_NICE) != 0) {
        log_msgf(CONFIG_LOG_WARN, NULL, "checkpointer: cannot lower its priority: %s",
                 strerror(errno));
    }
    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        if (!k->due) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += SQ_CHECKPOINT_IDLE_MS / 1000;
            (void)pthread_cond_timedwait(&k->wake, &k->lock, &until);
        }
        k->due = false;
        if (k->stop) {
            break;
        }
        pthread_mutex_unlock(&k->lock);
        int wal_pages = 0;
        int copied_pages = 0;
        int rc = sqlite3_wal_checkpoint_v2(k->conn.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_pages,
                                           &copied_pages);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
            (void)sq_fail(&k->conn, rc, "checkpoint");
        }
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Runs on the writer after every commit (sqlite3_wal_hook). */
static int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int wal_pages)
{
    struct sq_store *s = arg;
    if (wal_pages >= SQ_WAL_PAGES_MAX) {
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (wal_pages >= SQ_CHECKPOINT_PAGES) {
        pthread_mutex_lock(&s->ckpt.lock);
        s->ckpt.due = true;
        pthread_cond_signal(&s->ckpt.wake);
        pthread_mutex_unlock(&s->ckpt.lock);
    }
    return SQLITE_OK;
}

static int sq_checkpointer_start(struct sq_store *s, struct buf *err)
{
    struct sq_checkpointer *k = &s->ckpt;
    int rc = sq_open_conn(&k->conn, s->path, SQLITE_OPEN_READWRITE, NULL, err);
    if (rc != 0) {
        return rc;
    }
    rc = sq_exec(&k->conn, "PRAGMA synchronous = FULL", "checkpointer setup");
    if (rc != 0) {
        sq_conn_close(&k->conn);
        return rc;
    }
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->wake, NULL);
    k->due = false;
    k->stop = false;
    if (pthread_create(&k->thread, NULL, sq_checkpointer_main, s) != 0) {
        (void)buf_append_str(err, "cannot start the checkpoint thread");
        pthread_cond_destroy(&k->wake);
        pthread_mutex_destroy(&k->lock);
        sq_conn_close(&k->conn);
        return -ENOMEM;
    }
    sqlite3_wal_hook(s->writer.db, sq_wal_hook, s);
    return 0;
}

static void sq_checkpointer_stop(struct sq_store *s)
{
    struct sq_checkpointer *k = &s->ckpt;
    sqlite3_wal_hook(s->writer.db, NULL, NULL);
    pthread_mutex_lock(&k->lock);
    k->stop = true;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->lock);
    sq_conn_close(&k->conn);
}

static int sq_open(const char *location, const struct store_options *opts, void **be_out,
                   struct buf *err)
{
    (void)opts; /* one file, no pool */
    size_t len = strlen(location);
    if (len == 0 || location[len - 1] == '/') {
        (void)buf_append_str(err, "database URL names no file (sqlite:///abs/path.db)");
        return -EINVAL;
    }
    if (len >= PATH_MAX) {
        (void)buf_append_str(err, "database path is too long");
        return -EINVAL;
    }
    struct sq_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        (void)buf_append_str(err, "out of memory");
        return -ENOMEM;
    }
    memcpy(s->path, location, len + 1);

    int rc = sq_mkdir_parents(s->path, err);
    if (rc != 0) {
        goto out_free;
    }
    pthread_once(&sq_config_once, sq_config);
    /* Only the writer appends to the WAL, so only it needs the coalescing VFS (walbuf.h). */
    rc = store_walbuf_register();
    if (rc != 0) {
        (void)buf_append_str(err, "cannot register the WAL write VFS");
        goto out_free;
    }
    rc = sq_open_conn(&s->writer, s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      STORE_WALBUF_VFS_NAME, err);
    if (rc != 0) {
        goto out_free;
    }
    rc = sq_journal_wal(&s->writer, err);
    if (rc != 0) {
        goto out_close;
    }
    char pragmas[160];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
             "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -%d",
             SQ_WRITER_CACHE_KIB);
    rc = sq_exec(&s->writer, pragmas, "writer setup");
    if (rc != 0) {
        (void)buf_appendf(err, "cannot prepare %s: %s", s->path, sqlite3_errmsg(s->writer.db));
        goto out_close;
    }
    rc = sq_checkpointer_start(s, err);
    if (rc != 0) {
        goto out_close;
    }
    if (pthread_key_create(&s->reader_key, NULL) != 0) {
        (void)buf_append_str(err, "out of thread-specific keys");
        rc = -ENOMEM;
        goto out_stop_checkpointer;
    }
    pthread_mutex_init(&s->readers_lock, NULL);
    pthread_mutex_init(&s->admin_lock, NULL);
    metrics_gauge_add(METRIC_DB_POOL_SIZE, METRICS_DB_WRITER, 1);
    metrics_gauge_add(METRIC_DB_POOL_MAX, METRICS_DB_WRITER, 1); /* never waits: max = open */
    *be_out = s;
    return 0;

out_stop_checkpointer:
    sq_checkpointer_stop(s);
out_close:
    sq_conn_close(&s->writer);
out_free:
    free(s);
    return rc;
}

static void sq_close(void *be)
{
    struct sq_store *s = be;
    pthread_mutex_lock(&s->readers_lock);
    struct sq_conn *c = s->readers;
    s->readers = NULL;
    pthread_mutex_unlock(&s->readers_lock);
    while (c != NULL) {
        struct sq_conn *next = c->next;
        sq_conn_close(c);
        free(c);
        metrics_gauge_add(METRIC_DB_POOL_SIZE, METRICS_DB_READER, -1);
        metrics_gauge_add(METRIC_DB_POOL_MAX, METRICS_DB_READER, -1);
        c = next;
    }
    sq_conn_close(&s->admin);
    pthread_mutex_destroy(&s->admin_lock);
    sq_checkpointer_stop(s);
    /* Closing the last connection checkpoints the WAL into the database file. */
    sq_conn_close(&s->writer);
    metrics_gauge_add(METRIC_DB_POOL_SIZE, METRICS_DB_WRITER, -1);
    metrics_gauge_add(METRIC_DB_POOL_MAX, METRICS_DB_WRITER, -1); /* never waits: max = open */
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->readers_lock);
    free(s);
}

/* ---------------------------------------------------------------------------------------
 * Migrations.
 * ------------------------------------------------------------------------------------- */

/* Whether table exists on connection c. */
static int sq_table_exists(struct sq_conn *c, const char *table, bool *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        c->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sq_fail(c, rc, "look for a table");
    }
    sq_bind_text(st, 1, table);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return sq_fail(c, step, "look for a table");
    }
    *out = step == SQLITE_ROW;
    return 0;
}

/* Whether schema_migrations has the columns added after its first version. */
static int sq_migrations_complete(struct sq_conn *c, bool *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT count(*) FROM pragma_table_info('schema_migrations')"
                                " WHERE name IN ('duration_ms', 'applied_by')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sq_fail(c, rc, "read schema_migrations columns");
    }
    int step = sqlite3_step(st);
    *out = step == SQLITE_ROW && sqlite3_column_int(st, 0) == 2;
    sqlite3_finalize(st);
    return step == SQLITE_ROW ? 0 : sq_fail(c, step, "read schema_migrations columns");
}

static void sq_copy_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static int sq_mig_rows_on(struct sq_conn *c, struct store_migration_row **rows_out, size_t *n_out)
{
    *rows_out = NULL;
    *n_out = 0;
    bool exists = false;
    int rc = sq_table_exists(c, "schema_migrations", &exists);
    if (rc != 0 || !exists) {
        return rc;
    }
    bool complete = false;
    rc = sq_migrations_complete(c, &complete);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db,
                            complete ? "SELECT version, name, checksum, applied_at_ms, duration_ms,"
                                       " applied_by FROM schema_migrations ORDER BY version"
                                     : "SELECT version, name, checksum, applied_at_ms, NULL, NULL"
                                       " FROM schema_migrations ORDER BY version",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sq_fail(c, rc, "read schema_migrations");
    }
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t version = sqlite3_column_int64(st, 0);
        if (version < 0 || version > UINT32_MAX || n >= LIMIT_MIGRATION_FILES_MAX) {
            rc = sq_corrupt("schema_migrations version");
            goto out;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 16 : 2 * cap;
            struct store_migration_row *grown = realloc(rows, ncap * sizeof(*rows));
            if (grown == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            rows = grown;
            cap = ncap;
        }
        struct store_migration_row *r = &rows[n++];
        memset(r, 0, sizeof(*r));
        r->version = (uint32_t)version;
        sq_copy_text(st, 1, r->name, sizeof(r->name));
        sq_copy_text(st, 2, r->checksum, sizeof(r->checksum));
        r->applied_at_ms = sqlite3_column_int64(st, 3);
        r->duration_ms =
            sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
        sq_copy_text(st, 5, r->applied_by, sizeof(r->applied_by));
    }
    if (step != SQLITE_DONE) {
        rc = sq_fail(c, step, "read schema_migrations");
    }
out:
    sqlite3_finalize(st);
    if (rc != 0) {
        free(rows);
        return rc;
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
}

static int sq_mig_rows(void *be, void *mtx, struct store_migration_row **rows, size_t *n)
{
    struct sq_conn *c = mtx;
    if (c == NULL) {
        int rc = sq_reader(be, &c);
        if (rc != 0) {
            return rc;
        }
    }
    return sq_mig_rows_on(c, rows, n);
}

/* The migration lock is the database's write lock: BEGIN IMMEDIATE, waiting for another
 * process's migration as long as SQ_MIGRATE_LOCK_WAIT_MS. */
static int sq_mig_begin(void *be, bool transaction, void **mtx, struct buf *err)
{
    struct sq_store *s = be;
    struct sq_conn *c = &s->writer;
    ASSERT(transaction); /* store_migrate refuses no-transaction files on SQLite */
    int64_t deadline_ms = clock_unix_ms() + SQ_MIGRATE_LOCK_WAIT_MS;
    int src;
    while ((src = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
        if ((src & 0xff) != SQLITE_BUSY || clock_unix_ms() >= deadline_ms) {
            (void)buf_appendf(err, "cannot take the migration lock: %s", sqlite3_errmsg(c->db));
            return sq_fail(c, src, "begin migration");
        }
    }
    int rc = sq_exec(c, sq_bootstrap_sql, "create schema_migrations");
    bool complete = false;
    if (rc == 0) {
        rc = sq_migrations_complete(c, &complete);
    }
    if (rc == 0 && !complete) {
        rc = sq_exec(c,
                     "ALTER TABLE schema_migrations ADD COLUMN duration_ms INTEGER;"
                     " ALTER TABLE schema_migrations ADD COLUMN applied_by TEXT",
                     "complete schema_migrations");
    }
    if (rc != 0) {
        (void)buf_appendf(err, "cannot prepare schema_migrations: %s", sqlite3_errmsg(c->db));
        (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    *mtx = c;
    return 0;
}

static int sq_mig_exec(void *mtx, const char *sql, struct buf *err)
{
    struct sq_conn *c = mtx;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        (void)buf_append_str(err, sqlite3_errmsg(c->db));
        return sq_fail(c, rc, "migration");
    }
    return 0;
}

static int sq_audit_append_on(struct sq_conn *c, struct audit_record *r);

static int sq_mig_record(void *mtx, const struct store_migration_row *row, struct buf *err)
{
    struct sq_conn *c = mtx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "INSERT INTO schema_migrations (version, name, checksum,"
                                " applied_at_ms, duration_ms, applied_by)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        (void)buf_appendf(err, "cannot record the migration: %s", sqlite3_errmsg(c->db));
        return sq_fail(c, rc, "record migration");
    }
    sqlite3_bind_int64(st, 1, row->version);
    sq_bind_text(st, 2, row->name);
    sq_bind_text(st, 3, row->checksum);
    sqlite3_bind_int64(st, 4, row->applied_at_ms);
    sqlite3_bind_int64(st, 5, row->duration_ms);
    sq_bind_text(st, 6, row->applied_by);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        (void)buf_appendf(err, "cannot record the migration: %s", sqlite3_errmsg(c->db));
        return sq_fail(c, step, "record migration");
    }
    /* Once the trail exists (the migration may just have made it), its audit record. */
    bool trail = false;
    rc = sq_table_exists(c, "audit_records", &trail);
    if (rc != 0 || !trail) {
        return rc;
    }
    struct audit_record r;
    rc = store_migration_audit_record(row, &r);
    if (rc != 0) {
        (void)buf_append_str(err, "the actor is not valid in an audit record");
        return rc;
    }
    rc = sq_audit_append_on(c, &r);
    if (rc != 0) {
        (void)buf_appendf(err, "cannot append the audit record: %s", sqlite3_errmsg(c->db));
    }
    return rc;
}

static int sq_mig_end(void *mtx, bool commit, struct buf *err)
{
    struct sq_conn *c = mtx;
    int rc = 0;
    if (commit) {
        rc = sq_exec(c, "COMMIT", "commit migration");
        if (rc != 0) {
            (void)buf_appendf(err, "cannot commit: %s", sqlite3_errmsg(c->db));
        }
    }
    if (!sqlite3_get_autocommit(c->db)) {
        (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* Every table, index, trigger and view but SQLite's own and schema_migrations, in a fixed
 * order, as the CREATE statements SQLite keeps. */
static int sq_schema_dump(void *be, struct buf *out, struct buf *err)
{
    struct sq_conn *c = NULL;
    int rc = sq_reader(be, &c);
    if (rc != 0) {
        (void)buf_append_str(err, "cannot open a read connection");
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"
                            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                            " AND tbl_name <> 'schema_migrations'"
                            " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1"
                            " WHEN 'index' THEN 2 ELSE 3 END, tbl_name, name",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        (void)buf_appendf(err, "cannot read the schema: %s", sqlite3_errmsg(c->db));
        return sq_fail(c, rc, "read the schema");
    }
    int step;
    rc = 0;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *sql = sqlite3_column_text(st, 0);
        rc = buf_appendf(out, "%s;\n\n", sql != NULL ? (const char *)sql : "");
    }
    if (rc == 0 && step != SQLITE_DONE) {
        (void)buf_appendf(err, "cannot read the schema: %s", sqlite3_errmsg(c->db));
        rc = sq_fail(c, step, "read the schema");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Rows of table, counted up to cap + 1, on a read connection. */
static int sq_table_rows(void *be, const char *table, uint64_t cap, uint64_t *rows)
{
    struct sq_conn *c = NULL;
    int rc = sq_reader(be, &c);
    bool exists = false;
    if (rc == 0) {
        rc = sq_table_exists(c, table, &exists);
    }
    if (rc != 0 || !exists) {
        return rc != 0 ? rc : -ENOENT;
    }
    char *sql = sqlite3_mprintf("SELECT count(*) FROM (SELECT 1 FROM \"%w\" LIMIT %llu)", table,
                                (unsigned long long)cap + 1);
    if (sql == NULL) {
        return -ENOMEM;
    }
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        return sq_fail(c, rc, "count rows");
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *rows = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW ? 0 : sq_fail(c, step, "count rows");
}

/* A new database file in a new temporary directory. */
static int sq_scratch_create(const char *location, const struct store_options *opts,
                             struct buf *scratch, struct buf *err)
{
    (void)location;
    (void)opts;
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s/ledgerd-fresh-XXXXXX",
                     tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(dir) || mkdtemp(dir) == NULL) {
        (void)buf_appendf(err, "cannot make a temporary directory: %s", strerror(errno));
        return -EIO;
    }
    return buf_appendf(scratch, "%s/fresh.db", dir);
}

static void sq_scratch_drop(const char *location, const struct store_options *opts,
                            const char *scratch)
{
    (void)location;
    (void)opts;
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char path[4200];
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", scratch, suffixes[i]);
        (void)unlink(path);
    }
    const char *slash = strrchr(scratch, '/');
    if (slash != NULL) {
        snprintf(path, sizeof(path), "%.*s", (int)(slash - scratch), scratch);
        (void)rmdir(path);
    }
}

/* ---------------------------------------------------------------------------------------
 * Reads (the calling thread's read connection).
 * ------------------------------------------------------------------------------------- */

static int sq_ping(void *be)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_PING, &st);
    }
    if (rc != 0) {
        return rc;
    }
    int step = sqlite3_step(st);
    rc = step == SQLITE_ROW ? 0 : sq_fail(c, step, "ping");
    sqlite3_reset(st);
    return rc;
}

/* Runs a single-row lookup by id on this thread's reader; -ENOENT when there is no row. */
static int sq_get(struct sq_store *s, enum sq_stmt id, const char *key, struct sq_conn **c_out,
                  sqlite3_stmt **st_out)
{
    int rc = sq_reader(s, c_out);
    if (rc == 0) {
        rc = sq_stmt(*c_out, id, st_out);
    }
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(*st_out, 1, key);
    int step = sqlite3_step(*st_out);
    if (step == SQLITE_ROW) {
        return 0;
    }
    rc = step == SQLITE_DONE ? -ENOENT : sq_fail(*c_out, step, "lookup");
    sqlite3_reset(*st_out);
    return rc;
}

static int sq_account_get(void *be, const char *id, store_account_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_get(be, SQ_ACCOUNT_GET, id, &c, &st);
    if (rc != 0) {
        return rc;
    }
    struct ledger_account a;
    uint64_t seq = 0;
    rc = sq_row_account(st, &a, &seq);
    if (rc == 0) {
        rc = fn(ctx, &a);
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_transfer_get(void *be, const char *id, store_transfer_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_get(be, SQ_TRANSFER_GET, id, &c, &st);
    if (rc != 0) {
        return rc;
    }
    struct ledger_transfer t;
    uint64_t seq = 0;
    rc = sq_row_transfer(st, &t, &seq);
    if (rc == 0) {
        rc = fn(ctx, &t);
    }
    sqlite3_reset(st);
    return rc;
}

/* Either kind of row, for the one page loop below. */
struct sq_page_fns {
    store_account_fn account;
    store_transfer_fn transfer;
    void *ctx;
};

/* Walks a page statement bound with ?1 after_seq and ?2 limit + 1: gives up to limit rows and
 * tells from the extra row whether more follow. */
static int sq_page(struct sq_conn *c, sqlite3_stmt *st, struct store_page *page,
                   const struct sq_page_fns *fns)
{
    sqlite3_bind_int64(st, 1, (int64_t)page->after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)page->limit + 1);
    uint32_t given = 0;
    int rc = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (given == page->limit) {
            page->more_out = true;
            break;
        }
        uint64_t seq = 0;
        if (fns->account != NULL) {
            struct ledger_account a;
            rc = sq_row_account(st, &a, &seq);
            if (rc == 0) {
                page->last_seq_out = seq;
                rc = fns->account(fns->ctx, &a);
            }
        } else {
            struct ledger_transfer t;
            rc = sq_row_transfer(st, &t, &seq);
            if (rc == 0) {
                page->last_seq_out = seq;
                rc = fns->transfer(fns->ctx, &t);
            }
        }
        given++;
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sq_fail(c, step, "list");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_accounts_list(void *be, const char *ledger, struct store_page *page,
                            store_account_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, ledger != NULL ? SQ_ACCOUNTS_PAGE_LEDGER : SQ_ACCOUNTS_PAGE, &st);
    }
    if (rc != 0) {
        return rc;
    }
    if (ledger != NULL) {
        sq_bind_text(st, 3, ledger);
    }
    const struct sq_page_fns fns = {fn, NULL, ctx};
    return sq_page(c, st, page, &fns);
}

static int sq_account_transfers_list(void *be, const char *account_id, struct store_page *page,
                                     store_transfer_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_ACCOUNT_TRANSFERS_PAGE, &st);
    }
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 3, account_id);
    const struct sq_page_fns fns = {NULL, fn, ctx};
    return sq_page(c, st, page, &fns);
}

static int sq_idem_get(void *be, const char *principal, const char *key, int64_t now_ms,
                       store_idem_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_IDEM_GET, &st);
    }
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, principal);
    sq_bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, now_ms);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? -ENOENT : sq_fail(c, step, "idempotency lookup");
        goto out_reset;
    }
    struct store_idem_record r;
    memset(&r, 0, sizeof(r));
    const void *digest = sqlite3_column_blob(st, 0);
    int64_t status = sqlite3_column_int64(st, 1);
    if (digest == NULL || sqlite3_column_bytes(st, 0) != SHA256_BYTES || status < 100 ||
        status > 599) {
        rc = sq_corrupt("idempotency record");
        goto out_reset;
    }
    memcpy(r.request_digest, digest, SHA256_BYTES);
    r.status = (int)status;
    const unsigned char *location = sqlite3_column_text(st, 2);
    r.location = location != NULL ? (const char *)location : "";
    const void *body = sqlite3_column_blob(st, 3);
    r.body_len = (size_t)sqlite3_column_bytes(st, 3);
    r.body = body != NULL ? body : "";
    r.expires_at_ms = sqlite3_column_int64(st, 4);
    rc = fn(ctx, &r);

out_reset:
    sqlite3_reset(st);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The audit trail and API keys: rows, the administrative writer, reads and appends.
 * ------------------------------------------------------------------------------------- */

/* A 32-byte hash (or n-byte blob) column; anything else is a malformed row. */
static int sq_col_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t n)
{
    const void *p = sqlite3_column_blob(st, col);
    if (p == NULL || (size_t)sqlite3_column_bytes(st, col) != n) {
        return sq_corrupt("blob of the wrong size");
    }
    memcpy(out, p, n);
    return 0;
}

/* A record from the SQ_AUDIT_COLS starting at column col. The text is copied as stored: the
 * verifier, not this function, judges whether it follows the rules. */
static int sq_row_audit(sqlite3_stmt *st, int col, struct audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = (uint64_t)sqlite3_column_int64(st, col);
    r->time_unix_ms = sqlite3_column_int64(st, col + 1);
    int rc = sq_col_text(st, col + 2, r->actor, sizeof(r->actor));
    if (rc == 0) {
        rc = sq_col_text(st, col + 3, r->action, sizeof(r->action));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 4, r->resource, sizeof(r->resource));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 5, r->decision, sizeof(r->decision));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 6, r->reason, sizeof(r->reason));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 7, r->request_id, sizeof(r->request_id));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 8, r->trace_id, sizeof(r->trace_id));
    }
    if (rc == 0) {
        rc = sq_col_text(st, col + 9, r->source, sizeof(r->source));
    }
    if (rc == 0) {
        rc = sq_col_blob(st, col + 10, r->prev_hash, AUDIT_HASH_BYTES);
    }
    if (rc == 0) {
        rc = sq_col_blob(st, col + 11, r->hash, AUDIT_HASH_BYTES);
    }
    if (rc != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "store: sqlite: audit record %" PRId64 " is malformed",
                 (int64_t)sqlite3_column_int64(st, col));
    }
    return rc;
}

/* Column positions of a checkpoint in a row (they differ between the two statements). */
struct sq_checkpoint_cols {
    int seq, time, key_id, hash, signature;
};

static int sq_row_checkpoint(sqlite3_stmt *st, const struct sq_checkpoint_cols *cols,
                             struct audit_checkpoint *cp)
{
    memset(cp, 0, sizeof(*cp));
    cp->seq = (uint64_t)sqlite3_column_int64(st, cols->seq);
    cp->time_unix_ms = sqlite3_column_int64(st, cols->time);
    int rc = sq_col_text(st, cols->key_id, cp->key_id, sizeof(cp->key_id));
    if (rc == 0) {
        rc = sq_col_blob(st, cols->hash, cp->hash, AUDIT_HASH_BYTES);
    }
    if (rc == 0) {
        rc = sq_col_blob(st, cols->signature, cp->signature, AUDIT_SIGNATURE_BYTES);
    }
    return rc;
}

static int sq_bind_audit(sqlite3_stmt *st, const struct audit_record *r)
{
    ASSERT(r->seq <= (uint64_t)LIMIT_AUDIT_INTEGER_MAX);
    sqlite3_bind_int64(st, 1, (int64_t)r->seq);
    sqlite3_bind_int64(st, 2, r->time_unix_ms);
    sq_bind_text(st, 3, r->actor);
    sq_bind_text(st, 4, r->action);
    sq_bind_text(st, 5, r->resource);
    sq_bind_text(st, 6, r->decision);
    sq_bind_text(st, 7, r->reason);
    sq_bind_text(st, 8, r->request_id);
    sq_bind_text(st, 9, r->trace_id);
    sq_bind_text(st, 10, r->source);
    sqlite3_bind_blob(st, 11, r->prev_hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
    return sqlite3_bind_blob(st, 12, r->hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
}

/* The last record's (seq, hash) as connection c sees it: in a write transaction, the true
 * tail, which no one else can extend until it ends. */
static int sq_audit_tail_on(struct sq_conn *c, uint64_t *seq_out,
                            uint8_t hash_out[AUDIT_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(c, SQ_AUDIT_TAIL, &st);
    if (rc != 0) {
        return rc;
    }
    *seq_out = 0;
    memset(hash_out, 0, AUDIT_HASH_BYTES);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        rc = seq >= 1 && seq <= LIMIT_AUDIT_INTEGER_MAX
                 ? sq_col_blob(st, 1, hash_out, AUDIT_HASH_BYTES)
                 : sq_corrupt("audit tail seq out of range");
        *seq_out = rc == 0 ? (uint64_t)seq : 0;
    } else if (step != SQLITE_DONE) {
        rc = sq_fail(c, step, "read the audit tail");
    }
    sqlite3_reset(st);
    return rc;
}

/* Links r after the tail and inserts it; c is in a write transaction. */
static int sq_audit_append_on(struct sq_conn *c, struct audit_record *r)
{
    ASSERT(!sqlite3_get_autocommit(c->db));
    uint64_t seq = 0;
    uint8_t prev[AUDIT_HASH_BYTES];
    int rc = sq_audit_tail_on(c, &seq, prev);
    if (rc != 0) {
        return rc;
    }
    rc = audit_chain_next(prev, seq, r);
    if (rc != 0) {
        return rc;
    }
    ASSERT(r->seq == seq + 1);
    sqlite3_stmt *st = NULL;
    rc = sq_stmt(c, SQ_AUDIT_INSERT, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_audit(st, r);
    return sq_step_done(c, st, "append audit record");
}

/* Steps an INSERT whose primary key may exist already: -EEXIST then, without logging. */
static int sq_insert_unique(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int step = sqlite3_step(st);
    int rc = 0;
    if (step != SQLITE_DONE) {
        rc = sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_PRIMARYKEY
                 ? -EEXIST
                 : sq_fail(c, step, what);
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_checkpoint_insert_on(struct sq_conn *c, const struct audit_checkpoint *cp)
{
    ASSERT(cp->seq <= (uint64_t)LIMIT_AUDIT_INTEGER_MAX);
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(c, SQ_AUDIT_CHECKPOINT_INSERT, &st);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, (int64_t)cp->seq);
    sqlite3_bind_int64(st, 2, cp->time_unix_ms);
    sqlite3_bind_text(st, 3, cp->key_id, (int)strnlen(cp->key_id, sizeof(cp->key_id)),
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, cp->hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, cp->signature, AUDIT_SIGNATURE_BYTES, SQLITE_STATIC);
    return sq_insert_unique(c, st, "insert audit checkpoint");
}

/* Takes the administrative writer (opening it on first use) and begins a write transaction.
 * On 0 the caller holds admin_lock until sq_admin_end. */
static int sq_admin_begin(struct sq_store *s, struct sq_conn **out)
{
    pthread_mutex_lock(&s->admin_lock);
    int rc = 0;
    if (s->admin.db == NULL) {
        rc = sq_open_conn(&s->admin, s->path, SQLITE_OPEN_READWRITE, NULL, NULL);
        if (rc == 0) {
            rc = sq_exec(&s->admin, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                         "administrative writer setup");
            if (rc != 0) {
                sq_conn_close(&s->admin);
            }
        }
    }
    if (rc == 0) {
        sqlite3_stmt *st = NULL;
        rc = sq_stmt(&s->admin, SQ_BEGIN, &st);
        if (rc == 0) {
            rc = sq_step_done(&s->admin, st, "begin");
        }
    }
    if (rc != 0) {
        pthread_mutex_unlock(&s->admin_lock);
        return rc;
    }
    *out = &s->admin;
    return 0;
}

/* Commits when rc is 0, else rolls back; releases the administrative writer. */
static int sq_admin_end(struct sq_store *s, int rc)
{
    if (rc == 0) {
        sqlite3_stmt *st = NULL;
        rc = sq_stmt(&s->admin, SQ_COMMIT, &st);
        if (rc == 0) {
            rc = sq_step_done(&s->admin, st, "commit");
        }
    }
    if (rc != 0 && !sqlite3_get_autocommit(s->admin.db)) {
        (void)sqlite3_exec(s->admin.db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&s->admin_lock);
    return rc;
}

static int sq_audit_append_one(void *be, struct audit_record *r)
{
    struct sq_store *s = be;
    struct sq_conn *c = NULL;
    int rc = sq_admin_begin(s, &c);
    if (rc != 0) {
        return rc;
    }
    return sq_admin_end(s, sq_audit_append_on(c, r));
}

static int sq_audit_checkpoint_insert(void *be, const struct audit_checkpoint *cp)
{
    struct sq_store *s = be;
    struct sq_conn *c = NULL;
    int rc = sq_admin_begin(s, &c);
    if (rc != 0) {
        return rc;
    }
    return sq_admin_end(s, sq_checkpoint_insert_on(c, cp));
}

static int sq_audit_tail(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    struct sq_conn *c = NULL;
    int rc = sq_reader(be, &c);
    return rc != 0 ? rc : sq_audit_tail_on(c, seq_out, hash_out);
}

static int sq_audit_records(void *be, struct store_page *page, store_audit_record_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_AUDIT_PAGE, &st);
    }
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, (int64_t)page->after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)page->limit + 1);
    uint32_t given = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (given == page->limit) {
            page->more_out = true;
            break;
        }
        struct audit_record r;
        rc = sq_row_audit(st, 0, &r);
        if (rc == 0) {
            page->last_seq_out = r.seq;
            rc = fn(ctx, &r);
        }
        given++;
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sq_fail(c, step, "list audit records");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_audit_checkpoints(void *be, uint64_t after_seq, store_audit_checkpoint_fn fn,
                                void *ctx)
{
    static const struct sq_checkpoint_cols cols = {0, 1, 2, 3, 4};
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_AUDIT_CHECKPOINTS, &st);
    }
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, after_seq > INT64_MAX ? INT64_MAX : (int64_t)after_seq);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct audit_checkpoint cp;
        rc = sq_row_checkpoint(st, &cols, &cp);
        if (rc == 0) {
            rc = fn(ctx, &cp);
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sq_fail(c, step, "list audit checkpoints");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_audit_trail(void *be, uint64_t after_seq, store_audit_record_fn record_fn,
                          store_audit_checkpoint_fn checkpoint_fn, void *ctx)
{
    /* The checkpoint's columns within a row of SQ_AUDIT_TRAIL. */
    static const struct sq_checkpoint_cols cols = {1, 2, 3, SQ_AUDIT_COLS_COUNT,
                                                   SQ_AUDIT_COLS_COUNT + 1};
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_AUDIT_TRAIL, &st);
    }
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, after_seq > INT64_MAX ? INT64_MAX : (int64_t)after_seq);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int(st, 0) == 0) {
            struct audit_record r;
            rc = sq_row_audit(st, 1, &r);
            if (rc == 0) {
                rc = record_fn(ctx, &r);
            }
        } else {
            struct audit_checkpoint cp;
            rc = sq_row_checkpoint(st, &cols, &cp);
            if (rc == 0) {
                rc = checkpoint_fn(ctx, &cp);
            }
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sq_fail(c, step, "read the audit trail");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_audit_checkpoint_last(void *be, uint64_t *seq_out, int64_t *time_unix_ms_out)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_AUDIT_CHECKPOINT_LAST, &st);
    }
    if (rc != 0) {
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        *seq_out = seq > 0 ? (uint64_t)seq : 0;
        *time_unix_ms_out = sqlite3_column_int64(st, 1);
    } else if (step != SQLITE_DONE) {
        rc = sq_fail(c, step, "read the last audit checkpoint");
    }
    sqlite3_reset(st);
    return rc;
}

/* A key from SQ_APIKEY_COLS. */
static int sq_row_apikey(sqlite3_stmt *st, struct store_apikey *k)
{
    memset(k, 0, sizeof(*k));
    int rc = sq_col_text(st, 0, k->id, sizeof(k->id));
    if (rc == 0) {
        rc = sq_col_text(st, 1, k->name, sizeof(k->name));
    }
    if (rc == 0) {
        rc = sq_col_uint(st, 2, UINT32_MAX, &k->scopes);
    }
    if (rc == 0) {
        rc = sq_col_blob(st, 3, k->hash, APIKEY_HASH_BYTES);
    }
    if (rc == 0) {
        rc = sq_col_text(st, 5, k->created_by, sizeof(k->created_by));
    }
    k->created_at_ms = sqlite3_column_int64(st, 4);
    k->revoked_at_ms = sqlite3_column_int64(st, 6); /* NULL reads as 0: in force */
    return rc;
}

static int sq_apikey_get(void *be, const char *id, struct store_apikey *out)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_get(be, SQ_APIKEY_GET, id, &c, &st);
    if (rc != 0) {
        return rc;
    }
    rc = sq_row_apikey(st, out);
    sqlite3_reset(st);
    return rc;
}

static int sq_apikey_list(void *be, store_apikey_fn fn, void *ctx)
{
    struct sq_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sq_reader(be, &c);
    if (rc == 0) {
        rc = sq_stmt(c, SQ_APIKEY_LIST, &st);
    }
    if (rc != 0) {
        return rc;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_apikey k;
        rc = sq_row_apikey(st, &k);
        if (rc == 0) {
            rc = fn(ctx, &k);
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = sq_fail(c, step, "list API keys");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_apikey_insert(void *be, const struct store_apikey *k, struct audit_record *audit)
{
    struct sq_store *s = be;
    struct sq_conn *c = NULL;
    int rc = sq_admin_begin(s, &c);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = sq_stmt(c, SQ_APIKEY_INSERT, &st);
    if (rc == 0) {
        sq_bind_text(st, 1, k->id);
        sq_bind_text(st, 2, k->name);
        sqlite3_bind_int64(st, 3, k->scopes);
        sqlite3_bind_blob(st, 4, k->hash, APIKEY_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, k->created_at_ms);
        sq_bind_text(st, 6, k->created_by);
        rc = sq_insert_unique(c, st, "insert API key");
    }
    if (rc == 0) {
        rc = sq_audit_append_on(c, audit);
    }
    return sq_admin_end(s, rc);
}

static int sq_apikey_revoke(void *be, const char *id, int64_t now_ms, struct audit_record *audit)
{
    struct sq_store *s = be;
    struct sq_conn *c = NULL;
    int rc = sq_admin_begin(s, &c);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = sq_stmt(c, SQ_APIKEY_REVOKE, &st);
    if (rc == 0) {
        sq_bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = sq_step_done(c, st, "revoke API key");
    }
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        /* Unknown, or revoked before: tell which, in the same transaction. */
        rc = sq_stmt(c, SQ_APIKEY_GET, &st);
        if (rc == 0) {
            sq_bind_text(st, 1, id);
            int step = sqlite3_step(st);
            rc = step == SQLITE_ROW    ? -EALREADY
                 : step == SQLITE_DONE ? -ENOENT
                                       : sq_fail(c, step, "look up API key");
            sqlite3_reset(st);
        }
    } else if (rc == 0) {
        rc = sq_audit_append_on(c, audit);
    }
    return sq_admin_end(s, rc);
}

/* The commit worker's side, inside its transaction. */
static int sq_wr_audit_append(void *be, struct audit_record *r)
{
    struct sq_store *s = be;
    return sq_audit_append_on(&s->writer, r);
}

static int sq_wr_audit_tail(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    struct sq_store *s = be;
    ASSERT(!sqlite3_get_autocommit(s->writer.db));
    return sq_audit_tail_on(&s->writer, seq_out, hash_out);
}

static int sq_wr_audit_checkpoint_insert(void *be, const struct audit_checkpoint *cp)
{
    struct sq_store *s = be;
    ASSERT(!sqlite3_get_autocommit(s->writer.db));
    return sq_checkpoint_insert_on(&s->writer, cp);
}

/* ---------------------------------------------------------------------------------------
 * The writer (the commit worker's thread only).
 * ------------------------------------------------------------------------------------- */

static int sq_writer_step(struct sq_store *s, enum sq_stmt id, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, id, &st);
    return rc != 0 ? rc : sq_step_done(&s->writer, st, what);
}

static int sq_tx_begin(void *be)
{
    struct sq_store *s = be;
    ASSERT(sqlite3_get_autocommit(s->writer.db)); /* no transaction is open */
    return sq_writer_step(s, SQ_BEGIN, "begin");
}

static int sq_tx_commit(void *be)
{
    return sq_writer_step(be, SQ_COMMIT, "commit");
}

static void sq_tx_rollback(void *be)
{
    struct sq_store *s = be;
    /* SQLite may already have rolled back on its own (e.g. after SQLITE_FULL). */
    if (!sqlite3_get_autocommit(s->writer.db)) {
        (void)sq_writer_step(s, SQ_ROLLBACK, "rollback");
    }
}

static int sq_wr_account_load(void *be, const char *id, struct ledger_book *b)
{
    struct sq_store *s = be;
    if (ledger_book_account_find(b, id) != NULL) {
        return 0;
    }
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_ACCOUNT_GET, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        struct ledger_account a;
        uint64_t seq = 0;
        rc = sq_row_account(st, &a, &seq);
        if (rc == 0) {
            rc = ledger_book_account_load(b, &a);
        }
    } else if (step != SQLITE_DONE) {
        rc = sq_fail(&s->writer, step, "load account");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_wr_transfer_load(void *be, const char *id, struct ledger_book *b)
{
    struct sq_store *s = be;
    if (ledger_book_transfer_find(b, id) != NULL) {
        return 0;
    }
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_TRANSFER_GET, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        struct ledger_transfer t;
        uint64_t seq = 0;
        rc = sq_row_transfer(st, &t, &seq);
        if (rc == 0) {
            rc = ledger_book_transfer_load(b, &t);
        }
    } else if (step != SQLITE_DONE) {
        rc = sq_fail(&s->writer, step, "load transfer");
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_wr_due_pendings(void *be, int64_t now_ms, size_t limit, struct ledger_book *b,
                              char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out)
{
    struct sq_store *s = be;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_DUE_PENDINGS, &st);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    size_t n = 0;
    int step = SQLITE_DONE;
    while (n < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = sq_col_text(st, 0, ids_out[n], LIMIT_ID_LEN_MAX + 1);
        if (rc != 0) {
            break;
        }
        n++;
    }
    if (rc == 0 && n < limit && step != SQLITE_DONE) {
        rc = sq_fail(&s->writer, step, "due pendings");
    }
    sqlite3_reset(st);
    /* Load after the scan: the due list is complete before the book grows. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = sq_wr_transfer_load(s, ids_out[i], b);
        const struct ledger_transfer *t = rc == 0 ? ledger_book_transfer_find(b, ids_out[i]) : NULL;
        if (rc == 0 && t == NULL) {
            rc = sq_corrupt("pending transfer without its transfer");
        }
        if (rc == 0) {
            rc = sq_wr_account_load(s, t->debit_account_id, b);
        }
        if (rc == 0) {
            rc = sq_wr_account_load(s, t->credit_account_id, b);
        }
    }
    *n_out = rc == 0 ? n : 0;
    return rc;
}

static int sq_wr_next_deadline(void *be, int64_t *deadline_ms_out)
{
    struct sq_store *s = be;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_NEXT_DEADLINE, &st);
    if (rc != 0) {
        return rc;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *deadline_ms_out = sqlite3_column_int64(st, 0); /* min() of nothing is NULL: 0 */
    } else {
        rc = sq_fail(&s->writer, step, "next deadline");
    }
    sqlite3_reset(st);
    return rc;
}

/* ledger_book_changes callbacks: each writes one row on the writer. */
static int sq_account_created(void *ctx, const struct ledger_account *a)
{
    struct sq_store *s = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_ACCOUNT_INSERT, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, a->id);
    sq_bind_text(st, 2, a->ledger);
    sqlite3_bind_int(st, 3, a->code);
    sqlite3_bind_int64(st, 4, a->flags);
    sq_bind_metadata(st, 5, a->metadata);
    sq_bind_u128(st, 6, a->debits_pending);
    sq_bind_u128(st, 7, a->debits_posted);
    sq_bind_u128(st, 8, a->credits_pending);
    sq_bind_u128(st, 9, a->credits_posted);
    sqlite3_bind_int64(st, 10, a->created_at_ms);
    return sq_step_done(&s->writer, st, "insert account");
}

static int sq_account_updated(void *ctx, const struct ledger_account *a)
{
    struct sq_store *s = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_ACCOUNT_UPDATE, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, a->id);
    sq_bind_u128(st, 2, a->debits_pending);
    sq_bind_u128(st, 3, a->debits_posted);
    sq_bind_u128(st, 4, a->credits_pending);
    sq_bind_u128(st, 5, a->credits_posted);
    rc = sq_step_done(&s->writer, st, "update account");
    if (rc == 0 && sqlite3_changes(s->writer.db) != 1) {
        rc = sq_corrupt("updated account is not stored");
    }
    return rc;
}

static int sq_pending_insert(struct sq_store *s, const struct ledger_transfer *t)
{
    ASSERT(t->pending_state != LEDGER_PENDING_NONE);
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_PENDING_INSERT, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->pending_state);
    sqlite3_bind_int64(st, 3, t->expires_at_ms);
    return sq_step_done(&s->writer, st, "insert pending transfer");
}

static int sq_transfer_created(void *ctx, const struct ledger_transfer *t)
{
    struct sq_store *s = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_TRANSFER_INSERT, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, t->id);
    sq_bind_text(st, 2, t->debit_account_id);
    sq_bind_text(st, 3, t->credit_account_id);
    sq_bind_u128(st, 4, t->amount);
    sq_bind_text(st, 5, t->ledger);
    sqlite3_bind_int(st, 6, t->code);
    sqlite3_bind_int64(st, 7, t->flags);
    sq_bind_text_or_null(st, 8, t->pending_id);
    sqlite3_bind_int64(st, 9, t->timeout_seconds);
    sq_bind_metadata(st, 10, t->metadata);
    sqlite3_bind_int64(st, 11, t->created_at_ms);
    rc = sq_step_done(&s->writer, st, "insert transfer");
    if (rc == 0 && (t->flags & LEDGER_TRANSFER_PENDING) != 0) {
        rc = sq_pending_insert(s, t);
    }
    return rc;
}

static int sq_pending_updated(void *ctx, const struct ledger_transfer *t)
{
    struct sq_store *s = ctx;
    ASSERT(t->pending_state != LEDGER_PENDING_NONE);
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_PENDING_UPDATE, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->pending_state);
    rc = sq_step_done(&s->writer, st, "update pending transfer");
    if (rc == 0 && sqlite3_changes(s->writer.db) != 1) {
        rc = sq_corrupt("updated pending transfer is not stored");
    }
    return rc;
}

static int sq_wr_changes(void *be, const struct ledger_book *b)
{
    static const struct ledger_book_changes_ops ops = {
        .account_created = sq_account_created,
        .account_updated = sq_account_updated,
        .transfer_created = sq_transfer_created,
        .pending_updated = sq_pending_updated,
    };
    return ledger_book_changes(b, &ops, be);
}

static int sq_wr_idem_put(void *be, const char *principal, const char *key,
                          const struct store_idem_record *r, int64_t created_at_ms)
{
    struct sq_store *s = be;
    ASSERT(r->body_len <= INT32_MAX);
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_IDEM_PUT, &st);
    if (rc != 0) {
        return rc;
    }
    sq_bind_text(st, 1, principal);
    sq_bind_text(st, 2, key);
    sqlite3_bind_blob(st, 3, r->request_digest, SHA256_BYTES, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, r->status);
    sq_bind_text(st, 5, r->location);
    if (r->body_len == 0) {
        sqlite3_bind_zeroblob(st, 6, 0); /* an empty body is not NULL */
    } else {
        sqlite3_bind_blob(st, 6, r->body, (int)r->body_len, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 7, created_at_ms);
    sqlite3_bind_int64(st, 8, r->expires_at_ms);
    return sq_step_done(&s->writer, st, "put idempotency record");
}

static int sq_wr_idem_purge(void *be, int64_t now_ms, size_t limit, size_t *deleted_out)
{
    struct sq_store *s = be;
    sqlite3_stmt *st = NULL;
    int rc = sq_stmt(&s->writer, SQ_IDEM_PURGE, &st);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    rc = sq_step_done(&s->writer, st, "purge idempotency records");
    if (rc == 0) {
        *deleted_out = (size_t)sqlite3_changes(s->writer.db);
    }
    return rc;
}

const struct store_backend_ops store_sqlite_ops = {
    .scheme = "sqlite://",
    .concurrent = false,
    .system_name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .migrations_backend = "sqlite",
    .mig_rows = sq_mig_rows,
    .mig_begin = sq_mig_begin,
    .mig_exec = sq_mig_exec,
    .mig_record = sq_mig_record,
    .mig_end = sq_mig_end,
    .schema_dump = sq_schema_dump,
    .table_rows = sq_table_rows,
    .scratch_create = sq_scratch_create,
    .scratch_drop = sq_scratch_drop,
    .ping = sq_ping,
    .account_get = sq_account_get,
    .transfer_get = sq_transfer_get,
    .accounts_list = sq_accounts_list,
    .account_transfers_list = sq_account_transfers_list,
    .idem_get = sq_idem_get,
    .tx_begin = sq_tx_begin,
    .tx_commit = sq_tx_commit,
    .tx_rollback = sq_tx_rollback,
    .wr_account_load = sq_wr_account_load,
    .wr_transfer_load = sq_wr_transfer_load,
    .wr_due_pendings = sq_wr_due_pendings,
    .wr_next_deadline = sq_wr_next_deadline,
    .wr_changes = sq_wr_changes,
    .wr_idem_put = sq_wr_idem_put,
    .wr_idem_purge = sq_wr_idem_purge,
    .apikey_insert = sq_apikey_insert,
    .apikey_get = sq_apikey_get,
    .apikey_list = sq_apikey_list,
    .apikey_revoke = sq_apikey_revoke,
    .audit_append_one = sq_audit_append_one,
    .audit_tail = sq_audit_tail,
    .audit_records = sq_audit_records,
    .audit_checkpoints = sq_audit_checkpoints,
    .audit_trail = sq_audit_trail,
    .audit_checkpoint_last = sq_audit_checkpoint_last,
    .audit_checkpoint_insert = sq_audit_checkpoint_insert,
    .wr_audit_append = sq_wr_audit_append,
    .wr_audit_tail = sq_wr_audit_tail,
    .wr_audit_checkpoint_insert = sq_wr_audit_checkpoint_insert,
};
