/*
 * migset.c — a backend's migration files (see migset.h): listed, named, numbered, read as
 * hostile input, normalised, hashed, linted, and checked against the integrity file ledgerd.sum.
 *
 * A directory may come from any branch, so nothing in it is trusted: a name may hold any byte,
 * a file may be a FIFO, a device, a dangling link or gigabytes long. Files are looked at with
 * fstatat before they are opened (so a FIFO is never opened and nothing can block), opened
 * non-blocking, checked again with fstat and read up to their size. The built-in copy goes
 * through the same checks, so a binary refuses exactly the histories its directory would.
 *
 * Layers, bottom up: text helpers; listing and reading a source (a directory or the built-in
 * blobs); the checks of one file; the integrity file (parse, check, render, write); loading;
 * a new migration.
 */
#include "store/migset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "store/migrations.h"

#define SUM_HEADER "ledgerd-sum 1"
#define SUM_DIR_PREFIX "dir "
#define SUM_TMP_SUFFIX ".tmp"
/* Hex digits of a hash shown in a message: enough to tell two hashes apart by eye. */
#define HASH_SHORT_LEN 12
/* A name as shown in a message: every byte may become "\xNN", plus "..." and the NUL. */
#define NAME_SHOWN_SIZE (4 * LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 4)
/* <origin>/<file>: the directory path plus a file name and the separator. */
#define PATH_SIZE (sizeof(((struct migset *)0)->origin) + LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 16)

/* One candidate migration file of a source, before its name is checked. */
struct entry {
    char *name;                              /* malloc'd, NUL-terminated */
    const struct store_migration_blob *blob; /* the built-in copy; NULL for a directory */
};

/* Where files come from: a directory (dirfd) or the blobs compiled into the binary. */
struct source {
    int dirfd; /* -1 for the built-in copy */
    const struct store_migration_blob *blobs;
    size_t nblobs;
    const struct store_migration_blob *sum;
};

/* ---------------------------------------------------------------------------------------
 * Text helpers.
 * ------------------------------------------------------------------------------------- */

/* Appends one error line to err: at most LIMIT_MIGRATION_MESSAGE_LEN - 1 bytes (cut with "..."),
 * and as much of it as err has room for, so that a reason always reaches the caller. */
__attribute__((format(printf, 2, 3))) static void say(struct buf *err, const char *fmt, ...)
{
    char line[LIMIT_MIGRATION_MESSAGE_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n;
    if (len >= sizeof(line)) {
        memcpy(line + sizeof(line) - 4, "...", 4);
        len = sizeof(line) - 1;
    }
    size_t room = err->len_max - err->len;
    (void)buf_append(err, line, len < room ? len : room);
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* The name part of a migration: ^[a-z0-9_]{1,64}$. */
static bool name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_MIGRATION_NAME_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(s[i])) {
            return false;
        }
    }
    return true;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* ^[0-9]{4}_[a-z0-9_]{1,64}\.sql$ with the number in *version (0000 included: the caller
 * refuses it with its own message). */
static bool file_name_parse(const char *s, size_t len, uint32_t *version)
{
    if (len < 10 || len > LIMIT_MIGRATION_FILE_NAME_LEN_MAX || s[4] != '_' ||
        !ends_with(s, len, ".sql")) {
        return false;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (!name_valid(s + 5, len - 9)) {
        return false;
    }
    *version = v;
    return true;
}

/* A name as a message may show it: printable ASCII as is, other bytes as \xNN, at most
 * LIMIT_MIGRATION_FILE_NAME_LEN_MAX bytes of it, "..." when cut. */
static void name_show(const char *s, size_t len, char out[NAME_SHOWN_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t shown =
        len < LIMIT_MIGRATION_FILE_NAME_LEN_MAX ? len : LIMIT_MIGRATION_FILE_NAME_LEN_MAX;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0x0f];
        }
    }
    if (shown < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    ASSERT(o < NAME_SHOWN_SIZE);
    out[o] = '\0';
}

int migset_normalize(const char *in, size_t len, char **out, size_t *out_len)
{
    ASSERT(in != NULL || len == 0);
    ASSERT(out != NULL && out_len != NULL && len < SIZE_MAX);
    char *o = malloc(len + 1);
    if (o == NULL) {
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r') {
            o[n++] = '\n';
            if (i + 1 < len && in[i + 1] == '\n') {
                i++;
            }
        } else {
            o[n++] = in[i];
        }
    }
    o[n] = '\0';
    ASSERT(n <= len);
    *out = o;
    *out_len = n;
    return 0;
}

bool migset_backend_dialect(const char *backend, enum sql_dialect *out)
{
    ASSERT(backend != NULL && out != NULL);
    if (strcmp(backend, "sqlite") == 0) {
        *out = SQL_DIALECT_SQLITE;
        return true;
    }
    if (strcmp(backend, "postgres") == 0) {
        *out = SQL_DIALECT_POSTGRES;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------
 * Listing and reading a source.
 * ------------------------------------------------------------------------------------- */

/* Migration files are *.sql but the snapshot; everything else (README.md, ledgerd.sum) is not
 * the loader's business. */
static bool entry_is_candidate(const char *name)
{
    return ends_with(name, strlen(name), ".sql") && strcmp(name, MIGSET_SNAPSHOT_FILE) != 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a;
    const struct entry *y = b;
    return strcmp(x->name, y->name);
}

static void entries_free(struct entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ents[i].name);
    }
    free(ents);
}

