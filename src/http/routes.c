/*
 * routes.c — the route table (data: method, template, handler, scope, body limit) and the
 * handlers behind it: probes, account and transfer creation (validated here, committed by the
 * commit worker), and reads (answered on the I/O thread from the store's read connections):
 * accounts, transfers, their lists and the pages of the audit trail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/sha256.h"
#include "http/http_internal.h"
#include "ledger/render.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "ops/dashboard.h"
#include "ops/ops.h"

const struct http_route http_routes[] = {
    {HTTP_GET, "/livez", http_handle_livez, "public", HTTP_BODY_NONE, false},
    {HTTP_GET, "/readyz", http_handle_readyz, "public", HTTP_BODY_NONE, false},
    {HTTP_GET, "/metrics", http_handle_metrics, "public", HTTP_BODY_NONE, false},
    {HTTP_GET, "/ops/dashboard", http_handle_ops_dashboard, "public", HTTP_BODY_NONE, false},
    {HTTP_POST, "/v1/accounts", http_handle_account_create, "ledger:write", HTTP_BODY_DEFAULT,
     true},
    {HTTP_GET, "/v1/accounts", http_handle_accounts_list, "ledger:read", HTTP_BODY_NONE, false},
    {HTTP_GET, "/v1/accounts/{id}", http_handle_account_get, "ledger:read", HTTP_BODY_NONE, false},
    {HTTP_GET, "/v1/accounts/{id}/transfers", http_handle_account_transfers, "ledger:read",
     HTTP_BODY_NONE, false},
    {HTTP_POST, "/v1/transfers", http_handle_transfer_create, "ledger:write", HTTP_BODY_DEFAULT,
     true},
    {HTTP_POST, "/v1/transfers/batch", http_handle_transfer_batch, "ledger:write", HTTP_BODY_BATCH,
     true},
    {HTTP_GET, "/v1/transfers/{id}", http_handle_transfer_get, "ledger:read", HTTP_BODY_NONE,
     false},
    {HTTP_GET, "/v1/audit", http_handle_audit_list, "audit:read", HTTP_BODY_NONE, false},
};
const size_t http_routes_count = sizeof(http_routes) / sizeof(http_routes[0]);

/* ---------------------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------------------- */

/* Matches path against template segment by segment. Returns -1 when it does not match, else
 * the number of literal segments (more is more specific). The {id} segment is copied out. */
static int http_template_match(const char *tmpl, const char *path, char *id, size_t id_cap,
                               bool *id_valid)
{
    int literal = 0;
    const char *t = tmpl;
    const char *p = path;
    while (*t != '\0' && *p != '\0') {
        if (*t != '/' || *p != '/') {
            return -1;
        }
        t++;
        p++;
        const char *t_end = strchr(t, '/');
        const char *p_end = strchr(p, '/');
        size_t t_len = t_end != NULL ? (size_t)(t_end - t) : strlen(t);
        size_t p_len = p_end != NULL ? (size_t)(p_end - p) : strlen(p);
        if (t_len == 4 && memcmp(t, "{id}", 4) == 0) {
            if (p_len == 0) {
                return -1;
            }
            *id_valid = ids_resource_id_valid(p, p_len);
            if (*id_valid) {
                ASSERT(p_len < id_cap);
                memcpy(id, p, p_len);
                id[p_len] = '\0';
            }
        } else {
            if (t_len != p_len || memcmp(t, p, t_len) != 0) {
                return -1;
            }
            literal++;
        }
        t += t_len;
        p += p_len;
    }
    return *t == '\0' && *p == '\0' ? literal : -1;
}

