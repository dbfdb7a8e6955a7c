/*
 * test_sqlite_audit.c — API keys and the audit trail in the SQLite store, against a real
 * database file: keys stored, read, listed and revoked together with their audit records; the
 * chain appended by several connections (as several processes would) staying one chain that
 * the verifier accepts, with checkpoints signed by a fresh key; pages and the merged trail;
 * and the triggers that refuse to change or delete audit rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "auth/scope.h"
#include "core/limits.h"
#include "store/store.h"

/* ---------------------------------------------------------------------------------------
 * Fixture: a fresh migrated database; migrating wrote record 1 (migration 0002).
 * ------------------------------------------------------------------------------------- */
struct fx {
    char dir[64];
    char path[PATH_MAX];
    char url[PATH_MAX + 16];
    struct store *s;
};

static struct store *open_store(const char *url)
{
    struct buf err;
    buf_init(&err, 1024);
    struct store *s = NULL;
    int rc = store_open(url, &s, &err);
    if (rc != 0) {
        fprintf(stderr, "store_open: %s\n", err.data != NULL ? err.data : "");
    }
    assert_int_equal(rc, 0);
    buf_release(&err);
    return s;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ledgerd-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ledger.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite://%s", f->path);
    f->s = open_store(f->url);
    struct buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), 0);
    buf_release(&err);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    static const char *const names[] = {"ledger.db", "ledger.db-wal", "ledger.db-shm"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
        (void)unlink(p);
    }
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------------------- */
static struct audit_record mk_record(const char *actor, const char *action, const char *resource)
{
    struct audit_record r;
    memset(&r, 0, sizeof(r));
    r.time_unix_ms = 1767225600000;
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTOR, actor, strlen(actor)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_ACTION, action, strlen(action)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_RESOURCE, resource, strlen(resource)), 0);
    assert_int_equal(audit_record_set(&r, AUDIT_FIELD_DECISION, "success", 7), 0);
    return r;
}

static struct store_apikey mk_key(const char *id, const char *name, uint32_t scopes,
                                  int64_t created_at_ms)
{
    struct store_apikey k;
    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.name, sizeof(k.name), "%s", name);
    k.scopes = scopes;
    for (size_t i = 0; i < sizeof(k.hash); i++) {
        k.hash[i] = (uint8_t)(i + (uint8_t)id[0]);
    }
    k.created_at_ms = created_at_ms;
    snprintf(k.created_by, sizeof(k.created_by), "cli:tester");
    return k;
}

static uint64_t tail_seq(struct store *s)
{
    uint64_t seq = 0;
    uint8_t hash[AUDIT_HASH_BYTES];
    assert_int_equal(store_audit_tail(s, &seq, hash), 0);
    return seq;
}

/* Records of a page copied out. */
struct records {
    size_t n;
    struct audit_record r[64];
};

static int collect_record(void *ctx, const struct audit_record *r)
{
    struct records *out = ctx;
    assert_true(out->n < 64);
    out->r[out->n++] = *r;
    return 0;
}

static void read_all(struct store *s, struct records *out)
{
    memset(out, 0, sizeof(*out));
    struct store_page page = {.after_seq = 0, .limit = 64};
    assert_int_equal(store_audit_records(s, &page, collect_record, out), 0);
    assert_false(page.more_out);
}

/* The verification of the whole trail as stored, through the merged reader. */
struct verify_ctx {
    struct audit_verify *v;
    uint64_t order; /* seq of the last row given, to check the merge order */
    bool last_was_checkpoint;
};

static int verify_record(void *ctx, const struct audit_record *r)
{
    struct verify_ctx *c = ctx;
    assert_true(r->seq > c->order || (r->seq == c->order && !c->last_was_checkpoint));
    c->order = r->seq;
    c->last_was_checkpoint = false;
    struct audit_finding f;
    assert_int_equal(audit_verify_record(c->v, r, &f), 0);
    return 0;
}

