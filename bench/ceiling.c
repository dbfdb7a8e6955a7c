/*
 * ceiling: the storage ceiling that ledgerd's durable write path is measured against.
 *
 * An independent reference linked against SQLite only (not against ledgerd's code), so that it
 * shows what the disk and SQLite allow with the same schema and the same durability settings
 * (WAL, synchronous=FULL), without HTTP, JSON, validation or idempotency records:
 *
 *   ceiling fsync FILE SECONDS
 *       appends 4 KiB and calls fsync(2) in a loop for SECONDS; prints fsyncs_per_s=N.
 *   ceiling ledger DB MIGRATIONS_DIR MODE BATCH SECONDS
 *       creates DB from the *.sql files of MIGRATIONS_DIR applied in name order, inserts 10,000
 *       accounts (acc00001 ... acc10000), then for SECONDS commits transactions of BATCH
 *       transfers between random distinct accounts, amount 1. MODE A updates both account rows
 *       after every transfer; MODE B updates each account touched by the batch once, at the end
 *       of the batch. Prints transfers_per_s=N batches=N transfers=N.
 *
 * Balances are kept in memory and written as 16-byte big-endian blobs, as ledgerd stores them;
 * nothing is read back, so this is an upper bound for a write path that must also load rows.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CEILING_ACCOUNTS_COUNT 10000
#define CEILING_BATCH_MAX 8190
#define CEILING_SECONDS_MAX 600
#define CEILING_MIGRATION_BYTES_MAX (1024 * 1024)
#define CEILING_MIGRATIONS_MAX 256
#define CEILING_FSYNC_BLOCK_BYTES 4096
#define CEILING_ID_BYTES_MAX 64

/* In-memory balances of one account: what mode A and B write back. */
struct ceiling_account {
    uint64_t debits_posted;
    uint64_t credits_posted;
    uint64_t touched_batch; /* batch number that last touched it (mode B), 0 = never */
};

static struct ceiling_account accounts[CEILING_ACCOUNTS_COUNT];
static int touched[2 * CEILING_BATCH_MAX];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "ceiling: %s: %s\n", what, detail);
    exit(1);
}

static void check_sqlite(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        die(what, sqlite3_errmsg(db));
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a decimal integer in [min, max] or exits. */
static long parse_long(const char *text, long min, long max, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        die("bad number", what);
    }
    return v;
}

/* xorshift64*: a fast, fixed-seed pseudo-random sequence (the same run to run). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void u64_to_be16(uint64_t v, unsigned char out[16])
{
    memset(out, 0, 16);
    for (int i = 15; i >= 8; i--) {
        out[i] = (unsigned char)(v & 0xFFu);
        v >>= 8;
    }
}

static void account_id(int index, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "acc%05d", index + 1);
    if (n < 0 || (size_t)n >= out_len) {
        die("account id", "too long");
    }
}

/* ===== fsync ===== */

static int run_fsync(const char *path, long seconds)
{
    static unsigned char block[CEILING_FSYNC_BLOCK_BYTES];
    memset(block, 'x', sizeof(block));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        die("open", strerror(errno));
    }
    uint64_t count = 0;
    double start = now_seconds();
    double elapsed = 0.0;
    while (elapsed < (double)seconds) {
        ssize_t n = write(fd, block, sizeof(block));
        if (n != (ssize_t)sizeof(block)) {
            die("write", strerror(errno));
        }
        if (fsync(fd) != 0) {
            die("fsync", strerror(errno));
        }
        count++;
        elapsed = now_seconds() - start;
    }
    close(fd);
    unlink(path);
    printf("fsyncs_per_s=%.0f fsyncs=%" PRIu64 " seconds=%.3f\n", (double)count / elapsed, count,
           elapsed);
    return 0;
}

/* ===== schema ===== */

static int select_sql(const struct dirent *e)
{
    size_t len = strlen(e->d_name);
    return len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0;
}

