/*
 * limits.h — every limit ledgerd enforces, in one place, with its unit and the reason for it.
 *
 * A limit that is hit is a handled error (a clear 4xx or 503), never a crash or a silent drop.
 * Where two limits depend on each other, a _Static_assert says how.
 */
#ifndef LEDGERD_CORE_LIMITS_H
#define LEDGERD_CORE_LIMITS_H

/* Resource ids: ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$ (API contract). */
#define LIMIT_ID_LEN_MAX 64
/* Ledger names: ^[A-Z0-9_]{1,16}$ (API contract). */
#define LIMIT_LEDGER_LEN_MAX 16
/* Metadata: a JSON object of at most 4 KiB in its compact form (API contract). */
#define LIMIT_METADATA_BYTES_MAX 4096
/* X-Request-Id: ^[A-Za-z0-9._:-]{1,128}$ (API contract). */
#define LIMIT_REQUEST_ID_LEN_MAX 128
/* Idempotency-Key: 1-255 printable ASCII characters (API contract). */
#define LIMIT_IDEMPOTENCY_KEY_LEN_MAX 255
/* Principal names scope idempotency keys; long enough for a JWT subject or API key id. */
#define LIMIT_PRINCIPAL_LEN_MAX 128
/* tracestate: W3C Trace Context says vendors should propagate at least 512 characters. */
#define LIMIT_TRACESTATE_LEN_MAX 512
#define LIMIT_TRACESTATE_MEMBERS_MAX 32

/* Request bodies: 1 MiB by default, 8 MiB for the batch endpoint (API contract). */
#define LIMIT_BODY_BYTES_DEFAULT (1024u * 1024u)
#define LIMIT_BATCH_BODY_BYTES_DEFAULT (8u * 1024u * 1024u)
/* Hard ceiling for either configured body limit: bounds a request's memory. */
#define LIMIT_BODY_BYTES_CEILING (64u * 1024u * 1024u)
/* A body over its limit is read and discarded up to this many bytes, so the client (which is
 * still sending) receives the 413 instead of a connection reset; past it the connection closes
 * right after the 413. */
#define LIMIT_BODY_DISCARD_BYTES_MAX (64ull * 1024 * 1024)
/* JSON nesting: a ledger request needs 4 levels; metadata gets the rest. Bounds parser depth. */
#define LIMIT_JSON_DEPTH_MAX 64

/* Transfers in one batch request (API contract; TigerBeetle's batch size). */
#define LIMIT_BATCH_TRANSFERS_MAX 8190
/* Validation errors listed in one problem document; further ones are counted, not listed. */
#define LIMIT_DECODE_ERRORS_MAX 16

/* Lists: ?limit= is 1..1000, default 100 (API contract). */
#define LIMIT_LIST_DEFAULT 100
#define LIMIT_LIST_MAX 1000

/* Group commit: ledger items (accounts or transfers) applied in one database transaction.
 * A full batch request always fits in one transaction on its own. */
#define LIMIT_COMMIT_ITEMS_MAX 8190
_Static_assert(LIMIT_COMMIT_ITEMS_MAX >= LIMIT_BATCH_TRANSFERS_MAX,
               "a batch request must fit into one commit");
/* Commands (requests) in one database transaction. */
#define LIMIT_COMMIT_COMMANDS_MAX 1024
/* Due pending transfers expired per transaction: bounds the sweep's share of a commit. */
#define LIMIT_EXPIRY_SWEEP_MAX 1024
/* Expired idempotency records deleted per transaction. */
#define LIMIT_IDEMPOTENCY_PURGE_MAX 1024

/* Working set of one transaction: every account and transfer an item can touch.
 * A transfer item touches itself, its pending transfer and up to four accounts (its own two
 * and its pending transfer's two); an expiry touches one transfer and two accounts. A transfer
 * that already exists is loaded by the prefetch and still occupies a slot when the rules apply
 * the batch, which may then need a slot for every item again: three transfer slots per item. */
#define LIMIT_BOOK_TRANSFERS_MAX (3 * LIMIT_COMMIT_ITEMS_MAX + LIMIT_EXPIRY_SWEEP_MAX)
#define LIMIT_BOOK_ACCOUNTS_MAX (4 * LIMIT_COMMIT_ITEMS_MAX + 2 * LIMIT_EXPIRY_SWEEP_MAX)
/* Every account and transfer in the book may carry full-size metadata. The arena is reserved
 * up front but touched only as used, so the worst case costs address space, not memory. */
