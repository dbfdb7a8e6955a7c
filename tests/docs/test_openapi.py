"""docs/api/openapi.yaml against what ledgerd serves and decides.

The OpenAPI document is the contract clients are generated from, so it is checked against the
sources of truth inside the repository: the route table and its scope column (src/http), the
ledger's result codes (src/ledger/ledger.h), the limits (src/core/limits.h), the scopes and
refusal reasons of authentication (src/auth), the open route groups (src/core/config.c), the
audit record (docs/security/audit.md, `ledgerd audit export`) and the code tables of
docs/api/conventions.md. Run: python3 -m pytest tests/docs
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "api" / "openapi.yaml"
CONVENTIONS = ROOT / "docs" / "api" / "conventions.md"
LEDGER_H = ROOT / "src" / "ledger" / "ledger.h"
LIMITS_H = ROOT / "src" / "core" / "limits.h"
HTTP_DIR = ROOT / "src" / "http"
SCOPE_H = ROOT / "src" / "auth" / "scope.h"
AUTH_C = ROOT / "src" / "auth" / "auth.c"
CONFIG_C = ROOT / "src" / "core" / "config.c"
AUDIT_MD = ROOT / "docs" / "security" / "audit.md"
AUDIT_CLI_C = ROOT / "src" / "cli" / "audit.c"

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The operations of API v1 that this version of ledgerd serves (routes of later versions must
# not be documented before they exist).
CONTRACT_OPERATIONS = {
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts"),
    ("GET", "/v1/accounts/{id}"),
    ("GET", "/v1/accounts/{id}/transfers"),
    ("POST", "/v1/transfers"),
    ("GET", "/v1/transfers/{id}"),
    ("POST", "/v1/transfers/batch"),
    ("GET", "/v1/audit"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/ops/dashboard"),
}

# Operations whose success is not JSON: the metrics exposition formats and the dashboard page.
NON_JSON_OPERATIONS = {("GET", "/metrics"), ("GET", "/ops/dashboard")}

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture(scope="module")
def doc():
    with OPENAPI.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    """Follows local $refs until node is not a reference."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        target = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"unresolved $ref {ref}"
            target = target[part]
        node = target
        seen += 1
        assert seen < 32, f"reference loop at {ref}"
    return node


def operations(doc):
    """(METHOD, path, operation) for every operation."""
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def all_responses(doc):
    """(where, status, response) for every response, the reusable ones included."""
    for method, path, op in operations(doc):
        for status, resp in op["responses"].items():
            yield f"{method} {path} {status}", str(status), resolve(doc, resp)
    for name, resp in doc["components"].get("responses", {}).items():
        yield f"components.responses.{name}", None, resp


def problem_codes_of(doc, resp):
    """The problem codes a response enumerates (allOf: [Problem, {properties: {code: enum}}])."""
    codes = set()
    for media in resp.get("content", {}).values():
        schema = resolve(doc, media.get("schema", {}))
        for part in schema.get("allOf", []):
            part = resolve(doc, part)
            enum = part.get("properties", {}).get("code", {}).get("enum")
            if enum:
                codes.update(enum)
    return codes


def references_problem(doc, schema):
    if schema.get("$ref") == "#/components/schemas/Problem":
        return True
    return any(p.get("$ref") == "#/components/schemas/Problem" for p in schema.get("allOf", []))


def c_define(name):
    m = re.search(rf"^#define {name} \(?(\d+)u?", LIMITS_H.read_text(), re.M)
    assert m, f"{name} not found in limits.h"
    return int(m.group(1))


def every_ref(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from every_ref(v)
    elif isinstance(node, list):
        for v in node:
            yield from every_ref(v)


# --- the document itself -----------------------------------------------------------------


def test_is_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]


def test_every_reference_resolves(doc):
    refs = set(every_ref(doc))
    assert refs, "the document uses $ref"
    for ref in refs:
        resolve(doc, {"$ref": ref})


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


# --- paths ---------------------------------------------------------------------------------


def test_documents_exactly_the_served_operations(doc):
    documented = {(m, p) for m, p, _ in operations(doc)}
    assert documented == CONTRACT_OPERATIONS


