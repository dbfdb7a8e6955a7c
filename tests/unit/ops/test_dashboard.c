/*
 * test_dashboard.c — the /ops/dashboard page: a whole HTML document that loads nothing from
 * elsewhere, polls /metrics, and has a chart for every signal ledgerd's operators watch.
 * The page's drawing is checked in a real browser by tests/system/test_dashboards.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/dashboard.h"

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

/* Finds needle in hay[0..len), case-insensitively; NULL when absent. */
static const char *find_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)hay[i + k]) == tolower((unsigned char)needle[k])) {
            k++;
        }
        if (k == n) {
            return hay + i;
        }
    }
    return NULL;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* True when an attribute value (len bytes) points somewhere else: a scheme other than data:
 * (http:, https:, ftp:, javascript:, ...) or a network-path reference ("//host"). */
static bool url_is_external(const char *v, size_t len)
{
    while (len > 0 && isspace((unsigned char)*v)) {
        v++;
        len--;
    }
    if (len >= 2 && (v[0] == '/' || v[0] == '\\') && (v[1] == '/' || v[1] == '\\')) {
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] == ':') {
            return !(i == 4 && find_ci(v, 4, "data") == v);
        }
        if (v[i] == '/' || v[i] == '?' || v[i] == '#') {
            return false; /* a relative reference: no scheme */
        }
    }
    return false;
}

/* Counts the src, href, action, srcset, poster and formaction attributes in html[0..len) whose
 * value points outside the page's origin. Quoted and unquoted values, any case, spaces around
 * "=". */
static size_t external_attributes(const char *html, size_t len)
{
    static const char *const names[] = {"src", "href", "action", "srcset", "poster", "formaction"};
    size_t bad = 0;
    for (size_t i = 1; i < len; i++) {
        if (!isspace((unsigned char)html[i - 1]) && html[i - 1] != ':') {
            continue; /* an attribute name follows white space (or xlink:) */
        }
        for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
            size_t nl = strlen(names[n]);
            if (i + nl >= len || find_ci(html + i, nl, names[n]) != html + i) {
                continue;
            }
            size_t j = i + nl;
            while (j < len && isspace((unsigned char)html[j])) {
                j++;
            }
            if (j >= len || html[j] != '=') {
                continue;
            }
            j++;
            while (j < len && isspace((unsigned char)html[j])) {
                j++;
            }
            char quote = '\0';
            if (j < len && (html[j] == '"' || html[j] == '\'')) {
                quote = html[j];
            }
            size_t start = quote ? j + 1 : j;
            size_t end = start;
            while (end < len && (quote ? html[end] != quote
                                       : !isspace((unsigned char)html[end]) && html[end] != '>')) {
                end++;
            }
            if (url_is_external(html + start, end - start)) {
                bad++;
            }
        }
    }
    return bad;
}

/* ---------------------------------------------------------------------------------------
 * The page
 * ------------------------------------------------------------------------------------- */

static void test_page_is_a_whole_document(void **state)
{
    (void)state;
    size_t len = 0;
    const char *page = ops_dashboard_html(&len);
    assert_non_null(page);
    assert_true(len > 1000);
    assert_int_equal(strlen(page), len);
    assert_ptr_equal(find_ci(page, len, "<!doctype html>"), page);
    assert_non_null(find_ci(page, len, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(page, "</html>"));
    /* Served as UTF-8; kept to ASCII so no byte depends on an editor's encoding. */
    for (size_t i = 0; i < len; i++) {
        assert_true((unsigned char)page[i] < 0x80);
    }
    /* The same page every time. */
    size_t len2 = 0;
    assert_ptr_equal(ops_dashboard_html(&len2), page);
    assert_int_equal(len2, len);
}

static void test_page_loads_nothing_from_elsewhere(void **state)
{
    (void)state;
    size_t len = 0;
    const char *page = ops_dashboard_html(&len);
    assert_int_equal(external_attributes(page, len), 0);
    /* No absolute URL anywhere, not even in script or CSS (the SVG namespace is taken from
     * the parsed document, not written out). */
    assert_null(find_ci(page, len, "http://"));
    assert_null(find_ci(page, len, "https://"));
    assert_null(find_ci(page, len, "url("));
    assert_null(find_ci(page, len, "@import"));
    assert_null(find_ci(page, len, "<script src"));
    assert_null(find_ci(page, len, "stylesheet"));
    assert_null(find_ci(page, len, "<iframe"));
    assert_null(find_ci(page, len, "eval("));
    /* Inline script and style are what the Content-Security-Policy allows. */
    assert_non_null(find_ci(page, len, "<script>"));
    assert_non_null(find_ci(page, len, "<style>"));
    /* Values from /metrics are written as text, never parsed as markup. */
    assert_null(strstr(page, "innerHTML"));
    assert_null(strstr(page, "document.write"));
}

static void test_page_polls_metrics_every_two_seconds(void **state)
{
    (void)state;
    size_t len = 0;
    const char *page = ops_dashboard_html(&len);
    assert_non_null(strstr(page, "fetch(\"/metrics\""));
    assert_non_null(strstr(page, "POLL_MS = 2000;"));
    assert_non_null(strstr(page, "text/plain;version=0.0.4"));
    assert_non_null(strstr(page, "setAttribute(\"data-points\""));
}

static void test_page_draws_every_required_series(void **state)
{
    (void)state;
    size_t len = 0;
    const char *page = ops_dashboard_html(&len);
    static const char *const series[] = {
        "request_rate",
        "latency",
        "error_rate",
        "idempotency_hit_ratio",
        "db_pool_saturation",
        "commit_queue_depth",
        "cpu",
        "rss",
    };
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        char attr[64];
        snprintf(attr, sizeof(attr), "data-series=\"%s\"", series[i]);
        /* Exactly one chart element per series (the script looks it up by this attribute). */
        assert_int_equal(count(page, attr), 1);
        char lookup[64];
        snprintf(lookup, sizeof(lookup), "new Chart(\"%s\"", series[i]);
        assert_int_equal(count(page, lookup), 1);
    }
    /* Every chart element is looked up by the script, and no chart is left without one. */
    assert_int_equal(count(page, "<figure class=\"chart\" data-series=\""),
                     count(page, "new Chart(\""));
    /* The metrics each chart is computed from, by their names in the metrics contract. */
    static const char *const metrics[] = {
        "\"ledgerd_http_requests_total\"",
        "\"ledgerd_http_request_duration_seconds\"",
        "\"ledgerd_idempotency_lookups_total\"",
        "\"ledgerd_db_pool_connections\"",
        "\"ledgerd_db_pool_max_connections\"",
        "\"ledgerd_commit_queue_depth\"",
        "\"ledgerd_commit_queue_capacity\"",
        "\"ledgerd_commit_duration_seconds\"",
        "\"ledgerd_transfers_total\"",
        "\"process_cpu_seconds_total\"",
        "\"process_resident_memory_bytes\"",
        "\"process_open_fds\"",
        "\"process_max_fds\"",
        "\"ledgerd_up\"",
    };
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        assert_non_null(strstr(page, metrics[i]));
    }
    /* Latency quantiles come from the histogram's buckets; the hit rate from all four results. */
    assert_non_null(strstr(page, "base + \"_bucket\""));
    assert_non_null(strstr(page, "0.5)"));
    assert_non_null(strstr(page, "0.95)"));
    assert_non_null(strstr(page, "0.99)"));
    assert_non_null(strstr(page, "hit|miss|reused|in_flight"));
}

