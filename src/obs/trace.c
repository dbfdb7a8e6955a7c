/*
 * trace.c — W3C Trace Context Level 1: strict traceparent and tracestate parsing, fresh ids for
 * server spans, and the traceresponse header.
 *
 * Invalid input is never an error for the request: the trace simply restarts (§3.2.2.7 of the
 * recommendation), so every function here answers with a bool, never a code.
 */
#include "obs/trace.h"

#include <string.h>

#include "core/assert.h"
#include "core/rand.h"

/* Offsets inside "vv-<32 trace-id>-<16 parent-id>-ff". */
#define TP_TRACE_ID_AT 3
#define TP_PARENT_ID_AT (TP_TRACE_ID_AT + TRACE_ID_HEX_LEN + 1)
#define TP_FLAGS_AT (TP_PARENT_ID_AT + TRACE_SPAN_HEX_LEN + 1)
_Static_assert(TP_FLAGS_AT + 2 == TRACE_PARENT_LEN, "traceparent layout");

/* tracestate keys and values (§3.3.1.3). */
#define TS_SIMPLE_KEY_LEN_MAX 256
#define TS_TENANT_LEN_MAX 241
#define TS_SYSTEM_LEN_MAX 14
#define TS_VALUE_LEN_MAX 256

static const char trace_hex_digits[] = "0123456789abcdef";

static int lower_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* True when s[0..n) is lower-case hex and, if nonzero_required, not all zeros. */
static bool lower_hex_field(const char *s, size_t n, bool nonzero_required)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        int v = lower_hex_value(s[i]);
        if (v < 0) {
            return false;
        }
        nonzero = nonzero || v != 0;
    }
    return nonzero || !nonzero_required;
}

bool trace_parse_traceparent(const char *s, size_t len, struct trace_context *out)
{
    ASSERT(out != NULL);
    if (s == NULL || len < TRACE_PARENT_LEN) {
        return false;
    }
    if (!lower_hex_field(s, 2, false) || (s[0] == 'f' && s[1] == 'f')) {
        return false; /* version: two lower-case hex digits, ff forbidden */
    }
    bool version_00 = s[0] == '0' && s[1] == '0';
    if (version_00 && len != TRACE_PARENT_LEN) {
        return false;
    }
    if (!version_00 && len > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-') {
        return false; /* a future version may only add fields after a dash */
    }
    if (s[2] != '-' || s[TP_PARENT_ID_AT - 1] != '-' || s[TP_FLAGS_AT - 1] != '-') {
        return false;
    }
    if (!lower_hex_field(s + TP_TRACE_ID_AT, TRACE_ID_HEX_LEN, true) ||
        !lower_hex_field(s + TP_PARENT_ID_AT, TRACE_SPAN_HEX_LEN, true) ||
        !lower_hex_field(s + TP_FLAGS_AT, 2, false)) {
        return false;
    }

    memcpy(out->trace_id, s + TP_TRACE_ID_AT, TRACE_ID_HEX_LEN);
    out->trace_id[TRACE_ID_HEX_LEN] = '\0';
    memcpy(out->parent_id, s + TP_PARENT_ID_AT, TRACE_SPAN_HEX_LEN);
    out->parent_id[TRACE_SPAN_HEX_LEN] = '\0';
    out->flags =
        (uint8_t)(lower_hex_value(s[TP_FLAGS_AT]) * 16 + lower_hex_value(s[TP_FLAGS_AT + 1]));
    return true;
}

static bool is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* lcalpha / DIGIT / "_" / "-" / "*" / "/" */
static bool is_key_char(char c)
{
    return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* first char checked by the caller; the rest are key chars; 1..len_max long */
static bool key_part_valid(const char *s, size_t n, size_t len_max)
{
    if (n == 0 || n > len_max) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!is_key_char(s[i])) {
            return false;
        }
    }
    return true;
}