def route_table():
    """(METHOD, template) rows of the http_routes table in src/http, or None if not found."""
    for c_file in sorted(HTTP_DIR.glob("*.c")):
        text = c_file.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"http_routes\s*\[\s*\]\s*=\s*\{(.*?)\n\};", text, re.S)
        if not m:
            continue
        rows = set()
        # Rows open with the method and the path template: {HTTP_GET, "/v1/accounts/{id}", ...
        for row in re.finditer(r'\{\s*(?:\.method\s*=\s*)?HTTP_([A-Z]+)\s*,\s*'
                               r'(?:\.template\s*=\s*)?"(/[^"]*)"', m.group(1)):
            rows.add((row.group(1), row.group(2)))
        if rows:
            return rows
    return None


def test_matches_the_route_table(doc):
    rows = route_table()
    assert rows is not None, "no http_routes table found in src/http/*.c"
    documented = {(m, p) for m, p, _ in operations(doc)}
    assert rows == documented, (
        f"served but undocumented: {sorted(rows - documented)}; "
        f"documented but not served: {sorted(documented - rows)}"
    )


def test_state_changing_posts_take_json_and_idempotency_key(doc):
    for method, path, op in operations(doc):
        if method != "POST":
            continue
        params = [resolve(doc, p)["name"] for p in op.get("parameters", [])]
        assert "Idempotency-Key" in params, f"{path} lacks Idempotency-Key"
        assert op["requestBody"]["required"] is True
        assert list(op["requestBody"]["content"]) == ["application/json"], path
        for status in ("413", "415"):
            assert status in op["responses"], f"POST {path} lacks {status}"


def test_correlation_headers_are_accepted_everywhere(doc):
    for path, item in doc["paths"].items():
        names = {resolve(doc, p)["name"] for p in item.get("parameters", [])}
        assert {"X-Request-Id", "traceparent", "tracestate"} <= names, path


# --- responses -----------------------------------------------------------------------------


def test_every_response_carries_request_id_and_traceresponse(doc):
    for where, _, resp in all_responses(doc):
        headers = resp.get("headers", {})
        assert "X-Request-Id" in headers, where
        assert "traceresponse" in headers, where


def test_every_error_response_is_a_problem_document(doc):
    checked = 0
    for where, status, resp in all_responses(doc):
        if status is not None and status[0] not in "45":
            continue
        content = resp.get("content", {})
        assert list(content) == ["application/problem+json"], where
        schema = content["application/problem+json"]["schema"]
        assert references_problem(doc, schema), f"{where} does not reference Problem"
        assert problem_codes_of(doc, resp), f"{where} enumerates no problem code"
        checked += 1
    assert checked > 20


def test_success_responses_are_json(doc):
    for method, path, op in operations(doc):
        if (method, path) in NON_JSON_OPERATIONS:
            continue
        for status, resp in op["responses"].items():
            if str(status).startswith("2"):
                assert list(resolve(doc, resp)["content"]) == ["application/json"], (method, path)


def test_created_responses_carry_location(doc):
    for method, path, op in operations(doc):
        if "201" in op["responses"]:
            assert "Location" in op["responses"]["201"]["headers"], path


def test_replayable_responses_carry_idempotent_replayed(doc):
    for method, path, op in operations(doc):
        if method != "POST":
            continue
        success = [s for s in op["responses"] if str(s).startswith("2")]
        for status in success:
            assert "Idempotent-Replayed" in op["responses"][status]["headers"], (path, status)


def test_retry_after_and_allow_where_the_contract_says(doc):
    responses = doc["components"]["responses"]
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    assert "Retry-After" in responses["WriteUnavailable"]["headers"]
    for method, path, op in operations(doc):
        for status, resp in op["responses"].items():
            resp = resolve(doc, resp)
            if "idempotency_key_in_flight" in problem_codes_of(doc, resp):
                assert "Retry-After" in resp["headers"], (path, status)


# --- codes ---------------------------------------------------------------------------------


