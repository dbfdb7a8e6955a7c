/*
 * audit.h — the tamper-evident audit trail: the record, its canonical encoding, the SHA-256 hash
 * chain, Ed25519-signed checkpoints, and a streaming verifier that names the first bad record.
 *
 * Every failed authentication, authorization decision on a state-changing route, denial and
 * administrative action becomes one record. Each record carries the hash of the one before it,
 * so changing, removing or reordering a record breaks the chain at that record; a checkpoint
 * signs the hash of the record at its seq, so rewriting the chain from some record on, or
 * cutting records off its end, shows at the next checkpoint. docs/security/audit.md gives the
 * encoding byte by byte and the commands that check a trail by hand.
 *
 * This module is pure: no SQL, no clock, no global state. The caller stores what it makes and
 * feeds it back to the verifier. Every function checks its input and never cuts a value short.
 *
 * Errors: 0 on success; -EINVAL for a value that is not valid (the reason, when an err buffer
 * is given, names the field); -ENAMETOOLONG for a value longer than its limit; -ENOSPC when an
 * output buffer or a bounded table is full; -ENOMEM; -EIO when the crypto library failed.
 */
#ifndef LEDGERD_AUDIT_AUDIT_H
#define LEDGERD_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/limits.h"

#define AUDIT_HASH_BYTES 32
#define AUDIT_PUBLIC_KEY_BYTES 32
#define AUDIT_SIGNATURE_BYTES 64
/* Domain separation: the "format" member of each canonical object. A record's encoding can
 * never be taken for a checkpoint's, nor a later version's for this one's. */
#define AUDIT_RECORD_FORMAT "ledgerd.audit.record.v1"
#define AUDIT_CHECKPOINT_FORMAT "ledgerd.audit.checkpoint.v1"

/* ---------------------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------------------- */

/* One audit record. Text fields are NUL-terminated UTF-8 without control characters (no C0,
 * no DEL, no C1), at most their LIMIT_AUDIT_* length; empty where the text says "may be empty".
 * Fill them with audit_record_set (which refuses, never cuts); seq, prev_hash and hash are
 * filled by audit_chain_next. */
struct audit_record {
    uint64_t seq;         /* 1, 2, 3 ... without gaps; at most LIMIT_AUDIT_INTEGER_MAX */
    int64_t time_unix_ms; /* when it happened; 0 .. LIMIT_AUDIT_INTEGER_MAX */
    /* "apikey:<id>", "jwt:<iss>|<sub>", "anonymous", "system"; not empty */
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1];
    /* a dotted name: [a-z0-9_]+ ("." [a-z0-9_]+)*, e.g. "auth.failed", "authz.deny",
     * "transfer.create", "apikey.revoke", "config.reload", "migration.apply" */
    char action[LIMIT_AUDIT_ACTION_LEN_MAX + 1];
    /* what it was done to: "POST /v1/transfers", "apikey:<id>"; not empty */
    char resource[LIMIT_AUDIT_RESOURCE_LEN_MAX + 1];
    /* "allow" | "deny" | "success" | "failure" */
    char decision[LIMIT_AUDIT_DECISION_LEN_MAX + 1];
    char reason[LIMIT_AUDIT_REASON_LEN_MAX + 1];   /* why; may be empty */
    char request_id[LIMIT_REQUEST_ID_LEN_MAX + 1]; /* X-Request-Id grammar; may be empty */
    char trace_id[LIMIT_AUDIT_TRACE_ID_LEN + 1];   /* 32 lower-case hex, not all 0; may be empty */
    char source[LIMIT_AUDIT_SOURCE_LEN_MAX + 1];   /* the client's address; may be empty */
    uint8_t prev_hash[AUDIT_HASH_BYTES];           /* hash of record seq - 1; zeros for seq 1 */
    uint8_t hash[AUDIT_HASH_BYTES];                /* SHA-256 of the canonical encoding */
};

/* The text fields, in the order of the struct. */
enum audit_field {
    AUDIT_FIELD_ACTOR,
    AUDIT_FIELD_ACTION,
    AUDIT_FIELD_RESOURCE,
    AUDIT_FIELD_DECISION,
    AUDIT_FIELD_REASON,
    AUDIT_FIELD_REQUEST_ID,
    AUDIT_FIELD_TRACE_ID,
    AUDIT_FIELD_SOURCE,
    AUDIT_FIELD_COUNT
};

