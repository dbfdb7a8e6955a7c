/*
 * fuzz_scope.c — libFuzzer target for the scope list, role mapping and API key parsers.
 *
 * Each input is parsed as a scope list, as a role mapping (LEDGERD_ROLES) and as an API key.
 * A refusal must carry a short, printable reason (the text ends up in logs and problem details)
 * and leave nothing behind. An accepted scope list holds known scopes only, and its formatting
 * parses back to the same mask. An accepted mapping holds 1..LIMIT_ROLES_MAX unique, valid role
 * names, each granting at least one known scope that lookup returns, and written back out it
 * parses to the same table. An accepted API key is exactly the format.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE with this file,
 * src/auth/scope.c, src/auth/apikey.c, src/core/assert.c and $(pkg-config --cflags --libs gnutls).
 * Seeds: tests/fuzz/corpus/scope/
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "auth/scope.h"
#include "core/assert.h"
#include "core/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scope_roles roles;
static struct scope_roles again;
static char text[LIMIT_ROLES_BYTES_MAX + 1];

static void check_reason(const char *err, size_t err_len)
{
    size_t n = strnlen(err, err_len);
    ASSERT(n > 0 && n < err_len);
    for (size_t i = 0; i < n; i++) {
        ASSERT(err[i] >= 0x20 && err[i] <= 0x7e);
    }
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static void fuzz_list(const char *s, size_t size)
{
    char err[256];
    uint32_t mask = 0xffffffffu;
    if (scope_parse_list(s, size, &mask, err, sizeof(err)) != 0) {
        ASSERT(mask == 0);
        check_reason(err, sizeof(err));
        return;
    }
    ASSERT(size <= LIMIT_SCOPE_LIST_BYTES_MAX);
    ASSERT((mask & ~SCOPE_ALL) == 0);
    char out[SCOPE_TEXT_LEN_MAX + 1];
    ASSERT(scope_format(mask, out, sizeof(out)) == 0);
    uint32_t back = 0;
    ASSERT(scope_parse_list(out, strlen(out), &back, err, sizeof(err)) == 0 && back == mask);
    /* Every scope named in the input is in the mask, and only those. */
    uint32_t named = 0;
    for (uint32_t i = 0; i < SCOPE_COUNT; i++) {
        const char *name = scope_name(1u << i);
        size_t n = strlen(name);
        for (size_t at = 0; at + n <= size; at++) {
            bool starts = at == 0 || s[at - 1] == ',' || s[at - 1] == ' ';
            bool ends = at + n == size || s[at + n] == ',' || s[at + n] == ' ';
            if (starts && ends && memcmp(s + at, name, n) == 0) {
                named |= 1u << i;
            }
        }
    }
    ASSERT(named == mask);
}

static void fuzz_roles(const char *s, size_t size)
{
    char err[256];
    if (scope_roles_parse(s, size, &roles, err, sizeof(err)) != 0) {
        ASSERT(roles.count == 0);
        check_reason(err, sizeof(err));
        return;
    }
    ASSERT(size <= LIMIT_ROLES_BYTES_MAX);
    ASSERT(roles.count >= 1 && roles.count <= LIMIT_ROLES_MAX);
    size_t len = 0;
    for (size_t i = 0; i < roles.count; i++) {
        const struct scope_role *r = &roles.roles[i];
        size_t n = strlen(r->name);
        ASSERT(n >= 1 && n <= LIMIT_ROLE_NAME_LEN_MAX);
        for (size_t k = 0; k < n; k++) {
            char c = r->name[k];
            ASSERT((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                   c == '-');
        }
        ASSERT(r->scopes != 0 && (r->scopes & ~SCOPE_ALL) == 0);
        ASSERT(scope_roles_lookup(&roles, r->name, n) == r->scopes);
        for (size_t j = 0; j < i; j++) {
            ASSERT(strcmp(roles.roles[j].name, r->name) != 0);
        }
        char list[SCOPE_TEXT_LEN_MAX + 1];
        ASSERT(scope_format(r->scopes, list, sizeof(list)) == 0);
        int w = snprintf(text + len, sizeof(text) - len, "%s=%s;", r->name, list);
        ASSERT(w > 0 && (size_t)w < sizeof(text) - len);
        len += (size_t)w;
    }
    /* The canonical form of the table parses to the same table. */
    ASSERT(scope_roles_parse(text, len, &again, err, sizeof(err)) == 0);
    ASSERT(again.count == roles.count);
    for (size_t i = 0; i < roles.count; i++) {
        ASSERT(strcmp(again.roles[i].name, roles.roles[i].name) == 0);
        ASSERT(again.roles[i].scopes == roles.roles[i].scopes);
    }
}

static void fuzz_apikey(const char *s, size_t size)
{
    struct apikey_parsed p;
    if (apikey_parse(s, size, &p) != 0) {
        ASSERT(all_zero(&p, sizeof(p)));
        return;
    }
    ASSERT(size == APIKEY_TOKEN_LEN && memcmp(s, APIKEY_PREFIX, APIKEY_PREFIX_LEN) == 0);
    ASSERT(s[APIKEY_PREFIX_LEN + APIKEY_ID_LEN] == '_');
    ASSERT(strlen(p.id) == APIKEY_ID_LEN &&
           memcmp(p.id, s + APIKEY_PREFIX_LEN, APIKEY_ID_LEN) == 0);
    apikey_parsed_clear(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fuzz_list(s, size);
    fuzz_roles(s, size);
    fuzz_apikey(s, size);
    return 0;
}
