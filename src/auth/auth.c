/*
 * auth.c — Bearer credentials to principals (auth.h): API keys looked up in the store and
 * checked against their keyed hash, JWTs verified against the JWKS, failed attempts limited per
 * source address, the key material reloaded when its files change.
 *
 * A verified JWT is remembered by the I/O thread that saw it (a small per-thread table keyed by
 * the token's SHA-256, until the token expires or the keys are reloaded): verifying a signature
 * costs 30-130 us, and a client sends the same token with every request. API keys are looked up
 * on every request, so a revocation takes effect at once.
 */
#include "auth/auth.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/apikey.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/ratelimit.h"
#include "auth/scope.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/sha256.h"
#include "obs/log.h"
#include "obs/metrics.h"

/* How often the watcher looks at the key files. */
#define AUTH_WATCH_INTERVAL_MS 1000
/* Verified JWTs each I/O thread remembers (a power of two). */
#define AUTH_JWT_CACHE_SLOTS 64

static const char *const auth_reason_names[AUTH_REASON_COUNT] = {
    [AUTH_REASON_NONE] = "none",
    [AUTH_REASON_MISSING] = "missing",
    [AUTH_REASON_MALFORMED] = "malformed",
    [AUTH_REASON_APIKEY_DISABLED] = "apikey_disabled",
    [AUTH_REASON_APIKEY_UNKNOWN] = "apikey_unknown",
    [AUTH_REASON_APIKEY_REVOKED] = "apikey_revoked",
    [AUTH_REASON_APIKEY_MISMATCH] = "apikey_mismatch",
    [AUTH_REASON_JWT_DISABLED] = "jwt_disabled",
    [AUTH_REASON_JWT_ALG] = "jwt_alg",
    [AUTH_REASON_JWT_KID] = "jwt_kid",
    [AUTH_REASON_JWT_SIGNATURE] = "jwt_bad_signature",
    [AUTH_REASON_JWT_EXPIRED] = "jwt_expired",
    [AUTH_REASON_JWT_NOT_YET] = "jwt_not_yet_valid",
    [AUTH_REASON_JWT_ISSUER] = "jwt_issuer",
    [AUTH_REASON_JWT_AUDIENCE] = "jwt_audience",
    [AUTH_REASON_JWT_INVALID] = "jwt_invalid",
    [AUTH_REASON_RATE_LIMITED] = "rate_limited",
    [AUTH_REASON_INSUFFICIENT_SCOPE] = "insufficient_scope",
    [AUTH_REASON_UNAVAILABLE] = "unavailable",
};
_Static_assert(AUTH_REASON_COUNT <= LIMIT_METRICS_RESULTS_MAX, "every reason is a label value");

const char *auth_reason_name(enum auth_reason r)
{
    return (unsigned)r < AUTH_REASON_COUNT ? auth_reason_names[r] : "unknown";
}

/* What a key file was when it was loaded: a change of any of these means reload. */
struct auth_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool present;
};

struct auth {
    const struct config *cfg;
    struct store *store;
    struct ratelimit *limit;
    struct scope_roles roles;

    pthread_rwlock_t keys_lock; /* guards the three below */
    struct jwks *jwks;          /* NULL: JWTs are not accepted */
    struct apikey_hasher hasher;
    bool have_hasher;
    atomic_uint_fast64_t generation; /* bumped at every reload: forgets cached JWTs */

    void (*on_reload)(void *ctx, bool ok, const char *why); /* under keys_lock */
    void *on_reload_ctx;
    struct auth_stamp jwks_stamp, hash_key_stamp;
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    bool watch_stop;
    bool watching;
    pthread_t watcher;
};

static void auth_stamp_take(const char *path, struct auth_stamp *st)
{
    struct stat sb;
    memset(st, 0, sizeof(*st));
    if (path[0] != '\0' && stat(path, &sb) == 0) {
        st->dev = sb.st_dev;
        st->ino = sb.st_ino;
        st->size = sb.st_size;
        st->mtime = sb.st_mtim;
        st->present = true;
    }
}

static bool auth_stamp_changed(const char *path, const struct auth_stamp *was)
{
    struct auth_stamp now;
    auth_stamp_take(path, &now);
    return now.present != was->present || now.dev != was->dev || now.ino != was->ino ||
           now.size != was->size || now.mtime.tv_sec != was->mtime.tv_sec ||
           now.mtime.tv_nsec != was->mtime.tv_nsec;
}

