/*
 * scope.c — the scope table, scope lists, and the role mapping.
 *
 * The table below is the one place a scope's name and bit meet. Both parsers read (ptr, len)
 * and never past len; what they quote back in an error is made printable and cut short, since
 * it may come from a client (a JWT "scope" claim) and ends up in logs and problem details.
 */
#include "auth/scope.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/assert.h"

static const struct {
    uint32_t bit;
    const char *name;
} scope_table[SCOPE_COUNT] = {
    {SCOPE_LEDGER_READ, "ledger:read"}, {SCOPE_LEDGER_WRITE, "ledger:write"},
    {SCOPE_FLAGS_READ, "flags:read"},   {SCOPE_FLAGS_WRITE, "flags:write"},
    {SCOPE_AUDIT_READ, "audit:read"},   {SCOPE_ADMIN, "admin"},
};

/* Bytes of a client's text quoted in an error message. */
#define SCOPE_QUOTE_LEN_MAX 40

const char *scope_name(uint32_t bit)
{
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        if (scope_table[i].bit == bit) {
            return scope_table[i].name;
        }
    }
    return NULL;
}

bool scope_allows(uint32_t granted, uint32_t required)
{
    return (granted & required) == required;
}

static void scope_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void scope_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Copies len bytes of s for quoting: bytes outside printable ASCII, quotes and backslashes
 * become '?', and more than SCOPE_QUOTE_LEN_MAX bytes end in "...". */
static void scope_quote(const char *s, size_t len, char out[SCOPE_QUOTE_LEN_MAX + 4])
{
    size_t n = len < SCOPE_QUOTE_LEN_MAX ? len : SCOPE_QUOTE_LEN_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
        if (plain) {
            out[i] = s[i];
        } else {
            out[i] = '?';
        }
    }
    if (len > SCOPE_QUOTE_LEN_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static uint32_t scope_lookup_name(const char *s, size_t len)
{
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        const char *name = scope_table[i].name;
        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            return scope_table[i].bit;
        }
    }
    return 0;
}

static bool scope_is_separator(char c)
{
    return c == ',' || c == ' ';
}

/* Reads the names of a list into *out. On an unknown name returns -EINVAL with the name quoted
 * into bad. */
