/*
 * fuzz_resource.c — libFuzzer target for OTEL_RESOURCE_ATTRIBUTES (and the header lists that
 * share its format).
 *
 * Each input is parsed as a key=value list. A refusal must carry a reason and leave the list as
 * it was. An acceptance must hold at most LIMIT_OTEL_KV_PAIRS_MAX pairs of non-empty token keys
 * and valid UTF-8 values without control characters, and must survive a round trip: the pairs
 * percent-encoded and parsed again give the same list. The input is then used as the variable
 * for the resource, which is encoded as an OTLP request that must parse as JSON.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file, every .c
 * file of src/obs and src/core, and $(pkg-config --cflags --libs jansson gnutls libcurl).
 * Seeds: tests/fuzz/corpus/resource/
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/buf.h"
#include "obs/otlp.h"
#include "obs/span.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct span_kv_list list;
static struct span_kv_list again;
static struct span_resource resource;
static char encoded[4 * LIMIT_OTEL_KV_TEXT_BYTES];
static char input_z[LIMIT_OTEL_KV_BYTES_MAX + 1];

static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_pairs(const struct span_kv_list *l)
{
    ASSERT(l->count <= LIMIT_OTEL_KV_PAIRS_MAX);
    ASSERT(l->text_used <= sizeof(l->text));
    for (size_t i = 0; i < l->count; i++) {
        const char *k = span_kv_key(l, i);
        ASSERT(k[0] != '\0');
        for (const char *p = k; *p != '\0'; p++) {
            ASSERT(token_char((unsigned char)*p));
        }
        for (const unsigned char *p = (const unsigned char *)span_kv_value(l, i); *p != '\0'; p++) {
            ASSERT(*p >= 0x20 && *p != 0x7F);
        }
        /* Keys are unique: a later duplicate replaced the earlier value. */
        for (size_t j = 0; j < i; j++) {
            ASSERT(strcmp(span_kv_key(l, j), k) != 0);
        }
    }
}

/* Percent-encodes every value byte that is not a plain baggage-octet. */
static size_t encode_list(const struct span_kv_list *l, char *out, size_t out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        int w = snprintf(out + n, out_len - n, "%s%s=", i > 0 ? "," : "", span_kv_key(l, i));
        ASSERT(w > 0 && (size_t)w < out_len - n);
        n += (size_t)w;
        for (const unsigned char *p = (const unsigned char *)span_kv_value(l, i); *p != '\0'; p++) {
            bool plain = *p > 0x20 && *p < 0x7F && *p != '"' && *p != ',' && *p != ';' &&
                         *p != '\\' && *p != '%';
            w = plain ? snprintf(out + n, out_len - n, "%c", *p)
                      : snprintf(out + n, out_len - n, "%%%02X", *p);
            ASSERT(w > 0 && (size_t)w < out_len - n);
            n += (size_t)w;
        }
    }
    return n;
}

static const char *fuzz_getenv(const char *name)
{
    return strcmp(name, "OTEL_RESOURCE_ATTRIBUTES") == 0 ? input_z : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    span_kv_init(&list);
    ASSERT(span_kv_set(&list, "sentinel", "kept") == 0);
    err[0] = '\0';
    int rc = span_kv_parse(&list, (const char *)data, size, err, sizeof(err));
    if (rc != 0) {
        ASSERT(rc == -EINVAL);
        ASSERT(err[0] != '\0');
        ASSERT(list.count == 1 && strcmp(span_kv_get(&list, "sentinel"), "kept") == 0);
        return 0;
    }
    check_pairs(&list);

    /* Round trip: the decoded pairs, encoded again, parse to the same list. */
    span_kv_init(&list);
    ASSERT(span_kv_parse(&list, (const char *)data, size, err, sizeof(err)) == 0);
    size_t n = encode_list(&list, encoded, sizeof(encoded));
    span_kv_init(&again);
    if (n <= LIMIT_OTEL_KV_BYTES_MAX) {
        ASSERT(span_kv_parse(&again, encoded, n, err, sizeof(err)) == 0);
        ASSERT(again.count == list.count);
        for (size_t i = 0; i < list.count; i++) {
            ASSERT(strcmp(span_kv_key(&again, i), span_kv_key(&list, i)) == 0);
            ASSERT(strcmp(span_kv_value(&again, i), span_kv_value(&list, i)) == 0);
        }
    }

    /* As the resource variable: it may still be refused (a NUL cuts the text, a default value
     * may not fit), but what is accepted encodes as JSON. */
    size_t z = size < LIMIT_OTEL_KV_BYTES_MAX ? size : LIMIT_OTEL_KV_BYTES_MAX;
    memcpy(input_z, data, z);
    input_z[z] = '\0';
    if (span_resource_from_env(&resource, fuzz_getenv, "0.0.0", err, sizeof(err)) == 0) {
        check_pairs(&resource.attrs);
        ASSERT(span_kv_get(&resource.attrs, "service.name") != NULL);
        struct buf out;
        buf_init(&out, LIMIT_OTLP_REQUEST_BYTES_MAX);
        size_t done = 0;
        ASSERT(otlp_encode_json(&out, &resource, "0.0.0", NULL, 0, &done) == 0);
        json_t *root = json_loadb(out.data, out.len, 0, NULL);
        ASSERT(root != NULL);
        json_decref(root);
        buf_release(&out);
    }
    return 0;
}
