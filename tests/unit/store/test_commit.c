/*
 * test_commit.c — the commit worker under concurrent load and at its edges: group commit with
 * balanced books, every response rendered, a full queue, idempotency records committed with
 * their effect (and neither when storage fails), pending expiry by the worker alone, and a stop
 * that drains the queue or answers shutting_down past its deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/u128.h"
#include "ledger/ledger.h"
#include "store/commit.h"
#include "store/store.h"

#define ALL_FIELDS                                                                                 \
    (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |        \
     LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE)
#define BODY_BYTES_MAX 8192

/* ---------------------------------------------------------------------------------------
 * Fixture and helpers.
 * ------------------------------------------------------------------------------------- */
struct fx {
    char dir[64];
    char path[PATH_MAX];
    struct store *s;
    struct commit *c;
    atomic_int done; /* commands completed */
};

struct blocker;

/* A command with room for its transfers. */
struct tcmd {
    struct commit_cmd cmd;
    struct ledger_transfer t[4];
    struct fx *f;
    struct blocker *bl; /* for blocking_done */
};

static void tcmd_done(struct commit_cmd *cmd)
{
    struct tcmd *tc = cmd->done_ctx;
    atomic_fetch_add(&tc->f->done, 1);
}

static struct commit_config default_cfg(void)
{
    struct commit_config cfg = {
        .queue_depth_max = 65536,
        .items_max = LIMIT_COMMIT_ITEMS_MAX,
        .idempotency_ttl_seconds = 3600,
        .expiry_interval_ms = 50,
    };
    return cfg;
}

static void fx_open(struct fx *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/ledgerd-commit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ledger.db", f->dir);
    char url[PATH_MAX + 16];
    snprintf(url, sizeof(url), "sqlite://%s", f->path);
    struct buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_open(url, &f->s, &err), 0);
    assert_int_equal(store_migrate_up(f->s, NULL, NULL, &err), 0);
    buf_release(&err);
}

static int fx_setup_cfg(void **state, const struct commit_config *cfg)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fx_open(f);
    assert_int_equal(commit_start(f->s, cfg, &f->c), 0);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    struct commit_config cfg = default_cfg();
    return fx_setup_cfg(state, &cfg);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->c != NULL) {
        commit_stop(f->c, clock_mono_ns() + 10ll * 1000 * 1000 * 1000);
    }
    store_close(f->s);
    static const char *const names[] = {"ledger.db", "ledger.db-wal", "ledger.db-shm"};
    char p[PATH_MAX];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
        (void)unlink(p);
    }
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

static void tcmd_init(struct tcmd *tc, struct fx *f, enum commit_kind kind)
{
    memset(tc, 0, sizeof(*tc));
    tc->f = f;
    tc->cmd.kind = kind;
    tc->cmd.transfers = tc->t;
    tc->cmd.transfers_count = kind == COMMIT_ACCOUNT_CREATE ? 0 : 1;
    tc->cmd.done = tcmd_done;
    tc->cmd.done_ctx = tc;
    snprintf(tc->cmd.request_id, sizeof(tc->cmd.request_id), "req-test");
    buf_init(&tc->cmd.body, BODY_BYTES_MAX);
}

