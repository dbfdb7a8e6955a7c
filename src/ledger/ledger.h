/*
 * ledger.h — the ledger's domain: accounts, transfers, result codes and the rules that decide
 * whether a transfer may happen.
 *
 * Pure: nothing in src/ledger does I/O, reads a clock or allocates behind the caller's back.
 * The caller (the commit worker) loads every account and transfer a batch can touch into a
 * struct ledger_book, passes the batch's timestamp in, applies the items, and persists what the
 * book says changed. The semantics follow TigerBeetle's: posted and pending balances, balance
 * limits, pending -> post/void/expire at most once, linked chains that succeed or fail whole.
 */
#ifndef LEDGERD_LEDGER_LEDGER_H
#define LEDGERD_LEDGER_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/u128.h"

/* Account flags (bit set). */
#define LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS (1u << 0)
#define LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS (1u << 1)
#define LEDGER_ACCOUNT_FLAGS_ALL                                                                   \
    (LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS | LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS)

/* Transfer flags (bit set). */
#define LEDGER_TRANSFER_LINKED (1u << 0)
#define LEDGER_TRANSFER_PENDING (1u << 1)
#define LEDGER_TRANSFER_POST_PENDING (1u << 2)
#define LEDGER_TRANSFER_VOID_PENDING (1u << 3)
#define LEDGER_TRANSFER_FLAGS_ALL                                                                  \
    (LEDGER_TRANSFER_LINKED | LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_POST_PENDING |             \
     LEDGER_TRANSFER_VOID_PENDING)

/* Which optional transfer fields the client sent (struct ledger_transfer.present). Fields not
 * listed here are always present after decoding (id is generated when omitted). */
#define LEDGER_FIELD_DEBIT_ACCOUNT_ID (1u << 0)
#define LEDGER_FIELD_CREDIT_ACCOUNT_ID (1u << 1)
#define LEDGER_FIELD_AMOUNT (1u << 2)
#define LEDGER_FIELD_LEDGER (1u << 3)
#define LEDGER_FIELD_CODE (1u << 4)

/* State of a transfer created with LEDGER_TRANSFER_PENDING. */
enum ledger_pending_state {
    LEDGER_PENDING_NONE = 0, /* not a pending transfer */
    LEDGER_PENDING_PENDING = 1,
    LEDGER_PENDING_POSTED = 2,
    LEDGER_PENDING_VOIDED = 3,
    LEDGER_PENDING_EXPIRED = 4,
};

/* Metadata: the compact JSON text of an object, or len 0 when absent. Not NUL-terminated.
 * Owned by whoever filled the struct (a request arena, a database row, the book's arena). */
struct ledger_text {
    const char *ptr;
    size_t len;
};

struct ledger_account {
    /* Balances first: u128 wants 16-byte alignment, so this order leaves no padding. */
    u128 debits_pending;
    u128 debits_posted;
    u128 credits_pending;
    u128 credits_posted;
    struct ledger_text metadata;
    int64_t created_at_ms; /* Unix ms; set by the ledger on create */
    uint32_t flags;
    uint16_t code;
    char id[LIMIT_ID_LEN_MAX + 1];
    char ledger[LIMIT_LEDGER_LEN_MAX + 1];
};

struct ledger_transfer {
    u128 amount;
    struct ledger_text metadata;
    int64_t created_at_ms; /* set by the ledger on create */
    int64_t expires_at_ms; /* PENDING with timeout: created_at + timeout; else 0 */
    uint32_t flags;
    uint32_t timeout_seconds;
    uint32_t present; /* LEDGER_FIELD_* the client sent; stored transfers: all */
    enum ledger_pending_state pending_state; /* for PENDING transfers, else NONE */
    uint16_t code;
    char id[LIMIT_ID_LEN_MAX + 1];
    char debit_account_id[LIMIT_ID_LEN_MAX + 1];  /* "" when omitted (post/void) */
    char credit_account_id[LIMIT_ID_LEN_MAX + 1]; /* "" when omitted (post/void) */
    char ledger[LIMIT_LEDGER_LEN_MAX + 1];        /* "" when omitted (post/void) */
    char pending_id[LIMIT_ID_LEN_MAX + 1];        /* "" when absent */
};

/* The outcome of applying one item. Values are stable (they are stored). */
enum ledger_result {
    LEDGER_CREATED = 0,
    LEDGER_EXISTS,
    LEDGER_LINKED_EVENT_FAILED,
    LEDGER_LINKED_EVENT_CHAIN_OPEN,
    LEDGER_EXISTS_WITH_DIFFERENT_FIELDS,
    LEDGER_ACCOUNTS_MUST_BE_DIFFERENT,
    LEDGER_DEBIT_ACCOUNT_NOT_FOUND,
    LEDGER_CREDIT_ACCOUNT_NOT_FOUND,
    LEDGER_LEDGER_MISMATCH,
    LEDGER_EXCEEDS_CREDITS,
    LEDGER_EXCEEDS_DEBITS,
    LEDGER_OVERFLOWS_DEBITS,
    LEDGER_OVERFLOWS_CREDITS,
    LEDGER_PENDING_TRANSFER_NOT_FOUND,
    LEDGER_PENDING_TRANSFER_NOT_PENDING,
    LEDGER_PENDING_TRANSFER_ALREADY_POSTED,
    LEDGER_PENDING_TRANSFER_ALREADY_VOIDED,
    LEDGER_PENDING_TRANSFER_EXPIRED,
    LEDGER_PENDING_ID_REQUIRED,
    LEDGER_PENDING_ID_MUST_BE_ABSENT,
    LEDGER_PENDING_ID_MUST_BE_DIFFERENT,
    LEDGER_EXCEEDS_PENDING_TRANSFER_AMOUNT,
    LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS,
    LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
    LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_CODE,
    LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
    LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
    LEDGER_RESULT_COUNT
};

/* The stable snake_case code ("created", "exists", "exceeds_credits", ...). */
const char *ledger_result_code(enum ledger_result r);
/* HTTP status for a single-item request: 201 created, 200 exists, 409
 * exists_with_different_fields, 422 otherwise. */
int ledger_result_http_status(enum ledger_result r);
/* A one-sentence English explanation for problem details. */
const char *ledger_result_detail(enum ledger_result r);

/* Flag names for decoding and rendering; return 0 / -EINVAL. */
int ledger_account_flag_parse(const char *name, size_t len, uint32_t *flag_out);
int ledger_transfer_flag_parse(const char *name, size_t len, uint32_t *flag_out);
/* Name of a single flag bit, or NULL. */
const char *ledger_account_flag_name(uint32_t flag);
const char *ledger_transfer_flag_name(uint32_t flag);
const char *ledger_pending_state_name(enum ledger_pending_state s); /* NULL for NONE */

#endif
