"""GET /v1/audit: the audit trail over HTTP (scope audit:read). Pages follow the lists' rules
(limit, opaque cursor, next_cursor null on the last page); the records come in seq order without
gaps, each linked to the one before, each hashing to its stored hash by the canonical encoding of
docs/security/audit.md, and equal to what `ledgerd audit export` prints."""

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone

import pytest

from .ledgerd_harness import (
    assert_json, assert_problem, new_ledger, run_cli, urlquote, wait_for,
)
from .test_auth import authed, bearer  # noqa: F401 (authed is a fixture)

RECORD_FIELDS = ["seq", "time", "time_unix_ms", "actor", "action", "resource", "decision",
                 "reason", "request_id", "trace_id", "source", "prev_hash", "hash"]
HASHED_TEXT = ("actor", "action", "resource", "decision", "reason", "request_id", "trace_id",
               "source")
TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def canonical_hash(rec):
    """SHA-256 of the record's RFC 8785 encoding, as docs/security/audit.md gives it."""
    obj = {k: rec[k] for k in HASHED_TEXT}
    obj.update(format="ledgerd.audit.record.v1", seq=rec["seq"],
               time_unix_ms=rec["time_unix_ms"], prev_hash=rec["prev_hash"])
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def get(srv, path, key=None, request_id=None):
    headers = dict(bearer(key)) if key else {}
    if request_id:
        headers["X-Request-Id"] = request_id
    c = srv.client()
    try:
        return c.get(path, headers=headers)
    finally:
        c.close()


def pages(srv, key, limit=None, cursor=None):
    """Every page of /v1/audit from cursor on, following next_cursor."""
    out = []
    for _ in range(10000):
        params = []
        if limit is not None:
            params.append(f"limit={limit}")
        if cursor is not None:
            params.append("cursor=" + urlquote(cursor))
        r = get(srv, "/v1/audit" + ("?" + "&".join(params) if params else ""), key)
        page = assert_json(r, 200)
        assert list(page) == ["data", "next_cursor"], r
        assert isinstance(page["data"], list), r
        out.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert isinstance(cursor, str) and cursor, r
        assert page["data"], f"an empty page with a next_cursor: {r!r}"
    raise AssertionError("pagination did not end")


def trail(srv, key, limit=None):
    return [rec for page in pages(srv, key, limit) for rec in page["data"]]


def assert_record_shape(rec):
    assert list(rec) == RECORD_FIELDS, rec
    assert isinstance(rec["seq"], int) and rec["seq"] >= 1, rec
    assert isinstance(rec["time_unix_ms"], int), rec
    assert TIME.match(rec["time"]), rec
    as_time = datetime.fromtimestamp(rec["time_unix_ms"] / 1000, tz=timezone.utc)
    assert rec["time"] == as_time.strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{rec['time_unix_ms'] % 1000:03d}Z", rec
    for name in HASHED_TEXT:
        assert isinstance(rec[name], str), rec  # empty fields are "", never null
    assert rec["actor"] and rec["action"] and rec["resource"], rec
    assert rec["decision"] in ("allow", "deny", "success", "failure"), rec
    assert HEX64.match(rec["prev_hash"]) and HEX64.match(rec["hash"]), rec


@pytest.fixture
def keys(authed):  # noqa: F811 (the fixture imported above)
    class Keys:
        pass

    k = Keys()
    k.writer = authed.apikey("ledger:read,ledger:write")
    k.reader = authed.apikey("ledger:read")
    k.auditor = authed.apikey("audit:read")
    return k


