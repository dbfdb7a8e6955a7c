/*
 * test_migset.c — loading, checking and hashing a backend's migration files, as `ledgerd
 * migrate` sees them.
 *
 * Every test works on a scratch copy of the repository's migrations/ under a mkdtemp()
 * directory in /tmp, made reviewed (ledgerd.sum written) by the setup, and then breaks it the
 * way a branch or a hand can: a byte edited, sum lines reordered, a file deleted or added, two
 * branches adding the same number, a gap, bad names, a hand-edited or missing ledgerd.sum,
 * malformed sum lines, CRLF checkouts, FIFOs, links, oversized files and NUL bytes. Each
 * refusal must name the file. The committed ledgerd.sum files must verify, and the copy built
 * into the binary must load exactly like the repository's directory.
 *
 * The repository is getenv("LEDGERD_SOURCE_DIR"), else LEDGERD_SOURCE_DIR_DEFAULT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "store/migset.h"

#ifndef LEDGERD_SOURCE_DIR_DEFAULT
#define LEDGERD_SOURCE_DIR_DEFAULT "."
#endif

#define PATH_BYTES 4096
#define ERR_BYTES 8192
/* 2023-11-14T22:13:20Z */
#define NOW_UNIX_MS 1700000000000LL

struct scratch {
    char root[PATH_BYTES]; /* <tmp>/migrations: holds sqlite/ and postgres/ */
    char top[PATH_BYTES];  /* the mkdtemp() directory */
};

static struct buf err;

/* ---------------------------------------------------------------------------------------
 * Files.
 * ------------------------------------------------------------------------------------- */

static const char *repo_dir(void)
{
    const char *env = getenv("LEDGERD_SOURCE_DIR");
    return env != NULL && env[0] != '\0' ? env : LEDGERD_SOURCE_DIR_DEFAULT;
}

static void path_join(char *out, const char *a, const char *b, const char *c)
{
    int n = c != NULL ? snprintf(out, PATH_BYTES, "%s/%s/%s", a, b, c)
                      : snprintf(out, PATH_BYTES, "%s/%s", a, b);
    assert_true(n > 0 && n < PATH_BYTES);
}

static char *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1024;
    size_t n = 0;
    char *data = malloc(cap);
    assert_non_null(data);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            data = realloc(data, cap);
            assert_non_null(data);
        }
        size_t r = fread(data + n, 1, cap - n, f);
        if (r == 0) {
            break;
        }
        n += r;
    }
    fclose(f);
    data = realloc(data, n + 1);
    assert_non_null(data);
    data[n] = '\0';
    *len = n;
    return data;
}

static void file_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put(const struct scratch *s, const char *backend, const char *file, const char *text)
{
    char path[PATH_BYTES];
    path_join(path, s->root, backend, file);
    file_write_bytes(path, text, strlen(text));
}

static bool exists(const struct scratch *s, const char *backend, const char *file)
{
    char path[PATH_BYTES];
    struct stat st;
    path_join(path, s->root, backend, file);
    return lstat(path, &st) == 0;
}

static void remove_file(const struct scratch *s, const char *backend, const char *file)
{
    char path[PATH_BYTES];
    path_join(path, s->root, backend, file);
    assert_int_equal(unlink(path), 0);
}