static void tcmd_account(struct tcmd *tc, struct fx *f, const char *id, const char *ledger)
{
    tcmd_init(tc, f, COMMIT_ACCOUNT_CREATE);
    snprintf(tc->cmd.account.id, sizeof(tc->cmd.account.id), "%s", id);
    snprintf(tc->cmd.account.ledger, sizeof(tc->cmd.account.ledger), "%s", ledger);
    tc->cmd.account.code = 10;
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

static void tcmd_transfer(struct tcmd *tc, struct fx *f, const struct ledger_transfer *t)
{
    tcmd_init(tc, f, COMMIT_TRANSFER_CREATE);
    tc->t[0] = *t;
}

static void submit_retry(struct fx *f, struct tcmd *tc)
{
    for (;;) {
        int rc = commit_submit(f->c, &tc->cmd);
        if (rc == 0) {
            return;
        }
        assert_int_equal(rc, -EAGAIN);
        usleep(200);
    }
}

static void wait_done(struct fx *f, int n, int timeout_s)
{
    int64_t until = clock_mono_ns() + (int64_t)timeout_s * 1000000000;
    while (atomic_load(&f->done) < n) {
        assert_true(clock_mono_ns() < until);
        usleep(500);
    }
    assert_int_equal(atomic_load(&f->done), n);
}

/* Submits one command and waits for it. */
static void run_one(struct fx *f, struct tcmd *tc)
{
    int before = atomic_load(&f->done);
    submit_retry(f, tc);
    wait_done(f, before + 1, 30);
}

static const char *body_of(const struct tcmd *tc)
{
    return tc->cmd.body.data != NULL ? tc->cmd.body.data : "";
}

struct got_account {
    int calls;
    struct ledger_account a;
};

static int got_account_fn(void *ctx, const struct ledger_account *a)
{
    struct got_account *g = ctx;
    g->calls++;
    g->a = *a;
    g->a.metadata.ptr = NULL;
    return 0;
}

static struct ledger_account get_account(struct fx *f, const char *id)
{
    struct got_account g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_account_get(f->s, id, got_account_fn, &g), 0);
    return g.a;
}

struct got_transfer {
    int calls;
    struct ledger_transfer t;
};

