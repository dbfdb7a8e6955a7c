/*
 * decode.c — request bodies to ledger commands.
 *
 * Three passes over the bytes: a nesting pre-scan (so no parser recurses deeper than
 * LIMIT_JSON_DEPTH_MAX), jansson (syntax, UTF-8, duplicate keys; strings may hold U+0000, which
 * every grammar below then refuses), and the field rules, which collect every error in document
 * order. Metadata keeps the client's own text: jansson does not
 * report where a value starts, so a small scanner walks the raw bytes (already known to be
 * valid JSON) to the "metadata" member and copies its value without insignificant whitespace.
 */
#include "ledger/decode.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/ids.h"
#include "core/u128.h"

struct decoder {
    const char *body;
    size_t len;
    struct ledger_arena *arena;
    struct ledger_decode_errors *errs;
};

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------- */
__attribute__((format(printf, 5, 6))) static void error_add(struct ledger_decode_errors *errs,
                                                            const char *prefix, const char *field,
                                                            const char *code, const char *fmt, ...)
{
    errs->count_total++;
    if (errs->count >= LIMIT_DECODE_ERRORS_MAX) {
        return;
    }
    struct problem_field_error *e = &errs->items[errs->count++];
    int n = snprintf(e->field, sizeof(e->field), "%s%s", prefix, field);
    ASSERT(n >= 0); /* a longer path is cut: paths name client keys of any length */
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0);
}

static void errors_clear(struct ledger_decode_errors *errs)
{
    errs->count = 0;
    errs->count_total = 0;
}

/* ---------------------------------------------------------------------------------------
 * Raw scanning
 * ------------------------------------------------------------------------------------- */
static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* RFC 8259 §6 number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Sets *integer when there is neither fraction nor exponent. */
static bool number_grammar_ok(const char *s, size_t len, bool *integer)
{
    size_t i = 0;
    if (i < len && s[i] == '-') {
        i++;
    }
    if (i >= len || s[i] < '0' || s[i] > '9') {
        return false;
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    }
    *integer = i == len;
    if (i < len && s[i] == '.') {
        size_t digits = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == digits) {
            return false;
        }
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t digits = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == digits) {
            return false;
        }
    }
    return i == len;
}

/* True when a well-formed number token is outside what jansson represents: a signed 64-bit
 * integer, or a double that does not overflow to infinity. */
static bool number_out_of_range(const char *s, size_t len)
{
    bool integer = false;
    if (!number_grammar_ok(s, len, &integer)) {
        return false; /* malformed: jansson reports it */
    }
    if (integer) {
        bool negative = s[0] == '-';
        size_t digits = len - (negative ? 1 : 0);
        const char *max = negative ? "9223372036854775808" : "9223372036854775807";
        return digits > 19 || (digits == 19 && memcmp(s + (negative ? 1 : 0), max, 19) > 0);
    }
    char *copy = strndup(s, len);
    if (copy == NULL) {
        return false; /* jansson will refuse it as before */
    }
    double v = strtod(copy, NULL);
    free(copy);
    return isinf(v);
}

/* One pass over the raw bytes before jansson sees them (it only needs to know what is inside
 * a string):
 * - depth: returns the offset of the first [ or { that opens level LIMIT_JSON_DEPTH_MAX + 1, or
 *   len when none (then nothing is patched).
 * - numbers: a JSON number too large for jansson would make the whole document "malformed",
 *   although it is valid JSON and only its field is wrong. *patched receives a copy of the body
 *   in which every such number is replaced, byte for byte, by a string of '#' of the same
 *   length ("#" fits no field grammar), so offsets stay true and the field gets its own error;
 *   NULL when there is none (or no memory: then jansson refuses the number as before). Caller
 *   frees. Metadata is always taken from the original bytes, so there such numbers stay
 *   verbatim. */
