/*
 * http_internal.h — what the files of src/http share: the per-request state, the route table
 * and the reply helpers.
 */
#ifndef LEDGERD_HTTP_HTTP_INTERNAL_H
#define LEDGERD_HTTP_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/problem.h"
#include "http/http.h"
#include "idem/idem.h"
#include "idem/rcache.h"
#include "ledger/decode.h"
#include "ledger/ledger.h"
#include "obs/span.h"
#include "obs/trace.h"
#include "store/commit.h"
#include "store/store.h"

/* Methods as bits, so a route table row can be matched and an Allow header built. */
enum http_method {
    HTTP_GET = 1u << 0,
    HTTP_POST = 1u << 1,
    HTTP_PUT = 1u << 2,
    HTTP_PATCH = 1u << 3,
    HTTP_DELETE = 1u << 4,
    HTTP_HEAD = 1u << 5,
    HTTP_OPTIONS = 1u << 6,
    HTTP_OTHER = 1u << 7,
};

struct http_request;

/* What a handler did: replied (the reply is in req->status/resp), or handed the request to the
 * commit worker (the connection is suspended until the command completes). */
enum http_outcome { HTTP_REPLIED, HTTP_SUSPENDED };
typedef enum http_outcome (*http_handler_fn)(struct http_request *req);

/* Which body limit a route has. */
enum http_body_kind { HTTP_BODY_NONE, HTTP_BODY_DEFAULT, HTTP_BODY_BATCH };

/* One row of the route table. Every route declares the scope a caller needs (enforced once
 * authentication exists; a test proves no row lacks one). */
struct http_route {
    enum http_method method;
    const char *template; /* "/v1/accounts/{id}": {id} matches one path segment */
    http_handler_fn handler;
    const char *scope; /* "ledger:read", "ledger:write", "public" for probes */
    enum http_body_kind body;
    bool changes_state; /* takes Idempotency-Key */
};

struct http_dbwork;

extern const struct http_route http_routes[];
extern const size_t http_routes_count;
/* Rows the route table may have: bounds the server's per-row metric label index. */
#define HTTP_ROUTES_MAX 64

struct http_server {
    struct MHD_Daemon *daemon;
    const struct config *cfg;
    struct store *store;
    struct commit *commit;
    struct idem_registry *idem;
    struct auth *auth; /* NULL when LEDGERD_AUTH=off */
    /* The Redis idempotency cache, NULL when none. */
    struct rcache *cache;
    /* The database work pool, NULL when nothing a request does can wait on the network
     * (SQLite without a cache): requests then run on the I/O thread. */
    struct http_dbwork *dbwork;
    uint16_t port;
    atomic_bool draining;
    /* Requests being processed (body complete, reply not yet sent): what a drain waits for.
     * A client still sending its body has not asked for anything yet and is not counted. */
    atomic_uint_fast64_t in_flight;
    /* Requests whose body is still arriving, and when the last body bytes arrived. */
    atomic_uint_fast64_t uploading;
    atomic_int_fast64_t upload_progress_mono_ns;
    bool migrations_current; /* checked at start-up */
    /* Per route table row: the index of its template in the metrics' route label (rows that
     * share a template share it). */
    uint8_t route_metric[HTTP_ROUTES_MAX];
};

enum http_request_state {
    HTTP_REQ_READING,  /* headers seen, body arriving */
    HTTP_REQ_WAITING,  /* suspended, command with the commit worker */
    HTTP_REQ_RESUMED,  /* command completed, reply to send */
    HTTP_REQ_ANSWERED, /* the database work pool prepared the reply, to send */
    HTTP_REQ_REPLIED,  /* response queued */
};

/* One request. The object belongs to its connection and is reused by every request on it: a
 * new request neither allocates it nor zeroes it whole, but resets it part by part (the three
 * groups below). */
struct http_request {
    /* Ledger command: only state-changing routes use it, so it is zeroed (and command_ready set)
     * once such a route matched. First, for the u128s' alignment. */
    struct ledger_transfer transfer; /* single transfer */
    struct commit_cmd cmd;
    struct audit_record audit; /* the state change's record, handed to the commit worker */

    /* Strings: each is set to "" when a request begins, and written only as long as needed. */
    char path_id[LIMIT_ID_LEN_MAX + 1]; /* the {id} segment, "" if invalid */
    char request_id[LIMIT_REQUEST_ID_LEN_MAX + 1];
    char idempotency_key[LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1];
    char location[LIMIT_ID_LEN_MAX + 32];
    /* Who asked: the principal's id ("anonymous" with LEDGERD_AUTH=off or on an open route),
     * which scopes idempotency keys. */
    char principal[LIMIT_PRINCIPAL_LEN_MAX + 1];
    char www_authenticate[192];                /* "" or the WWW-Authenticate value of a 401/403 */
    char actor[LIMIT_AUDIT_ACTOR_LEN_MAX + 1]; /* the principal's actor for the audit trail */

