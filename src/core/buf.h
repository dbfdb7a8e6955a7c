/*
 * buf.h — growable byte buffers with a maximum, for response bodies and log lines.
 *
 * Every buffer is created with the most it may ever hold (as curl's dynbuf): an append that
 * would pass the maximum fails with -ENOSPC and leaves the buffer as it was, so the caller can
 * answer with a clear error instead of a truncated document. Data is always NUL-terminated.
 */
#ifndef LEDGERD_CORE_BUF_H
#define LEDGERD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;     /* NUL-terminated; NULL until the first append */
    size_t len;     /* bytes used, without the NUL */
    size_t cap;     /* bytes allocated */
    size_t len_max; /* the most len may ever be */
};

/* Prepares an empty buffer that may grow to len_max bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t len_max);
/* Frees the memory; the buffer is empty and may be reused with the same maximum. */
void buf_release(struct buf *b);
/* Forgets the content but keeps the memory. */
void buf_reset(struct buf *b);
/* Hands the bytes to the caller, who must free() them; the buffer is left empty. */
char *buf_take(struct buf *b, size_t *len_out);

/* Appends; each returns 0, -ENOSPC when len_max would be passed, or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_append_u64(struct buf *b, uint64_t v);
int buf_append_i64(struct buf *b, int64_t v);
__attribute__((format(printf, 2, 3))) int buf_appendf(struct buf *b, const char *fmt, ...);
int buf_vappendf(struct buf *b, const char *fmt, va_list ap);
/* Appends s (len bytes) as a JSON string literal, quotes included, escaping per RFC 8259.
 * Bytes that are not valid UTF-8 are written as U+FFFD so the output is always valid JSON. */
int buf_append_json_str(struct buf *b, const char *s, size_t len);

#endif
