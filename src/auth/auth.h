/*
 * auth.h — who is calling: `Authorization: Bearer` credentials (an API key or a JWT) turned
 * into a principal with scopes, failed attempts limited per source address, and the key
 * material (JWKS, API-key hashing key) reloaded on SIGHUP or when its file changes.
 *
 * One authenticator per server, shared by every I/O thread. Checking a credential takes no lock
 * shared by all threads except a reader lock around the key material, which a reload holds for
 * the moment it swaps the pointers.
 */
#ifndef LEDGERD_AUTH_AUTH_H
#define LEDGERD_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/limits.h"
#include "store/store.h"

struct sockaddr;

enum auth_status {
    AUTH_OK,           /* a valid credential: the principal is filled */
    AUTH_MISSING,      /* no credential: 401 without an error code (RFC 6750 §3.1) */
    AUTH_INVALID,      /* a credential that is not accepted: 401 invalid_token */
    AUTH_RATE_LIMITED, /* too many failed attempts from this address: 429 */
    AUTH_UNAVAILABLE,  /* the credential could not be checked (database): 503 */
};

/* Why a credential was refused: the `reason` label of ledgerd_auth_failures_total and of the
 * audit record. Stable snake_case names (auth_reason_name). */
enum auth_reason {
    AUTH_REASON_NONE,
    AUTH_REASON_MISSING,
    AUTH_REASON_MALFORMED,          /* not "Bearer <token>", or neither key nor JWT shape */
    AUTH_REASON_APIKEY_DISABLED,    /* an API key, and no LEDGERD_APIKEY_HASH_KEY_FILE */
    AUTH_REASON_APIKEY_UNKNOWN,     /* no key with that id */
    AUTH_REASON_APIKEY_REVOKED,     /* revoked */
    AUTH_REASON_APIKEY_MISMATCH,    /* the secret does not match */
    AUTH_REASON_JWT_DISABLED,       /* a JWT, and no LEDGERD_JWKS_FILE */
    AUTH_REASON_JWT_ALG,            /* alg none, unsupported, or not the key's */
    AUTH_REASON_JWT_KID,            /* kid missing or unknown */
    AUTH_REASON_JWT_SIGNATURE,      /* bad signature */
    AUTH_REASON_JWT_EXPIRED,        /* exp passed (beyond the skew) */
    AUTH_REASON_JWT_NOT_YET,        /* nbf ahead (beyond the skew) */
    AUTH_REASON_JWT_ISSUER,         /* iss is not LEDGERD_JWT_ISSUER */
    AUTH_REASON_JWT_AUDIENCE,       /* aud does not hold LEDGERD_JWT_AUDIENCE */
    AUTH_REASON_JWT_INVALID,        /* malformed, crit, typ, a missing or bad claim */
    AUTH_REASON_RATE_LIMITED,       /* refused unseen: the address is blocked */
    AUTH_REASON_INSUFFICIENT_SCOPE, /* valid, but the route needs a scope it lacks (403) */
    AUTH_REASON_UNAVAILABLE,        /* the key store did not answer */
    AUTH_REASON_COUNT
};

const char *auth_reason_name(enum auth_reason r);

/* The authenticated caller. */
struct auth_principal {
    /* For people and the audit trail: "apikey:<id>", "jwt:<iss>|<sub>". */
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    /* What idempotency keys are scoped by: actor when it fits LIMIT_PRINCIPAL_LEN_MAX, else
     * "jwt#" and the hex SHA-256 of iss and sub (the same caller always gets the same id). */
    char id[LIMIT_PRINCIPAL_LEN_MAX + 1];
    uint32_t scopes; /* enum scope_bit */
};

struct auth_verdict {
    enum auth_status status;
    enum auth_reason reason;
    uint32_t retry_after_seconds; /* AUTH_RATE_LIMITED */
};

struct auth;

/* Loads the key material cfg names (JWKS, API-key hashing key, roles) and starts the thread
 * that reloads it when its files change. store is where API keys are looked up. Returns 0, or
 * -errno with one line in err naming the setting. */
int auth_open(const struct config *cfg, struct store *store, struct auth **out, struct buf *err);
void auth_close(struct auth *a);

/* Reads the JWKS and the hashing key again. A file that no longer loads keeps the material in
 * use, and is reported; returns 0 when everything loaded, else -errno. Thread-safe. why is
 * logged ("SIGHUP", "file changed"). */
int auth_reload(struct auth *a, const char *why);

/* Calls fn(ctx, ok, why) after every reload, from the thread that reloaded (SIGHUP's, or the
 * file watcher's), holding the key lock: fn must not call back into a. The audit trail records
 * it. fn NULL detaches: when this returns, fn is not running and will not run again. */
void auth_on_reload(struct auth *a, void (*fn)(void *ctx, bool ok, const char *why), void *ctx);

/* Whether checking the Authorization header (len bytes, may be NULL) needs the database: true
 * only for a bearer token in the API key form ("ldk_..."), whose row is looked up; a missing or
 * malformed credential, a JWT, and a rate-limited address are decided in memory. */
bool auth_needs_store(const char *authorization, size_t len);

/* Checks an Authorization header value (NULL when absent), from the peer address peer (NULL:
 * unknown), at now_mono_ms (a monotonic clock in ms, for the rate limit). Fills *p on AUTH_OK.
 * Counts refusals in ledgerd_auth_failures_total. Thread-safe. */
void auth_check(struct auth *a, const char *authorization, size_t len, const struct sockaddr *peer,
                int64_t now_mono_ms, struct auth_principal *p, struct auth_verdict *v);

/* Counts a refusal the caller decided (insufficient scope). */
void auth_count_refusal(enum auth_reason r);

#endif
