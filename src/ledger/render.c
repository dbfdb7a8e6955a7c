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

static int member(struct buf *out, bool first, const char *name)
{
    int rc = buf_append_str(out, first ? "{\"" : ",\"");
    if (rc == 0) {
        rc = buf_append_str(out, name);
    }
    return rc == 0 ? buf_append_str(out, "\":") : rc;
}

static int str(struct buf *out, const char *s)
{
    return buf_append_json_str(out, s, strlen(s));
}

static int amount(struct buf *out, u128 v)
{
    char digits[LIMIT_U128_DEC_LEN_MAX + 1];
    size_t n = u128_format(v, digits);
    ASSERT(n >= 1 && n <= LIMIT_U128_DEC_LEN_MAX);
    int rc = buf_append_char(out, '"');
    if (rc == 0) {
        rc = buf_append(out, digits, n);
    }
    return rc == 0 ? buf_append_char(out, '"') : rc;
}

static int time_ms(struct buf *out, int64_t unix_ms)
{
    char text[CLOCK_RFC3339_MS_LEN + 1];
    size_t n = clock_format_rfc3339_ms(unix_ms, text);
    ASSERT(n <= CLOCK_RFC3339_MS_LEN);
    int rc = buf_append_char(out, '"');
    if (rc == 0) {
        rc = buf_append(out, text, n);
    }
    return rc == 0 ? buf_append_char(out, '"') : rc;
}

static int metadata(struct buf *out, struct ledger_text m)
{
    return m.len == 0 ? buf_append_str(out, "null") : buf_append(out, m.ptr, m.len);
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

int ledger_render_account(struct buf *out, const struct ledger_account *a)
{
    ASSERT(out != NULL && a != NULL);
    size_t start = out->len;
    int rc;
    TRY(member(out, true, "id"));
    TRY(str(out, a->id));
    TRY(member(out, false, "ledger"));
    TRY(str(out, a->ledger));
    TRY(member(out, false, "code"));
    TRY(buf_append_u64(out, a->code));
    TRY(member(out, false, "flags"));
    TRY(flags(out, a->flags, ledger_account_flag_name));
    TRY(member(out, false, "metadata"));
    TRY(metadata(out, a->metadata));
    TRY(member(out, false, "debits_pending"));
    TRY(amount(out, a->debits_pending));
    TRY(member(out, false, "debits_posted"));
    TRY(amount(out, a->debits_posted));
    TRY(member(out, false, "credits_pending"));
    TRY(amount(out, a->credits_pending));
    TRY(member(out, false, "credits_posted"));
    TRY(amount(out, a->credits_posted));
    TRY(member(out, false, "created_at"));
    TRY(time_ms(out, a->created_at_ms));
    TRY(buf_append_char(out, '}'));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}

int ledger_render_transfer(struct buf *out, const struct ledger_transfer *t)
{
    ASSERT(out != NULL && t != NULL);
    size_t start = out->len;
    int rc;
    const char *status = ledger_pending_state_name(t->pending_state);
    TRY(member(out, true, "id"));
    TRY(str(out, t->id));
    TRY(member(out, false, "debit_account_id"));
    TRY(str(out, t->debit_account_id));
    TRY(member(out, false, "credit_account_id"));
    TRY(str(out, t->credit_account_id));
    TRY(member(out, false, "amount"));
    TRY(amount(out, t->amount));
    TRY(member(out, false, "ledger"));
    TRY(str(out, t->ledger));
    TRY(member(out, false, "code"));
    TRY(buf_append_u64(out, t->code));
    TRY(member(out, false, "flags"));
    TRY(flags(out, t->flags, ledger_transfer_flag_name));
    TRY(member(out, false, "pending_id"));
    TRY(t->pending_id[0] == '\0' ? buf_append_str(out, "null") : str(out, t->pending_id));
    TRY(member(out, false, "timeout_seconds"));
    TRY(buf_append_u64(out, t->timeout_seconds));
    TRY(member(out, false, "metadata"));
    TRY(metadata(out, t->metadata));
    TRY(member(out, false, "created_at"));
    TRY(time_ms(out, t->created_at_ms));
    TRY(member(out, false, "pending_status"));
    TRY(status == NULL ? buf_append_str(out, "null") : str(out, status));
    TRY(buf_append_char(out, '}'));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}

int ledger_render_batch_results(struct buf *out, const struct ledger_transfer *items,
                                const enum ledger_result *results, size_t n)
{
    ASSERT(out != NULL);
    ASSERT(n == 0 || (items != NULL && results != NULL));
    size_t start = out->len;
    int rc;
    TRY(buf_append_str(out, "{\"results\":["));
    for (size_t i = 0; i < n; i++) {
        TRY(buf_append_str(out, i == 0 ? "{\"index\":" : ",{\"index\":"));
        TRY(buf_append_u64(out, i));
        TRY(buf_append_str(out, ",\"id\":"));
        TRY(str(out, items[i].id));
        TRY(buf_append_str(out, ",\"result\":"));
        TRY(str(out, ledger_result_code(results[i])));
        TRY(buf_append_char(out, '}'));
    }
    TRY(buf_append_str(out, "]}"));
    return 0;
out_truncate:
    truncate_to(out, start);
    return rc;
}