static int verify_checkpoint(void *ctx, const struct audit_checkpoint *cp)
{
    struct verify_ctx *c = ctx;
    assert_true(cp->seq >= c->order);
    c->order = cp->seq;
    c->last_was_checkpoint = true;
    struct audit_finding f;
    assert_int_equal(audit_verify_checkpoint(c->v, cp, &f), 0);
    return 0;
}

static void verify_trail(struct store *s, const struct audit_verifier *keys,
                         struct audit_finding *first, struct audit_verify_stats *stats)
{
    struct verify_ctx c = {NULL, 0, false};
    assert_int_equal(audit_verify_new(keys, 0, NULL, &c.v), 0);
    assert_int_equal(store_audit_trail(s, 0, verify_record, verify_checkpoint, &c), 0);
    assert_int_equal(audit_verify_finish(c.v, first, stats), 0);
    audit_verify_free(c.v);
}

/* A fresh Ed25519 key as unencrypted PKCS #8 PEM (made at test time, never stored). */
static struct audit_signer *fresh_signer(void)
{
    gnutls_privkey_t pk;
    gnutls_x509_privkey_t x;
    gnutls_datum_t out = {NULL, 0};
    assert_true(gnutls_privkey_init(&pk) >= 0);
    assert_true(gnutls_privkey_generate2(pk, GNUTLS_PK_EDDSA_ED25519, 256, 0, NULL, 0) >= 0);
    assert_true(gnutls_privkey_export_x509(pk, &x) >= 0);
    assert_true(gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                                  &out) >= 0);
    struct audit_signer *signer = NULL;
    char err[128];
    assert_int_equal(audit_signer_load((const char *)out.data, out.size, &signer, err, sizeof(err)),
                     0);
    gnutls_memset(out.data, 0, out.size);
    gnutls_free(out.data);
    gnutls_x509_privkey_deinit(x);
    gnutls_privkey_deinit(pk);
    return signer;
}

/* Signs the current tail and stores the checkpoint through the administrative writer. */
static void checkpoint_tail(struct store *s, const struct audit_signer *signer)
{
    struct audit_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    assert_int_equal(store_audit_tail(s, &cp.seq, cp.hash), 0);
    cp.time_unix_ms = 1767225660000;
    assert_int_equal(audit_checkpoint_sign(signer, &cp), 0);
    assert_int_equal(store_audit_checkpoint_insert(s, &cp), 0);
}

/* Runs sql on a connection of its own (another process, as far as the store can tell); returns
 * SQLite's code and copies its message. */
static int raw_exec(const char *path, const char *sql, char *msg, size_t msg_len)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *e = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &e);
    snprintf(msg, msg_len, "%s", e != NULL ? e : "");
    sqlite3_free(e);
    sqlite3_close(db);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Migrations write their audit record.
 * ------------------------------------------------------------------------------------- */
static void test_migration_is_audited(void **state)
{
    struct fx *f = *state;
    struct records all;
    read_all(f->s, &all);
    assert_int_equal(all.n, 1); /* 0001 ran before the trail existed */
    assert_int_equal(all.r[0].seq, 1);
    assert_string_equal(all.r[0].actor, "system");
    assert_string_equal(all.r[0].action, "migration.apply");
    assert_string_equal(all.r[0].resource, "migration:0002_auth_audit");
    assert_string_equal(all.r[0].decision, "success");
    uint8_t zeros[AUDIT_HASH_BYTES] = {0};
    assert_memory_equal(all.r[0].prev_hash, zeros, AUDIT_HASH_BYTES);
    uint8_t h[AUDIT_HASH_BYTES];
    assert_int_equal(audit_record_hash(&all.r[0], h), 0);
    assert_memory_equal(h, all.r[0].hash, AUDIT_HASH_BYTES);

    /* The command line names its actor. */
    char url[PATH_MAX + 32];
    snprintf(url, sizeof(url), "sqlite://%s/other.db", f->dir);
    struct store *s = open_store(url);
    struct buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_migrate_up_as(s, "cli:operator", NULL, NULL, &err), 0);
    read_all(s, &all);
    assert_int_equal(all.n, 1);
    assert_string_equal(all.r[0].actor, "cli:operator");
    /* An actor that cannot be recorded fails the migration: nothing applied. */
    store_close(s);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/other.db", f->dir);
    (void)unlink(p);
    s = open_store(url);
    assert_int_equal(store_migrate_up_as(s, "cli:bad\x01user", NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.data, "actor"));
    struct store_migration_status ms;
    assert_int_equal(store_migration_status(s, &ms), 0);
    assert_int_equal(ms.applied, 1); /* 0001 only */
    buf_release(&err);
    store_close(s);
    (void)unlink(p);
    snprintf(p, sizeof(p), "%s/other.db-wal", f->dir);
    (void)unlink(p);
    snprintf(p, sizeof(p), "%s/other.db-shm", f->dir);
    (void)unlink(p);
}