#define LIMIT_BOOK_METADATA_BYTES_MAX                                                              \
    (((size_t)LIMIT_BOOK_ACCOUNTS_MAX + LIMIT_BOOK_TRANSFERS_MAX) * LIMIT_METADATA_BYTES_MAX)

/* WAL write coalescing (store/walbuf.c): appends gathered per WAL before they are written, and
 * the size of each write(2) that hands them over. SQLite's own writes are at most one page, and
 * its unix VFS accepts at most 128 KiB minus one byte per write: the chunk stays at the largest
 * page size. */
#define LIMIT_WALBUF_BYTES ((size_t)1024 * 1024)
#define LIMIT_WALBUF_CHUNK_BYTES ((size_t)64 * 1024)
_Static_assert(LIMIT_WALBUF_BYTES % LIMIT_WALBUF_CHUNK_BYTES == 0,
               "the buffer is handed over in whole chunks");

/* malloc (cli/serve.c): freed memory kept per arena for reuse, and the block size from which
 * glibc maps memory instead of using the heap (glibc's own ceiling for it is 32 MiB). */
#define LIMIT_MALLOC_TRIM_BYTES (64u * 1024u * 1024u)
#define LIMIT_MALLOC_MMAP_BYTES (32u * 1024u * 1024u)

/* Commit queue: commands waiting for the commit worker; full -> 503 queue_full. */
#define LIMIT_QUEUE_DEPTH_DEFAULT 4096
#define LIMIT_QUEUE_DEPTH_CEILING 1048576

/* Idempotency keys live 24 h by default (API contract); at most 30 days. */
#define LIMIT_IDEMPOTENCY_TTL_SECONDS_DEFAULT 86400
#define LIMIT_IDEMPOTENCY_TTL_SECONDS_MAX (30 * 86400)

/* Connections: bounded in total, per client address, in memory and in idle time. */
#define LIMIT_CONNECTIONS_DEFAULT 4096
#define LIMIT_PER_IP_CONNECTIONS_DEFAULT 1024
#define LIMIT_CONNECTION_TIMEOUT_SECONDS_DEFAULT 30
/* Per-connection memory for headers and the read buffer; bigger header sets get 431. It holds
 * LIMIT_HEADERS_MAX lines of about 250 bytes each. libmicrohttpd zeroes all of it for every
 * request, so it is kept no larger than that: at 64 KiB the zeroing cost GET ~10% of its CPU. */
#define LIMIT_CONNECTION_MEMORY_BYTES (32u * 1024u)
/* Request header fields: a ledger request needs a dozen; more is refused with 431 before any
 * work is done (Node.js stops at 2000, nginx bounds bytes; ledgerd bounds both). */
#define LIMIT_HEADERS_MAX 100
/* I/O threads: 0 means one per core, capped here. */
#define LIMIT_IO_THREADS_MAX 256
/* Connections of one PostgreSQL pool (LEDGERD_DB_POOL_SIZE readers, LEDGERD_DB_WRITERS
 * writers). */
#define LIMIT_DB_POOL_SIZE_MAX 256

/* While draining, a client still sending its request body is waited for as long as bytes keep
 * arriving; after this long without any, uploads are deemed abandoned (a vanished client is
 * not always noticed before the connection timeout). */
#define LIMIT_DRAIN_UPLOAD_IDLE_MS 2000
/* Graceful shutdown: in-flight requests and the commit queue drain for at most this long. */
#define LIMIT_SHUTDOWN_TIMEOUT_SECONDS_DEFAULT 30

/* Pending transfer timeouts: seconds, an unsigned 32-bit integer (TigerBeetle's range). */
#define LIMIT_TIMEOUT_SECONDS_MAX 4294967295u

/* How often the commit worker looks for due pending transfers when idle. */
#define LIMIT_EXPIRY_INTERVAL_MS_DEFAULT 250

/* Metrics (obs/metrics.c). Counters and histograms are kept in per-thread shards, summed when
 * /metrics is scraped, so counting takes no lock and no two threads write the same cache line.
 * A thread takes a shard on its first count; threads past the limit share shards, which stays
 * exact (the adds are atomic) and only brings back some cache-line sharing. 64 covers one I/O
 * thread per core on a 64-core machine plus the commit worker. */
#define LIMIT_METRICS_SHARDS 64
/* Label dimensions of one family (ledgerd_http_requests_total has three). */
#define LIMIT_METRICS_LABELS_MAX 4
/* Buckets of one histogram, +Inf not counted (OpenTelemetry's HTTP buckets are 14). */
#define LIMIT_METRICS_BUCKETS_MAX 16
/* Distinct route templates a metric is labelled with, "unmatched" included; routes register
 * at start-up and a route past the limit is counted as "unmatched". */