static size_t raw_prescan(const char *s, size_t len, char **patched)
{
    char *copy = NULL;
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    *patched = NULL;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > LIMIT_JSON_DEPTH_MAX) {
                free(copy);
                return i;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t end = i;
            while (end < len && s[end] != '\0' && strchr("0123456789+-.eE", s[end]) != NULL) {
                end++;
            }
            /* Only a value is patched: a number where a member name belongs (followed by ':')
             * is not JSON, and turned into a string it would make jansson accept a document
             * the scanners below cannot read. */
            size_t next = end;
            while (next < len && is_ws(s[next])) {
                next++;
            }
            bool member_name = next < len && s[next] == ':';
            if (!member_name && number_out_of_range(s + i, end - i)) {
                ASSERT(end - i >= 2); /* the shortest such number is "1e309" */
                if (copy == NULL && (copy = malloc(len)) != NULL) {
                    memcpy(copy, s, len);
                }
                if (copy != NULL) {
                    copy[i] = '"';
                    memset(copy + i + 1, '#', end - i - 2);
                    copy[end - 1] = '"';
                }
            }
            i = end - 1;
        }
    }
    *patched = copy;
    return len;
}

/* The scanners below run on text jansson accepted; running off the end would mean the two
 * disagree about JSON, which is a bug. */
static size_t skip_ws(const struct decoder *d, size_t i)
{
    while (i < d->len && is_ws(d->body[i])) {
        i++;
    }
    ASSERT(i < d->len);
    return i;
}

/* i is at the opening quote; returns the offset after the closing quote. */
static size_t skip_string(const struct decoder *d, size_t i)
{
    ASSERT(d->body[i] == '"');
    for (i++; i < d->len; i++) {
        if (d->body[i] == '\\') {
            i++;
        } else if (d->body[i] == '"') {
            return i + 1;
        }
    }
    core_assert_fail("unterminated string in accepted JSON", __FILE__, __LINE__);
    return d->len;
}

/* i is at the first byte of a value; returns the offset after it. */
static size_t skip_value(const struct decoder *d, size_t i)
{
    char c = d->body[i];
    if (c == '"') {
        return skip_string(d, i);
    }
    if (c != '{' && c != '[') {
        while (i < d->len && !is_ws(d->body[i]) && d->body[i] != ',' && d->body[i] != '}' &&
               d->body[i] != ']') {
            i++;
        }
        return i;
    }
    size_t depth = 0;
    while (i < d->len) {
        c = d->body[i];
        if (c == '"') {
            i = skip_string(d, i);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return i + 1;
            }
        }
        i++;
    }
    core_assert_fail("unbalanced brackets in accepted JSON", __FILE__, __LINE__);
    return d->len;
}

/* Whether the string literal body[start..end) (quotes excluded) decodes to want (ASCII). */
static bool key_equals(const struct decoder *d, size_t start, size_t end, const char *want)
{
    size_t w = 0;
    size_t want_len = strlen(want);
    for (size_t i = start; i < end; i++) {
        char c = d->body[i];
        if (c == '\\') {
            ASSERT(i + 1 < end);
            char e = d->body[++i];
            if (e == 'u') {
                ASSERT(i + 4 < end);
                int cp = 0;
                for (int k = 1; k <= 4; k++) {
                    int h = ids_hex_value(d->body[i + (size_t)k]);
                    ASSERT(h >= 0);
                    cp = cp * 16 + h;
                }
                i += 4;
                if (cp >= 0x80) {
                    return false; /* want is ASCII */
                }
                c = (char)cp;
            } else {
                const char *from = "\"\\/bfnrt";
                const char *to = "\"\\/\b\f\n\r\t";
                const char *at = strchr(from, e);
                ASSERT(at != NULL && e != '\0');
                c = to[at - from];
            }
        }
        if (w >= want_len || want[w] != c) {
            return false;
        }
        w++;
    }
    return w == want_len;
}

/* obj is the offset of an object's '{'; finds the value of member key. */
static bool member_find(const struct decoder *d, size_t obj, const char *key, size_t *value_out)
{
    ASSERT(d->body[obj] == '{');
    size_t i = skip_ws(d, obj + 1);
    while (d->body[i] != '}') {
        size_t key_start = i;
        i = skip_string(d, i);
        bool match = key_equals(d, key_start + 1, i - 1, key);
        i = skip_ws(d, i);
        ASSERT(d->body[i] == ':');
        i = skip_ws(d, i + 1);
        if (match) {
            *value_out = i;
            return true;
        }
        i = skip_ws(d, skip_value(d, i));
        if (d->body[i] == ',') {
            i = skip_ws(d, i + 1);
        }
    }
    return false;
}

