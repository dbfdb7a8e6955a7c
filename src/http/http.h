/*
 * http.h — ledgerd's HTTP server: libmicrohttpd with an epoll thread pool, the route table,
 * and the request pipeline (request id -> trace context -> limits -> idempotency -> handler).
 *
 * Handlers that change the ledger validate the request into a command, suspend the connection
 * and hand the command to the commit worker; the worker's completion resumes the connection
 * and the I/O thread writes the reply. Reads run on the I/O thread against SQLite's per-thread
 * read connections; with PostgreSQL or a Redis cache, on the database work pool instead.
 */
#ifndef LEDGERD_HTTP_HTTP_H
#define LEDGERD_HTTP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/config.h"
#include "idem/rcache.h"
#include "store/commit.h"
#include "store/store.h"

struct http_server;

/* Starts listening on cfg->listen_host:listen_port with cfg's limits. store, commit, auth and
 * cache (the Redis idempotency cache, NULL for none) must outlive the server. On failure
 * returns a negative code and a one-line reason in err. */
int http_server_start(const struct config *cfg, struct store *store, struct commit *commit,
                      struct auth *auth, struct rcache *cache, struct http_server **out,
                      struct buf *err);
/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const struct http_server *s);
/* Begins draining: /readyz answers 503 and every new request but the probes gets 503
 * shutting_down with Connection: close; the listener stays open until http_server_stop.
 * Thread-safe. */
void http_server_drain(struct http_server *s);
/* Requests being processed (body complete, reply not yet sent). Thread-safe. */
uint64_t http_server_in_flight(const struct http_server *s);
/* True while a drain should still wait: requests are being processed, or request bodies are
 * still arriving (bytes seen within LIMIT_DRAIN_UPLOAD_IDLE_MS). Thread-safe. */
bool http_server_busy(const struct http_server *s);
/* Stops the daemon (every suspended connection must have been resumed: stop the commit
 * worker first) and frees the server. */
void http_server_stop(struct http_server *s);

#endif
