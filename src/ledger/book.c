/*
 * book.c — the working set of one commit and the rules that apply ledger items to it.
 *
 * Layers, top to bottom: the entry tables (insertion-ordered arrays with an open-addressing
 * index keyed by id), the undo journal (what a linked chain must restore when it fails), the
 * rules for one account or one transfer (in TigerBeetle's order of checks), linked chains, and
 * the read-outs for the writer (changes, the balance invariant).
 *
 * Every array is allocated by ledger_book_new; nothing allocates afterwards. Invariants are
 * tagged INV-n and listed in docs/invariants.md.
 */
#include "ledger/book.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

#define TRANSFER_FIELDS_ALL                                                                        \
    (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID | LEDGER_FIELD_AMOUNT |        \
     LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE)

/* Journal entries one transfer item can write: two accounts' balances, one pending state and
 * one insertion. */
#define JOURNAL_ENTRIES_PER_ITEM 4

/* Buckets of ledger_book_balanced: ledgers are folded into them by hash, so per-bucket balance
 * is implied by per-ledger balance and the check needs no allocation. */
#define BALANCE_BUCKETS 64

enum balance {
    BALANCE_DEBITS_PENDING,
    BALANCE_DEBITS_POSTED,
    BALANCE_CREDITS_PENDING,
    BALANCE_CREDITS_POSTED,
    BALANCE_COUNT
};

struct account_entry {
    struct ledger_account a;
    u128 loaded[BALANCE_COUNT]; /* balances when loaded; zero for created accounts */
    bool created;
};

struct transfer_entry {
    struct ledger_transfer t;
    enum ledger_pending_state loaded_state;
    bool created;
};

enum journal_kind {
    JOURNAL_BALANCES,        /* index: account; balances: the old values */
    JOURNAL_TRANSFER_INSERT, /* the last transfer entry; meta_len: arena length before */
    JOURNAL_PENDING_STATE,   /* index: transfer; state: the old state */
};

struct journal_entry {
    enum journal_kind kind;
    uint32_t index;
    enum ledger_pending_state state;
    size_t meta_len;
    u128 balances[BALANCE_COUNT];
};

/* Open addressing with linear probing; slots hold entry index + 1, 0 is empty. */
struct id_index {
    uint32_t *slots;
    size_t mask;
};

struct ledger_book {
    struct account_entry *accounts;
    size_t accounts_len;
    size_t accounts_max;
    struct transfer_entry *transfers;
    size_t transfers_len;
    size_t transfers_max;
    struct id_index account_index;
    struct id_index transfer_index;
    char *meta;
    size_t meta_len;
    size_t meta_max;
    struct journal_entry *journal;
    size_t journal_len;
    size_t journal_max;
};

/* ---------------------------------------------------------------------------------------
 * Entry tables
 * ------------------------------------------------------------------------------------- */
static uint64_t id_hash(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211u;
    }
    return h;
}

static int id_index_init(struct id_index *x, size_t entries_max)
{
    size_t n = 2;
    while (n < 2 * entries_max) {
        n *= 2;
    }
    x->slots = calloc(n, sizeof(x->slots[0]));
    x->mask = n - 1;
    return x->slots == NULL ? -ENOMEM : 0;
}

static const char *account_id_at(const struct ledger_book *b, uint32_t i)
{
    return b->accounts[i].a.id;
}

static const char *transfer_id_at(const struct ledger_book *b, uint32_t i)
{
    return b->transfers[i].t.id;
}

/* The slot holding id, or the empty slot where it would go. The index is never full (it has
 * twice the room of its entries), so the probe ends. */
static size_t id_index_slot(const struct ledger_book *b, const struct id_index *x,
                            const char *(*id_at)(const struct ledger_book *, uint32_t),
                            const char *id)
{
    size_t s = (size_t)id_hash(id) & x->mask;
    for (size_t probes = 0; probes <= x->mask; probes++) {
        uint32_t v = x->slots[s];
        if (v == 0 || strcmp(id_at(b, v - 1), id) == 0) {
            return s;
        }
        s = (s + 1) & x->mask;
    }
    core_assert_fail("id index full", __FILE__, __LINE__);
    return 0;
}

static struct account_entry *account_entry_find(const struct ledger_book *b, const char *id)
{
    size_t s = id_index_slot(b, &b->account_index, account_id_at, id);
    uint32_t v = b->account_index.slots[s];
    return v == 0 ? NULL : &b->accounts[v - 1];
}