static int got_transfer_fn(void *ctx, const struct ledger_transfer *t)
{
    struct got_transfer *g = ctx;
    g->calls++;
    g->t = *t;
    g->t.metadata.ptr = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Concurrent load: 8 threads, accounts then 20k transfers.
 * ------------------------------------------------------------------------------------- */
#define LOAD_THREADS 8
#define LOAD_ACCOUNTS 64 /* per ledger pair: even ids in L1, odd in L2 */
#define LOAD_TRANSFERS 20000

struct load {
    struct fx *f;
    struct tcmd *cmds; /* LOAD_ACCOUNTS + LOAD_TRANSFERS */
    int thread;
    int phase; /* 0 accounts, 1 transfers */
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *load_main(void *p)
{
    struct load *l = p;
    if (l->phase == 0) {
        for (int i = l->thread; i < LOAD_ACCOUNTS; i += LOAD_THREADS) {
            char id[24];
            snprintf(id, sizeof(id), "acct-%02d", i);
            tcmd_account(&l->cmds[i], l->f, id, i % 2 == 0 ? "L1" : "L2");
            submit_retry(l->f, &l->cmds[i]);
        }
        return NULL;
    }
    uint64_t rnd = UINT64_C(0x9e3779b97f4a7c15) * ((uint64_t)l->thread + 1u);
    for (int i = l->thread; i < LOAD_TRANSFERS; i += LOAD_THREADS) {
        int dr = (int)(xorshift(&rnd) % LOAD_ACCOUNTS);
        int cr = (int)(xorshift(&rnd) % (LOAD_ACCOUNTS / 2 - 1));
        cr = (dr % 2) + 2 * ((dr / 2 + 1 + cr) % (LOAD_ACCOUNTS / 2)); /* same ledger, != dr */
        char id[24], dr_id[16], cr_id[16];
        snprintf(id, sizeof(id), "tr-%05d", i);
        snprintf(dr_id, sizeof(dr_id), "acct-%02d", dr);
        snprintf(cr_id, sizeof(cr_id), "acct-%02d", cr);
        struct ledger_transfer t =
            mk_transfer(id, dr_id, cr_id, 1 + xorshift(&rnd) % 1000, dr % 2 ? "L2" : "L1", 0);
        tcmd_transfer(&l->cmds[LOAD_ACCOUNTS + i], l->f, &t);
        submit_retry(l->f, &l->cmds[LOAD_ACCOUNTS + i]);
    }
    return NULL;
}

static void run_phase(struct fx *f, struct tcmd *cmds, int phase)
{
    pthread_t th[LOAD_THREADS];
    struct load args[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++) {
        args[i] = (struct load){f, cmds, i, phase};
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &args[i]), 0);
    }
    for (int i = 0; i < LOAD_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
}

struct ledger_sums {
    u128 debits_posted, credits_posted, debits_pending, credits_pending;
    int accounts;
};

static int sums_fn(void *ctx, const struct ledger_account *a)
{
    struct ledger_sums *s = ctx;
    s->debits_posted += a->debits_posted;
    s->credits_posted += a->credits_posted;
    s->debits_pending += a->debits_pending;
    s->credits_pending += a->credits_pending;
    s->accounts++;
    return 0;
}

static void test_concurrent_group_commit(void **state)
{
    struct fx *f = *state;
    struct tcmd *cmds = calloc(LOAD_ACCOUNTS + LOAD_TRANSFERS, sizeof(*cmds));
    assert_non_null(cmds);

    run_phase(f, cmds, 0);
    wait_done(f, LOAD_ACCOUNTS, 60);
    for (int i = 0; i < LOAD_ACCOUNTS; i++) {
        assert_int_equal(cmds[i].cmd.status, 201);
        assert_false(cmds[i].cmd.body_is_problem);
        char loc[80];
        snprintf(loc, sizeof(loc), "/v1/accounts/acct-%02d", i);
        assert_string_equal(cmds[i].cmd.location, loc);
        assert_non_null(strstr(body_of(&cmds[i]), loc + strlen("/v1/accounts/")));
    }

    uint64_t batches_before = commit_batches_total(f->c);
    run_phase(f, cmds, 1);
    wait_done(f, LOAD_ACCOUNTS + LOAD_TRANSFERS, 120);
    uint64_t batches = commit_batches_total(f->c) - batches_before;

    /* Every answer, and the expected balances from what was sent. */
    u128 dr_expect[LOAD_ACCOUNTS] = {0};
    u128 cr_expect[LOAD_ACCOUNTS] = {0};
    u128 total[2] = {0, 0};
    for (int i = 0; i < LOAD_TRANSFERS; i++) {
        struct tcmd *tc = &cmds[LOAD_ACCOUNTS + i];
        assert_int_equal(tc->cmd.status, 201);
        assert_false(tc->cmd.body_is_problem);
        assert_non_null(strstr(body_of(tc), tc->t[0].id));
        assert_int_equal(strncmp(tc->cmd.location, "/v1/transfers/", 14), 0);
        assert_true(tc->cmd.queued_mono_ns > 0);
        unsigned long dr = strtoul(tc->t[0].debit_account_id + 5, NULL, 10);
        unsigned long cr = strtoul(tc->t[0].credit_account_id + 5, NULL, 10);
        dr_expect[dr] += tc->t[0].amount;
        cr_expect[cr] += tc->t[0].amount;
        total[dr % 2] += tc->t[0].amount;
    }
    for (int i = 0; i < LOAD_ACCOUNTS; i++) {
        char id[24];
        snprintf(id, sizeof(id), "acct-%02d", i);
        struct ledger_account a = get_account(f, id);
        assert_true(a.debits_posted == dr_expect[i]);
        assert_true(a.credits_posted == cr_expect[i]);
    }
    static const char *const ledgers[2] = {"L1", "L2"};
    for (int l = 0; l < 2; l++) {
        struct ledger_sums s;
        memset(&s, 0, sizeof(s));
        struct store_page page = {.after_seq = 0, .limit = LIMIT_LIST_MAX};
        assert_int_equal(store_accounts_list(f->s, ledgers[l], &page, sums_fn, &s), 0);
        assert_int_equal(s.accounts, LOAD_ACCOUNTS / 2);
        assert_true(s.debits_posted == s.credits_posted); /* INV-1 read back */
        assert_true(s.debits_posted == total[l]);
        assert_true(s.debits_pending == 0 && s.credits_pending == 0);
    }
    /* Group commit happened: far fewer transactions than commands. */
    fprintf(stderr, "# %d transfers in %llu batches\n", LOAD_TRANSFERS,
            (unsigned long long)batches);
    assert_true(batches >= 1);
    assert_true(batches < LOAD_TRANSFERS / 2);
    assert_true(commit_healthy(f->c));
    assert_int_equal(commit_queue_depth(f->c), 0);

    for (int i = 0; i < LOAD_ACCOUNTS + LOAD_TRANSFERS; i++) {
        buf_release(&cmds[i].cmd.body);
    }
    free(cmds);
}

/* ---------------------------------------------------------------------------------------
 * Results rendered per kind.
 * ------------------------------------------------------------------------------------- */
static void test_results_rendered(void **state)
{
    struct fx *f = *state;
    struct tcmd a, b, again, diff;
    tcmd_account(&a, f, "alpha", "USD");
    run_one(f, &a);
    assert_int_equal(a.cmd.status, 201);
    assert_string_equal(a.cmd.location, "/v1/accounts/alpha");
    tcmd_account(&b, f, "beta", "USD");
    run_one(f, &b);

    /* Same id, same fields: 200 with the stored account and no Location. */
    tcmd_account(&again, f, "alpha", "USD");
    run_one(f, &again);
    assert_int_equal(again.cmd.status, 200);
    assert_false(again.cmd.body_is_problem);
    assert_string_equal(again.cmd.location, "");
    assert_string_equal(body_of(&again), body_of(&a));

    /* Same id, other fields: 409 problem with the request id. */
    tcmd_account(&diff, f, "alpha", "EUR");
    run_one(f, &diff);
    assert_int_equal(diff.cmd.status, 409);
    assert_true(diff.cmd.body_is_problem);
    assert_non_null(strstr(body_of(&diff), "\"exists_with_different_fields\""));
    assert_non_null(strstr(body_of(&diff), "\"req-test\""));

    /* A refused transfer: 422 problem. */
    struct tcmd t1;
    struct ledger_transfer t = mk_transfer("x1", "alpha", "nobody", 5, "USD", 0);
    tcmd_transfer(&t1, f, &t);
    run_one(f, &t1);
    assert_int_equal(t1.cmd.status, 422);
    assert_true(t1.cmd.body_is_problem);
    assert_non_null(strstr(body_of(&t1), "credit_account_not_found"));
    assert_string_equal(t1.cmd.location, "");

    /* A batch: 200 with per-item results, a failed link fails its chain. */
    struct tcmd batch;
    tcmd_init(&batch, f, COMMIT_TRANSFER_BATCH);
    batch.t[0] = mk_transfer("b1", "alpha", "beta", 5, "USD", 0);
    batch.t[1] = mk_transfer("b2", "alpha", "beta", 6, "USD", LEDGER_TRANSFER_LINKED);
    batch.t[2] = mk_transfer("b3", "alpha", "alpha", 7, "USD", 0);
    batch.cmd.transfers_count = 3;
    run_one(f, &batch);
    assert_int_equal(batch.cmd.status, 200);
    assert_false(batch.cmd.body_is_problem);
    const char *body = body_of(&batch);
    assert_non_null(strstr(body, "\"results\""));
    assert_non_null(strstr(body, "\"created\""));
    assert_non_null(strstr(body, "\"linked_event_failed\""));
    assert_non_null(strstr(body, "\"accounts_must_be_different\""));
    struct ledger_account al = get_account(f, "alpha");
    assert_true(al.debits_posted == 5);

    /* A response that does not fit its buffer: 500, never partial JSON; the effect stands. */
    struct tcmd small;
    tcmd_account(&small, f, "gamma", "USD");
    buf_release(&small.cmd.body);
    buf_init(&small.cmd.body, 16);
    run_one(f, &small);
    assert_int_equal(small.cmd.status, 500);
    assert_true(small.cmd.body_is_problem);
    assert_int_equal(small.cmd.body.len, 0);
    (void)get_account(f, "gamma");

    struct tcmd *all[] = {&a, &b, &again, &diff, &t1, &batch, &small};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        buf_release(&all[i]->cmd.body);
    }
}

