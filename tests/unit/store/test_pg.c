/*
 * test_pg.c — the PostgreSQL store as its callers see it, against a real server: migrations
 * (twice, concurrently, drift), writes through a ledger book read back field by field (u128
 * extremes, metadata bytes), list pages, idempotency records (one by one and many at once), the
 * audit chain appended from two threads, two transactions applying at once with the ledger lock
 * taken only at their writes, API keys, row locks and the -EAGAIN of a unique violation or a
 * deadlock between two transactions, the pool's acquire timeout and a connection killed by the
 * server, and a batch of 8190 transfers.
 *
 * Needs LEDGERD_TEST_PG_URL: a URL of a database where the user may CREATE DATABASE (e.g. the
 * one `bash scripts/pg.sh start DIR` prints). Each test makes a database of its own and drops
 * it at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/rand.h"
#include "core/u128.h"
#include "ledger/book.h"
#include "ledger/ledger.h"
#include "obs/metrics.h"
#include "store/store.h"

#define ALL_FIELDS                                                                                 \
    (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |        \
     LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE)

/* ---------------------------------------------------------------------------------------
 * Fixture: a fresh database per test.
 * ------------------------------------------------------------------------------------- */
struct fx {
    char base_url[1024];
    char db[32];
    char url[1200];
    struct store *s;
    struct ledger_book *b;
};

/* base with its database name replaced by db. */
static void url_with_db(const char *base, const char *db, char *out, size_t n)
{
    const char *host = strstr(base, "://");
    assert_non_null(host);
    const char *slash = strchr(host + 3, '/');
    const char *query = strchr(host + 3, '?');
    if (slash == NULL || (query != NULL && slash > query)) {
        slash = query != NULL ? query : base + strlen(base);
    }
    const char *rest = query != NULL ? query : "";
    snprintf(out, n, "%.*s/%s%s", (int)(slash - base), base, db, rest);
}

/* Runs sql on the database at url (the test's own view of the server); returns the result
 * status and the first value of the first row in out (may be NULL). */
static ExecStatusType sql_at(const char *url, const char *sql, char *out, size_t n)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (out != NULL) {
        out[0] = '\0';
        if (st == PGRES_TUPLES_OK && PQntuples(res) > 0) {
            snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
        }
    }
    PQclear(res);
    PQfinish(c);
    return st;
}

/* The first value of the first row of sql at url, in out; the query must succeed. */
static const char *sql_value(const char *url, const char *sql, char *out, size_t n)
{
    assert_int_equal(sql_at(url, sql, out, n), PGRES_TUPLES_OK);
    return out;
}

/* The server refuses sql at url. */
static void sql_refused(const char *url, const char *sql)
{
    assert_int_equal(sql_at(url, sql, NULL, 0), PGRES_FATAL_ERROR);
}

static void sql_ok(const char *url, const char *sql)
{
    ExecStatusType st = sql_at(url, sql, NULL, 0);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("SQL failed: %s", sql);
    }
}

static struct store *open_with(struct fx *f, const struct store_options *o)
{
    struct buf err;
    buf_init(&err, 1024);
    struct store *s = NULL;
    int rc = store_open_with(f->url, o, &s, &err);
    if (rc != 0) {
        fprintf(stderr, "store_open: %s\n", err.data != NULL ? err.data : "");
    }
    assert_int_equal(rc, 0);
    buf_release(&err);
    return s;
}

static void migrate(struct store *s)
{
    struct buf err;
    buf_init(&err, 1024);
    int rc = store_migrate_up(s, NULL, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "migrate: %s\n", err.data != NULL ? err.data : "");
    }
    assert_int_equal(rc, 0);
    buf_release(&err);
}

static int fx_setup_unmigrated(void **state)
{
    const char *base = getenv("LEDGERD_TEST_PG_URL");
    if (base == NULL || base[0] == '\0') {
        fprintf(stderr, "test_pg needs a PostgreSQL server: set LEDGERD_TEST_PG_URL to a database "
                        "URL whose user may CREATE DATABASE, e.g.\n"
                        "  d=$(mktemp -d /tmp/pgXXXX); chmod 755 $d\n"
                        "  export LEDGERD_TEST_PG_URL=$(PG_FSYNC=off bash scripts/pg.sh start "
                        "$d/c)\n");
        return -1;
    }
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->base_url, sizeof(f->base_url), "%s", base);
    snprintf(f->db, sizeof(f->db), "t_%016llx", (unsigned long long)rand_u64());
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
    sql_ok(f->base_url, sql);
    url_with_db(base, f->db, f->url, sizeof(f->url));
    static const struct store_options defaults;
    f->s = open_with(f, &defaults);
    assert_int_equal(ledger_book_new(4096, 9000, 1u << 20, &f->b), 0);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    int rc = fx_setup_unmigrated(state);
    if (rc == 0) {
        struct fx *f = *state;
        migrate(f->s);
    }
    return rc;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_tx_rollback(f->s); /* a test that failed inside a transaction leaves it open */
    store_close(f->s);
    ledger_book_free(f->b);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
    sql_ok(f->base_url, sql);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Helpers: build items, commit a book, read rows into copies.
 * ------------------------------------------------------------------------------------- */
static struct ledger_account mk_account(const char *id, const char *ledger, const char *meta)
{
    struct ledger_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.ledger, sizeof(a.ledger), "%s", ledger);
    a.code = 7;
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

static void create_accounts(struct store *s, struct ledger_book *b, const struct ledger_account *a,
                            size_t n, int64_t now)
{
    ledger_book_reset(b);
    assert_int_equal(store_tx_begin(s), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(store_wr_account_load(s, a[i].id, b), 0);
        assert_int_equal(ledger_book_account_create(b, &a[i], now, NULL), LEDGER_CREATED);
    }
    assert_int_equal(store_wr_changes(s, b), 0);
    assert_int_equal(store_tx_commit(s), 0);
    ledger_book_reset(b);
}

/* Loads what t references, applies it at now and commits; returns the result. */
static enum ledger_result apply_one(struct store *s, struct ledger_book *b,
                                    const struct ledger_transfer *t, int64_t now)
{
    ledger_book_reset(b);
    assert_int_equal(store_tx_begin(s), 0);
    const char *tids[2] = {t->id, t->pending_id};
    assert_int_equal(store_wr_transfers_load(s, tids, 2, b), 0);
    const char *aids[2] = {t->debit_account_id, t->credit_account_id};
    assert_int_equal(store_wr_accounts_load(s, aids, 2, b), 0);
    enum ledger_result r = LEDGER_RESULT_COUNT;
    (void)ledger_book_transfers_apply(b, t, 1, now, &r, NULL);
    assert_true(ledger_book_balanced(b));
    assert_int_equal(store_wr_changes(s, b), 0);
    assert_int_equal(store_tx_commit(s), 0);
    ledger_book_reset(b);
    return r;
}

struct got_account {
    int calls;
    struct ledger_account a;
    char meta[LIMIT_METADATA_BYTES_MAX + 1];
};

/* Copies metadata m into meta (NUL-terminated) and points m at the copy, which outlives the
 * row it came from. */
static void keep_metadata(struct ledger_text *m, char meta[LIMIT_METADATA_BYTES_MAX + 1])
{
    assert_true(m->len <= LIMIT_METADATA_BYTES_MAX);
    if (m->len > 0) {
        memcpy(meta, m->ptr, m->len);
    }
    meta[m->len] = '\0';
    m->ptr = meta;
}

static int got_account_fn(void *ctx, const struct ledger_account *a)
{
    struct got_account *g = ctx;
    g->calls++;
    g->a = *a;
    keep_metadata(&g->a.metadata, g->meta);
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
    keep_metadata(&g->t.metadata, g->meta);
    return 0;
}

