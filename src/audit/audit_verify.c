/*
 * audit_verify.c — the streaming verifier of an audit trail: fed records in seq order and the
 * checkpoints merged among them, it finds the first record where the trail was tampered with.
 *
 * Memory is constant whatever the length of the trail: the seq and hash of the last record, and
 * a bounded queue of checkpoints given before the record they cover. Each record is checked
 * against the one before it (seq, prev_hash) and against itself (hash); each checkpoint against
 * its key (signature) and against the trail (the hash at its seq, or the trail's end).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/assert.h"

struct pending_checkpoint {
    uint64_t seq;
    uint8_t hash[AUDIT_HASH_BYTES];
};

struct audit_verify {
    const struct audit_verifier *keys; /* borrowed */
    uint64_t after_seq;                /* the trail starts after this record */
    uint64_t last_seq;                 /* the last record taken into the chain */
    uint8_t last_hash[AUDIT_HASH_BYTES];
    uint64_t checkpoint_seq_max; /* highest checkpoint seq given: they come in order */
    bool finished;
    struct audit_finding first;
    struct audit_verify_stats stats;
    /* Checkpoints waiting for their record, a FIFO in non-decreasing seq order, all with a seq
     * above last_seq. */
    size_t pending_head;
    size_t pending_count;
    struct pending_checkpoint pending[LIMIT_AUDIT_VERIFY_PENDING_MAX];
};

static const char *const kind_names[] = {
    [AUDIT_OK] = "ok",
    [AUDIT_FINDING_INVALID_RECORD] = "invalid_record",
    [AUDIT_FINDING_SEQ_GAP] = "seq_gap",
    [AUDIT_FINDING_SEQ_OUT_OF_ORDER] = "seq_out_of_order",
    [AUDIT_FINDING_PREV_HASH_MISMATCH] = "prev_hash_mismatch",
    [AUDIT_FINDING_HASH_MISMATCH] = "hash_mismatch",
    [AUDIT_FINDING_INVALID_CHECKPOINT] = "invalid_checkpoint",
    [AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY] = "checkpoint_unknown_key",
    [AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID] = "checkpoint_signature_invalid",
    [AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH] = "checkpoint_hash_mismatch",
    [AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL] = "checkpoint_beyond_tail",
};

const char *audit_finding_kind_name(enum audit_finding_kind kind)
{
    ASSERT((size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]));
    ASSERT(kind_names[kind] != NULL);
    return kind_names[kind];
}

/* Fills *out with a finding, counts it and keeps it if it is the first. */
__attribute__((format(printf, 5, 6))) static void report(struct audit_verify *v,
                                                         struct audit_finding *out,
                                                         enum audit_finding_kind kind, uint64_t seq,
                                                         const char *fmt, ...)
{
    ASSERT(kind != AUDIT_OK);
    struct audit_finding f = {kind, seq, {0}};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.message, sizeof(f.message), fmt, ap);
    va_end(ap);
    if (v->stats.findings == 0) {
        v->first = f;
    }
    v->stats.findings++;
    /* A step reports its first finding; a later one (a waiting checkpoint) is only counted. */
    if (out->kind == AUDIT_OK) {
        *out = f;
    }
}

static void clear(struct audit_finding *out)
{
    out->kind = AUDIT_OK;
    out->seq = 0;
    out->message[0] = '\0';
}