static int entries_add(struct entry **ents, size_t *n, size_t *cap, const char *name,
                       const struct store_migration_blob *blob, struct buf *err)
{
    if (*n >= LIMIT_MIGRATION_FILES_MAX) {
        say(err, "more than %d migration files", LIMIT_MIGRATION_FILES_MAX);
        return -EINVAL;
    }
    if (*n == *cap) {
        size_t cap_new = *cap == 0 ? 16 : 2 * *cap;
        struct entry *grown = realloc(*ents, cap_new * sizeof(**ents));
        if (grown == NULL) {
            return -ENOMEM;
        }
        *ents = grown;
        *cap = cap_new;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return -ENOMEM;
    }
    (*ents)[*n].name = copy;
    (*ents)[*n].blob = blob;
    (*n)++;
    return 0;
}

/* The candidate files of the directory dirfd, in directory order. */
static int dir_list(int dirfd, struct entry **ents, size_t *n, size_t *cap, struct buf *err)
{
    int rc = 0;
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        say(err, "cannot list the directory (errno %d)", -rc);
        return rc;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        rc = -errno;
        close(fd);
        say(err, "cannot list the directory (errno %d)", -rc);
        return rc;
    }
    rewinddir(d);
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                rc = -EIO;
                say(err, "cannot list the directory (errno %d)", errno);
            }
            break;
        }
        if (entry_is_candidate(de->d_name)) {
            rc = entries_add(ents, n, cap, de->d_name, NULL, err);
            if (rc != 0) {
                break;
            }
        }
    }
    closedir(d);
    return rc;
}

/* The candidate files of src, sorted by name (strcmp). *ents is malloc'd (entries_free). */
static int source_list(const struct source *src, struct entry **ents, size_t *n, struct buf *err)
{
    size_t cap = 0;
    int rc = 0;
    *ents = NULL;
    *n = 0;
    if (src->dirfd >= 0) {
        rc = dir_list(src->dirfd, ents, n, &cap, err);
    }
    for (size_t i = 0; src->dirfd < 0 && i < src->nblobs && rc == 0; i++) {
        if (entry_is_candidate(src->blobs[i].file)) {
            rc = entries_add(ents, n, &cap, src->blobs[i].file, &src->blobs[i], err);
        }
    }
    if (rc != 0) {
        entries_free(*ents, *n);
        *ents = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) {
        qsort(*ents, *n, sizeof(**ents), entry_cmp);
    }
    return 0;
}

/* Reads name in dirfd whole into a malloc'd, NUL-terminated *out: a regular file (a link to
 * one is followed) of at most bytes_max bytes. Returns -ENOENT without a message when there is
 * no such file, so the caller can say what that means; other failures name the file in err. */
static int read_at(int dirfd, const char *name, size_t bytes_max, char **out, size_t *out_len,
                   struct buf *err)
{
    char shown[NAME_SHOWN_SIZE];
    name_show(name, strlen(name), shown);
    *out = NULL;
    *out_len = 0;

    /* Looked at before opening: opening a FIFO would block, a device may act. */
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) != 0) {
        int e = errno;
        if (e == ENOENT) {
            return -ENOENT;
        }
        say(err, "%s cannot be read (errno %d)", shown, e);
        return e == ELOOP || e == ENAMETOOLONG ? -EINVAL : -EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        say(err, "%s is not a regular file", shown);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > bytes_max) {
        say(err, "%s is over %zu bytes", shown, bytes_max);
        return -EINVAL;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            return -ENOENT;
        }
        say(err, "%s cannot be opened (errno %d)", shown, e);
        return -EIO;
    }
    int rc = 0;
    char *data = NULL;
    /* Checked again on what was opened: the name may have been replaced in between. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        say(err, "%s is not a regular file", shown);
        rc = -EINVAL;
        goto out_close;
    }
    if ((uint64_t)st.st_size > bytes_max) {
        say(err, "%s is over %zu bytes", shown, bytes_max);
        rc = -EINVAL;
        goto out_close;
    }
    /* One byte more than the size, to notice a file that grows while it is read. */
    size_t cap = (size_t)st.st_size + 1;
    data = malloc(cap + 1);
    if (data == NULL) {
        rc = -ENOMEM;
        goto out_close;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, data + got, cap - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            say(err, "%s cannot be read (errno %d)", shown, errno);
            rc = -EIO;
            goto out_free;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    if (got == cap) {
        say(err, "%s changed while it was read", shown);
        rc = -EIO;
        goto out_free;
    }
    data[got] = '\0';
    *out = data;
    *out_len = got;
    data = NULL;
out_free:
    free(data);
out_close:
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The checks of the files themselves: names, numbering, content.
 * ------------------------------------------------------------------------------------- */

/* Every name is NNNN_name.sql, numbered 0001, 0002, ... without a gap or a repeat. */
static int names_check(const struct entry *ents, size_t n, struct buf *err)
{
    char shown[NAME_SHOWN_SIZE];
    for (size_t i = 0; i < n; i++) {
        uint32_t v = 0;
        size_t len = strlen(ents[i].name);
        if (!file_name_parse(ents[i].name, len, &v)) {
            name_show(ents[i].name, len, shown);
            say(err,
                "\"%s\" is not a migration file name: expected NNNN_name.sql with name "
                "of 1 to %d characters a-z, 0-9 and _",
                shown, LIMIT_MIGRATION_NAME_LEN_MAX);
            return -EINVAL;
        }
        if (v == 0) {
            say(err, "%s: migration numbers start at 0001", ents[i].name);
            return -EINVAL;
        }
    }
    uint32_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = 0;
        bool named = file_name_parse(ents[i].name, strlen(ents[i].name), &v);
        ASSERT(named);
        if (i > 0 && v == prev) {
            say(err,
                "%s and %s have the same number %04u (two branches added a migration "
                "each): renumber the later one and run `ledgerd migrate hash`",
                ents[i - 1].name, ents[i].name, v);
            return -EINVAL;
        }
        if (v != prev + 1) {
            if (i == 0) {
                say(err, "%s is the first migration: 0001 is missing", ents[i].name);
            } else {
                say(err, "%s follows %s: %04u is missing", ents[i].name, ents[i - 1].name,
                    prev + 1);
            }
            return -EINVAL;
        }
        prev = v;
    }
    return 0;
}