def conventions_codes():
    """Backticked codes from the `code` column of every table in conventions.md."""
    codes = set()
    code_column = None
    for line in CONVENTIONS.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            code_column = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if code_column is None:
            code_column = cells.index("code") if "code" in cells else -1
            continue
        if code_column < 0 or set("".join(cells)) <= set("-: "):
            continue
        for token in re.findall(r"`([^`]+)`", cells[code_column]):
            if SNAKE.match(token):
                codes.add(token)
    return codes


def ledger_result_codes():
    text = LEDGER_H.read_text(encoding="utf-8")
    body = re.search(r"enum ledger_result \{(.*?)\};", text, re.S).group(1)
    names = re.findall(r"\bLEDGER_([A-Z_]+)\b", body)
    return {n.lower() for n in names if n != "RESULT_COUNT"}


def documented_problem_codes(doc):
    codes = set()
    for _, _, resp in all_responses(doc):
        codes |= problem_codes_of(doc, resp)
    return codes


def test_conventions_tables_are_parsed():
    codes = conventions_codes()
    # A few from each table, so a change of table layout cannot empty the check.
    assert {"field_required", "amount_invalid", "batch_size_invalid"} <= codes
    assert {"not_found", "method_not_allowed", "queue_full", "internal_error"} <= codes


def test_every_conventions_code_is_a_documented_problem_code(doc):
    missing = conventions_codes() - documented_problem_codes(doc)
    assert not missing, f"codes in conventions.md that no response enumerates: {sorted(missing)}"


def test_every_field_code_is_listed_for_field_errors(doc):
    field_enum = set(doc["components"]["schemas"]["FieldError"]["properties"]["code"]["enum"])
    text = CONVENTIONS.read_text(encoding="utf-8")
    section = text.split("## Validation errors", 1)[1].split("\n## ", 1)[0]
    table = {c for c in re.findall(r"^\| `([a-z_]+)` \|", section, re.M)}
    assert table and table <= field_enum


def test_result_codes_match_the_ledger(doc):
    enum = set(doc["components"]["schemas"]["ResultCode"]["enum"])
    assert enum == ledger_result_codes()


def test_single_transfer_refusals_are_documented(doc):
    op = doc["paths"]["/v1/transfers"]["post"]["responses"]
    codes_422 = problem_codes_of(doc, op["422"])
    codes_409 = problem_codes_of(doc, op["409"])
    refusals = ledger_result_codes() - {"created", "exists"}
    assert "exists_with_different_fields" in codes_409
    # A single transfer has no chain for linked_event_failed to report on.
    expected_422 = refusals - {"exists_with_different_fields", "linked_event_failed"}
    assert expected_422 <= codes_422, sorted(expected_422 - codes_422)
    assert "idempotency_key_reused" in codes_422


def test_problem_type_is_a_relative_uri_of_the_code(doc):
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "request_id"}
    pattern = re.compile(problem["properties"]["type"]["pattern"])
    assert pattern.search("/problems/queue_full")
    assert not pattern.search("about:blank")
    assert not pattern.search("https://example.com/problems/queue_full")


# --- patterns and limits -------------------------------------------------------------------


def schema_pattern(doc, name):
    return re.compile(doc["components"]["schemas"][name]["pattern"])


@pytest.mark.parametrize(
    "value,ok",
    [
        ("0", True),
        ("1050", True),
        ("340282366920938463463374607431768211455", True),
        ("", False),
        ("00", False),
        ("01", False),
        ("-1", False),
        ("+1", False),
        ("1.0", False),
        ("1e3", False),
        (" 1", False),
        ("1" * 40, False),
    ],
)
def test_amount_pattern(doc, value, ok):
    assert bool(schema_pattern(doc, "U128").search(value)) is ok