#define LIMIT_METRICS_ROUTES_MAX 24
/* Result codes of the ledger (enum ledger_result) a metric is labelled with. */
#define LIMIT_METRICS_RESULTS_MAX 40
/* One scrape's text: about 600 series today, at most ~150 bytes each; bounded so a label set
 * grown by mistake shows as a 500 rather than as unbounded memory. */
#define LIMIT_METRICS_SCRAPE_BYTES_MAX ((size_t)4 * 1024 * 1024)
/* Accept header bytes looked at when choosing the exposition format; the rest is ignored. */
#define LIMIT_METRICS_ACCEPT_BYTES_MAX 1024

/* Largest u128 in decimal: 340282366920938463463374607431768211455 (39 digits). */
#define LIMIT_U128_DEC_LEN_MAX 39

/* One log line; longer messages are cut and marked, never split. */
#define LIMIT_LOG_LINE_BYTES_MAX 8192

/* Tracing */
/* Span names: "{method} {route}", the longest route template with room to spare. */
#define LIMIT_SPAN_NAME_LEN_MAX 128
/* Attributes per span: a ledgerd span sets at most 13; OpenTelemetry's default limit is 128,
 * which would make every span 4 times bigger for nothing. More are dropped and counted. */
#define LIMIT_SPAN_ATTRS_MAX 32
/* Attribute keys are ledgerd's own semantic-convention names (the longest is 25 bytes). */
#define LIMIT_SPAN_ATTR_KEY_LEN_MAX 64
/* String attribute values (url.path, user_agent.original) are cut at a UTF-8 boundary, as
 * OpenTelemetry's attribute value length limit does: a span stays small whatever a client sends. */
#define LIMIT_SPAN_ATTR_VALUE_LEN_MAX 256
/* A span's text arena for attribute keys and string values: a request span's full set with
 * every value at its maximum fits (8 * (64 + 256)). */
#define LIMIT_SPAN_TEXT_BYTES 3072
_Static_assert(LIMIT_SPAN_TEXT_BYTES >=
                   8 * (LIMIT_SPAN_ATTR_KEY_LEN_MAX + 1 + LIMIT_SPAN_ATTR_VALUE_LEN_MAX + 1),
               "a request span's attributes fit its arena");
/* Links per span: OpenTelemetry's default span link count limit. A commit batch carries up to
 * LIMIT_COMMIT_COMMANDS_MAX requests; links past this one are counted as dropped. */
#define LIMIT_SPAN_LINKS_MAX 128
#define LIMIT_SPAN_STATUS_MESSAGE_LEN_MAX 128
/* OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_*HEADERS use the W3C Baggage format, whose
 * limits are 8192 bytes and 180 list members; 64 members is plenty for resource attributes and
 * headers. The arena holds the decoded text (never longer than the input) and the defaults. */
#define LIMIT_OTEL_KV_BYTES_MAX 8192
#define LIMIT_OTEL_KV_PAIRS_MAX 64
#define LIMIT_OTEL_KV_TEXT_BYTES (2 * LIMIT_OTEL_KV_BYTES_MAX)
/* OTEL_EXPORTER_OTLP_*ENDPOINT: a URL; longer is refused. */
#define LIMIT_OTLP_ENDPOINT_LEN_MAX 2048
/* Finished spans waiting for export (OTEL_BSP_MAX_QUEUE_SIZE, OpenTelemetry's default); full
 * drops the span and counts it. The ceiling bounds memory: a span is about 7 KiB. */
#define LIMIT_OTLP_QUEUE_SPANS_DEFAULT 2048
#define LIMIT_OTLP_QUEUE_SPANS_CEILING 16384
/* Spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OpenTelemetry's default). */
#define LIMIT_OTLP_BATCH_SPANS_DEFAULT 512
_Static_assert(LIMIT_OTLP_BATCH_SPANS_DEFAULT <= LIMIT_OTLP_QUEUE_SPANS_DEFAULT,
               "a batch comes out of the queue");