def make_decisions(srv, keys, tag):
    """An allowed creation, a refused one (scope), a request without credentials: their ids."""
    ids = {"allow": f"aapi-allow-{tag}", "deny": f"aapi-deny-{tag}",
           "missing": f"aapi-missing-{tag}"}
    c = srv.client()
    try:
        r = c.post("/v1/accounts", {"ledger": new_ledger(), "code": 1},
                   headers={**bearer(keys.writer), "X-Request-Id": ids["allow"]})
        assert r.status == 201, r
        r = c.post("/v1/accounts", {"ledger": new_ledger(), "code": 1},
                   headers={**bearer(keys.reader), "X-Request-Id": ids["deny"]})
        assert r.status == 403, r
        r = c.get("/v1/accounts", headers={"X-Request-Id": ids["missing"]})
        assert r.status == 401, r
    finally:
        c.close()
    return ids


def wait_for_request_ids(srv, key, request_ids):
    """The trail once it holds every request id (refusals reach it through the commit worker)."""
    def ready():
        records = trail(srv, key, limit=1000)
        return records if set(request_ids) <= {r["request_id"] for r in records} else None

    records = wait_for(ready)
    assert records, f"the trail never held {sorted(request_ids)}"
    return records


def test_pages_are_in_seq_order_gapless_and_chain_linked(authed, keys):  # noqa: F811
    srv = authed.srv
    ids = make_decisions(srv, keys, uuid.uuid4().hex[:8])
    wait_for_request_ids(srv, keys.auditor, ids.values())

    got = pages(srv, keys.auditor, limit=2)
    records = [rec for page in got for rec in page["data"]]
    assert len(records) >= 6, records  # migrations, three API keys, three decisions
    for page in got[:-1]:
        assert len(page["data"]) == 2, page  # full pages until the last
    assert 1 <= len(got[-1]["data"]) <= 2 and got[-1]["next_cursor"] is None

    prev_hash = "0" * 64
    for i, rec in enumerate(records):
        assert_record_shape(rec)
        assert rec["seq"] == i + 1, (i, rec)  # from 1, no gap, in order
        assert rec["prev_hash"] == prev_hash, rec  # linked to the record before
        assert rec["hash"] == canonical_hash(rec), rec  # and its content is what was hashed
        prev_hash = rec["hash"]

    by_id = {r["request_id"]: r for r in records if r["request_id"]}
    allow, deny, miss = by_id[ids["allow"]], by_id[ids["deny"]], by_id[ids["missing"]]
    writer_id, reader_id = keys.writer.split("_")[1], keys.reader.split("_")[1]
    assert (allow["actor"], allow["action"], allow["decision"], allow["resource"]) == (
        f"apikey:{writer_id}", "account.create", "allow", "POST /v1/accounts")
    assert re.fullmatch(r"[0-9a-f]{32}", allow["trace_id"]) and allow["source"] == "127.0.0.1"
    assert (deny["actor"], deny["action"], deny["decision"], deny["reason"]) == (
        f"apikey:{reader_id}", "authz.deny", "deny", "ledger:write")
    assert (miss["actor"], miss["action"], miss["decision"], miss["reason"],
            miss["resource"]) == ("anonymous", "auth.failed", "deny", "missing",
                                  "GET /v1/accounts")
    # Background records carry empty strings, not nulls: the first is a migration.
    assert records[0]["action"] == "migration.apply" and records[0]["request_id"] == ""

    # The same records, field for field, as the command line exports them.
    p = run_cli(["audit", "export"], env=srv.env)
    assert p.returncode == 0, p.stderr
    exported = [json.loads(line) for line in p.stdout.splitlines()]
    assert exported[:len(records)] == records
    srv.assert_clean_stop()