/* ---------------------------------------------------------------------------------------
 * A worker held inside done(): the queue fills, and stop past its deadline.
 * ------------------------------------------------------------------------------------- */
struct blocker {
    sem_t entered;
    sem_t release;
};

static void blocking_done(struct commit_cmd *cmd)
{
    struct tcmd *tc = cmd->done_ctx;
    struct blocker *bl = tc->bl;
    sem_post(&bl->entered);
    sem_wait(&bl->release);
    atomic_fetch_add(&tc->f->done, 1);
}

/* Submits a command whose done() holds the worker until released. */
static void hold_worker(struct fx *f, struct tcmd *tc, struct blocker *bl)
{
    sem_init(&bl->entered, 0, 0);
    sem_init(&bl->release, 0, 0);
    tcmd_account(tc, f, "holder", "USD");
    tc->cmd.done = blocking_done;
    tc->bl = bl;
    assert_int_equal(commit_submit(f->c, &tc->cmd), 0);
    sem_wait(&bl->entered);
}

static int fx_setup_tiny_queue(void **state)
{
    struct commit_config cfg = default_cfg();
    cfg.queue_depth_max = 1;
    return fx_setup_cfg(state, &cfg);
}

static void test_queue_full(void **state)
{
    struct fx *f = *state;
    struct tcmd holder, second, third;
    struct blocker bl;
    hold_worker(f, &holder, &bl);

    tcmd_account(&second, f, "second", "USD");
    tcmd_account(&third, f, "third", "USD");
    assert_int_equal(commit_submit(f->c, &second.cmd), 0);
    assert_int_equal(commit_queue_depth(f->c), 1);
    assert_int_equal(commit_submit(f->c, &third.cmd), -EAGAIN);
    assert_int_equal(commit_submit(f->c, &third.cmd), -EAGAIN);
    assert_int_equal(commit_rejected_total(f->c), 2);

    sem_post(&bl.release);
    wait_done(f, 2, 30);
    assert_int_equal(second.cmd.status, 201);
    assert_int_equal(commit_queue_depth(f->c), 0);
    run_one(f, &third); /* room again */
    assert_int_equal(third.cmd.status, 201);
    buf_release(&holder.cmd.body);
    buf_release(&second.cmd.body);
    buf_release(&third.cmd.body);
}