/* The member name of a field in the canonical encoding ("actor", "request_id", ...). */
const char *audit_field_name(enum audit_field f);

/* Sets one text field from s (len bytes, not necessarily NUL-terminated) after checking it
 * against that field's rules; the rest of the field's array is zeroed. Returns 0;
 * -ENAMETOOLONG when len is over the field's limit; -EINVAL when the value is not valid for the
 * field (invalid UTF-8, a control character, a NUL, the field's grammar). On error r is
 * unchanged. */
int audit_record_set(struct audit_record *r, enum audit_field f, const char *s, size_t len);

/* Checks every field of r except seq's place in a chain, prev_hash and hash: each text field is
 * NUL-terminated within its array and follows its rules, seq and time_unix_ms are in range.
 * Returns 0 or -EINVAL with a one-line reason naming the field in err (err may be NULL). */
int audit_record_validate(const struct audit_record *r, char *err, size_t err_len);

/* Appends the canonical encoding of r (every field but hash; RFC 8785 JSON, see
 * docs/security/audit.md) to out. Returns 0; -EINVAL when r is not valid; -ENOSPC or -ENOMEM
 * from the buffer, in which case out is as it was. A buffer of LIMIT_AUDIT_CANONICAL_BYTES_MAX
 * always suffices. */
int audit_canonical(const struct audit_record *r, struct buf *out);

/* Writes SHA-256(canonical(r)) into out. Allocates nothing. Returns 0, -EINVAL, -EIO. */
int audit_record_hash(const struct audit_record *r, uint8_t out[AUDIT_HASH_BYTES]);

/* Links r after the record (prev_seq, prev_hash): sets r->seq = prev_seq + 1, copies prev_hash
 * into r->prev_hash and computes r->hash. For the first record pass prev_seq 0 and prev_hash
 * NULL (or 32 zero bytes). Returns 0; -EINVAL when r is not valid or prev_seq is 0 with a
 * non-zero prev_hash; -EOVERFLOW when prev_seq is LIMIT_AUDIT_INTEGER_MAX; -EIO. On error
 * seq, prev_hash and hash are unchanged. The caller keeps (r->seq, r->hash) for the next one
 * and must not advance it when the transaction that stores r rolls back. */
int audit_chain_next(const uint8_t prev_hash[AUDIT_HASH_BYTES], uint64_t prev_seq,
                     struct audit_record *r);

/* ---------------------------------------------------------------------------------------
 * Checkpoints: an Ed25519 signature (RFC 8032, pure Ed25519) over the canonical encoding of
 * (seq, hash, time_unix_ms, key_id).
 * ------------------------------------------------------------------------------------- */
struct audit_checkpoint {
    uint64_t seq;                            /* the last record covered, 1 .. */
    uint8_t hash[AUDIT_HASH_BYTES];          /* that record's hash */
    int64_t time_unix_ms;                    /* when the checkpoint was made */
    char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1]; /* 16 lower-case hex digits */
    uint8_t signature[AUDIT_SIGNATURE_BYTES];
};

/* Appends the signed message of cp (every field but signature) to out. Returns 0; -EINVAL
 * when seq is 0 or a field is out of range or key_id is not 16 lower-case hex digits; -ENOSPC
 * or -ENOMEM from the buffer (out is then as it was). */
int audit_checkpoint_canonical(const struct audit_checkpoint *cp, struct buf *out);

/* Whether a checkpoint should be written now: records were added since the last checkpoint
 * (tail_seq > checkpoint_seq) and either records_max of them are waiting or interval_ms passed
 * since the last checkpoint was made. checkpoint_seq 0 means none was ever written. */
bool audit_checkpoint_due(uint64_t tail_seq, uint64_t checkpoint_seq,
                          int64_t checkpoint_time_unix_ms, int64_t now_unix_ms,
                          uint64_t records_max, int64_t interval_ms);

/* The key id of a raw Ed25519 public key: the first 8 bytes of its SHA-256, in lower-case hex.
 * Returns 0 or -EIO. */
int audit_key_id(const uint8_t pub[AUDIT_PUBLIC_KEY_BYTES], char out[LIMIT_AUDIT_KEY_ID_LEN + 1]);

/* The signing side. Holds the private key inside GnuTLS only; nothing here ever prints it. */
struct audit_signer;

