/*
 * audit_internal.h — what the files of src/audit share and nothing else uses.
 */
#ifndef LEDGERD_AUDIT_AUDIT_INTERNAL_H
#define LEDGERD_AUDIT_AUDIT_INTERNAL_H

#include <stddef.h>

#include "audit/audit.h"

/* A checkpoint's canonical message has fixed-size fields: at most about 190 bytes. */
#define AUDIT_CHECKPOINT_CANONICAL_BYTES 256

/* Writes the canonical message of cp into out (no allocation) and its length into *len_out.
 * Returns 0 or -EINVAL when cp's fields are out of range (seq 0, bad key id). */
int audit_checkpoint_encode(const struct audit_checkpoint *cp,
                            char out[AUDIT_CHECKPOINT_CANONICAL_BYTES], size_t *len_out);

#endif
