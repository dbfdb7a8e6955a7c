/*
 * dashboard.h — the /ops/dashboard page: one self-contained HTML document (inline CSS and
 * script, charts drawn as inline SVG, no external assets) that polls GET /metrics every 2 s from
 * the same origin and draws ledgerd's signals live. Each chart element carries
 * data-series="<name>" and, once it has drawn, data-points="<n>".
 *
 * The page is src/ops/dashboard.html, compiled into the binary at build time
 * (cmake/embed_dashboard.cmake), so a deployed ledgerd needs no file beside it.
 */
#ifndef LEDGERD_OPS_DASHBOARD_H
#define LEDGERD_OPS_DASHBOARD_H

#include <stddef.h>

/* The headers the page must be served with. The Content-Security-Policy allows only the
 * page's own inline script and style and fetches to its own origin (W3C Content Security
 * Policy Level 3); the page is never cached, so a deployed upgrade shows at once. */
#define OPS_DASHBOARD_CONTENT_TYPE "text/html; charset=utf-8"
#define OPS_DASHBOARD_CACHE_CONTROL "no-store"
#define OPS_DASHBOARD_CSP                                                                          \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "                     \
    "frame-ancestors 'none'"

/* The page: a static, NUL-terminated UTF-8 document of *len_out bytes (the NUL not counted).
 * Never NULL, never empty; the storage is static and read-only. Thread-safe. */
const char *ops_dashboard_html(size_t *len_out);

/* Generated from src/ops/dashboard.html by cmake/embed_dashboard.cmake: the bytes, NUL
 * terminated, and their count without the NUL. Use ops_dashboard_html(). */
extern const unsigned char ops_dashboard_html_bytes[];
extern const size_t ops_dashboard_html_bytes_len;

#endif