static int scope_parse_names(const char *s, size_t len, uint32_t *out,
                             char bad[SCOPE_QUOTE_LEN_MAX + 4])
{
    uint32_t mask = 0;
    size_t i = 0;
    while (i < len) {
        if (scope_is_separator(s[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !scope_is_separator(s[i])) {
            i++;
        }
        uint32_t bit = scope_lookup_name(s + start, i - start);
        if (bit == 0) {
            scope_quote(s + start, i - start, bad);
            *out = 0;
            return -EINVAL;
        }
        mask |= bit;
    }
    ASSERT((mask & ~SCOPE_ALL) == 0);
    *out = mask;
    return 0;
}

int scope_parse_list(const char *s, size_t len, uint32_t *out, char *err, size_t err_len)
{
    ASSERT(s != NULL || len == 0);
    ASSERT(out != NULL);
    *out = 0;
    if (len > LIMIT_SCOPE_LIST_BYTES_MAX) {
        scope_err(err, err_len, "the scope list is longer than %d bytes",
                  LIMIT_SCOPE_LIST_BYTES_MAX);
        return -EINVAL;
    }
    char bad[SCOPE_QUOTE_LEN_MAX + 4];
    if (scope_parse_names(s, len, out, bad) != 0) {
        scope_err(err, err_len, "unknown scope \"%s\"", bad);
        return -EINVAL;
    }
    return 0;
}

int scope_format(uint32_t mask, char *out, size_t len)
{
    ASSERT(out != NULL && len > 0);
    ASSERT((mask & ~SCOPE_ALL) == 0);
    size_t used = 0;
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        if ((mask & scope_table[i].bit) == 0) {
            continue;
        }
        size_t n = strlen(scope_table[i].name);
        size_t sep = used > 0 ? 1 : 0;
        if (used + sep + n + 1 > len) {
            out[0] = '\0';
            return -ENOSPC;
        }
        if (sep) {
            out[used++] = ' ';
        }
        memcpy(out + used, scope_table[i].name, n);
        used += n;
    }
    out[used] = '\0';
    ASSERT(used <= SCOPE_TEXT_LEN_MAX);
    return 0;
}

/* ---- roles ---- */

static bool scope_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Narrows [*start, *end) past leading and trailing spaces and tabs. */
static void scope_trim(const char *s, size_t *start, size_t *end)
{
    while (*start < *end && scope_is_blank(s[*start])) {
        (*start)++;
    }
    while (*end > *start && scope_is_blank(s[*end - 1])) {
        (*end)--;
    }
}

static bool scope_role_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > LIMIT_ROLE_NAME_LEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Reads one non-empty entry "name = list" into out->roles[out->count]. */
static int scope_parse_role(const char *s, size_t len, struct scope_roles *out, char *err,
                            size_t err_len)
{
    char quoted[SCOPE_QUOTE_LEN_MAX + 4];
    const char *eq = memchr(s, '=', len);
    if (eq == NULL) {
        scope_quote(s, len, quoted);
        scope_err(err, err_len, "role entry \"%s\" has no '=' (expected role=scope,...)", quoted);
        return -EINVAL;
    }
    size_t name_start = 0;
    size_t name_end = (size_t)(eq - s);
    scope_trim(s, &name_start, &name_end);
    const char *name = s + name_start;
    size_t name_len = name_end - name_start;
    scope_quote(name, name_len, quoted);
    if (!scope_role_name_valid(name, name_len)) {
        scope_err(err, err_len, "role name \"%s\" is not 1-%d characters of a-z 0-9 _ . -", quoted,
                  LIMIT_ROLE_NAME_LEN_MAX);
        return -EINVAL;
    }
    if (scope_roles_lookup(out, name, name_len) != 0) {
        scope_err(err, err_len, "role \"%s\" is defined twice", quoted);
        return -EINVAL;
    }
    if (out->count >= LIMIT_ROLES_MAX) {
        scope_err(err, err_len, "more than %d roles (at role \"%s\")", LIMIT_ROLES_MAX, quoted);
        return -EINVAL;
    }
    uint32_t mask = 0;
    char bad[SCOPE_QUOTE_LEN_MAX + 4];
    size_t list_start = (size_t)(eq - s) + 1;
    if (scope_parse_names(s + list_start, len - list_start, &mask, bad) != 0) {
        scope_err(err, err_len, "role \"%s\": unknown scope \"%s\"", quoted, bad);
        return -EINVAL;
    }
    if (mask == 0) {
        scope_err(err, err_len, "role \"%s\" grants no scope", quoted);
        return -EINVAL;
    }
    struct scope_role *role = &out->roles[out->count];
    memcpy(role->name, name, name_len);
    role->name[name_len] = '\0';
    role->scopes = mask;
    out->count++;
    return 0;
}

int scope_roles_parse(const char *s, size_t len, struct scope_roles *out, char *err, size_t err_len)
{
    ASSERT(s != NULL || len == 0);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (len > LIMIT_ROLES_BYTES_MAX) {
        scope_err(err, err_len, "the role mapping is longer than %d bytes", LIMIT_ROLES_BYTES_MAX);
        return -EINVAL;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *semi = memchr(s + pos, ';', len - pos);
        size_t end = semi != NULL ? (size_t)(semi - s) : len;
        size_t start = pos;
        pos = end + 1;
        scope_trim(s, &start, &end);
        if (start == end) {
            continue;
        }
        if (scope_parse_role(s + start, end - start, out, err, err_len) != 0) {
            memset(out, 0, sizeof(*out));
            return -EINVAL;
        }
    }
    if (out->count == 0) {
        scope_err(err, err_len, "the role mapping defines no role");
        return -EINVAL;
    }
    ASSERT(out->count <= LIMIT_ROLES_MAX);
    return 0;
}

void scope_roles_default(struct scope_roles *out)
{
    char err[128];
    int rc =
        scope_roles_parse(SCOPE_ROLES_DEFAULT, strlen(SCOPE_ROLES_DEFAULT), out, err, sizeof(err));
    ASSERT(rc == 0);
}

uint32_t scope_roles_lookup(const struct scope_roles *r, const char *role, size_t len)
{
    ASSERT(r != NULL && r->count <= LIMIT_ROLES_MAX);
    ASSERT(role != NULL || len == 0);
    for (size_t i = 0; i < r->count; i++) {
        const struct scope_role *x = &r->roles[i];
        if (strlen(x->name) == len && memcmp(x->name, role, len) == 0) {
            ASSERT(x->scopes != 0);
            return x->scopes;
        }
    }
    return 0;
}