static struct got_account get_account(struct store *s, const char *id)
{
    struct got_account g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_account_get(s, id, got_account_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    return g;
}

static struct got_transfer get_transfer(struct store *s, const char *id)
{
    struct got_transfer g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_transfer_get(s, id, got_transfer_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    return g;
}

static struct audit_record mk_record(const char *actor, const char *action, const char *resource)
{
    struct audit_record r;
    memset(&r, 0, sizeof(r));
    r.time_unix_ms = 1700000000000;
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTOR, actor, strlen(actor)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTION, action, strlen(action)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_RESOURCE, resource, strlen(resource)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_DECISION, "success", 7), 0);
    return r;
}

static double ms_since(int64_t t0_ns)
{
    return (double)(clock_mono_ns() - t0_ns) / 1e6;
}

/* ---------------------------------------------------------------------------------------
 * Opening and migrations.
 * ------------------------------------------------------------------------------------- */
static void count_applied(void *ctx, uint32_t version, const char *name)
{
    (void)version;
    assert_true(name[0] != '\0');
    (*(int *)ctx)++;
}

struct migrate_arg {
    struct fx *f;
    int rc;
    int applied;
};

static void *migrate_main(void *p)
{
    struct migrate_arg *m = p;
    static const struct store_options defaults;
    struct store *s = open_with(m->f, &defaults);
    struct buf err;
    buf_init(&err, 1024);
    m->rc = store_migrate_up(s, count_applied, &m->applied, &err);
    buf_release(&err);
    store_close(s);
    return NULL;
}

static void test_open_rejects_bad_urls(void **state)
{
    (void)state;
    struct buf err;
    buf_init(&err, 1024);
    struct store *s = NULL;
    assert_int_equal(store_open("postgres://host:notaport:x/db?bogus_option=1", &s, &err), -EINVAL);
    assert_null(s);
    assert_true(err.len > 0);
    buf_reset(&err);
    /* A server that is not there: open is lazy, the first use fails, and so does the next
     * (inside the reconnect backoff: test_pgpool checks that it fails without connecting). */
    assert_int_equal(store_open("postgresql://nobody@127.0.0.1:1/none", &s, &err), 0);
    assert_int_equal(store_ping(s), -EIO);
    assert_int_equal(store_ping(s), -EIO);
    assert_true(store_concurrent(s));
    assert_int_equal(store_writers(s), 2); /* the default */
    assert_string_equal(store_system_name(s), "postgresql");
    store_close(s);
    buf_release(&err);
}

static void test_migrate_twice_concurrently_and_drift(void **state)
{
    struct fx *f = *state;
    struct store_migration_status st;
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_int_equal(st.available, 2);
    assert_int_equal(st.applied, 0);
    assert_int_equal(st.pending, 2);
    assert_false(st.drift);

    /* Two processes' worth of stores migrate at once: each migration is applied once. */
    struct migrate_arg args[2] = {{f, -1, 0}, {f, -1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, migrate_main, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].rc, 0);
    }
    assert_int_equal(args[0].applied + args[1].applied, 2);

    /* Again: nothing pending. */
    int applied = 0;
    struct buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_migrate_up(f->s, count_applied, &applied, &err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_int_equal(st.applied, 2);
    assert_int_equal(st.pending, 0);
    assert_false(st.drift);

    /* 0002 made the trail and recorded itself in it. */
    uint64_t seq = 0;
    uint8_t hash[AUDIT_HASH_BYTES];
    assert_int_equal(store_audit_tail(f->s, &seq, hash), 0);
    assert_int_equal(seq, 1);
    char v[64];
    assert_string_equal(sql_value(f->url, "SELECT resource FROM audit_records", v, sizeof(v)),
                        "migration:0002_auth_audit");

    /* A changed checksum is drift: status says so and migrate refuses. */
    char checksum[80];
    char sql[200];
    sql_value(f->url, "SELECT checksum FROM schema_migrations WHERE version = 1", checksum,
              sizeof(checksum));
    assert_int_equal(strlen(checksum), 64);
    sql_ok(f->url, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1");
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_true(st.drift);
    assert_non_null(strstr(st.detail, "0001_ledger.sql was edited"));
    buf_reset(&err);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.data, "refusing"));

    /* A version past this binary's files was applied by a newer release: not drift. */
    snprintf(sql, sizeof(sql), "UPDATE schema_migrations SET checksum = '%s' WHERE version = 1",
             checksum);
    sql_ok(f->url, sql);
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_false(st.drift);
    sql_ok(f->url, "INSERT INTO schema_migrations (version, name, checksum, applied_at_ms)"
                   " VALUES (99, 'future', 'x', 0)");
    assert_int_equal(store_migration_status(f->s, &st), 0);
    assert_false(st.drift);
    assert_int_equal(st.ahead, 1);
    buf_reset(&err);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), 0);

    /* Rows say who and how long. */
    struct store_migration_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_migration_rows(f->s, &rows, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rows[1].version, 2);
    assert_true(rows[1].duration_ms >= 0);
    assert_string_equal(rows[1].applied_by, "system");
    assert_int_equal(rows[2].duration_ms, -1);
    free(rows);
    buf_release(&err);
}

/* ---------------------------------------------------------------------------------------
 * Writes read back.
 * ------------------------------------------------------------------------------------- */