    /* Everything from here to the end is zeroed when a request begins. */
    struct http_server *server;
    struct MHD_Connection *conn;
    int64_t start_mono_ns;
    struct ledger_transfer *batch; /* batch, malloc'd */
    struct ledger_arena arena;     /* metadata text, malloc'd */

    /* From the request line and headers. */
    const char *method_name;        /* owned by MHD for the request's life */
    const char *path;               /* owned by MHD, percent-decoded */
    const struct http_route *route; /* NULL: no route matched */
    /* A row whose template matches the path, whatever the method: the route a 405 is
     * counted under. NULL when no template matches (404). */
    const struct http_route *path_route;
    struct trace_context trace;
    struct span *span; /* the request's server span; NULL when not sampled or tracing is off */
    struct http_request *dbwork_next; /* the database work queue's link */
    int64_t dbwork_queued_mono_ns;    /* when it was queued there */

    /* Body. */
    struct buf body;
    size_t body_bytes_max;
    uint64_t body_discarded_bytes; /* of a body over its limit */
    uint64_t body_received_bytes;  /* every body byte that arrived, kept or not */

    /* Reply. */
    struct buf resp;
    const char *content_type;
    const char *problem_code;            /* for the access log */
    const char *auth_reason;             /* for the access log: a refused credential's reason */
    const char *scope_needed;            /* for the access log: the scope a 403 lacked */
    const char *cache_control;           /* Cache-Control, NULL: none */
    const char *content_security_policy; /* Content-Security-Policy, NULL: none */
    size_t resp_bytes;
    int status;
    unsigned retry_after_seconds; /* 0: no Retry-After */

    enum http_request_state state;
    enum http_method method;
    unsigned allow;     /* methods of the matching template, for 405 */
    bool command_ready; /* transfer and cmd were zeroed for this request */
    bool path_id_valid;
    bool has_idempotency_key;
    bool idempotency_key_invalid;
    bool content_type_json;
    bool has_content_type;
    bool body_too_large;
    bool replayed;
    bool close_connection;
    bool idem_claimed;
    bool counted_in_flight; /* the body was complete and the request is being processed */
    bool counted_uploading; /* the body is still arriving */
    /* Runs on the database work pool once the body is in. */
    bool offloaded;
    /* Credentials, scope and media type were checked from the headers, before the body: all
     * but an API key, whose lookup waits on the database (then on the work pool). */
    bool checked_early;
    /* The idempotency lookup is left to the commit worker's transaction (a concurrent store
     * without a cache): counted when the command completes. */
    bool idem_deferred;
};
/* Where the part zeroed for every request starts. */
#define HTTP_REQUEST_ZEROED_FROM offsetof(struct http_request, server)

/* Replies. Each sets req->status, content type and body (resp); the server sends it. */
void http_reply_json(struct http_request *req, int status); /* body already in req->resp */
/* The one way an error leaves: an RFC 9457 document with a stable code, logged once. */
void http_problem(struct http_request *req, int status, const char *code, const char *detail,
                  const struct problem_field_error *errors, size_t errors_count, const char *extra);
/* Hands req->cmd (filled by a handler) to the commit worker; always HTTP_SUSPENDED (a refused
 * submission is answered once the connection resumes). */
enum http_outcome http_submit(struct http_request *req);
/* Looks up the route for (method, path). Sets req->route / allow / path_id. */
void http_route_match(struct http_request *req);

/* The database work pool (dbwork.c): threads threads, at most depth_max requests waiting; run
 * is called on a pool thread for each request submitted, or expired instead when it waited
 * more than wait_max_ms. 0, -ENOMEM or a pthread error. */
int http_dbwork_start(uint32_t threads, uint32_t depth_max, uint32_t wait_max_ms,
                      void (*run)(struct http_request *req),
                      void (*expired)(struct http_request *req), struct http_dbwork **out);
/* Queues req (its connection suspended by the caller). 0, or -EAGAIN when the queue is full or
 * stopping (the caller answers 503). Thread-safe. */
int http_dbwork_submit(struct http_dbwork *w, struct http_request *req);
/* Runs what is queued, then joins the threads and frees the pool. */
void http_dbwork_stop(struct http_dbwork *w);

/* Handlers (routes.c). */
enum http_outcome http_handle_livez(struct http_request *req);
enum http_outcome http_handle_readyz(struct http_request *req);
enum http_outcome http_handle_metrics(struct http_request *req);
enum http_outcome http_handle_ops_dashboard(struct http_request *req);
enum http_outcome http_handle_account_create(struct http_request *req);
enum http_outcome http_handle_account_get(struct http_request *req);
enum http_outcome http_handle_accounts_list(struct http_request *req);
enum http_outcome http_handle_account_transfers(struct http_request *req);
enum http_outcome http_handle_transfer_create(struct http_request *req);
enum http_outcome http_handle_transfer_batch(struct http_request *req);
enum http_outcome http_handle_transfer_get(struct http_request *req);
enum http_outcome http_handle_audit_list(struct http_request *req);

#endif
