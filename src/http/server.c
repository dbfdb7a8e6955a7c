/*
 * server.c — libmicrohttpd glue: the daemon, the per-request pipeline and the reply writer.
 *
 * The access handler is called several times per request: once when the headers are in (we
 * read the correlation headers, match the route, and refuse early what can be refused before
 * the body: 405, 413 by Content-Length, 415), once per body chunk (bounded accumulation), and
 * once more when the body is complete, which runs the handler. A handler that needs the commit
 * worker suspends the connection; the worker's completion resumes it and the handler is called
 * a last time to send the reply. When a request may wait on the network (PostgreSQL, Redis),
 * the connection is suspended when its body is in and the request runs on the database work
 * pool (dbwork.c), credentials included; the pool resumes the connection with the reply. The
 * completion callback writes the access log line and releases what the request acquired; the
 * request object itself belongs to the connection and serves its next request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/scope.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/ids.h"
#include "http/http_internal.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/otlp.h"

/* Response bodies the worker writes: the largest is a batch result of 8190 items. */
#define HTTP_RESPONSE_BYTES_MAX ((size_t)16 * 1024 * 1024)

static const char http_principal_anonymous[] = "anonymous";

/* The methods ledgerd names: for parsing the request line and for building Allow. */
static const struct {
    const char *name;
    enum http_method bit;
} http_methods[] = {{"GET", HTTP_GET},        {"POST", HTTP_POST},     {"PUT", HTTP_PUT},
                    {"PATCH", HTTP_PATCH},    {"DELETE", HTTP_DELETE}, {"HEAD", HTTP_HEAD},
                    {"OPTIONS", HTTP_OPTIONS}};
#define HTTP_METHODS_COUNT (sizeof(http_methods) / sizeof(http_methods[0]))

/* ---------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------- */

void http_reply_json(struct http_request *req, int status)
{
    req->status = status;
    req->content_type = "application/json";
}

void http_problem(struct http_request *req, int status, const char *code, const char *detail,
                  const struct problem_field_error *errors, size_t errors_count, const char *extra)
{
    ASSERT(status >= 400 && status <= 599);
    ASSERT(code != NULL);
    buf_reset(&req->resp);
    if (problem_write(&req->resp, status, code, detail, req->request_id, errors, errors_count,
                      extra) != 0) {
        /* Only an enormous detail can fail here; fall back to the bare document. */
        buf_reset(&req->resp);
        (void)problem_write(&req->resp, status, code, NULL, req->request_id, NULL, 0, NULL);
    }
    req->status = status;
    req->content_type = "application/problem+json";
    req->problem_code = code;
    /* Logged once, in the request's access line (with this code and a severity by status). */
}

static enum MHD_Result http_add_header(struct MHD_Response *r, const char *name, const char *value)
{
    return MHD_add_response_header(r, name, value);
}

/* Queues req's reply on its connection. Every reply, error or not, leaves through here, so
 * every one carries X-Request-Id and traceresponse. */
static enum MHD_Result http_send(struct http_request *req)
{
    ASSERT(req->status >= 100 && req->status <= 599);
    ASSERT(req->state != HTTP_REQ_REPLIED);
    size_t len = 0;
    char *data = buf_take(&req->resp, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data != NULL ? data : (char *)"",
                                                             data != NULL ? MHD_RESPMEM_MUST_FREE
                                                                          : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    req->resp_bytes = len;
    char traceresponse[TRACE_PARENT_LEN + 1];
    trace_format_response(&req->trace, traceresponse);
    enum MHD_Result ok = http_add_header(r, "X-Request-Id", req->request_id);
    ok = ok && http_add_header(r, "traceresponse", traceresponse);
    if (len > 0 && req->content_type != NULL) {
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    }
    if (req->cache_control != NULL) {
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, req->cache_control);
    }
    if (req->content_security_policy != NULL) {
        ok = ok && http_add_header(r, "Content-Security-Policy", req->content_security_policy);
    }
    if (req->location[0] != '\0') {
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_LOCATION, req->location);
    }
    if (req->replayed) {
        ok = ok && http_add_header(r, "Idempotent-Replayed", "true");
    }
    if (req->www_authenticate[0] != '\0') {
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, req->www_authenticate);
    }
    if (req->retry_after_seconds > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%u", req->retry_after_seconds);
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (req->status == 405) {
        char allow[64] = "";
        for (size_t i = 0; i < HTTP_METHODS_COUNT; i++) {
            if (req->allow & http_methods[i].bit) {
                size_t used = strlen(allow);
                snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "",
                         http_methods[i].name);
            }
        }
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    if (req->close_connection) {
        ok = ok && http_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (!ok) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    req->state = HTTP_REQ_REPLIED;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Request set-up: correlation headers, route, early refusals
 * ------------------------------------------------------------------------------------- */

static enum http_method http_method_parse(const char *m)
{
    for (size_t i = 0; i < HTTP_METHODS_COUNT; i++) {
        if (strcmp(m, http_methods[i].name) == 0) {
            return http_methods[i].bit;
        }
    }
    return HTTP_OTHER;
}

static const char *http_header(struct http_request *req, const char *name, size_t *len)
{
    const char *v = NULL;
    size_t n = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND, name, strlen(name), &v, &n) !=
        MHD_YES) {
        return NULL;
    }
    *len = n;
    return v;
}

/* "application/json" with optional parameters, case-insensitive (RFC 9110 §8.3.1). */
static bool http_media_type_is_json(const char *v, size_t len)
{
    static const char json[] = "application/json";
    size_t n = sizeof(json) - 1;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    if (len < n || strncasecmp(v, json, n) != 0) {
        return false;
    }
    return len == n || v[n] == ';' || v[n] == ' ' || v[n] == '\t';
}

static void http_read_headers(struct http_request *req)
{
    size_t len = 0;
    const char *v = http_header(req, "X-Request-Id", &len);
    if (v != NULL && ids_request_id_valid(v, len)) {
        memcpy(req->request_id, v, len);
        req->request_id[len] = '\0';
    } else {
        ids_random_hex(req->request_id, 16);
    }

    size_t tp_len = 0;
    size_t ts_len = 0;
    const char *tp = http_header(req, "traceparent", &tp_len);
    const char *ts = http_header(req, "tracestate", &ts_len);
    trace_begin(&req->trace, tp, tp_len, ts, ts_len);

    v = http_header(req, "Idempotency-Key", &len);
    if (v != NULL) {
        req->has_idempotency_key = true;
        if (ids_idempotency_key_valid(v, len)) {
            memcpy(req->idempotency_key, v, len);
            req->idempotency_key[len] = '\0';
        } else {
            req->idempotency_key_invalid = true;
        }
    }

    v = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE, &len);
    req->has_content_type = v != NULL;
    req->content_type_json = v != NULL && http_media_type_is_json(v, len);
}