/* Longest wait before a partial batch is sent (OTEL_BSP_SCHEDULE_DELAY default and ceiling). */
#define LIMIT_OTLP_SCHEDULE_DELAY_MS_DEFAULT 5000
#define LIMIT_OTLP_SCHEDULE_DELAY_MS_MAX 600000
/* One export HTTP request (OTEL_EXPORTER_OTLP_TIMEOUT default), and its ceiling. */
#define LIMIT_OTLP_TIMEOUT_MS_DEFAULT 10000
#define LIMIT_OTLP_TIMEOUT_MS_MAX 600000
/* All attempts at one batch, retries and waits included (OTEL_BSP_EXPORT_TIMEOUT default). */
#define LIMIT_OTLP_EXPORT_TIMEOUT_MS_DEFAULT 30000
/* Attempts at one batch before it is dropped and counted, and the backoff between them
 * (doubling from the initial value up to the maximum, with jitter; the OTLP specification
 * asks for exponential backoff with jitter). A Retry-After longer than the cap is cut to it. */
#define LIMIT_OTLP_EXPORT_ATTEMPTS_MAX 5
#define LIMIT_OTLP_BACKOFF_INITIAL_MS 1000
#define LIMIT_OTLP_BACKOFF_MAX_MS 5000
#define LIMIT_OTLP_RETRY_AFTER_MS_MAX 30000
/* One export request body: the OpenTelemetry Collector's default gRPC message limit (4 MiB);
 * a batch that would pass it is sent in several requests. A span's JSON is bounded too. */
#define LIMIT_OTLP_REQUEST_BYTES_MAX ((size_t)4 * 1024 * 1024)
#define LIMIT_OTLP_SPAN_JSON_BYTES_MAX ((size_t)64 * 1024)
_Static_assert(LIMIT_OTLP_SPAN_JSON_BYTES_MAX * 8 <= LIMIT_OTLP_REQUEST_BYTES_MAX,
               "a request holds several spans");
/* A collector's response body is read up to this many bytes (partial success reports). */
#define LIMIT_OTLP_RESPONSE_BYTES_MAX ((size_t)64 * 1024)

/* ---- API keys, scopes, auth rate limit ---- */
/* The API key hashing key (LEDGERD_APIKEY_HASH_KEY_FILE): at least the output size of
 * HMAC-SHA256 (RFC 2104 §3 recommends no less than that), at most 1 KiB so that a wrong file
 * (a certificate bundle, a log) is refused instead of silently used. */
#define LIMIT_APIKEY_HASH_KEY_BYTES_MIN 32
#define LIMIT_APIKEY_HASH_KEY_BYTES_MAX 1024
/* A scope list (CLI argument, JWT "scope" claim): all six scopes with separators take 64 bytes;
 * a longer list is refused before it is read. */
#define LIMIT_SCOPE_LIST_BYTES_MAX 1024
/* LEDGERD_ROLES: role names ^[a-z0-9_.-]{1,64}$, at most 32 roles in at most 8 KiB of text
 * (32 roles granting every scope take about 4.3 KiB). */
#define LIMIT_ROLE_NAME_LEN_MAX 64
#define LIMIT_ROLES_MAX 32
#define LIMIT_ROLES_BYTES_MAX 8192
/* Failed authentication: after this many failures from one address within the window, further
 * attempts from it get 429 until the window ends. The ceilings bound the configuration. */
#define LIMIT_AUTH_FAILURES_DEFAULT 10
#define LIMIT_AUTH_FAILURES_MAX 10000
#define LIMIT_AUTH_FAILURE_WINDOW_SECONDS_DEFAULT 60
#define LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX 86400
/* Addresses tracked at once (32 bytes each: 128 KiB), in shards with a lock each so that no lock
 * is shared by all threads; a full shard evicts. Shards are a power of two (index by mask). */
#define LIMIT_AUTH_RATELIMIT_ENTRIES 4096
#define LIMIT_AUTH_RATELIMIT_SHARDS 64
_Static_assert(LIMIT_AUTH_RATELIMIT_ENTRIES % LIMIT_AUTH_RATELIMIT_SHARDS == 0,
               "every shard holds the same number of entries");
_Static_assert((LIMIT_AUTH_RATELIMIT_SHARDS & (LIMIT_AUTH_RATELIMIT_SHARDS - 1)) == 0,
               "shards are a power of two");

/* ---- JWT and JWKS ---- */
/* A bearer JWT (the Authorization header): 8 KiB, the whole header line many proxies allow;
 * access tokens are usually under 2 KiB. Checked before a byte of the token is decoded. */
#define LIMIT_JWT_BYTES_MAX 8192
/* A decoded JWS part (header, payload or signature): base64url turns 4 characters into 3
 * bytes, so this holds any part of the largest token. It is a buffer on the verifying stack. */