@pytest.mark.parametrize(
    "value,ok",
    [
        ("alice", True),
        ("01936f1c-8a2b-7c3d-9e4f-5a6b7c8d9e0f", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("-leading", False),
        ("has/slash", False),
        ("has space", False),
        ("pct%41", False),
    ],
)
def test_id_pattern(doc, value, ok):
    assert bool(schema_pattern(doc, "Id").search(value)) is ok


@pytest.mark.parametrize(
    "value,ok", [("USD", True), ("A_1", True), ("usd", False), ("", False), ("X" * 17, False)]
)
def test_ledger_pattern(doc, value, ok):
    assert bool(schema_pattern(doc, "Ledger").search(value)) is ok


def test_idempotency_key_pattern(doc):
    key = re.compile(doc["components"]["parameters"]["IdempotencyKey"]["schema"]["pattern"])
    assert key.search(" ~") and key.search("k" * 255)
    assert not key.search("") and not key.search("k" * 256)
    assert not key.search("tab\tkey") and not key.search("caf\u00e9")


def test_limits_match_limits_h(doc):
    s = doc["components"]["schemas"]
    p = doc["components"]["parameters"]
    assert s["Id"]["maxLength"] == c_define("LIMIT_ID_LEN_MAX")
    assert s["Ledger"]["maxLength"] == c_define("LIMIT_LEDGER_LEN_MAX")
    assert s["U128"]["maxLength"] == c_define("LIMIT_U128_DEC_LEN_MAX")
    assert s["BatchRequest"]["properties"]["transfers"]["maxItems"] == c_define(
        "LIMIT_BATCH_TRANSFERS_MAX"
    )
    assert s["BatchResults"]["properties"]["results"]["maxItems"] == c_define(
        "LIMIT_BATCH_TRANSFERS_MAX"
    )
    assert s["Problem"]["properties"]["errors"]["maxItems"] == c_define("LIMIT_DECODE_ERRORS_MAX")
    assert s["TransferCreate"]["properties"]["timeout_seconds"]["maximum"] == c_define(
        "LIMIT_TIMEOUT_SECONDS_MAX"
    )
    assert p["Limit"]["schema"]["maximum"] == c_define("LIMIT_LIST_MAX")
    assert p["Limit"]["schema"]["default"] == c_define("LIMIT_LIST_DEFAULT")
    assert s["AccountPage"]["properties"]["data"]["maxItems"] == c_define("LIMIT_LIST_MAX")
    assert s["AuditPage"]["properties"]["data"]["maxItems"] == c_define("LIMIT_LIST_MAX")
    assert p["IdempotencyKey"]["schema"]["maxLength"] == c_define("LIMIT_IDEMPOTENCY_KEY_LEN_MAX")
    assert p["Tracestate"]["schema"]["maxLength"] == c_define("LIMIT_TRACESTATE_LEN_MAX")
    request_id = doc["components"]["parameters"]["XRequestId"]["schema"]["pattern"]
    assert "{1,%d}" % c_define("LIMIT_REQUEST_ID_LEN_MAX") in request_id
    assert str(c_define("LIMIT_METADATA_BYTES_MAX")) in s["Metadata"]["description"]


# --- authentication and authorization ------------------------------------------------------

# The scopes of ledgerd (src/auth/scope.h), used when that header is not there to read.
KNOWN_SCOPES = {"ledger:read", "ledger:write", "flags:read", "flags:write", "audit:read", "admin"}

# Which LEDGERD_AUTH_OPEN_ROUTES group each public route belongs to, and the scopes a closed
# route of that group needs (a closed probe: any valid credential).
OPEN_ROUTE_GROUPS = {
    "/livez": "probes",
    "/readyz": "probes",
    "/metrics": "metrics",
    "/ops/dashboard": "dashboard",
}
CLOSED_GROUP_SCOPES = {"probes": [], "metrics": ["admin"], "dashboard": ["admin"]}

AUTH_CODES = {"unauthenticated", "invalid_token", "insufficient_scope", "too_many_requests"}

# auth_reason names that are not a 401 invalid_token's error_description: no refusal, a missing
# credential (unauthenticated), 429, 403 and 503.
NOT_INVALID_TOKEN_REASONS = {"none", "missing", "rate_limited", "insufficient_scope", "unavailable"}


def route_scopes():
    """{(METHOD, template): scope} from the http_routes table in src/http, or None."""
    for c_file in sorted(HTTP_DIR.glob("*.c")):
        text = c_file.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"http_routes\s*\[\s*\]\s*=\s*\{(.*?)\n\};", text, re.S)
        if not m:
            continue
        table = m.group(1)
        starts = [r.start() for r in re.finditer(r"\{\s*(?:\.method\s*=\s*)?HTTP_[A-Z]+", table)]
        scopes = {}
        for i, start in enumerate(starts):
            row = table[start:starts[i + 1] if i + 1 < len(starts) else len(table)]
            method = re.match(r"\{\s*(?:\.method\s*=\s*)?HTTP_([A-Z]+)", row).group(1)
            strings = re.findall(r'"([^"]*)"', row)
            named = re.search(r'\.scope\s*=\s*"([^"]*)"', row)
            assert len(strings) >= 2 or named, f"a route row without a scope: {row.strip()}"
            scopes[(method, strings[0])] = named.group(1) if named else strings[1]
        if scopes:
            return scopes
    return None