static void test_roundtrip_u128_and_metadata(void **state)
{
    struct fx *f = *state;
    /* Quotes, backslashes, braces, commas and non-ASCII: every byte must come back. */
    static const char meta[] = "{\"k\":\"a\\\"b\\\\c,{}\",\"u\":\"h\xc3\xa9llo \xe2\x82\xac\"}";
    struct ledger_account in[3] = {mk_account("a-max", "L1", meta), mk_account("b-max", "L1", NULL),
                                   mk_account("c", "L1", "{}")};
    in[0].flags = LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS;
    create_accounts(f->s, f->b, in, 3, 1000);

    struct got_account g = get_account(f->s, "a-max");
    assert_string_equal(g.a.id, "a-max");
    assert_string_equal(g.a.ledger, "L1");
    assert_int_equal(g.a.code, 7);
    assert_int_equal(g.a.flags, LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS);
    assert_int_equal(g.a.metadata.len, strlen(meta));
    assert_string_equal(g.meta, meta);
    assert_int_equal(g.a.created_at_ms, 1000);
    g = get_account(f->s, "b-max");
    assert_int_equal(g.a.metadata.len, 0);
    assert_int_equal(store_account_get(f->s, "nope", got_account_fn, &g), -ENOENT);

    /* The largest amount there is, both ways. */
    struct ledger_transfer t = mk_transfer("t-max", "b-max", "a-max", U128_MAX, "L1", 0);
    t.metadata.ptr = meta;
    t.metadata.len = strlen(meta);
    assert_int_equal(apply_one(f->s, f->b, &t, 2000), LEDGER_CREATED);
    g = get_account(f->s, "a-max");
    assert_true(g.a.credits_posted == U128_MAX);
    assert_true(g.a.debits_posted == 0);
    g = get_account(f->s, "b-max");
    assert_true(g.a.debits_posted == U128_MAX);
    struct got_transfer gt = get_transfer(f->s, "t-max");
    assert_true(gt.t.amount == U128_MAX);
    assert_string_equal(gt.t.debit_account_id, "b-max");
    assert_string_equal(gt.t.credit_account_id, "a-max");
    assert_string_equal(gt.meta, meta);
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_NONE);
    assert_int_equal(gt.t.created_at_ms, 2000);
    /* One more overflows: refused by the rules, nothing stored. */
    struct ledger_transfer t2 = mk_transfer("t-over", "b-max", "a-max", 1, "L1", 0);
    assert_int_equal(apply_one(f->s, f->b, &t2, 2001), LEDGER_OVERFLOWS_DEBITS);
    assert_int_equal(store_transfer_get(f->s, "t-over", got_transfer_fn, &gt), -ENOENT);

    /* A pending transfer with a deadline, then its expiry through the due sweep. */
    struct ledger_transfer p = mk_transfer("p1", "c", "b-max", 5, "L1", LEDGER_TRANSFER_PENDING);
    p.timeout_seconds = 10;
    t2 = mk_transfer("p0", "c", "b-max", 1, "L1", LEDGER_TRANSFER_PENDING);
    assert_int_equal(apply_one(f->s, f->b, &p, 3000), LEDGER_CREATED);
    assert_int_equal(apply_one(f->s, f->b, &t2, 3001), LEDGER_CREATED);
    gt = get_transfer(f->s, "p1");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_PENDING);
    assert_int_equal(gt.t.expires_at_ms, 13000);
    assert_int_equal(gt.t.timeout_seconds, 10);
    g = get_account(f->s, "c");
    assert_true(g.a.debits_pending == 6);

    int64_t deadline = 0;
    assert_int_equal(store_wr_next_deadline(f->s, &deadline), 0); /* between transactions */
    assert_int_equal(deadline, 13000);
    char ids[8][LIMIT_ID_LEN_MAX + 1];
    size_t n = 99;
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_due_pendings(f->s, 12999, 8, f->b, ids, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_wr_due_pendings(f->s, 13000, 8, f->b, ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "p1");
    assert_non_null(ledger_book_account_find(f->b, "c"));
    assert_non_null(ledger_book_account_find(f->b, "b-max"));
    assert_int_equal(ledger_book_pending_expire(f->b, "p1"), 0);
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    assert_int_equal(store_wr_next_deadline(f->s, &deadline), 0);
    assert_int_equal(deadline, 0);
    assert_int_equal(store_tx_commit(f->s), 0);
    ledger_book_reset(f->b);
    gt = get_transfer(f->s, "p1");
    assert_int_equal(gt.t.pending_state, LEDGER_PENDING_EXPIRED);
    g = get_account(f->s, "c");
    assert_true(g.a.debits_pending == 1);

    /* Rollback leaves nothing. */
    assert_int_equal(store_tx_begin(f->s), 0);
    struct ledger_account d = mk_account("d", "L1", NULL);
    assert_int_equal(store_wr_account_load(f->s, "d", f->b), 0);
    assert_int_equal(ledger_book_account_create(f->b, &d, 1, NULL), LEDGER_CREATED);
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    store_tx_rollback(f->s);
    ledger_book_reset(f->b);
    assert_int_equal(store_account_get(f->s, "d", got_account_fn, &g), -ENOENT);

    /* A row the schema refuses (written by something else) never gets in. */
    sql_refused(f->url, "UPDATE accounts SET debits_posted = -1 WHERE id = 'c'");
}

struct list_acc {
    char ids[64][LIMIT_ID_LEN_MAX + 1];
    int n;
};

static int list_add(void *ctx, const char *id)
{
    struct list_acc *l = ctx;
    assert_true(l->n < 64);
    snprintf(l->ids[l->n++], LIMIT_ID_LEN_MAX + 1, "%s", id);
    return 0;
}

static int list_account_fn(void *ctx, const struct ledger_account *a)
{
    return list_add(ctx, a->id);
}

static int list_transfer_fn(void *ctx, const struct ledger_transfer *t)
{
    return list_add(ctx, t->id);
}

static int stop_fn(void *ctx, const struct ledger_account *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 42;
}

static void test_lists_page_in_commit_order(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[25];
    char id[25][16];
    for (int i = 0; i < 25; i++) {
        /* Ids in an order that is not commit order. */
        snprintf(id[i], sizeof(id[i]), "acc-%02d", 24 - i);
        in[i] = mk_account(id[i], i % 2 ? "odd" : "even", NULL);
    }
    create_accounts(f->s, f->b, in, 10, 1);
    create_accounts(f->s, f->b, in + 10, 15, 2);

    struct list_acc l;
    memset(&l, 0, sizeof(l));
    struct store_page page = {.after_seq = 0, .limit = 10};
    int pages = 0;
    do {
        assert_int_equal(store_accounts_list(f->s, NULL, &page, list_account_fn, &l), 0);
        page.after_seq = page.last_seq_out;
        pages++;
    } while (page.more_out);
    assert_int_equal(pages, 3);
    assert_int_equal(l.n, 25);
    for (int i = 0; i < 25; i++) {
        assert_string_equal(l.ids[i], id[i]);
    }
    /* An exact fit says no more; a ledger filter. */
    memset(&l, 0, sizeof(l));
    page = (struct store_page){.after_seq = 0, .limit = 12};
    assert_int_equal(store_accounts_list(f->s, "odd", &page, list_account_fn, &l), 0);
    assert_int_equal(l.n, 12);
    assert_false(page.more_out);
    assert_string_equal(l.ids[0], "acc-23");
    /* A callback's non-zero stops the list and comes back. */
    int calls = 0;
    page = (struct store_page){.after_seq = 0, .limit = 5};
    assert_int_equal(store_accounts_list(f->s, NULL, &page, stop_fn, &calls), 42);
    assert_int_equal(calls, 1);

    /* An account's transfers, either side, in commit order. */
    for (int i = 0; i < 7; i++) {
        char tid[16];
        snprintf(tid, sizeof(tid), "tr-%d", i);
        struct ledger_transfer t = mk_transfer(tid, i % 2 ? "acc-00" : "acc-02",
                                               i % 2 ? "acc-02" : "acc-00", 1, "even", 0);
        assert_int_equal(apply_one(f->s, f->b, &t, 10 + i), LEDGER_CREATED);
    }
    memset(&l, 0, sizeof(l));
    page = (struct store_page){.after_seq = 0, .limit = 4};
    assert_int_equal(store_account_transfers_list(f->s, "acc-00", &page, list_transfer_fn, &l), 0);
    assert_true(page.more_out);
    page.after_seq = page.last_seq_out;
    assert_int_equal(store_account_transfers_list(f->s, "acc-00", &page, list_transfer_fn, &l), 0);
    assert_false(page.more_out);
    assert_int_equal(l.n, 7);
    for (int i = 0; i < 7; i++) {
        char tid[16];
        snprintf(tid, sizeof(tid), "tr-%d", i);
        assert_string_equal(l.ids[i], tid);
    }
}

/* ---------------------------------------------------------------------------------------
 * Idempotency records.
 * ------------------------------------------------------------------------------------- */
struct got_idem {
    int calls;
    int status;
    uint8_t digest[32];
    char location[64];
    char body[64];
    size_t body_len;
    int64_t expires_at_ms;
};

static int got_idem_fn(void *ctx, const struct store_idem_record *r);

/* got_idem_fn for a bulk lookup of one pair. */
static int got_idem_one_fn(void *ctx, size_t i, const struct store_idem_record *r)
{
    assert_int_equal(i, 0);
    return got_idem_fn(ctx, r);
}

static int got_idem_fn(void *ctx, const struct store_idem_record *r)
{
    struct got_idem *g = ctx;
    g->calls++;
    g->status = r->status;
    memcpy(g->digest, r->request_digest, 32);
    snprintf(g->location, sizeof(g->location), "%s", r->location);
    assert_true(r->body_len <= sizeof(g->body));
    memcpy(g->body, r->body, r->body_len);
    g->body_len = r->body_len;
    g->expires_at_ms = r->expires_at_ms;
    return 0;
}

static struct store_idem_record mk_idem(int status, const char *body, size_t len, int64_t exp)
{
    struct store_idem_record r;
    memset(&r, 0, sizeof(r));
    memset(r.request_digest, 0xab, sizeof(r.request_digest));
    r.request_digest[0] = (uint8_t)status;
    r.status = status;
    r.location = "/v1/accounts/\"x\\";
    r.body = body;
    r.body_len = len;
    r.expires_at_ms = exp;
    return r;
}

