/*
 * render.h — ledger objects as JSON, written straight into a response buffer.
 *
 * Representations follow docs/api/openapi.yaml: amounts as decimal strings, flags as arrays of
 * names, metadata verbatim (or null), times as RFC 3339 with milliseconds.
 */
#ifndef LEDGERD_LEDGER_RENDER_H
#define LEDGERD_LEDGER_RENDER_H

#include <stddef.h>

#include "core/buf.h"
#include "ledger/ledger.h"

/* Each appends one JSON value and returns 0 or a buf error. */
int ledger_render_account(struct buf *out, const struct ledger_account *a);
int ledger_render_transfer(struct buf *out, const struct ledger_transfer *t);
/* {"results":[{"index":i,"id":"...","result":"created"},...]} */
int ledger_render_batch_results(struct buf *out, const struct ledger_transfer *items,
                                const enum ledger_result *results, size_t n);

#endif