/* Loads the JWKS file into *out (NULL when none is configured). */
static int auth_load_jwks(const struct config *cfg, struct jwks **out, struct buf *err)
{
    *out = NULL;
    if (cfg->jwks_file[0] == '\0') {
        return 0;
    }
    uint8_t *text = malloc(LIMIT_JWKS_BYTES_MAX);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = config_read_secret_file(cfg->jwks_file, text, LIMIT_JWKS_BYTES_MAX, &len, err);
    if (rc == 0) {
        char reason[256] = "";
        rc = jwks_parse((const char *)text, len, out, reason, sizeof(reason));
        if (rc != 0) {
            (void)buf_appendf(err, "LEDGERD_JWKS_FILE: %s", reason);
        }
    }
    free(text);
    return rc;
}

/* Loads the API-key hashing key (have = false when none is configured). */
static int auth_load_hasher(const struct config *cfg, struct apikey_hasher *h, bool *have,
                            struct buf *err)
{
    *have = false;
    if (cfg->apikey_hash_key_file[0] == '\0') {
        return 0;
    }
    uint8_t key[LIMIT_APIKEY_HASH_KEY_BYTES_MAX];
    size_t len = 0;
    int rc = config_read_secret_file(cfg->apikey_hash_key_file, key, sizeof(key), &len, err);
    if (rc == 0) {
        char reason[160] = "";
        rc = apikey_hasher_init(h, key, len, reason, sizeof(reason));
        if (rc != 0) {
            (void)buf_appendf(err, "LEDGERD_APIKEY_HASH_KEY_FILE: %s", reason);
        }
    }
    explicit_bzero(key, sizeof(key));
    *have = rc == 0;
    return rc;
}

int auth_reload(struct auth *a, const char *why)
{
    ASSERT(a != NULL);
    struct buf err;
    buf_init(&err, 1024);
    struct jwks *jwks = NULL;
    struct apikey_hasher hasher;
    bool have_hasher = false;
    struct auth_stamp jst, hst;
    auth_stamp_take(a->cfg->jwks_file, &jst);
    auth_stamp_take(a->cfg->apikey_hash_key_file, &hst);
    int rc_j = auth_load_jwks(a->cfg, &jwks, &err);
    int rc_h = auth_load_hasher(a->cfg, &hasher, &have_hasher, &err);

    pthread_rwlock_wrlock(&a->keys_lock);
    struct jwks *old = NULL;
    if (rc_j == 0) {
        old = a->jwks;
        a->jwks = jwks;
        a->jwks_stamp = jst;
    }
    if (rc_h == 0) {
        apikey_hasher_release(&a->hasher);
        a->hasher = hasher;
        a->have_hasher = have_hasher;
        a->hash_key_stamp = hst;
    }
    atomic_fetch_add(&a->generation, 1);
    /* Under the lock: once auth_on_reload(a, NULL, NULL) returns, the callback is not running
     * and will not run again. */
    if (a->on_reload != NULL) {
        a->on_reload(a->on_reload_ctx, rc_j == 0 && rc_h == 0, why);
    }
    pthread_rwlock_unlock(&a->keys_lock);
    jwks_free(old);
    if (rc_h != 0) {
        explicit_bzero(&hasher, sizeof(hasher));
    }

    if (rc_j != 0 || rc_h != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "auth: reload (%s) kept the keys in use: %s", why,
                 err.data != NULL ? err.data : "");
    } else {
        log_msgf(CONFIG_LOG_INFO, NULL, "auth: keys reloaded (%s): %zu JWT key(s), API keys %s",
                 why, a->jwks != NULL ? jwks_count(a->jwks) : (size_t)0,
                 a->have_hasher ? "on" : "off");
    }
    buf_release(&err);
    return rc_j != 0 ? rc_j : rc_h;
}

void auth_on_reload(struct auth *a, void (*fn)(void *ctx, bool ok, const char *why), void *ctx)
{
    ASSERT(a != NULL);
    pthread_rwlock_wrlock(&a->keys_lock);
    a->on_reload = fn;
    a->on_reload_ctx = ctx;
    pthread_rwlock_unlock(&a->keys_lock);
}