/* Content-Length when present and well formed; UINT64_MAX when it says more than we take. */
static bool http_content_length(struct http_request *req, uint64_t *out)
{
    size_t len = 0;
    const char *v = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH, &len);
    if (v == NULL || len == 0) {
        return false;
    }
    if (len > 19) {
        *out = UINT64_MAX; /* more digits than any body we take */
        return true;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return true;
}

/* Copies header name's value into out (cut to out_len - 1 bytes); NULL when absent. */
static const char *http_header_copy(struct http_request *req, const char *name, char *out,
                                    size_t out_len)
{
    size_t len = 0;
    const char *v = http_header(req, name, &len);
    if (v == NULL) {
        return NULL;
    }
    len = len < out_len - 1 ? len : out_len - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return out;
}

/* The peer's IP address as text into out ("" when unknown). */
static void http_client_address(struct http_request *req, char *out, size_t out_len)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        const void *addr = sa->sa_family == AF_INET6
                               ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                               : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (inet_ntop(sa->sa_family, addr, out, (socklen_t)out_len) == NULL) {
            out[0] = '\0';
        }
    }
}

/* Fills r for this request: who, what to, the decision and why (reason may be ""), and the
 * request's ids. Fields that do not fit their limit are left empty rather than cut. */
static void http_audit_fill(struct http_request *req, struct audit_record *r, const char *action,
                            const char *decision, const char *reason)
{
    memset(r, 0, sizeof(*r));
    char resource[LIMIT_AUDIT_RESOURCE_LEN_MAX + 1];
    const char *route = req->route != NULL ? req->route->template : req->path;
    (void)snprintf(resource, sizeof(resource), "%s %s", req->method_name, route);
    char source[INET6_ADDRSTRLEN];
    http_client_address(req, source, sizeof(source));
    r->time_unix_ms = clock_unix_ms();
    const struct {
        enum audit_field f;
        const char *v;
    } fields[] = {
        {AUDIT_FIELD_ACTOR, req->actor},
        {AUDIT_FIELD_ACTION, action},
        {AUDIT_FIELD_RESOURCE, resource},
        {AUDIT_FIELD_DECISION, decision},
        {AUDIT_FIELD_REASON, reason},
        {AUDIT_FIELD_REQUEST_ID, req->request_id},
        {AUDIT_FIELD_TRACE_ID, req->trace.trace_id},
        {AUDIT_FIELD_SOURCE, source},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        (void)audit_record_set(r, fields[i].f, fields[i].v, strlen(fields[i].v));
    }
    if (r->actor[0] == '\0') {
        /* A name the trail cannot hold (a JWT subject with a C1 control character, valid JSON
         * and refused by the record's rules): its digest stands in, so the record still names
         * one principal, and one caller's odd name can never fail a whole batch. */
        uint8_t digest[SHA256_BYTES];
        char actor[5 + 2 * SHA256_BYTES + 1] = "name#";
        (void)sha256_digest(req->actor, strlen(req->actor), digest);
        sha256_hex(digest, actor + 5);
        (void)audit_record_set(r, AUDIT_FIELD_ACTOR, actor, strlen(actor));
    }
}

/* Hands the record of a refused request to the commit worker (it has no effect to share a
 * transaction with). */
static void http_audit_refusal(struct http_request *req, const char *action, const char *reason)
{
    struct audit_record r;
    http_audit_fill(req, &r, action, "deny", reason);
    (void)commit_audit_note(req->server->commit, &r);
}

/* Starts the request's server span when the sampler takes it (OpenTelemetry HTTP semantic
 * conventions: the attributes a server knows when a request arrives). Called once the route is
 * known, so the span carries its template; its start is the request's first moment. */
static void http_trace_start(struct http_request *req, const char *version)
{
    if (!otlp_sample(&req->trace)) {
        return;
    }
    char host[256];
    const char *server_address = http_header_copy(req, MHD_HTTP_HEADER_HOST, host, sizeof(host));
    if (server_address != NULL) {
        /* Host is host[:port], an IPv6 literal in brackets (RFC 9110 §7.2). */
        char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
        if (end != NULL) {
            *end = '\0';
        }
        server_address = host[0] == '[' ? host + 1 : host;
    } else {
        server_address = req->server->cfg->listen_host;
    }
    char client[INET6_ADDRSTRLEN];
    http_client_address(req, client, sizeof(client));
    char agent[LIMIT_SPAN_ATTR_VALUE_LEN_MAX + 1];
    const char *user_agent =
        http_header_copy(req, MHD_HTTP_HEADER_USER_AGENT, agent, sizeof(agent));
    const char *protocol = NULL;
    if (version != NULL && strncmp(version, "HTTP/", 5) == 0) {
        protocol = version + 5;
    }
    struct span_http_request sr = {
        .method = req->method_name,
        .path = req->path,
        .route = req->route != NULL ? req->route->template : NULL,
        .scheme = "http",
        .server_address = server_address,
        .server_port = req->server->port,
        .protocol_version = protocol,
        .client_address = client[0] != '\0' ? client : NULL,
        .user_agent = user_agent,
    };
    req->span = span_http_server_new(&req->trace, &sr, span_unix_ns_from_mono(req->start_mono_ns));
}

/* Prepares conn's request object (see http_connection_notify) for a new request. Only the
 * per-request scalars are zeroed; strings become "", and the ledger command waits for a route
 * that needs it (http_command_init). */
