/*
 * ledger.c — the ledger's vocabulary as data: result codes with their HTTP status and
 * explanation, and the names of account flags, transfer flags and pending states.
 *
 * Every table is indexed by the enum or bit it describes, so adding a result code is one line
 * here; a _Static_assert keeps the table and the enum the same length.
 */
#include "ledger/ledger.h"

#include <errno.h>
#include <string.h>

#include "core/assert.h"

struct result_info {
    const char *code;
    const char *detail;
};

static const struct result_info result_table[] = {
    [LEDGER_CREATED] = {"created", "The item was created."},
    [LEDGER_EXISTS] = {"exists", "An item with this id and identical fields already exists."},
    [LEDGER_LINKED_EVENT_FAILED] = {"linked_event_failed",
                                    "Another transfer of the same linked chain failed."},
    [LEDGER_LINKED_EVENT_CHAIN_OPEN] = {"linked_event_chain_open",
                                        "The linked chain is not closed by an unlinked transfer."},
    [LEDGER_EXISTS_WITH_DIFFERENT_FIELDS] = {"exists_with_different_fields",
                                             "An item with this id exists with different fields."},
    [LEDGER_ACCOUNTS_MUST_BE_DIFFERENT] = {"accounts_must_be_different",
                                           "The debit and credit accounts are the same account."},
    [LEDGER_DEBIT_ACCOUNT_NOT_FOUND] = {"debit_account_not_found",
                                        "The debit account does not exist."},
    [LEDGER_CREDIT_ACCOUNT_NOT_FOUND] = {"credit_account_not_found",
                                         "The credit account does not exist."},
    [LEDGER_LEDGER_MISMATCH] = {"ledger_mismatch",
                                "The transfer and both accounts must be on the same ledger."},
    [LEDGER_EXCEEDS_CREDITS] = {"exceeds_credits",
                                "The debit account's debits would exceed its posted credits."},
    [LEDGER_EXCEEDS_DEBITS] = {"exceeds_debits",
                               "The credit account's credits would exceed its posted debits."},
    [LEDGER_OVERFLOWS_DEBITS] = {"overflows_debits",
                                 "The debit account's debits would overflow 128 bits."},
    [LEDGER_OVERFLOWS_CREDITS] = {"overflows_credits",
                                  "The credit account's credits would overflow 128 bits."},
    [LEDGER_PENDING_TRANSFER_NOT_FOUND] = {"pending_transfer_not_found",
                                           "The pending transfer does not exist."},
    [LEDGER_PENDING_TRANSFER_NOT_PENDING] = {"pending_transfer_not_pending",
                                             "The transfer named by pending_id is not pending."},
    [LEDGER_PENDING_TRANSFER_ALREADY_POSTED] = {"pending_transfer_already_posted",
                                                "The pending transfer was already posted."},
    [LEDGER_PENDING_TRANSFER_ALREADY_VOIDED] = {"pending_transfer_already_voided",
                                                "The pending transfer was already voided."},
    [LEDGER_PENDING_TRANSFER_EXPIRED] = {"pending_transfer_expired",
                                         "The pending transfer expired."},
    [LEDGER_PENDING_ID_REQUIRED] = {"pending_id_required",
                                    "post_pending and void_pending need a pending_id."},
    [LEDGER_PENDING_ID_MUST_BE_ABSENT] = {"pending_id_must_be_absent",
                                          "Only post_pending and void_pending take a pending_id."},
    [LEDGER_PENDING_ID_MUST_BE_DIFFERENT] = {"pending_id_must_be_different",
                                             "A transfer cannot name itself as pending_id."},
    [LEDGER_EXCEEDS_PENDING_TRANSFER_AMOUNT] = {"exceeds_pending_transfer_amount",
                                                "The amount exceeds the pending amount."},
    [LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS] =
        {"pending_transfer_has_different_accounts",
         "The accounts differ from those of the pending transfer."},
    [LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER] =
        {"pending_transfer_has_different_ledger",
         "The ledger differs from that of the pending transfer."},
    [LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_CODE] =
        {"pending_transfer_has_different_code",
         "The code differs from that of the pending transfer."},
    [LEDGER_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT] =
        {"pending_transfer_has_different_amount",
         "A void must name the pending amount or omit it."},
    [LEDGER_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER] =
        {"timeout_reserved_for_pending_transfer",
         "Only a pending transfer may have a timeout_seconds above 0."},
};

