/*
 * render.c — accounts, transfers and batch results as JSON, appended to a response buffer.
 *
 * Members come in the order of the API's representations. Strings go through
 * buf_append_json_str, amounts through u128_format, times through clock_format_rfc3339_ms, and
 * metadata is written verbatim (it is the compact text the client sent). A render that runs
 * out of room leaves the buffer as it found it.
 */
#include "ledger/render.h"

#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/u128.h"

/* Appends one piece; the render functions stop at the first error. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc != 0) {                                                                             \
            goto out_truncate;                                                                     \
        }                                                                                          \
    } while (0)

static void truncate_to(struct buf *out, size_t len)
{
    ASSERT(len <= out->len);
    out->len = len;
    if (out->data != NULL) {
        out->data[len] = '\0';
    }
}

/* Appends a string literal, its length known at compile time. */
#define LIT(out, text) buf_append((out), (text), sizeof(text) - 1)

static int str(struct buf *out, const char *s)
{
    return buf_append_json_str(out, s, strlen(s));
}

static int amount(struct buf *out, u128 v)
{
    char digits[LIMIT_U128_DEC_LEN_MAX + 1];
    size_t n = u128_format(v, digits);
    ASSERT(n >= 1 && n <= LIMIT_U128_DEC_LEN_MAX);
    char quoted[LIMIT_U128_DEC_LEN_MAX + 2];
    quoted[0] = '"';
    memcpy(quoted + 1, digits, n);
    quoted[n + 1] = '"';
    return buf_append(out, quoted, n + 2);
}

static int time_ms(struct buf *out, int64_t unix_ms)
{
    char text[CLOCK_RFC3339_MS_LEN + 3];
    size_t n = clock_format_rfc3339_ms(unix_ms, text + 1);
    ASSERT(n <= CLOCK_RFC3339_MS_LEN);
    text[0] = '"';
    text[n + 1] = '"';
    return buf_append(out, text, n + 2);
}

static int metadata(struct buf *out, struct ledger_text m)
{
    return m.len == 0 ? LIT(out, "null") : buf_append(out, m.ptr, m.len);
}

typedef const char *(*flag_name_fn)(uint32_t flag);

/* Names of the set bits, lowest bit first (the order the API lists them in). */
static int flags(struct buf *out, uint32_t set, flag_name_fn name)
{
    int rc = buf_append_char(out, '[');
    bool first = true;
    for (uint32_t bit = 1; bit != 0 && rc == 0; bit <<= 1) {
        if ((set & bit) == 0) {
            continue;
        }
        const char *n = name(bit);
        ASSERT(n != NULL);
        if (!first) {
            rc = buf_append_char(out, ',');
        }
        first = false;
        if (rc == 0) {
            rc = str(out, n);
        }
    }
    return rc == 0 ? buf_append_char(out, ']') : rc;
}

/* A struct buf over caller memory whose cap is already len_max + 1, so buf.c never grows it:
 * an append that does not fit fails with -ENOSPC instead of reallocating. */
static void stack_buf(struct buf *b, char *mem, size_t mem_bytes)
{
    ASSERT(mem_bytes >= 1);
    b->data = mem;
    b->len = 0;
    b->len_max = mem_bytes - 1;
    b->cap = mem_bytes;
    mem[0] = '\0';
}

static int render_account(struct buf *out, const struct ledger_account *a)
{
    size_t start = out->len;
    int rc;
    TRY(LIT(out, "{\"id\":"));
    TRY(str(out, a->id));
    TRY(LIT(out, ",\"ledger\":"));
    TRY(str(out, a->ledger));
    TRY(LIT(out, ",\"code\":"));
    TRY(buf_append_u64(out, a->code));
    TRY(LIT(out, ",\"flags\":"));
    TRY(flags(out, a->flags, ledger_account_flag_name));
    TRY(LIT(out, ",\"metadata\":"));
    TRY(metadata(out, a->metadata));
    TRY(LIT(out, ",\"debits_pending\":"));
    TRY(amount(out, a->debits_pending));
    TRY(LIT(out, ",\"debits_posted\":"));
    TRY(amount(out, a->debits_posted));
    TRY(LIT(out, ",\"credits_pending\":"));
    TRY(amount(out, a->credits_pending));
    TRY(LIT(out, ",\"credits_posted\":"));
    TRY(amount(out, a->credits_posted));
    TRY(LIT(out, ",\"created_at\":"));
    TRY(time_ms(out, a->created_at_ms));
    TRY(buf_append_char(out, '}'));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}

