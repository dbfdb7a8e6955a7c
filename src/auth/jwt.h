/*
 * jwt.h — verification of a bearer JWT (RFC 7519) in JWS compact serialization (RFC 7515
 * §7.1), signed with EdDSA, ES256 or RS256 by a key of a JWK Set (auth/jwks.h).
 *
 * Pure: no I/O, no clock (the caller passes the time), no global state. Every rule follows
 * RFC 8725 (JWT Best Current Practices) and the access token profile of RFC 9068; each refusal
 * has its own result, whose reason string is stable. docs/security/jwt.md lists them all.
 */
#ifndef LEDGERD_AUTH_JWT_H
#define LEDGERD_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"
#include "core/limits.h"

/* What a token must satisfy besides its signature. ledgerd's configuration always sets issuer
 * and audience; NULL (not checked) exists for tools and tests. */
struct jwt_policy {
    const char *issuer;          /* "iss" must equal it exactly; NULL: not checked */
    const char *audience;        /* "aud" (string or array) must contain it; NULL: not checked */
    uint32_t clock_skew_seconds; /* at most LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX */
    int64_t now_unix_s;          /* the current time, 0..LIMIT_JWT_NUMERIC_DATE_MAX */
};

/* The claims of a verified token, NUL-terminated. Optional claims that are absent are "" (and
 * 0 for nbf and iat, with has_nbf/has_iat false). No value is ever cut: a claim longer than
 * its field refuses the token. */
struct jwt_claims {
    char sub[LIMIT_JWT_SUB_LEN_MAX + 1];
    char iss[LIMIT_JWT_ISS_LEN_MAX + 1];
    char kid[LIMIT_JWT_KID_LEN_MAX + 1];
    char alg[8];
    char jti[LIMIT_JWT_JTI_LEN_MAX + 1];
    char scope[LIMIT_JWT_SCOPE_LEN_MAX + 1]; /* RFC 9068 §2.2.3, RFC 8693 §4.2: space-separated */
    char roles[LIMIT_JWT_ROLES_MAX][LIMIT_JWT_ROLE_LEN_MAX + 1]; /* "roles" (RFC 9068 §2.2.3.1) */
    size_t roles_count;
    int64_t exp;
    int64_t nbf;
    int64_t iat;
    bool has_nbf;
    bool has_iat;
};

/* Why a token was refused. Each has a stable reason string (jwt_result_reason). */
enum jwt_result {
    JWT_OK,
    JWT_MALFORMED,         /* not three base64url parts of JSON objects; a bad header member */
    JWT_TOO_LARGE,         /* more than LIMIT_JWT_BYTES_MAX bytes */
    JWT_ALG_NONE,          /* "alg":"none" in any case: an unsecured JWT */
    JWT_ALG_UNSUPPORTED,   /* any alg but EdDSA, ES256, RS256 (HS256 included) */
    JWT_CRIT_UNSUPPORTED,  /* a "crit" header: no extension is understood */
    JWT_TYP_UNSUPPORTED,   /* "typ" present and not JWT or at+jwt */
    JWT_KID_MISSING,       /* no "kid" header */
    JWT_KID_UNKNOWN,       /* no key of the set has that kid */
    JWT_ALG_KEY_MISMATCH,  /* the alg is not the one the key serves (algorithm confusion) */
    JWT_BAD_SIGNATURE,     /* the signature does not verify (or has the wrong length) */
    JWT_CLAIM_MISSING,     /* exp or sub absent */
    JWT_CLAIM_INVALID,     /* a registered claim of the wrong type, empty or out of range */
    JWT_CLAIM_TOO_LONG,    /* a claim longer than ledgerd keeps (never cut) */
    JWT_EXPIRED,           /* exp <= now - skew */
    JWT_NOT_YET_VALID,     /* nbf > now + skew */
    JWT_ISSUER_MISMATCH,   /* iss is not the configured issuer */
    JWT_AUDIENCE_MISMATCH, /* aud does not contain the configured audience */
};
#define JWT_RESULT_COUNT ((size_t)JWT_AUDIENCE_MISMATCH + 1)

/* A stable snake_case name for r ("ok", "expired", "bad_signature", "alg_none",
 * "kid_unknown", ...), for metric labels and audit records. Never NULL. */
const char *jwt_result_reason(enum jwt_result r);

/* Verifies the len bytes at token (not NUL-terminated; what follows "Bearer ") against keys
 * and policy, in this order: size and shape, header (alg, crit, typ, kid), key selection, the
 * signature over the ASCII "header.payload", then the claims (types and lengths, exp, nbf,
 * iss, aud). The payload is decoded only once the signature holds.
 *
 * Returns JWT_OK with the claims in *out. Any other result refuses the token; *out is then
 * zeroed except kid and alg once the header has been read that far (unauthenticated: for logs
 * and audit records only, never for decisions).
 *
 * Thread-safe; any number of threads may verify with the same keys at once. Allocates nothing
 * itself (the decoded parts live on the stack, about 7 KiB); jansson and GnuTLS allocate
 * internally. policy->clock_skew_seconds and now_unix_s must be within their limits (asserted). */
enum jwt_result jwt_verify(const struct jwks *keys, const char *token, size_t len,
                           const struct jwt_policy *policy, struct jwt_claims *out);

#endif
