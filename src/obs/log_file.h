/*
 * log_file.h — the file sink's rules, apart from its I/O so they can be tested alone: when a
 * file rotates, how a rotated file is named, and which rotated files retention deletes.
 *
 * A rotated file is the log file's name plus a UTC timestamp of the moment it was rotated, in
 * the basic ISO 8601 form with microseconds: ledgerd.log.20260127T060000.123456Z. Names sort
 * in time order, and the age retention uses comes from the name, not from file times that a
 * copy or a backup restore may change.
 */
#ifndef LEDGERD_OBS_LOG_FILE_H
#define LEDGERD_OBS_LOG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ".20260127T060000.123456Z" */
#define LOG_FILE_SUFFIX_LEN 24
/* Rotated files looked at in one retention pass; more are left for the next passes. */
#define LOG_FILE_SCAN_MAX 4096
/* A failed open, rename or write is retried after this long at the soonest. */
#define LOG_FILE_RETRY_MS 1000
/* Lines gathered for one write(2): at most this many bytes (at least one line of
 * LIMIT_LOG_LINE_BYTES_MAX). */
#define LOG_FILE_BATCH_BYTES ((size_t)64 * 1024)
/* Retention runs after every rotation and at least this often. */
#define LOG_FILE_RETENTION_PASS_MS 1000

struct log_file_rotated {
    int64_t unix_us; /* when it was rotated (from its name) */
    bool remove;     /* set by log_file_retention_select */
};

/* Writes base + the suffix for unix_us into out (out_len bytes with the NUL). Returns 0, or
 * -ENAMETOOLONG when it does not fit. */
int log_file_rotated_name(const char *base, int64_t unix_us, char *out, size_t out_len);

/* True when name is base + a well-formed suffix (nothing before or after, a real UTC time);
 * sets *unix_us. Files that merely look alike (ledgerd.log.1, ledgerd.log.<ts>.gz) are not
 * ledgerd's and are never counted or deleted. */
bool log_file_rotated_parse(const char *base, const char *name, int64_t *unix_us);

/* True when a line of line_len bytes must go into a new file: the current one holds something
 * and would pass max_bytes, or is max_age_seconds old (0 = no age rule). An empty file is never
 * rotated, so a line longer than max_bytes still gets written, alone in its file. */
bool log_file_rotation_due(uint64_t size_bytes, size_t line_len, uint64_t max_bytes,
                           int64_t opened_unix_us, int64_t now_unix_us, uint32_t max_age_seconds);

/* Orders files newest first and marks for removal every one past the keep newest, and every
 * one rotated more than retention_seconds before now (0 = no age rule). Returns how many are
 * marked. */
size_t log_file_retention_select(struct log_file_rotated *files, size_t count, uint32_t keep,
                                 uint32_t retention_seconds, int64_t now_unix_us);

#endif