static int render_transfer(struct buf *out, const struct ledger_transfer *t)
{
    size_t start = out->len;
    int rc;
    const char *status = ledger_pending_state_name(t->pending_state);
    TRY(LIT(out, "{\"id\":"));
    TRY(str(out, t->id));
    TRY(LIT(out, ",\"debit_account_id\":"));
    TRY(str(out, t->debit_account_id));
    TRY(LIT(out, ",\"credit_account_id\":"));
    TRY(str(out, t->credit_account_id));
    TRY(LIT(out, ",\"amount\":"));
    TRY(amount(out, t->amount));
    TRY(LIT(out, ",\"ledger\":"));
    TRY(str(out, t->ledger));
    TRY(LIT(out, ",\"code\":"));
    TRY(buf_append_u64(out, t->code));
    TRY(LIT(out, ",\"flags\":"));
    TRY(flags(out, t->flags, ledger_transfer_flag_name));
    TRY(LIT(out, ",\"pending_id\":"));
    TRY(t->pending_id[0] == '\0' ? LIT(out, "null") : str(out, t->pending_id));
    TRY(LIT(out, ",\"timeout_seconds\":"));
    TRY(buf_append_u64(out, t->timeout_seconds));
    TRY(LIT(out, ",\"metadata\":"));
    TRY(metadata(out, t->metadata));
    TRY(LIT(out, ",\"created_at\":"));
    TRY(time_ms(out, t->created_at_ms));
    TRY(LIT(out, ",\"pending_status\":"));
    TRY(status == NULL ? LIT(out, "null") : str(out, status));
    TRY(buf_append_char(out, '}'));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}

/* An object is first rendered on the stack and appended to out in one piece, so out grows (and
 * reallocates) at most once per object instead of once per doubling; one that does not fit the
 * stack (large metadata) is rendered straight into out. Either way out is left as it was when
 * the object does not fit it. */
#define RENDER_STACK_BYTES 1024

int ledger_render_account(struct buf *out, const struct ledger_account *a)
{
    ASSERT(out != NULL && a != NULL);
    char mem[RENDER_STACK_BYTES];
    struct buf stage;
    stack_buf(&stage, mem, sizeof(mem));
    if (render_account(&stage, a) != 0) {
        return render_account(out, a);
    }
    return buf_append(out, stage.data, stage.len);
}

int ledger_render_transfer(struct buf *out, const struct ledger_transfer *t)
{
    ASSERT(out != NULL && t != NULL);
    char mem[RENDER_STACK_BYTES];
    struct buf stage;
    stack_buf(&stage, mem, sizeof(mem));
    if (render_transfer(&stage, t) != 0) {
        return render_transfer(out, t);
    }
    return buf_append(out, stage.data, stage.len);
}

int ledger_render_batch_results(struct buf *out, const struct ledger_transfer *items,
                                const enum ledger_result *results, size_t n)
{
    ASSERT(out != NULL);
    ASSERT(n == 0 || (items != NULL && results != NULL));
    size_t start = out->len;
    int rc;
    TRY(LIT(out, "{\"results\":["));
    for (size_t i = 0; i < n; i++) {
        TRY(i == 0 ? LIT(out, "{\"index\":") : LIT(out, ",{\"index\":"));
        TRY(buf_append_u64(out, i));
        TRY(LIT(out, ",\"id\":"));
        TRY(str(out, items[i].id));
        TRY(LIT(out, ",\"result\":"));
        TRY(str(out, ledger_result_code(results[i])));
        TRY(buf_append_char(out, '}'));
    }
    TRY(LIT(out, "]}"));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}