#define LIMIT_JWT_PART_BYTES_MAX (LIMIT_JWT_BYTES_MAX / 4 * 3)
/* Claims copied out of a token. A longer value refuses the token: an identity is never cut. The
 * subject becomes the principal; scope and roles are read by the scope and role mapping. */
#define LIMIT_JWT_SUB_LEN_MAX LIMIT_PRINCIPAL_LEN_MAX
#define LIMIT_JWT_ISS_LEN_MAX 256
#define LIMIT_JWT_KID_LEN_MAX 128
#define LIMIT_JWT_JTI_LEN_MAX 128
#define LIMIT_JWT_SCOPE_LEN_MAX LIMIT_SCOPE_LIST_BYTES_MAX
#define LIMIT_JWT_ROLES_MAX 32
#define LIMIT_JWT_ROLE_LEN_MAX LIMIT_ROLE_NAME_LEN_MAX
/* Entries of an "aud" array looked through; a token meant for more audiences is refused. */
#define LIMIT_JWT_AUDIENCES_MAX 16
/* Clock skew allowed on exp and nbf: RFC 7519 speaks of "a few minutes"; more would extend
 * the life of every stolen token by as much. */
#define LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX 300
/* NumericDate claims: 0 to 9999-12-31T23:59:59Z. Keeps now +- skew far from overflow. */
#define LIMIT_JWT_NUMERIC_DATE_MAX 253402300799LL
/* A JWKS document: 32 keys, each with an x5c chain of a few KiB, fit with room to spare. */
#define LIMIT_JWKS_BYTES_MAX ((size_t)256 * 1024)
#define LIMIT_JWKS_KEYS_MAX 32
/* RSA moduli: at least 2048 bits (RFC 7518 §3.3), at most 8192 (bounds verification cost). The
 * public exponent takes at most 4 bytes (65537 takes 3). */
#define LIMIT_JWK_RSA_BITS_MIN 2048
#define LIMIT_JWK_RSA_BITS_MAX 8192
#define LIMIT_JWK_RSA_E_BYTES_MAX 4
_Static_assert(LIMIT_JWK_RSA_BITS_MAX / 8 <= LIMIT_JWT_PART_BYTES_MAX,
               "the largest RSA signature fits a part buffer");
_Static_assert(LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX < LIMIT_JWT_NUMERIC_DATE_MAX,
               "now +- skew cannot overflow");

/* ---- Audit trail ---- */
/* Audit record fields (src/audit/audit.h): text refused when longer, never cut. The actor is a
 * principal: "apikey:<id>", "jwt:<issuer>|<subject>", "anonymous" or "system"; the longest
 * JWT issuer and subject fit with room to spare. */
#define LIMIT_AUDIT_ACTOR_LEN_MAX 512
_Static_assert(LIMIT_AUDIT_ACTOR_LEN_MAX >= 4 + LIMIT_JWT_ISS_LEN_MAX + 1 + LIMIT_JWT_SUB_LEN_MAX,
               "a JWT actor fits");
/* The action: a dotted name such as "transfer.create" or "apikey.revoke". */
#define LIMIT_AUDIT_ACTION_LEN_MAX 64
/* The resource: a route template ("POST /v1/transfers") or a named object ("apikey:<id>"),
 * never the raw request target, which a client could make as long as the header limit allows. */
#define LIMIT_AUDIT_RESOURCE_LEN_MAX 256
_Static_assert(LIMIT_AUDIT_RESOURCE_LEN_MAX >= 16 + LIMIT_ID_LEN_MAX, "an object name fits");
/* The decision: "allow", "deny", "success" or "failure". */
#define LIMIT_AUDIT_DECISION_LEN_MAX 7
/* The reason: a short code or sentence ("token_expired", "scope ledger:write missing"). */
#define LIMIT_AUDIT_REASON_LEN_MAX 256
/* The source: the client's address as text; an IPv6 address with a zone and a port fits. */
#define LIMIT_AUDIT_SOURCE_LEN_MAX 128
/* W3C Trace Context trace-id: 32 lower-case hex digits (or no trace). */
#define LIMIT_AUDIT_TRACE_ID_LEN 32
/* One record's canonical encoding (RFC 8785 JSON): every text field at its maximum with every
 * character escaped (a quote or backslash takes two bytes), the other fields, the 64-digit
 * previous hash, two 16-digit numbers and the member names (under 512 bytes). */