static struct transfer_entry *transfer_entry_find(const struct ledger_book *b, const char *id)
{
    size_t s = id_index_slot(b, &b->transfer_index, transfer_id_at, id);
    uint32_t v = b->transfer_index.slots[s];
    return v == 0 ? NULL : &b->transfers[v - 1];
}

static bool meta_fits(const struct ledger_book *b, struct ledger_text m)
{
    return m.len <= b->meta_max - b->meta_len;
}

/* Copies metadata into the book's arena; the caller checked meta_fits. */
static struct ledger_text meta_copy(struct ledger_book *b, struct ledger_text m)
{
    struct ledger_text out = {NULL, 0};
    ASSERT(meta_fits(b, m));
    if (m.len > 0) {
        ASSERT(m.ptr != NULL);
        out.ptr = b->meta + b->meta_len;
        out.len = m.len;
        memcpy(b->meta + b->meta_len, m.ptr, m.len);
        b->meta_len += m.len;
    }
    return out;
}

static bool meta_equal(struct ledger_text x, struct ledger_text y)
{
    return x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0);
}

static struct account_entry *account_insert(struct ledger_book *b, const struct ledger_account *a)
{
    ASSERT(b->accounts_len < b->accounts_max);
    size_t s = id_index_slot(b, &b->account_index, account_id_at, a->id);
    ASSERT(b->account_index.slots[s] == 0);
    struct account_entry *e = &b->accounts[b->accounts_len];
    memset(e, 0, sizeof(*e));
    e->a = *a;
    e->a.metadata = meta_copy(b, a->metadata);
    b->account_index.slots[s] = (uint32_t)(b->accounts_len + 1);
    b->accounts_len++;
    return e;
}

static struct transfer_entry *transfer_insert(struct ledger_book *b,
                                              const struct ledger_transfer *t)
{
    ASSERT(b->transfers_len < b->transfers_max);
    size_t s = id_index_slot(b, &b->transfer_index, transfer_id_at, t->id);
    ASSERT(b->transfer_index.slots[s] == 0);
    struct transfer_entry *e = &b->transfers[b->transfers_len];
    memset(e, 0, sizeof(*e));
    e->t = *t;
    e->t.metadata = meta_copy(b, t->metadata);
    e->loaded_state = t->pending_state;
    b->transfer_index.slots[s] = (uint32_t)(b->transfers_len + 1);
    b->transfers_len++;
    return e;
}

static void balances_get(const struct ledger_account *a, u128 out[BALANCE_COUNT])
{
    out[BALANCE_DEBITS_PENDING] = a->debits_pending;
    out[BALANCE_DEBITS_POSTED] = a->debits_posted;
    out[BALANCE_CREDITS_PENDING] = a->credits_pending;
    out[BALANCE_CREDITS_POSTED] = a->credits_posted;
}

static void balances_set(struct ledger_account *a, const u128 in[BALANCE_COUNT])
{
    a->debits_pending = in[BALANCE_DEBITS_PENDING];
    a->debits_posted = in[BALANCE_DEBITS_POSTED];
    a->credits_pending = in[BALANCE_CREDITS_PENDING];
    a->credits_posted = in[BALANCE_CREDITS_POSTED];
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle and loading
 * ------------------------------------------------------------------------------------- */
int ledger_book_new(size_t accounts_max, size_t transfers_max, size_t metadata_bytes_max,
                    struct ledger_book **out)
{
    ASSERT(out != NULL);
    ASSERT(accounts_max < UINT32_MAX / 4 && transfers_max < UINT32_MAX / 4);
    *out = NULL;
    struct ledger_book *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return -ENOMEM;
    }
    b->accounts_max = accounts_max;
    b->transfers_max = transfers_max;
    b->meta_max = metadata_bytes_max;
    b->journal_max = JOURNAL_ENTRIES_PER_ITEM * (transfers_max + 1);
    b->accounts = calloc(accounts_max + 1, sizeof(b->accounts[0]));
    b->transfers = calloc(transfers_max + 1, sizeof(b->transfers[0]));
    b->meta = malloc(metadata_bytes_max + 1);
    b->journal = calloc(b->journal_max, sizeof(b->journal[0]));
    if (b->accounts == NULL || b->transfers == NULL || b->meta == NULL || b->journal == NULL ||
        id_index_init(&b->account_index, accounts_max) != 0 ||
        id_index_init(&b->transfer_index, transfers_max) != 0) {
        ledger_book_free(b);
        return -ENOMEM;
    }
    *out = b;
    return 0;
}