void http_route_match(struct http_request *req)
{
    int best = -1;
    req->route = NULL;
    req->path_route = NULL;
    req->allow = 0;
    for (size_t i = 0; i < http_routes_count; i++) {
        const struct http_route *r = &http_routes[i];
        char id[LIMIT_ID_LEN_MAX + 1];
        bool id_valid = false;
        int score = http_template_match(r->template, req->path, id, sizeof(id), &id_valid);
        if (score < 0) {
            continue;
        }
        req->allow |= (unsigned)r->method;
        if (req->path_route == NULL) {
            req->path_route = r;
        }
        if (r->method == req->method && score > best) {
            best = score;
            req->route = r;
            req->path_id_valid = id_valid;
            memcpy(req->path_id, id_valid ? id : "", id_valid ? strlen(id) + 1 : 1);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Probes
 * ------------------------------------------------------------------------------------- */

enum http_outcome http_handle_livez(struct http_request *req)
{
    buf_append_str(&req->resp, "{\"status\":\"ok\"}");
    http_reply_json(req, 200);
    return HTTP_REPLIED;
}

/* The readiness checks, as /readyz and ledgerd_up see them. */
static void http_readiness(struct http_server *srv, struct ops_readiness *r)
{
    r->database = store_ping(srv->store) == 0;
    r->migrations = srv->migrations_current;
    r->commits = commit_healthy(srv->commit);
    r->draining = atomic_load(&srv->draining);
}

enum http_outcome http_handle_readyz(struct http_request *req)
{
    struct ops_readiness r;
    http_readiness(req->server, &r);
    struct buf checks;
    buf_init(&checks, 512);
    (void)ops_render_checks(&r, &checks);
    if (ops_ready(&r)) {
        buf_appendf(&req->resp, "{\"status\":\"ready\",\"checks\":%s}", checks.data);
        http_reply_json(req, 200);
    } else {
        struct buf extra;
        buf_init(&extra, 600);
        buf_appendf(&extra, "\"checks\":%s", checks.data);
        req->retry_after_seconds = 1;
        http_problem(req, 503, "not_ready", "one or more readiness checks fail", NULL, 0,
                     extra.data);
        buf_release(&extra);
    }
    buf_release(&checks);
    return HTTP_REPLIED;
}

/* GET /metrics: the gauges that are read rather than counted are set here, then every metric
 * is rendered in the format the Accept header asks for (Prometheus text by default). */
enum http_outcome http_handle_metrics(struct http_request *req)
{
    struct http_server *srv = req->server;
    struct ops_readiness r;
    http_readiness(srv, &r);
    metrics_set(METRIC_UP, 0, ops_ready(&r) ? 1 : 0);
    metrics_set(METRIC_HTTP_IN_FLIGHT, 0, (int64_t)http_server_in_flight(srv));
    metrics_set(METRIC_COMMIT_QUEUE_DEPTH, 0, (int64_t)commit_queue_depth(srv->commit));
    metrics_set(METRIC_COMMIT_QUEUE_CAPACITY, 0, (int64_t)commit_queue_capacity(srv->commit));

    const char *accept = NULL;
    size_t accept_len = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT,
                                      strlen(MHD_HTTP_HEADER_ACCEPT), &accept,
                                      &accept_len) != MHD_YES) {
        accept = NULL;
        accept_len = 0;
    }
    enum metrics_format fmt = metrics_format_negotiate(accept, accept_len);
    buf_release(&req->resp);
    buf_init(&req->resp, LIMIT_METRICS_SCRAPE_BYTES_MAX);
    if (metrics_render(fmt, &req->resp) != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "metrics: the scrape did not fit %zu bytes",
                 LIMIT_METRICS_SCRAPE_BYTES_MAX);
        http_problem(req, 500, "internal_error", "the metrics did not fit the response", NULL, 0,
                     NULL);
        return HTTP_REPLIED;
    }
    req->status = 200;
    req->content_type = metrics_content_type(fmt);
    return HTTP_REPLIED;
}

/* ---------------------------------------------------------------------------------------
 * Creation: decode and validate, then hand to the commit worker
 * ------------------------------------------------------------------------------------- */

static enum http_outcome http_validation_failed(struct http_request *req,
                                                const struct ledger_decode_errors *errs)
{
    ASSERT(errs->count >= 1);
    const struct problem_field_error *first = &errs->items[0];
    if (strcmp(first->code, "malformed_json") == 0) {
        http_problem(req, 400, "malformed_json", first->detail, NULL, 0, NULL);
        return HTTP_REPLIED;
    }
    char detail[200];
    if (errs->count_total == 1) {
        snprintf(detail, sizeof(detail), "%s", first->detail);
    } else {
        snprintf(detail, sizeof(detail), "%zu problems in the request body", errs->count_total);
    }
    char extra[48] = "";
    if (errs->count_total > errs->count) {
        snprintf(extra, sizeof(extra), "\"errors_total\":%zu", errs->count_total);
    }
    http_problem(req, 400, first->code, detail, errs->items, errs->count,
                 extra[0] != '\0' ? extra : NULL);
    return HTTP_REPLIED;
}