#define LIMIT_AUDIT_CANONICAL_BYTES_MAX 4096
_Static_assert(2 * (LIMIT_AUDIT_ACTOR_LEN_MAX + LIMIT_AUDIT_RESOURCE_LEN_MAX +
                    LIMIT_AUDIT_REASON_LEN_MAX + LIMIT_AUDIT_SOURCE_LEN_MAX) +
                       LIMIT_AUDIT_ACTION_LEN_MAX + LIMIT_AUDIT_DECISION_LEN_MAX +
                       LIMIT_REQUEST_ID_LEN_MAX + LIMIT_AUDIT_TRACE_ID_LEN + 64 + 2 * 16 + 512 <=
                   LIMIT_AUDIT_CANONICAL_BYTES_MAX,
               "a record at its maxima has a canonical encoding");
/* seq and time_unix_ms are JSON numbers in the canonical encoding: RFC 8785 serializes numbers
 * as IEEE 754 doubles, exact for integers up to 2^53 - 1 (about 285,000 years of milliseconds). */
#define LIMIT_AUDIT_INTEGER_MAX 9007199254740991LL
/* Checkpoint keys: a key id is 16 hex digits (the first 8 bytes of SHA-256 of the raw Ed25519
 * public key). A verifier holds the current key and the ones rotated out, at most this many. */
#define LIMIT_AUDIT_KEY_ID_LEN 16
#define LIMIT_AUDIT_VERIFY_KEYS_MAX 32
/* A key given to the loaders: an Ed25519 PEM is about 120 bytes; a bigger input is not one. */
#define LIMIT_AUDIT_KEY_PEM_BYTES_MAX 8192
/* Checkpoints given to the verifier before the record they cover wait in a queue (40 bytes
 * each); fed merged with the records by seq, none waits. Full is a handled error (-ENOSPC). */
#define LIMIT_AUDIT_VERIFY_PENDING_MAX 4096
/* A finding's human sentence. */
#define LIMIT_AUDIT_FINDING_MESSAGE_BYTES 256
/* Checkpoints: by default one every 1000 records or every 60 s, whichever comes first (while
 * records arrive); configuration may change both. The records after the last checkpoint are the
 * part of the trail that can be cut off unseen, so the interval bounds that exposure. */
#define LIMIT_AUDIT_CHECKPOINT_RECORDS_DEFAULT 1000
#define LIMIT_AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT 60000

/* ---- Audit records waiting for the commit worker ---- */
/* Records of refusals (no effect to share a transaction with) queued for the commit worker's
 * next transaction; past this many, a record is dropped and counted. */
#define LIMIT_AUDIT_PENDING_MAX 1024

/* ---- Migration files (read as hostile input: a file may come from any branch) ---- */
/* One migration file; the largest ledgerd ships is a few KiB. */
#define LIMIT_MIGRATION_FILE_BYTES_MAX ((size_t)4 * 1024 * 1024)
/* Files per backend directory: the number has four digits. */
#define LIMIT_MIGRATION_FILES_MAX 9999
/* The name part of NNNN_name.sql: ^[a-z0-9_]{1,64}$. */
#define LIMIT_MIGRATION_NAME_LEN_MAX 64
/* "NNNN_" + name + ".sql". */
#define LIMIT_MIGRATION_FILE_NAME_LEN_MAX (LIMIT_MIGRATION_NAME_LEN_MAX + 9)
/* Statements in one file. */
#define LIMIT_MIGRATION_STATEMENTS_MAX 10000
/* An identifier a lint finding names: PostgreSQL's NAMEDATALEN - 1. */
#define LIMIT_MIGRATION_IDENT_LEN_MAX 63
/* The reason an annotation gives for a destructive statement: a sentence, not a word. */
#define LIMIT_MIGRATION_REASON_LEN_MIN 10
#define LIMIT_MIGRATION_REASON_LEN_MAX 200
/* Annotations in one file. */
#define LIMIT_MIGRATION_ANNOTATIONS_MAX 64
/* One lint problem or integrity error, as printed. */
#define LIMIT_MIGRATION_MESSAGE_LEN 256
/* The integrity file: one line per migration file. */
#define LIMIT_MIGRATION_SUM_BYTES_MAX ((size_t)1024 * 1024)
/* Who applied a migration, as recorded in schema_migrations (the audit actor). */
#define LIMIT_MIGRATION_APPLIED_BY_LEN_MAX LIMIT_AUDIT_ACTOR_LEN_MAX
/* The author a new migration's header names (`ledgerd migrate new`): a name and an address. */
#define LIMIT_MIGRATION_AUTHOR_LEN_MAX 128

#endif
