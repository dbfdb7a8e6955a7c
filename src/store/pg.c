/*
 * pg.c — the PostgreSQL backend (libpq): two connection pools (pgpool.h), one for the commit
 * workers' transactions and the administrative writes, one for reads.
 *
 * Several commit workers, in this process and in others, write at once, each in its own READ
 * COMMITTED transaction on its own connection (the calling thread's slot, pg_tx_cur). They lock
 * every row they load (SELECT ... FOR UPDATE, in byte order of the ids, so that overlapping
 * loads never deadlock). The ledger lock, one transaction-scoped advisory lock held to COMMIT,
 * orders what must follow commit order: under it, new rows get their seq from the sequences and
 * audit records link to the tail read once, so that seq order is commit order and the audit
 * chain stays gapless whichever process appends. Every writer queues on it, so it is taken as
 * late as possible: not while a batch is loaded, looked up and applied, but at its first write.
 *
 * Round trips are what a transaction costs, so a transaction buffers and then writes by the
 * array: each kind of change of a book is one statement over unnest() of text arrays, and
 * idempotency records and audit records are buffered (the records unlinked: pointers to the
 * caller's structs). BEGIN goes with the first statement, and the writes go in two pipelines
 * (libpq's pipeline mode: one round trip each, pg_tx_write): first what must be answered before
 * COMMIT (idempotency records, which meet a record in force stored meanwhile; updates of locked
 * rows) with, when records wait for their links, the ledger lock and the audit tail; then, the
 * records linked in memory, the inserts under the ledger lock and COMMIT. store_wr_changes sends
 * the first, store_tx_commit the second. Every statement is prepared once per connection.
 * Amounts are NUMERIC(39,0) sent and read as decimal text.
 *
 * Errors: serialization failures, deadlocks and unique violations inside a writer's
 * transaction are -EAGAIN (run it again); statement and lock timeouts -EBUSY; a lost connection
 * -EIO (the connection is discarded); anything else -EIO. libpq's message is logged once with
 * its SQLSTATE where the failure happened.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "core/u128.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "store/pgpool.h"
#include "store/store_internal.h"

/* Defaults of struct store_options. */
#define PG_POOL_SIZE_DEFAULT 8
#define PG_WRITERS_DEFAULT 2
#define PG_ACQUIRE_TIMEOUT_MS_DEFAULT 2000
#define PG_CONN_MAX_LIFETIME_SECONDS_DEFAULT 1800
#define PG_STATEMENT_TIMEOUT_MS_DEFAULT 5000

/* Advisory lock keys (pg_advisory_xact_lock): the ledger lock, and the lock that serializes
 * migrations between processes. Arbitrary constants, the same in every ledgerd. */
#define PG_LEDGER_LOCK_KEY "7237005577332262213" /* "ledgerd\x05" as a big-endian int64 */
#define PG_MIGRATE_LOCK_KEY "7237005577332262221"
/* How long a migration waits for another process's migration to finish. */
#define PG_MIGRATE_LOCK_WAIT "120s"

/* One array parameter's text: a book's transfers with their metadata escaped at most doubles;
 * kept under PostgreSQL's limit of 1 GiB for one value. */
#define PG_ARRAY_BYTES_MAX ((size_t)512 * 1024 * 1024)
_Static_assert((size_t)LIMIT_BOOK_TRANSFERS_MAX *(2 * LIMIT_METADATA_BYTES_MAX + 8) <=
                   PG_ARRAY_BYTES_MAX,
               "a full book's metadata fits one array parameter");
/* Audit records buffered in a transaction before they are written (one statement each time
 * the buffer fills): a batch's commands and the refusals waiting for it. */
#define PG_AUDIT_BUFFER_MAX (LIMIT_COMMIT_COMMANDS_MAX + LIMIT_AUDIT_PENDING_MAX)
/* Idempotency records buffered in a transaction: one per command of a batch. */
#define PG_IDEM_BUFFER_MAX LIMIT_COMMIT_COMMANDS_MAX
/* A database URL: as long as LEDGERD_DB may be (struct config's db_url). */
#define PG_URL_LEN_MAX 4096
/* Columns of the widest array statement (audit records). */
#define PG_COLS_MAX 12
/* Parameters of the widest statement. */
#define PG_PARAMS_MAX 12

/* ---------------------------------------------------------------------------------------
 * The statement table: prepared once per connection, on first use.
 * ------------------------------------------------------------------------------------- */
enum pg_stmt {
    PG_PING,
    PG_ACCOUNT_GET,
    PG_TRANSFER_GET,
    PG_ACCOUNTS_PAGE,
    PG_ACCOUNTS_PAGE_LEDGER,
    PG_ACCOUNT_TRANSFERS_PAGE,
    PG_IDEM_GET,
    PG_IDEM_GET_MANY,
    PG_ACCOUNTS_LOCK,
    PG_TRANSFERS_LOCK,
    PG_DUE_PENDINGS,
    PG_NEXT_DEADLINE,
    PG_ACCOUNTS_INSERT,
    PG_ACCOUNTS_UPDATE,
    PG_TRANSFERS_INSERT,
    PG_PENDINGS_INSERT,
    PG_PENDINGS_UPDATE,
    PG_IDEM_PUT,
    PG_IDEM_PURGE,
    PG_LEDGER_LOCK,
    PG_AUDIT_TAIL,
    PG_AUDIT_INSERT,
    PG_AUDIT_PAGE,
    PG_AUDIT_CHECKPOINTS,
    PG_AUDIT_TRAIL,
    PG_AUDIT_CHECKPOINT_LAST,
    PG_AUDIT_CHECKPOINT_INSERT,
    PG_APIKEY_INSERT,
    PG_APIKEY_GET,
    PG_APIKEY_LIST,
    PG_APIKEY_REVOKE,
    PG_BEGIN,
    PG_COMMIT,
    PG_COUNT
};
_Static_assert(PG_COUNT <= 64, "the prepared bitmap has a bit per statement");

/* Column lists shared with the SQLite backend's (same tables, same names, same order). */
#define PG_ACCOUNT_COLS                                                                            \
    "seq, id, ledger, code, flags, metadata, debits_pending, debits_posted, credits_pending, "     \
    "credits_posted, created_at_ms"
#define PG_TRANSFER_COLS                                                                           \
    "t.seq, t.id, t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code, "           \
    "t.flags, t.pending_id, t.timeout_seconds, t.metadata, t.created_at_ms, p.state, "             \
    "p.expires_at_ms"
#define PG_TRANSFER_FROM " FROM transfers t LEFT JOIN pending_transfers p ON p.transfer_id = t.id"
#define PG_AUDIT_COLS                                                                              \
    "seq, time_unix_ms, actor, action, resource, decision, reason, request_id, trace_id, "         \
    "source, prev_hash, hash"
#define PG_AUDIT_COLS_COUNT 12
#define PG_APIKEY_COLS "id, name, scopes, hash, created_at_ms, created_by, revoked_at_ms"

static const char *const pg_sql[PG_COUNT] = {
    [PG_PING] = "SELECT 1",
    [PG_ACCOUNT_GET] = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE id = $1::text",
    [PG_TRANSFER_GET] = "SELECT " PG_TRANSFER_COLS PG_TRANSFER_FROM " WHERE t.id = $1::text",
    [PG_ACCOUNTS_PAGE] = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE seq > $1::bigint"
                         " ORDER BY seq LIMIT $2::bigint",
    [PG_ACCOUNTS_PAGE_LEDGER] = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE ledger = $3::text"
                                " AND seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
    /* Each side walks its own index (debit, seq) / (credit, seq) and stops after limit rows;
     * the union of both is cut to limit again. */
    [PG_ACCOUNT_TRANSFERS_PAGE] =
        "WITH s(seq) AS ("
        " (SELECT seq FROM transfers WHERE debit_account_id = $3::text AND seq > $1::bigint"
        "  ORDER BY seq LIMIT $2::bigint)"
        " UNION"
        " (SELECT seq FROM transfers WHERE credit_account_id = $3::text AND seq > $1::bigint"
        "  ORDER BY seq LIMIT $2::bigint)"
        " ORDER BY seq LIMIT $2::bigint)"
        " SELECT " PG_TRANSFER_COLS " FROM s JOIN transfers t ON t.seq = s.seq"
        " LEFT JOIN pending_transfers p ON p.transfer_id = t.id ORDER BY t.seq",
    [PG_IDEM_GET] = "SELECT request_digest, status, location, body, expires_at_ms"
                    " FROM idempotency_keys WHERE principal = $1::text AND key = $2::text"
                    " AND expires_at_ms > $3::bigint",
    /* The records of many (principal, key) pairs at once, each row with the pair's place in
     * the arrays (1-based). */
    [PG_IDEM_GET_MANY] = "SELECT q.i, k.request_digest, k.status, k.location, k.body,"
                         " k.expires_at_ms FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
                         " AS q(principal, key, i) JOIN idempotency_keys k"
                         " ON k.principal = q.principal AND k.key = q.key"
                         " WHERE k.expires_at_ms > $3::bigint",
    /* Row locks in byte order of the ids (the id columns are COLLATE "C"): LockRows runs above
     * the sort, so two writers loading overlapping sets queue instead of deadlocking. */
    [PG_ACCOUNTS_LOCK] = "SELECT " PG_ACCOUNT_COLS " FROM accounts WHERE id = ANY($1::text[])"
                         " ORDER BY id FOR UPDATE",
    /* Transfers are immutable; their pending state is locked (and read as it is once locked:
     * a row lock waits for the holder and then sees its commit). */
    [PG_TRANSFERS_LOCK] = "WITH p AS MATERIALIZED (SELECT transfer_id, state, expires_at_ms"
                          " FROM pending_transfers WHERE transfer_id = ANY($1::text[])"
                          " ORDER BY transfer_id FOR UPDATE)"
                          " SELECT " PG_TRANSFER_COLS " FROM transfers t"
                          " LEFT JOIN p ON p.transfer_id = t.id WHERE t.id = ANY($1::text[])"
                          " ORDER BY t.id",
    [PG_DUE_PENDINGS] = "SELECT transfer_id FROM pending_transfers WHERE state = 1"
                        " AND expires_at_ms > 0 AND expires_at_ms <= $1::bigint"
                        " ORDER BY expires_at_ms LIMIT $2::bigint FOR UPDATE SKIP LOCKED",
    [PG_NEXT_DEADLINE] = "SELECT coalesce(min(expires_at_ms), 0) FROM pending_transfers"
                         " WHERE state = 1 AND expires_at_ms > 0",
    /* seq comes from the column default (nextval), in array order, under the ledger lock. */
    [PG_ACCOUNTS_INSERT] = "INSERT INTO accounts (id, ledger, code, flags, metadata,"
                           " debits_pending, debits_posted, credits_pending, credits_posted,"
                           " created_at_ms) SELECT * FROM unnest($1::text[], $2::text[],"
                           " $3::integer[], $4::bigint[], $5::text[], $6::numeric[],"
                           " $7::numeric[], $8::numeric[], $9::numeric[], $10::bigint[])",
    [PG_ACCOUNTS_UPDATE] = "UPDATE accounts a SET debits_pending = u.dp, debits_posted = u.dpo,"
                           " credits_pending = u.cp, credits_posted = u.cpo"
                           " FROM unnest($1::text[], $2::numeric[], $3::numeric[],"
                           " $4::numeric[], $5::numeric[]) AS u(id, dp, dpo, cp, cpo)"
                           " WHERE a.id = u.id",
    [PG_TRANSFERS_INSERT] = "INSERT INTO transfers (id, debit_account_id, credit_account_id,"
                            " amount, ledger, code, flags, pending_id, timeout_seconds, metadata,"
                            " created_at_ms) SELECT * FROM unnest($1::text[], $2::text[],"
                            " $3::text[], $4::numeric[], $5::text[], $6::integer[],"
                            " $7::bigint[], $8::text[], $9::bigint[], $10::text[],"
                            " $11::bigint[])",
    [PG_PENDINGS_INSERT] = "INSERT INTO pending_transfers (transfer_id, state, expires_at_ms)"
                           " SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[])",
    [PG_PENDINGS_UPDATE] = "UPDATE pending_transfers p SET state = u.state"
                           " FROM unnest($1::text[], $2::smallint[]) AS u(id, state)"
                           " WHERE p.transfer_id = u.id",
    /* Replaces an expired record only: a record in force stays and its row is not counted. */
    [PG_IDEM_PUT] = "INSERT INTO idempotency_keys AS k (principal, key, request_digest, status,"
                    " location, body, created_at_ms, expires_at_ms)"
                    " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::integer[],"
                    " $5::text[], $6::bytea[], $7::bigint[], $8::bigint[])"
                    " ON CONFLICT (principal, key) DO UPDATE SET"
                    " request_digest = excluded.request_digest, status = excluded.status,"
                    " location = excluded.location, body = excluded.body,"
                    " created_at_ms = excluded.created_at_ms,"
                    " expires_at_ms = excluded.expires_at_ms"
                    " WHERE k.expires_at_ms <= excluded.created_at_ms",
    [PG_IDEM_PURGE] = "DELETE FROM idempotency_keys WHERE (principal, key) IN"
                      " (SELECT principal, key FROM idempotency_keys"
                      " WHERE expires_at_ms <= $1::bigint ORDER BY expires_at_ms"
                      " LIMIT $2::bigint FOR UPDATE SKIP LOCKED)",
    [PG_LEDGER_LOCK] = "SELECT pg_advisory_xact_lock(" PG_LEDGER_LOCK_KEY ")",
    [PG_AUDIT_TAIL] = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
    [PG_AUDIT_INSERT] = "INSERT INTO audit_records (" PG_AUDIT_COLS ")"
                        " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[],"
                        " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],"
                        " $9::text[], $10::text[], $11::bytea[], $12::bytea[])",
    [PG_AUDIT_PAGE] = "SELECT " PG_AUDIT_COLS " FROM audit_records WHERE seq > $1::bigint"
                      " ORDER BY seq LIMIT $2::bigint",
    [PG_AUDIT_CHECKPOINTS] = "SELECT seq, time_unix_ms, key_id, hash, signature"
                             " FROM audit_checkpoints WHERE seq > $1::bigint ORDER BY seq",
    /* A checkpoint row has kind 1 and, in the record's columns, seq, time_unix_ms, key_id (as
     * actor), hash, and its signature in the last column. */
    [PG_AUDIT_TRAIL] = "SELECT 0 AS kind, " PG_AUDIT_COLS ", NULL::bytea AS signature"
                       " FROM audit_records WHERE seq > $1::bigint"
                       " UNION ALL"
                       " SELECT 1, seq, time_unix_ms, key_id, NULL, NULL, NULL, NULL, NULL, NULL,"
                       " NULL, NULL, hash, signature FROM audit_checkpoints"
                       " WHERE seq > $1::bigint ORDER BY 2, 1",
    [PG_AUDIT_CHECKPOINT_LAST] = "SELECT seq, time_unix_ms FROM audit_checkpoints"
                                 " ORDER BY seq DESC LIMIT 1",
    [PG_AUDIT_CHECKPOINT_INSERT] = "INSERT INTO audit_checkpoints (seq, time_unix_ms, key_id,"
                                   " hash, signature) VALUES ($1::bigint, $2::bigint, $3::text,"
                                   " $4::bytea, $5::bytea)",
    [PG_APIKEY_INSERT] = "INSERT INTO api_keys (" PG_APIKEY_COLS ") VALUES ($1::text, $2::text,"
                         " $3::bigint, $4::bytea, $5::bigint, $6::text, NULL)",
    [PG_APIKEY_GET] = "SELECT " PG_APIKEY_COLS " FROM api_keys WHERE id = $1::text",
    [PG_APIKEY_LIST] = "SELECT " PG_APIKEY_COLS " FROM api_keys ORDER BY created_at_ms, id",
    [PG_APIKEY_REVOKE] = "UPDATE api_keys SET revoked_at_ms = $2::bigint"
                         " WHERE id = $1::text AND revoked_at_ms IS NULL",
    /* Transaction control, prepared like the rest so that it can ride in a pipeline. */
    [PG_BEGIN] = "BEGIN ISOLATION LEVEL READ COMMITTED",
    [PG_COMMIT] = "COMMIT",
};

