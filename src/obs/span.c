/*
 * span.c — spans, ledgerd's semantic conventions, the head sampler and the resource.
 *
 * Layers, top to bottom: the span model (fixed-size, a text arena for attributes), the HTTP
 * server and internal span helpers, the sampler, the key=value parser that
 * OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS share, and the resource.
 */
#include "obs/span.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/rand.h"

_Static_assert(LIMIT_SPAN_TEXT_BYTES <= UINT16_MAX, "attribute offsets are 16-bit");
_Static_assert(LIMIT_OTEL_KV_TEXT_BYTES <= UINT16_MAX, "key=value offsets are 16-bit");
_Static_assert(LIMIT_OTEL_KV_TEXT_BYTES >= LIMIT_OTEL_KV_BYTES_MAX + 2 * LIMIT_OTEL_KV_PAIRS_MAX,
               "any accepted input fits the arena with its NULs");

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Length of the longest prefix of s[0..len) not longer than max that does not end inside a
 * UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }
    size_t n = max;
    /* Step back over continuation bytes to the start of the sequence that was cut. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u) {
        n--;
    }
    return n;
}

/* True when s[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates). */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0u) == 0xC0u) {
            n = 1;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0u) == 0xE0u) {
            n = 2;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8u) == 0xF0u) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (len - i <= n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/* ---- Hex ------------------------------------------------------------------------------------- */

void span_hex(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    ASSERT(bytes != NULL && out != NULL);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xFu];
    }
    out[2 * len] = '\0';
}

