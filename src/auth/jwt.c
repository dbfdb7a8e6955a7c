/*
 * jwt.c — verification of a JWT in JWS compact serialization: the three parts, the protected
 * header, the signature with a key of the set, then the claims.
 *
 * The order matters for safety. Only the header is read before the signature is checked, and
 * only to pick the key and the algorithm, which must be the one the key serves (RFC 8725 §3.1:
 * the header never chooses how a key is used). The payload is decoded once the signature
 * holds, so unauthenticated claims are never parsed. Decoded parts live in one buffer on the
 * stack; the token is never copied.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "core/assert.h"

/* The three parts of "header.payload.signature". */
enum { PART_HEADER, PART_PAYLOAD, PART_SIGNATURE, PART_COUNT };

struct span {
    const char *ptr;
    size_t len;
};

static const char *const jwt_reasons[] = {
    [JWT_OK] = "ok",
    [JWT_MALFORMED] = "malformed",
    [JWT_TOO_LARGE] = "too_large",
    [JWT_ALG_NONE] = "alg_none",
    [JWT_ALG_UNSUPPORTED] = "alg_unsupported",
    [JWT_CRIT_UNSUPPORTED] = "crit_unsupported",
    [JWT_TYP_UNSUPPORTED] = "typ_unsupported",
    [JWT_KID_MISSING] = "kid_missing",
    [JWT_KID_UNKNOWN] = "kid_unknown",
    [JWT_ALG_KEY_MISMATCH] = "alg_key_mismatch",
    [JWT_BAD_SIGNATURE] = "bad_signature",
    [JWT_CLAIM_MISSING] = "claim_missing",
    [JWT_CLAIM_INVALID] = "claim_invalid",
    [JWT_CLAIM_TOO_LONG] = "claim_too_long",
    [JWT_EXPIRED] = "expired",
    [JWT_NOT_YET_VALID] = "not_yet_valid",
    [JWT_ISSUER_MISMATCH] = "issuer_mismatch",
    [JWT_AUDIENCE_MISMATCH] = "audience_mismatch",
};
_Static_assert(sizeof(jwt_reasons) / sizeof(jwt_reasons[0]) == JWT_RESULT_COUNT,
               "every result has a reason");

const char *jwt_result_reason(enum jwt_result r)
{
    ASSERT((size_t)r < JWT_RESULT_COUNT && jwt_reasons[r] != NULL);
    return jwt_reasons[r];
}

/* ---- small helpers ---- */

/* True when the len bytes at s equal the lower-case literal lit, ignoring ASCII case. */
static bool equal_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool letter = lit[i] >= 'a' && lit[i] <= 'z';
        if (s[i] != lit[i] && !(letter && s[i] == lit[i] - ('a' - 'A'))) {
            return false;
        }
    }
    return true;
}

static bool json_string_is(const json_t *v, const char *lit)
{
    return json_is_string(v) && json_string_length(v) == strlen(lit) &&
           memcmp(json_string_value(v), lit, json_string_length(v)) == 0;
}

/* Splits token into exactly three parts; false for any other number of dots. */
static bool split_parts(const char *token, size_t len, struct span parts[PART_COUNT])
{
    size_t start = 0;
    for (size_t i = 0; i < PART_COUNT; i++) {
        const char *dot = memchr(token + start, '.', len - start);
        bool last = i == PART_COUNT - 1;
        if ((dot == NULL) != last) {
            return false; /* too few dots, or a dot in the signature part */
        }
        size_t end = last ? len : (size_t)(dot - token);
        parts[i].ptr = token + start;
        parts[i].len = end - start;
        start = last ? len : end + 1;
    }
    return true;
}

/* Decodes a base64url part holding a JSON object into buf and parses it (duplicate member
 * names refused). NULL for anything else. The caller releases the result. */