/* The table that records migrations; created by the store, not by a migration. */
static const char pg_bootstrap_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version BIGINT PRIMARY KEY,"
                                       " name TEXT NOT NULL,"
                                       " checksum TEXT NOT NULL,"
                                       " applied_at_ms BIGINT NOT NULL,"
                                       " duration_ms BIGINT,"
                                       " applied_by TEXT)";

/* ---------------------------------------------------------------------------------------
 * State: the pools and, per writer slot, the transaction's buffers.
 * ------------------------------------------------------------------------------------- */

/* Parameters of one statement: values (text unless binary), lengths of the binary ones, and
 * the decimal text of the integer ones (values point into it: not to be copied once filled). */
struct pg_params {
    int n;
    const char *values[PG_PARAMS_MAX];
    int lengths[PG_PARAMS_MAX];
    int formats[PG_PARAMS_MAX];
    char numbers[PG_PARAMS_MAX][24];
};

/* Rows of one array statement being built: one PostgreSQL array literal per column. */
struct pg_rows {
    struct buf cols[PG_COLS_MAX];
    uint32_t ncols;
    size_t n; /* rows */
};

/* The rows a transaction buffers, one set per array statement: audit records, idempotency
 * records, and wr_changes' statements (from PG_BUF_CHANGES on, in the order they run). */
enum pg_buf {
    PG_BUF_AUDIT,
    PG_BUF_IDEM,
    PG_BUF_ACCOUNTS_INSERT,
    PG_BUF_ACCOUNTS_UPDATE,
    PG_BUF_TRANSFERS_INSERT,
    PG_BUF_PENDINGS_INSERT,
    PG_BUF_PENDINGS_UPDATE,
    PG_BUF_COUNT
};
#define PG_BUF_CHANGES PG_BUF_ACCOUNTS_INSERT

/* Each buffer's statement, its columns, and what it is called in a log line. */
static const struct pg_buf_stmt {
    enum pg_stmt id;
    uint32_t ncols;
    const char *what;
} pg_buf_stmts[PG_BUF_COUNT] = {
    [PG_BUF_AUDIT] = {PG_AUDIT_INSERT, PG_AUDIT_COLS_COUNT, "append audit records"},
    [PG_BUF_IDEM] = {PG_IDEM_PUT, 8, "put idempotency records"},
    [PG_BUF_ACCOUNTS_INSERT] = {PG_ACCOUNTS_INSERT, 10, "insert accounts"},
    [PG_BUF_ACCOUNTS_UPDATE] = {PG_ACCOUNTS_UPDATE, 5, "update accounts"},
    [PG_BUF_TRANSFERS_INSERT] = {PG_TRANSFERS_INSERT, 11, "insert transfers"},
    [PG_BUF_PENDINGS_INSERT] = {PG_PENDINGS_INSERT, 3, "insert pending transfers"},
    [PG_BUF_PENDINGS_UPDATE] = {PG_PENDINGS_UPDATE, 2, "update pending transfers"},
};

/* Statements sent together in one pipeline (libpq's pipeline mode): one round trip. */
#define PG_PIPE_STEPS_MAX 12

/* What a step's answer must show besides success. */
enum pg_check {
    PG_CHECK_NONE,
    PG_CHECK_ALL,    /* every row it names was stored: else a malformed database */
    PG_CHECK_IDEM,   /* every idempotency record went in: else one in force was met, -EAGAIN */
    PG_CHECK_LOCK,   /* the ledger lock: now held */
    PG_CHECK_TAIL,   /* the audit tail: read into the transaction */
    PG_CHECK_COMMIT, /* the transaction committed (not rolled back by an earlier failure) */
};

/* One statement of a pipeline: its parameters, and its result once answered. */
struct pg_step {
    enum pg_stmt id;
    int rfmt;
    int dup_rc;
    const char *what;
    enum pg_check check;
    enum pg_buf buf; /* the buffer whose rows it sends (PG_BUF_COUNT: none) */
    size_t rows;     /* how many (PG_CHECK_ALL, PG_CHECK_IDEM) */
    struct pg_params p;
    PGresult *res;
};

struct pg_pipe {
    size_t n;
    struct pg_step steps[PG_PIPE_STEPS_MAX];
};

/* The state of a transaction on one writer slot (the commit worker's or an administrative
 * one). Nothing is sent at BEGIN: it goes with the transaction's first statement. */
struct pg_tx {
    struct pg_store *s;
    struct pgpool_conn *c;
    bool begin_pending; /* BEGIN is still to be sent */
    bool locked;        /* holds the ledger lock */
    bool tail_known;    /* tail_seq / tail_hash are the trail's tail, the linked records included */
    uint64_t tail_seq;
    uint8_t tail_hash[AUDIT_HASH_BYTES];
    /* Records appended but not yet linked: the caller's, linked and written at the next write
     * (pg_tx_write), under the ledger lock. */
    struct audit_record *audit[PG_AUDIT_BUFFER_MAX];
    size_t audit_n;
    struct pg_rows bufs[PG_BUF_COUNT];
    struct pg_rows scratch; /* the arrays of a single read (ids to load, pairs to look up) */
    struct pg_pipe pipe;
};

struct pg_store {
    struct pgpool *writers;
    struct pgpool *readers;
    struct pg_tx *txs; /* one per writer slot, by pgpool_conn.index */
    uint32_t writers_n;
};

/* The commit worker transaction of the calling thread (one at a time per thread). */
static _Thread_local struct pg_tx *pg_tx_cur;

/* ---------------------------------------------------------------------------------------
 * Errors, statements.
 * ------------------------------------------------------------------------------------- */

static bool pg_sqlstate_is(const char *state, const char *want)
{
    return state != NULL && strcmp(state, want) == 0;
}

/* Maps a failed result (res may be NULL: libpq could not even send) to the store's codes and
 * logs libpq's message once. dup_rc is what a unique violation means here (-EAGAIN inside a
 * writer's transaction, -EEXIST for an insert whose caller wants it; not logged then). A lost
 * connection marks c failed. */
static int pg_fail(struct pgpool_conn *c, const PGresult *res, int dup_rc, const char *what)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : "";
    if (msg == NULL || msg[0] == '\0') {
        msg = PQerrorMessage(c->pg);
    }
    int rc = -EIO;
    enum config_log_level level = CONFIG_LOG_ERROR;
    if (PQstatus(c->pg) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0) {
        c->failed = true;
    } else if (pg_sqlstate_is(state, "40001") || pg_sqlstate_is(state, "40P01")) {
        rc = -EAGAIN;
        level = CONFIG_LOG_WARN;
    } else if (pg_sqlstate_is(state, "23505")) {
        rc = dup_rc;
        if (rc == -EEXIST) {
            return rc;
        }
        level = rc == -EAGAIN ? CONFIG_LOG_WARN : CONFIG_LOG_ERROR;
    } else if (pg_sqlstate_is(state, "57014") || pg_sqlstate_is(state, "55P03")) {
        rc = -EBUSY;
    }
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }
    log_msgf(level, NULL, "store: postgresql: %s: %.*s (SQLSTATE %s)", what, (int)len, msg,
             state != NULL ? state : "none");
    return rc;
}

/* Rows that do not fit the domain (a foreign or corrupt database) are storage errors. */
static int pg_corrupt(const char *what)
{
    log_msgf(CONFIG_LOG_ERROR, NULL, "store: postgresql: malformed row: %s", what);
    return -EIO;
}

/* The name statement id is prepared under. */
static void pg_stmt_name(enum pg_stmt id, char name[16])
{
    snprintf(name, 16, "l%d", (int)id);
}

/* Prepares statement id on c unless it is already. */
static int pg_prepare(struct pgpool_conn *c, enum pg_stmt id)
{
    ASSERT(id < PG_COUNT);
    uint64_t bit = (uint64_t)1 << id;
    if ((c->prepared & bit) != 0) {
        return 0;
    }
    char name[16];
    pg_stmt_name(id, name);
    PGresult *res = PQprepare(c->pg, name, pg_sql[id], 0, NULL);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(c, res, -EIO, "prepare");
    } else {
        c->prepared |= bit;
    }
    PQclear(res);
    return rc;
}

static void pg_param_text(struct pg_params *p, const char *v)
{
    ASSERT(p->n < PG_PARAMS_MAX);
    p->values[p->n] = v;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

static void pg_param_bin(struct pg_params *p, const void *v, size_t len)
{
    ASSERT(p->n < PG_PARAMS_MAX);
    ASSERT(len <= INT32_MAX);
    p->values[p->n] = v;
    p->lengths[p->n] = (int)len;
    p->formats[p->n] = 1;
    p->n++;
}

static void pg_param_i64(struct pg_params *p, int64_t v)
{
    ASSERT(p->n < PG_PARAMS_MAX);
    snprintf(p->numbers[p->n], sizeof(p->numbers[0]), "%" PRId64, v);
    pg_param_text(p, p->numbers[p->n]);
}

static void pg_param_u64(struct pg_params *p, uint64_t v)
{
    ASSERT(p->n < PG_PARAMS_MAX);
    snprintf(p->numbers[p->n], sizeof(p->numbers[0]), "%" PRIu64, v);
    pg_param_text(p, p->numbers[p->n]);
}

/* Runs prepared statement id; on 0, *out (may be NULL: cleared here) holds the result. */
static int pg_run(struct pgpool_conn *c, enum pg_stmt id, const struct pg_params *p, int rfmt,
                  int dup_rc, const char *what, PGresult **out)
{
    int rc = pg_prepare(c, id);
    if (rc != 0) {
        return rc;
    }
    char name[16];
    pg_stmt_name(id, name);
    PGresult *res =
        PQexecPrepared(c->pg, name, p != NULL ? p->n : 0, p != NULL ? p->values : NULL,
                       p != NULL ? p->lengths : NULL, p != NULL ? p->formats : NULL, rfmt);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_fail(c, res, dup_rc, what);
        PQclear(res);
        return rc;
    }
    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }
    return 0;
}

/* Runs SQL text without parameters (transaction control, migrations). */
static int pg_exec_sql(struct pgpool_conn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : pg_fail(c, res, -EIO, what);
    PQclear(res);
    return rc;
}

/* Rolls back the transaction still open on c, unless c is lost (its session went with it). */
static void pg_rollback_open(struct pgpool_conn *c, const char *what)
{
    if (!c->failed && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        (void)pg_exec_sql(c, "ROLLBACK", what);
    }
}

/* Rows a command touched (PQcmdTuples). */
static size_t pg_affected(const PGresult *res)
{
    const char *t = PQcmdTuples((PGresult *)res);
    if (t == NULL || t[0] == '\0') {
        return 0;
    }
    char *end = NULL;
    unsigned long long v = strtoull(t, &end, 10);
    return (end != NULL && *end == '\0') ? (size_t)v : 0;
}

/* ---------------------------------------------------------------------------------------
 * Reading columns (text format).
 * ------------------------------------------------------------------------------------- */

/* One row of a result, read column by column: the first column that fails leaves its code in
 * rc, and every column read after it is skipped (its output left as it is), so that a decoder
 * reads its columns one after the other and looks at rc once. */
struct pg_in {
    const PGresult *res;
    int row;
    int rc;
};

static int pg_in_corrupt(struct pg_in *in, const char *what)
{
    in->rc = pg_corrupt(what);
    return in->rc;
}

/* Copies a text column into out (size bytes); NULL reads as "". */
static int pg_col_text(struct pg_in *in, int col, char *out, size_t size)
{
    if (in->rc != 0) {
        return in->rc;
    }
    if (PQgetisnull(in->res, in->row, col)) {
        out[0] = '\0';
        return 0;
    }
    size_t len = (size_t)PQgetlength(in->res, in->row, col);
    if (len >= size) {
        return pg_in_corrupt(in, "text column too long");
    }
    memcpy(out, PQgetvalue(in->res, in->row, col), len);
    out[len] = '\0';
    return 0;
}

/* An integer column within [min, max]; NULL reads as 0. */
static int pg_col_i64(struct pg_in *in, int col, int64_t min, int64_t max, int64_t *out)
{
    if (in->rc != 0) {
        return in->rc;
    }
    *out = 0;
    if (PQgetisnull(in->res, in->row, col)) {
        return 0;
    }
    const char *s = PQgetvalue(in->res, in->row, col);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return pg_in_corrupt(in, "integer out of range");
    }
    *out = (int64_t)v;
    return 0;
}

static int pg_col_u32(struct pg_in *in, int col, uint32_t max, uint32_t *out)
{
    if (in->rc != 0) {
        return in->rc;
    }
    int64_t v = 0;
    int rc = pg_col_i64(in, col, 0, max, &v);
    *out = (uint32_t)v;
    return rc;
}

static int pg_col_u128(struct pg_in *in, int col, u128 *out)
{
    if (in->rc != 0) {
        return in->rc;
    }
    if (PQgetisnull(in->res, in->row, col) ||
        u128_parse(PQgetvalue(in->res, in->row, col), (size_t)PQgetlength(in->res, in->row, col),
                   out) != 0) {
        return pg_in_corrupt(in, "amount is not a 128-bit unsigned integer");
    }
    return 0;
}