static void http_request_init(struct http_request *req, struct http_server *srv,
                              struct MHD_Connection *c, const char *url, const char *method)
{
    memset((char *)req + HTTP_REQUEST_ZEROED_FROM, 0, sizeof(*req) - HTTP_REQUEST_ZEROED_FROM);
    req->path_id[0] = '\0';
    req->request_id[0] = '\0';
    req->idempotency_key[0] = '\0';
    req->location[0] = '\0';
    memcpy(req->principal, http_principal_anonymous, sizeof(http_principal_anonymous));
    memcpy(req->actor, http_principal_anonymous, sizeof(http_principal_anonymous));
    req->www_authenticate[0] = '\0';
    req->server = srv;
    req->conn = c;
    req->start_mono_ns = clock_mono_ns();
    req->state = HTTP_REQ_READING;
    req->method_name = method;
    req->method = http_method_parse(method);
    req->path = url;
    buf_init(&req->resp, HTTP_RESPONSE_BYTES_MAX);
    buf_init(&req->body, 0);
}

/* Zeroes the ledger command: the request's route changes state. */
static void http_command_init(struct http_request *req)
{
    memset(&req->transfer, 0, sizeof(req->transfer));
    memset(&req->cmd, 0, sizeof(req->cmd));
    req->command_ready = true;
}

/* Releases req's claim on its idempotency key, if it holds one. */
static void http_idem_release(struct http_request *req)
{
    if (req->idem_claimed) {
        idem_release(req->server->idem, req->principal, req->idempotency_key);
        req->idem_claimed = false;
    }
}

/* Releases what req acquired during its request; the object stays with its connection. */
static void http_request_end(struct http_request *req)
{
    http_idem_release(req);
    buf_release(&req->body);
    buf_release(&req->resp);
    if (req->command_ready) {
        buf_release(&req->cmd.body);
    }
    free(req->batch);
    req->batch = NULL;
    free(req->arena.base);
    req->arena.base = NULL;
}

static void http_body_too_large(struct http_request *req)
{
    req->body_too_large = true;
    req->close_connection = true;
    char detail[96];
    snprintf(detail, sizeof(detail), "the request body is larger than %zu bytes",
             req->body_bytes_max);
    http_problem(req, 413, "body_too_large", detail, NULL, 0, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Authentication and authorization (RFC 6750)
 * ------------------------------------------------------------------------------------- */

/* The scope a route needs, and whether it is answered without credentials. The probes, the
 * metrics and the dashboard are "public" in the route table; LEDGERD_AUTH_OPEN_ROUTES decides
 * which of them stay open. A closed probe needs any valid credential, closed metrics and
 * dashboard the admin scope. */
static uint32_t http_route_scope(const struct http_request *req, bool *open)
{
    const struct http_route *r = req->route;
    *open = false;
    if (strcmp(r->scope, "public") != 0) {
        uint32_t bit = 0;
        (void)scope_parse_list(r->scope, strlen(r->scope), &bit, NULL, 0);
        ASSERT(bit != 0); /* the route table test holds every scope to the known set */
        return bit;
    }
    unsigned open_routes = req->server->cfg->auth_open_routes;
    if (r->handler == http_handle_livez || r->handler == http_handle_readyz) {
        *open = (open_routes & CONFIG_AUTH_OPEN_PROBES) != 0;
        return 0;
    }
    if (r->handler == http_handle_metrics) {
        *open = (open_routes & CONFIG_AUTH_OPEN_METRICS) != 0;
    } else {
        *open = (open_routes & CONFIG_AUTH_OPEN_DASHBOARD) != 0;
    }
    return SCOPE_ADMIN;
}

/* A 401 invalid_token or 403 insufficient_scope (RFC 6750 §3.1): the error and one parameter
 * (param="value") in WWW-Authenticate, and the same value at the end of the problem's detail. */
static void http_refuse_token(struct http_request *req, int status, const char *error,
                              const char *param, const char *value, const char *detail_lead)
{
    (void)snprintf(req->www_authenticate, sizeof(req->www_authenticate),
                   "Bearer realm=\"ledgerd\", error=\"%s\", %s=\"%s\"", error, param, value);
    char detail[128];
    (void)snprintf(detail, sizeof(detail), "%s: %s", detail_lead, value);
    http_problem(req, status, error, detail, NULL, 0, NULL);
}

/* Authenticates and authorizes a matched route. Returns true when the request was refused (the
 * reply is prepared). */
static bool http_authorize(struct http_request *req)
{
    struct http_server *srv = req->server;
    if (srv->auth == NULL) {
        return false; /* LEDGERD_AUTH=off: every request is "anonymous" with every scope */
    }
    bool open = false;
    uint32_t needed = http_route_scope(req, &open);
    if (open) {
        return false;
    }
    size_t len = 0;
    const char *header = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION, &len);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct auth_principal who;
    struct auth_verdict v;
    auth_check(srv->auth, header, len, ci != NULL ? ci->client_addr : NULL,
               clock_mono_ns() / 1000000, &who, &v);
    static const char realm[] = "Bearer realm=\"ledgerd\"";
    switch (v.status) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        http_audit_refusal(req, "auth.failed", "missing");
        memcpy(req->www_authenticate, realm, sizeof(realm));
        http_problem(req, 401, "unauthenticated",
                     "this request needs credentials: Authorization: Bearer <API key or JWT>", NULL,
                     0, NULL);
        return true;
    case AUTH_INVALID:
        req->auth_reason = auth_reason_name(v.reason);
        http_audit_refusal(req, "auth.failed", req->auth_reason);
        http_refuse_token(req, 401, "invalid_token", "error_description", req->auth_reason,
                          "the credential was not accepted");
        return true;
    case AUTH_RATE_LIMITED:
        req->auth_reason = auth_reason_name(v.reason);
        http_audit_refusal(req, "auth.rate_limited", req->auth_reason);
        req->retry_after_seconds = v.retry_after_seconds > 0 ? v.retry_after_seconds : 1;
        http_problem(req, 429, "too_many_requests",
                     "too many failed authentication attempts from this address; retry later", NULL,
                     0, NULL);
        return true;
    case AUTH_UNAVAILABLE:
        req->retry_after_seconds = 1;
        http_problem(req, 503, "storage_unavailable", "the credential could not be checked", NULL,
                     0, NULL);
        return true;
    }
    if (!scope_allows(who.scopes, needed)) {
        auth_count_refusal(AUTH_REASON_INSUFFICIENT_SCOPE);
        req->scope_needed = needed != 0 ? scope_name(needed) : "";
        (void)snprintf(req->actor, sizeof(req->actor), "%s", who.actor);
        http_audit_refusal(req, "authz.deny", req->scope_needed);
        http_refuse_token(req, 403, "insufficient_scope", "scope", req->scope_needed,
                          "this request needs the scope");
        return true;
    }
    (void)snprintf(req->principal, sizeof(req->principal), "%s", who.id);
    (void)snprintf(req->actor, sizeof(req->actor), "%s", who.actor);
    return false;
}