/* The arena holds metadata text; the compact form never exceeds the body's length. */
static int http_arena_init(struct http_request *req)
{
    req->arena.cap = req->body.len + 1;
    req->arena.len = 0;
    req->arena.base = malloc(req->arena.cap);
    return req->arena.base != NULL ? 0 : -ENOMEM;
}

static enum http_outcome http_out_of_memory(struct http_request *req)
{
    req->retry_after_seconds = 1;
    http_problem(req, 503, "queue_full", "the server is out of memory for requests", NULL, 0, NULL);
    return HTTP_REPLIED;
}

static const char *http_body(const struct http_request *req)
{
    return req->body.data != NULL ? req->body.data : "";
}

enum http_outcome http_handle_account_create(struct http_request *req)
{
    if (http_arena_init(req) != 0) {
        return http_out_of_memory(req);
    }
    struct ledger_decode_errors errs;
    memset(&errs, 0, sizeof(errs));
    if (ledger_decode_account(http_body(req), req->body.len, &req->cmd.account, &req->arena,
                              &errs) != 0) {
        return http_validation_failed(req, &errs);
    }
    if (req->cmd.account.id[0] == '\0') {
        ids_uuidv7(clock_unix_ms(), req->cmd.account.id);
    }
    req->cmd.kind = COMMIT_ACCOUNT_CREATE;
    return http_submit(req);
}

enum http_outcome http_handle_transfer_create(struct http_request *req)
{
    if (http_arena_init(req) != 0) {
        return http_out_of_memory(req);
    }
    struct ledger_decode_errors errs;
    memset(&errs, 0, sizeof(errs));
    if (ledger_decode_transfer(http_body(req), req->body.len, &req->transfer, &req->arena, &errs) !=
        0) {
        return http_validation_failed(req, &errs);
    }
    if (req->transfer.id[0] == '\0') {
        ids_uuidv7(clock_unix_ms(), req->transfer.id);
    }
    req->cmd.kind = COMMIT_TRANSFER_CREATE;
    req->cmd.transfers = &req->transfer;
    req->cmd.transfers_count = 1;
    return http_submit(req);
}

enum http_outcome http_handle_transfer_batch(struct http_request *req)
{
    if (http_arena_init(req) != 0) {
        return http_out_of_memory(req);
    }
    req->batch = calloc(LIMIT_BATCH_TRANSFERS_MAX, sizeof(*req->batch));
    if (req->batch == NULL) {
        return http_out_of_memory(req);
    }
    struct ledger_decode_errors errs;
    memset(&errs, 0, sizeof(errs));
    size_t n = 0;
    if (ledger_decode_transfer_batch(http_body(req), req->body.len, req->batch,
                                     LIMIT_BATCH_TRANSFERS_MAX, &n, &req->arena, &errs) != 0) {
        return http_validation_failed(req, &errs);
    }
    ASSERT(n >= 1 && n <= LIMIT_BATCH_TRANSFERS_MAX);
    int64_t now_ms = clock_unix_ms();
    for (size_t i = 0; i < n; i++) {
        if (req->batch[i].id[0] == '\0') {
            ids_uuidv7(now_ms, req->batch[i].id);
        }
    }
    req->cmd.kind = COMMIT_TRANSFER_BATCH;
    req->cmd.transfers = req->batch;
    req->cmd.transfers_count = n;
    return http_submit(req);
}

/* ---------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------- */

static enum http_outcome http_storage_failed(struct http_request *req)
{
    req->retry_after_seconds = 1;
    http_problem(req, 503, "storage_unavailable", "the database is unavailable", NULL, 0, NULL);
    return HTTP_REPLIED;
}

static int http_render_account_row(void *ctx, const struct ledger_account *a)
{
    struct http_request *req = ctx;
    return ledger_render_account(&req->resp, a);
}