/* ---------------------------------------------------------------------------------------
 * API keys.
 * ------------------------------------------------------------------------------------- */
static int collect_key(void *ctx, const struct store_apikey *k)
{
    struct store_apikey *out = ctx;
    size_t i = 0;
    while (out[i].id[0] != '\0') {
        i++;
    }
    assert_true(i < 7);
    out[i] = *k;
    return 0;
}

static int stop_at_first(void *ctx, const struct store_apikey *k)
{
    (void)k;
    (*(int *)ctx)++;
    return 42;
}

static void test_apikey_insert_get_list_revoke(void **state)
{
    struct fx *f = *state;
    struct store_apikey a = mk_key("00000000000000aa", "payments", SCOPE_LEDGER_READ, 2000);
    struct store_apikey b =
        mk_key("00000000000000bb", "ops bot", SCOPE_ADMIN | SCOPE_AUDIT_READ, 1000);
    struct audit_record ra = mk_record("cli:tester", "apikey.create", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_insert(f->s, &a, &ra), 0);
    assert_int_equal(ra.seq, 2); /* linked after the migration's record */
    struct audit_record rb = mk_record("cli:tester", "apikey.create", "apikey:00000000000000bb");
    assert_int_equal(store_apikey_insert(f->s, &b, &rb), 0);
    assert_int_equal(rb.seq, 3);
    assert_memory_equal(rb.prev_hash, ra.hash, AUDIT_HASH_BYTES);

    struct store_apikey got;
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.name, "payments");
    assert_int_equal(got.scopes, SCOPE_LEDGER_READ);
    assert_memory_equal(got.hash, a.hash, APIKEY_HASH_BYTES);
    assert_int_equal(got.created_at_ms, 2000);
    assert_string_equal(got.created_by, "cli:tester");
    assert_int_equal(got.revoked_at_ms, 0);
    assert_int_equal(store_apikey_get(f->s, "00000000000000cc", &got), -ENOENT);

    /* A duplicate id writes nothing, its audit record neither. */
    struct store_apikey dup = mk_key("00000000000000aa", "other", SCOPE_FLAGS_READ, 3000);
    struct audit_record rd = mk_record("cli:tester", "apikey.create", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_insert(f->s, &dup, &rd), -EEXIST);
    assert_int_equal(tail_seq(f->s), 3);
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_string_equal(got.name, "payments");

    /* An audit record that does not validate refuses the key: both or neither. */
    struct store_apikey c = mk_key("00000000000000cc", "c", SCOPE_LEDGER_WRITE, 4000);
    struct audit_record bad = mk_record("cli:tester", "apikey.create", "apikey:00000000000000cc");
    bad.actor[0] = '\0';
    assert_int_equal(store_apikey_insert(f->s, &c, &bad), -EINVAL);
    assert_int_equal(store_apikey_get(f->s, c.id, &got), -ENOENT);
    assert_int_equal(tail_seq(f->s), 3);

    /* Listed oldest first; a callback can stop the list. */
    struct store_apikey list[8];
    memset(list, 0, sizeof(list));
    assert_int_equal(store_apikey_list(f->s, collect_key, list), 0);
    assert_string_equal(list[0].id, b.id);
    assert_string_equal(list[1].id, a.id);
    assert_string_equal(list[2].id, "");
    int calls = 0;
    assert_int_equal(store_apikey_list(f->s, stop_at_first, &calls), 42);
    assert_int_equal(calls, 1);

    /* Revoke: once; again is -EALREADY and writes nothing; unknown is -ENOENT. */
    struct audit_record rr = mk_record("cli:tester", "apikey.revoke", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_revoke(f->s, a.id, 5000, &rr), 0);
    assert_int_equal(rr.seq, 4);
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_int_equal(got.revoked_at_ms, 5000);
    struct audit_record rr2 = mk_record("cli:tester", "apikey.revoke", "apikey:00000000000000aa");
    assert_int_equal(store_apikey_revoke(f->s, a.id, 6000, &rr2), -EALREADY);
    assert_int_equal(store_apikey_get(f->s, a.id, &got), 0);
    assert_int_equal(got.revoked_at_ms, 5000);
    struct audit_record rr3 = mk_record("cli:tester", "apikey.revoke", "apikey:00000000000000dd");
    assert_int_equal(store_apikey_revoke(f->s, "00000000000000dd", 6000, &rr3), -ENOENT);
    assert_int_equal(tail_seq(f->s), 4);
    assert_int_equal(store_apikey_get(f->s, b.id, &got), 0);
    assert_int_equal(got.revoked_at_ms, 0);

    struct records all;
    read_all(f->s, &all);
    assert_int_equal(all.n, 4);
    assert_string_equal(all.r[3].action, "apikey.revoke");
    assert_string_equal(all.r[3].resource, "apikey:00000000000000aa");
    struct audit_finding first;
    struct audit_verify_stats stats;
    verify_trail(f->s, NULL, &first, &stats);
    assert_int_equal(first.kind, AUDIT_OK);
    assert_int_equal(stats.records, 4);
}