static void test_headers_allow_only_the_page_itself(void **state)
{
    (void)state;
    const char *csp = OPS_DASHBOARD_CSP;
    assert_non_null(strstr(csp, "default-src 'none'"));
    assert_non_null(strstr(csp, "script-src 'unsafe-inline'"));
    assert_non_null(strstr(csp, "style-src 'unsafe-inline'"));
    assert_non_null(strstr(csp, "connect-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "unsafe-eval"));
    assert_null(strstr(csp, "http"));
    assert_null(strchr(csp, '*'));
    assert_string_equal(OPS_DASHBOARD_CONTENT_TYPE, "text/html; charset=utf-8");
    assert_string_equal(OPS_DASHBOARD_CACHE_CONTROL, "no-store");
    /* Header values: printable ASCII, no line breaks. */
    for (const char *p = csp; *p != '\0'; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
}

/* ---------------------------------------------------------------------------------------
 * The checker itself: it must catch what it is meant to catch
 * ------------------------------------------------------------------------------------- */

static size_t external_in(const char *html)
{
    return external_attributes(html, strlen(html));
}

static void test_checker_flags_external_references(void **state)
{
    (void)state;
    assert_int_equal(external_in("<script src=\"https://cdn.example/x.js\"></script>"), 1);
    assert_int_equal(external_in("<img SRC='//evil.example/p.gif'>"), 1);
    assert_int_equal(external_in("<a href = http://x.example/>x</a>"), 1);
    assert_int_equal(external_in("<a\thref=\" https://x.example\">x</a>"), 1);
    assert_int_equal(external_in("<link rel=icon href=\"\\\\evil.example\\x\">"), 1);
    assert_int_equal(external_in("<a href=\"javascript:alert(1)\">x</a>"), 1);
    assert_int_equal(external_in("<form action=\"ftp://x\"></form>"), 1);
    assert_int_equal(external_in("<use xlink:href=\"https://x.example/s.svg#a\"/>"), 1);
    assert_int_equal(external_in("<img srcset=\"//x.example/a.png 2x\">"), 1);
    assert_int_equal(external_in("<img src=a.png><img src=\"//b\"><img src='http://c'>"), 2);
}

static void test_checker_accepts_local_references(void **state)
{
    (void)state;
    assert_int_equal(external_in("<link rel=\"icon\" href=\"data:,\">"), 0);
    assert_int_equal(external_in("<a href=\"/metrics\">m</a><a href=\"#top\">t</a>"), 0);
    assert_int_equal(external_in("<a href=\"docs/x.html?a=b:c\">x</a>"), 0);
    assert_int_equal(external_in("<p data-src=\"https://x\">only data attributes</p>"), 0);
    assert_int_equal(external_in("text mentioning src and href = nothing"), 0);
    assert_int_equal(external_in(""), 0);
    assert_int_equal(external_in("<a href="), 0); /* truncated */
    assert_int_equal(external_in("<a href=\"//"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_is_a_whole_document),
        cmocka_unit_test(test_page_loads_nothing_from_elsewhere),
        cmocka_unit_test(test_page_polls_metrics_every_two_seconds),
        cmocka_unit_test(test_page_draws_every_required_series),
        cmocka_unit_test(test_headers_allow_only_the_page_itself),
        cmocka_unit_test(test_checker_flags_external_references),
        cmocka_unit_test(test_checker_accepts_local_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