static int pg_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* A bytea column of exactly n bytes, in PostgreSQL's hex output ("\x0a1b..."). */
static int pg_col_bytes(struct pg_in *in, int col, uint8_t *out, size_t n)
{
    if (in->rc != 0) {
        return in->rc;
    }
    const char *s = PQgetvalue(in->res, in->row, col);
    if (PQgetisnull(in->res, in->row, col) ||
        (size_t)PQgetlength(in->res, in->row, col) != 2 + 2 * n || s[0] != '\\' || s[1] != 'x') {
        return pg_in_corrupt(in, "binary column of the wrong size");
    }
    for (size_t i = 0; i < n; i++) {
        int hi = pg_hex_digit(s[2 + 2 * i]);
        int lo = pg_hex_digit(s[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            return pg_in_corrupt(in, "binary column is not hex");
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static struct ledger_text pg_col_metadata(const struct pg_in *in, int col)
{
    struct ledger_text m = {NULL, 0};
    if (!PQgetisnull(in->res, in->row, col)) {
        m.ptr = PQgetvalue(in->res, in->row, col);
        m.len = (size_t)PQgetlength(in->res, in->row, col);
    }
    return m;
}

/* An account from a row of PG_ACCOUNT_COLS; metadata points into the result. Its seq goes to
 * *seq (may be NULL) once the row is decoded. */
static int pg_row_account(const PGresult *r, int row, struct ledger_account *a, uint64_t *seq)
{
    memset(a, 0, sizeof(*a));
    struct pg_in in = {r, row, 0};
    int64_t v = 0;
    uint32_t code = 0;
    pg_col_i64(&in, 0, 1, INT64_MAX, &v);
    pg_col_text(&in, 1, a->id, sizeof(a->id));
    pg_col_text(&in, 2, a->ledger, sizeof(a->ledger));
    pg_col_u32(&in, 3, UINT16_MAX, &code);
    pg_col_u32(&in, 4, UINT32_MAX, &a->flags);
    pg_col_u128(&in, 6, &a->debits_pending);
    pg_col_u128(&in, 7, &a->debits_posted);
    pg_col_u128(&in, 8, &a->credits_pending);
    pg_col_u128(&in, 9, &a->credits_posted);
    pg_col_i64(&in, 10, INT64_MIN, INT64_MAX, &a->created_at_ms);
    if (in.rc == 0 && seq != NULL) {
        *seq = (uint64_t)v;
    }
    a->code = (uint16_t)code;
    a->metadata = pg_col_metadata(&in, 5);
    return in.rc;
}

/* A transfer from a row of PG_TRANSFER_COLS (pending state from the LEFT JOIN); its seq as
 * pg_row_account's. */
static int pg_row_transfer(const PGresult *r, int row, struct ledger_transfer *t, uint64_t *seq)
{
    memset(t, 0, sizeof(*t));
    struct pg_in in = {r, row, 0};
    int64_t v = 0;
    uint32_t code = 0;
    uint32_t state = 0;
    pg_col_i64(&in, 0, 1, INT64_MAX, &v);
    pg_col_text(&in, 1, t->id, sizeof(t->id));
    pg_col_text(&in, 2, t->debit_account_id, sizeof(t->debit_account_id));
    pg_col_text(&in, 3, t->credit_account_id, sizeof(t->credit_account_id));
    pg_col_u128(&in, 4, &t->amount);
    pg_col_text(&in, 5, t->ledger, sizeof(t->ledger));
    pg_col_u32(&in, 6, UINT16_MAX, &code);
    pg_col_u32(&in, 7, UINT32_MAX, &t->flags);
    pg_col_text(&in, 8, t->pending_id, sizeof(t->pending_id));
    pg_col_u32(&in, 9, UINT32_MAX, &t->timeout_seconds);
    pg_col_i64(&in, 11, INT64_MIN, INT64_MAX, &t->created_at_ms);
    pg_col_u32(&in, 12, LEDGER_PENDING_EXPIRED, &state); /* NULL: not pending */
    pg_col_i64(&in, 13, 0, INT64_MAX, &t->expires_at_ms);
    if (in.rc == 0 && seq != NULL) {
        *seq = (uint64_t)v;
    }
    t->code = (uint16_t)code;
    t->metadata = pg_col_metadata(&in, 10);
    t->pending_state = (enum ledger_pending_state)state;
    t->present = LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID |
                 LEDGER_FIELD_AMOUNT | LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE;
    return in.rc;
}

/* A record from the PG_AUDIT_COLS starting at column col, copied as stored. */
static int pg_row_audit(const PGresult *res, int row, int col, struct audit_record *r)
{
    memset(r, 0, sizeof(*r));
    struct pg_in in = {res, row, 0};
    int64_t seq = 0;
    pg_col_i64(&in, col, 0, INT64_MAX, &seq);
    r->seq = (uint64_t)seq;
    pg_col_i64(&in, col + 1, INT64_MIN, INT64_MAX, &r->time_unix_ms);
    /* The text columns, in the order of PG_AUDIT_COLS. */
    struct {
        char *out;
        size_t size;
    } const texts[] = {
        {r->actor, sizeof(r->actor)},       {r->action, sizeof(r->action)},
        {r->resource, sizeof(r->resource)}, {r->decision, sizeof(r->decision)},
        {r->reason, sizeof(r->reason)},     {r->request_id, sizeof(r->request_id)},
        {r->trace_id, sizeof(r->trace_id)}, {r->source, sizeof(r->source)},
    };
    for (int i = 0; i < 8; i++) {
        pg_col_text(&in, col + 2 + i, texts[i].out, texts[i].size);
    }
    pg_col_bytes(&in, col + 10, r->prev_hash, AUDIT_HASH_BYTES);
    pg_col_bytes(&in, col + 11, r->hash, AUDIT_HASH_BYTES);
    if (in.rc != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "store: postgresql: audit record %" PRIu64 " is malformed",
                 r->seq);
    }
    return in.rc;
}

/* Column positions of a checkpoint in a row (they differ between the two statements). */
struct pg_checkpoint_cols {
    int seq, time, key_id, hash, signature;
};

static int pg_row_checkpoint(const PGresult *r, int row, const struct pg_checkpoint_cols *cols,
                             struct audit_checkpoint *cp)
{
    memset(cp, 0, sizeof(*cp));
    struct pg_in in = {r, row, 0};
    int64_t seq = 0;
    pg_col_i64(&in, cols->seq, 0, INT64_MAX, &seq);
    cp->seq = (uint64_t)seq;
    pg_col_i64(&in, cols->time, INT64_MIN, INT64_MAX, &cp->time_unix_ms);
    pg_col_text(&in, cols->key_id, cp->key_id, sizeof(cp->key_id));
    pg_col_bytes(&in, cols->hash, cp->hash, AUDIT_HASH_BYTES);
    pg_col_bytes(&in, cols->signature, cp->signature, AUDIT_SIGNATURE_BYTES);
    return in.rc;
}

/* A key from PG_APIKEY_COLS. */
static int pg_row_apikey(const PGresult *r, int row, struct store_apikey *k)
{
    memset(k, 0, sizeof(*k));
    struct pg_in in = {r, row, 0};
    pg_col_text(&in, 0, k->id, sizeof(k->id));
    pg_col_text(&in, 1, k->name, sizeof(k->name));
    pg_col_u32(&in, 2, UINT32_MAX, &k->scopes);
    pg_col_bytes(&in, 3, k->hash, APIKEY_HASH_BYTES);
    pg_col_i64(&in, 4, INT64_MIN, INT64_MAX, &k->created_at_ms);
    pg_col_text(&in, 5, k->created_by, sizeof(k->created_by));
    pg_col_i64(&in, 6, 0, INT64_MAX, &k->revoked_at_ms); /* NULL: in force */
    return in.rc;
}

/* ---------------------------------------------------------------------------------------
 * Array parameters: rows of an array statement, one PostgreSQL array literal per column.
 * ------------------------------------------------------------------------------------- */

static void pg_rows_init(struct pg_rows *rows, uint32_t ncols)
{
    ASSERT(ncols >= 1 && ncols <= PG_COLS_MAX);
    for (uint32_t i = 0; i < PG_COLS_MAX; i++) {
        buf_init(&rows->cols[i], PG_ARRAY_BYTES_MAX);
    }
    rows->ncols = ncols;
    rows->n = 0;
}

static void pg_rows_reset(struct pg_rows *rows)
{
    for (uint32_t i = 0; i < rows->ncols; i++) {
        buf_reset(&rows->cols[i]);
    }
    rows->n = 0;
}

static void pg_rows_release(struct pg_rows *rows)
{
    for (uint32_t i = 0; i < PG_COLS_MAX; i++) {
        buf_release(&rows->cols[i]);
    }
    rows->n = 0;
}

/* One row being added to rows, an element per column in column order: the first element that
 * fails leaves its code in rc, and every element after it is skipped, so that a builder adds
 * its elements one after the other and looks at rc once, in pg_row_end. */
struct pg_row {
    struct pg_rows *rows;
    uint32_t col; /* the next column */
    int rc;
};

static struct pg_row pg_row_begin(struct pg_rows *rows)
{
    return (struct pg_row){rows, 0, 0};
}

/* Counts the row in when every element went in; returns the first failure. */
static int pg_row_end(struct pg_row *w)
{
    if (w->rc == 0) {
        w->rows->n++;
    }
    return w->rc;
}

/* Starts the element of the next column ("{" before a column's first element, "," before the
 * others) and returns that column; NULL when an earlier element failed or this one does. */
static struct buf *pg_row_next(struct pg_row *w)
{
    if (w->rc != 0) {
        return NULL;
    }
    ASSERT(w->col < w->rows->ncols);
    struct buf *b = &w->rows->cols[w->col++];
    w->rc = buf_append_char(b, b->len == 0 ? '{' : ',');
    return w->rc == 0 ? b : NULL;
}

static void pg_row_null(struct pg_row *w)
{
    struct buf *b = pg_row_next(w);
    if (b != NULL) {
        w->rc = buf_append_str(b, "NULL");
    }
}

/* A text element, quoted, with '"' and '\' escaped. A NUL byte cannot be stored: -EINVAL. */
static void pg_row_text(struct pg_row *w, const char *s, size_t len)
{
    if (w->rc == 0 && memchr(s, '\0', len) != NULL) {
        w->rc = -EINVAL;
    }
    struct buf *b = pg_row_next(w);
    if (b == NULL) {
        return;
    }
    int rc = buf_append_char(b, '"');
    size_t from = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            rc = buf_append(b, s + from, i - from);
            if (rc == 0) {
                rc = buf_append_char(b, '\\');
            }
            from = i;
        }
    }
    if (rc == 0) {
        rc = buf_append(b, s + from, len - from);
    }
    w->rc = rc != 0 ? rc : buf_append_char(b, '"');
}

static void pg_row_str(struct pg_row *w, const char *s)
{
    pg_row_text(w, s, strlen(s));
}

/* A text element where an empty text is stored as NULL (metadata, a pending id). */
static void pg_row_text_or_null(struct pg_row *w, const char *s, size_t len)
{
    if (len == 0) {
        pg_row_null(w);
    } else {
        pg_row_text(w, s, len);
    }
}

static void pg_row_i64(struct pg_row *w, int64_t v)
{
    struct buf *b = pg_row_next(w);
    if (b != NULL) {
        w->rc = buf_append_i64(b, v);
    }
}

static void pg_row_u128(struct pg_row *w, u128 v)
{
    char dec[LIMIT_U128_DEC_LEN_MAX + 1];
    size_t n = u128_format(v, dec);
    struct buf *b = pg_row_next(w);
    if (b != NULL) {
        w->rc = buf_append(b, dec, n);
    }
}

/* A bytea element in hex: "\\x0a1b..." (the backslash escaped for the array literal). */
static void pg_row_bytes(struct pg_row *w, const void *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *u = p;
    struct buf *b = pg_row_next(w);
    if (b == NULL) {
        return;
    }
    int rc = buf_append(b, "\"\\\\x", 4);
    char chunk[128];
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        chunk[k++] = hex[u[i] >> 4];
        chunk[k++] = hex[u[i] & 0xf];
        if (k == sizeof(chunk)) {
            rc = buf_append(b, chunk, k);
            k = 0;
        }
    }
    if (rc == 0 && k > 0) {
        rc = buf_append(b, chunk, k);
    }
    w->rc = rc != 0 ? rc : buf_append_char(b, '"');
}

/* Ends every column of rows ("}") and makes them the parameters p of their statement. */
static int pg_rows_params(struct pg_rows *rows, struct pg_params *p)
{
    ASSERT(rows->n > 0);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < rows->ncols; i++) {
        ASSERT(rows->cols[i].len > 0); /* every row gave every column */
        rc = buf_append_char(&rows->cols[i], '}');
        pg_param_text(p, rows->cols[i].data);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Pipelines: statements sent at once and answered at once, one round trip for all.
 * ------------------------------------------------------------------------------------- */

/* Frees the results and empties the pipeline. */
static void pg_pipe_reset(struct pg_pipe *pp)
{
    for (size_t i = 0; i < pp->n; i++) {
        PQclear(pp->steps[i].res);
        pp->steps[i].res = NULL;
    }
    pp->n = 0;
}

/* Adds statement id; its parameters (st->p) are the caller's to fill. */
static struct pg_step *pg_pipe_add(struct pg_pipe *pp, enum pg_stmt id, int dup_rc,
                                   const char *what)
{
    ASSERT(pp->n < PG_PIPE_STEPS_MAX);
    struct pg_step *st = &pp->steps[pp->n++];
    st->id = id;
    st->rfmt = 0;
    st->dup_rc = dup_rc;
    st->what = what;
    st->check = PG_CHECK_NONE;
    st->buf = PG_BUF_COUNT;
    st->rows = 0;
    st->p.n = 0;
    st->res = NULL;
    return st;
}

/* Reads the answer of one statement of a pipeline into st->res; the first failure's code goes
 * to *rc (the statements after it come back aborted). Returns false when the session can no
 * longer be trusted (then c is marked failed). */
static bool pg_pipe_answer(struct pgpool_conn *c, struct pg_step *st, int *rc)
{
    PGresult *res = PQgetResult(c->pg);
    if (res == NULL) {
        *rc = *rc != 0 ? *rc : pg_fail(c, NULL, -EIO, st->what);
        c->failed = true;
        return false;
    }
    ExecStatusType es = PQresultStatus(res);
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
        st->res = res;
    } else {
        if (*rc == 0) {
            *rc = es == PGRES_PIPELINE_ABORTED ? pg_corrupt("a pipeline aborted without a failure")
                                               : pg_fail(c, res, st->dup_rc, st->what);
        }
        PQclear(res);
        if (c->failed) {
            return false;
        }
    }
    PGresult *end = PQgetResult(c->pg); /* each statement's answer ends with NULL */
    if (end != NULL) {
        PQclear(end);
        *rc = *rc != 0 ? *rc : pg_corrupt("a statement answered twice in a pipeline");
        c->failed = true;
        return false;
    }
    return true;
}

/* Runs the pipeline's statements: one round trip (libpq's pipeline mode; a lone statement is
 * run as usual). Returns 0 with each statement's result in its res (freed by pg_pipe_reset),
 * else the first failure's code, pg_fail's (the server skips the statements after it). */