static int http_render_transfer_row(void *ctx, const struct ledger_transfer *t)
{
    struct http_request *req = ctx;
    return ledger_render_transfer(&req->resp, t);
}

/* Finishes a point read: 200 with what the row callback rendered, 404 with not_found_code,
 * or 503 when the store failed. */
static enum http_outcome http_point_read_done(struct http_request *req, int rc,
                                              const char *not_found_code,
                                              const char *not_found_detail)
{
    if (rc == -ENOENT) {
        http_problem(req, 404, not_found_code, not_found_detail, NULL, 0, NULL);
        return HTTP_REPLIED;
    }
    if (rc != 0) {
        return http_storage_failed(req);
    }
    http_reply_json(req, 200);
    return HTTP_REPLIED;
}

enum http_outcome http_handle_account_get(struct http_request *req)
{
    int rc = req->path_id_valid
                 ? store_account_get(req->server->store, req->path_id, http_render_account_row, req)
                 : -ENOENT;
    return http_point_read_done(req, rc, "account_not_found", "no account has this id");
}

enum http_outcome http_handle_transfer_get(struct http_request *req)
{
    int rc = req->path_id_valid ? store_transfer_get(req->server->store, req->path_id,
                                                     http_render_transfer_row, req)
                                : -ENOENT;
    return http_point_read_done(req, rc, "transfer_not_found", "no transfer has this id");
}

/* Query parameters of a list: ?limit=&cursor= and, where allowed, ?ledger=. */
struct http_list_query {
    bool ledger_allowed;
    uint32_t limit;
    uint64_t after_seq;
    char ledger[LIMIT_LEDGER_LEN_MAX + 1];
    bool has_ledger;
    const char *error_code; /* first problem found */
    char error_detail[160];
};

/* Cursors are opaque to clients: "c1" and the last seq seen as 16 hex digits. */
#define HTTP_CURSOR_LEN 18

static void http_cursor_format(uint64_t seq, char out[HTTP_CURSOR_LEN + 1])
{
    snprintf(out, HTTP_CURSOR_LEN + 1, "c1%016llx", (unsigned long long)seq);
}

static bool http_cursor_parse(const char *s, uint64_t *seq)
{
    if (strlen(s) != HTTP_CURSOR_LEN || s[0] != 'c' || s[1] != '1') {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 2; i < HTTP_CURSOR_LEN; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        v = (v << 4) | d;
    }
    *seq = v;
    return true;
}

static void http_list_error(struct http_list_query *q, const char *code, const char *detail)
{
    if (q->error_code == NULL) {
        q->error_code = code;
        snprintf(q->error_detail, sizeof(q->error_detail), "%s", detail);
    }
}

static enum MHD_Result http_list_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct http_list_query *q = cls;
    if (strcmp(key, "limit") == 0) {
        uint32_t v = 0;
        size_t len = value != NULL ? strlen(value) : 0;
        bool ok = len >= 1 && len <= 4;
        for (size_t i = 0; ok && i < len; i++) {
            ok = value[i] >= '0' && value[i] <= '9';
            v = v * 10 + (uint32_t)(value[i] - '0');
        }
        if (!ok || v < 1 || v > LIMIT_LIST_MAX || value[0] == '0') {
            http_list_error(q, "limit_invalid", "limit must be an integer from 1 to 1000");
        } else {
            q->limit = v;
        }
    } else if (strcmp(key, "cursor") == 0) {
        if (value == NULL || !http_cursor_parse(value, &q->after_seq)) {
            http_list_error(q, "cursor_invalid", "cursor is not one this server issued");
        }
    } else if (q->ledger_allowed && strcmp(key, "ledger") == 0) {
        if (value == NULL || !ids_ledger_valid(value, strlen(value))) {
            http_list_error(q, "ledger_invalid", "ledger must match ^[A-Z0-9_]{1,16}$");
        } else {
            snprintf(q->ledger, sizeof(q->ledger), "%s", value);
            q->has_ledger = true;
        }
    } else {
        http_list_error(q, "unknown_parameter", "this list does not take that query parameter");
    }
    return MHD_YES;
}

struct http_list_render {
    struct http_request *req;
    bool account_rows;
    size_t rows;
};

