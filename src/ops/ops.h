/*
 * ops.h — the operational endpoints' logic: liveness and readiness.
 *
 * Readiness is the conjunction of named checks; the HTTP layer gathers their values and this
 * module decides and renders the answer, so the rules are testable without a server.
 */
#ifndef LEDGERD_OPS_OPS_H
#define LEDGERD_OPS_OPS_H

#include <stdbool.h>

#include "core/buf.h"

struct ops_readiness {
    bool database;   /* the database answered a query */
    bool migrations; /* every compiled-in migration is applied, no drift */
    bool commits;    /* the last commit succeeded */
    bool draining;   /* shutting down */
};

/* True when every check passes. */
bool ops_ready(const struct ops_readiness *r);
/* Appends the "checks" object: {"database":"ok"|"failing",...}. 0 or a buf error. */
int ops_render_checks(const struct ops_readiness *r, struct buf *out);

#endif