static void *auth_watch_main(void *arg)
{
    struct auth *a = arg;
    (void)pthread_setname_np(pthread_self(), "ledgerd-auth"); /* for top -H, perf, gdb */
    pthread_mutex_lock(&a->watch_mu);
    while (!a->watch_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += AUTH_WATCH_INTERVAL_MS / 1000;
        (void)pthread_cond_timedwait(&a->watch_cv, &a->watch_mu, &until);
        if (a->watch_stop) {
            break;
        }
        pthread_mutex_unlock(&a->watch_mu);
        pthread_rwlock_rdlock(&a->keys_lock);
        bool changed = auth_stamp_changed(a->cfg->jwks_file, &a->jwks_stamp) ||
                       auth_stamp_changed(a->cfg->apikey_hash_key_file, &a->hash_key_stamp);
        pthread_rwlock_unlock(&a->keys_lock);
        if (changed) {
            (void)auth_reload(a, "a key file changed");
        }
        pthread_mutex_lock(&a->watch_mu);
    }
    pthread_mutex_unlock(&a->watch_mu);
    return NULL;
}

int auth_open(const struct config *cfg, struct store *store, struct auth **out, struct buf *err)
{
    ASSERT(cfg != NULL && store != NULL && out != NULL && err != NULL);
    metrics_auth_reasons_register(auth_reason_names, AUTH_REASON_COUNT);
    struct auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return -ENOMEM;
    }
    a->cfg = cfg;
    a->store = store;
    char reason[256] = "";
    const char *roles = cfg->roles[0] != '\0' ? cfg->roles : SCOPE_ROLES_DEFAULT;
    int rc = scope_roles_parse(roles, strlen(roles), &a->roles, reason, sizeof(reason));
    if (rc != 0) {
        (void)buf_appendf(err, "LEDGERD_ROLES: %s", reason);
        goto out_free;
    }
    rc = ratelimit_new(cfg->auth_failures_max, cfg->auth_failure_window_seconds, &a->limit);
    if (rc != 0) {
        goto out_free;
    }
    pthread_rwlock_init(&a->keys_lock, NULL);
    auth_stamp_take(cfg->jwks_file, &a->jwks_stamp);
    auth_stamp_take(cfg->apikey_hash_key_file, &a->hash_key_stamp);
    rc = auth_load_jwks(cfg, &a->jwks, err);
    if (rc == 0) {
        rc = auth_load_hasher(cfg, &a->hasher, &a->have_hasher, err);
    }
    if (rc != 0) {
        goto out_keys;
    }
    pthread_mutex_init(&a->watch_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->watch_cv, &attr);
    pthread_condattr_destroy(&attr);
    if (cfg->jwks_file[0] != '\0' || cfg->apikey_hash_key_file[0] != '\0') {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = -pthread_create(&a->watcher, NULL, auth_watch_main, a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            goto out_watch;
        }
        a->watching = true;
    }
    *out = a;
    return 0;

out_watch:
    pthread_cond_destroy(&a->watch_cv);
    pthread_mutex_destroy(&a->watch_mu);
out_keys:
    jwks_free(a->jwks);
    apikey_hasher_release(&a->hasher);
    pthread_rwlock_destroy(&a->keys_lock);
    ratelimit_free(a->limit);
out_free:
    free(a);
    return rc;
}

void auth_close(struct auth *a)
{
    if (a == NULL) {
        return;
    }
    if (a->watching) {
        pthread_mutex_lock(&a->watch_mu);
        a->watch_stop = true;
        pthread_cond_signal(&a->watch_cv);
        pthread_mutex_unlock(&a->watch_mu);
        pthread_join(a->watcher, NULL);
    }
    pthread_cond_destroy(&a->watch_cv);
    pthread_mutex_destroy(&a->watch_mu);
    jwks_free(a->jwks);
    apikey_hasher_release(&a->hasher);
    pthread_rwlock_destroy(&a->keys_lock);
    ratelimit_free(a->limit);
    free(a);
}

void auth_count_refusal(enum auth_reason r)
{
    metrics_add(METRIC_AUTH_FAILURES, (size_t)r, 1);
}

/* ---- API keys ------------------------------------------------------------------------- */