static bool http_media_type_refused(struct http_request *req);

/* Whether this request's credential is an API key on a server that checks credentials. */
static bool http_auth_needs_store(struct http_request *req)
{
    if (req->server->auth == NULL) {
        return false;
    }
    size_t len = 0;
    const char *header = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION, &len);
    return auth_needs_store(header, len);
}

/* Whether the request runs on the database work pool: everything but /livez, and the metrics
 * and the dashboard while they are open routes (no credential to look up, no database). */
static bool http_offload_wanted(const struct http_request *req)
{
    const struct http_server *srv = req->server;
    if (srv->dbwork == NULL) {
        return false;
    }
    http_handler_fn h = req->route->handler;
    if (h == http_handle_livez) {
        return false;
    }
    unsigned open_routes = srv->cfg->auth_open_routes;
    if (h == http_handle_metrics) {
        return srv->auth != NULL && (open_routes & CONFIG_AUTH_OPEN_METRICS) == 0;
    }
    if (h == http_handle_ops_dashboard) {
        return srv->auth != NULL && (open_routes & CONFIG_AUTH_OPEN_DASHBOARD) == 0;
    }
    return true;
}

/* First call for a request: everything that can be decided from the headers alone. Returns
 * true when a reply is already prepared (and the body, if any, must be discarded). */
static bool http_request_begin(struct http_request *req)
{
    struct http_server *srv = req->server;
    http_read_headers(req);
    http_route_match(req);
    if (req->route != NULL && req->route->changes_state) {
        http_command_init(req);
    }

    int headers = MHD_get_connection_values(req->conn, MHD_HEADER_KIND, NULL, NULL);
    if (headers > LIMIT_HEADERS_MAX) {
        req->close_connection = true;
        char detail[96];
        snprintf(detail, sizeof(detail), "more than %d header fields", LIMIT_HEADERS_MAX);
        http_problem(req, 431, "headers_too_large", detail, NULL, 0, NULL);
        return true;
    }
    /* Probes keep answering while draining: /livez stays 200 and /readyz says why it is not
     * ready, so the load balancer sees the drain. */
    bool probe = req->route != NULL && strcmp(req->route->scope, "public") == 0;
    if (atomic_load(&srv->draining) && !probe) {
        req->close_connection = true;
        req->retry_after_seconds = 1;
        http_problem(req, 503, "shutting_down", "the server is shutting down", NULL, 0, NULL);
        return true;
    }
    if (req->route == NULL) {
        if (req->allow != 0) {
            http_problem(req, 405, "method_not_allowed",
                         "the resource does not support this method", NULL, 0, NULL);
        } else {
            http_problem(req, 404, "not_found", "no resource at this path", NULL, 0, NULL);
        }
        return true;
    }
    /* On the database work pool, an API key is checked once the body is in (its lookup waits
     * on the database); everything else is decided here, from the headers alone. */
    req->offloaded = http_offload_wanted(req);
    if (req->route->body == HTTP_BODY_NONE) {
        return !req->offloaded && http_authorize(req);
    }
    req->body_bytes_max = req->route->body == HTTP_BODY_BATCH ? srv->cfg->batch_body_bytes_max
                                                              : srv->cfg->body_bytes_max;
    buf_init(&req->body, req->body_bytes_max);
    uint64_t declared = 0;
    if (http_content_length(req, &declared) && declared > req->body_bytes_max) {
        http_body_too_large(req);
        /* Refuse before reading, as the client may be waiting for 100-continue or for an
         * early answer (RFC 9110 §15.5.14); a chunked body has no length and is judged while
         * it arrives. */
        return true;
    }
    if (req->offloaded && http_auth_needs_store(req)) {
        return false; /* http_offloaded checks the API key, then the media type */
    }
    req->checked_early = true;
    if (http_authorize(req)) {
        return true;
    }
    return http_media_type_refused(req);
}