def known_scopes():
    if not SCOPE_H.exists():
        return KNOWN_SCOPES
    body = re.search(r"enum scope_bit \{(.*?)\};", SCOPE_H.read_text(encoding="utf-8"), re.S)
    names = set(re.findall(r"/\* ([a-z]+(?::[a-z]+)?) \*/", body.group(1))) if body else set()
    assert names, "no scope names found in the comments of enum scope_bit"
    return names


def requires_credential(op):
    return {} not in op["security"]


def bearer_scopes(op):
    """The scopes of the operation's bearerAuth requirement."""
    bearer = [r for r in op["security"] if r]
    assert len(bearer) == 1 and list(bearer[0]) == ["bearerAuth"], op["operationId"]
    return bearer[0]["bearerAuth"]


def test_bearer_security_scheme(doc):
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "API key or JWT"
    assert "ldk_" in scheme["description"]
    assert "docs/security/auth.md" in scheme["description"]
    assert "docs/security/jwt.md" in scheme["description"]
    # The default requires a credential: an operation that forgot its own is not left open.
    assert doc["security"] == [{"bearerAuth": []}]


def test_route_table_scopes_are_parsed():
    scopes = route_scopes()
    assert scopes is not None, "no http_routes table found in src/http/*.c"
    assert scopes[("GET", "/livez")] == "public"
    assert set(scopes.values()) <= known_scopes() | {"public"}, sorted(set(scopes.values()))


def test_every_operation_declares_its_security(doc):
    for method, path, op in operations(doc):
        assert "security" in op, f"{method} {path} relies on the default security"
        for requirement in op["security"]:
            assert set(requirement) <= {"bearerAuth"}, (method, path, requirement)
            for scope in requirement.get("bearerAuth", []):
                assert scope in known_scopes(), (method, path, scope)


def test_operation_security_matches_the_route_scope(doc):
    scopes = route_scopes()
    assert scopes is not None, "no http_routes table found in src/http/*.c"
    for method, path, op in operations(doc):
        scope = scopes[(method, path)]
        if scope == "public":
            group = op.get("x-ledgerd-open-route")
            assert group == OPEN_ROUTE_GROUPS.get(path), (method, path, group)
            assert op["security"] == [{}, {"bearerAuth": CLOSED_GROUP_SCOPES[group]}], (
                method,
                path,
            )
        else:
            assert "x-ledgerd-open-route" not in op, (method, path)
            assert op["security"] == [{"bearerAuth": [scope]}], (method, path, scope)


def test_open_route_groups_match_the_configuration():
    assert set(OPEN_ROUTE_GROUPS.values()) == set(CLOSED_GROUP_SCOPES)
    if not CONFIG_C.exists():
        pytest.skip("src/core/config.c is not there")
    m = re.search(r"config_open_route_names\[\]\s*=\s*\{([^}]*)\}", CONFIG_C.read_text("utf-8"))
    assert m, "config_open_route_names not found in config.c"
    assert set(re.findall(r'"([a-z]+)"', m.group(1))) == set(CLOSED_GROUP_SCOPES)


def test_public_routes_are_the_open_ones(doc):
    scopes = route_scopes()
    public = {path for (_, path), scope in scopes.items() if scope == "public"}
    assert public == set(OPEN_ROUTE_GROUPS)
    for method, path, op in operations(doc):
        if path in OPEN_ROUTE_GROUPS:
            assert "LEDGERD_AUTH_OPEN_ROUTES" in op["description"], (method, path)