void ledger_book_free(struct ledger_book *b)
{
    if (b == NULL) {
        return;
    }
    free(b->accounts);
    free(b->transfers);
    free(b->meta);
    free(b->journal);
    free(b->account_index.slots);
    free(b->transfer_index.slots);
    free(b);
}

void ledger_book_reset(struct ledger_book *b)
{
    ASSERT(b != NULL);
    memset(b->account_index.slots, 0, (b->account_index.mask + 1) * sizeof(uint32_t));
    memset(b->transfer_index.slots, 0, (b->transfer_index.mask + 1) * sizeof(uint32_t));
    b->accounts_len = 0;
    b->transfers_len = 0;
    b->meta_len = 0;
    b->journal_len = 0;
}

static bool id_fits(const char *s, size_t len_max)
{
    return s[0] != '\0' && memchr(s, '\0', len_max + 1) != NULL;
}

int ledger_book_account_load(struct ledger_book *b, const struct ledger_account *a)
{
    ASSERT(b != NULL && a != NULL);
    ASSERT(id_fits(a->id, LIMIT_ID_LEN_MAX));
    if (account_entry_find(b, a->id) != NULL) {
        return 0;
    }
    if (b->accounts_len == b->accounts_max || !meta_fits(b, a->metadata)) {
        return -ENOSPC;
    }
    struct account_entry *e = account_insert(b, a);
    balances_get(&e->a, e->loaded);
    return 0;
}

int ledger_book_transfer_load(struct ledger_book *b, const struct ledger_transfer *t)
{
    ASSERT(b != NULL && t != NULL);
    ASSERT(id_fits(t->id, LIMIT_ID_LEN_MAX));
    if (transfer_entry_find(b, t->id) != NULL) {
        return 0;
    }
    if (b->transfers_len == b->transfers_max || !meta_fits(b, t->metadata)) {
        return -ENOSPC;
    }
    transfer_insert(b, t);
    return 0;
}

const struct ledger_account *ledger_book_account_find(const struct ledger_book *b, const char *id)
{
    ASSERT(b != NULL && id != NULL);
    struct account_entry *e = account_entry_find(b, id);
    return e == NULL ? NULL : &e->a;
}

const struct ledger_transfer *ledger_book_transfer_find(const struct ledger_book *b, const char *id)
{
    ASSERT(b != NULL && id != NULL);
    struct transfer_entry *e = transfer_entry_find(b, id);
    return e == NULL ? NULL : &e->t;
}

size_t ledger_book_accounts_free(const struct ledger_book *b)
{
    ASSERT(b->accounts_len <= b->accounts_max);
    return b->accounts_max - b->accounts_len;
}

size_t ledger_book_transfers_free(const struct ledger_book *b)
{
    ASSERT(b->transfers_len <= b->transfers_max);
    return b->transfers_max - b->transfers_len;
}

size_t ledger_book_metadata_bytes_free(const struct ledger_book *b)
{
    ASSERT(b->meta_len <= b->meta_max);
    return b->meta_max - b->meta_len;
}

/* ---------------------------------------------------------------------------------------
 * Undo journal: entries are undone last first, so an inserted transfer is always the last
 * entry of the array and of the arena when its entry is undone.
 * ------------------------------------------------------------------------------------- */
static struct journal_entry *journal_push(struct ledger_book *b, enum journal_kind kind)
{
    ASSERT(b->journal_len < b->journal_max);
    struct journal_entry *j = &b->journal[b->journal_len++];
    j->kind = kind;
    return j;
}

static void journal_balances(struct ledger_book *b, const struct account_entry *e)
{
    struct journal_entry *j = journal_push(b, JOURNAL_BALANCES);
    j->index = (uint32_t)(e - b->accounts);
    balances_get(&e->a, j->balances);
}

static void journal_pending_state(struct ledger_book *b, const struct transfer_entry *e)
{
    struct journal_entry *j = journal_push(b, JOURNAL_PENDING_STATE);
    j->index = (uint32_t)(e - b->transfers);
    j->state = e->t.pending_state;
}