static int pg_pipe_run(struct pgpool_conn *c, struct pg_pipe *pp)
{
    ASSERT(pp->n >= 1 && pp->n <= PG_PIPE_STEPS_MAX);
    int rc = 0;
    for (size_t i = 0; i < pp->n && rc == 0; i++) {
        rc = pg_prepare(c, pp->steps[i].id); /* not allowed inside the pipeline */
    }
    if (rc != 0) {
        return rc;
    }
    if (pp->n == 1) {
        struct pg_step *st = &pp->steps[0];
        return pg_run(c, st->id, &st->p, st->rfmt, st->dup_rc, st->what, &st->res);
    }
    if (PQenterPipelineMode(c->pg) != 1) {
        return pg_fail(c, NULL, -EIO, "enter pipeline mode");
    }
    size_t sent = 0;
    for (; sent < pp->n; sent++) {
        const struct pg_step *st = &pp->steps[sent];
        char name[16];
        pg_stmt_name(st->id, name);
        if (PQsendQueryPrepared(c->pg, name, st->p.n, st->p.values, st->p.lengths, st->p.formats,
                                st->rfmt) != 1) {
            break;
        }
    }
    if (sent < pp->n || PQpipelineSync(c->pg) != 1) {
        rc = pg_fail(c, NULL, -EIO, sent < pp->n ? pp->steps[sent].what : "pipeline sync");
        c->failed = true; /* half a pipeline went out: the session is discarded */
        return rc;
    }
    for (size_t i = 0; i < pp->n; i++) {
        if (!pg_pipe_answer(c, &pp->steps[i], &rc)) {
            return rc;
        }
    }
    PGresult *sync = PQgetResult(c->pg);
    bool synced = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced || PQexitPipelineMode(c->pg) != 1) {
        c->failed = true;
        return rc != 0 ? rc : pg_fail(c, NULL, -EIO, "leave pipeline mode");
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Open and close.
 * ------------------------------------------------------------------------------------- */

static uint32_t pg_or(uint32_t v, uint32_t dflt)
{
    return v != 0 ? v : dflt;
}

static void pg_tx_init(struct pg_tx *tx, struct pg_store *s)
{
    memset(tx, 0, sizeof(*tx));
    tx->s = s;
    for (int i = 0; i < PG_BUF_COUNT; i++) {
        pg_rows_init(&tx->bufs[i], pg_buf_stmts[i].ncols);
    }
    pg_rows_init(&tx->scratch, 2);
}

static void pg_tx_release_bufs(struct pg_tx *tx)
{
    for (int i = 0; i < PG_BUF_COUNT; i++) {
        pg_rows_release(&tx->bufs[i]);
    }
    pg_rows_release(&tx->scratch);
}

/* Forgets the rows buffered from buffer first on. */
static void pg_tx_reset_bufs(struct pg_tx *tx, enum pg_buf first)
{
    for (int i = (int)first; i < PG_BUF_COUNT; i++) {
        pg_rows_reset(&tx->bufs[i]);
    }
}

/* Forgets what a transaction buffered and knew (at BEGIN, and when it ends). */
static void pg_tx_reset(struct pg_tx *tx)
{
    pg_pipe_reset(&tx->pipe);
    pg_rows_reset(&tx->scratch);
    tx->begin_pending = false;
    tx->audit_n = 0;
    tx->locked = false;
    tx->tail_known = false;
    tx->tail_seq = 0;
    memset(tx->tail_hash, 0, sizeof(tx->tail_hash));
    pg_tx_reset_bufs(tx, PG_BUF_AUDIT);
}

static void pg_close(void *be)
{
    struct pg_store *s = be;
    if (s == NULL) {
        return;
    }
    pgpool_free(s->writers);
    pgpool_free(s->readers);
    if (s->txs != NULL) {
        for (uint32_t i = 0; i < s->writers_n; i++) {
            pg_tx_release_bufs(&s->txs[i]);
        }
    }
    free(s->txs);
    free(s);
}

static int pg_open(const char *location, const struct store_options *opts, void **be_out,
                   struct buf *err)
{
    *be_out = NULL;
    struct buf url;
    buf_init(&url, PG_URL_LEN_MAX);
    int rc = buf_append_str(&url, "postgresql://");
    if (rc == 0) {
        rc = buf_append_str(&url, location);
    }
    if (rc != 0) {
        (void)buf_append_str(err, "database URL is too long");
        buf_release(&url);
        return -EINVAL;
    }
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(url.data, &perr);
    if (parsed == NULL) {
        (void)buf_appendf(err, "malformed PostgreSQL URL: %s",
                          perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        buf_release(&url);
        return -EINVAL;
    }
    PQconninfoFree(parsed);

    struct pg_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        buf_release(&url);
        (void)buf_append_str(err, "out of memory");
        return -ENOMEM;
    }
    struct pgpool_options po = {
        .conninfo = url.data,
        .password = opts->password,
        .role = METRICS_DB_WRITER,
        .size = pg_or(opts->writers, PG_WRITERS_DEFAULT),
        .acquire_timeout_ms = pg_or(opts->acquire_timeout_ms, PG_ACQUIRE_TIMEOUT_MS_DEFAULT),
        .max_lifetime_seconds =
            pg_or(opts->conn_max_lifetime_seconds, PG_CONN_MAX_LIFETIME_SECONDS_DEFAULT),
        .statement_timeout_ms = pg_or(opts->statement_timeout_ms, PG_STATEMENT_TIMEOUT_MS_DEFAULT),
    };
    rc = pgpool_new(&po, &s->writers);
    if (rc == 0) {
        po.role = METRICS_DB_READER;
        po.size = pg_or(opts->pool_size, PG_POOL_SIZE_DEFAULT);
        rc = pgpool_new(&po, &s->readers);
    }
    buf_release(&url);
    if (rc != 0) {
        (void)buf_appendf(err, "cannot create the connection pools (sizes 1..%d)", PGPOOL_SIZE_MAX);
        goto out_close;
    }
    s->writers_n = pgpool_size(s->writers);
    s->txs = calloc(s->writers_n, sizeof(*s->txs));
    if (s->txs == NULL) {
        (void)buf_append_str(err, "out of memory");
        rc = -ENOMEM;
        goto out_close;
    }
    for (uint32_t i = 0; i < s->writers_n; i++) {
        pg_tx_init(&s->txs[i], s);
    }
    *be_out = s;
    return 0;

out_close:
    pg_close(s);
    return rc;
}

static uint32_t pg_writers(void *be)
{
    struct pg_store *s = be;
    return s->writers_n;
}

/* ---------------------------------------------------------------------------------------
 * Reads: a reader connection per call.
 * ------------------------------------------------------------------------------------- */

/* Runs a read on a reader connection. On 0 the caller owns *c_out and *res_out and ends with
 * pg_read_end. A connection found lost is replaced and the read tried once more. */
static int pg_read(struct pg_store *s, enum pg_stmt id, const struct pg_params *p, int rfmt,
                   struct pgpool_conn **c_out, PGresult **res_out)
{
    for (int attempt = 0;; attempt++) {
        struct pgpool_conn *c = NULL;
        int rc = pgpool_acquire(s->readers, &c);
        if (rc != 0) {
            return rc;
        }
        rc = pg_run(c, id, p, rfmt, -EIO, "read", res_out);
        if (rc == 0) {
            *c_out = c;
            return 0;
        }
        bool lost = c->failed;
        pgpool_release(s->readers, c, lost);
        if (!lost || attempt == 1) {
            return rc;
        }
    }
}

static void pg_read_end(struct pg_store *s, struct pgpool_conn *c, PGresult *res)
{
    PQclear(res);
    pgpool_release(s->readers, c, false);
}

static int pg_ping(void *be)
{
    struct pgpool_conn *c = NULL;
    PGresult *res = NULL;
    int rc = pg_read(be, PG_PING, NULL, 0, &c, &res);
    if (rc == 0) {
        pg_read_end(be, c, res);
    }
    return rc;
}

/* The caller's callback for the rows a read hands over (the one of their kind), and its
 * context. */
struct pg_fns {
    store_account_fn account;
    store_transfer_fn transfer;
    store_audit_record_fn record;
    store_audit_checkpoint_fn checkpoint;
    store_apikey_fn apikey;
    store_idem_fn idem;
    void *ctx;
};

/* A row decoder: decodes row `row` of a result and hands the item to its callback in to; once
 * decoded, the row's seq goes to *seq_out (may be NULL). Returns the decoder's failure or the
 * callback's code. */
typedef int (*pg_row_fn)(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out);

static int pg_account_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    struct ledger_account a;
    int rc = pg_row_account(res, row, &a, seq_out);
    return rc != 0 ? rc : to->account(to->ctx, &a);
}

static int pg_transfer_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    struct ledger_transfer t;
    int rc = pg_row_transfer(res, row, &t, seq_out);
    return rc != 0 ? rc : to->transfer(to->ctx, &t);
}

static int pg_record_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    struct audit_record r;
    int rc = pg_row_audit(res, row, 0, &r);
    if (rc == 0 && seq_out != NULL) {
        *seq_out = r.seq;
    }
    return rc != 0 ? rc : to->record(to->ctx, &r);
}

/* A row of PG_AUDIT_CHECKPOINTS. */
static int pg_checkpoint_to(const PGresult *res, int row, const struct pg_fns *to,
                            uint64_t *seq_out)
{
    static const struct pg_checkpoint_cols cols = {0, 1, 2, 3, 4};
    (void)seq_out;
    struct audit_checkpoint cp;
    int rc = pg_row_checkpoint(res, row, &cols, &cp);
    return rc != 0 ? rc : to->checkpoint(to->ctx, &cp);
}

static int pg_apikey_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    (void)seq_out;
    struct store_apikey k;
    int rc = pg_row_apikey(res, row, &k);
    return rc != 0 ? rc : to->apikey(to->ctx, &k);
}

/* A key copied into the caller's struct store_apikey, to->ctx (store_apikey_get). */
static int pg_apikey_copy(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    (void)seq_out;
    return pg_row_apikey(res, row, to->ctx);
}

static uint32_t pg_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A 64-bit big-endian integer (a binary bigint column). */
static uint64_t pg_be64(const uint8_t *p)
{
    return (uint64_t)pg_be32(p) << 32 | pg_be32(p + 4);
}

/* The idempotency record in the columns col.. of a row of a binary-format result (request
 * digest, status, location, body, expires_at_ms); its pointers point into the result. */
static int pg_idem_decode(const PGresult *res, int row, int col, struct store_idem_record *r)
{
    memset(r, 0, sizeof(*r));
    if (PQgetlength(res, row, col) != SHA256_BYTES || PQgetlength(res, row, col + 1) != 4 ||
        PQgetlength(res, row, col + 4) != 8) {
        return pg_corrupt("idempotency record");
    }
    memcpy(r->request_digest, PQgetvalue(res, row, col), SHA256_BYTES);
    int32_t st = (int32_t)pg_be32((const uint8_t *)PQgetvalue(res, row, col + 1));
    if (st < 100 || st > 599) {
        return pg_corrupt("idempotency record status");
    }
    r->status = st;
    r->location = PQgetvalue(res, row, col + 2); /* binary text: NUL-terminated by libpq */
    r->body = PQgetvalue(res, row, col + 3);
    r->body_len = (size_t)PQgetlength(res, row, col + 3);
    r->expires_at_ms = (int64_t)pg_be64((const uint8_t *)PQgetvalue(res, row, col + 4));
    return 0;
}

/* The idempotency record of a row of a binary-format PG_IDEM_GET result. */
static int pg_idem_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    (void)seq_out;
    struct store_idem_record r;
    int rc = pg_idem_decode(res, row, 0, &r);
    return rc != 0 ? rc : to->idem(to->ctx, &r);
}

/* Hands the first row of res to decode; -ENOENT without one. */
static int pg_first_row(const PGresult *res, pg_row_fn decode, const struct pg_fns *to)
{
    return PQntuples(res) == 0 ? -ENOENT : decode(res, 0, to, NULL);
}

/* Hands the rows of res in order to decode until one gives non-zero (that code comes back).
 * page (may be NULL): the statement was asked for page->limit + 1 rows; up to limit are handed
 * over, the seq of each to page->last_seq_out, and the extra one tells that more follow. */
static int pg_each_row(const PGresult *res, pg_row_fn decode, const struct pg_fns *to,
                       struct store_page *page)
{
    int rc = 0;
    int rows = PQntuples(res);
    for (int i = 0; i < rows && rc == 0; i++) {
        if (page != NULL && (uint32_t)i == page->limit) {
            page->more_out = true;
            break;
        }
        rc = decode(res, i, to, page != NULL ? &page->last_seq_out : NULL);
    }
    return rc;
}

/* Runs read statement id and hands its rows to decode: the first alone (-ENOENT without one)
 * when one, else as pg_each_row. */
static int pg_read_rows(struct pg_store *s, enum pg_stmt id, const struct pg_params *p, int rfmt,
                        bool one, pg_row_fn decode, const struct pg_fns *to,
                        struct store_page *page)
{
    struct pgpool_conn *c = NULL;
    PGresult *res = NULL;
    int rc = pg_read(s, id, p, rfmt, &c, &res);
    if (rc != 0) {
        return rc;
    }
    rc = one ? pg_first_row(res, decode, to) : pg_each_row(res, decode, to, page);
    pg_read_end(s, c, res);
    return rc;
}

/* A read by id ($1): its row to decode, -ENOENT without one. */
static int pg_get(struct pg_store *s, enum pg_stmt id, const char *key, pg_row_fn decode,
                  const struct pg_fns *to)
{
    struct pg_params p = {0};
    pg_param_text(&p, key);
    return pg_read_rows(s, id, &p, 0, true, decode, to, NULL);
}

/* A seq as the BIGINT it is compared with: past INT64_MAX, where no row is, INT64_MAX. */
static uint64_t pg_seq_bigint(uint64_t seq)
{
    return seq > INT64_MAX ? (uint64_t)INT64_MAX : seq;
}

/* Runs a page statement with $1 after_seq, $2 limit + 1 (and $3 when given): gives up to limit
 * rows and tells from the extra row whether more follow. */
static int pg_page(struct pg_store *s, enum pg_stmt id, uint64_t after_seq, const char *arg3,
                   struct store_page *page, pg_row_fn decode, const struct pg_fns *to)
{
    struct pg_params p = {0};
    pg_param_u64(&p, after_seq);
    pg_param_u64(&p, page->limit + 1);
    if (arg3 != NULL) {
        pg_param_text(&p, arg3);
    }
    return pg_read_rows(s, id, &p, 0, false, decode, to, page);
}

static int pg_account_get(void *be, const char *id, store_account_fn fn, void *ctx)
{
    const struct pg_fns to = {.account = fn, .ctx = ctx};
    return pg_get(be, PG_ACCOUNT_GET, id, pg_account_to, &to);
}

static int pg_transfer_get(void *be, const char *id, store_transfer_fn fn, void *ctx)
{
    const struct pg_fns to = {.transfer = fn, .ctx = ctx};
    return pg_get(be, PG_TRANSFER_GET, id, pg_transfer_to, &to);
}

static int pg_accounts_list(void *be, const char *ledger, struct store_page *page,
                            store_account_fn fn, void *ctx)
{
    const struct pg_fns to = {.account = fn, .ctx = ctx};
    ASSERT(page->after_seq <= INT64_MAX);
    return pg_page(be, ledger != NULL ? PG_ACCOUNTS_PAGE_LEDGER : PG_ACCOUNTS_PAGE, page->after_seq,
                   ledger, page, pg_account_to, &to);
}

static int pg_account_transfers_list(void *be, const char *account_id, struct store_page *page,
                                     store_transfer_fn fn, void *ctx)
{
    const struct pg_fns to = {.transfer = fn, .ctx = ctx};
    ASSERT(page->after_seq <= INT64_MAX);
    return pg_page(be, PG_ACCOUNT_TRANSFERS_PAGE, page->after_seq, account_id, page, pg_transfer_to,
                   &to);
}