/* 415 unless the body is JSON. Returns true when refused (the reply is prepared). */
static bool http_media_type_refused(struct http_request *req)
{
    if (!req->content_type_json) {
        http_problem(req, 415, "unsupported_media_type",
                     req->has_content_type ? "the request body must be application/json"
                                           : "Content-Type: application/json is required",
                     NULL, 0, NULL);
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------
 * Idempotency: claim, look up the stored response, replay or refuse
 * ------------------------------------------------------------------------------------- */

struct http_replay {
    struct http_request *req;
    const uint8_t *digest;
    bool matched;
};

static int http_replay_row(void *ctx, const struct store_idem_record *r)
{
    struct http_replay *rp = ctx;
    struct http_request *req = rp->req;
    if (memcmp(r->request_digest, rp->digest, SHA256_BYTES) != 0) {
        rp->matched = false;
        return 0;
    }
    rp->matched = true;
    buf_reset(&req->resp);
    if (buf_append(&req->resp, r->body, r->body_len) != 0) {
        return -ENOSPC;
    }
    req->status = r->status;
    /* The stored body tells which kind it is: problem documents carry "type" first. */
    req->content_type = r->body_len > 8 && memcmp(r->body, "{\"type\":", 8) == 0
                            ? "application/problem+json"
                            : "application/json";
    snprintf(req->location, sizeof(req->location), "%s", r->location);
    req->replayed = true;
    return 0;
}

/* A record found in the database: replays it, and copies it to the cache (read-through). */
static int http_cache_fill_row(void *ctx, const struct store_idem_record *r)
{
    struct http_replay *rp = ctx;
    struct http_server *srv = rp->req->server;
    if (srv->cache != NULL) {
        rcache_put(srv->cache, rp->req->principal, rp->req->idempotency_key, r, clock_unix_ms());
    }
    return http_replay_row(ctx, r);
}

static bool http_idem_lookup(struct http_request *req);

/* Returns true when the request was answered here (replayed, refused or failed); false when
 * the caller should run it, holding the claimed key. */
static bool http_idempotency(struct http_request *req)
{
    ASSERT(req->command_ready);
    struct http_server *srv = req->server;
    if (req->idempotency_key_invalid) {
        http_problem(req, 400, "idempotency_key_invalid",
                     "Idempotency-Key must be 1-255 printable ASCII characters", NULL, 0, NULL);
        return true;
    }
    if (!req->has_idempotency_key) {
        if (srv->cfg->idempotency_required) {
            http_problem(req, 400, "idempotency_key_missing",
                         "this server requires an Idempotency-Key on every state-changing "
                         "request",
                         NULL, 0, NULL);
            return true;
        }
        return false;
    }
    switch (idem_claim(srv->idem, req->principal, req->idempotency_key)) {
    case IDEM_CLAIMED:
        req->idem_claimed = true;
        break;
    case IDEM_IN_FLIGHT:
        metrics_add(METRIC_IDEM_LOOKUPS, METRICS_IDEM_IN_FLIGHT, 1);
        req->retry_after_seconds = 1;
        http_problem(req, 409, "idempotency_key_in_flight",
                     "a request with this Idempotency-Key is still being processed", NULL, 0, NULL);
        return true;
    case IDEM_FULL:
        req->retry_after_seconds = 1;
        http_problem(req, 503, "queue_full", "too many requests in flight", NULL, 0, NULL);
        return true;
    }

    if (idem_fingerprint(req->method_name, req->path, req->body.data ? req->body.data : "",
                         req->body.len, req->cmd.request_digest) != 0) {
        http_problem(req, 500, "internal_error", "the request could not be fingerprinted", NULL, 0,
                     NULL);
        return true;
    }
    if (store_concurrent(srv->store) && srv->cache == NULL) {
        /* The commit worker looks the key up in its transaction anyway (another replica may
         * store a response meanwhile): a lookup here would only add a round trip. Where the
         * request ends before that (a refusal by validation, a full queue), http_idem_lookup
         * runs then, so the answer is what it would have been. */
        req->idem_deferred = true;
        return false;
    }
    return http_idem_lookup(req);
}

/* Looks the claimed key up (the cache, then the database). Returns true when the request was
 * answered: a replay, 422 idempotency_key_reused, or 503 when the database failed; false when
 * there is no record (the request runs, holding the claim). */
static bool http_idem_lookup(struct http_request *req)
{
    struct http_server *srv = req->server;
    struct http_replay rp = {req, req->cmd.request_digest, false};
    struct span *lookup = span_idempotency_lookup_new(req->span, clock_unix_ns());
    int64_t now_ms = clock_unix_ms();
    /* The cache first (a hit is a stored response, as the database holds it); on a miss or a
     * cache failure the database answers, and a record found there is copied to the cache. */
    int rc = srv->cache != NULL ? rcache_get(srv->cache, req->principal, req->idempotency_key,
                                             now_ms, http_replay_row, &rp)
                                : -EAGAIN;
    if (rc != 0) {
        rc = store_idem_get(srv->store, req->principal, req->idempotency_key, now_ms,
                            http_cache_fill_row, &rp);
    }
    if (rc != 0 && rc != -ENOENT) {
        span_set_error(lookup, "the database is unavailable");
    }
    span_idempotency_lookup_end(lookup, rc == 0, clock_unix_ns());
    otlp_enqueue(lookup);
    if (rc == -ENOENT) {
        metrics_add(METRIC_IDEM_LOOKUPS, METRICS_IDEM_MISS, 1);
        return false;
    }
    http_idem_release(req);
    if (rc != 0) {
        req->retry_after_seconds = 1;
        http_problem(req, 503, "storage_unavailable", "the database is unavailable", NULL, 0, NULL);
        return true;
    }
    req->problem_code = NULL; /* a refusal the stored response replaces */
    req->retry_after_seconds = 0;
    if (!rp.matched) {
        metrics_add(METRIC_IDEM_LOOKUPS, METRICS_IDEM_REUSED, 1);
        http_problem(req, 422, "idempotency_key_reused",
                     "this Idempotency-Key was used with a different request", NULL, 0, NULL);
    } else {
        metrics_add(METRIC_IDEM_LOOKUPS, METRICS_IDEM_HIT, 1);
    }
    return true;
}

/* A request whose lookup was left to the commit worker ended before reaching it, refused: the
 * lookup runs now, and a stored response (or 422) replaces the refusal, as it would have come
 * first. A failed lookup keeps the refusal. */
static void http_idem_deferred_end(struct http_request *req)
{
    if (!req->idem_deferred || !req->idem_claimed) {
        return;
    }
    req->idem_deferred = false;
    int status = req->status;
    struct buf kept = req->resp;
    const char *code = req->problem_code;
    unsigned retry = req->retry_after_seconds;
    buf_init(&req->resp, HTTP_RESPONSE_BYTES_MAX);
    if (http_idem_lookup(req) && req->status != 503) {
        buf_release(&kept);
        return;
    }
    /* No record (or no answer): the refusal stands. */
    buf_release(&req->resp);
    req->resp = kept;
    req->status = status;
    req->problem_code = code;
    req->retry_after_seconds = retry;
    req->content_type = "application/problem+json";
}

/* ---------------------------------------------------------------------------------------
 * Commit completion
 * ------------------------------------------------------------------------------------- */

/* Runs on the commit worker's thread once the command committed (or failed). */
static void http_command_done(struct commit_cmd *cmd)
{
    struct http_request *req = cmd->done_ctx;
    /* After the commit: a retry now finds the stored record. */
    http_idem_release(req);
    req->state = HTTP_REQ_RESUMED;
    MHD_resume_connection(req->conn);
}

enum http_outcome http_submit(struct http_request *req)
{
    ASSERT(req->command_ready);
    struct commit_cmd *cmd = &req->cmd;
    snprintf(cmd->principal, sizeof(cmd->principal), "%s", req->principal);
    if (req->idem_claimed) {
        snprintf(cmd->idempotency_key, sizeof(cmd->idempotency_key), "%s", req->idempotency_key);
    } else {
        cmd->idempotency_key[0] = '\0';
    }
    snprintf(cmd->request_id, sizeof(cmd->request_id), "%s", req->request_id);
    buf_init(&cmd->body, HTTP_RESPONSE_BYTES_MAX);
    cmd->done = http_command_done;
    cmd->done_ctx = req;
    cmd->trace = req->span != NULL ? &req->trace : NULL;
    /* The authorization decision on a state-changing route, stored with its effect. */
    static const char *const actions[] = {
        [COMMIT_ACCOUNT_CREATE] = "account.create",
        [COMMIT_TRANSFER_CREATE] = "transfer.create",
        [COMMIT_TRANSFER_BATCH] = "transfer.batch",
    };
    http_audit_fill(req, &req->audit, actions[cmd->kind], "allow", "");
    cmd->audit = &req->audit;

    /* Suspend first: the worker may complete the command before commit_submit returns. (On the
     * database work pool the connection is suspended already.) */
    req->state = HTTP_REQ_WAITING;
    if (!req->offloaded) {
        MHD_suspend_connection(req->conn);
    }
    int rc = commit_submit(req->server->commit, cmd);
    if (rc == 0) {
        return HTTP_SUSPENDED;
    }
    req->retry_after_seconds = 1;
    if (rc == -EAGAIN) {
        http_problem(req, 503, "queue_full", "the commit queue is full; retry shortly", NULL, 0,
                     NULL);
        http_idem_deferred_end(req); /* a stored response is still served under overload */
    } else {
        req->close_connection = true;
        http_problem(req, 503, "shutting_down", "the server is shutting down", NULL, 0, NULL);
    }
    http_idem_release(req);
    /* The reply is ready; the access handler sends it once resumed. */
    req->state = HTTP_REQ_RESUMED;
    req->cmd.status = 0;
    MHD_resume_connection(req->conn);
    return HTTP_SUSPENDED;
}

/* Turns the completed command into the reply. */
static void http_take_command_result(struct http_request *req)
{
    struct commit_cmd *cmd = &req->cmd;
    if (cmd->status == 0) {
        return; /* http_submit already prepared the reply */
    }
    if (req->span != NULL && cmd->dequeued_mono_ns != 0) {
        otlp_enqueue(span_queue_wait_new(req->span, span_unix_ns_from_mono(cmd->queued_mono_ns),
                                         span_unix_ns_from_mono(cmd->dequeued_mono_ns)));
    }
    if (cmd->replayed) {
        /* A response stored under this key by another replica, or before the request came. */
        req->replayed = true;
    }
    /* The lookup made in the commit's transaction counts as the request's when the request left
     * it to the worker; otherwise only a hit there counts (a response stored by another replica
     * after the request's own lookup missed). */
    static const size_t idem_results[] = {
        [COMMIT_IDEM_MISS] = METRICS_IDEM_MISS,
        [COMMIT_IDEM_HIT] = METRICS_IDEM_HIT,
        [COMMIT_IDEM_REUSED] = METRICS_IDEM_REUSED,
    };
    if (req->idem_deferred ? cmd->idem_outcome != COMMIT_IDEM_NONE
                           : cmd->idem_outcome == COMMIT_IDEM_HIT) {
        metrics_add(METRIC_IDEM_LOOKUPS, idem_results[cmd->idem_outcome], 1);
    }
    buf_release(&req->resp);
    req->resp = cmd->body;
    buf_init(&cmd->body, HTTP_RESPONSE_BYTES_MAX);
    req->status = cmd->status;
    req->content_type = cmd->body_is_problem ? "application/problem+json" : "application/json";
    snprintf(req->location, sizeof(req->location), "%s", cmd->location);
    if (cmd->status == 503) {
        req->retry_after_seconds = 1;
        req->problem_code = "storage_unavailable";
    }
}

/* ---------------------------------------------------------------------------------------
 * Running a request: on the I/O thread, or on the database work pool
 * ------------------------------------------------------------------------------------- */

/* The request's body is in and no reply is decided yet: idempotency, then the handler.
 * Returns HTTP_SUSPENDED when the command went to the commit workers. */
static enum http_outcome http_run(struct http_request *req)
{
    if (req->route->changes_state && http_idempotency(req)) {
        return HTTP_REPLIED;
    }
    enum http_outcome o = req->route->handler(req);
    if (o == HTTP_REPLIED && req->status >= 400 && req->status < 500) {
        http_idem_deferred_end(req);
    }
    return o;
}

/* On a database work pool thread, the connection suspended: the checks left for later, then
 * the request; the reply is sent once the connection resumes. */
static void http_offloaded(struct http_request *req)
{
    bool late = !req->checked_early;
    if ((late && http_authorize(req)) ||
        (late && req->route->body != HTTP_BODY_NONE && http_media_type_refused(req)) ||
        http_run(req) == HTTP_REPLIED) {
        req->state = HTTP_REQ_ANSWERED;
        MHD_resume_connection(req->conn);
    }
}

/* A request that waited in the database work queue past the acquire timeout: the database is
 * saturated; answered at once, as the pool would have done. */
static void http_offload_expired(struct http_request *req)
{
    req->retry_after_seconds = 1;
    http_problem(req, 503, "storage_unavailable",
                 "the database is saturated: no connection came free in time", NULL, 0, NULL);
    req->state = HTTP_REQ_ANSWERED;
    MHD_resume_connection(req->conn);
}

/* Whether the client waits for "100 Continue" before sending its body (RFC 9110 §10.1.1): a
 * request refused from its headers is then answered at once, and the body never sent. The
 * connection closes after the reply, as the client may send the body anyway. */
static bool http_expects_continue(struct http_request *req)
{
    size_t len = 0;
    const char *v = http_header(req, "Expect", &len);
    if (v == NULL || len != 12 || strncasecmp(v, "100-continue", 12) != 0 || req->route == NULL ||
        req->route->body == HTTP_BODY_NONE) {
        return false;
    }
    req->close_connection = true;
    return true;
}

/* Hands req to the database work pool; a full queue is answered at once. */
static enum MHD_Result http_offload(struct http_request *req)
{
    req->state = HTTP_REQ_WAITING;
    MHD_suspend_connection(req->conn);
    if (http_dbwork_submit(req->server->dbwork, req) != 0) {
        req->retry_after_seconds = 1;
        http_problem(req, 503, "queue_full", "too many requests are waiting for the database", NULL,
                     0, NULL);
        req->state = HTTP_REQ_ANSWERED;
        MHD_resume_connection(req->conn);
    }
    return MHD_YES;
}

/* ---------------------------------------------------------------------------------------
 * The access handler and the completion callback
 * ------------------------------------------------------------------------------------- */

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;

    if (req == NULL) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        req = ci != NULL ? ci->socket_context : NULL;
        if (req == NULL) {
            return MHD_NO; /* its connection found no memory: drop the connection */
        }
        http_request_init(req, srv, conn, url, method);
        *con_cls = req;
        bool decided = http_request_begin(req);
        http_trace_start(req, version);
        if (decided && (req->body_too_large || http_expects_continue(req))) {
            return http_send(req); /* do not read a body we will refuse */
        }
        if (req->route != NULL && req->route->body != HTTP_BODY_NONE) {
            req->counted_uploading = true;
            atomic_fetch_add(&srv->uploading, 1);
            atomic_store(&srv->upload_progress_mono_ns, req->start_mono_ns);
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        req->body_received_bytes += n;
        atomic_store(&srv->upload_progress_mono_ns, clock_mono_ns());
        if (req->state != HTTP_REQ_READING) {
            return MHD_YES;
        }
        if (req->status != 0) {
            /* The reply is decided: discard the body, but only so much of it. */
            req->body_discarded_bytes += n;
            if (req->body_discarded_bytes > LIMIT_BODY_DISCARD_BYTES_MAX) {
                return http_send(req);
            }
            return MHD_YES;
        }
        if (buf_append(&req->body, upload_data, n) != 0) {
            http_body_too_large(req);
            req->body_discarded_bytes = req->body.len + n;
            buf_release(&req->body);
        }
        return MHD_YES;
    }

    switch (req->state) {
    case HTTP_REQ_READING:
        req->counted_in_flight = true;
        atomic_fetch_add(&srv->in_flight, 1);
        if (req->counted_uploading) {
            req->counted_uploading = false;
            atomic_fetch_sub(&srv->uploading, 1);
        }
        if (req->status != 0) {
            return http_send(req);
        }
        if (req->offloaded) {
            return http_offload(req);
        }
        if (http_run(req) == HTTP_SUSPENDED) {
            return MHD_YES;
        }
        return http_send(req);
    case HTTP_REQ_RESUMED:
        http_take_command_result(req);
        return http_send(req);
    case HTTP_REQ_ANSWERED:
        return http_send(req);
    case HTTP_REQ_WAITING:
    case HTTP_REQ_REPLIED:
        return MHD_YES;
    }
    return MHD_NO;
}

/* Writes req's access line: one per request, with a severity by status. At a level that
 * leaves the line out, nothing is built. */
static void http_access_log(const struct http_request *req, enum MHD_RequestTerminationCode toe,
                            int64_t duration_ns)
{
    /* A refusal under load (503) is a warning; any other 5xx is a server error. */
    int status = req->state == HTTP_REQ_REPLIED ? req->status : 0;
    enum config_log_level level = status == 503   ? CONFIG_LOG_WARN
                                  : status >= 500 ? CONFIG_LOG_ERROR
                                                  : CONFIG_LOG_INFO;
    if (!log_enabled(level)) {
        return;
    }
    struct buf fields;
    buf_init(&fields, 2048);
    (void)buf_append_str(&fields, "\"method\":");
    (void)buf_append_json_str(&fields, req->method_name, strlen(req->method_name));
    (void)buf_append_str(&fields, ",\"route\":");
    const char *route = req->route != NULL ? req->route->template : "unmatched";
    (void)buf_append_json_str(&fields, route, strlen(route));
    (void)buf_append_str(&fields, ",\"path\":");
    size_t path_len = strlen(req->path);
    (void)buf_append_json_str(&fields, req->path, path_len > 256 ? 256 : path_len);
    (void)buf_appendf(&fields, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu", status,
                      (double)duration_ns / 1e6, req->resp_bytes);
    if (req->problem_code != NULL) {
        (void)buf_appendf(&fields, ",\"code\":\"%s\"", req->problem_code);
    }
    if (req->replayed) {
        (void)buf_append_str(&fields, ",\"idempotent_replayed\":true");
    }
    /* Who asked (the principal's id, never the credential), and why a credential was refused. */
    (void)buf_append_str(&fields, ",\"principal\":");
    (void)buf_append_json_str(&fields, req->principal, strlen(req->principal));
    if (req->auth_reason != NULL) {
        (void)buf_appendf(&fields, ",\"auth_reason\":\"%s\"", req->auth_reason);
    }
    if (req->scope_needed != NULL) {
        (void)buf_appendf(&fields, ",\"scope_needed\":\"%s\"", req->scope_needed);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        (void)buf_appendf(&fields, ",\"terminated\":%d", (int)toe);
    }
    struct log_ctx lc = {req->request_id, req->trace.trace_id, req->trace.span_id};
    log_event(level, &lc, "request", fields.data);
    buf_release(&fields);
}

/* Counts a replied request: by method, route and status, its duration from the headers to the
 * reply sent, and the size of its body on routes that take one. A request whose client left
 * before any reply is only in the access log. */
static void http_count_request(const struct http_server *srv, const struct http_request *req,
                               int64_t duration_ns)
{
    if (req->state != HTTP_REQ_REPLIED) {
        return;
    }
    const struct http_route *r = req->route != NULL ? req->route : req->path_route;
    size_t route = r != NULL ? srv->route_metric[r - http_routes] : METRICS_ROUTE_UNMATCHED;
    size_t method = (size_t)__builtin_ctz((unsigned)req->method);
    metrics_add(METRIC_HTTP_REQUESTS, metrics_http_requests_series(method, route, req->status), 1);
    metrics_observe(METRIC_HTTP_DURATION, metrics_http_duration_series(method, route, req->status),
                    duration_ns > 0 ? (uint64_t)duration_ns : 0);
    if (req->route != NULL && req->route->body != HTTP_BODY_NONE) {
        metrics_observe(METRIC_HTTP_BODY_BYTES, route, req->body_received_bytes);
    }
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    if (req == NULL) {
        return;
    }
    *con_cls = NULL;
    /* One clock read: the access line and the latency histogram report the same duration. */
    int64_t duration_ns = clock_mono_ns() - req->start_mono_ns;
    http_access_log(req, toe, duration_ns);
    http_count_request(srv, req, duration_ns);
    if (req->span != NULL) {
        if (req->state != HTTP_REQ_REPLIED) {
            span_set_error(req->span, "the connection closed before the reply was sent");
        }
        int64_t end_unix_ns = span_unix_ns_from_mono(req->start_mono_ns + duration_ns);
        if (req->state == HTTP_REQ_REPLIED) {
            span_http_server_end(req->span, req->status, end_unix_ns);
        } else {
            span_end(req->span, end_unix_ns);
        }
        otlp_enqueue(req->span);
        req->span = NULL;
    }
    /* A request completed while suspended cannot happen: MHD keeps suspended connections. */
    ASSERT(req->state != HTTP_REQ_WAITING);
    bool counted = req->counted_in_flight;
    bool uploading = req->counted_uploading;
    http_request_end(req);
    if (counted) {
        atomic_fetch_sub(&srv->in_flight, 1);
    }
    if (uploading) {
        atomic_fetch_sub(&srv->uploading, 1);
    }
}

/* Every connection owns one request object, allocated when it opens and reused by each of its
 * requests (MHD runs them one after another), so no request allocates an object of its own. */
static void http_connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                                   enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        /* NULL when out of memory: the connection's first request then drops it. */
        *socket_context = malloc(sizeof(struct http_request));
        return;
    }
    /* Closed: MHD has already completed (http_completed) any request it was running. */
    free(*socket_context);
    *socket_context = NULL;
}

