/*
 * scope.h — scopes (what a credential may do) and roles (named sets of scopes).
 *
 * The scopes are a fixed set, one bit each; every route declares the scope it needs and a
 * credential carries a mask. No scope implies another: `admin` grants the admin routes only,
 * and a role that should also read ledgers says so (explicit is safer than a hierarchy nobody
 * remembers). Roles map names to masks (LEDGERD_ROLES, or the built-in default below).
 * Pure: no I/O, no allocation. See docs/security/auth.md.
 */
#ifndef LEDGERD_AUTH_SCOPE_H
#define LEDGERD_AUTH_SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

enum scope_bit {
    SCOPE_LEDGER_READ = 1u << 0,  /* ledger:read */
    SCOPE_LEDGER_WRITE = 1u << 1, /* ledger:write */
    SCOPE_FLAGS_READ = 1u << 2,   /* flags:read */
    SCOPE_FLAGS_WRITE = 1u << 3,  /* flags:write */
    SCOPE_AUDIT_READ = 1u << 4,   /* audit:read */
    SCOPE_ADMIN = 1u << 5,        /* admin */
};
#define SCOPE_COUNT 6
#define SCOPE_ALL ((uint32_t)((1u << SCOPE_COUNT) - 1))
/* The longest scope_format output, every scope: 64 characters, plus the NUL. */
#define SCOPE_TEXT_LEN_MAX 64

/* The default of LEDGERD_ROLES. */
#define SCOPE_ROLES_DEFAULT                                                                        \
    "reader=ledger:read;"                                                                          \
    "writer=ledger:read,ledger:write;"                                                             \
    "auditor=audit:read;"                                                                          \
    "admin=admin,ledger:read,ledger:write,flags:read,flags:write,audit:read"

/* The name of one scope bit ("ledger:read"), or NULL when bit is not exactly one known scope. */
const char *scope_name(uint32_t bit);

/* True when granted holds every scope of required. */
bool scope_allows(uint32_t granted, uint32_t required);

/* Parses a scope list of len bytes (not NUL-terminated): names separated by commas and/or
 * spaces (RFC 6749 §3.3 uses spaces, the CLI commas); runs of separators, leading and trailing
 * ones count as one. Names are case-sensitive; a name given twice counts once. 0 with the mask
 * in *out — possibly 0 for an empty list: whoever needs at least one scope (the CLI making an
 * API key, a role) checks that. -EINVAL when a name is unknown (err names it, printable and
 * cut to a bounded length) or the list is longer than LIMIT_SCOPE_LIST_BYTES_MAX; *out is 0
 * then. err may be NULL. */
int scope_parse_list(const char *s, size_t len, uint32_t *out, char *err, size_t err_len);

/* Writes the names of mask's scopes, in the order of enum scope_bit, separated by single spaces
 * (the form of an OAuth "scope" value), plus a NUL; "" for 0. 0, or -ENOSPC when len bytes are
 * too few (out is "" then; SCOPE_TEXT_LEN_MAX + 1 always suffice). mask holds known bits only. */
int scope_format(uint32_t mask, char *out, size_t len);

struct scope_role {
    char name[LIMIT_ROLE_NAME_LEN_MAX + 1];
    uint32_t scopes; /* never 0 */
};

struct scope_roles {
    size_t count;
    struct scope_role roles[LIMIT_ROLES_MAX];
};

/* Parses a role mapping of len bytes: `role=scope-list` entries separated by ';', e.g.
 * "reader=ledger:read;writer=ledger:read,ledger:write". Role names match ^[a-z0-9_.-]{1,64}$;
 * spaces and tabs around names are ignored, and so are empty entries (a trailing ';'). The
 * scope list is as for scope_parse_list, without ';'. Refused with -EINVAL and a reason in err
 * naming the role (and scope) at fault: no roles at all, more than LIMIT_ROLES_MAX roles, more
 * than LIMIT_ROLES_BYTES_MAX bytes, a bad or duplicate role name, a missing '=', an unknown
 * scope, or a role granting no scope. On -EINVAL out holds no roles. err may be NULL.
 * The result is read-only afterwards and may be shared by threads. */
int scope_roles_parse(const char *s, size_t len, struct scope_roles *out, char *err,
                      size_t err_len);

/* Fills out with SCOPE_ROLES_DEFAULT. */
void scope_roles_default(struct scope_roles *out);

/* The scopes of the role named by len bytes at role (compared exactly, case-sensitively), or 0
 * when there is no such role. */
uint32_t scope_roles_lookup(const struct scope_roles *r, const char *role, size_t len);

#endif