/* LF line ends turned into CRLF (mode 1) or CR (mode 2); 0 copies as is. */
static char *line_ends(const char *in, size_t len, int mode, size_t *out_len)
{
    char *out = malloc(2 * len + 1);
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && mode == 1) {
            out[n++] = '\r';
            out[n++] = '\n';
        } else if (in[i] == '\n' && mode == 2) {
            out[n++] = '\r';
        } else {
            out[n++] = in[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* Copies the files of from_dir ending in suffix into to_dir, with line ends per mode. */
static void dir_copy(const char *from_dir, const char *to_dir, const char *suffix, int mode)
{
    DIR *d = opendir(from_dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        size_t sl = strlen(suffix);
        if (nl < sl || strcmp(de->d_name + nl - sl, suffix) != 0) {
            continue;
        }
        char from[PATH_BYTES];
        char to[PATH_BYTES];
        path_join(from, from_dir, de->d_name, NULL);
        path_join(to, to_dir, de->d_name, NULL);
        size_t len = 0;
        size_t out_len = 0;
        char *data = file_read(from, &len);
        char *out = line_ends(data, len, mode, &out_len);
        file_write_bytes(to, out, out_len);
        free(out);
        free(data);
    }
    closedir(d);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A reviewed copy of the repository's migrations (both backends, ledgerd.sum written). */
static int scratch_setup(void **state)
{
    struct scratch *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    memcpy(s->top, "/tmp/test_migset.XXXXXX", sizeof("/tmp/test_migset.XXXXXX"));
    assert_non_null(mkdtemp(s->top));
    path_join(s->root, s->top, "migrations", NULL);
    assert_int_equal(mkdir(s->root, 0755), 0);
    const char *backends[] = {"sqlite", "postgres"};
    for (size_t b = 0; b < 2; b++) {
        char from[PATH_BYTES];
        char to[PATH_BYTES];
        path_join(from, repo_dir(), "migrations", backends[b]);
        path_join(to, s->root, backends[b], NULL);
        assert_int_equal(mkdir(to, 0755), 0);
        dir_copy(from, to, ".sql", 0);
        buf_reset(&err);
        assert_int_equal(migset_sum_write(s->root, backends[b], &err), 0);
    }
    buf_reset(&err);
    *state = s;
    return 0;
}

static int scratch_teardown(void **state)
{
    struct scratch *s = *state;
    nftw(s->top, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
    buf_reset(&err);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Expectations.
 * ------------------------------------------------------------------------------------- */

/* rc is want and err holds every one of the NULL-terminated parts. */
static void expect_fail(int rc, int want, ...)
{
    const char *text = err.data != NULL ? err.data : "";
    if (rc != want) {
        fail_msg("rc %d, want %d (err: %s)", rc, want, text);
    }
    va_list ap;
    va_start(ap, want);
    for (const char *part = va_arg(ap, const char *); part != NULL;
         part = va_arg(ap, const char *)) {
        if (strstr(text, part) == NULL) {
            va_end(ap);
            fail_msg("err \"%s\" lacks \"%s\"", text, part);
        }
    }
    va_end(ap);
    assert_null(strchr(text, '\n'));
    buf_reset(&err);
}

static int load(const struct scratch *s, const char *backend, unsigned flags)
{
    struct migset set;
    buf_reset(&err);
    int rc = migset_load_dir(s->root, backend, flags, &set, &err);
    if (rc == 0) {
        for (size_t i = 0; i < set.n; i++) {
            assert_int_equal(set.files[i].version, i + 1);
        }
    } else {
        assert_int_equal(set.n, 0);
        assert_null(set.files);
    }
    migset_free(&set);
    return rc;
}

static void expect_ok(const struct scratch *s, const char *backend)
{
    int rc = load(s, backend, MIGSET_CHECK_SUM);
    if (rc != 0) {
        fail_msg("load %s: %d %s", backend, rc, err.data != NULL ? err.data : "");
    }
}

/* ---------------------------------------------------------------------------------------
 * The repository and the built-in copy.
 * ------------------------------------------------------------------------------------- */

static void test_committed_sums_verify(void **state)
{
    (void)state;
    const char *backends[] = {"sqlite", "postgres"};
    char root[PATH_BYTES];
    path_join(root, repo_dir(), "migrations", NULL);
    for (size_t b = 0; b < 2; b++) {
        struct migset set;
        int rc = migset_load_dir(root, backends[b], MIGSET_CHECK_SUM, &set, &err);
        if (rc != 0) {
            fail_msg("%s: %s", backends[b], err.data);
        }
        assert_true(set.n >= 2);
        assert_string_equal(set.files[0].file, "0001_ledger.sql");
        assert_string_equal(set.files[0].name, "ledger");
        assert_string_equal(set.files[1].file, "0002_auth_audit.sql");
        /* The committed file is byte for byte what migset_sum_render makes of the directory. */
        struct buf text;
        buf_init(&text, LIMIT_MIGRATION_SUM_BYTES_MAX);
        assert_int_equal(migset_sum_render(&set, &text), 0);
        char path[PATH_BYTES];
        path_join(path, root, backends[b], MIGSET_SUM_FILE);
        size_t len = 0;
        char *committed = file_read(path, &len);
        assert_int_equal(len, text.len);
        assert_memory_equal(committed, text.data, len);
        free(committed);
        buf_release(&text);
        migset_free(&set);
    }
}

static void test_builtin_equals_directory(void **state)
{
    (void)state;
    const char *backends[] = {"sqlite", "postgres"};
    char root[PATH_BYTES];
    path_join(root, repo_dir(), "migrations", NULL);
    for (size_t b = 0; b < 2; b++) {
        struct migset dir;
        struct migset built;
        assert_int_equal(migset_load_dir(root, backends[b], MIGSET_CHECK_SUM, &dir, &err), 0);
        int rc = migset_load_builtin(backends[b], &built, &err);
        if (rc != 0) {
            fail_msg("built-in %s: %s", backends[b], err.data);
        }
        assert_string_equal(built.origin, "built-in");
        assert_string_equal(built.backend, backends[b]);
        assert_int_equal(built.dialect, dir.dialect);
        assert_int_equal(built.n, dir.n);
        assert_string_equal(built.dir_hash, dir.dir_hash);
        for (size_t i = 0; i < dir.n; i++) {
            assert_string_equal(built.files[i].file, dir.files[i].file);
            assert_string_equal(built.files[i].checksum, dir.files[i].checksum);
            assert_int_equal(built.files[i].sql_len, dir.files[i].sql_len);
            assert_memory_equal(built.files[i].sql, dir.files[i].sql, dir.files[i].sql_len);
        }
        migset_free(&built);
        migset_free(&dir);
    }
    struct migset none;
    expect_fail(migset_load_builtin("mysql", &none, &err), -EINVAL, "mysql", NULL);
}

/* ---------------------------------------------------------------------------------------
 * Integrity errors.
 * ------------------------------------------------------------------------------------- */

static void test_sum_write_then_load(void **state)
{
    struct scratch *s = *state;
    expect_ok(s, "sqlite");
    expect_ok(s, "postgres");
    remove_file(s, "sqlite", MIGSET_SUM_FILE);
    char want[PATH_BYTES];
    path_join(want, s->root, "sqlite",
              "ledgerd.sum does not exist: review the migrations, then "
              "run `ledgerd migrate hash`");
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -ENOENT, want, NULL);
    assert_int_equal(load(s, "sqlite", 0), 0); /* `ledgerd migrate hash` still loads */
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    assert_false(exists(s, "sqlite", "ledgerd.sum.tmp"));
    expect_ok(s, "sqlite");
}

static void test_edited_byte(void **state)
{
    struct scratch *s = *state;
    char path[PATH_BYTES];
    path_join(path, s->root, "sqlite", "0001_ledger.sql");
    struct migset before;
    assert_int_equal(migset_load_dir(s->root, "sqlite", 0, &before, &err), 0);
    size_t len = 0;
    char *data = file_read(path, &len);
    assert_memory_equal(data, "-- 0001", 7);
    data[3] = '9'; /* in the opening comment: the file still splits */
    file_write_bytes(path, data, len);
    free(data);
    struct migset after;
    assert_int_equal(migset_load_dir(s->root, "sqlite", 0, &after, &err), 0);
    char want[128];
    snprintf(want, sizeof(want), "(sha256 %.12s != %.12s in ledgerd.sum)", after.files[0].checksum,
             before.files[0].checksum);
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "0001_ledger.sql was edited after it was hashed", want, NULL);
    migset_free(&before);
    migset_free(&after);
    expect_ok(s, "postgres");
}

/* The sum of s/backend with its file lines in the order given, dir hash recomputed. */
static void sum_put_lines(const struct scratch *s, const char *backend, const char *lines)
{
    uint8_t digest[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    assert_int_equal(sha256_digest(lines, strlen(lines), digest), 0);
    sha256_hex(digest, hex);
    char text[4096];
    int n = snprintf(text, sizeof(text), "ledgerd-sum 1\ndir %s\n%s", hex, lines);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    put(s, backend, MIGSET_SUM_FILE, text);
}

static void test_reordered_and_hand_edited(void **state)
{
    struct scratch *s = *state;
    struct migset set;
    assert_int_equal(migset_load_dir(s->root, "sqlite", 0, &set, &err), 0);
    char lines[1024];
    snprintf(lines, sizeof(lines), "%s %s\n%s %s\n", set.files[1].file, set.files[1].checksum,
             set.files[0].file, set.files[0].checksum);
    /* Swapped with the dir hash left alone: the sum was edited by hand. */
    char text[2048];
    snprintf(text, sizeof(text), "ledgerd-sum 1\ndir %s\n%s", set.dir_hash, lines);
    put(s, "sqlite", MIGSET_SUM_FILE, text);
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "ledgerd.sum was edited by hand or merged: its dir hash does not match its "
                "lines; review, then run `ledgerd migrate hash`",
                NULL);
    /* Swapped with the dir hash recomputed: the history was reordered. */
    sum_put_lines(s, "sqlite", lines);
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "ledgerd.sum lists 0002_auth_audit.sql before 0001_ledger.sql: the history was "
                "reordered",
                NULL);
    /* A dir hash that is well formed but not the lines'. */
    snprintf(text, sizeof(text), "ledgerd-sum 1\ndir %064d\n%s %s\n%s %s\n", 0, set.files[0].file,
             set.files[0].checksum, set.files[1].file, set.files[1].checksum);
    put(s, "sqlite", MIGSET_SUM_FILE, text);
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL, "ledgerd.sum was edited by hand",
                NULL);
    migset_free(&set);
}

static void test_deleted_and_added(void **state)
{
    struct scratch *s = *state;
    remove_file(s, "postgres", "0002_auth_audit.sql");
    expect_fail(load(s, "postgres", MIGSET_CHECK_SUM), -EINVAL,
                "0002_auth_audit.sql is listed in ledgerd.sum but does not exist", NULL);
    put(s, "sqlite", "0003_fees.sql", "ALTER TABLE accounts ADD COLUMN fee_code INTEGER;\n");
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "0003_fees.sql is not in ledgerd.sum: review it, then run `ledgerd migrate hash`",
                NULL);
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    expect_ok(s, "sqlite");
    /* Gone beats unlisted: the sum's own problem is reported first. */
    remove_file(s, "sqlite", "0003_fees.sql");
    put(s, "sqlite", "0003_limits.sql", "SELECT 1;\n");
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "0003_fees.sql is listed in ledgerd.sum but does not exist", NULL);
}