/* ---------------------------------------------------------------------------------------
 * The chain with several writers.
 * ------------------------------------------------------------------------------------- */
static void test_chain_across_connections(void **state)
{
    struct fx *f = *state;
    struct store *other = open_store(f->url); /* another process, as far as SQLite knows */
    struct audit_signer *signer = fresh_signer();
    struct audit_verifier *keys = NULL;
    assert_int_equal(audit_verifier_new(&keys), 0);
    uint8_t pub[AUDIT_PUBLIC_KEY_BYTES];
    audit_signer_public_key(signer, pub, NULL);
    assert_int_equal(audit_verifier_add_raw(keys, pub, NULL), 0);

    for (int i = 0; i < 20; i++) {
        struct store *s = i % 2 == 0 ? f->s : other;
        char resource[32];
        snprintf(resource, sizeof(resource), "item:%d", i);
        struct audit_record r =
            mk_record(i % 2 == 0 ? "system" : "anonymous", "test.append", resource);
        if (i % 3 == 0) {
            /* The commit worker's way: inside its own transaction on the writer. */
            assert_int_equal(store_tx_begin(s), 0);
            assert_int_equal(store_wr_audit_append(s, &r), 0);
            uint64_t seq = 0;
            uint8_t hash[AUDIT_HASH_BYTES];
            assert_int_equal(store_wr_audit_tail(s, &seq, hash), 0);
            assert_int_equal(seq, r.seq);
            assert_memory_equal(hash, r.hash, AUDIT_HASH_BYTES);
            assert_int_equal(store_tx_commit(s), 0);
        } else {
            assert_int_equal(store_audit_append_one(s, &r), 0);
        }
        assert_int_equal(r.seq, (uint64_t)i + 2);
        if (i == 4 || i == 11) {
            checkpoint_tail(i == 4 ? other : f->s, signer);
        }
    }
    /* A rolled-back append leaves no trace: the next one takes its seq. */
    struct audit_record lost = mk_record("system", "test.rollback", "item:lost");
    assert_int_equal(store_tx_begin(f->s), 0);
    assert_int_equal(store_wr_audit_append(f->s, &lost), 0);
    assert_int_equal(lost.seq, 22);
    store_tx_rollback(f->s);
    struct audit_record next = mk_record("system", "test.append", "item:next");
    assert_int_equal(store_audit_append_one(other, &next), 0);
    assert_int_equal(next.seq, 22);
    checkpoint_tail(other, signer);

    /* A checkpoint of a seq that has one is refused. */
    struct audit_checkpoint again;
    memset(&again, 0, sizeof(again));
    assert_int_equal(store_audit_tail(f->s, &again.seq, again.hash), 0);
    again.time_unix_ms = 1;
    assert_int_equal(audit_checkpoint_sign(signer, &again), 0);
    assert_int_equal(store_audit_checkpoint_insert(f->s, &again), -EEXIST);
    uint64_t cp_seq = 0;
    int64_t cp_time = 0;
    assert_int_equal(store_audit_checkpoint_last(f->s, &cp_seq, &cp_time), 0);
    assert_int_equal(cp_seq, 22);
    assert_int_equal(cp_time, 1767225660000);

    /* One chain, every checkpoint verified, read by either store. */
    struct audit_finding first;
    struct audit_verify_stats stats;
    verify_trail(other, keys, &first, &stats);
    if (first.kind != AUDIT_OK) {
        fail_msg("finding at %llu: %s", (unsigned long long)first.seq, first.message);
    }
    assert_int_equal(stats.records, 22);
    assert_int_equal(stats.checkpoints, 3);
    assert_int_equal(stats.checkpoints_verified, 3);
    assert_int_equal(stats.records_unsigned, 0);
    verify_trail(f->s, keys, &first, &stats);
    assert_int_equal(first.kind, AUDIT_OK);

    /* Without the key every checkpoint is a finding: the verification is real. */
    verify_trail(f->s, NULL, &first, &stats);
    assert_int_equal(first.kind, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY);

    audit_verifier_free(keys);
    audit_signer_free(signer);
    store_close(other);
}