def test_page_sizes_and_cursors(authed, keys):  # noqa: F811
    srv = authed.srv
    ids = make_decisions(srv, keys, uuid.uuid4().hex[:8])
    everything = wait_for_request_ids(srv, keys.auditor, ids.values())
    n = len(everything)
    assert [r["seq"] for r in everything] == list(range(1, n + 1))

    # Default page: 100 at most, the whole (short) trail here.
    page = assert_json(get(srv, "/v1/audit", keys.auditor), 200)
    assert page["data"] == everything[:100] and page["next_cursor"] is None
    for limit in (1, 3, 1000):
        assert trail(srv, keys.auditor, limit) == everything, limit

    # A page that ends short of the tail hands a cursor; records appended after it was issued
    # come on the following pages.
    first = assert_json(get(srv, f"/v1/audit?limit={n - 1}", keys.auditor), 200)
    assert first["data"] == everything[:n - 1] and isinstance(first["next_cursor"], str)
    refused = get(srv, "/v1/audit", keys.reader, request_id="aapi-late-read")
    assert_problem(refused, 403, "insufficient_scope")

    def after_cursor():
        rs = [r for p in pages(srv, keys.auditor, 2, first["next_cursor"]) for r in p["data"]]
        return rs if any(r["request_id"] == "aapi-late-read" for r in rs) else None

    late = wait_for(after_cursor)
    assert late, "the refused read never reached the trail"
    assert late[0] == everything[n - 1]
    assert [r["seq"] for r in late] == list(range(n, n + len(late)))
    denial = next(r for r in late if r["request_id"] == "aapi-late-read")
    # Reading the trail without the scope is itself recorded.
    assert (denial["action"], denial["resource"], denial["reason"]) == (
        "authz.deny", "GET /v1/audit", "audit:read")


def test_only_audit_read_may_read_the_trail(authed, keys):  # noqa: F811
    srv = authed.srv
    for key in (keys.reader, keys.writer):
        r = get(srv, "/v1/audit", key)
        assert_problem(r, 403, "insufficient_scope")
        assert r.headers["www-authenticate"] == (
            'Bearer realm="ledgerd", error="insufficient_scope", scope="audit:read"')
    r = get(srv, "/v1/audit")
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == 'Bearer realm="ledgerd"'
    r = get(srv, "/v1/audit", "ldk_0123456789abcdef_" + "A" * 43)
    assert_problem(r, 401, "invalid_token")
    # A JWT with the scope reads it as well as an API key does.
    token = authed.issuer.token(scope="audit:read")
    assert assert_json(get(srv, "/v1/audit?limit=1", token), 200)["data"][0]["seq"] == 1
    # Reading is not writing: the route takes no other method.
    c = srv.client()
    try:
        r = c.post("/v1/audit", {}, headers=bearer(keys.auditor))
    finally:
        c.close()
    assert_problem(r, 405, "method_not_allowed")


BAD_LIMITS = ["0", "1001", "-1", "abc", "", "1.5", "10e2", "+5", "01", "99999999999999999999999"]
BAD_CURSORS = ["", "garbage!", "!!!", "x" * 600, "%ZZ", "\u00e9", "a b", "c1",
               "c1000000000000000G", "C10000000000000001", "c100000000000000001"]
UNKNOWN = ["foo=1", "limit=5&foo=1", "LIMIT=5", "ledger=USD", "since=2026-01-01T00:00:00.000Z"]


def test_bad_parameters_are_refused_as_the_other_lists_refuse_them(authed, keys):  # noqa: F811
    srv = authed.srv
    for limit in BAD_LIMITS:
        assert_problem(get(srv, "/v1/audit?limit=" + urlquote(limit), keys.auditor), 400,
                       "limit_invalid")
    for cursor in BAD_CURSORS:
        assert_problem(get(srv, "/v1/audit?cursor=" + urlquote(cursor), keys.auditor), 400,
                       "cursor_invalid")
    for query in UNKNOWN:
        assert_problem(get(srv, "/v1/audit?" + query, keys.auditor), 400, "unknown_parameter")
    # Authorization comes first: without the scope the parameters are not looked at.
    assert_problem(get(srv, "/v1/audit?limit=0", keys.reader), 403, "insufficient_scope")
    for limit in ("1", "1000"):
        page = assert_json(get(srv, "/v1/audit?limit=" + limit, keys.auditor), 200)
        assert 1 <= len(page["data"]) <= int(limit)