static void test_idempotency(void **state)
{
    struct fx *f = *state;
    static const char body[] = "{\"a\":1}\0tail\\\"";
    struct store_idem_record r = mk_idem(201, body, sizeof(body) - 1, 5000);
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "key-1", &r, 1000), 0);
    /* Seen by the transaction that stored it, not yet by others. */
    struct got_idem g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 1000, got_idem_fn, &g), -ENOENT);
    const char *const who[] = {"alice"};
    const char *const what[] = {"key-1"};
    assert_int_equal(store_wr_idem_get_many(f->s, who, what, 1, 1000, got_idem_one_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(store_tx_commit(f->s), 0);

    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 4999, got_idem_fn, &g), 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 201);
    assert_int_equal(g.digest[0], 201);
    assert_int_equal(g.digest[31], 0xab);
    assert_string_equal(g.location, "/v1/accounts/\"x\\");
    assert_int_equal(g.body_len, sizeof(body) - 1);
    assert_memory_equal(g.body, body, sizeof(body) - 1);
    assert_int_equal(g.expires_at_ms, 5000);
    assert_int_equal(store_idem_get(f->s, "bob", "key-1", 4999, got_idem_fn, &g), -ENOENT);
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 5000, got_idem_fn, &g), -ENOENT);

    /* A record in force stored by another writer: -EAGAIN, and nothing of the transaction. */
    struct store_idem_record r2 = mk_idem(422, "", 0, 9000);
    struct ledger_account a = mk_account("idem-acc", "L", NULL);
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_account_load(f->s, a.id, f->b), 0);
    assert_int_equal(ledger_book_account_create(f->b, &a, 4000, NULL), LEDGER_CREATED);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "key-1", &r2, 4000), 0);
    assert_int_equal(store_wr_changes(f->s, f->b), -EAGAIN);
    store_tx_rollback(f->s);
    ledger_book_reset(f->b);
    struct got_account ga;
    assert_int_equal(store_account_get(f->s, "idem-acc", got_account_fn, &ga), -ENOENT);

    /* Once expired it is replaced as a whole; an empty body is a body. */
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "key-1", &r2, 5000), 0);
    assert_int_equal(store_tx_commit(f->s), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "key-1", 5000, got_idem_fn, &g), 0);
    assert_int_equal(g.status, 422);
    assert_int_equal(g.body_len, 0);

    /* Purge: only what expired, at most limit at a time. */
    assert_int_equal(store_tx_begin(f->s), 0);
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof(key), "old-%d", i);
        struct store_idem_record o = mk_idem(200, "{}", 2, 1000 + i);
        assert_int_equal(store_wr_idem_put(f->s, "carol", key, &o, 500), 0);
    }
    assert_int_equal(store_tx_commit(f->s), 0);
    size_t deleted = 99;
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_purge(f->s, 999, 10, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_wr_idem_purge(f->s, 2000, 2, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(store_wr_idem_purge(f->s, 2000, 10, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(store_tx_commit(f->s), 0);
}

/* What wr_idem_get_many handed over: per pair, how often and with which status. */
struct got_many {
    int calls[8];
    int status[8];
    size_t body_len[8];
    int stop_after; /* stop with 7 after this many calls (0: never) */
    int total;
};

static int got_many_fn(void *ctx, size_t i, const struct store_idem_record *r)
{
    struct got_many *g = ctx;
    assert_true(i < 8);
    g->calls[i]++;
    g->status[i] = r->status;
    g->body_len[i] = r->body_len;
    g->total++;
    return g->stop_after != 0 && g->total >= g->stop_after ? 7 : 0;
}

static void test_idempotency_many(void **state)
{
    struct fx *f = *state;
    struct store_idem_record r1 = mk_idem(201, "{\"one\":1}", 9, 5000);
    struct store_idem_record r2 = mk_idem(409, "{}", 2, 2000);
    struct store_idem_record r3 = mk_idem(422, "", 0, 9000);
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "k1", &r1, 1000), 0);
    assert_int_equal(store_wr_idem_put(f->s, "bob", "k2", &r2, 1000), 0);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "k3", &r3, 1000), 0);
    assert_int_equal(store_tx_commit(f->s), 0);

    /* At 3000: bob's has expired; carol has no k1; the same pair twice is found twice. */
    static const char *const principals[8] = {"alice", "alice", "bob",  "alice",
                                              "carol", "alice", "dave", "erin"};
    static const char *const keys[8] = {"k1", "none", "k2", "k3", "k1", "k1", "k4", "k5"};
    struct got_many g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_idem_get_many(f->s, principals, keys, 8, 3000, got_many_fn, &g), 0);
    static const int found[8] = {1, 0, 0, 1, 0, 1, 0, 0};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(g.calls[i], found[i]);
    }
    assert_int_equal(g.status[0], 201);
    assert_int_equal(g.body_len[0], 9);
    assert_int_equal(g.status[3], 422);
    assert_int_equal(g.body_len[3], 0);

    /* Still in the same transaction: dave's record is committed by another meanwhile, erin's
     * is this transaction's own (buffered): both are seen now; the others as before. */
    sql_ok(f->url, "INSERT INTO idempotency_keys (principal, key, request_digest, status,"
                   " location, body, created_at_ms, expires_at_ms) VALUES ('dave', 'k4',"
                   " decode(repeat('cd', 32), 'hex'), 200, '', '\\x7b7d'::bytea, 2500, 8000)");
    struct store_idem_record r5 = mk_idem(201, "{}", 2, 7000);
    assert_int_equal(store_wr_idem_put(f->s, "erin", "k5", &r5, 3000), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_wr_idem_get_many(f->s, principals, keys, 8, 3000, got_many_fn, &g), 0);
    static const int found_now[8] = {1, 0, 0, 1, 0, 1, 1, 1};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(g.calls[i], found_now[i]);
    }
    assert_int_equal(g.status[6], 200);
    assert_int_equal(g.body_len[6], 2);
    assert_int_equal(g.status[7], 201);

    /* A callback's non-zero stops and comes back; no pair at all is no call. */
    memset(&g, 0, sizeof(g));
    g.stop_after = 2;
    assert_int_equal(store_wr_idem_get_many(f->s, principals, keys, 8, 3000, got_many_fn, &g), 7);
    assert_int_equal(g.total, 2);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_wr_idem_get_many(f->s, principals, keys, 0, 3000, got_many_fn, &g), 0);
    assert_int_equal(g.total, 0);
    /* Hostile text is data: quotes, backslashes, braces and commas of the array syntax. */
    static const char *const odd_p[2] = {"a\"b\\c", "{x,y}"};
    static const char *const odd_k[2] = {"NULL", "\"\""};
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_wr_idem_get_many(f->s, odd_p, odd_k, 2, 3000, got_many_fn, &g), 0);
    assert_int_equal(g.total, 0);
    assert_int_equal(store_wr_idem_put(f->s, odd_p[0], odd_k[0], &r5, 3000), 0);
    assert_int_equal(store_wr_idem_put(f->s, odd_p[1], odd_k[1], &r3, 3000), 0);
    assert_int_equal(store_wr_idem_get_many(f->s, odd_p, odd_k, 2, 3000, got_many_fn, &g), 0);
    assert_int_equal(g.calls[0], 1);
    assert_int_equal(g.calls[1], 1);
    assert_int_equal(g.status[0], 201);
    assert_int_equal(g.status[1], 422);
    assert_int_equal(store_tx_commit(f->s), 0);

    /* Committed: a reader sees erin's and the odd ones too. */
    struct got_idem gi;
    memset(&gi, 0, sizeof(gi));
    assert_int_equal(store_idem_get(f->s, "erin", "k5", 3000, got_idem_fn, &gi), 0);
    assert_int_equal(store_idem_get(f->s, odd_p[1], odd_k[1], 3000, got_idem_fn, &gi), 0);
    assert_int_equal(gi.status, 422);
}