def auth_response_checks(doc, where, op, statuses):
    for status in statuses:
        assert status in op["responses"], f"{where} lacks {status}"
    expected = {"401": {"unauthenticated", "invalid_token"},
                "403": {"insufficient_scope"},
                "429": {"too_many_requests"}}
    for status in statuses:
        resp = resolve(doc, op["responses"][status])
        assert problem_codes_of(doc, resp) == expected[status], (where, status)
        headers = resp.get("headers", {})
        if status in ("401", "403"):
            assert "WWW-Authenticate" in headers, (where, status)
            assert resolve(doc, headers["WWW-Authenticate"]).get("required") is True
        else:
            assert "Retry-After" in headers, (where, status)
            assert resolve(doc, headers["Retry-After"]).get("required") is True


def test_secured_operations_document_401_403_429(doc):
    secured = 0
    for method, path, op in operations(doc):
        if requires_credential(op):
            auth_response_checks(doc, f"{method} {path}", op, ("401", "403", "429"))
            secured += 1
    assert secured == 8


def test_open_routes_document_what_they_answer_when_closed(doc):
    for method, path, op in operations(doc):
        if requires_credential(op):
            continue
        # Closed, every route needs a valid credential; only a scope requirement brings 403.
        statuses = ("401", "403", "429") if bearer_scopes(op) else ("401", "429")
        auth_response_checks(doc, f"{method} {path}", op, statuses)
        if not bearer_scopes(op):
            assert "403" not in op["responses"], f"{method} {path}: any credential will do"


def test_auth_codes_are_documented(doc):
    assert AUTH_CODES <= documented_problem_codes(doc)
    assert AUTH_CODES <= conventions_codes()
    text = CONVENTIONS.read_text(encoding="utf-8")
    assert "## Authentication and authorization" in text
    for link in ("(../security/auth.md)", "(../security/jwt.md)"):
        assert link in text


def test_storage_unavailable_covers_the_api_key_lookup(doc):
    for method, path, op in operations(doc):
        if requires_credential(op) or path in OPEN_ROUTE_GROUPS:
            assert "storage_unavailable" in problem_codes_of(
                doc, resolve(doc, op["responses"]["503"])
            ), (method, path)


def invalid_token_reasons(doc):
    return doc["components"]["schemas"]["InvalidTokenReason"]["enum"]


def test_invalid_token_reasons_match_the_server(doc):
    reasons = invalid_token_reasons(doc)
    assert len(reasons) == len(set(reasons))
    assert all(SNAKE.match(r) for r in reasons)
    if not AUTH_C.exists():
        pytest.skip("src/auth/auth.c is not there")
    table = re.search(r"auth_reason_names\[[A-Z_]*\]\s*=\s*\{(.*?)\};",
                      AUTH_C.read_text(encoding="utf-8"), re.S)
    assert table, "auth_reason_names not found in src/auth/auth.c"
    names = set(re.findall(r'=\s*"([a-z_]+)"', table.group(1)))
    assert names, "no reason names in auth_reason_names"
    assert set(reasons) == names - NOT_INVALID_TOKEN_REASONS


def test_conventions_list_every_invalid_token_reason(doc):
    text = CONVENTIONS.read_text(encoding="utf-8")
    section = text.split("## Authentication and authorization", 1)[1].split("\n## ", 1)[0]
    missing = [r for r in invalid_token_reasons(doc) if f"`{r}`" not in section]
    assert not missing, f"reasons conventions.md does not list: {missing}"


def test_www_authenticate_pattern(doc):
    pattern = re.compile(doc["components"]["headers"]["WWWAuthenticate"]["schema"]["pattern"])
    assert pattern.search('Bearer realm="ledgerd"')
    for reason in invalid_token_reasons(doc):
        value = f'Bearer realm="ledgerd", error="invalid_token", error_description="{reason}"'
        assert pattern.search(value), value
    for scope in known_scopes():
        value = f'Bearer realm="ledgerd", error="insufficient_scope", scope="{scope}"'
        assert pattern.search(value), value
    for bad in ('Basic realm="ledgerd"', 'Bearer realm="other"', 'Bearer',
                'Bearer realm="ledgerd", error="invalid_request"',
                'Bearer realm="ledgerd", error="insufficient_scope", scope="a b"'):
        assert not pattern.search(bad), bad


