/*
 * log_file.c — the file sink: appends log lines to LEDGERD_LOG_FILE, rotates it by size and by
 * age, and deletes rotated files past the count and age that retention allows.
 *
 * Only this sink's thread touches the file, and it rotates between two lines, so no line is ever
 * split across files or lost by a rotation. When the directory cannot be written (the rename or
 * the new file fails), lines are dropped and counted rather than held without bound, one error
 * says so, the operation is retried every LOG_FILE_RETRY_MS, and a notice says when lines are
 * written again and how many were lost.
 */
#include "obs/log_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "obs/log_sink.h"

#define US_PER_S 1000000LL
#define NS_PER_MS 1000000LL
/* Names tried when a rotated name is taken (two rotations in one microsecond). */
#define LOG_FILE_NAME_TRIES 16

_Static_assert(1000 < LOG_FILE_SCAN_MAX, "every file LEDGERD_LOG_FILE_KEEP may keep is seen");

/* ===== Rules ===== */

int log_file_rotated_name(const char *base, int64_t unix_us, char *out, size_t out_len)
{
    ASSERT(base != NULL && out != NULL);
    ASSERT(unix_us >= 0);
    time_t secs = (time_t)(unix_us / US_PER_S);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        return -EINVAL;
    }
    int n = snprintf(out, out_len, "%s.%04d%02d%02dT%02d%02d%02d.%06lldZ", base, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long long)(unix_us % US_PER_S));
    if (n < 0 || (size_t)n >= out_len) {
        return -ENAMETOOLONG;
    }
    return 0;
}

/* Reads exactly n digits. */
static bool read_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool log_file_rotated_parse(const char *base, const char *name, int64_t *unix_us)
{
    ASSERT(base != NULL && name != NULL && unix_us != NULL);
    size_t base_len = strlen(base);
    if (strlen(name) != base_len + LOG_FILE_SUFFIX_LEN || memcmp(name, base, base_len) != 0) {
        return false;
    }
    const char *s = name + base_len; /* ".YYYYMMDDTHHMMSS.ffffffZ" */
    int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0, micro = 0;
    if (s[0] != '.' || s[9] != 'T' || s[16] != '.' || s[23] != 'Z' ||
        !read_digits(s + 1, 4, &year) || !read_digits(s + 5, 2, &mon) ||
        !read_digits(s + 7, 2, &day) || !read_digits(s + 10, 2, &hour) ||
        !read_digits(s + 12, 2, &min) || !read_digits(s + 14, 2, &sec) ||
        !read_digits(s + 17, 6, &micro)) {
        return false;
    }
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 59) {
        return false;
    }
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1 || tm.tm_mday != day || tm.tm_mon != mon - 1) {
        return false; /* 31 April: timegm moved it to May */
    }
    *unix_us = (int64_t)secs * US_PER_S + micro;
    return true;
}

bool log_file_rotation_due(uint64_t size_bytes, size_t line_len, uint64_t max_bytes,
                           int64_t opened_unix_us, int64_t now_unix_us, uint32_t max_age_seconds)
{
    if (size_bytes == 0) {
        return false;
    }
    if (size_bytes + line_len > max_bytes) {
        return true;
    }
    return max_age_seconds > 0 &&
           now_unix_us - opened_unix_us >= (int64_t)max_age_seconds * US_PER_S;
}