static json_t *part_object(struct span part, uint8_t *buf, size_t buf_len)
{
    size_t n = 0;
    if (part.len == 0 || jwks_base64url_decode(part.ptr, part.len, buf, buf_len, &n) < 0) {
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Copies a claim string to dst (cap bytes with the NUL). Control characters are refused: the
 * values go to logs and audit records. */
static enum jwt_result copy_claim(const json_t *v, char *dst, size_t cap)
{
    if (!json_is_string(v)) {
        return JWT_CLAIM_INVALID;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= cap) {
        return JWT_CLAIM_TOO_LONG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return JWT_CLAIM_INVALID;
        }
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return JWT_OK;
}

/* An optional string claim: absent leaves dst "". */
static enum jwt_result optional_claim(const json_t *payload, const char *name, char *dst,
                                      size_t cap)
{
    const json_t *v = json_object_get(payload, name);
    return v == NULL ? JWT_OK : copy_claim(v, dst, cap);
}

/* A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional, here within
 * 0..LIMIT_JWT_NUMERIC_DATE_MAX. A fraction is rounded towards refusal: up for nbf, down
 * otherwise. */
static enum jwt_result numeric_date(const json_t *v, bool round_up, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > LIMIT_JWT_NUMERIC_DATE_MAX) {
            return JWT_CLAIM_INVALID;
        }
        *out = (int64_t)t;
        return JWT_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0.0 && d <= (double)LIMIT_JWT_NUMERIC_DATE_MAX)) {
            return JWT_CLAIM_INVALID; /* NaN fails both comparisons */
        }
        int64_t t = (int64_t)d;
        if (round_up && (double)t < d) {
            t++;
        }
        *out = t;
        return JWT_OK;
    }
    return JWT_CLAIM_INVALID;
}

/* ---- header ---- */

static bool typ_allowed(const json_t *typ)
{
    if (!json_is_string(typ)) {
        return false;
    }
    /* RFC 7519 §5.1 "JWT", RFC 9068 §2.1 "at+jwt"; RFC 7515 §4.1.9 lets the "application/"
     * prefix be written or left out, and media types are case-insensitive. */
    const char *s = json_string_value(typ);
    size_t n = json_string_length(typ);
    return equal_ci(s, n, "jwt") || equal_ci(s, n, "at+jwt") || equal_ci(s, n, "application/jwt") ||
           equal_ci(s, n, "application/at+jwt");
}

/* Reads the protected header and selects the key: the checks before the signature. */
static enum jwt_result check_header(const json_t *h, const struct jwks *keys,
                                    struct jwt_claims *out, const struct jwks_key **key_out)
{
    const json_t *alg = json_object_get(h, "alg");
    if (alg == NULL || !json_is_string(alg)) {
        return JWT_MALFORMED; /* RFC 7515 §4.1.1: alg MUST be present */
    }
    if (equal_ci(json_string_value(alg), json_string_length(alg), "none")) {
        return JWT_ALG_NONE; /* RFC 8725 §3.2 */
    }
    /* Algorithm names are case-sensitive (RFC 7515 §4.1.1). */
    enum jwks_alg want;
    if (json_string_is(alg, "EdDSA")) {
        want = JWKS_ALG_EDDSA;
    } else if (json_string_is(alg, "ES256")) {
        want = JWKS_ALG_ES256;
    } else if (json_string_is(alg, "RS256")) {
        want = JWKS_ALG_RS256;
    } else {
        return JWT_ALG_UNSUPPORTED;
    }
    ASSERT(strlen(jwks_alg_name(want)) < sizeof(out->alg));
    memcpy(out->alg, jwks_alg_name(want), strlen(jwks_alg_name(want)) + 1);

    if (json_object_get(h, "crit") != NULL) {
        return JWT_CRIT_UNSUPPORTED; /* RFC 7515 §4.1.11: no extension is understood */
    }
    const json_t *typ = json_object_get(h, "typ");
    if (typ != NULL && !typ_allowed(typ)) {
        return JWT_TYP_UNSUPPORTED;
    }
    const json_t *kid = json_object_get(h, "kid");
    if (kid == NULL) {
        return JWT_KID_MISSING;
    }
    if (!json_is_string(kid)) {
        return JWT_MALFORMED;
    }
    /* Kept for the log when it fits; a kid that does not fit matches no key of the set. */
    (void)copy_claim(kid, out->kid, sizeof(out->kid));
    const struct jwks_key *key = jwks_find(keys, json_string_value(kid), json_string_length(kid));
    if (key == NULL) {
        return JWT_KID_UNKNOWN;
    }
    if (jwks_key_alg(key) != want) {
        return JWT_ALG_KEY_MISMATCH; /* RFC 8725 §2.1, §3.1: algorithm confusion */
    }
    *key_out = key;
    return JWT_OK;
}