/* ---------------------------------------------------------------------------------------
 * Names and numbering.
 * ------------------------------------------------------------------------------------- */

static void test_same_number(void **state)
{
    struct scratch *s = *state;
    put(s, "sqlite", "0003_limits.sql", "SELECT 1;\n");
    put(s, "sqlite", "0003_fees.sql", "SELECT 2;\n");
    const char *want = "0003_fees.sql and 0003_limits.sql have the same number 0003 (two "
                       "branches added a migration each): renumber the later one and run "
                       "`ledgerd migrate hash`";
    /* Before the sum is looked at, and also when the sum is not checked. */
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL, want, NULL);
    expect_fail(load(s, "sqlite", 0), -EINVAL, want, NULL);
    expect_fail(migset_sum_write(s->root, "sqlite", &err), -EINVAL, want, NULL);
    /* At the longest names the reason is cut to one message, and always arrives. */
    remove_file(s, "sqlite", "0003_limits.sql");
    remove_file(s, "sqlite", "0003_fees.sql");
    char name[LIMIT_MIGRATION_FILE_NAME_LEN_MAX + 1];
    for (char c = 'a'; c <= 'b'; c++) {
        memset(name, c, sizeof(name));
        memcpy(name, "0003_", 5);
        memcpy(name + sizeof(name) - 5, ".sql", 5);
        put(s, "sqlite", name, "SELECT 1;\n");
    }
    struct buf small;
    buf_init(&small, LIMIT_MIGRATION_MESSAGE_LEN);
    struct migset set;
    assert_int_equal(migset_load_dir(s->root, "sqlite", 0, &set, &small), -EINVAL);
    assert_non_null(small.data);
    assert_int_equal(small.len, LIMIT_MIGRATION_MESSAGE_LEN - 1);
    assert_memory_equal(small.data, "0003_aaaa", 9);
    assert_string_equal(small.data + small.len - 3, "...");
    buf_release(&small);
    /* And an err with little room still gets the start of it. */
    buf_init(&small, 16);
    assert_int_equal(migset_load_dir(s->root, "sqlite", 0, &set, &small), -EINVAL);
    assert_string_equal(small.data, "0003_aaaaaaaaaaa");
    buf_release(&small);
}

