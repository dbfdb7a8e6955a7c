/*
 * problem.c — the one writer of RFC 9457 problem documents.
 *
 * Every string goes through buf_append_json_str, so a detail that quotes client input can
 * never break the document.
 */
#include "core/problem.h"

#include <stdbool.h>
#include <string.h>

#include "core/assert.h"

const char *problem_title(int status)
{
    /* Reason phrases of RFC 9110 §15. */
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Codes are static snake_case identifiers: [a-z0-9_]{1,64}. */
static bool problem_code_valid(const char *code)
{
    size_t len = strlen(code);
    if (len == 0 || len > 64) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = code[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static int append_member_str(struct buf *out, const char *name, const char *value)
{
    int rc = buf_append_char(out, ',');
    if (rc == 0) {
        rc = buf_append_json_str(out, name, strlen(name));
    }
    if (rc == 0) {
        rc = buf_append_char(out, ':');
    }
    if (rc == 0) {
        rc = value != NULL ? buf_append_json_str(out, value, strlen(value))
                           : buf_append_str(out, "null");
    }
    return rc;
}

static int append_errors(struct buf *out, const struct problem_field_error *errors,
                         size_t errors_count)
{
    int rc = buf_append_str(out, ",\"errors\":[");
    for (size_t i = 0; rc == 0 && i < errors_count; i++) {
        const struct problem_field_error *e = &errors[i];
        rc = buf_append_str(out, i == 0 ? "{\"field\":" : ",{\"field\":");
        if (rc == 0) {
            rc = buf_append_json_str(out, e->field, strnlen(e->field, sizeof(e->field)));
        }
        if (rc == 0) {
            rc = append_member_str(out, "code", e->code != NULL ? e->code : "");
        }
        if (rc == 0) {
            rc = buf_append_str(out, ",\"detail\":");
        }
        if (rc == 0) {
            rc = buf_append_json_str(out, e->detail, strnlen(e->detail, sizeof(e->detail)));
        }
        if (rc == 0) {
            rc = buf_append_char(out, '}');
        }
    }
    if (rc == 0) {
        rc = buf_append_char(out, ']');
    }
    return rc;
}

int problem_write(struct buf *out, int status, const char *code, const char *detail,
                  const char *request_id, const struct problem_field_error *errors,
                  size_t errors_count, const char *extra)
{
    ASSERT(out != NULL);
    ASSERT(code != NULL);
    ASSERT(status >= 100 && status <= 599);
    ASSERT(errors != NULL || errors_count == 0);
    ASSERT(problem_code_valid(code));
    const char *title = problem_title(status);
    size_t old_len = out->len;

    int rc = buf_append_str(out, "{\"type\":\"/problems/");
    if (rc == 0) {
        rc = buf_append_str(out, code); /* checked above: needs no escaping in a URI or JSON */
    }
    if (rc == 0) {
        rc = buf_append_char(out, '"');
    }
    if (rc == 0) {
        rc = append_member_str(out, "title", title);
    }
    if (rc == 0) {
        rc = buf_appendf(out, ",\"status\":%d", status);
    }
    if (rc == 0) {
        rc = append_member_str(out, "detail", detail != NULL ? detail : title);
    }
    if (rc == 0) {
        rc = append_member_str(out, "code", code);
    }
    if (rc == 0) {
        rc = append_member_str(out, "request_id", request_id);
    }
    if (rc == 0 && errors_count > 0) {
        rc = append_errors(out, errors, errors_count);
    }
    if (rc == 0 && extra != NULL && extra[0] != '\0') {
        rc = buf_append_char(out, ',');
        if (rc == 0) {
            rc = buf_append_str(out, extra);
        }
    }
    if (rc == 0) {
        rc = buf_append_char(out, '}');
    }
    if (rc != 0 && out->data != NULL) {
        out->len = old_len; /* no half documents */
        out->data[old_len] = '\0';
    }
    return rc;
}