struct stopper {
    struct commit *c;
    int64_t deadline;
};

static void *stop_main(void *p)
{
    struct stopper *st = p;
    commit_stop(st->c, st->deadline);
    return NULL;
}

static void test_stop_past_deadline_answers_shutting_down(void **state)
{
    struct fx *f = *state;
    struct tcmd holder, queued[5], late[65];
    struct blocker bl;
    hold_worker(f, &holder, &bl);
    for (int i = 0; i < 5; i++) {
        char id[24];
        snprintf(id, sizeof(id), "q%d", i);
        tcmd_account(&queued[i], f, id, "USD");
        assert_int_equal(commit_submit(f->c, &queued[i].cmd), 0);
    }
    struct stopper st = {f->c, clock_mono_ns()}; /* already past when the worker looks */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_main, &st), 0);
    /* Probe until stop refuses new commands; probes that still got in are answered like the
     * other queued commands. */
    int probes = 0;
    for (;;) {
        assert_true(probes < 64);
        char id[24];
        snprintf(id, sizeof(id), "late%d", probes);
        tcmd_account(&late[probes], f, id, "USD");
        int rc = commit_submit(f->c, &late[probes].cmd);
        if (rc == -ESHUTDOWN) {
            break;
        }
        assert_int_equal(rc, 0);
        probes++;
        usleep(10000);
    }
    sem_post(&bl.release);
    assert_int_equal(pthread_join(th, NULL), 0);
    f->c = NULL; /* stopped and freed */
    assert_int_equal(atomic_load(&f->done), 6 + probes);
    assert_int_equal(holder.cmd.status, 201);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(queued[i].cmd.status, 503);
        assert_true(queued[i].cmd.body_is_problem);
        assert_non_null(strstr(body_of(&queued[i]), "\"shutting_down\""));
        struct got_account g;
        memset(&g, 0, sizeof(g));
        assert_int_equal(store_account_get(f->s, queued[i].cmd.account.id, got_account_fn, &g),
                         -ENOENT);
        buf_release(&queued[i].cmd.body);
    }
    for (int i = 0; i <= probes; i++) {
        if (i < probes) {
            assert_int_equal(late[i].cmd.status, 503);
        }
        buf_release(&late[i].cmd.body);
    }
    buf_release(&holder.cmd.body);
}

/* ---------------------------------------------------------------------------------------
 * Stop drains what is queued.
 * ------------------------------------------------------------------------------------- */
#define DRAIN_COMMANDS 3000