static void apply_migrations(sqlite3 *db, const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, select_sql, alphasort);
    if (n <= 0 || n > CEILING_MIGRATIONS_MAX) {
        die("no migrations in", dir);
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (len < 0 || (size_t)len >= sizeof(path)) {
            die("path too long", dir);
        }
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            die("open", path);
        }
        char *sql = malloc(CEILING_MIGRATION_BYTES_MAX + 1);
        if (sql == NULL) {
            die("malloc", "migration");
        }
        size_t got = fread(sql, 1, CEILING_MIGRATION_BYTES_MAX, f);
        if (ferror(f) || !feof(f)) {
            die("read (or over 1 MiB)", path);
        }
        fclose(f);
        sql[got] = '\0';
        char *err = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
            die(path, err != NULL ? err : "exec");
        }
        free(sql);
        free(names[i]);
    }
    free(names);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    check_sqlite(db, sqlite3_prepare_v2(db, sql, -1, &st, NULL), sql);
    return st;
}

static void run_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        die(sql, err != NULL ? err : "exec");
    }
}

static void insert_accounts(sqlite3 *db)
{
    static const unsigned char zero[16] = {0};
    sqlite3_stmt *st = prepare(db, "INSERT INTO accounts (id, ledger, code, flags, metadata,"
                                   " debits_pending, debits_posted, credits_pending,"
                                   " credits_posted, created_at_ms)"
                                   " VALUES (?1, 'USD', 1, 0, NULL, ?2, ?2, ?2, ?2, ?3)");
    run_sql(db, "BEGIN IMMEDIATE");
    for (int i = 0; i < CEILING_ACCOUNTS_COUNT; i++) {
        char id[CEILING_ID_BYTES_MAX];
        account_id(i, id, sizeof(id));
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, zero, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL) * 1000);
        check_sqlite(db, sqlite3_step(st), "insert account");
        sqlite3_reset(st);
    }
    run_sql(db, "COMMIT");
    sqlite3_finalize(st);
}

/* ===== transfers ===== */

struct ceiling_writer {
    sqlite3 *db;
    sqlite3_stmt *transfer_insert;
    sqlite3_stmt *account_update;
};

static void write_account(struct ceiling_writer *w, int index)
{
    static const unsigned char zero[16] = {0};
    unsigned char debits[16];
    unsigned char credits[16];
    char id[CEILING_ID_BYTES_MAX];
    account_id(index, id, sizeof(id));
    u64_to_be16(accounts[index].debits_posted, debits);
    u64_to_be16(accounts[index].credits_posted, credits);
    sqlite3_stmt *st = w->account_update;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, zero, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, debits, 16, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, zero, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, credits, 16, SQLITE_TRANSIENT);
    check_sqlite(w->db, sqlite3_step(st), "update account");
    if (sqlite3_changes(w->db) != 1) {
        die("update account", "no row");
    }
    sqlite3_reset(st);
}

static void insert_transfer(struct ceiling_writer *w, uint64_t number, int debit, int credit)
{
    unsigned char amount[16];
    char id[CEILING_ID_BYTES_MAX];
    char debit_id[CEILING_ID_BYTES_MAX];
    char credit_id[CEILING_ID_BYTES_MAX];
    int n = snprintf(id, sizeof(id), "c-%" PRIu64, number);
    if (n < 0 || (size_t)n >= sizeof(id)) {
        die("transfer id", "too long");
    }
    account_id(debit, debit_id, sizeof(debit_id));
    account_id(credit, credit_id, sizeof(credit_id));
    u64_to_be16(1, amount);
    sqlite3_stmt *st = w->transfer_insert;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, debit_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, credit_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, amount, 16, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL) * 1000);
    check_sqlite(w->db, sqlite3_step(st), "insert transfer");
    sqlite3_reset(st);
}