static void test_gap(void **state)
{
    struct scratch *s = *state;
    put(s, "sqlite", "0004_x.sql", "SELECT 1;\n");
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "0004_x.sql follows 0002_auth_audit.sql: 0003 is missing", NULL);
    remove_file(s, "postgres", "0001_ledger.sql");
    expect_fail(load(s, "postgres", 0), -EINVAL,
                "0002_auth_audit.sql is the first migration: 0001 is missing", NULL);
}

static void test_bad_names(void **state)
{
    struct scratch *s = *state;
    static const struct {
        const char *file;
        const char *shown;
    } bad[] = {
        {"0003_Fees.sql", "\"0003_Fees.sql\" is not a migration file name"},
        {"003_fees.sql", "\"003_fees.sql\""},
        {"00003_fees.sql", "\"00003_fees.sql\""},
        {"0003-fees.sql", "\"0003-fees.sql\""},
        {"0003_.sql", "\"0003_.sql\""},
        {"0003_fe es.sql", "\"0003_fe es.sql\""},
        {"0003_fees.sql.sql", "\"0003_fees.sql.sql\""},
        {"abcd_fees.sql", "\"abcd_fees.sql\""},
        {".sql", "\".sql\""},
        {"0003_fe\nes.sql", "\"0003_fe\\x0aes.sql\""},
        {"0003_fe\"es.sql", "\"0003_fe\\x22es.sql\""},
        {"0003_"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sql",
         "is not a migration file name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put(s, "sqlite", bad[i].file, "SELECT 1;\n");
        expect_fail(load(s, "sqlite", 0), -EINVAL, bad[i].shown, NULL);
        expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL, bad[i].shown, NULL);
        remove_file(s, "sqlite", bad[i].file);
    }
    put(s, "sqlite", "0000_zero.sql", "SELECT 1;\n");
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0000_zero.sql: migration numbers start at 0001",
                NULL);
    remove_file(s, "sqlite", "0000_zero.sql");
    /* The longest name (64 characters) is a good one. */
    const char *longest =
        "0003_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_9.sql";
    assert_int_equal(strlen(longest), LIMIT_MIGRATION_FILE_NAME_LEN_MAX);
    put(s, "sqlite", longest, "SELECT 1;\n");
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    expect_ok(s, "sqlite");
}

static void test_ignored_files(void **state)
{
    struct scratch *s = *state;
    put(s, "sqlite", "README.md", "not SQL at all '\n");
    put(s, "sqlite", "schema.sql", "CREATE TABLE 'unterminated\n");
    put(s, "sqlite", "notes.txt", "x");
    put(s, "sqlite", "0003_later.sql.orig", "x");
    put(s, "sqlite", "ledgerd.sum.tmp", "garbage");
    char dir[PATH_BYTES];
    path_join(dir, s->root, "sqlite", "sub.d");
    assert_int_equal(mkdir(dir, 0755), 0);
    expect_ok(s, "sqlite");
    struct migset set;
    assert_int_equal(migset_load_dir(s->root, "sqlite", MIGSET_CHECK_SUM, &set, &err), 0);
    assert_int_equal(set.n, 2);
    migset_free(&set);
}

static void test_too_many_files(void **state)
{
    struct scratch *s = *state;
    char dir[PATH_BYTES];
    path_join(dir, s->root, "many", NULL);
    assert_int_equal(mkdir(dir, 0755), 0);
    for (int i = 1; i <= LIMIT_MIGRATION_FILES_MAX + 1; i++) {
        char path[PATH_BYTES];
        int n = snprintf(path, sizeof(path), "%s/%04d_m%d.sql", dir, i % 10000, i);
        assert_true(n > 0 && n < PATH_BYTES);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    struct migset set;
    /* "many" is not a backend: the name is checked first. */
    expect_fail(migset_load_dir(s->root, "many", 0, &set, &err), -EINVAL, "unknown backend", NULL);
    char sqlite_dir[PATH_BYTES];
    path_join(sqlite_dir, s->root, "sqlite", NULL);
    char moved[PATH_BYTES];
    path_join(moved, s->root, "sqlite.orig", NULL);
    assert_int_equal(rename(sqlite_dir, moved), 0);
    assert_int_equal(rename(dir, sqlite_dir), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "more than 9999 migration files", NULL);
}

/* ---------------------------------------------------------------------------------------
 * Hostile content.
 * ------------------------------------------------------------------------------------- */

static void test_non_regular_files(void **state)
{
    struct scratch *s = *state;
    char path[PATH_BYTES];
    char fifo[PATH_BYTES];
    /* A FIFO would block a reader that opened it: it must be refused, not read. */
    path_join(path, s->root, "sqlite", "0003_fifo.sql");
    assert_int_equal(mkfifo(path, 0644), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql is not a regular file", NULL);
    assert_int_equal(unlink(path), 0);
    /* The same through a symbolic link. */
    path_join(fifo, s->top, "fifo", NULL);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(symlink(fifo, path), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql is not a regular file", NULL);
    assert_int_equal(unlink(path), 0);
    /* A device. */
    assert_int_equal(symlink("/dev/zero", path), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql is not a regular file", NULL);
    assert_int_equal(unlink(path), 0);
    /* A directory. */
    assert_int_equal(mkdir(path, 0755), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql is not a regular file", NULL);
    assert_int_equal(rmdir(path), 0);
    /* A dangling link and a loop. */
    assert_int_equal(symlink("/nonexistent/ledgerd", path), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql", NULL);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("0003_fifo.sql", path), 0);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_fifo.sql", NULL);
    assert_int_equal(unlink(path), 0);
    /* A link to a regular file is followed. */
    char target[PATH_BYTES];
    path_join(target, s->top, "real.sql", NULL);
    file_write_bytes(target, "SELECT 1;\n", 10);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    expect_ok(s, "sqlite");
    /* The integrity file itself as a FIFO. */
    path_join(path, s->root, "postgres", MIGSET_SUM_FILE);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0644), 0);
    expect_fail(load(s, "postgres", MIGSET_CHECK_SUM), -EINVAL, "ledgerd.sum is not a regular file",
                NULL);
}

static void test_oversized_and_nul(void **state)
{
    struct scratch *s = *state;
    char path[PATH_BYTES];
    path_join(path, s->root, "sqlite", "0003_big.sql");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)LIMIT_MIGRATION_FILE_BYTES_MAX + 1), 0);
    close(fd);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_big.sql is over 4194304 bytes", NULL);
    assert_int_equal(unlink(path), 0);

    path_join(path, s->root, "sqlite", "0003_nul.sql");
    file_write_bytes(path, "SELECT 1;\n\0SELECT 2;\n", 21);
    expect_fail(load(s, "sqlite", 0), -EINVAL, "0003_nul.sql has a NUL byte at offset 10", NULL);
    assert_int_equal(unlink(path), 0);

    /* An integrity file over its limit is malformed, not read. */
    path_join(path, s->root, "postgres", MIGSET_SUM_FILE);
    assert_int_equal(truncate(path, (off_t)LIMIT_MIGRATION_SUM_BYTES_MAX + 1), 0);
    expect_fail(load(s, "postgres", MIGSET_CHECK_SUM), -EINVAL, "ledgerd.sum is over", NULL);
}