/* Copies body[start..end) into the arena without whitespace outside strings. Returns the
 * compact length, or LIMIT_METADATA_BYTES_MAX + 1 as soon as it would be longer (the arena is
 * then left as it was). */
static size_t minify_to_arena(const struct decoder *d, size_t start, size_t end,
                              struct ledger_text *out)
{
    struct ledger_arena *a = d->arena;
    ASSERT(a->len <= a->cap && end - start <= a->cap - a->len);
    char *dst = a->base + a->len;
    size_t n = 0;
    bool in_string = false;
    bool escaped = false;
    for (size_t i = start; i < end; i++) {
        char c = d->body[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (is_ws(c)) {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        if (n == LIMIT_METADATA_BYTES_MAX) {
            return LIMIT_METADATA_BYTES_MAX + 1;
        }
        dst[n++] = c;
    }
    out->ptr = dst;
    out->len = n;
    a->len += n;
    return n;
}

/* ---------------------------------------------------------------------------------------
 * Field rules
 * ------------------------------------------------------------------------------------- */
struct item {
    struct decoder *d;
    const char *prefix; /* "" or "transfers[i]." */
    size_t raw;         /* offset of the item's '{' */
};

static bool key_is(const char *key, size_t key_len, const char *name)
{
    return strlen(name) == key_len && memcmp(key, name, key_len) == 0;
}

/* An id-like string (id, account ids, pending_id) into out; absent when null. */
static void field_id(struct item *it, const char *name, json_t *v, char *out, bool *present)
{
    if (json_is_null(v)) {
        return;
    }
    *present = true; /* sent; only valid when no error is added below */
    if (!json_is_string(v)) {
        error_add(it->d->errs, it->prefix, name, "field_invalid", "%s must be a string", name);
        return;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!ids_resource_id_valid(s, len)) {
        error_add(it->d->errs, it->prefix, name, "id_invalid",
                  "%s must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", name);
        return;
    }
    ASSERT(len <= LIMIT_ID_LEN_MAX);
    memcpy(out, s, len);
    out[len] = '\0';
}

static void field_ledger(struct item *it, json_t *v, char *out, bool *present)
{
    if (json_is_null(v)) {
        return;
    }
    *present = true; /* sent; only valid when no error is added below */
    if (!json_is_string(v)) {
        error_add(it->d->errs, it->prefix, "ledger", "field_invalid", "ledger must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!ids_ledger_valid(s, len)) {
        error_add(it->d->errs, it->prefix, "ledger", "ledger_invalid",
                  "ledger must match ^[A-Z0-9_]{1,16}$");
        return;
    }
    ASSERT(len <= LIMIT_LEDGER_LEN_MAX);
    memcpy(out, s, len);
    out[len] = '\0';
}

static void field_code(struct item *it, json_t *v, uint16_t *out, bool *present)
{
    if (json_is_null(v)) {
        return;
    }
    *present = true; /* sent; only valid when no error is added below */
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
        error_add(it->d->errs, it->prefix, "code", "code_invalid",
                  "code must be an integer from 0 to 65535");
        return;
    }
    *out = (uint16_t)json_integer_value(v);
}

static void field_amount(struct item *it, json_t *v, u128 *out, bool *present)
{
    if (json_is_null(v)) {
        return;
    }
    *present = true; /* sent; only valid when no error is added below */
    if (!json_is_string(v) || u128_parse(json_string_value(v), json_string_length(v), out) != 0) {
        error_add(it->d->errs, it->prefix, "amount", "amount_invalid",
                  "amount must be a decimal string of an unsigned 128-bit integer, without sign "
                  "or leading zeros");
        return;
    }
}

static void field_timeout(struct item *it, json_t *v, uint32_t *out)
{
    if (json_is_null(v)) {
        return;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)LIMIT_TIMEOUT_SECONDS_MAX) {
        error_add(it->d->errs, it->prefix, "timeout_seconds", "timeout_invalid",
                  "timeout_seconds must be an integer from 0 to 4294967295");
        return;
    }
    *out = (uint32_t)json_integer_value(v);
}

typedef int (*flag_parse_fn)(const char *name, size_t len, uint32_t *flag_out);

static void field_flags(struct item *it, json_t *v, flag_parse_fn parse, uint32_t *out)
{
    if (json_is_null(v)) {
        return;
    }
    if (!json_is_array(v)) {
        error_add(it->d->errs, it->prefix, "flags", "flag_invalid",
                  "flags must be an array of flag names");
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *f = json_array_get(v, i);
        char name[32];
        int n = snprintf(name, sizeof(name), "flags[%zu]", i);
        ASSERT(n > 0 && (size_t)n < sizeof(name));
        uint32_t bit = 0;
        if (!json_is_string(f) || parse(json_string_value(f), json_string_length(f), &bit) != 0) {
            error_add(it->d->errs, it->prefix, name, "flag_invalid", "unknown flag");
            continue;
        }
        if ((*out & bit) != 0) {
            error_add(it->d->errs, it->prefix, name, "flag_invalid", "flag \"%s\" is repeated",
                      json_string_value(f));
            continue;
        }
        *out |= bit;
    }
}

static void field_metadata(struct item *it, json_t *v, struct ledger_text *out)
{
    if (json_is_null(v)) {
        return;
    }
    if (!json_is_object(v)) {
        error_add(it->d->errs, it->prefix, "metadata", "metadata_invalid",
                  "metadata must be a JSON object");
        return;
    }
    size_t start = 0;
    bool found = member_find(it->d, it->raw, "metadata", &start);
    ASSERT(found && it->d->body[start] == '{');
    size_t end = skip_value(it->d, start);
    if (minify_to_arena(it->d, start, end, out) > LIMIT_METADATA_BYTES_MAX) {
        error_add(it->d->errs, it->prefix, "metadata", "metadata_invalid",
                  "metadata must be at most %d bytes in compact form", LIMIT_METADATA_BYTES_MAX);
    }
}

static void unknown_field(struct item *it, const char *key)
{
    error_add(it->d->errs, it->prefix, key, "unknown_field", "unknown field");
}

static void required(struct item *it, bool present, const char *name)
{
    if (!present) {
        error_add(it->d->errs, it->prefix, name, "field_required", "%s is required", name);
    }
}

static void account_fields(struct item *it, json_t *obj, struct ledger_account *out)
{
    bool have_id = false;
    bool have_ledger = false;
    bool have_code = false;
    const char *key;
    size_t key_len;
    json_t *v;
    memset(out, 0, sizeof(*out));
    json_object_keylen_foreach(obj, key, key_len, v)
    {
        if (key_is(key, key_len, "id")) {
            field_id(it, "id", v, out->id, &have_id);
        } else if (key_is(key, key_len, "ledger")) {
            field_ledger(it, v, out->ledger, &have_ledger);
        } else if (key_is(key, key_len, "code")) {
            field_code(it, v, &out->code, &have_code);
        } else if (key_is(key, key_len, "flags")) {
            size_t before = it->d->errs->count_total;
            field_flags(it, v, ledger_account_flag_parse, &out->flags);
            if (before == it->d->errs->count_total && out->flags == LEDGER_ACCOUNT_FLAGS_ALL) {
                error_add(it->d->errs, it->prefix, "flags", "flags_are_mutually_exclusive",
                          "an account takes at most one balance-limit flag");
            }
        } else if (key_is(key, key_len, "metadata")) {
            field_metadata(it, v, &out->metadata);
        } else {
            unknown_field(it, key);
        }
    }
    required(it, have_ledger, "ledger");
    required(it, have_code, "code");
}

static void transfer_fields(struct item *it, json_t *obj, struct ledger_transfer *out)
{
    bool have[5] = {false, false, false, false, false}; /* in the order of bits[] below */
    bool have_id = false;
    bool have_pending_id = false;
    const char *key;
    size_t key_len;
    json_t *v;
    memset(out, 0, sizeof(*out));
    json_object_keylen_foreach(obj, key, key_len, v)
    {
        if (key_is(key, key_len, "id")) {
            field_id(it, "id", v, out->id, &have_id);
        } else if (key_is(key, key_len, "debit_account_id")) {
            field_id(it, "debit_account_id", v, out->debit_account_id, &have[0]);
        } else if (key_is(key, key_len, "credit_account_id")) {
            field_id(it, "credit_account_id", v, out->credit_account_id, &have[1]);
        } else if (key_is(key, key_len, "amount")) {
            field_amount(it, v, &out->amount, &have[2]);
        } else if (key_is(key, key_len, "ledger")) {
            field_ledger(it, v, out->ledger, &have[3]);
        } else if (key_is(key, key_len, "code")) {
            field_code(it, v, &out->code, &have[4]);
        } else if (key_is(key, key_len, "flags")) {
            field_flags(it, v, ledger_transfer_flag_parse, &out->flags);
            uint32_t kinds = out->flags & (LEDGER_TRANSFER_PENDING | LEDGER_TRANSFER_POST_PENDING |
                                           LEDGER_TRANSFER_VOID_PENDING);
            if ((kinds & (kinds - 1)) != 0) {
                error_add(it->d->errs, it->prefix, "flags", "flags_are_mutually_exclusive",
                          "pending, post_pending and void_pending exclude each other");
            }
        } else if (key_is(key, key_len, "pending_id")) {
            field_id(it, "pending_id", v, out->pending_id, &have_pending_id);
        } else if (key_is(key, key_len, "timeout_seconds")) {
            field_timeout(it, v, &out->timeout_seconds);
        } else if (key_is(key, key_len, "metadata")) {
            field_metadata(it, v, &out->metadata);
        } else {
            unknown_field(it, key);
        }
    }
    static const uint32_t bits[5] = {LEDGER_FIELD_DEBIT_ACCOUNT_ID, LEDGER_FIELD_CREDIT_ACCOUNT_ID,
                                     LEDGER_FIELD_AMOUNT, LEDGER_FIELD_LEDGER, LEDGER_FIELD_CODE};
    for (size_t i = 0; i < 5; i++) {
        if (have[i]) {
            out->present |= bits[i];
        }
    }
    if ((out->flags & (LEDGER_TRANSFER_POST_PENDING | LEDGER_TRANSFER_VOID_PENDING)) == 0) {
        required(it, have[0], "debit_account_id");
        required(it, have[1], "credit_account_id");
        required(it, have[2], "amount");
        required(it, have[3], "ledger");
        required(it, have[4], "code");
    }
}

/* ---------------------------------------------------------------------------------------
 * Documents
 * ------------------------------------------------------------------------------------- */
/* Pre-scan, parse, and require a top-level object. Returns the document or NULL with the
 * error recorded. */
static json_t *document_load(struct decoder *d)
{
    char *patched = NULL;
    size_t at = raw_prescan(d->body, d->len, &patched);
    if (at < d->len) {
        error_add(d->errs, "", "", "malformed_json", "nesting deeper than %d at byte %zu",
                  LIMIT_JSON_DEPTH_MAX, at);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(patched != NULL ? patched : d->body, d->len,
                             JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    free(patched);
    if (doc == NULL) {
        /* jansson appends " near '<token>'": the offset says where, without echoing bytes. */
        const char *near = strstr(jerr.text, " near ");
        int text_len =
            near == NULL ? (int)strnlen(jerr.text, sizeof(jerr.text)) : (int)(near - jerr.text);
        error_add(d->errs, "", "", "malformed_json", "%.*s at byte %zu",
                  text_len < 120 ? text_len : 120, jerr.text, (size_t)jerr.position);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        error_add(d->errs, "", "", "field_invalid", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

static size_t body_start(const struct decoder *d)
{
    size_t i = skip_ws(d, 0);
    ASSERT(d->body[i] == '{');
    return i;
}

static void decoder_init(struct decoder *d, const char *body, size_t len,
                         struct ledger_arena *arena, struct ledger_decode_errors *errs)
{
    ASSERT(body != NULL || len == 0);
    ASSERT(arena != NULL && errs != NULL);
    d->body = body == NULL ? "" : body;
    d->len = len;
    d->arena = arena;
    d->errs = errs;
    errors_clear(errs);
}

/* The shape both single-object decoders share: load the document, then read the fields of
 * its top-level object into out (already zeroed by the caller). */
typedef void (*fields_fn)(struct item *it, json_t *obj, void *out);

static void account_fields_any(struct item *it, json_t *obj, void *out)
{
    account_fields(it, obj, out);
}

static void transfer_fields_any(struct item *it, json_t *obj, void *out)
{
    transfer_fields(it, obj, out);
}

static int decode_object(const char *body, size_t len, fields_fn fields, void *out,
                         struct ledger_arena *arena, struct ledger_decode_errors *errs)
{
    struct decoder d;
    decoder_init(&d, body, len, arena, errs);
    json_t *doc = document_load(&d);
    if (doc == NULL) {
        return -EINVAL;
    }
    struct item it = {&d, "", body_start(&d)};
    fields(&it, doc, out);
    json_decref(doc);
    return errs->count_total == 0 ? 0 : -EINVAL;
}

int ledger_decode_account(const char *body, size_t len, struct ledger_account *out,
                          struct ledger_arena *arena, struct ledger_decode_errors *errs)
{
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    return decode_object(body, len, account_fields_any, out, arena, errs);
}

int ledger_decode_transfer(const char *body, size_t len, struct ledger_transfer *out,
                           struct ledger_arena *arena, struct ledger_decode_errors *errs)
{
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    return decode_object(body, len, transfer_fields_any, out, arena, errs);
}

static void batch_items(struct decoder *d, json_t *items, size_t raw, struct ledger_transfer *out)
{
    ASSERT(d->body[raw] == '[');
    size_t i_raw = skip_ws(d, raw + 1);
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *v = json_array_get(items, i);
        char prefix[48];
        int n = snprintf(prefix, sizeof(prefix), "transfers[%zu].", i);
        ASSERT(n > 0 && (size_t)n < sizeof(prefix));
        if (!json_is_object(v)) {
            prefix[n - 1] = '\0'; /* the item itself: "transfers[i]" */
            error_add(d->errs, prefix, "", "field_invalid", "a transfer must be a JSON object");
        } else {
            struct item it = {d, prefix, i_raw};
            transfer_fields(&it, v, &out[i]);
        }
        i_raw = skip_ws(d, skip_value(d, i_raw));
        if (d->body[i_raw] == ',') {
            i_raw = skip_ws(d, i_raw + 1);
        }
    }
}

int ledger_decode_transfer_batch(const char *body, size_t len, struct ledger_transfer *out,
                                 size_t out_cap, size_t *count_out, struct ledger_arena *arena,
                                 struct ledger_decode_errors *errs)
{
    ASSERT(out != NULL || out_cap == 0);
    ASSERT(count_out != NULL);
    struct decoder d;
    decoder_init(&d, body, len, arena, errs);
    *count_out = 0;
    json_t *doc = document_load(&d);
    if (doc == NULL) {
        return -EINVAL;
    }
    const char *key;
    size_t key_len;
    json_t *v;
    json_t *items = NULL;
    json_object_keylen_foreach(doc, key, key_len, v)
    {
        if (key_is(key, key_len, "transfers")) {
            items = v;
        } else {
            error_add(errs, "", key, "unknown_field", "unknown field");
        }
    }
    size_t n = json_array_size(items);
    if (items == NULL || json_is_null(items)) {
        error_add(errs, "", "transfers", "field_required", "transfers is required");
    } else if (!json_is_array(items)) {
        error_add(errs, "", "transfers", "field_invalid", "transfers must be an array");
    } else if (n == 0 || n > LIMIT_BATCH_TRANSFERS_MAX || n > out_cap) {
        error_add(errs, "", "transfers", "batch_size_invalid",
                  "transfers must hold 1 to %d items, not %zu", LIMIT_BATCH_TRANSFERS_MAX, n);
    } else {
        size_t raw = 0;
        bool found = member_find(&d, body_start(&d), "transfers", &raw);
        ASSERT(found);
        batch_items(&d, items, raw, out);
    }
    json_decref(doc);
    if (errs->count_total != 0) {
        return -EINVAL;
    }
    *count_out = n;
    return 0;
}