/* ---- claims ---- */

/* Types and lengths of every claim ledgerd reads, copied to out. */
static enum jwt_result read_claims(const json_t *p, struct jwt_claims *out)
{
    const json_t *exp = json_object_get(p, "exp");
    const json_t *sub = json_object_get(p, "sub");
    if (exp == NULL || sub == NULL) {
        return JWT_CLAIM_MISSING;
    }
    enum jwt_result r = numeric_date(exp, false, &out->exp);
    if (r == JWT_OK) {
        r = copy_claim(sub, out->sub, sizeof(out->sub));
    }
    if (r == JWT_OK && out->sub[0] == '\0') {
        r = JWT_CLAIM_INVALID; /* an empty subject names nobody */
    }
    const json_t *nbf = json_object_get(p, "nbf");
    if (r == JWT_OK && nbf != NULL) {
        out->has_nbf = true;
        r = numeric_date(nbf, true, &out->nbf);
    }
    const json_t *iat = json_object_get(p, "iat");
    if (r == JWT_OK && iat != NULL) {
        out->has_iat = true;
        r = numeric_date(iat, false, &out->iat);
    }
    if (r == JWT_OK) {
        r = optional_claim(p, "iss", out->iss, sizeof(out->iss));
    }
    if (r == JWT_OK) {
        r = optional_claim(p, "jti", out->jti, sizeof(out->jti));
    }
    if (r == JWT_OK) {
        r = optional_claim(p, "scope", out->scope, sizeof(out->scope));
    }
    if (r != JWT_OK) {
        return r;
    }
    const json_t *roles = json_object_get(p, "roles");
    if (roles != NULL) {
        if (!json_is_array(roles)) {
            return JWT_CLAIM_INVALID;
        }
        if (json_array_size(roles) > LIMIT_JWT_ROLES_MAX) {
            return JWT_CLAIM_TOO_LONG;
        }
        for (size_t i = 0; i < json_array_size(roles); i++) {
            r = copy_claim(json_array_get(roles, i), out->roles[i], sizeof(out->roles[i]));
            if (r == JWT_OK && out->roles[i][0] == '\0') {
                r = JWT_CLAIM_INVALID;
            }
            if (r != JWT_OK) {
                return r;
            }
            out->roles_count++;
        }
    }
    const json_t *aud = json_object_get(p, "aud");
    if (aud != NULL && !json_is_string(aud)) {
        if (!json_is_array(aud)) {
            return JWT_CLAIM_INVALID;
        }
        if (json_array_size(aud) > LIMIT_JWT_AUDIENCES_MAX) {
            return JWT_CLAIM_TOO_LONG;
        }
        for (size_t i = 0; i < json_array_size(aud); i++) {
            if (!json_is_string(json_array_get(aud, i))) {
                return JWT_CLAIM_INVALID;
            }
        }
    }
    return JWT_OK;
}

/* True when aud (a string or an array of strings, checked already) holds audience. RFC 7519
 * §4.1.3: case-sensitive comparison. */
static bool audience_contains(const json_t *aud, const char *audience)
{
    if (aud == NULL) {
        return false;
    }
    if (json_is_string(aud)) {
        return json_string_is(aud, audience);
    }
    for (size_t i = 0; i < json_array_size(aud); i++) {
        if (json_string_is(json_array_get(aud, i), audience)) {
            return true;
        }
    }
    return false;
}