static enum auth_reason auth_check_apikey(struct auth *a, const char *token, size_t len,
                                          struct auth_principal *p, bool *unavailable)
{
    struct apikey_parsed parsed;
    if (apikey_parse(token, len, &parsed) != 0) {
        return AUTH_REASON_MALFORMED;
    }
    struct store_apikey rec;
    int rc = store_apikey_get(a->store, parsed.id, &rec);
    enum auth_reason reason = AUTH_REASON_NONE;
    if (rc == -ENOENT) {
        reason = AUTH_REASON_APIKEY_UNKNOWN;
    } else if (rc != 0) {
        *unavailable = true;
        reason = AUTH_REASON_UNAVAILABLE;
    } else {
        pthread_rwlock_rdlock(&a->keys_lock);
        bool matches = a->have_hasher && apikey_matches(&a->hasher, &parsed, rec.hash);
        bool have = a->have_hasher;
        pthread_rwlock_unlock(&a->keys_lock);
        if (!have) {
            reason = AUTH_REASON_APIKEY_DISABLED;
        } else if (!matches) {
            reason = AUTH_REASON_APIKEY_MISMATCH;
        } else if (rec.revoked_at_ms != 0) {
            reason = AUTH_REASON_APIKEY_REVOKED; /* checked after the secret: no id probing */
        } else {
            (void)snprintf(p->actor, sizeof(p->actor), "apikey:%s", parsed.id);
            (void)snprintf(p->id, sizeof(p->id), "apikey:%s", parsed.id);
            p->scopes = rec.scopes;
        }
    }
    apikey_parsed_clear(&parsed);
    return reason;
}

/* ---- JWTs ----------------------------------------------------------------------------- */

struct auth_jwt_slot {
    uint8_t digest[SHA256_BYTES];
    uint64_t generation; /* 0: empty */
    int64_t exp_unix_s;
    struct auth_principal principal;
};

static _Thread_local struct auth_jwt_slot auth_jwt_cache[AUTH_JWT_CACHE_SLOTS];

static enum auth_reason auth_jwt_reason(enum jwt_result r)
{
    switch (r) {
    case JWT_OK:
        return AUTH_REASON_NONE;
    case JWT_ALG_NONE:
    case JWT_ALG_UNSUPPORTED:
    case JWT_ALG_KEY_MISMATCH:
        return AUTH_REASON_JWT_ALG;
    case JWT_KID_MISSING:
    case JWT_KID_UNKNOWN:
        return AUTH_REASON_JWT_KID;
    case JWT_BAD_SIGNATURE:
        return AUTH_REASON_JWT_SIGNATURE;
    case JWT_EXPIRED:
        return AUTH_REASON_JWT_EXPIRED;
    case JWT_NOT_YET_VALID:
        return AUTH_REASON_JWT_NOT_YET;
    case JWT_ISSUER_MISMATCH:
        return AUTH_REASON_JWT_ISSUER;
    case JWT_AUDIENCE_MISMATCH:
        return AUTH_REASON_JWT_AUDIENCE;
    default:
        return AUTH_REASON_JWT_INVALID;
    }
}

/* The scopes a token grants: its "scope" claim (names this server does not know are someone
 * else's and grant nothing here) and the scopes of its "roles". */
static uint32_t auth_jwt_scopes(const struct auth *a, const struct jwt_claims *c)
{
    uint32_t scopes = 0;
    const char *s = c->scope;
    while (*s != '\0') {
        size_t n = strcspn(s, " ");
        uint32_t one = 0;
        if (n > 0 && scope_parse_list(s, n, &one, NULL, 0) == 0) {
            scopes |= one;
        }
        s += n;
        s += strspn(s, " ");
    }
    for (size_t i = 0; i < c->roles_count; i++) {
        scopes |= scope_roles_lookup(&a->roles, c->roles[i], strlen(c->roles[i]));
    }
    return scopes;
}