__attribute__((format(printf, 2, 0))) static void http_mhd_log(void *cls, const char *fmt,
                                                               va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    log_msgf(CONFIG_LOG_DEBUG, NULL, "libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------------------- */

/* Gives each route table row its template's index in the metrics' route label; rows sharing a
 * template share an index, and templates past the label's capacity count as "unmatched". */
_Static_assert(LIMIT_METRICS_ROUTES_MAX <= UINT8_MAX, "a route's metric index fits a byte");
static void http_routes_for_metrics(struct http_server *srv)
{
    ASSERT(http_routes_count <= HTTP_ROUTES_MAX);
    const char *names[HTTP_ROUTES_MAX];
    size_t n = 0;
    for (size_t i = 0; i < http_routes_count; i++) {
        size_t j = 0;
        while (j < n && strcmp(names[j], http_routes[i].template) != 0) {
            j++;
        }
        if (j == n) {
            names[n++] = http_routes[i].template;
        }
        srv->route_metric[i] = (uint8_t)(j + 1);
    }
    size_t taken = metrics_routes_register(names, n);
    for (size_t i = 0; i < http_routes_count; i++) {
        if (srv->route_metric[i] > taken) {
            srv->route_metric[i] = METRICS_ROUTE_UNMATCHED;
        }
    }
}

static int http_resolve(const char *host, uint16_t port, struct sockaddr_storage *out,
                        socklen_t *out_len, struct buf *err)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        buf_appendf(err, "cannot resolve listen host '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int http_server_start(const struct config *cfg, struct store *store, struct commit *commit,
                      struct auth *auth, struct rcache *cache, struct http_server **out,
                      struct buf *err)
{
    ASSERT(cfg != NULL && store != NULL && commit != NULL && out != NULL);
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return -ENOMEM;
    }
    srv->cfg = cfg;
    srv->store = store;
    srv->commit = commit;
    srv->auth = auth;
    srv->cache = cache;
    atomic_init(&srv->draining, false);
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->uploading, 0);
    atomic_init(&srv->upload_progress_mono_ns, 0);
    http_routes_for_metrics(srv);
    int rc = idem_registry_new(cfg->connections_max + cfg->queue_depth_max, &srv->idem);
    if (rc != 0) {
        goto out_free;
    }
    /* Twice as many database threads as pooled reader connections: the pool, not this queue,
     * is where a saturated database shows (its acquire waits and timeouts), and a request
     * waits in either one at most the acquire timeout. */
    if (store_concurrent(store) || cache != NULL) {
        rc = http_dbwork_start(2 * cfg->db_pool_size, cfg->db_work_queue_max,
                               cfg->db_acquire_timeout_ms, http_offloaded, http_offload_expired,
                               &srv->dbwork);
        if (rc != 0) {
            goto out_free_idem;
        }
    }

    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    rc = http_resolve(cfg->listen_host, cfg->listen_port, &addr, &addr_len, err);
    if (rc != 0) {
        goto out_free_idem;
    }
    unsigned threads = cfg->io_threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    srv->daemon = MHD_start_daemon(
        flags, cfg->listen_port, NULL, NULL, http_access, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_seconds,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connections_max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connections_max,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)LIMIT_CONNECTION_MEMORY_BYTES,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_connection_notify, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        http_mhd_log, NULL, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        buf_appendf(err, "cannot listen on %s:%u (address in use or not permitted?)",
                    cfg->listen_host, cfg->listen_port);
        rc = -EADDRINUSE;
        goto out_free_idem;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? info->port : cfg->listen_port;
    struct store_migration_status ms;
    srv->migrations_current =
        store_migration_status(store, &ms) == 0 && ms.pending == 0 && !ms.drift;
    *out = srv;
    return 0;

out_free_idem:
    http_dbwork_stop(srv->dbwork);
    idem_registry_free(srv->idem);
out_free:
    free(srv);
    return rc;
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_drain(struct http_server *s)
{
    /* From here on, every new request but the probes gets 503 shutting_down. The listening
     * socket stays open until http_server_stop: MHD_quiesce_daemon on an epoll thread pool races
     * with the workers removing the socket from their epoll sets and can abort the process. */
    (void)atomic_exchange(&s->draining, true);
}

uint64_t http_server_in_flight(const struct http_server *s)
{
    return atomic_load(&s->in_flight);
}

bool http_server_busy(const struct http_server *s)
{
    if (atomic_load(&s->in_flight) > 0) {
        return true;
    }
    int64_t idle_ns = clock_mono_ns() - atomic_load(&s->upload_progress_mono_ns);
    return atomic_load(&s->uploading) > 0 &&
           idle_ns < (int64_t)LIMIT_DRAIN_UPLOAD_IDLE_MS * 1000 * 1000;
}

void http_server_stop(struct http_server *s)
{
    if (s == NULL) {
        return;
    }
    http_dbwork_stop(s->dbwork); /* resumes every connection it holds */
    MHD_stop_daemon(s->daemon);
    idem_registry_free(s->idem);
    free(s);
}