static int newest_first(const void *a, const void *b)
{
    int64_t x = ((const struct log_file_rotated *)a)->unix_us;
    int64_t y = ((const struct log_file_rotated *)b)->unix_us;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t log_file_retention_select(struct log_file_rotated *files, size_t count, uint32_t keep,
                                 uint32_t retention_seconds, int64_t now_unix_us)
{
    ASSERT(files != NULL || count == 0);
    if (count > 1) {
        qsort(files, count, sizeof(files[0]), newest_first);
    }
    size_t marked = 0;
    int64_t oldest_kept_us = now_unix_us - (int64_t)retention_seconds * US_PER_S;
    for (size_t i = 0; i < count; i++) {
        files[i].remove = i >= keep || (retention_seconds > 0 && files[i].unix_us < oldest_kept_us);
        marked += files[i].remove ? 1 : 0;
    }
    return marked;
}

/* ===== The sink ===== */

struct file_sink {
    char path[PATH_MAX];
    char dir[PATH_MAX];
    char base[NAME_MAX + 1];
    int fd; /* -1 while the file is not open */
    uint64_t size_bytes;
    int64_t opened_unix_us;
    uint64_t max_bytes;
    uint32_t max_age_seconds, keep, retention_seconds;
    bool failing;          /* an error was reported and nothing written since */
    uint64_t failed_lines; /* lines lost while failing */
    int64_t retry_mono_ns; /* no new attempt before this */
    int64_t retention_next_mono_ns;
    struct log_file_rotated scan[LOG_FILE_SCAN_MAX];
    /* Whole lines accepted and not yet written: they go out in one write(2) when the queue is
     * empty, the buffer is full, or the file is about to rotate. */
    size_t pending_len;
    uint64_t pending_lines;
    char pending[LOG_FILE_BATCH_BYTES];
};

static atomic_bool file_reopen_requested;

void log_file_request_reopen(void)
{
    atomic_store(&file_reopen_requested, true);
}

static int64_t now_unix_us(void)
{
    return clock_unix_ns() / 1000;
}

/* First failure after success: one error, then silence until lines are written again. */
static void file_fail(struct file_sink *f, const char *what, int err)
{
    f->retry_mono_ns = clock_mono_ns() + (int64_t)LOG_FILE_RETRY_MS * NS_PER_MS;
    if (f->failing) {
        return;
    }
    f->failing = true;
    char reason[128];
    const char *text = strerror_r(err, reason, sizeof(reason));
    log_sink_report(CONFIG_LOG_ERROR,
                    "file sink: cannot %s %s: %s; log lines are dropped (and counted) until it "
                    "works again, retried every %d ms",
                    what, f->path, text, LOG_FILE_RETRY_MS);
}

static void file_recovered(struct file_sink *f)
{
    if (!f->failing) {
        return;
    }
    f->failing = false;
    uint64_t lost = f->failed_lines;
    f->failed_lines = 0;
    log_sink_report(CONFIG_LOG_WARN, "file sink: writing %s again; %llu line(s) were dropped",
                    f->path, (unsigned long long)lost);
}

static int file_open(struct file_sink *f)
{
    ASSERT(f->fd < 0);
    if (mkdir(f->dir, 0750) != 0 && errno != EEXIST) {
        int err = errno;
        file_fail(f, "create the directory of", err);
        return -err;
    }
    int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        int err = errno;
        file_fail(f, "open", err);
        return -err;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        (void)close(fd);
        file_fail(f, "use (not a regular file)", EINVAL);
        return -EINVAL;
    }
    f->fd = fd;
    f->size_bytes = (uint64_t)st.st_size;
    f->opened_unix_us = now_unix_us();
    struct statx stx;
    if (st.st_size > 0 && statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) == 0 &&
        (stx.stx_mask & STATX_BTIME) != 0) {
        /* A file kept from before a restart is as old as it really is. */
        f->opened_unix_us = (int64_t)stx.stx_btime.tv_sec * US_PER_S + stx.stx_btime.tv_nsec / 1000;
    }
    return 0;
}

static void file_close(struct file_sink *f)
{
    if (f->fd >= 0) {
        (void)close(f->fd);
        f->fd = -1;
    }
}

