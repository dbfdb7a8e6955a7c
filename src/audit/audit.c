/*
 * audit.c — audit records: field rules, the canonical encoding (RFC 8785 JSON) of records and
 * checkpoints, and the SHA-256 hash chain.
 *
 * The canonical encoding is a JSON object with fixed member names in RFC 8785 order (sorted;
 * all names are ASCII, so by bytes), no whitespace, text as UTF-8 with only '"' and '\' escaped
 * (control characters are refused before they could need escaping), integers as plain decimal
 * within 2^53 - 1 (so RFC 8785's number form is the same digits), hashes as lower-case hex. Any
 * JSON Canonicalization Scheme implementation, or Python's json.dumps with sort_keys, gives the
 * same bytes, which is what lets an auditor recompute a hash with standard tools.
 */
#include "audit/audit.h"
#include "audit/audit_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/assert.h"
#include "core/ids.h"
#include "core/sha256.h"

_Static_assert(AUDIT_HASH_BYTES == SHA256_BYTES, "a record hash is a SHA-256 digest");

/* ---------------------------------------------------------------------------------------
 * Field rules
 * ------------------------------------------------------------------------------------- */

static const char *const field_names[AUDIT_FIELD_COUNT] = {
    "actor", "action", "resource", "decision", "reason", "request_id", "trace_id", "source",
};

const char *audit_field_name(enum audit_field f)
{
    ASSERT(f < AUDIT_FIELD_COUNT);
    return field_names[f];
}

/* Where each text field lives in the record and the size of its array (limit + NUL). */
#define FIELD(m)                                                                                   \
    {                                                                                              \
        offsetof(struct audit_record, m), sizeof(((struct audit_record *)NULL)->m)                 \
    }
static const struct {
    size_t offset;
    size_t size;
} field_layout[AUDIT_FIELD_COUNT] = {
    [AUDIT_FIELD_ACTOR] = FIELD(actor),       [AUDIT_FIELD_ACTION] = FIELD(action),
    [AUDIT_FIELD_RESOURCE] = FIELD(resource), [AUDIT_FIELD_DECISION] = FIELD(decision),
    [AUDIT_FIELD_REASON] = FIELD(reason),     [AUDIT_FIELD_REQUEST_ID] = FIELD(request_id),
    [AUDIT_FIELD_TRACE_ID] = FIELD(trace_id), [AUDIT_FIELD_SOURCE] = FIELD(source),
};
#undef FIELD

/* Valid UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF) without any control
 * character: C0 (including NUL), DEL and C1 (U+0080-U+009F). Reads exactly len bytes. */
static bool text_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return false;
            }
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        uint32_t min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return false; /* a continuation byte, an overlong lead (C0, C1) or past U+10FFFF */
        }
        if (len - i <= n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            unsigned char cc = p[i + k];
            if ((cc & 0xc0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        if (cp >= 0x80 && cp <= 0x9f) {
            return false; /* C1 controls */
        }
        i += n + 1;
    }
    return true;
}

/* [a-z0-9_]+ ("." [a-z0-9_]+)* */
static bool action_valid(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (c == '.') {
            if (s[i - 1] == '.') {
                return false;
            }
        } else if (!word) {
            return false;
        }
    }
    return true;
}

static bool decision_valid(const char *s, size_t len)
{
    static const char *const decisions[] = {"allow", "deny", "success", "failure"};
    for (size_t i = 0; i < sizeof(decisions) / sizeof(decisions[0]); i++) {
        if (strlen(decisions[i]) == len && memcmp(decisions[i], s, len) == 0) {
            return true;
        }
    }
    return false;
}

/* W3C Trace Context trace-id: 32 lower-case hex digits, not all zero. */
static bool trace_id_valid(const char *s, size_t len)
{
    if (len != LIMIT_AUDIT_TRACE_ID_LEN) {
        return false;
    }
    bool nonzero = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        nonzero = nonzero || c != '0';
    }
    return nonzero;
}

/* The rules of one field for a value of len bytes that fits the field; NULL when it passes,
 * else what is wrong. */
static const char *field_problem(enum audit_field f, const char *s, size_t len)
{
    ASSERT(f < AUDIT_FIELD_COUNT);
    if (!text_valid(s, len)) {
        return "is not UTF-8 text without control characters";
    }
    switch (f) {
    case AUDIT_FIELD_ACTOR:
    case AUDIT_FIELD_RESOURCE:
        return len == 0 ? "is empty" : NULL;
    case AUDIT_FIELD_ACTION:
        return action_valid(s, len) ? NULL : "is not a dotted name of [a-z0-9_]";
    case AUDIT_FIELD_DECISION:
        return decision_valid(s, len) ? NULL : "is not allow, deny, success or failure";
    case AUDIT_FIELD_REQUEST_ID:
        return len == 0 || ids_request_id_valid(s, len) ? NULL
                                                        : "is not a request id ([A-Za-z0-9._:-])";
    case AUDIT_FIELD_TRACE_ID:
        return len == 0 || trace_id_valid(s, len) ? NULL
                                                  : "is not 32 lower-case hex digits (not all 0)";
    case AUDIT_FIELD_REASON:
    case AUDIT_FIELD_SOURCE:
        return NULL;
    case AUDIT_FIELD_COUNT:
        break;
    }
    return "is not a field";
}