static int pg_idem_get(void *be, const char *principal, const char *key, int64_t now_ms,
                       store_idem_fn fn, void *ctx)
{
    const struct pg_fns to = {.idem = fn, .ctx = ctx};
    struct pg_params p = {0};
    pg_param_text(&p, principal);
    pg_param_text(&p, key);
    pg_param_i64(&p, now_ms);
    return pg_read_rows(be, PG_IDEM_GET, &p, 1, true, pg_idem_to, &to, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Transactions on a writer slot: the ledger lock, the audit chain, buffered rows.
 * ------------------------------------------------------------------------------------- */

/* The tail from a PG_AUDIT_TAIL result: seq 0 and zero bytes when the trail is empty. */
static int pg_tail_parse(const PGresult *res, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    *seq_out = 0;
    memset(hash_out, 0, AUDIT_HASH_BYTES);
    if (PQntuples(res) != 1) {
        return 0;
    }
    struct pg_in in = {res, 0, 0};
    int64_t seq = 0;
    pg_col_i64(&in, 0, 1, LIMIT_AUDIT_INTEGER_MAX, &seq);
    int rc = pg_col_bytes(&in, 1, hash_out, AUDIT_HASH_BYTES);
    *seq_out = rc == 0 ? (uint64_t)seq : 0;
    return rc;
}

/* The trail's tail as the connection sees it (a reader: the last committed record). */
static int pg_audit_tail_on(struct pgpool_conn *c, uint64_t *seq_out,
                            uint8_t hash_out[AUDIT_HASH_BYTES])
{
    PGresult *res = NULL;
    int rc = pg_run(c, PG_AUDIT_TAIL, NULL, 0, -EIO, "read the audit tail", &res);
    if (rc == 0) {
        rc = pg_tail_parse(res, seq_out, hash_out);
        PQclear(res);
    }
    return rc;
}

/* Whether the transaction holds rows or records not yet sent. */
static bool pg_tx_dirty(const struct pg_tx *tx)
{
    for (int i = 0; i < PG_BUF_COUNT; i++) {
        if (tx->bufs[i].n > 0) {
            return true;
        }
    }
    return tx->audit_n > 0;
}

/* Forgets what the transaction buffered (it fails: the caller rolls back). */
static void pg_tx_drop(struct pg_tx *tx)
{
    pg_tx_reset_bufs(tx, PG_BUF_AUDIT);
    tx->audit_n = 0;
    tx->tail_known = false;
}

/* Empties the transaction's pipeline and puts BEGIN first in it while BEGIN is still to be
 * sent. Returns how many statements that put in (the pipeline has work past them). */
static size_t pg_tx_pipe_start(struct pg_tx *tx)
{
    pg_pipe_reset(&tx->pipe);
    if (tx->begin_pending) {
        (void)pg_pipe_add(&tx->pipe, PG_BEGIN, -EIO, "begin");
    }
    return tx->pipe.n;
}

/* Adds the statement of buffer which over its rows, if it has any, with its check. */
static int pg_tx_add_buf(struct pg_tx *tx, enum pg_buf which, enum pg_check check)
{
    struct pg_rows *rows = &tx->bufs[which];
    if (rows->n == 0) {
        return 0;
    }
    struct pg_step *st =
        pg_pipe_add(&tx->pipe, pg_buf_stmts[which].id, -EAGAIN, pg_buf_stmts[which].what);
    st->check = check;
    st->buf = which;
    st->rows = rows->n;
    return pg_rows_params(rows, &st->p);
}

/* Adds the ledger lock unless the transaction holds it. */
static void pg_tx_add_lock(struct pg_tx *tx)
{
    if (!tx->locked) {
        pg_pipe_add(&tx->pipe, PG_LEDGER_LOCK, -EAGAIN, "take the ledger lock")->check =
            PG_CHECK_LOCK;
    }
}

/* What one answered statement tells the transaction; its failure code. */
static int pg_tx_step_check(struct pg_tx *tx, const struct pg_step *st)
{
    size_t affected = 0;
    switch (st->check) {
    case PG_CHECK_NONE:
        return 0;
    case PG_CHECK_ALL:
        affected = pg_affected(st->res);
        if (affected == st->rows) {
            return 0;
        }
        log_msgf(CONFIG_LOG_ERROR, NULL, "store: postgresql: %s: %zu of %zu rows stored", st->what,
                 affected, st->rows);
        return -EIO;
    case PG_CHECK_IDEM:
        affected = pg_affected(st->res);
        if (affected == st->rows) {
            return 0;
        }
        log_msgf(CONFIG_LOG_WARN, NULL,
                 "store: postgresql: %zu idempotency record(s) stored meanwhile by another "
                 "writer; the transaction runs again",
                 st->rows - affected);
        return -EAGAIN;
    case PG_CHECK_LOCK:
        tx->locked = true;
        return 0;
    case PG_CHECK_TAIL: {
        ASSERT(tx->locked); /* the tail no one else can extend */
        int rc = pg_tail_parse(st->res, &tx->tail_seq, tx->tail_hash);
        tx->tail_known = rc == 0;
        return rc;
    }
    case PG_CHECK_COMMIT:
        if (strcmp(PQcmdStatus(st->res), "COMMIT") == 0) {
            return 0;
        }
        log_msgf(CONFIG_LOG_ERROR, NULL, "store: postgresql: commit: the transaction had failed");
        return -EIO;
    }
    return 0;
}

/* Runs the transaction's pipeline and checks its answers; the buffers it sent are emptied
 * whatever the outcome. The results stay in tx->pipe until the next pg_tx_pipe_start. */
static int pg_tx_pipe_run(struct pg_tx *tx)
{
    struct pg_pipe *pp = &tx->pipe;
    int rc = pg_pipe_run(tx->c, pp);
    tx->begin_pending = false; /* sent: BEGIN failed or not, ROLLBACK tells the server's state */
    for (size_t i = 0; i < pp->n; i++) {
        const struct pg_step *st = &pp->steps[i];
        if (rc == 0) {
            rc = pg_tx_step_check(tx, st);
        }
        if (st->buf != PG_BUF_COUNT) {
            pg_rows_reset(&tx->bufs[st->buf]);
        }
    }
    return rc;
}

/* Links the appended records after the tail, in order (audit_chain_next sets their seq,
 * prev_hash and hash, in the caller's structs), and adds them to the audit buffer. Under the
 * ledger lock, with the tail known. */
static int pg_tx_link(struct pg_tx *tx)
{
    if (tx->audit_n == 0) {
        return 0;
    }
    ASSERT(tx->locked && tx->tail_known);
    for (size_t i = 0; i < tx->audit_n; i++) {
        struct audit_record *r = tx->audit[i];
        int rc = audit_chain_next(tx->tail_hash, tx->tail_seq, r);
        if (rc != 0) {
            return rc;
        }
        ASSERT(r->seq == tx->tail_seq + 1);
        struct pg_row w = pg_row_begin(&tx->bufs[PG_BUF_AUDIT]);
        pg_row_i64(&w, (int64_t)r->seq);
        pg_row_i64(&w, r->time_unix_ms);
        const char *const texts[] = {r->actor,  r->action,     r->resource, r->decision,
                                     r->reason, r->request_id, r->trace_id, r->source};
        for (uint32_t k = 0; k < 8; k++) {
            pg_row_str(&w, texts[k]);
        }
        pg_row_bytes(&w, r->prev_hash, AUDIT_HASH_BYTES);
        pg_row_bytes(&w, r->hash, AUDIT_HASH_BYTES);
        rc = pg_row_end(&w);
        if (rc != 0) {
            return rc;
        }
        tx->tail_seq = r->seq;
        memcpy(tx->tail_hash, r->hash, AUDIT_HASH_BYTES);
    }
    tx->audit_n = 0;
    return 0;
}

/* How far pg_tx_write goes. */
enum pg_write {
    PG_WRITE_CHECKED, /* what must be answered before COMMIT; the inserts stay buffered */
    PG_WRITE_ALL,     /* everything buffered */
    PG_WRITE_COMMIT,  /* everything buffered, then COMMIT */
};

/* Writes what the transaction buffered, in at most two round trips:
 *   1. the statements whose answer decides whether the transaction may commit (idempotency
 *      records: one in force met means -EAGAIN; updates of rows this transaction locked) and,
 *      when appended records wait for their links, the ledger lock and the audit tail;
 *   2. the records linked in memory, then the inserts (accounts, transfers, pending states,
 *      audit records) under the ledger lock, so that their seq follows commit order, and COMMIT.
 * The ledger lock is taken as late as that allows: in 2 when no record waits for the tail.
 * Nothing runs when nothing is buffered (COMMIT still does unless BEGIN was never sent). On
 * failure what is buffered is dropped and the transaction must roll back. */
static int pg_tx_write(struct pg_tx *tx, enum pg_write mode)
{
    size_t base = pg_tx_pipe_start(tx);
    int rc = pg_tx_add_buf(tx, PG_BUF_IDEM, PG_CHECK_IDEM);
    if (rc == 0) {
        rc = pg_tx_add_buf(tx, PG_BUF_ACCOUNTS_UPDATE, PG_CHECK_ALL);
    }
    if (rc == 0) {
        rc = pg_tx_add_buf(tx, PG_BUF_PENDINGS_UPDATE, PG_CHECK_ALL);
    }
    if (rc == 0 && tx->audit_n > 0 && !tx->tail_known) {
        pg_tx_add_lock(tx);
        pg_pipe_add(&tx->pipe, PG_AUDIT_TAIL, -EAGAIN, "read the audit tail")->check =
            PG_CHECK_TAIL;
    }
    if (rc == 0 && tx->pipe.n > base) {
        rc = pg_tx_pipe_run(tx);
    }
    if (rc == 0) {
        rc = pg_tx_link(tx);
    }
    if (rc != 0 || mode == PG_WRITE_CHECKED) {
        goto out;
    }
    base = pg_tx_pipe_start(tx);
    if (tx->bufs[PG_BUF_ACCOUNTS_INSERT].n > 0 || tx->bufs[PG_BUF_TRANSFERS_INSERT].n > 0 ||
        tx->bufs[PG_BUF_AUDIT].n > 0) {
        pg_tx_add_lock(tx);
    }
    static const enum pg_buf inserts[] = {PG_BUF_ACCOUNTS_INSERT, PG_BUF_TRANSFERS_INSERT,
                                          PG_BUF_PENDINGS_INSERT, PG_BUF_AUDIT};
    for (size_t i = 0; i < sizeof(inserts) / sizeof(inserts[0]) && rc == 0; i++) {
        rc = pg_tx_add_buf(tx, inserts[i], PG_CHECK_ALL);
    }
    if (rc == 0 && mode == PG_WRITE_COMMIT && (tx->pipe.n > base || !tx->begin_pending)) {
        pg_pipe_add(&tx->pipe, PG_COMMIT, -EAGAIN, "commit")->check = PG_CHECK_COMMIT;
    }
    if (rc == 0 && tx->pipe.n > base) {
        rc = pg_tx_pipe_run(tx);
    }
out:
    pg_pipe_reset(&tx->pipe);
    if (rc != 0) {
        pg_tx_drop(tx);
    }
    return rc;
}

/* Runs statement id in the transaction (as pg_run), with BEGIN in the same round trip while
 * BEGIN is still to be sent. It sees what the transaction buffered: everything is written
 * first; with idem_only only the idempotency records, in the same round trip (a lookup of
 * them needs no more, and takes no lock). */
static int pg_tx_query(struct pg_tx *tx, bool idem_only, enum pg_stmt id, const struct pg_params *p,
                       int rfmt, int dup_rc, const char *what, PGresult **out)
{
    int rc = !idem_only && pg_tx_dirty(tx) ? pg_tx_write(tx, PG_WRITE_ALL) : 0;
    if (rc != 0) {
        return rc;
    }
    (void)pg_tx_pipe_start(tx);
    if (idem_only) {
        rc = pg_tx_add_buf(tx, PG_BUF_IDEM, PG_CHECK_IDEM);
    }
    if (rc == 0 && tx->pipe.n == 0) {
        return pg_run(tx->c, id, p, rfmt, dup_rc, what, out);
    }
    struct pg_step *st = pg_pipe_add(&tx->pipe, id, dup_rc, what);
    st->rfmt = rfmt;
    if (p != NULL) {
        st->p = *p;
        for (int i = 0; i < p->n; i++) { /* integers point into their own copy */
            if (p->values[i] == p->numbers[i]) {
                st->p.values[i] = st->p.numbers[i];
            }
        }
    }
    if (rc == 0) {
        rc = pg_tx_pipe_run(tx);
    }
    if (rc == 0 && out != NULL) {
        *out = st->res;
        st->res = NULL;
    }
    pg_pipe_reset(&tx->pipe);
    if (rc != 0) {
        pg_tx_drop(tx);
    }
    return rc;
}

/* pg_tx_query for a statement that sees everything. */
static int pg_tx_run(struct pg_tx *tx, enum pg_stmt id, const struct pg_params *p, int rfmt,
                     int dup_rc, const char *what, PGresult **out)
{
    return pg_tx_query(tx, false, id, p, rfmt, dup_rc, what, out);
}

/* Sends BEGIN now if it is still to be sent (before statements run outside pg_tx_run). */
static int pg_tx_begun(struct pg_tx *tx)
{
    if (!tx->begin_pending) {
        return 0;
    }
    tx->begin_pending = false;
    return pg_run(tx->c, PG_BEGIN, NULL, 0, -EIO, "begin", NULL);
}

/* Takes the ledger lock once per transaction (after writing what is buffered). */
static int pg_tx_lock(struct pg_tx *tx)
{
    int rc = pg_tx_dirty(tx) ? pg_tx_write(tx, PG_WRITE_ALL) : 0;
    if (rc != 0 || tx->locked) {
        return rc;
    }
    rc = pg_tx_run(tx, PG_LEDGER_LOCK, NULL, 0, -EAGAIN, "take the ledger lock", NULL);
    tx->locked = rc == 0;
    return rc;
}

/* The tail under the ledger lock, the records appended in this transaction included: read from
 * the table once per transaction, then kept in memory as records are linked. */
static int pg_tx_tail(struct pg_tx *tx)
{
    int rc = pg_tx_dirty(tx) ? pg_tx_write(tx, PG_WRITE_ALL) : 0;
    if (rc != 0 || tx->tail_known) {
        return rc;
    }
    (void)pg_tx_pipe_start(tx);
    pg_tx_add_lock(tx);
    pg_pipe_add(&tx->pipe, PG_AUDIT_TAIL, -EAGAIN, "read the audit tail")->check = PG_CHECK_TAIL;
    rc = pg_tx_pipe_run(tx);
    pg_pipe_reset(&tx->pipe);
    return rc;
}

/* Takes r for the trail: checked now, linked after the tail and written at the transaction's
 * next write (pg_tx_write), under the ledger lock. r stays the caller's, and must stay valid and
 * unchanged until the transaction ends. */
static int pg_tx_audit_append(struct pg_tx *tx, struct audit_record *r)
{
    char why[128];
    if (audit_record_validate(r, why, sizeof(why)) != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "store: postgresql: audit record refused: %s", why);
        return -EINVAL;
    }
    /* The buffer holds a batch's records; one that overflows it has the earlier ones written. */
    int rc = 0;
    if (tx->audit_n + tx->bufs[PG_BUF_AUDIT].n >= PG_AUDIT_BUFFER_MAX) {
        rc = pg_tx_write(tx, PG_WRITE_ALL);
    }
    if (rc == 0) {
        tx->audit[tx->audit_n++] = r;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The administrative writer: a writer slot for one call, in a transaction of its own.
 * ------------------------------------------------------------------------------------- */

/* Forgets the transaction and gives its writer slot back. */
static void pg_tx_release(struct pg_tx *tx)
{
    struct pgpool_conn *c = tx->c;
    pg_tx_reset(tx);
    tx->c = NULL;
    pgpool_release(tx->s->writers, c, false);
}

static int pg_admin_begin(struct pg_store *s, struct pg_tx **out)
{
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->writers, &c);
    if (rc != 0) {
        return rc;
    }
    struct pg_tx *tx = &s->txs[c->index];
    pg_tx_reset(tx);
    tx->c = c;
    tx->begin_pending = true; /* sent with the first statement */
    *out = tx;
    return 0;
}

/* Commits when rc is 0 (writing what is buffered first), else rolls back; releases the slot.
 * Returns the outcome. */
static int pg_admin_end(struct pg_tx *tx, int rc)
{
    if (rc == 0) {
        rc = pg_tx_write(tx, PG_WRITE_COMMIT);
    }
    if (rc != 0) {
        pg_rollback_open(tx->c, "rollback");
    }
    pg_tx_release(tx);
    return rc;
}

/* The statements of an administrative write, on tx; arg is the write's own. */
typedef int (*pg_admin_fn)(struct pg_tx *tx, const void *arg);

/* An administrative write: fn (may be NULL: none) and then, when it succeeded and audit is not
 * NULL, audit appended to the trail, in one transaction; committed on success, else rolled
 * back. Returns the outcome. */
static int pg_admin(struct pg_store *s, pg_admin_fn fn, const void *arg, struct audit_record *audit)
{
    struct pg_tx *tx = NULL;
    int rc = pg_admin_begin(s, &tx);
    if (rc != 0) {
        return rc;
    }
    rc = fn != NULL ? fn(tx, arg) : 0;
    if (rc == 0 && audit != NULL) {
        rc = pg_tx_audit_append(tx, audit);
    }
    return pg_admin_end(tx, rc);
}

/* Inserts checkpoint arg under the ledger lock, the records buffered before it written first
 * (the record it covers is stored first); a seq stored before: -EEXIST. */
static int pg_tx_checkpoint_insert(struct pg_tx *tx, const void *arg)
{
    const struct audit_checkpoint *cp = arg;
    ASSERT(cp->seq <= (uint64_t)LIMIT_AUDIT_INTEGER_MAX);
    int rc = pg_tx_lock(tx); /* writes the records appended before it first */
    if (rc != 0) {
        return rc;
    }
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1];
    size_t key_len = strnlen(cp->key_id, sizeof(cp->key_id));
    ASSERT(key_len < sizeof(key_id));
    memcpy(key_id, cp->key_id, key_len);
    key_id[key_len] = '\0';
    struct pg_params p = {0};
    pg_param_u64(&p, cp->seq);
    pg_param_i64(&p, cp->time_unix_ms);
    pg_param_text(&p, key_id);
    pg_param_bin(&p, cp->hash, AUDIT_HASH_BYTES);
    pg_param_bin(&p, cp->signature, AUDIT_SIGNATURE_BYTES);
    return pg_tx_run(tx, PG_AUDIT_CHECKPOINT_INSERT, &p, 0, -EEXIST, "insert audit checkpoint",
                     NULL);
}

static int pg_audit_append_one(void *be, struct audit_record *r)
{
    return pg_admin(be, NULL, NULL, r);
}

static int pg_audit_checkpoint_insert(void *be, const struct audit_checkpoint *cp)
{
    return pg_admin(be, pg_tx_checkpoint_insert, cp, NULL);
}

static int pg_apikey_insert_on(struct pg_tx *tx, const void *arg)
{
    const struct store_apikey *k = arg;
    struct pg_params p = {0};
    pg_param_text(&p, k->id);
    pg_param_text(&p, k->name);
    pg_param_u64(&p, k->scopes);
    pg_param_bin(&p, k->hash, APIKEY_HASH_BYTES);
    pg_param_i64(&p, k->created_at_ms);
    pg_param_text(&p, k->created_by);
    return pg_tx_run(tx, PG_APIKEY_INSERT, &p, 0, -EEXIST, "insert API key", NULL);
}

static int pg_apikey_insert(void *be, const struct store_apikey *k, struct audit_record *audit)
{
    return pg_admin(be, pg_apikey_insert_on, k, audit);
}

struct pg_revoke {
    const char *id;
    int64_t now_ms;
};

static int pg_apikey_revoke_on(struct pg_tx *tx, const void *arg)
{
    const struct pg_revoke *r = arg;
    struct pg_params p = {0};
    pg_param_text(&p, r->id);
    pg_param_i64(&p, r->now_ms);
    PGresult *res = NULL;
    int rc = pg_tx_run(tx, PG_APIKEY_REVOKE, &p, 0, -EIO, "revoke API key", &res);
    if (rc != 0) {
        return rc;
    }
    size_t n = pg_affected(res);
    PQclear(res);
    if (n > 0) {
        return 0;
    }
    /* Unknown, or revoked before: tell which, in the same transaction. */
    struct pg_params g = {0};
    pg_param_text(&g, r->id);
    rc = pg_tx_run(tx, PG_APIKEY_GET, &g, 0, -EIO, "look up API key", &res);
    if (rc == 0) {
        rc = PQntuples(res) > 0 ? -EALREADY : -ENOENT;
        PQclear(res);
    }
    return rc;
}

static int pg_apikey_revoke(void *be, const char *id, int64_t now_ms, struct audit_record *audit)
{
    const struct pg_revoke r = {id, now_ms};
    return pg_admin(be, pg_apikey_revoke_on, &r, audit);
}

static int pg_apikey_get(void *be, const char *id, struct store_apikey *out)
{
    const struct pg_fns to = {.ctx = out};
    return pg_get(be, PG_APIKEY_GET, id, pg_apikey_copy, &to);
}

static int pg_apikey_list(void *be, store_apikey_fn fn, void *ctx)
{
    const struct pg_fns to = {.apikey = fn, .ctx = ctx};
    return pg_read_rows(be, PG_APIKEY_LIST, NULL, 0, false, pg_apikey_to, &to, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Audit reads.
 * ------------------------------------------------------------------------------------- */

static int pg_audit_tail(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    struct pg_store *s = be;
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->readers, &c);
    if (rc != 0) {
        return rc;
    }
    rc = pg_audit_tail_on(c, seq_out, hash_out);
    pgpool_release(s->readers, c, false);
    return rc;
}

static int pg_audit_records(void *be, struct store_page *page, store_audit_record_fn fn, void *ctx)
{
    const struct pg_fns to = {.record = fn, .ctx = ctx};
    return pg_page(be, PG_AUDIT_PAGE, pg_seq_bigint(page->after_seq), NULL, page, pg_record_to,
                   &to);
}

static int pg_audit_checkpoints(void *be, uint64_t after_seq, store_audit_checkpoint_fn fn,
                                void *ctx)
{
    const struct pg_fns to = {.checkpoint = fn, .ctx = ctx};
    struct pg_params p = {0};
    pg_param_u64(&p, pg_seq_bigint(after_seq));
    return pg_read_rows(be, PG_AUDIT_CHECKPOINTS, &p, 0, false, pg_checkpoint_to, &to, NULL);
}

/* A row of PG_AUDIT_TRAIL: a record or a checkpoint, to its callback. */
static int pg_trail_to(const PGresult *res, int row, const struct pg_fns *to, uint64_t *seq_out)
{
    /* The checkpoint's columns within a row of PG_AUDIT_TRAIL. */
    static const struct pg_checkpoint_cols cols = {1, 2, 3, PG_AUDIT_COLS_COUNT,
                                                   PG_AUDIT_COLS_COUNT + 1};
    (void)seq_out;
    struct pg_in in = {res, row, 0};
    int64_t kind = 0;
    int rc = pg_col_i64(&in, 0, 0, 1, &kind);
    if (rc != 0) {
        return rc;
    }
    if (kind == 0) {
        struct audit_record r;
        rc = pg_row_audit(res, row, 1, &r);
        return rc != 0 ? rc : to->record(to->ctx, &r);
    }
    struct audit_checkpoint cp;
    rc = pg_row_checkpoint(res, row, &cols, &cp);
    return rc != 0 ? rc : to->checkpoint(to->ctx, &cp);
}

/* The whole trail from one snapshot (a read-only REPEATABLE READ transaction), streamed a row
 * at a time (libpq's single-row mode), so memory stays constant however long the trail. */
static int pg_audit_trail(void *be, uint64_t after_seq, store_audit_record_fn record_fn,
                          store_audit_checkpoint_fn checkpoint_fn, void *ctx)
{
    struct pg_store *s = be;
    const struct pg_fns to = {.record = record_fn, .checkpoint = checkpoint_fn, .ctx = ctx};
    struct pg_params p = {0};
    pg_param_u64(&p, pg_seq_bigint(after_seq));
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->readers, &c);
    if (rc != 0) {
        return rc;
    }
    rc = pg_exec_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin snapshot");
    if (rc == 0) {
        rc = pg_prepare(c, PG_AUDIT_TRAIL);
    }
    if (rc != 0) {
        goto out_release;
    }
    char name[16];
    pg_stmt_name(PG_AUDIT_TRAIL, name);
    if (PQsendQueryPrepared(c->pg, name, p.n, p.values, p.lengths, p.formats, 0) != 1 ||
        PQsetSingleRowMode(c->pg) != 1) {
        rc = pg_fail(c, NULL, -EIO, "read the audit trail");
        goto out_release;
    }
    /* Every result is read, even after a callback stopped, so the connection is idle again. */
    PGresult *res = NULL;
    while ((res = PQgetResult(c->pg)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE) {
            if (rc == 0) {
                rc = pg_trail_to(res, 0, &to, NULL);
            }
        } else if (st != PGRES_TUPLES_OK && rc == 0) {
            rc = pg_fail(c, res, -EIO, "read the audit trail");
        }
        PQclear(res);
    }
    if (!c->failed) {
        int erc = pg_exec_sql(c, rc == 0 ? "COMMIT" : "ROLLBACK", "end snapshot");
        rc = rc != 0 ? rc : erc;
    }

out_release:
    pg_rollback_open(c, "end snapshot");
    pgpool_release(s->readers, c, false);
    return rc;
}

static int pg_audit_checkpoint_last(void *be, uint64_t *seq_out, int64_t *time_unix_ms_out)
{
    struct pgpool_conn *c = NULL;
    PGresult *res = NULL;
    int rc = pg_read(be, PG_AUDIT_CHECKPOINT_LAST, NULL, 0, &c, &res);
    if (rc != 0) {
        return rc;
    }
    if (PQntuples(res) == 1) {
        struct pg_in in = {res, 0, 0};
        int64_t seq = 0;
        pg_col_i64(&in, 0, 1, INT64_MAX, &seq);
        rc = pg_col_i64(&in, 1, INT64_MIN, INT64_MAX, time_unix_ms_out);
        *seq_out = rc == 0 ? (uint64_t)seq : 0;
    }
    pg_read_end(be, c, res);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Migrations.
 * ------------------------------------------------------------------------------------- */

/* The migration in progress on a writer slot of its own (store_internal.h, mig_*). */
struct pg_mig {
    struct pg_tx *tx;
    bool transaction; /* else each statement commits alone; the lock is the session's */
};

/* Whether a table exists (before the first migration, schema_migrations may not). */
static int pg_table_exists(struct pgpool_conn *c, const char *table, bool *out)
{
    const char *values[1] = {table};
    PGresult *res = PQexecParams(c->pg, "SELECT to_regclass($1::text) IS NOT NULL", 1, NULL, values,
                                 NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = pg_fail(c, res, -EIO, "look for a table");
    } else {
        *out = PQgetvalue(res, 0, 0)[0] == 't';
    }
    PQclear(res);
    return rc;
}

/* Whether schema_migrations has the columns added after its first version. */
static int pg_migrations_complete(struct pgpool_conn *c, bool *out)
{
    PGresult *res = PQexec(c->pg, "SELECT count(*) FROM pg_attribute"
                                  " WHERE attrelid = to_regclass('schema_migrations')"
                                  " AND attname IN ('duration_ms', 'applied_by')"
                                  " AND NOT attisdropped");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = pg_fail(c, res, -EIO, "read schema_migrations columns");
    } else {
        *out = strcmp(PQgetvalue(res, 0, 0), "2") == 0;
    }
    PQclear(res);
    return rc;
}

static int pg_mig_rows_on(struct pgpool_conn *c, struct store_migration_row **rows_out,
                          size_t *n_out)
{
    *rows_out = NULL;
    *n_out = 0;
    bool exists = false;
    int rc = pg_table_exists(c, "schema_migrations", &exists);
    if (rc != 0 || !exists) {
        return rc;
    }
    bool complete = false;
    rc = pg_migrations_complete(c, &complete);
    if (rc != 0) {
        return rc;
    }
    PGresult *res = PQexec(c->pg, complete ? "SELECT version, name, checksum, applied_at_ms,"
                                             " coalesce(duration_ms, -1), coalesce(applied_by, '')"
                                             " FROM schema_migrations ORDER BY version"
                                           : "SELECT version, name, checksum, applied_at_ms, -1, ''"
                                             " FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_fail(c, res, -EIO, "read schema_migrations");
        PQclear(res);
        return rc;
    }
    int n = PQntuples(res);
    if (n > LIMIT_MIGRATION_FILES_MAX) {
        PQclear(res);
        return pg_corrupt("schema_migrations has more rows than migrations can exist");
    }
    struct store_migration_row *rows = n > 0 ? calloc((size_t)n, sizeof(*rows)) : NULL;
    if (n > 0 && rows == NULL) {
        PQclear(res);
        return -ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        struct store_migration_row *r = &rows[i];
        struct pg_in in = {res, i, 0};
        int64_t version = 0;
        rc = pg_col_i64(&in, 0, 0, UINT32_MAX, &version);
        if (rc == 0) {
            rc = pg_col_i64(&in, 3, INT64_MIN, INT64_MAX, &r->applied_at_ms);
        }
        if (rc == 0) {
            rc = pg_col_i64(&in, 4, -1, INT64_MAX, &r->duration_ms);
        }
        r->version = (uint32_t)version;
        snprintf(r->name, sizeof(r->name), "%s", PQgetvalue(res, i, 1));
        snprintf(r->checksum, sizeof(r->checksum), "%s", PQgetvalue(res, i, 2));
        snprintf(r->applied_by, sizeof(r->applied_by), "%s", PQgetvalue(res, i, 5));
    }
    PQclear(res);
    if (rc != 0) {
        free(rows);
        return rc;
    }
    *rows_out = rows;
    *n_out = (size_t)n;
    return 0;
}

static int pg_mig_rows(void *be, void *mtx, struct store_migration_row **rows, size_t *n)
{
    struct pg_store *s = be;
    if (mtx != NULL) {
        return pg_mig_rows_on(((struct pg_mig *)mtx)->tx->c, rows, n);
    }
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->readers, &c);
    if (rc != 0) {
        return rc;
    }
    rc = pg_mig_rows_on(c, rows, n);
    pgpool_release(s->readers, c, false);
    return rc;
}