/* key = simple-key / multi-tenant-key (tenant-id "@" system-id). */
static bool ts_key_valid(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at == NULL) {
        return n > 0 && is_lcalpha(s[0]) && key_part_valid(s, n, TS_SIMPLE_KEY_LEN_MAX);
    }
    size_t tenant_len = (size_t)(at - s);
    const char *system = at + 1;
    size_t system_len = n - tenant_len - 1;
    return tenant_len > 0 && (is_lcalpha(s[0]) || is_digit(s[0])) &&
           key_part_valid(s, tenant_len, TS_TENANT_LEN_MAX) && system_len > 0 &&
           is_lcalpha(system[0]) && key_part_valid(system, system_len, TS_SYSTEM_LEN_MAX);
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = 0x21-0x7E except ',' '='. */
static bool ts_value_valid(const char *s, size_t n)
{
    if (n == 0 || n > TS_VALUE_LEN_MAX || s[n - 1] == ' ') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') {
            return false;
        }
    }
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool trace_tracestate_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > LIMIT_TRACESTATE_LEN_MAX) {
        return false;
    }
    struct {
        const char *key;
        size_t key_len;
    } keys[LIMIT_TRACESTATE_MEMBERS_MAX];
    size_t members = 0;
    size_t pos = 0;

    while (pos <= len) {
        const char *comma = memchr(s + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - s) : len;
        size_t a = pos, b = end;
        while (a < b && is_ows(s[a])) {
            a++;
        }
        while (b > a && is_ows(s[b - 1])) {
            b--;
        }
        if (a < b) { /* empty and whitespace-only members are allowed and skipped */
            const char *eq = memchr(s + a, '=', b - a);
            if (eq == NULL || members == LIMIT_TRACESTATE_MEMBERS_MAX) {
                return false;
            }
            size_t key_len = (size_t)(eq - (s + a));
            const char *value = eq + 1;
            size_t value_len = b - (size_t)(value - s);
            if (!ts_key_valid(s + a, key_len) || !ts_value_valid(value, value_len)) {
                return false;
            }
            for (size_t k = 0; k < members; k++) {
                if (keys[k].key_len == key_len && memcmp(keys[k].key, s + a, key_len) == 0) {
                    return false; /* keys are unique in a list */
                }
            }
            keys[members].key = s + a;
            keys[members].key_len = key_len;
            members++;
        }
        pos = end + 1;
    }
    return members > 0; /* nothing but separators carries nothing to propagate */
}

static void random_hex_id(char *out, size_t nbytes)
{
    uint8_t raw[TRACE_ID_HEX_LEN / 2];
    ASSERT(nbytes >= 8 && nbytes <= sizeof(raw));
    rand_bytes(raw, nbytes); /* never all zero for 8 bytes or more */
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = trace_hex_digits[raw[i] >> 4];
        out[2 * i + 1] = trace_hex_digits[raw[i] & 0x0f];
    }
    out[2 * nbytes] = '\0';
}

void trace_begin(struct trace_context *ctx, const char *traceparent, size_t traceparent_len,
                 const char *tracestate, size_t tracestate_len)
{
    ASSERT(ctx != NULL);
    memset(ctx, 0, sizeof(*ctx));

    if (traceparent != NULL && trace_parse_traceparent(traceparent, traceparent_len, ctx)) {
        ctx->continued = true;
        if (tracestate != NULL && trace_tracestate_valid(tracestate, tracestate_len)) {
            memcpy(ctx->tracestate, tracestate, tracestate_len);
            ctx->tracestate[tracestate_len] = '\0';
        }
    } else {
        memset(ctx, 0, sizeof(*ctx)); /* a failed parse may not leave anything behind */
        random_hex_id(ctx->trace_id, TRACE_ID_HEX_LEN / 2);
        ctx->flags = 0x01;
    }
    random_hex_id(ctx->span_id, TRACE_SPAN_HEX_LEN / 2);
    ASSERT(strlen(ctx->trace_id) == TRACE_ID_HEX_LEN);
    ASSERT(strlen(ctx->span_id) == TRACE_SPAN_HEX_LEN);
}

void trace_format_response(const struct trace_context *ctx, char *out)
{
    ASSERT(ctx != NULL && out != NULL);
    ASSERT(strlen(ctx->trace_id) == TRACE_ID_HEX_LEN);
    ASSERT(strlen(ctx->span_id) == TRACE_SPAN_HEX_LEN);
    memcpy(out, "00-", 3);
    memcpy(out + TP_TRACE_ID_AT, ctx->trace_id, TRACE_ID_HEX_LEN);
    out[TP_PARENT_ID_AT - 1] = '-';
    memcpy(out + TP_PARENT_ID_AT, ctx->span_id, TRACE_SPAN_HEX_LEN);
    out[TP_FLAGS_AT - 1] = '-';
    out[TP_FLAGS_AT] = trace_hex_digits[ctx->flags >> 4];
    out[TP_FLAGS_AT + 1] = trace_hex_digits[ctx->flags & 0x0f];
    out[TRACE_PARENT_LEN] = '\0';
}