static bool hash_equal(const uint8_t a[AUDIT_HASH_BYTES], const uint8_t b[AUDIT_HASH_BYTES])
{
    uint8_t diff = 0;
    for (size_t i = 0; i < AUDIT_HASH_BYTES; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

int audit_verify_new(const struct audit_verifier *keys, uint64_t after_seq,
                     const uint8_t after_hash[AUDIT_HASH_BYTES], struct audit_verify **out)
{
    ASSERT(out != NULL);
    *out = NULL;
    static const uint8_t genesis[AUDIT_HASH_BYTES] = {0};
    const uint8_t *start = after_hash != NULL ? after_hash : genesis;
    if (after_seq >= (uint64_t)LIMIT_AUDIT_INTEGER_MAX ||
        (after_seq == 0 && !hash_equal(start, genesis))) {
        return -EINVAL;
    }
    struct audit_verify *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    v->keys = keys;
    v->after_seq = after_seq;
    v->last_seq = after_seq;
    memcpy(v->last_hash, start, AUDIT_HASH_BYTES);
    v->checkpoint_seq_max = after_seq;
    clear(&v->first);
    *out = v;
    return 0;
}

void audit_verify_free(struct audit_verify *v)
{
    free(v);
}

/* Compares a validly signed checkpoint with the trail's hash at its seq (the last record's). */
static void checkpoint_match(struct audit_verify *v, uint64_t seq,
                             const uint8_t hash[AUDIT_HASH_BYTES], struct audit_finding *out)
{
    ASSERT(seq == v->last_seq);
    if (!hash_equal(hash, v->last_hash)) {
        report(v, out, AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH, seq,
               "checkpoint %" PRIu64 " signed another hash than record %" PRIu64
               " has: the trail was rewritten at or before it",
               seq, seq);
        return;
    }
    v->stats.checkpoints_verified++;
    if (seq > v->stats.last_checkpoint_seq) {
        v->stats.last_checkpoint_seq = seq;
    }
}

/* After the chain moved to last_seq: checkpoints waiting for a record that was skipped cannot
 * be checked (the gap was reported), the ones for last_seq are checked now. */
static void settle_pending(struct audit_verify *v, struct audit_finding *out)
{
    while (v->pending_count > 0) {
        struct pending_checkpoint *p = &v->pending[v->pending_head];
        if (p->seq > v->last_seq) {
            break;
        }
        if (p->seq == v->last_seq) {
            checkpoint_match(v, p->seq, p->hash, out);
        }
        v->pending_head = (v->pending_head + 1) % LIMIT_AUDIT_VERIFY_PENDING_MAX;
        v->pending_count--;
    }
    ASSERT(v->pending_count <= LIMIT_AUDIT_VERIFY_PENDING_MAX);
}

int audit_verify_record(struct audit_verify *v, const struct audit_record *r,
                        struct audit_finding *out)
{
    ASSERT(v != NULL && r != NULL && out != NULL);
    ASSERT(!v->finished);
    clear(out);
    v->stats.records++;
    uint64_t expected = v->last_seq + 1;

    if (r->seq == 0 || r->seq > (uint64_t)LIMIT_AUDIT_INTEGER_MAX) {
        report(v, out, AUDIT_FINDING_INVALID_RECORD, expected,
               "record %" PRIu64 ": its seq %" PRIu64 " is out of range", expected, r->seq);
        return 0;
    }
    if (r->seq < expected) {
        /* Not taken into the chain: the chain goes on from the record before. */
        report(v, out, AUDIT_FINDING_SEQ_OUT_OF_ORDER, expected,
               "record %" PRIu64 ": a record with seq %" PRIu64
               " comes here: records were duplicated or reordered",
               expected, r->seq);
        return 0;
    }
    if (r->seq > expected) {
        report(v, out, AUDIT_FINDING_SEQ_GAP, expected,
               "record %" PRIu64 " is missing: the next record has seq %" PRIu64, expected, r->seq);
    } else {
        char why[128];
        uint8_t hash[AUDIT_HASH_BYTES];
        int rc;
        if (audit_record_validate(r, why, sizeof(why)) != 0) {
            report(v, out, AUDIT_FINDING_INVALID_RECORD, expected,
                   "record %" PRIu64 " is not valid: %s", expected, why);
        } else if (!hash_equal(r->prev_hash, v->last_hash)) {
            report(v, out, AUDIT_FINDING_PREV_HASH_MISMATCH, expected,
                   "record %" PRIu64 ": prev_hash is not the hash of record %" PRIu64
                   ": a record was replaced, removed or reordered there",
                   expected, v->last_seq);
        } else if ((rc = audit_record_hash(r, hash)) != 0) {
            return rc == -EINVAL ? -EIO : rc;
        } else if (!hash_equal(hash, r->hash)) {
            report(v, out, AUDIT_FINDING_HASH_MISMATCH, expected,
                   "record %" PRIu64 ": its content does not hash to its stored hash: a field "
                   "was changed after it was written",
                   expected);
        }
    }
    /* Go on from the record as stored, so that one bad record gives one finding. */
    v->last_seq = r->seq;
    memcpy(v->last_hash, r->hash, AUDIT_HASH_BYTES);
    settle_pending(v, out);
    return 0;
}

static bool checkpoint_fields_valid(const struct audit_checkpoint *cp)
{
    if (cp->seq == 0 || cp->seq > (uint64_t)LIMIT_AUDIT_INTEGER_MAX || cp->time_unix_ms < 0 ||
        cp->time_unix_ms > LIMIT_AUDIT_INTEGER_MAX) {
        return false;
    }
    for (size_t i = 0; i < LIMIT_AUDIT_KEY_ID_LEN; i++) {
        char c = cp->key_id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return cp->key_id[LIMIT_AUDIT_KEY_ID_LEN] == '\0';
}

int audit_verify_checkpoint(struct audit_verify *v, const struct audit_checkpoint *cp,
                            struct audit_finding *out)
{
    ASSERT(v != NULL && cp != NULL && out != NULL);
    ASSERT(!v->finished);
    clear(out);
    if (!checkpoint_fields_valid(cp)) {
        v->stats.checkpoints++;
        report(v, out, AUDIT_FINDING_INVALID_CHECKPOINT, cp->seq,
               "checkpoint %" PRIu64 " is not valid: seq, time or key id out of range", cp->seq);
        return 0;
    }
    /* The order rule: non-decreasing seq, none for a record the chain has gone past. */
    if (cp->seq < v->checkpoint_seq_max || cp->seq < v->last_seq) {
        return -EINVAL;
    }
    bool waits = cp->seq > v->last_seq;
    if (waits && v->pending_count == LIMIT_AUDIT_VERIFY_PENDING_MAX) {
        return -ENOSPC;
    }
    v->stats.checkpoints++;
    v->checkpoint_seq_max = cp->seq;

    int rc = audit_checkpoint_verify(v->keys, cp);
    if (rc == -ENOKEY) {
        report(v, out, AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY, cp->seq,
               "checkpoint %" PRIu64 " is signed by key %s, which is not among the keys given",
               cp->seq, cp->key_id);
        return 0;
    }
    if (rc == -EBADMSG) {
        report(v, out, AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID, cp->seq,
               "checkpoint %" PRIu64 ": the signature by key %s does not verify: forged or changed",
               cp->seq, cp->key_id);
        return 0;
    }
    if (rc != 0) {
        return rc == -EINVAL ? -EIO : rc;
    }
    if (!waits) {
        checkpoint_match(v, cp->seq, cp->hash, out);
        return 0;
    }
    size_t tail = (v->pending_head + v->pending_count) % LIMIT_AUDIT_VERIFY_PENDING_MAX;
    v->pending[tail].seq = cp->seq;
    memcpy(v->pending[tail].hash, cp->hash, AUDIT_HASH_BYTES);
    v->pending_count++;
    ASSERT(v->pending_count <= LIMIT_AUDIT_VERIFY_PENDING_MAX);
    return 0;
}

int audit_verify_finish(struct audit_verify *v, struct audit_finding *first,
                        struct audit_verify_stats *stats)
{
    ASSERT(v != NULL && first != NULL);
    ASSERT(!v->finished);
    v->finished = true;
    struct audit_finding out;
    clear(&out);
    if (v->pending_count > 0) {
        const struct pending_checkpoint *p = &v->pending[v->pending_head];
        report(v, &out, AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL, p->seq,
               "checkpoint %" PRIu64 " covers a record the trail does not have: it ends at %" PRIu64
               ", records were cut off its end",
               p->seq, v->last_seq);
        v->stats.findings += v->pending_count - 1;
        v->pending_count = 0;
    }
    *first = v->first;
    v->stats.last_seq = v->last_seq;
    memcpy(v->stats.last_hash, v->last_hash, AUDIT_HASH_BYTES);
    uint64_t signed_upto =
        v->stats.last_checkpoint_seq > v->after_seq ? v->stats.last_checkpoint_seq : v->after_seq;
    v->stats.records_unsigned = v->last_seq > signed_upto ? v->last_seq - signed_upto : 0;
    if (stats != NULL) {
        *stats = v->stats;
    }
    ASSERT((first->kind == AUDIT_OK) == (v->stats.findings == 0));
    return 0;
}