/* Runs sql on the migration's connection, its error (without the trailing newline) into err. */
static int pg_mig_run(struct pgpool_conn *c, const char *sql, const char *what, struct buf *err)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    const char *msg = PQresultErrorMessage(res);
    if (msg == NULL || msg[0] == '\0') {
        msg = PQerrorMessage(c->pg);
    }
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }
    (void)buf_append(err, msg, len);
    int rc = pg_fail(c, res, -EIO, what);
    PQclear(res);
    return rc;
}

/* Takes the migration lock on a writer slot that is discarded afterwards (a migration may SET
 * what it likes); statement_timeout is off for it (a migration may rewrite a large table),
 * lock_timeout stays the session's unless the file sets its own. */
static int pg_mig_begin(void *be, bool transaction, void **mtx, struct buf *err)
{
    struct pg_store *s = be;
    struct pg_mig *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    m->transaction = transaction;
    int rc = pg_admin_begin(s, &m->tx);
    if (rc != 0) {
        (void)buf_append_str(err, "cannot reach the database to migrate");
        free(m);
        return rc;
    }
    struct pgpool_conn *c = m->tx->c;
    /* Another process's migration may hold the lock for as long as it runs: wait up to
     * PG_MIGRATE_LOCK_WAIT, then give the migration's own statements the session's
     * lock_timeout back. */
    if (transaction) {
        rc = pg_tx_begun(m->tx);
        if (rc == 0) {
            rc = pg_mig_run(c,
                            "SET LOCAL statement_timeout = 0;"
                            " SET LOCAL lock_timeout = '" PG_MIGRATE_LOCK_WAIT "';"
                            " SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK_KEY ");"
                            " SET LOCAL lock_timeout TO DEFAULT",
                            "migration lock", err);
        }
    } else {
        m->tx->begin_pending = false;
        rc = pg_mig_run(c,
                        "SET statement_timeout = 0; SET lock_timeout = '" PG_MIGRATE_LOCK_WAIT
                        "'; SELECT pg_advisory_lock(" PG_MIGRATE_LOCK_KEY
                        "); SET lock_timeout TO DEFAULT",
                        "migration lock", err);
    }
    if (rc == 0) {
        rc = pg_mig_run(c, pg_bootstrap_sql, "create schema_migrations", err);
    }
    bool complete = false;
    if (rc == 0) {
        rc = pg_migrations_complete(c, &complete);
    }
    if (rc == 0 && !complete) {
        rc = pg_mig_run(c,
                        "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS duration_ms BIGINT,"
                        " ADD COLUMN IF NOT EXISTS applied_by TEXT",
                        "complete schema_migrations", err);
    }
    if (rc != 0) {
        pg_rollback_open(c, "rollback");
        pg_tx_reset(m->tx);
        m->tx->c = NULL;
        pgpool_release(s->writers, c, true);
        free(m);
        return rc;
    }
    *mtx = m;
    return 0;
}

static int pg_mig_exec(void *mtx, const char *sql, struct buf *err)
{
    struct pg_mig *m = mtx;
    return pg_mig_run(m->tx->c, sql, "migration", err);
}

/* After a file run outside a transaction: a CREATE INDEX CONCURRENTLY that failed (or that IF
 * NOT EXISTS skipped after an earlier failure) leaves an INVALID index that is never used. */