/* Deletes the rotated files retention no longer allows. */
static void file_retention(struct file_sink *f)
{
    f->retention_next_mono_ns = clock_mono_ns() + (int64_t)LOG_FILE_RETENTION_PASS_MS * NS_PER_MS;
    DIR *d = opendir(f->dir);
    if (d == NULL) {
        return; /* reported by the open or rotation that failed for the same reason */
    }
    size_t count = 0;
    struct dirent *e;
    while (count < LOG_FILE_SCAN_MAX && (e = readdir(d)) != NULL) {
        int64_t us;
        if (log_file_rotated_parse(f->base, e->d_name, &us)) {
            f->scan[count].unix_us = us;
            f->scan[count].remove = false;
            count++;
        }
    }
    (void)closedir(d);
    if (log_file_retention_select(f->scan, count, f->keep, f->retention_seconds, now_unix_us()) ==
        0) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        char name[NAME_MAX + 1], path[PATH_MAX];
        if (!f->scan[i].remove ||
            log_file_rotated_name(f->base, f->scan[i].unix_us, name, sizeof(name)) != 0) {
            continue;
        }
        int n = snprintf(path, sizeof(path), "%s/%s", f->dir, name);
        if (n > 0 && (size_t)n < sizeof(path) && unlink(path) != 0 && errno != ENOENT) {
            log_sink_report(CONFIG_LOG_WARN, "file sink: cannot delete %s: %s", path,
                            strerror(errno));
        }
    }
}

/* Renames the file to its rotated name and opens a new one. The old name missing (deleted
 * from outside) is no failure: a new file is opened. */
static int file_rotate(struct file_sink *f)
{
    int64_t us = now_unix_us();
    int rc = -EEXIST;
    for (int i = 0; i < LOG_FILE_NAME_TRIES && rc == -EEXIST; i++, us++) {
        char name[NAME_MAX + 1], path[PATH_MAX];
        if (log_file_rotated_name(f->base, us, name, sizeof(name)) != 0 ||
            snprintf(path, sizeof(path), "%s/%s", f->dir, name) >= (int)sizeof(path)) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = renameat2(AT_FDCWD, f->path, AT_FDCWD, path, RENAME_NOREPLACE) == 0 ? 0 : -errno;
        if (rc == -EINVAL) { /* the file system knows no RENAME_NOREPLACE */
            rc = access(path, F_OK) == 0 ? -EEXIST : rename(f->path, path) == 0 ? 0 : -errno;
        }
    }
    if (rc != 0 && rc != -ENOENT) {
        file_fail(f, "rotate", -rc);
        return rc;
    }
    file_close(f);
    rc = file_open(f);
    file_retention(f);
    return rc;
}

/* Lines (newlines) in buf[0..len). */
static uint64_t count_lines(const char *buf, size_t len)
{
    uint64_t n = 0;
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++) {
        n++;
    }
    return n;
}

/* Writes the pending lines with one write(2) (more only when the kernel takes part of them) and
 * counts them written or lost. */
static void file_flush(struct file_sink *f)
{
    if (f->pending_len == 0) {
        return;
    }
    size_t done = 0;
    int err = 0;
    while (f->fd >= 0 && done < f->pending_len) {
        ssize_t n = write(f->fd, f->pending + done, f->pending_len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            err = n < 0 ? errno : EIO;
            break;
        }
    }
    f->size_bytes += done;
    uint64_t written = done == f->pending_len ? f->pending_lines : count_lines(f->pending, done);
    if (done < f->pending_len) {
        /* Part of a line may be in the file: start the next line on a line of its own, so the
         * torn one is the only line a reader cannot parse. */
        if (done > 0 && f->pending[done - 1] != '\n') {
            (void)!write(f->fd, "\n", 1);
        }
        file_fail(f, "write", err != 0 ? err : EBADF);
        f->failed_lines += f->pending_lines - written;
        log_count_dropped(LOG_SINK_FILE, f->pending_lines - written);
    } else {
        file_recovered(f);
    }
    log_count_written(LOG_SINK_FILE, written);
    f->pending_len = 0;
    f->pending_lines = 0;
}

static void file_flush_op(void *state)
{
    file_flush(state);
}

/* Takes a reopen asked for by SIGHUP. */
static void file_take_reopen(struct file_sink *f)
{
    if (atomic_exchange(&file_reopen_requested, false)) {
        file_flush(f); /* into the file it was meant for */
        file_close(f);
        f->retry_mono_ns = 0;
    }
}

