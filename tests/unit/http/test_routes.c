/*
 * test_routes.c — the route table: every route declares a known scope (the audit trail its
 * own), no two rows collide, and paths match the most specific template.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

static const char *const known_scopes[] = {
    "public", "ledger:read", "ledger:write", "flags:read", "flags:write", "audit:read", "admin"};

static void test_every_route_declares_a_known_scope(void **state)
{
    (void)state;
    assert_true(http_routes_count > 0);
    for (size_t i = 0; i < http_routes_count; i++) {
        const struct http_route *r = &http_routes[i];
        assert_non_null(r->scope);
        bool known = false;
        for (size_t j = 0; j < sizeof(known_scopes) / sizeof(known_scopes[0]); j++) {
            known = known || strcmp(r->scope, known_scopes[j]) == 0;
        }
        if (!known) {
            fail_msg("route %s has unknown scope '%s'", r->template, r->scope);
        }
        assert_non_null(r->handler);
        /* Only probes may be public, the audit trail needs its own scope, and state changes
         * need the write scope. */
        if (strncmp(r->template, "/v1/audit", 9) == 0) {
            assert_string_equal(r->scope, "audit:read");
        }
        if (strcmp(r->scope, "public") == 0) {
            assert_true(strncmp(r->template, "/v1/", 4) != 0);
        }
        if (r->changes_state) {
            assert_string_equal(r->scope, "ledger:write");
            assert_int_equal(r->method, HTTP_POST);
            assert_int_not_equal(r->body, HTTP_BODY_NONE);
        }
    }
}

static void test_no_duplicate_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < http_routes_count; i++) {
        for (size_t j = i + 1; j < http_routes_count; j++) {
            bool same = http_routes[i].method == http_routes[j].method &&
                        strcmp(http_routes[i].template, http_routes[j].template) == 0;
            assert_false(same);
        }
    }
}

static struct http_request *match(enum http_method m, const char *path)
{
    struct http_request *req = calloc(1, sizeof(*req));
    assert_non_null(req);
    req->method = m;
    req->path = path;
    http_route_match(req);
    return req;
}

static void test_matching(void **state)
{
    (void)state;
    struct http_request *req = match(HTTP_GET, "/v1/accounts/acc-1");
    assert_non_null(req->route);
    assert_string_equal(req->route->template, "/v1/accounts/{id}");
    assert_true(req->path_id_valid);
    assert_string_equal(req->path_id, "acc-1");
    free(req);

    req = match(HTTP_POST, "/v1/transfers/batch");
    assert_non_null(req->route);
    assert_string_equal(req->route->template, "/v1/transfers/batch");
    free(req);

    /* A transfer may be called "batch": GET reaches the transfer, not a 405. */
    req = match(HTTP_GET, "/v1/transfers/batch");
    assert_non_null(req->route);
    assert_string_equal(req->route->template, "/v1/transfers/{id}");
    free(req);

    req = match(HTTP_DELETE, "/v1/accounts/acc-1");
    assert_null(req->route);
    assert_int_equal(req->allow, HTTP_GET);
    free(req);

    req = match(HTTP_PUT, "/v1/accounts");
    assert_null(req->route);
    assert_int_equal(req->allow, HTTP_GET | HTTP_POST);
    free(req);

    const char *not_found[] = {"/",
                               "",
                               "/v1",
                               "/v1/accounts/",
                               "/v1/accounts//transfers",
                               "/v1/accounts/a/transfers/x",
                               "/v2/accounts",
                               "/livez/"};
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        req = match(HTTP_GET, not_found[i]);
        if (req->route != NULL || req->allow != 0) {
            fail_msg("path '%s' should match nothing", not_found[i]);
        }
        free(req);
    }

    /* The audit trail is one list, read-only, behind its own scope. */
    req = match(HTTP_GET, "/v1/audit");
    assert_non_null(req->route);
    assert_string_equal(req->route->template, "/v1/audit");
    assert_string_equal(req->route->scope, "audit:read");
    assert_int_equal(req->route->body, HTTP_BODY_NONE);
    assert_false(req->route->changes_state);
    free(req);

    req = match(HTTP_POST, "/v1/audit");
    assert_null(req->route);
    assert_int_equal(req->allow, HTTP_GET);
    free(req);

    const char *audit_not_found[] = {"/v1/audit/", "/v1/audit/1", "/v1/audits", "/v1/Audit"};
    for (size_t i = 0; i < sizeof(audit_not_found) / sizeof(audit_not_found[0]); i++) {
        req = match(HTTP_GET, audit_not_found[i]);
        if (req->route != NULL || req->allow != 0) {
            fail_msg("path '%s' should match nothing", audit_not_found[i]);
        }
        free(req);
    }

    /* An id outside the grammar still routes (to a 404 from the handler). */
    req = match(HTTP_GET, "/v1/accounts/-bad");
    assert_non_null(req->route);
    assert_false(req->path_id_valid);
    free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_declares_a_known_scope),
        cmocka_unit_test(test_no_duplicate_rows),
        cmocka_unit_test(test_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