static int pg_mig_invalid_indexes(struct pgpool_conn *c, struct buf *err)
{
    PGresult *res = PQexec(c->pg, "SELECT string_agg(ic.relname, ', ' ORDER BY ic.relname)"
                                  " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
                                  " JOIN pg_namespace n ON n.oid = ic.relnamespace"
                                  " WHERE NOT i.indisvalid AND n.nspname = current_schema()");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = pg_fail(c, res, -EIO, "look for invalid indexes");
    } else if (!PQgetisnull(res, 0, 0)) {
        (void)buf_appendf(err,
                          "INVALID index %s (a CONCURRENTLY build failed): drop it with DROP "
                          "INDEX CONCURRENTLY and run the migration again",
                          PQgetvalue(res, 0, 0));
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

static int pg_mig_record(void *mtx, const struct store_migration_row *row, struct buf *err)
{
    struct pg_mig *m = mtx;
    struct pgpool_conn *c = m->tx->c;
    int rc = m->transaction ? 0 : pg_mig_invalid_indexes(c, err);
    if (rc == 0 && !m->transaction) {
        rc = pg_mig_run(c, "BEGIN", "begin", err);
    }
    if (rc != 0) {
        return rc;
    }
    char version[16];
    char at[24];
    char duration[24];
    snprintf(version, sizeof(version), "%" PRIu32, row->version);
    snprintf(at, sizeof(at), "%" PRId64, row->applied_at_ms);
    snprintf(duration, sizeof(duration), "%" PRId64, row->duration_ms);
    const char *values[6] = {version, row->name, row->checksum, at, duration, row->applied_by};
    PGresult *res = PQexecParams(c->pg,
                                 "INSERT INTO schema_migrations (version, name, checksum,"
                                 " applied_at_ms, duration_ms, applied_by) VALUES ($1::bigint,"
                                 " $2::text, $3::text, $4::bigint, $5::bigint, $6::text)",
                                 6, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        (void)buf_appendf(err, "cannot record the migration: %s", PQresultErrorMessage(res));
        rc = pg_fail(c, res, -EIO, "record migration");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    bool trail = false;
    rc = pg_table_exists(c, "audit_records", &trail);
    if (rc != 0 || !trail) {
        return rc; /* before 0002: no trail to write to */
    }
    struct audit_record r;
    rc = store_migration_audit_record(row, &r);
    if (rc != 0) {
        (void)buf_append_str(err, "the actor is not valid in an audit record");
        return rc;
    }
    rc = pg_tx_audit_append(m->tx, &r);
    if (rc == 0) {
        rc = pg_tx_write(m->tx, PG_WRITE_ALL);
    }
    if (rc != 0) {
        (void)buf_appendf(err, "cannot append the audit record: %s", PQerrorMessage(c->pg));
    }
    return rc;
}

static int pg_mig_end(void *mtx, bool commit, struct buf *err)
{
    struct pg_mig *m = mtx;
    struct pg_tx *tx = m->tx;
    struct pgpool_conn *c = tx->c;
    int rc = 0;
    if (commit && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        rc = pg_tx_write(tx, PG_WRITE_COMMIT);
        if (rc != 0) {
            (void)buf_appendf(err, "cannot commit: %s", PQerrorMessage(c->pg));
        }
    }
    pg_rollback_open(c, "rollback");
    /* The session may carry the file's SET and the session lock: never reused. */
    pg_tx_reset(tx);
    tx->c = NULL;
    pgpool_release(tx->s->writers, c, true);
    free(m);
    return rc;
}

/* ---- The schema as text ---- */

/* The rows of a catalog query (*out to PQclear), or its error in err. */
static int pg_dump_query(struct pgpool_conn *c, const char *sql, PGresult **out, struct buf *err)
{
    PGresult *res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)buf_appendf(err, "cannot read the schema: %s", PQresultErrorMessage(res));
        int rc = pg_fail(c, res, -EIO, "read the schema");
        PQclear(res);
        return rc;
    }
    *out = res;
    return 0;
}

#define PG_DUMP_OWN_NS                                                                             \
    " JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = current_schema()"           \
    " AND cl.relname <> 'schema_migrations'"

static int pg_dump_tables(struct pgpool_conn *c, struct buf *out, struct buf *err)
{
    PGresult *res = NULL;
    int rc = pg_dump_query(
        c,
        "SELECT cl.relname, a.attname, format_type(a.atttypid, a.atttypmod),"
        " CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(co.collname) END,"
        " a.attnotnull, pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_class cl JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0"
        " AND NOT a.attisdropped JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_collation co ON co.oid = a.attcollation"
        " LEFT JOIN pg_attrdef d ON d.adrelid = cl.oid AND d.adnum = a.attnum" PG_DUMP_OWN_NS
        " AND cl.relkind IN ('r', 'p') ORDER BY cl.relname, a.attnum",
        &res, err);
    if (rc != 0) {
        return rc;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n && rc == 0; i++) {
        const char *table = PQgetvalue(res, i, 0);
        bool first = i == 0 || strcmp(PQgetvalue(res, i - 1, 0), table) != 0;
        bool last = i == n - 1 || strcmp(PQgetvalue(res, i + 1, 0), table) != 0;
        if (first) {
            rc = buf_appendf(out, "CREATE TABLE %s (\n", table);
        }
        if (rc == 0) {
            rc = buf_appendf(out, "    %s %s", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        }
        if (rc == 0 && !PQgetisnull(res, i, 3)) {
            rc = buf_appendf(out, " COLLATE %s", PQgetvalue(res, i, 3));
        }
        if (rc == 0 && PQgetvalue(res, i, 4)[0] == 't') {
            rc = buf_append_str(out, " NOT NULL");
        }
        if (rc == 0 && !PQgetisnull(res, i, 5)) {
            rc = buf_appendf(out, " DEFAULT %s", PQgetvalue(res, i, 5));
        }
        if (rc == 0) {
            rc = buf_append_str(out, last ? "\n);\n\n" : ",\n");
        }
    }
    PQclear(res);
    return rc;
}

static int pg_dump_sequences(struct pgpool_conn *c, struct buf *out, struct buf *err)
{
    PGresult *res = NULL;
    int rc =
        pg_dump_query(c,
                      "SELECT cl.relname, format_type(s.seqtypid, NULL), s.seqstart,"
                      " s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle"
                      " FROM pg_sequence s JOIN pg_class cl ON cl.oid = s.seqrelid" PG_DUMP_OWN_NS
                      " ORDER BY cl.relname",
                      &res, err);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        rc = buf_appendf(out,
                         "CREATE SEQUENCE %s AS %s START %s INCREMENT %s MINVALUE %s MAXVALUE %s "
                         "CACHE %s%s;\n\n",
                         PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                         PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
                         PQgetvalue(res, i, 6), PQgetvalue(res, i, 7)[0] == 't' ? " CYCLE" : "");
    }
    PQclear(res);
    return rc;
}

/* One statement per row: the first column's text, ";" added unless it ends with one. */
static int pg_dump_texts(struct pgpool_conn *c, const char *sql, struct buf *out, struct buf *err)
{
    PGresult *res = NULL;
    int rc = pg_dump_query(c, sql, &res, err);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *text = PQgetvalue(res, i, 0);
        size_t len = strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
            len--;
        }
        bool semicolon = len > 0 && text[len - 1] == ';';
        rc = buf_appendf(out, "%.*s%s\n\n", (int)len, text, semicolon ? "" : ";");
    }
    PQclear(res);
    return rc;
}

static int pg_schema_dump(void *be, struct buf *out, struct buf *err)
{
    struct pg_store *s = be;
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->readers, &c);
    if (rc != 0) {
        (void)buf_append_str(err, "cannot reach the database");
        return rc;
    }
    /* One snapshot for every catalog read. */
    rc = pg_exec_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin");
    if (rc == 0) {
        rc = pg_dump_tables(c, out, err);
    }
    if (rc == 0) {
        rc = pg_dump_texts(
            c,
            "SELECT 'ALTER TABLE ' || cl.relname || ' ADD CONSTRAINT '"
            " || quote_ident(con.conname) || ' ' || pg_get_constraintdef(con.oid)"
            " FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid" PG_DUMP_OWN_NS
            " ORDER BY cl.relname, con.conname",
            out, err);
    }
    if (rc == 0) {
        rc = pg_dump_texts(c,
                           "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
                           " JOIN pg_class ic ON ic.oid = i.indexrelid"
                           " JOIN pg_class cl ON cl.oid = i.indrelid" PG_DUMP_OWN_NS
                           " AND NOT EXISTS (SELECT 1 FROM pg_constraint con"
                           " WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
                           " AND con.contype IN ('p', 'u', 'x'))"
                           " ORDER BY cl.relname, ic.relname",
                           out, err);
    }
    if (rc == 0) {
        rc = pg_dump_sequences(c, out, err);
    }
    if (rc == 0) {
        rc = pg_dump_texts(c,
                           "SELECT 'CREATE VIEW ' || cl.relname || ' AS' || chr(10)"
                           " || pg_get_viewdef(cl.oid) FROM pg_class cl" PG_DUMP_OWN_NS
                           " AND cl.relkind IN ('v', 'm') ORDER BY cl.relname",
                           out, err);
    }
    if (rc == 0) {
        rc = pg_dump_texts(c,
                           "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
                           " JOIN pg_namespace n ON n.oid = p.pronamespace"
                           " WHERE n.nspname = current_schema()"
                           " ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)",
                           out, err);
    }
    if (rc == 0) {
        rc = pg_dump_texts(c,
                           "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t"
                           " JOIN pg_class cl ON cl.oid = t.tgrelid" PG_DUMP_OWN_NS
                           " AND NOT t.tgisinternal ORDER BY cl.relname, t.tgname",
                           out, err);
    }
    pg_rollback_open(c, "rollback");
    pgpool_release(s->readers, c, false);
    return rc;
}

/* Rows of table (in the connection's schema), counted up to cap + 1. */
static int pg_table_rows(void *be, const char *table, uint64_t cap, uint64_t *rows)
{
    struct pg_store *s = be;
    struct pgpool_conn *c = NULL;
    int rc = pgpool_acquire(s->readers, &c);
    if (rc != 0) {
        return rc;
    }
    bool exists = false;
    char *ident = NULL;
    rc = pg_table_exists(c, table, &exists);
    if (rc == 0 && !exists) {
        rc = -ENOENT;
    }
    if (rc == 0) {
        ident = PQescapeIdentifier(c->pg, table, strlen(table));
        rc = ident != NULL ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %llu) s", ident,
                 (unsigned long long)cap + 1);
        PGresult *res = PQexec(c->pg, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            rc = pg_fail(c, res, -EIO, "count rows");
        } else {
            *rows = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        }
        PQclear(res);
    }
    PQfreemem(ident);
    pgpool_release(s->readers, c, false);
    return rc;
}

/* ---- A fresh database beside the configured one ---- */

/* location with its database name replaced by dbname, appended to out. */
static int pg_location_with_db(const char *location, const char *dbname, struct buf *out)
{
    const char *query = strchr(location, '?');
    size_t end = query != NULL ? (size_t)(query - location) : strlen(location);
    const char *slash = memchr(location, '/', end);
    size_t authority = slash != NULL ? (size_t)(slash - location) : end;
    int rc = buf_append(out, location, authority);
    if (rc == 0) {
        rc = buf_appendf(out, "/%s%s", dbname, query != NULL ? query : "");
    }
    return rc;
}

/* Runs sql on a connection of its own to location (the server's, not the pool's). */
static int pg_scratch_admin(const char *location, const struct store_options *opts, const char *sql,
                            struct buf *err)
{
    struct buf url;
    buf_init(&url, PG_URL_LEN_MAX);
    int rc = buf_appendf(&url, "postgresql://%s", location);
    if (rc != 0) {
        buf_release(&url);
        (void)buf_append_str(err, "the database URL is too long");
        return rc;
    }
    const char *keys[] = {"dbname", "application_name", "password", NULL};
    const char *values[] = {url.data, "ledgerd", opts->password, NULL};
    if (opts->password == NULL) {
        keys[2] = NULL;
    }
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    buf_release(&url);
    if (PQstatus(pg) != CONNECTION_OK) {
        (void)buf_appendf(err, "cannot connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return -EIO;
    }
    PGresult *res = PQexec(pg, sql);
    rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        (void)buf_appendf(err, "%s", PQresultErrorMessage(res));
        rc = -EIO;
    }
    PQclear(res);
    PQfinish(pg);
    return rc;
}

static int pg_scratch_create(const char *location, const struct store_options *opts,
                             struct buf *scratch, struct buf *err)
{
    char name[64];
    snprintf(name, sizeof(name), "ledgerd_fresh_%ld_%" PRId64, (long)getpid(),
             clock_unix_ns() % 1000000000);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    int rc = pg_scratch_admin(location, opts, sql, err);
    if (rc != 0) {
        (void)buf_append_str(err, " (a fresh database for the check needs CREATEDB)");
        return rc;
    }
    return pg_location_with_db(location, name, scratch);
}

static void pg_scratch_drop(const char *location, const struct store_options *opts,
                            const char *scratch)
{
    const char *query = strchr(scratch, '?');
    size_t end = query != NULL ? (size_t)(query - scratch) : strlen(scratch);
    const char *slash = memchr(scratch, '/', end);
    if (slash == NULL) {
        return;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %.*s WITH (FORCE)",
             (int)(end - (size_t)(slash + 1 - scratch)), slash + 1);
    struct buf err;
    buf_init(&err, 1024);
    if (pg_scratch_admin(location, opts, sql, &err) != 0) {
        log_msgf(CONFIG_LOG_WARN, NULL, "store: postgres: cannot drop the fresh database: %s",
                 err.data != NULL ? err.data : "");
    }
    buf_release(&err);
}

/* ---------------------------------------------------------------------------------------
 * The commit workers' transactions.
 * ------------------------------------------------------------------------------------- */

/* The calling thread's transaction on this store. */
static struct pg_tx *pg_tx_of(struct pg_store *s)
{
    struct pg_tx *tx = pg_tx_cur;
    ASSERT(tx != NULL && tx->s == s && tx->c != NULL); /* inside store_tx_begin .. commit */
    return tx;
}

/* The transaction's scratch arrays, emptied, with ncols columns. */
static struct pg_rows *pg_tx_scratch(struct pg_tx *tx, uint32_t ncols)
{
    ASSERT(ncols >= 1 && ncols <= PG_COLS_MAX);
    pg_rows_reset(&tx->scratch);
    tx->scratch.ncols = ncols;
    return &tx->scratch;
}

static int pg_tx_begin(void *be)
{
    struct pg_store *s = be;
    ASSERT(pg_tx_cur == NULL); /* one transaction per thread */
    struct pg_tx *tx = NULL;
    int rc = pg_admin_begin(s, &tx);
    if (rc == 0) {
        pg_tx_cur = tx;
    }
    return rc;
}

/* Ends the calling thread's transaction and gives its connection back. */
static void pg_tx_end(struct pg_tx *tx)
{
    pg_tx_cur = NULL;
    pg_tx_release(tx);
}

/* Writes what is buffered and commits, in one round trip when no record waits for the tail.
 * The transaction ends whatever the outcome (a failed one is rolled back here): the caller's
 * rollback that follows is a no-op. */
static int pg_tx_commit(void *be)
{
    struct pg_tx *tx = pg_tx_of(be);
    int rc = pg_tx_write(tx, PG_WRITE_COMMIT);
    if (rc != 0) {
        pg_rollback_open(tx->c, "rollback");
    }
    pg_tx_end(tx);
    return rc;
}

static void pg_tx_rollback(void *be)
{
    struct pg_tx *tx = pg_tx_cur;
    if (tx == NULL) {
        return; /* ended by a failed commit */
    }
    ASSERT(tx->s == be);
    pg_rollback_open(tx->c, "rollback");
    pg_tx_end(tx);
}

/* What a bulk load loads: accounts, or transfers with their pending state. */
enum pg_load_kind { PG_LOAD_ACCOUNTS, PG_LOAD_TRANSFERS };

static bool pg_load_in_book(const struct ledger_book *b, enum pg_load_kind kind, const char *id)
{
    return kind == PG_LOAD_ACCOUNTS ? ledger_book_account_find(b, id) != NULL
                                    : ledger_book_transfer_find(b, id) != NULL;
}

/* The rows of a bulk load go into the book (ctx). */
static int pg_book_account(void *ctx, const struct ledger_account *a)
{
    return ledger_book_account_load(ctx, a);
}

static int pg_book_transfer(void *ctx, const struct ledger_transfer *t)
{
    return ledger_book_transfer_load(ctx, t);
}