static void test_stop_drains_queue(void **state)
{
    struct fx *f = *state;
    struct tcmd *cmds = calloc(DRAIN_COMMANDS, sizeof(*cmds));
    assert_non_null(cmds);
    for (int i = 0; i < DRAIN_COMMANDS; i++) {
        char id[24];
        snprintf(id, sizeof(id), "d%04d", i);
        tcmd_account(&cmds[i], f, id, "USD");
        assert_int_equal(commit_submit(f->c, &cmds[i].cmd), 0);
    }
    commit_stop(f->c, clock_mono_ns() + 60ll * 1000 * 1000 * 1000);
    f->c = NULL;
    assert_int_equal(atomic_load(&f->done), DRAIN_COMMANDS);
    for (int i = 0; i < DRAIN_COMMANDS; i++) {
        assert_int_equal(cmds[i].cmd.status, 201);
        buf_release(&cmds[i].cmd.body);
    }
    struct ledger_account a = get_account(f, "d2999");
    assert_string_equal(a.ledger, "USD");
    free(cmds);
}

/* ---------------------------------------------------------------------------------------
 * Idempotency records and storage failure.
 * ------------------------------------------------------------------------------------- */
struct got_idem {
    int calls;
    int status;
    char location[128];
    char body[BODY_BYTES_MAX];
    size_t body_len;
    uint8_t digest[SHA256_BYTES];
    int64_t expires_at_ms;
};

static int got_idem_fn(void *ctx, const struct store_idem_record *r)
{
    struct got_idem *g = ctx;
    g->calls++;
    g->status = r->status;
    snprintf(g->location, sizeof(g->location), "%s", r->location);
    assert_true(r->body_len < sizeof(g->body));
    memcpy(g->body, r->body, r->body_len);
    g->body[r->body_len] = '\0';
    g->body_len = r->body_len;
    memcpy(g->digest, r->request_digest, SHA256_BYTES);
    g->expires_at_ms = r->expires_at_ms;
    return 0;
}

static void with_key(struct tcmd *tc, const char *key)
{
    snprintf(tc->cmd.principal, sizeof(tc->cmd.principal), "alice");
    snprintf(tc->cmd.idempotency_key, sizeof(tc->cmd.idempotency_key), "%s", key);
    memset(tc->cmd.request_digest, key[0], SHA256_BYTES);
}

static void test_idempotency_with_effect(void **state)
{
    struct fx *f = *state;
    int64_t t0 = clock_unix_ms();
    struct tcmd a;
    tcmd_account(&a, f, "idem-acct", "USD");
    with_key(&a, "k-create");
    run_one(f, &a);
    assert_int_equal(a.cmd.status, 201);

    struct got_idem g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "k-create", clock_unix_ms(), got_idem_fn, &g),
                     0);
    assert_int_equal(g.status, 201);
    assert_string_equal(g.location, "/v1/accounts/idem-acct");
    assert_int_equal(g.body_len, a.cmd.body.len);
    assert_string_equal(g.body, body_of(&a));
    assert_int_equal(g.digest[5], 'k');
    assert_true(g.expires_at_ms >= t0 + 3600000ll);
    assert_true(g.expires_at_ms <= clock_unix_ms() + 3600000ll);

    /* A refusal is stored too (the replay must answer the same). */
    struct tcmd r;
    struct ledger_transfer t = mk_transfer("idem-t", "idem-acct", "none", 1, "USD", 0);
    tcmd_transfer(&r, f, &t);
    with_key(&r, "k-refused");
    run_one(f, &r);
    assert_int_equal(r.cmd.status, 422);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_idem_get(f->s, "alice", "k-refused", clock_unix_ms(), got_idem_fn, &g),
                     0);
    assert_int_equal(g.status, 422);
    assert_string_equal(g.body, body_of(&r));

    /* Storage fails (another process holds the write lock past the busy timeout): 503 for the
     * command, neither its effect nor its record stored, and readiness reports it. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct tcmd lost;
    tcmd_account(&lost, f, "lost-acct", "USD");
    with_key(&lost, "k-lost");
    run_one(f, &lost);
    assert_int_equal(lost.cmd.status, 503);
    assert_true(lost.cmd.body_is_problem);
    assert_non_null(strstr(body_of(&lost), "\"storage_unavailable\""));
    assert_false(commit_healthy(f->c));
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct got_account ga;
    memset(&ga, 0, sizeof(ga));
    assert_int_equal(store_account_get(f->s, "lost-acct", got_account_fn, &ga), -ENOENT);
    assert_int_equal(store_idem_get(f->s, "alice", "k-lost", clock_unix_ms(), got_idem_fn, &g),
                     -ENOENT);

    /* The retry succeeds and the worker is healthy again. */
    struct tcmd retry;
    tcmd_account(&retry, f, "lost-acct", "USD");
    with_key(&retry, "k-lost");
    run_one(f, &retry);
    assert_int_equal(retry.cmd.status, 201);
    assert_true(commit_healthy(f->c));
    assert_int_equal(store_idem_get(f->s, "alice", "k-lost", clock_unix_ms(), got_idem_fn, &g), 0);

    buf_release(&a.cmd.body);
    buf_release(&r.cmd.body);
    buf_release(&lost.cmd.body);
    buf_release(&retry.cmd.body);
}