static int file_write(void *state, const struct log_record *rec, const char *line)
{
    struct file_sink *f = state;
    ASSERT(f != NULL && rec != NULL && line != NULL);
    ASSERT(rec->len <= sizeof(f->pending));
    file_take_reopen(f);
    int64_t mono = clock_mono_ns();
    bool due =
        f->fd >= 0 && log_file_rotation_due(f->size_bytes + f->pending_len, rec->len, f->max_bytes,
                                            f->opened_unix_us, now_unix_us(), f->max_age_seconds);
    if (due || f->fd < 0 || f->pending_len + rec->len > sizeof(f->pending)) {
        file_flush(f); /* the lines before this one belong to the current file */
    }
    if ((due || f->fd < 0) && mono < f->retry_mono_ns) {
        f->failed_lines++;
        return -EIO;
    }
    if ((due && file_rotate(f) != 0) || (f->fd < 0 && file_open(f) != 0)) {
        f->failed_lines++;
        return -EIO;
    }
    memcpy(f->pending + f->pending_len, line, rec->len);
    f->pending_len += rec->len;
    f->pending_lines++;
    return 0;
}

static int64_t file_tick(void *state, int64_t now_mono_ns)
{
    struct file_sink *f = state;
    file_flush(f);
    file_take_reopen(f);
    if (f->fd >= 0) {
        struct stat st;
        if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
            file_close(f); /* deleted from outside: the next line opens a new file */
        } else if (now_mono_ns >= f->retry_mono_ns &&
                   log_file_rotation_due(f->size_bytes, 0, f->max_bytes, f->opened_unix_us,
                                         now_unix_us(), f->max_age_seconds)) {
            (void)file_rotate(f); /* by age, while no line comes */
        }
    }
    if (now_mono_ns >= f->retention_next_mono_ns) {
        file_retention(f);
    }
    return now_mono_ns + (int64_t)LOG_SINK_TICK_MS * NS_PER_MS;
}

static void file_close_sink(void *state, int64_t deadline_mono_ns)
{
    (void)deadline_mono_ns;
    struct file_sink *f = state;
    if (f == NULL) {
        return;
    }
    file_flush(f);
    file_close(f);
    free(f);
}

int log_file_open(const struct config *cfg, void **state)
{
    ASSERT(cfg != NULL && state != NULL);
    struct file_sink *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -ENOMEM;
    }
    f->fd = -1;
    f->max_bytes = cfg->log_file_max_bytes;
    f->max_age_seconds = cfg->log_file_max_age_seconds;
    f->keep = cfg->log_file_keep;
    f->retention_seconds = cfg->log_file_retention_seconds;
    size_t len = strlen(cfg->log_file);
    const char *slash = strrchr(cfg->log_file, '/');
    const char *base = slash != NULL ? slash + 1 : cfg->log_file;
    size_t dir_len = slash == NULL            ? 1
                     : slash == cfg->log_file ? 1
                                              : (size_t)(slash - cfg->log_file);
    if (len >= sizeof(f->path) || strlen(base) + LOG_FILE_SUFFIX_LEN > NAME_MAX) {
        fprintf(stderr, "ledgerd: LEDGERD_LOG_FILE: the path is too long\n");
        free(f);
        return -ENAMETOOLONG;
    }
    memcpy(f->path, cfg->log_file, len + 1);
    memcpy(f->base, base, strlen(base) + 1);
    memcpy(f->dir, slash == NULL ? "." : cfg->log_file, dir_len);
    f->dir[dir_len] = '\0';
    int rc = file_open(f); /* a failure is reported on stderr by file_fail */
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->failing = false;
    file_retention(f);
    *state = f;
    return 0;
}

const struct log_sink_ops log_file_ops = {
    .write = file_write,
    .tick = file_tick,
    .flush = file_flush_op,
    .close = file_close_sink,
    .counts_itself = true,
};
