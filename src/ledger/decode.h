/*
 * decode.h — request bodies to ledger commands: JSON (jansson) decoding and field validation.
 *
 * Pure: bytes in, a struct and a list of field errors out. Every error is reported with a
 * field path and a stable code (docs/api/conventions.md). Metadata is kept as the client's
 * text with insignificant whitespace removed, copied into a caller-supplied arena.
 */
#ifndef LEDGERD_LEDGER_DECODE_H
#define LEDGERD_LEDGER_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/problem.h"
#include "ledger/ledger.h"

/* Codes a decode can end with (the top-level problem code is errors[0].code). */
struct ledger_decode_errors {
    struct problem_field_error items[LIMIT_DECODE_ERRORS_MAX];
    size_t count;       /* listed */
    size_t count_total; /* found, including those not listed */
};

/* An arena for metadata text: one block, sized by the caller to at least the body length
 * (the compact form is never longer than the input). */
struct ledger_arena {
    char *base;
    size_t len;
    size_t cap;
};

/* Each returns 0, or -EINVAL with errors filled (count >= 1). On malformed JSON, errors
 * holds exactly one entry with field "" and code "malformed_json", its detail naming the byte
 * offset. Ids left out by the client are returned as "" (the caller generates them).
 * body need not be NUL-terminated. */
int ledger_decode_account(const char *body, size_t len, struct ledger_account *out,
                          struct ledger_arena *arena, struct ledger_decode_errors *errs);
int ledger_decode_transfer(const char *body, size_t len, struct ledger_transfer *out,
                           struct ledger_arena *arena, struct ledger_decode_errors *errs);
/* Batch: {"transfers":[...]} with 1..LIMIT_BATCH_TRANSFERS_MAX items; out must have room for
 * out_cap items; *count_out receives the number decoded. Field paths are "transfers[i].x". */
int ledger_decode_transfer_batch(const char *body, size_t len, struct ledger_transfer *out,
                                 size_t out_cap, size_t *count_out, struct ledger_arena *arena,
                                 struct ledger_decode_errors *errs);

#endif