_Static_assert(sizeof(result_table) / sizeof(result_table[0]) == LEDGER_RESULT_COUNT,
               "every ledger result has a code and a detail");

static const struct result_info *result_info(enum ledger_result r)
{
    ASSERT((unsigned)r < LEDGER_RESULT_COUNT);
    ASSERT(result_table[r].code != NULL);
    return &result_table[r];
}

const char *ledger_result_code(enum ledger_result r)
{
    return result_info(r)->code;
}

const char *ledger_result_detail(enum ledger_result r)
{
    return result_info(r)->detail;
}

int ledger_result_http_status(enum ledger_result r)
{
    ASSERT((unsigned)r < LEDGER_RESULT_COUNT);
    switch (r) {
    case LEDGER_CREATED:
        return 201;
    case LEDGER_EXISTS:
        return 200;
    case LEDGER_EXISTS_WITH_DIFFERENT_FIELDS:
        return 409;
    default:
        return 422;
    }
}

/* ---------------------------------------------------------------------------------------
 * Flag names, in the order responses list them (the bit order).
 * ------------------------------------------------------------------------------------- */
struct flag_name {
    uint32_t flag;
    const char *name;
};

static const struct flag_name account_flags[] = {
    {LEDGER_ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, "debits_must_not_exceed_credits"},
    {LEDGER_ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, "credits_must_not_exceed_debits"},
};

static const struct flag_name transfer_flags[] = {
    {LEDGER_TRANSFER_LINKED, "linked"},
    {LEDGER_TRANSFER_PENDING, "pending"},
    {LEDGER_TRANSFER_POST_PENDING, "post_pending"},
    {LEDGER_TRANSFER_VOID_PENDING, "void_pending"},
};

static int flag_parse(const struct flag_name *table, size_t n, const char *name, size_t len,
                      uint32_t *flag_out)
{
    ASSERT(name != NULL || len == 0);
    ASSERT(flag_out != NULL);
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0) {
            *flag_out = table[i].flag;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *flag_name(const struct flag_name *table, size_t n, uint32_t flag)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].flag == flag) {
            return table[i].name;
        }
    }
    return NULL;
}

int ledger_account_flag_parse(const char *name, size_t len, uint32_t *flag_out)
{
    return flag_parse(account_flags, sizeof(account_flags) / sizeof(account_flags[0]), name, len,
                      flag_out);
}

int ledger_transfer_flag_parse(const char *name, size_t len, uint32_t *flag_out)
{
    return flag_parse(transfer_flags, sizeof(transfer_flags) / sizeof(transfer_flags[0]), name, len,
                      flag_out);
}

const char *ledger_account_flag_name(uint32_t flag)
{
    return flag_name(account_flags, sizeof(account_flags) / sizeof(account_flags[0]), flag);
}

const char *ledger_transfer_flag_name(uint32_t flag)
{
    return flag_name(transfer_flags, sizeof(transfer_flags) / sizeof(transfer_flags[0]), flag);
}

const char *ledger_pending_state_name(enum ledger_pending_state s)
{
    switch (s) {
    case LEDGER_PENDING_PENDING:
        return "pending";
    case LEDGER_PENDING_POSTED:
        return "posted";
    case LEDGER_PENDING_VOIDED:
        return "voided";
    case LEDGER_PENDING_EXPIRED:
        return "expired";
    case LEDGER_PENDING_NONE:
    default:
        return NULL;
    }
}