bool span_unhex(const char *hex, uint8_t *out, size_t len)
{
    ASSERT(out != NULL);
    if (hex == NULL || strlen(hex) != 2 * len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        int hi = ids_hex_value(hex[2 * i]);
        int lo = ids_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return true;
}

/* ---- Span model ------------------------------------------------------------------------------ */

static void copy_cut(char *dst, size_t dst_size, const char *src)
{
    ASSERT(dst_size > 0);
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = utf8_cut(src, strlen(src), dst_size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

struct span *span_new(enum span_kind kind, const uint8_t trace_id[SPAN_TRACE_ID_BYTES],
                      const uint8_t span_id[SPAN_ID_BYTES],
                      const uint8_t parent_span_id[SPAN_ID_BYTES], const char *name,
                      int64_t start_unix_ns)
{
    ASSERT(trace_id != NULL && span_id != NULL);
    /* Only the header is zeroed: the attribute, link and text arrays are written before they
     * are read, and zeroing 7 KiB per span would be most of its cost. */
    struct span *sp = malloc(sizeof(*sp));
    if (sp == NULL) {
        return NULL;
    }
    memset(sp, 0, offsetof(struct span, attrs));
    sp->attrs_count = 0;
    sp->attrs_dropped = 0;
    sp->links_count = 0;
    sp->links_dropped = 0;
    sp->text_used = 0;
    memcpy(sp->trace_id, trace_id, SPAN_TRACE_ID_BYTES);
    memcpy(sp->span_id, span_id, SPAN_ID_BYTES);
    if (parent_span_id != NULL) {
        memcpy(sp->parent_span_id, parent_span_id, SPAN_ID_BYTES);
        sp->has_parent = true;
    }
    sp->trace_flags = 1;
    sp->kind = kind;
    sp->start_unix_ns = start_unix_ns;
    copy_cut(sp->name, sizeof(sp->name), name);
    return sp;
}

void span_free(struct span *sp)
{
    free(sp);
}

struct span *span_child_new(const struct span *parent, enum span_kind kind, const char *name,
                            int64_t start_unix_ns)
{
    if (parent == NULL) {
        return NULL;
    }
    uint8_t id[SPAN_ID_BYTES];
    rand_bytes(id, sizeof(id));
    struct span *sp = span_new(kind, parent->trace_id, id, parent->span_id, name, start_unix_ns);
    if (sp != NULL) {
        sp->trace_flags = parent->trace_flags;
        memcpy(sp->tracestate, parent->tracestate, sizeof(sp->tracestate));
    }
    return sp;
}

void span_set_name(struct span *sp, const char *name)
{
    if (sp != NULL) {
        copy_cut(sp->name, sizeof(sp->name), name);
    }
}

/* Copies len bytes plus a NUL into the arena; returns the offset or -1 when it is full. */
static int text_put(struct span *sp, const char *s, size_t len)
{
    if (len + 1 > sizeof(sp->text) - sp->text_used) {
        return -1;
    }
    int at = sp->text_used;
    if (len > 0) {
        memcpy(sp->text + at, s, len);
    }
    sp->text[(size_t)at + len] = '\0';
    sp->text_used = (uint16_t)(sp->text_used + len + 1);
    return at;
}

/* The slot for key: the existing one, a new one, or NULL (dropped and counted). */
static struct span_attr *attr_slot(struct span *sp, const char *key)
{
    ASSERT(key != NULL);
    size_t key_len = strlen(key);
    if (key_len == 0 || key_len > LIMIT_SPAN_ATTR_KEY_LEN_MAX) {
        sp->attrs_dropped++;
        return NULL;
    }
    for (uint32_t i = 0; i < sp->attrs_count; i++) {
        if (strcmp(sp->text + sp->attrs[i].key_at, key) == 0) {
            return &sp->attrs[i];
        }
    }
    if (sp->attrs_count >= LIMIT_SPAN_ATTRS_MAX) {
        sp->attrs_dropped++;
        return NULL;
    }
    int at = text_put(sp, key, key_len);
    if (at < 0) {
        sp->attrs_dropped++;
        return NULL;
    }
    struct span_attr *a = &sp->attrs[sp->attrs_count++];
    a->key_at = (uint16_t)at;
    a->str_at = 0;
    a->str_len = 0;
    return a;
}

void span_set_str(struct span *sp, const char *key, const char *value, size_t len)
{
    if (sp == NULL) {
        return;
    }
    ASSERT(value != NULL || len == 0);
    len = utf8_cut(value, len, LIMIT_SPAN_ATTR_VALUE_LEN_MAX);
    uint32_t count_before = sp->attrs_count;
    uint16_t used_before = sp->text_used;
    struct span_attr *a = attr_slot(sp, key);
    if (a == NULL) {
        return;
    }
    int at = text_put(sp, value, len);
    if (at < 0) {
        /* Undo a new slot: the attribute is dropped whole. */
        sp->attrs_count = count_before;
        sp->text_used = used_before;
        sp->attrs_dropped++;
        return;
    }
    a->type = SPAN_ATTR_STRING;
    a->str_at = (uint16_t)at;
    a->str_len = (uint16_t)len;
}

void span_set_cstr(struct span *sp, const char *key, const char *value)
{
    if (value != NULL) {
        span_set_str(sp, key, value, strlen(value));
    }
}

void span_set_int(struct span *sp, const char *key, int64_t value)
{
    struct span_attr *a = sp != NULL ? attr_slot(sp, key) : NULL;
    if (a != NULL) {
        a->type = SPAN_ATTR_INT;
        a->v.i = value;
    }
}

void span_set_bool(struct span *sp, const char *key, bool value)
{
    struct span_attr *a = sp != NULL ? attr_slot(sp, key) : NULL;
    if (a != NULL) {
        a->type = SPAN_ATTR_BOOL;
        a->v.b = value;
    }
}

void span_set_double(struct span *sp, const char *key, double value)
{
    struct span_attr *a = sp != NULL ? attr_slot(sp, key) : NULL;
    if (a != NULL) {
        a->type = SPAN_ATTR_DOUBLE;
        a->v.d = value;
    }
}

void span_add_link(struct span *sp, const uint8_t trace_id[SPAN_TRACE_ID_BYTES],
                   const uint8_t span_id[SPAN_ID_BYTES])
{
    if (sp == NULL) {
        return;
    }
    ASSERT(trace_id != NULL && span_id != NULL);
    if (sp->links_count >= LIMIT_SPAN_LINKS_MAX) {
        sp->links_dropped++;
        return;
    }
    struct span_link *l = &sp->links[sp->links_count++];
    memcpy(l->trace_id, trace_id, SPAN_TRACE_ID_BYTES);
    memcpy(l->span_id, span_id, SPAN_ID_BYTES);
    ASSERT(sp->links_count <= LIMIT_SPAN_LINKS_MAX);
}

void span_add_link_ctx(struct span *sp, const struct trace_context *tc)
{
    if (sp == NULL) {
        return;
    }
    ASSERT(tc != NULL);
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    uint8_t span_id[SPAN_ID_BYTES];
    if (!span_unhex(tc->trace_id, trace_id, sizeof(trace_id)) ||
        !span_unhex(tc->span_id, span_id, sizeof(span_id))) {
        sp->links_dropped++;
        return;
    }
    span_add_link(sp, trace_id, span_id);
}

void span_set_error(struct span *sp, const char *message)
{
    if (sp == NULL) {
        return;
    }
    sp->status = SPAN_STATUS_ERROR;
    copy_cut(sp->status_message, sizeof(sp->status_message), message);
}

void span_end(struct span *sp, int64_t end_unix_ns)
{
    if (sp != NULL && sp->end_unix_ns == 0) {
        sp->end_unix_ns = end_unix_ns < sp->start_unix_ns ? sp->start_unix_ns : end_unix_ns;
    }
}

int64_t span_unix_ns_from_mono(int64_t mono_ns)
{
    int64_t now_mono_ns = clock_mono_ns();
    return clock_unix_ns() - (now_mono_ns - mono_ns);
}

/* ---- HTTP server spans --------------------------------------------------------------------------
 */

/* RFC 9110 §9 methods plus PATCH (RFC 5789): what http.request.method may hold as is. */
static bool http_method_known(const char *m)
{
    static const char *const known[] = {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS",
                                        "PATCH",   "POST",   "PUT", "TRACE"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(m, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

struct span *span_http_server_new(const struct trace_context *tc,
                                  const struct span_http_request *req, int64_t start_unix_ns)
{
    ASSERT(tc != NULL && req != NULL);
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    uint8_t span_id[SPAN_ID_BYTES];
    uint8_t parent_id[SPAN_ID_BYTES];
    if (!span_unhex(tc->trace_id, trace_id, sizeof(trace_id)) ||
        !span_unhex(tc->span_id, span_id, sizeof(span_id))) {
        return NULL;
    }
    bool has_parent = tc->continued && span_unhex(tc->parent_id, parent_id, sizeof(parent_id));

    const char *method = req->method != NULL ? req->method : "";
    bool known = http_method_known(method);
    char name[LIMIT_SPAN_NAME_LEN_MAX + 1];
    if (!known) {
        snprintf(name, sizeof(name), "HTTP");
    } else if (req->route != NULL) {
        snprintf(name, sizeof(name), "%s %s", method, req->route);
    } else {
        snprintf(name, sizeof(name), "%s", method);
    }

    struct span *sp = span_new(SPAN_KIND_SERVER, trace_id, span_id, has_parent ? parent_id : NULL,
                               name, start_unix_ns);
    if (sp == NULL) {
        return NULL;
    }
    sp->parent_remote = has_parent;
    sp->trace_flags = tc->flags;
    memcpy(sp->tracestate, tc->tracestate, sizeof(sp->tracestate));

    span_set_cstr(sp, "http.request.method", known ? method : "_OTHER");
    if (!known) {
        span_set_cstr(sp, "http.request.method_original", method);
    }
    span_set_cstr(sp, "url.path", req->path);
    span_set_cstr(sp, "url.scheme", req->scheme);
    span_set_cstr(sp, "http.route", req->route);
    span_set_cstr(sp, "server.address", req->server_address);
    if (req->server_port != 0) {
        span_set_int(sp, "server.port", req->server_port);
    }
    span_set_cstr(sp, "network.protocol.version", req->protocol_version);
    span_set_cstr(sp, "client.address", req->client_address);
    span_set_cstr(sp, "user_agent.original", req->user_agent);
    return sp;
}

void span_http_server_end(struct span *sp, int status_code, int64_t end_unix_ns)
{
    if (sp == NULL) {
        return;
    }
    span_set_int(sp, "http.response.status_code", status_code);
    if (status_code >= 500 && status_code <= 599) {
        char code[16];
        snprintf(code, sizeof(code), "%d", status_code);
        span_set_cstr(sp, "error.type", code);
        sp->status = SPAN_STATUS_ERROR;
    }
    span_end(sp, end_unix_ns);
}

/* ---- Internal spans
 * ------------------------------------------------------------------------------ */

struct span *span_idempotency_lookup_new(const struct span *request, int64_t start_unix_ns)
{
    return span_child_new(request, SPAN_KIND_INTERNAL, "idempotency lookup", start_unix_ns);
}

void span_idempotency_lookup_end(struct span *sp, bool hit, int64_t end_unix_ns)
{
    span_set_bool(sp, "ledgerd.idempotency.hit", hit);
    span_end(sp, end_unix_ns);
}

struct span *span_queue_wait_new(const struct span *request, int64_t queued_unix_ns,
                                 int64_t dequeued_unix_ns)
{
    struct span *sp =
        span_child_new(request, SPAN_KIND_INTERNAL, "commit queue wait", queued_unix_ns);
    span_end(sp, dequeued_unix_ns);
    return sp;
}

struct span *span_batch_commit_new(uint32_t commands, uint32_t items, int64_t start_unix_ns)
{
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    uint8_t span_id[SPAN_ID_BYTES];
    rand_bytes(trace_id, sizeof(trace_id));
    rand_bytes(span_id, sizeof(span_id));
    struct span *sp =
        span_new(SPAN_KIND_INTERNAL, trace_id, span_id, NULL, "commit batch", start_unix_ns);
    span_set_int(sp, "ledgerd.commit.commands", commands);
    span_set_int(sp, "ledgerd.commit.items", items);
    return sp;
}

struct span *span_db_commit_new(const struct span *batch, const char *db_system, uint32_t commands,
                                int64_t start_unix_ns)
{
    struct span *sp = span_child_new(batch, SPAN_KIND_CLIENT, "COMMIT", start_unix_ns);
    span_set_cstr(sp, "db.system.name", db_system);
    span_set_cstr(sp, "db.operation.name", "COMMIT");
    span_set_int(sp, "db.operation.batch.size", commands);
    return sp;
}

/* ---- Sampler
 * ------------------------------------------------------------------------------------- */

#define SAMPLER_RANDOM_BITS 56
#define SAMPLER_RANDOM_RANGE ((uint64_t)1 << SAMPLER_RANDOM_BITS)

void span_errf(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* A decimal number in [0, 1]: digits, at most one '.', nothing else (no sign, no exponent,
 * no hex, no "nan"). */
static bool parse_ratio(const char *s, double *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 32) {
        return false;
    }
    bool dot = false;
    bool digit = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' && !dot) {
            dot = true;
        } else if (s[i] >= '0' && s[i] <= '9') {
            digit = true;
        } else {
            return false;
        }
    }
    if (!digit) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end != s + len || !(v >= 0.0 && v <= 1.0)) {
        return false;
    }
    *out = v;
    return true;
}

int span_sampler_init(struct span_sampler *s, const char *name, const char *arg, char *err,
                      size_t err_len)
{
    ASSERT(s != NULL);
    static const struct {
        const char *name;
        enum span_sampler_kind kind;
    } names[] = {
        {"always_on", SPAN_SAMPLER_ALWAYS_ON},
        {"always_off", SPAN_SAMPLER_ALWAYS_OFF},
        {"traceidratio", SPAN_SAMPLER_TRACEIDRATIO},
        {"parentbased_always_on", SPAN_SAMPLER_PARENTBASED_ALWAYS_ON},
        {"parentbased_always_off", SPAN_SAMPLER_PARENTBASED_ALWAYS_OFF},
        {"parentbased_traceidratio", SPAN_SAMPLER_PARENTBASED_TRACEIDRATIO},
    };
    memset(s, 0, sizeof(*s));
    s->kind = SPAN_SAMPLER_PARENTBASED_ALWAYS_ON;
    s->ratio = 1.0;
    if (name != NULL && name[0] != '\0') {
        bool found = false;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(name, names[i].name) == 0) {
                s->kind = names[i].kind;
                found = true;
            }
        }
        if (!found) {
            span_errf(err, err_len,
                      "OTEL_TRACES_SAMPLER: unsupported sampler (use always_on, always_off, "
                      "traceidratio, parentbased_always_on, parentbased_always_off or "
                      "parentbased_traceidratio)");
            return -EINVAL;
        }
    }
    bool ratio_sampler =
        s->kind == SPAN_SAMPLER_TRACEIDRATIO || s->kind == SPAN_SAMPLER_PARENTBASED_TRACEIDRATIO;
    if (ratio_sampler && arg != NULL && arg[0] != '\0' && !parse_ratio(arg, &s->ratio)) {
        span_errf(err, err_len,
                  "OTEL_TRACES_SAMPLER_ARG: must be a decimal number from 0 to 1 (e.g. 0.25)");
        return -EINVAL;
    }
    /* Reject a trace whose random bits are below (1 - ratio) * 2^56: ratio 1 samples all,
     * ratio 0 none (no 56-bit value reaches 2^56). */
    double t = (1.0 - s->ratio) * (double)SAMPLER_RANDOM_RANGE;
    s->threshold = t >= (double)SAMPLER_RANDOM_RANGE ? SAMPLER_RANDOM_RANGE : (uint64_t)llround(t);
    ASSERT(s->threshold <= SAMPLER_RANDOM_RANGE);
    return 0;
}

static bool sampler_ratio(const struct span_sampler *s, const uint8_t trace_id[16])
{
    uint64_t r = 0;
    for (size_t i = SPAN_TRACE_ID_BYTES - SAMPLER_RANDOM_BITS / 8; i < SPAN_TRACE_ID_BYTES; i++) {
        r = (r << 8) | trace_id[i];
    }
    ASSERT(r < SAMPLER_RANDOM_RANGE);
    return r >= s->threshold;
}

bool span_sampler_should_sample(const struct span_sampler *s,
                                const uint8_t trace_id[SPAN_TRACE_ID_BYTES], bool has_parent,
                                bool parent_sampled)
{
    ASSERT(s != NULL && trace_id != NULL);
    switch (s->kind) {
    case SPAN_SAMPLER_ALWAYS_ON:
        return true;
    case SPAN_SAMPLER_ALWAYS_OFF:
        return false;
    case SPAN_SAMPLER_TRACEIDRATIO:
        return sampler_ratio(s, trace_id);
    case SPAN_SAMPLER_PARENTBASED_ALWAYS_ON:
        return has_parent ? parent_sampled : true;
    case SPAN_SAMPLER_PARENTBASED_ALWAYS_OFF:
        return has_parent ? parent_sampled : false;
    case SPAN_SAMPLER_PARENTBASED_TRACEIDRATIO:
        return has_parent ? parent_sampled : sampler_ratio(s, trace_id);
    }
    ASSERT(false); /* not a sampler kind */
    return false;
}

/* ---- key=value lists ---------------------------------------------------------------------------
 */

void span_kv_init(struct span_kv_list *l)
{
    ASSERT(l != NULL);
    l->count = 0;
    l->text_used = 0;
    l->text[0] = '\0';
}

const char *span_kv_key(const struct span_kv_list *l, size_t i)
{
    ASSERT(l != NULL && i < l->count);
    return l->text + l->items[i].key_at;
}

const char *span_kv_value(const struct span_kv_list *l, size_t i)
{
    ASSERT(l != NULL && i < l->count);
    return l->text + l->items[i].value_at;
}

static int kv_index(const struct span_kv_list *l, const char *key)
{
    for (uint32_t i = 0; i < l->count; i++) {
        if (strcmp(l->text + l->items[i].key_at, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *span_kv_get(const struct span_kv_list *l, const char *key)
{
    ASSERT(l != NULL && key != NULL);
    int i = kv_index(l, key);
    return i < 0 ? NULL : l->text + l->items[i].value_at;
}

static int kv_text_put(struct span_kv_list *l, const char *s, size_t len)
{
    if (len + 1 > sizeof(l->text) - l->text_used) {
        return -1;
    }
    int at = (int)l->text_used;
    if (len > 0) {
        memcpy(l->text + at, s, len);
    }
    l->text[(size_t)at + len] = '\0';
    l->text_used += (uint32_t)(len + 1);
    return at;
}

/* Adds or replaces a pair from (ptr, len) strings. */
static int kv_set_n(struct span_kv_list *l, const char *key, size_t key_len, const char *value,
                    size_t value_len)
{
    char key_z[LIMIT_OTEL_KV_BYTES_MAX + 1];
    if (key_len > LIMIT_OTEL_KV_BYTES_MAX) {
        return -ENOSPC;
    }
    memcpy(key_z, key, key_len);
    key_z[key_len] = '\0';
    int i = kv_index(l, key_z);
    if (i < 0 && l->count >= LIMIT_OTEL_KV_PAIRS_MAX) {
        return -ENOSPC;
    }
    uint32_t used_before = l->text_used;
    int key_at = i < 0 ? kv_text_put(l, key, key_len) : (int)l->items[i].key_at;
    int value_at = key_at < 0 ? -1 : kv_text_put(l, value, value_len);
    if (value_at < 0) {
        l->text_used = used_before;
        return -ENOSPC;
    }
    if (i < 0) {
        i = (int)l->count++;
        l->items[i].key_at = (uint16_t)key_at;
    }
    l->items[i].value_at = (uint16_t)value_at;
    return 0;
}

int span_kv_set(struct span_kv_list *l, const char *key, const char *value)
{
    ASSERT(l != NULL && key != NULL && value != NULL);
    return kv_set_n(l, key, strlen(key), value, strlen(value));
}

/* tchar (RFC 9110 §5.6.2). */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* baggage-octet (W3C Baggage): 0x21, 0x23-0x2B, 0x2D-0x3A, 0x3C-0x5B, 0x5D-0x7E. */
static bool is_baggage_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
           (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims optional whitespace from both ends of [*b, *e). */
static void trim_ows(const char **b, const char **e)
{
    while (*b < *e && is_ows(**b)) {
        (*b)++;
    }
    while (*e > *b && is_ows((*e)[-1])) {
        (*e)--;
    }
}

/* Decodes one percent-encoded value into out (at least e - b bytes). Returns its length or
 * -1 with a reason in why. */
static long decode_value(const char *b, const char *e, char *out, const char **why)
{
    size_t n = 0;
    for (const char *p = b; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            int hi = e - p > 2 ? ids_hex_value(p[1]) : -1;
            int lo = e - p > 2 ? ids_hex_value(p[2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "'%' must be followed by two hex digits";
                return -1;
            }
            c = (unsigned char)(hi * 16 + lo);
            p += 2;
            if (c < 0x20 || c == 0x7F) {
                *why = "value decodes to a control character";
                return -1;
            }
        } else if (!is_baggage_octet(c)) {
            *why = "value holds a character that must be percent-encoded";
            return -1;
        }
        out[n++] = (char)c;
    }
    if (!utf8_valid((const unsigned char *)out, n)) {
        *why = "value decodes to invalid UTF-8";
        return -1;
    }
    return (long)n;
}

int span_kv_parse(struct span_kv_list *l, const char *s, size_t len, char *err, size_t err_len)
{
    ASSERT(l != NULL);
    ASSERT(s != NULL || len == 0);
    struct span_kv_list before = *l; /* restored on refusal */
    const char *why = NULL;
    size_t member = 0;

    if (len > LIMIT_OTEL_KV_BYTES_MAX) {
        span_errf(err, err_len, "longer than %d bytes", LIMIT_OTEL_KV_BYTES_MAX);
        return -EINVAL;
    }
    const char *end = s + len;
    const char *p = s;
    {
        const char *b = s;
        const char *e = end;
        trim_ows(&b, &e);
        if (b == e) {
            return 0; /* empty (or only whitespace) means unset */
        }
    }
    char value[LIMIT_OTEL_KV_BYTES_MAX]; /* a decoded value is never longer than the input */
    while (p <= end) {
        member++;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *m_end = comma != NULL ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(m_end - p));
        if (eq == NULL) {
            const char *b = p;
            const char *e = m_end;
            trim_ows(&b, &e);
            why = b == e ? "empty member" : "member has no '='";
            goto out_refuse;
        }
        const char *kb = p;
        const char *ke = eq;
        trim_ows(&kb, &ke);
        if (kb == ke) {
            why = "empty key";
            goto out_refuse;
        }
        for (const char *k = kb; k < ke; k++) {
            if (!is_tchar((unsigned char)*k)) {
                why = "key holds a character outside RFC 9110's token";
                goto out_refuse;
            }
        }
        const char *vb = eq + 1;
        const char *ve = m_end;
        trim_ows(&vb, &ve);
        if (memchr(vb, ';', (size_t)(ve - vb)) != NULL) {
            why = "properties (';') are not supported";
            goto out_refuse;
        }
        long vlen = decode_value(vb, ve, value, &why);
        if (vlen < 0) {
            goto out_refuse;
        }
        if (kv_set_n(l, kb, (size_t)(ke - kb), value, (size_t)vlen) != 0) {
            why = "too many members";
            goto out_refuse;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    ASSERT(l->count <= LIMIT_OTEL_KV_PAIRS_MAX);
    return 0;

out_refuse:
    *l = before;
    span_errf(err, err_len, "member %zu: %s", member, why);
    return -EINVAL;
}

/* ---- Resource -----------------------------------------------------------------------------------
 */

static void uuid_v4(char out[37])
{
    uint8_t b[16];
    rand_bytes(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0Fu) | 0x40u); /* version 4 (RFC 9562) */
    b[8] = (uint8_t)((b[8] & 0x3Fu) | 0x80u); /* variant 10 */
    char hex[33];
    span_hex(b, sizeof(b), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static const char *env_nonempty(config_getenv_fn getenv_fn, const char *name)
{
    const char *v = getenv_fn(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Sets key to the first of: the variable's value, the attribute already parsed, fallback. */
static int resource_pick(struct span_resource *r, config_getenv_fn getenv_fn, const char *var,
                         const char *key, const char *fallback, char *err, size_t err_len)
{
    const char *v = var != NULL ? env_nonempty(getenv_fn, var) : NULL;
    if (v == NULL && span_kv_get(&r->attrs, key) != NULL) {
        return 0;
    }
    if (v == NULL) {
        v = fallback;
    }
    if (strlen(v) > LIMIT_SPAN_ATTR_VALUE_LEN_MAX || !utf8_valid((const void *)v, strlen(v))) {
        span_errf(err, err_len, "%s: must be valid UTF-8 of at most %d bytes",
                  var != NULL ? var : key, LIMIT_SPAN_ATTR_VALUE_LEN_MAX);
        return -EINVAL;
    }
    if (span_kv_set(&r->attrs, key, v) != 0) {
        span_errf(err, err_len, "OTEL_RESOURCE_ATTRIBUTES: too many attributes");
        return -EINVAL;
    }
    return 0;
}

int span_resource_from_env(struct span_resource *r, config_getenv_fn getenv_fn, const char *version,
                           char *err, size_t err_len)
{
    ASSERT(r != NULL && getenv_fn != NULL && version != NULL);
    span_kv_init(&r->attrs);
    const char *ra = getenv_fn("OTEL_RESOURCE_ATTRIBUTES");
    if (ra != NULL) {
        char why[160];
        if (span_kv_parse(&r->attrs, ra, strlen(ra), why, sizeof(why)) != 0) {
            span_errf(err, err_len, "OTEL_RESOURCE_ATTRIBUTES: %s", why);
            return -EINVAL;
        }
    }
    char instance[37];
    uuid_v4(instance);
    int rc =
        resource_pick(r, getenv_fn, "OTEL_SERVICE_NAME", "service.name", "ledgerd", err, err_len);
    if (rc == 0 && span_kv_set(&r->attrs, "service.version", version) != 0) {
        rc = -EINVAL; /* the running binary's version always wins */
        span_errf(err, err_len, "OTEL_RESOURCE_ATTRIBUTES: too many attributes");
    }
    rc = rc != 0 ? rc
                 : resource_pick(r, getenv_fn, NULL, "service.instance.id", instance, err, err_len);
    rc = rc != 0 ? rc
                 : resource_pick(r, getenv_fn, "LEDGERD_ENV", "deployment.environment.name", "dev",
                                 err, err_len);
    rc = rc != 0 ? rc
                 : resource_pick(r, getenv_fn, "LEDGERD_SERVICE_TIER", "service.tier", "critical",
                                 err, err_len);
    if (rc != 0) {
        span_kv_init(&r->attrs);
    }
    return rc;
}