/* Loads an Ed25519 private key from PEM text (PKCS #8, unencrypted, as
 * `openssl genpkey -algorithm ed25519` writes it); pem need not be NUL-terminated. The caller
 * read the secret file and should wipe its copy afterwards; this function wipes the copy it
 * makes. On success *out owns the key (free with audit_signer_free). Returns 0; -EINVAL with a
 * reason in err (never the key's content) when the text is not such a key; -ENOMEM; -EIO. */
int audit_signer_load(const char *pem, size_t len, struct audit_signer **out, char *err,
                      size_t err_len);
/* The signer's raw public key and key id (either may be NULL). */
void audit_signer_public_key(const struct audit_signer *s, uint8_t pub[AUDIT_PUBLIC_KEY_BYTES],
                             char key_id[LIMIT_AUDIT_KEY_ID_LEN + 1]);
/* Appends the public key as PEM SubjectPublicKeyInfo ("PUBLIC KEY"), for the operator to give
 * to verifiers. Returns 0, -ENOSPC, -ENOMEM, -EIO. */
int audit_signer_public_pem(const struct audit_signer *s, struct buf *out);
/* Signs cp: reads seq, hash and time_unix_ms, sets key_id to the signer's and fills signature.
 * Returns 0; -EINVAL when seq or time_unix_ms is out of range; -EIO. One thread at a time. */
int audit_checkpoint_sign(const struct audit_signer *s, struct audit_checkpoint *cp);
/* Releases the key (GnuTLS wipes it); NULL is a no-op. */
void audit_signer_free(struct audit_signer *s);

/* The verifying side: up to LIMIT_AUDIT_VERIFY_KEYS_MAX public keys, so that checkpoints signed
 * before a key rotation still verify. One thread at a time. */
struct audit_verifier;

int audit_verifier_new(struct audit_verifier **out);
/* Adds a public key given as PEM SubjectPublicKeyInfo ("PUBLIC KEY", as `openssl pkey -pubout`
 * writes it) or as 64 hex digits of the raw key; surrounding whitespace is ignored. Writes its
 * key id into key_id_out (may be NULL). Returns 0; -EINVAL with a reason in err when the text
 * is not an Ed25519 public key (a private key is refused, not used); -EEXIST when the key is
 * there already; -ENOSPC when the verifier is full; -ENOMEM; -EIO. */
int audit_verifier_add_key(struct audit_verifier *v, const char *text, size_t len,
                           char key_id_out[LIMIT_AUDIT_KEY_ID_LEN + 1], char *err, size_t err_len);
/* Same for a raw 32-byte key. */
int audit_verifier_add_raw(struct audit_verifier *v, const uint8_t pub[AUDIT_PUBLIC_KEY_BYTES],
                           char key_id_out[LIMIT_AUDIT_KEY_ID_LEN + 1]);
void audit_verifier_free(struct audit_verifier *v);

/* Checks cp's signature with the key named by its key_id. Returns 0 when it verifies;
 * -ENOKEY when no key has that id (v may be NULL: no keys); -EBADMSG when the signature does
 * not verify; -EINVAL when cp is malformed; -ENOMEM; -EIO. Says nothing about whether cp->hash
 * is the hash of the trail's record cp->seq: that is the streaming verifier's job. */
int audit_checkpoint_verify(const struct audit_verifier *v, const struct audit_checkpoint *cp);

/* ---------------------------------------------------------------------------------------
 * Verification of a whole trail, streaming, in bounded memory.
 *
 * Order: records in seq order; each checkpoint of seq S at any point before the record S + 1
 * (so: merged with the records by seq, a checkpoint right after its record; or every
 * checkpoint first, when there are at most LIMIT_AUDIT_VERIFY_PENDING_MAX of them), checkpoints
 * in non-decreasing seq order. Memory is constant: the verifier keeps the last record's seq and
 * hash and the checkpoints that are waiting for their record.
 *
 * Each step reports what it found in *out (kind AUDIT_OK when nothing). After a finding the
 * verifier goes on from the record as stored, so one changed record gives one finding and the
 * rest of the trail is still checked; audit_verify_finish gives the first finding. A verification
 * is used by one thread at a time.
 * ------------------------------------------------------------------------------------- */