int audit_record_set(struct audit_record *r, enum audit_field f, const char *s, size_t len)
{
    ASSERT(r != NULL && f < AUDIT_FIELD_COUNT);
    ASSERT(s != NULL || len == 0);
    size_t size = field_layout[f].size;
    char *dst = (char *)r + field_layout[f].offset;
    if (len >= size) {
        return -ENAMETOOLONG;
    }
    if (field_problem(f, len > 0 ? s : "", len) != NULL) {
        return -EINVAL;
    }
    if (len > 0) {
        memcpy(dst, s, len);
    }
    memset(dst + len, 0, size - len);
    ASSERT(dst[size - 1] == '\0');
    return 0;
}

static int refuse(char *err, size_t err_len, const char *field, const char *problem)
{
    if (err != NULL && err_len > 0) {
        snprintf(err, err_len, "%s %s", field, problem);
    }
    return -EINVAL;
}

int audit_record_validate(const struct audit_record *r, char *err, size_t err_len)
{
    ASSERT(r != NULL);
    ASSERT(err != NULL || err_len == 0);
    if (r->seq > (uint64_t)LIMIT_AUDIT_INTEGER_MAX) {
        return refuse(err, err_len, "seq", "is above 2^53 - 1");
    }
    if (r->time_unix_ms < 0 || r->time_unix_ms > LIMIT_AUDIT_INTEGER_MAX) {
        return refuse(err, err_len, "time_unix_ms", "is not within 0 .. 2^53 - 1");
    }
    for (int i = 0; i < AUDIT_FIELD_COUNT; i++) {
        enum audit_field f = (enum audit_field)i;
        size_t size = field_layout[f].size;
        const char *s = (const char *)r + field_layout[f].offset;
        const char *nul = memchr(s, '\0', size);
        if (nul == NULL) {
            return refuse(err, err_len, field_names[f], "is longer than its limit");
        }
        const char *problem = field_problem(f, s, (size_t)(nul - s));
        if (problem != NULL) {
            return refuse(err, err_len, field_names[f], problem);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Canonical encoding, into a caller's fixed array (no allocation on the commit path)
 * ------------------------------------------------------------------------------------- */

struct writer {
    char *p;
    size_t len;
    size_t cap;
    size_t members; /* written so far: all but the first are preceded by a comma */
    bool overflow;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_str(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* "name": with the separator before it unless it is the first member. */
static void put_name(struct writer *w, const char *name)
{
    put_str(w, w->members > 0 ? ",\"" : "\"");
    w->members++;
    put_str(w, name);
    put_str(w, "\":");
}

/* A validated text value as a JSON string: only '"' and '\' need escaping (RFC 8785 §3.2.2.2;
 * control characters were refused). */
static void put_text(struct writer *w, const char *name, const char *s)
{
    put_name(w, name);
    put_str(w, "\"");
    const char *run = s;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            put(w, run, (size_t)(c - run));
            put_str(w, *c == '"' ? "\\\"" : "\\\\");
            run = c + 1;
        }
    }
    put_str(w, run);
    put_str(w, "\"");
}

static void put_uint(struct writer *w, const char *name, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    ASSERT(n > 0 && (size_t)n < sizeof(digits));
    put_name(w, name);
    put(w, digits, (size_t)n);
}

static void put_hex(struct writer *w, const char *name, const uint8_t digest[AUDIT_HASH_BYTES])
{
    char hex[2 * SHA256_BYTES + 1];
    sha256_hex(digest, hex);
    put_name(w, name);
    put_str(w, "\"");
    put(w, hex, (size_t)2 * SHA256_BYTES);
    put_str(w, "\"");
}

static int encode_record(const struct audit_record *r, char *out, size_t cap, size_t *len_out)
{
    if (audit_record_validate(r, NULL, 0) != 0) {
        return -EINVAL;
    }
    struct writer w = {out, 0, cap, 0, false};
    /* Members in RFC 8785 order (sorted by name). */
    put_str(&w, "{");
    put_text(&w, "action", r->action);
    put_text(&w, "actor", r->actor);
    put_text(&w, "decision", r->decision);
    put_text(&w, "format", AUDIT_RECORD_FORMAT);
    put_hex(&w, "prev_hash", r->prev_hash);
    put_text(&w, "reason", r->reason);
    put_text(&w, "request_id", r->request_id);
    put_text(&w, "resource", r->resource);
    put_uint(&w, "seq", r->seq);
    put_text(&w, "source", r->source);
    put_uint(&w, "time_unix_ms", (uint64_t)r->time_unix_ms);
    put_text(&w, "trace_id", r->trace_id);
    put_str(&w, "}");
    /* The limit is sized (and statically checked) for a record at its maxima. */
    ASSERT(!w.overflow);
    *len_out = w.len;
    return 0;
}

int audit_canonical(const struct audit_record *r, struct buf *out)
{
    ASSERT(r != NULL && out != NULL);
    char tmp[LIMIT_AUDIT_CANONICAL_BYTES_MAX];
    size_t len = 0;
    int rc = encode_record(r, tmp, sizeof(tmp), &len);
    if (rc != 0) {
        return rc;
    }
    ASSERT(len > 2 && tmp[0] == '{' && tmp[len - 1] == '}');
    return buf_append(out, tmp, len);
}

int audit_record_hash(const struct audit_record *r, uint8_t out[AUDIT_HASH_BYTES])
{
    ASSERT(r != NULL && out != NULL);
    char tmp[LIMIT_AUDIT_CANONICAL_BYTES_MAX];
    size_t len = 0;
    int rc = encode_record(r, tmp, sizeof(tmp), &len);
    if (rc != 0) {
        return rc;
    }
    return sha256_digest(tmp, len, out);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

int audit_chain_next(const uint8_t prev_hash[AUDIT_HASH_BYTES], uint64_t prev_seq,
                     struct audit_record *r)
{
    ASSERT(r != NULL);
    ASSERT(prev_hash != NULL || prev_seq == 0);
    static const uint8_t genesis[AUDIT_HASH_BYTES] = {0};
    const uint8_t *prev = prev_hash != NULL ? prev_hash : genesis;
    if (prev_seq == 0 && !all_zero(prev, AUDIT_HASH_BYTES)) {
        return -EINVAL;
    }
    if (prev_seq >= (uint64_t)LIMIT_AUDIT_INTEGER_MAX) {
        return -EOVERFLOW;
    }
    /* Hash a copy so that r changes only on success. */
    struct audit_record next = *r;
    next.seq = prev_seq + 1;
    memcpy(next.prev_hash, prev, AUDIT_HASH_BYTES);
    uint8_t hash[AUDIT_HASH_BYTES];
    int rc = audit_record_hash(&next, hash);
    if (rc != 0) {
        return rc;
    }
    r->seq = next.seq;
    memcpy(r->prev_hash, next.prev_hash, AUDIT_HASH_BYTES); /* prev may point into r */
    memcpy(r->hash, hash, AUDIT_HASH_BYTES);
    ASSERT(r->seq == prev_seq + 1);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Checkpoints
 * ------------------------------------------------------------------------------------- */

static bool key_id_valid(const char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1])
{
    for (size_t i = 0; i < LIMIT_AUDIT_KEY_ID_LEN; i++) {
        char c = key_id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return key_id[LIMIT_AUDIT_KEY_ID_LEN] == '\0';
}

int audit_checkpoint_encode(const struct audit_checkpoint *cp,
                            char out[AUDIT_CHECKPOINT_CANONICAL_BYTES], size_t *len_out)
{
    ASSERT(cp != NULL && out != NULL && len_out != NULL);
    if (cp->seq == 0 || cp->seq > (uint64_t)LIMIT_AUDIT_INTEGER_MAX || cp->time_unix_ms < 0 ||
        cp->time_unix_ms > LIMIT_AUDIT_INTEGER_MAX || !key_id_valid(cp->key_id)) {
        return -EINVAL;
    }
    struct writer w = {out, 0, AUDIT_CHECKPOINT_CANONICAL_BYTES, 0, false};
    put_str(&w, "{");
    put_text(&w, "format", AUDIT_CHECKPOINT_FORMAT);
    put_hex(&w, "hash", cp->hash);
    put_text(&w, "key_id", cp->key_id);
    put_uint(&w, "seq", cp->seq);
    put_uint(&w, "time_unix_ms", (uint64_t)cp->time_unix_ms);
    put_str(&w, "}");
    ASSERT(!w.overflow);
    *len_out = w.len;
    return 0;
}

int audit_checkpoint_canonical(const struct audit_checkpoint *cp, struct buf *out)
{
    ASSERT(cp != NULL && out != NULL);
    char tmp[AUDIT_CHECKPOINT_CANONICAL_BYTES];
    size_t len = 0;
    int rc = audit_checkpoint_encode(cp, tmp, &len);
    if (rc != 0) {
        return rc;
    }
    return buf_append(out, tmp, len);
}

bool audit_checkpoint_due(uint64_t tail_seq, uint64_t checkpoint_seq,
                          int64_t checkpoint_time_unix_ms, int64_t now_unix_ms,
                          uint64_t records_max, int64_t interval_ms)
{
    ASSERT(records_max > 0 && interval_ms > 0);
    ASSERT(checkpoint_time_unix_ms >= 0 && now_unix_ms >= 0);
    if (tail_seq <= checkpoint_seq) {
        return false;
    }
    if (checkpoint_seq == 0 || tail_seq - checkpoint_seq >= records_max) {
        return true;
    }
    /* now may be behind the last checkpoint when the clock stepped back: wait for records. */
    return now_unix_ms >= checkpoint_time_unix_ms &&
           now_unix_ms - checkpoint_time_unix_ms >= interval_ms;
}