static int http_list_row_account(void *ctx, const struct ledger_account *a)
{
    struct http_list_render *lr = ctx;
    if (lr->rows++ > 0 && buf_append_char(&lr->req->resp, ',') != 0) {
        return -ENOSPC;
    }
    return ledger_render_account(&lr->req->resp, a);
}

static int http_list_row_transfer(void *ctx, const struct ledger_transfer *t)
{
    struct http_list_render *lr = ctx;
    if (lr->rows++ > 0 && buf_append_char(&lr->req->resp, ',') != 0) {
        return -ENOSPC;
    }
    return ledger_render_transfer(&lr->req->resp, t);
}

static int http_account_exists_row(void *ctx, const struct ledger_account *a)
{
    (void)ctx;
    (void)a;
    return 0;
}

/* Reads ?limit=&cursor= (and ?ledger= where allowed) into q. Returns false after answering 400
 * with the first problem found. */
static bool http_list_query_read(struct http_request *req, struct http_list_query *q,
                                 bool ledger_allowed)
{
    memset(q, 0, sizeof(*q));
    q->ledger_allowed = ledger_allowed;
    q->limit = LIMIT_LIST_DEFAULT;
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, http_list_arg, q);
    if (q->error_code != NULL) {
        http_problem(req, 400, q->error_code, q->error_detail, NULL, 0, NULL);
        return false;
    }
    ASSERT(q->limit >= 1 && q->limit <= LIMIT_LIST_MAX);
    return true;
}

/* Closes a page whose rows follow "{\"data\":[" in req->resp: the next cursor (null on the last
 * page), then the 200, or a 500 when the page did not fit the response. */
static enum http_outcome http_list_done(struct http_request *req, const struct store_page *page)
{
    int rc;
    if (page->more_out) {
        char cursor[HTTP_CURSOR_LEN + 1];
        http_cursor_format(page->last_seq_out, cursor);
        rc = buf_appendf(&req->resp, "],\"next_cursor\":\"%s\"}", cursor);
    } else {
        rc = buf_append_str(&req->resp, "],\"next_cursor\":null}");
    }
    if (rc != 0) {
        http_problem(req, 500, "internal_error", "the page did not fit the response", NULL, 0,
                     NULL);
        return HTTP_REPLIED;
    }
    http_reply_json(req, 200);
    return HTTP_REPLIED;
}

static enum http_outcome http_list(struct http_request *req, bool accounts)
{
    struct http_list_query q;
    if (!http_list_query_read(req, &q, accounts)) {
        return HTTP_REPLIED;
    }
    struct http_server *srv = req->server;
    if (!accounts) {
        int rc = req->path_id_valid
                     ? store_account_get(srv->store, req->path_id, http_account_exists_row, NULL)
                     : -ENOENT;
        if (rc == -ENOENT) {
            http_problem(req, 404, "account_not_found", "no account has this id", NULL, 0, NULL);
            return HTTP_REPLIED;
        }
        if (rc != 0) {
            return http_storage_failed(req);
        }
    }
    struct store_page page = {.after_seq = q.after_seq, .limit = q.limit};
    struct http_list_render lr = {req, accounts, 0};
    buf_append_str(&req->resp, "{\"data\":[");
    int rc = accounts ? store_accounts_list(srv->store, q.has_ledger ? q.ledger : NULL, &page,
                                            http_list_row_account, &lr)
                      : store_account_transfers_list(srv->store, req->path_id, &page,
                                                     http_list_row_transfer, &lr);
    if (rc != 0) {
        return http_storage_failed(req);
    }
    return http_list_done(req, &page);
}

enum http_outcome http_handle_accounts_list(struct http_request *req)
{
    return http_list(req, true);
}

enum http_outcome http_handle_account_transfers(struct http_request *req)
{
    return http_list(req, false);
}

/* ---------------------------------------------------------------------------------------
 * The audit trail (docs/security/audit.md), read-only
 * ------------------------------------------------------------------------------------- */

/* One record as the API's AuditRecord: the fields of `ledgerd audit export`, under the same
 * names and in the same order; empty text fields as "" (every member is always present, as in
 * the hashed encoding); hashes as 64 lower-case hex digits. A record that runs out of room
 * leaves the buffer as it found it. */