static void test_unsplittable_file(void **state)
{
    struct scratch *s = *state;
    put(s, "postgres", "0003_broken.sql", "INSERT INTO t VALUES ('never closed);\n");
    expect_fail(load(s, "postgres", 0), -EINVAL, "0003_broken.sql: ", NULL);
    expect_fail(migset_sum_write(s->root, "postgres", &err), -EINVAL, "0003_broken.sql: ", NULL);
    assert_false(exists(s, "postgres", "ledgerd.sum.tmp"));
}

static void test_missing_directory_and_backend(void **state)
{
    struct scratch *s = *state;
    struct migset set;
    expect_fail(migset_load_dir(s->root, "mysql", 0, &set, &err), -EINVAL,
                "unknown backend \"mysql\"", NULL);
    char gone[PATH_BYTES];
    path_join(gone, s->top, "nowhere", NULL);
    expect_fail(migset_load_dir(gone, "sqlite", 0, &set, &err), -ENOENT, "does not exist", NULL);
    enum sql_dialect d;
    assert_true(migset_backend_dialect("sqlite", &d));
    assert_int_equal(d, SQL_DIALECT_SQLITE);
    assert_true(migset_backend_dialect("postgres", &d));
    assert_int_equal(d, SQL_DIALECT_POSTGRES);
    assert_false(migset_backend_dialect("SQLITE", &d));
    assert_false(migset_backend_dialect("", &d));
}

/* ---------------------------------------------------------------------------------------
 * Line ends.
 * ------------------------------------------------------------------------------------- */

static void test_crlf_and_cr_copies_hash_alike(void **state)
{
    struct scratch *s = *state;
    struct migset lf;
    assert_int_equal(migset_load_dir(s->root, "postgres", MIGSET_CHECK_SUM, &lf, &err), 0);
    for (int mode = 1; mode <= 2; mode++) {
        /* <top>/crlfN/postgres/: a CRLF (or CR) copy of postgres/, ledgerd.sum included. */
        char root[PATH_BYTES];
        char from[PATH_BYTES];
        char to[PATH_BYTES];
        path_join(root, s->top, mode == 1 ? "crlf" : "cr", NULL);
        assert_int_equal(mkdir(root, 0755), 0);
        path_join(from, s->root, "postgres", NULL);
        path_join(to, root, "postgres", NULL);
        assert_int_equal(mkdir(to, 0755), 0);
        dir_copy(from, to, ".sql", mode);
        dir_copy(from, to, ".sum", mode);
        struct migset other;
        int rc = migset_load_dir(root, "postgres", MIGSET_CHECK_SUM, &other, &err);
        if (rc != 0) {
            fail_msg("mode %d: %s", mode, err.data);
        }
        assert_int_equal(other.n, lf.n);
        assert_string_equal(other.dir_hash, lf.dir_hash);
        for (size_t i = 0; i < lf.n; i++) {
            assert_string_equal(other.files[i].checksum, lf.files[i].checksum);
            assert_int_equal(other.files[i].sql_len, lf.files[i].sql_len);
            assert_memory_equal(other.files[i].sql, lf.files[i].sql, lf.files[i].sql_len);
            assert_null(memchr(other.files[i].sql, '\r', other.files[i].sql_len));
        }
        migset_free(&other);
    }
    migset_free(&lf);
}

static void test_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"", ""},           {"a", "a"},         {"a\r\nb", "a\nb"},       {"a\rb", "a\nb"},
        {"\r\r\n", "\n\n"}, {"\n\r", "\n\n"},   {"a\r\n\r\nb", "a\n\nb"}, {"\r", "\n"},
        {"x\r\r", "x\n\n"}, {"\r\n\n", "\n\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        size_t out_len = 0;
        assert_int_equal(migset_normalize(cases[i].in, strlen(cases[i].in), &out, &out_len), 0);
        assert_int_equal(out_len, strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
        free(out);
    }
}

