/*
 * fuzz_migsum.c — libFuzzer target for the integrity file parser (ledgerd.sum) and the line-end
 * normalisation every migration file and ledgerd.sum go through.
 *
 * Normalisation never grows the text, leaves no CR, removes exactly one byte per CRLF pair, and
 * is idempotent. The parser either refuses with a one-line printable reason that names
 * ledgerd.sum and leaves nothing behind, or yields a dir hash and entries with 64 lower-case
 * hex digits and valid, distinct NNNN_name.sql file names; and then the input, normalised and
 * given a final LF, is exactly the canonical rendering of what was parsed.
 *
 * Build: configure with -DLEDGERD_FUZZ=ON (target fuzz_migsum), or by hand:
 * clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file,
 * src/store/migset.c, src/store/miglint.c, src/store/sqlsplit.c, src/core/buf.c,
 * src/core/sha256.c, src/core/assert.c, the migrations_<backend>.c that
 * cmake/embed_migrations.cmake generates, and $(pkg-config --cflags --libs gnutls).
 * Seeds: tests/fuzz/corpus/migsum/
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/limits.h"
#include "store/migset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool lower_hex64(const char *s)
{
    for (size_t i = 0; i < MIGSET_HASH_HEX_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[MIGSET_HASH_HEX_LEN] == '\0';
}

/* ^[0-9]{4}_[a-z0-9_]{1,64}\.sql$, not 0000. */
static bool file_name_ok(const char *s)
{
    size_t len = strnlen(s, LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 1);
    if (len < 10 || len > LIMIT_MIGRATION_FILE_NAME_LEN_MAX || s[4] != '_' ||
        memcmp(s + len - 4, ".sql", 4) != 0 || memcmp(s, "0000", 4) == 0) {
        return false;
    }
    for (size_t i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    for (size_t i = 5; i < len - 4; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static void fuzz_normalize(const char *s, size_t size)
{
    char *out = NULL;
    size_t out_len = 0;
    ASSERT(migset_normalize(s, size, &out, &out_len) == 0);
    ASSERT(out_len <= size);
    ASSERT(out[out_len] == '\0');
    ASSERT(memchr(out, '\r', out_len) == NULL);
    size_t crlf = 0;
    size_t lf = 0;
    for (size_t i = 0; i < size; i++) {
        crlf += s[i] == '\r' && i + 1 < size && s[i + 1] == '\n';
        lf += s[i] == '\r' || s[i] == '\n';
    }
    ASSERT(out_len == size - crlf);
    size_t lf_out = 0;
    for (size_t i = 0; i < out_len; i++) {
        lf_out += out[i] == '\n';
    }
    ASSERT(lf_out == lf - crlf);
    char *again = NULL;
    size_t again_len = 0;
    ASSERT(migset_normalize(out, out_len, &again, &again_len) == 0);
    ASSERT(again_len == out_len && memcmp(again, out, out_len) == 0);
    free(again);
    free(out);
}

static void fuzz_parse(const char *s, size_t size)
{
    struct buf err;
    buf_init(&err, LIMIT_MIGRATION_MESSAGE_LEN * 4);
    struct migset_sum sum;
    int rc = migset_sum_parse(s, size, &sum, &err);
    if (rc != 0) {
        ASSERT(rc == -EINVAL);
        ASSERT(sum.entries == NULL && sum.n == 0);
        ASSERT(err.len > 0 && memcmp(err.data, MIGSET_SUM_FILE, strlen(MIGSET_SUM_FILE)) == 0);
        for (size_t i = 0; i < err.len; i++) {
            ASSERT(err.data[i] >= 0x20 && err.data[i] <= 0x7e);
        }
        buf_release(&err);
        return;
    }
    ASSERT(err.len == 0);
    ASSERT(size <= LIMIT_MIGRATION_SUM_BYTES_MAX);
    ASSERT(sum.n <= LIMIT_MIGRATION_FILES_MAX);
    ASSERT(lower_hex64(sum.dir_hash));
    struct buf canon;
    buf_init(&canon, 2 * (size_t)LIMIT_MIGRATION_SUM_BYTES_MAX);
    ASSERT(buf_appendf(&canon, "ledgerd-sum 1\ndir %s\n", sum.dir_hash) == 0);
    for (size_t i = 0; i < sum.n; i++) {
        ASSERT(file_name_ok(sum.entries[i].file));
        ASSERT(lower_hex64(sum.entries[i].hash));
        for (size_t j = 0; j < i; j++) {
            ASSERT(strcmp(sum.entries[i].file, sum.entries[j].file) != 0);
        }
        ASSERT(buf_appendf(&canon, "%s %s\n", sum.entries[i].file, sum.entries[i].hash) == 0);
    }
    /* What was accepted is the canonical form, up to line ends and the final LF. */
    char *norm = NULL;
    size_t norm_len = 0;
    ASSERT(migset_normalize(s, size, &norm, &norm_len) == 0);
    bool final_lf = norm_len > 0 && norm[norm_len - 1] == '\n';
    ASSERT(canon.len == norm_len + (final_lf ? 0 : 1));
    ASSERT(memcmp(canon.data, norm, norm_len) == 0);
    free(norm);
    struct migset_sum back;
    ASSERT(migset_sum_parse(canon.data, canon.len, &back, &err) == 0);
    ASSERT(back.n == sum.n && strcmp(back.dir_hash, sum.dir_hash) == 0);
    migset_sum_free(&back);
    buf_release(&canon);
    migset_sum_free(&sum);
    buf_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fuzz_normalize(s, size);
    fuzz_parse(s, size);
    return 0;
}