/* Loads (and locks, in id order) the rows of ids not yet in the book, in one statement:
 * accounts, or transfers with the pending state (locked too). */
static int pg_load(struct pg_tx *tx, enum pg_load_kind kind, const char *const *ids, size_t n,
                   struct ledger_book *b)
{
    struct pg_rows *rows = pg_tx_scratch(tx, 1);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ids[i][0] != '\0' && !pg_load_in_book(b, kind, ids[i])) {
            struct pg_row w = pg_row_begin(rows);
            pg_row_str(&w, ids[i]);
            rc = pg_row_end(&w);
        }
    }
    if (rc != 0 || rows->n == 0) {
        pg_rows_reset(rows);
        return rc;
    }
    struct pg_params p = {0};
    rc = pg_rows_params(rows, &p);
    PGresult *res = NULL;
    if (rc == 0) {
        rc = kind == PG_LOAD_ACCOUNTS
                 ? pg_tx_run(tx, PG_ACCOUNTS_LOCK, &p, 0, -EAGAIN, "load accounts", &res)
                 : pg_tx_run(tx, PG_TRANSFERS_LOCK, &p, 0, -EAGAIN, "load transfers", &res);
    }
    pg_rows_reset(rows);
    if (rc != 0) {
        return rc;
    }
    const struct pg_fns to = {.account = pg_book_account, .transfer = pg_book_transfer, .ctx = b};
    rc = pg_each_row(res, kind == PG_LOAD_ACCOUNTS ? pg_account_to : pg_transfer_to, &to, NULL);
    PQclear(res);
    return rc;
}

static int pg_wr_account_load(void *be, const char *id, struct ledger_book *b)
{
    return pg_load(pg_tx_of(be), PG_LOAD_ACCOUNTS, &id, 1, b);
}

static int pg_wr_transfer_load(void *be, const char *id, struct ledger_book *b)
{
    return pg_load(pg_tx_of(be), PG_LOAD_TRANSFERS, &id, 1, b);
}

static int pg_wr_accounts_load(void *be, const char *const *ids, size_t n, struct ledger_book *b)
{
    return pg_load(pg_tx_of(be), PG_LOAD_ACCOUNTS, ids, n, b);
}

static int pg_wr_transfers_load(void *be, const char *const *ids, size_t n, struct ledger_book *b)
{
    return pg_load(pg_tx_of(be), PG_LOAD_TRANSFERS, ids, n, b);
}

static int pg_wr_due_pendings(void *be, int64_t now_ms, size_t limit, struct ledger_book *b,
                              char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out)
{
    struct pg_tx *tx = pg_tx_of(be);
    ASSERT(limit <= LIMIT_EXPIRY_SWEEP_MAX);
    struct pg_params p = {0};
    pg_param_i64(&p, now_ms);
    pg_param_u64(&p, limit);
    PGresult *res = NULL;
    int rc = pg_tx_run(tx, PG_DUE_PENDINGS, &p, 0, -EAGAIN, "due pendings", &res);
    if (rc != 0) {
        return rc;
    }
    size_t n = (size_t)PQntuples(res);
    if (n > limit) {
        n = limit;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pg_in in = {res, (int)i, 0};
        rc = pg_col_text(&in, 0, ids_out[i], LIMIT_ID_LEN_MAX + 1);
    }
    PQclear(res);
    if (rc != 0 || n == 0) {
        return rc;
    }
    /* The transfers (their pending rows are ours already), then their accounts in one sorted,
     * locking load. */
    const char *ptrs[2 * LIMIT_EXPIRY_SWEEP_MAX];
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = ids_out[i];
    }
    rc = pg_load(tx, PG_LOAD_TRANSFERS, ptrs, n, b);
    size_t k = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct ledger_transfer *t = ledger_book_transfer_find(b, ids_out[i]);
        if (t == NULL) {
            rc = pg_corrupt("pending transfer without its transfer");
            break;
        }
        ptrs[k++] = t->debit_account_id;
        ptrs[k++] = t->credit_account_id;
    }
    if (rc == 0) {
        rc = pg_load(tx, PG_LOAD_ACCOUNTS, ptrs, k, b);
    }
    *n_out = rc == 0 ? n : 0;
    return rc;
}

static int pg_wr_next_deadline(void *be, int64_t *deadline_ms_out)
{
    struct pg_store *s = be;
    struct pg_tx *tx = pg_tx_cur;
    PGresult *res = NULL;
    struct pgpool_conn *c = NULL;
    int rc = 0;
    if (tx != NULL && tx->s == s) {
        rc = pg_tx_run(tx, PG_NEXT_DEADLINE, NULL, 0, -EAGAIN, "next deadline", &res);
    } else {
        rc = pg_read(s, PG_NEXT_DEADLINE, NULL, 0, &c, &res); /* between transactions */
    }
    if (rc != 0) {
        return rc;
    }
    struct pg_in in = {res, 0, 0};
    rc = PQntuples(res) == 1 ? pg_col_i64(&in, 0, 0, INT64_MAX, deadline_ms_out)
                             : pg_corrupt("next deadline");
    if (c != NULL) {
        pg_read_end(s, c, res);
    } else {
        PQclear(res);
    }
    return rc;
}

/* ledger_book_changes callbacks: each adds one row to its statement's arrays. */

/* An account's balances, in the order the statements name them. */
static void pg_row_balances(struct pg_row *w, const struct ledger_account *a)
{
    pg_row_u128(w, a->debits_pending);
    pg_row_u128(w, a->debits_posted);
    pg_row_u128(w, a->credits_pending);
    pg_row_u128(w, a->credits_posted);
}

static int pg_account_created(void *ctx, const struct ledger_account *a)
{
    struct pg_row w = pg_row_begin(&((struct pg_tx *)ctx)->bufs[PG_BUF_ACCOUNTS_INSERT]);
    pg_row_str(&w, a->id);
    pg_row_str(&w, a->ledger);
    pg_row_i64(&w, a->code);
    pg_row_i64(&w, a->flags);
    pg_row_text_or_null(&w, a->metadata.ptr, a->metadata.len);
    pg_row_balances(&w, a);
    pg_row_i64(&w, a->created_at_ms);
    return pg_row_end(&w);
}

static int pg_account_updated(void *ctx, const struct ledger_account *a)
{
    struct pg_row w = pg_row_begin(&((struct pg_tx *)ctx)->bufs[PG_BUF_ACCOUNTS_UPDATE]);
    pg_row_str(&w, a->id);
    pg_row_balances(&w, a);
    return pg_row_end(&w);
}

static int pg_transfer_created(void *ctx, const struct ledger_transfer *t)
{
    struct pg_tx *tx = ctx;
    struct pg_row w = pg_row_begin(&tx->bufs[PG_BUF_TRANSFERS_INSERT]);
    pg_row_str(&w, t->id);
    pg_row_str(&w, t->debit_account_id);
    pg_row_str(&w, t->credit_account_id);
    pg_row_u128(&w, t->amount);
    pg_row_str(&w, t->ledger);
    pg_row_i64(&w, t->code);
    pg_row_i64(&w, t->flags);
    pg_row_text_or_null(&w, t->pending_id, strlen(t->pending_id));
    pg_row_i64(&w, t->timeout_seconds);
    pg_row_text_or_null(&w, t->metadata.ptr, t->metadata.len);
    pg_row_i64(&w, t->created_at_ms);
    int rc = pg_row_end(&w);
    if (rc == 0 && (t->flags & LEDGER_TRANSFER_PENDING) != 0) {
        ASSERT(t->pending_state != LEDGER_PENDING_NONE);
        struct pg_row pw = pg_row_begin(&tx->bufs[PG_BUF_PENDINGS_INSERT]);
        pg_row_str(&pw, t->id);
        pg_row_i64(&pw, (int64_t)t->pending_state);
        pg_row_i64(&pw, t->expires_at_ms);
        rc = pg_row_end(&pw);
    }
    return rc;
}

static int pg_pending_updated(void *ctx, const struct ledger_transfer *t)
{
    ASSERT(t->pending_state != LEDGER_PENDING_NONE);
    struct pg_row w = pg_row_begin(&((struct pg_tx *)ctx)->bufs[PG_BUF_PENDINGS_UPDATE]);
    pg_row_str(&w, t->id);
    pg_row_i64(&w, (int64_t)t->pending_state);
    return pg_row_end(&w);
}

/* Builds the statements of the book's changes and sends, with what else must be answered
 * before COMMIT (pg_tx_write), the updates of the rows this transaction locked; the inserts go
 * with COMMIT, under the ledger lock (taken here already when appended records wait for the
 * tail). A failure of theirs is store_tx_commit's. */
static int pg_wr_changes(void *be, const struct ledger_book *b)
{
    static const struct ledger_book_changes_ops ops = {
        .account_created = pg_account_created,
        .account_updated = pg_account_updated,
        .transfer_created = pg_transfer_created,
        .pending_updated = pg_pending_updated,
    };
    struct pg_tx *tx = pg_tx_of(be);
    int rc = 0;
    for (int i = PG_BUF_CHANGES; i < PG_BUF_COUNT && rc == 0; i++) {
        if (tx->bufs[i].n > 0) {
            rc = pg_tx_write(tx, PG_WRITE_ALL); /* an earlier book's, first */
        }
    }
    if (rc == 0) {
        rc = ledger_book_changes(b, &ops, tx);
    }
    if (rc == 0) {
        rc = pg_tx_write(tx, PG_WRITE_CHECKED);
    }
    if (rc != 0) {
        pg_tx_drop(tx); /* the transaction fails; what was half-built goes with it */
    }
    return rc;
}

static int pg_wr_idem_get_many(void *be, const char *const *principals, const char *const *keys,
                               size_t n, int64_t now_ms, store_idem_many_fn fn, void *ctx)
{
    ASSERT(n >= 1 && n <= PG_IDEM_BUFFER_MAX);
    struct pg_tx *tx = pg_tx_of(be);
    struct pg_rows *rows = pg_tx_scratch(tx, 2);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pg_row w = pg_row_begin(rows);
        pg_row_str(&w, principals[i]);
        pg_row_str(&w, keys[i]);
        rc = pg_row_end(&w);
    }
    struct pg_params p = {0};
    if (rc == 0) {
        rc = pg_rows_params(rows, &p);
    }
    pg_param_i64(&p, now_ms);
    PGresult *res = NULL;
    if (rc == 0) {
        rc = pg_tx_query(tx, true, PG_IDEM_GET_MANY, &p, 1, -EAGAIN, "idempotency lookups", &res);
    }
    pg_rows_reset(rows);
    if (rc != 0) {
        return rc;
    }
    int found = PQntuples(res);
    for (int row = 0; row < found && rc == 0; row++) {
        uint64_t i =
            PQgetlength(res, row, 0) == 8 ? pg_be64((const uint8_t *)PQgetvalue(res, row, 0)) : 0;
        struct store_idem_record r;
        rc = i >= 1 && i <= n ? pg_idem_decode(res, row, 1, &r) : pg_corrupt("idempotency pair");
        if (rc == 0) {
            rc = fn(ctx, (size_t)(i - 1), &r);
        }
    }
    PQclear(res);
    return rc;
}

static int pg_wr_idem_put(void *be, const char *principal, const char *key,
                          const struct store_idem_record *r, int64_t created_at_ms)
{
    struct pg_tx *tx = pg_tx_of(be);
    /* A batch's records fit; one past them has the earlier ones written first. */
    int rc = tx->bufs[PG_BUF_IDEM].n >= PG_IDEM_BUFFER_MAX ? pg_tx_write(tx, PG_WRITE_CHECKED) : 0;
    if (rc != 0) {
        return rc;
    }
    struct pg_row w = pg_row_begin(&tx->bufs[PG_BUF_IDEM]);
    pg_row_str(&w, principal);
    pg_row_str(&w, key);
    pg_row_bytes(&w, r->request_digest, SHA256_BYTES);
    pg_row_i64(&w, r->status);
    pg_row_str(&w, r->location);
    pg_row_bytes(&w, r->body, r->body_len);
    pg_row_i64(&w, created_at_ms);
    pg_row_i64(&w, r->expires_at_ms);
    return pg_row_end(&w);
}

static int pg_wr_idem_purge(void *be, int64_t now_ms, size_t limit, size_t *deleted_out)
{
    struct pg_tx *tx = pg_tx_of(be);
    struct pg_params p = {0};
    pg_param_i64(&p, now_ms);
    pg_param_u64(&p, limit);
    PGresult *res = NULL;
    int rc = pg_tx_run(tx, PG_IDEM_PURGE, &p, 0, -EAGAIN, "purge idempotency records", &res);
    if (rc == 0) {
        *deleted_out = pg_affected(res);
        PQclear(res);
    }
    return rc;
}

static int pg_wr_audit_append(void *be, struct audit_record *r)
{
    return pg_tx_audit_append(pg_tx_of(be), r);
}

static int pg_wr_audit_tail(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    struct pg_tx *tx = pg_tx_of(be);
    int rc = pg_tx_tail(tx);
    if (rc == 0) {
        *seq_out = tx->tail_seq;
        memcpy(hash_out, tx->tail_hash, AUDIT_HASH_BYTES);
    }
    return rc;
}

static int pg_wr_audit_checkpoint_insert(void *be, const struct audit_checkpoint *cp)
{
    return pg_tx_checkpoint_insert(pg_tx_of(be), cp);
}

#define PG_OPS(scheme_)                                                                            \
    {                                                                                              \
        .scheme = (scheme_), .concurrent = true, .system_name = "postgresql", .open = pg_open,     \
        .close = pg_close, .migrations_backend = "postgres", .mig_rows = pg_mig_rows,              \
        .mig_begin = pg_mig_begin, .mig_exec = pg_mig_exec, .mig_record = pg_mig_record,           \
        .mig_end = pg_mig_end, .schema_dump = pg_schema_dump, .table_rows = pg_table_rows,         \
        .scratch_create = pg_scratch_create, .scratch_drop = pg_scratch_drop, .ping = pg_ping,     \
        .writers = pg_writers, .account_get = pg_account_get, .transfer_get = pg_transfer_get,     \
        .accounts_list = pg_accounts_list, .account_transfers_list = pg_account_transfers_list,    \
        .idem_get = pg_idem_get, .apikey_insert = pg_apikey_insert, .apikey_get = pg_apikey_get,   \
        .apikey_list = pg_apikey_list, .apikey_revoke = pg_apikey_revoke,                          \
        .audit_append_one = pg_audit_append_one, .audit_tail = pg_audit_tail,                      \
        .audit_records = pg_audit_records, .audit_checkpoints = pg_audit_checkpoints,              \
        .audit_trail = pg_audit_trail, .audit_checkpoint_last = pg_audit_checkpoint_last,          \
        .audit_checkpoint_insert = pg_audit_checkpoint_insert, .tx_begin = pg_tx_begin,            \
        .tx_commit = pg_tx_commit, .tx_rollback = pg_tx_rollback,                                  \
        .wr_account_load = pg_wr_account_load, .wr_transfer_load = pg_wr_transfer_load,            \
        .wr_accounts_load = pg_wr_accounts_load, .wr_transfers_load = pg_wr_transfers_load,        \
        .wr_idem_get_many = pg_wr_idem_get_many, .wr_due_pendings = pg_wr_due_pendings,            \
        .wr_next_deadline = pg_wr_next_deadline, .wr_changes = pg_wr_changes,                      \
        .wr_idem_put = pg_wr_idem_put, .wr_idem_purge = pg_wr_idem_purge,                          \
        .wr_audit_append = pg_wr_audit_append, .wr_audit_tail = pg_wr_audit_tail,                  \
        .wr_audit_checkpoint_insert = pg_wr_audit_checkpoint_insert,                               \
    }

const struct store_backend_ops store_pg_ops = PG_OPS("postgres://");
const struct store_backend_ops store_pgsql_ops = PG_OPS("postgresql://");