/* ---------------------------------------------------------------------------------------
 * The audit trail and API keys.
 * ------------------------------------------------------------------------------------- */
#define AUDIT_THREADS 2
#define AUDIT_TXS 40

struct audit_arg {
    struct store *s;
    int id;
    int failures;
    int retries;
};

static void *audit_main(void *p)
{
    struct audit_arg *a = p;
    for (int i = 0; i < AUDIT_TXS; i++) {
        char resource[64];
        snprintf(resource, sizeof(resource), "thread:%d/%d", a->id, i);
        int rc = -EAGAIN;
        for (int attempt = 0; attempt < 5 && rc == -EAGAIN; attempt++) {
            struct audit_record r1 = mk_record("system", "test.append", resource);
            struct audit_record r2 = mk_record("anonymous", "test.append", resource);
            rc = store_tx_begin(a->s);
            if (rc == 0) {
                rc = store_wr_audit_append(a->s, &r1);
            }
            if (rc == 0) {
                rc = store_wr_audit_append(a->s, &r2);
            }
            if (rc == 0) {
                rc = store_tx_commit(a->s);
            }
            /* Linked by the time the transaction ends: one after the other. */
            if (rc == 0 && (r1.seq == 0 || r2.seq != r1.seq + 1)) {
                a->failures++;
            }
            if (rc != 0) {
                store_tx_rollback(a->s);
                a->retries += rc == -EAGAIN;
            }
        }
        a->failures += rc != 0;
        if (i % 10 == 0) {
            struct audit_record one = mk_record("system", "test.one", resource);
            a->failures += store_audit_append_one(a->s, &one) != 0;
        }
    }
    return NULL;
}

struct verify_ctx {
    struct audit_verify *v;
    uint64_t records;
    uint64_t checkpoints;
    uint64_t findings;
};

static int verify_record_fn(void *ctx, const struct audit_record *r)
{
    struct verify_ctx *c = ctx;
    struct audit_finding fnd;
    assert_int_equal(audit_verify_record(c->v, r, &fnd), 0);
    c->records++;
    c->findings += fnd.kind != AUDIT_OK;
    return 0;
}

static int verify_checkpoint_fn(void *ctx, const struct audit_checkpoint *cp)
{
    struct verify_ctx *c = ctx;
    struct audit_finding fnd;
    assert_int_equal(audit_verify_checkpoint(c->v, cp, &fnd), 0);
    c->checkpoints++;
    return 0;
}

static int count_record_fn(void *ctx, const struct audit_record *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

static void test_audit_chain_from_two_threads(void **state)
{
    struct fx *f = *state;
    struct store_options o = {.writers = 3};
    struct store *s = open_with(f, &o);
    pthread_t th[AUDIT_THREADS];
    struct audit_arg args[AUDIT_THREADS];
    for (int i = 0; i < AUDIT_THREADS; i++) {
        args[i] = (struct audit_arg){s, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, audit_main, &args[i]), 0);
    }
    for (int i = 0; i < AUDIT_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    /* 1 (migration) + 2 per transaction + the administrative ones, gapless. */
    uint64_t want = 1 + AUDIT_THREADS * (2 * AUDIT_TXS + AUDIT_TXS / 10);
    uint64_t tail = 0;
    uint8_t hash[AUDIT_HASH_BYTES];
    assert_int_equal(store_audit_tail(f->s, &tail, hash), 0);
    assert_int_equal(tail, want);
    char v[32];
    assert_int_equal(
        strtoull(sql_value(f->url, "SELECT count(*) FROM audit_records", v, sizeof(v)), NULL, 10),
        want);

    /* A checkpoint of the tail, inside a transaction; its seq twice is -EEXIST. */
    struct audit_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    assert_int_equal(store_tx_begin(s), 0);
    assert_int_equal(store_wr_audit_tail(s, &cp.seq, cp.hash), 0);
    assert_int_equal(cp.seq, want);
    assert_memory_equal(cp.hash, hash, AUDIT_HASH_BYTES);
    cp.time_unix_ms = 1700000000001;
    memcpy(cp.key_id, "0123456789abcdef", 16);
    assert_int_equal(store_wr_audit_checkpoint_insert(s, &cp), 0);
    assert_int_equal(store_tx_commit(s), 0);
    assert_int_equal(store_audit_checkpoint_insert(s, &cp), -EEXIST);
    uint64_t cseq = 0;
    int64_t ctime = 0;
    assert_int_equal(store_audit_checkpoint_last(f->s, &cseq, &ctime), 0);
    assert_int_equal(cseq, want);
    assert_int_equal(ctime, 1700000000001);

    /* The whole trail verifies: no gap, no broken link (the checkpoint's key is unknown to a
     * verifier without keys, which is not a chain finding). */
    struct verify_ctx vc = {0};
    assert_int_equal(audit_verify_new(NULL, 0, NULL, &vc.v), 0);
    assert_int_equal(store_audit_trail(f->s, 0, verify_record_fn, verify_checkpoint_fn, &vc), 0);
    struct audit_finding first;
    struct audit_verify_stats stats;
    assert_int_equal(audit_verify_finish(vc.v, &first, &stats), 0);
    audit_verify_free(vc.v);
    assert_int_equal(vc.records, want);
    assert_int_equal(vc.checkpoints, 1);
    assert_int_equal(vc.findings, 0);
    assert_int_equal(stats.last_seq, want);

    /* Pages of records. */
    int n = 0;
    struct store_page page = {.after_seq = want - 3, .limit = 2};
    assert_int_equal(store_audit_records(f->s, &page, count_record_fn, &n), 0);
    assert_int_equal(n, 2);
    assert_true(page.more_out);
    assert_int_equal(page.last_seq_out, want - 1);

    /* Append-only: the server refuses changes. */
    sql_refused(f->url, "UPDATE audit_records SET actor = 'x' WHERE seq = 2");
    sql_refused(f->url, "DELETE FROM audit_records");
    sql_refused(f->url, "TRUNCATE audit_records");
    sql_refused(f->url, "DELETE FROM audit_checkpoints");
    store_close(s);
}

static int key_list_fn(void *ctx, const struct store_apikey *k)
{
    return list_add(ctx, k->id);
}

static struct store_apikey mk_key(const char *id, int64_t created)
{
    struct store_apikey k;
    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.name, sizeof(k.name), "key \"%s\"", id);
    snprintf(k.created_by, sizeof(k.created_by), "cli:tester");
    k.scopes = 0x80000005u;
    memset(k.hash, 0x5a, sizeof(k.hash));
    k.hash[0] = 0;
    k.created_at_ms = created;
    return k;
}