static enum jwt_result check_claims(const json_t *p, const struct jwt_policy *policy,
                                    struct jwt_claims *out)
{
    enum jwt_result r = read_claims(p, out);
    if (r != JWT_OK) {
        return r;
    }
    int64_t skew = (int64_t)policy->clock_skew_seconds;
    if (out->exp <= policy->now_unix_s - skew) {
        return JWT_EXPIRED; /* RFC 7519 §4.1.4 */
    }
    if (out->has_nbf && out->nbf > policy->now_unix_s + skew) {
        return JWT_NOT_YET_VALID; /* RFC 7519 §4.1.5 */
    }
    /* RFC 7519 §4.1.1 and RFC 9068 §4: exact, case-sensitive issuer match. */
    if (policy->issuer != NULL && strcmp(out->iss, policy->issuer) != 0) {
        return JWT_ISSUER_MISMATCH;
    }
    if (policy->audience != NULL &&
        !audience_contains(json_object_get(p, "aud"), policy->audience)) {
        return JWT_AUDIENCE_MISMATCH;
    }
    return JWT_OK;
}

/* ---- verification ---- */

static enum jwt_result verify(const struct jwks *keys, const char *token, size_t len,
                              const struct jwt_policy *policy, struct jwt_claims *out)
{
    if (len > LIMIT_JWT_BYTES_MAX) {
        return JWT_TOO_LARGE;
    }
    struct span parts[PART_COUNT];
    if (len == 0 || !split_parts(token, len, parts) || parts[PART_HEADER].len == 0 ||
        parts[PART_PAYLOAD].len == 0) {
        return JWT_MALFORMED;
    }
    /* One buffer for each decoded part in turn: header, signature, payload. */
    uint8_t buf[LIMIT_JWT_PART_BYTES_MAX];

    json_t *header = part_object(parts[PART_HEADER], buf, sizeof(buf));
    if (header == NULL) {
        return JWT_MALFORMED;
    }
    const struct jwks_key *key = NULL;
    enum jwt_result r = check_header(header, keys, out, &key);
    json_decref(header);
    if (r != JWT_OK) {
        return r;
    }
    ASSERT(key != NULL);

    size_t sig_len = 0;
    int rc = jwks_base64url_decode(parts[PART_SIGNATURE].ptr, parts[PART_SIGNATURE].len, buf,
                                   sizeof(buf), &sig_len);
    if (rc == -EINVAL) {
        return JWT_MALFORMED;
    }
    ASSERT(rc == 0); /* a part is never longer than the buffer */
    /* RFC 7515 §5.2: the signing input is the ASCII of the first two parts and their dot. */
    size_t signed_len = parts[PART_HEADER].len + 1 + parts[PART_PAYLOAD].len;
    if (!jwks_key_verify(key, (const uint8_t *)token, signed_len, buf, sig_len)) {
        return JWT_BAD_SIGNATURE;
    }

    json_t *payload = part_object(parts[PART_PAYLOAD], buf, sizeof(buf));
    if (payload == NULL) {
        return JWT_MALFORMED;
    }
    r = check_claims(payload, policy, out);
    json_decref(payload);
    return r;
}

enum jwt_result jwt_verify(const struct jwks *keys, const char *token, size_t len,
                           const struct jwt_policy *policy, struct jwt_claims *out)
{
    ASSERT(keys != NULL && policy != NULL && out != NULL);
    ASSERT(token != NULL || len == 0);
    ASSERT(policy->clock_skew_seconds <= LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX);
    ASSERT(policy->now_unix_s >= 0 && policy->now_unix_s <= LIMIT_JWT_NUMERIC_DATE_MAX);
    memset(out, 0, sizeof(*out));

    enum jwt_result r = verify(keys, token, len, policy, out);
    if (r != JWT_OK) {
        /* Nothing read from a refused token may look usable; kid and alg stay for the log. */
        char kid[sizeof(out->kid)];
        char alg[sizeof(out->alg)];
        memcpy(kid, out->kid, sizeof(kid));
        memcpy(alg, out->alg, sizeof(alg));
        memset(out, 0, sizeof(*out));
        memcpy(out->kid, kid, sizeof(kid));
        memcpy(out->alg, alg, sizeof(alg));
    }
    ASSERT((size_t)r < JWT_RESULT_COUNT);
    ASSERT(r != JWT_OK || (out->sub[0] != '\0' && out->kid[0] != '\0'));
    return r;
}
