"""Correlation: X-Request-Id echoed or generated, W3C traceparent continued or restarted,
traceresponse on every response, and the same ids in problem bodies and request log lines
(API contract "Conventions", conventions "Correlation")."""

import pytest

from .ledgerd_harness import (
    HEX32, TRACERESPONSE, assert_problem, create_account, new_ledger, uid,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID_TP = f"00-{TRACE}-{PARENT}-01"


def trace_of(r):
    tr = r.headers.get("traceresponse")
    assert tr is not None, f"no traceresponse: {r!r}"
    m = TRACERESPONSE.match(tr)
    assert m, f"malformed traceresponse {tr!r}"
    trace_id, span_id, flags = m.groups()
    assert trace_id != "0" * 32 and span_id != "0" * 16, tr
    return trace_id, span_id, flags


def request_log(server, rid):
    line = server.wait_log(lambda o: o.get("body") == "request" and o.get("request_id") == rid)
    assert line is not None, f"no request log line with request_id {rid!r}"
    return line


@pytest.mark.parametrize("rid", ["abc", "A.b_c:d-e", "x" * 128, "0", "req:2026-11-27.1"])
def test_valid_request_id_is_echoed(client, rid):
    r = client.get("/livez", headers={"X-Request-Id": rid})
    assert r.status == 200
    assert r.headers.get("x-request-id") == rid


@pytest.mark.parametrize("rid", ["x" * 129, "a b", "a/b", "a,b", "<script>", "a\"b", "é",
                                 "ä" * 10, "a\tb", "a;b"])
def test_invalid_request_id_is_replaced(client, rid):
    r = client.get("/livez", headers={"X-Request-Id": rid.encode("utf-8")})
    assert r.status == 200
    got = r.headers.get("x-request-id")
    assert got != rid
    assert HEX32.match(got or ""), got


def test_empty_request_id_is_replaced(client):
    r = client.get("/livez", headers={"X-Request-Id": ""})
    assert HEX32.match(r.headers.get("x-request-id", "")), r


def test_generated_request_ids_are_unique(client):
    ids = {client.get("/livez").headers.get("x-request-id") for _ in range(50)}
    assert len(ids) == 50
    assert all(HEX32.match(i) for i in ids)


def test_request_id_on_every_kind_of_response(client):
    ledger = new_ledger()
    responses = [
        client.get("/livez"), client.get("/readyz"), client.get("/nowhere"),
        client.request("DELETE", "/v1/accounts"),
        client.post("/v1/accounts", {"ledger": ledger, "code": 1}),
        client.post("/v1/accounts", b"{}", content_type="text/plain"),
        client.get("/v1/accounts?ledger=" + ledger),
        client.get("/metrics"),
    ]
    for r in responses:
        assert HEX32.match(r.headers.get("x-request-id", "")), r
        trace_of(r)


def test_request_id_in_problem_body_echoed(client):
    r = client.get("/v1/accounts/" + uid("none"), headers={"X-Request-Id": "mine-123"})
    p = assert_problem(r, 404, "account_not_found")
    assert p["request_id"] == "mine-123"


def test_request_id_in_problem_body_generated(client):
    r = client.get("/v1/accounts/" + uid("none"), headers={"X-Request-Id": "bad id"})
    p = assert_problem(r, 404, "account_not_found")
    assert HEX32.match(p["request_id"]) and p["request_id"] == r.headers["x-request-id"]


def test_request_log_line(server, client):
    ledger = new_ledger()
    a = create_account(client, ledger)
    rid = uid("log")
    r = client.get("/v1/accounts/" + a["id"], headers={"X-Request-Id": rid,
                                                        "traceparent": VALID_TP})
    assert r.status == 200
    trace_id, span_id, _ = trace_of(r)
    line = request_log(server, rid)
    assert line["method"] == "GET"
    assert line["route"] == "/v1/accounts/{id}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert isinstance(line["bytes"], int) and line["bytes"] >= 0
    assert line["trace_id"] == trace_id == TRACE
    assert line["span_id"] == span_id


def test_request_log_line_with_generated_id_and_error(server, client):
    r = client.post("/v1/accounts", b"{", headers={"X-Request-Id": "no good"})
    rid = r.headers["x-request-id"]
    line = request_log(server, rid)
    assert line["status"] == 400
    assert line["method"] == "POST"
    assert line["route"] == "/v1/accounts"
    trace_id, span_id, _ = trace_of(r)
    assert line["trace_id"] == trace_id and line["span_id"] == span_id


def test_one_request_line_per_request(server, client):
    rid = uid("once")
    client.get("/livez", headers={"X-Request-Id": rid})
    client.get("/readyz", headers={"X-Request-Id": uid("other")})
    request_log(server, rid)
    lines = [o for o in server.log_lines()
             if o.get("body") == "request" and o.get("request_id") == rid]
    assert len(lines) == 1, lines


@pytest.mark.parametrize("flags", ["01", "00"])
def test_valid_traceparent_is_continued(client, flags):
    r = client.get("/livez", headers={"traceparent": f"00-{TRACE}-{PARENT}-{flags}"})
    trace_id, span_id, got_flags = trace_of(r)
    assert trace_id == TRACE
    assert span_id != PARENT
    assert got_flags == flags


def test_server_span_is_new_each_time(client):
    spans = {trace_of(client.get("/livez", headers={"traceparent": VALID_TP}))[1]
             for _ in range(20)}
    assert len(spans) == 20


@pytest.mark.parametrize("tp", [
    f"01-{TRACE}-{PARENT}-01",
    f"cc-{TRACE}-{PARENT}-01",
    f"01-{TRACE}-{PARENT}-01-future-stuff",
])
def test_future_version_read_as_00(client, tp):
    trace_id, _, flags = trace_of(client.get("/livez", headers={"traceparent": tp}))
    assert trace_id == TRACE
    assert flags == "01"


@pytest.mark.parametrize("tp", [
    f"ff-{TRACE}-{PARENT}-01",                       # forbidden version
    f"00-{'0' * 32}-{PARENT}-01",                    # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",                     # all-zero parent id
    f"00-{TRACE[:31]}-{PARENT}-01",                  # short trace id
    f"00-{TRACE}a-{PARENT}-01",                      # long trace id
    f"00-{TRACE}-{PARENT[:15]}-01",                  # short parent id
    f"00-{TRACE}-{PARENT}0-01",                      # long parent id
    f"00-{TRACE.upper()}-{PARENT}-01",               # upper-case hex
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"00-{TRACE[:-1]}g-{PARENT}-01",                 # non-hex
    f"00-{TRACE}-{PARENT[:-1]}z-01",
    f"00-{TRACE}-{PARENT}-0g",
    f"00-{TRACE}-{PARENT}-1",                        # short flags
    f"00-{TRACE}-{PARENT}-001",                      # long flags
    f"00-{TRACE}-{PARENT}-01-extra",                 # version 00 has exactly 4 fields
    f"00-{TRACE}-{PARENT}",                          # missing flags
    f"0-{TRACE}-{PARENT}-01",                        # short version
    f"0A-{TRACE}-{PARENT}-01",                       # upper-case version
    f"00_{TRACE}_{PARENT}_01",                       # wrong separators
    f"01-{TRACE}-{PARENT}-01x",                      # future version not followed by '-'
    "",
    "garbage",
])
def test_invalid_traceparent_starts_new_trace(client, tp):
    r = client.get("/livez", headers={"traceparent": tp})
    assert r.status == 200
    trace_id, span_id, flags = trace_of(r)
    assert trace_id != TRACE
    assert span_id != PARENT
    assert flags == "01"


def test_new_traces_are_unique(client):
    traces = {trace_of(client.get("/livez"))[0] for _ in range(20)}
    assert len(traces) == 20


def test_bad_tracestate_does_not_break_the_trace(client):
    for ts in ["a=b", "vendor=" + "x" * 600, ",".join(f"k{i}=v" for i in range(40)),
               "===", "\x01"]:
        r = client.get("/livez", headers={"traceparent": VALID_TP, "tracestate": ts})
        assert r.status == 200
        assert trace_of(r)[0] == TRACE


def test_traceresponse_on_problems(client):
    r = client.post("/v1/accounts", b"{", headers={"traceparent": VALID_TP})
    assert_problem(r, 400, "malformed_json")
    assert trace_of(r)[0] == TRACE