static enum auth_reason auth_check_jwt(struct auth *a, const char *token, size_t len,
                                       struct auth_principal *p)
{
    uint8_t digest[SHA256_BYTES];
    if (sha256_digest(token, len, digest) != 0) {
        return AUTH_REASON_UNAVAILABLE;
    }
    int64_t now_s = clock_unix_ms() / 1000;
    uint64_t gen = atomic_load(&a->generation) + 1; /* never 0 */
    struct auth_jwt_slot *slot = &auth_jwt_cache[digest[0] % AUTH_JWT_CACHE_SLOTS];
    if (slot->generation == gen && now_s < slot->exp_unix_s &&
        memcmp(slot->digest, digest, sizeof(digest)) == 0) {
        *p = slot->principal;
        return AUTH_REASON_NONE;
    }
    struct jwt_claims claims;
    struct jwt_policy policy = {
        .issuer = a->cfg->jwt_issuer,
        .audience = a->cfg->jwt_audience,
        .clock_skew_seconds = a->cfg->jwt_clock_skew_seconds,
        .now_unix_s = now_s,
    };
    pthread_rwlock_rdlock(&a->keys_lock);
    bool enabled = a->jwks != NULL;
    enum jwt_result r = enabled ? jwt_verify(a->jwks, token, len, &policy, &claims) : JWT_OK;
    pthread_rwlock_unlock(&a->keys_lock);
    if (!enabled) {
        return AUTH_REASON_JWT_DISABLED;
    }
    if (r != JWT_OK) {
        return auth_jwt_reason(r);
    }
    (void)snprintf(p->actor, sizeof(p->actor), "jwt:%s|%s", claims.iss, claims.sub);
    if (strlen(p->actor) < sizeof(p->id)) {
        memcpy(p->id, p->actor, strlen(p->actor) + 1);
    } else {
        uint8_t who[SHA256_BYTES];
        char hex[2 * SHA256_BYTES + 1];
        (void)sha256_digest(p->actor, strlen(p->actor), who);
        sha256_hex(who, hex);
        (void)snprintf(p->id, sizeof(p->id), "jwt#%s", hex);
    }
    p->scopes = auth_jwt_scopes(a, &claims);
    memcpy(slot->digest, digest, sizeof(digest));
    slot->generation = gen;
    slot->exp_unix_s = claims.exp + (int64_t)a->cfg->jwt_clock_skew_seconds;
    slot->principal = *p;
    return AUTH_REASON_NONE;
}

/* ---- The check ---------------------------------------------------------------------------- */

/* "Bearer" (any case, RFC 9110 §11.1), spaces, then a token68 (RFC 9110 §11.2). */
static bool auth_bearer_token(const char *h, size_t len, const char **token, size_t *token_len)
{
    static const char scheme[] = "Bearer";
    const size_t n = sizeof(scheme) - 1;
    if (len <= n + 1 || strncasecmp(h, scheme, n) != 0 || h[n] != ' ') {
        return false;
    }
    size_t i = n;
    while (i < len && h[i] == ' ') {
        i++;
    }
    size_t start = i;
    while (i < len) {
        char c = h[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok) {
            break;
        }
        i++;
    }
    while (i < len && h[i] == '=') {
        i++;
    }
    if (i == start || i != len) {
        return false;
    }
    *token = h + start;
    *token_len = len - start;
    return true;
}

bool auth_needs_store(const char *authorization, size_t len)
{
    const char *token = NULL;
    size_t token_len = 0;
    return authorization != NULL && auth_bearer_token(authorization, len, &token, &token_len) &&
           token_len >= 4 && memcmp(token, "ldk_", 4) == 0;
}

void auth_check(struct auth *a, const char *authorization, size_t len, const struct sockaddr *peer,
                int64_t now_mono_ms, struct auth_principal *p, struct auth_verdict *v)
{
    ASSERT(a != NULL && p != NULL && v != NULL);
    memset(v, 0, sizeof(*v));
    p->actor[0] = '\0';
    p->id[0] = '\0';
    p->scopes = 0;
    uint8_t addr[RATELIMIT_ADDR_BYTES] = {0};
    bool have_addr = peer != NULL && ratelimit_addr_from_sockaddr(peer, addr) == 0;
    if (authorization == NULL) {
        v->status = AUTH_MISSING;
        v->reason = AUTH_REASON_MISSING;
        auth_count_refusal(v->reason);
        return;
    }
    if (have_addr && ratelimit_blocked(a->limit, addr, now_mono_ms, &v->retry_after_seconds)) {
        v->status = AUTH_RATE_LIMITED;
        v->reason = AUTH_REASON_RATE_LIMITED;
        auth_count_refusal(v->reason);
        return;
    }
    const char *token = NULL;
    size_t token_len = 0;
    bool unavailable = false;
    enum auth_reason reason = AUTH_REASON_MALFORMED;
    if (auth_bearer_token(authorization, len, &token, &token_len)) {
        reason = token_len >= 4 && memcmp(token, "ldk_", 4) == 0
                     ? auth_check_apikey(a, token, token_len, p, &unavailable)
                     : auth_check_jwt(a, token, token_len, p);
    }
    if (reason == AUTH_REASON_NONE) {
        v->status = AUTH_OK;
        return;
    }
    v->reason = reason;
    v->status = unavailable ? AUTH_UNAVAILABLE : AUTH_INVALID;
    auth_count_refusal(reason);
    if (!unavailable && have_addr) {
        ratelimit_failure(a->limit, addr, now_mono_ms);
    }
}
