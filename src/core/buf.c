/*
 * buf.c — growable byte buffers with a maximum (see buf.h).
 *
 * Capacity doubles up to len_max + 1 (room for the NUL). Every append either succeeds whole or
 * leaves the content exactly as it was, so a caller never has to reason about half a document.
 */
#include "core/buf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

/* The smallest allocation; avoids a run of tiny reallocations for short strings. */
#define BUF_CAP_MIN 64u

void buf_init(struct buf *b, size_t len_max)
{
    ASSERT(b != NULL);
    ASSERT(len_max < SIZE_MAX);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->len_max = len_max;
}

void buf_release(struct buf *b)
{
    ASSERT(b != NULL);
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    ASSERT(b != NULL);
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

char *buf_take(struct buf *b, size_t *len_out)
{
    ASSERT(b != NULL);
    char *data = b->data;
    size_t len = b->len;

    if (data == NULL) {
        data = malloc(1);
        if (data == NULL) {
            return NULL;
        }
        data[0] = '\0';
        len = 0;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    if (len_out != NULL) {
        *len_out = len;
    }
    return data;
}

/* Makes room for extra more bytes plus the NUL. 0, -ENOSPC or -ENOMEM; content unchanged. */
static int buf_reserve(struct buf *b, size_t extra)
{
    ASSERT(b->len <= b->len_max);
    if (extra > b->len_max - b->len) {
        return -ENOSPC;
    }
    size_t need = b->len + extra + 1; /* cannot overflow: len_max < SIZE_MAX */
    if (need <= b->cap) {
        return 0;
    }
    size_t cap_max = b->len_max + 1;
    size_t cap = b->cap < BUF_CAP_MIN ? BUF_CAP_MIN : b->cap;
    while (cap < need) {
        cap = cap > cap_max / 2 ? cap_max : cap * 2;
    }
    if (cap > cap_max) {
        cap = cap_max;
    }
    ASSERT(cap >= need);
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        return -ENOMEM;
    }
    if (b->data == NULL) {
        data[0] = '\0';
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    ASSERT(b != NULL);
    ASSERT(data != NULL || len == 0);
    int rc = buf_reserve(b, len);
    if (rc != 0) {
        return rc;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    ASSERT(s != NULL);
    return buf_append(b, s, strlen(s));
}

int buf_append_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_append_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    size_t pos = sizeof(tmp);
    do {
        tmp[--pos] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    return buf_append(b, tmp + pos, sizeof(tmp) - pos);
}

int buf_append_i64(struct buf *b, int64_t v)
{
    char tmp[24];
    size_t pos = sizeof(tmp);
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--pos] = (char)('0' + (int)(mag % 10u));
        mag /= 10u;
    } while (mag != 0);
    if (v < 0) {
        tmp[--pos] = '-';
    }
    return buf_append(b, tmp + pos, sizeof(tmp) - pos);
}

/* Redeclared with the format attribute so compilers check the vsnprintf calls below. */
__attribute__((format(printf, 2, 0))) int buf_vappendf(struct buf *b, const char *fmt, va_list ap);

int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    ASSERT(b != NULL);
    ASSERT(fmt != NULL);
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->data != NULL && b->cap > b->len ? b->cap - b->len : 0;
    char empty[1];
    char *dst = room > 0 && b->data != NULL ? b->data + b->len : empty;
    int n = vsnprintf(dst, room > 0 ? room : sizeof(empty), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (b->data != NULL) {
            b->data[b->len] = '\0';
        }
        return -EINVAL;
    }
    size_t need = (size_t)n;
    if (need < room) {
        b->len += need; /* it fitted the first time */
        return 0;
    }
    if (b->data != NULL) {
        b->data[b->len] = '\0'; /* undo the partial write */
    }
    int rc = buf_reserve(b, need);
    if (rc != 0) {
        return rc;
    }
    va_copy(ap2, ap);
    n = vsnprintf(b->data + b->len, need + 1, fmt, ap2);
    va_end(ap2);
    ASSERT(n >= 0 && (size_t)n == need);
    b->len += need;
    return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table), or 0 when ill-formed; in that
 * case *bad_len is the maximal ill-formed prefix to replace with one U+FFFD (at least 1). */
static size_t utf8_seq_len(const unsigned char *s, size_t avail, size_t *bad_len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */

    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* UTF-16 surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
    } else {
        *bad_len = 1; /* continuation byte, C0, C1, F5..FF */
        return 0;
    }

    for (size_t i = 1; i < n; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80;
        unsigned char hi_i = i == 1 ? hi : 0xBF;
        if (i >= avail || s[i] < lo_i || s[i] > hi_i) {
            *bad_len = i;
            return 0;
        }
    }
    return n;
}

int buf_append_json_str(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ASSERT(b != NULL);
    ASSERT(s != NULL || len == 0);
    const unsigned char *p = (const unsigned char *)s;
    size_t old_len = b->len;
    int rc = buf_append_char(b, '"');
    size_t i = 0;

    while (rc == 0 && i < len) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') {
            run++;
        }
        if (run > i) {
            rc = buf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        if (c >= 0x80) {
            size_t bad_len = 1;
            size_t n = utf8_seq_len(p + i, len - i, &bad_len);
            if (n > 0) {
                rc = buf_append(b, p + i, n);
                i += n;
            } else {
                rc = buf_append(b, "\xEF\xBF\xBD", 3);
                i += bad_len;
            }
            continue;
        }
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0f];
            esc_len = 6;
            break;
        }
        rc = buf_append(b, esc, esc_len);
        i++;
    }
    if (rc == 0) {
        rc = buf_append_char(b, '"');
    }
    if (rc != 0 && b->data != NULL) {
        b->len = old_len; /* all or nothing */
        b->data[old_len] = '\0';
    }
    return rc;
}
