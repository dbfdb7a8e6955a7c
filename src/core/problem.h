/*
 * problem.h — RFC 9457 problem documents (application/problem+json).
 *
 * The one writer of error bodies: the HTTP layer sends them (counting and logging once), and the
 * commit worker writes them for ledger refusals that must be stored with an idempotency key.
 */
#ifndef LEDGERD_CORE_PROBLEM_H
#define LEDGERD_CORE_PROBLEM_H

#include <stddef.h>

#include "core/buf.h"

/* One entry of the "errors" member of a validation problem. */
struct problem_field_error {
    char field[96];
    const char *code; /* a static string */
    char detail[160];
};

/* The standard title for an HTTP status ("Unprocessable Content" for 422...). */
const char *problem_title(int status);

/* Writes {"type":"/problems/<code>","title":...,"status":...,"detail":...,"code":...,
 * "request_id":...[,"errors":[...]]} into out (appending). detail may be NULL (then the title is
 * used). errors may be NULL when errors_count is 0. extra, if not NULL, is a JSON fragment of
 * further members (without leading comma), inserted verbatim before the closing brace.
 * Returns 0 or a buf error. */
int problem_write(struct buf *out, int status, const char *code, const char *detail,
                  const char *request_id, const struct problem_field_error *errors,
                  size_t errors_count, const char *extra);

#endif
