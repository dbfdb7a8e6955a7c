/*
 * ops.c — readiness rules and their JSON form.
 */
#include "ops/ops.h"

#include "core/assert.h"

bool ops_ready(const struct ops_readiness *r)
{
    ASSERT(r != NULL);
    return r->database && r->migrations && r->commits && !r->draining;
}

int ops_render_checks(const struct ops_readiness *r, struct buf *out)
{
    ASSERT(r != NULL && out != NULL);
    return buf_appendf(out,
                       "{\"database\":\"%s\",\"migrations\":\"%s\",\"commits\":\"%s\","
                       "\"draining\":\"%s\"}",
                       r->database ? "ok" : "failing", r->migrations ? "ok" : "pending",
                       r->commits ? "ok" : "failing", r->draining ? "draining" : "ok");
}