/* Checks, normalises, hashes and lints the content of one file into set->files[set->n]; on
 * success set->n grows by one, on failure nothing is left allocated. */
static int file_add(struct migset *set, const char *file, const char *data, size_t len,
                    struct buf *err)
{
    struct migset_file *f = &set->files[set->n];
    size_t file_len = strlen(file);
    bool named = file_name_parse(file, file_len, &f->version);
    ASSERT(named);
    ASSERT(f->version == set->n + 1);
    if (len > LIMIT_MIGRATION_FILE_BYTES_MAX) {
        say(err, "%s is over %zu bytes", file, LIMIT_MIGRATION_FILE_BYTES_MAX);
        return -EINVAL;
    }
    const char *nul = memchr(data, '\0', len);
    if (nul != NULL) {
        say(err, "%s has a NUL byte at offset %zu: it is not SQL text", file, (size_t)(nul - data));
        return -EINVAL;
    }
    memcpy(f->file, file, file_len + 1);
    memcpy(f->name, file + 5, file_len - 9);
    f->name[file_len - 9] = '\0';

    int rc = migset_normalize(data, len, &f->sql, &f->sql_len);
    if (rc != 0) {
        return rc;
    }
    uint8_t digest[SHA256_BYTES];
    rc = sha256_digest(f->sql, f->sql_len, digest);
    if (rc != 0) {
        say(err, "%s: SHA-256 failed", file);
        goto out_free_sql;
    }
    sha256_hex(digest, f->checksum);

    struct buf lint_err;
    buf_init(&lint_err, LIMIT_MIGRATION_MESSAGE_LEN);
    memset(&f->lint, 0, sizeof(f->lint));
    rc = miglint_file(set->dialect, f->sql, f->sql_len, &f->lint, &lint_err);
    if (rc == -EINVAL) {
        say(err, "%s: %s", file,
            lint_err.data != NULL ? lint_err.data : "cannot be split into statements");
    }
    buf_release(&lint_err);
    if (rc != 0) {
        goto out_free_sql;
    }
    set->n++;
    return 0;

out_free_sql:
    free(f->sql);
    f->sql = NULL;
    f->sql_len = 0;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The integrity file.
 * ------------------------------------------------------------------------------------- */

/* SHA-256 hex of the file lines "<file> <hash>\n" in order: the dir hash. */
static int lines_hash(const char *const *files, const char *const *hashes, size_t n,
                      char out[MIGSET_HASH_HEX_LEN + 1])
{
    struct sha256 h;
    uint8_t digest[SHA256_BYTES];
    int rc = sha256_init(&h);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = sha256_update(&h, files[i], strlen(files[i]));
        if (rc == 0) {
            rc = sha256_update(&h, " ", 1);
        }
        if (rc == 0) {
            rc = sha256_update(&h, hashes[i], MIGSET_HASH_HEX_LEN);
        }
        if (rc == 0) {
            rc = sha256_update(&h, "\n", 1);
        }
    }
    int rc_final = sha256_final(&h, digest); /* releases the context in every case */
    if (rc != 0 || rc_final != 0) {
        return -EIO;
    }
    sha256_hex(digest, out);
    return 0;
}

static int set_dir_hash(struct migset *set)
{
    const char **files = calloc(set->n + 1, sizeof(*files));
    const char **hashes = calloc(set->n + 1, sizeof(*hashes));
    int rc = -ENOMEM;
    if (files == NULL || hashes == NULL) {
        goto out_free;
    }
    for (size_t i = 0; i < set->n; i++) {
        files[i] = set->files[i].file;
        hashes[i] = set->files[i].checksum;
    }
    rc = lines_hash(files, hashes, set->n, set->dir_hash);
out_free:
    free(files);
    free(hashes);
    return rc;
}

__attribute__((format(printf, 3, 4))) static int sum_fail(struct buf *err, size_t line,
                                                          const char *fmt, ...)
{
    char reason[LIMIT_MIGRATION_MESSAGE_LEN];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    say(err, MIGSET_SUM_FILE " line %zu: %s", line, reason);
    return -EINVAL;
}