/* ---------------------------------------------------------------------------------------
 * Pending expiry by the worker alone.
 * ------------------------------------------------------------------------------------- */
static void test_pending_expiry(void **state)
{
    struct fx *f = *state;
    struct tcmd a, b, p, keep, late_post;
    tcmd_account(&a, f, "exp-a", "USD");
    run_one(f, &a);
    tcmd_account(&b, f, "exp-b", "USD");
    run_one(f, &b);

    struct ledger_transfer t =
        mk_transfer("hold-1s", "exp-a", "exp-b", 70, "USD", LEDGER_TRANSFER_PENDING);
    t.timeout_seconds = 1;
    tcmd_transfer(&p, f, &t);
    run_one(f, &p);
    assert_int_equal(p.cmd.status, 201);
    struct ledger_transfer t2 =
        mk_transfer("hold-forever", "exp-a", "exp-b", 5, "USD", LEDGER_TRANSFER_PENDING);
    tcmd_transfer(&keep, f, &t2);
    run_one(f, &keep);
    struct ledger_account acc = get_account(f, "exp-a");
    assert_true(acc.debits_pending == 75);

    /* No further command: the idle worker must expire it within about a second. */
    int64_t until = clock_mono_ns() + 4ll * 1000 * 1000 * 1000;
    struct got_transfer g;
    for (;;) {
        memset(&g, 0, sizeof(g));
        assert_int_equal(store_transfer_get(f->s, "hold-1s", got_transfer_fn, &g), 0);
        if (g.t.pending_state == LEDGER_PENDING_EXPIRED) {
            break;
        }
        assert_int_equal(g.t.pending_state, LEDGER_PENDING_PENDING);
        assert_true(clock_mono_ns() < until);
        usleep(20000);
    }
    assert_true(clock_unix_ms() >= g.t.expires_at_ms);
    acc = get_account(f, "exp-a");
    assert_true(acc.debits_pending == 5);
    assert_true(acc.debits_posted == 0);
    acc = get_account(f, "exp-b");
    assert_true(acc.credits_pending == 5);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_transfer_get(f->s, "hold-forever", got_transfer_fn, &g), 0);
    assert_int_equal(g.t.pending_state, LEDGER_PENDING_PENDING);

    /* Posting it now is refused. */
    struct ledger_transfer post =
        mk_transfer("post-late", "", "", 0, "", LEDGER_TRANSFER_POST_PENDING);
    post.present = 0;
    snprintf(post.pending_id, sizeof(post.pending_id), "hold-1s");
    tcmd_transfer(&late_post, f, &post);
    run_one(f, &late_post);
    assert_int_equal(late_post.cmd.status, 422);
    assert_non_null(strstr(body_of(&late_post), "pending_transfer_expired"));

    struct tcmd *all[] = {&a, &b, &p, &keep, &late_post};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        buf_release(&all[i]->cmd.body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_rendered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, fx_setup_tiny_queue, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_past_deadline_answers_shutting_down, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_queue, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_with_effect, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pending_expiry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_group_commit, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