/* ---------------------------------------------------------------------------------------
 * The integrity file's format.
 * ------------------------------------------------------------------------------------- */

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEAD "ledgerd-sum 1\ndir " H64 "\n"

static void test_sum_parse_good(void **state)
{
    (void)state;
    struct migset_sum sum;
    const char *text = HEAD "0001_ledger.sql " H64 "\n0002_auth_audit.sql " H64 "\n";
    assert_int_equal(migset_sum_parse(text, strlen(text), &sum, &err), 0);
    assert_string_equal(sum.dir_hash, H64);
    assert_int_equal(sum.n, 2);
    assert_string_equal(sum.entries[1].file, "0002_auth_audit.sql");
    assert_string_equal(sum.entries[1].hash, H64);
    migset_sum_free(&sum);
    /* No final LF, and CRLF line ends. */
    const char *crlf = "ledgerd-sum 1\r\ndir " H64 "\r\n0001_a.sql " H64;
    assert_int_equal(migset_sum_parse(crlf, strlen(crlf), &sum, &err), 0);
    assert_int_equal(sum.n, 1);
    migset_sum_free(&sum);
    /* No files at all. */
    assert_int_equal(migset_sum_parse(HEAD, strlen(HEAD), &sum, &err), 0);
    assert_int_equal(sum.n, 0);
    migset_sum_free(&sum);
}

static void test_sum_parse_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"", "ledgerd.sum line 1: expected \"ledgerd-sum 1\""},
        {"ledgerd-sum 2\ndir " H64 "\n", "ledgerd.sum line 1: expected \"ledgerd-sum 1\""},
        {"ledgerd-sum 1\n", "ledgerd.sum line 2: expected \"dir <sha256 hex>\""},
        {"ledgerd-sum 1\nsum " H64 "\n", "ledgerd.sum line 2: expected \"dir <sha256 hex>\""},
        {"ledgerd-sum 1 \ndir " H64 "\n", "ledgerd.sum line 1: has trailing whitespace"},
        {"ledgerd-sum 1\ndir " H64 "a\n", "ledgerd.sum line 2: the hash must be 64 hex digits"},
        {"ledgerd-sum 1\ndir " H64 " x\n", "ledgerd.sum line 2: has an extra field"},
        {HEAD "0001_a.sql 0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef\n",
         "ledgerd.sum line 3: the hash is not hex"},
        {HEAD "0001_a.sql 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n",
         "ledgerd.sum line 3: the hash must be lower-case hex"},
        {HEAD "0001_a.sql 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n",
         "ledgerd.sum line 3: the hash must be 64 hex digits, not 63"},
        {HEAD "0001_a.sql \n", "ledgerd.sum line 3: has trailing whitespace"},
        {HEAD "0001_a.sql\n", "ledgerd.sum line 3: expected \"<file> <sha256 hex>\""},
        {HEAD "0001_a.sql " H64 " extra\n", "ledgerd.sum line 3: has an extra field"},
        {HEAD "0001_a.sql  " H64 "\n", "ledgerd.sum line 3: has an extra field"},
        {HEAD "0001_a.sql " H64 " \n", "ledgerd.sum line 3: has trailing whitespace"},
        {HEAD "0001_a.sql " H64 "\t\n", "ledgerd.sum line 3: has trailing whitespace"},
        {HEAD "\n0001_a.sql " H64 "\n", "ledgerd.sum line 3: is blank"},
        {HEAD "0001_a.sql " H64 "\n\n", "ledgerd.sum line 4: is blank"},
        {HEAD "0001_a.sql " H64 "\n0002_b.sql " H64 "\n0001_a.sql " H64 "\n",
         "ledgerd.sum line 5: 0001_a.sql is listed twice (first on line 3)"},
        {HEAD "0001_"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sql " H64 "\n",
         "ledgerd.sum line 3: \"0001_aaaa"},
        {HEAD "0001_A.sql " H64 "\n", "ledgerd.sum line 3: \"0001_A.sql\" is not a migration"},
        {HEAD "0000_a.sql " H64 "\n", "ledgerd.sum line 3: \"0000_a.sql\" is not a migration"},
        {HEAD "# 0001_a.sql " H64 "\n", "ledgerd.sum line 3: has an extra field"},
        {HEAD "0001_a.sql\t" H64 "\n", "ledgerd.sum line 3: expected"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct migset_sum sum;
        size_t len = strlen(cases[i].text);
        buf_reset(&err);
        int rc = migset_sum_parse(cases[i].text, len, &sum, &err);
        if (rc != -EINVAL || err.data == NULL || strstr(err.data, cases[i].want) == NULL) {
            fail_msg("case %zu: rc %d err \"%s\", want \"%s\"", i, rc,
                     err.data != NULL ? err.data : "", cases[i].want);
        }
        assert_null(sum.entries);
        assert_int_equal(sum.n, 0);
    }
    buf_reset(&err);
    /* A NUL byte. */
    static const char nul[] = "ledgerd-sum 1\ndir " H64 "\0\n";
    struct migset_sum sum;
    expect_fail(migset_sum_parse(nul, sizeof(nul) - 1, &sum, &err), -EINVAL,
                "ledgerd.sum line 2: the hash is not hex", NULL);
    /* Over the size limit. */
    size_t big_len = LIMIT_MIGRATION_SUM_BYTES_MAX + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'a', big_len);
    expect_fail(migset_sum_parse(big, big_len, &sum, &err), -EINVAL, "ledgerd.sum is over", NULL);
    free(big);
}