/* Several threads, each with a store of its own, appending at once. */
struct appender {
    const char *url;
    int id;
    int failures; /* cmocka's asserts belong to the main thread */
};

static void *append_many(void *arg)
{
    struct appender *a = arg;
    struct store *s = open_store(a->url);
    for (int i = 0; i < 25; i++) {
        char resource[32];
        snprintf(resource, sizeof(resource), "thread:%d:%d", a->id, i);
        struct audit_record r = mk_record("system", "test.concurrent", resource);
        if (store_audit_append_one(s, &r) != 0) {
            a->failures++;
        }
    }
    store_close(s);
    return NULL;
}

static void test_chain_concurrent_writers(void **state)
{
    struct fx *f = *state;
    pthread_t threads[4];
    struct appender args[4];
    for (int i = 0; i < 4; i++) {
        args[i].url = f->url;
        args[i].id = i;
        args[i].failures = 0;
        assert_int_equal(pthread_create(&threads[i], NULL, append_many, &args[i]), 0);
    }
    /* Meanwhile this store's administrative writer is shared by two threads of its own. */
    for (int i = 0; i < 10; i++) {
        struct audit_record r = mk_record("system", "test.main", "main");
        assert_int_equal(store_audit_append_one(f->s, &r), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    struct audit_finding first;
    struct audit_verify_stats stats;
    verify_trail(f->s, NULL, &first, &stats);
    if (first.kind != AUDIT_OK) {
        fail_msg("finding at %llu: %s", (unsigned long long)first.seq, first.message);
    }
    assert_int_equal(stats.records, 1 + 4 * 25 + 10);
    assert_int_equal(tail_seq(f->s), 1 + 4 * 25 + 10);
}

/* ---------------------------------------------------------------------------------------
 * Pages and the merged trail.
 * ------------------------------------------------------------------------------------- */
static int count_checkpoint(void *ctx, const struct audit_checkpoint *cp)
{
    uint64_t *seqs = ctx;
    seqs[++seqs[0]] = cp->seq;
    return 0;
}

static void test_pages(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 9; i++) {
        struct audit_record r = mk_record("system", "test.page", "page");
        assert_int_equal(store_audit_append_one(f->s, &r), 0);
    }
    /* 10 records in pages of 4: 4, 4, 2. */
    struct store_page page = {.after_seq = 0, .limit = 4};
    struct records got;
    uint64_t expect = 1;
    for (int p = 0; p < 3; p++) {
        memset(&got, 0, sizeof(got));
        assert_int_equal(store_audit_records(f->s, &page, collect_record, &got), 0);
        assert_int_equal(got.n, p < 2 ? 4 : 2);
        for (size_t i = 0; i < got.n; i++) {
            assert_int_equal(got.r[i].seq, expect++);
        }
        assert_int_equal(page.more_out, p < 2);
        assert_int_equal(page.last_seq_out, got.r[got.n - 1].seq);
        page.after_seq = page.last_seq_out;
    }
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_audit_records(f->s, &page, collect_record, &got), 0);
    assert_int_equal(got.n, 0);
    assert_int_equal(page.last_seq_out, 10);

    /* Checkpoints after a seq, in order. */
    struct audit_signer *signer = fresh_signer();
    struct audit_checkpoint cp;
    for (uint64_t seq = 3; seq <= 9; seq += 3) {
        memset(&cp, 0, sizeof(cp));
        cp.seq = seq;
        memset(cp.hash, (int)seq, sizeof(cp.hash)); /* not the record's: the store does not care */
        cp.time_unix_ms = (int64_t)seq;
        assert_int_equal(audit_checkpoint_sign(signer, &cp), 0);
        assert_int_equal(store_audit_checkpoint_insert(f->s, &cp), 0);
    }
    uint64_t seqs[8] = {0};
    assert_int_equal(store_audit_checkpoints(f->s, 3, count_checkpoint, seqs), 0);
    assert_int_equal(seqs[0], 2);
    assert_int_equal(seqs[1], 6);
    assert_int_equal(seqs[2], 9);
    audit_signer_free(signer);
}