static void test_apikeys(void **state)
{
    struct fx *f = *state;
    struct store_apikey a = mk_key("00000000000000aa", 2000);
    struct store_apikey b = mk_key("00000000000000bb", 1000);
    struct audit_record ra = mk_record("cli:tester", "apikey.create", "apikey:00000000000000aa");
    struct audit_record rb = mk_record("cli:tester", "apikey.create", "apikey:00000000000000bb");
    assert_int_equal(store_apikey_insert(f->s, &a, &ra), 0);
    assert_int_equal(ra.seq, 2);
    assert_int_equal(store_apikey_insert(f->s, &b, &rb), 0);
    assert_int_equal(rb.seq, 3);
    struct audit_record rd = mk_record("cli:tester", "apikey.create", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_insert(f->s, &a, &rd), -EEXIST);
    uint64_t tail = 0;
    uint8_t hash[AUDIT_HASH_BYTES];
    assert_int_equal(store_audit_tail(f->s, &tail, hash), 0);
    assert_int_equal(tail, 3); /* the refused insert wrote no record */

    struct store_apikey got;
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_string_equal(got.name, a.name);
    assert_string_equal(got.created_by, "cli:tester");
    assert_int_equal(got.scopes, 0x80000005u);
    assert_memory_equal(got.hash, a.hash, sizeof(a.hash));
    assert_int_equal(got.created_at_ms, 2000);
    assert_int_equal(got.revoked_at_ms, 0);
    assert_int_equal(store_apikey_get(f->s, "00000000000000cc", &got), -ENOENT);

    struct list_acc l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_apikey_list(f->s, key_list_fn, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], b.id); /* oldest first */

    struct audit_record rr = mk_record("cli:tester", "apikey.revoke", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_revoke(f->s, a.id, 5000, &rr), 0);
    assert_int_equal(rr.seq, 4);
    assert_int_equal(store_apikey_revoke(f->s, a.id, 6000, &rr), -EALREADY);
    assert_int_equal(store_apikey_revoke(f->s, "00000000000000dd", 6000, &rr), -ENOENT);
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_int_equal(got.revoked_at_ms, 5000);
    assert_int_equal(store_audit_tail(f->s, &tail, hash), 0);
    assert_int_equal(tail, 4);
}

/* ---------------------------------------------------------------------------------------
 * Concurrent writers: row locks, unique violations, deadlocks.
 * ------------------------------------------------------------------------------------- */
struct writer_arg {
    struct fx *f;
    struct store *s;
    const char *load;  /* account to load (and lock) first */
    const char *load2; /* then this one (may be NULL) */
    const char *create;
    int rc;
    double waited_ms;
    u128 seen_credits;
};

/* A writer thread's transaction: a book of its own, and the transaction begun (w->rc). */
static struct ledger_book *writer_begin(struct writer_arg *w)
{
    struct ledger_book *b = NULL;
    assert_int_equal(ledger_book_new(16, 16, 4096, &b), 0);
    w->rc = store_tx_begin(w->s);
    return b;
}

/* Loads account id into b unless the writer failed already. */
static void writer_load(struct writer_arg *w, const char *id, struct ledger_book *b)
{
    if (w->rc == 0) {
        w->rc = store_wr_account_load(w->s, id, b);
    }
}

/* Commits when all went well (w->rc), else rolls back; frees the book. */
static void writer_end(struct writer_arg *w, struct ledger_book *b)
{
    if (w->rc == 0) {
        w->rc = store_tx_commit(w->s);
    }
    if (w->rc != 0) {
        store_tx_rollback(w->s);
    }
    ledger_book_free(b);
}

/* Starts writer w (writer_main) in a thread while this thread's transaction holds its locks,
 * commits that transaction 300 ms later, and waits for the writer to end. */
static void commit_while_writer_waits(struct fx *f, void *(*writer_main)(void *),
                                      struct writer_arg *w)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, w), 0);
    usleep(300 * 1000);
    assert_int_equal(store_tx_commit(f->s), 0);
    ledger_book_reset(f->b);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* B's side of test_row_lock: loads an account another transaction holds. */
static void *lock_waiter_main(void *p)
{
    struct writer_arg *w = p;
    int64_t t0 = clock_mono_ns();
    struct ledger_book *b = writer_begin(w);
    writer_load(w, w->load, b);
    w->waited_ms = ms_since(t0);
    const struct ledger_account *a = ledger_book_account_find(b, w->load);
    w->seen_credits = a != NULL ? a->credits_posted : 0;
    writer_end(w, b);
    return NULL;
}

static void test_row_lock_waits_for_commit(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[2] = {mk_account("x", "L", NULL), mk_account("y", "L", NULL)};
    create_accounts(f->s, f->b, in, 2, 1);

    /* A: locks x and y, moves 9 from y to x, holds the transaction open. */
    ledger_book_reset(f->b);
    assert_int_equal(store_tx_begin(f->s), 0);
    const char *ids[2] = {"y", "x"};
    assert_int_equal(store_wr_accounts_load(f->s, ids, 2, f->b), 0);
    struct ledger_transfer t = mk_transfer("t1", "y", "x", 9, "L", 0);
    enum ledger_result r;
    assert_int_equal(ledger_book_transfers_apply(f->b, &t, 1, 2, &r, NULL), 1);
    assert_int_equal(store_wr_changes(f->s, f->b), 0);

    /* B: loads x, and waits. */
    struct writer_arg w = {.f = f, .s = f->s, .load = "x", .rc = -1};
    commit_while_writer_waits(f, lock_waiter_main, &w);
    assert_int_equal(w.rc, 0);
    assert_true(w.waited_ms >= 250.0);
    assert_true(w.seen_credits == 9); /* A's balance, not the one before */
}

/* A writer that creates account `create` after loading it (not found). */
static void *creator_main(void *p)
{
    struct writer_arg *w = p;
    struct ledger_account a = mk_account(w->create, "L", NULL);
    struct ledger_book *b = writer_begin(w);
    writer_load(w, w->create, b);
    if (w->rc == 0) {
        assert_int_equal(ledger_book_account_create(b, &a, 5, NULL), LEDGER_CREATED);
        w->rc = store_wr_changes(w->s, b);
    }
    writer_end(w, b);
    return NULL;
}

static void test_unique_violation_is_eagain(void **state)
{
    struct fx *f = *state;
    struct ledger_account a = mk_account("dup", "L", NULL);
    struct audit_record r = mk_record("system", "account.create", "account:dup");
    /* A: creates dup and, with an audit record to link, holds the ledger lock from wr_changes
     * on, without committing. */
    ledger_book_reset(f->b);
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_account_load(f->s, "dup", f->b), 0);
    assert_int_equal(ledger_book_account_create(f->b, &a, 5, NULL), LEDGER_CREATED);
    assert_int_equal(store_wr_audit_append(f->s, &r), 0);
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    assert_int_equal(r.seq, 2); /* linked under the lock: after the migration's record */
    /* B: does not see A's row yet, creates dup too; its inserts (sent with its COMMIT) wait
     * for A's ledger lock, then meet A's committed row. */
    struct writer_arg w = {.f = f, .s = f->s, .create = "dup", .rc = -1};
    commit_while_writer_waits(f, creator_main, &w);
    assert_int_equal(w.rc, -EAGAIN);
    struct got_account g = get_account(f->s, "dup");
    assert_int_equal(g.a.created_at_ms, 5);
}

/* Locks load then load2 with a pause between: two of them in opposite orders deadlock. */
static void *deadlock_main(void *p)
{
    struct writer_arg *w = p;
    struct ledger_book *b = writer_begin(w);
    writer_load(w, w->load, b);
    usleep(300 * 1000);
    writer_load(w, w->load2, b);
    writer_end(w, b);
    return NULL;
}

static void test_deadlock_is_eagain(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[2] = {mk_account("p", "L", NULL), mk_account("q", "L", NULL)};
    create_accounts(f->s, f->b, in, 2, 1);
    struct writer_arg w1 = {.f = f, .s = f->s, .load = "p", .load2 = "q", .rc = -1};
    struct writer_arg w2 = {.f = f, .s = f->s, .load = "q", .load2 = "p", .rc = -1};
    pthread_t t1;
    pthread_t t2;
    assert_int_equal(pthread_create(&t1, NULL, deadlock_main, &w1), 0);
    assert_int_equal(pthread_create(&t2, NULL, deadlock_main, &w2), 0);
    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);
    /* The server breaks the cycle: one is told to run again, the other goes through. */
    assert_true((w1.rc == -EAGAIN && w2.rc == 0) || (w1.rc == 0 && w2.rc == -EAGAIN));
}

/* B's side of test_apply_before_the_ledger_lock: a whole transaction (load, apply, idempotency
 * record, audit record, write, commit) on accounts of its own, while A's is open. */