static void test_malformed_sum_through_load(void **state)
{
    struct scratch *s = *state;
    char path[PATH_BYTES];
    path_join(path, s->root, "sqlite", MIGSET_SUM_FILE);
    size_t len = 0;
    char *good = file_read(path, &len);
    /* A trailing space after the last hash. */
    char *bad = malloc(len + 2);
    assert_non_null(bad);
    memcpy(bad, good, len - 1);
    memcpy(bad + len - 1, " \n", 2);
    file_write_bytes(path, bad, len + 1);
    expect_fail(load(s, "sqlite", MIGSET_CHECK_SUM), -EINVAL,
                "ledgerd.sum line 4: has trailing whitespace", NULL);
    /* Without its final LF it is accepted. */
    file_write_bytes(path, good, len - 1);
    expect_ok(s, "sqlite");
    free(bad);
    free(good);
}

static void test_render_parses_back(void **state)
{
    struct scratch *s = *state;
    struct migset set;
    assert_int_equal(migset_load_dir(s->root, "postgres", 0, &set, &err), 0);
    struct buf text;
    buf_init(&text, LIMIT_MIGRATION_SUM_BYTES_MAX);
    assert_int_equal(buf_append_str(&text, "prefix:"), 0);
    assert_int_equal(migset_sum_render(&set, &text), 0);
    assert_memory_equal(text.data, "prefix:ledgerd-sum 1\ndir ", 25);
    assert_int_equal(text.data[text.len - 1], '\n');
    struct migset_sum sum;
    assert_int_equal(migset_sum_parse(text.data + 7, text.len - 7, &sum, &err), 0);
    assert_string_equal(sum.dir_hash, set.dir_hash);
    assert_int_equal(sum.n, set.n);
    for (size_t i = 0; i < set.n; i++) {
        assert_string_equal(sum.entries[i].file, set.files[i].file);
        assert_string_equal(sum.entries[i].hash, set.files[i].checksum);
    }
    migset_sum_free(&sum);
    /* A buffer too small is left as it was. */
    struct buf small;
    buf_init(&small, 100);
    assert_int_equal(buf_append_str(&small, "kept"), 0);
    assert_int_equal(migset_sum_render(&set, &small), -ENOSPC);
    assert_string_equal(small.data, "kept");
    buf_release(&small);
    buf_release(&text);
    migset_free(&set);
}

/* ---------------------------------------------------------------------------------------
 * A new migration.
 * ------------------------------------------------------------------------------------- */

static const char header_common[] =
    "--\n"
    "-- Author: Ada Lovelace <ada@example.com>, 2023-11-14.\n"
    "-- Kind: expand | contract (keep one). An expand migration only adds (new tables, nullable\n"
    "-- columns or columns with a default, indexes) and is safe while the previous version of\n"
    "-- ledgerd still runs; a contract migration removes what no running version uses any more.\n"
    "-- A destructive statement needs a line \"-- ledgerd:destructive <rule>: <reason>\" and\n"
    "-- `ledgerd migrate up --allow-destructive`. See docs/operations/migrations.md.\n";

static void expect_header(const struct scratch *s, const char *backend, const char *file,
                          const char *first_line)
{
    char path[PATH_BYTES];
    path_join(path, s->root, backend, file);
    size_t len = 0;
    char *got = file_read(path, &len);
    char want[4096];
    int n = snprintf(want, sizeof(want), "%s\n%s%s", first_line, header_common,
                     strcmp(backend, "postgres") == 0
                         ? "-- PostgreSQL: start with SET lock_timeout = '5s'; build indexes on "
                           "existing tables with CREATE INDEX CONCURRENTLY in a file of its own "
                           "marked -- ledgerd:no-transaction.\n"
                         : "");
    assert_true(n > 0 && (size_t)n < sizeof(want));
    assert_string_equal(got, want);
    free(got);
}

static void test_new_creates_in_both(void **state)
{
    struct scratch *s = *state;
    struct buf created;
    buf_init(&created, 8192);
    int rc = migset_new(s->root, "fee_codes", "Ada Lovelace <ada@example.com>", NOW_UNIX_MS,
                        &created, &err);
    if (rc != 0) {
        fail_msg("new: %s", err.data);
    }
    char want[3 * PATH_BYTES];
    snprintf(want, sizeof(want), "%s/sqlite/0003_fee_codes.sql\n%s/postgres/0003_fee_codes.sql\n",
             s->root, s->root);
    assert_string_equal(created.data, want);
    expect_header(s, "sqlite", "0003_fee_codes.sql",
                  "-- 0003_fee_codes: <what this migration changes and why>");
    expect_header(s, "postgres", "0003_fee_codes.sql",
                  "-- 0003_fee_codes: <what this migration changes and why>");
    /* Both sums were rewritten: the new file is already reviewed. */
    expect_ok(s, "sqlite");
    expect_ok(s, "postgres");
    /* And the next one follows it. */
    buf_reset(&created);
    assert_int_equal(migset_new(s->root, "x", "", NOW_UNIX_MS, &created, &err), 0);
    assert_true(exists(s, "sqlite", "0004_x.sql"));
    assert_true(exists(s, "postgres", "0004_x.sql"));
    buf_release(&created);
}