/* 64 lower-case hex digits. */
static int sum_hash_parse(const char *s, size_t len, size_t line, char out[MIGSET_HASH_HEX_LEN + 1],
                          struct buf *err)
{
    bool upper = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'F') {
            upper = true;
        } else if (!is_lower_hex(s[i])) {
            return sum_fail(err, line, "the hash is not hex");
        }
    }
    if (upper) {
        return sum_fail(err, line, "the hash must be lower-case hex");
    }
    if (len != MIGSET_HASH_HEX_LEN) {
        return sum_fail(err, line, "the hash must be %zu hex digits, not %zu", MIGSET_HASH_HEX_LEN,
                        len);
    }
    memcpy(out, s, MIGSET_HASH_HEX_LEN);
    out[MIGSET_HASH_HEX_LEN] = '\0';
    return 0;
}

/* Line 2: "dir <hash>". */
static int sum_dir_line_parse(const char *s, size_t len, struct migset_sum *out, struct buf *err)
{
    size_t prefix = strlen(SUM_DIR_PREFIX);
    if (len < prefix || memcmp(s, SUM_DIR_PREFIX, prefix) != 0) {
        return sum_fail(err, 2, "expected \"" SUM_DIR_PREFIX "<sha256 hex>\"");
    }
    if (memchr(s + prefix, ' ', len - prefix) != NULL) {
        return sum_fail(err, 2, "has an extra field: expected \"" SUM_DIR_PREFIX "<sha256 hex>\"");
    }
    return sum_hash_parse(s + prefix, len - prefix, 2, out->dir_hash, err);
}

/* Lines 3 on: "<file> <hash>". */
static int sum_file_line_parse(const char *s, size_t len, size_t line, struct migset_sum_entry *e,
                               struct buf *err)
{
    const char *sp = memchr(s, ' ', len);
    if (sp == NULL) {
        return sum_fail(err, line, "expected \"<file> <sha256 hex>\"");
    }
    size_t file_len = (size_t)(sp - s);
    const char *hash = sp + 1;
    size_t hash_len = len - file_len - 1;
    if (memchr(hash, ' ', hash_len) != NULL) {
        return sum_fail(err, line, "has an extra field: expected \"<file> <sha256 hex>\"");
    }
    uint32_t v = 0;
    if (!file_name_parse(s, file_len, &v) || v == 0) {
        char shown[NAME_SHOWN_SIZE];
        name_show(s, file_len, shown);
        return sum_fail(err, line, "\"%s\" is not a migration file name", shown);
    }
    int rc = sum_hash_parse(hash, hash_len, line, e->hash, err);
    if (rc != 0) {
        return rc;
    }
    memcpy(e->file, s, file_len);
    e->file[file_len] = '\0';
    return 0;
}

static int sum_entry_ptr_cmp(const void *a, const void *b)
{
    const struct migset_sum_entry *const *x = a;
    const struct migset_sum_entry *const *y = b;
    int c = strcmp((*x)->file, (*y)->file);
    if (c != 0) {
        return c;
    }
    return *x < *y ? -1 : (*x > *y ? 1 : 0);
}

/* No file listed twice: sorted, a repeat sits next to its first. */
static int sum_duplicates_check(const struct migset_sum *sum, struct buf *err)
{
    if (sum->n < 2) {
        return 0;
    }
    const struct migset_sum_entry **sorted =
        calloc(sum->n, sizeof(const struct migset_sum_entry *));
    if (sorted == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < sum->n; i++) {
        sorted[i] = &sum->entries[i];
    }
    qsort((void *)sorted, sum->n, sizeof(const struct migset_sum_entry *), sum_entry_ptr_cmp);
    int rc = 0;
    for (size_t i = 1; i < sum->n; i++) {
        if (strcmp(sorted[i - 1]->file, sorted[i]->file) == 0) {
            /* Entry k is on line k + 3; sorting kept the first one first. */
            size_t first = (size_t)(sorted[i - 1] - sum->entries) + 3;
            size_t again = (size_t)(sorted[i] - sum->entries) + 3;
            rc = sum_fail(err, again, "%s is listed twice (first on line %zu)", sorted[i]->file,
                          first);
            break;
        }
    }
    free(sorted);
    return rc;
}

void migset_sum_free(struct migset_sum *sum)
{
    ASSERT(sum != NULL);
    free(sum->entries);
    memset(sum, 0, sizeof(*sum));
}

