/*
 * idem.c — the in-flight set of idempotency keys: a fixed-size open-addressing hash set under
 * one mutex (claims are rare next to the commit they guard), with linear probing and
 * backward-shift deletion (no tombstones, Knuth's Algorithm R), and request fingerprints.
 */
#include "idem/idem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/limits.h"

struct idem_slot {
    uint64_t hash; /* 0 = empty */
    char key[LIMIT_PRINCIPAL_LEN_MAX + 1 + LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1];
};

struct idem_registry {
    pthread_mutex_t lock;
    struct idem_slot *slots;
    size_t slots_count; /* power of two, >= 2 * capacity */
    size_t capacity;
    size_t used; /* live keys */
};

/* FNV-1a over principal, a separator and key; never 0 (the empty mark). */
static uint64_t idem_hash(const char *joined, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)joined[i];
        h *= 1099511628211ull;
    }
    return h == 0 ? 1 : h;
}

static size_t idem_join(const char *principal, const char *key, char *out, size_t out_len)
{
    size_t p_len = strlen(principal);
    size_t k_len = strlen(key);
    ASSERT(p_len <= LIMIT_PRINCIPAL_LEN_MAX && k_len <= LIMIT_IDEMPOTENCY_KEY_LEN_MAX);
    ASSERT(p_len + 1 + k_len + 1 <= out_len);
    memcpy(out, principal, p_len);
    out[p_len] = '\n'; /* cannot occur in a principal or a key */
    memcpy(out + p_len + 1, key, k_len);
    out[p_len + 1 + k_len] = '\0';
    return p_len + 1 + k_len;
}

int idem_registry_new(size_t capacity, struct idem_registry **out)
{
    ASSERT(capacity > 0 && out != NULL);
    struct idem_registry *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    size_t n = 16;
    while (n < 2 * capacity) {
        n *= 2;
    }
    r->slots = calloc(n, sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->slots_count = n;
    r->capacity = capacity;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void idem_registry_free(struct idem_registry *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_destroy(&r->lock);
    free(r->slots);
    free(r);
}

/* Finds the slot holding joined, or NULL. Caller holds the lock. */
static struct idem_slot *idem_find(struct idem_registry *r, const char *joined, uint64_t h)
{
    size_t mask = r->slots_count - 1;
    for (size_t i = 0; i < r->slots_count; i++) {
        struct idem_slot *s = &r->slots[(h + i) & mask];
        if (s->hash == 0) {
            return NULL;
        }
        if (s->hash == h && strcmp(s->key, joined) == 0) {
            return s;
        }
    }
    return NULL;
}

enum idem_claim_result idem_claim(struct idem_registry *r, const char *principal, const char *key)
{
    char joined[sizeof(((struct idem_slot *)0)->key)];
    size_t len = idem_join(principal, key, joined, sizeof(joined));
    uint64_t h = idem_hash(joined, len);
    enum idem_claim_result result = IDEM_CLAIMED;

    pthread_mutex_lock(&r->lock);
    if (idem_find(r, joined, h) != NULL) {
        result = IDEM_IN_FLIGHT;
        goto out_unlock;
    }
    if (r->used >= r->capacity) {
        result = IDEM_FULL;
        goto out_unlock;
    }
    size_t mask = r->slots_count - 1;
    for (size_t i = 0; i < r->slots_count; i++) {
        struct idem_slot *s = &r->slots[(h + i) & mask];
        if (s->hash == 0) {
            s->hash = h;
            memcpy(s->key, joined, len + 1);
            r->used++;
            goto out_unlock;
        }
    }
    /* used < capacity <= slots_count / 2, so a free slot always exists. */
    core_assert_fail("idempotency registry has a free slot", __FILE__, __LINE__);
out_unlock:
    pthread_mutex_unlock(&r->lock);
    return result;
}

void idem_release(struct idem_registry *r, const char *principal, const char *key)
{
    char joined[sizeof(((struct idem_slot *)0)->key)];
    size_t len = idem_join(principal, key, joined, sizeof(joined));
    uint64_t h = idem_hash(joined, len);

    pthread_mutex_lock(&r->lock);
    struct idem_slot *s = idem_find(r, joined, h);
    ASSERT(s != NULL); /* releasing a key nobody claimed is a bug */
    size_t mask = r->slots_count - 1;
    size_t hole = (size_t)(s - r->slots);
    /* Shift back every later entry of the cluster that may not stay behind the hole. */
    for (size_t j = (hole + 1) & mask; r->slots[j].hash != 0; j = (j + 1) & mask) {
        size_t home = r->slots[j].hash & mask;
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            r->slots[hole] = r->slots[j];
            hole = j;
        }
    }
    r->slots[hole].hash = 0;
    r->slots[hole].key[0] = '\0';
    r->used--;
    pthread_mutex_unlock(&r->lock);
}

size_t idem_in_flight(struct idem_registry *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->used;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int idem_fingerprint(const char *method, const char *path, const char *body, size_t body_len,
                     uint8_t out[SHA256_BYTES])
{
    struct sha256 h;
    int rc = sha256_init(&h);
    if (rc != 0) {
        return rc;
    }
    if ((rc = sha256_update(&h, method, strlen(method))) != 0 ||
        (rc = sha256_update(&h, "\n", 1)) != 0 ||
        (rc = sha256_update(&h, path, strlen(path))) != 0 ||
        (rc = sha256_update(&h, "\n", 1)) != 0 || (rc = sha256_update(&h, body, body_len)) != 0) {
        uint8_t discard[SHA256_BYTES];
        (void)sha256_final(&h, discard);
        return rc;
    }
    return sha256_final(&h, out);
}