/* ---------------------------------------------------------------------------------------
 * The triggers.
 * ------------------------------------------------------------------------------------- */
static void test_audit_rows_are_immutable(void **state)
{
    struct fx *f = *state;
    struct audit_signer *signer = fresh_signer();
    checkpoint_tail(f->s, signer);
    audit_signer_free(signer);

    static const char *const refused[] = {
        "UPDATE audit_records SET reason = 'changed' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 1",
        "DELETE FROM audit_records",
        "UPDATE audit_checkpoints SET time_unix_ms = 0",
        "DELETE FROM audit_checkpoints",
    };
    char msg[256];
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int rc = raw_exec(f->path, refused[i], msg, sizeof(msg));
        assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
        assert_string_equal(msg, "audit records are immutable");
    }
    struct records all;
    read_all(f->s, &all);
    assert_int_equal(all.n, 1);
    assert_string_equal(all.r[0].reason, "");
    uint64_t cp_seq = 0;
    int64_t cp_time = 0;
    assert_int_equal(store_audit_checkpoint_last(f->s, &cp_seq, &cp_time), 0);
    assert_int_equal(cp_seq, 1);

    /* Without the triggers (someone who can write the file) the change is possible, and the
     * verifier finds it. */
    assert_int_equal(raw_exec(f->path,
                              "DROP TRIGGER audit_records_no_update;"
                              " UPDATE audit_records SET reason = 'changed' WHERE seq = 1",
                              msg, sizeof(msg)),
                     SQLITE_OK);
    struct audit_finding first;
    verify_trail(f->s, NULL, &first, NULL);
    assert_int_equal(first.kind, AUDIT_FINDING_HASH_MISMATCH);
    assert_int_equal(first.seq, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_is_audited, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_apikey_insert_get_list_revoke, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_chain_across_connections, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_chain_concurrent_writers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pages, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_audit_rows_are_immutable, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