static int sum_line_parse(const char *s, size_t len, size_t line, struct migset_sum *out,
                          size_t *cap, struct buf *err)
{
    if (len == 0) {
        return sum_fail(err, line, "is blank");
    }
    if (s[len - 1] == ' ' || s[len - 1] == '\t') {
        return sum_fail(err, line, "has trailing whitespace");
    }
    if (line == 1) {
        if (len != strlen(SUM_HEADER) || memcmp(s, SUM_HEADER, len) != 0) {
            return sum_fail(err, line, "expected \"" SUM_HEADER "\"");
        }
        return 0;
    }
    if (line == 2) {
        return sum_dir_line_parse(s, len, out, err);
    }
    if (out->n >= LIMIT_MIGRATION_FILES_MAX) {
        return sum_fail(err, line, "more than %d files", LIMIT_MIGRATION_FILES_MAX);
    }
    if (out->n == *cap) {
        size_t cap_new = *cap == 0 ? 16 : 2 * *cap;
        struct migset_sum_entry *grown = realloc(out->entries, cap_new * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        out->entries = grown;
        *cap = cap_new;
    }
    int rc = sum_file_line_parse(s, len, line, &out->entries[out->n], err);
    if (rc == 0) {
        out->n++;
    }
    return rc;
}

int migset_sum_parse(const char *text, size_t len, struct migset_sum *out, struct buf *err)
{
    ASSERT(text != NULL || len == 0);
    ASSERT(out != NULL && err != NULL);
    memset(out, 0, sizeof(*out));
    if (len > LIMIT_MIGRATION_SUM_BYTES_MAX) {
        say(err, MIGSET_SUM_FILE " is over %zu bytes", LIMIT_MIGRATION_SUM_BYTES_MAX);
        return -EINVAL;
    }
    char *norm = NULL;
    size_t norm_len = 0;
    int rc = migset_normalize(text, len, &norm, &norm_len);
    if (rc != 0) {
        return rc;
    }
    size_t cap = 0;
    size_t line = 0;
    size_t pos = 0;
    while (pos < norm_len) {
        const char *s = norm + pos;
        const char *eol = memchr(s, '\n', norm_len - pos);
        size_t line_len = eol != NULL ? (size_t)(eol - s) : norm_len - pos;
        line++;
        rc = sum_line_parse(s, line_len, line, out, &cap, err);
        if (rc != 0) {
            goto out_fail;
        }
        pos += line_len + (eol != NULL ? 1 : 0);
    }
    if (line < 2) {
        rc = sum_fail(err, line + 1, "expected \"%s\"",
                      line == 0 ? SUM_HEADER : SUM_DIR_PREFIX "<sha256 hex>");
        goto out_fail;
    }
    rc = sum_duplicates_check(out, err);
    if (rc != 0) {
        goto out_fail;
    }
    free(norm);
    return 0;

out_fail:
    free(norm);
    migset_sum_free(out);
    return rc;
}

/* The load's files against the integrity file text, in the order migset.h documents. */
static int sum_check(const struct migset *set, const char *text, size_t len, struct buf *err)
{
    struct migset_sum sum;
    int rc = migset_sum_parse(text, len, &sum, err);
    if (rc != 0) {
        return rc;
    }
    const char **files = calloc(sum.n + 1, sizeof(*files));
    const char **hashes = calloc(sum.n + 1, sizeof(*hashes));
    if (files == NULL || hashes == NULL) {
        rc = -ENOMEM;
        goto out_free;
    }
    for (size_t i = 0; i < sum.n; i++) {
        files[i] = sum.entries[i].file;
        hashes[i] = sum.entries[i].hash;
    }
    char lines[MIGSET_HASH_HEX_LEN + 1];
    rc = lines_hash(files, hashes, sum.n, lines);
    if (rc != 0) {
        goto out_free;
    }
    if (strcmp(lines, sum.dir_hash) != 0) {
        say(err, MIGSET_SUM_FILE " was edited by hand or merged: its dir hash does not "
                                 "match its lines; review, then run `ledgerd migrate hash`");
        rc = -EINVAL;
        goto out_free;
    }
    for (size_t i = 1; i < sum.n; i++) {
        if (strcmp(sum.entries[i - 1].file, sum.entries[i].file) > 0) {
            say(err, MIGSET_SUM_FILE " lists %s before %s: the history was reordered",
                sum.entries[i - 1].file, sum.entries[i].file);
            rc = -EINVAL;
            goto out_free;
        }
    }
    /* Both lists are sorted by name now: one merge finds the first of each kind of mismatch. */
    const struct migset_sum_entry *gone = NULL;
    const struct migset_file *unlisted = NULL;
    const struct migset_file *edited = NULL;
    const struct migset_sum_entry *edited_entry = NULL;
    size_t i = 0;
    size_t j = 0;
    while (i < set->n || j < sum.n) {
        int c =
            i == set->n ? 1 : (j == sum.n ? -1 : strcmp(set->files[i].file, sum.entries[j].file));
        if (c < 0) {
            unlisted = unlisted != NULL ? unlisted : &set->files[i];
            i++;
        } else if (c > 0) {
            gone = gone != NULL ? gone : &sum.entries[j];
            j++;
        } else {
            if (edited == NULL && strcmp(set->files[i].checksum, sum.entries[j].hash) != 0) {
                edited = &set->files[i];
                edited_entry = &sum.entries[j];
            }
            i++;
            j++;
        }
    }
    rc = -EINVAL;
    if (gone != NULL) {
        say(err, "%s is listed in " MIGSET_SUM_FILE " but does not exist", gone->file);
    } else if (unlisted != NULL) {
        say(err, "%s is not in " MIGSET_SUM_FILE ": review it, then run `ledgerd migrate hash`",
            unlisted->file);
    } else if (edited != NULL) {
        say(err, "%s was edited after it was hashed (sha256 %.*s != %.*s in " MIGSET_SUM_FILE ")",
            edited->file, HASH_SHORT_LEN, edited->checksum, HASH_SHORT_LEN, edited_entry->hash);
    } else {
        rc = 0;
    }
out_free:
    free(files);
    free(hashes);
    migset_sum_free(&sum);
    return rc;
}

int migset_sum_render(const struct migset *set, struct buf *out)
{
    ASSERT(set != NULL && out != NULL);
    ASSERT(strlen(set->dir_hash) == MIGSET_HASH_HEX_LEN);
    /* Rendered apart and appended whole, so a failure leaves out as it was. */
    struct buf text;
    buf_init(&text, out->len_max);
    int rc = buf_appendf(&text, SUM_HEADER "\n" SUM_DIR_PREFIX "%s\n", set->dir_hash);
    for (size_t i = 0; i < set->n && rc == 0; i++) {
        rc = buf_appendf(&text, "%s %s\n", set->files[i].file, set->files[i].checksum);
    }
    if (rc == 0) {
        rc = buf_append(out, text.data, text.len);
    }
    buf_release(&text);
    return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        done += (size_t)w;
    }
    return 0;
}

