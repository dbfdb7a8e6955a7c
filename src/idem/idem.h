/*
 * idem.h — idempotency keys in flight, and request fingerprints.
 *
 * The stored half of idempotency (records written in the commit's transaction) lives in the
 * store; this is the other half: the set of (principal, key) pairs whose first request is still
 * being processed, so a concurrent retry answers 409 idempotency_key_in_flight instead of
 * running twice. A key is claimed before its stored record is looked up and released only after
 * the commit that stored the record, so a retry always sees one or the other.
 */
#ifndef LEDGERD_IDEM_IDEM_H
#define LEDGERD_IDEM_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sha256.h"

struct idem_registry;

/* Creates a registry holding at most capacity keys at once. 0 or -ENOMEM. */
int idem_registry_new(size_t capacity, struct idem_registry **out);
void idem_registry_free(struct idem_registry *r);

enum idem_claim_result {
    IDEM_CLAIMED,   /* the caller now holds the key and must release it */
    IDEM_IN_FLIGHT, /* another request holds it */
    IDEM_FULL,      /* too many keys in flight: answer 503 */
};
/* Thread-safe. principal and key are NUL-terminated, already validated. */
enum idem_claim_result idem_claim(struct idem_registry *r, const char *principal, const char *key);
/* Releases a key claimed by idem_claim. Thread-safe. */
void idem_release(struct idem_registry *r, const char *principal, const char *key);
size_t idem_in_flight(struct idem_registry *r);

/* SHA-256 over method, '\n', path, '\n', body: what "the same request" means. */
int idem_fingerprint(const char *method, const char *path, const char *body, size_t body_len,
                     uint8_t out[SHA256_BYTES]);

#endif