struct applier_arg {
    struct store *s;
    int rc;
    double took_ms;
    struct audit_record r;
};

static void *applier_main(void *p)
{
    struct applier_arg *a = p;
    int64_t t0 = clock_mono_ns();
    struct ledger_book *b = NULL;
    assert_int_equal(ledger_book_new(16, 16, 4096, &b), 0);
    struct ledger_transfer t = mk_transfer("tb", "b1", "b2", 5, "L", 0);
    struct store_idem_record ir = mk_idem(201, "{}", 2, 9000);
    a->rc = store_tx_begin(a->s);
    const char *ids[2] = {"b1", "b2"};
    if (a->rc == 0) {
        a->rc = store_wr_accounts_load(a->s, ids, 2, b);
    }
    enum ledger_result res = LEDGER_RESULT_COUNT;
    if (a->rc == 0) {
        (void)ledger_book_transfers_apply(b, &t, 1, 100, &res, NULL);
        a->rc = res == LEDGER_CREATED ? 0 : -EINVAL;
    }
    if (a->rc == 0) {
        a->rc = store_wr_idem_put(a->s, "bob", "tb", &ir, 100);
    }
    if (a->rc == 0) {
        a->rc = store_wr_audit_append(a->s, &a->r);
    }
    if (a->rc == 0) {
        a->rc = store_wr_changes(a->s, b);
    }
    if (a->rc == 0) {
        a->rc = store_tx_commit(a->s);
    }
    if (a->rc != 0) {
        store_tx_rollback(a->s);
    }
    a->took_ms = ms_since(t0);
    ledger_book_free(b);
    return NULL;
}

static void test_apply_before_the_ledger_lock(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[4] = {mk_account("a1", "L", NULL), mk_account("a2", "L", NULL),
                                   mk_account("b1", "L", NULL), mk_account("b2", "L", NULL)};
    create_accounts(f->s, f->b, in, 4, 1);

    /* A: loads, applies and appends (idempotency record and audit record buffered), and stays
     * open before its writes: it holds its rows, not the ledger lock. */
    ledger_book_reset(f->b);
    assert_int_equal(store_tx_begin(f->s), 0);
    const char *ids[2] = {"a2", "a1"};
    assert_int_equal(store_wr_accounts_load(f->s, ids, 2, f->b), 0);
    struct ledger_transfer t = mk_transfer("ta", "a1", "a2", 3, "L", 0);
    enum ledger_result res = LEDGER_RESULT_COUNT;
    assert_int_equal(ledger_book_transfers_apply(f->b, &t, 1, 90, &res, NULL), 1);
    assert_int_equal(res, LEDGER_CREATED);
    struct store_idem_record ir = mk_idem(201, "{}", 2, 9000);
    assert_int_equal(store_wr_idem_put(f->s, "alice", "ta", &ir, 90), 0);
    struct audit_record ra = mk_record("alice", "transfer.create", "transfer:ta");
    assert_int_equal(store_wr_audit_append(f->s, &ra), 0);
    assert_int_equal(ra.seq, 0); /* not linked yet: that waits for the lock */

    /* B: its whole transaction goes through meanwhile, without waiting for A. */
    struct applier_arg b = {.s = f->s, .rc = -1};
    b.r = mk_record("bob", "transfer.create", "transfer:tb");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, applier_main, &b), 0);
    struct timespec deadline;
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &deadline), 0);
    deadline.tv_sec += 10;
    int joined = pthread_timedjoin_np(th, NULL, &deadline);
    if (joined != 0) {
        /* B waits for A: let it go before failing, so that the test ends. */
        (void)store_tx_commit(f->s);
        assert_int_equal(pthread_join(th, NULL), 0);
        fail_msg("B's transaction waited for A's (%d)", joined);
    }
    assert_int_equal(b.rc, 0);
    assert_true(b.took_ms < 5000.0);
    assert_int_equal(b.r.seq, 2); /* after the migration's record */

    /* A writes and commits now: linked after B's record. */
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    assert_int_equal(ra.seq, 3);
    assert_memory_equal(ra.prev_hash, b.r.hash, AUDIT_HASH_BYTES);
    assert_int_equal(store_tx_commit(f->s), 0);
    ledger_book_reset(f->b);

    /* Both stood: balances, transfers in commit order (B's first), the chain gapless and
     * verified. */
    assert_true(get_account(f->s, "a2").a.credits_posted == 3);
    assert_true(get_account(f->s, "b2").a.credits_posted == 5);
    assert_true(get_transfer(f->s, "tb").t.created_at_ms == 100);
    char v[32];
    assert_string_equal(
        sql_value(f->url, "SELECT string_agg(id, ',' ORDER BY seq) FROM transfers", v, sizeof(v)),
        "tb,ta");
    struct verify_ctx vc = {0};
    assert_int_equal(audit_verify_new(NULL, 0, NULL, &vc.v), 0);
    assert_int_equal(store_audit_trail(f->s, 0, verify_record_fn, verify_checkpoint_fn, &vc), 0);
    struct audit_finding first;
    struct audit_verify_stats stats;
    assert_int_equal(audit_verify_finish(vc.v, &first, &stats), 0);
    audit_verify_free(vc.v);
    assert_int_equal(vc.records, 3);
    assert_int_equal(vc.findings, 0);
    assert_int_equal(stats.last_seq, 3);
    struct got_idem gi;
    memset(&gi, 0, sizeof(gi));
    assert_int_equal(store_idem_get(f->s, "alice", "ta", 100, got_idem_fn, &gi), 0);
    assert_int_equal(store_idem_get(f->s, "bob", "tb", 100, got_idem_fn, &gi), 0);
}

/* ---------------------------------------------------------------------------------------
 * The pool: acquire timeout, connections killed by the server, metrics.
 * ------------------------------------------------------------------------------------- */
struct busy_arg {
    struct store *s;
    int rc;
    double waited_ms;
};

static void *tx_begin_main(void *p)
{
    struct busy_arg *a = p;
    int64_t t0 = clock_mono_ns();
    a->rc = store_tx_begin(a->s);
    a->waited_ms = ms_since(t0);
    if (a->rc == 0) {
        store_tx_rollback(a->s);
    }
    return NULL;
}

/* A read callback that reads again while its own reader is held. */
static int nested_ping_fn(void *ctx, const struct ledger_account *a)
{
    (void)a;
    struct busy_arg *b = ctx;
    int64_t t0 = clock_mono_ns();
    b->rc = store_ping(b->s);
    b->waited_ms = ms_since(t0);
    return 0;
}

static void test_pool_acquire_timeout(void **state)
{
    struct fx *f = *state;
    struct ledger_account in[1] = {mk_account("k", "L", NULL)};
    create_accounts(f->s, f->b, in, 1, 1);
    struct store_options o = {.writers = 1, .pool_size = 1, .acquire_timeout_ms = 300};
    struct store *s = open_with(f, &o);
    assert_int_equal(store_writers(s), 1);

    int64_t w_timeouts = metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_WRITER);
    int64_t r_timeouts = metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_READER);
    assert_int_equal(store_tx_begin(s), 0);
    struct busy_arg a = {s, -1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tx_begin_main, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    store_tx_rollback(s);
    assert_int_equal(a.rc, -EBUSY);
    assert_true(a.waited_ms >= 280.0 && a.waited_ms < 1500.0);
    assert_int_equal(metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_WRITER), w_timeouts + 1);
    /* Free again: taken at once. */
    assert_int_equal(pthread_create(&th, NULL, tx_begin_main, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rc, 0);

    struct busy_arg b = {s, -1, 0};
    assert_int_equal(store_account_get(s, "k", nested_ping_fn, &b), 0);
    assert_int_equal(b.rc, -EBUSY);
    assert_true(b.waited_ms >= 280.0 && b.waited_ms < 1500.0);
    assert_int_equal(metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_READER), r_timeouts + 1);
    store_close(s);
}