static void journal_rollback(struct ledger_book *b, size_t savepoint)
{
    ASSERT(savepoint <= b->journal_len);
    while (b->journal_len > savepoint) {
        struct journal_entry *j = &b->journal[--b->journal_len];
        switch (j->kind) {
        case JOURNAL_BALANCES:
            balances_set(&b->accounts[j->index].a, j->balances);
            break;
        case JOURNAL_PENDING_STATE:
            b->transfers[j->index].t.pending_state = j->state;
            break;
        case JOURNAL_TRANSFER_INSERT: {
            ASSERT(b->transfers_len > 0);
            struct transfer_entry *e = &b->transfers[b->transfers_len - 1];
            size_t s = id_index_slot(b, &b->transfer_index, transfer_id_at, e->t.id);
            ASSERT(b->transfer_index.slots[s] == b->transfers_len);
            /* The newest insertion: no later key probed past its slot, so emptying it
             * restores the index exactly. */
            b->transfer_index.slots[s] = 0;
            b->transfers_len--;
            b->meta_len = j->meta_len;
            break;
        }
        default:
            core_assert_fail("unknown journal entry", __FILE__, __LINE__);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Accounts
 * ------------------------------------------------------------------------------------- */
enum ledger_result ledger_book_account_create(struct ledger_book *b,
                                              const struct ledger_account *in, int64_t now_ms,
                                              const struct ledger_account **stored)
{
    ASSERT(b != NULL && in != NULL);
    ASSERT(id_fits(in->id, LIMIT_ID_LEN_MAX));
    ASSERT((in->flags & ~LEDGER_ACCOUNT_FLAGS_ALL) == 0);
    if (stored != NULL) {
        *stored = NULL;
    }
    struct account_entry *e = account_entry_find(b, in->id);
    if (e != NULL) {
        if (strcmp(e->a.ledger, in->ledger) != 0 || e->a.code != in->code ||
            e->a.flags != in->flags || !meta_equal(e->a.metadata, in->metadata)) {
            return LEDGER_EXISTS_WITH_DIFFERENT_FIELDS;
        }
        if (stored != NULL) {
            *stored = &e->a;
        }
        return LEDGER_EXISTS;
    }

    struct ledger_account a;
    memset(&a, 0, sizeof(a));
    memcpy(a.id, in->id, sizeof(a.id));
    memcpy(a.ledger, in->ledger, sizeof(a.ledger));
    a.code = in->code;
    a.flags = in->flags;
    a.metadata = in->metadata;
    a.created_at_ms = now_ms;
    e = account_insert(b, &a);
    e->created = true;
    if (stored != NULL) {
        *stored = &e->a;
    }
    return LEDGER_CREATED;
}

/* INV-4: an account's balance limit holds. Sums that overflow exceed any limit. */
static bool account_limits_hold(const struct ledger_account *a)
{
    u128 sum;
    if ((a->flags & LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) != 0 &&
        (u128_add_overflows(a->debits_pending, a->debits_posted, &sum) ||
         sum > a->credits_posted)) {
        return false;
    }
    if ((a->flags & LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS) != 0 &&
        (u128_add_overflows(a->credits_pending, a->credits_posted, &sum) ||
         sum > a->debits_posted)) {
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Transfers
 * ------------------------------------------------------------------------------------- */
static bool transfer_flags_valid(uint32_t flags)
{
    uint32_t kinds = flags & (LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_POST_PENDING |
                              LEDGER_TRANSFER_VOID_PENDING);
    return (flags & ~LEDGER_TRANSFER_FLAGS_ALL) == 0 && (kinds & (kinds - 1)) == 0;
}

static bool is_post_or_void(const struct ledger_transfer *t)
{
    return (t->flags & (LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_VOID_PENDING)) != 0;
}

/* Fields the client left out compare equal to their defaults; for post/void the defaults are
 * the pending transfer's values, which is what the stored post/void transfer holds, except
 * for the amount of a partial post. */
static bool transfer_same(const struct ledger_book *b, const struct ledger_transfer *t,
                          const struct ledger_transfer *e)
{
    if (t->flags != e->flags || strcmp(t->pending_id, e->pending_id) != 0 ||
        t->timeout_seconds != e->timeout_seconds || !meta_equal(t->metadata, e->metadata)) {
        return false;
    }
    if (((t->present & LEDGER_FIELD_DEBIT_ACCOUNT_ID) != 0 &&
         strcmp(t->debit_account_id, e->debit_account_id) != 0) ||
        ((t->present & LEDGER_FIELD_CREDIT_ACCOUNT_ID) != 0 &&
         strcmp(t->credit_account_id, e->credit_account_id) != 0) ||
        ((t->present & LEDGER_FIELD_LEDGER) != 0 && strcmp(t->ledger, e->ledger) != 0) ||
        ((t->present & LEDGER_FIELD_CODE) != 0 && t->code != e->code)) {
        return false;
    }
    if ((t->present & LEDGER_FIELD_AMOUNT) != 0) {
        return t->amount == e->amount;
    }
    const struct transfer_entry *p = transfer_entry_find(b, t->pending_id);
    return p == NULL || p->t.amount == e->amount;
}

/* Moves amount_pending out of both pending balances and, for a post, amount_posted into the
 * posted ones; resolves the pending transfer into state. Records the undo first. */
static void pending_resolve(struct ledger_book *b, struct transfer_entry *p,
                            struct account_entry *dr, struct account_entry *cr,
                            enum ledger_pending_state state, u128 amount_posted)
{
    u128 amount = p->t.amount;
    /* INV-3: a pending transfer resolves at most once. */
    ASSERT(p->t.pending_state == LEDGER_PENDING_PENDING);
    /* INV-2: releasing never takes a pending balance below zero. */
    ASSERT(dr->a.debits_pending >= amount);
    ASSERT(cr->a.credits_pending >= amount);
    journal_balances(b, dr);
    journal_balances(b, cr);
    journal_pending_state(b, p);
    dr->a.debits_pending -= amount;
    cr->a.credits_pending -= amount;
    if (state == LEDGER_PENDING_POSTED) {
        u128 d;
        u128 c;
        ASSERT(!u128_add_overflows(dr->a.debits_posted, amount_posted, &d));
        ASSERT(!u128_add_overflows(cr->a.credits_posted, amount_posted, &c));
        dr->a.debits_posted = d;
        cr->a.credits_posted = c;
    } else {
        ASSERT(amount_posted == 0);
    }
    p->t.pending_state = state;
    /* INV-4 */
    ASSERT(account_limits_hold(&dr->a));
    ASSERT(account_limits_hold(&cr->a));
}

static struct transfer_entry *transfer_store(struct ledger_book *b, const struct ledger_transfer *t)
{
    ASSERT(meta_fits(b, t->metadata));
    struct journal_entry *j = journal_push(b, JOURNAL_TRANSFER_INSERT);
    j->meta_len = b->meta_len;
    struct transfer_entry *e = transfer_insert(b, t);
    e->created = true;
    return e;
}

static enum ledger_result post_or_void(struct ledger_book *b, const struct ledger_transfer *t,
                                       int64_t now_ms, struct transfer_entry **stored)
{
    bool post = (t->flags & LEDGER_TRANSFER_POST_PENDING) != 0;
    if (t->pending_id[0] == '\0') {
        return LEDGER_PENDING_ID_REQUIRED;
    }
    if (strcmp(t->pending_id, t->id) == 0) {
        return LEDGER_PENDING_ID_MUST_BE_DIFFERENT;
    }
    if (t->timeout_seconds > 0) {
        return LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER;
    }
    struct transfer_entry *p = transfer_entry_find(b, t->pending_id);
    if (p == NULL) {
        return LEDGER_PENDING_TRANSFER_NOT_FOUND;
    }
    if ((p->t.flags & LEDGER_TRANSFER_PENDING) == 0) {
        return LEDGER_PENDING_TRANSFER_NOT_PENDING;
    }
    if (((t->present & LEDGER_FIELD_DEBIT_ACCOUNT_ID) != 0 &&
         strcmp(t->debit_account_id, p->t.debit_account_id) != 0) ||
        ((t->present & LEDGER_FIELD_CREDIT_ACCOUNT_ID) != 0 &&
         strcmp(t->credit_account_id, p->t.credit_account_id) != 0)) {
        return LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS;
    }
    if ((t->present & LEDGER_FIELD_LEDGER) != 0 && strcmp(t->ledger, p->t.ledger) != 0) {
        return LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER;
    }
    if ((t->present & LEDGER_FIELD_CODE) != 0 && t->code != p->t.code) {
        return LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_CODE;
    }
    switch (p->t.pending_state) {
    case LEDGER_PENDING_POSTED:
        return LEDGER_PENDING_TRANSFER_ALREADY_POSTED;
    case LEDGER_PENDING_VOIDED:
        return LEDGER_PENDING_TRANSFER_ALREADY_VOIDED;
    case LEDGER_PENDING_EXPIRED:
        return LEDGER_PENDING_TRANSFER_EXPIRED;
    case LEDGER_PENDING_PENDING:
        break;
    case LEDGER_PENDING_NONE:
    default:
        core_assert_fail("a transfer flagged pending has a pending state", __FILE__, __LINE__);
    }

    struct account_entry *dr = account_entry_find(b, p->t.debit_account_id);
    struct account_entry *cr = account_entry_find(b, p->t.credit_account_id);
    if (dr == NULL) {
        return LEDGER_DEBIT_ACCOUNT_NOT_FOUND;
    }
    if (cr == NULL) {
        return LEDGER_CREDIT_ACCOUNT_NOT_FOUND;
    }
    if (p->t.expires_at_ms != 0 && p->t.expires_at_ms <= now_ms) {
        pending_resolve(b, p, dr, cr, LEDGER_PENDING_EXPIRED, 0);
        return LEDGER_PENDING_TRANSFER_EXPIRED;
    }

    u128 amount = (t->present & LEDGER_FIELD_AMOUNT) != 0 ? t->amount : p->t.amount;
    if (post && amount > p->t.amount) {
        return LEDGER_EXCEEDS_PENDING_TRANSFER_AMOUNT;
    }
    if (!post && amount != p->t.amount) {
        return LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT;
    }
    u128 sum;
    if (post && u128_add_overflows(dr->a.debits_posted, amount, &sum)) {
        return LEDGER_OVERFLOWS_DEBITS;
    }
    if (post && u128_add_overflows(cr->a.credits_posted, amount, &sum)) {
        return LEDGER_OVERFLOWS_CREDITS;
    }

    pending_resolve(b, p, dr, cr, post ? LEDGER_PENDING_POSTED : LEDGER_PENDING_VOIDED,
                    post ? amount : 0);
    struct ledger_transfer s = *t;
    memcpy(s.debit_account_id, p->t.debit_account_id, sizeof(s.debit_account_id));
    memcpy(s.credit_account_id, p->t.credit_account_id, sizeof(s.credit_account_id));
    memcpy(s.ledger, p->t.ledger, sizeof(s.ledger));
    s.code = p->t.code;
    s.amount = amount;
    s.present = TRANSFER_FIELDS_ALL;
    s.created_at_ms = now_ms;
    s.pending_state = LEDGER_PENDING_NONE;
    s.expires_at_ms = 0;
    *stored = transfer_store(b, &s);
    return LEDGER_CREATED;
}

/* Whether adding amount to one side (pending or posted) of an account overflows either that
 * balance or the side's total (pending + posted). */
static bool side_overflows(u128 pending, u128 posted, u128 amount, bool to_pending)
{
    u128 sum;
    if (u128_add_overflows(to_pending ? pending : posted, amount, &sum)) {
        return true;
    }
    return u128_add_overflows(pending, posted, &sum) || u128_add_overflows(sum, amount, &sum);
}

static enum ledger_result transfer_create(struct ledger_book *b, const struct ledger_transfer *t,
                                          int64_t now_ms, struct transfer_entry **stored)
{
    bool pending = (t->flags & LEDGER_TRANSFER_PENDING) != 0;
    if (t->pending_id[0] != '\0') {
        return LEDGER_PENDING_ID_MUST_BE_ABSENT;
    }
    if (t->timeout_seconds > 0 && !pending) {
        return LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER;
    }
    /* Decoding requires these fields unless the transfer is a post or void. */
    ASSERT((t->present & TRANSFER_FIELDS_ALL) == TRANSFER_FIELDS_ALL);
    if (strcmp(t->debit_account_id, t->credit_account_id) == 0) {
        return LEDGER_ACCOUNTS_MUST_BE_DIFFERENT;
    }
    struct account_entry *dr = account_entry_find(b, t->debit_account_id);
    if (dr == NULL) {
        return LEDGER_DEBIT_ACCOUNT_NOT_FOUND;
    }
    struct account_entry *cr = account_entry_find(b, t->credit_account_id);
    if (cr == NULL) {
        return LEDGER_CREDIT_ACCOUNT_NOT_FOUND;
    }
    if (strcmp(dr->a.ledger, cr->a.ledger) != 0 || strcmp(t->ledger, dr->a.ledger) != 0) {
        return LEDGER_LEDGER_MISMATCH;
    }
    if (side_overflows(dr->a.debits_pending, dr->a.debits_posted, t->amount, pending)) {
        return LEDGER_OVERFLOWS_DEBITS;
    }
    if (side_overflows(cr->a.credits_pending, cr->a.credits_posted, t->amount, pending)) {
        return LEDGER_OVERFLOWS_CREDITS;
    }
    /* No overflow is possible below: the side totals were checked above. */
    if ((dr->a.flags & LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) != 0 &&
        dr->a.debits_pending + dr->a.debits_posted + t->amount > dr->a.credits_posted) {
        return LEDGER_EXCEEDS_CREDITS;
    }
    if ((cr->a.flags & LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS) != 0 &&
        cr->a.credits_pending + cr->a.credits_posted + t->amount > cr->a.debits_posted) {
        return LEDGER_EXCEEDS_DEBITS;
    }

    journal_balances(b, dr);
    journal_balances(b, cr);
    if (pending) {
        dr->a.debits_pending += t->amount;
        cr->a.credits_pending += t->amount;
    } else {
        dr->a.debits_posted += t->amount;
        cr->a.credits_posted += t->amount;
    }
    /* INV-4 */
    ASSERT(account_limits_hold(&dr->a));
    ASSERT(account_limits_hold(&cr->a));

    struct ledger_transfer s = *t;
    s.present = TRANSFER_FIELDS_ALL;
    s.created_at_ms = now_ms;
    s.pending_state = pending ? LEDGER_PENDING_PENDING : LEDGER_PENDING_NONE;
    s.expires_at_ms =
        pending && t->timeout_seconds > 0 ? now_ms + (int64_t)t->timeout_seconds * 1000 : 0;
    *stored = transfer_store(b, &s);
    return LEDGER_CREATED;
}

/* One item, checks in TigerBeetle's order. On a refusal nothing changed, except that a post or
 * void of a pending transfer past its deadline expires that transfer. */
static enum ledger_result transfer_apply(struct ledger_book *b, const struct ledger_transfer *t,
                                         int64_t now_ms, const struct ledger_transfer **stored)
{
    ASSERT(id_fits(t->id, LIMIT_ID_LEN_MAX));
    ASSERT(transfer_flags_valid(t->flags));
    *stored = NULL;
    struct transfer_entry *e = transfer_entry_find(b, t->id);
    if (e != NULL) {
        if (!transfer_same(b, t, &e->t)) {
            return LEDGER_EXISTS_WITH_DIFFERENT_FIELDS;
        }
        *stored = &e->t;
        return LEDGER_EXISTS;
    }
    enum ledger_result r =
        is_post_or_void(t) ? post_or_void(b, t, now_ms, &e) : transfer_create(b, t, now_ms, &e);
    if (r == LEDGER_CREATED) {
        *stored = &e->t;
    }
    return r;
}

static bool result_ok(enum ledger_result r)
{
    return r == LEDGER_CREATED || r == LEDGER_EXISTS;
}

/* Applies in[first..last] as one chain (a single item when first == last). stored may be
 * NULL. INV-5: a chain that fails leaves the book exactly as it was before the chain (the
 * journal undoes balances, pending states, inserted transfers and their metadata). */
static void chain_apply(struct ledger_book *b, const struct ledger_transfer *in, size_t first,
                        size_t last, int64_t now_ms, enum ledger_result *results,
                        const struct ledger_transfer **stored)
{
    b->journal_len = 0; /* the savepoint */
    for (size_t k = first; k <= last; k++) {
        const struct ledger_transfer *s = NULL;
        results[k] = transfer_apply(b, &in[k], now_ms, &s);
        if (stored != NULL) {
            stored[k] = s;
        }
        if (result_ok(results[k])) {
            continue;
        }
        if (first < last) {
            journal_rollback(b, 0);
            for (size_t j = first; j <= last; j++) {
                if (j != k) {
                    results[j] = LEDGER_LINKED_EVENT_FAILED;
                    if (stored != NULL) {
                        stored[j] = NULL;
                    }
                }
            }
        }
        break;
    }
    b->journal_len = 0;
}

size_t ledger_book_transfers_apply(struct ledger_book *b, const struct ledger_transfer *in,
                                   size_t n, int64_t now_ms, enum ledger_result *results,
                                   const struct ledger_transfer **stored)
{
    ASSERT(b != NULL && results != NULL);
    ASSERT(in != NULL || n == 0);
    /* Each item creates at most one transfer; the caller keeps room for all of them. */
    ASSERT(n <= ledger_book_transfers_free(b));
    size_t i = 0;
    while (i < n) {
        size_t last = i;
        while (last < n && (in[last].flags & LEDGER_TRANSFER_LINKED) != 0) {
            last++;
        }
        if (last == n) {
            /* A chain still open at the end of the batch: nothing of it is applied. */
            for (size_t k = i; k < n; k++) {
                results[k] = LEDGER_LINKED_EVENT_CHAIN_OPEN;
                if (stored != NULL) {
                    stored[k] = NULL;
                }
            }
            break;
        }
        chain_apply(b, in, i, last, now_ms, results, stored);
        i = last + 1;
    }
    size_t created = 0;
    for (size_t k = 0; k < n; k++) {
        created += results[k] == LEDGER_CREATED ? 1 : 0;
    }
    DEBUG_ASSERT(ledger_book_balanced(b)); /* INV-1, O(accounts): debug builds only */
    return created;
}

int ledger_book_pending_expire(struct ledger_book *b, const char *transfer_id)
{
    ASSERT(b != NULL && transfer_id != NULL);
    struct transfer_entry *p = transfer_entry_find(b, transfer_id);
    if (p == NULL) {
        return -ENOENT;
    }
    if ((p->t.flags & LEDGER_TRANSFER_PENDING) == 0 ||
        p->t.pending_state != LEDGER_PENDING_PENDING) {
        return -EINVAL;
    }
    struct account_entry *dr = account_entry_find(b, p->t.debit_account_id);
    struct account_entry *cr = account_entry_find(b, p->t.credit_account_id);
    if (dr == NULL || cr == NULL) {
        return -ENOENT;
    }
    b->journal_len = 0;
    pending_resolve(b, p, dr, cr, LEDGER_PENDING_EXPIRED, 0);
    b->journal_len = 0;
    DEBUG_ASSERT(ledger_book_balanced(b)); /* INV-1 */
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Read-outs
 * ------------------------------------------------------------------------------------- */
static bool account_balances_changed(const struct account_entry *e)
{
    u128 now[BALANCE_COUNT];
    balances_get(&e->a, now);
    return memcmp(now, e->loaded, sizeof(now)) != 0;
}

int ledger_book_changes(const struct ledger_book *b, const struct ledger_book_changes_ops *ops,
                        void *ctx)
{
    ASSERT(b != NULL && ops != NULL);
    int rc = 0;
    for (size_t i = 0; i < b->accounts_len && rc == 0; i++) {
        const struct account_entry *e = &b->accounts[i];
        if (e->created && ops->account_created != NULL) {
            rc = ops->account_created(ctx, &e->a);
        }
    }
    for (size_t i = 0; i < b->accounts_len && rc == 0; i++) {
        const struct account_entry *e = &b->accounts[i];
        if (!e->created && account_balances_changed(e) && ops->account_updated != NULL) {
            rc = ops->account_updated(ctx, &e->a);
        }
    }
    for (size_t i = 0; i < b->transfers_len && rc == 0; i++) {
        const struct transfer_entry *e = &b->transfers[i];
        if (e->created && ops->transfer_created != NULL) {
            rc = ops->transfer_created(ctx, &e->t);
        }
    }
    for (size_t i = 0; i < b->transfers_len && rc == 0; i++) {
        const struct transfer_entry *e = &b->transfers[i];
        if (!e->created && e->t.pending_state != e->loaded_state && ops->pending_updated != NULL) {
            rc = ops->pending_updated(ctx, &e->t);
        }
    }
    ASSERT(rc <= 0);
    return rc;
}

/* INV-1: per ledger, the change of Σ debits_pending equals that of Σ credits_pending, and the
 * change of Σ debits_posted equals that of Σ credits_posted. Computed from the balances
 * themselves (not from a running tally), in arithmetic modulo 2^128, so a decrease and an
 * increase cancel exactly. */
bool ledger_book_balanced(const struct ledger_book *b)
{
    ASSERT(b != NULL);
    u128 sums[BALANCE_BUCKETS][BALANCE_COUNT];
    memset(sums, 0, sizeof(sums));
    for (size_t i = 0; i < b->accounts_len; i++) {
        const struct account_entry *e = &b->accounts[i];
        u128 now[BALANCE_COUNT];
        balances_get(&e->a, now);
        size_t bucket = (size_t)(id_hash(e->a.ledger) % BALANCE_BUCKETS);
        for (int k = 0; k < BALANCE_COUNT; k++) {
            sums[bucket][k] += now[k] - e->loaded[k];
        }
    }
    for (size_t i = 0; i < BALANCE_BUCKETS; i++) {
        if (sums[i][BALANCE_DEBITS_PENDING] != sums[i][BALANCE_CREDITS_PENDING] ||
            sums[i][BALANCE_DEBITS_POSTED] != sums[i][BALANCE_CREDITS_POSTED]) {
            return false;
        }
    }
    return true;
}