enum audit_finding_kind {
    AUDIT_OK = 0,
    /* A record's fields break their rules (seq 0, bad text, ...): written by something else. */
    AUDIT_FINDING_INVALID_RECORD,
    /* Records are missing: the record here has a seq above the expected one. */
    AUDIT_FINDING_SEQ_GAP,
    /* The record here has a seq at or below one already seen: duplicated or reordered. */
    AUDIT_FINDING_SEQ_OUT_OF_ORDER,
    /* prev_hash is not the hash of the record before: that record was replaced (with a
     * recomputed hash) or records were removed or reordered and renumbered. */
    AUDIT_FINDING_PREV_HASH_MISMATCH,
    /* The stored hash is not the hash of the record's content: a field was changed. */
    AUDIT_FINDING_HASH_MISMATCH,
    /* A checkpoint's fields are out of range (seq 0, bad key id). */
    AUDIT_FINDING_INVALID_CHECKPOINT,
    /* A checkpoint names a key the verifier does not have: forged, or a key is missing. */
    AUDIT_FINDING_CHECKPOINT_UNKNOWN_KEY,
    /* A checkpoint's signature does not verify: forged or changed. */
    AUDIT_FINDING_CHECKPOINT_SIGNATURE_INVALID,
    /* A validly signed checkpoint disagrees with the trail's hash at its seq: the chain was
     * rewritten up to there. */
    AUDIT_FINDING_CHECKPOINT_HASH_MISMATCH,
    /* A validly signed checkpoint covers a record the trail does not have: cut off its end. */
    AUDIT_FINDING_CHECKPOINT_BEYOND_TAIL,
};

/* The stable machine name of a kind: "ok", "hash_mismatch", "checkpoint_beyond_tail", ... */
const char *audit_finding_kind_name(enum audit_finding_kind kind);

struct audit_finding {
    enum audit_finding_kind kind;
    /* Where: for a record finding, the seq the record at that place should have (so a record
     * whose seq was changed from 42 is reported at 42, and missing records at the first one
     * missing); for a checkpoint finding, the checkpoint's seq. 0 for AUDIT_OK. */
    uint64_t seq;
    char message[LIMIT_AUDIT_FINDING_MESSAGE_BYTES]; /* one human sentence */
};

struct audit_verify_stats {
    uint64_t records;              /* records given */
    uint64_t checkpoints;          /* checkpoints given */
    uint64_t checkpoints_verified; /* signature and hash both good */
    uint64_t findings;             /* every finding, the first included */
    uint64_t last_seq;             /* the trail's last seq (after_seq when no record) */
    uint8_t last_hash[AUDIT_HASH_BYTES];
    uint64_t last_checkpoint_seq; /* highest verified checkpoint, 0 when none */
    /* Records after the last verified checkpoint: the part that could have been cut off or
     * rewritten unseen, unless compared with a checkpoint kept elsewhere. */
    uint64_t records_unsigned;
};

struct audit_verify;

/* Starts verifying a trail whose first record to come has seq after_seq + 1. A whole trail:
 * after_seq 0 and after_hash NULL. A trail whose older records were archived: after_seq and
 * after_hash of the last archived record, taken from a verified checkpoint. keys is borrowed
 * and must outlive the verification (NULL: no keys, every checkpoint is unknown). Returns 0,
 * -EINVAL (after_seq 0 with a non-zero hash, or over the limit), -ENOMEM. */
int audit_verify_new(const struct audit_verifier *keys, uint64_t after_seq,
                     const uint8_t after_hash[AUDIT_HASH_BYTES], struct audit_verify **out);
/* Checks the next record. Returns 0 with *out filled (kind AUDIT_OK or a finding); -EIO. */
int audit_verify_record(struct audit_verify *v, const struct audit_record *r,
                        struct audit_finding *out);
/* Checks a checkpoint's key and signature now, and its hash now or when its record comes.
 * Returns 0 with *out filled; -EINVAL when it comes out of the order above (a caller's
 * mistake, not a finding); -ENOSPC when LIMIT_AUDIT_VERIFY_PENDING_MAX checkpoints already
 * wait for their records (feed merged by seq instead); -ENOMEM; -EIO. */
int audit_verify_checkpoint(struct audit_verify *v, const struct audit_checkpoint *cp,
                            struct audit_finding *out);
/* Ends the trail: checkpoints still waiting are beyond its tail. Writes the first finding of
 * the whole verification into *first (kind AUDIT_OK when the trail verified) and the counts into
 * *stats (may be NULL). Returns 0. No record or checkpoint may be given afterwards. */
int audit_verify_finish(struct audit_verify *v, struct audit_finding *first,
                        struct audit_verify_stats *stats);
void audit_verify_free(struct audit_verify *v);

#endif