static size_t conns_in_use(enum metrics_db_role role)
{
    return (size_t)metrics_value(METRIC_DB_POOL_CONNS,
                                 metrics_db_conns_series(role, METRICS_DB_IN_USE));
}

static void test_killed_connection_and_metrics(void **state)
{
    struct fx *f = *state;
    int64_t max_w = metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_WRITER);
    int64_t max_r = metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER);
    int64_t open_r = metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER);
    size_t in_use_w = conns_in_use(METRICS_DB_WRITER);
    size_t in_use_r = conns_in_use(METRICS_DB_READER);
    uint64_t waits = 0;
    uint64_t wait_sum = 0;
    metrics_reg_histogram(metrics_ledgerd(), METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, &waits,
                          &wait_sum);

    struct store_options o = {.writers = 2, .pool_size = 3};
    struct store *s = open_with(f, &o);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_WRITER), max_w + 2);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER), max_r + 3);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open_r); /* lazy */
    assert_int_equal(store_ping(s), 0);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open_r + 1);
    assert_int_equal(conns_in_use(METRICS_DB_READER), in_use_r);
    uint64_t waits2 = 0;
    metrics_reg_histogram(metrics_ledgerd(), METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, &waits2,
                          &wait_sum);
    assert_true(waits2 >= waits + 1);
    assert_int_equal(store_tx_begin(s), 0);
    assert_int_equal(conns_in_use(METRICS_DB_WRITER), in_use_w + 1);
    store_tx_rollback(s);
    assert_int_equal(conns_in_use(METRICS_DB_WRITER), in_use_w);

    /* The server ends every session of the database: the next reads and transactions work on
     * new connections, right away and after the idle health check. */
    char sql[256];
    char killed[16];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
             " AND application_name = 'ledgerd'",
             f->db);
    assert_true(strtol(sql_value(f->base_url, sql, killed, sizeof(killed)), NULL, 10) >= 1);
    usleep(100 * 1000);
    assert_int_equal(store_ping(s), 0);
    assert_int_equal(store_tx_begin(s), 0);
    store_tx_rollback(s);
    sql_value(f->base_url, sql, killed, sizeof(killed));
    usleep(1200 * 1000);
    assert_int_equal(store_ping(s), 0);
    struct got_account g;
    assert_int_equal(store_account_get(s, "none", got_account_fn, &g), -ENOENT);
    assert_int_equal(conns_in_use(METRICS_DB_READER), in_use_r);
    int64_t opened = metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER) - open_r;
    assert_true(opened >= 1 && opened <= 3);
    store_close(s);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_WRITER), max_w);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER), max_r);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open_r);
}

/* ---------------------------------------------------------------------------------------
 * A batch as large as a request may carry.
 * ------------------------------------------------------------------------------------- */
#define BATCH_TRANSFERS 8190
#define BATCH_ACCOUNTS 100

static void test_batch_of_8190_transfers(void **state)
{
    struct fx *f = *state;
    static struct ledger_account in[BATCH_ACCOUNTS];
    static char aid[BATCH_ACCOUNTS][16];
    for (int i = 0; i < BATCH_ACCOUNTS; i++) {
        snprintf(aid[i], sizeof(aid[i]), "acct-%03d", i);
        in[i] = mk_account(aid[i], "B", "{\"n\":1}");
    }
    create_accounts(f->s, f->b, in, BATCH_ACCOUNTS, 1);

    static struct ledger_transfer t[BATCH_TRANSFERS];
    static enum ledger_result results[BATCH_TRANSFERS];
    static const char *tids[BATCH_TRANSFERS];
    static const char *aids[2 * BATCH_TRANSFERS];
    for (int i = 0; i < BATCH_TRANSFERS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bt-%05d", i);
        t[i] = mk_transfer(id, aid[i % BATCH_ACCOUNTS], aid[(i * 7 + 1) % BATCH_ACCOUNTS],
                           (u128)(i + 1), "B", i % 3 == 0 ? LEDGER_TRANSFER_PENDING : 0);
        t[i].metadata.ptr = "{\"memo\":\"batch \\\"q\\\"\"}";
        t[i].metadata.len = strlen(t[i].metadata.ptr);
        tids[i] = t[i].id;
        aids[2 * i] = t[i].debit_account_id;
        aids[2 * i + 1] = t[i].credit_account_id;
    }
    ledger_book_reset(f->b);
    int64_t t0 = clock_mono_ns();
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_transfers_load(f->s, tids, BATCH_TRANSFERS, f->b), 0);
    assert_int_equal(store_wr_accounts_load(f->s, aids, 2 * BATCH_TRANSFERS, f->b), 0);
    double load_ms = ms_since(t0);
    size_t created = ledger_book_transfers_apply(f->b, t, BATCH_TRANSFERS, 100, results, NULL);
    assert_int_equal(created, BATCH_TRANSFERS);
    int64_t t1 = clock_mono_ns();
    assert_int_equal(store_wr_changes(f->s, f->b), 0);
    assert_int_equal(store_tx_commit(f->s), 0);
    double write_ms = ms_since(t1);
    ledger_book_reset(f->b);
    fprintf(stderr,
            "pg: batch of %d transfers (%d accounts): load+lock %.1f ms, write+commit %.1f ms, "
            "total %.1f ms\n",
            BATCH_TRANSFERS, BATCH_ACCOUNTS, load_ms, write_ms, ms_since(t0));

    char v[64];
    assert_int_equal(
        strtol(sql_value(f->url, "SELECT count(*) FROM transfers", v, sizeof(v)), NULL, 10),
        BATCH_TRANSFERS);
    assert_int_equal(
        strtol(sql_value(f->url, "SELECT count(*) FROM pending_transfers", v, sizeof(v)), NULL, 10),
        (BATCH_TRANSFERS + 2) / 3);
    /* Seq follows the batch's order. */
    assert_string_equal(sql_value(f->url,
                                  "SELECT count(*) FROM transfers a JOIN transfers b"
                                  " ON a.seq < b.seq AND a.id > b.id",
                                  v, sizeof(v)),
                        "0");
    /* Debits equal credits when read back. */
    assert_string_equal(sql_value(f->url,
                                  "SELECT sum(debits_posted + debits_pending) = sum(credits_posted"
                                  " + credits_pending) FROM accounts",
                                  v, sizeof(v)),
                        "t");
    struct got_transfer gt = get_transfer(f->s, "bt-08189");
    assert_true(gt.t.amount == 8190);
    assert_string_equal(gt.meta, "{\"memo\":\"batch \\\"q\\\"\"}");

    /* Loading them all again (now found, with their pending rows locked) in one go. */
    t0 = clock_mono_ns();
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_transfers_load(f->s, tids, BATCH_TRANSFERS, f->b), 0);
    assert_int_equal(ledger_book_transfers_free(f->b), 9000 - BATCH_TRANSFERS);
    const struct ledger_transfer *p = ledger_book_transfer_find(f->b, "bt-00003");
    assert_non_null(p);
    assert_int_equal(p->pending_state, LEDGER_PENDING_PENDING);
    store_tx_rollback(f->s);
    ledger_book_reset(f->b);
    fprintf(stderr, "pg: reload and lock %d transfers: %.1f ms\n", BATCH_TRANSFERS, ms_since(t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_bad_urls),
        cmocka_unit_test_setup_teardown(test_migrate_twice_concurrently_and_drift,
                                        fx_setup_unmigrated, fx_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_u128_and_metadata, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lists_page_in_commit_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_many, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_audit_chain_from_two_threads, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_apikeys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_row_lock_waits_for_commit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unique_violation_is_eagain, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_deadlock_is_eagain, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_apply_before_the_ledger_lock, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pool_acquire_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_connection_and_metrics, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_of_8190_transfers, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