def test_auth_refusals_are_not_stored_with_idempotency_keys(doc):
    description = doc["components"]["parameters"]["IdempotencyKey"]["description"]
    assert "authenticated principal" in description
    assert re.search(r"401, 403, 413, 415, 429", description)


# --- the audit trail -----------------------------------------------------------------------


def audit_md_fields():
    """The record's fields from the first table of docs/security/audit.md."""
    section = AUDIT_MD.read_text(encoding="utf-8").split("## The record", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` +\|", section, re.M)


def test_audit_record_has_the_fields_of_the_trail(doc):
    record = doc["components"]["schemas"]["AuditRecord"]
    props = list(record["properties"])
    assert set(record["required"]) == set(props)
    assert record["additionalProperties"] is False
    fields = audit_md_fields()
    assert "seq" in fields and "hash" in fields, fields
    # Every stored field, plus `time`: the same instant as the API writes times.
    assert props == fields[:1] + ["time"] + fields[1:], props
    if AUDIT_CLI_C.exists():
        # The same names, in the same order, as `ledgerd audit export`.
        exported = re.findall(r'json_set\(obj, "([a-z_]+)"', AUDIT_CLI_C.read_text("utf-8"))
        assert exported == props, exported


def test_audit_record_limits_match_limits_h(doc):
    p = doc["components"]["schemas"]["AuditRecord"]["properties"]
    for name, define in (("actor", "LIMIT_AUDIT_ACTOR_LEN_MAX"),
                         ("action", "LIMIT_AUDIT_ACTION_LEN_MAX"),
                         ("resource", "LIMIT_AUDIT_RESOURCE_LEN_MAX"),
                         ("reason", "LIMIT_AUDIT_REASON_LEN_MAX"),
                         ("source", "LIMIT_AUDIT_SOURCE_LEN_MAX")):
        assert p[name]["maxLength"] == c_define(define), name
    assert "{1,%d}" % c_define("LIMIT_REQUEST_ID_LEN_MAX") in p["request_id"]["pattern"]
    assert "{%d}" % c_define("LIMIT_AUDIT_TRACE_ID_LEN") in p["trace_id"]["pattern"]
    assert p["seq"]["maximum"] == p["time_unix_ms"]["maximum"] == 2**53 - 1
    assert p["time"]["pattern"] == doc["components"]["schemas"]["Timestamp"]["pattern"]


@pytest.mark.parametrize("field,value,ok", [
    ("action", "authz.deny", True), ("action", "Authz.deny", False), ("action", "a..b", False),
    ("request_id", "", True), ("request_id", "req-01", True), ("request_id", "a b", False),
    ("trace_id", "", True), ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", True),
    ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736", False),
    ("hash", "0" * 64, True), ("hash", "0" * 63, False), ("prev_hash", "A" * 64, False),
])
def test_audit_record_patterns(doc, field, value, ok):
    pattern = doc["components"]["schemas"]["AuditRecord"]["properties"][field]["pattern"]
    assert bool(re.search(pattern, value)) is ok


def test_audit_list_needs_audit_read_and_is_documented(doc):
    op = doc["paths"]["/v1/audit"]["get"]
    assert op["security"] == [{"bearerAuth": ["audit:read"]}]
    assert resolve(doc, op["responses"]["200"])["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditPage"}
    codes_400 = problem_codes_of(doc, resolve(doc, op["responses"]["400"]))
    assert {"limit_invalid", "cursor_invalid", "unknown_parameter"} <= codes_400
    text = CONVENTIONS.read_text(encoding="utf-8")
    lists = text.split("## Lists", 1)[1].split("\n## ", 1)[0]
    assert "`GET /v1/audit`" in lists and "`audit:read`" in lists