static void commit_batch(struct ceiling_writer *w, bool aggregate, long batch, uint64_t batch_no,
                         uint64_t *transfer_no)
{
    int touched_count = 0;
    run_sql(w->db, "BEGIN IMMEDIATE");
    for (long i = 0; i < batch; i++) {
        int debit = (int)(rng_next() % CEILING_ACCOUNTS_COUNT);
        int credit = (int)(rng_next() % (CEILING_ACCOUNTS_COUNT - 1));
        if (credit >= debit) {
            credit++;
        }
        (*transfer_no)++;
        insert_transfer(w, *transfer_no, debit, credit);
        accounts[debit].debits_posted++;
        accounts[credit].credits_posted++;
        if (!aggregate) {
            write_account(w, debit);
            write_account(w, credit);
            continue;
        }
        int sides[2] = {debit, credit};
        for (int s = 0; s < 2; s++) {
            if (accounts[sides[s]].touched_batch != batch_no) {
                accounts[sides[s]].touched_batch = batch_no;
                touched[touched_count++] = sides[s];
            }
        }
    }
    for (int t = 0; t < touched_count; t++) {
        write_account(w, touched[t]);
    }
    run_sql(w->db, "COMMIT");
}

static int run_ledger(const char *path, const char *migrations, bool aggregate, long batch,
                      long seconds)
{
    struct ceiling_writer w = {0};
    unlink(path);
    check_sqlite(w.db, sqlite3_open(path, &w.db), "open");
    run_sql(w.db, "PRAGMA journal_mode = WAL");
    run_sql(w.db, "PRAGMA synchronous = FULL");
    run_sql(w.db, "PRAGMA foreign_keys = ON");
    apply_migrations(w.db, migrations);
    insert_accounts(w.db);
    w.transfer_insert = prepare(w.db, "INSERT INTO transfers (id, debit_account_id,"
                                      " credit_account_id, amount, ledger, code, flags,"
                                      " pending_id, timeout_seconds, metadata, created_at_ms)"
                                      " VALUES (?1, ?2, ?3, ?4, 'USD', 1, 0, NULL, 0, NULL, ?5)");
    w.account_update = prepare(w.db, "UPDATE accounts SET debits_pending = ?2,"
                                     " debits_posted = ?3, credits_pending = ?4,"
                                     " credits_posted = ?5 WHERE id = ?1");
    uint64_t batches = 0;
    uint64_t transfers = 0;
    double start = now_seconds();
    double elapsed = 0.0;
    while (elapsed < (double)seconds) {
        batches++;
        commit_batch(&w, aggregate, batch, batches, &transfers);
        elapsed = now_seconds() - start;
    }
    sqlite3_finalize(w.transfer_insert);
    sqlite3_finalize(w.account_update);
    check_sqlite(w.db, sqlite3_close(w.db), "close");
    printf("transfers_per_s=%.0f batches=%" PRIu64 " transfers=%" PRIu64 " seconds=%.3f\n",
           (double)transfers / elapsed, batches, transfers, elapsed);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "fsync") == 0) {
        return run_fsync(argv[2], parse_long(argv[3], 1, CEILING_SECONDS_MAX, "SECONDS"));
    }
    if (argc == 7 && strcmp(argv[1], "ledger") == 0) {
        bool aggregate = strcmp(argv[4], "B") == 0;
        if (!aggregate && strcmp(argv[4], "A") != 0) {
            die("MODE must be A or B", argv[4]);
        }
        long batch = parse_long(argv[5], 1, CEILING_BATCH_MAX, "BATCH");
        long seconds = parse_long(argv[6], 1, CEILING_SECONDS_MAX, "SECONDS");
        return run_ledger(argv[2], argv[3], aggregate, batch, seconds);
    }
    fprintf(stderr, "usage: ceiling fsync FILE SECONDS\n"
                    "       ceiling ledger DB MIGRATIONS_DIR A|B BATCH SECONDS\n");
    return 2;
}
