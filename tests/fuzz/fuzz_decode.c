/*
 * fuzz_decode.c — libFuzzer target for the request decoders.
 *
 * Feeds each input to ledger_decode_account, ledger_decode_transfer and
 * ledger_decode_transfer_batch. A refusal must carry well-formed errors; a success must hold
 * only valid ids and ledgers, amounts that survive a format/parse round trip, and metadata that
 * is a compact JSON object of at most LIMIT_METADATA_BYTES_MAX bytes equal to what the client
 * sent. Every decoded object is rendered and the rendering must parse as JSON.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file, every .c
 * file of src/ledger and src/core, and $(pkg-config --cflags --libs jansson gnutls).
 * Seeds: tests/fuzz/corpus/decode/
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/u128.h"
#include "ledger/decode.h"
#include "ledger/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ledger_transfer batch[LIMIT_BATCH_TRANSFERS_MAX];

static void check_errors(const struct ledger_decode_errors *errs)
{
    ASSERT(errs->count >= 1 && errs->count <= LIMIT_DECODE_ERRORS_MAX);
    ASSERT(errs->count <= errs->count_total);
    for (size_t i = 0; i < errs->count; i++) {
        ASSERT(errs->items[i].code != NULL);
        ASSERT(memchr(errs->items[i].field, '\0', sizeof(errs->items[i].field)) != NULL);
        ASSERT(memchr(errs->items[i].detail, '\0', sizeof(errs->items[i].detail)) != NULL);
    }
    if (strcmp(errs->items[0].code, "malformed_json") == 0) {
        ASSERT(errs->count == 1 && errs->count_total == 1);
    }
}

/* jansson, the reference, cannot parse numbers beyond int64/double that the decoder accepts
 * inside metadata (and only there: anywhere else they are field errors). For such inputs the
 * checks that compare with the reference are skipped; the structural ones still run. */
static bool oracle_blind;

static bool id_ok(const char *id, bool may_be_empty)
{
    return (may_be_empty && id[0] == '\0') || ids_resource_id_valid(id, strlen(id));
}

/* Metadata: absent, or compact object text equal (as JSON) to the client's member. */
static void check_metadata(struct ledger_text m, json_t *sent)
{
    if (m.len == 0) {
        ASSERT(sent == NULL || json_is_null(sent));
        return;
    }
    ASSERT(m.len <= LIMIT_METADATA_BYTES_MAX);
    ASSERT(m.ptr[0] == '{' && m.ptr[m.len - 1] == '}');
    if (!oracle_blind) {
        json_error_t err;
        json_t *v = json_loadb(m.ptr, m.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        ASSERT(v != NULL && json_is_object(v));
        ASSERT(sent != NULL && json_equal(v, sent));
        json_decref(v);
    }
    bool in_string = false;
    bool escaped = false;
    for (size_t i = 0; i < m.len; i++) {
        char c = m.ptr[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else {
            ASSERT(c != ' ' && c != '\n' && c != '\r' && c != '\t');
            in_string = c == '"';
        }
    }
}

static void check_rendered(const struct buf *b)
{
    json_error_t err;
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    ASSERT(v != NULL || oracle_blind);
    json_decref(v);
}

static void check_transfer(const struct ledger_transfer *t, json_t *sent)
{
    ASSERT(id_ok(t->id, true));
    ASSERT(id_ok(t->pending_id, true));
    ASSERT(id_ok(t->debit_account_id, (t->present & LEDGER_FIELD_DEBIT_ACCOUNT_ID) == 0));
    ASSERT(id_ok(t->credit_account_id, (t->present & LEDGER_FIELD_CREDIT_ACCOUNT_ID) == 0));
    if ((t->present & LEDGER_FIELD_LEDGER) != 0) {
        ASSERT(ids_ledger_valid(t->ledger, strlen(t->ledger)));
    } else {
        ASSERT(t->ledger[0] == '\0');
    }
    ASSERT((t->flags & ~LEDGER_TRANSFER_FLAGS_ALL) == 0);
    uint32_t kinds = t->flags & (LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_POST_PENDING |
                                 LEDGER_TRANSFER_VOID_PENDING);
    ASSERT((kinds & (kinds - 1)) == 0);
    if ((t->flags & (LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_VOID_PENDING)) == 0) {
        ASSERT(t->present == (LEDGER_FIELD_DEBIT_ACCOUNT_ID | LEDGER_FIELD_CREDIT_ACCOUNT_ID |
                              LEDGER_FIELD_AMOUNT | LEDGER_FIELD_LEDGER | LEDGER_FIELD_CODE));
    }
    char digits[LIMIT_U128_DEC_LEN_MAX + 1];
    size_t n = u128_format(t->amount, digits);
    u128 back = 0;
    ASSERT(u128_parse(digits, n, &back) == 0 && back == t->amount);
    if ((t->present & LEDGER_FIELD_AMOUNT) != 0 && !oracle_blind) {
        json_t *a = json_object_get(sent, "amount");
        ASSERT(json_is_string(a) && strcmp(json_string_value(a), digits) == 0);
    }
    check_metadata(t->metadata, json_object_get(sent, "metadata"));

    struct buf b;
    buf_init(&b, (size_t)64 * 1024);
    ASSERT(ledger_render_transfer(&b, t) == 0);
    check_rendered(&b);
    buf_release(&b);
}

static json_t *reference(const uint8_t *data, size_t size)
{
    json_error_t err;
    json_t *doc =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    oracle_blind = doc == NULL &&
                   (strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL);
    ASSERT(oracle_blind || (doc != NULL && json_is_object(doc)));
    return doc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char *mem = malloc(size + 1);
    ASSERT(mem != NULL);
    struct ledger_arena arena = {mem, 0, size};
    struct ledger_decode_errors errs;

    struct ledger_account a;
    if (ledger_decode_account(body, size, &a, &arena, &errs) == 0) {
        json_t *doc = reference(data, size);
        ASSERT(id_ok(a.id, true));
        ASSERT(ids_ledger_valid(a.ledger, strlen(a.ledger)));
        ASSERT((a.flags & ~LEDGER_ACCOUNT_FLAGS_ALL) == 0 && a.flags != LEDGER_ACCOUNT_FLAGS_ALL);
        check_metadata(a.metadata, json_object_get(doc, "metadata"));
        struct buf b;
        buf_init(&b, (size_t)64 * 1024);
        ASSERT(ledger_render_account(&b, &a) == 0);
        check_rendered(&b);
        buf_release(&b);
        json_decref(doc);
    } else {
        check_errors(&errs);
    }

    arena.len = 0;
    struct ledger_transfer t;
    if (ledger_decode_transfer(body, size, &t, &arena, &errs) == 0) {
        json_t *doc = reference(data, size);
        check_transfer(&t, doc);
        json_decref(doc);
    } else {
        check_errors(&errs);
    }

    arena.len = 0;
    size_t n = 0;
    if (ledger_decode_transfer_batch(body, size, batch, LIMIT_BATCH_TRANSFERS_MAX, &n, &arena,
                                     &errs) == 0) {
        json_t *doc = reference(data, size);
        json_t *items = json_object_get(doc, "transfers");
        ASSERT(n >= 1 && (oracle_blind || n == json_array_size(items)));
        for (size_t i = 0; i < n; i++) {
            check_transfer(&batch[i], json_array_get(items, i));
        }
        json_decref(doc);
    } else {
        ASSERT(n == 0);
        check_errors(&errs);
    }
    ASSERT(arena.len <= arena.cap);
    free(mem);
    return 0;
}