/* Writes data to path (opened with O_WRONLY | O_CREAT | flags, never through a symbolic link)
 * and fsyncs it. The caller removes the file on failure. */
static int file_write(const char *path, int flags, const char *data, size_t len, struct buf *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | flags, 0644);
    if (fd < 0) {
        int rc = -errno;
        say(err, "cannot create %s (errno %d)", path, -rc);
        return rc == -EEXIST ? -EEXIST : -EIO;
    }
    int rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc != 0) {
        say(err, "cannot write %s (errno %d)", path, -rc);
        return -EIO;
    }
    return 0;
}

/* Makes a rename or a new file in dir survive a crash. */
static int dir_sync(const char *dir, struct buf *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        say(err, "cannot open %s (errno %d)", dir, errno);
        return -EIO;
    }
    int rc = 0;
    if (fsync(fd) != 0) {
        say(err, "cannot fsync %s (errno %d)", dir, errno);
        rc = -EIO;
    }
    close(fd);
    return rc;
}

int migset_sum_write(const char *root, const char *backend, struct buf *err)
{
    ASSERT(root != NULL && backend != NULL && err != NULL);
    struct migset set;
    int rc = migset_load_dir(root, backend, 0, &set, err);
    if (rc != 0) {
        return rc;
    }
    struct buf text;
    buf_init(&text, LIMIT_MIGRATION_SUM_BYTES_MAX);
    char path[PATH_SIZE];
    char tmp[PATH_SIZE];
    rc = migset_sum_render(&set, &text);
    if (rc == -ENOSPC) {
        say(err, MIGSET_SUM_FILE " would be over %zu bytes", LIMIT_MIGRATION_SUM_BYTES_MAX);
        rc = -EINVAL;
    }
    if (rc != 0) {
        goto out_release;
    }
    int n = snprintf(path, sizeof(path), "%s/" MIGSET_SUM_FILE, set.origin);
    int m = snprintf(tmp, sizeof(tmp), "%s/" MIGSET_SUM_FILE SUM_TMP_SUFFIX, set.origin);
    ASSERT(n > 0 && (size_t)n < sizeof(path) && m > 0 && (size_t)m < sizeof(tmp));
    rc = file_write(tmp, O_TRUNC, text.data, text.len, err);
    if (rc != 0) {
        goto out_unlink;
    }
    if (rename(tmp, path) != 0) {
        rc = -EIO;
        say(err, "cannot rename %s to %s (errno %d)", tmp, path, errno);
        goto out_unlink;
    }
    rc = dir_sync(set.origin, err);
    goto out_release;

out_unlink:
    unlink(tmp);
out_release:
    buf_release(&text);
    migset_free(&set);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Loading.
 * ------------------------------------------------------------------------------------- */

void migset_free(struct migset *set)
{
    ASSERT(set != NULL);
    for (size_t i = 0; set->files != NULL && i < set->n; i++) {
        free(set->files[i].sql);
        miglint_report_free(&set->files[i].lint);
    }
    free(set->files);
    memset(set, 0, sizeof(*set));
}

/* The loaded files of set against the integrity file of src. */
static int source_sum_check(const struct source *src, const struct migset *set, struct buf *err)
{
    if (src->dirfd < 0 && src->sum->file[0] != '\0') {
        return sum_check(set, src->sum->data, src->sum->len, err);
    }
    char *data = NULL;
    size_t len = 0;
    int rc = -ENOENT;
    if (src->dirfd >= 0) {
        rc = read_at(src->dirfd, MIGSET_SUM_FILE, LIMIT_MIGRATION_SUM_BYTES_MAX, &data, &len, err);
    }
    if (rc == -ENOENT) {
        say(err,
            "%s/" MIGSET_SUM_FILE " does not exist: review the migrations, then run "
            "`ledgerd migrate hash`",
            set->origin);
    } else if (rc == 0) {
        rc = sum_check(set, data, len, err);
    }
    free(data);
    return rc;
}

/* Everything migset_load_dir does, for either kind of source. On failure set is empty. */
static int set_load(const struct source *src, unsigned flags, struct migset *set, struct buf *err)
{
    struct entry *ents = NULL;
    size_t n = 0;
    int rc = source_list(src, &ents, &n, err);
    if (rc != 0) {
        goto out_fail;
    }
    rc = names_check(ents, n, err);
    if (rc != 0) {
        goto out_fail;
    }
    set->files = calloc(n + 1, sizeof(*set->files));
    if (set->files == NULL) {
        rc = -ENOMEM;
        goto out_fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (ents[i].blob != NULL) {
            rc = file_add(set, ents[i].name, ents[i].blob->data, ents[i].blob->len, err);
        } else {
            char *data = NULL;
            size_t len = 0;
            rc =
                read_at(src->dirfd, ents[i].name, LIMIT_MIGRATION_FILE_BYTES_MAX, &data, &len, err);
            if (rc == -ENOENT) {
                say(err, "%s vanished or is a dangling symbolic link", ents[i].name);
                rc = -EINVAL;
            }
            if (rc == 0) {
                rc = file_add(set, ents[i].name, data, len, err);
            }
            free(data);
        }
        if (rc != 0) {
            goto out_fail;
        }
    }
    ASSERT(set->n == n);
    rc = set_dir_hash(set);
    if (rc == 0 && (flags & MIGSET_CHECK_SUM) != 0) {
        rc = source_sum_check(src, set, err);
    }
    if (rc != 0) {
        goto out_fail;
    }
    entries_free(ents, n);
    return 0;

out_fail:
    entries_free(ents, n);
    migset_free(set);
    return rc;
}

/* Fills the parts of set both loaders share; false for an unknown backend. */
static bool set_begin(struct migset *set, const char *backend, struct buf *err)
{
    memset(set, 0, sizeof(*set));
    if (!migset_backend_dialect(backend, &set->dialect)) {
        char shown[NAME_SHOWN_SIZE];
        name_show(backend, strlen(backend), shown);
        say(err, "unknown backend \"%s\": expected sqlite or postgres", shown);
        return false;
    }
    ASSERT(strlen(backend) < sizeof(set->backend));
    memcpy(set->backend, backend, strlen(backend) + 1);
    return true;
}

int migset_load_dir(const char *root, const char *backend, unsigned flags, struct migset *out,
                    struct buf *err)
{
    ASSERT(root != NULL && backend != NULL && out != NULL && err != NULL);
    if (!set_begin(out, backend, err)) {
        return -EINVAL;
    }
    int n = snprintf(out->origin, sizeof(out->origin), "%s/%s", root, backend);
    if (n < 0 || (size_t)n >= sizeof(out->origin)) {
        say(err, "the migrations directory path is over %zu bytes", sizeof(out->origin) - 1);
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    int dirfd = open(out->origin, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        say(err, "%s %s", out->origin,
            e == ENOENT ? "does not exist"
                        : (e == ENOTDIR ? "is not a directory" : "cannot be opened"));
        memset(out, 0, sizeof(*out));
        return e == ENOENT ? -ENOENT : (e == ENOTDIR ? -EINVAL : -EIO);
    }
    struct source src = {.dirfd = dirfd, .blobs = NULL, .nblobs = 0, .sum = NULL};
    int rc = set_load(&src, flags, out, err);
    close(dirfd);
    if (rc != 0) {
        return rc;
    }
    ASSERT(out->n == 0 || out->files[out->n - 1].version == out->n);
    return 0;
}

int migset_load_builtin(const char *backend, struct migset *out, struct buf *err)
{
    ASSERT(backend != NULL && out != NULL && err != NULL);
    if (!set_begin(out, backend, err)) {
        return -EINVAL;
    }
    memcpy(out->origin, "built-in", sizeof("built-in"));
    struct source src = {.dirfd = -1};
    if (out->dialect == SQL_DIALECT_SQLITE) {
        src.blobs = store_migrations_sqlite;
        src.nblobs = store_migrations_sqlite_count;
        src.sum = &store_migrations_sqlite_sum;
    } else {
        src.blobs = store_migrations_postgres;
        src.nblobs = store_migrations_postgres_count;
        src.sum = &store_migrations_postgres_sum;
    }
    return set_load(&src, MIGSET_CHECK_SUM, out, err);
}

/* ---------------------------------------------------------------------------------------
 * A new migration.
 * ------------------------------------------------------------------------------------- */

static const char *const migset_backends[] = {"sqlite", "postgres"};
#define MIGSET_BACKENDS (sizeof(migset_backends) / sizeof(migset_backends[0]))

/* Printable text without a line break: control characters are refused, UTF-8 is let through. */
static bool author_valid(const char *author)
{
    size_t len = strlen(author);
    if (len > LIMIT_MIGRATION_AUTHOR_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)author[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* The header a new migration starts with; its author fills in the first line and the kind. */
static int header_render(const char *backend, uint32_t version, const char *name,
                         const char *author, const struct tm *day, struct buf *out)
{
    int rc = buf_appendf(
        out,
        "-- %04u_%s: <what this migration changes and why>\n"
        "--\n"
        "-- Author: %s, %04d-%02d-%02d.\n"
        "-- Kind: expand | contract (keep one). An expand migration only adds (new tables, "
        "nullable\n"
        "-- columns or columns with a default, indexes) and is safe while the previous version "
        "of\n"
        "-- ledgerd still runs; a contract migration removes what no running version uses any "
        "more.\n"
        "-- A destructive statement needs a line \"-- ledgerd:destructive <rule>: <reason>\" and\n"
        "-- `ledgerd migrate up --allow-destructive`. See docs/operations/migrations.md.\n",
        version, name, author, day->tm_year + 1900, day->tm_mon + 1, day->tm_mday);
    if (rc == 0 && strcmp(backend, "postgres") == 0) {
        /* One line: a wrapped "-- ledgerd:no-transaction." would read as an annotation. */
        rc = buf_append_str(out, "-- PostgreSQL: start with SET lock_timeout = '5s'; build "
                                 "indexes on existing tables with CREATE INDEX CONCURRENTLY in "
                                 "a file of its own marked -- ledgerd:no-transaction.\n");
    }
    return rc;
}

int migset_new(const char *root, const char *name, const char *author, int64_t now_unix_ms,
               struct buf *created, struct buf *err)
{
    ASSERT(root != NULL && name != NULL && author != NULL);
    ASSERT(created != NULL && err != NULL);
    if (!name_valid(name, strlen(name))) {
        say(err, "the migration name must match ^[a-z0-9_]{1,%d}$", LIMIT_MIGRATION_NAME_LEN_MAX);
        return -EINVAL;
    }
    if (!author_valid(author)) {
        say(err, "the author must be printable text of at most %d bytes on one line",
            LIMIT_MIGRATION_AUTHOR_LEN_MAX);
        return -EINVAL;
    }
    int64_t secs = now_unix_ms / 1000 - (now_unix_ms % 1000 < 0 ? 1 : 0);
    time_t t = (time_t)secs;
    struct tm day;
    if ((int64_t)t != secs || gmtime_r(&t, &day) == NULL || day.tm_year + 1900 > 9999 ||
        day.tm_year + 1900 < 0) {
        say(err, "the date %lld ms is out of range", (long long)now_unix_ms);
        return -EINVAL;
    }

    struct migset sets[MIGSET_BACKENDS];
    bool present[MIGSET_BACKENDS] = {false};
    char paths[MIGSET_BACKENDS][PATH_SIZE];
    bool made[MIGSET_BACKENDS] = {false};
    struct buf text;
    buf_init(&text, LIMIT_MIGRATION_FILE_BYTES_MAX);
    memset(sets, 0, sizeof(sets));
    int rc = 0;
    size_t highest = 0;
    size_t npresent = 0;

    /* Every directory passes its integrity check first: `new` never blesses an edit. */
    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        char dir[PATH_SIZE];
        int n = snprintf(dir, sizeof(dir), "%s/%s", root, migset_backends[b]);
        ASSERT(n > 0);
        struct stat st;
        if ((size_t)n < sizeof(dir) && stat(dir, &st) != 0 && errno == ENOENT) {
            continue;
        }
        struct buf why;
        buf_init(&why, LIMIT_MIGRATION_MESSAGE_LEN);
        rc = migset_load_dir(root, migset_backends[b], MIGSET_CHECK_SUM, &sets[b], &why);
        if (rc != 0) {
            say(err, "%s: %s", migset_backends[b], why.data != NULL ? why.data : "");
            buf_release(&why);
            rc = rc == -ENOENT ? -EINVAL : rc;
            goto out_free;
        }
        buf_release(&why);
        present[b] = true;
        npresent++;
        highest = sets[b].n > highest ? sets[b].n : highest;
    }
    if (npresent == 0) {
        say(err, "neither %s/sqlite nor %s/postgres exists", root, root);
        rc = -ENOENT;
        goto out_free;
    }
    /* The same number in every backend: one behind would be left with a gap. */
    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        for (size_t a = 0; a < MIGSET_BACKENDS; a++) {
            if (present[b] && present[a] && sets[b].n < sets[a].n) {
                say(err,
                    "%s ends at %04zu but %s at %04zu: give %s its missing migrations "
                    "first, so that both backends number alike",
                    migset_backends[b], sets[b].n, migset_backends[a], sets[a].n,
                    migset_backends[b]);
                rc = -EINVAL;
                goto out_free;
            }
        }
    }
    if (highest >= LIMIT_MIGRATION_FILES_MAX) {
        say(err, "no migration number is left after %04zu", highest);
        rc = -EINVAL;
        goto out_free;
    }
    uint32_t next = (uint32_t)highest + 1;

    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        if (!present[b]) {
            continue;
        }
        int n = snprintf(paths[b], sizeof(paths[b]), "%s/%04u_%s.sql", sets[b].origin, next, name);
        ASSERT(n > 0 && (size_t)n < sizeof(paths[b]));
        buf_reset(&text);
        rc = header_render(migset_backends[b], next, name, author, &day, &text);
        if (rc != 0) {
            goto out_unlink;
        }
        rc = file_write(paths[b], O_EXCL, text.data, text.len, err);
        if (rc != 0) {
            if (rc != -EEXIST) {
                unlink(paths[b]);
            }
            goto out_unlink;
        }
        made[b] = true;
        rc = dir_sync(sets[b].origin, err);
        if (rc != 0) {
            goto out_unlink;
        }
    }
    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        if (present[b]) {
            /* The caller learns of every file made, even if a sum is not rewritten below. */
            (void)buf_appendf(created, "%s\n", paths[b]);
        }
    }
    for (size_t b = 0; b < MIGSET_BACKENDS && rc == 0; b++) {
        if (present[b]) {
            rc = migset_sum_write(root, migset_backends[b], err);
        }
    }
    goto out_free;

out_unlink:
    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        if (made[b]) {
            unlink(paths[b]);
        }
    }
out_free:
    for (size_t b = 0; b < MIGSET_BACKENDS; b++) {
        migset_free(&sets[b]);
    }
    buf_release(&text);
    return rc;
}