static void test_new_numbering_across_backends(void **state)
{
    struct scratch *s = *state;
    struct buf created;
    buf_init(&created, 8192);
    /* postgres is one ahead: a new number would leave sqlite with a gap. */
    put(s, "postgres", "0003_pg_only.sql", "SET lock_timeout = '5s';\n");
    assert_int_equal(migset_sum_write(s->root, "postgres", &err), 0);
    expect_fail(migset_new(s->root, "next", "a", NOW_UNIX_MS, &created, &err), -EINVAL,
                "sqlite ends at 0002 but postgres at 0003", NULL);
    assert_false(exists(s, "sqlite", "0004_next.sql"));
    assert_false(exists(s, "postgres", "0004_next.sql"));
    assert_int_equal(created.len, 0);
    /* Level again: the next number is past the highest of both. */
    put(s, "sqlite", "0003_pg_only.sql", "-- nothing to do on SQLite\n");
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    assert_int_equal(migset_new(s->root, "next", "a", NOW_UNIX_MS, &created, &err), 0);
    assert_true(exists(s, "sqlite", "0004_next.sql"));
    assert_true(exists(s, "postgres", "0004_next.sql"));
    /* A backend without a directory is skipped. */
    char dir[PATH_BYTES];
    char moved[PATH_BYTES];
    path_join(dir, s->root, "sqlite", NULL);
    path_join(moved, s->top, "sqlite.away", NULL);
    assert_int_equal(rename(dir, moved), 0);
    buf_reset(&created);
    assert_int_equal(migset_new(s->root, "pg", "a", NOW_UNIX_MS, &created, &err), 0);
    assert_true(exists(s, "postgres", "0005_pg.sql"));
    assert_non_null(strstr(created.data, "/postgres/0005_pg.sql\n"));
    assert_null(strstr(created.data, "sqlite"));
    /* Neither directory: nothing to number. */
    path_join(dir, s->root, "postgres", NULL);
    path_join(moved, s->top, "postgres.away", NULL);
    assert_int_equal(rename(dir, moved), 0);
    expect_fail(migset_new(s->root, "none", "a", NOW_UNIX_MS, &created, &err), -ENOENT, "neither",
                NULL);
    buf_release(&created);
}

static void test_new_refuses_unreviewed(void **state)
{
    struct scratch *s = *state;
    struct buf created;
    buf_init(&created, 8192);
    put(s, "sqlite", "0001_ledger.sql", "-- rewritten\nSELECT 1;\n");
    expect_fail(migset_new(s->root, "fees", "a", NOW_UNIX_MS, &created, &err), -EINVAL,
                "sqlite: 0001_ledger.sql was edited after it was hashed", NULL);
    assert_false(exists(s, "sqlite", "0003_fees.sql"));
    assert_false(exists(s, "postgres", "0003_fees.sql"));
    assert_int_equal(migset_sum_write(s->root, "sqlite", &err), 0);
    /* A missing sum is a refusal too (not "no such directory"). */
    remove_file(s, "postgres", MIGSET_SUM_FILE);
    expect_fail(migset_new(s->root, "fees", "a", NOW_UNIX_MS, &created, &err), -EINVAL,
                "postgres: ", "ledgerd.sum does not exist", NULL);
    assert_false(exists(s, "sqlite", "0003_fees.sql"));
    /* An unlisted file. */
    assert_int_equal(migset_sum_write(s->root, "postgres", &err), 0);
    put(s, "postgres", "0003_draft.sql", "SELECT 1;\n");
    expect_fail(migset_new(s->root, "fees", "a", NOW_UNIX_MS, &created, &err), -EINVAL,
                "postgres: 0003_draft.sql is not in ledgerd.sum", NULL);
    assert_false(exists(s, "sqlite", "0004_fees.sql"));
    assert_int_equal(created.len, 0);
    buf_release(&created);
}

static void test_new_refuses_bad_input(void **state)
{
    struct scratch *s = *state;
    struct buf created;
    buf_init(&created, 8192);
    const char *bad_names[] = {
        "",      "Fees", "fe-es",
        "fe es", "f\n",  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        expect_fail(migset_new(s->root, bad_names[i], "a", NOW_UNIX_MS, &created, &err), -EINVAL,
                    "the migration name must match ^[a-z0-9_]{1,64}$", NULL);
    }
    char author[LIMIT_MIGRATION_AUTHOR_LEN_MAX + 2];
    memset(author, 'a', sizeof(author) - 1);
    author[sizeof(author) - 1] = '\0';
    const char *bad_authors[] = {"Ada\nLovelace", "Ada\rLovelace", "tab\there", "del\x7f", author};
    for (size_t i = 0; i < sizeof(bad_authors) / sizeof(bad_authors[0]); i++) {
        expect_fail(migset_new(s->root, "fees", bad_authors[i], NOW_UNIX_MS, &created, &err),
                    -EINVAL, "the author must be printable", NULL);
    }
    assert_false(exists(s, "sqlite", "0003_fees.sql"));
    /* 128 bytes, UTF-8 included, is an author. */
    author[LIMIT_MIGRATION_AUTHOR_LEN_MAX] = '\0';
    memcpy(author, "Jos\xc3\xa9 ", 6);
    assert_int_equal(migset_new(s->root, "fees", author, NOW_UNIX_MS, &created, &err), 0);
    assert_true(exists(s, "sqlite", "0003_fees.sql"));
    buf_release(&created);
}

int main(void)
{
    buf_init(&err, ERR_BYTES);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_sums_verify),
        cmocka_unit_test(test_builtin_equals_directory),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_sum_parse_good),
        cmocka_unit_test(test_sum_parse_malformed),
        cmocka_unit_test_setup_teardown(test_sum_write_then_load, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_edited_byte, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_reordered_and_hand_edited, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_deleted_and_added, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_same_number, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_gap, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_ignored_files, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_too_many_files, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_non_regular_files, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_and_nul, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_unsplittable_file, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_and_backend, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_crlf_and_cr_copies_hash_alike, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_sum_through_load, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_render_parses_back, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_new_creates_in_both, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_new_numbering_across_backends, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_new_refuses_unreviewed, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_new_refuses_bad_input, scratch_setup,
                                        scratch_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    buf_release(&err);
    return failed;
}