static int http_render_audit_record(struct buf *out, const struct audit_record *r)
{
    ASSERT(r->seq >= 1);
    const size_t start = out->len;
    const struct {
        const char *name;
        const char *value;
    } text[] = {
        {"actor", r->actor},       {"action", r->action}, {"resource", r->resource},
        {"decision", r->decision}, {"reason", r->reason}, {"request_id", r->request_id},
        {"trace_id", r->trace_id}, {"source", r->source},
    };
    char time_text[CLOCK_RFC3339_MS_LEN + 1];
    size_t time_len = clock_format_rfc3339_ms(r->time_unix_ms, time_text);
    ASSERT(time_len <= CLOCK_RFC3339_MS_LEN);
    char prev_hex[2 * AUDIT_HASH_BYTES + 1];
    char hash_hex[2 * AUDIT_HASH_BYTES + 1];
    sha256_hex(r->prev_hash, prev_hex);
    sha256_hex(r->hash, hash_hex);

    int rc = buf_appendf(out, "{\"seq\":%llu,\"time\":\"%s\",\"time_unix_ms\":%lld",
                         (unsigned long long)r->seq, time_text, (long long)r->time_unix_ms);
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]) && rc == 0; i++) {
        rc = buf_appendf(out, ",\"%s\":", text[i].name);
        if (rc == 0) {
            rc = buf_append_json_str(out, text[i].value, strlen(text[i].value));
        }
    }
    if (rc == 0) {
        rc = buf_appendf(out, ",\"prev_hash\":\"%s\",\"hash\":\"%s\"}", prev_hex, hash_hex);
    }
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL) {
            out->data[start] = '\0';
        }
    }
    return rc;
}

struct http_audit_render {
    struct http_request *req;
    size_t rows;
    uint64_t last_seq; /* the seq of the row before, to prove the page is in seq order */
};

static int http_list_row_audit(void *ctx, const struct audit_record *r)
{
    struct http_audit_render *ar = ctx;
    ASSERT(r->seq > ar->last_seq);
    ar->last_seq = r->seq;
    if (ar->rows++ > 0 && buf_append_char(&ar->req->resp, ',') != 0) {
        return -ENOSPC;
    }
    return http_render_audit_record(&ar->req->resp, r);
}

/* GET /v1/audit: the trail in seq order, a page at a time, with the lists' limit and cursor
 * (the cursor carries the last seq given). Read on this thread's read connection: the records
 * the commit worker appended and committed are there. */
enum http_outcome http_handle_audit_list(struct http_request *req)
{
    struct http_list_query q;
    if (!http_list_query_read(req, &q, false)) {
        return HTTP_REPLIED;
    }
    struct store_page page = {.after_seq = q.after_seq, .limit = q.limit};
    struct http_audit_render ar = {req, 0, q.after_seq};
    buf_append_str(&req->resp, "{\"data\":[");
    int rc = store_audit_records(req->server->store, &page, http_list_row_audit, &ar);
    if (rc == -ENOSPC) {
        http_problem(req, 500, "internal_error", "the page did not fit the response", NULL, 0,
                     NULL);
        return HTTP_REPLIED;
    }
    if (rc != 0) {
        return http_storage_failed(req);
    }
    ASSERT(ar.rows <= q.limit);
    return http_list_done(req, &page);
}

/* GET /ops/dashboard: the self-contained live dashboard page (src/ops/dashboard.html), which
 * polls /metrics from the same origin. Its CSP allows inline script and style only. */
enum http_outcome http_handle_ops_dashboard(struct http_request *req)
{
    size_t len = 0;
    const char *page = ops_dashboard_html(&len);
    if (buf_append(&req->resp, page, len) != 0) {
        http_problem(req, 500, "internal_error", "the page did not fit the response", NULL, 0,
                     NULL);
        return HTTP_REPLIED;
    }
    req->status = 200;
    req->content_type = OPS_DASHBOARD_CONTENT_TYPE;
    req->cache_control = OPS_DASHBOARD_CACHE_CONTROL;
    req->content_security_policy = OPS_DASHBOARD_CSP;
    return HTTP_REPLIED;
}
